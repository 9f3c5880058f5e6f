//! Check history: newest first, stable paging over REST and GraphQL, and the monitor's last
//! status following its newest result.
//! Every scenario runs on SQLite and on PostgreSQL, against a target inside the test process.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{json, Value};
use testkit::{int_id, on_both_backends, Target};

use crate::common::{
    check_now, history, key_set, keys, monitor, run_check_gql, timestamp, App, Backend,
};

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

on_both_backends!(history_lists_newest_first_pages_stably_and_moves_the_monitors_last_status,);
