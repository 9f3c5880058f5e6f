//! The scheduler: it keeps every active monitor in a queue ordered by due time and sleeps
//! exactly until the next one is due (no polling), or until a monitor changes.
//!
//! Guarantees:
//! - a monitor's checks never overlap: a slot that comes while its previous check still runs
//!   is skipped;
//! - after a stall, missed slots are skipped, not fired in a burst: a late slot runs once and
//!   the next is the first of its grid (`due + k * interval`) that lies in the future;
//! - the next due time is stored with each result, so a restart resumes the schedule;
//!   monitors found overdue at start are spread over their interval (at most a minute), so a
//!   restart never fires them all at once;
//! - at most `concurrency` checks run at once, and a slow target only holds its own slot.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use chrono::{DateTime, SubsecRound, Utc};
use entity::monitor;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use tokio::{
    sync::{mpsc, Semaphore},
    time::Instant,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    checker::Checker,
    store::{ResultStore, Slot},
};

/// Longest window over which overdue monitors are spread at start.
const MAX_START_SPREAD: Duration = Duration::from_secs(60);

/// What the scheduler needs to know about one monitor.
#[derive(Debug, Clone)]
struct Scheduled {
    url: Arc<str>,
    timeout: Duration,
    interval: Duration,
    /// The due time of the queued slot, on the scheduler's clock.
    due: Instant,
    /// Bumped on every change, so stale queue entries are skipped.
    generation: u64,
}

/// Maps the monotonic clock the scheduler sleeps on to wall-clock times for storage.
#[derive(Debug, Clone, Copy)]
struct Clock {
    base_instant: Instant,
    base_wall: DateTime<Utc>,
}

impl Clock {
    fn new() -> Self {
        Self {
            base_instant: Instant::now(),
            base_wall: Utc::now().trunc_subsecs(6),
        }
    }

    fn to_wall(self, at: Instant) -> DateTime<Utc> {
        let offset = chrono::Duration::from_std(at.saturating_duration_since(self.base_instant))
            .unwrap_or_default();
        (self.base_wall + offset).trunc_subsecs(6)
    }

    fn to_instant(self, at: DateTime<Utc>) -> Instant {
        match (at - self.base_wall).to_std() {
            Ok(ahead) => self.base_instant + ahead,
            Err(_) => {
                let behind = (self.base_wall - at).to_std().unwrap_or_default();
                self.base_instant
                    .checked_sub(behind)
                    .unwrap_or(self.base_instant)
            }
        }
    }
}

/// Runs scheduled checks until cancelled.
pub struct Scheduler {
    db: DatabaseConnection,
    checker: Checker,
    store: ResultStore,
    concurrency: Arc<Semaphore>,
    clock: Clock,
    monitors: HashMap<i64, Scheduled>,
    queue: BinaryHeap<Reverse<(Instant, i64, u64)>>,
    running: HashSet<i64>,
    next_generation: u64,
}

impl Scheduler {
    /// A scheduler running at most `concurrency` checks at once.
    pub fn new(
        db: DatabaseConnection,
        checker: Checker,
        store: ResultStore,
        concurrency: usize,
    ) -> Self {
        Self {
            db,
            checker,
            store,
            concurrency: Arc::new(Semaphore::new(concurrency.max(1))),
            clock: Clock::new(),
            monitors: HashMap::new(),
            queue: BinaryHeap::new(),
            running: HashSet::new(),
            next_generation: 0,
        }
    }

    /// Loads every active monitor, then schedules until `stop` is cancelled; the checks
    /// started by then are tracked by `tracker`. `changes` carries ids of monitors that were
    /// created, changed or deleted.
    pub async fn run(
        mut self,
        mut changes: mpsc::UnboundedReceiver<i64>,
        stop: CancellationToken,
        tracker: TaskTracker,
    ) -> Result<(), DbErr> {
        self.load_all().await?;
        tracing::info!(monitors = self.monitors.len(), "scheduler started");
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<i64>();
        let mut changed = Vec::new();
        loop {
            let next_due = self.queue.peek().map(|Reverse((due, _, _))| *due);
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                Some(id) = done_rx.recv() => {
                    self.running.remove(&id);
                }
                received = changes.recv_many(&mut changed, 1024) => {
                    if received == 0 {
                        // Nobody can report changes any more; keep running the schedule.
                        changes = mpsc::unbounded_channel().1;
                        continue;
                    }
                    for id in changed.drain(..) {
                        if let Err(err) = self.reload(id).await {
                            tracing::warn!(monitor.id = id, error = %err, "could not reload a changed monitor; retrying later");
                            // Keep the old schedule; the next change or restart fixes it.
                        }
                    }
                }
                _ = sleep_until_opt(next_due) => {
                    self.fire_due(&done_tx, &tracker);
                }
            }
        }
        tracing::info!(running = self.running.len(), "scheduler stopped");
        Ok(())
    }

    async fn load_all(&mut self) -> Result<(), DbErr> {
        let rows = monitor::Entity::find()
            .filter(monitor::Column::Active.eq(true))
            .all(&self.db)
            .await?;
        let now = Instant::now();
        for row in rows {
            let interval = interval_of(&row);
            let mut due = row
                .next_check_at
                .map(|at| self.clock.to_instant(at))
                .unwrap_or(now);
            if due < now {
                // Overdue (the process was down): spread over the interval, by id.
                let window = interval.min(MAX_START_SPREAD).as_millis().max(1) as u64;
                let offset = (row.id as u64).wrapping_mul(2_654_435_761) % window;
                due = now + Duration::from_millis(offset);
            }
            self.insert(&row, due);
        }
        Ok(())
    }

    async fn reload(&mut self, id: i64) -> Result<(), DbErr> {
        let row = monitor::Entity::find_by_id(id).one(&self.db).await?;
        match row {
            Some(row) if row.active => {
                let now = Instant::now();
                let due = row
                    .next_check_at
                    .map(|at| self.clock.to_instant(at).max(now))
                    .unwrap_or(now);
                self.insert(&row, due);
            }
            _ => {
                self.monitors.remove(&id);
            }
        }
        Ok(())
    }

    fn insert(&mut self, row: &monitor::Model, due: Instant) {
        self.next_generation += 1;
        let scheduled = Scheduled {
            url: Arc::from(row.url.as_str()),
            timeout: Duration::from_secs(row.timeout_seconds.max(1) as u64),
            interval: interval_of(row),
            due,
            generation: self.next_generation,
        };
        self.queue
            .push(Reverse((due, row.id, scheduled.generation)));
        self.monitors.insert(row.id, scheduled);
    }

    /// Starts every check that is due now and queues each monitor's next slot.
    fn fire_due(&mut self, done: &mpsc::UnboundedSender<i64>, tracker: &TaskTracker) {
        let now = Instant::now();
        while let Some(Reverse((due, id, generation))) = self.queue.peek().copied() {
            if due > now {
                break;
            }
            self.queue.pop();
            let Some(entry) = self.monitors.get_mut(&id) else {
                continue;
            };
            if entry.generation != generation {
                continue;
            }
            let next = next_slot(due, entry.interval, now);
            entry.due = next;
            let entry = entry.clone();
            self.queue.push(Reverse((next, id, generation)));
            if !self.running.insert(id) {
                tracing::debug!(
                    monitor.id = id,
                    "previous check still running; slot skipped"
                );
                continue;
            }
            let slot = Slot {
                due: self.clock.to_wall(due),
                next: self.clock.to_wall(next),
            };
            let checker = self.checker.clone();
            let store = self.store.clone();
            let permits = self.concurrency.clone();
            let done = done.clone();
            tracker.spawn(async move {
                if let Ok(_permit) = permits.acquire_owned().await {
                    let outcome = checker.check(&entry.url, entry.timeout).await;
                    store.submit(id, outcome, Some(slot)).await;
                }
                let _ = done.send(id);
            });
        }
    }
}

/// The first slot of the grid `due + k * interval` (k >= 1) that lies after `now`.
fn next_slot(due: Instant, interval: Duration, now: Instant) -> Instant {
    let next = due + interval;
    if next > now {
        return next;
    }
    let behind = now.duration_since(due).as_nanos();
    let step = interval.as_nanos().max(1);
    let k = behind / step + 1;
    due + Duration::from_nanos(u64::try_from(k * step).unwrap_or(u64::MAX))
}

fn interval_of(row: &monitor::Model) -> Duration {
    Duration::from_secs(row.interval_seconds.max(1) as u64)
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn next_slot_skips_missed_slots_instead_of_bursting() {
        let t0 = Instant::now();
        let second = Duration::from_secs(1);
        assert_eq!(next_slot(t0, second, t0), t0 + second);
        assert_eq!(
            next_slot(t0, second, t0 + Duration::from_millis(500)),
            t0 + second
        );
        // Five and a half seconds late: the next slot is the sixth, not the first.
        assert_eq!(
            next_slot(t0, second, t0 + Duration::from_millis(5500)),
            t0 + Duration::from_secs(6)
        );
        assert_eq!(next_slot(t0, second, t0 + second), t0 + 2 * second);
    }

    #[tokio::test(start_paused = true)]
    async fn clock_round_trips_between_instants_and_wall_time() {
        let clock = Clock::new();
        let later = clock.base_instant + Duration::from_millis(1500);
        let wall = clock.to_wall(later);
        assert_eq!(wall - clock.base_wall, chrono::Duration::milliseconds(1500));
        assert_eq!(clock.to_instant(wall), later);
        let earlier = clock.base_wall - chrono::Duration::seconds(10);
        assert!(clock.to_instant(earlier) <= clock.base_instant);
    }
}
