//! Docker cannot run here, so the deployment files are checked against the binary and the
//! README instead: every command they run exists, every variable they set is one the binary
//! reads and the README documents.

use std::process::Command;

use crate::common::BIN;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `monitor-manager ARGS --help` succeeds, i.e. the subcommand exists.
fn subcommand_exists(args: &[&str]) -> bool {
    Command::new(BIN)
        .args(args)
        .arg("--help")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn help_text() -> String {
    let output = Command::new(BIN).arg("--help").output().unwrap();
    String::from_utf8(output.stdout).unwrap()
}

/// The values of `command: ["..."]` lines.
fn compose_commands(compose: &str) -> Vec<String> {
    compose
        .lines()
        .filter_map(|l| l.trim().strip_prefix("command:"))
        .map(|v| {
            v.trim()
                .trim_matches(|c| c == '[' || c == ']')
                .replace('"', "")
        })
        .collect()
}

/// Upper-case keys set under `environment:` blocks of our services.
fn compose_variables(compose: &str) -> Vec<String> {
    compose
        .lines()
        .filter_map(|l| {
            let (key, _) = l.trim().split_once(':')?;
            let is_var = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            is_var.then(|| key.to_owned())
        })
        .filter(|k| !k.starts_with("POSTGRES_") && !k.starts_with("RABBITMQ_DEFAULT_"))
        .collect()
}

#[test]
fn every_command_in_the_compose_file_and_dockerfile_is_a_real_subcommand() {
    let compose = read("docker-compose.yml");
    let commands = compose_commands(&compose);
    assert_eq!(commands, ["api", "scheduler", "worker"], "{commands:?}");
    for command in &commands {
        assert!(
            subcommand_exists(&[command]),
            "`monitor-manager {command}` does not exist"
        );
    }
    let dockerfile = read("Dockerfile");
    assert!(dockerfile.contains(r#"CMD ["monitor-manager", "health"]"#));
    assert!(subcommand_exists(&["health"]));
    assert!(dockerfile.contains(r#"CMD ["serve"]"#));
    assert!(subcommand_exists(&["serve"]));
}

#[test]
fn every_variable_the_deployment_sets_is_read_by_the_binary_and_documented() {
    let compose = read("docker-compose.yml");
    let readme = read("README.md");
    let help = help_text();
    let variables = compose_variables(&compose);
    for required in [
        "DB_HOST",
        "DB_USER",
        "DB_PASSWORD",
        "DB_NAME",
        "RABBITMQ_URL",
        "HOST",
        "PORT",
    ] {
        assert!(
            variables.iter().any(|v| v == required),
            "compose should set {required}"
        );
    }
    for variable in &variables {
        assert!(
            readme.contains(&format!("`{variable}`")),
            "README does not document {variable}"
        );
        if variable != "RUST_LOG" {
            assert!(
                help.contains(&format!("env: {variable}")),
                "the binary does not read {variable}"
            );
        }
    }
    assert!(
        compose.contains("\"127.0.0.1:2433:2433\""),
        "the API is published on port 2433 of the host's loopback"
    );
    assert!(readme.contains("docker compose up -d --build"));
    assert!(readme.contains("--scale worker=3"));
}
