//! Notifications from outside, against a local receiver that records every request and checks
//! each provider's payload shape and the webhook signature: a monitor that goes DOWN and back
//! sends exactly one down and one up message per channel, the up one with the downtime;
//! a receiver that fails gets the message once it recovers, every attempt recorded; a test
//! message reports the real error; secrets read back masked; bad settings are named. Every
//! scenario runs on SQLite and on PostgreSQL.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, Uri},
    Router,
};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use testkit::{on_both_backends, Target};

use crate::{
    check_options::created,
    common::{check_now, App, Backend},
};

#[derive(Clone, Debug)]
pub(crate) struct Received {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Received {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    /// Requests still to be refused with 500 (recorded all the same).
    fail_next: Mutex<u32>,
    /// Requests still to be left unanswered for a minute (recorded only if answered).
    hang_next: Mutex<u32>,
    /// Every request that arrived, answered or not.
    arrived: std::sync::atomic::AtomicUsize,
}

/// A local HTTP receiver: answers 200 (or 500 while told to fail) to any POST.
pub(crate) struct Receiver {
    pub(crate) base: String,
    shared: Arc<Shared>,
}

impl Receiver {
    pub(crate) async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let app =
            Router::new()
                .fallback(
                    |State(shared): State<Arc<Shared>>,
                     uri: Uri,
                     headers: HeaderMap,
                     body: Bytes| async move {
                        shared
                            .arrived
                            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let hang = {
                            let mut hang = shared.hang_next.lock().unwrap();
                            let now = *hang > 0;
                            *hang = hang.saturating_sub(1);
                            now
                        };
                        if hang {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                        }
                        shared.received.lock().unwrap().push(Received {
                            path: uri.path().to_owned(),
                            headers,
                            body,
                        });
                        let mut fail = shared.fail_next.lock().unwrap();
                        if *fail > 0 {
                            *fail -= 1;
                            return (
                                StatusCode::INTERNAL_SERVER_ERROR,
                                "receiver down for maintenance",
                            );
                        }
                        (StatusCode::OK, "ok")
                    },
                )
                .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base, shared }
    }

    /// Leaves the next `n` requests unanswered for a minute.
    pub(crate) fn hang_next(&self, n: u32) {
        *self.shared.hang_next.lock().unwrap() = n;
    }

    pub(crate) fn arrived(&self) -> usize {
        self.shared
            .arrived
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    pub(crate) fn at(&self, path: &str) -> Vec<Received> {
        self.shared
            .received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Waits until `path` has `n` requests, then a little more to see none follow.
    pub(crate) async fn wait_for(&self, path: &str, n: usize) -> Vec<Received> {
        testkit::eventually(Duration::from_secs(20), path, || async {
            (self.at(path).len() >= n).then_some(())
        })
        .await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        self.at(path)
    }
}

pub(crate) const SECRET: &str = "whsec-0123456789abcdef";

pub(crate) fn verify_signature(r: &Received) {
    let timestamp = r.header("x-mm-timestamp");
    let age = chrono::Utc::now().timestamp() - timestamp.parse::<i64>().unwrap();
    assert!((0..60).contains(&age), "fresh timestamp: {timestamp}");
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(&r.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(r.header("x-mm-signature"), expected);
}

pub(crate) async fn create_channel(app: &App, input: Value) -> Value {
    let body = app
        .graphql(
            "mutation($i: CreateNotificationChannelInput!) { createNotificationChannel(input: $i) { id name kind isDefault url secret token chatId topic routingKey to smtpHost smtpPort smtpTls } }",
            json!({"i": input}),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["createNotificationChannel"].clone()
}

async fn deliveries(app: &App) -> Vec<Value> {
    let body = app
        .graphql(
            "{ notificationDeliveries(first: 100) { nodes { id channelId incidentId event state lastError attempts { ok responseCode error durationMs } } } }",
            json!({}),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["notificationDeliveries"]["nodes"]
        .as_array()
        .unwrap()
        .clone()
}

async fn one_outage_is_one_down_and_one_up_message_per_channel(backend: Backend) {
    let target = Target::start().await;
    let rx = Receiver::start().await;
    let app = spawn_app!(backend);
    let base = &rx.base;
    let webhook = create_channel(
        &app,
        json!({"name": "hook", "kind": "WEBHOOK", "isDefault": true, "url": format!("{base}/hook"), "secret": SECRET}),
    )
    .await;
    assert_eq!(webhook["secret"], "***cdef", "masked: {webhook}");
    let mut linked = Vec::new();
    for input in [
        json!({"name": "slack", "kind": "SLACK", "url": format!("{base}/slack/T0/B0/XYZ")}),
        json!({"name": "mm", "kind": "MATTERMOST", "url": format!("{base}/mattermost")}),
        json!({"name": "discord", "kind": "DISCORD", "url": format!("{base}/discord")}),
        json!({"name": "teams", "kind": "TEAMS", "url": format!("{base}/teams")}),
        json!({"name": "tg", "kind": "TELEGRAM", "url": base, "token": "123456:ABCDEFGHIJKLMNOP", "chatId": "-1001"}),
        json!({"name": "ntfy", "kind": "NTFY", "url": base, "topic": "ops-alerts"}),
        json!({"name": "gotify", "kind": "GOTIFY", "url": format!("{base}/gotify"), "token": "AppTokenXYZ12345"}),
        json!({"name": "pd", "kind": "PAGERDUTY", "url": format!("{base}/pd"), "routingKey": "R0UT1NGKEY0123456789"}),
    ] {
        linked.push(create_channel(&app, input).await);
    }
    assert_eq!(linked[0]["url"], format!("{base}/***"), "{}", linked[0]);
    assert_eq!(linked[4]["token"], "***MNOP", "{}", linked[4]);
    let id = created(&app, &target.url("/flip"), json!({})).await;
    let ids: Vec<Value> = linked.iter().map(|c| c["id"].clone()).collect();
    let body = app
        .graphql(
            "mutation($m: ID!, $c: [ID!]!) { setMonitorNotificationChannels(monitorId: $m, channelIds: $c) { name } }",
            json!({"m": id.to_string(), "c": ids}),
        )
        .await;
    assert_eq!(
        body["data"]["setMonitorNotificationChannels"]
            .as_array()
            .map(Vec::len),
        Some(8),
        "{body}"
    );

    check_now(&app, id).await;
    target.set_flip(503);
    check_now(&app, id).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    target.set_flip(200);
    check_now(&app, id).await;

    let hook = rx.wait_for("/hook", 2).await;
    assert_eq!(hook.len(), 2, "one down, one up");
    for r in &hook {
        verify_signature(r);
        assert_eq!(r.header("content-type"), "application/json");
    }
    let (down, up) = (hook[0].json(), hook[1].json());
    assert_eq!(down["notifications"][0]["event"], "DOWN", "{down}");
    assert_eq!(down["notifications"][0]["status_code"], 503, "{down}");
    assert_eq!(down["notifications"][0]["monitor"]["id"], id, "{down}");
    assert_eq!(up["notifications"][0]["event"], "UP", "{up}");
    let downtime = up["notifications"][0]["downtime_seconds"].as_i64().unwrap();
    assert!(downtime >= 1, "{up}");
    assert_eq!(
        up["notifications"][0]["incident_id"],
        down["notifications"][0]["incident_id"]
    );

    let slack = rx.wait_for("/slack/T0/B0/XYZ", 2).await;
    assert_eq!(slack.len(), 2);
    let text = slack[0].json()["text"].as_str().unwrap().to_owned();
    assert!(text.starts_with("DOWN: options of"), "{text}");
    assert!(text.ends_with("HTTP status 503"), "{text}");
    let text = slack[1].json()["text"].as_str().unwrap().to_owned();
    assert!(text.contains("is back after"), "{text}");
    assert_eq!(rx.wait_for("/mattermost", 2).await.len(), 2);
    let discord = rx.wait_for("/discord", 2).await;
    assert_eq!(discord.len(), 2);
    assert!(discord[0].json()["content"]
        .as_str()
        .unwrap()
        .starts_with("DOWN"));
    let teams = rx.wait_for("/teams", 2).await;
    assert_eq!(teams.len(), 2);
    let card = &teams[0].json()["attachments"][0];
    assert_eq!(
        card["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(card["content"]["type"], "AdaptiveCard");
    let tg = rx
        .wait_for("/bot123456:ABCDEFGHIJKLMNOP/sendMessage", 2)
        .await;
    assert_eq!(tg.len(), 2);
    assert_eq!(tg[0].json()["chat_id"], "-1001");
    let ntfy = rx.wait_for("/ops-alerts", 2).await;
    assert_eq!(ntfy.len(), 2);
    assert!(String::from_utf8_lossy(&ntfy[0].body).starts_with("DOWN"));
    assert!(
        ntfy[0].header("title").ends_with("DOWN"),
        "{:?}",
        ntfy[0].headers
    );
    let gotify = rx.wait_for("/gotify/message", 2).await;
    assert_eq!(gotify.len(), 2);
    assert_eq!(gotify[0].header("x-gotify-key"), "AppTokenXYZ12345");
    assert!(gotify[0].json()["message"]
        .as_str()
        .unwrap()
        .starts_with("DOWN"));
    let pd = rx.wait_for("/pd", 2).await;
    assert_eq!(pd.len(), 2);
    let (trigger, resolve) = (pd[0].json(), pd[1].json());
    assert_eq!(trigger["event_action"], "trigger", "{trigger}");
    assert_eq!(resolve["event_action"], "resolve", "{resolve}");
    assert_eq!(trigger["dedup_key"], resolve["dedup_key"]);
    assert_eq!(trigger["routing_key"], "R0UT1NGKEY0123456789");
    assert_eq!(trigger["payload"]["severity"], "critical");

    let all = deliveries(&app).await;
    assert_eq!(all.len(), 18, "two per channel: {all:?}");
    for d in &all {
        assert_eq!(d["state"], "SENT", "{d}");
        assert_eq!(d["attempts"].as_array().unwrap().len(), 1, "{d}");
        assert_eq!(d["attempts"][0]["responseCode"], 200, "{d}");
    }
}

async fn a_failing_receiver_gets_the_message_once_it_recovers(backend: Backend) {
    let target = Target::start().await;
    let rx = Receiver::start().await;
    *rx.shared.fail_next.lock().unwrap() = 1;
    let app = spawn_app!(backend);
    let channel = create_channel(
        &app,
        json!({"name": "hook", "kind": "WEBHOOK", "isDefault": true, "url": format!("{}/hook", rx.base), "secret": SECRET}),
    )
    .await;
    let id = created(&app, &target.url("/flip"), json!({})).await;
    target.set_flip(503);
    check_now(&app, id).await;
    // Refused once, then sent about 5 s later.
    let hook = rx.wait_for("/hook", 2).await;
    assert_eq!(hook.len(), 2, "one refused, one delivered");
    assert_eq!(hook[0].body, hook[1].body, "the same message again");
    let all = deliveries(&app).await;
    assert_eq!(all.len(), 1, "{all:?}");
    let d = &all[0];
    assert_eq!(d["state"], "SENT", "{d}");
    assert_eq!(d["event"], "DOWN");
    assert_eq!(d["channelId"], channel["id"]);
    let attempts = d["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{d}");
    assert_eq!(attempts[0]["ok"], false);
    assert_eq!(attempts[0]["responseCode"], 500);
    assert_eq!(
        attempts[0]["error"],
        "HTTP 500: receiver down for maintenance"
    );
    assert_eq!(attempts[1]["ok"], true);

    // A test message to a closed port fails at once with the reason, and is not retried.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!(
            "http://127.0.0.1:{}/x",
            listener.local_addr().unwrap().port()
        )
    };
    let dead = create_channel(
        &app,
        json!({"name": "dead", "kind": "SLACK", "url": closed}),
    )
    .await;
    let body = app
        .graphql(
            "mutation($id: ID!) { testNotificationChannel(id: $id) { event state lastError attempts { ok error } } }",
            json!({"id": dead["id"]}),
        )
        .await;
    let test = &body["data"]["testNotificationChannel"];
    assert_eq!(test["event"], "TEST", "{body}");
    assert_eq!(test["state"], "FAILED", "{body}");
    assert_eq!(
        test["lastError"], "connection failed (refused or unreachable)",
        "{body}"
    );
    // And one that works.
    let body = app
        .graphql(
            "mutation($id: ID!) { testNotificationChannel(id: $id) { state attempts { ok responseCode } } }",
            json!({"id": channel["id"]}),
        )
        .await;
    assert_eq!(
        body["data"]["testNotificationChannel"]["state"], "SENT",
        "{body}"
    );
    let tests = rx.at("/hook");
    verify_signature(tests.last().unwrap());
    assert_eq!(
        tests.last().unwrap().json()["notifications"][0]["event"],
        "TEST"
    );
}

async fn bad_channel_settings_are_named(backend: Backend) {
    let app = spawn_app!(backend);
    let create = |input: Value| {
        let app = &app;
        async move {
            app.graphql(
                "mutation($i: CreateNotificationChannelInput!) { createNotificationChannel(input: $i) { id } }",
                json!({"i": input}),
            )
            .await
        }
    };
    for (input, needle) in [
        (
            json!({"name": "w", "kind": "WEBHOOK", "url": "http://127.0.0.1:9/"}),
            "secret is required for WEBHOOK channels",
        ),
        (
            json!({"name": "w", "kind": "WEBHOOK", "url": "http://127.0.0.1:9/", "secret": "short"}),
            "secret must be at least 16 characters",
        ),
        (
            json!({"name": "s", "kind": "SLACK"}),
            "url is required for SLACK channels",
        ),
        (
            json!({"name": "s", "kind": "SLACK", "url": "hooks.slack.com/x"}),
            "url is not a URL",
        ),
        (
            json!({"name": "s", "kind": "SLACK", "url": "ftp://h/x"}),
            "url must be an http or https URL",
        ),
        (
            json!({"name": "s", "kind": "SLACK", "url": "http://h/x", "topic": "t"}),
            "topic is not a setting of SLACK channels",
        ),
        (
            json!({"name": "t", "kind": "TELEGRAM", "token": "x"}),
            "chatId is required for TELEGRAM channels",
        ),
        (
            json!({"name": "n", "kind": "NTFY", "topic": "a/b"}),
            "topic must be 1 to 64",
        ),
        (
            json!({"name": " ", "kind": "DISCORD", "url": "http://h/x"}),
            "name must not be empty",
        ),
    ] {
        let body = create(input.clone()).await;
        let error = &body["errors"][0];
        assert_eq!(
            error["extensions"]["code"], "BAD_USER_INPUT",
            "{input}: {body}"
        );
        assert!(
            error["message"]
                .as_str()
                .unwrap_or_default()
                .contains(needle),
            "{input}: {body}"
        );
    }
    let first = create(json!({"name": "dup", "kind": "DISCORD", "url": "http://h/x"})).await;
    assert!(first["errors"].is_null(), "{first}");
    let body = create(json!({"name": "dup", "kind": "DISCORD", "url": "http://h/y"})).await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("name is taken"),
        "{body}"
    );
    assert_eq!(
        app.db.count("notification_channels").await,
        1,
        "nothing else stored"
    );
    let channel = first["data"]["createNotificationChannel"]["id"].clone();
    // Sending the masked URL back keeps the stored one; a new name is stored.
    let body = app
        .graphql(
            "mutation($id: ID!) { updateNotificationChannel(id: $id, input: {name: \"renamed\", url: \"http://h/***\"}) { name url } }",
            json!({"id": channel}),
        )
        .await;
    assert_eq!(
        body["data"]["updateNotificationChannel"]["name"], "renamed",
        "{body}"
    );
    let body = app
        .graphql(
            "mutation { setMonitorNotificationChannels(monitorId: \"1\", channelIds: []) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{body}"
    );
    let id = created(&app, "http://127.0.0.1:9/", json!({})).await;
    let body = app
        .graphql(
            "mutation($m: ID!) { setMonitorNotificationChannels(monitorId: $m, channelIds: [\"999\"]) { id } }",
            json!({"m": id.to_string()}),
        )
        .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("notification channel 999 does not exist"),
        "{body}"
    );
    let body = app
        .graphql(
            "mutation { testNotificationChannel(id: \"999\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{body}"
    );
    let body = app
        .graphql(
            "mutation($id: ID!) { deleteNotificationChannel(id: $id) }",
            json!({"id": channel}),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(app.db.count("notification_channels").await, 0);
}

/// A real SMTP server (Debian's python3-aiosmtpd) storing what it receives in a maildir.
struct SmtpServer {
    port: u16,
    dir: tempfile::TempDir,
    child: std::process::Child,
}

impl SmtpServer {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let child = std::process::Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir.path().join("mail"))
            .spawn()
            .expect("python3-aiosmtpd (Debian's package) is needed for the email tests");
        testkit::eventually(Duration::from_secs(15), "the SMTP server", || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        Self { port, dir, child }
    }

    fn messages(&self) -> Vec<String> {
        let new = self.dir.path().join("mail").join("new");
        let mut out: Vec<String> = std::fs::read_dir(new)
            .map(|entries| {
                entries
                    .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by_key(|m| m.contains("Subject: Monitor Manager test"));
        out
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn email_goes_over_smtp_with_a_text_and_an_html_part(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let target = Target::start().await;
    let app = spawn_app!(backend);
    let channel = create_channel(
        &app,
        json!({"name": "mail", "kind": "EMAIL", "isDefault": true,
               "smtpHost": "127.0.0.1", "smtpPort": smtp.port, "smtpTls": "NONE",
               "from": "monitor@example.test", "to": ["ops@example.test", "oncall@example.test"]}),
    )
    .await;
    let body = app
        .graphql(
            "mutation($id: ID!) { testNotificationChannel(id: $id) { state attempts { ok responseCode error } } }",
            json!({"id": channel["id"]}),
        )
        .await;
    let test = &body["data"]["testNotificationChannel"];
    assert_eq!(test["state"], "SENT", "{body}");
    assert_eq!(channel["smtpPort"], smtp.port, "{channel}");
    assert_eq!(
        channel["to"],
        json!(["ops@example.test", "oncall@example.test"])
    );
    assert_eq!(test["attempts"][0]["responseCode"], 250, "{body}");
    let id = created(&app, &target.url("/flip"), json!({})).await;
    target.set_flip(503);
    check_now(&app, id).await;
    testkit::eventually(Duration::from_secs(20), "two emails", || async {
        (smtp.messages().len() >= 2).then_some(())
    })
    .await;
    let messages = smtp.messages();
    let down = &messages[0];
    assert!(down.contains("Subject: options of"), "{down}");
    assert!(down.contains("DOWN"), "{down}");
    assert!(
        down.contains("To: ops@example.test, oncall@example.test"),
        "{down}"
    );
    assert!(down.contains("multipart/alternative"), "{down}");
    assert!(down.contains("Content-Type: text/plain"), "{down}");
    assert!(down.contains("Content-Type: text/html"), "{down}");
    assert!(down.contains("HTTP status 503"), "{down}");
    assert!(messages[1].contains("Subject: Monitor Manager test"));

    // Unreachable: the test message names the failure; bad addresses are refused at creation.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dead = create_channel(
        &app,
        json!({"name": "dead mail", "kind": "EMAIL", "smtpHost": "127.0.0.1", "smtpPort": closed,
               "smtpTls": "NONE", "from": "a@example.test", "to": ["b@example.test"]}),
    )
    .await;
    let body = app
        .graphql(
            "mutation($id: ID!) { testNotificationChannel(id: $id) { state lastError } }",
            json!({"id": dead["id"]}),
        )
        .await;
    assert_eq!(
        body["data"]["testNotificationChannel"]["state"], "FAILED",
        "{body}"
    );
    assert!(
        body["data"]["testNotificationChannel"]["lastError"]
            .as_str()
            .unwrap()
            .starts_with("SMTP:"),
        "{body}"
    );
    for (input, needle) in [
        (
            json!({"name": "m", "kind": "EMAIL", "url": "smtp://h/", "from": "a@b.c", "to": ["d@e.f"]}),
            "url is not a setting of EMAIL channels",
        ),
        (
            json!({"name": "m", "kind": "EMAIL", "smtpHost": "h", "from": "nobody", "to": ["d@e.f"]}),
            "from \"nobody\" is not an email address",
        ),
        (
            json!({"name": "m", "kind": "EMAIL", "smtpHost": "h", "from": "a@b.c", "to": ["d@e.f", "x"]}),
            "to \"x\" is not an email address",
        ),
        (
            json!({"name": "m", "kind": "EMAIL", "smtpHost": "h", "from": "a@b.c"}),
            "to must name at least one address",
        ),
        (
            json!({"name": "m", "kind": "EMAIL", "smtpHost": "smtp://h", "from": "a@b.c", "to": ["d@e.f"]}),
            "smtpHost \"smtp://h\" is not a host name",
        ),
        (
            json!({"name": "m", "kind": "EMAIL", "smtpHost": "h", "smtpPort": 70000, "from": "a@b.c", "to": ["d@e.f"]}),
            "smtpPort must be a port number",
        ),
        (
            json!({"name": "m", "kind": "EMAIL", "smtpHost": "h", "smtpPassword": "pw", "from": "a@b.c", "to": ["d@e.f"]}),
            "smtpUsername is required when a password is given",
        ),
        (
            json!({"name": "m", "kind": "SLACK", "url": "https://hooks.slack.com/x", "to": ["d@e.f"]}),
            "to is not a setting of SLACK channels",
        ),
        (
            json!({"name": "m", "kind": "TELEGRAM", "token": "12/../x", "chatId": "1"}),
            "token must be letters",
        ),
    ] {
        let body = app
            .graphql(
                "mutation($i: CreateNotificationChannelInput!) { createNotificationChannel(input: $i) { id } }",
                json!({"i": input}),
            )
            .await;
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(needle),
            "{input}: {body}"
        );
    }
}

async fn channels_obey_the_target_policy(backend: Backend) {
    let rx = Receiver::start().await;
    let Some(app) = App::spawn_with(
        crate::common::BIN,
        backend,
        &[("BLOCK_PRIVATE_NETWORKS", "true")],
    )
    .await
    else {
        return;
    };
    for url in [
        "http://169.254.169.254/latest/".to_owned(),
        format!("{}/hook", rx.base),
    ] {
        let body = app
            .graphql(
                "mutation($i: CreateNotificationChannelInput!) { createNotificationChannel(input: $i) { id } }",
                json!({"i": {"name": "x", "kind": "SLACK", "url": url}}),
            )
            .await;
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with("url points at "), "{url}: {body}");
        assert!(message.contains("notifications may not go there"), "{body}");
    }
    // A name is vetted as it resolves, at the send.
    let port = rx.base.rsplit(':').next().unwrap();
    let named = create_channel(
        &app,
        json!({"name": "named", "kind": "SLACK", "url": format!("http://localhost:{port}/hook")}),
    )
    .await;
    let body = app
        .graphql(
            "mutation($id: ID!) { testNotificationChannel(id: $id) { state lastError } }",
            json!({"id": named["id"]}),
        )
        .await;
    let test = &body["data"]["testNotificationChannel"];
    assert_eq!(test["state"], "FAILED", "{body}");
    assert!(
        test["lastError"]
            .as_str()
            .unwrap_or_default()
            .contains("loopback"),
        "{body}"
    );
    assert!(rx.at("/hook").is_empty(), "nothing reached the receiver");
}

/// The process is killed while a message is on its way (the receiver never answered): after a
/// restart on the same database the message is sent, once, when the dead sender's claim ends.
async fn a_message_cut_off_by_a_crash_is_sent_once_after_the_restart(backend: Backend) {
    let target = Target::start().await;
    let rx = Receiver::start().await;
    rx.hang_next(1);
    let app = spawn_app!(backend);
    create_channel(
        &app,
        json!({"name": "hook", "kind": "WEBHOOK", "isDefault": true, "url": format!("{}/hook", rx.base), "secret": SECRET}),
    )
    .await;
    let id = created(&app, &target.url("/flip"), json!({})).await;
    target.set_flip(503);
    check_now(&app, id).await;
    testkit::eventually(Duration::from_secs(20), "the send under way", || async {
        (rx.arrived() >= 1).then_some(())
    })
    .await;
    let db = app.crash();
    let app = crate::common::App::start_on(crate::common::BIN, db, &[]);
    let started = std::time::Instant::now();
    let hook = testkit::eventually(Duration::from_secs(90), "the message resent", || async {
        let got = rx.at("/hook");
        (!got.is_empty()).then_some(got)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rx.at("/hook").len(), 1, "sent once");
    assert_eq!(
        rx.arrived(),
        2,
        "the cut-off try and the one that went through"
    );
    verify_signature(&hook[0]);
    assert_eq!(hook[0].json()["notifications"][0]["event"], "DOWN");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    let all = deliveries(&app).await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["state"], "SENT", "{all:?}");
}

/// A monitor that asks for it tells its channels when it turns DEGRADED (here: slower than
/// `degraded_after_ms`) and when it is UP again; one that does not ask tells nothing.
async fn a_degraded_monitor_that_asks_is_told_then_told_it_recovered(backend: Backend) {
    let target = Target::start().await;
    let rx = Receiver::start().await;
    let app = spawn_app!(backend);
    create_channel(
        &app,
        json!({"name": "hook", "kind": "WEBHOOK", "isDefault": true, "url": format!("{}/hook", rx.base), "secret": SECRET}),
    )
    .await;
    let slow = target.url("/slow/300");
    let asks = created(
        &app,
        &slow,
        json!({"name": "asks", "degraded_after_ms": 100, "notify_degraded": true}),
    )
    .await;
    let quiet = created(
        &app,
        &slow,
        json!({"name": "quiet", "degraded_after_ms": 100}),
    )
    .await;
    let (status, monitor) = app
        .json(reqwest::Method::GET, &format!("/monitors/{asks}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(monitor["notify_degraded"], true, "{monitor}");
    check_now(&app, asks).await;
    check_now(&app, quiet).await;
    let hook = rx.wait_for("/hook", 1).await;
    assert_eq!(hook.len(), 1, "only the monitor that asks");
    verify_signature(&hook[0]);
    let item = &hook[0].json()["notifications"][0];
    assert_eq!(item["event"], "DEGRADED", "{item}");
    assert_eq!(item["monitor"]["id"], asks, "{item}");
    assert!(
        item["text"].as_str().unwrap().starts_with("DEGRADED: asks"),
        "{item}"
    );
    // Still degraded: nothing more. Fast again: RECOVERED, once.
    check_now(&app, asks).await;
    let body = app
        .graphql(
            "mutation($id: ID!, $u: String!) { updateMonitor(id: $id, input: {url: $u}) { notifyDegraded } }",
            json!({"id": asks.to_string(), "u": target.url("/ok")}),
        )
        .await;
    assert_eq!(
        body["data"]["updateMonitor"]["notifyDegraded"], true,
        "{body}"
    );
    check_now(&app, asks).await;
    let hook = rx.wait_for("/hook", 2).await;
    assert_eq!(hook.len(), 2, "DEGRADED, then RECOVERED");
    let item = &hook[1].json()["notifications"][0];
    assert_eq!(item["event"], "RECOVERED", "{item}");
    assert!(item["incident_id"].is_null(), "{item}");
}

on_both_backends!(
    a_degraded_monitor_that_asks_is_told_then_told_it_recovered,
    a_message_cut_off_by_a_crash_is_sent_once_after_the_restart,
    channels_obey_the_target_policy,
    email_goes_over_smtp_with_a_text_and_an_html_part,
    one_outage_is_one_down_and_one_up_message_per_channel,
    a_failing_receiver_gets_the_message_once_it_recovers,
    bad_channel_settings_are_named,
);
