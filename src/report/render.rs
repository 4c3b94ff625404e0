//! `dg-audit report`: one or more audit JSON documents merged ([`super::merge`]) and rendered as
//! HTML ([`super::html`]), Markdown or JSON.
//!
//! Invariants: output is a function of the audits (and `--generated-at`) alone, so regenerating
//! a report from the same audits gives the same bytes: no clock, no random ids, ordered maps, and
//! the report time is the end of the latest capture unless given. Every string taken from an
//! audit is redacted ([`redact_text`]) before it is written.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::merge::{merge, Merged};
use crate::audit::{Audit, ControlVerdict, Verdict};
use crate::inspect::secrets::redact_text;
use crate::units::{human_bytes, rfc3339};

/// Output formats of `report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// One self-contained HTML page (inline CSS and SVG), for screen and print.
    Html,
    /// Markdown for a ticket or a wiki.
    #[value(alias = "markdown")]
    Md,
    /// The merged audit document (schema/audit.schema.json) with a `merge` section.
    Json,
}

impl ReportFormat {
    /// The format an output path's extension names (`.html`/`.htm`, `.md`/`.markdown`, `.json`).
    pub fn from_path(path: &Path) -> Option<ReportFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "html" | "htm" => Some(ReportFormat::Html),
            "md" | "markdown" => Some(ReportFormat::Md),
            "json" => Some(ReportFormat::Json),
            _ => None,
        }
    }
}

/// `dg-audit report`.
#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// Audit JSON files (one or more sensors/days), from `dg-audit analyze --format json`.
    #[arg(required = true, value_name = "AUDIT")]
    pub audits: Vec<PathBuf>,
    /// Where to write the report.
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    /// Report format [default: from the extension of OUT].
    #[arg(long, value_enum)]
    pub format: Option<ReportFormat>,
    /// Report time to print (RFC 3339) [default: the end of the latest capture, so that the
    /// same audits always give the same report].
    #[arg(long, value_name = "TIME")]
    pub generated_at: Option<String>,
}

/// Settings of one rendering beyond the audits themselves.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// Report time, nanoseconds since the epoch; `None`: the end of the latest capture.
    pub generated_at_nanos: Option<i64>,
}

/// Runs `dg-audit report`: reads, merges, renders and writes. Returns the exit code of the
/// merged verdict (0 compliant or findings, 1 violation, 3 inconclusive); bad input is an error
/// (exit 2).
pub fn run_report(args: &ReportArgs) -> Result<u8> {
    let format = match args.format {
        Some(f) => f,
        None => ReportFormat::from_path(&args.output).with_context(|| {
            format!(
                "cannot tell the report format from {}: use .html, .md or .json, or pass --format",
                args.output.display()
            )
        })?,
    };
    let options = RenderOptions {
        generated_at_nanos: args.generated_at.as_deref().map(parse_time).transpose()?,
    };
    let audits = args
        .audits
        .iter()
        .map(|p| read_audit(p))
        .collect::<Result<Vec<_>>>()?;
    let merged = merge(&audits)?;
    let bytes = render_merged(&merged, format, &options)?;
    std::fs::write(&args.output, bytes)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    Ok(merged.audit.verdict.exit_code())
}

/// Reads one audit JSON document.
pub fn read_audit(path: &Path) -> Result<Audit> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{} is not an audit JSON document (make it with dg-audit analyze --format json)",
            path.display()
        )
    })
}

fn parse_time(text: &str) -> Result<i64> {
    let t = humantime::parse_rfc3339_weak(text)
        .with_context(|| format!("--generated-at {text:?} is not an RFC 3339 time"))?;
    let nanos = t
        .duration_since(std::time::UNIX_EPOCH)
        .context("--generated-at is before 1970")?
        .as_nanos();
    i64::try_from(nanos).context("--generated-at is too far in the future")
}

/// Renders the report of `audits` (merged when several) with default options.
pub fn render(audits: &[Audit], format: ReportFormat) -> Result<Vec<u8>> {
    render_with(audits, format, &RenderOptions::default())
}

/// Renders the report of `audits` (merged when several).
pub fn render_with(
    audits: &[Audit],
    format: ReportFormat,
    options: &RenderOptions,
) -> Result<Vec<u8>> {
    render_merged(&merge(audits)?, format, options)
}

/// Renders an already merged report.
pub fn render_merged(
    merged: &Merged,
    format: ReportFormat,
    options: &RenderOptions,
) -> Result<Vec<u8>> {
    Ok(match format {
        ReportFormat::Html => super::html::write_html(merged, options).into_bytes(),
        ReportFormat::Md => write_markdown(merged, options)?.into_bytes(),
        ReportFormat::Json => {
            let mut out = serde_json::to_vec_pretty(&json_document(merged)?)?;
            out.push(b'\n');
            out
        }
    })
}

/// The report time and how it was chosen.
pub fn report_time(merged: &Merged, options: &RenderOptions) -> (String, &'static str) {
    match options.generated_at_nanos {
        Some(t) => (rfc3339(t), "given with --generated-at"),
        None => (
            merged.audit.capture.end.clone(),
            "the end of the latest capture",
        ),
    }
}

/// The merged audit as JSON, every string redacted, with a `merge` section telling which audits
/// were counted and the per-sensor figures.
pub fn json_document(merged: &Merged) -> Result<Value> {
    let mut doc = serde_json::to_value(&merged.audit)?;
    let sensors: Vec<Value> = merged
        .sensors
        .iter()
        .map(|s| {
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
        })
        .collect();
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

fn redact_value(v: &mut Value) {
    match v {
        Value::String(s) => {
            let r = redact_text(s);
            if r != *s {
                *s = r;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        Value::Object(map) => map.values_mut().for_each(redact_value),
        _ => {}
    }
}

/// Control ids with a given verdict, in audit order.
pub fn ids_with(audit: &Audit, verdict: ControlVerdict) -> Vec<&str> {
    audit
        .controls
        .iter()
        .filter(|c| c.verdict == verdict)
        .map(|c| c.id.as_str())
        .collect()
}

/// Seconds as a person reads them: `42 s`, `12.5 min`, `3.1 h`.
pub fn human_seconds(seconds: f64) -> String {
    if seconds < 90.0 {
        format!("{seconds:.1} s")
    } else if seconds < 5400.0 {
        format!("{:.1} min", seconds / 60.0)
    } else {
        format!("{:.1} h", seconds / 3600.0)
    }
}

/// What the verdict rests on, in one clause.
pub fn verdict_clause(audit: &Audit) -> String {
    match audit.verdict {
        Verdict::Compliant => "Every control passed.".into(),
        Verdict::Findings => format!(
            "No rule was broken; observations to review: {}.",
            ids_with(audit, ControlVerdict::Finding).join(", ")
        ),
        Verdict::Violation => format!(
            "Rules broken: {}.",
            ids_with(audit, ControlVerdict::Violation).join(", ")
        ),
        Verdict::Inconclusive => format!(
            "The capture is not complete enough to judge ({}).",
            ids_with(audit, ControlVerdict::Inconclusive).join(", ")
        ),
    }
}

/// Licensing volume against the promise and the budget.
pub fn volume_sentence(audit: &Audit) -> String {
    let l = &audit.licensing;
    let budget = audit.policy.licensing.max_egress_bytes_per_minute;
    if l.per_minute.is_empty() {
        return "No licensing traffic was seen.".into();
    }
    let s = &l.ip_bytes_per_minute;
    let over = if budget > 0 && s.max > budget {
        format!(
            ", {:.0}\u{d7} the budget",
            (s.max as f64 / budget as f64).max(1.0)
        )
    } else {
        String::new()
    };
    format!(
        "Licensing egress was at most {} per host per minute (median {}){over}, against Deepgram's \
         promise of a few KB and the policy budget of {}.",
        human_bytes(s.max),
        human_bytes(s.p50),
        human_bytes(budget)
    )
}

/// The audio-carrying bound: how much speech the licensing channel could have carried.
pub fn audio_sentence(audit: &Audit) -> String {
    let l = &audit.licensing;
    let Some(b) = l.audio_bound.first() else {
        return "No audio bound was computed (the policy lists no codec rate).".into();
    };
    if l.per_minute.is_empty() {
        return "With no licensing traffic, the licensing channel carried no audio.".into();
    }
    format!(
        "At its p99 minute ({}) the licensing channel could carry at most {} of {} kbit/s speech \
         per minute; its largest minute ({}) at most {}.",
        human_bytes(l.ip_bytes_per_minute.p99),
        human_seconds(b.seconds_per_minute_at_p99),
        b.codec_kbps,
        human_bytes(l.ip_bytes_per_minute.max),
        human_seconds(b.seconds_per_minute_at_max),
    )
}

/// The sentence an auditor needs: the verdict's reason, the volume, and the audio bound.
pub fn auditor_sentence(audit: &Audit) -> String {
    redact_text(&format!(
        "{} {} {}",
        verdict_clause(audit),
        volume_sentence(audit),
        audio_sentence(audit)
    ))
}

fn md(text: &str) -> String {
    redact_text(text).replace('|', "\\|")
}

/// Markdown for a ticket or a wiki: the audit's own Markdown ([`super::audit::write_markdown`]) of
/// the merged document, with the audio bound, per-sensor figures and chain of custody added.
pub fn write_markdown(merged: &Merged, options: &RenderOptions) -> Result<String> {
    let audit = &merged.audit;
    let mut body = Vec::new();
    super::audit::write_markdown(&mut body, audit)?;
    let body = String::from_utf8(body).context("the audit Markdown is UTF-8")?;
    // After the title and its sentence: the auditor's summary.
    let mut out = String::new();
    let split = body
        .match_indices("\n\n")
        .nth(1)
        .map(|(i, _)| i + 2)
        .unwrap_or(body.len());
    out.push_str(&body[..split]);
    out.push_str(&format!(
        "**Audio bound:** {}\n\n",
        md(&audio_sentence(audit))
    ));
    if merged.sensors.len() > 1 {
        out.push_str(&format!(
            "**Merged:** {} sensors ({}); the per-minute table lists the rows of every sensor \
             (an address under two sensors is two hosts).\n\n",
            merged.sensors.len(),
            md(&merged
                .sensors
                .iter()
                .map(|s| s.sensor.as_str())
                .collect::<Vec<_>>()
                .join(", "))
        ));
    }
    out.push_str(&body[split..]);
    let mut w = |line: String| {
        out.push_str(&line);
        out.push('\n');
    };
    if merged.sensors.len() > 1 || merged.parts.len() > 1 {
        w("\n## Sensors\n".into());
        w(
            "| Sensor | Verdict | Period | Licensing egress | Connections | Max per host-minute |"
                .into(),
        );
        w("|---|---|---|---|---|---|".into());
        for s in &merged.sensors {
            let a = &s.audit;
            w(format!(
                "| {} | {} | {} .. {} | {} | {} | {} |",
                md(&s.sensor),
                a.verdict.as_str(),
                a.capture.start,
                a.capture.end,
                human_bytes(a.licensing.egress_ip_bytes),
                a.licensing.connections,
                human_bytes(a.licensing.ip_bytes_per_minute.max)
            ));
        }
        w(format!(
            "| **combined** | **{}** | {} .. {} | {} | {} | {} |",
            audit.verdict.as_str(),
            audit.capture.start,
            audit.capture.end,
            human_bytes(audit.licensing.egress_ip_bytes),
            audit.licensing.connections,
            human_bytes(audit.licensing.ip_bytes_per_minute.max)
        ));
    }
    w("\n## Chain of custody\n".into());
    w("| Audit | Sensor | Capture | Verdict | Policy sha256 | Tool | Counted |".into());
    w("|---|---|---|---|---|---|---|".into());
    for p in &merged.parts {
        w(format!(
            "| {} | {} | {} .. {} | {} | `{}` | {} | {} |",
            md(&p.label),
            md(p.sensor.as_deref().unwrap_or("-")),
            p.capture_start,
            p.capture_end,
            p.verdict.as_str(),
            p.policy_sha256,
            md(&p.tool_version),
            match &p.duplicate_of {
                None => "yes".to_string(),
                Some(o) => format!("no: same input files as {}", md(o)),
            }
        ));
    }
    let (time, how) = report_time(merged, options);
    w(String::new());
    w(format!(
        "Generated by {} {} from audits covering {} .. {}; report time {time} ({how}).",
        audit.tool.name,
        env!("CARGO_PKG_VERSION"),
        audit.capture.start,
        audit.capture.end
    ));
    if merged.parts.len() > 1 {
        w(format!(
            "Merge: {} (source, minute) window(s) seen by overlapping audits counted once, {} \
             split across consecutive captures added, {} duplicate connection(s) dropped; an \
             audit whose input files were all already counted is not counted again.",
            merged.windows_counted_once, merged.windows_added, merged.connections_counted_once
        ));
    }
    Ok(redact_text(&out))
}

/// Renders a report for `analyze --report OUT`: the format from OUT's extension unless given.
pub fn write_report(audit: &Audit, path: &Path, format: Option<ReportFormat>) -> Result<()> {
    let Some(format) = format.or_else(|| ReportFormat::from_path(path)) else {
        bail!(
            "cannot tell the report format from {}: use .html, .md or .json",
            path.display()
        );
    };
    let bytes = render(std::slice::from_ref(audit), format)?;
    std::fs::File::create(path)
        .and_then(|mut f| f.write_all(&bytes))
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_from_extension() {
        assert_eq!(
            ReportFormat::from_path(Path::new("a/r.HTML")),
            Some(ReportFormat::Html)
        );
        assert_eq!(
            ReportFormat::from_path(Path::new("r.md")),
            Some(ReportFormat::Md)
        );
        assert_eq!(
            ReportFormat::from_path(Path::new("r.json")),
            Some(ReportFormat::Json)
        );
        assert_eq!(ReportFormat::from_path(Path::new("r.txt")), None);
    }

    #[test]
    fn generated_at_parses() {
        assert_eq!(parse_time("1970-01-01T00:01:00Z").unwrap(), 60_000_000_000);
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn seconds_read_well() {
        assert_eq!(human_seconds(1.04), "1.0 s");
        assert_eq!(human_seconds(2650.0), "44.2 min");
        assert_eq!(human_seconds(36000.0), "10.0 h");
    }
}
