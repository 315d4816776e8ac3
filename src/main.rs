//! The `taskworker` binary: parse, run, pick the exit code.

fn main() {
    std::process::exit(taskworker::run_command_line(
        std::env::args_os().skip(1).collect(),
    ));
}
