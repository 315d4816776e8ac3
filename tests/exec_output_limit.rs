//! A command that prints far more than `max_output` fails as `VALIDATION`
//! while the worker's memory stays bounded. Alone in its file so that no
//! other test moves this process's RSS.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{ctx, handler, run, self_status_kb, task};

#[test]
fn a_hundred_megabytes_of_output_fails_without_buffering_it() {
    let h = handler(
        json!({"exec": {"command": ["sh", "-c", "head -c 104857600 /dev/zero; sleep 30"]}}),
    );
    let before = self_status_kb("VmHWM");
    let start = Instant::now();
    let err = run(&h, &task("1", json!({})), &ctx(), Duration::from_secs(60)).unwrap_err();
    let peak = self_status_kb("VmHWM");
    eprintln!(
        "100 MB output: failed after {:?}; peak RSS {} MiB -> {} MiB, RSS now {} MiB",
        start.elapsed(),
        before >> 20,
        peak >> 20,
        self_status_kb("VmRSS") >> 20
    );
    assert_eq!(err.error_type, "VALIDATION");
    assert!(!err.retryable);
    assert!(
        peak.saturating_sub(before) < 50 << 20,
        "peak RSS grew by {} bytes",
        peak - before
    );
    // The program was killed, not waited for: its `sleep 30` did not run out.
    assert!(start.elapsed() < Duration::from_secs(25));
}

#[test]
fn a_hundred_megabytes_of_stderr_keeps_only_its_tail() {
    let script =
        "yes 'a line of stderr' | head -c 104857600 >&2; printf '\\nthe end\\n' >&2; exit 1";
    let h = handler(json!({"exec": {"command": ["sh", "-c", script]}}));
    let before = self_status_kb("VmHWM");
    let err = run(&h, &task("1", json!({})), &ctx(), Duration::from_secs(60)).unwrap_err();
    let peak = self_status_kb("VmHWM");
    eprintln!(
        "100 MB stderr: peak RSS {} MiB -> {} MiB",
        before >> 20,
        peak >> 20
    );
    assert_eq!(err.message, "the end");
    assert!(err.traceback.unwrap().len() <= 4096);
    assert!(
        peak.saturating_sub(before) < 50 << 20,
        "peak RSS grew by {} bytes",
        peak - before
    );
}
