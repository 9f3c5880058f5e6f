//! Distributed mode with real processes, RabbitMQ and PostgreSQL: two API processes, two
//! schedulers and three workers share one database and one broker. Every slot is checked
//! exactly once, a subscriber on one API process sees checks that workers ran for slots
//! another process scheduled, and a killed worker or a restarted broker loses and doubles
//! nothing.
//!
//! RabbitMQ comes from `TEST_RABBITMQ_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`).
//! Without it (or PostgreSQL) these tests say they were skipped, except under `CI=true`.
//! Each test uses its own queue prefix and database, so they do not see each other's jobs;
//! the broker-restart test is run alone (see `.config/nextest.toml`).

use std::{collections::BTreeMap, time::Duration};

use futures_util::StreamExt;
use lapin::{options::*, types::FieldTable, BasicProperties, Connection, ConnectionProperties};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{json, Value};
use testkit::{Role, Target};

use crate::common::{Backend, Proc, TestDb, BIN};

fn rabbitmq_url() -> String {
    std::env::var("TEST_RABBITMQ_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// RabbitMQ is reachable, or (outside CI) the test should be skipped.
async fn rabbitmq_available() -> bool {
    match Connection::connect(&rabbitmq_url(), ConnectionProperties::default()).await {
        Ok(conn) => {
            let _ = conn.close(200, "probe".into()).await;
            true
        }
        Err(err) => {
            if testkit::in_ci() {
                panic!(
                    "RabbitMQ is required under CI=true but {} is unreachable: {err}",
                    rabbitmq_url()
                );
            }
            eprintln!("SKIPPED: RabbitMQ not reachable at {} ({err}); set TEST_RABBITMQ_URL to run this test", rabbitmq_url());
            false
        }
    }
}

/// A fresh database and a unique prefix, or `None` when a service is missing outside CI.
async fn setup() -> Option<(TestDb, String)> {
    if !rabbitmq_available().await {
        return None;
    }
    let db = TestDb::fresh(Backend::Postgres).await?;
    let prefix = format!(
        "mm_test_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros()
    );
    Some((db, prefix))
}

struct Cluster {
    apis: Vec<Proc>,
    /// Kept to keep the processes alive.
    _schedulers: Vec<Proc>,
    workers: Vec<Proc>,
}

fn start_cluster(
    db: &TestDb,
    prefix: &str,
    apis: usize,
    schedulers: usize,
    workers: usize,
) -> Cluster {
    let url = rabbitmq_url();
    let env = [("RABBITMQ_URL", url.as_str()), ("RABBITMQ_PREFIX", prefix)];
    let start = |role: &str, ready: &str| Proc::launch(BIN, &db.url, &[role], &env, ready);
    // The first API process migrates; the others find the schema in place.
    let apis: Vec<Proc> = (0..apis)
        .map(|_| {
            let api = start("api", "listening on ");
            // Its subscribers hear of checks once it is bound to the events exchange.
            let deadline = std::time::Instant::now() + Duration::from_secs(15);
            while !api.log().contains(Role::Api.ready_line()) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "API never bound to RabbitMQ:\n{}",
                    api.log()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            api
        })
        .collect();
    let schedulers = (0..schedulers)
        .map(|_| start("scheduler", Role::Scheduler.ready_line()))
        .collect();
    let workers = (0..workers)
        .map(|_| start("worker", Role::Worker.ready_line()))
        .collect();
    Cluster {
        apis,
        _schedulers: schedulers,
        workers,
    }
}

async fn create_monitors(base: &str, target: &Target, count: usize) -> Vec<i64> {
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for n in 0..count {
        let response = http
            .post(format!("{base}/monitors"))
            .json(&json!({"name": format!("m{n}"), "url": target.url("/ok"), "timeout_seconds": 2, "interval_seconds": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        ids.push(body["id"].as_i64().unwrap());
    }
    ids
}

async fn pause_all(base: &str, ids: &[i64], target: &Target) {
    let http = reqwest::Client::new();
    for (n, id) in ids.iter().enumerate() {
        let response = http
            .put(format!("{base}/monitors/{id}"))
            .json(&json!({"name": format!("m{n}"), "url": target.url("/ok"), "timeout_seconds": 2, "interval_seconds": 1, "active": false}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
}

/// Each monitor's grid origin (its creation, when it was first due) and stored check times
/// (ms since the epoch), oldest first.
async fn check_times(db: &TestDb) -> BTreeMap<i64, (i64, Vec<i64>)> {
    let conn = db.connect().await;
    let rows = conn
        .query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT CAST(c.monitor_id AS bigint) AS monitor_id, c.checked_at_ms, \
                    (extract(epoch FROM m.created_at) * 1000)::bigint AS origin \
             FROM check_results c JOIN monitors m ON m.id = c.monitor_id \
             ORDER BY c.monitor_id, c.checked_at_ms",
        ))
        .await
        .unwrap();
    let mut times: BTreeMap<i64, (i64, Vec<i64>)> = BTreeMap::new();
    for row in rows {
        let id: i64 = row.try_get("", "monitor_id").unwrap();
        let at: i64 = row.try_get("", "checked_at_ms").unwrap();
        let origin: i64 = row.try_get("", "origin").unwrap();
        times.entry(id).or_insert((origin, Vec::new())).1.push(at);
    }
    times
}

/// Pauses every monitor, lets the checks in flight land, and returns each monitor's grid
/// origin and check times; panics when a monitor was never checked.
async fn stop_and_collect(
    api: &str,
    ids: &[i64],
    target: &Target,
    db: &TestDb,
) -> BTreeMap<i64, (i64, Vec<i64>)> {
    pause_all(api, ids, target).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let times = check_times(db).await;
    for id in ids {
        assert!(times.contains_key(id), "monitor {id} was never checked");
    }
    times
}

/// Which 1-second grid slot each check was for: a check starts at or after its due time
/// (never before; 5 ms allow for rounding), and before the next slot is due.
fn slots(origin: i64, times: &[i64]) -> Vec<i64> {
    times
        .iter()
        .map(|t| (t - origin + 5).div_euclid(1000))
        .collect()
}

/// Messages waiting in the dead-letter queue.
async fn dead_letters(channel: &lapin::Channel, prefix: &str) -> u32 {
    channel
        .queue_declare(
            format!("{prefix}.checks.dead").into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap()
        .message_count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_slot_is_checked_exactly_once_by_two_schedulers_and_three_workers() {
    let Some((db, prefix)) = setup().await else {
        return;
    };
    let target = Target::start().await;
    let cluster = start_cluster(&db, &prefix, 2, 2, 3);
    let (api1, api2) = (cluster.apis[0].base(), cluster.apis[1].base());

    // A /ws client on the second API process.
    let ws_url = format!("{}/ws", api2.replacen("http://", "ws://", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();

    let ids = create_monitors(&api1, &target, 10).await;
    tokio::time::sleep(Duration::from_millis(6500)).await;
    let times = stop_and_collect(&api1, &ids, &target, &db).await;
    for id in &ids {
        let (origin, checks) = &times[id];
        let slots = slots(*origin, checks);
        let expected: Vec<i64> = (0..slots.len() as i64).collect();
        assert_eq!(
            slots, expected,
            "monitor {id}: one check per slot, none missing, none doubled ({checks:?})"
        );
        assert!(
            checks.len() >= 5,
            "monitor {id}: {} checks in ~6.5 s",
            checks.len()
        );
    }

    // The subscriber on the other API process saw checks of every monitor.
    let mut seen = std::collections::HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while seen.len() < ids.len() && tokio::time::Instant::now() < deadline {
        if let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(1), ws.next()).await
        {
            if let Ok(text) = message.into_text() {
                let event: Value = serde_json::from_str(&text).unwrap();
                seen.insert(event["service_id"].as_i64().unwrap());
            }
        }
    }
    assert_eq!(
        seen.len(),
        ids.len(),
        "events on API 2 for every monitor: {seen:?}"
    );
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_and_a_restarted_broker_lose_nothing_and_double_nothing() {
    let Some((db, prefix)) = setup().await else {
        return;
    };
    let target = Target::start().await;
    let mut cluster = start_cluster(&db, &prefix, 1, 2, 3);
    let api = cluster.apis[0].base();
    let ids = create_monitors(&api, &target, 5).await;

    tokio::time::sleep(Duration::from_millis(2500)).await;
    cluster.workers[0].kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let restart = std::process::Command::new("rabbitmqctl")
        .arg("stop_app")
        .status();
    assert!(restart.is_ok_and(|s| s.success()), "rabbitmqctl stop_app");
    let outage_start = chrono::Utc::now().timestamp_millis();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = std::process::Command::new("rabbitmqctl")
        .arg("start_app")
        .status();
    assert!(started.is_ok_and(|s| s.success()), "rabbitmqctl start_app");
    let outage_end = chrono::Utc::now().timestamp_millis();
    // Reconnection backs off up to 5 s; then the schedule resumes.
    tokio::time::sleep(Duration::from_secs(9)).await;
    let times = stop_and_collect(&api, &ids, &target, &db).await;
    for id in &ids {
        let (origin, checks) = &times[id];
        let slots = slots(*origin, checks);
        let mut unique = slots.clone();
        unique.dedup();
        assert_eq!(
            unique, slots,
            "monitor {id}: no slot has two results ({checks:?})"
        );
        assert!(
            checks.iter().any(|t| *t > outage_end + 1000),
            "monitor {id}: checks resumed after the broker came back ({checks:?})"
        );
        // Slots are missing only while nothing could be dispatched (the broker was down, or
        // every process was reconnecting to it).
        for missing in (0..*slots.last().unwrap()).filter(|s| !slots.contains(s)) {
            let at = origin + missing * 1000;
            assert!(
                at >= outage_start - 1500 && at <= outage_end + 6000,
                "monitor {id}: slot {missing} missing outside the outage ({checks:?}, outage {outage_start}..{outage_end})"
            );
        }
    }
    // Nothing was dead-lettered: no job kept failing.
    let conn = Connection::connect(&rabbitmq_url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    assert_eq!(dead_letters(&channel, &prefix).await, 0);
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_always_fails_ends_in_the_dead_letter_queue() {
    let Some((db, prefix)) = setup().await else {
        return;
    };
    let cluster = start_cluster(&db, &prefix, 1, 0, 1);
    let conn = Connection::connect(&rabbitmq_url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    publish_job(&channel, &prefix, b"\x00 this is not a job").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if dead_letters(&channel, &prefix).await == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the bad job never reached the dead-letter queue"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The worker is still alive and well.
    assert!(cluster.workers[0].log().contains("dead-lettered"));
    let _ = conn.close(200, "done".into()).await;
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_check_the_whole_spec_and_refuse_one_they_do_not_understand() {
    let Some((db, prefix)) = setup().await else {
        return;
    };
    let target = Target::start().await;
    let cluster = start_cluster(&db, &prefix, 1, 1, 1);
    let base = cluster.apis[0].base();
    let http = reqwest::Client::new();
    let create = |body: Value| {
        let request = http.post(format!("{base}/monitors")).json(&body);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 201);
            response.json::<Value>().await.unwrap()
        }
    };
    let mut ids = Vec::new();
    for (name, target_text) in [("holds", "ok"), ("fails", "nope")] {
        let created = create(json!({
            "name": name, "url": target.url("/ok"), "timeout_seconds": 2, "interval_seconds": 1,
            "failure_threshold": 2,
            "headers": [{"name": "X-Check", "value": "1"}],
            "assertions": [{"source": "BODY", "comparison": "EQUALS", "target": target_text}],
        }))
        .await;
        ids.push(created["id"].as_i64().unwrap());
    }
    // TCP monitors: the kind travels in the job's spec.
    let open = target
        .url("/")
        .trim_end_matches('/')
        .replacen("http://", "tcp://", 1);
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("tcp://127.0.0.1:{}", listener.local_addr().unwrap().port())
    };
    for (name, url) in [("connects", open), ("refused", closed)] {
        let created =
            create(json!({"name": name, "url": url, "timeout_seconds": 2, "interval_seconds": 1}))
                .await;
        assert_eq!(created["kind"], "TCP", "{created}");
        ids.push(created["id"].as_i64().unwrap());
    }
    // A DNS monitor, against a DNS server of the test's.
    let dns = testkit::DnsServer::start(vec![(
        "app.test",
        testkit::dns::RData::A(testkit::dns::rdata::A([10, 0, 0, 7].into())),
    )])
    .await;
    let created = create(json!({"name": "dns", "url": "dns://app.test", "timeout_seconds": 2, "interval_seconds": 1,
                      "dns_resolver": dns.addr.to_string(),
                      "assertions": [{"source": "BODY", "comparison": "EQUALS", "target": "10.0.0.7"}]})).await;
    ids.push(created["id"].as_i64().unwrap());
    // Results come from the worker, judged by the spec it got in the job.
    let mut newest = Vec::new();
    for (id, status, state) in [
        (ids[0], "UP", "UP"),
        (ids[1], "DOWN", "DOWN"),
        (ids[2], "UP", "UP"),
        (ids[3], "DOWN", "DOWN"),
        (ids[4], "UP", "UP"),
    ] {
        let result =
            testkit::eventually(Duration::from_secs(15), "a worker's judged result", || {
                let http = http.clone();
                let base = base.clone();
                async move {
                    let get = |path: String| {
                        let http = http.clone();
                        async move { http.get(path).send().await.ok()?.json::<Value>().await.ok() }
                    };
                    let monitor = get(format!("{base}/monitors/{id}")).await?;
                    if monitor["state"] != state {
                        return None;
                    }
                    let history = get(format!("{base}/monitors/{id}/check")).await?;
                    let newest = history.get(0)?.clone();
                    (newest["status"] == status).then_some(newest)
                }
            })
            .await;
        newest.push(result);
    }
    assert_eq!(
        newest[1]["assertion_results"][0]["actual"], "ok",
        "{}",
        newest[1]
    );
    assert!(newest[1]["timings"]["connect_ms"].is_i64(), "{}", newest[1]);
    assert_eq!(newest[3]["error"], "connection refused", "{}", newest[3]);
    assert_eq!(newest[3]["status_code"], Value::Null, "{}", newest[3]);

    // A PUSH monitor: a worker records the missed push (the kind travels in the job), an API
    // process records the push.
    let created = create(
        json!({"name": "cron", "kind": "PUSH", "timeout_seconds": 1, "interval_seconds": 1}),
    )
    .await;
    let pushed = created;
    let push_id = pushed["id"].as_i64().unwrap();
    let missed = testkit::eventually(Duration::from_secs(15), "a missed push", || {
        let http = http.clone();
        let url = format!("{base}/monitors/{push_id}/check");
        async move {
            let history: Value = http.get(url).send().await.ok()?.json().await.ok()?;
            let newest = history.get(0)?.clone();
            (newest["status"] == "DOWN").then_some(newest)
        }
    })
    .await;
    assert_eq!(
        missed["error"], "no push received within the interval and its grace period",
        "{missed}"
    );
    let response = http
        .post(format!(
            "{base}/push/{}?ping=5",
            pushed["push_token"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let result: Value = response.json().await.unwrap();
    assert_eq!(result["status"], "UP", "{result}");
    assert_eq!(result["response_time_ms"], 5, "{result}");
    // The worker's missed-push DOWN opened an incident; the API process's push resolved it.
    let incidents = get_json(&http, format!("{base}/incidents?monitor_id={push_id}")).await;
    let first = incidents.as_array().unwrap().last().unwrap();
    assert_eq!(first["cause"]["status"], "DOWN", "{incidents}");
    assert_eq!(first["resolved_by"]["id"], result["id"], "{incidents}");

    // Retries: the store moves the due time of an unconfirmed change, and the lease
    // scheduler claims it a second later rather than an hour.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("tcp://127.0.0.1:{}", listener.local_addr().unwrap().port())
    };
    let created = create(
        json!({"name": "retried", "url": closed, "timeout_seconds": 1, "interval_seconds": 3600,
                      "failure_threshold": 2, "retry_interval_seconds": 1}),
    )
    .await;
    let retried = created["id"].as_i64().unwrap();
    testkit::eventually(
        Duration::from_secs(15),
        "a change confirmed by a retry",
        || {
            let http = http.clone();
            let base = base.clone();
            async move {
                let monitor: Value = http
                    .get(format!("{base}/monitors/{retried}"))
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                (monitor["state"] == "DOWN").then_some(())
            }
        },
    )
    .await;
    let open = get_json(
        &http,
        format!("{base}/incidents?monitor_id={retried}&open=true"),
    )
    .await;
    assert_eq!(open.as_array().unwrap().len(), 1, "{open}");
    assert_eq!(open[0]["cause"]["seq"], 2, "{open}");

    // A job of a newer version, or with a spec field this worker does not know, is
    // dead-lettered with the reason, never checked as something else.
    let conn = Connection::connect(&rabbitmq_url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    let due = chrono::Utc::now() + chrono::Duration::seconds(30);
    let job = |v: u32, spec: Value| {
        json!({"v": v, "monitor_id": ids[0], "url": target.url("/ok"), "timeout_ms": 1000,
               "due": due, "next": due + chrono::Duration::seconds(1), "spec": spec})
        .to_string()
    };
    let spec = json!({"method": "GET", "accepted_status_codes": ["200-299"], "follow_redirects": true,
                      "max_redirects": 10, "ignore_tls": false});
    let mut novel = spec.clone();
    novel["script"] = json!("return true");
    for message in [job(3, spec), job(2, novel)] {
        publish_job(&channel, &prefix, message.as_bytes()).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while dead_letters(&channel, &prefix).await < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the jobs were not dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = cluster.workers[0].log();
    assert!(
        log.contains("check job version 3 is newer than this worker reads"),
        "{log}"
    );
    assert!(
        log.contains("not understood by this worker version"),
        "{log}"
    );
    let _ = conn.close(200, "done".into()).await;
    drop(cluster);
}

/// Publishes raw bytes to the check-job queue, confirmed by the broker.
async fn publish_job(channel: &lapin::Channel, prefix: &str, body: &[u8]) {
    channel
        .basic_publish(
            "".into(),
            format!("{prefix}.checks").into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
}

async fn get_json(http: &reqwest::Client, url: String) -> Value {
    let response = http.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_api_processes_send_each_notification_once() {
    let Some((db, prefix)) = setup().await else {
        return;
    };
    let rx = crate::notifications::Receiver::start().await;
    let cluster = start_cluster(&db, &prefix, 2, 1, 2);
    let base = cluster.apis[0].base();
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{base}/graphql"))
        .json(&json!({
            "query": "mutation($i: CreateNotificationChannelInput!) { createNotificationChannel(input: $i) { id } }",
            "variables": {"i": {"name": "hook", "kind": "WEBHOOK", "isDefault": true,
                "url": format!("{}/hook", rx.base), "secret": crate::notifications::SECRET}},
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(created["errors"].is_null(), "{created}");
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("tcp://127.0.0.1:{}", listener.local_addr().unwrap().port())
    };
    for n in 0..5 {
        let response = http
            .post(format!("{base}/monitors"))
            .json(&json!({"name": format!("down {n}"), "url": closed, "timeout_seconds": 1, "interval_seconds": 3600}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    // Five incidents, each told once, whichever process claimed it.
    let told = |rx: &crate::notifications::Receiver| -> Vec<i64> {
        rx.at("/hook")
            .iter()
            .flat_map(|r| {
                crate::notifications::verify_signature(r);
                r.json()["notifications"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n["incident_id"].as_i64().unwrap())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    testkit::eventually(Duration::from_secs(20), "five notifications", || async {
        (told(&rx).len() >= 5).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut incidents = told(&rx);
    assert_eq!(incidents.len(), 5, "{incidents:?}");
    incidents.sort_unstable();
    incidents.dedup();
    assert_eq!(incidents.len(), 5, "each incident once");
    drop(cluster);
}

/// A maintenance window made through one API process quiets checks done by the workers (which
/// reload windows every 2 s): their results are flagged, no incident opens, nothing is sent;
/// once the window is ended, the next failure is an incident and a message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_made_on_an_api_process_quiets_the_workers_checks() {
    let Some((db, prefix)) = setup().await else {
        return;
    };
    let rx = crate::notifications::Receiver::start().await;
    let cluster = start_cluster(&db, &prefix, 1, 1, 2);
    let base = cluster.apis[0].base();
    let http = reqwest::Client::new();
    let gql = |query: &'static str, variables: Value| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let body: Value = http
                .post(format!("{base}/graphql"))
                .json(&json!({"query": query, "variables": variables}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert!(body["errors"].is_null(), "{body}");
            body["data"].clone()
        }
    };
    gql(
        "mutation($i: CreateNotificationChannelInput!) { createNotificationChannel(input: $i) { id } }",
        json!({"i": {"name": "hook", "kind": "WEBHOOK", "isDefault": true,
            "url": format!("{}/hook", rx.base), "secret": crate::notifications::SECRET}}),
    )
    .await;
    let now = chrono::Utc::now();
    let window = gql(
        "mutation($i: CreateMaintenanceWindowInput!) { createMaintenanceWindow(input: $i) { id active } }",
        json!({"i": {"name": "all of them", "startsAt": (now - chrono::Duration::minutes(1)).to_rfc3339(),
            "endsAt": (now + chrono::Duration::hours(1)).to_rfc3339()}}),
    )
    .await;
    assert_eq!(window["createMaintenanceWindow"]["active"], true);
    // The workers take the window in within their reload interval.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("tcp://127.0.0.1:{}", listener.local_addr().unwrap().port())
    };
    let response = http
        .post(format!("{base}/monitors"))
        .json(&json!({"name": "down", "url": closed, "timeout_seconds": 1, "interval_seconds": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let results = |http: reqwest::Client, base: String| async move {
        get_json(&http, format!("{base}/monitors/{id}/check?limit=100")).await
    };
    testkit::eventually(Duration::from_secs(20), "three results", || async {
        let body = results(http.clone(), base.clone()).await;
        (body.as_array().map_or(0, Vec::len) >= 3).then_some(())
    })
    .await;
    let body = results(http.clone(), base.clone()).await;
    assert!(
        body.as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "DOWN" && r["in_maintenance"] == true),
        "{body}"
    );
    let monitor = get_json(&http, format!("{base}/monitors/{id}")).await;
    assert_eq!(monitor["state"], "MAINTENANCE", "{monitor}");
    let open = get_json(&http, format!("{base}/incidents?monitor_id={id}")).await;
    assert_eq!(open, json!([]), "no incident in the window");
    assert!(rx.at("/hook").is_empty(), "nothing sent");

    gql(
        "mutation($id: ID!) { endMaintenanceWindow(id: $id) { id } }",
        json!({"id": window["createMaintenanceWindow"]["id"]}),
    )
    .await;
    let hook = rx.wait_for("/hook", 1).await;
    assert_eq!(hook.len(), 1, "one DOWN once the window ended");
    assert_eq!(hook[0].json()["notifications"][0]["event"], "DOWN");
    drop(cluster);
}
