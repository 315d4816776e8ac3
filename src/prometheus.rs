//! The Prometheus text exposition format (version 0.0.4), written in one
//! place for the worker's and the server's `/metrics`: `# HELP` and `# TYPE`
//! headers, counters and gauges with escaped labels, and histograms.

use std::fmt::{Display, Write};

/// The `# TYPE` of a counter or gauge family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (the name ends in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// Writes one metric family: its `# HELP` and `# TYPE` lines, then one line
/// per sample, each a label set (from [`labels`], or empty) and a value.
pub fn family<V: Display>(
    out: &mut String,
    name: &str,
    kind: Kind,
    help: &str,
    samples: &[(String, V)],
) {
    header(out, name, kind.as_str(), help);
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

/// Writes a family of one sample without labels.
pub fn single(out: &mut String, name: &str, kind: Kind, help: &str, value: impl Display) {
    header(out, name, kind.as_str(), help);
    let _ = writeln!(out, "{name} {value}");
}

/// Writes a histogram family of one series without labels. `buckets` pairs
/// each upper bound, in rising order, with the observations that fell in
/// that bucket alone (above the bound before it); the writer adds them up,
/// since the format wants every bucket to count all observations up to its
/// bound. `count` includes those above the last bound, which only the
/// `+Inf` bucket holds.
pub fn histogram(
    out: &mut String,
    name: &str,
    help: &str,
    buckets: &[(f64, u64)],
    count: u64,
    sum: f64,
) {
    histogram_start(out, name, help);
    histogram_series(out, name, &[], buckets, count, sum);
}

/// Writes a histogram family's `# HELP` and `# TYPE` lines; its series
/// follow, one [`histogram_series`] each.
pub fn histogram_start(out: &mut String, name: &str, help: &str) {
    header(out, name, "histogram", help);
}

/// Writes one series of a histogram family, as [`histogram`] does, each
/// sample labelled with `pairs` (before `le`).
pub fn histogram_series(
    out: &mut String,
    name: &str,
    pairs: &[(&str, &str)],
    buckets: &[(f64, u64)],
    count: u64,
    sum: f64,
) {
    let inner = label_pairs(pairs);
    let (bucket_prefix, set) = if inner.is_empty() {
        (String::new(), String::new())
    } else {
        (format!("{inner},"), format!("{{{inner}}}"))
    };
    let mut cumulative = 0;
    for (bound, n) in buckets {
        cumulative += n;
        let _ = writeln!(
            out,
            "{name}_bucket{{{bucket_prefix}le=\"{bound}\"}} {cumulative}"
        );
    }
    let _ = writeln!(out, "{name}_bucket{{{bucket_prefix}le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum{set} {sum}");
    let _ = writeln!(out, "{name}_count{set} {count}");
}

/// A label set, `{name="value",...}`, with each value escaped as the text
/// format wants (backslash, double quote and line feed): a label value is
/// free text, such as a task's `error_type`.
pub fn labels(pairs: &[(&str, &str)]) -> String {
    format!("{{{}}}", label_pairs(pairs))
}

/// `name="value",...` without the braces, values escaped as in [`labels`].
fn label_pairs(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(name, value)| {
            let value = value
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{name}=\"{value}\"")
        })
        .collect();
    inner.join(",")
}

/// The `# HELP` and `# TYPE` lines; help text escapes backslash and line
/// feed (a double quote needs none there).
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_label_values_and_help() {
        assert_eq!(labels(&[]), "{}");
        assert_eq!(
            labels(&[("a", "x"), ("b", "say \"hi\"\\n\nnext")]),
            r#"{a="x",b="say \"hi\"\\n\nnext"}"#
        );
        let mut out = String::new();
        family::<u64>(&mut out, "m_total", Kind::Counter, "Line\nbreak \\.", &[]);
        assert_eq!(
            out,
            "# HELP m_total Line\\nbreak \\\\.\n# TYPE m_total counter\n"
        );
    }

    #[test]
    fn writes_labelled_and_single_samples() {
        let mut out = String::new();
        family(
            &mut out,
            "jobs",
            Kind::Gauge,
            "Jobs by state.",
            &[
                (labels(&[("state", "busy")]), 2),
                (labels(&[("state", "idle")]), 0),
            ],
        );
        single(&mut out, "up_seconds", Kind::Gauge, "Uptime.", "1.500");
        assert_eq!(
            out,
            "# HELP jobs Jobs by state.\n# TYPE jobs gauge\n\
             jobs{state=\"busy\"} 2\njobs{state=\"idle\"} 0\n\
             # HELP up_seconds Uptime.\n# TYPE up_seconds gauge\nup_seconds 1.500\n"
        );
    }

    #[test]
    fn a_labelled_histogram_series_puts_le_last() {
        let mut out = String::new();
        histogram_series(&mut out, "d", &[("type", "a\"b")], &[(1.0, 2)], 3, 0.5);
        assert_eq!(
            out,
            "d_bucket{type=\"a\\\"b\",le=\"1\"} 2\nd_bucket{type=\"a\\\"b\",le=\"+Inf\"} 3\n\
             d_sum{type=\"a\\\"b\"} 0.5\nd_count{type=\"a\\\"b\"} 3\n"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut out = String::new();
        histogram(
            &mut out,
            "d_seconds",
            "Durations.",
            &[(0.5, 1), (1.0, 0), (2.5, 2)],
            4,
            7.25,
        );
        assert_eq!(
            out,
            "# HELP d_seconds Durations.\n# TYPE d_seconds histogram\n\
             d_seconds_bucket{le=\"0.5\"} 1\nd_seconds_bucket{le=\"1\"} 1\n\
             d_seconds_bucket{le=\"2.5\"} 3\nd_seconds_bucket{le=\"+Inf\"} 4\n\
             d_seconds_sum 7.25\nd_seconds_count 4\n"
        );
    }
}
