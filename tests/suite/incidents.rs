//! Incidents from outside: a monitor's outage is one incident, opened by the check that
//! confirms it DOWN (after its failure threshold) and resolved by the one that confirms it UP
//! (after its success threshold), with its cause, resolution and duration; reads with filters
//! and pages on REST and GraphQL; acknowledgements; `incidentChanges` over `/graphql/ws`; bad
//! input named; a deleted monitor's incidents gone. Every scenario runs on SQLite and on
//! PostgreSQL.

use reqwest::Method;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{json, Value};
use testkit::{on_both_backends, ws::GraphqlWs, Target, WAIT};
use tokio::time::Instant;

use crate::{
    check_options::created,
    common::{check_now, timestamp, App, Backend},
};

const INCIDENT_FIELDS: &str = "id monitorId open startedAt resolvedAt durationSeconds \
    acknowledgedAt acknowledgement monitor { id name } cause { id status statusCode } \
    resolvedBy { id status statusCode }";

async fn incidents(app: &App, query: &str) -> (u16, Value) {
    app.json(Method::GET, &format!("/incidents{query}"), None)
        .await
}

async fn rest_list(app: &App, query: &str) -> Vec<Value> {
    let (status, body) = incidents(app, query).await;
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().clone()
}

/// The next `incidentChanges` item on `ws`.
async fn next_change(ws: &mut GraphqlWs) -> Value {
    loop {
        let message = ws.recv_json(Instant::now() + WAIT).await;
        if message["type"] == "next" {
            assert!(message["payload"]["errors"].is_null(), "{message}");
            return message["payload"]["data"]["incidentChanges"].clone();
        }
        assert_ne!(message["type"], "error", "{message}");
    }
}

async fn open_rows(app: &App) -> i64 {
    let db = app.db.connect().await;
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM incidents WHERE resolved_at IS NULL",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

async fn an_outage_is_one_incident_from_confirmed_down_to_confirmed_up(backend: Backend) {
    let target = Target::start().await;
    let app = spawn_app!(backend);
    let id = created(
        &app,
        &target.url("/flip"),
        json!({"failure_threshold": 2, "success_threshold": 2}),
    )
    .await;
    let mut ws = GraphqlWs::connect(&app, "graphql-transport-ws").await;
    ws.subscribe(
        "1",
        &format!(
            "subscription($m: ID) {{ incidentChanges(monitorId: $m) {{ {INCIDENT_FIELDS} }} }}"
        ),
        json!({"m": id.to_string()}),
    )
    .await;
    // The subscription is live once the server has it; a check before that is not awaited.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    // Its first confirmation is UP: no incident.
    check_now(&app, id).await;
    check_now(&app, id).await;
    assert!(rest_list(&app, "").await.is_empty());

    target.set_flip(503);
    // One failure is not confirmed; the second opens the incident.
    check_now(&app, id).await;
    assert!(rest_list(&app, "").await.is_empty(), "not confirmed yet");
    let (cause, _) = check_now(&app, id).await;
    let list = rest_list(&app, &format!("?monitor_id={id}")).await;
    assert_eq!(list.len(), 1, "{list:?}");
    let incident = &list[0];
    assert_eq!(incident["open"], true);
    assert_eq!(incident["monitor_id"], id);
    assert_eq!(incident["resolved_at"], Value::Null);
    assert_eq!(incident["resolved_by"], Value::Null);
    assert_eq!(incident["cause"]["id"], cause["id"]);
    assert_eq!(incident["cause"]["status_code"], 503);
    assert_eq!(incident["cause"]["seq"], 4);
    assert_eq!(
        timestamp(&incident["started_at"]),
        timestamp(&cause["checked_at"])
    );
    let opened = next_change(&mut ws).await;
    assert_eq!(opened["open"], true, "{opened}");
    assert_eq!(opened["id"], incident["id"].to_string().as_str());
    assert_eq!(opened["cause"]["statusCode"], 503);
    assert_eq!(opened["monitor"]["id"], id.to_string());
    assert_eq!(open_rows(&app).await, 1);

    // More failures while open: still one incident.
    check_now(&app, id).await;
    target.set_flip(200);
    check_now(&app, id).await;
    assert_eq!(
        rest_list(&app, "?open=true").await.len(),
        1,
        "not resolved yet"
    );
    let (resolving, _) = check_now(&app, id).await;
    let list = rest_list(&app, "").await;
    assert_eq!(list.len(), 1, "one outage, one incident: {list:?}");
    let incident = &list[0];
    assert_eq!(incident["open"], false);
    assert_eq!(incident["resolved_by"]["id"], resolving["id"]);
    assert_eq!(incident["resolved_by"]["seq"], 7);
    assert_eq!(incident["resolved_by"]["status"], "UP");
    let (started, resolved) = (
        timestamp(&incident["started_at"]),
        timestamp(&incident["resolved_at"]),
    );
    assert_eq!(resolved, timestamp(&resolving["checked_at"]));
    assert_eq!(
        incident["duration_seconds"],
        (resolved - started).num_seconds()
    );
    let closed = next_change(&mut ws).await;
    assert_eq!(closed["open"], false, "{closed}");
    assert_eq!(closed["id"], opened["id"]);
    assert_eq!(closed["resolvedBy"]["status"], "UP");
    assert_eq!(open_rows(&app).await, 0);

    // The same through GraphQL, one by id, and the filters.
    let incident_id = incident["id"].as_i64().unwrap();
    let body = app
        .graphql(
            &format!("query($id: ID!) {{ incident(id: $id) {{ {INCIDENT_FIELDS} }} }}"),
            json!({"id": incident_id.to_string()}),
        )
        .await;
    let one = &body["data"]["incident"];
    assert_eq!(
        one["cause"]["id"],
        cause["id"].to_string().as_str(),
        "{body}"
    );
    assert_eq!(
        one["resolvedBy"]["id"],
        resolving["id"].to_string().as_str(),
        "{body}"
    );
    assert_eq!(one["monitor"]["id"], id.to_string());
    let (status, single) = incidents(&app, &format!("/{incident_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(single["id"], incident_id);
    assert!(rest_list(&app, "?open=true").await.is_empty());
    assert_eq!(rest_list(&app, "?open=false").await.len(), 1);
    let after = (resolved + chrono::Duration::seconds(1)).to_rfc3339();
    let before = (started - chrono::Duration::seconds(1)).to_rfc3339();
    let within = started.to_rfc3339();
    let encode = |t: &str| t.replace('+', "%2B");
    assert!(rest_list(&app, &format!("?from={}", encode(&after)))
        .await
        .is_empty());
    assert!(rest_list(&app, &format!("?to={}", encode(&before)))
        .await
        .is_empty());
    assert_eq!(
        rest_list(&app, &format!("?from={0}&to={0}", encode(&within)))
            .await
            .len(),
        1
    );
    assert!(rest_list(&app, &format!("?monitor_id={}", id + 1))
        .await
        .is_empty());

    // Acknowledged with a note, on both interfaces; a later one replaces the note.
    let body = app
        .graphql(
            "mutation($id: ID!) { acknowledgeIncident(id: $id, note: \" deploy rolled back \") { acknowledgedAt acknowledgement } }",
            json!({"id": incident_id.to_string()}),
        )
        .await;
    let acked = &body["data"]["acknowledgeIncident"];
    assert_eq!(acked["acknowledgement"], "deploy rolled back", "{body}");
    assert!(!acked["acknowledgedAt"].is_null());
    let (status, acked) = app
        .json(
            Method::POST,
            &format!("/incidents/{incident_id}/acknowledge"),
            Some(json!({"note": "root cause: DNS"})),
        )
        .await;
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["acknowledgement"], "root cause: DNS");

    // A second outage: two incidents, paged newest first.
    target.set_flip(500);
    check_now(&app, id).await;
    check_now(&app, id).await;
    let list = rest_list(&app, "").await;
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["open"], true);
    assert_eq!(list[0]["cause"]["status_code"], 500);
    assert_eq!(list[1]["id"], incident_id);
    let page = rest_list(&app, &format!("?limit=1&before={}", list[0]["id"])).await;
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["id"], incident_id);
    let body = app
        .graphql(
            "query($m: ID) { incidents(monitorId: $m, first: 1) { pageInfo { hasNextPage endCursor } edges { node { id open } } } }",
            json!({"m": id.to_string()}),
        )
        .await;
    let first = &body["data"]["incidents"];
    assert_eq!(first["pageInfo"]["hasNextPage"], true, "{body}");
    assert_eq!(first["edges"][0]["node"]["open"], true);
    let body = app
        .graphql(
            "query($c: String) { incidents(first: 5, after: $c) { pageInfo { hasNextPage } edges { node { id open } } } }",
            json!({"c": first["pageInfo"]["endCursor"]}),
        )
        .await;
    let rest = &body["data"]["incidents"];
    assert_eq!(rest["pageInfo"]["hasNextPage"], false, "{body}");
    assert_eq!(rest["edges"][0]["node"]["id"], incident_id.to_string());

    // A deleted monitor's incidents go with it.
    let (status, _) = app
        .json(Method::DELETE, &format!("/monitors/{id}"), None)
        .await;
    assert_eq!(status, 204);
    assert!(rest_list(&app, "").await.is_empty());
    let (status, body) = incidents(&app, &format!("/{incident_id}")).await;
    assert_eq!(status, 404, "{body}");
}

async fn bad_incident_input_is_named(backend: Backend) {
    let app = spawn_app!(backend);
    for (query, field) in [
        ("?open=maybe", "open"),
        ("?from=yesterday", "from"),
        ("?to=2026-13-01T00:00:00Z", "to"),
        ("?limit=0", "limit"),
        ("?monitor_id=-4", "monitor_id"),
        ("?before=x", "before"),
        ("?colour=red", "colour"),
        ("?from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z", "to"),
    ] {
        let (status, body) = incidents(&app, query).await;
        assert_eq!(status, 400, "{query}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.starts_with(field), "{query}: {body}");
    }
    let (status, body) = incidents(&app, "/abc").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = incidents(&app, "/99").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "incident 99 not found");
    let (status, body) = app
        .json(Method::POST, "/incidents/99/acknowledge", Some(json!({})))
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = app
        .json(
            Method::POST,
            "/incidents/99/acknowledge",
            Some(json!({"note": "x".repeat(2001)})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().starts_with("note"),
        "{body}"
    );
    let (status, body) = app
        .json(
            Method::POST,
            "/incidents/99/acknowledge",
            Some(json!({"note": "ok", "by": "me"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");

    for (query, needle) in [
        (
            "{ incidents(from: \"2026-12-02T00:00:00Z\", to: \"2026-12-01T00:00:00Z\") { edges { node { id } } } }",
            "to must not be before from",
        ),
        ("{ incidents(first: 5000) { edges { node { id } } } }", "first"),
        ("{ incidents(after: \"bW9uaXRvcjox\") { edges { node { id } } } }", "after"),
        ("{ incidents(from: \"soon\") { edges { node { id } } } }", "RFC 3339"),
        ("mutation { acknowledgeIncident(id: \"7\") { id } }", "incident 7 not found"),
    ] {
        let body = app.graphql(query, json!({})).await;
        let error = &body["errors"][0];
        assert!(
            error["message"].as_str().unwrap_or_default().contains(needle),
            "{query}: {body}"
        );
        let code = error["extensions"]["code"].as_str().unwrap_or_default();
        assert!(
            code == "BAD_USER_INPUT" || code == "NOT_FOUND",
            "{query}: {body}"
        );
    }
    let body = app
        .graphql("{ incident(id: \"7\") { id } }", json!({}))
        .await;
    assert_eq!(body["data"]["incident"], Value::Null, "{body}");
}

on_both_backends!(
    an_outage_is_one_incident_from_confirmed_down_to_confirmed_up,
    bad_incident_input_is_named,
);
