//! The WebSockets at their edges, through the binary over raw WebSocket: the close codes of
//! graphql-ws's PROTOCOL.md on `/graphql/ws` (both subprotocols), the per-connection
//! operation limit, queries and mutations over the socket and the codes their errors carry,
//! the message size limit (1009) and the `Origin` check on `/graphql/ws` and `/ws`,
//! keep-alive pings and dead peers (1001), and shutdown closing every socket with 1012
//! without `complete`. None of this depends on the database, so it runs on SQLite.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, http::HeaderValue, Message};

use crate::common::{App, Backend, BIN};

/// The longest any single expected thing may take before a test gives up on it.
const WAIT: Duration = Duration::from_secs(10);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

macro_rules! spawn_app {
    ($env:expr) => {
        match App::spawn_with(BIN, Backend::Sqlite, $env).await {
            Some(app) => app,
            None => return,
        }
    };
}

/// Opens `path` with an optional subprotocol and `Origin`; the handshake's error as is.
async fn try_open(
    app: &App,
    path: &str,
    protocol: Option<&str>,
    origin: Option<&str>,
) -> Result<Socket, tungstenite::Error> {
    let mut request = app.ws_url(path).into_client_request().expect("a request");
    if let Some(protocol) = protocol {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(protocol).unwrap(),
        );
    }
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("Origin", HeaderValue::from_str(origin).unwrap());
    }
    tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("WebSocket handshake in time")
        .map(|(socket, _)| socket)
}

async fn open(app: &App, path: &str, protocol: Option<&str>) -> Socket {
    try_open(app, path, protocol, None)
        .await
        .expect("WebSocket handshake")
}

/// What came over a socket.
#[derive(Debug)]
enum Frame {
    Json(Value),
    Ping,
    /// Close code and reason (`None`: the stream ended without a close frame).
    Closed(Option<(u16, String)>),
}

/// The next frame; `None` at the deadline.
async fn next_frame(socket: &mut Socket, deadline: Instant) -> Option<Frame> {
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .ok()?;
        return Some(match frame {
            None | Some(Err(_)) => Frame::Closed(None),
            Some(Ok(Message::Close(frame))) => {
                Frame::Closed(frame.map(|f| (u16::from(f.code), f.reason.to_string())))
            }
            Some(Ok(Message::Text(text))) => Frame::Json(
                serde_json::from_str(text.as_str()).unwrap_or_else(|_| panic!("not JSON: {text}")),
            ),
            Some(Ok(Message::Ping(_))) => Frame::Ping,
            Some(Ok(_)) => continue,
        });
    }
}

/// The next JSON message, skipping pings and `ka`; fails on close or the deadline.
async fn next_json(socket: &mut Socket) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        match next_frame(socket, deadline).await {
            Some(Frame::Json(value)) if value["type"] == "ka" => continue,
            Some(Frame::Json(value)) => return value,
            Some(Frame::Ping) => continue,
            Some(Frame::Closed(close)) => panic!("the socket closed: {close:?}"),
            None => panic!("no message in time"),
        }
    }
}

/// The close frame that ends the socket, skipping anything before it; fails at `within`.
async fn close_of(socket: &mut Socket, within: Duration) -> (u16, String) {
    let deadline = Instant::now() + within;
    loop {
        match next_frame(socket, deadline).await {
            Some(Frame::Closed(Some(close))) => return close,
            Some(Frame::Closed(None)) => panic!("the socket ended without a close frame"),
            Some(_) => continue,
            None => panic!("the socket was not closed within {within:?}"),
        }
    }
}

async fn send(socket: &mut Socket, value: Value) {
    socket
        .send(Message::text(value.to_string()))
        .await
        .expect("send");
}

/// Opens `/graphql/ws` with `protocol` and completes `connection_init` / `connection_ack`.
async fn connected(app: &App, protocol: &str) -> Socket {
    let mut socket = open(app, "/graphql/ws", Some(protocol)).await;
    send(
        &mut socket,
        json!({"type": "connection_init", "payload": {}}),
    )
    .await;
    let ack = next_json(&mut socket).await;
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    socket
}

/// Sends a graphql-transport-ws ping and returns every message before its pong: messages
/// are handled in order, so everything sent before the ping has been answered by then.
async fn until_pong(socket: &mut Socket) -> Vec<Value> {
    send(socket, json!({"type": "ping", "payload": {"n": 1}})).await;
    let mut before = Vec::new();
    loop {
        let message = next_json(socket).await;
        if message["type"] == "pong" {
            assert_eq!(
                message["payload"],
                json!({"n": 1}),
                "the pong echoes the payload"
            );
            return before;
        }
        before.push(message);
    }
}

fn subscribe(id: &str, query: &str) -> Value {
    json!({"id": id, "type": "subscribe", "payload": {"query": query}})
}

const LIVE: &str = "subscription { checkResults { id } }";

// ---------------------------------------------------------------------------------------------
// Close codes
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_never_sends_connection_init_is_closed_4408_after_the_init_timeout() {
    let app = spawn_app!(&[("WS_INIT_TIMEOUT_SECONDS", "1")]);
    for protocol in ["graphql-transport-ws", "graphql-ws"] {
        let started = Instant::now();
        let mut socket = open(&app, "/graphql/ws", Some(protocol)).await;
        let close = close_of(&mut socket, WAIT).await;
        assert_eq!(
            close,
            (4408, "Connection initialisation timeout".to_owned()),
            "{protocol}"
        );
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(5),
            "{protocol}: closed after {took:?}"
        );
    }
    // A socket that did send it in time stays open past the timeout.
    let mut socket = connected(&app, "graphql-transport-ws").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(until_pong(&mut socket).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_violations_close_with_the_codes_of_graphql_ws_protocol_md() {
    let app = spawn_app!(&[]);
    for protocol in ["graphql-transport-ws", "graphql-ws"] {
        let start = if protocol == "graphql-ws" {
            "start"
        } else {
            "subscribe"
        };
        let operation = |id: &str| json!({"id": id, "type": start, "payload": {"query": LIVE}});

        // An operation before connection_init: 4401.
        let mut socket = open(&app, "/graphql/ws", Some(protocol)).await;
        send(&mut socket, operation("1")).await;
        assert_eq!(
            close_of(&mut socket, WAIT).await,
            (4401, "Unauthorized".into()),
            "{protocol}"
        );

        // A message that is not JSON, and one of an unknown type: 4400 with the reason.
        for bad in [
            "{not json",
            r#"{"type": "nonsense"}"#,
            r#"{"type": "subscribe"}"#,
        ] {
            let mut socket = connected(&app, protocol).await;
            socket.send(Message::text(bad)).await.unwrap();
            let (code, reason) = close_of(&mut socket, WAIT).await;
            assert_eq!(code, 4400, "{protocol}: {bad}");
            assert!(
                reason.starts_with("Invalid message received: ") && reason.len() > 26,
                "{protocol}: {bad}: reason {reason:?}"
            );
        }

        // A second connection_init: 4429.
        let mut socket = connected(&app, protocol).await;
        send(&mut socket, json!({"type": "connection_init"})).await;
        assert_eq!(
            close_of(&mut socket, WAIT).await,
            (4429, "Too many initialisation requests".into()),
            "{protocol}"
        );

        // An id already open: 4409, naming it.
        let mut socket = connected(&app, protocol).await;
        send(&mut socket, operation("dup")).await;
        send(&mut socket, operation("dup")).await;
        assert_eq!(
            close_of(&mut socket, WAIT).await,
            (4409, "Subscriber for dup already exists".into()),
            "{protocol}"
        );
    }

    // Neither subprotocol offered: accepted, then 4406.
    let mut socket = open(&app, "/graphql/ws", None).await;
    assert_eq!(
        close_of(&mut socket, WAIT).await,
        (4406, "Subprotocol not acceptable".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_connection_terminate_closes_normally_and_stop_is_confirmed_with_complete() {
    let app = spawn_app!(&[]);
    let mut socket = connected(&app, "graphql-ws").await;
    send(
        &mut socket,
        json!({"id": "a", "type": "start", "payload": {"query": LIVE}}),
    )
    .await;
    send(&mut socket, json!({"id": "a", "type": "stop"})).await;
    let complete = next_json(&mut socket).await;
    assert_eq!(complete, json!({"type": "complete", "id": "a"}));
    // The id is free again.
    send(
        &mut socket,
        json!({"id": "a", "type": "start", "payload": {"query": LIVE}}),
    )
    .await;
    send(&mut socket, json!({"type": "connection_terminate"})).await;
    assert_eq!(close_of(&mut socket, WAIT).await.0, 1000);
}

// ---------------------------------------------------------------------------------------------
// Operations and their errors
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operation_beyond_the_limit_gets_an_error_naming_it_and_the_connection_stays() {
    let app = spawn_app!(&[("WS_MAX_SUBSCRIPTIONS", "2")]);
    let mut socket = connected(&app, "graphql-transport-ws").await;
    send(&mut socket, subscribe("1", LIVE)).await;
    send(&mut socket, subscribe("2", LIVE)).await;
    send(&mut socket, subscribe("3", LIVE)).await;
    let before = until_pong(&mut socket).await;
    assert_eq!(before.len(), 1, "only the third is answered: {before:?}");
    let error = &before[0];
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["id"], "3", "{error}");
    let message = error["payload"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("at most 2") && message.contains("WS_MAX_SUBSCRIPTIONS"),
        "{message}"
    );
    assert_eq!(error["payload"][0]["extensions"]["code"], "BAD_USER_INPUT");

    // Completing one makes room: the same id is accepted now, and nothing else came.
    send(&mut socket, json!({"id": "1", "type": "complete"})).await;
    send(&mut socket, subscribe("3", LIVE)).await;
    assert!(until_pong(&mut socket).await.is_empty());

    // The legacy protocol answers the same with a single error.
    let mut legacy = connected(&app, "graphql-ws").await;
    for id in ["1", "2", "3"] {
        send(
            &mut legacy,
            json!({"id": id, "type": "start", "payload": {"query": LIVE}}),
        )
        .await;
    }
    let error = next_json(&mut legacy).await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["id"], "3", "{error}");
    assert_eq!(
        error["payload"]["extensions"]["code"], "BAD_USER_INPUT",
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_and_mutations_run_over_the_socket_and_every_error_carries_a_code() {
    let app = spawn_app!(&[]);
    let mut socket = connected(&app, "graphql-transport-ws").await;

    // A mutation and a query: `next`, then `complete`.
    send(
        &mut socket,
        json!({"id": "m", "type": "subscribe", "payload": {
            "query": "mutation($input: CreateMonitorInput!) { createMonitor(input: $input) { id name } }",
            "variables": {"input": {"name": "over ws", "url": "http://127.0.0.1:9/", "timeoutSeconds": 5, "intervalSeconds": 60, "active": false}},
        }}),
    )
    .await;
    let next = next_json(&mut socket).await;
    assert_eq!(next["type"], "next", "{next}");
    assert_eq!(next["id"], "m");
    assert_eq!(next["payload"]["data"]["createMonitor"]["name"], "over ws");
    assert!(next["payload"].get("errors").is_none(), "{next}");
    assert_eq!(
        next_json(&mut socket).await,
        json!({"type": "complete", "id": "m"})
    );

    send(
        &mut socket,
        subscribe("q", "{ monitors(first: 10) { nodes { name } } }"),
    )
    .await;
    let next = next_json(&mut socket).await;
    assert_eq!(
        next["payload"]["data"]["monitors"]["nodes"],
        json!([{"name": "over ws"}]),
        "{next}"
    );
    assert_eq!(
        next_json(&mut socket).await,
        json!({"type": "complete", "id": "q"})
    );

    // A document that does not parse or validate: `error` with the list, no `complete`.
    for (id, query, message) in [
        (
            "syntax",
            "subscription { checkResults { id ",
            "syntax error",
        ),
        ("unknown", "subscription { noSuchField }", "noSuchField"),
        (
            "complex",
            "{ monitors(first: 1000) { nodes { checkResults(first: 1000) { nodes { id } } } } }",
            "the limit is 10000",
        ),
    ] {
        send(&mut socket, subscribe(id, query)).await;
        let before = until_pong(&mut socket).await;
        assert_eq!(before.len(), 1, "{before:?}");
        let error = &before[0];
        assert_eq!(error["type"], "error", "{error}");
        assert_eq!(error["id"], id);
        assert_eq!(
            error["payload"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{error}"
        );
        assert!(
            error["payload"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains(message)),
            "{error}"
        );
    }

    // A subscription whose resolver fails: its error keeps the resolver's code.
    send(
        &mut socket,
        subscribe(
            "missing",
            r#"subscription { checkResults(monitorId: "999999") { id } }"#,
        ),
    )
    .await;
    let before = until_pong(&mut socket).await;
    let error = before
        .iter()
        .find(|m| m["id"] == "missing" && m["type"] != "complete")
        .unwrap_or_else(|| panic!("no answer for `missing`: {before:?}"));
    let errors = if error["type"] == "error" {
        &error["payload"]
    } else {
        &error["payload"]["errors"]
    };
    assert_eq!(errors[0]["extensions"]["code"], "NOT_FOUND", "{error}");

    // The legacy protocol: `data` with the errors, then `complete`, as its server did.
    let mut legacy = connected(&app, "graphql-ws").await;
    send(
        &mut legacy,
        json!({"id": "bad", "type": "start", "payload": {"query": "subscription { noSuchField }"}}),
    )
    .await;
    let data = next_json(&mut legacy).await;
    assert_eq!(data["type"], "data", "{data}");
    assert_eq!(
        data["payload"]["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{data}"
    );
    assert_eq!(
        next_json(&mut legacy).await,
        json!({"type": "complete", "id": "bad"})
    );
}

// ---------------------------------------------------------------------------------------------
// Size, origin, keep-alive
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_64_kib_closes_either_socket_with_1009() {
    let app = spawn_app!(&[]);
    let big = format!(
        r#"{{"id":"x","type":"subscribe","payload":{{"query":"{}"}}}}"#,
        " ".repeat(70 * 1024)
    );
    let mut graphql = connected(&app, "graphql-transport-ws").await;
    graphql.send(Message::text(big.clone())).await.unwrap();
    let (code, reason) = close_of(&mut graphql, WAIT).await;
    assert_eq!(code, 1009, "{reason}");
    assert!(reason.contains("65536"), "{reason}");

    let mut seed = open(&app, "/ws", None).await;
    seed.send(Message::text(big)).await.unwrap();
    assert_eq!(close_of(&mut seed, WAIT).await.0, 1009);

    // A message under the limit is served as usual.
    let mut graphql = connected(&app, "graphql-transport-ws").await;
    let padded = json!({"id": "q", "type": "subscribe", "payload": {
        "query": "{ monitors(first: 1) { nodes { id } } }",
        "extensions": {"padding": "x".repeat(60 * 1024)},
    }});
    send(&mut graphql, padded).await;
    assert_eq!(next_json(&mut graphql).await["type"], "next");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_from_a_foreign_origin_get_403_json_and_allowed_origins_upgrade() {
    let app = spawn_app!(&[("CORS_ALLOWED_ORIGINS", "https://app.example.com")]);
    let own = app.base.clone();
    for (path, protocol) in [("/graphql/ws", Some("graphql-transport-ws")), ("/ws", None)] {
        match try_open(&app, path, protocol, Some("https://evil.example")).await {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 403, "{path}");
                let body: Value =
                    serde_json::from_slice(response.body().as_deref().unwrap_or_default())
                        .expect("a JSON body");
                assert!(body["error"].as_str().unwrap().contains("Origin"), "{body}");
            }
            Err(other) => panic!("{path}: {other}"),
            Ok(_) => panic!("{path}: a foreign origin was upgraded"),
        }
        for origin in ["https://app.example.com", own.as_str()] {
            try_open(&app, path, protocol, Some(origin))
                .await
                .unwrap_or_else(|err| panic!("{path} from {origin}: {err}"));
        }
    }
}

/// Reads `socket` for `span`, counting pings and `ka` messages; anything else fails.
async fn beats(name: &str, socket: &mut Socket, span: Duration) -> (u32, u32) {
    let deadline = Instant::now() + span;
    let (mut pings, mut kas) = (0, 0);
    while let Some(frame) = next_frame(socket, deadline).await {
        match frame {
            Frame::Ping => pings += 1,
            Frame::Json(value) if value["type"] == "ka" => kas += 1,
            other => panic!("{name}: {other:?}"),
        }
    }
    (pings, kas)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_pings_arrive_every_interval_and_an_answering_peer_stays() {
    let app = spawn_app!(&[("WS_KEEPALIVE_SECONDS", "1")]);
    let mut modern = connected(&app, "graphql-transport-ws").await;
    let mut legacy = connected(&app, "graphql-ws").await;
    let mut seed = open(&app, "/ws", None).await;
    // Reading answers each ping with a pong, so each peer stays alive for 3.5 intervals.
    let span = Duration::from_millis(3500);
    let (modern_beats, legacy_beats, seed_beats) = tokio::join!(
        beats("graphql-transport-ws", &mut modern, span),
        beats("graphql-ws", &mut legacy, span),
        beats("/ws", &mut seed, span),
    );
    assert!(
        modern_beats.0 >= 3 && modern_beats.1 == 0,
        "{modern_beats:?}"
    );
    assert!(seed_beats.0 >= 3 && seed_beats.1 == 0, "{seed_beats:?}");
    // `ka` follows the ack at once, then comes with every ping.
    assert!(
        legacy_beats.0 >= 3 && legacy_beats.1 >= 3,
        "{legacy_beats:?}"
    );
    assert!(until_pong(&mut modern).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_silent_for_two_keep_alive_intervals_is_closed_1001() {
    let app = spawn_app!(&[("WS_KEEPALIVE_SECONDS", "1")]);
    let mut graphql = connected(&app, "graphql-transport-ws").await;
    let mut seed = open(&app, "/ws", None).await;
    // Not reading: the pings go unanswered.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    for socket in [&mut graphql, &mut seed] {
        let (code, reason) = close_of(socket, WAIT).await;
        assert_eq!(code, 1001, "{reason}");
        assert!(reason.contains("keep-alive"), "{reason}");
    }
}

// ---------------------------------------------------------------------------------------------
// Shutdown
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_every_socket_1012_without_completing_subscriptions() {
    let mut app = spawn_app!(&[]);
    let mut modern = connected(&app, "graphql-transport-ws").await;
    send(&mut modern, subscribe("live", LIVE)).await;
    assert!(until_pong(&mut modern).await.is_empty());
    let mut legacy = connected(&app, "graphql-ws").await;
    send(
        &mut legacy,
        json!({"id": "live", "type": "start", "payload": {"query": LIVE}}),
    )
    .await;
    let mut seed = open(&app, "/ws", None).await;
    // Let the legacy start be handled before the signal.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let status = tokio::task::block_in_place(|| app.terminate());
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        app.log()
    );

    for (name, socket) in [
        ("graphql-transport-ws", &mut modern),
        ("graphql-ws", &mut legacy),
        ("/ws", &mut seed),
    ] {
        let deadline = Instant::now() + WAIT;
        loop {
            match next_frame(socket, deadline).await {
                Some(Frame::Closed(close)) => {
                    assert_eq!(close, Some((1012, "service restart".into())), "{name}");
                    break;
                }
                Some(Frame::Json(value)) => {
                    assert_ne!(value["type"], "complete", "{name}: {value}");
                }
                Some(Frame::Ping) => {}
                None => panic!("{name}: not closed"),
            }
        }
    }
}
