//! The transports of Monitor Manager: GraphQL (queries, mutations, subscriptions), the REST
//! routes of the `/monitors` and `/services` APIs and the WebSockets, all thin adapters over
//! one [`MonitorService`]. No SQL here: the crate cannot reach the database but through
//! `service`.

pub mod edge;
pub mod error;
pub mod graphql;
pub mod rest;
pub mod server;
pub mod socket;
mod state;

pub use state::AppState;

use std::future::Future;

use axum::{routing::get, Router};
use tokio::net::TcpListener;

/// Every route of the server, behind the edge checks.
pub fn router(state: AppState) -> Router {
    let cors = server::cors(&state.edge.cors_allowed_origins);
    let mut router = Router::new()
        .route("/graphql/ws", get(graphql::graphql_ws))
        .route(
            graphql::graphiql::ASSETS_PATH,
            get(graphql::graphiql::asset),
        )
        .route(
            "/graphql",
            get(graphql::http::get).post(graphql::http::post).layer(
                axum::extract::DefaultBodyLimit::max(graphql::http::BODY_LIMIT_BYTES),
            ),
        )
        .merge(rest::routes())
        .fallback(rest::no_route)
        .method_not_allowed_fallback(rest::method_not_allowed)
        .with_state(state.clone());
    if let Some(cors) = cors {
        router = router.layer(cors);
    }
    router.layer(axum::middleware::from_fn_with_state(
        state,
        server::edge_checks,
    ))
}

/// Serves until `shutdown` completes, then lets requests in flight finish for up to `grace`.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: std::time::Duration,
) -> std::io::Result<()> {
    server::serve(listener, state, shutdown, grace).await
}
