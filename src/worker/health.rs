//! The health server on `HEALTH_ADDR`, on its own thread: `/health`
//! (liveness), `/ready` (fit for work), `/status` (what each processor runs,
//! what waits for its type's limit) and `/metrics` (Prometheus text). It
//! only reads shared state.

use std::borrow::Cow;
use std::net::TcpListener;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::client::CLAIM_MARGIN;
use crate::error::Error;
use crate::listener::{Limits, Listener, Request, Responder, Response};
use crate::worker::connectivity::{ApiState, Connectivity};
use crate::worker::fault;
use crate::worker::liveness::Role;
use crate::worker::metrics::{family, labels, Kind};
use crate::worker::outbox::reports_backed_up;
use crate::worker::WorkerState;

/// A running health server; dropping it stops its threads.
pub struct HealthServer {
    _listener: Listener,
}

impl HealthServer {
    /// Binds `addr` and serves from new threads, within [`Limits::health`].
    /// A port in use is an error naming the address.
    pub fn start(addr: &str, state: Arc<WorkerState>) -> Result<HealthServer, Error> {
        let listener = TcpListener::bind(addr)
            .map_err(|e| Error::io(format!("HEALTH_ADDR {addr}: cannot listen"), e))?;
        let listener = Listener::start(
            listener,
            "taskworker-health",
            Limits::health(),
            Arc::new(Endpoints(state)),
        )
        .map_err(|e| Error::io(format!("HEALTH_ADDR {addr}: cannot serve"), e))?;
        log::info!("health server on http://{}", listener.addr());
        Ok(HealthServer {
            _listener: listener,
        })
    }
}

/// The health endpoints, answered from the worker's shared state.
struct Endpoints(Arc<WorkerState>);

impl Responder for Endpoints {
    fn respond(&self, request: Request) -> Response {
        // A panic while answering is the health role's death: the worker's
        // own view of itself cannot be trusted any more.
        let _alive = self.0.liveness.alive(Role::Health);
        let head = &request.head;
        if head.method != "GET" && head.method != "HEAD" {
            return Response::error(405, "only GET");
        }
        let path = head.path();
        match path {
            "/health" | "/healthz" => {
                let (healthy, body) = health(&self.0);
                Response::json(if healthy { 200 } else { 503 }, &body)
            }
            "/ready" | "/readyz" => {
                let (ready, body) = ready(&self.0);
                Response::json(if ready { 200 } else { 503 }, &body)
            }
            "/status" => Response::json(200, &status(&self.0)),
            "/metrics" => Response::new(200, "text/plain; version=0.0.4", metrics(&self.0)),
            _ => Response::error(404, format!("no route {path}")),
        }
    }
}

/// Liveness: 200 while every role's threads live (the processors at their
/// configured number, not counting stuck ones) and the credentials work.
/// While the worker drains, threads end on purpose; a death still counts.
pub fn health(state: &WorkerState) -> (bool, Value) {
    let stats = &state.stats;
    let liveness = &state.liveness;
    // The pool's size, which a reload changes; threads retiring from it
    // still count as running until they exit, so never too few.
    let configured = stats.processors.load(Relaxed);
    let working = liveness
        .running(Role::Processor)
        .saturating_sub(stats.stuck_threads.load(Relaxed));
    let reason = match liveness.trouble(working, configured, state.shutdown.is_stopping()) {
        Some(trouble) => Some(trouble),
        None => (state.connectivity.state() == ApiState::Unauthorized)
            .then(|| "task API refused the credentials".to_string()),
    };
    let healthy = reason.is_none();
    let last = stats.last_task_at_ms.load(Relaxed);
    let last_task_at = (last > 0).then(|| {
        crate::timestamp::format(crate::bounded::time_after(
            std::time::UNIX_EPOCH,
            Duration::from_millis(last),
        ))
    });
    let mut threads = serde_json::Map::new();
    let mut died = serde_json::Map::new();
    for role in Role::ALL {
        if role != Role::Health {
            threads.insert(role.name().into(), json!(liveness.running(role)));
        }
        if liveness.deaths(role) > 0 {
            died.insert(role.name().into(), json!(liveness.deaths(role)));
        }
    }
    threads.insert("processors_working".into(), json!(working));
    threads.insert("processors_configured".into(), json!(configured));
    threads.insert(
        "supervisor_ticking".into(),
        json!(liveness.supervisor_alive()),
    );
    threads.insert("died".into(), Value::Object(died));
    let body = json!({
        "status": if healthy { "healthy" } else { "unhealthy" },
        "reason": reason,
        "uptime": stats.started.elapsed().as_secs(),
        "tasks_processed": stats.tasks_processed(),
        "last_task_at": last_task_at,
        "tasks_failed": stats.tasks_failed.load(Relaxed),
        "in_flight": stats.inflight.load(Relaxed),
        "worker_id": &*state.worker_id,
        "version": env!("CARGO_PKG_VERSION"),
        "api": api_state_name(&state.connectivity),
        "threads": threads,
    });
    (healthy, body)
}

/// Readiness: the worker takes new work and the API answered its last call.
///
/// Every call to the API has a timeout, and a call that fails or times out
/// turns the state to `Down` (or `Unauthorized`), so "the last call was
/// answered" is also "the API answered lately": the longest call, a long
/// poll, ends within `wait_seconds` plus a margin. Before the first answer
/// the worker counts as ready for that long, since its first claim may be a
/// long poll still open.
pub fn ready(state: &WorkerState) -> (bool, Value) {
    match not_ready_because(state) {
        None => (true, json!({"ready": true})),
        Some(why) => (false, json!({"ready": false, "reason": why})),
    }
}

/// Why the worker is not ready, or `None` when it is.
fn not_ready_because(state: &WorkerState) -> Option<Cow<'static, str>> {
    if let Some(role) = state.liveness.fatal_death() {
        return Some(role.death().into());
    }
    if state.shutdown.is_stopping() {
        return Some("draining".into());
    }
    if state.shutdown.is_quiet() {
        return Some("quiet".into());
    }
    let first_claim_limit =
        Duration::from_secs(state.live.get().config.wait_seconds).saturating_add(CLAIM_MARGIN);
    if let Some(why) = state.connectivity.misplaced() {
        return Some(why.into());
    }
    match state.connectivity.state() {
        ApiState::Down => return Some("task API unreachable".into()),
        ApiState::Unauthorized => return Some("task API refused the credentials".into()),
        ApiState::Unknown if state.stats.started.elapsed() >= first_claim_limit => {
            return Some("task API has not answered yet".into())
        }
        ApiState::Unknown | ApiState::Up => {}
    }
    // A handler whose program went missing fails every task of its type.
    if let Some(problem) = state.missing_programs.problem() {
        return Some(problem.into());
    }
    // As the poller judges it: many reports held while their sends fail.
    if reports_backed_up(&state.reports, 0) {
        return Some("reports are backing up".into());
    }
    None
}

fn status(state: &WorkerState) -> Value {
    let running: Vec<Value> = state
        .inflight
        .snapshot()
        .iter()
        .map(|r| {
            json!({
                "processor": r.processor,
                "task_id": r.task.id,
                "type": r.task.task_type,
                "attempt": r.ctx.attempt,
                "running_ms": crate::bounded::millis(r.started.elapsed()),
                "stuck": r.is_abandoned(),
            })
        })
        .collect();
    let waiting: Vec<Value> = state
        .limiter
        .waiting()
        .iter()
        .map(|w| {
            json!({
                "task_id": w.task.id,
                "type": w.task.task_type,
                "attempt": w.task.attempt.unwrap_or(1),
                "waiting_ms": crate::bounded::millis(w.since.elapsed()),
            })
        })
        .collect();
    json!({
        "worker_id": &*state.worker_id,
        "processors": state.stats.processors.load(Relaxed),
        "busy": running.iter().filter(|r| r["stuck"] == false).count(),
        "stuck_threads": state.stats.stuck_threads.load(Relaxed),
        "draining": state.shutdown.is_stopping(),
        "quiet": state.shutdown.is_quiet(),
        "api": api_state_name(&state.connectivity),
        "api_answered_ms_ago": state
            .connectivity
            .since_last_ok()
            .map(crate::bounded::millis),
        "running": running,
        "schedules": state.schedules.status(),
        "waiting": waiting,
        "limits": state.limiter.usage(),
        "reload": state.reloads.status(),
    })
}

fn metrics(state: &WorkerState) -> String {
    fault::panic_if_asked("health");
    let mut text = state.stats.render();
    // Read from the spool itself, its one source.
    let spool_depth = state.spool.as_ref().map_or(0, |s| s.depth());
    family(
        &mut text,
        "taskworker_spool_depth",
        Kind::Gauge,
        "Outcomes in the spool not yet delivered.",
        &[(String::new(), crate::bounded::count(spool_depth))],
    );
    let waiting: Vec<(String, u64)> = state
        .limiter
        .waiting_by_type()
        .into_iter()
        .map(|(t, n)| (labels(&[("type", &t)]), crate::bounded::count(n)))
        .collect();
    family(
        &mut text,
        "taskworker_tasks_waiting",
        Kind::Gauge,
        "Claimed tasks waiting for their type's concurrency or rate limit.",
        &waiting,
    );
    let up = u64::from(state.connectivity.state() == ApiState::Up);
    family(
        &mut text,
        "taskworker_api_up",
        Kind::Gauge,
        "Whether the task API answered the last call.",
        &[(String::new(), up)],
    );
    state.schedules.render(&mut text);
    state.reloads.render(&mut text);
    let info = labels(&[
        ("version", env!("CARGO_PKG_VERSION")),
        ("worker_id", &state.worker_id),
    ]);
    family(
        &mut text,
        "taskworker_info",
        Kind::Gauge,
        "Always 1; the labels name this worker and its version.",
        &[(info, 1)],
    );
    text
}

/// The API's state as `/health` and `/status` name it.
fn api_state_name(connectivity: &Connectivity) -> &'static str {
    match connectivity.state() {
        ApiState::Down => "unreachable",
        ApiState::Unauthorized => "unauthorized",
        // It answers, but `/health` says no task API is there.
        _ if connectivity.misplaced().is_some() => "wrong_url",
        ApiState::Unknown => "unknown",
        ApiState::Up => "up",
    }
}
