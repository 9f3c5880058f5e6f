//! The processes the bench starts (the target and the service), what `/proc` tells about them
//! and about the machine.
//!
//! Every child is killed when its handle is dropped (`kill_on_drop`), so an error, a panic or
//! Ctrl-C in the bench takes them down too; on Linux they also get SIGKILL if the bench dies
//! (`PR_SET_PDEATHSIG`), and the target exits when its stdin closes.

#![allow(unsafe_code)] // libc calls, each with its SAFETY comment.

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{bail, Context as _};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use testkit::process::listening_port;
pub use testkit::Role;

use crate::target;

/// How long a child may take to say it listens.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Service log lines kept for error messages.
const LOG_TAIL: usize = 40;
/// Warning and error lines kept for the report.
const NOTABLE_LINES: usize = 5;

fn guarded(command: &mut Command) {
    capped(command, Caps::default());
}

/// Resource limits set on a child before it runs (soft and hard alike); `None` inherits.
#[derive(Debug, Clone, Copy, Default)]
pub struct Caps {
    /// `RLIMIT_AS`: the most address space the process may map, in bytes.
    pub address_space: Option<u64>,
    /// `RLIMIT_NOFILE`: the most file descriptors it may hold open.
    pub open_files: Option<u64>,
}

/// [`guarded`], with `caps` applied in the child between fork and exec.
fn capped(command: &mut Command, caps: Caps) {
    command.kill_on_drop(true).stdin(Stdio::piped());
    #[cfg(target_os = "linux")]
    // SAFETY: prctl and setrlimit are async-signal-safe and touch only the child's own state.
    unsafe {
        command.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            let limits = [
                (libc::RLIMIT_AS, caps.address_space),
                (libc::RLIMIT_NOFILE, caps.open_files),
            ];
            for (resource, value) in limits {
                if let Some(value) = value {
                    let limit = libc::rlimit {
                        rlim_cur: value,
                        rlim_max: value,
                    };
                    if libc::setrlimit(resource, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
            }
            Ok(())
        });
    }
}

/// Raises this process's open-file soft limit to its hard limit (the abuse scenario holds
/// thousands of sockets) and returns the limit now in force.
pub fn raise_own_open_files() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            return raised.rlim_cur;
        }
    }
    limit.rlim_cur
}

/// The target server, in its own process.
pub struct TargetProcess {
    child: Child,
    pub port: u16,
}

impl TargetProcess {
    /// Re-executes this binary as `bench target` and waits for its port.
    pub async fn start(options: &target::Options) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find the bench binary")?;
        let mut command = Command::new(exe);
        command.arg("target").arg("--port").arg("0");
        if options.keep_alive {
            command.arg("--keep-alive");
        }
        if let Some(path) = &options.tls_ca {
            command.arg("--tls-ca").arg(path);
        }
        command
            .arg("--body-bytes")
            .arg(options.body_bytes.to_string())
            .arg("--tcp-ports")
            .arg(options.tcp_ports.to_string());
        if options.dns {
            command.arg("--dns");
        }
        guarded(&mut command);
        command.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = command.spawn().context("cannot start the target")?;
        let stdout = child.stdout.take().context("target has no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(START_TIMEOUT, lines.next_line())
            .await
            .context("the target did not start in time")??
            .context("the target exited before listening")?;
        let port = line
            .strip_prefix(target::READY_PREFIX)
            .and_then(|p| p.trim().parse().ok())
            .with_context(|| format!("unexpected target output `{line}`"))?;
        Ok(Self { child, port })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// The service (`monitor-manager`), in its own process.
pub struct ServiceProcess {
    child: Child,
    pub port: u16,
    pub role: Role,
    log: Arc<Mutex<LogTail>>,
}

#[derive(Default)]
struct LogTail {
    lines: VecDeque<String>,
    warnings: u64,
    errors: u64,
    /// The first warning and error lines.
    notable: Vec<String>,
}

impl ServiceProcess {
    /// Starts the binary (every role) on `database_url` with PORT=0 and waits for its
    /// listening line.
    pub async fn start(
        binary: &Path,
        workdir: &Path,
        database_url: &str,
        env: &[(String, String)],
    ) -> anyhow::Result<Self> {
        Self::start_role(binary, workdir, database_url, env, Role::All).await
    }

    /// [`ServiceProcess::start`] with resource limits set on the process.
    pub async fn start_capped(
        binary: &Path,
        workdir: &Path,
        database_url: &str,
        env: &[(String, String)],
        caps: Caps,
    ) -> anyhow::Result<Self> {
        Self::spawn(binary, workdir, database_url, env, Role::All, caps).await
    }

    /// Starts one role of the service and waits until it says it is ready; `port` is the
    /// HTTP port of the roles that serve HTTP, 0 for the others.
    pub async fn start_role(
        binary: &Path,
        workdir: &Path,
        database_url: &str,
        env: &[(String, String)],
        role: Role,
    ) -> anyhow::Result<Self> {
        Self::spawn(binary, workdir, database_url, env, role, Caps::default()).await
    }

    async fn spawn(
        binary: &Path,
        workdir: &Path,
        database_url: &str,
        env: &[(String, String)],
        role: Role,
        caps: Caps,
    ) -> anyhow::Result<Self> {
        let mut command = Command::new(binary);
        command.args(role.args());
        command
            .current_dir(workdir)
            .env("DATABASE_URL", database_url)
            .env("PORT", "0")
            .env("HOST", "127.0.0.1")
            .env("NO_COLOR", "1");
        for var in ["RABBITMQ_URL", "DB_HOST", "RUST_LOG"] {
            command.env_remove(var);
        }
        for (key, value) in env {
            command.env(key, value);
        }
        capped(&mut command, caps);
        command.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let stderr = child.stderr.take().context("service has no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let log = Arc::new(Mutex::new(LogTail::default()));
        let port = tokio::time::timeout(START_TIMEOUT, async {
            let (mut port, mut ready) = (0, false);
            while let Some(line) = lines.next_line().await? {
                log.lock().unwrap_or_else(|e| e.into_inner()).push(&line);
                port = listening_port(&line).unwrap_or(port);
                ready |= line.contains(role.ready_line());
                let serves_http = matches!(role, Role::All | Role::Api);
                if ready && (port != 0 || !serves_http) {
                    return Ok(port);
                }
            }
            bail!("the service ({role:?}) exited before it was ready")
        })
        .await
        .with_context(|| format!("the service ({role:?}) was not ready within a minute"))?
        .map_err(|err| {
            let tail = log.lock().unwrap_or_else(|e| e.into_inner()).tail();
            err.context(format!("service output:\n{tail}"))
        })?;
        // Keep draining stderr, or the service would block on a full pipe.
        let drain = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                drain.lock().unwrap_or_else(|e| e.into_inner()).push(&line);
            }
        });
        Ok(Self {
            child,
            port,
            role,
            log,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Fails when the service has exited, with the end of its log.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "the service exited during the run ({status}); its last output:\n{}",
                self.log_tail()
            );
        }
        Ok(())
    }

    /// Warning and error lines logged so far, and the first few of them.
    pub fn warnings_and_errors(&self) -> (u64, u64, Vec<String>) {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        (log.warnings, log.errors, log.notable.clone())
    }

    pub fn log_tail(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).tail()
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub async fn stop(mut self, grace: Duration) {
        if let Some(pid) = self.child.id() {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
            if tokio::time::timeout(grace, self.child.wait()).await.is_ok() {
                return;
            }
        }
        let _ = self.child.kill().await;
    }
}

/// Distributed mode: how many processes of each role, and the broker.
#[derive(Debug, Clone)]
pub struct Distributed {
    /// Worker processes (`monitor-manager worker`).
    pub workers: usize,
    /// Lease schedulers (`monitor-manager scheduler`).
    pub schedulers: usize,
    /// RabbitMQ, on 127.0.0.1.
    pub amqp_url: String,
}

/// The service under test: one process with every role, or (distributed) an API process,
/// lease schedulers and workers sharing the database and RabbitMQ (queues of their own for
/// this run).
pub struct Service {
    /// The process that serves HTTP.
    api: ServiceProcess,
    others: Vec<ServiceProcess>,
}

impl Service {
    pub async fn start(
        binary: &Path,
        workdir: &Path,
        database_url: &str,
        env: &[(String, String)],
        distributed: Option<&Distributed>,
    ) -> anyhow::Result<Self> {
        let Some(d) = distributed else {
            let api = ServiceProcess::start(binary, workdir, database_url, env).await?;
            return Ok(Self {
                api,
                others: Vec::new(),
            });
        };
        let mut env = env.to_vec();
        env.push(("RABBITMQ_URL".to_owned(), d.amqp_url.clone()));
        let prefix = format!(
            "bench-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis()
        );
        env.push(("RABBITMQ_PREFIX".to_owned(), prefix));
        // The API process migrates the database; the others start on the schema it made.
        let api =
            ServiceProcess::start_role(binary, workdir, database_url, &env, Role::Api).await?;
        let mut others = Vec::new();
        for _ in 0..d.schedulers {
            others.push(
                ServiceProcess::start_role(binary, workdir, database_url, &env, Role::Scheduler)
                    .await?,
            );
        }
        for _ in 0..d.workers {
            others.push(
                ServiceProcess::start_role(binary, workdir, database_url, &env, Role::Worker)
                    .await?,
            );
        }
        Ok(Self { api, others })
    }

    /// The HTTP port of the API.
    pub fn port(&self) -> u16 {
        self.api.port
    }

    /// Every process of the service with its role.
    pub fn roles(&self) -> Vec<(Role, u32)> {
        std::iter::once(&self.api)
            .chain(&self.others)
            .filter_map(|p| Some((p.role, p.pid()?)))
            .collect()
    }

    /// Fails when any process of the service has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.api.ensure_running()?;
        for other in &mut self.others {
            other.ensure_running()?;
        }
        Ok(())
    }

    /// Warning and error lines of every process, and the first few of them.
    pub fn warnings_and_errors(&self) -> (u64, u64, Vec<String>) {
        let (mut warnings, mut errors, mut lines) = self.api.warnings_and_errors();
        for other in &self.others {
            let (w, e, l) = other.warnings_and_errors();
            warnings += w;
            errors += e;
            lines.extend(l);
        }
        lines.truncate(NOTABLE_LINES);
        (warnings, errors, lines)
    }

    /// Stops the schedulers, then the workers (they finish the checks they hold), then the
    /// API, each gracefully within `grace`.
    pub async fn stop(self, grace: Duration) {
        for other in self.others {
            other.stop(grace).await;
        }
        self.api.stop(grace).await;
    }
}

impl LogTail {
    fn push(&mut self, line: &str) {
        let warning = line.contains(" WARN ");
        let error = line.contains(" ERROR ") || line.starts_with("error");
        self.warnings += u64::from(warning);
        self.errors += u64::from(error);
        if (warning || error) && self.notable.len() < NOTABLE_LINES {
            self.notable.push(line.to_owned());
        }
        if self.lines.len() == LOG_TAIL {
            self.lines.pop_front();
        }
        self.lines.push_back(line.to_owned());
    }

    fn tail(&self) -> String {
        self.lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// CPU time (user + system) of a process, from `/proc/PID/stat`.
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = &stat[stat.rfind(')').context("bad /proc stat")? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `after` starts at field 3.
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks()))
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// Peak resident set (VmHWM) of a process, in bytes.
pub fn peak_rss(pid: u32) -> anyhow::Result<u64> {
    status_bytes(pid, "VmHWM:")
}

/// Resident set (VmRSS) of a process now, in bytes.
pub fn rss(pid: u32) -> anyhow::Result<u64> {
    status_bytes(pid, "VmRSS:")
}

/// Mapped address space (VmSize) of a process now, in bytes.
pub fn address_space(pid: u32) -> anyhow::Result<u64> {
    status_bytes(pid, "VmSize:")
}

/// Resets a process's VmHWM to its current RSS (`/proc/PID/clear_refs`), so the next
/// [`peak_rss`] is the peak since now; false when the kernel refused.
pub fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// A `kB` field of `/proc/PID/status`, in bytes.
fn status_bytes(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .with_context(|| format!("bad {field}"))?
        .parse()?;
    Ok(kib * 1024)
}

/// Context switches (voluntary + involuntary) of all live threads of a process.
pub fn context_switches(pid: u32) -> anyhow::Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let Ok(status) = std::fs::read_to_string(task?.path().join("status")) else {
            continue; // the thread just ended
        };
        for line in status.lines() {
            if line.starts_with("voluntary_ctxt_switches:")
                || line.starts_with("nonvoluntary_ctxt_switches:")
            {
                total += line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    Ok(total)
}

/// CPU time of every process on the machine, by pid: (command name, user + system ms).
pub fn all_processes_cpu() -> std::collections::HashMap<u32, (String, f64)> {
    let mut all = std::collections::HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return all;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_owned();
        if let Ok(time) = cpu_time(pid) {
            all.insert(pid, (name, time.as_secs_f64() * 1000.0));
        }
    }
    all
}

/// Busy and total CPU time of the whole machine, from `/proc/stat`, in ticks.
pub fn machine_cpu() -> anyhow::Result<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = values.iter().take(8).sum();
    // idle + iowait are not busy.
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    Ok((total - idle, total))
}

/// One line describing the machine: cores, CPU model, memory.
pub fn machine_description() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map_or_else(
            || "unknown memory".to_owned(),
            |kib| format!("{:.1} GiB RAM", kib / 1024.0 / 1024.0),
        );
    format!("{cores} CPU ({model}), {memory}")
}

/// The workspace root (where the root Cargo.toml is).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The default service binary: `$CARGO_TARGET_DIR/release/monitor-manager`, else
/// `target/release/monitor-manager` under the workspace root.
pub fn default_binary() -> PathBuf {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target_dir.join("release").join("monitor-manager")
}

/// Builds the release service binary with cargo (when the default binary is missing).
pub async fn build_service() -> anyhow::Result<()> {
    eprintln!("bench: building the service: cargo build --release -p monitor-manager");
    let status = tokio::time::timeout(
        Duration::from_secs(1800),
        Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args(["build", "--release", "-p", "monitor-manager"])
            .current_dir(workspace_root())
            .kill_on_drop(true)
            .status(),
    )
    .await
    .context("building the service took more than 30 minutes")??;
    if !status.success() {
        bail!("cargo build --release -p monitor-manager failed ({status})");
    }
    Ok(())
}

/// The workspace's commit, for the report: short hash, with `+uncommitted changes` when
/// files outside bench/ and BENCHMARKS.md differ from it.
pub fn workspace_version() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(workspace_root())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(commit) => {
            // The bench itself and its report do not change the service.
            let dirty = git(&[
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                ":!bench",
                ":!BENCHMARKS.md",
            ])
            .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{commit}+uncommitted changes")
            } else {
                commit
            }
        }
        None => "unknown commit".to_owned(),
    }
}
