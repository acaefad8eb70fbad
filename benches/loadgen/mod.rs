//! A small, fast HTTP/1.1 keep-alive load generator for the benchmarks.
//!
//! It speaks just enough HTTP/1.1 over raw `tokio::net::TcpStream`s to drive
//! the server hard without the client becoming the bottleneck: each worker
//! owns one keep-alive connection, writes a pre-built request, reads the status
//! line and headers, then exactly the body (`Content-Length`, or a minimal
//! `Transfer-Encoding: chunked` decoder, or read-until-close), and reuses the
//! connection. Buffers are reused between requests; the only per-request work
//! on the client side is whatever the [`Workload`] does to write the request.
//!
//! Each request's latency is measured from just before the request is written
//! to just after its full body has been read, and its status code is counted.
//!
//! Workers run on a tokio runtime of their own with a configurable number of
//! worker threads (default 1, a current-thread runtime, so the generator takes
//! one core and leaves the rest to the server under test).
//!
//! Shared by several benchmarks; each one uses a subset of the API.
#![allow(dead_code)]

pub mod args;
mod check;
pub mod machine;
pub mod seed;
pub mod server;

// Each bench uses a subset.
#[allow(unused_imports)]
pub use check::{contains, find, json_uint_field, snippet, splitmix64};

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response head (status line + headers) accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Give up on a run after this many consecutive failed requests.
const MAX_CONSECUTIVE_ERRORS: u32 = 50;

/// What a benchmark sends, and how it checks what comes back.
///
/// Any `Fn(usize, &mut Vec<u8>)` closure is a workload that accepts every
/// response; wrap it with [`Checked`] to validate status and body.
pub trait Workload: Send + Sync + 'static {
    /// Append the full request number `index` (head and body) to `buf`,
    /// which is empty on entry and reused between requests.
    fn write_request(&self, index: usize, buf: &mut Vec<u8>);

    /// Check one response. Errors are counted in [`Report::check_failures`]
    /// (the first one is kept in [`Report::first_check_failure`]); the status
    /// is counted in [`Report::status_counts`] either way.
    fn check(&self, _index: usize, _status: u16, _body: &[u8]) -> Result<(), String> {
        Ok(())
    }
}

impl<F> Workload for F
where
    F: Fn(usize, &mut Vec<u8>) + Send + Sync + 'static,
{
    fn write_request(&self, index: usize, buf: &mut Vec<u8>) {
        self(index, buf)
    }
}

/// A workload with a response check: `check(index, status, body)`.
pub struct Checked<F, C> {
    pub make: F,
    pub check: C,
}

impl<F, C> Workload for Checked<F, C>
where
    F: Fn(usize, &mut Vec<u8>) + Send + Sync + 'static,
    C: Fn(usize, u16, &[u8]) -> Result<(), String> + Send + Sync + 'static,
{
    fn write_request(&self, index: usize, buf: &mut Vec<u8>) {
        (self.make)(index, buf)
    }

    fn check(&self, index: usize, status: u16, body: &[u8]) -> Result<(), String> {
        (self.check)(index, status, body)
    }
}

/// Append an HTTP/1.1 request to `buf`.
///
/// `headers` are written as given (e.g. `("Authorization", "Bearer ...")`).
/// `Content-Length` is added when there is a body or the method usually
/// carries one.
pub fn write_request(
    buf: &mut Vec<u8>,
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) {
    buf.reserve(128 + path.len() + body.len());
    buf.extend_from_slice(method.as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(path.as_bytes());
    buf.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    buf.extend_from_slice(host.as_bytes());
    buf.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        buf.extend_from_slice(name.as_bytes());
        buf.extend_from_slice(b": ");
        buf.extend_from_slice(value.as_bytes());
        buf.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        let mut len = itoa_buf();
        let digits = fmt_usize(&mut len, body.len());
        buf.extend_from_slice(b"Content-Length: ");
        buf.extend_from_slice(digits);
        buf.extend_from_slice(b"\r\n");
    }
    buf.extend_from_slice(b"\r\n");
    buf.extend_from_slice(body);
}

/// A complete request, built once, for workloads that send the same bytes
/// every time.
pub fn build_request(
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut buf = Vec::new();
    write_request(&mut buf, method, path, host, headers, body);
    buf
}

fn itoa_buf() -> [u8; 20] {
    [0; 20]
}

fn fmt_usize(buf: &mut [u8; 20], mut n: usize) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// Percent-encode a query-string component (RFC 3986 unreserved kept).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// When a run stops.
#[derive(Clone, Copy, Debug)]
pub enum Stop {
    /// Exactly this many requests in total, shared by all connections.
    Total(usize),
    /// This many requests on each connection.
    PerConnection(usize),
    /// Keep sending until this much time has passed (requests in flight
    /// at the deadline complete and are counted).
    Duration(Duration),
}

/// The results of one run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Requests that got a complete response (any status).
    pub requests: u64,
    /// Wall time of the run, from the workers' start to the last response.
    pub elapsed: Duration,
    pub status_counts: BTreeMap<u16, u64>,
    /// Latencies of the completed requests, sorted ascending.
    pub latencies: Vec<Duration>,
    /// Requests that failed at the transport level (connect, I/O, timeout,
    /// malformed response); not in `requests` nor `latencies`.
    pub errors: u64,
    pub first_error: Option<String>,
    /// Responses rejected by [`Workload::check`].
    pub check_failures: u64,
    pub first_check_failure: Option<String>,
    /// TCP connections opened (1 per worker unless the server closed some).
    pub connects: u64,
}

impl Report {
    /// Completed requests per second of wall time.
    pub fn rps(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.requests as f64 / secs
        } else {
            0.0
        }
    }

    /// Nearest-rank percentile, `p` in 0..=100 (0 is the minimum).
    pub fn percentile(&self, p: f64) -> Duration {
        let n = self.latencies.len();
        if n == 0 {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        self.latencies[rank.clamp(1, n) - 1]
    }

    pub fn mean(&self) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let total: Duration = self.latencies.iter().sum();
        total / self.latencies.len() as u32
    }

    pub fn max(&self) -> Duration {
        self.latencies.last().copied().unwrap_or(Duration::ZERO)
    }

    /// How many responses had this status.
    pub fn count(&self, status: u16) -> u64 {
        self.status_counts.get(&status).copied().unwrap_or(0)
    }

    /// True when every request completed with `status` and passed its check.
    pub fn all(&self, status: u16) -> bool {
        self.errors == 0 && self.check_failures == 0 && self.count(status) == self.requests
    }

    /// Fold another run into this one (elapsed times add up, so `rps()` is
    /// the rate over the combined time the runs took).
    pub fn merge(&mut self, other: Report) {
        self.requests += other.requests;
        self.elapsed += other.elapsed;
        for (status, n) in other.status_counts {
            *self.status_counts.entry(status).or_insert(0) += n;
        }
        self.latencies.extend(other.latencies);
        self.latencies.sort_unstable();
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.check_failures += other.check_failures;
        if self.first_check_failure.is_none() {
            self.first_check_failure = other.first_check_failure;
        }
        self.connects += other.connects;
    }

    /// `{201: 10000}`-style status counts, plus errors and check failures.
    pub fn status_summary(&self) -> String {
        let mut s = String::from("{");
        for (i, (status, n)) in self.status_counts.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            let _ = write!(s, "{status}: {n}");
        }
        s.push('}');
        if self.errors > 0 {
            let _ = write!(
                s,
                ", {} transport errors (first: {})",
                self.errors,
                self.first_error.as_deref().unwrap_or("?")
            );
        }
        if self.check_failures > 0 {
            let _ = write!(
                s,
                ", {} failed checks (first: {})",
                self.check_failures,
                self.first_check_failure.as_deref().unwrap_or("?")
            );
        }
        s
    }

    /// One line: count, rate, latency percentiles in ms, statuses.
    pub fn summary(&self) -> String {
        format!(
            "{} req in {:.2} s = {:.0} req/s; latency ms p50 {:.3} p90 {:.3} p99 {:.3} max {:.3}; \
             {} conns; status {}",
            self.requests,
            self.elapsed.as_secs_f64(),
            self.rps(),
            ms(self.percentile(50.0)),
            ms(self.percentile(90.0)),
            ms(self.percentile(99.0)),
            ms(self.max()),
            self.connects,
            self.status_summary()
        )
    }
}

/// Duration in milliseconds as f64.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A load generator aimed at one server address.
#[derive(Clone, Debug)]
pub struct LoadGen {
    pub addr: SocketAddr,
    /// Concurrent keep-alive connections, one worker task each.
    pub connections: usize,
    /// Runtime worker threads; 1 means a current-thread runtime.
    pub threads: usize,
    /// A request that takes longer than this is counted as an error.
    pub request_timeout: Duration,
}

impl LoadGen {
    pub fn new(addr: SocketAddr) -> Self {
        LoadGen {
            addr,
            connections: 16,
            threads: 1,
            request_timeout: Duration::from_secs(30),
        }
    }

    pub fn connections(mut self, n: usize) -> Self {
        self.connections = n.max(1);
        self
    }

    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n.max(1);
        self
    }

    pub fn request_timeout(mut self, t: Duration) -> Self {
        self.request_timeout = t;
        self
    }

    /// Exactly `total` requests (indices `0..total`, handed out to the
    /// connections in order through an atomic counter).
    pub fn run_fixed<W: Workload>(&self, total: usize, workload: W) -> Result<Report> {
        self.run(Stop::Total(total), workload)
    }

    /// A steady-state run bounded by time or by requests per connection.
    /// Request indices count up from 0 across all connections.
    pub fn run_for<W: Workload>(&self, stop: Stop, workload: W) -> Result<Report> {
        self.run(stop, workload)
    }

    pub fn run<W: Workload>(&self, stop: Stop, workload: W) -> Result<Report> {
        let rt = runtime(self.threads)?;
        let shared = Arc::new(Shared {
            workload,
            next: AtomicUsize::new(0),
            abort: AtomicBool::new(false),
            addr: self.addr,
            stop,
            timeout: self.request_timeout,
        });
        let reserve = match stop {
            Stop::Total(n) => n.div_ceil(self.connections) + 16,
            Stop::PerConnection(n) => n,
            Stop::Duration(_) => 64 * 1024,
        };
        let connections = self.connections;
        rt.block_on(async move {
            let started = Instant::now();
            let deadline = match stop {
                Stop::Duration(d) => Some(started + d),
                _ => None,
            };
            let mut handles = Vec::with_capacity(connections);
            for _ in 0..connections {
                let shared = Arc::clone(&shared);
                handles.push(tokio::spawn(worker(shared, deadline, reserve)));
            }
            let mut report = Report::default();
            let mut failure = None;
            for handle in handles {
                match handle.await {
                    Ok(Ok(part)) => report.merge_worker(part),
                    Ok(Err(e)) => {
                        shared.abort.store(true, Ordering::Relaxed);
                        failure.get_or_insert(e);
                    }
                    Err(e) => {
                        failure.get_or_insert(anyhow!("load generator worker panicked: {e}"));
                    }
                }
            }
            report.elapsed = started.elapsed();
            report.latencies.sort_unstable();
            match failure {
                Some(e) => Err(e.context(format!(
                    "load run aborted after {} responses ({})",
                    report.requests,
                    report.status_summary()
                ))),
                None => Ok(report),
            }
        })
    }
}

/// Send one request on a fresh connection and return (status, body).
/// Blocking; for set-up steps and health checks, not for load.
pub fn fetch(addr: SocketAddr, request: &[u8], timeout: Duration) -> Result<(u16, Vec<u8>)> {
    let rt = runtime(1)?;
    rt.block_on(async {
        let fut = async {
            let mut conn = Conn::connect(addr).await?;
            conn.stream.write_all(request).await?;
            let head = conn.read_response().await?;
            let body = conn.body(&head).to_vec();
            Ok::<_, io::Error>((head.status, body))
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r.with_context(|| format!("request to {addr}")),
            Err(_) => bail!("request to {addr} timed out after {timeout:?}"),
        }
    })
}

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    rt.context("building the load generator's tokio runtime")
}

struct Shared<W> {
    workload: W,
    next: AtomicUsize,
    /// Set when one worker gives up, so that the others stop too.
    abort: AtomicBool,
    addr: SocketAddr,
    stop: Stop,
    timeout: Duration,
}

#[derive(Default)]
struct WorkerStats {
    latencies: Vec<Duration>,
    status_counts: BTreeMap<u16, u64>,
    errors: u64,
    first_error: Option<String>,
    check_failures: u64,
    first_check_failure: Option<String>,
    connects: u64,
}

impl Report {
    fn merge_worker(&mut self, w: WorkerStats) {
        self.requests += w.latencies.len() as u64;
        self.latencies.extend(w.latencies);
        for (status, n) in w.status_counts {
            *self.status_counts.entry(status).or_insert(0) += n;
        }
        self.errors += w.errors;
        if self.first_error.is_none() {
            self.first_error = w.first_error;
        }
        self.check_failures += w.check_failures;
        if self.first_check_failure.is_none() {
            self.first_check_failure = w.first_check_failure;
        }
        self.connects += w.connects;
    }
}

async fn worker<W: Workload>(
    shared: Arc<Shared<W>>,
    deadline: Option<Instant>,
    reserve: usize,
) -> Result<WorkerStats> {
    let mut stats = WorkerStats {
        latencies: Vec::with_capacity(reserve),
        ..WorkerStats::default()
    };
    let mut conn: Option<Conn> = None;
    let mut request = Vec::with_capacity(4096);
    let mut sent_here = 0usize;
    let mut consecutive_errors = 0u32;
    loop {
        if shared.abort.load(Ordering::Relaxed) {
            break;
        }
        let index = match shared.stop {
            Stop::Total(total) => {
                let i = shared.next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                i
            }
            Stop::PerConnection(n) => {
                if sent_here >= n {
                    break;
                }
                shared.next.fetch_add(1, Ordering::Relaxed)
            }
            Stop::Duration(_) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                shared.next.fetch_add(1, Ordering::Relaxed)
            }
        };
        sent_here += 1;
        request.clear();
        shared.workload.write_request(index, &mut request);

        let started = Instant::now();
        let outcome = tokio::time::timeout(
            shared.timeout,
            exchange(&mut conn, shared.addr, &request, &mut stats.connects),
        )
        .await
        .unwrap_or_else(|_| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no complete response within {:?}", shared.timeout),
            ))
        });
        match outcome {
            Ok(head) => {
                stats.latencies.push(started.elapsed());
                consecutive_errors = 0;
                *stats.status_counts.entry(head.status).or_insert(0) += 1;
                if let Some(c) = conn.as_mut() {
                    let body = c.body(&head);
                    if let Err(msg) = shared.workload.check(index, head.status, body) {
                        stats.check_failures += 1;
                        stats.first_check_failure.get_or_insert_with(|| {
                            format!("request {index}: status {}: {msg}", head.status)
                        });
                    }
                    c.consume(&head);
                }
                if head.close {
                    conn = None;
                }
            }
            Err(e) => {
                conn = None;
                stats.errors += 1;
                consecutive_errors += 1;
                stats
                    .first_error
                    .get_or_insert_with(|| format!("request {index}: {e}"));
                if consecutive_errors >= MAX_CONSECUTIVE_ERRORS {
                    shared.abort.store(true, Ordering::Relaxed);
                    bail!(
                        "{consecutive_errors} consecutive failed requests to {}; last: {e}",
                        shared.addr
                    );
                }
            }
        }
    }
    Ok(stats)
}

/// Write `request` and read the response head and body, (re)connecting as
/// needed. A request on a reused connection that the server had already
/// closed (write error, or EOF before any response byte) is retried once on
/// a new connection, as HTTP clients do for idle keep-alive connections.
async fn exchange(
    conn: &mut Option<Conn>,
    addr: SocketAddr,
    request: &[u8],
    connects: &mut u64,
) -> io::Result<Head> {
    for attempt in 0..2 {
        let reused = conn.is_some();
        let c = match conn {
            Some(c) => c,
            None => {
                *connects += 1;
                conn.insert(Conn::connect(addr).await?)
            }
        };
        let result = async {
            c.stream.write_all(request).await?;
            c.read_response().await
        }
        .await;
        match result {
            Ok(head) => return Ok(head),
            Err(e) if reused && attempt == 0 && is_stale_connection(&e) && c.rbuf.is_empty() => {
                *conn = None;
                continue;
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("retry on a fresh connection failed"))
}

/// Did the server close an idle keep-alive connection under us?
fn is_stale_connection(e: &io::Error) -> bool {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => e.to_string() == STALE_MARK,
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => true,
        _ => false,
    }
}

const STALE_MARK: &str = "connection closed before any response byte";

/// Where the body of a response lies.
#[derive(Clone, Copy, Debug)]
struct Head {
    status: u16,
    /// The connection must not be reused after this response.
    close: bool,
    body: BodyAt,
    /// Bytes of `rbuf` taken by this response (head + body as received).
    consumed: usize,
}

#[derive(Clone, Copy, Debug)]
enum BodyAt {
    /// `rbuf[start..end]`.
    Raw { start: usize, end: usize },
    /// The decoded chunked body in `chunked`.
    Decoded,
}

struct Conn {
    stream: TcpStream,
    /// Received, not yet consumed bytes, starting at index 0.
    rbuf: Vec<u8>,
    /// Decoded body of the last chunked response.
    chunked: Vec<u8>,
}

impl Conn {
    async fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            rbuf: Vec::with_capacity(16 * 1024),
            chunked: Vec::new(),
        })
    }

    /// Read more bytes into `rbuf`; Ok(0) at end of stream.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.rbuf.capacity() - self.rbuf.len() < 4096 {
            self.rbuf.reserve(16 * 1024);
        }
        self.stream.read_buf(&mut self.rbuf).await
    }

    async fn fill_or_eof(&mut self, what: &str) -> io::Result<()> {
        if self.fill().await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("connection closed in the middle of {what}"),
            ));
        }
        Ok(())
    }

    fn body(&self, head: &Head) -> &[u8] {
        match head.body {
            BodyAt::Raw { start, end } => &self.rbuf[start..end],
            BodyAt::Decoded => &self.chunked,
        }
    }

    fn consume(&mut self, head: &Head) {
        self.rbuf.drain(..head.consumed);
    }

    /// Read one complete response; its bytes stay in `rbuf` until
    /// [`Conn::consume`]. Interim 1xx responses are skipped.
    async fn read_response(&mut self) -> io::Result<Head> {
        loop {
            let head = self.read_one().await?;
            if (100..200).contains(&head.status) && head.status != 101 {
                self.consume(&head);
                continue;
            }
            return Ok(head);
        }
    }

    async fn read_one(&mut self) -> io::Result<Head> {
        // Status line and headers.
        let mut scanned = 0;
        let head_end = loop {
            if let Some(pos) = find(&self.rbuf[scanned..], b"\r\n\r\n") {
                break scanned + pos + 4;
            }
            scanned = self.rbuf.len().saturating_sub(3);
            if self.rbuf.len() > MAX_HEAD {
                return Err(bad("response head larger than 64 KiB"));
            }
            if self.fill().await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    if self.rbuf.is_empty() {
                        STALE_MARK.to_string()
                    } else {
                        "connection closed in the middle of a response head".to_string()
                    },
                ));
            }
        };
        let parsed = parse_head(&self.rbuf[..head_end])?;
        let no_body = (100..200).contains(&parsed.status) || matches!(parsed.status, 204 | 304);

        if no_body {
            return Ok(Head {
                status: parsed.status,
                close: parsed.close,
                body: BodyAt::Raw {
                    start: head_end,
                    end: head_end,
                },
                consumed: head_end,
            });
        }
        if parsed.chunked {
            let consumed = self.read_chunked(head_end).await?;
            return Ok(Head {
                status: parsed.status,
                close: parsed.close,
                body: BodyAt::Decoded,
                consumed,
            });
        }
        if let Some(len) = parsed.content_length {
            let end = head_end + len;
            while self.rbuf.len() < end {
                self.rbuf.reserve(end - self.rbuf.len());
                self.fill_or_eof("a response body").await?;
            }
            return Ok(Head {
                status: parsed.status,
                close: parsed.close,
                body: BodyAt::Raw {
                    start: head_end,
                    end,
                },
                consumed: end,
            });
        }
        // Neither length nor chunked: the body runs to the end of the stream.
        while self.fill().await? > 0 {}
        let end = self.rbuf.len();
        Ok(Head {
            status: parsed.status,
            close: true,
            body: BodyAt::Raw {
                start: head_end,
                end,
            },
            consumed: end,
        })
    }

    /// Decode a chunked body starting at `rbuf[pos..]` into `self.chunked`;
    /// returns the index just past the terminating empty line.
    async fn read_chunked(&mut self, mut pos: usize) -> io::Result<usize> {
        self.chunked.clear();
        loop {
            let line_end = loop {
                if let Some(i) = find(&self.rbuf[pos..], b"\r\n") {
                    break pos + i;
                }
                if self.rbuf.len() - pos > 1024 {
                    return Err(bad("chunk-size line too long"));
                }
                self.fill_or_eof("a chunked body").await?;
            };
            let line = &self.rbuf[pos..line_end];
            let size_part = line.split(|&b| b == b';').next().unwrap_or(line);
            let size_str = std::str::from_utf8(size_part)
                .map_err(|_| bad("chunk size is not ASCII"))?
                .trim();
            let size = usize::from_str_radix(size_str, 16)
                .map_err(|_| bad(&format!("bad chunk size {size_str:?}")))?;
            pos = line_end + 2;
            if size == 0 {
                // Trailers, then an empty line.
                loop {
                    let end = loop {
                        if let Some(i) = find(&self.rbuf[pos..], b"\r\n") {
                            break pos + i;
                        }
                        if self.rbuf.len() - pos > MAX_HEAD {
                            return Err(bad("chunked trailers too long"));
                        }
                        self.fill_or_eof("chunked trailers").await?;
                    };
                    let empty = end == pos;
                    pos = end + 2;
                    if empty {
                        return Ok(pos);
                    }
                }
            }
            while self.rbuf.len() < pos + size + 2 {
                self.fill_or_eof("a chunk").await?;
            }
            self.chunked.extend_from_slice(&self.rbuf[pos..pos + size]);
            if &self.rbuf[pos + size..pos + size + 2] != b"\r\n" {
                return Err(bad("chunk not followed by CRLF"));
            }
            pos += size + 2;
        }
    }
}

struct ParsedHead {
    status: u16,
    content_length: Option<usize>,
    chunked: bool,
    close: bool,
}

fn parse_head(head: &[u8]) -> io::Result<ParsedHead> {
    let text = std::str::from_utf8(head).map_err(|_| bad("response head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let (version, rest) = status_line
        .split_once(' ')
        .ok_or_else(|| bad(&format!("bad status line {status_line:?}")))?;
    if !version.starts_with("HTTP/1.") {
        return Err(bad(&format!("bad status line {status_line:?}")));
    }
    let code = rest.get(..3).unwrap_or(rest);
    let status: u16 = code
        .parse()
        .map_err(|_| bad(&format!("bad status line {status_line:?}")))?;
    let mut parsed = ParsedHead {
        status,
        content_length: None,
        chunked: false,
        // HTTP/1.0 closes unless told otherwise.
        close: version == "HTTP/1.0",
    };
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad(&format!("bad header line {line:?}")));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            parsed.content_length = Some(
                value
                    .parse()
                    .map_err(|_| bad(&format!("bad Content-Length {value:?}")))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
            {
                parsed.chunked = true;
            } else {
                return Err(bad(&format!("unsupported Transfer-Encoding {value:?}")));
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',') {
                let token = token.trim();
                if token.eq_ignore_ascii_case("close") {
                    parsed.close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    parsed.close = false;
                }
            }
        }
    }
    Ok(parsed)
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}
