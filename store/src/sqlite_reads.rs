//! The API's hot reads on SQLite (history pages, monitor pages, one monitor), served by
//! connections of their own instead of through sqlx.
//!
//! Through sqlx a read crosses threads four times (the statement, the rows row by row, the
//! ping when the connection goes back to the pool, its answer), each a wake-up of a sleeping
//! thread. Here a read runs on the task that asks for it: it takes an idle connection, steps its
//! cached statement to the end and hands back the rows, without waking any other thread.
//!
//! Each statement runs in its own read transaction, so a read sees everything committed
//! before it started (WAL readers never wait for the writer). The connections are opened with
//! `query_only`, so a read can never write.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use entity::{check_result, monitor};
use rusqlite::{params_from_iter, types::Value, Connection, OpenFlags};
use tokio::sync::Semaphore;

use crate::{
    rows::sqlite::{
        monitor_from_row, result_from_row, MONITOR_COLUMNS, RESULT_COLUMNS, SELECT_MONITOR,
    },
    Error,
};

/// How long a read waits on a lock (WAL readers take one only while the write-ahead log is
/// being recovered or reset).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Most rows a read may return and still run on the calling task (see [`SqliteReads::run`]).
pub const INLINE_ROWS: u64 = 101;

/// Reads of one SQLite database file, at most `max_readers` at once. Cheap to clone.
#[derive(Clone)]
pub(crate) struct SqliteReads {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// Connections not in use (at most `max_readers`, opened as reads first need them).
    idle: Mutex<Vec<Connection>>,
    readers: Arc<Semaphore>,
}

impl SqliteReads {
    /// Reads of the (migrated) database at `path`, at most `max_readers` at once, each on a
    /// connection of its own; connections are opened when first needed and then kept.
    pub fn new(path: impl Into<PathBuf>, max_readers: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                path: path.into(),
                idle: Mutex::new(Vec::new()),
                readers: Arc::new(Semaphore::new(max_readers.max(1))),
            }),
        }
    }

    /// Up to `limit` results of one monitor, newest first, with a result number below
    /// `before` when given.
    pub async fn history(
        &self,
        monitor_id: i64,
        before: Option<i64>,
        limit: u64,
    ) -> Result<Vec<check_result::Model>, Error> {
        let mut sql = format!("SELECT {RESULT_COLUMNS} FROM check_results WHERE monitor_id = ?1");
        if before.is_some() {
            sql.push_str(" AND seq < ?2");
        }
        push_order_and_limit(&mut sql, "seq DESC", limit);
        self.run(limit, move |conn| {
            let mut statement = conn.prepare_cached(&sql)?;
            let rows = match before {
                Some(before) => statement.query_map([monitor_id, before], result_from_row)?,
                None => statement.query_map([monitor_id], result_from_row)?,
            };
            rows.collect()
        })
        .await
    }

    /// Up to `limit` monitors with ids above `after`, only active or only paused ones when
    /// `active` says so, in id order.
    pub async fn monitors(
        &self,
        after: Option<i64>,
        limit: u64,
        active: Option<bool>,
    ) -> Result<Vec<monitor::Model>, Error> {
        let mut sql = format!("SELECT {MONITOR_COLUMNS} FROM monitors");
        let mut conditions = Vec::new();
        if after.is_some() {
            conditions.push("id > ?");
        }
        if active.is_some() {
            conditions.push("active = ?");
        }
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        push_order_and_limit(&mut sql, "id", limit);
        self.run(limit, move |conn| {
            let values = after
                .map(Value::Integer)
                .into_iter()
                .chain(active.map(|active| Value::Integer(i64::from(active))));
            conn.prepare_cached(&sql)?
                .query_map(params_from_iter(values), monitor_from_row)?
                .collect()
        })
        .await
    }

    /// The monitor with this id, if any.
    pub async fn monitor(&self, id: i64) -> Result<Option<monitor::Model>, Error> {
        self.run(1, move |conn| {
            let mut statement = conn.prepare_cached(SELECT_MONITOR)?;
            let mut rows = statement.query_map([id], monitor_from_row)?;
            rows.next().transpose()
        })
        .await
    }

    /// Whether a monitor with this id exists.
    pub async fn monitor_exists(&self, id: i64) -> Result<bool, Error> {
        self.run(1, move |conn| {
            conn.prepare_cached("SELECT 1 FROM monitors WHERE id = ?1")?
                .exists([id])
        })
        .await
    }

    /// Runs `read` on an idle connection (or a new one): on the calling task when it reads
    /// at most [`INLINE_ROWS`] rows, on tokio's blocking pool otherwise.
    ///
    /// The hand-off to the blocking pool and back is two wake-ups of sleeping threads, which
    /// cost more CPU than a small read itself. A small read takes well under a millisecond
    /// from the page cache, and WAL readers do not wait for the writer, so it holds the API
    /// worker about as long as encoding a response would. Larger pages (up to 1,000 rows each,
    /// and a GraphQL query may ask for many) keep off the API's workers.
    async fn run<T: Send + 'static>(
        &self,
        rows: u64,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, Error> {
        // Held by whoever runs the read, not by this future: a client that goes away cannot
        // let more reads run than allowed.
        let permit = self
            .inner
            .readers
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::failed("the SQLite readers are closed"))?;
        let inner = self.inner.clone();
        let run = move || {
            let _permit = permit;
            let conn = inner.connection()?;
            let result = read(&conn).map_err(Error::from_sqlite);
            inner.put_back(conn);
            result
        };
        if rows <= INLINE_ROWS {
            return run();
        }
        tokio::task::spawn_blocking(run)
            .await
            .map_err(|err| Error::failed(format!("a SQLite read did not finish: {err}")))?
    }
}

impl Inner {
    fn connection(&self) -> Result<Connection, Error> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match idle {
            Some(conn) => Ok(conn),
            None => open(&self.path).map_err(|err| {
                Error::unavailable(format!(
                    "cannot open the SQLite database for reading: {err}"
                ))
            }),
        }
    }

    /// A connection goes back after every read, failed or not: a statement is reset when its
    /// rows are dropped, and no read opens a transaction. (The readers' permits bound how many
    /// connections exist.)
    fn put_back(&self, conn: Connection) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(conn);
    }
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

/// The LIMIT is written into the SQL, not bound: SQLite's planner reads a bound LIMIT's value,
/// so a cached statement with a bound LIMIT is parsed and planned again at every execution.
fn push_order_and_limit(sql: &mut String, order: &str, limit: u64) {
    sql.push_str(" ORDER BY ");
    sql.push_str(order);
    sql.push_str(" LIMIT ");
    sql.push_str(&limit.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = "CREATE TABLE check_results (id INTEGER PRIMARY KEY, \
         checked_at_ms integer NOT NULL, monitor_id integer NOT NULL, \
         response_time_ms integer NOT NULL, status_code integer, up boolean NOT NULL, \
         error text, seq integer NOT NULL, degraded boolean NOT NULL DEFAULT FALSE, \
         dns_ms integer, connect_ms integer, tls_ms integer, first_byte_ms integer, details text, \
         in_maintenance boolean NOT NULL DEFAULT FALSE)";

    fn database() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reads.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        for seq in 1..=5 {
            conn.execute(
                "INSERT INTO check_results (checked_at_ms, monitor_id, response_time_ms, \
                 status_code, up, error, seq) VALUES (?1, 7, 3, 200, 1, NULL, ?2)",
                [1_000 * seq, seq],
            )
            .unwrap();
        }
        (dir, path)
    }

    #[tokio::test]
    async fn history_pages_go_newest_first_and_continue_below_a_result_number() {
        let (_dir, path) = database();
        let reads = SqliteReads::new(&path, 2);
        let seqs = |rows: Vec<check_result::Model>| rows.iter().map(|r| r.seq).collect::<Vec<_>>();
        assert_eq!(seqs(reads.history(7, None, 2).await.unwrap()), [5, 4]);
        assert_eq!(
            seqs(reads.history(7, Some(4), 10).await.unwrap()),
            [3, 2, 1]
        );
        assert!(reads.history(8, None, 10).await.unwrap().is_empty());
        // A page larger than INLINE_ROWS is read on the blocking pool, with the same answer.
        assert_eq!(
            seqs(reads.history(7, None, INLINE_ROWS + 1).await.unwrap()),
            [5, 4, 3, 2, 1]
        );
    }

    #[tokio::test]
    async fn a_database_that_cannot_be_opened_is_unavailable_and_a_broken_one_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = SqliteReads::new(dir.path().join("no/such.db"), 2);
        assert!(matches!(
            missing.history(1, None, 50).await,
            Err(Error::Unavailable(_))
        ));
        let garbage = dir.path().join("garbage.db");
        std::fs::write(&garbage, vec![7u8; 8192]).unwrap();
        let broken = SqliteReads::new(&garbage, 2);
        assert!(matches!(
            broken.monitor(1).await,
            Err(Error::Failed(message)) if message.contains("not a database")
        ));
    }

    #[test]
    fn a_read_connection_cannot_write() {
        let (_dir, path) = database();
        let conn = open(&path).unwrap();
        let err = conn
            .execute("DELETE FROM check_results", [])
            .unwrap_err()
            .to_string();
        assert!(err.contains("readonly"), "{err}");
    }
}
