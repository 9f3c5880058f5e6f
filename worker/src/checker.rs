//! The checker: one HTTP GET of a monitor's URL, bounded by its timeout for the whole
//! exchange (redirects included), classified as UP or DOWN with a short reason. It never reads
//! the body, so a huge, endless or garbage body costs nothing, and every failure becomes a
//! result, never a panic.
//!
//! Plain `http` hops go straight through hyper's HTTP/1 connection over a TCP stream from
//! hyper-util's connector (DNS, happy eyeballs), driven on the checking task itself. `https`
//! hops, and URLs with credentials (sent as basic auth), go through reqwest (rustls, HTTP/2 by
//! ALPN). Redirects are followed here for both, so a hop may switch transport. The plain path
//! is what most checks take and what the benchmark measures: going through reqwest's client
//! cost every check a URL parse with IDNA, the proxy matcher, the connection pool's bookkeeping
//! (with pooling off) and a spawned connection task with its cross-task wake-ups.

use std::{
    error::Error as StdError,
    pin::{pin, Pin},
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use chrono::{SubsecRound, Utc};
use http::{
    header::{ACCEPT, HOST, LOCATION, USER_AGENT},
    HeaderValue, Request, StatusCode, Uri,
};
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::{client::legacy::connect::HttpConnector, rt::TokioIo};
use tokio::{net::TcpStream, time::Instant};
use tower_service::Service;
use url::{Position, Url};

use domain::CheckStatus;

/// Most redirects followed before a check is DOWN with "too many redirects".
pub const MAX_REDIRECTS: usize = 10;
/// Longest stored error text, in characters.
pub const MAX_ERROR_CHARS: usize = 200;

const AGENT: &str = concat!("monitor-manager/", env!("CARGO_PKG_VERSION"));

pub use domain::CheckOutcome;

/// A monitor's URL, parsed once for all of its checks: a URL parse (with IDNA), the host
/// header and the two URIs of a plain request were a few per cent of a check's CPU when every
/// check did them again. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CheckUrl(Arc<ParsedUrl>);

#[derive(Debug)]
struct ParsedUrl {
    text: Box<str>,
    /// What a plain `http` request to it needs, when it takes the plain path (the URL parsed
    /// and checked); `None` for every other URL, which is parsed at each check.
    plain: Option<PlainTarget>,
}

impl CheckUrl {
    pub fn new(text: &str) -> Self {
        let plain = Url::parse(text)
            .ok()
            .filter(takes_plain_path)
            .and_then(|url| PlainTarget::of(&url).ok());
        Self(Arc::new(ParsedUrl {
            text: text.into(),
            plain,
        }))
    }

    /// The URL as the monitor holds it.
    pub fn as_str(&self) -> &str {
        &self.0.text
    }

    fn parse(&self) -> Result<Url, Failure> {
        Url::parse(&self.0.text).map_err(|_| Failure::InvalidUrl)
    }
}

/// Where a plain `http` GET goes and what it sends: slices of one copy of the normalised URL
/// (about 300 bytes a monitor in all), so a check only bumps reference counts.
#[derive(Debug, Clone)]
struct PlainTarget {
    /// `Host`: the host, and the port when the URL names one.
    host: HeaderValue,
    /// Scheme, host and port: what the connector connects to.
    authority: Uri,
    /// Path and query: the request target.
    path: Uri,
}

impl PlainTarget {
    fn of(url: &Url) -> Result<Self, Failure> {
        let text = Bytes::copy_from_slice(url.as_str().as_bytes());
        let slice = |from: Position, to: Position| text.slice(url[..from].len()..url[..to].len());
        let host = slice(Position::BeforeHost, Position::AfterPort);
        if host.is_empty() {
            return Err(Failure::InvalidUrl);
        }
        Ok(Self {
            host: HeaderValue::from_maybe_shared(host).map_err(|_| Failure::InvalidUrl)?,
            authority: Uri::from_maybe_shared(slice(Position::BeforeScheme, Position::BeforePath))
                .map_err(|_| Failure::InvalidUrl)?,
            path: Uri::from_maybe_shared(slice(Position::BeforePath, Position::AfterQuery))
                .map_err(|_| Failure::InvalidUrl)?,
        })
    }

    /// The request: built directly rather than through `Request::builder`, which moves the
    /// request's parts through a closure at every header (a visible share of a check's
    /// memory copies).
    fn request(&self) -> Request<Empty<Bytes>> {
        let mut request = Request::new(Empty::new());
        *request.uri_mut() = self.path.clone();
        let headers = request.headers_mut();
        headers.reserve(3);
        headers.insert(HOST, self.host.clone());
        headers.insert(USER_AGENT, HeaderValue::from_static(AGENT));
        headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        request
    }
}

/// Plain `http` without credentials goes straight through hyper; the rest through reqwest.
fn takes_plain_path(url: &Url) -> bool {
    url.scheme() == "http" && url.username().is_empty() && url.password().is_none()
}

/// Runs checks. Every check opens fresh connections, as a monitor should (a pooled
/// connection would hide a server that stopped accepting new ones).
#[derive(Clone)]
pub struct Checker {
    /// Plain TCP connections for `http` hops.
    connector: HttpConnector,
    /// For `https` hops and URLs with credentials; it follows no redirect itself (`check`
    /// does).
    client: reqwest::Client,
}

/// Why a check got no HTTP status.
#[derive(Debug)]
enum Failure {
    /// The URL (or a redirect's target) cannot be requested.
    InvalidUrl,
    /// A redirect to a scheme other than http and https.
    RedirectScheme(String),
    TooManyRedirects,
    /// Resolving or connecting on a plain hop.
    Connect(Box<dyn StdError + Send + Sync>),
    /// The exchange on a plain hop.
    Http(hyper::Error),
    /// A hop through reqwest.
    Client(reqwest::Error),
}

impl Checker {
    pub fn new() -> anyhow::Result<Self> {
        // No TCP_NODELAY on the plain path (one system call less per check): the request
        // head goes out in one write, and Nagle's algorithm only holds back data sent while
        // earlier data is unacknowledged.
        let connector = HttpConnector::new();
        let client = reqwest::Client::builder()
            .user_agent(AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .tcp_nodelay(true)
            .no_proxy()
            .build()?;
        Ok(Self { connector, client })
    }

    /// Checks `url`, giving the whole exchange at most `timeout`.
    pub async fn check(&self, url: &str, timeout: Duration) -> CheckOutcome {
        self.check_url(&CheckUrl::new(url), timeout).await
    }

    /// Checks an already parsed URL, giving the whole exchange at most `timeout`.
    pub async fn check_url(&self, url: &CheckUrl, timeout: Duration) -> CheckOutcome {
        let started_at = Utc::now().trunc_subsecs(3);
        let start = Instant::now();
        let result = tokio::time::timeout(timeout, self.follow(url)).await;
        let elapsed_ms = i64::try_from(start.elapsed().as_millis()).unwrap_or(i64::MAX);
        let (status, status_code, error) = match result {
            Err(_) => (CheckStatus::Down, None, Some(timed_out(timeout))),
            Ok(Err(failure)) => (CheckStatus::Down, None, Some(failure.describe(timeout))),
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

    /// GETs `url`, following at most [`MAX_REDIRECTS`] redirects, to the final status.
    async fn follow(&self, first: &CheckUrl) -> Result<StatusCode, Failure> {
        // The current hop's URL, parsed only when needed: a plain URL's first hop goes out
        // from its prepared target, and is parsed only to resolve a redirect against it.
        let mut url: Option<Url> = None;
        let mut redirects = 0;
        loop {
            let prepared = first.0.plain.as_ref().filter(|_| url.is_none());
            let (status, location) = match prepared {
                Some(target) => self.get_plain(target).await?,
                None => {
                    let current = url.take().map_or_else(|| first.parse(), Ok)?;
                    let answer = match current.scheme() {
                        "http" if takes_plain_path(&current) => {
                            self.get_plain(&PlainTarget::of(&current)?).await?
                        }
                        "http" | "https" => self.get_client(&current).await?,
                        _ if redirects == 0 => return Err(Failure::InvalidUrl),
                        other => return Err(Failure::RedirectScheme(other.to_owned())),
                    };
                    url = Some(current);
                    answer
                }
            };
            // The statuses reqwest and browsers follow; another 3xx is the final answer, and
            // so is a redirect without a usable Location.
            let followed = matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308);
            let Some(target) = location
                .as_ref()
                .and_then(|value| value.to_str().ok())
                .filter(|_| followed)
            else {
                return Ok(status);
            };
            let base = url.take().map_or_else(|| first.parse(), Ok)?;
            match base.join(target) {
                Ok(next) => {
                    if redirects == MAX_REDIRECTS {
                        return Err(Failure::TooManyRedirects);
                    }
                    redirects += 1;
                    url = Some(next);
                }
                Err(_) => return Ok(status),
            }
        }
    }

    /// One GET over a fresh plain connection, driven on this task: the response head's
    /// status and Location; the connection (and any body) is dropped unread.
    async fn get_plain(
        &self,
        target: &PlainTarget,
    ) -> Result<(StatusCode, Option<HeaderValue>), Failure> {
        let request = target.request();
        let stream = self
            .connector
            .clone()
            .call(target.authority.clone())
            .await
            .map_err(|err| Failure::Connect(err.into()))?;
        // Closed with a reset, not a FIN (as HAProxy closes its health checks): neither side
        // keeps the connection in TIME_WAIT, and the close is one packet instead of a
        // shutdown, a FIN from each side and their acknowledgements. The response is
        // already in, so nothing the check needs is lost.
        stream
            .inner()
            .set_zero_linger()
            .map_err(|err| Failure::Connect(err.into()))?;
        let stream = ResetOnClose(stream);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(stream)
            .await
            .map_err(Failure::Http)?;
        let mut connection = pin!(connection);
        let mut response = pin!(sender.send_request(request));
        let response = tokio::select! {
            biased;
            response = &mut response => response,
            // The connection ended first: its error is the exchange's, or (a clean end)
            // the response future has its answer already.
            ended = &mut connection => match ended {
                Err(err) => return Err(Failure::Http(err)),
                Ok(()) => response.await,
            },
        }
        .map_err(Failure::Http)?;
        Ok((response.status(), response.headers().get(LOCATION).cloned()))
    }

    /// One GET through reqwest: the status and Location.
    async fn get_client(&self, url: &Url) -> Result<(StatusCode, Option<HeaderValue>), Failure> {
        let response = self
            .client
            .get(url.clone())
            .send()
            .await
            .map_err(Failure::Client)?;
        Ok((response.status(), response.headers().get(LOCATION).cloned()))
    }
}

/// A connection that hyper cannot shut down for writing: hyper shuts a connection down once
/// the server said `Connection: close`, which sends a FIN; the connection is instead reset
/// when it is dropped (with `SO_LINGER` zero).
struct ResetOnClose(TokioIo<TcpStream>);

impl hyper::rt::Read for ResetOnClose {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for ResetOnClose {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Failure {
    /// A short, stable reason.
    fn describe(&self, timeout: Duration) -> String {
        match self {
            Failure::InvalidUrl => "invalid URL".to_owned(),
            Failure::RedirectScheme(scheme) => {
                format!("redirected to an unsupported URL scheme `{scheme}`")
            }
            Failure::TooManyRedirects => {
                format!("too many redirects (more than {MAX_REDIRECTS})")
            }
            Failure::Connect(err) => {
                let err: &(dyn StdError + 'static) = err.as_ref();
                network_failure(err, timeout).unwrap_or_else(|| {
                    if names_dns_failure(&source_chain(err).to_ascii_lowercase()) {
                        "DNS resolution failed".to_owned()
                    } else {
                        format!("connection failed: {}", innermost(err))
                    }
                })
            }
            Failure::Http(err) => network_failure(err, timeout).unwrap_or_else(|| {
                if err.is_incomplete_message() {
                    "connection closed before a complete response".to_owned()
                } else {
                    format!("invalid HTTP response: {}", innermost(err))
                }
            }),
            Failure::Client(err) => classify_client(err, timeout),
        }
    }
}

fn timed_out(timeout: Duration) -> String {
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
        _ => return None,
    })
}

/// Whether an error chain's text (lower case) names a failed name lookup (hyper-util's
/// resolver says "dns error", getaddrinfo "failed to lookup address").
fn names_dns_failure(chain: &str) -> bool {
    chain.contains("dns error") || chain.contains("failed to lookup address")
}

/// A short, stable reason for a failed request through reqwest.
fn classify_client(err: &reqwest::Error, timeout: Duration) -> String {
    if err.is_timeout() {
        return timed_out(timeout);
    }
    if err.is_builder() {
        return "invalid URL".to_owned();
    }
    if let Some(reason) = network_failure(err, timeout) {
        return reason;
    }
    let lower = source_chain(err).to_ascii_lowercase();
    if names_dns_failure(&lower) {
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
    use std::sync::{Arc, Mutex};

    use axum::{
        extract::{Path, State},
        http::{HeaderMap, StatusCode as Code},
        response::{IntoResponse, Response},
        routing::get,
        Router,
    };

    use super::*;

    type Seen = Arc<Mutex<Vec<(String, Option<String>, Option<String>)>>>;

    /// A server on 127.0.0.1 that records each request's path and query, Host and
    /// Authorization, and answers by route.
    async fn serve() -> (String, Seen) {
        let seen: Seen = Arc::default();
        let record = |seen: &Seen, path: String, headers: &HeaderMap| {
            let value = |name| {
                headers
                    .get(name)
                    .map(|v: &HeaderValue| v.to_str().unwrap().to_owned())
            };
            seen.lock()
                .unwrap()
                .push((path, value(HOST), value(http::header::AUTHORIZATION)));
        };
        let app = Router::new()
            .route(
                "/hop/{n}",
                get(
                    move |State(seen): State<Seen>, Path(n): Path<u32>, headers: HeaderMap| async move {
                        record(&seen, format!("/hop/{n}"), &headers);
                        if n == 0 {
                            return Code::OK.into_response();
                        }
                        // Relative, as many servers send it.
                        redirect(Code::FOUND, &format!("{}", n - 1))
                    },
                ),
            )
            .route(
                "/private",
                get(
                    move |State(seen): State<Seen>, headers: HeaderMap| async move {
                        record(&seen, "/private".into(), &headers);
                        // "user:pa ss" in base64.
                        let authorized = headers
                            .get(http::header::AUTHORIZATION)
                            .is_some_and(|v| v == "Basic dXNlcjpwYSBzcw==");
                        if authorized { Code::OK } else { Code::UNAUTHORIZED }
                    },
                ),
            )
            .route(
                "/echo",
                get(
                    move |State(seen): State<Seen>,
                          uri: axum::http::Uri,
                          headers: HeaderMap| async move {
                        record(&seen, uri.to_string(), &headers);
                        Code::NO_CONTENT
                    },
                ),
            )
            .route("/to-ftp", get(|| async { redirect(Code::MOVED_PERMANENTLY, "ftp://127.0.0.1/x") }))
            .route("/choices", get(|| async { redirect(Code::MULTIPLE_CHOICES, "/hop/0") }))
            .route("/no-location", get(|| async { Code::FOUND }))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (base, seen)
    }

    fn redirect(code: Code, to: &str) -> Response {
        (code, [(http::header::LOCATION, to.to_owned())]).into_response()
    }

    fn check_of(
        status: CheckStatus,
        code: Option<u16>,
        error: Option<&str>,
    ) -> (CheckStatus, Option<u16>, Option<String>) {
        (status, code, error.map(str::to_owned))
    }

    async fn run(url: &str) -> (CheckStatus, Option<u16>, Option<String>) {
        let outcome = Checker::new()
            .unwrap()
            .check(url, Duration::from_secs(5))
            .await;
        (outcome.status, outcome.status_code, outcome.error)
    }

    #[tokio::test]
    async fn a_plain_check_sends_the_path_query_and_host_with_its_port() {
        let (base, seen) = serve().await;
        let found = run(&format!("{base}/echo?a=1&b=%20x")).await;
        assert_eq!(found, check_of(CheckStatus::Up, Some(204), None));
        let host = base.trim_start_matches("http://").to_owned();
        assert_eq!(
            seen.lock().unwrap().as_slice(),
            &[("/echo?a=1&b=%20x".to_owned(), Some(host), None)]
        );
    }

    #[tokio::test]
    async fn relative_redirects_are_followed_up_to_the_limit_and_no_further() {
        let (base, seen) = serve().await;
        let found = run(&format!("{base}/hop/{MAX_REDIRECTS}")).await;
        assert_eq!(found, check_of(CheckStatus::Up, Some(200), None));
        assert_eq!(seen.lock().unwrap().len(), MAX_REDIRECTS + 1);
        assert_eq!(seen.lock().unwrap().last().unwrap().0, "/hop/0");

        seen.lock().unwrap().clear();
        let found = run(&format!("{base}/hop/{}", MAX_REDIRECTS + 1)).await;
        assert_eq!(
            found,
            check_of(
                CheckStatus::Down,
                None,
                Some("too many redirects (more than 10)")
            )
        );
        assert_eq!(seen.lock().unwrap().len(), MAX_REDIRECTS + 1);
    }

    #[tokio::test]
    async fn credentials_in_the_url_are_sent_as_basic_auth() {
        let (base, seen) = serve().await;
        let with = base.replace("http://", "http://user:pa%20ss@");
        let found = run(&format!("{with}/private")).await;
        assert_eq!(found, check_of(CheckStatus::Up, Some(200), None));
        let found = run(&format!("{base}/private")).await;
        assert_eq!(
            found,
            check_of(CheckStatus::Down, Some(401), Some("HTTP status 401"))
        );
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn redirects_that_cannot_be_followed() {
        let (base, seen) = serve().await;
        assert_eq!(
            run(&format!("{base}/to-ftp")).await,
            check_of(
                CheckStatus::Down,
                None,
                Some("redirected to an unsupported URL scheme `ftp`")
            )
        );
        // A 300 is an answer, not an instruction; so is a 302 without a Location.
        assert_eq!(
            run(&format!("{base}/choices")).await,
            check_of(CheckStatus::Up, Some(300), None)
        );
        assert_eq!(
            run(&format!("{base}/no-location")).await,
            check_of(CheckStatus::Up, Some(302), None)
        );
        assert!(
            seen.lock().unwrap().is_empty(),
            "the redirect was not followed"
        );
    }

    #[test]
    fn sanitize_removes_control_characters_and_bounds_length() {
        assert_eq!(sanitize("a\0b\nc"), "a b c");
        let long = "x".repeat(1000);
        assert_eq!(sanitize(&long).chars().count(), MAX_ERROR_CHARS);
    }
}
