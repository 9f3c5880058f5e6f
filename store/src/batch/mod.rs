//! The batch write: one batch of check results stored at once, with each monitor's `last_*`
//! columns, result number and next due time moved on, and what became of each result. On
//! SQLite one transaction of cached single-row statements on a connection of its own; on
//! PostgreSQL one statement per batch (see the backends' modules). The batching itself (the
//! queue, the linger, the parallel writes, the retries) is the worker's.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    sync::{Arc, Mutex, PoisonError},
};

use chrono::{DateTime, Utc};
use domain::{
    from_epoch_ms,
    incident::{self, IncidentChange, OpenIncident},
    maintenance::Calendar,
    CheckEvent, CheckOutcome, CheckStatus, Confirmation, LatestStatus, MonitorState, Slot,
    StatusChange, Threshold,
};
use entity::{check_result, monitor};

use crate::{rows, Database, Error};

mod postgres;
mod sqlite;

/// One check result to store.
#[derive(Debug, Clone)]
pub struct PendingResult {
    pub monitor_id: i64,
    pub outcome: CheckOutcome,
    /// The scheduled slot it is for; `None` for a manual check.
    pub slot: Option<Slot>,
    /// A push's result.
    pub push: Option<Pushed>,
}

/// A push, stored only while its monitor is still the active PUSH monitor of this token.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub token: String,
    /// When the monitor is next due (DOWN unless pushed again).
    pub next_due: DateTime<Utc>,
}

/// What became of one pending result.
#[derive(Debug, Clone)]
pub enum Written {
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

/// Writes batches of results: through a SQLite connection of its own, or the PostgreSQL pool.
pub struct BatchWriter {
    backend: Backend,
    /// The maintenance windows: a result checked in one is flagged and moves no state.
    calendar: Calendar,
}

enum Backend {
    Postgres(postgres::PgStore),
    /// Locked by one batch at a time (all on the writer's thread, so never contended).
    Sqlite(Mutex<sqlite::SqliteStore>),
}

impl BatchWriter {
    /// A writer on a SQLite database file (already migrated), through a connection of its
    /// own: one warm page cache, instead of taking turns over the shared pool's connections,
    /// whose caches every other write invalidates. Its calls block: run it on a thread of its
    /// own.
    pub fn sqlite(path: &Path) -> Result<Self, Error> {
        let store = sqlite::SqliteStore::open(path).map_err(|err| {
            Error::unavailable(format!(
                "the result store cannot open the SQLite database {}: {err}",
                path.display()
            ))
        })?;
        Ok(Self {
            backend: Backend::Sqlite(Mutex::new(store)),
            calendar: Calendar::default(),
        })
    }

    /// A writer on the PostgreSQL pool of `db`, writing up to `parallel` batches at once.
    /// `sole_writer`: this process is the only one storing results (no RabbitMQ), so it may
    /// keep the monitor rows it wrote instead of reading them for every batch.
    pub fn postgres(db: &Database, sole_writer: bool, parallel: usize) -> Self {
        Self {
            backend: Backend::Postgres(postgres::PgStore::new(
                db.connection(),
                sole_writer,
                parallel,
            )),
            calendar: Calendar::default(),
        }
    }

    /// Flags results by these maintenance windows (none by default).
    pub fn with_calendar(mut self, calendar: Calendar) -> Self {
        self.calendar = calendar;
        self
    }

    /// Writes `batch` once: per result in order, what became of it. SQLite writes all of them
    /// or, on an error, nothing; on PostgreSQL a result whose monitor another writer changed
    /// meanwhile is left unsettled (`None`), to be planned again from a fresh read.
    pub async fn write(&self, batch: &[&PendingResult]) -> Result<Vec<Option<Written>>, Error> {
        match &self.backend {
            Backend::Sqlite(store) => {
                let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
                Ok(store
                    .write(batch, &self.calendar)
                    .map_err(Error::from_sqlite)?
                    .into_iter()
                    .map(Some)
                    .collect())
            }
            Backend::Postgres(store) => store
                .write(batch, &self.calendar)
                .await
                .map_err(Error::from_db),
        }
    }
}

/// Moves a monitor's confirmed state on by its newest result (`previous` is the raw status
/// before it); the confirmed change it made, if any.
fn confirm(
    monitor: &mut monitor::Model,
    previous: Option<CheckStatus>,
    outcome: &CheckOutcome,
) -> Option<StatusChange> {
    let mut confirmation = Confirmation {
        confirmed: monitor.confirmed_up.map(CheckStatus::from_up),
        streak: monitor.state_streak,
        state: monitor.state.as_deref().and_then(MonitorState::parse),
    };
    let state_before = confirmation.state.unwrap_or(MonitorState::Pending);
    let change = confirmation.apply(
        previous,
        outcome.status,
        outcome.degraded,
        Threshold::stored(monitor.failure_threshold),
        Threshold::stored(monitor.success_threshold),
    );
    monitor.confirmed_up = confirmation.confirmed.map(CheckStatus::is_up);
    monitor.state_streak = confirmation.streak;
    monitor.state = confirmation.state.map(|s| s.as_str().to_owned());
    change.map(|(from, to)| StatusChange {
        from,
        to,
        state_before,
    })
}

/// While a change is unconfirmed, a monitor with a retry interval is next checked sooner
/// ([`domain::state::retry_at`], which the in-process scheduler applies too).
fn retry_sooner(monitor: &mut monitor::Model, checked_at: DateTime<Utc>) {
    if monitor.retry_interval_seconds.is_none() {
        return;
    }
    let state = monitor.state.as_deref().and_then(MonitorState::parse);
    let Some(soon) = domain::state::retry_at(
        monitor.active,
        state,
        monitor.retry_interval_seconds,
        checked_at,
    ) else {
        return;
    };
    if monitor.next_check_at.is_some_and(|next| soon < next) {
        monitor.next_check_at = Some(soon);
    }
}

/// A confirmed change's effect on the monitor's incidents (`seq` and `at` are the result's).
fn move_incident(
    monitor: &mut monitor::Model,
    change: Option<&StatusChange>,
    seq: i32,
    at: DateTime<Utc>,
) -> Option<IncidentChange> {
    let change = change?;
    let mut open = match (monitor.open_incident_seq, monitor.open_incident_at) {
        (Some(seq), Some(at)) => Some(OpenIncident { seq, at }),
        _ => None,
    };
    let moved = incident::on_confirmed(&mut open, change.to, seq, at)?;
    monitor.open_incident_seq = open.map(|o| o.seq);
    monitor.open_incident_at = open.map(|o| o.at);
    Some(moved)
}

/// An incident a batch opens (and, when the same batch resolves it, closes).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct NewIncident {
    pub monitor_id: i64,
    pub started_seq: i32,
    pub started_at: DateTime<Utc>,
    pub resolved_seq: Option<i32>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// An incident opened by an earlier batch that this one resolves.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Resolution {
    pub monitor_id: i64,
    pub started_seq: i32,
    pub resolved_seq: i32,
    pub resolved_at: DateTime<Utc>,
}

/// The monitors of a batch, each once, in id order.
fn monitor_ids<'a>(batch: impl IntoIterator<Item = &'a PendingResult>) -> Vec<i64> {
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
    /// Per row: its monitor as it is after that result, the monitor's status before it,
    /// the confirmed change it made and what that did to the monitor's incidents.
    after: Vec<After>,
    monitors: HashMap<i64, monitor::Model>,
    /// Incidents to insert, and earlier ones to resolve.
    opened: Vec<NewIncident>,
    resolved: Vec<Resolution>,
}

struct After {
    monitor: monitor::Model,
    in_maintenance: bool,
    previous: Option<CheckStatus>,
    change: Option<StatusChange>,
    incident: Option<IncidentChange>,
}

impl Plan {
    fn new<'a>(
        batch: impl ExactSizeIterator<Item = &'a PendingResult>,
        calendar: &Calendar,
        found: Vec<monitor::Model>,
    ) -> Self {
        let mut monitors: HashMap<i64, monitor::Model> =
            found.into_iter().map(|m| (m.id, m)).collect();
        let mut fates = Vec::with_capacity(batch.len());
        let mut rows = Vec::with_capacity(batch.len());
        let mut after = Vec::with_capacity(batch.len());
        let mut opened: Vec<NewIncident> = Vec::new();
        let mut resolved = Vec::new();
        for pending in batch {
            let Some(monitor) = monitors.get_mut(&pending.monitor_id) else {
                fates.push(Fate::Gone);
                continue;
            };
            // A slot that already has a result is not stored again; nor is a PUSH monitor's
            // missed deadline when a push came since it was due (one stored after it, or one
            // that moved the deadline past this slot's next).
            if let Some(slot) = pending.slot {
                let pushed_since = monitor.push_token.is_some()
                    && (monitor.next_check_at.is_some_and(|next| next > slot.next)
                        || monitor.last_checked_at.is_some_and(|at| at >= slot.due));
                if slot.is_done(monitor.last_slot_at) || pushed_since {
                    fates.push(Fate::Duplicate);
                    continue;
                }
            }
            // A push to a monitor paused, deleted or made another kind meanwhile is not stored.
            if let Some(push) = &pending.push {
                if !monitor.active || monitor.push_token.as_deref() != Some(push.token.as_str()) {
                    fates.push(Fate::Gone);
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
            let in_maintenance = calendar.covers(monitor.id, outcome.started_at);
            let row = check_result::Model {
                id: 0,
                monitor_id,
                seq,
                checked_at_ms: outcome.started_at.timestamp_millis(),
                up: outcome.status.is_up(),
                status_code: outcome.status_code.and_then(|c| i16::try_from(c).ok()),
                response_time_ms: i32::try_from(outcome.response_time_ms).unwrap_or(i32::MAX),
                error: outcome.error.clone(),
                degraded: outcome.degraded,
                dns_ms: outcome.timings.dns_ms,
                connect_ms: outcome.timings.connect_ms,
                tls_ms: outcome.timings.tls_ms,
                first_byte_ms: outcome.timings.first_byte_ms,
                details: rows::details_json(outcome.tls.as_ref(), &outcome.assertion_results),
                in_maintenance,
            };
            monitor.last_seq = seq;
            let mut latest = LatestStatus {
                status: monitor.last_up.map(CheckStatus::from_up),
                checked_at: monitor.last_checked_at,
            };
            let checked_at = from_epoch_ms(row.checked_at_ms);
            let newest = latest.checked_at.is_none_or(|last| checked_at >= last);
            let previous = latest.apply(outcome.status, checked_at);
            monitor.last_up = latest.status.map(CheckStatus::is_up);
            monitor.last_checked_at = latest.checked_at;
            // Flap control follows the newest results only, outside maintenance; a late one
            // or one in a window changes nothing.
            let newest = newest && !in_maintenance;
            let change = if newest {
                confirm(monitor, previous, outcome)
            } else {
                None
            };
            if let Some(slot) = pending.slot {
                monitor.last_slot_at = Some(slot.due);
                monitor.next_check_at = slot.next_check_at(monitor.next_check_at);
            } else if let Some(push) = &pending.push {
                monitor.next_check_at = Some(push.next_due);
            }
            if newest {
                retry_sooner(monitor, checked_at);
            }
            let incident = move_incident(monitor, change.as_ref(), seq, checked_at);
            if let Some(step) = incident {
                match step.resolved_at {
                    None => opened.push(NewIncident {
                        monitor_id: monitor.id,
                        started_seq: step.started_seq,
                        started_at: step.started_at,
                        resolved_seq: None,
                        resolved_at: None,
                    }),
                    Some(resolved_at) => {
                        // Opened by this batch: it is inserted resolved.
                        match opened.iter_mut().find(|o| {
                            o.monitor_id == monitor.id && o.started_seq == step.started_seq
                        }) {
                            Some(new) => {
                                new.resolved_seq = Some(seq);
                                new.resolved_at = Some(resolved_at);
                            }
                            None => resolved.push(Resolution {
                                monitor_id: monitor.id,
                                started_seq: step.started_seq,
                                resolved_seq: seq,
                                resolved_at,
                            }),
                        }
                    }
                }
            }
            fates.push(Fate::Insert);
            rows.push(row);
            after.push(After {
                monitor: monitor.clone(),
                in_maintenance,
                previous,
                change,
                incident,
            });
        }
        Self {
            fates,
            rows,
            after,
            monitors,
            opened,
            resolved,
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
                    Some((row, after)) => Written::Stored(Arc::new(CheckEvent {
                        result: rows::check_result(row),
                        monitor: {
                            let mut monitor = rows::monitor(after.monitor);
                            if after.in_maintenance && monitor.active {
                                monitor.state = MonitorState::Maintenance;
                            }
                            monitor
                        },
                        previous: after.previous,
                        change: after.change,
                        incident: after.incident,
                    })),
                    // Not reached: one row per insert fate.
                    None => Written::Rejected,
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone, Utc};
    use domain::{CheckOutcome, CheckStatus, Slot};
    use entity::monitor;

    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
    }

    fn stored(id: i64, last_seq: i32, next: Option<i64>) -> monitor::Model {
        monitor::Model {
            id,
            name: format!("m{id}"),
            url: "http://user:secret@127.0.0.1/".into(),
            timeout_seconds: 5,
            interval_seconds: 60,
            active: true,
            created_at: at(-100),
            updated_at: at(-100),
            last_checked_at: None,
            last_up: None,
            next_check_at: next.map(at),
            last_slot_at: None,
            last_seq,
            check_spec: None,
            failure_threshold: 1,
            success_threshold: 1,
            confirmed_up: None,
            state_streak: 0,
            state: None,
            push_token: None,
            retry_interval_seconds: None,
            open_incident_seq: None,
            open_incident_at: None,
            reminder_interval_minutes: None,
            notify_degraded: false,
            degraded_told: false,
        }
    }

    fn result(
        monitor_id: i64,
        status: CheckStatus,
        started: i64,
        slot: Option<Slot>,
    ) -> PendingResult {
        PendingResult {
            monitor_id,
            outcome: CheckOutcome::basic(
                at(started),
                status,
                Some(if status.is_up() { 200 } else { 503 }),
                7,
                None,
            ),
            slot,
            push: None,
        }
    }

    fn slot(due: i64) -> Option<Slot> {
        Some(Slot {
            due: at(due),
            next: at(due + 60),
        })
    }

    #[test]
    fn a_batch_numbers_each_monitors_results_and_tells_gone_and_duplicate_slots() {
        let batch = [
            result(1, CheckStatus::Up, 0, slot(0)),
            result(2, CheckStatus::Down, 0, None),
            result(1, CheckStatus::Down, 1, None),
            // Monitor 3 was deleted; monitor 1's slot 0 already has a result.
            result(3, CheckStatus::Up, 0, None),
            result(1, CheckStatus::Up, 2, slot(0)),
        ];
        let plan = Plan::new(
            batch.iter(),
            &Calendar::default(),
            vec![stored(1, 4, Some(0)), stored(2, 0, None)],
        );
        let seqs: Vec<(i32, i32)> = plan.rows.iter().map(|r| (r.monitor_id, r.seq)).collect();
        assert_eq!(seqs, [(1, 5), (2, 1), (1, 6)]);
        assert_eq!(plan.changed_monitors().len(), 2);
        let monitor = &plan.monitors[&1];
        // The slot's result moved the due time on; the later manual check did not.
        assert_eq!(monitor.next_check_at, Some(at(60)));
        assert_eq!(monitor.last_slot_at, Some(at(0)));
        assert_eq!(monitor.last_up, Some(false));
        let written = plan.written();
        let kinds: Vec<&str> = written
            .iter()
            .map(|w| match w {
                Written::Stored(_) => "stored",
                Written::Gone => "gone",
                Written::Duplicate => "duplicate",
                Written::Rejected => "rejected",
            })
            .collect();
        assert_eq!(kinds, ["stored", "stored", "stored", "gone", "duplicate"]);
        let Written::Stored(first) = &written[0] else {
            unreachable!()
        };
        // Its first result: a status change from nothing; the event's URL is masked.
        assert_eq!(first.previous, None);
        assert!(first.is_status_change());
        assert_eq!(first.monitor.url, "http://user:***@127.0.0.1/");
        let Written::Stored(third) = &written[2] else {
            unreachable!()
        };
        assert_eq!(third.previous, Some(CheckStatus::Up));
        assert_eq!(third.result.status, CheckStatus::Down);
        assert_eq!(third.monitor.last_status, Some(CheckStatus::Down));
    }

    #[test]
    fn a_late_result_does_not_move_the_latest_status_back() {
        let mut monitor = stored(1, 1, None);
        monitor.last_up = Some(true);
        monitor.last_checked_at = Some(at(10));
        let batch = [result(1, CheckStatus::Down, 5, None)];
        let plan = Plan::new(batch.iter(), &Calendar::default(), vec![monitor]);
        assert_eq!(plan.monitors[&1].last_up, Some(true));
        assert_eq!(plan.monitors[&1].last_checked_at, Some(at(10)));
        assert_eq!(plan.rows[0].seq, 2);
    }

    #[test]
    fn a_result_past_the_tables_integers_is_rejected_not_wrapped() {
        let batch = [result(1, CheckStatus::Up, 0, None)];
        let plan = Plan::new(
            batch.iter(),
            &Calendar::default(),
            vec![stored(1, i32::MAX, None)],
        );
        assert!(plan.rows.is_empty());
        assert!(matches!(plan.written()[..], [Written::Rejected]));
    }

    #[test]
    fn incidents_open_on_a_confirmed_down_and_resolve_on_a_confirmed_up_within_and_across_batches()
    {
        // One batch: DOWN (opens), UP (resolves what it opened), DOWN (opens another).
        let batch = [
            result(1, CheckStatus::Down, 0, None),
            result(1, CheckStatus::Up, 10, None),
            result(1, CheckStatus::Down, 20, None),
        ];
        let plan = Plan::new(batch.iter(), &Calendar::default(), vec![stored(1, 0, None)]);
        assert_eq!(
            plan.opened,
            [
                NewIncident {
                    monitor_id: 1,
                    started_seq: 1,
                    started_at: at(0),
                    resolved_seq: Some(2),
                    resolved_at: Some(at(10)),
                },
                NewIncident {
                    monitor_id: 1,
                    started_seq: 3,
                    started_at: at(20),
                    resolved_seq: None,
                    resolved_at: None,
                },
            ]
        );
        assert!(plan.resolved.is_empty());
        let monitor = plan.monitors[&1].clone();
        assert_eq!(monitor.open_incident_seq, Some(3));
        let written = plan.written();
        let Written::Stored(up) = &written[1] else {
            unreachable!()
        };
        assert_eq!(up.incident.unwrap().downtime_seconds(), Some(10));

        // The next batch: a second failure changes nothing; the UP resolves the open one.
        let batch = [
            result(1, CheckStatus::Down, 30, None),
            result(1, CheckStatus::Up, 80, None),
        ];
        let plan = Plan::new(batch.iter(), &Calendar::default(), vec![monitor]);
        assert!(plan.opened.is_empty());
        assert_eq!(
            plan.resolved,
            [Resolution {
                monitor_id: 1,
                started_seq: 3,
                resolved_seq: 5,
                resolved_at: at(80),
            }]
        );
        assert_eq!(plan.monitors[&1].open_incident_seq, None);
        assert_eq!(plan.monitors[&1].open_incident_at, None);
    }
}
