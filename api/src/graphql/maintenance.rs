//! Maintenance windows: the type, its inputs, and their conversion to the service's.

use async_graphql::{Context, InputObject, MaybeUndefined, Object, ID};
use domain::maintenance;
use service::{MonitorService, NewWindow, WindowPatch};

use super::{
    parse_gql_id,
    types::{Monitor, Timestamp},
};
use crate::error::IntoGraphql;

/// Planned downtime: checks still run and are stored (`inMaintenance: true`), but no
/// incident opens and nothing is sent; the monitors' state is `MAINTENANCE`.
pub struct MaintenanceWindow(pub maintenance::MaintenanceWindow);

#[Object]
impl MaintenanceWindow {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Covers every monitor (it was made with no `monitorIds`).
    async fn all_monitors(&self) -> bool {
        self.0.all_monitors
    }
    /// The monitors it names (none when it covers all).
    async fn monitors(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Monitor>> {
        let service = ctx.data_unchecked::<MonitorService>();
        let mut out = Vec::with_capacity(self.0.monitor_ids.len());
        for &id in &self.0.monitor_ids {
            if let Some(monitor) = service.find(id).await.gql()? {
                out.push(Monitor(monitor));
            }
        }
        Ok(out)
    }
    /// Their ids.
    async fn monitor_ids(&self) -> Vec<ID> {
        self.0
            .monitor_ids
            .iter()
            .map(|id| ID(id.to_string()))
            .collect()
    }
    /// A one-off window's start; a recurring window's first day (occurrences begin at or
    /// after it).
    async fn starts_at(&self) -> Timestamp {
        Timestamp(self.0.starts_at)
    }
    /// A one-off window's end; for a recurring one, `endsAt - startsAt` is each occurrence's
    /// length.
    async fn ends_at(&self) -> Timestamp {
        Timestamp(self.0.ends_at)
    }
    /// A five-field cron expression (minute hour day month weekday) for the start of each
    /// occurrence, read in `timeZone`; null for a one-off window.
    async fn recurrence(&self) -> Option<&str> {
        self.0.recurrence.as_deref()
    }
    /// An IANA time zone name (default UTC).
    async fn time_zone(&self) -> &str {
        &self.0.time_zone
    }
    /// In effect now.
    async fn active(&self) -> bool {
        self.0.active
    }
    /// When it was ended early (the occurrence then in effect ended there).
    async fn ended_at(&self) -> Option<Timestamp> {
        self.0.ended_at.map(Timestamp)
    }
    /// The start of the occurrence in effect now, or of the next one; null when none is to
    /// come within a year.
    async fn current_starts_at(&self) -> Option<Timestamp> {
        self.0.current_or_next.map(|(s, _)| Timestamp(s))
    }
    /// The end of that occurrence.
    async fn current_ends_at(&self) -> Option<Timestamp> {
        self.0.current_or_next.map(|(_, e)| Timestamp(e))
    }
    async fn created_at(&self) -> Timestamp {
        Timestamp(self.0.created_at)
    }
    async fn updated_at(&self) -> Timestamp {
        Timestamp(self.0.updated_at)
    }
}

/// A new window. Times are RFC 3339; `endsAt` after `startsAt`, at most 31 days later. With
/// `recurrence` (a cron expression such as `0 2 * * SAT`, in `timeZone`), the window opens at
/// each time it gives from `startsAt` on and lasts `endsAt - startsAt` each time; occurrences
/// may not overlap each other, and no window may overlap another for the same monitor.
#[derive(InputObject)]
pub struct CreateMaintenanceWindowInput {
    /// 1 to 200 characters, unique.
    pub name: String,
    /// The monitors it covers (at most 1000); empty or absent: all monitors.
    pub monitor_ids: Option<Vec<ID>>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub recurrence: Option<String>,
    /// An IANA time zone name such as Europe/Berlin (default UTC).
    pub time_zone: Option<String>,
}

/// A change to a window: what is omitted stays; `recurrence: null` makes it one-off.
#[derive(InputObject)]
pub struct UpdateMaintenanceWindowInput {
    pub name: Option<String>,
    pub monitor_ids: Option<Vec<ID>>,
    pub starts_at: Option<Timestamp>,
    pub ends_at: Option<Timestamp>,
    pub recurrence: MaybeUndefined<String>,
    pub time_zone: Option<String>,
}

fn monitor_ids(ids: Option<Vec<ID>>) -> async_graphql::Result<Option<Vec<i64>>> {
    ids.map(|ids| {
        ids.iter()
            .map(|id| parse_gql_id("monitorIds", id))
            .collect::<async_graphql::Result<Vec<i64>>>()
    })
    .transpose()
}

impl CreateMaintenanceWindowInput {
    pub fn parse(self) -> async_graphql::Result<NewWindow> {
        Ok(NewWindow {
            name: self.name,
            monitor_ids: monitor_ids(self.monitor_ids)?.unwrap_or_default(),
            starts_at: self.starts_at.0,
            ends_at: self.ends_at.0,
            recurrence: self.recurrence,
            time_zone: self.time_zone,
        })
    }
}

impl UpdateMaintenanceWindowInput {
    pub fn parse(self) -> async_graphql::Result<WindowPatch> {
        Ok(WindowPatch {
            name: self.name,
            monitor_ids: monitor_ids(self.monitor_ids)?,
            starts_at: self.starts_at.map(|t| t.0),
            ends_at: self.ends_at.map(|t| t.0),
            recurrence: match self.recurrence {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(v) => Some(Some(v)),
            },
            time_zone: self.time_zone,
        })
    }
}
