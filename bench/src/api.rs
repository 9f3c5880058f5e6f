//! Setting up the load through the service's public REST API: creating the monitors, and
//! activating them paced over one interval so their slots are spread evenly.

use std::time::Duration;

use anyhow::{bail, Context as _};
use chrono::{DateTime, Utc};
use futures_util::{stream, StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;

/// Timeout of one API request made while setting up.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// An HTTP client for 127.0.0.1 only: no proxy, pooled connections.
pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(256)
        .build()?)
}

/// The monitors a run created: `ids[n - 1]` is monitor `n`'s id in the service,
/// `origins_us[n - 1]` the unix micros its schedule starts from.
#[derive(Debug, Default)]
pub struct Monitors {
    pub ids: Vec<i64>,
    pub origins_us: Vec<i64>,
}

/// How long a setup phase took.
#[derive(Debug, Clone, Copy, Default)]
pub struct Phase {
    pub count: usize,
    pub elapsed: Duration,
}

impl Phase {
    pub fn per_second(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

#[derive(Deserialize)]
struct MonitorJson {
    id: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// What one monitor looks like in the bench.
pub struct Spec {
    pub interval: u64,
    pub target_port: u16,
    pub check: CheckProfile,
    /// A TCP scenario's ports, monitor 1 first.
    pub tcp_ports: Vec<u16>,
    /// A DNS scenario's resolver port (the target's).
    pub dns_port: Option<u16>,
    /// Notification channels: monitor n notifies the (n mod len)-th.
    pub channel_ids: Vec<i64>,
}

impl Spec {
    fn body(&self, n: usize, active: bool) -> serde_json::Value {
        let url = match self.check {
            CheckProfile::Https => format!("https://127.0.0.1:{}/m/{n}", self.target_port),
            CheckProfile::Plain | CheckProfile::Body => {
                format!("http://127.0.0.1:{}/m/{n}", self.target_port)
            }
            CheckProfile::Tcp => format!(
                "tcp://127.0.0.1:{}",
                self.tcp_ports
                    .get(n - 1)
                    .copied()
                    .unwrap_or(self.target_port)
            ),
            CheckProfile::Dns => format!("dns://m{n}.bench.test"),
        };
        let mut body = json!({
            "name": format!("bench-{n}"),
            "url": url,
            "timeout_seconds": 5,
            "interval_seconds": self.interval,
            "active": active,
        });
        if let (CheckProfile::Dns, Some(port)) = (self.check, self.dns_port) {
            body["dns_resolver"] = json!(format!("127.0.0.1:{port}"));
        }
        if !self.channel_ids.is_empty() {
            body["notification_channel_ids"] =
                json!([self.channel_ids[n % self.channel_ids.len()]]);
        }
        if self.check == CheckProfile::Body {
            // The target's page ends in `ok`: the whole body is read and searched.
            body["assertions"] =
                json!([{"source": "BODY", "comparison": "CONTAINS", "target": "ok"}]);
        }
        body
    }
}

/// What each monitor's check does beyond a GET.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckProfile {
    /// A GET over plain HTTP, judged by its status (the body is never read).
    #[default]
    Plain,
    /// The same GET with an assertion on the body (read whole and searched).
    Body,
    /// A GET over https with a full TLS handshake (certificate verified against the target's
    /// CA, given to the service as CHECK_CA_FILE).
    Https,
    /// A TCP connection and nothing else (`tcp://`), to a port of the target's per monitor
    /// (at most 20,000 monitors).
    Tcp,
    /// A DNS query (`dns://m{n}.bench.test`, A) to a DNS server in the target.
    Dns,
}

impl CheckProfile {
    /// How scenario names say it.
    pub fn label(self) -> &'static str {
        match self {
            CheckProfile::Plain => "",
            CheckProfile::Body => ", body assertion",
            CheckProfile::Https => ", https",
            CheckProfile::Tcp => ", tcp",
            CheckProfile::Dns => ", dns",
        }
    }
}

/// `POST /monitors` for monitors 1..=count, `concurrency` at once, as fast as the service
/// takes them. The origin of each is its `created_at` (it matters only when `active`).
pub async fn create(
    http: &reqwest::Client,
    base: &str,
    spec: &Spec,
    count: usize,
    concurrency: usize,
    active: bool,
) -> anyhow::Result<(Monitors, Phase)> {
    let started = Instant::now();
    let url = format!("{base}/monitors");
    let mut created: Vec<(usize, MonitorJson)> = stream::iter(1..=count)
        .map(|n| {
            let request = http.post(&url).json(&spec.body(n, active));
            async move {
                let monitor = send(request, 201).await?;
                anyhow::Ok((n, monitor))
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await
        .context("creating monitors failed")?;
    let phase = Phase {
        count,
        elapsed: started.elapsed(),
    };
    created.sort_unstable_by_key(|(n, _)| *n);
    let monitors = Monitors {
        ids: created.iter().map(|(_, m)| m.id).collect(),
        origins_us: created
            .iter()
            .map(|(_, m)| m.created_at.timestamp_micros())
            .collect(),
    };
    Ok((monitors, phase))
}

/// `PUT /monitors/{id}` with `active: true` for every monitor, the k-th sent at
/// `k * interval / count` after the start (or later when the service is slower), at most
/// `concurrency` at once. The origin of each becomes its `updated_at`.
pub async fn activate_paced(
    http: &reqwest::Client,
    base: &str,
    spec: &Spec,
    monitors: &mut Monitors,
    concurrency: usize,
) -> anyhow::Result<Phase> {
    let count = monitors.ids.len();
    let step = Duration::from_secs(spec.interval).as_secs_f64() / count.max(1) as f64;
    let started = Instant::now();
    let updated: Vec<(usize, MonitorJson)> = stream::iter(monitors.ids.iter().enumerate())
        .map(|(index, id)| {
            let request = http
                .put(format!("{base}/monitors/{id}"))
                .json(&spec.body(index + 1, true));
            let at = started + Duration::from_secs_f64(step * index as f64);
            async move {
                tokio::time::sleep_until(at).await;
                let monitor = send(request, 200).await?;
                anyhow::Ok((index, monitor))
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await
        .context("activating monitors failed")?;
    for (index, monitor) in updated {
        monitors.origins_us[index] = monitor.updated_at.timestamp_micros();
    }
    Ok(Phase {
        count,
        elapsed: started.elapsed(),
    })
}

async fn send(request: reqwest::RequestBuilder, expected: u16) -> anyhow::Result<MonitorJson> {
    let response = request.send().await?;
    let status = response.status();
    if status.as_u16() != expected {
        let body = response.text().await.unwrap_or_default();
        bail!(
            "HTTP {status}: {}",
            body.chars().take(300).collect::<String>()
        );
    }
    Ok(response.json().await?)
}
