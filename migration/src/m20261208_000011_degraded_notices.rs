//! Degraded notices: a monitor may ask to be told when it turns DEGRADED (slow, or failing a
//! warning assertion such as a certificate about to expire) and when it is UP again.
//! `degraded_told` is what was last told, so the notice job finds, through a partial index,
//! only the monitors whose state moved past it.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261121_000001_create_monitors::Monitors;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in ["notify_degraded", "degraded_told"] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Monitors::Table)
                        .add_column(boolean(Alias::new(column)).default(false))
                        .to_owned(),
                )
                .await?;
        }
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX idx_monitors_degraded_to_tell ON monitors (id) WHERE notify_degraded \
                 AND ((state = 'DEGRADED' AND NOT degraded_told) \
                 OR (state IN ('UP', 'DOWN') AND degraded_told))",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for statement in [
            "DROP INDEX idx_monitors_degraded_to_tell",
            "ALTER TABLE monitors DROP COLUMN degraded_told",
            "ALTER TABLE monitors DROP COLUMN notify_degraded",
        ] {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }
}
