//! The checker against a local server: paths, redirects, credentials, options, phases.

use std::sync::{Arc, Mutex};

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode as Code},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};

use super::*;

type Seen = Arc<Mutex<Vec<(String, Option<String>, Option<String>)>>>;

/// A server on 127.0.0.1 that records each request's path and query, Host and
/// Authorization, and answers by route.
async fn serve() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let record = |seen: &Seen, path: String, headers: &HeaderMap| {
        let value = |name| {
            headers
                .get(name)
                .map(|v: &HeaderValue| v.to_str().unwrap().to_owned())
        };
        seen.lock()
            .unwrap()
            .push((path, value(HOST), value(http::header::AUTHORIZATION)));
    };
    let app = Router::new()
        .route(
            "/hop/{n}",
            get(
                move |State(seen): State<Seen>, Path(n): Path<u32>, headers: HeaderMap| async move {
                    record(&seen, format!("/hop/{n}"), &headers);
                    if n == 0 {
                        return Code::OK.into_response();
                    }
                    // Relative, as many servers send it.
                    redirect(Code::FOUND, &format!("{}", n - 1))
                },
            ),
        )
        .route(
            "/private",
            get(
                move |State(seen): State<Seen>, headers: HeaderMap| async move {
                    record(&seen, "/private".into(), &headers);
                    // "user:pa ss" in base64.
                    let authorized = headers
                        .get(http::header::AUTHORIZATION)
                        .is_some_and(|v| v == "Basic dXNlcjpwYSBzcw==");
                    if authorized { Code::OK } else { Code::UNAUTHORIZED }
                },
            ),
        )
        .route(
            "/echo",
            get(
                move |State(seen): State<Seen>,
                      uri: axum::http::Uri,
                      headers: HeaderMap| async move {
                    record(&seen, uri.to_string(), &headers);
                    Code::NO_CONTENT
                },
            ),
        )
        .route("/to-ftp", get(|| async { redirect(Code::MOVED_PERMANENTLY, "ftp://127.0.0.1/x") }))
        .route("/choices", get(|| async { redirect(Code::MULTIPLE_CHOICES, "/hop/0") }))
        .route("/no-location", get(|| async { Code::FOUND }))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, seen)
}

fn redirect(code: Code, to: &str) -> Response {
    (code, [(http::header::LOCATION, to.to_owned())]).into_response()
}

fn check_of(
    status: CheckStatus,
    code: Option<u16>,
    error: Option<&str>,
) -> (CheckStatus, Option<u16>, Option<String>) {
    (status, code, error.map(str::to_owned))
}

async fn run(url: &str) -> (CheckStatus, Option<u16>, Option<String>) {
    let outcome = Checker::new(&CheckerSettings::default())
        .unwrap()
        .check(url, None, Duration::from_secs(5))
        .await;
    (outcome.status, outcome.status_code, outcome.error)
}

#[tokio::test]
async fn a_plain_check_sends_the_path_query_and_host_with_its_port() {
    let (base, seen) = serve().await;
    let found = run(&format!("{base}/echo?a=1&b=%20x")).await;
    assert_eq!(found, check_of(CheckStatus::Up, Some(204), None));
    let host = base.trim_start_matches("http://").to_owned();
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        &[("/echo?a=1&b=%20x".to_owned(), Some(host), None)]
    );
}

#[tokio::test]
async fn relative_redirects_are_followed_up_to_the_limit_and_no_further() {
    let (base, seen) = serve().await;
    let found = run(&format!("{base}/hop/{MAX_REDIRECTS}")).await;
    assert_eq!(found, check_of(CheckStatus::Up, Some(200), None));
    assert_eq!(seen.lock().unwrap().len(), usize::from(MAX_REDIRECTS) + 1);
    assert_eq!(seen.lock().unwrap().last().unwrap().0, "/hop/0");

    seen.lock().unwrap().clear();
    let found = run(&format!("{base}/hop/{}", MAX_REDIRECTS + 1)).await;
    assert_eq!(
        found,
        check_of(
            CheckStatus::Down,
            None,
            Some("too many redirects (more than 10)")
        )
    );
    assert_eq!(seen.lock().unwrap().len(), usize::from(MAX_REDIRECTS) + 1);
}

#[tokio::test]
async fn credentials_in_the_url_are_sent_as_basic_auth() {
    let (base, seen) = serve().await;
    let with = base.replace("http://", "http://user:pa%20ss@");
    let found = run(&format!("{with}/private")).await;
    assert_eq!(found, check_of(CheckStatus::Up, Some(200), None));
    let found = run(&format!("{base}/private")).await;
    assert_eq!(
        found,
        check_of(CheckStatus::Down, Some(401), Some("HTTP status 401"))
    );
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn redirects_that_cannot_be_followed() {
    let (base, seen) = serve().await;
    assert_eq!(
        run(&format!("{base}/to-ftp")).await,
        check_of(
            CheckStatus::Down,
            None,
            Some("redirected to an unsupported URL scheme `ftp`")
        )
    );
    // A 300 is an answer, not an instruction; so is a 302 without a Location. Neither is
    // in the default accepted range (200-299).
    assert_eq!(
        run(&format!("{base}/choices")).await,
        check_of(CheckStatus::Down, Some(300), Some("HTTP status 300"))
    );
    assert_eq!(
        run(&format!("{base}/no-location")).await,
        check_of(CheckStatus::Down, Some(302), Some("HTTP status 302"))
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "the redirect was not followed"
    );
}

#[test]
fn sanitize_removes_control_characters_and_bounds_length() {
    assert_eq!(sanitize("a\0b\nc"), "a b c");
    let long = "x".repeat(1000);
    assert_eq!(sanitize(&long).chars().count(), MAX_ERROR_CHARS);
}

/// An https server on 127.0.0.1 with a certificate for `localhost` valid from `from` to
/// `until` days from now, issued by a CA of its own; returns its port and the CA's PEM.
async fn serve_tls(from: i64, until: i64) -> (u16, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let day = |d: i64| {
        let at = time_at(d);
        rcgen::date_time_ymd(at.0, at.1, at.2)
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    params.not_before = day(from);
    params.not_after = day(until);
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = [0u8; 4096];
                    let _ = tls.read(&mut buf).await;
                    let _ = tls
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    (port, ca.pem())
}

fn time_at(days: i64) -> (i32, u8, u8) {
    use chrono::Datelike;
    let at = Utc::now() + chrono::Duration::days(days);
    (at.year(), at.month() as u8, at.day() as u8)
}

fn spec_of(input: domain::SpecInput) -> CheckSpec {
    CheckSpec::parse(input, None).unwrap().unwrap()
}

#[tokio::test]
async fn https_is_timed_by_phase_and_its_certificate_read_or_refused() {
    let (port, ca) = serve_tls(-10, 20).await;
    let url = format!("https://localhost:{port}/");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let trusting = Checker::new(&CheckerSettings {
        ca_file: Some(ca_file),
        ..Default::default()
    })
    .unwrap();
    let outcome = trusting.check(&url, None, Duration::from_secs(5)).await;
    assert_eq!(outcome.status, CheckStatus::Up, "{outcome:?}");
    let tls = outcome.tls.expect("certificate read");
    assert!((19..=20).contains(&tls.days_left), "{tls:?}");
    assert!(
        tls.subject.contains("localhost") && tls.issuer.contains("Test CA"),
        "{tls:?}"
    );
    let t = outcome.timings;
    assert!(
        t.dns_ms.is_some()
            && t.connect_ms.is_some()
            && t.tls_ms.is_some()
            && t.first_byte_ms.is_some(),
        "{t:?}"
    );
    let phases =
        t.dns_ms.unwrap() + t.connect_ms.unwrap() + t.tls_ms.unwrap() + t.first_byte_ms.unwrap();
    assert!(phases <= t.total_ms, "{t:?}");

    // Without the CA: untrusted, DOWN, unless TLS errors are ignored.
    let plain = Checker::new(&CheckerSettings::default()).unwrap();
    let outcome = plain.check(&url, None, Duration::from_secs(5)).await;
    assert_eq!(outcome.status, CheckStatus::Down);
    assert_eq!(
        outcome.error.as_deref(),
        Some("TLS failure: certificate not trusted (unknown issuer or self-signed)")
    );
    let ignoring = spec_of(domain::SpecInput {
        ignore_tls: Some(true),
        ..Default::default()
    });
    let outcome = plain
        .check(&url, Some(&ignoring), Duration::from_secs(5))
        .await;
    assert_eq!(outcome.status, CheckStatus::Up, "{outcome:?}");
    assert!(outcome.tls.is_some());
}

#[tokio::test]
async fn an_expired_certificate_is_down_and_says_so() {
    let (port, ca) = serve_tls(-30, -2).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let checker = Checker::new(&CheckerSettings {
        ca_file: Some(ca_file),
        ..Default::default()
    })
    .unwrap();
    let url = format!("https://localhost:{port}/");
    let outcome = checker.check(&url, None, Duration::from_secs(5)).await;
    assert_eq!(
        outcome.error.as_deref(),
        Some("TLS failure: certificate expired")
    );
    // Ignoring TLS errors, the days left are still known, and an assertion can hold them.
    let spec = spec_of(domain::SpecInput {
        ignore_tls: Some(true),
        assertions: Some(vec![domain::spec::AssertionInput {
            source: "CERT_EXPIRES_IN_DAYS".into(),
            comparison: "GREATER_THAN".into(),
            target: Some("7".into()),
            ..Default::default()
        }]),
        ..Default::default()
    });
    let outcome = checker
        .check(&url, Some(&spec), Duration::from_secs(5))
        .await;
    assert_eq!(outcome.status, CheckStatus::Down);
    assert!(!outcome.assertion_results[0].passed);
    assert!(outcome.assertion_results[0]
        .actual
        .as_deref()
        .unwrap()
        .starts_with('-'));
}

#[tokio::test]
async fn blocked_addresses_are_never_connected_to() {
    let (base, seen) = serve().await;
    let strict = Checker::new(&CheckerSettings {
        policy: domain::TargetPolicy {
            block_private: true,
            allowed: Vec::new(),
        },
        ..Default::default()
    })
    .unwrap();
    let port = base.rsplit(':').next().unwrap();
    for url in [
        format!("{base}/hop/0"),
        format!("http://localhost:{port}/hop/0"),
        format!("http://2130706433:{port}/hop/0"),
    ] {
        let outcome = strict.check(&url, None, Duration::from_secs(5)).await;
        assert_eq!(outcome.status, CheckStatus::Down);
        let error = outcome.error.unwrap();
        assert!(
            error.starts_with("blocked by the target policy: 127.0.0.1 is loopback"),
            "{url}: {error}"
        );
    }
    assert!(seen.lock().unwrap().is_empty());
}
