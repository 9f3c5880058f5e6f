//! Manual checks over REST and GraphQL, and how each kind of failure is classified (error
//! statuses, refused, garbage and silent ports, timeouts, redirects, endless bodies).
//! Every scenario runs on SQLite and on PostgreSQL, against a target inside the test process.

use std::time::Duration;

use chrono::Utc;
use reqwest::Method;
use serde_json::{json, Value};
use testkit::{int_id, on_both_backends, Target};

use crate::common::{
    assert_down_without_response, check_now, history, run_check_gql, stored_error, stored_results,
    timestamp, Backend, RUN_CHECK,
};

async fn manual_checks_classify_success_error_statuses_and_network_failures(backend: Backend) {
    let target = Target::start().await;
    let app = spawn_app!(backend);
    let db = app.db.connect().await;

    // UP, over REST and over GraphQL.
    let ok = app.create_monitor(&target.url("/ok"), 60, 5, false).await;
    let (result, _) = check_now(&app, ok).await;
    assert_eq!(result["status"], "UP", "{result}");
    assert_eq!(result["status_code"], 200);
    assert_eq!(result["error"], Value::Null);
    assert!(result["response_time_ms"].as_i64().unwrap() >= 0);
    assert!(result["id"].as_i64().unwrap() > 0);
    let checked_at = timestamp(&result["checked_at"]);
    assert!((Utc::now() - checked_at).num_seconds().abs() < 60);
    let gql = run_check_gql(&app, ok).await;
    assert_eq!(gql["status"], "UP", "{gql}");
    assert_eq!(gql["statusCode"], 200);
    assert_eq!(gql["error"], Value::Null);
    assert!(int_id(&gql["id"]) > result["id"].as_i64().unwrap());

    // An error status: DOWN, with the status kept and named in the error.
    let failing = app
        .create_monitor(&target.url("/status/500"), 60, 5, false)
        .await;
    let (result, _) = check_now(&app, failing).await;
    assert_eq!(result["status"], "DOWN", "{result}");
    assert_eq!(result["status_code"], 500);
    assert!(
        result["error"].as_str().unwrap().contains("500"),
        "{result}"
    );
    let gql = run_check_gql(&app, failing).await;
    assert_eq!(gql["status"], "DOWN", "{gql}");
    assert_eq!(gql["statusCode"], 500);
    assert!(gql["error"].as_str().unwrap().contains("500"), "{gql}");

    // 404 is DOWN too; a 204 is UP.
    let missing = app
        .create_monitor(&target.url("/status/404"), 60, 5, false)
        .await;
    let (result, _) = check_now(&app, missing).await;
    assert_eq!(
        (&result["status"], &result["status_code"]),
        (&json!("DOWN"), &json!(404))
    );
    let empty = app
        .create_monitor(&target.url("/status/204"), 60, 5, false)
        .await;
    let (result, _) = check_now(&app, empty).await;
    assert_eq!(
        (&result["status"], &result["status_code"]),
        (&json!("UP"), &json!(204))
    );

    // Nothing listens on the port.
    let refused = app
        .create_monitor(&testkit::refused_url(), 60, 5, false)
        .await;
    let (result, _) = check_now(&app, refused).await;
    assert_down_without_response(&result, "connection refused");
    assert_eq!(result["error"], "connection refused");

    // A response slower than the timeout: DOWN after the timeout, not after the response.
    let slow = app
        .create_monitor(&target.url("/slow/5000"), 60, 1, false)
        .await;
    let (result, took) = check_now(&app, slow).await;
    assert_down_without_response(&result, "timeout");
    assert!(
        took < Duration::from_millis(2500),
        "a 1 s timeout bounds the manual check, which took {took:?}"
    );
    let waited = result["response_time_ms"].as_i64().unwrap();
    assert!(
        (900..2500).contains(&waited),
        "the response time of a timed-out check is about the timeout: {waited} ms"
    );

    // A server that accepts the connection and never answers.
    let silent = app.create_monitor(&target.silent_url(), 60, 1, false).await;
    let (result, took) = check_now(&app, silent).await;
    assert_down_without_response(&result, "timeout");
    assert!(took < Duration::from_millis(2500), "took {took:?}");

    // Redirects: a loop is DOWN, one hop is followed.
    let looping = app
        .create_monitor(&target.url("/redirect-loop"), 60, 5, false)
        .await;
    let (result, _) = check_now(&app, looping).await;
    assert_down_without_response(&result, "too many redirects");
    let once = app
        .create_monitor(&target.url("/redirect-once"), 60, 5, false)
        .await;
    let (result, _) = check_now(&app, once).await;
    assert_eq!(result["status"], "UP", "{result}");
    assert_eq!(result["status_code"], 200);

    // A body that never ends: the headers decide, the body is not waited for.
    let endless = app
        .create_monitor(&target.url("/endless"), 60, 5, false)
        .await;
    let (result, took) = check_now(&app, endless).await;
    assert_eq!(result["status"], "UP", "{result}");
    assert_eq!(result["status_code"], 200);
    assert!(
        took < Duration::from_millis(2500),
        "an endless body must not hold the check until its 5 s timeout; took {took:?}"
    );

    // Garbage instead of HTTP: DOWN with a readable reason, and nothing unprintable stored.
    let garbage = app
        .create_monitor(&target.garbage_url(), 60, 5, false)
        .await;
    let (result, _) = check_now(&app, garbage).await;
    assert_eq!(result["status"], "DOWN", "{result}");
    assert_eq!(result["status_code"], Value::Null, "{result}");
    let error = result["error"].as_str().expect("an error text");
    assert!(!error.trim().is_empty(), "{result}");
    assert!(
        !error.chars().any(char::is_control),
        "no control characters in {error:?}"
    );
    let stored = stored_error(&db, result["id"].as_i64().unwrap())
        .await
        .expect("a stored error");
    assert!(!stored.contains('\0'), "stored error has a NUL: {stored:?}");
    assert_eq!(stored, error, "what is returned is what is stored");
    let listed = history(&app, garbage, 10).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0], result, "history shows the same result");

    // Every check above was stored exactly once, and none of these paused monitors was
    // checked by the scheduler.
    let expected: [(i64, i64); 10] = [
        (ok, 2),
        (failing, 2),
        (missing, 1),
        (empty, 1),
        (refused, 1),
        (slow, 1),
        (silent, 1),
        (looping, 1),
        (once, 1),
        (endless, 1),
    ];
    for (id, n) in expected {
        assert_eq!(stored_results(&db, id).await, n, "results of monitor {id}");
    }
    assert_eq!(app.db.count("check_results").await, 13);

    // A check of a monitor that does not exist is a 404, over REST and GraphQL.
    let (status, body) = app.json(Method::POST, "/monitors/999999/check", None).await;
    assert_eq!(status, 404, "{body}");
    let body = app.graphql(RUN_CHECK, json!({"id": "999999"})).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{body}"
    );
    let _ = db.close().await;
}

on_both_backends!(manual_checks_classify_success_error_statuses_and_network_failures,);
