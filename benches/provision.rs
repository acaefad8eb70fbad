//! Provisioning benchmark (issue #2): SCIM user creation throughput and
//! `GET /Users?filter=userName eq "..."` latency relative to `/healthz`.
//!
//! `cargo bench --bench provision [-- --users N --connections N
//!   --backend sqlite|postgres|both --latency-requests N --rounds N
//!   --serial-requests N --warmup N --threads N --pin --release-server PATH]`
//!
//! For each back-end it creates a token with the CLI, starts `rolecall serve`
//! on a free port against a fresh database, warms up, creates `--users` users
//! over `--connections` keep-alive connections, then measures /healthz and
//! filter latency in interleaved rounds, first over `--connections`
//! connections, then over one. See BENCHMARKS.md.

mod loadgen;

use loadgen::machine::{pin_self_to_core, print_machine_load, redact, with_database, PgDatabase};

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use loadgen::{ms, Checked, LoadGen, Report};

const USAGE: &str = "\
usage: cargo bench --bench provision -- [options]
  --users N              users to create (default 10000)
  --connections N        concurrent keep-alive connections (default 16)
  --backend B            sqlite | postgres | both (default both)
  --latency-requests N   requests in each latency phase (default 20000)
  --rounds N             healthz/filter rounds the latency phases are split into (default 10)
  --serial-requests N    requests in each 1-connection latency phase, 0 to skip (default 2000)
  --warmup N             GET /healthz requests before measuring (default 500)
  --threads N            load generator runtime threads (default 1)
  --pin                  server on core 0 (taskset -c 0), load generator on core 1
  --release-server PATH  rolecall binary to benchmark (default: this build's)
env ROLECALL_TEST_PG_URL   PostgreSQL admin URL (default postgres://postgres@127.0.0.1:5432/postgres)";

const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Debug)]
struct Options {
    users: usize,
    connections: usize,
    backends: Vec<Backend>,
    latency_requests: usize,
    rounds: usize,
    serial_requests: usize,
    warmup: usize,
    threads: usize,
    pin: bool,
    server: PathBuf,
}

fn parse_args() -> Result<Option<Options>> {
    let mut opts = Options {
        users: 10_000,
        connections: 16,
        backends: vec![Backend::Sqlite, Backend::Postgres],
        latency_requests: 20_000,
        rounds: 10,
        serial_requests: 2_000,
        warmup: 500,
        threads: 1,
        pin: false,
        server: PathBuf::from(env!("CARGO_BIN_EXE_rolecall")),
    };
    let mut bench_mode = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => args
                    .next()
                    .with_context(|| format!("{name} needs a value\n{USAGE}")),
            }
        };
        let number = |name: &str, v: String| -> Result<usize> {
            let n: usize = v
                .parse()
                .with_context(|| format!("{name}: {v:?} is not a number"))?;
            if n == 0 {
                bail!("{name} must be at least 1");
            }
            Ok(n)
        };
        match flag.as_str() {
            "--bench" => bench_mode = true,
            "--users" => opts.users = number("--users", value("--users")?)?,
            "--connections" => opts.connections = number("--connections", value("--connections")?)?,
            "--latency-requests" => {
                opts.latency_requests = number("--latency-requests", value("--latency-requests")?)?
            }
            "--rounds" => opts.rounds = number("--rounds", value("--rounds")?)?,
            "--serial-requests" => {
                let v = value("--serial-requests")?;
                opts.serial_requests = v
                    .parse()
                    .with_context(|| format!("--serial-requests: {v:?} is not a number"))?;
            }
            "--warmup" => opts.warmup = number("--warmup", value("--warmup")?)?,
            "--threads" => opts.threads = number("--threads", value("--threads")?)?,
            "--pin" => opts.pin = true,
            "--release-server" => opts.server = PathBuf::from(value("--release-server")?),
            "--backend" => {
                opts.backends = match value("--backend")?.as_str() {
                    "sqlite" => vec![Backend::Sqlite],
                    "postgres" | "pg" => vec![Backend::Postgres],
                    "both" => vec![Backend::Sqlite, Backend::Postgres],
                    other => bail!("unknown --backend {other:?}\n{USAGE}"),
                }
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other if other.starts_with('-') => bail!("unknown option {other:?}\n{USAGE}"),
            // cargo passes bench-name filters through; nothing to filter here.
            _ => {}
        }
    }
    if !bench_mode {
        // `cargo test --benches` / `--all-targets` runs bench targets without
        // `--bench`: don't start a multi-minute load test from a test run.
        println!("provision: not run (use `cargo bench --bench provision`)");
        return Ok(None);
    }
    Ok(Some(opts))
}

fn main() {
    match run() {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("provision bench failed: {e:#}");
            std::process::exit(1);
        }
    }
}

/// One back-end's figures.
struct Results {
    backend: Backend,
    create: Report,
    /// With `--connections` connections.
    loaded: Latency,
    /// With one connection (None with `--serial-requests 0`).
    serial: Option<Latency>,
    server_cpu: Vec<(&'static str, CpuUse)>,
    log_problems: Vec<String>,
}

fn run() -> Result<bool> {
    let Some(opts) = parse_args()? else {
        return Ok(true);
    };
    if !opts.server.exists() {
        bail!("server binary {} does not exist", opts.server.display());
    }
    println!(
        "provision bench: server {}, {} users, {} connections, {} latency requests x2 in {} rounds, \
         load generator {} thread(s), {} cores online",
        opts.server.display(),
        opts.users,
        opts.connections,
        opts.latency_requests,
        opts.rounds,
        opts.threads,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    print_machine_load("before");
    if opts.pin {
        pin_self_to_core(1);
    } else {
        println!("(unpinned: server and load generator share all cores; --pin separates them)");
    }

    let mut results = Vec::new();
    let mut ok = true;
    for &backend in &opts.backends {
        println!("\n=== {} ===", backend.name());
        let outcome = match backend {
            Backend::Sqlite => bench_sqlite(&opts),
            Backend::Postgres => bench_postgres(&opts),
        };
        match outcome {
            Ok(Some(r)) => results.push(r),
            Ok(None) => {}
            Err(e) => {
                ok = false;
                eprintln!("\n!!! {} FAILED: {e:#}\n", backend.name());
            }
        }
    }
    print_table(&opts, &results);
    print_machine_load("after");
    Ok(ok)
}

fn bench_sqlite(opts: &Options) -> Result<Option<Results>> {
    let dir = tempfile::Builder::new()
        .prefix("rolecall-bench-")
        .tempdir()
        .context("creating a temp dir")?;
    let db = dir.path().join("rolecall.db");
    let url = format!("sqlite://{}", db.display());
    let results = bench_backend(opts, Backend::Sqlite, &url, dir.path())?;
    if let Ok(meta) = std::fs::metadata(&db) {
        println!("sqlite file size after the run: {} KiB", meta.len() / 1024);
    }
    Ok(Some(results))
}

fn bench_postgres(opts: &Options) -> Result<Option<Results>> {
    let admin_url =
        std::env::var("ROLECALL_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_string());
    let name = format!("rolecall_bench_{}", std::process::id());
    let db = match PgDatabase::create(&admin_url, &name) {
        Ok(db) => db,
        Err(e) => {
            println!(
                "PostgreSQL part SKIPPED: cannot create a database through {}: {e:#}",
                redact(&admin_url)
            );
            return Ok(None);
        }
    };
    let dir = tempfile::Builder::new()
        .prefix("rolecall-bench-")
        .tempdir()
        .context("creating a temp dir")?;
    let url = with_database(&admin_url, &name)?;
    let results = bench_backend(opts, Backend::Postgres, &url, dir.path());
    drop(db);
    results.map(Some)
}

fn bench_backend(opts: &Options, backend: Backend, url: &str, dir: &Path) -> Result<Results> {
    let token = create_token(&opts.server, url)?;
    let port = free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let log_path = dir.join("server.log");
    let mut server = Server::start(&opts.server, addr, url, &log_path, opts.pin)?;
    let res = measure(opts, backend, &mut server, &token);
    let log_problems = server.log_problems();
    let exit = server.stop();
    match res {
        Ok(mut r) => {
            r.log_problems = log_problems;
            if !r.log_problems.is_empty() {
                println!(
                    "server log has {} warning/error/panic lines, e.g.:",
                    r.log_problems.len()
                );
                for line in r.log_problems.iter().take(5) {
                    println!("  {line}");
                }
            }
            match exit {
                Ok(status) if !status.success() => {
                    println!("note: server exited with {status} after SIGTERM")
                }
                Ok(_) => {}
                Err(e) => println!("note: stopping the server: {e:#}"),
            }
            Ok(r)
        }
        Err(e) => {
            eprintln!("--- last lines of the server log ({}):", log_path.display());
            for line in tail(&log_path, 30) {
                eprintln!("  {line}");
            }
            Err(e)
        }
    }
}

fn measure(opts: &Options, backend: Backend, server: &mut Server, token: &str) -> Result<Results> {
    let addr = server.addr;
    let host = addr.to_string();
    let auth = format!("Bearer {token}");
    let gen = LoadGen::new(addr)
        .connections(opts.connections)
        .threads(opts.threads);
    let mut server_cpu = Vec::new();

    server.wait_healthy(Duration::from_secs(60))?;
    check_auth_required(addr, &host)?;

    // Warm-up.
    let healthz = loadgen::build_request("GET", "/healthz", &host, &[], b"");
    let warm = gen.run_fixed(opts.warmup, healthz_workload(healthz.clone()))?;
    println!("warm-up   {}", warm.summary());
    if !warm.all(200) {
        bail!(
            "warm-up: /healthz did not always answer 200: {}",
            warm.status_summary()
        );
    }

    // Create.
    let create_workload = {
        let host = host.clone();
        let auth = auth.clone();
        Checked {
            make: move |i: usize, buf: &mut Vec<u8>| {
                let body = user_body(i);
                loadgen::write_request(
                    buf,
                    "POST",
                    "/scim/v2/Users",
                    &host,
                    &[
                        ("Authorization", &auth),
                        ("Content-Type", "application/scim+json"),
                        ("Accept", "application/scim+json"),
                    ],
                    body.as_bytes(),
                );
            },
            check: |_: usize, status: u16, body: &[u8]| {
                if status == 201 {
                    Ok(())
                } else {
                    Err(format!("body: {}", snippet(body)))
                }
            },
        }
    };
    let (create, cpu) = timed(server, || gen.run_fixed(opts.users, create_workload))?;
    println!("create    {}", create.summary());
    println!("          {} users/s; {cpu}", fmt0(create.rps()));
    server_cpu.push(("create", cpu));
    if !create.all(201) {
        bail!(
            "create: expected {} x 201, got {}",
            opts.users,
            create.status_summary()
        );
    }

    // Latency: healthz and filter in interleaved rounds.
    let target = LatencyTarget {
        server,
        host: &host,
        auth: &auth,
        healthz: &healthz,
        users: opts.users,
    };
    println!(
        "latency, {} connections, {} + {} requests in {} rounds:",
        opts.connections, opts.latency_requests, opts.latency_requests, opts.rounds
    );
    let loaded = target.measure(&gen, opts.latency_requests, opts.rounds, 0)?;
    server_cpu.push(("healthz", loaded.healthz_cpu));
    server_cpu.push(("filter", loaded.filter_cpu));

    // The same on one connection: service time without queueing.
    let serial = if opts.serial_requests > 0 {
        println!(
            "latency, 1 connection, {} + {} requests in 2 rounds:",
            opts.serial_requests, opts.serial_requests
        );
        let one = gen.clone().connections(1);
        Some(target.measure(&one, opts.serial_requests, 2, 1000)?)
    } else {
        None
    };
    server.check_alive()?;
    Ok(Results {
        backend,
        create,
        loaded,
        serial,
        server_cpu,
        log_problems: Vec::new(),
    })
}

/// What the latency phases hit.
struct LatencyTarget<'a> {
    server: &'a Server,
    host: &'a str,
    auth: &'a str,
    healthz: &'a [u8],
    users: usize,
}

/// Results of interleaved healthz/filter latency phases.
struct Latency {
    healthz: Report,
    filter: Report,
    healthz_cpu: CpuUse,
    filter_cpu: CpuUse,
    /// filter p99 / healthz p99 of each round.
    round_ratios: Vec<f64>,
}

impl Latency {
    /// The median of the per-round p99 ratios: less sensitive than the
    /// overall ratio to a round that other processes on the machine hit.
    fn median_round_ratio(&self) -> f64 {
        let mut r = self.round_ratios.clone();
        r.sort_by(f64::total_cmp);
        match r.len() {
            0 => 0.0,
            n if n % 2 == 1 => r[n / 2],
            n => (r[n / 2 - 1] + r[n / 2]) / 2.0,
        }
    }

    fn p99_ratio(&self) -> f64 {
        let h = ms(self.healthz.percentile(99.0));
        if h > 0.0 {
            ms(self.filter.percentile(99.0)) / h
        } else {
            0.0
        }
    }
}

impl LatencyTarget<'_> {
    /// `requests` healthz and `requests` filter requests, alternating in
    /// `rounds` blocks so that noise hits both alike; fails unless every
    /// answer was right.
    fn measure(
        &self,
        gen: &LoadGen,
        requests: usize,
        rounds: usize,
        seed: usize,
    ) -> Result<Latency> {
        let per_round = requests.div_ceil(rounds);
        let mut out = Latency {
            healthz: Report::default(),
            filter: Report::default(),
            healthz_cpu: CpuUse::total(),
            filter_cpu: CpuUse::total(),
            round_ratios: Vec::with_capacity(rounds),
        };
        for round in 0..rounds {
            let (h, cpu) = timed(self.server, || {
                gen.run_fixed(per_round, healthz_workload(self.healthz.to_vec()))
            })?;
            out.healthz_cpu.add(cpu);
            let workload = filter_workload(self.host, self.auth, self.users, seed + round);
            let (f, cpu) = timed(self.server, || gen.run_fixed(per_round, workload))?;
            out.filter_cpu.add(cpu);
            println!(
                "  round {:>2}/{rounds}: healthz {:>6.0} req/s p50/p99/max {:.2}/{:.2}/{:.2} ms | \
                 filter {:>6.0} req/s p50/p99/max {:.2}/{:.2}/{:.2} ms",
                round + 1,
                h.rps(),
                ms(h.percentile(50.0)),
                ms(h.percentile(99.0)),
                ms(h.max()),
                f.rps(),
                ms(f.percentile(50.0)),
                ms(f.percentile(99.0)),
                ms(f.max()),
            );
            let h99 = ms(h.percentile(99.0));
            if h99 > 0.0 {
                out.round_ratios.push(ms(f.percentile(99.0)) / h99);
            }
            out.healthz.merge(h);
            out.filter.merge(f);
        }
        println!("  healthz {}", out.healthz.summary());
        println!("          {}", out.healthz_cpu);
        println!("  filter  {}", out.filter.summary());
        println!("          {}", out.filter_cpu);
        println!(
            "  filter p99 / healthz p99 = {:.2} (median of the rounds' ratios {:.2})",
            out.p99_ratio(),
            out.median_round_ratio()
        );
        if !out.healthz.all(200) {
            bail!(
                "latency: /healthz answers: {}",
                out.healthz.status_summary()
            );
        }
        if !out.filter.all(200) {
            bail!(
                "latency: filter answers (each must be 200 with totalResults 1): {}",
                out.filter.status_summary()
            );
        }
        Ok(out)
    }
}

fn healthz_workload(request: Vec<u8>) -> impl loadgen::Workload {
    move |_: usize, buf: &mut Vec<u8>| buf.extend_from_slice(&request)
}

/// `GET /scim/v2/Users?filter=userName eq "userNNNNN@example.com"` for a
/// pseudo-random existing user; each answer must be 200 with totalResults 1.
fn filter_workload(host: &str, auth: &str, users: usize, round: usize) -> impl loadgen::Workload {
    let host = host.to_string();
    let auth = auth.to_string();
    let seed = 0x5eed_0000_u64 + round as u64 * 1_000_003;
    Checked {
        make: move |i: usize, buf: &mut Vec<u8>| {
            let user = (splitmix64(seed.wrapping_add(i as u64)) % users as u64) as usize;
            let filter = format!("userName eq \"{}\"", user_name(user));
            let path = format!("/scim/v2/Users?filter={}", loadgen::url_encode(&filter));
            loadgen::write_request(
                buf,
                "GET",
                &path,
                &host,
                &[
                    ("Authorization", &auth),
                    ("Accept", "application/scim+json"),
                ],
                b"",
            );
        },
        check: |_: usize, status: u16, body: &[u8]| {
            if status != 200 {
                return Err(format!("body: {}", snippet(body)));
            }
            match json_uint_field(body, "totalResults") {
                Some(1) => Ok(()),
                Some(n) => Err(format!("totalResults {n}, expected 1")),
                None => Err(format!("no totalResults in {}", snippet(body))),
            }
        },
    }
}

fn user_name(i: usize) -> String {
    format!("user{i:05}@example.com")
}

fn user_body(i: usize) -> String {
    format!(
        concat!(
            r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"#,
            r#""userName":"user{i:05}@example.com","#,
            r#""name":{{"givenName":"User","familyName":"{i:05}"}},"#,
            r#""emails":[{{"value":"user{i:05}@example.com","type":"work","primary":true}}],"#,
            r#""active":true,"externalId":"ext-{i:05}"}}"#
        ),
        i = i
    )
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The unsigned integer value of the first `"name": N` in a JSON body,
/// found by scanning (cheap enough to run on every response).
fn json_uint_field(body: &[u8], name: &str) -> Option<u64> {
    let key = format!("\"{name}\"");
    let at = body.windows(key.len()).position(|w| w == key.as_bytes())?;
    let rest = &body[at + key.len()..];
    let rest = rest
        .trim_ascii_start()
        .strip_prefix(b":")?
        .trim_ascii_start();
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    if body.len() > 300 {
        format!("{s}...")
    } else {
        s
    }
}

/// The protected endpoint must refuse a request without a token, or the
/// figures would not include the token check.
fn check_auth_required(addr: SocketAddr, host: &str) -> Result<()> {
    let req = loadgen::build_request(
        "GET",
        "/scim/v2/Users?filter=userName%20eq%20%22nobody%40example.com%22",
        host,
        &[],
        b"",
    );
    let (status, body) = loadgen::fetch(addr, &req, Duration::from_secs(10))?;
    if status != 401 {
        println!(
            "WARNING: GET /scim/v2/Users without a token answered {status}, expected 401: {}",
            snippet(&body)
        );
    }
    Ok(())
}

fn fmt0(x: f64) -> String {
    format!("{x:.0}")
}

fn print_table(opts: &Options, results: &[Results]) {
    println!("\n=== summary ===");
    if results.is_empty() {
        println!("no back-end completed");
        return;
    }
    println!(
        "{} users created over {} connections; latency: {} healthz + {} filter requests \
         over {} connections in {} interleaved rounds",
        opts.users,
        opts.connections,
        results[0].loaded.healthz.requests,
        results[0].loaded.filter.requests,
        opts.connections,
        opts.rounds
    );
    println!(
        "{:<9} {:>15}   {:>22}   {:>20}   {:>9}   {:>12}",
        "backend",
        "create users/s",
        "healthz p50/p99 (ms)",
        "filter p50/p99 (ms)",
        "p99 ratio",
        "median round"
    );
    for r in results {
        let l = &r.loaded;
        println!(
            "{:<9} {:>15}   {:>22}   {:>20}   {:>9.2}   {:>12.2}",
            r.backend.name(),
            fmt0(r.create.rps()),
            p50_p99(&l.healthz),
            p50_p99(&l.filter),
            l.p99_ratio(),
            l.median_round_ratio()
        );
    }
    println!("\nraw figures (latencies in ms):");
    println!(
        "{:<9} {:>10} {:>10} {:>10} {:>11} {:>11} {:>11} {:>11}",
        "backend",
        "create/s",
        "create p50",
        "create p99",
        "healthz/s",
        "filter/s",
        "healthz max",
        "filter max"
    );
    for r in results {
        let l = &r.loaded;
        println!(
            "{:<9} {:>10.0} {:>10.2} {:>10.2} {:>11.0} {:>11.0} {:>11.2} {:>11.2}",
            r.backend.name(),
            r.create.rps(),
            ms(r.create.percentile(50.0)),
            ms(r.create.percentile(99.0)),
            l.healthz.rps(),
            l.filter.rps(),
            ms(l.healthz.max()),
            ms(l.filter.max())
        );
    }
    if results.iter().any(|r| r.serial.is_some()) {
        println!("\none connection (no queueing; latencies in ms):");
        println!(
            "{:<9} {:>22}   {:>20}   {:>9}   {:>9}   {:>9}",
            "backend", "healthz p50/p99", "filter p50/p99", "p99 ratio", "healthz/s", "filter/s"
        );
        for r in results {
            if let Some(l) = &r.serial {
                println!(
                    "{:<9} {:>22}   {:>20}   {:>9.2}   {:>9.0}   {:>9.0}",
                    r.backend.name(),
                    p50_p99(&l.healthz),
                    p50_p99(&l.filter),
                    l.p99_ratio(),
                    l.healthz.rps(),
                    l.filter.rps()
                );
            }
        }
    }
    println!();
    for r in results {
        for (phase, c) in &r.server_cpu {
            println!("{:<9} {phase:<8} {c}", r.backend.name());
        }
        if !r.log_problems.is_empty() {
            println!(
                "{:<9} server log: {} warning/error lines",
                r.backend.name(),
                r.log_problems.len()
            );
        }
    }
    println!(
        "\ntargets (issue #2): sqlite create >= 2000 users/s; filter p99 <= 1.5 x healthz p99"
    );
}

fn p50_p99(r: &Report) -> String {
    format!(
        "{:.2} / {:.2}",
        ms(r.percentile(50.0)),
        ms(r.percentile(99.0))
    )
}

// ---------------------------------------------------------------- server

/// A running `rolecall serve`; terminated (SIGTERM, then SIGKILL) on drop.
struct Server {
    child: Option<Child>,
    addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    fn start(bin: &Path, addr: SocketAddr, url: &str, log: &Path, pin: bool) -> Result<Server> {
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().context("duplicating the log file handle")?;
        let mut cmd = if pin {
            let mut c = Command::new("taskset");
            c.args(["-c", "0"]).arg(bin);
            c
        } else {
            Command::new(bin)
        };
        cmd.arg("serve")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--database-url")
            .arg(url)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {} serve", bin.display()))?;
        println!(
            "server pid {} on {addr}{}, log {}",
            child.id(),
            if pin { " (pinned to core 0)" } else { "" },
            log.display()
        );
        Ok(Server {
            child: Some(child),
            addr,
            log: log.to_path_buf(),
        })
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    fn check_alive(&mut self) -> Result<()> {
        if let Some(child) = self.child.as_mut() {
            if let Some(status) = child.try_wait().context("checking the server process")? {
                self.child = None;
                bail!("the server exited: {status}");
            }
        }
        Ok(())
    }

    fn wait_healthy(&mut self, limit: Duration) -> Result<()> {
        let start = Instant::now();
        let req = loadgen::build_request("GET", "/healthz", &self.addr.to_string(), &[], b"");
        let mut last = String::from("not tried");
        while start.elapsed() < limit {
            self.check_alive()?;
            match loadgen::fetch(self.addr, &req, Duration::from_secs(2)) {
                Ok((200, _)) => {
                    println!(
                        "server healthy after {:.2} s",
                        start.elapsed().as_secs_f64()
                    );
                    return Ok(());
                }
                Ok((status, body)) => last = format!("status {status}: {}", snippet(&body)),
                Err(e) => last = format!("{e:#}"),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("server not healthy after {limit:?}; last /healthz: {last}")
    }

    /// Cumulative user+system CPU time of the server process.
    fn cpu(&self) -> Option<Duration> {
        process_cpu(&self.pid()?.to_string())
    }

    /// Log lines that look like warnings, errors or panics.
    fn log_problems(&self) -> Vec<String> {
        let Ok(file) = File::open(&self.log) else {
            return Vec::new();
        };
        BufReader::new(file)
            .lines()
            .map_while(|l| l.ok())
            .filter(|l| {
                l.contains("ERROR")
                    || l.contains("WARN")
                    || l.contains("panicked")
                    || l.contains("\"level\":\"error\"")
                    || l.contains("\"level\":\"warn\"")
            })
            .collect()
    }

    /// SIGTERM, wait up to 10 s, then SIGKILL.
    fn stop(&mut self) -> Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            bail!("server was not running");
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Some(status) = child.try_wait().context("waiting for the server")? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().context("killing the server")?;
        let status = child.wait().context("waiting for the killed server")?;
        bail!("server ignored SIGTERM for 10 s; killed ({status})")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.is_some() {
            if let Err(e) = self.stop() {
                eprintln!("stopping the server: {e:#}");
            }
        }
    }
}

/// Cumulative user+system CPU time of a process ("self" for this one).
fn process_cpu(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are
    // fields 14 and 15 of the whole line, so 12 and 13 after it.
    let after = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = after.split(' ');
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_secs_f64(
        (utime + stime) as f64 / clock_ticks() as f64,
    ))
}

fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// Run one load phase and note the CPU time the server and this process
/// (the load generator) used meanwhile.
fn timed(server: &Server, run: impl FnOnce() -> Result<Report>) -> Result<(Report, CpuUse)> {
    let before = (server.cpu(), process_cpu("self"));
    let report = run()?;
    let after = (server.cpu(), process_cpu("self"));
    let cpu = match (before, after) {
        ((Some(s0), Some(c0)), (Some(s1), Some(c1))) => CpuUse {
            server: s1.saturating_sub(s0),
            client: c1.saturating_sub(c0),
            wall: report.elapsed,
            requests: report.requests,
            known: true,
        },
        _ => CpuUse::default(),
    };
    Ok((report, cpu))
}

/// CPU time used by the server and the load generator during a phase.
#[derive(Clone, Copy, Debug, Default)]
struct CpuUse {
    server: Duration,
    client: Duration,
    wall: Duration,
    requests: u64,
    known: bool,
}

impl CpuUse {
    /// A total to `add` phases to.
    fn total() -> CpuUse {
        CpuUse {
            known: true,
            ..CpuUse::default()
        }
    }

    fn add(&mut self, other: CpuUse) {
        self.known &= other.known;
        self.server += other.server;
        self.client += other.client;
        self.wall += other.wall;
        self.requests += other.requests;
    }
}

impl std::fmt::Display for CpuUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.known || self.requests == 0 || self.wall.is_zero() {
            return write!(f, "CPU n/a");
        }
        let wall = self.wall.as_secs_f64();
        let n = self.requests as f64;
        write!(
            f,
            "server CPU {:.0}% of a core ({:.0} us/req), load generator {:.0}% ({:.0} us/req)",
            100.0 * self.server.as_secs_f64() / wall,
            1e6 * self.server.as_secs_f64() / n,
            100.0 * self.client.as_secs_f64() / wall,
            1e6 * self.client.as_secs_f64() / n,
        )
    }
}

// ---------------------------------------------------------------- helpers

fn create_token(bin: &Path, url: &str) -> Result<String> {
    let out = Command::new(bin)
        .args(["token", "create", "--scope", "scim", "--name", "bench"])
        .arg("--database-url")
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} token create", bin.display()))?;
    if !out.status.success() {
        bail!(
            "`rolecall token create` failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let stdout = String::from_utf8(out.stdout).context("token create printed non-UTF-8")?;
    let token = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .context("`rolecall token create` printed nothing on stdout")?;
    if token.contains(char::is_whitespace) {
        bail!("`rolecall token create`: last stdout line {token:?} does not look like a token");
    }
    Ok(token.to_string())
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn tail(path: &Path, n: usize) -> Vec<String> {
    let Ok(file) = File::open(path) else {
        return vec!["(no log)".into()];
    };
    let lines: Vec<String> = BufReader::new(file).lines().map_while(|l| l.ok()).collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}
