//! Schema migrations for Monitor Manager. The same migrations run on SQLite and PostgreSQL;
//! they are applied at start (unless turned off) and by `monitor-manager migrate`.

// `MigrationTrait` is an `async_trait` declared with `&SchemaManager`; its implementations must
// spell the argument the same way to match.
#![allow(elided_lifetimes_in_paths)]

pub use sea_orm_migration::prelude::*;

mod m20261121_000001_create_monitors;
mod m20261121_000002_create_check_results;
mod m20261121_000003_add_last_slot_at;
mod m20261121_000004_check_results_clustered_key;
mod m20261121_000005_check_results_per_monitor_seq;
mod m20261203_000006_check_specs;
mod m20261204_000007_push_and_retry;
mod m20261206_000008_incidents;
mod m20261207_000009_notifications;
mod m20261208_000010_reminders_and_maintenance;
mod m20261208_000011_degraded_notices;

/// Every migration, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_create_monitors::Migration),
            Box::new(m20261121_000002_create_check_results::Migration),
            Box::new(m20261121_000003_add_last_slot_at::Migration),
            Box::new(m20261121_000004_check_results_clustered_key::Migration),
            Box::new(m20261121_000005_check_results_per_monitor_seq::Migration),
            Box::new(m20261203_000006_check_specs::Migration),
            Box::new(m20261204_000007_push_and_retry::Migration),
            Box::new(m20261206_000008_incidents::Migration),
            Box::new(m20261207_000009_notifications::Migration),
            Box::new(m20261208_000010_reminders_and_maintenance::Migration),
            Box::new(m20261208_000011_degraded_notices::Migration),
        ]
    }
}
