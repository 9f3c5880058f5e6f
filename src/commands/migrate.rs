//! `migrate`: apply, revert or list the migrations.

use migration::{Migrator, MigratorTrait};

use crate::{
    cli::{MigrateAction, Settings},
    db,
};

pub(super) async fn run(settings: &Settings, action: MigrateAction) -> anyhow::Result<()> {
    // One connection: on SQLite a statement of a migration on another pooled connection can
    // see the schema as it was before the migration's earlier statements.
    let db = super::open_db_with(settings, 1).await?;
    match action {
        MigrateAction::Up => db::migrate(db.connection(), db::Migration::Up).await?,
        MigrateAction::Down => db::migrate(db.connection(), db::Migration::Down).await?,
        MigrateAction::Fresh => db::migrate(db.connection(), db::Migration::Fresh).await?,
        MigrateAction::Status => {
            let migrations = Migrator::get_migration_with_status(db.connection()).await?;
            for m in migrations {
                println!(
                    "{:<8} {}",
                    format!("{:?}", m.status()).to_lowercase(),
                    m.name()
                );
            }
        }
    }
    Ok(())
}
