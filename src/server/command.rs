//! `taskworker serve`: flags to a [`ServerConfig`], then serve until a signal.

use std::ffi::OsString;
use std::io::Write;

use lexopt::ValueExt;

use super::{Server, ServerConfig};
use crate::config::units::parse_duration;
use crate::error::Error;

/// The text of `taskworker serve --help`.
pub const USAGE: &str = "\
taskworker serve — the reference task-queue server (task-api.md)

USAGE:
    taskworker serve [OPTIONS]

OPTIONS:
    --listen ADDR            address to listen on [default: 127.0.0.1:8000]; port 0 picks one
    --data FILE              journal file: tasks survive restarts (in memory without it)
    --api-key KEY            bearer token every request but /health must carry [env: API_KEY]
    --api-key-file FILE      read the key from FILE [env: API_KEY_FILE]; an empty key is refused
    --lease DURATION         lease of a claimed task [default: 30s]
    --max-attempts N         deliveries allowed per task [default: 3]
    --retry-backoff DURATION wait before the first server-side retry, doubling [default: 1s]
    --retain DURATION        keep completed and failed tasks this long, then drop them [default: 168h]
    --core-only              serve only the core protocol
    -h, --help               show this help

Prints `listening on http://HOST:PORT` once it serves; stops on SIGTERM or SIGINT.
";

/// Runs `taskworker serve` with `args` (after the command name).
pub fn run(args: Vec<OsString>) -> Result<(), Error> {
    let env = |name: &str| std::env::var(name).ok();
    let Some(config) = parse(args, &env)? else {
        print!("{USAGE}");
        return Ok(());
    };
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .try_init();
    let server = Server::start(config)?;
    let mut out = std::io::stdout();
    let _ = writeln!(out, "listening on {}", server.url());
    let _ = out.flush();
    log::info!("serving the task API on {}", server.url());
    server.wait();
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
        listen: "127.0.0.1:8000".into(),
        ..ServerConfig::default()
    };
    // A flag wins over the environment, and a key over a key file.
    let mut key_flag = None;
    let mut key_file_flag = None;
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("listen") => config.listen = parser.value()?.string()?,
            Long("data") => config.data = Some(parser.value()?.into()),
            Long("api-key") => key_flag = Some(parser.value()?.string()?),
            Long("api-key-file") => key_file_flag = Some(parser.value()?.string()?),
            Long("lease") => config.lease = duration("--lease", parser.value()?)?,
            Long("retry-backoff") => {
                config.retry_backoff = duration("--retry-backoff", parser.value()?)?
            }
            Long("retain") => config.retain = duration("--retain", parser.value()?)?,
            Long("max-attempts") => {
                let v = parser.value()?.string()?;
                config.max_attempts = v.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    Error::Usage(format!(
                        "--max-attempts: expected a whole number ≥ 1, got {v:?}"
                    ))
                })?;
            }
            Long("core-only") => config.core_only = true,
            Short('h') | Long("help") => return Ok(None),
            _ => return Err(arg.unexpected().into()),
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
    }

    #[test]
    fn an_empty_key_from_any_source_is_refused() {
        let empty_file =
            std::env::temp_dir().join(format!("taskworker-empty-key-{}", std::process::id()));
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
