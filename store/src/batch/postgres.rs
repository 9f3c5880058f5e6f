//! The PostgreSQL store: a batch in one statement and one round trip in the steady state,
//! two when some of its monitors must be read first; no explicit transaction.
//!
//! 1. Read the batch's monitors, except those whose rows this store already holds (below).
//! 2. Work out the batch ([`Plan`]) from them, then write it with one statement: a
//!    conditional update of the monitors, and the insert of the results of the monitors that
//!    update moved. The statement is atomic on its own.
//!
//! The update only moves a monitor that is still as the store saw it: its `last_seq` (every
//! stored result moves it), its `next_check_at` (edits, pauses and the distributed
//! scheduler's leases move it) and its `updated_at` (every edit, pause and resume sets it).
//! A monitor another writer changed in between is read again and its results planned again,
//! in a further round.
//!
//! The write has a fixed text (the batch travels as two JSON parameters), so each connection
//! prepares it once. It finds the monitors through their primary key (`id = ANY(...)`), so a
//! batch costs index lookups whatever the table holds (joined to the JSON rows alone, the
//! planner, which guesses 100 rows for them, scans the whole table). The read is an `IN` list
//! of placeholders, which the planner serves from the index at any batch size, where one array
//! parameter can stall (docs/decisions/003-postgres-batch-statement.md). The list is padded
//! to a power of two (repeating its last id), so a connection keeps at most 11 prepared texts.
//!
//! Two things keep a batch to one round trip:
//!
//! - **Connections of its own.** The store keeps the pooled connections it writes on checked
//!   out between batches (at most one per batch in flight, and at most a quarter of the pool:
//!   none with fewer than 4 connections). A connection handed back to sqlx's pool is pinged
//!   on the way back, always: one more round trip and one more spawned task per statement. A
//!   kept connection unused for [`IDLE_RECHECK`] or kept for [`KEEP_AT_MOST`] goes back to the
//!   pool at the next batch (which pings it, and lends it again only after a check if it
//!   idles), so connections still age out. One whose connection failed is closed.
//! - **The rows it wrote.** When this process is the only one storing results (no RabbitMQ),
//!   the store keeps each monitor's row as it last read or wrote it, and reads only the
//!   monitors it does not hold. A held row that another writer changed (an edit, a deletion,
//!   another process) fails the write's condition, is dropped and read again in a further
//!   round, so it costs a round trip and is never written over. With several processes
//!   storing results (distributed mode) each monitor's results land on any worker, held rows
//!   would mostly be stale, and every batch is read as before.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use domain::maintenance::Calendar;
use entity::{check_result, monitor};
use sea_orm::{
    error::{ConnAcquireErr, RuntimeErr},
    sqlx::{self, pool::PoolConnection, postgres::PgRow, PgPool, Postgres, Row as _},
    DatabaseConnection, DbErr, FromQueryResult, QueryResult,
};
use serde::Serialize;

use super::{monitor_ids, PendingResult, Plan, Written};
use crate::rows::sqlite::MONITOR_COLUMNS;

/// A kept connection unused this long goes back to the pool, which pings a connection idle
/// for 30 s before lending it (`src/db.rs`), so a connection a server restart or a firewall
/// dropped is not written on.
pub const IDLE_RECHECK: Duration = Duration::from_secs(20);
/// A kept connection goes back to the pool after this long, so the pool's own ageing (its
/// maximum lifetime, a closed pool) still applies to it.
pub const KEEP_AT_MOST: Duration = Duration::from_secs(600);
/// Most monitor rows held; past it they are all dropped and read again as batches need
/// them (rows of deleted monitors are otherwise dropped only when the monitor next has a
/// result).
pub const MAX_HELD_ROWS: usize = 250_000;

const WRITE_BATCH: &str = "\
WITH v AS (
    SELECT * FROM json_to_recordset($1::text::json) AS v(
        id bigint, seen_seq integer, seen_next timestamptz, seen_updated timestamptz,
        last_checked_at timestamptz, last_up boolean, next_check_at timestamptz,
        last_slot_at timestamptz, last_seq integer, confirmed_up boolean, state_streak integer,
        state text, open_incident_seq integer, open_incident_at timestamptz)
), moved AS (
    UPDATE monitors AS m
    SET last_checked_at = v.last_checked_at, last_up = v.last_up,
        next_check_at = v.next_check_at, last_slot_at = v.last_slot_at, last_seq = v.last_seq,
        confirmed_up = v.confirmed_up, state_streak = v.state_streak, state = v.state,
        open_incident_seq = v.open_incident_seq, open_incident_at = v.open_incident_at
    FROM v
    WHERE m.id = ANY (ARRAY(SELECT id FROM v)) AND m.id = v.id AND m.last_seq = v.seen_seq
      AND m.next_check_at IS NOT DISTINCT FROM v.seen_next AND m.updated_at = v.seen_updated
    RETURNING m.id
), opened AS (
    INSERT INTO incidents (monitor_id, started_seq, started_at, resolved_seq, resolved_at)
    SELECT o.monitor_id, o.started_seq, o.started_at, o.resolved_seq, o.resolved_at
    FROM json_to_recordset($3::text::json) AS o(monitor_id bigint, started_seq integer,
        started_at timestamptz, resolved_seq integer, resolved_at timestamptz)
    WHERE o.monitor_id IN (SELECT id FROM moved)
), resolved AS (
    UPDATE incidents AS i SET resolved_seq = r.resolved_seq, resolved_at = r.resolved_at
    FROM json_to_recordset($4::text::json) AS r(monitor_id bigint, started_seq integer,
        resolved_seq integer, resolved_at timestamptz)
    WHERE i.monitor_id = r.monitor_id AND i.started_seq = r.started_seq
      AND i.resolved_seq IS NULL AND r.monitor_id IN (SELECT id FROM moved)
)
INSERT INTO check_results (monitor_id, seq, checked_at_ms, up, status_code, response_time_ms,
    error, degraded, dns_ms, connect_ms, tls_ms, first_byte_ms, details, in_maintenance)
SELECT r.monitor_id, r.seq, r.checked_at_ms, r.up, r.status_code, r.response_time_ms, r.error,
    coalesce(r.degraded, false), r.dns_ms, r.connect_ms, r.tls_ms, r.first_byte_ms, r.details,
    coalesce(r.in_maintenance, false)
FROM json_to_recordset($2::text::json) AS r(
    monitor_id integer, seq integer, checked_at_ms bigint, up boolean,
    status_code smallint, response_time_ms integer, error text, degraded boolean,
    dns_ms integer, connect_ms integer, tls_ms integer, first_byte_ms integer, details text,
    in_maintenance boolean)
WHERE r.monitor_id IN (SELECT id FROM moved)
RETURNING id, monitor_id, seq";

/// What the write compares a monitor with: its `last_seq`, `next_check_at` and `updated_at`
/// as the store saw them.
type Seen = (i32, Option<DateTime<Utc>>, DateTime<Utc>);

/// A monitor's move: what it was when read, and what it becomes.
#[derive(Serialize)]
struct Move<'a> {
    id: i64,
    seen_seq: i32,
    seen_next: Option<DateTime<Utc>>,
    seen_updated: DateTime<Utc>,
    last_checked_at: Option<DateTime<Utc>>,
    last_up: Option<bool>,
    next_check_at: Option<DateTime<Utc>>,
    last_slot_at: Option<DateTime<Utc>>,
    last_seq: i32,
    confirmed_up: Option<bool>,
    state_streak: i32,
    state: Option<&'a str>,
    open_incident_seq: Option<i32>,
    open_incident_at: Option<DateTime<Utc>>,
}

/// A result row to insert.
#[derive(Serialize)]
struct NewRow<'a> {
    monitor_id: i32,
    seq: i32,
    checked_at_ms: i64,
    up: bool,
    status_code: Option<i16>,
    response_time_ms: i32,
    error: Option<&'a str>,
    /// Left out when false, as are the phases and details when null: the plain check's row
    /// travels as before.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    degraded: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    dns_ms: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    connect_ms: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_ms: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_byte_ms: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    in_maintenance: bool,
}

/// A connection the store keeps checked out.
struct Kept {
    conn: PoolConnection<Postgres>,
    taken_at: Instant,
    used_at: Instant,
}

impl Kept {
    /// Still to be used: not idle long enough to have been dropped by a server restart, a
    /// proxy or a firewall, and not kept past its time.
    fn fresh(&self) -> bool {
        self.used_at.elapsed() < IDLE_RECHECK && self.taken_at.elapsed() < KEEP_AT_MOST
    }
}

/// The PostgreSQL store: its pool, the connections it keeps and the rows it holds.
pub(super) struct PgStore {
    pool: PgPool,
    kept: Mutex<Vec<Kept>>,
    /// Most connections kept between batches.
    keep: usize,
    /// Monitor rows as this store last read or wrote them; `None` when other processes store
    /// results too.
    held: Option<Mutex<HashMap<i64, monitor::Model>>>,
}

impl PgStore {
    /// A store on `db`'s pool; `hold_rows` when this process is the only one storing results.
    /// `parallel` batches may be in flight at once.
    pub(super) fn new(db: &DatabaseConnection, hold_rows: bool, parallel: usize) -> Self {
        let pool = db.get_postgres_connection_pool().clone();
        // The API and the scheduler need the rest of the pool.
        let keep = parallel.min(pool.options().get_max_connections() as usize / 4);
        Self {
            pool,
            kept: Mutex::new(Vec::new()),
            keep,
            held: hold_rows.then(|| Mutex::new(HashMap::new())),
        }
    }

    /// Writes a batch once: per pending result, what became of it, or `None` when its monitor
    /// changed after it was read (nothing of that monitor was written; it takes another
    /// round).
    pub(super) async fn write(
        &self,
        batch: &[&PendingResult],
        calendar: &Calendar,
    ) -> Result<Vec<Option<Written>>, DbErr> {
        let mut kept = self.take_connection().await?;
        let result = self.write_on(&mut kept.conn, batch, calendar).await;
        match &result {
            Ok(_) => {
                kept.used_at = Instant::now();
                let mut all = lock(&self.kept);
                // Those gone stale while others were used go back to the pool (dropped).
                all.retain(Kept::fresh);
                if all.len() < self.keep {
                    all.push(kept);
                }
            }
            // A connection that failed is closed, not handed back in an unknown state. (The
            // batch's held rows were taken out and are read again; the others are exact.)
            Err(DbErr::Conn(_)) => kept.conn.close_on_drop(),
            // The database refused the statement: the connection is sound, back to the pool.
            Err(_) => {}
        }
        result
    }

    /// A kept connection, or one from the pool.
    async fn take_connection(&self) -> Result<Kept, DbErr> {
        loop {
            let Some(kept) = lock(&self.kept).pop() else {
                break;
            };
            if kept.fresh() {
                return Ok(kept);
            }
            // Back to the pool, which checks it before lending it again.
            drop(kept);
        }
        let conn = self.pool.acquire().await.map_err(|err| match err {
            sqlx::Error::PoolTimedOut => DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
            sqlx::Error::PoolClosed => DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
            other => connection_error(other),
        })?;
        let now = Instant::now();
        Ok(Kept {
            conn,
            taken_at: now,
            used_at: now,
        })
    }

    async fn write_on(
        &self,
        conn: &mut PoolConnection<Postgres>,
        batch: &[&PendingResult],
        calendar: &Calendar,
    ) -> Result<Vec<Option<Written>>, DbErr> {
        let ids = monitor_ids(batch.iter().copied());
        let mut found = Vec::with_capacity(ids.len());
        let mut missing = Vec::new();
        match &self.held {
            Some(held) => {
                // A push is stored only while its monitor is an active PUSH monitor of its
                // token, which an edit elsewhere may have changed: its row is read afresh.
                let pushed: HashSet<i64> = batch
                    .iter()
                    .filter(|p| p.push.is_some())
                    .map(|p| p.monitor_id)
                    .collect();
                let mut held = lock(held);
                for id in ids {
                    // Taken out: the plan holds it, and it goes back once written.
                    match held.remove(&id).filter(|_| !pushed.contains(&id)) {
                        Some(row) => found.push(row),
                        None => missing.push(id),
                    }
                }
            }
            None => missing = ids,
        }
        found.extend(read_monitors(conn, &missing).await?);
        let seen: HashMap<i64, Seen> = found
            .iter()
            .map(|m| (m.id, (m.last_seq, m.next_check_at, m.updated_at)))
            .collect();
        let mut plan = Plan::new(batch.iter().copied(), calendar, found);
        let mut changed = HashSet::new();
        if !plan.rows.is_empty() {
            let moves: Vec<Move<'_>> = plan
                .changed_monitors()
                .into_iter()
                .filter_map(|m| {
                    let &(seen_seq, seen_next, seen_updated) = seen.get(&m.id)?;
                    Some(Move {
                        id: m.id,
                        seen_seq,
                        seen_next,
                        seen_updated,
                        last_checked_at: m.last_checked_at,
                        last_up: m.last_up,
                        next_check_at: m.next_check_at,
                        last_slot_at: m.last_slot_at,
                        last_seq: m.last_seq,
                        confirmed_up: m.confirmed_up,
                        state_streak: m.state_streak,
                        state: m.state.as_deref(),
                        open_incident_seq: m.open_incident_seq,
                        open_incident_at: m.open_incident_at,
                    })
                })
                .collect();
            let rows: Vec<NewRow<'_>> = plan.rows.iter().map(new_row).collect();
            let (moves, rows) = (to_json(&moves)?, to_json(&rows)?);
            let (opened, resolved) = (to_json(&plan.opened)?, to_json(&plan.resolved)?);
            let inserted = sqlx::query(WRITE_BATCH)
                .bind(moves)
                .bind(rows)
                .bind(opened)
                .bind(resolved)
                .fetch_all(&mut **conn)
                .await
                .map_err(query_error)?;
            let mut ids: HashMap<(i32, i32), i64> = HashMap::with_capacity(inserted.len());
            for row in inserted {
                let key = (
                    row.try_get("monitor_id").map_err(query_error)?,
                    row.try_get("seq").map_err(query_error)?,
                );
                ids.insert(key, row.try_get("id").map_err(query_error)?);
            }
            for row in &mut plan.rows {
                match ids.get(&(row.monitor_id, row.seq)) {
                    Some(&id) => row.id = id,
                    None => {
                        changed.insert(i64::from(row.monitor_id));
                    }
                }
            }
        }
        if let Some(held) = &self.held {
            let mut held = lock(held);
            if held.len() + plan.monitors.len() > MAX_HELD_ROWS {
                held.clear();
            }
            // The rows as they now are in the database (the write set every column the plan
            // changed; a monitor with nothing to insert was not changed), except those another
            // writer changed: they are read again.
            held.extend(
                std::mem::take(&mut plan.monitors)
                    .into_iter()
                    .filter(|(id, _)| !changed.contains(id)),
            );
        }
        Ok(batch
            .iter()
            .zip(plan.written())
            .map(|(pending, outcome)| (!changed.contains(&pending.monitor_id)).then_some(outcome))
            .collect())
    }
}

/// Reads monitors by id (an `IN` list: see the module's documentation), padded to a power of
/// two by repeating the last id, so the prepared texts stay few. No ids: no query.
async fn read_monitors(
    conn: &mut PoolConnection<Postgres>,
    ids: &[i64],
) -> Result<Vec<monitor::Model>, DbErr> {
    let Some(&last) = ids.last() else {
        return Ok(Vec::new());
    };
    let padded = ids.len().next_power_of_two();
    let mut sql = String::with_capacity(MONITOR_COLUMNS.len() + 40 + padded * 7);
    sql.push_str("SELECT ");
    sql.push_str(MONITOR_COLUMNS);
    sql.push_str(" FROM monitors WHERE id IN (");
    for k in 1..=padded {
        if k > 1 {
            sql.push(',');
        }
        sql.push('$');
        sql.push_str(&k.to_string());
    }
    sql.push(')');
    // Only placeholders were added to the fixed text; the ids travel as parameters.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for k in 0..padded {
        query = query.bind(ids.get(k).copied().unwrap_or(last));
    }
    let rows: Vec<PgRow> = query.fetch_all(&mut **conn).await.map_err(query_error)?;
    rows.into_iter()
        .map(|row| monitor::Model::from_query_result(&QueryResult::from(row), ""))
        .collect()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A failed statement: the connection's failure (a broken socket, the server shutting down
/// or restarting, sqlx's connection gone) when it is one, so the store waits for the database
/// instead of giving up after three tries.
fn query_error(err: sqlx::Error) -> DbErr {
    let connection_lost = match &err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        // Class 08 (connection exception) and 57P01-57P03 (admin or crash shutdown, cannot
        // connect now), which PostgreSQL sends before it closes a connection.
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P0")),
        _ => false,
    };
    if connection_lost {
        connection_error(err)
    } else {
        DbErr::Query(RuntimeErr::SqlxError(Arc::new(err)))
    }
}

fn connection_error(err: sqlx::Error) -> DbErr {
    DbErr::Conn(RuntimeErr::SqlxError(Arc::new(err)))
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String, DbErr> {
    serde_json::to_string(value).map_err(|err| DbErr::Custom(err.to_string()))
}

fn new_row(row: &check_result::Model) -> NewRow<'_> {
    NewRow {
        monitor_id: row.monitor_id,
        seq: row.seq,
        checked_at_ms: row.checked_at_ms,
        up: row.up,
        status_code: row.status_code,
        response_time_ms: row.response_time_ms,
        error: row.error.as_deref(),
        degraded: row.degraded,
        dns_ms: row.dns_ms,
        connect_ms: row.connect_ms,
        tls_ms: row.tls_ms,
        first_byte_ms: row.first_byte_ms,
        details: row.details.as_deref(),
        in_maintenance: row.in_maintenance,
    }
}
