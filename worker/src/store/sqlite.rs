//! The SQLite store's own connection (rusqlite), used on the store's thread only.
//!
//! Through sqlx, every statement and every row crossed to sqlx's connection thread and back:
//! at 1,000 checks/s that hand-off, one wake-up of the store per selected monitor and the
//! conversion of each value between sea-orm's, sqlx's and SQLite's types cost more than SQLite
//! itself. Here a batch is plain calls into SQLite on the thread that owns the batch: one
//! `BEGIN IMMEDIATE`, then cached single-row statements (each a B-tree lookup or insert, and
//! single-row statements need no statement journal), then `COMMIT`.
//!
//! Dates are written as sqlx writes them (RFC 3339, `+00:00`), so columns written by either
//! compare and sort alike.
//!
//! Checkpoints (copying the write-ahead log back into the database file, with two fsyncs) run
//! on a thread and connection of their own, not inside the store's commits. SQLite's automatic
//! checkpoint runs in the `COMMIT` that takes the log past 1,000 pages, so that batch, and every
//! result queued behind it, waited for the copy and the fsyncs: at 100,000 monitors (each result
//! dirties two or three pages of its own) that was four or five times a second, and the
//! live subscribers' p99 delay rose to the checkpoint's length once batches grew.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::mpsc::{self, SyncSender, TrySendError},
    time::Duration,
};

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use entity::monitor;
use rusqlite::{
    params,
    types::{Type, ValueRef},
    Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior,
};

use super::{monitor_ids, Pending, Plan, Written};

/// How long a batch waits for another connection's write lock before "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Results stored between two checkpoints. A result dirties one to three pages (its monitor's
/// row, the next-due index, the result's leaf), so the log holds at most a few thousand pages,
/// near SQLite's own 1,000-page threshold at 100,000 monitors and fewer fsyncs at small
/// counts, where a batch's pages repeat.
const CHECKPOINT_EVERY: usize = 1_000;

/// The column list, written once for the two constants below (`concat!` takes literals only).
macro_rules! monitor_columns {
    () => {
        "id, name, url, timeout_seconds, interval_seconds, active, created_at, updated_at, \
         last_checked_at, last_up, next_check_at, last_slot_at, last_seq"
    };
}

/// The monitors' columns in the order [`monitor_from_row`] reads them.
pub(crate) const MONITOR_COLUMNS: &str = monitor_columns!();

/// One monitor by id, decoded by [`monitor_from_row`].
pub(crate) const SELECT_MONITOR: &str = concat!(
    "SELECT ",
    monitor_columns!(),
    " FROM monitors WHERE id = ?1"
);

const INSERT_RESULT: &str = "INSERT INTO check_results \
     (monitor_id, seq, checked_at_ms, up, status_code, response_time_ms, error) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

const UPDATE_MONITOR: &str = "UPDATE monitors SET last_checked_at = ?2, last_up = ?3, \
     next_check_at = ?4, last_slot_at = ?5, last_seq = ?6 WHERE id = ?1";

/// The store's connection, and the monitor rows as this connection last read or wrote them.
///
/// Every result needs its monitor's row (its last status, result number and due times). While
/// no other connection commits, the rows this connection wrote are still exact, so a batch
/// reads only the monitors it has not seen yet. `PRAGMA data_version` changes when another
/// connection (the API's edits, pauses and deletions, another process) commits; the cache is
/// then dropped and every monitor read again.
pub(super) struct SqliteStore {
    conn: Connection,
    monitors: HashMap<i64, monitor::Model>,
    /// `PRAGMA data_version` when `monitors` was last known exact.
    data_version: Option<i64>,
    /// Asks the checkpoint thread for a checkpoint; `None` when SQLite checkpoints itself.
    checkpoints: Option<SyncSender<()>>,
    /// Results committed since the last checkpoint was asked for.
    since_checkpoint: usize,
}

impl SqliteStore {
    /// Opens the (migrated) database file for the store, set up like the service's other
    /// connections: WAL, `synchronous = NORMAL`, foreign keys on, a busy timeout.
    pub(super) fn open(path: &Path) -> rusqlite::Result<Self> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let checkpoints = match Checkpointer::start(path) {
            Ok(checkpoints) => {
                // This connection's commits no longer checkpoint; the thread does.
                conn.pragma_update(None, "wal_autocheckpoint", 0)?;
                Some(checkpoints)
            }
            Err(err) => {
                tracing::warn!(error = %err, "no checkpoint thread; SQLite checkpoints in the store's commits");
                None
            }
        };
        Ok(Self {
            conn,
            monitors: HashMap::new(),
            data_version: None,
            checkpoints,
            since_checkpoint: 0,
        })
    }

    /// One transaction: lock, read the batch's monitors, insert the results, update the
    /// monitors. Returns, per pending result in order, what became of it. On any error the
    /// transaction is rolled back (when it is dropped) and nothing of the batch is written.
    pub(super) fn write(&mut self, batch: &[&Pending]) -> rusqlite::Result<Vec<Written>> {
        let result = self.write_inner(batch);
        match &result {
            Ok(_) => self.committed(batch.len()),
            Err(_) => {
                // What the cache holds may be ahead of a rolled-back transaction.
                self.monitors.clear();
                self.data_version = None;
            }
        }
        result
    }

    /// Asks for a checkpoint once enough results went into the log since the last one.
    fn committed(&mut self, results: usize) {
        self.since_checkpoint += results;
        if self.since_checkpoint < CHECKPOINT_EVERY {
            return;
        }
        self.since_checkpoint = 0;
        if let Some(checkpoints) = &self.checkpoints {
            match checkpoints.try_send(()) {
                // Full: one is asked for already and covers these pages too.
                Ok(()) | Err(TrySendError::Full(())) => {}
                Err(TrySendError::Disconnected(())) => {
                    tracing::warn!("the checkpoint thread has stopped; SQLite checkpoints in the store's commits again");
                    self.checkpoints = None;
                    if let Err(err) = self.conn.pragma_update(None, "wal_autocheckpoint", 1000) {
                        tracing::warn!(error = %err, "cannot turn SQLite's automatic checkpoints back on");
                    }
                }
            }
        }
    }

    fn write_inner(&mut self, batch: &[&Pending]) -> rusqlite::Result<Vec<Written>> {
        // IMMEDIATE takes the write lock up front: a deferred transaction that reads first
        // would fail with SQLITE_BUSY_SNAPSHOT when another connection wrote meanwhile,
        // instead of waiting for the busy timeout. Holding the lock, nobody else commits
        // until this transaction ends.
        let txn = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = txn.query_row("PRAGMA data_version", [], |row| row.get(0))?;
        if self.data_version != Some(version) {
            self.monitors.clear();
            self.data_version = Some(version);
        }
        let ids = monitor_ids(batch.iter().copied());
        let mut found = Vec::with_capacity(ids.len());
        {
            let mut select = txn.prepare_cached(SELECT_MONITOR)?;
            for id in ids {
                // Taken out of the cache: the plan holds it, and it goes back once committed.
                if let Some(monitor) = self.monitors.remove(&id) {
                    found.push(monitor);
                } else if let Some(monitor) = select.query_row([id], monitor_from_row).optional()? {
                    found.push(monitor);
                }
            }
        }
        let mut plan = Plan::new(batch.iter().copied(), found);
        {
            let mut insert = txn.prepare_cached(INSERT_RESULT)?;
            for row in &mut plan.rows {
                insert.execute(params![
                    row.monitor_id,
                    row.seq,
                    row.checked_at_ms,
                    row.up,
                    row.status_code,
                    row.response_time_ms,
                    row.error,
                ])?;
                row.id = txn.last_insert_rowid();
            }
        }
        {
            let mut update = txn.prepare_cached(UPDATE_MONITOR)?;
            for monitor in plan.changed_monitors() {
                update.execute(params![
                    monitor.id,
                    monitor.last_checked_at.map(to_text),
                    monitor.last_up,
                    monitor.next_check_at.map(to_text),
                    monitor.last_slot_at.map(to_text),
                    monitor.last_seq,
                ])?;
            }
        }
        txn.commit()?;
        // The rows as they now are in the database (the update wrote every column the plan
        // changed).
        self.monitors.extend(std::mem::take(&mut plan.monitors));
        Ok(plan.written())
    }
}

/// The thread that checkpoints the store's log, on a connection of its own.
struct Checkpointer;

impl Checkpointer {
    /// Opens the checkpoint connection and starts its thread; it runs a checkpoint whenever
    /// asked through the returned sender, and ends when the sender is dropped.
    fn start(path: &Path) -> anyhow::Result<SyncSender<()>> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let (asks, asked) = mpsc::sync_channel::<()>(1);
        let path: PathBuf = path.to_owned();
        std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || {
                while asked.recv().is_ok() {
                    if let Err(err) = checkpoint(&conn) {
                        tracing::warn!(path = %path.display(), error = %err, "SQLite checkpoint failed; the next one retries");
                    }
                }
            })?;
        Ok(asks)
    }
}

/// Copies what it can of the log into the database file without waiting for the writer or
/// readers (`PASSIVE`): frames a reader still needs stay for the next round, and the writer
/// starts the log over once everything in it is copied.
fn checkpoint(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
}

pub(crate) fn monitor_from_row(row: &Row<'_>) -> rusqlite::Result<monitor::Model> {
    Ok(monitor::Model {
        id: row.get(0)?,
        name: row.get(1)?,
        url: row.get(2)?,
        timeout_seconds: row.get(3)?,
        interval_seconds: row.get(4)?,
        active: row.get(5)?,
        created_at: required_datetime(row, 6, "created_at")?,
        updated_at: required_datetime(row, 7, "updated_at")?,
        last_checked_at: datetime(row, 8)?,
        last_up: row.get(9)?,
        next_check_at: datetime(row, 10)?,
        last_slot_at: datetime(row, 11)?,
        last_seq: row.get(12)?,
    })
}

/// A NOT NULL date column.
fn required_datetime(row: &Row<'_>, idx: usize, name: &str) -> rusqlite::Result<DateTime<Utc>> {
    datetime(row, idx)?
        .ok_or_else(|| rusqlite::Error::InvalidColumnType(idx, name.into(), Type::Null))
}

/// A date column as sqlx reads it: RFC 3339 text, `YYYY-MM-DD HH:MM:SS[.f]` text taken as UTC,
/// or Unix seconds.
fn datetime(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let invalid = |kind: Type| {
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            kind,
            format!("column {idx} is not a date").into(),
        )
    };
    match row.get_ref(idx)? {
        ValueRef::Null => Ok(None),
        ValueRef::Text(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(parse_text)
            .map(Some)
            .ok_or_else(|| invalid(Type::Text)),
        ValueRef::Integer(seconds) => DateTime::from_timestamp(seconds, 0)
            .map(Some)
            .ok_or_else(|| invalid(Type::Integer)),
        other => Err(invalid(other.data_type())),
    }
}

fn parse_text(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .map(|at| at.and_utc())
}

/// A date as sqlx writes it.
fn to_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use chrono::Timelike;

    use super::*;

    #[test]
    fn the_log_is_checkpointed_by_its_own_thread_not_in_the_stores_commits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        Connection::open(&path).unwrap();
        let mut store = SqliteStore::open(&path).unwrap();
        let db_bytes = || std::fs::metadata(&path).unwrap().len();
        store
            .conn
            .execute_batch("CREATE TABLE blobs (b BLOB)")
            .unwrap();
        // 1,200 commits of a page each: past the 1,000 pages at which SQLite's own
        // checkpoint would have copied the log into the database file.
        for _ in 0..1_200 {
            store
                .conn
                .execute("INSERT INTO blobs VALUES (zeroblob(4000))", [])
                .unwrap();
        }
        assert!(
            db_bytes() < 100_000,
            "checkpointed in a commit: {}",
            db_bytes()
        );
        store.committed(CHECKPOINT_EVERY - 1);
        std::thread::sleep(Duration::from_millis(100));
        assert!(db_bytes() < 100_000, "checkpointed before it was due");
        store.committed(1);
        let deadline = Instant::now() + Duration::from_secs(10);
        while db_bytes() < 1_200 * 4_000 {
            assert!(
                Instant::now() < deadline,
                "no checkpoint: {} bytes",
                db_bytes()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn dates_are_written_as_sqlx_writes_them_and_read_back() {
        let at = DateTime::parse_from_rfc3339("2026-11-21T10:20:30.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(to_text(at), "2026-11-21T10:20:30.123456+00:00");
        assert_eq!(parse_text(&to_text(at)), Some(at));
        assert_eq!(
            parse_text("2026-11-21 10:20:30"),
            Some(at.with_nanosecond(0).unwrap())
        );
        assert_eq!(parse_text("yesterday"), None);
    }
}
