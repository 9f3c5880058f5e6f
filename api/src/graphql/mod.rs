//! The GraphQL schema: queries, mutations and subscriptions over the monitor service, the
//! `POST /graphql` handler and GraphiQL on `GET /graphql`.

mod mutation;
mod paging;
mod query;
mod types;

use async_graphql::{EmptySubscription, Schema, ID};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::{extract::State, response::Html};

pub use mutation::Mutation;
pub use query::Query;

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
pub type AppSchema = Schema<Query, Mutation, EmptySubscription>;

/// Builds the schema over a monitor service.
pub fn build_schema(monitors: MonitorService) -> AppSchema {
    Schema::build(Query, Mutation, EmptySubscription)
        .data(monitors)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

/// The schema's SDL, as committed in `schema.graphql`.
pub fn sdl() -> String {
    Schema::build(Query, Mutation, EmptySubscription)
        .finish()
        .sdl()
}

/// Parses a GraphQL `ID` argument into a row id.
pub(crate) fn parse_gql_id(name: &'static str, id: &ID) -> async_graphql::Result<i64> {
    parse_id(id)
        .map_err(|problem| ApiError::invalid(name, problem))
        .gql()
}

/// `POST /graphql`. Errors that async-graphql raised itself while parsing or validating the
/// request carry no code; they are the client's mistake, so they get `BAD_USER_INPUT`.
pub async fn graphql_handler(
    State(state): State<AppState>,
    request: GraphQLRequest,
) -> GraphQLResponse {
    let mut response = state.schema.execute(request.into_inner()).await;
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            extensions.set("code", "BAD_USER_INPUT");
        }
    }
    response.into()
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
