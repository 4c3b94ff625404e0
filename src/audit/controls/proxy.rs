//! PROXY: with a License Proxy (or a forward proxy), only the proxy talks to Deepgram.
//!
//! A site that deploys a License Proxy does so to have one host, and one audit trail, for all
//! licensing; an API or Engine host licensing directly bypasses it. With a License Proxy, any
//! licensing flow not from the proxy is a bypass (a CONNECT tunnel through a forward proxy too,
//! unless the License Proxy is the one tunnelling). With only a forward proxy, licensing straight
//! to the server is a bypass. Without either, the control does not apply.

use std::collections::BTreeSet;

use super::{destination_label, flow_evidence, result};
use crate::audit::classify::{Classified, FlowClass};
use crate::audit::{ControlId, ControlResult, ControlVerdict};
use crate::policy::Policy;

/// Runs PROXY over the classified flows.
pub(super) fn proxy(flows: &[Classified<'_>], policy: &Policy) -> ControlResult {
    let rule = "With a License Proxy (or a forward proxy), only the proxy talks to Deepgram; direct licensing from API or Engine is a bypass.";
    let has_lp = !policy.licensing.proxies.is_empty();
    let has_fp = !policy.licensing.forward_proxies.is_empty();
    if !has_lp && !has_fp {
        return result(
            ControlId::Proxy,
            rule,
            ControlVerdict::NotApplicable,
            "no License Proxy or forward proxy in the policy".into(),
            Vec::new(),
        );
    }
    let mut evidence = Vec::new();
    for c in flows {
        let from_lp = policy.license_proxy_address(c.flow.orig_h);
        let bypass = match c.class {
            FlowClass::Licensing => (has_lp && !from_lp) || has_fp,
            FlowClass::ForwardProxyLicensing => has_lp && !from_lp,
            _ => false,
        };
        if bypass {
            evidence.push(flow_evidence(
                c,
                format!(
                    "{} reached {} directly, bypassing the proxy",
                    c.flow.orig_h,
                    destination_label(c)
                ),
            ));
        }
    }
    if evidence.is_empty() {
        result(
            ControlId::Proxy,
            rule,
            ControlVerdict::Pass,
            "licensing goes only through the configured proxies".into(),
            evidence,
        )
    } else {
        let hosts: BTreeSet<_> = evidence.iter().filter_map(|e| e.source.clone()).collect();
        result(
            ControlId::Proxy,
            rule,
            ControlVerdict::Finding,
            format!(
                "{} licensing flow(s) bypass the proxy, from {}",
                evidence.len(),
                hosts.into_iter().collect::<Vec<_>>().join(", ")
            ),
            evidence,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{classified, licensing, policy, T0};
    use super::*;
    use crate::audit::Timestamp;
    use crate::flow::FlowRecord;

    fn from(uid: &str, source: &str) -> FlowRecord {
        let mut f = licensing(uid, T0, 1500);
        f.orig_h = source.parse().unwrap();
        f
    }

    #[test]
    fn without_proxies_it_does_not_apply() {
        let flows = [from("CLic", "192.0.2.10")];
        let r = proxy(&classified(&flows, &policy("")), &policy(""));
        assert_eq!(r.verdict, ControlVerdict::NotApplicable);
    }

    #[test]
    fn only_the_license_proxy_may_reach_licensing() {
        let p = policy("[licensing]\nproxies = [\"192.0.2.5:8443\"]\n");
        let ok = [from("CProxy", "192.0.2.5")];
        let r = proxy(&classified(&ok, &p), &p);
        assert_eq!(r.verdict, ControlVerdict::Pass);
        assert!(r.evidence.is_empty());
        let bypass = [from("CProxy", "192.0.2.5"), from("CDirect", "192.0.2.10")];
        let r = proxy(&classified(&bypass, &p), &p);
        assert_eq!(r.verdict, ControlVerdict::Finding);
        assert_eq!(
            r.summary,
            "1 licensing flow(s) bypass the proxy, from 192.0.2.10"
        );
        assert_eq!(r.evidence.len(), 1);
        let e = &r.evidence[0];
        assert_eq!(
            e.what,
            "192.0.2.10 reached license.deepgram.com (203.0.113.10:443) directly, bypassing the proxy"
        );
        assert_eq!(e.flow_uids, ["CDirect"]);
        assert_eq!(e.ts, Some(Timestamp(T0)));
        assert_eq!(e.bytes, Some(1500));
    }

    #[test]
    fn with_a_forward_proxy_direct_licensing_is_a_bypass() {
        let p = policy("[licensing]\nforward_proxies = [\"198.51.100.8:3128\"]\n");
        let flows = [from("CDirect", "192.0.2.10")];
        let r = proxy(&classified(&flows, &p), &p);
        assert_eq!(r.verdict, ControlVerdict::Finding);
        assert_eq!(r.evidence[0].flow_uids, ["CDirect"]);
    }
}
