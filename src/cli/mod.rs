//! Command line: clap definitions and dispatch. Thin by design: every command is a few calls into
//! the pipeline and the report writers.

pub mod color;
pub mod filter;
pub mod live;
pub mod report;

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

pub use color::ColorChoice;

use crate::flow::{FlowConfig, FlowRecord};
use crate::names::NameBook;
use crate::pipeline::{self, PassSummary};
use crate::policy::Policy;
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
    /// Colour in the verdict text and the log lines: auto is colour on a terminal unless
    /// NO_COLOR is set (to anything but empty); always and never override both.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = ColorChoice::Auto,
        value_name = "WHEN"
    )]
    pub color: ColorChoice,
    /// Accepted for tcpdump habits, with no effect: dg-audit never resolves addresses or ports
    /// to names (no DNS lookups); names come only from the capture (SNI, DNS answers, Host)
    /// and the policy's own mappings.
    #[arg(short = 'n', global = true)]
    pub no_resolve: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the flows of capture files (Zeek conn.log semantics).
    Flows(FlowsArgs),
    /// Audit capture files against the policy: a verdict per control, with evidence.
    #[command(
        after_help = "Exit codes: 0 compliant or findings only, 1 violation, 3 inconclusive, \
        2 only when nothing could be judged (not a capture, unreadable, bad arguments). A damaged \
        file that was partly read is judged over what was read, never better than inconclusive: \
        1 when a violation was seen in it, else 3."
    )]
    Analyze(AnalyzeArgs),
    /// Watch an interface: alerts as a rule breaks, Prometheus metrics, an audit on exit.
    Live(live::LiveArgs),
    /// Render audits (one or more sensors or days) as HTML, Markdown or JSON.
    Report(report::ReportArgs),
    /// Show, check or write a policy file.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Print a shell completion script (e.g. `dg-audit completions bash > /etc/bash_completion.d/dg-audit`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page, roff (e.g. `dg-audit man > /usr/local/share/man/man1/dg-audit.1`).
    Man {
        /// A command's own page, with all its options (e.g. `dg-audit man live > dg-audit-live.1`).
        #[arg(value_name = "COMMAND")]
        command: Option<String>,
    },
}

/// `dg-audit policy ...`.
#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Print the embedded default policy (what `analyze` uses without --policy).
    Show,
    /// Validate a policy file; errors give line and column.
    Check {
        /// The policy file.
        file: PathBuf,
    },
    /// Write a commented starter policy.
    Init {
        /// Where to write it (refuses to overwrite).
        #[arg(default_value = "dg-audit.toml")]
        file: PathBuf,
    },
}

/// Output formats of `analyze`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    Text,
    Json,
    Markdown,
}

/// `dg-audit analyze`.
#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Policy file (TOML); without it the embedded default, which mirrors Deepgram's documentation.
    #[arg(long, value_name = "POLICY")]
    pub policy: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = AuditFormat::Text)]
    pub format: AuditFormat,
    /// Write to this file instead of standard output.
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Name of the sensor that captured (recorded in the audit for merged reports).
    #[arg(long)]
    pub sensor: Option<String>,
    /// Also write a report (HTML, Markdown or JSON, by the extension of OUT).
    #[arg(long, value_name = "OUT")]
    pub report: Option<PathBuf>,
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
    /// Capture files (pcap or pcapng; several are merged in time order), then optionally a BPF
    /// filter expression as tcpdump takes it (`dg-audit flows a.pcap tcp port 443`): the first
    /// word that is not an existing file starts the expression. Options may come before or
    /// after; everything after `--` is the expression.
    #[arg(value_name = "FILE... [EXPRESSION]")]
    pub files: Vec<String>,
    /// The BPF filter expression, after `--` (`dg-audit flows a.pcap -- tcp port 443`).
    #[arg(last = true, value_name = "EXPRESSION", hide = true)]
    pub expression: Vec<String>,
    /// Capture file to read (tcpdump's -r); may be repeated.
    #[arg(short = 'r', long = "read", value_name = "FILE")]
    pub read: Vec<PathBuf>,
    /// Read the BPF filter expression from FILE (tcpdump's -F); `#` starts a comment.
    #[arg(short = 'F', value_name = "FILE")]
    pub filter_file: Option<PathBuf>,
    /// TCP inactivity timeout in seconds [default: 300, or the policy's].
    #[arg(long)]
    pub tcp_timeout: Option<u64>,
    /// UDP inactivity timeout in seconds [default: 60, or the policy's].
    #[arg(long)]
    pub udp_timeout: Option<u64>,
    /// ICMP and other-protocol inactivity timeout in seconds [default: 60, or the policy's].
    #[arg(long)]
    pub icmp_timeout: Option<u64>,
    /// Most flows held at once; past it the longest-idle flow is evicted and the audit is
    /// incomplete [default: 1000000, or the policy's].
    #[arg(long)]
    pub max_flows: Option<usize>,
}

impl InputArgs {
    /// The capture files and the filter expression, split as tcpdump users expect.
    fn paths_and_filter(&self) -> Result<(Vec<PathBuf>, Option<String>)> {
        let split = self
            .files
            .iter()
            .position(|w| !Path::new(w).exists())
            .unwrap_or(self.files.len());
        let (files, words) = self.files.split_at(split);
        if let Some(missing) = words.first() {
            // A name that looks like a capture is a missing file, not a filter word.
            if missing.ends_with(".pcap") || missing.ends_with(".pcapng") || missing.contains('/') {
                bail!("{missing}: no such file");
            }
            if !self.expression.is_empty() {
                bail!("{missing}: no such file (the filter expression is the words after `--`)");
            }
        }
        let words = if words.is_empty() {
            &self.expression[..]
        } else {
            words
        };
        let paths: Vec<PathBuf> = files
            .iter()
            .map(PathBuf::from)
            .chain(self.read.iter().cloned())
            .collect();
        if paths.is_empty() {
            bail!("no capture file given: name one or more pcap/pcapng files (or -r FILE)");
        }
        let filter = filter::expression(words, self.filter_file.as_deref())?;
        Ok((paths, filter))
    }

    /// Flow settings: flags first, then the policy's, then the defaults.
    fn flow_config(&self, base: FlowConfig) -> FlowConfig {
        FlowConfig {
            tcp_inactivity_secs: self.tcp_timeout.unwrap_or(base.tcp_inactivity_secs),
            udp_inactivity_secs: self.udp_timeout.unwrap_or(base.udp_inactivity_secs),
            icmp_inactivity_secs: self.icmp_timeout.unwrap_or(base.icmp_inactivity_secs),
            max_flows: self.max_flows.unwrap_or(base.max_flows).max(1),
            ..base
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
        Command::Analyze(args) => analyze(args, cli.quiet, cli.color),
        Command::Live(args) if args.list_interfaces => {
            live::list_interfaces(&mut io::stdout().lock())?;
            Ok(0)
        }
        Command::Live(args) => crate::live::run_live(&args.config()?, cli.quiet),
        Command::Report(args) => report::run_report(&args),
        Command::Policy(cmd) => policy_command(cmd),
        Command::Completions { shell } => {
            // Generated into memory: clap_complete panics on a write error (a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "dg-audit", &mut script);
            let mut out = io::stdout().lock();
            out.write_all(&script)?;
            out.flush()?;
            Ok(0)
        }
        Command::Man { command } => {
            let mut page = Vec::new();
            clap_mangen::Man::new(man_command(command.as_deref())?)
                .source(concat!("dg-audit ", env!("CARGO_PKG_VERSION")))
                .render(&mut page)?;
            let mut out = io::stdout().lock();
            out.write_all(&page)?;
            out.flush()?;
            Ok(0)
        }
    }
}

/// The command a man page describes: dg-audit, or one of its commands as `dg-audit-NAME`, the
/// page the top one's SUBCOMMANDS section refers to.
fn man_command(name: Option<&str>) -> Result<clap::Command> {
    let mut top = Cli::command();
    top.build();
    let Some(name) = name else {
        return Ok(top);
    };
    let names: Vec<&str> = top
        .get_subcommands()
        .map(|c| c.get_name())
        .filter(|n| *n != "help")
        .collect();
    match top.find_subcommand(name) {
        Some(sub) => Ok(sub.clone()),
        None => bail!("man {name}: no such command; one of {}", names.join(", ")),
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
    config: FlowConfig,
    names: NameBook,
    quiet: bool,
) -> Result<(PassSummary, Vec<FlowRecord>)> {
    let (paths, filter) = input.paths_and_filter()?;
    let mut records = Vec::new();
    let bar = progress_bar(quiet);
    let mut tick = |done: u64, total: u64| {
        if let Some(b) = &bar {
            b.set_length(total);
            b.set_position(done);
        }
    };
    let summary = pipeline::run_files_filtered(
        &paths,
        config,
        names,
        filter.as_deref(),
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
        let (paths, filter) = args.input.paths_and_filter()?;
        let mut write_err = None;
        let summary = pipeline::run_files_filtered(
            &paths,
            args.input.flow_config(FlowConfig::default()),
            NameBook::default(),
            filter.as_deref(),
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
        collect_flows(
            &args.input,
            args.input.flow_config(FlowConfig::default()),
            NameBook::default(),
            quiet,
        )?
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
    // Bad input is an error (2); evictions only mark the output incomplete (`complete: false`).
    Ok(if input_faulted(&summary) { 2 } else { 0 })
}

/// True when an input stopped short because the file itself is damaged (bad input: exit 2).
fn input_faulted(summary: &PassSummary) -> bool {
    summary.inputs.iter().any(|i| i.incomplete)
}

fn load_policy(path: Option<&Path>) -> Result<Policy> {
    Ok(match path {
        Some(p) => Policy::load(p)?,
        None => Policy::default_policy(),
    })
}

fn analyze(args: AnalyzeArgs, quiet: bool, color: ColorChoice) -> Result<ExitStatus> {
    let policy = load_policy(args.policy.as_deref())?;
    let names = NameBook::with_operator_names(policy.names.clone().into_iter().collect());
    let config = args.input.flow_config(policy.flow_config());
    let (summary, records) = collect_flows(&args.input, config, names, quiet)?;
    let mut audit = crate::audit::audit(
        &records,
        &summary,
        &policy,
        args.policy.as_ref().map(|p| p.display().to_string()),
    );
    audit.sensor = args.sensor.clone();
    if let Some(path) = &args.report {
        crate::report::write_report(&audit, path, None)?;
    }
    let painted = color.paints(args.output.is_none() && io::stdout().is_terminal());
    let mut out = open_output(args.output.as_deref())?;
    match args.format {
        AuditFormat::Text => crate::report::text::write_text(&mut out, &audit, painted)?,
        AuditFormat::Markdown => crate::report::markdown::write_markdown(&mut out, &audit)?,
        AuditFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &audit)?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    // A damaged input that was partly read is judged over what was read: CAPTURE makes it
    // inconclusive (3), and a violation seen in that part is still a violation (1). Exit 2 is
    // left for what could not be judged at all (not a capture, unreadable), which fails above.
    Ok(audit.verdict.exit_code())
}

fn policy_command(cmd: PolicyCommand) -> Result<ExitStatus> {
    match cmd {
        PolicyCommand::Show => {
            print!("{}", crate::policy::DEFAULT_POLICY_TOML);
        }
        PolicyCommand::Check { file } => {
            let policy = Policy::load(&file)?;
            println!(
                "{}: valid (schema_version {}, sha256 {})",
                file.display(),
                policy.schema_version,
                policy.sha256()
            );
        }
        PolicyCommand::Init { file } => {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&file)
                .with_context(|| {
                    format!("cannot create {} (it may already exist)", file.display())
                })?;
            f.write_all(crate::policy::DEFAULT_POLICY_TOML.as_bytes())
                .with_context(|| format!("cannot write {}", file.display()))?;
            println!("wrote {}", file.display());
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        <Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn offline_commands_take_options_anywhere_and_the_filter_after_double_dash() {
        let cli = Cli::try_parse_from([
            "dg-audit", "flows", "a.pcap", "tcp", "--format", "json", "port", "443", "-n",
        ])
        .expect("parses");
        let Command::Flows(args) = cli.command else {
            panic!("flows")
        };
        assert_eq!(args.format, FlowFormat::Json);
        assert_eq!(args.input.files, ["a.pcap", "tcp", "port", "443"]);
        let cli =
            Cli::try_parse_from(["dg-audit", "analyze", "a.pcap", "--", "tcp", "port", "443"])
                .expect("parses");
        let Command::Analyze(args) = cli.command else {
            panic!("analyze")
        };
        assert_eq!(args.input.files, ["a.pcap"]);
        assert_eq!(args.input.expression, ["tcp", "port", "443"]);
        assert!(Cli::try_parse_from(["dg-audit", "flows", "a.pcap", "--nope"]).is_err());
    }
}
