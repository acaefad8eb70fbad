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

use loadgen::machine::{pin_self_to_core, print_machine_load, redact, with_database, PgDatabase};

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use loadgen::{ms, Checked, LoadGen, Report};

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

const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

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
        let number = |name: &str, v: &str| -> Result<usize> {
            let n: usize = v
                .trim()
                .replace('_', "")
                .parse()
                .with_context(|| format!("{name}: {v:?} is not a number"))?;
            if n == 0 {
                bail!("{name} must be at least 1");
            }
            Ok(n)
        };
        match flag.as_str() {
            "--bench" => bench_mode = true,
            "--connections" => {
                opts.connections = number("--connections", &value("--connections")?)?
            }
            "--requests" => opts.requests = number("--requests", &value("--requests")?)?,
            "--rounds" => opts.rounds = number("--rounds", &value("--rounds")?)?,
            "--warmup" => opts.warmup = number("--warmup", &value("--warmup")?)?,
            "--threads" => opts.threads = number("--threads", &value("--threads")?)?,
            "--pin" => opts.pin = true,
            "--perf" => opts.perf = Some(PathBuf::from(value("--perf")?)),
            "--perf-secs" => opts.perf_secs = number("--perf-secs", &value("--perf-secs")?)?,
            "--release-server" => opts.server = PathBuf::from(value("--release-server")?),
            "--sizes" => {
                let v = value("--sizes")?;
                let mut sizes = Vec::new();
                for part in v.split(',').filter(|p| !p.trim().is_empty()) {
                    let n = number("--sizes", part)?;
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
        println!("lookup: not run (use `cargo bench --bench lookup`)");
        return Ok(None);
    }
    Ok(Some(opts))
}

fn main() {
    match run() {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("lookup bench failed: {e:#}");
            std::process::exit(1);
        }
    }
}

fn run() -> Result<bool> {
    let Some(opts) = parse_args()? else {
        return Ok(true);
    };
    if !opts.server.exists() {
        bail!("server binary {} does not exist", opts.server.display());
    }
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
    print_machine_load("before");
    if opts.pin {
        pin_self_to_core(1);
    } else {
        println!("(unpinned: server and load generator share all cores; --pin separates them)");
    }

    let mut results = Vec::new();
    let mut ok = true;
    for &backend in &opts.backends {
        for &size in &opts.sizes {
            println!("\n=== {} / {size} users ===", backend.name());
            let outcome = match backend {
                Backend::Sqlite => bench_sqlite(&opts, size),
                Backend::Postgres => bench_postgres(&opts, size),
            };
            match outcome {
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

fn user_id(u: usize) -> String {
    format!("00000000-0000-4000-8000-{u:012x}")
}

fn user_name(u: usize) -> String {
    format!("user{u:06}@example.com")
}

fn group_id(g: usize) -> String {
    format!("00000000-0000-4000-9000-{g:012x}")
}

fn group_name(g: usize) -> String {
    format!("team-{g:05}")
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

/// Insert the users, groups and memberships with multi-row INSERTs in one
/// transaction (the schema must exist: `rolecall migrate` first).
fn seed(url: &str, d: &Dataset) -> Result<()> {
    use sqlx::{Connection, Executor};
    sqlx::any::install_default_drivers();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building a tokio runtime")?;
    rt.block_on(async {
        let mut conn = sqlx::AnyConnection::connect(url)
            .await
            .with_context(|| format!("connecting to {}", redact(url)))?;
        if url.starts_with("sqlite:") {
            conn.execute("PRAGMA synchronous = OFF").await?;
        }
        let sqlite = url.starts_with("sqlite:");
        let mut tx = conn.begin().await?;
        let mut timing = String::new();
        let mut phase = Instant::now();
        let ts = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();

        // Users: 7 parameters per row.
        const USER_ROWS: usize = 2_000;
        let mut u = 0;
        while u < d.users {
            let n = USER_ROWS.min(d.users - u);
            let mut sql = String::from(
                "INSERT INTO scim_users (id, user_name, user_name_lower, external_id, active, \
                 doc, version, created, last_modified) VALUES ",
            );
            let mut p = Params::new(sqlite);
            for r in 0..n {
                let _ = write!(
                    sql,
                    "{}({}, {}, {}, {}, TRUE, {}, 1, {}, {})",
                    if r == 0 { "" } else { ", " },
                    p.next(),
                    p.next(),
                    p.next(),
                    p.next(),
                    p.next(),
                    p.next(),
                    p.next()
                );
            }
            let mut q = sqlx::query(&sql);
            for i in u..u + n {
                let name = user_name(i);
                let ext = format!("ext-{i:06}");
                let doc = format!(
                    r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"{name}","externalId":"{ext}","active":true}}"#
                );
                q = q
                    .bind(user_id(i))
                    .bind(name.clone())
                    .bind(name)
                    .bind(ext)
                    .bind(doc)
                    .bind(ts.clone())
                    .bind(ts.clone());
            }
            q.execute(&mut *tx).await.context("inserting users")?;
            u += n;
        }
        let _ = write!(timing, "users {:.1} s", phase.elapsed().as_secs_f64());
        phase = Instant::now();

        // Groups: 6 parameters per row.
        const GROUP_ROWS: usize = 2_000;
        let mut g = 0;
        while g < d.groups() {
            let n = GROUP_ROWS.min(d.groups() - g);
            let mut sql = String::from(
                "INSERT INTO scim_groups (id, display_name, display_name_lower, doc, version, \
                 created, last_modified) VALUES ",
            );
            let mut p = Params::new(sqlite);
            for r in 0..n {
                let _ = write!(
                    sql,
                    "{}({}, {}, {}, {}, 1, {}, {})",
                    if r == 0 { "" } else { ", " },
                    p.next(),
                    p.next(),
                    p.next(),
                    p.next(),
                    p.next(),
                    p.next()
                );
            }
            let mut q = sqlx::query(&sql);
            for i in g..g + n {
                let name = group_name(i);
                let doc = format!(
                    r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"{name}"}}"#
                );
                q = q
                    .bind(group_id(i))
                    .bind(name.clone())
                    .bind(name)
                    .bind(doc)
                    .bind(ts.clone())
                    .bind(ts.clone());
            }
            q.execute(&mut *tx).await.context("inserting groups")?;
            g += n;
        }
        let _ = write!(timing, ", groups {:.1} s", phase.elapsed().as_secs_f64());
        phase = Instant::now();

        // Memberships, in primary-key order: 2 parameters per row.
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
        const MEMBER_ROWS: usize = 10_000;
        let pairs: Vec<(usize, u32)> = members
            .iter()
            .enumerate()
            .flat_map(|(g, m)| m.iter().map(move |&u| (g, u)))
            .collect();
        for chunk in pairs.chunks(MEMBER_ROWS) {
            let mut sql =
                String::from("INSERT INTO scim_members (group_id, member_id, member_type) VALUES ");
            let mut p = Params::new(sqlite);
            for r in 0..chunk.len() {
                let _ = write!(
                    sql,
                    "{}({}, {}, 'User')",
                    if r == 0 { "" } else { ", " },
                    p.next(),
                    p.next()
                );
            }
            let mut q = sqlx::query(&sql);
            for &(g, u) in chunk {
                q = q.bind(group_id(g)).bind(user_id(u as usize));
            }
            q.execute(&mut *tx).await.context("inserting memberships")?;
        }
        let _ = write!(timing, ", memberships {:.1} s", phase.elapsed().as_secs_f64());
        phase = Instant::now();
        tx.commit().await?;
        if !sqlite {
            // Leave autovacuum nothing to do on the fresh tables while the
            // load phase runs (PostgreSQL shares the cores).
            sqlx::raw_sql("VACUUM ANALYZE").execute(&mut conn).await?;
        }
        conn.close().await.ok();
        let _ = write!(timing, ", commit {:.1} s", phase.elapsed().as_secs_f64());
        println!("seeding: {timing}");
        Ok(())
    })
}

/// Bind-parameter placeholders for one statement: `$1, $2, ...` for
/// PostgreSQL; anonymous `?` for SQLite, where `$N` and `?N` are *named*
/// parameters that SQLite (and sqlx binding them) look up in a linear list,
/// which makes a 20,000-parameter INSERT quadratic.
struct Params {
    sqlite: bool,
    n: usize,
}

impl Params {
    fn new(sqlite: bool) -> Self {
        Params { sqlite, n: 0 }
    }

    fn next(&mut self) -> String {
        self.n += 1;
        if self.sqlite {
            "?".to_string()
        } else {
            format!("${}", self.n)
        }
    }
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

fn bench_sqlite(opts: &Options, size: usize) -> Result<Option<SizeResult>> {
    let dir = tempfile::Builder::new()
        .prefix("rolecall-lookup-")
        .tempdir()
        .context("creating a temp dir")?;
    let db = dir.path().join("rolecall.db");
    let url = format!("sqlite://{}", db.display());
    let result = bench_size(opts, Backend::Sqlite, size, &url, dir.path())?;
    if let Ok(meta) = std::fs::metadata(&db) {
        println!("sqlite file size: {} MiB", meta.len() / (1024 * 1024));
    }
    Ok(Some(result))
}

fn bench_postgres(opts: &Options, size: usize) -> Result<Option<SizeResult>> {
    let admin_url =
        std::env::var("ROLECALL_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_string());
    let name = format!("rolecall_lookup_{}_{size}", std::process::id());
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
        .prefix("rolecall-lookup-")
        .tempdir()
        .context("creating a temp dir")?;
    let url = with_database(&admin_url, &name)?;
    let result = bench_size(opts, Backend::Postgres, size, &url, dir.path());
    drop(db);
    result.map(Some)
}

fn bench_size(
    opts: &Options,
    backend: Backend,
    size: usize,
    url: &str,
    dir: &Path,
) -> Result<SizeResult> {
    let data = Dataset { users: size };
    cli(&opts.server, &["migrate"], url)?;

    let started = Instant::now();
    seed(url, &data)?;
    let seed_secs = started.elapsed().as_secs_f64();
    println!(
        "seeded {} users, {} groups, {} memberships in {seed_secs:.1} s",
        data.users,
        data.groups(),
        data.memberships()
    );

    let mapping = dir.join("mapping.toml");
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
    let port = free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let log_path = dir.join("server.log");
    let mut server = Server::start(&opts.server, addr, url, &log_path, opts.pin)?;
    let res = measure(opts, backend, &mut server, &token, data).map(|m| SizeResult {
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
        log_problems: 0,
    });
    let log_problems = server.log_problems();
    let exit = server.stop();
    match res {
        Ok(mut r) => {
            r.log_problems = log_problems.len();
            if !log_problems.is_empty() {
                println!(
                    "server log has {} warning/error/panic lines, e.g.:",
                    log_problems.len()
                );
                for line in log_problems.iter().take(5) {
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

/// Substring search, cheap enough to run on every response: candidates are
/// found by scanning for the needle's first byte (`windows().any()` calls
/// memcmp at every offset, which made the checks a visible share of the
/// load generator's CPU, taken from the server when they share cores).
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    let mut from = 0;
    while let Some(p) = haystack[from..].iter().position(|&b| b == first) {
        let at = from + p;
        if haystack[at + 1..].starts_with(rest) {
            return true;
        }
        from = at + 1;
    }
    false
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

// ---------------------------------------------------------------- server

/// A running `rolecall serve`; terminated (SIGTERM, then SIGKILL) on drop.
struct Server {
    child: Option<Child>,
    addr: SocketAddr,
    log: PathBuf,
    started: Instant,
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
        let started = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {} serve", bin.display()))?;
        println!(
            "server pid {} on {addr}{}, log {}",
            child.id(),
            if pin { " (pinned to core 0)" } else { "" },
            log.display()
        );
        let _ = std::io::stdout().flush();
        Ok(Server {
            child: Some(child),
            addr,
            log: log.to_path_buf(),
            started,
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

    /// Wait for `GET /healthz` to answer 200; returns the time since the
    /// process was started.
    fn wait_healthy(&mut self, limit: Duration) -> Result<Duration> {
        let req = loadgen::build_request("GET", "/healthz", &self.addr.to_string(), &[], b"");
        let mut last = String::from("not tried");
        while self.started.elapsed() < limit {
            self.check_alive()?;
            match loadgen::fetch(self.addr, &req, Duration::from_secs(2)) {
                Ok((200, _)) => return Ok(self.started.elapsed()),
                Ok((status, body)) => last = format!("status {status}: {}", snippet(&body)),
                Err(e) => last = format!("{e:#}"),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("server not healthy after {limit:?}; last /healthz: {last}")
    }

    /// Cumulative user+system CPU time of the server process.
    fn cpu(&self) -> Option<Duration> {
        process_cpu(&self.pid()?.to_string())
    }

    fn memory(&self) -> Option<Memory> {
        Memory::of(self.pid()?)
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

/// Resident memory of a process, from /proc/<pid>/status (kB).
#[derive(Clone, Copy, Debug)]
struct Memory {
    rss_kb: u64,
    hwm_kb: u64,
}

impl Memory {
    fn of(pid: u32) -> Option<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| -> Option<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        };
        Some(Memory {
            rss_kb: field("VmRSS:")?,
            hwm_kb: field("VmHWM:")?,
        })
    }

    fn rss_mb(&self) -> f64 {
        self.rss_kb as f64 / 1024.0
    }

    fn hwm_mb(&self) -> f64 {
        self.hwm_kb as f64 / 1024.0
    }

    fn show(m: Option<Memory>) -> String {
        match m {
            Some(m) => format!(
                "VmRSS {:.1} MiB (peak VmHWM {:.1} MiB)",
                m.rss_mb(),
                m.hwm_mb()
            ),
            None => "unknown".to_string(),
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
    let before = (server.cpu(), process_cpu("self"), machine_busy());
    let report = run()?;
    let after = (server.cpu(), process_cpu("self"), machine_busy());
    let cpu = match (before, after) {
        ((Some(s0), Some(c0), Some(m0)), (Some(s1), Some(c1), Some(m1))) => {
            let server = s1.saturating_sub(s0);
            let client = c1.saturating_sub(c0);
            CpuUse {
                server,
                client,
                others: m1.saturating_sub(m0).saturating_sub(server + client),
                wall: report.elapsed,
                requests: report.requests,
                known: true,
            }
        }
        _ => CpuUse::default(),
    };
    Ok((report, cpu))
}

/// CPU time the whole machine spent busy (all cores; /proc/stat), to tell
/// how much went to processes other than the server and the generator.
fn machine_busy() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is in user)
    let busy: u64 = fields.iter().take(8).sum::<u64>()
        - fields.get(3).copied().unwrap_or(0)
        - fields.get(4).copied().unwrap_or(0);
    Some(Duration::from_secs_f64(busy as f64 / clock_ticks() as f64))
}

/// CPU time used by the server and the load generator during a phase.
#[derive(Clone, Copy, Debug, Default)]
struct CpuUse {
    server: Duration,
    client: Duration,
    /// Everything else on the machine (builds, PostgreSQL, the kernel's
    /// work not charged to either process).
    others: Duration,
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

    /// Server CPU time per request in microseconds, or "?".
    fn server_us(&self) -> String {
        if self.known && self.requests > 0 {
            format!(
                "{:.1}",
                1e6 * self.server.as_secs_f64() / self.requests as f64
            )
        } else {
            "?".to_string()
        }
    }

    /// CPU used by other processes, in % of one core, or "?".
    fn others_pct(&self) -> String {
        if self.known && !self.wall.is_zero() {
            format!(
                "{:.0}",
                100.0 * self.others.as_secs_f64() / self.wall.as_secs_f64()
            )
        } else {
            "?".to_string()
        }
    }

    fn add(&mut self, other: CpuUse) {
        self.known &= other.known;
        self.server += other.server;
        self.client += other.client;
        self.others += other.others;
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
            "server CPU {:.0}% of a core ({:.1} us/req), load generator {:.0}% ({:.1} us/req), \
             others {:.0}%",
            100.0 * self.server.as_secs_f64() / wall,
            1e6 * self.server.as_secs_f64() / n,
            100.0 * self.client.as_secs_f64() / wall,
            1e6 * self.client.as_secs_f64() / n,
            100.0 * self.others.as_secs_f64() / wall,
        )
    }
}

// ---------------------------------------------------------------- helpers

/// Run `rolecall ARGS --database-url URL`; its stdout, or an error with both
/// streams.
fn cli(bin: &Path, args: &[&str], url: &str) -> Result<String> {
    let out = Command::new(bin)
        .args(args)
        .arg("--database-url")
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} {}", bin.display(), args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "`rolecall {}` failed ({}):\nstdout: {}\nstderr: {}",
            args.join(" "),
            out.status,
            snippet(out.stdout.trim_ascii()),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8(out.stdout).with_context(|| format!("`rolecall {}` output", args.join(" ")))
}

fn create_token(bin: &Path, url: &str, scope: &str, name: &str) -> Result<String> {
    let stdout = cli(
        bin,
        &["token", "create", "--scope", scope, "--name", name],
        url,
    )?;
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

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(400)]).into_owned();
    if body.len() > 400 {
        format!("{s}...")
    } else {
        s
    }
}
