//! `serve --data` keeps its word: a change the journal could not write is
//! refused and does not exist afterwards, `/health` turns 503 with the reason
//! and every change is refused until a restart; heartbeats journal only the
//! lease; finished tasks are dropped after `--retain`.
//!
//! The failing disk is real: the server runs under a file size limit
//! (`ulimit -f`, with SIGXFSZ ignored), so the write that would pass it
//! fails with EFBIG, as a write to a full disk fails with ENOSPC.

#![cfg(feature = "server")]

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use support::{bin, temp_dir, wait_until, Api, ServeProcess};

#[test]
fn a_journal_that_cannot_grow_refuses_changes_until_a_restart() {
    let data = temp_dir("journal-full").join("tasks.jsonl");
    let data_arg = data.to_str().expect("utf-8 path");
    let mut cmd = Command::new("sh");
    // 16 blocks: 8 KiB with 512-byte blocks, 16 KiB with 1 KiB ones.
    cmd.arg("-c")
        .arg(r#"trap '' XFSZ; ulimit -f 16 && exec "$0" serve --listen 127.0.0.1:0 --data "$1""#)
        .arg(bin())
        .arg(data_arg);
    let mut server = ServeProcess::from_command(cmd);
    let api = Api::new(&server.url);
    let padding = "x".repeat(1000);
    let mut acked = Vec::new();
    let mut refused = None;
    for n in 0..200 {
        let id = format!("t-{n}");
        let (status, body) = api.post_json(
            "/tasks",
            &json!({"id": id, "type": "t", "parameters": {"pad": padding}}),
        );
        match status {
            201 => acked.push(id),
            503 => {
                refused = Some(id);
                break;
            }
            other => panic!("enqueue {id}: {other} {body}"),
        }
    }
    let refused = refused.expect("the journal hit the file size limit");
    assert!(!acked.is_empty(), "some tasks fit");

    let (status, health) = api.get("/health");
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["status"], "unhealthy");
    let reason = health["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(data_arg),
        "the reason names the journal: {reason}"
    );
    assert_eq!(
        api.get(&format!("/tasks/{refused}")).0,
        404,
        "a refused enqueue does not exist"
    );
    assert_eq!(
        api.get(&format!("/tasks/{}", acked[0])).0,
        200,
        "reads still answer"
    );
    let (status, _) = api.post_json("/tasks", &json!({"id": "small", "type": "t"}));
    assert_eq!(
        status, 503,
        "every change is refused, even one that would fit"
    );
    assert_eq!(api.claim("w", json!({})).0, 503);
    server.stop(Duration::from_secs(10));

    // A restart without the limit: what was acknowledged is there, nothing else.
    let mut again = ServeProcess::start(&["--data", data_arg]);
    let api = Api::new(&again.url);
    assert_eq!(api.get("/health").0, 200);
    for id in &acked {
        assert_eq!(api.task(id)["status"], "queued", "{id}");
    }
    assert_eq!(api.get(&format!("/tasks/{refused}")).0, 404);
    assert_eq!(api.get("/tasks/small").0, 404);
    again.stop(Duration::from_secs(10));
}

#[test]
fn a_heartbeat_journals_the_lease_only() {
    let data = temp_dir("journal-renew").join("tasks.jsonl");
    let mut server = ServeProcess::start(&["--data", data.to_str().expect("utf-8 path")]);
    let api = Api::new(&server.url);
    let id = api.enqueue("t", json!({"secret": "parameters-stay-put"}));
    assert_eq!(api.claim("w", json!({})).0, 200);
    let (status, body) = api.post_json(
        &format!("/tasks/{id}/heartbeat"),
        &json!({"worker_id": "w"}),
    );
    assert_eq!(status, 200, "{body}");
    // Acknowledged means synced: the line is in the file now.
    let text = std::fs::read_to_string(&data).expect("journal");
    let last = text.lines().last().expect("a line");
    assert!(last.contains("\"renew\"") && last.contains(&id), "{last}");
    assert!(!last.contains("parameters-stay-put"), "{last}");
    server.stop(Duration::from_secs(10));
}

#[test]
fn finished_tasks_are_dropped_after_the_retention_period() {
    let data = temp_dir("journal-retain").join("tasks.jsonl");
    let data_arg = data.to_str().expect("utf-8 path");
    let mut server = ServeProcess::start(&["--data", data_arg, "--retain", "500ms"]);
    let api = Api::new(&server.url);
    let done = api.enqueue("t", json!({}));
    let (status, _) = api.claim("w", json!({}));
    assert_eq!(status, 200);
    let (status, body) = api.post_json(
        &format!("/tasks/{done}/complete"),
        &json!({"result": 1, "worker_id": "w"}),
    );
    assert_eq!(status, 200, "{body}");
    let waiting = api.enqueue("t", json!({}));
    assert!(
        wait_until(Duration::from_secs(10), || api
            .get(&format!("/tasks/{done}"))
            .0
            == 404),
        "the completed task is dropped"
    );
    assert_eq!(
        api.task(&waiting)["status"],
        "queued",
        "a queued task is kept"
    );
    let text = std::fs::read_to_string(&data).expect("journal");
    assert!(
        text.contains(&format!("{{\"dropped\":\"{done}\"}}")),
        "{text}"
    );
    server.stop(Duration::from_secs(10));

    let mut again = ServeProcess::start(&["--data", data_arg]);
    let api = Api::new(&again.url);
    assert_eq!(api.get(&format!("/tasks/{done}")).0, 404);
    assert_eq!(api.task(&waiting)["status"], "queued");
    again.stop(Duration::from_secs(10));
    let text = std::fs::read_to_string(&data).expect("journal");
    assert!(!text.contains(&done), "compaction forgot it: {text}");
}
