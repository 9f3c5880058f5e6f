//! Notifications: channels (where messages go, each kind's settings as JSON, secrets
//! included), which monitors notify which channels, and the outbox: one delivery row per
//! message and channel, with every attempt. Incidents gain `notified` (0: nothing sent yet,
//! 1: its opening sent, 2: its resolution sent too), which the batch leaves at 0 when it
//! opens one, so the fan-out job finds what is still to be sent after any crash.

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
                    .table(Channels::Table)
                    .col(big_pk_auto(Channels::Id))
                    .col(string_len_uniq(Channels::Name, 200))
                    .col(string_len(Channels::Kind, 20))
                    .col(boolean(Channels::IsDefault).default(false))
                    .col(text(Channels::Settings))
                    .col(timestamp_with_time_zone(Channels::CreatedAt))
                    .col(timestamp_with_time_zone(Channels::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MonitorChannels::Table)
                    .col(big_integer(MonitorChannels::MonitorId))
                    .col(big_integer(MonitorChannels::ChannelId))
                    .primary_key(
                        Index::create()
                            .col(MonitorChannels::MonitorId)
                            .col(MonitorChannels::ChannelId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_monitor_channels_monitor")
                            .from(MonitorChannels::Table, MonitorChannels::MonitorId)
                            .to(Monitors::Table, Monitors::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_monitor_channels_channel")
                            .from(MonitorChannels::Table, MonitorChannels::ChannelId)
                            .to(Channels::Table, Channels::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Deliveries::Table)
                    .col(big_pk_auto(Deliveries::Id))
                    .col(big_integer(Deliveries::ChannelId))
                    .col(big_integer_null(Deliveries::IncidentId))
                    .col(string_len(Deliveries::Event, 20))
                    .col(text(Deliveries::Payload))
                    .col(string_len(Deliveries::State, 20))
                    .col(integer(Deliveries::Attempts).default(0))
                    .col(timestamp_with_time_zone(Deliveries::CreatedAt))
                    .col(timestamp_with_time_zone(Deliveries::NextAttemptAt))
                    .col(timestamp_with_time_zone_null(Deliveries::ClaimedUntil))
                    .col(timestamp_with_time_zone_null(Deliveries::SentAt))
                    .col(text_null(Deliveries::LastError))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_deliveries_channel")
                            .from(Deliveries::Table, Deliveries::ChannelId)
                            .to(Channels::Table, Channels::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_deliveries_incident")
                            .from(Deliveries::Table, Deliveries::IncidentId)
                            .to(Alias::new("incidents"), Alias::new("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // One message per incident, event and channel, whoever fans it out.
        manager
            .create_index(
                Index::create()
                    .name("idx_deliveries_once")
                    .table(Deliveries::Table)
                    .col(Deliveries::IncidentId)
                    .col(Deliveries::Event)
                    .col(Deliveries::ChannelId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The delivery job's question: what is due.
        manager
            .create_index(
                Index::create()
                    .name("idx_deliveries_due")
                    .table(Deliveries::Table)
                    .col(Deliveries::State)
                    .col(Deliveries::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_deliveries_channel")
                    .table(Deliveries::Table)
                    .col(Deliveries::ChannelId)
                    .col(Deliveries::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Attempts::Table)
                    .col(big_pk_auto(Attempts::Id))
                    .col(big_integer(Attempts::DeliveryId))
                    .col(timestamp_with_time_zone(Attempts::AttemptedAt))
                    .col(integer(Attempts::DurationMs))
                    .col(boolean(Attempts::Ok))
                    .col(integer_null(Attempts::ResponseCode))
                    .col(text_null(Attempts::Error))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_attempts_delivery")
                            .from(Attempts::Table, Attempts::DeliveryId)
                            .to(Deliveries::Table, Deliveries::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_attempts_delivery")
                    .table(Attempts::Table)
                    .col(Attempts::DeliveryId)
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        for statement in [
            "ALTER TABLE incidents ADD COLUMN notified SMALLINT NOT NULL DEFAULT 0",
            // Only incidents with something still to send: a handful at any time.
            "CREATE INDEX idx_incidents_to_notify ON incidents (id) WHERE notified < 2",
        ] {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for statement in [
            "DROP INDEX idx_incidents_to_notify",
            "ALTER TABLE incidents DROP COLUMN notified",
        ] {
            db.execute_unprepared(statement).await?;
        }
        for table in [
            Attempts::Table.into_iden(),
            Deliveries::Table.into_iden(),
            MonitorChannels::Table.into_iden(),
            Channels::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Channels {
    #[sea_orm(iden = "notification_channels")]
    Table,
    Id,
    Name,
    Kind,
    IsDefault,
    Settings,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum MonitorChannels {
    Table,
    MonitorId,
    ChannelId,
}

#[derive(DeriveIden)]
enum Deliveries {
    #[sea_orm(iden = "notification_deliveries")]
    Table,
    Id,
    ChannelId,
    IncidentId,
    Event,
    Payload,
    State,
    Attempts,
    CreatedAt,
    NextAttemptAt,
    ClaimedUntil,
    SentAt,
    LastError,
}

#[derive(DeriveIden)]
enum Attempts {
    #[sea_orm(iden = "notification_attempts")]
    Table,
    Id,
    DeliveryId,
    AttemptedAt,
    DurationMs,
    Ok,
    ResponseCode,
    Error,
}
