//! CADENCE: licensing check-ins happen about every `cadence_seconds`.
//!
//! A deployment that stops checking in is either cut off from licensing or checking in some way
//! the capture does not show; either is worth a finding. What counts as a check-in is
//! `audit::checkins` (the one rule). Per source this control reports:
//! - a median interval that drifts from the cadence by more than `cadence_tolerance_seconds`
//!   (either way: checking in far too often is as odd as too rarely);
//! - every gap longer than cadence + tolerance, with its cause read from the packets (SYN
//!   unanswered, RST, TLS alert, DNS failure) by [`failed_attempts`];
//! - a source silent for longer than cadence + tolerance at the end of the capture (overdue).
//!
//! A drift, gap or silence of exactly the tolerance is on time. With no check-in at all the
//! control is a finding only when the capture is longer than one cadence + tolerance (a shorter
//! capture could simply fall between two check-ins).

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::{flow_evidence, result};
use crate::audit::classify::{Classified, FlowClass};
use crate::audit::{ControlId, ControlResult, ControlVerdict, Evidence, Timestamp};
use crate::flow::record::ConnState;
use crate::pipeline::PassSummary;
use crate::policy::Policy;
use crate::units::{as_secs_f64, rfc3339, NANOS};

/// The expected interval and how far a check-in may drift from it, in seconds.
#[derive(Debug, Clone, Copy)]
struct Expected {
    cadence: f64,
    tolerance: f64,
}

impl Expected {
    /// True when `secs` without a check-in is longer than the policy lets a check-in be late.
    fn late(self, secs: f64) -> bool {
        secs > self.cadence + self.tolerance
    }
}

/// Runs CADENCE over every source's check-ins.
pub(super) fn cadence(
    flows: &[Classified<'_>],
    pass: &PassSummary,
    policy: &Policy,
    checkins: &BTreeMap<IpAddr, Vec<(i64, String)>>,
) -> ControlResult {
    let expected = Expected {
        cadence: policy.licensing.cadence_seconds as f64,
        tolerance: policy.licensing.cadence_tolerance_seconds as f64,
    };
    let rule = "Licensing check-ins happen about every cadence_seconds; a gap is a finding, with its cause read from the packets.";
    let capture_secs = as_secs_f64(pass.last_ts_nanos - pass.first_ts_nanos);
    if checkins.is_empty() {
        let verdict = if expected.late(capture_secs) {
            ControlVerdict::Finding
        } else {
            ControlVerdict::NotApplicable
        };
        return result(
            ControlId::Cadence,
            rule,
            verdict,
            format!("no licensing check-in seen in {capture_secs:.0} s of capture"),
            failed_attempts(flows, policy, None, pass.first_ts_nanos, pass.last_ts_nanos),
        );
    }
    let mut evidence = Vec::new();
    let mut summaries = Vec::new();
    for (source, times) in checkins {
        summaries.push(regularity_of(*source, times, expected, &mut evidence));
        for w in times.windows(2) {
            if let Some(gap) = gap_evidence(flows, policy, *source, (&w[0], &w[1]), expected) {
                evidence.extend(gap);
            }
        }
        if let Some((last, uid)) = times.last() {
            let silent = as_secs_f64(pass.last_ts_nanos - last);
            if expected.late(silent) {
                evidence.push(Evidence {
                    what: format!(
                        "{source}: no check-in in the last {silent:.0} s of the capture (overdue)"
                    ),
                    flow_uids: vec![uid.clone()],
                    ts: Some(Timestamp(*last)),
                    source: Some(source.to_string()),
                    ..Evidence::default()
                });
            }
        }
    }
    let verdict = if evidence.is_empty() {
        ControlVerdict::Pass
    } else {
        ControlVerdict::Finding
    };
    result(
        ControlId::Cadence,
        rule,
        verdict,
        summaries.join("; "),
        evidence,
    )
}

/// One source's summary (count, median interval, MAD, skew); pushes a finding when the median
/// drifts from the cadence by more than the tolerance.
fn regularity_of(
    source: IpAddr,
    times: &[(i64, String)],
    expected: Expected,
    evidence: &mut Vec<Evidence>,
) -> String {
    let intervals: Vec<f64> = times
        .windows(2)
        .map(|w| as_secs_f64(w[1].0 - w[0].0))
        .collect();
    if intervals.is_empty() {
        return format!("{source}: 1 check-in");
    }
    let Expected { cadence, tolerance } = expected;
    let (median, mad, skew) = regularity(&intervals);
    if (median - cadence).abs() > tolerance {
        evidence.push(Evidence {
            what: format!("{source} checks in every {median:.1} s, not every {cadence:.0} s"),
            source: Some(source.to_string()),
            ..Evidence::default()
        });
    }
    format!(
        "{source}: {} check-ins, median interval {median:.1} s (MAD {mad:.1} s, Bowley skew {skew:.2})",
        times.len()
    )
}

/// Median, median absolute deviation and Bowley skew of intervals (RITA's beacon measures).
fn regularity(intervals: &[f64]) -> (f64, f64, f64) {
    let mut v = intervals.to_vec();
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    let median = q(0.5);
    let mut dev: Vec<f64> = v.iter().map(|x| (x - median).abs()).collect();
    dev.sort_by(f64::total_cmp);
    let mad = dev[(dev.len() - 1) / 2];
    let (q1, q3) = (q(0.25), q(0.75));
    let skew = if q3 - q1 > 0.0 {
        (q3 + q1 - 2.0 * median) / (q3 - q1)
    } else {
        0.0
    };
    (median, mad, skew)
}

/// The evidence of one late gap between two consecutive check-ins: the gap, then the failed
/// attempts inside it that explain it. None when the gap is on time.
fn gap_evidence(
    flows: &[Classified<'_>],
    policy: &Policy,
    source: IpAddr,
    (from, to): (&(i64, String), &(i64, String)),
    expected: Expected,
) -> Option<Vec<Evidence>> {
    let gap = as_secs_f64(to.0 - from.0);
    if !expected.late(gap) {
        return None;
    }
    // From a second after the last check-in: its own connection is not a failed attempt.
    let causes = failed_attempts(flows, policy, Some(source), from.0 + NANOS, to.0);
    let cause_words = if causes.is_empty() {
        "no failed attempt seen in the capture".to_string()
    } else {
        causes
            .iter()
            .map(|e| e.what.clone())
            .collect::<Vec<_>>()
            .join("; ")
    };
    let mut out = vec![Evidence {
        what: format!(
            "{source}: {gap:.0} s without a check-in (from {} to {}): {cause_words}",
            rfc3339(from.0),
            rfc3339(to.0)
        ),
        flow_uids: vec![from.1.clone(), to.1.clone()],
        ts: Some(Timestamp(from.0)),
        source: Some(source.to_string()),
        ..Evidence::default()
    }];
    out.extend(causes);
    Some(out)
}

/// Failed licensing attempts by `source` (any source if None) between two packet times: the
/// packets say why check-ins stopped (SYN unanswered, RST, TLS alert, DNS failure).
fn failed_attempts(
    flows: &[Classified<'_>],
    policy: &Policy,
    source: Option<IpAddr>,
    from: i64,
    to: i64,
) -> Vec<Evidence> {
    flows
        .iter()
        .filter(|c| {
            let f = c.flow;
            !(source.is_some_and(|s| s != f.orig_h) || f.ts_nanos < from || f.ts_nanos > to)
        })
        .filter_map(|c| {
            let f = c.flow;
            failure(c, policy).map(|why| {
                flow_evidence(c, format!("{} at {}: {why}", f.orig_h, rfc3339(f.ts_nanos)))
            })
        })
        .collect()
}

/// Why one flow is a failed licensing attempt, in words, or None when it is not one.
fn failure(c: &Classified<'_>, policy: &Policy) -> Option<String> {
    let f = c.flow;
    let licensing = c.class.is_licensing() || c.class == FlowClass::LicenseProxyHop;
    if licensing {
        return match (f.conn_state, f.tls.as_ref().and_then(|t| t.server_alert)) {
            (ConnState::S0 | ConnState::SH, _) => Some("SYN unanswered".to_string()),
            (ConnState::REJ, _) => Some("connection refused (RST)".to_string()),
            (ConnState::RSTR | ConnState::RSTRH, _) if f.resp_bytes == 0 => {
                Some("server reset the connection".to_string())
            }
            (_, Some(alert)) => Some(format!("TLS alert {alert} from the server")),
            _ => None,
        };
    }
    let dns = f.dns.as_ref()?;
    let asked_licensing = dns.names.iter().any(|n| policy.is_licensing_name(n));
    if asked_licensing && dns.error_responses > 0 {
        Some(format!("DNS lookup of {} failed", dns.names.join(", ")))
    } else if asked_licensing && dns.responses == 0 {
        Some(format!("DNS lookup of {} unanswered", dns.names.join(", ")))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{classified, flow, licensing, pass, policy, T0};
    use super::*;
    use crate::flow::record::DnsSummary;
    use crate::flow::FlowRecord;

    const SOURCE: &str = "192.0.2.10";
    /// Default cadence (60 s) plus default tolerance (15 s).
    const LATE: i64 = 75 * NANOS;

    /// Check-ins of [`SOURCE`] at `T0` and then after each interval, uids `C0`, `C1`, ...
    fn checkins(intervals: &[i64]) -> BTreeMap<IpAddr, Vec<(i64, String)>> {
        let mut at = T0;
        let mut times = vec![(at, "C0".to_string())];
        for (i, step) in intervals.iter().enumerate() {
            at += step;
            times.push((at, format!("C{}", i + 1)));
        }
        BTreeMap::from([(SOURCE.parse().unwrap(), times)])
    }

    /// CADENCE over `flows` and check-ins, in a capture ending `tail` after the last check-in.
    fn run(
        flows: &[FlowRecord],
        checkins: &BTreeMap<IpAddr, Vec<(i64, String)>>,
        tail: i64,
    ) -> ControlResult {
        let p = policy("");
        assert_eq!(
            (
                p.licensing.cadence_seconds,
                p.licensing.cadence_tolerance_seconds
            ),
            (60, 15)
        );
        let last = checkins.values().flatten().map(|t| t.0).max().unwrap_or(T0);
        cadence(
            &classified(flows, &p),
            &pass(T0, last + tail, 10),
            &p,
            checkins,
        )
    }

    #[test]
    fn median_gaps_and_silence_of_exactly_cadence_plus_tolerance_are_on_time() {
        let r = run(&[], &checkins(&[LATE, LATE, LATE]), LATE);
        assert_eq!(r.verdict, ControlVerdict::Pass, "{:?}", r.evidence);
        assert!(r.evidence.is_empty());
        assert_eq!(
            r.summary,
            "192.0.2.10: 4 check-ins, median interval 75.0 s (MAD 0.0 s, Bowley skew 0.00)"
        );
    }

    #[test]
    fn a_median_a_nanosecond_over_the_tolerance_is_a_finding() {
        let r = run(&[], &checkins(&[LATE + 1, LATE + 1, LATE + 1]), 0);
        assert_eq!(r.verdict, ControlVerdict::Finding);
        assert_eq!(
            r.evidence[0].what,
            "192.0.2.10 checks in every 75.0 s, not every 60 s"
        );
        assert_eq!(r.evidence[0].source.as_deref(), Some(SOURCE));
        // Every interval is also a late gap.
        assert_eq!(r.evidence.len(), 4);
    }

    #[test]
    fn a_median_under_the_cadence_by_exactly_the_tolerance_is_on_time() {
        let at = run(&[], &checkins(&[45 * NANOS, 45 * NANOS]), 0);
        assert_eq!(at.verdict, ControlVerdict::Pass);
        let under = run(&[], &checkins(&[45 * NANOS - 1, 45 * NANOS - 1]), 0);
        assert_eq!(under.verdict, ControlVerdict::Finding);
        assert_eq!(under.evidence.len(), 1);
        assert_eq!(
            under.evidence[0].what,
            "192.0.2.10 checks in every 45.0 s, not every 60 s"
        );
    }

    #[test]
    fn one_gap_a_nanosecond_over_is_a_finding_with_both_check_ins() {
        let on_time = run(&[], &checkins(&[60 * NANOS, 60 * NANOS, LATE]), 0);
        assert_eq!(on_time.verdict, ControlVerdict::Pass);
        let r = run(&[], &checkins(&[60 * NANOS, 60 * NANOS, LATE + 1]), 0);
        assert_eq!(r.verdict, ControlVerdict::Finding);
        // The median is still 60 s: the gap is the only finding.
        assert_eq!(r.evidence.len(), 1);
        let e = &r.evidence[0];
        assert_eq!(
            e.what,
            "192.0.2.10: 75 s without a check-in (from 2023-11-14T22:16:00.000000Z to \
             2023-11-14T22:17:15.000000Z): no failed attempt seen in the capture"
        );
        assert_eq!(e.flow_uids, ["C2", "C3"]);
        assert_eq!(e.ts, Some(Timestamp(T0 + 120 * NANOS)));
        assert_eq!(e.source.as_deref(), Some(SOURCE));
    }

    #[test]
    fn silence_a_nanosecond_over_at_the_end_is_overdue() {
        let on_time = run(&[], &checkins(&[]), LATE);
        assert_eq!(on_time.verdict, ControlVerdict::Pass);
        assert_eq!(on_time.summary, "192.0.2.10: 1 check-in");
        let r = run(&[], &checkins(&[]), LATE + 1);
        assert_eq!(r.verdict, ControlVerdict::Finding);
        assert_eq!(r.evidence.len(), 1);
        let e = &r.evidence[0];
        assert_eq!(
            e.what,
            "192.0.2.10: no check-in in the last 75 s of the capture (overdue)"
        );
        assert_eq!(e.flow_uids, ["C0"]);
        assert_eq!(e.ts, Some(Timestamp(T0)));
    }

    #[test]
    fn no_check_in_is_a_finding_only_in_a_capture_longer_than_cadence_plus_tolerance() {
        let mut syn = licensing("CSyn", T0 + 10 * NANOS, 180);
        syn.conn_state = ConnState::S0;
        syn.resp_bytes = 0;
        let flows = [syn];
        let none = BTreeMap::new();
        let short = run(&flows, &none, LATE);
        assert_eq!(short.verdict, ControlVerdict::NotApplicable);
        assert_eq!(
            short.summary,
            "no licensing check-in seen in 75 s of capture"
        );
        let long = run(&flows, &none, LATE + 1);
        assert_eq!(long.verdict, ControlVerdict::Finding);
        assert_eq!(long.evidence.len(), 1);
        assert_eq!(
            long.evidence[0].what,
            "192.0.2.10 at 2023-11-14T22:14:10.000000Z: SYN unanswered"
        );
        assert_eq!(long.evidence[0].flow_uids, ["CSyn"]);
        assert_eq!(long.evidence[0].bytes, Some(180));
    }

    #[test]
    fn a_gap_names_the_failed_attempts_inside_it() {
        let mut refused = licensing("CRefused", T0 + 70 * NANOS, 120);
        refused.conn_state = ConnState::REJ;
        let mut lookup = flow("CLookup", T0 + 80 * NANOS, None);
        lookup.resp_h = "192.0.2.53".parse().unwrap();
        lookup.resp_p = 53;
        lookup.dns = Some(DnsSummary {
            queries: 1,
            responses: 1,
            names: vec!["license.deepgram.com".into()],
            error_responses: 1,
            ..DnsSummary::default()
        });
        // Another source's failure explains nothing about this one.
        let mut other = licensing("COther", T0 + 90 * NANOS, 120);
        other.orig_h = "192.0.2.11".parse().unwrap();
        other.conn_state = ConnState::S0;
        let flows = [refused, lookup, other];
        let r = run(&flows, &checkins(&[200 * NANOS]), 0);
        assert_eq!(r.verdict, ControlVerdict::Finding);
        let whats: Vec<_> = r.evidence.iter().map(|e| e.what.as_str()).collect();
        assert_eq!(
            whats,
            [
                "192.0.2.10 checks in every 200.0 s, not every 60 s",
                "192.0.2.10: 200 s without a check-in (from 2023-11-14T22:14:00.000000Z to \
                 2023-11-14T22:17:20.000000Z): 192.0.2.10 at 2023-11-14T22:15:10.000000Z: \
                 connection refused (RST); 192.0.2.10 at 2023-11-14T22:15:20.000000Z: DNS \
                 lookup of license.deepgram.com failed",
                "192.0.2.10 at 2023-11-14T22:15:10.000000Z: connection refused (RST)",
                "192.0.2.10 at 2023-11-14T22:15:20.000000Z: DNS lookup of license.deepgram.com failed",
            ]
        );
        assert_eq!(r.evidence[2].flow_uids, ["CRefused"]);
        assert_eq!(r.evidence[3].flow_uids, ["CLookup"]);
    }

    #[test]
    fn regularity_is_median_mad_and_bowley_skew() {
        assert_eq!(regularity(&[60.0, 60.0, 60.0]), (60.0, 0.0, 0.0));
        let (median, mad, skew) = regularity(&[50.0, 60.0, 60.0, 70.0, 120.0]);
        assert_eq!((median, mad), (60.0, 10.0));
        // (q3 + q1 - 2 median) / (q3 - q1) = (70 + 60 - 120) / 10: skewed toward long gaps.
        assert_eq!(skew, 1.0);
    }
}
