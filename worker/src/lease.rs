//! The distributed scheduler: any number of these run against one PostgreSQL database and
//! publish due checks to RabbitMQ. The database is the schedule. Each round claims a batch of
//! due monitors with `FOR UPDATE SKIP LOCKED` (so two schedulers never claim the same slot),
//! moves each one's `next_check_at` to its next slot (computed with the database's clock, so
//! schedulers with skewed clocks agree), publishes the jobs with publisher confirms, and only
//! then commits. A scheduler that dies mid-round rolls back: its slots become claimable again
//! at once, so nothing is forgotten. One that dies after publishing but before committing
//! may see its slots published twice; the store keeps one result per slot.
//!
//! Between rounds it sleeps until the earliest due time, woken early by `NOTIFY` when a
//! monitor changes, and at least every [`MAX_SLEEP`] as a safety net. Rounds start at least
//! [`ROUND_GAP`] apart unless the last one claimed a full batch: slots due within it are
//! claimed together, rather than one round (two queries and a publish) per evenly spread slot.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use sea_orm::{
    sqlx::postgres::PgListener, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement,
    TransactionTrait,
};
use tokio_util::sync::CancellationToken;

use crate::amqp::{JobMessage, Publisher};

/// Shortest time between the starts of two rounds (unless the last one claimed a full batch).
/// Each round is two queries and a publish; slots due within the gap share one.
pub const ROUND_GAP: Duration = Duration::from_millis(20);
/// Longest sleep between two rounds.
pub const MAX_SLEEP: Duration = Duration::from_secs(2);
/// Most slots claimed in one round.
pub const BATCH: i64 = 1000;

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
RETURNING m.id, m.url, m.timeout_seconds, due.due AS due, m.next_check_at AS next
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

/// Runs rounds until `stop` fires.
pub async fn run(
    db: DatabaseConnection,
    publisher: Arc<Publisher>,
    channel: String,
    stop: CancellationToken,
) {
    let mut listener = listen(&db, &channel).await;
    let mut backoff = Duration::from_millis(200);
    tracing::info!("lease scheduler started");
    while !stop.is_cancelled() {
        let round = tokio::time::Instant::now();
        let wait = match claim_and_publish(&db, &publisher).await {
            Ok(claimed) if claimed as i64 >= BATCH => continue,
            Ok(_) => {
                backoff = Duration::from_millis(200);
                next_due_in(&db).await.unwrap_or(MAX_SLEEP)
            }
            Err(err) => {
                tracing::warn!(error = %err, retry_in_ms = backoff.as_millis() as u64, "scheduling round failed; retrying");
                let wait = backoff;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                wait
            }
        };
        let wait = wait.min(MAX_SLEEP);
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
            notified = recv(&mut listener) => {
                if !notified {
                    // The listener broke; reopen it next round and rely on the timer meanwhile.
                    listener = listen(&db, &channel).await;
                }
            }
        }
        // A burst of notifications (a bulk edit) or slots a millisecond apart wait for the
        // gap, then share one round.
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(round + ROUND_GAP) => {}
        }
    }
    tracing::info!("lease scheduler stopped");
}

async fn listen(db: &DatabaseConnection, channel: &str) -> Option<PgListener> {
    let pool = db.get_postgres_connection_pool();
    let mut listener = PgListener::connect_with(pool).await.ok()?;
    listener.listen(channel).await.ok()?;
    Some(listener)
}

/// True when a notification arrived, false when the listener failed; pends forever without
/// a listener.
async fn recv(listener: &mut Option<PgListener>) -> bool {
    match listener {
        Some(l) => l.recv().await.is_ok(),
        None => std::future::pending().await,
    }
}

/// One round: claim due slots, publish them, commit. Returns how many were claimed.
async fn claim_and_publish(
    db: &DatabaseConnection,
    publisher: &Publisher,
) -> Result<usize, String> {
    let txn = db.begin().await.map_err(|e| e.to_string())?;
    let rows = txn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            CLAIM,
            [BATCH.into()],
        ))
        .await
        .map_err(|e| e.to_string())?;
    if rows.is_empty() {
        txn.commit().await.map_err(|e| e.to_string())?;
        return Ok(0);
    }
    let jobs = rows
        .iter()
        .map(|row| {
            Ok(JobMessage {
                monitor_id: row.try_get("", "id")?,
                url: row.try_get("", "url")?,
                timeout_ms: domain::slot::timeout_of(row.try_get("", "timeout_seconds")?)
                    .as_millis() as u64,
                due: row.try_get::<DateTime<Utc>>("", "due")?,
                next: row.try_get::<DateTime<Utc>>("", "next")?,
            })
        })
        .collect::<Result<Vec<_>, DbErr>>()
        .map_err(|e| e.to_string())?;
    if let Err(err) = publisher.publish_jobs(&jobs).await {
        let _ = txn.rollback().await;
        return Err(format!("publishing jobs failed: {err}"));
    }
    txn.commit().await.map_err(|e| e.to_string())?;
    tracing::debug!(jobs = jobs.len(), "published due checks");
    Ok(jobs.len())
}

async fn next_due_in(db: &DatabaseConnection) -> Option<Duration> {
    let row = db
        .query_one_raw(Statement::from_string(DbBackend::Postgres, NEXT_DUE_IN))
        .await
        .ok()??;
    let seconds: Option<f64> = row.try_get("", "seconds").ok()?;
    Some(Duration::from_secs_f64(seconds?.max(0.0)))
}
