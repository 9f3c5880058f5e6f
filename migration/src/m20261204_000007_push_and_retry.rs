//! PUSH monitors and retries: each PUSH monitor's token, unique, so a push finds its monitor
//! by one index lookup (null for other kinds; both databases let a unique index hold any
//! number of nulls); and each monitor's retry interval (null: none).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for statement in [
            "ALTER TABLE monitors ADD COLUMN push_token TEXT NULL",
            "CREATE UNIQUE INDEX idx_monitors_push_token ON monitors (push_token)",
            "ALTER TABLE monitors ADD COLUMN retry_interval_seconds INTEGER NULL",
        ] {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for statement in [
            "ALTER TABLE monitors DROP COLUMN retry_interval_seconds",
            "DROP INDEX idx_monitors_push_token",
            "ALTER TABLE monitors DROP COLUMN push_token",
        ] {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }
}
