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

use store::{ChangeListener, Database};
use tokio_util::sync::CancellationToken;

use crate::amqp::{JobMessage, Publisher};

/// Shortest time between the starts of two rounds (unless the last one claimed a full batch).
/// Each round is two queries and a publish; slots due within the gap share one.
pub const ROUND_GAP: Duration = Duration::from_millis(20);
/// Longest sleep between two rounds.
pub const MAX_SLEEP: Duration = Duration::from_secs(2);
/// Most slots claimed in one round.
pub const BATCH: i64 = 1000;

/// Runs rounds until `stop` fires.
pub async fn run(
    db: Database,
    publisher: Arc<Publisher>,
    channel: String,
    stop: CancellationToken,
) {
    let mut listener = db.listen(&channel).await;
    let mut backoff = Duration::from_millis(200);
    tracing::info!("lease scheduler started");
    while !stop.is_cancelled() {
        let round = tokio::time::Instant::now();
        let wait = match claim_and_publish(&db, &publisher).await {
            Ok(claimed) if claimed as i64 >= BATCH => continue,
            Ok(_) => {
                backoff = Duration::from_millis(200);
                db.next_due_in().await.unwrap_or(MAX_SLEEP)
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
                    listener = db.listen(&channel).await;
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

/// True when a notification arrived, false when the listener failed; pends forever without
/// a listener.
async fn recv(listener: &mut Option<ChangeListener>) -> bool {
    match listener {
        Some(l) => l.recv().await,
        None => std::future::pending().await,
    }
}

/// One round: claim due slots, publish them, commit. Returns how many were claimed.
async fn claim_and_publish(db: &Database, publisher: &Publisher) -> Result<usize, String> {
    let claim = db.claim_due(BATCH).await.map_err(|e| e.to_string())?;
    if claim.slots.is_empty() {
        claim.commit().await.map_err(|e| e.to_string())?;
        return Ok(0);
    }
    let jobs: Vec<JobMessage> = claim
        .slots
        .iter()
        .map(|slot| JobMessage {
            v: crate::amqp::JOB_VERSION,
            spec: slot.spec.clone(),
            monitor_id: slot.monitor_id,
            url: slot.url.clone(),
            timeout_ms: domain::slot::timeout_of(slot.timeout_seconds).as_millis() as u64,
            due: slot.due,
            next: slot.next,
        })
        .collect();
    if let Err(err) = publisher.publish_jobs(&jobs).await {
        let _ = claim.rollback().await;
        return Err(format!("publishing jobs failed: {err}"));
    }
    claim.commit().await.map_err(|e| e.to_string())?;
    tracing::debug!(jobs = jobs.len(), "published due checks");
    Ok(jobs.len())
}
