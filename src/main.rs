//! dg-audit binary: parse flags, run, map the outcome to an exit code
//! (0 compliant or findings, 1 violation, 2 error, 3 inconclusive).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use dg_audit::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
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
