//! The crate graph: reads `cargo metadata` and fails on any dependency between our crates
//! that the layering (docs/ARCHITECTURE.md) does not allow, on any crate it does not know, and
//! on an outside crate a layer must never use.

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Command,
};

use serde_json::Value;

/// Each workspace crate and the workspace crates it may depend on (normal dependencies): the
/// arrows of the layering, and no other.
const ALLOWED: &[(&str, &[&str])] = &[
    (
        "monitor-manager",
        &["api", "service", "worker", "store", "migration", "domain"],
    ),
    ("api", &["service", "domain"]),
    ("service", &["worker", "store", "domain"]),
    ("worker", &["store", "domain"]),
    ("store", &["entity", "domain"]),
    ("domain", &[]),
    ("entity", &[]),
    ("migration", &[]),
    ("bench", &["testkit"]),
    ("testkit", &["monitor-manager"]),
];

/// The outside crates `domain` may use: it does no I/O (JSON, patterns, JSON paths and CIDRs
/// are what assertions and the target policy are made of).
const DOMAIN_MAY_USE: &[&str] = &[
    "chrono",
    "serde",
    "url",
    "thiserror",
    "unicode-properties",
    "serde_json",
    "regex",
    "serde_json_path",
    "ipnet",
    "croner",
    "chrono-tz",
    "percent-encoding",
];

/// Outside crates a layer must never use, per crate: SQL lives in `store` alone, HTTP serving
/// in `api` alone, RabbitMQ in `worker` alone.
const NEVER: &[(&str, &[&str])] = &[
    (
        "store",
        &["axum", "async-graphql", "lapin", "reqwest", "hyper"],
    ),
    (
        "worker",
        &["axum", "async-graphql", "sea-orm", "rusqlite", "entity"],
    ),
    (
        "service",
        &[
            "axum",
            "async-graphql",
            "sea-orm",
            "rusqlite",
            "lapin",
            "entity",
        ],
    ),
    (
        "api",
        &["sea-orm", "rusqlite", "lapin", "entity", "store", "worker"],
    ),
    ("entity", &["tokio", "axum", "lapin", "reqwest"]),
    ("migration", &["tokio", "axum", "lapin", "reqwest"]),
];

/// Each workspace crate's normal dependencies, by name.
fn normal_dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--manifest-path",
        ])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata is JSON");
    let packages = metadata["packages"].as_array().expect("a package list");
    packages
        .iter()
        .map(|package| {
            let deps = package["dependencies"]
                .as_array()
                .expect("a dependency list")
                .iter()
                .filter(|dep| dep["kind"].is_null())
                .map(|dep| dep["name"].as_str().expect("a name").to_owned())
                .collect();
            (package["name"].as_str().expect("a name").to_owned(), deps)
        })
        .collect()
}

/// Arrows found between our crates that `allowed` does not list, and crates it does not know.
fn violations(
    graph: &BTreeMap<String, BTreeSet<String>>,
    allowed: &[(&str, &[&str])],
) -> Vec<String> {
    let allowed: BTreeMap<&str, &[&str]> = allowed.iter().copied().collect();
    let mut found = Vec::new();
    for (krate, deps) in graph {
        let Some(may) = allowed.get(krate.as_str()) else {
            found.push(format!("`{krate}` is not in the layering table"));
            continue;
        };
        for dep in deps.iter().filter(|dep| graph.contains_key(*dep)) {
            if !may.contains(&dep.as_str()) {
                found.push(format!("{krate} -> {dep}"));
            }
        }
    }
    found
}

#[test]
fn our_crates_depend_on_each_other_only_as_the_layering_allows() {
    let graph = normal_dependencies();
    for (krate, _) in ALLOWED {
        assert!(
            graph.contains_key(*krate),
            "`{krate}` is not a workspace crate"
        );
    }
    let found = violations(&graph, ALLOWED);
    assert!(
        found.is_empty(),
        "arrows the layering does not allow: {found:?}"
    );
}

#[test]
fn an_arrow_the_table_does_not_list_is_reported() {
    let graph = normal_dependencies();
    let mut stricter: Vec<(&str, &[&str])> = ALLOWED.to_vec();
    for (krate, may) in &mut stricter {
        if *krate == "api" {
            *may = &["service"];
        }
    }
    assert_eq!(violations(&graph, &stricter), ["api -> domain"]);
    let unknown: Vec<(&str, &[&str])> = ALLOWED
        .iter()
        .copied()
        .filter(|(k, _)| *k != "bench")
        .collect();
    assert_eq!(
        violations(&graph, &unknown),
        ["`bench` is not in the layering table"]
    );
}

#[test]
fn the_domain_crate_uses_only_pure_outside_crates() {
    let graph = normal_dependencies();
    let extra: Vec<&String> = graph["domain"]
        .iter()
        .filter(|dep| !DOMAIN_MAY_USE.contains(&dep.as_str()))
        .collect();
    assert!(extra.is_empty(), "domain uses {extra:?}");
}

#[test]
fn no_layer_uses_an_outside_crate_it_must_never_use() {
    let graph = normal_dependencies();
    for (krate, never) in NEVER {
        let bad: Vec<&&str> = never
            .iter()
            .filter(|dep| graph[*krate].contains(**dep))
            .collect();
        assert!(bad.is_empty(), "{krate} uses {bad:?}");
    }
}
