//! Test harness: starts the real `monitor-manager` binary on port 0 against a fresh database
//! (a temporary SQLite file, or a new PostgreSQL database) and talks to it over HTTP.
//!
//! PostgreSQL comes from `TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). When it cannot be reached the PostgreSQL
//! variant of a test says it was skipped, except under `CI=true`, where that is a failure.
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

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
    pg_name: Option<String>,
}

fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
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
                    pg_name: None,
                })
            }
            Backend::Postgres => {
                let admin_url = postgres_admin_url();
                let admin = match Database::connect(&admin_url).await {
                    Ok(db) => db,
                    Err(err) => {
                        if in_ci() {
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
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create test database");
                let _ = admin.close().await;
                let base = admin_url
                    .rsplit_once('/')
                    .map(|(b, _)| b)
                    .unwrap_or(&admin_url);
                Some(Self {
                    url: format!("{base}/{name}"),
                    backend,
                    _dir: None,
                    pg_name: Some(name),
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
        if let Some(name) = self.pg_name.take() {
            let admin_url = postgres_admin_url();
            // Drop runs outside any runtime we may block; use a thread with its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    if let Ok(admin) = Database::connect(&admin_url).await {
                        let _ = admin
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            ))
                            .await;
                        let _ = admin.close().await;
                    }
                });
            })
            .join();
        }
    }
}

/// A running `monitor-manager` process.
pub struct App {
    pub base: String,
    pub db: TestDb,
    pub http: reqwest::Client,
    process: Proc,
}

impl App {
    /// Starts the binary (all roles) on a fresh database of the given kind.
    pub async fn spawn(backend: Backend) -> Option<Self> {
        Self::spawn_with(backend, &[]).await
    }

    /// Starts the binary with extra environment variables.
    pub async fn spawn_with(backend: Backend, env: &[(&str, &str)]) -> Option<Self> {
        let db = TestDb::fresh(backend).await?;
        Some(Self::start_on(db, env))
    }

    /// Starts the binary on an existing database.
    pub fn start_on(db: TestDb, env: &[(&str, &str)]) -> Self {
        let process = Proc::launch(&db.url, &[], env, "listening on ");
        let base = process
            .ready_line
            .split("listening on ")
            .nth(1)
            .unwrap_or_default()
            .trim()
            .to_owned();
        Self {
            base,
            db,
            http: reqwest::Client::new(),
            process,
        }
    }

    /// `http://127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `ws://127.0.0.1:PORT/path`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("{}{}", self.base.replacen("http://", "ws://", 1), path)
    }

    /// What the process has logged so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.process.child.id().to_string()])
            .status();
        for _ in 0..200 {
            if let Ok(Some(status)) = self.process.child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.process.child.kill();
        panic!("monitor-manager did not exit within 10 s of SIGTERM");
    }

    /// Sends a JSON request and returns status and parsed body (Null when empty).
    pub async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = self.http.request(method, self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        read_json(response).await
    }

    /// `POST /graphql` with a query and variables; returns the whole response body.
    pub async fn graphql(&self, query: &str, variables: serde_json::Value) -> serde_json::Value {
        let response = self
            .http
            .post(self.url("/graphql"))
            .json(&serde_json::json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("graphql request");
        read_json(response).await.1
    }

    /// Creates a monitor over REST and returns its id.
    pub async fn create_monitor(
        &self,
        url: &str,
        interval: i64,
        timeout: i64,
        active: bool,
    ) -> i64 {
        let (status, body) = self
            .json(
                reqwest::Method::POST,
                "/monitors",
                Some(serde_json::json!({
                    "name": format!("monitor of {url}"),
                    "url": url,
                    "timeout_seconds": timeout,
                    "interval_seconds": interval,
                    "active": active,
                })),
            )
            .await;
        assert_eq!(status, 201, "create failed: {body}");
        body["id"].as_i64().expect("id")
    }
}

/// A running `monitor-manager` process of any role.
pub struct Proc {
    pub child: Child,
    /// The log line that said it was ready.
    pub ready_line: String,
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Proc {
    /// Starts `monitor-manager ARGS` on `database_url` and waits (up to 30 s) for a log line
    /// containing `ready`.
    pub fn launch(database_url: &str, args: &[&str], env: &[(&str, &str)], ready: &str) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_monitor-manager"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORT", "0")
            .env("HOST", "127.0.0.1")
            .env("DATABASE_URL", database_url)
            .env("RUST_LOG", "info")
            .env("SHUTDOWN_GRACE_SECONDS", "5")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start monitor-manager");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log_writer = log.clone();
        let ready = ready.to_owned();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if !sent && line.contains(&ready) {
                    let _ = tx.send(line.clone());
                    sent = true;
                }
                log_writer.lock().unwrap().push(line);
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(ready_line) => Self {
                child,
                ready_line,
                log,
            },
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "monitor-manager {args:?} did not start; its log:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        }
    }

    /// The HTTP base URL, for a process that serves HTTP.
    pub fn base(&self) -> String {
        self.ready_line
            .split("listening on ")
            .nth(1)
            .expect("this process does not serve HTTP")
            .trim()
            .to_owned()
    }

    /// Kills it with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Status and JSON body of a response (Null for an empty body). Panics when a non-empty body
/// is not JSON: every answer of this API is.
pub async fn read_json(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    if text.is_empty() {
        return (status, serde_json::Value::Null);
    }
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("status {status}: body is not JSON: {text:?}"));
    (status, value)
}

/// Declares one test per backend for an `async fn(Backend)` scenario.
#[macro_export]
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_sqlite() {
                    super::$scenario($crate::common::Backend::Sqlite).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_postgres() {
                    super::$scenario($crate::common::Backend::Postgres).await;
                }
            }
        )*
    };
}
