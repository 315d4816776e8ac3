//! Durations (`30`, `500ms`, `30s`, `5m`, `1h`) and sizes (`1048576`, `64K`, `512M`, `1G`)
//! as the configuration writes them.

use std::time::Duration;

/// The longest duration a configuration may write (about 31 years).
const MAX_DURATION: Duration = Duration::from_secs(1_000_000_000);

/// `secs` as a duration when it is 0 or a finite number up to [`MAX_DURATION`].
fn seconds(secs: f64) -> Option<Duration> {
    if secs == 0.0 {
        Some(Duration::ZERO)
    } else {
        crate::bounded::seconds_within(secs, MAX_DURATION)
    }
}

/// Parses a duration: bare numbers are seconds, as the seed writes them.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (write 30, 500ms, 30s, 5m or 1h)"))?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "{text:?} has an unknown unit {other:?} (use ms, s, m or h)"
            ))
        }
    };
    seconds(value * scale).ok_or_else(|| format!("{text:?} is too long"))
}

/// Parses a size in bytes: a number with an optional `K`, `M` or `G` (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size (write 1048576, 64K, 512M or 1G)"))?;
    let scale: u64 = match unit
        .trim()
        .trim_end_matches(['B', 'b'])
        .trim_end_matches(['i'])
    {
        "" => 1,
        "K" | "k" => 1 << 10,
        "M" | "m" => 1 << 20,
        "G" | "g" => 1 << 30,
        other => {
            return Err(format!(
                "{text:?} has an unknown unit {other:?} (use K, M or G)"
            ))
        }
    };
    value
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Reads a duration from JSON: a number of seconds or a string with a unit.
pub fn duration_from_json(v: &serde_json::Value) -> Result<Duration, String> {
    match v {
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(secs) => seconds(secs).ok_or_else(|| format!("{n} is not a duration")),
            None => Err(format!("{n} is not a duration")),
        },
        serde_json::Value::String(s) => parse_duration(s),
        other => Err(format!("{other} is not a duration")),
    }
}

/// Reads a size from JSON: a number of bytes or a string with a unit.
pub fn size_from_json(v: &serde_json::Value) -> Result<u64, String> {
    match v {
        serde_json::Value::Number(n) => n.as_u64().ok_or_else(|| format!("{n} is not a size")),
        serde_json::Value::String(s) => parse_size(s),
        other => Err(format!("{other} is not a size")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        for bad in ["", "-1", "abc", "5 weeks", "1e400"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("2MiB"), Ok(2 << 20));
        for bad in ["", "12X", "-5", "99999999999999999999G"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_forms() {
        assert_eq!(
            duration_from_json(&serde_json::json!(2)),
            Ok(Duration::from_secs(2))
        );
        assert_eq!(
            duration_from_json(&serde_json::json!("2m")),
            Ok(Duration::from_secs(120))
        );
        assert!(duration_from_json(&serde_json::json!(true)).is_err());
        assert_eq!(size_from_json(&serde_json::json!("1K")), Ok(1024));
    }
}
