//! Incidents on GraphQL: the `Incident` type, its page, and the query, mutation and
//! subscription pieces that `Query`, `Mutation` and `Subscription` delegate to.

use std::sync::Arc;

use async_graphql::{
    connection::{Connection, EmptyFields},
    Context, Object, ID,
};
use futures_util::{Stream, StreamExt};
use service::{CheckEvent, IncidentFilter, MonitorService};

use super::{
    paging::{connection, Cursor, PageArgs},
    types::{CheckResult, Monitor, Timestamp},
};
use crate::error::{ApiError, IntoGraphql};

/// A confirmed outage of a monitor: from the check that confirmed it DOWN (after its failure
/// threshold) to the one that confirmed it UP again.
pub struct Incident(pub service::Incident);

#[Object]
impl Incident {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn monitor_id(&self) -> ID {
        ID(self.0.monitor_id.to_string())
    }
    /// The monitor (null only if it was deleted a moment ago).
    async fn monitor(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Monitor>> {
        let service = ctx.data_unchecked::<MonitorService>();
        Ok(service.find(self.0.monitor_id).await.gql()?.map(Monitor))
    }
    /// When the check that confirmed the monitor DOWN ran.
    async fn started_at(&self) -> Timestamp {
        Timestamp(self.0.started_at)
    }
    /// When the check that confirmed it UP again ran; null while open.
    async fn resolved_at(&self) -> Option<Timestamp> {
        self.0.resolved_at.map(Timestamp)
    }
    /// True until resolved.
    async fn open(&self) -> bool {
        self.0.is_open()
    }
    /// From start to resolution, or to now while open.
    async fn duration_seconds(&self) -> i64 {
        self.0.duration_seconds(service::now())
    }
    /// The check that opened it (null once the result retention removed it).
    async fn cause(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<CheckResult>> {
        result(ctx, self.0.monitor_id, Some(self.0.started_seq)).await
    }
    /// The check that resolved it; null while open.
    async fn resolved_by(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<CheckResult>> {
        result(ctx, self.0.monitor_id, self.0.resolved_seq).await
    }
    async fn acknowledged_at(&self) -> Option<Timestamp> {
        self.0.acknowledged_at.map(Timestamp)
    }
    /// The acknowledgement's note.
    async fn acknowledgement(&self) -> Option<&str> {
        self.0.acknowledgement.as_deref()
    }
}

async fn result(
    ctx: &Context<'_>,
    monitor_id: i64,
    seq: Option<i32>,
) -> async_graphql::Result<Option<CheckResult>> {
    let Some(seq) = seq else { return Ok(None) };
    let service = ctx.data_unchecked::<MonitorService>();
    Ok(service
        .result_by_seq(monitor_id, seq)
        .await
        .gql()?
        .map(CheckResult))
}

/// A page of incidents, newest first.
pub type IncidentConnection = Connection<Cursor, Incident, EmptyFields>;

/// The filters of `Query.incidents`.
pub struct IncidentArgs {
    pub monitor_id: Option<i64>,
    pub open: Option<bool>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

pub async fn incidents_page(
    ctx: &Context<'_>,
    args: IncidentArgs,
    page: PageArgs,
) -> async_graphql::Result<IncidentConnection> {
    let (first, after) = page.parse().gql()?;
    let before = match after {
        None => None,
        Some(Cursor::Incident(id)) => Some(id),
        Some(_) => {
            return Err(ApiError::invalid("after", "is not a cursor of incidents")).gql();
        }
    };
    let filter = IncidentFilter {
        monitor_id: args.monitor_id,
        open: args.open,
        from: args.from.map(|t| t.0),
        to: args.to.map(|t| t.0),
    };
    let service = ctx.data_unchecked::<MonitorService>();
    let page = service.incidents(filter, before, first).await.gql()?;
    Ok(connection(
        page,
        EmptyFields,
        |i| Cursor::Incident(i.id),
        Incident,
    ))
}

/// Incidents as they open and resolve, from `events` (one monitor's or all).
pub fn incident_changes(
    service: MonitorService,
    events: impl Stream<Item = async_graphql::Result<Arc<CheckEvent>>>,
) -> impl Stream<Item = async_graphql::Result<Incident>> {
    events.filter_map(move |event| {
        let service = service.clone();
        async move {
            match event {
                Ok(e) if e.incident.is_some() => match service.incident_of(&e).await {
                    Ok(found) => found.map(|i| Ok(Incident(i))),
                    Err(err) => Some(Err(ApiError::from(err)).gql()),
                },
                Ok(_) => None,
                Err(err) => Some(Err(err)),
            }
        }
    })
}
