//! Notification channels: one module per kind builds the request its service expects (the
//! payload format of the real service), and [`send`] sends it. A message carries one notice
//! or, for kinds that group, several at once.

mod chat;
mod email;
mod pagerduty;
mod webhook;

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use domain::{
    notification::{Channel, ChannelKind, Notice},
    TargetPolicy,
};

/// How long one send may take before it counts as failed.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Most of an endpoint's answer kept in an attempt's error.
const MAX_ERROR_BODY: usize = 300;

/// One HTTP request to make.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Outgoing {
    fn json(url: String, value: &serde_json::Value) -> Self {
        Self {
            url,
            headers: vec![("content-type", "application/json".into())],
            body: value.to_string().into_bytes(),
        }
    }
}

/// Tells `notices` on `channel` (several only for kinds that group): over SMTP for email,
/// else one HTTP request.
pub async fn deliver(
    client: &reqwest::Client,
    policy: &TargetPolicy,
    channel: &Channel,
    notices: &[Notice],
    now_unix: i64,
) -> Sent {
    // The target policy holds for channels as for checks: a literal address here, names as
    // they resolve (the client's resolver; for SMTP, a lookup first).
    if let Err(error) = vet_endpoint(policy, channel).await {
        return Sent {
            ok: false,
            response_code: None,
            error: Some(error),
            duration_ms: 0,
        };
    }
    match channel.kind {
        ChannelKind::Email => email::send(&channel.settings, notices).await,
        _ => send(client, request(channel, notices, now_unix)).await,
    }
}

/// The HTTP request that tells `notices` on `channel`.
pub fn request(channel: &Channel, notices: &[Notice], now_unix: i64) -> Outgoing {
    match channel.kind {
        ChannelKind::Webhook => webhook::request(&channel.settings, notices, now_unix),
        ChannelKind::Pagerduty => pagerduty::request(&channel.settings, &notices[0]),
        kind => chat::request(kind, &channel.settings, notices),
    }
}

/// How one send went.
#[derive(Debug, Clone)]
pub struct Sent {
    pub ok: bool,
    pub response_code: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i32,
}

/// Sends `outgoing`: a 2xx answer within [`SEND_TIMEOUT`] is delivered; anything else is a
/// failure with the reason (the status and the start of the answer, or the transport error).
pub async fn send(client: &reqwest::Client, outgoing: Outgoing) -> Sent {
    let started = Instant::now();
    let mut request = client
        .post(&outgoing.url)
        .timeout(SEND_TIMEOUT)
        .body(outgoing.body);
    for (name, value) in outgoing.headers {
        request = request.header(name, value);
    }
    let result = request.send().await;
    let (ok, response_code, error) = match result {
        Ok(response) => {
            let status = response.status();
            if status.is_success() {
                (true, Some(status.as_u16()), None)
            } else {
                let text = response.text().await.unwrap_or_default();
                let mut shown: String = text.chars().take(MAX_ERROR_BODY).collect();
                shown = shown.replace(['\r', '\n'], " ");
                let error = if shown.trim().is_empty() {
                    format!("HTTP {}", status.as_u16())
                } else {
                    format!("HTTP {}: {}", status.as_u16(), shown.trim())
                };
                (false, Some(status.as_u16()), Some(error))
            }
        }
        Err(err) => (false, None, Some(transport_error(err))),
    };
    Sent {
        ok,
        response_code,
        error,
        duration_ms: i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX),
    }
}

/// A transport failure in a line, without the URL (which may hold a secret).
fn transport_error(err: reqwest::Error) -> String {
    if err.is_timeout() {
        return format!("no answer within {} s", SEND_TIMEOUT.as_secs());
    }
    // A refusal by the target policy, from the resolver, says so.
    let mut source = std::error::Error::source(&err);
    while let Some(inner) = source {
        let text = inner.to_string();
        if text.starts_with("the endpoint ") {
            return text;
        }
        source = inner.source();
    }
    if err.is_connect() {
        return "connection failed (refused or unreachable)".into();
    }
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// Refuses an endpoint whose literal address the policy blocks, and for SMTP one whose name
/// resolves only to blocked addresses.
async fn vet_endpoint(policy: &TargetPolicy, channel: &Channel) -> Result<(), String> {
    if channel.kind == ChannelKind::Email {
        let host = channel.settings.smtp_host.as_deref().unwrap_or_default();
        let port = channel.settings.smtp_port();
        let addrs = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::lookup_host((host, port)),
        )
        .await
        .map_err(|_| format!("the SMTP host {host} did not resolve within 5 s"))?
        .map_err(|_| format!("the SMTP host {host} does not resolve"))?;
        vet_addrs(policy, addrs.collect())?;
        return Ok(());
    }
    let url = url::Url::parse(&channel.settings.url).map_err(|e| format!("invalid URL: {e}"))?;
    policy
        .vet_url(&url)
        .map_err(|(ip, why)| format!("the endpoint {ip} is {why}"))?;
    Ok(())
}

fn vet_addrs(policy: &TargetPolicy, addrs: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, String> {
    let mut first_refusal = None;
    let allowed: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|a| match policy.vet(a.ip()) {
            Ok(()) => true,
            Err(why) => {
                first_refusal.get_or_insert(format!("the endpoint {} is {why}", a.ip()));
                false
            }
        })
        .collect();
    match (allowed.is_empty(), first_refusal) {
        (true, Some(refusal)) => Err(refusal),
        _ => Ok(allowed),
    }
}

/// reqwest's resolver, with the target policy applied to every address.
struct VettingResolver(Arc<TargetPolicy>);

impl reqwest::dns::Resolve for VettingResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let allowed = vet_addrs(&policy, addrs)?;
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// The HTTP client deliveries use: no redirects (a webhook that moves is misconfigured), the
/// target policy on every resolved address, its own timeout per request.
pub fn client(policy: &TargetPolicy) -> reqwest::Client {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(VettingResolver(Arc::new(policy.clone()))))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("monitor-manager/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}
