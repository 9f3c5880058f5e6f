//! Maintenance windows and the monitors each covers.

use chrono::{DateTime, Utc};
use domain::maintenance::{CalendarWindow, MaintenanceWindow, Schedule};
use entity::{maintenance_window, maintenance_window_monitor};
use sea_orm::{
    sea_query::Expr, ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait,
    QueryFilter, QueryOrder,
};

use crate::{Database, Error};

/// What became of a window's update.
#[derive(Debug)]
pub enum WindowUpdate {
    Done(MaintenanceWindow),
    /// No such window.
    Gone,
    /// Changed by someone else since it was read.
    Changed,
}

/// A window's stored fields, as the service checked them.
#[derive(Debug, Clone)]
pub struct WindowRow {
    pub name: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub recurrence: Option<String>,
    pub time_zone: String,
    /// Covers every monitor; else those of `monitor_ids`.
    pub all_monitors: bool,
    pub monitor_ids: Vec<i64>,
}

/// A stored window's schedule; one that no longer parses (a time zone a newer tz database
/// dropped) is logged and left out.
fn schedule(row: &maintenance_window::Model) -> Option<Schedule> {
    match Schedule::stored(
        row.starts_at,
        row.ends_at,
        row.recurrence.as_deref(),
        Some(&row.time_zone),
    ) {
        Ok(mut schedule) => {
            schedule.ended_at = row.ended_at;
            Some(schedule)
        }
        Err(err) => {
            tracing::error!(window.id = row.id, field = err.field, problem = %err.problem,
                "maintenance window unreadable; left out");
            None
        }
    }
}

fn window(
    row: maintenance_window::Model,
    monitor_ids: Vec<i64>,
    now: DateTime<Utc>,
) -> MaintenanceWindow {
    let schedule = schedule(&row);
    let current = schedule.as_ref().and_then(|s| s.occurrence_at(now));
    let next = || {
        schedule.as_ref().and_then(|s| {
            s.occurrences(now, now + chrono::Duration::days(366), 1)
                .pop()
        })
    };
    MaintenanceWindow {
        id: row.id,
        name: row.name,
        all_monitors: row.all_monitors,
        monitor_ids,
        starts_at: row.starts_at,
        ends_at: row.ends_at,
        recurrence: row.recurrence,
        time_zone: row.time_zone,
        ended_at: row.ended_at,
        active: current.is_some(),
        current_or_next: current.or_else(next),
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

async fn monitors_of(conn: &impl ConnectionTrait, window_id: i64) -> Result<Vec<i64>, Error> {
    Ok(maintenance_window_monitor::Entity::find()
        .filter(maintenance_window_monitor::Column::WindowId.eq(window_id))
        .order_by_asc(maintenance_window_monitor::Column::MonitorId)
        .all(conn)
        .await?
        .into_iter()
        .map(|l| l.monitor_id)
        .collect())
}

async fn link(conn: &impl ConnectionTrait, window_id: i64, ids: &[i64]) -> Result<(), Error> {
    maintenance_window_monitor::Entity::delete_many()
        .filter(maintenance_window_monitor::Column::WindowId.eq(window_id))
        .exec(conn)
        .await?;
    if !ids.is_empty() {
        maintenance_window_monitor::Entity::insert_many(ids.iter().map(|&monitor_id| {
            maintenance_window_monitor::ActiveModel {
                window_id: Set(window_id),
                monitor_id: Set(monitor_id),
            }
        }))
        .exec_without_returning(conn)
        .await?;
    }
    Ok(())
}

impl Database {
    /// Every window, oldest first, as clients see them at `now`.
    pub async fn maintenance_windows(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<MaintenanceWindow>, Error> {
        let rows = maintenance_window::Entity::find()
            .order_by_asc(maintenance_window::Column::Id)
            .all(&self.conn)
            .await?;
        let mut links = self.window_links().await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let ids = links.remove(&row.id).unwrap_or_default();
                window(row, ids, now)
            })
            .collect())
    }

    async fn window_links(&self) -> Result<std::collections::HashMap<i64, Vec<i64>>, Error> {
        let mut links: std::collections::HashMap<i64, Vec<i64>> = Default::default();
        for link in maintenance_window_monitor::Entity::find()
            .order_by_asc(maintenance_window_monitor::Column::MonitorId)
            .all(&self.conn)
            .await?
        {
            links
                .entry(link.window_id)
                .or_default()
                .push(link.monitor_id);
        }
        Ok(links)
    }

    pub async fn maintenance_window(
        &self,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<MaintenanceWindow>, Error> {
        let Some(row) = maintenance_window::Entity::find_by_id(id)
            .one(&self.conn)
            .await?
        else {
            return Ok(None);
        };
        let ids = monitors_of(&self.conn, id).await?;
        Ok(Some(window(row, ids, now)))
    }

    /// The windows as the calendar keeps them (those that cannot be read left out).
    pub async fn calendar_windows(&self) -> Result<Vec<CalendarWindow>, Error> {
        let rows = maintenance_window::Entity::find().all(&self.conn).await?;
        let mut links = self.window_links().await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                Some(CalendarWindow {
                    id: row.id,
                    schedule: schedule(&row)?,
                    all_monitors: row.all_monitors,
                    monitors: links
                        .remove(&row.id)
                        .unwrap_or_default()
                        .into_iter()
                        .collect(),
                })
            })
            .collect())
    }

    /// Whether another window has this name.
    pub async fn window_name_taken(&self, name: &str, except: Option<i64>) -> Result<bool, Error> {
        let mut query =
            maintenance_window::Entity::find().filter(maintenance_window::Column::Name.eq(name));
        if let Some(id) = except {
            query = query.filter(maintenance_window::Column::Id.ne(id));
        }
        Ok(query.one(&self.conn).await?.is_some())
    }

    /// Stores a new window with its monitors, in one transaction.
    pub async fn insert_window(
        &self,
        new: WindowRow,
        now: DateTime<Utc>,
    ) -> Result<MaintenanceWindow, Error> {
        let txn = self.begin_write().await?;
        let row = maintenance_window::ActiveModel {
            name: Set(new.name),
            starts_at: Set(new.starts_at),
            ends_at: Set(new.ends_at),
            recurrence: Set(new.recurrence),
            time_zone: Set(new.time_zone),
            all_monitors: Set(new.all_monitors),
            ended_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        link(&txn, row.id, &new.monitor_ids).await?;
        txn.commit().await?;
        Ok(window(row, new.monitor_ids, now))
    }

    /// Replaces a window's fields and monitors (an early end is kept only while the times
    /// stay the same); `None` when it is gone.
    pub async fn update_window(
        &self,
        id: i64,
        new: WindowRow,
        seen: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<WindowUpdate, Error> {
        let txn = self.begin_write().await?;
        let Some(current) = maintenance_window::Entity::find_by_id(id).one(&txn).await? else {
            return Ok(WindowUpdate::Gone);
        };
        // The change was worked out from the window as it was `seen`; changed since, it
        // would undo the other change.
        if current.updated_at != seen {
            return Ok(WindowUpdate::Changed);
        }
        let same_times = current.starts_at == new.starts_at
            && current.ends_at == new.ends_at
            && current.recurrence == new.recurrence
            && current.time_zone == new.time_zone;
        let mut row: maintenance_window::ActiveModel = current.clone().into();
        row.name = Set(new.name);
        row.starts_at = Set(new.starts_at);
        row.ends_at = Set(new.ends_at);
        row.recurrence = Set(new.recurrence);
        row.time_zone = Set(new.time_zone);
        row.all_monitors = Set(new.all_monitors);
        row.ended_at = Set(current.ended_at.filter(|_| same_times));
        row.updated_at = Set(now);
        let row = row.update(&txn).await?;
        link(&txn, id, &new.monitor_ids).await?;
        txn.commit().await?;
        Ok(WindowUpdate::Done(window(row, new.monitor_ids, now)))
    }

    /// Ends the window's occurrence in effect at `now`; false when it is gone.
    pub async fn end_window(&self, id: i64, now: DateTime<Utc>) -> Result<bool, Error> {
        let done = maintenance_window::Entity::update_many()
            .col_expr(maintenance_window::Column::EndedAt, Expr::value(Some(now)))
            .col_expr(maintenance_window::Column::UpdatedAt, Expr::value(now))
            .filter(maintenance_window::Column::Id.eq(id))
            .exec(&self.conn)
            .await?;
        Ok(done.rows_affected > 0)
    }

    /// Deletes a window; false when there was none.
    pub async fn delete_window(&self, id: i64) -> Result<bool, Error> {
        let done = maintenance_window::Entity::delete_by_id(id)
            .exec(&self.conn)
            .await?;
        Ok(done.rows_affected > 0)
    }

    /// Which of `ids` are monitors.
    pub async fn existing_monitors(&self, ids: &[i64]) -> Result<Vec<i64>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        use sea_orm::QuerySelect;
        Ok(entity::monitor::Entity::find()
            .select_only()
            .column(entity::monitor::Column::Id)
            .filter(entity::monitor::Column::Id.is_in(ids.to_vec()))
            .into_tuple::<i64>()
            .all(&self.conn)
            .await?)
    }
}
