//! Per-flow application inspection: decides what a flow carries (TLS, HTTP, DNS, QUIC) and feeds
//! the `inspect` parsers with the in-order bytes they need.
//!
//! Only a flow's opening bytes are buffered (the ClientHello, request headers, a DNS message):
//! once a direction has told what it is, buffering stops, so bulk transfers are never copied.
//! Buffers are capped; a parser still waiting at the cap gives up and the flow is marked.
//!
//! Evasion (Ptacek & Newsham): every TCP segment is also compared with the direction's remembered
//! opening bytes ([`overlap`]). A bad-checksum copy is read at once (host captures with checksum
//! offload have nothing else), but when a good copy of the same range arrives it takes over: the
//! flow's names are read again from the good bytes and the bad copy's names become alternates.
//! That is the outcome of holding the bad copy aside until a good one comes or the flow ends,
//! without a flush at flow end, so interim and live snapshots are always current. Any two copies
//! that differ are recorded as conflicts, with the names of the other reading. Credentials are the
//! exception: one in a bad-checksum copy is reported even when a good copy differs, because it
//! crossed the wire in clear all the same (the worse reading).
//!
//! Credentials are looked for in every cleartext payload, across segment boundaries (a short tail
//! of each direction is kept and its seam with the next segment scanned), in DNS names, SNI and
//! Host headers; names that carry one are kept only redacted.

mod overlap;
mod readings;

use crate::flow::record::{DnsSummary, HttpSummary, SecretSighting, StreamConflicts, TlsSummary};
use crate::inspect::dns::{self, DnsData, DnsMessage};
use crate::inspect::http::{self, HttpRequest};
use crate::inspect::quic::{self, QuicClientHelloAssembler};
use crate::inspect::secrets;
use crate::inspect::tls::{self, ClientHello};
use crate::inspect::Parse;

/// Bytes of a direction kept while waiting for a parser (a post-quantum ClientHello is ~1.8 KB; the
/// largest real ones reach tens of KB).
const STREAM_CAP: usize = 64 * 1024;
/// Out-of-order segments held while waiting for the hole before them.
const MAX_PENDING: usize = 16;
/// HTTP requests summarised per flow.
const MAX_HTTP: usize = 16;
/// DNS names kept per flow.
const MAX_DNS_NAMES: usize = 32;
/// Credential sightings kept per flow.
const MAX_SECRETS: usize = 8;
/// Conflicts kept per flow (all are counted).
const MAX_CONFLICTS: usize = 8;
/// Alternate names kept per flow, per kind.
const MAX_ALTERNATES: usize = 8;
/// Bytes of a direction's last segment kept to find a credential split across two segments
/// (a header name and a 40-digit key, or the start of a long bearer token).
const SEAM: usize = 256;

/// One TCP segment's payload, as the flow table hands it over.
#[derive(Debug, Clone, Copy)]
pub struct TcpData<'a> {
    /// 0 = from the originator, 1 = from the responder.
    pub dir: usize,
    /// Stream offset of `payload[0]` (0 = first byte after the SYN).
    pub offset: u64,
    pub payload: &'a [u8],
    /// The packet's IPv4 header or TCP checksum was wrong.
    pub bad_checksum: bool,
}

/// The last bytes of a direction's stream, for the seam with its next segment.
#[derive(Debug, Default)]
struct Seam {
    /// Stream offset just past `tail`.
    end: u64,
    tail: Vec<u8>,
}

/// The in-order prefix of one direction's byte stream.
#[derive(Debug, Default)]
struct StreamBuf {
    /// Stream offset of `data[0]`.
    start: u64,
    data: Vec<u8>,
    pending: Vec<(u64, Vec<u8>)>,
    /// Bytes before this offset are not wanted (e.g. an HTTP body being skipped).
    skip_until: u64,
    /// The cap was reached or a segment went missing: parsing this direction gave up.
    overflowed: bool,
}

impl StreamBuf {
    fn end(&self) -> u64 {
        self.start + self.data.len() as u64
    }

    /// Adds `bytes` found at stream `offset`. Returns false once the buffer can no longer grow.
    fn push(&mut self, offset: u64, bytes: &[u8]) -> bool {
        if self.overflowed {
            return false;
        }
        self.insert(offset, bytes);
        // Drain pending segments that became contiguous.
        while let Some(i) = self.pending.iter().position(|(o, _)| *o <= self.end()) {
            let (o, b) = self.pending.swap_remove(i);
            self.insert(o, &b);
        }
        if self.data.len() > STREAM_CAP {
            self.overflowed = true;
        }
        !self.overflowed
    }

    fn insert(&mut self, offset: u64, bytes: &[u8]) {
        let end = self.end();
        if self.data.is_empty() && end < self.skip_until {
            // Nothing buffered yet: realign on the first wanted byte.
            self.start = self.skip_until;
        }
        let end = self.end();
        let seg_end = offset + bytes.len() as u64;
        if seg_end <= end {
            return; // retransmission of bytes we have
        }
        if offset > end {
            if self.pending.len() < MAX_PENDING {
                self.pending.push((offset, bytes.to_vec()));
            } else {
                self.overflowed = true;
            }
            return;
        }
        let from = (end - offset) as usize;
        self.data.extend_from_slice(&bytes[from..]);
    }

    /// Drops the first `n` buffered bytes.
    fn consume(&mut self, n: usize) {
        let n = n.min(self.data.len());
        self.data.drain(..n);
        self.start += n as u64;
    }

    /// Wants no bytes before `offset` any more.
    fn skip_to(&mut self, offset: u64) {
        self.skip_until = offset;
        if offset >= self.end() {
            self.data.clear();
            self.start = offset;
        } else if offset > self.start {
            self.consume((offset - self.start) as usize);
        }
    }

    fn release(&mut self) {
        self.data = Vec::new();
        self.pending = Vec::new();
    }
}

/// What a TCP direction is being read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Reading {
    /// Nothing seen yet: the first bytes decide.
    #[default]
    Probe,
    Tls,
    HttpRequests,
    HttpResponse,
    Dns,
    /// Nothing more to learn from this direction.
    Done,
}

/// Application-layer facts gathered for one flow.
#[derive(Debug, Default)]
pub struct AppState {
    streams: [StreamBuf; 2],
    reading: [Reading; 2],
    quic: Option<Box<QuicClientHelloAssembler>>,
    /// TLS begins here in the originator's stream (after a CONNECT request).
    tls_offset: u64,
    /// Cleartext flows are scanned for credentials.
    plaintext: bool,
    pub tls: Option<TlsSummary>,
    pub http: Vec<HttpSummary>,
    pub dns: Option<DnsSummary>,
    /// `host:port` of an HTTP CONNECT request.
    pub connect: Option<String>,
    pub secrets: Vec<SecretSighting>,
    pub quic_seen: bool,
    /// Each direction's opening bytes, to compare later copies with.
    prefixes: [overlap::Prefix; 2],
    /// Data that read two ways, and the names of the other readings.
    conflicts: Option<Box<StreamConflicts>>,
    /// Conflicts in the originator's opening bytes whose two readings could not be read whole
    /// yet (a ClientHello still arriving): read again as more bytes come.
    rereads: Vec<overlap::Clash>,
    seams: [Seam; 2],
    /// Time of the packet being inspected.
    now_nanos: i64,
}

/// Events an inspected packet produces beyond the flow's own state.
pub enum AppEvent<'m> {
    /// A DNS message was read (the name book learns from responses).
    Dns(&'m DnsMessage),
}

impl AppState {
    /// Zeek-style service names of what was recognised.
    pub fn service(&self) -> Option<String> {
        let mut parts: Vec<&str> = Vec::new();
        // As Zeek, a protocol is the flow's service once both sides spoke it.
        if self.http.iter().any(|h| h.status.is_some()) {
            parts.push("http");
        }
        if self.quic_seen {
            parts.push("quic");
        }
        if self.tls.is_some() {
            parts.push("ssl");
        }
        if self.dns.is_some() {
            parts.push("dns");
        }
        (!parts.is_empty()).then(|| parts.join(","))
    }

    /// Overlapping data that read two ways, if any (for the flow record).
    pub fn stream_conflicts(&self) -> Option<StreamConflicts> {
        self.conflicts.as_deref().cloned()
    }

    /// A TCP segment's payload.
    pub fn tcp(
        &mut self,
        seg: TcpData<'_>,
        ts_nanos: i64,
        ports: (u16, u16),
        on_event: &mut impl FnMut(AppEvent<'_>),
    ) {
        let TcpData {
            dir,
            offset,
            payload,
            bad_checksum,
        } = seg;
        if payload.is_empty() {
            return;
        }
        self.now_nanos = ts_nanos;
        if self.plaintext {
            self.scan_segment(dir, offset, payload, ts_nanos);
        }
        self.read_stream(dir, offset, payload, ports, on_event);
        // After the parsers, so a conflict can correct or complete what they read.
        for clash in self.prefixes[dir].observe(offset, payload, bad_checksum) {
            self.note_clash(dir, clash);
        }
        if dir == 0 && !self.rereads.is_empty() {
            for clash in std::mem::take(&mut self.rereads) {
                if !self.read_both(&clash) {
                    self.rereads.push(clash);
                }
            }
        }
    }

    /// Feeds the parsers of direction `dir` with the segment.
    fn read_stream(
        &mut self,
        dir: usize,
        offset: u64,
        payload: &[u8],
        ports: (u16, u16),
        on_event: &mut impl FnMut(AppEvent<'_>),
    ) {
        if self.reading[dir] == Reading::Done {
            return;
        }
        if !self.streams[dir].push(offset, payload) {
            self.give_up(dir);
            return;
        }
        // Read as much as the buffer allows; each step may change what is read next.
        for _ in 0..MAX_HTTP + 2 {
            let progressed = match self.reading[dir] {
                Reading::Probe => self.probe(dir, ports),
                Reading::Tls => self.read_tls(dir),
                Reading::HttpRequests => self.read_http_request(),
                Reading::HttpResponse => self.read_http_response(),
                Reading::Dns => self.read_dns_tcp(dir, on_event),
                Reading::Done => false,
            };
            if !progressed {
                break;
            }
        }
        if self.reading[dir] == Reading::Done {
            self.streams[dir].release();
        }
    }

    fn give_up(&mut self, dir: usize) {
        if self.reading[dir] == Reading::Tls && dir == 0 {
            if let Some(tls) = self.tls.as_mut() {
                tls.incomplete = true;
            } else {
                self.tls = Some(TlsSummary {
                    sni: None,
                    alpn: Vec::new(),
                    ech: false,
                    quic: false,
                    ja4: None,
                    max_version: None,
                    server_alert: None,
                    incomplete: true,
                });
            }
        }
        self.reading[dir] = Reading::Done;
        self.streams[dir].release();
    }

    fn probe(&mut self, dir: usize, ports: (u16, u16)) -> bool {
        let view = &self.streams[dir].data;
        if view.is_empty() {
            return false;
        }
        self.reading[dir] = if tls::looks_like_tls(view) {
            Reading::Tls
        } else if is_dns_port(ports.0) || is_dns_port(ports.1) {
            Reading::Dns
        } else if dir == 0 {
            match http::parse_request(view) {
                Parse::NotThis => Reading::Done,
                _ => Reading::HttpRequests,
            }
        } else {
            match http::parse_response(view) {
                Parse::NotThis => Reading::Done,
                _ => Reading::HttpResponse,
            }
        };
        if self.reading[dir] == Reading::Done || self.reading[dir] == Reading::HttpRequests {
            // Not TLS: whatever this is travels in clear and is scanned for credentials.
            if !self.plaintext {
                self.plaintext = true;
                let data = std::mem::take(&mut self.streams[dir].data);
                self.scan_secrets(dir, &data, self.now_nanos);
                // Later segments continue this buffer: their seam is with its end.
                self.seams[dir] = Seam {
                    end: self.streams[dir].start + data.len() as u64,
                    tail: data[data.len().saturating_sub(SEAM)..].to_vec(),
                };
                self.streams[dir].data = data;
            }
        }
        true
    }

    fn read_tls(&mut self, dir: usize) -> bool {
        let buf = &self.streams[dir];
        let skip = if dir == 0 {
            self.tls_offset.saturating_sub(buf.start) as usize
        } else {
            0
        };
        let view = buf.data.get(skip..).unwrap_or(&[]);
        if dir == 0 {
            match tls::parse_client_hello(view) {
                Parse::Done(hello) => {
                    let tls = self.hello_summary(&hello, false);
                    self.tls = Some(tls);
                    self.reading[0] = Reading::Done;
                    true
                }
                Parse::NeedMore => false,
                Parse::NotThis => {
                    self.give_up(0);
                    false
                }
            }
        } else {
            match tls::parse_server_side(view) {
                Parse::Done(server) => {
                    if let (Some(tls), Some((_, description))) = (self.tls.as_mut(), server.alert) {
                        tls.server_alert = Some(description);
                    }
                    self.reading[1] = Reading::Done;
                    true
                }
                Parse::NeedMore => false,
                Parse::NotThis => {
                    self.reading[1] = Reading::Done;
                    false
                }
            }
        }
    }

    fn read_http_request(&mut self) -> bool {
        let buf = &self.streams[0];
        match http::parse_request(&buf.data) {
            Parse::Done(req) => {
                let next = buf.start + req.header_len as u64;
                self.note_request(&req);
                if req.method.eq_ignore_ascii_case("CONNECT") {
                    // After the CONNECT header the tunnel carries whatever the client speaks to
                    // the target (TLS to a licensing server, or SMTP to an abused proxy): probe it
                    // afresh.
                    self.streams[0].skip_to(next);
                    self.tls_offset = next;
                    self.reading[0] = Reading::Probe;
                    self.plaintext = false;
                    return true;
                }
                if req.chunked || self.http.len() >= MAX_HTTP {
                    self.reading[0] = Reading::Done;
                    return true;
                }
                self.streams[0].skip_to(next + req.content_length.unwrap_or(0));
                true
            }
            Parse::NeedMore => false,
            Parse::NotThis => {
                self.reading[0] = Reading::Done;
                false
            }
        }
    }

    fn note_request(&mut self, req: &HttpRequest) {
        if req.method.eq_ignore_ascii_case("CONNECT") {
            let target = http::connect_authority(req).map(|(h, p)| format!("{h}:{p}"));
            self.connect = target.map(|t| self.shown_name("http_connect", &t));
        }
        if self.http.len() < MAX_HTTP {
            let target = req.target.split('?').next().unwrap_or("").to_string();
            let host = req.host.as_deref().map(|h| self.shown_name("http_host", h));
            self.http.push(HttpSummary {
                method: req.method.clone(),
                target: secrets::redact_text(&target),
                host,
                content_length: req.content_length,
                websocket: req.websocket,
                status: None,
            });
        }
    }

    fn read_http_response(&mut self) -> bool {
        match http::parse_response(&self.streams[1].data) {
            Parse::Done(resp) => {
                if let Some(first) = self.http.iter_mut().find(|h| h.status.is_none()) {
                    first.status = Some(resp.status);
                }
                // A tunnel or a body follows; the first status is what the audit needs.
                self.reading[1] = Reading::Done;
                true
            }
            Parse::NeedMore => false,
            Parse::NotThis => {
                self.reading[1] = Reading::Done;
                false
            }
        }
    }

    fn read_dns_tcp(&mut self, dir: usize, on_event: &mut impl FnMut(AppEvent<'_>)) -> bool {
        let (messages, consumed) = dns::split_tcp_messages(&self.streams[dir].data);
        if consumed == 0 {
            return false;
        }
        for msg in messages.iter().flatten() {
            self.note_dns(msg, dir, self.now_nanos);
            emit_dns(msg, on_event);
        }
        self.streams[dir].consume(consumed);
        true
    }

    /// A UDP datagram from direction `dir`.
    pub fn udp(
        &mut self,
        dir: usize,
        payload: &[u8],
        ts_nanos: i64,
        ports: (u16, u16),
        on_event: &mut impl FnMut(AppEvent<'_>),
    ) {
        self.now_nanos = ts_nanos;
        if is_dns_port(ports.0) || is_dns_port(ports.1) {
            if let Ok(msg) = dns::parse_message(payload) {
                self.note_dns(&msg, dir, ts_nanos);
                emit_dns(&msg, on_event);
            }
            return;
        }
        self.read_quic(dir, payload);
        if !self.quic_seen {
            // Neither DNS nor QUIC: whatever it is travels in clear.
            self.scan_secrets(dir, payload, ts_nanos);
        }
    }

    /// Reads a QUIC Initial's ClientHello from the originator's datagrams.
    fn read_quic(&mut self, dir: usize, payload: &[u8]) {
        if dir != 0
            || self
                .tls
                .as_ref()
                .is_some_and(|t| t.sni.is_some() || t.incomplete)
        {
            return;
        }
        if self.quic.is_none() {
            if !quic::looks_like_quic_initial(payload) {
                return;
            }
            self.quic_seen = true;
            self.quic = Some(Box::default());
        }
        let Some(assembler) = self.quic.as_mut() else {
            return;
        };
        match assembler.feed(payload) {
            Parse::Done(hello) => {
                self.tls = Some(self.hello_summary(&hello, true));
                self.quic = None;
            }
            Parse::NeedMore => {}
            Parse::NotThis => self.quic = None,
        }
    }

    fn note_dns(&mut self, msg: &DnsMessage, dir: usize, ts_nanos: i64) {
        let mut found = Vec::new();
        let summary = self.dns.get_or_insert_with(DnsSummary::default);
        if msg.response {
            summary.responses += 1;
            if msg.rcode != 0 {
                summary.error_responses += 1;
            }
            return;
        }
        summary.queries += 1;
        for q in &msg.questions {
            if matches!(q.qtype, 16 | 10 | 255) {
                summary.txt_queries += 1;
            }
            let longest = q.name.split('.').map(str::len).max().unwrap_or(0);
            summary.longest_label = summary.longest_label.max(longest);
            // A key used as a label is a credential in clear, and must not be printed.
            let (hits, shown) = secrets::scan_dns_name(&q.name);
            found.extend(hits);
            if summary.names.len() < MAX_DNS_NAMES && !summary.names.contains(&shown) {
                summary.names.push(shown);
            }
        }
        for hit in found {
            self.note_secret(dir, "dns_name", &hit, ts_nanos);
        }
    }

    /// `name` (an SNI, Host or CONNECT target sent by the originator, found at `place`) as it may
    /// be shown: a credential in it is reported and redacted.
    fn shown_name(&mut self, place: &'static str, name: &str) -> String {
        let (hits, shown) = secrets::scan_dns_name(name);
        for hit in &hits {
            self.note_secret(0, place, hit, self.now_nanos);
        }
        shown
    }

    /// The TLS summary of a ClientHello, its SNI redacted if it carries a credential.
    fn hello_summary(&mut self, hello: &ClientHello, quic: bool) -> TlsSummary {
        let mut tls = summary(hello, quic);
        tls.sni = tls.sni.map(|sni| self.shown_name("tls_sni", &sni));
        tls
    }

    /// Scans a cleartext segment, and the seam between it and the direction's previous segment.
    fn scan_segment(&mut self, dir: usize, offset: u64, payload: &[u8], ts_nanos: i64) {
        self.scan_secrets(dir, payload, ts_nanos);
        let seam = &mut self.seams[dir];
        let end = offset + payload.len() as u64;
        if end <= seam.end {
            return; // a retransmission: the seam is unchanged
        }
        let hits = if offset == seam.end {
            secrets::find_across(&seam.tail, &payload[..payload.len().min(SEAM)])
        } else {
            // A gap or a partial overlap: the next seam starts from this segment alone.
            seam.tail.clear();
            Vec::new()
        };
        if payload.len() >= SEAM {
            seam.tail.clear();
            seam.tail
                .extend_from_slice(&payload[payload.len() - SEAM..]);
        } else {
            seam.tail.extend_from_slice(payload);
            let excess = seam.tail.len().saturating_sub(SEAM);
            seam.tail.drain(..excess);
        }
        seam.end = end;
        for hit in &hits {
            self.note_secret(dir, "payload", hit, ts_nanos);
        }
    }

    fn scan_secrets(&mut self, dir: usize, payload: &[u8], ts_nanos: i64) {
        if self.secrets.len() >= MAX_SECRETS {
            return;
        }
        for hit in secrets::find_secrets(payload) {
            self.note_secret(dir, "payload", &hit, ts_nanos);
        }
    }

    /// Keeps a sighting of `hit` (redacted) found at `place`, once per distinct secret.
    fn note_secret(
        &mut self,
        dir: usize,
        place: &'static str,
        hit: &secrets::SecretHit,
        ts_nanos: i64,
    ) {
        if self.secrets.len() >= MAX_SECRETS {
            return;
        }
        let redacted = secrets::redact(&hit.value);
        if self.secrets.iter().any(|s| s.redacted == redacted) {
            return;
        }
        self.secrets.push(SecretSighting {
            kind: hit.kind.as_str().to_string(),
            redacted,
            ts_nanos,
            direction: if dir == 0 { "orig" } else { "resp" }.to_string(),
            place: place.to_string(),
        });
    }

    /// Records a conflict; in the originator's stream (where names come from), reads the names of
    /// both readings, now and again as more bytes arrive until both can be read whole.
    fn note_clash(&mut self, dir: usize, clash: overlap::Clash) {
        let prefix = &self.prefixes[dir];
        let primary = prefix.reading().to_vec();
        let other = prefix.reading_with(clash.offset, clash.other());
        let record = readings::conflict_record(dir, &clash, &primary, &other);
        let conflicts = self.conflicts.get_or_insert_with(Box::default);
        conflicts.count += 1;
        if conflicts.conflicts.len() < MAX_CONFLICTS {
            conflicts.conflicts.push(record);
        }
        if dir == 0 && !self.read_both(&clash) && self.rereads.len() < MAX_CONFLICTS {
            self.rereads.push(clash);
        }
    }

    /// Reads the names of both readings of `clash` in the originator's stream: a good copy that
    /// took over makes its names the flow's own, and the other reading's names are alternates.
    /// True once nothing more can change (both readings parsed whole, or the prefix is full).
    fn read_both(&mut self, clash: &overlap::Clash) -> bool {
        let prefix = &self.prefixes[0];
        let (primary_bytes, complete) = (prefix.reading().to_vec(), prefix.is_complete());
        let primary = readings::names_in(&primary_bytes);
        let other = readings::names_in(&prefix.reading_with(clash.offset, clash.other()));
        let settled = complete
            || (primary_bytes.len() >= clash.offset + clash.first.len()
                && primary.whole
                && other.whole);
        if clash.second_is_primary {
            self.adopt(&primary);
        }
        let sni = other.hello.as_ref().and_then(|h| h.sni.as_deref());
        if sni != primary.hello.as_ref().and_then(|h| h.sni.as_deref()) {
            self.alternate("tls_sni", sni, |c| &mut c.alternate_sni);
        }
        for (i, host) in other.hosts.iter().enumerate() {
            if primary.hosts.get(i) != Some(host) {
                self.alternate("http_host", host.as_deref(), |c| &mut c.alternate_hosts);
            }
        }
        if other.connect != primary.connect {
            let connect = other.connect.as_deref();
            self.alternate("http_connect", connect, |c| &mut c.alternate_connect);
        }
        settled
    }

    /// A good-checksum copy took over a bad one: the flow's names follow the good reading, and
    /// what the bad copy had said becomes an alternate.
    fn adopt(&mut self, good: &readings::Names) {
        if let Some(hello) = &good.hello {
            let mut tls = self.hello_summary(hello, false);
            let old = self.tls.take();
            tls.server_alert = old.as_ref().and_then(|t| t.server_alert);
            if let Some(sni) = old
                .and_then(|t| t.sni)
                .filter(|s| tls.sni.as_ref() != Some(s))
            {
                self.alternate("tls_sni", Some(&sni), |c| &mut c.alternate_sni);
            }
            self.tls = Some(tls);
        }
        for (i, host) in good.hosts.iter().enumerate() {
            let shown = host.as_deref().map(|h| self.shown_name("http_host", h));
            let Some(summary) = self.http.get_mut(i) else {
                break;
            };
            if summary.host != shown {
                let old = std::mem::replace(&mut summary.host, shown);
                self.alternate("http_host", old.as_deref(), |c| &mut c.alternate_hosts);
            }
        }
        if let Some(target) = &good.connect {
            let shown = self.shown_name("http_connect", target);
            if self.connect.as_ref() != Some(&shown) {
                let old = self.connect.replace(shown);
                self.alternate("http_connect", old.as_deref(), |c| &mut c.alternate_connect);
            }
        }
    }

    /// Adds `name` (redacted if it carries a credential, seen at `place`) to one list of
    /// alternate names.
    fn alternate(
        &mut self,
        place: &'static str,
        name: Option<&str>,
        list: fn(&mut StreamConflicts) -> &mut Vec<String>,
    ) {
        let Some(name) = name else {
            return;
        };
        let shown = self.shown_name(place, name);
        let list = list(self.conflicts.get_or_insert_with(Box::default));
        if list.len() < MAX_ALTERNATES && !list.contains(&shown) {
            list.push(shown);
        }
    }
}

/// Hands a DNS message to the name book, with any credential in its names redacted (the book's
/// names end up in reports). Copies the message only when it carries one.
fn emit_dns(msg: &DnsMessage, on_event: &mut impl FnMut(AppEvent<'_>)) {
    let names = msg
        .questions
        .iter()
        .map(|q| &q.name)
        .chain(msg.answers.iter().map(|a| &a.name))
        .chain(msg.answers.iter().filter_map(|a| match &a.data {
            DnsData::Cname(target) => Some(target),
            _ => None,
        }));
    let dirty = names.into_iter().any(|n| secrets::dns_name_has_secret(n));
    if !dirty {
        on_event(AppEvent::Dns(msg));
        return;
    }
    let shown = |n: &str| secrets::scan_dns_name(n).1;
    let mut clean = msg.clone();
    for q in &mut clean.questions {
        q.name = shown(&q.name);
    }
    for a in &mut clean.answers {
        a.name = shown(&a.name);
        if let DnsData::Cname(target) = &mut a.data {
            *target = shown(target);
        }
    }
    on_event(AppEvent::Dns(&clean));
}

fn summary(hello: &ClientHello, quic: bool) -> TlsSummary {
    TlsSummary {
        sni: hello.sni.clone(),
        alpn: hello.alpn.clone(),
        ech: hello.ech,
        quic,
        ja4: Some(hello.ja4.clone()),
        // Drafts of TLS 1.3 (0x7fxx) count as 1.3, not as a version above it.
        max_version: hello
            .supported_versions
            .iter()
            .map(|&v| if v >> 8 == 0x7f { 0x0304 } else { v })
            .max()
            .or(Some(hello.legacy_version)),
        server_alert: None,
        incomplete: false,
    }
}

/// Ports whose payload is DNS wire format, over UDP or TCP (with its two-byte length prefix):
/// DNS (53, RFC 1035), mDNS (5353, RFC 6762), LLMNR (5355, RFC 4795) and NetBIOS name service
/// (137, RFC 1002), as Zeek's DNS analyzer registers them.
fn is_dns_port(port: u16) -> bool {
    matches!(port, 53 | 5353 | 5355 | 137)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "f1037f690e1c05405b0a71b8fc1df3d453b1bcad";
    const PORTS: (u16, u16) = (40000, 80);

    fn feed(app: &mut AppState, offset: u64, payload: &[u8], bad_checksum: bool) {
        let seg = TcpData {
            dir: 0,
            offset,
            payload,
            bad_checksum,
        };
        app.tcp(seg, 1, PORTS, &mut |_| {});
    }

    #[test]
    fn a_key_split_over_three_segments_is_found_once() {
        let text = format!("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 45\r\n\r\nkey={KEY}\n");
        let bytes = text.as_bytes();
        let mut app = AppState::default();
        let (a, b) = (bytes.len() - 30, bytes.len() - 10);
        feed(&mut app, 0, &bytes[..a], false);
        feed(&mut app, a as u64, &bytes[a..b], false);
        feed(&mut app, b as u64, &bytes[b..], false);
        // A retransmission changes nothing.
        feed(&mut app, a as u64, &bytes[a..b], false);
        assert_eq!(app.secrets.len(), 1);
        assert_eq!(app.secrets[0].redacted, secrets::redact(KEY));
    }

    #[test]
    fn a_key_in_a_dns_query_is_reported_and_never_handed_on() {
        let mut msg = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 40];
        msg.extend_from_slice(KEY.as_bytes());
        msg.extend_from_slice(b"\x03lic\x07example\x00\x00\x01\x00\x01");
        let mut app = AppState::default();
        let mut seen = Vec::new();
        app.udp(0, &msg, 7, (53000, 53), &mut |AppEvent::Dns(m)| {
            seen.push(m.questions[0].name.clone())
        });
        let name = format!("{}.lic.example", secrets::redact(KEY));
        assert_eq!(
            app.dns.as_ref().map(|d| d.names.clone()),
            Some(vec![name.clone()])
        );
        assert_eq!(seen, [name]);
        assert_eq!(app.dns.as_ref().map(|d| d.longest_label), Some(40));
        assert_eq!(app.secrets[0].kind, "license_key");
        assert_eq!(app.secrets[0].ts_nanos, 7);
    }

    #[test]
    fn a_good_copy_of_request_headers_takes_over_and_the_bad_host_is_an_alternate() {
        let bad = b"GET / HTTP/1.1\r\nHost: good.example\r\n\r\n";
        let good = b"GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n";
        let mut app = AppState::default();
        feed(&mut app, 0, bad, true);
        assert_eq!(app.http[0].host.as_deref(), Some("good.example"));
        feed(&mut app, 0, good, false);
        assert_eq!(app.http[0].host.as_deref(), Some("evil.example"));
        let c = app.stream_conflicts().expect("a conflict");
        assert_eq!(c.alternate_hosts, ["good.example"]);
        assert_eq!(
            (c.count, c.conflicts[0].offset, c.conflicts[0].len),
            (1, 22, 4)
        );
        assert!(c.conflicts[0].first_bad_checksum && !c.conflicts[0].second_bad_checksum);
        // The same good copy again is no new conflict.
        feed(&mut app, 0, good, false);
        assert_eq!(app.stream_conflicts().map(|c| c.count), Some(1));
    }

    #[test]
    fn a_bad_checksum_copy_alone_is_read() {
        let mut app = AppState::default();
        feed(
            &mut app,
            0,
            b"GET / HTTP/1.1\r\nHost: only.example\r\n\r\n",
            true,
        );
        assert_eq!(app.http[0].host.as_deref(), Some("only.example"));
        assert!(app.stream_conflicts().is_none());
    }
}
