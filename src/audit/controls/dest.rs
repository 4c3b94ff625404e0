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
//! inferred name) and addresses shared with unrelated names (CDNs) are shown, not findings.

use std::collections::{BTreeMap, BTreeSet};

use super::{destination_label, result};
use crate::audit::classify::{Classified, Direction, FlowClass};
use crate::audit::{ControlId, ControlResult, ControlVerdict, Evidence, Timestamp};
use crate::names::{AnswerSeen, FlowName, NameEvidence, NameSource, Strength};
use crate::policy::Policy;
use crate::units::{human_bytes, rfc3339};

/// Flow uids listed on one aggregated evidence line.
const UIDS_PER_LINE: usize = 20;

/// Runs DEST over the classified flows.
pub(super) fn dest(flows: &[Classified<'_>], policy: &Policy) -> ControlResult {
    let rule = "Every egress flow is licensing or an explicitly allowed destination; unknown destinations and hosted transcription are violations; licensing names the capture's DNS contradicts are findings.";
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
    let (findings, notes) = name_checks(flows, policy);
    if bad.is_empty() {
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
        let evidence = findings.into_iter().chain(notes).collect();
        return result(ControlId::Dest, rule, verdict, summary, evidence);
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
    let contradictions = findings.len();
    let evidence = by_dest
        .iter()
        .map(|(dest, (class, cs))| destination_evidence(dest, *class, cs))
        .chain(findings)
        .chain(notes)
        .collect::<Vec<_>>();
    let names: Vec<_> = by_dest.keys().take(3).cloned().collect();
    result(
        ControlId::Dest,
        rule,
        ControlVerdict::Violation,
        format!(
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
        ),
        evidence,
    )
}

/// The name of a flow that is licensing because of what it said about itself (SNI or CONNECT)
/// and went straight to the address it named. A client's tunnel to a forward proxy is left out:
/// it goes to the proxy's address by design, and the proxy's own upstream leg is judged instead.
fn licensing_by_sni<'c>(c: &'c Classified<'_>) -> Option<&'c FlowName> {
    if !c.class.is_licensing() || c.class == FlowClass::ForwardProxyLicensing {
        return None;
    }
    let name = c.flow.name.as_ref()?;
    matches!(name.source, NameSource::TlsSni | NameSource::HttpConnect).then_some(name)
}

/// The name contradictions (findings) and the weaker or shared name evidence (shown only).
fn name_checks(flows: &[Classified<'_>], policy: &Policy) -> (Vec<Evidence>, Vec<Evidence>) {
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
    let mut notes = Vec::new();
    notes.extend(weak_names(flows));
    notes.extend(shared_addresses(flows, policy));
    (findings, notes)
}

/// The query name of a DNS binding and every alias on its CNAME chain.
fn names_of(e: &NameEvidence) -> impl Iterator<Item = &str> {
    std::iter::once(e.name.as_str()).chain(e.cname_chain.iter().map(String::as_str))
}

/// `to CLIENT at TIME (TTL n s, DNS flow UID)`: where and when a DNS answer was seen.
fn answer_words(client: Option<std::net::IpAddr>, seen: i64, ttl: u32, uid: Option<&str>) -> String {
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
        source_words(name.source),
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
        source_words(name.source),
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
    let mut seen: BTreeMap<(i64, String, i64, String), (String, Vec<String>, i64)> =
        BTreeMap::new();
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
                format!("{:?}", k.first.client),
                k.second.seen_ts_nanos,
                format!("{:?}", k.second.client),
            );
            let entry = seen.entry(key).or_insert_with(|| {
                let what = format!(
                    "DNS answered {} with disjoint addresses inside each other's window: {} and {}",
                    k.name,
                    answer_seen_words(&k.first),
                    answer_seen_words(&k.second)
                );
                let uids = [&k.first.dns_uid, &k.second.dns_uid]
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect();
                (what, uids, k.first.seen_ts_nanos)
            });
            if entry.1.len() < UIDS_PER_LINE && !entry.1.contains(&c.flow.uid) {
                entry.1.push(c.flow.uid.clone());
            }
        }
    }
    seen.into_values()
        .map(|(what, flow_uids, ts)| Evidence {
            what,
            flow_uids,
            ts: Some(Timestamp(ts)),
            source: None,
            destination: None,
            bytes: None,
        })
        .collect()
}

/// Shown, not a finding: licensing flows whose name rests on weaker evidence than a DNS answer
/// agreeing with the flow's own claim.
fn weak_names(flows: &[Classified<'_>]) -> Option<Evidence> {
    let weak: Vec<_> = flows
        .iter()
        .filter(|c| c.class.is_licensing() && c.class != FlowClass::ForwardProxyLicensing)
        .filter_map(|c| c.flow.name.as_ref().map(|n| (c, n.strength)))
        .filter(|(_, s)| !matches!(s, Strength::Confirmed | Strength::Resolved))
        .collect();
    if weak.is_empty() {
        return None;
    }
    let mut counts: BTreeMap<Strength, usize> = BTreeMap::new();
    for (_, s) in &weak {
        *counts.entry(*s).or_default() += 1;
    }
    let words: Vec<_> = counts
        .iter()
        .map(|(s, n)| format!("{n} {}", s.as_str()))
        .collect();
    Some(Evidence {
        what: format!(
            "{} licensing flow(s) named without a DNS answer from the capture to confirm them ({}): shown, not a finding",
            weak.len(),
            words.join(", ")
        ),
        flow_uids: weak
            .iter()
            .take(UIDS_PER_LINE)
            .map(|(c, _)| c.flow.uid.clone())
            .collect(),
        ts: weak.first().map(|(c, _)| Timestamp(c.flow.ts_nanos)),
        source: None,
        destination: None,
        bytes: None,
    })
}

/// Shown, not a finding: licensing addresses the capture's DNS also gives to unrelated names
/// (CDNs, round robin), one line per address.
fn shared_addresses(flows: &[Classified<'_>], policy: &Policy) -> Vec<Evidence> {
    let mut by_addr: BTreeMap<String, (BTreeSet<String>, Vec<String>, i64)> = BTreeMap::new();
    for c in flows {
        let Some(name) = licensing_by_sni(c) else {
            continue;
        };
        let foreign: Vec<_> = name
            .dns_names_for_address
            .iter()
            .filter(|e| !names_of(e).any(|n| policy.is_hosted_transcription(n)))
            .map(|e| e.name.clone())
            .collect();
        if foreign.is_empty() {
            continue;
        }
        let entry = by_addr
            .entry(format!("{} ({})", c.flow.resp_h, name.name))
            .or_insert_with(|| (BTreeSet::new(), Vec::new(), c.flow.ts_nanos));
        entry.0.extend(foreign);
        if entry.1.len() < UIDS_PER_LINE {
            entry.1.push(c.flow.uid.clone());
        }
    }
    by_addr
        .into_iter()
        .map(|(dest, (names, uids, ts))| Evidence {
            what: format!(
                "licensing address {dest} also goes by {} in the capture's DNS: a shared address (CDN or round robin), shown, not a finding",
                names.into_iter().collect::<Vec<_>>().join(", ")
            ),
            flow_uids: uids,
            ts: Some(Timestamp(ts)),
            source: None,
            destination: Some(dest),
            bytes: None,
        })
        .collect()
}

fn source_words(source: NameSource) -> &'static str {
    match source {
        NameSource::TlsSni => "TLS SNI",
        NameSource::HttpConnect => "HTTP CONNECT",
        NameSource::HttpHost => "HTTP Host",
        NameSource::DnsAnswer => "a DNS answer",
        NameSource::Operator => "the operator mapping",
    }
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
        let p = policy("");
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
}
