//! How the rest of the process tells the scheduler that a monitor was created, changed or
//! deleted, so the change takes effect at once.

use tokio::sync::mpsc;

/// A cheap, cloneable handle that forwards "monitor N changed" to the scheduler of this
/// process. A process without a scheduler (the API-only role) holds a detached one.
#[derive(Clone, Debug, Default)]
pub struct ScheduleNotifier {
    tx: Option<mpsc::UnboundedSender<i64>>,
}

impl ScheduleNotifier {
    /// A notifier that tells nobody (no scheduler runs in this process).
    pub fn detached() -> Self {
        Self { tx: None }
    }

    /// A notifier and the receiving end for a scheduler.
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<i64>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx: Some(tx) }, rx)
    }

    /// Says that the monitor with this id was created, changed or deleted.
    pub fn changed(&self, monitor_id: i64) {
        if let Some(tx) = &self.tx {
            // A closed channel means the scheduler is shutting down: nothing left to tell.
            let _ = tx.send(monitor_id);
        }
    }
}
