//! `Query`: monitors, check history and incidents.

use async_graphql::{Context, Object, ID};

use super::{
    incidents::{incidents_page, IncidentArgs, IncidentConnection},
    paging::{page_complexity, PageArgs},
    parse_gql_id,
    types::{
        check_results_page, monitors_page, Monitor, MonitorConnection, ResultConnection, Timestamp,
    },
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

    /// Incidents, newest first, optionally of one monitor, only open or resolved ones, or
    /// those overlapping a window.
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    #[allow(clippy::too_many_arguments)]
    async fn incidents(
        &self,
        ctx: &Context<'_>,
        monitor_id: Option<ID>,
        #[graphql(desc = "Only open (true) or only resolved (false) incidents.")] open: Option<
            bool,
        >,
        #[graphql(desc = "Only incidents not resolved before this time.")] from: Option<Timestamp>,
        #[graphql(desc = "Only incidents started by this time.")] to: Option<Timestamp>,
        #[graphql(desc = "How many incidents (0 to 1000, default 50).")] first: Option<i32>,
        #[graphql(desc = "Return incidents older than this cursor.")] after: Option<String>,
    ) -> async_graphql::Result<IncidentConnection> {
        let monitor_id = monitor_id
            .map(|id| parse_gql_id("monitorId", &id))
            .transpose()?;
        let args = IncidentArgs {
            monitor_id,
            open,
            from,
            to,
        };
        incidents_page(ctx, args, PageArgs { first, after }).await
    }

    /// One incident, or null when there is none with this id.
    async fn incident(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<super::incidents::Incident>> {
        let id = parse_gql_id("id", &id)?;
        let service = ctx.data_unchecked::<MonitorService>();
        match service.incident(id).await {
            Ok(incident) => Ok(Some(super::incidents::Incident(incident))),
            Err(service::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err).gql(),
        }
    }

    /// Every maintenance window, oldest first.
    async fn maintenance_windows(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<super::maintenance::MaintenanceWindow>> {
        let service = ctx.data_unchecked::<MonitorService>();
        let windows = service.maintenance_windows().await.gql()?;
        Ok(windows
            .into_iter()
            .map(super::maintenance::MaintenanceWindow)
            .collect())
    }

    /// One maintenance window, or null when there is none with this id.
    async fn maintenance_window(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<super::maintenance::MaintenanceWindow>> {
        let id = parse_gql_id("id", &id)?;
        let service = ctx.data_unchecked::<MonitorService>();
        match service.maintenance_window(id).await {
            Ok(window) => Ok(Some(super::maintenance::MaintenanceWindow(window))),
            Err(service::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err).gql(),
        }
    }

    /// Every notification channel, oldest first.
    async fn notification_channels(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<super::notifications::NotificationChannel>> {
        let service = ctx.data_unchecked::<MonitorService>();
        let channels = service.channels().await.gql()?;
        Ok(channels
            .into_iter()
            .map(super::notifications::NotificationChannel)
            .collect())
    }

    /// One notification channel, or null when there is none with this id.
    async fn notification_channel(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<super::notifications::NotificationChannel>> {
        let id = parse_gql_id("id", &id)?;
        let service = ctx.data_unchecked::<MonitorService>();
        match service.channel(id).await {
            Ok(channel) => Ok(Some(super::notifications::NotificationChannel(channel))),
            Err(service::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err).gql(),
        }
    }

    /// Notification deliveries with their attempts, newest first, of one channel or all.
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    async fn notification_deliveries(
        &self,
        ctx: &Context<'_>,
        channel_id: Option<ID>,
        #[graphql(desc = "How many deliveries (0 to 1000, default 50).")] first: Option<i32>,
        #[graphql(desc = "Return deliveries older than this cursor.")] after: Option<String>,
    ) -> async_graphql::Result<super::notifications::DeliveryConnection> {
        super::notifications::deliveries_page(ctx, channel_id, PageArgs { first, after }).await
    }
}
