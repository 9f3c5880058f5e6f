//! Fresh databases: a temporary SQLite file, or a new PostgreSQL database made through an admin
//! URL and dropped afterwards.
//!
//! The tests take PostgreSQL from `TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). When it cannot be reached the PostgreSQL
//! variant of a test says it was skipped, except under `CI=true`, where that is a failure.

use std::{
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use anyhow::Context as _;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty database for one test, removed when dropped.
pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
    pg: Option<PgScratch>,
}

/// The admin URL the tests create their PostgreSQL databases through.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    /// A new database, or `None` (after saying so) when PostgreSQL is unreachable outside CI.
    pub async fn fresh(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                Some(Self {
                    url,
                    backend,
                    _dir: Some(dir),
                    pg: None,
                })
            }
            Backend::Postgres => {
                let admin_url = postgres_admin_url();
                let admin = match Database::connect(&admin_url).await {
                    Ok(db) => db,
                    Err(err) => {
                        if crate::in_ci() {
                            panic!("PostgreSQL is required under CI=true but {admin_url} is unreachable: {err}");
                        }
                        eprintln!("SKIPPED: PostgreSQL not reachable at {admin_url} ({err}); set TEST_POSTGRES_URL to run this test");
                        return None;
                    }
                };
                let name = format!(
                    "mm_test_{}_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::Relaxed),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .subsec_nanos()
                );
                let pg = PgScratch::create_on(&admin, &admin_url, name)
                    .await
                    .expect("create test database");
                let _ = admin.close().await;
                Some(Self {
                    url: pg.url.clone(),
                    backend,
                    _dir: None,
                    pg: Some(pg),
                })
            }
        }
    }

    /// A direct connection, to look at what is stored.
    pub async fn connect(&self) -> DatabaseConnection {
        Database::connect(&self.url)
            .await
            .expect("connect to test database")
    }

    /// Rows in a table.
    pub async fn count(&self, table: &str) -> i64 {
        let db = self.connect().await;
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                format!("SELECT COUNT(*) AS n FROM {table}"),
            ))
            .await
            .expect("count query")
            .expect("a row");
        let n: i64 = row.try_get("", "n").expect("count column");
        let _ = db.close().await;
        n
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(pg) = self.pg.take() {
            let _ = pg.drop_blocking();
        }
    }
}

/// A PostgreSQL database created for one test or benchmark run. It is not dropped by itself:
/// its owner calls [`PgScratch::drop_blocking`] (from its `Drop`), and decides what a failure
/// to drop means.
pub struct PgScratch {
    /// The URL of the new database.
    pub url: String,
    pub name: String,
    admin_url: String,
}

impl PgScratch {
    /// Creates database `name` over `admin` (a connection to `admin_url`).
    pub async fn create_on(
        admin: &DatabaseConnection,
        admin_url: &str,
        name: String,
    ) -> anyhow::Result<Self> {
        let url = with_database(admin_url, &name)?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("cannot create database {name}"))?;
        Ok(Self {
            url,
            name,
            admin_url: admin_url.to_owned(),
        })
    }

    /// Drops the database, connections to it and all (`WITH (FORCE)`). Blocks: it runs on a
    /// thread with a runtime of its own, as `Drop` cannot await and may run inside a runtime.
    pub fn drop_blocking(&self) -> anyhow::Result<()> {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let admin = connect_small(&admin_url).await?;
                admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await?;
                let _ = admin.close().await;
                anyhow::Ok(())
            })
        })
        .join()
        .unwrap_or_else(|_| {
            Err(anyhow::anyhow!(
                "the thread dropping {} panicked",
                self.name
            ))
        })
    }
}

/// A small pool (two connections, 5 s to connect, statements not logged) for looking at a
/// database from outside the service.
pub async fn connect_small(url: &str) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(2)
        .min_connections(0)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(false);
    Ok(Database::connect(options).await?)
}

/// The PostgreSQL URL with its database name replaced (any query string kept).
pub fn with_database(url: &str, name: &str) -> anyhow::Result<String> {
    let scheme_end = url.find("://").context("bad PostgreSQL URL")? + 3;
    let (base, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    let authority_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    Ok(format!("{}/{name}{query}", &base[..authority_end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "bench_1").unwrap(),
            "postgres://postgres@127.0.0.1:5432/bench_1"
        );
        assert_eq!(
            with_database("postgres://u:p@127.0.0.1/db?sslmode=disable", "b").unwrap(),
            "postgres://u:p@127.0.0.1/b?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://127.0.0.1:5432", "b").unwrap(),
            "postgres://127.0.0.1:5432/b"
        );
    }
}
