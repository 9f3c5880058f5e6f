//! Monitor CRUD, `/healthz`, GraphQL CRUD and bad input, driven over real HTTP against the
//! real binary, on SQLite and on PostgreSQL.

mod common;

use common::{App, Backend};
use reqwest::Method;
use serde_json::{json, Value};

fn monitor_body() -> Value {
    json!({"name": "Example", "url": "http://127.0.0.1:9/health", "timeout_seconds": 5, "interval_seconds": 30})
}

async fn rest_crud_round_trip_works_and_delete_cascades(backend: Backend) {
    let Some(app) = App::spawn(backend).await else {
        return;
    };

    let (status, health) = app.json(Method::GET, "/healthz", None).await;
    assert_eq!((status, health), (200, json!({"status": "ok"})));

    // An active monitor is checked at once, so the exact comparisons use a paused one.
    let (status, active) = app
        .json(Method::POST, "/monitors", Some(monitor_body()))
        .await;
    assert_eq!(status, 201, "{active}");
    assert_eq!(active["active"], true, "active defaults to true");
    let response = app
        .http
        .delete(app.url(&format!("/monitors/{}", active["id"])))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);

    let mut paused_body = monitor_body();
    paused_body["active"] = json!(false);
    let (status, created) = app.json(Method::POST, "/monitors", Some(paused_body)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    assert!(id > active["id"].as_i64().unwrap(), "ids are never reused");
    assert_eq!(created["name"], "Example");
    assert_eq!(created["url"], "http://127.0.0.1:9/health");
    assert_eq!(created["timeout_seconds"], 5);
    assert_eq!(created["interval_seconds"], 30);
    assert_eq!(created["active"], false);
    assert_eq!(created["last_checked_at"], Value::Null);
    assert_eq!(created["last_status"], Value::Null);
    let created_at = created["created_at"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(created_at).is_ok());
    assert!(created_at.ends_with('Z'), "UTC timestamps: {created_at}");

    let (status, fetched) = app
        .json(Method::GET, &format!("/monitors/{id}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(fetched, created);

    let (status, list) = app.json(Method::GET, "/monitors", None).await;
    assert_eq!(status, 200);
    assert_eq!(list, json!([created]));

    // PUT without `active` keeps it; with it, changes it.
    let mut body = monitor_body();
    body["name"] = json!("Renamed");
    body["interval_seconds"] = json!(60);
    let (status, updated) = app
        .json(Method::PUT, &format!("/monitors/{id}"), Some(body.clone()))
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["name"], "Renamed");
    assert_eq!(updated["interval_seconds"], 60);
    assert_eq!(
        updated["active"], false,
        "an omitted active keeps its value"
    );
    assert_eq!(updated["created_at"], created["created_at"]);
    assert_ne!(updated["updated_at"], created["updated_at"]);
    body["active"] = json!(true);
    let (_, resumed) = app
        .json(Method::PUT, &format!("/monitors/{id}"), Some(body.clone()))
        .await;
    assert_eq!(resumed["active"], true);
    body["active"] = json!(false);
    let (_, paused) = app
        .json(Method::PUT, &format!("/monitors/{id}"), Some(body))
        .await;
    assert_eq!(paused["active"], false);

    // A manual check stores history; deleting the monitor takes it along.
    let (status, check) = app
        .json(Method::POST, &format!("/monitors/{id}/check"), None)
        .await;
    assert_eq!(status, 200, "{check}");
    assert_eq!(check["monitor_id"], id);
    assert!(app.db.count("check_results").await >= 1);

    let response = app
        .http
        .delete(app.url(&format!("/monitors/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(app.db.count("monitors").await, 0);
    assert_eq!(
        app.db.count("check_results").await,
        0,
        "history is deleted with its monitor"
    );

    let (status, body) = app
        .json(Method::GET, &format!("/monitors/{id}"), None)
        .await;
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("not found"));
    let response = app
        .http
        .delete(app.url(&format!("/monitors/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

async fn bad_input_gets_a_json_error_naming_the_problem_and_stores_nothing(backend: Backend) {
    let Some(app) = App::spawn(backend).await else {
        return;
    };
    let valid = monitor_body();
    let with = |key: &str, value: Value| {
        let mut body = valid.clone();
        body[key] = value;
        body.to_string()
    };
    let without = |key: &str| {
        let mut body = valid.clone();
        body.as_object_mut().unwrap().remove(key);
        body.to_string()
    };
    let huge_name = "n".repeat(201);
    let huge_url = format!("http://example.com/{}", "a".repeat(2100));
    // (body, content type, expected status, text the error must contain)
    let cases: Vec<(String, &str, u16, &str)> = vec![
        (
            "{\"name\": ".into(),
            "application/json",
            400,
            "malformed JSON",
        ),
        ("not json".into(), "application/json", 400, "malformed JSON"),
        ("[1, 2]".into(), "application/json", 400, "JSON object"),
        (valid.to_string(), "text/plain", 415, "application/json"),
        (with("name", json!(42)), "application/json", 400, "name"),
        (
            with("timeout_seconds", json!("5")),
            "application/json",
            400,
            "timeout_seconds",
        ),
        (
            with("active", json!("yes")),
            "application/json",
            400,
            "active",
        ),
        (without("name"), "application/json", 400, "name is required"),
        (without("url"), "application/json", 400, "url is required"),
        (
            without("timeout_seconds"),
            "application/json",
            400,
            "timeout_seconds is required",
        ),
        (
            without("interval_seconds"),
            "application/json",
            400,
            "interval_seconds is required",
        ),
        (
            with("timeout_seconds", json!(0)),
            "application/json",
            400,
            "timeout_seconds",
        ),
        (
            with("timeout_seconds", json!(-5)),
            "application/json",
            400,
            "timeout_seconds",
        ),
        (
            with("timeout_seconds", json!(1.5)),
            "application/json",
            400,
            "timeout_seconds",
        ),
        (
            with("timeout_seconds", json!(1e30)),
            "application/json",
            400,
            "timeout_seconds",
        ),
        (
            with("interval_seconds", json!(0)),
            "application/json",
            400,
            "interval_seconds",
        ),
        (
            with("interval_seconds", json!(-1)),
            "application/json",
            400,
            "interval_seconds",
        ),
        (
            with("interval_seconds", json!(99999999999999999999u128 as f64)),
            "application/json",
            400,
            "interval_seconds",
        ),
        (
            with("interval_seconds", json!(2.25)),
            "application/json",
            400,
            "interval_seconds",
        ),
        (
            with("interval_seconds", json!(i64::MAX)),
            "application/json",
            400,
            "interval_seconds",
        ),
        (
            with("url", json!("ftp://example.com")),
            "application/json",
            400,
            "url",
        ),
        (
            with("url", json!("example.com")),
            "application/json",
            400,
            "url",
        ),
        (
            with("url", json!("/relative/path")),
            "application/json",
            400,
            "url",
        ),
        (
            with("url", json!("javascript:alert(1)")),
            "application/json",
            400,
            "url",
        ),
        (with("url", json!(huge_url)), "application/json", 400, "url"),
        (with("name", json!("")), "application/json", 400, "name"),
        (with("name", json!("   ")), "application/json", 400, "name"),
        (
            with("name", json!(huge_name)),
            "application/json",
            400,
            "name",
        ),
        (
            with("name", json!("nul\u{0}byte")),
            "application/json",
            400,
            "name",
        ),
    ];
    for (body, content_type, expected, needle) in &cases {
        let response = app
            .http
            .post(app.url("/monitors"))
            .header("content-type", *content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let (status, answer) = common::read_json(response).await;
        assert_eq!(status, *expected, "body {body}: {answer}");
        let message = answer["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error text for {body}: {answer}"));
        assert!(
            message.contains(needle),
            "error for {body} should mention {needle:?}: {message}"
        );
    }
    // A body over the limit is refused with 413.
    let big = json!({"name": "x".repeat(100_000), "url": "http://a", "timeout_seconds": 1, "interval_seconds": 1});
    let (status, answer) = app.json(Method::POST, "/monitors", Some(big)).await;
    assert_eq!(status, 413, "{answer}");
    assert!(answer["error"].is_string());
    assert_eq!(app.db.count("monitors").await, 0, "nothing was stored");

    // Ids that are not numbers, unknown routes and methods: JSON errors too.
    for (method, path, expected) in [
        (Method::GET, "/monitors/abc", 400),
        (Method::GET, "/monitors/-1", 400),
        (Method::GET, "/monitors/1.5", 400),
        (Method::GET, "/monitors/99999999999999999999999", 400),
        (Method::DELETE, "/monitors/abc", 400),
        (Method::POST, "/monitors/abc/check", 400),
        (Method::GET, "/monitors/12345", 404),
        (Method::GET, "/no/such/route", 404),
        (Method::PATCH, "/monitors", 405),
    ] {
        let (status, answer) = app.json(method.clone(), path, None).await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
        assert!(answer["error"].is_string(), "{method} {path}: {answer}");
    }
    // PUT validates like POST and leaves the row alone (paused, so no check changes it).
    let mut paused = valid.clone();
    paused["active"] = json!(false);
    let (_, created) = app.json(Method::POST, "/monitors", Some(paused)).await;
    let id = created["id"].as_i64().unwrap();
    let (status, _) = app
        .json(Method::PUT, &format!("/monitors/{id}"), Some(json!({"name": "x", "url": "http://a", "timeout_seconds": 0, "interval_seconds": 5})))
        .await;
    assert_eq!(status, 400);
    let (_, after) = app
        .json(Method::GET, &format!("/monitors/{id}"), None)
        .await;
    assert_eq!(after, created);
    for limit in ["0", "1001", "abc", "-3"] {
        let (status, answer) = app
            .json(
                Method::GET,
                &format!("/monitors/{id}/check?limit={limit}"),
                None,
            )
            .await;
        assert_eq!(status, 400, "limit={limit}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains("limit"));
    }
}

const MONITOR_FIELDS: &str = "id name url timeoutSeconds intervalSeconds active createdAt updatedAt lastCheckedAt lastStatus";

async fn graphql_crud_round_trip_works(backend: Backend) {
    let Some(app) = App::spawn(backend).await else {
        return;
    };
    let create = format!("mutation($input: CreateMonitorInput!) {{ createMonitor(input: $input) {{ {MONITOR_FIELDS} }} }}");
    let mut ids = Vec::new();
    for n in 0..3 {
        let answer = app
            .graphql(&create, json!({"input": {"name": format!("m{n}"), "url": "https://example.com", "timeoutSeconds": 5, "intervalSeconds": 60, "active": n == 1}}))
            .await;
        assert!(answer["errors"].is_null(), "{answer} {}", app.log());
        let monitor = &answer["data"]["createMonitor"];
        assert_eq!(monitor["name"], format!("m{n}"));
        assert_eq!(monitor["lastStatus"], Value::Null);
        ids.push(monitor["id"].as_str().unwrap().to_owned());
    }

    // Paging, oldest first.
    let page = "query($after: String) { monitors(first: 2, after: $after) { edges { cursor node { id } } nodes { name } pageInfo { hasNextPage endCursor } } }";
    let first = app.graphql(page, json!({})).await;
    let connection = &first["data"]["monitors"];
    assert_eq!(connection["nodes"], json!([{"name": "m0"}, {"name": "m1"}]));
    assert_eq!(connection["pageInfo"]["hasNextPage"], true);
    let cursor = connection["pageInfo"]["endCursor"].as_str().unwrap();
    let second = app.graphql(page, json!({"after": cursor})).await;
    assert_eq!(second["data"]["monitors"]["nodes"], json!([{"name": "m2"}]));
    assert_eq!(second["data"]["monitors"]["pageInfo"]["hasNextPage"], false);
    let paused = app
        .graphql("{ monitors(active: false) { nodes { name } } }", json!({}))
        .await;
    assert_eq!(
        paused["data"]["monitors"]["nodes"],
        json!([{"name": "m0"}, {"name": "m2"}])
    );
    // Both filters at once: paused monitors after the first one.
    let first = app
        .graphql(
            "{ monitors(first: 1) { edges { cursor node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        first["data"]["monitors"]["edges"][0]["node"]["id"],
        ids[0].as_str()
    );
    let paused_after = app
        .graphql(
            "query($after: String) { monitors(active: false, after: $after) { nodes { name } pageInfo { hasNextPage } } }",
            json!({"after": first["data"]["monitors"]["edges"][0]["cursor"]}),
        )
        .await;
    assert_eq!(
        paused_after["data"]["monitors"],
        json!({"nodes": [{"name": "m2"}], "pageInfo": {"hasNextPage": false}}),
        "{paused_after}"
    );

    // Partial update changes only what is given.
    let update = format!("mutation($id: ID!, $input: UpdateMonitorInput!) {{ updateMonitor(id: $id, input: $input) {{ {MONITOR_FIELDS} }} }}");
    let answer = app
        .graphql(
            &update,
            json!({"id": ids[0], "input": {"intervalSeconds": 120}}),
        )
        .await;
    let updated = &answer["data"]["updateMonitor"];
    assert_eq!(updated["intervalSeconds"], 120);
    assert_eq!(updated["name"], "m0");
    assert_eq!(updated["timeoutSeconds"], 5);

    let one = app.graphql("query($id: ID!) { monitor(id: $id) { name intervalSeconds checkResults(first: 5) { nodes { id } pageInfo { hasNextPage } } } }", json!({"id": ids[0]})).await;
    assert_eq!(one["data"]["monitor"]["intervalSeconds"], 120);
    assert_eq!(one["data"]["monitor"]["checkResults"]["nodes"], json!([]));
    let missing = app
        .graphql("{ monitor(id: \"987654\") { id } }", json!({}))
        .await;
    assert_eq!(missing["data"]["monitor"], Value::Null);
    assert!(missing["errors"].is_null());

    // REST sees what GraphQL wrote.
    let (_, rest) = app
        .json(Method::GET, &format!("/monitors/{}", ids[0]), None)
        .await;
    assert_eq!(rest["interval_seconds"], 120);

    let deleted = app
        .graphql(
            "mutation($id: ID!) { deleteMonitor(id: $id) }",
            json!({"id": ids[0]}),
        )
        .await;
    assert_eq!(deleted["data"]["deleteMonitor"], ids[0].as_str());
    assert_eq!(app.db.count("monitors").await, 2);
    let again = app
        .graphql(
            "mutation($id: ID!) { deleteMonitor(id: $id) }",
            json!({"id": ids[0]}),
        )
        .await;
    assert_eq!(again["errors"][0]["extensions"]["code"], "NOT_FOUND");
}

async fn graphql_bad_input_gets_bad_user_input_and_stores_nothing(backend: Backend) {
    let Some(app) = App::spawn(backend).await else {
        return;
    };
    let create = "mutation($input: CreateMonitorInput!) { createMonitor(input: $input) { id } }";
    let valid = json!({"name": "ok", "url": "https://example.com", "timeoutSeconds": 5, "intervalSeconds": 60});
    let with = |key: &str, value: Value| {
        let mut input = valid.clone();
        input[key] = value;
        input
    };
    let cases = [
        (with("name", json!("")), "name"),
        (with("name", json!("x".repeat(300))), "name"),
        (with("url", json!("ftp://example.com")), "url"),
        (with("url", json!("not a url")), "url"),
        (with("timeoutSeconds", json!(0)), "timeoutSeconds"),
        (with("timeoutSeconds", json!(-1)), "timeoutSeconds"),
        (with("timeoutSeconds", json!(100000)), "timeoutSeconds"),
        (with("intervalSeconds", json!(0)), "intervalSeconds"),
        (with("intervalSeconds", json!(1.5)), "intervalSeconds"),
        (with("intervalSeconds", json!("60")), "intervalSeconds"),
        (
            with("intervalSeconds", json!(99999999999u64)),
            "intervalSeconds",
        ),
    ];
    for (input, field) in cases {
        let answer = app.graphql(create, json!({"input": input})).await;
        let error = &answer["errors"][0];
        assert_eq!(
            error["extensions"]["code"], "BAD_USER_INPUT",
            "{input}: {answer}"
        );
        assert!(
            error["message"].as_str().unwrap().contains(field),
            "{input}: {answer}"
        );
    }
    for query in [
        "{ monitor(id: \"abc\") { id } }",
        "{ monitor(id: \"-4\") { id } }",
        "{ monitors(first: -1) { nodes { id } } }",
        "{ monitors(first: 100000) { nodes { id } } }",
        "{ monitors(after: \"garbage\") { nodes { id } } }",
        "{ checkResults(monitorId: \"x\") { nodes { id } } }",
        "{ nosuchfield }",
        "mutation { updateMonitor(id: \"1\", input: { intervalSeconds: 0 }) { id } }",
    ] {
        let answer = app.graphql(query, json!({})).await;
        assert_eq!(
            answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{query}: {answer}"
        );
    }
    // Parsed queries are cached by their text; a query that does not parse is never cached,
    // and a cached one is still checked against each request's variables (the cases above
    // all sent one query text).
    for _ in 0..2 {
        let broken = app
            .graphql("{ monitors(first: 1) { nodes { id }", json!({}))
            .await;
        assert_eq!(
            broken["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{broken}"
        );
        let page = "query($first: Int) { monitors(first: $first) { nodes { id } } }";
        let answer = app.graphql(page, json!({"first": 1})).await;
        assert_eq!(answer["data"]["monitors"]["nodes"], json!([]), "{answer}");
        for first in [json!("1"), json!(-1)] {
            let answer = app.graphql(page, json!({ "first": first })).await;
            assert_eq!(
                answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
                "{first}: {answer}"
            );
        }
    }
    let not_found = app
        .graphql(
            "mutation { updateMonitor(id: \"77\", input: { name: \"x\" }) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(not_found["errors"][0]["extensions"]["code"], "NOT_FOUND");
    let not_found = app
        .graphql("mutation { runCheck(id: \"77\") { id } }", json!({}))
        .await;
    assert_eq!(not_found["errors"][0]["extensions"]["code"], "NOT_FOUND");

    // Not a GraphQL request at all: still a JSON answer.
    let response = app
        .http
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    let (status, answer) = common::read_json(response).await;
    assert_eq!(status, 400);
    assert_eq!(answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(app.db.count("monitors").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_reports_503_when_the_database_is_gone() {
    // Dropping the database out from under the process is the portable way to lose it.
    let Some(app) = App::spawn(Backend::Postgres).await else {
        return;
    };
    let (status, _) = app.json(Method::GET, "/healthz", None).await;
    assert_eq!(status, 200);
    let name = app.db.url.rsplit('/').next().unwrap().to_owned();
    let admin = sea_orm::Database::connect(
        std::env::var("TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
    )
    .await
    .unwrap();
    use sea_orm::ConnectionTrait;
    admin
        .execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .unwrap();
    let (status, body) = app.json(Method::GET, "/healthz", None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    // Requests that need the database fail safely, without the driver's text.
    let (status, body) = app.json(Method::GET, "/monitors", None).await;
    assert!(status == 503 || status == 500, "{status} {body}");
    let message = body["error"].as_str().unwrap();
    assert!(
        !message.contains(&name) && !message.to_lowercase().contains("sqlx"),
        "{message}"
    );
}

/// Runs the binary with some environment and returns (exit success, stderr).
fn run_binary(env: &[(&str, &str)], args: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_monitor-manager"));
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

#[test]
fn migrate_commands_apply_list_and_revert_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_monitor-manager"))
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
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_monitor-manager"));
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

    let app = App::start_on(db, &[]);
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

    let app = App::start_on(db, &[("CHECK_THREADS", "3")]);
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
    rest_crud_round_trip_works_and_delete_cascades,
    bad_input_gets_a_json_error_naming_the_problem_and_stores_nothing,
    graphql_crud_round_trip_works,
    graphql_bad_input_gets_bad_user_input_and_stores_nothing,
    an_upgraded_database_keeps_its_results_and_numbers_them_per_monitor,
    stored_monitors_are_loaded_once_each_by_the_check_threads_at_start,
);

#[tokio::test]
async fn graphiql_is_served_to_browsers() {
    let Some(app) = App::spawn(Backend::Sqlite).await else {
        return;
    };
    let response = app
        .http
        .get(app.url("/graphql"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains("graphiql"), "GraphiQL page expected");
}

#[test]
fn schema_graphql_matches_the_schema_the_server_builds() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_monitor-manager"))
        .arg("schema")
        .output()
        .expect("run monitor-manager schema");
    assert!(output.status.success());
    let built = String::from_utf8(output.stdout).unwrap();
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("schema.graphql at the repository root");
    assert!(
        built == committed,
        "schema.graphql is out of date: run `cargo run -- schema > schema.graphql`"
    );
}
