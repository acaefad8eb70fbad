//! What both benchmarks need around the load itself: the machine's load,
//! pinning, and throw-away PostgreSQL databases.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

/// The load average, and a warning when other processes (a build, another
/// benchmark) are competing for the two cores.
pub fn print_machine_load(when: &str) {
    let Ok(load) = std::fs::read_to_string("/proc/loadavg") else {
        return;
    };
    let one_minute: f64 = load
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0);
    println!("load average {when}: {}", load.trim());
    if when == "before" && one_minute > 0.5 {
        println!(
            "WARNING: the machine is busy (1-minute load {one_minute:.2}); the figures will be \
             noisy. Check for builds or other benchmarks."
        );
    }
}

/// Before a run: the load average, and with `pin` this process on core 1
/// (the server goes on core 0).
pub fn prepare(pin: bool) {
    print_machine_load("before");
    if pin {
        pin_self_to_core(1);
    } else {
        println!("(unpinned: server and load generator share all cores; --pin separates them)");
    }
}

/// Pin every thread of this process (and threads and children created
/// later) to `core`. The server is started under `taskset -c 0` instead.
pub fn pin_self_to_core(core: usize) {
    let pid = std::process::id().to_string();
    let core_s = core.to_string();
    match Command::new("taskset")
        .args(["-a", "-p", "-c", &core_s, &pid])
        .stdout(Stdio::null())
        .output()
    {
        Ok(o) if o.status.success() => {
            println!("pinned: load generator on core {core}, server on core 0 (taskset)")
        }
        Ok(o) => println!(
            "note: could not pin the load generator ({}); it runs unpinned unless the bench \
             is started under `taskset -c {core}`",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => println!(
            "note: could not run taskset ({e}); the load generator runs unpinned unless the \
             bench is started under `taskset -c {core}`"
        ),
    }
    let _ = std::io::stdout().flush();
}

/// `postgres://u@h:p/admin?x` -> `postgres://u@h:p/NAME?x`.
pub fn with_database(base: &str, name: &str) -> Result<String> {
    let scheme_end = base
        .find("://")
        .with_context(|| format!("{} is not a URL", redact(base)))?
        + 3;
    let (main, query) = match base.find('?') {
        Some(q) => (&base[..q], &base[q..]),
        None => (base, ""),
    };
    let authority_end = main[scheme_end..]
        .find('/')
        .map_or(main.len(), |i| scheme_end + i);
    Ok(format!("{}/{name}{query}", &main[..authority_end]))
}

/// Hide a password in a URL for printing.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}:***{}",
            &url[..scheme_end],
            &authority[..colon],
            &url[scheme_end + at..]
        ),
        _ => url.to_string(),
    }
}

/// A throw-away PostgreSQL database, dropped (WITH (FORCE)) on drop.
pub struct PgDatabase {
    admin_url: String,
    name: String,
}

impl PgDatabase {
    pub fn create(admin_url: &str, name: &str) -> Result<PgDatabase> {
        pg_admin(admin_url, &format!("CREATE DATABASE {name}"))?;
        println!("created PostgreSQL database {name}");
        Ok(PgDatabase {
            admin_url: admin_url.to_string(),
            name: name.to_string(),
        })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        match pg_admin(&self.admin_url, &sql) {
            Ok(()) => println!("dropped PostgreSQL database {}", self.name),
            Err(e) => eprintln!("dropping PostgreSQL database {}: {e:#}", self.name),
        }
    }
}

/// Run one statement on the admin database (simple query protocol, outside
/// any transaction, as CREATE/DROP DATABASE require).
pub fn pg_admin(admin_url: &str, sql: &str) -> Result<()> {
    use sqlx::{Connection, Executor};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building a tokio runtime")?;
    rt.block_on(async {
        let connect = sqlx::PgConnection::connect(admin_url);
        let mut conn = tokio::time::timeout(Duration::from_secs(10), connect)
            .await
            .context("connecting timed out after 10 s")?
            .with_context(|| format!("connecting to {}", redact(admin_url)))?;
        conn.execute(sql).await.with_context(|| sql.to_string())?;
        conn.close().await.ok();
        Ok(())
    })
}
