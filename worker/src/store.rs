//! The result store: one task that gathers check results into batches and writes them (on
//! PostgreSQL one statement per batch, after a read of the monitors it does not hold, several
//! batches at once; on SQLite one transaction of
//! cached single-row statements on the store's own connection and thread),
//! moves each monitor's `last_*` columns and next due time forward, detects status changes
//! and then publishes the events.
//!
//! Checks hand their outcome to [`ResultStore::submit`] and go on; a manual check waits for
//! its stored row with [`ResultStore::store`].

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use domain::{from_epoch_ms, CheckResult, CheckStatus, LatestStatus, Slot};
use entity::{check_result, monitor};
use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    checker::CheckOutcome,
    events::{CheckEvent, EventBus},
    runtime::shard_of,
};

mod postgres;
mod sqlite;

pub(crate) use sqlite::{monitor_from_row, MONITOR_COLUMNS, SELECT_MONITOR};

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
pub enum StoreError {
    #[error("monitor {0} no longer exists")]
    MonitorGone(i64),
    #[error("the database rejected the result")]
    Database,
    #[error("the result store has stopped")]
    Stopped,
}

struct Pending {
    monitor_id: i64,
    outcome: CheckOutcome,
    slot: Option<Slot>,
    reply: Option<oneshot::Sender<Result<Option<CheckResult>, StoreError>>>,
}

/// What became of one pending result.
enum Written {
    Stored(Arc<CheckEvent>),
    /// Its monitor was deleted meanwhile.
    Gone,
    /// Its slot already has a result (a redelivered job).
    Duplicate,
    /// It cannot be stored (its monitor's id or result count is beyond the table's integers).
    Rejected,
}

enum Fate {
    Insert,
    Gone,
    Duplicate,
    Rejected,
}

/// Where the store writes.
pub enum StoreDatabase {
    /// A sea-orm pool (PostgreSQL): several batches are written at once.
    Pool {
        db: DatabaseConnection,
        /// This process is the only one storing results (no RabbitMQ), so the store may keep
        /// the monitor rows it wrote instead of reading them for every batch.
        sole_writer: bool,
    },
    /// A SQLite database file (already migrated), written through a connection of the
    /// store's own on the store's own thread.
    Sqlite(PathBuf),
}

/// Hands results to the writer task.
#[derive(Clone)]
pub struct ResultStore {
    tx: mpsc::Sender<Pending>,
}

impl ResultStore {
    /// Starts the writer. It stops once `stop` is cancelled and the queue is drained.
    pub fn start(
        db: StoreDatabase,
        events: EventBus,
        stop: CancellationToken,
    ) -> anyhow::Result<(Self, tokio::task::JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let handle = match db {
            StoreDatabase::Sqlite(path) => {
                let store = sqlite::SqliteStore::open(&path).map_err(|err| {
                    anyhow::anyhow!(
                        "the result store cannot open the SQLite database {}: {err}",
                        path.display()
                    )
                })?;
                let writer = Arc::new(Writer {
                    db: Db::Sqlite(Mutex::new(store)),
                    events,
                });
                // SQLite has one writer at a time, and its calls block: the store gets a
                // thread (and a single-threaded runtime) of its own, so a batch never holds
                // up the API's runtime and results from the checks' threads reach it through
                // the queue alone.
                crate::runtime::spawn_on_own_thread("store", writer.run(rx, stop, 1))?
            }
            // PostgreSQL takes several transactions at once (batches lock different
            // monitors), so its round trips and commits overlap.
            StoreDatabase::Pool { db, sole_writer } => {
                let writer = Arc::new(Writer {
                    db: Db::Postgres(postgres::PgStore::new(&db, sole_writer, PARALLEL_WRITES)),
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
            monitor_id,
            outcome,
            slot,
            reply: None,
        };
        if self.tx.send(pending).await.is_err() {
            tracing::warn!(
                monitor.id = monitor_id,
                "result dropped: the store has stopped"
            );
        }
    }

    /// Stores a result and waits for the stored row.
    pub async fn store(
        &self,
        monitor_id: i64,
        outcome: CheckOutcome,
    ) -> Result<CheckResult, StoreError> {
        self.store_slot(monitor_id, outcome, None)
            .await?
            .ok_or(StoreError::Database)
    }

    /// Stores a result for a scheduled slot and waits until it is written: `None` when the
    /// slot already had a result, so nothing was stored.
    pub async fn store_slot(
        &self,
        monitor_id: i64,
        outcome: CheckOutcome,
        slot: Option<Slot>,
    ) -> Result<Option<CheckResult>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            monitor_id,
            outcome,
            slot,
            reply: Some(reply),
        };
        self.tx
            .send(pending)
            .await
            .map_err(|_| StoreError::Stopped)?;
        answer.await.map_err(|_| StoreError::Stopped)?
    }
}

struct Writer {
    db: Db,
    events: EventBus,
}

enum Db {
    Postgres(postgres::PgStore),
    /// Locked by one batch at a time (all on the store's thread, so never contended).
    Sqlite(Mutex<sqlite::SqliteStore>),
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
                        parts[shard_of(pending.monitor_id, shards.len())].push(pending);
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
                        break Some(DbErr::Custom(format!(
                            "the monitors kept changing while their results were written \
                             ({MAX_ROUNDS} rounds)"
                        )));
                    }
                }
                Err(err) => {
                    // Unreachable or locked: worth waiting for, however long it takes.
                    let unreachable = matches!(err, DbErr::ConnectionAcquire(_) | DbErr::Conn(_))
                        || err.to_string().contains("database is locked");
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
                    let record = event.result.clone();
                    self.events.publish(event);
                    Ok(Some(record))
                }
                Some(Written::Duplicate) => Ok(None),
                Some(Written::Gone) => Err(StoreError::MonitorGone(pending.monitor_id)),
                Some(Written::Rejected) | None => Err(StoreError::Database),
            };
            if let Some(reply) = pending.reply {
                let _ = reply.send(answer);
            }
        }
    }

    /// Writes the results `todo` (indexes into `batch`) once, and records in `outcomes` what
    /// became of each result it settled. SQLite writes all of them or, on an error, nothing; on
    /// PostgreSQL a result whose monitor another writer changed meanwhile is left unsettled.
    async fn write_once(
        &self,
        batch: &[Pending],
        todo: &[usize],
        outcomes: &mut [Option<Written>],
    ) -> Result<(), DbErr> {
        let pending: Vec<&Pending> = todo.iter().map(|&k| &batch[k]).collect();
        let settled = match &self.db {
            Db::Sqlite(store) => {
                let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
                store
                    .write(&pending)
                    .map_err(|err| DbErr::Custom(err.to_string()))?
                    .into_iter()
                    .map(Some)
                    .collect()
            }
            Db::Postgres(store) => store.write(&pending).await?,
        };
        for (&k, outcome) in todo.iter().zip(settled) {
            outcomes[k] = outcome;
        }
        Ok(())
    }
}

/// The monitors of a batch, each once, in id order.
fn monitor_ids<'a>(batch: impl IntoIterator<Item = &'a Pending>) -> Vec<i64> {
    let mut ids: Vec<i64> = batch.into_iter().map(|p| p.monitor_id).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// What a batch does, worked out from its monitors as locked: each result's fate, the rows to
/// insert (ids filled in once inserted), and the monitors as they will be.
struct Plan {
    fates: Vec<Fate>,
    rows: Vec<check_result::Model>,
    /// Per row: its monitor as it is after that result, and the monitor's status before it.
    after: Vec<(monitor::Model, Option<CheckStatus>)>,
    monitors: HashMap<i64, monitor::Model>,
}

impl Plan {
    fn new<'a>(
        batch: impl ExactSizeIterator<Item = &'a Pending>,
        found: Vec<monitor::Model>,
    ) -> Self {
        let mut monitors: HashMap<i64, monitor::Model> =
            found.into_iter().map(|m| (m.id, m)).collect();
        let mut fates = Vec::with_capacity(batch.len());
        let mut rows = Vec::with_capacity(batch.len());
        let mut after = Vec::with_capacity(batch.len());
        for pending in batch {
            let Some(monitor) = monitors.get_mut(&pending.monitor_id) else {
                fates.push(Fate::Gone);
                continue;
            };
            // A slot that already has a result is not stored again.
            if let Some(slot) = pending.slot {
                if slot.is_done(monitor.last_slot_at) {
                    fates.push(Fate::Duplicate);
                    continue;
                }
            }
            // `check_results.monitor_id` and `seq` are 4-byte integers (migration 5).
            let (Ok(monitor_id), Some(seq)) = (
                i32::try_from(pending.monitor_id),
                monitor.last_seq.checked_add(1),
            ) else {
                tracing::error!(
                    monitor.id = pending.monitor_id,
                    "result not stored: the monitor's id or its result count is past 2,147,483,647"
                );
                fates.push(Fate::Rejected);
                continue;
            };
            let outcome = &pending.outcome;
            let row = check_result::Model {
                id: 0,
                monitor_id,
                seq,
                checked_at_ms: outcome.started_at.timestamp_millis(),
                up: outcome.status.is_up(),
                status_code: outcome.status_code.and_then(|c| i16::try_from(c).ok()),
                response_time_ms: i32::try_from(outcome.response_time_ms).unwrap_or(i32::MAX),
                error: outcome.error.clone(),
            };
            monitor.last_seq = seq;
            let mut latest = LatestStatus {
                status: monitor.last_up.map(CheckStatus::from_up),
                checked_at: monitor.last_checked_at,
            };
            let previous = latest.apply(outcome.status, from_epoch_ms(row.checked_at_ms));
            monitor.last_up = latest.status.map(CheckStatus::is_up);
            monitor.last_checked_at = latest.checked_at;
            if let Some(slot) = pending.slot {
                monitor.last_slot_at = Some(slot.due);
                monitor.next_check_at = slot.next_check_at(monitor.next_check_at);
            }
            fates.push(Fate::Insert);
            rows.push(row);
            after.push((monitor.clone(), previous));
        }
        Self {
            fates,
            rows,
            after,
            monitors,
        }
    }

    /// The monitors whose row changes: those with a result to insert (each moves `last_seq`
    /// on; nothing else changes a monitor).
    fn changed_monitors(&self) -> Vec<&monitor::Model> {
        let inserted: HashSet<i64> = self.rows.iter().map(|r| i64::from(r.monitor_id)).collect();
        inserted
            .iter()
            .filter_map(|id| self.monitors.get(id))
            .collect()
    }

    /// Per pending result in order, what became of it (the rows' ids filled in).
    fn written(self) -> Vec<Written> {
        let mut stored = self.rows.into_iter().zip(self.after);
        self.fates
            .into_iter()
            .map(|fate| match fate {
                Fate::Gone => Written::Gone,
                Fate::Duplicate => Written::Duplicate,
                Fate::Rejected => Written::Rejected,
                Fate::Insert => match stored.next() {
                    Some((row, (monitor, previous))) => Written::Stored(Arc::new(CheckEvent {
                        result: crate::to_domain::check_result(row),
                        monitor,
                        previous,
                    })),
                    // Not reached: one row per insert fate.
                    None => Written::Rejected,
                },
            })
            .collect()
    }
}
