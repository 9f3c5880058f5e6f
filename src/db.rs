//! Migrations, on a connection the store opened: `migrate up` at start, and the `migrate`
//! subcommand.

use anyhow::Context as _;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, TransactionTrait};

/// What `migrate` does.
#[derive(Debug, Clone, Copy)]
pub enum Migration {
    /// Applies every pending migration.
    Up,
    /// Reverts the newest applied migration.
    Down,
    /// Drops every table and applies every migration.
    Fresh,
}

/// Applies every pending migration (as the service does at start).
pub async fn migrate_up(db: &DatabaseConnection) -> anyhow::Result<()> {
    migrate(db, Migration::Up).await
}

/// Runs a migration. On PostgreSQL it holds an advisory lock in its transaction, so processes
/// that migrate at once (services starting together, or `migrate` run by hand beside them)
/// take turns: the first applies, the others then find nothing pending.
pub async fn migrate(db: &DatabaseConnection, what: Migration) -> anyhow::Result<()> {
    if db.get_database_backend() == DbBackend::Postgres {
        let txn = db
            .begin()
            .await
            .context("cannot start the migration transaction")?;
        txn.execute_unprepared("SELECT pg_advisory_xact_lock(2433002433)")
            .await
            .context("cannot take the migration lock")?;
        apply(&txn, what).await?;
        txn.commit().await.context("committing migrations failed")?;
        Ok(())
    } else {
        apply(db, what).await
    }
}

async fn apply<'c, C>(conn: C, what: Migration) -> anyhow::Result<()>
where
    C: migration::IntoSchemaManagerConnection<'c>,
{
    match what {
        Migration::Up => Migrator::up(conn, None).await,
        Migration::Down => Migrator::down(conn, Some(1)).await,
        Migration::Fresh => Migrator::fresh(conn).await,
    }
    .with_context(|| format!("{what:?} migration failed").to_lowercase())
}
