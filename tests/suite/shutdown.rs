//! SIGTERM with subscribers connected and a check in flight: sockets close, the process exits
//! cleanly.
//! Every scenario runs on SQLite and on PostgreSQL, against a target inside the test process.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use testkit::{on_both_backends, open_socket, GraphqlWs, Incoming, Target, WAIT};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{protocol::frame::coding::CloseCode, Message};

use crate::common::{self, check_now, stored_results, Backend};

async fn sigterm_with_subscribers_connected_and_a_check_in_flight_exits_cleanly(backend: Backend) {
    let target = Target::start().await;
    let mut app = spawn_app!(backend);
    let probe = app.create_monitor(&target.url("/ok"), 60, 5, false).await;
    let slow = app
        .create_monitor(&target.url("/slow/1500"), 60, 10, false)
        .await;

    let mut ws = GraphqlWs::connect(&app, "graphql-transport-ws").await;
    ws.subscribe(
        "live",
        "subscription { checkResults { id monitorId } }",
        json!({}),
    )
    .await;
    ws.wait_until_live(&["live"], || async {
        check_now(&app, probe).await.0["id"].as_i64().unwrap()
    })
    .await;
    let mut seed_ws = open_socket(app.ws_url("/ws"), None).await;

    // A manual check is running when the signal comes.
    let in_flight = tokio::spawn({
        let http = app.http.clone();
        let url = app.url(&format!("/monitors/{slow}/check"));
        async move { common::read_json(http.post(url).send().await.expect("request")).await }
    });
    assert!(
        target.wait_for_slow_requests(1, WAIT).await,
        "the slow check reached the target"
    );

    let started = Instant::now();
    let status = tokio::task::block_in_place(|| app.terminate());
    let took = started.elapsed();
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        app.log()
    );
    assert!(took < Duration::from_secs(8), "shutdown took {took:?}");

    // The check in flight finished and was answered and stored.
    let (code, result) = tokio::time::timeout(WAIT, in_flight)
        .await
        .expect("the in-flight check was answered")
        .expect("request task");
    assert_eq!(code, 200, "{result}");
    assert_eq!(result["status"], "UP", "{result}");
    let db = app.db.connect().await;
    assert_eq!(stored_results(&db, slow).await, 1);
    let _ = db.close().await;

    // Both sockets were closed with 1012 (service restart), the subscription not completed:
    // clients with retries resubscribe on their next connection.
    let deadline = Instant::now() + WAIT;
    loop {
        match ws.next(deadline).await {
            None => panic!("the subscription's socket was not closed"),
            Some(Incoming::Data(..)) => continue,
            Some(Incoming::Complete(id)) => panic!("subscription {id} was completed"),
            Some(Incoming::Closed(code)) => {
                assert_eq!(code, Some(CloseCode::Restart), "closed with {code:?}");
                break;
            }
        }
    }
    loop {
        match tokio::time::timeout_at(deadline, seed_ws.next()).await {
            Err(_) => panic!("/ws stayed open after shutdown"),
            Ok(Some(Ok(Message::Close(frame)))) => {
                assert_eq!(frame.map(|f| f.code), Some(CloseCode::Restart));
                break;
            }
            Ok(None) | Ok(Some(Err(_))) => panic!("/ws ended without a close frame"),
            Ok(Some(Ok(_))) => continue,
        }
    }
}

on_both_backends!(sigterm_with_subscribers_connected_and_a_check_in_flight_exits_cleanly,);
