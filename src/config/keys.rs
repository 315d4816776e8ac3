//! Every configuration key, defined once in one table (`config_keys!`
//! below): its three names (environment variable, config-file path, flag),
//! its field in [`Config`] with type and default, how its text is read, what
//! the docs say of it, whether it is a secret and whether it can change
//! without a restart. The key list ([`Key`], [`KEYS`]), `Config` and its
//! `Default`, the reading of every layer, `check-config`'s lines and
//! OPERATIONS.md's key table ([`markdown_table`]) all come from that table.
//!
//! To add a key, add a row: its field appears in `Config`, its flag in
//! `--help`, its line in `check-config`, its row in the docs table (the docs
//! test says how to rewrite OPERATIONS.md). Code names a key by its variant
//! (`Key::ConcurrentTasks`) or its field, never by a string, so a misspelt
//! key does not compile.

use std::fmt::Display;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde_json::{Map, Value};

use super::units::{parse_duration, parse_size};
use super::{LogFormat, RawConfig, Secret};
use crate::error::Error;

/// What the table says of one key.
#[derive(Debug)]
pub struct KeySpec {
    /// The key itself.
    pub key: Key,
    /// The environment variable (`CONCURRENT_TASKS`); `check-config` prints
    /// this name, and errors use it for values from the environment.
    pub env: &'static str,
    /// The config file path (`performance.concurrent_tasks`).
    pub file: &'static str,
    /// The command-line flag of `run` and `check-config` (`--concurrency`).
    pub flag: &'static str,
    /// The default as the docs show it (Markdown).
    pub default: &'static str,
    /// What the key means, as the docs say it (Markdown, one line).
    pub meaning: &'static str,
    /// A secret: `check-config` shows its value as `***`, and its variable
    /// never reaches a handler program (see [`SECRET_VARS`]).
    pub secret: bool,
    /// A reload applies a new value without a restart; a changed key that
    /// is not live needs a restart to take effect.
    pub live: bool,
}

impl Key {
    /// The key's row of the table.
    pub const fn spec(self) -> &'static KeySpec {
        &KEYS[self as usize]
    }

    /// The key's environment variable, the name `check-config` prints.
    pub const fn env(self) -> &'static str {
        self.spec().env
    }

    /// The key whose environment variable is `name`.
    pub fn from_env(name: &str) -> Option<Key> {
        Key::find(|s| s.env == name)
    }

    /// The key whose config file path is `path` (`worker.timeout`).
    pub fn from_file(path: &str) -> Option<Key> {
        Key::find(|s| s.file == path)
    }

    /// The key whose flag is `flag` (`--timeout`).
    pub fn from_flag(flag: &str) -> Option<Key> {
        Key::find(|s| s.flag == flag)
    }

    fn find(matches: impl Fn(&KeySpec) -> bool) -> Option<Key> {
        KEYS.iter().find(|s| matches(s)).map(|s| s.key)
    }
}

/// Environment variables that never reach a handler's child process: every
/// secret key's, and systemd's `CREDENTIALS_DIRECTORY`, where the key may be
/// read from.
pub const SECRET_VARS: &[&str] = &secret_vars::<{ secret_keys() + 1 }>();

const fn secret_keys() -> usize {
    let (mut count, mut i) = (0, 0);
    while i < KEYS.len() {
        if KEYS[i].secret {
            count += 1;
        }
        i += 1;
    }
    count
}

const fn secret_vars<const N: usize>() -> [&'static str; N] {
    let mut vars = [""; N];
    let (mut n, mut i) = (0, 0);
    while i < KEYS.len() {
        if KEYS[i].secret {
            vars[n] = KEYS[i].env;
            n += 1;
        }
        i += 1;
    }
    vars[n] = "CREDENTIALS_DIRECTORY";
    vars
}

/// OPERATIONS.md's key table, rendered from `KEYS`.
pub fn markdown_table() -> String {
    let mut table = String::from(
        "| env var | config file | flag | default | meaning | reload |\n|---|---|---|---|---|---|\n",
    );
    for s in KEYS {
        let reload = if s.live { "live" } else { "restart" };
        table.push_str(&format!(
            "| `{}` | `{}` | `{}` | {} | {} | {reload} |\n",
            s.env, s.file, s.flag, s.default, s.meaning
        ));
    }
    table
}

/// A field's value as `check-config` prints it.
trait AsText {
    fn as_text(&self) -> String;
}

impl AsText for String {
    fn as_text(&self) -> String {
        self.clone()
    }
}

impl AsText for PathBuf {
    fn as_text(&self) -> String {
        self.display().to_string()
    }
}

impl AsText for Secret {
    fn as_text(&self) -> String {
        self.to_string()
    }
}

impl AsText for Duration {
    fn as_text(&self) -> String {
        format!("{}ms", self.as_millis())
    }
}

impl AsText for Vec<String> {
    fn as_text(&self) -> String {
        self.join(",")
    }
}

impl AsText for log::LevelFilter {
    fn as_text(&self) -> String {
        self.to_string().to_lowercase()
    }
}

impl AsText for LogFormat {
    fn as_text(&self) -> String {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
        .into()
    }
}

impl<T: AsText> AsText for Option<T> {
    fn as_text(&self) -> String {
        self.as_ref().map(AsText::as_text).unwrap_or_default()
    }
}

macro_rules! number_as_text {
    ($($t:ty),*) => {$(
        impl AsText for $t {
            fn as_text(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
number_as_text!(u32, u64, usize);

/// `value` as text, or `***` when `key` is a secret that is set; the API
/// URL with its userinfo as `***`.
fn shown(key: Key, value: &impl AsText) -> String {
    let text = value.as_text();
    if key.spec().secret && !text.is_empty() {
        "***".into()
    } else if key == Key::ApiUrl {
        super::url::masked(&text)
    } else {
        text
    }
}

/// How a field gets its value: `parse(f)` reads the key's text with `f`
/// (`Fn(&str) -> Result<T, String>`, the error naming the value's problem)
/// and takes the default when the key is unset; `resolve(f)` leaves it all to
/// `f(raw, env)`, for the fields that read more than their own key.
macro_rules! read_field {
    (parse($parse:expr), $raw:ident, $env:ident, $key:expr, $default:expr) => {
        $raw.parse($key, $parse)?.unwrap_or_else(|| $default)
    };
    (resolve($resolve:expr), $raw:ident, $env:ident, $key:expr, $default:expr) => {
        $resolve($raw, $env)?
    };
}

/// Turns the table into [`Key`], [`KEYS`], [`Config`], `Config`'s
/// `Default`, its reading from raw values and its values as text.
macro_rules! config_keys {
    ($(
        $Key:ident {
            env: $env:literal,
            file: $file:literal,
            flag: $flag:literal,
            default: $shown:literal,
            meaning: $meaning:literal,
            secret: $secret:literal,
            live: $live:literal,
            $(
                $(#[doc = $doc:literal])*
                field: $field:ident: $ty:ty = $default:expr,
                read: $how:ident($read:expr),
            )?
        }
    )*) => {
        /// A configuration key. Its names and properties: [`Key::spec`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        // `ApiKey` is the key named API_KEY, not a key of keys.
        #[allow(clippy::enum_variant_names)]
        pub enum Key {$(
            #[doc = concat!("`", $env, "`: ", $meaning, ".")]
            $Key,
        )*}

        /// Every key, in the order of [`Key`]: the order in which `--help`,
        /// `check-config` and the docs list them.
        pub const KEYS: &[KeySpec] = &[$(
            KeySpec {
                key: Key::$Key,
                env: $env,
                file: $file,
                flag: $flag,
                default: $shown,
                meaning: $meaning,
                secret: $secret,
                live: $live,
            },
        )*];

        /// The validated configuration of `taskworker run`: a field a key
        /// (the table in `config/keys.rs`), plus the handlers. Build one with
        /// `Config { api_url: ..., ..Config::default() }`.
        #[derive(Debug, Clone)]
        pub struct Config {
            $($(
                #[doc = concat!($meaning, ".")]
                #[doc = ""]
                $(#[doc = $doc])*
                #[doc = concat!("Key: `", $env, "`, `", $file, "`, `", $flag, "`.")]
                pub $field: $ty,
            )?)*
            /// Task type → handler spec, from the config file only.
            pub handlers: Map<String, Value>,
            /// Schedule name → schedule spec, from the config file only.
            pub schedules: Map<String, Value>,
            /// The directory of the config file, against which a handler's
            /// relative `command` path resolves; the working directory when
            /// `None` (no config file).
            pub config_dir: Option<std::path::PathBuf>,
        }

        impl Default for Config {
            fn default() -> Config {
                Config {
                    $($( $field: $default, )?)*
                    handlers: Map::new(),
                    schedules: Map::new(),
                    config_dir: None,
                }
            }
        }

        impl Config {
            /// Reads every field from `raw`, in the order of the keys;
            /// `env` is there for the systemd variables some fields fall
            /// back on.
            pub(super) fn read(
                raw: &RawConfig,
                env: &dyn Fn(&str) -> Option<String>,
            ) -> Result<Config, Error> {
                Ok(Config {
                    $($( $field: read_field!($how($read), raw, env, Key::$Key, $default), )?)*
                    handlers: raw.handlers.clone(),
                    schedules: raw.schedules.clone(),
                    config_dir: raw.config_dir.clone(),
                })
            }

            /// The configuration a reload applies: `new`'s value of every
            /// live key (and its handlers and schedules), this one's of every
            /// key that needs a restart; and the keys of the second kind whose
            /// value `new` changes, which keep their value until a restart.
            /// The `live` column of the table decides, and nothing else.
            pub fn adopt_live(&self, new: Config) -> (Config, Vec<Key>) {
                let mut merged = self.clone();
                let mut kept = Vec::new();
                $($(
                    if $live {
                        merged.$field = new.$field.clone();
                    } else if self.$field.as_text() != new.$field.as_text() {
                        kept.push(Key::$Key);
                    }
                )?)*
                merged.handlers = new.handlers;
                merged.schedules = new.schedules;
                merged.config_dir = new.config_dir;
                (merged, kept)
            }

            /// Every key that has a field, with its value as text (secrets
            /// as `***`), in the order of the keys.
            pub fn values(&self) -> Vec<(Key, String)> {
                vec![$($( (Key::$Key, shown(Key::$Key, &self.$field)), )?)*]
            }
        }
    };
}

config_keys! {
    ApiUrl {
        env: "API_URL",
        file: "api.url",
        flag: "--api-url",
        default: "none; required",
        meaning: "base URL of the task API (`http://` or `https://`)",
        secret: false,
        live: false,
        /// Without a trailing slash.
        field: api_url: String = String::new(),
        read: parse(url),
    }
    ApiKey {
        env: "API_KEY",
        file: "api.key",
        flag: "--api-key",
        default: "none",
        meaning: "bearer token sent with every request",
        secret: true,
        live: true,
        /// Also read from `API_KEY_FILE` or `$CREDENTIALS_DIRECTORY/api_key`.
        field: api_key: Option<Secret> = None,
        read: resolve(api_key),
    }
    ApiKeyFile {
        env: "API_KEY_FILE",
        file: "api.key_file",
        flag: "--api-key-file",
        default: "none",
        meaning: "read the key from this file (used when `API_KEY` is not set)",
        secret: true,
        live: true,
    }
    ApiCaFile {
        env: "API_CA_FILE",
        file: "api.ca_file",
        flag: "--api-ca-file",
        default: "built-in roots",
        meaning: "PEM root certificates to trust instead of the built-in ones",
        secret: false,
        live: false,
        field: api_ca_file: Option<PathBuf> = None,
        read: parse(|v| nonempty_path(v).map(Some)),
    }
    WorkerId {
        env: "WORKER_ID",
        file: "worker.id",
        flag: "--worker-id",
        default: "`<hostname>-<pid>`",
        meaning: "sent with every claim and report",
        secret: false,
        live: false,
        field: worker_id: String = super::default_worker_id(),
        read: parse(|v| match v.trim() {
            "" => Err("must not be empty".into()),
            id => Ok(id.to_string()),
        }),
    }
    PollingInterval {
        env: "POLLING_INTERVAL",
        file: "worker.polling_interval",
        flag: "--polling-interval",
        default: "`5`",
        meaning: "wait after an empty claim",
        secret: false,
        live: true,
        // The seed's default.
        field: polling_interval: Duration = Duration::from_secs(5),
        read: parse(parse_duration),
    }
    WaitSeconds {
        env: "WAIT_SECONDS",
        file: "worker.wait_seconds",
        flag: "--wait-seconds",
        default: "`20`",
        meaning: "long-poll time asked of the server, 0 to 300 (0: off)",
        secret: false,
        live: true,
        // Long enough to make idle polling cheap, short enough to stay
        // under the 30 s idle timeouts of common proxies.
        field: wait_seconds: u64 = 20,
        read: parse(|v| whole_number(v, 0..=300, " of seconds")),
    }
    ReportBatch {
        env: "REPORT_BATCH",
        file: "worker.report_batch",
        flag: "--report-batch",
        default: "`100`",
        meaning: "most outcomes sent in one batch report (`POST /tasks/report`, when the server has it), 0 to 100 (0: single reports only)",
        secret: false,
        live: false,
        // The protocol's limit: a batch never waits to fill, so a larger
        // one only forms when that many outcomes are ready at once.
        field: report_batch: usize = 100,
        read: parse(|v| whole_number(v, 0..=100, "")),
    }
    MaxRetries {
        env: "MAX_RETRIES",
        file: "worker.max_retries",
        flag: "--max-retries",
        default: "`3`",
        meaning: "local retries of a retryable error within one delivery, 0 to 100; a handler's `max_retries` overrides it",
        secret: false,
        live: true,
        field: max_retries: u32 = 3,
        read: parse(|v| whole_number(v, 0..=100, "")),
    }
    RetryBackoff {
        env: "RETRY_BACKOFF",
        file: "worker.retry_backoff",
        flag: "--retry-backoff",
        default: "`1s`",
        meaning: "shortest wait before a local retry, up to `1h`; later waits double (random in between, capped by `RETRY_BACKOFF_MAX`)",
        secret: false,
        live: true,
        // Long enough that a busy disk or a restarting service gets a
        // moment to recover; short enough for several tries in a 30 s TIMEOUT.
        field: retry_backoff: Duration = Duration::from_secs(1),
        read: parse(retry_wait),
    }
    RetryBackoffMax {
        env: "RETRY_BACKOFF_MAX",
        file: "worker.retry_backoff_max",
        flag: "--retry-backoff-max",
        default: "`30s`",
        meaning: "longest wait before a local retry, up to `1h`; a handler's `retry_after` above it is left to the server",
        secret: false,
        live: true,
        // The default TIMEOUT: a longer local wait could never fit a task's deadline.
        field: retry_backoff_max: Duration = Duration::from_secs(30),
        read: parse(retry_wait),
    }
    Timeout {
        env: "TIMEOUT",
        file: "worker.timeout",
        flag: "--timeout",
        default: "`30`",
        meaning: "per-task deadline; a task's `timeout_seconds` overrides it",
        secret: false,
        live: true,
        field: timeout: Duration = Duration::from_secs(30),
        read: parse(positive_duration),
    }
    ShutdownTimeout {
        env: "SHUTDOWN_TIMEOUT",
        file: "worker.shutdown_timeout",
        flag: "--shutdown-timeout",
        default: "`25`",
        meaning: "drain grace before running tasks are cancelled",
        secret: false,
        live: true,
        // Under the 30 s that systemd and most orchestrators give before SIGKILL.
        field: shutdown_timeout: Duration = Duration::from_secs(25),
        read: parse(parse_duration),
    }
    StateDir {
        env: "STATE_DIR",
        file: "worker.state_dir",
        flag: "--state-dir",
        default: "`$STATE_DIRECTORY`, else none",
        meaning: "result spool directory; empty: no spool",
        secret: false,
        live: false,
        /// None: reports live in memory only.
        field: state_dir: Option<PathBuf> = None,
        read: resolve(state_dir),
    }
    SecretEnv {
        env: "SECRET_ENV",
        file: "worker.secret_env",
        flag: "--secret-env",
        default: "none",
        meaning: "more variables to keep from handler programs: comma-separated, or a JSON list in the file",
        secret: false,
        live: true,
        field: secret_env: Vec<String> = Vec::new(),
        read: parse(|v| {
            Ok(v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect())
        }),
    }
    LogLevel {
        env: "LOG_LEVEL",
        file: "logging.level",
        flag: "--log-level",
        default: "`info`",
        meaning: "`error`, `warn`, `info`, `debug`, `trace`, `off`; `RUST_LOG` still works for module filters",
        secret: false,
        live: true,
        field: log_level: log::LevelFilter = log::LevelFilter::Info,
        read: parse(|v| {
            v.trim()
                .parse::<log::LevelFilter>()
                .map_err(|_| format!("{v:?} is not one of error, warn, info, debug, trace, off"))
        }),
    }
    LogFile {
        env: "LOG_FILE",
        file: "logging.file",
        flag: "--log-file",
        default: "stderr",
        meaning: "append logs to this file",
        secret: false,
        live: false,
        field: log_file: Option<PathBuf> = None,
        read: parse(|v| Ok(Some(v.trim()).filter(|s| !s.is_empty()).map(PathBuf::from))),
    }
    LogFormat {
        env: "LOG_FORMAT",
        file: "logging.format",
        flag: "--log-format",
        default: "`text`",
        meaning: "`text` or `json` (one object a line); under journald, text lines carry `<N>` priorities and no timestamp",
        secret: false,
        live: false,
        field: log_format: LogFormat = LogFormat::Text,
        read: parse(|v| match v.trim() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("{v:?} is not \"text\" or \"json\"")),
        }),
    }
    ConcurrentTasks {
        env: "CONCURRENT_TASKS",
        file: "performance.concurrent_tasks",
        flag: "--concurrency",
        default: "`1`",
        meaning: "processor threads, 1 to 1024",
        secret: false,
        live: true,
        field: concurrent_tasks: usize = 1,
        read: parse(|v| whole_number(v, 1..=1024, "")),
    }
    MemoryLimit {
        env: "MEMORY_LIMIT",
        file: "performance.memory_limit",
        flag: "--memory-limit",
        default: "none",
        meaning: "at least `4M`; above this RSS the worker stops claiming, drains and exits 75",
        secret: false,
        live: true,
        /// In bytes.
        field: memory_limit: Option<u64> = None,
        read: parse(|v| parse_size(v).and_then(min_memory).map(Some)),
    }
    HealthAddr {
        env: "HEALTH_ADDR",
        file: "monitoring.health_addr",
        flag: "--health-addr",
        default: "`127.0.0.1:8080`",
        meaning: "address of the health server; empty: off",
        secret: false,
        live: false,
        /// Serves `/health`, `/ready`, `/status` and `/metrics`.
        field: health_addr: Option<String> = Some("127.0.0.1:8080".into()),
        read: parse(|v| Ok(Some(v.trim().to_string()).filter(|s| !s.is_empty()))),
    }
}

/// `API_KEY`, else the file `API_KEY_FILE` names, else systemd's
/// `$CREDENTIALS_DIRECTORY/api_key`: the first one set wins.
fn api_key(raw: &RawConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Secret>, Error> {
    if let Some(key) = raw.value(Key::ApiKey).filter(|k| !k.is_empty()) {
        return Ok(Some(Secret::new(key)));
    }
    if let Some(path) = raw.parse(Key::ApiKeyFile, nonempty_path)? {
        return read_secret_file(&path, &raw.name_of(Key::ApiKeyFile)).map(Some);
    }
    match env("CREDENTIALS_DIRECTORY").map(|d| Path::new(&d).join("api_key")) {
        Some(path) if path.is_file() => read_secret_file(&path, "CREDENTIALS_DIRECTORY").map(Some),
        _ => Ok(None),
    }
}

/// `STATE_DIR` (empty: none), else the first of systemd's `STATE_DIRECTORY`.
fn state_dir(
    raw: &RawConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<PathBuf>, Error> {
    Ok(match raw.value(Key::StateDir) {
        Some(dir) if dir.trim().is_empty() => None,
        Some(dir) => Some(PathBuf::from(dir)),
        // systemd's StateDirectory= may list several, separated by ':'.
        None => env("STATE_DIRECTORY").and_then(|s| s.split(':').next().map(PathBuf::from)),
    })
}

fn read_secret_file(path: &Path, key: &str) -> Result<Secret, Error> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => Ok(Secret::new(s.trim())),
        Ok(_) => Err(Error::config(key, format!("{} is empty", path.display()))),
        Err(e) => Err(Error::config(
            key,
            format!("cannot read {}: {e}", path.display()),
        )),
    }
}

fn url(v: &str) -> Result<String, String> {
    let v = v.trim().trim_end_matches('/');
    let rest = v
        .strip_prefix("http://")
        .or_else(|| v.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') => Ok(v.to_string()),
        _ => Err(format!(
            "{:?} is not an http:// or https:// URL",
            super::url::masked(v)
        )),
    }
}

fn nonempty_path(v: &str) -> Result<PathBuf, String> {
    match v.trim() {
        "" => Err("must not be empty".to_string()),
        p => Ok(PathBuf::from(p)),
    }
}

/// A whole number in `range`; `unit` (` of seconds`) says what it counts.
fn whole_number<T: FromStr + PartialOrd + Display>(
    v: &str,
    range: RangeInclusive<T>,
    unit: &str,
) -> Result<T, String> {
    match v.trim().parse::<T>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(format!(
            "{v:?} is not a whole number{unit} from {} to {}",
            range.start(),
            range.end()
        )),
    }
}

/// A wait between local retries: more than zero, at most an hour.
pub(crate) fn retry_wait(v: &str) -> Result<Duration, String> {
    positive_duration(v).and_then(|d| {
        if d > crate::bounded::MAX_RETRY_AFTER {
            Err(format!("{v:?} is more than an hour"))
        } else {
            Ok(d)
        }
    })
}

fn positive_duration(v: &str) -> Result<Duration, String> {
    parse_duration(v).and_then(|d| {
        if d.is_zero() {
            Err(format!("{v:?} must be more than zero"))
        } else {
            Ok(d)
        }
    })
}

fn min_memory(bytes: u64) -> Result<u64, String> {
    if bytes < 4 << 20 {
        Err(format!(
            "{bytes} bytes is below the 4M the worker itself needs"
        ))
    } else {
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Origin;

    #[test]
    fn the_table_is_in_the_order_of_the_keys_and_its_names_are_unique() {
        for (i, spec) in KEYS.iter().enumerate() {
            assert_eq!(spec.key as usize, i, "{}", spec.env);
            assert_eq!(Key::from_env(spec.env), Some(spec.key));
            assert_eq!(Key::from_file(spec.file), Some(spec.key));
            assert_eq!(Key::from_flag(spec.flag), Some(spec.key));
            assert!(spec.flag.starts_with("--"), "{}", spec.flag);
            assert!(!spec.meaning.contains(['|', '\n']), "{}", spec.env);
        }
    }

    #[test]
    fn secret_vars_are_the_secret_keys_and_the_credentials_directory() {
        assert_eq!(
            SECRET_VARS,
            ["API_KEY", "API_KEY_FILE", "CREDENTIALS_DIRECTORY"]
        );
    }

    /// A default the docs show as a value (`5`) reads as the field's default.
    #[test]
    fn documented_defaults_are_the_defaults() {
        let default = Config::default().values();
        for spec in KEYS {
            let Some(shown) = spec
                .default
                .strip_prefix('`')
                .and_then(|s| s.strip_suffix('`'))
                .filter(|s| !s.contains(['`', '<', '$']))
            else {
                continue;
            };
            let mut raw = RawConfig::default();
            raw.values
                .insert(spec.key, (shown.to_string(), Origin::Env));
            let read = raw.validate(&|_| None).unwrap().values();
            let value =
                |values: &[(Key, String)]| values.iter().find(|(k, _)| *k == spec.key).cloned();
            assert_eq!(value(&read), value(&default), "{}", spec.env);
        }
    }
}
