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
//! One module per concern: `topology` (names, declaration, connecting), `publisher`
//! (confirmed publishing), `jobs` (check jobs published and consumed) and `events` (live
//! events and their versioned wire type).
//!
//! Every long-lived piece reconnects with backoff when the broker goes away and declares its
//! topology again; nothing here panics on what arrives over the wire.

mod events;
mod jobs;
mod publisher;
mod topology;

pub use events::{forward_events, relay_events};
pub use jobs::{consume_jobs, read_job, AmqpRunner, JobMessage, JOB_VERSION};
pub use publisher::Publisher;
pub use topology::{connect, declare, AmqpConfig, DELIVERY_LIMIT};

/// Why a consumer stopped consuming.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerLost {
    #[error(transparent)]
    Amqp(#[from] lapin::Error),
    #[error("the broker ended the consumer")]
    Ended,
}
