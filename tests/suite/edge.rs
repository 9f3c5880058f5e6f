//! The API's edge, from outside: GraphQL over HTTP as clients use it (introspection, GET,
//! persisted queries), the document limits, CSRF, `Host` and CORS policy, connection limits
//! and shutdown within its grace. Every abuse case checks that the process is still up and
//! answering afterwards.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::{on_both_backends, Target};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{self, App, Backend, BIN};

/// graphql-js 16's `getIntrospectionQuery()` with every option on.
const INTROSPECTION: &str = include_str!("../fixtures/introspection.graphql");

async fn post_graphql(app: &App, body: &Value) -> (u16, Value) {
    let response = app
        .http
        .post(app.url("/graphql"))
        .json(body)
        .send()
        .await
        .expect("graphql request");
    common::read_json(response).await
}

/// The first error's message and code.
fn first_error(answer: &Value) -> (String, String) {
    let error = &answer["errors"][0];
    (
        error["message"].as_str().unwrap_or_default().to_owned(),
        error["extensions"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// The server still answers a normal query quickly.
async fn still_serves(app: &App) {
    let started = Instant::now();
    let answer = app.graphql("{ monitors { totalCount } }", json!({})).await;
    assert!(answer["errors"].is_null(), "{answer} {}", app.log());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a normal query took {:?}",
        started.elapsed()
    );
}

async fn tools_work_over_http(backend: Backend) {
    let Some(app) = App::spawn(BIN, backend).await else {
        return;
    };
    // The standard introspection query, every option on.
    let (status, answer) = post_graphql(&app, &json!({ "query": INTROSPECTION })).await;
    assert_eq!(status, 200);
    assert!(answer["errors"].is_null(), "{answer}");
    let types = answer["data"]["__schema"]["types"].as_array().unwrap();
    assert!(types.iter().any(|t| t["name"] == "Monitor"));

    // GET for a client accepting JSON runs the query; a browser asking for HTML gets GraphiQL.
    let id = app
        .create_monitor("http://127.0.0.1:9/", 60, 5, false)
        .await;
    for accept in [
        "application/json",
        "application/graphql-response+json",
        "*/*",
    ] {
        let response = app
            .http
            .get(app.url("/graphql"))
            .header("accept", accept)
            .query(&[
                (
                    "query",
                    "query($id: ID!) { monitor(id: $id) { name createdAt } }",
                ),
                ("variables", &json!({ "id": id.to_string() }).to_string()),
            ])
            .send()
            .await
            .unwrap();
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let (status, answer) = common::read_json(response).await;
        assert_eq!(status, 200, "{accept}: {answer}");
        assert!(content_type.starts_with("application/"), "{content_type}");
        assert_eq!(
            answer["data"]["monitor"]["name"],
            "monitor of http://127.0.0.1:9/"
        );
        let created = answer["data"]["monitor"]["createdAt"].as_str().unwrap();
        assert!(created.ends_with('Z'), "DateTime in UTC with Z: {created}");
    }
    let html = app
        .http
        .get(app.url("/graphql"))
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(html.status(), 200);
    assert!(html.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));

    // Mutations over GET: 405, nothing deleted.
    let response = app
        .http
        .get(app.url("/graphql"))
        .header("accept", "application/json")
        .query(&[("query", format!("mutation {{ deleteMonitor(id: {id}) }}"))])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    assert_eq!(app.db.count("monitors").await, 1);

    // Apollo's persisted queries: unknown hash, then hash and text, then the hash alone.
    let query = "{ monitors { totalCount } }";
    let hash = sha256_hex(query);
    let extensions = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let (_, answer) = post_graphql(&app, &json!({ "extensions": extensions })).await;
    assert_eq!(
        first_error(&answer).1,
        "PERSISTED_QUERY_NOT_FOUND",
        "{answer}"
    );
    let (_, answer) =
        post_graphql(&app, &json!({ "query": query, "extensions": extensions })).await;
    assert_eq!(answer["data"]["monitors"]["totalCount"], 1, "{answer}");
    let response = app
        .http
        .get(app.url("/graphql"))
        .header("accept", "application/json")
        .query(&[("extensions", extensions.to_string())])
        .send()
        .await
        .unwrap();
    let (_, answer) = common::read_json(response).await;
    assert_eq!(answer["data"]["monitors"]["totalCount"], 1, "{answer}");
    let wrong = json!({ "persistedQuery": { "version": 1, "sha256Hash": sha256_hex("other") } });
    let (_, answer) = post_graphql(&app, &json!({ "query": query, "extensions": wrong })).await;
    assert!(first_error(&answer).0.contains("SHA-256"), "{answer}");

    // Cursors are opaque and checked; totalCount counts every page.
    let answer = app
        .graphql(
            "{ monitors(first: 1) { totalCount edges { cursor } } }",
            json!({}),
        )
        .await;
    let cursor = answer["data"]["monitors"]["edges"][0]["cursor"]
        .as_str()
        .unwrap();
    assert!(
        cursor.parse::<i64>().is_err(),
        "cursor {cursor} is a bare id"
    );
    let answer = app
        .graphql("{ monitors(after: \"42\") { totalCount } }", json!({}))
        .await;
    assert_eq!(first_error(&answer).1, "BAD_USER_INPUT", "{answer}");

    // Parse errors are one line; validation errors come all at once.
    let (_, answer) = post_graphql(&app, &json!({ "query": "{ monitors(" })).await;
    let (message, code) = first_error(&answer);
    assert!(message.starts_with("syntax error at line 1"), "{message}");
    assert!(!message.contains('\n'));
    assert_eq!(code, "BAD_USER_INPUT");
    let (_, answer) = post_graphql(&app, &json!({ "query": "{ nope1 nope2 }" })).await;
    assert_eq!(answer["errors"].as_array().unwrap().len(), 2, "{answer}");
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn abusive_documents_are_refused_by_name(backend: Backend) {
    let Some(app) = App::spawn(BIN, backend).await else {
        return;
    };
    let id = app
        .create_monitor("http://127.0.0.1:9/", 60, 5, false)
        .await;
    let deep_object = format!(
        "{{ monitor(id: {}) {{ id }} }}",
        "{a:".repeat(2000) + "1" + &"}".repeat(2000)
    );
    let deep_list = format!(
        "{{ monitor(id: {}) {{ id }} }}",
        "[".repeat(3000) + "1" + &"]".repeat(3000)
    );
    let mut fragments = String::from("query { ...F0 }\n");
    for i in 0..30 {
        fragments.push_str(&format!(
            "fragment F{i} on Query {{ ...F{} ...F{} }}\n",
            i + 1,
            i + 1
        ));
    }
    fragments.push_str("fragment F30 on Query { __typename }\n");
    let wide = "{ monitors(first: 1000) { nodes { checkResults(first: 1000) { nodes { id status error } } } } }";
    let aliased_checks: String = (0..11)
        .map(|i| format!("r{i}: runCheck(id: {id}) {{ id }} "))
        .collect();
    let aliased_checks = format!("mutation {{ {aliased_checks} }}");
    let many_aliases: String = (0..101).map(|i| format!("a{i}: __typename ")).collect();
    let cases = [
        (deep_object, "limit is 32"),
        (deep_list, "limit is 32"),
        (fragments, "limit is 2000"),
        (wide.to_owned(), "limit is 10000"),
        (aliased_checks, "limit is 10"),
        (format!("{{ {many_aliases} }}"), "limit is 100"),
        ("x".repeat(40_000), "limit is 32768"),
    ];
    for (query, limit) in cases {
        let started = Instant::now();
        let (status, answer) = post_graphql(&app, &json!({ "query": query })).await;
        assert_eq!(status, 200, "{answer}");
        let (message, code) = first_error(&answer);
        assert!(message.contains(limit), "expected `{limit}` in: {message}");
        assert_eq!(code, "BAD_USER_INPUT");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{limit}: {:?}",
            started.elapsed()
        );
    }
    assert_eq!(
        app.db.count("check_results").await,
        0,
        "no aliased check ran"
    );

    // Bodies over the limit are refused from their Content-Length, before they are read
    // (a raw socket: an HTTP client may fail on the early answer while still sending).
    let mut stream = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    stream
        .write_all(b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 60000000\r\n\r\n{\"query\":")
        .await
        .unwrap();
    let mut head = vec![0; 1024];
    let read = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut head))
        .await
        .expect("the refusal comes before the body")
        .unwrap();
    let head = String::from_utf8_lossy(&head[..read]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(head.contains("over the limit of 131072 bytes"), "{head}");
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let response = app
            .http
            .post(app.url("/graphql"))
            .header("content-type", content_type)
            .body(r#"{"query":"mutation { deleteMonitor(id: 1) }"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 415, "{content_type}");
    }
    let (status, answer) = post_graphql(&app, &json!([{ "query": "{ __typename }" }])).await;
    assert_eq!(status, 400);
    assert!(first_error(&answer).0.contains("batched"), "{answer}");
    assert_eq!(app.db.count("monitors").await, 1);
    still_serves(&app).await;
}

async fn foreign_hosts_and_origins_are_refused(backend: Backend) {
    let Some(app) = App::spawn_with(
        BIN,
        backend,
        &[("CORS_ALLOWED_ORIGINS", "https://app.example.com")],
    )
    .await
    else {
        return;
    };
    // DNS rebinding: a name that is not ours in Host.
    let response = app
        .http
        .get(app.url("/healthz"))
        .header("host", "rebind.evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 421);
    let (_, body) = common::read_json(response).await;
    assert!(body["error"].as_str().unwrap().contains("ALLOWED_HOSTS"));
    for host in ["localhost", "127.0.0.1:1234"] {
        let response = app
            .http
            .get(app.url("/healthz"))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{host}");
    }

    // A write from another site's page: refused before it runs.
    let response = app
        .http
        .post(app.url("/monitors"))
        .header("origin", "https://evil.example")
        .json(&json!({"name": "x", "url": "http://127.0.0.1:9/", "timeout_seconds": 5, "interval_seconds": 60}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(app.db.count("monitors").await, 0);

    // CORS: the allowed origin's preflight and request get the headers, another's do not.
    for (origin, allowed) in [
        ("https://app.example.com", true),
        ("https://evil.example", false),
    ] {
        let preflight = app
            .http
            .request(reqwest::Method::OPTIONS, app.url("/graphql"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
            .await
            .unwrap();
        let granted = preflight
            .headers()
            .get("access-control-allow-origin")
            .cloned();
        assert_eq!(granted.is_some(), allowed, "{origin}");
        if allowed {
            assert_eq!(granted.unwrap(), origin);
            let methods = preflight.headers()["access-control-allow-methods"]
                .to_str()
                .unwrap();
            assert!(methods.contains("POST"), "{methods}");
        }
    }
    let response = app
        .http
        .post(app.url("/graphql"))
        .header("origin", "https://app.example.com")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
}

on_both_backends!(
    tools_work_over_http,
    abusive_documents_are_refused_by_name,
    foreign_hosts_and_origins_are_refused,
);

#[tokio::test]
async fn slow_and_idle_connections_are_closed_and_extra_ones_refused() {
    let Some(app) = App::spawn_with(
        BIN,
        Backend::Sqlite,
        &[
            ("HEADER_READ_TIMEOUT_SECONDS", "1"),
            ("MAX_CONNECTIONS", "20"),
        ],
    )
    .await
    else {
        return;
    };
    let address = app.base.trim_start_matches("http://").to_owned();
    // Slowloris: headers that never end, and connections that never speak.
    let mut slow = Vec::new();
    for i in 0..20 {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        if i % 2 == 0 {
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                .await
                .unwrap();
        }
        slow.push(stream);
    }
    // Every slot is taken: the next client is told so at once, in JSON.
    let mut extra = tokio::net::TcpStream::connect(&address).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), extra.read_to_end(&mut answer))
        .await
        .expect("the refusal comes at once")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap();
    let body: Value = serde_json::from_str(body).expect("a JSON body of the stated length");
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("too many open connections"));
    // Within the header timeout (and a little), every slow connection is closed.
    let started = Instant::now();
    for mut stream in slow {
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut rest))
            .await
            .expect("a slow connection is closed by the header timeout")
            .ok();
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    still_serves(&app).await;
}

#[tokio::test]
async fn shutdown_ends_within_its_grace_with_checks_in_flight() {
    let target = Target::start().await;
    let Some(mut app) = App::spawn_with(
        BIN,
        Backend::Sqlite,
        &[
            ("SHUTDOWN_GRACE_SECONDS", "2"),
            ("REQUEST_TIMEOUT_SECONDS", "1"),
        ],
    )
    .await
    else {
        return;
    };
    // Checks that will hang for their whole 60 s timeout.
    for _ in 0..5 {
        app.create_monitor(&target.silent_url(), 1, 60, true).await;
    }
    // A request that runs past REQUEST_TIMEOUT_SECONDS is stopped with a JSON answer.
    let id = app
        .create_monitor(&target.silent_url(), 60, 60, false)
        .await;
    let started = Instant::now();
    let (status, body) = app
        .json(
            reqwest::Method::POST,
            &format!("/monitors/{id}/check"),
            None,
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("REQUEST_TIMEOUT_SECONDS"));
    assert!(started.elapsed() < Duration::from_secs(3));

    let started = Instant::now();
    let status = app.terminate();
    let took = started.elapsed();
    assert!(status.success(), "{}", app.log());
    assert!(
        took < Duration::from_millis(3000),
        "shutdown took {took:?} with a 2 s grace"
    );
}

#[tokio::test]
async fn a_request_stops_when_its_client_leaves() {
    let target = Target::start().await;
    let Some(app) = App::spawn(BIN, Backend::Sqlite).await else {
        return;
    };
    let id = app
        .create_monitor(&target.url("/slow/2000"), 60, 10, false)
        .await;
    let gone = app
        .http
        .post(app.url("/graphql"))
        .timeout(Duration::from_millis(300))
        .json(&json!({ "query": format!("mutation {{ runCheck(id: {id}) {{ id }} }}") }))
        .send()
        .await;
    assert!(gone.is_err(), "the client gave up before the answer");
    // The check would have ended and been stored after 2 s, had the request run on.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_eq!(app.db.count("check_results").await, 0, "{}", app.log());
    still_serves(&app).await;
}
