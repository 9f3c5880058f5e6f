//! One builder per piece of a process's topology: the all-in-one check threads, the scheduler
//! that publishes jobs, the lease scheduler, the job consumer, the event bus and its relay.
//! [`crate::Engine::start`] calls those its configuration asks for.

use std::sync::Arc;

use store::{Backend, Database};
use tokio::{sync::Semaphore, task::JoinHandle};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    amqp::{self, AmqpConfig, Publisher},
    lease, runtime,
    scheduler::{self, Scheduler},
    source, Checker, EngineConfig, EventBus, ResultWriter, ScheduleNotifier,
};

/// The event bus: straight to local subscribers, or, with a broker, through it (the returned
/// task forwards the events until `stop`).
pub(crate) fn event_bus(
    config: &EngineConfig,
    publisher: Option<&Arc<Publisher>>,
    stop: &CancellationToken,
) -> (EventBus, Option<JoinHandle<()>>) {
    match publisher {
        Some(publisher) => {
            let (events, outgoing) = EventBus::with_remote(config.event_buffer);
            let forwarder = tokio::spawn(amqp::forward_events(
                publisher.clone(),
                outgoing,
                stop.clone(),
            ));
            (events, Some(forwarder))
        }
        None => (EventBus::new(config.event_buffer), None),
    }
}

/// What the builders share, and the tasks they started.
pub(crate) struct Parts {
    pub(crate) db: Database,
    pub(crate) checker: Checker,
    pub(crate) store: ResultWriter,
    /// Stops scheduling, consuming and relaying.
    pub(crate) stop: CancellationToken,
    /// Checks in flight.
    pub(crate) checks: TaskTracker,
    pub(crate) background: Vec<JoinHandle<()>>,
}

impl Parts {
    /// The all-in-one hot path: scheduling and checking on threads of their own, each with a
    /// shard of the monitors, under one process-wide concurrency cap.
    pub(crate) fn local_shards(
        &mut self,
        config: &EngineConfig,
    ) -> anyhow::Result<ScheduleNotifier> {
        let (notifier, shards) = ScheduleNotifier::sharded(config.check_threads);
        let count = shards.len();
        let source = Arc::new(self.db.clone());
        let limit = Arc::new(Semaphore::new(config.check_concurrency.max(1)));
        for (shard, changes) in shards.into_iter().enumerate() {
            let runner = scheduler::LocalRunner {
                checker: self.checker.clone(),
                store: self.store.clone(),
            };
            let source = source::ShardSource::new(
                source.clone(),
                tokio::runtime::Handle::current(),
                shard,
                count,
            );
            let scheduler = Scheduler::with_limit(source, runner, limit.clone());
            let stop = self.stop.clone();
            let tracker = self.checks.clone();
            self.background.push(runtime::spawn_on_own_thread(
                &format!("checks-{shard}"),
                async move {
                    log_failure(scheduler.run(changes, stop, tracker.clone())).await;
                    // The checks in flight run on this thread's runtime: let them end
                    // (shutdown closes the tracker and bounds the wait).
                    tracker.wait().await;
                },
            )?);
        }
        Ok(notifier)
    }

    /// The in-memory scheduler publishing due checks as jobs (distributed mode on SQLite).
    pub(crate) fn publishing_scheduler(
        &mut self,
        publisher: &Arc<Publisher>,
        concurrency: usize,
    ) -> ScheduleNotifier {
        let (notifier, changes) = ScheduleNotifier::channel();
        let runner = amqp::AmqpRunner {
            publisher: publisher.clone(),
        };
        let scheduler = Scheduler::new(self.db.clone(), runner, concurrency);
        self.background.push(tokio::spawn(log_failure(scheduler.run(
            changes,
            self.stop.clone(),
            self.checks.clone(),
        ))));
        notifier
    }

    /// The lease scheduler on PostgreSQL, woken by `NOTIFY` on `channel`.
    pub(crate) fn lease_scheduler(
        &mut self,
        publisher: Arc<Publisher>,
        channel: String,
    ) -> anyhow::Result<ScheduleNotifier> {
        if self.db.backend() != Backend::Postgres {
            anyhow::bail!(
                "the distributed scheduler needs PostgreSQL (DATABASE_URL=postgres://...)"
            );
        }
        self.background.push(tokio::spawn(lease::run(
            self.db.clone(),
            publisher,
            channel.clone(),
            self.stop.clone(),
        )));
        Ok(ScheduleNotifier::postgres(self.db.clone(), channel))
    }

    /// Consumes check jobs, at most `concurrency` unacked at once.
    pub(crate) fn job_consumer(&mut self, amqp: &AmqpConfig, concurrency: usize) {
        let prefetch = u16::try_from(concurrency).unwrap_or(u16::MAX);
        self.background.push(tokio::spawn(amqp::consume_jobs(
            amqp.clone(),
            self.checker.clone(),
            self.store.clone(),
            prefetch,
            self.stop.clone(),
            self.checks.clone(),
        )));
    }

    /// Feeds the broker's live events to this process's subscribers.
    pub(crate) fn event_relay(&mut self, amqp: &AmqpConfig, events: &EventBus) {
        self.background.push(tokio::spawn(amqp::relay_events(
            amqp.clone(),
            events.clone(),
            self.stop.clone(),
        )));
    }
}

async fn log_failure(run: impl std::future::Future<Output = Result<(), store::Error>>) {
    if let Err(err) = run.await {
        tracing::error!(error = %err, "scheduler stopped: it could not load the monitors");
    }
}
