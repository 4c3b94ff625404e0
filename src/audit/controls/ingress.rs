//! INGRESS: the self-hosted API port is reached only from internal networks or the gateway.
//!
//! Self-hosted containers have no ingress authentication of their own; Deepgram's guidance is a
//! gateway with API keys and HTTPS in front. So a flow to an API port on an internal address from
//! outside the internal networks, not from a configured gateway, is a violation; so is a flow
//! that sent payload without TLS when the policy requires TLS (off by default: gateways usually
//! terminate TLS and speak plain HTTP inside).
//!
//! "Reached" means the API answered: a connection that established (or, seen mid-stream, one
//! where both sides sent). An outside SYN nobody answered, or a stray RST, shows that something
//! tried, not that the port is reachable; a firewall that drops it is doing its job.

use super::{endpoint, flow_evidence, result};
use crate::audit::classify::{Classified, Direction};
use crate::audit::{ControlId, ControlResult, ControlVerdict, Evidence};
use crate::policy::Policy;

/// Runs INGRESS over the flows to the API ports.
pub(super) fn ingress(flows: &[Classified<'_>], policy: &Policy) -> ControlResult {
    let rule = "The self-hosted API port is reached only from internal networks or the configured gateway, over TLS where the policy demands it.";
    let mut evidence = Vec::new();
    let mut seen = 0;
    for c in flows {
        if !policy.ingress.api_ports.contains(&c.flow.resp_p) || !policy.is_internal(c.flow.resp_h)
        {
            continue;
        }
        seen += 1;
        evidence.extend(api_evidence(c, policy));
    }
    if seen == 0 {
        return result(
            ControlId::Ingress,
            rule,
            ControlVerdict::NotApplicable,
            "no traffic to the API port".into(),
            evidence,
        );
    }
    if evidence.is_empty() {
        result(
            ControlId::Ingress,
            rule,
            ControlVerdict::Pass,
            format!("{seen} flow(s) to the API port, all from internal networks or the gateway"),
            evidence,
        )
    } else {
        result(
            ControlId::Ingress,
            rule,
            ControlVerdict::Violation,
            format!(
                "{} flow(s) reached the API port against policy",
                evidence.len()
            ),
            evidence,
        )
    }
}

/// What is wrong with one flow to the API port, if anything: reached from outside (reported
/// first, as the graver), else in clear where TLS is required.
fn api_evidence(c: &Classified<'_>, policy: &Policy) -> Option<Evidence> {
    let from_outside = c.direction == Direction::Ingress
        && !policy.is_gateway(c.flow.orig_h)
        && c.flow.established();
    let plaintext = policy.ingress.require_tls && c.flow.tls.is_none() && c.flow.orig_bytes > 0;
    let api = endpoint(c.flow.resp_h, c.flow.resp_p);
    if from_outside {
        Some(flow_evidence(
            c,
            format!(
                "{} (outside, not a gateway) reached the API at {api}",
                c.flow.orig_h
            ),
        ))
    } else if plaintext {
        Some(flow_evidence(
            c,
            format!("{} reached the API at {api} without TLS", c.flow.orig_h),
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{classified, flow, licensing, policy, T0};
    use super::*;
    use crate::audit::Timestamp;
    use crate::flow::FlowRecord;

    /// A flow from `source` to the API at 192.0.2.20:8080 that sent 400 payload bytes.
    fn to_api(uid: &str, source: &str) -> FlowRecord {
        let mut f = flow(uid, T0, None);
        f.orig_h = source.parse().unwrap();
        f.resp_h = "192.0.2.20".parse().unwrap();
        f.resp_p = 8080;
        f.orig_bytes = 400;
        f.orig_ip_bytes = 560;
        f
    }

    #[test]
    fn no_api_traffic_does_not_apply() {
        let flows = [licensing("CLic", T0, 1500)];
        let r = ingress(&classified(&flows, &policy("")), &policy(""));
        assert_eq!(r.verdict, ControlVerdict::NotApplicable);
    }

    #[test]
    fn internal_hosts_and_gateways_pass() {
        let p = policy("[ingress]\ngateways = [\"198.51.100.7\"]\n");
        let flows = [
            to_api("CInside", "192.0.2.10"),
            to_api("CGateway", "198.51.100.7"),
        ];
        let r = ingress(&classified(&flows, &p), &p);
        assert_eq!(r.verdict, ControlVerdict::Pass);
        assert_eq!(
            r.summary,
            "2 flow(s) to the API port, all from internal networks or the gateway"
        );
    }

    #[test]
    fn an_outside_host_is_a_violation() {
        let p = policy("[ingress]\ngateways = [\"198.51.100.7\"]\n");
        let flows = [
            to_api("CGateway", "198.51.100.7"),
            to_api("COutside", "198.51.100.9"),
        ];
        let r = ingress(&classified(&flows, &p), &p);
        assert_eq!(r.verdict, ControlVerdict::Violation);
        assert_eq!(r.evidence.len(), 1);
        let e = &r.evidence[0];
        assert_eq!(
            e.what,
            "198.51.100.9 (outside, not a gateway) reached the API at 192.0.2.20:8080"
        );
        assert_eq!(e.flow_uids, ["COutside"]);
        assert_eq!(e.bytes, Some(560));
        assert_eq!(e.ts, Some(Timestamp(T0)));
    }

    #[test]
    fn an_outside_attempt_the_api_never_answered_did_not_reach_it() {
        let p = policy("");
        let mut syn = to_api("CSyn", "198.51.100.9");
        syn.conn_state = crate::flow::record::ConnState::S0;
        let mut rst = to_api("CRst", "198.51.100.9");
        rst.conn_state = crate::flow::record::ConnState::OTH;
        rst.resp_pkts = 0;
        let r = ingress(&classified(&[syn, rst], &p), &p);
        assert_eq!(r.verdict, ControlVerdict::Pass, "{:?}", r.evidence);
    }

    #[test]
    fn plaintext_is_a_violation_only_where_tls_is_required() {
        let flows = [to_api("CPlain", "192.0.2.10")];
        let lax = policy("");
        assert_eq!(
            ingress(&classified(&flows, &lax), &lax).verdict,
            ControlVerdict::Pass
        );
        let strict = policy("[ingress]\nrequire_tls = true\n");
        let r = ingress(&classified(&flows, &strict), &strict);
        assert_eq!(r.verdict, ControlVerdict::Violation);
        assert_eq!(
            r.evidence[0].what,
            "192.0.2.10 reached the API at 192.0.2.20:8080 without TLS"
        );
        assert_eq!(r.evidence[0].flow_uids, ["CPlain"]);
    }
}
