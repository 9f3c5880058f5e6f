//! `bench notify`: how fast a confirmed DOWN reaches a webhook, and what the notification
//! rules cost the check path.
//!
//! N monitors (every I s, against the target) each notify one of C webhook channels (monitor
//! n notifies channel n mod C), all at a receiver in this process that records when each
//! message arrived. After every monitor has had its first check and a warm-up, the steady
//! phase measures the service's CPU per stored check for D s with the rules on and nothing
//! going down (run with `--channels 0` for the same without rules). Then K monitors, spread
//! over the channels, are pointed at a failing URL one every `--down-every-ms`: the change
//! makes each due at once, its check fails, the incident opens and the DOWN goes out. A DOWN's
//! latency is its arrival at the receiver minus the incident's start (the start of the check
//! that confirmed it, so it includes that check).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use serde_json::{json, Value};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use crate::{
    api::{self, CheckProfile, Spec},
    database::{Backend, BenchDb},
    procs::{self, Service, TargetProcess},
    scenario::wait_all_checked,
    target::{self, unix_micros},
};

/// What to run.
#[derive(Debug, Clone)]
pub struct Notify {
    pub backend: Backend,
    pub monitors: usize,
    pub interval: u64,
    pub channels: usize,
    pub duration: u64,
    pub downs: usize,
    pub down_every: Duration,
    pub concurrency: usize,
}

/// One message as the receiver got it.
struct Arrival {
    at_us: i64,
    body: Vec<u8>,
}

type Inbox = Arc<Mutex<Vec<Arrival>>>;

/// A minimal HTTP/1.1 server that answers 200 to every POST and keeps its body and arrival.
async fn receiver() -> anyhow::Result<(u16, Inbox)> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .context("the receiver cannot listen")?;
    let port = listener.local_addr()?.port();
    let inbox: Inbox = Arc::default();
    let kept = inbox.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let inbox = kept.clone();
            tokio::spawn(async move {
                let mut buf = Vec::with_capacity(4096);
                let mut chunk = [0u8; 8192];
                loop {
                    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n");
                    if let Some(end) = head_end {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + length {
                            let at_us = unix_micros();
                            let body = buf[end + 4..end + 4 + length].to_vec();
                            inbox.lock().unwrap().push(Arrival { at_us, body });
                            let _ = stream
                                .write_all(
                                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                                )
                                .await;
                            return;
                        }
                    }
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    Ok((port, inbox))
}

async fn graphql(
    http: &reqwest::Client,
    base: &str,
    query: &str,
    variables: Value,
) -> anyhow::Result<Value> {
    let body: Value = http
        .post(format!("{base}/graphql"))
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await?
        .json()
        .await?;
    anyhow::ensure!(body["errors"].is_null(), "GraphQL refused: {body}");
    Ok(body["data"].clone())
}

pub async fn run(n: &Notify, binary: &std::path::Path, postgres_url: &str) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("monitor-bench-")
        .tempdir()
        .context("cannot make a temporary directory")?;
    let target = TargetProcess::start(&target::Options {
        body_bytes: 2,
        ..target::Options::default()
    })
    .await?;
    let (rx_port, inbox) = receiver().await?;
    let db = BenchDb::fresh(n.backend, dir.path(), postgres_url).await?;
    let mut service = Service::start(binary, dir.path(), &db.url, &[], None).await?;
    let pids: Vec<u32> = service.roles().iter().map(|&(_, pid)| pid).collect();
    let base = format!("http://127.0.0.1:{}", service.port());
    let http = api::client()?;
    let observer = db.observe().await?;

    let mut channel_ids = Vec::new();
    for c in 0..n.channels {
        let data = graphql(
            &http,
            &base,
            "mutation($i: CreateNotificationChannelInput!) { createNotificationChannel(input: $i) { id } }",
            json!({"i": {"name": format!("hook {c}"), "kind": "WEBHOOK",
                "url": format!("http://127.0.0.1:{rx_port}/hook/{c}"),
                "secret": "bench-secret-0123456789"}}),
        )
        .await?;
        let id: i64 = data["createNotificationChannel"]["id"]
            .as_str()
            .unwrap_or_default()
            .parse()?;
        channel_ids.push(id);
    }
    let spec = Spec {
        interval: n.interval,
        target_port: target.port,
        check: CheckProfile::Plain,
        tcp_ports: Vec::new(),
        dns_port: None,
        channel_ids: channel_ids.clone(),
    };
    eprintln!(
        "bench: {} monitors every {} s, {} channels, {}",
        n.monitors,
        n.interval,
        n.channels,
        n.backend.name()
    );
    let (mut monitors, _) =
        api::create(&http, &base, &spec, n.monitors, n.concurrency, false).await?;
    api::activate_paced(&http, &base, &spec, &mut monitors, n.concurrency).await?;
    wait_all_checked(&http, target.port, n.monitors, n.interval).await?;
    tokio::time::sleep(Duration::from_secs(n.interval.max(2))).await;
    service.ensure_running()?;

    // Steady: the check path's CPU with the rules in place and nothing going down.
    let cpu = |pids: &[u32]| -> anyhow::Result<f64> {
        let mut ms = 0.0;
        for &pid in pids {
            ms += procs::cpu_time(pid)?.as_secs_f64() * 1000.0;
        }
        Ok(ms)
    };
    let (count0, cpu0) = (observer.count_results().await?, cpu(&pids)?);
    tokio::time::sleep(Duration::from_secs(n.duration)).await;
    let (count1, cpu1) = (observer.count_results().await?, cpu(&pids)?);
    let stored = (count1 - count0).max(1) as f64;
    println!(
        "steady {} s: {:.0} checks/s stored, service CPU per check {:.3} ms",
        n.duration,
        stored / n.duration as f64,
        (cpu1 - cpu0) / stored
    );
    if n.channels == 0 || n.downs == 0 {
        service.stop(Duration::from_secs(10)).await;
        return Ok(());
    }

    // Downs: one every `down_every`, spread over the channels.
    let failing = |index: usize| {
        let mut body = json!({
            "name": format!("bench-{}", index + 1),
            "url": format!("http://127.0.0.1:{}/fail/{}", target.port, index + 1),
            "timeout_seconds": 5,
            "interval_seconds": n.interval,
            "active": true,
        });
        body["notification_channel_ids"] = json!([channel_ids[(index + 1) % channel_ids.len()]]);
        body
    };
    // Spread over the monitors, and over the channels in turn (monitor n notifies n mod C).
    let stride = (n.monitors / n.downs.max(1)).max(1);
    let mut chosen: Vec<usize> = Vec::with_capacity(n.downs);
    let mut taken = std::collections::HashSet::new();
    for k in 0..n.downs.min(n.monitors) {
        let mut index = (k * stride + k) % n.monitors;
        while !taken.insert(index) {
            index = (index + 1) % n.monitors;
        }
        chosen.push(index);
    }
    let chosen_ids: std::collections::HashSet<i64> =
        chosen.iter().map(|&i| monitors.ids[i]).collect();
    let downs = chosen.len();
    let started = Instant::now();
    for (k, &index) in chosen.iter().enumerate() {
        tokio::time::sleep_until((started + n.down_every * k as u32).into()).await;
        let response = http
            .put(format!("{base}/monitors/{}", monitors.ids[index]))
            .json(&failing(index))
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "PUT refused: {}",
            response.status()
        );
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let told = |inbox: &Inbox| -> HashMap<i64, (i64, i64)> {
        let mut told = HashMap::new();
        for arrival in inbox.lock().unwrap().iter() {
            let Ok(body) = serde_json::from_slice::<Value>(&arrival.body) else {
                continue;
            };
            for item in body["notifications"].as_array().into_iter().flatten() {
                let chosen = item["monitor"]["id"]
                    .as_i64()
                    .is_some_and(|id| chosen_ids.contains(&id));
                if item["event"] != "DOWN" || !chosen {
                    continue;
                }
                let (Some(monitor), Some(started)) = (
                    item["monitor"]["id"].as_i64(),
                    item["started_at"]
                        .as_str()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()),
                ) else {
                    continue;
                };
                told.entry(monitor)
                    .or_insert((started.timestamp_micros(), arrival.at_us));
            }
        }
        told
    };
    while told(&inbox).len() < downs && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let told = told(&inbox);
    let messages = inbox.lock().unwrap().len();
    let mut latencies: Vec<f64> = told
        .values()
        .map(|&(start, at)| (at - start) as f64 / 1000.0)
        .collect();
    latencies.sort_by(f64::total_cmp);
    println!(
        "downs: {} of {} told in {} messages; DOWN latency (check start to receiver) p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        told.len(),
        downs,
        messages,
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or(0.0)
    );
    service.stop(Duration::from_secs(10)).await;
    anyhow::ensure!(told.len() == downs, "some DOWNs were never told");
    Ok(())
}

/// The `p`-th percentile (nearest rank) of sorted values; 0 when there are none.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
