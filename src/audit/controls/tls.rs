//! TLS: traffic to Deepgram names is TLS on the licensing port.
//!
//! Licensing carries the license key and the deployment's identity; in clear, anyone on the path
//! reads them, and a plaintext channel to Deepgram could carry anything. A flow counts as
//! "to a Deepgram name" when it is licensing (on any port), hosted transcription, or its name is
//! a Deepgram name; only flows whose client sent payload are judged, since a failed connection
//! says nothing about what would have been sent.

use super::{destination_label, flow_evidence, result};
use crate::audit::classify::{Classified, FlowClass};
use crate::audit::{ControlId, ControlResult, ControlVerdict};
use crate::policy::Policy;

/// Runs TLS over the classified flows.
pub(super) fn tls(flows: &[Classified<'_>], policy: &Policy) -> ControlResult {
    let rule = "Traffic to Deepgram names is TLS on the licensing port; plaintext HTTP or a non-TLS payload there is a violation.";
    let mut evidence = Vec::new();
    let mut checked = 0;
    for c in flows {
        let deepgram = c.class.is_licensing()
            || matches!(
                c.class,
                FlowClass::LicensingWrongPort | FlowClass::HostedTranscription
            )
            || c.name
                .as_deref()
                .is_some_and(|n| policy.is_deepgram_name(n.split(':').next().unwrap_or(n)));
        if !deepgram || c.flow.orig_bytes == 0 {
            continue;
        }
        checked += 1;
        if c.flow.tls.is_none() {
            let how = match c.flow.http.first() {
                Some(h) => format!("plaintext HTTP {} {}", h.method, h.target),
                None => "a payload that is not TLS".to_string(),
            };
            evidence.push(flow_evidence(
                c,
                format!("{how} to {}", destination_label(c)),
            ));
        }
    }
    if checked == 0 {
        return result(
            ControlId::Tls,
            rule,
            ControlVerdict::NotApplicable,
            "no traffic to Deepgram names".into(),
            Vec::new(),
        );
    }
    if evidence.is_empty() {
        result(
            ControlId::Tls,
            rule,
            ControlVerdict::Pass,
            format!("all {checked} flows to Deepgram names carry TLS"),
            evidence,
        )
    } else {
        result(
            ControlId::Tls,
            rule,
            ControlVerdict::Violation,
            format!(
                "{} of {checked} flows to Deepgram names are not TLS",
                evidence.len()
            ),
            evidence,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{classified, flow, licensing, policy, T0};
    use super::*;
    use crate::audit::Timestamp;
    use crate::flow::record::{HttpSummary, TlsSummary};

    fn tls_summary() -> TlsSummary {
        TlsSummary {
            sni: Some("license.deepgram.com".into()),
            alpn: Vec::new(),
            ech: false,
            quic: false,
            ja4: None,
            max_version: Some(0x0304),
            server_alert: None,
            incomplete: false,
        }
    }

    #[test]
    fn no_deepgram_traffic_is_not_applicable() {
        let mut other = flow("COther", T0, None);
        other.orig_bytes = 300;
        let flows = [other];
        let r = tls(&classified(&flows, &policy("")), &policy(""));
        assert_eq!(r.verdict, ControlVerdict::NotApplicable);
        assert_eq!(r.summary, "no traffic to Deepgram names");
    }

    #[test]
    fn licensing_over_tls_passes_and_empty_flows_are_not_judged() {
        let mut ok = licensing("CTls", T0, 1500);
        ok.tls = Some(tls_summary());
        // A connection that sent nothing (no TLS either) is not counted.
        let silent = licensing("CSilent", T0, 0);
        let flows = [ok, silent];
        let r = tls(&classified(&flows, &policy("")), &policy(""));
        assert_eq!(r.verdict, ControlVerdict::Pass);
        assert_eq!(r.summary, "all 1 flows to Deepgram names carry TLS");
        assert!(r.evidence.is_empty());
    }

    #[test]
    fn plaintext_http_and_non_tls_payloads_are_violations() {
        let mut http = licensing("CHttp", T0, 900);
        http.resp_p = 80;
        http.http = vec![HttpSummary {
            method: "POST".into(),
            target: "/v1/license".into(),
            host: Some("license.deepgram.com".into()),
            content_length: Some(120),
            websocket: false,
            status: Some(200),
        }];
        let raw = licensing("CRaw", T0 + 1, 700);
        let mut ok = licensing("CTls", T0 + 2, 1500);
        ok.tls = Some(tls_summary());
        let flows = [http, raw, ok];
        let r = tls(&classified(&flows, &policy("")), &policy(""));
        assert_eq!(r.verdict, ControlVerdict::Violation);
        assert_eq!(r.summary, "2 of 3 flows to Deepgram names are not TLS");
        assert_eq!(
            r.evidence[0].what,
            "plaintext HTTP POST /v1/license to license.deepgram.com (203.0.113.10:80)"
        );
        assert_eq!(r.evidence[0].flow_uids, ["CHttp"]);
        assert_eq!(r.evidence[0].bytes, Some(900));
        assert_eq!(r.evidence[0].ts, Some(Timestamp(T0)));
        assert_eq!(
            r.evidence[1].what,
            "a payload that is not TLS to license.deepgram.com (203.0.113.10:443)"
        );
        assert_eq!(r.evidence[1].flow_uids, ["CRaw"]);
    }
}
