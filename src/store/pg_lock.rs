//! PostgreSQL: which `rolecall serve` processes share a database.
//!
//! Several servers (replicas) may serve one PostgreSQL database; each then reads single users
//! behind a read barrier, to see what the others committed (see `access::user_docs`). A server
//! started with `--sole-server` declares it is the only one: it reads from memory once its own
//! writes are applied, as a SQLite server does. What keeps that declaration true is a
//! session-level advisory lock on a connection of its own: every server holds it, replicas
//! shared and a sole server exclusively, so a sole server does not start beside replicas, and
//! no replica starts beside a sole server. The CLI's other verbs do not take it: they write no
//! users or groups.
//!
//! PostgreSQL releases the lock when that connection ends. A server checks its connection
//! every second ([`ServerLock::check`]); a sole server that finds it gone falls back to read
//! barriers for the rest of its life (another server may have started meanwhile), and a
//! replica takes its shared lock again.

use sqlx::{AnyConnection, Connection, Row};

/// The advisory lock's key: "rolecall" in ASCII.
const KEY: i64 = 0x726f_6c65_6361_6c6c;

#[derive(Debug, thiserror::Error)]
pub enum ServerLockError {
    #[error(
        "another rolecall server is serving this PostgreSQL database: --sole-server needs \
         it to itself (stop the others, or start this one without --sole-server)"
    )]
    NotAlone,
    #[error(
        "a rolecall server started with --sole-server is serving this PostgreSQL database: \
         stop it first (or restart it without --sole-server to run replicas)"
    )]
    SoleServerRunning,
    #[error("cannot take the server lock on the database: {0}")]
    Database(#[from] sqlx::Error),
}

/// The held lock (released when dropped, or when the process ends).
pub struct ServerLock {
    conn: tokio::sync::Mutex<Option<AnyConnection>>,
    url: String,
    sole: bool,
}

async fn try_lock(url: &str, sole: bool) -> Result<AnyConnection, ServerLockError> {
    let mut conn = AnyConnection::connect(url).await?;
    let sql = if sole {
        "SELECT pg_try_advisory_lock($1) AS got"
    } else {
        "SELECT pg_try_advisory_lock_shared($1) AS got"
    };
    let got: bool = sqlx::query(sql)
        .bind(KEY)
        .fetch_one(&mut conn)
        .await?
        .try_get("got")?;
    match (got, sole) {
        (true, _) => Ok(conn),
        (false, true) => Err(ServerLockError::NotAlone),
        (false, false) => Err(ServerLockError::SoleServerRunning),
    }
}

impl ServerLock {
    /// Take the lock: exclusively for a sole server, shared for a replica.
    pub async fn take(url: &str, sole: bool) -> Result<Self, ServerLockError> {
        let conn = try_lock(url, sole).await?;
        Ok(Self {
            conn: tokio::sync::Mutex::new(Some(conn)),
            url: url.to_string(),
            sole,
        })
    }

    pub fn sole(&self) -> bool {
        self.sole
    }

    /// Is the lock still held? A replica whose connection ended takes its shared lock again
    /// (and says so); a sole server's lock, once lost, is not taken back: the caller no
    /// longer counts on being alone.
    pub async fn check(&self) -> bool {
        let mut conn = self.conn.lock().await;
        if let Some(c) = conn.as_mut() {
            let held = sqlx::query(
                "SELECT count(*) AS n FROM pg_locks WHERE pid = pg_backend_pid() \
                 AND locktype = 'advisory' AND granted \
                 AND classid = ($1 >> 32)::oid AND objid = ($1 & 4294967295)::oid",
            )
            .bind(KEY)
            .fetch_one(&mut *c)
            .await
            .and_then(|r| r.try_get::<i64, _>("n"));
            if matches!(held, Ok(n) if n > 0) {
                return true;
            }
            *conn = None;
        }
        if !self.sole {
            if let Ok(c) = try_lock(&self.url, false).await {
                *conn = Some(c);
                tracing::info!("took the server lock on the database again");
            }
        }
        false
    }

    /// Let go of the lock (also done by dropping it).
    pub async fn release(&self) {
        if let Some(c) = self.conn.lock().await.take() {
            let _ = c.close().await;
        }
    }
}
