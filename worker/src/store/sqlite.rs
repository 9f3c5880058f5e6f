//! The SQLite store's own connection (rusqlite), used on the store's thread only.
//!
//! A batch is plain calls into SQLite on the thread that owns the batch, with no hand-off to
//! another connection thread per statement or row (docs/decisions/002-sqlite-store-rusqlite.md):
//! one `BEGIN IMMEDIATE`, then cached single-row statements (each a B-tree lookup or insert,
//! and single-row statements need no statement journal), then `COMMIT`.
//!
//! Dates are written as sqlx writes them (RFC 3339, `+00:00`), so columns written by either
//! compare and sort alike.

use std::{collections::HashMap, path::Path, time::Duration};

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
        Ok(Self {
            conn,
            monitors: HashMap::new(),
            data_version: None,
        })
    }

    /// One transaction: lock, read the batch's monitors, insert the results, update the
    /// monitors. Returns, per pending result in order, what became of it. On any error the
    /// transaction is rolled back (when it is dropped) and nothing of the batch is written.
    pub(super) fn write(&mut self, batch: &[&Pending]) -> rusqlite::Result<Vec<Written>> {
        let result = self.write_inner(batch);
        if result.is_err() {
            // What the cache holds may be ahead of a rolled-back transaction.
            self.monitors.clear();
            self.data_version = None;
        }
        result
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
    use chrono::Timelike;

    use super::*;

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
