//! PUSH monitors from outside: the service makes each one's secret token and push URL; a
//! push (`GET` or `POST /push/{token}`) is a result, saying up or down with a message and a
//! ping; silence past the interval plus the grace (`timeout_seconds`) is DOWN; bad pushes,
//! unknown tokens and pushes to a paused monitor are refused and store nothing; the kind
//! switches both ways through the real interfaces. Every scenario runs on SQLite and on
//! PostgreSQL.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{json, Value};
use testkit::on_both_backends;

use crate::{
    check_options::{create, monitor},
    common::{App, Backend},
};

fn push_monitor(options: Value) -> Value {
    let mut body = json!({
        "name": "nightly backup",
        "kind": "PUSH",
        "timeout_seconds": 1,
        "interval_seconds": 3600,
        "active": true,
    });
    for (key, value) in options.as_object().unwrap() {
        body[key] = value.clone();
    }
    body
}

async fn push(app: &App, method: Method, token: &str, query: &str) -> (u16, Value) {
    app.json(method, &format!("/push/{token}{query}"), None)
        .await
}

async fn get_monitor(app: &App, id: i64) -> Value {
    let (status, body) = app
        .json(Method::GET, &format!("/monitors/{id}"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn at(result: &Value) -> DateTime<Utc> {
    result["checked_at"].as_str().unwrap().parse().unwrap()
}

async fn pushes_are_results_and_silence_is_down(backend: Backend) {
    let app = spawn_app!(backend);
    let (status, body) = create(&app, push_monitor(json!({}))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["kind"], "PUSH");
    let id = body["id"].as_i64().unwrap();
    let token = body["push_token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 32, "{body}");
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{token}"
    );
    assert_eq!(body["url"], format!("/push/{token}"));
    assert_eq!(body["state"], "PENDING");
    let (_, other) = create(&app, push_monitor(json!({"name": "other"}))).await;
    assert_ne!(
        other["push_token"], token,
        "every monitor has a token of its own"
    );

    let (status, result) = push(&app, Method::GET, &token, "").await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["status"], "UP");
    assert_eq!(result["monitor_id"], id);
    assert_eq!(result["status_code"], Value::Null);
    assert_eq!(get_monitor(&app, id).await["state"], "UP");
    let (status, result) = push(
        &app,
        Method::POST,
        &token,
        "?status=down&msg=disk%20full&ping=12",
    )
    .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["status"], "DOWN");
    assert_eq!(result["error"], "disk full");
    assert_eq!(result["response_time_ms"], 12);
    assert_eq!(get_monitor(&app, id).await["state"], "DOWN");

    // Refused pushes store nothing.
    let stored = app.db.count("check_results").await;
    for (query, message) in [
        ("?status=sideways", "status must be up or down"),
        ("?ping=-5", "ping must be a number of milliseconds"),
        ("?ping=soon", "ping must be a number of milliseconds"),
    ] {
        let (status, body) = push(&app, Method::GET, &token, query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["error"].as_str().unwrap().starts_with(message),
            "{query}: {body}"
        );
    }
    for unknown in [
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "x",
        "..%2F..%2Fmonitors",
    ] {
        let (status, body) = push(&app, Method::GET, unknown, "").await;
        assert_eq!(status, 404, "{unknown}: {body}");
        assert_eq!(body["error"], "no monitor has this push token");
    }
    let paused = push_monitor(json!({"active": false, "name": "paused"}));
    let (_, paused) = create(&app, paused).await;
    let (status, body) = push(
        &app,
        Method::GET,
        paused["push_token"].as_str().unwrap(),
        "",
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("is paused"),
        "{body}"
    );
    assert_eq!(app.db.count("check_results").await, stored);

    // Options: a ping is judged like a response time; HTTP options are refused by name;
    // the URL is the service's to make.
    let (status, judged) = create(
        &app,
        push_monitor(json!({
            "name": "judged",
            "degraded_after_ms": 500,
            "assertions": [{"source": "RESPONSE_TIME", "comparison": "LESS_THAN", "target": "2000"}],
        })),
    )
    .await;
    assert_eq!(status, 201, "{judged}");
    let judged_token = judged["push_token"].as_str().unwrap();
    let (_, slow) = push(&app, Method::GET, judged_token, "?ping=900").await;
    assert_eq!(slow["status"], "UP", "{slow}");
    assert_eq!(slow["degraded"], true, "{slow}");
    let (_, too_slow) = push(&app, Method::GET, judged_token, "?ping=2500").await;
    assert_eq!(too_slow["status"], "DOWN", "{too_slow}");
    assert_eq!(too_slow["assertion_results"][0]["actual"], "2500");
    let count = app.db.count("monitors").await;
    for (body, message) in [
        (
            push_monitor(json!({"url": "http://127.0.0.1:9/"})),
            "url is made by the service for a PUSH monitor",
        ),
        (
            push_monitor(json!({"url": format!("/push/{token}")})),
            "url is made by the service for a PUSH monitor",
        ),
        (
            push_monitor(json!({"method": "POST"})),
            "method is not an option of PUSH monitors",
        ),
        (
            push_monitor(
                json!({"assertions": [{"source": "STATUS_CODE", "comparison": "EQUALS", "target": "200"}]}),
            ),
            "assertions[0].source STATUS_CODE does not apply to a PUSH monitor",
        ),
        (
            json!({"name": "no url", "timeout_seconds": 5, "interval_seconds": 60}),
            "url is required",
        ),
    ] {
        let (status, reply) = create(&app, body.clone()).await;
        assert_eq!(status, 400, "{body}: {reply}");
        assert!(
            reply["error"].as_str().unwrap().starts_with(message),
            "{body}: {reply}"
        );
    }
    assert_eq!(app.db.count("monitors").await, count);

    // A monitor read back (its url included) and sent again keeps its token; a new kind drops it, and becoming
    // PUSH again makes a new one.
    let mut read = get_monitor(&app, id).await;
    let fields = read.as_object_mut().unwrap();
    for read_only in [
        "id",
        "created_at",
        "updated_at",
        "last_checked_at",
        "last_status",
        "state",
        "push_token",
    ] {
        fields.remove(read_only);
    }
    read["name"] = json!("renamed backup");
    let (status, body) = app
        .json(Method::PUT, &format!("/monitors/{id}"), Some(read))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["push_token"], token);
    // A PUT without url and kind keeps the kind; a PUSH monitor is not checked by hand.
    let (status, body) = app
        .json(
            Method::PUT,
            &format!("/monitors/{id}"),
            Some(json!({"name": "backup", "timeout_seconds": 1, "interval_seconds": 3600})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["kind"], "PUSH");
    assert_eq!(body["push_token"], token);
    let (status, body) = app
        .json(Method::POST, &format!("/monitors/{id}/check"), None)
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("is a PUSH monitor: it is not checked, it is pushed to"),
        "{body}"
    );
    let (status, body) = app
        .json(
            Method::PUT,
            &format!("/monitors/{id}"),
            Some(monitor("http://127.0.0.1:9/", json!({}))),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["kind"], "HTTP");
    assert!(body.get("push_token").is_none(), "{body}");
    assert_eq!(push(&app, Method::GET, &token, "").await.0, 404);
    let (status, body) = app
        .json(
            Method::PUT,
            &format!("/monitors/{id}"),
            Some(push_monitor(json!({}))),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["kind"], "PUSH");
    let renewed = body["push_token"].as_str().unwrap();
    assert_ne!(renewed, token);
    assert_eq!(push(&app, Method::GET, renewed, "").await.0, 200);

    // GraphQL: a PUSH monitor without a URL.
    let made = app
        .graphql(
            "mutation { createMonitor(input: {name: \"cron\", kind: PUSH, timeoutSeconds: 60, intervalSeconds: 3600}) { kind url pushToken } }",
            json!({}),
        )
        .await;
    assert!(made["errors"].is_null(), "{made}");
    let made = &made["data"]["createMonitor"];
    assert_eq!(made["kind"], "PUSH");
    assert_eq!(
        made["url"].as_str().unwrap(),
        format!("/push/{}", made["pushToken"].as_str().unwrap())
    );
}

async fn silence_past_the_grace_is_down(backend: Backend) {
    let app = spawn_app!(backend);
    let (status, body) = create(
        &app,
        push_monitor(json!({"interval_seconds": 2, "timeout_seconds": 1})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_i64().unwrap();
    let token = body["push_token"].as_str().unwrap().to_owned();
    let (_, pushed) = push(&app, Method::GET, &token, "").await;
    assert_eq!(pushed["status"], "UP", "{pushed}");
    let missed = testkit::eventually(Duration::from_secs(10), "a missed push", || async {
        let (_, history) = app
            .json(Method::GET, &format!("/monitors/{id}/check"), None)
            .await;
        let newest = history.get(0)?.clone();
        (newest["status"] == "DOWN").then_some(newest)
    })
    .await;
    assert_eq!(
        missed["error"],
        "no push received within the interval and its grace period"
    );
    // Not before the interval and the grace were over.
    let silent = at(&missed) - at(&pushed);
    assert!(
        silent >= chrono::Duration::milliseconds(2900),
        "DOWN after {silent}"
    );
    assert_eq!(get_monitor(&app, id).await["state"], "DOWN");
    let (_, back) = push(&app, Method::GET, &token, "").await;
    assert_eq!(back["status"], "UP");
    assert_eq!(get_monitor(&app, id).await["state"], "UP");
}

on_both_backends!(
    pushes_are_results_and_silence_is_down,
    silence_past_the_grace_is_down,
);
