//! Reports: turning owned records into text for people and JSON/NDJSON/Zeek TSV for machines.
//! Every string that could carry a secret passes through redaction before it is written.

pub mod audit;
pub mod flows;
pub mod html;
pub mod merge;
pub mod render;

/// Schema version of every JSON document dg-audit writes.
pub const SCHEMA_VERSION: u32 = 1;

/// RFC 3339 UTC time with microseconds, from nanoseconds since the epoch.
pub fn rfc3339(ts_nanos: i64) -> String {
    let t = if ts_nanos >= 0 {
        std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ts_nanos as u64)
    } else {
        std::time::UNIX_EPOCH - std::time::Duration::from_nanos(ts_nanos.unsigned_abs())
    };
    humantime::format_rfc3339_micros(t).to_string()
}

/// Seconds with microsecond precision, as Zeek prints times and intervals.
pub fn secs6(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    format!(
        "{sign}{}.{:06}",
        n / 1_000_000_000,
        (n % 1_000_000_000) / 1_000
    )
}

/// Bytes in a human unit (1.4 KB, 2.0 MB), decimal as network tools count.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
