//! The command line: picks the subcommand, runs it, maps its error to an exit code.

use std::ffi::OsString;

use crate::error::Error;

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
        Ok(()) => 0,
        Err(e) => {
            eprintln!("taskworker: {e}");
            e.exit_code()
        }
    }
}

fn dispatch(mut args: Vec<OsString>) -> Result<(), Error> {
    let first = args
        .first()
        .and_then(|a| a.to_str())
        .unwrap_or("")
        .to_string();
    match first.as_str() {
        "serve" => crate::server::command::run(args.split_off(1)),
        "enqueue" => crate::enqueue::run(args.split_off(1)),
        "--help" | "-h" | "help" => {
            print!("{USAGE}");
            Ok(())
        }
        "--version" | "-V" => {
            println!("taskworker {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        other => Err(Error::Usage(format!(
            "unknown command {other:?}; see --help"
        ))),
    }
}
