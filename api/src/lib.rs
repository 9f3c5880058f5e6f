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

use std::{future::Future, sync::Arc};

use axum::{routing::get, Router};
use service::MonitorService;
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::graphql::AppSchema;

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Monitor operations: the one place they live.
    pub monitors: MonitorService,
    /// The GraphQL schema, holding the same service.
    pub schema: AppSchema,
    /// Parsed GraphQL queries, by their text.
    pub documents: graphql::http::DocumentCache,
    /// Apollo's persisted queries, by their hash.
    pub persisted: graphql::http::PersistedQueries,
    /// Cancelled at shutdown: WebSockets (subscriptions, `/ws`) close with 1012.
    pub shutdown: CancellationToken,
    /// Open WebSocket sessions; shutdown waits (briefly) for their close frames to go out.
    pub sockets: TaskTracker,
    /// Origins, hosts and connection limits.
    pub edge: Arc<edge::EdgeConfig>,
}

impl AppState {
    /// State over the operations of `monitors`; `shutdown` closes WebSockets, `edge` holds
    /// the edge policy.
    pub fn new(
        monitors: MonitorService,
        shutdown: CancellationToken,
        edge: edge::EdgeConfig,
    ) -> Self {
        let schema = graphql::build_schema(monitors.clone());
        Self {
            monitors,
            schema,
            documents: Default::default(),
            persisted: Default::default(),
            shutdown,
            sockets: TaskTracker::new(),
            edge: Arc::new(edge),
        }
    }
}

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
