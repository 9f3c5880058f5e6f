//! Opens the database: SQLite set up for a server (WAL, busy timeout, foreign keys), or a
//! PostgreSQL pool, and applies migrations when asked.

use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
    TransactionTrait,
};

use crate::config::{Backend, DatabaseUrl};

/// How long SQLite waits for a lock before reporting "database is locked".
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Prepared statements kept per database connection. The store's batch statements differ with
/// the batch size, so a large cache fills with big, rarely reused programs.
const STATEMENT_CACHE: usize = 16;

/// A pooled PostgreSQL connection idle at least this long is pinged before use.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(30);

/// Connects, failing with one clear line when the database cannot be reached.
pub async fn connect(
    url: &DatabaseUrl,
    max_connections: u32,
) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url.url.clone());
    options
        .max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        .sqlx_logging(false);
    // sqlx pings a pooled connection on every checkout by default: one more round trip per
    // query (on SQLite a hand-off to the connection's thread and back; it pings again when
    // the connection goes back). A SQLite connection cannot lose its server, so it is never
    // pinged; a PostgreSQL one only after it sat idle long enough for a server restart, a
    // proxy or a firewall to have dropped it.
    if url.backend == Backend::Sqlite {
        options.test_before_acquire(false);
        options.map_sqlx_sqlite_opts(|opts| {
            opts.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true)
                .statement_cache_capacity(STATEMENT_CACHE)
        });
    } else {
        options.test_before_acquire_if_idle_for(PING_IF_IDLE_FOR);
        options.map_sqlx_postgres_opts(|opts| opts.statement_cache_capacity(STATEMENT_CACHE));
    }
    Database::connect(options).await.with_context(|| {
        format!(
            "cannot connect to the database at {} (check DATABASE_URL or DB_HOST/DB_PORT/DB_USER/DB_PASSWORD/DB_NAME, and that the server is running)",
            url.redacted()
        )
    })
}

/// The file behind a SQLite connection (for the result store's own connection to it).
pub async fn sqlite_file(db: &DatabaseConnection) -> anyhow::Result<PathBuf> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA database_list",
        ))
        .await
        .context("cannot list the SQLite database's files")?;
    for row in rows {
        let name: String = row.try_get_by_index(1).context("PRAGMA database_list")?;
        let file: String = row.try_get_by_index(2).context("PRAGMA database_list")?;
        if name == "main" && !file.is_empty() {
            return Ok(PathBuf::from(file));
        }
    }
    anyhow::bail!("the SQLite database has no file (an in-memory database cannot be shared)")
}

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
