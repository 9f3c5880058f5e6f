//! Running scenarios and reporting them: one (`run`, `quick`), or the set in sequence
//! with an overload search per backend (`suite`).

use std::{fmt::Write as _, path::Path};

use anyhow::{bail, Context as _};

use crate::{
    database::Backend,
    report::{self, Results, RunInfo},
    scenario::{self, Env, Scenario, Step},
};

/// Runs one scenario, prints its table and, given a report path, writes its section.
pub async fn run_one(
    scenario: &Scenario,
    env: &Env,
    report_path: Option<&Path>,
    info: &RunInfo,
) -> anyhow::Result<Results> {
    run_repeated(scenario, env, report_path, info, 1).await
}

/// Runs one scenario `repeat` times (each on a fresh service and database) and reports the run
/// with the median CPU per check (the upper of the two middle ones for an even count), with
/// every run's figure in one more row. On a shared virtual machine the CPU a check costs moves
/// by a quarter from one run to the next, so one run says little on its own.
pub async fn run_repeated(
    scenario: &Scenario,
    env: &Env,
    report_path: Option<&Path>,
    info: &RunInfo,
    repeat: usize,
) -> anyhow::Result<Results> {
    let outcome = async {
        let mut runs = Vec::new();
        for n in 1..=repeat.max(1) {
            if repeat > 1 {
                eprintln!("bench: run {n} of {repeat}");
            }
            let results = scenario::run(scenario, env).await;
            runs.push(if repeat > 1 {
                results.with_context(|| format!("run {n} of {repeat}"))?
            } else {
                results?
            });
        }
        anyhow::Ok(runs)
    }
    .await
    .map(median_run);
    let body = match &outcome {
        Ok((results, per_run)) => {
            let mut rows = results.rows();
            if per_run.len() > 1 {
                let at = rows
                    .iter()
                    .position(|(metric, _)| metric == "service CPU per stored check")
                    .map_or(rows.len(), |i| i + 1);
                rows.insert(at, per_run_row(per_run));
            }
            report::table(&rows)
        }
        Err(err) => format!("The run failed: {err:#}\n"),
    };
    let outcome = outcome.map(|(results, _)| results);
    println!("\n### {}\n\n{body}", scenario.name);
    if let Some(path) = report_path {
        report::write_section(path, &scenario.name, &info.section(&scenario.name, &body))?;
        eprintln!(
            "bench: wrote section `{}` of {}",
            scenario.name,
            path.display()
        );
    }
    outcome
}

/// The run with the median CPU per check, and every run's CPU per check in run order.
fn median_run(mut runs: Vec<Results>) -> (Results, Vec<f64>) {
    let per_run: Vec<f64> = runs.iter().map(Results::cpu_per_check).collect();
    let mut order: Vec<usize> = (0..runs.len()).collect();
    order.sort_by(|&a, &b| per_run[a].total_cmp(&per_run[b]));
    let median = order[order.len() / 2];
    (runs.swap_remove(median), per_run)
}

fn per_run_row(per_run: &[f64]) -> (String, String) {
    let mut sorted = per_run.to_vec();
    sorted.sort_by(f64::total_cmp);
    let each: Vec<String> = per_run.iter().map(|ms| format!("{ms:.3}")).collect();
    (
        format!("service CPU per stored check, {} runs", per_run.len()),
        format!(
            "min {:.3} / median {:.3} / max {:.3} ms; in run order {} ms (this table is the median run)",
            sorted[0],
            sorted[sorted.len() / 2],
            sorted[sorted.len() - 1],
            each.join(", ")
        ),
    )
}

/// The CI scenario's checks: the machinery worked, whatever the speed.
pub fn check_quick(results: &Results) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    if results.stored <= 0 {
        problems.push("no check results were stored in the window".to_owned());
    }
    if results.jitter.arrivals == 0 {
        problems.push("no check reached the target in the window".to_owned());
    }
    if results.not_up > 0 {
        problems.push(format!(
            "{} stored results were not UP against a healthy target",
            results.not_up
        ));
    }
    if results.reads.errors > 0 {
        problems.push(format!("{} read requests failed", results.reads.errors));
    }
    if results.read_rate > 0.0 && results.reads.latency_ms.iter().any(|s| s.count == 0) {
        problems.push("a kind of read request never succeeded".to_owned());
    }
    if results.subscribers > 0 && results.sub_received_min == 0 {
        problems.push("a subscriber received no event".to_owned());
    }
    if !problems.is_empty() {
        bail!("quick benchmark failed: {}", problems.join("; "));
    }
    Ok(())
}

/// Options of `bench suite`.
pub struct SuiteOptions {
    pub backends: Vec<Backend>,
    pub template: Scenario,
    pub scenarios: bool,
    pub overload: bool,
    pub overload_start: u64,
    pub overload_steps: usize,
    pub overload_interval: u64,
}

/// The scenarios on each backend, then the overload search on each.
pub async fn suite(
    options: &SuiteOptions,
    env: &Env,
    report_path: Option<&Path>,
    info: &RunInfo,
) -> anyhow::Result<()> {
    let mut failures = 0;
    let scenarios: &[(usize, u64)] = if options.scenarios {
        &[(1_000, 10), (10_000, 10), (100_000, 50)]
    } else {
        &[]
    };
    for &backend in &options.backends {
        for &(monitors, interval) in scenarios {
            let mut s = options.template.clone();
            s.backend = backend;
            s.monitors = monitors;
            s.interval = interval;
            s.name = scenario::default_name(&s);
            if run_one(&s, env, report_path, info).await.is_err() {
                failures += 1;
            }
        }
    }
    if options.overload {
        for &backend in &options.backends {
            let mut template = options.template.clone();
            template.backend = backend;
            template.interval = options.overload_interval;
            template.name = format!("overload search, {}", backend.name());
            let steps = scenario::overload(
                &template,
                env,
                options.overload_start,
                options.overload_steps,
                |step| eprintln!("bench: overload step {}/s held: {}", step.rate, step.held()),
            )
            .await;
            let body = overload_table(&template, &steps);
            println!("\n### {}\n\n{body}", template.name);
            if let Some(path) = report_path {
                report::write_section(path, &template.name, &info.section(&template.name, &body))?;
            }
        }
    }
    if failures > 0 {
        bail!("{failures} scenario(s) failed; see above");
    }
    Ok(())
}

fn overload_table(template: &Scenario, steps: &[Step]) -> String {
    let mut out = format!(
        "Monitors every {} s; the rate doubles until the p99 start lag exceeds 1 s or more than \
         0.1% of slots are missed. {} s measured per step.\n\n\
         | checks/s asked | monitors | stored/s | missed slots | lag p50 / p99 (own grid) | service CPU/check | held |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
        template.interval, template.duration
    );
    let mut best = None;
    for step in steps {
        match &step.outcome {
            Ok(r) => {
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.0} | {:.3}% | {:.0} ms / {:.0} ms | {:.3} ms | {} |",
                    step.rate,
                    r.monitors,
                    r.stored_rate(),
                    100.0 * r.missed_fraction(),
                    r.jitter.lag_ms.p50,
                    r.jitter.lag_ms.p99,
                    r.service_cpu_ms / r.stored.max(1) as f64,
                    if step.held() { "yes" } else { "no" }
                );
            }
            Err(err) => {
                let _ = writeln!(
                    out,
                    "| {} | {} | failed: {} | | | | no |",
                    step.rate,
                    step.rate * template.interval,
                    format!("{err:#}").replace(['\n', '|'], " ")
                );
            }
        }
        if step.held() {
            best = Some(step.rate);
        }
    }
    let all_held = steps.last().is_some_and(Step::held);
    match best {
        Some(rate) if all_held => {
            let _ = write!(
                out,
                "\nHighest rate held: **{rate} checks/s**, the last step tried (the limit is higher).\n"
            );
        }
        Some(rate) => {
            let _ = write!(out, "\nHighest rate held: **{rate} checks/s**.\n");
        }
        None => out.push_str("\nNo step held.\n"),
    }
    out
}
