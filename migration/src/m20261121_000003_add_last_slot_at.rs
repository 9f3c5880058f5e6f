//! Adds `monitors.last_slot_at`: the due time of the newest scheduled slot that has a stored
//! result. A job delivered twice (a worker died after storing, before acknowledging) finds
//! its slot already there and stores nothing, so each slot has at most one result.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261121_000001_create_monitors::Monitors;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Monitors::Table)
                    .add_column(timestamp_with_time_zone_null(LastSlot::LastSlotAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Monitors::Table)
                    .drop_column(LastSlot::LastSlotAt)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum LastSlot {
    LastSlotAt,
}
