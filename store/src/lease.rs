//! The distributed scheduler's statements on PostgreSQL: claiming due slots under row locks
//! (`FOR UPDATE SKIP LOCKED`, so two schedulers never claim the same slot) in a transaction
//! that is committed only once the jobs are published, the next due time, and the `NOTIFY`
//! channel that wakes schedulers when a monitor changes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{
    sqlx::postgres::PgListener, ConnectionTrait, DatabaseTransaction, DbBackend, Statement,
    TransactionTrait,
};

use crate::{Database, Error};

/// Claims due slots. A monitor more than one interval late (the broker or every scheduler
/// was away) gets one job for the newest slot of its grid; the missed ones are skipped.
const CLAIM: &str = r#"
WITH claimed AS (
    SELECT id, next_check_at AS stored_due, interval_seconds
    FROM monitors
    WHERE active AND next_check_at IS NOT NULL AND next_check_at <= now()
    ORDER BY next_check_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), due AS (
    SELECT id, stored_due + make_interval(secs => interval_seconds::double precision
        * floor(extract(epoch FROM (now() - stored_due)) / interval_seconds)) AS due,
        interval_seconds
    FROM claimed
)
UPDATE monitors AS m
SET next_check_at = due.due + make_interval(secs => due.interval_seconds::double precision)
FROM due
WHERE m.id = due.id
RETURNING m.id, m.url, m.timeout_seconds, m.check_spec, due.due AS due, m.next_check_at AS next
"#;

const NEXT_DUE_IN: &str = r#"
SELECT extract(epoch FROM (min(next_check_at) - now()))::double precision AS seconds
FROM monitors WHERE active AND next_check_at IS NOT NULL
"#;

/// The `NOTIFY` channel that says "a monitor changed" for a queue prefix.
pub fn notify_channel(prefix: &str) -> String {
    let clean: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{clean}_changes")
}

/// One claimed slot: the check to publish.
#[derive(Debug, Clone)]
pub struct ClaimedSlot {
    pub monitor_id: i64,
    pub url: String,
    pub timeout_seconds: i32,
    /// The check's options; `None` for the plain check.
    pub spec: Option<domain::CheckSpec>,
    /// The slot's due time.
    pub due: DateTime<Utc>,
    /// The monitor's next due time, as the claim moved it.
    pub next: DateTime<Utc>,
}

/// Claimed slots, held under their row locks until [`Claim::commit`]; dropped or rolled back,
/// they become claimable again at once.
pub struct Claim {
    txn: DatabaseTransaction,
    pub slots: Vec<ClaimedSlot>,
}

impl Claim {
    /// Makes the claim stick (the slots' next due times move on).
    pub async fn commit(self) -> Result<(), Error> {
        Ok(self.txn.commit().await?)
    }

    /// Gives the slots back.
    pub async fn rollback(self) -> Result<(), Error> {
        Ok(self.txn.rollback().await?)
    }
}

/// Notices that a monitor changed, on one `NOTIFY` channel.
pub struct ChangeListener(PgListener);

impl ChangeListener {
    /// Waits for a notice: false when the listener failed (open a new one).
    pub async fn recv(&mut self) -> bool {
        self.0.recv().await.is_ok()
    }
}

impl Database {
    /// Claims up to `batch` due slots (PostgreSQL). A monitor more than one interval late gets
    /// one slot, the newest of its grid.
    pub async fn claim_due(&self, batch: i64) -> Result<Claim, Error> {
        let txn = self.conn.begin().await?;
        let rows = txn
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                CLAIM,
                [batch.into()],
            ))
            .await?;
        let slots = rows
            .iter()
            .map(|row| {
                let monitor_id: i64 = row.try_get("", "id")?;
                let spec: Option<String> = row.try_get("", "check_spec")?;
                Ok(ClaimedSlot {
                    spec: crate::rows::spec(monitor_id, spec.as_deref()),
                    monitor_id,
                    url: row.try_get("", "url")?,
                    timeout_seconds: row.try_get("", "timeout_seconds")?,
                    due: row.try_get("", "due")?,
                    next: row.try_get("", "next")?,
                })
            })
            .collect::<Result<Vec<_>, sea_orm::DbErr>>()?;
        Ok(Claim { txn, slots })
    }

    /// How long until the earliest due slot of any active monitor, by the database's clock;
    /// `None` when nothing is due or the database does not answer.
    pub async fn next_due_in(&self) -> Option<Duration> {
        let row = self
            .conn
            .query_one_raw(Statement::from_string(DbBackend::Postgres, NEXT_DUE_IN))
            .await
            .ok()??;
        let seconds: Option<f64> = row.try_get("", "seconds").ok()?;
        Some(Duration::from_secs_f64(seconds?.max(0.0)))
    }

    /// Listens on `channel` for notices that a monitor changed (PostgreSQL); `None` when the
    /// listener cannot be opened.
    pub async fn listen(&self, channel: &str) -> Option<ChangeListener> {
        let pool = self.conn.get_postgres_connection_pool();
        let mut listener = PgListener::connect_with(pool).await.ok()?;
        listener.listen(channel).await.ok()?;
        Some(ChangeListener(listener))
    }

    /// Tells the listeners of `channel` that the monitor with this id changed (PostgreSQL).
    /// Best effort, in the background: lease schedulers also wake on their own timer.
    pub fn notify_changed(&self, channel: &str, monitor_id: i64) {
        let conn = self.conn.clone();
        let statement = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [channel.into(), monitor_id.to_string().into()],
        );
        tokio::spawn(async move {
            if let Err(err) = conn.execute_raw(statement).await {
                tracing::debug!(error = %err, "NOTIFY failed");
            }
        });
    }
}
