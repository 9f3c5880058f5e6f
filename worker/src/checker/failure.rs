//! Why a check got no usable answer, as a short, stable reason.

use std::{error::Error as StdError, net::IpAddr, time::Duration};

use domain::Blocked;

/// Longest stored error text, in characters.
pub const MAX_ERROR_CHARS: usize = 200;

/// Why a check got no HTTP status.
#[derive(Debug)]
pub(super) enum Failure {
    /// The URL (or a redirect's target) cannot be requested.
    InvalidUrl,
    /// The monitor's options cannot be run (a stored spec this version cannot use).
    Unusable(String),
    /// A redirect to a scheme other than http and https.
    RedirectScheme(String),
    TooManyRedirects(u8),
    /// The host name did not resolve.
    Dns,
    /// A DNS monitor's query got no answer: why.
    DnsAnswer(String),
    /// The address is blocked by the target policy.
    Blocked(IpAddr, Blocked),
    /// Connecting.
    Connect(Box<dyn StdError + Send + Sync>),
    /// The TLS handshake.
    Tls(std::io::Error),
    /// The HTTP exchange.
    Http(hyper::Error),
    /// The whole check ran out of time.
    TimedOut,
}

impl Failure {
    /// A short, stable reason.
    pub(super) fn describe(&self, timeout: Duration) -> String {
        match self {
            Failure::InvalidUrl => "invalid URL".to_owned(),
            Failure::Unusable(problem) => format!("check options cannot be used: {problem}"),
            Failure::RedirectScheme(scheme) => {
                format!("redirected to an unsupported URL scheme `{scheme}`")
            }
            Failure::TooManyRedirects(max) => format!("too many redirects (more than {max})"),
            Failure::Dns => "DNS resolution failed".to_owned(),
            Failure::DnsAnswer(why) => why.clone(),
            Failure::Blocked(ip, why) => {
                format!("blocked by the target policy: {ip} is {why}")
            }
            Failure::Connect(err) => {
                let err: &(dyn StdError + 'static) = err.as_ref();
                network_failure(err, timeout)
                    .unwrap_or_else(|| format!("connection failed: {}", innermost(err)))
            }
            Failure::Tls(err) => match err
                .get_ref()
                .and_then(|e| e.downcast_ref::<rustls::Error>())
            {
                Some(tls) => super::tls::describe(tls),
                None => network_failure(err, timeout)
                    .unwrap_or_else(|| format!("TLS failure: {}", innermost(err))),
            },
            Failure::Http(err) => network_failure(err, timeout).unwrap_or_else(|| {
                if err.is_incomplete_message() {
                    "connection closed before a complete response".to_owned()
                } else {
                    format!("invalid HTTP response: {}", innermost(err))
                }
            }),
            Failure::TimedOut => timed_out(timeout),
        }
    }
}

pub(super) fn timed_out(timeout: Duration) -> String {
    format!("timeout: no response within {}", human(timeout))
}

fn human(timeout: Duration) -> String {
    if timeout.subsec_millis() == 0 {
        format!("{}s", timeout.as_secs())
    } else {
        format!("{}ms", timeout.as_millis())
    }
}

/// The reason for a failure that an I/O error in `err`'s chain names.
fn network_failure(err: &(dyn StdError + 'static), timeout: Duration) -> Option<String> {
    use std::io::ErrorKind as K;
    Some(match io_kind(err)? {
        K::ConnectionRefused => "connection refused".to_owned(),
        K::ConnectionReset => "connection reset by peer".to_owned(),
        K::TimedOut => timed_out(timeout),
        K::HostUnreachable | K::NetworkUnreachable => "host unreachable".to_owned(),
        K::UnexpectedEof => "connection closed during the exchange".to_owned(),
        _ => return None,
    })
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
