//! RFC 3339 UTC timestamps (`2025-11-09T15:00:05Z`) without a date crate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// 9999-12-31T23:59:59Z, the last second RFC 3339 can write.
const LAST_SECOND: i64 = 253_402_300_799;

/// Formats a system time as RFC 3339 UTC with millisecond precision.
pub fn format(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    // Past the year 9999 the format has no digits left: show the last second.
    let secs = i64::try_from(since.as_secs()).map_or(LAST_SECOND, |s| s.min(LAST_SECOND));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// The current time as RFC 3339 UTC.
pub fn now() -> String {
    format(SystemTime::now())
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)`; `None` when it is not that.
pub fn parse(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    // Digits only: `str::parse` would also take a sign (`+1` as a month).
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let field = b.get(r)?;
        let digits = field.iter().all(u8::is_ascii_digit);
        digits.then(|| field.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        // Nanoseconds: the first nine digits (from byte 20, after the
        // dot), the missing ones zeros.
        let kept = digits.min(9);
        let value = num(20..20 + kept)? * 10i64.pow(9 - kept as u32);
        nanos = u32::try_from(value).ok()?;
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && rest.as_bytes()[3] == b':' =>
        {
            // `rest` ends the text: its hours and minutes, as positions in `b`.
            let at = b.len() - 6;
            let (oh, om) = (num(at + 1..at + 3)?, num(at + 4..at + 6)?);
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset;
    let secs = u64::try_from(secs).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

/// Howard Hinnant's days-to-civil algorithm.
pub(crate) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The inverse of [`civil_from_days`].
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_round_trip() {
        let t = UNIX_EPOCH + Duration::from_millis(1_762_700_405_123);
        let s = format(t);
        assert_eq!(s, "2025-11-09T15:00:05.123Z");
        assert_eq!(parse(&s), Some(t));
    }

    #[test]
    fn parses_seed_examples_and_offsets() {
        let a = parse("2025-11-09T15:00:05Z").unwrap();
        let b = parse("2025-11-09T16:00:05+01:00").unwrap();
        assert_eq!(a, b);
        assert_eq!(format(a), "2025-11-09T15:00:05.000Z");
        assert!(parse("2024-02-29T00:00:00Z").is_some());
    }

    #[test]
    fn far_times_format_without_overflow() {
        let far = UNIX_EPOCH
            .checked_add(Duration::from_secs(1 << 40))
            .unwrap();
        assert!(
            format(far).starts_with("9999-12-31T23:59:59."),
            "{}",
            format(far)
        );
        assert!(parse("9999-12-31T23:59:59Z").is_some());
    }

    #[test]
    fn fractions_keep_nine_digits_and_offsets_follow_them() {
        let base = parse("2025-11-09T15:00:05Z").unwrap();
        for (text, nanos) in [
            ("2025-11-09T15:00:05.5Z", 500_000_000),
            ("2025-11-09T15:00:05.000001Z", 1_000),
            ("2025-11-09T15:00:05.123456789Z", 123_456_789),
            ("2025-11-09T15:00:05.1234567899999Z", 123_456_789),
            ("2025-11-09T16:30:05.25+01:30", 250_000_000),
            ("2025-11-09T14:00:05.999999999-01:00", 999_999_999),
        ] {
            let parsed = parse(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(
                parsed.duration_since(base).unwrap().as_nanos(),
                nanos,
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "yesterday",
            "2025-13-01T00:00:00Z",
            "2025-11-09T15:00:05",
            "2025-11-09T15:00:05.Z",
            // A sign is no digit.
            "2025-+1-09T15:00:05Z",
            "+025-11-09T15:00:05Z",
            "2025-11-09T15:00:05+-1:00",
            "2025-11-09T15:00:05+01-00",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
