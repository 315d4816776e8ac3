//! Reading a handler's config options; every error names the option's key.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::config::units::{duration_from_json, size_from_json};
use crate::error::Error;
use crate::worker::limits::{Limit, Rate};

/// A handler entry's options object, checked against the options it knows.
pub(crate) struct Options<'a> {
    map: &'a Map<String, Value>,
    key: &'a str,
}

impl<'a> Options<'a> {
    /// Reads `value` as the options of the entry `key`; `known` lists the
    /// option names (the first is the required one, named in the error).
    pub fn new(value: &'a Value, key: &'a str, known: &[&str]) -> Result<Options<'a>, Error> {
        let Some(map) = value.as_object() else {
            return Err(Error::config(
                key,
                format!("must be an object with a {:?} option", known[0]),
            ));
        };
        if let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(Error::config(
                format!("{key}.{unknown}"),
                format!("unknown option (use {})", known.join(", ")),
            ));
        }
        Ok(Options { map, key })
    }

    /// The raw value of option `name`.
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name)
    }

    /// The full key of option `name`, for errors.
    pub fn key(&self, name: &str) -> String {
        format!("{}.{name}", self.key)
    }

    /// A duration option that, when given, is more than 0.
    pub fn duration(&self, name: &str) -> Result<Option<Duration>, Error> {
        self.get(name)
            .map(|v| match duration_from_json(v) {
                Ok(d) if d.is_zero() => Err("must be more than 0".to_string()),
                other => other,
            })
            .transpose()
            .map_err(|p| Error::config(self.key(name), p))
    }

    /// A whole-number option in `0..=max`, when given.
    pub fn count(&self, name: &str, max: u32) -> Result<Option<u32>, Error> {
        self.get(name)
            .map(|v| {
                v.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| *n <= max)
                    .ok_or_else(|| {
                        Error::config(
                            self.key(name),
                            format!("{v} is not a whole number from 0 to {max}"),
                        )
                    })
            })
            .transpose()
    }

    /// A duration option in (0, `max`], when given.
    pub fn duration_up_to(&self, name: &str, max: Duration) -> Result<Option<Duration>, Error> {
        match self.duration(name)? {
            Some(d) if d > max => Err(Error::config(
                self.key(name),
                format!("must be at most {} s", max.as_secs()),
            )),
            other => Ok(other),
        }
    }

    /// A size option that is more than 0; `default` when absent.
    pub fn size(&self, name: &str, default: u64) -> Result<u64, Error> {
        match self.get(name).map(size_from_json) {
            None => Ok(default),
            Some(Ok(n)) if n > 0 => Ok(n),
            Some(Ok(_)) => Err(Error::config(self.key(name), "must be more than 0")),
            Some(Err(p)) => Err(Error::config(self.key(name), p)),
        }
    }
}

/// The options beside a handler's kind that limit its type.
pub(crate) const LIMIT_OPTIONS: [&str; 3] = ["concurrency", "rate", "burst"];

/// Reads the limits of the handler entry `spec` (its `concurrency`, `rate`
/// and `burst`), naming `key.<option>` in any error. A `spec` that is not an
/// object has none; the caller says what is wrong with it.
pub(crate) fn limit(spec: &Value, key: &str) -> Result<Limit, Error> {
    let Some(map) = spec.as_object() else {
        return Ok(Limit::default());
    };
    let whole = |name: &str| -> Result<Option<u32>, Error> {
        map.get(name)
            .map(|v| match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
                Some(n) if n > 0 => Ok(n),
                _ => Err(Error::config(
                    format!("{key}.{name}"),
                    format!("{v} is not a whole number above 0"),
                )),
            })
            .transpose()
    };
    let concurrency = whole("concurrency")?;
    let burst = whole("burst")?;
    let rate = match map.get("rate") {
        None => None,
        Some(v) => {
            let text = v.as_str().ok_or_else(|| {
                Error::config(
                    format!("{key}.rate"),
                    format!("{v} is not a rate: use a string such as \"10/s\", \"30/min\" or \"100/hour\""),
                )
            })?;
            Some(Rate::parse(text).map_err(|p| Error::config(format!("{key}.rate"), p))?)
        }
    };
    let rate = match (rate, burst) {
        (Some(rate), Some(burst)) => Some(rate.with_burst(burst)),
        (None, Some(_)) => {
            return Err(Error::config(
                format!("{key}.burst"),
                "a burst needs a \"rate\" beside it",
            ))
        }
        (rate, None) => rate,
    };
    Ok(Limit { concurrency, rate })
}
