//! VOLUME: licensing egress per source and per minute stays within the budget.
//!
//! Licensing is a few kilobytes a minute (a TLS handshake and a small JSON request); that smallness
//! is what shows audio cannot leave through it. So every source-minute of licensing egress (IP
//! bytes, client to server, from `audit::minutes`) above `max_egress_bytes_per_minute` is a
//! violation; a minute of exactly the budget is within it. The summary gives the distribution
//! (p50, p99, max) so a pass still says how close the deployment runs to the budget.
//!
//! Bytes the server acknowledged but the capture never held were sent all the same: the minutes
//! already count them (at their estimated wire size), and the evidence says how much of a minute
//! was inferred that way, so a lossy capture can neither hide an upload nor pass unremarked.

use super::result;
use crate::audit::{ControlId, ControlResult, ControlVerdict, Evidence, Licensing, Timestamp};
use crate::policy::Policy;
use crate::units::{human_bytes, NANOS};

/// Runs VOLUME over the per-minute licensing measures.
pub(super) fn volume(policy: &Policy, licensing: &Licensing) -> ControlResult {
    let budget = policy.licensing.max_egress_bytes_per_minute;
    let rule =
        "Licensing egress (client to server) per source and per minute stays within the budget.";
    if licensing.per_minute.is_empty() {
        return result(
            ControlId::Volume,
            rule,
            ControlVerdict::NotApplicable,
            "no licensing traffic".into(),
            Vec::new(),
        );
    }
    let s = &licensing.ip_bytes_per_minute;
    let stats = format!(
        "per source-minute p50 {}, p99 {}, max {} of IP bytes against a budget of {}; {} in {} minute(s)",
        human_bytes(s.p50),
        human_bytes(s.p99),
        human_bytes(s.max),
        human_bytes(budget),
        human_bytes(s.total),
        s.minutes
    );
    let evidence: Vec<_> = licensing
        .per_minute
        .iter()
        .filter(|m| m.egress_ip_bytes > budget)
        .map(|m| Evidence {
            what: format!(
                "{} sent {} of licensing egress in the minute from {} ({}x the budget of {}){}",
                m.source,
                human_bytes(m.egress_ip_bytes),
                m.start,
                format_ratio(m.egress_ip_bytes, budget),
                human_bytes(budget),
                inferred_words(m.egress_missed_bytes)
            ),
            flow_uids: m.flow_uids.clone(),
            ts: Some(Timestamp(m.start_ts * NANOS)),
            source: Some(m.source.to_string()),
            destination: None,
            bytes: Some(m.egress_ip_bytes),
        })
        .collect();
    if evidence.is_empty() {
        result(
            ControlId::Volume,
            rule,
            ControlVerdict::Pass,
            stats,
            evidence,
        )
    } else {
        result(
            ControlId::Volume,
            rule,
            ControlVerdict::Violation,
            format!("{} source-minute(s) over budget; {stats}", evidence.len()),
            evidence,
        )
    }
}

/// How much of a minute was inferred from acknowledgements (empty when all of it was seen).
fn inferred_words(missed: u64) -> String {
    if missed == 0 {
        return String::new();
    }
    format!(
        ", of which {} of payload the server acknowledged but the capture did not hold",
        human_bytes(missed)
    )
}

/// `value / budget` to one decimal; a zero budget makes any byte infinitely over it.
fn format_ratio(value: u64, budget: u64) -> String {
    if budget == 0 {
        return "inf".into();
    }
    format!("{:.1}", value as f64 / budget as f64)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{classified, licensing, policy, T0};
    use super::*;
    use crate::audit::minutes::{licensing_minutes, stats};
    use crate::flow::FlowRecord;

    /// The licensing measures the audit would compute from `flows`.
    fn measured(flows: &[FlowRecord], p: &Policy) -> Licensing {
        let per_minute = licensing_minutes(&classified(flows, p));
        Licensing {
            ip_bytes_per_minute: stats(&per_minute, |m| m.egress_ip_bytes),
            per_minute,
            ..Licensing::default()
        }
    }

    #[test]
    fn no_licensing_is_not_applicable() {
        let r = volume(&policy(""), &Licensing::default());
        assert_eq!(r.verdict, ControlVerdict::NotApplicable);
    }

    #[test]
    fn a_minute_of_exactly_the_budget_is_within_it() {
        let p = policy("");
        assert_eq!(p.licensing.max_egress_bytes_per_minute, 8192);
        let flows = [licensing("CAtBudget", T0, 8192)];
        let r = volume(&p, &measured(&flows, &p));
        assert_eq!(r.verdict, ControlVerdict::Pass);
        assert!(r.evidence.is_empty());
        assert!(
            r.summary
                .contains("max 8.2 KB of IP bytes against a budget of 8.2 KB"),
            "{}",
            r.summary
        );
    }

    #[test]
    fn one_byte_over_the_budget_is_a_violation() {
        let p = policy("");
        let flows = [licensing("COver", T0, 8193)];
        let r = volume(&p, &measured(&flows, &p));
        assert_eq!(r.verdict, ControlVerdict::Violation);
        assert_eq!(r.evidence.len(), 1);
        let e = &r.evidence[0];
        assert_eq!(
            e.what,
            "192.0.2.10 sent 8.2 KB of licensing egress in the minute from \
             2023-11-14T22:14:00.000000Z (1.0x the budget of 8.2 KB)"
        );
        assert_eq!(e.bytes, Some(8193));
        assert_eq!(e.flow_uids, ["COver"]);
        assert_eq!(e.ts, Some(Timestamp(T0)));
        assert_eq!(e.source.as_deref(), Some("192.0.2.10"));
        assert!(r.summary.starts_with("1 source-minute(s) over budget; "));
    }

    #[test]
    fn flows_of_one_source_in_one_minute_add_up() {
        let p = policy("");
        // Each within budget, together one byte over it.
        let flows = [
            licensing("CFirst", T0, 4096),
            licensing("CSecond", T0 + 30 * NANOS, 4097),
        ];
        let r = volume(&p, &measured(&flows, &p));
        assert_eq!(r.verdict, ControlVerdict::Violation);
        assert_eq!(r.evidence[0].bytes, Some(8193));
        assert_eq!(r.evidence[0].flow_uids, ["CFirst", "CSecond"]);
    }

    #[test]
    fn acknowledged_unseen_bytes_count_and_the_evidence_says_how_many() {
        let p = policy("");
        let mut f = licensing("CLossy", T0, 1500);
        // The server acknowledged 9000 bytes the capture missed: 7 segments at 1460.
        let m = &mut f.minutes[0];
        m.orig_bytes += 9000;
        m.orig_missed_bytes = 9000;
        m.orig_missed_ip_bytes = 9000 + 7 * 40;
        m.orig_ip_bytes += 9000 + 7 * 40;
        let r = volume(&p, &measured(&[f], &p));
        assert_eq!(r.verdict, ControlVerdict::Violation);
        assert_eq!(r.evidence[0].bytes, Some(1500 + 9280));
        assert!(
            r.evidence[0].what.ends_with(
                ", of which 9.0 KB of payload the server acknowledged but the capture did not hold"
            ),
            "{}",
            r.evidence[0].what
        );
    }

    #[test]
    fn ratios_read_as_multiples_of_the_budget() {
        assert_eq!(format_ratio(16384, 8192), "2.0");
        assert_eq!(format_ratio(1, 0), "inf");
    }
}
