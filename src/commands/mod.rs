//! The subcommands, one module each, on a tokio runtime; [`main`] dispatches.

mod health;
mod migrate;
mod serve;

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

use crate::{
    cli::{Cli, Command, Settings},
    config::{self, Role},
};

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
            Command::Serve => serve::run(&cli.settings, Role::All).await,
            Command::Api => serve::run(&cli.settings, Role::Api).await,
            Command::Scheduler => serve::run(&cli.settings, Role::Scheduler).await,
            Command::Worker => serve::run(&cli.settings, Role::Worker).await,
            Command::Health => health::run(&cli.settings).await,
            Command::Migrate { action } => migrate::run(&cli.settings, action).await,
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
    let own_check_threads =
        matches!(command, Command::Serve) && config::rabbitmq_url(settings).is_none();
    match settings.api_threads {
        0 if own_check_threads => (cores / 2).max(1),
        0 => cores,
        n => n as usize,
    }
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

pub(crate) async fn open_db(settings: &Settings) -> anyhow::Result<store::Database> {
    open_db_with(settings, settings.db_max_connections).await
}

/// The database through at most `connections` connections.
pub(crate) async fn open_db_with(
    settings: &Settings,
    connections: u32,
) -> anyhow::Result<store::Database> {
    let url = config::database_url(settings).map_err(anyhow::Error::msg)?;
    let db = store::Database::connect(&url, connections).await?;
    tracing::info!(database = %url.redacted(), "database connected");
    Ok(db)
}
