//! The audit: flows and their names, judged against the policy, control by control, into a
//! verdict with evidence. The audit JSON (`Audit`) is the contract every report is built from.

pub mod classify;
pub mod controls;
pub mod minutes;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::flow::FlowRecord;
use crate::pipeline::PassSummary;
use crate::policy::Policy;
use crate::report::flows::Tool;
use classify::{classify, FlowClass};
use minutes::{LicensingMinute, MinuteStats};

/// Every control's stable id, in the order audits list them (DESIGN.md section 5).
pub const CONTROL_IDS: [&str; 11] = [
    "DEST",
    "TLS",
    "VOLUME",
    "DURATION",
    "CADENCE",
    "AUDIO",
    "CREDENTIAL",
    "PROXY",
    "DNS",
    "INGRESS",
    "CAPTURE",
];

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
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flow_uids: Vec<String>,
    /// Packet time the evidence starts, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

/// One control's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlResult {
    /// Stable id: DEST, TLS, VOLUME, DURATION, CADENCE, AUDIO, CREDENTIAL, PROXY, DNS, INGRESS, CAPTURE.
    pub id: String,
    pub verdict: ControlVerdict,
    /// The rule, in one sentence.
    pub rule: String,
    /// What was found, in one sentence.
    pub summary: String,
    pub evidence: Vec<Evidence>,
    /// Evidence items left out of `evidence` to keep it readable.
    #[serde(default)]
    pub evidence_omitted: u64,
}

/// Licensing traffic as measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Licensing {
    pub egress_ip_bytes: u64,
    pub egress_payload_bytes: u64,
    pub connections: u64,
    /// Sources (hosts) that checked in.
    pub sources: Vec<String>,
    /// `new_connection_per_checkin`, `held_connection`, `mixed` or `none`.
    pub pattern: String,
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
}

/// One licensing connection as the timeline shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LicensingConnection {
    pub uid: String,
    pub source: String,
    pub destination: String,
    pub start: String,
    pub start_ts_nanos: i64,
    pub duration_seconds: f64,
    pub egress_ip_bytes: u64,
    pub ingress_ip_bytes: u64,
    /// Zeek conn_state (SF for a completed check-in; S0, REJ... for a failed one).
    pub conn_state: String,
    /// The server answered (a completed check-in rather than a failed attempt).
    pub answered: bool,
}

/// How much speech a licensing minute could carry at one codec rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioBound {
    pub codec_kbps: f64,
    pub seconds_per_minute_at_p99: f64,
    pub seconds_per_minute_at_max: f64,
}

/// Counts of flows per class.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowsSummary {
    pub total: u64,
    pub egress: u64,
    pub ingress: u64,
    pub internal: u64,
    pub by_class: BTreeMap<String, u64>,
    /// Egress destinations by client-to-server IP bytes, largest first (top 20).
    pub top_destinations: Vec<Destination>,
}

/// One egress destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    pub destination: String,
    pub class: FlowClass,
    pub flows: u64,
    pub egress_ip_bytes: u64,
    pub ingress_ip_bytes: u64,
}

/// Capture span and counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CaptureSummary {
    pub start: String,
    pub end: String,
    pub start_ts_nanos: i64,
    pub end_ts_nanos: i64,
    pub duration_seconds: f64,
    pub frames: u64,
    pub packets: u64,
    pub wire_bytes: u64,
    pub capture_drops: u64,
    pub truncated_frames: u64,
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
    pub schema_version: u32,
    pub tool: Tool,
    /// Name of the sensor (host) that captured, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensor: Option<String>,
    pub inputs: Vec<crate::source::FileFacts>,
    pub policy: Policy,
    pub policy_sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_source: Option<String>,
    pub capture: CaptureSummary,
    pub decode: crate::decode::DecodeStats,
    pub flow_stats: crate::flow::FlowStats,
    pub flows: FlowsSummary,
    pub licensing: Licensing,
    pub controls: Vec<ControlResult>,
    pub verdict: Verdict,
}

/// Runs every control over the flows of one pass.
pub fn audit(
    flows: &[FlowRecord],
    pass: &PassSummary,
    policy: &Policy,
    policy_source: Option<String>,
) -> Audit {
    let classified: Vec<_> = flows.iter().map(|f| classify(f, policy)).collect();
    let per_minute = minutes::licensing_minutes(&classified);
    let ip_stats = minutes::stats(&per_minute, |m| m.egress_ip_bytes);
    let payload_stats = minutes::stats(&per_minute, |m| m.egress_payload_bytes);
    let licensing_flows: Vec<_> = classified
        .iter()
        .filter(|c| c.is_licensing_egress())
        .collect();
    let mut sources: Vec<String> = licensing_flows
        .iter()
        .map(|c| c.flow.orig_h.to_string())
        .collect();
    sources.sort();
    sources.dedup();
    let audio_bound = audio_bounds(&policy.audio.codec_kbps, &ip_stats);
    let licensing = Licensing {
        egress_ip_bytes: licensing_flows.iter().map(|c| c.flow.orig_ip_bytes).sum(),
        egress_payload_bytes: licensing_flows.iter().map(|c| c.flow.orig_bytes).sum(),
        connections: licensing_flows.iter().filter(|c| !c.flow.midstream).count() as u64,
        sources,
        pattern: controls::licensing_pattern(&licensing_flows, policy).to_string(),
        timeline: licensing_flows
            .iter()
            .map(|c| LicensingConnection {
                uid: c.flow.uid.clone(),
                source: c.flow.orig_h.to_string(),
                destination: controls::destination_label(c),
                start: crate::report::rfc3339(c.flow.ts_nanos),
                start_ts_nanos: c.flow.ts_nanos,
                duration_seconds: c.flow.duration_nanos() as f64 / 1e9,
                egress_ip_bytes: c.flow.orig_ip_bytes,
                ingress_ip_bytes: c.flow.resp_ip_bytes,
                conn_state: c.flow.conn_state.as_str().to_string(),
                answered: c.flow.resp_bytes > 0,
            })
            .collect(),
        per_minute,
        ip_bytes_per_minute: ip_stats,
        payload_bytes_per_minute: payload_stats,
        audio_bound,
    };
    let controls = controls::run_all(&classified, pass, policy, &licensing);
    let verdict = overall(&controls);
    Audit {
        schema_version: crate::report::SCHEMA_VERSION,
        tool: Tool::current(),
        sensor: None,
        inputs: pass.inputs.clone(),
        policy: policy.clone(),
        policy_sha256: policy.sha256(),
        policy_source,
        capture: capture_summary(pass),
        decode: pass.decode.clone(),
        flow_stats: pass.flow_stats.clone(),
        flows: flows_summary(&classified),
        licensing,
        controls,
        verdict,
    }
}

/// How much speech the measured p99 and max licensing minutes could carry, per codec rate.
pub fn audio_bounds(codec_kbps: &[f64], ip_stats: &MinuteStats) -> Vec<AudioBound> {
    codec_kbps
        .iter()
        .map(|&kbps| AudioBound {
            codec_kbps: kbps,
            seconds_per_minute_at_p99: speech_seconds(ip_stats.p99, kbps),
            seconds_per_minute_at_max: speech_seconds(ip_stats.max, kbps),
        })
        .collect()
}

/// Seconds of speech per minute that `bytes` a minute carry at `kbps`.
pub fn speech_seconds(bytes: u64, kbps: f64) -> f64 {
    if kbps <= 0.0 {
        return 0.0;
    }
    let seconds = bytes as f64 * 8.0 / (kbps * 1000.0);
    (seconds * 10.0).round() / 10.0
}

/// A violation anywhere is the verdict, even over a lossy capture (what was seen was seen);
/// otherwise an inconclusive control makes the audit inconclusive; otherwise findings or compliant.
pub fn overall(controls: &[ControlResult]) -> Verdict {
    let worst = |v| controls.iter().any(|c| c.verdict == v);
    if worst(ControlVerdict::Violation) {
        Verdict::Violation
    } else if worst(ControlVerdict::Inconclusive) {
        Verdict::Inconclusive
    } else if worst(ControlVerdict::Finding) {
        Verdict::Findings
    } else {
        Verdict::Compliant
    }
}

fn capture_summary(pass: &PassSummary) -> CaptureSummary {
    CaptureSummary {
        start: crate::report::rfc3339(pass.first_ts_nanos),
        end: crate::report::rfc3339(pass.last_ts_nanos),
        start_ts_nanos: pass.first_ts_nanos,
        end_ts_nanos: pass.last_ts_nanos,
        duration_seconds: (pass.last_ts_nanos - pass.first_ts_nanos) as f64 / 1e9,
        frames: pass.decode.frames,
        packets: pass.decode.packets,
        wire_bytes: pass.decode.wire_bytes,
        capture_drops: pass.inputs.iter().map(|i| i.capture_drops).sum(),
        truncated_frames: pass.decode.truncated_frames,
        complete: pass.complete,
        filter: pass.filter.clone(),
        filtered_frames: pass.filtered_frames,
    }
}

fn flows_summary(classified: &[classify::Classified<'_>]) -> FlowsSummary {
    use classify::Direction;
    let mut summary = FlowsSummary {
        total: classified.len() as u64,
        ..FlowsSummary::default()
    };
    let mut destinations: BTreeMap<String, Destination> = BTreeMap::new();
    for c in classified {
        match c.direction {
            Direction::Egress => summary.egress += 1,
            Direction::Ingress => summary.ingress += 1,
            Direction::Internal => summary.internal += 1,
            Direction::External => {}
        }
        let class = serde_json::to_value(c.class)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        *summary.by_class.entry(class).or_default() += 1;
        if c.class == FlowClass::NotEgress {
            continue;
        }
        let key = controls::destination_label(c);
        let d = destinations.entry(key.clone()).or_insert(Destination {
            destination: key,
            class: c.class,
            flows: 0,
            egress_ip_bytes: 0,
            ingress_ip_bytes: 0,
        });
        d.flows += 1;
        d.egress_ip_bytes += c.flow.orig_ip_bytes;
        d.ingress_ip_bytes += c.flow.resp_ip_bytes;
    }
    let mut top: Vec<_> = destinations.into_values().collect();
    top.sort_by(|a, b| {
        b.egress_ip_bytes
            .cmp(&a.egress_ip_bytes)
            .then(a.destination.cmp(&b.destination))
    });
    top.truncate(20);
    summary.top_destinations = top;
    summary
}
