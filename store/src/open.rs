//! Opens the database: SQLite set up for a server (WAL, busy timeout, foreign keys), or a
//! PostgreSQL pool. Failing to open it is one line that says what to do (see
//! [`crate::open_errors`]).

use std::{fs::File, path::PathBuf, time::Duration};

use anyhow::Context as _;
use sea_orm::{
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
};

use crate::{
    open_errors as db_errors,
    url::{Backend, DatabaseUrl},
};

/// How long SQLite waits for a lock before reporting "database is locked".
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Prepared statements kept per database connection. The store's batch statements differ with
/// the batch size, so a large cache fills with big, rarely reused programs.
const STATEMENT_CACHE: usize = 16;

/// A pooled PostgreSQL connection idle at least this long is pinged before use.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(30);

/// Connects, failing with one clear line when the database cannot be reached: a SQLite file's
/// directory is checked first, and PostgreSQL gets one plain connection attempt first, whose
/// error (refused, unknown host, no such database, ...) a pool would hide behind its timeout.
pub(crate) async fn connect(
    url: &DatabaseUrl,
    max_connections: u32,
) -> anyhow::Result<DatabaseConnection> {
    match url.backend {
        Backend::Sqlite => {
            db_errors::sqlite_database_path(url)?;
        }
        Backend::Postgres => db_errors::probe_postgres(url).await?,
    }
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
    Database::connect(options)
        .await
        .map_err(|err| anyhow::Error::msg(db_errors::pool_failure(url, &err)))
}

/// Held by an all-in-one `serve` on SQLite for its lifetime: an OS lock (`flock`, released by
/// the kernel however the process ends) on `<database file>.lock`.
#[derive(Debug)]
pub struct SqliteLock {
    _file: File,
}

/// Takes the all-in-one lock of a SQLite database, or says that another process holds it. A
/// sidecar file, not the database: SQLite's own fcntl locks on the database would be dropped if
/// this process closed a second descriptor of it.
pub fn lock_sqlite(url: &DatabaseUrl) -> anyhow::Result<SqliteLock> {
    let database = db_errors::sqlite_database_path(url)?;
    let mut lock_path = database.clone().into_os_string();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| {
            format!(
                "cannot create the lock file `{}` beside the SQLite database",
                lock_path.display()
            )
        })?;
    match file.try_lock() {
        Ok(()) => Ok(SqliteLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another monitor-manager is already running on this database ({}); stop it first, or run several processes on PostgreSQL with RABBITMQ_URL",
            database.display()
        ),
        Err(std::fs::TryLockError::Error(err)) => Err(err).with_context(|| {
            format!("cannot lock `{}`", lock_path.display())
        }),
    }
}

/// The file behind a SQLite connection (for the result store's own connection to it).
pub(crate) async fn sqlite_file(db: &DatabaseConnection) -> anyhow::Result<PathBuf> {
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
