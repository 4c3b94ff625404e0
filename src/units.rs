//! Time and size units, and the few ways dg-audit prints them.
//!
//! Every time inside dg-audit is an `i64` count of nanoseconds since the Unix epoch, taken from
//! packet timestamps (never the wall clock, except where `live` says so). This module is the one
//! place that knows how long a second and a minute are and how a time is written in RFC 3339, so
//! that the audit, the reports and the live alerts cannot disagree about a boundary.

/// Nanoseconds in a second.
pub const NANOS: i64 = 1_000_000_000;
/// Nanoseconds in a minute.
pub const MINUTE_NANOS: i64 = 60 * NANOS;

/// The minute a packet time falls in, as seconds since the epoch of that minute's start.
///
/// Floors toward negative infinity, so a time just before a minute boundary (:59.999999999)
/// belongs to the earlier minute and the boundary itself (:00.0) to the later one, on either
/// side of the epoch.
pub fn minute_start_secs(ts_nanos: i64) -> i64 {
    ts_nanos.div_euclid(MINUTE_NANOS) * 60
}

/// Seconds as a float, for durations and intervals people read.
pub fn as_secs_f64(nanos: i64) -> f64 {
    nanos as f64 / 1e9
}

/// RFC 3339 UTC time with microseconds (`2026-11-23T09:12:15.127310Z`), from nanoseconds since
/// the epoch.
///
/// Written by hand rather than with `humantime` because humantime panics on times before 1970;
/// a capture may carry them, and printing one must never crash the audit. Every `i64` of
/// nanoseconds falls in the years 1677..=2262, so the year always has four digits.
pub fn rfc3339(ts_nanos: i64) -> String {
    let secs = ts_nanos.div_euclid(NANOS);
    let micros = ts_nanos.rem_euclid(NANOS) / 1_000;
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// Parses what [`rfc3339`] writes (`YYYY-MM-DDTHH:MM:SS[.fraction]Z`, UTC) back into nanoseconds
/// since the epoch; `None` when it is not such a time or does not fit. By hand for the same
/// reason as [`rfc3339`]: humantime rejects times before 1970.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let digits = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter().try_fold(0i64, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    };
    let seps = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if seps.iter().any(|&(i, c)| b.get(i) != Some(&c)) || !matches!(b.get(10), Some(b'T' | b't')) {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let rest = b.get(19..)?;
    let (fraction, zone) = match rest.first() {
        Some(b'.') => {
            let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            (rest.get(1..1 + n)?, rest.get(1 + n..)?)
        }
        _ => (&rest[..0], rest),
    };
    if !matches!(zone, b"Z" | b"z") || fraction.len() > 9 {
        return None;
    }
    let frac_nanos = fraction
        .iter()
        .chain(std::iter::repeat(&b'0'))
        .take(9)
        .fold(0i64, |n, &c| n * 10 + i64::from(c - b'0'));
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    secs.checked_mul(NANOS)?.checked_add(frac_nanos)
}

/// Day count since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`), the inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Year, month and day of a day count since 1970-01-01 in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`, exact for every `i64` day count a nanosecond time
/// can produce).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_humantime_where_humantime_works() {
        for ts in [
            0,
            1,
            999,
            1_000,
            1_795_425_135_127_340_123,
            951_782_400 * NANOS, // 2000-02-29
            4_102_444_799 * NANOS + 999_999_999,
            i64::MAX,
        ] {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ts as u64);
            assert_eq!(
                rfc3339(ts),
                humantime::format_rfc3339_micros(t).to_string(),
                "{ts}"
            );
        }
    }

    #[test]
    fn rfc3339_never_panics_and_round_trips() {
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999999Z");
        assert_eq!(rfc3339(-86_400 * NANOS), "1969-12-31T00:00:00.000000Z");
        assert!(rfc3339(i64::MIN).starts_with("1677-09-21T"));
        assert!(rfc3339(i64::MAX).starts_with("2262-04-11T"));
        for ts in [0, -1_000, 1_795_425_135_127_340_000, -86_400 * NANOS] {
            assert_eq!(parse_rfc3339(&rfc3339(ts)), Some(ts));
        }
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(
            parse_rfc3339("2026-11-23T09:12:15Z"),
            Some(1_795_425_135 * NANOS)
        );
        assert_eq!(
            parse_rfc3339("2026-11-23T09:12:15.5Z"),
            Some(1_795_425_135_500_000_000)
        );
        assert_eq!(parse_rfc3339("2026-13-23T09:12:15Z"), None);
        assert_eq!(parse_rfc3339("2026-11-23T09:12:15+01:00"), None);
    }

    #[test]
    fn minute_boundaries() {
        let boundary = 1_700_000_040 * NANOS;
        assert_eq!(minute_start_secs(boundary), 1_700_000_040);
        assert_eq!(minute_start_secs(boundary - 100_000_000), 1_699_999_980);
        assert_eq!(minute_start_secs(boundary - 1), 1_699_999_980);
        assert_eq!(minute_start_secs(-1), -60);
    }

    #[test]
    fn units_print_as_people_read_them() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_400), "1.4 KB");
        assert_eq!(secs6(-1_500_000), "-0.001500");
        assert_eq!(secs6(1_795_425_135_127_340_123), "1795425135.127340");
    }
}
