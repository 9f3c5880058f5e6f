//! Checks end to end, against a target server inside the test process: manual checks and how
//! each kind of failure is classified, check history and its paging, the scheduler's rhythm
//! and pausing, live results over GraphQL subscriptions (both WebSocket subprotocols) and the
//! second seed's `/ws`, the `/services` shapes, and a graceful shutdown with subscribers
//! connected. Everything runs on SQLite and on PostgreSQL, and talks only to 127.0.0.1.

mod common;
#[path = "common/target.rs"]
mod target;

use std::{
    collections::{BTreeSet, HashMap},
    future::Future,
    time::Duration,
};

use chrono::{DateTime, Utc};
use common::{App, Backend};
use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{json, Value};
use target::Target;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{
    client::IntoClientRequest, http::HeaderValue, protocol::frame::coding::CloseCode, Message,
};

/// The longest any single expected thing may take before a test gives up on it.
const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

macro_rules! spawn_app {
    ($backend:expr) => {
        match App::spawn($backend).await {
            Some(app) => app,
            None => return,
        }
    };
}

/// `POST /monitors/{id}/check`: the stored result and how long the request took.
async fn check_now(app: &App, id: i64) -> (Value, Duration) {
    let started = Instant::now();
    let (status, body) = app
        .json(Method::POST, &format!("/monitors/{id}/check"), None)
        .await;
    let took = started.elapsed();
    assert_eq!(status, 200, "manual check of monitor {id} failed: {body}");
    assert_eq!(body["monitor_id"], id, "{body}");
    (body, took)
}

const RUN_CHECK: &str = "mutation($id: ID!) { runCheck(id: $id) { id monitorId status statusCode responseTimeMs error checkedAt } }";

/// GraphQL `runCheck`: the result's fields.
async fn run_check_gql(app: &App, id: i64) -> Value {
    let body = app.graphql(RUN_CHECK, json!({"id": id.to_string()})).await;
    assert!(body["errors"].is_null(), "runCheck failed: {body}");
    let result = body["data"]["runCheck"].clone();
    assert_eq!(result["monitorId"], id.to_string(), "{body}");
    result
}

/// A GraphQL `ID` (a string) or a REST id (a number) as an integer.
fn int_id(value: &Value) -> i64 {
    match value {
        Value::Number(n) => n.as_i64().expect("integer id"),
        Value::String(s) => s.parse().expect("numeric id"),
        other => panic!("not an id: {other}"),
    }
}

fn timestamp(value: &Value) -> DateTime<Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {value}"));
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|err| panic!("{text:?} is not RFC 3339: {err}"))
        .with_timezone(&Utc)
}

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect()
}

fn key_set<'a>(names: &[&'a str]) -> BTreeSet<&'a str> {
    names.iter().copied().collect()
}

/// Polls `probe` every 50 ms until it returns `Some`, or panics after `within`.
async fn eventually<T, F, Fut>(within: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many results a monitor has, straight from the database.
async fn stored_results(db: &DatabaseConnection, monitor_id: i64) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM check_results WHERE monitor_id = {monitor_id}"),
        ))
        .await
        .expect("count query")
        .expect("a row");
    row.try_get("", "n").expect("count column")
}

/// The `error` column of one stored result.
async fn stored_error(db: &DatabaseConnection, result_id: i64) -> Option<String> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT error FROM check_results WHERE id = {result_id}"),
        ))
        .await
        .expect("error query")
        .expect("the stored result");
    row.try_get("", "error").expect("error column")
}

async fn history(app: &App, id: i64, limit: u32) -> Vec<Value> {
    let (status, body) = app
        .json(
            Method::GET,
            &format!("/monitors/{id}/check?limit={limit}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body.as_array().expect("an array").clone()
}

async fn monitor(app: &App, id: i64) -> Value {
    let (status, body) = app
        .json(Method::GET, &format!("/monitors/{id}"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn assert_down_without_response(result: &Value, needle: &str) {
    assert_eq!(result["status"], "DOWN", "{result}");
    assert_eq!(result["status_code"], Value::Null, "{result}");
    let error = result["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{result}"));
    assert!(
        error.contains(needle),
        "error {error:?} should mention {needle:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// GraphQL over WebSocket
// ---------------------------------------------------------------------------------------------

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket, optionally asking for a subprotocol.
async fn open_socket(url: String, protocol: Option<&'static str>) -> Socket {
    let mut request = url.into_client_request().expect("a WebSocket request");
    if let Some(protocol) = protocol {
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(protocol));
    }
    let (socket, response) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("WebSocket handshake in time")
        .expect("WebSocket handshake");
    if let Some(protocol) = protocol {
        assert_eq!(
            response
                .headers()
                .get("sec-websocket-protocol")
                .map(|v| v.to_str().unwrap()),
            Some(protocol),
            "the server accepts the subprotocol"
        );
    }
    socket
}

/// What came over a GraphQL WebSocket.
#[derive(Debug)]
enum Incoming {
    /// `next` (graphql-transport-ws) or `data` (graphql-ws): subscription id and `data`.
    Data(String, Value),
    /// `complete` for a subscription id.
    Complete(String),
    /// A close frame, or the end of the stream.
    Closed(Option<CloseCode>),
}

/// A GraphQL-over-WebSocket client for both subprotocols.
struct GraphqlWs {
    socket: Socket,
    legacy: bool,
}

impl GraphqlWs {
    /// Connects with `graphql-transport-ws` or `graphql-ws` and completes the handshake.
    async fn connect(app: &App, protocol: &'static str) -> Self {
        let socket = open_socket(app.ws_url("/graphql/ws"), Some(protocol)).await;
        let mut this = Self {
            socket,
            legacy: protocol == "graphql-ws",
        };
        this.send(json!({"type": "connection_init", "payload": {}}))
            .await;
        let ack = this.recv_json(Instant::now() + WAIT).await;
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        this
    }

    async fn send(&mut self, value: Value) {
        self.socket
            .send(Message::text(value.to_string()))
            .await
            .expect("send over the WebSocket");
    }

    /// Starts a subscription (`subscribe`, or `start` in the legacy protocol).
    async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        let kind = if self.legacy { "start" } else { "subscribe" };
        self.send(json!({
            "id": id,
            "type": kind,
            "payload": {"query": query, "variables": variables},
        }))
        .await;
    }

    /// The next JSON message; panics at the deadline or on a non-JSON frame.
    async fn recv_json(&mut self, deadline: Instant) -> Value {
        match self.recv(deadline).await {
            Some(Ok(value)) => value,
            Some(Err(closed)) => panic!("the socket closed: {closed:?}"),
            None => panic!("no message before the deadline"),
        }
    }

    /// The next JSON text message, `Err` when the socket closed, `None` at the deadline.
    async fn recv(&mut self, deadline: Instant) -> Option<Result<Value, Option<CloseCode>>> {
        loop {
            let frame = match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => return None,
                Ok(frame) => frame,
            };
            match frame {
                None | Some(Err(_)) => return Some(Err(None)),
                Some(Ok(Message::Close(frame))) => return Some(Err(frame.map(|f| f.code))),
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(text.as_str())
                        .unwrap_or_else(|_| panic!("not JSON: {text}"));
                    return Some(Ok(value));
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The next subscription message, answering pings and skipping keep-alives; `None` at the
    /// deadline. A GraphQL error in a payload fails the test.
    async fn next(&mut self, deadline: Instant) -> Option<Incoming> {
        loop {
            let value = match self.recv(deadline).await? {
                Ok(value) => value,
                Err(code) => return Some(Incoming::Closed(code)),
            };
            let id = value["id"].as_str().unwrap_or_default().to_owned();
            match value["type"].as_str().unwrap_or_default() {
                "next" | "data" => {
                    let expected = if self.legacy { "data" } else { "next" };
                    assert_eq!(value["type"], expected, "message type of this protocol");
                    let payload = &value["payload"];
                    assert!(
                        payload["errors"].is_null(),
                        "subscription {id} got errors: {value}"
                    );
                    return Some(Incoming::Data(id, payload["data"].clone()));
                }
                "complete" => return Some(Incoming::Complete(id)),
                "ping" => self.send(json!({"type": "pong"})).await,
                "ka" | "pong" => {}
                _ => panic!("unexpected message: {value}"),
            }
        }
    }

    /// The next data message; fails the test on `complete`, close or the deadline.
    async fn next_data(&mut self, deadline: Instant) -> Option<(String, Value)> {
        match self.next(deadline).await? {
            Incoming::Data(id, data) => Some((id, data)),
            other => panic!("expected subscription data, got {other:?}"),
        }
    }

    /// Subscriptions start asynchronously, with no acknowledgement. Runs `probe` (a check
    /// whose result every subscription in `ids` will see) until each has delivered something,
    /// and returns the highest result id involved: anything up to it is warm-up traffic.
    async fn wait_until_live<F, Fut>(&mut self, ids: &[&str], mut probe: F) -> i64
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = i64>,
    {
        let give_up = Instant::now() + WAIT * 2;
        let mut seen = BTreeSet::new();
        let mut last_probe = 0;
        while seen.len() < ids.len() {
            assert!(
                Instant::now() < give_up,
                "subscriptions {ids:?} never went live"
            );
            last_probe = last_probe.max(probe().await);
            let window = Instant::now() + Duration::from_millis(1500);
            while seen.len() < ids.len() {
                let Some((id, data)) = self.next_data(window).await else {
                    break;
                };
                last_probe = last_probe.max(result_id_of(&data));
                seen.insert(id);
            }
        }
        last_probe
    }
}

/// The check result id in a subscription payload (`checkResults` or `statusChanges`).
fn result_id_of(data: &Value) -> i64 {
    if let Some(result) = data.get("checkResults") {
        int_id(&result["id"])
    } else if let Some(change) = data.get("statusChanges") {
        int_id(&change["checkResult"]["id"])
    } else {
        panic!("unexpected subscription data: {data}")
    }
}

/// Reads the next JSON text frame of the second seed's `/ws`; `None` at the deadline.
async fn next_ws_frame(socket: &mut Socket, deadline: Instant) -> Option<Value> {
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .ok()?;
        match frame {
            Some(Ok(Message::Text(text))) => {
                return Some(
                    serde_json::from_str(text.as_str())
                        .unwrap_or_else(|_| panic!("/ws sent a frame that is not JSON: {text}")),
                )
            }
            Some(Ok(Message::Close(frame))) => panic!("/ws closed: {frame:?}"),
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => panic!("/ws ended"),
        }
    }
}

/// Opens the second seed's `/ws` and waits until it delivers: the server subscribes after the
/// handshake, so `probe` is checked until its frames flow.
async fn open_live_seed_ws(app: &App, probe: i64) -> Socket {
    let mut socket = open_socket(app.ws_url("/ws"), None).await;
    let give_up = Instant::now() + WAIT * 2;
    loop {
        assert!(Instant::now() < give_up, "/ws never sent anything");
        check_now(app, probe).await;
        let window = Instant::now() + Duration::from_millis(1500);
        while let Some(frame) = next_ws_frame(&mut socket, window).await {
            if frame["service_id"] == probe {
                return socket;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Manual checks
// ---------------------------------------------------------------------------------------------

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
        .create_monitor(&target::refused_url(), 60, 5, false)
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

// ---------------------------------------------------------------------------------------------
// History
// ---------------------------------------------------------------------------------------------

const PAGE: &str = "query($id: ID!, $first: Int, $after: String) {
    checkResults(monitorId: $id, first: $first, after: $after) {
        edges { cursor node { id monitorId status } }
        nodes { id }
        pageInfo { hasNextPage endCursor }
    }
}";

async fn page_of_results(app: &App, id: i64, first: i32, after: Option<&str>) -> Value {
    let body = app
        .graphql(
            PAGE,
            json!({"id": id.to_string(), "first": first, "after": after}),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["checkResults"].clone()
}

fn page_ids(page: &Value) -> Vec<i64> {
    let from_edges: Vec<i64> = page["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| int_id(&e["node"]["id"]))
        .collect();
    let from_nodes: Vec<i64> = page["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| int_id(&n["id"]))
        .collect();
    assert_eq!(from_edges, from_nodes, "edges and nodes agree: {page}");
    from_edges
}

async fn history_lists_newest_first_pages_stably_and_moves_the_monitors_last_status(
    backend: Backend,
) {
    let target = Target::start().await;
    let app = spawn_app!(backend);
    let id = app.create_monitor(&target.url("/flip"), 60, 5, false).await;
    let other = app.create_monitor(&target.url("/ok"), 60, 5, false).await;

    // Five checks, UP UP DOWN UP DOWN, interleaved with another monitor's; after each, the
    // monitor's last_status and last_checked_at are the newest result's.
    let mut ids = Vec::new();
    for (n, code) in [200u16, 200, 500, 200, 500].into_iter().enumerate() {
        target.set_flip(code);
        let result = if n % 2 == 0 {
            check_now(&app, id).await.0
        } else {
            let gql = run_check_gql(&app, id).await;
            json!({"id": int_id(&gql["id"]), "status": gql["status"], "checked_at": gql["checkedAt"]})
        };
        let expected = if code == 200 { "UP" } else { "DOWN" };
        assert_eq!(result["status"], expected, "{result}");
        ids.push(result["id"].as_i64().unwrap());
        let current = monitor(&app, id).await;
        assert_eq!(current["last_status"], expected, "{current}");
        assert_eq!(
            timestamp(&current["last_checked_at"]),
            timestamp(&result["checked_at"]),
            "last_checked_at follows the newest result: {current} vs {result}"
        );
        check_now(&app, other).await;
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    let newest_first: Vec<i64> = ids.iter().rev().copied().collect();

    // REST: the two newest, newest first; without a limit, all of them.
    let two = history(&app, id, 2).await;
    let two_ids: Vec<i64> = two.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(two_ids, newest_first[..2]);
    assert!(two.iter().all(|r| r["monitor_id"] == id));
    let (status, all) = app
        .json(Method::GET, &format!("/monitors/{id}/check"), None)
        .await;
    assert_eq!(status, 200);
    let all_ids: Vec<i64> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(all_ids, newest_first, "only this monitor's, newest first");
    let times: Vec<DateTime<Utc>> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| timestamp(&r["checked_at"]))
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");

    // GraphQL: pages of two, newest first; a result added between pages does not shift the
    // next page.
    let first = page_of_results(&app, id, 2, None).await;
    assert_eq!(page_ids(&first), newest_first[..2]);
    assert_eq!(first["pageInfo"]["hasNextPage"], true);
    let cursor = first["pageInfo"]["endCursor"].as_str().unwrap().to_owned();
    assert_eq!(first["edges"][1]["cursor"], cursor.as_str());
    assert_eq!(first["edges"][0]["node"]["monitorId"], id.to_string());
    assert_eq!(first["edges"][0]["node"]["status"], "DOWN");

    target.set_flip(200);
    let (added, _) = check_now(&app, id).await;
    let added = added["id"].as_i64().unwrap();

    let second = page_of_results(&app, id, 2, Some(&cursor)).await;
    assert_eq!(
        page_ids(&second),
        newest_first[2..4],
        "no shift, no duplicate"
    );
    assert_eq!(second["pageInfo"]["hasNextPage"], true);
    let cursor = second["pageInfo"]["endCursor"].as_str().unwrap().to_owned();
    let third = page_of_results(&app, id, 2, Some(&cursor)).await;
    assert_eq!(page_ids(&third), newest_first[4..]);
    assert_eq!(third["pageInfo"]["hasNextPage"], false);

    let fresh = page_of_results(&app, id, 2, None).await;
    assert_eq!(page_ids(&fresh), vec![added, newest_first[0]]);

    // Monitor.checkResults and the monitor's status agree with the newest result.
    let body = app
        .graphql(
            "query($id: ID!) { monitor(id: $id) { lastStatus lastCheckedAt checkResults(first: 1) { nodes { id checkedAt } } } }",
            json!({"id": id.to_string()}),
        )
        .await;
    let found = &body["data"]["monitor"];
    assert_eq!(found["lastStatus"], "UP", "{body}");
    let newest = &found["checkResults"]["nodes"][0];
    assert_eq!(int_id(&newest["id"]), added);
    assert_eq!(
        timestamp(&found["lastCheckedAt"]),
        timestamp(&newest["checkedAt"])
    );

    // The second seed's logs: the same history, with its keys.
    let (status, logs) = app
        .json(Method::GET, &format!("/services/{id}/logs"), None)
        .await;
    assert_eq!(status, 200, "{logs}");
    let logs = logs.as_array().unwrap();
    assert_eq!(logs.len(), 6);
    for log in logs {
        assert_eq!(
            keys(log),
            key_set(&["ID", "ServiceID", "Status", "LatencyMs", "CheckedAt"]),
            "{log}"
        );
        assert_eq!(log["ServiceID"], id);
        assert!(log["LatencyMs"].as_i64().unwrap() >= 0);
        timestamp(&log["CheckedAt"]);
    }
    let log_ids: Vec<i64> = logs.iter().map(|l| l["ID"].as_i64().unwrap()).collect();
    let mut expected = vec![added];
    expected.extend(&newest_first);
    assert_eq!(log_ids, expected, "logs are newest first");
    assert_eq!(logs[0]["Status"], "UP");
    assert_eq!(logs[1]["Status"], "DOWN");
}

// ---------------------------------------------------------------------------------------------
// Scheduler
// ---------------------------------------------------------------------------------------------

async fn an_active_monitor_is_checked_every_interval_until_paused_and_at_once_when_resumed(
    backend: Backend,
) {
    let target = Target::start().await;
    let app = spawn_app!(backend);
    let db = app.db.connect().await;

    // Every second, over REST.
    let created = Instant::now();
    let every_second = app.create_monitor(&target.url("/ok"), 1, 5, true).await;
    // Hourly, over GraphQL: checked once at creation, then not for an hour.
    let body = app
        .graphql(
            "mutation($input: CreateMonitorInput!) { createMonitor(input: $input) { id active } }",
            json!({"input": {"name": "hourly", "url": target.url("/ok"), "timeoutSeconds": 5, "intervalSeconds": 3600}}),
        )
        .await;
    assert_eq!(body["data"]["createMonitor"]["active"], true, "{body}");
    let hourly = int_id(&body["data"]["createMonitor"]["id"]);

    tokio::time::sleep_until(created + Duration::from_millis(3500)).await;
    let n = stored_results(&db, every_second).await;
    assert!(
        (3..=5).contains(&n),
        "about one result a second: {n} after 3.5 s"
    );
    let results = history(&app, every_second, 100).await;
    assert!(results.len() as i64 >= n);
    assert!(results.iter().all(|r| r["status"] == "UP"));
    let mut times: Vec<DateTime<Utc>> = results
        .iter()
        .map(|r| timestamp(&r["checked_at"]))
        .collect();
    times.reverse();
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= chrono::Duration::milliseconds(500),
            "checks a second apart, not in bursts: {times:?}"
        );
    }
    assert_eq!(stored_results(&db, hourly).await, 1, "checked at creation");

    // Pause both: one over REST, one over GraphQL.
    let (status, paused) = app
        .json(
            Method::PUT,
            &format!("/monitors/{every_second}"),
            Some(json!({"name": "every second", "url": target.url("/ok"), "timeout_seconds": 5, "interval_seconds": 1, "active": false})),
        )
        .await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["active"], false);
    let paused_at = Utc::now();
    let body = app
        .graphql(
            "mutation($id: ID!) { updateMonitor(id: $id, input: {active: false}) { active } }",
            json!({"id": hourly.to_string()}),
        )
        .await;
    assert_eq!(body["data"]["updateMonitor"]["active"], false, "{body}");

    // A check already running when the pause came may still land; give it a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let settled = stored_results(&db, every_second).await;
    let quiet_from = Instant::now();

    // Resuming the hourly monitor checks it at once, not an hour later.
    let body = app
        .graphql(
            "mutation($id: ID!) { updateMonitor(id: $id, input: {active: true}) { active } }",
            json!({"id": hourly.to_string()}),
        )
        .await;
    assert_eq!(body["data"]["updateMonitor"]["active"], true, "{body}");
    eventually(
        Duration::from_secs(2),
        "a check right after resuming",
        || async { (stored_results(&db, hourly).await == 2).then_some(()) },
    )
    .await;

    tokio::time::sleep_until(quiet_from + Duration::from_millis(2500)).await;
    assert_eq!(
        stored_results(&db, every_second).await,
        settled,
        "a paused monitor gets no new results"
    );
    let latest = history(&app, every_second, 1).await;
    let started = timestamp(&latest[0]["checked_at"]);
    assert!(
        started <= paused_at + chrono::Duration::milliseconds(250),
        "no check started after the pause: {started} vs paused at {paused_at}"
    );
    assert_eq!(monitor(&app, every_second).await["active"], false);
    assert_eq!(stored_results(&db, hourly).await, 2, "still hourly");
    let _ = db.close().await;
}

// ---------------------------------------------------------------------------------------------
// Subscriptions
// ---------------------------------------------------------------------------------------------

async fn check_results_subscription_over_graphql_transport_ws_delivers_only_that_monitors_results(
    backend: Backend,
) {
    let target = Target::start().await;
    let app = spawn_app!(backend);
    let x = app.create_monitor(&target.url("/ok"), 60, 5, false).await;
    let y = app
        .create_monitor(&target.url("/status/503"), 60, 5, false)
        .await;

    let mut ws = GraphqlWs::connect(&app, "graphql-transport-ws").await;
    ws.subscribe(
        "only-x",
        "subscription($id: ID) { checkResults(monitorId: $id) { id monitorId status statusCode } }",
        json!({"id": x.to_string()}),
    )
    .await;
    ws.subscribe(
        "all",
        "subscription { checkResults { id monitorId status statusCode } }",
        json!({}),
    )
    .await;
    let warm_up = ws
        .wait_until_live(&["only-x", "all"], || async {
            check_now(&app, x).await.0["id"].as_i64().unwrap()
        })
        .await;

    // Y, X, Y, X, Y, X, over REST and GraphQL.
    let mut expected_x = Vec::new();
    let mut expected_all = Vec::new();
    for round in 0..3 {
        for monitor in [y, x] {
            let result_id = if round == 1 {
                int_id(&run_check_gql(&app, monitor).await["id"])
            } else {
                check_now(&app, monitor).await.0["id"].as_i64().unwrap()
            };
            if monitor == x {
                expected_x.push(result_id);
            }
            expected_all.push((monitor, result_id));
        }
    }
    let last = *expected_x.last().unwrap();

    // Both streams are ordered, so once both have delivered the last check, all is in.
    let mut got: HashMap<String, Vec<Value>> = HashMap::new();
    let deadline = Instant::now() + WAIT;
    let done = |got: &HashMap<String, Vec<Value>>| {
        ["only-x", "all"].iter().all(|sub| {
            got.get(*sub)
                .is_some_and(|items| items.iter().any(|r| int_id(&r["id"]) == last))
        })
    };
    while !done(&got) {
        let (sub, data) = ws
            .next_data(deadline)
            .await
            .unwrap_or_else(|| panic!("not all results arrived; got {got:?}"));
        let result = data["checkResults"].clone();
        if int_id(&result["id"]) > warm_up {
            got.entry(sub).or_default().push(result);
        }
    }

    let only_x = &got["only-x"];
    let ids: Vec<i64> = only_x.iter().map(|r| int_id(&r["id"])).collect();
    assert_eq!(ids, expected_x, "only monitor {x}'s results, in order");
    for result in only_x {
        assert_eq!(result["monitorId"], x.to_string());
        assert_eq!(result["status"], "UP");
        assert_eq!(result["statusCode"], 200);
    }
    let all: Vec<(i64, i64)> = got["all"]
        .iter()
        .map(|r| (int_id(&r["monitorId"]), int_id(&r["id"])))
        .collect();
    assert_eq!(
        all, expected_all,
        "the unfiltered subscription gets every check"
    );
    for result in &got["all"] {
        if int_id(&result["monitorId"]) == y {
            assert_eq!(result["status"], "DOWN");
            assert_eq!(result["statusCode"], 503);
        }
    }

    // A subscription to a monitor that does not exist is an error, not a silent stream.
    ws.subscribe(
        "ghost",
        "subscription { checkResults(monitorId: \"999999\") { id } }",
        json!({}),
    )
    .await;
    let message = ws.recv_json(Instant::now() + WAIT).await;
    assert_eq!(message["id"], "ghost", "{message}");
    let errors = if message["type"] == "error" {
        message["payload"].clone()
    } else {
        message["payload"]["errors"].clone()
    };
    assert_eq!(errors[0]["extensions"]["code"], "NOT_FOUND", "{message}");
}

async fn status_changes_subscription_over_legacy_graphql_ws_fires_on_first_result_and_each_flip_only(
    backend: Backend,
) {
    let target = Target::start().await;
    let app = spawn_app!(backend);
    // Every check of the probe is a status change (its target alternates 200 and 500).
    let probe = app
        .create_monitor(&target.url("/toggle"), 60, 5, false)
        .await;
    let x = app.create_monitor(&target.url("/flip"), 60, 5, false).await;

    let mut ws = GraphqlWs::connect(&app, "graphql-ws").await;
    ws.subscribe(
        "changes",
        "subscription { statusChanges { monitor { id lastStatus } oldStatus newStatus checkResult { id monitorId status statusCode } } }",
        json!({}),
    )
    .await;
    // The same, filtered to the probe: it must never see X.
    ws.subscribe(
        "probe-changes",
        "subscription($id: ID) { statusChanges(monitorId: $id) { monitor { id } oldStatus newStatus checkResult { id } } }",
        json!({"id": probe.to_string()}),
    )
    .await;
    let warm_up = ws
        .wait_until_live(&["changes", "probe-changes"], || async {
            check_now(&app, probe).await.0["id"].as_i64().unwrap()
        })
        .await;

    // first UP, UP, DOWN, DOWN, UP, UP: three changes.
    let mut changes = Vec::new();
    for (n, code) in [200u16, 200, 500, 500, 200, 200].into_iter().enumerate() {
        target.set_flip(code);
        let result_id = if n == 2 {
            int_id(&run_check_gql(&app, x).await["id"])
        } else {
            check_now(&app, x).await.0["id"].as_i64().unwrap()
        };
        if n % 2 == 0 {
            changes.push(result_id);
        }
    }
    // A last change of the probe marks the end: the stream is ordered, so every change of
    // X comes before it.
    let marker = check_now(&app, probe).await.0["id"].as_i64().unwrap();

    let deadline = Instant::now() + WAIT;
    let mut of_x = Vec::new();
    let mut probe_only = Vec::new();
    let mut markers_seen = BTreeSet::new();
    while markers_seen.len() < 2 {
        let (sub, data) = ws
            .next_data(deadline)
            .await
            .unwrap_or_else(|| panic!("the marker change never arrived; got {of_x:?}"));
        let change = data["statusChanges"].clone();
        let result_id = int_id(&change["checkResult"]["id"]);
        if result_id == marker {
            markers_seen.insert(sub);
            continue;
        }
        if result_id <= warm_up {
            continue;
        }
        match sub.as_str() {
            "changes" if int_id(&change["monitor"]["id"]) == x => of_x.push(change),
            "changes" => {}
            "probe-changes" => probe_only.push(change),
            other => panic!("data for an unknown subscription {other}"),
        }
    }
    assert!(
        probe_only.is_empty(),
        "statusChanges(monitorId: probe) delivered another monitor's changes: {probe_only:?}"
    );

    let seen: Vec<(Value, Value, i64)> = of_x
        .iter()
        .map(|c| {
            (
                c["oldStatus"].clone(),
                c["newStatus"].clone(),
                int_id(&c["checkResult"]["id"]),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (Value::Null, json!("UP"), changes[0]),
            (json!("UP"), json!("DOWN"), changes[1]),
            (json!("DOWN"), json!("UP"), changes[2]),
        ],
        "first result, UP->DOWN, DOWN->UP; nothing for UP->UP or DOWN->DOWN"
    );
    for change in &of_x {
        assert_eq!(change["monitor"]["id"], x.to_string());
        assert_eq!(change["monitor"]["lastStatus"], change["newStatus"]);
        assert_eq!(change["checkResult"]["monitorId"], x.to_string());
        assert_eq!(change["checkResult"]["status"], change["newStatus"]);
    }
    assert_eq!(of_x[1]["checkResult"]["statusCode"], 500);
}

async fn the_ws_endpoint_pushes_one_frame_per_check_with_the_seeds_keys(backend: Backend) {
    let target = Target::start().await;
    let app = spawn_app!(backend);
    let probe = app.create_monitor(&target.url("/ok"), 60, 5, false).await;
    let marker = app.create_monitor(&target.url("/ok"), 60, 5, false).await;
    let (status, service) = app
        .json(
            Method::POST,
            "/monitors",
            Some(json!({"name": "pushed service", "url": target.url("/flip"), "timeout_seconds": 5, "interval_seconds": 60, "active": false})),
        )
        .await;
    assert_eq!(status, 201, "{service}");
    let x = service["id"].as_i64().unwrap();

    let mut socket = open_live_seed_ws(&app, probe).await;

    target.set_flip(200);
    let (first, _) = check_now(&app, x).await;
    target.set_flip(500);
    let (second, _) = check_now(&app, x).await;
    let (third, _) = check_now(&app, x).await;
    check_now(&app, marker).await;

    let deadline = Instant::now() + WAIT;
    let mut frames = Vec::new();
    loop {
        let frame = next_ws_frame(&mut socket, deadline)
            .await
            .unwrap_or_else(|| panic!("the marker frame never arrived; got {frames:?}"));
        assert_eq!(
            keys(&frame),
            key_set(&["service_id", "name", "old_status", "new_status", "latency"]),
            "{frame}"
        );
        if frame["service_id"] == marker {
            break;
        }
        if frame["service_id"] == x {
            frames.push(frame);
        }
    }
    assert_eq!(frames.len(), 3, "one frame per check: {frames:?}");
    let transitions: Vec<(&Value, &Value)> = frames
        .iter()
        .map(|f| (&f["old_status"], &f["new_status"]))
        .collect();
    assert_eq!(
        transitions,
        vec![
            (&json!(""), &json!("UP")),
            (&json!("UP"), &json!("DOWN")),
            (&json!("DOWN"), &json!("DOWN")),
        ]
    );
    for (frame, result) in frames.iter().zip([&first, &second, &third]) {
        assert_eq!(frame["name"], "pushed service");
        assert_eq!(
            frame["latency"], result["response_time_ms"],
            "{frame} vs {result}"
        );
    }
}

/// Results stored together are published together, and each socket writes what is ready at
/// once in one go: every result still reaches both kinds of socket exactly once.
async fn results_stored_together_reach_every_socket_once_each(backend: Backend) {
    let target = Target::start().await;
    let app = spawn_app!(backend);
    let probe = app.create_monitor(&target.url("/ok"), 60, 5, false).await;
    let mut burst = Vec::new();
    for _ in 0..20 {
        burst.push(app.create_monitor(&target.url("/ok"), 60, 5, false).await);
    }

    let mut ws = GraphqlWs::connect(&app, "graphql-transport-ws").await;
    ws.subscribe(
        "all",
        "subscription { checkResults { id monitorId } }",
        json!({}),
    )
    .await;
    ws.wait_until_live(&["all"], || async {
        check_now(&app, probe).await.0["id"].as_i64().unwrap()
    })
    .await;
    let mut socket = open_live_seed_ws(&app, probe).await;

    // All at once, so the store writes them in a few batches and publishes each batch's
    // events together.
    let app = &app;
    let stored: BTreeSet<i64> =
        futures_util::future::join_all(burst.iter().map(|&monitor| async move {
            check_now(app, monitor).await.0["id"].as_i64().unwrap()
        }))
        .await
        .into_iter()
        .collect();
    assert_eq!(stored.len(), burst.len());

    let deadline = Instant::now() + WAIT;
    let mut over_graphql = Vec::new();
    while over_graphql.len() < stored.len() {
        let Some((_, data)) = ws.next_data(deadline).await else {
            panic!("GraphQL delivered {over_graphql:?} of {stored:?}");
        };
        let id = int_id(&data["checkResults"]["id"]);
        if stored.contains(&id) {
            over_graphql.push(id);
        }
    }
    over_graphql.sort_unstable();
    assert_eq!(
        over_graphql,
        stored.iter().copied().collect::<Vec<_>>(),
        "each result once over GraphQL"
    );

    let wanted: BTreeSet<i64> = burst.iter().copied().collect();
    let mut over_ws = Vec::new();
    while over_ws.len() < wanted.len() {
        let Some(frame) = next_ws_frame(&mut socket, deadline).await else {
            panic!("/ws delivered checks of {over_ws:?} of {wanted:?}");
        };
        let monitor = frame["service_id"].as_i64().unwrap();
        if wanted.contains(&monitor) {
            over_ws.push(monitor);
        }
    }
    over_ws.sort_unstable();
    assert_eq!(
        over_ws,
        wanted.iter().copied().collect::<Vec<_>>(),
        "each check once over /ws"
    );
}

// ---------------------------------------------------------------------------------------------
// The second seed's /services
// ---------------------------------------------------------------------------------------------

async fn services_use_the_seeds_keys_and_match_body_keys_case_insensitively(backend: Backend) {
    let target = Target::start().await;
    let app = spawn_app!(backend);
    let url = target.url("/ok");
    let (status, created) = app
        .json(
            Method::POST,
            "/services",
            Some(json!({"NAME": "case service", "Url": url, "INTERVAL": 30, "timeout": 4})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        keys(&created),
        key_set(&[
            "ID",
            "Name",
            "URL",
            "Interval",
            "LastStatus",
            "CreatedAt",
            "LastCheck",
            "Timeout"
        ]),
        "{created}"
    );
    let id = created["ID"].as_i64().expect("an integer ID");
    assert_eq!(created["Name"], "case service");
    assert_eq!(created["URL"], url.as_str());
    assert_eq!(created["Interval"], 30);
    assert_eq!(created["Timeout"], 4);
    assert_eq!(created["LastStatus"], "");
    timestamp(&created["CreatedAt"]);
    timestamp(&created["LastCheck"]);

    // The same row as a monitor.
    let as_monitor = monitor(&app, id).await;
    assert_eq!(as_monitor["name"], "case service");
    assert_eq!(as_monitor["url"], url.as_str());
    assert_eq!(as_monitor["interval_seconds"], 30);
    assert_eq!(as_monitor["timeout_seconds"], 4);
    assert_eq!(as_monitor["active"], true);

    // Active, so the scheduler checks it at once; the listing shows the outcome.
    let listed = eventually(WAIT, "the service's first check", || async {
        let (status, list) = app.json(Method::GET, "/services", None).await;
        assert_eq!(status, 200, "{list}");
        let list = list.as_array().expect("an array").clone();
        assert_eq!(list.len(), 1, "{list:?}");
        (list[0]["last_status"] == "UP").then(|| list[0].clone())
    })
    .await;
    assert_eq!(
        keys(&listed),
        key_set(&[
            "id",
            "name",
            "url",
            "interval",
            "last_status",
            "created_at",
            "last_state",
            "timeout"
        ]),
        "{listed}"
    );
    assert_eq!(listed["id"], id);
    assert_eq!(listed["name"], "case service");
    assert_eq!(listed["url"], url.as_str());
    assert_eq!(listed["interval"], 30);
    assert_eq!(listed["timeout"], 4);
    assert_eq!(
        timestamp(&listed["created_at"]),
        timestamp(&created["CreatedAt"])
    );
    let checked = monitor(&app, id).await;
    assert_eq!(
        timestamp(&listed["last_state"]),
        timestamp(&checked["last_checked_at"]),
        "last_state is the time of the last check"
    );
}

// ---------------------------------------------------------------------------------------------
// Shutdown
// ---------------------------------------------------------------------------------------------

async fn sigterm_with_subscribers_connected_and_a_check_in_flight_exits_cleanly(backend: Backend) {
    let target = Target::start().await;
    let mut app = spawn_app!(backend);
    let probe = app.create_monitor(&target.url("/ok"), 60, 5, false).await;
    let slow = app
        .create_monitor(&target.url("/slow/1500"), 60, 10, false)
        .await;

    let mut ws = GraphqlWs::connect(&app, "graphql-transport-ws").await;
    ws.subscribe(
        "live",
        "subscription { checkResults { id monitorId } }",
        json!({}),
    )
    .await;
    ws.wait_until_live(&["live"], || async {
        check_now(&app, probe).await.0["id"].as_i64().unwrap()
    })
    .await;
    let mut seed_ws = open_socket(app.ws_url("/ws"), None).await;

    // A manual check is running when the signal comes.
    let in_flight = tokio::spawn({
        let http = app.http.clone();
        let url = app.url(&format!("/monitors/{slow}/check"));
        async move { common::read_json(http.post(url).send().await.expect("request")).await }
    });
    assert!(
        target.wait_for_slow_requests(1, WAIT).await,
        "the slow check reached the target"
    );

    let started = Instant::now();
    let status = tokio::task::block_in_place(|| app.terminate());
    let took = started.elapsed();
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        app.log()
    );
    assert!(took < Duration::from_secs(8), "shutdown took {took:?}");

    // The check in flight finished and was answered and stored.
    let (code, result) = tokio::time::timeout(WAIT, in_flight)
        .await
        .expect("the in-flight check was answered")
        .expect("request task");
    assert_eq!(code, 200, "{result}");
    assert_eq!(result["status"], "UP", "{result}");
    let db = app.db.connect().await;
    assert_eq!(stored_results(&db, slow).await, 1);
    let _ = db.close().await;

    // Both sockets were closed with 1012 (service restart), the subscription not completed:
    // clients with retries resubscribe on their next connection.
    let deadline = Instant::now() + WAIT;
    loop {
        match ws.next(deadline).await {
            None => panic!("the subscription's socket was not closed"),
            Some(Incoming::Data(..)) => continue,
            Some(Incoming::Complete(id)) => panic!("subscription {id} was completed"),
            Some(Incoming::Closed(code)) => {
                assert_eq!(code, Some(CloseCode::Restart), "closed with {code:?}");
                break;
            }
        }
    }
    loop {
        match tokio::time::timeout_at(deadline, seed_ws.next()).await {
            Err(_) => panic!("/ws stayed open after shutdown"),
            Ok(Some(Ok(Message::Close(frame)))) => {
                assert_eq!(frame.map(|f| f.code), Some(CloseCode::Restart));
                break;
            }
            Ok(None) | Ok(Some(Err(_))) => panic!("/ws ended without a close frame"),
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// Results written together (many monitors due at once) each carry the id the database gave
/// their own row: every event's id names a stored row of that monitor with the same check
/// time, and each monitor's rows are numbered 1, 2, 3, ...
async fn results_stored_in_one_batch_carry_the_ids_of_their_own_rows(backend: Backend) {
    let target = Target::start().await;
    let app = spawn_app!(backend);
    let probe = app.create_monitor(&target.url("/ok"), 60, 5, false).await;
    let mut ws = GraphqlWs::connect(&app, "graphql-transport-ws").await;
    ws.subscribe(
        "all",
        "subscription { checkResults { id monitorId checkedAt } }",
        json!({}),
    )
    .await;
    let warm_up = ws
        .wait_until_live(&["all"], || async {
            check_now(&app, probe).await.0["id"].as_i64().unwrap()
        })
        .await;

    // Created active, each is due at once: their first checks land in the same batches.
    let mut monitors = Vec::new();
    for _ in 0..30 {
        monitors.push(app.create_monitor(&target.url("/ok"), 1, 5, true).await);
    }
    let mut events: Vec<(i64, i64, String)> = Vec::new();
    let deadline = Instant::now() + WAIT;
    while monitors
        .iter()
        .any(|m| events.iter().filter(|e| e.0 == *m).count() < 2)
    {
        let (_, data) = ws
            .next_data(deadline)
            .await
            .unwrap_or_else(|| panic!("not every monitor was checked twice: {events:?}"));
        let result = &data["checkResults"];
        if int_id(&result["id"]) > warm_up {
            events.push((
                int_id(&result["monitorId"]),
                int_id(&result["id"]),
                result["checkedAt"].as_str().unwrap().to_owned(),
            ));
        }
    }

    let db = app.db.connect().await;
    let mut ids = std::collections::HashSet::new();
    for (monitor, id, checked_at) in &events {
        assert!(ids.insert(*id), "id {id} delivered twice: {events:?}");
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                format!(
                    "SELECT CAST(monitor_id AS bigint) AS monitor_id, checked_at_ms \
                     FROM check_results WHERE id = {id}"
                ),
            ))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no stored row has id {id}"));
        let stored_monitor: i64 = row.try_get("", "monitor_id").unwrap();
        let stored_at: i64 = row.try_get("", "checked_at_ms").unwrap();
        let sent_at = DateTime::parse_from_rfc3339(checked_at)
            .unwrap()
            .timestamp_millis();
        assert_eq!(
            (stored_monitor, stored_at),
            (*monitor, sent_at),
            "event {id} and its stored row"
        );
    }
    for monitor in &monitors {
        let rows = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                format!(
                    "SELECT CAST(seq AS bigint) AS seq FROM check_results \
                     WHERE monitor_id = {monitor} ORDER BY id"
                ),
            ))
            .await
            .unwrap();
        let seqs: Vec<i64> = rows.iter().map(|r| r.try_get("", "seq").unwrap()).collect();
        let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
        assert_eq!(seqs, expected, "monitor {monitor}'s results in id order");
    }
    let _ = db.close().await;
}

/// A monitor's result numbers (`seq`, in id order) and its `last_seq`.
async fn numbering(db: &DatabaseConnection, monitor: i64) -> (Vec<i64>, i64) {
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(Statement::from_string(
            backend,
            format!(
                "SELECT CAST(seq AS bigint) AS seq FROM check_results \
                 WHERE monitor_id = {monitor} ORDER BY id"
            ),
        ))
        .await
        .unwrap();
    let last = db
        .query_one_raw(Statement::from_string(
            backend,
            format!(
                "SELECT CAST(last_seq AS bigint) AS last_seq FROM monitors WHERE id = {monitor}"
            ),
        ))
        .await
        .unwrap()
        .expect("the monitor's row");
    (
        rows.iter().map(|r| r.try_get("", "seq").unwrap()).collect(),
        last.try_get("", "last_seq").unwrap(),
    )
}

async fn a_batch_the_database_rejects_is_undone_whole_and_storing_resumes(backend: Backend) {
    let target = Target::start().await;
    let app = spawn_app!(backend);
    let db = app.db.connect().await;
    let mut monitors = Vec::new();
    for _ in 0..5 {
        monitors.push(app.create_monitor(&target.url("/ok"), 1, 5, true).await);
    }
    for &monitor in &monitors {
        eventually(WAIT, "a first stored result", || async {
            (stored_results(&db, monitor).await > 0).then_some(())
        })
        .await;
    }

    // From now on the database rejects every result row, until the flag row goes.
    let reject = match db.get_database_backend() {
        sea_orm::DatabaseBackend::Sqlite => {
            "CREATE TABLE reject_results (x INTEGER); INSERT INTO reject_results VALUES (1); \
             CREATE TRIGGER reject_results BEFORE INSERT ON check_results \
             WHEN EXISTS (SELECT 1 FROM reject_results) \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"
        }
        _ => {
            "CREATE TABLE reject_results (x integer); INSERT INTO reject_results VALUES (1); \
             CREATE FUNCTION reject_results() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF EXISTS (SELECT 1 FROM reject_results) THEN \
             RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$; \
             CREATE TRIGGER reject_results BEFORE INSERT ON check_results \
             FOR EACH ROW EXECUTE FUNCTION reject_results();"
        }
    };
    db.execute_unprepared(reject).await.unwrap();
    let mut before = Vec::new();
    for &monitor in &monitors {
        before.push(numbering(&db, monitor).await);
    }
    // Several batches fail meanwhile (each tried three times, then given up).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for (&monitor, before) in monitors.iter().zip(&before) {
        assert_eq!(
            &numbering(&db, monitor).await,
            before,
            "monitor {monitor}: nothing of a rejected batch is kept, its monitor update included"
        );
    }

    db.execute_unprepared("DELETE FROM reject_results")
        .await
        .unwrap();
    for (&monitor, before) in monitors.iter().zip(&before) {
        eventually(WAIT, "results stored again", || async {
            (numbering(&db, monitor).await.0.len() >= before.0.len() + 2).then_some(())
        })
        .await;
    }
    for &monitor in &monitors {
        let (seqs, last) = numbering(&db, monitor).await;
        let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
        assert_eq!(
            seqs, expected,
            "monitor {monitor}'s results number on without a gap"
        );
        assert!(
            last >= *seqs.last().unwrap() && last <= *seqs.last().unwrap() + 1,
            "monitor {monitor}: last_seq {last} is its newest result's ({seqs:?}), or one past it \
             when a batch is being written"
        );
    }
    let _ = db.close().await;
}

/// A monitor edited while a result for it waits to be written keeps the edit: the result is
/// stored (numbered on without a gap), and the monitor's due time stays as the edit set it
/// instead of being moved on from the value read before the edit. On SQLite this also covers
/// the store's cache of monitor rows: the first result cached the monitor, and the edit comes
/// from another connection (without the `PRAGMA data_version` check the edit is overwritten).
async fn an_edit_made_while_a_result_waits_to_be_written_is_kept(backend: Backend) {
    use sea_orm::TransactionTrait;

    let target = Target::start().await;
    let app = spawn_app!(backend);
    let db = app.db.connect().await;
    let monitor = app.create_monitor(&target.url("/ok"), 1, 5, true).await;
    eventually(WAIT, "a first stored result", || async {
        (stored_results(&db, monitor).await > 0).then_some(())
    })
    .await;

    // Hold the monitor's row (on SQLite, the write lock) while the next result is checked.
    let backend = db.get_database_backend();
    let before = numbering(&db, monitor).await.0.len();
    let txn = db.begin().await.unwrap();
    txn.execute_raw(Statement::from_string(
        backend,
        format!("UPDATE monitors SET next_check_at = next_check_at WHERE id = {monitor}"),
    ))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The edit: the monitor is not due for a day (as a pause-and-resume or a lease would move
    // it), committed while the result waits.
    let edited = Utc::now() + chrono::Duration::days(1);
    let edited_text = match backend {
        sea_orm::DatabaseBackend::Sqlite => {
            edited.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
        }
        _ => edited.to_rfc3339(),
    };
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        match backend {
            sea_orm::DatabaseBackend::Sqlite => {
                "UPDATE monitors SET next_check_at = ? WHERE id = ?"
            }
            _ => "UPDATE monitors SET next_check_at = CAST($1 AS timestamptz) WHERE id = $2",
        },
        [edited_text.into(), monitor.into()],
    ))
    .await
    .unwrap();
    txn.commit().await.unwrap();

    // The waiting result and the ones after it are stored.
    eventually(WAIT, "the waiting result stored", || async {
        (numbering(&db, monitor).await.0.len() >= before + 2).then_some(())
    })
    .await;
    let (seqs, last) = numbering(&db, monitor).await;
    let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
    assert_eq!(seqs, expected, "the results number on without a gap");
    assert!(
        last >= *seqs.last().unwrap(),
        "last_seq {last} and {seqs:?}"
    );
    let due_ms: i64 = match backend {
        sea_orm::DatabaseBackend::Sqlite => {
            let row = db
                .query_one_raw(Statement::from_string(
                    backend,
                    format!("SELECT next_check_at AS due FROM monitors WHERE id = {monitor}"),
                ))
                .await
                .unwrap()
                .expect("the monitor");
            let due: String = row.try_get("", "due").unwrap();
            DateTime::parse_from_rfc3339(&due)
                .unwrap()
                .timestamp_millis()
        }
        _ => {
            let row = db
                .query_one_raw(Statement::from_string(
                    backend,
                    format!(
                        "SELECT CAST(EXTRACT(EPOCH FROM next_check_at) * 1000 AS bigint) AS due \
                         FROM monitors WHERE id = {monitor}"
                    ),
                ))
                .await
                .unwrap()
                .expect("the monitor");
            row.try_get("", "due").unwrap()
        }
    };
    let due = DateTime::<Utc>::from_timestamp_millis(due_ms).unwrap();
    assert!(
        (due - edited).num_milliseconds().abs() < 1000,
        "the edited due time {edited} was overwritten with {due}"
    );
    let _ = db.close().await;
}

/// A monitor renamed between two checks is published under its new name. On PostgreSQL the
/// result store keeps the monitor rows it wrote (in a process without RabbitMQ) instead of
/// reading them for every batch: the rename changes neither the due time nor the result
/// count, so only the write's `updated_at` condition tells the store its row is stale (without
/// it, the second frame carries the old name). On SQLite, `PRAGMA data_version` does.
async fn a_monitor_renamed_between_checks_is_published_under_its_new_name(backend: Backend) {
    let target = Target::start().await;
    let app = spawn_app!(backend);
    let probe = app.create_monitor(&target.url("/ok"), 60, 5, false).await;
    let body = |name: &str| json!({"name": name, "url": target.url("/ok"), "timeout_seconds": 5, "interval_seconds": 60, "active": false});
    let (status, created) = app
        .json(Method::POST, "/monitors", Some(body("before the rename")))
        .await;
    assert_eq!(status, 201, "{created}");
    let x = created["id"].as_i64().unwrap();
    let mut socket = open_live_seed_ws(&app, probe).await;

    let mut names = Vec::new();
    for rename in [None, Some("after the rename"), Some("renamed again")] {
        if let Some(name) = rename {
            let (status, updated) = app
                .json(Method::PUT, &format!("/monitors/{x}"), Some(body(name)))
                .await;
            assert_eq!(status, 200, "{updated}");
        }
        check_now(&app, x).await;
        let deadline = Instant::now() + WAIT;
        loop {
            let frame = next_ws_frame(&mut socket, deadline)
                .await
                .unwrap_or_else(|| panic!("no frame for monitor {x}; names so far {names:?}"));
            if frame["service_id"] == x {
                names.push(frame["name"].clone());
                break;
            }
        }
    }
    assert_eq!(
        names,
        vec![
            json!("before the rename"),
            json!("after the rename"),
            json!("renamed again")
        ]
    );
    let (status, stored) = app.json(Method::GET, &format!("/monitors/{x}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(stored["name"], "renamed again", "{stored}");
    assert_eq!(
        history(&app, x, 10).await.len(),
        3,
        "every check is stored once"
    );
}

/// With a database pool of one connection the API keeps answering while results are stored:
/// on PostgreSQL the result store keeps the connections it writes on between batches, but
/// never more than a quarter of the pool (none of a pool this small), so it never holds the
/// connection the API needs (which would wait out the pool's 5 s and fail).
async fn a_pool_of_one_connection_still_serves_the_api_while_checks_are_stored(backend: Backend) {
    let target = Target::start().await;
    let Some(app) = App::spawn_with(backend, &[("DB_MAX_CONNECTIONS", "1")]).await else {
        return;
    };
    let monitor = app.create_monitor(&target.url("/ok"), 1, 5, true).await;
    for round in 0..4 {
        eventually(WAIT, "results stored and listed", || async {
            (history(&app, monitor, 10).await.len() > round).then_some(())
        })
        .await;
        let (status, body) = app
            .json(Method::GET, &format!("/monitors/{monitor}"), None)
            .await;
        assert_eq!(status, 200, "round {round}: {body}");
        let (status, body) = app
            .json(Method::POST, &format!("/monitors/{monitor}/check"), None)
            .await;
        assert_eq!(status, 200, "round {round}: {body}");
    }
    assert!(
        !app.log().contains("pool timed out"),
        "nothing waited out the pool: {}",
        app.log()
    );
}

on_both_backends!(
    manual_checks_classify_success_error_statuses_and_network_failures,
    history_lists_newest_first_pages_stably_and_moves_the_monitors_last_status,
    an_active_monitor_is_checked_every_interval_until_paused_and_at_once_when_resumed,
    check_results_subscription_over_graphql_transport_ws_delivers_only_that_monitors_results,
    status_changes_subscription_over_legacy_graphql_ws_fires_on_first_result_and_each_flip_only,
    the_ws_endpoint_pushes_one_frame_per_check_with_the_seeds_keys,
    results_stored_together_reach_every_socket_once_each,
    services_use_the_seeds_keys_and_match_body_keys_case_insensitively,
    sigterm_with_subscribers_connected_and_a_check_in_flight_exits_cleanly,
    results_stored_in_one_batch_carry_the_ids_of_their_own_rows,
    a_batch_the_database_rejects_is_undone_whole_and_storing_resumes,
    an_edit_made_while_a_result_waits_to_be_written_is_kept,
    a_monitor_renamed_between_checks_is_published_under_its_new_name,
    a_pool_of_one_connection_still_serves_the_api_while_checks_are_stored,
);
