//! The `monitor-manager` binary as a child process: [`Proc`] for any role, [`App`] for the
//! all-in-one server on a fresh database with an HTTP client, and [`Role`], what each role is
//! started with and the log line that says it is ready.
//!
//! The binary's path comes from the caller: a library has no `CARGO_BIN_EXE_*`, and the
//! suite's `env!("CARGO_BIN_EXE_monitor-manager")` follows `CARGO_TARGET_DIR`.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::{read_json, Backend, TestDb};

/// What a process logs once it serves HTTP; the base URL follows it.
pub const LISTENING: &str = "listening on ";

/// Which part of the service a process runs (`monitor-manager [api|scheduler|worker]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything in one process (no subcommand).
    All,
    Api,
    Scheduler,
    Worker,
}

impl Role {
    /// The subcommand that runs this role.
    pub fn args(self) -> &'static [&'static str] {
        match self {
            Role::All => &[],
            Role::Api => &["api"],
            Role::Scheduler => &["scheduler"],
            Role::Worker => &["worker"],
        }
    }

    /// The log line that says the process is ready.
    pub fn ready_line(self) -> &'static str {
        match self {
            Role::All => LISTENING,
            // Its subscribers hear of checks once it is bound to the events exchange.
            Role::Api => "relaying live events",
            Role::Scheduler => "lease scheduler started",
            Role::Worker => "consuming check jobs",
        }
    }
}

/// The base URL in a `listening on http://...` log line.
pub fn listening_url(line: &str) -> Option<&str> {
    Some(line.split(LISTENING).nth(1)?.trim())
}

/// The port in a `listening on http://127.0.0.1:PORT` log line.
pub fn listening_port(line: &str) -> Option<u16> {
    let rest = &line[line.find("listening on http://127.0.0.1:")? + 30..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// A running `monitor-manager` process (all roles); its HTTP helpers are [`Client`]'s.
pub struct App {
    pub client: Client,
    pub db: TestDb,
    process: Proc,
}

impl std::ops::Deref for App {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl App {
    /// Starts `bin` (all roles) on a fresh database of the given kind.
    pub async fn spawn(bin: &str, backend: Backend) -> Option<Self> {
        Self::spawn_with(bin, backend, &[]).await
    }

    /// Starts `bin` with extra environment variables.
    pub async fn spawn_with(bin: &str, backend: Backend, env: &[(&str, &str)]) -> Option<Self> {
        let db = TestDb::fresh(backend).await?;
        Some(Self::start_on(bin, db, env))
    }

    /// Starts `bin` on an existing database.
    pub fn start_on(bin: &str, db: TestDb, env: &[(&str, &str)]) -> Self {
        let process = Proc::launch(bin, &db.url, &[], env, LISTENING);
        let base = listening_url(&process.ready_line)
            .unwrap_or_default()
            .to_owned();
        Self {
            client: Client::new(base),
            db,
            process,
        }
    }

    /// What the process has logged so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Kills it with SIGKILL, as a crash would, and hands back its database.
    pub fn crash(self) -> TestDb {
        let Self {
            db, mut process, ..
        } = self;
        process.kill();
        db
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
}

/// HTTP and GraphQL requests to one running service (a child process or in process).
pub struct Client {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub http: reqwest::Client,
}

impl Client {
    /// A client of the service at `base`.
    pub fn new(base: String) -> Self {
        Self {
            base,
            http: reqwest::Client::new(),
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
    /// Starts `bin ARGS` on `database_url` and waits (up to 30 s) for a log line containing
    /// `ready`. The child sees only `PATH`, the settings below and `env`.
    pub fn launch(
        bin: &str,
        database_url: &str,
        args: &[&str],
        env: &[(&str, &str)],
        ready: &str,
    ) -> Self {
        let mut command = Command::new(Path::new(bin));
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
        let mut child = command
            .spawn()
            .unwrap_or_else(|err| panic!("start {bin}: {err}"));
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
        listening_url(&self.ready_line)
            .expect("this process does not serve HTTP")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_line_gives_the_port() {
        assert_eq!(
            listening_port("2026-01-01T00:00:00Z  INFO run: listening on http://127.0.0.1:40123"),
            Some(40123)
        );
        assert_eq!(listening_port("something else"), None);
    }
}
