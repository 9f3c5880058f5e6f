//! Shards: monitors shared out by id among check threads, store writers and schedulers.

/// The shard (of `shards`) that schedules the monitor with this id.
pub fn shard_of(monitor_id: i64, shards: usize) -> usize {
    (monitor_id.unsigned_abs() % shards.max(1) as u64) as usize
}
