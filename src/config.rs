//! Turns [`Settings`] into a checked configuration: the database URL chosen and validated.

use store::redact;
pub use store::{Backend, DatabaseUrl};

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
    fn url_parts_are_percent_encoded() {
        assert_eq!(encode("p@ss:w/rd"), "p%40ss%3Aw%2Frd");
    }
}
