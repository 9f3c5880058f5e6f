//! The PostgreSQL store: a batch in two statements and two round trips, without an explicit
//! transaction.
//!
//! 1. Read the batch's monitors.
//! 2. Work out the batch ([`Plan`]) from them, then write it with one statement: a
//!    conditional update of the monitors, and the insert of the results of the monitors that
//!    update moved. The statement is atomic on its own.
//!
//! The update only moves a monitor that is still as it was read (its `last_seq` and
//! `next_check_at`: every stored result moves `last_seq`, and edits, pauses and the
//! distributed scheduler's leases move `next_check_at`; nothing else that the plan reads
//! changes). A monitor another writer changed in between is read again and its results
//! planned again, in a further round. Before, a batch was five round trips (`BEGIN`,
//! `SELECT ... FOR UPDATE`, insert, update, `COMMIT`) of SQL whose text grew with the batch.
//!
//! The write has a fixed text (the batch travels as two JSON parameters), so each connection
//! prepares it once. It finds the monitors through their primary key (`id = ANY(...)`), so a
//! batch costs index lookups whatever the table holds: joined to the JSON rows alone, the
//! planner (which guesses 100 rows for them) scanned the whole `monitors` table, and at
//! 100,000 monitors and 2,000 checks/s results reached subscribers 110 ms late (p50). The read is sea-orm's `IN` list:
//! the same read with one array parameter (`id = ANY($1)`) stalled for 100-800 ms at a time
//! while a burst of 10,000 newly activated monitors was stored (measured; the `IN` list did
//! not).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::{check_result, monitor};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, Statement,
};
use serde::Serialize;

use super::{monitor_ids, Pending, Plan, Written};

const WRITE_BATCH: &str = "\
WITH v AS (
    SELECT * FROM json_to_recordset($1::text::json) AS v(
        id bigint, seen_seq integer, seen_next timestamptz,
        last_checked_at timestamptz, last_up boolean, next_check_at timestamptz,
        last_slot_at timestamptz, last_seq integer)
), moved AS (
    UPDATE monitors AS m
    SET last_checked_at = v.last_checked_at, last_up = v.last_up,
        next_check_at = v.next_check_at, last_slot_at = v.last_slot_at, last_seq = v.last_seq
    FROM v
    WHERE m.id = ANY (ARRAY(SELECT id FROM v)) AND m.id = v.id AND m.last_seq = v.seen_seq
      AND m.next_check_at IS NOT DISTINCT FROM v.seen_next
    RETURNING m.id
)
INSERT INTO check_results (monitor_id, seq, checked_at_ms, up, status_code, response_time_ms, error)
SELECT r.monitor_id, r.seq, r.checked_at_ms, r.up, r.status_code, r.response_time_ms, r.error
FROM json_to_recordset($2::text::json) AS r(
    monitor_id integer, seq integer, checked_at_ms bigint, up boolean,
    status_code smallint, response_time_ms integer, error text)
WHERE r.monitor_id IN (SELECT id FROM moved)
RETURNING id, monitor_id, seq";

/// A monitor's move: what it was when read, and what it becomes.
#[derive(Serialize)]
struct Move {
    id: i64,
    seen_seq: i32,
    seen_next: Option<DateTime<Utc>>,
    last_checked_at: Option<DateTime<Utc>>,
    last_up: Option<bool>,
    next_check_at: Option<DateTime<Utc>>,
    last_slot_at: Option<DateTime<Utc>>,
    last_seq: i32,
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
}

/// Writes a batch once: per pending result, what became of it, or `None` when its monitor
/// changed after it was read (nothing of that monitor was written; it takes another round).
pub(super) async fn write(
    db: &DatabaseConnection,
    batch: &[&Pending],
) -> Result<Vec<Option<Written>>, DbErr> {
    let ids = monitor_ids(batch.iter().copied());
    let found = monitor::Entity::find()
        .filter(monitor::Column::Id.is_in(ids))
        .all(db)
        .await?;
    let seen: HashMap<i64, (i32, Option<DateTime<Utc>>)> = found
        .iter()
        .map(|m| (m.id, (m.last_seq, m.next_check_at)))
        .collect();
    let mut plan = Plan::new(batch.iter().copied(), found);
    let mut changed = HashSet::new();
    if !plan.rows.is_empty() {
        let moves: Vec<Move> = plan
            .changed_monitors()
            .into_iter()
            .filter_map(|m| {
                let (seen_seq, seen_next) = *seen.get(&m.id)?;
                Some(Move {
                    id: m.id,
                    seen_seq,
                    seen_next,
                    last_checked_at: m.last_checked_at,
                    last_up: m.last_up,
                    next_check_at: m.next_check_at,
                    last_slot_at: m.last_slot_at,
                    last_seq: m.last_seq,
                })
            })
            .collect();
        let rows: Vec<NewRow> = plan.rows.iter().map(new_row).collect();
        let (moves, rows) = match (serde_json::to_string(&moves), serde_json::to_string(&rows)) {
            (Ok(moves), Ok(rows)) => (moves, rows),
            (Err(err), _) | (_, Err(err)) => return Err(DbErr::Custom(err.to_string())),
        };
        let inserted = db
            .query_all_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                WRITE_BATCH,
                [moves.into(), rows.into()],
            ))
            .await?;
        let mut ids: HashMap<(i32, i32), i64> = HashMap::with_capacity(inserted.len());
        for row in inserted {
            let key = (row.try_get("", "monitor_id")?, row.try_get("", "seq")?);
            ids.insert(key, row.try_get("", "id")?);
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
    Ok(batch
        .iter()
        .zip(plan.written())
        .map(|(pending, outcome)| (!changed.contains(&pending.monitor_id)).then_some(outcome))
        .collect())
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
    }
}
