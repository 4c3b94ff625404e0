//! `dg-audit report` flags: the clap definitions, and their conversion into the validated
//! [`ReportConfig`] the report module runs on (the format resolved, the report time parsed).
//! The report module never sees clap.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use crate::report::{RenderOptions, ReportConfig, ReportFormat};

/// Output formats of `report`, as the flag spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormatArg {
    /// One self-contained HTML page (inline CSS and SVG), for screen and print.
    Html,
    /// Markdown for a ticket or a wiki.
    #[value(alias = "markdown")]
    Md,
    /// The merged audit document (schema/audit.schema.json) with a `merge` section.
    Json,
}

impl From<ReportFormatArg> for ReportFormat {
    fn from(f: ReportFormatArg) -> Self {
        match f {
            ReportFormatArg::Html => ReportFormat::Html,
            ReportFormatArg::Md => ReportFormat::Md,
            ReportFormatArg::Json => ReportFormat::Json,
        }
    }
}

/// `dg-audit report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Audit JSON files (one or more sensors/days), from `dg-audit analyze --format json`.
    #[arg(required = true, value_name = "AUDIT")]
    pub audits: Vec<PathBuf>,
    /// Where to write the report.
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    /// Report format [default: from the extension of OUT].
    #[arg(long, value_enum)]
    pub format: Option<ReportFormatArg>,
    /// Report time to print (RFC 3339) [default: the end of the latest capture, so that the
    /// same audits always give the same report].
    #[arg(long, value_name = "TIME")]
    pub generated_at: Option<String>,
}

impl ReportArgs {
    /// The validated configuration: the format from `--format` or the extension of OUT, the
    /// report time parsed.
    pub fn config(&self) -> Result<ReportConfig> {
        let format = match self.format {
            Some(f) => f.into(),
            None => ReportFormat::from_path(&self.output).with_context(|| {
                format!(
                    "cannot tell the report format from {}: use .html, .md or .json, or pass --format",
                    self.output.display()
                )
            })?,
        };
        let options = RenderOptions {
            generated_at_nanos: self.generated_at.as_deref().map(parse_time).transpose()?,
        };
        Ok(ReportConfig {
            inputs: self.audits.clone(),
            output: self.output.clone(),
            format,
            options,
        })
    }
}

/// Runs `dg-audit report`. Returns the exit code of the merged verdict (0 compliant or
/// findings, 1 violation, 3 inconclusive); bad input is an error (exit 2).
pub fn run_report(args: &ReportArgs) -> Result<u8> {
    Ok(crate::report::run(&args.config()?)?.exit_code())
}

/// `--generated-at`: an RFC 3339 time, as nanoseconds since the epoch.
fn parse_time(text: &str) -> Result<i64> {
    let t = humantime::parse_rfc3339_weak(text)
        .with_context(|| format!("--generated-at {text:?} is not an RFC 3339 time"))?;
    let nanos = t
        .duration_since(std::time::UNIX_EPOCH)
        .context("--generated-at is before 1970")?
        .as_nanos();
    i64::try_from(nanos).context("--generated-at is too far in the future")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_at_parses() {
        assert_eq!(parse_time("1970-01-01T00:01:00Z").unwrap(), 60_000_000_000);
        assert!(parse_time("yesterday").is_err());
    }
}
