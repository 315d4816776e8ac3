//! `/metrics` of a worker that has completed and failed tasks: every line
//! parses as the Prometheus text exposition format, the families the
//! operations guide lists are there with the right types and counts, and the
//! API key shows up in none of the health server's answers.

#![cfg(feature = "server")]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use support::worker::{wait_for_status, WorkerSpec};
use support::{start_server, wait_until, Api};
use taskworker::ServerConfig;

const KEY: &str = "metrics-test-KEY-5e1d9c";
/// An error type that is no upper-case word: its label is `OTHER`, since
/// the label takes a bounded set of values.
const ODD_TYPE: &str = "ODD \"quoted\" \\ TYPE";

/// One sample line: its name, labels in order, and value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

impl Sample {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One metric family: `# HELP`, `# TYPE` and its samples.
#[derive(Debug, Default)]
struct Family {
    kind: String,
    help: String,
    samples: Vec<Sample>,
}

/// Whether `name` is a valid metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Whether `name` is a valid label name (`[a-zA-Z_][a-zA-Z0-9_]*`, not `__` reserved).
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

/// A sample value as the format writes it: a Go float, or `+Inf`, `-Inf`, `NaN`.
fn parse_value(text: &str, line: &str) -> f64 {
    match text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        _ => {
            assert!(
                text.chars()
                    .all(|c| c.is_ascii_digit() || "+-.eE".contains(c)),
                "value {text:?} in {line:?}"
            );
            text.parse()
                .unwrap_or_else(|_| panic!("value {text:?} in {line:?}"))
        }
    }
}

/// Parses `{name="value",...}` at the start of `text`; returns the labels and the rest.
fn parse_labels<'a>(text: &'a str, line: &str) -> (Vec<(String, String)>, &'a str) {
    let mut labels = Vec::new();
    let mut rest = text.strip_prefix('{').expect("a label set");
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return (labels, after);
        }
        let (name, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("label without =\" in {line:?}"));
        assert!(is_label_name(name), "label name {name:?} in {line:?}");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => panic!("bad escape {other:?} in {line:?}"),
                },
                Some((i, '"')) => break i,
                Some((_, '\n')) => panic!("raw line feed in a label value: {line:?}"),
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value in {line:?}"),
            }
        };
        assert!(
            labels.iter().all(|(n, _)| n != name),
            "label {name} twice in {line:?}"
        );
        labels.push((name.to_string(), value));
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// Parses a whole exposition, asserting the format's rules line by line;
/// returns the families by name.
fn parse_exposition(text: &str) -> BTreeMap<String, Family> {
    assert!(text.ends_with('\n'), "the last line ends with a line feed");
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        assert!(!line.is_empty(), "an empty line in:\n{text}");
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            assert!(is_metric_name(name), "HELP name {name:?}");
            let mut chars = help.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    assert!(
                        matches!(chars.next(), Some('\\' | 'n')),
                        "bad escape in {line:?}"
                    );
                }
            }
            let family = families.entry(name.to_string()).or_default();
            assert!(family.help.is_empty(), "HELP twice for {name}");
            assert!(family.samples.is_empty(), "HELP after samples of {name}");
            family.help = help.to_string();
            current = Some(name.to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name and type");
            assert!(is_metric_name(name), "TYPE name {name:?}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "type {kind:?} in {line:?}"
            );
            let family = families.entry(name.to_string()).or_default();
            assert!(family.kind.is_empty(), "TYPE twice for {name}");
            assert!(family.samples.is_empty(), "TYPE after samples of {name}");
            family.kind = kind.to_string();
            current = Some(name.to_string());
        } else if line.starts_with('#') {
            continue;
        } else {
            let name_end = line
                .find(['{', ' '])
                .unwrap_or_else(|| panic!("no value in {line:?}"));
            let name = &line[..name_end];
            assert!(is_metric_name(name), "sample name {name:?}");
            let (labels, rest) = if line[name_end..].starts_with('{') {
                parse_labels(&line[name_end..], line)
            } else {
                (Vec::new(), &line[name_end..])
            };
            let mut fields = rest
                .strip_prefix(' ')
                .unwrap_or_else(|| panic!("no space before the value in {line:?}"))
                .split(' ');
            let value = parse_value(fields.next().unwrap_or(""), line);
            if let Some(ts) = fields.next() {
                assert!(ts.parse::<i64>().is_ok(), "timestamp {ts:?} in {line:?}");
            }
            assert!(fields.next().is_none(), "trailing fields in {line:?}");
            let family_name = current
                .clone()
                .unwrap_or_else(|| panic!("sample before any TYPE: {line:?}"));
            let family = families.get_mut(&family_name).expect("current family");
            let belongs = match family.kind.as_str() {
                "histogram" => ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| name == format!("{family_name}{s}")),
                _ => name == family_name,
            };
            assert!(belongs, "sample {name} under family {family_name}");
            family.samples.push(Sample {
                name: name.to_string(),
                labels,
                value,
            });
        }
    }
    for (name, family) in &families {
        assert!(!family.kind.is_empty(), "{name} has no TYPE");
        assert!(!family.help.is_empty(), "{name} has no HELP");
        check_family(name, family);
    }
    families
}

/// The rules of each type: counters end in `_total` and are finite and not
/// negative; a histogram's buckets rise, end with `+Inf` equal to `_count`,
/// and come with a `_sum`.
fn check_family(name: &str, family: &Family) {
    match family.kind.as_str() {
        "counter" => {
            assert!(name.ends_with("_total"), "counter {name} ends in _total");
            for s in &family.samples {
                assert!(s.value.is_finite() && s.value >= 0.0, "{s:?}");
            }
        }
        "gauge" => {
            for s in &family.samples {
                assert!(s.value.is_finite(), "{s:?}");
            }
        }
        "histogram" => {
            // One series per label set besides `le` (a histogram by type has several).
            let mut series: BTreeMap<Vec<(String, String)>, Vec<&Sample>> = BTreeMap::new();
            for s in &family.samples {
                let set = s
                    .labels
                    .iter()
                    .filter(|(n, _)| n != "le")
                    .cloned()
                    .collect();
                series.entry(set).or_default().push(s);
            }
            assert!(!series.is_empty(), "{name} has samples");
            for (set, samples) in series {
                check_histogram_series(&format!("{name}{set:?}"), name, &samples);
            }
        }
        other => panic!("{name}: unexpected type {other}"),
    }
}

/// The rules of one histogram series: its buckets rise, end with `+Inf`
/// equal to `_count`, and come with a `_sum`.
fn check_histogram_series(what: &str, name: &str, samples: &[&Sample]) {
    let buckets: Vec<&&Sample> = samples
        .iter()
        .filter(|s| s.name.ends_with("_bucket"))
        .collect();
    assert!(!buckets.is_empty(), "{what} has buckets");
    let mut last_le = f64::NEG_INFINITY;
    let mut last_count = 0.0;
    for b in &buckets {
        let le = b.label("le").unwrap_or_else(|| panic!("{b:?} has le"));
        let le = parse_value(le, le);
        assert!(le > last_le, "{what}: le rises: {b:?}");
        assert!(
            b.value >= last_count,
            "{what}: buckets are cumulative: {b:?}"
        );
        last_le = le;
        last_count = b.value;
    }
    assert_eq!(last_le, f64::INFINITY, "{what} ends with le=\"+Inf\"");
    let one = |suffix: &str| {
        let found: Vec<&&Sample> = samples
            .iter()
            .filter(|s| s.name == format!("{name}{suffix}"))
            .collect();
        assert_eq!(found.len(), 1, "{what}{suffix} once");
        found[0].value
    };
    assert_eq!(one("_count"), last_count, "{what}: +Inf bucket = _count");
    assert!(one("_sum") >= 0.0, "{what}_sum");
}

/// The sum of the samples named `name` over every label set.
fn total(families: &BTreeMap<String, Family>, name: &str) -> f64 {
    families
        .values()
        .flat_map(|f| &f.samples)
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum()
}

/// The value of the sample named `name` whose labels include every pair of `wanted`.
fn with_labels(families: &BTreeMap<String, Family>, name: &str, wanted: &[(&str, &str)]) -> f64 {
    families
        .values()
        .flat_map(|f| &f.samples)
        .find(|s| s.name == name && wanted.iter().all(|(l, v)| s.label(l) == Some(*v)))
        .unwrap_or_else(|| panic!("{name}{wanted:?} not found"))
        .value
}

/// The value of the one sample named `name` (a family's, or a histogram's `_sum`/`_count`).
fn value(families: &BTreeMap<String, Family>, name: &str) -> f64 {
    let found: Vec<&Sample> = families
        .values()
        .flat_map(|f| &f.samples)
        .filter(|s| s.name == name)
        .collect();
    assert_eq!(found.len(), 1, "{name}: {found:?}");
    found[0].value
}

/// The value of family `name`'s sample whose `label` is `wanted`.
fn labelled(families: &BTreeMap<String, Family>, name: &str, label: &str, wanted: &str) -> f64 {
    families[name]
        .samples
        .iter()
        .find(|s| s.label(label) == Some(wanted))
        .unwrap_or_else(|| panic!("{name}{{{label}={wanted:?}}} in {:?}", families[name]))
        .value
}

#[test]
fn metrics_parse_as_prometheus_text_and_cover_every_family() {
    let server = start_server(ServerConfig {
        api_key: Some(KEY.into()),
        // Short leases, so a task of a few seconds is heartbeaten.
        lease: Duration::from_secs(3),
        ..ServerConfig::default()
    });
    let url = server.url();
    let api = Api::new(url.clone()).with_key(KEY);
    let config = json!({"handlers": {
        "echo": {"builtin": "echo"},
        "sleep": {"builtin": "sleep"},
        "fail": {"builtin": "fail"},
    }});
    let worker = WorkerSpec::new("metrics", &url, config)
        .env("API_KEY", KEY)
        .env("HEALTH_ADDR", "127.0.0.1:0")
        .env("CONCURRENT_TASKS", "3")
        .env("MAX_RETRIES", "1")
        .start();
    let health = Api::new(worker.health_url());

    let enqueue = |task: serde_json::Value| {
        let (status, body) = api.post_json("/tasks", &task);
        assert_eq!(status, 201, "{body}");
    };
    for n in 0..4 {
        enqueue(json!({"type": "echo", "parameters": {"n": n}}));
    }
    for (error_type, retryable) in [
        ("RATE_LIMIT", true),
        ("VALIDATION", false),
        (ODD_TYPE, false),
    ] {
        enqueue(json!({"type": "fail", "max_attempts": 1, "parameters":
            {"message": "as asked", "error_type": error_type, "retryable": retryable}}));
    }
    enqueue(
        json!({"type": "sleep", "max_attempts": 1, "timeout_seconds": 1, "parameters": {"ms": 30000}}),
    );
    enqueue(json!({"type": "sleep", "parameters": {"ms": 2500}}));

    assert!(
        wait_for_status(&api, "completed", 5, Duration::from_secs(60))
            && wait_for_status(&api, "failed", 4, Duration::from_secs(60)),
        "log:\n{}",
        worker.log()
    );
    // The server counts a report when it arrives; the worker counted it before sending.
    let mut text = String::new();
    assert!(wait_until(Duration::from_secs(10), || {
        text = health.get_text("/metrics").1;
        total(
            &parse_exposition(&text),
            "taskworker_task_duration_seconds_count",
        ) == 9.0
    }));

    let families = parse_exposition(&text);
    for (name, kind) in [
        ("taskworker_claims_total", "counter"),
        ("taskworker_claim_latency_seconds", "histogram"),
        ("taskworker_outcomes_total", "counter"),
        ("taskworker_task_duration_seconds", "histogram"),
        ("taskworker_pickup_delay_seconds", "histogram"),
        ("taskworker_processors", "gauge"),
        ("taskworker_heartbeats_total", "counter"),
        ("taskworker_leases_lost_total", "counter"),
        ("taskworker_report_retries_total", "counter"),
        ("taskworker_spool_depth", "gauge"),
        ("taskworker_resident_memory_bytes", "gauge"),
        ("taskworker_api_up", "gauge"),
        ("taskworker_info", "gauge"),
        ("process_cpu_seconds_total", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
        ("process_max_fds", "gauge"),
        ("process_start_time_seconds", "gauge"),
    ] {
        let family = families
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"));
        assert_eq!(family.kind, kind, "{name}");
    }

    assert!(labelled(&families, "taskworker_claims_total", "result", "tasks") >= 1.0);
    for result in ["empty", "error"] {
        labelled(&families, "taskworker_claims_total", "result", result);
    }
    for (task_type, error_type, count) in [
        ("echo", "ok", 4.0),
        ("sleep", "ok", 1.0),
        ("fail", "RATE_LIMIT", 1.0),
        ("fail", "VALIDATION", 1.0),
        ("sleep", "TIMEOUT", 1.0),
        ("fail", "OTHER", 1.0),
    ] {
        assert_eq!(
            with_labels(
                &families,
                "taskworker_outcomes_total",
                &[("type", task_type), ("error_type", error_type)]
            ),
            count,
            "{task_type} {error_type}\n{text}"
        );
    }
    assert!(total(&families, "taskworker_claim_latency_seconds_count") >= 1.0);
    assert!(total(&families, "taskworker_task_duration_seconds_sum") >= 3.0);
    assert_eq!(
        with_labels(
            &families,
            "taskworker_task_duration_seconds_count",
            &[("type", "echo")]
        ),
        4.0
    );
    assert_eq!(
        value(&families, "taskworker_pickup_delay_seconds_count"),
        9.0,
        "every task that ran was picked up"
    );
    assert!(value(&families, "process_resident_memory_bytes") > 1e6);
    assert!(value(&families, "process_open_fds") >= 3.0);
    let busy = labelled(&families, "taskworker_processors", "state", "busy");
    let idle = labelled(&families, "taskworker_processors", "state", "idle");
    assert_eq!(busy + idle, 3.0, "busy + idle = CONCURRENT_TASKS");
    assert!(
        value(&families, "taskworker_heartbeats_total") >= 1.0,
        "{text}"
    );
    assert_eq!(value(&families, "taskworker_leases_lost_total"), 0.0);
    assert_eq!(value(&families, "taskworker_spool_depth"), 0.0);
    assert!(value(&families, "taskworker_resident_memory_bytes") > 1e6);
    assert_eq!(value(&families, "taskworker_api_up"), 1.0);
    let info = &families["taskworker_info"].samples[0];
    assert_eq!(info.label("version"), Some(env!("CARGO_PKG_VERSION")));
    assert!(info.label("worker_id").is_some_and(|id| !id.is_empty()));

    for path in ["/health", "/ready", "/status", "/metrics"] {
        let (_, body) = health.get_text(path);
        assert!(!body.contains(KEY), "{path} shows the API key:\n{body}");
    }
    assert!(!worker.log().contains(KEY), "the log shows the API key");
}

#[test]
fn parser_rejects_what_the_format_forbids() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\\\"\\\\\\n\"} 2\n";
    assert_eq!(
        parse_exposition(good)["a_total"].samples[0].label("x"),
        Some("1\"\\\n")
    );
    for bad in [
        "# HELP a A.\n# TYPE a counter\na 1\n",
        "# HELP a_total A.\n# TYPE a_total counter\na_total{x=1} 1\n",
        "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"\\t\"} 1\n",
        "# HELP a_total A.\n# TYPE a_total counter\na_total one\n",
        "# HELP 1a A.\n# TYPE 1a gauge\n1a 1\n",
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
        "b 1\n",
    ] {
        let bad = bad.to_string();
        let result = std::panic::catch_unwind(move || parse_exposition(&bad));
        assert!(result.is_err());
    }
}
