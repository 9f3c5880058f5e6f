//! Property tests of the inputs, through the running binary: random REST bodies and random
//! GraphQL documents never get a 5xx or a non-JSON answer, never crash the process, and
//! exactly the accepted creations are stored.

use proptest::{
    prelude::*,
    strategy::ValueTree,
    test_runner::{Config, TestRunner},
};
use serde_json::{json, Map, Value};
use testkit::on_both_backends;

use crate::common::{self, App, Backend, BIN};

const CASES: usize = 300;

/// Strings that probe the parsers: control characters, invisible ones, URLs good and bad.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("https://example.com/health".to_owned()),
        Just("http://127.0.0.1:9/".to_owned()),
        Just("http://user:pw@127.0.0.1:0/".to_owned()),
        Just("ftp://x".to_owned()),
        Just("\u{200b}\u{feff}".to_owned()),
        Just("a\u{0}b".to_owned()),
        Just("line\r\nbreak".to_owned()),
        Just("x".repeat(3000)),
        "[ -~]{0,40}",
        any::<String>(),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (1i64..100).prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        Just(json!(1e300)),
        Just(json!(18446744073709551615u64)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Objects mostly made of the keys the routes know, in any spelling and with any value.
fn body() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("name"),
        Just("url"),
        Just("timeout_seconds"),
        Just("interval_seconds"),
        Just("active"),
        Just("interval"),
        Just("Timeout"),
        Just("NAME"),
        Just("method"),
        Just("id"),
    ];
    prop_oneof![
        prop::collection::vec((key, value()), 0..7).prop_map(|fields| {
            Value::Object(
                fields
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect::<Map<_, _>>(),
            )
        }),
        value(),
    ]
}

fn sample<S: Strategy>(runner: &mut TestRunner, strategy: &S) -> S::Value {
    strategy.new_tree(runner).expect("a value").current()
}

async fn random_rest_bodies_get_json_answers_and_only_accepted_ones_are_stored(backend: Backend) {
    let Some(app) = App::spawn(BIN, backend).await else {
        return;
    };
    let mut runner = TestRunner::new(Config::default());
    let strategy = body();
    let mut created = 0;
    for case in 0..CASES {
        let body = sample(&mut runner, &strategy);
        let path = if case % 3 == 0 {
            "/services"
        } else {
            "/monitors"
        };
        let response = app
            .http
            .post(app.url(path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("the server answers");
        let status = response.status().as_u16();
        let (_, answer) = common::read_json(response).await;
        match status {
            201 => created += 1,
            400 | 413 | 415 => assert!(
                answer["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{path} {body}: {answer}"
            ),
            other => panic!("{path} {body}: status {other}: {answer}\n{}", app.log()),
        }
    }
    assert_eq!(app.db.count("monitors").await, created);
}

/// Pieces of GraphQL text, so documents nest, open strings and comments and mix fields.
fn document() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "{",
        "}",
        "[",
        "]",
        "(",
        ")",
        "monitors",
        "monitor(id: 1)",
        "nodes",
        "id",
        "name",
        "checkResults(first: 3)",
        "totalCount",
        "...F",
        "fragment F on Query ",
        "query ",
        "mutation ",
        "deleteMonitor(id: 999)",
        "\"",
        "\"\"\"",
        "#",
        "\n",
        " ",
        "$v",
        "@skip(if: true)",
        "a: ",
        "__typename",
        "__schema { types { name } }",
        "é",
        "1",
        "null",
    ]);
    prop::collection::vec(piece, 0..120).prop_map(|pieces| pieces.join(" "))
}

async fn random_graphql_documents_get_graphql_answers_and_change_nothing(backend: Backend) {
    let Some(app) = App::spawn(BIN, backend).await else {
        return;
    };
    let id = app
        .create_monitor("http://127.0.0.1:9/", 60, 5, false)
        .await;
    let mut runner = TestRunner::new(Config::default());
    let strategy = (document(), value());
    for _ in 0..CASES {
        let (query, variables) = sample(&mut runner, &strategy);
        let response = app
            .http
            .post(app.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("the server answers");
        let status = response.status().as_u16();
        let (_, answer) = common::read_json(response).await;
        assert!(
            matches!(status, 200 | 400),
            "{query}: status {status}: {answer}\n{}",
            app.log()
        );
        assert!(
            answer.get("data").is_some() || answer["errors"].is_array(),
            "{query}: {answer}"
        );
        if let Some(errors) = answer["errors"].as_array() {
            for error in errors {
                assert!(error["extensions"]["code"].is_string(), "{query}: {answer}");
            }
        }
    }
    // Only `deleteMonitor(id: 999)` mutations could run; the monitor is still there.
    let (status, _) = app
        .json(reqwest::Method::GET, &format!("/monitors/{id}"), None)
        .await;
    assert_eq!(status, 200);
}

on_both_backends!(
    random_rest_bodies_get_json_answers_and_only_accepted_ones_are_stored,
    random_graphql_documents_get_graphql_answers_and_change_nothing,
);
