//! Schedules: the `schedules` section of the config file read into
//! [`Schedule`]s, and when each fires. A slot is a Unix second; the firing
//! of a slot is the task `<name>@<slot time>`, an id that every worker with
//! the same configuration computes alike. `cron` finds wall-clock minutes,
//! `zone` turns them into instants.

pub(crate) mod cron;
pub(crate) mod zone;

use std::time::Duration;

use serde_json::{Map, Value};

use self::cron::Cron;
use self::zone::Zone;
use crate::config::units;
use crate::error::Error;
use crate::handlers::Registry;
use crate::task::{EnqueueRequest, Priority};

/// The shortest `every`: a schedule is not a busy loop.
const MIN_EVERY: Duration = Duration::from_secs(1);

/// When a schedule fires.
#[derive(Debug, Clone, PartialEq)]
pub enum When {
    /// A cron expression (as written, and parsed) in the schedule's zone.
    Cron(String, Cron),
    /// Every so many seconds, counted from the Unix epoch so that every
    /// worker finds the same slots.
    Every(u64),
}

/// What to do about slots missed while no worker ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// Skip them.
    None,
    /// Fire the latest one of them, once.
    Last,
}

/// One entry of the `schedules` section.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// Its name: the key in the section, and the first part of each task id.
    pub name: String,
    /// When it fires.
    pub when: When,
    /// The task type enqueued.
    pub task_type: String,
    /// The task parameters.
    pub parameters: Value,
    /// The task priority, when given.
    pub priority: Option<Priority>,
    /// The zone its cron expression is read in, as written.
    pub timezone: String,
    /// That zone.
    pub zone: Zone,
    /// What to do about missed slots.
    pub catch_up: CatchUp,
    /// The largest delay added to a firing.
    pub jitter: Duration,
    /// How long after its slot a firing may still start (`expires_after`):
    /// the enqueued task carries `expires_at`, and a firing that cannot
    /// start by then is a miss.
    pub expires_after: Option<Duration>,
}

/// Reads the `schedules` section. A bad entry is a configuration error
/// naming the schedule and the field.
pub fn from_config(section: &Map<String, Value>) -> Result<Vec<Schedule>, Error> {
    section
        .iter()
        .map(|(name, spec)| Schedule::from_config(name, spec))
        .collect()
}

/// The schedules of the config's `schedules` section, each checked, and
/// each with a handler for its type in `registry`: what `run` and
/// `check-config` both require.
pub fn runnable(section: &Map<String, Value>, registry: &Registry) -> Result<Vec<Schedule>, Error> {
    let schedules = from_config(section)?;
    check_handlers(&schedules, registry)?;
    Ok(schedules)
}

/// Checks that every schedule's type has a handler in `registry`.
fn check_handlers(schedules: &[Schedule], registry: &Registry) -> Result<(), Error> {
    for s in schedules {
        if registry.get(&s.task_type).is_none() {
            return Err(Error::config(
                format!("schedules.{}.type", s.name),
                format!(
                    "no handler for task type {:?}; add it to \"handlers\"",
                    s.task_type
                ),
            ));
        }
    }
    Ok(())
}

impl Schedule {
    /// Reads one schedule.
    pub fn from_config(name: &str, spec: &Value) -> Result<Schedule, Error> {
        let key = |field: &str| format!("schedules.{name}.{field}");
        let bad = |field: &str, problem: String| Error::config(key(field), problem);
        if name.is_empty() || name.contains('@') || name.chars().any(char::is_control) {
            return Err(Error::config(
                format!("schedules.{name:?}"),
                "a schedule's name must be non-empty, without `@` or control characters",
            ));
        }
        let Some(obj) = spec.as_object() else {
            return Err(Error::config(
                format!("schedules.{name}"),
                "must be an object with \"cron\" or \"every\", and \"type\"",
            ));
        };
        const FIELDS: [&str; 9] = [
            "cron",
            "every",
            "type",
            "parameters",
            "timezone",
            "catch_up",
            "jitter",
            "priority",
            "expires_after",
        ];
        for field in obj.keys() {
            if !FIELDS.contains(&field.as_str()) {
                let hint = crate::config::suggest::did_you_mean(field, FIELDS.iter().copied());
                return Err(bad(field, format!("unknown field{hint}")));
            }
        }
        let text = |field: &str| -> Result<Option<&str>, Error> {
            match obj.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(other) => Err(bad(field, format!("{other} is not a string"))),
            }
        };
        let when = match (text("cron")?, obj.get("every")) {
            (Some(expr), None) => When::Cron(
                expr.to_string(),
                Cron::parse(expr).map_err(|e| bad("cron", format!("{expr:?}: {e}")))?,
            ),
            (None, Some(every)) => {
                let d = units::duration_from_json(every).map_err(|e| bad("every", e))?;
                if d < MIN_EVERY || d.subsec_nanos() != 0 {
                    return Err(bad(
                        "every",
                        format!("{every} must be a whole number of seconds, at least 1s"),
                    ));
                }
                When::Every(d.as_secs())
            }
            (Some(_), Some(_)) => {
                return Err(Error::config(
                    format!("schedules.{name}"),
                    "has both \"cron\" and \"every\"; keep one",
                ))
            }
            (None, None) => {
                return Err(Error::config(
                    format!("schedules.{name}"),
                    "needs \"cron\" (such as \"0 3 * * *\") or \"every\" (such as \"15m\")",
                ))
            }
        };
        let task_type = text("type")?
            .filter(|t| !t.is_empty())
            .ok_or_else(|| bad("type", "is required: the task type to enqueue".into()))?
            .to_string();
        let timezone = text("timezone")?.unwrap_or("UTC").to_string();
        let zone = Zone::resolve(&timezone).map_err(|e| bad("timezone", e))?;
        let catch_up = match text("catch_up")?.unwrap_or("none") {
            "none" => CatchUp::None,
            "last" => CatchUp::Last,
            other => {
                return Err(bad(
                    "catch_up",
                    format!("{other:?}: use \"none\" or \"last\""),
                ))
            }
        };
        let jitter = match obj.get("jitter") {
            None | Some(Value::Null) => Duration::ZERO,
            Some(v) => units::duration_from_json(v).map_err(|e| bad("jitter", e))?,
        };
        let expires_after = match obj.get("expires_after") {
            None | Some(Value::Null) => None,
            Some(v) => match units::duration_from_json(v).map_err(|e| bad("expires_after", e))? {
                d if d.is_zero() => {
                    return Err(bad("expires_after", format!("{v} must be more than 0")))
                }
                d => Some(d),
            },
        };
        let priority = match text("priority")? {
            None => None,
            Some(p) => Some(
                Priority::parse(p)
                    .ok_or_else(|| bad("priority", format!("{p:?}: use high, medium or low")))?,
            ),
        };
        let schedule = Schedule {
            name: name.to_string(),
            when,
            task_type,
            parameters: obj
                .get("parameters")
                .cloned()
                .unwrap_or(Value::Object(Map::new())),
            priority,
            timezone,
            zone,
            catch_up,
            jitter,
            expires_after,
        };
        if let When::Every(period) = schedule.when {
            if schedule.jitter.as_secs() >= period {
                return Err(bad("jitter", "must be shorter than \"every\"".into()));
            }
        }
        Ok(schedule)
    }

    /// The first slot strictly after `t` (Unix seconds), if there is one
    /// within the search horizon of a cron expression.
    pub fn next_after(&self, t: i64) -> Option<i64> {
        match &self.when {
            When::Every(period) => {
                let period = i64::try_from(*period).ok()?;
                Some((t.div_euclid(period) + 1) * period)
            }
            When::Cron(_, cron) => {
                // Each matching wall-clock minute, as an instant; the first
                // after `t`. Skipped times (a DST gap) all land on the gap's
                // end, and so fire once; a repeated time is its first
                // instant, which lies before `t` while it repeats.
                let local = t + i64::from(self.zone.offset_at(t));
                cron.minutes_from(local - 86_400)
                    .map(|m| self.zone.instant_of(m))
                    .find(|instant| *instant > t)
            }
        }
    }

    /// The latest slot in `(after, now]`, if any: the one to catch up.
    pub fn last_between(&self, after: i64, now: i64) -> Option<i64> {
        // Look back over growing windows, so that a schedule firing every
        // minute does not walk a year of minutes.
        for window in [3600, 86_400, 32 * 86_400, 367 * 86_400, 9 * 367 * 86_400] {
            let from = after.max(now - window);
            let mut last = None;
            let mut t = from;
            while let Some(slot) = self.next_after(t).filter(|s| *s <= now) {
                last = Some(slot);
                t = slot;
            }
            if last.is_some() || from == after {
                return last;
            }
        }
        None
    }

    /// The task id of a slot: `<name>@<slot time>`.
    pub fn task_id(&self, slot: i64) -> String {
        format!("{}@{}", self.name, slot_time(slot))
    }

    /// The delay of a slot's firing: the same on every worker (derived from
    /// the id, not drawn at random), spread over `[0, jitter)`.
    pub fn delay_of(&self, slot: i64) -> Duration {
        let span = crate::bounded::millis(self.jitter);
        if span == 0 {
            return Duration::ZERO;
        }
        // FNV-1a: small, stable, and good enough to spread firings.
        let hash = self
            .task_id(slot)
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        Duration::from_millis(hash % span)
    }

    /// The instant (Unix ms) after which the firing of `slot` may no longer
    /// start: the slot plus `expires_after`; `None` without it.
    pub fn expires_ms(&self, slot: i64) -> Option<i64> {
        let after = i64::try_from(self.expires_after?.as_millis()).unwrap_or(i64::MAX);
        Some(slot.saturating_mul(1000).saturating_add(after))
    }

    /// When the firing of `slot` is due (Unix ms): the slot plus its jitter.
    pub fn fires_ms(&self, slot: i64) -> i64 {
        let delay = i64::try_from(self.delay_of(slot).as_millis()).unwrap_or(0);
        slot.saturating_mul(1000).saturating_add(delay)
    }

    /// The request that enqueues a slot's firing at `now_ms` (Unix ms): with
    /// `run_at` when its firing time lies ahead, and `expires_at` with
    /// `expires_after`.
    pub fn request(&self, slot: i64, now_ms: i64) -> EnqueueRequest {
        let fires_ms = self.fires_ms(slot);
        let time = |ms: i64| {
            let since = Duration::from_millis(u64::try_from(ms).unwrap_or(0));
            let at = std::time::UNIX_EPOCH.checked_add(since);
            crate::timestamp::format(at.unwrap_or(std::time::UNIX_EPOCH))
        };
        EnqueueRequest {
            task_type: self.task_type.clone(),
            parameters: Some(self.parameters.clone()),
            priority: self.priority,
            id: Some(self.task_id(slot)),
            run_at: (fires_ms > now_ms).then(|| time(fires_ms)),
            expires_at: self.expires_ms(slot).map(time),
            ..EnqueueRequest::default()
        }
    }

    /// `cron "0 3 * * *" in UTC` or `every 900s`, for people.
    pub fn describe(&self) -> String {
        match &self.when {
            When::Cron(expr, _) => format!("cron {expr:?} in {}", self.timezone),
            When::Every(secs) => format!("every {secs}s"),
        }
    }

    /// A slot as local time in the schedule's zone, with its offset
    /// (`2025-11-10T03:00:00-05:00`).
    pub fn local_time(&self, slot: i64) -> String {
        let offset = self.zone.offset_at(slot);
        let (y, mo, d, h, mi, s) = civil(slot + i64::from(offset));
        let zone = match offset {
            0 => "Z".to_string(),
            o => format!(
                "{}{:02}:{:02}",
                if o < 0 { '-' } else { '+' },
                o.unsigned_abs() / 3600,
                o.unsigned_abs() % 3600 / 60
            ),
        };
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{zone}")
    }
}

/// A slot as RFC 3339 UTC to the second (`2025-11-10T03:00:00Z`).
pub fn slot_time(slot: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(slot);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// A slot from its RFC 3339 form.
pub fn parse_slot(text: &str) -> Option<i64> {
    let t = crate::timestamp::parse(text)?;
    i64::try_from(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs()).ok()
}

fn civil(t: i64) -> (i64, i64, i64, i64, i64, i64) {
    let (y, mo, d) = crate::timestamp::civil_from_days(t.div_euclid(86_400));
    let rem = t.rem_euclid(86_400);
    (y, mo, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::cron::at;
    use super::*;
    use serde_json::json;

    fn schedule(spec: Value) -> Schedule {
        Schedule::from_config("s", &spec).unwrap()
    }

    fn err(spec: Value) -> String {
        Schedule::from_config("s", &spec).unwrap_err().to_string()
    }

    #[test]
    fn a_slot_ahead_is_enqueued_with_run_at_and_expires_after_sets_expires_at() {
        let slot = at(2025, 11, 9, 15, 15);
        let plain = schedule(json!({"every": "15m", "type": "t"}));
        let req = plain.request(slot, slot * 1000);
        assert_eq!(
            (req.run_at, req.expires_at),
            (None, None),
            "due now: no run_at"
        );
        let req = plain.request(slot, slot * 1000 - 2000);
        assert_eq!(req.run_at.as_deref(), Some("2025-11-09T15:15:00.000Z"));
        let expiring = schedule(json!({"every": "15m", "type": "t", "expires_after": "10m"}));
        assert_eq!(expiring.expires_after, Some(Duration::from_secs(600)));
        assert_eq!(expiring.expires_ms(slot), Some((slot + 600) * 1000));
        let req = expiring.request(slot, slot * 1000 + 5000);
        assert_eq!(req.run_at, None);
        assert_eq!(req.expires_at.as_deref(), Some("2025-11-09T15:25:00.000Z"));
        assert!(err(json!({"every": "1m", "type": "t", "expires_after": 0}))
            .contains("schedules.s.expires_after"));
        assert!(
            err(json!({"every": "1m", "type": "t", "expires_after": "soon"}))
                .contains("schedules.s.expires_after")
        );
    }

    #[test]
    fn every_counts_from_the_epoch() {
        let s = schedule(json!({"every": "15m", "type": "t"}));
        assert_eq!(
            s.next_after(at(2025, 11, 9, 15, 7)),
            Some(at(2025, 11, 9, 15, 15))
        );
        assert_eq!(
            s.next_after(at(2025, 11, 9, 15, 15)),
            Some(at(2025, 11, 9, 15, 30))
        );
        assert_eq!(s.task_id(at(2025, 11, 9, 15, 15)), "s@2025-11-09T15:15:00Z");
        assert_eq!(
            parse_slot("2025-11-09T15:15:00Z"),
            Some(at(2025, 11, 9, 15, 15))
        );
        let s = schedule(json!({"every": 1, "type": "t"}));
        assert_eq!(s.next_after(100), Some(101));
    }

    #[test]
    fn cron_slots_in_a_fixed_offset() {
        let s = schedule(json!({"cron": "0 3 * * *", "type": "t", "timezone": "+02:00"}));
        assert_eq!(
            s.next_after(at(2025, 11, 9, 15, 7)),
            Some(at(2025, 11, 10, 1, 0))
        );
        assert_eq!(
            s.local_time(at(2025, 11, 10, 1, 0)),
            "2025-11-10T03:00:00+02:00"
        );
    }

    /// The first slots of the cron expression `expr` in the IANA zone `tz`
    /// after `from` are `expected`; skipped (and says so) when this system
    /// has no zoneinfo for `tz`.
    fn zoned_slots(tz: &str, expr: &str, from: i64, expected: &[i64]) {
        if !std::path::Path::new(zone::ZONEINFO).join(tz).is_file() {
            eprintln!("skipped: no {tz} under {}", zone::ZONEINFO);
            return;
        }
        let s = schedule(json!({"cron": expr, "type": "t", "timezone": tz}));
        let got: Vec<i64> = std::iter::successors(s.next_after(from), |t| s.next_after(*t))
            .take(expected.len())
            .collect();
        assert_eq!(got, expected, "{expr} in {tz} after {}", slot_time(from));
    }

    #[test]
    fn dst_gaps_and_repeats_fire_once() {
        let (ny, berlin) = ("America/New_York", "Europe/Berlin");
        let mut cases = Vec::new();
        // 2030-03-10 02:00 EST jumps to 03:00 EDT (07:00Z); 2045 is past
        // the file's transitions, where its footer rule applies.
        for (year, sunday) in [(2030, 10), (2045, 12)] {
            let day = |d, h, m| at(year, 3, d, h, m);
            let after = [
                day(sunday - 1, 7, 30),
                day(sunday, 7, 0),
                day(sunday + 1, 6, 30),
            ];
            cases.push((ny, "30 2 * * *", day(sunday - 1, 0, 0), after.to_vec()));
            // Four slots in the gap fire once, at its end.
            let after = vec![day(sunday, 7, 0), day(sunday + 1, 6, 0)];
            cases.push((ny, "*/15 2 * * *", day(sunday, 0, 0), after));
        }
        // 2030-03-31 02:00 CET jumps to 03:00 CEST (01:00Z).
        let gap = vec![
            at(2030, 3, 31, 1, 0),
            at(2030, 4, 1, 0, 0),
            at(2030, 4, 1, 0, 30),
        ];
        cases.push((berlin, "0,30 2 * * *", at(2030, 3, 30, 12, 0), gap));
        // 2030-11-03 01:00-02:00 happens twice in New York: EDT, then EST;
        // a worker started during the second time does not fire it again.
        let twice = vec![at(2030, 11, 3, 5, 30), at(2030, 11, 4, 6, 30)];
        cases.push((ny, "30 1 * * *", at(2030, 11, 2, 12, 0), twice.clone()));
        cases.push((
            ny,
            "30 1 * * *",
            at(2030, 11, 3, 6, 10),
            twice[1..].to_vec(),
        ));
        // 2030-10-27 03:00 CEST falls back to 02:00 CET: 02:00 and 02:30 once each.
        let fall = vec![
            at(2030, 10, 27, 0, 0),
            at(2030, 10, 27, 0, 30),
            at(2030, 10, 28, 1, 0),
        ];
        cases.push((berlin, "0,30 2 * * *", at(2030, 10, 26, 12, 0), fall));
        for (tz, expr, from, expected) in cases {
            zoned_slots(tz, expr, from, &expected);
        }
    }

    #[test]
    fn local_time_shows_the_offset_in_force() {
        let s = schedule(json!({"every": "1m", "type": "t", "timezone": "-05:00"}));
        assert_eq!(
            s.local_time(at(2030, 3, 31, 1, 0)),
            "2030-03-30T20:00:00-05:00"
        );
    }

    #[test]
    fn catch_up_finds_the_latest_missed_slot() {
        let s = schedule(json!({"cron": "*/5 * * * *", "type": "t", "catch_up": "last"}));
        let down = at(2025, 11, 9, 15, 0);
        assert_eq!(s.last_between(down, at(2025, 11, 9, 15, 2)), None);
        assert_eq!(
            s.last_between(down, at(2025, 11, 9, 15, 17)),
            Some(at(2025, 11, 9, 15, 15))
        );
        assert_eq!(
            s.last_between(down, at(2025, 12, 24, 8, 3)),
            Some(at(2025, 12, 24, 8, 0))
        );
        let daily = schedule(json!({"cron": "0 3 * * *", "type": "t"}));
        assert_eq!(
            daily.last_between(at(2024, 1, 1, 0, 0), at(2025, 11, 9, 2, 0)),
            Some(at(2025, 11, 8, 3, 0))
        );
    }

    #[test]
    fn jitter_is_the_same_everywhere_and_within_bounds() {
        let s = schedule(json!({"every": "1m", "type": "t", "jitter": "30s"}));
        let delays: Vec<Duration> = (0..50).map(|i| s.delay_of(i * 60)).collect();
        assert!(delays.iter().all(|d| *d < Duration::from_secs(30)));
        assert!(delays.iter().any(|d| *d != delays[0]), "spread");
        assert_eq!(
            s.delay_of(60),
            schedule(json!({"every": "1m", "type": "t", "jitter": "30s"})).delay_of(60)
        );
    }

    #[test]
    fn bad_schedules_name_the_schedule_and_the_field() {
        for (spec, named) in [
            (
                json!({"cron": "0 25 * * *", "type": "t"}),
                "schedules.s.cron",
            ),
            (json!({"every": "0s", "type": "t"}), "schedules.s.every"),
            (json!({"every": "soon", "type": "t"}), "schedules.s.every"),
            (json!({"every": "1m"}), "schedules.s.type"),
            (
                json!({"every": "1m", "type": "t", "timezone": "Mars/Olympus"}),
                "schedules.s.timezone",
            ),
            (
                json!({"every": "1m", "type": "t", "catch_up": "all"}),
                "schedules.s.catch_up",
            ),
            (
                json!({"every": "1m", "type": "t", "jitter": "2m"}),
                "schedules.s.jitter",
            ),
            (
                json!({"every": "1m", "type": "t", "priority": "urgent"}),
                "schedules.s.priority",
            ),
            (
                json!({"every": "1m", "type": "t", "cronn": "x"}),
                "schedules.s.cronn",
            ),
            (json!({"type": "t"}), "schedules.s"),
            (
                json!({"cron": "@daily", "every": "1m", "type": "t"}),
                "schedules.s",
            ),
        ] {
            let e = err(spec.clone());
            assert!(e.contains(named), "{spec}: {e}");
        }
        assert!(err(json!({"cron": "0 25 * * *", "type": "t"})).contains("hour field"));
        assert!(
            err(json!({"every": "1m", "type": "t", "cronn": "x"})).contains("did you mean cron?")
        );
        let e = Schedule::from_config("s", &json!({"cron": "x", "type": "t"})).unwrap_err();
        assert_eq!(e.exit_code(), 78);
    }

    #[test]
    fn a_type_without_a_handler_is_an_error_naming_the_schedule() {
        let s = vec![schedule(json!({"every": "1m", "type": "report"}))];
        let err = check_handlers(&s, &Registry::new()).unwrap_err();
        assert!(err.to_string().contains("schedules.s.type"), "{err}");
        assert_eq!(err.exit_code(), 78);
    }
}
