//! The result store: one task that gathers check results into batches and writes them (one
//! transaction per batch: on PostgreSQL one multi-row insert, several batches at once; on
//! SQLite cached single-row statements on the store's own connection and thread),
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

use chrono::{DateTime, Utc};
use entity::{check_result, monitor};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    checker::CheckOutcome,
    events::{CheckEvent, EventBus},
    model::{CheckRecord, CheckStatus},
    runtime::shard_of,
};

mod sqlite;

/// Most results written in one transaction.
pub const MAX_BATCH: usize = 1000;
/// How long the writer waits for more results after the first of a batch arrives: the most
/// it adds to a result's way to the database and to live subscribers. Each batch has a fixed
/// cost (a transaction, a wake-up of the store, one of each subscriber), so at moderate rates
/// this sets part of the store's CPU per check. 20 ms instead of 10 took the p99 delivery to
/// live subscribers from ~17 to 31-48 ms (measured when the SQLite store still went through
/// sqlx). At high rates batches fill anyway.
pub const LINGER: Duration = Duration::from_millis(10);
/// Batches written at once on PostgreSQL (each takes a pooled connection).
pub const PARALLEL_WRITES: usize = 4;
/// Batches at least this big are split by shard and written in parallel; smaller ones are
/// written whole (splitting them would only multiply transactions).
pub const SPLIT_AT: usize = 256;
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

/// A scheduled slot a result completes: the due time it was checked for and the next one.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    pub due: DateTime<Utc>,
    pub next: DateTime<Utc>,
}

struct Pending {
    monitor_id: i64,
    outcome: CheckOutcome,
    slot: Option<Slot>,
    reply: Option<oneshot::Sender<Result<Option<CheckRecord>, StoreError>>>,
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
    Pool(DatabaseConnection),
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
                let conn = sqlite::open(&path).map_err(|err| {
                    anyhow::anyhow!(
                        "the result store cannot open the SQLite database {}: {err}",
                        path.display()
                    )
                })?;
                let writer = Arc::new(Writer {
                    db: Db::Sqlite(Mutex::new(conn)),
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
            StoreDatabase::Pool(pool) => {
                let writer = Arc::new(Writer {
                    db: Db::Pool(pool),
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
    ) -> Result<CheckRecord, StoreError> {
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
    ) -> Result<Option<CheckRecord>, StoreError> {
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
    Pool(DatabaseConnection),
    /// Locked by one batch at a time (all on the store's thread, so never contended).
    Sqlite(Mutex<rusqlite::Connection>),
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
        let mut delay = Duration::from_millis(100);
        let mut attempt = 1;
        let outcome = loop {
            match self.write_once(&batch).await {
                Ok(outcome) => break Ok(outcome),
                Err(err) => {
                    // Unreachable or locked: worth waiting for, however long it takes.
                    let unreachable = matches!(err, DbErr::ConnectionAcquire(_) | DbErr::Conn(_))
                        || err.to_string().contains("database is locked");
                    if (!unreachable && attempt >= 3) || (unreachable && stop.is_cancelled()) {
                        break Err(err);
                    }
                    tracing::warn!(error = %err, attempt, results = batch.len(), "storing check results failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                    attempt += 1;
                }
            }
        };
        match outcome {
            Ok(written) => {
                for (pending, written) in batch.into_iter().zip(written) {
                    let answer = match written {
                        Written::Stored(event) => {
                            let record = event.result.clone();
                            self.events.publish(event);
                            Ok(Some(record))
                        }
                        Written::Duplicate => Ok(None),
                        Written::Gone => Err(StoreError::MonitorGone(pending.monitor_id)),
                        Written::Rejected => Err(StoreError::Database),
                    };
                    if let Some(reply) = pending.reply {
                        let _ = reply.send(answer);
                    }
                }
            }
            Err(err) => {
                tracing::error!(error = %err, results = batch.len(), "check results lost: the database kept failing");
                for pending in batch {
                    if let Some(reply) = pending.reply {
                        let _ = reply.send(Err(StoreError::Database));
                    }
                }
            }
        }
    }

    /// One transaction: lock the monitors, insert the results, update the monitors. Returns,
    /// per pending result in order, what became of it.
    async fn write_once(&self, batch: &[Pending]) -> Result<Vec<Written>, DbErr> {
        let db = match &self.db {
            Db::Sqlite(conn) => {
                let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
                return sqlite::write(&mut conn, batch)
                    .map_err(|err| DbErr::Custom(err.to_string()));
            }
            Db::Pool(db) => db,
        };
        let txn = db.begin().await?;
        // Serialises writers of other processes on the same monitors; locking in id order,
        // so concurrent writers (other workers) never deadlock.
        let found = monitor::Entity::find()
            .filter(monitor::Column::Id.is_in(monitor_ids(batch)))
            .order_by_asc(monitor::Column::Id)
            .lock_exclusive()
            .all(&txn)
            .await?;
        let mut plan = Plan::new(batch, found);
        if !plan.rows.is_empty() {
            let mut returned = insert_rows(&plan.rows).exec_with_returning(&txn).await?;
            // One multi-row insert assigns increasing ids in row order.
            returned.sort_unstable_by_key(|r| r.id);
            if returned.len() != plan.rows.len() {
                return Err(DbErr::Custom("insert returned fewer rows than sent".into()));
            }
            plan.rows = returned;
        }
        for statement in update_statements(&plan.changed_monitors()) {
            txn.execute_raw(statement).await?;
        }
        txn.commit().await?;
        Ok(plan.written())
    }
}

/// The monitors of a batch, each once, in id order (the order both backends lock them in).
fn monitor_ids(batch: &[Pending]) -> Vec<i64> {
    let mut ids: Vec<i64> = batch.iter().map(|p| p.monitor_id).collect();
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
    fn new(batch: &[Pending], found: Vec<monitor::Model>) -> Self {
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
                if monitor.last_slot_at.is_some_and(|done| done >= slot.due) {
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
            let previous = monitor.last_up.map(CheckStatus::from_up);
            monitor.last_seq = seq;
            let checked_at = crate::model::from_epoch_ms(row.checked_at_ms);
            if monitor
                .last_checked_at
                .is_none_or(|last| checked_at >= last)
            {
                monitor.last_checked_at = Some(checked_at);
                monitor.last_up = Some(row.up);
            }
            if let Some(slot) = pending.slot {
                monitor.last_slot_at = Some(slot.due);
                // Move the due time on only if nobody moved it since the slot began (an edit,
                // a pause, or a distributed scheduler that already leased the next slot).
                if monitor.next_check_at == Some(slot.due) {
                    monitor.next_check_at = Some(slot.next);
                }
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
                        result: CheckRecord::from(row),
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

/// One multi-row insert of `rows` (their ids left to the database).
fn insert_rows(rows: &[check_result::Model]) -> sea_orm::InsertMany<check_result::ActiveModel> {
    check_result::Entity::insert_many(rows.iter().map(|row| check_result::ActiveModel {
        monitor_id: Set(row.monitor_id),
        seq: Set(row.seq),
        checked_at_ms: Set(row.checked_at_ms),
        up: Set(row.up),
        status_code: Set(row.status_code),
        response_time_ms: Set(row.response_time_ms),
        error: Set(row.error.clone()),
        ..Default::default()
    }))
}

/// Rows per `UPDATE ... FROM (VALUES ...)` statement.
const UPDATE_CHUNK: usize = 200;

/// The PostgreSQL statements that write the `last_*` and schedule columns of many monitors,
/// one per chunk (instead of one per monitor, which dominated the cost of a batch).
fn update_statements(rows: &[&monitor::Model]) -> Vec<sea_orm::Statement> {
    let mut statements = Vec::new();
    for chunk in rows.chunks(UPDATE_CHUNK) {
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * 6);
        let mut tuples = Vec::with_capacity(chunk.len());
        for (n, row) in chunk.iter().enumerate() {
            let p = n * 6;
            tuples.push(format!(
                "(${}::bigint, ${}::timestamptz, ${}::boolean, ${}::timestamptz, ${}::timestamptz, ${}::integer)",
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5,
                p + 6
            ));
            values.push(row.id.into());
            values.push(row.last_checked_at.into());
            values.push(row.last_up.into());
            values.push(row.next_check_at.into());
            values.push(row.last_slot_at.into());
            values.push(row.last_seq.into());
        }
        let sql = format!(
            "UPDATE monitors AS m SET last_checked_at = v.last_checked_at, last_up = v.last_up, \
             next_check_at = v.next_check_at, last_slot_at = v.last_slot_at, last_seq = v.last_seq \
             FROM (VALUES {}) AS v(id, last_checked_at, last_up, next_check_at, last_slot_at, last_seq) \
             WHERE m.id = v.id",
            tuples.join(", ")
        );
        statements.push(sea_orm::Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            sql,
            values,
        ));
    }
    statements
}
