//! `/health` and `/metrics`: the server's counts as JSON and as Prometheus text.

use serde_json::{json, Value};

use super::record::Status;
use super::store::Snapshot;
use crate::prometheus::{family, labels, single, Kind};

/// The `/health` body.
pub fn health(s: &Snapshot) -> Value {
    json!({
        "status": "healthy",
        "uptime_seconds": (s.uptime_seconds * 1000.0).round() / 1000.0,
        "counts": super::admin::counts_json(&s.counts),
    })
}

/// The `/metrics` body in the Prometheus text format, version 0.0.4.
pub fn prometheus(s: &Snapshot) -> String {
    let mut out = String::with_capacity(2048);
    let by_status: Vec<(String, u64)> = Status::ALL
        .iter()
        .map(|st| (labels(&[("status", st.as_str())]), s.counts[st.index()]))
        .collect();
    family(
        &mut out,
        "taskworker_server_tasks",
        Kind::Gauge,
        "Tasks by status.",
        &by_status,
    );
    let t = &s.totals;
    let counters: [(&str, &str, u64); 10] = [
        (
            "taskworker_server_enqueued_total",
            "Tasks created.",
            t.enqueued,
        ),
        (
            "taskworker_server_deliveries_total",
            "Tasks handed to a worker.",
            t.delivered,
        ),
        (
            "taskworker_server_completed_total",
            "Tasks completed.",
            t.completed,
        ),
        (
            "taskworker_server_failed_total",
            "Tasks failed for good.",
            t.failed,
        ),
        (
            "taskworker_server_retries_total",
            "Failures put back for a retry.",
            t.retried,
        ),
        (
            "taskworker_server_lease_expired_total",
            "Leases that ran out.",
            t.lease_expired,
        ),
        (
            "taskworker_server_released_total",
            "Tasks put back by a claim cancel.",
            t.released,
        ),
        (
            "taskworker_server_heartbeats_total",
            "Heartbeats accepted.",
            t.heartbeats,
        ),
        (
            "taskworker_server_claims_empty_total",
            "Claims answered with no task.",
            t.claims_empty,
        ),
        (
            "taskworker_server_claims_served_total",
            "Claims answered with at least one task.",
            t.claims_served,
        ),
    ];
    for (name, help, value) in counters {
        single(&mut out, name, Kind::Counter, help, value);
    }
    if let Some(syncs) = s.journal_syncs {
        single(
            &mut out,
            "taskworker_server_journal_syncs_total",
            Kind::Counter,
            "Syncs of the journal to disk (--data); changes that arrive together share one.",
            syncs,
        );
    }
    single(
        &mut out,
        "taskworker_server_waiting_claims",
        Kind::Gauge,
        "Claims parked in a long poll.",
        s.waiting,
    );
    single(
        &mut out,
        "taskworker_server_uptime_seconds",
        Kind::Gauge,
        "Seconds since start.",
        format!("{:.3}", s.uptime_seconds),
    );
    out
}
