//! Notification channels, which monitors notify which, and the outbox: the fan-out of
//! incidents into one delivery per channel, the claim of due deliveries by one sender among
//! any number of processes, and every attempt.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use domain::{
    notification::{
        Attempt, Channel, ChannelKind, ChannelSettings, Delivery, DeliveryState, Notice,
        NoticeEvent,
    },
    MonitorState,
};
use entity::{
    check_result, incident, monitor, monitor_channel, notification_attempt, notification_channel,
    notification_delivery,
};
use sea_orm::{
    sea_query::{Expr, OnConflict},
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement,
};

use crate::{incidents::result_row, rows, Backend, Database, Error, Page};

/// A channel's row as the API and the sender see it.
fn channel(row: notification_channel::Model) -> Option<Channel> {
    let Some(kind) = ChannelKind::parse(&row.kind) else {
        tracing::error!(channel.id = row.id, kind = %row.kind, "channel of an unknown kind skipped");
        return None;
    };
    let settings = match serde_json::from_str::<ChannelSettings>(&row.settings) {
        Ok(settings) => settings,
        Err(err) => {
            tracing::error!(channel.id = row.id, error = %err, "channel settings unreadable");
            return None;
        }
    };
    Some(Channel {
        id: row.id,
        name: row.name,
        kind,
        is_default: row.is_default,
        settings: settings.upgraded(kind),
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

fn delivery(row: notification_delivery::Model, attempts: Vec<Attempt>) -> Delivery {
    Delivery {
        id: row.id,
        channel_id: row.channel_id,
        incident_id: row.incident_id,
        event: NoticeEvent::parse(&row.event).unwrap_or(NoticeEvent::Test),
        state: DeliveryState::parse(&row.state).unwrap_or(DeliveryState::Failed),
        created_at: row.created_at,
        next_attempt_at: row.next_attempt_at,
        sent_at: row.sent_at,
        last_error: row.last_error,
        attempts,
    }
}

fn attempt(row: notification_attempt::Model) -> Attempt {
    Attempt {
        attempted_at: row.attempted_at,
        duration_ms: row.duration_ms,
        ok: row.ok,
        response_code: row.response_code.and_then(|c| u16::try_from(c).ok()),
        error: row.error,
    }
}

/// A claimed delivery: what to send, and where.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery_id: i64,
    pub channel: Channel,
    pub notice: Notice,
    pub created_at: DateTime<Utc>,
    /// Tries so far, this one included.
    pub attempts: i32,
}

/// One try at sending, as recorded on each delivery it carried.
#[derive(Debug, Clone, Copy)]
pub struct Tried<'a> {
    pub at: DateTime<Utc>,
    pub duration_ms: i32,
    pub response_code: Option<u16>,
    pub error: Option<&'a str>,
}

/// What became of one attempt.
#[derive(Debug, Clone)]
pub enum AttemptOutcome {
    Sent,
    /// Failed: try again at this time.
    Retry(DateTime<Utc>),
    /// Failed for the last time.
    GiveUp,
}

impl Database {
    pub async fn channels(&self) -> Result<Vec<Channel>, Error> {
        let rows = notification_channel::Entity::find()
            .order_by_asc(notification_channel::Column::Id)
            .all(&self.conn)
            .await?;
        Ok(rows.into_iter().filter_map(channel).collect())
    }

    pub async fn channel(&self, id: i64) -> Result<Option<Channel>, Error> {
        Ok(notification_channel::Entity::find_by_id(id)
            .one(&self.conn)
            .await?
            .and_then(channel))
    }

    /// Whether another channel has this name.
    pub async fn channel_name_taken(&self, name: &str, except: Option<i64>) -> Result<bool, Error> {
        let mut query = notification_channel::Entity::find()
            .filter(notification_channel::Column::Name.eq(name));
        if let Some(id) = except {
            query = query.filter(notification_channel::Column::Id.ne(id));
        }
        Ok(query.one(&self.conn).await?.is_some())
    }

    pub async fn insert_channel(
        &self,
        name: String,
        kind: ChannelKind,
        is_default: bool,
        settings: &ChannelSettings,
        now: DateTime<Utc>,
    ) -> Result<Channel, Error> {
        let row = notification_channel::ActiveModel {
            name: Set(name),
            kind: Set(kind.as_str().to_owned()),
            is_default: Set(is_default),
            settings: Set(settings_json(settings)?),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&self.conn)
        .await?;
        channel(row).ok_or_else(|| Error::failed("the channel just stored cannot be read"))
    }

    /// Stores a channel's new name, default flag and settings; `None` when it is gone.
    pub async fn update_channel(
        &self,
        id: i64,
        name: String,
        is_default: bool,
        settings: &ChannelSettings,
        now: DateTime<Utc>,
    ) -> Result<Option<Channel>, Error> {
        let done = notification_channel::Entity::update_many()
            .col_expr(notification_channel::Column::Name, Expr::value(name))
            .col_expr(
                notification_channel::Column::IsDefault,
                Expr::value(is_default),
            )
            .col_expr(
                notification_channel::Column::Settings,
                Expr::value(settings_json(settings)?),
            )
            .col_expr(notification_channel::Column::UpdatedAt, Expr::value(now))
            .filter(notification_channel::Column::Id.eq(id))
            .exec(&self.conn)
            .await?;
        if done.rows_affected == 0 {
            return Ok(None);
        }
        self.channel(id).await
    }

    /// Deletes a channel with its links and deliveries; false when there was none.
    pub async fn delete_channel(&self, id: i64) -> Result<bool, Error> {
        let done = notification_channel::Entity::delete_by_id(id)
            .exec(&self.conn)
            .await?;
        Ok(done.rows_affected > 0)
    }

    /// The channels a monitor names (default channels are notified besides them).
    pub async fn monitor_channels(&self, monitor_id: i64) -> Result<Vec<Channel>, Error> {
        let links = monitor_channel::Entity::find()
            .filter(monitor_channel::Column::MonitorId.eq(monitor_id))
            .all(&self.conn)
            .await?;
        let ids: Vec<i64> = links.into_iter().map(|l| l.channel_id).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = notification_channel::Entity::find()
            .filter(notification_channel::Column::Id.is_in(ids))
            .order_by_asc(notification_channel::Column::Id)
            .all(&self.conn)
            .await?;
        Ok(rows.into_iter().filter_map(channel).collect())
    }

    /// Replaces the channels a monitor names, in one transaction. The ids must exist (the
    /// service checks them; a channel deleted meanwhile fails the foreign key).
    pub async fn set_monitor_channels(&self, monitor_id: i64, ids: &[i64]) -> Result<(), Error> {
        let txn = self.begin_write().await?;
        monitor_channel::Entity::delete_many()
            .filter(monitor_channel::Column::MonitorId.eq(monitor_id))
            .exec(&txn)
            .await?;
        crate::monitors::link_channels(&txn, monitor_id, ids).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Turns up to `limit` incidents with something still to send into deliveries, one per
    /// channel that the incident's monitor notifies, in one transaction with the incidents'
    /// `notified` mark, so each is fanned out once whatever crashes. On PostgreSQL the
    /// incidents are locked with `SKIP LOCKED`, so processes fan out different ones.
    /// Returns how many deliveries were written.
    pub async fn fan_out(&self, now: DateTime<Utc>, limit: u64) -> Result<usize, Error> {
        let Some((txn, pending)) = self
            .lock_rows::<incident::Entity>(incident::Column::Id, to_notify(), limit)
            .await?
        else {
            return Ok(0);
        };
        let defaults = default_channels(&txn).await?;
        let mut written = 0;
        for row in pending {
            let channels = channels_of(&txn, row.monitor_id, &defaults).await?;
            let monitor = monitor::Entity::find_by_id(row.monitor_id)
                .one(&txn)
                .await?;
            let mut notices = Vec::new();
            if let Some(monitor) = monitor.as_ref().filter(|_| !channels.is_empty()) {
                let monitor = rows::monitor(monitor.clone());
                if row.notified == 0 {
                    let cause = result_row(&txn, row.monitor_id, row.started_seq).await?;
                    notices.push(incident_notice(NoticeEvent::Down, &monitor, &row, cause));
                }
                if let Some(seq) = row.resolved_seq.filter(|_| row.resolved_at.is_some()) {
                    let cause = result_row(&txn, row.monitor_id, seq).await?;
                    notices.push(incident_notice(NoticeEvent::Up, &monitor, &row, cause));
                }
            }
            for notice in &notices {
                written += insert_deliveries(&txn, &channels, Some(row.id), notice, 0, now).await?;
            }
            if row.resolved_at.is_some() {
                drop_reminders(&txn, row.id, "not sent: the incident resolved first").await?;
            }
            let notified: i16 = if row.resolved_at.is_some() { 2 } else { 1 };
            // The first reminder is due an interval after the outage began; none once resolved.
            let next_reminder = match (
                &row.resolved_at,
                monitor.and_then(|m| m.reminder_interval_minutes),
            ) {
                (None, Some(minutes)) if row.notified == 0 => {
                    Some(row.started_at + Duration::minutes(i64::from(minutes)))
                }
                (None, _) => row.next_reminder_at,
                (Some(_), _) => None,
            };
            incident::Entity::update_many()
                .col_expr(incident::Column::Notified, Expr::value(notified))
                .col_expr(incident::Column::NextReminderAt, Expr::value(next_reminder))
                .filter(incident::Column::Id.eq(row.id))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(written)
    }

    /// Up to `limit` rows of `E` matching `filter`, by `id` (its primary key), in a
    /// transaction that holds them ([`Database::begin_write`]; on PostgreSQL the rows are
    /// locked `SKIP LOCKED` so processes take different ones). `None` when none match, which
    /// most rounds find with one index lookup and no transaction.
    async fn lock_rows<E: EntityTrait>(
        &self,
        id: E::Column,
        filter: sea_orm::Condition,
        limit: u64,
    ) -> Result<Option<(sea_orm::DatabaseTransaction, Vec<E::Model>)>, Error> {
        let any = E::find()
            .select_only()
            .column(id)
            .filter(filter.clone())
            .limit(1)
            .into_tuple::<i64>()
            .one(&self.conn)
            .await?;
        if any.is_none() {
            return Ok(None);
        }
        let txn = self.begin_write().await?;
        let mut query = E::find().filter(filter).order_by_asc(id).limit(limit);
        if self.backend() == Backend::Postgres {
            query = query.lock_with_behavior(
                sea_orm::sea_query::LockType::Update,
                sea_orm::sea_query::LockBehavior::SkipLocked,
            );
        }
        let rows = query.all(&txn).await?;
        Ok((!rows.is_empty()).then_some((txn, rows)))
    }

    /// Fans out the reminders due by `now` for up to `limit` open incidents: one delivery per
    /// channel, numbered, with the incident's next reminder moved an interval on (from when
    /// it was due, or from now if the job was behind). A monitor in maintenance (`quiet`)
    /// gets none; its next is an interval later. Returns how many deliveries were written.
    pub async fn remind(
        &self,
        now: DateTime<Utc>,
        limit: u64,
        quiet: impl Fn(i64) -> bool,
    ) -> Result<usize, Error> {
        // An acknowledged incident has someone on it: no more reminders.
        let due = sea_orm::Condition::all()
            .add(incident::Column::NextReminderAt.lte(now))
            .add(incident::Column::ResolvedAt.is_null())
            .add(incident::Column::AcknowledgedAt.is_null());
        let Some((txn, rows)) = self
            .lock_rows::<incident::Entity>(incident::Column::Id, due, limit)
            .await?
        else {
            return Ok(0);
        };
        let defaults = default_channels(&txn).await?;
        let mut written = 0;
        for row in rows {
            let monitor = monitor::Entity::find_by_id(row.monitor_id)
                .one(&txn)
                .await?;
            let Some((monitor, minutes)) = monitor.and_then(|m| {
                let minutes = m.reminder_interval_minutes?;
                Some((m, minutes))
            }) else {
                // Reminders turned off meanwhile.
                incident::Entity::update_many()
                    .col_expr(
                        incident::Column::NextReminderAt,
                        Expr::value(Option::<DateTime<Utc>>::None),
                    )
                    .filter(incident::Column::Id.eq(row.id))
                    .exec(&txn)
                    .await?;
                continue;
            };
            let interval = Duration::minutes(i64::from(minutes));
            let was_due = row.next_reminder_at.unwrap_or(now);
            let next = if was_due + interval > now {
                was_due + interval
            } else {
                now + interval
            };
            let mut sent = row.reminders_sent;
            if monitor.active && !quiet(row.monitor_id) {
                let channels = channels_of(&txn, row.monitor_id, &defaults).await?;
                sent = sent.saturating_add(1);
                if !channels.is_empty() {
                    let cause = result_row(&txn, row.monitor_id, row.started_seq).await?;
                    let mut notice = incident_notice(
                        NoticeEvent::Reminder,
                        &rows::monitor(monitor),
                        &row,
                        cause,
                    );
                    notice.reminder = Some(sent);
                    notice.as_of = Some(was_due);
                    // A reminder still waiting (its channel failing) is said again by this one.
                    drop_reminders(
                        &txn,
                        row.id,
                        &format!("not sent: superseded by reminder {sent}"),
                    )
                    .await?;
                    written += insert_deliveries(&txn, &channels, Some(row.id), &notice, sent, now)
                        .await?;
                }
            }
            incident::Entity::update_many()
                .col_expr(incident::Column::RemindersSent, Expr::value(sent))
                .col_expr(incident::Column::NextReminderAt, Expr::value(Some(next)))
                .filter(incident::Column::Id.eq(row.id))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(written)
    }

    /// Tells the channels of monitors that ask for it that they turned DEGRADED, or are UP
    /// again after it (a DOWN is the incident's to tell: it only resets the mark), for up to
    /// `limit` monitors whose state moved past what was last told; in one transaction with
    /// the mark, so each change is told once whatever crashes. Returns the deliveries written.
    pub async fn tell_degraded(&self, now: DateTime<Utc>, limit: u64) -> Result<usize, Error> {
        use sea_orm::Condition;
        let to_tell = || {
            Condition::all()
                .add(monitor::Column::NotifyDegraded.eq(true))
                .add(
                    Condition::any()
                        .add(
                            Condition::all()
                                .add(monitor::Column::State.eq(MonitorState::Degraded.as_str()))
                                .add(monitor::Column::DegradedTold.eq(false)),
                        )
                        .add(
                            Condition::all()
                                .add(monitor::Column::State.is_in([
                                    MonitorState::Up.as_str(),
                                    MonitorState::Down.as_str(),
                                ]))
                                .add(monitor::Column::DegradedTold.eq(true)),
                        ),
                )
        };
        let Some((txn, rows)) = self
            .lock_rows::<monitor::Entity>(monitor::Column::Id, to_tell(), limit)
            .await?
        else {
            return Ok(0);
        };
        let defaults = default_channels(&txn).await?;
        let mut written = 0;
        for row in rows {
            let degraded = row.state.as_deref() == Some(MonitorState::Degraded.as_str());
            let event = match row.state.as_deref().and_then(MonitorState::parse) {
                Some(MonitorState::Degraded) => Some(NoticeEvent::Degraded),
                Some(MonitorState::Up) => Some(NoticeEvent::Recovered),
                _ => None,
            };
            if let Some(event) = event {
                let channels = channels_of(&txn, row.id, &defaults).await?;
                let latest = result_row(&txn, row.id, row.last_seq).await?;
                let monitor = rows::monitor(row.clone());
                let notice = Notice {
                    event,
                    monitor_id: monitor.id,
                    monitor_name: monitor.name.clone(),
                    monitor_url: shown_url(&monitor),
                    incident_id: None,
                    started_at: latest
                        .as_ref()
                        .map(|r| domain::from_epoch_ms(r.checked_at_ms)),
                    resolved_at: None,
                    status_code: latest
                        .as_ref()
                        .and_then(|r| r.status_code)
                        .and_then(|c| u16::try_from(c).ok()),
                    error: latest.and_then(|r| r.error),
                    reminder: None,
                    as_of: None,
                };
                written += insert_deliveries(&txn, &channels, None, &notice, 0, now).await?;
            }
            monitor::Entity::update_many()
                .col_expr(monitor::Column::DegradedTold, Expr::value(degraded))
                .filter(monitor::Column::Id.eq(row.id))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(written)
    }

    /// Claims up to `limit` due deliveries for `lease`: no other sender takes them until the
    /// lease ends (a sender that dies mid-send leaves them to be sent again then). A delivery
    /// waits while an older one of its incident for its channel is pending, so an UP never
    /// overtakes its DOWN.
    pub async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: u64,
    ) -> Result<Vec<Claimed>, Error> {
        // Most rounds find nothing due: a read first, so SQLite's write lock is taken only
        // when there is something to claim.
        let due = notification_delivery::Entity::find()
            .select_only()
            .column(notification_delivery::Column::Id)
            .filter(notification_delivery::Column::State.eq(DeliveryState::Pending.as_str()))
            .filter(notification_delivery::Column::NextAttemptAt.lte(now))
            .limit(1)
            .into_tuple::<i64>()
            .one(&self.conn)
            .await?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let until = now + lease;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (backend, sql) = match self.backend() {
            Backend::Postgres => (
                DatabaseBackend::Postgres,
                "UPDATE notification_deliveries SET claimed_until = $1, attempts = attempts + 1 \
                 WHERE id IN (SELECT id FROM notification_deliveries d WHERE state = 'PENDING' \
                 AND next_attempt_at <= $2 AND (claimed_until IS NULL OR claimed_until < $2) \
                 AND NOT EXISTS (SELECT 1 FROM notification_deliveries o WHERE o.state = 'PENDING' \
                 AND o.incident_id = d.incident_id AND o.channel_id = d.channel_id AND o.id < d.id) \
                 ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING id",
            ),
            Backend::Sqlite => (
                DatabaseBackend::Sqlite,
                "UPDATE notification_deliveries SET claimed_until = ?1, attempts = attempts + 1 \
                 WHERE id IN (SELECT id FROM notification_deliveries d WHERE state = 'PENDING' \
                 AND next_attempt_at <= ?2 AND (claimed_until IS NULL OR claimed_until < ?2) \
                 AND NOT EXISTS (SELECT 1 FROM notification_deliveries o WHERE o.state = 'PENDING' \
                 AND o.incident_id = d.incident_id AND o.channel_id = d.channel_id AND o.id < d.id) \
                 ORDER BY id LIMIT ?3) RETURNING id",
            ),
        };
        let claimed = self
            .conn
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [until.into(), now.into(), limit.into()],
            ))
            .await?;
        let mut ids = Vec::with_capacity(claimed.len());
        for row in claimed {
            ids.push(row.try_get::<i64>("", "id")?);
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = notification_delivery::Entity::find()
            .filter(notification_delivery::Column::Id.is_in(ids))
            .order_by_asc(notification_delivery::Column::Id)
            .all(&self.conn)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        // A claim is mostly a few channels' messages: each channel read once.
        let mut channels: HashMap<i64, Option<Channel>> = HashMap::new();
        for row in rows {
            let found = match channels.entry(row.channel_id) {
                std::collections::hash_map::Entry::Occupied(known) => known.get().clone(),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(self.channel(row.channel_id).await?).clone()
                }
            };
            let Some(found) = found else {
                self.record_attempt(
                    row.id,
                    now,
                    0,
                    None,
                    Some("the channel's stored settings cannot be read"),
                    &AttemptOutcome::GiveUp,
                )
                .await?;
                continue;
            };
            match serde_json::from_str::<Notice>(&row.payload) {
                Ok(notice) => out.push(Claimed {
                    delivery_id: row.id,
                    channel: found,
                    notice,
                    created_at: row.created_at,
                    attempts: row.attempts,
                }),
                Err(err) => {
                    tracing::error!(delivery.id = row.id, error = %err, "delivery unreadable");
                    self.record_attempt(
                        row.id,
                        now,
                        0,
                        None,
                        Some("the stored notice cannot be read"),
                        &AttemptOutcome::GiveUp,
                    )
                    .await?;
                }
            }
        }
        Ok(out)
    }

    /// Writes a test delivery (already claimed by its sender); its id.
    pub async fn insert_test_delivery(
        &self,
        channel_id: i64,
        notice: &Notice,
        now: DateTime<Utc>,
    ) -> Result<i64, Error> {
        let payload = notice_json(notice)?;
        let row = notification_delivery::ActiveModel {
            channel_id: Set(channel_id),
            incident_id: Set(None),
            event: Set(NoticeEvent::Test.as_str().to_owned()),
            payload: Set(payload),
            state: Set(DeliveryState::Pending.as_str().to_owned()),
            attempts: Set(1),
            created_at: Set(now),
            next_attempt_at: Set(now),
            claimed_until: Set(Some(now + Duration::minutes(5))),
            ..Default::default()
        }
        .insert(&self.conn)
        .await?;
        Ok(row.id)
    }

    /// Records one attempt and moves the delivery on: sent, due again, or given up.
    pub async fn record_attempt(
        &self,
        delivery_id: i64,
        at: DateTime<Utc>,
        duration_ms: i32,
        response_code: Option<u16>,
        error: Option<&str>,
        outcome: &AttemptOutcome,
    ) -> Result<(), Error> {
        let attempt = Tried {
            at,
            duration_ms,
            response_code,
            error,
        };
        self.record_attempts(&[(delivery_id, outcome.clone())], &attempt)
            .await
    }

    /// Records one send of a grouped message: the same attempt on each of its deliveries,
    /// each moved on by its own outcome, in one transaction.
    pub async fn record_attempts(
        &self,
        deliveries: &[(i64, AttemptOutcome)],
        attempt: &Tried<'_>,
    ) -> Result<(), Error> {
        let txn = self.begin_write().await?;
        // One deleted meanwhile (its channel or incident gone) is skipped, not the group.
        let ids: Vec<i64> = deliveries.iter().map(|(id, _)| *id).collect();
        let existing: std::collections::HashSet<i64> = notification_delivery::Entity::find()
            .select_only()
            .column(notification_delivery::Column::Id)
            .filter(notification_delivery::Column::Id.is_in(ids))
            .into_tuple::<i64>()
            .all(&txn)
            .await?
            .into_iter()
            .collect();
        for (delivery_id, outcome) in deliveries {
            if existing.contains(delivery_id) {
                record_on(&txn, *delivery_id, attempt, outcome).await?;
            }
        }
        txn.commit().await?;
        Ok(())
    }

    /// One delivery with its attempts.
    pub async fn delivery(&self, id: i64) -> Result<Option<Delivery>, Error> {
        let Some(row) = notification_delivery::Entity::find_by_id(id)
            .one(&self.conn)
            .await?
        else {
            return Ok(None);
        };
        let attempts = self.attempts(id).await?;
        Ok(Some(delivery(row, attempts)))
    }

    async fn attempts(&self, delivery_id: i64) -> Result<Vec<Attempt>, Error> {
        Ok(notification_attempt::Entity::find()
            .filter(notification_attempt::Column::DeliveryId.eq(delivery_id))
            .order_by_asc(notification_attempt::Column::Id)
            .all(&self.conn)
            .await?
            .into_iter()
            .map(attempt)
            .collect())
    }

    /// Up to `limit` deliveries, newest first, of one channel or all, with ids below `before`.
    pub async fn deliveries(
        &self,
        channel_id: Option<i64>,
        before: Option<i64>,
        limit: u64,
    ) -> Result<Page<Delivery>, Error> {
        let mut query =
            notification_delivery::Entity::find().order_by_desc(notification_delivery::Column::Id);
        if let Some(id) = channel_id {
            query = query.filter(notification_delivery::Column::ChannelId.eq(id));
        }
        if let Some(before) = before {
            query = query.filter(notification_delivery::Column::Id.lt(before));
        }
        let rows = query.limit(limit + 1).all(&self.conn).await?;
        let has_next = rows.len() as u64 > limit;
        let mut items = Vec::with_capacity(rows.len());
        for row in rows.into_iter().take(limit as usize) {
            let attempts = self.attempts(row.id).await?;
            items.push(delivery(row, attempts));
        }
        Ok(Page { items, has_next })
    }
}

/// Gives up an incident's reminders still pending, with why. One on its way now may still
/// arrive (its attempt then records it sent); one that fails is not tried again.
pub(crate) async fn drop_reminders(
    txn: &impl ConnectionTrait,
    incident_id: i64,
    why: &str,
) -> Result<(), Error> {
    notification_delivery::Entity::update_many()
        .col_expr(
            notification_delivery::Column::State,
            Expr::value(DeliveryState::Failed.as_str()),
        )
        .col_expr(notification_delivery::Column::LastError, Expr::value(why))
        .filter(notification_delivery::Column::IncidentId.eq(incident_id))
        .filter(notification_delivery::Column::Event.eq(NoticeEvent::Reminder.as_str()))
        .filter(notification_delivery::Column::State.eq(DeliveryState::Pending.as_str()))
        .exec(txn)
        .await?;
    Ok(())
}

/// The channels notified for every monitor.
async fn default_channels(txn: &impl ConnectionTrait) -> Result<Vec<i64>, Error> {
    Ok(notification_channel::Entity::find()
        .filter(notification_channel::Column::IsDefault.eq(true))
        .all(txn)
        .await?
        .into_iter()
        .map(|c| c.id)
        .collect())
}

/// The channels a monitor notifies: the default ones and those it names, each once.
async fn channels_of(
    txn: &impl ConnectionTrait,
    monitor_id: i64,
    defaults: &[i64],
) -> Result<Vec<i64>, Error> {
    let mut channels = defaults.to_vec();
    channels.extend(
        monitor_channel::Entity::find()
            .filter(monitor_channel::Column::MonitorId.eq(monitor_id))
            .all(txn)
            .await?
            .into_iter()
            .map(|l| l.channel_id),
    );
    channels.sort_unstable();
    channels.dedup();
    Ok(channels)
}

/// What an incident's `event` tells, with the result that caused it.
fn incident_notice(
    event: NoticeEvent,
    monitor: &domain::Monitor,
    row: &incident::Model,
    cause: Option<check_result::Model>,
) -> Notice {
    Notice {
        event,
        monitor_id: monitor.id,
        monitor_name: monitor.name.clone(),
        monitor_url: shown_url(monitor),
        incident_id: Some(row.id),
        started_at: Some(row.started_at),
        resolved_at: row.resolved_at.filter(|_| event == NoticeEvent::Up),
        status_code: cause
            .as_ref()
            .and_then(|r| r.status_code)
            .and_then(|c| u16::try_from(c).ok()),
        error: cause.and_then(|r| r.error),
        reminder: None,
        as_of: None,
    }
}

/// One pending delivery of `notice` per channel; one another process wrote first is kept
/// (nothing twice). How many were written.
async fn insert_deliveries(
    txn: &impl ConnectionTrait,
    channels: &[i64],
    incident_id: Option<i64>,
    notice: &Notice,
    reminder: i32,
    now: DateTime<Utc>,
) -> Result<usize, Error> {
    if channels.is_empty() {
        return Ok(0);
    }
    let payload = notice_json(notice)?;
    let rows = channels
        .iter()
        .map(|&channel_id| notification_delivery::ActiveModel {
            channel_id: Set(channel_id),
            incident_id: Set(incident_id),
            event: Set(notice.event.as_str().to_owned()),
            payload: Set(payload.clone()),
            state: Set(DeliveryState::Pending.as_str().to_owned()),
            attempts: Set(0),
            created_at: Set(now),
            next_attempt_at: Set(now),
            reminder: Set(reminder),
            ..Default::default()
        });
    let inserted = notification_delivery::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::columns([
                notification_delivery::Column::IncidentId,
                notification_delivery::Column::Event,
                notification_delivery::Column::ChannelId,
                notification_delivery::Column::Reminder,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
    Ok(inserted as usize)
}

/// A monitor's URL as messages show it: a PUSH monitor's secret token left out.
fn shown_url(monitor: &domain::Monitor) -> String {
    if monitor.push_token.is_some() {
        format!("{}***", domain::input::PUSH_PATH)
    } else {
        monitor.url.clone()
    }
}

/// Incidents with a message still to fan out: the opening, or a resolution not yet told.
fn to_notify() -> sea_orm::Condition {
    sea_orm::Condition::all()
        .add(incident::Column::Notified.lt(2))
        .add(
            sea_orm::Condition::any()
                .add(incident::Column::Notified.eq(0))
                .add(incident::Column::ResolvedAt.is_not_null()),
        )
}

fn notice_json(notice: &Notice) -> Result<String, Error> {
    serde_json::to_string(notice).map_err(|e| Error::failed(format!("notice not encoded: {e}")))
}

fn settings_json(settings: &ChannelSettings) -> Result<String, Error> {
    serde_json::to_string(settings).map_err(|e| Error::failed(format!("settings not encoded: {e}")))
}

async fn record_on(
    txn: &impl ConnectionTrait,
    delivery_id: i64,
    attempt: &Tried<'_>,
    outcome: &AttemptOutcome,
) -> Result<(), Error> {
    notification_attempt::ActiveModel {
        delivery_id: Set(delivery_id),
        attempted_at: Set(attempt.at),
        duration_ms: Set(attempt.duration_ms),
        ok: Set(matches!(outcome, AttemptOutcome::Sent)),
        response_code: Set(attempt.response_code.map(i32::from)),
        error: Set(attempt.error.map(str::to_owned)),
        ..Default::default()
    }
    .insert(txn)
    .await?;
    let update = notification_delivery::Entity::update_many()
        .filter(notification_delivery::Column::Id.eq(delivery_id))
        .col_expr(
            notification_delivery::Column::ClaimedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            notification_delivery::Column::LastError,
            Expr::value(attempt.error.map(str::to_owned)),
        );
    let update = match outcome {
        AttemptOutcome::Sent => update
            .col_expr(
                notification_delivery::Column::State,
                Expr::value(DeliveryState::Sent.as_str()),
            )
            .col_expr(
                notification_delivery::Column::SentAt,
                Expr::value(Some(attempt.at)),
            ),
        AttemptOutcome::Retry(next) => update.col_expr(
            notification_delivery::Column::NextAttemptAt,
            Expr::value(*next),
        ),
        AttemptOutcome::GiveUp => update.col_expr(
            notification_delivery::Column::State,
            Expr::value(DeliveryState::Failed.as_str()),
        ),
    };
    update.exec(txn).await?;
    Ok(())
}
