//! The database a run uses: a fresh SQLite file in a temporary directory, or a fresh
//! PostgreSQL database `bench_<random>` created through an admin URL and dropped afterwards
//! (also when the run fails or is interrupted). The bench reads it directly to count stored
//! results and measure their size.

use std::path::Path;

use anyhow::{bail, Context as _};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use testkit::db::{connect_small, PgScratch};

/// Which database engine a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A fresh database for one run; a PostgreSQL one is dropped when this is dropped.
pub struct BenchDb {
    pub url: String,
    pub backend: Backend,
    sqlite_path: Option<std::path::PathBuf>,
    pg: Option<PgScratch>,
}

impl BenchDb {
    /// A fresh database of `backend`: a SQLite file in `dir`, or a new PostgreSQL database
    /// made through `admin_url`.
    pub async fn fresh(backend: Backend, dir: &Path, admin_url: &str) -> anyhow::Result<Self> {
        match backend {
            Backend::Sqlite => Ok(Self::sqlite(dir)),
            Backend::Postgres => Self::postgres(admin_url).await,
        }
    }

    /// A new SQLite file `bench.db` in `dir` (not created yet: the service creates it).
    pub fn sqlite(dir: &Path) -> Self {
        let path = dir.join("bench.db");
        Self {
            url: format!("sqlite://{}", path.display()),
            backend: Backend::Sqlite,
            sqlite_path: Some(path),
            pg: None,
        }
    }

    /// Creates `bench_<random>` through `admin_url` (which must point at 127.0.0.1).
    pub async fn postgres(admin_url: &str) -> anyhow::Result<Self> {
        ensure_local(admin_url)?;
        let name = format!(
            "bench_{}_{}",
            std::process::id(),
            crate::target::unix_micros() % 1_000_000_000
        );
        let admin = connect_small(admin_url).await.with_context(|| {
            format!("cannot reach PostgreSQL at {admin_url} (see --postgres-url)")
        })?;
        let pg = PgScratch::create_on(&admin, admin_url, name).await?;
        let _ = admin.close().await;
        Ok(Self {
            url: pg.url.clone(),
            backend: Backend::Postgres,
            sqlite_path: None,
            pg: Some(pg),
        })
    }

    /// A connection for measurements (read-only for SQLite).
    pub async fn observe(&self) -> anyhow::Result<Observer> {
        self.open(false).await
    }

    /// A connection that may write (to fill the database before a read benchmark).
    pub async fn writer(&self) -> anyhow::Result<Observer> {
        self.open(true).await
    }

    async fn open(&self, write: bool) -> anyhow::Result<Observer> {
        let url = match self.backend {
            Backend::Sqlite if !write => format!("{}?mode=ro", self.url),
            _ => self.url.clone(),
        };
        let db = connect_small(&url)
            .await
            .context("cannot open the run's database")?;
        let dbstat = self.backend == Backend::Sqlite
            && db
                .query_one_raw(Statement::from_string(
                    db.get_database_backend(),
                    "SELECT COUNT(*) FROM dbstat WHERE name = 'check_results'",
                ))
                .await
                .is_ok();
        Ok(Observer {
            db,
            backend: self.backend,
            sqlite_path: self.sqlite_path.clone(),
            dbstat,
        })
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        let Some(pg) = self.pg.take() else {
            return;
        };
        if let Err(err) = pg.drop_blocking() {
            eprintln!("bench: could not drop the benchmark database: {err:#}");
        }
    }
}

/// Reads counts and sizes from the run's database.
pub struct Observer {
    db: DatabaseConnection,
    backend: Backend,
    sqlite_path: Option<std::path::PathBuf>,
    dbstat: bool,
}

/// How much room the stored results take.
#[derive(Debug, Clone, Copy, Default)]
pub struct Footprint {
    /// Bytes of `check_results` and its indexes.
    pub relation_bytes: u64,
    /// Bytes of the whole database file plus its WAL (SQLite only).
    pub file_bytes: Option<u64>,
}

impl Observer {
    /// Rows in `check_results`.
    pub async fn count_results(&self) -> anyhow::Result<i64> {
        self.scalar("SELECT COUNT(*) FROM check_results").await
    }

    pub async fn footprint(&self) -> anyhow::Result<Footprint> {
        match self.backend {
            Backend::Postgres => Ok(Footprint {
                relation_bytes: self
                    .scalar("SELECT pg_total_relation_size('check_results')::bigint")
                    .await? as u64,
                file_bytes: None,
            }),
            Backend::Sqlite => {
                let path = self.sqlite_path.as_deref().context("no SQLite path")?;
                let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
                let mut wal = path.as_os_str().to_owned();
                wal.push("-wal");
                let file_bytes = size(path) + size(Path::new(&wal));
                let relation_bytes = if self.dbstat {
                    self.scalar(
                        "SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name IN \
                         (SELECT name FROM sqlite_master WHERE tbl_name = 'check_results')",
                    )
                    .await? as u64
                } else {
                    file_bytes
                };
                Ok(Footprint {
                    relation_bytes,
                    file_bytes: Some(file_bytes),
                })
            }
        }
    }

    /// Runs one statement (the history benchmark fills the table with it).
    pub async fn execute(&self, sql: &str) -> anyhow::Result<()> {
        self.db
            .execute_raw(Statement::from_string(self.db.get_database_backend(), sql))
            .await?;
        Ok(())
    }

    /// Results stored as UP and as DOWN with `checked_at` in `[from_ms, to_ms)` (unix ms).
    pub async fn up_down_between(&self, from_ms: i64, to_ms: i64) -> anyhow::Result<(i64, i64)> {
        let range = format!("checked_at_ms >= {from_ms} AND checked_at_ms < {to_ms}");
        let up = self
            .scalar(&format!(
                "SELECT COUNT(*) FROM check_results WHERE up AND {range}"
            ))
            .await?;
        let down = self
            .scalar(&format!(
                "SELECT COUNT(*) FROM check_results WHERE NOT up AND {range}"
            ))
            .await?;
        Ok((up, down))
    }

    /// The first column of the first row of `sql`, as an integer.
    pub async fn scalar(&self, sql: &str) -> anyhow::Result<i64> {
        let row = self
            .db
            .query_one_raw(Statement::from_string(self.db.get_database_backend(), sql))
            .await?
            .with_context(|| format!("no row from `{sql}`"))?;
        Ok(row.try_get_by_index::<i64>(0)?)
    }

    pub async fn close(self) {
        let _ = self.db.close().await;
    }
}

/// The bench talks to nothing but this machine's loopback.
fn ensure_local(url: &str) -> anyhow::Result<()> {
    let scheme_end = url.find("://").context("bad PostgreSQL URL")? + 3;
    let rest = &url[scheme_end..];
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let host = host_port.rsplit_once(':').map_or(host_port, |(h, _)| h);
    if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
        bail!("--postgres-url must point at 127.0.0.1 (got host `{host}`)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_postgres_is_accepted() {
        assert!(ensure_local("postgres://postgres@127.0.0.1:5432/postgres").is_ok());
        assert!(ensure_local("postgres://u:p@localhost/x").is_ok());
        assert!(ensure_local("postgres://u:p@10.0.0.5/x").is_err());
    }
}
