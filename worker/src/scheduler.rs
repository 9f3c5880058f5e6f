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
    future::Future,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use chrono::{DateTime, SubsecRound, Utc};
use domain::{
    slot::{self, Slot},
    MonitorSchedule,
};
use store::Error as DbErr;
use tokio::{
    sync::{mpsc, Semaphore},
    time::Instant,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use crate::source::MonitorSource;
use crate::{
    checker::{Checker, Target},
    writer::ResultWriter,
};

/// One due check, handed to a [`CheckRunner`].
#[derive(Debug, Clone)]
pub struct Job {
    pub monitor_id: i64,
    pub target: Target,
    pub timeout: Duration,
    /// The slot this check is for.
    pub slot: Slot,
    /// The monitor's retry interval: how soon to check again while a change is unconfirmed.
    pub retry: Option<i32>,
}

/// What the scheduler does with a due check. The returned future completes when the check
/// is over; until then the monitor's next slots are skipped rather than overlapped. It gives
/// the time to check again when that is sooner than the next slot (a retry).
pub trait CheckRunner: Clone + Send + Sync + 'static {
    fn run(&self, job: Job) -> impl Future<Output = Option<DateTime<Utc>>> + Send;
}

/// Runs checks in this process and hands results to the store.
#[derive(Clone)]
pub struct LocalRunner {
    pub checker: Checker,
    pub store: ResultWriter,
}

impl CheckRunner for LocalRunner {
    async fn run(&self, job: Job) -> Option<DateTime<Utc>> {
        let outcome = self.checker.check_target(&job.target, job.timeout).await;
        if job.retry.is_none() {
            // Handed over without waiting for the write.
            self.store
                .submit(job.monitor_id, outcome, Some(job.slot))
                .await;
            return None;
        }
        // The monitor's state after this result decides: the same rule the store applies.
        let event = self
            .store
            .store_slot(job.monitor_id, outcome, Some(job.slot))
            .await
            .ok()??;
        let monitor = &event.monitor;
        domain::state::retry_at(
            monitor.active,
            Some(monitor.state),
            monitor.retry_interval_seconds,
            event.result.checked_at,
        )
    }
}

/// Shortest time between two wake-ups of the scheduler: checks due within it start together.
/// It adds at most this much start lag and saves wake-ups of the check thread (and, as the
/// results then reach the store together, of the store and of live subscribers): every
/// wake-up has a fixed cost (the timer, epoll rounds, a store transaction, a WebSocket write
/// per subscriber), shared by the checks it starts. 50 ms keeps start lag within the 100 ms
/// the schedule allows (docs/decisions/004-wake-grid.md has the step's measurements).
///
/// The wake-ups of every check thread fall on one grid of this step ([`on_wake_grid`]), so
/// the threads' results reach the store together: one transaction, one wake-up of the store
/// and one WebSocket write per subscriber for each step instead of one per thread.
const WAKE_COALESCE: Duration = Duration::from_millis(50);

/// How far ahead of the last wake-up the scheduler keeps a second timer armed, shorter than
/// any check's timeout (whole seconds). tokio's time driver wakes its own thread (a write to
/// its eventfd, then one more epoll round) for every timer registered while no other timer is
/// pending (tokio 1.54, `runtime/time/mod.rs`, `reregister`), and once the scheduler's wake-up
/// has fired nothing else is pending between ticks: each check's timeout did that, about one
/// system call per check. With this timer pending, a timeout registers later than the
/// driver's next wake-up and needs no wake.
const TIMER_GUARD: Duration = Duration::from_millis(500);

/// What the scheduler needs to know about one monitor.
#[derive(Debug, Clone)]
struct Scheduled {
    target: Target,
    timeout: Duration,
    interval: Duration,
    /// The due time of the queued slot, on the scheduler's clock.
    due: Instant,
    /// Bumped on every change, so stale queue entries are skipped.
    generation: u64,
    retry: Option<i32>,
    /// The stored due time of the queued slot when it was already past and the slot was
    /// queued for now: the slot is checked as that one, so its result moves the stored time on.
    anchor: Option<DateTime<Utc>>,
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
            // A time absurdly far ahead (a corrupt row) is treated as a year away.
            Ok(ahead) => self
                .base_instant
                .checked_add(ahead.min(Duration::from_secs(365 * 24 * 3600)))
                .unwrap_or(self.base_instant),
            Err(_) => {
                let behind = (self.base_wall - at).to_std().unwrap_or_default();
                self.base_instant
                    .checked_sub(behind)
                    .unwrap_or(self.base_instant)
            }
        }
    }
}

/// A check's ask for a retry: its monitor, the generation it was checked at, and when.
type Retry = (i64, u64, DateTime<Utc>);

/// Runs scheduled checks until cancelled.
pub struct Scheduler<S, R> {
    source: S,
    runner: R,
    concurrency: Arc<Semaphore>,
    clock: Clock,
    monitors: HashMap<i64, Scheduled>,
    queue: BinaryHeap<Reverse<(Instant, i64, u64)>>,
    /// Monitors whose check is running. A check takes its monitor out itself when it ends,
    /// so an ending check never wakes the scheduler.
    running: Arc<Mutex<HashSet<i64>>>,
    next_generation: u64,
    /// Checks that ask for a retry.
    retries: (mpsc::UnboundedSender<Retry>, mpsc::UnboundedReceiver<Retry>),
}

/// A monitor's place in the running set, given up when its check ends (or is dropped).
struct RunningGuard {
    running: Arc<Mutex<HashSet<i64>>>,
    id: i64,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        lock(&self.running).remove(&self.id);
    }
}

fn lock(running: &Mutex<HashSet<i64>>) -> std::sync::MutexGuard<'_, HashSet<i64>> {
    running.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<S: MonitorSource, R: CheckRunner> Scheduler<S, R> {
    /// A scheduler running at most `concurrency` checks at once.
    pub fn new(source: S, runner: R, concurrency: usize) -> Self {
        Self::with_limit(source, runner, Arc::new(Semaphore::new(concurrency.max(1))))
    }

    /// A scheduler whose checks each hold a permit of `limit` (shared with other schedulers).
    pub fn with_limit(source: S, runner: R, limit: Arc<Semaphore>) -> Self {
        Self {
            source,
            runner,
            concurrency: limit,
            clock: Clock::new(),
            monitors: HashMap::new(),
            queue: BinaryHeap::new(),
            running: Arc::new(Mutex::new(HashSet::new())),
            next_generation: 0,
            retries: mpsc::unbounded_channel(),
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
        // The database may still be starting: keep trying, with backoff, until told to stop.
        let mut delay = Duration::from_millis(200);
        while let Err(err) = self.load_all().await {
            tracing::warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "scheduler cannot load monitors; retrying");
            tokio::select! {
                _ = stop.cancelled() => return Err(err),
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        tracing::info!(monitors = self.monitors.len(), "scheduler started");
        let mut changed = Vec::new();
        let now = Instant::now();
        let mut last_fire = now.checked_sub(WAKE_COALESCE).unwrap_or(now);
        // One timer for the whole run, moved only when the next wake-up moves: a new timer
        // per loop turn would be registered anew each time, and registering a timer earlier
        // than the runtime's next wake-up writes to its eventfd and costs an extra epoll
        // round.
        let wake = tokio::time::sleep_until(now);
        tokio::pin!(wake);
        let guard = tokio::time::sleep_until(now + TIMER_GUARD);
        tokio::pin!(guard);
        loop {
            // Wake at most once per WAKE_COALESCE: at a steady rate the checks due within it
            // start together, sharing one wake-up of the runtime and its epoll rounds.
            let next_due = self.queue.peek().map(|Reverse((due, _, _))| {
                on_wake_grid((*due).max(last_fire + Duration::from_nanos(1)))
            });
            // After firing, the next wake-up is always later than the one that fired.
            if let Some(at) = next_due.filter(|&at| at != wake.deadline()) {
                wake.as_mut().reset(at);
            }
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                // Due checks before changes: a stream of edits must never stall the schedule.
                _ = &mut wake, if next_due.is_some() => {
                    last_fire = Instant::now();
                    // Moved on before the checks start, so it is pending when they register
                    // their timeouts.
                    guard.as_mut().reset(last_fire + TIMER_GUARD);
                    self.fire_due(&tracker);
                }
                // Nothing was due for a while; it waits for the next wake-up to be armed again.
                _ = &mut guard, if !guard.is_elapsed() => {}
                Some((id, generation, at)) = self.retries.1.recv() => self.retry(id, generation, at),
                received = changes.recv_many(&mut changed, 1024) => {
                    if received == 0 {
                        // Nobody can report changes any more; keep running the schedule.
                        changes = mpsc::unbounded_channel().1;
                        continue;
                    }
                    // One query for the whole burst (a bulk edit may change thousands).
                    if let Err(err) = self.reload(&changed).await {
                        tracing::warn!(monitors = changed.len(), error = %err, "could not reload changed monitors; keeping their old schedule");
                    }
                    changed.clear();
                }
            }
        }
        tracing::info!(running = lock(&self.running).len(), "scheduler stopped");
        Ok(())
    }

    async fn load_all(&mut self) -> Result<(), DbErr> {
        let rows = self.source.active().await?;
        let now = Instant::now();
        for row in rows {
            let mut due = row
                .next_check_at
                .map(|at| self.clock.to_instant(at))
                .unwrap_or(now);
            if due < now {
                // Overdue (the process was down): spread over the interval, by id.
                due = now + slot::start_offset(row.id, slot::interval_of(row.interval_seconds));
            }
            self.insert(&row, due);
        }
        Ok(())
    }

    async fn reload(&mut self, ids: &[i64]) -> Result<(), DbErr> {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let rows: HashMap<i64, MonitorSchedule> = self
            .source
            .get_many(&ids)
            .await?
            .into_iter()
            .map(|row| (row.id, row))
            .collect();
        let now = Instant::now();
        for id in ids {
            match rows.get(&id) {
                Some(row) if row.active => {
                    let (due, anchor) = match row.next_check_at {
                        Some(at) => self.due_from(at, row.interval_seconds, now),
                        None => (now, None),
                    };
                    self.insert(row, due);
                    if let Some(entry) = self.monitors.get_mut(&row.id) {
                        entry.anchor = anchor;
                    }
                }
                _ => {
                    self.monitors.remove(&id);
                }
            }
        }
        Ok(())
    }

    /// When to queue a slot stored as due `at`: then, or now if that is past (with `at` as
    /// the anchor when less than an interval ago: a slot due a moment ago, just created,
    /// resumed or edited; one further back was missed, and its check starts a new grid).
    fn due_from(
        &self,
        at: DateTime<Utc>,
        interval_seconds: i32,
        now: Instant,
    ) -> (Instant, Option<DateTime<Utc>>) {
        let stored = self.clock.to_instant(at);
        if stored >= now {
            return (stored, None);
        }
        let recent = now.duration_since(stored) < slot::interval_of(interval_seconds);
        (now, recent.then_some(at))
    }

    fn insert(&mut self, row: &MonitorSchedule, due: Instant) {
        self.next_generation += 1;
        let scheduled = Scheduled {
            target: Target::new(&row.url, row.spec.as_ref()),
            timeout: slot::timeout_of(row.timeout_seconds),
            interval: slot::interval_of(row.interval_seconds),
            due,
            generation: self.next_generation,
            retry: row.retry_interval_seconds,
            anchor: None,
        };
        self.queue
            .push(Reverse((due, row.id, scheduled.generation)));
        self.monitors.insert(row.id, scheduled);
    }

    /// Brings a monitor's next check forward to `at` (a retry), unless it changed since the
    /// check that asked, or its next slot comes first.
    fn retry(&mut self, id: i64, generation: u64, at: DateTime<Utc>) {
        let Some(entry) = self.monitors.get_mut(&id) else {
            return;
        };
        let stored = self.clock.to_instant(at);
        if entry.generation != generation || stored >= entry.due {
            return;
        }
        // Past already (a slow check): checked now, as the slot stored for `at`.
        let now = Instant::now();
        let due = stored.max(now);
        self.next_generation += 1;
        entry.generation = self.next_generation;
        entry.due = due;
        entry.anchor = (stored < now).then_some(at);
        self.queue.push(Reverse((due, id, entry.generation)));
    }

    /// Starts every check that is due now and queues each monitor's next slot.
    fn fire_due(&mut self, tracker: &TaskTracker) {
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
            if !lock(&self.running).insert(id) {
                tracing::debug!(
                    monitor.id = id,
                    "previous check still running; slot skipped"
                );
                continue;
            }
            // A late slot counts as the newest grid slot it overran; the missed ones are
            // skipped, so each grid slot gets at most one check. A slot queued for now in
            // place of a stored due time just past is checked as that one.
            let anchor = self.monitors.get_mut(&id).and_then(|e| e.anchor.take());
            let slot = Slot {
                due: anchor.unwrap_or_else(|| self.clock.to_wall(next - entry.interval)),
                next: self.clock.to_wall(next),
            };
            let job = Job {
                monitor_id: id,
                target: entry.target,
                timeout: entry.timeout,
                slot,
                retry: entry.retry,
            };
            let runner = self.runner.clone();
            let permits = self.concurrency.clone();
            let running = RunningGuard {
                running: self.running.clone(),
                id,
            };
            let retries = self.retries.0.clone();
            tracker.spawn(async move {
                if let Ok(_permit) = permits.acquire_owned().await {
                    if let Some(at) = runner.run(job).await {
                        let _ = retries.send((id, generation, at));
                    }
                }
                drop(running);
            });
        }
    }
}

/// The first point at or after `at` of a grid of [`WAKE_COALESCE`] steps shared by every
/// scheduler of this process.
fn on_wake_grid(at: Instant) -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    let Some(since) = at.checked_duration_since(epoch) else {
        return at;
    };
    let step = WAKE_COALESCE.as_nanos();
    let steps = since.as_nanos().div_ceil(step);
    epoch + Duration::from_nanos(u64::try_from(steps * step).unwrap_or(u64::MAX))
}

/// The first slot of the grid `due + k * interval` (k >= 1) that lies after `now`.
fn next_slot(due: Instant, interval: Duration, now: Instant) -> Instant {
    due + slot::next_after(now.saturating_duration_since(due), interval)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

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

    /// Monitors held in memory.
    #[derive(Clone, Default)]
    struct FakeSource(Arc<Mutex<HashMap<i64, MonitorSchedule>>>);

    impl FakeSource {
        fn put(&self, row: MonitorSchedule) {
            self.0.lock().unwrap().insert(row.id, row);
        }
    }

    impl MonitorSource for FakeSource {
        async fn active(&self) -> Result<Vec<MonitorSchedule>, DbErr> {
            Ok(self
                .0
                .lock()
                .unwrap()
                .values()
                .filter(|m| m.active)
                .cloned()
                .collect())
        }
        async fn get_many(&self, ids: &[i64]) -> Result<Vec<MonitorSchedule>, DbErr> {
            let rows = self.0.lock().unwrap();
            Ok(ids.iter().filter_map(|id| rows.get(id).cloned()).collect())
        }
    }

    /// Records when each check starts (ms since the test began) and takes `busy` to finish.
    #[derive(Clone)]
    struct FakeRunner {
        start: Instant,
        busy: HashMap<i64, Duration>,
        runs: Arc<Mutex<Vec<(i64, u128)>>>,
    }

    impl CheckRunner for FakeRunner {
        async fn run(&self, job: Job) -> Option<DateTime<Utc>> {
            let at = self.start.elapsed().as_millis();
            self.runs.lock().unwrap().push((job.monitor_id, at));
            if let Some(busy) = self.busy.get(&job.monitor_id) {
                tokio::time::sleep(*busy).await;
            }
            None
        }
    }

    fn row(id: i64, interval: i32, next: Option<DateTime<Utc>>) -> MonitorSchedule {
        MonitorSchedule {
            id,
            url: "http://127.0.0.1:9/".into(),
            timeout_seconds: 1,
            interval_seconds: interval,
            active: true,
            next_check_at: next,
            spec: None,
            retry_interval_seconds: None,
        }
    }

    struct Harness {
        source: FakeSource,
        runs: Arc<Mutex<Vec<(i64, u128)>>>,
        changes: mpsc::UnboundedSender<i64>,
        stop: CancellationToken,
        task: tokio::task::JoinHandle<Result<(), DbErr>>,
    }

    fn start(rows: Vec<MonitorSchedule>, busy: &[(i64, u64)], concurrency: usize) -> Harness {
        let source = FakeSource::default();
        for r in rows {
            source.put(r);
        }
        let runs = Arc::new(Mutex::new(Vec::new()));
        let runner = FakeRunner {
            start: Instant::now(),
            busy: busy
                .iter()
                .map(|(id, ms)| (*id, Duration::from_millis(*ms)))
                .collect(),
            runs: runs.clone(),
        };
        let (changes, rx) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let scheduler = Scheduler::new(source.clone(), runner, concurrency);
        let task = tokio::spawn(scheduler.run(rx, stop.clone(), TaskTracker::new()));
        Harness {
            source,
            runs,
            changes,
            stop,
            task,
        }
    }

    impl Harness {
        fn runs_of(&self, id: i64) -> Vec<u128> {
            self.runs
                .lock()
                .unwrap()
                .iter()
                .filter(|(m, _)| *m == id)
                .map(|(_, at)| *at)
                .collect()
        }
        async fn stop(self) {
            self.stop.cancel();
            self.task.await.unwrap().unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_one_second_monitor_is_checked_exactly_on_its_grid() {
        let h = start(vec![row(1, 1, None)], &[], 10);
        tokio::time::sleep(Duration::from_millis(5500)).await;
        assert_eq!(h.runs_of(1), vec![0, 1000, 2000, 3000, 4000, 5000]);
        h.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_check_never_overlaps_the_next_one_and_its_slots_are_skipped() {
        let h = start(vec![row(1, 1, None), row(2, 1, None)], &[(1, 2500)], 10);
        tokio::time::sleep(Duration::from_millis(6500)).await;
        // Slots 1 and 2 come while the first check runs: skipped, not queued up.
        assert_eq!(h.runs_of(1), vec![0, 3000, 6000]);
        // The slow target never delays another monitor.
        assert_eq!(h.runs_of(2), vec![0, 1000, 2000, 3000, 4000, 5000, 6000]);
        h.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_concurrency_cap_late_checks_run_once_instead_of_bursting() {
        // One permit, held 3.5 s by monitor 1: monitor 2 waits, then runs once, then on time.
        let h = start(vec![row(1, 60, None), row(2, 1, None)], &[(1, 3500)], 1);
        tokio::time::sleep(Duration::from_millis(6500)).await;
        let runs = h.runs_of(2);
        assert_eq!(runs[0], 3500, "{runs:?}");
        assert_eq!(&runs[1..], &[4000, 5000, 6000], "{runs:?}");
        h.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn pausing_stops_checks_and_resuming_checks_at_once() {
        let h = start(vec![row(1, 1, None)], &[], 10);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mut paused = row(1, 1, None);
        paused.active = false;
        h.source.put(paused);
        h.changes.send(1).unwrap();
        tokio::time::sleep(Duration::from_millis(3000)).await;
        assert_eq!(h.runs_of(1), vec![0, 1000]);
        h.source.put(row(1, 1, None));
        h.changes.send(1).unwrap();
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(h.runs_of(1), vec![0, 1000, 4500, 5500]);
        h.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_deleted_monitor_is_never_checked_again() {
        let h = start(vec![row(1, 1, None)], &[], 10);
        tokio::time::sleep(Duration::from_millis(500)).await;
        h.source.0.lock().unwrap().remove(&1);
        h.changes.send(1).unwrap();
        tokio::time::sleep(Duration::from_millis(3000)).await;
        assert_eq!(h.runs_of(1), vec![0]);
        h.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_resumes_from_the_stored_due_time_and_spreads_overdue_monitors() {
        let due_later = Utc::now() + chrono::Duration::milliseconds(2500);
        let overdue = Utc::now() - chrono::Duration::hours(1);
        let mut rows = vec![row(1, 10, Some(due_later))];
        rows.extend((2..=21).map(|id| row(id, 10, Some(overdue))));
        let h = start(rows, &[], 100);
        tokio::time::sleep(Duration::from_millis(10_500)).await;
        let first = h.runs_of(1);
        assert_eq!(first.len(), 1);
        assert!((2490..=2510).contains(&first[0]), "{first:?}");
        let starts: Vec<u128> = (2..=21).map(|id| h.runs_of(id)[0]).collect();
        assert!(
            starts.iter().all(|at| *at < 10_000),
            "within one interval: {starts:?}"
        );
        let distinct: HashSet<u128> = starts.iter().copied().collect();
        assert!(
            distinct.len() > 10,
            "overdue monitors are spread, not fired at once: {starts:?}"
        );
        h.stop().await;
    }
}
