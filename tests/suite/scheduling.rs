//! The scheduler's rhythm: an active monitor is checked every interval, not while paused, and
//! at once when resumed.
//! Every scenario runs on SQLite and on PostgreSQL, against a target inside the test process.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::json;
use testkit::{eventually, int_id, on_both_backends, Target};
use tokio::time::Instant;

use crate::common::{history, monitor, stored_results, timestamp, Backend};

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

on_both_backends!(
    an_active_monitor_is_checked_every_interval_until_paused_and_at_once_when_resumed,
);
