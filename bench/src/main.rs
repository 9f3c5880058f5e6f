//! # bench: load benchmark for monitor-manager
//!
//! Runs the real service binary against a local target server and measures what the service
//! does under a given check load. Everything stays on 127.0.0.1.
//!
//! ## Running it
//!
//! ```sh
//! cargo build --release -p monitor-manager -p bench   # the bench runs the release binary
//! target/release/bench quick                           # tiny CI scenario, about 15 s
//! target/release/bench run --monitors 1000 --interval 1 --duration 20
//! target/release/bench run --monitors 1000 --interval 1 --duration 20 --backend postgres
//! target/release/bench suite                           # the full set, about an hour
//! target/release/bench abuse [--backend postgres]      # the abuse cases, about 3 minutes
//! ```
//!
//! The service binary is `--binary PATH`, by default `release/monitor-manager` under
//! `$CARGO_TARGET_DIR` or the workspace's `target/`; when that default is missing the bench
//! builds it with `cargo build --release -p monitor-manager` first. Note that a stale binary
//! is not rebuilt: build after changing the service. PostgreSQL runs need a server on
//! 127.0.0.1 reachable through `--postgres-url` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, or `BENCH_POSTGRES_URL`); the bench creates
//! a database `bench_<random>` there and drops it afterwards.
//!
//! ## What a run does
//!
//! 1. Starts the target: this binary again as `bench target`, a minimal HTTP/1.1 server on a
//!    thread of its own that answers `GET /m/{n}` with `200 ok` and `Connection: close`
//!    (`--keep-alive` keeps connections open) and records when each request arrived.
//! 2. Starts `monitor-manager` on a fresh SQLite file in a temporary directory (or a fresh
//!    PostgreSQL database) with `PORT=0`, and learns its port from the `listening on` line.
//!    `--check-concurrency` sets `CHECK_CONCURRENCY`; `--service-env KEY=VALUE` sets others.
//!    `--distributed-workers W` (PostgreSQL only) runs distributed mode instead: one
//!    `monitor-manager api` process, one `scheduler` and W `worker` processes over RabbitMQ
//!    (`--rabbitmq-url`, default `amqp://guest:guest@127.0.0.1:5672/%2f` or
//!    `BENCH_RABBITMQ_URL`; queues named for the run). The service's CPU, context switches
//!    and peak RSS are then sums over those processes (the broker's own CPU shows under
//!    "other processes").
//! 3. Creates N monitors (`POST /monitors`, `--concurrency` at once, inactive) and reports
//!    monitors/s; then activates them (`PUT /monitors/{id}`) paced evenly over one interval,
//!    so checks are spread evenly in time (`--burst` creates them active at full speed
//!    instead, so slots bunch up). The service checks a monitor at activation and then every
//!    interval; each monitor's `updated_at` (or `created_at`) is the origin of its grid.
//! 4. Connects S subscribers, waits until the target has seen every monitor once (at most
//!    10 I + 120 s), warms up for max(I, 2) s, then measures D seconds.
//! 5. Prints a table and writes its section into BENCHMARKS.md at the workspace root
//!    (`--report PATH`; `--no-report` to skip; `quick` writes only with `--report`).
//!
//! `BENCH_DUMP_ARRIVALS=FILE` writes every arrival as `n origin_us own_origin_us arrival_us`
//! for a closer look. Processes it starts are killed when the bench ends, fails, or gets Ctrl-C / SIGTERM.
//!
//! ## The figures
//!
//! - **checks stored/s**: rows added to `check_results` during the window (counted with
//!   `SELECT COUNT(*)` through a direct connection at both ends), against N / I expected.
//! - **checks lost**: over the whole run, requests the target served minus the rows stored
//!   once the service has been stopped gracefully (SIGTERM: it finishes and writes what is
//!   in flight); anything above 0 is results the service dropped.
//! - **missed slots**: grid points `origin + k * I` inside the window that no request to that
//!   monitor's `/m/{n}` served (nothing arrived between the point and the next one).
//! - **start lag**: for each arrival at the target inside the window, its distance after the
//!   nearest grid point at or before it; p50, p99, max. A lag of a whole interval or more
//!   shows as a missed slot instead. Given twice: against the activation grid (origin = the
//!   `updated_at` of the activating PUT, so it includes any delay before the scheduler took
//!   the monitor in, which then shifts all its slots), and against the monitor's own grid
//!   (origin moved on by the smallest offset any of its arrivals after the first had: the
//!   scheduling jitter; it says little unless the run sees several checks per monitor, i.e.
//!   D well above I). Missed slots and the overload search use the own grid.
//! - **first check after activation**: per monitor, its first arrival at the target minus its
//!   origin, over the whole run (the service should check a monitor at once). **longest
//!   pause in checks**: the longest time no request reached the target, after the first.
//! - **service CPU per stored check**: user + system CPU of the service process over the
//!   window (`/proc/PID/stat`) divided by the results stored (it includes serving the reads
//!   and subscriptions, which matters only at small loads), with the context switches of its
//!   threads per check (`/proc/PID/task/*/status`); **peak RSS** is VmHWM. The
//!   machine's total CPU use (`/proc/stat`) covers PostgreSQL too; the target's and the
//!   bench's own shares are shown beside it, then all other processes together (the machine's
//!   total minus these three) and the busiest of them by name: the PostgreSQL server, or
//!   anything else that ran at the same time and skewed the run (processes that started and
//!   ended inside the window count in the total only). The bench also warns on stderr when
//!   the machine is busy before a run.
//! - **database bytes per stored result**: SQLite: pages of `check_results` and its indexes
//!   (`dbstat`), and the whole file plus WAL; PostgreSQL: `pg_total_relation_size`; both
//!   divided by the rows stored so far.
//! - **read latency**: `--read-clients` clients (8) sending about `--read-rate` (40)
//!   requests/s in all, paced, cycling through `{ monitors(first: 20) { nodes { id
//!   lastStatus } } }`, `checkResults(monitorId, first: 50)` for a random monitor and
//!   `GET /monitors/{id}/check?limit=50`; p50 / p99 per query.
//! - **subscription delay**: S WebSocket clients (`graphql-transport-ws`, `subscription {
//!   checkResults { id checkedAt responseTimeMs } }`); delay = receive time - (checkedAt +
//!   responseTimeMs), both whole milliseconds, so ±2 ms.
//!
//! ## Subcommands
//!
//! - `run`: one scenario, as given. `--repeat N` runs it N times, each on a fresh service and
//!   database, and reports the run with the median CPU per check plus every run's figure (on a
//!   shared VM the CPU a check costs moves by a quarter from one run to the next).
//! - `quick`: 50 monitors every 1 s, 3 s measured, 2 subscribers, SQLite. For CI: it asserts
//!   nothing about speed and fails only when the machinery does (nothing stored, nothing
//!   arrived, a read failed, a subscriber got nothing).
//! - `reference`: no service; a bare client's GETs per second and client CPU per GET against
//!   the target, with a fresh connection each and with keep-alive: the machine's yardstick,
//!   to set beside the issue's figures for a bare client (about 0.025 ms of CPU per fresh
//!   GET) when comparing figures taken on different VMs.
//! - `abuse`: the API-edge issue's attacks, each a phase of its own (`--phase-seconds`, 5;
//!   phases that hold connections last the service's timeout and 2 s more; `--quick`: 2 s
//!   phases and 3 s service timeouts; `--only a,b` picks phases). The service runs with its
//!   address space capped by `setrlimit(RLIMIT_AS)` in `pre_exec` (`--memory-cap-mib`,
//!   1024: the service bounds glibc's malloc arenas, which SQLite's C allocations use, so
//!   its address space stays near 200 MiB) and `RLIMIT_NOFILE` 1,024 soft and
//!   hard (`--open-files`), under a background load (`--monitors` 500 every `--interval` 5
//!   s against the target; `CHECK_CONCURRENCY` 200 unless `--check-concurrency` says
//!   otherwise, as the service's 1,000 would leave it 16 connections under 1,024 open files)
//!   and a normal client polling `{ monitors(first: 50) { nodes { id
//!   name lastStatus } } }` every 50 ms on one keep-alive connection, with a new
//!   connection's `GET /healthz` every 500 ms beside it. Per phase: attempts refused (an
//!   error status, a GraphQL answer without data, an error or close on the WebSocket, the
//!   connection cut), held (idle sockets kept within the service's limits, as a client's
//!   would be) or failed (served, or refused later than allowed: 1 s, or for a held
//!   connection the service's timeout plus 1 s); the slowest refusal or cut; whether the
//!   process is alive; RSS at start and end and its peak (VmHWM reset per phase through
//!   `/proc/PID/clear_refs`, and VmRSS sampled every 100 ms); the service's CPU seconds; the
//!   normal client's p50/p99/max and errors; new connections served; checks stored UP and
//!   DOWN with `checked_at` inside the phase. Exits non-zero when the service died, an
//!   attempt failed, or a check went DOWN (latency and RSS are reported, not judged).
//! - `notify`: N monitors (10,000 every 10 s) each notifying one of C webhook channels (20) at
//!   a receiver in the bench; after warm-up the service's CPU per stored check over D s with
//!   the rules on (`--channels 0`: without); then K monitors (100), one every 500 ms, spread
//!   over the channels, pointed at a failing URL: p50 / p99 / max of the time from the start
//!   of the check that confirmed each DOWN to its arrival at the receiver.
//! - `suite`: 1,000 monitors at 10 s, 10,000 at 10 s, 100,000 at 50 s on SQLite and on
//!   PostgreSQL, then an overload search per backend: from `--overload-start` checks/s
//!   (monitors every `--overload-interval` s) the rate doubles until the p99 start lag
//!   exceeds 1 s or more than 0.1% of slots are missed; the highest rate held is reported.

mod abuse;
mod api;
mod attacks;
mod database;
mod history;
mod notify;
mod probes;
mod procs;
mod reference;
mod report;
mod scenario;
mod stats;
mod suite;
mod target;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};

use crate::{
    api::CheckProfile, database::Backend, procs::Distributed, report::RunInfo, scenario::Scenario,
};

/// Load benchmark for monitor-manager (see bench/src/main.rs for what each figure means).
#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one scenario.
    Run {
        #[command(flatten)]
        load: Load,
        #[command(flatten)]
        common: Common,
    },
    /// A tiny scenario for CI (50 monitors every 1 s, 3 s, 2 subscribers, SQLite).
    Quick {
        #[command(flatten)]
        common: Common,
    },
    /// The issue's scenarios on SQLite and PostgreSQL, then an overload search.
    Suite {
        /// Seconds measured per scenario.
        #[arg(long, default_value_t = 60)]
        duration: u64,
        /// Backends to run, in order.
        #[arg(long, value_delimiter = ',', default_values = ["sqlite", "postgres"])]
        backends: Vec<Backend>,
        /// Skip the overload search.
        #[arg(long)]
        skip_overload: bool,
        /// Run only the overload search.
        #[arg(long, conflicts_with = "skip_overload")]
        only_overload: bool,
        /// First rate (checks/s) of the overload search.
        #[arg(long, default_value_t = 250)]
        overload_start: u64,
        /// Most steps of the overload search.
        #[arg(long, default_value_t = 7)]
        overload_steps: usize,
        /// Interval (s) of the overload search's monitors.
        #[arg(long, default_value_t = 10)]
        overload_interval: u64,
        #[command(flatten)]
        common: Common,
    },
    /// History pages of 50 read through the API while the table holds millions of results.
    History {
        /// Results stored before reading.
        #[arg(long, default_value_t = 10_000_000, value_parser = clap::value_parser!(u64).range(1..))]
        rows: u64,
        /// Monitors they belong to (paused, so nothing else writes).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        monitors: u64,
        /// Requests per kind of read.
        #[arg(long, default_value_t = 2000)]
        requests: usize,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 4)]
        clients: usize,
        #[command(flatten)]
        common: Common,
    },
    /// The machine's yardstick: a bare client's GETs per second and CPU per GET against the
    /// target, with a fresh connection each and with keep-alive (no service runs).
    Reference {
        /// Seconds measured per mode.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
        duration: u64,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        clients: u64,
        /// The work besides the GET: none, searching the body, or https with a full TLS
        /// handshake per fresh connection.
        #[arg(long, value_enum, default_value = "plain")]
        check: CheckProfile,
        /// Size of the target's answer body, in bytes (at least 2).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(2..=1_048_576))]
        body_bytes: u64,
        /// Markdown file to write the results into [default: BENCHMARKS.md at the workspace
        /// root].
        #[arg(long)]
        report: Option<PathBuf>,
        /// Write no report file.
        #[arg(long, conflicts_with = "report")]
        no_report: bool,
    },
    /// Every abuse case of the API-edge issue as a phase of its own, against the service with
    /// its address space and open files capped, a background check load and a normal client
    /// polling throughout. Fails when the service died, an attack was not refused or cut in
    /// time, or a check went DOWN.
    Abuse {
        /// The service's address-space limit (`RLIMIT_AS`), in MiB.
        #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(64..=1_048_576))]
        memory_cap_mib: u64,
        /// The service's open-file limit (`RLIMIT_NOFILE`, soft and hard).
        #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(64..=1_048_576))]
        open_files: u64,
        /// Monitors of the background load.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        monitors: u32,
        /// Seconds between checks of each monitor.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
        interval: u64,
        /// Seconds per phase (phases that hold connections last the service's timeout and 2 s
        /// more).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
        phase_seconds: u64,
        /// Shorter: 2 s phases, and the service's header-read and connection_init timeouts
        /// set to 3 s (unless `--service-env` sets them) so the holding phases end sooner.
        #[arg(long)]
        quick: bool,
        /// Run only these phases (comma-separated names, as in the table).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
    /// How fast a confirmed DOWN reaches a webhook, and the CPU per check with notification
    /// rules on (`--channels 0`: without).
    Notify {
        #[arg(long, value_enum, default_value = "sqlite")]
        backend: Backend,
        #[arg(long, default_value_t = 10_000)]
        monitors: usize,
        /// Seconds between checks of each monitor.
        #[arg(long, default_value_t = 10)]
        interval: u64,
        /// Webhook channels (each monitor notifies one); 0: no rules.
        #[arg(long, default_value_t = 20)]
        channels: usize,
        /// Seconds of the steady phase.
        #[arg(long, default_value_t = 20)]
        duration: u64,
        /// Monitors made to go DOWN after it.
        #[arg(long, default_value_t = 100)]
        downs: usize,
        /// Milliseconds between two of them.
        #[arg(long, default_value_t = 500)]
        down_every_ms: u64,
        /// Monitor-creating requests at once.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// The service binary [default: release/monitor-manager in the target directory].
        #[arg(long)]
        binary: Option<PathBuf>,
        #[arg(
            long,
            env = "BENCH_POSTGRES_URL",
            default_value = "postgres://postgres@127.0.0.1:5432/postgres"
        )]
        postgres_url: String,
    },
    /// The target server (started by the bench itself).
    #[command(hide = true)]
    Target {
        #[arg(long, default_value_t = 0)]
        port: u16,
        #[arg(long)]
        keep_alive: bool,
        #[arg(long)]
        tls_ca: Option<PathBuf>,
        #[arg(long, default_value_t = 2)]
        body_bytes: usize,
        #[arg(long, default_value_t = 0)]
        tcp_ports: usize,
        #[arg(long)]
        dns: bool,
    },
}

/// The load of one scenario.
#[derive(Debug, Args)]
struct Load {
    /// Monitors to create.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    monitors: u32,
    /// Seconds between checks of each monitor.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    interval: u64,
    /// Seconds measured (after a warm-up of max(interval, 2) s).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    duration: u64,
    /// Scenario name (the BENCHMARKS.md section); default from the load.
    #[arg(long)]
    name: Option<String>,
    /// Create the monitors active at full speed instead of activating them paced over one
    /// interval (their slots then bunch up).
    #[arg(long)]
    burst: bool,
    /// Run the scenario this many times (each on a fresh service and database) and report the
    /// run with the median CPU per check, with every run's figure beside it.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    repeat: u32,
}

/// Options every scenario takes.
#[derive(Debug, Args)]
struct Common {
    /// Database of the service.
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: Backend,
    /// GraphQL subscribers to every check result.
    #[arg(long)]
    subscribers: Option<usize>,
    /// Each subscriber watches one monitor's results (`checkResults(monitorId:)`, spread over
    /// the monitors), as dashboards do, instead of every check.
    #[arg(long)]
    subscribe_each: bool,
    /// Let the target keep connections open (default: `Connection: close`).
    #[arg(long)]
    keep_alive: bool,
    /// What each check does: a plain GET, a GET with a body assertion, or https.
    #[arg(long, value_enum, default_value = "plain")]
    check: CheckProfile,
    /// Size of the target's answer body, in bytes (at least 2).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(2..=1_048_576))]
    body_bytes: u64,
    /// Monitor-creating requests at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// CHECK_CONCURRENCY of the service (default: the service's own).
    #[arg(long)]
    check_concurrency: Option<u32>,
    /// Read clients during the window.
    #[arg(long, default_value_t = 8)]
    read_clients: usize,
    /// Read requests per second, all clients together (0: no reads).
    #[arg(long, default_value_t = 40.0, value_parser = parse_rate)]
    read_rate: f64,
    /// Extra environment for the service, KEY=VALUE (repeatable).
    #[arg(long, value_parser = parse_env)]
    service_env: Vec<(String, String)>,
    /// Distributed mode: run the service as one API process, one lease scheduler and this
    /// many worker processes over RabbitMQ (0: one process with every role).
    #[arg(long, default_value_t = 0)]
    distributed_workers: usize,
    /// RabbitMQ for distributed mode, on 127.0.0.1.
    #[arg(
        long,
        env = "BENCH_RABBITMQ_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    rabbitmq_url: String,
    /// The service binary [default: release/monitor-manager in the target directory, built
    /// when missing].
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Admin URL of the PostgreSQL server on 127.0.0.1.
    #[arg(
        long,
        env = "BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres_url: String,
    /// Markdown file to write the results into [default: BENCHMARKS.md at the workspace
    /// root; `quick` writes none unless given].
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write no report file.
    #[arg(long, conflicts_with = "report")]
    no_report: bool,
}

fn parse_rate(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(rate) if rate == 0.0 || (0.01..=100_000.0).contains(&rate) => Ok(rate),
        _ => Err(format!(
            "expected requests per second: 0 (no reads) or 0.01 to 100000, got `{raw}`"
        )),
    }
}

fn parse_env(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got `{raw}`"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Target {
        port,
        keep_alive,
        tls_ca,
        body_bytes,
        tcp_ports,
        dns,
    } = cli.command
    {
        let options = target::Options {
            keep_alive,
            tls_ca,
            body_bytes,
            tcp_ports,
            dns,
        };
        return exit(target::main(port, options));
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => return exit(Err(err.into())),
    };
    exit(runtime.block_on(async {
        // Dropping the command's future on a signal kills every process it started.
        tokio::select! {
            result = command(cli.command) => result,
            _ = interrupted() => bail!("interrupted; stopped the processes the bench started"),
        }
    }))
}

fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn interrupted() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(term) => { term.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

async fn command(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run { load, common } => {
            let env = env(&common).await?;
            let mut s = template(&common, 2);
            s.monitors = load.monitors as usize;
            s.interval = load.interval;
            s.duration = load.duration;
            s.burst = load.burst;
            s.name = load.name.unwrap_or_else(|| {
                let mut name = scenario::default_name(&s);
                if let Some(d) = &s.distributed {
                    name.push_str(&format!(", distributed ({} workers)", d.workers));
                }
                name
            });
            let report = report_path(&common, true);
            let info = RunInfo::now(describe(&env));
            suite::run_repeated(&s, &env, report.as_deref(), &info, load.repeat as usize).await?;
            Ok(())
        }
        Command::Quick { common } => {
            let env = env(&common).await?;
            let mut s = template(&common, 2);
            s.monitors = 50;
            s.interval = 1;
            s.duration = 3;
            s.name = format!("quick ({})", s.backend.name());
            let report = report_path(&common, false);
            let info = RunInfo::now(describe(&env));
            let results = suite::run_one(&s, &env, report.as_deref(), &info).await?;
            suite::check_quick(&results)?;
            eprintln!("bench: quick benchmark passed");
            Ok(())
        }
        Command::History {
            rows,
            monitors,
            requests,
            clients,
            common,
        } => {
            let env = env(&common).await?;
            let h = history::History {
                backend: common.backend,
                rows,
                monitors: monitors as usize,
                requests: requests.max(1),
                clients: clients.max(1),
            };
            let name = format!(
                "{}, history pages with {rows} stored results",
                h.backend.name()
            );
            let info = RunInfo::now(describe(&env));
            let rows = history::run(&h, &env).await?;
            if let Some(path) = report_path(&common, true) {
                let section = info.section(&name, &report::table(&rows));
                report::write_section(&path, &name, &section)?;
                eprintln!("bench: wrote {}", path.display());
            }
            Ok(())
        }
        Command::Suite {
            duration,
            backends,
            skip_overload,
            only_overload,
            overload_start,
            overload_steps,
            overload_interval,
            common,
        } => {
            let env = env(&common).await?;
            let mut template = template(&common, 2);
            template.duration = duration;
            let options = suite::SuiteOptions {
                backends,
                template,
                scenarios: !only_overload,
                overload: !skip_overload,
                overload_start,
                overload_steps,
                overload_interval,
            };
            let report = report_path(&common, true);
            let info = RunInfo::now(describe(&env));
            suite::suite(&options, &env, report.as_deref(), &info).await
        }
        Command::Notify {
            backend,
            monitors,
            interval,
            channels,
            duration,
            downs,
            down_every_ms,
            concurrency,
            binary,
            postgres_url,
        } => {
            let binary = binary.unwrap_or_else(procs::default_binary);
            let n = notify::Notify {
                backend,
                monitors,
                interval,
                channels,
                duration,
                downs,
                down_every: Duration::from_millis(down_every_ms),
                concurrency,
            };
            notify::run(&n, &binary, &postgres_url).await
        }
        Command::Reference {
            duration,
            clients,
            check,
            body_bytes,
            report,
            no_report,
        } => {
            let info = RunInfo::now(format!(
                "{} (not run: this section measures the machine)",
                procs::workspace_version()
            ));
            let work = reference::Work {
                check,
                body_bytes: body_bytes as usize,
            };
            let rows =
                reference::run(Duration::from_secs(duration), clients as usize, work).await?;
            let table = report::table(&rows);
            let mut name = format!("reference: a bare client on this machine{}", check.label());
            if body_bytes > 2 {
                name.push_str(&format!(", {body_bytes} B bodies"));
            }
            let name = name.as_str();
            println!("\n### {name}\n\n{table}");
            let path = match (no_report, report) {
                (true, _) => None,
                (false, Some(path)) => Some(path),
                (false, None) => Some(procs::workspace_root().join("BENCHMARKS.md")),
            };
            if let Some(path) = path {
                report::write_section(&path, name, &info.section(name, &table))?;
                eprintln!("bench: wrote section `{name}` of {}", path.display());
            }
            Ok(())
        }
        Command::Abuse {
            memory_cap_mib,
            open_files,
            monitors,
            interval,
            phase_seconds,
            quick,
            only,
            common,
        } => {
            let env = env(&common).await?;
            let mut service_env = common.service_env.clone();
            // The service keeps one open file per check in flight out of its connection
            // limit: under 1,024 files its default 1,000 would leave 16 connections.
            let checks = common.check_concurrency.unwrap_or(ABUSE_CHECK_CONCURRENCY);
            service_env.push(("CHECK_CONCURRENCY".to_owned(), checks.to_string()));
            if quick {
                for key in ["HEADER_READ_TIMEOUT_SECONDS", "WS_INIT_TIMEOUT_SECONDS"] {
                    if !service_env.iter().any(|(k, _)| k == key) {
                        service_env.push((key.to_owned(), "3".to_owned()));
                    }
                }
            }
            let a = abuse::Abuse {
                backend: common.backend,
                memory_cap_mib,
                open_files,
                monitors: monitors as usize,
                interval,
                phase_seconds: if quick { 2 } else { phase_seconds },
                only,
                service_env,
            };
            let name = format!(
                "abuse ({}, {memory_cap_mib} MiB address space, {open_files} open files{})",
                a.backend.name(),
                if quick { ", quick" } else { "" }
            );
            let info = RunInfo::now(describe(&env));
            let (reports, setup) = abuse::run(&a, &env).await?;
            let body = format!("{setup}.\n\n{}", abuse::table(&reports));
            println!("\n### {name}\n\n{body}");
            if let Some(path) = report_path(&common, true) {
                report::write_section(&path, &name, &info.section(&name, &body))?;
                eprintln!("bench: wrote section `{name}` of {}", path.display());
            }
            let failed: Vec<String> = reports
                .iter()
                .filter(|r| !r.failures().is_empty())
                .map(|r| format!("{} ({})", r.attack.name(), r.failures().join("; ")))
                .collect();
            if !failed.is_empty() {
                bail!("abuse phases failed: {}", failed.join(", "));
            }
            eprintln!("bench: every abuse phase passed");
            Ok(())
        }
        Command::Target { .. } => unreachable!("handled in main"),
    }
}

/// CHECK_CONCURRENCY of the abuse scenario unless given: far more than its load has in flight
/// (100 checks/s of a few ms each), and it leaves the service 680 of its 1,024 open files for
/// connections (1,024 - 200 checks - 16 database connections - 128 reserved).
const ABUSE_CHECK_CONCURRENCY: u32 = 200;

fn template(common: &Common, default_subscribers: usize) -> Scenario {
    Scenario {
        name: String::new(),
        monitors: 0,
        interval: 1,
        duration: 1,
        backend: common.backend,
        subscribers: common.subscribers.unwrap_or(default_subscribers),
        subscribe_each: common.subscribe_each,
        keep_alive: common.keep_alive,
        check: common.check,
        body_bytes: common.body_bytes as usize,
        concurrency: common.concurrency.max(1),
        check_concurrency: common.check_concurrency,
        read_clients: common.read_clients.max(1),
        read_rate: common.read_rate,
        burst: false,
        service_env: common.service_env.clone(),
        distributed: (common.distributed_workers > 0).then(|| Distributed {
            workers: common.distributed_workers,
            schedulers: 1,
            amqp_url: common.rabbitmq_url.clone(),
        }),
    }
}

fn report_path(common: &Common, by_default: bool) -> Option<PathBuf> {
    if common.no_report {
        return None;
    }
    match &common.report {
        Some(path) => Some(path.clone()),
        None if by_default => Some(procs::workspace_root().join("BENCHMARKS.md")),
        None => None,
    }
}

/// The workspace commit and the binary measured, for the report.
fn describe(env: &scenario::Env) -> String {
    let built = std::fs::metadata(&env.binary)
        .and_then(|m| m.modified())
        .map(|t| {
            chrono::DateTime::<chrono::Utc>::from(t)
                .format("%Y-%m-%d %H:%M UTC")
                .to_string()
        })
        .unwrap_or_else(|_| "unknown time".to_owned());
    format!(
        "{} (binary {}, built {built})",
        procs::workspace_version(),
        report::without_directories(&env.binary.to_string_lossy())
    )
}

async fn env(common: &Common) -> anyhow::Result<scenario::Env> {
    let binary = match &common.binary {
        Some(path) => {
            if !path.is_file() {
                bail!("--binary {} does not exist", path.display());
            }
            path.clone()
        }
        None => {
            let path = procs::default_binary();
            if !path.is_file() {
                procs::build_service().await?;
            }
            path
        }
    };
    let binary = binary
        .canonicalize()
        .with_context(|| format!("cannot find {}", binary.display()))?;
    Ok(scenario::Env {
        binary,
        postgres_url: common.postgres_url.clone(),
    })
}
