//! The application: everything one process runs, built from a [`Config`], then run until
//! stopped. The binary and the in-process test harness start the service alike through here.

use std::net::SocketAddr;

use anyhow::Context as _;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{
    config::{Backend, Config, Role},
    db, files,
};

/// A built process: database open and migrated, the engine started, the API's listener bound.
pub struct Application {
    config: Config,
    db: store::Database,
    listener: Option<TcpListener>,
    api: Option<api::AppState>,
    tasks: worker::EngineTasks,
    calendar: domain::maintenance::Calendar,
    /// Cancelled when the process stops: WebSockets close with 1012.
    shutdown: CancellationToken,
    /// Held for the process's lifetime by an all-in-one process on SQLite.
    _sqlite_lock: Option<store::SqliteLock>,
}

impl Application {
    /// Opens (and migrates) the database, binds the listener and starts the engine.
    pub async fn build(mut config: Config) -> anyhow::Result<Self> {
        let topology = config.topology;
        let share = files::share_open_files(
            config.db_max_connections,
            topology
                .runs_checks()
                .then_some(config.engine.check_concurrency),
            topology
                .serves_http
                .then_some(config.edge.limits.max_connections),
        );
        config.engine.check_concurrency = share.checks.max(1);
        config.edge.limits.max_connections = share.connections;
        // One all-in-one process per SQLite file: a second one would schedule and check every
        // monitor again. `migrate`, `health` and the other roles do not take it.
        let sqlite_lock = match (topology.role, config.database.backend) {
            (Role::All, Backend::Sqlite) => Some(store::lock_sqlite(&config.database)?),
            _ => None,
        };
        if config.auto_migrate {
            // On a connection of its own, closed before the pool opens: a SQLite connection
            // that was open across a schema change can return NULL for a column the change
            // added.
            let migrator = store::Database::connect(&config.database, 1).await?;
            db::migrate_up(migrator.connection()).await?;
            migrator.close().await?;
        }
        let db = store::Database::connect(&config.database, config.db_max_connections).await?;
        tracing::info!(database = %config.database.redacted(), "database connected");
        let listener = match config.listen {
            Some(addr) => Some(listen(addr).with_context(|| {
                format!("cannot listen on {addr} (is PORT {} in use?)", addr.port())
            })?),
            None => None,
        };
        let calendar = worker::maintenance::load(&db)
            .await
            .context("cannot read the maintenance windows")?;
        let (engine, notifier, tasks) =
            worker::Engine::start(db.clone(), &config.engine, calendar.clone())?;
        tracing::info!(
            role = ?topology.role,
            distributed = topology.distributed,
            scheduling = ?topology.scheduling,
            "started"
        );
        let shutdown = CancellationToken::new();
        let api = listener.as_ref().map(|_| {
            let monitors = service::MonitorService::new(db.clone(), engine, notifier);
            api::AppState::new(monitors, shutdown.clone(), config.edge.clone())
        });
        Ok(Self {
            config,
            db,
            listener,
            api,
            tasks,
            calendar,
            shutdown,
            _sqlite_lock: sqlite_lock,
        })
    }

    /// The port the API listens on, when it runs in this process.
    pub fn port(&self) -> Option<u16> {
        self.local_addr().map(|addr| addr.port())
    }

    /// The address the API listens on, when it runs in this process.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref()?.local_addr().ok()
    }

    /// Serves until `stop` is cancelled (or the server fails), then shuts down in order within
    /// one grace period: the server drains its requests while the worker stops scheduling,
    /// finishes the checks in flight (abandoning those past the grace) and writes what is
    /// queued.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> anyhow::Result<()> {
        let grace = self.config.shutdown_grace;
        let shutdown = self.shutdown.clone();
        drop(tokio::spawn(worker::maintenance::keep_fresh(
            self.db.clone(),
            self.calendar.clone(),
            shutdown.clone(),
        )));
        let mut server: Option<JoinHandle<std::io::Result<()>>> = match (self.listener, self.api) {
            (Some(listener), Some(state)) => {
                tracing::info!("listening on http://{}", listener.local_addr()?);
                // Processes that serve the API send notifications; claims keep each to one.
                let policy = state.monitors.policy().clone();
                drop(tokio::spawn(worker::delivery::run(
                    self.db.clone(),
                    policy,
                    self.calendar.clone(),
                    shutdown.clone(),
                )));
                let server_shutdown = shutdown.clone();
                Some(tokio::spawn(api::serve(
                    listener,
                    state,
                    async move { server_shutdown.cancelled().await },
                    grace - worker::EngineTasks::write_margin(grace),
                )))
            }
            _ => None,
        };
        let failed = match &mut server {
            Some(handle) => tokio::select! {
                served = handle => Some(served),
                () = stop.cancelled() => None,
            },
            None => {
                stop.cancelled().await;
                None
            }
        };
        shutdown.cancel();
        let deadline = tokio::time::Instant::now() + grace;
        let drained = async {
            match (failed, server) {
                (Some(served), _) => served,
                (None, Some(handle)) => handle.await,
                (None, None) => Ok(Ok(())),
            }
        };
        let served = self.tasks.shutdown(deadline, grace, drained).await;
        served
            .context("HTTP server stopped unexpectedly")?
            .context("HTTP server failed")?;
        let _ = tokio::time::timeout_at(deadline, self.db.close()).await;
        tracing::info!("shut down cleanly");
        Ok(())
    }
}

/// Connections the kernel queues before the server accepts them. A burst larger than the
/// queue has its extra SYNs dropped and retried a second later, so it is kept above
/// `MAX_CONNECTIONS`' default (the kernel caps it at `net.core.somaxconn`).
const LISTEN_BACKLOG: u32 = 4096;

/// Binds the API's listener, as `TcpListener::bind` does but with [`LISTEN_BACKLOG`].
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}
