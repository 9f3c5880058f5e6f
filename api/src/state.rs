//! What every request handler can reach.

use std::sync::Arc;

use service::MonitorService;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::graphql::AppSchema;
use crate::{edge, graphql};

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
