//! `taskworker serve`: flags to a [`ServerConfig`], logging set up as the
//! worker's, then serve until a signal.

use std::ffi::OsString;
use std::io::Write;

use lexopt::ValueExt;

use super::{Server, ServerConfig};
use crate::config::suggest::did_you_mean;
use crate::config::units::parse_duration;
use crate::config::Config;
use crate::error::Error;

/// The address `serve` listens on when `--listen` is not given; the
/// examples' `API_URL` points here.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8000";

/// The highest `--max-connections`: the kernel's default ceiling on a
/// process's open files (fs.nr_open).
const MAX_CONNECTIONS_LIMIT: usize = 1 << 20;
/// Descriptors `serve` holds besides connections: the listening socket,
/// epoll, the journal, Redis connections, logs.
const OTHER_FILES: u64 = 64;

/// A flag of `serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Listen,
    Data,
    Store,
    StorePrefix,
    ApiKey,
    ApiKeyFile,
    Lease,
    MaxAttempts,
    RetryBackoff,
    Retain,
    MaxConnections,
    CoreOnly,
    Help,
}

/// One flag: the parser looks flags up here and `--help` is written from
/// here, so the two cannot disagree.
struct Flag {
    which: Which,
    name: &'static str,
    /// The value's placeholder; empty for a switch.
    value: &'static str,
    /// What it means, with its default and environment variable.
    meaning: &'static str,
}

const FLAGS: &[Flag] = &[
    Flag {
        which: Which::Listen,
        name: "--listen",
        value: "ADDR",
        meaning: "address to listen on; port 0 picks a free one [default: 127.0.0.1:8000]",
    },
    Flag {
        which: Which::Data,
        name: "--data",
        value: "FILE",
        meaning: "journal file: tasks survive restarts (in memory without it)",
    },
    Flag {
        which: Which::Store,
        name: "--store",
        value: "URL",
        meaning: "redis://[user:pass@]host:port/db (rediss:// for TLS): keep the \
                  queue in Redis or Valkey, shared by every server pointed at it; \
                  password also from REDIS_PASSWORD or REDIS_PASSWORD_FILE",
    },
    Flag {
        which: Which::StorePrefix,
        name: "--store-prefix",
        value: "NAME",
        meaning: "name of the queue in that store, so several share one Redis \
                  [default: taskworker]",
    },
    Flag {
        which: Which::ApiKey,
        name: "--api-key",
        value: "KEY",
        meaning: "bearer token every request but /health must carry [env: API_KEY]",
    },
    Flag {
        which: Which::ApiKeyFile,
        name: "--api-key-file",
        value: "FILE",
        meaning: "read the key from FILE; an empty key is refused [env: API_KEY_FILE]",
    },
    Flag {
        which: Which::Lease,
        name: "--lease",
        value: "DURATION",
        meaning: "lease of a claimed task [default: 30s]",
    },
    Flag {
        which: Which::MaxAttempts,
        name: "--max-attempts",
        value: "N",
        meaning: "deliveries allowed per task that does not say [default: 3]",
    },
    Flag {
        which: Which::RetryBackoff,
        name: "--retry-backoff",
        value: "DURATION",
        meaning: "wait before the first server-side retry, doubling [default: 1s]",
    },
    Flag {
        which: Which::Retain,
        name: "--retain",
        value: "DURATION",
        meaning: "keep completed and failed tasks this long [default: 168h]",
    },
    Flag {
        which: Which::MaxConnections,
        name: "--max-connections",
        value: "N",
        meaning: "connections served at once, parked long polls included; at the cap \
                  the one idle longest is closed, or a newcomer gets 503 [default: 16384]",
    },
    Flag {
        which: Which::CoreOnly,
        name: "--core-only",
        value: "",
        meaning: "serve only the core protocol (no batches, long polls, heartbeats)",
    },
    Flag {
        which: Which::Help,
        name: "--help",
        value: "",
        meaning: "show this help (also -h)",
    },
];

/// The text of `taskworker serve --help`, from [`FLAGS`].
pub fn usage() -> String {
    let mut text = String::from(
        "taskworker serve — the reference task-queue server\n\n\
         USAGE:\n    taskworker serve [OPTIONS]\n\nOPTIONS:\n",
    );
    for f in FLAGS {
        let flag = format!("{} {}", f.name, f.value);
        let mut prefix = format!("    {:<24} ", flag.trim_end());
        for line in crate::cli::wrap(f.meaning, 79 - prefix.len()) {
            text.push_str(&format!("{prefix}{line}\n"));
            prefix = " ".repeat(prefix.len());
        }
    }
    text.push_str(
        "\nLogs go to stderr as the worker's do: LOG_LEVEL, LOG_FORMAT and LOG_FILE\n\
         work as for `taskworker run`. Prints `listening on http://HOST:PORT` on\n\
         stdout once it serves; stops on SIGTERM or SIGINT. The protocol and every\n\
         endpoint, with examples: packaging/PROTOCOL.md.\n",
    );
    text
}

/// Runs `taskworker serve` with `args` (after the command name).
pub fn run(args: Vec<OsString>) -> Result<(), Error> {
    let env = |name: &str| std::env::var(name).ok();
    let Some(config) = parse(args, &env)? else {
        print!("{}", usage());
        return Ok(());
    };
    crate::logging::init(&Config::logging_from(&env)?)?;
    let files = crate::listener::raise_open_file_limit();
    let wanted = u64::try_from(config.max_connections)
        .unwrap_or(u64::MAX)
        .saturating_add(OTHER_FILES);
    if files < wanted {
        log::warn!(
            "--max-connections {} needs about {wanted} open files, but this process may \
             open {files}: past that, new connections wait in the kernel's backlog; raise \
             the hard limit (LimitNOFILE= in the unit, ulimit -Hn) or lower --max-connections",
            config.max_connections
        );
    }
    let signals =
        Server::stop_signals().map_err(|e| Error::io("taking over SIGTERM and SIGINT", e))?;
    let server = Server::start(config)?;
    let mut out = std::io::stdout();
    let _ = writeln!(out, "listening on {}", server.url());
    let _ = out.flush();
    log::info!("serving the task API on {}", server.url());
    server.wait(signals);
    log::info!("stopped");
    Ok(())
}

/// Flags and `env` to a config; `None` for `--help`.
fn parse(
    args: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<ServerConfig>, Error> {
    use lexopt::prelude::*;
    let mut config = ServerConfig {
        listen: DEFAULT_LISTEN.into(),
        ..ServerConfig::default()
    };
    // A flag wins over the environment, and a key over a key file.
    let mut key_flag = None;
    let mut key_file_flag = None;
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next()? {
        let name = match &arg {
            Short('h') => "--help".to_string(),
            Long(name) => format!("--{name}"),
            _ => return Err(arg.unexpected().into()),
        };
        let Some(flag) = FLAGS.iter().find(|f| f.name == name) else {
            return Err(Error::Usage(format!(
                "unknown option {name}{}; see taskworker serve --help",
                did_you_mean(&name, FLAGS.iter().map(|f| f.name))
            )));
        };
        match flag.which {
            Which::Listen => config.listen = parser.value()?.string()?,
            Which::Data => config.data = Some(parser.value()?.into()),
            Which::Store => config.store = Some(parser.value()?.string()?),
            Which::StorePrefix => config.store_prefix = parser.value()?.string()?,
            Which::ApiKey => key_flag = Some(parser.value()?.string()?),
            Which::ApiKeyFile => key_file_flag = Some(parser.value()?.string()?),
            Which::Lease => config.lease = duration("--lease", parser.value()?)?,
            Which::RetryBackoff => {
                config.retry_backoff = duration("--retry-backoff", parser.value()?)?
            }
            Which::Retain => config.retain = duration("--retain", parser.value()?)?,
            Which::MaxAttempts => {
                let v = parser.value()?.string()?;
                config.max_attempts = v.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    Error::Usage(format!(
                        "--max-attempts: expected a whole number ≥ 1, got {v:?}"
                    ))
                })?;
            }
            Which::MaxConnections => {
                let v = parser.value()?.string()?;
                config.max_connections = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_CONNECTIONS_LIMIT).contains(n))
                    .ok_or_else(|| {
                        Error::Usage(format!(
                            "--max-connections: expected a whole number from 1 to \
                             {MAX_CONNECTIONS_LIMIT}, got {v:?}"
                        ))
                    })?;
            }
            Which::CoreOnly => config.core_only = true,
            Which::Help => return Ok(None),
        }
    }
    if config.lease.is_zero() {
        return Err(Error::Usage("--lease: must be more than 0".into()));
    }
    let source = match (key_flag, key_file_flag) {
        (Some(key), _) => Some(KeySource::Value("--api-key", key)),
        (None, Some(path)) => Some(KeySource::File("--api-key-file", path)),
        (None, None) => match (env("API_KEY"), env("API_KEY_FILE")) {
            (Some(key), _) => Some(KeySource::Value("API_KEY", key)),
            (None, Some(path)) => Some(KeySource::File("API_KEY_FILE", path)),
            (None, None) => None,
        },
    };
    config.api_key = source.map(KeySource::read).transpose()?;
    if config.store.is_some() {
        config.store_password = match (env("REDIS_PASSWORD"), env("REDIS_PASSWORD_FILE")) {
            (Some(password), _) => Some(password),
            (None, Some(path)) => Some(
                std::fs::read_to_string(&path)
                    .map_err(|e| {
                        Error::config("REDIS_PASSWORD_FILE", format!("cannot read {path}: {e}"))
                    })?
                    .trim_end_matches(['\r', '\n'])
                    .to_string(),
            ),
            (None, None) => None,
        };
    }
    Ok(Some(config))
}

/// Where the API key comes from: the name the user wrote, and the key or its file.
enum KeySource {
    Value(&'static str, String),
    File(&'static str, String),
}

impl KeySource {
    /// The key; an empty one is an error, since it would turn authentication
    /// off without a word.
    fn read(self) -> Result<String, Error> {
        let (name, key) = match self {
            KeySource::Value(name, key) => (name, key),
            KeySource::File(name, path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| Error::config(name, format!("cannot read {path}: {e}")))?;
                (name, text.trim_end_matches(['\r', '\n']).to_string())
            }
        };
        if key.trim().is_empty() {
            return Err(Error::config(
                name,
                "the API key is empty; leave it unset to serve without a key",
            ));
        }
        Ok(key)
    }
}

fn duration(flag: &str, value: OsString) -> Result<std::time::Duration, Error> {
    let text = value.string()?;
    parse_duration(&text).map_err(|e| Error::Usage(format!("{flag}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(list: Vec<OsString>) -> Result<Option<ServerConfig>, Error> {
        super::parse(list, &no_env)
    }

    #[test]
    fn flags_fill_the_config() {
        let c = parse(args(&[
            "--listen",
            "127.0.0.1:0",
            "--lease",
            "500ms",
            "--retain",
            "2h",
            "--core-only",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.retain, std::time::Duration::from_secs(7200));
        assert_eq!(c.listen, "127.0.0.1:0");
        assert_eq!(c.lease, std::time::Duration::from_millis(500));
        assert!(c.core_only);
        assert!(parse(args(&["--help"])).unwrap().is_none());
        assert_eq!(
            parse(args(&["--lease", "soon"])).unwrap_err().exit_code(),
            64
        );
        assert_eq!(parse(args(&["--bogus"])).unwrap_err().exit_code(), 64);
        let err = parse(args(&["--lisen", "x"])).unwrap_err();
        assert!(err.to_string().contains("did you mean --listen?"), "{err}");
    }

    /// Every flag of the table parses, and the defaults that `--help`
    /// states are the parser's.
    #[test]
    fn help_is_the_parser_s_table() {
        let samples = |w: Which| match w {
            Which::Listen => Some("127.0.0.1:0"),
            Which::Data => Some("/tmp/x"),
            Which::Store => Some("redis://127.0.0.1:6379/0"),
            Which::StorePrefix => Some("q"),
            Which::ApiKey => Some("k"),
            Which::ApiKeyFile => None,
            Which::Lease | Which::RetryBackoff | Which::Retain => Some("2s"),
            Which::MaxAttempts => Some("2"),
            Which::MaxConnections => Some("100"),
            Which::CoreOnly => Some(""),
            Which::Help => Some(""),
        };
        for f in FLAGS {
            let Some(sample) = samples(f.which) else {
                continue;
            };
            let mut argv = vec![f.name];
            if !f.value.is_empty() {
                argv.push(sample);
            }
            let parsed = parse(args(&argv));
            assert!(parsed.is_ok(), "{}: {:?}", f.name, parsed.err());
            assert_eq!(parsed.unwrap().is_none(), f.which == Which::Help);
            assert_eq!(FLAGS.iter().filter(|g| g.which == f.which).count(), 1);
        }
        let c = parse(args(&[])).unwrap().unwrap();
        let default = |w: Which| {
            let meaning = FLAGS.iter().find(|f| f.which == w).unwrap().meaning;
            let start = meaning.find("[default: ").unwrap() + "[default: ".len();
            meaning[start..].trim_end_matches(']').to_string()
        };
        let secs = |d: std::time::Duration| d.as_secs();
        assert_eq!(default(Which::Listen), c.listen);
        assert_eq!(default(Which::StorePrefix), c.store_prefix);
        assert_eq!(
            parse_duration(&default(Which::Lease)).map(secs),
            Ok(secs(c.lease))
        );
        assert_eq!(
            parse_duration(&default(Which::RetryBackoff)).map(secs),
            Ok(secs(c.retry_backoff))
        );
        assert_eq!(
            parse_duration(&default(Which::Retain)).map(secs),
            Ok(secs(c.retain))
        );
        assert_eq!(default(Which::MaxAttempts), c.max_attempts.to_string());
        assert_eq!(
            default(Which::MaxConnections),
            c.max_connections.to_string()
        );
        let help = usage();
        assert!(FLAGS.iter().all(|f| help.contains(f.name)));
        assert!(help.contains("packaging/PROTOCOL.md"), "{help}");
    }

    #[test]
    fn max_connections_must_be_a_sensible_count() {
        let c = parse(args(&["--max-connections", "20000"]))
            .unwrap()
            .unwrap();
        assert_eq!(c.max_connections, 20000);
        for bad in ["0", "-1", "lots", "99999999999"] {
            let err = parse(args(&["--max-connections", bad])).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains("--max-connections") && text.contains(bad),
                "{text}"
            );
        }
    }

    #[test]
    fn an_empty_key_from_any_source_is_refused() {
        let empty_file = crate::test_path("empty-key");
        std::fs::write(&empty_file, "\n").unwrap();
        let file_arg = empty_file.to_str().unwrap();
        let with_env = |name: &'static str, value: &'static str| {
            move |n: &str| (n == name).then(|| value.to_string())
        };
        type Env = Box<dyn Fn(&str) -> Option<String>>;
        let cases: Vec<(Vec<OsString>, Env, &str)> = vec![
            (args(&["--api-key", ""]), Box::new(no_env), "--api-key"),
            (args(&["--api-key", "  "]), Box::new(no_env), "--api-key"),
            (
                args(&["--api-key-file", file_arg]),
                Box::new(no_env),
                "--api-key-file",
            ),
            (args(&[]), Box::new(with_env("API_KEY", "")), "API_KEY"),
        ];
        for (argv, env, name) in cases {
            let err = super::parse(argv, &*env).unwrap_err();
            assert_eq!(err.exit_code(), 78, "{err}");
            assert!(err.to_string().contains(name), "{err}");
            assert!(err.to_string().contains("empty"), "{err}");
        }
        std::fs::write(&empty_file, "k-1\n").unwrap();
        let c = super::parse(args(&["--api-key-file", file_arg]), &no_env)
            .unwrap()
            .unwrap();
        assert_eq!(c.api_key.as_deref(), Some("k-1"));
        let c = super::parse(args(&[]), &with_env("API_KEY", "k-2"))
            .unwrap()
            .unwrap();
        assert_eq!(c.api_key.as_deref(), Some("k-2"));
        assert_eq!(parse(args(&[])).unwrap().unwrap().api_key, None);
    }
}
