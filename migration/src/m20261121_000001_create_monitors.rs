//! Creates `monitors`: the monitored URLs, their schedule and the outcome of the newest check.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Monitors::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Monitors::Id))
                    .col(string_len(Monitors::Name, 200))
                    .col(string_len(Monitors::Url, 2048))
                    .col(integer(Monitors::TimeoutSeconds))
                    .col(integer(Monitors::IntervalSeconds))
                    .col(boolean(Monitors::Active).default(true))
                    .col(timestamp_with_time_zone(Monitors::CreatedAt))
                    .col(timestamp_with_time_zone(Monitors::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Monitors::LastCheckedAt))
                    .col(boolean_null(Monitors::LastUp))
                    .col(timestamp_with_time_zone_null(Monitors::NextCheckAt))
                    .to_owned(),
            )
            .await?;
        // Serves the scheduler's "which active monitors are due" question.
        manager
            .create_index(
                Index::create()
                    .name("idx_monitors_next_check_at")
                    .table(Monitors::Table)
                    .col(Monitors::NextCheckAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Monitors::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub(crate) enum Monitors {
    Table,
    Id,
    Name,
    Url,
    TimeoutSeconds,
    IntervalSeconds,
    Active,
    CreatedAt,
    UpdatedAt,
    LastCheckedAt,
    LastUp,
    NextCheckAt,
}
