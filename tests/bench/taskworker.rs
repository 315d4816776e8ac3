//! The one-command benchmark: the reference server's own capacity, and the
//! worker measured against it on the same machine in the same run, so every
//! figure is a ratio under the same load. Run with
//! `cargo bench --bench taskworker`; prints a Markdown table.
//!
//! - (a) capacity: claim+complete cycles/s of the in-process server, driven by
//!   4 threads of a minimal keep-alive HTTP/1.1 client; (a') the same through
//!   the worker's own API client, which shows what its HTTP stack costs.
//! - (b) throughput of the release binary (`taskworker run`, a child process)
//!   on 20,000 `echo` tasks at `CONCURRENT_TASKS` 1, 4 and 16, with single
//!   reports (`REPORT_BATCH=0`) and with batch reports (the default), the
//!   tasks per claim and the mean size of those batches (from the worker's
//!   `/metrics`); batch reports also under `SCHED_BATCH`, with this build
//!   and with the static binary that ships.
//! - (c) pickup latency, enqueue to handler start, with and without long poll
//!   (the library worker in-process, so both instants are on one clock).
//! - (d) the worker's CPU time (user+sys) per task over the 20,000.
//! - (e) idle RSS, and the peak RSS (VmHWM) under load at 16.
//! - (f) SIGTERM to exit, idle and with one 200 ms task running.
//! - (g) the static binary's size (it is built first, for (b)).
//!
//! Rounds interleave (a), (a') and (b) so that load from elsewhere on the machine
//! hits both alike; the table shows medians.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use taskworker::ClaimRequest;
use taskworker::StopReason;
use taskworker::{build_agent, ApiClient, Claimed, Delivery, ReportKind};
use taskworker::{Config, Context, Task, Worker};
use taskworker::{Server, ServerConfig};

/// Rounds of (a) and (b); medians are reported.
const ROUNDS: usize = 3;
/// Client threads for (a).
const CLIENTS: usize = 4;
/// Claim+complete cycles per client thread in one (a) run.
const CYCLES_PER_CLIENT: usize = 10_000;
/// Tasks in one (b) run.
const TASKS: usize = 20_000;
/// Concurrencies of (b).
const CONCURRENCIES: [usize; 3] = [1, 4, 16];
/// How the worker of (b) runs: with batch reports or single ones; under
/// the `SCHED_BATCH` scheduling policy, as the shipped unit runs it
/// (`CPUSchedulingPolicy=batch`), or the default one; and which binary: the
/// one cargo built for this benchmark (glibc, dynamic) or the static one
/// `packaging/build-static.sh` builds, which is what ships. The two differ
/// in their C library, and with it their allocator.
#[derive(Debug, Clone, Copy)]
struct Mode {
    batches: bool,
    sched_batch: bool,
    shipped: bool,
}

/// The modes of (b): single reports, batch reports, batch reports under
/// `SCHED_BATCH` (through `chrt`, left out where it is missing), and the
/// last again with the static binary (left out where it cannot be built).
const MODES: [Mode; 4] = [
    Mode {
        batches: false,
        sched_batch: false,
        shipped: false,
    },
    Mode {
        batches: true,
        sched_batch: false,
        shipped: false,
    },
    Mode {
        batches: true,
        sched_batch: true,
        shipped: false,
    },
    Mode {
        batches: true,
        sched_batch: true,
        shipped: true,
    },
];

impl Mode {
    fn name(self) -> &'static str {
        match (self.batches, self.sched_batch, self.shipped) {
            (false, _, _) => "single reports",
            (true, false, _) => "batch reports",
            (true, true, false) => "batch reports, SCHED_BATCH",
            (true, true, true) => "batch reports, SCHED_BATCH, static binary",
        }
    }
}

/// Whether `chrt` can run the worker under `SCHED_BATCH` here.
fn sched_batch_available() -> bool {
    Command::new("chrt")
        .args(["--batch", "0", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
/// Pickup samples with long poll.
const LONG_POLL_SAMPLES: usize = 200;
/// Pickup samples without long poll; each costs about one polling interval.
const SHORT_POLL_SAMPLES: usize = 30;
/// The polling interval used without long poll (the default is 5 s: the
/// pickup latency is uniform over the interval either way).
const POLLING_INTERVAL: Duration = Duration::from_secs(1);
/// Repetitions of each SIGTERM measurement.
const SIGTERM_RUNS: usize = 5;
/// No single wait in the benchmark lasts longer than this.
const LIMIT: Duration = Duration::from_secs(60);

fn main() {
    let mut capacity = Vec::new();
    let mut through_client = Vec::new();
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); CONCURRENCIES.len() * MODES.len()];
    let sched_batch = sched_batch_available();
    if !sched_batch {
        eprintln!("chrt cannot set SCHED_BATCH here: those runs are left out");
    }
    let shipped = static_binary();
    if shipped.is_none() {
        eprintln!("the static binary could not be built: its runs are left out");
    }
    let modes: Vec<(usize, Mode)> = MODES
        .into_iter()
        .enumerate()
        .filter(|(_, m)| (sched_batch || !m.sched_batch) && (shipped.is_some() || !m.shipped))
        .collect();
    let built = Path::new(env!("CARGO_BIN_EXE_taskworker"));
    for round in 1..=ROUNDS {
        let rate = server_capacity();
        eprintln!("round {round}: (a) {rate:.0} cycles/s");
        capacity.push(rate);
        let rate = client_capacity();
        eprintln!("round {round}: (a') {rate:.0} cycles/s");
        through_client.push(rate);
        for &(m, mode) in &modes {
            for (i, &c) in CONCURRENCIES.iter().enumerate() {
                let binary = match &shipped {
                    Some(shipped) if mode.shipped => &shipped.path,
                    _ => built,
                };
                let run = worker_run(binary, c, mode);
                eprintln!(
                    "round {round}: (b) c={c} {}: {:.0} tasks/s, {:.1} µs CPU/task, VmHWM {:.1} MB, {:.1} tasks per claim, mean batch {:.1}",
                    mode.name(),
                    run.rate,
                    run.cpu_per_task.as_secs_f64() * 1e6,
                    mb(run.hwm),
                    run.per_claim,
                    run.mean_batch
                );
                runs[m * CONCURRENCIES.len() + i].push(run);
            }
        }
    }
    let long_poll = pickup_latency(20, LONG_POLL_SAMPLES, Duration::from_millis(25));
    eprintln!("(c) long poll: {long_poll:?}");
    let short_poll = pickup_latency(0, SHORT_POLL_SAMPLES, POLLING_INTERVAL);
    eprintln!("(c) WAIT_SECONDS=0: {short_poll:?}");
    let idle = idle_runs();
    eprintln!("(e)(f) idle: {idle:?}");
    let busy: Vec<Duration> = (0..SIGTERM_RUNS).map(|_| sigterm_with_task()).collect();
    eprintln!("(f) with a 200 ms task: {busy:?}");
    let (size, which) = match &shipped {
        Some(shipped) => (shipped.size, format!("static, {}", shipped.target)),
        None => (
            std::fs::metadata(built).expect("the binary").len(),
            "release, dynamic: the static build failed or took too long".to_string(),
        ),
    };

    // Ratios are taken within a round (same load), then their median.
    let ratio = |rates: &[f64], of: &[f64]| {
        100.0 * median_f(&rates.iter().zip(of).map(|(r, o)| r / o).collect::<Vec<_>>())
    };
    let rates = |i: usize| runs[i].iter().map(|r| r.rate).collect::<Vec<_>>();
    let client_share = ratio(&through_client, &capacity);
    let rate = |i: usize| median_f(&rates(i));
    let cpu = |i: usize| median_d(&runs[i].iter().map(|r| r.cpu_per_task).collect::<Vec<_>>());
    let hwm = |i: usize| median_u(&runs[i].iter().map(|r| r.hwm).collect::<Vec<_>>());
    let idle_rss = median_u(&idle.iter().map(|(rss, _)| *rss).collect::<Vec<_>>());
    let idle_exit = median_d(&idle.iter().map(|(_, d)| *d).collect::<Vec<_>>());

    println!(
        "taskworker benchmark: {} CPUs, {ROUNDS} rounds, medians (ratios: per round, then the median)",
        thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!("| figure | measured | target |");
    println!("|---|---:|---|");
    println!(
        "| (a) server capacity: claim+complete cycles/s, {CLIENTS} keep-alive clients | {:.0} | |",
        median_f(&capacity)
    );
    println!(
        "| (a') the same through the worker's own API client (its HTTP stack, not its threads) | {:.0} ({client_share:.0} % of (a)) | |",
        median_f(&through_client)
    );
    let batch = |i: usize| median_f(&runs[i].iter().map(|r| r.mean_batch).collect::<Vec<_>>());
    let per_claim = |i: usize| median_f(&runs[i].iter().map(|r| r.per_claim).collect::<Vec<_>>());
    for &(m, mode) in &modes {
        for (j, &c) in CONCURRENCIES.iter().enumerate() {
            let i = m * CONCURRENCIES.len() + j;
            let target = match (c, mode.batches) {
                (4, false) => "≥ 70 % of (a)",
                (4, true) => "> 100 % of (a)",
                _ => "",
            };
            let mut sizes = format!("; {:.1}", per_claim(i));
            if mode.batches {
                sizes += &format!("; {:.1}", batch(i));
            }
            println!(
                "| (b) worker, {TASKS} echo tasks, CONCURRENT_TASKS={c}, {}: tasks/s (% of (a); of (a'); tasks per claim{}) | {:.0} ({:.0} %; {:.0} %{sizes}) | {target} |",
                mode.name(),
                if mode.batches { "; outcomes per batch" } else { "" },
                rate(i),
                ratio(&rates(i), &capacity),
                ratio(&rates(i), &through_client)
            );
        }
    }
    println!(
        "| (c) pickup latency, long poll (WAIT_SECONDS=20), p50 / p99 | {} / {} | p50 ≤ 5 ms |",
        ms(long_poll.0),
        ms(long_poll.1)
    );
    println!(
        "| (c) pickup latency, WAIT_SECONDS=0, POLLING_INTERVAL={} s, p50 / p99 | {} / {} | |",
        POLLING_INTERVAL.as_secs(),
        ms(short_poll.0),
        ms(short_poll.1)
    );
    for &(m, mode) in &modes {
        for (j, &c) in CONCURRENCIES.iter().enumerate() {
            let i = m * CONCURRENCIES.len() + j;
            let target = if c == 4 { "≤ 35 µs" } else { "" };
            println!(
                "| (d) worker CPU (user+sys) per echo task, CONCURRENT_TASKS={c}, {} | {:.1} µs | {target} |",
                mode.name(),
                cpu(i).as_secs_f64() * 1e6
            );
        }
    }
    println!(
        "| (e) idle RSS (CONCURRENT_TASKS=1) | {:.1} MB | ≤ 6 MB |",
        mb(idle_rss)
    );
    // Batch reports under the default policy, at the largest concurrency.
    let batch_default = MODES
        .iter()
        .position(|m| m.batches && !m.sched_batch)
        .expect("a mode of batch reports under the default policy");
    let last = (batch_default + 1) * CONCURRENCIES.len() - 1;
    println!(
        "| (e) peak RSS (VmHWM) under load, CONCURRENT_TASKS={}, batch reports | {:.1} MB | ≤ 16 MB |",
        CONCURRENCIES[CONCURRENCIES.len() - 1],
        mb(hwm(last))
    );
    println!(
        "| (f) SIGTERM to exit, idle | {} | ≤ 100 ms |",
        ms(idle_exit)
    );
    println!(
        "| (f) SIGTERM to exit, one 200 ms `sleep` task running | {} | |",
        ms(median_d(&busy))
    );
    println!(
        "| (g) binary size ({which}) | {:.2} MB ({size} bytes) | |",
        mb(size)
    );
}

// ---------------------------------------------------------------------------
// (a) the server's own capacity

/// Claim+complete cycles per second of a fresh in-process server, with
/// `CLIENTS` threads each holding the client `connect` makes (from the
/// server's address and the thread's number) and running `cycle` on it.
fn capacity<C: Send>(connect: fn(&str, usize) -> C, cycle: fn(&mut C)) -> f64 {
    let server = start_server();
    let addr = server.addr().to_string();
    enqueue_many(&addr, "bench", CLIENTS * CYCLES_PER_CLIENT);
    let clients: Vec<C> = (0..CLIENTS).map(|w| connect(&addr, w)).collect();
    let started = Instant::now();
    thread::scope(|scope| {
        for mut client in clients {
            scope.spawn(move || {
                for _ in 0..CYCLES_PER_CLIENT {
                    cycle(&mut client);
                }
            });
        }
    });
    (CLIENTS * CYCLES_PER_CLIENT) as f64 / started.elapsed().as_secs_f64()
}

/// (a): the minimal client, so that the server is the limit.
fn server_capacity() -> f64 {
    capacity(
        |addr, w| (Conn::open(addr), format!("bench-{w}")),
        |(conn, worker)| {
            let claim = format!(r#"{{"worker_id":"{worker}"}}"#);
            let (status, body) = conn.post("/tasks/claim", claim.as_bytes());
            assert_eq!(status, 200, "claim: {}", String::from_utf8_lossy(&body));
            let id = task_id(&body);
            let complete = format!(r#"{{"result":{{"ok":true}},"worker_id":"{worker}"}}"#);
            let (status, body) = conn.post(&format!("/tasks/{id}/complete"), complete.as_bytes());
            assert_eq!(status, 200, "complete: {}", String::from_utf8_lossy(&body));
        },
    )
}

/// (a'): the worker's own API client (its HTTP stack, without its threads).
fn client_capacity() -> f64 {
    capacity(
        |addr, w| {
            let config = Config {
                api_url: format!("http://{addr}"),
                worker_id: format!("bench-{w}"),
                ..Config::default()
            };
            let agent = build_agent(&config).expect("agent");
            ApiClient::new(agent, &config.api_url, None, &config.worker_id)
        },
        |client| {
            let request = ClaimRequest {
                worker_id: client.worker_id().to_string(),
                types: None,
                max_tasks: None,
                wait_seconds: None,
                claim_id: None,
            };
            let Ok(Claimed::Tasks(tasks)) = client.claim(&request) else {
                panic!("claim: no task");
            };
            let id = tasks[0]["id"].as_str().expect("task id");
            let body = format!(
                r#"{{"result":{{"ok":true}},"worker_id":"{}"}}"#,
                client.worker_id()
            );
            let delivery = client.report(id, ReportKind::Complete, body.as_bytes());
            assert_eq!(delivery, Ok(Delivery::Delivered));
        },
    )
}

/// The first `"id":"..."` of a claim answer (the task's; no JSON parse, so
/// the client spends as little as it can).
fn task_id(body: &[u8]) -> String {
    let text = std::str::from_utf8(body).expect("UTF-8 answer");
    let start = text.find(r#""id":""#).expect("a task id") + 6;
    let len = text[start..].find('"').expect("end of the id");
    text[start..start + len].to_string()
}

// ---------------------------------------------------------------------------
// (b) (d) (e) the worker binary under load

#[derive(Debug, Clone)]
struct Run {
    rate: f64,
    cpu_per_task: Duration,
    hwm: u64,
    /// Outcomes per batch report (0 without any).
    mean_batch: f64,
    /// Tasks per claim that brought any.
    per_claim: f64,
}

/// One `taskworker run` child on `TASKS` echo tasks at concurrency `c`, in `mode`.
fn worker_run(binary: &Path, c: usize, mode: Mode) -> Run {
    let server = start_server();
    let addr = server.addr().to_string();
    enqueue_many(&addr, "echo", TASKS);
    let health_port = free_port();
    let started = Instant::now();
    let mut worker = WorkerChild::start_with(
        binary,
        &server.url(),
        c,
        "echo",
        mode.sched_batch,
        &[
            (
                "REPORT_BATCH",
                if mode.batches { "100" } else { "0" }.to_string(),
            ),
            ("HEALTH_ADDR", format!("127.0.0.1:{health_port}")),
        ],
    );
    let mut health = Conn::open(&addr);
    let deadline = started + LIMIT;
    while completed(&mut health) < TASKS as u64 {
        assert!(
            Instant::now() < deadline,
            "the worker did not finish in time; its log: {}",
            worker.log()
        );
        thread::sleep(Duration::from_millis(5));
    }
    let elapsed = started.elapsed();
    let cpu = worker.cpu_time();
    let hwm = worker.status_kb("VmHWM") * 1024;
    let (_, metrics) = Conn::open(&format!("127.0.0.1:{health_port}")).get("/metrics");
    let metrics = String::from_utf8_lossy(&metrics);
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let sent = value("taskworker_report_batches_total ");
    let claims = value("taskworker_claims_total{result=\"tasks\"} ");
    let carried = value("taskworker_report_batch_outcomes_total ");
    worker.stop();
    Run {
        rate: TASKS as f64 / elapsed.as_secs_f64(),
        cpu_per_task: cpu / TASKS as u32,
        hwm,
        mean_batch: if sent > 0.0 { carried / sent } else { 0.0 },
        per_claim: if claims > 0.0 {
            TASKS as f64 / claims
        } else {
            0.0
        },
    }
}

/// A port free a moment ago on loopback, for the worker's health server.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn completed(health: &mut Conn) -> u64 {
    let (_, body) = health.get("/health");
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    v["counts"]["completed"].as_u64().unwrap_or(0)
}

/// A `taskworker run` child process with one builtin handler; killed when dropped.
struct WorkerChild {
    child: Child,
    dir: PathBuf,
}

impl WorkerChild {
    fn start(api_url: &str, concurrency: usize, builtin: &str) -> WorkerChild {
        let built = Path::new(env!("CARGO_BIN_EXE_taskworker"));
        WorkerChild::start_with(built, api_url, concurrency, builtin, false, &[])
    }

    /// As [`WorkerChild::start`], with the `worker` binary, more environment
    /// variables, and under `SCHED_BATCH` when `sched_batch` (`chrt` execs
    /// the worker, so the child's pid is the worker's).
    fn start_with(
        worker: &Path,
        api_url: &str,
        concurrency: usize,
        builtin: &str,
        sched_batch: bool,
        env: &[(&str, String)],
    ) -> WorkerChild {
        let dir = std::env::temp_dir().join(format!(
            "taskworker-bench-{}-{}",
            std::process::id(),
            unique()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config = dir.join("config.json");
        let handlers = json!({"handlers": {builtin: {"builtin": builtin}}});
        std::fs::write(&config, handlers.to_string()).expect("config written");
        let log = std::fs::File::create(dir.join("worker.log")).expect("log file");
        let mut command = if sched_batch {
            let mut chrt = Command::new("chrt");
            chrt.args(["--batch", "0"]).arg(worker);
            chrt
        } else {
            Command::new(worker)
        };
        command
            .arg("run")
            .arg("--config")
            .arg(&config)
            .current_dir(&dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("API_URL", api_url)
            .env("CONCURRENT_TASKS", concurrency.to_string())
            .env("WORKER_ID", format!("bench-{concurrency}"))
            .env("HEALTH_ADDR", "")
            .env("LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("the worker starts");
        WorkerChild { child, dir }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// User plus system time of every thread so far, from /proc.
    fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).expect("stat");
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        // utime and stime are fields 14 and 15 of stat, 12 and 13 here, in clock ticks.
        let ticks: u64 =
            fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
        Duration::from_millis(ticks.saturating_mul(1000) / clock_ticks().max(1))
    }

    /// A `kB` line of /proc/PID/status (`VmRSS`, `VmHWM`).
    fn status_kb(&self, key: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{key} in /proc/PID/status"))
    }

    /// Sends SIGTERM; returns the time until the process has exited.
    fn terminate(&mut self) -> Duration {
        let started = Instant::now();
        let pid = rustix::process::Pid::from_raw(self.pid()).expect("pid");
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
        let deadline = started + LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                let took = started.elapsed();
                assert!(status.success(), "exit {status}; log: {}", self.log());
                return took;
            }
            assert!(Instant::now() < deadline, "no exit after SIGTERM");
            thread::sleep(Duration::from_micros(200));
        }
    }

    fn stop(&mut self) {
        self.terminate();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("worker.log")).unwrap_or_default()
    }
}

impl Drop for WorkerChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

// ---------------------------------------------------------------------------
// (c) pickup latency

/// p50 and p99 from the enqueue request to the handler's start, for tasks
/// enqueued at random moments (up to `spread` apart) while the worker idles.
fn pickup_latency(wait_seconds: u64, samples: usize, spread: Duration) -> (Duration, Duration) {
    let server = start_server();
    let addr = server.addr().to_string();
    let (started_tx, started_rx) = crossbeam_channel::unbounded::<Instant>();
    let config = Config {
        api_url: server.url(),
        worker_id: format!("bench-pickup-{wait_seconds}"),
        wait_seconds,
        polling_interval: POLLING_INTERVAL,
        health_addr: None,
        ..Config::default()
    };
    let worker = Worker::new(config).handler("pickup", move |_: &Task, _: &Context| {
        let _ = started_tx.send(Instant::now());
        Ok(Value::Null)
    });
    let (shutdown, stop) = taskworker::manual_shutdown();
    let running = thread::spawn(move || worker.run_until(shutdown, |_| {}));
    let mut rng = Rng::new();
    let mut conn = Conn::open(&addr);
    // Let the worker start and make its first claim.
    thread::sleep(Duration::from_millis(100));
    let mut latencies = Vec::with_capacity(samples);
    for _ in 0..samples {
        thread::sleep(
            Duration::try_from_secs_f64(spread.as_secs_f64() * rng.unit()).unwrap_or(spread),
        );
        let sent = Instant::now();
        let (status, _) = conn.post("/tasks", br#"{"type":"pickup"}"#);
        assert_eq!(status, 201);
        let began = started_rx.recv_timeout(LIMIT).expect("the handler ran");
        latencies.push(began.saturating_duration_since(sent));
    }
    stop.stop(StopReason::Requested);
    let code = running.join().expect("worker thread").expect("worker ran");
    assert_eq!(code, 0);
    latencies.sort();
    (quantile(&latencies, 0.5), quantile(&latencies, 0.99))
}

/// A small xorshift generator: random moments need no cryptography.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Rng(seed | 1)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

// ---------------------------------------------------------------------------
// (e) idle RSS, (f) SIGTERM to exit

/// Idle RSS and SIGTERM-to-exit of a worker whose long poll is parked.
fn idle_runs() -> Vec<(u64, Duration)> {
    let server = start_server();
    let addr = server.addr().to_string();
    let mut metrics = Conn::open(&addr);
    (0..SIGTERM_RUNS)
        .map(|_| {
            let mut worker = WorkerChild::start(&server.url(), 1, "echo");
            let deadline = Instant::now() + LIMIT;
            loop {
                let (_, body) = metrics.get("/metrics");
                if String::from_utf8_lossy(&body).contains("taskworker_server_waiting_claims 1") {
                    break;
                }
                assert!(Instant::now() < deadline, "the worker never parked a claim");
                thread::sleep(Duration::from_millis(5));
            }
            // Settled: past start-up allocations, waiting in its long poll.
            thread::sleep(Duration::from_millis(300));
            let rss = worker.status_kb("VmRSS") * 1024;
            (rss, worker.terminate())
        })
        .collect()
}

/// SIGTERM-to-exit while one 200 ms `sleep` task runs (sent as soon as the
/// server shows it claimed).
fn sigterm_with_task() -> Duration {
    let server = start_server();
    let addr = server.addr().to_string();
    let mut worker = WorkerChild::start(&server.url(), 1, "sleep");
    let mut conn = Conn::open(&addr);
    let (status, _) = conn.post("/tasks", br#"{"type":"sleep","parameters":{"ms":200}}"#);
    assert_eq!(status, 201);
    let deadline = Instant::now() + LIMIT;
    loop {
        let (_, body) = conn.get("/health");
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if v["counts"]["claimed"].as_u64() == Some(1) {
            break;
        }
        assert!(Instant::now() < deadline, "the task was never claimed");
        thread::sleep(Duration::from_millis(1));
    }
    let took = worker.terminate();
    let (_, body) = conn.get("/health");
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    assert_eq!(
        v["counts"]["completed"].as_u64(),
        Some(1),
        "the running task finished and was reported before the exit"
    );
    took
}

// ---------------------------------------------------------------------------
// (g) the static binary, which ships: its size, and the runs of (b) with it

/// How long the static build may take before its runs and size are left out.
const STATIC_BUILD_LIMIT: Duration = Duration::from_secs(300);

/// The binary `packaging/build-static.sh` builds: what ships.
struct StaticBinary {
    path: PathBuf,
    size: u64,
    /// Its target triple.
    target: String,
}

/// Builds the static binary (the script prints its path last); none when
/// that build fails or takes too long.
fn static_binary() -> Option<StaticBinary> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(root.join("packaging/build-static.sh"))
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + STATIC_BUILD_LIMIT;
    while child.try_wait().ok()?.is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(100));
    }
    let mut out = String::new();
    child.stdout.take()?.read_to_string(&mut out).ok()?;
    let path = root.join(out.lines().last()?.trim());
    let size = std::fs::metadata(&path).ok()?.len();
    let target = path
        .parent()?
        .parent()?
        .file_name()?
        .to_string_lossy()
        .into_owned();
    Some(StaticBinary { path, size, target })
}

// ---------------------------------------------------------------------------
// shared: the server, a minimal HTTP/1.1 client, statistics

fn start_server() -> Server {
    Server::start(ServerConfig::default()).expect("server starts")
}

/// Enqueues `n` tasks of `task_type` over 4 connections.
fn enqueue_many(addr: &str, task_type: &str, n: usize) {
    let body = Arc::new(format!(
        r#"{{"type":"{task_type}","parameters":{{"n":1}}}}"#
    ));
    let handles: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (addr, body) = (addr.to_string(), Arc::clone(&body));
            let count = n / CLIENTS + usize::from(i < n % CLIENTS);
            thread::spawn(move || {
                let mut conn = Conn::open(&addr);
                for _ in 0..count {
                    let (status, _) = conn.post("/tasks", body.as_bytes());
                    assert_eq!(status, 201);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("enqueue thread");
    }
}

/// One keep-alive HTTP/1.1 connection: each request written in one piece,
/// answers read by `Content-Length` (the server always sends it).
struct Conn {
    reader: BufReader<TcpStream>,
    head: Vec<u8>,
}

impl Conn {
    fn open(addr: &str) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        stream.set_read_timeout(Some(LIMIT)).expect("timeout");
        Conn {
            reader: BufReader::new(stream),
            head: Vec::with_capacity(256),
        }
    }

    fn post(&mut self, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        self.request("POST", path, body)
    }

    fn get(&mut self, path: &str) -> (u16, Vec<u8>) {
        self.request("GET", path, b"")
    }

    fn request(&mut self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        self.head.clear();
        write!(
            self.head,
            "{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .expect("head");
        self.head.extend_from_slice(body);
        self.reader
            .get_mut()
            .write_all(&self.head)
            .expect("request sent");
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("malformed status line {line:?}"));
        let mut length = 0;
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("header line");
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().expect("Content-Length");
                }
            }
        }
        let mut answer = vec![0; length];
        self.reader.read_exact(&mut answer).expect("body");
        (status, answer)
    }
}

fn unique() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

fn median_f(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn median_d(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

fn median_u(v: &[u64]) -> u64 {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
