//! CAPTURE: the capture is complete enough to judge.
//!
//! Every other control judges what the capture shows; a capture with holes could hide exactly the
//! flow that matters. So drops beyond `max_drop_ratio`, an input that stopped short, flows evicted
//! by the flow-table cap, or a policy whose internal networks match no originator make the audit
//! inconclusive, never a pass. Lesser gaps (egress flows seen mid-stream, ClientHellos that could
//! not be read) are findings. A BPF filter is not a fault, but the evidence says first that the
//! verdict speaks only for the selected frames.

use super::{destination_label, flow_evidence, result};
use crate::audit::classify::{Classified, Direction, FlowClass};
use crate::audit::{ControlId, ControlResult, ControlVerdict, Evidence};
use crate::pipeline::PassSummary;
use crate::policy::Policy;
use crate::units::as_secs_f64;

/// Runs CAPTURE over the pass and the flows.
pub(super) fn capture(
    flows: &[Classified<'_>],
    pass: &PassSummary,
    policy: &Policy,
) -> ControlResult {
    let rule = "The capture is complete enough to judge: no drops, no truncated files, no evicted flows; otherwise the audit is inconclusive.";
    let (mut evidence, inconclusive) = gaps(flows, pass, policy);
    let findings = flow_findings(flows);
    let finding = !findings.is_empty();
    evidence.extend(findings);
    if let Some(filter) = &pass.filter {
        // Not a fault, but the verdict speaks only for the selected frames: say so first.
        evidence.insert(
            0,
            Evidence {
                what: format!(
                    "only frames matching the filter {filter:?} were audited; {} others were left out",
                    pass.filtered_frames
                ),
                ..Evidence::default()
            },
        );
    }
    if pass.decode.truncated_frames > 0 {
        evidence.push(note(format!(
            "{} frames cut by the snaplen",
            pass.decode.truncated_frames
        )));
    }
    let summary = format!(
        "{} frames over {:.0} s, {} capture drops, {} truncated frames, {} mid-stream flows",
        pass.decode.frames,
        as_secs_f64(pass.last_ts_nanos - pass.first_ts_nanos),
        pass.inputs.iter().map(|i| i.capture_drops).sum::<u64>(),
        pass.decode.truncated_frames,
        pass.flow_stats.midstream_flows
    );
    let verdict = if inconclusive {
        ControlVerdict::Inconclusive
    } else if finding {
        ControlVerdict::Finding
    } else {
        ControlVerdict::Pass
    };
    result(ControlId::Capture, rule, verdict, summary, evidence)
}

/// Evidence that is not about one flow.
fn note(what: String) -> Evidence {
    Evidence {
        what,
        ..Evidence::default()
    }
}

/// The holes that make the audit inconclusive, with the inputs' own warnings; true when any
/// such hole was found (a warning alone is not one).
fn gaps(flows: &[Classified<'_>], pass: &PassSummary, policy: &Policy) -> (Vec<Evidence>, bool) {
    let mut evidence = Vec::new();
    let mut inconclusive = false;
    for input in &pass.inputs {
        evidence.extend(input.warnings.iter().cloned().map(note));
        if input.incomplete {
            inconclusive = true;
        }
        let packets = pass.decode.frames.max(1);
        if input.capture_drops > 0
            && input.capture_drops as f64 / packets as f64 > policy.capture.max_drop_ratio
        {
            inconclusive = true;
            evidence.push(note(format!(
                "{}: the capturing system dropped {} packets",
                input.path, input.capture_drops
            )));
        }
    }
    if pass.flow_stats.evicted > 0 {
        inconclusive = true;
        evidence.push(note(format!(
            "{} flows evicted by the flow-table cap",
            pass.flow_stats.evicted
        )));
    }
    // A policy whose internal networks match no originator judges nothing: say so.
    if !flows.is_empty()
        && !flows
            .iter()
            .any(|c| matches!(c.direction, Direction::Egress | Direction::Internal))
    {
        inconclusive = true;
        evidence.push(note(format!(
            "no flow starts inside network.internal ({}): set it to the monitored network",
            policy
                .network
                .internal
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    (evidence, inconclusive)
}

/// Egress flows the capture shows only in part: seen mid-stream, or with an unreadable
/// ClientHello.
fn flow_findings(flows: &[Classified<'_>]) -> Vec<Evidence> {
    let mut evidence = Vec::new();
    for c in flows.iter().filter(|c| c.class != FlowClass::NotEgress) {
        if c.flow.midstream {
            evidence.push(flow_evidence(
                c,
                format!(
                    "egress flow to {} seen mid-stream (its start is not in the capture)",
                    destination_label(c)
                ),
            ));
        }
        if c.flow.tls.as_ref().is_some_and(|t| t.incomplete) {
            evidence.push(flow_evidence(
                c,
                format!(
                    "TLS ClientHello to {} could not be read (truncated or missing segments)",
                    destination_label(c)
                ),
            ));
        }
    }
    evidence
}
