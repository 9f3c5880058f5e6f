//! Checks that tell the truth, from outside: check options stored, masked and refused by
//! name; each assertion kind passing and failing with the actual value recorded; degraded;
//! phase timings that add up; certificates read, expired and untrusted ones DOWN; flap
//! thresholds held exactly; and the target policy. Every scenario runs on SQLite and on
//! PostgreSQL, against servers inside the test process.

use std::{
    sync::{
        atomic::{AtomicU16, Ordering},
        Arc,
    },
    time::Duration,
};

use std::collections::HashMap;

use axum::{
    extract::Query,
    http::{HeaderMap, Method as HttpMethod, StatusCode},
    response::IntoResponse,
    routing::{any, get},
    Router,
};
use reqwest::Method;
use serde_json::{json, Value};
use testkit::{on_both_backends, TlsTarget, Validity};

use crate::common::{check_now, App, Backend, BIN};

/// A server that misbehaves in every way a check should see through.
struct Misbehaving {
    base: String,
    port: u16,
    flip: Arc<AtomicU16>,
}

impl Misbehaving {
    async fn start(bind: &str) -> Self {
        let flip = Arc::new(AtomicU16::new(200));
        let app = Router::new()
            .route(
                "/health",
                get(|| async {
                    (
                        [("content-type", "application/json")],
                        r#"{"status":"up","load":0.42,"checks":["db","cache"]}"#,
                    )
                }),
            )
            .route(
                "/health-down",
                get(|| async {
                    (
                        [("content-type", "application/json")],
                        r#"{"status":"down","load":0.97}"#,
                    )
                }),
            )
            .route(
                "/error-page",
                get(|| async { "<html><h1>Internal error</h1> something went wrong</html>" }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    "slow"
                }),
            )
            .route(
                "/versioned",
                get(|| async { ([("x-version", "12"), ("cache-control", "no-store")], "v") }),
            )
            .route("/teapot", get(|| async { StatusCode::IM_A_TEAPOT }))
            .route(
                "/moved",
                get(|| async { (StatusCode::FOUND, [("location", "/health")]) }),
            )
            .route(
                "/redirect",
                get(|Query(q): Query<HashMap<String, String>>| async move {
                    (
                        StatusCode::FOUND,
                        [("location", q.get("to").cloned().unwrap_or_default())],
                    )
                }),
            )
            .route(
                "/echo",
                any(
                    |method: HttpMethod, headers: HeaderMap, body: String| async move {
                        let auth = headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        let code = if auth == "Bearer s3cret" {
                            StatusCode::OK
                        } else {
                            StatusCode::UNAUTHORIZED
                        };
                        (code, format!("{method} {body}"))
                    },
                ),
            )
            .route(
                "/flip",
                get({
                    let flip = flip.clone();
                    move || async move {
                        StatusCode::from_u16(flip.load(Ordering::SeqCst))
                            .unwrap()
                            .into_response()
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind(format!("{bind}:0"))
            .await
            .expect("bind the misbehaving server");
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            base: format!("http://{bind}:{port}"),
            port,
            flip,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

pub(crate) async fn create(app: &App, body: Value) -> (u16, Value) {
    app.json(Method::POST, "/monitors", Some(body)).await
}

pub(crate) fn monitor(url: &str, options: Value) -> Value {
    let mut body = json!({
        "name": format!("options of {url}"),
        "url": url,
        "timeout_seconds": 5,
        "interval_seconds": 3600,
        "active": false,
    });
    for (key, value) in options.as_object().unwrap() {
        body[key] = value.clone();
    }
    body
}

pub(crate) async fn created(app: &App, url: &str, options: Value) -> i64 {
    let (status, body) = create(app, monitor(url, options)).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().unwrap()
}

async fn state(app: &App, id: i64) -> String {
    let (status, body) = app
        .json(Method::GET, &format!("/monitors/{id}"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    body["state"].as_str().unwrap().to_owned()
}

async fn check_options_are_stored_masked_and_refused_by_name(backend: Backend) {
    let server = Misbehaving::start("127.0.0.1").await;
    let app = spawn_app!(backend);
    let options = json!({
        "method": "post",
        "headers": [{"name": "Authorization", "value": "Bearer s3cret"}, {"name": "X-Trace", "value": "1"}],
        "body": "{\"ping\":true}",
        "accepted_status_codes": ["200-299", "418"],
        "follow_redirects": false,
        "max_redirects": 3,
        "ignore_tls": true,
        "assertions": [{"source": "BODY", "comparison": "CONTAINS", "target": "POST"}],
        "degraded_after_ms": 1500,
        "failure_threshold": 2,
        "success_threshold": 3,
    });
    let (status, body) = create(&app, monitor(&server.url("/echo"), options)).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_i64().unwrap();
    assert_eq!(body["method"], "POST");
    assert_eq!(body["kind"], "HTTP");
    assert_eq!(body["state"], "PAUSED");
    assert_eq!(
        body["headers"],
        json!([{"name": "Authorization", "value": "Bearer ***"}, {"name": "X-Trace", "value": "1"}])
    );
    assert_eq!(body["accepted_status_codes"], json!(["200-299", "418"]));
    assert_eq!(body["assertions"][0]["source"], "BODY");
    assert_eq!(body["failure_threshold"], 2);
    // The server answers 200 only to the real token and echoes method and body.
    let (result, _) = check_now(&app, id).await;
    assert_eq!(result["status"], "UP", "{result}");
    assert_eq!(result["assertion_results"][0]["passed"], true, "{result}");
    assert_eq!(
        result["assertion_results"][0]["actual"],
        "POST {\"ping\":true}"
    );

    // Writing the masked form back keeps the secret.
    let (_, read) = app
        .json(Method::GET, &format!("/monitors/{id}"), None)
        .await;
    let mut put = monitor(&server.url("/echo"), json!({}));
    put["headers"] = read["headers"].clone();
    let (status, body) = app
        .json(Method::PUT, &format!("/monitors/{id}"), Some(put))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["method"], "POST", "omitted options keep their values");
    let (result, _) = check_now(&app, id).await;
    assert_eq!(
        result["status"], "UP",
        "the stored token was kept: {result}"
    );

    // GraphQL reads the same options in camelCase.
    let read = app
        .graphql(
            "query($id: ID!) { monitor(id: $id) { method headers { name value } acceptedStatusCodes followRedirects maxRedirects ignoreTls degradedAfterMs failureThreshold successThreshold state kind assertions { source comparison target warning } } }",
            json!({"id": id.to_string()}),
        )
        .await;
    let m = &read["data"]["monitor"];
    assert_eq!(m["headers"][0]["value"], "Bearer ***", "{read}");
    assert_eq!(m["acceptedStatusCodes"], json!(["200-299", "418"]));
    assert_eq!(m["successThreshold"], 3);
    assert_eq!(m["assertions"][0]["comparison"], "CONTAINS");

    // Bad input: 400 naming the field, nothing stored.
    let before = app.db.count("monitors").await;
    let bad: Vec<(Value, &str)> = vec![
        (json!({"method": "FETCH"}), "method"),
        (
            json!({"headers": [{"name": "Bad Name", "value": "x"}]}),
            "headers[0].name",
        ),
        (
            json!({"headers": [{"name": "X-A", "value": "a\r\nb"}]}),
            "headers[0].value",
        ),
        (json!({"headers": "X-A: 1"}), "headers"),
        (json!({"body": "x"}), "body"),
        (
            json!({"accepted_status_codes": ["299-200"]}),
            "accepted_status_codes[0]",
        ),
        (
            json!({"accepted_status_codes": ["2xx"]}),
            "accepted_status_codes[0]",
        ),
        (
            json!({"assertions": [{"source": "BODY", "comparison": "MATCHES", "target": "(open"}]}),
            "assertions[0].target",
        ),
        (
            json!({"assertions": [{"source": "JSON_BODY", "property": "$.[", "comparison": "EQUALS", "target": "up"}]}),
            "assertions[0].property",
        ),
        (
            json!({"assertions": [{"source": "STATUS_CODE", "comparison": "CONTAINS", "target": "2"}]}),
            "assertions[0].comparison",
        ),
        (
            json!({"assertions": [{"source": "SIZE", "comparison": "EQUALS", "target": "2"}]}),
            "assertions[0].source",
        ),
        (
            json!({"assertions": [{"source": "BODY", "comparison": "CONTAINS", "target": "x", "extra": 1}]}),
            "assertions[0].extra",
        ),
        (
            json!({"assertions": vec![json!({"source": "BODY", "comparison": "CONTAINS", "target": "x"}); 21]}),
            "assertions",
        ),
        (
            json!({"headers": vec![json!({"name": "X-A", "value": "1"}); 33]}),
            "headers",
        ),
        (json!({"max_redirects": 99}), "max_redirects"),
        (json!({"failure_threshold": 0}), "failure_threshold"),
        (json!({"degraded_after_ms": -5}), "degraded_after_ms"),
        (json!({"kind": "SMTP"}), "kind"),
    ];
    for (options, field) in bad {
        let (status, body) = create(&app, monitor(&server.url("/echo"), options.clone())).await;
        assert_eq!(status, 400, "{options}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.starts_with(field), "{options}: {error}");
    }
    assert_eq!(app.db.count("monitors").await, before, "nothing stored");

    // Over GraphQL: BAD_USER_INPUT naming the field in camelCase.
    let body = app
        .graphql(
            "mutation($url: String!) { createMonitor(input: {name: \"g\", url: $url, timeoutSeconds: 5, intervalSeconds: 60, acceptedStatusCodes: [\"200\", \"abc\"]}) { id } }",
            json!({"url": server.url("/echo")}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{body}"
    );
    assert_eq!(
        body["errors"][0]["extensions"]["field"], "acceptedStatusCodes[1]",
        "{body}"
    );
    assert_eq!(app.db.count("monitors").await, before);
}

async fn assertions_pass_and_fail_with_the_actual_value(backend: Backend) {
    let server = Misbehaving::start("127.0.0.1").await;
    let app = spawn_app!(backend);
    let json_up = json!({"assertions": [
        {"source": "JSON_BODY", "property": "$.status", "comparison": "EQUALS", "target": "up"},
        {"source": "JSON_BODY", "property": "$.load", "comparison": "LESS_THAN", "target": "0.9"},
        {"source": "STATUS_CODE", "comparison": "EQUALS", "target": "200"},
    ]});
    let healthy = created(&app, &server.url("/health"), json_up.clone()).await;
    let (result, _) = check_now(&app, healthy).await;
    assert_eq!(result["status"], "UP", "{result}");
    let actual: Vec<&Value> = result["assertion_results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["actual"])
        .collect();
    assert_eq!(actual, [&json!("up"), &json!("0.42"), &json!("200")]);

    // A JSON health endpoint saying down: DOWN, the actual value recorded.
    let down = created(&app, &server.url("/health-down"), json_up).await;
    let (result, _) = check_now(&app, down).await;
    assert_eq!(result["status"], "DOWN", "{result}");
    assert_eq!(result["status_code"], 200);
    assert_eq!(result["assertion_results"][0]["passed"], false);
    assert_eq!(result["assertion_results"][0]["actual"], "down");
    assert_eq!(result["assertion_results"][1]["actual"], "0.97");
    assert_eq!(
        result["error"],
        "assertion failed: JSON_BODY $.status EQUALS \"up\" (actual \"down\")"
    );

    // An error page with 200: DOWN by a body assertion; a regex too.
    let page = created(
        &app,
        &server.url("/error-page"),
        json!({"assertions": [{"source": "BODY", "comparison": "NOT_CONTAINS", "target": "Internal error"}]}),
    )
    .await;
    let (result, _) = check_now(&app, page).await;
    assert_eq!(result["status"], "DOWN", "{result}");
    assert!(result["assertion_results"][0]["actual"]
        .as_str()
        .unwrap()
        .contains("<h1>Internal error</h1>"));
    let regex = created(
        &app,
        &server.url("/health"),
        json!({"assertions": [{"source": "BODY", "comparison": "MATCHES", "target": "\"checks\":\\[\"db\""}]}),
    )
    .await;
    assert_eq!(check_now(&app, regex).await.0["status"], "UP");

    // Headers, and a response time over its limit.
    let header = created(
        &app,
        &server.url("/versioned"),
        json!({"assertions": [
            {"source": "HEADER", "property": "X-Version", "comparison": "GREATER_THAN", "target": "10"},
            {"source": "HEADER", "property": "X-Missing", "comparison": "IS_EMPTY"},
        ]}),
    )
    .await;
    let (result, _) = check_now(&app, header).await;
    assert_eq!(result["status"], "UP", "{result}");
    assert_eq!(result["assertion_results"][0]["actual"], "12");
    let slow = created(
        &app,
        &server.url("/slow"),
        json!({"assertions": [{"source": "RESPONSE_TIME", "comparison": "LESS_THAN", "target": "200"}]}),
    )
    .await;
    let (result, _) = check_now(&app, slow).await;
    assert_eq!(result["status"], "DOWN", "{result}");
    let took: i64 = result["assertion_results"][0]["actual"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(took >= 400, "{result}");

    // Slower than degraded_after_ms, or a failed warning: UP but degraded, state DEGRADED.
    let degraded = created(
        &app,
        &server.url("/slow"),
        json!({"degraded_after_ms": 100}),
    )
    .await;
    let (result, _) = check_now(&app, degraded).await;
    assert_eq!(
        (&result["status"], &result["degraded"]),
        (&json!("UP"), &json!(true)),
        "{result}"
    );
    assert!(
        result["error"].as_str().unwrap().starts_with("slow: "),
        "{result}"
    );
    let (status, body) = app
        .json(
            Method::PUT,
            &format!("/monitors/{degraded}"),
            Some(monitor(&server.url("/slow"), json!({"active": true}))),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    testkit::eventually(Duration::from_secs(10), "the degraded state", || async {
        (state(&app, degraded).await == "DEGRADED").then_some(())
    })
    .await;
    let warned = created(
        &app,
        &server.url("/health"),
        json!({"assertions": [{"source": "JSON_BODY", "property": "$.load", "comparison": "LESS_THAN", "target": "0.1", "warning": true}]}),
    )
    .await;
    let (result, _) = check_now(&app, warned).await;
    assert_eq!(
        (&result["status"], &result["degraded"]),
        (&json!("UP"), &json!(true)),
        "{result}"
    );

    // Accepted codes and redirects as asked.
    let teapot = created(
        &app,
        &server.url("/teapot"),
        json!({"accepted_status_codes": ["418"]}),
    )
    .await;
    assert_eq!(check_now(&app, teapot).await.0["status"], "UP");
    let plain_teapot = created(&app, &server.url("/teapot"), json!({})).await;
    assert_eq!(check_now(&app, plain_teapot).await.0["status"], "DOWN");
    let not_followed = created(
        &app,
        &server.url("/moved"),
        json!({"follow_redirects": false}),
    )
    .await;
    let (result, _) = check_now(&app, not_followed).await;
    assert_eq!(
        (&result["status"], &result["status_code"]),
        (&json!("DOWN"), &json!(302))
    );
    let followed = created(&app, &server.url("/moved"), json!({"assertions": [{"source": "JSON_BODY", "property": "$.status", "comparison": "EQUALS", "target": "up"}]})).await;
    assert_eq!(check_now(&app, followed).await.0["status"], "UP");

    // Timings: a literal address has no DNS phase, http no TLS phase; phases within the total.
    let (result, _) = check_now(&app, healthy).await;
    let t = &result["timings"];
    assert_eq!(
        (&t["dns_ms"], &t["tls_ms"]),
        (&Value::Null, &Value::Null),
        "{result}"
    );
    let connect = t["connect_ms"].as_i64().expect("connect phase");
    let first_byte = t["first_byte_ms"].as_i64().expect("first byte phase");
    assert!(
        connect + first_byte <= t["total_ms"].as_i64().unwrap(),
        "{t}"
    );
    assert_eq!(t["total_ms"], result["response_time_ms"]);
    let slow_timings = check_now(&app, slow).await.0["timings"].clone();
    assert!(
        slow_timings["first_byte_ms"].as_i64().unwrap() >= 400,
        "{slow_timings}"
    );

    // What was stored is what history and GraphQL read back.
    let (_, history) = app
        .json(Method::GET, &format!("/monitors/{down}/check"), None)
        .await;
    assert_eq!(
        history[0]["assertion_results"][0]["actual"], "down",
        "{history}"
    );
    let read = app
        .graphql(
            "query($id: ID!) { monitor(id: $id) { checkResults(first: 1) { nodes { degraded timings { dnsMs connectMs tlsMs firstByteMs totalMs } tls { daysLeft } assertionResults { passed actual assertion { source property comparison target } } } } } }",
            json!({"id": down.to_string()}),
        )
        .await;
    let node = &read["data"]["monitor"]["checkResults"]["nodes"][0];
    assert_eq!(node["assertionResults"][0]["actual"], "down", "{read}");
    assert_eq!(
        node["assertionResults"][0]["assertion"]["property"],
        "$.status"
    );
    assert_eq!(node["timings"]["dnsMs"], Value::Null);
    assert_eq!(node["tls"], Value::Null);
}

async fn certificates_are_read_and_bad_ones_are_down(backend: Backend) {
    let valid = TlsTarget::start(Validity {
        from_days: -5,
        until_days: 40,
        by_ca: true,
    })
    .await;
    let expired = TlsTarget::start(Validity {
        from_days: -60,
        until_days: -3,
        by_ca: true,
    })
    .await;
    let self_signed = TlsTarget::start(Validity {
        from_days: -1,
        until_days: 90,
        by_ca: false,
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    // Both CAs: the expired one's chain is trusted, so what fails is its date.
    std::fs::write(&ca_file, format!("{}{}", valid.ca_pem, expired.ca_pem)).unwrap();
    let Some(app) = App::spawn_with(
        BIN,
        backend,
        &[("CHECK_CA_FILE", ca_file.to_str().unwrap())],
    )
    .await
    else {
        return;
    };
    let id = created(
        &app,
        &valid.url(),
        json!({"assertions": [{"source": "CERT_EXPIRES_IN_DAYS", "comparison": "GREATER_THAN", "target": "30"}]}),
    )
    .await;
    let (result, _) = check_now(&app, id).await;
    assert_eq!(result["status"], "UP", "{result}");
    let tls = &result["tls"];
    assert!(
        (39..=40).contains(&tls["days_left"].as_i64().unwrap()),
        "{tls}"
    );
    assert!(
        tls["subject"].as_str().unwrap().contains("localhost"),
        "{tls}"
    );
    assert!(
        tls["issuer"]
            .as_str()
            .unwrap()
            .contains("Monitor Manager Test CA"),
        "{tls}"
    );
    assert!(tls["not_after"].is_string());
    let t = &result["timings"];
    let phases: i64 = ["dns_ms", "connect_ms", "tls_ms", "first_byte_ms"]
        .iter()
        .map(|k| t[k].as_i64().unwrap_or_else(|| panic!("{k} missing: {t}")))
        .sum();
    assert!(phases <= t["total_ms"].as_i64().unwrap(), "{t}");

    let id = created(&app, &expired.url(), json!({})).await;
    let (result, _) = check_now(&app, id).await;
    assert_eq!(result["status"], "DOWN");
    assert_eq!(result["error"], "TLS failure: certificate expired");

    let id = created(&app, &self_signed.url(), json!({})).await;
    let (result, _) = check_now(&app, id).await;
    assert_eq!(result["status"], "DOWN");
    assert_eq!(
        result["error"],
        "TLS failure: certificate not trusted (unknown issuer or self-signed)"
    );
    let id = created(
        &app,
        &self_signed.url(),
        json!({"ignore_tls": true, "assertions": [{"source": "CERT_EXPIRES_IN_DAYS", "comparison": "GREATER_THAN", "target": "7"}]}),
    )
    .await;
    let (result, _) = check_now(&app, id).await;
    assert_eq!(result["status"], "UP", "{result}");
    assert_eq!(result["assertion_results"][0]["passed"], true);
}

async fn flap_thresholds_hold_exactly(backend: Backend) {
    let server = Misbehaving::start("127.0.0.1").await;
    let app = spawn_app!(backend);
    let id = created(
        &app,
        &server.url("/flip"),
        json!({"failure_threshold": 3, "success_threshold": 2, "active": true, "interval_seconds": 3600}),
    )
    .await;
    // The scheduler's first check is due at once; wait for it, then go on by hand.
    testkit::eventually(
        Duration::from_secs(10),
        "the first scheduled check",
        || async {
            let (_, body) = app
                .json(Method::GET, &format!("/monitors/{id}"), None)
                .await;
            (!body["last_checked_at"].is_null()).then_some(())
        },
    )
    .await;
    // 1 of 2 successes so far.
    assert_eq!(state(&app, id).await, "PENDING");
    check_now(&app, id).await;
    assert_eq!(state(&app, id).await, "UP");
    server.flip.store(503, Ordering::SeqCst);
    for expected in ["PENDING", "PENDING", "DOWN", "DOWN"] {
        let (result, _) = check_now(&app, id).await;
        assert_eq!(
            result["status"], "DOWN",
            "every raw result is stored as it is"
        );
        assert_eq!(state(&app, id).await, expected);
    }
    server.flip.store(200, Ordering::SeqCst);
    check_now(&app, id).await;
    assert_eq!(state(&app, id).await, "PENDING");
    // A failure in between starts the count again.
    server.flip.store(503, Ordering::SeqCst);
    check_now(&app, id).await;
    assert_eq!(state(&app, id).await, "DOWN");
    server.flip.store(200, Ordering::SeqCst);
    check_now(&app, id).await;
    assert_eq!(state(&app, id).await, "PENDING");
    check_now(&app, id).await;
    assert_eq!(state(&app, id).await, "UP");
    let (_, body) = app
        .json(Method::GET, &format!("/monitors/{id}"), None)
        .await;
    assert_eq!(body["last_status"], "UP");
    let (_, history) = app
        .json(Method::GET, &format!("/monitors/{id}/check?limit=20"), None)
        .await;
    assert_eq!(
        history.as_array().unwrap().len(),
        10,
        "every raw result stored"
    );
}

async fn retries_confirm_a_change_sooner(backend: Backend) {
    let server = Misbehaving::start("127.0.0.1").await;
    let app = spawn_app!(backend);
    let id = created(
        &app,
        &server.url("/flip"),
        json!({"failure_threshold": 3, "retry_interval_seconds": 1, "active": true, "interval_seconds": 3600}),
    )
    .await;
    let history = |limit: usize| {
        let app = &app;
        async move {
            let (_, history) = app
                .json(
                    Method::GET,
                    &format!("/monitors/{id}/check?limit={limit}"),
                    None,
                )
                .await;
            history.as_array().unwrap().clone()
        }
    };
    testkit::eventually(Duration::from_secs(10), "the first check", || async {
        (state(&app, id).await == "UP").then_some(())
    })
    .await;
    // One failure by hand; the two that confirm it come a second apart, not an hour.
    server.flip.store(503, Ordering::SeqCst);
    check_now(&app, id).await;
    assert_eq!(state(&app, id).await, "PENDING");
    testkit::eventually(Duration::from_secs(10), "the confirmed DOWN", || async {
        (state(&app, id).await == "DOWN").then_some(())
    })
    .await;
    let results = history(10).await;
    assert_eq!(results.len(), 4, "{results:?}");
    let at = |r: &Value| -> chrono::DateTime<chrono::Utc> {
        r["checked_at"].as_str().unwrap().parse().unwrap()
    };
    for pair in results[..3].windows(2) {
        let gap = at(&pair[0]) - at(&pair[1]);
        assert!(
            gap >= chrono::Duration::milliseconds(900) && gap < chrono::Duration::seconds(4),
            "retried {gap} apart: {results:?}"
        );
    }
    // Confirmed: no more retries.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(history(10).await.len(), 4);

    let (status, body) = create(
        &app,
        monitor(&server.url("/flip"), json!({"retry_interval_seconds": 0})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("retry_interval_seconds must be a positive integer"),
        "{body}"
    );
    let cleared = app
        .graphql(
            "mutation($id: ID!) { updateMonitor(id: $id, input: {retryIntervalSeconds: null, degradedAfterMs: null}) { retryIntervalSeconds degradedAfterMs } }",
            json!({"id": id.to_string()}),
        )
        .await;
    assert!(cleared["errors"].is_null(), "{cleared}");
    assert_eq!(
        cleared["data"]["updateMonitor"]["retryIntervalSeconds"],
        Value::Null
    );
}

async fn the_target_policy_blocks_what_it_should(backend: Backend) {
    let server = Misbehaving::start("127.0.0.1").await;
    // Always blocked: link-local and metadata, even without BLOCK_PRIVATE_NETWORKS.
    let app = spawn_app!(backend);
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/",
        "http://0.0.0.0/",
        "http://[::ffff:169.254.169.254]/",
    ] {
        let (status, body) = create(&app, monitor(url, json!({}))).await;
        assert_eq!(status, 400, "{url}: {body}");
        assert!(
            body["error"].as_str().unwrap().starts_with("url points at"),
            "{body}"
        );
    }
    assert_eq!(app.db.count("monitors").await, 0);
    drop(app);

    // Shared deployments: loopback in every literal form is refused at creation; a name that
    // resolves to it, and a redirect to it, are DOWN saying so.
    let allowed = Misbehaving::start("127.0.0.2").await;
    let Some(app) = App::spawn_with(
        BIN,
        backend,
        &[
            ("BLOCK_PRIVATE_NETWORKS", "true"),
            ("ALLOWED_NETWORKS", "127.0.0.2/32"),
        ],
    )
    .await
    else {
        return;
    };
    let port = server.port;
    for form in [
        "127.0.0.1",
        "127.1",
        "2130706433",
        "0x7f000001",
        "0177.0.0.1",
        "[::ffff:127.0.0.1]",
        "[::1]",
        "10.0.0.1",
        "192.168.1.1",
    ] {
        let url = format!("http://{form}:{port}/health");
        let (status, body) = create(&app, monitor(&url, json!({}))).await;
        assert_eq!(status, 400, "{url}: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("(BLOCK_PRIVATE_NETWORKS is on)"),
            "{body}"
        );
    }
    let by_name = created(&app, &format!("http://localhost:{port}/health"), json!({})).await;
    let (result, _) = check_now(&app, by_name).await;
    assert_eq!(result["status"], "DOWN");
    assert!(
        result["error"]
            .as_str()
            .unwrap()
            .starts_with("blocked by the target policy: "),
        "{result}"
    );
    assert!(
        result["timings"]["dns_ms"].is_i64(),
        "the name was resolved: {result}"
    );
    // The allowed network works, and its redirect to loopback is blocked at the hop.
    let fine = created(&app, &allowed.url("/health"), json!({})).await;
    assert_eq!(check_now(&app, fine).await.0["status"], "UP");
    let hop = created(&app, &allowed.url("/moved"), json!({})).await;
    assert_eq!(
        check_now(&app, hop).await.0["status"],
        "UP",
        "a same-host redirect is fine"
    );
    for to in [
        format!("http://127.0.0.1:{port}/health"),
        format!("http://localhost:{port}/health"),
        format!("http://[::ffff:7f00:1]:{port}/health"),
    ] {
        let id = created(&app, &allowed.url(&format!("/redirect?to={to}")), json!({})).await;
        let (result, _) = check_now(&app, id).await;
        assert_eq!(result["status"], "DOWN", "{to}: {result}");
        assert!(
            result["error"].as_str().unwrap().contains("is loopback"),
            "{to}: {result}"
        );
    }
    let graphql = app
        .graphql(
            "mutation($url: String!) { createMonitor(input: {name: \"x\", url: $url, timeoutSeconds: 5, intervalSeconds: 60}) { id } }",
            json!({"url": format!("http://127.1:{port}/")}),
        )
        .await;
    assert_eq!(
        graphql["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{graphql}"
    );
}

on_both_backends!(
    check_options_are_stored_masked_and_refused_by_name,
    assertions_pass_and_fail_with_the_actual_value,
    certificates_are_read_and_bad_ones_are_down,
    flap_thresholds_hold_exactly,
    retries_confirm_a_change_sooner,
    the_target_policy_blocks_what_it_should,
);
