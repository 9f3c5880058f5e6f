//! Monitors: pages, counts, single reads, and the writes the API makes (create, patch,
//! delete). Reads hand out [`Monitor`], whose URL has its password masked.

use chrono::{DateTime, Duration, Utc};
use domain::{CheckSpec, Monitor, MonitorPatch, MonitorSchedule, NewMonitor, Threshold};
use entity::{incident, monitor, monitor_channel};
use sea_orm::{
    sea_query::Expr, ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};

use crate::{rows, Database, Error, Page};

impl Database {
    /// Every monitor, oldest first.
    pub async fn monitors(&self) -> Result<Vec<Monitor>, Error> {
        let rows = monitor::Entity::find()
            .order_by_asc(monitor::Column::Id)
            .all(&self.conn)
            .await?;
        Ok(rows.into_iter().map(rows::monitor).collect())
    }

    /// Up to `limit` monitors with ids greater than `after` (only active or only paused ones
    /// when `active` says so), oldest first.
    pub async fn monitor_page(
        &self,
        after: Option<i64>,
        limit: u64,
        active: Option<bool>,
    ) -> Result<Page<Monitor>, Error> {
        let rows = match self.reads() {
            Some(reads) => reads.monitors(after, limit + 1, active).await?,
            None => {
                let mut query = monitor::Entity::find().order_by_asc(monitor::Column::Id);
                if let Some(after) = after {
                    query = query.filter(monitor::Column::Id.gt(after));
                }
                if let Some(active) = active {
                    query = query.filter(monitor::Column::Active.eq(active));
                }
                query.limit(limit + 1).all(&self.conn).await?
            }
        };
        Ok(Page::of(rows, limit, rows::monitor))
    }

    /// How many monitors exist (optionally only active or paused ones).
    pub async fn count_monitors(&self, active: Option<bool>) -> Result<u64, Error> {
        let mut query = monitor::Entity::find();
        if let Some(active) = active {
            query = query.filter(monitor::Column::Active.eq(active));
        }
        Ok(query.count(&self.conn).await?)
    }

    /// The monitor with this id, if any.
    pub async fn monitor(&self, id: i64) -> Result<Option<Monitor>, Error> {
        let row = match self.reads() {
            Some(reads) => reads.monitor(id).await?,
            None => monitor::Entity::find_by_id(id).one(&self.conn).await?,
        };
        Ok(row.map(rows::monitor))
    }

    /// Whether a monitor with this id exists.
    pub async fn monitor_exists(&self, id: i64) -> Result<bool, Error> {
        if let Some(reads) = self.reads() {
            return reads.monitor_exists(id).await;
        }
        Ok(monitor::Entity::find_by_id(id).count(&self.conn).await? > 0)
    }

    /// What checking the monitor with this id needs (its real URL), if it exists.
    pub async fn monitor_schedule(&self, id: i64) -> Result<Option<MonitorSchedule>, Error> {
        let row = monitor::Entity::find_by_id(id).one(&self.conn).await?;
        Ok(row.map(rows::schedule))
    }

    /// The PUSH monitor with this token, if any (one indexed lookup).
    pub async fn push_target(&self, token: &str) -> Result<Option<MonitorSchedule>, Error> {
        let row = monitor::Entity::find()
            .filter(monitor::Column::PushToken.eq(token))
            .one(&self.conn)
            .await?;
        Ok(row.map(rows::schedule))
    }

    /// Stores a new monitor with its parsed check options, created at `now` and due at
    /// `next_check_at`.
    pub async fn insert_monitor(
        &self,
        new: NewMonitor,
        spec: Option<&CheckSpec>,
        now: DateTime<Utc>,
        next_check_at: Option<DateTime<Utc>>,
    ) -> Result<Monitor, Error> {
        let url = new
            .url
            .ok_or_else(|| Error::failed("a monitor is stored with a url"))?;
        let row = monitor::ActiveModel {
            name: Set(new.name.into_inner()),
            push_token: Set(url.push_token().map(str::to_owned)),
            url: Set(url.into_inner()),
            timeout_seconds: Set(new.timeout.get()),
            interval_seconds: Set(new.interval.get()),
            active: Set(new.active),
            created_at: Set(now),
            updated_at: Set(now),
            last_checked_at: Set(None),
            last_up: Set(None),
            next_check_at: Set(next_check_at),
            check_spec: Set(spec.map(CheckSpec::to_json)),
            failure_threshold: Set(new.failure_threshold.unwrap_or(Threshold::ONE).get()),
            success_threshold: Set(new.success_threshold.unwrap_or(Threshold::ONE).get()),
            retry_interval_seconds: Set(new.retry_interval.flatten().map(|r| r.get())),
            reminder_interval_minutes: Set(new.reminder_interval.flatten().map(|r| r.get())),
            notify_degraded: Set(new.notify_degraded.unwrap_or(false)),
            degraded_told: Set(false),
            confirmed_up: Set(None),
            state_streak: Set(0),
            state: Set(None),
            ..Default::default()
        };
        // The monitor and the channels it names, together.
        let txn = self.begin_write().await?;
        let row = row.insert(&txn).await?;
        if let Some(ids) = &new.channel_ids {
            link_channels(&txn, row.id, ids).await?;
        }
        txn.commit().await?;
        Ok(rows::monitor(row))
    }

    /// Applies `patch` at `now`, with the check options `spec` (`None` keeps the stored
    /// ones) and the monitor due at `next_check_at`; `None` when no such monitor exists.
    pub async fn update_monitor(
        &self,
        id: i64,
        patch: MonitorPatch,
        spec: Option<Option<&CheckSpec>>,
        now: DateTime<Utc>,
        next_check_at: Option<DateTime<Utc>>,
    ) -> Result<Option<Monitor>, Error> {
        let mut row = monitor::ActiveModel {
            id: sea_orm::ActiveValue::Unchanged(id),
            ..Default::default()
        };
        if let Some(name) = patch.name {
            row.name = Set(name.into_inner());
        }
        if let Some(url) = patch.url {
            row.push_token = Set(url.push_token().map(str::to_owned));
            row.url = Set(url.into_inner());
        }
        if let Some(timeout) = patch.timeout {
            row.timeout_seconds = Set(timeout.get());
        }
        if let Some(interval) = patch.interval {
            row.interval_seconds = Set(interval.get());
        }
        if let Some(active) = patch.active {
            row.active = Set(active);
        }
        if let Some(spec) = spec {
            row.check_spec = Set(spec.map(CheckSpec::to_json));
        }
        if let Some(threshold) = patch.failure_threshold {
            row.failure_threshold = Set(threshold.get());
        }
        if let Some(threshold) = patch.success_threshold {
            row.success_threshold = Set(threshold.get());
        }
        if let Some(retry) = patch.retry_interval {
            row.retry_interval_seconds = Set(retry.map(|r| r.get()));
        }
        if let Some(reminder) = patch.reminder_interval {
            row.reminder_interval_minutes = Set(reminder.map(|r| r.get()));
        }
        if let Some(notify) = patch.notify_degraded {
            row.notify_degraded = Set(notify);
            // Turned off or on: nothing told is pending (the next change is told afresh).
            row.degraded_told = Set(false);
        }
        row.next_check_at = Set(next_check_at);
        row.updated_at = Set(now);
        let txn = self.begin_write().await?;
        let reminder_before = monitor::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .map(|m| m.reminder_interval_minutes);
        let row = match row.update(&txn).await {
            Ok(row) => row,
            Err(DbErr::RecordNotUpdated) => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        if let Some(ids) = &patch.channel_ids {
            monitor_channel::Entity::delete_many()
                .filter(monitor_channel::Column::MonitorId.eq(id))
                .exec(&txn)
                .await?;
            link_channels(&txn, id, ids).await?;
        }
        // A new reminder interval counts from now for an incident already open.
        if let Some(reminder) = patch
            .reminder_interval
            .filter(|r| reminder_before != Some(r.map(|m| m.get())))
        {
            incident::Entity::update_many()
                .col_expr(
                    incident::Column::NextReminderAt,
                    Expr::value(reminder.map(|m| now + Duration::minutes(i64::from(m.get())))),
                )
                .filter(incident::Column::MonitorId.eq(id))
                .filter(incident::Column::ResolvedAt.is_null())
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(Some(rows::monitor(row)))
    }

    /// Deletes a monitor and, by cascade, its check history; false when there was none.
    pub async fn delete_monitor(&self, id: i64) -> Result<bool, Error> {
        let result = monitor::Entity::delete_by_id(id).exec(&self.conn).await?;
        Ok(result.rows_affected > 0)
    }
}

/// Links a monitor to channels (the ids were checked by the service; one deleted meanwhile
/// fails the foreign key and the whole change).
pub(crate) async fn link_channels(
    txn: &impl ConnectionTrait,
    monitor_id: i64,
    ids: &[i64],
) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    monitor_channel::Entity::insert_many(ids.iter().map(|&channel_id| {
        monitor_channel::ActiveModel {
            monitor_id: Set(monitor_id),
            channel_id: Set(channel_id),
        }
    }))
    .exec_without_returning(txn)
    .await?;
    Ok(())
}
