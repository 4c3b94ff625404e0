//! The audit: flows and their names, judged against the policy, control by control, into a
//! verdict with evidence. The audit JSON (`Audit`) is the contract every report is built from.

pub mod checkins;
pub mod classify;
pub mod controls;
pub mod document;
pub mod minutes;
pub mod scope;

pub use document::*;

use std::collections::BTreeMap;

use crate::flow::FlowRecord;
use crate::pipeline::PassSummary;
use crate::policy::Policy;
use crate::units::{as_secs_f64, rfc3339};
use classify::{classify, FlowClass};
use minutes::MinuteStats;

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
    let cadence = policy.licensing.cadence_seconds;
    let checkins_by_source = checkins::by_source(&classified, cadence);
    let licensing = Licensing {
        egress_ip_bytes: licensing_flows.iter().map(|c| c.flow.orig_ip_bytes).sum(),
        egress_payload_bytes: licensing_flows.iter().map(|c| c.flow.orig_bytes).sum(),
        connections: licensing_flows.iter().filter(|c| !c.flow.midstream).count() as u64,
        sources,
        pattern: checkins::pattern(&licensing_flows, cadence).to_string(),
        timeline: licensing_flows
            .iter()
            .map(|c| LicensingConnection {
                uid: c.flow.uid.clone(),
                source: c.flow.orig_h.to_string(),
                destination: controls::destination_label(c),
                start: rfc3339(c.flow.ts_nanos),
                start_ts_nanos: c.flow.ts_nanos,
                duration_seconds: as_secs_f64(c.flow.duration_nanos()),
                egress_ip_bytes: c.flow.orig_ip_bytes,
                ingress_ip_bytes: c.flow.resp_ip_bytes,
                conn_state: c.flow.conn_state.as_str().to_string(),
                answered: checkins::answered(c.flow),
            })
            .collect(),
        per_minute,
        ip_bytes_per_minute: ip_stats,
        payload_bytes_per_minute: payload_stats,
        audio_bound,
        checkins: checkins::list(&checkins_by_source),
    };
    let controls = controls::run_all(&classified, pass, policy, &licensing, &checkins_by_source);
    let verdict = overall(&controls);
    Audit {
        schema_version: SCHEMA_VERSION,
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
        start: rfc3339(pass.first_ts_nanos),
        end: rfc3339(pass.last_ts_nanos),
        start_ts_nanos: pass.first_ts_nanos,
        end_ts_nanos: pass.last_ts_nanos,
        duration_seconds: as_secs_f64(pass.last_ts_nanos - pass.first_ts_nanos),
        frames: pass.decode.frames,
        packets: pass.decode.packets,
        wire_bytes: pass.decode.wire_bytes,
        // Counts from the files themselves: saturate, never overflow.
        capture_drops: pass
            .inputs
            .iter()
            .fold(0u64, |a, i| a.saturating_add(i.capture_drops)),
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
            Direction::Local => summary.local += 1,
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
