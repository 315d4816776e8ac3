//! `serve --data`: everything acknowledged survives kill -9; a torn last
//! journal line is skipped; SIGTERM exits 0.

#![cfg(feature = "server")]

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::json;
use support::{start_server, temp_dir, Api, ServeProcess};
use taskworker::ServerConfig;

#[test]
fn acknowledged_changes_survive_kill_9() {
    let dir = temp_dir("durability");
    let data = dir.join("tasks.jsonl");
    let data_arg = data.to_str().unwrap();
    let server = ServeProcess::start(&["--data", data_arg]);
    let api = Api::new(&server.url);
    // What the server acknowledged: id -> "queued" or "completed".
    let acked = Arc::new(Mutex::new(HashMap::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (api, acked, stop) = (api.clone(), Arc::clone(&acked), Arc::clone(&stop));
            thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let id = format!("w{w}-{n}");
                    match api.try_post_json("/tasks", &json!({"id": id, "type": "t"})) {
                        Some((201, _)) => acked.lock().unwrap().insert(id.clone(), "queued"),
                        _ => return,
                    };
                    let Some((200, body)) =
                        api.try_post_json("/tasks/claim", &json!({"worker_id": format!("w{w}")}))
                    else {
                        return;
                    };
                    let claimed = body["task"]["id"].as_str().unwrap_or_default().to_string();
                    let path = format!("/tasks/{claimed}/complete");
                    match api.try_post_json(
                        &path,
                        &json!({"result": {"n": n}, "worker_id": format!("w{w}")}),
                    ) {
                        Some((200, _)) => acked.lock().unwrap().insert(claimed, "completed"),
                        _ => return,
                    };
                }
            })
        })
        .collect();
    assert!(support::wait_until(Duration::from_secs(30), || acked
        .lock()
        .unwrap()
        .len()
        >= 200));
    let mut server = server;
    server.signal("KILL");
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(
        server.wait_exit(Duration::from_secs(10)),
        None,
        "killed by a signal"
    );
    drop(server);

    let restarted = ServeProcess::start(&["--data", data_arg]);
    let api = Api::new(&restarted.url);
    let acked = acked.lock().unwrap();
    for (id, state) in acked.iter() {
        let t = api.task(id);
        match *state {
            "completed" => assert_eq!(t["status"], "completed", "{id}"),
            _ => assert!(t["status"].is_string(), "{id} is known"),
        }
    }
}

#[test]
fn a_torn_last_line_is_skipped() {
    let dir = temp_dir("torn");
    let data = dir.join("tasks.jsonl");
    {
        let s = start_server(ServerConfig {
            data: Some(data.clone()),
            ..ServerConfig::default()
        });
        let api = Api::new(s.url());
        let (status, _) = api.post_json("/tasks", &json!({"id": "kept", "type": "t"}));
        assert_eq!(status, 201);
    }
    let mut text = std::fs::read_to_string(&data).unwrap();
    text.push_str(r#"{"id":"torn","type":"t","param"#);
    std::fs::write(&data, text).unwrap();
    let s = start_server(ServerConfig {
        data: Some(data.clone()),
        ..ServerConfig::default()
    });
    let api = Api::new(s.url());
    assert_eq!(api.task("kept")["status"], "queued");
    assert_eq!(api.get("/tasks/torn").0, 404);
    let (status, body) = api.claim("w", json!({}));
    assert_eq!((status, body["task"]["id"].as_str()), (200, Some("kept")));
}

#[test]
fn sigterm_stops_the_server_with_exit_0() {
    let dir = temp_dir("sigterm");
    let data = dir.join("tasks.jsonl");
    let mut server = ServeProcess::start(&["--data", data.to_str().unwrap()]);
    let api = Api::new(&server.url);
    let id = api.enqueue("t", json!({}));
    server.stop(Duration::from_secs(20));
    let text = std::fs::read_to_string(&data).unwrap();
    assert!(text.contains(&id));
}
