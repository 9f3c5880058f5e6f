//! `bench history`: how fast a page of one monitor's history comes back when the table holds
//! millions of results.
//!
//! The service starts on a fresh database; the bench creates M paused monitors through the
//! API, then fills `check_results` with R rows straight in the database (one statement per
//! million rows, monitors interleaved as a real schedule writes them, one result in fifty
//! DOWN with an error), and reads pages of 50 through the API from C clients at once: the
//! newest page over GraphQL, a page from the middle of a monitor's history (`after:` a cursor
//! there) over GraphQL, and the newest page over REST. Each request's latency is measured
//! by the client (connection reused, as a dashboard does).

use std::time::Duration;

use anyhow::{bail, Context as _};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::{
    api::{self, Spec},
    database::{Backend, BenchDb},
    procs::ServiceProcess,
    report,
    scenario::Env,
    stats::Summary,
};

/// Rows inserted per statement while filling.
const FILL_CHUNK: u64 = 1_000_000;

/// What to run.
#[derive(Debug, Clone)]
pub struct History {
    pub backend: Backend,
    /// Results stored before reading.
    pub rows: u64,
    /// Monitors they belong to.
    pub monitors: usize,
    /// Requests per read kind.
    pub requests: usize,
    /// Requests in flight at once.
    pub clients: usize,
}

const KINDS: [&str; 3] = [
    "GraphQL checkResults(monitorId, first: 50), newest page",
    "GraphQL checkResults(monitorId, first: 50, after: cursor mid-history)",
    "REST GET /monitors/{id}/check?limit=50",
];

/// Runs it and returns the report's rows.
pub async fn run(h: &History, env: &Env) -> anyhow::Result<Vec<(String, String)>> {
    let dir = tempfile::Builder::new()
        .prefix("monitor-bench-history-")
        .tempdir()
        .context("cannot make a temporary directory")?;
    let db = BenchDb::fresh(h.backend, dir.path(), &env.postgres_url).await?;
    let mut service = ServiceProcess::start(&env.binary, dir.path(), &db.url, &[]).await?;
    let base = format!("http://127.0.0.1:{}", service.port);
    let http = api::client()?;
    let observer = db.writer().await?;

    // Paused monitors (never checked: the port is the discard port, and they stay inactive).
    let spec = Spec {
        interval: 60,
        target_port: 9,
        check: crate::api::CheckProfile::Plain,
        tcp_ports: Vec::new(),
        dns_port: None,
        channel_ids: Vec::new(),
    };
    eprintln!("bench: creating {} paused monitors", h.monitors);
    let (monitors, _) = api::create(&http, &base, &spec, h.monitors, 32, false).await?;
    let first = *monitors.ids.iter().min().context("no monitors")?;
    let last = *monitors.ids.iter().max().context("no monitors")?;
    if last - first + 1 != h.monitors as i64 {
        bail!(
            "monitor ids are not contiguous ({first}..={last} for {})",
            h.monitors
        );
    }

    eprintln!("bench: storing {} results", h.rows);
    let filled = Instant::now();
    let mut done = 0;
    while done < h.rows {
        let end = (done + FILL_CHUNK).min(h.rows);
        observer
            .execute(&fill_sql(
                h.backend,
                done + 1,
                end,
                first,
                h.monitors as u64,
            ))
            .await
            .context("filling check_results")?;
        done = end;
        eprintln!("bench:   {done} rows");
    }
    observer
        .execute(
            "UPDATE monitors SET last_seq = \
             (SELECT coalesce(max(seq), 0) FROM check_results WHERE monitor_id = monitors.id)",
        )
        .await
        .context("numbering the monitors' results")?;
    let fill_time = filled.elapsed();
    // What autovacuum / a routine ANALYZE would have done by the time a table is this big.
    match h.backend {
        Backend::Postgres => observer.execute("VACUUM ANALYZE check_results").await?,
        Backend::Sqlite => observer.execute("ANALYZE").await?,
    }
    let stored = observer.count_results().await?;
    let footprint = observer.footprint().await?;
    service.ensure_running()?;

    // A cursor from the middle of each monitor's history (a cursor is a result's number
    // among its monitor's results).
    let mid_seq = (h.rows / h.monitors.max(1) as u64 / 2).max(1) as i64;
    let mut latencies: Vec<Summary> = Vec::new();
    let mut failures = 0;
    for (kind, name) in KINDS.iter().enumerate() {
        eprintln!("bench: reading: {name}");
        let (values, failed) = read_pages(&http, &base, h, kind, first, mid_seq).await;
        latencies.push(Summary::of(values));
        failures += failed;
    }
    service.ensure_running()?;
    let (warnings, errors, _) = service.warnings_and_errors();
    observer.close().await;
    service.stop(Duration::from_secs(10)).await;

    let ms = |v: f64| format!("{v:.2} ms");
    let mut rows = vec![
        (
            "stored results".to_owned(),
            format!(
                "{stored} rows over {} monitors ({} per monitor), filled in {:.0} s",
                h.monitors,
                h.rows / h.monitors.max(1) as u64,
                fill_time.as_secs_f64()
            ),
        ),
        (
            "check_results + indexes".to_owned(),
            format!(
                "{:.0} MiB ({:.0} B per result)",
                footprint.relation_bytes as f64 / 1048576.0,
                footprint.relation_bytes as f64 / stored.max(1) as f64
            ),
        ),
    ];
    for (kind, summary) in KINDS.iter().zip(&latencies) {
        rows.push((
            format!("{kind} p50 / p99 / max"),
            format!(
                "{} / {} / {} ({} requests)",
                ms(summary.p50),
                ms(summary.p99),
                ms(summary.max),
                summary.count
            ),
        ));
    }
    rows.push((
        "reads".to_owned(),
        format!(
            "{} clients at once, back to back, {failures} failed; no check load",
            h.clients
        ),
    ));
    rows.push((
        "service log".to_owned(),
        format!("{warnings} warnings, {errors} errors"),
    ));
    println!("{}", report::table(&rows));
    Ok(rows)
}

/// Rows `from..=to` of the fill: row x belongs to monitor `first + x % monitors` (as its
/// result number `(x - 1) / monitors + 1`), checked at x seconds after 2026-01-01.
fn fill_sql(backend: Backend, from: u64, to: u64, first: i64, monitors: u64) -> String {
    let values = format!(
        "{first} + (x % {monitors}), (x - 1) / {monitors} + 1, 1767225600000 + x * 1000, \
         CASE WHEN x % 50 = 0 THEN {f} ELSE {t} END, \
         CASE WHEN x % 50 = 0 THEN 503 ELSE 200 END, \
         (x % 97) + 3, \
         CASE WHEN x % 50 = 0 THEN 'HTTP status 503' END",
        f = if backend == Backend::Postgres {
            "false"
        } else {
            "0"
        },
        t = if backend == Backend::Postgres {
            "true"
        } else {
            "1"
        },
    );
    let columns =
        "check_results (monitor_id, seq, checked_at_ms, up, status_code, response_time_ms, error)";
    match backend {
        Backend::Postgres => format!(
            "INSERT INTO {columns} SELECT {values} FROM generate_series({from}::bigint, {to}::bigint) AS g(x)"
        ),
        Backend::Sqlite => format!(
            "INSERT INTO {columns} WITH RECURSIVE c(x) AS (SELECT {from} UNION ALL SELECT x + 1 FROM c WHERE x < {to}) \
             SELECT {values} FROM c"
        ),
    }
}

/// `h.requests` reads of one kind from `h.clients` clients; latencies in ms and failures.
async fn read_pages(
    http: &reqwest::Client,
    base: &str,
    h: &History,
    kind: usize,
    first: i64,
    mid_seq: i64,
) -> (Vec<f64>, u64) {
    let per_client = h.requests.div_ceil(h.clients.max(1));
    let mut tasks = Vec::new();
    for client in 0..h.clients.max(1) {
        let (http, base) = (http.clone(), base.to_owned());
        let monitors = h.monitors as i64;
        tasks.push(tokio::spawn(async move {
            let mut values = Vec::with_capacity(per_client);
            let mut failed = 0;
            for n in 0..per_client {
                let offset = ((client * per_client + n) as i64 * 7919) % monitors;
                let id = first + offset;
                let started = Instant::now();
                match read_page(&http, &base, kind, id, mid_seq).await {
                    Ok(()) => values.push(started.elapsed().as_secs_f64() * 1000.0),
                    Err(err) => {
                        if failed == 0 {
                            eprintln!("bench: read failed: {err:#}");
                        }
                        failed += 1;
                    }
                }
            }
            (values, failed)
        }));
    }
    let mut values = Vec::new();
    let mut failed = 0;
    for task in tasks {
        if let Ok((v, f)) = task.await {
            values.extend(v);
            failed += f;
        }
    }
    (values, failed)
}

/// The cursor of a monitor's result number `seq`, as the service writes it (clients get
/// cursors from pages; the bench makes one to start mid-history without paging there).
fn result_cursor(monitor_id: i64, seq: i64) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("result:{monitor_id}:{seq}"))
}

async fn read_page(
    http: &reqwest::Client,
    base: &str,
    kind: usize,
    id: i64,
    cursor: i64,
) -> anyhow::Result<()> {
    let query = "query($id: ID!, $after: String) { checkResults(monitorId: $id, first: 50, after: $after) \
                 { nodes { id status statusCode responseTimeMs error checkedAt } pageInfo { hasNextPage endCursor } } }";
    let request = match kind {
        0 => http.post(format!("{base}/graphql")).json(&json!({
            "query": query, "variables": { "id": id.to_string() },
        })),
        1 => http.post(format!("{base}/graphql")).json(&json!({
            "query": query, "variables": { "id": id.to_string(), "after": result_cursor(id, cursor) },
        })),
        _ => http.get(format!("{base}/monitors/{id}/check?limit=50")),
    };
    let response = request.send().await?;
    if !response.status().is_success() {
        bail!("HTTP {}", response.status());
    }
    let body: Value = response.json().await?;
    if body.get("errors").is_some() {
        bail!("GraphQL errors: {}", body["errors"]);
    }
    let count = match kind {
        2 => body.as_array().map(Vec::len),
        _ => body["data"]["checkResults"]["nodes"]
            .as_array()
            .map(Vec::len),
    };
    if count != Some(50) {
        bail!("expected a full page of 50, got {count:?}: {body}");
    }
    Ok(())
}
