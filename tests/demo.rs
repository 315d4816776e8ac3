//! `taskworker demo`: the README's first command runs the server and the
//! worker together, through the exec handler and the example scripts.

#![cfg(feature = "server")]

mod support;

use std::process::Command;

use support::{bin, temp_dir};

#[test]
fn demo_runs_every_example_task_type_through_the_worker() {
    let dir = temp_dir("demo");
    let out = Command::new(bin())
        .args(["demo", "--tasks", "18", "--concurrency", "3", "--dir"])
        .arg(&dir)
        .output()
        .expect("demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 18 tasks, of which the two with i % 7 == 6 have bad input on purpose (one e-mail, one image).
    assert!(stdout.contains("| 18 | 16 |"), "summary:\n{stdout}");
    assert!(stdout.contains("outbox"), "{stdout}");
    let files = |sub: &str| {
        std::fs::read_dir(dir.join(sub))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    assert_eq!(files("outbox"), 5, "one .eml per good e-mail");
    assert_eq!(files("reports"), 6, "one report per good report task");
    let processed = std::fs::read_dir(dir.join("images"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name().to_string_lossy().contains('-')
                && e.file_name().to_string_lossy().matches('-').count() == 2
        })
        .count();
    assert_eq!(processed, 5, "one transformed image per image task");
}

#[test]
fn demo_rejects_bad_options_with_64() {
    let out = Command::new(bin())
        .args(["demo", "--tasks", "zero"])
        .output()
        .expect("demo runs");
    assert_eq!(out.status.code(), Some(64));
}
