//! Owned flow records: what leaves the flow table once a connection ends, is evicted, or the capture
//! ends. Field names follow Zeek's `conn.log` so users can check dg-audit against Zeek and feed RITA;
//! everything dg-audit adds (names, TLS, HTTP, per-minute slices) sits beside those fields.
//!
//! Invariants: `orig_*` always describes the originator (the side that sent the first SYN, or, seen
//! mid-stream, the side with the ephemeral port); the per-minute slices sum exactly to the flow totals,
//! except that the slices' IP bytes also hold the estimated wire size of bytes the peer acknowledged
//! but the capture missed (`*_missed_ip_bytes`, which say by how much).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::names::FlowName;

/// Transport protocol of a flow, as Zeek's `proto` column spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tcp,
    Udp,
    Icmp,
    /// Any other IP protocol (GRE, ESP, ...): counted per address pair, never dropped.
    Other,
}

impl Transport {
    /// Zeek's spelling (`tcp`, `udp`, `icmp`, `unknown_transport`).
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
            Transport::Icmp => "icmp",
            Transport::Other => "unknown_transport",
        }
    }
}

/// Zeek `conn_state` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms)]
pub enum ConnState {
    S0,
    S1,
    SF,
    REJ,
    S2,
    S3,
    RSTO,
    RSTR,
    RSTOS0,
    RSTRH,
    SH,
    SHR,
    OTH,
}

impl ConnState {
    /// The state as Zeek prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnState::S0 => "S0",
            ConnState::S1 => "S1",
            ConnState::SF => "SF",
            ConnState::REJ => "REJ",
            ConnState::S2 => "S2",
            ConnState::S3 => "S3",
            ConnState::RSTO => "RSTO",
            ConnState::RSTR => "RSTR",
            ConnState::RSTOS0 => "RSTOS0",
            ConnState::RSTRH => "RSTRH",
            ConnState::SH => "SH",
            ConnState::SHR => "SHR",
            ConnState::OTH => "OTH",
        }
    }
}

/// Why a flow record was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// Both sides closed (FIN) or one reset (RST).
    Closed,
    /// No packet for longer than the protocol's inactivity timeout.
    Timeout,
    /// The capture ended while the flow was still open.
    EndOfCapture,
    /// The flow table hit its memory cap and this flow was the oldest idle one.
    Evicted,
}

/// What the first TLS ClientHello of a flow said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsSummary {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alpn: Vec<String>,
    /// The ClientHello carried an encrypted_client_hello extension (0xfe0d): SNI is a public name.
    pub ech: bool,
    /// True for QUIC Initial packets, false for TLS over TCP.
    pub quic: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ja4: Option<String>,
    /// Highest version offered (0x0304 for TLS 1.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_version: Option<u16>,
    /// A cleartext TLS alert sent by the server (description code), e.g. 40 handshake_failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_alert: Option<u8>,
    /// The client's first bytes were a TLS record, but no ClientHello could be read (gap, truncation).
    #[serde(default)]
    pub incomplete: bool,
}

/// One HTTP/1.x request seen in clear (secrets already redacted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpSummary {
    pub method: String,
    /// Request target with any query string removed (query strings can carry tokens).
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_length: Option<u64>,
    /// The request asked to switch to WebSocket.
    #[serde(default)]
    pub websocket: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// A credential seen in clear on the wire; only its redacted form is ever kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretSighting {
    /// `license_key`, `api_token`, `basic_auth`, ...
    pub kind: String,
    /// First 4 ... last 4 characters and a short SHA-256 prefix, never the secret.
    pub redacted: String,
    /// Packet time of the first sighting, nanoseconds since the epoch.
    pub ts_nanos: i64,
    /// Which side sent it: `orig` or `resp`.
    pub direction: String,
    /// Where it was first seen: `payload` (any cleartext bytes, also split across segments),
    /// `dns_name`, `tls_sni`, `http_host` or `http_connect`.
    #[serde(default = "payload_place")]
    pub place: String,
}

fn payload_place() -> String {
    "payload".to_string()
}

/// Two copies of the same TCP sequence range that carried different bytes: the monitor cannot
/// know which one the receiving host took (Ptacek & Newsham, 1998), so both readings are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamConflict {
    /// Which side sent both copies: `orig` or `resp`.
    pub direction: String,
    /// Stream offset of the first byte that differs (0 = the first payload byte).
    pub offset: u64,
    /// Bytes from the first to the last differing one.
    pub len: u64,
    /// Hex of the first copy seen (at most 12 bytes, `...` when longer; `(redacted)` when the
    /// bytes overlap a credential).
    pub first_hex: String,
    /// Hex of the second copy, shown as `first_hex`.
    pub second_hex: String,
    /// The first copy came in a packet with a bad checksum.
    pub first_bad_checksum: bool,
    /// The second copy came in a packet with a bad checksum.
    pub second_bad_checksum: bool,
}

/// Data that read two ways in a flow, and the names only the other reading gives.
///
/// The flow's own `tls.sni`, `http[].host` and CONNECT name come from the reading the host most
/// likely took (a good-checksum copy over a bad one, else the first copy); the `alternate_*`
/// lists hold what the other reading says, so a control can judge the worse one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamConflicts {
    /// Every conflict seen in the flow (the list below keeps the first few).
    pub count: u64,
    /// The first conflicts, in the order they were seen.
    pub conflicts: Vec<StreamConflict>,
    /// TLS SNI names read from another copy of the ClientHello bytes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternate_sni: Vec<String>,
    /// HTTP `Host` names read from another copy of request header bytes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternate_hosts: Vec<String>,
    /// HTTP CONNECT targets (`host:port`) read from another copy of the request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternate_connect: Vec<String>,
}

/// DNS activity of a flow (for flows that carry DNS).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsSummary {
    pub queries: u64,
    pub responses: u64,
    /// Query names (lower case, no trailing dot), first 32 distinct; credentials in them are
    /// redacted.
    pub names: Vec<String>,
    /// Queries of type TXT, NULL or ANY, the usual tunnelling carriers.
    pub txt_queries: u64,
    /// Responses with a non-zero RCODE (SERVFAIL, NXDOMAIN, ...).
    pub error_responses: u64,
    /// Sum over query names of their longest label's length, for tunnelling heuristics.
    pub longest_label: usize,
}

/// Traffic of one flow inside one minute window `[start, start + 60 s)` of packet time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinuteSlice {
    /// Window start, seconds since the epoch (a multiple of 60).
    pub start: i64,
    pub orig_pkts: u64,
    pub orig_ip_bytes: u64,
    /// Originator payload bytes newly covered by sequence numbers in this minute (TCP), or UDP payload.
    pub orig_bytes: u64,
    pub resp_pkts: u64,
    pub resp_ip_bytes: u64,
    pub resp_bytes: u64,
    /// Originator payload bytes the responder acknowledged in this minute that the capture never
    /// held: sent all the same, so already inside `orig_bytes` (sequence space) and counted in
    /// `orig_ip_bytes` at their estimated wire size.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub orig_missed_bytes: u64,
    /// The wire size `orig_ip_bytes` holds for `orig_missed_bytes`: the bytes plus one IP and TCP
    /// header per segment of the connection's MSS (an estimate; the rest of `orig_ip_bytes` is
    /// measured).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub orig_missed_ip_bytes: u64,
    /// As `orig_missed_bytes`, for the responder's bytes the originator acknowledged.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resp_missed_bytes: u64,
    /// As `orig_missed_ip_bytes`, for `resp_missed_bytes`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resp_missed_ip_bytes: u64,
}

/// One finished (or interim) flow: Zeek conn.log columns plus dg-audit's own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowRecord {
    /// Deterministic id (same packets, same uid), Zeek-style `C...`.
    pub uid: String,
    /// First packet time, nanoseconds since the epoch.
    pub ts_nanos: i64,
    /// Last packet time, nanoseconds since the epoch.
    pub last_ts_nanos: i64,
    pub proto: Transport,
    /// IP protocol number (6, 17, 1, 58, ...).
    pub ip_proto: u8,
    pub orig_h: IpAddr,
    pub orig_p: u16,
    pub resp_h: IpAddr,
    pub resp_p: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    pub orig_bytes: u64,
    pub resp_bytes: u64,
    pub conn_state: ConnState,
    /// Zeek's content gaps: bytes the peer acknowledged that the capture never held.
    pub missed_bytes: u64,
    /// Holes in the sequence space that nothing acknowledged or filled, apart from
    /// `missed_bytes`: loss whose content and wire size the capture cannot tell, unlike
    /// acknowledged missed bytes, which the minutes count as sent.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unacked_missed_bytes: u64,
    pub history: String,
    pub orig_pkts: u64,
    pub orig_ip_bytes: u64,
    pub resp_pkts: u64,
    pub resp_ip_bytes: u64,
    /// Highest IPv4 TTL / IPv6 hop limit of the originator's packets (1 to a multicast group: the
    /// packets cannot leave the link).
    #[serde(default)]
    pub orig_max_ttl: u8,
    /// Originator packets whose IPv4 header or transport checksum was wrong (kept, as `zeek -C`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub orig_bad_checksums: u64,
    /// Responder packets whose IPv4 header or transport checksum was wrong.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resp_bad_checksums: u64,
    /// The flow was first seen without its opening SYN: bytes are counted, the start is unknown.
    pub midstream: bool,
    /// Outermost VLAN id of the flow's first packet, if tagged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    pub end_reason: EndReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<FlowName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSummary>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<HttpSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsSummary>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretSighting>,
    /// Overlapping TCP data that read two ways (absent when none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_conflicts: Option<StreamConflicts>,
    /// Per-minute traffic; sums equal the totals above, but for the IP bytes estimated for
    /// acknowledged-but-unseen data (`*_missed_ip_bytes`), which the totals, Zeek's, leave out.
    pub minutes: Vec<MinuteSlice>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl FlowRecord {
    /// The connection got past its opening: the responder answered (Zeek states S1, SF, S2, S3,
    /// RSTO, RSTR, and SHR/RSTRH, where only the responder's SYN-ACK was seen), or, seen
    /// mid-stream (OTH), both sides sent. Attempts that never did (S0, REJ, RSTOS0, SH) are not.
    /// UDP and ICMP flows count as established once both sides sent.
    pub fn established(&self) -> bool {
        use ConnState::*;
        match self.conn_state {
            S1 | SF | S2 | S3 | RSTO | RSTR | SHR | RSTRH => true,
            S0 | REJ | RSTOS0 | SH => false,
            OTH => self.orig_pkts > 0 && self.resp_pkts > 0,
        }
    }

    /// Duration in nanoseconds (last packet minus first packet, as Zeek).
    pub fn duration_nanos(&self) -> i64 {
        self.last_ts_nanos - self.ts_nanos
    }
}

/// A plain finished TCP flow from 192.0.2.10:40000 to 203.0.113.10:443, for unit tests that
/// build flows by hand and change only the fields they are about.
#[cfg(test)]
pub(crate) fn test_record() -> FlowRecord {
    FlowRecord {
        uid: "CTestFlow0000000001".into(),
        ts_nanos: 1_700_000_040_000_000_000,
        last_ts_nanos: 1_700_000_040_500_000_000,
        proto: Transport::Tcp,
        ip_proto: 6,
        orig_h: "192.0.2.10".parse().expect("literal address"),
        orig_p: 40000,
        resp_h: "203.0.113.10".parse().expect("literal address"),
        resp_p: 443,
        service: None,
        orig_bytes: 0,
        resp_bytes: 0,
        conn_state: ConnState::SF,
        missed_bytes: 0,
        unacked_missed_bytes: 0,
        history: "ShADadFf".into(),
        orig_pkts: 0,
        orig_ip_bytes: 0,
        resp_pkts: 0,
        resp_ip_bytes: 0,
        orig_max_ttl: 64,
        orig_bad_checksums: 0,
        resp_bad_checksums: 0,
        midstream: false,
        vlan: None,
        end_reason: EndReason::Closed,
        name: None,
        tls: None,
        http: Vec::new(),
        dns: None,
        secrets: Vec::new(),
        stream_conflicts: None,
        minutes: Vec::new(),
    }
}
