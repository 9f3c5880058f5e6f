//! Why the database cannot be opened, in one line that says what to do: a SQLite file in a
//! missing directory, and each way a PostgreSQL connection fails (refused, unknown host, no
//! such database, authentication, TLS, no answer).

use std::{io::ErrorKind, path::PathBuf, str::FromStr as _, time::Duration};

use sea_orm::{
    sqlx::{
        self,
        postgres::{PgConnectOptions, PgConnection},
        sqlite::SqliteConnectOptions,
        Connection as _,
    },
    DbErr, RuntimeErr,
};

use crate::url::{Backend, DatabaseUrl};

/// How long the first PostgreSQL connection attempt may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The file a SQLite URL names, once its directory is known to exist.
pub fn sqlite_database_path(url: &DatabaseUrl) -> anyhow::Result<PathBuf> {
    let options = SqliteConnectOptions::from_str(&url.url).map_err(|err| {
        anyhow::anyhow!(
            "DATABASE_URL `{}` is not a valid SQLite URL: {err}",
            url.redacted()
        )
    })?;
    let file = options.get_filename().to_path_buf();
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            let shown = dir.display().to_string();
            let what = if dir.exists() {
                "is not a directory"
            } else {
                "does not exist"
            };
            anyhow::bail!(
                "the directory `{shown}` for the SQLite database {what}; create it (mkdir -p {}) or point DATABASE_URL elsewhere",
                shell_word(&shown)
            );
        }
    }
    Ok(file)
}

/// One plain connection attempt, so that a refused port or a missing database is reported at
/// once and by name instead of as a pool timeout.
pub async fn probe_postgres(url: &DatabaseUrl) -> anyhow::Result<()> {
    let options = PgConnectOptions::from_str(&url.url).map_err(|err| {
        anyhow::anyhow!(
            "DATABASE_URL `{}` is not a valid PostgreSQL URL: {err}",
            url.redacted()
        )
    })?;
    let target = postgres_target(&options);
    match tokio::time::timeout(PROBE_TIMEOUT, PgConnection::connect_with(&options)).await {
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
            Ok(())
        }
        Ok(Err(err)) => Err(anyhow::Error::msg(postgres_problem(&err, &options, &target))),
        Err(_) => anyhow::bail!(
            "cannot connect to PostgreSQL at {target}: no answer within {} s; check the host and port in DATABASE_URL (or DB_HOST and DB_PORT) and that no firewall drops the connection",
            PROBE_TIMEOUT.as_secs()
        ),
    }
}

/// The line for a pool that could not open (rare: the checks above passed just before).
pub fn pool_failure(url: &DatabaseUrl, err: &DbErr) -> String {
    match url.backend {
        Backend::Postgres => match (err, PgConnectOptions::from_str(&url.url)) {
            (DbErr::Conn(RuntimeErr::SqlxError(e)), Ok(options)) => {
                postgres_problem(e, &options, &postgres_target(&options))
            }
            _ => format!(
                "cannot connect to the database at {}: {}; is the server running?",
                url.redacted(),
                innermost(err)
            ),
        },
        Backend::Sqlite => format!(
            "cannot open the SQLite database at {}: {}; check that the file and its directory are writable",
            url.redacted(),
            innermost(err)
        ),
    }
}

/// `host:port`, or the socket directory for a Unix-socket connection.
fn postgres_target(options: &PgConnectOptions) -> String {
    let host = options.get_host();
    if host.starts_with('/') {
        format!("{host} (port {})", options.get_port())
    } else if host.contains(':') {
        format!("[{host}]:{}", options.get_port())
    } else {
        format!("{host}:{}", options.get_port())
    }
}

/// What went wrong with a PostgreSQL connection attempt, and what to do about it.
fn postgres_problem(err: &sqlx::Error, options: &PgConnectOptions, target: &str) -> String {
    let user = options.get_username();
    let check_credentials =
        "check the user and password in DATABASE_URL (or DB_USER and DB_PASSWORD)";
    match err {
        sqlx::Error::Io(io) => {
            let text = io.to_string();
            let reason = match io.kind() {
                ErrorKind::ConnectionRefused => "connection refused; is the server running?".to_owned(),
                ErrorKind::TimedOut => "the connection timed out; check the host and port, and that no firewall drops the connection".to_owned(),
                ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => {
                    "host unreachable; check the host in DATABASE_URL (or DB_HOST)".to_owned()
                }
                ErrorKind::NotFound if options.get_host().starts_with('/') => {
                    "no server socket there; is the server running?".to_owned()
                }
                // rustls's failures arrive as I/O errors.
                _ if is_tls_text(&text) => tls_advice(&text),
                _ if text.contains("lookup address") || text.contains("resolve") => format!(
                    "unknown host `{}`; check the host in DATABASE_URL (or DB_HOST)",
                    options.get_host()
                ),
                _ => text,
            };
            format!("cannot connect to PostgreSQL at {target}: {reason}")
        }
        sqlx::Error::Tls(tls) => format!(
            "cannot connect to PostgreSQL at {target}: {}",
            tls_advice(&tls.to_string())
        ),
        sqlx::Error::Database(db) => {
            let message = db.message();
            match db.code().as_deref() {
                Some("3D000") => {
                    let name = options.get_database().unwrap_or(user);
                    format!(
                        "the PostgreSQL database `{name}` does not exist on {target}; create it (createdb {}, or CREATE DATABASE {}) or point DATABASE_URL (or DB_NAME) at another database",
                        shell_word(name),
                        sql_identifier(name)
                    )
                }
                Some("28P01") => format!(
                    "PostgreSQL at {target} refused user `{user}`: password authentication failed; {check_credentials}"
                ),
                Some(code) if code.starts_with("28") => format!(
                    "PostgreSQL at {target} refused user `{user}`: {message}; {check_credentials}, and the server's pg_hba.conf"
                ),
                Some("57P03") => format!(
                    "PostgreSQL at {target} is starting up or shutting down ({message}); try again in a moment"
                ),
                Some("53300") => format!(
                    "PostgreSQL at {target} has no connection slot free ({message}); lower DB_MAX_CONNECTIONS or raise the server's max_connections"
                ),
                _ => format!("PostgreSQL at {target} refused the connection: {message}"),
            }
        }
        sqlx::Error::Protocol(text) => format!(
            "cannot connect to PostgreSQL at {target}: what answers there is not PostgreSQL ({text}); check the host and port in DATABASE_URL (or DB_HOST and DB_PORT)"
        ),
        other => format!("cannot connect to PostgreSQL at {target}: {other}"),
    }
}

fn is_tls_text(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    ["certificate", "tls", "handshake", "ssl"]
        .iter()
        .any(|word| lower.contains(word))
}

fn tls_advice(cause: &str) -> String {
    format!("TLS failed ({cause}); check sslmode and sslrootcert in DATABASE_URL against the server's certificate")
}

/// The innermost cause's text: sea-orm's and sqlx's wrappers repeat it at every level.
fn innermost(err: &(dyn std::error::Error + 'static)) -> String {
    let mut last = err;
    while let Some(source) = last.source() {
        last = source;
    }
    last.to_string()
}

/// A word a shell reads back as itself: as is when plain, else in single quotes.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=+@%,".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A PostgreSQL identifier that names exactly `name`: bare when lower case, else quoted.
fn sql_identifier(name: &str) -> String {
    let bare = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if bare {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_for_the_shell_and_for_sql_only_when_needed() {
        assert_eq!(shell_word("x/y"), "x/y");
        assert_eq!(shell_word("my dir/it's"), r"'my dir/it'\''s'");
        assert_eq!(sql_identifier("monitor_db"), "monitor_db");
        assert_eq!(sql_identifier("Monitor-DB"), "\"Monitor-DB\"");
    }
}
