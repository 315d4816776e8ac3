//! `taskworker demo`: the reference server in-process on `127.0.0.1:0`, a mix
//! of the seed's task types (`send.email`, `process.image`, `generate.report`)
//! run by the real worker through the `exec` handler and the example scripts,
//! a progress line, and a summary. Some tasks fail for good and some fail
//! once and succeed on a retry, so every path shows.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lexopt::prelude::*;
use serde_json::{json, Value};

use crate::cli::enqueue;
use crate::config::Config;
use crate::error::Error;
use crate::server::{Server, ServerConfig};
use crate::task::EnqueueRequest;
use crate::worker::metrics::Stats;
use crate::worker::shutdown;
use crate::worker::Worker;

/// The example handler scripts, carried in the binary so the demo runs anywhere.
const SCRIPTS: [(&str, &str); 7] = [
    (
        "send-email",
        include_str!("../../packaging/examples/handlers/send-email"),
    ),
    (
        "process-image",
        include_str!("../../packaging/examples/handlers/process-image"),
    ),
    (
        "generate-report",
        include_str!("../../packaging/examples/handlers/generate-report"),
    ),
    (
        "task.sh",
        include_str!("../../packaging/examples/handlers/task.sh"),
    ),
    (
        "json.awk",
        include_str!("../../packaging/examples/handlers/json.awk"),
    ),
    (
        "pnm.awk",
        include_str!("../../packaging/examples/handlers/pnm.awk"),
    ),
    (
        "report.awk",
        include_str!("../../packaging/examples/handlers/report.awk"),
    ),
];

/// A stand-in for a mail relay that answers "try later" to the first try of
/// each message and takes it on the second, so the demo shows a local retry.
const FLAKY_SENDMAIL: &str = r#"#!/bin/sh
# A mail relay for the demo: "451 try later" once per message, then accepted.
mark="$DEMO_DIR/.tried-$TASK_ID"
if [ ! -e "$mark" ]; then
    : > "$mark"
    echo "451 4.3.0 mail relay busy, try later" >&2
    exit 75
fi
cat > "$OUTBOX_DIR/$TASK_ID.eml"
"#;

/// Options of `taskworker demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// How many tasks to enqueue.
    pub tasks: usize,
    /// Processor threads.
    pub concurrency: usize,
    /// Where scripts, inputs and outputs go.
    pub dir: PathBuf,
}

impl Default for DemoOptions {
    fn default() -> DemoOptions {
        DemoOptions {
            tasks: 60,
            concurrency: 4,
            dir: std::env::temp_dir().join(format!("taskworker-demo-{}", std::process::id())),
        }
    }
}

/// What the demo did.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoSummary {
    /// Tasks enqueued.
    pub tasks: usize,
    /// Tasks completed.
    pub completed: u64,
    /// Tasks failed for good.
    pub failed: u64,
    /// Local retries made by the worker.
    pub retried: u64,
    /// Wall time from the first enqueue to the last report.
    pub elapsed: Duration,
}

/// Runs `taskworker demo [--tasks N] [--concurrency N] [--dir DIR]`.
pub fn command(args: Vec<OsString>) -> Result<i32, Error> {
    let mut options = DemoOptions::default();
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("tasks") => options.tasks = positive(parser.value()?, "--tasks")?,
            Long("concurrency") => {
                options.concurrency = positive(parser.value()?, "--concurrency")?
            }
            Long("dir") => options.dir = parser.value()?.into(),
            Long("help") | Short('h') => {
                println!("USAGE: taskworker demo [--tasks N] [--concurrency N] [--dir DIR]");
                return Ok(0);
            }
            other => return Err(other.unexpected().into()),
        }
    }
    let summary = run(&options, true)?;
    print_summary(&options, &summary);
    Ok(0)
}

fn positive(value: OsString, flag: &str) -> Result<usize, Error> {
    let text = value.to_string_lossy().to_string();
    match text.parse::<usize>() {
        Ok(n) if (1..=100_000).contains(&n) => Ok(n),
        _ => Err(Error::Usage(format!(
            "{flag} {text:?}: expected a whole number from 1 to 100000"
        ))),
    }
}

/// Runs the demo; `progress` draws a progress line on stdout.
pub fn run(options: &DemoOptions, progress: bool) -> Result<DemoSummary, Error> {
    let dir = &options.dir;
    let handlers = install_handlers(dir)?;
    let server = Server::start(ServerConfig {
        retry_backoff: Duration::from_millis(200),
        retry_backoff_max: Duration::from_secs(1),
        ..ServerConfig::default()
    })?;
    let agent = enqueue::agent(Duration::from_secs(10));
    let started = Instant::now();
    for i in 0..options.tasks {
        let (task_type, parameters) = sample_task(i, dir);
        let task = EnqueueRequest {
            task_type: task_type.into(),
            parameters: Some(parameters),
            id: Some(format!("demo-{i:05}")),
            ..EnqueueRequest::default()
        };
        enqueue::post(&agent, &server.url(), None, &task)?;
    }

    let config = Config {
        api_url: server.url(),
        concurrent_tasks: options.concurrency,
        health_addr: None,
        wait_seconds: 5,
        polling_interval: Duration::from_millis(100),
        max_retries: 2,
        handlers,
        ..Config::default()
    };
    let shutdown = shutdown::install_signals().or_else(|_| Ok::<_, Error>(shutdown::manual().0))?;
    let stop = shutdown.handle();
    let stats: Arc<Mutex<Option<Arc<Stats>>>> = Arc::default();
    let stats_slot = stats.clone();
    let worker = std::thread::Builder::new()
        .name("taskworker-demo".into())
        .spawn(move || {
            Worker::new(config).run_until(shutdown, |state| {
                *stats_slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(state.stats.clone());
            })
        })
        .map_err(|e| Error::io("starting the demo worker", e))?;

    let total = options.tasks as u64;
    let (mut completed, mut failed) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(300);
    while completed + failed < total && Instant::now() < deadline && !worker.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
        (completed, failed) = server_counts(&agent, &server.url());
        if progress {
            draw_progress(completed, failed, total);
        }
    }
    if progress {
        println!();
    }
    let elapsed = started.elapsed();
    stop.stop(shutdown::StopReason::Requested);
    let result = worker.join().map_err(|_| Error::Panicked {
        thread: "demo worker".into(),
    })?;
    result?;
    let retried = stats
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map_or(0, |s| s.task_retries.load(Relaxed));
    Ok(DemoSummary {
        tasks: options.tasks,
        completed,
        failed,
        retried,
        elapsed,
    })
}

/// Writes the scripts into `dir/handlers` and returns the handler config.
fn install_handlers(dir: &Path) -> Result<serde_json::Map<String, Value>, Error> {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("handlers");
    for sub in ["handlers", "images", "outbox", "reports"] {
        std::fs::create_dir_all(dir.join(sub))
            .map_err(|e| Error::io(format!("creating {}", dir.join(sub).display()), e))?;
    }
    let sendmail = ("flaky-sendmail", FLAKY_SENDMAIL);
    for (name, text) in SCRIPTS.iter().chain([&sendmail]) {
        let path = bin.join(name);
        std::fs::write(&path, text)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        let mode = if name.contains('.') { 0o644 } else { 0o755 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(format!("chmod {}", path.display()), e))?;
    }
    let d = |sub: &str| dir.join(sub).display().to_string();
    let handlers = json!({
        "send.email": {"exec": {
            "command": [bin.join("send-email").display().to_string()],
            "env": {"OUTBOX_DIR": d("outbox"), "SENDMAIL": bin.join("flaky-sendmail").display().to_string(),
                    "DEMO_DIR": d(""), "MAIL_FROM": "demo@taskworker.invalid"},
            "timeout": 30
        }},
        "process.image": {"exec": {"command": [bin.join("process-image").display().to_string()], "env": {"IMAGE_TOOL": "builtin"}, "timeout": 60}},
        "generate.report": {"exec": {"command": [bin.join("generate-report").display().to_string()], "env": {"REPORT_DIR": d("reports")}, "timeout": 60}},
    });
    Ok(handlers.as_object().cloned().unwrap_or_default())
}

/// The `i`th demo task: mostly good ones, every 7th with bad input (a
/// permanent failure), and each e-mail's first try refused by the relay.
fn sample_task(i: usize, dir: &Path) -> (&'static str, Value) {
    let bad = i % 7 == 6;
    match i % 3 {
        0 => {
            let to = if bad {
                String::new()
            } else {
                format!("user{i}@example.com")
            };
            (
                "send.email",
                json!({"to": to, "subject": format!("Welcome #{i}"), "body": "Hello from taskworker."}),
            )
        }
        1 => {
            let image = dir.join("images").join(format!("photo-{i}.ppm"));
            if !bad {
                let _ = std::fs::write(&image, sample_ppm(i));
            }
            let op = ["grayscale", "flip", "mirror", "half"][i % 4];
            (
                "process.image",
                json!({"path": image.display().to_string(), "operation": op}),
            )
        }
        _ => {
            let rows: Vec<Value> = (0..5)
                .map(|r| json!([format!("item-{r}"), r * i, format!("{:.2}", r as f64 * 1.5)]))
                .collect();
            let rows = if bad {
                json!("not a table")
            } else {
                Value::Array(rows)
            };
            let format = if i % 2 == 0 { "markdown" } else { "csv" };
            (
                "generate.report",
                json!({"title": format!("Report {i}"), "columns": ["item", "count", "cost"], "rows": rows, "format": format}),
            )
        }
    }
}

/// A small plain-text (P3) colour gradient.
fn sample_ppm(seed: usize) -> String {
    let (w, h) = (16, 12);
    let mut s = format!("P3\n{w} {h}\n255\n");
    for y in 0..h {
        for x in 0..w {
            s.push_str(&format!(
                "{} {} {}\n",
                (x * 16 + seed) % 256,
                (y * 21) % 256,
                ((x + y) * 8) % 256
            ));
        }
    }
    s
}

fn server_counts(agent: &ureq::Agent, url: &str) -> (u64, u64) {
    let body: Option<Value> = agent
        .get(format!("{url}/health"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .and_then(|t| serde_json::from_str(&t).ok());
    let count = |k: &str| {
        body.as_ref()
            .and_then(|b| b["counts"][k].as_u64())
            .unwrap_or(0)
    };
    (count("completed"), count("failed"))
}

fn draw_progress(completed: u64, failed: u64, total: u64) {
    let done = completed + failed;
    let width = 30;
    let filled = (done * width / total.max(1)) as usize;
    print!(
        "\r[{}{}] {done}/{total} done ({completed} completed, {failed} failed)",
        "#".repeat(filled),
        " ".repeat(width as usize - filled)
    );
    let _ = std::io::stdout().flush();
}

fn print_summary(options: &DemoOptions, s: &DemoSummary) {
    let secs = s.elapsed.as_secs_f64().max(1e-3);
    let dir = options.dir.display();
    println!("\n| done | completed | retried | failed | tasks/s |");
    println!("|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {} | {} | {:.1} |",
        s.completed + s.failed,
        s.completed,
        s.retried,
        s.failed,
        (s.completed + s.failed) as f64 / secs
    );
    println!("\nThe failed tasks had bad input on purpose; the retried ones met a busy mail relay first.");
    println!("Outputs: e-mails in {dir}/outbox, images in {dir}/images, reports in {dir}/reports");
}
