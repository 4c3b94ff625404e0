//! CREDENTIAL: no license key, API token or distribution secret in clear on the wire.
//!
//! A credential seen in clear is a credential anyone on the path has; one sighting is enough for
//! a violation. The inspectors keep only a redacted form (first and last characters and a hash
//! prefix), so the evidence can name which secret leaked without leaking it again. Evidence is one
//! line per distinct secret, with every flow that carried it and the time it was first seen.

use std::collections::{BTreeMap, BTreeSet};

use super::{destination_label, result};
use crate::audit::classify::Classified;
use crate::audit::{ControlId, ControlResult, ControlVerdict, Evidence, Timestamp};

/// Runs CREDENTIAL over the secrets the inspectors saw in the flows.
pub(super) fn credential(flows: &[Classified<'_>]) -> ControlResult {
    let rule = "No license key, API token or distribution secret in clear on the wire.";
    // One evidence line per secret (kind and redacted form), with every flow that carried it.
    let mut by_secret: BTreeMap<(String, String), Vec<&Classified<'_>>> = BTreeMap::new();
    let mut first_seen: BTreeMap<(String, String), i64> = BTreeMap::new();
    // Where each secret was seen beyond plain payload bytes (a DNS name, an SNI, a Host).
    let mut places: BTreeMap<(String, String), BTreeSet<&str>> = BTreeMap::new();
    for c in flows {
        for s in &c.flow.secrets {
            let key = (s.kind.clone(), s.redacted.clone());
            if s.place != "payload" {
                places
                    .entry(key.clone())
                    .or_default()
                    .insert(place_label(&s.place));
            }
            by_secret.entry(key.clone()).or_default().push(c);
            let t = first_seen.entry(key).or_insert(s.ts_nanos);
            *t = (*t).min(s.ts_nanos);
        }
    }
    let evidence: Vec<_> = by_secret
        .iter()
        .map(|((kind, redacted), cs)| {
            let sources: BTreeSet<String> = cs.iter().map(|c| c.flow.orig_h.to_string()).collect();
            let destinations: BTreeSet<String> = cs.iter().map(|c| destination_label(c)).collect();
            let sources = sources.into_iter().collect::<Vec<_>>().join(", ");
            let destinations = destinations.into_iter().collect::<Vec<_>>().join(", ");
            let key = (kind.clone(), redacted.clone());
            let place = places
                .get(&key)
                .map(|p| format!(" (in {})", p.iter().copied().collect::<Vec<_>>().join(", ")))
                .unwrap_or_default();
            Evidence {
                what: format!(
                    "{kind} {redacted} in clear{place} in {} flow(s) from {sources} to {destinations}",
                    cs.len()
                ),
                flow_uids: cs.iter().map(|c| c.flow.uid.clone()).collect(),
                ts: first_seen
                    .get(&(kind.clone(), redacted.clone()))
                    .map(|t| Timestamp(*t)),
                source: Some(sources),
                destination: Some(destinations),
                bytes: None,
            }
        })
        .collect();
    if evidence.is_empty() {
        return result(
            ControlId::Credential,
            rule,
            ControlVerdict::Pass,
            "no credential seen in clear".into(),
            evidence,
        );
    }
    let flows_with: usize = by_secret.values().map(Vec::len).sum();
    result(
        ControlId::Credential,
        rule,
        ControlVerdict::Violation,
        format!(
            "{} distinct credential(s) seen in clear, in {flows_with} flow(s)",
            evidence.len()
        ),
        evidence,
    )
}

/// How a sighting's place reads in evidence.
fn place_label(place: &str) -> &str {
    match place {
        "dns_name" => "a DNS query name",
        "tls_sni" => "a TLS SNI",
        "http_host" => "an HTTP Host header",
        "http_connect" => "an HTTP CONNECT target",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{classified, flow, licensing, policy, T0};
    use super::*;
    use crate::flow::record::SecretSighting;
    use crate::units::NANOS;

    fn sighting(kind: &str, redacted: &str, ts_nanos: i64) -> SecretSighting {
        SecretSighting {
            kind: kind.into(),
            redacted: redacted.into(),
            ts_nanos,
            direction: "orig".into(),
            place: "payload".into(),
        }
    }

    #[test]
    fn no_secret_passes() {
        let flows = [licensing("CLic", T0, 1500)];
        let r = credential(&classified(&flows, &policy("")));
        assert_eq!(r.verdict, ControlVerdict::Pass);
        assert_eq!(r.summary, "no credential seen in clear");
    }

    #[test]
    fn one_line_per_secret_with_every_flow_and_the_first_sighting() {
        let key = "abcd...wxyz (sha256 1a2b3c)";
        let mut late = licensing("CLate", T0 + 5 * NANOS, 900);
        late.secrets = vec![sighting("license_key", key, T0 + 5 * NANOS)];
        let mut early = flow("CEarly", T0 + 2 * NANOS, None);
        early.orig_h = "192.0.2.11".parse().unwrap();
        early.secrets = vec![sighting("license_key", key, T0 + 2 * NANOS)];
        let mut token = flow("CToken", T0 + 9 * NANOS, None);
        token.secrets = vec![sighting(
            "api_token",
            "0123...4567 (sha256 ffee00)",
            T0 + 9 * NANOS,
        )];
        let flows = [late, early, token];
        let r = credential(&classified(&flows, &policy("")));
        assert_eq!(r.verdict, ControlVerdict::Violation);
        assert_eq!(
            r.summary,
            "2 distinct credential(s) seen in clear, in 3 flow(s)"
        );
        // By kind, then redacted form.
        assert_eq!(r.evidence[0].flow_uids, ["CToken"]);
        let e = &r.evidence[1];
        assert_eq!(
            e.what,
            "license_key abcd...wxyz (sha256 1a2b3c) in clear in 2 flow(s) from 192.0.2.10, \
             192.0.2.11 to 203.0.113.10:443, license.deepgram.com (203.0.113.10:443)"
        );
        assert_eq!(e.flow_uids, ["CLate", "CEarly"]);
        assert_eq!(e.ts, Some(Timestamp(T0 + 2 * NANOS)));
        assert_eq!(e.bytes, None);
    }

    #[test]
    fn a_secret_in_a_name_says_where() {
        let key = "f103...bcad (sha256:01234567)";
        let mut dns = flow("CDns", T0, None);
        dns.secrets = vec![SecretSighting {
            place: "dns_name".into(),
            ..sighting("license_key", key, T0)
        }];
        let mut sni = flow("CSni", T0 + NANOS, None);
        sni.secrets = vec![SecretSighting {
            place: "tls_sni".into(),
            ..sighting("license_key", key, T0 + NANOS)
        }];
        let flows = [dns, sni];
        let r = credential(&classified(&flows, &policy("")));
        assert_eq!(r.verdict, ControlVerdict::Violation);
        assert!(
            r.evidence[0].what.starts_with(
                "license_key f103...bcad (sha256:01234567) in clear (in a DNS query name, a TLS SNI) in 2 flow(s)"
            ),
            "{}",
            r.evidence[0].what
        );
    }
}
