//! The live engine: frames in, alerts and metrics out, an audit at the end. Packets go through
//! the same [`Pass`] (decoder, flow table) as `analyze`, and are judged by the same classification
//! and controls; the engine adds what only a running sensor needs: incremental evaluation over a
//! window of changed flows, de-duplicated alerts ([`crate::live::alerts`]), overdue check-ins
//! ([`crate::live::watch`]), per-minute gauges.
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

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::audit::checkins::carries_checkins;
use crate::audit::classify::{classify, Classified};
use crate::audit::{self, Audit, ControlId, ControlResult, ControlVerdict, Evidence};
use crate::flow::record::Transport;
use crate::flow::{FlowRecord, FlowTable};
use crate::inspect::secrets::redact_text;
use crate::live::alerts::{
    per_flow, Alert, AlertKey, AlertSink, Alerts, Subject, Topic, STALE_EVIDENCE_NANOS,
};
use crate::live::input::LiveInput;
use crate::live::metrics::{Metrics, PolicyLimits};
use crate::live::ring::Ring;
use crate::live::watch::Watch;
use crate::names::NameBook;
use crate::pipeline::{Pass, PassSummary};
use crate::policy::Policy;
use crate::source::live::LiveStats;
use crate::source::{FileFacts, Frame};
use crate::units::{as_secs_f64, rfc3339, MINUTE_NANOS, NANOS};

/// How long a TCP flow may go without its first bytes being read before it is judged anyway.
pub const SETTLE_NANOS: i64 = 500_000_000;
/// Shortest wall time between two evaluations.
const MIN_EVAL_GAP_NANOS: i64 = 200_000_000;
/// Finished flows kept for the audit written on exit. A watch runs for months: past this, the
/// oldest are dropped (and counted, and the exit audit says so), so memory stays bounded.
const MAX_RETAINED_FLOWS: usize = 500_000;

/// Controls whose verdict may change once the flow's first bytes (its name) are read.
fn needs_settled(control: ControlId) -> bool {
    matches!(
        control,
        ControlId::Dest | ControlId::Tls | ControlId::Proxy | ControlId::Ingress
    )
}

/// What the engine needs to know about the capture.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The policy in force (after command-line overrides).
    pub policy: Policy,
    /// How the policy was given (file, overrides), recorded in the audit.
    pub policy_source: Option<String>,
    /// Name of this sensor, recorded in the audit.
    pub sensor: Option<String>,
    /// Name of the input in the audit (`live:eth0`).
    pub input_name: String,
    /// libpcap link type of the frames.
    pub link_type: u32,
    /// Bytes kept of each packet.
    pub snaplen: u32,
    /// Wall-clock start, nanoseconds since the epoch.
    pub start_nanos: i64,
}

/// Finished flows kept for the exit audit, up to [`MAX_RETAINED_FLOWS`] (newest kept).
#[derive(Default)]
struct Retained {
    flows: Vec<FlowRecord>,
    /// Finished flows dropped to bound memory.
    dropped: u64,
}

impl Retained {
    /// Drops the oldest tenth once the cap is passed (amortised: not on every flow).
    fn bound(&mut self) {
        if self.flows.len() > MAX_RETAINED_FLOWS {
            let n = MAX_RETAINED_FLOWS / 10;
            self.flows.drain(..n);
            self.dropped += n as u64;
        }
    }
}

/// The flows the next evaluation judges, and what it needs to find the open ones cheaply.
#[derive(Default)]
struct Window {
    /// Finished licensing, proxy-hop and DNS flows of the current and previous minute (what the
    /// per-minute controls add up).
    recent: Vec<FlowRecord>,
    /// Other flows that finished since the last evaluation (judged once, then dropped).
    fresh: Vec<FlowRecord>,
    /// Packet time of the newest packet at the last evaluation: open flows with a packet since
    /// are judged again.
    eval_mark: i64,
    /// Open flows whose judgement waits for their first bytes (see [`SETTLE_NANOS`]).
    deferred: HashSet<String>,
    /// Latest snapshots of the open flows judged at every evaluation even without a new packet:
    /// licensing, proxy-hop and DNS flows (the per-minute controls add them up) and deferred ones.
    /// With `FlowTable::changed_since` this keeps an evaluation from snapshotting every open flow.
    open_cache: HashMap<String, FlowRecord>,
}

impl Window {
    /// A flow that ended: judged at the next evaluation.
    fn ended(&mut self, rec: &FlowRecord, policy: &Policy) {
        if adds_up(rec, policy) {
            self.recent.push(rec.clone());
        } else {
            self.fresh.push(rec.clone());
        }
    }

    /// The flows to judge now: finished ones first (`..finished`, of which the first `kept` are
    /// the carried-over `recent`), then open flows with a packet since `mark`, then the cached
    /// open flows that must be judged again anyway.
    fn gather(&mut self, table: &FlowTable, mark: i64, policy: &Policy) -> Gathered {
        let deferred = std::mem::take(&mut self.deferred);
        let mut flows = std::mem::take(&mut self.recent);
        let kept = flows.len();
        flows.append(&mut self.fresh);
        let finished = flows.len();
        // Flows that ended meanwhile are in `flows` already: their open snapshots are stale.
        let ended: HashSet<String> = flows.iter().map(|r| r.uid.clone()).collect();
        self.open_cache.retain(|uid, _| !ended.contains(uid));
        let mut changed: HashSet<String> = HashSet::new();
        for snap in table.changed_since(mark) {
            if ended.contains(&snap.uid) {
                continue;
            }
            if deferred.contains(&snap.uid) || adds_up(&snap, policy) {
                self.open_cache.insert(snap.uid.clone(), snap.clone());
            }
            changed.insert(snap.uid.clone());
            flows.push(snap);
        }
        flows.extend(
            self.open_cache
                .iter()
                .filter(|(uid, _)| !changed.contains(*uid))
                .map(|(_, snap)| snap.clone()),
        );
        Gathered {
            flows,
            kept,
            finished,
        }
    }

    /// After an evaluation: keeps caching only what the next one must judge without a new
    /// packet (flows that add up, and flows deferred now: judged again once settled, packet or
    /// not), and carries the finished flows that add up over to the next window.
    fn keep(&mut self, gathered: Gathered, policy: &Policy) {
        let Gathered {
            mut flows,
            kept,
            finished,
        } = gathered;
        let deferred = &self.deferred;
        self.open_cache
            .retain(|uid, snap| deferred.contains(uid) || adds_up(snap, policy));
        for snap in &flows[finished..] {
            if deferred.contains(&snap.uid) {
                self.open_cache
                    .entry(snap.uid.clone())
                    .or_insert_with(|| snap.clone());
            }
        }
        flows.truncate(kept);
        self.recent = flows;
    }
}

/// The flows of one evaluation (see [`Window::gather`]).
struct Gathered {
    flows: Vec<FlowRecord>,
    kept: usize,
    finished: usize,
}

/// The judged flows of one evaluation, by uid.
struct Judged<'w> {
    flows: &'w [FlowRecord],
    index: HashMap<&'w str, usize>,
    finished: usize,
}

impl<'w> Judged<'w> {
    fn new(flows: &'w [FlowRecord], finished: usize) -> Judged<'w> {
        let index = flows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.uid.as_str(), i))
            .collect();
        Judged {
            flows,
            index,
            finished,
        }
    }

    /// The flow with this uid, and whether it has ended.
    fn get(&self, uid: &str) -> Option<(&'w FlowRecord, bool)> {
        let &i = self.index.get(uid)?;
        Some((&self.flows[i], i < self.finished))
    }
}

/// When to evaluate next: soon after new packets, at a settle deadline, never back to back.
struct Pace {
    /// Packets arrived since the last evaluation.
    dirty: bool,
    /// Wall time of the last evaluation.
    last_eval: i64,
    /// Shortest wall time between evaluations, from what the last one cost.
    gap: i64,
    /// Wall time a deferred flow settles and must be judged, packet or not.
    recheck_at: Option<i64>,
}

impl Pace {
    fn new() -> Pace {
        Pace {
            dirty: false,
            last_eval: i64::MIN,
            gap: MIN_EVAL_GAP_NANOS,
            recheck_at: None,
        }
    }

    fn due(&self, now: i64) -> bool {
        let wanted = self.dirty || self.recheck_at.is_some_and(|t| now >= t);
        wanted && now.saturating_sub(self.last_eval) >= self.gap
    }

    fn recheck(&mut self, at: i64) {
        self.recheck_at = Some(self.recheck_at.map_or(at, |t| t.min(at)));
    }

    fn started(&mut self, now: i64) {
        self.dirty = false;
        self.recheck_at = None;
        self.last_eval = now;
    }

    /// Keeps evaluation a small share of the time, however large the window grows.
    fn took(&mut self, cost: Duration) {
        self.gap = (4 * cost.as_nanos() as i64).clamp(MIN_EVAL_GAP_NANOS, NANOS);
    }
}

/// The live engine.
pub struct Engine {
    config: EngineConfig,
    /// Decoder, flow table and packet span, as `analyze` drives them.
    pass: Pass,
    retained: Retained,
    window: Window,
    pace: Pace,
    input: LiveInput,
    alerts: Alerts,
    watch: Watch,
    /// Wall time the capture stopped (set by [`Engine::finish`]).
    stop_nanos: Option<i64>,
    /// The minute (number since the epoch) the gauges are being gathered for.
    minute: Option<i64>,
    /// Evictions already alerted on.
    evicted_seen: u64,
    /// The evidence ring, when `-w` was given.
    ring: Option<Ring>,
    metrics: Arc<Metrics>,
}

impl Engine {
    /// A new engine; alerts go to `sink`, counters to `metrics`.
    pub fn new(config: EngineConfig, metrics: Arc<Metrics>, sink: AlertSink) -> Engine {
        let names =
            NameBook::with_operator_names(config.policy.names.clone().into_iter().collect());
        {
            let mut m = metrics.lock();
            m.capture_up = true;
            m.start_time_seconds = as_secs_f64(config.start_nanos);
            let l = &config.policy.licensing;
            m.policy = Some(PolicyLimits {
                max_egress_bytes_per_minute: l.max_egress_bytes_per_minute,
                cadence_seconds: l.cadence_seconds,
                cadence_tolerance_seconds: l.cadence_tolerance_seconds,
            });
        }
        Engine {
            pass: Pass::new(config.policy.flow_config(), names),
            input: LiveInput::new(&config.input_name, config.link_type, config.snaplen),
            watch: Watch::new(&config.policy, config.start_nanos),
            alerts: Alerts::new(sink, metrics.clone()),
            config,
            retained: Retained::default(),
            window: Window {
                eval_mark: i64::MIN,
                ..Window::default()
            },
            pace: Pace::new(),
            stop_nanos: None,
            minute: None,
            evicted_seen: 0,
            ring: None,
            metrics,
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

    /// Packet time of the newest packet, `i64::MIN` before any.
    fn last_ts(&self) -> i64 {
        self.pass.span().last().unwrap_or(i64::MIN)
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
        let (window, retained, policy) =
            (&mut self.window, &mut self.retained, &self.config.policy);
        self.pass.frame(frame, &mut |rec| {
            window.ended(&rec, policy);
            retained.flows.push(rec);
        });
        self.pace.dirty = true;
        self.retained.bound();
    }

    /// Called whenever the capture loop wakes (a packet, or the read timeout): evaluates new
    /// traffic at most every few hundred milliseconds and checks for overdue check-ins.
    pub fn poll(&mut self, now: i64) {
        if self.pace.due(now) {
            self.evaluate(now);
        }
        self.check_overdue(now);
    }

    /// The once-a-second work: capture counters, ring flush, minute close, metrics.
    pub fn tick(&mut self, now: i64, stats: Option<LiveStats>) {
        if let Some(stats) = stats {
            self.count_drops(now, stats);
        }
        self.count_evictions(now);
        self.flush_ring(now);
        let minute = now.max(self.last_ts()).div_euclid(MINUTE_NANOS);
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

    fn count_drops(&mut self, now: i64, stats: LiveStats) {
        let (k, i) = self.input.stats(stats);
        if k + i > 0 {
            let what = format!(
                "the capture lost {k} packet(s) in the kernel and {i} at the interface in the last second ({} and {} in all); the audit cannot be conclusive (raise -B/--buffer-size, narrow the BPF filter)",
                self.input.kernel_drops, self.input.iface_drops
            );
            self.minute_alert(now, Topic::Drops, what);
        }
    }

    fn count_evictions(&mut self, now: i64) {
        let evicted = self.pass.table().stats().evicted;
        if evicted > self.evicted_seen {
            let what = format!(
                "{} flow(s) evicted by the flow-table cap ({} in all); the audit is incomplete (raise [flows] max_flows)",
                evicted - self.evicted_seen,
                evicted
            );
            self.evicted_seen = evicted;
            self.minute_alert(now, Topic::Evicted, what);
        }
    }

    fn flush_ring(&mut self, now: i64) {
        if let Some(ring) = self.ring.as_mut() {
            if let Err(e) = ring.flush() {
                let message = e.to_string();
                self.ring_fault(now, message);
            }
        }
    }

    /// The capture stopped on its own (interface down or gone): say so, keep what was measured.
    pub fn fault(&mut self, now: i64, message: String) {
        self.input.fault(message.clone());
        self.metrics.lock().capture_up = false;
        self.watch_alert(now, ControlVerdict::Inconclusive, message);
    }

    fn ring_fault(&mut self, now: i64, message: String) {
        self.metrics.lock().ring_faults += 1;
        tracing::error!("{message}");
        self.alerts.raise(Alert::about_watch(
            now,
            ControlId::Capture,
            ControlVerdict::Finding,
            message,
            None,
        ));
    }

    /// Ends every flow, raises what is still pending, and returns the audit of the whole run.
    pub fn finish(&mut self, now: i64) -> Audit {
        self.stop_nanos = Some(now);
        let (window, retained, policy) =
            (&mut self.window, &mut self.retained, &self.config.policy);
        self.pass.finish(&mut |rec| {
            window.ended(&rec, policy);
            retained.flows.push(rec);
        });
        self.evaluate(now);
        self.flush_ring(now);
        self.refresh_metrics();
        self.metrics.lock().capture_up = false;
        let mut records = std::mem::take(&mut self.retained.flows);
        records.sort_by(|a, b| (a.ts_nanos, &a.uid).cmp(&(b.ts_nanos, &b.uid)));
        let pass = self.pass_summary(true);
        let mut audit = audit::audit(
            &records,
            &pass,
            &self.config.policy,
            self.config.policy_source.clone(),
        );
        audit.sensor = self.config.sensor.clone();
        self.retained.flows = records;
        audit
    }

    /// What the pass measured so far. The span is the observation window (start of capture to
    /// its end), not just first to last packet: silence the sensor watched is part of the record
    /// (a CADENCE finding when check-ins stopped), which a capture file cannot show.
    pub fn pass_summary(&self, with_inputs: bool) -> PassSummary {
        let mut span = self.pass.span();
        if self.config.start_nanos > 0 {
            span.observe(self.config.start_nanos);
            span.observe(self.stop_nanos.unwrap_or(self.config.start_nanos));
        }
        let inputs = if with_inputs {
            vec![self.input_facts()]
        } else {
            Vec::new()
        };
        let inputs_complete = !self.input.facts.incomplete && self.retained.dropped == 0;
        let mut summary = self.pass.summary(inputs, span, inputs_complete);
        // A live filter runs in the kernel: excluded packets never reach dg-audit to count.
        summary.filter = None;
        summary
    }

    /// The input facts, with a warning when the exit audit no longer holds every flow.
    fn input_facts(&self) -> FileFacts {
        let mut input = self.input.facts();
        if self.retained.dropped > 0 {
            // The exit audit no longer holds every flow of the watch: it cannot pass.
            input.incomplete = true;
            input.warnings.push(format!(
                "{} of the oldest finished flows were left out of this audit to bound memory (it keeps the newest {MAX_RETAINED_FLOWS}); the alerts and metrics covered them as they happened",
                self.retained.dropped
            ));
        }
        input
    }

    fn files_between(&self, from: i64, to: i64) -> Vec<String> {
        ring_files(self.ring.as_ref(), from, to)
    }

    /// A CAPTURE alert about `topic`, at most one a minute.
    fn minute_alert(&mut self, now: i64, topic: Topic, summary: String) {
        let key = AlertKey {
            control: ControlId::Capture,
            subject: Subject::Topic {
                topic,
                minute: now.div_euclid(MINUTE_NANOS),
            },
        };
        if self.alerts.mark(key, now) {
            self.watch_alert(now, ControlVerdict::Inconclusive, summary);
        }
    }

    /// A CAPTURE alert about the watch itself (not about one flow), at the newest packet.
    fn watch_alert(&mut self, now: i64, verdict: ControlVerdict, summary: String) {
        let packet_ts = self.pass.span().last();
        self.alerts.raise(Alert::about_watch(
            now,
            ControlId::Capture,
            verdict,
            summary,
            packet_ts,
        ));
    }

    /// Judges the window with the audit's own controls and raises what is new.
    fn evaluate(&mut self, now: i64) {
        let started = Instant::now();
        self.pace.started(now);
        let last_ts = self.last_ts();
        let mark = std::mem::replace(&mut self.window.eval_mark, last_ts);
        let gathered = self
            .window
            .gather(self.pass.table(), mark, &self.config.policy);
        let pass = self.pass_summary(false);
        let verdicts = audit::audit(&gathered.flows, &pass, &self.config.policy, None);
        let judged = Judged::new(&gathered.flows, gathered.finished);
        let mut alerts = Vec::new();
        for control in &verdicts.controls {
            self.alerts_from(control, &judged, now, &mut alerts);
        }
        self.watch.observe(
            &gathered.flows,
            gathered.finished,
            &self.config.policy,
            &self.metrics,
        );
        self.window.keep(gathered, &self.config.policy);
        for alert in alerts {
            self.alerts.raise(alert);
        }
        self.refresh_metrics();
        self.pace.took(started.elapsed());
    }

    /// The new alerts one control's verdict gives. CADENCE is the watch's (overdue check-ins)
    /// and CAPTURE the engine's own; neither is read from a window's audit.
    fn alerts_from(
        &mut self,
        control: &ControlResult,
        judged: &Judged<'_>,
        now: i64,
        out: &mut Vec<Alert>,
    ) {
        let id = control.id;
        if !matches!(
            control.verdict,
            ControlVerdict::Violation | ControlVerdict::Finding
        ) || id == ControlId::Cadence
            || id == ControlId::Capture
        {
            return;
        }
        for ev in &control.evidence {
            let alert = if per_flow(id) && !ev.flow_uids.is_empty() {
                self.flow_alert(control, ev, judged, now)
            } else {
                self.evidence_alert(control, ev, judged, now)
            };
            out.extend(alert);
        }
    }

    /// One alert for the flows of `ev` not alerted on yet (deferring unsettled ones).
    fn flow_alert(
        &mut self,
        control: &ControlResult,
        ev: &Evidence,
        judged: &Judged<'_>,
        now: i64,
    ) -> Option<Alert> {
        let id = control.id;
        let mut fresh: Vec<&FlowRecord> = Vec::new();
        for uid in &ev.flow_uids {
            let key = AlertKey::flow(id, uid);
            if self.alerts.raised(&key) {
                continue;
            }
            let Some((rec, finished)) = judged.get(uid) else {
                continue;
            };
            if needs_settled(id) && !settled(rec, finished, now) {
                self.pace.recheck(rec.ts_nanos + SETTLE_NANOS);
                self.window.deferred.insert(uid.clone());
                continue;
            }
            self.alerts.mark(key, now);
            fresh.push(rec);
        }
        let first = fresh.first()?;
        let from = fresh.iter().map(|r| r.ts_nanos).min().unwrap_or(now);
        let to = fresh.iter().map(|r| r.last_ts_nanos).max().unwrap_or(now);
        Some(Alert {
            ts: rfc3339(now),
            control: id,
            verdict: control.verdict.as_str().into(),
            summary: redact_text(&ev.what),
            source: ev
                .source
                .clone()
                .or_else(|| Some(first.orig_h.to_string()))
                .map(|s| redact_text(&s)),
            destination: ev.destination.as_deref().map(redact_text),
            flow_uids: fresh.iter().map(|r| r.uid.clone()).collect(),
            bytes: Some(fresh.iter().map(|r| r.orig_ip_bytes).sum()),
            packet_ts: Some(rfc3339(to)),
            pcap_files: self.files_between(from, to),
        })
    }

    /// One alert for evidence a per-minute control gathered, once per source and minute.
    fn evidence_alert(
        &mut self,
        control: &ControlResult,
        ev: &Evidence,
        judged: &Judged<'_>,
        now: i64,
    ) -> Option<Alert> {
        let last_ts = self.last_ts();
        let at = ev.ts.map(|t| t.nanos());
        if at.is_some_and(|t| now.max(last_ts) - t > STALE_EVIDENCE_NANOS) {
            return None;
        }
        // Evidence gathered over the window (no single source, e.g. an unapproved resolver)
        // starts at whichever flow the window began with: key it on the minute it was seen in,
        // so one breach alerts at most once a minute.
        let minute = match ev.source {
            Some(_) => at.unwrap_or(now),
            None => now.max(last_ts),
        }
        .div_euclid(MINUTE_NANOS);
        let key = AlertKey {
            control: control.id,
            subject: Subject::SourceMinute {
                source: ev.source.clone().unwrap_or_default(),
                destination: ev.destination.clone().unwrap_or_default(),
                minute,
            },
        };
        if self.alerts.raised(&key) {
            return None;
        }
        self.alerts.mark(key, now);
        let recs: Vec<&FlowRecord> = ev
            .flow_uids
            .iter()
            .filter_map(|u| judged.get(u).map(|(r, _)| r))
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
            .unwrap_or(last_ts.max(from));
        Some(Alert {
            ts: rfc3339(now),
            control: control.id,
            verdict: control.verdict.as_str().into(),
            summary: redact_text(&ev.what),
            source: ev.source.as_deref().map(redact_text),
            destination: ev.destination.as_deref().map(redact_text),
            flow_uids: ev.flow_uids.clone(),
            bytes: ev.bytes,
            packet_ts: Some(rfc3339(to)),
            pcap_files: self.files_between(from, to),
        })
    }

    /// Silence is a finding: no check-in for cadence + tolerance since a source's last one (or
    /// since the start, when none was ever seen), even if no packet arrives at all.
    fn check_overdue(&mut self, now: i64) {
        let now_eff = now.max(self.last_ts());
        if !self.watch.any_due(now_eff) {
            return;
        }
        // A check-in may be sitting in packets not yet evaluated.
        if self.pace.dirty {
            self.evaluate(now);
            if !self.watch.any_due(now_eff) {
                return;
            }
        }
        let ring = self.ring.as_ref();
        let alerts = self
            .watch
            .overdue_alerts(now, now_eff, &self.metrics, |from, to| {
                ring_files(ring, from, to)
            });
        for alert in alerts {
            self.alerts.raise(alert);
        }
    }

    /// Closes minutes `[from, to)` (minute numbers): licensing gauges and counters from the
    /// table's interim records and the flows that ended; prunes the window.
    fn close_minutes(&mut self, from: i64, to: i64, now: i64) {
        let now_eff = now.max(self.last_ts());
        let interim = self.pass.table().interim(now_eff);
        self.publish_minutes(&interim, from, to);
        // The window keeps flows that may share a minute with what comes next.
        let keep_from = (to - 1) * MINUTE_NANOS;
        self.window.recent.retain(|r| r.last_ts_nanos >= keep_from);
        let mut live: HashSet<&str> = self.window.recent.iter().map(|r| r.uid.as_str()).collect();
        live.extend(interim.iter().map(|r| r.uid.as_str()));
        let open_uids: HashSet<String> = self
            .pass
            .table()
            .interim(i64::MAX)
            .into_iter()
            .map(|r| r.uid)
            .collect();
        let keep = |uid: &str| live.contains(uid) || open_uids.contains(uid);
        self.alerts.forget(keep, now);
        self.watch.forget(keep);
    }

    /// The licensing gauges and counters of minutes `[from, to)`.
    fn publish_minutes(&self, interim: &[FlowRecord], from: i64, to: i64) {
        let classified: Vec<Classified<'_>> = self
            .window
            .recent
            .iter()
            .chain(interim.iter())
            .map(|r| classify(r, &self.config.policy))
            .collect();
        let series = audit::minutes::licensing_minutes(&classified);
        let last_closed = (to - 1) * 60;
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

    fn refresh_metrics(&mut self) {
        let (frames, packets, wire_bytes) = {
            let d = self.pass.decode_stats();
            (d.frames, d.packets, d.wire_bytes)
        };
        let table = self.pass.table();
        let (flows_open, t) = (table.len() as u64, table.stats());
        let mut m = self.metrics.lock();
        m.frames = frames;
        m.packets = packets;
        m.wire_bytes = wire_bytes;
        m.kernel_drops = self.input.kernel_drops;
        m.iface_drops = self.input.iface_drops;
        m.flows_open = flows_open;
        m.flows_total = t.flows;
        m.evictions = t.evicted;
        m.ring_files = self
            .ring
            .as_ref()
            .map_or(0, |r| r.files().filter(|f| f.records > 0).count() as u64);
    }
}

/// The evidence ring files holding packets of `[from, to]`, if there is a ring.
fn ring_files(ring: Option<&Ring>, from: i64, to: i64) -> Vec<String> {
    ring.map(|r| r.files_between(from, to)).unwrap_or_default()
}

/// Whether a flow counts in the per-minute controls (VOLUME, CADENCE, DNS), so it stays in the
/// evaluation window for its minute even when it has no new packets.
fn adds_up(rec: &FlowRecord, policy: &Policy) -> bool {
    rec.dns.is_some() || carries_checkins(classify(rec, policy).class)
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
