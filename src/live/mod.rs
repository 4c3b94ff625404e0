//! `dg-audit live`: watch an interface and judge licensing traffic as it happens.
//!
//! Threads and tasks:
//! - the capture thread (libpcap blocks) owns the capture, the [`Engine`] (decoder, flow table,
//!   controls) and the evidence ring; it wakes at least every [`READ_TIMEOUT_MS`] ms even when
//!   nothing arrives, so overdue check-ins are noticed during silence;
//! - the alert writer thread turns alerts into NDJSON lines (stdout or `--alerts FILE`); the
//!   capture thread hands alerts over a bounded queue and never waits: when the writer falls
//!   behind, alerts are dropped and counted (`dg_audit_alerts_dropped_total`);
//! - a current-thread tokio runtime runs the 1 s ticker (capture counters, minute close, ring
//!   flush), SIGINT/SIGTERM, the status line and the `--metrics` HTTP server.
//!
//! On SIGINT/SIGTERM, `-c`, `--duration` or a capture fault, every flow is ended, pending alerts
//! are written, and the audit (the same document as `analyze --format json`) goes to `--audit`.
//! Exit codes: 0 compliant or findings, 1 violation, 3 inconclusive, 2 error (a capture fault
//! included; the audit is still written).
//!
//! [`READ_TIMEOUT_MS`]: crate::source::live::READ_TIMEOUT_MS

mod engine;
pub mod metrics;
mod privs;
pub mod ring;

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

pub use engine::{Alert, AlertSink, Engine, EngineConfig, SETTLE_NANOS};
use metrics::Metrics;
use ring::{Ring, RingConfig};

use crate::audit::Audit;
use crate::policy::Policy;
use crate::source::live::{LiveCapture, LiveOptions};

/// Alerts queued between the capture thread and the writer before new ones are dropped.
const ALERT_QUEUE: usize = 4096;

/// `dg-audit live`.
#[derive(clap::Args, Debug, Clone)]
pub struct LiveArgs {
    /// Interface to capture on, or "any" for all [default: libpcap's first interface].
    #[arg(short = 'i', long = "iface", value_name = "IFACE")]
    pub iface: Option<String>,
    /// Policy file (TOML); without it the embedded default, which mirrors Deepgram's documentation.
    #[arg(long, value_name = "POLICY")]
    pub policy: Option<PathBuf>,
    /// Bytes kept of each packet (enough for ClientHellos and HTTP headers).
    #[arg(short = 's', long, default_value_t = 65535, value_name = "BYTES")]
    pub snaplen: u32,
    /// Promiscuous mode: also see traffic of other hosts (mirror/SPAN ports; needs CAP_NET_ADMIN).
    #[arg(long, overrides_with = "no_promisc")]
    pub promisc: bool,
    /// No promiscuous mode (the default): only this host's traffic.
    #[arg(long = "no-promisc", overrides_with = "promisc")]
    pub no_promisc: bool,
    /// Immediate mode: packets are handed over as they arrive (the default).
    #[arg(long, overrides_with = "no_immediate")]
    pub immediate: bool,
    /// Let the kernel batch packets (less CPU, up to 100 ms later alerts).
    #[arg(long = "no-immediate", overrides_with = "immediate")]
    pub no_immediate: bool,
    /// Kernel capture buffer in KiB (tcpdump's -B); raise it when drops are reported.
    #[arg(
        short = 'B',
        long = "buffer-size",
        default_value_t = 8192,
        value_name = "KIB"
    )]
    pub buffer_size: u32,
    /// Stop after this many frames.
    #[arg(short = 'c', long, value_name = "COUNT")]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,
    /// Drop privileges to this user once the interface is open (as tcpdump -Z).
    #[arg(short = 'Z', long = "user", value_name = "USER")]
    pub user: Option<String>,
    /// Write alerts (NDJSON) to this file, appending [default: standard output].
    #[arg(long, value_name = "FILE")]
    pub alerts: Option<PathBuf>,
    /// Serve Prometheus metrics on ADDR (e.g. 127.0.0.1:9464, or :9464 for every address).
    #[arg(long, value_name = "ADDR", value_parser = parse_listen_addr)]
    pub metrics: Option<SocketAddr>,
    /// Keep a rotating pcap ring of evidence in DIR; alerts name the files.
    #[arg(short = 'w', value_name = "DIR")]
    pub write_dir: Option<PathBuf>,
    /// Size of one ring file, in millions of bytes (tcpdump's -C).
    #[arg(long, default_value_t = 100, value_name = "MB", requires = "write_dir")]
    pub ring_file_mb: u64,
    /// Ring files kept (tcpdump's -W); the oldest is deleted.
    #[arg(long, default_value_t = 10, value_name = "N", requires = "write_dir")]
    pub ring_files: usize,
    /// Write the audit (JSON, as `analyze --format json`) to FILE on exit.
    #[arg(long, value_name = "FILE")]
    pub audit: Option<PathBuf>,
    /// Expected seconds between check-ins (overrides the policy's cadence_seconds).
    #[arg(long, value_name = "SECS")]
    pub cadence: Option<u64>,
    /// Drift allowed before a check-in is overdue (overrides cadence_tolerance_seconds).
    #[arg(long, value_name = "SECS")]
    pub cadence_tolerance: Option<u64>,
    /// Name of this sensor, recorded in the audit for merged reports.
    #[arg(long)]
    pub sensor: Option<String>,
    /// BPF filter expression (tcpdump syntax), e.g. `tcp port 443 or udp port 53`.
    #[arg(
        value_name = "EXPRESSION",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub expression: Vec<String>,
}

fn parse_listen_addr(text: &str) -> Result<SocketAddr, String> {
    let full = if text.starts_with(':') {
        format!("0.0.0.0{text}")
    } else {
        text.to_string()
    };
    full.parse().map_err(|_| {
        format!("{text:?} is not an address:port; write e.g. 127.0.0.1:9464, [::1]:9464 or :9464")
    })
}

fn wall_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The policy with the command line's overrides, and how it was given.
fn effective_policy(args: &LiveArgs) -> Result<(Policy, Option<String>)> {
    let mut policy = match &args.policy {
        Some(p) => Policy::load(p)?,
        None => Policy::default_policy(),
    };
    let mut source = args.policy.as_ref().map(|p| p.display().to_string());
    let mut overrides = Vec::new();
    if let Some(c) = args.cadence {
        policy.licensing.cadence_seconds = c;
        overrides.push(format!("--cadence {c}"));
    }
    if let Some(t) = args.cadence_tolerance {
        policy.licensing.cadence_tolerance_seconds = t;
        overrides.push(format!("--cadence-tolerance {t}"));
    }
    let l = &policy.licensing;
    if l.cadence_seconds == 0 || l.cadence_tolerance_seconds >= l.cadence_seconds {
        bail!(
            "cadence {} s with tolerance {} s: the cadence must be positive and the tolerance below it (e.g. --cadence 60 --cadence-tolerance 15)",
            l.cadence_seconds,
            l.cadence_tolerance_seconds
        );
    }
    if !overrides.is_empty() {
        let base = source.unwrap_or_else(|| "default policy".into());
        source = Some(format!("{base} with {}", overrides.join(" ")));
    }
    Ok((policy, source))
}

/// Opens an output once privileges are dropped, so files belong to the user dg-audit runs as.
fn open_alerts(path: Option<&PathBuf>) -> Result<(Box<dyn Write + Send>, String)> {
    Ok(match path {
        Some(p) => (
            Box::new(BufWriter::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .with_context(|| format!("cannot write alerts to {}", p.display()))?,
            )),
            p.display().to_string(),
        ),
        None => (Box::new(BufWriter::new(io::stdout())), "stdout".into()),
    })
}

enum Command {
    Tick,
    Stop,
}

struct Outcome {
    audit: Audit,
    fault: Option<String>,
}

struct Limits {
    count: Option<u64>,
    deadline: Option<i64>,
}

/// Runs the live capture until a signal, `-c`, `--duration` or a fault; returns the exit code
/// of the audit's verdict (0, 1, 3), or 2 when the capture faulted (the audit is still written).
pub fn run_live(args: &LiveArgs, quiet: bool) -> Result<u8> {
    let (policy, policy_source) = effective_policy(args)?;
    if args.write_dir.is_some() && (args.ring_file_mb == 0 || args.ring_files == 0) {
        bail!("--ring-file-mb and --ring-files must be at least 1");
    }
    let expression = args.expression.join(" ");
    let options = LiveOptions {
        iface: args.iface.clone(),
        snaplen: args.snaplen.max(64),
        promisc: args.promisc && !args.no_promisc,
        immediate: !args.no_immediate,
        buffer_kib: args.buffer_size.max(64),
        filter: (!expression.trim().is_empty()).then(|| expression.clone()),
    };
    // Privileged steps first: the device, and a metrics port (which may be below 1024).
    let capture = LiveCapture::open(&options)?;
    let listener = match args.metrics {
        Some(addr) => {
            let l = std::net::TcpListener::bind(addr).with_context(|| {
                format!("cannot serve metrics on {addr} (address in use, or not on this host)")
            })?;
            l.set_nonblocking(true)?;
            Some(l)
        }
        None => None,
    };
    if let Some(user) = &args.user {
        privs::drop_to(user)?;
    }
    let (alerts_out, alerts_label) = open_alerts(args.alerts.as_ref())?;
    let audit_file = match &args.audit {
        Some(p) => Some((
            File::create(p)
                .with_context(|| format!("cannot write the audit to {}", p.display()))?,
            p.clone(),
        )),
        None => None,
    };
    let start = wall_nanos();
    let ring = match &args.write_dir {
        Some(dir) => Some(Ring::new(
            RingConfig {
                dir: dir.clone(),
                file_bytes: args.ring_file_mb.saturating_mul(1_000_000),
                files: args.ring_files,
                link_type: capture.link_type(),
            },
            start,
        )?),
        None => None,
    };
    let iface = capture.iface().to_string();
    if !quiet {
        eprintln!(
            "dg-audit: listening on {iface}, link-type {}, snapshot length {} bytes{}; alerts to {alerts_label}{}{}",
            capture.link_type(),
            capture.snaplen(),
            if expression.is_empty() { String::new() } else { format!(", filter {expression:?}") },
            args.metrics
                .map(|a| format!("; metrics on http://{a}/metrics"))
                .unwrap_or_default(),
            args.write_dir
                .as_ref()
                .map(|d| format!("; evidence ring in {}", d.display()))
                .unwrap_or_default(),
        );
    }
    let metrics = Metrics::new();
    let (alert_tx, alert_rx) = tokio::sync::mpsc::channel::<Alert>(ALERT_QUEUE);
    let sink: AlertSink = {
        let metrics = metrics.clone();
        Box::new(move |alert| {
            if alert_tx.try_send(alert).is_err() {
                metrics.alerts_dropped.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let mut engine = Engine::new(
        EngineConfig {
            policy,
            policy_source,
            sensor: args.sensor.clone(),
            input_name: format!("live:{iface}"),
            link_type: capture.link_type(),
            snaplen: capture.snaplen(),
            start_nanos: start,
        },
        metrics.clone(),
        sink,
    );
    if let Some(ring) = ring {
        engine.set_ring(ring);
    }
    let status = !quiet && io::stderr().is_terminal();
    // Alerts and the status line on one terminal: clear the status line before each alert.
    let clear_status = status && args.alerts.is_none() && io::stdout().is_terminal();
    let writer = {
        let metrics = metrics.clone();
        std::thread::Builder::new()
            .name("dg-audit-alerts".into())
            .spawn(move || {
                write_alerts(alert_rx, alerts_out, &alerts_label, &metrics, clear_status)
            })
            .context("cannot start the alert writer")?
    };
    let limits = Limits {
        count: args.count,
        deadline: args
            .duration
            .map(|s| start.saturating_add((s as i64).saturating_mul(1_000_000_000))),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let outcome = runtime.block_on(supervise(
        capture, engine, limits, listener, metrics, status, iface,
    ))?;
    // The engine (and with it the alert queue's sender) is gone: the writer drains and ends.
    let _ = writer.join();
    drop(runtime);

    let audit = outcome.audit;
    if let Some((file, path)) = audit_file {
        if let Err(e) = write_audit(&file, &audit) {
            eprintln!(
                "dg-audit: error: cannot write the audit to {}: {e}; here it is on stderr instead",
                path.display()
            );
            let _ = serde_json::to_writer_pretty(io::stderr().lock(), &audit);
            eprintln!();
            return Ok(2);
        }
    }
    if !quiet {
        let c = &audit.capture;
        eprintln!(
            "dg-audit: {} frames, {} flows, {} licensing connection(s), {} capture drops; verdict {}",
            c.frames,
            audit.flows.total,
            audit.licensing.connections,
            c.capture_drops,
            audit.verdict.as_str()
        );
    }
    if let Some(fault) = outcome.fault {
        eprintln!("dg-audit: error: {fault}");
        return Ok(2);
    }
    Ok(audit.verdict.exit_code())
}

fn write_audit(file: &File, audit: &Audit) -> io::Result<()> {
    let mut out = BufWriter::new(file);
    serde_json::to_writer_pretty(&mut out, audit)?;
    writeln!(out)?;
    out.flush()?;
    file.sync_all()
}

/// The tokio side: ticker, signals, status line, metrics server; waits for the capture thread.
async fn supervise(
    capture: LiveCapture,
    engine: Engine,
    limits: Limits,
    listener: Option<std::net::TcpListener>,
    metrics: Arc<Metrics>,
    status: bool,
    iface: String,
) -> Result<Outcome> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut sigint = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let server = match listener {
        Some(l) => Some(tokio::spawn(metrics::serve(
            tokio::net::TcpListener::from_std(l).context("cannot serve metrics")?,
            metrics.clone(),
        ))),
        None => None,
    };
    let (cmd_tx, cmd_rx) = mpsc::channel::<Command>();
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<Outcome>();
    std::thread::Builder::new()
        .name("dg-audit-capture".into())
        .spawn(move || {
            let outcome = capture_loop(capture, engine, cmd_rx, limits);
            let _ = done_tx.send(outcome);
        })
        .context("cannot start the capture thread")?;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopping = false;
    let outcome = loop {
        tokio::select! {
            done = &mut done_rx => break done,
            _ = ticker.tick() => {
                let _ = cmd_tx.send(Command::Tick);
                if status {
                    status_line(&metrics, &iface);
                }
            }
            _ = sigint.recv() => {
                if stopping {
                    // A second ^C: the user does not want to wait for the flush.
                    std::process::exit(130);
                }
                stopping = true;
                let _ = cmd_tx.send(Command::Stop);
            }
            _ = sigterm.recv() => {
                stopping = true;
                let _ = cmd_tx.send(Command::Stop);
            }
        }
    };
    if status {
        eprint!("\r\x1b[2K");
    }
    if let Some(server) = server {
        server.abort();
    }
    outcome.map_err(|_| anyhow::anyhow!("the capture thread stopped unexpectedly"))
}

fn status_line(metrics: &Metrics, iface: &str) {
    let s = metrics.lock().clone();
    let checkins: u64 = s.checkins.values().sum();
    let alerts: u64 = s.alerts.values().sum();
    let violations: u64 = s
        .alerts
        .iter()
        .filter(|((_, v), _)| v == "violation")
        .map(|(_, n)| n)
        .sum();
    let overdue = s.overdue.values().filter(|v| **v).count();
    eprint!(
        "\r\x1b[2K{iface}: {} frames, {} flows open, {checkins} check-ins{}, {alerts} alerts ({violations} violations), {} drops",
        s.frames,
        s.flows_open,
        if overdue > 0 { format!(" ({overdue} overdue)") } else { String::new() },
        s.kernel_drops + s.iface_drops
    );
}

/// The capture thread: packets into the engine; ticks and the stop command between reads.
fn capture_loop(
    mut capture: LiveCapture,
    mut engine: Engine,
    commands: mpsc::Receiver<Command>,
    limits: Limits,
) -> Outcome {
    let mut frames = 0u64;
    let mut fault = None;
    'run: loop {
        loop {
            match commands.try_recv() {
                Ok(Command::Tick) => {
                    let stats = capture.stats();
                    engine.tick(wall_nanos(), stats);
                }
                Ok(Command::Stop) | Err(mpsc::TryRecvError::Disconnected) => break 'run,
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        match capture.next_frame() {
            Ok(Some(frame)) => {
                engine.on_frame(&frame, wall_nanos());
                frames += 1;
            }
            Ok(None) => {}
            Err(e) => {
                let message = e.to_string();
                engine.fault(wall_nanos(), message.clone());
                fault = Some(message);
                break;
            }
        }
        let now = wall_nanos();
        engine.poll(now);
        if limits.count.is_some_and(|c| frames >= c) || limits.deadline.is_some_and(|d| now >= d) {
            break;
        }
    }
    let now = wall_nanos();
    let stats = if fault.is_none() {
        capture.stats()
    } else {
        None
    };
    engine.tick(now, stats);
    let audit = engine.finish(now);
    Outcome { audit, fault }
}

/// The alert writer thread: one JSON object a line, flushed as soon as the queue is empty.
fn write_alerts(
    mut alerts: tokio::sync::mpsc::Receiver<Alert>,
    mut out: Box<dyn Write + Send>,
    label: &str,
    metrics: &Metrics,
    clear_status: bool,
) {
    let mut reported = false;
    let mut closed = false;
    while let Some(first) = alerts.blocking_recv() {
        let mut batch = vec![first];
        while let Ok(more) = alerts.try_recv() {
            batch.push(more);
        }
        if closed {
            continue;
        }
        if clear_status {
            eprint!("\r\x1b[2K");
        }
        let mut result = Ok(());
        for alert in &batch {
            result = serde_json::to_writer(&mut out, alert)
                .map_err(io::Error::from)
                .and_then(|_| out.write_all(b"\n"));
            if result.is_err() {
                break;
            }
        }
        let result = result.and_then(|_| out.flush());
        if let Err(e) = result {
            metrics
                .alert_write_errors
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            if e.kind() == io::ErrorKind::BrokenPipe {
                // The reader went away (dg-audit live | head): stop writing, keep auditing.
                closed = true;
            } else if !reported {
                reported = true;
                eprintln!(
                    "dg-audit: error: cannot write alerts to {label}: {e}; alerts are counted in dg_audit_alert_write_errors_total and every finding is still in the audit"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        live: LiveArgs,
    }

    #[test]
    fn parses_tcpdump_style_flags_and_a_trailing_filter() {
        let cli = Cli::try_parse_from([
            "live",
            "-i",
            "eth0",
            "-s",
            "1500",
            "-c",
            "10",
            "-Z",
            "nobody",
            "-w",
            "/tmp/r",
            "--ring-files",
            "3",
            "--metrics",
            ":9464",
            "--no-promisc",
            "--promisc",
            "tcp",
            "port",
            "443",
        ])
        .expect("parses");
        let a = cli.live;
        assert_eq!(a.iface.as_deref(), Some("eth0"));
        assert_eq!(a.snaplen, 1500);
        assert_eq!(a.count, Some(10));
        assert!(a.promisc && !a.no_promisc);
        assert!(!a.no_immediate);
        assert_eq!(a.ring_files, 3);
        assert_eq!(a.metrics, Some("0.0.0.0:9464".parse().expect("addr")));
        assert_eq!(a.expression.join(" "), "tcp port 443");
    }

    #[test]
    fn cadence_overrides_are_validated_and_recorded() {
        let cli = Cli::try_parse_from(["live", "--cadence", "3", "--cadence-tolerance", "1"])
            .expect("parses");
        let (policy, source) = effective_policy(&cli.live).expect("valid");
        assert_eq!(policy.licensing.cadence_seconds, 3);
        assert_eq!(policy.licensing.cadence_tolerance_seconds, 1);
        assert_eq!(
            source.as_deref(),
            Some("default policy with --cadence 3 --cadence-tolerance 1")
        );
        let cli = Cli::try_parse_from(["live", "--cadence", "3"]).expect("parses");
        let err = effective_policy(&cli.live).expect_err("tolerance 15 >= cadence 3");
        assert!(err.to_string().contains("tolerance below it"), "{err}");
    }

    #[test]
    fn ring_options_need_a_directory() {
        assert!(Cli::try_parse_from(["live", "--ring-files", "3"]).is_err());
    }
}
