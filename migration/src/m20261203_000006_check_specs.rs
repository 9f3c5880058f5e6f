//! Checks that tell the truth: each monitor's check options (`check_spec`, JSON; null for the
//! plain check), its flap-control thresholds and confirmed state; each result's degraded flag,
//! phase timings (nullable integers, null where a phase did not happen) and `details` (JSON:
//! the TLS certificate and the assertions' outcomes; null when there are none).
//!
//! One `ALTER TABLE` per column, the same text on SQLite and PostgreSQL (SQLite takes one
//! change per statement). Adding a column with a constant default rewrites no row on either.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const MONITOR_COLUMNS: [(&str, &str); 6] = [
    ("check_spec", "TEXT NULL"),
    ("failure_threshold", "INTEGER NOT NULL DEFAULT 1"),
    ("success_threshold", "INTEGER NOT NULL DEFAULT 1"),
    ("confirmed_up", "BOOLEAN NULL"),
    ("state_streak", "INTEGER NOT NULL DEFAULT 0"),
    ("state", "TEXT NULL"),
];

const RESULT_COLUMNS: [(&str, &str); 6] = [
    ("degraded", "BOOLEAN NOT NULL DEFAULT FALSE"),
    ("dns_ms", "INTEGER NULL"),
    ("connect_ms", "INTEGER NULL"),
    ("tls_ms", "INTEGER NULL"),
    ("first_byte_ms", "INTEGER NULL"),
    ("details", "TEXT NULL"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (table, columns) in [
            ("monitors", &MONITOR_COLUMNS),
            ("check_results", &RESULT_COLUMNS),
        ] {
            for (name, definition) in columns {
                db.execute_unprepared(&format!(
                    "ALTER TABLE {table} ADD COLUMN {name} {definition}"
                ))
                .await?;
            }
        }
        // Monitors checked before keep their status as confirmed.
        db.execute_unprepared(
            "UPDATE monitors SET confirmed_up = last_up, \
             state = CASE WHEN last_up THEN 'UP' WHEN NOT last_up THEN 'DOWN' END \
             WHERE last_up IS NOT NULL",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (table, columns) in [
            ("monitors", &MONITOR_COLUMNS),
            ("check_results", &RESULT_COLUMNS),
        ] {
            for (name, _) in columns.iter().rev() {
                db.execute_unprepared(&format!("ALTER TABLE {table} DROP COLUMN {name}"))
                    .await?;
            }
        }
        Ok(())
    }
}
