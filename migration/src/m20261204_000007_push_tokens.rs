//! PUSH monitors: each one's token, unique, so a push finds its monitor by one index lookup.
//! Null for other kinds (both databases let a unique index hold any number of nulls).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("ALTER TABLE monitors ADD COLUMN push_token TEXT NULL")
            .await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX idx_monitors_push_token ON monitors (push_token)",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX idx_monitors_push_token")
            .await?;
        db.execute_unprepared("ALTER TABLE monitors DROP COLUMN push_token")
            .await?;
        Ok(())
    }
}
