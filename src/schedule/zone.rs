//! Time zones for schedules: UTC, fixed offsets, and IANA names read from
//! the system's zoneinfo (TZif version 2 or later: its transitions, then the
//! POSIX rule of its footer for the years past them). It answers the two
//! questions a schedule asks: the UTC offset at an instant, and the instant
//! of a local wall-clock time, which a DST change can skip or repeat.

use std::path::Path;

use crate::timestamp::{civil_from_days, days_from_civil};

/// Where the system keeps its zoneinfo files.
pub const ZONEINFO: &str = "/usr/share/zoneinfo";

/// A time zone: a fixed offset, or a zone's history and rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Zone {
    /// Always this many seconds east of UTC.
    Fixed(i32),
    /// Offsets that change at given instants, then by a rule.
    Rules(Box<Tzif>),
}

/// What a TZif file says: offsets changing at instants, then a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Tzif {
    /// Instants (Unix seconds, ascending) and the offset from each on.
    transitions: Vec<(i64, i32)>,
    /// The offset before the first transition.
    initial: i32,
    /// The footer's rule, for instants after the last transition.
    rule: Option<PosixRule>,
}

/// A POSIX TZ rule (`CET-1CEST,M3.5.0,M10.5.0/3`): standard offset, and
/// optionally a daylight offset with the two changes of each year.
#[derive(Debug, Clone, PartialEq)]
struct PosixRule {
    std: i32,
    dst: Option<(i32, ChangeAt, ChangeAt)>,
}

/// `Mm.w.d/time`: day `d` (0 Sunday) of week `w` (5: the last) of month
/// `m`, at `time` seconds of local time then in force.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ChangeAt {
    month: i64,
    week: i64,
    weekday: i64,
    time: i64,
}

impl Zone {
    /// Resolves a schedule's `timezone`: `UTC`, `Z`, `+05:30`, `UTC-8`, or
    /// an IANA name found under [`ZONEINFO`] (or `TZDIR` when set). `Err`
    /// says why it cannot be used.
    pub fn resolve(name: &str) -> Result<Zone, String> {
        if let Some(offset) = fixed_offset(name) {
            return Ok(Zone::Fixed(offset));
        }
        let valid = !name.is_empty()
            && !name.starts_with('/')
            && name.split('/').all(|part| part != ".." && part != ".")
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b));
        if !valid {
            return Err(format!("{name:?} is not a time zone name"));
        }
        let dir = std::env::var("TZDIR").unwrap_or_else(|_| ZONEINFO.into());
        Zone::from_file(&Path::new(&dir).join(name))
            .map_err(|why| format!("unknown time zone {name:?}: {why}"))
    }

    /// The zone of one TZif file.
    pub fn from_file(path: &Path) -> Result<Zone, String> {
        let bytes = std::fs::read(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("no {}", path.display()),
            _ => format!("cannot read {}: {e}", path.display()),
        })?;
        Tzif::parse(&bytes)
            .map(|z| Zone::Rules(Box::new(z)))
            .map_err(|why| format!("{}: {why}", path.display()))
    }

    /// Seconds east of UTC at the instant `t` (Unix seconds).
    pub fn offset_at(&self, t: i64) -> i32 {
        match self {
            Zone::Fixed(offset) => *offset,
            Zone::Rules(tz) => tz.offset_at(t),
        }
    }

    /// The instant of the local wall-clock time `local` (Unix seconds as if
    /// local time were UTC), as cron users expect it across DST changes: a
    /// time that occurs twice is its first occurrence; a time that a change
    /// skips is the end of the gap (the first valid time after it).
    pub fn instant_of(&self, local: i64) -> i64 {
        // No zone changes twice within two days: the offsets in force a day
        // either side are the only candidates.
        let before = self.offset_at(local - 86_400);
        let after = self.offset_at(local + 86_400);
        let fits = |offset: i32| {
            let t = local - i64::from(offset);
            (self.offset_at(t) == offset).then_some(t)
        };
        match (fits(before), fits(after)) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => {
                // In a gap: the change happened between these two instants;
                // find its first second by bisection.
                let (mut lo, mut hi) = (
                    local - i64::from(before.max(after)),
                    local - i64::from(before.min(after)),
                );
                let at_lo = self.offset_at(lo);
                while hi - lo > 1 {
                    let mid = lo + (hi - lo) / 2;
                    if self.offset_at(mid) == at_lo {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                hi
            }
        }
    }
}

/// `UTC`, `GMT`, `Z`, `+HH[:MM]`, `-HH[:MM]`, `UTC+HH[:MM]`: its offset in
/// seconds east of UTC.
fn fixed_offset(name: &str) -> Option<i32> {
    let upper = name.to_ascii_uppercase();
    let rest = match upper.as_str() {
        "UTC" | "GMT" | "Z" | "ETC/UTC" => return Some(0),
        s => s
            .strip_prefix("UTC")
            .or_else(|| s.strip_prefix("GMT"))
            .unwrap_or(s),
    };
    let sign = match rest.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (hours, minutes) = match rest[1..].split_once(':') {
        Some((h, m)) => (h, m),
        None if rest.len() == 5 => (&rest[1..3], &rest[3..]),
        None => (&rest[1..], "0"),
    };
    let digits = |s: &str| !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(hours) || !digits(minutes) {
        return None;
    }
    let (h, m): (i32, i32) = (hours.parse().ok()?, minutes.parse().ok()?);
    (h <= 18 && m < 60).then_some(sign * (h * 3600 + m * 60))
}

impl Tzif {
    /// Parses a TZif file of version 2 or later (the 64-bit block and the
    /// footer; the 32-bit block of version 1 is skipped).
    pub fn parse(bytes: &[u8]) -> Result<Tzif, String> {
        let header = Header::read(bytes)?;
        if header.version < b'2' {
            return Err("a TZif file of version 1, which has no 64-bit data".into());
        }
        let second = bytes
            .get(header.v1_len() + 44..)
            .ok_or("truncated TZif file")?;
        let header2 = Header::read(second)?;
        let data = &second[44..];
        let need = header2.v2_len();
        if data.len() < need {
            return Err("truncated TZif file".into());
        }
        let n = header2.timecnt;
        let times = &data[..n * 8];
        let indices = &data[n * 8..n * 9];
        let types = &data[n * 9..n * 9 + header2.typecnt * 6];
        let offset_of = |i: usize| -> Result<i32, String> {
            let b = types.get(i * 6..i * 6 + 4).ok_or("bad local time type")?;
            Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        let mut transitions = Vec::with_capacity(n);
        for i in 0..n {
            let b = &times[i * 8..i * 8 + 8];
            let at = i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
            transitions.push((at, offset_of(usize::from(indices[i]))?));
        }
        let initial = offset_of(0)?;
        let footer = &data[need..];
        let rule = footer
            .strip_prefix(b"\n")
            .and_then(|f| f.split(|b| *b == b'\n').next())
            .and_then(|f| std::str::from_utf8(f).ok())
            .filter(|f| !f.is_empty())
            .and_then(PosixRule::parse);
        Ok(Tzif {
            transitions,
            initial,
            rule,
        })
    }

    fn offset_at(&self, t: i64) -> i32 {
        let i = self.transitions.partition_point(|(at, _)| *at <= t);
        match (&self.rule, i) {
            (Some(rule), _) if i == self.transitions.len() => rule.offset_at(t),
            (_, 0) => self.initial,
            _ => self.transitions[i - 1].1,
        }
    }
}

/// The counts of a TZif header.
struct Header {
    version: u8,
    isutcnt: usize,
    isstdcnt: usize,
    leapcnt: usize,
    timecnt: usize,
    typecnt: usize,
    charcnt: usize,
}

impl Header {
    fn read(bytes: &[u8]) -> Result<Header, String> {
        if bytes.len() < 44 || &bytes[..4] != b"TZif" {
            return Err("not a TZif file".into());
        }
        let count = |i: usize| {
            let b = &bytes[20 + i * 4..24 + i * 4];
            usize::try_from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])).unwrap_or(usize::MAX)
        };
        let header = Header {
            version: bytes[4],
            isutcnt: count(0),
            isstdcnt: count(1),
            leapcnt: count(2),
            timecnt: count(3),
            typecnt: count(4),
            charcnt: count(5),
        };
        // Real files hold a few thousand entries; anything larger is damage.
        let counts = [
            header.isutcnt,
            header.isstdcnt,
            header.leapcnt,
            header.timecnt,
            header.typecnt,
            header.charcnt,
        ];
        if counts.iter().any(|c| *c > 1 << 16) || header.typecnt == 0 {
            return Err("implausible TZif header".into());
        }
        Ok(header)
    }

    /// The length of the version 1 data block (32-bit times).
    fn v1_len(&self) -> usize {
        self.timecnt * 5
            + self.typecnt * 6
            + self.charcnt
            + self.leapcnt * 8
            + self.isstdcnt
            + self.isutcnt
    }

    /// The length of the version 2 data block (64-bit times).
    fn v2_len(&self) -> usize {
        self.timecnt * 9
            + self.typecnt * 6
            + self.charcnt
            + self.leapcnt * 12
            + self.isstdcnt
            + self.isutcnt
    }
}

impl PosixRule {
    /// Parses the rules the usual zones use: names (alphabetic or `<...>`),
    /// offsets, and `Mm.w.d[/time]` changes. `None` for anything else, and
    /// the last transition's offset then holds.
    fn parse(text: &str) -> Option<PosixRule> {
        let mut rest = text;
        skip_name(&mut rest)?;
        let std = -posix_seconds(&mut rest)?;
        if rest.is_empty() {
            return Some(PosixRule { std, dst: None });
        }
        skip_name(&mut rest)?;
        let dst_offset = if rest.starts_with(',') {
            std + 3600
        } else {
            -posix_seconds(&mut rest)?
        };
        let mut changes = rest.strip_prefix(',')?.split(',');
        let start = ChangeAt::parse(changes.next()?)?;
        let end = ChangeAt::parse(changes.next()?)?;
        Some(PosixRule {
            std,
            dst: Some((dst_offset, start, end)),
        })
    }

    fn offset_at(&self, t: i64) -> i32 {
        let Some((dst, start, end)) = self.dst else {
            return self.std;
        };
        let (year, _, _) = civil_from_days((t + i64::from(self.std)).div_euclid(86_400));
        // The change to daylight time happens at standard time, the change
        // back at daylight time.
        let starts = start.local(year) - i64::from(self.std);
        let ends = end.local(year) - i64::from(dst);
        let daylight = if starts < ends {
            starts <= t && t < ends
        } else {
            // Southern hemisphere: daylight time spans the new year.
            !(ends <= t && t < starts)
        };
        if daylight {
            dst
        } else {
            self.std
        }
    }
}

/// Skips a zone abbreviation: letters, or anything between `<` and `>`.
fn skip_name(rest: &mut &str) -> Option<()> {
    let len = if let Some(inner) = rest.strip_prefix('<') {
        inner.find('>')? + 2
    } else {
        rest.find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len())
    };
    (len >= 3).then(|| *rest = &rest[len..])
}

/// `[+-]hh[:mm[:ss]]` in seconds, as POSIX writes them (west positive).
fn posix_seconds(rest: &mut &str) -> Option<i32> {
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || "+-:".contains(c)))
        .unwrap_or(rest.len());
    let (text, tail) = rest.split_at(end);
    *rest = tail;
    let (sign, digits) = match text.as_bytes().first()? {
        b'-' => (-1, &text[1..]),
        b'+' => (1, &text[1..]),
        _ => (1, text),
    };
    let mut secs = 0;
    for (i, part) in digits.split(':').enumerate() {
        let n: i32 = part.parse().ok()?;
        secs += n * [3600, 60, 1].get(i)?;
    }
    (secs <= 167 * 3600).then_some(sign * secs)
}

impl ChangeAt {
    /// `Mm.w.d[/time]`.
    fn parse(text: &str) -> Option<ChangeAt> {
        let (date, time) = match text.split_once('/') {
            Some((d, t)) => (d, t),
            None => (text, "2"),
        };
        let mut parts = date.strip_prefix('M')?.split('.');
        let mut next = || parts.next()?.parse::<i64>().ok();
        let (month, week, weekday) = (next()?, next()?, next()?);
        let mut time_text = time;
        let time = i64::from(posix_seconds(&mut time_text)?);
        let valid = (1..=12).contains(&month) && (1..=5).contains(&week) && weekday <= 6;
        (valid && weekday >= 0 && time_text.is_empty()).then_some(ChangeAt {
            month,
            week,
            weekday,
            time,
        })
    }

    /// This year's change, as local seconds (Unix seconds as if local were UTC).
    fn local(&self, year: i64) -> i64 {
        let first = days_from_civil(year, self.month, 1);
        let first_weekday = weekday(first);
        let mut day = 1 + (self.weekday - first_weekday).rem_euclid(7) + (self.week - 1) * 7;
        let len = month_length(year, self.month);
        while day > len {
            day -= 7;
        }
        (first + day - 1) * 86_400 + self.time
    }
}

/// The weekday (0 Sunday) of a day counted from 1970-01-01, a Thursday.
pub fn weekday(days: i64) -> i64 {
    (days + 4).rem_euclid(7)
}

/// The number of days of `month` in `year`.
pub fn month_length(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix seconds of a UTC date and time.
    fn utc(y: i64, mo: i64, d: i64, h: i64, mi: i64) -> i64 {
        days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60
    }

    #[test]
    fn fixed_offsets_are_read_in_their_usual_forms() {
        for (name, offset) in [
            ("UTC", 0),
            ("z", 0),
            ("Etc/UTC", 0),
            ("+05:30", 19_800),
            ("-08:00", -28_800),
            ("UTC+2", 7200),
            ("GMT-0330", -12_600),
        ] {
            assert_eq!(Zone::resolve(name), Ok(Zone::Fixed(offset)), "{name}");
        }
        for bad in [
            "+25:00",
            "+5:75",
            "UTC+",
            "../etc/passwd",
            "/etc/localtime",
            "",
        ] {
            assert!(Zone::resolve(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn posix_rules_give_the_offset_of_either_hemisphere() {
        let berlin = PosixRule::parse("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        // 2030: summer time from 31 March 01:00 UTC to 27 October 01:00 UTC.
        assert_eq!(berlin.offset_at(utc(2030, 3, 31, 0, 59)), 3600);
        assert_eq!(berlin.offset_at(utc(2030, 3, 31, 1, 0)), 7200);
        assert_eq!(berlin.offset_at(utc(2030, 10, 27, 0, 59)), 7200);
        assert_eq!(berlin.offset_at(utc(2030, 10, 27, 1, 0)), 3600);
        let sydney = PosixRule::parse("AEST-10AEDT,M10.1.0,M4.1.0/3").unwrap();
        assert_eq!(sydney.offset_at(utc(2030, 1, 15, 0, 0)), 39_600);
        assert_eq!(sydney.offset_at(utc(2030, 7, 15, 0, 0)), 36_000);
        let tehran = PosixRule::parse("<+0330>-3:30").unwrap();
        assert_eq!(tehran.offset_at(0), 12_600);
        assert_eq!(PosixRule::parse("J60,garbage"), None);
    }

    #[test]
    fn gaps_resolve_to_their_end_and_repeats_to_their_first_time() {
        let ny = Zone::Rules(Box::new(Tzif {
            transitions: Vec::new(),
            initial: -18_000,
            rule: PosixRule::parse("EST5EDT,M3.2.0,M11.1.0"),
        }));
        // 2030-03-10 02:30 does not exist in New York: 03:00 EDT = 07:00Z.
        let local = utc(2030, 3, 10, 2, 30);
        assert_eq!(ny.instant_of(local), utc(2030, 3, 10, 7, 0));
        // 2030-11-03 01:30 happens twice: first in EDT (05:30Z).
        assert_eq!(
            ny.instant_of(utc(2030, 11, 3, 1, 30)),
            utc(2030, 11, 3, 5, 30)
        );
        assert_eq!(
            ny.instant_of(utc(2030, 7, 1, 12, 0)),
            utc(2030, 7, 1, 16, 0)
        );
    }

    #[test]
    fn month_lengths_and_weekdays() {
        assert_eq!(month_length(2024, 2), 29);
        assert_eq!(month_length(2100, 2), 28);
        assert_eq!(month_length(2000, 2), 29);
        assert_eq!(month_length(2025, 4), 30);
        assert_eq!(weekday(days_from_civil(2025, 11, 9)), 0, "a Sunday");
    }
}
