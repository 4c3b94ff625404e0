//! Prometheus metrics of the live loop, and the tiny HTTP/1.1 server that serves them on
//! `GET /metrics` (text exposition format 0.0.4).
//!
//! The capture thread writes, the server reads: one mutex around plain numbers, held for
//! microseconds, plus atomics for the counters the alert writer bumps. Names follow Prometheus
//! conventions (`dg_audit_` prefix, base units, `_total` on counters), checked by
//! `promtool check metrics` in the tests.
//!
//! Besides the capture's own numbers: `dg_audit_build_info`, the policy's licensing limits as
//! gauges (so a dashboard draws the budget next to the measured bytes) and the standard process
//! metrics (`process_*`, read from /proc by hand: see [`render_process`]).

use std::collections::BTreeMap;
use std::fmt::{Display, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::audit::ControlId;

/// Upper bounds of the licensing connection duration histogram, seconds.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// A cumulative histogram.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    /// Observations at most each bound of [`DURATION_BUCKETS`] (cumulative).
    pub counts: [u64; DURATION_BUCKETS.len()],
    /// Observations in all.
    pub count: u64,
    /// Sum of the observations, seconds.
    pub sum: f64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&mut self, v: f64) {
        for (i, le) in DURATION_BUCKETS.iter().enumerate() {
            if v <= *le {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += v;
    }
}

/// Everything the capture thread reports.
#[derive(Debug, Clone, Default)]
pub struct MetricsState {
    /// Frames captured.
    pub frames: u64,
    /// IP packets decoded from them.
    pub packets: u64,
    /// Bytes of the frames as on the wire.
    pub wire_bytes: u64,
    /// Packets the kernel dropped (capture buffer full).
    pub kernel_drops: u64,
    /// Packets the interface or its driver dropped.
    pub iface_drops: u64,
    /// Flows held in the flow table.
    pub flows_open: u64,
    /// Flows created since start.
    pub flows_total: u64,
    /// Flows evicted by the flow-table cap.
    pub evictions: u64,
    /// True while the interface is being captured.
    pub capture_up: bool,
    /// Start of the watch, seconds since the epoch.
    pub start_time_seconds: f64,
    /// Licensing egress IP bytes of the last closed minute, per source.
    pub licensing_minute_bytes: BTreeMap<String, u64>,
    /// Licensing egress IP bytes of closed minutes, per source.
    pub licensing_bytes_total: BTreeMap<String, u64>,
    /// Check-ins seen, per source.
    pub checkins: BTreeMap<String, u64>,
    /// Packet time of the last check-in, per source, seconds since the epoch.
    pub last_checkin_seconds: BTreeMap<String, f64>,
    /// Whether a source's next check-in is overdue.
    pub overdue: BTreeMap<String, bool>,
    /// Durations of licensing connections, seconds.
    pub durations: Histogram,
    /// Alerts by (control, verdict).
    pub alerts: BTreeMap<(String, String), u64>,
    /// Evidence ring files holding at least one packet.
    pub ring_files: u64,
    /// Evidence ring write faults.
    pub ring_faults: u64,
    /// The policy's licensing limits, once the engine is set up.
    pub policy: Option<PolicyLimits>,
}

/// The licensing limits of the policy in force, exported so dashboards draw them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyLimits {
    /// Budget per source host and minute, client-to-server IP bytes.
    pub max_egress_bytes_per_minute: u64,
    /// Expected interval between check-ins, seconds.
    pub cadence_seconds: u64,
    /// Drift from the cadence before a gap is a finding, seconds.
    pub cadence_tolerance_seconds: u64,
}

/// Shared metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    state: Mutex<MetricsState>,
    /// Alerts the writer could not take in time (the capture thread never waits for it).
    pub alerts_dropped: AtomicU64,
    /// Alerts lost because the alert output failed (full disk, closed pipe).
    pub alert_write_errors: AtomicU64,
}

impl Metrics {
    /// New, shared.
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    /// The state, for an update. A panic elsewhere never makes metrics unreadable.
    pub fn lock(&self) -> MutexGuard<'_, MetricsState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The Prometheus text exposition: every family, each with its HELP and TYPE lines, in a
    /// fixed order (scrapers and `promtool` do not care, people diffing two scrapes do).
    pub fn render(&self) -> String {
        let s = self.lock().clone();
        let mut out = String::with_capacity(4096);
        render_build_info(&mut out);
        render_policy(&mut out, s.policy.as_ref());
        render_capture(&mut out, &s);
        render_flows(&mut out, &s);
        render_licensing(&mut out, &s);
        render_durations(&mut out, &s.durations);
        render_alerts(&mut out, &s.alerts);
        scalar(
            &mut out,
            "dg_audit_alerts_dropped_total",
            "counter",
            "Alerts dropped because the alert writer fell behind (capture never waits for output).",
            self.alerts_dropped.load(Ordering::Relaxed),
        );
        scalar(
            &mut out,
            "dg_audit_alert_write_errors_total",
            "counter",
            "Alerts that could not be written to the alert output.",
            self.alert_write_errors.load(Ordering::Relaxed),
        );
        render_ring(&mut out, &s);
        render_process(&mut out);
        out
    }
}

/// `dg_audit_build_info{version, commit}` 1. The commit label is there when the build set
/// `DG_AUDIT_COMMIT` (e.g. `DG_AUDIT_COMMIT=$(git rev-parse --short HEAD) cargo build`).
fn render_build_info(out: &mut String) {
    let n = family(
        out,
        "dg_audit_build_info",
        "gauge",
        "Always 1; the labels name the dg-audit build (version, and commit when known).",
    );
    let version = escape(env!("CARGO_PKG_VERSION"));
    match option_env!("DG_AUDIT_COMMIT").filter(|c| !c.is_empty()) {
        Some(commit) => put(
            out,
            format!(
                "{n}{{version=\"{version}\",commit=\"{}\"}} 1",
                escape(commit)
            ),
        ),
        None => put(out, format!("{n}{{version=\"{version}\"}} 1")),
    }
}

/// The policy's licensing limits (no sample before the engine set them).
fn render_policy(out: &mut String, policy: Option<&PolicyLimits>) {
    let values = policy.map(|p| {
        [
            p.max_egress_bytes_per_minute,
            p.cadence_seconds,
            p.cadence_tolerance_seconds,
        ]
    });
    let families = [
        (
            "dg_audit_policy_max_egress_bytes_per_minute",
            "Policy budget: licensing egress (client to server IP bytes) allowed per source host and minute.",
        ),
        (
            "dg_audit_policy_cadence_seconds",
            "Policy: expected interval between licensing check-ins, seconds.",
        ),
        (
            "dg_audit_policy_cadence_tolerance_seconds",
            "Policy: drift from the check-in cadence before a gap is a finding, seconds.",
        ),
    ];
    for (i, (name, help)) in families.into_iter().enumerate() {
        family(out, name, "gauge", help);
        if let Some(v) = values {
            put(out, format!("{name} {}", v[i]));
        }
    }
}

/// The standard `process_*` metrics of the Prometheus client libraries, read from /proc by
/// hand: five numbers from three files do not justify the `prometheus` crate (its process
/// collector pulls in `procfs`, a registry and protobuf, and would mean a second renderer beside
/// this one) nor `procfs` alone. Families whose source cannot be read (not Linux, /proc not
/// mounted) are left out rather than reported as 0.
fn render_process(out: &mut String) {
    let proc = ProcSelf::read();
    let ticks = clock_ticks();
    if let (Some(cpu), Some(t)) = (proc.cpu_ticks, ticks) {
        scalar(
            out,
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            cpu as f64 / t,
        );
    }
    if let Some(rss) = proc.resident_bytes {
        scalar(
            out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            rss,
        );
    }
    if let Some(vsize) = proc.virtual_bytes {
        scalar(
            out,
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            vsize,
        );
    }
    if let (Some(start), Some(boot), Some(t)) = (proc.start_ticks, proc.boot_time, ticks) {
        scalar(
            out,
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            boot as f64 + start as f64 / t,
        );
    }
    if let Some(fds) = proc.open_fds {
        scalar(
            out,
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            fds,
        );
    }
    if let Some(max) = proc.max_fds {
        scalar(
            out,
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            max,
        );
    }
}

/// What /proc says about this process (each `None` when unreadable).
#[derive(Debug, Default)]
struct ProcSelf {
    /// utime + stime, clock ticks (/proc/self/stat fields 14 and 15).
    cpu_ticks: Option<u64>,
    /// Start time after boot, clock ticks (/proc/self/stat field 22).
    start_ticks: Option<u64>,
    /// Virtual memory size, bytes (/proc/self/stat field 23).
    virtual_bytes: Option<u64>,
    /// VmRSS of /proc/self/status (kB there), bytes.
    resident_bytes: Option<u64>,
    /// Boot time, seconds since the epoch (`btime` of /proc/stat).
    boot_time: Option<u64>,
    /// Entries of /proc/self/fd (the directory handle read_dir holds counts: the Go and Python
    /// clients count it too).
    open_fds: Option<u64>,
    /// Soft "Max open files" of /proc/self/limits.
    max_fds: Option<u64>,
}

impl ProcSelf {
    fn read() -> ProcSelf {
        let mut p = ProcSelf::default();
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after
            // the last ')'; field N (1-based, proc(5)) is then at index N - 3.
            if let Some((_, rest)) = stat.rsplit_once(')') {
                let f: Vec<&str> = rest.split_whitespace().collect();
                let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
                p.cpu_ticks = field(14).zip(field(15)).map(|(u, s)| u + s);
                p.start_ticks = field(22);
                p.virtual_bytes = field(23);
            }
        }
        p.resident_bytes = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| kv_first_number(&s, "VmRSS:"))
            .map(|kb| kb * 1024);
        p.boot_time = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| kv_first_number(&s, "btime"));
        p.open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as u64);
        p.max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|s| kv_first_number(&s, "Max open files"));
        p
    }
}

/// The first number after `key` on the line starting with it.
fn kv_first_number(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Clock ticks per second, the unit of /proc/self/stat times.
fn clock_ticks() -> Option<f64> {
    // SAFETY: sysconf only reads a configuration value; no memory is shared.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (t > 0).then_some(t as f64)
}

/// Capture: up, start time, frames, packets, bytes, drops.
fn render_capture(out: &mut String, s: &MetricsState) {
    scalar(
        out,
        "dg_audit_capture_up",
        "gauge",
        "1 while the interface is being captured, 0 after capture stopped.",
        u8::from(s.capture_up),
    );
    scalar(
        out,
        "dg_audit_start_time_seconds",
        "gauge",
        "Start time of the live capture, seconds since the epoch.",
        s.start_time_seconds,
    );
    scalar(
        out,
        "dg_audit_frames_total",
        "counter",
        "Frames captured.",
        s.frames,
    );
    scalar(
        out,
        "dg_audit_packets_total",
        "counter",
        "IP packets decoded from the captured frames.",
        s.packets,
    );
    scalar(
        out,
        "dg_audit_wire_bytes_total",
        "counter",
        "Bytes of the captured frames as on the wire.",
        s.wire_bytes,
    );
    let n = family(
        out,
        "dg_audit_capture_drops_total",
        "counter",
        "Packets lost before dg-audit saw them (pcap stats): kernel = capture buffer full, interface = NIC or driver. Any drop makes the audit inconclusive.",
    );
    put(out, format!("{n}{{layer=\"kernel\"}} {}", s.kernel_drops));
    put(out, format!("{n}{{layer=\"interface\"}} {}", s.iface_drops));
}

/// The flow table: open flows, created, evicted.
fn render_flows(out: &mut String, s: &MetricsState) {
    scalar(
        out,
        "dg_audit_flows",
        "gauge",
        "Flows held in the flow table.",
        s.flows_open,
    );
    scalar(
        out,
        "dg_audit_flows_created_total",
        "counter",
        "Flows created since start.",
        s.flows_total,
    );
    scalar(
        out,
        "dg_audit_flow_evictions_total",
        "counter",
        "Flows evicted by the flow-table cap (the audit is incomplete when non-zero).",
        s.evictions,
    );
}

/// Licensing, per source host: egress bytes, check-ins, last check-in, overdue.
fn render_licensing(out: &mut String, s: &MetricsState) {
    per_source(
        out,
        "dg_audit_licensing_minute_egress_bytes",
        "gauge",
        "Licensing egress (client to server IP bytes) of the last closed minute, per source host.",
        &s.licensing_minute_bytes,
        |v| v.to_string(),
    );
    per_source(
        out,
        "dg_audit_licensing_egress_bytes_total",
        "counter",
        "Licensing egress (client to server IP bytes) of closed minutes, per source host.",
        &s.licensing_bytes_total,
        |v| v.to_string(),
    );
    per_source(
        out,
        "dg_audit_licensing_checkins_total",
        "counter",
        "Licensing check-ins seen (answered licensing connections), per source host.",
        &s.checkins,
        |v| v.to_string(),
    );
    per_source(
        out,
        "dg_audit_licensing_last_checkin_timestamp_seconds",
        "gauge",
        "Packet time of the last licensing check-in, per source host.",
        &s.last_checkin_seconds,
        |v| format!("{v:.6}"),
    );
    per_source(
        out,
        "dg_audit_licensing_checkin_overdue",
        "gauge",
        "1 while a source's next licensing check-in is overdue (cadence + tolerance passed).",
        &s.overdue,
        |v| u8::from(*v).to_string(),
    );
}

/// The licensing connection duration histogram.
fn render_durations(out: &mut String, h: &Histogram) {
    let n = family(
        out,
        "dg_audit_licensing_connection_duration_seconds",
        "histogram",
        "Duration of licensing connections (first to last packet).",
    );
    for (i, le) in DURATION_BUCKETS.iter().enumerate() {
        put(out, format!("{n}_bucket{{le=\"{le}\"}} {}", h.counts[i]));
    }
    put(out, format!("{n}_bucket{{le=\"+Inf\"}} {}", h.count));
    put(out, format!("{n}_sum {}", h.sum));
    put(out, format!("{n}_count {}", h.count));
}

/// Alerts raised: violations per control (every control, so rate() works before the first
/// alert), and all alerts per control and verdict.
fn render_alerts(out: &mut String, alerts: &BTreeMap<(String, String), u64>) {
    let n = family(
        out,
        "dg_audit_violations_total",
        "counter",
        "Violation alerts raised, per control.",
    );
    for id in ControlId::ALL.map(ControlId::as_str) {
        let v = alerts
            .get(&(id.to_string(), "violation".to_string()))
            .copied()
            .unwrap_or(0);
        put(out, format!("{n}{{control=\"{id}\"}} {v}"));
    }
    let n = family(
        out,
        "dg_audit_alerts_total",
        "counter",
        "Alerts raised, per control and verdict (violation, finding, inconclusive).",
    );
    for ((id, verdict), v) in alerts {
        put(
            out,
            format!(
                "{n}{{control=\"{}\",verdict=\"{}\"}} {v}",
                escape(id),
                escape(verdict)
            ),
        );
    }
}

/// The evidence ring: files on disk, faults.
fn render_ring(out: &mut String, s: &MetricsState) {
    scalar(
        out,
        "dg_audit_evidence_ring_files",
        "gauge",
        "Files of the evidence ring (-w) on disk.",
        s.ring_files,
    );
    scalar(
        out,
        "dg_audit_evidence_ring_faults_total",
        "counter",
        "Evidence ring write faults (full disk); the ring stops, measurement goes on.",
        s.ring_faults,
    );
}

/// A family of one unlabelled sample.
fn scalar(out: &mut String, name: &str, kind: &str, help: &str, value: impl Display) {
    family(out, name, kind, help);
    put(out, format!("{name} {value}"));
}

/// A family with one sample per source host.
fn per_source<V>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    values: &BTreeMap<String, V>,
    show: impl Fn(&V) -> String,
) {
    family(out, name, kind, help);
    for (src, v) in values {
        put(
            out,
            format!("{name}{{source=\"{}\"}} {}", escape(src), show(v)),
        );
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) -> String {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    name.to_string()
}

fn put(out: &mut String, line: String) {
    out.push_str(&line);
    out.push('\n');
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serves `GET /metrics` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors and the like: back off rather than spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), answer(stream, &metrics)).await;
        });
    }
}

async fn answer(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = buf.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => ("200 OK", metrics.render()),
        ("GET" | "HEAD", _) => (
            "404 Not Found",
            "dg-audit serves GET /metrics\n".to_string(),
        ),
        _ => ("405 Method Not Allowed", "only GET /metrics\n".to_string()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if method != "HEAD" {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_help_and_type() {
        let m = Metrics::new();
        {
            let mut s = m.lock();
            s.frames = 10;
            s.checkins.insert("192.0.2.10".into(), 3);
            s.durations.observe(0.2);
            s.durations.observe(7.0);
            s.alerts.insert(("DEST".into(), "violation".into()), 2);
            s.policy = Some(PolicyLimits {
                max_egress_bytes_per_minute: 8192,
                cadence_seconds: 60,
                cadence_tolerance_seconds: 15,
            });
        }
        let text = m.render();
        assert!(text.contains(&format!(
            "dg_audit_build_info{{version=\"{}\"",
            env!("CARGO_PKG_VERSION")
        )));
        assert!(text.contains("dg_audit_policy_max_egress_bytes_per_minute 8192\n"));
        assert!(text.contains("dg_audit_policy_cadence_seconds 60\n"));
        assert!(text.contains("dg_audit_policy_cadence_tolerance_seconds 15\n"));
        if cfg!(target_os = "linux") {
            for name in [
                "process_cpu_seconds_total ",
                "process_resident_memory_bytes ",
                "process_start_time_seconds ",
                "process_open_fds ",
                "process_max_fds ",
            ] {
                assert!(text.contains(&format!("\n{name}")), "no {name}in\n{text}");
            }
        }
        assert!(text.contains("dg_audit_frames_total 10\n"));
        assert!(text.contains("dg_audit_licensing_checkins_total{source=\"192.0.2.10\"} 3\n"));
        assert!(text.contains("dg_audit_violations_total{control=\"DEST\"} 2\n"));
        assert!(text.contains("dg_audit_violations_total{control=\"TLS\"} 0\n"));
        assert!(
            text.contains("dg_audit_licensing_connection_duration_seconds_bucket{le=\"0.25\"} 1\n")
        );
        assert!(
            text.contains("dg_audit_licensing_connection_duration_seconds_bucket{le=\"+Inf\"} 2\n")
        );
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or("");
            let base = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(
                text.contains(&format!("# TYPE {base} "))
                    || text.contains(&format!("# TYPE {name} ")),
                "{name} has no TYPE line"
            );
        }
    }
}
