//! A claim hands a task to exactly one worker, under contention.

#![cfg(feature = "server")]

#[macro_use]
mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::thread;

use serde_json::json;
use support::{start_server, Api};
use taskworker::ServerConfig;

fn eight_threads_claim_ten_thousand_tasks_each_exactly_once() {
    const TASKS: usize = 10_000;
    let s = start_server(ServerConfig::default());
    let api = Api::new(s.url());
    for chunk in 0..TASKS / 1000 {
        let handles: Vec<_> = (0..4)
            .map(|part| {
                let api = api.clone();
                thread::spawn(move || {
                    for i in 0..250 {
                        let id = format!("t-{chunk}-{part}-{i}");
                        let (status, _) = api.post_json("/tasks", &json!({"id": id, "type": "x"}));
                        assert_eq!(status, 201);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = (0..8)
        .map(|w| {
            let (api, seen) = (api.clone(), Arc::clone(&seen));
            thread::spawn(move || {
                let mut mine = Vec::new();
                loop {
                    let (status, body) = api.claim(&format!("w{w}"), json!({"max_tasks": 7}));
                    if status == 404 {
                        break;
                    }
                    assert_eq!(status, 200, "{body}");
                    for t in body["tasks"].as_array().unwrap() {
                        mine.push(t["id"].as_str().unwrap().to_string());
                    }
                }
                seen.lock().unwrap().extend(mine);
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let seen = seen.lock().unwrap();
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(seen.len(), TASKS, "every task handed out once");
    assert_eq!(unique.len(), TASKS, "no task handed out twice");
    let (_, health) = api.get("/health");
    assert_eq!(health["counts"]["claimed"], TASKS);
}

per_store!(eight_threads_claim_ten_thousand_tasks_each_exactly_once,);
