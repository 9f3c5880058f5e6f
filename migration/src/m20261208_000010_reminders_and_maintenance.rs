//! Reminders and maintenance windows. A monitor may ask for reminders every N minutes while
//! an incident stays open; an incident keeps how many were sent and when the next is due, and
//! each reminder is one more delivery per channel (`reminder` is its number, 0 for the
//! incident's DOWN and UP). Maintenance windows, one-off or recurring (a cron expression in a
//! time zone), cover chosen monitors or all of them; a result checked during one is
//! stored with `in_maintenance` set and moves no state.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261121_000001_create_monitors::Monitors;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for alter in [
            Table::alter()
                .table(Monitors::Table)
                .add_column(integer_null(Alias::new("reminder_interval_minutes")))
                .to_owned(),
            Table::alter()
                .table(Alias::new("incidents"))
                .add_column(integer(Alias::new("reminders_sent")).default(0))
                .to_owned(),
            Table::alter()
                .table(Alias::new("incidents"))
                .add_column(timestamp_with_time_zone_null(Alias::new(
                    "next_reminder_at",
                )))
                .to_owned(),
            Table::alter()
                .table(Alias::new("notification_deliveries"))
                .add_column(integer(Alias::new("reminder")).default(0))
                .to_owned(),
            Table::alter()
                .table(Alias::new("check_results"))
                .add_column(boolean(Alias::new("in_maintenance")).default(false))
                .to_owned(),
        ] {
            manager.alter_table(alter).await?;
        }
        let db = manager.get_connection();
        for statement in [
            "DROP INDEX idx_deliveries_once",
            // One message per incident, event, reminder and channel, whoever fans it out.
            "CREATE UNIQUE INDEX idx_deliveries_once ON notification_deliveries \
             (incident_id, event, channel_id, reminder)",
            // Only open incidents of monitors with reminders: a handful at any time.
            "CREATE INDEX idx_incidents_reminder ON incidents (next_reminder_at) \
             WHERE next_reminder_at IS NOT NULL",
        ] {
            db.execute_unprepared(statement).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(Windows::Table)
                    .col(big_pk_auto(Windows::Id))
                    .col(string_len_uniq(Windows::Name, 200))
                    .col(timestamp_with_time_zone(Windows::StartsAt))
                    .col(timestamp_with_time_zone(Windows::EndsAt))
                    .col(string_len_null(Windows::Recurrence, 200))
                    .col(string_len(Windows::TimeZone, 64).default("UTC"))
                    .col(boolean(Windows::AllMonitors).default(false))
                    .col(timestamp_with_time_zone_null(Windows::EndedAt))
                    .col(timestamp_with_time_zone(Windows::CreatedAt))
                    .col(timestamp_with_time_zone(Windows::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WindowMonitors::Table)
                    .col(big_integer(WindowMonitors::WindowId))
                    .col(big_integer(WindowMonitors::MonitorId))
                    .primary_key(
                        Index::create()
                            .col(WindowMonitors::WindowId)
                            .col(WindowMonitors::MonitorId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_window_monitors_window")
                            .from(WindowMonitors::Table, WindowMonitors::WindowId)
                            .to(Windows::Table, Windows::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_window_monitors_monitor")
                            .from(WindowMonitors::Table, WindowMonitors::MonitorId)
                            .to(Monitors::Table, Monitors::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            WindowMonitors::Table.into_iden(),
            Windows::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        let db = manager.get_connection();
        for statement in [
            "DROP INDEX idx_incidents_reminder",
            "DROP INDEX idx_deliveries_once",
            "DELETE FROM notification_deliveries WHERE reminder > 0",
            "CREATE UNIQUE INDEX idx_deliveries_once ON notification_deliveries \
             (incident_id, event, channel_id)",
        ] {
            db.execute_unprepared(statement).await?;
        }
        for (table, column) in [
            ("check_results", "in_maintenance"),
            ("notification_deliveries", "reminder"),
            ("incidents", "next_reminder_at"),
            ("incidents", "reminders_sent"),
            ("monitors", "reminder_interval_minutes"),
        ] {
            db.execute_unprepared(&format!("ALTER TABLE {table} DROP COLUMN {column}"))
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Windows {
    #[sea_orm(iden = "maintenance_windows")]
    Table,
    Id,
    Name,
    StartsAt,
    EndsAt,
    Recurrence,
    TimeZone,
    /// Covers every monitor (else those linked; a window whose last monitor is deleted then
    /// covers none).
    AllMonitors,
    EndedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WindowMonitors {
    #[sea_orm(iden = "maintenance_window_monitors")]
    Table,
    WindowId,
    MonitorId,
}
