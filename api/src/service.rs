//! The monitor service: every monitor operation, used by REST and GraphQL alike. It takes
//! parsed input (see [`domain`]) and returns domain types, never table models.

use chrono::{DateTime, SubsecRound, Utc};
use domain::{url_password, CheckResult, Monitor, MonitorPatch, MonitorUrl, NewMonitor};
use entity::{check_result, monitor};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use worker::{to_domain, Engine, RunCheckError, ScheduleNotifier, SqliteReads};

use crate::error::ApiError;

/// One page of a list, and whether more follow.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_next: bool,
}

impl<T> Page<T> {
    /// The first `limit` of `rows`, read with one more than that to learn whether more follow.
    fn of<R>(mut rows: Vec<R>, limit: u64, item: impl FnMut(R) -> T) -> Self {
        let has_next = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        Self {
            items: rows.into_iter().map(item).collect(),
            has_next,
        }
    }
}

/// Monitor operations over one database.
#[derive(Clone)]
pub struct MonitorService {
    db: DatabaseConnection,
    /// On SQLite, the hot reads (pages and single monitors) bypass sqlx (see
    /// [`worker::sqlite_reads`]); everything else goes through `db`.
    reads: Option<SqliteReads>,
    engine: Engine,
    schedule: ScheduleNotifier,
}

impl MonitorService {
    /// A service over `db`; `engine` runs manual checks, `schedule` hears about changes.
    /// `reads` serves the hot reads on SQLite.
    pub fn new(
        db: DatabaseConnection,
        reads: Option<SqliteReads>,
        engine: Engine,
        schedule: ScheduleNotifier,
    ) -> Self {
        Self {
            db,
            reads,
            engine,
            schedule,
        }
    }

    /// The engine that runs and publishes checks.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The database this service uses.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Every monitor, oldest first.
    pub async fn list_all(&self) -> Result<Vec<Monitor>, ApiError> {
        let rows = monitor::Entity::find()
            .order_by_asc(monitor::Column::Id)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(to_domain::monitor).collect())
    }

    /// Up to `limit` monitors with ids greater than `after`, oldest first.
    pub async fn list_page(
        &self,
        after: Option<i64>,
        limit: u64,
        active: Option<bool>,
    ) -> Result<Page<Monitor>, ApiError> {
        let rows = match &self.reads {
            Some(reads) => reads.monitors(after, limit + 1, active).await?,
            None => self.query_monitor_page(after, limit + 1, active).await?,
        };
        Ok(Page::of(rows, limit, to_domain::monitor))
    }

    async fn query_monitor_page(
        &self,
        after: Option<i64>,
        limit: u64,
        active: Option<bool>,
    ) -> Result<Vec<monitor::Model>, DbErr> {
        let mut query = monitor::Entity::find().order_by_asc(monitor::Column::Id);
        if let Some(after) = after {
            query = query.filter(monitor::Column::Id.gt(after));
        }
        if let Some(active) = active {
            query = query.filter(monitor::Column::Active.eq(active));
        }
        query.limit(limit).all(&self.db).await
    }

    /// How many monitors exist (optionally only active or paused ones).
    pub async fn count(&self, active: Option<bool>) -> Result<u64, ApiError> {
        let mut query = monitor::Entity::find();
        if let Some(active) = active {
            query = query.filter(monitor::Column::Active.eq(active));
        }
        Ok(query.count(&self.db).await?)
    }

    /// How many results a monitor has. Results are numbered 1, 2, 3, ... per monitor and only
    /// the oldest are ever removed, so the count is the span of the numbers kept: two lookups
    /// at the ends of the `(monitor_id, seq)` index, whatever the history's length.
    pub async fn result_count(&self, monitor_id: i64) -> Result<u64, ApiError> {
        use sea_orm::sea_query::{Expr, Func};
        let span: Option<(Option<i32>, Option<i32>)> = check_result::Entity::find()
            .select_only()
            .column_as(
                Expr::expr(Func::min(Expr::col(check_result::Column::Seq))),
                "lo",
            )
            .column_as(
                Expr::expr(Func::max(Expr::col(check_result::Column::Seq))),
                "hi",
            )
            .filter(check_result::Column::MonitorId.eq(monitor_id))
            .into_tuple()
            .one(&self.db)
            .await?;
        Ok(match span {
            Some((Some(lo), Some(hi))) => {
                u64::try_from(i64::from(hi) - i64::from(lo) + 1).unwrap_or(0)
            }
            _ => 0,
        })
    }

    /// The monitor with this id, if any.
    pub async fn find(&self, id: i64) -> Result<Option<Monitor>, ApiError> {
        let row = match &self.reads {
            Some(reads) => reads.monitor(id).await?,
            None => monitor::Entity::find_by_id(id).one(&self.db).await?,
        };
        Ok(row.map(to_domain::monitor))
    }

    /// The monitor with this id, or `NotFound`.
    pub async fn get(&self, id: i64) -> Result<Monitor, ApiError> {
        self.find(id).await?.ok_or(ApiError::NotFound {
            what: "monitor",
            id,
        })
    }

    /// Stores a new monitor; an active one is due for its first check at once. A URL whose
    /// password is the read mask `***` is refused: there is no stored password to restore.
    pub async fn create(&self, new: NewMonitor) -> Result<Monitor, ApiError> {
        if url_password::is_masked(new.url.as_str()) {
            return Err(masked_password_error());
        }
        let now = now();
        let row = monitor::ActiveModel {
            name: Set(new.name.into_inner()),
            url: Set(new.url.into_inner()),
            timeout_seconds: Set(new.timeout.get()),
            interval_seconds: Set(new.interval.get()),
            active: Set(new.active),
            created_at: Set(now),
            updated_at: Set(now),
            last_checked_at: Set(None),
            last_up: Set(None),
            next_check_at: Set(new.active.then_some(now)),
            ..Default::default()
        }
        .insert(&self.db)
        .await?;
        self.schedule.changed(row.id);
        Ok(to_domain::monitor(row))
    }

    /// Applies a partial change. Resuming a monitor or pointing it at a new URL makes it due
    /// at once; a shorter interval brings its next check forward. A URL sent back with the
    /// read mask `***` for the stored scheme, user, host and port keeps the stored password.
    pub async fn update(&self, id: i64, mut patch: MonitorPatch) -> Result<Monitor, ApiError> {
        let current =
            monitor::Entity::find_by_id(id)
                .one(&self.db)
                .await?
                .ok_or(ApiError::NotFound {
                    what: "monitor",
                    id,
                })?;
        if let Some(url) = &patch.url {
            if url_password::is_masked(url.as_str()) {
                let restored = url_password::restore(url.as_str(), &current.url)
                    .ok_or_else(masked_password_error)?;
                patch.url = Some(
                    MonitorUrl::parse(&restored)
                        .map_err(|problem| ApiError::invalid("url", problem))?,
                );
            }
        }
        let now = now();
        let next_check_at = next_check_after_patch(&current, &patch, now);
        let mut row = current.into_active_model();
        if let Some(name) = patch.name {
            row.name = Set(name.into_inner());
        }
        if let Some(url) = patch.url {
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
        row.next_check_at = Set(next_check_at);
        row.updated_at = Set(now);
        let row = row.update(&self.db).await?;
        self.schedule.changed(id);
        Ok(to_domain::monitor(row))
    }

    /// Deletes a monitor and, by cascade, its check history.
    pub async fn delete(&self, id: i64) -> Result<(), ApiError> {
        let result = monitor::Entity::delete_by_id(id).exec(&self.db).await?;
        if result.rows_affected == 0 {
            return Err(ApiError::NotFound {
                what: "monitor",
                id,
            });
        }
        self.schedule.changed(id);
        Ok(())
    }

    /// Like [`Self::check_history`], but `NotFound` when the monitor does not exist. The
    /// existence query runs only when the page is empty, so the common case costs one query.
    pub async fn history(
        &self,
        monitor_id: i64,
        before: Option<i64>,
        limit: u64,
    ) -> Result<Page<CheckResult>, ApiError> {
        let page = self.check_history(monitor_id, before, limit).await?;
        if page.items.is_empty() && !self.exists(monitor_id).await? {
            return Err(ApiError::NotFound {
                what: "monitor",
                id: monitor_id,
            });
        }
        Ok(page)
    }

    /// Up to `limit` results of one monitor, newest first, older than its result number
    /// `before` (a [`CheckResult::seq`]).
    pub async fn check_history(
        &self,
        monitor_id: i64,
        before: Option<i64>,
        limit: u64,
    ) -> Result<Page<CheckResult>, ApiError> {
        let rows = match &self.reads {
            Some(reads) => reads.history(monitor_id, before, limit + 1).await?,
            None => self.query_history(monitor_id, before, limit + 1).await?,
        };
        Ok(Page::of(rows, limit, to_domain::check_result))
    }

    async fn query_history(
        &self,
        monitor_id: i64,
        before: Option<i64>,
        limit: u64,
    ) -> Result<Vec<check_result::Model>, DbErr> {
        let mut query = check_result::Entity::find()
            .filter(check_result::Column::MonitorId.eq(monitor_id))
            .order_by_desc(check_result::Column::Seq);
        if let Some(before) = before {
            query = query.filter(check_result::Column::Seq.lt(before));
        }
        query.limit(limit).all(&self.db).await
    }

    /// Checks a monitor now; the result is stored and published like a scheduled one.
    pub async fn run_check(&self, id: i64) -> Result<CheckResult, ApiError> {
        match self.engine.run_check(id).await {
            Ok(record) => Ok(record),
            Err(RunCheckError::NotFound(id)) => Err(ApiError::NotFound {
                what: "monitor",
                id,
            }),
            Err(RunCheckError::Database(err)) => Err(ApiError::from_db(err)),
            Err(RunCheckError::Store(err)) => {
                tracing::error!(monitor.id = id, error = %err, "manual check not stored");
                Err(ApiError::Unavailable)
            }
        }
    }

    /// Whether the database answers.
    pub async fn healthy(&self) -> bool {
        self.db
            .execute_unprepared("SELECT 1")
            .await
            .map_err(|e| tracing::warn!(error = %e, "health check: database unreachable"))
            .is_ok()
    }

    /// Whether a monitor with this id exists.
    pub async fn exists(&self, id: i64) -> Result<bool, ApiError> {
        if let Some(reads) = &self.reads {
            return Ok(reads.monitor_exists(id).await?);
        }
        let count = monitor::Entity::find_by_id(id).count(&self.db).await?;
        Ok(count > 0)
    }
}

/// A URL carries the read mask as its password where no stored password can take its place.
fn masked_password_error() -> ApiError {
    ApiError::invalid(
        "url",
        "has the password `***`, which is how reads mask a password; send the real password (the stored one is kept only for the same scheme, user, host and port)",
    )
}

/// The current time at the precision both databases keep (microseconds).
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn next_check_after_patch(
    current: &monitor::Model,
    patch: &MonitorPatch,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let active = patch.active.unwrap_or(current.active);
    if !active {
        return None;
    }
    let resumed = !current.active;
    let url_changed = patch
        .url
        .as_ref()
        .is_some_and(|u| u.clone().into_inner() != current.url);
    if resumed || url_changed || current.next_check_at.is_none() {
        return Some(now);
    }
    let scheduled = current.next_check_at.unwrap_or(now);
    match patch.interval {
        Some(interval) => {
            let sooner = now + chrono::Duration::seconds(i64::from(interval.get()));
            Some(scheduled.min(sooner))
        }
        None => Some(scheduled),
    }
}
