//! The event channel: every stored check is published once, with the monitor as it stands
//! after the check and the status it had before, so subscribers can tell status changes.
//!
//! It is a tokio broadcast channel: publishing never waits for subscribers, and a subscriber
//! that falls more than the channel's capacity behind is told how many events it missed
//! (`RecvError::Lagged`) instead of being fed stale data.
//!
//! Subscribers to one monitor get their own channel per monitor, so an event wakes only the
//! subscribers that want it: a thousand dashboards each watching one monitor cost one
//! delivery per event, not a thousand wake-ups to filter it out.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use tokio::sync::{broadcast, mpsc};

use domain::CheckEvent;

/// Publishes check events to every subscriber in this process, or, in distributed mode, to
/// the broker, which brings them back to the subscribers of every API process.
#[derive(Clone, Debug)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<CheckEvent>>,
    /// One channel per monitor that has subscribers of its own.
    topics: Arc<Mutex<HashMap<i64, broadcast::Sender<Arc<CheckEvent>>>>>,
    /// Capacity of each monitor's channel.
    topic_capacity: usize,
    remote: Option<mpsc::Sender<Arc<CheckEvent>>>,
}

/// Most events a one-monitor subscriber may fall behind (a monitor makes at most one result
/// per second plus manual checks; each slot of a channel costs memory up front).
pub const TOPIC_CAPACITY: usize = 64;

/// Events waiting to be forwarded to the broker before new ones are dropped.
pub const REMOTE_QUEUE: usize = 50_000;

impl EventBus {
    /// A bus whose subscribers may fall up to `capacity` events behind.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let (tx, _) = broadcast::channel(capacity);
        Self {
            tx,
            topics: Arc::default(),
            topic_capacity: capacity.min(TOPIC_CAPACITY),
            remote: None,
        }
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
        {
            let mut topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
            let id = event.result.monitor_id;
            if let Some(topic) = topics.get(&id) {
                if topic.send(event.clone()).is_err() {
                    // Its last subscriber has gone.
                    topics.remove(&id);
                }
            }
        }
        let _ = self.tx.send(event);
    }

    /// A new subscriber that sees every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<CheckEvent>> {
        self.tx.subscribe()
    }

    /// A new subscriber that sees the events of one monitor published from now on.
    pub fn subscribe_to(&self, monitor_id: i64) -> broadcast::Receiver<Arc<CheckEvent>> {
        let mut topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        topics
            .entry(monitor_id)
            .or_insert_with(|| broadcast::channel(self.topic_capacity).0)
            .subscribe()
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use domain::{CheckResult, CheckStatus, Monitor};
    use tokio::sync::broadcast::error::TryRecvError;

    use super::*;

    fn event(monitor_id: i64, id: i64) -> Arc<CheckEvent> {
        let now = Utc::now();
        Arc::new(CheckEvent {
            result: CheckResult {
                id,
                monitor_id,
                seq: 1,
                status: CheckStatus::Up,
                status_code: Some(200),
                response_time_ms: 1,
                error: None,
                checked_at: now,
                degraded: false,
                timings: domain::Timings::default(),
                tls: None,
                assertion_results: Vec::new(),
                in_maintenance: false,
            },
            monitor: Monitor {
                id: monitor_id,
                name: "m".into(),
                url: "http://127.0.0.1/".into(),
                timeout_seconds: 5,
                interval_seconds: 60,
                active: true,
                created_at: now,
                updated_at: now,
                last_checked_at: Some(now),
                last_status: Some(CheckStatus::Up),
                kind: domain::MonitorKind::Http,
                push_token: None,
                check: domain::CheckSpec::default(),
                failure_threshold: 1,
                success_threshold: 1,
                retry_interval_seconds: None,
                reminder_interval_minutes: None,
                notify_degraded: false,
                state: domain::MonitorState::Up,
            },
            previous: None,
            change: None,
            incident: None,
        })
    }

    #[test]
    fn a_monitor_subscriber_gets_only_its_monitor_and_the_firehose_gets_all() {
        let bus = EventBus::new(16);
        let mut all = bus.subscribe();
        let mut one = bus.subscribe_to(1);
        let mut two = bus.subscribe_to(2);
        for (monitor, id) in [(1, 10), (2, 11), (3, 12), (1, 13)] {
            bus.publish(event(monitor, id));
        }
        let ids = |rx: &mut broadcast::Receiver<Arc<CheckEvent>>| {
            std::iter::from_fn(|| rx.try_recv().ok().map(|e| e.result.id)).collect::<Vec<_>>()
        };
        assert_eq!(ids(&mut all), [10, 11, 12, 13]);
        assert_eq!(ids(&mut one), [10, 13]);
        assert_eq!(ids(&mut two), [11]);
    }

    #[test]
    fn a_monitor_channel_is_dropped_with_its_last_subscriber() {
        let bus = EventBus::new(16);
        let first = bus.subscribe_to(7);
        let mut second = bus.subscribe_to(7);
        drop(first);
        bus.publish(event(7, 1));
        assert_eq!(second.try_recv().map(|e| e.result.id).ok(), Some(1));
        drop(second);
        bus.publish(event(7, 2));
        assert!(bus.topics.lock().unwrap().is_empty());
        // A new subscriber after that starts a fresh channel and sees new events only.
        let mut third = bus.subscribe_to(7);
        assert!(matches!(third.try_recv(), Err(TryRecvError::Empty)));
        bus.publish(event(7, 3));
        assert_eq!(third.try_recv().map(|e| e.result.id).ok(), Some(3));
    }
}
