//! The checker's TLS: one client configuration that verifies certificates (the Mozilla roots
//! of `webpki-roots`, plus any extra roots the operator gives), one that accepts any
//! certificate (for monitors that ignore TLS errors), and the peer certificate read into a
//! [`TlsInfo`].

use std::{
    path::Path,
    sync::{Arc, Mutex, PoisonError},
};

use chrono::{DateTime, Utc};
use domain::TlsInfo;
use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{ring, CryptoProvider},
    pki_types::{pem::PemObject, CertificateDer, ServerName, UnixTime},
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// The client configurations: verifying or not, for HTTP (ALPN `http/1.1`) or for a bare TLS
/// connection (no ALPN, as a TLS service that is not a web server expects).
#[derive(Clone)]
pub(super) struct TlsConfigs {
    pub verify: Arc<ClientConfig>,
    pub trust_all: Arc<ClientConfig>,
    pub raw_verify: Arc<ClientConfig>,
    pub raw_trust_all: Arc<ClientConfig>,
}

impl TlsConfigs {
    /// The configurations, with the certificates of the PEM file `extra_roots` trusted too.
    pub fn new(extra_roots: Option<&Path>) -> anyhow::Result<Self> {
        let provider = Arc::new(ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = extra_roots {
            let mut added = 0;
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| {
                anyhow::anyhow!("CHECK_CA_FILE {}: cannot be read ({e})", path.display())
            })? {
                let cert = cert.map_err(|e| {
                    anyhow::anyhow!(
                        "CHECK_CA_FILE {}: not a PEM certificate ({e})",
                        path.display()
                    )
                })?;
                roots.add(cert).map_err(|e| {
                    anyhow::anyhow!(
                        "CHECK_CA_FILE {}: a certificate is unusable ({e})",
                        path.display()
                    )
                })?;
                added += 1;
            }
            if added == 0 {
                anyhow::bail!("CHECK_CA_FILE {}: holds no certificate", path.display());
            }
        }
        let verify = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let trust_all = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth();
        Ok(Self {
            raw_verify: Arc::new(fresh(verify.clone())),
            raw_trust_all: Arc::new(fresh(trust_all.clone())),
            verify: Arc::new(with_http1(verify)),
            trust_all: Arc::new(with_http1(trust_all)),
        })
    }
}

/// HTTP/1.1 only, and [`fresh`].
fn with_http1(config: ClientConfig) -> ClientConfig {
    let mut config = fresh(config);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// No session resumption: every check is a full handshake, so it verifies and reports the
/// certificate the server presents now (a resumed session would skip both).
fn fresh(mut config: ClientConfig) -> ClientConfig {
    config.resumption = rustls::client::Resumption::disabled();
    config
}

/// Accepts any certificate, still checking the handshake's signatures with it.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The server's certificate as a [`TlsInfo`], its days left counted from `now`.
pub(super) fn certificate_info(der: &[u8], now: DateTime<Utc>) -> Option<TlsInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let not_after = DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0)?;
    Some(TlsInfo {
        subject: bounded(cert.subject().to_string()),
        issuer: bounded(cert.issuer().to_string()),
        not_after,
        days_left: days_left(not_after, now),
    })
}

fn days_left(not_after: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    (not_after - now).num_seconds().div_euclid(86_400)
}

/// A monitor's last certificate, read: a server presenting the same certificate again (the
/// usual case) is not parsed again, only its days left counted anew.
#[derive(Debug, Default)]
pub(super) struct CertCache(Mutex<Option<Box<Seen>>>);

/// A certificate as served (DER) and as read.
type Seen = (Box<[u8]>, TlsInfo);

impl CertCache {
    pub fn info(&self, der: &[u8], now: DateTime<Utc>) -> Option<TlsInfo> {
        let mut cached = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((seen, info)) = cached.as_deref() {
            if **seen == *der {
                let mut info = info.clone();
                info.days_left = days_left(info.not_after, now);
                return Some(info);
            }
        }
        let info = certificate_info(der, now)?;
        *cached = Some(Box::new((der.into(), info.clone())));
        Some(info)
    }
}

fn bounded(text: String) -> String {
    if text.chars().count() <= 300 {
        text
    } else {
        text.chars().take(300).collect()
    }
}

/// A short reason for a failed handshake.
pub(super) fn describe(err: &rustls::Error) -> String {
    use rustls::{CertificateError as C, Error as E};
    match err {
        E::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "TLS failure: certificate expired".to_owned()
        }
        E::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
            "TLS failure: certificate not valid yet".to_owned()
        }
        E::InvalidCertificate(C::UnknownIssuer) => {
            "TLS failure: certificate not trusted (unknown issuer or self-signed)".to_owned()
        }
        E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            "TLS failure: certificate is not valid for this host name".to_owned()
        }
        E::InvalidCertificate(C::Revoked) => "TLS failure: certificate revoked".to_owned(),
        other => format!("TLS failure: {other}"),
    }
}
