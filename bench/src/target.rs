//! The target: a minimal HTTP/1.1 server the monitors point at, run in its own process
//! (`bench target`), so its CPU is not the service's nor the bench's.
//!
//! `GET /m/{n}` answers `200` with the body `ok` (or, with `--body-bytes N`, a page of N bytes
//! ending in `ok`) and records the arrival time (unix epoch microseconds, taken when the
//! request head has been read) under monitor number `n`. By default every response carries
//! `Connection: close` and the connection is closed after it; `--keep-alive` keeps
//! connections open for further requests. With `--tls-ca FILE` it speaks https with a
//! certificate for 127.0.0.1 signed by a CA of its own, whose PEM it writes to FILE (and
//! plain HTTP still, to a client whose first byte opens no TLS record).
//!
//! With `--tcp-ports N` it also listens on N more ports, one per monitor of a TCP scenario:
//! a connection to the n-th (numbered from 1) is an arrival of monitor n, closed at once
//! (a TCP check sends no request). `GET /__ports` lists those ports, space-separated.
//!
//! With `--dns` it also answers DNS queries over UDP: `m{n}.bench.test` gets an A record
//! (10.0.0.1) and is an arrival of monitor n. `GET /__dns` gives that port.
//!
//! `GET /__arrivals?from=K` returns the arrivals recorded from the K-th on, one
//! `n micros` line each, in the order they were recorded; `GET /__distinct` how many
//! monitors have been checked at least once. The process exits when its standard
//! input closes, so it never outlives the bench, even one that was killed.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::Context as _;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpSocket},
};
use tokio_rustls::TlsAcceptor;

/// Largest request head the target reads.
const MAX_HEAD: usize = 16 * 1024;
/// How long a connection may sit without sending a complete request.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections the kernel queues for the target before it accepts them (capped by
/// `net.core.somaxconn`, 4096 by default).
const ACCEPT_BACKLOG: u32 = 4096;

/// The line the target prints on stdout once it listens; the port follows it.
pub const READY_PREFIX: &str = "target listening on 127.0.0.1:";

/// Recorded arrivals: (monitor number, unix micros), in recording order, and which monitor
/// numbers have been seen.
#[derive(Default)]
struct Arrivals(Mutex<Recorded>);

#[derive(Default)]
struct Recorded {
    list: Vec<(u32, i64)>,
    seen: Vec<bool>,
    distinct: usize,
    /// The TCP scenario's ports, monitor 1 first.
    ports: Vec<u16>,
    /// The DNS scenario's port (UDP).
    dns_port: Option<u16>,
}

impl Recorded {
    fn record(&mut self, n: u32, at: i64) {
        self.list.push((n, at));
        let index = n as usize;
        if index >= self.seen.len() {
            self.seen.resize(index + 1, false);
        }
        if !std::mem::replace(&mut self.seen[index], true) {
            self.distinct += 1;
        }
    }
}

/// How the target answers.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub keep_alive: bool,
    /// Speak https, writing the CA's PEM here.
    pub tls_ca: Option<std::path::PathBuf>,
    /// Size of the `/m/{n}` body (at least 2: `ok`).
    pub body_bytes: usize,
    /// Ports to listen on for a TCP scenario, one per monitor.
    pub tcp_ports: usize,
    /// Answer DNS queries (a DNS scenario).
    pub dns: bool,
}

/// The body of `/m/{n}`: `body_bytes` bytes of a page whose last two are `ok`.
pub fn page(body_bytes: usize) -> Vec<u8> {
    let filler = b"<p>all systems nominal</p>\n";
    let mut body: Vec<u8> = filler
        .iter()
        .copied()
        .cycle()
        .take(body_bytes.saturating_sub(2))
        .collect();
    body.extend_from_slice(b"ok");
    body
}

/// Runs the target until stdin closes. Blocks the calling thread.
pub fn main(port: u16, options: Options) -> anyhow::Result<()> {
    let acceptor = match &options.tls_ca {
        Some(path) => {
            let certs = testkit::Certificates::generate(testkit::Validity {
                from_days: -1,
                until_days: 90,
                by_ca: true,
            })?;
            std::fs::write(path, &certs.ca_pem)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Some(TlsAcceptor::from(certs.server))
        }
        None => None,
    };
    let page = Arc::new(page(options.body_bytes));
    let keep_alive = options.keep_alive;
    // One thread: the target is cheap and must leave the cores to the service.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the target's runtime")?;
    runtime.block_on(async move {
        // A deep accept queue: at 10,000 connections/s a 100 ms stall of this thread must not
        // overflow it (an overflow drops the SYN and the check waits a second to retry).
        let socket = TcpSocket::new_v4().context("target cannot open a socket")?;
        socket.set_reuseaddr(true)?;
        socket
            .bind((std::net::Ipv4Addr::LOCALHOST, port).into())
            .context("target cannot listen")?;
        let listener = socket
            .listen(ACCEPT_BACKLOG)
            .context("target cannot listen")?;
        let port = listener.local_addr()?.port();
        let arrivals = Arc::new(Arrivals::default());
        for n in 1..=options.tcp_ports {
            let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
                .await
                .context("target cannot listen on a TCP scenario's port")?;
            lock(&arrivals).ports.push(listener.local_addr()?.port());
            tokio::spawn(tcp_accept_loop(listener, arrivals.clone(), n as u32));
        }
        if options.dns {
            let socket = tokio::net::UdpSocket::bind((std::net::Ipv4Addr::LOCALHOST, 0))
                .await
                .context("target cannot open its DNS port")?;
            lock(&arrivals).dns_port = Some(socket.local_addr()?.port());
            tokio::spawn(dns_loop(socket, arrivals.clone()));
        }
        println!("{READY_PREFIX}{port}");
        tokio::select! {
            _ = accept_loop(listener, arrivals, keep_alive, acceptor, page) => {}
            _ = stdin_closed() => {}
        }
        Ok(())
    })
}

async fn stdin_closed() {
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    loop {
        match stdin.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn lock(arrivals: &Arrivals) -> std::sync::MutexGuard<'_, Recorded> {
    arrivals.0.lock().unwrap_or_else(|e| e.into_inner())
}

/// A TCP scenario's port of monitor `n`: every connection is an arrival, closed at once.
async fn tcp_accept_loop(listener: TcpListener, arrivals: Arc<Arrivals>, n: u32) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                lock(&arrivals).record(n, unix_micros());
                drop(stream);
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

/// A DNS scenario's server: `m{n}.bench.test` answers 10.0.0.1 and is an arrival of n; any
/// other name is NXDOMAIN.
async fn dns_loop(socket: tokio::net::UdpSocket, arrivals: Arc<Arrivals>) {
    use hickory_proto::{
        op::{Message, MessageType, ResponseCode},
        rr::{rdata::A, RData, Record},
        serialize::binary::{BinDecodable, BinEncodable},
    };
    let mut buf = vec![0u8; 2048];
    while let Ok((len, from)) = socket.recv_from(&mut buf).await {
        let received = unix_micros();
        let Ok(query) = Message::from_bytes(&buf[..len]) else {
            continue;
        };
        let mut answer = Message::new();
        answer
            .set_id(query.id())
            .set_message_type(MessageType::Response)
            .set_authoritative(true)
            .set_recursion_desired(query.recursion_desired());
        answer.add_queries(query.queries().to_vec());
        for q in query.queries() {
            let name = q.name().to_ascii().to_ascii_lowercase();
            let n = name
                .strip_prefix('m')
                .and_then(|rest| rest.strip_suffix(".bench.test."))
                .and_then(|n| n.parse::<u32>().ok());
            match n {
                Some(n) => {
                    lock(&arrivals).record(n, received);
                    answer.add_answer(Record::from_rdata(
                        q.name().clone(),
                        60,
                        RData::A(A::new(10, 0, 0, 1)),
                    ));
                }
                None => {
                    answer.set_response_code(ResponseCode::NXDomain);
                }
            }
        }
        if let Ok(bytes) = answer.to_bytes() {
            let _ = socket.send_to(&bytes, from).await;
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    arrivals: Arc<Arrivals>,
    keep_alive: bool,
    acceptor: Option<TlsAcceptor>,
    page: Arc<Vec<u8>>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let arrivals = arrivals.clone();
                let acceptor = acceptor.clone();
                let page = page.clone();
                tokio::spawn(async move {
                    if stream.set_nodelay(true).is_err() {
                        return;
                    }
                    // With TLS, a connection whose first byte opens a TLS record (0x16) is a
                    // check; the bench's own `/__arrivals` and `/__distinct` come in plain.
                    let mut first = [0u8; 1];
                    let tls = match &acceptor {
                        Some(_) => {
                            matches!(stream.peek(&mut first).await, Ok(1) if first[0] == 0x16)
                        }
                        None => false,
                    };
                    let _ = match acceptor.filter(|_| tls) {
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(tls) => serve_connection(tls, &arrivals, keep_alive, &page).await,
                            Err(_) => return,
                        },
                        None => serve_connection(stream, &arrivals, keep_alive, &page).await,
                    };
                });
            }
            // Out of file descriptors or a connection reset before accept: wait a moment.
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    arrivals: &Arrivals,
    keep_alive: bool,
    page: &[u8],
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        let Some(head_end) = read_head(&mut stream, &mut buf).await? else {
            return Ok(());
        };
        let received = unix_micros();
        let path = request_path(&buf[..head_end]).unwrap_or_default();
        let (status, body) = respond(&path, arrivals, received, page);
        buf.drain(..head_end);
        let connection = if keep_alive { "keep-alive" } else { "close" };
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: {connection}\r\n\r\n",
            body.len()
        );
        let mut response = head.into_bytes();
        response.extend_from_slice(&body);
        stream.write_all(&response).await?;
        if !keep_alive {
            let _ = stream.shutdown().await;
            return Ok(());
        }
    }
}

/// Reads until `buf` holds a complete request head; returns its length (with the blank line),
/// or `None` when the peer closed or went idle.
async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<usize>> {
    loop {
        if let Some(pos) = find_blank_line(buf) {
            return Ok(Some(pos + 4));
        }
        if buf.len() > MAX_HEAD {
            return Ok(None);
        }
        let mut chunk = [0u8; 2048];
        let read = match tokio::time::timeout(IDLE_TIMEOUT, stream.read(&mut chunk)).await {
            Ok(read) => read?,
            Err(_) => return Ok(None),
        };
        if read == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..read]);
    }
}

fn find_blank_line(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

fn request_path(head: &[u8]) -> Option<String> {
    let line_end = head.iter().position(|&b| b == b'\r')?;
    let line = std::str::from_utf8(&head[..line_end]).ok()?;
    let mut parts = line.split(' ');
    let _method = parts.next()?;
    parts.next().map(str::to_owned)
}

fn respond(path: &str, arrivals: &Arrivals, received: i64, page: &[u8]) -> (&'static str, Vec<u8>) {
    if let Some(n) = path.strip_prefix("/m/") {
        if let Ok(n) = n.parse::<u32>() {
            lock(arrivals).record(n, received);
            return ("200 OK", page.to_vec());
        }
    }
    // A check that fails: `bench notify` points monitors here to make them go DOWN.
    if path.starts_with("/fail/") {
        return ("503 Service Unavailable", b"down".to_vec());
    }
    if let Some(query) = path.strip_prefix("/__arrivals") {
        let from = query
            .strip_prefix("?from=")
            .and_then(|k| k.parse::<usize>().ok())
            .unwrap_or(0);
        let recorded = lock(arrivals);
        let list = &recorded.list;
        let mut body = String::with_capacity(list.len().saturating_sub(from) * 20);
        for (n, at) in list.iter().skip(from) {
            body.push_str(&format!("{n} {at}\n"));
        }
        return ("200 OK", body.into_bytes());
    }
    if path == "/__dns" {
        let port = lock(arrivals)
            .dns_port
            .map_or(String::new(), |p| p.to_string());
        return ("200 OK", port.into_bytes());
    }
    if path == "/__ports" {
        let ports: Vec<String> = lock(arrivals).ports.iter().map(u16::to_string).collect();
        return ("200 OK", ports.join(" ").into_bytes());
    }
    if path == "/__distinct" {
        let recorded = lock(arrivals);
        return ("200 OK", recorded.distinct.to_string().into_bytes());
    }
    ("404 Not Found", b"not found".to_vec())
}

/// Now, in microseconds since the unix epoch.
pub fn unix_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Parses the `/__arrivals` body.
pub fn parse_arrivals(body: &str) -> anyhow::Result<Vec<(u32, i64)>> {
    body.lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let (n, at) = line
                .split_once(' ')
                .with_context(|| format!("bad arrivals line `{line}`"))?;
            Ok((n.parse()?, at.parse()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_paths_and_arrival_lines_parse() {
        assert_eq!(
            request_path(b"GET /m/12 HTTP/1.1\r\nhost: x\r\n\r\n").as_deref(),
            Some("/m/12")
        );
        assert_eq!(
            parse_arrivals("3 100\n4 200\n").unwrap(),
            vec![(3, 100), (4, 200)]
        );
        assert_eq!(page(0), b"ok");
        assert_eq!(page(2), b"ok");
        let big = page(1000);
        assert_eq!(big.len(), 1000);
        assert!(big.ends_with(b"ok"));
    }
}
