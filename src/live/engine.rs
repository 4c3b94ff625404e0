//! The live engine: frames in, alerts and metrics out, an audit at the end. It owns the same
//! decoder, flow table, classification and controls as `analyze`, and adds what only a running
//! sensor needs: incremental evaluation, de-duplicated alerts, overdue check-ins, per-minute
//! gauges.
//!
//! Invariants:
//! - Packet timestamps drive all accounting (flows, minutes, check-ins, the audit); the wall clock
//!   passed to [`Engine::poll`] and [`Engine::tick`] only drives "nothing arrived" checks (overdue
//!   check-ins, silence) and when to evaluate.
//! - Alerts come from running [`crate::audit::audit`] over a window, so a live alert and the final
//!   audit apply the same rules. The window holds the flows that changed since the last
//!   evaluation (new packets, or just ended) plus every flow the per-minute controls add up
//!   (licensing, License Proxy hops, DNS) of the current and previous minute: a flow's class only
//!   changes with its own packets, so an unchanged flow has nothing new to say. Per-flow controls
//!   alert once per flow, per-minute controls once per source and minute.
//! - A flow whose name may still arrive (TCP before its ClientHello or request) is judged only
//!   once its first bytes were read or [`SETTLE_NANOS`] passed, so a ClientHello split across
//!   segments never raises a false DEST or TLS alert.
//! - Emitting an alert never blocks: the sink is expected to drop and count when its reader lags.
//! - [`Engine::finish`] ends every flow and returns the same `Audit` document `analyze` writes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audit::classify::{classify, Classified, FlowClass};
use crate::audit::{self, Audit, ControlResult, ControlVerdict};
use crate::decode::Decoder;
use crate::flow::record::{ConnState, Transport};
use crate::flow::{FlowRecord, FlowTable};
use crate::inspect::secrets::redact_text;
use crate::live::metrics::Metrics;
use crate::live::ring::Ring;
use crate::names::NameBook;
use crate::pipeline::PassSummary;
use crate::policy::Policy;
use crate::source::live::LiveStats;
use crate::source::{FileFacts, Frame};
use crate::units::rfc3339;
use crate::units::{MINUTE_NANOS, NANOS};

/// How long a TCP flow may go without its first bytes being read before it is judged anyway.
pub const SETTLE_NANOS: i64 = 500_000_000;
/// Shortest wall time between two evaluations.
const MIN_EVAL_GAP_NANOS: i64 = 200_000_000;
/// Finished flows kept for the audit written on exit. A watch runs for months: past this, the
/// oldest are dropped (and counted, and the exit audit says so), so memory stays bounded.
const MAX_RETAINED_FLOWS: usize = 500_000;
/// Minute-keyed evidence older than this is history, alerted (or not) when it was current.
const STALE_EVIDENCE_NANOS: i64 = 10 * MINUTE_NANOS;

/// Controls judged flow by flow: an alert per flow.
const PER_FLOW: [&str; 7] = [
    "DEST",
    "TLS",
    "DURATION",
    "AUDIO",
    "CREDENTIAL",
    "PROXY",
    "INGRESS",
];
/// Controls whose verdict may change once the flow's first bytes (its name) are read.
const NEEDS_SETTLED: [&str; 4] = ["DEST", "TLS", "PROXY", "INGRESS"];

/// One alert, written as an NDJSON line. The first eight fields are the stable contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// When the alert was raised (wall clock), RFC 3339.
    pub ts: String,
    /// Control id, as in the audit (DEST, TLS, VOLUME, CADENCE, CREDENTIAL, ...).
    pub control: String,
    /// `violation`, `finding` or `inconclusive`.
    pub verdict: String,
    /// One line a person reads (secrets redacted).
    pub summary: String,
    pub source: Option<String>,
    pub destination: Option<String>,
    pub flow_uids: Vec<String>,
    /// Client-to-server IP bytes of the flows (or of the source-minute) behind the alert.
    pub bytes: Option<u64>,
    /// Packet time of the latest packet behind the alert (the last check-in for an overdue one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packet_ts: Option<String>,
    /// Evidence ring files (`-w`) holding those packets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pcap_files: Vec<String>,
}

/// Where alerts go. It must not block (drop and count instead).
pub type AlertSink = Box<dyn FnMut(Alert) + Send>;

/// What the engine needs to know about the capture.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub policy: Policy,
    /// How the policy was given (file, overrides), recorded in the audit.
    pub policy_source: Option<String>,
    pub sensor: Option<String>,
    /// Name of the input in the audit (`live:eth0`).
    pub input_name: String,
    pub link_type: u32,
    pub snaplen: u32,
    /// Wall-clock start, nanoseconds since the epoch.
    pub start_nanos: i64,
}

#[derive(Debug, Clone)]
struct SourceState {
    last_checkin: i64,
    last_uid: String,
    destination: String,
    /// The check-in time an overdue alert was raised for (one alert per gap).
    overdue_for: Option<i64>,
}

/// The input facts of a live capture, built like a file's: the SHA-256 is that of the frames as
/// a classic pcap stream (what `tcpdump -w` with the same snaplen would write).
struct LiveInput {
    facts: FileFacts,
    hasher: Sha256,
    kernel_raw: u32,
    iface_raw: u32,
    kernel_drops: u64,
    iface_drops: u64,
}

impl LiveInput {
    fn new(config: &EngineConfig) -> LiveInput {
        let mut header = Vec::with_capacity(24);
        header.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        header.extend_from_slice(&2u16.to_le_bytes());
        header.extend_from_slice(&4u16.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        header.extend_from_slice(&config.snaplen.to_le_bytes());
        header.extend_from_slice(&config.link_type.to_le_bytes());
        let mut hasher = Sha256::new();
        hasher.update(&header);
        LiveInput {
            facts: FileFacts {
                path: config.input_name.clone(),
                size_bytes: header.len() as u64,
                format: "pcap".into(),
                byte_order: "le".into(),
                link_types: vec![config.link_type],
                snaplen: config.snaplen,
                ..FileFacts::default()
            },
            hasher,
            kernel_raw: 0,
            iface_raw: 0,
            kernel_drops: 0,
            iface_drops: 0,
        }
    }

    fn frame(&mut self, frame: &Frame<'_>) {
        let caplen = frame.data.len() as u32;
        let mut rec = [0u8; 16];
        let secs = frame.ts_nanos.div_euclid(NANOS) as u32;
        let micros = (frame.ts_nanos.rem_euclid(NANOS) / 1_000) as u32;
        rec[0..4].copy_from_slice(&secs.to_le_bytes());
        rec[4..8].copy_from_slice(&micros.to_le_bytes());
        rec[8..12].copy_from_slice(&caplen.to_le_bytes());
        rec[12..16].copy_from_slice(&frame.wire_len.to_le_bytes());
        self.hasher.update(rec);
        self.hasher.update(frame.data);
        self.facts.size_bytes += 16 + caplen as u64;
        self.facts.records += 1;
        if caplen < frame.wire_len {
            self.facts.truncated_frames += 1;
        }
    }

    /// Folds libpcap's cumulative 32-bit counters into 64-bit totals; returns the new drops.
    fn stats(&mut self, stats: LiveStats) -> (u64, u64) {
        let k = stats.kernel_dropped.wrapping_sub(self.kernel_raw) as u64;
        let i = stats.iface_dropped.wrapping_sub(self.iface_raw) as u64;
        self.kernel_raw = stats.kernel_dropped;
        self.iface_raw = stats.iface_dropped;
        self.kernel_drops += k;
        self.iface_drops += i;
        self.facts.capture_drops = self.kernel_drops + self.iface_drops;
        (k, i)
    }

    fn facts(&self) -> FileFacts {
        let mut f = self.facts.clone();
        f.sha256 = hex::encode(self.hasher.clone().finalize());
        f
    }
}

/// The live engine.
pub struct Engine {
    config: EngineConfig,
    decoder: Decoder,
    table: FlowTable,
    /// Finished flows for the exit audit, up to [`MAX_RETAINED_FLOWS`] (newest kept).
    all: Vec<FlowRecord>,
    /// Finished flows dropped from `all` to bound memory.
    dropped_flows: u64,
    /// Finished licensing, proxy-hop and DNS flows of the current and previous minute (what the
    /// per-minute controls add up).
    recent: Vec<FlowRecord>,
    /// Other flows that finished since the last evaluation (judged once, then dropped).
    fresh: Vec<FlowRecord>,
    /// Packet time of the newest packet at the last evaluation: open flows with a packet since
    /// are re-judged.
    eval_mark: i64,
    /// Open flows whose judgement waits for their first bytes (see [`SETTLE_NANOS`]).
    deferred: HashSet<String>,
    /// Latest snapshots of the open flows judged at every evaluation even without a new packet:
    /// licensing, proxy-hop and DNS flows (the per-minute controls add them up) and deferred ones.
    /// With `FlowTable::changed_since` this keeps an evaluation from snapshotting every open flow.
    open_cache: HashMap<String, FlowRecord>,
    input: LiveInput,
    first_ts: i64,
    last_ts: i64,
    dirty: bool,
    last_eval: i64,
    eval_gap: i64,
    recheck_at: Option<i64>,
    /// Alert keys already raised, with the wall time they were raised.
    alerted: HashMap<String, i64>,
    sources: BTreeMap<IpAddr, SourceState>,
    checkins_seen: HashSet<(String, i64)>,
    durations_seen: HashSet<String>,
    silence_alerted: bool,
    /// Wall time the capture stopped (set by [`Engine::finish`]).
    stop_nanos: Option<i64>,
    minute: Option<i64>,
    evicted_seen: u64,
    /// The evidence ring, when `-w` was given.
    ring: Option<Ring>,
    metrics: Arc<Metrics>,
    sink: AlertSink,
}

fn terminal(state: ConnState) -> bool {
    matches!(
        state,
        ConnState::SF
            | ConnState::REJ
            | ConnState::RSTO
            | ConnState::RSTR
            | ConnState::RSTOS0
            | ConnState::RSTRH
            | ConnState::SH
            | ConnState::SHR
    )
}

impl Engine {
    /// A new engine; alerts go to `sink`, counters to `metrics`.
    pub fn new(config: EngineConfig, metrics: Arc<Metrics>, sink: AlertSink) -> Engine {
        let names =
            NameBook::with_operator_names(config.policy.names.clone().into_iter().collect());
        let table = FlowTable::new(config.policy.flow_config(), names);
        {
            let mut m = metrics.lock();
            m.capture_up = true;
            m.start_time_seconds = config.start_nanos as f64 / 1e9;
        }
        Engine {
            input: LiveInput::new(&config),
            config,
            decoder: Decoder::new(),
            table,
            all: Vec::new(),
            recent: Vec::new(),
            fresh: Vec::new(),
            eval_mark: i64::MIN,
            deferred: HashSet::new(),
            dropped_flows: 0,
            open_cache: HashMap::new(),
            first_ts: i64::MAX,
            last_ts: i64::MIN,
            dirty: false,
            last_eval: i64::MIN,
            eval_gap: MIN_EVAL_GAP_NANOS,
            recheck_at: None,
            alerted: HashMap::new(),
            sources: BTreeMap::new(),
            checkins_seen: HashSet::new(),
            durations_seen: HashSet::new(),
            silence_alerted: false,
            stop_nanos: None,
            minute: None,
            evicted_seen: 0,
            ring: None,
            metrics,
            sink,
        }
    }

    /// Keeps an evidence ring of every frame from now on.
    pub fn set_ring(&mut self, ring: Ring) {
        self.ring = Some(ring);
    }

    /// The policy in force (after command-line overrides).
    pub fn policy(&self) -> &Policy {
        &self.config.policy
    }

    fn cadence_limit(&self) -> i64 {
        let l = &self.config.policy.licensing;
        (l.cadence_seconds + l.cadence_tolerance_seconds) as i64 * NANOS
    }

    /// One captured frame: evidence ring, decode, flow table. Never blocks.
    pub fn on_frame(&mut self, frame: &Frame<'_>, now: i64) {
        if let Some(ring) = self.ring.as_mut() {
            if let Err(e) = ring.write(frame) {
                let message = e.to_string();
                self.ring_fault(now, message);
            }
        }
        self.input.frame(frame);
        self.first_ts = self.first_ts.min(frame.ts_nanos);
        self.last_ts = self.last_ts.max(frame.ts_nanos);
        let (decoder, table, all, recent, fresh, policy) = (
            &mut self.decoder,
            &mut self.table,
            &mut self.all,
            &mut self.recent,
            &mut self.fresh,
            &self.config.policy,
        );
        decoder.decode(frame, &mut |pkt| {
            table.process(pkt, &mut |rec| {
                if adds_up(&rec, policy) {
                    recent.push(rec.clone());
                } else {
                    fresh.push(rec.clone());
                }
                all.push(rec);
            })
        });
        self.dirty = true;
        self.bound_retained();
    }

    /// Drops the oldest tenth of the retained flows once the cap is reached (amortised).
    fn bound_retained(&mut self) {
        if self.all.len() > MAX_RETAINED_FLOWS {
            let n = MAX_RETAINED_FLOWS / 10;
            self.all.drain(..n);
            self.dropped_flows += n as u64;
        }
    }

    /// Called whenever the capture loop wakes (a packet, or the read timeout): evaluates new
    /// traffic at most every few hundred milliseconds and checks for overdue check-ins.
    pub fn poll(&mut self, now: i64) {
        let due = self.dirty || self.recheck_at.is_some_and(|t| now >= t);
        if due && now.saturating_sub(self.last_eval) >= self.eval_gap {
            self.evaluate(now);
        }
        self.check_overdue(now);
    }

    /// The once-a-second work: capture counters, ring flush, minute close, metrics.
    pub fn tick(&mut self, now: i64, stats: Option<LiveStats>) {
        if let Some(stats) = stats {
            let (k, i) = self.input.stats(stats);
            if k + i > 0 {
                let what = format!(
                    "the capture lost {k} packet(s) in the kernel and {i} at the interface in the last second ({} and {} in all); the audit cannot be conclusive (raise -B/--buffer-size, narrow the BPF filter)",
                    self.input.kernel_drops, self.input.iface_drops
                );
                self.minute_alert(now, "CAPTURE", ControlVerdict::Inconclusive, "drops", what);
            }
        }
        let evicted = self.table.stats().evicted;
        if evicted > self.evicted_seen {
            let what = format!(
                "{} flow(s) evicted by the flow-table cap ({} in all); the audit is incomplete (raise [flows] max_flows)",
                evicted - self.evicted_seen,
                evicted
            );
            self.evicted_seen = evicted;
            self.minute_alert(
                now,
                "CAPTURE",
                ControlVerdict::Inconclusive,
                "evicted",
                what,
            );
        }
        if let Some(ring) = self.ring.as_mut() {
            if let Err(e) = ring.flush() {
                let message = e.to_string();
                self.ring_fault(now, message);
            }
        }
        let minute = now.max(self.last_ts).div_euclid(MINUTE_NANOS);
        match self.minute {
            None => self.minute = Some(minute),
            Some(m) if minute > m => {
                self.close_minutes(m, minute, now);
                self.minute = Some(minute);
            }
            _ => {}
        }
        self.refresh_metrics();
    }

    /// The capture stopped on its own (interface down or gone): say so, keep what was measured.
    pub fn fault(&mut self, now: i64, message: String) {
        self.input.facts.warnings.push(message.clone());
        self.input.facts.incomplete = true;
        self.metrics.lock().capture_up = false;
        self.flowless_alert(now, "CAPTURE", ControlVerdict::Inconclusive, message);
    }

    fn ring_fault(&mut self, now: i64, message: String) {
        self.metrics.lock().ring_faults += 1;
        tracing::error!("{message}");
        self.raise(Alert {
            ts: rfc3339(now),
            control: "CAPTURE".into(),
            verdict: ControlVerdict::Finding.as_str().into(),
            summary: message,
            source: None,
            destination: None,
            flow_uids: Vec::new(),
            bytes: None,
            packet_ts: None,
            pcap_files: Vec::new(),
        });
    }

    /// Ends every flow, raises what is still pending, and returns the audit of the whole run.
    pub fn finish(&mut self, now: i64) -> Audit {
        self.stop_nanos = Some(now);
        let (all, recent, fresh, policy) = (
            &mut self.all,
            &mut self.recent,
            &mut self.fresh,
            &self.config.policy,
        );
        self.table.finish(&mut |rec| {
            if adds_up(&rec, policy) {
                recent.push(rec.clone());
            } else {
                fresh.push(rec.clone());
            }
            all.push(rec);
        });
        self.evaluate(now);
        if let Some(ring) = self.ring.as_mut() {
            if let Err(e) = ring.flush() {
                let message = e.to_string();
                self.ring_fault(now, message);
            }
        }
        self.refresh_metrics();
        self.metrics.lock().capture_up = false;
        let mut records = std::mem::take(&mut self.all);
        records.sort_by(|a, b| (a.ts_nanos, &a.uid).cmp(&(b.ts_nanos, &b.uid)));
        let pass = self.pass_summary(true);
        let mut audit = audit::audit(
            &records,
            &pass,
            &self.config.policy,
            self.config.policy_source.clone(),
        );
        audit.sensor = self.config.sensor.clone();
        self.all = records;
        audit
    }

    /// What the pass measured so far. The span is the observation window (start of capture to
    /// its end), not just first to last packet: silence the sensor watched is part of the record
    /// (a CADENCE finding when check-ins stopped), which a capture file cannot show.
    pub fn pass_summary(&self, with_inputs: bool) -> PassSummary {
        let flow_stats = self.table.stats().clone();
        let mut first = self.first_ts;
        let mut last = self.last_ts;
        if self.config.start_nanos > 0 {
            first = first.min(self.config.start_nanos);
            last = last.max(self.stop_nanos.unwrap_or(self.config.start_nanos));
        }
        let no_packets = first == i64::MAX;
        let mut input = self.input.facts();
        if self.dropped_flows > 0 {
            // The exit audit no longer holds every flow of the watch: it cannot pass.
            input.incomplete = true;
            input.warnings.push(format!(
                "{} of the oldest finished flows were left out of this audit to bound memory (it keeps the newest {MAX_RETAINED_FLOWS}); the alerts and metrics covered them as they happened",
                self.dropped_flows
            ));
        }
        PassSummary {
            inputs: if with_inputs { vec![input] } else { Vec::new() },
            decode: self.decoder.stats().clone(),
            complete: !self.input.facts.incomplete
                && flow_stats.evicted == 0
                && self.dropped_flows == 0,
            flow_stats,
            first_ts_nanos: if no_packets { 0 } else { first },
            last_ts_nanos: if no_packets { 0 } else { last },
            // A live filter runs in the kernel: excluded packets never reach dg-audit to count.
            filter: None,
            filtered_frames: 0,
        }
    }

    fn raise(&mut self, alert: Alert) {
        *self
            .metrics
            .lock()
            .alerts
            .entry((alert.control.clone(), alert.verdict.clone()))
            .or_default() += 1;
        (self.sink)(alert);
    }

    fn files_between(&self, from: i64, to: i64) -> Vec<String> {
        self.ring
            .as_ref()
            .map(|r| r.files_between(from, to))
            .unwrap_or_default()
    }

    /// An alert keyed by control, topic and the current minute (at most one a minute).
    fn minute_alert(
        &mut self,
        now: i64,
        control: &str,
        verdict: ControlVerdict,
        topic: &str,
        summary: String,
    ) {
        let key = format!("{control}|{topic}|{}", now.div_euclid(MINUTE_NANOS));
        if self.alerted.insert(key, now).is_some() {
            return;
        }
        self.flowless_alert(now, control, verdict, summary);
    }

    /// An alert about the watch itself (capture, ring, overdue host), not about one flow.
    fn flowless_alert(
        &mut self,
        now: i64,
        control: &str,
        verdict: ControlVerdict,
        summary: String,
    ) {
        self.raise(Alert {
            ts: rfc3339(now),
            control: control.into(),
            verdict: verdict.as_str().into(),
            summary,
            source: None,
            destination: None,
            flow_uids: Vec::new(),
            bytes: None,
            packet_ts: (self.last_ts != i64::MIN).then(|| rfc3339(self.last_ts)),
            pcap_files: Vec::new(),
        });
    }

    /// Judges the window with the audit's own controls and raises what is new.
    fn evaluate(&mut self, now: i64) {
        let started = Instant::now();
        self.dirty = false;
        self.recheck_at = None;
        self.last_eval = now;
        let mark = std::mem::replace(&mut self.eval_mark, self.last_ts);
        let deferred = std::mem::take(&mut self.deferred);
        let mut window = std::mem::take(&mut self.recent);
        let kept = window.len();
        window.append(&mut self.fresh);
        let finished = window.len();
        // Open flows with a packet since the last evaluation, then the cached ones that must be
        // judged again anyway; flows that ended meanwhile are in `window` already.
        let ended: HashSet<String> = window.iter().map(|r| r.uid.clone()).collect();
        self.open_cache.retain(|uid, _| !ended.contains(uid));
        let mut changed: HashSet<String> = HashSet::new();
        for snap in self.table.changed_since(mark) {
            if ended.contains(&snap.uid) {
                continue;
            }
            if deferred.contains(&snap.uid) || adds_up(&snap, &self.config.policy) {
                self.open_cache.insert(snap.uid.clone(), snap.clone());
            }
            changed.insert(snap.uid.clone());
            window.push(snap);
        }
        window.extend(
            self.open_cache
                .iter()
                .filter(|(uid, _)| !changed.contains(*uid))
                .map(|(_, snap)| snap.clone()),
        );
        let pass = self.pass_summary(false);
        let judged = audit::audit(&window, &pass, &self.config.policy, None);
        let index: HashMap<&str, usize> = window
            .iter()
            .enumerate()
            .map(|(i, r)| (r.uid.as_str(), i))
            .collect();
        let mut alerts = Vec::new();
        for control in &judged.controls {
            self.alerts_from(control, &window, &index, finished, now, &mut alerts);
        }
        self.track_licensing(&window, finished);
        // Keep caching only what the next evaluation must judge without a new packet: flows
        // that add up, and flows deferred now (judged again once settled, packet or not).
        let (policy, still_deferred) = (&self.config.policy, &self.deferred);
        self.open_cache
            .retain(|uid, snap| still_deferred.contains(uid) || adds_up(snap, policy));
        for snap in &window[finished..] {
            if still_deferred.contains(&snap.uid) {
                self.open_cache
                    .entry(snap.uid.clone())
                    .or_insert_with(|| snap.clone());
            }
        }
        window.truncate(kept);
        self.recent = window;
        for alert in alerts {
            self.raise(alert);
        }
        self.refresh_metrics();
        // Keep evaluation a small share of the time, however large the window grows.
        let cost = started.elapsed().as_nanos() as i64;
        self.eval_gap = (4 * cost).clamp(MIN_EVAL_GAP_NANOS, NANOS);
    }

    fn alerts_from(
        &mut self,
        control: &ControlResult,
        window: &[FlowRecord],
        index: &HashMap<&str, usize>,
        finished: usize,
        now: i64,
        out: &mut Vec<Alert>,
    ) {
        let id = control.id.as_str();
        if !matches!(
            control.verdict,
            ControlVerdict::Violation | ControlVerdict::Finding
        ) || id == "CADENCE"
            || id == "CAPTURE"
        {
            return;
        }
        for ev in &control.evidence {
            if PER_FLOW.contains(&id) && !ev.flow_uids.is_empty() {
                let mut fresh: Vec<&FlowRecord> = Vec::new();
                for uid in &ev.flow_uids {
                    let key = format!("{id}|{uid}");
                    if self.alerted.contains_key(&key) {
                        continue;
                    }
                    let Some(&i) = index.get(uid.as_str()) else {
                        continue;
                    };
                    let rec = &window[i];
                    if NEEDS_SETTLED.contains(&id) && !settled(rec, i < finished, now) {
                        let at = rec.ts_nanos + SETTLE_NANOS;
                        self.recheck_at = Some(self.recheck_at.map_or(at, |t| t.min(at)));
                        self.deferred.insert(uid.clone());
                        continue;
                    }
                    self.alerted.insert(key, now);
                    fresh.push(rec);
                }
                if fresh.is_empty() {
                    continue;
                }
                let from = fresh.iter().map(|r| r.ts_nanos).min().unwrap_or(now);
                let to = fresh.iter().map(|r| r.last_ts_nanos).max().unwrap_or(now);
                out.push(Alert {
                    ts: rfc3339(now),
                    control: id.to_string(),
                    verdict: control.verdict.as_str().into(),
                    summary: redact_text(&ev.what),
                    source: ev
                        .source
                        .clone()
                        .or_else(|| Some(fresh[0].orig_h.to_string()))
                        .map(|s| redact_text(&s)),
                    destination: ev.destination.as_deref().map(redact_text),
                    flow_uids: fresh.iter().map(|r| r.uid.clone()).collect(),
                    bytes: Some(fresh.iter().map(|r| r.orig_ip_bytes).sum()),
                    packet_ts: Some(rfc3339(to)),
                    pcap_files: self.files_between(from, to),
                });
            } else {
                let at = ev.ts.map(|t| t.nanos());
                if at.is_some_and(|t| now.max(self.last_ts) - t > STALE_EVIDENCE_NANOS) {
                    continue;
                }
                // Evidence gathered over the window (no single source, e.g. an unapproved
                // resolver) starts at whichever flow the window began with: key it on the minute
                // it was seen in, so one breach alerts at most once a minute.
                let minute = match ev.source {
                    Some(_) => at.unwrap_or(now),
                    None => now.max(self.last_ts),
                }
                .div_euclid(MINUTE_NANOS);
                let key = format!(
                    "{id}|{}|{}|{minute}",
                    ev.source.as_deref().unwrap_or(""),
                    ev.destination.as_deref().unwrap_or("")
                );
                if self.alerted.contains_key(&key) {
                    continue;
                }
                self.alerted.insert(key, now);
                let recs: Vec<&FlowRecord> = ev
                    .flow_uids
                    .iter()
                    .filter_map(|u| index.get(u.as_str()).map(|&i| &window[i]))
                    .collect();
                let from = recs
                    .iter()
                    .map(|r| r.ts_nanos)
                    .min()
                    .unwrap_or(minute * MINUTE_NANOS);
                let to = recs
                    .iter()
                    .map(|r| r.last_ts_nanos)
                    .max()
                    .unwrap_or(self.last_ts.max(from));
                out.push(Alert {
                    ts: rfc3339(now),
                    control: id.to_string(),
                    verdict: control.verdict.as_str().into(),
                    summary: redact_text(&ev.what),
                    source: ev.source.as_deref().map(redact_text),
                    destination: ev.destination.as_deref().map(redact_text),
                    flow_uids: ev.flow_uids.clone(),
                    bytes: ev.bytes,
                    packet_ts: Some(rfc3339(to)),
                    pcap_files: self.files_between(from, to),
                });
            }
        }
    }

    /// Check-ins (the CADENCE rule's definition) and licensing connection durations.
    fn track_licensing(&mut self, window: &[FlowRecord], finished: usize) {
        let cadence = self.config.policy.licensing.cadence_seconds as i64 * NANOS;
        for (i, rec) in window.iter().enumerate() {
            let c = classify(rec, &self.config.policy);
            let licensing = c.class.is_licensing();
            if !licensing && c.class != FlowClass::LicenseProxyHop {
                continue;
            }
            if licensing
                && rec.proto == Transport::Tcp
                && (i < finished || terminal(rec.conn_state))
                && self.durations_seen.insert(rec.uid.clone())
            {
                self.metrics
                    .lock()
                    .durations
                    .observe(rec.duration_nanos() as f64 / 1e9);
            }
            let answered =
                rec.resp_bytes > 0 && !matches!(rec.conn_state, ConnState::REJ | ConnState::S0);
            if !answered {
                continue;
            }
            // As the CADENCE control: a short connection is one check-in at its start; a held one
            // checks in each minute it sends (at its latest packet for the current minute, so an
            // overdue check is not misled by minute boundaries).
            let times: Vec<(i64, i64)> = if rec.duration_nanos() > cadence {
                let last_minute = rec.minutes.iter().rev().find(|m| m.orig_pkts > 0);
                rec.minutes
                    .iter()
                    .filter(|m| m.orig_pkts > 0)
                    .map(|m| {
                        let start = m.start * NANOS;
                        let at = if last_minute.is_some_and(|l| l.start == m.start) {
                            rec.last_ts_nanos.clamp(start, start + MINUTE_NANOS - 1)
                        } else {
                            start
                        };
                        (start, at)
                    })
                    .collect()
            } else {
                vec![(rec.ts_nanos, rec.ts_nanos)]
            };
            let destination = crate::audit::controls::destination_label(&c);
            for (key, at) in times {
                if self.checkins_seen.insert((rec.uid.clone(), key)) {
                    self.checkin(rec.orig_h, at, &rec.uid, &destination);
                }
            }
        }
    }

    fn checkin(&mut self, source: IpAddr, at: i64, uid: &str, destination: &str) {
        let state = self.sources.entry(source).or_insert_with(|| SourceState {
            last_checkin: at,
            last_uid: uid.to_string(),
            destination: destination.to_string(),
            overdue_for: None,
        });
        if at >= state.last_checkin {
            state.last_checkin = at;
            state.last_uid = uid.to_string();
            state.destination = destination.to_string();
        }
        let last = state.last_checkin;
        let mut m = self.metrics.lock();
        let key = source.to_string();
        *m.checkins.entry(key.clone()).or_default() += 1;
        m.last_checkin_seconds
            .insert(key.clone(), last as f64 / 1e9);
        m.overdue.insert(key.clone(), false);
        m.licensing_minute_bytes.entry(key).or_default();
    }

    /// Silence is a finding: no check-in for cadence + tolerance since a source's last one (or
    /// since the start, when none was ever seen), even if no packet arrives at all.
    fn check_overdue(&mut self, now: i64) {
        let limit = self.cadence_limit();
        let now_eff = now.max(self.last_ts);
        let any_due = |e: &Engine| {
            e.sources
                .values()
                .any(|s| now_eff - s.last_checkin > limit && s.overdue_for != Some(s.last_checkin))
                || (e.sources.is_empty()
                    && !e.silence_alerted
                    && now_eff - e.config.start_nanos > limit)
        };
        if !any_due(self) {
            return;
        }
        // A check-in may be sitting in packets not yet evaluated.
        if self.dirty {
            self.evaluate(now);
            if !any_due(self) {
                return;
            }
        }
        let (cadence, tolerance) = (
            self.config.policy.licensing.cadence_seconds,
            self.config.policy.licensing.cadence_tolerance_seconds,
        );
        if self.sources.is_empty() {
            self.silence_alerted = true;
            let alert = Alert {
                ts: rfc3339(now),
                control: "CADENCE".into(),
                verdict: ControlVerdict::Finding.as_str().into(),
                summary: format!(
                    "no licensing check-in seen in the first {:.0} s of capture (expected every {cadence} s, tolerance {tolerance} s)",
                    (now_eff - self.config.start_nanos) as f64 / 1e9
                ),
                source: None,
                destination: None,
                flow_uids: Vec::new(),
                bytes: None,
                packet_ts: None,
                pcap_files: Vec::new(),
            };
            self.raise(alert);
            return;
        }
        let due: Vec<(IpAddr, SourceState)> = self
            .sources
            .iter()
            .filter(|(_, s)| {
                now_eff - s.last_checkin > limit && s.overdue_for != Some(s.last_checkin)
            })
            .map(|(ip, s)| (*ip, s.clone()))
            .collect();
        for (ip, s) in due {
            if let Some(state) = self.sources.get_mut(&ip) {
                state.overdue_for = Some(s.last_checkin);
            }
            self.metrics.lock().overdue.insert(ip.to_string(), true);
            let alert = Alert {
                ts: rfc3339(now),
                control: "CADENCE".into(),
                verdict: ControlVerdict::Finding.as_str().into(),
                summary: format!(
                    "{ip}: no licensing check-in for {:.1} s since the last one at {} to {} (expected every {cadence} s, tolerance {tolerance} s): overdue",
                    (now_eff - s.last_checkin) as f64 / 1e9,
                    rfc3339(s.last_checkin),
                    s.destination
                ),
                source: Some(ip.to_string()),
                destination: Some(s.destination.clone()),
                flow_uids: vec![s.last_uid.clone()],
                bytes: None,
                packet_ts: Some(rfc3339(s.last_checkin)),
                pcap_files: self.files_between(s.last_checkin, s.last_checkin + NANOS),
            };
            self.raise(alert);
        }
    }

    /// Closes minutes `[from, to)` (minute numbers): licensing gauges and counters from the
    /// table's interim records and the flows that ended; prunes the window.
    fn close_minutes(&mut self, from: i64, to: i64, now: i64) {
        let interim = self.table.interim(now.max(self.last_ts));
        let classified: Vec<Classified<'_>> = self
            .recent
            .iter()
            .chain(interim.iter())
            .map(|r| classify(r, &self.config.policy))
            .collect();
        let series = audit::minutes::licensing_minutes(&classified);
        let last_closed = (to - 1) * 60;
        {
            let mut m = self.metrics.lock();
            for v in m.licensing_minute_bytes.values_mut() {
                *v = 0;
            }
            for lm in &series {
                let minute = lm.start_ts.div_euclid(60);
                if minute < from || minute >= to {
                    continue;
                }
                let source = lm.source.to_string();
                *m.licensing_bytes_total.entry(source.clone()).or_default() += lm.egress_ip_bytes;
                if lm.start_ts == last_closed {
                    m.licensing_minute_bytes.insert(source, lm.egress_ip_bytes);
                }
            }
        }
        drop(classified);
        // The window keeps flows that may share a minute with what comes next.
        let keep_from = (to - 1) * MINUTE_NANOS;
        self.recent.retain(|r| r.last_ts_nanos >= keep_from);
        let mut live: HashSet<&str> = self.recent.iter().map(|r| r.uid.as_str()).collect();
        live.extend(interim.iter().map(|r| r.uid.as_str()));
        let open_uids: HashSet<String> = self
            .table
            .interim(i64::MAX)
            .into_iter()
            .map(|r| r.uid)
            .collect();
        let keep = |uid: &str| live.contains(uid) || open_uids.contains(uid);
        self.alerted.retain(|key, at| {
            let mut parts = key.split('|');
            let (id, rest) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            if PER_FLOW.contains(&id) && key.matches('|').count() == 1 {
                keep(rest)
            } else {
                now - *at <= 2 * STALE_EVIDENCE_NANOS
            }
        });
        self.checkins_seen.retain(|(uid, _)| keep(uid));
        self.durations_seen.retain(|uid| keep(uid));
    }

    fn refresh_metrics(&mut self) {
        let d = self.decoder.stats();
        let t = self.table.stats();
        let mut m = self.metrics.lock();
        m.frames = d.frames;
        m.packets = d.packets;
        m.wire_bytes = d.wire_bytes;
        m.kernel_drops = self.input.kernel_drops;
        m.iface_drops = self.input.iface_drops;
        m.flows_open = self.table.len() as u64;
        m.flows_total = t.flows;
        m.evictions = t.evicted;
        m.ring_files = self
            .ring
            .as_ref()
            .map_or(0, |r| r.files().filter(|f| f.records > 0).count() as u64);
    }
}

/// Whether a flow counts in the per-minute controls (VOLUME, CADENCE, DNS), so it stays in the
/// evaluation window for its minute even when it has no new packets.
fn adds_up(rec: &FlowRecord, policy: &Policy) -> bool {
    if rec.dns.is_some() {
        return true;
    }
    let class = classify(rec, policy).class;
    class.is_licensing() || class == FlowClass::LicenseProxyHop
}

/// Whether a flow's class can no longer change for lack of its first bytes.
fn settled(rec: &FlowRecord, finished: bool, now: i64) -> bool {
    let may_learn_name =
        rec.proto == Transport::Tcp || rec.service.as_deref().is_some_and(|s| s.contains("quic"));
    finished
        || !may_learn_name
        || rec.tls.is_some()
        || !rec.http.is_empty()
        || rec.dns.is_some()
        || now - rec.ts_nanos >= SETTLE_NANOS
}

#[cfg(test)]
mod tests;
