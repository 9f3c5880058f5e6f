//! Turns [`Settings`] into a checked [`Config`], parsed once: the database URL chosen and
//! validated, the edge policy, and the [`Topology`] (which roles run in this process).

use std::{net::SocketAddr, time::Duration};

use anyhow::Context as _;
use store::redact;
pub use store::{Backend, DatabaseUrl};
use worker::Scheduling;

use crate::cli::Settings;

/// Default SQLite file, in the working directory.
pub const DEFAULT_SQLITE_URL: &str = "sqlite://monitor-manager.db";

/// Picks the database URL: DATABASE_URL, else one built from DB_HOST..., else SQLite.
pub fn database_url(settings: &Settings) -> Result<DatabaseUrl, String> {
    let url = match (&settings.database_url, &settings.db_host) {
        (Some(url), _) if !url.trim().is_empty() => url.trim().to_owned(),
        (_, Some(host)) if !host.trim().is_empty() => format!(
            "postgres://{}:{}@{}:{}/{}",
            encode(&settings.db_user),
            encode(&settings.db_password),
            host.trim(),
            settings.db_port,
            encode(&settings.db_name)
        ),
        _ => DEFAULT_SQLITE_URL.to_owned(),
    };
    let backend = if url.starts_with("sqlite:") {
        if url.contains(":memory:") || url.contains("mode=memory") {
            return Err(format!(
                "DATABASE_URL `{url}` is an in-memory SQLite database, which each of the service's connections would see as a different, empty database; use a file (sqlite://monitor-manager.db)"
            ));
        }
        Backend::Sqlite
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Backend::Postgres
    } else {
        return Err(format!(
            "DATABASE_URL must start with sqlite:// or postgres:// (got `{}`)",
            redact(&url)
        ));
    };
    Ok(DatabaseUrl { url, backend })
}

/// The edge policy: origins, hosts and connection limits.
pub fn edge(settings: &Settings) -> Result<api::edge::EdgeConfig, String> {
    use api::edge::{AllowedHosts, EdgeConfig, Limits, Origins};
    use std::time::Duration;
    Ok(EdgeConfig {
        cors_allowed_origins: Origins::parse(&settings.cors_allowed_origins)?,
        allowed_hosts: AllowedHosts::parse(&settings.allowed_hosts)?,
        limits: Limits {
            max_connections: settings.max_connections as usize,
            header_read_timeout: Duration::from_secs(settings.header_read_timeout_seconds),
            request_timeout: Duration::from_secs(settings.request_timeout_seconds),
            ws_init_timeout: Duration::from_secs(settings.ws_init_timeout_seconds),
            ws_max_subscriptions: settings.ws_max_subscriptions as usize,
            ws_keepalive: Duration::from_secs(settings.ws_keepalive_seconds),
            ..Limits::default()
        },
    })
}

/// Checks a RabbitMQ URL and prefix.
pub fn amqp(url: &str, prefix: &str) -> Result<worker::AmqpConfig, String> {
    let url = url.trim();
    if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
        return Err(format!(
            "RABBITMQ_URL must start with amqp:// or amqps:// (got `{}`)",
            redact(url)
        ));
    }
    let prefix = prefix.trim();
    if prefix.is_empty()
        || prefix.len() > 100
        || !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
    {
        return Err("RABBITMQ_PREFIX must be 1 to 100 letters, digits, `_`, `-` or `.`".into());
    }
    Ok(worker::AmqpConfig {
        url: url.to_owned(),
        prefix: prefix.to_owned(),
    })
}

/// What a process was asked to run (its subcommand).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `serve`: everything.
    All,
    /// `api`: the HTTP API (and manual checks).
    Api,
    /// `scheduler`: the lease scheduler.
    Scheduler,
    /// `worker`: consuming check jobs.
    Worker,
}

/// Which pieces run in this process, decided once from the role, `RABBITMQ_URL` and the
/// database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topology {
    pub role: Role,
    /// RabbitMQ is configured: check jobs and live events go through it.
    pub distributed: bool,
    /// The HTTP API runs here.
    pub serves_http: bool,
    /// Which scheduler runs here.
    pub scheduling: Scheduling,
    /// This process consumes check jobs from RabbitMQ.
    pub consume_jobs: bool,
    /// This process feeds live events from RabbitMQ to its subscribers.
    pub relay_events: bool,
}

impl Topology {
    /// The pieces of `role`; the error says which setting the role is missing.
    pub fn of(role: Role, distributed: bool, backend: Backend) -> Result<Self, String> {
        let scheduling = match role {
            Role::All if distributed && backend == Backend::Postgres => Scheduling::Leases,
            Role::All => Scheduling::InProcess,
            Role::Scheduler if !distributed => return Err(
                "the scheduler role needs RABBITMQ_URL (without it, run `monitor-manager serve`)"
                    .into(),
            ),
            Role::Scheduler if backend != Backend::Postgres => {
                return Err(
                    "the scheduler role needs PostgreSQL: set DATABASE_URL=postgres://...".into(),
                )
            }
            Role::Scheduler => Scheduling::Leases,
            Role::Worker if !distributed => {
                return Err(
                    "the worker role needs RABBITMQ_URL (without it, run `monitor-manager serve`)"
                        .into(),
                )
            }
            Role::Api | Role::Worker => Scheduling::Off,
        };
        let serves_http = matches!(role, Role::All | Role::Api);
        Ok(Self {
            role,
            distributed,
            serves_http,
            scheduling,
            consume_jobs: distributed && matches!(role, Role::All | Role::Worker),
            relay_events: distributed && serves_http,
        })
    }

    /// Whether checks run here (every role but the scheduler; the API runs the manual ones).
    pub fn runs_checks(&self) -> bool {
        self.role != Role::Scheduler
    }
}

/// Everything a process needs to start, checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub topology: Topology,
    pub database: DatabaseUrl,
    pub db_max_connections: u32,
    pub auto_migrate: bool,
    /// Where the API listens (when it runs here; port 0 picks a free one).
    pub listen: Option<SocketAddr>,
    pub edge: api::edge::EdgeConfig,
    pub engine: worker::EngineConfig,
    pub shutdown_grace: Duration,
}

impl Config {
    /// Parses and checks the settings for `role`; the error names the setting at fault.
    pub fn load(settings: &Settings, role: Role) -> anyhow::Result<Self> {
        let database = database_url(settings).map_err(anyhow::Error::msg)?;
        let amqp = rabbitmq_url(settings)
            .map(|url| amqp(url, &settings.rabbitmq_prefix))
            .transpose()
            .map_err(anyhow::Error::msg)?;
        let topology =
            Topology::of(role, amqp.is_some(), database.backend).map_err(anyhow::Error::msg)?;
        let edge = edge(settings).map_err(anyhow::Error::msg)?;
        let listen = if topology.serves_http {
            let addr: SocketAddr = format!("{}:{}", settings.host, settings.port)
                .parse()
                .or_else(|_| format!("[{}]:{}", settings.host, settings.port).parse())
                .with_context(|| format!("HOST `{}` is not an IP address", settings.host))?;
            Some(addr)
        } else {
            None
        };
        let engine = worker::EngineConfig {
            check_concurrency: settings.check_concurrency as usize,
            check_threads: match settings.check_threads {
                0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
                n => n as usize,
            },
            event_buffer: settings.event_buffer as usize,
            scheduling: topology.scheduling,
            consume_jobs: topology.consume_jobs,
            relay_events: topology.relay_events,
            amqp,
            checks: worker::CheckerSettings {
                policy: domain::TargetPolicy {
                    block_private: settings.block_private_networks,
                    allowed: domain::TargetPolicy::parse_networks(
                        settings.allowed_networks.as_deref().unwrap_or(""),
                    )
                    .map_err(|problem| anyhow::anyhow!("ALLOWED_NETWORKS: {problem}"))?,
                },
                ca_file: settings
                    .check_ca_file
                    .clone()
                    .filter(|p| !p.as_os_str().is_empty()),
            },
        };
        Ok(Self {
            topology,
            database,
            db_max_connections: settings.db_max_connections,
            auto_migrate: settings.auto_migrate,
            listen,
            edge,
            engine,
            shutdown_grace: Duration::from_secs(settings.shutdown_grace_seconds),
        })
    }
}

/// `RABBITMQ_URL` when it is set to something: blank counts as unset (distributed mode off).
pub fn rabbitmq_url(settings: &Settings) -> Option<&str> {
    settings
        .rabbitmq_url
        .as_deref()
        .filter(|url| !url.trim().is_empty())
}

fn encode(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for byte in part.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_memory_sqlite_is_refused_with_a_reason() {
        use clap::Parser as _;
        for url in ["sqlite::memory:", "sqlite://file?mode=memory"] {
            let cli = crate::cli::Cli::try_parse_from(["monitor-manager", "--database-url", url])
                .expect("arguments parse");
            let err = database_url(&cli.settings).expect_err("in-memory SQLite is refused");
            assert!(err.contains("in-memory SQLite"), "{err}");
        }
        let cli =
            crate::cli::Cli::try_parse_from(["monitor-manager", "--database-url", "sqlite://a.db"])
                .expect("arguments parse");
        assert_eq!(
            database_url(&cli.settings).expect("a file is fine").backend,
            Backend::Sqlite
        );
    }

    #[test]
    fn each_role_runs_its_pieces_and_names_what_it_lacks() {
        let all = Topology::of(Role::All, false, Backend::Sqlite).unwrap();
        assert_eq!(all.scheduling, Scheduling::InProcess);
        assert!(all.serves_http && !all.consume_jobs && !all.relay_events);
        let all = Topology::of(Role::All, true, Backend::Postgres).unwrap();
        assert_eq!(all.scheduling, Scheduling::Leases);
        assert!(all.consume_jobs && all.relay_events);
        // Distributed on SQLite: the in-process scheduler publishes jobs.
        let all = Topology::of(Role::All, true, Backend::Sqlite).unwrap();
        assert_eq!(all.scheduling, Scheduling::InProcess);
        let api = Topology::of(Role::Api, true, Backend::Postgres).unwrap();
        assert_eq!(api.scheduling, Scheduling::Off);
        assert!(api.serves_http && api.relay_events && !api.consume_jobs && api.runs_checks());
        let scheduler = Topology::of(Role::Scheduler, true, Backend::Postgres).unwrap();
        assert!(!scheduler.serves_http && !scheduler.runs_checks() && !scheduler.consume_jobs);
        let worker = Topology::of(Role::Worker, true, Backend::Sqlite).unwrap();
        assert!(worker.consume_jobs && !worker.serves_http);
        for (role, backend, lacking) in [
            (Role::Scheduler, Backend::Postgres, "RABBITMQ_URL"),
            (Role::Worker, Backend::Postgres, "RABBITMQ_URL"),
        ] {
            let err = Topology::of(role, false, backend).unwrap_err();
            assert!(err.contains(lacking), "{err}");
        }
        let err = Topology::of(Role::Scheduler, true, Backend::Sqlite).unwrap_err();
        assert!(err.contains("PostgreSQL"), "{err}");
    }

    #[test]
    fn url_parts_are_percent_encoded() {
        assert_eq!(encode("p@ss:w/rd"), "p%40ss%3Aw%2Frd");
    }
}
