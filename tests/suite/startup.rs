//! Start-up failures of the real binary: each ends at once with a non-zero exit and exactly one
//! line on stderr saying what is wrong and what to do (a wrong setting, a missing SQLite
//! directory, each way a PostgreSQL connection fails, a second all-in-one process on one SQLite
//! file).

use std::{
    io::Write as _,
    net::TcpListener,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use crate::common::{Backend, Proc, TestDb, BIN};

/// What a run of the binary left: success, stdout, stderr and how long it took.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// Runs `monitor-manager ARGS` in `dir` on `database_url`, logging warnings only (so a failure
/// is the error line alone).
fn run(dir: &Path, database_url: &str, args: &[&str]) -> Run {
    let started = Instant::now();
    let output = Command::new(BIN)
        .env_clear()
        .current_dir(dir)
        .env("DATABASE_URL", database_url)
        .env("PORT", "0")
        .env("RUST_LOG", "warn")
        .args(args)
        .output()
        .expect("run monitor-manager");
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        took: started.elapsed(),
    }
}

/// Asserts a quick failure whose stderr is exactly `error: {line}`.
fn assert_fails_with(run: &Run, line: &str) {
    assert!(!run.ok, "it should fail; stderr:\n{}", run.stderr);
    assert_eq!(run.stderr, format!("error: {line}\n"));
    assert!(run.took < Duration::from_secs(3), "took {:?}", run.took);
}

/// A PostgreSQL URL for the test server with another database name, and its `host:port`; `None`
/// (after saying so) when PostgreSQL is unreachable outside CI.
async fn postgres_url_for(database: &str) -> Option<(String, String, TestDb)> {
    let db = TestDb::fresh(Backend::Postgres).await?;
    let mut url = url::Url::parse(&db.url).expect("a PostgreSQL URL");
    let target = format!(
        "{}:{}",
        url.host_str().expect("a host"),
        url.port().unwrap_or(5432)
    );
    url.set_path(&format!("/{database}"));
    Some((url.into(), target, db))
}

#[test]
fn a_sqlite_file_in_a_missing_directory_names_the_directory_and_the_mkdir() {
    let dir = tempfile::tempdir().unwrap();
    let run = run(dir.path(), "sqlite://x/y/monitor.db", &[]);
    assert_fails_with(
        &run,
        "the directory `x/y` for the SQLite database does not exist; create it (mkdir -p x/y) or point DATABASE_URL elsewhere",
    );
    assert!(!dir.path().join("x").exists(), "nothing was created");
}

#[tokio::test]
async fn a_missing_postgres_database_names_it_and_createdb() {
    let name = format!("mm_missing_{}", std::process::id());
    let Some((url, target, _db)) = postgres_url_for(&name).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for args in [&[][..], &["migrate", "status"], &["health"]] {
        let run = run(dir.path(), &url, args);
        assert_fails_with(
            &run,
            &format!("the PostgreSQL database `{name}` does not exist on {target}; create it (createdb {name}, or CREATE DATABASE {name}) or point DATABASE_URL (or DB_NAME) at another database"),
        );
    }
}

#[test]
fn a_refused_postgres_port_is_reported_at_once() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let run = run(
        dir.path(),
        &format!("postgres://postgres:secret@127.0.0.1:{port}/monitors"),
        &[],
    );
    assert_fails_with(
        &run,
        &format!(
            "cannot connect to PostgreSQL at 127.0.0.1:{port}: connection refused; is the server running?"
        ),
    );
    assert!(run.took < Duration::from_secs(1), "took {:?}", run.took);
}

#[test]
fn an_unknown_postgres_host_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let run = run(
        dir.path(),
        "postgres://postgres@no-such-host.invalid:5432/monitors",
        &[],
    );
    assert_fails_with(
        &run,
        "cannot connect to PostgreSQL at no-such-host.invalid:5432: unknown host `no-such-host.invalid`; check the host in DATABASE_URL (or DB_HOST)",
    );
}

#[test]
fn something_other_than_postgres_on_the_port_is_named() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let run = run(
        dir.path(),
        &format!("postgres://postgres@127.0.0.1:{port}/monitors"),
        &[],
    );
    assert!(!run.ok);
    let prefix = format!(
        "error: cannot connect to PostgreSQL at 127.0.0.1:{port}: what answers there is not PostgreSQL ("
    );
    assert!(run.stderr.starts_with(&prefix), "{}", run.stderr);
    assert!(
        run.stderr
            .ends_with("); check the host and port in DATABASE_URL (or DB_HOST and DB_PORT)\n"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}

#[tokio::test]
async fn a_refused_postgres_user_is_named_without_its_password() {
    let Some((url, target, _db)) = postgres_url_for("postgres").await else {
        return;
    };
    let mut url = url::Url::parse(&url).unwrap();
    url.set_username("mm_no_such_role").unwrap();
    url.set_password(Some("secret")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = run(dir.path(), url.as_str(), &[]);
    let check = "check the user and password in DATABASE_URL (or DB_USER and DB_PASSWORD)";
    // The server's pg_hba.conf decides which: trust finds no role, password auth fails.
    let no_role = format!(
        "PostgreSQL at {target} refused user `mm_no_such_role`: role \"mm_no_such_role\" does not exist; {check}, and the server's pg_hba.conf"
    );
    let bad_password = format!(
        "PostgreSQL at {target} refused user `mm_no_such_role`: password authentication failed; {check}"
    );
    assert!(!run.ok);
    assert!(
        run.stderr == format!("error: {no_role}\n")
            || run.stderr == format!("error: {bad_password}\n"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("secret"));
}

#[tokio::test]
async fn a_tls_failure_says_which_settings_to_check() {
    let Some((url, target, _db)) = postgres_url_for("postgres").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // No root certificate is configured, so full verification fails whether or not the server
    // offers TLS.
    let run = run(dir.path(), &format!("{url}?sslmode=verify-full"), &[]);
    assert!(!run.ok);
    let prefix = format!("error: cannot connect to PostgreSQL at {target}: TLS failed (");
    assert!(run.stderr.starts_with(&prefix), "{}", run.stderr);
    assert!(
        run.stderr.ends_with(
            "); check sslmode and sslrootcert in DATABASE_URL against the server's certificate\n"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}

#[tokio::test]
async fn a_second_all_in_one_process_on_one_sqlite_file_refuses_to_start() {
    let db = TestDb::fresh(Backend::Sqlite).await.unwrap();
    let file = db.url.strip_prefix("sqlite://").unwrap().to_owned();
    let mut first = Proc::launch(BIN, &db.url, &[], &[], "listening on ");
    let dir = tempfile::tempdir().unwrap();

    let second = run(dir.path(), &db.url, &["serve"]);
    assert_fails_with(
        &second,
        &format!("another monitor-manager is already running on this database ({file}); stop it first, or run several processes on PostgreSQL with RABBITMQ_URL"),
    );
    let second = run(dir.path(), &db.url, &[]);
    assert!(!second.ok, "without a subcommand too: {}", second.stderr);

    // Commands that do not schedule checks still work beside it.
    let health = run(dir.path(), &db.url, &["health"]);
    assert!(health.ok, "{}", health.stderr);
    assert_eq!(health.stdout, "ok\n");
    let status = run(dir.path(), &db.url, &["migrate", "status"]);
    assert!(status.ok, "{}", status.stderr);
    assert!(status.stdout.contains("applied"), "{}", status.stdout);

    // The lock goes with the process, however it ends.
    first.kill();
    let _again = Proc::launch(BIN, &db.url, &[], &[], "listening on ");
}

/// Runs the binary with some environment and returns (exit success, stderr).
fn run_binary(env: &[(&str, &str)], args: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(BIN);
    command.env_clear().current_dir(dir.path()).args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_wrong_setting_ends_the_process_with_one_clear_line() {
    for (env, needle) in [
        (vec![("PORT", "abc")], "port"),
        (vec![("PORT", "70000")], "port"),
        (
            vec![("DATABASE_URL", "mysql://root@localhost/x")],
            "DATABASE_URL",
        ),
        (vec![("CHECK_CONCURRENCY", "0")], "check-concurrency"),
        (vec![("AUTO_MIGRATE", "maybe")], "auto-migrate"),
        (vec![("HOST", "not an address"), ("PORT", "0")], "HOST"),
        (
            vec![("DATABASE_URL", "postgres://nobody:secret@127.0.0.1:1/none")],
            "cannot connect",
        ),
    ] {
        let (ok, stderr) = run_binary(&env, &[]);
        assert!(!ok, "{env:?} should fail");
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.contains(" INFO "))
            .collect();
        assert_eq!(lines.len(), 1, "{env:?}: expected one line, got:\n{stderr}");
        assert!(lines[0].contains(needle), "{env:?}: {stderr}");
        assert!(
            !stderr.contains("secret"),
            "passwords stay out of messages: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
