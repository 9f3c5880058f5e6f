//! WebSocket clients: [`open_socket`], a GraphQL-over-WebSocket client for both subprotocols
//! ([`GraphqlWs`]: `graphql-transport-ws` and the legacy `graphql-ws`), and the reader of the
//! second seed's `/ws` frames.

use std::{collections::BTreeSet, future::Future, time::Duration};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{
    client::IntoClientRequest, http::HeaderValue, protocol::frame::coding::CloseCode, Message,
};

use crate::{int_id, App, WAIT};

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket, optionally asking for a subprotocol.
pub async fn open_socket(url: String, protocol: Option<&'static str>) -> Socket {
    let mut request = url.into_client_request().expect("a WebSocket request");
    if let Some(protocol) = protocol {
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(protocol));
    }
    let (socket, response) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("WebSocket handshake in time")
        .expect("WebSocket handshake");
    if let Some(protocol) = protocol {
        assert_eq!(
            response
                .headers()
                .get("sec-websocket-protocol")
                .map(|v| v.to_str().unwrap()),
            Some(protocol),
            "the server accepts the subprotocol"
        );
    }
    socket
}

/// What came over a GraphQL WebSocket.
#[derive(Debug)]
pub enum Incoming {
    /// `next` (graphql-transport-ws) or `data` (graphql-ws): subscription id and `data`.
    Data(String, Value),
    /// `complete` for a subscription id.
    Complete(String),
    /// A close frame, or the end of the stream.
    Closed(Option<CloseCode>),
}

/// A GraphQL-over-WebSocket client for both subprotocols.
pub struct GraphqlWs {
    socket: Socket,
    legacy: bool,
}

impl GraphqlWs {
    /// Connects with `graphql-transport-ws` or `graphql-ws` and completes the handshake.
    pub async fn connect(app: &App, protocol: &'static str) -> Self {
        let socket = open_socket(app.ws_url("/graphql/ws"), Some(protocol)).await;
        let mut this = Self {
            socket,
            legacy: protocol == "graphql-ws",
        };
        this.send(json!({"type": "connection_init", "payload": {}}))
            .await;
        let ack = this.recv_json(Instant::now() + WAIT).await;
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        this
    }

    pub async fn send(&mut self, value: Value) {
        self.socket
            .send(Message::text(value.to_string()))
            .await
            .expect("send over the WebSocket");
    }

    /// Starts a subscription (`subscribe`, or `start` in the legacy protocol).
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        let kind = if self.legacy { "start" } else { "subscribe" };
        self.send(json!({
            "id": id,
            "type": kind,
            "payload": {"query": query, "variables": variables},
        }))
        .await;
    }

    /// The next JSON message; panics at the deadline or on a non-JSON frame.
    pub async fn recv_json(&mut self, deadline: Instant) -> Value {
        match self.recv(deadline).await {
            Some(Ok(value)) => value,
            Some(Err(closed)) => panic!("the socket closed: {closed:?}"),
            None => panic!("no message before the deadline"),
        }
    }

    /// The next JSON text message, `Err` when the socket closed, `None` at the deadline.
    pub async fn recv(&mut self, deadline: Instant) -> Option<Result<Value, Option<CloseCode>>> {
        loop {
            let frame = match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => return None,
                Ok(frame) => frame,
            };
            match frame {
                None | Some(Err(_)) => return Some(Err(None)),
                Some(Ok(Message::Close(frame))) => return Some(Err(frame.map(|f| f.code))),
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(text.as_str())
                        .unwrap_or_else(|_| panic!("not JSON: {text}"));
                    return Some(Ok(value));
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The next subscription message, answering pings and skipping keep-alives; `None` at the
    /// deadline. A GraphQL error in a payload fails the test.
    pub async fn next(&mut self, deadline: Instant) -> Option<Incoming> {
        loop {
            let value = match self.recv(deadline).await? {
                Ok(value) => value,
                Err(code) => return Some(Incoming::Closed(code)),
            };
            let id = value["id"].as_str().unwrap_or_default().to_owned();
            match value["type"].as_str().unwrap_or_default() {
                "next" | "data" => {
                    let expected = if self.legacy { "data" } else { "next" };
                    assert_eq!(value["type"], expected, "message type of this protocol");
                    let payload = &value["payload"];
                    assert!(
                        payload["errors"].is_null(),
                        "subscription {id} got errors: {value}"
                    );
                    return Some(Incoming::Data(id, payload["data"].clone()));
                }
                "complete" => return Some(Incoming::Complete(id)),
                "ping" => self.send(json!({"type": "pong"})).await,
                "ka" | "pong" => {}
                _ => panic!("unexpected message: {value}"),
            }
        }
    }

    /// The next data message; fails the test on `complete`, close or the deadline.
    pub async fn next_data(&mut self, deadline: Instant) -> Option<(String, Value)> {
        match self.next(deadline).await? {
            Incoming::Data(id, data) => Some((id, data)),
            other => panic!("expected subscription data, got {other:?}"),
        }
    }

    /// Subscriptions start asynchronously, with no acknowledgement. Runs `probe` (a check
    /// whose result every subscription in `ids` will see) until each has delivered something,
    /// and returns the highest result id involved: anything up to it is warm-up traffic.
    pub async fn wait_until_live<F, Fut>(&mut self, ids: &[&str], mut probe: F) -> i64
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = i64>,
    {
        let give_up = Instant::now() + WAIT * 2;
        let mut seen = BTreeSet::new();
        let mut last_probe = 0;
        while seen.len() < ids.len() {
            assert!(
                Instant::now() < give_up,
                "subscriptions {ids:?} never went live"
            );
            last_probe = last_probe.max(probe().await);
            let window = Instant::now() + Duration::from_millis(1500);
            while seen.len() < ids.len() {
                let Some((id, data)) = self.next_data(window).await else {
                    break;
                };
                last_probe = last_probe.max(result_id_of(&data));
                seen.insert(id);
            }
        }
        last_probe
    }
}

/// The check result id in a subscription payload (`checkResults` or `statusChanges`).
pub fn result_id_of(data: &Value) -> i64 {
    if let Some(result) = data.get("checkResults") {
        int_id(&result["id"])
    } else if let Some(change) = data.get("statusChanges") {
        int_id(&change["checkResult"]["id"])
    } else {
        panic!("unexpected subscription data: {data}")
    }
}

/// Reads the next JSON text frame of the second seed's `/ws`; `None` at the deadline.
pub async fn next_ws_frame(socket: &mut Socket, deadline: Instant) -> Option<Value> {
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .ok()?;
        match frame {
            Some(Ok(Message::Text(text))) => {
                return Some(
                    serde_json::from_str(text.as_str())
                        .unwrap_or_else(|_| panic!("/ws sent a frame that is not JSON: {text}")),
                )
            }
            Some(Ok(Message::Close(frame))) => panic!("/ws closed: {frame:?}"),
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => panic!("/ws ended"),
        }
    }
}
