//! The HTTP server of Monitor Manager: GraphQL (queries, mutations, subscriptions) and the
//! REST routes of both seeds, all thin adapters over one [`service::MonitorService`].

pub mod domain;
pub mod edge;
pub mod error;
pub mod graphql;
pub mod rest;
pub mod service;

use std::{future::Future, sync::Arc};

use axum::{routing::get, serve::ListenerExt, Router};
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use worker::{Engine, ScheduleNotifier, SqliteReads};

use crate::{graphql::AppSchema, service::MonitorService};

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Monitor operations: the one place they live.
    pub monitors: MonitorService,
    /// The GraphQL schema, holding the same service.
    pub schema: AppSchema,
    /// Parsed GraphQL queries, by their text.
    pub documents: graphql::DocumentCache,
    /// Cancelled at shutdown: live streams (subscriptions, `/ws`) end cleanly.
    pub shutdown: CancellationToken,
    /// Origins, hosts and connection limits.
    pub edge: Arc<edge::EdgeConfig>,
}

impl AppState {
    /// State over a database; `reads` serves the hot reads on SQLite, `engine` runs and
    /// publishes checks, `schedule` hears about monitor changes, `shutdown` ends live streams,
    /// `edge` holds the edge policy.
    pub fn new(
        db: DatabaseConnection,
        reads: Option<SqliteReads>,
        engine: Engine,
        schedule: ScheduleNotifier,
        shutdown: CancellationToken,
        edge: edge::EdgeConfig,
    ) -> Self {
        let monitors = MonitorService::new(db, reads, engine, schedule);
        let schema = graphql::build_schema(monitors.clone(), shutdown.clone());
        Self {
            monitors,
            schema,
            documents: graphql::DocumentCache::default(),
            shutdown,
            edge: Arc::new(edge),
        }
    }
}

/// Every route of the server.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/graphql/ws", get(graphql::graphql_ws))
        .route(
            graphql::graphiql::ASSETS_PATH,
            get(graphql::graphiql::asset),
        )
        .route(
            "/graphql",
            get(graphql::graphiql).post(graphql::graphql_handler),
        )
        .merge(rest::routes())
        .fallback(rest::no_route)
        .method_not_allowed_fallback(rest::method_not_allowed)
        .with_state(state)
}

/// Serves until `shutdown` completes, then lets requests in flight finish.
///
/// Accepted connections get `TCP_NODELAY`. Responses and subscription messages are written
/// whole and flushed, so there is nothing for Nagle's algorithm to gain, and it held back a
/// short segment while earlier data was unacknowledged: when a subscriber's batch of events
/// went out in two writes, the second waited for the client's delayed ACK, about 40 ms (at
/// 100,000 monitors every 60 s, subscription delay p99 56 ms against 15 ms without it).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = listener.tap_io(|stream| {
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY on an accepted connection");
        }
    });
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
