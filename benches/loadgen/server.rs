//! The server side of every benchmark: a throw-away database per back-end,
//! the `rolecall` CLI runs that prepare it, the `rolecall serve` process, and
//! the CPU time and memory that process uses.

use std::fs::File;
use std::io::{BufRead, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::machine::{redact, with_database, PgDatabase};
use super::{snippet, Report};

const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// The value of `--backend`: `sqlite`, `postgres` (or `pg`) or `both`.
    pub fn parse_list(value: &str) -> Result<Vec<Backend>> {
        Ok(match value {
            "sqlite" => vec![Backend::Sqlite],
            "postgres" | "pg" => vec![Backend::Postgres],
            "both" => vec![Backend::Sqlite, Backend::Postgres],
            other => bail!("unknown --backend {other:?} (sqlite, postgres or both)"),
        })
    }
}

/// Run `f` for each back-end under a `=== name ===` heading; the results of
/// those that ran, and whether none failed (failures are printed; a back-end
/// that is unavailable answers `Ok(None)` and is skipped).
pub fn each_backend<T>(
    backends: &[Backend],
    mut f: impl FnMut(Backend) -> Result<Option<T>>,
) -> (Vec<T>, bool) {
    let mut results = Vec::new();
    let mut ok = true;
    for &backend in backends {
        println!("\n=== {} ===", backend.name());
        match f(backend) {
            Ok(Some(r)) => results.push(r),
            Ok(None) => {}
            Err(e) => {
                ok = false;
                eprintln!("\n!!! {} FAILED: {e:#}\n", backend.name());
            }
        }
    }
    (results, ok)
}

/// The server binary to benchmark must exist.
pub fn check_binary(bin: &Path) -> Result<()> {
    if !bin.exists() {
        bail!("server binary {} does not exist", bin.display());
    }
    Ok(())
}

/// A fresh database for one run, and a temp dir for its logs: a new SQLite
/// file, or a new PostgreSQL database (dropped, with the dir, on drop).
pub struct BenchDb {
    pub url: String,
    pub dir: tempfile::TempDir,
    sqlite_file: Option<PathBuf>,
    /// Dropping it drops the database.
    _pg: Option<PgDatabase>,
}

impl BenchDb {
    /// `prefix` names the temp dir (`rolecall-NAME-`) and the PostgreSQL
    /// database (`rolecall_NAME_<pid><suffix>`). `None` when PostgreSQL is
    /// unreachable: that part is skipped, with a note.
    pub fn create(backend: Backend, name: &str, suffix: &str) -> Result<Option<BenchDb>> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("rolecall-{name}-"))
            .tempdir()
            .context("creating a temp dir")?;
        match backend {
            Backend::Sqlite => {
                let file = dir.path().join("rolecall.db");
                Ok(Some(BenchDb {
                    url: format!("sqlite://{}", file.display()),
                    dir,
                    sqlite_file: Some(file),
                    _pg: None,
                }))
            }
            Backend::Postgres => {
                let admin_url = std::env::var("ROLECALL_TEST_PG_URL")
                    .unwrap_or_else(|_| DEFAULT_PG_URL.to_string());
                let db_name = format!("rolecall_{name}_{}{suffix}", std::process::id());
                let pg = match PgDatabase::create(&admin_url, &db_name) {
                    Ok(db) => db,
                    Err(e) => {
                        println!(
                            "PostgreSQL part SKIPPED: cannot create a database through {}: {e:#}",
                            redact(&admin_url)
                        );
                        return Ok(None);
                    }
                };
                Ok(Some(BenchDb {
                    url: with_database(&admin_url, &db_name)?,
                    dir,
                    sqlite_file: None,
                    _pg: Some(pg),
                }))
            }
        }
    }

    /// Print the SQLite file's size (nothing for PostgreSQL).
    pub fn print_size(&self) {
        if let Some(meta) = self
            .sqlite_file
            .as_ref()
            .and_then(|f| std::fs::metadata(f).ok())
        {
            println!(
                "sqlite file size: {:.1} MiB",
                meta.len() as f64 / (1024.0 * 1024.0)
            );
        }
    }
}

// ---------------------------------------------------------------- the CLI

/// Run `rolecall ARGS --database-url URL`; its stdout, or an error with both
/// streams.
pub fn cli(bin: &Path, args: &[&str], url: &str) -> Result<String> {
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

/// `rolecall token create --scope SCOPE --name NAME`: the secret.
pub fn create_token(bin: &Path, url: &str, scope: &str, name: &str) -> Result<String> {
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

// ---------------------------------------------------------------- the server

/// How to start `rolecall serve`.
pub struct ServerConfig<'a> {
    pub bin: &'a Path,
    pub url: &'a str,
    /// The log file (stdout and stderr) goes here.
    pub dir: &'a Path,
    /// `taskset -c 0`.
    pub pin: bool,
    /// More `serve` flags, e.g. `["--max-body-bytes", "8388608"]`.
    pub extra_args: &'a [&'a str],
}

/// Start the server, run `f` against it, stop it, and report: the log's
/// warning/error lines (printed, and counted in the answer), the exit status
/// after SIGTERM, and the log's last lines when `f` failed.
pub fn with_server<T>(
    config: &ServerConfig,
    f: impl FnOnce(&mut Server) -> Result<T>,
) -> Result<(T, usize)> {
    let log_path = config.dir.join("server.log");
    let mut server = Server::start(config, &log_path)?;
    let res = f(&mut server);
    let problems = server.log_problems();
    let exit = server.stop();
    match res {
        Ok(r) => {
            if !problems.is_empty() {
                println!(
                    "server log has {} warning/error/panic lines, e.g.:",
                    problems.len()
                );
                for line in problems.iter().take(5) {
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
            Ok((r, problems.len()))
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

/// A running `rolecall serve` on a free loopback port; terminated (SIGTERM,
/// then SIGKILL) on drop.
pub struct Server {
    child: Option<Child>,
    pub addr: SocketAddr,
    log: PathBuf,
    started: Instant,
}

impl Server {
    fn start(config: &ServerConfig, log: &Path) -> Result<Server> {
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().context("duplicating the log file handle")?;
        let mut cmd = if config.pin {
            let mut c = Command::new("taskset");
            c.args(["-c", "0"]).arg(config.bin);
            c
        } else {
            Command::new(config.bin)
        };
        cmd.arg("serve")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--database-url")
            .arg(config.url)
            .args(config.extra_args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let started = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {} serve", config.bin.display()))?;
        println!(
            "server pid {} on {addr}{}{}, log {}",
            child.id(),
            if config.pin {
                " (pinned to core 0)"
            } else {
                ""
            },
            if config.extra_args.is_empty() {
                String::new()
            } else {
                format!(" with {}", config.extra_args.join(" "))
            },
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

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn check_alive(&mut self) -> Result<()> {
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
    pub fn wait_healthy(&mut self, limit: Duration) -> Result<Duration> {
        let req = super::build_request("GET", "/healthz", &self.addr.to_string(), &[], b"");
        let mut last = String::from("not tried");
        while self.started.elapsed() < limit {
            self.check_alive()?;
            match super::fetch(self.addr, &req, Duration::from_secs(2)) {
                Ok((200, _)) => return Ok(self.started.elapsed()),
                Ok((status, body)) => last = format!("status {status}: {}", snippet(&body)),
                Err(e) => last = format!("{e:#}"),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("server not healthy after {limit:?}; last /healthz: {last}")
    }

    /// Cumulative user+system CPU time of the server process.
    pub fn cpu(&self) -> Option<Duration> {
        process_cpu(&self.pid()?.to_string())
    }

    pub fn memory(&self) -> Option<Memory> {
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

// ---------------------------------------------------------------- memory and CPU

/// Resident memory of a process, from /proc/<pid>/status (kB).
#[derive(Clone, Copy, Debug)]
pub struct Memory {
    pub rss_kb: u64,
    pub hwm_kb: u64,
}

impl Memory {
    pub fn of(pid: u32) -> Option<Memory> {
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

    pub fn rss_mb(&self) -> f64 {
        self.rss_kb as f64 / 1024.0
    }

    pub fn hwm_mb(&self) -> f64 {
        self.hwm_kb as f64 / 1024.0
    }

    pub fn show(m: Option<Memory>) -> String {
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
pub fn process_cpu(pid: &str) -> Option<Duration> {
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

/// CPU time the whole machine spent busy (all cores; /proc/stat), to tell
/// how much went to processes other than the server and the generator.
pub fn machine_busy() -> Option<Duration> {
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

/// Run one load phase and note the CPU time the server, this process (the
/// load generator) and everything else used meanwhile.
pub fn timed(server: &Server, run: impl FnOnce() -> Result<Report>) -> Result<(Report, CpuUse)> {
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

/// CPU time used by the server and the load generator during a phase.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuUse {
    pub server: Duration,
    pub client: Duration,
    /// Everything else on the machine (builds, PostgreSQL, the kernel's
    /// work not charged to either process).
    pub others: Duration,
    pub wall: Duration,
    pub requests: u64,
    pub known: bool,
}

impl CpuUse {
    /// A total to `add` phases to.
    pub fn total() -> CpuUse {
        CpuUse {
            known: true,
            ..CpuUse::default()
        }
    }

    /// Server CPU time per request in microseconds, or "?".
    pub fn server_us(&self) -> String {
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
    pub fn others_pct(&self) -> String {
        if self.known && !self.wall.is_zero() {
            format!(
                "{:.0}",
                100.0 * self.others.as_secs_f64() / self.wall.as_secs_f64()
            )
        } else {
            "?".to_string()
        }
    }

    pub fn add(&mut self, other: CpuUse) {
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
