//! DURATION: licensing connections are short-lived.
//!
//! Deepgram documents licensing as short connections ("a second or two"); a connection held open
//! longer than `max_connection_seconds` is a channel that could carry anything, so it is a
//! finding. A connection of exactly the limit is within it. Where the policy allows held
//! connections (another Deepgram source describes them), a held connection passes as long as
//! every minute of it stays within the VOLUME budget, and is a violation otherwise.
//!
//! Only connections that were established are judged, whether or not they carried data (one
//! held open for minutes is a channel even while it is quiet). Attempts that never established
//! (unanswered SYNs, refusals) are an outage, which CADENCE explains; calling them held
//! connections would report one outage twice, once wrongly.

use super::{flow_evidence, result};
use crate::audit::classify::Classified;
use crate::audit::{ControlId, ControlResult, ControlVerdict, Evidence};
use crate::flow::record::Transport;
use crate::policy::Policy;
use crate::units::as_secs_f64;

const RULE: &str = "Licensing connections are short-lived, or, where the policy allows it, a held connection whose per-minute bursts stay within budget.";

/// Runs DURATION over the classified flows.
pub(super) fn duration(flows: &[Classified<'_>], policy: &Policy) -> ControlResult {
    let max = policy.licensing.max_connection_seconds;
    let licensing: Vec<_> = flows
        .iter()
        .filter(|c| {
            c.class.is_licensing() && c.flow.proto == Transport::Tcp && c.flow.established()
        })
        .collect();
    if licensing.is_empty() {
        return result(
            ControlId::Duration,
            RULE,
            ControlVerdict::NotApplicable,
            "no licensing connections".into(),
            Vec::new(),
        );
    }
    let long: Vec<_> = licensing
        .iter()
        .filter(|c| as_secs_f64(c.flow.duration_nanos()) > max)
        .collect();
    let mut durations: Vec<f64> = licensing
        .iter()
        .map(|c| as_secs_f64(c.flow.duration_nanos()))
        .collect();
    durations.sort_by(f64::total_cmp);
    let median = durations[durations.len() / 2];
    let evidence: Vec<_> = long
        .iter()
        .map(|c| {
            let bursts = c.flow.minutes.iter().filter(|m| m.orig_pkts > 0).count();
            flow_evidence(
                c,
                format!(
                    "licensing connection held {:.1} s (limit {max} s) with traffic in {bursts} minute(s)",
                    as_secs_f64(c.flow.duration_nanos())
                ),
            )
        })
        .collect();
    if long.is_empty() {
        return result(
            ControlId::Duration,
            RULE,
            ControlVerdict::Pass,
            format!(
                "{} licensing connections, median {median:.2} s, longest {:.2} s (limit {max} s)",
                licensing.len(),
                durations[durations.len() - 1]
            ),
            evidence,
        );
    }
    if policy.licensing.allow_held_connection {
        return held_allowed(&long, policy, evidence);
    }
    result(
        ControlId::Duration,
        RULE,
        ControlVerdict::Finding,
        format!(
            "{} of {} licensing connections outlive {max} s (a held connection, which the policy does not allow)",
            long.len(),
            licensing.len()
        ),
        evidence,
    )
}

/// The verdict on held connections the policy allows: each minute of each must stay within the
/// per-minute budget (a minute of exactly the budget is within it).
fn held_allowed(
    long: &[&&Classified<'_>],
    policy: &Policy,
    evidence: Vec<Evidence>,
) -> ControlResult {
    let over = long.iter().any(|c| {
        c.flow
            .minutes
            .iter()
            .any(|m| m.orig_ip_bytes > policy.licensing.max_egress_bytes_per_minute)
    });
    let verdict = if over {
        ControlVerdict::Violation
    } else {
        ControlVerdict::Pass
    };
    result(
        ControlId::Duration,
        RULE,
        verdict,
        format!(
            "{} held licensing connection(s), allowed by policy; per-minute bursts {} the budget",
            long.len(),
            if over { "exceed" } else { "stay within" }
        ),
        evidence,
    )
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{classified, flow, licensing, policy, slice, T0};
    use super::*;
    use crate::audit::Timestamp;
    use crate::flow::record::ConnState;
    use crate::flow::FlowRecord;
    use crate::units::NANOS;

    /// A licensing connection open for `nanos` (default limit: 5 s).
    fn open_for(uid: &str, nanos: i64) -> FlowRecord {
        let mut f = licensing(uid, T0, 1500);
        f.last_ts_nanos = T0 + nanos;
        f
    }

    #[test]
    fn no_licensing_connection_is_not_applicable() {
        let flows = [flow("COther", T0, None)];
        let r = duration(&classified(&flows, &policy("")), &policy(""));
        assert_eq!(r.verdict, ControlVerdict::NotApplicable);
    }

    #[test]
    fn a_connection_of_exactly_the_limit_is_short() {
        let p = policy("");
        assert_eq!(p.licensing.max_connection_seconds, 5.0);
        let flows = [
            open_for("CShort", NANOS / 2),
            open_for("CAtLimit", 5 * NANOS),
        ];
        let r = duration(&classified(&flows, &p), &p);
        assert_eq!(r.verdict, ControlVerdict::Pass);
        assert!(r.evidence.is_empty());
        assert_eq!(
            r.summary,
            "2 licensing connections, median 5.00 s, longest 5.00 s (limit 5 s)"
        );
    }

    #[test]
    fn a_nanosecond_over_the_limit_is_a_held_connection() {
        let p = policy("");
        let flows = [
            open_for("CShort", NANOS / 2),
            open_for("COver", 5 * NANOS + 1),
        ];
        let r = duration(&classified(&flows, &p), &p);
        assert_eq!(r.verdict, ControlVerdict::Finding);
        assert_eq!(r.evidence.len(), 1);
        let e = &r.evidence[0];
        assert_eq!(
            e.what,
            "licensing connection held 5.0 s (limit 5 s) with traffic in 1 minute(s)"
        );
        assert_eq!(e.flow_uids, ["COver"]);
        assert_eq!(e.ts, Some(Timestamp(T0)));
        assert_eq!(e.bytes, Some(1500));
        assert!(r
            .summary
            .starts_with("1 of 2 licensing connections outlive 5 s"));
    }

    #[test]
    fn attempts_that_never_established_are_cadence_evidence_not_held_connections() {
        let p = policy("");
        let mut flows = Vec::new();
        for (uid, state) in [
            ("CS0", ConnState::S0),
            ("CRej", ConnState::REJ),
            ("CSh", ConnState::SH),
            ("CRst", ConnState::RSTOS0),
        ] {
            let mut f = open_for(uid, 7 * NANOS);
            f.conn_state = state;
            f.resp_bytes = 0;
            flows.push(f);
        }
        let r = duration(&classified(&flows, &p), &p);
        assert_eq!(r.verdict, ControlVerdict::NotApplicable, "{}", r.summary);
        // An established connection held open without data is still judged.
        let mut quiet = open_for("CQuiet", 7 * NANOS);
        quiet.conn_state = ConnState::S1;
        quiet.orig_bytes = 0;
        quiet.resp_bytes = 0;
        flows.push(quiet);
        let r = duration(&classified(&flows, &p), &p);
        assert_eq!(r.verdict, ControlVerdict::Finding);
        assert_eq!(r.evidence[0].flow_uids, ["CQuiet"]);
    }

    #[test]
    fn fractional_limits_compare_exactly() {
        let p = policy("[licensing]\nmax_connection_seconds = 1.5\n");
        let at = [open_for("CAt", 1_500_000_000)];
        assert_eq!(
            duration(&classified(&at, &p), &p).verdict,
            ControlVerdict::Pass
        );
        let over = [open_for("COver", 1_500_000_001)];
        assert_eq!(
            duration(&classified(&over, &p), &p).verdict,
            ControlVerdict::Finding
        );
    }

    #[test]
    fn an_allowed_held_connection_is_judged_by_its_minutes() {
        let p = policy("[licensing]\nallow_held_connection = true\n");
        let mut held = open_for("CHeld", 130 * NANOS);
        held.minutes = vec![slice(1_700_000_040, 8192), slice(1_700_000_160, 900)];
        let within = [held.clone()];
        let r = duration(&classified(&within, &p), &p);
        assert_eq!(r.verdict, ControlVerdict::Pass);
        assert_eq!(
            r.evidence[0].what,
            "licensing connection held 130.0 s (limit 5 s) with traffic in 2 minute(s)"
        );
        assert!(r
            .summary
            .ends_with("per-minute bursts stay within the budget"));
        held.minutes[1].orig_ip_bytes = 8193;
        let over = [held];
        let r = duration(&classified(&over, &p), &p);
        assert_eq!(r.verdict, ControlVerdict::Violation);
        assert!(r.summary.ends_with("per-minute bursts exceed the budget"));
    }
}
