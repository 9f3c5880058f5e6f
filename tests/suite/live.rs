//! Live results: GraphQL subscriptions over both WebSocket subprotocols and the second seed's
//! `/ws`, each result delivered once to every socket.
//! Every scenario runs on SQLite and on PostgreSQL, against a target inside the test process.

use std::collections::{BTreeSet, HashMap};

use reqwest::Method;
use serde_json::{json, Value};
use testkit::{int_id, next_ws_frame, on_both_backends, GraphqlWs, Target, WAIT};
use tokio::time::Instant;

use crate::common::{check_now, key_set, keys, open_live_seed_ws, run_check_gql, Backend};

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

on_both_backends!(
    check_results_subscription_over_graphql_transport_ws_delivers_only_that_monitors_results,
    status_changes_subscription_over_legacy_graphql_ws_fires_on_first_result_and_each_flip_only,
    the_ws_endpoint_pushes_one_frame_per_check_with_the_seeds_keys,
    results_stored_together_reach_every_socket_once_each,
);
