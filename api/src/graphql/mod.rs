//! The GraphQL schema: queries, mutations and subscriptions over the monitor service, and
//! GraphiQL; [`http`] serves `/graphql`, [`ws`] serves `/graphql/ws`.

mod checks;
pub mod graphiql;
pub mod http;
mod incidents;
pub mod limits;
mod maintenance;
mod mutation;
mod notifications;
mod paging;
mod query;
mod subscription;
mod types;
pub mod ws;

use async_graphql::{Schema, ID};
use axum::response::Response;

pub use checks::camel_case_path;
pub use mutation::Mutation;
pub use query::Query;
pub use subscription::Subscription;
pub use ws::graphql_ws;

use domain::parse_id;
use service::MonitorService;

use crate::error::{ApiError, IntoGraphql};

/// Most complex query accepted: each field counts 1, a list field its fields `first` times.
pub const MAX_COMPLEXITY: usize = 10_000;

/// The schema type.
pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// Builds the schema over a monitor service. Subscriptions end with their WebSocket (which
/// closes at shutdown, see [`ws`]).
pub fn build_schema(monitors: MonitorService) -> AppSchema {
    Schema::build(Query, Mutation, Subscription)
        .data(monitors)
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

/// `GET /graphql`: GraphiQL, served from the binary's own assets ([`graphiql`]).
pub async fn graphiql() -> Response {
    graphiql::page()
}
