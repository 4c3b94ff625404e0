//! Reports: turning owned records and audit documents into text for people and JSON, NDJSON and
//! Zeek TSV for machines. This module is the dispatcher of `dg-audit report` and `analyze
//! --report`: it reads audit documents, merges them ([`merge`]) and hands the result to the
//! writer of the format asked for ([`html`], [`markdown`], [`json`]).
//!
//! Floors, top to bottom (no import goes up): this dispatcher; the writers ([`html`],
//! [`markdown`], [`json`], [`text`], [`flows`]); the shared words ([`prose`]); the merge
//! ([`merge`]); the audit document itself (`crate::audit`). Nothing here knows the argument
//! parser: `crate::cli` turns flags into a [`ReportConfig`].
//!
//! Invariants: output is a function of the audits (and the report time given) alone, so
//! regenerating a report from the same audits gives the same bytes: no clock, no random ids,
//! ordered maps, and the report time is the end of the latest capture unless given. Every
//! string that could carry a secret passes through redaction before it is written.

pub mod flows;
pub mod html;
pub mod json;
pub mod markdown;
pub mod merge;
pub mod prose;
pub mod text;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::audit::{Audit, Verdict};
use merge::{merge, Merged};

/// Output formats of `report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    /// One self-contained HTML page (inline CSS and SVG), for screen and print.
    Html,
    /// Markdown for a ticket or a wiki.
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

/// Settings of one rendering beyond the audits themselves.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// Report time, nanoseconds since the epoch; `None`: the end of the latest capture.
    pub generated_at_nanos: Option<i64>,
}

/// One `dg-audit report` run, validated: what to read, where to write, and how.
#[derive(Debug, Clone)]
pub struct ReportConfig {
    /// Audit JSON documents (one or more sensors or days).
    pub inputs: Vec<PathBuf>,
    /// Where to write the report.
    pub output: PathBuf,
    /// The format to write.
    pub format: ReportFormat,
    /// Rendering settings (the report time).
    pub options: RenderOptions,
}

/// Runs `dg-audit report`: reads, merges, renders and writes. Returns the merged verdict (its
/// exit code is the command's); bad input is an error.
pub fn run(config: &ReportConfig) -> Result<Verdict> {
    let audits = config
        .inputs
        .iter()
        .map(|p| read_audit(p))
        .collect::<Result<Vec<_>>>()?;
    let merged = merge(&audits)?;
    let bytes = render_merged(&merged, config.format, &config.options)?;
    std::fs::write(&config.output, bytes)
        .with_context(|| format!("cannot write {}", config.output.display()))?;
    Ok(merged.audit.verdict)
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
        ReportFormat::Html => html::write_html(merged, options.generated_at_nanos).into_bytes(),
        ReportFormat::Md => {
            markdown::write_merged(merged, options.generated_at_nanos)?.into_bytes()
        }
        ReportFormat::Json => json::write_json(merged)?,
    })
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
}
