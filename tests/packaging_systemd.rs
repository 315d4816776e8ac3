//! The systemd units in `packaging/systemd/`, the worker's and the server's,
//! load without a warning and keep their hardening: `systemd-analyze
//! security` rates each one's exposure 2.0 or lower.

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The highest overall exposure the unit may have (systemd's 0.0–10.0 scale).
const MAX_EXPOSURE: f64 = 2.0;

/// The worker's unit and the server's.
const UNITS: [&str; 2] = ["taskworker.service", "taskworker-serve.service"];

/// The unit `name` as shipped.
fn unit_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("packaging/systemd")
        .join(name)
}

/// What a finished `systemd-analyze` run printed.
struct Output {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs `systemd-analyze ARGS`, killing it after 60 s; `None` when it is not
/// installed.
fn systemd_analyze(args: &[&std::ffi::OsStr]) -> Option<Output> {
    let mut child = match Command::new("systemd-analyze")
        .args(args)
        // Plain text: no pager, no colours, whatever the environment says.
        .env("SYSTEMD_PAGER", "cat")
        .env("SYSTEMD_COLORS", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("cannot run systemd-analyze: {e}"),
    };
    // Read both pipes on their own threads, so a full pipe cannot stall the child.
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = read(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = read(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for systemd-analyze") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("systemd-analyze {args:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Some(Output {
        success: status.success(),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    })
}

/// The number in "Overall exposure level for taskworker.service: 1.1 OK".
fn overall_exposure(report: &str) -> Option<f64> {
    let line = report
        .lines()
        .find(|l| l.contains("Overall exposure level for"))?;
    let (_, rest) = line.rsplit_once(": ")?;
    rest.split_whitespace().next()?.parse().ok()
}

#[test]
fn units_verify_without_warnings() {
    for name in UNITS {
        if !verifies_without_warnings(name) {
            return;
        }
    }
}

/// Checks the unit `name` with `systemd-analyze verify`; false when that
/// tool is missing.
fn verifies_without_warnings(name: &str) -> bool {
    let unit = std::fs::read_to_string(unit_path(name)).expect("read the unit");
    // verify checks that ExecStart's program exists; the installed path does
    // not on a build machine, so verify a copy that starts the binary just built.
    let shipped = "ExecStart=/usr/local/bin/taskworker ";
    assert!(unit.contains(shipped), "{name} should start {shipped:?}");
    let copy = unit.replace(
        shipped,
        &format!("ExecStart={} ", env!("CARGO_BIN_EXE_taskworker")),
    );
    // The file name is the unit name, so the copy keeps it in a directory of its own.
    let dir = std::env::temp_dir().join(format!("taskworker-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    let path = dir.join(name);
    std::fs::write(&path, copy).expect("write the unit copy");

    let result = systemd_analyze(&["verify".as_ref(), path.as_os_str()]);
    let _ = std::fs::remove_dir_all(&dir);
    let Some(out) = result else {
        support::skip("systemd-analyze not found (apt-get install systemd)");
        return false;
    };
    // verify exits 0 on unknown keys and bad values: its warnings are on stderr.
    assert!(
        out.success && out.stderr.trim().is_empty() && out.stdout.trim().is_empty(),
        "systemd-analyze verify complained about {name}:\n{}{}",
        out.stdout,
        out.stderr
    );
    true
}

#[test]
fn units_exposure_is_at_most_two() {
    for name in UNITS {
        let Some(out) = systemd_analyze(&[
            "security".as_ref(),
            "--offline=true".as_ref(),
            "--no-pager".as_ref(),
            unit_path(name).as_os_str(),
        ]) else {
            support::skip("systemd-analyze not found (apt-get install systemd)");
            return;
        };
        assert!(
            out.stderr.trim().is_empty(),
            "systemd-analyze security warned about {name}:\n{}",
            out.stderr
        );
        let exposure = overall_exposure(&out.stdout)
            .unwrap_or_else(|| panic!("no overall exposure in:\n{}", out.stdout));
        eprintln!("{name}: exposure {exposure}");
        assert!(
            exposure <= MAX_EXPOSURE,
            "{name}: exposure {exposure} > {MAX_EXPOSURE}:\n{}",
            out.stdout
        );
    }
}

#[test]
fn unit_stops_after_the_drain_reloads_with_sighup_and_keeps_bad_configs_down() {
    let unit = std::fs::read_to_string(unit_path("taskworker.service")).expect("read the unit");
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for setting in [
        "Type=notify",
        "KillMode=mixed",
        "Restart=on-failure",
        "RestartPreventExitStatus=78",
        // `systemctl reload`: the worker reloads on SIGHUP (Type=notify-reload
        // would do it without this line, but needs systemd 253).
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(lines.contains(&setting), "the unit lacks {setting}");
    }
    // SHUTDOWN_TIMEOUT (25 s) plus the 5 s between a handler's SIGTERM and
    // SIGKILL must fit before systemd kills the worker.
    let stop = lines
        .iter()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.trim_end_matches('s').parse::<u64>().ok())
        .expect("TimeoutStopSec=<N>s");
    assert!(
        stop > 25 + 5,
        "TimeoutStopSec={stop}s leaves no time to drain"
    );
}

#[test]
fn serve_unit_keeps_bad_configs_down_and_its_key_out_of_the_command_line() {
    let unit =
        std::fs::read_to_string(unit_path("taskworker-serve.service")).expect("read the unit");
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for setting in [
        "Restart=on-failure",
        "RestartPreventExitStatus=78 64",
        "LoadCredential=api_key:/etc/taskworker/serve_api_key",
    ] {
        assert!(lines.contains(&setting), "the serve unit lacks {setting}");
    }
    let exec = lines
        .iter()
        .find(|l| l.starts_with("ExecStart="))
        .expect("ExecStart=");
    assert!(
        exec.contains("--api-key-file ${CREDENTIALS_DIRECTORY}/api_key")
            && !exec.contains("--api-key "),
        "the key comes from a credential file, never the command line: {exec}"
    );
}

#[test]
fn reads_the_overall_exposure() {
    let report = "✗ PrivateNetwork=  Service has access  0.5\n\n\
                  → Overall exposure level for taskworker.service: 1.1 OK 🙂\n";
    assert_eq!(overall_exposure(report), Some(1.1));
    assert_eq!(overall_exposure("nothing here"), None);
}
