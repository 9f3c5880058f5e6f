//! The HTTP server loop and the checks every request passes first: the `Host` and `Origin`
//! policy, CORS, and the time a request may take. Connections are counted against
//! [`Limits::max_connections`](crate::edge::Limits) (a WebSocket keeps its connection's
//! slot), and a client has [`Limits::header_read_timeout`](crate::edge::Limits) to send each
//! request's headers, so idle and slow clients cannot hold the server's sockets.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    extract::{Request, State},
    http::{header, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    Json,
};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{
    net::TcpListener,
    sync::{OwnedSemaphorePermit, Semaphore},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower::ServiceExt as _;
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer};

use crate::{edge::Origins, AppState};

/// A connection's place among [`Limits::max_connections`](crate::edge::Limits): in every
/// request's extensions, so a WebSocket upgrade can keep it for as long as the socket lives.
#[derive(Clone)]
pub struct ConnectionSlot(#[allow(dead_code)] Arc<OwnedSemaphorePermit>);

/// The largest body any route takes (`POST /graphql`'s); each route checks its own limit too.
const MAX_BODY_BYTES: usize = crate::graphql::http::BODY_LIMIT_BYTES;

/// What a client past the connection limit gets before its connection is closed.
const TOO_MANY_CONNECTIONS: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 67\r\n\r\n{\"error\":\"the server has too many open connections; retry shortly\"}";

/// Serves until `shutdown` completes, then lets requests in flight finish for up to `grace`.
///
/// Accepted connections get `TCP_NODELAY`: responses and subscription messages are written
/// whole and flushed, so Nagle's algorithm has nothing to gain and would hold a short
/// segment back for the client's delayed ACK.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let limits = state.edge.limits.clone();
    let sockets = state.sockets.clone();
    let app = crate::router(state);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let stop = CancellationToken::new();
    let connections = TaskTracker::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(64 * 1024);
    tokio::pin!(shutdown);
    let mut last_accept_warning: Option<Instant> = None;
    // A descriptor kept in reserve: when accepts fail for want of descriptors, it is freed
    // to accept the waiting client and tell it so, instead of leaving it in the backlog.
    let mut spare = std::fs::File::open("/dev/null").ok();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, _) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors, or the client left before the accept: say so at
                // most once a minute, refuse the waiting client with the spare descriptor, or
                // wait a moment instead of spinning.
                if last_accept_warning.is_none_or(|at| at.elapsed() > Duration::from_secs(60)) {
                    tracing::warn!(error = %err, "cannot accept a connection");
                    last_accept_warning = Some(Instant::now());
                }
                let out_of_files = matches!(err.raw_os_error(), Some(23 | 24));
                if out_of_files && spare.take().is_some() {
                    if let Ok((stream, _)) = listener.accept().await {
                        refuse(stream);
                    }
                    spare = std::fs::File::open("/dev/null").ok();
                } else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            refuse(stream);
            continue;
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY on an accepted connection");
        }
        let slot = ConnectionSlot(Arc::new(permit));
        let app = app.clone();
        let service = TowerToHyperService::new(tower::service_fn(
            move |mut request: Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(slot.clone());
                app.clone().oneshot(request.map(axum::body::Body::new))
            },
        ));
        let connection = http
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let stop = stop.clone();
        connections.spawn(async move {
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = stop.cancelled() => {
                    // Finish the request in flight, then close instead of keeping alive.
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    drop(listener);
    stop.cancel();
    connections.close();
    // WebSockets close with 1012 when shutdown is cancelled; their close frames go out here.
    sockets.close();
    let drained = async { tokio::join!(connections.wait(), sockets.wait()) };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!("requests still running after the shutdown grace period; abandoning them");
    }
    Ok(())
}

/// Tells a client past the connection limit so and closes at once: the answer fits in the
/// socket's buffer, and the descriptor is not held while a slow client reads it.
fn refuse(stream: tokio::net::TcpStream) {
    let _ = stream.try_write(TOO_MANY_CONNECTIONS);
    if let Ok(stream) = stream.into_std() {
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
}

/// The checks before routing: a served `Host`, an allowed `Origin` for anything but reads
/// (no other site's page can change anything), and the request time limit.
pub async fn edge_checks(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    if let Some(host) = headers.get(header::HOST) {
        let served = host
            .to_str()
            .is_ok_and(|host| state.edge.allowed_hosts.allows(host));
        if !served {
            let shown = String::from_utf8_lossy(host.as_bytes())
                .chars()
                .take(100)
                .collect::<String>();
            return refusal(
                StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "this server does not answer to Host `{shown}`; add the name to ALLOWED_HOSTS"
                ),
            );
        }
    }
    // A body announced larger than any route takes is refused before a byte of it is read.
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is over the limit of {MAX_BODY_BYTES} bytes"),
        );
    }
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !safe && !state.edge.origin_allowed(headers) {
        return refusal(
            StatusCode::FORBIDDEN,
            "requests from this Origin are not allowed; add it to CORS_ALLOWED_ORIGINS".into(),
        );
    }
    let limit = state.edge.limits.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the request took longer than {} s (REQUEST_TIMEOUT_SECONDS) and was stopped",
                limit.as_secs()
            ),
        ),
    }
}

fn refusal(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// CORS for the configured origins: preflights answered, the page's headers allowed, nothing
/// for other origins (the browser then refuses the response to the page).
pub fn cors(origins: &Origins) -> Option<CorsLayer> {
    let allow_origin = match origins {
        Origins::None => return None,
        Origins::Any => AllowOrigin::any(),
        Origins::List(list) => {
            AllowOrigin::list(list.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
        }
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods(AllowMethods::list([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::DELETE,
            ]))
            .allow_headers(AllowHeaders::mirror_request())
            .max_age(Duration::from_secs(600)),
    )
}
