//! The service built in the test's own process (`testkit::spawn_app`, on
//! `monitor_manager::Application`): the same API, scheduler and store as the binary, on a port
//! it picked itself, stopped as SIGTERM would stop it.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use testkit::{eventually, on_both_backends, spawn_app, Backend, Target};

async fn an_in_process_app_checks_its_monitors_serves_the_api_and_stops_cleanly(backend: Backend) {
    let Some(app) = spawn_app(backend, &["--check-threads", "1"]).await else {
        return;
    };
    let target = Target::start().await;
    let id = app.create_monitor(&target.url("/ok"), 1, 5, true).await;
    // The scheduler checks it on its own, once a second.
    let stored = eventually(
        Duration::from_secs(10),
        "two scheduled checks stored",
        || async {
            let (status, body) = app
                .json(Method::GET, &format!("/monitors/{id}/check?limit=10"), None)
                .await;
            assert_eq!(status, 200, "{body}");
            (body.as_array().map_or(0, Vec::len) >= 2).then_some(body)
        },
    )
    .await;
    assert_eq!(stored[0]["status"], "UP", "{stored}");
    let answer = app
        .graphql(
            "query($id: ID!) { monitor(id: $id) { name lastStatus checkResults(first: 1) { totalCount } } }",
            json!({ "id": id.to_string() }),
        )
        .await;
    assert_eq!(answer["data"]["monitor"]["lastStatus"], "UP", "{answer}");
    assert!(
        answer["data"]["monitor"]["checkResults"]["totalCount"].as_u64() >= Some(2),
        "{answer}"
    );
    let base = app.base.clone();
    app.stop().await.expect("a clean shutdown");
    // Stopped means the port no longer answers.
    assert!(reqwest::get(format!("{base}/healthz")).await.is_err());
}

on_both_backends!(an_in_process_app_checks_its_monitors_serves_the_api_and_stops_cleanly);
