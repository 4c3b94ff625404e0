//! Command line: clap definitions and dispatch. Thin by design: every command is a few calls into
//! the pipeline and the report writers.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::flow::{FlowConfig, FlowRecord};
use crate::names::NameBook;
use crate::pipeline::{self, PassSummary};
use crate::report::flows as flow_report;

/// Verify from packets that self-hosted Deepgram licensing traffic is what Deepgram documents.
#[derive(Parser, Debug)]
#[command(name = "dg-audit", version, about, long_about = None)]
pub struct Cli {
    /// Print only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More log detail (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the flows of capture files (Zeek conn.log semantics).
    Flows(FlowsArgs),
}

/// Output formats of `flows`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FlowFormat {
    Text,
    Json,
    Ndjson,
    Zeek,
}

/// Inputs and flow-table settings shared by offline commands.
#[derive(Args, Debug, Clone)]
pub struct InputArgs {
    /// Capture files (pcap or pcapng); several are merged in time order.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Capture file to read (tcpdump's -r); may be repeated.
    #[arg(short = 'r', long = "read", value_name = "FILE")]
    pub read: Vec<PathBuf>,
    /// TCP inactivity timeout in seconds.
    #[arg(long, default_value_t = FlowConfig::default().tcp_inactivity_secs)]
    pub tcp_timeout: u64,
    /// UDP inactivity timeout in seconds.
    #[arg(long, default_value_t = FlowConfig::default().udp_inactivity_secs)]
    pub udp_timeout: u64,
    /// ICMP and other-protocol inactivity timeout in seconds.
    #[arg(long, default_value_t = FlowConfig::default().icmp_inactivity_secs)]
    pub icmp_timeout: u64,
    /// Most flows held at once; past it the longest-idle flow is evicted and the run is incomplete.
    #[arg(long, default_value_t = FlowConfig::default().max_flows)]
    pub max_flows: usize,
}

impl InputArgs {
    fn paths(&self) -> Result<Vec<PathBuf>> {
        let paths: Vec<PathBuf> = self.files.iter().chain(&self.read).cloned().collect();
        if paths.is_empty() {
            bail!("no capture file given: name one or more pcap/pcapng files (or -r FILE)");
        }
        Ok(paths)
    }

    fn flow_config(&self) -> FlowConfig {
        FlowConfig {
            tcp_inactivity_secs: self.tcp_timeout,
            udp_inactivity_secs: self.udp_timeout,
            icmp_inactivity_secs: self.icmp_timeout,
            max_flows: self.max_flows.max(1),
            ..FlowConfig::default()
        }
    }
}

/// `dg-audit flows`.
#[derive(Args, Debug)]
pub struct FlowsArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = FlowFormat::Text)]
    pub format: FlowFormat,
    /// Write to this file instead of standard output.
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
}

/// What a command asks `main` to exit with.
pub type ExitStatus = u8;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<ExitStatus> {
    match cli.command {
        Command::Flows(args) => flows(args, cli.quiet),
    }
}

fn open_output(path: Option<&Path>) -> Result<Box<dyn Write>> {
    Ok(match path {
        Some(p) => Box::new(BufWriter::new(
            File::create(p).with_context(|| format!("cannot write {}", p.display()))?,
        )),
        None => Box::new(BufWriter::new(io::stdout().lock())),
    })
}

/// A progress bar on stderr when it is a terminal (and not --quiet).
fn progress_bar(quiet: bool) -> Option<indicatif::ProgressBar> {
    if quiet || !io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} reading {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta}) {wide_bar}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(bar)
}

/// One offline pass, collecting every flow record.
pub fn collect_flows(
    input: &InputArgs,
    names: NameBook,
    quiet: bool,
) -> Result<(PassSummary, Vec<FlowRecord>)> {
    let paths = input.paths()?;
    let mut records = Vec::new();
    let bar = progress_bar(quiet);
    let mut tick = |done: u64, total: u64| {
        if let Some(b) = &bar {
            b.set_length(total);
            b.set_position(done);
        }
    };
    let summary = pipeline::run_files(
        &paths,
        input.flow_config(),
        names,
        &mut |r| records.push(r),
        Some(&mut tick),
    )?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    records.sort_by(|a, b| (a.ts_nanos, &a.uid).cmp(&(b.ts_nanos, &b.uid)));
    Ok((summary, records))
}

fn flows(args: FlowsArgs, quiet: bool) -> Result<ExitStatus> {
    let mut out = open_output(args.output.as_deref())?;
    let (summary, records) = if args.format == FlowFormat::Ndjson {
        // NDJSON streams each flow as it ends: memory stays proportional to open flows.
        let paths = args.input.paths()?;
        let mut write_err = None;
        let summary = pipeline::run_files(
            &paths,
            args.input.flow_config(),
            NameBook::default(),
            &mut |r| {
                if write_err.is_none() {
                    write_err = flow_report::write_ndjson_line(&mut out, &r).err();
                }
            },
            None,
        )?;
        if let Some(e) = write_err {
            return Err(e.into());
        }
        (summary, Vec::new())
    } else {
        collect_flows(&args.input, NameBook::default(), quiet)?
    };
    match args.format {
        FlowFormat::Text => flow_report::write_text(&mut out, &summary, &records)?,
        FlowFormat::Json => flow_report::write_json(&mut out, &summary, &records)?,
        FlowFormat::Zeek => {
            flow_report::write_zeek(&mut out, &records, summary.first_ts_nanos, None)?
        }
        FlowFormat::Ndjson => {}
    }
    out.flush()?;
    Ok(if summary.complete { 0 } else { 2 })
}
