//! Storage: one [`Store`] over SQLite or PostgreSQL, chosen once from the database URL.
//!
//! Every statement is written once and runs on both back-ends through sqlx's `Any` driver
//! (placeholders are `$1`, `$2`…, which both accept; ids, timestamps and documents are text).
//! The true dialect differences are confined to construction: SQLite gets WAL, a single
//! writer connection (writes queue in the pool instead of spinning on the file lock) and a
//! separate reader pool; PostgreSQL gets one pool for both.

mod audit;
mod batch;
mod filter_sql;
mod groups;
mod json_sql;
pub mod pg_lock;
pub mod serve_lock;
mod snapshot;
mod sort_sql;
mod tokens;
mod users;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub use crate::scim::cursor::Position;
pub use audit::{Actor, AuditEntry, AuditQuery, Change, GroupDelta};
pub use filter_sql::ListQuery;
pub use groups::{GroupChange, GroupRow, MemberDelta, MemberList, MemberRow};
pub use snapshot::SigningKeyRow;
pub use tokens::TokenRow;
pub use users::{GroupRef, UserRow};

use crate::scim::error::ProtocolError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("the resource has changed since version {0}")]
    PreconditionFailed(i64),
    #[error(transparent)]
    Invalid(#[from] ProtocolError),
    // the sqlx error is in the message, and not also a `source`: error chains would print it
    // (and sqlx's own sources) again after it
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Optimistic retries ran out under concurrent changes to one resource.
    #[error("the resource is being changed concurrently; retry")]
    Contended,
    /// PostgreSQL aborted the transaction to break a deadlock (40P01) or a serialization
    /// conflict (40001): nothing of it was written, and it may simply run again
    /// ([`retrying`] does).
    #[error("database conflict: {0}")]
    Deadlock(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e),
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                let msg = format!("{} {}", db.message(), db.constraint().unwrap_or_default());
                let what = if msg.contains("external_id") {
                    "externalId"
                } else if msg.contains("user_name") {
                    "userName"
                } else if msg.contains("api_tokens") || msg.contains("name") {
                    "name"
                } else {
                    "a unique attribute"
                };
                StoreError::Conflict(format!("{what} is already in use"))
            }
            sqlx::Error::Database(db)
                if db.code().is_some_and(|c| c == "40P01" || c == "40001") =>
            {
                StoreError::Deadlock(e)
            }
            // text PostgreSQL cannot store: U+0000 in a text value (22021) or in JSON (22P05);
            // a client's input, never a server fault (SCIM input is refused before this)
            sqlx::Error::Database(db)
                if db.code().is_some_and(|c| c == "22021" || c == "22P05") =>
            {
                StoreError::Invalid(ProtocolError::invalid_value(
                    "text may not contain the character U+0000 (NUL)",
                ))
            }
            // the database refuses or drops connections, or cannot be written, or gave up
            // waiting: PostgreSQL SQLSTATE classes 08 (connection exception), 53 (insufficient
            // resources), 57P (shutdown, cannot connect now), 55P03 (lock_timeout) and 57014
            // (statement_timeout, a cancel), 55000 (database not accepting connections),
            // 3D000 (the database does not exist: dropped under a running server) and 25006
            // (read-only transaction: a standby); SQLite's "database is locked", "unable to
            // open" and "readonly database" (a file the server may not write)
            sqlx::Error::Database(db)
                if db.code().is_some_and(|c| {
                    c.starts_with("08")
                        || c.starts_with("53")
                        || c.starts_with("57P")
                        || c == "55P03"
                        || c == "57014"
                        || c == "55000"
                        || c == "3D000"
                        || c == "25006"
                }) || db.message().contains("database is locked")
                    || db.message().contains("unable to open")
                    || db.message().contains("readonly database") =>
            {
                StoreError::Unavailable(e)
            }
            _ => StoreError::Database(e),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// How many times a write whose transaction PostgreSQL aborted as a deadlock victim runs.
const DEADLOCK_ATTEMPTS: u32 = 4;

/// Run a write transaction, again from the start if PostgreSQL aborted it to break a deadlock.
///
/// Writes lock rows in different orders: a membership change locks its group, then
/// share-locks the members it adds; a delete locks the user or group, then the groups that
/// contain it. Two such writes crossing each other wait for each other, PostgreSQL aborts one
/// of them (after `deadlock_timeout`, 1 s by default), and the aborted one wrote nothing: it
/// runs again here rather than answering 500. When every attempt loses, the answer is
/// [`StoreError::Contended`] (503, retry).
pub(crate) async fn retrying<T, F, Fut>(mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    for n in 1..=DEADLOCK_ATTEMPTS {
        match attempt().await {
            Err(StoreError::Deadlock(e)) => {
                tracing::info!(attempt = n, error = %e, "write aborted by the database as a deadlock victim; running it again");
                let mut b = [0u8; 1];
                let jitter = getrandom::getrandom(&mut b).map_or(0, |()| u64::from(b[0] % 8));
                tokio::time::sleep(Duration::from_millis(u64::from(n) * 5 + jitter)).await;
            }
            other => return other,
        }
    }
    Err(StoreError::Contended)
}

#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// The database: pools plus the one copy of every statement.
#[derive(Clone)]
pub struct Store {
    write: AnyPool,
    read: AnyPool,
    backend: Backend,
    /// Bumped after every commit made through this process: readers of the in-memory view
    /// catch up with the change feed first when it moved, so a change is visible to the
    /// very next request on the same server.
    local_writes: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Bumped after every token commit made through this process: authentication catches
    /// up first when it moved, so a revoked token fails at the very next request.
    local_token_writes: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// SQLite only: the writer task that commits concurrent user creates together.
    batcher: Option<batch::Batcher>,
    /// SQLite only: the database file (None in memory), checked for writing by [`Store::ready`].
    sqlite_file: Option<std::path::PathBuf>,
}

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The SQLite file holds token hashes and the signing keys' private halves: create it readable
/// by its owner only (SQLite gives its `-wal` and `-shm` files the same mode), and warn about an
/// existing one that others can read.
fn private_file(path: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o077 != 0 => tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", m.permissions().mode() & 0o777),
                "the database file is readable by others; it holds signing keys: chmod 600 it"
            ),
            Ok(_) => {}
            Err(_) => {
                // created here, empty, with mode 0600; SQLite then initialises it
                let _ = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path);
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Whether this process may write `path`, asked with access(2). Never by opening the file:
/// closing any descriptor of a file drops every POSIX lock the process holds on it, SQLite's
/// included, after which another process (a `rolecall` CLI verb) closing its connection
/// believes it is the last one, checkpoints and deletes the write-ahead log this server is
/// still writing to, and acknowledged writes are lost.
#[cfg(unix)]
fn writable(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call; access(2) only
    // reads it.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(unix))]
fn writable(path: &std::path::Path) -> std::io::Result<()> {
    match std::fs::metadata(path)?.permissions().readonly() {
        false => Ok(()),
        true => Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "the database file is read-only",
        )),
    }
}

/// `sqlite://path` gains `mode=rwc` (create the file if missing) unless a mode is given.
fn sqlite_url(url: &str) -> String {
    if url.contains("mode=") || url.contains(":memory:") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

impl Store {
    pub async fn connect(url: &str, opts: &StoreOptions) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::Unavailable(sqlx::Error::Configuration(
                "the database URL must start with sqlite: or postgres://".into(),
            )));
        };
        match backend {
            Backend::Sqlite => {
                let sqlite_file = serve_lock::sqlite_file(url);
                if let Some(path) = &sqlite_file {
                    private_file(path);
                }
                let url = sqlite_url(url);
                let connect = AnyConnectOptions::from_str(&url)?;
                let pool = |max: u32| {
                    AnyPoolOptions::new()
                        .max_connections(max)
                        .min_connections(1)
                        .acquire_timeout(opts.acquire_timeout)
                        // no ping per acquire: a dead connection fails its query (503) and is replaced
                        .test_before_acquire(false)
                        .after_connect(|conn, _| {
                            Box::pin(async move {
                                conn.execute(
                                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                                     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
                                )
                                .await?;
                                Ok(())
                            })
                        })
                };
                let write = pool(1).connect_with(connect.clone()).await?;
                let read = pool(opts.max_connections.clamp(1, 4))
                    .connect_with(connect)
                    .await?;
                let mut store = Self {
                    write,
                    read,
                    backend,
                    local_writes: Default::default(),
                    local_token_writes: Default::default(),
                    batcher: None,
                    sqlite_file,
                };
                // the task holds a handle without a batcher, so it ends with the last sender
                store.batcher = Some(batch::spawn(store.clone()));
                Ok(store)
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(opts.max_connections.max(2))
                    .acquire_timeout(opts.acquire_timeout)
                    .test_before_acquire(false)
                    .connect(url)
                    .await?;
                Ok(Self {
                    write: pool.clone(),
                    read: pool,
                    backend,
                    local_writes: Default::default(),
                    local_token_writes: Default::default(),
                    batcher: None,
                    sqlite_file: None,
                })
            }
        }
    }

    /// Count of commits made through this process (see `local_writes`).
    pub fn local_writes(&self) -> u64 {
        self.local_writes.load(std::sync::atomic::Ordering::Acquire)
    }

    fn committed(&self) {
        self.local_writes
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Count of token commits made through this process.
    pub fn local_token_writes(&self) -> u64 {
        self.local_token_writes
            .load(std::sync::atomic::Ordering::Acquire)
    }

    fn token_committed(&self) {
        self.local_token_writes
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.committed();
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Apply pending migrations (idempotent).
    pub async fn migrate(&self) -> std::result::Result<(), sqlx::migrate::MigrateError> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATOR.run(&self.write).await,
            Backend::Postgres => POSTGRES_MIGRATOR.run(&self.write).await,
        }
    }

    /// Is the database reachable?
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    /// Ready to serve (`/readyz`): the database answers, its schema has every migration of
    /// this build (a database dropped and created again under the server has none), and a
    /// SQLite file can be opened for writing.
    pub async fn ready(&self) -> Result<()> {
        let row = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM _sqlx_migrations")
            .fetch_one(&self.read)
            .await?;
        let have: i64 = sqlx::Row::try_get(&row, "v")?;
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATOR,
            Backend::Postgres => &POSTGRES_MIGRATOR,
        };
        let want = migrator.iter().map(|m| m.version).max().unwrap_or(0);
        if have < want {
            return Err(StoreError::Unavailable(sqlx::Error::Protocol(format!(
                "the database schema is at migration {have}; this build needs {want} \
                 (run rolecall migrate)"
            ))));
        }
        if let Some(path) = &self.sqlite_file {
            writable(path).map_err(|e| StoreError::Unavailable(sqlx::Error::Io(e)))?;
        }
        Ok(())
    }

    /// (pool name, open connections, idle connections) for metrics.
    pub fn pool_stats(&self) -> Vec<(&'static str, u32, usize)> {
        let mut out = vec![("write", self.write.size(), self.write.num_idle())];
        if self.backend == Backend::Sqlite {
            out.push(("read", self.read.size(), self.read.num_idle()));
        }
        out
    }

    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

/// Now, as stored: RFC 3339 UTC with milliseconds.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// An RFC 3339 time as bounds in the stored form (UTC, milliseconds, so that text order is
/// time order): the stored millisecond at or before it, and, when it falls between two stored
/// milliseconds, the one after it. A stored time `v` is then `>= t` exactly when `v >= after`
/// (`after` being `at_or_before` when `t` is whole), and `<= t` exactly when `v <= at_or_before`.
/// None when `t` is not RFC 3339.
pub fn time_bounds(t: &str) -> Option<TimeBounds> {
    let t = chrono::DateTime::parse_from_rfc3339(t.trim()).ok()?;
    let t = t.with_timezone(&chrono::Utc);
    let ms = t.timestamp_millis(); // floors
    let whole = t.timestamp_subsec_nanos() % 1_000_000 == 0;
    let text = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    };
    Some(TimeBounds {
        at_or_before: text(ms)?,
        after: if whole { None } else { Some(text(ms + 1)?) },
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeBounds {
    pub at_or_before: String,
    /// Set when the time is not a whole stored millisecond.
    pub after: Option<String>,
}

impl TimeBounds {
    /// The smallest stored time at or after the time.
    pub fn at_or_after(&self) -> &str {
        self.after.as_deref().unwrap_or(&self.at_or_before)
    }
}

/// `$first, $first+1, …` placeholders for an IN list.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_doc(text: &str) -> Result<serde_json::Map<String, serde_json::Value>> {
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err(StoreError::Corrupt(
            "resource document is not an object".into(),
        )),
        Err(e) => Err(StoreError::Corrupt(format!("resource document: {e}"))),
    }
}

/// One page of a list: the total that match, the page, and where the next page starts
/// (cursor paging only; `None` on the last page).
#[derive(Debug)]
pub struct ListPage<T> {
    pub total: i64,
    pub items: Vec<T>,
    pub next: Option<crate::scim::cursor::Position>,
}

/// The SQL of one list request (see [`Store::list_rows`]).
struct PageQuery {
    /// The filter as a condition on `r`, and its parameters.
    cond: String,
    params: Vec<filter_sql::Param>,
    /// The sort key expression, when sorting by an attribute.
    key: Option<String>,
    /// The page query, its parameters before LIMIT and OFFSET, and those two.
    page_sql: String,
    page_params: Vec<filter_sql::Param>,
    limit: i64,
    offset: i64,
}

impl Store {
    /// Build the page query of a list request.
    fn page_query(
        &self,
        table: &str,
        cols: &str,
        kind: crate::scim::resource::ResourceKind,
        q: &ListQuery,
        with_groups: bool,
    ) -> Result<PageQuery> {
        let d = json_sql::Dialect(self.backend);
        let (cond, params) = match &q.filter {
            Some(f) => {
                let c = filter_sql::compile(self.backend, kind, f, 1, q.lenient)?;
                (c.sql, c.params)
            }
            None => ("TRUE".to_string(), Vec::new()),
        };
        let key = q
            .sort
            .as_ref()
            .map(|s| sort_sql::sort_key(d, kind, &s.path, q.lenient))
            .transpose()?;
        let sort = q.sort.as_ref();
        let after = |key: Option<&str>, seq: &str| match &q.cursor {
            Some(Some(pos)) => sort_sql::after(key, seq, sort, pos, params.len() + 1),
            _ => ("TRUE".to_string(), Vec::new()),
        };
        // (WITH prefix, the page query, its parameters before LIMIT and OFFSET)
        let (with, page, page_params) = match &key {
            // insertion order: straight off the primary key, stopping after the page
            None => {
                let (after, p) = after(None, "r.seq");
                let n = params.len() + p.len();
                let page = format!(
                    "SELECT {cols}, r.seq AS rseq, NULL AS rsk FROM {table} r \
                     WHERE ({cond}) AND {after} ORDER BY r.seq LIMIT ${} OFFSET ${}",
                    n + 1,
                    n + 2
                );
                (String::new(), page, [params.clone(), p].concat())
            }
            // the sort key is computed once per row into a narrow (seq, key) table
            // (PostgreSQL would otherwise parse the document again for every mention
            // of it), the page is cut from that, and only its rows are read in full
            Some(k) => {
                let sk = d.ordered("s.rsk");
                let (after, p) = after(Some(&sk), "s.rseq");
                let n = params.len() + p.len();
                let with = format!(
                    "WITH s AS MATERIALIZED (SELECT r.seq AS rseq, {k} AS rsk \
                     FROM {table} r WHERE {cond}) "
                );
                let inner = sort_sql::order_by(Some(&sk), "s.rseq", sort);
                let pk = d.ordered("pg.rsk");
                let outer = sort_sql::order_by(Some(&pk), "pg.rseq", sort);
                let page = format!(
                    "SELECT {cols}, pg.rseq AS rseq, pg.rsk AS rsk FROM \
                     (SELECT s.rseq, s.rsk FROM s WHERE {after} ORDER BY {inner} \
                     LIMIT ${} OFFSET ${}) pg JOIN {table} r ON r.seq = pg.rseq \
                     ORDER BY {outer}",
                    n + 1,
                    n + 2
                );
                (with, page, [params.clone(), p].concat())
            }
        };
        let (limit, offset) = match q.cursor {
            Some(_) => (q.count + 1, 0),
            None => (q.count, q.start_index - 1),
        };
        let page_sql = if with_groups {
            let outer_key = key.as_ref().map(|_| d.ordered("p.rsk"));
            let outer = sort_sql::order_by(outer_key.as_deref(), "p.rseq", sort);
            format!(
                "{with}SELECT p.*, g.id AS gid, g.display_name AS gname FROM ({page}) p \
                 LEFT JOIN scim_members m ON m.member_id = p.id \
                 LEFT JOIN scim_groups g ON g.id = m.group_id ORDER BY {outer}, g.seq"
            )
        } else {
            format!("{with}{page}")
        };
        Ok(PageQuery {
            cond,
            params,
            key,
            page_sql,
            page_params,
            limit,
            offset,
        })
    }

    /// The database's plan for the page query of a list request, one line per step
    /// (SQLite `EXPLAIN QUERY PLAN`, PostgreSQL `EXPLAIN`): for tests that check which
    /// filters use an index.
    pub async fn explain_list(
        &self,
        kind: crate::scim::resource::ResourceKind,
        q: &ListQuery,
    ) -> Result<Vec<String>> {
        use crate::scim::resource::ResourceKind;
        use sqlx::Row;
        let (table, cols, with_groups) = match kind {
            ResourceKind::User => ("scim_users", users::COLS, true),
            ResourceKind::Group => ("scim_groups", groups::COLS, false),
        };
        let pq = self.page_query(table, cols, kind, q, with_groups)?;
        let explain = match self.backend {
            Backend::Sqlite => "EXPLAIN QUERY PLAN",
            Backend::Postgres => "EXPLAIN",
        };
        let rows = filter_sql::bind(
            sqlx::query(&format!("{explain} {}", pq.page_sql)),
            &pq.page_params,
        )
        .bind(pq.limit)
        .bind(pq.offset)
        .fetch_all(&self.read)
        .await?;
        let column = match self.backend {
            Backend::Sqlite => "detail",
            Backend::Postgres => "QUERY PLAN",
        };
        rows.iter()
            .map(|r| r.try_get::<String, _>(column).map_err(StoreError::from))
            .collect()
    }
}

impl Store {
    /// One page of `table` rows matching a list query, and the total that match. The
    /// COUNT query is skipped when the page itself shows the total (a partial page).
    /// With `with_groups`, each row is repeated once per direct group of the resource
    /// (columns `gid`, `gname`; NULL when it has none), in one round trip.
    ///
    /// Cursor paging is keyset paging on (sort key, `seq`): the page is the first `count`
    /// rows after the cursor's position, so rows created or deleted meanwhile never make
    /// the walk repeat or skip a row that existed throughout.
    async fn list_rows(
        &self,
        table: &str,
        cols: &str,
        kind: crate::scim::resource::ResourceKind,
        q: &ListQuery,
        with_groups: bool,
    ) -> Result<ListPage<sqlx::any::AnyRow>> {
        use sqlx::Row;
        let PageQuery {
            cond,
            params,
            key,
            page_sql,
            page_params,
            limit,
            offset,
        } = self.page_query(table, cols, kind, q, with_groups)?;
        let mut rows = Vec::new();
        let mut next = None;
        if q.count > 0 {
            rows = filter_sql::bind(sqlx::query(&page_sql), &page_params)
                .bind(limit)
                .bind(offset)
                .fetch_all(&self.read)
                .await?;
            // resources on the page (rows repeat per group with `with_groups`)
            let mut len = 0i64;
            let mut last: Option<String> = None;
            let mut cut = rows.len();
            for (i, row) in rows.iter().enumerate() {
                let id: String = row.try_get("id")?;
                if last.as_deref() != Some(id.as_str()) {
                    if len == q.count {
                        cut = i;
                        break;
                    }
                    len += 1;
                    last = Some(id);
                }
            }
            if cut < rows.len() {
                rows.truncate(cut);
                if let Some(row) = rows.last() {
                    next = Some(crate::scim::cursor::Position {
                        key: match key {
                            Some(_) => row.try_get("rsk")?,
                            None => None,
                        },
                        seq: row.try_get("rseq")?,
                    });
                }
            }
            // the page shows the total when it is the last one and nothing precedes it
            // that we could not count: index paging from a known offset, or the first
            // cursor page
            let known_total = match &q.cursor {
                None if len < q.count && (len > 0 || q.start_index == 1) => {
                    Some(q.start_index - 1 + len)
                }
                Some(None) if next.is_none() => Some(len),
                _ => None,
            };
            if let Some(total) = known_total {
                return Ok(ListPage {
                    total,
                    items: rows,
                    next,
                });
            }
        }
        let count_sql = format!("SELECT COUNT(*) AS n FROM {table} r WHERE {cond}");
        let total: i64 = filter_sql::bind(sqlx::query(&count_sql), &params)
            .fetch_one(&self.read)
            .await?
            .try_get("n")?;
        Ok(ListPage {
            total,
            items: rows,
            next,
        })
    }
}

/// The largest number of bind parameters used in one IN list (well under both back-ends' limits).
const CHUNK: usize = 500;

#[cfg(all(test, unix))]
mod private_file_tests {
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn a_new_sqlite_database_is_readable_by_its_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        let url = format!("sqlite://{}", path.display());
        let store = super::Store::connect(&url, &super::StoreOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let file = dir.path().join(format!("new.db{suffix}"));
            if let Ok(m) = std::fs::metadata(&file) {
                assert_eq!(m.permissions().mode() & 0o777, 0o600, "{}", file.display());
            } else {
                assert!(!suffix.is_empty(), "the database was not created");
            }
        }
        store.close().await;
    }
}

#[cfg(test)]
mod ready_tests {
    /// `/readyz` is not ready on a database without this build's schema (a PostgreSQL database
    /// dropped and created again under a running server looks like this).
    #[tokio::test]
    async fn ready_needs_every_migration() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/r.db", dir.path().display());
        let store = super::Store::connect(&url, &super::StoreOptions::default())
            .await
            .unwrap();
        store.ping().await.unwrap();
        let err = store.ready().await.unwrap_err();
        assert!(matches!(err, super::StoreError::Database(_)), "{err:?}");
        store.migrate().await.unwrap();
        store.ready().await.unwrap();
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)")
            .execute(&store.write)
            .await
            .unwrap();
        let err = store.ready().await.unwrap_err().to_string();
        assert!(err.contains("rolecall migrate"), "{err}");
        store.close().await;
    }
}
