//! The check-in watch: per source host, when it last checked in, and whether it is overdue. This
//! is what only a running sensor can see: silence (no packet at all) is noticed by the wall clock.
//!
//! Invariants:
//! - What counts as a check-in is the audit's one rule ([`crate::audit::checkins`]); the watch
//!   only adds *when* within the current minute a held connection last checked in (see
//!   [`Watch::observe`]).
//! - Each check-in instant of a flow is counted once, however often the flow is re-judged.
//! - An overdue source alerts once per gap: the next check-in re-arms it. A watch that never saw
//!   a check-in alerts once, cadence + tolerance after its start.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use crate::audit::checkins::{carries_checkins, checkin_times, held};
use crate::audit::classify::classify;
use crate::audit::controls::destination_label;
use crate::audit::{ControlId, ControlVerdict};
use crate::flow::record::{ConnState, Transport};
use crate::flow::FlowRecord;
use crate::live::alerts::Alert;
use crate::live::metrics::Metrics;
use crate::policy::Policy;
use crate::units::{as_secs_f64, rfc3339, MINUTE_NANOS, NANOS};

/// One source's latest check-in.
#[derive(Debug, Clone)]
struct SourceState {
    /// Packet time of the latest check-in.
    last_checkin: i64,
    /// The flow that carried it.
    last_uid: String,
    /// Where it went (as the audit labels destinations).
    destination: String,
    /// The check-in time an overdue alert was raised for (one alert per gap).
    overdue_for: Option<i64>,
}

/// Check-in state of every source seen, and the licensing connections already measured.
pub struct Watch {
    cadence_seconds: u64,
    tolerance_seconds: u64,
    /// Wall time the watch started: silence is counted from here until a first check-in.
    start_nanos: i64,
    sources: BTreeMap<IpAddr, SourceState>,
    /// (flow uid, check-in key) already counted.
    checkins_seen: HashSet<(String, i64)>,
    /// Licensing connections whose duration is already in the histogram.
    durations_seen: HashSet<String>,
    silence_alerted: bool,
}

impl Watch {
    /// A watch with the policy's cadence and tolerance, started at wall time `start_nanos`.
    pub fn new(policy: &Policy, start_nanos: i64) -> Watch {
        Watch {
            cadence_seconds: policy.licensing.cadence_seconds,
            tolerance_seconds: policy.licensing.cadence_tolerance_seconds,
            start_nanos,
            sources: BTreeMap::new(),
            checkins_seen: HashSet::new(),
            durations_seen: HashSet::new(),
            silence_alerted: false,
        }
    }

    /// Longest gap between check-ins before a source is overdue.
    fn limit(&self) -> i64 {
        (self.cadence_seconds + self.tolerance_seconds) as i64 * NANOS
    }

    /// Check-ins and licensing connection durations of the judged flows (`window[..finished]`
    /// have ended, the rest are open snapshots).
    pub fn observe(
        &mut self,
        window: &[FlowRecord],
        finished: usize,
        policy: &Policy,
        metrics: &Metrics,
    ) {
        for (i, rec) in window.iter().enumerate() {
            let c = classify(rec, policy);
            if !carries_checkins(c.class) {
                continue;
            }
            if c.class.is_licensing()
                && rec.proto == Transport::Tcp
                && (i < finished || terminal(rec.conn_state))
                && self.durations_seen.insert(rec.uid.clone())
            {
                metrics
                    .lock()
                    .durations
                    .observe(as_secs_f64(rec.duration_nanos()));
            }
            let times = checkin_times(rec, self.cadence_seconds);
            if times.is_empty() {
                continue;
            }
            let destination = destination_label(&c);
            let last = times.len() - 1;
            let is_held = held(rec, self.cadence_seconds);
            for (k, key) in times.into_iter().enumerate() {
                // The audit places a held connection's check-in at its minute's start. For the
                // current minute the watch takes its latest packet instead (clamped into that
                // minute), so a connection that checked in a moment ago is not seen as up to a
                // minute older and flagged overdue early at a minute boundary.
                let at = if is_held && k == last {
                    rec.last_ts_nanos.clamp(key, key + MINUTE_NANOS - 1)
                } else {
                    key
                };
                if self.checkins_seen.insert((rec.uid.clone(), key)) {
                    self.checkin(rec.orig_h, at, &rec.uid, &destination, metrics);
                }
            }
        }
    }

    fn checkin(
        &mut self,
        source: IpAddr,
        at: i64,
        uid: &str,
        destination: &str,
        metrics: &Metrics,
    ) {
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
        let mut m = metrics.lock();
        let key = source.to_string();
        *m.checkins.entry(key.clone()).or_default() += 1;
        m.last_checkin_seconds
            .insert(key.clone(), as_secs_f64(last));
        m.overdue.insert(key.clone(), false);
        m.licensing_minute_bytes.entry(key).or_default();
    }

    fn overdue(&self, s: &SourceState, now_eff: i64) -> bool {
        now_eff - s.last_checkin > self.limit() && s.overdue_for != Some(s.last_checkin)
    }

    /// True when some source (or the watch itself, before any check-in) is newly overdue at
    /// `now_eff` (the later of the wall clock and the newest packet).
    pub fn any_due(&self, now_eff: i64) -> bool {
        self.sources.values().any(|s| self.overdue(s, now_eff))
            || (self.sources.is_empty()
                && !self.silence_alerted
                && now_eff - self.start_nanos > self.limit())
    }

    /// The CADENCE alerts due at wall time `now` (`now_eff` as for [`Watch::any_due`]); marks
    /// them raised and the sources overdue in `metrics`. `files(from, to)` names the evidence
    /// ring files of a time range.
    pub fn overdue_alerts(
        &mut self,
        now: i64,
        now_eff: i64,
        metrics: &Metrics,
        files: impl Fn(i64, i64) -> Vec<String>,
    ) -> Vec<Alert> {
        let (cadence, tolerance) = (self.cadence_seconds, self.tolerance_seconds);
        if self.sources.is_empty() {
            self.silence_alerted = true;
            let summary = format!(
                "no licensing check-in seen in the first {:.0} s of capture (expected every {cadence} s, tolerance {tolerance} s)",
                as_secs_f64(now_eff - self.start_nanos)
            );
            return vec![Alert::about_watch(
                now,
                ControlId::Cadence,
                ControlVerdict::Finding,
                summary,
                None,
            )];
        }
        let due: Vec<IpAddr> = self
            .sources
            .iter()
            .filter(|(_, s)| self.overdue(s, now_eff))
            .map(|(ip, _)| *ip)
            .collect();
        let mut out = Vec::with_capacity(due.len());
        for ip in due {
            let Some(s) = self.sources.get_mut(&ip) else {
                continue;
            };
            s.overdue_for = Some(s.last_checkin);
            metrics.lock().overdue.insert(ip.to_string(), true);
            out.push(Alert {
                ts: rfc3339(now),
                control: ControlId::Cadence,
                verdict: ControlVerdict::Finding.as_str().into(),
                summary: format!(
                    "{ip}: no licensing check-in for {:.1} s since the last one at {} to {} (expected every {cadence} s, tolerance {tolerance} s): overdue",
                    as_secs_f64(now_eff - s.last_checkin),
                    rfc3339(s.last_checkin),
                    s.destination
                ),
                source: Some(ip.to_string()),
                destination: Some(s.destination.clone()),
                flow_uids: vec![s.last_uid.clone()],
                bytes: None,
                packet_ts: Some(rfc3339(s.last_checkin)),
                pcap_files: files(s.last_checkin, s.last_checkin + NANOS),
            });
        }
        out
    }

    /// Forgets what was counted for flows `keep` no longer holds (they cannot be judged again).
    pub fn forget(&mut self, keep: impl Fn(&str) -> bool) {
        self.checkins_seen.retain(|(uid, _)| keep(uid));
        self.durations_seen.retain(|uid| keep(uid));
    }
}

/// A TCP state after which the connection has ended (its duration is final).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::record::{test_record, MinuteSlice};

    const T0: i64 = 1_700_000_040 * NANOS; // a minute boundary

    fn policy() -> Policy {
        Policy::from_toml(
            r#"schema_version = 1
[licensing]
cadence_seconds = 60
cadence_tolerance_seconds = 15
proxies = ["203.0.113.10:443"]
"#,
            "test",
        )
        .expect("test policy is valid")
    }

    /// A License Proxy hop held for 150.5 s, sending in its first and third minute.
    fn held_flow() -> FlowRecord {
        let mut f = test_record();
        f.resp_bytes = 10;
        f.conn_state = ConnState::S1;
        f.ts_nanos = T0;
        f.last_ts_nanos = T0 + 150 * NANOS + NANOS / 2;
        f.minutes = [(0, 1), (60, 0), (120, 2)]
            .map(|(offset, orig_pkts)| MinuteSlice {
                start: T0 / NANOS + offset,
                orig_pkts,
                ..MinuteSlice::default()
            })
            .to_vec();
        f
    }

    #[test]
    fn a_held_connection_is_overdue_from_its_latest_packet_once_per_gap() {
        let p = policy();
        let metrics = Metrics::new();
        let mut watch = Watch::new(&p, T0);
        let flow = held_flow();
        // Judged twice (still open, then again): each check-in counts once.
        watch.observe(std::slice::from_ref(&flow), 0, &p, &metrics);
        watch.observe(std::slice::from_ref(&flow), 0, &p, &metrics);
        assert_eq!(metrics.lock().checkins.get("192.0.2.10"), Some(&2));
        // The audit puts the second check-in at T0 + 120 s; the watch at the latest packet.
        let last = flow.last_ts_nanos;
        assert!(!watch.any_due(last + 75 * NANOS));
        assert!(watch.any_due(last + 75 * NANOS + 1));
        let now = last + 76 * NANOS;
        let alerts = watch.overdue_alerts(now, now, &metrics, |_, _| Vec::new());
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        assert_eq!(alerts[0].control, ControlId::Cadence);
        assert_eq!(alerts[0].packet_ts, Some(rfc3339(last)));
        assert_eq!(metrics.lock().overdue.get("192.0.2.10"), Some(&true));
        assert!(!watch.any_due(now + 10 * NANOS), "one alert per gap");
    }

    #[test]
    fn silence_from_the_start_alerts_once() {
        let p = policy();
        let metrics = Metrics::new();
        let mut watch = Watch::new(&p, T0);
        assert!(!watch.any_due(T0 + 75 * NANOS));
        assert!(watch.any_due(T0 + 76 * NANOS));
        let alerts = watch.overdue_alerts(T0 + 76 * NANOS, T0 + 76 * NANOS, &metrics, |_, _| {
            Vec::new()
        });
        assert_eq!(alerts.len(), 1);
        assert!(alerts[0].summary.contains("no licensing check-in seen"));
        assert!(!watch.any_due(T0 + 200 * NANOS));
    }
}
