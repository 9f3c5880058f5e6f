//! Incidents: one row per confirmed outage of a monitor, from the result that confirmed it
//! DOWN to the one that confirmed it UP again, named by the monitor and those results' numbers
//! (`check_results.seq`). Each monitor keeps its open incident's number and start, so the
//! batch that stores a result knows, from the monitor row it reads anyway, whether it opens
//! or closes one; the monitor's guarded update keeps that to one open incident per monitor.

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
                    .table(Incidents::Table)
                    .col(big_pk_auto(Incidents::Id))
                    .col(big_integer(Incidents::MonitorId))
                    .col(integer(Incidents::StartedSeq))
                    .col(timestamp_with_time_zone(Incidents::StartedAt))
                    .col(integer_null(Incidents::ResolvedSeq))
                    .col(timestamp_with_time_zone_null(Incidents::ResolvedAt))
                    .col(timestamp_with_time_zone_null(Incidents::AcknowledgedAt))
                    .col(text_null(Incidents::Acknowledgement))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_incidents_monitor")
                            .from(Incidents::Table, Incidents::MonitorId)
                            .to(Monitors::Table, Monitors::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // A monitor's incidents, and the one a resolving result closes.
        manager
            .create_index(
                Index::create()
                    .name("idx_incidents_monitor_started")
                    .table(Incidents::Table)
                    .col(Incidents::MonitorId)
                    .col(Incidents::StartedSeq)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // Time-range filters.
        manager
            .create_index(
                Index::create()
                    .name("idx_incidents_started_at")
                    .table(Incidents::Table)
                    .col(Incidents::StartedAt)
                    .to_owned(),
            )
            .await?;
        // SQLite alters one column per statement.
        manager
            .alter_table(
                Table::alter()
                    .table(Monitors::Table)
                    .add_column(integer_null(Alias::new("open_incident_seq")))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Monitors::Table)
                    .add_column(timestamp_with_time_zone_null(Alias::new(
                        "open_incident_at",
                    )))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for statement in [
            "ALTER TABLE monitors DROP COLUMN open_incident_at",
            "ALTER TABLE monitors DROP COLUMN open_incident_seq",
        ] {
            db.execute_unprepared(statement).await?;
        }
        manager
            .drop_table(Table::drop().table(Incidents::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Incidents {
    Table,
    Id,
    MonitorId,
    StartedSeq,
    StartedAt,
    ResolvedSeq,
    ResolvedAt,
    AcknowledgedAt,
    Acknowledgement,
}
