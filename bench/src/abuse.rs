//! The abuse scenario: the service with its address space and open files capped, a
//! background check load and a normal client polling throughout, then every attack of
//! [`crate::attacks`] as a phase of its own, each measured for how fast the service refused
//! or cut it, whether it stayed up, its RSS and CPU, the normal client's latency and whether
//! the checks kept succeeding.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use anyhow::{bail, Context as _};
use serde_json::json;
use tokio::time::{Instant, MissedTickBehavior};

use crate::{
    api::{self, Spec},
    attacks::{self, Attack, ServiceLimits, Tally, Victim},
    database::{Backend, BenchDb},
    procs::{self, Caps, ServiceProcess, TargetProcess},
    scenario::{self, Env},
    stats::Summary,
    target::unix_micros,
};

/// The normal client's query, sent about 20 times a second on one keep-alive connection.
const NORMAL_QUERY: &str = "{ monitors(first: 50) { nodes { id name lastStatus } } }";
const NORMAL_PERIOD: Duration = Duration::from_millis(50);
/// A fresh connection's `GET /healthz` this often: whether new clients still get in.
const FRESH_PERIOD: Duration = Duration::from_millis(500);
/// Pause between phases, so one phase's stragglers do not count in the next.
const SETTLE: Duration = Duration::from_millis(1500);

/// What to run.
#[derive(Debug, Clone)]
pub struct Abuse {
    pub backend: Backend,
    /// `RLIMIT_AS` of the service, in MiB.
    pub memory_cap_mib: u64,
    /// `RLIMIT_NOFILE` of the service (soft and hard).
    pub open_files: u64,
    /// Background load: this many monitors checked every `interval` s against the target.
    pub monitors: usize,
    pub interval: u64,
    /// Seconds per phase (attacks that hold connections run until the service's timeout
    /// has cut them, and two seconds more).
    pub phase_seconds: u64,
    /// The phases to run by name (empty: all).
    pub only: Vec<String>,
    /// Extra environment for the service (the service's own defaults otherwise).
    pub service_env: Vec<(String, String)>,
}

/// What one phase measured.
#[derive(Debug)]
pub struct PhaseReport {
    pub attack: Attack,
    pub seconds: f64,
    pub tally: Tally,
    pub alive: bool,
    pub rss_start: u64,
    pub rss_end: u64,
    pub rss_peak: u64,
    pub cpu_seconds: f64,
    /// The normal client's latency (ms) and failed requests during the phase.
    pub normal: Summary,
    pub normal_errors: u64,
    /// Fresh connections' `GET /healthz`: answered 200, and tried.
    pub fresh_ok: u64,
    pub fresh_tried: u64,
    /// Checks stored as UP and DOWN with `checked_at` inside the phase.
    pub checks_up: i64,
    pub checks_down: i64,
    pub checks_expected: f64,
}

impl PhaseReport {
    /// Why the phase failed, if it did: the service died, an attempt was served or not
    /// refused in time, or a check went DOWN (latency and RSS are reported, not judged).
    pub fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        if !self.alive {
            failures.push("the service died".to_owned());
        }
        if self.tally.failed > 0 {
            failures.push(format!(
                "{} attempts not refused or cut in time",
                self.tally.failed
            ));
        }
        if self.checks_down > 0 {
            failures.push(format!("{} checks DOWN", self.checks_down));
        }
        if self.checks_up == 0 {
            failures.push("no check stored UP".to_owned());
        }
        failures
    }
}

/// The service's limits as its settings give them (the defaults unless `env` sets them).
pub fn service_limits(env: &[(String, String)]) -> ServiceLimits {
    let get = |key: &str, default: u64| {
        env.iter()
            .rev()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(default)
    };
    ServiceLimits {
        header_read_timeout: Duration::from_secs(get("HEADER_READ_TIMEOUT_SECONDS", 10)),
        ws_init_timeout: Duration::from_secs(get("WS_INIT_TIMEOUT_SECONDS", 10)),
        ws_max_subscriptions: get("WS_MAX_SUBSCRIPTIONS", 100) as usize,
    }
}

/// Runs every selected phase against one service; every process and database it made is
/// gone when it returns. Fails only when the set-up does; the phases' verdicts are in the
/// reports.
pub async fn run(a: &Abuse, env: &Env) -> anyhow::Result<(Vec<PhaseReport>, String)> {
    let own_files = procs::raise_own_open_files();
    if own_files < 4096 {
        eprintln!(
            "bench: warning: this process may open only {own_files} files; the attacks hold up to 2,000 sockets"
        );
    }
    let phases: Vec<Attack> = attacks::ALL
        .into_iter()
        .filter(|attack| a.only.is_empty() || a.only.iter().any(|o| o == attack.name()))
        .collect();
    if phases.is_empty() {
        let names: Vec<&str> = attacks::ALL.iter().map(|a| a.name()).collect();
        bail!(
            "--only matches no phase; the phases are {}",
            names.join(", ")
        );
    }
    let limits = service_limits(&a.service_env);
    let target = TargetProcess::start(&crate::target::Options::default()).await?;
    let dir = tempfile::Builder::new()
        .prefix("monitor-abuse-")
        .tempdir()
        .context("cannot make a temporary directory")?;
    // Declared before the service, so it is dropped (a PostgreSQL database dropped) after it.
    let db = BenchDb::fresh(a.backend, dir.path(), &env.postgres_url).await?;
    let caps = Caps {
        address_space: Some(a.memory_cap_mib * 1024 * 1024),
        open_files: Some(a.open_files),
    };
    let mut service =
        ServiceProcess::start_capped(&env.binary, dir.path(), &db.url, &a.service_env, caps)
            .await
            .with_context(|| {
                format!(
                    "the service did not start with {} MiB of address space and {} open files",
                    a.memory_cap_mib, a.open_files
                )
            })?;
    let pid = service.pid().context("the service has no pid")?;
    let mapped_at_start = procs::address_space(pid).unwrap_or(0);
    let base = format!("http://127.0.0.1:{}", service.port);
    let http = api::client()?;
    let observer = db.observe().await?;

    let spec = Spec {
        interval: a.interval,
        target_port: target.port,
        check: crate::api::CheckProfile::Plain,
        tcp_ports: Vec::new(),
        dns_port: None,
        channel_ids: Vec::new(),
    };
    eprintln!(
        "bench: creating {} monitors every {} s",
        a.monitors, a.interval
    );
    // Created paused, then activated paced over one interval: checks spread evenly in time,
    // so every phase sees its share.
    let (mut monitors, _) = api::create(&http, &base, &spec, a.monitors, 32, false).await?;
    api::activate_paced(&http, &base, &spec, &mut monitors, 32).await?;
    scenario::wait_all_checked(&http, target.port, a.monitors, a.interval).await?;
    let victim = Victim {
        port: service.port,
        monitor_id: monitors.ids.first().copied().unwrap_or(1),
        limits,
    };

    let stop = Arc::new(AtomicBool::new(false));
    let normal = Arc::new(Mutex::new(Vec::new()));
    let fresh = Arc::new(Mutex::new(Vec::new()));
    let normal_task = tokio::spawn(normal_client(base.clone(), normal.clone(), stop.clone()));
    let fresh_task = tokio::spawn(fresh_client(base.clone(), fresh.clone(), stop.clone()));
    tokio::time::sleep(SETTLE).await;

    let mut reports = Vec::new();
    for attack in phases {
        let seconds = if attack.holds() {
            let timeout = match attack {
                Attack::NoConnectionInit => limits.ws_init_timeout,
                _ => limits.header_read_timeout,
            };
            a.phase_seconds.max(timeout.as_secs() + 2)
        } else {
            a.phase_seconds
        };
        eprintln!(
            "bench: phase {} ({seconds} s): {}",
            attack.name(),
            attack.description()
        );
        let report = phase(
            attack,
            seconds,
            victim,
            pid,
            &mut service,
            &observer,
            &normal,
            &fresh,
            a,
        )
        .await?;
        let dead = !report.alive;
        reports.push(report);
        if dead {
            eprintln!(
                "bench: the service died; its last output:\n{}",
                service.log_tail()
            );
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = normal_task.await;
    let _ = fresh_task.await;
    service.stop(Duration::from_secs(20)).await;
    observer.close().await;
    let setup = format!(
        "{} monitors every {} s against the bench target; service `RLIMIT_AS` {} MiB ({} MiB mapped after start), `RLIMIT_NOFILE` {}; {}",
        a.monitors,
        a.interval,
        a.memory_cap_mib,
        mapped_at_start / 1024 / 1024,
        a.open_files,
        if a.service_env.is_empty() {
            "service settings at their defaults".to_owned()
        } else {
            let env: Vec<String> = a.service_env.iter().map(|(k, v)| format!("{k}={v}")).collect();
            env.join(" ")
        }
    );
    Ok((reports, setup))
}

#[allow(clippy::too_many_arguments)]
async fn phase(
    attack: Attack,
    seconds: u64,
    victim: Victim,
    pid: u32,
    service: &mut ServiceProcess,
    observer: &crate::database::Observer,
    normal: &Mutex<Vec<Sample>>,
    fresh: &Mutex<Vec<Sample>>,
    a: &Abuse,
) -> anyhow::Result<PhaseReport> {
    procs::reset_peak_rss(pid);
    let rss_start = procs::rss(pid)?;
    let cpu_start = procs::cpu_time(pid)?;
    let start = Instant::now();
    let start_ms = unix_micros() / 1000;
    let until = start + Duration::from_secs(seconds);
    // VmHWM may not be resettable (older kernels); sample VmRSS too.
    let sampler = tokio::spawn(async move {
        let mut peak = 0;
        let mut ticks = tokio::time::interval(Duration::from_millis(100));
        while Instant::now() < until {
            ticks.tick().await;
            peak = peak.max(procs::rss(pid).unwrap_or(0));
        }
        peak
    });
    let tally = attack.run(victim, until).await;
    let end = Instant::now();
    let end_ms = unix_micros() / 1000;
    let alive = service.ensure_running().is_ok();
    let (rss_end, rss_peak, cpu_seconds) = if alive {
        let sampled = sampler.await.unwrap_or(0);
        (
            procs::rss(pid).unwrap_or(0),
            procs::peak_rss(pid).unwrap_or(0).max(sampled),
            (procs::cpu_time(pid).unwrap_or(cpu_start) - cpu_start).as_secs_f64(),
        )
    } else {
        sampler.abort();
        (0, 0, 0.0)
    };
    // Results of checks done in the phase are stored within moments; let them land.
    tokio::time::sleep(SETTLE).await;
    let (checks_up, checks_down) = observer.up_down_between(start_ms, end_ms).await?;
    let (normal, normal_errors) = window(normal, start, end);
    let (fresh_summary, fresh_errors) = window(fresh, start, end);
    Ok(PhaseReport {
        attack,
        seconds: (end - start).as_secs_f64(),
        tally,
        alive,
        rss_start,
        rss_end,
        rss_peak,
        cpu_seconds,
        normal,
        normal_errors,
        fresh_ok: fresh_summary.count as u64,
        fresh_tried: fresh_summary.count as u64 + fresh_errors,
        checks_up,
        checks_down,
        checks_expected: a.monitors as f64 / a.interval as f64 * (end - start).as_secs_f64(),
    })
}

/// One request of a probe: when it was sent, its latency in ms, whether it succeeded.
type Sample = (Instant, f64, bool);

/// The latencies of the successful samples sent in `[start, end)`, and the failed ones.
fn window(samples: &Mutex<Vec<Sample>>, start: Instant, end: Instant) -> (Summary, u64) {
    let samples = samples.lock().unwrap_or_else(|e| e.into_inner());
    let inside = samples
        .iter()
        .filter(|(at, _, _)| (start..end).contains(at));
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for &(_, ms, ok) in inside {
        if ok {
            latencies.push(ms);
        } else {
            errors += 1;
        }
    }
    (Summary::of(latencies), errors)
}

/// The normal client: [`NORMAL_QUERY`] every [`NORMAL_PERIOD`] on one keep-alive
/// connection (a new one only when the service closed it), until `stop`.
async fn normal_client(base: String, samples: Arc<Mutex<Vec<Sample>>>, stop: Arc<AtomicBool>) {
    let Ok(http) = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(5))
        .build()
    else {
        return;
    };
    let body = json!({ "query": NORMAL_QUERY });
    let mut ticks = tokio::time::interval(NORMAL_PERIOD);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) {
        ticks.tick().await;
        let sent = Instant::now();
        let ok = match http
            .post(format!("{base}/graphql"))
            .json(&body)
            .send()
            .await
        {
            Ok(response) if response.status().is_success() => response
                .json::<serde_json::Value>()
                .await
                .is_ok_and(|v| v.get("errors").is_none() && v["data"]["monitors"].is_object()),
            _ => false,
        };
        let ms = sent.elapsed().as_secs_f64() * 1000.0;
        samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((sent, ms, ok));
    }
}

/// A new client: `GET /healthz` on a fresh connection every [`FRESH_PERIOD`], until `stop`.
async fn fresh_client(base: String, samples: Arc<Mutex<Vec<Sample>>>, stop: Arc<AtomicBool>) {
    let Ok(http) = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
    else {
        return;
    };
    let mut ticks = tokio::time::interval(FRESH_PERIOD);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) {
        ticks.tick().await;
        let sent = Instant::now();
        let ok = http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        let ms = sent.elapsed().as_secs_f64() * 1000.0;
        samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((sent, ms, ok));
    }
}

/// The phases as a Markdown table.
pub fn table(reports: &[PhaseReport]) -> String {
    use std::fmt::Write as _;
    let mut out = String::from(
        "| phase | attempts: refused / held / failed | slowest refusal or cut (allowed) | alive | RSS start → end, peak | service CPU | normal client p50 / p99 / max (errors) | new connections served | checks UP / DOWN (expected) | how attempts ended | verdict |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in reports {
        let t = &r.tally;
        let slowest = if t.refused + t.failed == 0 {
            "-".to_owned()
        } else {
            format!(
                "{} ({})",
                duration(t.slowest),
                duration(t.slowest_allowance)
            )
        };
        let failures = r.failures();
        let verdict = if failures.is_empty() {
            "ok".to_owned()
        } else {
            format!("**FAIL**: {}", failures.join("; "))
        };
        let mut outcomes = t.outcomes_line();
        if outcomes.chars().count() > 160 {
            outcomes = outcomes.chars().take(157).collect::<String>() + "...";
        }
        let _ = writeln!(
            out,
            "| {} ({:.0} s) | {} / {} / {} | {} | {} | {} → {}, {} MiB | {:.2} s | {:.1} / {:.1} / {:.1} ms ({}) | {} of {} | {} / {} ({:.0}) | {} | {} |",
            r.attack.name(),
            r.seconds,
            t.refused,
            t.held,
            t.failed,
            slowest,
            if r.alive { "yes" } else { "**no**" },
            r.rss_start / 1024 / 1024,
            r.rss_end / 1024 / 1024,
            r.rss_peak / 1024 / 1024,
            r.cpu_seconds,
            r.normal.p50,
            r.normal.p99,
            r.normal.max,
            r.normal_errors,
            r.fresh_ok,
            r.fresh_tried,
            r.checks_up,
            r.checks_down,
            r.checks_expected,
            if outcomes.is_empty() { "-".to_owned() } else { outcomes.replace('|', "/") },
            verdict,
        );
    }
    out
}

fn duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{ms:.0} ms")
    }
}
