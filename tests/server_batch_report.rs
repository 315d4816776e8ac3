//! The reference server's `POST /tasks/report`: each outcome gets the status
//! its single call would have, in order, on every store; a batch above 100
//! outcomes, a body that is not a batch and a missing key are refused whole;
//! a core-only server has no such route.

#![cfg(feature = "server")]

mod support;

use serde_json::{json, Value};
use support::{start_server, Api};
use taskworker::ServerConfig;

/// Claims `n` tasks of type `t` for `worker`; returns their ids.
fn claimed(api: &Api, worker: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let id = api.enqueue("t", json!({}));
            let (status, body) = api.claim(worker, json!({"types": ["t"]}));
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["task"]["id"], id.as_str());
            id
        })
        .collect()
}

fn statuses(body: &Value) -> Vec<(String, u64)> {
    body["results"]
        .as_array()
        .expect("a results list")
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap_or("").to_string(),
                r["status"].as_u64().expect("a status"),
            )
        })
        .collect()
}

fn mixed_items_get_the_status_of_their_single_call() {
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    let ids = claimed(&api, "w", 4);
    let someone_elses = claimed(&api, "other", 1).remove(0);
    let (status, body) = api.post_json(
        "/tasks/report",
        &json!({"worker_id": "w", "outcomes": [
            {"id": ids[0], "complete": {"result": {"n": 1}, "duration_ms": 3}},
            {"id": ids[1], "fail": {"error": "bad input", "error_type": "VALIDATION", "retryable": false}},
            {"id": "no-such-task", "complete": {"result": null}},
            {"id": someone_elses, "complete": {"result": {}}},
            {"id": ids[2], "complete": {"duration_ms": 1}},
            {"id": ids[3], "fail": {"error": 5}},
            {"id": ids[3], "complete": {"result": 1}, "fail": {"error": "x"}},
            {"complete": {"result": 1}},
            "not an object",
            {"id": ids[0], "complete": {"result": {"n": 2}}},
        ]}),
    );
    assert_eq!(status, 200, "{body}");
    let got = statuses(&body);
    let want = [
        (ids[0].as_str(), 200),
        (ids[1].as_str(), 200),
        ("no-such-task", 404),
        (someone_elses.as_str(), 409),
        (ids[2].as_str(), 400),
        (ids[3].as_str(), 400),
        (ids[3].as_str(), 400),
        ("", 400),
        ("", 400),
        (ids[0].as_str(), 409),
    ];
    let want: Vec<(String, u64)> = want.iter().map(|(i, s)| (i.to_string(), *s)).collect();
    assert_eq!(got, want, "{body}");
    let errors = body["results"][4]["error"].as_str().unwrap_or("");
    assert!(
        errors.contains("`result`"),
        "the error names the field: {body}"
    );

    assert_eq!(api.task(&ids[0])["status"], "completed");
    assert_eq!(api.task(&ids[0])["result"], json!({"n": 1}));
    assert_eq!(api.task(&ids[1])["status"], "failed");
    assert_eq!(api.task(&ids[1])["error_type"], "VALIDATION");
    for untouched in [&ids[2], &ids[3], &someone_elses] {
        assert_eq!(api.task(untouched)["status"], "claimed", "{untouched}");
    }
    // What a batch left claimed can still be reported singly.
    let (status, _) = api.post_json(
        &format!("/tasks/{}/complete", ids[2]),
        &json!({"result": {}, "worker_id": "w"}),
    );
    assert_eq!(status, 200);
}

fn a_batch_above_the_limit_or_not_a_batch_is_refused_whole() {
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    let id = claimed(&api, "w", 1).remove(0);
    let item = json!({"id": id, "complete": {"result": {}}});
    let (status, body) = api.post_json(
        "/tasks/report",
        &json!({"worker_id": "w", "outcomes": vec![item.clone(); 101]}),
    );
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"].as_str().unwrap_or("").contains("at most 100"),
        "{body}"
    );
    assert_eq!(api.task(&id)["status"], "claimed", "nothing applied");
    for (bad, field) in [
        (json!({"outcomes": [item.clone()]}), "`worker_id`"),
        (json!({"worker_id": "w"}), "`outcomes`"),
        (
            json!({"worker_id": "w", "outcomes": {"id": id}}),
            "`outcomes`",
        ),
    ] {
        let (status, body) = api.post_json("/tasks/report", &bad);
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["error"].as_str().unwrap_or("").contains(field),
            "{bad}: {body}"
        );
    }
    let (status, _) = api.post_raw("/tasks/report", b"{\"worker_id\": ");
    assert_eq!(status, 400);
    let (status, body) = api.post_json(
        "/tasks/report",
        &json!({"worker_id": "w", "outcomes": vec![item; 100]}),
    );
    assert_eq!(status, 200, "100 is allowed: {body}");
    let got = statuses(&body);
    assert_eq!(got.len(), 100);
    assert_eq!(got[0].1, 200);
    assert!(got[1..].iter().all(|(_, s)| *s == 409), "{body}");
}

fn a_batch_needs_the_key() {
    let server = start_server(ServerConfig {
        api_key: Some("sesame".into()),
        ..ServerConfig::default()
    });
    let api = Api::new(server.url()).with_key("sesame");
    let id = claimed(&api, "w", 1).remove(0);
    let batch = json!({"worker_id": "w", "outcomes": [{"id": id, "complete": {"result": {}}}]});
    let (status, _) = Api::new(server.url()).post_json("/tasks/report", &batch);
    assert_eq!(status, 401);
    let (status, _) = Api::new(server.url())
        .with_key("wrong")
        .post_json("/tasks/report", &batch);
    assert_eq!(status, 401);
    assert_eq!(api.task(&id)["status"], "claimed");
    let (status, body) = api.post_json("/tasks/report", &batch);
    assert_eq!(status, 200);
    assert_eq!(statuses(&body), vec![(id.clone(), 200)]);
    assert_eq!(api.task(&id)["status"], "completed");
}

per_store!(
    mixed_items_get_the_status_of_their_single_call,
    a_batch_above_the_limit_or_not_a_batch_is_refused_whole,
    a_batch_needs_the_key,
);

#[test]
fn a_core_only_server_has_no_batch_report() {
    let server = start_server(ServerConfig {
        core_only: true,
        ..ServerConfig::default()
    });
    let api = Api::new(server.url());
    let (status, body) = api.post_json("/tasks/report", &json!({"worker_id": "w", "outcomes": []}));
    assert_eq!(status, 404, "{body}");
}

/// `taskworker_server_journal_syncs_total` from `/metrics`.
fn journal_syncs(api: &Api) -> u64 {
    let (_, text) = api.get_text("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix("taskworker_server_journal_syncs_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no journal syncs in /metrics:\n{text}"))
}

#[test]
fn with_a_journal_a_batch_report_takes_one_sync_where_single_reports_take_one_each() {
    let dir = support::temp_dir("batch-journal");
    let server = start_server(ServerConfig {
        data: Some(dir.join("journal.jsonl")),
        ..ServerConfig::default()
    });
    let api = Api::new(server.url());
    let singles = claimed(&api, "w", 10);
    let before = journal_syncs(&api);
    for id in &singles {
        let (status, body) = api.post_json(
            &format!("/tasks/{id}/complete"),
            &json!({"worker_id": "w", "result": {}}),
        );
        assert_eq!(status, 200, "{body}");
    }
    let single_syncs = journal_syncs(&api) - before;
    assert!(
        single_syncs >= 10,
        "{single_syncs} syncs for 10 single reports"
    );

    let batch = claimed(&api, "w", 10);
    let before = journal_syncs(&api);
    let outcomes: Vec<Value> = batch
        .iter()
        .map(|id| json!({"id": id, "complete": {"result": {}}}))
        .collect();
    let (status, body) = api.post_json(
        "/tasks/report",
        &json!({"worker_id": "w", "outcomes": outcomes}),
    );
    assert_eq!(status, 200, "{body}");
    assert!(statuses(&body).iter().all(|(_, s)| *s == 200), "{body}");
    let batch_syncs = journal_syncs(&api) - before;
    eprintln!(
        "journal syncs: {single_syncs} for 10 single reports, {batch_syncs} for a batch of 10"
    );
    // One for the batch; a second would be the journal's own upkeep.
    assert!(batch_syncs <= 2, "{batch_syncs} syncs for a batch of 10");
    // Durable: a server started on the same journal has them completed.
    drop(server);
    let again = start_server(ServerConfig {
        data: Some(dir.join("journal.jsonl")),
        ..ServerConfig::default()
    });
    let api = Api::new(again.url());
    for id in singles.iter().chain(&batch) {
        assert_eq!(api.task(id)["status"], "completed", "task {id}");
    }
}
