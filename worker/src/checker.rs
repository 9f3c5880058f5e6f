//! The checker: one HTTP GET of a monitor's URL, bounded by its timeout for the whole
//! exchange, classified as UP or DOWN with a short reason. It never reads the body, so a huge,
//! endless or garbage body costs nothing, and every failure becomes a result, never a panic.

use std::{error::Error as StdError, time::Duration};

use chrono::{DateTime, SubsecRound, Utc};
use tokio::time::Instant;

use crate::model::CheckStatus;

/// Most redirects followed before a check is DOWN with "too many redirects".
pub const MAX_REDIRECTS: usize = 10;
/// Longest stored error text, in characters.
pub const MAX_ERROR_CHARS: usize = 200;

/// What one check found, before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutcome {
    /// When the check started.
    pub started_at: DateTime<Utc>,
    pub status: CheckStatus,
    /// The final HTTP status, `None` when no response came.
    pub status_code: Option<u16>,
    /// Milliseconds until the response headers (or the failure) arrived.
    pub response_time_ms: i64,
    /// A short reason for DOWN.
    pub error: Option<String>,
}

/// Runs checks over one shared HTTP client.
#[derive(Clone)]
pub struct Checker {
    client: reqwest::Client,
}

impl Checker {
    /// A checker that opens a fresh connection for every check, as a monitor should (a
    /// pooled connection would hide a server that stopped accepting new ones).
    pub fn new() -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("monitor-manager/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
            .pool_max_idle_per_host(0)
            .tcp_nodelay(true)
            .build()?;
        Ok(Self { client })
    }

    /// Checks `url`, giving the whole exchange at most `timeout`.
    pub async fn check(&self, url: &str, timeout: Duration) -> CheckOutcome {
        let started_at = Utc::now().trunc_subsecs(3);
        let start = Instant::now();
        let exchange = async {
            let response = self.client.get(url).send().await?;
            Ok::<_, reqwest::Error>(response.status())
            // The response (and its body) is dropped unread here.
        };
        let result = tokio::time::timeout(timeout, exchange).await;
        let elapsed_ms = i64::try_from(start.elapsed().as_millis()).unwrap_or(i64::MAX);
        let (status, status_code, error) = match result {
            Err(_) => (
                CheckStatus::Down,
                None,
                Some(format!("timeout: no response within {}", human(timeout))),
            ),
            Ok(Err(err)) => (CheckStatus::Down, None, Some(classify(&err, timeout))),
            Ok(Ok(code)) => {
                if code.is_success() || code.is_redirection() {
                    (CheckStatus::Up, Some(code.as_u16()), None)
                } else {
                    (
                        CheckStatus::Down,
                        Some(code.as_u16()),
                        Some(format!("HTTP status {}", code.as_u16())),
                    )
                }
            }
        };
        CheckOutcome {
            started_at,
            status,
            status_code,
            response_time_ms: elapsed_ms,
            error: error.map(|e| sanitize(&e)),
        }
    }
}

fn human(timeout: Duration) -> String {
    if timeout.subsec_millis() == 0 {
        format!("{}s", timeout.as_secs())
    } else {
        format!("{}ms", timeout.as_millis())
    }
}

/// A short, stable reason for a failed request.
fn classify(err: &reqwest::Error, timeout: Duration) -> String {
    if err.is_redirect() {
        return format!("too many redirects (more than {MAX_REDIRECTS})");
    }
    if err.is_timeout() {
        return format!("timeout: no response within {}", human(timeout));
    }
    if err.is_builder() {
        return "invalid URL".to_owned();
    }
    let chain = source_chain(err);
    let lower = chain.to_ascii_lowercase();
    if let Some(kind) = io_kind(err) {
        use std::io::ErrorKind as K;
        match kind {
            K::ConnectionRefused => return "connection refused".to_owned(),
            K::ConnectionReset => return "connection reset by peer".to_owned(),
            K::TimedOut => return format!("timeout: no response within {}", human(timeout)),
            K::HostUnreachable | K::NetworkUnreachable => return "host unreachable".to_owned(),
            _ => {}
        }
    }
    if lower.contains("dns error") || lower.contains("failed to lookup address") {
        return "DNS resolution failed".to_owned();
    }
    if lower.contains("certificate")
        || lower.contains("tls")
        || lower.contains("handshake")
        || lower.contains("invalidcontenttype")
    {
        return format!("TLS failure: {}", innermost(err));
    }
    if err.is_connect() {
        return format!("connection failed: {}", innermost(err));
    }
    if lower.contains("connection closed before message completed")
        || lower.contains("incompletemessage")
    {
        return "connection closed before a complete response".to_owned();
    }
    format!("invalid HTTP response: {}", innermost(err))
}

fn source_chain(err: &(dyn StdError + 'static)) -> String {
    let mut text = format!("{err:?}");
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(" | ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn innermost(err: &(dyn StdError + 'static)) -> String {
    let mut last: &(dyn StdError + 'static) = err;
    while let Some(s) = last.source() {
        last = s;
    }
    last.to_string()
}

fn io_kind(err: &(dyn StdError + 'static)) -> Option<std::io::ErrorKind> {
    let mut source = Some(err);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = s.source();
    }
    None
}

/// Makes error text safe to store and show: no control characters (NUL included), at most
/// [`MAX_ERROR_CHARS`] characters.
pub fn sanitize(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_ERROR_CHARS)
        .collect();
    if text.chars().count() > MAX_ERROR_CHARS {
        out.pop();
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_removes_control_characters_and_bounds_length() {
        assert_eq!(sanitize("a\0b\nc"), "a b c");
        let long = "x".repeat(1000);
        assert_eq!(sanitize(&long).chars().count(), MAX_ERROR_CHARS);
    }
}
