//! packaging/PROTOCOL.md documents every route the reference server has,
//! and no other: its "Every endpoint" table is compared with the route
//! table of `src/server/routes.rs`, and each route has a section of its own.
//! A route added to the server without its documentation fails here.

use std::collections::BTreeSet;
use std::path::Path;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `METHOD /path` for each arm of the route match in routes.rs, such as
/// `(["tasks", id, "complete"], "POST") =>`: quoted segments are literal, a
/// bound name is a path parameter, written `{id}`.
fn routes_in_code() -> BTreeSet<String> {
    let code = read("src/server/routes.rs");
    let mut routes = BTreeSet::new();
    for line in code.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("([") else {
            continue;
        };
        let Some((segments, after)) = rest.split_once("], \"") else {
            continue;
        };
        let Some((method, _)) = after.split_once('"') else {
            continue;
        };
        let path: Vec<String> = segments
            .split(", ")
            .map(
                |s| match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                    Some(literal) => literal.to_string(),
                    None => format!("{{{s}}}"),
                },
            )
            .collect();
        routes.insert(format!("{method} /{}", path.join("/")));
    }
    assert!(
        routes.len() >= 5,
        "the route match of routes.rs was not found: {routes:?}"
    );
    routes
}

/// The first code span of each row of the "Every endpoint" table.
fn routes_in_doc_table(doc: &str) -> BTreeSet<String> {
    let table = doc
        .split("## Every endpoint")
        .nth(1)
        .expect("PROTOCOL.md has an \"Every endpoint\" section")
        .split("\n## ")
        .next()
        .unwrap_or("");
    table
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(String::from)
        .collect()
}

#[test]
fn protocol_md_lists_exactly_the_server_routes() {
    let doc = read("packaging/PROTOCOL.md");
    let code = routes_in_code();
    let listed = routes_in_doc_table(&doc);
    let undocumented: Vec<_> = code.difference(&listed).collect();
    let invented: Vec<_> = listed.difference(&code).collect();
    assert!(
        undocumented.is_empty() && invented.is_empty(),
        "packaging/PROTOCOL.md's endpoint table and src/server/routes.rs disagree: \
         routes not in the table {undocumented:?}; table rows the server does not have {invented:?}"
    );
}

#[test]
fn every_route_has_a_section_with_its_name() {
    let doc = read("packaging/PROTOCOL.md");
    for route in routes_in_code() {
        let headed = doc
            .lines()
            .any(|l| l.starts_with("### ") && l.contains(&format!("`{route}`")));
        assert!(headed, "PROTOCOL.md has no section headed with `{route}`");
    }
}
