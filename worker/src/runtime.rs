//! The checks' own threads.
//!
//! The in-process scheduler and the checks it starts run on single-threaded runtimes of
//! their own, one per core by default, each scheduling the monitors of its shard (by id).
//!
//! A check is a string of small wake-ups (the scheduler's timer, the connect, the request
//! written, the response, the HTTP client's connection task), and on the shared
//! multi-threaded runtime each of them may wake another parked worker thread to steal the
//! work: a futex call and, on a virtual machine, an interrupt between processors, which can
//! cost as much CPU as the check itself (docs/decisions/001-check-threads.md). On one thread the
//! wake-ups are plain queue pushes; the API, the store and the database pool stay on the main
//! runtime, and the checks reach them through channels. A shard's monitors never move to
//! another thread, so the threads share the load as evenly as the monitors' ids spread their
//! checks (evenly, for any sizeable number of monitors).

use std::{future::Future, sync::Arc};

use domain::MonitorSchedule;
use store::Error as DbErr;
use tokio::{runtime::Handle, sync::oneshot, task::JoinHandle};

use crate::scheduler::MonitorSource;

/// Runs `future` to completion on a new thread named `name`, on a single-threaded runtime
/// of its own. The returned handle (on the calling runtime) completes when it is done; tasks
/// it spawned and left running are dropped with its runtime.
pub fn spawn_on_own_thread(
    name: &str,
    future: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name(name)
        .build()?;
    let (done, finished) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            runtime.block_on(future);
            drop(runtime);
            let _ = done.send(());
        })?;
    Ok(tokio::spawn(async move {
        // An error means the thread panicked; it has stopped either way.
        let _ = finished.await;
    }))
}

/// The shard (of `shards`) that schedules the monitor with this id.
pub fn shard_of(monitor_id: i64, shards: usize) -> usize {
    (monitor_id.unsigned_abs() % shards.max(1) as u64) as usize
}

/// A [`MonitorSource`] for one shard's scheduler: it sees only that shard's monitors, and its
/// queries run on another runtime (the one that owns the database pool, so the pool's
/// connections are never opened on, and tied to, a checks' thread).
pub struct ShardSource<S> {
    source: Arc<S>,
    runtime: Handle,
    shard: usize,
    shards: usize,
}

impl<S> ShardSource<S> {
    /// Shard `shard` of `shards` of `source`, queried on `runtime`.
    pub fn new(source: Arc<S>, runtime: Handle, shard: usize, shards: usize) -> Self {
        Self {
            source,
            runtime,
            shard,
            shards: shards.max(1),
        }
    }
}

impl<S: MonitorSource> MonitorSource for ShardSource<S> {
    async fn active(&self) -> Result<Vec<MonitorSchedule>, DbErr> {
        let source = self.source.clone();
        let (shard, shards) = (self.shard, self.shards);
        joined(
            self.runtime
                .spawn(async move { source.active_in_shard(shard, shards).await }),
        )
        .await
    }

    async fn get_many(&self, ids: &[i64]) -> Result<Vec<MonitorSchedule>, DbErr> {
        let source = self.source.clone();
        let ids = ids.to_vec();
        joined(
            self.runtime
                .spawn(async move { source.get_many(&ids).await }),
        )
        .await
    }
}

async fn joined<T>(task: JoinHandle<Result<T, DbErr>>) -> Result<T, DbErr> {
    task.await
        .map_err(|err| DbErr::Failed(format!("the monitor query did not finish: {err}")))?
}
