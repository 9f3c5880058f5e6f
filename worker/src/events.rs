//! The event channel: every stored check is published once, with the monitor as it stands
//! after the check and the status it had before, so subscribers can tell status changes.
//!
//! It is a tokio broadcast channel: publishing never waits for subscribers, and a subscriber
//! that falls more than the channel's capacity behind is told how many events it missed
//! (`RecvError::Lagged`) instead of being fed stale data.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};

use crate::model::{CheckRecord, CheckStatus};

/// One stored check.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CheckEvent {
    /// The stored result.
    pub result: CheckRecord,
    /// The monitor after this result was applied.
    pub monitor: entity::monitor::Model,
    /// The monitor's status before this result; `None` for its first result.
    pub previous: Option<CheckStatus>,
}

impl CheckEvent {
    /// True for the first result and whenever UP turns DOWN or DOWN turns UP.
    pub fn is_status_change(&self) -> bool {
        self.previous != Some(self.result.status)
    }
}

/// Publishes check events to every subscriber in this process, or, in distributed mode, to
/// the broker, which brings them back to the subscribers of every API process.
#[derive(Clone, Debug)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<CheckEvent>>,
    remote: Option<mpsc::Sender<Arc<CheckEvent>>>,
}

/// Events waiting to be forwarded to the broker before new ones are dropped.
pub const REMOTE_QUEUE: usize = 50_000;

impl EventBus {
    /// A bus whose subscribers may fall up to `capacity` events behind.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self { tx, remote: None }
    }

    /// A bus whose published events go to the returned receiver (to be forwarded to the
    /// broker) instead of straight to local subscribers.
    pub fn with_remote(capacity: usize) -> (Self, mpsc::Receiver<Arc<CheckEvent>>) {
        let (remote, rx) = mpsc::channel(REMOTE_QUEUE);
        let mut bus = Self::new(capacity);
        bus.remote = Some(remote);
        (bus, rx)
    }

    /// Publishes an event; with no subscriber it is simply dropped.
    pub fn publish(&self, event: Arc<CheckEvent>) {
        match &self.remote {
            Some(remote) => {
                if remote.try_send(event).is_err() {
                    tracing::warn!("live event dropped: the broker queue is full");
                }
            }
            None => self.publish_local(event),
        }
    }

    /// Hands an event to this process's subscribers only.
    pub fn publish_local(&self, event: Arc<CheckEvent>) {
        let _ = self.tx.send(event);
    }

    /// A new subscriber that sees events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<CheckEvent>> {
        self.tx.subscribe()
    }
}
