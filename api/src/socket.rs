//! What every WebSocket of the server shares (`/graphql/ws` and `/ws`): the upgrade with its
//! buffer and message limits and the `Origin` check, keep-alive pings with dead-peer
//! detection, and closing with the right code (1009 for a message over the limit, 1012 at
//! shutdown) after which the peer's close reply is awaited briefly so the frame is read.

use std::time::Duration;

use axum::{
    extract::ws::{rejection::WebSocketUpgradeRejection, CloseFrame, Message, WebSocket},
    extract::WebSocketUpgrade,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use futures_util::{SinkExt, StreamExt};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::{edge::Limits, AppState};

/// Buffer sizes of one WebSocket. The library defaults (128 KiB each way) made a thousand
/// idle dashboards cost a quarter of a gigabyte; messages here are small.
pub const WS_BUFFER: usize = 4 * 1024;

/// Close code when the server stops: clients (graphql-ws, Apollo's GraphQLWsLink, browsers'
/// reconnecting wrappers) treat it as "try again", so they resubscribe by themselves.
pub const SERVICE_RESTART: u16 = 1012;
/// Close code for a peer silent for two keep-alive intervals: "going away", which clients
/// retry (graphql-ws retries 1001; 4408 would claim a missing `connection_init`).
pub const GOING_AWAY: u16 = 1001;

/// How long a closing socket waits for the peer's close reply before it is dropped.
const CLOSE_LINGER: Duration = Duration::from_secs(1);
/// Longest close reason RFC 6455 allows (a control frame holds 125 bytes, 2 are the code).
const MAX_REASON: usize = 123;

/// Why an upgrade was refused; answers `{"error": ...}` with its status.
pub enum Refused {
    /// A foreign `Origin`: 403.
    Origin,
    /// Not a valid WebSocket upgrade: axum's 4xx.
    NotAnUpgrade(WebSocketUpgradeRejection),
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let (status, error) = match self {
            Self::Origin => (
                StatusCode::FORBIDDEN,
                "this Origin may not open WebSockets here (allowed: the server's own origin and CORS_ALLOWED_ORIGINS)".to_owned(),
            ),
            Self::NotAnUpgrade(rejection) => (rejection.status(), rejection.body_text()),
        };
        (status, Json(serde_json::json!({ "error": error }))).into_response()
    }
}

/// Checks a WebSocket upgrade (the `Origin` first, then the upgrade itself) and gives it the
/// server's buffer sizes and message limit.
pub fn accept(
    state: &AppState,
    headers: &HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<WebSocketUpgrade, Refused> {
    if !state.edge.origin_allowed(headers) {
        return Err(Refused::Origin);
    }
    let upgrade = upgrade.map_err(Refused::NotAnUpgrade)?;
    let max = state.edge.limits.ws_max_message_bytes;
    Ok(upgrade
        .read_buffer_size(WS_BUFFER)
        .write_buffer_size(WS_BUFFER)
        .max_message_size(max)
        .max_frame_size(max))
}

/// The close frame that answers a read error, or `None` when the connection is simply gone.
/// A message over the limit gets 1009 naming the limit; invalid UTF-8, 1007; another
/// protocol violation, 1002.
pub fn close_for_read_error(error: axum::Error, limits: &Limits) -> Option<(u16, String)> {
    let inner = error.into_inner();
    let error = inner.downcast_ref::<tungstenite::Error>()?;
    match error {
        tungstenite::Error::Capacity(_) => Some((
            1009,
            format!(
                "message too big: at most {} bytes",
                limits.ws_max_message_bytes
            ),
        )),
        tungstenite::Error::Utf8(_) => Some((1007, "text message is not valid UTF-8".into())),
        tungstenite::Error::Protocol(problem) => Some((1002, problem.to_string())),
        _ => None,
    }
}

/// Closes with `code` and `reason` (cut to what a close frame holds), then reads until the
/// peer's close reply or the end of the stream, discarding what comes, so the peer reads the
/// frame before the connection goes; all within [`CLOSE_LINGER`].
pub async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: truncate(reason, MAX_REASON).into(),
    };
    // Bounded as a whole: a peer that reads nothing cannot hold the socket open.
    let _ = tokio::time::timeout(CLOSE_LINGER, async {
        if socket.send(Message::Close(Some(frame))).await.is_err() {
            return;
        }
        while let Some(Ok(message)) = socket.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// Flushes what is queued (such as the reply to the peer's close frame), within
/// [`CLOSE_LINGER`].
pub async fn flush_briefly(socket: &mut WebSocket) {
    let _ = tokio::time::timeout(CLOSE_LINGER, socket.flush()).await;
}

/// `text` cut to at most `max` bytes, at a character boundary.
pub fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// What the keep-alive timer asks for.
pub enum Beat {
    /// Send a ping (and whatever keep-alive the subprotocol has).
    Ping,
    /// The peer sent nothing for two intervals: close it with [`GOING_AWAY`].
    Dead,
}

/// Keep-alive of one socket: a beat every interval; the peer is dead once nothing (no pong,
/// no message) came from it for two intervals.
pub struct KeepAlive {
    interval: Interval,
    period: Duration,
    last_heard: Instant,
}

impl KeepAlive {
    /// Starts the timer; its first beat is one interval from now.
    pub fn new(period: Duration) -> Self {
        let now = Instant::now();
        let mut interval = tokio::time::interval_at(now + period, period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            interval,
            period,
            last_heard: now,
        }
    }

    /// Something came from the peer.
    pub fn heard(&mut self) {
        self.last_heard = Instant::now();
    }

    /// Waits for the next beat.
    pub async fn beat(&mut self) -> Beat {
        self.interval.tick().await;
        if self.last_heard.elapsed() >= self.period * 2 {
            Beat::Dead
        } else {
            Beat::Ping
        }
    }

    /// Longest a write may wait for the peer to take data in: two intervals, like silence.
    /// A peer that reads nothing for that long is gone (its socket is dropped, since no
    /// close frame could pass).
    pub fn write_limit(&self) -> Duration {
        self.period * 2
    }

    /// The reason given when the peer is closed as dead.
    pub fn dead_reason(&self) -> String {
        format!(
            "no answer to keep-alive pings for {} s",
            (self.period * 2).as_secs()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn a_reason_is_cut_at_a_character_boundary_within_the_limit() {
        assert_eq!(truncate("short", 123), "short");
        let long = "é".repeat(100); // 200 bytes
        let cut = truncate(&long, 123);
        assert_eq!(cut.len(), 122);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
