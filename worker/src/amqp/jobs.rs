//! Check jobs: published by the schedulers, consumed by the workers, acked once stored.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use domain::{CheckSpec, Slot};
use futures_util::StreamExt;
use lapin::{
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
    },
    types::FieldTable,
    Connection,
};
use serde::{Deserialize, Serialize};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{connect, declare, AmqpConfig, ConsumerLost, Publisher};
use crate::{
    checker::Checker,
    scheduler::{CheckRunner, Job},
    writer::{ResultWriter, WriteError},
};

/// The job format this version writes and reads. Version 1 had no spec (and no `v`); a
/// job of a later version, or whose spec has a field this version does not know, is
/// dead-lettered with the reason rather than checked as something else.
pub const JOB_VERSION: u32 = 2;

/// A check job on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobMessage {
    #[serde(default = "version_one")]
    pub v: u32,
    pub monitor_id: i64,
    pub url: String,
    pub timeout_ms: u64,
    /// The slot's due time and the next one's.
    pub due: DateTime<Utc>,
    pub next: DateTime<Utc>,
    /// The check's options; absent for the plain check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<CheckSpec>,
}

fn version_one() -> u32 {
    1
}

impl From<&Job> for JobMessage {
    fn from(job: &Job) -> Self {
        Self {
            v: JOB_VERSION,
            monitor_id: job.monitor_id,
            url: job.target.as_str().to_owned(),
            timeout_ms: u64::try_from(job.timeout.as_millis()).unwrap_or(u64::MAX),
            due: job.slot.due,
            next: job.slot.next,
            spec: job.target.spec().cloned(),
        }
    }
}

/// Reads a job, or says why this worker cannot run it.
pub fn read_job(data: &[u8]) -> Result<JobMessage, String> {
    #[derive(Deserialize)]
    struct Version {
        #[serde(default = "version_one")]
        v: u32,
    }
    let version = serde_json::from_slice::<Version>(data)
        .map_err(|e| format!("malformed check job: {e}"))?
        .v;
    if version > JOB_VERSION {
        return Err(format!(
            "check job version {version} is newer than this worker reads ({JOB_VERSION}); upgrade the worker"
        ));
    }
    serde_json::from_slice(data)
        .map_err(|e| format!("check job not understood by this worker version (upgrade it): {e}"))
}

/// Runs a due check by publishing it as a job (the in-memory scheduler's distributed runner).
#[derive(Clone)]
pub struct AmqpRunner {
    pub publisher: Arc<Publisher>,
}

impl CheckRunner for AmqpRunner {
    /// Publishes the job; a worker checks it, and its store moves the stored due time of a
    /// retry (which the lease scheduler reads), so this scheduler asks for none.
    async fn run(&self, job: Job) -> Option<DateTime<Utc>> {
        let message = JobMessage::from(&job);
        let mut delay = Duration::from_millis(200);
        // Keep trying while a worker would still run it: a later job would be skipped anyway.
        while Utc::now() < job.slot.latest_start() {
            match self
                .publisher
                .publish_jobs(std::slice::from_ref(&message))
                .await
            {
                Ok(()) => return None,
                Err(err) => {
                    tracing::warn!(monitor.id = job.monitor_id, error = %err, "could not publish a check job; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
        tracing::warn!(
            monitor.id = job.monitor_id,
            "check job not published in the first half of its slot; skipped"
        );
        None
    }
}

/// Consumes check jobs: runs each, stores the result, acks. Returns when `stop` fires; the
/// jobs in flight are tracked by `tracker` and ack themselves when done.
pub async fn consume_jobs(
    config: AmqpConfig,
    checker: Checker,
    store: ResultWriter,
    prefetch: u16,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    while let Some(conn) = connect(&config, &stop).await {
        let result =
            consume_once(&conn, &config, &checker, &store, prefetch, &stop, &tracker).await;
        match result {
            Ok(()) => {
                // Let the jobs in flight ack over this connection before closing it.
                tracker.close();
                tracker.wait().await;
                let _ = conn.close(200, "shutting down".into()).await;
                return;
            }
            Err(err) => tracing::warn!(error = %err, "job consumer lost RabbitMQ; reconnecting"),
        }
    }
}

async fn consume_once(
    conn: &Connection,
    config: &AmqpConfig,
    checker: &Checker,
    store: &ResultWriter,
    prefetch: u16,
    stop: &CancellationToken,
    tracker: &TaskTracker,
) -> Result<(), ConsumerLost> {
    let channel = conn.create_channel().await?;
    declare(&channel, config).await?;
    channel
        .basic_qos(prefetch.max(1), BasicQosOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            config.jobs_queue().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::info!(prefetch, "consuming check jobs from RabbitMQ");
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            delivery = consumer.next() => match delivery {
                Some(Ok(delivery)) => {
                    let checker = checker.clone();
                    let store = store.clone();
                    tracker.spawn(async move { handle_job(delivery, checker, store).await });
                }
                Some(Err(err)) => return Err(ConsumerLost::Amqp(err)),
                None => return Err(ConsumerLost::Ended),
            }
        }
    }
}

async fn handle_job(delivery: lapin::message::Delivery, checker: Checker, store: ResultWriter) {
    let job: JobMessage = match read_job(&delivery.data) {
        Ok(job) => job,
        Err(reason) => {
            tracing::warn!(%reason, "check job dead-lettered");
            let _ = delivery.reject(BasicRejectOptions { requeue: false }).await;
            return;
        }
    };
    let slot = Slot {
        due: job.due,
        next: job.next,
    };
    if Utc::now() >= slot.latest_start() {
        // Workers were away (or the broker was): skip the slot rather than check late, next to
        // the following slot's check, in a burst.
        tracing::debug!(monitor.id = job.monitor_id, "stale check job skipped");
        let _ = delivery.ack(BasicAckOptions::default()).await;
        return;
    }
    let timeout = domain::slot::timeout_of_ms(job.timeout_ms);
    let outcome = checker.check(&job.url, job.spec.as_ref(), timeout).await;
    match store.store_slot(job.monitor_id, outcome, Some(slot)).await {
        Ok(_) | Err(WriteError::MonitorGone(_)) => {
            let _ = delivery.ack(BasicAckOptions::default()).await;
        }
        Err(err) => {
            tracing::warn!(monitor.id = job.monitor_id, error = %err, "check result not stored; job returned to the queue");
            let _ = delivery
                .nack(BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                })
                .await;
        }
    }
}
