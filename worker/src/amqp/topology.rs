//! Where the broker is, what our names are, and their durable declaration.

use std::time::Duration;

use lapin::{
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable},
    Channel, Connection, ConnectionProperties, ExchangeKind,
};
use tokio_util::sync::CancellationToken;

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
