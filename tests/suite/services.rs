//! The second seed's `/services`: its keys, and body keys matched case-insensitively.
//! Every scenario runs on SQLite and on PostgreSQL, against a target inside the test process.

use reqwest::Method;
use serde_json::json;
use testkit::{eventually, on_both_backends, Target, WAIT};

use crate::common::{key_set, keys, monitor, timestamp, Backend};

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

on_both_backends!(services_use_the_seeds_keys_and_match_body_keys_case_insensitively,);
