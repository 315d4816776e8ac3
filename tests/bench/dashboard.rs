//! Benchmark of the dashboard's pages with 100,000 tasks in the store: the
//! overview, the lists (first and next page, filtered by type and by
//! priority), one task and the workers, in memory and on Redis (a
//! `redis-server` started here on a free loopback port, when installed).
//! Each figure is the time from request to the whole page over a
//! keep-alive loopback connection with a session cookie, so it bounds the
//! server's own time from above. Run with `cargo bench --bench dashboard`;
//! prints a Markdown table.

#[path = "../support/mod.rs"]
mod support;

#[path = "hundred_thousand.rs"]
mod hundred_thousand;

use hundred_thousand::{agent, median_and_p99, ms, on_each_store, TARGET};

use std::time::Duration;

/// GETs `url` with `cookie`; the status and the body's length.
fn get(agent: &ureq::Agent, url: &str, cookie: &str) -> (u16, String) {
    let mut resp = agent
        .get(url)
        .header("Cookie", cookie)
        .call()
        .expect("request");
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    (status, body)
}

/// The median and the 99th percentile of GETs of `path`, and the page's size.
fn time(agent: &ureq::Agent, base: &str, cookie: &str, path: &str) -> (Duration, Duration, usize) {
    let url = format!("{base}{path}");
    let (status, page) = get(agent, &url, cookie);
    assert_eq!(status, 200, "{path}: {page}");
    let (median, p99) = median_and_p99(|| {
        get(agent, &url, cookie);
    });
    (median, p99, page.len())
}

/// The `rel="next"` link of a list page, as a path.
fn next_page(page: &str) -> String {
    let marker = "rel=\"next\" href=\"";
    let start = page.find(marker).expect("a next page") + marker.len();
    page[start..]
        .split('"')
        .next()
        .unwrap_or("")
        .replace("&amp;", "&")
}

/// Each page's path, median, 99th percentile and size.
type Row = (String, Duration, Duration, usize);

fn measure(base: &str) -> Vec<Row> {
    let a = agent();
    let first = a.get(format!("{base}/ui")).call().expect("the overview");
    let cookie = first
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_string();
    let (_, queued) = get(&a, &format!("{base}/ui/tasks?status=queued"), &cookie);
    let paths = [
        "/ui".to_string(),
        "/ui/tasks?status=queued".to_string(),
        next_page(&queued),
        "/ui/tasks?status=completed&type=type3".to_string(),
        "/ui/tasks?status=queued&priority=low".to_string(),
        "/ui/tasks?status=failed".to_string(),
        "/ui/tasks?status=claimed".to_string(),
        "/ui/tasks".to_string(),
        "/ui/tasks/t4242".to_string(),
        "/ui/workers".to_string(),
    ];
    paths
        .iter()
        .map(|p| {
            let (median, p99, size) = time(&a, base, &cookie, p);
            (p.clone(), median, p99, size)
        })
        .collect()
}

fn main() {
    let rows = on_each_store("dashboard", measure);
    println!(
        "| store | page | median ms | p99 ms | KiB | within {} ms |",
        TARGET.as_millis()
    );
    println!("|---|---|---:|---:|---:|---|");
    for (store, (path, median, p99, size)) in rows {
        let ok = if p99 <= TARGET { "yes" } else { "no" };
        println!(
            "| {store} | `{path}` | {:.2} | {:.2} | {:.1} | {ok} |",
            ms(median),
            ms(p99),
            size as f64 / 1024.0
        );
    }
}
