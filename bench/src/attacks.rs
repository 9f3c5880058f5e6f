//! The attacks of the abuse scenario, each a client loop against the service's public
//! interfaces (HTTP, raw TCP, WebSocket) that records how every attempt ended: refused (an
//! error answer, or the connection closed) and how fast, held open as a normal client's
//! socket would be, or served (the attack got what it asked for: a failure).

use std::{collections::BTreeMap, future::Future, sync::OnceLock, time::Duration};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};
use tokio_tungstenite::tungstenite::{
    self, client::IntoClientRequest, http::HeaderValue, protocol::frame::Utf8Bytes, Message,
};

/// How fast an attack request must be refused or cut.
pub const ALLOWANCE: Duration = Duration::from_secs(1);
/// Longest one attempt is waited for before it counts as not refused.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// A foreign origin and host, as a rebinding or cross-site page would send.
const FOREIGN: &str = "evil.example";

/// The service's limits that decide when a held connection must be cut.
#[derive(Debug, Clone, Copy)]
pub struct ServiceLimits {
    /// `HEADER_READ_TIMEOUT_SECONDS`.
    pub header_read_timeout: Duration,
    /// `WS_INIT_TIMEOUT_SECONDS`.
    pub ws_init_timeout: Duration,
    /// `WS_MAX_SUBSCRIPTIONS`.
    pub ws_max_subscriptions: usize,
}

/// What an attack needs to know about the service.
#[derive(Debug, Clone, Copy)]
pub struct Victim {
    pub port: u16,
    /// A monitor that exists, for mutations that name one.
    pub monitor_id: i64,
    pub limits: ServiceLimits,
}

/// The attacks, one phase each, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attack {
    /// No attack: the load and the normal client alone, for comparison.
    Baseline,
    DeepObject,
    DeepList,
    DeepWsSubscribe,
    FragmentBomb,
    BigAnswer,
    AliasedMutations,
    CrossSiteContentTypes,
    ForeignOrigin,
    ForeignHost,
    Slowloris,
    IdleWebSockets,
    NoConnectionInit,
    IdleConnections,
    BigJsonBody,
    BigMultipartBody,
    BigWsMessage,
    ManySubscriptions,
    DuplicateSubscriptionId,
}

pub const ALL: [Attack; 19] = [
    Attack::Baseline,
    Attack::DeepObject,
    Attack::DeepList,
    Attack::DeepWsSubscribe,
    Attack::FragmentBomb,
    Attack::BigAnswer,
    Attack::AliasedMutations,
    Attack::CrossSiteContentTypes,
    Attack::ForeignOrigin,
    Attack::ForeignHost,
    Attack::Slowloris,
    Attack::IdleWebSockets,
    Attack::NoConnectionInit,
    Attack::IdleConnections,
    Attack::BigJsonBody,
    Attack::BigMultipartBody,
    Attack::BigWsMessage,
    Attack::ManySubscriptions,
    Attack::DuplicateSubscriptionId,
];

impl Attack {
    /// Short name (the table's first column, and what `--only` matches).
    pub fn name(self) -> &'static str {
        match self {
            Attack::Baseline => "baseline",
            Attack::DeepObject => "deep-object",
            Attack::DeepList => "deep-list",
            Attack::DeepWsSubscribe => "deep-ws-subscribe",
            Attack::FragmentBomb => "fragment-bomb",
            Attack::BigAnswer => "big-answer",
            Attack::AliasedMutations => "aliased-mutations",
            Attack::CrossSiteContentTypes => "csrf-content-types",
            Attack::ForeignOrigin => "foreign-origin",
            Attack::ForeignHost => "foreign-host",
            Attack::Slowloris => "slowloris",
            Attack::IdleWebSockets => "idle-websockets",
            Attack::NoConnectionInit => "no-connection-init",
            Attack::IdleConnections => "idle-connections",
            Attack::BigJsonBody => "60MB-json",
            Attack::BigMultipartBody => "100MB-multipart",
            Attack::BigWsMessage => "60MB-ws-message",
            Attack::ManySubscriptions => "10000-subscriptions",
            Attack::DuplicateSubscriptionId => "duplicate-id",
        }
    }

    /// What the attack sends, and how many at once.
    pub fn description(self) -> &'static str {
        match self {
            Attack::Baseline => "nothing (background checks and the normal client only)",
            Attack::DeepObject => "POST /graphql, an argument object nested 2,000 deep (8 KB), 8 clients in a loop",
            Attack::DeepList => "POST /graphql, a list literal nested 3,000 deep (6 KB), 8 clients in a loop",
            Attack::DeepWsSubscribe => "/graphql/ws subscribe with the object and list documents above, 8 clients in a loop",
            Attack::FragmentBomb => "POST /graphql, 1 KB of 30 fragments each spreading the next twice (2^30 expansions), 3 at once",
            Attack::BigAnswer => "POST /graphql monitors(first: 1000) { nodes { checkResults(first: 1000) ... } }, 3 at once",
            Attack::AliasedMutations => "POST /graphql, 2,400 aliased runCheck mutations in one request, 2 at once",
            Attack::CrossSiteContentTypes => "POST /graphql createMonitor as text/plain and as multipart/form-data, 4 clients",
            Attack::ForeignOrigin => "Origin: http://evil.example on /graphql/ws and /ws upgrades and a POST /graphql mutation, 4 clients",
            Attack::ForeignHost => "Host: evil.example on GET and POST /graphql, 4 clients",
            Attack::Slowloris => "500 sockets sending a request's headers one line a second",
            Attack::IdleWebSockets => "2,000 idle WebSockets (half /ws, half /graphql/ws after connection_init)",
            Attack::NoConnectionInit => "200 /graphql/ws sockets that never send connection_init",
            Attack::IdleConnections => "1,100 TCP connections that send nothing (the service has 1,024 open files)",
            Attack::BigJsonBody => "POST /graphql with a 60 MB JSON body, 2 at once",
            Attack::BigMultipartBody => "POST /graphql with a 100 MB multipart body, 2 at once",
            Attack::BigWsMessage => "a 60 MB text message on /ws and on /graphql/ws, 2 at once",
            Attack::ManySubscriptions => "10,000 subscribe messages on one /graphql/ws connection",
            Attack::DuplicateSubscriptionId => "/graphql/ws subscribe twice with the same id, 8 clients in a loop",
        }
    }

    /// Whether the attack holds connections until the service cuts them at one of its
    /// timeouts, so its phase lasts at least that timeout plus two seconds.
    pub fn holds(self) -> bool {
        matches!(
            self,
            Attack::Slowloris
                | Attack::IdleWebSockets
                | Attack::NoConnectionInit
                | Attack::IdleConnections
        )
    }

    /// Runs the attack until `until` and tallies its attempts.
    pub async fn run(self, victim: Victim, until: Instant) -> Tally {
        let v = victim;
        match self {
            Attack::Baseline => {
                tokio::time::sleep_until(until).await;
                Tally::default()
            }
            Attack::DeepObject => flood(8, until, move |_| post_query(v, deep_object())).await,
            Attack::DeepList => flood(8, until, move |_| post_query(v, deep_list())).await,
            Attack::DeepWsSubscribe => flood(8, until, move |n| deep_subscribe(v, n)).await,
            Attack::FragmentBomb => flood(3, until, move |_| post_query(v, fragment_bomb())).await,
            Attack::BigAnswer => flood(3, until, move |_| post_query(v, big_answer())).await,
            Attack::AliasedMutations => {
                flood(2, until, move |_| {
                    post_query(v, aliased_mutations(v.monitor_id))
                })
                .await
            }
            Attack::CrossSiteContentTypes => flood(4, until, move |n| cross_site(v, n)).await,
            Attack::ForeignOrigin => flood(4, until, move |n| foreign_origin(v, n)).await,
            Attack::ForeignHost => flood(4, until, move |n| foreign_host(v, n)).await,
            Attack::Slowloris => {
                let allowance = v.limits.header_read_timeout + ALLOWANCE;
                hold(500, until, allowance, move |_| {
                    hold_socket(v, true, allowance, until)
                })
                .await
            }
            Attack::IdleConnections => {
                let allowance = v.limits.header_read_timeout + ALLOWANCE;
                hold(1100, until, allowance, move |_| {
                    hold_socket(v, false, allowance, until)
                })
                .await
            }
            Attack::IdleWebSockets => {
                hold(2000, until, ALLOWANCE, move |n| idle_ws(v, n, until)).await
            }
            Attack::NoConnectionInit => {
                let allowance = v.limits.ws_init_timeout + ALLOWANCE;
                hold(200, until, allowance, move |_| no_init(v, until)).await
            }
            Attack::BigJsonBody => {
                flood(2, until, move |_| {
                    big_body(v, "application/json", 60_000_000)
                })
                .await
            }
            Attack::BigMultipartBody => {
                let kind = "multipart/form-data; boundary=abuse";
                flood(2, until, move |_| big_body(v, kind, 100_000_000)).await
            }
            Attack::BigWsMessage => flood(2, until, move |n| big_ws_message(v, n)).await,
            Attack::ManySubscriptions => flood(1, until, move |_| many_subscriptions(v)).await,
            Attack::DuplicateSubscriptionId => flood(8, until, move |_| duplicate_id(v)).await,
        }
    }
}

/// How one attempt ended.
#[derive(Debug)]
pub struct Outcome {
    label: String,
    elapsed: Duration,
    kind: Kind,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Refused or cut; in time when within the allowance.
    Refused { allowance: Duration },
    /// Kept open as a normal client's connection would be (not a failure).
    Held,
    /// The service did what the attack asked, or left it hanging: a failure.
    Served,
    /// Ended by the phase before anything was decided (not counted).
    Unfinished,
}

impl Outcome {
    fn refused(label: impl Into<String>, elapsed: Duration) -> Self {
        Self::cut(label, elapsed, ALLOWANCE)
    }

    fn cut(label: impl Into<String>, elapsed: Duration, allowance: Duration) -> Self {
        Self {
            label: label.into(),
            elapsed,
            kind: Kind::Refused { allowance },
        }
    }

    fn served(label: impl Into<String>, elapsed: Duration) -> Self {
        Self {
            label: label.into(),
            elapsed,
            kind: Kind::Served,
        }
    }

    fn held(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            elapsed: Duration::ZERO,
            kind: Kind::Held,
        }
    }

    fn unfinished() -> Self {
        Self {
            label: String::new(),
            elapsed: Duration::ZERO,
            kind: Kind::Unfinished,
        }
    }
}

/// Every attempt of one phase.
#[derive(Debug, Default)]
pub struct Tally {
    pub attempts: u64,
    /// Refused or cut within their allowance.
    pub refused: u64,
    /// Connections kept open within the service's limits, as a client's would be.
    pub held: u64,
    /// Served, or refused too late: each one fails the phase.
    pub failed: u64,
    /// Longest time an attempt took to be refused or cut, and its allowance.
    pub slowest: Duration,
    pub slowest_allowance: Duration,
    /// Attempts by how they ended (status code, close code, ...).
    pub outcomes: BTreeMap<String, u64>,
}

impl Tally {
    fn add(&mut self, outcome: Outcome) {
        let mut label = outcome.label;
        match outcome.kind {
            Kind::Unfinished => return,
            Kind::Held => self.held += 1,
            Kind::Served => {
                self.failed += 1;
                label.push_str(" (served)");
            }
            Kind::Refused { allowance } => {
                if outcome.elapsed > allowance {
                    self.failed += 1;
                    label.push_str(" (late)");
                } else {
                    self.refused += 1;
                }
                if outcome.elapsed >= self.slowest {
                    self.slowest = outcome.elapsed;
                    self.slowest_allowance = allowance;
                }
            }
        }
        self.attempts += 1;
        *self.outcomes.entry(label).or_default() += 1;
    }

    fn merge(&mut self, other: Tally) {
        self.attempts += other.attempts;
        self.refused += other.refused;
        self.held += other.held;
        self.failed += other.failed;
        if other.slowest >= self.slowest {
            self.slowest = other.slowest;
            self.slowest_allowance = other.slowest_allowance;
        }
        for (label, n) in other.outcomes {
            *self.outcomes.entry(label).or_default() += n;
        }
    }

    /// `label ×count` for every outcome, most frequent first.
    pub fn outcomes_line(&self) -> String {
        let mut outcomes: Vec<_> = self.outcomes.iter().collect();
        outcomes.sort_by(|a, b| b.1.cmp(a.1));
        outcomes
            .iter()
            .map(|(label, n)| format!("{label} ×{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `clients` tasks, each repeating `attempt(client)` until `until`, each attempt waited
/// for at most [`ATTEMPT_TIMEOUT`].
async fn flood<F, Fut>(clients: usize, until: Instant, attempt: F) -> Tally
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Outcome> + Send,
{
    flood_for(clients, until, ATTEMPT_TIMEOUT, attempt).await
}

/// [`flood`] for attacks that hold their connections: each attempt decides itself when it
/// has waited too long, so the flood waits for it up to the phase's end and `grace`.
async fn hold<F, Fut>(clients: usize, until: Instant, grace: Duration, attempt: F) -> Tally
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Outcome> + Send,
{
    let timeout = until.saturating_duration_since(Instant::now()) + grace + ALLOWANCE;
    flood_for(clients, until, timeout, attempt).await
}

async fn flood_for<F, Fut>(clients: usize, until: Instant, timeout: Duration, attempt: F) -> Tally
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Outcome> + Send,
{
    let mut tasks = Vec::new();
    for client in 0..clients {
        let attempt = attempt.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            while Instant::now() < until {
                let started = Instant::now();
                let outcome = tokio::time::timeout(timeout, attempt(client))
                    .await
                    .unwrap_or_else(|_| {
                        Outcome::served(
                            format!("no answer within {} s", timeout.as_secs()),
                            started.elapsed(),
                        )
                    });
                tally.add(outcome);
            }
            tally
        }));
    }
    let mut all = Tally::default();
    for task in tasks {
        match task.await {
            Ok(tally) => all.merge(tally),
            Err(_) => all.add(Outcome::served("attack client panicked", Duration::ZERO)),
        }
    }
    all
}

// ---- documents ----

fn deep_object() -> String {
    let depth = 2000;
    format!(
        "{{ monitors(first: 1, after: {}1{}) {{ nodes {{ id }} }} }}",
        "{a:".repeat(depth),
        "}".repeat(depth)
    )
}

fn deep_list() -> String {
    let depth = 3000;
    format!(
        "{{ monitors(first: 1, after: {}1{}) {{ nodes {{ id }} }} }}",
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

/// 30 fragments, each spreading the next twice: 2^30 expansions in about 1 KB.
fn fragment_bomb() -> String {
    let levels = 30;
    let mut query = String::from("query { ...F0 }");
    for n in 0..levels {
        query.push_str(&format!(
            " fragment F{n} on Query {{ ...F{m} ...F{m} }}",
            m = n + 1
        ));
    }
    query.push_str(&format!(
        " fragment F{levels} on Query {{ monitors(first: 1) {{ nodes {{ id }} }} }}"
    ));
    query
}

fn big_answer() -> String {
    "{ monitors(first: 1000) { nodes { id name checkResults(first: 1000) { nodes { id status statusCode responseTimeMs error checkedAt } } } } }".to_owned()
}

fn aliased_mutations(id: i64) -> String {
    let mut query = String::from("mutation {");
    for n in 0..2400 {
        query.push_str(&format!(" a{n}: runCheck(id: \"{id}\") {{ id }}"));
    }
    query.push_str(" }");
    query
}

const CREATE_MUTATION: &str = r#"mutation { createMonitor(input: { name: "abuse-csrf", url: "http://127.0.0.1:9/", timeoutSeconds: 5, intervalSeconds: 3600 }) { id } }"#;

// ---- HTTP attempts ----

fn http() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .no_proxy()
            .timeout(ATTEMPT_TIMEOUT)
            .build()
            .unwrap_or_default()
    })
}

fn graphql_url(v: Victim) -> String {
    format!("http://127.0.0.1:{}/graphql", v.port)
}

async fn post_query(v: Victim, query: String) -> Outcome {
    let started = Instant::now();
    let request = http().post(graphql_url(v)).json(&json!({ "query": query }));
    judge_http(request, started).await
}

/// Refused: an HTTP error status, a GraphQL answer with errors and no data, or the
/// connection closed; served: an answer with data.
async fn judge_http(request: reqwest::RequestBuilder, started: Instant) -> Outcome {
    let response = match request.send().await {
        Ok(response) => response,
        Err(err) => return Outcome::refused(cut_label(&err), started.elapsed()),
    };
    let status = response.status();
    let body = response.bytes().await;
    let elapsed = started.elapsed();
    if !status.is_success() {
        return Outcome::refused(status.as_u16().to_string(), elapsed);
    }
    let data = body
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .map(|v| v.get("data").is_some_and(|d| !d.is_null()));
    match data {
        Some(false) => Outcome::refused(format!("{} errors", status.as_u16()), elapsed),
        _ => Outcome::served(status.as_u16().to_string(), elapsed),
    }
}

fn cut_label(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timed out".to_owned()
    } else if err.is_connect() {
        "connect failed".to_owned()
    } else {
        "connection cut".to_owned()
    }
}

async fn cross_site(v: Victim, n: usize) -> Outcome {
    let started = Instant::now();
    let body = json!({ "query": CREATE_MUTATION }).to_string();
    let request = if n.is_multiple_of(2) {
        http()
            .post(graphql_url(v))
            .header("content-type", "text/plain")
            .body(body)
    } else {
        let form = format!(
            "--abuse\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n{body}\r\n--abuse--\r\n"
        );
        http()
            .post(graphql_url(v))
            .header("content-type", "multipart/form-data; boundary=abuse")
            .body(form)
    };
    judge_http(request, started).await
}

async fn foreign_origin(v: Victim, n: usize) -> Outcome {
    let origin = format!("http://{FOREIGN}");
    match n % 3 {
        0 | 1 => {
            let path = if n.is_multiple_of(3) {
                "/graphql/ws"
            } else {
                "/ws"
            };
            let started = Instant::now();
            match ws_connect(v.port, path, Some(&origin)).await {
                Ok(_) => Outcome::served(format!("{path} upgraded"), started.elapsed()),
                Err(err) => Outcome::refused(handshake_label(path, &err), started.elapsed()),
            }
        }
        _ => {
            let started = Instant::now();
            let request = http()
                .post(graphql_url(v))
                .header("origin", origin)
                .json(&json!({ "query": CREATE_MUTATION }));
            judge_http(request, started).await
        }
    }
}

async fn foreign_host(v: Victim, n: usize) -> Outcome {
    let started = Instant::now();
    let query = "{ monitors(first: 1) { nodes { id } } }";
    let request = if n.is_multiple_of(2) {
        http()
            .get(graphql_url(v))
            .query(&[("query", query)])
            .header("accept", "application/json")
    } else {
        http().post(graphql_url(v)).json(&json!({ "query": query }))
    };
    judge_http(
        request.header("host", format!("{FOREIGN}:{}", v.port)),
        started,
    )
    .await
}

/// A body of `size` bytes under `content_type`, made once per size and shared.
fn big_payload(size: usize) -> &'static [u8] {
    static JSON: OnceLock<Vec<u8>> = OnceLock::new();
    static MULTIPART: OnceLock<Vec<u8>> = OnceLock::new();
    let cell = if size == 60_000_000 {
        &JSON
    } else {
        &MULTIPART
    };
    cell.get_or_init(|| {
        let mut body = b"{\"query\":\"".to_vec();
        body.resize(size - 2, b'a');
        body.extend_from_slice(b"\"}");
        body
    })
}

/// A `size`-byte body streamed on a raw connection while the answer is read, so the time is
/// the service's: from the first byte sent to its answer's first bytes, or the cut.
async fn big_body(v: Victim, content_type: &'static str, size: usize) -> Outcome {
    let started = Instant::now();
    let Ok(stream) = TcpStream::connect(("127.0.0.1", v.port)).await else {
        return Outcome::refused("connect failed", started.elapsed());
    };
    let (mut read, mut write) = stream.into_split();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: {content_type}\r\nContent-Length: {size}\r\n\r\n",
        v.port
    );
    let writer = tokio::spawn(async move {
        write.write_all(head.as_bytes()).await?;
        for chunk in big_payload(size).chunks(64 * 1024) {
            write.write_all(chunk).await?;
        }
        std::io::Result::Ok(write)
    });
    let mut answer = [0u8; 12];
    let outcome = match read.read_exact(&mut answer).await {
        Ok(_) if answer.starts_with(b"HTTP/1.1 2") => {
            Outcome::served(String::from_utf8_lossy(&answer[9..12]), started.elapsed())
        }
        Ok(_) if answer.starts_with(b"HTTP/1.1 ") => {
            Outcome::refused(String::from_utf8_lossy(&answer[9..12]), started.elapsed())
        }
        _ => Outcome::refused("connection cut", started.elapsed()),
    };
    writer.abort();
    outcome
}

// ---- raw sockets ----

/// One connection held open, sending nothing or (`trickle`) a request's headers one line a
/// second, until the service answers or closes it. The service must cut it within
/// `allowance` (its header read timeout and a second) or refuse it at once (503).
async fn hold_socket(v: Victim, trickle: bool, allowance: Duration, until: Instant) -> Outcome {
    let started = Instant::now();
    let mut stream = match TcpStream::connect(("127.0.0.1", v.port)).await {
        Ok(stream) => stream,
        Err(_) => return Outcome::refused("connect failed", started.elapsed()),
    };
    if trickle {
        let head = format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n", v.port);
        if stream.write_all(head.as_bytes()).await.is_err() {
            return Outcome::refused("cut", started.elapsed());
        }
    }
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.tick().await;
    let mut buf = [0u8; 512];
    let mut answer = Vec::new();
    // The attempt is cut off by the flood's timeout; past the allowance it is a failure.
    let deadline = started + allowance + ALLOWANCE;
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => {
                    let label = if answer.starts_with(b"HTTP/1.1 503") {
                        return refused_then_pause("503", started.elapsed()).await;
                    } else if answer.starts_with(b"HTTP/1.1 ") {
                        format!("answered {}", String::from_utf8_lossy(&answer[9..12]))
                    } else {
                        "cut".to_owned()
                    };
                    return Outcome::cut(label, started.elapsed(), allowance);
                }
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            },
            _ = ticks.tick(), if trickle => {
                if stream.write_all(b"X-Slow: 1\r\n").await.is_err() {
                    return Outcome::cut("cut", started.elapsed(), allowance);
                }
            }
            _ = tokio::time::sleep_until(until.min(deadline)) => {
                return if started.elapsed() > allowance {
                    Outcome::served("still open", started.elapsed())
                } else {
                    Outcome::unfinished()
                };
            }
        }
    }
}

/// A refusal, returned after a pause: a client refused for want of connection slots tries
/// again once a second, not in a tight loop that would measure the bench's own CPU.
async fn refused_then_pause(label: impl Into<String>, elapsed: Duration) -> Outcome {
    tokio::time::sleep(Duration::from_secs(1)).await;
    Outcome::refused(label, elapsed)
}

// ---- WebSockets ----

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket on `path` (`graphql-transport-ws` on `/graphql/ws`), with `origin`.
async fn ws_connect(
    port: u16,
    path: &str,
    origin: Option<&str>,
) -> Result<WsStream, tungstenite::Error> {
    let mut request = format!("ws://127.0.0.1:{port}{path}").into_client_request()?;
    if path == "/graphql/ws" {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("graphql-transport-ws"),
        );
    }
    if let Some(origin) = origin {
        if let Ok(value) = HeaderValue::from_str(origin) {
            request.headers_mut().insert("Origin", value);
        }
    }
    let (ws, _) = tokio_tungstenite::connect_async(request).await?;
    Ok(ws)
}

fn handshake_label(path: &str, err: &tungstenite::Error) -> String {
    match err {
        tungstenite::Error::Http(response) => format!("{path} {}", response.status().as_u16()),
        _ => format!("{path} cut"),
    }
}

/// `/graphql/ws` after `connection_init` and its ack.
async fn ws_session(port: u16) -> Result<WsStream, String> {
    let mut ws = ws_connect(port, "/graphql/ws", None)
        .await
        .map_err(|err| handshake_label("/graphql/ws", &err))?;
    let init = json!({ "type": "connection_init" }).to_string();
    ws.send(Message::text(init))
        .await
        .map_err(|_| "init cut".to_owned())?;
    while let Some(message) = ws.next().await {
        match message {
            Ok(Message::Text(text)) if text.contains("connection_ack") => return Ok(ws),
            Ok(Message::Close(frame)) => return Err(close_label(frame.as_ref())),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    Err("closed before connection_ack".to_owned())
}

fn close_label(frame: Option<&tungstenite::protocol::CloseFrame>) -> String {
    match frame {
        Some(frame) => format!("close {}", u16::from(frame.code)),
        None => "close".to_owned(),
    }
}

fn subscribe(id: &str, query: &str) -> Message {
    Message::text(
        json!({ "id": id, "type": "subscribe", "payload": { "query": query } }).to_string(),
    )
}

/// Reads until a message about `id` (`error`, `next`, `complete`) or a close, and says
/// which: refused unless `next`.
async fn await_verdict(ws: &mut WsStream, id: &str, started: Instant) -> Outcome {
    while let Some(message) = ws.next().await {
        match message {
            Ok(Message::Text(text)) => {
                let Ok(value) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                if value["id"] != id {
                    continue;
                }
                let refused_by_errors =
                    value["payload"]["data"].is_null() && value["payload"]["errors"].is_array();
                return match value["type"].as_str() {
                    Some("next") if refused_by_errors => {
                        Outcome::refused("next with errors", started.elapsed())
                    }
                    Some("next") => Outcome::served("next", started.elapsed()),
                    Some(kind) => Outcome::refused(kind.to_owned(), started.elapsed()),
                    None => continue,
                };
            }
            Ok(Message::Close(frame)) => {
                return Outcome::refused(close_label(frame.as_ref()), started.elapsed())
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    Outcome::refused("cut", started.elapsed())
}

async fn deep_subscribe(v: Victim, n: usize) -> Outcome {
    let started = Instant::now();
    let mut ws = match ws_session(v.port).await {
        Ok(ws) => ws,
        Err(label) => return Outcome::refused(label, started.elapsed()),
    };
    let nested = if n.is_multiple_of(2) {
        format!("{}\"1\"{}", "{a:".repeat(2000), "}".repeat(2000))
    } else {
        format!("{}\"1\"{}", "[".repeat(3000), "]".repeat(3000))
    };
    let query = format!("subscription {{ checkResults(monitorId: {nested}) {{ id }} }}");
    let started = Instant::now();
    if ws.send(subscribe("deep", &query)).await.is_err() {
        return Outcome::refused("cut", started.elapsed());
    }
    let outcome = await_verdict(&mut ws, "deep", started).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
    outcome
}

/// One idle WebSocket, held (answering pings) until the phase ends; refused at once when
/// the service is at its connection limit.
async fn idle_ws(v: Victim, n: usize, until: Instant) -> Outcome {
    let started = Instant::now();
    let ws = if n.is_multiple_of(2) {
        ws_connect(v.port, "/ws", None)
            .await
            .map_err(|err| handshake_label("/ws", &err))
    } else {
        ws_session(v.port).await
    };
    let mut ws = match ws {
        Ok(ws) => ws,
        Err(label) => return refused_then_pause(label, started.elapsed()).await,
    };
    loop {
        tokio::select! {
            message = ws.next() => match message {
                Some(Ok(Message::Close(frame))) => {
                    return Outcome::held(format!("held, then {}", close_label(frame.as_ref())))
                }
                Some(Ok(_)) => {}
                _ => return Outcome::held("held, then cut"),
            },
            _ = tokio::time::sleep_until(until) => break,
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
    // Wait out the phase, or the flood would open another.
    tokio::time::sleep_until(until).await;
    Outcome::held("held")
}

/// A `/graphql/ws` socket that never sends `connection_init`; the service must close it
/// within `WS_INIT_TIMEOUT_SECONDS` and a second.
async fn no_init(v: Victim, until: Instant) -> Outcome {
    let allowance = v.limits.ws_init_timeout + ALLOWANCE;
    let started = Instant::now();
    let mut ws = match ws_connect(v.port, "/graphql/ws", None).await {
        Ok(ws) => ws,
        Err(err) => {
            return refused_then_pause(handshake_label("/graphql/ws", &err), started.elapsed())
                .await
        }
    };
    let deadline = started + allowance + ALLOWANCE;
    loop {
        tokio::select! {
            message = ws.next() => match message {
                Some(Ok(Message::Close(frame))) => {
                    return Outcome::cut(close_label(frame.as_ref()), started.elapsed(), allowance)
                }
                Some(Ok(_)) => {}
                _ => return Outcome::cut("cut", started.elapsed(), allowance),
            },
            _ = tokio::time::sleep_until(until.min(deadline)) => {
                return if started.elapsed() > allowance {
                    Outcome::served("still open", started.elapsed())
                } else {
                    Outcome::unfinished()
                };
            }
        }
    }
}

/// One 60 MB text message, made once and shared.
fn big_text() -> Utf8Bytes {
    static TEXT: OnceLock<&'static str> = OnceLock::new();
    Utf8Bytes::from_static(TEXT.get_or_init(|| Box::leak("a".repeat(60_000_000).into_boxed_str())))
}

/// A 60 MB message; refused when the service closes the socket (1009) before taking it.
async fn big_ws_message(v: Victim, n: usize) -> Outcome {
    let path = if n.is_multiple_of(2) {
        "/ws"
    } else {
        "/graphql/ws"
    };
    let ws = if path == "/ws" {
        ws_connect(v.port, path, None)
            .await
            .map_err(|err| handshake_label(path, &err))
    } else {
        ws_session(v.port).await
    };
    let started = Instant::now();
    let ws = match ws {
        Ok(ws) => ws,
        Err(label) => return Outcome::refused(label, started.elapsed()),
    };
    let (mut sink, mut stream) = ws.split();
    let send = tokio::spawn(async move { sink.send(Message::Text(big_text())).await });
    let started = Instant::now();
    let outcome = loop {
        match stream.next().await {
            Some(Ok(Message::Close(frame))) => {
                break Outcome::refused(
                    format!("{path} {}", close_label(frame.as_ref())),
                    started.elapsed(),
                )
            }
            Some(Ok(_)) => {}
            _ => break Outcome::refused(format!("{path} cut"), started.elapsed()),
        }
    };
    send.abort();
    outcome
}

/// 10,000 subscribe messages on one connection; every one past `WS_MAX_SUBSCRIPTIONS`
/// must be refused (an error for its id, or the socket closed) within a second of the last
/// being sent.
async fn many_subscriptions(v: Victim) -> Outcome {
    let count = 10_000;
    let started = Instant::now();
    let ws = match ws_session(v.port).await {
        Ok(ws) => ws,
        Err(label) => return Outcome::refused(label, started.elapsed()),
    };
    let (mut sink, mut stream) = ws.split();
    let query = "subscription { statusChanges { newStatus } }";
    let sender = tokio::spawn(async move {
        for id in 0..count {
            if sink.send(subscribe(&id.to_string(), query)).await.is_err() {
                break;
            }
        }
        (Instant::now(), sink)
    });
    let mut refused = 0usize;
    let limit = v.limits.ws_max_subscriptions;
    let closed = loop {
        let message = tokio::select! {
            message = stream.next() => message,
            _ = tokio::time::sleep(Duration::from_secs(3)) => break None,
        };
        match message {
            Some(Ok(Message::Text(text))) => {
                if text.contains("\"error\"") || text.contains("\"complete\"") {
                    refused += 1;
                    if refused >= count - limit {
                        break None;
                    }
                }
            }
            Some(Ok(Message::Close(frame))) => break Some(close_label(frame.as_ref())),
            Some(Ok(_)) => {}
            _ => break Some("cut".to_owned()),
        }
    };
    let answered = Instant::now();
    let Ok((sent_all, mut sink)) = sender.await else {
        return Outcome::served("sender panicked", started.elapsed());
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
    let elapsed = answered.saturating_duration_since(sent_all);
    match closed {
        Some(label) => Outcome::refused(format!("{label} after {refused} refused"), elapsed),
        None if refused + limit >= count => {
            Outcome::refused(format!("{refused} refused, {limit} kept"), elapsed)
        }
        None => Outcome::served(format!("{} kept", count - refused), elapsed),
    }
}

/// Two subscriptions with one id: the service must close the socket (4409).
async fn duplicate_id(v: Victim) -> Outcome {
    let started = Instant::now();
    let mut ws = match ws_session(v.port).await {
        Ok(ws) => ws,
        Err(label) => return Outcome::refused(label, started.elapsed()),
    };
    let query = "subscription { statusChanges { newStatus } }";
    if ws.send(subscribe("dup", query)).await.is_err() {
        return Outcome::refused("cut", started.elapsed());
    }
    let started = Instant::now();
    if ws.send(subscribe("dup", query)).await.is_err() {
        return Outcome::refused("cut", started.elapsed());
    }
    let outcome = loop {
        let message = tokio::select! {
            message = ws.next() => message,
            _ = tokio::time::sleep(Duration::from_secs(3)) => {
                break Outcome::served("both kept", started.elapsed())
            }
        };
        match message {
            Some(Ok(Message::Close(frame))) => {
                break Outcome::refused(close_label(frame.as_ref()), started.elapsed())
            }
            Some(Ok(Message::Text(text))) if text.contains("\"error\"") => {
                break Outcome::refused("error", started.elapsed())
            }
            Some(Ok(_)) => {}
            _ => break Outcome::refused("cut", started.elapsed()),
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documents_have_the_issue_s_sizes() {
        assert!((8_000..8_200).contains(&deep_object().len()));
        assert!((6_000..6_100).contains(&deep_list().len()));
        assert!(fragment_bomb().len() < 1_300);
        assert_eq!(aliased_mutations(1).matches("runCheck").count(), 2400);
    }

    #[test]
    fn a_late_refusal_fails_and_held_sockets_do_not() {
        let mut tally = Tally::default();
        tally.add(Outcome::refused("400", Duration::from_millis(5)));
        tally.add(Outcome::refused("400", Duration::from_millis(1500)));
        tally.add(Outcome::held("held"));
        tally.add(Outcome::unfinished());
        assert_eq!(
            (tally.attempts, tally.refused, tally.failed, tally.held),
            (3, 1, 1, 1)
        );
        assert_eq!(tally.slowest, Duration::from_millis(1500));
    }
}
