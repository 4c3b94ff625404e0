//! INGRESS: the self-hosted API port is reached only from internal networks or the gateway.
//!
//! Self-hosted containers have no ingress authentication of their own; Deepgram's guidance is a
//! gateway with API keys and HTTPS in front. So a flow to an API port on an internal address from
//! outside the internal networks, not from a configured gateway, is a violation; so is a flow
//! that sent payload without TLS when the policy requires TLS (off by default: gateways usually
//! terminate TLS and speak plain HTTP inside).

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
    let from_outside = c.direction == Direction::Ingress && !policy.is_gateway(c.flow.orig_h);
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
