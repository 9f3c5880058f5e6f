//! The service in this test's own process: [`spawn_app`] builds a
//! [`monitor_manager::Application`] on port 0, as the binary would, and runs it on the test's
//! runtime, so a test needs no child process and learns the port from the application itself.

use monitor_manager::{cli::Cli, Application, Config, Role};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{Backend, Client, TestDb};

/// A service running in process (all roles) on its own fresh database.
pub struct InProcessApp {
    pub client: Client,
    pub db: TestDb,
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl std::ops::Deref for InProcessApp {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

/// Builds and starts the service on a fresh database of `backend`, listening on a free port
/// of 127.0.0.1, with `args` as extra command-line settings (`["--check-concurrency", "10"]`).
/// `None` when that database cannot be had outside CI (see [`TestDb::fresh`]).
pub async fn spawn_app(backend: Backend, args: &[&str]) -> Option<InProcessApp> {
    let db = TestDb::fresh(backend).await?;
    let mut argv = vec![
        "monitor-manager",
        "--database-url",
        &db.url,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
    ];
    argv.extend_from_slice(args);
    let cli = <Cli as clap::Parser>::try_parse_from(argv).expect("settings parse");
    let config = Config::load(&cli.settings, Role::All).expect("settings are valid");
    let app = Application::build(config)
        .await
        .expect("the service starts");
    let port = app.port().expect("the API runs in this role");
    let stop = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(stop.clone()));
    Some(InProcessApp {
        client: Client::new(format!("http://127.0.0.1:{port}")),
        db,
        stop,
        task,
    })
}

impl InProcessApp {
    /// Stops the service as SIGTERM would, and returns how its shutdown went.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.task.await?
    }
}
