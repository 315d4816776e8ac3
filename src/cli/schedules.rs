//! `taskworker schedules`: prints the next firings of each configured
//! schedule, so that an expression can be checked before it is deployed.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::{Args, Config};
use crate::error::Error;
use crate::schedule::{parse_slot, Schedule};

/// The text of `taskworker schedules --help`.
pub const USAGE: &str = "\
taskworker schedules — print the next firings of each schedule

USAGE:
    taskworker schedules [--config FILE] [--count N] [--from TIME]

OPTIONS:
    -c, --config FILE    the JSON config file [env: CONFIG_FILE]
    --count N            how many firings of each schedule [default: 5]
    --from TIME          start after this RFC 3339 time [default: now]
    -h, --help           show this help

Each firing shows as its local time in the schedule's zone and the id of
the task it enqueues (<name>@<slot time in UTC>).
";

/// Runs `taskworker schedules` with `args` (after the command name).
pub fn run(args: Vec<OsString>) -> Result<i32, Error> {
    use lexopt::prelude::*;
    let mut config_args = Args::default();
    let mut count = 5usize;
    let mut from = None;
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("config") | Short('c') => config_args.config_file = Some(parser.value()?.into()),
            Long("count") => {
                let n = parser.value()?.string()?;
                count = n
                    .parse()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| {
                        Error::Usage(format!("--count: expected 1 to 1000, got {n:?}"))
                    })?;
            }
            Long("from") => {
                let t = parser.value()?.string()?;
                from = Some(parse_slot(&t).ok_or_else(|| {
                    Error::Usage(format!("--from: expected an RFC 3339 time, got {t:?}"))
                })?);
            }
            Long("help") | Short('h') => {
                print!("{USAGE}");
                return Ok(0);
            }
            other => return Err(other.unexpected().into()),
        }
    }
    let config = Config::load(&config_args)?;
    let schedules = crate::schedule::from_config(&config.schedules)?;
    if schedules.is_empty() {
        println!("no schedules configured");
        return Ok(0);
    }
    let from = from.unwrap_or_else(|| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(now.as_secs()).unwrap_or(0)
    });
    print!("{}", listing(&schedules, from, count));
    Ok(0)
}

/// The next `count` firings of each schedule after `from` (Unix seconds).
pub fn listing(schedules: &[Schedule], from: i64, count: usize) -> String {
    let mut out = String::new();
    for s in schedules {
        let _ = writeln!(out, "{}: {} → {}", s.name, s.describe(), s.task_type);
        let slots = std::iter::successors(s.next_after(from), |t| s.next_after(*t)).take(count);
        let mut any = false;
        for slot in slots {
            any = true;
            let _ = writeln!(out, "  {}  {}", s.local_time(slot), s.task_id(slot));
        }
        if !any {
            let _ = writeln!(out, "  (no firing within nine years)");
        }
    }
    out
}
