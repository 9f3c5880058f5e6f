//! The GraphQL schema: queries, mutations and subscriptions over the monitor service, the
//! `POST /graphql` handler and GraphiQL on `GET /graphql`.

pub mod graphiql;
pub mod limits;
mod mutation;
mod paging;
mod query;
mod subscription;
mod types;

use async_graphql::http::{
    WebSocket as GraphQLSession, WebSocketProtocols, WsMessage, ALL_WEBSOCKET_PROTOCOLS,
};
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::parser::types::ExecutableDocument;
use async_graphql::ParseRequestError;
use async_graphql::{Schema, ID};
use async_graphql_axum::{rejection::GraphQLRejection, GraphQLRequest, GraphQLResponse};
use axum::{
    extract::{
        ws::{CloseFrame, Message, WebSocket},
        State, WebSocketUpgrade,
    },
    http::{header::SEC_WEBSOCKET_PROTOCOL, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};

use futures_util::{SinkExt, StreamExt};
use hashlink::LruCache;

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

/// Deepest query accepted.
pub const MAX_DEPTH: usize = 12;
/// Most complex query accepted.
pub const MAX_COMPLEXITY: usize = 5_000;

/// The schema type.
pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// Builds the schema over a monitor service; subscriptions end when `shutdown` is cancelled.
pub fn build_schema(monitors: MonitorService, shutdown: CancellationToken) -> AppSchema {
    Schema::build(Query, Mutation, Subscription)
        .data(monitors)
        .data(shutdown)
        .limit_depth(MAX_DEPTH)
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

/// `POST /graphql`. Errors that async-graphql raised itself while parsing or validating the
/// request carry no code; they are the client's mistake, so they get `BAD_USER_INPUT`.
pub async fn graphql_handler(
    State(state): State<AppState>,
    request: Result<GraphQLRequest, GraphQLRejection>,
) -> Response {
    let request = match request {
        Ok(request) => request,
        Err(GraphQLRejection(err)) => return request_error(err),
    };
    let mut request = request.into_inner();
    let parsed = state.documents.prepare(&mut request);
    let mut response = state.schema.execute(request).await;
    if let Some(parsed) = parsed.filter(|_| response.errors.is_empty()) {
        state.documents.keep(parsed);
    }
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            extensions.set("code", "BAD_USER_INPUT");
        }
    }
    GraphQLResponse::from(response).into_response()
}

/// Most query documents kept parsed.
const CACHED_DOCUMENTS: usize = 128;
/// Longest query text kept parsed, in bytes: with the count above, at most about 15 MB of
/// parsed documents whatever clients send (a 1 KiB query of bare fields parses to about 100 KB).
const MAX_CACHED_QUERY: usize = 1024;

/// Parsed query documents of `POST /graphql`, by query text, least recently used dropped
/// first. Clients send the same few queries again and again (a dashboard polls with one), and
/// async-graphql's parser is a tenth of such a read's CPU; a cached document is cloned
/// instead. A document is cached only once a request with it got an answer without errors, so
/// queries that fail to parse or validate never take a place. The checks that depend on more
/// than the text (depth, complexity with the request's variables, the rest of validation) run
/// for every request as before.
#[derive(Clone)]
pub struct DocumentCache(Arc<Mutex<LruCache<String, ExecutableDocument>>>);

impl Default for DocumentCache {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(LruCache::new(CACHED_DOCUMENTS))))
    }
}

impl DocumentCache {
    /// Gives `request` its cached document, or parses it; a fresh parse is returned, to be
    /// kept with [`DocumentCache::keep`] if the request succeeds. A query that does not parse
    /// is left to the schema, which reports the error.
    pub fn prepare(
        &self,
        request: &mut async_graphql::Request,
    ) -> Option<(String, ExecutableDocument)> {
        if request.query.len() > MAX_CACHED_QUERY {
            return None;
        }
        let cached = self.lock().get(&request.query).cloned();
        if let Some(document) = cached {
            request.set_parsed_query(document);
            return None;
        }
        let document = request.parsed_query().ok()?.clone();
        Some((request.query.clone(), document))
    }

    /// Keeps a document that [`DocumentCache::prepare`] parsed.
    pub fn keep(&self, (query, document): (String, ExecutableDocument)) {
        self.lock().insert(query, document);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<String, ExecutableDocument>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A request that is not a GraphQL request at all (bad JSON, wrong content type, too large):
/// a GraphQL-shaped error body with a 4xx status.
fn request_error(err: ParseRequestError) -> Response {
    let (status, message) = match err {
        ParseRequestError::PayloadTooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body is too large".to_owned(),
        ),
        ParseRequestError::InvalidRequest(e) => (
            StatusCode::BAD_REQUEST,
            format!("request body is not a valid GraphQL request: {e}"),
        ),
        other => (
            StatusCode::BAD_REQUEST,
            format!("request is not a valid GraphQL request: {other}"),
        ),
    };
    let body = serde_json::json!({
        "data": null,
        "errors": [{ "message": message, "extensions": { "code": "BAD_USER_INPUT" } }],
    });
    (status, Json(body)).into_response()
}

/// `GET /graphql`: GraphiQL, served from the binary's own assets ([`graphiql`]).
pub async fn graphiql() -> Response {
    graphiql::page()
}
