//! One `rolecall serve` per SQLite database file.
//!
//! SQLite is the single-server default (several replicas share a PostgreSQL database). A
//! server that knows it is the only one writing to its database can answer single-user SCIM
//! reads from memory (see `access::user_docs`); a second server on the same file would
//! write behind its back, so it is refused at start-up instead. The lock is an advisory
//! `flock` on a file beside the database (`<database>-rolecall.lock`, mode 0600, holding the
//! server's process id); the operating system releases it when the process exits, however
//! it exits. The CLI's other verbs (tokens, mappings, keys, migrate) do not take it: they do
//! not write users or groups.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use percent_encoding::percent_decode_str;

/// Who may write to the database a server uses.
#[derive(Debug)]
pub enum Writers {
    /// This server alone: a SQLite file it holds the lock of, or an in-memory database.
    Sole(Option<ServeLock>),
    /// Other servers may too (PostgreSQL).
    Shared,
}

impl Writers {
    pub fn sole(&self) -> bool {
        matches!(self, Writers::Sole(_))
    }
}

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct ServeLock {
    _file: File,
    path: PathBuf,
}

impl ServeLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another rolecall server{pid} is serving the SQLite database {db}: SQLite is for one \
         server (run replicas on PostgreSQL); stop that one first"
    )]
    Held { db: String, pid: String },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// The database file a `sqlite:` URL names, or `None` for an in-memory database (or a
/// URL that is not SQLite's). Read the way sqlx reads it: after `sqlite://` or `sqlite:`,
/// up to `?`, percent-decoded.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (db, params) = match rest.split_once('?') {
        Some((db, params)) => (db, Some(params)),
        None => (rest, None),
    };
    let in_memory = db.is_empty()
        || db == ":memory:"
        || params.is_some_and(|p| p.split('&').any(|kv| kv == "mode=memory"));
    if in_memory {
        return None;
    }
    let db = percent_decode_str(db).decode_utf8().ok()?;
    Some(PathBuf::from(db.as_ref()))
}

/// Claim the database at `url` for this server: `Sole` for SQLite (after taking the lock;
/// an error if another server holds it), `Shared` for PostgreSQL.
pub fn claim(url: &str) -> Result<Writers, LockError> {
    if !url.starts_with("sqlite:") {
        return Ok(Writers::Shared);
    }
    let Some(db) = sqlite_file(url) else {
        return Ok(Writers::Sole(None));
    };
    // the file itself, whatever name it is reached by (a symlink or a hard path to the same
    // file must meet the same lock); a file not created yet has no other names
    let db = std::fs::canonicalize(&db).unwrap_or(db);
    let mut name = db.clone().into_os_string();
    name.push("-rolecall.lock");
    let path = PathBuf::from(name);
    let io = |source| LockError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let pid = match holder.trim() {
                "" => String::new(),
                p => format!(" (process {p})"),
            };
            return Err(LockError::Held {
                db: db.display().to_string(),
                pid,
            });
        }
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    Ok(Writers::Sole(Some(ServeLock { _file: file, path })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_file_of_a_sqlite_url() {
        let f = |u: &str| sqlite_file(u).map(|p| p.display().to_string());
        assert_eq!(f("sqlite://rolecall.db").as_deref(), Some("rolecall.db"));
        assert_eq!(f("sqlite:rolecall.db").as_deref(), Some("rolecall.db"));
        assert_eq!(
            f("sqlite:///var/lib/rc.db?mode=rwc").as_deref(),
            Some("/var/lib/rc.db")
        );
        assert_eq!(f("sqlite://my%20dir/a.db").as_deref(), Some("my dir/a.db"));
        assert_eq!(f("sqlite::memory:"), None);
        assert_eq!(f("sqlite://:memory:"), None);
        assert_eq!(f("sqlite://x.db?mode=memory&cache=shared"), None);
        assert_eq!(f("postgres://localhost/db"), None);
    }

    #[test]
    fn a_second_claim_on_one_file_is_refused_until_the_first_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("a.db").display());
        let first = claim(&url).unwrap();
        assert!(first.sole());
        let Writers::Sole(Some(lock)) = &first else {
            panic!("a file database is locked: {first:?}")
        };
        assert!(lock.path().ends_with("a.db-rolecall.lock"));
        let text = std::fs::read_to_string(lock.path()).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        match claim(&url) {
            Err(e @ LockError::Held { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("a.db"), "{msg}");
                assert!(msg.contains(&std::process::id().to_string()), "{msg}");
            }
            other => panic!("second claim: {other:?}"),
        }
        // another file is another database
        let other = format!("sqlite://{}", dir.path().join("b.db").display());
        assert!(claim(&other).unwrap().sole());
        drop(first);
        assert!(claim(&url).unwrap().sole());
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_to_a_served_file_meets_its_lock() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.db");
        std::fs::write(&real, b"").unwrap();
        let alias = dir.path().join("alias.db");
        std::os::unix::fs::symlink(&real, &alias).unwrap();
        let first = claim(&format!("sqlite://{}", real.display())).unwrap();
        assert!(matches!(
            claim(&format!("sqlite://{}", alias.display())),
            Err(LockError::Held { .. })
        ));
        drop(first);
        assert!(claim(&format!("sqlite://{}", alias.display()))
            .unwrap()
            .sole());
    }

    #[test]
    fn memory_and_postgres() {
        assert!(claim("sqlite::memory:").unwrap().sole());
        assert!(!claim("postgres://localhost/db").unwrap().sole());
    }
}
