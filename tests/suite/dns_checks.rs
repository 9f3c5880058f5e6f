//! DNS monitors from outside, against a DNS server inside the test process: `dns://name` is
//! UP when the resolver answers records of the asked type, and `BODY` assertions read them;
//! NXDOMAIN, an empty answer, a failing or silent resolver are DOWN with the reason; every
//! check asks again (nothing cached); bad record types and resolvers are refused by name, and
//! the target policy holds for resolvers. Every scenario runs on SQLite and on PostgreSQL.

use std::{net::Ipv4Addr, time::Duration};

use reqwest::Method;
use serde_json::{json, Value};
use testkit::{
    dns::{
        rdata::{A, MX, TXT},
        RData,
    },
    on_both_backends, DnsServer,
};

use crate::{
    check_options::{self, create, monitor},
    common::{check_now, App, Backend, BIN},
};

async fn server() -> DnsServer {
    DnsServer::start(vec![
        ("app.test", RData::A(A(Ipv4Addr::new(10, 0, 0, 7)))),
        ("app.test", RData::A(A(Ipv4Addr::new(10, 0, 0, 8)))),
        (
            "mail.test",
            RData::MX(MX::new(10, "mx.mail.test.".parse().unwrap())),
        ),
        ("txt.test", RData::TXT(TXT::new(vec!["v=spf1 -all".into()]))),
    ])
    .await
}

/// A DNS monitor, created (inactive) and checked at once.
async fn checked(app: &App, url: &str, options: Value) -> Value {
    let id = check_options::created(app, url, options).await;
    check_now(app, id).await.0
}

fn refused(body: &Value, message: &str) {
    let error = body["error"].as_str().unwrap_or_else(|| panic!("{body}"));
    assert!(
        error.starts_with(message),
        "expected `{message}...`: {body}"
    );
}

async fn dns_monitors_resolve_and_say_why_not(backend: Backend) {
    let dns = server().await;
    let resolver = dns.addr.to_string();
    let app = spawn_app!(backend);

    let (status, body) = create(
        &app,
        monitor(
            "dns://app.test",
            json!({"dns_resolver": resolver, "assertions": [{"source": "BODY", "comparison": "CONTAINS", "target": "10.0.0.7"}]}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["kind"], "DNS");
    assert_eq!(body["dns_record_type"], "A");
    assert_eq!(body["dns_resolver"], resolver);
    let id = body["id"].as_i64().unwrap();
    let (result, _) = check_now(&app, id).await;
    assert_eq!(result["status"], "UP", "{result}");
    assert_eq!(result["status_code"], Value::Null);
    let actual = result["assertion_results"][0]["actual"].as_str().unwrap();
    assert!(
        actual.contains("10.0.0.7") && actual.contains("10.0.0.8"),
        "{result}"
    );
    assert!(result["timings"]["dns_ms"].is_i64(), "{result}");
    assert_eq!(result["timings"]["connect_ms"], Value::Null);

    // Nothing is cached: a changed answer is seen by the next check.
    dns.set("app.test", vec![RData::A(A(Ipv4Addr::new(10, 0, 0, 9)))]);
    let (result, _) = check_now(&app, id).await;
    assert_eq!(result["status"], "DOWN", "{result}");
    assert_eq!(result["assertion_results"][0]["actual"], "10.0.0.9");

    for (url, record_type, expected) in [
        ("dns://mail.test", "MX", "10 mx.mail.test."),
        ("dns://txt.test", "TXT", "v=spf1 -all"),
    ] {
        let result = checked(
            &app,
            url,
            json!({"dns_resolver": resolver, "dns_record_type": record_type,
                   "assertions": [{"source": "BODY", "comparison": "EQUALS", "target": expected}]}),
        )
        .await;
        assert_eq!(result["status"], "UP", "{url}: {result}");
    }
    for (url, record_type, error) in [
        (
            "dns://missing.test",
            "A",
            "DNS: missing.test does not exist (NXDOMAIN)",
        ),
        (
            "dns://app.test",
            "AAAA",
            "DNS: no AAAA records for app.test",
        ),
        (
            "dns://servfail.test",
            "A",
            "DNS: the resolver answered with an error: Server Failure (RCODE 2)",
        ),
    ] {
        let result = checked(
            &app,
            url,
            json!({"dns_resolver": resolver, "dns_record_type": record_type}),
        )
        .await;
        assert_eq!(result["status"], "DOWN", "{url}: {result}");
        assert_eq!(result["error"], error, "{url}: {result}");
    }
    // A resolver that never answers: DOWN within the timeout.
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let id = check_options::created(
        &app,
        "dns://app.test",
        json!({"dns_resolver": silent.local_addr().unwrap().to_string(), "timeout_seconds": 1}),
    )
    .await;
    let (result, took) = check_now(&app, id).await;
    assert_eq!(result["status"], "DOWN", "{result}");
    assert!(took < Duration::from_secs(4), "{took:?}");

    let count = app.db.count("monitors").await;
    for (body, message) in [
        (
            monitor("dns://app.test", json!({"dns_record_type": "SRV"})),
            "dns_record_type `SRV` is not one of A, AAAA, CNAME, MX, TXT, NS",
        ),
        (
            monitor(
                "dns://app.test",
                json!({"dns_resolver": "resolver.example"}),
            ),
            "dns_resolver `resolver.example` is not a resolver address",
        ),
        (
            monitor("dns://app.test", json!({"dns_resolver": "169.254.169.254"})),
            "dns_resolver points at 169.254.169.254, which is link-local",
        ),
        (
            monitor("http://127.0.0.1:9/", json!({"dns_record_type": "A"})),
            "dns_record_type is not an option of HTTP monitors",
        ),
        (
            monitor("dns://app.test", json!({"method": "POST"})),
            "method is not an option of DNS monitors",
        ),
        (
            monitor(
                "dns://app.test",
                json!({"assertions": [{"source": "STATUS_CODE", "comparison": "EQUALS", "target": "200"}]}),
            ),
            "assertions[0].source STATUS_CODE does not apply to a DNS monitor",
        ),
        (
            monitor("dns://10.0.0.1", json!({})),
            "url must be dns://name (such as dns://example.com): an address is not a name",
        ),
        (
            monitor("dns://app.test:53", json!({})),
            "url must be dns://name (such as dns://example.com), the name alone",
        ),
    ] {
        let (status, reply) = create(&app, body.clone()).await;
        assert_eq!(status, 400, "{body}: {reply}");
        refused(&reply, message);
    }
    assert_eq!(app.db.count("monitors").await, count);

    // GraphQL: the kind follows the URL; the record type is an enum.
    let made = app
        .graphql(
            "mutation($resolver: String!) { createMonitor(input: {name: \"mx\", url: \"dns://mail.test\", timeoutSeconds: 2, intervalSeconds: 3600, active: false, dnsRecordType: MX, dnsResolver: $resolver}) { id kind dnsRecordType dnsResolver } }",
            json!({"resolver": resolver}),
        )
        .await;
    assert!(made["errors"].is_null(), "{made}");
    let made = &made["data"]["createMonitor"];
    assert_eq!(made["kind"], "DNS");
    assert_eq!(made["dnsRecordType"], "MX");
    assert_eq!(made["dnsResolver"], resolver);
    let checked = app
        .graphql(
            "mutation($id: ID!) { runCheck(id: $id) { status timings { dnsMs } } }",
            json!({"id": made["id"]}),
        )
        .await;
    assert_eq!(checked["data"]["runCheck"]["status"], "UP", "{checked}");
}

async fn dns_resolvers_obey_the_target_policy(backend: Backend) {
    let dns = server().await;
    let Some(app) = App::spawn_with(BIN, backend, &[("BLOCK_PRIVATE_NETWORKS", "true")]).await
    else {
        return;
    };
    let (status, body) = create(
        &app,
        monitor(
            "dns://app.test",
            json!({"dns_resolver": dns.addr.to_string()}),
        ),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    refused(
        &body,
        "dns_resolver points at 127.0.0.1, which is loopback (BLOCK_PRIVATE_NETWORKS is on)",
    );
    let (status, _) = app.json(Method::GET, "/monitors", None).await;
    assert_eq!(status, 200);
    assert_eq!(app.db.count("monitors").await, 0);
}

on_both_backends!(
    dns_monitors_resolve_and_say_why_not,
    dns_resolvers_obey_the_target_policy,
);
