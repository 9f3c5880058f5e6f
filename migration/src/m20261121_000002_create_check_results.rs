//! Creates `check_results`: one narrow row per check, deleted with its monitor, indexed for
//! "the newest results of one monitor".

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261121_000001_create_monitors::Monitors;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CheckResults::Table)
                    .if_not_exists()
                    .col(big_pk_auto(CheckResults::Id))
                    .col(big_integer(CheckResults::MonitorId))
                    .col(big_integer(CheckResults::CheckedAtMs))
                    .col(boolean(CheckResults::Up))
                    .col(small_integer_null(CheckResults::StatusCode))
                    .col(integer(CheckResults::ResponseTimeMs))
                    .col(text_null(CheckResults::Error))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_check_results_monitor_id")
                            .from(CheckResults::Table, CheckResults::MonitorId)
                            .to(Monitors::Table, Monitors::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Newest results of one monitor: `WHERE monitor_id = ? [AND id < ?] ORDER BY id DESC`.
        manager
            .create_index(
                Index::create()
                    .name("idx_check_results_monitor_id_id")
                    .table(CheckResults::Table)
                    .col(CheckResults::MonitorId)
                    .col(CheckResults::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CheckResults::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum CheckResults {
    Table,
    Id,
    MonitorId,
    CheckedAtMs,
    Up,
    StatusCode,
    ResponseTimeMs,
    Error,
}
