//! Every SQL statement of the service, behind one handle ([`Database`]) that picks the SQLite
//! or the PostgreSQL path inside: monitors, check results (pages and the batch write), the
//! distributed scheduler's leases and change notices. Callers get domain types and [`Error`],
//! never a table model or a driver's error.

mod batch;
mod error;
mod incidents;
mod lease;
mod maintenance;
mod monitors;
mod notifications;
mod open;
mod open_errors;
mod results;
mod rows;
mod schedule;
mod sqlite_reads;
mod url;

use std::path::{Path, PathBuf};

use sea_orm::{ConnectionTrait, DatabaseConnection};

pub use batch::{BatchWriter, PendingResult, Pushed, Written};
pub use error::Error;
pub use incidents::IncidentFilter;
pub use lease::{notify_channel, ChangeListener, Claim, ClaimedSlot};
pub use maintenance::{WindowRow, WindowUpdate};
pub use notifications::{AttemptOutcome, Claimed, Tried};
pub use open::{lock_sqlite, SqliteLock};
pub use url::{redact, Backend, DatabaseUrl};

use sqlite_reads::SqliteReads;

/// One page of a list, and whether more follow.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_next: bool,
}

impl<T> Page<T> {
    /// The first `limit` of `rows`, read with one more than that to learn whether more follow.
    fn of<R>(mut rows: Vec<R>, limit: u64, item: impl FnMut(R) -> T) -> Self {
        let has_next = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        Self {
            items: rows.into_iter().map(item).collect(),
            has_next,
        }
    }
}

/// The database: a connection pool, and on SQLite the file with readers of its own for the hot
/// reads (pages and single monitors), which bypass sqlx. Cheap to clone.
#[derive(Clone)]
pub struct Database {
    conn: DatabaseConnection,
    backend: Backend,
    sqlite: Option<(PathBuf, SqliteReads)>,
}

impl Database {
    /// Connects with at most `max_connections` pooled connections (and as many SQLite
    /// readers). Failing is one line that says what to do.
    pub async fn connect(url: &DatabaseUrl, max_connections: u32) -> anyhow::Result<Self> {
        let conn = open::connect(url, max_connections).await?;
        let sqlite = match url.backend {
            Backend::Sqlite => {
                let file = open::sqlite_file(&conn).await?;
                let reads = SqliteReads::new(&file, max_connections as usize);
                Some((file, reads))
            }
            Backend::Postgres => None,
        };
        Ok(Self {
            conn,
            backend: url.backend,
            sqlite,
        })
    }

    /// Which engine this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The SQLite database file, on SQLite.
    pub fn sqlite_file(&self) -> Option<&Path> {
        self.sqlite.as_ref().map(|(file, _)| file.as_path())
    }

    /// A transaction that will write. On SQLite it takes the write lock up front (IMMEDIATE):
    /// a deferred one that reads first fails at its first write, without waiting, when another
    /// connection committed meanwhile; this one waits its turn (the busy timeout) instead.
    pub(crate) async fn begin_write(&self) -> Result<sea_orm::DatabaseTransaction, sea_orm::DbErr> {
        use sea_orm::TransactionTrait;
        self.conn
            .begin_with_options(sea_orm::TransactionOptions {
                sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await
    }

    /// The pooled connection, for migrations (the `migration` crate runs on it) only.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.conn
    }

    fn reads(&self) -> Option<&SqliteReads> {
        self.sqlite.as_ref().map(|(_, reads)| reads)
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), Error> {
        self.conn.execute_unprepared("SELECT 1").await?;
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(self) -> Result<(), Error> {
        Ok(self.conn.close().await?)
    }
}
