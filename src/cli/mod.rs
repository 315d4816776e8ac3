//! The command line: picks the subcommand, parses its flags, runs it, and
//! maps its error to an exit code.

#[cfg(feature = "server")]
pub(crate) mod demo;
#[cfg(feature = "server")]
pub(crate) mod enqueue;
pub(crate) mod schedules;

use std::ffi::OsString;

use lexopt::prelude::*;

use crate::config::suggest::did_you_mean;
use crate::config::{Args, Config, Key, RawConfig, KEYS};
use crate::error::Error;
use crate::handlers::{HandlerEnv, Registry};
use crate::worker::Worker;

/// The text of `--help`.
pub const USAGE: &str = "\
taskworker — a small, fast, dependable background worker for HTTP task queues

USAGE:
    taskworker [run] [OPTIONS]        run the worker daemon (the default)
    taskworker check-config [OPTIONS] validate and print the effective configuration
    taskworker schedules [OPTIONS]    print the next firings of each schedule
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
                // An error that shows its cause already needs it only once.
                let cause_text = cause.to_string();
                if !msg.ends_with(&cause_text) {
                    msg.push_str(&format!(": {cause_text}"));
                }
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
        "schedules" => crate::cli::schedules::run(rest()),
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
            "unknown command {other:?}{}; see --help",
            did_you_mean(other, COMMANDS.iter().copied())
        ))),
    }
}

/// The commands, for "did you mean".
const COMMANDS: &[&str] = &[
    "run",
    "check-config",
    "schedules",
    "serve",
    "enqueue",
    "demo",
    "help",
];

/// The flags of `run` and `check-config` besides the keys'.
const FILE_FLAGS: &[&str] = &["--config", "--env-file", "--help"];

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
                    let known = FILE_FLAGS
                        .iter()
                        .copied()
                        .chain(KEYS.iter().map(|k| k.flag));
                    return Err(Error::Usage(format!(
                        "unknown option {flag}{}; see taskworker {command} --help",
                        did_you_mean(&flag, known)
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

/// The text of `run --help` and `check-config --help`: every key from the
/// one table, with its names, default and meaning.
fn worker_help(command: &str) -> String {
    let mut text = format!(
        "USAGE: taskworker {command} [--config FILE] [--env-file FILE] [OPTIONS]\n\n\
         Each option is also an environment variable and a config-file key (shown\n\
         after it). Lowest first: defaults, the config file, .env, the environment,\n\
         flags. Durations: 30, 500ms, 30s, 5m. Sizes: 512M. `taskworker check-config`\n\
         prints the values in effect and where each one came from.\n\n\
         OPTIONS:\n    \
         -c, --config FILE       CONFIG_FILE\n{0}the JSON config file [default: none]\n    \
         --env-file FILE\n{0}the .env file [default: ./.env when present]\n",
        " ".repeat(HELP_INDENT)
    );
    for k in KEYS {
        text.push_str(&format!(
            "    {:<22}  {}, {}\n",
            format!("{} V", k.flag),
            k.env,
            k.file
        ));
        let width = 79 - HELP_INDENT;
        let mut lines = wrap(&plain(k.meaning), width);
        // The default stays whole, so that it reads (and greps) as one.
        let default = format!("[default: {}]", plain(k.default));
        match lines.last_mut() {
            Some(last) if last.chars().count() + 1 + default.chars().count() <= width => {
                last.push(' ');
                last.push_str(&default);
            }
            _ => lines.push(default),
        }
        for line in lines {
            text.push_str(&format!("{}{line}\n", " ".repeat(HELP_INDENT)));
        }
    }
    text.push_str(
        "\nHandlers are configured in the config file only (\"handlers\"); see\n\
         packaging/examples/config.json.\n",
    );
    text
}

/// Where the meaning of an option starts in `--help`.
const HELP_INDENT: usize = 12;

/// Markdown to terminal text: the docs' code spans lose their backticks.
fn plain(markdown: &str) -> String {
    markdown.replace('`', "")
}

/// `text` broken at spaces into lines of at most `width` characters (a
/// longer word keeps its own line); for the `--help` texts.
pub(crate) fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split(' ') {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + word.chars().count() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

fn run(args: Vec<OsString>) -> Result<i32, Error> {
    let Some(args) = worker_args(args, "run")? else {
        return Ok(0);
    };
    // The environment as it was before `.env` joins it: a reload reads
    // `.env` again as `.env`, under the same environment.
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let lookup = move |name: &str| env.get(name).cloned();
    let config = Config::load_from(&args, &lookup)?;
    args.export_dotenv()?;
    crate::logging::init(&config)?;
    // The worker checks what a run needs (Config::check_runnable) as it
    // starts, and again on each reload (SIGHUP), which reads every layer
    // anew with the same command line.
    Worker::new(config)
        .reap_orphans()
        .reload_with(move || Config::load_from(&args, &lookup))
        .run()
}

fn check_config(args: Vec<OsString>) -> Result<i32, Error> {
    let Some(args) = worker_args(args, "check-config")? else {
        return Ok(0);
    };
    let env = |name: &str| std::env::var(name).ok();
    let raw = RawConfig::gather(&args, &env)?;
    let config = raw.validate(&env)?;
    let handler_env = HandlerEnv::for_config(&config, crate::client::build_agent(&config)?);
    let registry = Registry::from_config(&config.handlers, &handler_env)?;
    config.check_runnable(&registry)?;
    crate::schedule::runnable(&config.schedules, &registry)?;
    for warning in config.warnings() {
        eprintln!("warning: {warning}");
    }
    print!("{}", config.describe_origins(&raw, &env));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_breaks_at_spaces_within_the_width() {
        assert_eq!(wrap("a bb ccc dddd", 6), ["a bb", "ccc", "dddd"]);
        assert_eq!(wrap("averylongword x", 4), ["averylongword", "x"]);
        assert_eq!(wrap("", 4), [""]);
    }

    #[test]
    fn help_names_every_key_with_its_default() {
        let help = worker_help("run");
        for k in KEYS {
            assert!(help.contains(k.flag) && help.contains(k.env), "{}", k.env);
            assert!(
                help.contains(&format!("[default: {}]", plain(k.default))),
                "{}",
                k.env
            );
        }
        assert!(help.lines().all(|l| l.chars().count() <= 79), "{help}");
    }
}
