//! Input the API refuses and secrets it does not show, over real HTTP and WebSocket against the
//! real binary on SQLite and PostgreSQL: unknown body keys, control characters, invisible
//! names, port 0, and passwords in monitor URLs (masked on every read, kept on write-back).

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::get,
    Router,
};
use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{json, Value};
use testkit::on_both_backends;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue, Message};

use crate::common::{App, Backend, BIN};

fn monitor_body() -> Value {
    json!({"name": "Example", "url": "http://127.0.0.1:9/health", "timeout_seconds": 5, "interval_seconds": 30})
}

/// The stored text of one column of a monitor.
async fn stored(app: &App, id: i64, column: &str) -> String {
    let db = app.db.connect().await;
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT {column} AS v FROM monitors WHERE id = {id}"),
        ))
        .await
        .expect("query")
        .expect("the monitor's row");
    let value: String = row.try_get("", "v").expect("a text column");
    let _ = db.close().await;
    value
}

/// The keys a `/monitors` body may have, as the refusal lists them.
const MONITOR_KEYS: &str = "name, url, timeout_seconds, interval_seconds, active, kind, method, headers, body, accepted_status_codes, follow_redirects, max_redirects, ignore_tls, assertions, degraded_after_ms, dns_record_type, dns_resolver, failure_threshold, success_threshold, retry_interval_seconds, reminder_interval_minutes, notification_channel_ids, notify_degraded";

async fn unknown_body_keys_are_refused_by_name_and_nothing_changes(backend: Backend) {
    let Some(app) = App::spawn(BIN, backend).await else {
        return;
    };
    // Uptime Kuma's name for what is `failure_threshold` here.
    let mut with_retries = monitor_body();
    with_retries["maxretries"] = json!(3);
    let (status, body) = app
        .json(Method::POST, "/monitors", Some(with_retries.clone()))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body,
        json!({"error": format!("unknown field `maxretries`; allowed: {MONITOR_KEYS}")})
    );
    assert_eq!(app.db.count("monitors").await, 0);

    let (status, created) = app
        .json(Method::POST, "/monitors", Some(monitor_body()))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    let mut put = monitor_body();
    put["name"] = json!("Renamed");
    put["Name"] = json!("Other");
    let (status, body) = app
        .json(Method::PUT, &format!("/monitors/{id}"), Some(put))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"],
        format!("unknown field `Name`; allowed: {MONITOR_KEYS}")
    );
    let (_, after) = app
        .json(Method::GET, &format!("/monitors/{id}"), None)
        .await;
    assert_eq!(after["name"], "Example", "the refused PUT changed nothing");

    // /services: keys still match ignoring case, anything else is refused as sent.
    let service =
        json!({"NAME": "svc", "Url": "http://127.0.0.1:9/", "INTERVAL": 30, "Method": "GET"});
    let (status, body) = app.json(Method::POST, "/services", Some(service)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"],
        "unknown field `Method`; allowed: name, url, interval, Timeout, active"
    );
    let twice = json!({"name": "a", "NAME": "b", "url": "http://127.0.0.1:9/", "interval": 30});
    let (status, body) = app.json(Method::POST, "/services", Some(twice)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"],
        "field `name` is given twice (as `NAME` and `name`)"
    );
    let read =
        json!({"name": "svc", "url": "http://127.0.0.1:9/", "interval": 30, "LastCheck": "x"});
    let (status, body) = app.json(Method::POST, "/services", Some(read)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"],
        "read-only field `LastCheck`; allowed: name, url, interval, Timeout, active"
    );
    let fine = json!({"NAME": "svc", "Url": "http://127.0.0.1:9/", "INTERVAL": 30, "timeout": 4});
    let (status, body) = app.json(Method::POST, "/services", Some(fine)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(app.db.count("monitors").await, 2);
}

async fn control_characters_invisible_names_and_port_zero_are_refused_over_rest_and_graphql(
    backend: Backend,
) {
    let Some(app) = App::spawn(BIN, backend).await else {
        return;
    };
    let (status, created) = app
        .json(Method::POST, "/monitors", Some(monitor_body()))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();

    // (field, value, the error's text)
    let cases: Vec<(&str, &str, &str)> = vec![
        (
            "name",
            "a\u{0}b",
            "name must not contain control characters (U+0000 at character 2)",
        ),
        (
            "name",
            "a\rb",
            "name must not contain control characters (U+000D at character 2)",
        ),
        (
            "name",
            "name\n",
            "name must not contain control characters (U+000A at character 5)",
        ),
        (
            "name",
            "\tname",
            "name must not contain control characters (U+0009 at character 1)",
        ),
        (
            "name",
            "a\u{7f}",
            "name must not contain control characters (U+007F at character 2)",
        ),
        (
            "name",
            " \u{3000} ",
            "name must contain a visible character",
        ),
        (
            "name",
            "\u{200B}\u{200D}",
            "name must contain a visible character",
        ),
        (
            "name",
            "\u{FEFF}\u{00AD}\u{2060}",
            "name must contain a visible character",
        ),
        (
            "name",
            "\u{202E}\u{2066}\u{200F}",
            "name must contain a visible character",
        ),
        ("name", "\u{3164}", "name must contain a visible character"),
        (
            "name",
            "\u{115F}\u{1160}",
            "name must contain a visible character",
        ),
        (
            "name",
            "\u{FE0F}\u{180E}",
            "name must contain a visible character",
        ),
        (
            "name",
            "\u{0301}\u{0302}",
            "name must contain a visible character",
        ),
        (
            "url",
            "http://exa\tmple.com/",
            "url must not contain control characters (U+0009 at character 11)",
        ),
        (
            "url",
            "http://example.com/\r\n",
            "url must not contain control characters (U+000D at character 20)",
        ),
        (
            "url",
            "http://example.com/a\u{0}",
            "url must not contain control characters (U+0000 at character 21)",
        ),
        (
            "url",
            "http://127.0.0.1:0/",
            "url must not use port 0 (no server listens there)",
        ),
    ];
    for (field, value, message) in &cases {
        let mut body = monitor_body();
        body[*field] = json!(value);
        let (status, answer) = app
            .json(Method::POST, "/monitors", Some(body.clone()))
            .await;
        assert_eq!(
            (status, &answer["error"]),
            (400, &json!(message)),
            "POST {value:?}"
        );
        let (status, answer) = app
            .json(Method::PUT, &format!("/monitors/{id}"), Some(body))
            .await;
        assert_eq!(
            (status, &answer["error"]),
            (400, &json!(message)),
            "PUT {value:?}"
        );
        let mut service = json!({"name": "svc", "url": "http://127.0.0.1:9/", "interval": 30});
        service[*field] = json!(value);
        let (status, answer) = app.json(Method::POST, "/services", Some(service)).await;
        assert_eq!(
            (status, &answer["error"]),
            (400, &json!(message)),
            "/services {value:?}"
        );

        let mut input = json!({"name": "ok", "url": "http://127.0.0.1:9/", "timeoutSeconds": 5, "intervalSeconds": 30});
        input[*field] = json!(value);
        let answer = app
            .graphql(
                "mutation($input: CreateMonitorInput!) { createMonitor(input: $input) { id } }",
                json!({ "input": input }),
            )
            .await;
        let error = &answer["errors"][0];
        assert_eq!(
            error["message"], *message,
            "createMonitor {value:?}: {answer}"
        );
        assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{answer}");
        let mut patch = json!({});
        patch[*field] = json!(value);
        let answer = app
            .graphql(
                "mutation($id: ID!, $input: UpdateMonitorInput!) { updateMonitor(id: $id, input: $input) { id } }",
                json!({"id": id.to_string(), "input": patch}),
            )
            .await;
        assert_eq!(
            answer["errors"][0]["message"], *message,
            "updateMonitor {value:?}: {answer}"
        );
    }
    assert_eq!(app.db.count("monitors").await, 1, "nothing was stored");
    assert_eq!(stored(&app, id, "name").await, "Example");
    assert_eq!(stored(&app, id, "url").await, "http://127.0.0.1:9/health");

    // Visible text around invisible characters is kept as sent.
    let mut body = monitor_body();
    body["name"] = json!("\u{200B}Café 日本 🙂");
    let (status, answer) = app.json(Method::POST, "/monitors", Some(body)).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["name"], "\u{200B}Café 日本 🙂");
}

/// An HTTP server whose `/private` answers 200 only to Basic `user:secret`, and 503 while
/// `failing` is set (so that successive checks can change the monitor's status).
async fn basic_auth_target() -> (String, Arc<AtomicBool>) {
    async fn private(State(failing): State<Arc<AtomicBool>>, headers: HeaderMap) -> StatusCode {
        let authorized = headers
            .get("authorization")
            .is_some_and(|v| v == "Basic dXNlcjpzZWNyZXQ=");
        match (authorized, failing.load(Ordering::SeqCst)) {
            (false, _) => StatusCode::UNAUTHORIZED,
            (true, true) => StatusCode::SERVICE_UNAVAILABLE,
            (true, false) => StatusCode::OK,
        }
    }
    let failing = Arc::new(AtomicBool::new(false));
    let router = Router::new()
        .route("/private", get(private))
        .with_state(failing.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("127.0.0.1:{}", addr.port()), failing)
}

async fn check_now(app: &App, id: i64) -> Value {
    let (status, result) = app
        .json(Method::POST, &format!("/monitors/{id}/check"), None)
        .await;
    assert_eq!(status, 200, "{result}");
    result
}

async fn passwords_in_urls_are_masked_on_every_read_and_kept_on_write_back(backend: Backend) {
    let Some(app) = App::spawn(BIN, backend).await else {
        return;
    };
    let (host, failing) = basic_auth_target().await;
    let secret_url = format!("http://user:secret@{host}/private");
    let masked_url = format!("http://user:***@{host}/private");
    let mut body = json!({"name": "private", "url": secret_url, "timeout_seconds": 5, "interval_seconds": 3600, "active": false});
    let (status, created) = app
        .json(Method::POST, "/monitors", Some(body.clone()))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["url"], masked_url);
    let id = created["id"].as_i64().unwrap();
    assert_eq!(stored(&app, id, "url").await, secret_url, "stored as given");
    assert_eq!(
        check_now(&app, id).await["status"],
        "UP",
        "the check sends the password"
    );

    // Every read shows the mask.
    let mut seen = Vec::new();
    for path in [
        format!("/monitors/{id}"),
        "/monitors".into(),
        "/services".into(),
    ] {
        let (status, answer) = app.json(Method::GET, &path, None).await;
        assert_eq!(status, 200, "{answer}");
        seen.push(answer);
    }
    assert_eq!(seen[0]["url"], masked_url);
    assert_eq!(seen[1][0]["url"], masked_url);
    assert_eq!(seen[2][0]["url"], masked_url);
    let answer = app
        .graphql(
            "query($id: ID!) { monitor(id: $id) { url } monitors { nodes { url } } }",
            json!({"id": id.to_string()}),
        )
        .await;
    assert_eq!(answer["data"]["monitor"]["url"], masked_url, "{answer}");
    assert_eq!(answer["data"]["monitors"]["nodes"][0]["url"], masked_url);
    seen.push(answer);

    // A client that reads and writes back keeps the stored password, over REST and GraphQL.
    body["url"] = seen[0]["url"].clone();
    body["name"] = json!("private, renamed");
    let (status, updated) = app
        .json(Method::PUT, &format!("/monitors/{id}"), Some(body.clone()))
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["url"], masked_url);
    assert_eq!(stored(&app, id, "url").await, secret_url);
    let moved = format!("http://user:***@{host}/private?v=2");
    let answer = app
        .graphql(
            "mutation($id: ID!, $url: String!) { updateMonitor(id: $id, input: {url: $url}) { url } }",
            json!({"id": id.to_string(), "url": moved}),
        )
        .await;
    assert_eq!(answer["data"]["updateMonitor"]["url"], moved, "{answer}");
    assert_eq!(
        stored(&app, id, "url").await,
        format!("http://user:secret@{host}/private?v=2")
    );
    assert_eq!(check_now(&app, id).await["status"], "UP");

    // The mask is refused where no stored password belongs: another host, another user, a
    // new monitor.
    let refused = "url has the password `***`, which is how reads mask a password; send the real password (the stored one is kept only for the same scheme, user, host and port)";
    for url in [
        format!(
            "http://user:***@localhost:{}/private",
            host.split(':').nth(1).unwrap()
        ),
        format!("http://other:***@{host}/private"),
    ] {
        body["url"] = json!(url);
        let (status, answer) = app
            .json(Method::PUT, &format!("/monitors/{id}"), Some(body.clone()))
            .await;
        assert_eq!((status, &answer["error"]), (400, &json!(refused)), "{url}");
    }
    body["url"] = json!(masked_url);
    let (status, answer) = app.json(Method::POST, "/monitors", Some(body)).await;
    assert_eq!((status, &answer["error"]), (400, &json!(refused)));
    assert_eq!(
        stored(&app, id, "url").await,
        format!("http://user:secret@{host}/private?v=2")
    );

    // Subscription payloads carry the masked URL too.
    let url = app.ws_url("/graphql/ws");
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let send = |v: Value| Message::text(v.to_string());
    socket
        .send(send(json!({"type": "connection_init", "payload": {}})))
        .await
        .unwrap();
    socket.send(send(json!({"id": "s", "type": "subscribe", "payload": {
        "query": "subscription($id: ID) { statusChanges(monitorId: $id) { monitor { url } newStatus } }",
        "variables": {"id": id.to_string()},
    }}))).await.unwrap();
    let give_up = Instant::now() + Duration::from_secs(20);
    let change = 'wait: loop {
        assert!(Instant::now() < give_up, "no status change arrived");
        // Each check flips the status, so once the subscription is live one arrives.
        failing.fetch_xor(true, Ordering::SeqCst);
        check_now(&app, id).await;
        let window = Instant::now() + Duration::from_millis(500);
        while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(window, socket.next()).await {
            let Message::Text(text) = frame else { continue };
            let message: Value = serde_json::from_str(&text).unwrap();
            if message["type"] == "next" {
                break 'wait message;
            }
        }
    };
    let expected_url = format!("http://user:***@{host}/private?v=2");
    assert_eq!(
        change["payload"]["data"]["statusChanges"]["monitor"]["url"], expected_url,
        "{change}"
    );

    for answer in &seen {
        assert!(!answer.to_string().contains("secret"), "{answer}");
    }
    assert!(!app.log().contains("secret"), "the log shows the password");
}

on_both_backends!(
    unknown_body_keys_are_refused_by_name_and_nothing_changes,
    control_characters_invisible_names_and_port_zero_are_refused_over_rest_and_graphql,
    passwords_in_urls_are_masked_on_every_read_and_kept_on_write_back,
);
