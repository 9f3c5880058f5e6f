//! `serve`, `api`, `scheduler` and `worker`: build the application for the role and run it
//! until SIGINT or SIGTERM.

use tokio_util::sync::CancellationToken;

use crate::{
    app::Application,
    cli::Settings,
    config::{Config, Role},
};

/// Runs one role (or all of them) until SIGINT/SIGTERM, then shuts down in order.
pub(super) async fn run(settings: &Settings, role: Role) -> anyhow::Result<()> {
    let config = Config::load(settings, role)?;
    let app = Application::build(config).await?;
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());
    app.run_until_stopped(shutdown).await
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
