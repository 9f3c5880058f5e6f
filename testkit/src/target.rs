//! A target for monitors to check, inside the test process and only on 127.0.0.1: an HTTP
//! server with well-behaved and badly-behaved routes, a TCP port that answers garbage instead
//! of HTTP, and one that accepts connections and never says anything.
//!
//! Routes of the HTTP server:
//! - `/ok`: 200;
//! - `/status/{code}`: that status;
//! - `/slow/{ms}`: sleeps, then 200;
//! - `/redirect-loop`: 302 to itself; `/redirect-once`: 302 to `/ok`;
//! - `/endless`: 200 with a body that never ends;
//! - `/flip`: the status last set with [`Target::set_flip`] (200 at start);
//! - `/toggle`: 200, 500, 200, 500, ... on successive requests (every check a status change).

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        atomic::{AtomicU16, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::{
    body::{Body, Bytes},
    extract::{Path, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    sync::Notify,
    task::JoinHandle,
};

/// What the garbage port sends instead of an HTTP response: NUL bytes, invalid UTF-8 and
/// control characters.
pub const GARBAGE: &[u8] =
    b"\x00\x00\xff\xfe\x80garbage\x00\x1b[31m\xc3\x28 not http at all\r\n\x00\r\n\r\n";

#[derive(Default)]
struct Shared {
    flip: AtomicU16,
    toggles: AtomicU64,
    slow_started: AtomicU64,
    slow_notify: Notify,
}

/// The running target; its servers stop when it is dropped.
pub struct Target {
    /// The HTTP server.
    pub http: SocketAddr,
    /// Answers every connection with [`GARBAGE`] and closes it.
    pub garbage: SocketAddr,
    /// Accepts connections and never answers.
    pub silent: SocketAddr,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Target {
    /// Starts all three listeners on ephemeral ports of 127.0.0.1.
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        shared.flip.store(200, Ordering::SeqCst);
        let app = Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route("/status/{code}", get(status))
            .route("/slow/{ms}", get(slow))
            .route(
                "/redirect-loop",
                get(|| async { redirect("/redirect-loop") }),
            )
            .route("/redirect-once", get(|| async { redirect("/ok") }))
            .route("/endless", get(endless))
            .route("/flip", get(flip))
            .route("/toggle", get(toggle))
            .with_state(shared.clone());
        let http_listener = bind().await;
        let http = http_listener.local_addr().unwrap();
        let mut tasks = vec![tokio::spawn(async move {
            let _ = axum::serve(http_listener, app).await;
        })];

        let garbage_listener = bind().await;
        let garbage = garbage_listener.local_addr().unwrap();
        tasks.push(tokio::spawn(async move {
            while let Ok((mut socket, _)) = garbage_listener.accept().await {
                tokio::spawn(async move {
                    // Read the request first, so closing the socket is a clean FIN and the
                    // client really gets to parse the garbage.
                    let _ =
                        tokio::time::timeout(Duration::from_secs(5), read_head(&mut socket)).await;
                    let _ = socket.write_all(GARBAGE).await;
                    let _ = socket.flush().await;
                    let _ = socket.shutdown().await;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                });
            }
        }));

        let silent_listener = bind().await;
        let silent = silent_listener.local_addr().unwrap();
        tasks.push(tokio::spawn(async move {
            // Keep every accepted socket open, unanswered, for as long as the target lives.
            let mut held = Vec::new();
            while let Ok((socket, _)) = silent_listener.accept().await {
                held.push(socket);
            }
        }));

        Self {
            http,
            garbage,
            silent,
            shared,
            tasks,
        }
    }

    /// `http://127.0.0.1:PORT/path` on the HTTP server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    /// `http://` URL of the garbage port.
    pub fn garbage_url(&self) -> String {
        format!("http://{}/", self.garbage)
    }

    /// `http://` URL of the silent port.
    pub fn silent_url(&self) -> String {
        format!("http://{}/", self.silent)
    }

    /// Sets the status `/flip` answers with from now on.
    pub fn set_flip(&self, code: u16) {
        self.shared.flip.store(code, Ordering::SeqCst);
    }

    /// How many `/slow/..` requests have arrived.
    pub fn slow_requests(&self) -> u64 {
        self.shared.slow_started.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` `/slow/..` requests have arrived, or `within` passes.
    pub async fn wait_for_slow_requests(&self, n: u64, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.shared.slow_notify.notified();
            if self.slow_requests() >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.slow_requests() >= n;
            }
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A `http://127.0.0.1:PORT/` URL where nothing listens: a port that was just bound and freed.
pub fn refused_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/")
}

/// Reads until the end of an HTTP request head (or the peer stops sending).
async fn read_head(socket: &mut tokio::net::TcpStream) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
}

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a target listener")
}

async fn status(Path(code): Path<u16>) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST)
}

async fn slow(State(shared): State<Arc<Shared>>, Path(ms): Path<u64>) -> &'static str {
    shared.slow_started.fetch_add(1, Ordering::SeqCst);
    shared.slow_notify.notify_waiters();
    tokio::time::sleep(Duration::from_millis(ms)).await;
    "finally"
}

fn redirect(to: &'static str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
}

async fn endless() -> Response {
    let chunks = futures_util::stream::unfold((), |()| async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        Some((
            Ok::<_, Infallible>(Bytes::from_static(b"more and more and more\n")),
            (),
        ))
    });
    Body::from_stream(chunks).into_response()
}

async fn flip(State(shared): State<Arc<Shared>>) -> StatusCode {
    StatusCode::from_u16(shared.flip.load(Ordering::SeqCst)).unwrap_or(StatusCode::BAD_REQUEST)
}

async fn toggle(State(shared): State<Arc<Shared>>) -> StatusCode {
    if shared.toggles.fetch_add(1, Ordering::SeqCst) % 2 == 0 {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}
