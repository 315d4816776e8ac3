//! The command line: picks the subcommand, parses its flags, runs it, and
//! maps its error to an exit code.

#[cfg(feature = "server")]
pub mod demo;
#[cfg(feature = "server")]
pub mod enqueue;

use std::ffi::OsString;

use lexopt::prelude::*;

use crate::config::{Args, Config, Key, KEYS};
use crate::error::Error;
use crate::handlers::{HandlerEnv, Registry};
use crate::worker::Worker;

/// The text of `--help`.
pub const USAGE: &str = "\
taskworker — a small, fast, dependable background worker for HTTP task queues

USAGE:
    taskworker [run] [OPTIONS]        run the worker daemon (the default)
    taskworker check-config [OPTIONS] validate and print the effective configuration
    taskworker serve [OPTIONS]        run the reference task-queue server
    taskworker enqueue [OPTIONS]      add tasks to a server
    taskworker demo [OPTIONS]         run a server and a worker together on sample tasks
    taskworker --help | --version

Run `taskworker COMMAND --help` for the options of one command.
";

/// Runs the command line `args` (without the program name); returns the exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    match dispatch(args) {
        Ok(code) => code,
        Err(e) => {
            let mut msg = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                msg.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            log::error!("{msg}");
            eprintln!("taskworker: {msg}");
            e.exit_code()
        }
    }
}

fn dispatch(args: Vec<OsString>) -> Result<i32, Error> {
    let first = args.first().and_then(|a| a.to_str()).unwrap_or("");
    let rest = || args.iter().skip(1).cloned().collect::<Vec<_>>();
    match first {
        "--help" | "-h" | "help" => {
            print!("{USAGE}");
            if !cfg!(feature = "server") {
                println!("\nThis build is the worker alone: it lacks serve, enqueue and demo.");
            }
            Ok(0)
        }
        "--version" | "-V" => {
            println!(
                "taskworker {} ({}, rev {})",
                env!("CARGO_PKG_VERSION"),
                option_env!("TASKWORKER_TARGET").unwrap_or("unknown"),
                option_env!("TASKWORKER_GIT_REV").unwrap_or("unknown")
            );
            Ok(0)
        }
        "run" => run(rest()),
        #[cfg(feature = "server")]
        "serve" => crate::server::command::run(rest()).map(|()| 0),
        #[cfg(feature = "server")]
        "enqueue" => crate::cli::enqueue::run(rest()).map(|()| 0),
        "check-config" => check_config(rest()),
        #[cfg(feature = "server")]
        "demo" => crate::cli::demo::command(rest()),
        #[cfg(not(feature = "server"))]
        "serve" | "enqueue" | "demo" => Err(Error::Usage(format!(
            "`{first}` is not in this build: it is the worker alone \
             (built without the `server` feature), with only `run` and `check-config`"
        ))),

        // `run` is the default: `taskworker --config F` runs the worker.
        _ if first.is_empty() || first.starts_with('-') => run(args),
        other => Err(Error::Usage(format!(
            "unknown command {other:?}; see --help"
        ))),
    }
}

/// Parses the flags of `run` and `check-config`; `None` when `--help` was shown.
fn worker_args(args: Vec<OsString>, command: &str) -> Result<Option<Args>, Error> {
    let mut parsed = Args::default();
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("help") | Short('h') => {
                print!("{}", worker_help(command));
                return Ok(None);
            }
            Long("config") | Short('c') => parsed.config_file = Some(parser.value()?.into()),
            Long("env-file") => parsed.env_file = Some(parser.value()?.into()),
            Long(name) => {
                let flag = format!("--{name}");
                let Some(key) = Key::from_flag(&flag) else {
                    return Err(Error::Usage(format!(
                        "unknown option {flag}; see taskworker {command} --help"
                    )));
                };
                let value = parser.value()?.string()?;
                parsed.flags.push((key, value));
            }
            other => return Err(other.unexpected().into()),
        }
    }
    Ok(Some(parsed))
}

fn worker_help(command: &str) -> String {
    let mut text = format!(
        "USAGE: taskworker {command} [--config FILE] [--env-file FILE] [OPTIONS]\n\n\
         Every option also reads from its environment variable and the config file;\n\
         flags win over the environment, which wins over .env and the config file.\n\n\
         OPTIONS:\n    --config FILE           JSON config file (also CONFIG_FILE)\n    \
         --env-file FILE         .env file (default ./.env when present)\n"
    );
    for k in KEYS {
        text.push_str(&format!("    {:<23} {}\n", format!("{} V", k.flag), k.env));
    }
    text
}

fn run(args: Vec<OsString>) -> Result<i32, Error> {
    let Some(args) = worker_args(args, "run")? else {
        return Ok(0);
    };
    let config = Config::load(&args)?;
    args.export_dotenv()?;
    crate::logging::init(&config)?;
    // The worker checks what a run needs (Config::check_runnable) as it starts.
    Worker::new(config).reap_orphans().run()
}

fn check_config(args: Vec<OsString>) -> Result<i32, Error> {
    let Some(args) = worker_args(args, "check-config")? else {
        return Ok(0);
    };
    let config = Config::load(&args)?;
    let env = HandlerEnv::for_config(&config, crate::client::build_agent(&config)?);
    let registry = Registry::from_config(&config.handlers, &env)?;
    config.check_runnable(&registry)?;
    for warning in config.warnings() {
        eprintln!("warning: {warning}");
    }
    print!("{}", config.describe());
    Ok(0)
}
