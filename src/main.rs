//! dg-audit binary: parse flags, run, map the outcome to an exit code
//! (0 compliant or findings, 1 violation, 2 error, 3 inconclusive).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use dg_audit::cli::{self, Cli, ColorChoice};

fn main() -> ExitCode {
    // clap's own help and errors follow --color too: it is read before clap parses.
    let clap_color = match color_flag(std::env::args().skip(1)) {
        Some(ColorChoice::Always) => clap::ColorChoice::Always,
        Some(ColorChoice::Never) => clap::ColorChoice::Never,
        _ => clap::ColorChoice::Auto,
    };
    let matches = Cli::command().color(clap_color).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(cli.color.paints(std::io::stderr().is_terminal()))
        .without_time()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DG_AUDIT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .init();
    match cli::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            // A closed pipe (dg-audit flows x | head) is not an error.
            if err
                .chain()
                .filter_map(|e| e.downcast_ref::<std::io::Error>())
                .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("dg-audit: error: {}", error_chain(&err));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes, `: `-separated, each said once: a cause whose text its parent
/// already includes (a `thiserror` message that formats its `source`, as "cannot read the
/// policy file: {source}") is not repeated, which `{:#}` would do.
fn error_chain(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain().map(ToString::to_string) {
        if text.is_empty() {
            text = cause;
        } else if !text.ends_with(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// The value of `--color WHEN` or `--color=WHEN` before `--` (the last one given), if valid.
fn color_flag(args: impl Iterator<Item = String>) -> Option<ColorChoice> {
    use clap::ValueEnum;
    let mut choice = None;
    let mut args = args.take_while(|a| a != "--");
    while let Some(arg) = args.next() {
        let value = match arg.strip_prefix("--color") {
            Some("") => args.next(),
            Some(v) if v.starts_with('=') => Some(v[1..].to_string()),
            _ => continue,
        };
        if let Some(c) = value.and_then(|v| ColorChoice::from_str(&v, true).ok()) {
            choice = Some(c);
        }
    }
    choice
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(args: &[&str]) -> Option<ColorChoice> {
        color_flag(args.iter().map(|a| a.to_string()))
    }

    #[test]
    fn the_color_flag_is_read_before_clap_parses() {
        assert_eq!(
            flag(&["live", "--color", "never"]),
            Some(ColorChoice::Never)
        );
        assert_eq!(
            flag(&["--color=always", "flows"]),
            Some(ColorChoice::Always)
        );
        assert_eq!(flag(&["flows", "--", "--color", "never"]), None);
        assert_eq!(flag(&["flows", "--color", "pink"]), None);
        assert_eq!(flag(&["flows"]), None);
    }
}
