//! Five-field cron expressions (`minute hour day-of-month month
//! day-of-week`, with lists, ranges, steps and names) and the `@hourly`,
//! `@daily`, `@weekly`, `@monthly`, `@yearly` shorthands: parsing, and the
//! next matching wall-clock minute.

use crate::schedule::zone::{month_length, weekday};
use crate::timestamp::civil_from_days;
#[cfg(test)]
use crate::timestamp::days_from_civil;

/// How far ahead a match is looked for: past the longest gap between two
/// 29ths of February (eight years, across 2100).
const SEARCH_DAYS: i64 = 9 * 366;

/// A parsed cron expression: the allowed values of each field as bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Whether day-of-month and day-of-week are both restricted (neither
    /// starts with `*`): then a day matches when either does, as in every
    /// cron since Vixie's.
    either_day: bool,
}

/// A field of a bad expression, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronError {
    /// `minute`, `hour`, `day-of-month`, `month`, `day-of-week`, or
    /// `expression` for the whole.
    pub field: &'static str,
    /// What is wrong.
    pub problem: String,
}

impl std::fmt::Display for CronError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} field: {}", self.field, self.problem)
    }
}

/// One field's name, range and value names.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
    },
    Field {
        name: "day-of-month",
        min: 1,
        max: 31,
        names: &[],
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: &[
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ],
    },
    Field {
        name: "day-of-week",
        min: 0,
        // 7 is Sunday too.
        max: 7,
        names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    },
];

impl Cron {
    /// Parses an expression; the error names the field that is wrong.
    pub fn parse(text: &str) -> Result<Cron, CronError> {
        let text = text.trim();
        let expanded = match text.to_ascii_lowercase().as_str() {
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            "@yearly" | "@annually" => "0 0 1 1 *",
            s if s.starts_with('@') => {
                return Err(CronError {
                    field: "expression",
                    problem: format!(
                        "unknown shorthand {text:?} (use @hourly, @daily, @weekly, @monthly or @yearly)"
                    ),
                })
            }
            _ => text,
        };
        let parts: Vec<&str> = expanded.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(CronError {
                field: "expression",
                problem: format!(
                    "{text:?} has {} fields; cron has five: minute hour day-of-month month day-of-week",
                    parts.len()
                ),
            });
        }
        let mut bits = [0u64; 5];
        for (i, (part, field)) in parts.iter().zip(&FIELDS).enumerate() {
            bits[i] = parse_field(part, field).map_err(|problem| CronError {
                field: field.name,
                problem,
            })?;
        }
        // Sunday is 0 and 7.
        if bits[4] & (1 << 7) != 0 {
            bits[4] = (bits[4] | 1) & !(1 << 7);
        }
        let cron = Cron {
            minutes: bits[0],
            hours: bits[1],
            days: bits[2],
            months: bits[3],
            weekdays: bits[4],
            either_day: !parts[2].starts_with('*') && !parts[4].starts_with('*'),
        };
        cron.check_some_day_exists()?;
        Ok(cron)
    }

    /// An expression such as `0 0 30 2 *` names no day that exists.
    fn check_some_day_exists(&self) -> Result<(), CronError> {
        if self.either_day {
            return Ok(());
        }
        let exists = (1..=12).any(|m| {
            self.months & (1 << m) != 0
                && (1..=month_length(2000, m)).any(|d| self.days & (1 << d) != 0)
        });
        if exists {
            Ok(())
        } else {
            Err(CronError {
                field: "day-of-month",
                problem: "no month chosen has such a day, so it would never fire".into(),
            })
        }
    }

    /// Whether the day `days` (counted from 1970-01-01) matches.
    fn day_matches(&self, days: i64) -> bool {
        let (_, m, d) = civil_from_days(days);
        if self.months & (1 << m) == 0 {
            return false;
        }
        let by_date = self.days & (1 << d) != 0;
        let by_weekday = self.weekdays & (1 << weekday(days)) != 0;
        if self.either_day {
            by_date || by_weekday
        } else {
            by_date && by_weekday
        }
    }

    /// The matching wall-clock minutes from the day of `local` on, as local
    /// seconds (Unix seconds as if local time were UTC), in order; at least
    /// those after `local` within the search horizon.
    pub fn minutes_from(&self, local: i64) -> impl Iterator<Item = i64> + '_ {
        let first_day = local.div_euclid(86_400);
        (first_day..first_day + SEARCH_DAYS)
            .filter(|day| self.day_matches(*day))
            .flat_map(move |day| {
                bits_of(self.hours).flat_map(move |h| {
                    bits_of(self.minutes).map(move |m| day * 86_400 + h * 3600 + m * 60)
                })
            })
    }

    /// The first matching minute strictly after `local`, if one comes
    /// within the search horizon.
    #[cfg(test)]
    pub fn next_after(&self, local: i64) -> Option<i64> {
        self.minutes_from(local).find(|t| *t > local)
    }
}

/// The set bits of `bits`, lowest first.
fn bits_of(bits: u64) -> impl Iterator<Item = i64> {
    (0..64).filter(move |i| bits & (1 << i) != 0)
}

/// One field: `*`, `*/step`, `a`, `a-b`, `a-b/step`, `a/step`, and lists of them.
fn parse_field(text: &str, field: &Field) -> Result<u64, String> {
    let mut bits = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .ok()
                    .filter(|s| *s >= 1 && *s <= field.max)
                    .ok_or_else(|| {
                        format!(
                            "step {s:?} in {item:?} is not a number from 1 to {}",
                            field.max
                        )
                    })?;
                (r, step)
            }
            None => (item, 1),
        };
        let (lo, hi) = match range {
            "*" => (field.min, field.max),
            _ => match range.split_once('-') {
                Some((a, b)) => (value(a, field)?, value(b, field)?),
                // `a/step` runs from a to the end of the range.
                None if item.contains('/') => (value(range, field)?, field.max),
                None => {
                    let v = value(range, field)?;
                    (v, v)
                }
            },
        };
        if lo > hi {
            return Err(format!("range {range:?} runs backwards"));
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

/// A number or name within the field's range.
fn value(text: &str, field: &Field) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(i) = field.names.iter().position(|n| *n == lower) {
        let first = if field.min == 1 { 1 } else { 0 };
        return Ok(first + u32::try_from(i).unwrap_or(0));
    }
    match text.parse::<u32>() {
        Ok(v) if (field.min..=field.max).contains(&v) => Ok(v),
        Ok(v) => Err(format!("{v} is out of range {}-{}", field.min, field.max)),
        Err(_) if text.is_empty() => Err("an empty value".into()),
        Err(_) => Err(format!("{text:?} is not a number{}", names_hint(field))),
    }
}

fn names_hint(field: &Field) -> String {
    if field.names.is_empty() {
        String::new()
    } else {
        format!(" or a name ({})", field.names.join(", "))
    }
}

/// Unix seconds of a UTC date and time; for the tests of this module and its neighbours.
#[cfg(test)]
pub(crate) fn at(y: i64, mo: i64, d: i64, h: i64, mi: i64) -> i64 {
    days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(expr: &str, from: i64) -> i64 {
        Cron::parse(expr).unwrap().next_after(from).unwrap()
    }

    fn field_of(expr: &str) -> &'static str {
        Cron::parse(expr).unwrap_err().field
    }

    #[test]
    fn ranges_steps_lists_and_names() {
        let c = Cron::parse("1-5,10,*/20 */6 * jan-mar,DEC mon-fri").unwrap();
        assert_eq!(
            bits_of(c.minutes).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4, 5, 10, 20, 40]
        );
        assert_eq!(bits_of(c.hours).collect::<Vec<_>>(), [0, 6, 12, 18]);
        assert_eq!(bits_of(c.months).collect::<Vec<_>>(), [1, 2, 3, 12]);
        assert_eq!(bits_of(c.weekdays).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
        let c = Cron::parse("5/15 8-18/5 * * 7").unwrap();
        assert_eq!(bits_of(c.minutes).collect::<Vec<_>>(), [5, 20, 35, 50]);
        assert_eq!(bits_of(c.hours).collect::<Vec<_>>(), [8, 13, 18]);
        assert_eq!(bits_of(c.weekdays).collect::<Vec<_>>(), [0], "7 is Sunday");
    }

    #[test]
    fn shorthands_expand() {
        assert_eq!(Cron::parse("@hourly"), Cron::parse("0 * * * *"));
        assert_eq!(Cron::parse("@daily"), Cron::parse("0 0 * * *"));
        assert_eq!(Cron::parse("@weekly"), Cron::parse("0 0 * * 0"));
        assert_eq!(Cron::parse("@monthly"), Cron::parse("0 0 1 * *"));
        assert_eq!(Cron::parse("@YEARLY"), Cron::parse("0 0 1 1 *"));
    }

    #[test]
    fn bad_expressions_name_their_field() {
        assert_eq!(field_of("60 * * * *"), "minute");
        assert_eq!(field_of("* 24 * * *"), "hour");
        assert_eq!(field_of("* * 0 * *"), "day-of-month");
        assert_eq!(field_of("* * * 13 *"), "month");
        assert_eq!(field_of("* * * foo *"), "month");
        assert_eq!(field_of("* * * * 8"), "day-of-week");
        assert_eq!(field_of("*/0 * * * *"), "minute");
        assert_eq!(field_of("5-1 * * * *"), "minute");
        assert_eq!(field_of("1,,2 * * * *"), "minute");
        assert_eq!(field_of("* * * *"), "expression");
        assert_eq!(field_of("@fortnightly"), "expression");
        assert_eq!(field_of("0 0 30 2 *"), "day-of-month");
        assert_eq!(field_of("0 0 31 4,6,9,11 *"), "day-of-month");
        let e = Cron::parse("61 * * * *").unwrap_err();
        assert_eq!(e.to_string(), "minute field: 61 is out of range 0-59");
    }

    #[test]
    fn next_minute_within_an_hour_a_day_and_a_year() {
        let t = at(2025, 11, 9, 15, 7);
        assert_eq!(next("*/15 * * * *", t), at(2025, 11, 9, 15, 15));
        assert_eq!(next("0 3 * * *", t), at(2025, 11, 10, 3, 0));
        assert_eq!(next("0 0 1 1 *", t), at(2026, 1, 1, 0, 0));
        // Strictly after: a matching minute does not match itself.
        assert_eq!(
            next("0 3 * * *", at(2025, 11, 10, 3, 0)),
            at(2025, 11, 11, 3, 0)
        );
        // Seconds within a matching minute count as after it.
        assert_eq!(
            next("* * * * *", at(2025, 11, 9, 15, 7) + 30),
            at(2025, 11, 9, 15, 8)
        );
    }

    #[test]
    fn day_of_month_or_day_of_week_when_both_are_restricted() {
        // The 13th, or any Friday: 2025-11-14 is a Friday, before the 13th of December.
        let t = at(2025, 11, 13, 12, 0);
        assert_eq!(next("0 0 13 * fri", t), at(2025, 11, 14, 0, 0));
        assert_eq!(
            next("0 0 13 * fri", at(2025, 11, 28, 1, 0)),
            at(2025, 12, 5, 0, 0)
        );
        // With a `*` in either, both must match: Friday the 13th only.
        assert_eq!(next("0 0 13 * *", t), at(2025, 12, 13, 0, 0));
        assert_eq!(next("0 0 */1 * fri", t), at(2025, 11, 14, 0, 0));
        assert_eq!(next("0 0 * * fri", t), at(2025, 11, 14, 0, 0));
    }

    #[test]
    fn february_29th_and_month_ends() {
        // (expression, from, next), dates as (y, m, d, h, min).
        let cases = [
            ("0 0 29 2 *", (2025, 3, 1, 0, 0), (2028, 2, 29, 0, 0)),
            // 2100 is no leap year: eight years to the next one.
            ("0 0 29 2 *", (2096, 3, 1, 0, 0), (2104, 2, 29, 0, 0)),
            // The 31st skips the months that lack it.
            ("0 0 31 * *", (2025, 4, 1, 0, 0), (2025, 5, 31, 0, 0)),
            ("0 12 30 * *", (2025, 1, 31, 0, 0), (2025, 3, 30, 12, 0)),
            (
                "59 23 31 12 *",
                (2025, 12, 31, 23, 58),
                (2025, 12, 31, 23, 59),
            ),
            ("0 0 1 * *", (2025, 12, 31, 23, 59), (2026, 1, 1, 0, 0)),
        ];
        for (expr, (y, mo, d, h, mi), (ny, nmo, nd, nh, nmi)) in cases {
            let got = next(expr, at(y, mo, d, h, mi));
            assert_eq!(got, at(ny, nmo, nd, nh, nmi), "{expr}");
        }
    }
}
