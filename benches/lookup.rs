//! Role-lookup benchmark (issue #4): `GET /v1/users/{user}/roles` and
//! `POST /access/v1/evaluation` beside `GET /healthz`, with 1,000 to 100,000
//! users loaded, against the real `rolecall serve` binary.
//!
//! `cargo bench --bench lookup [-- --backend sqlite|postgres|both
//!   --sizes 1000,10000,100000 --connections N --requests N --rounds N
//!   --warmup N --threads N --pin --release-server PATH]`
//!
//! For each back-end and size it makes a fresh database, runs
//! `rolecall migrate`, seeds users, groups and memberships with bulk
//! multi-row INSERTs (each user in 10 groups of 100 members), applies a
//! mapping document with `rolecall mappings apply`, creates a `lookup` token
//! with the CLI, then starts `rolecall serve` (which loads everything into
//! memory), and drives healthz / lookup / evaluation in interleaved rounds
//! over keep-alive connections. See BENCHMARKS.md.

mod loadgen;

use loadgen::machine::print_machine_load;
use loadgen::seed::{group_name, seed, user_name, Directory};
use loadgen::server::{
    cli, create_token, timed, with_server, Backend, BenchDb, CpuUse, Memory, Server, ServerConfig,
};

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use loadgen::{contains, ms, snippet, splitmix64, Checked, LoadGen, Report};

const USAGE: &str = "\
usage: cargo bench --bench lookup -- [options]
  --backend B            sqlite | postgres | both (default sqlite)
  --sizes N,N,...        user counts to load, multiples of 100, >= 500 (default 1000,10000,100000);
                         each size has users/10 groups of 100 members (10 groups per user)
  --connections N        concurrent keep-alive connections (default 32)
  --requests N           requests per endpoint (healthz, lookup, evaluation) per size (default 120000)
  --rounds N             interleaved rounds the requests are split into (default 12)
  --warmup N             requests per endpoint before measuring (default 2000)
  --threads N            load generator runtime threads (default 1)
  --pin                  server on core 0 (taskset -c 0), this process (seeding, CLI and
                         load generator) on core 1 (taskset -a -p -c 1 <own pid>)
  --perf DIR             afterwards, drive each endpoint alone for --perf-secs seconds under
                         `perf record -F 999 --call-graph dwarf -p <server pid>`, writing DIR/<backend>-<users>-<endpoint>.data
  --perf-secs N          seconds per endpoint with --perf (default 5)
  --release-server PATH  rolecall binary to benchmark (default: this build's)
env ROLECALL_TEST_PG_URL   PostgreSQL admin URL (default postgres://postgres@127.0.0.1:5432/postgres)";

/// Groups per user, and members per group.
const LAYERS: usize = 10;
const GROUP_SIZE: usize = 100;

/// The workspaces of the mapping document; lookups ask about these.
const WORKSPACES: [&str; 5] = [
    "engineering",
    "legal",
    "production",
    "staging",
    "development",
];

/// The model every evaluation asks about.
const MODEL: &str = "claude-haiku-4-20250514";

/// Targets (issue #4).
const TARGET_RPS_RATIO: f64 = 0.8;
const TARGET_P99_RATIO: f64 = 1.5;
const TARGET_RSS_MB: f64 = 300.0;

#[derive(Debug)]
struct Options {
    backends: Vec<Backend>,
    sizes: Vec<usize>,
    connections: usize,
    requests: usize,
    rounds: usize,
    warmup: usize,
    threads: usize,
    pin: bool,
    perf: Option<PathBuf>,
    perf_secs: usize,
    server: PathBuf,
}

fn parse_args() -> Result<Option<Options>> {
    let mut opts = Options {
        backends: vec![Backend::Sqlite],
        sizes: vec![1_000, 10_000, 100_000],
        connections: 32,
        requests: 120_000,
        rounds: 12,
        warmup: 2_000,
        threads: 1,
        pin: false,
        perf: None,
        perf_secs: 5,
        server: PathBuf::from(env!("CARGO_BIN_EXE_rolecall")),
    };
    let run = loadgen::args::parse("lookup", USAGE, |flag, f| {
        match flag {
            "--connections" => opts.connections = f.number()?,
            "--requests" => opts.requests = f.number()?,
            "--rounds" => opts.rounds = f.number()?,
            "--warmup" => opts.warmup = f.number()?,
            "--threads" => opts.threads = f.number()?,
            "--pin" => opts.pin = true,
            "--perf" => opts.perf = Some(PathBuf::from(f.value()?)),
            "--perf-secs" => opts.perf_secs = f.number()?,
            "--release-server" => opts.server = PathBuf::from(f.value()?),
            "--backend" => opts.backends = Backend::parse_list(&f.value()?)?,
            "--sizes" => {
                let v = f.value()?;
                let mut sizes = Vec::new();
                for part in v.split(',').filter(|p| !p.trim().is_empty()) {
                    let n = loadgen::args::parse_number("--sizes", part)?;
                    if n % GROUP_SIZE != 0 || n < 5 * GROUP_SIZE {
                        bail!("--sizes: {n} is not a multiple of {GROUP_SIZE} of at least 500");
                    }
                    sizes.push(n);
                }
                if sizes.is_empty() {
                    bail!("--sizes needs at least one size");
                }
                opts.sizes = sizes;
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(run.then_some(opts))
}

fn main() {
    loadgen::args::exit_with("lookup", run());
}

fn run() -> Result<bool> {
    let Some(opts) = parse_args()? else {
        return Ok(true);
    };
    loadgen::server::check_binary(&opts.server)?;
    println!(
        "lookup bench: server {}, sizes {:?} users, {} connections, {} requests per endpoint \
         per size in {} interleaved rounds, load generator {} thread(s), {} cores online",
        opts.server.display(),
        opts.sizes,
        opts.connections,
        opts.requests,
        opts.rounds,
        opts.threads,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    loadgen::machine::prepare(opts.pin);

    let mut results = Vec::new();
    let mut ok = true;
    for &backend in &opts.backends {
        for &size in &opts.sizes {
            println!("\n=== {} / {size} users ===", backend.name());
            match bench_size(&opts, backend, size) {
                Ok(Some(r)) => results.push(r),
                Ok(None) => break, // back-end unavailable: skip its other sizes
                Err(e) => {
                    ok = false;
                    eprintln!("\n!!! {} / {size} users FAILED: {e:#}\n", backend.name());
                }
            }
        }
    }
    print_summary(&opts, &results);
    print_machine_load("after");
    Ok(ok)
}

// ---------------------------------------------------------------- data set

/// The synthetic directory for one size: `users` users, `users / 10` groups
/// in 10 layers of `users / 100` groups; each user is in exactly one group of
/// each layer (so in 10 groups), each group has exactly 100 members.
#[derive(Clone, Copy, Debug)]
struct Dataset {
    users: usize,
}

impl Dataset {
    /// Groups per layer.
    fn layer(&self) -> usize {
        self.users / GROUP_SIZE
    }

    fn groups(&self) -> usize {
        self.layer() * LAYERS
    }

    fn memberships(&self) -> usize {
        self.users * LAYERS
    }

    /// The group of layer `j` user `u` is in: a different permutation of
    /// the users per layer (layer 0 is the identity: users 0-99 in group 0).
    fn group_of(&self, u: usize, j: usize) -> usize {
        let n = self.users as u64;
        let (a, b) = if j == 0 {
            (1, 0)
        } else {
            let mut a = (splitmix64(j as u64) % n) | 1;
            while gcd(a, n) != 1 {
                a += 2;
            }
            (a, splitmix64(j as u64 + 1000) % n)
        };
        let p = ((u as u64 * a + b) % n) as usize;
        j * self.layer() + p / GROUP_SIZE
    }

    /// The workspace where user `u` is a `member` (through its layer-0 group).
    fn home_workspace(u: usize) -> &'static str {
        WORKSPACES[(u / GROUP_SIZE) % WORKSPACES.len()]
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The mapping document: the roles of `mappings/rolecall.toml`, its five
/// workspaces, and rules that give every user roles: each layer-0 group is
/// `member` in one workspace (round robin), each layer-1 group `developer`
/// in another; one group each is `admin` and `owner` organization-wide,
/// `billing` organization-wide, and `viewer` on each Legal project.
fn mapping_toml(d: &Dataset) -> String {
    let mut s = String::from(
        r#"# Generated by benches/lookup.rs.
default_role = ""

[roles.owner]
rank = 100
description = "Full access, billing and member management"
permissions = ["*"]
models = ["claude-*"]
max_tokens = 8192
rpm = 200

[roles.admin]
rank = 80
description = "Manage workspaces, members and keys"
permissions = ["messages.create", "chats.read", "members.manage", "workspaces.manage", "projects.manage", "keys.manage", "keys.manage_own", "usage.view", "usage.view_own"]
models = ["claude-haiku-*", "claude-sonnet-*", "claude-opus-*"]
max_tokens = 8192
rpm = 200

[roles.developer]
rank = 60
description = "Create and revoke own API keys, view own usage, call sonnet and haiku"
permissions = ["messages.create", "chats.read", "keys.manage_own", "usage.view_own"]
models = ["claude-haiku-*", "claude-sonnet-*"]
max_tokens = 4096
rpm = 60

[roles.member]
rank = 40
description = "Send prompts (haiku, rate limited) and read chats"
permissions = ["messages.create", "chats.read"]
models = ["claude-haiku-*"]
max_tokens = 512
rpm = 10

[roles.viewer]
rank = 20
description = "Read chats; no direct API access"
permissions = ["chats.read"]
models = []
max_tokens = 0
rpm = 0

[roles.billing]
rank = 10
description = "View invoices and usage reports"
permissions = ["billing.view", "usage.view"]
models = []
max_tokens = 0
rpm = 0

[[workspaces]]
name = "engineering"
projects = []

[[workspaces]]
name = "legal"
projects = ["contracts", "litigation"]

[[workspaces]]
name = "production"
projects = []

[[workspaces]]
name = "staging"
projects = []

[[workspaces]]
name = "development"
projects = []
"#,
    );
    let layer = d.layer();
    let mut rule = |group: usize, role: &str, workspace: Option<&str>, project: Option<&str>| {
        let _ = write!(
            s,
            "\n[[rules]]\ngroup = \"{}\"\nrole = \"{role}\"\n",
            group_name(group)
        );
        if let Some(w) = workspace {
            let _ = writeln!(s, "workspace = \"{w}\"");
        }
        if let Some(p) = project {
            let _ = writeln!(s, "project = \"{p}\"");
        }
    };
    for k in 0..layer {
        rule(k, "member", Some(WORKSPACES[k % WORKSPACES.len()]), None);
    }
    for k in 0..layer {
        rule(
            layer + k,
            "developer",
            Some(WORKSPACES[(k + 2) % WORKSPACES.len()]),
            None,
        );
    }
    rule(2 * layer, "admin", None, None);
    rule(3 * layer, "viewer", Some("legal"), Some("contracts"));
    rule(3 * layer + 1, "viewer", Some("legal"), Some("litigation"));
    rule(4 * layer, "billing", None, None);
    rule(5 * layer, "owner", None, None);
    s
}

fn mapping_rules(d: &Dataset) -> usize {
    2 * d.layer() + 5
}

/// Load the data set: every user in one group of each layer.
fn seed_dataset(url: &str, d: &Dataset) -> Result<()> {
    let mut members: Vec<Vec<u32>> = vec![Vec::with_capacity(GROUP_SIZE); d.groups()];
    for u in 0..d.users {
        for j in 0..LAYERS {
            members[d.group_of(u, j)].push(u as u32);
        }
    }
    if let Some((g, m)) = members
        .iter()
        .enumerate()
        .find(|(_, m)| m.len() != GROUP_SIZE)
    {
        bail!("bug in the data set: group {g} has {} members", m.len());
    }
    let pairs: Vec<(u32, u32)> = members
        .iter()
        .enumerate()
        .flat_map(|(g, m)| m.iter().map(move |&u| (g as u32, u)))
        .collect();
    seed(
        url,
        &Directory {
            users: d.users,
            groups: d.groups(),
            memberships: &pairs,
        },
    )
}

// ---------------------------------------------------------------- one run

/// The figures of one back-end at one size.
struct SizeResult {
    backend: Backend,
    data: Dataset,
    seed_secs: f64,
    apply_secs: f64,
    startup_secs: f64,
    healthz: Report,
    lookup: Report,
    eval: Report,
    cpu: [CpuUse; 3],
    rss_start: Option<Memory>,
    rss_after: Option<Memory>,
    log_problems: usize,
}

impl SizeResult {
    fn rps_ratio(&self, r: &Report) -> f64 {
        ratio(r.rps(), self.healthz.rps())
    }

    fn p99_ratio(&self, r: &Report) -> f64 {
        ratio(ms(r.percentile(99.0)), ms(self.healthz.percentile(99.0)))
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// One back-end at one size; `None` when the back-end is unavailable.
fn bench_size(opts: &Options, backend: Backend, size: usize) -> Result<Option<SizeResult>> {
    let Some(db) = BenchDb::create(backend, "lookup", &format!("_{size}"))? else {
        return Ok(None);
    };
    let url = db.url.as_str();
    let data = Dataset { users: size };
    cli(&opts.server, &["migrate"], url)?;

    let started = Instant::now();
    seed_dataset(url, &data)?;
    let seed_secs = started.elapsed().as_secs_f64();
    println!(
        "seeded {} users, {} groups, {} memberships in {seed_secs:.1} s",
        data.users,
        data.groups(),
        data.memberships()
    );

    let mapping = db.dir.path().join("mapping.toml");
    std::fs::write(&mapping, mapping_toml(&data))
        .with_context(|| format!("writing {}", mapping.display()))?;
    let started = Instant::now();
    let out = cli(
        &opts.server,
        &["mappings", "apply", &mapping.to_string_lossy()],
        url,
    )?;
    let apply_secs = started.elapsed().as_secs_f64();
    println!(
        "`rolecall mappings apply` ({} rules) took {apply_secs:.1} s; it printed {} lines, last: {}",
        mapping_rules(&data),
        out.lines().count(),
        out.lines().last().unwrap_or("").trim()
    );

    let token = create_token(&opts.server, url, "lookup", "bench-lookup")?;
    let config = ServerConfig {
        bin: &opts.server,
        url,
        dir: db.dir.path(),
        pin: opts.pin,
        extra_args: &[],
    };
    let (m, log_problems) = with_server(&config, |server| {
        measure(opts, backend, server, &token, data)
    })?;
    db.print_size();
    Ok(Some(SizeResult {
        backend,
        data,
        seed_secs,
        apply_secs,
        startup_secs: m.startup_secs,
        healthz: m.healthz,
        lookup: m.lookup,
        eval: m.eval,
        cpu: m.cpu,
        rss_start: m.rss_start,
        rss_after: m.rss_after,
        log_problems,
    }))
}

struct Measured {
    startup_secs: f64,
    healthz: Report,
    lookup: Report,
    eval: Report,
    cpu: [CpuUse; 3],
    rss_start: Option<Memory>,
    rss_after: Option<Memory>,
}

const ENDPOINTS: [&str; 3] = ["healthz", "lookup", "evaluation"];

fn measure(
    opts: &Options,
    backend: Backend,
    server: &mut Server,
    token: &str,
    data: Dataset,
) -> Result<Measured> {
    let startup = server.wait_healthy(Duration::from_secs(300))?;
    let startup_secs = startup.as_secs_f64();
    let rss_start = server.memory();
    println!(
        "server healthy {startup_secs:.2} s after start; memory {}",
        Memory::show(rss_start)
    );
    let addr = server.addr;
    let host = addr.to_string();
    let auth = format!("Bearer {token}");
    check_answers(addr, &host, &auth)?;

    let gen = LoadGen::new(addr)
        .connections(opts.connections)
        .threads(opts.threads);
    let healthz = loadgen::build_request("GET", "/healthz", &host, &[], b"");
    let workload = |endpoint: usize, seed: u64| -> Box<dyn loadgen::Workload> {
        match endpoint {
            0 => Box::new(healthz_workload(healthz.clone())),
            1 => Box::new(lookup_workload(&host, &auth, data, seed)),
            _ => Box::new(evaluation_workload(&host, &auth, data, seed)),
        }
    };

    // Warm-up.
    for (e, name) in ENDPOINTS.iter().enumerate() {
        let r = gen.run_fixed(opts.warmup, BoxedWorkload(workload(e, 1)))?;
        if !r.all(200) {
            bail!("warm-up {name}: {}", r.status_summary());
        }
    }
    println!("warm-up: {} requests per endpoint, all 200", opts.warmup);

    // Interleaved rounds; the endpoint that goes first rotates.
    let per_round = opts.requests.div_ceil(opts.rounds);
    let mut reports: [Report; 3] = Default::default();
    let mut cpu = [CpuUse::total(), CpuUse::total(), CpuUse::total()];
    for round in 0..opts.rounds {
        let mut line = format!("  round {:>2}/{}:", round + 1, opts.rounds);
        let mut this: [Option<Report>; 3] = Default::default();
        for k in 0..3 {
            let e = (round + k) % 3;
            let seed = 0x5eed_0000 + (round * 3 + e) as u64 * 1_000_003;
            let (r, c) = timed(server, || {
                gen.run_fixed(per_round, BoxedWorkload(workload(e, seed)))
            })?;
            cpu[e].add(c);
            this[e] = Some(r);
        }
        for (e, r) in this.into_iter().enumerate() {
            let Some(r) = r else { continue };
            let _ = write!(
                line,
                " {} {:>6.0}/s p50/p99 {:.2}/{:.2} ms |",
                ENDPOINTS[e],
                r.rps(),
                ms(r.percentile(50.0)),
                ms(r.percentile(99.0)),
            );
            reports[e].merge(r);
        }
        println!("{}", line.trim_end_matches('|').trim_end());
    }
    server.check_alive()?;
    let rss_after = server.memory();
    let [healthz, lookup, eval] = reports;
    for (e, r) in [&healthz, &lookup, &eval].into_iter().enumerate() {
        println!("  {:<10} {}", ENDPOINTS[e], r.summary());
        println!("             {}", cpu[e]);
    }
    println!("  memory after the load phase: {}", Memory::show(rss_after));
    for (e, r) in [&healthz, &lookup, &eval].into_iter().enumerate() {
        if !r.all(200) {
            bail!(
                "{}: every answer must be 200 (and pass its check): {}",
                ENDPOINTS[e],
                r.status_summary()
            );
        }
    }
    if let Some(dir) = &opts.perf {
        let Some(pid) = server.pid() else {
            bail!("the server is not running");
        };
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (e, name) in ENDPOINTS.iter().enumerate() {
            let out = dir.join(format!("{}-{}-{name}.data", backend.name(), data.users));
            let perf = Command::new("perf")
                .args(["record", "-F", "999", "--call-graph", "dwarf,16384", "-p"])
                .arg(pid.to_string())
                .arg("-o")
                .arg(&out)
                .args(["--", "sleep", &opts.perf_secs.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting perf record")?;
            // Load from before perf starts sampling until after it stops.
            let stop = loadgen::Stop::Duration(Duration::from_secs(opts.perf_secs as u64 + 1));
            let r = gen.run_for(stop, BoxedWorkload(workload(e, 0xbeef + e as u64)))?;
            let status = perf.wait_with_output().context("waiting for perf")?.status;
            println!(
                "  perf {name}: {:.0} req/s while profiling; perf {status}; {}",
                r.rps(),
                out.display()
            );
            if !r.all(200) {
                bail!("{name} under perf: {}", r.status_summary());
            }
        }
    }
    Ok(Measured {
        startup_secs,
        healthz,
        lookup,
        eval,
        cpu,
        rss_start,
        rss_after,
    })
}

/// A boxed workload (the three endpoints' workloads have different types).
struct BoxedWorkload(Box<dyn loadgen::Workload>);

impl loadgen::Workload for BoxedWorkload {
    fn write_request(&self, index: usize, buf: &mut Vec<u8>) {
        self.0.write_request(index, buf)
    }

    fn check(&self, index: usize, status: u16, body: &[u8]) -> Result<(), String> {
        self.0.check(index, status, body)
    }
}

fn healthz_workload(request: Vec<u8>) -> impl loadgen::Workload {
    Checked {
        make: move |_: usize, buf: &mut Vec<u8>| buf.extend_from_slice(&request),
        check: |_: usize, status: u16, body: &[u8]| {
            if status == 200 {
                Ok(())
            } else {
                Err(format!("body: {}", snippet(body)))
            }
        },
    }
}

/// Request `i` of a run with `seed`: a pseudo-random user, and the workspace
/// asked about: the user's home workspace (where it is a member, so the
/// answer has an effective role and a model call is allowed) three times in
/// four, else a pseudo-random one of the five.
fn pick(data: Dataset, seed: u64, i: usize) -> (usize, &'static str, bool) {
    let r = splitmix64(seed.wrapping_add(i as u64));
    let u = (r % data.users as u64) as usize;
    if (r >> 40) % 4 == 3 {
        let w = WORKSPACES[((r >> 48) % WORKSPACES.len() as u64) as usize];
        (u, w, w == Dataset::home_workspace(u))
    } else {
        (u, Dataset::home_workspace(u), true)
    }
}

/// `GET /v1/users/{userName}/roles?workspace=W`; each answer must be 200
/// and name the user; at its home workspace it must have an effective role.
fn lookup_workload(host: &str, auth: &str, data: Dataset, seed: u64) -> impl loadgen::Workload {
    let host = host.to_string();
    let auth = auth.to_string();
    Checked {
        make: move |i: usize, buf: &mut Vec<u8>| {
            let (u, w, _) = pick(data, seed, i);
            let path = format!(
                "/v1/users/{}/roles?workspace={w}",
                loadgen::url_encode(&user_name(u))
            );
            loadgen::write_request(buf, "GET", &path, &host, &[("Authorization", &auth)], b"");
        },
        check: move |i: usize, status: u16, body: &[u8]| {
            if status != 200 {
                return Err(format!("body: {}", snippet(body)));
            }
            let (u, w, home) = pick(data, seed, i);
            let name = format!("\"userName\":\"{}\"", user_name(u));
            if !contains(body, name.as_bytes()) {
                return Err(format!(
                    "answer for {w} does not name {name}: {}",
                    snippet(body)
                ));
            }
            if home && !contains(body, b"\"effective\":{") {
                return Err(format!(
                    "no effective role for {} at its home workspace {w}: {}",
                    user_name(u),
                    snippet(body)
                ));
            }
            Ok(())
        },
    }
}

fn evaluation_body(u: usize, w: &str) -> String {
    format!(
        concat!(
            r#"{{"subject":{{"type":"user","id":"{user}"}},"action":{{"name":"messages.create"}},"#,
            r#""resource":{{"type":"model","id":"{model}","properties":{{"workspace":"{w}"}}}},"#,
            r#""context":{{"max_tokens":4096}}}}"#
        ),
        user = user_name(u),
        model = MODEL,
        w = w
    )
}

/// `POST /access/v1/evaluation` (a model call); each answer must be 200 with
/// a decision, `true` at the user's home workspace.
fn evaluation_workload(host: &str, auth: &str, data: Dataset, seed: u64) -> impl loadgen::Workload {
    let host = host.to_string();
    let auth = auth.to_string();
    Checked {
        make: move |i: usize, buf: &mut Vec<u8>| {
            let (u, w, _) = pick(data, seed, i);
            let body = evaluation_body(u, w);
            loadgen::write_request(
                buf,
                "POST",
                "/access/v1/evaluation",
                &host,
                &[
                    ("Authorization", &auth),
                    ("content-type", "application/json"),
                ],
                body.as_bytes(),
            );
        },
        check: move |i: usize, status: u16, body: &[u8]| {
            if status != 200 {
                return Err(format!("body: {}", snippet(body)));
            }
            let (u, w, home) = pick(data, seed, i);
            if home && !contains(body, b"\"decision\":true") {
                return Err(format!(
                    "{} denied {MODEL} at its home workspace {w}: {}",
                    user_name(u),
                    snippet(body)
                ));
            }
            if !contains(body, b"\"decision\":") {
                return Err(format!("no decision: {}", snippet(body)));
            }
            Ok(())
        },
    }
}

/// Before loading: the gateway endpoints refuse a request without a token,
/// and give the expected answers for a sample user (printed, for the record).
fn check_answers(addr: SocketAddr, host: &str, auth: &str) -> Result<()> {
    let path = format!(
        "/v1/users/{}/roles?workspace=engineering",
        loadgen::url_encode(&user_name(0))
    );
    let req = loadgen::build_request("GET", &path, host, &[], b"");
    let (status, body) = loadgen::fetch(addr, &req, Duration::from_secs(10))?;
    if status != 401 {
        bail!(
            "GET {path} without a token answered {status}, expected 401: {}",
            snippet(&body)
        );
    }
    let req = loadgen::build_request("GET", &path, host, &[("Authorization", auth)], b"");
    let (status, body) = loadgen::fetch(addr, &req, Duration::from_secs(10))?;
    println!(
        "sample lookup: GET {path} -> {status} ({} bytes): {}",
        body.len(),
        snippet(&body)
    );
    if status != 200 || !contains(&body, b"\"effective\":{") {
        bail!("the sample lookup did not resolve a role");
    }
    let eval = evaluation_body(0, "engineering");
    let req = loadgen::build_request(
        "POST",
        "/access/v1/evaluation",
        host,
        &[
            ("Authorization", auth),
            ("content-type", "application/json"),
        ],
        eval.as_bytes(),
    );
    let (status, body) = loadgen::fetch(addr, &req, Duration::from_secs(10))?;
    println!(
        "sample evaluation ({} bytes in) -> {status}: {}",
        eval.len(),
        snippet(&body)
    );
    if status != 200 || !contains(&body, b"\"decision\":true") {
        bail!("the sample evaluation was not allowed");
    }
    Ok(())
}

// ---------------------------------------------------------------- summary

fn p50_p99(r: &Report) -> String {
    format!(
        "{:.2}/{:.2}",
        ms(r.percentile(50.0)),
        ms(r.percentile(99.0))
    )
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

fn print_summary(opts: &Options, results: &[SizeResult]) {
    println!("\n=== summary ===");
    if results.is_empty() {
        println!("nothing completed");
        return;
    }
    println!(
        "{} connections, {} requests per endpoint per size in {} interleaved rounds{}",
        opts.connections,
        opts.requests,
        opts.rounds,
        if opts.pin {
            "; server pinned to core 0, load generator to core 1"
        } else {
            "; unpinned"
        }
    );
    println!(
        "{:<8} {:>7} {:>8} {:>12} {:>8} {:>12} {:>8} {:>12} {:>11} {:>11} {:>11} {:>11} {:>8} {:>8}",
        "backend",
        "users",
        "healthz/s",
        "p50/p99 ms",
        "lookup/s",
        "p50/p99 ms",
        "eval/s",
        "p50/p99 ms",
        "lookup rps",
        "lookup p99",
        "eval rps",
        "eval p99",
        "RSS MB",
        "start s"
    );
    for r in results {
        println!(
            "{:<8} {:>7} {:>8.0} {:>12} {:>8.0} {:>12} {:>8.0} {:>12} {:>11.2} {:>11.2} {:>11.2} {:>11.2} {:>8} {:>8.2}",
            r.backend.name(),
            r.data.users,
            r.healthz.rps(),
            p50_p99(&r.healthz),
            r.lookup.rps(),
            p50_p99(&r.lookup),
            r.eval.rps(),
            p50_p99(&r.eval),
            r.rps_ratio(&r.lookup),
            r.p99_ratio(&r.lookup),
            r.rps_ratio(&r.eval),
            r.p99_ratio(&r.eval),
            r.rss_after
                .map_or_else(|| "?".to_string(), |m| format!("{:.0}", m.rss_mb())),
            r.startup_secs
        );
    }
    println!("(ratios are to /healthz in the same run: rps target >= {TARGET_RPS_RATIO}, p99 target <= {TARGET_P99_RATIO})");

    println!(
        "\nserver CPU per request (us), set-up times, and the CPU other processes took \
         during the load phases (% of one core; high = disturbed run):"
    );
    println!(
        "{:<8} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>13} {:>10} {:>9}",
        "backend",
        "users",
        "healthz",
        "lookup",
        "eval",
        "seed s",
        "apply s",
        "start s",
        "RSS@start MB",
        "peak MB",
        "others %"
    );
    for r in results {
        let us = CpuUse::server_us;
        println!(
            "{:<8} {:>7} {:>9} {:>9} {:>9} {:>9.1} {:>9.1} {:>10.2} {:>13} {:>10} {:>9}",
            r.backend.name(),
            r.data.users,
            us(&r.cpu[0]),
            us(&r.cpu[1]),
            us(&r.cpu[2]),
            r.seed_secs,
            r.apply_secs,
            r.startup_secs,
            r.rss_start
                .map_or_else(|| "?".to_string(), |m| format!("{:.0}", m.rss_mb())),
            r.rss_after
                .map_or_else(|| "?".to_string(), |m| format!("{:.0}", m.hwm_mb())),
            {
                let mut all = CpuUse::total();
                r.cpu.iter().for_each(|c| all.add(*c));
                all.others_pct()
            }
        );
    }

    println!("\ntargets (issue #4):");
    for r in results {
        let who = format!("{} {:>6} users", r.backend.name(), r.data.users);
        println!(
            "  {who}: lookup rps {:.2} x healthz ({}), p99 {:.2} x ({}); evaluation rps {:.2} x ({}), p99 {:.2} x ({})",
            r.rps_ratio(&r.lookup),
            verdict(r.rps_ratio(&r.lookup) >= TARGET_RPS_RATIO),
            r.p99_ratio(&r.lookup),
            verdict(r.p99_ratio(&r.lookup) <= TARGET_P99_RATIO),
            r.rps_ratio(&r.eval),
            verdict(r.rps_ratio(&r.eval) >= TARGET_RPS_RATIO),
            r.p99_ratio(&r.eval),
            verdict(r.p99_ratio(&r.eval) <= TARGET_P99_RATIO),
        );
        if r.data.users >= 100_000 {
            if let Some(m) = r.rss_after {
                println!(
                    "  {who}: resident memory {:.0} MB after the load phase (target < {TARGET_RSS_MB:.0} MB: {}; peak {:.0} MB)",
                    m.rss_mb(),
                    verdict(m.rss_mb() < TARGET_RSS_MB),
                    m.hwm_mb()
                );
            }
        }
    }
    // Flatness: the lookup at each size against the smallest size.
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let rs: Vec<&SizeResult> = results.iter().filter(|r| r.backend == backend).collect();
        if rs.len() < 2 {
            continue;
        }
        let base = rs[0];
        let mut line = format!("  {} lookup vs size:", backend.name());
        for r in &rs {
            let _ = write!(
                line,
                " {} users {:.0}/s p99 {:.2} ms (rps ratio {:.2}, p99 ratio {:.2});",
                r.data.users,
                r.lookup.rps(),
                ms(r.lookup.percentile(99.0)),
                r.rps_ratio(&r.lookup),
                r.p99_ratio(&r.lookup)
            );
        }
        println!("{}", line.trim_end_matches(';'));
        if let Some(last) = rs.last() {
            println!(
                "  {} lookup at {} users vs {} users: rps ratio-to-healthz {:.2} vs {:.2}, \
                 server CPU per lookup {} vs {} us",
                backend.name(),
                last.data.users,
                base.data.users,
                last.rps_ratio(&last.lookup),
                base.rps_ratio(&base.lookup),
                last.cpu[1].server_us(),
                base.cpu[1].server_us()
            );
        }
    }
    for r in results {
        if r.log_problems > 0 {
            println!(
                "{} {} users: server log: {} warning/error lines",
                r.backend.name(),
                r.data.users,
                r.log_problems
            );
        }
    }
}
