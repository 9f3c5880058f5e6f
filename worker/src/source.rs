//! Where schedulers read monitors from: the database, one shard of it queried on the runtime
//! that owns the pool, or a fixed list in tests.

use std::{future::Future, sync::Arc};

use domain::MonitorSchedule;
use store::{Database, Error as DbErr};
use tokio::{runtime::Handle, task::JoinHandle};

use crate::shard::shard_of;

/// Where the scheduler reads monitors from (the database; a fixed list in tests).
pub trait MonitorSource: Send + Sync + 'static {
    /// Every active monitor.
    fn active(&self) -> impl Future<Output = Result<Vec<MonitorSchedule>, DbErr>> + Send;
    /// The active monitors of shard `shard` of `shards` (by id, as [`shard_of`] shares them
    /// out). By default every active monitor is read and the others are dropped.
    fn active_in_shard(
        &self,
        shard: usize,
        shards: usize,
    ) -> impl Future<Output = Result<Vec<MonitorSchedule>, DbErr>> + Send {
        async move {
            let mut rows = self.active().await?;
            rows.retain(|row| shard_of(row.id, shards) == shard);
            Ok(rows)
        }
    }
    /// The monitors among `ids` that exist.
    fn get_many(
        &self,
        ids: &[i64],
    ) -> impl Future<Output = Result<Vec<MonitorSchedule>, DbErr>> + Send;
}

impl MonitorSource for Database {
    async fn active(&self) -> Result<Vec<MonitorSchedule>, DbErr> {
        self.active_schedules(None).await
    }

    /// Filtered by the database: each check thread reads only its own shard's rows.
    async fn active_in_shard(
        &self,
        shard: usize,
        shards: usize,
    ) -> Result<Vec<MonitorSchedule>, DbErr> {
        self.active_schedules(Some((shard, shards))).await
    }

    async fn get_many(&self, ids: &[i64]) -> Result<Vec<MonitorSchedule>, DbErr> {
        self.schedules(ids).await
    }
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
