//! The audit document: the contract every report, merge and alert is built from.
//!
//! These types are what `dg-audit analyze --format json` writes and `dg-audit report` reads back
//! (schema/audit.schema.json). They sit below every presentation module: report, live and cli
//! import them, never the reverse. Field names and their serialised forms are a contract; add
//! fields, rename none.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::audit::checkins::CheckIn;
use crate::audit::classify::FlowClass;
use crate::audit::minutes::{LicensingMinute, MinuteStats};
use crate::policy::Policy;

/// Schema version of every JSON document dg-audit writes (audit, flows, merged report).
pub const SCHEMA_VERSION: u32 = 1;

/// Tool identification for chain of custody.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tool {
    /// Always `dg-audit`.
    pub name: String,
    /// The crate version of the build that wrote the document.
    pub version: String,
}

impl Tool {
    /// This build of dg-audit.
    pub fn current() -> Self {
        Tool {
            name: "dg-audit".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// A packet time (nanoseconds since the epoch) that serialises as RFC 3339 with microseconds,
/// as every time in the audit JSON is written. Reading it back keeps microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Nanoseconds since the epoch.
    pub fn nanos(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::units::rfc3339(self.0))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        crate::units::parse_rfc3339(&text)
            .map(Timestamp)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {text:?}")))
    }
}

/// A control's stable id (DESIGN.md section 5), serialised as its upper-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ControlId {
    Dest,
    Tls,
    Volume,
    Duration,
    Cadence,
    Audio,
    Credential,
    Proxy,
    Dns,
    Ingress,
    Capture,
}

impl ControlId {
    /// Every control, in the order audits list them.
    pub const ALL: [ControlId; 11] = [
        ControlId::Dest,
        ControlId::Tls,
        ControlId::Volume,
        ControlId::Duration,
        ControlId::Cadence,
        ControlId::Audio,
        ControlId::Credential,
        ControlId::Proxy,
        ControlId::Dns,
        ControlId::Ingress,
        ControlId::Capture,
    ];

    /// The id as audits, alerts and metrics write it (`DEST`).
    pub fn as_str(self) -> &'static str {
        match self {
            ControlId::Dest => "DEST",
            ControlId::Tls => "TLS",
            ControlId::Volume => "VOLUME",
            ControlId::Duration => "DURATION",
            ControlId::Cadence => "CADENCE",
            ControlId::Audio => "AUDIO",
            ControlId::Credential => "CREDENTIAL",
            ControlId::Proxy => "PROXY",
            ControlId::Dns => "DNS",
            ControlId::Ingress => "INGRESS",
            ControlId::Capture => "CAPTURE",
        }
    }
}

impl fmt::Display for ControlId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, not `write_str`: tables align ids with `{:<11}`.
        f.pad(self.as_str())
    }
}

/// A control's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlVerdict {
    Pass,
    NotApplicable,
    Finding,
    Inconclusive,
    Violation,
}

impl ControlVerdict {
    /// The word reports print.
    pub fn as_str(self) -> &'static str {
        match self {
            ControlVerdict::Pass => "pass",
            ControlVerdict::NotApplicable => "not_applicable",
            ControlVerdict::Finding => "finding",
            ControlVerdict::Inconclusive => "inconclusive",
            ControlVerdict::Violation => "violation",
        }
    }
}

/// The overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Compliant,
    Findings,
    Violation,
    Inconclusive,
}

impl Verdict {
    /// Exit code: 0 compliant or findings, 1 violation, 3 inconclusive.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Compliant | Verdict::Findings => 0,
            Verdict::Violation => 1,
            Verdict::Inconclusive => 3,
        }
    }

    /// The word reports print.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Compliant => "compliant",
            Verdict::Findings => "findings",
            Verdict::Violation => "violation",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// One piece of evidence: what was seen, in which flows, when.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// One line a person reads.
    pub what: String,
    /// The flows the evidence rests on (look them up with `dg-audit flows`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flow_uids: Vec<String>,
    /// Packet time the evidence starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<Timestamp>,
    /// Originating host(s), comma-separated when several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Destination as `destination_label` shows it (name and address:port), or a domain or resolver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// Bytes behind the evidence: client-to-server IP bytes of its flows or minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

/// One control's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlResult {
    /// Which control (DESIGN.md section 5).
    pub id: ControlId,
    /// Pass, finding, violation, not applicable or inconclusive.
    pub verdict: ControlVerdict,
    /// The rule, in one sentence.
    pub rule: String,
    /// What was found, in one sentence.
    pub summary: String,
    /// What the verdict rests on, at most 40 items (the rest counted in `evidence_omitted`).
    pub evidence: Vec<Evidence>,
    /// Evidence items left out of `evidence` to keep it readable.
    #[serde(default)]
    pub evidence_omitted: u64,
}

/// Licensing traffic as measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Licensing {
    /// Client-to-server IP bytes of every licensing egress flow.
    pub egress_ip_bytes: u64,
    /// Client-to-server payload bytes of the same flows.
    pub egress_payload_bytes: u64,
    /// Licensing egress connections whose start is in the capture (mid-stream flows excluded).
    pub connections: u64,
    /// Sources (hosts) that checked in.
    pub sources: Vec<String>,
    /// `new_connection_per_checkin`, `held_connection`, `mixed` or `none`.
    pub pattern: String,
    /// Licensing egress per source and minute (the VOLUME series), by minute then source.
    pub per_minute: Vec<LicensingMinute>,
    /// Per active source-minute, client-to-server IP bytes.
    pub ip_bytes_per_minute: MinuteStats,
    /// Per active source-minute, client-to-server payload bytes.
    pub payload_bytes_per_minute: MinuteStats,
    /// Seconds of speech a minute the measured p99 and max could carry, per codec rate.
    pub audio_bound: Vec<AudioBound>,
    /// Every licensing connection in time order (for timelines and cadence charts).
    #[serde(default)]
    pub timeline: Vec<LicensingConnection>,
    /// Every check-in (the rule of `audit::checkins`), by source then time.
    #[serde(default)]
    pub checkins: Vec<CheckIn>,
}

/// One licensing connection as the timeline shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LicensingConnection {
    /// Flow uid.
    pub uid: String,
    /// Client address.
    pub source: String,
    /// Destination label (name and address:port).
    pub destination: String,
    /// First packet, RFC 3339.
    pub start: String,
    /// First packet, nanoseconds since the epoch.
    pub start_ts_nanos: i64,
    /// Last packet minus first packet.
    pub duration_seconds: f64,
    /// Client-to-server IP bytes.
    pub egress_ip_bytes: u64,
    /// Server-to-client IP bytes.
    pub ingress_ip_bytes: u64,
    /// Zeek conn_state (SF for a completed check-in; S0, REJ... for a failed one).
    pub conn_state: String,
    /// The server answered (a completed check-in rather than a failed attempt).
    pub answered: bool,
}

/// How much speech a licensing minute could carry at one codec rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioBound {
    /// Codec bit rate, kbit/s.
    pub codec_kbps: f64,
    /// Seconds of speech the p99 licensing minute could carry.
    pub seconds_per_minute_at_p99: f64,
    /// Seconds of speech the largest licensing minute could carry.
    pub seconds_per_minute_at_max: f64,
}

/// Counts of flows per class.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowsSummary {
    /// Every flow.
    pub total: u64,
    /// Flows from an internal to an external address.
    pub egress: u64,
    /// Flows from an external to an internal address.
    pub ingress: u64,
    /// Flows with both ends internal.
    pub internal: u64,
    /// Flows that cannot leave the link or the site (broadcast, link-scoped multicast, loopback,
    /// link-local), set apart before the policy is read; never egress.
    #[serde(default)]
    pub local: u64,
    /// Flows per class (`licensing`, `unknown`, `not_egress`, ...).
    pub by_class: BTreeMap<String, u64>,
    /// Egress destinations by client-to-server IP bytes, largest first (top 20).
    pub top_destinations: Vec<Destination>,
}

/// One egress destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    /// Destination label (name and address:port).
    pub destination: String,
    /// Class of the first flow seen to it.
    pub class: FlowClass,
    /// Flows to it.
    pub flows: u64,
    /// Client-to-server IP bytes sent to it.
    pub egress_ip_bytes: u64,
    /// Server-to-client IP bytes received from it.
    pub ingress_ip_bytes: u64,
}

/// Capture span and counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CaptureSummary {
    /// First packet, RFC 3339.
    pub start: String,
    /// Last packet, RFC 3339.
    pub end: String,
    /// First packet, nanoseconds since the epoch.
    pub start_ts_nanos: i64,
    /// Last packet, nanoseconds since the epoch.
    pub end_ts_nanos: i64,
    /// Last packet minus first packet.
    pub duration_seconds: f64,
    /// Frames read from every input.
    pub frames: u64,
    /// IP packets decoded from them.
    pub packets: u64,
    /// Bytes on the wire of every frame.
    pub wire_bytes: u64,
    /// Packets the capturing system reported dropped, over every input.
    pub capture_drops: u64,
    /// Frames cut by the snaplen.
    pub truncated_frames: u64,
    /// False when an input stopped short or flows were evicted.
    pub complete: bool,
    /// BPF expression the frames were selected with (the audit then covers only those frames).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Frames the filter excluded.
    #[serde(default)]
    pub filtered_frames: u64,
}

/// The audit document (`dg-audit analyze --format json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Audit {
    /// [`SCHEMA_VERSION`] of this document.
    pub schema_version: u32,
    /// The build that wrote it.
    pub tool: Tool,
    /// Name of the sensor (host) that captured, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensor: Option<String>,
    /// Each capture file read, with its hash (chain of custody).
    pub inputs: Vec<crate::source::FileFacts>,
    /// The effective policy, every default filled in.
    pub policy: Policy,
    /// SHA-256 of the effective policy.
    pub policy_sha256: String,
    /// The policy file it was read from; absent for the built-in policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_source: Option<String>,
    /// Span and counts of the capture.
    pub capture: CaptureSummary,
    /// Decoder counters.
    pub decode: crate::decode::DecodeStats,
    /// Flow-table counters.
    pub flow_stats: crate::flow::FlowStats,
    /// Flows by direction and class, and the top destinations.
    pub flows: FlowsSummary,
    /// Licensing traffic as measured.
    pub licensing: Licensing,
    /// Every control, in the order of DESIGN.md section 5.
    pub controls: Vec<ControlResult>,
    /// The overall verdict ([`overall`](crate::audit::overall)).
    pub verdict: Verdict,
}
