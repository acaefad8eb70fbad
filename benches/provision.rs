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

use loadgen::machine::print_machine_load;
use loadgen::server::{
    create_token, timed, with_server, Backend, BenchDb, CpuUse, Server, ServerConfig,
};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use loadgen::{json_uint_field, ms, snippet, splitmix64, Checked, LoadGen, Report};

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
A quick check that it runs: --users 500 --latency-requests 1000 --rounds 2 --serial-requests 100
env ROLECALL_TEST_PG_URL   PostgreSQL admin URL (default postgres://postgres@127.0.0.1:5432/postgres)";

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
    let run = loadgen::args::parse("provision", USAGE, |flag, f| {
        match flag {
            "--users" => opts.users = f.number()?,
            "--connections" => opts.connections = f.number()?,
            "--latency-requests" => opts.latency_requests = f.number()?,
            "--rounds" => opts.rounds = f.number()?,
            "--serial-requests" => opts.serial_requests = f.count()?,
            "--warmup" => opts.warmup = f.number()?,
            "--threads" => opts.threads = f.number()?,
            "--pin" => opts.pin = true,
            "--release-server" => opts.server = PathBuf::from(f.value()?),
            "--backend" => opts.backends = Backend::parse_list(&f.value()?)?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(run.then_some(opts))
}

fn main() {
    loadgen::args::exit_with("provision", run());
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
    log_problems: usize,
}

fn run() -> Result<bool> {
    let Some(opts) = parse_args()? else {
        return Ok(true);
    };
    loadgen::server::check_binary(&opts.server)?;
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
    loadgen::machine::prepare(opts.pin);

    let (results, ok) =
        loadgen::server::each_backend(&opts.backends, |backend| bench_backend(&opts, backend));
    print_table(&opts, &results);
    print_machine_load("after");
    Ok(ok)
}

fn bench_backend(opts: &Options, backend: Backend) -> Result<Option<Results>> {
    let Some(db) = BenchDb::create(backend, "bench", "")? else {
        return Ok(None);
    };
    let token = create_token(&opts.server, &db.url, "scim", "bench")?;
    let config = ServerConfig {
        bin: &opts.server,
        url: &db.url,
        dir: db.dir.path(),
        pin: opts.pin,
        extra_args: &[],
    };
    let (mut results, log_problems) =
        with_server(&config, |server| measure(opts, backend, server, &token))?;
    results.log_problems = log_problems;
    db.print_size();
    Ok(Some(results))
}

fn measure(opts: &Options, backend: Backend, server: &mut Server, token: &str) -> Result<Results> {
    let addr = server.addr;
    let host = addr.to_string();
    let auth = format!("Bearer {token}");
    let gen = LoadGen::new(addr)
        .connections(opts.connections)
        .threads(opts.threads);
    let mut server_cpu = Vec::new();

    let up = server.wait_healthy(Duration::from_secs(60))?;
    println!("server healthy after {:.2} s", up.as_secs_f64());
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
    let feed_before = feed_counters(addr, &host)?;
    let loaded = target.measure(&gen, opts.latency_requests, opts.rounds, 0)?;
    let feed_after = feed_counters(addr, &host)?;
    let (barriers, catch_ups) = (feed_after.0 - feed_before.0, feed_after.1 - feed_before.1);
    if barriers > 0.0 {
        println!(
            "  read barriers {barriers:.0}, change-feed catch-ups {catch_ups:.0} \
             ({:.1} filter requests per feed query)",
            barriers / catch_ups.max(1.0)
        );
    } else {
        println!("  no read barriers (catch-ups {catch_ups:.0}: the follower's polls)");
    }
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
        log_problems: 0,
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

/// `rolecall_feed_barriers_total` and `rolecall_feed_catch_ups_total` from `/metrics`.
fn feed_counters(addr: SocketAddr, host: &str) -> Result<(f64, f64)> {
    let req = loadgen::build_request("GET", "/metrics", host, &[], b"");
    let (status, body) = loadgen::fetch(addr, &req, Duration::from_secs(10))?;
    if status != 200 {
        bail!("GET /metrics answered {status}: {}", snippet(&body));
    }
    let text = String::from_utf8_lossy(&body);
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok((
        value("rolecall_feed_barriers_total "),
        value("rolecall_feed_catch_ups_total "),
    ))
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
        if r.log_problems > 0 {
            println!(
                "{:<9} server log: {} warning/error lines",
                r.backend.name(),
                r.log_problems
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
