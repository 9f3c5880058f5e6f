//! What clients see while the load runs: read latency of GraphQL and REST queries, and how
//! late subscription events arrive.
//!
//! Reads are paced (open loop): `clients` tasks together send about `rate` requests per
//! second, cycling through three queries, so they measure latency under the check load
//! instead of adding a load of their own. Subscribers speak `graphql-transport-ws` to
//! `/graphql/ws` and subscribe to every check result; an event's delay is its receive time
//! minus `checkedAt + responseTimeMs` (both whole milliseconds, so ±2 ms).

use std::time::Duration;

use anyhow::{bail, Context as _};
use chrono::DateTime;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue, Message};

use crate::{stats::Summary, target::unix_micros};

/// Timeout of one read request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The three read queries, in the order the clients cycle through them.
pub const READ_KINDS: [&str; 3] = [
    "GraphQL monitors(first: 20)",
    "GraphQL checkResults(first: 50)",
    "REST GET /monitors/{id}/check?limit=50",
];

/// Latencies (ms) per read kind, and failed reads.
#[derive(Debug, Default)]
pub struct ReadResults {
    pub latency_ms: [Summary; 3],
    pub errors: u64,
}

/// Runs paced reads until `until`.
pub async fn reads(
    http: reqwest::Client,
    base: String,
    ids: Vec<i64>,
    clients: usize,
    rate: f64,
    until: Instant,
) -> ReadResults {
    if rate <= 0.0 {
        return ReadResults::default();
    }
    let clients = clients.max(1);
    let period = Duration::from_secs_f64(clients as f64 / rate);
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (http, base, ids) = (http.clone(), base.clone(), ids.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies: [Vec<f64>; 3] = Default::default();
            let mut errors = 0;
            // Stagger the clients over one period.
            let first = Instant::now() + period.mul_f64(client as f64 / clients as f64);
            let mut ticks = tokio::time::interval_at(first, period);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut seed = 0x9e37_79b9_7f4a_7c15_u64 ^ (client as u64 + 1);
            let mut round = client;
            loop {
                let tick = tokio::select! {
                    tick = ticks.tick() => tick,
                    _ = tokio::time::sleep_until(until) => break,
                };
                if tick >= until {
                    break;
                }
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let id = ids[(seed % ids.len().max(1) as u64) as usize];
                let kind = round % 3;
                round += 1;
                let started = Instant::now();
                match read_once(&http, &base, kind, id).await {
                    Ok(()) => latencies[kind].push(started.elapsed().as_secs_f64() * 1000.0),
                    Err(_) => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut all: [Vec<f64>; 3] = Default::default();
    let mut results = ReadResults::default();
    for task in tasks {
        if let Ok((latencies, errors)) = task.await {
            for (into, from) in all.iter_mut().zip(latencies) {
                into.extend(from);
            }
            results.errors += errors;
        }
    }
    for (summary, values) in results.latency_ms.iter_mut().zip(all) {
        *summary = Summary::of(values);
    }
    results
}

async fn read_once(http: &reqwest::Client, base: &str, kind: usize, id: i64) -> anyhow::Result<()> {
    let request = match kind {
        0 => http.post(format!("{base}/graphql")).json(&json!({
            "query": "{ monitors(first: 20) { nodes { id lastStatus } } }"
        })),
        1 => http.post(format!("{base}/graphql")).json(&json!({
            "query": "query($id: ID!) { checkResults(monitorId: $id, first: 50) { nodes { id status checkedAt } } }",
            "variables": { "id": id.to_string() },
        })),
        _ => http.get(format!("{base}/monitors/{id}/check?limit=50")),
    };
    let response = request.timeout(READ_TIMEOUT).send().await?;
    if !response.status().is_success() {
        bail!("HTTP {}", response.status());
    }
    let body: Value = response.json().await?;
    if body.get("errors").is_some() {
        bail!("GraphQL errors: {}", body["errors"]);
    }
    Ok(())
}

/// What one subscriber saw inside the window.
#[derive(Debug, Default)]
pub struct SubscriberResults {
    /// Delays (ms) of the events received inside the window.
    pub delays_ms: Vec<f64>,
    /// Error items (e.g. "lagged") received inside the window.
    pub errors: u64,
}

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects to `/graphql/ws`, initialises the session and subscribes to every check result,
/// or to one monitor's.
pub async fn subscribe(port: u16, monitor: Option<i64>) -> anyhow::Result<WsStream> {
    let mut request = format!("ws://127.0.0.1:{port}/graphql/ws").into_client_request()?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(request),
    )
    .await
    .context("WebSocket connect timed out")??;
    ws.send(Message::text(
        json!({"type": "connection_init"}).to_string(),
    ))
    .await?;
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(message) = ws.next().await {
            if let Message::Text(text) = message? {
                let value: Value = serde_json::from_str(&text)?;
                if value["type"] == "connection_ack" {
                    return Ok(());
                }
            }
        }
        bail!("the server closed the WebSocket before acknowledging")
    })
    .await
    .context("no connection_ack within 10 s")??;
    let payload = match monitor {
        None => json!({ "query": "subscription { checkResults { id checkedAt responseTimeMs } }" }),
        Some(id) => json!({
            "query": "subscription($id: ID!) { checkResults(monitorId: $id) { id checkedAt responseTimeMs } }",
            "variables": { "id": id.to_string() },
        }),
    };
    let subscribe = json!({ "id": "1", "type": "subscribe", "payload": payload });
    ws.send(Message::text(subscribe.to_string())).await?;
    Ok(ws)
}

/// Reads events until `end`, keeping those received in `[start, end)` (unix micros).
pub async fn listen(mut ws: WsStream, start_us: i64, end: Instant) -> SubscriberResults {
    let mut results = SubscriberResults::default();
    loop {
        let message = tokio::select! {
            message = ws.next() => message,
            _ = tokio::time::sleep_until(end) => break,
        };
        let Some(Ok(message)) = message else { break };
        let received = unix_micros();
        let Message::Text(text) = message else {
            continue;
        };
        let Ok(value) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        match value["type"].as_str() {
            Some("ping") => {
                let _ = ws
                    .send(Message::text(json!({"type": "pong"}).to_string()))
                    .await;
            }
            Some("next") if received >= start_us => {
                let payload = &value["payload"];
                if payload.get("errors").is_some() {
                    results.errors += 1;
                }
                if let Some(delay) = event_delay_ms(&payload["data"]["checkResults"], received) {
                    results.delays_ms.push(delay);
                }
            }
            Some("error") | Some("complete") => {
                results.errors += 1;
                break;
            }
            _ => {}
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
    results
}

fn event_delay_ms(result: &Value, received_us: i64) -> Option<f64> {
    let checked_at = DateTime::parse_from_rfc3339(result["checkedAt"].as_str()?).ok()?;
    let response_ms = result["responseTimeMs"].as_i64()?;
    let done_us = checked_at.timestamp_micros() + response_ms * 1000;
    Some((received_us - done_us) as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_counts_from_the_end_of_the_check() {
        let result = json!({"checkedAt": "2026-01-01T00:00:00.000Z", "responseTimeMs": 5});
        let at = DateTime::parse_from_rfc3339("2026-01-01T00:00:00.007Z")
            .unwrap()
            .timestamp_micros();
        assert_eq!(event_delay_ms(&result, at), Some(2.0));
    }
}
