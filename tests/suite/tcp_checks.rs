//! TCP monitors from outside: `tcp://host:port` is UP when a connection opens and DOWN with
//! the reason when it is refused or never answered; `tls://host:port` shakes hands, reads the
//! certificate and is DOWN for an untrusted one unless TLS errors are ignored; the kind
//! follows the URL, HTTP options are refused by name, and the target policy holds for TCP
//! targets in every literal form. Every scenario runs on SQLite and on PostgreSQL.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use testkit::{on_both_backends, TlsTarget, Validity};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::{
    check_options::{self, create, monitor},
    common::{check_now, App, Backend, BIN},
};

/// A port that accepts connections (and closes them at once).
async fn open_port() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    (port, task)
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// A port that never completes a connection: a listener that never accepts, its accept
/// queue filled, so the kernel drops new handshakes.
async fn silent_port() -> (u16, TcpListener, Vec<TcpStream>) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    let listener = socket.listen(0).unwrap();
    let mut held = Vec::new();
    for _ in 0..8 {
        match tokio::time::timeout(
            Duration::from_millis(300),
            TcpStream::connect(("127.0.0.1", port)),
        )
        .await
        {
            Ok(Ok(stream)) => held.push(stream),
            _ => break,
        }
    }
    (port, listener, held)
}

/// A TCP monitor, created (inactive).
async fn created(app: &App, url: &str, options: Value) -> i64 {
    let id = check_options::created(app, url, options).await;
    let (_, body) = app
        .json(Method::GET, &format!("/monitors/{id}"), None)
        .await;
    assert_eq!(body["kind"], "TCP", "{body}");
    id
}

fn refused(body: &Value, field: &str, problem: &str) {
    let error = body["error"].as_str().unwrap_or_else(|| panic!("{body}"));
    assert!(
        error.starts_with(field) && error.contains(problem),
        "expected `{field} ... {problem}`: {body}"
    );
}

async fn tcp_monitors_connect_and_say_why_not(backend: Backend) {
    let (open, _server) = open_port().await;
    let closed = closed_port().await;
    let (silent, _listener, _held) = silent_port().await;
    let app = spawn_app!(backend);

    let (status, body) = create(
        &app,
        monitor(
            &format!("tcp://127.0.0.1:{open}"),
            json!({"assertions": [{"source": "RESPONSE_TIME", "comparison": "LESS_THAN", "target": "1500"}]}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["kind"], "TCP");
    assert_eq!(body["url"], format!("tcp://127.0.0.1:{open}"));
    let id = body["id"].as_i64().unwrap();
    let (result, _) = check_now(&app, id).await;
    assert_eq!(result["status"], "UP", "{result}");
    assert_eq!(result["status_code"], Value::Null, "{result}");
    assert_eq!(result["error"], Value::Null, "{result}");
    assert_eq!(result["assertion_results"][0]["passed"], true, "{result}");
    let t = &result["timings"];
    assert!(t["connect_ms"].is_i64(), "{t}");
    for phase in ["dns_ms", "tls_ms", "first_byte_ms"] {
        assert_eq!(t[phase], Value::Null, "{phase}: {t}");
    }
    assert_eq!(result["tls"], Value::Null);

    let id = created(&app, &format!("tcp://127.0.0.1:{closed}"), json!({})).await;
    let (result, _) = check_now(&app, id).await;
    assert_eq!(result["status"], "DOWN", "{result}");
    assert_eq!(result["error"], "connection refused", "{result}");

    let id = created(
        &app,
        &format!("tcp://127.0.0.1:{silent}"),
        json!({"timeout_seconds": 1}),
    )
    .await;
    let (result, took) = check_now(&app, id).await;
    assert_eq!(result["status"], "DOWN", "{result}");
    assert_eq!(
        result["error"], "timeout: no response within 1s",
        "{result}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");

    // A name resolves first, and the DNS phase is timed.
    let id = created(&app, &format!("tcp://localhost:{open}"), json!({})).await;
    let (result, _) = check_now(&app, id).await;
    assert_eq!(result["status"], "UP", "{result}");
    assert!(result["timings"]["dns_ms"].is_i64(), "{result}");

    // The kind follows a new URL; a kind without its URL is refused, and so are HTTP
    // options on a TCP monitor.
    let put = |url: String, options: Value| {
        let body = monitor(&url, options);
        let path = format!("/monitors/{id}");
        let app = &app;
        async move { app.json(Method::PUT, &path, Some(body)).await }
    };
    let (status, body) = put(format!("tcp://localhost:{open}"), json!({"kind": "HTTP"})).await;
    assert_eq!(status, 400, "{body}");
    refused(
        &body,
        "url",
        "must be an http:// or https:// URL for kind HTTP",
    );
    let (status, body) = put(
        format!("http://127.0.0.1:{closed}/"),
        json!({"method": "HEAD"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["kind"], "HTTP");
    assert_eq!(body["method"], "HEAD");
    let (status, body) = put(format!("tcp://127.0.0.1:{open}"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["kind"], "TCP");
    assert_eq!(body["method"], "GET", "a new kind starts from its defaults");
    assert_eq!(check_now(&app, id).await.0["status"], "UP");
    let partial = app
        .graphql(
            "mutation($id: ID!) { updateMonitor(id: $id, input: {kind: HTTP}) { id } }",
            json!({"id": id.to_string()}),
        )
        .await;
    assert_eq!(
        partial["errors"][0]["extensions"]["field"], "kind",
        "{partial}"
    );
    assert!(
        partial["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("send the new url with it"),
        "{partial}"
    );

    let before = app.db.count("monitors").await;
    for (body, field, problem) in [
        (
            monitor(
                &format!("tcp://127.0.0.1:{open}"),
                json!({"method": "POST"}),
            ),
            "method",
            "not an option of TCP monitors",
        ),
        (
            monitor(
                &format!("tcp://127.0.0.1:{open}"),
                json!({"accepted_status_codes": ["200-399"]}),
            ),
            "accepted_status_codes",
            "not an option of TCP monitors",
        ),
        (
            monitor(
                &format!("tcp://127.0.0.1:{open}"),
                json!({"assertions": [{"source": "BODY", "comparison": "CONTAINS", "target": "x"}]}),
            ),
            "assertions[0].source",
            "does not apply to a TCP monitor",
        ),
        (
            monitor(
                &format!("tcp://127.0.0.1:{open}"),
                json!({"assertions": [{"source": "CERT_EXPIRES_IN_DAYS", "comparison": "GREATER_THAN", "target": "7"}]}),
            ),
            "assertions[0].source",
            "CERT_EXPIRES_IN_DAYS needs a TLS handshake: use tls://host:port",
        ),
        (
            monitor("tcp://127.0.0.1", json!({})),
            "url",
            "port is missing",
        ),
        (
            monitor(&format!("tcp://127.0.0.1:{open}/db"), json!({})),
            "url",
            "nothing after the port",
        ),
        (
            monitor(&format!("http://127.0.0.1:{open}/"), json!({"kind": "TCP"})),
            "url",
            "must be tcp://host:port (or tls://host:port for a TLS handshake) for kind TCP",
        ),
        (
            monitor(&format!("tcp://127.0.0.1:{open}"), json!({"kind": "ICMP"})),
            "kind",
            "not one of HTTP, TCP, DNS, PUSH",
        ),
        (
            monitor("tcp://169.254.169.254:80", json!({})),
            "url",
            "link-local",
        ),
    ] {
        let (status, reply) = create(&app, body.clone()).await;
        assert_eq!(status, 400, "{body}: {reply}");
        refused(&reply, field, problem);
    }
    assert_eq!(
        app.db.count("monitors").await,
        before,
        "nothing refused is stored"
    );

    // GraphQL: the kind is inferred, and a result has no status code.
    let created = app
        .graphql(
            "mutation($url: String!) { createMonitor(input: {name: \"db\", url: $url, timeoutSeconds: 2, intervalSeconds: 3600, active: false}) { id kind url } }",
            json!({"url": format!("tcp://127.0.0.1:{open}")}),
        )
        .await;
    assert!(created["errors"].is_null(), "{created}");
    assert_eq!(created["data"]["createMonitor"]["kind"], "TCP");
    let id = created["data"]["createMonitor"]["id"].clone();
    let checked = app
        .graphql(
            "mutation($id: ID!) { runCheck(id: $id) { status statusCode timings { connectMs firstByteMs } } }",
            json!({"id": id}),
        )
        .await;
    assert!(checked["errors"].is_null(), "{checked}");
    let result = &checked["data"]["runCheck"];
    assert_eq!(result["status"], "UP", "{checked}");
    assert_eq!(result["statusCode"], Value::Null);
    assert!(result["timings"]["connectMs"].is_i64(), "{checked}");
    let wrong = app
        .graphql(
            "mutation($url: String!) { createMonitor(input: {name: \"db\", url: $url, kind: TCP, timeoutSeconds: 2, intervalSeconds: 3600, method: \"POST\"}) { id } }",
            json!({"url": format!("tcp://127.0.0.1:{open}")}),
        )
        .await;
    assert_eq!(
        wrong["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{wrong}"
    );
    assert_eq!(
        wrong["errors"][0]["extensions"]["field"], "method",
        "{wrong}"
    );
}

async fn tls_over_tcp_reads_the_certificate(backend: Backend) {
    let valid = TlsTarget::start(Validity {
        from_days: -5,
        until_days: 40,
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
    std::fs::write(&ca_file, &valid.ca_pem).unwrap();
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
        &format!("tls://localhost:{}", valid.port),
        json!({"assertions": [{"source": "CERT_EXPIRES_IN_DAYS", "comparison": "GREATER_THAN", "target": "30"}]}),
    )
    .await;
    let (result, _) = check_now(&app, id).await;
    assert_eq!(result["status"], "UP", "{result}");
    assert!(result["timings"]["tls_ms"].is_i64(), "{result}");
    assert_eq!(result["timings"]["first_byte_ms"], Value::Null);
    let days = result["tls"]["days_left"].as_i64().unwrap();
    assert!((39..=40).contains(&days), "{result}");
    assert_eq!(result["assertion_results"][0]["actual"], days.to_string());
    assert!(result["tls"]["issuer"]
        .as_str()
        .unwrap()
        .contains("Monitor Manager Test CA"));

    let url = format!("tls://localhost:{}", self_signed.port);
    let id = created(&app, &url, json!({})).await;
    let (result, _) = check_now(&app, id).await;
    assert_eq!(result["status"], "DOWN", "{result}");
    assert_eq!(
        result["error"],
        "TLS failure: certificate not trusted (unknown issuer or self-signed)"
    );
    let id = created(
        &app,
        &url,
        json!({"ignore_tls": true, "assertions": [{"source": "CERT_EXPIRES_IN_DAYS", "comparison": "LESS_THAN", "target": "30"}]}),
    )
    .await;
    let (result, _) = check_now(&app, id).await;
    assert_eq!(
        result["status"], "DOWN",
        "the handshake is accepted but the assertion fails: {result}"
    );
    assert!(
        result["error"]
            .as_str()
            .unwrap()
            .starts_with("assertion failed: CERT_EXPIRES_IN_DAYS LESS_THAN"),
        "{result}"
    );
    assert!(
        result["tls"]["days_left"].as_i64().unwrap() >= 88,
        "{result}"
    );

    // A plain TCP monitor on a TLS port only connects.
    let id = created(
        &app,
        &format!("tcp://localhost:{}", self_signed.port),
        json!({}),
    )
    .await;
    let (result, _) = check_now(&app, id).await;
    assert_eq!(result["status"], "UP", "{result}");
    assert_eq!(result["tls"], Value::Null);
}

async fn tcp_targets_obey_the_target_policy(backend: Backend) {
    let (open, _server) = open_port().await;
    let Some(app) = App::spawn_with(BIN, backend, &[("BLOCK_PRIVATE_NETWORKS", "true")]).await
    else {
        return;
    };
    for form in [
        "127.0.0.1",
        "127.1",
        "2130706433",
        "[::ffff:127.0.0.1]",
        "10.1.2.3",
    ] {
        let url = format!("tcp://{form}:{open}");
        let (status, body) = create(&app, monitor(&url, json!({}))).await;
        assert_eq!(status, 400, "{url}: {body}");
        refused(&body, "url", "(BLOCK_PRIVATE_NETWORKS is on)");
    }
    let id = created(&app, &format!("tcp://localhost:{open}"), json!({})).await;
    let (result, _) = check_now(&app, id).await;
    assert_eq!(result["status"], "DOWN", "{result}");
    assert!(
        result["error"]
            .as_str()
            .unwrap()
            .starts_with("blocked by the target policy: "),
        "{result}"
    );
}

on_both_backends!(
    tcp_monitors_connect_and_say_why_not,
    tls_over_tcp_reads_the_certificate,
    tcp_targets_obey_the_target_policy,
);
