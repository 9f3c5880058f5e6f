//! The real JavaScript GraphQL clients of `tests/js` against the real binary, on SQLite and on
//! PostgreSQL: GraphiQL in Chromium with every request off this machine aborted, graphql-js's
//! standard introspection against `schema.graphql`, urql over GET, Apollo's persisted queries,
//! and a graphql-ws client resubscribing by itself across a server restart.
//!
//! They need `node`, `tests/js/node_modules` (`npm ci --prefix tests/js`) and, for GraphiQL,
//! `/usr/bin/chromium`; `.ci/run` installs them. Under `CI=true` a missing one is a failure,
//! elsewhere the test prints a SKIPPED line.

use std::{
    io::{BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use testkit::{in_ci, on_both_backends};

use crate::common::{App, Backend, Proc, TestDb, BIN};

/// The browser GraphiQL is driven in (Debian's package).
const CHROMIUM: &str = "/usr/bin/chromium";
/// Longest a client script may run.
const SCRIPT_LIMIT: Duration = Duration::from_secs(150);

fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("js")
}

/// Whether the scripts can run here (`browser`: GraphiQL's too). What is missing fails the
/// test under CI, naming how to install it, and skips it elsewhere.
fn clients_available(browser: bool) -> bool {
    let mut missing = Vec::new();
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|out| out.status.success()) {
        missing.push("`node` on PATH (Node.js 20 or newer: apt-get install -y nodejs npm)");
    }
    if !js_dir().join("node_modules").is_dir() {
        missing.push("tests/js/node_modules (npm ci --prefix tests/js)");
    }
    if browser && !Path::new(CHROMIUM).exists() {
        missing.push("/usr/bin/chromium (apt-get install -y --no-install-recommends chromium)");
    }
    if missing.is_empty() {
        return true;
    }
    let message = format!(
        "the JavaScript client tests need {}; .ci/run installs them",
        missing.join(", ")
    );
    if in_ci() {
        panic!("{message}");
    }
    eprintln!("SKIPPED: {message}");
    false
}

/// `node tests/js/SCRIPT ARGS`, its output piped.
fn spawn_script(script: &str, args: &[&str]) -> Child {
    Command::new("node")
        .arg(js_dir().join(script))
        .args(args)
        .current_dir(js_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start node {script}: {err}"))
}

/// Everything a stream gives until it ends, read on its own thread.
fn collect(stream: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(stream).read_to_string(&mut text);
        text
    })
}

/// Waits (at most [`SCRIPT_LIMIT`]) for a script to exit; kills it when it does not.
fn wait_for_exit(child: &mut Child, script: &str) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        if started.elapsed() > SCRIPT_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{script} did not finish within {SCRIPT_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a client script against `app` and asserts it succeeds; on failure the panic carries
/// the script's output and the server's log.
fn run_script(app: &App, script: &str) {
    let mut child = spawn_script(script, &[&app.base]);
    drop(child.stdin.take());
    let stdout = collect(child.stdout.take().expect("stdout"));
    let stderr = collect(child.stderr.take().expect("stderr"));
    let status = wait_for_exit(&mut child, script);
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    assert!(
        status.success() && stdout.contains("OK"),
        "{script} failed ({status}):\n{stderr}{stdout}\nserver log:\n{}",
        app.log()
    );
    print!("{stdout}");
}

/// A server on a fresh database, or `None` when the scenario is skipped.
async fn start(backend: Backend, browser: bool) -> Option<App> {
    if !clients_available(browser) {
        return None;
    }
    let db = TestDb::fresh(backend).await?;
    Some(App::start_on(BIN, db, &[]))
}

async fn graphiql_loads_offline_in_chromium_and_runs_queries_and_subscriptions(backend: Backend) {
    let Some(app) = start(backend, true).await else {
        return;
    };
    run_script(&app, "graphiql.mjs");
}

async fn standard_introspection_with_every_option_matches_schema_graphql(backend: Backend) {
    let Some(app) = start(backend, false).await else {
        return;
    };
    run_script(&app, "introspection.mjs");
}

async fn urql_runs_a_query_over_get(backend: Backend) {
    let Some(app) = start(backend, false).await else {
        return;
    };
    run_script(&app, "urql.mjs");
}

async fn apollo_persisted_queries_retry_with_the_query_then_run_by_hash(backend: Backend) {
    let Some(app) = start(backend, false).await else {
        return;
    };
    run_script(&app, "apollo.mjs");
}

/// GraphiQL's page and files as a browser gets them, checked without a browser (and so without
/// node or Chromium).
async fn graphiql_and_its_assets_come_from_the_binary_with_their_headers(backend: Backend) {
    let Some(db) = TestDb::fresh(backend).await else {
        return;
    };
    let app = App::start_on(BIN, db, &[]);
    let page = app
        .http
        .get(app.url("/graphql"))
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .expect("GET /graphql");
    assert_eq!(page.status(), 200);
    let header = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(header(&page, "content-type").starts_with("text/html"));
    let csp = header(&page, "content-security-policy");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self';"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("<title>Monitor Manager</title>"), "{html}");
    assert!(
        !html.contains("://"),
        "the page names no other origin: {html}"
    );
    let scripts: Vec<&str> = html
        .split("src=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert_eq!(scripts.len(), 4, "{html}");

    for (path, content_type, cache) in [
        (
            "/graphql/assets/graphiql-3.8.2.min.js",
            "text/javascript",
            "public, max-age=31536000, immutable",
        ),
        (
            "/graphql/assets/graphiql-3.8.2.min.css",
            "text/css",
            "public, max-age=31536000, immutable",
        ),
        (
            "/graphql/assets/react-18.3.1.production.min.js",
            "text/javascript",
            "public, max-age=31536000, immutable",
        ),
        ("/graphql/assets/start.js", "text/javascript", "no-cache"),
        (
            "/graphql/assets/LICENSE-graphiql.txt",
            "text/plain",
            "no-cache",
        ),
    ] {
        let response = app.http.get(app.url(path)).send().await.expect(path);
        assert_eq!(response.status(), 200, "{path}");
        assert!(
            header(&response, "content-type").starts_with(content_type),
            "{path}: {}",
            header(&response, "content-type")
        );
        assert_eq!(header(&response, "cache-control"), cache, "{path}");
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        assert!(!response.bytes().await.unwrap().is_empty(), "{path}");
    }
    // Gzipped for clients that accept it, as published for the others.
    let path = "/graphql/assets/graphiql-3.8.2.min.js";
    let plain = app.http.get(app.url(path)).send().await.expect(path);
    assert_eq!(header(&plain, "vary"), "accept-encoding");
    assert_eq!(header(&plain, "content-encoding"), "");
    let plain = plain.bytes().await.unwrap();
    let gzipped = app
        .http
        .get(app.url(path))
        .header("accept-encoding", "gzip, deflate, br")
        .send()
        .await
        .expect(path);
    assert_eq!(header(&gzipped, "content-encoding"), "gzip");
    assert_eq!(header(&gzipped, "vary"), "accept-encoding");
    let gzipped = gzipped.bytes().await.unwrap();
    assert!(gzipped.starts_with(&[0x1f, 0x8b]) && gzipped.len() < plain.len() / 3);

    for script in scripts {
        let response = app.http.get(app.url(script)).send().await.expect(script);
        assert_eq!(response.status(), 200, "the page's {script}");
    }

    for unknown in [
        "/graphql/assets/nope.js",
        "/graphql/assets/..%2FCargo.toml",
        "/graphql/assets/graphiql-3.8.1.min.js",
    ] {
        let (status, body) = app.json(reqwest::Method::GET, unknown, None).await;
        assert_eq!(status, 404, "{unknown}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}"
        );
    }
}

/// Sends SIGTERM to a server and waits (up to 15 s) for it to exit.
fn terminate(server: &mut Proc) {
    let _ = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(15) {
        if let Ok(Some(_)) = server.child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "monitor-manager did not exit within 15 s of SIGTERM; its log:\n{}",
        server.log()
    );
}

async fn a_graphql_ws_client_resubscribes_by_itself_after_a_restart(backend: Backend) {
    if !clients_available(false) {
        return;
    }
    let Some(db) = TestDb::fresh(backend).await else {
        return;
    };
    let script = "graphql-ws-restart.mjs";
    let mut server = Proc::launch(BIN, &db.url, &[], &[], "listening on ");
    let base = server.base();
    let port = base.rsplit(':').next().expect("a port").to_owned();

    let mut child = spawn_script(script, &[&base]);
    let mut stdin = child.stdin.take().expect("stdin");
    let stderr = collect(child.stderr.take().expect("stderr"));
    let (lines_tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut output = Vec::new();
    let subscribed = loop {
        match lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                let done = line == "SUBSCRIBED";
                output.push(line);
                if done {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    if !subscribed {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "{script} never got its first event:\n{}{}\nserver log:\n{}",
            stderr.join().unwrap(),
            output.join("\n"),
            server.log()
        );
    }

    // The same port and database, so the client's own retries find the new server.
    terminate(&mut server);
    let first_log = server.log();
    let server = Proc::launch(BIN, &db.url, &[], &[("PORT", &port)], "listening on ");
    assert_eq!(
        server.base(),
        base,
        "the restarted server took another port"
    );
    // A script that already failed has closed its stdin; its output says why, below.
    let _ = writeln!(stdin, "RESTARTED");

    let status = wait_for_exit(&mut child, script);
    // The reader thread ends at the script's end of output, which ends this loop.
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(5)) {
        output.push(line);
    }
    let output = output.join("\n");
    assert!(
        status.success() && output.contains("OK"),
        "{script} failed ({status}):\n{}{output}\nlog before the restart:\n{first_log}\nlog after:\n{}",
        stderr.join().unwrap(),
        server.log()
    );
    println!("{output}");
}

on_both_backends!(
    graphiql_and_its_assets_come_from_the_binary_with_their_headers,
    graphiql_loads_offline_in_chromium_and_runs_queries_and_subscriptions,
    standard_introspection_with_every_option_matches_schema_graphql,
    urql_runs_a_query_over_get,
    apollo_persisted_queries_retry_with_the_query_then_run_by_hash,
    a_graphql_ws_client_resubscribes_by_itself_after_a_restart,
);
