//! The `migrate` commands, a database upgraded from the previous schema, and monitors already
//! stored when the service starts.

use reqwest::Method;
use serde_json::{json, Value};
use testkit::on_both_backends;

use crate::common::{self, App, Backend, BIN};

#[test]
fn migrate_commands_apply_list_and_revert_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let run = |args: &[&str]| {
        let output = std::process::Command::new(BIN)
            .env_clear()
            .env("DATABASE_URL", &url)
            .env("RUST_LOG", "warn")
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    assert!(run(&["migrate", "status"])
        .lines()
        .all(|l| l.starts_with("pending")));
    let total = run(&["migrate", "status"]).lines().count();
    assert!(total >= 3, "every migration is listed");
    run(&["migrate", "up"]);
    let status = run(&["migrate", "status"]);
    assert_eq!(
        status.lines().filter(|l| l.starts_with("applied")).count(),
        total,
        "{status}"
    );
    run(&["migrate", "down"]);
    let status = run(&["migrate", "status"]);
    assert_eq!(
        status.lines().filter(|l| l.starts_with("applied")).count(),
        total - 1,
        "{status}"
    );
    run(&["migrate", "fresh"]);
    let status = run(&["migrate", "status"]);
    assert_eq!(
        status.lines().filter(|l| l.starts_with("applied")).count(),
        total,
        "{status}"
    );
}

/// `migrate up` run by several processes at once on one PostgreSQL database (by hand beside
/// services that start and migrate): they take turns on the migration lock, every one of them
/// succeeds, and every migration is applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_commands_run_at_once_on_postgres_take_turns() {
    let Some(db) = common::TestDb::fresh(Backend::Postgres).await else {
        return;
    };
    let command = |args: &[&str]| {
        let mut command = std::process::Command::new(BIN);
        command
            .env_clear()
            .env("DATABASE_URL", &db.url)
            .env("RUST_LOG", "warn")
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        command
    };
    let children: Vec<_> = (0..8)
        .map(|_| command(&["migrate", "up"]).spawn().unwrap())
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "a concurrent `migrate up` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let status = command(&["migrate", "status"]).output().unwrap();
    let status = String::from_utf8(status.stdout).unwrap();
    assert!(
        status.lines().count() >= 5 && status.lines().all(|l| l.starts_with("applied")),
        "{status}"
    );
    let rows = db.count("seaql_migrations").await;
    assert_eq!(
        rows,
        status.lines().count() as i64,
        "each migration recorded once"
    );
}

/// A fresh database of `backend` migrated `steps` migrations far (all of them when `None`), a
/// connection to it, and the backend's SQL literals for true and false; `None` when the test
/// is skipped.
async fn migrated_db(
    backend: Backend,
    steps: Option<u32>,
) -> Option<(
    common::TestDb,
    sea_orm::DatabaseConnection,
    &'static str,
    &'static str,
)> {
    use migration::MigratorTrait;

    let db = common::TestDb::fresh(backend).await?;
    let url = match backend {
        Backend::Sqlite => format!("{}?mode=rwc", db.url),
        Backend::Postgres => db.url.clone(),
    };
    let conn = sea_orm::Database::connect(&url).await.unwrap();
    migration::Migrator::up(&conn, steps).await.unwrap();
    let (yes, no) = match backend {
        Backend::Sqlite => ("1", "0"),
        Backend::Postgres => ("true", "false"),
    };
    Some((db, conn, yes, no))
}

/// A database written by the previous schema (results keyed by id only) is upgraded at
/// start: existing results keep their ids and are numbered per monitor in id order, history
/// pages and cursors work across them, and new results continue both numberings.
async fn an_upgraded_database_keeps_its_results_and_numbers_them_per_monitor(backend: Backend) {
    use sea_orm::ConnectionTrait;

    let Some((db, conn, yes, no)) = migrated_db(backend, Some(4)).await else {
        return;
    };
    conn.execute_unprepared(&format!(
        "INSERT INTO monitors (name, url, timeout_seconds, interval_seconds, active, created_at, updated_at) \
         VALUES ('a', 'http://127.0.0.1:9/', 1, 60, {no}, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z'), \
                ('b', 'http://127.0.0.1:9/', 1, 60, {no}, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')"
    ))
    .await
    .unwrap();
    // Interleaved as a schedule writes them: ids 1, 3, 4 for monitor 1; 2, 5 for monitor 2.
    for (monitor, second) in [(1, 1), (2, 2), (1, 3), (1, 4), (2, 5)] {
        conn.execute_unprepared(&format!(
            "INSERT INTO check_results (monitor_id, checked_at_ms, up, status_code, response_time_ms, error) \
             VALUES ({monitor}, {}, {yes}, 200, {second}, NULL)",
            1_767_225_600_000_i64 + second * 1000
        ))
        .await
        .unwrap();
    }
    conn.close().await.unwrap();

    let app = App::start_on(BIN, db, &[]);
    let ids = |page: &Value| -> Vec<i64> {
        page.as_array()
            .expect("an array")
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect()
    };
    let (status, page) = app.json(Method::GET, "/monitors/1/check", None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(ids(&page), [4, 3, 1], "ids kept, newest first: {page}");
    assert_eq!(page[0]["response_time_ms"], 4);
    let (_, page) = app.json(Method::GET, "/monitors/2/check", None).await;
    assert_eq!(ids(&page), [5, 2], "{page}");

    let query = "query($after: String) { checkResults(monitorId: \"1\", first: 2, after: $after) \
                 { nodes { id } pageInfo { hasNextPage endCursor } } }";
    let first = app.graphql(query, json!({})).await;
    let results = &first["data"]["checkResults"];
    assert_eq!(
        results["nodes"],
        json!([{"id": "4"}, {"id": "3"}]),
        "{first}"
    );
    assert_eq!(results["pageInfo"]["hasNextPage"], true);
    let cursor = results["pageInfo"]["endCursor"].clone();
    let next = app.graphql(query, json!({ "after": cursor })).await;
    let results = &next["data"]["checkResults"];
    assert_eq!(results["nodes"], json!([{"id": "1"}]), "{next}");
    assert_eq!(results["pageInfo"]["hasNextPage"], false);

    // A new result continues the id sequence and the monitor's numbering.
    let (status, checked) = app.json(Method::POST, "/monitors/1/check", None).await;
    assert_eq!(status, 200, "{checked}");
    assert!(checked["id"].as_i64().unwrap() > 5, "{checked}");
    assert_eq!(checked["seq"], 4, "{checked}");
    let (_, page) = app.json(Method::GET, "/monitors/1/check", None).await;
    assert_eq!(ids(&page)[1..], [4, 3, 1], "{page}");
    assert_eq!(page[0]["id"], checked["id"]);

    let conn = app.db.connect().await;
    let row = conn
        .query_one_raw(sea_orm::Statement::from_string(
            conn.get_database_backend(),
            "SELECT (SELECT last_seq FROM monitors WHERE id = 1) AS a, \
                    (SELECT last_seq FROM monitors WHERE id = 2) AS b, \
                    (SELECT COUNT(*) FROM check_results WHERE monitor_id = 1 AND seq = 2 AND id = 3) AS c"
                .to_owned(),
        ))
        .await
        .unwrap()
        .unwrap();
    let last = |col: &str| -> i64 {
        row.try_get::<i32>("", col)
            .map(i64::from)
            .or_else(|_| row.try_get::<i64>("", col))
            .unwrap()
    };
    assert_eq!((last("a"), last("b"), last("c")), (4, 2, 1));
    conn.close().await.unwrap();
}

/// Monitors already stored when the service starts are shared out among its check threads:
/// each thread loads only its own shard (filtered by the database), every monitor is on
/// exactly one of them, and each is checked.
async fn stored_monitors_are_loaded_once_each_by_the_check_threads_at_start(backend: Backend) {
    use std::time::Duration;

    use sea_orm::ConnectionTrait;

    let Some((db, conn, yes, no)) = migrated_db(backend, None).await else {
        return;
    };
    // 20 active monitors and 5 paused ones, refused at once (port 9) so checks are quick.
    for n in 0..25 {
        let active = if n < 20 { yes } else { no };
        conn.execute_unprepared(&format!(
            "INSERT INTO monitors (name, url, timeout_seconds, interval_seconds, active, created_at, updated_at) \
             VALUES ('m{n}', 'http://127.0.0.1:9/', 1, 1, {active}, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')"
        ))
        .await
        .unwrap();
    }
    conn.close().await.unwrap();

    let app = App::start_on(BIN, db, &[("CHECK_THREADS", "3")]);
    let conn = app.db.connect().await;
    let checked = |conn: sea_orm::DatabaseConnection| async move {
        let row = conn
            .query_one_raw(sea_orm::Statement::from_string(
                conn.get_database_backend(),
                "SELECT COUNT(DISTINCT monitor_id) AS n FROM check_results".to_owned(),
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get::<i64>("", "n").unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while checked(conn.clone()).await < 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "not every active monitor was checked after the start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = app.log();
    let loaded: Vec<u64> = log
        .lines()
        .filter(|line| line.contains("scheduler started"))
        .filter_map(|line| line.split("monitors=").nth(1))
        .map(|n| n.trim().parse().unwrap())
        .collect();
    assert_eq!(loaded.len(), 3, "one scheduler per check thread: {log}");
    assert_eq!(
        loaded.iter().sum::<u64>(),
        20,
        "the active monitors, each on one thread: {loaded:?}"
    );
    assert!(
        loaded.iter().all(|&n| n > 0),
        "every thread has a share: {loaded:?}"
    );
    assert_eq!(
        checked(conn.clone()).await,
        20,
        "paused monitors are not checked"
    );
}

on_both_backends!(
    an_upgraded_database_keeps_its_results_and_numbers_them_per_monitor,
    stored_monitors_are_loaded_once_each_by_the_check_threads_at_start,
);
