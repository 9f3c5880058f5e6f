//! `Subscription`: live check results and status changes, over `/graphql/ws`
//! (graphql-transport-ws and the legacy graphql-ws protocol).

use std::sync::Arc;

use async_graphql::{Context, ErrorExtensions, Object, Subscription, ID};
use futures_util::{Stream, StreamExt};
use service::{CheckEvent, MonitorService};
use tokio_stream::wrappers::{errors::BroadcastStreamRecvError, BroadcastStream};

use super::{
    parse_gql_id,
    types::{CheckResult, CheckStatus, Monitor},
};
use crate::error::{ApiError, IntoGraphql};

/// A monitor's confirmed status changed (after its failure or success threshold): its first
/// confirmation, UP -> DOWN or DOWN -> UP.
pub struct StatusChange(Arc<CheckEvent>);

#[Object]
impl StatusChange {
    /// The monitor after the change.
    async fn monitor(&self) -> Monitor {
        Monitor(self.0.monitor.clone())
    }
    /// The confirmed status before; null for the monitor's first confirmation.
    async fn old_status(&self) -> Option<CheckStatus> {
        self.0.change.and_then(|c| c.from).map(Into::into)
    }
    /// The confirmed status now.
    async fn new_status(&self) -> CheckStatus {
        self.0.change.map_or(self.0.result.status, |c| c.to).into()
    }
    /// The check that confirmed the change.
    async fn check_result(&self) -> CheckResult {
        CheckResult(self.0.result.clone())
    }
}

pub struct Subscription;

#[Subscription]
impl Subscription {
    /// Every stored check, or only one monitor's.
    async fn check_results(
        &self,
        ctx: &Context<'_>,
        monitor_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<CheckResult>>> {
        let events = events(ctx, monitor_id).await?;
        Ok(events.map(|event| event.map(|e| CheckResult(e.result.clone()))))
    }

    /// Status changes (first result, UP -> DOWN, DOWN -> UP), or only one monitor's.
    async fn status_changes(
        &self,
        ctx: &Context<'_>,
        monitor_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<StatusChange>>> {
        let events = events(ctx, monitor_id).await?;
        Ok(events.filter_map(|event| async move {
            match event {
                Ok(e) if e.is_status_change() => Some(Ok(StatusChange(e))),
                Ok(_) => None,
                Err(err) => Some(Err(err)),
            }
        }))
    }

    /// Incidents as they open and resolve, or only one monitor's.
    async fn incident_changes(
        &self,
        ctx: &Context<'_>,
        monitor_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<super::incidents::Incident>>>
    {
        let events = events(ctx, monitor_id).await?;
        let service = ctx.data_unchecked::<MonitorService>().clone();
        Ok(super::incidents::incident_changes(service, events))
    }
}

/// This process's check events, filtered to one monitor when asked. A subscriber that fell
/// behind gets an error item saying how many events it missed. The stream does not end at
/// shutdown: its WebSocket closes with 1012 instead, so clients resubscribe.
async fn events(
    ctx: &Context<'_>,
    monitor_id: Option<ID>,
) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<Arc<CheckEvent>>>> {
    let service = ctx.data_unchecked::<MonitorService>();
    let filter = match monitor_id {
        None => None,
        Some(id) => {
            let id = parse_gql_id("monitorId", &id)?;
            if !service.exists(id).await.gql()? {
                return Err(ApiError::NotFound {
                    what: "monitor",
                    id,
                })
                .gql();
            }
            Some(id)
        }
    };
    // A per-monitor channel: this subscriber is woken only for its monitor's events.
    let receiver = match filter {
        Some(id) => service.subscribe_to(id),
        None => service.subscribe(),
    };
    let stream = BroadcastStream::new(receiver).map(|item| {
        item.map_err(|BroadcastStreamRecvError::Lagged(missed)| {
            async_graphql::Error::new(format!(
                "this subscriber fell behind; {missed} events were dropped"
            ))
            .extend_with(|_, ext| {
                ext.set("code", "LAGGED");
                ext.set("missed", missed);
            })
        })
    });
    Ok(stream)
}
