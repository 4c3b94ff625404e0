//! DEST: every egress flow is licensing or an explicitly allowed destination.
//!
//! A self-hosted deployment keeps audio inside the network; the only traffic it needs to send out
//! is licensing. So a flow to a destination nothing in the policy explains (`unknown`), to
//! Deepgram's hosted transcription API, or to a licensing name on a port that is not the
//! licensing port is a violation. Evidence is one line per destination, with every flow that
//! reached it, so a chatty destination is one line rather than forty.
//!
//! Licensing is recognised by the name a flow gives itself (TLS SNI, CONNECT), which is only a
//! claim; the capture's DNS answers are what tie an address to a name. Where the two disagree the
//! result is a finding, never silence and never a violation (names can be wrong for innocent
//! reasons): licensing SNI to an address none of the window's answers for that name gave, to an
//! address the DNS gives to a hosted transcription name, or a licensing name answered with
//! disjoint addresses to two clients at the same time. Weaker evidence alone (a claimed or
//! inferred name) and addresses shared with unrelated names (CDNs) are shown on the flow's name
//! (its strength and caveats), not here: they are not findings.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::{destination_label, flow_evidence, result};
use crate::audit::classify::{Classified, Direction, FlowClass};
use crate::audit::{ControlId, ControlResult, ControlVerdict, Evidence, Timestamp};
use crate::names::{AnswerSeen, FlowName, NameEvidence, NameSource};
use crate::policy::Policy;
use crate::units::{human_bytes, rfc3339};

/// Flow uids listed on one aggregated evidence line.
const UIDS_PER_LINE: usize = 20;

const RULE: &str = "Every egress flow is licensing or an explicitly allowed destination; unknown destinations and hosted transcription are violations; licensing names the capture's DNS contradicts are findings.";

/// Runs DEST over the classified flows.
pub(super) fn dest(flows: &[Classified<'_>], policy: &Policy) -> ControlResult {
    let bad = unexplained(flows, policy);
    let alternates: Vec<Evidence> = flows
        .iter()
        .filter_map(|c| worse_reading(c, policy))
        .collect();
    let findings = name_checks(flows, policy);
    if !bad.is_empty() {
        return violations(&bad, alternates, findings);
    }
    if !alternates.is_empty() {
        let summary = format!(
            "{} flow(s) whose data reads two ways name, in the other reading, a destination nothing allows",
            alternates.len()
        );
        let evidence = alternates.into_iter().chain(findings).collect();
        return result(
            ControlId::Dest,
            RULE,
            ControlVerdict::Violation,
            summary,
            evidence,
        );
    }
    let egress = flows
        .iter()
        .filter(|c| c.direction == Direction::Egress || c.class.is_licensing())
        .count();
    let (verdict, summary) = if findings.is_empty() {
        (
            ControlVerdict::Pass,
            format!("all {egress} egress flows are licensing or allowed"),
        )
    } else {
        (
            ControlVerdict::Finding,
            format!(
                "all {egress} egress flows are licensing or allowed, but the capture's DNS contradicts licensing names {} time(s)",
                findings.len()
            ),
        )
    };
    result(ControlId::Dest, RULE, verdict, summary, findings)
}

/// Egress nothing explains: unknown destinations, hosted transcription, licensing names on
/// another port, and a contradicted licensing name once it carries more than licensing may.
fn unexplained<'c, 'f>(flows: &'c [Classified<'f>], policy: &Policy) -> Vec<&'c Classified<'f>> {
    let budget = policy.licensing.max_egress_bytes_per_minute;
    flows
        .iter()
        .filter(|c| match c.class {
            FlowClass::Unknown | FlowClass::HostedTranscription | FlowClass::LicensingWrongPort => {
                true
            }
            // A contradicted licensing name is a finding while it behaves like licensing; a
            // minute over the licensing budget makes it egress nothing explains.
            FlowClass::ContradictedLicensing => {
                c.flow.minutes.iter().any(|m| m.orig_ip_bytes > budget)
            }
            _ => false,
        })
        .collect()
}

/// The violation: one evidence line per destination with its flows, then the other readings and
/// the name contradictions.
fn violations(
    bad: &[&Classified<'_>],
    alternates: Vec<Evidence>,
    findings: Vec<Evidence>,
) -> ControlResult {
    let mut by_dest: BTreeMap<String, (FlowClass, Vec<&Classified<'_>>)> = BTreeMap::new();
    for c in bad {
        by_dest
            .entry(destination_label(c))
            .or_insert((c.class, Vec::new()))
            .1
            .push(c);
    }
    let contradictions = findings.len();
    let evidence = by_dest
        .iter()
        .map(|(dest, (class, cs))| destination_evidence(dest, *class, cs))
        .chain(alternates)
        .chain(findings)
        .collect::<Vec<_>>();
    let names: Vec<_> = by_dest.keys().take(3).cloned().collect();
    let summary = format!(
        "{} egress flow(s) to {} destination(s) nothing allows: {}{}{}",
        bad.len(),
        by_dest.len(),
        names.join(", "),
        if by_dest.len() > 3 { ", ..." } else { "" },
        if contradictions > 0 {
            format!("; the capture's DNS contradicts licensing names {contradictions} time(s)")
        } else {
            String::new()
        }
    );
    result(
        ControlId::Dest,
        RULE,
        ControlVerdict::Violation,
        summary,
        evidence,
    )
}

/// When a flow's TCP data read two ways (overlapping copies that differ), DEST judges the worse
/// reading: the flow classified under each name the other reading gave (SNI, Host, CONNECT). A
/// name that makes it egress nothing allows is a violation, with both readings.
fn worse_reading(c: &Classified<'_>, policy: &Policy) -> Option<Evidence> {
    let conflicts = c.flow.stream_conflicts.as_ref()?;
    let alternates = conflicts
        .alternate_sni
        .iter()
        .map(|n| (NameSource::TlsSni, n))
        .chain(
            conflicts
                .alternate_connect
                .iter()
                .map(|n| (NameSource::HttpConnect, n)),
        )
        .chain(
            conflicts
                .alternate_hosts
                .iter()
                .map(|n| (NameSource::HttpHost, n)),
        );
    for (source, alternate) in alternates {
        let mut other = c.flow.clone();
        other.name =
            crate::names::choose(vec![crate::names::flow_evidence(source, alternate)], false);
        let class = crate::audit::classify::classify(&other, policy).class;
        if matches!(
            class,
            FlowClass::Unknown | FlowClass::HostedTranscription | FlowClass::LicensingWrongPort
        ) {
            let first = c.name.as_deref().unwrap_or("no name");
            return Some(flow_evidence(
                c,
                format!(
                    "TCP data of {} reads two ways: one reading names {first}, the other {alternate} ({}), which nothing allows",
                    c.flow.uid,
                    source.words()
                ),
            ));
        }
    }
    None
}

/// The name of a flow that is licensing because of what it said about itself (SNI or CONNECT)
/// and went straight to the address it named. A client's tunnel to a forward proxy is left out:
/// it goes to the proxy's address by design, and the proxy's own upstream leg is judged instead.
fn licensing_by_sni<'c>(c: &'c Classified<'_>) -> Option<&'c FlowName> {
    let licensing = c.class.is_licensing() || c.class == FlowClass::ContradictedLicensing;
    if !licensing || c.class == FlowClass::ForwardProxyLicensing {
        return None;
    }
    let name = c.flow.name.as_ref()?;
    matches!(name.source, NameSource::TlsSni | NameSource::HttpConnect).then_some(name)
}

/// The name contradictions, each a finding. Weaker evidence (claimed, inferred names) and
/// addresses shared with unrelated names are not: they are shown on the flow's name (strength,
/// caveats), and kept out of this evidence because every evidence line becomes an alert.
fn name_checks(flows: &[Classified<'_>], policy: &Policy) -> Vec<Evidence> {
    let mut findings = Vec::new();
    for c in flows {
        let Some(name) = licensing_by_sni(c) else {
            continue;
        };
        if !name.window_answers_for_name.is_empty() {
            findings.push(unanswered_address(c, name));
        }
        findings.extend(
            name.dns_names_for_address
                .iter()
                .filter(|e| names_of(e).any(|n| policy.is_hosted_transcription(n)))
                .map(|e| hosted_address(c, name, e)),
        );
    }
    findings.extend(answer_conflicts(flows, policy));
    findings
}

/// The query name of a DNS binding and every alias on its CNAME chain.
fn names_of(e: &NameEvidence) -> impl Iterator<Item = &str> {
    std::iter::once(e.name.as_str()).chain(e.cname_chain.iter().map(String::as_str))
}

/// `to CLIENT at TIME (TTL n s, DNS flow UID)`: where and when a DNS answer was seen.
fn answer_words(
    client: Option<std::net::IpAddr>,
    seen: i64,
    ttl: u32,
    uid: Option<&str>,
) -> String {
    format!(
        "to {} at {} (TTL {ttl} s{})",
        client.map_or_else(|| "an unknown client".to_string(), |c| c.to_string()),
        rfc3339(seen),
        uid.map(|u| format!(", DNS flow {u}")).unwrap_or_default()
    )
}

fn answer_seen_words(a: &AnswerSeen) -> String {
    let addrs: Vec<_> = a.addrs.iter().map(ToString::to_string).collect();
    format!(
        "{{{}}} {}",
        addrs.join(", "),
        answer_words(a.client, a.seen_ts_nanos, a.ttl, a.dns_uid.as_deref())
    )
}

/// One flow's evidence line with the DNS flows it rests on added to its uids.
fn name_evidence(c: &Classified<'_>, what: String, dns_uids: Vec<String>) -> Evidence {
    let mut e = super::flow_evidence(c, what);
    for uid in dns_uids {
        if !e.flow_uids.contains(&uid) {
            e.flow_uids.push(uid);
        }
    }
    e
}

/// Finding (a): licensing SNI to an address none of the window's answers for the name gave.
fn unanswered_address(c: &Classified<'_>, name: &FlowName) -> Evidence {
    let answers: Vec<_> = name
        .window_answers_for_name
        .iter()
        .map(answer_seen_words)
        .collect();
    let what = format!(
        "licensing flow {} from {} names {} by {} but goes to {}, which none of the DNS answers for that name in its window gave: {}",
        c.flow.uid,
        c.flow.orig_h,
        name.name,
        name.source.words(),
        c.flow.resp_h,
        answers.join("; ")
    );
    let uids = name
        .window_answers_for_name
        .iter()
        .filter_map(|a| a.dns_uid.clone())
        .collect();
    name_evidence(c, what, uids)
}

/// Finding (b): licensing SNI to an address the capture's DNS gives to hosted transcription.
fn hosted_address(c: &Classified<'_>, name: &FlowName, dns: &NameEvidence) -> Evidence {
    let what = format!(
        "licensing flow {} from {} names {} by {} and goes to {}, which the capture's DNS gives to hosted transcription name {} ({})",
        c.flow.uid,
        c.flow.orig_h,
        name.name,
        name.source.words(),
        c.flow.resp_h,
        dns.name,
        answer_words(
            dns.client,
            dns.seen_ts_nanos.unwrap_or_default(),
            dns.ttl.unwrap_or_default(),
            dns.dns_uid.as_deref()
        )
    );
    name_evidence(c, what, dns.dns_uid.iter().cloned().collect())
}

/// Finding (c): a licensing name answered with disjoint addresses to two clients inside each
/// other's window, once per pair of answers, with the licensing flows that carried it.
fn answer_conflicts(flows: &[Classified<'_>], policy: &Policy) -> Vec<Evidence> {
    // One line per pair of answers: (first seen, first client, second seen, second client).
    type PairKey = (i64, Option<IpAddr>, i64, Option<IpAddr>);
    let mut seen: BTreeMap<PairKey, Evidence> = BTreeMap::new();
    for c in flows.iter().filter(|c| c.class.is_licensing()) {
        let Some(name) = &c.flow.name else {
            continue;
        };
        for k in name
            .answer_conflicts
            .iter()
            .filter(|k| policy.is_licensing_name(&k.name))
        {
            let key = (
                k.first.seen_ts_nanos,
                k.first.client,
                k.second.seen_ts_nanos,
                k.second.client,
            );
            let line = seen.entry(key).or_insert_with(|| Evidence {
                what: format!(
                    "DNS answered {} with disjoint addresses inside each other's window: {} and {}",
                    k.name,
                    answer_seen_words(&k.first),
                    answer_seen_words(&k.second)
                ),
                flow_uids: [&k.first.dns_uid, &k.second.dns_uid]
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect(),
                ts: Some(Timestamp(k.first.seen_ts_nanos)),
                source: None,
                destination: None,
                bytes: None,
            });
            if line.flow_uids.len() < UIDS_PER_LINE && !line.flow_uids.contains(&c.flow.uid) {
                line.flow_uids.push(c.flow.uid.clone());
            }
        }
    }
    seen.into_values().collect()
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
        FlowClass::ContradictedLicensing => format!(
            "{} flow(s) to {dest}, a licensing name the capture's DNS contradicts, {} sent: more in a minute than the licensing budget",
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
    use crate::flow::FlowRecord;
    use crate::names::{AnswerConflict, Strength};

    /// The test flows' LAN (TEST-NET-1 is no longer inside the embedded default).
    const LAN: &str = "[network]\ninternal = [\"192.0.2.0/24\"]\n";
    use crate::units::NANOS;

    #[test]
    fn licensing_and_allowed_egress_pass() {
        let mut allowed = flow("CAllowed", T0, Some("hooks.example.com"));
        allowed.resp_h = "198.51.100.7".parse().unwrap();
        let flows = [licensing("CLic", T0, 1500), allowed];
        let p = policy(&format!(
            "{LAN}[egress]\nallow = [\"hooks.example.com:443\"]\n"
        ));
        let r = dest(&classified(&flows, &p), &p);
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
        let p = policy(LAN);
        let r = dest(&classified(&flows, &p), &p);
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

    /// A DNS answer for `name` giving `addr`, to `client` at `seen`, carried by DNS flow `uid`.
    fn seen(name: &str, addr: &str, client: &str, seen: i64, uid: &str) -> AnswerSeen {
        AnswerSeen {
            name: name.into(),
            addrs: vec![addr.parse().unwrap()],
            client: Some(client.parse().unwrap()),
            ttl: 60,
            seen_ts_nanos: seen,
            dns_uid: Some(uid.into()),
        }
    }

    /// The address binding of [`seen`].
    fn binding(name: &str, client: &str, seen: i64, uid: &str) -> NameEvidence {
        let mut e = crate::names::flow_evidence(NameSource::DnsAnswer, name);
        e.query = Some(name.into());
        e.ttl = Some(60);
        e.seen_ts_nanos = Some(seen);
        e.client = Some(client.parse().unwrap());
        e.dns_uid = Some(uid.into());
        e
    }

    /// Gives `f`'s name a window in which the DNS answered license.deepgram.com with another
    /// address (198.51.100.7, to 192.0.2.10 a second before T0, DNS flow CDns1).
    fn answered_elsewhere(f: &mut FlowRecord) {
        f.name.as_mut().unwrap().window_answers_for_name = vec![seen(
            "license.deepgram.com",
            "198.51.100.7",
            "192.0.2.10",
            T0 - NANOS,
            "CDns1",
        )];
    }

    /// A licensing flow whose name the naming pass graded `strength`.
    fn graded(uid: &str, strength: Strength) -> FlowRecord {
        let mut f = licensing(uid, T0, 1500);
        f.name.as_mut().unwrap().strength = strength;
        f
    }

    fn run(flows: &[FlowRecord]) -> ControlResult {
        let p = policy(LAN);
        dest(&classified(flows, &p), &p)
    }

    #[test]
    fn data_that_reads_two_ways_is_judged_by_the_worse_reading() {
        let mut f = licensing("CTwo", T0, 1500);
        f.stream_conflicts = Some(crate::flow::record::StreamConflicts {
            count: 1,
            alternate_sni: vec!["evil.example.net".into()],
            ..Default::default()
        });
        let r = run(&[f.clone()]);
        assert_eq!(r.verdict, ControlVerdict::Violation, "{}", r.summary);
        assert_eq!(
            r.evidence[0].what,
            "TCP data of CTwo reads two ways: one reading names license.deepgram.com, the other \
             evil.example.net (TLS SNI), which nothing allows"
        );
        // Another reading that names the licensing server too changes nothing.
        f.stream_conflicts.as_mut().unwrap().alternate_sni = vec!["license.deepgram.com".into()];
        assert_eq!(run(&[f]).verdict, ControlVerdict::Pass);
    }

    #[test]
    fn a_contradicted_licensing_name_is_no_check_in_and_over_the_budget_a_violation() {
        let mut small = graded("CSmall", Strength::Claimed);
        answered_elsewhere(&mut small);
        let p = policy(LAN);
        let cs = classified(std::slice::from_ref(&small), &p);
        assert_eq!(cs[0].class, FlowClass::ContradictedLicensing);
        assert!(!crate::audit::checkins::carries_checkins(cs[0].class));
        assert_eq!(run(&[small.clone()]).verdict, ControlVerdict::Finding);
        // At the budget it still behaves like licensing; one byte over, it is unexplained egress.
        let mut big = licensing("CBig", T0, 8193);
        answered_elsewhere(&mut big);
        let r = run(&[small, big]);
        assert_eq!(r.verdict, ControlVerdict::Violation);
        let e = r
            .evidence
            .iter()
            .find(|e| e.flow_uids == ["CBig"])
            .expect("CBig");
        assert!(
            e.what
                .contains("a licensing name the capture's DNS contradicts"),
            "{}",
            e.what
        );
    }

    #[test]
    fn licensing_sni_to_an_address_the_windows_answers_did_not_give_is_a_finding() {
        let mut f = graded("CLic", Strength::Claimed);
        answered_elsewhere(&mut f);
        let r = run(&[f]);
        assert_eq!(r.verdict, ControlVerdict::Finding);
        let e = &r.evidence[0];
        assert!(e.what.contains("licensing flow CLic from 192.0.2.10 names license.deepgram.com by TLS SNI but goes to 203.0.113.10"), "{}", e.what);
        assert!(e.what.contains("{198.51.100.7} to 192.0.2.10 at 2023-11-14T22:13:59.000000Z (TTL 60 s, DNS flow CDns1)"), "{}", e.what);
        assert_eq!(e.flow_uids, ["CLic", "CDns1"]);
        assert_eq!(r.evidence.len(), 1);
    }

    #[test]
    fn licensing_sni_to_a_hosted_transcription_address_is_a_finding() {
        let mut f = graded("CLic", Strength::Confirmed);
        f.name.as_mut().unwrap().dns_names_for_address = vec![binding(
            "api.deepgram.com",
            "192.0.2.11",
            T0 - NANOS,
            "CDns2",
        )];
        let r = run(&[f]);
        assert_eq!(r.verdict, ControlVerdict::Finding);
        assert_eq!(r.evidence.len(), 1);
        assert!(r.evidence[0].what.contains(
            "goes to 203.0.113.10, which the capture's DNS gives to hosted transcription name api.deepgram.com (to 192.0.2.11 at"
        ), "{}", r.evidence[0].what);
        assert_eq!(r.evidence[0].flow_uids, ["CLic", "CDns2"]);
    }

    #[test]
    fn disjoint_licensing_answers_to_two_clients_are_one_finding() {
        let conflict = AnswerConflict {
            name: "license.deepgram.com".into(),
            first: seen(
                "license.deepgram.com",
                "203.0.113.10",
                "192.0.2.10",
                T0,
                "CDnsA",
            ),
            second: seen(
                "license.deepgram.com",
                "198.51.100.7",
                "192.0.2.11",
                T0 + 30 * NANOS,
                "CDnsB",
            ),
        };
        let mut a = graded("CLicA", Strength::Confirmed);
        a.name.as_mut().unwrap().answer_conflicts = vec![conflict.clone()];
        let mut b = graded("CLicB", Strength::Confirmed);
        b.name.as_mut().unwrap().answer_conflicts = vec![conflict];
        let r = run(&[a, b]);
        assert_eq!(r.verdict, ControlVerdict::Finding);
        // Carried by two flows, reported once, with both DNS flows and both licensing flows.
        assert_eq!(r.evidence.len(), 1);
        let e = &r.evidence[0];
        assert!(e.what.starts_with("DNS answered license.deepgram.com with disjoint addresses inside each other's window: {203.0.113.10} to 192.0.2.10"), "{}", e.what);
        assert!(
            e.what.contains("and {198.51.100.7} to 192.0.2.11"),
            "{}",
            e.what
        );
        assert_eq!(e.flow_uids, ["CDnsA", "CDnsB", "CLicA", "CLicB"]);
        assert!(
            r.summary.contains("contradicts licensing names 1 time(s)"),
            "{}",
            r.summary
        );
    }

    #[test]
    fn a_licensing_address_shared_with_foreign_names_is_shown_not_a_finding() {
        let mut f = graded("CLic", Strength::Confirmed);
        f.name.as_mut().unwrap().dns_names_for_address = vec![
            binding("cdn.example.net", "192.0.2.10", T0 - NANOS, "CDns3"),
            binding("www.example.org", "192.0.2.10", T0 - NANOS, "CDns4"),
        ];
        let r = run(&[f]);
        assert_eq!(r.verdict, ControlVerdict::Pass);
        assert!(r.evidence.is_empty(), "{:?}", r.evidence);
    }

    #[test]
    fn claimed_and_inferred_licensing_names_are_shown_not_findings() {
        let flows = [
            graded("CClaimed", Strength::Claimed),
            graded("CInferred", Strength::Inferred),
            graded("CConfirmed", Strength::Confirmed),
        ];
        let r = run(&flows);
        assert_eq!(r.verdict, ControlVerdict::Pass);
        assert_eq!(r.summary, "all 3 egress flows are licensing or allowed");
        assert!(r.evidence.is_empty(), "{:?}", r.evidence);
    }

    #[test]
    fn contradictions_ride_along_a_violation() {
        let mut f = graded("CLic", Strength::Claimed);
        f.name.as_mut().unwrap().window_answers_for_name = vec![seen(
            "license.deepgram.com",
            "198.51.100.7",
            "192.0.2.10",
            T0,
            "CDns1",
        )];
        let unknown = flow("CUnknown", T0, None);
        let r = run(&[f, unknown]);
        assert_eq!(r.verdict, ControlVerdict::Violation);
        assert!(
            r.summary
                .ends_with("; the capture's DNS contradicts licensing names 1 time(s)"),
            "{}",
            r.summary
        );
        assert_eq!(r.evidence.len(), 2);
    }
}
