//! The worker: it checks URLs, schedules checks, stores their results and publishes them.
//! It knows the database (through `entity`) but never the API.
//!
//! [`Engine`] bundles the pieces a process runs: the [`Checker`], the batching
//! [`ResultStore`], the [`EventBus`] and, in processes that schedule, the [`Scheduler`].

pub mod checker;
pub mod events;
pub mod model;
mod notify;
pub mod scheduler;
pub mod store;

use std::time::Duration;

use entity::monitor;
use sea_orm::{DatabaseConnection, EntityTrait};
use tokio::{sync::broadcast, task::JoinHandle};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use checker::{CheckOutcome, Checker};
pub use events::{CheckEvent, EventBus};
pub use model::{CheckRecord, CheckStatus};
pub use notify::ScheduleNotifier;
pub use scheduler::Scheduler;
pub use store::{ResultStore, StoreError};

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Most checks running at once.
    pub check_concurrency: usize,
    /// How far a subscriber may fall behind before it is told it lagged.
    pub event_buffer: usize,
    /// Whether this process schedules checks (false: manual checks only).
    pub schedule: bool,
}

/// Why a manual check failed.
#[derive(Debug, thiserror::Error)]
pub enum RunCheckError {
    #[error("monitor {0} not found")]
    NotFound(i64),
    #[error(transparent)]
    Database(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The running worker of one process.
#[derive(Clone)]
pub struct Engine {
    db: DatabaseConnection,
    checker: Checker,
    store: ResultStore,
    events: EventBus,
}

/// Handles for stopping an [`Engine`] in order.
pub struct EngineTasks {
    stop_scheduling: CancellationToken,
    stop_store: CancellationToken,
    checks: TaskTracker,
    scheduler: Option<JoinHandle<Result<(), sea_orm::DbErr>>>,
    store: JoinHandle<()>,
}

impl Engine {
    /// Starts the result store and, if configured, the scheduler.
    pub fn start(
        db: DatabaseConnection,
        config: &EngineConfig,
    ) -> anyhow::Result<(Self, ScheduleNotifier, EngineTasks)> {
        let checker = Checker::new()?;
        let events = EventBus::new(config.event_buffer);
        let stop_store = CancellationToken::new();
        let (store, store_task) =
            ResultStore::start(db.clone(), events.clone(), stop_store.clone());
        let stop_scheduling = CancellationToken::new();
        let checks = TaskTracker::new();
        let (notifier, scheduler) = if config.schedule {
            let (notifier, changes) = ScheduleNotifier::channel();
            let runner = scheduler::LocalRunner {
                checker: checker.clone(),
                store: store.clone(),
            };
            let scheduler = Scheduler::new(db.clone(), runner, config.check_concurrency);
            let handle =
                tokio::spawn(scheduler.run(changes, stop_scheduling.clone(), checks.clone()));
            (notifier, Some(handle))
        } else {
            (ScheduleNotifier::detached(), None)
        };
        let engine = Self {
            db,
            checker,
            store,
            events,
        };
        let tasks = EngineTasks {
            stop_scheduling,
            stop_store,
            checks,
            scheduler,
            store: store_task,
        };
        Ok((engine, notifier, tasks))
    }

    /// Checks a monitor now, stores the result and publishes it like any other.
    pub async fn run_check(&self, monitor_id: i64) -> Result<CheckRecord, RunCheckError> {
        let monitor = monitor::Entity::find_by_id(monitor_id)
            .one(&self.db)
            .await?
            .ok_or(RunCheckError::NotFound(monitor_id))?;
        let timeout = Duration::from_secs(monitor.timeout_seconds.max(1) as u64);
        let outcome = self.checker.check(&monitor.url, timeout).await;
        match self.store.store(monitor_id, outcome).await {
            Ok(record) => Ok(record),
            Err(StoreError::MonitorGone(id)) => Err(RunCheckError::NotFound(id)),
            Err(err) => Err(err.into()),
        }
    }

    /// A subscriber to every stored check of this process.
    pub fn subscribe(&self) -> broadcast::Receiver<std::sync::Arc<CheckEvent>> {
        self.events.subscribe()
    }
}

impl EngineTasks {
    /// Stops scheduling, lets checks in flight finish for up to `grace`, writes what is
    /// queued, and returns once the store has stopped.
    pub async fn shutdown(self, grace: Duration) {
        self.stop_scheduling.cancel();
        if let Some(scheduler) = self.scheduler {
            match scheduler.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::error!(error = %err, "scheduler failed"),
                Err(err) => tracing::error!(error = %err, "scheduler task failed"),
            }
        }
        self.checks.close();
        if tokio::time::timeout(grace, self.checks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                running = self.checks.len(),
                "checks still running after the shutdown grace period; abandoning them"
            );
        }
        self.stop_store.cancel();
        let _ = self.store.await;
    }
}
