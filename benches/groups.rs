//! Large-group benchmark (issue #3): membership changes to a 100,000-member
//! group over HTTP against the real `rolecall serve` binary, on SQLite and
//! PostgreSQL.
//!
//! `cargo bench --bench groups [-- --backend sqlite|postgres|both --members N
//!   --delta N --batches N --batch-size N --rounds N --pin --release-server PATH]`
//!
//! For each back-end: a fresh database, `rolecall migrate`, N + delta users
//! loaded straight into the tables, a `scim` token, then `rolecall serve`
//! (with a larger `--max-body-bytes`). Over HTTP it creates a group of the
//! first N users (one POST), then times single requests, each with the full
//! response and with `?excludedAttributes=members`: PATCH adding `delta` users
//! to it, PATCH removing them again (`{"op":"remove","path":"members",
//! "value":[{"value":id}, ...]}`), PUT replacing a `delta`-member list of
//! another group by a different one, PUT of the large group's whole list with
//! `delta / 10` of its members swapped for others, and `--batches` PATCHes of
//! `--batch-size` added members into one (new) group. See BENCHMARKS.md.

mod loadgen;

use loadgen::machine::print_machine_load;
use loadgen::seed::{group_id, group_name, seed, user_id, Directory};
use loadgen::server::{
    cli, create_token, machine_busy, process_cpu, with_server, Backend, BenchDb, Server,
    ServerConfig,
};

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use loadgen::{find, snippet};

const USAGE: &str = "\
usage: cargo bench --bench groups -- [options]
  --backend B            sqlite | postgres | both (default both)
  --members N            members of the large group (default 100000)
  --delta N              members one PATCH adds or removes, and one PUT's list (default 10000)
  --batches N            PATCHes of --batch-size added members into one group (default 10)
  --batch-size N         members each of those adds (default 1000)
  --rounds N             times each single PATCH and PUT is repeated (default 3)
  --batch-rounds N       times the series of --batches PATCHes is repeated, each into a new
                         group (default 7; they are cheap, and their ratio is the median's)
  --max-body-bytes N     the server's request body limit (default 16777216)
  --pin                  server on core 0 (taskset -c 0), this process on core 1
  --analyze              PostgreSQL: ANALYZE scim_members after creating the large group (the
                         planner's statistics then know it, as after autovacuum's next pass)
  --perf DIR             record each request of the first round with `perf record -F 999
                         --call-graph dwarf -p <server pid>` into DIR/<backend>-<request>.data
  --release-server PATH  rolecall binary to benchmark (default: this build's)
A quick check that it runs: --members 10000 --delta 1000 --batch-size 100 --rounds 1 --batch-rounds 1
env ROLECALL_TEST_PG_URL   PostgreSQL admin URL (default postgres://postgres@127.0.0.1:5432/postgres)";

const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// Issue #3: "well under a second"; the tenth batch within 1.5x the first.
const TARGET_MS: f64 = 1000.0;
const TARGET_BATCH_RATIO: f64 = 1.5;

#[derive(Debug)]
struct Options {
    backends: Vec<Backend>,
    members: usize,
    delta: usize,
    batches: usize,
    batch_size: usize,
    rounds: usize,
    batch_rounds: usize,
    max_body_bytes: usize,
    pin: bool,
    perf: Option<PathBuf>,
    analyze: bool,
    server: PathBuf,
}

fn parse_args() -> Result<Option<Options>> {
    let mut opts = Options {
        backends: vec![Backend::Sqlite, Backend::Postgres],
        members: 100_000,
        delta: 10_000,
        batches: 10,
        batch_size: 1_000,
        rounds: 3,
        batch_rounds: 7,
        max_body_bytes: 16 * 1024 * 1024,
        pin: false,
        perf: None,
        analyze: false,
        server: PathBuf::from(env!("CARGO_BIN_EXE_rolecall")),
    };
    let run = loadgen::args::parse("groups", USAGE, |flag, f| {
        match flag {
            "--members" => opts.members = f.number()?,
            "--delta" => opts.delta = f.number()?,
            "--batches" => opts.batches = f.number()?,
            "--batch-size" => opts.batch_size = f.number()?,
            "--rounds" => opts.rounds = f.number()?,
            "--batch-rounds" => opts.batch_rounds = f.number()?,
            "--max-body-bytes" => opts.max_body_bytes = f.number()?,
            "--pin" => opts.pin = true,
            "--perf" => opts.perf = Some(PathBuf::from(f.value()?)),
            "--analyze" => opts.analyze = true,
            "--release-server" => opts.server = PathBuf::from(f.value()?),
            "--backend" => opts.backends = Backend::parse_list(&f.value()?)?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    if run && 2 * opts.delta > opts.members {
        bail!("--delta must be at most half of --members (the PUT swaps two lists of its members)");
    }
    if run && opts.batches * opts.batch_size > opts.members + opts.delta {
        bail!("--batches x --batch-size must be at most --members + --delta (the users there are)");
    }
    Ok(run.then_some(opts))
}

fn main() {
    loadgen::args::exit_with("groups", run());
}

fn run() -> Result<bool> {
    let Some(opts) = parse_args()? else {
        return Ok(true);
    };
    loadgen::server::check_binary(&opts.server)?;
    println!(
        "groups bench: server {}, a {}-member group, {} members per PATCH and PUT, {} x {} \
         batched adds, {} round(s), {} cores online",
        opts.server.display(),
        opts.members,
        opts.delta,
        opts.batches,
        opts.batch_size,
        opts.rounds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    loadgen::machine::prepare(opts.pin);
    let (results, ok) =
        loadgen::server::each_backend(&opts.backends, |backend| bench_backend(&opts, backend));
    print_summary(&opts, &results);
    print_machine_load("after");
    Ok(ok)
}

// ---------------------------------------------------------------- the data

/// Group numbers: the large group is created over HTTP; the others are
/// seeded (the PUT group with users `0..delta`, the batch groups empty).
const PUT_GROUP: usize = 0;
fn batch_group(round: usize, variant: Variant) -> usize {
    1 + 2 * round + variant as usize
}

fn members_json(users: impl Iterator<Item = usize>) -> String {
    let mut s = String::from("[");
    for (k, u) in users.enumerate() {
        if k > 0 {
            s.push(',');
        }
        let _ = write!(s, r#"{{"value":"{}"}}"#, user_id(u));
    }
    s.push(']');
    s
}

fn patch_body(op: &str, users: std::ops::Range<usize>) -> String {
    format!(
        r#"{{"schemas":["{PATCH_SCHEMA}"],"Operations":[{{"op":"{op}","path":"members","value":{}}}]}}"#,
        members_json(users)
    )
}

fn group_body(name: &str, users: std::ops::Range<usize>) -> String {
    format!(
        r#"{{"schemas":["{GROUP_SCHEMA}"],"displayName":"{name}","members":{}}}"#,
        members_json(users)
    )
}

/// With the full response, or `?excludedAttributes=members`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    NoMembers = 0,
    Full = 1,
}

const VARIANTS: [Variant; 2] = [Variant::NoMembers, Variant::Full];

impl Variant {
    fn query(self) -> &'static str {
        match self {
            Variant::NoMembers => "?excludedAttributes=members",
            Variant::Full => "",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Variant::NoMembers => "excludedAttributes=members",
            Variant::Full => "full response",
        }
    }
}

// ---------------------------------------------------------------- one request

/// One timed request.
#[derive(Clone, Copy, Debug)]
struct Timed {
    /// From before the request is written to after the whole response is read.
    ms: f64,
    /// Server CPU during the request (10 ms resolution).
    cpu_ms: f64,
    /// Server CPU after the response until it was idle again: the change
    /// feed bringing the in-memory view up to date.
    after_ms: f64,
    /// CPU that other processes (PostgreSQL included) used during the request.
    others_ms: f64,
    response_bytes: usize,
}

/// What a response must be.
struct Expect {
    status: u16,
    /// `Some(n)`: the body lists exactly n members; `None`: no `members`.
    members: Option<usize>,
}

struct Client<'a> {
    server: &'a Server,
    host: String,
    auth: String,
    /// `--perf DIR`: each request of the first round under `perf record`.
    perf: Option<PathBuf>,
    /// The name of the next request's profile (`None`: not profiled).
    profile: std::cell::RefCell<Option<String>>,
}

impl Client<'_> {
    fn cpu_ms(&self) -> f64 {
        self.server
            .cpu()
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    }

    /// Wait until the server used no CPU for 200 ms (two clock ticks of
    /// /proc resolution, twice), at most 60 s; its CPU time then.
    fn settle(&self) -> f64 {
        let start = Instant::now();
        let mut last = self.cpu_ms();
        let mut quiet = 0;
        while quiet < 2 && start.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(100));
            let now = self.cpu_ms();
            quiet = if now == last { quiet + 1 } else { 0 };
            last = now;
        }
        last
    }

    /// Send one request on a fresh connection once the server is idle, time
    /// it, check the answer, and wait for the server to be idle again.
    fn timed(&self, method: &str, path: &str, body: &str, expect: &Expect) -> Result<Timed> {
        let request = loadgen::build_request(
            method,
            path,
            &self.host,
            &[
                ("Authorization", &self.auth),
                ("Content-Type", "application/scim+json"),
                ("Accept", "application/scim+json"),
            ],
            body.as_bytes(),
        );
        let perf = self.start_perf()?;
        let cpu0 = self.settle();
        let busy0 = (machine_busy(), process_cpu("self"));
        let started = Instant::now();
        let (status, answer) = loadgen::fetch(self.server.addr, &request, Duration::from_secs(300))
            .with_context(|| format!("{method} {path}"))?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let cpu1 = self.cpu_ms();
        let busy1 = (machine_busy(), process_cpu("self"));
        if let Some(perf) = perf {
            stop_perf(perf)?;
        }
        let cpu2 = self.settle();
        if status != expect.status {
            bail!(
                "{method} {path} ({} bytes): {status}, expected {}: {}",
                body.len(),
                expect.status,
                snippet(&answer)
            );
        }
        let listed = count(&answer, b"\"$ref\"");
        match expect.members {
            None if find(&answer, b"\"members\"").is_some() => {
                bail!("{method} {path}: the response has members; it should not")
            }
            Some(n) if listed != n => {
                bail!("{method} {path}: the response lists {listed} members, expected {n}")
            }
            _ => {}
        }
        Ok(Timed {
            ms,
            cpu_ms: cpu1 - cpu0,
            after_ms: cpu2 - cpu1,
            others_ms: match (busy0, busy1) {
                ((Some(m0), Some(c0)), (Some(m1), Some(c1))) => {
                    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
                    ms(m1.saturating_sub(m0)) - ms(c1.saturating_sub(c0)) - (cpu1 - cpu0)
                }
                _ => f64::NAN,
            },
            response_bytes: answer.len(),
        })
    }
}

impl Client<'_> {
    /// Profile the next request (with `--perf`) as `<backend>-<name>`.
    fn profile(&self, backend: Backend, name: &str) {
        let name = format!("{}-{name}", backend.name()).replace([' ', '='], "-");
        *self.profile.borrow_mut() = Some(name);
    }

    /// With `--perf` and a profile name set: `perf record` the server until
    /// [`stop_perf`] (started before the request, as it takes a moment to attach).
    fn start_perf(&self) -> Result<Option<std::process::Child>> {
        let (Some(dir), Some(name), Some(pid)) = (
            &self.perf,
            self.profile.borrow_mut().take(),
            self.server.pid(),
        ) else {
            return Ok(None);
        };
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let out = dir.join(format!("{name}.data"));
        let child = std::process::Command::new("perf")
            .args(["record", "-F", "999", "--call-graph", "dwarf,16384", "-p"])
            .arg(pid.to_string())
            .arg("-o")
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting perf record")?;
        std::thread::sleep(Duration::from_millis(500));
        println!("  (profiling into {})", out.display());
        Ok(Some(child))
    }
}

/// Stop `perf record` (SIGINT, so it writes its file) and wait for it.
fn stop_perf(child: std::process::Child) -> Result<()> {
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .context("stopping perf")?;
    child.wait_with_output().context("waiting for perf")?;
    Ok(())
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    let mut n = 0;
    let mut from = 0;
    while let Some(at) = find(&haystack[from..], needle) {
        n += 1;
        from += at + needle.len();
    }
    n
}

// ---------------------------------------------------------------- one back-end

/// The measurements of one kind of request.
#[derive(Default)]
struct Series {
    runs: Vec<Timed>,
}

impl Series {
    fn median(&self, f: impl Fn(&Timed) -> f64) -> f64 {
        let mut v: Vec<f64> = self.runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }

    fn min(&self) -> f64 {
        self.runs.iter().map(|t| t.ms).fold(f64::INFINITY, f64::min)
    }

    fn max(&self) -> f64 {
        self.runs.iter().map(|t| t.ms).fold(0.0, f64::max)
    }
}

/// The single operations, measured with each variant.
const OPS: [&str; 4] = ["PATCH add", "PATCH remove", "PUT", "PUT large"];

/// Members the large group's PUT swaps for others (the rest of its list stays).
fn put_swap(opts: &Options) -> usize {
    (opts.delta / 10).max(1)
}

/// Operation `o` with its sizes, e.g. "PATCH add 10000 to 100000".
fn op_name(o: usize, opts: &Options) -> String {
    let (n, d) = (opts.members, opts.delta);
    match o {
        0 => format!("{} {d} to {n}", OPS[0]),
        1 => format!("{} {d} of {}", OPS[1], n + d),
        2 => format!("{} {d} replacing {d}", OPS[2]),
        _ => format!("PUT {n} changing {} of {n}", put_swap(opts)),
    }
}

struct Results {
    backend: Backend,
    create: Timed,
    /// `[op][variant]`.
    ops: [[Series; 2]; 4],
    /// `[variant][round]`: the batches' times.
    batches: [Vec<Vec<Timed>>; 2],
    log_problems: usize,
}

fn bench_backend(opts: &Options, backend: Backend) -> Result<Option<Results>> {
    let Some(db) = BenchDb::create(backend, "groups", "")? else {
        return Ok(None);
    };
    let url = db.url.as_str();
    cli(&opts.server, &["migrate"], url)?;
    let put_members: Vec<(u32, u32)> = (0..opts.delta)
        .map(|u| (PUT_GROUP as u32, u as u32))
        .collect();
    let started = Instant::now();
    seed(
        url,
        &Directory {
            users: opts.members + opts.delta,
            groups: 1 + 2 * opts.batch_rounds,
            memberships: &put_members,
        },
    )?;
    println!(
        "seeded {} users, {} groups, {} memberships in {:.1} s",
        opts.members + opts.delta,
        1 + 2 * opts.batch_rounds,
        put_members.len(),
        started.elapsed().as_secs_f64()
    );
    let token = create_token(&opts.server, url, "scim", "bench-groups")?;
    let max_body = opts.max_body_bytes.to_string();
    let config = ServerConfig {
        bin: &opts.server,
        url,
        dir: db.dir.path(),
        pin: opts.pin,
        extra_args: &["--max-body-bytes", &max_body],
    };
    let (mut r, log_problems) = with_server(&config, |server| {
        measure(opts, backend, server, &token, url)
    })?;
    r.log_problems = log_problems;
    db.print_size();
    Ok(Some(r))
}

fn measure(
    opts: &Options,
    backend: Backend,
    server: &mut Server,
    token: &str,
    url: &str,
) -> Result<Results> {
    let up = server.wait_healthy(Duration::from_secs(120))?;
    println!("server healthy after {:.2} s", up.as_secs_f64());
    let c = Client {
        server,
        host: server.addr.to_string(),
        auth: format!("Bearer {token}"),
        perf: opts.perf.clone(),
        profile: Default::default(),
    };
    let (n, d) = (opts.members, opts.delta);

    // The large group, over HTTP.
    let body = group_body("everyone", 0..n);
    let create = c.timed(
        "POST",
        "/scim/v2/Groups?excludedAttributes=members",
        &body,
        &Expect {
            status: 201,
            members: None,
        },
    )?;
    let location = format!("/scim/v2/Groups/{}", c.group_named("everyone")?);
    show(&format!("POST a {n}-member group"), &create, body.len());
    if opts.analyze && backend == Backend::Postgres {
        // What autovacuum does within a minute or so of a change this size.
        let started = Instant::now();
        loadgen::machine::pg_admin(url, "ANALYZE scim_members")?;
        println!(
            "ANALYZE scim_members took {:.0} ms",
            started.elapsed().as_secs_f64() * 1000.0
        );
    }

    let put_path = format!("/scim/v2/Groups/{}", group_id(PUT_GROUP));
    let mut ops: [[Series; 2]; 4] = Default::default();
    let mut batches: [Vec<Vec<Timed>>; 2] = Default::default();
    for round in 0..opts.rounds {
        println!("round {}/{}:", round + 1, opts.rounds);
        for v in VARIANTS {
            // Alternate the PUT's list between users d..2d and 0..d (the seeded list).
            let put_list = if (2 * round + v as usize).is_multiple_of(2) {
                d..2 * d
            } else {
                0..d
            };
            // The large group's whole list again with `k` members swapped (users k..n+k),
            // then back (0..n, where the PATCHes leave it and find it): two runs.
            let k = put_swap(opts);
            let steps = [
                ("PATCH", &location, patch_body("add", n..n + d), n + d),
                ("PATCH", &location, patch_body("remove", n..n + d), n),
                (
                    "PUT",
                    &put_path,
                    group_body(&group_name(PUT_GROUP), put_list),
                    d,
                ),
                ("PUT", &location, group_body("everyone", k..n + k), n),
                ("PUT", &location, group_body("everyone", 0..n), n),
            ];
            for (step, (method, path, body, members)) in steps.into_iter().enumerate() {
                let o = step.min(OPS.len() - 1);
                if round == 0 {
                    c.profile(backend, &format!("{}-{}", OPS[o], v.label()));
                }
                let t = c.timed(
                    method,
                    &format!("{path}{}", v.query()),
                    &body,
                    &Expect {
                        status: 200,
                        members: (v == Variant::Full).then_some(members),
                    },
                )?;
                show(
                    &format!("  {} ({})", op_name(o, opts), v.label()),
                    &t,
                    body.len(),
                );
                ops[o][v as usize].runs.push(t);
            }
        }
    }
    for round in 0..opts.batch_rounds {
        println!("batch series {}/{}:", round + 1, opts.batch_rounds);
        for v in VARIANTS {
            let path = format!(
                "/scim/v2/Groups/{}{}",
                group_id(batch_group(round, v)),
                v.query()
            );
            let mut times = Vec::with_capacity(opts.batches);
            let mut line = format!(
                "  {} PATCHes of {} ({}):",
                opts.batches,
                opts.batch_size,
                v.label()
            );
            for b in 0..opts.batches {
                let users = b * opts.batch_size..(b + 1) * opts.batch_size;
                if round == 0 && (b == 0 || b + 1 == opts.batches) {
                    c.profile(backend, &format!("batch{}-{}", b + 1, v.label()));
                }
                let t = c.timed(
                    "PATCH",
                    &path,
                    &patch_body("add", users),
                    &Expect {
                        status: 200,
                        members: (v == Variant::Full).then_some((b + 1) * opts.batch_size),
                    },
                )?;
                let _ = write!(line, " {:.1}", t.ms);
                times.push(t);
            }
            let ratio = ratio_last_first(&times);
            println!("{line} ms; tenth/first {ratio:.2}");
            batches[v as usize].push(times);
        }
    }
    server.check_alive()?;
    Ok(Results {
        backend,
        create,
        ops,
        batches,
        log_problems: 0,
    })
}

impl Client<'_> {
    /// The id of the group with this displayName.
    fn group_named(&self, name: &str) -> Result<String> {
        let path = format!(
            "/scim/v2/Groups?filter={}&attributes=id",
            loadgen::url_encode(&format!("displayName eq \"{name}\""))
        );
        let request = loadgen::build_request(
            "GET",
            &path,
            &self.host,
            &[("Authorization", &self.auth)],
            b"",
        );
        let (status, body) = loadgen::fetch(self.server.addr, &request, Duration::from_secs(60))?;
        let text = String::from_utf8_lossy(&body);
        let id = text
            .split("\"id\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .filter(|id| !id.is_empty());
        match (status, id) {
            (200, Some(id)) => Ok(id.to_string()),
            _ => bail!("finding the created group: {status} {}", snippet(&body)),
        }
    }
}

/// The median over rounds of the last batch's time, over that of the first's
/// (one slow request in a round does not decide it).
fn median_ratio(rounds: &[Vec<Timed>]) -> f64 {
    let median = |pick: fn(&Vec<Timed>) -> Option<&Timed>| {
        let mut v: Vec<f64> = rounds.iter().filter_map(pick).map(|t| t.ms).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    median(|t| t.last()) / median(|t| t.first())
}

fn ratio_last_first(times: &[Timed]) -> f64 {
    match (times.first(), times.last()) {
        (Some(a), Some(b)) if a.ms > 0.0 => b.ms / a.ms,
        _ => f64::NAN,
    }
}

fn show(what: &str, t: &Timed, request_bytes: usize) {
    println!(
        "{what:<52} {:>9.1} ms  (server CPU {:.0} ms, then {:.0} ms after the response; \
         others {:.0} ms; request {} KiB, response {} KiB)",
        t.ms,
        t.cpu_ms,
        t.after_ms,
        t.others_ms,
        request_bytes / 1024,
        t.response_bytes / 1024
    );
}

// ---------------------------------------------------------------- summary

fn print_summary(opts: &Options, results: &[Results]) {
    println!("\n=== summary ===");
    if results.is_empty() {
        println!("nothing completed");
        return;
    }
    let n = opts.members;
    println!(
        "one request at a time on an idle server; times in ms from the request's first byte \
         to the response's last (median of {} round(s), [min-max]); server CPU in the request, \
         and after it until idle (the change feed updating the in-memory view); CPU of all \
         other processes during the request (PostgreSQL's work, or a disturbance)",
        opts.rounds
    );
    println!(
        "{:<9} {:<36} {:<28} {:>9} {:>19} {:>8} {:>8} {:>8} {:>10}",
        "backend",
        "request",
        "response",
        "ms",
        "[min-max]",
        "CPU ms",
        "after",
        "others",
        "resp KiB"
    );
    for r in results {
        println!(
            "{:<9} {:<36} {:<28} {:>9.1} {:>19} {:>8.0} {:>8.0} {:>8.0} {:>10}",
            r.backend.name(),
            format!("POST group of {n}"),
            Variant::NoMembers.label(),
            r.create.ms,
            "",
            r.create.cpu_ms,
            r.create.after_ms,
            r.create.others_ms,
            r.create.response_bytes / 1024
        );
        for o in 0..OPS.len() {
            for v in VARIANTS {
                let s = &r.ops[o][v as usize];
                let what = op_name(o, opts);
                println!(
                    "{:<9} {:<36} {:<28} {:>9.1} {:>19} {:>8.0} {:>8.0} {:>8.0} {:>10.0}",
                    r.backend.name(),
                    what,
                    v.label(),
                    s.median(|t| t.ms),
                    format!("[{:.1}-{:.1}]", s.min(), s.max()),
                    s.median(|t| t.cpu_ms),
                    s.median(|t| t.after_ms),
                    s.median(|t| t.others_ms),
                    s.median(|t| t.response_bytes as f64) / 1024.0
                );
            }
        }
    }
    println!(
        "\n{} PATCHes of {} added members into one new group (ms each; ratio last/first):",
        opts.batches, opts.batch_size
    );
    for r in results {
        for v in VARIANTS {
            for (round, times) in r.batches[v as usize].iter().enumerate() {
                let mut line = format!(
                    "{:<9} {:<28} round {}:",
                    r.backend.name(),
                    v.label(),
                    round + 1
                );
                for t in times {
                    let _ = write!(line, " {:>6.1}", t.ms);
                }
                let _ = write!(line, "   ratio {:.2}", ratio_last_first(times));
                println!("{line}");
            }
            let rounds = &r.batches[v as usize];
            let mut line = format!("{:<9} {:<28} median: ", r.backend.name(), v.label());
            for b in 0..opts.batches {
                let mut at: Vec<f64> = rounds
                    .iter()
                    .filter_map(|t| t.get(b))
                    .map(|t| t.ms)
                    .collect();
                at.sort_by(f64::total_cmp);
                let _ = write!(
                    line,
                    " {:>6.1}",
                    at.get(at.len() / 2).copied().unwrap_or(f64::NAN)
                );
            }
            let _ = write!(line, "   ratio {:.2}", median_ratio(rounds));
            println!("{line}");
        }
    }
    println!("\ntargets (issue #3):");
    for r in results {
        for (o, name) in OPS.iter().enumerate() {
            for v in VARIANTS {
                let worst = r.ops[o][v as usize].max();
                println!(
                    "  {:<9} {name:<13} {:<28} slowest {:>8.1} ms: {}",
                    r.backend.name(),
                    v.label(),
                    worst,
                    verdict(worst < TARGET_MS)
                );
            }
        }
        for v in VARIANTS {
            let series = &r.batches[v as usize];
            let ratios: Vec<String> = series
                .iter()
                .map(|t| format!("{:.2}", ratio_last_first(t)))
                .collect();
            let ratio = median_ratio(series);
            println!(
                "  {:<9} batches       {:<28} last/first per round {}; of the medians {ratio:.2}: {}",
                r.backend.name(),
                v.label(),
                ratios.join(", "),
                verdict(ratio <= TARGET_BATCH_RATIO)
            );
        }
        if r.log_problems > 0 {
            println!(
                "  {}: server log: {} warning/error lines",
                r.backend.name(),
                r.log_problems
            );
        }
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}
