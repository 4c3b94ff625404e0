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
    for c in flows {
        for s in &c.flow.secrets {
            let key = (s.kind.clone(), s.redacted.clone());
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
            Evidence {
                what: format!(
                    "{kind} {redacted} in clear in {} flow(s) from {sources} to {destinations}",
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
