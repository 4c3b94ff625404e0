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
    pub source: IpAddr,
    /// Client-to-server IP bytes (every packet, as Zeek's orig_ip_bytes).
    pub egress_ip_bytes: u64,
    /// Client-to-server payload bytes newly covered by sequence numbers.
    pub egress_payload_bytes: u64,
    /// Licensing connections opened in this minute.
    pub connections: u64,
    /// Flows with traffic in this minute.
    pub flow_uids: Vec<String>,
}

/// Distribution of per-source, per-active-minute licensing egress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinuteStats {
    pub minutes: u64,
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
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
            if m.orig_pkts == 0 && m.start != opened {
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
                    connections: 0,
                    flow_uids: Vec::new(),
                });
            entry.egress_ip_bytes += m.orig_ip_bytes;
            entry.egress_payload_bytes += m.orig_bytes;
            if m.start == opened && !f.midstream {
                entry.connections += 1;
            }
            entry.flow_uids.push(f.uid.clone());
        }
    }
    series.into_values().collect()
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

    fn minute(bytes: u64) -> LicensingMinute {
        LicensingMinute {
            start: String::new(),
            start_ts: 0,
            source: "192.0.2.10".parse().unwrap(),
            egress_ip_bytes: bytes,
            egress_payload_bytes: 0,
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
