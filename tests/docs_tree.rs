//! README's tree of `src/` names every file and folder of `src/`, and no other.

use std::collections::BTreeSet;
use std::path::Path;

/// `dir/name` for every file under `src/` (one level of folders), as `ls src src/*/` lists them.
fn files_on_disk() -> BTreeSet<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(&src).expect("src/ is readable").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() {
            for inner in std::fs::read_dir(entry.path())
                .expect("folder readable")
                .flatten()
            {
                out.insert(format!("{name}/{}", inner.file_name().to_string_lossy()));
            }
        } else {
            out.insert(name);
        }
    }
    out
}

/// The same list, read from the tree in README.md: the code block that starts with `src/`.
fn files_in_readme() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md is readable");
    let block = readme
        .split("```")
        .find(|b| b.trim_start().starts_with("src/"))
        .expect("README.md has a code block with the tree of src/");
    let mut out = BTreeSet::new();
    let mut folder = String::new();
    for line in block.lines().skip(1) {
        let words: Vec<&str> = line
            .split_whitespace()
            .filter(|w| !w.chars().all(|c| "│├└─".contains(c)))
            .collect();
        // A folder line starts with `name/`; a file line names one or more `*.rs`;
        // lines nested under a folder begin with tree drawing or spaces.
        let nested = line.starts_with('│') || line.starts_with("    ");
        if !nested {
            folder.clear();
        }
        for (i, word) in words.iter().enumerate() {
            let word = word.trim_start_matches(['├', '└', '─', '│']);
            if i == 0 && word.ends_with('/') && !nested {
                folder = word.trim_end_matches('/').to_string();
            } else if nested && word.ends_with('/') && !folder.is_empty() {
                // A folder inside a folder: named, its files not listed.
                out.insert(format!("{folder}/{}", word.trim_end_matches('/')));
            } else if word.ends_with(".rs") {
                if folder.is_empty() {
                    out.insert(word.to_string());
                } else {
                    out.insert(format!("{folder}/{word}"));
                }
            } else {
                break;
            }
        }
    }
    out
}

#[test]
fn readme_tree_matches_the_files_of_src() {
    let disk = files_on_disk();
    let readme = files_in_readme();
    let missing: Vec<_> = disk.difference(&readme).collect();
    let stale: Vec<_> = readme.difference(&disk).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "README.md's tree of src/ is out of date: not in README {missing:?}; not in src {stale:?}"
    );
}
