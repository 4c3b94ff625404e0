//! The merged report as JSON (`report --format json`): the merged audit document
//! (schema/audit.schema.json) with a `merge` section telling which audits were counted and the
//! per-sensor figures.
//!
//! Invariants: every string in the document is redacted; the bytes are pretty-printed JSON with
//! a final newline, keys sorted (serde_json without `preserve_order`), so output is stable.

use anyhow::Result;
use serde_json::Value;

use crate::inspect::secrets::redact_text;
use crate::report::merge::{Merged, SensorAudit};

/// The merged audit as pretty-printed JSON bytes, with a final newline.
pub fn write_json(merged: &Merged) -> Result<Vec<u8>> {
    let mut out = serde_json::to_vec_pretty(&json_document(merged)?)?;
    out.push(b'\n');
    Ok(out)
}

/// The merged audit as JSON, every string redacted, with a `merge` section telling which audits
/// were counted and the per-sensor figures.
pub fn json_document(merged: &Merged) -> Result<Value> {
    let mut doc = serde_json::to_value(&merged.audit)?;
    let sensors: Vec<Value> = merged.sensors.iter().map(sensor_figures).collect();
    if let Value::Object(map) = &mut doc {
        map.insert(
            "merge".into(),
            serde_json::json!({
                "audits": merged.parts,
                "sensors": sensors,
                "windows_counted_once": merged.windows_counted_once,
                "windows_added": merged.windows_added,
                "connections_counted_once": merged.connections_counted_once,
            }),
        );
    }
    redact_value(&mut doc);
    Ok(doc)
}

/// One sensor's headline figures in the `merge` section.
fn sensor_figures(s: &SensorAudit) -> Value {
    let a = &s.audit;
    serde_json::json!({
        "sensor": s.sensor,
        "verdict": a.verdict,
        "capture_start": a.capture.start,
        "capture_end": a.capture.end,
        "licensing_egress_ip_bytes": a.licensing.egress_ip_bytes,
        "licensing_egress_payload_bytes": a.licensing.egress_payload_bytes,
        "licensing_connections": a.licensing.connections,
        "licensing_sources": a.licensing.sources,
        "ip_bytes_per_minute": a.licensing.ip_bytes_per_minute,
    })
}

/// Redacts every string of a JSON value in place.
fn redact_value(v: &mut Value) {
    match v {
        Value::String(s) => {
            let r = redact_text(s);
            // Only replace what changed: most strings carry nothing to redact.
            if r != *s {
                *s = r;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        Value::Object(map) => map.values_mut().for_each(redact_value),
        _ => {}
    }
}
