//! DEST: every egress flow is licensing or an explicitly allowed destination.
//!
//! A self-hosted deployment keeps audio inside the network; the only traffic it needs to send out
//! is licensing. So a flow to a destination nothing in the policy explains (`unknown`), to
//! Deepgram's hosted transcription API, or to a licensing name on a port that is not the
//! licensing port is a violation. Evidence is one line per destination, with every flow that
//! reached it, so a chatty destination is one line rather than forty.

use std::collections::{BTreeMap, BTreeSet};

use super::{destination_label, result};
use crate::audit::classify::{Classified, Direction, FlowClass};
use crate::audit::{ControlId, ControlResult, ControlVerdict, Evidence, Timestamp};
use crate::units::human_bytes;

/// Runs DEST over the classified flows.
pub(super) fn dest(flows: &[Classified<'_>]) -> ControlResult {
    let rule = "Every egress flow is licensing or an explicitly allowed destination; unknown destinations and hosted transcription are violations.";
    let bad: Vec<_> = flows
        .iter()
        .filter(|c| {
            matches!(
                c.class,
                FlowClass::Unknown | FlowClass::HostedTranscription | FlowClass::LicensingWrongPort
            )
        })
        .collect();
    let egress = flows
        .iter()
        .filter(|c| c.direction == Direction::Egress || c.class.is_licensing())
        .count();
    if bad.is_empty() {
        return result(
            ControlId::Dest,
            rule,
            ControlVerdict::Pass,
            format!("all {egress} egress flows are licensing or allowed"),
            Vec::new(),
        );
    }
    // One evidence line per destination, with its flows.
    let mut by_dest: BTreeMap<String, (FlowClass, Vec<&Classified<'_>>)> = BTreeMap::new();
    for c in &bad {
        by_dest
            .entry(destination_label(c))
            .or_insert((c.class, Vec::new()))
            .1
            .push(c);
    }
    let evidence = by_dest
        .iter()
        .map(|(dest, (class, cs))| destination_evidence(dest, *class, cs))
        .collect::<Vec<_>>();
    let names: Vec<_> = by_dest.keys().take(3).cloned().collect();
    result(
        ControlId::Dest,
        rule,
        ControlVerdict::Violation,
        format!(
            "{} egress flow(s) to {} destination(s) nothing allows: {}{}",
            bad.len(),
            by_dest.len(),
            names.join(", "),
            if by_dest.len() > 3 { ", ..." } else { "" }
        ),
        evidence,
    )
}

/// The evidence line of one destination: what it is (the class of its first flow), its flows,
/// their sources and the bytes they sent.
fn destination_evidence(dest: &str, class: FlowClass, cs: &[&Classified<'_>]) -> Evidence {
    let bytes: u64 = cs.iter().map(|c| c.flow.orig_ip_bytes).sum();
    let what = match class {
        FlowClass::HostedTranscription => format!(
            "{} flow(s) to hosted transcription {dest}, {} sent",
            cs.len(),
            human_bytes(bytes)
        ),
        FlowClass::LicensingWrongPort => format!(
            "{} flow(s) to licensing name on a non-licensing port {dest}, {} sent",
            cs.len(),
            human_bytes(bytes)
        ),
        _ => format!(
            "{} flow(s) to unknown destination {dest}, {} sent",
            cs.len(),
            human_bytes(bytes)
        ),
    };
    Evidence {
        what,
        flow_uids: cs.iter().map(|c| c.flow.uid.clone()).collect(),
        ts: cs.first().map(|c| Timestamp(c.flow.ts_nanos)),
        source: Some(
            cs.iter()
                .map(|c| c.flow.orig_h.to_string())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(", "),
        ),
        destination: Some(dest.to_string()),
        bytes: Some(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{classified, flow, licensing, policy, T0};
    use super::*;
    use crate::units::NANOS;

    #[test]
    fn licensing_and_allowed_egress_pass() {
        let mut allowed = flow("CAllowed", T0, Some("hooks.example.com"));
        allowed.resp_h = "198.51.100.7".parse().unwrap();
        let flows = [licensing("CLic", T0, 1500), allowed];
        let p = policy("[egress]\nallow = [\"hooks.example.com:443\"]\n");
        let r = dest(&classified(&flows, &p));
        assert_eq!(r.verdict, ControlVerdict::Pass);
        assert_eq!(r.summary, "all 2 egress flows are licensing or allowed");
        assert!(r.evidence.is_empty());
    }

    #[test]
    fn unknown_destinations_are_one_line_each_with_all_their_flows() {
        let mut a = flow("CUnknownA", T0 + 2 * NANOS, None);
        a.orig_ip_bytes = 100;
        let mut b = flow("CUnknownB", T0 + 5 * NANOS, None);
        b.orig_h = "192.0.2.11".parse().unwrap();
        b.orig_ip_bytes = 250;
        let mut hosted = flow("CHosted", T0, Some("api.deepgram.com"));
        hosted.orig_ip_bytes = 4000;
        let mut wrong_port = flow("CPort80", T0, Some("license.deepgram.com"));
        wrong_port.resp_p = 80;
        let flows = [a, b, hosted, wrong_port];
        let r = dest(&classified(&flows, &policy("")));
        assert_eq!(r.verdict, ControlVerdict::Violation);
        assert_eq!(r.evidence.len(), 3);
        // Sorted by destination label.
        let unknown = &r.evidence[0];
        assert_eq!(
            unknown.what,
            "2 flow(s) to unknown destination 203.0.113.10:443, 350 B sent"
        );
        assert_eq!(unknown.flow_uids, ["CUnknownA", "CUnknownB"]);
        assert_eq!(unknown.ts, Some(Timestamp(T0 + 2 * NANOS)));
        assert_eq!(unknown.source.as_deref(), Some("192.0.2.10, 192.0.2.11"));
        assert_eq!(unknown.bytes, Some(350));
        assert_eq!(
            r.evidence[1].what,
            "1 flow(s) to hosted transcription api.deepgram.com (203.0.113.10:443), 4.0 KB sent"
        );
        assert_eq!(r.evidence[1].flow_uids, ["CHosted"]);
        assert_eq!(
            r.evidence[2].what,
            "1 flow(s) to licensing name on a non-licensing port license.deepgram.com (203.0.113.10:80), 0 B sent"
        );
        assert!(r
            .summary
            .starts_with("4 egress flow(s) to 3 destination(s) nothing allows: "));
    }
}
