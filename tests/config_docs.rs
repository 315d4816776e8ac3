//! OPERATIONS.md's key table is the one the key definitions render, so the
//! docs and the code cannot disagree about a key.

use std::path::PathBuf;

/// The comment lines around the generated table in OPERATIONS.md.
const BEGIN: &str = "<!-- keys: generated from src/config/keys.rs by `UPDATE_DOCS=1 cargo test --test config_docs`; do not edit by hand -->\n";
const END: &str = "<!-- end of keys -->\n";

/// Set to rewrite the table in OPERATIONS.md instead of failing.
const UPDATE: &str = "UPDATE_DOCS";

#[test]
fn operations_md_key_table_matches_the_key_definitions() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("packaging/OPERATIONS.md");
    let text = std::fs::read_to_string(&path).expect("OPERATIONS.md reads");
    let (Some(begin), Some(end)) = (text.find(BEGIN), text.find(END)) else {
        panic!("OPERATIONS.md has no key table between {BEGIN:?} and {END:?}");
    };
    let start = begin + BEGIN.len();
    assert!(
        start <= end,
        "OPERATIONS.md: {END:?} comes before {BEGIN:?}"
    );
    // Blank lines around the table, so that no Markdown reader takes a
    // comment line for a row.
    let expected = format!("\n{}\n", taskworker::config_key_table());
    if text[start..end] == expected {
        return;
    }
    if std::env::var_os(UPDATE).is_some() {
        let updated = format!("{}{expected}{}", &text[..start], &text[end..]);
        std::fs::write(&path, updated).expect("OPERATIONS.md writes");
        return;
    }
    panic!(
        "packaging/OPERATIONS.md's key table differs from the key definitions in \
         src/config/keys.rs; rewrite it with `{UPDATE}=1 cargo test --test config_docs` \
         and review the diff.\n--- expected table ---\n{expected}"
    );
}
