//! The conformance tests per store: [`per_store!`] runs each listed test
//! against the memory, journal and Redis stores, and [`start_server`](super::start_server)
//! gives it the store of its run. Redis is a real `redis-server` on a free
//! loopback port in a temporary directory, one per test thread, stopped
//! when the thread ends.

use std::cell::{Cell, RefCell};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use taskworker::ServerConfig;

/// The store a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// In memory.
    Memory,
    /// A journal file (`--data`).
    Journal,
    /// Redis (`--store`).
    Redis,
}

thread_local! {
    static KIND: Cell<Kind> = const { Cell::new(Kind::Memory) };
    static REDIS: RefCell<Option<RedisServer>> = const { RefCell::new(None) };
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Runs `test` with servers of `kind`; a Redis run without `redis-server`
/// says so in one line and runs nothing.
pub fn run(kind: Kind, test: fn()) {
    if kind == Kind::Redis && !redis_installed() {
        super::skip("redis-server is not installed (apt-get install redis-server)");
        return;
    }
    KIND.with(|k| k.set(kind));
    test();
}

/// The store this thread's tests run against.
pub fn kind() -> Kind {
    KIND.with(Cell::get)
}

/// `config` with this thread's store filled in.
pub fn configure(config: ServerConfig) -> ServerConfig {
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    match KIND.with(Cell::get) {
        Kind::Memory => config,
        Kind::Journal if config.data.is_some() => config,
        Kind::Journal => {
            let dir = super::temp_dir(&format!("store-{n}"));
            ServerConfig {
                data: Some(dir.join("journal.jsonl")),
                ..config
            }
        }
        Kind::Redis => ServerConfig {
            store: Some(redis_url()),
            store_prefix: format!("test{n}"),
            ..config
        },
    }
}

/// The URL of this thread's `redis-server`, started on first use.
pub fn redis_url() -> String {
    REDIS.with(|r| {
        r.borrow_mut()
            .get_or_insert_with(|| RedisServer::start(&[]))
            .url()
    })
}

/// Whether `redis-server` can be run here.
pub fn redis_installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A `redis-server` of a test, killed on drop.
pub struct RedisServer {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its directory (AOF, logs).
    pub dir: PathBuf,
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts one on a free port with `extra` config arguments (`--appendonly yes`).
    pub fn start(extra: &[&str]) -> RedisServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = super::temp_dir(&format!("redis-{port}"));
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let child = spawn(port, &dir, &extra);
        let server = RedisServer {
            child,
            port,
            dir,
            extra,
        };
        server.wait_ready();
        server
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills it (as a crash would) and starts it again on the same port and directory.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(self.port, &self.dir, &self.extra);
        self.wait_ready();
    }

    /// Stops it, runs `while_down`, then starts it again on the same port
    /// and directory (its append-only file, when it has one, is replayed).
    pub fn restart_after(&mut self, while_down: impl FnOnce()) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        while_down();
        self.child = spawn(self.port, &self.dir, &self.extra);
        self.wait_ready();
    }

    /// Commands the clients of this server sent it, as `INFO commandstats`
    /// counts them: each `EVAL`/`EVALSHA` (and `SCRIPT LOAD`), `PING`,
    /// `SUBSCRIBE` and the like is one round trip. Commands a script runs
    /// are counted by Redis too, under their own names; they are left out,
    /// and so is `INFO` itself.
    pub fn round_trips(&self) -> u64 {
        self.info("commandstats")
            .lines()
            .filter_map(|l| l.strip_prefix("cmdstat_"))
            .filter_map(|l| {
                let (name, rest) = l.split_once(':')?;
                let calls = rest.strip_prefix("calls=")?.split(',').next()?;
                Some((name, calls.parse::<u64>().ok()?))
            })
            .filter(|(name, _)| sent_by_clients(name))
            .map(|(_, calls)| calls)
            .sum()
    }

    /// Reads from client sockets Redis has made (`total_reads_processed`
    /// of `INFO stats`): commands sent one at a time, each after the
    /// answer to the last, take a read each; a pipeline takes one for as
    /// many as fit in its read buffer.
    pub fn reads_processed(&self) -> u64 {
        self.info("stats")
            .lines()
            .find_map(|l| l.strip_prefix("total_reads_processed:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("total_reads_processed in INFO stats")
    }

    /// Runs one command (`SCRIPT FLUSH`, ...) as a client of its own.
    pub fn command(&self, words: &[&str]) {
        let mut cmd = ::redis::cmd(words[0]);
        for word in &words[1..] {
            cmd.arg(*word);
        }
        cmd.query::<::redis::Value>(&mut self.connection())
            .unwrap_or_else(|e| panic!("{words:?}: {e}"));
    }

    /// One section of `INFO`.
    fn info(&self, section: &str) -> String {
        ::redis::cmd("INFO")
            .arg(section)
            .query(&mut self.connection())
            .unwrap_or_else(|e| panic!("INFO {section}: {e}"))
    }

    fn connection(&self) -> ::redis::Connection {
        ::redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("a connection to redis-server")
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "redis-server on port {} did not start within 10 s",
            self.port
        );
    }
}

/// Whether `name` (as `INFO commandstats` spells it) is a command only a
/// client sends, never a script: the scripts themselves, and connection
/// housekeeping. `INFO` is the counter's own.
fn sent_by_clients(name: &str) -> bool {
    let base = name.split('|').next().unwrap_or(name);
    matches!(
        base,
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "script" | "fcall" | "fcall_ro"
    ) || matches!(
        base,
        "ping" | "auth" | "hello" | "select" | "client" | "subscribe" | "unsubscribe"
    )
}

fn spawn(port: u16, dir: &std::path::Path, extra: &[String]) -> Child {
    Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server starts")
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs each named test (a plain `fn()`) once per store: `memory::name`,
/// `journal::name`, `redis::name`.
#[macro_export]
macro_rules! per_store {
    ($($name:ident),+ $(,)?) => {
        mod memory {
            $(#[test] fn $name() { $crate::support::redis::run($crate::support::redis::Kind::Memory, super::$name) })+
        }
        mod journal {
            $(#[test] fn $name() { $crate::support::redis::run($crate::support::redis::Kind::Journal, super::$name) })+
        }
        mod redis {
            $(#[test] fn $name() { $crate::support::redis::run($crate::support::redis::Kind::Redis, super::$name) })+
        }
    };
}
