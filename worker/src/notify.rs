//! How the rest of the process tells schedulers that a monitor was created, changed or
//! deleted, so the change takes effect at once: over a channel to the in-process scheduler,
//! or with PostgreSQL `NOTIFY` to lease schedulers in other processes.

use store::Database;
use tokio::sync::mpsc;

#[derive(Clone, Default)]
enum Target {
    #[default]
    Nobody,
    /// In-process schedulers (one, or several that each own the monitors whose id is their
    /// index modulo their number; see [`crate::shard::shard_of`]).
    Shards(Vec<mpsc::UnboundedSender<i64>>),
    Postgres {
        db: Database,
        channel: String,
    },
}

/// A cheap, cloneable handle that forwards "monitor N changed" to the schedulers.
#[derive(Clone, Default)]
pub struct ScheduleNotifier {
    target: Target,
}

impl ScheduleNotifier {
    /// A notifier that tells nobody.
    pub fn detached() -> Self {
        Self::default()
    }

    /// A notifier and the receiving end for an in-process scheduler.
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<i64>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Self {
                target: Target::Shards(vec![tx]),
            },
            rx,
        )
    }

    /// A notifier and one receiving end per in-process scheduler shard (at least one).
    pub fn sharded(shards: usize) -> (Self, Vec<mpsc::UnboundedReceiver<i64>>) {
        let (senders, receivers) = (0..shards.max(1))
            .map(|_| mpsc::unbounded_channel())
            .unzip();
        (
            Self {
                target: Target::Shards(senders),
            },
            receivers,
        )
    }

    /// A notifier that wakes lease schedulers listening on `channel`.
    pub fn postgres(db: Database, channel: String) -> Self {
        Self {
            target: Target::Postgres { db, channel },
        }
    }

    /// Says that the monitor with this id was created, changed or deleted.
    pub fn changed(&self, monitor_id: i64) {
        match &self.target {
            Target::Nobody => {}
            // A closed channel means the scheduler is shutting down: nothing left to tell.
            Target::Shards(shards) => {
                let _ = shards[crate::shard::shard_of(monitor_id, shards.len())].send(monitor_id);
            }
            Target::Postgres { db, channel } => db.notify_changed(channel, monitor_id),
        }
    }
}
