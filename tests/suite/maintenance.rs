//! Maintenance windows, reminders and storms, from outside, on SQLite and PostgreSQL, with a
//! local webhook receiver: during a window a flapping monitor's results are stored and
//! flagged, its state is MAINTENANCE, no incident opens and nothing is sent, and ending the
//! window early brings alerts back; bad windows are refused by name; an open incident sends a
//! reminder at its interval; 500 monitors going down together reach a channel as a few
//! grouped messages, not 500.

use std::{collections::HashSet, time::Duration};

use reqwest::Method;
use serde_json::{json, Value};
use testkit::{on_both_backends, Target};

use crate::{
    check_options::created,
    common::{check_now, App, Backend},
    notifications::{create_channel, verify_signature, Receiver, SECRET},
};

const WINDOW_FIELDS: &str =
    "id name monitorIds startsAt endsAt recurrence timeZone active endedAt currentStartsAt currentEndsAt";

async fn create_window(app: &App, input: Value) -> Value {
    app.graphql(
        &format!(
            "mutation($i: CreateMaintenanceWindowInput!) {{ createMaintenanceWindow(input: $i) {{ {WINDOW_FIELDS} }} }}"
        ),
        json!({"i": input}),
    )
    .await
}

fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn monitor_state(app: &App, id: i64) -> String {
    let (status, body) = app
        .json(Method::GET, &format!("/monitors/{id}"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    body["state"].as_str().unwrap().to_owned()
}

async fn incidents(app: &App, id: i64) -> Vec<Value> {
    let body = app
        .graphql(
            "query($m: ID!) { incidents(monitorId: $m) { nodes { id resolvedAt } } }",
            json!({"m": id.to_string()}),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["incidents"]["nodes"]
        .as_array()
        .unwrap()
        .clone()
}

async fn a_window_over_a_flapping_monitor_is_stored_flagged_and_tells_nobody(backend: Backend) {
    let target = Target::start().await;
    let rx = Receiver::start().await;
    let app = spawn_app!(backend);
    create_channel(
        &app,
        json!({"name": "hook", "kind": "WEBHOOK", "isDefault": true,
               "url": format!("{}/hook", rx.base), "secret": SECRET}),
    )
    .await;
    let id = created(&app, &target.url("/flip"), json!({"active": true})).await;
    let other = created(
        &app,
        &target.url("/ok"),
        json!({"name": "not covered", "active": true}),
    )
    .await;
    check_now(&app, id).await;
    check_now(&app, other).await;
    let now = chrono::Utc::now();
    let body = create_window(
        &app,
        json!({"name": "deploy", "monitorIds": [id.to_string()],
               "startsAt": rfc3339(now - chrono::Duration::minutes(1)),
               "endsAt": rfc3339(now + chrono::Duration::hours(1)),
               "timeZone": "Europe/Berlin"}),
    )
    .await;
    assert!(body["errors"].is_null(), "{body}");
    let window = &body["data"]["createMaintenanceWindow"];
    assert_eq!(window["active"], true, "{body}");
    assert_eq!(window["timeZone"], "Europe/Berlin");
    assert_eq!(monitor_state(&app, id).await, "MAINTENANCE");
    assert_eq!(monitor_state(&app, other).await, "UP");

    // Flapping inside the window: every result stored and flagged, no incident, no message.
    for code in [503, 200, 503, 503] {
        target.set_flip(code);
        let (result, _) = check_now(&app, id).await;
        assert_eq!(result["in_maintenance"], true, "{result}");
    }
    let body = app
        .graphql(
            "query($id: ID!) { monitor(id: $id) { state checkResults(first: 10) { nodes { status inMaintenance } } } }",
            json!({"id": id.to_string()}),
        )
        .await;
    let nodes = body["data"]["monitor"]["checkResults"]["nodes"]
        .as_array()
        .unwrap()
        .clone();
    assert!(nodes.len() >= 5, "{body}");
    assert_eq!(
        nodes.iter().filter(|n| n["inMaintenance"] == true).count(),
        4,
        "{body}"
    );
    assert_eq!(body["data"]["monitor"]["state"], "MAINTENANCE");
    assert!(incidents(&app, id).await.is_empty(), "no incident");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sent: Vec<Value> = rx.at("/hook").iter().map(|r| r.json()).collect();
    assert!(sent.is_empty(), "nothing sent: {sent:?}");

    // Ended early: the next DOWN opens an incident and is told.
    let body = app
        .graphql(
            &format!(
                "mutation($id: ID!) {{ endMaintenanceWindow(id: $id) {{ {WINDOW_FIELDS} }} }}"
            ),
            json!({"id": window["id"]}),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(body["data"]["endMaintenanceWindow"]["active"], false);
    assert!(!body["data"]["endMaintenanceWindow"]["endedAt"].is_null());
    assert_ne!(monitor_state(&app, id).await, "MAINTENANCE");
    let (result, _) = check_now(&app, id).await;
    assert_eq!(result["in_maintenance"], false, "{result}");
    assert_eq!(incidents(&app, id).await.len(), 1);
    let hook = rx.wait_for("/hook", 1).await;
    assert_eq!(hook.len(), 1);
    verify_signature(&hook[0]);
    assert_eq!(hook[0].json()["notifications"][0]["event"], "DOWN");
    // Ending it again: it is no longer in effect.
    let body = app
        .graphql(
            "mutation($id: ID!) { endMaintenanceWindow(id: $id) { id } }",
            json!({"id": window["id"]}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "CONFLICT",
        "{body}"
    );
}

async fn bad_windows_are_named(backend: Backend) {
    let target = Target::start().await;
    let app = spawn_app!(backend);
    let id = created(&app, &target.url("/flip"), json!({})).await;
    let t0 = chrono::Utc::now() + chrono::Duration::days(1);
    let at = |minutes: i64| rfc3339(t0 + chrono::Duration::minutes(minutes));
    // A weekly window, Saturdays 02:00-04:00 Berlin time, for the monitor.
    let body = create_window(
        &app,
        json!({"name": "weekly", "monitorIds": [id.to_string()], "startsAt": at(0), "endsAt": at(120),
               "recurrence": "0 2 * * SAT", "timeZone": "Europe/Berlin"}),
    )
    .await;
    assert!(body["errors"].is_null(), "{body}");
    let weekly = &body["data"]["createMaintenanceWindow"];
    assert_eq!(weekly["recurrence"], "0 2 * * SAT");
    let next: chrono::DateTime<chrono::Utc> =
        weekly["currentStartsAt"].as_str().unwrap().parse().unwrap();
    let local = next.with_timezone(&chrono_tz::Europe::Berlin);
    assert_eq!(local.format("%a %H:%M").to_string(), "Sat 02:00", "{body}");
    for (input, needle) in [
        (
            json!({"name": "z", "startsAt": at(0), "endsAt": at(0)}),
            "endsAt must be after the window's start",
        ),
        (
            json!({"name": "tz", "startsAt": at(0), "endsAt": at(5), "timeZone": "Mars/Olympus"}),
            "timeZone \"Mars/Olympus\" is not a known time zone",
        ),
        (
            json!({"name": "cron", "startsAt": at(0), "endsAt": at(5), "recurrence": "every day"}),
            "recurrence \"every day\" is not a five-field cron expression",
        ),
        (
            json!({"name": "often", "startsAt": at(0), "endsAt": at(90), "recurrence": "0 * * * *"}),
            "occurrences would overlap",
        ),
        (
            json!({"name": "long", "startsAt": at(0), "endsAt": at(60 * 24 * 40)}),
            "endsAt must be at most 31 days after the window's start",
        ),
        (
            json!({"name": "ghost", "monitorIds": ["999999"], "startsAt": at(0), "endsAt": at(5)}),
            "monitorIds monitor 999999 does not exist",
        ),
        (
            json!({"name": "weekly", "startsAt": at(60 * 24 * 3), "endsAt": at(60 * 24 * 3 + 5)}),
            "name \"weekly\" is the name of another maintenance window",
        ),
    ] {
        let body = create_window(&app, input.clone()).await;
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{input}: {body}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{body}"
        );
    }
    // Overlapping another window for the same monitor (an all-monitors window counts).
    let saturday = next.with_timezone(&chrono::Utc);
    let body = create_window(
        &app,
        json!({"name": "clash", "startsAt": rfc3339(saturday + chrono::Duration::minutes(30)),
               "endsAt": rfc3339(saturday + chrono::Duration::minutes(200))}),
    )
    .await;
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(&format!(
            "startsAt overlaps maintenance window {}",
            weekly["id"].as_str().unwrap()
        )),
        "{body}"
    );
    // Not in effect: cannot be ended; a patch names its problem too; it can be deleted.
    let body = app
        .graphql(
            "mutation($id: ID!) { endMaintenanceWindow(id: $id) { id } }",
            json!({"id": weekly["id"]}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "CONFLICT",
        "{body}"
    );
    let body = app
        .graphql(
            "mutation($id: ID!) { updateMaintenanceWindow(id: $id, input: {timeZone: \"Nowhere/Else\"}) { id } }",
            json!({"id": weekly["id"]}),
        )
        .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("timeZone"),
        "{body}"
    );
    let body = app
        .graphql(
            "mutation($id: ID!) { updateMaintenanceWindow(id: $id, input: {recurrence: null, name: \"once\"}) { name recurrence } }",
            json!({"id": weekly["id"]}),
        )
        .await;
    assert_eq!(
        body["data"]["updateMaintenanceWindow"]["name"], "once",
        "{body}"
    );
    assert!(body["data"]["updateMaintenanceWindow"]["recurrence"].is_null());
    let body = app
        .graphql(
            "mutation($id: ID!) { deleteMaintenanceWindow(id: $id) }",
            json!({"id": weekly["id"]}),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let body = app
        .graphql("{ maintenanceWindows { id } }", json!({}))
        .await;
    assert_eq!(body["data"]["maintenanceWindows"], json!([]), "{body}");
}

async fn an_open_incident_sends_a_reminder_at_its_interval(backend: Backend) {
    let target = Target::start().await;
    let rx = Receiver::start().await;
    let app = spawn_app!(backend);
    let hook = create_channel(
        &app,
        json!({"name": "hook", "kind": "WEBHOOK", "url": format!("{}/hook", rx.base), "secret": SECRET}),
    )
    .await;
    let id = created(
        &app,
        &target.url("/flip"),
        json!({"active": true, "reminder_interval_minutes": 1, "notification_channel_ids": [hook["id"]]}),
    )
    .await;
    let (status, monitor) = app
        .json(Method::GET, &format!("/monitors/{id}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(monitor["reminder_interval_minutes"], 1, "{monitor}");
    target.set_flip(503);
    check_now(&app, id).await;
    let started = std::time::Instant::now();
    let got = rx.wait_for("/hook", 1).await;
    assert_eq!(got[0].json()["notifications"][0]["event"], "DOWN");
    // The first reminder, a minute after the outage began (and not before).
    let got = testkit::eventually(Duration::from_secs(90), "a reminder", || async {
        let all = rx.at("/hook");
        (all.len() >= 2).then_some(all)
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(55),
        "{:?}",
        started.elapsed()
    );
    let reminder = got[1].json();
    let item = &reminder["notifications"][0];
    assert_eq!(item["event"], "REMINDER", "{reminder}");
    assert_eq!(item["reminder"], 1, "{reminder}");
    assert!(
        item["downtime_seconds"].as_i64().unwrap() >= 59,
        "{reminder}"
    );
    assert!(
        item["text"].as_str().unwrap().starts_with("STILL DOWN"),
        "{reminder}"
    );
    verify_signature(&got[1]);
    // Resolved: the UP goes, and no reminder after it.
    target.set_flip(200);
    check_now(&app, id).await;
    let got = rx.wait_for("/hook", 3).await;
    assert_eq!(got.len(), 3);
    assert_eq!(got[2].json()["notifications"][0]["event"], "UP");
    let body = app
        .graphql(
            "{ notificationDeliveries(first: 10) { nodes { event state } } }",
            json!({}),
        )
        .await;
    let events: Vec<&str> = body["data"]["notificationDeliveries"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["UP", "REMINDER", "DOWN"], "{body}");
    let states: Vec<&str> = body["data"]["notificationDeliveries"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["SENT", "SENT", "SENT"], "{body}");
}

async fn many_monitors_down_together_are_a_few_grouped_messages(backend: Backend) {
    const MONITORS: usize = 500;
    let target = Target::start().await;
    let rx = Receiver::start().await;
    let app = spawn_app!(backend);
    create_channel(
        &app,
        json!({"name": "hook", "kind": "WEBHOOK", "isDefault": true,
               "url": format!("{}/hook", rx.base), "secret": SECRET}),
    )
    .await;
    create_channel(
        &app,
        json!({"name": "slack", "kind": "SLACK", "isDefault": true, "url": format!("{}/slack", rx.base)}),
    )
    .await;
    let mut ids = HashSet::new();
    for n in 0..MONITORS {
        let id = created(
            &app,
            &target.url("/flip"),
            json!({"name": format!("storm {n}"), "interval_seconds": 5, "active": true}),
        )
        .await;
        ids.insert(id);
    }
    // Every monitor UP first, then the target fails under all of them.
    testkit::eventually(Duration::from_secs(60), "every monitor checked", || async {
        let (_, body) = app.json(Method::GET, "/monitors", None).await;
        body.as_array()
            .is_some_and(|all| all.iter().all(|m| m["state"] == "UP"))
            .then_some(())
    })
    .await;
    target.set_flip(503);
    let got = testkit::eventually(Duration::from_secs(60), "every DOWN told", || async {
        let down: HashSet<i64> = rx
            .at("/hook")
            .iter()
            .flat_map(|r| {
                r.json()["notifications"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter(|n| n["event"] == "DOWN")
            .filter_map(|n| n["monitor"]["id"].as_i64())
            .collect();
        (down.len() == MONITORS).then_some(down)
    })
    .await;
    assert_eq!(got, ids);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let hooks = rx.at("/hook");
    let downs: usize = hooks
        .iter()
        .map(|r| r.json()["notifications"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(downs, MONITORS, "each DOWN once");
    assert!(
        hooks.len() <= 3,
        "{} webhook messages for {MONITORS} monitors",
        hooks.len()
    );
    for r in &hooks {
        verify_signature(r);
    }
    let slack = rx.at("/slack");
    assert!(
        (1..=3).contains(&slack.len()),
        "{} slack messages",
        slack.len()
    );
    let texts: Vec<String> = slack
        .iter()
        .map(|r| r.json()["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains(" changes: ") && t.contains("... and ")),
        "a grouped, shortened text: {texts:?}"
    );
}

async fn windows_over_rest(backend: Backend) {
    let target = Target::start().await;
    let app = spawn_app!(backend);
    let id = created(&app, &target.url("/ok"), json!({})).await;
    let t0 = chrono::Utc::now() + chrono::Duration::hours(2);
    let (status, body) = app
        .json(
            Method::POST,
            "/maintenance-windows",
            Some(json!({"name": "db upgrade", "monitor_ids": [id],
                "starts_at": rfc3339(t0), "ends_at": rfc3339(t0 + chrono::Duration::minutes(30))})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["monitor_ids"], json!([id]));
    assert_eq!(body["all_monitors"], false);
    assert_eq!(body["active"], false);
    let path = format!("/maintenance-windows/{}", body["id"]);
    for (patch, field) in [
        (json!({"time_zone": "Atlantis/Capital"}), "time_zone"),
        (json!({"ends_at": "tomorrow"}), "ends_at"),
        (json!({"monitor_ids": [0]}), "monitor_ids[0]"),
        (json!({"active": true}), "read-only field `active`"),
    ] {
        let (status, body) = app.json(Method::PATCH, &path, Some(patch.clone())).await;
        assert_eq!(status, 400, "{patch}: {body}");
        assert!(
            body["error"].as_str().unwrap_or_default().contains(field),
            "{patch}: {body}"
        );
    }
    let (status, body) = app
        .json(
            Method::PATCH,
            &path,
            Some(json!({"name": "db upgrade v2", "time_zone": "Asia/Tokyo"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["time_zone"], "Asia/Tokyo");
    let (status, body) = app.json(Method::POST, &format!("{path}/end"), None).await;
    assert_eq!(status, 409, "not in effect: {body}");
    let (status, list) = app.json(Method::GET, "/maintenance-windows", None).await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let (status, _) = app.json(Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    let (status, body) = app.json(Method::GET, &path, None).await;
    assert_eq!(status, 404, "{body}");
}

on_both_backends!(
    a_window_over_a_flapping_monitor_is_stored_flagged_and_tells_nobody,
    bad_windows_are_named,
    an_open_incident_sends_a_reminder_at_its_interval,
    many_monitors_down_together_are_a_few_grouped_messages,
    windows_over_rest,
);
