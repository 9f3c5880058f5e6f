//! What each subcommand does, on a tokio runtime.

use std::{net::SocketAddr, process::ExitCode, time::Duration};

use anyhow::Context as _;
use migration::{Migrator, MigratorTrait};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use crate::{
    cli::{Cli, Command, MigrateAction, Settings},
    config::{self, Backend},
    db,
};
use worker::Scheduling;

/// Runs the chosen subcommand; any error becomes one line on stderr and a non-zero exit.
pub fn main(cli: Cli) -> ExitCode {
    if let Some(Command::Schema) = cli.command {
        print!("{}", api::graphql::sdl());
        return ExitCode::SUCCESS;
    }
    init_tracing();
    let command = cli.command.unwrap_or(Command::Serve);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(api_threads(&cli.settings, &command))
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match command {
            Command::Serve => serve(&cli.settings, Role::All).await,
            Command::Api => serve(&cli.settings, Role::Api).await,
            Command::Scheduler => serve(&cli.settings, Role::Scheduler).await,
            Command::Worker => serve(&cli.settings, Role::Worker).await,
            Command::Health => health(&cli.settings).await,
            Command::Migrate { action } => migrate(&cli.settings, action).await,
            Command::Schema => unreachable!("handled above"),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Worker threads of the main runtime. An all-in-one process runs its checks on threads of
/// their own (one per core by default), so its API runtime takes half the cores: fewer idle
/// workers means work woken from other threads (store events, requests) is not handed to a
/// second worker to share.
fn api_threads(settings: &Settings, command: &Command) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let own_check_threads = matches!(command, Command::Serve) && rabbitmq_url(settings).is_none();
    match settings.api_threads {
        0 if own_check_threads => (cores / 2).max(1),
        0 => cores,
        n => n as usize,
    }
}

/// `RABBITMQ_URL` when it is set to something: blank counts as unset (distributed mode off).
fn rabbitmq_url(settings: &Settings) -> Option<&str> {
    settings
        .rabbitmq_url
        .as_deref()
        .filter(|url| !url.trim().is_empty())
}

fn init_tracing() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}

async fn open_db(settings: &Settings) -> anyhow::Result<store::Database> {
    let url = config::database_url(settings).map_err(anyhow::Error::msg)?;
    let db = store::Database::connect(&url, settings.db_max_connections).await?;
    tracing::info!(database = %url.redacted(), "database connected");
    Ok(db)
}

/// What a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    All,
    Api,
    Scheduler,
    Worker,
}

impl Role {
    fn serves_http(self) -> bool {
        matches!(self, Role::All | Role::Api)
    }
}

/// The engine configuration for a role; the errors say which setting is missing.
fn engine_config(
    settings: &Settings,
    role: Role,
    backend: Backend,
) -> anyhow::Result<worker::EngineConfig> {
    let amqp = rabbitmq_url(settings)
        .map(|url| config::amqp(url, &settings.rabbitmq_prefix))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let distributed = amqp.is_some();
    let scheduling = match role {
        Role::All if distributed && backend == Backend::Postgres => Scheduling::Leases,
        Role::All => Scheduling::InProcess,
        Role::Scheduler => {
            if !distributed {
                anyhow::bail!("the scheduler role needs RABBITMQ_URL (without it, run `monitor-manager serve`)");
            }
            if backend != Backend::Postgres {
                anyhow::bail!(
                    "the scheduler role needs PostgreSQL: set DATABASE_URL=postgres://..."
                );
            }
            Scheduling::Leases
        }
        Role::Api | Role::Worker => Scheduling::Off,
    };
    if role == Role::Worker && !distributed {
        anyhow::bail!(
            "the worker role needs RABBITMQ_URL (without it, run `monitor-manager serve`)"
        );
    }
    Ok(worker::EngineConfig {
        check_concurrency: settings.check_concurrency as usize,
        check_threads: match settings.check_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        },
        event_buffer: settings.event_buffer as usize,
        scheduling,
        consume_jobs: distributed && matches!(role, Role::All | Role::Worker),
        relay_events: distributed && role.serves_http(),
        amqp,
    })
}

/// Runs one role (or all of them) until SIGINT/SIGTERM, then shuts down in order.
async fn serve(settings: &Settings, role: Role) -> anyhow::Result<()> {
    let url = config::database_url(settings).map_err(anyhow::Error::msg)?;
    let mut engine_config = engine_config(settings, role, url.backend)?;
    let mut edge = config::edge(settings).map_err(anyhow::Error::msg)?;
    // Every role but the scheduler runs checks (the API runs the manual ones).
    let share = share_open_files(
        settings,
        (role != Role::Scheduler).then_some(engine_config.check_concurrency),
        role.serves_http().then_some(edge.limits.max_connections),
    );
    engine_config.check_concurrency = share.checks.max(1);
    edge.limits.max_connections = share.connections;
    // One all-in-one process per SQLite file, held until this function returns: a second one
    // would schedule and check every monitor again. `migrate`, `health` and the other roles
    // do not take it.
    let _sqlite_lock = match (role, url.backend) {
        (Role::All, Backend::Sqlite) => Some(store::lock_sqlite(&url)?),
        _ => None,
    };
    if settings.auto_migrate {
        // On a connection of its own, closed before the pool opens: a SQLite connection that
        // was open across a schema change can return NULL for a column the change added
        // (seen on `INSERT ... RETURNING` right after migration 5 added `monitors.last_seq`).
        let migrator = store::Database::connect(&url, 1).await?;
        db::migrate_up(migrator.connection()).await?;
        migrator.close().await?;
    }
    let db = open_db(settings).await?;
    let listener = if role.serves_http() {
        let addr: SocketAddr = format!("{}:{}", settings.host, settings.port)
            .parse()
            .or_else(|_| format!("[{}]:{}", settings.host, settings.port).parse())
            .with_context(|| format!("HOST `{}` is not an IP address", settings.host))?;
        let listener = listen(addr).with_context(|| {
            format!(
                "cannot listen on {addr} (is PORT {} in use?)",
                settings.port
            )
        })?;
        Some(listener)
    } else {
        None
    };

    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());
    let (engine, notifier, tasks) = worker::Engine::start(db.clone(), &engine_config)?;
    tracing::info!(
        role = ?role,
        distributed = engine_config.amqp.is_some(),
        scheduling = ?engine_config.scheduling,
        "started"
    );
    let grace = Duration::from_secs(settings.shutdown_grace_seconds);
    let mut server = match listener {
        Some(listener) => {
            let local = listener.local_addr().context("listener has no address")?;
            let monitors = service::MonitorService::new(db.clone(), engine, notifier);
            let state = api::AppState::new(monitors, shutdown.clone(), edge);
            tracing::info!("listening on http://{local}");
            let server_shutdown = shutdown.clone();
            Some(tokio::spawn(api::serve(
                listener,
                state,
                async move { server_shutdown.cancelled().await },
                grace - worker::EngineTasks::write_margin(grace),
            )))
        }
        None => {
            drop((engine, notifier));
            None
        }
    };
    // Runs until shutdown is asked for, or until the server fails.
    let failed = match &mut server {
        Some(handle) => tokio::select! {
            served = handle => Some(served),
            () = shutdown.cancelled() => None,
        },
        None => {
            shutdown.cancelled().await;
            None
        }
    };
    // However it ended, stop in order within the one grace period: the server drains its
    // requests while the worker stops scheduling, finishes the checks in flight (abandoning
    // those past the grace) and writes what is queued.
    shutdown.cancel();
    let deadline = tokio::time::Instant::now() + grace;
    let drained = async {
        match (failed, server) {
            (Some(served), _) => served,
            (None, Some(handle)) => handle.await,
            (None, None) => Ok(Ok(())),
        }
    };
    let served = tasks.shutdown(deadline, grace, drained).await;
    served
        .context("HTTP server stopped unexpectedly")?
        .context("HTTP server failed")?;
    let _ = tokio::time::timeout_at(deadline, db.close()).await;
    tracing::info!("shut down cleanly");
    Ok(())
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

/// File descriptors kept free of the API's connections, beside one per check in flight and
/// per database connection: the broker, the listener, log files, DNS.
const RESERVED_FILES: u64 = 128;

/// How a process's open files are shared out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileShare {
    checks: usize,
    connections: usize,
}

/// Raises the open-file limit to its hard limit and shares it between checks in flight and
/// the API's connections, beside the database pool and [`RESERVED_FILES`], so neither can take
/// the descriptors the other needs: a check that cannot open a socket would report DOWN.
fn share_open_files(
    settings: &Settings,
    checks: Option<usize>,
    connections: Option<usize>,
) -> FileShare {
    let wanted = FileShare {
        checks: checks.unwrap_or(0),
        connections: connections.unwrap_or(0),
    };
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read or raise the open-file limit");
            return wanted;
        }
    };
    let reserved = u64::from(settings.db_max_connections) + RESERVED_FILES;
    let available = usize::try_from(limit.saturating_sub(reserved)).unwrap_or(usize::MAX);
    let share = split_files(available, wanted);
    if share != wanted {
        tracing::warn!(
            open_file_limit = limit,
            check_concurrency = share.checks,
            max_connections = share.connections,
            "CHECK_CONCURRENCY and MAX_CONNECTIONS lowered to fit the open-file limit; raise it (ulimit -n) to allow more"
        );
    }
    share
}

/// Shares `available` descriptors: everything wanted when it fits; else checks get what they
/// want within three quarters and connections the rest (at least a quarter, at least 16).
fn split_files(available: usize, wanted: FileShare) -> FileShare {
    if wanted.checks.saturating_add(wanted.connections) <= available {
        return wanted;
    }
    let floor = if wanted.connections == 0 {
        0
    } else {
        (available / 4).max(16)
    };
    let checks = wanted.checks.min(available.saturating_sub(floor));
    let connections = wanted.connections.min(available.saturating_sub(checks));
    FileShare {
        checks,
        connections,
    }
}

/// `health`: can the database (and the broker) be reached?
async fn health(settings: &Settings) -> anyhow::Result<()> {
    let db = open_db(settings).await?;
    db.ping().await.context("the database does not answer")?;
    if let Some(url) = rabbitmq_url(settings) {
        let amqp = config::amqp(url, &settings.rabbitmq_prefix).map_err(anyhow::Error::msg)?;
        tokio::time::timeout(
            Duration::from_secs(5),
            lapin::Connection::connect(&amqp.url, lapin::ConnectionProperties::default()),
        )
        .await
        .context("RabbitMQ did not answer within 5 s")?
        .context("cannot connect to RabbitMQ")?;
    }
    println!("ok");
    Ok(())
}

async fn migrate(settings: &Settings, action: MigrateAction) -> anyhow::Result<()> {
    let db = open_db(settings).await?;
    match action {
        MigrateAction::Up => db::migrate(db.connection(), db::Migration::Up).await?,
        MigrateAction::Down => db::migrate(db.connection(), db::Migration::Down).await?,
        MigrateAction::Fresh => db::migrate(db.connection(), db::Migration::Fresh).await?,
        MigrateAction::Status => {
            let migrations = Migrator::get_migration_with_status(db.connection()).await?;
            for m in migrations {
                println!(
                    "{:<8} {}",
                    format!("{:?}", m.status()).to_lowercase(),
                    m.name()
                );
            }
        }
    }
    Ok(())
}

fn spawn_signal_handler(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            _ = terminate => {}
        }
        tracing::info!("shutdown requested");
        token.cancel();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_files_are_shared_between_checks_and_connections_only_when_short() {
        let wanted = FileShare {
            checks: 1000,
            connections: 1024,
        };
        assert_eq!(split_files(100_000, wanted), wanted);
        // 1,024 files less the pool and the reserve: connections a quarter, checks the rest.
        let share = split_files(880, wanted);
        assert_eq!(
            share,
            FileShare {
                checks: 660,
                connections: 220
            }
        );
        assert_eq!(
            split_files(20, wanted),
            FileShare {
                checks: 4,
                connections: 16
            }
        );
        // Checks that want less leave the rest to connections.
        let few_checks = FileShare {
            checks: 200,
            connections: 1024,
        };
        assert_eq!(split_files(880, few_checks).connections, 680);
        let api_only = FileShare {
            checks: 0,
            connections: 1024,
        };
        assert_eq!(split_files(500, api_only).connections, 500);
    }
}
