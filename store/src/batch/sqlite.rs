//! The SQLite store's own connection (rusqlite), used on the store's thread only.
//!
//! A batch is plain calls into SQLite on the thread that owns the batch, with no hand-off to
//! another connection thread per statement or row (docs/decisions/002-sqlite-store-rusqlite.md):
//! one `BEGIN IMMEDIATE`, then cached single-row statements (each a B-tree lookup or insert,
//! and single-row statements need no statement journal), then `COMMIT`.

use std::{collections::HashMap, path::Path, time::Duration};

use domain::maintenance::Calendar;
use entity::monitor;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use super::{monitor_ids, PendingResult, Plan, Written};
use crate::rows::sqlite::{monitor_from_row, to_text, SELECT_MONITOR};

/// How long a batch waits for another connection's write lock before "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const INSERT_RESULT: &str = "INSERT INTO check_results \
     (monitor_id, seq, checked_at_ms, up, status_code, response_time_ms, error, degraded, \
     dns_ms, connect_ms, tls_ms, first_byte_ms, details, in_maintenance) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";

const UPDATE_MONITOR: &str = "UPDATE monitors SET last_checked_at = ?2, last_up = ?3, \
     next_check_at = ?4, last_slot_at = ?5, last_seq = ?6, confirmed_up = ?7, \
     state_streak = ?8, state = ?9, open_incident_seq = ?10, open_incident_at = ?11 WHERE id = ?1";

const INSERT_INCIDENT: &str = "INSERT INTO incidents \
     (monitor_id, started_seq, started_at, resolved_seq, resolved_at) VALUES (?1, ?2, ?3, ?4, ?5)";

const RESOLVE_INCIDENT: &str = "UPDATE incidents SET resolved_seq = ?3, resolved_at = ?4 \
     WHERE monitor_id = ?1 AND started_seq = ?2 AND resolved_seq IS NULL";

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
    /// monitors, open and resolve incidents. Returns, per pending result in order, what became of it. On any error the
    /// transaction is rolled back (when it is dropped) and nothing of the batch is written.
    pub(super) fn write(
        &mut self,
        batch: &[&PendingResult],
        calendar: &Calendar,
    ) -> rusqlite::Result<Vec<Written>> {
        let result = self.write_inner(batch, calendar);
        if result.is_err() {
            // What the cache holds may be ahead of a rolled-back transaction.
            self.monitors.clear();
            self.data_version = None;
        }
        result
    }

    fn write_inner(
        &mut self,
        batch: &[&PendingResult],
        calendar: &Calendar,
    ) -> rusqlite::Result<Vec<Written>> {
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
        let mut plan = Plan::new(batch.iter().copied(), calendar, found);
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
                    row.degraded,
                    row.dns_ms,
                    row.connect_ms,
                    row.tls_ms,
                    row.first_byte_ms,
                    row.details,
                    row.in_maintenance,
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
                    monitor.confirmed_up,
                    monitor.state_streak,
                    monitor.state,
                    monitor.open_incident_seq,
                    monitor.open_incident_at.map(to_text),
                ])?;
            }
        }
        if !plan.opened.is_empty() {
            let mut insert = txn.prepare_cached(INSERT_INCIDENT)?;
            for new in &plan.opened {
                insert.execute(params![
                    new.monitor_id,
                    new.started_seq,
                    to_text(new.started_at),
                    new.resolved_seq,
                    new.resolved_at.map(to_text),
                ])?;
            }
        }
        if !plan.resolved.is_empty() {
            let mut resolve = txn.prepare_cached(RESOLVE_INCIDENT)?;
            for done in &plan.resolved {
                resolve.execute(params![
                    done.monitor_id,
                    done.started_seq,
                    done.resolved_seq,
                    to_text(done.resolved_at),
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
