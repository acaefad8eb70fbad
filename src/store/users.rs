//! Users: one row per user with the searchable attributes as columns, the full document as
//! JSON text, and e-mail values in a child table for `emails.value` filters.

use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::audit::{record, Actor};
use super::filter_sql::ListQuery;
use super::{
    now, parse_doc, placeholders, retrying, Backend, ListPage, Result, Store, StoreError, CHUNK,
};
use crate::scim::resource::{Normalized, ResourceKind};

/// A stored user.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: String,
    pub active: bool,
    pub doc: Map<String, Value>,
    pub version: i64,
    pub created: String,
    pub last_modified: String,
    /// Groups the user is a direct member of.
    pub groups: Vec<GroupRef>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRef {
    pub id: String,
    pub display: String,
}

pub(super) const COLS: &str = "r.id, r.doc, r.version, r.created, r.last_modified";

fn from_row(row: &AnyRow) -> Result<UserRow> {
    // `active` is also a column (for filters), but the Any driver cannot decode SQLite
    // booleans, so it is read from the document, where normalize() always sets it.
    let doc = parse_doc(row.try_get::<&str, _>("doc")?)?;
    Ok(UserRow {
        id: row.try_get("id")?,
        active: doc.get("active").and_then(Value::as_bool).unwrap_or(true),
        doc,
        version: row.try_get("version")?,
        created: row.try_get("created")?,
        last_modified: row.try_get("last_modified")?,
        groups: Vec::new(),
    })
}

/// Users from rows repeated once per direct group (`gid`, `gname`), in row order.
fn fold_groups(rows: &[AnyRow]) -> Result<Vec<UserRow>> {
    let mut users: Vec<UserRow> = Vec::new();
    for row in rows {
        let id: String = row.try_get("id")?;
        if users.last().is_none_or(|u| u.id != id) {
            users.push(from_row(row)?);
        }
        let gid: Option<String> = row.try_get("gid")?;
        if let (Some(gid), Some(user)) = (gid, users.last_mut()) {
            user.groups.push(GroupRef {
                id: gid,
                display: row
                    .try_get::<Option<String>, _>("gname")?
                    .unwrap_or_default(),
            });
        }
    }
    Ok(users)
}

pub(super) fn doc_text(doc: &Map<String, Value>) -> Result<String> {
    serde_json::to_string(doc).map_err(|e| StoreError::Corrupt(e.to_string()))
}

async fn insert_emails(tx: &mut Transaction<'_, Any>, id: &str, emails: &[String]) -> Result<()> {
    for chunk in emails.chunks(CHUNK) {
        let values = (0..chunk.len())
            .map(|i| format!("($1, ${})", i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("INSERT INTO scim_emails (user_id, value_lower) VALUES {values}");
        let mut q = sqlx::query(&sql).bind(id.to_string());
        for e in chunk {
            q = q.bind(e.clone());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// The audit summary of a created user.
pub(super) fn create_summary(n: &Normalized) -> Value {
    serde_json::json!({"userName": n.user_name, "active": n.active, "externalId": n.external_id})
}

impl Store {
    /// Create a user. On SQLite, creates that arrive while the writer is busy are committed
    /// together (see `store::batch`); the answer is the same either way.
    #[tracing::instrument(skip_all)]
    pub async fn create_user(&self, n: Normalized, actor: &Actor) -> Result<UserRow> {
        let n = match &self.batcher {
            Some(batcher) => match super::batch::submit(batcher, n, actor).await {
                Ok(result) => return result,
                Err(n) => n,
            },
            None => n,
        };
        self.create_user_alone(&n, actor).await
    }

    /// Create a user in a transaction of its own.
    pub(super) async fn create_user_alone(&self, n: &Normalized, actor: &Actor) -> Result<UserRow> {
        let id = uuid::Uuid::new_v4().to_string();
        let ts = now();
        let doc = doc_text(&n.doc)?;
        let mut tx = self.write.begin().await?;
        sqlx::query(
            "INSERT INTO scim_users (id, user_name, user_name_lower, external_id, display_name, \
             display_name_lower, active, doc, version, created, last_modified) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $9)",
        )
        .bind(id.clone())
        .bind(n.user_name.clone())
        .bind(n.user_name.to_lowercase())
        .bind(n.external_id.clone())
        .bind(n.display_name.clone())
        .bind(n.display_name.as_deref().map(str::to_lowercase))
        .bind(n.active)
        .bind(doc)
        .bind(ts.clone())
        .execute(&mut *tx)
        .await?;
        insert_emails(&mut tx, &id, &n.emails).await?;
        record(
            &mut tx,
            actor,
            "user.create",
            "user",
            &id,
            create_summary(n),
        )
        .await?;
        tx.commit().await?;
        self.committed();
        Ok(UserRow {
            id,
            active: n.active,
            doc: n.doc.clone(),
            version: 1,
            created: ts.clone(),
            last_modified: ts,
            groups: Vec::new(),
        })
    }

    #[tracing::instrument(skip_all)]
    pub async fn get_user(&self, id: &str) -> Result<UserRow> {
        let rows = sqlx::query(&format!(
            "SELECT {COLS}, g.id AS gid, g.display_name AS gname FROM scim_users r \
             LEFT JOIN scim_members m ON m.member_id = r.id \
             LEFT JOIN scim_groups g ON g.id = m.group_id WHERE r.id = $1 ORDER BY g.seq"
        ))
        .bind(id.to_string())
        .fetch_all(&self.read)
        .await?;
        fold_groups(&rows)?.pop().ok_or(StoreError::NotFound)
    }

    /// Replace a user's document. `expected` is the version the change was computed from.
    #[tracing::instrument(skip_all)]
    pub async fn replace_user(
        &self,
        id: &str,
        n: &Normalized,
        expected: Option<i64>,
        action: &str,
        actor: &Actor,
    ) -> Result<UserRow> {
        retrying(|| self.replace_user_once(id, n, expected, action, actor)).await
    }

    async fn replace_user_once(
        &self,
        id: &str,
        n: &Normalized,
        expected: Option<i64>,
        action: &str,
        actor: &Actor,
    ) -> Result<UserRow> {
        let ts = now();
        let doc = doc_text(&n.doc)?;
        let mut tx = self.write.begin().await?;
        let was_active = sqlx::query("SELECT doc FROM scim_users WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| -> Result<bool> {
                let doc = parse_doc(r.try_get::<&str, _>("doc")?)?;
                Ok(doc.get("active").and_then(Value::as_bool).unwrap_or(true))
            })
            .transpose()?;
        let row = sqlx::query(
            "UPDATE scim_users SET user_name = $1, user_name_lower = $2, external_id = $3, \
             display_name = $4, display_name_lower = $5, active = $6, doc = $7, \
             version = version + 1, last_modified = $8 \
             WHERE id = $9 AND ($10 < 0 OR version = $10) RETURNING version, created",
        )
        .bind(n.user_name.clone())
        .bind(n.user_name.to_lowercase())
        .bind(n.external_id.clone())
        .bind(n.display_name.clone())
        .bind(n.display_name.as_deref().map(str::to_lowercase))
        .bind(n.active)
        .bind(doc)
        .bind(ts.clone())
        .bind(id.to_string())
        .bind(expected.unwrap_or(-1))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            drop(tx);
            return Err(self.missing_or_stale("scim_users", id, expected).await);
        };
        sqlx::query("DELETE FROM scim_emails WHERE user_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        insert_emails(&mut tx, id, &n.emails).await?;
        // the user's memberships show its name (the user's row is locked since the UPDATE
        // above: see `groups::resolve_members` for the other side)
        sqlx::query(
            "UPDATE scim_members SET display = $1 \
             WHERE member_id = $2 AND member_type = 'User' AND (display IS NULL OR display <> $1)",
        )
        .bind(
            n.display_name
                .clone()
                .unwrap_or_else(|| n.user_name.clone()),
        )
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        let action = match (was_active, n.active) {
            (Some(true), false) => "user.deactivate",
            (Some(false), true) => "user.reactivate",
            _ => action,
        };
        let summary = serde_json::json!({"userName": n.user_name, "active": n.active, "externalId": n.external_id});
        record(&mut tx, actor, action, "user", id, summary).await?;
        tx.commit().await?;
        self.committed();
        let mut user = UserRow {
            id: id.to_string(),
            active: n.active,
            doc: n.doc.clone(),
            version: row.try_get("version")?,
            created: row.try_get("created")?,
            last_modified: ts,
            groups: Vec::new(),
        };
        self.attach_groups(std::slice::from_mut(&mut user)).await?;
        Ok(user)
    }

    /// PostgreSQL: lock the row `id` of `table` (users or groups) for the rest of the
    /// transaction, if it exists at the `expected` version; false if not. SQLite has one
    /// writer at a time, whose write lock covers every row: nothing to do there (and a
    /// read as a transaction's first statement would make its first write an upgrade that
    /// fails, rather than waits, when another process wrote in between).
    pub(super) async fn lock_row(
        &self,
        tx: &mut Transaction<'_, Any>,
        table: &str,
        id: &str,
        expected: Option<i64>,
    ) -> Result<bool> {
        if self.backend == Backend::Sqlite {
            return Ok(true);
        }
        let sql =
            format!("SELECT id FROM {table} WHERE id = $1 AND ($2 < 0 OR version = $2) FOR UPDATE");
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .bind(expected.unwrap_or(-1))
            .fetch_optional(&mut **tx)
            .await?;
        Ok(row.is_some())
    }

    /// After an update matched no row: was the resource missing, or at another version?
    pub(super) async fn missing_or_stale(
        &self,
        table: &str,
        id: &str,
        expected: Option<i64>,
    ) -> StoreError {
        let sql = format!("SELECT version FROM {table} WHERE id = $1");
        match sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.write)
            .await
        {
            Ok(Some(_)) => StoreError::PreconditionFailed(expected.unwrap_or(-1)),
            Ok(None) => StoreError::NotFound,
            Err(e) => e.into(),
        }
    }

    /// Delete a user and its memberships; groups that contained it get a new version.
    #[tracing::instrument(skip_all)]
    pub async fn delete_user(&self, id: &str, expected: Option<i64>, actor: &Actor) -> Result<()> {
        retrying(|| self.delete_user_once(id, expected, actor)).await
    }

    async fn delete_user_once(&self, id: &str, expected: Option<i64>, actor: &Actor) -> Result<()> {
        let mut tx = self.write.begin().await?;
        // The user's row first: a membership change adding this user share-locks it, so it
        // either committed before this lock was granted (and the statements below, each
        // reading what is committed when it starts, see its row and delete it), or waits
        // for this delete to commit and then finds no such user (400). Without this lock a
        // row added meanwhile outlived the user.
        if !self.lock_row(&mut tx, "scim_users", id, expected).await? {
            drop(tx);
            return Err(self.missing_or_stale("scim_users", id, expected).await);
        }
        let groups = sqlx::query(
            "UPDATE scim_groups SET version = version + 1, last_modified = $1 \
             WHERE id IN (SELECT group_id FROM scim_members WHERE member_id = $2)",
        )
        .bind(now())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM scim_members WHERE member_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM scim_users WHERE id = $1 AND ($2 < 0 OR version = $2)")
            .bind(id.to_string())
            .bind(expected.unwrap_or(-1))
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            drop(tx);
            return Err(self.missing_or_stale("scim_users", id, expected).await);
        }
        let summary = serde_json::json!({"groups": groups.rows_affected()});
        record(&mut tx, actor, "user.delete", "user", id, summary).await?;
        tx.commit().await?;
        self.committed();
        Ok(())
    }

    /// A page of users matching the query, and the total number that match.
    #[tracing::instrument(skip_all)]
    pub async fn list_users(&self, q: &ListQuery) -> Result<ListPage<UserRow>> {
        let page = self
            .list_rows("scim_users", COLS, ResourceKind::User, q, true)
            .await?;
        Ok(ListPage {
            total: page.total,
            items: fold_groups(&page.items)?,
            next: page.next,
        })
    }

    /// Fill in `groups` (direct memberships) for a page of users with one query per chunk.
    async fn attach_groups(&self, users: &mut [UserRow]) -> Result<()> {
        for chunk in users.chunks_mut(CHUNK) {
            let sql = format!(
                "SELECT m.member_id, g.id, g.display_name FROM scim_members m \
                 JOIN scim_groups g ON g.id = m.group_id WHERE m.member_id IN ({}) ORDER BY g.seq",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for u in chunk.iter() {
                q = q.bind(u.id.clone());
            }
            for row in q.fetch_all(&self.read).await? {
                let member: String = row.try_get(0)?;
                let group = GroupRef {
                    id: row.try_get(1)?,
                    display: row.try_get(2)?,
                };
                if let Some(u) = chunk.iter_mut().find(|u| u.id == member) {
                    u.groups.push(group);
                }
            }
        }
        Ok(())
    }
}
