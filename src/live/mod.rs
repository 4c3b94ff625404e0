//! `dg-audit live`: watch an interface and judge licensing traffic as it happens.
//!
//! Files: `mod.rs` (this: threads, signals, start and end of a watch), [`engine`] (evaluates:
//! window of changed flows, the audit's controls, alerts), [`alerts`] (the alert line, typed
//! de-duplication keys, the sink), [`watch`] (per-source check-ins, overdue in silence),
//! [`input`] (the live input's facts and hash), [`metrics`] (Prometheus), [`ring`] (the evidence
//! ring), `privs` (dropping root). The flags are parsed in `crate::cli::live`, which hands over a
//! validated [`LiveConfig`]: nothing here knows the argument parser.
//!
//! Threads and tasks:
//! - the capture thread (libpcap blocks) owns the capture, the [`Engine`] (a `pipeline::Pass`,
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

pub mod alerts;
mod engine;
pub mod input;
pub mod metrics;
mod privs;
pub mod ring;
pub mod watch;

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, IsTerminal, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

pub use alerts::{Alert, AlertSink};
pub use engine::{Engine, EngineConfig, SETTLE_NANOS};
use metrics::Metrics;
use ring::{Ring, RingConfig};

use crate::audit::Audit;
use crate::policy::Policy;
use crate::source::live::{LiveCapture, LiveOptions};
use crate::units::NANOS;

/// Alerts queued between the capture thread and the writer before new ones are dropped.
const ALERT_QUEUE: usize = 4096;

/// A validated `dg-audit live` configuration (built from the flags by `crate::cli::live`).
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// How to open the interface (snaplen and buffer already raised to their floors).
    pub capture: LiveOptions,
    /// The policy in force, overrides applied and checked (tolerance below the cadence).
    pub policy: Policy,
    /// How the policy was given, recorded in the audit.
    pub policy_source: Option<String>,
    /// Name of this sensor, recorded in the audit.
    pub sensor: Option<String>,
    /// Stop after this many frames.
    pub count: Option<u64>,
    /// Stop after this many seconds.
    pub duration_secs: Option<u64>,
    /// Drop privileges to this user once the interface is open.
    pub user: Option<String>,
    /// Append alerts to this file (standard output when `None`).
    pub alerts: Option<PathBuf>,
    /// Serve Prometheus metrics here.
    pub metrics: Option<SocketAddr>,
    /// Keep an evidence ring.
    pub ring: Option<RingOptions>,
    /// Write the audit here on exit.
    pub audit: Option<PathBuf>,
}

/// Where and how large the evidence ring is (both limits at least 1).
#[derive(Debug, Clone)]
pub struct RingOptions {
    /// Directory of the ring files.
    pub dir: PathBuf,
    /// Rotate once a file reaches this many bytes.
    pub file_bytes: u64,
    /// Files kept.
    pub files: usize,
}

/// Wall-clock now, nanoseconds since the epoch.
fn wall_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
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

/// What the tokio side asks of the capture thread, between two reads.
enum Command {
    /// The once-a-second work ([`Engine::tick`]).
    Tick,
    /// End the capture (a signal).
    Stop,
}

/// What the capture thread hands back when it ends.
struct Outcome {
    audit: Audit,
    /// Why the capture stopped on its own, if it did (exit code 2).
    fault: Option<String>,
}

/// When the capture thread stops by itself.
struct Limits {
    /// After this many frames (`-c`).
    count: Option<u64>,
    /// At this wall time (`--duration`), nanoseconds since the epoch.
    deadline: Option<i64>,
}

/// Runs the live capture until a signal, `-c`, `--duration` or a fault; returns the exit code
/// of the audit's verdict (0, 1, 3), or 2 when the capture faulted (the audit is still written).
pub fn run_live(config: &LiveConfig, quiet: bool) -> Result<u8> {
    // Privileged steps first: the device, and a metrics port (which may be below 1024).
    let capture = LiveCapture::open(&config.capture)?;
    let listener = config.metrics.map(listen).transpose()?;
    if let Some(user) = &config.user {
        privs::drop_to(user)?;
    }
    let (alerts_out, alerts_label) = open_alerts(config.alerts.as_ref())?;
    let audit_file = config.audit.as_deref().map(create_audit).transpose()?;
    let start = wall_nanos();
    let ring = config
        .ring
        .as_ref()
        .map(|r| open_ring(r, capture.link_type(), start))
        .transpose()?;
    let iface = capture.iface().to_string();
    if !quiet {
        announce(config, &capture, &alerts_label);
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
            policy: config.policy.clone(),
            policy_source: config.policy_source.clone(),
            sensor: config.sensor.clone(),
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
    let clear_status = status && config.alerts.is_none() && io::stdout().is_terminal();
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
        count: config.count,
        deadline: config
            .duration_secs
            .map(|s| start.saturating_add((s as i64).saturating_mul(NANOS))),
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
    Ok(conclude(outcome, audit_file, quiet))
}

/// Creates the audit file up front (as the user dg-audit runs as), so a bad path fails now.
fn create_audit(path: &Path) -> Result<(File, PathBuf)> {
    let file = File::create(path)
        .with_context(|| format!("cannot write the audit to {}", path.display()))?;
    Ok((file, path.to_path_buf()))
}

fn open_ring(options: &RingOptions, link_type: u32, start: i64) -> Result<Ring> {
    let config = RingConfig {
        dir: options.dir.clone(),
        file_bytes: options.file_bytes,
        files: options.files,
        link_type,
    };
    Ok(Ring::new(config, start)?)
}

/// Binds the metrics port (before privileges are dropped: it may be below 1024).
fn listen(addr: SocketAddr) -> Result<TcpListener> {
    let l = TcpListener::bind(addr).with_context(|| {
        format!("cannot serve metrics on {addr} (address in use, or not on this host)")
    })?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// The "listening on" line: what is captured and where everything goes.
fn announce(config: &LiveConfig, capture: &LiveCapture, alerts_label: &str) {
    eprintln!(
        "dg-audit: listening on {}, link-type {}, snapshot length {} bytes{}; alerts to {alerts_label}{}{}",
        capture.iface(),
        capture.link_type(),
        capture.snaplen(),
        match &config.capture.filter {
            Some(expression) => format!(", filter {expression:?}"),
            None => String::new(),
        },
        config
            .metrics
            .map(|a| format!("; metrics on http://{a}/metrics"))
            .unwrap_or_default(),
        config
            .ring
            .as_ref()
            .map(|r| format!("; evidence ring in {}", r.dir.display()))
            .unwrap_or_default(),
    );
}

/// Writes the audit, prints the closing line, and gives the exit code.
fn conclude(outcome: Outcome, audit_file: Option<(File, PathBuf)>, quiet: bool) -> u8 {
    let audit = outcome.audit;
    if let Some((file, path)) = audit_file {
        if let Err(e) = write_audit(&file, &audit) {
            eprintln!(
                "dg-audit: error: cannot write the audit to {}: {e}; here it is on stderr instead",
                path.display()
            );
            let _ = serde_json::to_writer_pretty(io::stderr().lock(), &audit);
            eprintln!();
            return 2;
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
        return 2;
    }
    audit.verdict.exit_code()
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
