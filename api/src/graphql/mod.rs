//! The GraphQL schema: queries, mutations and subscriptions over the monitor service, the
//! WebSocket sessions and GraphiQL; HTTP is in [`http`].

pub mod graphiql;
pub mod http;
pub mod limits;
mod mutation;
mod paging;
mod query;
mod subscription;
mod types;

use async_graphql::http::{
    WebSocket as GraphQLSession, WebSocketProtocols, WsMessage, ALL_WEBSOCKET_PROTOCOLS,
};

use async_graphql::{Schema, ID};
use axum::{
    extract::{
        ws::{CloseFrame, Message, WebSocket},
        State, WebSocketUpgrade,
    },
    http::{header::SEC_WEBSOCKET_PROTOCOL, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};

use futures_util::{SinkExt, StreamExt};

pub use mutation::Mutation;
pub use query::Query;
pub use subscription::Subscription;

use tokio_util::sync::CancellationToken;

use crate::{
    domain::parse_id,
    error::{ApiError, IntoGraphql},
    service::MonitorService,
    AppState,
};

/// Most complex query accepted: each field counts 1, a list field its fields `first` times.
pub const MAX_COMPLEXITY: usize = 10_000;

/// The schema type.
pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// Builds the schema over a monitor service; subscriptions end when `shutdown` is cancelled.
pub fn build_schema(monitors: MonitorService, shutdown: CancellationToken) -> AppSchema {
    Schema::build(Query, Mutation, Subscription)
        .data(monitors)
        .data(shutdown)
        .limit_depth(limits::MAX_DEPTH)
        .limit_recursive_depth(limits::MAX_NESTING)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

/// The schema's SDL, as committed in `schema.graphql`.
pub fn sdl() -> String {
    Schema::build(Query, Mutation, Subscription).finish().sdl()
}

/// Parses a GraphQL `ID` argument into a row id.
pub(crate) fn parse_gql_id(name: &'static str, id: &ID) -> async_graphql::Result<i64> {
    parse_id(id)
        .map_err(|problem| ApiError::invalid(name, problem))
        .gql()
}

/// Buffer sizes of one subscription WebSocket. The library defaults (128 KiB each way) made a
/// thousand idle dashboards cost a quarter of a gigabyte; messages here are small.
const WS_BUFFER: usize = 4 * 1024;
/// Largest message a subscription client may send (a `subscribe` carries one query).
const WS_MAX_MESSAGE: usize = 1024 * 1024;

/// `GET /graphql/ws`: subscriptions over graphql-transport-ws or the legacy graphql-ws.
pub async fn graphql_ws(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    // The subprotocol the client asked for, as async-graphql-axum's `GraphQLProtocol` reads it.
    let Some(protocol) = headers
        .get(SEC_WEBSOCKET_PROTOCOL)
        .and_then(|value| value.to_str().ok())
        .and_then(|offered| {
            offered
                .split(',')
                .find_map(|name| name.trim().parse::<WebSocketProtocols>().ok())
        })
    else {
        return (
            StatusCode::BAD_REQUEST,
            "Sec-WebSocket-Protocol must offer graphql-transport-ws or graphql-ws",
        )
            .into_response();
    };
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .read_buffer_size(WS_BUFFER)
        .write_buffer_size(WS_BUFFER)
        .max_message_size(WS_MAX_MESSAGE)
        .max_frame_size(WS_MAX_MESSAGE)
        .on_upgrade(move |socket| serve_subscriptions(socket, state.schema, protocol))
}

/// Runs one subscription session: async-graphql's protocol handling, as
/// `async_graphql_axum::GraphQLWebSocket::serve` runs it, except that every message ready at
/// once is written with one flush. A stored batch publishes its events together, so a client
/// subscribed to many monitors gets them in one write instead of one system call (and one
/// loopback or network packet) per event.
async fn serve_subscriptions(socket: WebSocket, schema: AppSchema, protocol: WebSocketProtocols) {
    let (mut sink, incoming) = socket.split();
    let input = incoming
        .take_while(|message| futures_util::future::ready(message.is_ok()))
        .filter_map(|message| {
            futures_util::future::ready(match message {
                Ok(message @ (Message::Text(_) | Message::Binary(_))) => Some(message.into_data()),
                _ => None,
            })
        });
    let mut output = GraphQLSession::new(schema, input, protocol).map(|message| {
        Ok(match message {
            WsMessage::Text(text) => Message::Text(text.into()),
            WsMessage::Close(code, reason) => Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })),
        })
    });
    // Ends when the client goes away or the session closes.
    let _ = sink.send_all(&mut output).await;
}

/// `GET /graphql`: GraphiQL, served from the binary's own assets ([`graphiql`]).
pub async fn graphiql() -> Response {
    graphiql::page()
}
