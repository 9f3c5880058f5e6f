//! GraphQL CRUD and its bad input, GraphiQL for browsers, and `schema.graphql` matching the
//! schema the server builds.

use reqwest::Method;
use serde_json::{json, Value};
use testkit::on_both_backends;

use crate::common::{self, App, Backend, BIN};

const MONITOR_FIELDS: &str = "id name url timeoutSeconds intervalSeconds active createdAt updatedAt lastCheckedAt lastStatus";

async fn graphql_crud_round_trip_works(backend: Backend) {
    let Some(app) = App::spawn(BIN, backend).await else {
        return;
    };
    let create = format!("mutation($input: CreateMonitorInput!) {{ createMonitor(input: $input) {{ {MONITOR_FIELDS} }} }}");
    let mut ids = Vec::new();
    for n in 0..3 {
        let answer = app
            .graphql(&create, json!({"input": {"name": format!("m{n}"), "url": "https://example.com", "timeoutSeconds": 5, "intervalSeconds": 60, "active": n == 1}}))
            .await;
        assert!(answer["errors"].is_null(), "{answer} {}", app.log());
        let monitor = &answer["data"]["createMonitor"];
        assert_eq!(monitor["name"], format!("m{n}"));
        assert_eq!(monitor["lastStatus"], Value::Null);
        ids.push(monitor["id"].as_str().unwrap().to_owned());
    }

    // Paging, oldest first.
    let page = "query($after: String) { monitors(first: 2, after: $after) { edges { cursor node { id } } nodes { name } pageInfo { hasNextPage endCursor } } }";
    let first = app.graphql(page, json!({})).await;
    let connection = &first["data"]["monitors"];
    assert_eq!(connection["nodes"], json!([{"name": "m0"}, {"name": "m1"}]));
    assert_eq!(connection["pageInfo"]["hasNextPage"], true);
    let cursor = connection["pageInfo"]["endCursor"].as_str().unwrap();
    let second = app.graphql(page, json!({"after": cursor})).await;
    assert_eq!(second["data"]["monitors"]["nodes"], json!([{"name": "m2"}]));
    assert_eq!(second["data"]["monitors"]["pageInfo"]["hasNextPage"], false);
    let paused = app
        .graphql("{ monitors(active: false) { nodes { name } } }", json!({}))
        .await;
    assert_eq!(
        paused["data"]["monitors"]["nodes"],
        json!([{"name": "m0"}, {"name": "m2"}])
    );
    // Both filters at once: paused monitors after the first one.
    let first = app
        .graphql(
            "{ monitors(first: 1) { edges { cursor node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        first["data"]["monitors"]["edges"][0]["node"]["id"],
        ids[0].as_str()
    );
    let paused_after = app
        .graphql(
            "query($after: String) { monitors(active: false, after: $after) { nodes { name } pageInfo { hasNextPage } } }",
            json!({"after": first["data"]["monitors"]["edges"][0]["cursor"]}),
        )
        .await;
    assert_eq!(
        paused_after["data"]["monitors"],
        json!({"nodes": [{"name": "m2"}], "pageInfo": {"hasNextPage": false}}),
        "{paused_after}"
    );

    // Partial update changes only what is given.
    let update = format!("mutation($id: ID!, $input: UpdateMonitorInput!) {{ updateMonitor(id: $id, input: $input) {{ {MONITOR_FIELDS} }} }}");
    let answer = app
        .graphql(
            &update,
            json!({"id": ids[0], "input": {"intervalSeconds": 120}}),
        )
        .await;
    let updated = &answer["data"]["updateMonitor"];
    assert_eq!(updated["intervalSeconds"], 120);
    assert_eq!(updated["name"], "m0");
    assert_eq!(updated["timeoutSeconds"], 5);

    let one = app.graphql("query($id: ID!) { monitor(id: $id) { name intervalSeconds checkResults(first: 5) { nodes { id } pageInfo { hasNextPage } } } }", json!({"id": ids[0]})).await;
    assert_eq!(one["data"]["monitor"]["intervalSeconds"], 120);
    assert_eq!(one["data"]["monitor"]["checkResults"]["nodes"], json!([]));
    let missing = app
        .graphql("{ monitor(id: \"987654\") { id } }", json!({}))
        .await;
    assert_eq!(missing["data"]["monitor"], Value::Null);
    assert!(missing["errors"].is_null());

    // REST sees what GraphQL wrote.
    let (_, rest) = app
        .json(Method::GET, &format!("/monitors/{}", ids[0]), None)
        .await;
    assert_eq!(rest["interval_seconds"], 120);

    let deleted = app
        .graphql(
            "mutation($id: ID!) { deleteMonitor(id: $id) }",
            json!({"id": ids[0]}),
        )
        .await;
    assert_eq!(deleted["data"]["deleteMonitor"], ids[0].as_str());
    assert_eq!(app.db.count("monitors").await, 2);
    let again = app
        .graphql(
            "mutation($id: ID!) { deleteMonitor(id: $id) }",
            json!({"id": ids[0]}),
        )
        .await;
    assert_eq!(again["errors"][0]["extensions"]["code"], "NOT_FOUND");
}

async fn graphql_bad_input_gets_bad_user_input_and_stores_nothing(backend: Backend) {
    let Some(app) = App::spawn(BIN, backend).await else {
        return;
    };
    let create = "mutation($input: CreateMonitorInput!) { createMonitor(input: $input) { id } }";
    let valid = json!({"name": "ok", "url": "https://example.com", "timeoutSeconds": 5, "intervalSeconds": 60});
    let with = |key: &str, value: Value| {
        let mut input = valid.clone();
        input[key] = value;
        input
    };
    let cases = [
        (with("name", json!("")), "name"),
        (with("name", json!("x".repeat(300))), "name"),
        (with("url", json!("ftp://example.com")), "url"),
        (with("url", json!("not a url")), "url"),
        (with("timeoutSeconds", json!(0)), "timeoutSeconds"),
        (with("timeoutSeconds", json!(-1)), "timeoutSeconds"),
        (with("timeoutSeconds", json!(100000)), "timeoutSeconds"),
        (with("intervalSeconds", json!(0)), "intervalSeconds"),
        (with("intervalSeconds", json!(1.5)), "intervalSeconds"),
        (with("intervalSeconds", json!("60")), "intervalSeconds"),
        (
            with("intervalSeconds", json!(99999999999u64)),
            "intervalSeconds",
        ),
    ];
    for (input, field) in cases {
        let answer = app.graphql(create, json!({"input": input})).await;
        let error = &answer["errors"][0];
        assert_eq!(
            error["extensions"]["code"], "BAD_USER_INPUT",
            "{input}: {answer}"
        );
        assert!(
            error["message"].as_str().unwrap().contains(field),
            "{input}: {answer}"
        );
    }
    for query in [
        "{ monitor(id: \"abc\") { id } }",
        "{ monitor(id: \"-4\") { id } }",
        "{ monitors(first: -1) { nodes { id } } }",
        "{ monitors(first: 100000) { nodes { id } } }",
        "{ monitors(after: \"garbage\") { nodes { id } } }",
        "{ checkResults(monitorId: \"x\") { nodes { id } } }",
        "{ nosuchfield }",
        "mutation { updateMonitor(id: \"1\", input: { intervalSeconds: 0 }) { id } }",
    ] {
        let answer = app.graphql(query, json!({})).await;
        assert_eq!(
            answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{query}: {answer}"
        );
    }
    // Parsed queries are cached by their text; a query that does not parse is never cached,
    // and a cached one is still checked against each request's variables (the cases above
    // all sent one query text).
    for _ in 0..2 {
        let broken = app
            .graphql("{ monitors(first: 1) { nodes { id }", json!({}))
            .await;
        assert_eq!(
            broken["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{broken}"
        );
        let page = "query($first: Int) { monitors(first: $first) { nodes { id } } }";
        let answer = app.graphql(page, json!({"first": 1})).await;
        assert_eq!(answer["data"]["monitors"]["nodes"], json!([]), "{answer}");
        for first in [json!("1"), json!(-1)] {
            let answer = app.graphql(page, json!({ "first": first })).await;
            assert_eq!(
                answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
                "{first}: {answer}"
            );
        }
    }
    let not_found = app
        .graphql(
            "mutation { updateMonitor(id: \"77\", input: { name: \"x\" }) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(not_found["errors"][0]["extensions"]["code"], "NOT_FOUND");
    let not_found = app
        .graphql("mutation { runCheck(id: \"77\") { id } }", json!({}))
        .await;
    assert_eq!(not_found["errors"][0]["extensions"]["code"], "NOT_FOUND");

    // Not a GraphQL request at all: still a JSON answer.
    let response = app
        .http
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    let (status, answer) = common::read_json(response).await;
    assert_eq!(status, 400);
    assert_eq!(answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(app.db.count("monitors").await, 0);
}

#[tokio::test]
async fn graphiql_is_served_to_browsers() {
    let Some(app) = App::spawn(BIN, Backend::Sqlite).await else {
        return;
    };
    let response = app
        .http
        .get(app.url("/graphql"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains("graphiql"), "GraphiQL page expected");
}

#[test]
fn schema_graphql_matches_the_schema_the_server_builds() {
    let output = std::process::Command::new(BIN)
        .arg("schema")
        .output()
        .expect("run monitor-manager schema");
    assert!(output.status.success());
    let built = String::from_utf8(output.stdout).unwrap();
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("schema.graphql at the repository root");
    assert!(
        built == committed,
        "schema.graphql is out of date: run `cargo run -- schema > schema.graphql`"
    );
}

on_both_backends!(
    graphql_crud_round_trip_works,
    graphql_bad_input_gets_bad_user_input_and_stores_nothing,
);
