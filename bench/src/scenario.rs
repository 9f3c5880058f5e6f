//! One scenario from start to end: target, database, service, monitors, warm-up, the
//! measured window, and the numbers. Also the overload search built on it.

use std::{collections::HashMap, path::PathBuf, time::Duration};

use anyhow::Context as _;
use tokio::time::Instant;

use crate::{
    api::{self, CheckProfile, Spec},
    database::{Backend, BenchDb},
    probes,
    procs::{self, Distributed, Service, TargetProcess},
    report::Results,
    stats::{self, Summary},
    target::{self, parse_arrivals, unix_micros},
};

/// What to run.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub monitors: usize,
    /// Seconds between checks of one monitor.
    pub interval: u64,
    /// Seconds measured.
    pub duration: u64,
    pub backend: Backend,
    pub subscribers: usize,
    /// Each subscriber watches one monitor (`checkResults(monitorId:)`, spread over the
    /// monitors) instead of every check.
    pub subscribe_each: bool,
    pub keep_alive: bool,
    /// What each check does.
    pub check: CheckProfile,
    /// Size of the target's answer body.
    pub body_bytes: usize,
    /// Monitor-creating requests at once.
    pub concurrency: usize,
    pub check_concurrency: Option<u32>,
    pub read_clients: usize,
    pub read_rate: f64,
    /// Create the monitors active at full speed (slots bunch up) instead of activating them
    /// paced over one interval.
    pub burst: bool,
    /// Extra environment for the service.
    pub service_env: Vec<(String, String)>,
    /// Run the service as separate API, scheduler and worker processes over RabbitMQ.
    pub distributed: Option<Distributed>,
}

/// Where the pieces are.
#[derive(Debug, Clone)]
pub struct Env {
    pub binary: PathBuf,
    pub postgres_url: String,
}

/// A default scenario name, e.g. `sqlite, 1000 monitors every 10 s`.
pub fn default_name(s: &Scenario) -> String {
    let mut name = format!(
        "{}, {} monitors every {} s",
        s.backend.name(),
        s.monitors,
        s.interval
    );
    if s.keep_alive {
        name.push_str(", keep-alive");
    }
    name.push_str(s.check.label());
    if s.body_bytes > 2 {
        name.push_str(&format!(", {} B bodies", s.body_bytes));
    }
    name
}

/// Runs one scenario. Every process and database it made is gone when it returns.
pub async fn run(s: &Scenario, env: &Env) -> anyhow::Result<Results> {
    eprintln!("bench: == {} ==", s.name);
    anyhow::ensure!(
        s.check != CheckProfile::Tcp || s.monitors <= 20_000,
        "--check tcp takes at most 20,000 monitors (the target listens on a port for each)"
    );
    warn_if_busy().await;
    let dir = tempfile::Builder::new()
        .prefix("monitor-bench-")
        .tempdir()
        .context("cannot make a temporary directory")?;
    let ca_file = dir.path().join("target-ca.pem");
    let target = TargetProcess::start(&target::Options {
        keep_alive: s.keep_alive,
        tls_ca: (s.check == CheckProfile::Https).then(|| ca_file.clone()),
        body_bytes: s.body_bytes,
        tcp_ports: if s.check == CheckProfile::Tcp {
            s.monitors
        } else {
            0
        },
        dns: s.check == CheckProfile::Dns,
    })
    .await?;
    // Declared before the service, so it is dropped (a PostgreSQL database dropped) after it.
    let db = BenchDb::fresh(s.backend, dir.path(), &env.postgres_url).await?;
    let mut service_env = s.service_env.clone();
    if s.check == CheckProfile::Https {
        service_env.push((
            "CHECK_CA_FILE".to_owned(),
            ca_file.to_string_lossy().into_owned(),
        ));
    }
    if let Some(c) = s.check_concurrency {
        service_env.push(("CHECK_CONCURRENCY".to_owned(), c.to_string()));
    }
    let mut service = Service::start(
        &env.binary,
        dir.path(),
        &db.url,
        &service_env,
        s.distributed.as_ref(),
    )
    .await?;
    let service_roles = service.roles();
    let service_pids: Vec<u32> = service_roles.iter().map(|&(_, pid)| pid).collect();
    let target_pid = target.pid().context("target has no pid")?;
    let base = format!("http://127.0.0.1:{}", service.port());
    let http = api::client()?;
    let observer = db.observe().await?;

    let tcp_ports = if s.check == CheckProfile::Tcp {
        fetch_ports(&http, target.port).await?
    } else {
        Vec::new()
    };
    let dns_port = if s.check == CheckProfile::Dns {
        Some(fetch_dns_port(&http, target.port).await?)
    } else {
        None
    };
    let spec = Spec {
        interval: s.interval,
        target_port: target.port,
        check: s.check,
        tcp_ports,
        dns_port,
        channel_ids: Vec::new(),
    };
    eprintln!("bench: creating {} monitors", s.monitors);
    let (mut monitors, create) =
        api::create(&http, &base, &spec, s.monitors, s.concurrency, s.burst).await?;
    let activate = if s.burst {
        None
    } else {
        eprintln!(
            "bench: activating them over {} s ({:.0} monitors/s created)",
            s.interval,
            create.per_second()
        );
        Some(api::activate_paced(&http, &base, &spec, &mut monitors, s.concurrency).await?)
    };
    service.ensure_running()?;

    // Steady state begins once every monitor has had its first check.
    let waited = Instant::now();
    wait_all_checked(&http, target.port, s.monitors, s.interval).await?;
    let all_checked_after = waited.elapsed();
    service.ensure_running()?;

    let mut subscribers = Vec::new();
    for n in 0..s.subscribers {
        let monitor = s
            .subscribe_each
            .then(|| monitors.ids[n % monitors.ids.len().max(1)]);
        subscribers.push(probes::subscribe(service.port(), monitor).await?);
    }
    let warmup = Duration::from_secs(s.interval.max(2));
    eprintln!(
        "bench: warming up {} s, then measuring {} s",
        warmup.as_secs(),
        s.duration
    );
    let window_start = Instant::now() + warmup;
    let window_end = window_start + Duration::from_secs(s.duration);
    let start_us = unix_micros() + warmup.as_micros() as i64;
    let end_us = start_us + s.duration as i64 * 1_000_000;
    let listeners: Vec<_> = subscribers
        .into_iter()
        .map(|ws| tokio::spawn(probes::listen(ws, start_us, window_end)))
        .collect();
    tokio::time::sleep_until(window_start).await;

    let count0 = observer.count_results().await?;
    let counted0 = Instant::now();
    let cpu0 = cpu_snapshot(&service_pids, target_pid)?;
    let reads = tokio::spawn(probes::reads(
        http.clone(),
        base.clone(),
        monitors.ids.clone(),
        s.read_clients,
        s.read_rate,
        window_end,
    ));
    tokio::time::sleep_until(window_end).await;
    let cpu1 = cpu_snapshot(&service_pids, target_pid)?;
    let count1 = observer.count_results().await?;
    let measured = counted0.elapsed().as_secs_f64();
    let mut peak_rss = 0;
    for &pid in &service_pids {
        peak_rss += procs::peak_rss(pid)?;
    }
    service.ensure_running()?;

    // Let checks due at the end of the window arrive before reading the arrivals.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let arrivals = fetch_arrivals(&http, target.port, 0).await?;
    let interval_us = s.interval as i64 * 1_000_000;
    let lag = stats::analyse(
        &arrivals,
        &monitors.origins_us,
        interval_us,
        start_us,
        end_us,
    );
    let own = stats::own_grid(&arrivals, &monitors.origins_us, interval_us);
    if let Some(path) = std::env::var_os("BENCH_DUMP_ARRIVALS") {
        dump_arrivals(&PathBuf::from(path), &arrivals, &monitors.origins_us, &own)?;
    }
    let jitter = stats::analyse(&arrivals, &own, interval_us, start_us, end_us);
    let first_check_ms = stats::first_check_delays(&arrivals, &monitors.origins_us);
    let reads = reads.await.context("read probes panicked")?;
    let mut delays = Vec::new();
    let mut sub_received_min = usize::MAX;
    let mut sub_errors = 0;
    for listener in listeners {
        let seen = listener.await.context("subscriber panicked")?;
        sub_received_min = sub_received_min.min(seen.delays_ms.len());
        sub_errors += seen.errors;
        delays.extend(seen.delays_ms);
    }
    let footprint = observer.footprint().await?;
    let (warnings, errors, log_lines) = service.warnings_and_errors();
    // Stopped gracefully, the service writes what it checked; every request the target saw
    // should then be a stored row.
    service.stop(Duration::from_secs(20)).await;
    let final_rows = observer.count_results().await?;
    let late = fetch_arrivals(&http, target.port, arrivals.len()).await?;
    let lost = (arrivals.len() + late.len()) as i64 - final_rows;
    let not_up = observer
        .scalar("SELECT COUNT(*) FROM check_results WHERE NOT up")
        .await?;
    observer.close().await;

    Ok(Results {
        monitors: s.monitors,
        interval: s.interval,
        duration: measured,
        backend: s.backend.name(),
        keep_alive: s.keep_alive,
        spread: !s.burst,
        create_concurrency: s.concurrency,
        check_concurrency: s.check_concurrency,
        create,
        activate,
        stored: count1 - count0,
        total_rows: count1,
        lost,
        not_up,
        lag,
        jitter,
        first_check_ms,
        all_checked_after,
        longest_pause_ms: stats::longest_pause_ms(&arrivals),
        service_cpu_ms: cpu1.service_ms - cpu0.service_ms,
        service_switches: cpu1.service_switches.saturating_sub(cpu0.service_switches),
        target_cpu_ms: cpu1.target_ms - cpu0.target_ms,
        bench_cpu_ms: cpu1.bench_ms - cpu0.bench_ms,
        machine_busy: (cpu1.machine_busy - cpu0.machine_busy) as f64
            / (cpu1.machine_total - cpu0.machine_total).max(1) as f64,
        peak_rss,
        others: other_processes(
            &cpu0,
            &cpu1,
            &[&service_pids[..], &[target_pid, std::process::id()]].concat(),
        ),
        distributed: s.distributed.clone(),
        cpu_by_role: cpu_by_role(&cpu0, &cpu1, &service_roles),
        footprint,
        reads,
        read_clients: s.read_clients,
        read_rate: s.read_rate,
        subscribers: s.subscribers,
        subscribe_each: s.subscribe_each,
        sub_delay_ms: Summary::of(delays),
        sub_received_min: if s.subscribers == 0 {
            0
        } else {
            sub_received_min
        },
        sub_errors,
        warnings,
        errors,
        log_lines,
    })
}

/// Writes `n origin_us own_origin_us arrival_us` lines, for a closer look at the lag.
fn dump_arrivals(
    path: &std::path::Path,
    arrivals: &[(u32, i64)],
    origins: &[i64],
    own: &[i64],
) -> anyhow::Result<()> {
    use std::fmt::Write as _;
    let mut out = String::new();
    for &(n, at) in arrivals {
        let index = (n as usize).saturating_sub(1);
        let (Some(origin), Some(own)) = (origins.get(index), own.get(index)) else {
            continue;
        };
        let _ = writeln!(out, "{n} {origin} {own} {at}");
    }
    std::fs::write(path, out).with_context(|| format!("cannot write {}", path.display()))
}

/// Waits until the target has seen every monitor, at most 10 intervals plus two minutes.
pub async fn wait_all_checked(
    http: &reqwest::Client,
    port: u16,
    monitors: usize,
    interval: u64,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10 * interval + 120);
    loop {
        let seen: usize = http
            .get(format!("http://127.0.0.1:{port}/__distinct"))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?
            .trim()
            .parse()?;
        if seen >= monitors {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "only {seen} of {monitors} monitors were checked within {} s of their activation",
                10 * interval + 120
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A TCP scenario's ports, from the target.
async fn fetch_ports(http: &reqwest::Client, port: u16) -> anyhow::Result<Vec<u16>> {
    let body = http
        .get(format!("http://127.0.0.1:{port}/__ports"))
        .send()
        .await?
        .text()
        .await?;
    body.split_whitespace()
        .map(|p| p.parse().context("bad port from the target"))
        .collect()
}

/// A DNS scenario's resolver port, from the target.
async fn fetch_dns_port(http: &reqwest::Client, port: u16) -> anyhow::Result<u16> {
    let body = http
        .get(format!("http://127.0.0.1:{port}/__dns"))
        .send()
        .await?
        .text()
        .await?;
    body.trim().parse().context("the target has no DNS port")
}

async fn fetch_arrivals(
    http: &reqwest::Client,
    port: u16,
    from: usize,
) -> anyhow::Result<Vec<(u32, i64)>> {
    let body = http
        .get(format!("http://127.0.0.1:{port}/__arrivals?from={from}"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    parse_arrivals(&body)
}

/// Says so when the machine is busy before the run starts: the figures would be skewed.
async fn warn_if_busy() {
    let Ok((busy0, total0)) = procs::machine_cpu() else {
        return;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let Ok((busy1, total1)) = procs::machine_cpu() else {
        return;
    };
    let busy = (busy1 - busy0) as f64 / (total1 - total0).max(1) as f64;
    if busy > 0.2 {
        eprintln!(
            "bench: warning: the machine is {:.0}% busy before the run; other processes will skew it",
            busy * 100.0
        );
    }
}

struct CpuSnapshot {
    service_ms: f64,
    service_switches: u64,
    target_ms: f64,
    bench_ms: f64,
    machine_busy: u64,
    machine_total: u64,
    processes: HashMap<u32, (String, f64)>,
}

fn cpu_snapshot(service: &[u32], target: u32) -> anyhow::Result<CpuSnapshot> {
    let ms = |pid: u32| procs::cpu_time(pid).map(|d| d.as_secs_f64() * 1000.0);
    let (machine_busy, machine_total) = procs::machine_cpu()?;
    let (mut service_ms, mut service_switches) = (0.0, 0);
    for &pid in service {
        service_ms += ms(pid)?;
        service_switches += procs::context_switches(pid)?;
    }
    Ok(CpuSnapshot {
        service_ms,
        service_switches,
        target_ms: ms(target)?,
        bench_ms: ms(std::process::id())?,
        machine_busy,
        machine_total,
        processes: procs::all_processes_cpu(),
    })
}

/// CPU (ms) of the service's processes between two snapshots, summed by role.
fn cpu_by_role(
    before: &CpuSnapshot,
    after: &CpuSnapshot,
    roles: &[(procs::Role, u32)],
) -> Vec<(String, f64)> {
    let mut by_role: Vec<(String, f64)> = Vec::new();
    for (role, pid) in roles {
        let used = match (after.processes.get(pid), before.processes.get(pid)) {
            (Some((_, a)), Some((_, b))) => a - b,
            _ => continue,
        };
        let name = format!("{role:?}").to_lowercase();
        match by_role.iter_mut().find(|(n, _)| *n == name) {
            Some((_, ms)) => *ms += used,
            None => by_role.push((name, used)),
        }
    }
    by_role
}

/// CPU (ms) other processes used between two snapshots, summed by command name, largest
/// first (processes started in between count in full).
fn other_processes(before: &CpuSnapshot, after: &CpuSnapshot, ours: &[u32]) -> Vec<(String, f64)> {
    let mut by_name: HashMap<String, f64> = HashMap::new();
    for (pid, (name, ms)) in &after.processes {
        if ours.contains(pid) {
            continue;
        }
        let earlier = before.processes.get(pid).map_or(0.0, |(_, ms)| *ms);
        *by_name.entry(name.clone()).or_default() += (ms - earlier).max(0.0);
    }
    let mut others: Vec<(String, f64)> = by_name.into_iter().filter(|(_, ms)| *ms > 0.0).collect();
    others.sort_by(|a, b| b.1.total_cmp(&a.1));
    others.truncate(4);
    others
}

/// One step of the overload search.
pub struct Step {
    pub rate: u64,
    pub outcome: anyhow::Result<Results>,
}

impl Step {
    /// Held: p99 lag on the monitors' own grids at most 1 s and at most 0.1% of slots
    /// missed.
    pub fn held(&self) -> bool {
        self.outcome
            .as_ref()
            .is_ok_and(|r| r.jitter.lag_ms.p99 <= 1000.0 && r.missed_fraction() <= 0.001)
    }
}

/// Doubles the check rate from `start_rate` (monitors = rate * interval) until a step does
/// not hold or `max_steps` ran; `on_step` sees each step as it ends.
pub async fn overload(
    template: &Scenario,
    env: &Env,
    start_rate: u64,
    max_steps: usize,
    mut on_step: impl FnMut(&Step),
) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut rate = start_rate.max(1);
    for _ in 0..max_steps {
        let mut scenario = template.clone();
        scenario.monitors = (rate * template.interval) as usize;
        scenario.name = format!("{} (overload step {rate}/s)", template.name);
        let step = Step {
            rate,
            outcome: run(&scenario, env).await,
        };
        on_step(&step);
        let held = step.held();
        steps.push(step);
        if !held {
            break;
        }
        rate *= 2;
    }
    steps
}
