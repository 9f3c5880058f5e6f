//! An https target on 127.0.0.1: a certificate for `localhost` and `127.0.0.1` with the
//! validity asked for, signed by a CA of its own (whose PEM the checker can be told to trust)
//! or self-signed; every request gets `200 ok`.

use std::sync::Arc;

use chrono::{Datelike, Utc};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How the server's certificate is made.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    /// Days from now the certificate became valid (negative: in the past).
    pub from_days: i64,
    /// Days from now it expires.
    pub until_days: i64,
    /// Signed by the target's CA (true) or by itself.
    pub by_ca: bool,
}

/// A running https target; it stops when dropped.
pub struct TlsTarget {
    pub port: u16,
    /// The CA's certificate, PEM.
    pub ca_pem: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsTarget {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A server certificate for `localhost` and `127.0.0.1` and the CA that signed it (or did
/// not, when self-signed).
pub struct Certificates {
    /// The CA's certificate, PEM.
    pub ca_pem: String,
    /// A server configuration presenting the certificate.
    pub server: Arc<rustls::ServerConfig>,
}

impl Certificates {
    pub fn generate(validity: Validity) -> anyhow::Result<Self> {
        let day = |d: i64| {
            let at = Utc::now() + chrono::Duration::days(d);
            rcgen::date_time_ymd(at.year(), at.month() as u8, at.day() as u8)
        };
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Monitor Manager Test CA");
        let ca = ca_params.self_signed(&ca_key)?;
        let key = KeyPair::generate()?;
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.not_before = day(validity.from_days);
        params.not_after = day(validity.until_days);
        let cert = if validity.by_ca {
            params.signed_by(&key, &Issuer::from_params(&ca_params, &ca_key))?
        } else {
            params.self_signed(&key)?
        };
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )?;
        Ok(Self {
            ca_pem: ca.pem(),
            server: Arc::new(server),
        })
    }
}

impl TlsTarget {
    pub async fn start(validity: Validity) -> Self {
        let Certificates { ca_pem, server } =
            Certificates::generate(validity).expect("test certificates");
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    // Up to the end of the request head.
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = tls
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Self { port, ca_pem, task }
    }

    /// `https://localhost:PORT/`.
    pub fn url(&self) -> String {
        format!("https://localhost:{}/", self.port)
    }
}
