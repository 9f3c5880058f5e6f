//! The worker: everything that runs in the background. It checks URLs, schedules checks,
//! has their results stored (through `store`) and publishes them; it never knows the API.
//!
//! [`Engine`] bundles the pieces a process runs: the [`Checker`], the batching
//! [`ResultWriter`], the [`EventBus`] and, in processes that schedule, the [`Scheduler`].

pub mod amqp;
pub mod channels;
pub mod checker;
pub mod delivery;
pub mod events;
pub mod lease;
pub mod maintenance;
mod notify;
mod roles;
pub mod runtime;
pub mod scheduler;
pub mod shard;
pub mod source;
pub mod writer;

use std::{sync::Arc, time::Duration};

use domain::{CheckEvent, CheckResult};
use store::{Backend, Database};
use tokio::{sync::broadcast, task::JoinHandle};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use amqp::AmqpConfig;
pub use checker::{Checker, CheckerSettings};
pub use events::EventBus;
pub use notify::ScheduleNotifier;
pub use scheduler::Scheduler;
pub use writer::{ResultWriter, WriteError};

/// Which scheduler, if any, runs in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduling {
    /// None (API-only and worker-only processes).
    Off,
    /// The in-memory scheduler, for one process per database.
    InProcess,
    /// The lease scheduler on PostgreSQL: any number of them, with RabbitMQ.
    Leases,
}

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Most checks running at once.
    pub check_concurrency: usize,
    /// Threads that schedule and run checks in process (each a shard of the monitors).
    pub check_threads: usize,
    /// How far a subscriber may fall behind before it is told it lagged.
    pub event_buffer: usize,
    /// Which scheduler runs here.
    pub scheduling: Scheduling,
    /// Whether this process consumes check jobs from RabbitMQ (needs `amqp`).
    pub consume_jobs: bool,
    /// Whether this process feeds events from RabbitMQ to local subscribers (needs `amqp`).
    pub relay_events: bool,
    /// RabbitMQ, for distributed mode; `None` keeps everything in-process.
    pub amqp: Option<amqp::AmqpConfig>,
    /// The target policy and trusted roots of every check.
    pub checks: CheckerSettings,
}

/// Why a manual check failed.
#[derive(Debug, thiserror::Error)]
pub enum RunCheckError {
    #[error("monitor {0} not found")]
    NotFound(i64),
    #[error("monitor {0} is a PUSH monitor")]
    Pushed(i64),
    #[error(transparent)]
    Database(#[from] store::Error),
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// The running worker of one process.
#[derive(Clone)]
pub struct Engine {
    db: Database,
    checker: Checker,
    store: ResultWriter,
    events: EventBus,
    calendar: domain::maintenance::Calendar,
}

/// Handles for stopping an [`Engine`] in order.
pub struct EngineTasks {
    stop_scheduling: CancellationToken,
    stop_store: CancellationToken,
    stop_forwarding: CancellationToken,
    checks: TaskTracker,
    background: Vec<JoinHandle<()>>,
    store: JoinHandle<()>,
    forwarder: Option<JoinHandle<()>>,
}

impl Engine {
    /// Starts the result writer and whatever else `config` asks for: each piece of a
    /// process's topology has one builder in [`roles`].
    pub fn start(
        db: Database,
        config: &EngineConfig,
        calendar: domain::maintenance::Calendar,
    ) -> anyhow::Result<(Self, ScheduleNotifier, EngineTasks)> {
        let checker = Checker::new(&config.checks)?;
        let stop_store = CancellationToken::new();
        let stop_forwarding = CancellationToken::new();
        let publisher = config
            .amqp
            .as_ref()
            .map(|amqp| Arc::new(amqp::Publisher::new(amqp.clone(), stop_forwarding.clone())));
        let (events, forwarder) = roles::event_bus(config, publisher.as_ref(), &stop_forwarding);
        // Without RabbitMQ this process runs every check, so it stores every result (another
        // process writing too costs rounds, never correctness).
        let (store, store_task) = ResultWriter::start(
            &db,
            config.amqp.is_none(),
            events.clone(),
            calendar.clone(),
            stop_store.clone(),
        )?;
        let mut parts = roles::Parts {
            db: db.clone(),
            checker: checker.clone(),
            store: store.clone(),
            stop: CancellationToken::new(),
            checks: TaskTracker::new(),
            background: Vec::new(),
        };
        if let (Some(amqp), true) = (&config.amqp, config.relay_events) {
            parts.event_relay(amqp, &events);
        }
        let notify_channel = store::notify_channel(
            config
                .amqp
                .as_ref()
                .map_or("monitor_manager", |a| a.prefix.as_str()),
        );
        let is_postgres = db.backend() == Backend::Postgres;
        let notifier = match (config.scheduling, &publisher) {
            (Scheduling::InProcess, None) => parts.local_shards(config)?,
            (Scheduling::InProcess, Some(publisher)) => {
                parts.publishing_scheduler(publisher, config.check_concurrency)
            }
            (Scheduling::Leases, publisher) => {
                let publisher = publisher
                    .clone()
                    .ok_or_else(|| anyhow::anyhow!("the lease scheduler needs RABBITMQ_URL"))?;
                parts.lease_scheduler(publisher, notify_channel)?
            }
            (Scheduling::Off, _) if is_postgres => {
                ScheduleNotifier::postgres(db.clone(), notify_channel)
            }
            (Scheduling::Off, _) => ScheduleNotifier::detached(),
        };
        if config.consume_jobs {
            let amqp = config
                .amqp
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("consuming check jobs needs RABBITMQ_URL"))?;
            parts.job_consumer(amqp, config.check_concurrency);
        }
        let roles::Parts {
            stop: stop_scheduling,
            checks,
            background,
            ..
        } = parts;
        let engine = Self {
            db,
            checker,
            store,
            events,
            calendar,
        };
        let tasks = EngineTasks {
            stop_scheduling,
            stop_store,
            stop_forwarding,
            checks,
            background,
            store: store_task,
            forwarder,
        };
        Ok((engine, notifier, tasks))
    }

    /// The maintenance windows this process goes by.
    pub fn calendar(&self) -> &domain::maintenance::Calendar {
        &self.calendar
    }

    /// Checks a monitor now, stores the result and publishes it like any other; gives back
    /// its event (the result and the monitor after it).
    pub async fn run_check(&self, monitor_id: i64) -> Result<Arc<CheckEvent>, RunCheckError> {
        let monitor = self
            .db
            .monitor_schedule(monitor_id)
            .await?
            .ok_or(RunCheckError::NotFound(monitor_id))?;
        if monitor
            .spec
            .as_ref()
            .is_some_and(|s| s.kind == domain::MonitorKind::Push)
        {
            return Err(RunCheckError::Pushed(monitor_id));
        }
        let timeout = domain::slot::timeout_of(monitor.timeout_seconds);
        let outcome = self
            .checker
            .check(&monitor.url, monitor.spec.as_ref(), timeout)
            .await;
        match self.store.store_slot(monitor_id, outcome, None).await {
            Ok(Some(event)) => Ok(event),
            Ok(None) => Err(WriteError::Database.into()),
            Err(WriteError::MonitorGone(id)) => Err(RunCheckError::NotFound(id)),
            Err(err) => Err(err.into()),
        }
    }

    /// Stores a push's result like any other (a monitor no longer the active PUSH monitor of
    /// the token is `NotFound`), the monitor next due at `next_due`.
    pub async fn store_push(
        &self,
        monitor_id: i64,
        outcome: domain::CheckOutcome,
        token: &str,
        next_due: chrono::DateTime<chrono::Utc>,
    ) -> Result<CheckResult, RunCheckError> {
        let push = store::Pushed {
            token: token.to_owned(),
            next_due,
        };
        match self.store.store_push(monitor_id, outcome, push).await {
            Ok(record) => Ok(record),
            Err(WriteError::MonitorGone(id)) => Err(RunCheckError::NotFound(id)),
            Err(err) => Err(err.into()),
        }
    }

    /// Which addresses checks may reach.
    pub fn policy(&self) -> &domain::TargetPolicy {
        self.checker.policy()
    }

    /// A subscriber to every stored check this process hears of.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<CheckEvent>> {
        self.events.subscribe()
    }

    /// A subscriber to one monitor's stored checks.
    pub fn subscribe_to(&self, monitor_id: i64) -> broadcast::Receiver<Arc<CheckEvent>> {
        self.events.subscribe_to(monitor_id)
    }
}

impl EngineTasks {
    /// The part of a shutdown grace kept for writing queued results: work in flight gets
    /// the rest.
    pub fn write_margin(grace: Duration) -> Duration {
        Duration::from_secs(1).min(grace / 2)
    }

    /// Stops scheduling and consuming, lets checks in flight finish while `alongside` runs
    /// (the API's requests in flight, whose checks need the store), then writes what is
    /// queued, sends the last events, and returns by `deadline`. Checks still running
    /// [`Self::write_margin`] before it are abandoned.
    pub async fn shutdown<T>(
        self,
        deadline: tokio::time::Instant,
        grace: Duration,
        alongside: impl std::future::Future<Output = T>,
    ) -> T {
        use tokio::time::timeout_at;
        let checks_deadline = deadline - Self::write_margin(grace);
        self.stop_scheduling.cancel();
        self.checks.close();
        let checks = async {
            if timeout_at(checks_deadline, self.checks.wait())
                .await
                .is_err()
            {
                tracing::warn!(
                    running = self.checks.len(),
                    "checks still running after the shutdown grace period; abandoning them"
                );
            }
            for task in self.background {
                if timeout_at(checks_deadline, task).await.is_err() {
                    tracing::warn!("a background task did not stop in time");
                }
            }
        };
        let (output, ()) = tokio::join!(alongside, checks);
        self.stop_store.cancel();
        if timeout_at(deadline, self.store).await.is_err() {
            tracing::warn!("queued results were not all written within the shutdown grace period");
        }
        self.stop_forwarding.cancel();
        if let Some(forwarder) = self.forwarder {
            let _ = timeout_at(deadline, forwarder).await;
        }
        output
    }
}
