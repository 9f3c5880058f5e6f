//! The result writer: one task that gathers check results into batches, has the store write
//! them ([`store::BatchWriter`]: on SQLite on a connection and thread of its own, on
//! PostgreSQL several batches at once), and then publishes the events. What happens after a
//! result is stored has one place: `Writer::after_stored`.
//!
//! Checks hand their outcome to [`ResultWriter::submit`] and go on; a manual check waits for
//! its stored row with [`ResultWriter::store`].

use domain::maintenance::Calendar;
use std::{sync::Arc, time::Duration};

use domain::{CheckEvent, CheckOutcome, CheckResult, Slot};
use store::{BatchWriter, Database, PendingResult, Pushed, Written};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{events::EventBus, shard::shard_of};

/// Most results written in one transaction.
pub const MAX_BATCH: usize = 1000;
/// How long the writer waits for more results after the first of a batch arrives: the most
/// it adds to a result's way to the database and to live subscribers. Each batch has a fixed
/// cost (a transaction, a wake-up of the store, one of each subscriber), so a longer linger
/// saves CPU at moderate rates but delays live subscribers by as much; at high rates batches
/// fill anyway.
pub const LINGER: Duration = Duration::from_millis(10);
/// Batches written at once on PostgreSQL (each takes a pooled connection).
pub const PARALLEL_WRITES: usize = 4;
/// Batches at least this big are split by shard and written in parallel; smaller ones are
/// written whole (splitting them would only multiply transactions).
pub const SPLIT_AT: usize = 256;
/// Rounds a batch may take because other writers keep changing its monitors (PostgreSQL; each
/// round repeats only the results of the monitors that changed).
const MAX_ROUNDS: usize = 8;
/// Results waiting to be written before checks wait for room.
pub const QUEUE_CAPACITY: usize = 20_000;

/// Why a result was not stored.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("monitor {0} no longer exists")]
    MonitorGone(i64),
    #[error("the database rejected the result")]
    Database,
    #[error("the result store has stopped")]
    Stopped,
}

struct Pending {
    result: PendingResult,
    reply: Option<oneshot::Sender<Result<Option<Arc<CheckEvent>>, WriteError>>>,
}

/// Hands results to the writer task.
#[derive(Clone)]
pub struct ResultWriter {
    tx: mpsc::Sender<Pending>,
}

impl ResultWriter {
    /// Starts the writer on `db`. It stops once `stop` is cancelled and the queue is drained.
    /// `sole_writer`: no other process stores results (no RabbitMQ), so on PostgreSQL the
    /// store may keep the monitor rows it wrote.
    pub fn start(
        db: &Database,
        sole_writer: bool,
        events: EventBus,
        calendar: Calendar,
        stop: CancellationToken,
    ) -> anyhow::Result<(Self, tokio::task::JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let handle = match db.sqlite_file() {
            Some(file) => {
                let writer = Arc::new(Writer {
                    db: BatchWriter::sqlite(file)?.with_calendar(calendar),
                    events,
                });
                // SQLite has one writer at a time, and its calls block: the writer gets a
                // thread (and a single-threaded runtime) of its own, so a batch never holds
                // up the API's runtime and results from the checks' threads reach it through
                // the queue alone.
                crate::runtime::spawn_on_own_thread("store", writer.run(rx, stop, 1))?
            }
            // PostgreSQL takes several transactions at once (batches lock different
            // monitors), so its round trips and commits overlap.
            None => {
                let writer = Arc::new(Writer {
                    db: BatchWriter::postgres(db, sole_writer, PARALLEL_WRITES)
                        .with_calendar(calendar),
                    events,
                });
                tokio::spawn(writer.run(rx, stop, PARALLEL_WRITES))
            }
        };
        Ok((Self { tx }, handle))
    }

    /// Queues a scheduled result; waits only when the queue is full.
    pub async fn submit(&self, monitor_id: i64, outcome: CheckOutcome, slot: Option<Slot>) {
        let pending = Pending {
            result: PendingResult {
                monitor_id,
                outcome,
                slot,
                push: None,
            },
            reply: None,
        };
        if self.tx.send(pending).await.is_err() {
            tracing::warn!(
                monitor.id = monitor_id,
                "result dropped: the store has stopped"
            );
        }
    }

    /// Stores a result for a scheduled slot and waits until it is written, giving back its
    /// event (the monitor after it): `None` when the slot already had a result, so nothing
    /// was stored.
    pub async fn store_slot(
        &self,
        monitor_id: i64,
        outcome: CheckOutcome,
        slot: Option<Slot>,
    ) -> Result<Option<Arc<CheckEvent>>, WriteError> {
        self.write(PendingResult {
            monitor_id,
            outcome,
            slot,
            push: None,
        })
        .await
    }

    /// Stores a push's result (while the monitor is still the active PUSH monitor of its
    /// token), the monitor next due at its `next_due`, and waits for the row.
    pub async fn store_push(
        &self,
        monitor_id: i64,
        outcome: CheckOutcome,
        push: Pushed,
    ) -> Result<CheckResult, WriteError> {
        self.write(PendingResult {
            monitor_id,
            outcome,
            slot: None,
            push: Some(push),
        })
        .await?
        .map(|event| event.result.clone())
        .ok_or(WriteError::Database)
    }

    async fn write(&self, result: PendingResult) -> Result<Option<Arc<CheckEvent>>, WriteError> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            result,
            reply: Some(reply),
        };
        self.tx
            .send(pending)
            .await
            .map_err(|_| WriteError::Stopped)?;
        answer.await.map_err(|_| WriteError::Stopped)?
    }
}

struct Writer {
    db: BatchWriter,
    events: EventBus,
}

impl Writer {
    /// Collects batches and writes up to `parallel` at once; the next batch gathers while
    /// earlier ones are written.
    ///
    /// Monitors are split into `parallel` shards (by id), each written by one transaction at
    /// a time. A big batch is split by shard, so the transactions in flight never lock the
    /// same monitor (they would wait on each other, and under a backlog a monitor's
    /// consecutive results land in consecutive batches); a small one is written whole,
    /// holding every shard. Permits are taken in batch order, so each monitor's results are
    /// written and published in the order they came.
    async fn run(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<Pending>,
        stop: CancellationToken,
        parallel: usize,
    ) {
        let shards: Vec<Arc<Semaphore>> = (0..parallel.max(1))
            .map(|_| Arc::new(Semaphore::new(1)))
            .collect();
        let writes = TaskTracker::new();
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            tokio::select! {
                biased;
                received = rx.recv_many(&mut batch, MAX_BATCH) => {
                    if received == 0 {
                        break;
                    }
                    // Linger briefly for more: at a steady rate, results arrive one by one,
                    // and one transaction per result would cost several database round trips
                    // (and thread hand-offs) per check instead of per batch. Sleep, then take
                    // what came: waiting on the queue instead would wake this task (and, from
                    // the checks' thread, a parked worker thread) once per result.
                    if batch.len() < MAX_BATCH {
                        tokio::select! {
                            biased;
                            _ = stop.cancelled() => {}
                            _ = tokio::time::sleep(LINGER) => {}
                        }
                        while batch.len() < MAX_BATCH {
                            match rx.try_recv() {
                                Ok(pending) => batch.push(pending),
                                Err(_) => break,
                            }
                        }
                    }
                }
                _ = stop.cancelled() => {
                    writes.close();
                    writes.wait().await;
                    while let Ok(pending) = rx.try_recv() {
                        batch.push(pending);
                        if batch.len() >= MAX_BATCH {
                            self.write(std::mem::take(&mut batch), &stop).await;
                        }
                    }
                    if !batch.is_empty() {
                        self.write(std::mem::take(&mut batch), &stop).await;
                    }
                    break;
                }
            }
            let full = std::mem::take(&mut batch);
            let parts: Vec<(Vec<usize>, Vec<Pending>)> =
                if shards.len() > 1 && full.len() >= SPLIT_AT {
                    let mut parts: Vec<Vec<Pending>> = shards.iter().map(|_| Vec::new()).collect();
                    for pending in full {
                        parts[shard_of(pending.result.monitor_id, shards.len())].push(pending);
                    }
                    parts
                        .into_iter()
                        .enumerate()
                        .filter(|(_, part)| !part.is_empty())
                        .map(|(k, part)| (vec![k], part))
                        .collect()
                } else {
                    vec![((0..shards.len()).collect(), full)]
                };
            for (held, part) in parts {
                let mut permits = Vec::with_capacity(held.len());
                for k in held {
                    // The semaphores are never closed.
                    if let Ok(permit) = shards[k].clone().acquire_owned().await {
                        permits.push(permit);
                    }
                }
                let writer = self.clone();
                let stop = stop.clone();
                writes.spawn(async move {
                    writer.write(part, &stop).await;
                    drop(permits);
                });
            }
        }
        writes.close();
        writes.wait().await;
        tracing::debug!("result store stopped");
    }

    /// Writes one batch. While the database is unreachable it retries with backoff (up to
    /// 5 s apart) until it is back or the store is stopped; any other failure is retried
    /// three times.
    async fn write(&self, batch: Vec<Pending>, stop: &CancellationToken) {
        if batch.is_empty() {
            return;
        }
        let mut outcomes: Vec<Option<Written>> = batch.iter().map(|_| None).collect();
        let mut delay = Duration::from_millis(100);
        let mut attempt = 1;
        let mut rounds = 0;
        let failure = loop {
            let todo: Vec<usize> = (0..batch.len())
                .filter(|&k| outcomes[k].is_none())
                .collect();
            if todo.is_empty() {
                break None;
            }
            match self.write_once(&batch, &todo, &mut outcomes).await {
                // What is left had its monitor changed by another writer after it was read:
                // it is read and planned again.
                Ok(()) => {
                    rounds += 1;
                    if rounds > MAX_ROUNDS {
                        break Some(store::Error::Failed(format!(
                            "the monitors kept changing while their results were written \
                             ({MAX_ROUNDS} rounds)"
                        )));
                    }
                }
                Err(err) => {
                    // Unreachable or locked: worth waiting for, however long it takes.
                    let unreachable = err.is_unavailable();
                    if (!unreachable && attempt >= 3) || (unreachable && stop.is_cancelled()) {
                        break Some(err);
                    }
                    tracing::warn!(error = %err, attempt, results = todo.len(), "storing check results failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                    attempt += 1;
                }
            }
        };
        if let Some(err) = failure {
            let lost = outcomes.iter().filter(|o| o.is_none()).count();
            tracing::error!(error = %err, results = lost, "check results lost: the database kept failing");
        }
        for (pending, written) in batch.into_iter().zip(outcomes) {
            let answer = match written {
                Some(Written::Stored(event)) => {
                    let answer = pending.reply.is_some().then(|| event.clone());
                    self.after_stored(event);
                    Ok(answer)
                }
                Some(Written::Duplicate) => Ok(None),
                Some(Written::Gone) => Err(WriteError::MonitorGone(pending.result.monitor_id)),
                Some(Written::Rejected) | None => Err(WriteError::Database),
            };
            if let Some(reply) = pending.reply {
                let _ = reply.send(answer);
            }
        }
    }

    /// What follows a stored result, in the order results were stored: today its live event
    /// goes out. Incidents, notifications and maintenance windows go here, each as a step that
    /// sees the event (its result, the monitor after it, the status before it).
    fn after_stored(&self, event: Arc<CheckEvent>) {
        self.events.publish(event);
    }

    /// Writes the results `todo` (indexes into `batch`) once, and records in `outcomes` what
    /// became of each result it settled. SQLite writes all of them or, on an error, nothing; on
    /// PostgreSQL a result whose monitor another writer changed meanwhile is left unsettled.
    async fn write_once(
        &self,
        batch: &[Pending],
        todo: &[usize],
        outcomes: &mut [Option<Written>],
    ) -> Result<(), store::Error> {
        let pending: Vec<&PendingResult> = todo.iter().map(|&k| &batch[k].result).collect();
        let settled = self.db.write(&pending).await?;
        for (&k, outcome) in todo.iter().zip(settled) {
            outcomes[k] = outcome;
        }
        Ok(())
    }
}
