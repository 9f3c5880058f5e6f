//! The machine's yardstick (`bench reference`): what a bare client costs on this machine, so
//! figures taken on different virtual machines can be compared.
//!
//! The issue that set the targets measured a bare Rust client making about 40,000 GETs per
//! second with a fresh connection each (about 0.025 ms of CPU each) and 220,000 with
//! keep-alive. The CPU a check costs the service is mostly the same kernel work (connect,
//! accept on the other side of loopback, send, receive, reset), and it moves by a factor of
//! two between the VMs this project has been measured on. This subcommand runs the same kind
//! of client here, against the benchmark's own target process:
//!
//! - **fresh connection**: connect, send `GET /m/0` with `Connection: close`, read the
//!   response head, close with a reset (as the service's checks do), again;
//! - **keep-alive**: one connection per client loop, requests one after the other.
//!
//! `--check body` makes the client search each body for `ok`, as a body assertion does (with
//! `--body-bytes` for a bigger page); `--check https` speaks TLS (rustls with ring, as the
//! service does) with a full handshake on every fresh connection: no session resumption,
//! the certificate verified against the target's CA.
//!
//! The client is one thread (a single-threaded tokio runtime) running `--clients` loops at
//! once; its CPU is that thread's own (`getrusage(RUSAGE_THREAD)`), so the target's and the
//! bench's other threads are not in it. The rate is what the client and the one-thread
//! target reach together on the machine's cores.

#![allow(unsafe_code)] // getrusage, with its SAFETY comment.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};
use tokio_rustls::{
    rustls::{self, pki_types::pem::PemObject as _},
    TlsConnector,
};

use crate::{
    api::CheckProfile,
    procs::{self, TargetProcess},
    target,
};

/// What the client does besides the GET.
#[derive(Clone, Copy)]
pub struct Work {
    pub check: CheckProfile,
    pub body_bytes: usize,
}

/// What one mode measured.
pub struct Measured {
    pub requests: u64,
    pub elapsed: Duration,
    /// CPU of the client's thread.
    pub client_cpu: Duration,
    /// CPU of the target's process.
    pub target_cpu: Duration,
}

impl Measured {
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn client_ms_per_request(&self) -> f64 {
        self.client_cpu.as_secs_f64() * 1000.0 / (self.requests.max(1) as f64)
    }

    pub fn target_ms_per_request(&self) -> f64 {
        self.target_cpu.as_secs_f64() * 1000.0 / (self.requests.max(1) as f64)
    }
}

/// Runs both modes for `duration` each and returns the report's rows.
pub async fn run(
    duration: Duration,
    clients: usize,
    work: Work,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut rows = Vec::new();
    for keep_alive in [false, true] {
        // A TCP check is a connection and nothing else: no keep-alive mode.
        if keep_alive && work.check == CheckProfile::Tcp {
            continue;
        }
        let mode = if keep_alive {
            "keep-alive"
        } else {
            "fresh connection each"
        };
        eprintln!(
            "bench: reference, {mode}, {clients} at once, {} s",
            duration.as_secs()
        );
        let m = measure(keep_alive, duration, clients, work).await?;
        rows.push((
            format!("bare client, {mode}: GETs/s"),
            format!(
                "{:.0} ({} in {:.1} s, {clients} at once)",
                m.rate(),
                m.requests,
                m.elapsed.as_secs_f64()
            ),
        ));
        rows.push((
            format!("bare client, {mode}: client CPU per GET"),
            format!(
                "{:.4} ms (target: {:.4} ms per GET)",
                m.client_ms_per_request(),
                m.target_ms_per_request()
            ),
        ));
    }
    Ok(rows)
}

/// One mode against a target of its own.
async fn measure(
    keep_alive: bool,
    duration: Duration,
    clients: usize,
    work: Work,
) -> anyhow::Result<Measured> {
    let dir = tempfile::tempdir().context("cannot make a temporary directory")?;
    let ca_file = dir.path().join("target-ca.pem");
    let https = work.check == CheckProfile::Https;
    let target = TargetProcess::start(&target::Options {
        keep_alive,
        tls_ca: https.then(|| ca_file.clone()),
        body_bytes: work.body_bytes,
        tcp_ports: 0,
        dns: false,
    })
    .await?;
    let tls = if https {
        Some(connector(&ca_file)?)
    } else {
        None
    };
    let client = Client {
        addr: SocketAddr::from(([127, 0, 0, 1], target.port)),
        keep_alive,
        search: work.check == CheckProfile::Body,
        connect_only: work.check == CheckProfile::Tcp,
        tls,
    };
    let target_pid = target.pid().context("the target has no process id")?;
    let target_before = procs::cpu_time(target_pid)?;
    let client = std::thread::Builder::new()
        .name("reference-client".into())
        .spawn(move || client_thread(client, duration, clients))
        .context("cannot start the client thread")?;
    let (requests, elapsed, client_cpu) = tokio::task::spawn_blocking(move || client.join())
        .await
        .context("the client thread was lost")?
        .map_err(|_| anyhow::anyhow!("the client thread panicked"))??;
    let target_cpu = procs::cpu_time(target_pid)?.saturating_sub(target_before);
    drop(target);
    Ok(Measured {
        requests,
        elapsed,
        client_cpu,
        target_cpu,
    })
}

/// The client: `clients` loops on one single-threaded runtime for `duration`. Returns the
/// requests answered, the time taken and the thread's CPU.
fn client_thread(
    client: Client,
    duration: Duration,
    clients: usize,
) -> anyhow::Result<(u64, Duration, Duration)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the client's runtime")?;
    runtime.block_on(async move {
        let cpu_before = thread_cpu()?;
        let started = Instant::now();
        let deadline = started + duration;
        let loops: Vec<_> = (0..clients.max(1))
            .map(|_| tokio::spawn(client.clone().run(deadline)))
            .collect();
        let mut requests = 0;
        for handle in loops {
            requests += handle.await.context("a client loop failed")??;
        }
        let elapsed = started.elapsed();
        let cpu = thread_cpu()?.saturating_sub(cpu_before);
        Ok((requests, elapsed, cpu))
    })
}

const FRESH: &[u8] = b"GET /m/0 HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n";
const KEEP: &[u8] = b"GET /m/0 HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n";

/// A client TLS configuration trusting the target's CA (and nothing else), with no session
/// resumption, so every fresh connection is a full handshake.
fn connector(ca_file: &std::path::Path) -> anyhow::Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca_file)? {
        roots.add(cert?)?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    Ok(TlsConnector::from(std::sync::Arc::new(config)))
}

#[derive(Clone)]
struct Client {
    addr: SocketAddr,
    keep_alive: bool,
    /// Search each body for `ok`.
    search: bool,
    /// Only connect and close (a TCP check), sending no request.
    connect_only: bool,
    tls: Option<TlsConnector>,
}

impl Client {
    async fn run(self, deadline: Instant) -> anyhow::Result<u64> {
        let mut buf = Vec::with_capacity(512);
        let mut done = 0;
        if self.keep_alive {
            match &self.tls {
                Some(tls) => {
                    let mut stream = self.handshake(tls, self.connect().await?).await?;
                    while Instant::now() < deadline {
                        self.exchange(&mut stream, KEEP, &mut buf).await?;
                        done += 1;
                    }
                }
                None => {
                    let mut stream = self.connect().await?;
                    while Instant::now() < deadline {
                        self.exchange(&mut stream, KEEP, &mut buf).await?;
                        done += 1;
                    }
                }
            }
            return Ok(done);
        }
        while Instant::now() < deadline {
            let tcp = self.connect().await?;
            // Close with a reset once the answer is in, as the service's checks do (no
            // TIME_WAIT left behind, so a long run does not run out of ports).
            tcp.set_zero_linger()?;
            if self.connect_only {
                drop(tcp);
                done += 1;
                continue;
            }
            match &self.tls {
                Some(tls) => {
                    let mut stream = self.handshake(tls, tcp).await?;
                    self.exchange(&mut stream, FRESH, &mut buf).await?;
                }
                None => {
                    let mut stream = tcp;
                    self.exchange(&mut stream, FRESH, &mut buf).await?;
                }
            }
            done += 1;
        }
        Ok(done)
    }

    async fn connect(&self) -> anyhow::Result<TcpStream> {
        let stream = TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("cannot connect to the target at {}", self.addr))?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    async fn handshake(
        &self,
        tls: &TlsConnector,
        tcp: TcpStream,
    ) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let name = rustls::pki_types::ServerName::IpAddress(self.addr.ip().into());
        tls.connect(name, tcp)
            .await
            .context("TLS handshake with the target failed")
    }

    async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        request: &[u8],
        buf: &mut Vec<u8>,
    ) -> anyhow::Result<()> {
        stream.write_all(request).await?;
        let head_len = read_response(stream, buf).await?;
        if self.search {
            anyhow::ensure!(
                buf[head_len..].windows(2).any(|w| w == b"ok"),
                "the body has no `ok`"
            );
        }
        Ok(())
    }
}

/// Reads one response: its head and a `content-length` body. Returns the head's length.
async fn read_response<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> anyhow::Result<usize> {
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(head) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head_len = head + 4;
            let body = content_length(&buf[..head_len]);
            if buf.len() >= head_len + body {
                return Ok(head_len);
            }
        }
        let read = stream.read(&mut chunk).await?;
        anyhow::ensure!(read > 0, "the target closed the connection mid-response");
        buf.extend_from_slice(&chunk[..read]);
    }
}

fn content_length(head: &[u8]) -> usize {
    let text = String::from_utf8_lossy(head);
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0)
}

/// CPU (user + system) of the calling thread.
fn thread_cpu() -> anyhow::Result<Duration> {
    // SAFETY: an all-zero `rusage` is a valid value, and getrusage only writes into it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    anyhow::ensure!(
        rc == 0,
        "getrusage failed: {}",
        std::io::Error::last_os_error()
    );
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Ok(Duration::from_micros(
        micros(usage.ru_utime) + micros(usage.ru_stime),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_is_read_from_the_head_whatever_its_case() {
        assert_eq!(
            content_length(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"),
            2
        );
        assert_eq!(
            content_length(b"HTTP/1.1 200 OK\r\ncontent-length:17\r\n\r\n"),
            17
        );
        assert_eq!(content_length(b"HTTP/1.1 204 No Content\r\n\r\n"), 0);
    }
}
