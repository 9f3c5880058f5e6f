//! What the modules of the suite share: the binary under test, testkit's harness, and the
//! helpers of the check, history and live-event modules.

use std::{collections::BTreeSet, time::Duration};

use chrono::{DateTime, Utc};
use reqwest::Method;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{json, Value};
use testkit::{open_socket, ws::next_ws_frame, Socket, WAIT};
pub use testkit::{read_json, App, Backend, Proc, TestDb};
use tokio::time::Instant;

/// The binary cargo built for this test target (under `CARGO_TARGET_DIR` when that is set).
pub const BIN: &str = env!("CARGO_BIN_EXE_monitor-manager");

macro_rules! spawn_app {
    ($backend:expr) => {
        match $crate::common::App::spawn($crate::common::BIN, $backend).await {
            Some(app) => app,
            None => return,
        }
    };
}

/// `POST /monitors/{id}/check`: the stored result and how long the request took.
pub async fn check_now(app: &App, id: i64) -> (Value, Duration) {
    let started = Instant::now();
    let (status, body) = app
        .json(Method::POST, &format!("/monitors/{id}/check"), None)
        .await;
    let took = started.elapsed();
    assert_eq!(status, 200, "manual check of monitor {id} failed: {body}");
    assert_eq!(body["monitor_id"], id, "{body}");
    (body, took)
}

pub const RUN_CHECK: &str = "mutation($id: ID!) { runCheck(id: $id) { id monitorId status statusCode responseTimeMs error checkedAt } }";

/// GraphQL `runCheck`: the result's fields.
pub async fn run_check_gql(app: &App, id: i64) -> Value {
    let body = app.graphql(RUN_CHECK, json!({"id": id.to_string()})).await;
    assert!(body["errors"].is_null(), "runCheck failed: {body}");
    let result = body["data"]["runCheck"].clone();
    assert_eq!(result["monitorId"], id.to_string(), "{body}");
    result
}

pub fn timestamp(value: &Value) -> DateTime<Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {value}"));
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|err| panic!("{text:?} is not RFC 3339: {err}"))
        .with_timezone(&Utc)
}

pub fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect()
}

pub fn key_set<'a>(names: &[&'a str]) -> BTreeSet<&'a str> {
    names.iter().copied().collect()
}
/// How many results a monitor has, straight from the database.
pub async fn stored_results(db: &DatabaseConnection, monitor_id: i64) -> i64 {
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
pub async fn stored_error(db: &DatabaseConnection, result_id: i64) -> Option<String> {
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

pub async fn history(app: &App, id: i64, limit: u32) -> Vec<Value> {
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

pub async fn monitor(app: &App, id: i64) -> Value {
    let (status, body) = app
        .json(Method::GET, &format!("/monitors/{id}"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

pub fn assert_down_without_response(result: &Value, needle: &str) {
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

/// Opens the second seed's `/ws` and waits until it delivers: the server subscribes after the
/// handshake, so `probe` is checked until its frames flow.
pub async fn open_live_seed_ws(app: &App, probe: i64) -> Socket {
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
