//! `GET /graphql/ws`: GraphQL over WebSocket in both subprotocols, `graphql-transport-ws`
//! (graphql-ws's PROTOCOL.md, preferred) and the legacy `graphql-ws` of
//! subscriptions-transport-ws. Queries, mutations and subscriptions run with
//! `execute_stream_with_session_data`; every operation passes [`limits::guard`] first.
//!
//! Close codes (both subprotocols): 4400 malformed message (with the reason), 4401 an
//! operation before `connection_init`, 4406 no supported subprotocol offered, 4408 no
//! `connection_init` within `ws_init_timeout`, 4409 an id already in use, 4429 a second
//! `connection_init`; 1009 a message over `ws_max_message_bytes`; 1001 a peer silent for two
//! keep-alive intervals; 1012 at shutdown, without `complete` for open subscriptions, so
//! clients with retries resubscribe. One operation over `ws_max_subscriptions` gets an
//! `error` for its id and the connection stays.

use std::{sync::Arc, task::Poll, time::Duration};

use async_graphql::{Data, Request, Response, ServerError};
use axum::{
    body::Bytes,
    extract::{
        ws::{rejection::WebSocketUpgradeRejection, Message, WebSocket},
        State, WebSocketUpgrade,
    },
    http::HeaderMap,
    response::{IntoResponse, Response as HttpResponse},
};
use futures_util::{stream::BoxStream, SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_stream::StreamMap;

use super::{limits, AppSchema};
use crate::{
    edge::Limits,
    server::ConnectionSlot,
    socket::{self, Beat, KeepAlive, SERVICE_RESTART},
    AppState,
};
use axum::Extension;

/// Most messages written with one flush: enough to batch a stored batch's events, few enough
/// that reading the client is never held back for long.
const MAX_BATCH: usize = 1024;

/// The `connection_init` payload, in every operation's session data (for credentials such as
/// `{"authorization": "Bearer mm_..."}`); `Null` when the client sent none.
#[derive(Debug, Clone)]
pub struct InitPayload(pub Value);

/// The two subprotocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// `graphql-transport-ws`.
    TransportWs,
    /// The legacy `graphql-ws` (subscriptions-transport-ws).
    Legacy,
}

impl Protocol {
    /// Server preference first.
    const NAMES: [&'static str; 2] = ["graphql-transport-ws", "graphql-ws"];

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "graphql-transport-ws" => Some(Self::TransportWs),
            "graphql-ws" => Some(Self::Legacy),
            _ => None,
        }
    }
}

/// `GET /graphql/ws`. A foreign `Origin` gets 403; an upgrade offering neither subprotocol
/// is accepted and closed with 4406, as PROTOCOL.md has it.
pub async fn graphql_ws(
    State(state): State<AppState>,
    headers: HeaderMap,
    slot: Option<Extension<ConnectionSlot>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> HttpResponse {
    let upgrade = match socket::accept(&state, &headers, upgrade) {
        Ok(upgrade) => upgrade.protocols(Protocol::NAMES),
        Err(refused) => return refused.into_response(),
    };
    let protocol = upgrade
        .selected_protocol()
        .and_then(|name| name.to_str().ok())
        .and_then(Protocol::from_name);
    // Held until the session ends, so shutdown waits for its close frame.
    let tracked = state.sockets.token();
    upgrade.on_upgrade(move |mut ws| async move {
        // The socket keeps its connection's place among MAX_CONNECTIONS.
        let _held = (tracked, slot);
        match protocol {
            Some(protocol) => serve(ws, state, protocol).await,
            None => socket::close(&mut ws, 4406, "Subprotocol not acceptable").await,
        }
    })
}

/// What a client sends, in `graphql-transport-ws`.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum TransportWsMessage {
    ConnectionInit { payload: Option<Value> },
    Ping { payload: Option<Value> },
    Pong {},
    Subscribe { id: String, payload: Box<Request> },
    Complete { id: String },
}

/// What a client sends, in the legacy `graphql-ws`.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum LegacyMessage {
    ConnectionInit { payload: Option<Value> },
    Start { id: String, payload: Box<Request> },
    Stop { id: String },
    ConnectionTerminate,
}

/// A client message, whichever the subprotocol.
enum Command {
    Init(Option<Value>),
    Ping(Option<Value>),
    Pong,
    Start(String, Box<Request>),
    Stop(String),
    Terminate,
}

impl Protocol {
    fn parse(self, bytes: &[u8]) -> serde_json::Result<Command> {
        Ok(match self {
            Self::TransportWs => match serde_json::from_slice(bytes)? {
                TransportWsMessage::ConnectionInit { payload } => Command::Init(payload),
                TransportWsMessage::Ping { payload } => Command::Ping(payload),
                TransportWsMessage::Pong {} => Command::Pong,
                TransportWsMessage::Subscribe { id, payload } => Command::Start(id, payload),
                TransportWsMessage::Complete { id } => Command::Stop(id),
            },
            Self::Legacy => match serde_json::from_slice(bytes)? {
                LegacyMessage::ConnectionInit { payload } => Command::Init(payload),
                LegacyMessage::Start { id, payload } => Command::Start(id, payload),
                LegacyMessage::Stop { id } => Command::Stop(id),
                LegacyMessage::ConnectionTerminate => Command::Terminate,
            },
        })
    }
}

/// What the server sends (both subprotocols; each uses its own names).
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ServerMessage<'a> {
    ConnectionAck,
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        payload: Option<Value>,
    },
    Ka,
    Next {
        id: &'a str,
        payload: &'a Response,
    },
    Data {
        id: &'a str,
        payload: &'a Response,
    },
    Error {
        id: &'a str,
        payload: ErrorPayload<'a>,
    },
    Complete {
        id: &'a str,
    },
}

/// `graphql-transport-ws` sends a list of GraphQL errors; the legacy protocol one error.
#[derive(Serialize)]
#[serde(untagged)]
enum ErrorPayload<'a> {
    List(&'a [ServerError]),
    One(&'a ServerError),
}

/// An operation's output: its results, then its end.
enum Event {
    Result {
        first: bool,
        response: Box<Response>,
    },
    End,
}

/// How the session goes on after a step.
enum Flow {
    Continue,
    /// Close with this code and reason.
    Close(u16, String),
    /// The peer went or the socket failed: nothing more to send.
    End,
}

/// One connection's state.
struct Session {
    protocol: Protocol,
    schema: AppSchema,
    limits: Limits,
    /// `connection_init` came and was acknowledged.
    initialised: bool,
    data: Arc<Data>,
    operations: StreamMap<String, BoxStream<'static, Event>>,
}

/// Runs one connection until it closes.
async fn serve(mut ws: WebSocket, state: AppState, protocol: Protocol) {
    let limits = state.edge.limits.clone();
    let mut keepalive = KeepAlive::new(limits.ws_keepalive);
    let init_deadline = tokio::time::sleep(limits.ws_init_timeout);
    tokio::pin!(init_deadline);
    let shutdown = state.shutdown.clone();
    let mut session = Session {
        protocol,
        schema: state.schema.clone(),
        limits,
        initialised: false,
        data: Arc::new(Data::default()),
        operations: StreamMap::new(),
    };
    let write_limit = keepalive.write_limit();
    let flow = loop {
        // Each step's writes are bounded by `write_limit` (see `bounded`).
        let flow = tokio::select! {
            biased;
            _ = shutdown.cancelled() => Flow::Close(SERVICE_RESTART, "service restart".into()),
            message = ws.recv() => {
                keepalive.heard();
                match message {
                    None | Some(Ok(Message::Close(_))) => Flow::End,
                    Some(Err(err)) => match socket::close_for_read_error(err, &session.limits) {
                        Some((code, reason)) => Flow::Close(code, reason),
                        None => Flow::End,
                    },
                    Some(Ok(Message::Text(text))) => {
                        bounded(write_limit, session.receive(&mut ws, text.as_bytes())).await
                    }
                    Some(Ok(Message::Binary(bytes))) => {
                        bounded(write_limit, session.receive(&mut ws, &bytes)).await
                    }
                    Some(Ok(_)) => Flow::Continue,
                }
            },
            Some((id, event)) = session.operations.next(), if !session.operations.is_empty() => {
                bounded(write_limit, session.deliver_ready(&mut ws, id, event)).await
            },
            _ = &mut init_deadline, if !session.initialised => {
                Flow::Close(4408, "Connection initialisation timeout".into())
            },
            beat = keepalive.beat() => match beat {
                Beat::Dead => Flow::Close(socket::GOING_AWAY, keepalive.dead_reason()),
                Beat::Ping => bounded(write_limit, session.ping(&mut ws)).await,
            },
        };
        match flow {
            Flow::Continue => {
                if !matches!(
                    tokio::time::timeout(write_limit, ws.flush()).await,
                    Ok(Ok(()))
                ) {
                    break Flow::End;
                }
            }
            other => break other,
        }
    };
    // Subscriptions end here without `complete`: a closed socket says it all, and a client
    // told 1012 resubscribes them on its next connection.
    drop(session);
    match flow {
        Flow::Close(code, reason) => socket::close(&mut ws, code, &reason).await,
        // Sends the reply to a peer's close frame, when there was one.
        _ => socket::flush_briefly(&mut ws).await,
    }
}

impl Session {
    /// Handles one client message.
    async fn receive(&mut self, ws: &mut WebSocket, bytes: &[u8]) -> Flow {
        let command = match self.protocol.parse(bytes) {
            Ok(command) => command,
            Err(err) => return Flow::Close(4400, format!("Invalid message received: {err}")),
        };
        match command {
            Command::Init(payload) => {
                if self.initialised {
                    return Flow::Close(4429, "Too many initialisation requests".into());
                }
                self.initialised = true;
                let mut data = Data::default();
                data.insert(InitPayload(payload.unwrap_or(Value::Null)));
                self.data = Arc::new(data);
                if !send(ws, &ServerMessage::ConnectionAck).await {
                    return Flow::End;
                }
                if self.protocol == Protocol::Legacy && !send(ws, &ServerMessage::Ka).await {
                    return Flow::End;
                }
                Flow::Continue
            }
            Command::Ping(payload) => match send(ws, &ServerMessage::Pong { payload }).await {
                true => Flow::Continue,
                false => Flow::End,
            },
            Command::Pong => Flow::Continue,
            Command::Start(id, request) => self.start(ws, id, *request).await,
            Command::Stop(id) => {
                let stopped = self.operations.remove(&id).is_some();
                // The legacy protocol confirms a `stop`; graphql-transport-ws does not answer
                // the client's `complete`.
                if stopped
                    && self.protocol == Protocol::Legacy
                    && !send(ws, &ServerMessage::Complete { id: &id }).await
                {
                    return Flow::End;
                }
                Flow::Continue
            }
            Command::Terminate => Flow::Close(1000, String::new()),
        }
    }

    /// `subscribe` / `start`: checks the connection, the id, the limit and the document, then
    /// starts the operation.
    async fn start(&mut self, ws: &mut WebSocket, id: String, mut request: Request) -> Flow {
        if !self.initialised {
            return Flow::Close(4401, "Unauthorized".into());
        }
        if self.operations.contains_key(&id) {
            return Flow::Close(4409, format!("Subscriber for {id} already exists"));
        }
        let max = self.limits.ws_max_subscriptions;
        if self.operations.len() >= max {
            let error = ServerError::new(
                format!("too many operations on this connection: at most {max} may be open at once (WS_MAX_SUBSCRIPTIONS); complete one first"),
                None,
            );
            return self.refuse(ws, &id, vec![error]).await;
        }
        if let Err(errors) = limits::guard(&mut request) {
            return self.refuse(ws, &id, errors).await;
        }
        let events = self
            .schema
            .execute_stream_with_session_data(request, self.data.clone())
            .enumerate()
            .map(|(index, response)| Event::Result {
                first: index == 0,
                response: Box::new(response),
            })
            .chain(futures_util::stream::once(async { Event::End }))
            .boxed();
        self.operations.insert(id, events);
        Flow::Continue
    }

    /// An `error` for `id`: the operation does not run, and no `complete` follows.
    async fn refuse(&mut self, ws: &mut WebSocket, id: &str, mut errors: Vec<ServerError>) -> Flow {
        if errors.is_empty() {
            errors.push(ServerError::new("the operation was refused", None));
        }
        with_codes(&mut errors);
        let payload = match self.protocol {
            Protocol::TransportWs => ErrorPayload::List(&errors),
            Protocol::Legacy => ErrorPayload::One(&errors[0]),
        };
        match send(ws, &ServerMessage::Error { id, payload }).await {
            true => Flow::Continue,
            false => Flow::End,
        }
    }

    /// Writes `event` and every other operation output ready now, flushed once by the caller:
    /// a stored batch publishes its events together, so a client subscribed to many monitors
    /// gets them in one write instead of one system call (and one packet) per event.
    async fn deliver_ready(&mut self, ws: &mut WebSocket, id: String, event: Event) -> Flow {
        let mut next = Some((id, event));
        let mut written = 0;
        while let Some((id, event)) = next.take() {
            if let flow @ (Flow::Close(..) | Flow::End) = self.deliver(ws, id, event).await {
                return flow;
            }
            written += 1;
            if written == MAX_BATCH || self.operations.is_empty() {
                break;
            }
            next = std::future::poll_fn(|cx| {
                Poll::Ready(match self.operations.poll_next_unpin(cx) {
                    Poll::Ready(item) => item,
                    Poll::Pending => None,
                })
            })
            .await;
        }
        Flow::Continue
    }

    /// Writes one operation output.
    async fn deliver(&mut self, ws: &mut WebSocket, id: String, event: Event) -> Flow {
        let sent = match event {
            Event::End => {
                self.operations.remove(&id);
                send(ws, &ServerMessage::Complete { id: &id }).await
            }
            Event::Result {
                first,
                mut response,
            } => {
                // Parse and validation errors (no data, no path) end the operation before
                // it ran: graphql-transport-ws reports those with `error` and no `complete`.
                // The legacy protocol sends them as `data`, then `complete`, as its server did.
                if first
                    && self.protocol == Protocol::TransportWs
                    && response.data == async_graphql::Value::Null
                    && !response.errors.is_empty()
                    && response.errors.iter().all(|e| e.path.is_empty())
                {
                    self.operations.remove(&id);
                    return self
                        .refuse(ws, &id, std::mem::take(&mut response.errors))
                        .await;
                }
                with_codes(&mut response.errors);
                let message = match self.protocol {
                    Protocol::TransportWs => ServerMessage::Next {
                        id: &id,
                        payload: &response,
                    },
                    Protocol::Legacy => ServerMessage::Data {
                        id: &id,
                        payload: &response,
                    },
                };
                send(ws, &message).await
            }
        };
        match sent {
            true => Flow::Continue,
            false => Flow::End,
        }
    }

    /// A keep-alive beat: a WebSocket ping, and `ka` in the legacy protocol once acknowledged.
    async fn ping(&mut self, ws: &mut WebSocket) -> Flow {
        if ws.feed(Message::Ping(Bytes::new())).await.is_err() {
            return Flow::End;
        }
        if self.protocol == Protocol::Legacy
            && self.initialised
            && !send(ws, &ServerMessage::Ka).await
        {
            return Flow::End;
        }
        Flow::Continue
    }
}

/// Runs a step whose writes wait for the peer; a peer that takes nothing in for `limit` is
/// gone.
async fn bounded(limit: Duration, step: impl std::future::Future<Output = Flow>) -> Flow {
    tokio::time::timeout(limit, step).await.unwrap_or(Flow::End)
}

/// Errors without a code are the client's mistake (parse, validation, limits).
fn with_codes(errors: &mut [ServerError]) {
    errors.iter_mut().for_each(limits::explain);
}

/// Queues one message for the next flush; `false` when the socket is gone.
async fn send(ws: &mut WebSocket, message: &ServerMessage<'_>) -> bool {
    let text = match serde_json::to_string(message) {
        Ok(text) => text,
        Err(err) => {
            tracing::warn!(error = %err, "cannot serialise a GraphQL WebSocket message");
            return true;
        }
    };
    ws.feed(Message::Text(text.into())).await.is_ok()
}
