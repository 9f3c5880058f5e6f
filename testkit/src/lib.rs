//! The test harness of `monitor-manager`, shared by the integration suite (`tests/suite`) and
//! the benchmark (`bench`). Everything talks to the service through its real interfaces:
//!
//! - [`db`]: a fresh database per test ([`TestDb`]: a temporary SQLite file or a new PostgreSQL
//!   database), and the PostgreSQL scratch database the bench uses too ([`db::PgScratch`]);
//! - [`process`]: the binary as a child process ([`App`] for the all-in-one server, [`Proc`] for
//!   any role) and the log lines that say a role is ready ([`Role`]); [`Client`], the HTTP and
//!   GraphQL requests both kinds of app answer;
//! - [`in_process`]: the service in the test's own process ([`spawn_app`]);
//! - [`target`]: the HTTP server (and garbage and silent ports) that monitors check;
//!   [`tls`]: an https one with the certificate asked for;
//! - [`poll`]: [`eventually`], for things that happen after a while;
//! - [`ws`]: WebSocket and GraphQL-over-WebSocket clients ([`GraphqlWs`]);
//! - [`read_json`] and the GraphQL-over-HTTP helpers on [`App`].
//!
//! A library has no `CARGO_BIN_EXE_*`: callers pass the binary's path in (the suite passes the
//! one cargo built for it).

pub mod db;
pub mod dns;
pub mod in_process;
pub mod poll;
pub mod process;
pub mod target;
pub mod tls;
pub mod ws;

use std::time::Duration;

pub use db::{Backend, TestDb};
pub use dns::DnsServer;
pub use in_process::{spawn_app, InProcessApp};
pub use poll::eventually;
pub use process::{App, Client, Proc, Role};
pub use target::{refused_url, Target};
pub use tls::{Certificates, TlsTarget, Validity};
pub use ws::{next_ws_frame, open_socket, GraphqlWs, Incoming, Socket};

/// The longest any single expected thing may take before a test gives up on it.
pub const WAIT: Duration = Duration::from_secs(10);

/// Whether this is a CI run (`CI=true` or `CI=1`): there a missing service fails a test
/// instead of skipping it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
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

/// A GraphQL `ID` (a string) or a REST id (a number) as an integer.
pub fn int_id(value: &serde_json::Value) -> i64 {
    match value {
        serde_json::Value::Number(n) => n.as_i64().expect("integer id"),
        serde_json::Value::String(s) => s.parse().expect("numeric id"),
        other => panic!("not an id: {other}"),
    }
}

/// Declares one test per backend for an `async fn(Backend)` scenario: a module named after
/// the scenario with `on_sqlite` and `on_postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_sqlite() {
                    super::$scenario($crate::Backend::Sqlite).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_postgres() {
                    super::$scenario($crate::Backend::Postgres).await;
                }
            }
        )*
    };
}
