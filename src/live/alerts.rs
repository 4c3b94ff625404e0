//! Alerts: the NDJSON line a watch writes ([`Alert`]), the typed key that de-duplicates them
//! ([`AlertKey`]), and the way out ([`Alerts`]: de-dup record, metrics count, sink).
//!
//! Invariants:
//! - The serialised form of [`Alert`] is a contract (DESIGN.md section 7): its first eight
//!   fields keep their names and meaning; `control` is written as the audit's id (`DEST`).
//! - A key is raised at most once while it is remembered: per-flow keys as long as their flow may
//!   still be judged, other keys for [`KEY_MEMORY_NANOS`] of wall time (enough to outlive the
//!   minute they name, so a minute never alerts twice).
//! - Raising never blocks: the sink drops and counts when its reader lags.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::audit::{ControlId, ControlVerdict};
use crate::live::metrics::Metrics;
use crate::units::{rfc3339, MINUTE_NANOS};

/// Minute-keyed evidence older than this (packet time) is history, alerted (or not) when it was
/// current.
pub const STALE_EVIDENCE_NANOS: i64 = 10 * MINUTE_NANOS;
/// How long a key that names a minute (not a flow) is remembered, in wall-clock nanoseconds:
/// twice [`STALE_EVIDENCE_NANOS`], so evidence still fresh enough to alert on finds its key.
pub const KEY_MEMORY_NANOS: i64 = 2 * STALE_EVIDENCE_NANOS;

/// One alert, written as an NDJSON line. The first eight fields are the stable contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// When the alert was raised (wall clock), RFC 3339.
    pub ts: String,
    /// Control id, written as in the audit (DEST, TLS, VOLUME, CADENCE, CREDENTIAL, ...).
    pub control: ControlId,
    /// `violation`, `finding` or `inconclusive`.
    pub verdict: String,
    /// One line a person reads (secrets redacted).
    pub summary: String,
    /// The host the alert is about, when there is one.
    pub source: Option<String>,
    /// Where it sent traffic, when there is one destination.
    pub destination: Option<String>,
    /// The flows behind the alert (Zeek-style uids, as in the audit).
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

impl Alert {
    /// An alert about the watch itself (capture, ring, silence), not about any flow or host.
    /// `packet_ts` is the newest packet time seen, if any.
    pub fn about_watch(
        now: i64,
        control: ControlId,
        verdict: ControlVerdict,
        summary: String,
        packet_ts: Option<i64>,
    ) -> Alert {
        Alert {
            ts: rfc3339(now),
            control,
            verdict: verdict.as_str().into(),
            summary,
            source: None,
            destination: None,
            flow_uids: Vec::new(),
            bytes: None,
            packet_ts: packet_ts.map(rfc3339),
            pcap_files: Vec::new(),
        }
    }
}

/// Where alerts go. It must not block (drop and count instead).
pub type AlertSink = Box<dyn FnMut(Alert) + Send>;

/// What an alert is about, for de-duplication.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// One flow (per-flow controls: one alert per control and flow).
    Flow(String),
    /// Evidence of a per-minute control: the source and destination it names (empty when it
    /// names none) and the minute (number since the epoch) it was seen in.
    SourceMinute {
        /// The source the evidence names, empty when none.
        source: String,
        /// The destination the evidence names, empty when none.
        destination: String,
        /// Minute number since the epoch.
        minute: i64,
    },
    /// A fact about the watch itself, in a minute (number since the epoch).
    Topic {
        /// What about the watch.
        topic: Topic,
        /// Minute number since the epoch.
        minute: i64,
    },
}

/// Facts about the watch that alert at most once a minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// The kernel or the interface dropped packets.
    Drops,
    /// The flow-table cap evicted flows.
    Evicted,
}

/// The de-duplication key of an alert: a control and what it is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AlertKey {
    /// The control that raised it.
    pub control: ControlId,
    /// What it is about.
    pub subject: Subject,
}

impl AlertKey {
    /// The key of a per-flow alert.
    pub fn flow(control: ControlId, uid: &str) -> AlertKey {
        AlertKey {
            control,
            subject: Subject::Flow(uid.to_string()),
        }
    }
}

/// The way out for alerts: remembers which keys were raised, counts alerts in the metrics and
/// hands them to the sink.
pub struct Alerts {
    /// Keys already raised, with the wall time they were raised.
    raised: HashMap<AlertKey, i64>,
    sink: AlertSink,
    metrics: Arc<Metrics>,
}

impl Alerts {
    /// Alerts to `sink`, counted in `metrics`.
    pub fn new(sink: AlertSink, metrics: Arc<Metrics>) -> Alerts {
        Alerts {
            raised: HashMap::new(),
            sink,
            metrics,
        }
    }

    /// True when an alert with this key was raised (and is still remembered).
    pub fn raised(&self, key: &AlertKey) -> bool {
        self.raised.contains_key(key)
    }

    /// Records that `key` is raised at wall time `now`; false when it already was.
    pub fn mark(&mut self, key: AlertKey, now: i64) -> bool {
        self.raised.insert(key, now).is_none()
    }

    /// Counts the alert and hands it to the sink.
    pub fn raise(&mut self, alert: Alert) {
        *self
            .metrics
            .lock()
            .alerts
            .entry((alert.control.as_str().to_string(), alert.verdict.clone()))
            .or_default() += 1;
        (self.sink)(alert);
    }

    /// Forgets keys that can no longer recur: per-flow keys of flows `keep` no longer holds,
    /// and other keys older than [`KEY_MEMORY_NANOS`] at wall time `now`.
    pub fn forget(&mut self, keep: impl Fn(&str) -> bool, now: i64) {
        self.raised.retain(|key, at| match &key.subject {
            Subject::Flow(uid) => keep(uid),
            _ => now - *at <= KEY_MEMORY_NANOS,
        });
    }
}

/// Controls judged flow by flow: an alert per flow. The others add up over a source's minute
/// (VOLUME, DNS) or are the watch's own (CADENCE, CAPTURE).
pub fn per_flow(control: ControlId) -> bool {
    matches!(
        control,
        ControlId::Dest
            | ControlId::Tls
            | ControlId::Duration
            | ControlId::Audio
            | ControlId::Credential
            | ControlId::Proxy
            | ControlId::Ingress
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_is_written_as_the_audit_id() {
        let alert = Alert::about_watch(
            0,
            ControlId::Capture,
            ControlVerdict::Inconclusive,
            "drops".into(),
            None,
        );
        let line = serde_json::to_string(&alert).expect("json");
        assert!(line.contains(r#""control":"CAPTURE""#), "{line}");
        assert!(line.contains(r#""verdict":"inconclusive""#), "{line}");
        assert!(!line.contains("packet_ts"), "{line}");
    }

    #[test]
    fn flow_keys_live_with_their_flow_and_minute_keys_for_a_while() {
        let mut alerts = Alerts::new(Box::new(|_| {}), Metrics::new());
        let flow = AlertKey::flow(ControlId::Dest, "C1");
        let minute = AlertKey {
            control: ControlId::Capture,
            subject: Subject::Topic {
                topic: Topic::Drops,
                minute: 7,
            },
        };
        assert!(alerts.mark(flow.clone(), 0));
        assert!(!alerts.mark(flow.clone(), 1));
        assert!(alerts.mark(minute.clone(), 0));
        alerts.forget(|uid| uid == "C1", KEY_MEMORY_NANOS);
        assert!(alerts.raised(&flow) && alerts.raised(&minute));
        alerts.forget(|_| false, KEY_MEMORY_NANOS + 1);
        assert!(!alerts.raised(&flow) && !alerts.raised(&minute));
    }
}
