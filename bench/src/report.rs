//! The results of a run, as a Markdown table on stdout and as a section of BENCHMARKS.md
//! (a section is replaced when a scenario of the same name runs again, else appended at the
//! end, which in BENCHMARKS.md is its appendix of raw sections).

use std::{fmt::Write as _, path::Path};

use anyhow::Context as _;

use crate::{
    api::Phase,
    database::Footprint,
    probes::{ReadResults, READ_KINDS},
    stats::{LagReport, Summary},
};

/// Everything one scenario measured.
#[derive(Debug, Default)]
pub struct Results {
    pub monitors: usize,
    pub interval: u64,
    pub duration: f64,
    pub backend: &'static str,
    pub keep_alive: bool,
    pub spread: bool,
    pub create_concurrency: usize,
    pub check_concurrency: Option<u32>,
    pub create: Phase,
    pub activate: Option<Phase>,
    pub stored: i64,
    pub total_rows: i64,
    /// Checks the target served during the whole run minus rows stored once the service
    /// stopped.
    pub lost: i64,
    /// Stored results that are not UP (a healthy target should have none).
    pub not_up: i64,
    /// Against the activation grid.
    pub lag: LagReport,
    /// Against each monitor's own grid (missed slots are counted here).
    pub jitter: LagReport,
    /// First check of each monitor after its activation.
    pub first_check_ms: Summary,
    /// From the end of activation until every monitor had been checked once.
    pub all_checked_after: std::time::Duration,
    /// Longest time without any check arriving at the target, after the first.
    pub longest_pause_ms: f64,
    pub service_cpu_ms: f64,
    /// Context switches of the service's threads in the window.
    pub service_switches: u64,
    pub target_cpu_ms: f64,
    pub bench_cpu_ms: f64,
    pub machine_busy: f64,
    pub peak_rss: u64,
    /// CPU ms of the busiest other processes in the window, by command name.
    pub others: Vec<(String, f64)>,
    pub footprint: Footprint,
    pub reads: ReadResults,
    pub read_clients: usize,
    pub read_rate: f64,
    pub subscribers: usize,
    /// Each subscriber watched one monitor rather than every check.
    pub subscribe_each: bool,
    pub sub_delay_ms: Summary,
    pub sub_received_min: usize,
    pub sub_errors: u64,
    pub warnings: u64,
    pub errors: u64,
    /// The first warning and error lines of the service.
    pub log_lines: Vec<String>,
    /// Separate API, scheduler and worker processes over RabbitMQ (figures of the service
    /// are summed over them).
    pub distributed: Option<crate::procs::Distributed>,
    /// The service's CPU ms in the window by role (one entry, `all`, unless distributed).
    pub cpu_by_role: Vec<(String, f64)>,
}

impl Results {
    pub fn expected_rate(&self) -> f64 {
        self.monitors as f64 / self.interval as f64
    }

    pub fn stored_rate(&self) -> f64 {
        self.stored as f64 / self.duration
    }

    /// Service CPU ms per result stored in the window.
    pub fn cpu_per_check(&self) -> f64 {
        self.service_cpu_ms / self.stored.max(1) as f64
    }

    pub fn missed_fraction(&self) -> f64 {
        self.jitter.missed_slots as f64 / self.jitter.expected_slots.max(1) as f64
    }

    /// Rows of `metric | value`.
    pub fn rows(&self) -> Vec<(String, String)> {
        let mut rows = Vec::new();
        let mut row = |k: &str, v: String| rows.push((k.to_owned(), v));
        row(
            "load",
            format!(
                "{} monitors every {} s = {:.0} checks/s expected ({}); {}, target {}, CHECK_CONCURRENCY {}",
                self.monitors,
                self.interval,
                self.expected_rate(),
                if self.spread { "slots spread evenly" } else { "burst: slots bunched" },
                self.backend,
                if self.keep_alive { "keep-alive" } else { "Connection: close" },
                self.check_concurrency
                    .map_or_else(|| "default".to_owned(), |c| c.to_string()),
            ),
        );
        if let Some(d) = &self.distributed {
            let per_role: Vec<String> = self
                .cpu_by_role
                .iter()
                .map(|(role, ms)| format!("{role} {:.3} ms", ms / self.stored.max(1) as f64))
                .collect();
            row(
                "processes",
                format!(
                    "distributed over RabbitMQ: 1 API, {} lease scheduler(s), {} worker(s); \
                     service CPU, context switches and RSS below are their sums; CPU per \
                     stored check by role: {}",
                    d.schedulers,
                    d.workers,
                    per_role.join(", ")
                ),
            );
        }
        row(
            "create (POST /monitors)",
            format!(
                "{} in {:.2} s = {:.0} monitors/s ({} at once)",
                self.create.count,
                self.create.elapsed.as_secs_f64(),
                self.create.per_second(),
                self.create_concurrency
            ),
        );
        if let Some(activate) = self.activate {
            row(
                "activate (PUT, paced over one interval)",
                format!(
                    "{} in {:.2} s (pacing alone: {} s)",
                    activate.count,
                    activate.elapsed.as_secs_f64(),
                    self.interval
                ),
            );
        }
        row(
            "checks stored/s",
            format!(
                "{:.1} ({:.1}% of expected; {} rows in {:.1} s)",
                self.stored_rate(),
                100.0 * self.stored_rate() / self.expected_rate(),
                self.stored,
                self.duration
            ),
        );
        row(
            "checks arrived at target/s",
            format!("{:.1}", self.lag.arrivals as f64 / self.duration),
        );
        row(
            "checks lost (whole run)",
            format!(
                "{} (requests the target served minus rows stored after a graceful stop)",
                self.lost
            ),
        );
        row("stored results not UP (whole run)", self.not_up.to_string());
        row(
            "missed slots",
            format!(
                "{} of {} ({:.3}%)",
                self.jitter.missed_slots,
                self.jitter.expected_slots,
                100.0 * self.missed_fraction()
            ),
        );
        let three = |summary: &Summary| {
            format!(
                "{} / {} / {}",
                ms(summary.p50),
                ms(summary.p99),
                ms(summary.max)
            )
        };
        row(
            "first check after activation p50 / p99 / max",
            three(&self.first_check_ms),
        );
        row(
            "every monitor checked once",
            format!(
                "{:.1} s after activation ended (the warm-up starts then)",
                self.all_checked_after.as_secs_f64()
            ),
        );
        row(
            "longest pause in checks (whole run)",
            format!(
                "{} (no request reached the target; the mean gap is {})",
                ms(self.longest_pause_ms),
                ms(1000.0 / self.expected_rate())
            ),
        );
        row(
            "start lag p50 / p99 / max (activation grid)",
            three(&self.lag.lag_ms),
        );
        row(
            "start lag p50 / p99 / max (own grid)",
            three(&self.jitter.lag_ms),
        );
        row(
            "service CPU per stored check",
            format!(
                "{:.3} ms (service used {:.0}% of one core; {:.1} context switches per check)",
                self.cpu_per_check(),
                100.0 * self.service_cpu_ms / (self.duration * 1000.0),
                self.service_switches as f64 / self.stored.max(1) as f64
            ),
        );
        row(
            "machine CPU busy (all processes)",
            format!(
                "{:.0}% of {} cores; target {:.0}%, bench {:.0}% of one core",
                self.machine_busy * 100.0,
                std::thread::available_parallelism().map_or(0, |n| n.get()),
                100.0 * self.target_cpu_ms / (self.duration * 1000.0),
                100.0 * self.bench_cpu_ms / (self.duration * 1000.0),
            ),
        );
        let others: Vec<String> = self
            .others
            .iter()
            .map(|(name, cpu)| format!("{name} {:.0}%", 100.0 * cpu / (self.duration * 1000.0)))
            .collect();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let ours = (self.service_cpu_ms + self.target_cpu_ms + self.bench_cpu_ms)
            / (self.duration * 1000.0);
        row(
            "other processes (% of one core)",
            format!(
                "{:.0}% in all; busiest that lived through the window: {}",
                (100.0 * (self.machine_busy * cores - ours)).max(0.0),
                if others.is_empty() {
                    "none".to_owned()
                } else {
                    others.join(", ")
                }
            ),
        );
        row("service peak RSS (VmHWM)", mib(self.peak_rss));
        let per_row = |bytes: u64| bytes as f64 / self.total_rows.max(1) as f64;
        let mut size = format!(
            "{:.0} B (check_results + indexes: {} for {} rows)",
            per_row(self.footprint.relation_bytes),
            mib(self.footprint.relation_bytes),
            self.total_rows
        );
        if let Some(file) = self.footprint.file_bytes {
            let _ = write!(size, "; whole file + WAL {:.0} B/row", per_row(file));
        }
        row("database bytes per stored result", size);
        if self.read_rate > 0.0 {
            for (kind, summary) in READ_KINDS.iter().zip(&self.reads.latency_ms) {
                row(
                    &format!("{kind} p50 / p99"),
                    format!(
                        "{} / {} ({} requests)",
                        ms(summary.p50),
                        ms(summary.p99),
                        summary.count
                    ),
                );
            }
            row(
                "reads",
                format!(
                    "{} clients, {:.0} requests/s in all, {} failed",
                    self.read_clients, self.read_rate, self.reads.errors
                ),
            );
        } else {
            row("reads", "none (`--read-rate 0`)".to_owned());
        }
        if self.subscribers > 0 {
            row(
                "subscription delay p50 / p99 / max",
                format!(
                    "{} / {} / {} ({} subscribers {}, fewest events received {}, {} error items)",
                    ms(self.sub_delay_ms.p50),
                    ms(self.sub_delay_ms.p99),
                    ms(self.sub_delay_ms.max),
                    self.subscribers,
                    if self.subscribe_each {
                        "each to one monitor"
                    } else {
                        "to every check"
                    },
                    self.sub_received_min,
                    self.sub_errors
                ),
            );
        } else {
            row(
                "subscription delay",
                "no subscribers (`--subscribers 0`)".to_owned(),
            );
        }
        let mut log = format!("{} warnings, {} errors", self.warnings, self.errors);
        for line in self.log_lines.iter().take(3) {
            let line: String = line.chars().take(300).collect();
            let _ = write!(log, "<br>`{}`", line.replace(['|', '`'], "'"));
        }
        row("service log (whole run)", log);
        rows
    }
}

fn ms(value: f64) -> String {
    if value >= 1000.0 {
        format!("{:.2} s", value / 1000.0)
    } else if value >= 10.0 {
        format!("{value:.0} ms")
    } else {
        format!("{value:.1} ms")
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1024.0 / 1024.0)
}

/// A Markdown table of rows.
pub fn table(rows: &[(String, String)]) -> String {
    let mut out = String::from("| metric | value |\n| --- | --- |\n");
    for (k, v) in rows {
        let _ = writeln!(out, "| {k} | {v} |");
    }
    out
}

/// Context written at the top of every section.
pub struct RunInfo {
    pub date: String,
    pub command: String,
    pub machine: String,
    pub version: String,
}

impl RunInfo {
    pub fn now(version: String) -> Self {
        Self {
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            command: command_line(),
            machine: crate::procs::machine_description(),
            version,
        }
    }

    pub fn section(&self, name: &str, body: &str) -> String {
        format!(
            "## {name}\n\n- date: {}\n- command: `{}`\n- machine: {}\n- service: monitor-manager at {}\n\n{}\n",
            self.date,
            self.command,
            self.machine,
            self.version,
            body.trim_end()
        )
    }
}

/// This process's command line, each argument quoted when it needs to be and absolute paths
/// shown by their last components, so the report names no directory of the machine.
fn command_line() -> String {
    std::env::args()
        .map(|arg| without_directories(&arg))
        .map(|arg| {
            if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '\'') {
                format!("'{}'", arg.replace('\'', "'\\''"))
            } else {
                arg
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// An absolute path as `target/<profile>/<file>` when it lies in a cargo target directory, else
/// its file name; anything else unchanged.
pub fn without_directories(arg: &str) -> String {
    let path = Path::new(arg);
    if !path.is_absolute() {
        return arg.to_owned();
    }
    let parts: Vec<String> = path
        .components()
        .rev()
        .take(2)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    match parts.as_slice() {
        [file, profile] if profile == "release" || profile == "debug" => {
            format!("target/{profile}/{file}")
        }
        [file, ..] => file.clone(),
        [] => arg.to_owned(),
    }
}

const HEADER: &str = "# Benchmarks\n\n\
Measured with the `bench` crate (`bench/`; its `--help` and `bench/src/main.rs` explain \
every figure). Each section is one scenario; running a scenario of the same name again \
replaces its section.\n";

/// Writes `section` (which starts with `## name`) into the report file, replacing the section
/// of the same name or appending it.
pub fn write_section(path: &Path, name: &str, section: &str) -> anyhow::Result<()> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => HEADER.to_owned(),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    };
    let updated = replace_section(&existing, name, section);
    std::fs::write(path, updated).with_context(|| format!("cannot write {}", path.display()))
}

fn replace_section(existing: &str, name: &str, section: &str) -> String {
    let heading = format!("## {name}");
    let mut out = String::new();
    let mut replaced = false;
    let mut skipping = false;
    for line in existing.lines() {
        if line.starts_with("## ") {
            skipping = line.trim_end() == heading;
            if skipping && !replaced {
                out.push_str(section);
                out.push('\n');
                replaced = true;
            }
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !replaced {
        if !out.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str(section);
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_paths_lose_their_directories() {
        assert_eq!(
            without_directories("/srv/build/release/bench"),
            "target/release/bench"
        );
        assert_eq!(without_directories("/tmp/x/report.md"), "report.md");
        assert_eq!(without_directories("--monitors"), "--monitors");
        assert_eq!(
            without_directories("target/release/bench"),
            "target/release/bench"
        );
    }

    #[test]
    fn sections_are_replaced_by_name_or_appended() {
        let doc = "# B\n\nintro\n\n## a\n\nold a\n\n## b\n\nold b\n";
        let replaced = replace_section(doc, "a", "## a\n\nnew a\n");
        assert_eq!(replaced, "# B\n\nintro\n\n## a\n\nnew a\n\n## b\n\nold b\n");
        let appended = replace_section(doc, "c", "## c\n\nnew c\n");
        assert!(appended.ends_with("## b\n\nold b\n\n## c\n\nnew c\n"));
    }
}
