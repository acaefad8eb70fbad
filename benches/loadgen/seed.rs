//! Loading a large directory straight into the tables (SCIM over HTTP would
//! take far longer): users, groups and memberships with multi-row INSERTs in
//! one transaction, and the ids and names they get.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::{Context, Result};

use super::machine::redact;

/// User `u`'s id (a fixed UUID-shaped string, so requests can name it).
pub fn user_id(u: usize) -> String {
    format!("00000000-0000-4000-8000-{u:012x}")
}

pub fn user_name(u: usize) -> String {
    format!("user{u:06}@example.com")
}

pub fn group_id(g: usize) -> String {
    format!("00000000-0000-4000-9000-{g:012x}")
}

pub fn group_name(g: usize) -> String {
    format!("team-{g:05}")
}

/// What to load: users `0..users` (`user000042@example.com`, an
/// `externalId`, active), groups `0..groups` (`team-00042`), and
/// memberships as (group, user) pairs, best in (group, user) order.
pub struct Directory<'a> {
    pub users: usize,
    pub groups: usize,
    pub memberships: &'a [(u32, u32)],
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Load `d` into the database at `url` (the schema must exist: `rolecall
/// migrate` first), in one transaction; PostgreSQL gets `VACUUM ANALYZE`
/// afterwards so that autovacuum stays quiet during the measurement.
pub fn seed(url: &str, d: &Directory) -> Result<()> {
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
        let sqlite = url.starts_with("sqlite:");
        if sqlite {
            conn.execute("PRAGMA synchronous = OFF").await?;
        }
        let mut tx = conn.begin().await?;
        let mut timing = String::new();
        let mut phase = Instant::now();
        let ts = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();

        let users = Rows {
            sqlite,
            head: "INSERT INTO scim_users (id, user_name, user_name_lower, external_id, active, \
                   doc, version, created, last_modified) VALUES ",
            row: "(?, ?, ?, ?, TRUE, ?, 1, ?, ?)",
            per_statement: 2_000,
        };
        users
            .insert(&mut tx, d.users, |q, i| {
                let name = user_name(i);
                let ext = format!("ext-{i:06}");
                let doc = format!(
                    r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"{name}","externalId":"{ext}","active":true}}"#
                );
                q.bind(user_id(i))
                    .bind(name.clone())
                    .bind(name)
                    .bind(ext)
                    .bind(doc)
                    .bind(ts.clone())
                    .bind(ts.clone())
            })
            .await
            .context("inserting users")?;
        let _ = write!(timing, "users {:.1} s", phase.elapsed().as_secs_f64());
        phase = Instant::now();

        let groups = Rows {
            sqlite,
            head: "INSERT INTO scim_groups (id, display_name, display_name_lower, doc, version, \
                   created, last_modified) VALUES ",
            row: "(?, ?, ?, ?, 1, ?, ?)",
            per_statement: 2_000,
        };
        groups
            .insert(&mut tx, d.groups, |q, i| {
                let name = group_name(i);
                let doc = format!(
                    r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"{name}"}}"#
                );
                q.bind(group_id(i))
                    .bind(name.clone())
                    .bind(name)
                    .bind(doc)
                    .bind(ts.clone())
                    .bind(ts.clone())
            })
            .await
            .context("inserting groups")?;
        let _ = write!(timing, ", groups {:.1} s", phase.elapsed().as_secs_f64());
        phase = Instant::now();

        let members = Rows {
            sqlite,
            head: "INSERT INTO scim_members (group_id, member_id, member_type, display) VALUES ",
            row: "(?, ?, 'User', ?)",
            per_statement: 10_000,
        };
        members
            .insert(&mut tx, d.memberships.len(), |q, i| {
                let (g, u) = d.memberships[i];
                // the users have no displayName: their memberships show the userName
                q.bind(group_id(g as usize))
                    .bind(user_id(u as usize))
                    .bind(user_name(u as usize))
            })
            .await
            .context("inserting memberships")?;
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

/// Multi-row INSERTs of one table: `head` then `row` (its parameters written
/// `?`) repeated, `per_statement` rows a statement.
struct Rows {
    sqlite: bool,
    head: &'static str,
    row: &'static str,
    per_statement: usize,
}

impl Rows {
    /// Insert rows `0..n`; `bind` binds row `i`'s parameters.
    async fn insert(
        &self,
        conn: &mut sqlx::AnyConnection,
        n: usize,
        mut bind: impl for<'q> FnMut(Query<'q>, usize) -> Query<'q>,
    ) -> Result<()> {
        let mut start = 0;
        while start < n {
            let end = n.min(start + self.per_statement);
            let mut sql = String::from(self.head);
            let mut p = Params::new(self.sqlite);
            for r in start..end {
                if r > start {
                    sql.push_str(", ");
                }
                for (k, piece) in self.row.split('?').enumerate() {
                    if k > 0 {
                        sql.push_str(&p.next());
                    }
                    sql.push_str(piece);
                }
            }
            let mut q = sqlx::query(&sql);
            for i in start..end {
                q = bind(q, i);
            }
            q.execute(&mut *conn).await?;
            start = end;
        }
        Ok(())
    }
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
