//! `Query`: monitors and check history.

use async_graphql::{Context, Object, ID};

use super::{
    paging::{page_complexity, PageArgs},
    parse_gql_id,
    types::{check_results_page, monitors_page, Monitor, MonitorConnection, ResultConnection},
};
use service::MonitorService;

use crate::error::IntoGraphql;

pub struct Query;

#[Object]
impl Query {
    /// Monitors, oldest first.
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    async fn monitors(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many monitors (0 to 1000, default 50).")] first: Option<i32>,
        #[graphql(desc = "Return monitors after this cursor.")] after: Option<String>,
        #[graphql(desc = "Only active (true) or only paused (false) monitors.")] active: Option<
            bool,
        >,
    ) -> async_graphql::Result<MonitorConnection> {
        monitors_page(ctx, PageArgs { first, after }, active).await
    }

    /// One monitor, or null when there is none with this id.
    async fn monitor(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Monitor>> {
        let id = parse_gql_id("id", &id)?;
        let service = ctx.data_unchecked::<MonitorService>();
        Ok(service.find(id).await.gql()?.map(Monitor))
    }

    /// One monitor's check history, newest first.
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    async fn check_results(
        &self,
        ctx: &Context<'_>,
        monitor_id: ID,
        #[graphql(desc = "How many results (0 to 1000, default 50).")] first: Option<i32>,
        #[graphql(desc = "Return results older than this cursor.")] after: Option<String>,
    ) -> async_graphql::Result<ResultConnection> {
        let monitor_id = parse_gql_id("monitorId", &monitor_id)?;
        check_results_page(ctx, monitor_id, PageArgs { first, after }).await
    }
}
