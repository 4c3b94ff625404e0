//! Per-minute licensing accounting: client-to-server bytes of licensing flows per source host and
//! minute window `[floor(ts/60)*60, +60)` of packet time, and the distribution of those minutes.

use std::collections::BTreeMap;
use std::net::IpAddr;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::audit::classify::Classified;
use crate::units::{minute_start_secs, rfc3339, NANOS};

/// Licensing egress of one source in one minute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicensingMinute {
    /// Window start, RFC 3339.
    pub start: String,
    /// Window start, seconds since the epoch.
    pub start_ts: i64,
    /// The client host.
    pub source: IpAddr,
    /// Client-to-server IP bytes (every packet, as Zeek's orig_ip_bytes, plus the estimated wire
    /// size of `egress_missed_bytes`).
    pub egress_ip_bytes: u64,
    /// Client-to-server payload bytes newly covered by sequence numbers.
    pub egress_payload_bytes: u64,
    /// Of `egress_payload_bytes`, those the server acknowledged in this minute but the capture
    /// never held: inferred from sequence numbers, not seen.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub egress_missed_bytes: u64,
    /// Licensing connections opened in this minute.
    pub connections: u64,
    /// Flows with traffic in this minute.
    pub flow_uids: Vec<String>,
}

/// Distribution of per-source, per-active-minute licensing egress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinuteStats {
    /// Active source-minutes.
    pub minutes: u64,
    /// Median source-minute.
    pub p50: u64,
    /// 99th percentile source-minute.
    pub p99: u64,
    /// Largest source-minute (exact).
    pub max: u64,
    /// Sum over every source-minute (exact).
    pub total: u64,
}

/// Builds the per-minute series (sorted by start, then source) from licensing flows.
pub fn licensing_minutes(flows: &[Classified<'_>]) -> Vec<LicensingMinute> {
    let mut series: BTreeMap<(i64, IpAddr), LicensingMinute> = BTreeMap::new();
    for c in flows.iter().filter(|c| c.is_licensing_egress()) {
        let f = c.flow;
        // The minute the connection opened in: its first packet's, drawn as the flow table draws
        // the slices, so the two can be compared.
        let opened = minute_start_secs(f.ts_nanos);
        for m in &f.minutes {
            // A minute where the server acknowledged unseen client bytes counts even without a
            // client packet: those bytes were sent in it.
            if m.orig_pkts == 0 && m.orig_missed_bytes == 0 && m.start != opened {
                continue;
            }
            let entry = series
                .entry((m.start, f.orig_h))
                .or_insert_with(|| LicensingMinute {
                    start: rfc3339(m.start * NANOS),
                    start_ts: m.start,
                    source: f.orig_h,
                    egress_ip_bytes: 0,
                    egress_payload_bytes: 0,
                    egress_missed_bytes: 0,
                    connections: 0,
                    flow_uids: Vec::new(),
                });
            entry.egress_ip_bytes += m.orig_ip_bytes;
            entry.egress_payload_bytes += m.orig_bytes;
            entry.egress_missed_bytes += m.orig_missed_bytes;
            if m.start == opened && !f.midstream {
                entry.connections += 1;
            }
            entry.flow_uids.push(f.uid.clone());
        }
    }
    series.into_values().collect()
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// p50/p99/max/total of one measure over the series.
pub fn stats(series: &[LicensingMinute], measure: impl Fn(&LicensingMinute) -> u64) -> MinuteStats {
    // Bounds must be explicit: a histogram made with `new` does not grow, and would saturate
    // every minute at its initial tiny maximum.
    let mut hist = Histogram::<u64>::new_with_bounds(1, 1 << 40, 3)
        .expect("bounds 1..2^40 with 3 significant digits are valid");
    let (mut total, mut max) = (0, 0);
    for m in series {
        let v = measure(m);
        total += v;
        max = max.max(v);
        hist.saturating_record(v);
    }
    if series.is_empty() {
        return MinuteStats::default();
    }
    MinuteStats {
        minutes: series.len() as u64,
        // Quantiles come back at their bucket's upper edge, which can pass the exact max.
        p50: hist.value_at_quantile(0.50).min(max),
        p99: hist.value_at_quantile(0.99).min(max),
        // The histogram's max is bucketed; the exact one is known.
        max,
        total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::controls::test_support::{classified, licensing, policy, slice, T0};
    use crate::flow::FlowRecord;
    use crate::units::MINUTE_NANOS;

    /// The series of `flows` under the default policy.
    fn series(flows: &[FlowRecord]) -> Vec<LicensingMinute> {
        licensing_minutes(&classified(flows, &policy("")))
    }

    /// (window start in seconds, IP bytes, connections opened, uids) of each minute.
    fn summary(series: &[LicensingMinute]) -> Vec<(i64, u64, u64, Vec<&str>)> {
        series
            .iter()
            .map(|m| {
                let uids = m.flow_uids.iter().map(String::as_str).collect();
                (m.start_ts, m.egress_ip_bytes, m.connections, uids)
            })
            .collect()
    }

    #[test]
    fn connections_at_59_9_s_and_at_the_next_minute_land_in_different_minutes() {
        let t = 1_700_000_040;
        // The flow table slices packets by `minute_start_secs`; each flow opens in its slice.
        let late = licensing("CLate", T0 + 59_900_000_000, 700);
        let next = licensing("CNext", T0 + MINUTE_NANOS, 800);
        assert_eq!(late.minutes[0].start, t);
        assert_eq!(next.minutes[0].start, t + 60);
        let s = series(&[late, next]);
        assert_eq!(
            summary(&s),
            [(t, 700, 1, vec!["CLate"]), (t + 60, 800, 1, vec!["CNext"])]
        );
        assert_eq!(s[0].start, "2023-11-14T22:14:00.000000Z");
        assert_eq!(s[1].start, "2023-11-14T22:15:00.000000Z");
    }

    #[test]
    fn a_connection_counts_once_in_the_minute_it_opened() {
        let t = 1_700_000_040;
        // Opened at :59.9, sending on into the next minute, then only receiving.
        let mut f = licensing("CSpans", T0 + 59_900_000_000, 0);
        let mut quiet = slice(t + 120, 0);
        quiet.orig_pkts = 0;
        quiet.resp_pkts = 2;
        f.minutes = vec![slice(t, 300), slice(t + 60, 500), quiet];
        assert_eq!(
            summary(&series(&[f])),
            [
                (t, 300, 1, vec!["CSpans"]),
                (t + 60, 500, 0, vec!["CSpans"])
            ]
        );
    }

    #[test]
    fn a_minute_of_only_acknowledged_unseen_bytes_is_counted_and_says_so() {
        let t = 1_700_000_040;
        let mut f = licensing("CLossy", T0, 1500);
        // The next minute holds no client packet, only the server's ACK of 1460 unseen bytes.
        let mut acked = slice(t + 60, 0);
        acked.orig_pkts = 0;
        acked.resp_pkts = 1;
        acked.orig_bytes = 1460;
        acked.orig_missed_bytes = 1460;
        acked.orig_missed_ip_bytes = 1500;
        acked.orig_ip_bytes = 1500;
        f.minutes.push(acked);
        let s = series(&[f]);
        assert_eq!(
            summary(&s),
            [
                (t, 1500, 1, vec!["CLossy"]),
                (t + 60, 1500, 0, vec!["CLossy"])
            ]
        );
        assert_eq!(
            (s[0].egress_missed_bytes, s[1].egress_missed_bytes),
            (0, 1460)
        );
        assert_eq!(s[1].egress_payload_bytes, 1460);
    }

    #[test]
    fn the_opening_minute_is_listed_even_without_client_packets() {
        let t = 1_700_000_040;
        let mut f = licensing("CSilent", T0 + 59_900_000_000, 0);
        f.minutes[0].orig_pkts = 0;
        assert_eq!(summary(&series(&[f])), [(t, 0, 1, vec!["CSilent"])]);
    }

    #[test]
    fn minutes_before_the_epoch_floor_toward_the_earlier_minute() {
        // 0.1 s before the epoch is in the minute from -60 s, not the one from 0.
        let f = licensing("COld", -100_000_000, 400);
        assert_eq!(f.minutes[0].start, -60);
        let s = series(&[f]);
        assert_eq!(summary(&s), [(-60, 400, 1, vec!["COld"])]);
        assert_eq!(s[0].start, "1969-12-31T23:59:00.000000Z");
    }

    #[test]
    fn mid_stream_flows_add_bytes_but_no_connection() {
        let mut f = licensing("CMid", T0, 900);
        f.midstream = true;
        assert_eq!(
            summary(&series(&[f])),
            [(1_700_000_040, 900, 0, vec!["CMid"])]
        );
    }

    fn minute(bytes: u64) -> LicensingMinute {
        LicensingMinute {
            start: String::new(),
            start_ts: 0,
            source: "192.0.2.10".parse().unwrap(),
            egress_ip_bytes: bytes,
            egress_payload_bytes: 0,
            egress_missed_bytes: 0,
            connections: 1,
            flow_uids: Vec::new(),
        }
    }

    #[test]
    fn stats_are_exact_for_max_and_total_and_close_for_quantiles() {
        let series: Vec<_> = [1811, 1812, 2421, 2477, 32540, 32488, 5_400_000]
            .into_iter()
            .map(minute)
            .collect();
        let s = stats(&series, |m| m.egress_ip_bytes);
        assert_eq!(s.minutes, 7);
        assert_eq!(s.max, 5_400_000);
        assert_eq!(
            s.total,
            1811 + 1812 + 2421 + 2477 + 32540 + 32488 + 5_400_000
        );
        // 3 significant digits: within 0.1% of the true median, 2477.
        assert!((2474..=2480).contains(&s.p50), "p50 {}", s.p50);
        assert!(s.p99 >= 5_390_000, "p99 {}", s.p99);
    }

    #[test]
    fn empty_series_has_zero_stats() {
        assert_eq!(stats(&[], |m| m.egress_ip_bytes), MinuteStats::default());
    }
}
