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
    --lease DURATION         lease of a claimed task [default: 30s]
    --max-attempts N         deliveries allowed per task [default: 3]
    --retry-backoff DURATION wait before the first server-side retry, doubling [default: 1s]
    --core-only              serve only the core protocol
    -h, --help               show this help

Prints `listening on http://HOST:PORT` once it serves; stops on SIGTERM or SIGINT.
";

/// Runs `taskworker serve` with `args` (after the command name).
pub fn run(args: Vec<OsString>) -> Result<(), Error> {
    let Some(config) = parse(args)? else {
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

/// Flags to a config; `None` for `--help`.
fn parse(args: Vec<OsString>) -> Result<Option<ServerConfig>, Error> {
    use lexopt::prelude::*;
    let mut config = ServerConfig {
        listen: "127.0.0.1:8000".into(),
        api_key: std::env::var("API_KEY").ok().filter(|k| !k.is_empty()),
        ..ServerConfig::default()
    };
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("listen") => config.listen = parser.value()?.string()?,
            Long("data") => config.data = Some(parser.value()?.into()),
            Long("api-key") => config.api_key = Some(parser.value()?.string()?),
            Long("lease") => config.lease = duration("--lease", parser.value()?)?,
            Long("retry-backoff") => {
                config.retry_backoff = duration("--retry-backoff", parser.value()?)?
            }
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
    Ok(Some(config))
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

    #[test]
    fn flags_fill_the_config() {
        let c = parse(args(&[
            "--listen",
            "127.0.0.1:0",
            "--lease",
            "500ms",
            "--core-only",
        ]))
        .unwrap()
        .unwrap();
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
}
