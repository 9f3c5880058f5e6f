//! Distributed mode over RabbitMQ (lapin).
//!
//! Topology, every name under a configurable prefix (default `monitor_manager`):
//! - `PREFIX.checks`: a durable quorum queue of check jobs. Schedulers publish persistent
//!   messages with publisher confirms; workers consume with manual acks and a bounded
//!   prefetch and ack only once the result is stored. A message delivered more than
//!   [`DELIVERY_LIMIT`] times (it keeps failing) is dead-lettered instead of looping.
//! - `PREFIX.dead-letter` (fanout) -> `PREFIX.checks.dead`: where such messages end.
//! - `PREFIX.events` (fanout): every stored check. Each API process binds its own exclusive,
//!   auto-deleted queue and feeds the events to its local subscribers.
//!
//! Every long-lived piece reconnects with backoff when the broker goes away and declares its
//! topology again; nothing here panics on what arrives over the wire.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use domain::Slot;
use futures_util::StreamExt;
use lapin::{
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions,
        BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
        QueueBindOptions, QueueDeclareOptions,
    },
    types::{AMQPValue, FieldTable},
    BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Mutex};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    checker::Checker,
    events::{CheckEvent, EventBus},
    scheduler::{CheckRunner, Job},
    store::{ResultStore, StoreError},
};

/// Deliveries of one job before it is dead-lettered.
pub const DELIVERY_LIMIT: i64 = 5;

/// Where the broker is and how our names start.
#[derive(Debug, Clone)]
pub struct AmqpConfig {
    pub url: String,
    pub prefix: String,
}

impl AmqpConfig {
    pub fn jobs_queue(&self) -> String {
        format!("{}.checks", self.prefix)
    }
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dead-letter", self.prefix)
    }
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.checks.dead", self.prefix)
    }
    pub fn events_exchange(&self) -> String {
        format!("{}.events", self.prefix)
    }
}

/// A check job on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobMessage {
    pub monitor_id: i64,
    pub url: String,
    pub timeout_ms: u64,
    /// The slot's due time and the next one's.
    pub due: DateTime<Utc>,
    pub next: DateTime<Utc>,
}

impl From<&Job> for JobMessage {
    fn from(job: &Job) -> Self {
        Self {
            monitor_id: job.monitor_id,
            url: job.url.as_str().to_owned(),
            timeout_ms: u64::try_from(job.timeout.as_millis()).unwrap_or(u64::MAX),
            due: job.slot.due,
            next: job.slot.next,
        }
    }
}

/// Why a consumer stopped consuming.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerLost {
    #[error(transparent)]
    Amqp(#[from] lapin::Error),
    #[error("the broker ended the consumer")]
    Ended,
}

/// Connects, retrying with backoff (0.2 s doubling to 5 s) until it works or `stop` fires.
pub async fn connect(config: &AmqpConfig, stop: &CancellationToken) -> Option<Connection> {
    let mut delay = Duration::from_millis(200);
    loop {
        match Connection::connect(&config.url, ConnectionProperties::default()).await {
            Ok(conn) => return Some(conn),
            Err(err) => {
                tracing::warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "cannot reach RabbitMQ; retrying");
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return None,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Declares the durable topology (idempotent).
pub async fn declare(channel: &Channel, config: &AmqpConfig) -> lapin::Result<()> {
    let durable_exchange = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let durable_queue = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            config.dead_letter_exchange().into(),
            ExchangeKind::Fanout,
            durable_exchange,
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(
            config.dead_letter_queue().into(),
            durable_queue,
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            config.dead_letter_queue().into(),
            config.dead_letter_exchange().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    args.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongLongInt(DELIVERY_LIMIT),
    );
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(config.dead_letter_exchange().into()),
    );
    channel
        .queue_declare(config.jobs_queue().into(), durable_queue, args)
        .await?;
    channel
        .exchange_declare(
            config.events_exchange().into(),
            ExchangeKind::Fanout,
            durable_exchange,
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// Publishes with confirms over one channel, reconnecting lazily after a failure.
pub struct Publisher {
    config: AmqpConfig,
    stop: CancellationToken,
    state: Mutex<Option<(Connection, Channel)>>,
}

impl Publisher {
    pub fn new(config: AmqpConfig, stop: CancellationToken) -> Self {
        Self {
            config,
            stop,
            state: Mutex::new(None),
        }
    }

    /// Publishes every job to the jobs queue and returns once the broker confirmed them all.
    pub async fn publish_jobs(&self, jobs: &[JobMessage]) -> Result<(), String> {
        let payloads: Vec<Vec<u8>> = jobs
            .iter()
            .map(|job| serde_json::to_vec(job).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        self.publish("", &self.config.jobs_queue(), &payloads, 2)
            .await
    }

    /// Publishes check events to the events exchange and waits for the confirms.
    pub async fn publish_events(&self, events: &[Arc<CheckEvent>]) -> Result<(), String> {
        let payloads: Vec<Vec<u8>> = events
            .iter()
            .map(|event| serde_json::to_vec(&**event).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        self.publish(&self.config.events_exchange(), "", &payloads, 1)
            .await
    }

    async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        payloads: &[Vec<u8>],
        delivery_mode: u8,
    ) -> Result<(), String> {
        let mut state = self.state.lock().await;
        let result = async {
            if state
                .as_ref()
                .is_none_or(|(conn, ch)| !conn.status().connected() || !ch.status().connected())
            {
                let conn = connect(&self.config, &self.stop)
                    .await
                    .ok_or_else(|| "shutting down".to_owned())?;
                let channel = conn.create_channel().await.map_err(|e| e.to_string())?;
                declare(&channel, &self.config)
                    .await
                    .map_err(|e| e.to_string())?;
                channel
                    .confirm_select(ConfirmSelectOptions::default())
                    .await
                    .map_err(|e| e.to_string())?;
                *state = Some((conn, channel));
            }
            let (_, channel) = state.as_ref().ok_or("no channel")?;
            let properties = BasicProperties::default()
                .with_delivery_mode(delivery_mode)
                .with_content_type("application/json".into());
            let mut confirms = Vec::with_capacity(payloads.len());
            for payload in payloads {
                confirms.push(
                    channel
                        .basic_publish(
                            exchange.into(),
                            routing_key.into(),
                            BasicPublishOptions::default(),
                            payload,
                            properties.clone(),
                        )
                        .await
                        .map_err(|e| e.to_string())?,
                );
            }
            for confirm in confirms {
                let confirmation = confirm.await.map_err(|e| e.to_string())?;
                if confirmation.is_nack() {
                    return Err("the broker refused a message".to_owned());
                }
            }
            Ok(())
        }
        .await;
        if result.is_err() {
            // Start over with a fresh connection next time.
            *state = None;
        }
        result
    }
}

/// Runs a due check by publishing it as a job (the in-memory scheduler's distributed runner).
#[derive(Clone)]
pub struct AmqpRunner {
    pub publisher: Arc<Publisher>,
}

impl CheckRunner for AmqpRunner {
    async fn run(&self, job: Job) {
        let message = JobMessage::from(&job);
        let mut delay = Duration::from_millis(200);
        // Keep trying while a worker would still run it: a later job would be skipped anyway.
        while Utc::now() < job.slot.latest_start() {
            match self
                .publisher
                .publish_jobs(std::slice::from_ref(&message))
                .await
            {
                Ok(()) => return,
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
    }
}

/// Forwards locally stored check events to the events exchange until `stop` fires and what
/// is queued has been sent.
pub async fn forward_events(
    publisher: Arc<Publisher>,
    mut events: mpsc::Receiver<Arc<CheckEvent>>,
    stop: CancellationToken,
) {
    let mut batch = Vec::with_capacity(256);
    loop {
        tokio::select! {
            biased;
            received = events.recv_many(&mut batch, 256) => {
                if received == 0 {
                    return;
                }
            }
            _ = stop.cancelled() => {
                while let Ok(event) = events.try_recv() {
                    batch.push(event);
                }
                if !batch.is_empty() {
                    if let Err(err) = publisher.publish_events(&batch).await {
                        tracing::warn!(error = %err, events = batch.len(), "live events not sent at shutdown");
                    }
                }
                return;
            }
        }
        let mut delay = Duration::from_millis(200);
        for attempt in 1..=10 {
            match publisher.publish_events(&batch).await {
                Ok(()) => break,
                Err(err) if attempt == 10 => {
                    tracing::error!(error = %err, events = batch.len(), "live events dropped: RabbitMQ kept failing (results are stored)");
                }
                Err(err) => {
                    tracing::warn!(error = %err, "could not publish live events; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        batch.clear();
    }
}

/// Feeds every event on the exchange to this process's local subscribers, until `stop`.
pub async fn relay_events(config: AmqpConfig, bus: EventBus, stop: CancellationToken) {
    while let Some(conn) = connect(&config, &stop).await {
        match relay_once(&conn, &config, &bus, &stop).await {
            Ok(()) => {
                let _ = conn.close(200, "shutting down".into()).await;
                return;
            }
            Err(err) => tracing::warn!(error = %err, "event relay lost RabbitMQ; reconnecting"),
        }
    }
}

async fn relay_once(
    conn: &Connection,
    config: &AmqpConfig,
    bus: &EventBus,
    stop: &CancellationToken,
) -> Result<(), ConsumerLost> {
    let channel = conn.create_channel().await?;
    declare(&channel, config).await?;
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            queue.name().clone(),
            config.events_exchange().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut consumer = channel
        .basic_consume(
            queue.name().clone(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    tracing::info!("relaying live events from RabbitMQ");
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            delivery = consumer.next() => match delivery {
                Some(Ok(delivery)) => match serde_json::from_slice::<CheckEvent>(&delivery.data) {
                    Ok(event) => bus.publish_local(Arc::new(event)),
                    Err(err) => tracing::warn!(error = %err, "ignored a malformed event message"),
                },
                Some(Err(err)) => return Err(ConsumerLost::Amqp(err)),
                None => return Err(ConsumerLost::Ended),
            }
        }
    }
}

/// Consumes check jobs: runs each, stores the result, acks. Returns when `stop` fires; the
/// jobs in flight are tracked by `tracker` and ack themselves when done.
pub async fn consume_jobs(
    config: AmqpConfig,
    checker: Checker,
    store: ResultStore,
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
    store: &ResultStore,
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

async fn handle_job(delivery: lapin::message::Delivery, checker: Checker, store: ResultStore) {
    let job: JobMessage = match serde_json::from_slice(&delivery.data) {
        Ok(job) => job,
        Err(err) => {
            tracing::warn!(error = %err, "malformed check job dead-lettered");
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
    let outcome = checker.check(&job.url, timeout).await;
    match store.store_slot(job.monitor_id, outcome, Some(slot)).await {
        Ok(_) | Err(StoreError::MonitorGone(_)) => {
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
