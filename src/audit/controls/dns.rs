//! DNS: no DNS tunnelling and no unapproved resolvers.
//!
//! DNS is the one protocol almost every network lets out, so it is the usual way to smuggle data
//! past an egress policy. Per source host and registered domain (approximated by
//! [`parent_domain`]) this control flags:
//! - a minute with more than `max_queries_per_minute` queries, or more than
//!   `max_txt_queries_per_minute` TXT/NULL/ANY queries (the usual tunnel downlink);
//! - ten or more distinct names with a label longer than `max_label_length`, or of at least
//!   `entropy_min_label_length` characters with entropy above `max_label_entropy` (encoded data
//!   is long and close to random; one odd name is a CDN, ten are a tunnel);
//! - queries to port 53 of a resolver the policy does not approve (multicast and broadcast
//!   discovery excepted: they name no resolver).
//!
//! Minutes are packet-time windows `[floor(ts/60)*60, +60)` of each flow's first packet, as
//! `units::minute_start_secs` draws them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::{endpoint, result};
use crate::audit::classify::{Classified, Direction};
use crate::audit::{ControlId, ControlResult, ControlVerdict, Evidence, Timestamp};
use crate::inspect::dns::label_entropy;
use crate::policy::Policy;
use crate::units::{minute_start_secs, rfc3339, NANOS};

/// Distinct long or high-entropy names under one domain from one source that make a tunnel.
const ODD_NAMES_FOR_TUNNEL: usize = 10;

/// Public DNS-over-HTTPS services, by the TLS name their clients ask for (the major entries of
/// curl's list of public DoH servers). A lookup through them is invisible to this audit.
const PUBLIC_DOH_NAMES: [&str; 12] = [
    "dns.google",
    "dns.google.com",
    "cloudflare-dns.com",
    "mozilla.cloudflare-dns.com",
    "one.one.one.one",
    "dns.quad9.net",
    "dns9.quad9.net",
    "doh.opendns.com",
    "dns.adguard-dns.com",
    "dns.nextdns.io",
    "doh.cleanbrowsing.org",
    "dns.mullvad.net",
];

/// (source, parent domain, minute start in seconds).
type MinuteKey = (IpAddr, String, i64);

/// What the DNS flows added up to, before judging.
#[derive(Default)]
struct Tally<'c, 'f> {
    any_dns: bool,
    /// Queries, TXT queries and flow uids per source, domain and minute.
    per_minute: BTreeMap<MinuteKey, (u64, u64, Vec<String>)>,
    /// Long or high-entropy names per source and domain.
    odd_labels: BTreeMap<(IpAddr, String), BTreeSet<String>>,
    /// Flows per unapproved resolver (`address:port`).
    unapproved: BTreeMap<String, Vec<&'c Classified<'f>>>,
    /// Egress flows that carry lookups the audit cannot read (DNS over TLS, QUIC or HTTPS).
    hidden: Vec<(&'c Classified<'f>, &'static str)>,
}

/// Runs DNS over the flows that carried DNS.
pub(super) fn dns(flows: &[Classified<'_>], policy: &Policy) -> ControlResult {
    let rule = "No DNS tunnelling (query volume, long or high-entropy labels, TXT volume to one domain) and no unapproved resolvers.";
    let mut tally = Tally::default();
    for c in flows {
        tally.add(c, policy);
        tally.add_hidden(c);
    }
    let hidden = tally.hidden_evidence();
    if !tally.any_dns && hidden.is_empty() {
        return result(
            ControlId::Dns,
            rule,
            ControlVerdict::NotApplicable,
            "no DNS traffic".into(),
            Vec::new(),
        );
    }
    let mut evidence = tally.resolver_evidence();
    evidence.extend(tally.volume_evidence(policy));
    evidence.extend(tally.label_evidence());
    // Every line above is a violation of its own; hidden lookups are findings.
    if evidence.is_empty() && !hidden.is_empty() {
        return result(
            ControlId::Dns,
            rule,
            ControlVerdict::Finding,
            format!(
                "{} flow(s) carry DNS lookups the audit cannot read (DNS over TLS or HTTPS): the names they resolve, and so the destinations they lead to, are hidden",
                hidden.len()
            ),
            hidden,
        );
    }
    evidence.extend(hidden);
    if !evidence.is_empty() {
        result(
            ControlId::Dns,
            rule,
            ControlVerdict::Violation,
            format!(
                "{} DNS anomaly(ies): tunnelling-shaped queries or unapproved resolvers",
                evidence.len()
            ),
            evidence,
        )
    } else {
        result(
            ControlId::Dns,
            rule,
            ControlVerdict::Pass,
            "DNS volume, labels and resolvers within policy".into(),
            evidence,
        )
    }
}

impl<'c, 'f> Tally<'c, 'f> {
    /// Counts one flow's DNS (nothing for a flow without DNS).
    fn add(&mut self, c: &'c Classified<'f>, policy: &Policy) {
        let Some(d) = &c.flow.dns else { return };
        self.any_dns = true;
        // Only the deployment's own lookups name its resolvers: local traffic (loopback stubs,
        // multicast and broadcast discovery) names none, and queries from outside are not ours.
        let ours = matches!(c.direction, Direction::Egress | Direction::Internal);
        let udp = c.flow.proto == crate::flow::record::Transport::Udp;
        if d.queries > 0
            && ours
            && !broadcast(c.flow.resp_h)
            && c.flow.resp_p == 53
            && !policy.approved_resolver(c.name.as_deref(), c.flow.resp_h, c.flow.resp_p, udp)
        {
            self.unapproved
                .entry(endpoint(c.flow.resp_h, c.flow.resp_p))
                .or_default()
                .push(c);
        }
        let minute = minute_start_secs(c.flow.ts_nanos);
        // A flow's queries are spread evenly over its names (the record keeps no count per name).
        let per_name = if d.names.is_empty() {
            0
        } else {
            d.queries / d.names.len() as u64
        };
        for name in &d.names {
            let domain = parent_domain(name);
            let e = self
                .per_minute
                .entry((c.flow.orig_h, domain.clone(), minute))
                .or_default();
            e.0 += per_name.max(1);
            if d.txt_queries > 0 {
                e.1 += d.txt_queries.div_ceil(d.names.len() as u64);
            }
            e.2.push(c.flow.uid.clone());
            if odd_name(name, policy) {
                self.odd_labels
                    .entry((c.flow.orig_h, domain))
                    .or_default()
                    .insert(name.clone());
            }
        }
    }

    /// Notes an egress flow of encrypted DNS: DNS over TLS or QUIC (port 853, RFC 7858 and
    /// RFC 9250) or DNS over HTTPS to a public DoH service (RFC 8484, by its TLS name).
    fn add_hidden(&mut self, c: &'c Classified<'f>) {
        if c.direction != Direction::Egress {
            return;
        }
        let sni = c.flow.tls.as_ref().and_then(|t| t.sni.as_deref());
        if c.flow.resp_p == 853 {
            self.hidden.push((c, "DNS over TLS/QUIC (port 853)"));
        } else if sni.is_some_and(|n| {
            PUBLIC_DOH_NAMES
                .iter()
                .any(|d| n.trim_end_matches('.').eq_ignore_ascii_case(d))
        }) {
            self.hidden.push((c, "DNS over HTTPS to a public resolver"));
        }
    }

    /// One line per flow of encrypted DNS.
    fn hidden_evidence(&self) -> Vec<Evidence> {
        self.hidden
            .iter()
            .map(|(c, how)| Evidence {
                what: format!(
                    "{} sends {how} to {}: its lookups are hidden from this audit",
                    c.flow.orig_h,
                    super::destination_label(c)
                ),
                flow_uids: vec![c.flow.uid.clone()],
                ts: Some(Timestamp(c.flow.ts_nanos)),
                source: Some(c.flow.orig_h.to_string()),
                destination: Some(super::destination_label(c)),
                bytes: Some(c.flow.orig_ip_bytes),
            })
            .collect()
    }

    /// One line per unapproved resolver, with its flows and their sources.
    fn resolver_evidence(&self) -> Vec<Evidence> {
        self.unapproved
            .iter()
            .map(|(resolver, cs)| Evidence {
                what: format!(
                    "{} DNS flow(s) to unapproved resolver {resolver} from {}",
                    cs.len(),
                    cs.iter()
                        .map(|c| c.flow.orig_h.to_string())
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                flow_uids: cs.iter().map(|c| c.flow.uid.clone()).collect(),
                ts: cs.first().map(|c| Timestamp(c.flow.ts_nanos)),
                destination: Some(resolver.clone()),
                ..Evidence::default()
            })
            .collect()
    }

    /// One line per source, domain and minute over a query limit (the limit itself is within).
    fn volume_evidence(&self, policy: &Policy) -> Vec<Evidence> {
        self.per_minute
            .iter()
            .filter(|(_, (queries, txt, _))| {
                *queries > policy.dns.max_queries_per_minute
                    || *txt > policy.dns.max_txt_queries_per_minute
            })
            .map(|((source, domain, minute), (queries, txt, uids))| Evidence {
                what: format!(
                    "{source} sent {queries} queries ({txt} TXT) under {domain} in the minute from {}",
                    rfc3339(minute * NANOS)
                ),
                flow_uids: uids.iter().take(10).cloned().collect(),
                ts: Some(Timestamp(minute * NANOS)),
                source: Some(source.to_string()),
                destination: Some(domain.clone()),
                bytes: None,
            })
            .collect()
    }

    /// One line per source and domain with enough odd names to be a tunnel.
    fn label_evidence(&self) -> Vec<Evidence> {
        self.odd_labels
            .iter()
            .filter(|(_, names)| names.len() >= ODD_NAMES_FOR_TUNNEL)
            .map(|((source, domain), names)| {
                let example = names.iter().next().cloned().unwrap_or_default();
                Evidence {
                    what: format!(
                        "{source} queried {} names under {domain} with long or high-entropy labels, e.g. {example}",
                        names.len()
                    ),
                    source: Some(source.to_string()),
                    destination: Some(domain.clone()),
                    ..Evidence::default()
                }
            })
            .collect()
    }
}

/// Multicast and broadcast destinations (mDNS, LLMNR, NetBIOS-style discovery): they name no
/// resolver, so they cannot be an unapproved one.
fn broadcast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_multicast() || v4.is_broadcast() || v4.octets()[3] == 255,
        IpAddr::V6(v6) => v6.is_multicast(),
    }
}

/// A name with a label too long, or long enough and too random, to be a word.
fn odd_name(name: &str, policy: &Policy) -> bool {
    name.split('.').any(|l| {
        l.len() > policy.dns.max_label_length
            || (l.len() >= policy.dns.entropy_min_label_length
                && label_entropy(l) > policy.dns.max_label_entropy)
    })
}

/// The last two labels of a name: an approximation of its registered domain (no public-suffix
/// list, so `x.co.uk` groups under `co.uk`; grouping coarser than needed only makes the DNS
/// thresholds stricter).
fn parent_domain(name: &str) -> String {
    let labels: Vec<&str> = name.trim_end_matches('.').split('.').collect();
    let n = labels.len();
    if n <= 2 {
        name.to_ascii_lowercase()
    } else {
        labels[n - 2..].join(".").to_ascii_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{classified, flow, licensing, policy, T0};
    use super::*;
    use crate::flow::record::{DnsSummary, Transport};
    use crate::flow::FlowRecord;
    use crate::units::MINUTE_NANOS;

    /// A DNS flow from 192.0.2.10 to `resolver` port 53 at `ts_nanos`, asking `names`
    /// `queries` times in all.
    fn lookup(
        uid: &str,
        ts_nanos: i64,
        resolver: &str,
        names: &[&str],
        queries: u64,
    ) -> FlowRecord {
        let mut f = flow(uid, ts_nanos, None);
        f.proto = Transport::Udp;
        f.ip_proto = 17;
        f.resp_h = resolver.parse().unwrap();
        f.resp_p = 53;
        f.dns = Some(DnsSummary {
            queries,
            responses: queries,
            names: names.iter().map(|n| n.to_string()).collect(),
            ..DnsSummary::default()
        });
        f
    }

    fn run(flows: &[FlowRecord]) -> ControlResult {
        let p = policy("");
        assert_eq!(
            (
                p.dns.max_queries_per_minute,
                p.dns.max_txt_queries_per_minute
            ),
            (120, 30)
        );
        dns(&classified(flows, &p), &p)
    }

    #[test]
    fn no_dns_does_not_apply() {
        assert_eq!(
            run(&[licensing("CLic", T0, 1500)]).verdict,
            ControlVerdict::NotApplicable
        );
    }

    #[test]
    fn exactly_the_query_limit_in_a_minute_passes_one_more_is_a_violation() {
        let at = run(&[lookup("CAt", T0, "192.0.2.53", &["www.example.com"], 120)]);
        assert_eq!(at.verdict, ControlVerdict::Pass);
        assert_eq!(at.summary, "DNS volume, labels and resolvers within policy");
        let r = run(&[lookup(
            "COver",
            T0 + NANOS,
            "192.0.2.53",
            &["www.example.com"],
            121,
        )]);
        assert_eq!(r.verdict, ControlVerdict::Violation);
        assert_eq!(r.evidence.len(), 1);
        let e = &r.evidence[0];
        assert_eq!(
            e.what,
            "192.0.2.10 sent 121 queries (0 TXT) under example.com in the minute from \
             2023-11-14T22:14:00.000000Z"
        );
        assert_eq!(e.ts, Some(Timestamp(T0)));
        assert_eq!(e.flow_uids, ["COver"]);
        assert_eq!(e.destination.as_deref(), Some("example.com"));
    }

    #[test]
    fn exactly_the_txt_limit_passes_one_more_is_a_violation() {
        let txt = |uid: &str, n: u64| {
            let mut f = lookup(uid, T0, "192.0.2.53", &["t.example.com"], n);
            f.dns.as_mut().unwrap().txt_queries = n;
            f
        };
        assert_eq!(run(&[txt("CAt", 30)]).verdict, ControlVerdict::Pass);
        let r = run(&[txt("COver", 31)]);
        assert_eq!(r.verdict, ControlVerdict::Violation);
        assert!(r.evidence[0]
            .what
            .contains("sent 31 queries (31 TXT) under example.com"));
    }

    #[test]
    fn queries_at_59_9_s_and_at_the_next_minute_fall_in_different_minutes() {
        let before = T0 + 59_900_000_000;
        let next = T0 + MINUTE_NANOS;
        let split = run(&[
            lookup("CLate", before, "192.0.2.53", &["www.example.com"], 61),
            lookup("CNext", next, "192.0.2.53", &["www.example.com"], 61),
        ]);
        assert_eq!(split.verdict, ControlVerdict::Pass);
        let same = run(&[
            lookup("CEarly", T0, "192.0.2.53", &["www.example.com"], 61),
            lookup("CLate", before, "192.0.2.53", &["www.example.com"], 61),
        ]);
        assert_eq!(same.verdict, ControlVerdict::Violation);
        assert_eq!(same.evidence[0].ts, Some(Timestamp(T0)));
        assert_eq!(same.evidence[0].flow_uids, ["CEarly", "CLate"]);
    }

    #[test]
    fn an_unapproved_resolver_is_a_violation_broadcast_is_not() {
        let r = run(&[
            lookup("CPublic", T0, "8.8.8.8", &["www.example.com"], 1),
            lookup("CBroadcast", T0, "203.0.113.255", &["www.example.com"], 1),
        ]);
        assert_eq!(r.verdict, ControlVerdict::Violation);
        assert_eq!(r.evidence.len(), 1);
        let e = &r.evidence[0];
        assert_eq!(
            e.what,
            "1 DNS flow(s) to unapproved resolver 8.8.8.8:53 from 192.0.2.10"
        );
        assert_eq!(e.flow_uids, ["CPublic"]);
        assert_eq!(e.destination.as_deref(), Some("8.8.8.8:53"));
        assert_eq!(e.ts, Some(Timestamp(T0)));
    }

    #[test]
    fn egress_allow_approves_a_resolver_unless_the_resolver_list_is_set() {
        let allow = "[egress]\nallow = [\"203.0.113.53:53/udp\"]\n";
        let flows = [lookup(
            "CExt",
            T0,
            "203.0.113.53",
            &["license.deepgram.com"],
            1,
        )];
        let p = policy(allow);
        let r = dns(&classified(&flows, &p), &p);
        assert_eq!(r.verdict, ControlVerdict::Pass, "{}", r.summary);
        let p = policy(&format!("{allow}[dns]\nresolvers = [\"192.0.2.53\"]\n"));
        let r = dns(&classified(&flows, &p), &p);
        assert_eq!(r.verdict, ControlVerdict::Violation);
        assert_eq!(r.evidence[0].flow_uids, ["CExt"]);
    }

    #[test]
    fn loopback_stubs_and_outside_clients_name_no_resolver_of_ours() {
        let mut stub = lookup("CStub", T0, "127.0.0.53", &["license.deepgram.com"], 1);
        stub.orig_h = "127.0.0.1".parse().unwrap();
        let mut transit = lookup("CTransit", T0, "198.51.100.53", &["example.com"], 1);
        transit.orig_h = "198.51.100.7".parse().unwrap();
        let r = run(&[stub, transit]);
        assert_eq!(r.verdict, ControlVerdict::Pass, "{}", r.summary);
    }

    #[test]
    fn encrypted_dns_from_a_deployment_host_is_a_finding() {
        let mut dot = flow("CDoT", T0, None);
        dot.resp_h = "203.0.113.99".parse().unwrap();
        dot.resp_p = 853;
        let mut doh = flow("CDoH", T0 + NANOS, Some("dns.google"));
        doh.tls = serde_json::from_value(serde_json::json!(
            {"sni": "dns.google", "ech": false, "quic": false}
        ))
        .expect("a TLS summary");
        let https = flow("CWeb", T0, Some("www.example.com"));
        let r = run(&[dot, doh, https]);
        assert_eq!(r.verdict, ControlVerdict::Finding, "{}", r.summary);
        let uids: Vec<_> = r.evidence.iter().map(|e| e.flow_uids[0].as_str()).collect();
        assert_eq!(uids, ["CDoT", "CDoH"]);
        assert!(r.evidence[0].what.contains("DNS over TLS/QUIC (port 853)"));
        assert!(r.evidence[1]
            .what
            .contains("DNS over HTTPS to a public resolver"));
    }

    #[test]
    fn ten_names_with_over_long_labels_are_a_tunnel() {
        // 52 characters is the limit (within); 53 is over. Two letters keep entropy low.
        let names = |len: usize, n: usize| -> Vec<String> {
            (0..n)
                .map(|i| format!("{}{i}.t.example.com", "ab".repeat(len).split_at(len - 1).0))
                .collect()
        };
        let run_names = |names: Vec<String>| {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            run(&[lookup(
                "CTunnel",
                T0,
                "192.0.2.53",
                &refs,
                refs.len() as u64,
            )])
        };
        assert_eq!(run_names(names(52, 10)).verdict, ControlVerdict::Pass);
        assert_eq!(run_names(names(53, 9)).verdict, ControlVerdict::Pass);
        let r = run_names(names(53, 10));
        assert_eq!(r.verdict, ControlVerdict::Violation);
        assert_eq!(r.evidence.len(), 1);
        assert!(
            r.evidence[0].what.starts_with(
                "192.0.2.10 queried 10 names under example.com with long or high-entropy labels, e.g. abab"
            ),
            "{}",
            r.evidence[0].what
        );
    }

    #[test]
    fn parent_domain_is_the_last_two_labels() {
        assert_eq!(parent_domain("A.B.Example.COM."), "example.com");
        assert_eq!(parent_domain("localhost"), "localhost");
    }
}
