//! The command line: subcommands and settings. Every setting also reads an environment
//! variable (and `.env`), so doc comments here are what `--help` shows.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// HTTP uptime monitoring: monitors, scheduled checks, history and live status changes over
/// GraphQL and REST.
///
/// With no subcommand it runs everything in one process (HTTP API, scheduler and check
/// workers) on the configured database, migrating it first.
#[derive(Debug, Parser)]
#[command(name = "monitor-manager", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything in one process: HTTP API, scheduler and check workers (the default).
    /// With RABBITMQ_URL it also joins a distributed deployment.
    Serve,
    /// Run only the HTTP API (GraphQL, REST, WebSockets). Manual checks run here; with
    /// RABBITMQ_URL, live events from every worker reach its subscribers.
    Api,
    /// Run only the scheduler: publish due checks to RabbitMQ. Needs RABBITMQ_URL and
    /// PostgreSQL; any number can run at once (each slot is claimed by exactly one).
    Scheduler,
    /// Run only a check worker: consume check jobs from RabbitMQ, check, store, publish.
    /// Needs RABBITMQ_URL; run as many as you like.
    Worker,
    /// Exit 0 when the database (and RabbitMQ, when RABBITMQ_URL is set) can be reached,
    /// 1 otherwise: a container health check.
    Health,
    /// Apply, revert or inspect database migrations.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Print the GraphQL schema (SDL) that the server builds.
    Schema,
}

#[derive(Debug, Clone, Copy, Subcommand)]
pub enum MigrateAction {
    /// Apply every pending migration.
    Up,
    /// Revert the newest applied migration.
    Down,
    /// List migrations and whether each is applied.
    Status,
    /// Drop every table and apply all migrations again (destroys data).
    Fresh,
}

/// Settings shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Port the HTTP server listens on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 2433, global = true)]
    pub port: u16,

    /// Address the HTTP server binds.
    #[arg(long, env = "HOST", default_value = "127.0.0.1", global = true)]
    pub host: String,

    /// Database URL: sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DB. Default: the
    /// SQLite file monitor-manager.db in the working directory, or, when DB_HOST is set, a
    /// PostgreSQL URL built from DB_HOST, DB_PORT, DB_USER, DB_PASSWORD and DB_NAME.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,

    /// PostgreSQL host (used only when DATABASE_URL is unset).
    #[arg(long, env = "DB_HOST", global = true)]
    pub db_host: Option<String>,

    /// PostgreSQL port (with DB_HOST).
    #[arg(long, env = "DB_PORT", default_value_t = 5432, global = true)]
    pub db_port: u16,

    /// PostgreSQL user (with DB_HOST).
    #[arg(long, env = "DB_USER", default_value = "postgres", global = true)]
    pub db_user: String,

    /// PostgreSQL password (with DB_HOST).
    #[arg(
        long,
        env = "DB_PASSWORD",
        default_value = "",
        global = true,
        hide_env_values = true,
        hide_default_value = true
    )]
    pub db_password: String,

    /// PostgreSQL database name (with DB_HOST).
    #[arg(
        long,
        env = "DB_NAME",
        default_value = "monitor_manager",
        global = true
    )]
    pub db_name: String,

    /// Largest number of pooled database connections.
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub db_max_connections: u32,

    /// Apply pending migrations at start (serve and the other roles).
    #[arg(long, env = "AUTO_MIGRATE", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub auto_migrate: bool,

    /// Most checks running at once in this process.
    #[arg(long, env = "CHECK_CONCURRENCY", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000), global = true)]
    pub check_concurrency: u32,

    /// Also block loopback, private (RFC 1918), carrier-grade NAT and unique-local addresses
    /// as check targets (link-local, metadata, multicast and broadcast are always blocked).
    #[arg(long, env = "BLOCK_PRIVATE_NETWORKS", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub block_private_networks: bool,

    /// Comma-separated networks (CIDRs) checks may always reach, overriding every block.
    #[arg(long, env = "ALLOWED_NETWORKS", global = true)]
    pub allowed_networks: Option<String>,

    /// A PEM file of CA certificates trusted by https checks besides the Mozilla roots.
    #[arg(long, env = "CHECK_CA_FILE", global = true)]
    pub check_ca_file: Option<std::path::PathBuf>,

    /// Threads that schedule and run checks in this process, each for a shard of the monitors
    /// (0: one per CPU core).
    #[arg(long, env = "CHECK_THREADS", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=256), global = true)]
    pub check_threads: u32,

    /// Worker threads of the runtime that serves the API (and the database pool and, on
    /// PostgreSQL, the result store). 0: half the CPU cores (at least one) when this process
    /// also runs checks on threads of their own (`serve` without RABBITMQ_URL), every core
    /// otherwise.
    #[arg(long, env = "API_THREADS", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=256), global = true)]
    pub api_threads: u32,

    /// RabbitMQ URL (amqp://USER:PASSWORD@HOST:5672/%2f). When set, check jobs and events
    /// travel through RabbitMQ (distributed mode); when unset, through in-process channels.
    #[arg(long, env = "RABBITMQ_URL", global = true, hide_env_values = true)]
    pub rabbitmq_url: Option<String>,

    /// Prefix of every RabbitMQ queue and exchange name (and of the PostgreSQL NOTIFY
    /// channel); deployments sharing a broker need different ones.
    #[arg(
        long,
        env = "RABBITMQ_PREFIX",
        default_value = "monitor_manager",
        global = true
    )]
    pub rabbitmq_prefix: String,

    /// Check events a live subscriber may fall behind by before it is told it lagged.
    #[arg(long, env = "EVENT_BUFFER", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(16..=1_000_000), global = true)]
    pub event_buffer: u32,

    /// Seconds that shutdown waits for checks in flight before giving up on them.
    #[arg(
        long,
        env = "SHUTDOWN_GRACE_SECONDS",
        default_value_t = 10,
        global = true
    )]
    pub shutdown_grace_seconds: u64,

    /// Browser origins (comma-separated, or `*`) allowed to call the API and open its
    /// WebSockets from another origin; the service's own origin is always allowed.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", default_value = "", global = true)]
    pub cors_allowed_origins: String,

    /// Host names (comma-separated, `*.example.com` for subdomains, or `*` for any) the API
    /// answers to besides IP addresses and `localhost`; other `Host` headers get 421.
    #[arg(long, env = "ALLOWED_HOSTS", default_value = "", global = true)]
    pub allowed_hosts: String,

    /// Most connections the API keeps open at once (HTTP and WebSocket); more wait to be
    /// accepted. Lowered to fit the open-file limit.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000), global = true)]
    pub max_connections: u32,

    /// Seconds a client has to send a request's headers; also how long an idle keep-alive
    /// connection stays open.
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub header_read_timeout_seconds: u64,

    /// Seconds a request may take, body and answer included (WebSockets excepted).
    #[arg(long, env = "REQUEST_TIMEOUT_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub request_timeout_seconds: u64,

    /// Seconds a GraphQL WebSocket client has to send `connection_init`.
    #[arg(long, env = "WS_INIT_TIMEOUT_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub ws_init_timeout_seconds: u64,

    /// Most subscriptions open on one GraphQL WebSocket.
    #[arg(long, env = "WS_MAX_SUBSCRIPTIONS", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000), global = true)]
    pub ws_max_subscriptions: u32,

    /// Seconds between the server's WebSocket keep-alive pings; a client silent for two
    /// intervals is disconnected.
    #[arg(long, env = "WS_KEEPALIVE_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub ws_keepalive_seconds: u64,
}

/// Parses the command line and environment (after loading `.env`). On a mistake it prints
/// one line naming the setting and returns the exit code.
pub fn parse() -> Result<Cli, ExitCode> {
    // A missing .env is normal; a malformed one is a configuration error.
    if let Err(err) = dotenvy::dotenv() {
        if !err.not_found() {
            eprintln!("error: cannot read .env: {err}");
            return Err(ExitCode::from(2));
        }
    }
    Cli::try_parse().map_err(|err| {
        use clap::error::ErrorKind;
        match err.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                let _ = err.print();
                ExitCode::SUCCESS
            }
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                let _ = err.print();
                ExitCode::from(2)
            }
            _ => {
                let rendered = err.to_string();
                let first = rendered.lines().next().unwrap_or("invalid arguments");
                eprintln!("{first} (see monitor-manager --help)");
                ExitCode::from(2)
            }
        }
    })
}
