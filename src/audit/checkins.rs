//! The one definition of a licensing check-in. The CADENCE control, the licensing pattern, the
//! audit document's check-in list, the HTML report's cadence chart and the live watch for
//! overdue sources all read check-ins from here, so a change to the rule reaches all of them.
//!
//! The rule:
//! - A flow can carry check-ins when it is licensing traffic (to the licensing server, directly,
//!   through a forward proxy or in clear) or a hop to the site's License Proxy.
//! - It carries them only when it was **answered**: the server sent payload and the connection
//!   was neither refused (REJ) nor left unanswered (S0). Failed attempts are CADENCE's evidence of
//!   an outage, never check-ins.
//! - A **short** connection (no longer than the cadence) is one check-in, at its first packet.
//! - A **held** connection (longer than the cadence) checks in once in every minute in which the
//!   client sent packets, at that minute's start.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::audit::classify::{Classified, FlowClass};
use crate::audit::document::Timestamp;
use crate::flow::record::ConnState;
use crate::flow::FlowRecord;
use crate::units::NANOS;

/// One check-in, as the audit document lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckIn {
    /// The host that checked in.
    pub source: String,
    /// When: the connection's first packet, or the start of the minute of a held connection.
    pub ts: Timestamp,
    /// The flow that carried it.
    pub uid: String,
}

/// True for the classes of flow that carry check-ins: licensing traffic and License Proxy hops.
pub fn carries_checkins(class: FlowClass) -> bool {
    class.is_licensing() || class == FlowClass::LicenseProxyHop
}

/// The server answered: it sent payload, and the connection was neither refused nor ignored.
pub fn answered(flow: &FlowRecord) -> bool {
    flow.resp_bytes > 0 && !matches!(flow.conn_state, ConnState::REJ | ConnState::S0)
}

/// The connection outlived one cadence: its check-ins are its active minutes.
pub fn held(flow: &FlowRecord, cadence_seconds: u64) -> bool {
    flow.duration_nanos() > cadence_nanos(cadence_seconds)
}

fn cadence_nanos(cadence_seconds: u64) -> i64 {
    i64::try_from(cadence_seconds)
        .unwrap_or(i64::MAX)
        .saturating_mul(NANOS)
}

/// The check-in times (nanoseconds) one flow of a check-in class carries, oldest first; empty
/// when it was not answered.
pub fn checkin_times(flow: &FlowRecord, cadence_seconds: u64) -> Vec<i64> {
    if !answered(flow) {
        return Vec::new();
    }
    if held(flow, cadence_seconds) {
        flow.minutes
            .iter()
            .filter(|m| m.orig_pkts > 0)
            .map(|m| m.start * NANOS)
            .collect()
    } else {
        vec![flow.ts_nanos]
    }
}

/// Every source's check-ins, each list in time order with one entry per instant (two flows that
/// check in at the same nanosecond are one check-in), with the uid of the flow that carried it.
pub fn by_source(
    flows: &[Classified<'_>],
    cadence_seconds: u64,
) -> BTreeMap<IpAddr, Vec<(i64, String)>> {
    let mut out: BTreeMap<IpAddr, Vec<(i64, String)>> = BTreeMap::new();
    for c in flows.iter().filter(|c| carries_checkins(c.class)) {
        for at in checkin_times(c.flow, cadence_seconds) {
            out.entry(c.flow.orig_h)
                .or_default()
                .push((at, c.flow.uid.clone()));
        }
    }
    for times in out.values_mut() {
        times.sort();
        times.dedup_by_key(|t| t.0);
    }
    out
}

/// The check-ins of [`by_source`] as the audit document lists them: by source, then time.
pub fn list(by_source: &BTreeMap<IpAddr, Vec<(i64, String)>>) -> Vec<CheckIn> {
    by_source
        .iter()
        .flat_map(|(source, times)| {
            times.iter().map(move |(at, uid)| CheckIn {
                source: source.to_string(),
                ts: Timestamp(*at),
                uid: uid.clone(),
            })
        })
        .collect()
}

/// How the deployment checks in: `new_connection_per_checkin`, `held_connection`, `mixed`, or
/// `none`. A connection counts as held here when it outlived the cadence and sent in at least
/// two minutes (one long idle connection with a single burst is still one check-in).
pub fn pattern(licensing: &[&Classified<'_>], cadence_seconds: u64) -> &'static str {
    let held_count = licensing
        .iter()
        .filter(|c| {
            held(c.flow, cadence_seconds)
                && c.flow.minutes.iter().filter(|m| m.orig_pkts > 0).count() >= 2
        })
        .count();
    match (licensing.len(), held_count) {
        (0, _) => "none",
        (_, 0) => "new_connection_per_checkin",
        (n, h) if h == n => "held_connection",
        _ => "mixed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::record::MinuteSlice;

    fn flow(conn_state: ConnState, resp_bytes: u64, start: i64, end: i64) -> FlowRecord {
        let mut f = crate::flow::record::test_record();
        f.conn_state = conn_state;
        f.resp_bytes = resp_bytes;
        f.ts_nanos = start;
        f.last_ts_nanos = end;
        f
    }

    fn minute(start_secs: i64, orig_pkts: u64) -> MinuteSlice {
        MinuteSlice {
            start: start_secs,
            orig_pkts,
            ..MinuteSlice::default()
        }
    }

    const T0: i64 = 1_700_000_040 * NANOS;

    #[test]
    fn failed_attempts_are_not_checkins() {
        assert!(checkin_times(&flow(ConnState::S0, 0, T0, T0 + NANOS), 60).is_empty());
        assert!(checkin_times(&flow(ConnState::REJ, 10, T0, T0 + NANOS), 60).is_empty());
        assert!(checkin_times(&flow(ConnState::SF, 0, T0, T0 + NANOS), 60).is_empty());
        assert_eq!(
            checkin_times(&flow(ConnState::SF, 10, T0, T0 + NANOS), 60),
            vec![T0]
        );
    }

    #[test]
    fn a_connection_of_exactly_one_cadence_is_short() {
        let f = flow(ConnState::SF, 10, T0, T0 + 60 * NANOS);
        assert!(!held(&f, 60));
        assert_eq!(checkin_times(&f, 60), vec![T0]);
        let f = flow(ConnState::SF, 10, T0, T0 + 60 * NANOS + 1);
        assert!(held(&f, 60));
    }

    #[test]
    fn a_held_connection_checks_in_each_minute_it_sends() {
        let mut f = flow(ConnState::S1, 10, T0, T0 + 200 * NANOS);
        f.minutes = vec![
            minute(1_700_000_040, 3),
            minute(1_700_000_100, 0),
            minute(1_700_000_160, 2),
        ];
        assert_eq!(
            checkin_times(&f, 60),
            vec![1_700_000_040 * NANOS, 1_700_000_160 * NANOS]
        );
    }
}
