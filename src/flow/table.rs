//! The flow table: the only owner of flow state.
//!
//! Flows are keyed direction-free and kept in a map ordered by last activity, so expiry and
//! eviction pop from the front without scanning. A flow ends on close (after a short linger for
//! trailing ACKs), on inactivity (Zeek's timeouts: 5 min TCP, 1 min UDP and ICMP), at the end of
//! the capture, or by eviction when the table reaches its cap; evictions are counted so the audit
//! can say it is incomplete.

use std::net::IpAddr;

use hashlink::LinkedHashMap;
use serde::{Deserialize, Serialize};

use crate::decode::{tcp_flags, Checksum, Packet, Transport as L4};
use crate::flow::app::{AppEvent, AppState, TcpData};
use crate::flow::record::{ConnState, EndReason, FlowRecord, MinuteSlice, Transport};
use crate::flow::tcp::TcpConn;
use crate::names::NameSource;
use crate::names::{self, NameBook};
use crate::units::NANOS;

/// Flow-table settings (all times in packet time).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct FlowConfig {
    /// Idle time after which a TCP connection is considered over (Zeek: 300 s).
    pub tcp_inactivity_secs: u64,
    /// Idle time for UDP "connections" (Zeek: 60 s).
    pub udp_inactivity_secs: u64,
    /// Idle time for ICMP and other IP protocols (Zeek: 60 s).
    pub icmp_inactivity_secs: u64,
    /// How long a closed TCP connection is kept for trailing packets (Zeek: 5 s).
    pub close_linger_secs: u64,
    /// Flows held at once; past it the longest-idle flow is evicted and counted.
    pub max_flows: usize,
    /// How long past its TTL a DNS answer still names a flow (`[dns] answer_slack_seconds`).
    #[serde(default = "default_answer_slack_secs")]
    pub dns_answer_slack_secs: u64,
    /// Zeek's `tcp_attempt_delay` (init-bare.zeek: 5 secs): a connection whose originator's SYN
    /// has no answer this long after it ends as an attempt (S0), and a later exchange on the same
    /// tuple is a new connection (TCPSessionAdapter::AttemptTimer). 0 disables it, as in Zeek.
    #[serde(default = "default_tcp_attempt_delay_secs")]
    pub tcp_attempt_delay_secs: u64,
    /// Zeek's `dns_session_timeout` (init-bare.zeek: 10 sec): a UDP flow to a DNS port ends when
    /// the DNS analyzer's timer finds it idle (DNS.cc `DNS_Analyzer::ExpireTimer`). 0 disables it.
    #[serde(default = "default_dns_session_timeout_secs")]
    pub dns_session_timeout_secs: u64,
}

fn default_answer_slack_secs() -> u64 {
    names::DEFAULT_ANSWER_SLACK_SECS
}

fn default_tcp_attempt_delay_secs() -> u64 {
    5
}

fn default_dns_session_timeout_secs() -> u64 {
    10
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            tcp_inactivity_secs: 300,
            udp_inactivity_secs: 60,
            icmp_inactivity_secs: 60,
            close_linger_secs: 5,
            max_flows: 1_000_000,
            dns_answer_slack_secs: names::DEFAULT_ANSWER_SLACK_SECS,
            tcp_attempt_delay_secs: default_tcp_attempt_delay_secs(),
            dns_session_timeout_secs: default_dns_session_timeout_secs(),
        }
    }
}

/// Counters kept by the table.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FlowStats {
    pub flows: u64,
    pub tcp_flows: u64,
    pub udp_flows: u64,
    pub other_flows: u64,
    pub midstream_flows: u64,
    pub timed_out: u64,
    /// Flows pushed out by the memory cap (the audit is incomplete when non-zero).
    pub evicted: u64,
    pub max_concurrent: u64,
    /// Packets of ICMP error messages (they quote another packet; counted as ICMP flows).
    pub icmp_errors: u64,
}

/// Direction-free key: the lower endpoint first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    proto: u8,
    lo: (IpAddr, u16),
    hi: (IpAddr, u16),
}

impl FlowKey {
    fn new(proto: u8, a: (IpAddr, u16), b: (IpAddr, u16)) -> Self {
        if a <= b {
            FlowKey {
                proto,
                lo: a,
                hi: b,
            }
        } else {
            FlowKey {
                proto,
                lo: b,
                hi: a,
            }
        }
    }
}

struct Flow {
    seq_no: u64,
    first_ts: i64,
    last_ts: i64,
    /// Time of the flow's latest packet, even one after the close that does not lengthen it:
    /// the map is ordered by this, which `changed_since` relies on.
    last_packet_ts: i64,
    orig: (IpAddr, u16),
    resp: (IpAddr, u16),
    ip_proto: u8,
    proto: Transport,
    vlan: Option<u16>,
    pkts: [u64; 2],
    ip_bytes: [u64; 2],
    /// Packets whose IPv4 header or transport checksum did not hold.
    bad_checksums: [u64; 2],
    /// Highest TTL / hop limit seen (a multicast flow sent only with 1 never leaves the link).
    max_ttl: [u8; 2],
    /// UDP/ICMP payload bytes (TCP uses sequence spans).
    payload: [u64; 2],
    tcp: Option<Box<TcpConn>>,
    midstream: bool,
    /// Time of the originator's SYN that began the connection (arms Zeek's attempt timer).
    syn_ts: Option<i64>,
    closed_at: Option<i64>,
    minutes: Vec<MinuteSlice>,
    /// Acknowledged-but-unseen bytes counted so far per direction, so the segments they are
    /// estimated to have needed add up over the flow rather than being rounded up per ACK.
    missed_counted: [u64; 2],
    udp_history: String,
    app: AppState,
    /// DNS answers for the responder's address seen before the flow began (naming evidence).
    dns_evidence: Vec<crate::names::NameEvidence>,
    icmp_type_code: Option<(u8, u8)>,
}

impl Flow {
    fn timeout(&self, config: &FlowConfig) -> i64 {
        let secs = match (self.proto, self.closed_at) {
            (Transport::Tcp, Some(_)) => config.close_linger_secs,
            (Transport::Tcp, None) => config.tcp_inactivity_secs,
            (Transport::Udp, _) => config.udp_inactivity_secs,
            _ => config.icmp_inactivity_secs,
        };
        secs as i64 * NANOS
    }

    fn expired(&self, now: i64, config: &FlowConfig) -> bool {
        let since = match self.closed_at {
            Some(t) => t,
            None => self.last_ts,
        };
        now.saturating_sub(since) >= self.timeout(config)
            || self.attempt_over(now, config)
            || self.dns_session_over(now, config)
    }

    /// TCPSessionAdapter::AttemptTimer: `tcp_attempt_delay` after the originator's SYN, a
    /// connection whose originator is still in SYN_SENT (or SYN_ACK_SENT) and whose responder
    /// never sent anything is removed.
    fn attempt_over(&self, now: i64, config: &FlowConfig) -> bool {
        use crate::flow::tcp::EndpointState::{Inactive, SynAckSent, SynSent};
        let (Some(tcp), Some(syn_ts)) = (&self.tcp, self.syn_ts) else {
            return false;
        };
        config.tcp_attempt_delay_secs > 0
            && now >= syn_ts.saturating_add(config.tcp_attempt_delay_secs as i64 * NANOS)
            && matches!(tcp.ep[0].state, SynSent | SynAckSent)
            && tcp.ep[1].state == Inactive
    }

    /// DNS_Analyzer::ExpireTimer on UDP: first armed `dns_session_timeout` after the flow began;
    /// when it fires at `t` it removes the flow if `t - last >= dns_session_timeout - 1 s`, and
    /// otherwise re-arms at `t + dns_session_timeout`.
    fn dns_session_over(&self, now: i64, config: &FlowConfig) -> bool {
        if self.proto != Transport::Udp
            || config.dns_session_timeout_secs == 0
            || !dns_udp_port(self.resp.1)
        {
            return false;
        }
        let period = config.dns_session_timeout_secs as i64 * NANOS;
        let first = self.first_ts.saturating_add(period);
        let wanted = self.last_ts.saturating_add(period - NANOS);
        let fires = if wanted <= first {
            first
        } else {
            let periods =
                (wanted - first).div_euclid(period) + i64::from((wanted - first) % period != 0);
            first.saturating_add(periods.saturating_mul(period))
        };
        now >= fires
    }

    fn account(&mut self, ts: i64, dir: usize, ip_bytes: u32, payload_new: u64, peer_new: u64) {
        self.last_packet_ts = self.last_packet_ts.max(ts);
        // As Zeek: packets after the close still count, but do not lengthen the connection.
        if self.closed_at.is_none_or(|closed| ts <= closed) {
            self.last_ts = self.last_ts.max(ts);
        }
        self.pkts[dir] += 1;
        self.ip_bytes[dir] += ip_bytes as u64;
        let slot = self.minute_mut(ts);
        if dir == 0 {
            slot.orig_pkts += 1;
            slot.orig_ip_bytes += ip_bytes as u64;
            slot.orig_bytes += payload_new;
            slot.resp_bytes += peer_new;
        } else {
            slot.resp_pkts += 1;
            slot.resp_ip_bytes += ip_bytes as u64;
            slot.resp_bytes += payload_new;
            slot.orig_bytes += peer_new;
        }
    }

    /// The slice of the minute `ts` falls in, created if new.
    fn minute_mut(&mut self, ts: i64) -> &mut MinuteSlice {
        let start = crate::units::minute_start_secs(ts);
        // Packets are time-ordered per file; out-of-order stragglers join their own minute.
        let pos = match self.minutes.iter().rposition(|m| m.start == start) {
            Some(pos) => pos,
            None => {
                self.minutes.push(MinuteSlice {
                    start,
                    ..MinuteSlice::default()
                });
                self.minutes.sort_by_key(|m| m.start);
                self.minutes
                    .iter()
                    .position(|m| m.start == start)
                    .unwrap_or(0)
            }
        };
        &mut self.minutes[pos]
    }

    /// Counts `missed` payload bytes of `sender` that an ACK at `ts` showed were received though
    /// the capture never held them. They were sent, so VOLUME must see them: their payload is
    /// already in the slices (sequence space), and their IP bytes are estimated as the segments
    /// they needed at `mss` (from the SYN, else the usual Ethernet MSS), each with a bare IP and
    /// TCP header; over the flow, `ceil(missed / mss)` segments in all. Zeek's flow totals (`orig_ip_bytes`, ...) stay measured values only.
    fn account_missed(&mut self, ts: i64, sender: usize, missed: u64, mss: Option<u16>) {
        if missed == 0 {
            return;
        }
        let (default_mss, headers) = match self.orig.0 {
            IpAddr::V4(_) => (1460, 40),
            IpAddr::V6(_) => (1440, 60),
        };
        let mss = u64::from(mss.filter(|&m| m > 0).unwrap_or(default_mss));
        let before = self.missed_counted[sender];
        self.missed_counted[sender] += missed;
        let segments = self.missed_counted[sender].div_ceil(mss) - before.div_ceil(mss);
        let ip_bytes = missed + segments * headers;
        let slot = self.minute_mut(ts);
        if sender == 0 {
            slot.orig_missed_bytes += missed;
            slot.orig_missed_ip_bytes += ip_bytes;
            slot.orig_ip_bytes += ip_bytes;
        } else {
            slot.resp_missed_bytes += missed;
            slot.resp_missed_ip_bytes += ip_bytes;
            slot.resp_ip_bytes += ip_bytes;
        }
    }
}

/// The table of live flows.
pub struct FlowTable {
    flows: LinkedHashMap<FlowKey, Flow>,
    config: FlowConfig,
    names: NameBook,
    stats: FlowStats,
    created: u64,
    last_sweep: i64,
}

/// Zeek's `likely_server_ports` (init-bare.zeek), as its default scripts fill it: every port an
/// analyzer registers as a server port through `Analyzer::register_for_ports` (frameworks/analyzer/
/// main.zeek: `likely_server_ports += server_ports`) or `PacketAnalyzer::register_for_ports`
/// (packet-protocols/main.zeek), per transport. From zeek/zeek scripts/base: protocols/dce-rpc
/// (135/tcp), dhcp (67/udp, 4011/udp; 68/udp is registered as a client port, not a server one),
/// dnp3 (20000/tcp+udp), dns (53/udp+tcp, 137/udp, 5353/udp, 5355/udp), finger (79/tcp), ftp
/// (21/tcp, 2811/tcp), http (80, 81, 631, 1080, 3128, 8000, 8080, 8888/tcp), imap (143/tcp),
/// irc (6666-6669/tcp), krb (88/tcp+udp), ldap (389/tcp+udp, 3268/tcp), modbus (502/tcp), mqtt
/// (1883/tcp), mysql (1434/tcp, 3306/tcp), ntp (123/udp), postgresql (5432/tcp), quic (443/udp;
/// DNS-over-QUIC 853/784 deliberately not), radius (1812/udp), rdp (3389/tcp+udp), redis
/// (6379/tcp), sip (5060/udp), smb (139/tcp, 445/tcp), smtp (25/tcp, 587/tcp), snmp (161/udp,
/// 162/udp), socks (1080/tcp), ssh (22/tcp), ssl (443, 465, 563, 585, 614, 636, 989, 990, 992,
/// 993, 995, 5223/tcp; DTLS 443/udp), syslog (514/udp+tcp), xmpp (5222/tcp, 5269/tcp); and
/// packet-protocols ayiya (5072/udp), geneve (6081/udp), gre (4754/udp), gtpv1 (2152/udp,
/// 2123/udp), teredo (3544/udp), vxlan (4789/udp).
fn likely_server_port(port: u16, proto: Transport) -> bool {
    match proto {
        Transport::Tcp => matches!(
            port,
            21 | 22
                | 25
                | 53
                | 79
                | 80
                | 81
                | 88
                | 135
                | 139
                | 143
                | 389
                | 443
                | 445
                | 465
                | 502
                | 514
                | 563
                | 585
                | 587
                | 614
                | 631
                | 636
                | 989
                | 990
                | 992
                | 993
                | 995
                | 1080
                | 1434
                | 1883
                | 2811
                | 3128
                | 3268
                | 3306
                | 3389
                | 5222
                | 5223
                | 5269
                | 5432
                | 6379
                | 6666..=6669 | 8000 | 8080 | 8888 | 20000
        ),
        Transport::Udp => matches!(
            port,
            53 | 67
                | 88
                | 123
                | 137
                | 161
                | 162
                | 389
                | 443
                | 514
                | 1812
                | 2123
                | 2152
                | 3389
                | 3544
                | 4011
                | 4754
                | 4789
                | 5060
                | 5072
                | 5353
                | 5355
                | 6081
                | 20000
        ),
        _ => false,
    }
}

/// Whether Zeek makes the receiver of a connection's first TCP packet its originator
/// (packet_analysis/protocol/tcp/TCP.cc `TCPAnalyzer::WantConnection`): never for a SYN; for a
/// SYN-ACK or a mid-stream packet, when the source port is a likely server port and the
/// destination's is not; when both are, only for a non-SYN packet whose source port is the lower.
fn tcp_flip(flags: u8, sport: u16, dport: u16) -> bool {
    let syn = flags & tcp_flags::SYN != 0;
    let ack = flags & tcp_flags::ACK != 0;
    if syn && !ack || !likely_server_port(sport, Transport::Tcp) {
        return false;
    }
    if likely_server_port(dport, Transport::Tcp) {
        !syn && sport < dport
    } else {
        true
    }
}

/// UDP ports Zeek's DNS analyzer is registered for (protocols/dns/main.zeek `DNS::ports`): its
/// flows end after `dns_session_timeout` rather than the UDP inactivity timeout.
fn dns_udp_port(port: u16) -> bool {
    matches!(port, 53 | 137 | 5353 | 5355)
}

impl FlowTable {
    /// An empty table.
    pub fn new(config: FlowConfig, mut names: NameBook) -> Self {
        names.set_answer_slack_secs(config.dns_answer_slack_secs);
        FlowTable {
            flows: LinkedHashMap::new(),
            config,
            names,
            stats: FlowStats::default(),
            created: 0,
            last_sweep: i64::MIN,
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &FlowStats {
        &self.stats
    }

    /// Flows currently held.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// True when no flow is held.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Adds one packet; finished flows are passed to `out`.
    pub fn process(&mut self, pkt: &Packet<'_>, out: &mut impl FnMut(FlowRecord)) {
        let now = pkt.ts_nanos;
        if now.saturating_sub(self.last_sweep) >= NANOS {
            self.sweep(now, out);
        }
        let (proto, sport, dport) = match pkt.transport {
            L4::Tcp(seg) => (Transport::Tcp, seg.src_port, seg.dst_port),
            L4::Udp {
                src_port, dst_port, ..
            } => (Transport::Udp, src_port, dst_port),
            L4::Icmp {
                icmp_type,
                ident,
                error,
                v6,
                ..
            } => {
                if error {
                    self.stats.icmp_errors += 1;
                }
                // Echo request and reply share the identifier; other messages pair by type class.
                let class = icmp_class(icmp_type, v6);
                (Transport::Icmp, class, ident)
            }
            L4::Other { .. } => (Transport::Other, 0, 0),
        };
        let src = (pkt.src, sport);
        let dst = (
            pkt.dst,
            if proto == Transport::Icmp {
                sport
            } else {
                dport
            },
        );
        let src = if proto == Transport::Icmp {
            (pkt.src, dport)
        } else {
            src
        };
        let dst = if proto == Transport::Icmp {
            (pkt.dst, dport)
        } else {
            dst
        };
        let key = FlowKey::new(pkt.ip_proto, src, dst);

        // A flow past its timeout, or a closed TCP flow seeing a new SYN, ends before this packet.
        if let Some(flow) = self.flows.get(&key) {
            let new_syn = matches!(pkt.transport, L4::Tcp(s) if s.flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN);
            let reason = if flow.expired(now, &self.config) {
                Some(if flow.closed_at.is_some() {
                    EndReason::Closed
                } else {
                    EndReason::Timeout
                })
            } else if flow.closed_at.is_some() && new_syn {
                Some(EndReason::Closed)
            } else {
                None
            };
            if let Some(reason) = reason {
                if let Some(flow) = self.flows.remove(&key) {
                    if reason == EndReason::Timeout {
                        self.stats.timed_out += 1;
                    }
                    out(self.record(flow, reason));
                }
            }
        }

        if !self.flows.contains_key(&key) {
            if self.flows.len() >= self.config.max_flows {
                if let Some((_, oldest)) = self.flows.pop_front() {
                    self.stats.evicted += 1;
                    out(self.record(oldest, EndReason::Evicted));
                }
            }
            let flow = self.new_flow(pkt, proto, src, dst);
            self.flows.insert(key, flow);
            self.stats.max_concurrent = self.stats.max_concurrent.max(self.flows.len() as u64);
        } else {
            self.flows.to_back(&key);
        }

        let Some(flow) = self.flows.get_mut(&key) else {
            return;
        };
        let dir = usize::from(flow.orig != src);
        flow.max_ttl[dir] = flow.max_ttl[dir].max(pkt.ttl);
        if pkt.checksum == Checksum::Bad {
            flow.bad_checksums[dir] += 1;
        }
        let names = &mut self.names;
        // The answer's client is the DNS flow's originator (the response's destination); its
        // uid is computed only when an answer arrives, from copies, as the flow is borrowed below.
        let id = UidParts::of(flow);
        let mut on_event = |event: AppEvent<'_>| match event {
            AppEvent::Dns(msg) => {
                let uid = id.uid();
                let client = names::DnsClient {
                    addr: id.orig.0,
                    uid: &uid,
                };
                names.observe_dns(msg, now, client);
            }
        };
        match pkt.transport {
            L4::Tcp(seg) => {
                let tcp = flow
                    .tcp
                    .get_or_insert_with(|| Box::new(TcpConn::new(false)));
                // The snaplen cut this segment's payload: Zeek keeps it out of the reassembler.
                let cut = pkt.truncated && (seg.payload.len() as u32) < seg.wire_payload_len;
                let effect = tcp.segment_captured(dir, &seg, cut);
                let mss = tcp.segment_size(1 - dir);
                if effect.closed && flow.closed_at.is_none() {
                    flow.closed_at = Some(now);
                }
                flow.account(now, dir, pkt.ip_bytes, effect.sender_new, effect.peer_new);
                flow.account_missed(now, 1 - dir, effect.peer_missed, mss);
                if let Some(offset) = effect.stream_offset {
                    let ports = (flow.orig.1, flow.resp.1);
                    let data = TcpData {
                        dir,
                        offset,
                        payload: seg.payload,
                        bad_checksum: pkt.checksum == Checksum::Bad,
                    };
                    flow.app.tcp(data, now, ports, &mut on_event);
                }
            }
            L4::Udp {
                payload,
                wire_payload_len,
                ..
            } => {
                flow.payload[dir] += wire_payload_len as u64;
                let letter = if dir == 0 { 'D' } else { 'd' };
                if wire_payload_len > 0 && !flow.udp_history.contains(letter) {
                    flow.udp_history.push(letter);
                }
                flow.account(now, dir, pkt.ip_bytes, wire_payload_len as u64, 0);
                let ports = (flow.orig.1, flow.resp.1);
                flow.app.udp(dir, payload, now, ports, &mut on_event);
            }
            L4::Icmp {
                wire_payload_len, ..
            }
            | L4::Other { wire_payload_len } => {
                let payload = u64::from(wire_payload_len);
                flow.payload[dir] += payload;
                flow.account(now, dir, pkt.ip_bytes, payload, 0);
            }
        }
    }

    fn new_flow(
        &mut self,
        pkt: &Packet<'_>,
        proto: Transport,
        src: (IpAddr, u16),
        dst: (IpAddr, u16),
    ) -> Flow {
        // Choose the originator as Zeek does: the SYN sender; otherwise by Zeek's likely
        // server ports (TCP.cc and UDP.cc `WantConnection`). Zeek never flips toward a
        // limited-broadcast responder (IPBasedAnalyzer::NewConn: `flip && !
        // conn->RespAddr().IsBroadcast()`), so a DHCP answer to 255.255.255.255:68 stays as seen.
        let broadcast = pkt.dst == IpAddr::V4(std::net::Ipv4Addr::BROADCAST);
        let (flip, midstream) = match pkt.transport {
            L4::Tcp(seg) => {
                let syn = seg.flags & tcp_flags::SYN != 0;
                let ack = seg.flags & tcp_flags::ACK != 0;
                (
                    tcp_flip(seg.flags, seg.src_port, seg.dst_port) && !broadcast,
                    !syn || ack,
                )
            }
            L4::Udp {
                src_port, dst_port, ..
            } => (
                likely_server_port(src_port, Transport::Udp)
                    && !likely_server_port(dst_port, Transport::Udp)
                    && !broadcast,
                false,
            ),
            L4::Icmp { icmp_type, v6, .. } => (is_icmp_reply(icmp_type, v6), false),
            L4::Other { .. } => (false, false),
        };
        let (orig, resp) = if flip { (dst, src) } else { (src, dst) };
        self.created += 1;
        self.stats.flows += 1;
        match proto {
            Transport::Tcp => self.stats.tcp_flows += 1,
            Transport::Udp => self.stats.udp_flows += 1,
            _ => self.stats.other_flows += 1,
        }
        if midstream {
            self.stats.midstream_flows += 1;
        }
        let icmp_type_code = match pkt.transport {
            L4::Icmp {
                icmp_type, code, ..
            } => Some((icmp_type, code)),
            _ => None,
        };
        Flow {
            seq_no: self.created,
            first_ts: pkt.ts_nanos,
            last_ts: pkt.ts_nanos,
            last_packet_ts: pkt.ts_nanos,
            orig,
            resp,
            ip_proto: pkt.ip_proto,
            proto,
            vlan: pkt.vlan,
            pkts: [0; 2],
            ip_bytes: [0; 2],
            bad_checksums: [0; 2],
            max_ttl: [0; 2],
            payload: [0; 2],
            tcp: (proto == Transport::Tcp).then(|| Box::new(TcpConn::new(flip))),
            midstream,
            syn_ts: matches!(pkt.transport, L4::Tcp(seg) if !flip && seg.flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN)
                .then_some(pkt.ts_nanos),
            closed_at: None,
            minutes: Vec::new(),
            missed_counted: [0; 2],
            // Connection::FlipRoles adds '^' to any connection's history (Conn.cc).
            udp_history: if flip && proto == Transport::Udp {
                "^".to_string()
            } else {
                String::new()
            },
            app: AppState::default(),
            dns_evidence: self.names.dns_evidence(resp.0, pkt.ts_nanos),
            icmp_type_code,
        }
    }

    /// Ends flows idle past their timeout at packet time `now`.
    pub fn sweep(&mut self, now: i64, out: &mut impl FnMut(FlowRecord)) {
        self.last_sweep = now;
        while let Some((_, front)) = self.flows.front() {
            if !front.expired(now, &self.config) {
                break;
            }
            let Some((_, flow)) = self.flows.pop_front() else {
                break;
            };
            self.end_expired(flow, out);
        }
        // Closed flows linger only seconds but may sit behind a long-idle flow: look a little
        // further so they are not held for the full TCP timeout.
        let done: Vec<FlowKey> = self
            .flows
            .iter()
            .take(64)
            .filter(|(_, f)| f.expired(now, &self.config))
            .map(|(k, _)| *k)
            .collect();
        for key in done {
            if let Some(flow) = self.flows.remove(&key) {
                self.end_expired(flow, out);
            }
        }
    }

    /// Ends every remaining flow (end of capture).
    pub fn finish(&mut self, out: &mut impl FnMut(FlowRecord)) {
        while let Some((_, flow)) = self.flows.pop_front() {
            let reason = if flow.closed_at.is_some() {
                EndReason::Closed
            } else {
                EndReason::EndOfCapture
            };
            out(self.record(flow, reason));
        }
    }

    /// Snapshots of open flows that were active in minutes that ended at or before `now`
    /// (interim records for long flows: nothing waits for a flow's end to be counted).
    pub fn interim(&self, now: i64) -> Vec<FlowRecord> {
        let minute = crate::units::minute_start_secs(now);
        self.flows
            .values()
            .filter(|f| f.minutes.first().is_some_and(|m| m.start < minute))
            .map(|f| self.snapshot(f, EndReason::EndOfCapture))
            .collect()
    }

    /// Snapshots of open flows that had a packet at or after `since`, most recent first. The map
    /// is kept in packet-arrival order, so this walks only the flows that changed.
    pub fn changed_since(&self, since: i64) -> Vec<FlowRecord> {
        self.flows
            .iter()
            .rev()
            .take_while(|(_, f)| f.last_packet_ts >= since)
            .map(|(_, f)| self.snapshot(f, EndReason::EndOfCapture))
            .collect()
    }

    fn snapshot(&self, flow: &Flow, reason: EndReason) -> FlowRecord {
        let (orig_bytes, resp_bytes, missed, history, conn_state) = match &flow.tcp {
            Some(tcp) => (
                tcp.ep[0].span,
                tcp.ep[1].span,
                tcp.ep[0].missed() + tcp.ep[1].missed(),
                tcp.history().to_string(),
                tcp.conn_state(),
            ),
            None => {
                let state = match (flow.proto, flow.pkts[0] > 0, flow.pkts[1] > 0) {
                    (Transport::Udp, true, true) => ConnState::SF,
                    (Transport::Udp, true, false) => ConnState::S0,
                    (Transport::Udp, false, true) => ConnState::SHR,
                    _ => ConnState::OTH,
                };
                (
                    flow.payload[0],
                    flow.payload[1],
                    0,
                    flow.udp_history.clone(),
                    state,
                )
            }
        };
        let app = &flow.app;
        let name = self.flow_name(flow);
        let (orig_p, resp_p) = match flow.icmp_type_code {
            // Zeek logs ICMP type and code in the port columns.
            Some((ty, code)) => (ty as u16, code as u16),
            None => (flow.orig.1, flow.resp.1),
        };
        FlowRecord {
            uid: UidParts::of(flow).uid(),
            ts_nanos: flow.first_ts,
            last_ts_nanos: flow.last_ts,
            proto: flow.proto,
            ip_proto: flow.ip_proto,
            orig_h: flow.orig.0,
            orig_p,
            resp_h: flow.resp.0,
            resp_p,
            service: app.service(),
            orig_bytes,
            resp_bytes,
            conn_state,
            missed_bytes: missed,
            unacked_missed_bytes: flow
                .tcp
                .as_ref()
                .map_or(0, |t| t.ep[0].unacked_missed() + t.ep[1].unacked_missed()),
            history,
            orig_pkts: flow.pkts[0],
            orig_ip_bytes: flow.ip_bytes[0],
            resp_pkts: flow.pkts[1],
            resp_ip_bytes: flow.ip_bytes[1],
            orig_max_ttl: flow.max_ttl[0],
            orig_bad_checksums: flow.bad_checksums[0],
            resp_bad_checksums: flow.bad_checksums[1],
            midstream: flow.midstream,
            vlan: flow.vlan,
            end_reason: reason,
            name,
            tls: app.tls.clone(),
            http: app.http.clone(),
            dns: app.dns.clone(),
            secrets: app.secrets.clone(),
            stream_conflicts: app.stream_conflicts(),
            minutes: flow.minutes.clone(),
        }
    }

    /// The flow's destination name: what the flow said about itself (SNI, CONNECT, Host), graded
    /// by the name book against the DNS answers seen for its address.
    fn flow_name(&self, flow: &Flow) -> Option<crate::names::FlowName> {
        let app = &flow.app;
        let mut evidence = Vec::new();
        if let Some(sni) = app.tls.as_ref().and_then(|t| t.sni.as_deref()) {
            evidence.push(names::flow_evidence(NameSource::TlsSni, sni));
        }
        if let Some(target) = &app.connect {
            evidence.push(names::flow_evidence(NameSource::HttpConnect, target));
        }
        if let Some(host) = app.http.iter().find_map(|h| h.host.as_deref()) {
            if app.connect.is_none() {
                evidence.push(names::flow_evidence(NameSource::HttpHost, host));
            }
        }
        let mut name = self.names.name_flow(names::FlowFacts {
            client: flow.orig.0,
            addr: flow.resp.0,
            start_nanos: flow.first_ts,
            end_nanos: flow.last_ts,
            carried: evidence,
            dns: flow.dns_evidence.clone(),
            ech: app.tls.as_ref().is_some_and(|t| t.ech),
        });
        if app.quic_seen && app.tls.is_none() {
            if let Some(n) = name.as_mut() {
                n.caveats
                    .push("QUIC: the ClientHello could not be read, so no SNI".into());
            }
        }
        name
    }

    /// Ends a flow found past its timeout: closed (its linger ran out) or timed out (counted).
    fn end_expired(&mut self, flow: Flow, out: &mut impl FnMut(FlowRecord)) {
        let reason = if flow.closed_at.is_some() {
            EndReason::Closed
        } else {
            self.stats.timed_out += 1;
            EndReason::Timeout
        };
        out(self.record(flow, reason));
    }

    fn record(&self, flow: Flow, reason: EndReason) -> FlowRecord {
        self.snapshot(&flow, reason)
    }

    /// What the name book learnt (for reports).
    pub fn names(&self) -> &NameBook {
        &self.names
    }
}

fn icmp_class(icmp_type: u8, v6: bool) -> u16 {
    // Pair requests with their replies so both directions land in one flow.
    let t = match (v6, icmp_type) {
        (false, 0) => 8,
        (false, 14) => 13,
        (false, 16) => 15,
        (false, 18) => 17,
        (true, 129) => 128,
        (_, t) => t,
    };
    t as u16
}

fn is_icmp_reply(icmp_type: u8, v6: bool) -> bool {
    matches!((v6, icmp_type), (false, 0 | 14 | 16 | 18) | (true, 129))
}

/// What a flow's uid is made of: its key, start time and creation order (all `Copy`, so a uid
/// can be made while the flow itself is borrowed).
#[derive(Clone, Copy)]
struct UidParts {
    first_ts: i64,
    seq_no: u64,
    orig: (IpAddr, u16),
    resp: (IpAddr, u16),
    ip_proto: u8,
}

impl UidParts {
    fn of(flow: &Flow) -> Self {
        UidParts {
            first_ts: flow.first_ts,
            seq_no: flow.seq_no,
            orig: flow.orig,
            resp: flow.resp,
            ip_proto: flow.ip_proto,
        }
    }

    /// Zeek-style uid: `C` and 17 base-62 digits, a deterministic function of the flow's key,
    /// start time and creation order, so the same capture always gives the same uids.
    fn uid(&self) -> String {
        // FNV-1a over the identifying fields (no randomness: reproducible evidence ids).
        let mut hash: u128 = 0x6c62272e07bb014262b821756295c58d;
        let prime: u128 = 0x0000000001000000000000000000013B;
        let mut feed = |bytes: &[u8]| {
            for b in bytes {
                hash ^= *b as u128;
                hash = hash.wrapping_mul(prime);
            }
        };
        feed(&self.first_ts.to_le_bytes());
        feed(&self.seq_no.to_le_bytes());
        feed(self.orig.0.to_string().as_bytes());
        feed(&self.orig.1.to_le_bytes());
        feed(self.resp.0.to_string().as_bytes());
        feed(&self.resp.1.to_le_bytes());
        feed(&[self.ip_proto]);
        const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut s = String::with_capacity(18);
        s.push('C');
        for _ in 0..17 {
            s.push(DIGITS[(hash % 62) as usize] as char);
            hash /= 62;
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::TcpSegment;

    fn syn(ts: i64, sport: u16) -> Packet<'static> {
        Packet {
            ts_nanos: ts,
            src: "192.0.2.10".parse().unwrap(),
            dst: "203.0.113.10".parse().unwrap(),
            ip_proto: 6,
            ip_bytes: 60,
            vlan: None,
            truncated: false,
            ttl: 64,
            checksum: crate::decode::Checksum::Good,
            transport: L4::Tcp(TcpSegment {
                src_port: sport,
                dst_port: 443,
                seq: 1000,
                ack: 0,
                flags: tcp_flags::SYN,
                window: 1000,
                payload: &[],
                wire_payload_len: 0,
                mss: None,
            }),
        }
    }

    #[test]
    fn changed_since_returns_exactly_the_flows_with_a_packet_since() {
        // Unanswered SYNs would end after tcp_attempt_delay: keep them all open here.
        let config = FlowConfig {
            tcp_attempt_delay_secs: 0,
            ..FlowConfig::default()
        };
        let mut table = FlowTable::new(config, NameBook::default());
        let mut out = |_rec: FlowRecord| panic!("no flow ends here");
        for (i, port) in (40000..40010).enumerate() {
            table.process(&syn(i as i64 * NANOS, port), &mut out);
        }
        // A new packet on the oldest flow moves it to the active end.
        table.process(&syn(20 * NANOS, 40000), &mut out);
        let changed = table.changed_since(8 * NANOS);
        let mut ports: Vec<u16> = changed.iter().map(|r| r.orig_p).collect();
        ports.sort();
        assert_eq!(ports, [40000, 40008, 40009]);
        assert_eq!(table.changed_since(21 * NANOS).len(), 0);
        assert_eq!(table.changed_since(0).len(), 10);
    }

    /// A bare segment (no payload) from `src` to `dst`, client port 40000, server port 443.
    fn segment(
        ts: i64,
        (src, dst, from_client): (&str, &str, bool),
        (seq, ack, flags): (u32, u32, u8),
        mss: Option<u16>,
    ) -> Packet<'static> {
        let src: IpAddr = src.parse().unwrap();
        let (sport, dport) = if from_client {
            (40000, 443)
        } else {
            (443, 40000)
        };
        Packet {
            ts_nanos: ts,
            src,
            dst: dst.parse().unwrap(),
            ip_proto: 6,
            ip_bytes: if src.is_ipv4() { 40 } else { 60 },
            vlan: None,
            truncated: false,
            ttl: 64,
            checksum: crate::decode::Checksum::Good,
            transport: L4::Tcp(TcpSegment {
                src_port: sport,
                dst_port: dport,
                seq,
                ack,
                flags,
                window: 1000,
                payload: &[],
                wire_payload_len: 0,
                mss,
            }),
        }
    }

    /// The first minute of the flow between `client` and `server` after a handshake (the
    /// server's SYN announcing `mss`) and the server's ACK of 3000 bytes the capture never held,
    /// which comes in the next minute.
    fn acked_unseen(client: &str, server: &str, mss: Option<u16>) -> Vec<MinuteSlice> {
        use tcp_flags::{ACK, SYN};
        let mut table = FlowTable::new(FlowConfig::default(), NameBook::default());
        let mut out = |_rec: FlowRecord| {};
        let up = (client, server, true);
        let down = (server, client, false);
        table.process(&segment(0, up, (100, 0, SYN), None), &mut out);
        table.process(&segment(1, down, (900, 101, SYN | ACK), mss), &mut out);
        table.process(&segment(2, up, (101, 901, ACK), None), &mut out);
        table.process(&segment(60 * NANOS, down, (901, 3101, ACK), None), &mut out);
        let mut records = Vec::new();
        table.finish(&mut |r| records.push(r));
        assert_eq!(records[0].missed_bytes, 3000);
        assert_eq!(records[0].unacked_missed_bytes, 0);
        // Zeek's totals hold the two client packets only; the minutes add the estimate.
        let header = if client.contains(':') { 60 } else { 40 };
        assert_eq!(records[0].orig_ip_bytes, 2 * header);
        let sliced: u64 = records[0].minutes.iter().map(|m| m.orig_ip_bytes).sum();
        let inferred: u64 = records[0]
            .minutes
            .iter()
            .map(|m| m.orig_missed_ip_bytes)
            .sum();
        assert_eq!(sliced - inferred, records[0].orig_ip_bytes);
        records[0].minutes.clone()
    }

    #[test]
    fn acknowledged_unseen_bytes_count_in_the_minute_of_the_ack_at_the_syn_mss() {
        let minutes = acked_unseen("192.0.2.10", "203.0.113.10", Some(1000));
        assert_eq!(minutes.len(), 2);
        let m = minutes[1];
        // 3000 bytes at an MSS of 1000: 3 segments of 40 header bytes.
        assert_eq!((m.orig_bytes, m.orig_missed_bytes), (3000, 3000));
        assert_eq!((m.orig_missed_ip_bytes, m.orig_ip_bytes), (3120, 3120));
        assert_eq!((m.orig_pkts, m.resp_pkts, m.resp_ip_bytes), (0, 1, 40));
        assert_eq!(minutes[0].orig_missed_bytes, 0);
    }

    #[test]
    fn without_an_mss_option_ipv6_segments_are_1440_bytes_with_60_bytes_of_headers() {
        let minutes = acked_unseen("2001:db8::10", "2001:db8:1::443", None);
        // ceil(3000 / 1440) = 3 segments of 60 header bytes.
        assert_eq!(minutes[1].orig_missed_ip_bytes, 3000 + 3 * 60);
        let minutes = acked_unseen("192.0.2.10", "203.0.113.10", None);
        // ceil(3000 / 1460) = 3 segments of 40 header bytes.
        assert_eq!(minutes[1].orig_missed_ip_bytes, 3000 + 3 * 40);
    }

    fn run(config: FlowConfig, packets: &[Packet<'static>]) -> Vec<FlowRecord> {
        let mut table = FlowTable::new(config, NameBook::default());
        let mut records = Vec::new();
        for p in packets {
            table.process(p, &mut |r| records.push(r));
        }
        table.finish(&mut |r| records.push(r));
        records
    }

    #[test]
    fn a_syn_ack_seen_first_from_a_server_port_is_s1_flipped() {
        use tcp_flags::{ACK, SYN};
        let up = ("192.0.2.10", "203.0.113.10", true);
        let down = ("203.0.113.10", "192.0.2.10", false);
        let r = run(
            FlowConfig::default(),
            &[
                segment(0, down, (900, 101, SYN | ACK), None),
                segment(NANOS, up, (101, 901, ACK), None),
            ],
        );
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].orig_p, r[0].resp_p), (40000, 443));
        assert_eq!(
            (r[0].conn_state, r[0].history.as_str()),
            (ConnState::S1, "^hA")
        );
    }

    fn udp(ts: i64, (src, sport): (&str, u16), (dst, dport): (&str, u16)) -> Packet<'static> {
        Packet {
            ts_nanos: ts,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            ip_proto: 17,
            ip_bytes: 28 + 300,
            vlan: None,
            truncated: false,
            ttl: 64,
            checksum: crate::decode::Checksum::Good,
            transport: L4::Udp {
                src_port: sport,
                dst_port: dport,
                payload: &[],
                wire_payload_len: 300,
            },
        }
    }

    #[test]
    fn orientation_follows_zeeks_likely_server_ports() {
        // DHCP: 67 is a server port, 68 a client one. A unicast answer seen first is flipped
        // toward the client ...
        let r = run(
            FlowConfig::default(),
            &[udp(0, ("192.0.2.1", 67), ("192.0.2.50", 68))],
        );
        assert_eq!(
            (r[0].orig_h.to_string(), r[0].orig_p, r[0].resp_p),
            ("192.0.2.50".into(), 68, 67)
        );
        assert_eq!(r[0].history, "^d");
        // ... but never toward a limited-broadcast responder.
        let r = run(
            FlowConfig::default(),
            &[udp(0, ("192.0.2.1", 67), ("255.255.255.255", 68))],
        );
        assert_eq!(
            (r[0].orig_p, r[0].resp_p, r[0].history.as_str()),
            (67, 68, "D")
        );
        // A port below 1024 that no analyzer registers is no server port: 40000 -> 999 stays.
        let r = run(
            FlowConfig::default(),
            &[udp(0, ("192.0.2.1", 999), ("192.0.2.50", 40000))],
        );
        assert_eq!((r[0].orig_p, r[0].resp_p), (999, 40000));
        // TCP mid-stream between two server ports: flipped only when the source is the lower.
        assert!(tcp_flip(tcp_flags::ACK, 80, 443));
        assert!(!tcp_flip(tcp_flags::ACK, 443, 80));
        assert!(!tcp_flip(tcp_flags::SYN | tcp_flags::ACK, 80, 443));
        assert!(tcp_flip(tcp_flags::SYN | tcp_flags::ACK, 443, 40000));
        assert!(!tcp_flip(tcp_flags::SYN, 443, 40000));
    }

    #[test]
    fn an_unanswered_syn_ends_after_the_attempt_delay_and_a_later_exchange_is_new() {
        use tcp_flags::{ACK, SYN};
        let up = ("192.0.2.10", "203.0.113.10", true);
        let down = ("203.0.113.10", "192.0.2.10", false);
        let packets = [
            segment(0, up, (100, 0, SYN), None),
            segment(3 * NANOS, up, (100, 0, SYN), None),
            // Past tcp_attempt_delay (5 s after the first SYN): a new connection.
            segment(6 * NANOS, up, (100, 0, SYN), None),
            segment(6 * NANOS + 1, down, (900, 101, SYN | ACK), None),
            segment(6 * NANOS + 2, up, (101, 901, ACK), None),
        ];
        let r = run(FlowConfig::default(), &packets);
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].conn_state, r[0].orig_pkts), (ConnState::S0, 2));
        assert_eq!(
            (r[1].conn_state, r[1].history.as_str()),
            (ConnState::S1, "ShA")
        );
        // Zeek's default can be changed (0 disables the timer, as in Zeek).
        let config = FlowConfig {
            tcp_attempt_delay_secs: 0,
            ..FlowConfig::default()
        };
        assert_eq!(run(config, &packets).len(), 1);
    }

    #[test]
    fn a_dns_flow_ends_after_the_dns_session_timeout() {
        let q = |ts: i64| udp(ts, ("192.0.2.10", 53000), ("192.0.2.53", 53));
        // The timer fires 10 s after the first packet and ends a flow idle 10 - 1 s by then.
        let r = run(FlowConfig::default(), &[q(0), q(NANOS), q(10 * NANOS + 1)]);
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].orig_pkts, r[1].orig_pkts), (2, 1));
        // Otherwise it re-arms: at 10 s the flow is 8 s idle, at 20 s 1 s idle (the packet at
        // 19 s), at 30 s 10 s idle: the packet at 31 s begins a new flow.
        let packets = [
            q(0),
            q(2 * NANOS),
            q(19 * NANOS),
            q(20 * NANOS),
            q(31 * NANOS),
        ];
        let r = run(FlowConfig::default(), &packets);
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].orig_pkts, r[1].orig_pkts), (4, 1));
        // Another UDP flow keeps the 60 s inactivity timeout.
        let o = |ts: i64| udp(ts, ("192.0.2.10", 53000), ("192.0.2.54", 9999));
        assert_eq!(run(FlowConfig::default(), &[o(0), o(30 * NANOS)]).len(), 1);
        let config = FlowConfig {
            dns_session_timeout_secs: 0,
            ..FlowConfig::default()
        };
        assert_eq!(run(config, &packets).len(), 1);
    }

    /// A DNS response from the resolver 192.0.2.53 to `client`: license.deepgram.com is
    /// 203.0.113.10 for 60 s.
    fn dns_response(ts: i64, client: &str) -> Packet<'static> {
        const WIRE: &[u8] = &[
            0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0,
            0, // header: response, 1 question, 1 answer
            7, b'l', b'i', b'c', b'e', b'n', b's', b'e', 8, b'd', b'e', b'e', b'p', b'g', b'r',
            b'a', b'm', 3, b'c', b'o', b'm', 0, 0, 1, 0, 1, // question A IN
            0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 203, 0, 113, 10, // answer, TTL 60
        ];
        Packet {
            ts_nanos: ts,
            src: "192.0.2.53".parse().unwrap(),
            dst: client.parse().unwrap(),
            ip_proto: 17,
            ip_bytes: 28 + WIRE.len() as u32,
            vlan: None,
            truncated: false,
            ttl: 64,
            checksum: crate::decode::Checksum::Good,
            transport: L4::Udp {
                src_port: 53,
                dst_port: 53000,
                payload: WIRE,
                wire_payload_len: WIRE.len() as u32,
            },
        }
    }

    #[test]
    fn an_answer_names_its_own_clients_flows_resolved_and_others_inferred() {
        let mut table = FlowTable::new(FlowConfig::default(), NameBook::default());
        let mut records = Vec::new();
        // The response reaches the client first (no query seen): the client is still its
        // originator, the side off the DNS port.
        table.process(&dns_response(0, "192.0.2.10"), &mut |r| records.push(r));
        table.process(&syn(NANOS, 40000), &mut |r| records.push(r));
        let mut other = syn(NANOS, 40001);
        other.src = "192.0.2.11".parse().unwrap();
        table.process(&other, &mut |r| records.push(r));
        table.finish(&mut |r| records.push(r));
        let strength = |port: u16, src: &str| {
            let r = records
                .iter()
                .find(|r| r.orig_p == port && r.orig_h.to_string() == src)
                .expect("flow recorded");
            r.name.as_ref().map(|n| (n.name.clone(), n.strength))
        };
        let dns = records.iter().find(|r| r.resp_p == 53).expect("DNS flow");
        assert_eq!(dns.orig_h.to_string(), "192.0.2.10");
        let mine = strength(40000, "192.0.2.10").expect("named");
        assert_eq!(
            mine,
            ("license.deepgram.com".into(), names::Strength::Resolved)
        );
        let theirs = strength(40001, "192.0.2.11").expect("named");
        assert_eq!(theirs.1, names::Strength::Inferred);
        // The answer's evidence names the DNS flow that carried it.
        let rec = records.iter().find(|r| r.orig_p == 40000).unwrap();
        let ev = &rec.name.as_ref().unwrap().evidence[0];
        assert_eq!(ev.dns_uid.as_deref(), Some(dns.uid.as_str()));
    }
}
