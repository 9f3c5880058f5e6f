//! The checker: one HTTP exchange per hop of a monitor's URL, bounded by its timeout for the
//! whole check (redirects included), judged UP or DOWN with a short reason, each phase timed.
//! Every failure becomes a result, never a panic.
//!
//! Each hop resolves its host once, vets every address against the [`TargetPolicy`] and
//! connects to a vetted address (so a name cannot pass and then resolve elsewhere), then
//! speaks TLS itself for `https` (rustls, so the handshake is timed and the certificate read)
//! and HTTP/1.1 through hyper's connection, driven on the checking task. Redirects are
//! followed here, each hop vetted again, only to `http` and `https`.
//!
//! A TCP monitor (`tcp://host:port`, `tls://host:port`) takes the same resolve, vet and
//! connect steps, and a TLS handshake for `tls://`; the open connection is its answer.
//!
//! A monitor without options (no spec) takes the plain path: a GET prepared once per monitor
//! (its URL parsed, the host header and request target sliced from one copy), whose body is
//! never read, so a huge, endless or garbage body costs nothing. A spec adds the method,
//! headers, body, accepted codes, redirect rules and assertions; the body is read only when
//! an assertion needs it, and at most [`domain::spec::MAX_BODY_READ_BYTES`] of it.

mod dns;
mod failure;
mod tls;

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    pin::{pin, Pin},
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use chrono::{SubsecRound, Utc};
use domain::{
    evaluate::{self, Observed, Prepared},
    spec::MAX_BODY_READ_BYTES,
    CheckOutcome, CheckSpec, CheckStatus, MonitorKind, TargetPolicy, Timings, TlsInfo,
};
use http::{
    header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, LOCATION, USER_AGENT},
    HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri,
};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Bytes, Incoming};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
    time::Instant,
};
use url::{Position, Url};

pub use domain::spec::DEFAULT_MAX_REDIRECTS as MAX_REDIRECTS;
pub use failure::{sanitize, MAX_ERROR_CHARS};
use failure::{timed_out, Failure};

const AGENT: &str = concat!("monitor-manager/", env!("CARGO_PKG_VERSION"));

/// How checks are made: the target policy and any extra trusted roots.
#[derive(Debug, Clone, Default)]
pub struct CheckerSettings {
    pub policy: TargetPolicy,
    /// A PEM file of certificates trusted besides the Mozilla roots (`CHECK_CA_FILE`).
    pub ca_file: Option<PathBuf>,
}

/// Runs checks. Every check opens fresh connections, as a monitor should (a pooled
/// connection would hide a server that stopped accepting new ones). Cheap to clone.
#[derive(Clone)]
pub struct Checker(Arc<Inner>);

struct Inner {
    policy: TargetPolicy,
    tls: tls::TlsConfigs,
}

/// What a monitor's checks need, prepared once for all of them. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Target(Arc<TargetInner>);

#[derive(Debug)]
struct TargetInner {
    text: Box<str>,
    /// The first hop, prepared (`None` when the URL cannot be requested: each check says so).
    first: Option<Hop>,
    rich: Option<Rich>,
    /// A DNS monitor's query (boxed: most monitors have none, and there are many).
    dns: Option<Box<dns::DnsQuery>>,
    /// The certificate its checks saw last.
    certs: tls::CertCache,
}

/// A spec made ready: its request parts and compiled assertions.
#[derive(Debug)]
struct Rich {
    spec: CheckSpec,
    method: Method,
    headers: Vec<(HeaderName, HeaderValue, bool)>,
    body: Bytes,
    assertions: Vec<Prepared>,
    /// Why the spec cannot run (never for a spec that was parsed).
    unusable: Option<String>,
}

impl Target {
    /// A monitor's URL and options, prepared.
    pub fn new(url: &str, spec: Option<&CheckSpec>) -> Self {
        let first = match spec.map(|s| s.kind) {
            Some(MonitorKind::Tcp) => domain::input::special_form(url),
            _ => Url::parse(url).ok(),
        }
        .and_then(|u| Hop::of(&u).ok());
        let dns = spec
            .filter(|s| s.kind == MonitorKind::Dns)
            .and_then(|s| dns::DnsQuery::new(url, s))
            .map(Box::new);
        Self(Arc::new(TargetInner {
            text: url.into(),
            first,
            rich: spec.map(Rich::new),
            dns,
            certs: tls::CertCache::default(),
        }))
    }

    /// The URL as the monitor holds it.
    pub fn as_str(&self) -> &str {
        &self.0.text
    }

    /// The options, `None` for the plain check.
    pub fn spec(&self) -> Option<&CheckSpec> {
        self.0.rich.as_ref().map(|r| &r.spec)
    }

    fn parse(&self) -> Result<Url, Failure> {
        Url::parse(&self.0.text).map_err(|_| Failure::InvalidUrl)
    }
}

impl Rich {
    fn new(spec: &CheckSpec) -> Self {
        let mut unusable = None;
        let method = Method::from_bytes(spec.method.as_bytes()).unwrap_or_else(|_| {
            unusable = Some(format!("method `{}` cannot be sent", spec.method));
            Method::GET
        });
        let headers = spec
            .headers
            .iter()
            .filter_map(|h| {
                match (
                    HeaderName::from_bytes(h.name.as_bytes()),
                    HeaderValue::from_str(&h.value),
                ) {
                    (Ok(name), Ok(mut value)) => {
                        let secret = is_secret(&name);
                        value.set_sensitive(secret);
                        Some((name, value, secret))
                    }
                    _ => {
                        unusable = Some(format!("header `{}` cannot be sent", h.name));
                        None
                    }
                }
            })
            .collect();
        let assertions = spec
            .assertions
            .iter()
            .filter_map(|a| {
                let prepared = Prepared::new(a);
                if prepared.is_none() {
                    unusable = Some(format!("assertion `{a}` cannot be evaluated"));
                }
                prepared
            })
            .collect();
        Self {
            method,
            headers,
            body: spec.body.clone().map(Bytes::from).unwrap_or_default(),
            assertions,
            spec: spec.clone(),
            unusable,
        }
    }
}

fn is_secret(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "authorization"
            | "proxy-authorization"
            | "cookie"
            | "x-api-key"
            | "x-auth-token"
            | "x-access-token"
    )
}

/// Where one hop goes and what every request to it carries: slices of one copy of the
/// normalised URL, so a check only bumps reference counts.
#[derive(Debug, Clone)]
struct Hop {
    https: bool,
    host: HostAddr,
    port: u16,
    /// `Host`: the host, and the port when the URL names one.
    host_header: HeaderValue,
    /// Path and query: the request target.
    path: Uri,
    /// Basic auth from the URL's user and password.
    auth: Option<HeaderValue>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostAddr {
    Ip(IpAddr),
    Name(Box<str>),
}

impl Hop {
    fn of(url: &Url) -> Result<Self, Failure> {
        let https = match url.scheme() {
            "http" => false,
            "https" => true,
            _ => return Err(Failure::InvalidUrl),
        };
        let host = match url.host() {
            Some(url::Host::Ipv4(v4)) => HostAddr::Ip(IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => HostAddr::Ip(IpAddr::V6(v6)),
            Some(url::Host::Domain(name)) if !name.is_empty() => HostAddr::Name(name.into()),
            _ => return Err(Failure::InvalidUrl),
        };
        let port = url.port_or_known_default().ok_or(Failure::InvalidUrl)?;
        let text = Bytes::copy_from_slice(url.as_str().as_bytes());
        let slice = |from: Position, to: Position| text.slice(url[..from].len()..url[..to].len());
        let auth = if url.username().is_empty() && url.password().is_none() {
            None
        } else {
            let credentials = format!(
                "{}:{}",
                percent_decode(url.username()),
                percent_decode(url.password().unwrap_or(""))
            );
            let mut value =
                HeaderValue::try_from(format!("Basic {}", base64(credentials.as_bytes())))
                    .map_err(|_| Failure::InvalidUrl)?;
            value.set_sensitive(true);
            Some(value)
        };
        Ok(Self {
            https,
            host,
            port,
            host_header: HeaderValue::from_maybe_shared(slice(
                Position::BeforeHost,
                Position::AfterPort,
            ))
            .map_err(|_| Failure::InvalidUrl)?,
            path: Uri::from_maybe_shared(slice(Position::BeforePath, Position::AfterQuery))
                .map_err(|_| Failure::InvalidUrl)?,
            auth,
        })
    }

    /// The same scheme, host and port (secret headers go to the first origin only).
    fn same_origin(&self, other: &Hop) -> bool {
        self.https == other.https && self.host == other.host && self.port == other.port
    }

    /// The plain path's request: built directly rather than through `Request::builder`,
    /// which moves the request's parts through a closure at every header.
    fn plain_request(&self) -> Request<Empty<Bytes>> {
        let mut request = Request::new(Empty::new());
        *request.uri_mut() = self.path.clone();
        let headers = request.headers_mut();
        headers.reserve(4);
        headers.insert(HOST, self.host_header.clone());
        headers.insert(USER_AGENT, HeaderValue::from_static(AGENT));
        headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        if let Some(auth) = &self.auth {
            headers.insert(AUTHORIZATION, auth.clone());
        }
        request
    }
}

/// Phase times, summed over hops, and the certificate seen.
#[derive(Default)]
struct Phases<'a> {
    dns: Option<Duration>,
    connect: Option<Duration>,
    tls: Option<Duration>,
    first_byte: Option<Duration>,
    cert: Option<TlsInfo>,
    /// The target's certificate cache.
    certs: Option<&'a tls::CertCache>,
}

fn add(phase: &mut Option<Duration>, took: Duration) {
    *phase = Some(phase.unwrap_or_default() + took);
}

fn ms(phase: Option<Duration>) -> Option<i32> {
    phase.map(|d| i32::try_from(d.as_millis()).unwrap_or(i32::MAX))
}

/// The final response of a check.
struct Answer {
    status: StatusCode,
    headers: Option<HeaderMap>,
    body: Option<Vec<u8>>,
}

impl Checker {
    pub fn new(settings: &CheckerSettings) -> anyhow::Result<Self> {
        Ok(Self(Arc::new(Inner {
            policy: settings.policy.clone(),
            tls: tls::TlsConfigs::new(settings.ca_file.as_deref())?,
        })))
    }

    /// Which addresses checks may reach.
    pub fn policy(&self) -> &TargetPolicy {
        &self.0.policy
    }

    /// Checks `url` with `spec`, giving the whole check at most `timeout`.
    pub async fn check(
        &self,
        url: &str,
        spec: Option<&CheckSpec>,
        timeout: Duration,
    ) -> CheckOutcome {
        self.check_target(&Target::new(url, spec), timeout).await
    }

    /// Checks a prepared target, giving the whole check at most `timeout`.
    pub async fn check_target(&self, target: &Target, timeout: Duration) -> CheckOutcome {
        let started_at = Utc::now().trunc_subsecs(3);
        // A PUSH monitor is due only when its deadline passed without a push.
        if target.spec().is_some_and(|s| s.kind == MonitorKind::Push) {
            return domain::push::missed(started_at);
        }
        let start = Instant::now();
        let rich = target.0.rich.as_ref();
        let mut phases = Phases {
            certs: Some(&target.0.certs),
            ..Phases::default()
        };
        let result = match rich.and_then(|r| r.unusable.clone()) {
            Some(problem) => Err(Failure::Unusable(problem)),
            None => {
                let probe = async {
                    match rich.map(|r| r.spec.kind) {
                        Some(MonitorKind::Tcp) => self
                            .open(target, &mut phases)
                            .await
                            .map(|()| Probed::Connected),
                        Some(MonitorKind::Dns) => self
                            .resolve(target, timeout, &mut phases)
                            .await
                            .map(Probed::Resolved),
                        _ => self.follow(target, &mut phases).await.map(Probed::Answered),
                    }
                };
                match tokio::time::timeout(timeout, probe).await {
                    Ok(result) => result,
                    Err(_) => Err(Failure::TimedOut),
                }
            }
        };
        let elapsed_ms = i64::try_from(start.elapsed().as_millis()).unwrap_or(i64::MAX);
        let timings = Timings {
            dns_ms: ms(phases.dns),
            connect_ms: ms(phases.connect),
            tls_ms: ms(phases.tls),
            first_byte_ms: ms(phases.first_byte),
            total_ms: i32::try_from(elapsed_ms).unwrap_or(i32::MAX),
        };
        let cert_days = phases.cert.as_ref().map(|c| c.days_left);
        let mut outcome = CheckOutcome {
            started_at,
            status: CheckStatus::Down,
            status_code: None,
            response_time_ms: elapsed_ms,
            error: None,
            degraded: false,
            timings,
            tls: phases.cert,
            assertion_results: Vec::new(),
        };
        match result {
            Err(failure) => {
                outcome.error = Some(sanitize(&match failure {
                    Failure::TimedOut => timed_out(timeout),
                    other => other.describe(timeout),
                }));
                if let Some(rich) = rich {
                    outcome.assertion_results =
                        evaluate::no_response(&rich.assertions, elapsed_ms, cert_days);
                }
            }
            // A TCP check (the connection and handshake are all there is to judge) or a DNS
            // check (its answers are the body).
            Ok(probed @ (Probed::Connected | Probed::Resolved(_))) => {
                let answers = match probed {
                    Probed::Resolved(answers) => Some(answers.join("\n")),
                    _ => None,
                };
                if let Some(rich) = rich {
                    let verdict = evaluate::judge(
                        &rich.spec,
                        &rich.assertions,
                        &Observed {
                            status_code: None,
                            response_time_ms: elapsed_ms,
                            body: answers.as_deref().map(str::as_bytes),
                            header: &|_| None,
                            cert_days_left: cert_days,
                        },
                    );
                    outcome.status = CheckStatus::from_up(verdict.up);
                    outcome.degraded = verdict.degraded;
                    outcome.error = verdict.reason.map(|r| sanitize(&r));
                    outcome.assertion_results = verdict.results;
                }
            }
            Ok(Probed::Answered(answer)) => {
                let code = answer.status.as_u16();
                outcome.status_code = Some(code);
                match rich {
                    None => {
                        if (200..300).contains(&code) {
                            outcome.status = CheckStatus::Up;
                        } else {
                            outcome.error = Some(format!("HTTP status {code}"));
                        }
                    }
                    Some(rich) => {
                        let headers = answer.headers.unwrap_or_default();
                        let header = |name: &str| {
                            headers
                                .get(name)
                                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                        };
                        let verdict = evaluate::judge(
                            &rich.spec,
                            &rich.assertions,
                            &Observed {
                                status_code: Some(code),
                                response_time_ms: elapsed_ms,
                                body: answer.body.as_deref(),
                                header: &header,
                                cert_days_left: cert_days,
                            },
                        );
                        outcome.status = CheckStatus::from_up(verdict.up);
                        outcome.degraded = verdict.degraded;
                        outcome.error = verdict.reason.map(|r| sanitize(&r));
                        outcome.assertion_results = verdict.results;
                    }
                }
            }
        }
        outcome
    }

    /// Requests the target, following redirects as its options say, to the final answer.
    async fn follow(&self, target: &Target, phases: &mut Phases<'_>) -> Result<Answer, Failure> {
        let rich = target.0.rich.as_ref();
        let (follow, max) = rich.map_or((true, MAX_REDIRECTS), |r| {
            (r.spec.follow_redirects, r.spec.max_redirects)
        });
        let reads = rich.map_or(Reads::Nothing, |r| {
            if r.spec.reads_body() {
                Reads::Body
            } else if r.assertions.is_empty() {
                Reads::Nothing
            } else {
                Reads::Headers
            }
        });
        let first = target.0.first.as_ref().ok_or(Failure::InvalidUrl)?;
        let mut method = rich.map_or(Method::GET, |r| r.method.clone());
        let mut with_body = rich.is_some_and(|r| !r.body.is_empty());
        let mut url: Option<Url> = None;
        let mut redirects = 0;
        loop {
            let owned;
            let hop = match &url {
                None => first,
                Some(current) => {
                    owned = Hop::of(current)?;
                    &owned
                }
            };
            let answer = self
                .exchange(hop, first, rich, &method, with_body, follow, reads, phases)
                .await?;
            let (status, location) = match answer {
                Exchange::Final(answer) => return Ok(answer),
                Exchange::Redirect(status, location) => (status, location),
            };
            let base = match url.take() {
                Some(u) => u,
                None => target.parse()?,
            };
            let Ok(next) = base.join(&location) else {
                return Ok(Answer {
                    status,
                    headers: None,
                    body: None,
                });
            };
            if !matches!(next.scheme(), "http" | "https") {
                return Err(Failure::RedirectScheme(next.scheme().to_owned()));
            }
            if redirects == max {
                return Err(Failure::TooManyRedirects(max));
            }
            redirects += 1;
            // 303, and 301/302 after a POST, turn into a GET without a body (as browsers do);
            // 307 and 308 repeat the request.
            if status == StatusCode::SEE_OTHER
                || (matches!(status.as_u16(), 301 | 302) && method == Method::POST)
            {
                if method != Method::HEAD {
                    method = Method::GET;
                }
                with_body = false;
            }
            url = Some(next);
        }
    }

    /// One request to `hop` over a fresh connection.
    #[allow(clippy::too_many_arguments)]
    async fn exchange(
        &self,
        hop: &Hop,
        first: &Hop,
        rich: Option<&Rich>,
        method: &Method,
        with_body: bool,
        follow: bool,
        reads: Reads,
        phases: &mut Phases<'_>,
    ) -> Result<Exchange, Failure> {
        let stream = self.connect(hop, phases).await?;
        let Some(rich) = rich else {
            let request = hop.plain_request();
            return self
                .over(stream, hop, request, false, follow, reads, phases)
                .await;
        };
        let mut request = hop.plain_request();
        let same_origin = hop.same_origin(first);
        if !same_origin {
            request.headers_mut().remove(AUTHORIZATION);
        }
        let (mut parts, _) = request.into_parts();
        parts.method = method.clone();
        for (name, value, secret) in &rich.headers {
            if *secret && !same_origin {
                continue;
            }
            parts.headers.insert(name.clone(), value.clone());
        }
        let body = if with_body {
            if !parts.headers.contains_key(CONTENT_TYPE) {
                parts
                    .headers
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            Full::new(rich.body.clone())
        } else {
            Full::new(Bytes::new())
        };
        let request = Request::from_parts(parts, body);
        let ignore_tls = rich.spec.ignore_tls;
        self.over(stream, hop, request, ignore_tls, follow, reads, phases)
            .await
    }

    /// The request over `stream`, through TLS for `https` (accepting any certificate when
    /// `ignore_tls`).
    #[allow(clippy::too_many_arguments)]
    async fn over<B>(
        &self,
        stream: TcpStream,
        hop: &Hop,
        request: Request<B>,
        ignore_tls: bool,
        follow: bool,
        reads: Reads,
        phases: &mut Phases<'_>,
    ) -> Result<Exchange, Failure>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if !hop.https {
            return send(stream, request, follow, reads, phases).await;
        }
        let tls = self
            .handshake(stream, hop, ignore_tls, true, phases)
            .await?;
        send(tls, request, follow, reads, phases).await
    }

    /// A TLS handshake over `stream` (accepting any certificate when `ignore_tls`; offering
    /// HTTP/1.1 by ALPN when `http`), timed, the server's certificate read.
    async fn handshake(
        &self,
        stream: TcpStream,
        hop: &Hop,
        ignore_tls: bool,
        http: bool,
        phases: &mut Phases<'_>,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Failure> {
        let name = match &hop.host {
            HostAddr::Ip(ip) => rustls::pki_types::ServerName::IpAddress((*ip).into()),
            HostAddr::Name(name) => rustls::pki_types::ServerName::try_from(name.to_string())
                .map_err(|_| Failure::InvalidUrl)?,
        };
        let configs = &self.0.tls;
        let config = match (http, ignore_tls) {
            (true, false) => configs.verify.clone(),
            (true, true) => configs.trust_all.clone(),
            (false, false) => configs.raw_verify.clone(),
            (false, true) => configs.raw_trust_all.clone(),
        };
        let started = Instant::now();
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, stream)
            .await
            .map_err(Failure::Tls)?;
        add(&mut phases.tls, started.elapsed());
        if let Some(der) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
            phases.cert = match phases.certs {
                Some(cache) => cache.info(der, Utc::now()),
                None => tls::certificate_info(der, Utc::now()),
            };
        }
        Ok(tls)
    }

    /// A DNS check: the query, its time the DNS phase; the resolver it names is vetted.
    async fn resolve(
        &self,
        target: &Target,
        timeout: Duration,
        phases: &mut Phases<'_>,
    ) -> Result<Vec<String>, Failure> {
        let query = target.0.dns.as_ref().ok_or(Failure::InvalidUrl)?;
        if let Some(addr) = query.resolver() {
            self.0
                .policy
                .vet(addr.ip())
                .map_err(|why| Failure::Blocked(addr.ip(), why))?;
        }
        let started = Instant::now();
        let answers = query.ask(timeout).await;
        add(&mut phases.dns, started.elapsed());
        answers
    }

    /// A TCP check: connects to the target (and shakes hands for `tls://`), then closes.
    async fn open(&self, target: &Target, phases: &mut Phases<'_>) -> Result<(), Failure> {
        let hop = target.0.first.as_ref().ok_or(Failure::InvalidUrl)?;
        let stream = self.connect(hop, phases).await?;
        if hop.https {
            let ignore_tls = target.spec().is_some_and(|s| s.ignore_tls);
            self.handshake(stream, hop, ignore_tls, false, phases)
                .await?;
        }
        Ok(())
    }

    /// Resolves the hop's host (once), vets the addresses, and connects to the first that
    /// answers.
    async fn connect(&self, hop: &Hop, phases: &mut Phases<'_>) -> Result<TcpStream, Failure> {
        let addresses: Vec<SocketAddr> = match &hop.host {
            HostAddr::Ip(ip) => vec![SocketAddr::new(*ip, hop.port)],
            HostAddr::Name(name) => {
                let started = Instant::now();
                let found = tokio::net::lookup_host((name.as_ref(), hop.port)).await;
                add(&mut phases.dns, started.elapsed());
                let found: Vec<SocketAddr> = found.map_err(|_| Failure::Dns)?.collect();
                if found.is_empty() {
                    return Err(Failure::Dns);
                }
                found
            }
        };
        for addr in &addresses {
            if let Err(why) = self.0.policy.vet(addr.ip()) {
                return Err(Failure::Blocked(addr.ip(), why));
            }
        }
        let started = Instant::now();
        let mut last = None;
        for addr in addresses {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    add(&mut phases.connect, started.elapsed());
                    // Closed with a reset, not a FIN (as HAProxy closes its health checks):
                    // neither side keeps the connection in TIME_WAIT. The response is in
                    // by then, so nothing the check needs is lost.
                    stream
                        .set_zero_linger()
                        .map_err(|err| Failure::Connect(err.into()))?;
                    return Ok(stream);
                }
                Err(err) => last = Some(err),
            }
        }
        add(&mut phases.connect, started.elapsed());
        Err(Failure::Connect(
            last.map_or_else(|| "no address".into(), Into::into),
        ))
    }
}

/// What a probe got: an HTTP answer, an open connection (TCP) or DNS answers.
enum Probed {
    Answered(Answer),
    Connected,
    Resolved(Vec<String>),
}

/// What a check must read of the final response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reads {
    Nothing,
    Headers,
    Body,
}

enum Exchange {
    Final(Answer),
    Redirect(StatusCode, String),
}

/// Sends `request` over `io` (HTTP/1.1), driving the connection on this task: the response
/// head, and the body when it is the final answer and `reads` asks for it.
async fn send<IO, B>(
    io: IO,
    request: Request<B>,
    follow: bool,
    reads: Reads,
    phases: &mut Phases<'_>,
) -> Result<Exchange, Failure>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(ResetOnClose(TokioIo::new(io)))
            .await
            .map_err(Failure::Http)?;
    let mut connection = pin!(connection);
    let started = Instant::now();
    let mut response = pin!(sender.send_request(request));
    let response = tokio::select! {
        biased;
        response = &mut response => response,
        // The connection ended first: its error is the exchange's, or (a clean end) the
        // response future has its answer already.
        ended = &mut connection => match ended {
            Err(err) => return Err(Failure::Http(err)),
            Ok(()) => response.await,
        },
    }
    .map_err(Failure::Http)?;
    add(&mut phases.first_byte, started.elapsed());
    let status = response.status();
    if follow && matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
        if let Some(location) = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
        {
            return Ok(Exchange::Redirect(status, location.to_owned()));
        }
    }
    if reads == Reads::Nothing {
        return Ok(Exchange::Final(Answer {
            status,
            headers: None,
            body: None,
        }));
    }
    let (parts, body) = response.into_parts();
    let body = if reads == Reads::Body {
        let mut reading = pin!(read_bounded(body));
        Some(tokio::select! {
            biased;
            read = &mut reading => read?,
            ended = &mut connection => match ended {
                Err(err) => return Err(Failure::Http(err)),
                Ok(()) => reading.await?,
            },
        })
    } else {
        None
    };
    Ok(Exchange::Final(Answer {
        status,
        headers: Some(parts.headers),
        body,
    }))
}

/// Reads a body up to [`MAX_BODY_READ_BYTES`]; the rest is left unread.
async fn read_bounded(mut body: Incoming) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(Failure::Http)?;
        if let Ok(data) = frame.into_data() {
            let room = MAX_BODY_READ_BYTES - out.len();
            out.extend_from_slice(&data[..data.len().min(room)]);
            if out.len() >= MAX_BODY_READ_BYTES {
                break;
            }
        }
    }
    Ok(out)
}

/// A connection that hyper cannot shut down for writing: hyper shuts a connection down once
/// the server said `Connection: close`, which sends a FIN; the connection is instead reset
/// when it is dropped (with `SO_LINGER` zero).
struct ResetOnClose<T>(TokioIo<T>);

impl<T: AsyncRead + AsyncWrite + Unpin> hyper::rt::Read for ResetOnClose<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> hyper::rt::Write for ResetOnClose<T> {
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

fn percent_decode(part: &str) -> String {
    percent_encoding::percent_decode_str(part)
        .decode_utf8_lossy()
        .into_owned()
}

fn base64(input: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(input)
}

#[cfg(test)]
mod tests;
