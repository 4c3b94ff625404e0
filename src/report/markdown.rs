//! Markdown for a ticket or a wiki, in two sizes built from the same parts: `analyze --format
//! markdown` ([`write_markdown`]: one audit) and `report --format md` ([`write_merged`]: the
//! merged audits, with the audio bound, per-sensor figures and chain of custody added).
//!
//! Both open with [`write_head`] (title and verdict sentence) and go on with [`write_body`]
//! (capture facts, controls, evidence, per-minute table), so what they share they say in the
//! same words. Invariants: every string taken from an audit is redacted; the merged report is
//! redacted once more as a whole, and `|` in a table cell is escaped.

use std::io::{self, Write};

use anyhow::{Context, Result};

use crate::audit::Audit;
use crate::inspect::secrets::redact_text;
use crate::report::merge::{AuditPart, Merged};
use crate::report::prose::{audio_sentence, report_time, verdict_sentence};
use crate::units::human_bytes;

/// Flow uids shown per evidence line.
const UIDS_PER_LINE: usize = 5;

/// Writes one audit as Markdown (`analyze --format markdown`).
pub fn write_markdown(w: &mut dyn Write, audit: &Audit) -> io::Result<()> {
    write_head(w, audit)?;
    write_body(w, audit)
}

/// The title and the verdict sentence, each followed by a blank line.
fn write_head(w: &mut dyn Write, audit: &Audit) -> io::Result<()> {
    writeln!(w, "# dg-audit: {}", audit.verdict.as_str())?;
    writeln!(w)?;
    writeln!(w, "{}", redact_text(&verdict_sentence(audit)))?;
    writeln!(w)
}

/// Everything after the head: capture facts, controls, their evidence, the per-minute series.
fn write_body(w: &mut dyn Write, audit: &Audit) -> io::Result<()> {
    write_facts(w, audit)?;
    write_controls(w, audit)?;
    let l = &audit.licensing;
    if !l.per_minute.is_empty() {
        writeln!(w, "\n## Licensing per minute\n")?;
        writeln!(w, "| Minute | Source | Egress IP bytes | Egress payload bytes | Connections |\n|---|---|---|---|---|")?;
        for m in &l.per_minute {
            writeln!(
                w,
                "| {} | {} | {} | {} | {} |",
                m.start, m.source, m.egress_ip_bytes, m.egress_payload_bytes, m.connections
            )?;
        }
    }
    Ok(())
}

/// The capture, inputs, policy and tool, as a two-column table.
fn write_facts(w: &mut dyn Write, audit: &Audit) -> io::Result<()> {
    let c = &audit.capture;
    writeln!(w, "| | |\n|---|---|")?;
    writeln!(
        w,
        "| Period | {} .. {} ({:.0} s) |",
        c.start, c.end, c.duration_seconds
    )?;
    writeln!(
        w,
        "| Packets | {} ({} drops, {} truncated) |",
        c.packets, c.capture_drops, c.truncated_frames
    )?;
    for input in &audit.inputs {
        writeln!(w, "| Input | `{}` sha256 `{}` |", input.path, input.sha256)?;
    }
    writeln!(w, "| Policy | sha256 `{}` |", audit.policy_sha256)?;
    writeln!(w, "| Tool | {} {} |", audit.tool.name, audit.tool.version)?;
    writeln!(w)
}

/// The controls table, then one section per control with evidence.
fn write_controls(w: &mut dyn Write, audit: &Audit) -> io::Result<()> {
    writeln!(w, "## Controls\n")?;
    writeln!(w, "| Control | Verdict | Summary |\n|---|---|---|")?;
    for control in &audit.controls {
        writeln!(
            w,
            "| {} | {} | {} |",
            control.id,
            control.verdict.as_str(),
            cell(&control.summary)
        )?;
    }
    for control in audit.controls.iter().filter(|c| !c.evidence.is_empty()) {
        writeln!(w, "\n### {} ({})\n", control.id, control.verdict.as_str())?;
        writeln!(w, "{}\n", control.rule)?;
        for e in &control.evidence {
            let when = e.ts.map(|t| format!("{t}: ")).unwrap_or_default();
            let uids = if e.flow_uids.is_empty() {
                String::new()
            } else {
                format!(
                    " (flows {})",
                    e.flow_uids
                        .iter()
                        .take(UIDS_PER_LINE)
                        .map(|u| format!("`{u}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            writeln!(w, "- {when}{}{uids}", redact_text(&e.what))?;
        }
        if control.evidence_omitted > 0 {
            writeln!(w, "- ... and {} more", control.evidence_omitted)?;
        }
    }
    Ok(())
}

/// A table cell or inline text taken from an audit: redacted, `|` escaped.
fn cell(text: &str) -> String {
    redact_text(text).replace('|', "\\|")
}

/// The merged report as Markdown (`report --format md`): the head and body of the merged audit
/// with, after the head, the audio bound and which sensors were merged, and after the body the
/// per-sensor figures, the chain of custody and how the report was made.
pub fn write_merged(merged: &Merged, generated_at_nanos: Option<i64>) -> Result<String> {
    let audit = &merged.audit;
    let mut out = Vec::new();
    write_head(&mut out, audit)?;
    writeln!(out, "**Audio bound:** {}\n", cell(&audio_sentence(audit)))?;
    if merged.sensors.len() > 1 {
        let names: Vec<&str> = merged.sensors.iter().map(|s| s.sensor.as_str()).collect();
        writeln!(
            out,
            "**Merged:** {} sensors ({}); the per-minute table lists the rows of every sensor \
             (an address under two sensors is two hosts).\n",
            merged.sensors.len(),
            cell(&names.join(", "))
        )?;
    }
    write_body(&mut out, audit)?;
    if merged.sensors.len() > 1 || merged.parts.len() > 1 {
        write_sensors(&mut out, merged)?;
    }
    write_custody(&mut out, merged, generated_at_nanos)?;
    let out = String::from_utf8(out).context("the report Markdown is UTF-8")?;
    // Belt and braces: nothing that looks like a credential leaves, whatever path it took.
    Ok(redact_text(&out))
}

/// Per-sensor figures and the combined row.
fn write_sensors(w: &mut dyn Write, merged: &Merged) -> io::Result<()> {
    writeln!(w, "\n## Sensors\n")?;
    writeln!(
        w,
        "| Sensor | Verdict | Period | Licensing egress | Connections | Max per host-minute |"
    )?;
    writeln!(w, "|---|---|---|---|---|---|")?;
    for s in &merged.sensors {
        sensor_row(w, &cell(&s.sensor), s.audit.verdict.as_str(), &s.audit)?;
    }
    let audit = &merged.audit;
    let verdict = format!("**{}**", audit.verdict.as_str());
    sensor_row(w, "**combined**", &verdict, audit)
}

fn sensor_row(w: &mut dyn Write, name: &str, verdict: &str, a: &Audit) -> io::Result<()> {
    writeln!(
        w,
        "| {name} | {verdict} | {} .. {} | {} | {} | {} |",
        a.capture.start,
        a.capture.end,
        human_bytes(a.licensing.egress_ip_bytes),
        a.licensing.connections,
        human_bytes(a.licensing.ip_bytes_per_minute.max)
    )
}

/// The audits merged, what each brought, and how the report was made.
fn write_custody(
    w: &mut dyn Write,
    merged: &Merged,
    generated_at_nanos: Option<i64>,
) -> io::Result<()> {
    writeln!(w, "\n## Chain of custody\n")?;
    writeln!(
        w,
        "| Audit | Sensor | Capture | Verdict | Policy sha256 | Tool | Counted |"
    )?;
    writeln!(w, "|---|---|---|---|---|---|---|")?;
    for p in &merged.parts {
        custody_row(w, p)?;
    }
    let audit = &merged.audit;
    let (time, how) = report_time(merged, generated_at_nanos);
    writeln!(w)?;
    writeln!(
        w,
        "Generated by {} {} from audits covering {} .. {}; report time {time} ({how}).",
        audit.tool.name,
        env!("CARGO_PKG_VERSION"),
        audit.capture.start,
        audit.capture.end
    )?;
    if merged.parts.len() > 1 {
        writeln!(
            w,
            "Merge: {} (source, minute) window(s) seen by overlapping audits counted once, {} \
             split across consecutive captures added, {} duplicate connection(s) dropped; an \
             audit whose input files were all already counted is not counted again.",
            merged.windows_counted_once, merged.windows_added, merged.connections_counted_once
        )?;
    }
    Ok(())
}

fn custody_row(w: &mut dyn Write, p: &AuditPart) -> io::Result<()> {
    writeln!(
        w,
        "| {} | {} | {} .. {} | {} | `{}` | {} | {} |",
        cell(&p.label),
        cell(p.sensor.as_deref().unwrap_or("-")),
        p.capture_start,
        p.capture_end,
        p.verdict.as_str(),
        p.policy_sha256,
        cell(&p.tool_version),
        match &p.duplicate_of {
            None => "yes".to_string(),
            Some(o) => format!("no: same input files as {}", cell(o)),
        }
    )
}
