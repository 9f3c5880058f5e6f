//! Monitor CRUD over REST, its bad input, and `/healthz`, over real HTTP against the real
//! binary, on SQLite and on PostgreSQL.

use reqwest::Method;
use serde_json::{json, Value};
use testkit::on_both_backends;

use crate::common::{self, App, Backend, BIN};

fn monitor_body() -> Value {
    json!({"name": "Example", "url": "http://127.0.0.1:9/health", "timeout_seconds": 5, "interval_seconds": 30})
}

async fn rest_crud_round_trip_works_and_delete_cascades(backend: Backend) {
    let Some(app) = App::spawn(BIN, backend).await else {
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
    let Some(app) = App::spawn(BIN, backend).await else {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_reports_503_when_the_database_is_gone() {
    // Dropping the database out from under the process is the portable way to lose it.
    let Some(app) = App::spawn(BIN, Backend::Postgres).await else {
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

on_both_backends!(
    rest_crud_round_trip_works_and_delete_cascades,
    bad_input_gets_a_json_error_naming_the_problem_and_stores_nothing,
);
