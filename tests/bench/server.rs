//! Benchmark of the reference server: claim+complete cycles per second with
//! 4 keep-alive clients, and long-poll wake-up latency, for each store: in
//! memory, `--data`, and `--store redis://` with one server and with two
//! servers over one Redis (a `redis-server` started here on a free loopback
//! port, when installed). For Redis it also counts the round trips to Redis
//! per claim+complete cycle. Then 10,000 concurrent long polls on one
//! `taskworker serve` child process: its RSS and threads, an enqueue's
//! answer time and a parked waiter's wake-up under that load. Run with
//! `cargo bench --bench server` (`cargo bench --bench server -- long-polls`
//! runs the last part alone); prints Markdown tables.

#[path = "../support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::redis::RedisServer;
use taskworker::{Server, ServerConfig};

const CLIENTS: usize = 4;
const RUN_FOR: Duration = Duration::from_secs(3);
const PRELOAD: usize = 100_000;
/// Enough for `RUN_FOR` over Redis, which is slower to fill.
const PRELOAD_REDIS: usize = 40_000;
const WAKEUPS: usize = 200;

/// A keep-alive agent built as the worker builds its own: with a timeout set,
/// ureq's default resolver starts a thread per request, which would make the
/// client, not the server, the bottleneck.
fn agent() -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build();
    ureq::Agent::with_parts(
        config,
        ureq::unversioned::transport::DefaultConnector::default(),
        taskworker::CachingResolver::default(),
    )
}

fn post(agent: &ureq::Agent, url: &str, body: &Value) -> (u16, Value) {
    let mut resp = agent.post(url).send_json(body).expect("request");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn preload(base: &str, n: usize) {
    let per = n / CLIENTS;
    let handles: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let url = format!("{base}/tasks");
            thread::spawn(move || {
                let a = agent();
                for _ in 0..per {
                    post(&a, &url, &json!({"type": "bench", "parameters": {"n": 1}}));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("preload");
    }
}

/// Claim+complete cycles per second over `RUN_FOR`, and the cycles done;
/// the clients take turns over `bases`.
fn throughput(bases: &[String]) -> (f64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let cycles = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..CLIENTS)
        .map(|w| {
            let (stop, cycles) = (Arc::clone(&stop), Arc::clone(&cycles));
            let base = bases[w % bases.len()].clone();
            thread::spawn(move || {
                let a = agent();
                let worker = format!("bench-{w}");
                let claim_url = format!("{base}/tasks/claim");
                while !stop.load(Ordering::Relaxed) {
                    let (status, body) = post(&a, &claim_url, &json!({"worker_id": worker}));
                    assert_eq!(status, 200, "preload ran out: raise PRELOAD");
                    let id = body["task"]["id"].as_str().unwrap_or_default();
                    let url = format!("{base}/tasks/{id}/complete");
                    let (status, _) = post(
                        &a,
                        &url,
                        &json!({"result": {"ok": true}, "worker_id": worker}),
                    );
                    assert_eq!(status, 200);
                    cycles.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let started = Instant::now();
    thread::sleep(RUN_FOR);
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("client");
    }
    let done = cycles.load(Ordering::Relaxed);
    (done as f64 / started.elapsed().as_secs_f64(), done)
}

/// Long-poll wake-up latency: p50 and p99 from enqueue sent (through
/// `enqueue_base`) to claim answered (parked on `base`).
fn wakeup(base: &str, enqueue_base: &str) -> (Duration, Duration) {
    let mut samples = Vec::with_capacity(WAKEUPS);
    let enqueuer = agent();
    for _ in 0..WAKEUPS {
        let claim_url = format!("{base}/tasks/claim");
        let metrics_url = format!("{base}/metrics");
        let parked = thread::spawn(move || {
            let a = agent();
            let (status, _) = post(
                &a,
                &claim_url,
                &json!({"worker_id": "poller", "wait_seconds": 20, "types": ["wake"]}),
            );
            (status, Instant::now())
        });
        // Enqueue only once the claim is parked.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(Instant::now() < deadline, "the claim never parked");
            let text = enqueuer
                .get(&metrics_url)
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_to_string().ok())
                .unwrap_or_default();
            if text.contains("taskworker_server_waiting_claims 1") {
                break;
            }
            thread::sleep(Duration::from_micros(200));
        }
        let sent = Instant::now();
        post(
            &enqueuer,
            &format!("{enqueue_base}/tasks"),
            &json!({"type": "wake"}),
        );
        let (status, answered) = parked.join().expect("poller");
        assert_eq!(status, 200);
        samples.push(answered.saturating_duration_since(sent));
    }
    samples.sort();
    let pick = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    (pick(0.5), pick(0.99))
}

/// One row of the table.
struct Row {
    label: String,
    rate: f64,
    p50: Duration,
    p99: Duration,
    /// Redis round trips per cycle, for the Redis store.
    round_trips: Option<f64>,
}

/// Runs the benchmark on `servers` servers of `config`, sharing its store;
/// `redis` is that store's Redis, when it is one.
fn run(label: &str, config: ServerConfig, servers: usize, redis: Option<&RedisServer>) -> Row {
    let servers: Vec<Server> = (0..servers)
        .map(|_| Server::start(config.clone()).expect("server"))
        .collect();
    let bases: Vec<String> = servers.iter().map(Server::url).collect();
    let t = Instant::now();
    preload(
        &bases[0],
        if redis.is_some() {
            PRELOAD_REDIS
        } else {
            PRELOAD
        },
    );
    eprintln!("{label}: preloaded in {:.1?}", t.elapsed());
    let before = redis.map(RedisServer::round_trips);
    let (rate, cycles) = throughput(&bases);
    let round_trips = redis
        .zip(before)
        .map(|(r, before)| (r.round_trips() - before) as f64 / cycles as f64);
    eprintln!("{label}: {rate:.0} cycles/s, {round_trips:?} Redis round trips a cycle");
    let (p50, p99) = wakeup(&bases[0], bases.last().expect("a server"));
    Row {
        label: label.to_string(),
        rate,
        p50,
        p99,
        round_trips,
    }
}

/// Concurrent long polls held open on one `serve` process.
const LONG_POLLS: usize = 10_000;
/// Samples of each figure measured under those long polls.
const UNDER_LOAD: usize = 100;

/// Raises this process's open-file limit as far as allowed; the limit used.
fn raise_open_files() -> u64 {
    let limit = taskworker::raise_open_file_limit();
    eprintln!("open-file limit of the benchmark: {limit}");
    limit
}

/// The `Threads:` line of `/proc/PID/status`.
fn threads_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The `taskworker_server_waiting_claims` gauge, 0 when it cannot be read.
fn waiting(agent: &ureq::Agent, base: &str) -> usize {
    agent
        .get(&format!("{base}/metrics"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("taskworker_server_waiting_claims "))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * q).round() as usize]
}

/// `LONG_POLLS` long polls (raw sockets, a request each, never read) on a
/// `serve` child process; then its RSS and threads, and under that load
/// an enqueue's answer time and a parked waiter's wake-up.
fn many_long_polls() {
    let limit = raise_open_files();
    let mut serve = support::ServeProcess::start(&[]);
    let base = serve.url.clone();
    let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().expect("addr");
    let pid = serve.child.id();
    let a = agent();
    let body = json!({"worker_id": "idle", "wait_seconds": 300, "types": ["idle"]}).to_string();
    let request = format!(
        "POST /tasks/claim HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let opened = Instant::now();
    let mut polls = Vec::with_capacity(LONG_POLLS);
    for _ in 0..LONG_POLLS {
        use std::io::Write;
        match std::net::TcpStream::connect(addr) {
            Ok(s) => {
                if (&s).write_all(request.as_bytes()).is_ok() {
                    polls.push(s);
                }
            }
            Err(e) => {
                eprintln!("connection {} refused: {e}", polls.len());
                break;
            }
        }
    }
    // Wait (bounded) until the parked count stops growing.
    let mut parked = 0;
    let mut still = Instant::now();
    while still.elapsed() < Duration::from_secs(5) && opened.elapsed() < Duration::from_secs(120) {
        let now = waiting(&a, &base);
        if now != parked {
            parked = now;
            still = Instant::now();
        }
        if parked >= polls.len() {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let open_time = opened.elapsed();
    let rss = support::status_kb(&pid.to_string(), "VmRSS");
    let threads = threads_of(pid);
    let mut enqueue_times = Vec::new();
    let mut refused = 0;
    for _ in 0..UNDER_LOAD {
        let sent = Instant::now();
        let status = a
            .post(&format!("{base}/tasks"))
            .send_json(json!({"type": "other"}))
            .map_or(0, |r| r.status().as_u16());
        enqueue_times.push(sent.elapsed());
        if status != 201 {
            refused += 1;
        }
    }
    let mut wakeups = Vec::new();
    for _ in 0..UNDER_LOAD {
        let claim_url = format!("{base}/tasks/claim");
        let poller = thread::spawn(move || {
            let status = agent()
                .post(&claim_url)
                .send_json(json!({"worker_id": "poller", "wait_seconds": 20, "types": ["wake"]}))
                .map_or(0, |r| r.status().as_u16());
            (status, Instant::now())
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while waiting(&a, &base) <= parked && Instant::now() < deadline {
            thread::sleep(Duration::from_micros(500));
        }
        let sent = Instant::now();
        let status = a
            .post(&format!("{base}/tasks"))
            .send_json(json!({"type": "wake"}))
            .map_or(0, |r| r.status().as_u16());
        let (claimed, answered) = poller.join().expect("poller");
        if status == 201 && claimed == 200 {
            wakeups.push(answered.saturating_duration_since(sent));
        }
    }
    drop(polls);
    serve.stop(Duration::from_secs(30));
    println!();
    println!("{LONG_POLLS} long polls opened on one `serve` process (open-file limit {limit}):");
    println!();
    println!("| figure | measured | target |");
    println!("|---|---:|---|");
    println!(
        "| long polls parked (of {LONG_POLLS}), time to open them | {parked}, {:.1} s | {LONG_POLLS} |",
        open_time.as_secs_f64()
    );
    println!(
        "| serve RSS with them parked | {:.1} MB | ≤ 150 MB |",
        rss as f64 / 1e6
    );
    println!("| serve threads with them parked | {threads} | ≤ 64 |");
    println!(
        "| enqueue answer time under them, p50 / max ({refused} of {UNDER_LOAD} refused) | {:.2} ms / {:.2} ms | ≤ 50 ms |",
        percentile(&mut enqueue_times, 0.5).as_secs_f64() * 1000.0,
        percentile(&mut enqueue_times, 1.0).as_secs_f64() * 1000.0
    );
    if wakeups.is_empty() {
        println!("| parked waiter's wake-up under them | never woken | p50 ≤ 5 ms |");
    } else {
        println!(
            "| parked waiter's wake-up under them, p50 / p99 ({} of {UNDER_LOAD}) | {:.2} ms / {:.2} ms | p50 ≤ 5 ms |",
            wakeups.len(),
            percentile(&mut wakeups, 0.5).as_secs_f64() * 1000.0,
            percentile(&mut wakeups, 0.99).as_secs_f64() * 1000.0
        );
    }
}

fn main() {
    if std::env::args().any(|a| a == "long-polls") {
        many_long_polls();
        return;
    }
    let dir = std::env::temp_dir().join(format!("taskworker-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut rows = vec![
        run("in memory", ServerConfig::default(), 1, None),
        run(
            "--data (fsync per group)",
            ServerConfig {
                data: Some(dir.join("tasks.jsonl")),
                ..ServerConfig::default()
            },
            1,
            None,
        ),
    ];
    if support::redis::redis_installed() {
        // As OPERATIONS.md recommends: every write in the append-only file
        // before it is acknowledged.
        let redis = RedisServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
        for (servers, label) in [
            (1, "--store redis:// (1 server)"),
            (2, "--store redis:// (2 servers, one Redis)"),
        ] {
            let config = ServerConfig {
                store: Some(redis.url()),
                store_prefix: format!("bench{servers}"),
                ..ServerConfig::default()
            };
            rows.push(run(label, config, servers, Some(&redis)));
        }
    } else {
        eprintln!("redis-server is not installed: no Redis rows");
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("| server | claim+complete cycles/s ({CLIENTS} clients, keep-alive) | long-poll wake-up p50 | p99 | Redis round trips a cycle |");
    println!("|---|---:|---:|---:|---:|");
    for row in rows {
        let trips = row
            .round_trips
            .map_or("–".to_string(), |t| format!("{t:.2}"));
        println!(
            "| {} | {:.0} | {:.2} ms | {:.2} ms | {trips} |",
            row.label,
            row.rate,
            row.p50.as_secs_f64() * 1000.0,
            row.p99.as_secs_f64() * 1000.0
        );
    }
    many_long_polls();
}
