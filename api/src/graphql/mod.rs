//! The GraphQL schema: queries, mutations and subscriptions over the monitor service, the
//! `POST /graphql` handler and GraphiQL on `GET /graphql`.

mod mutation;
mod paging;
mod query;
mod subscription;
mod types;

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql::ParseRequestError;
use async_graphql::{Schema, ID};
use async_graphql_axum::{
    rejection::GraphQLRejection, GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket,
};
use axum::{
    extract::{State, WebSocketUpgrade},
    http::StatusCode,
    response::{Html, IntoResponse, Response},
    Json,
};

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
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .read_buffer_size(WS_BUFFER)
        .write_buffer_size(WS_BUFFER)
        .max_message_size(WS_MAX_MESSAGE)
        .max_frame_size(WS_MAX_MESSAGE)
        .on_upgrade(move |stream| GraphQLWebSocket::new(stream, state.schema, protocol).serve())
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
    let mut response = state.schema.execute(request.into_inner()).await;
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            extensions.set("code", "BAD_USER_INPUT");
        }
    }
    GraphQLResponse::from(response).into_response()
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

/// `GET /graphql`: GraphiQL.
pub async fn graphiql() -> Html<String> {
    Html(
        async_graphql::http::GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .title("Monitor Manager")
            .finish(),
    )
}
