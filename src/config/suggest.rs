//! "Did you mean": the known name nearest to a misspelt one, for unknown
//! config keys, flags and commands.

/// The number of single-character insertions, deletions, substitutions and
/// swaps of two neighbours that turn `a` into `b` (optimal string alignment
/// distance), ignoring ASCII case. A swap counts as one edit because
/// `--concurrnecy` is one slip of the fingers, not two.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    // Three rows of the classic table: the one before last, the last, this one.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut last: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut row = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            row[j] = (last[j] + 1).min(row[j - 1] + 1).min(last[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                row[j] = row[j].min(before[j - 2] + 1);
            }
        }
        before = std::mem::replace(&mut last, row);
    }
    last[b.len()]
}

/// The candidate nearest to `word`, when it is near enough to be what was
/// meant: at most a third of the word's length away (and at least 2 edits
/// are always allowed), so that `--verbose` does not suggest `--retain`.
/// Ties go to the earlier candidate.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `" (did you mean X?)"` for the nearest candidate, or nothing.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    nearest(word, candidates)
        .map(|c| format!(" (did you mean {c}?)"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_single_edits() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("timeout", "timeout"), 0);
        assert_eq!(edit_distance("timout", "timeout"), 1, "insertion");
        assert_eq!(edit_distance("timeoutt", "timeout"), 1, "deletion");
        assert_eq!(edit_distance("timeaut", "timeout"), 1, "substitution");
        assert_eq!(edit_distance("tiemout", "timeout"), 1, "swap");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("TIMEOUT", "timeout"), 0, "case");
        assert_eq!(edit_distance("ca", "abc"), 3, "no edit of a swapped pair");
    }

    #[test]
    fn distance_is_symmetric() {
        for (a, b) in [("serve", "server"), ("api.url", "api_url"), ("ab", "ba")] {
            assert_eq!(edit_distance(a, b), edit_distance(b, a), "{a} {b}");
        }
    }

    #[test]
    fn nearest_suggests_only_what_is_near() {
        let flags = ["--concurrency", "--config", "--timeout", "--retain"];
        assert_eq!(nearest("--concurency", flags), Some("--concurrency"));
        assert_eq!(nearest("--confg", flags), Some("--config"));
        assert_eq!(nearest("--verbose", flags), None);
        assert_eq!(
            nearest("x", ["y", "zzzz"]),
            Some("y"),
            "two edits are allowed"
        );
        assert_eq!(
            nearest(
                "worker.polling_intervall",
                ["worker.polling_interval", "worker.id"]
            ),
            Some("worker.polling_interval")
        );
        assert_eq!(
            did_you_mean("serv", ["serve", "run"]),
            " (did you mean serve?)"
        );
        assert_eq!(did_you_mean("frobnicate", ["serve", "run"]), "");
    }
}
