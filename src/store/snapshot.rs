//! Reads for the in-memory role view (whole-directory loads at start-up, single-entity
//! reloads when the change feed names them) and the mapping document and signing keys.

use futures_util::TryStreamExt;
use serde_json::Value;
use sqlx::Row;

use super::audit::{record, Actor};
use super::{now, Result, Store, StoreError};
use crate::access::directory::{GroupRecord, Member, UserRecord};

/// `active` as a BIGINT in both back-ends (the Any driver cannot decode SQLite booleans).
const USER_COLS: &str =
    "id, user_name, external_id, CAST(CASE WHEN active THEN 1 ELSE 0 END AS BIGINT) AS active, \
     version";

fn user_record(row: &sqlx::any::AnyRow) -> Result<UserRecord> {
    Ok(UserRecord {
        id: row.try_get("id")?,
        user_name: row.try_get("user_name")?,
        external_id: row.try_get("external_id")?,
        active: row.try_get::<i64, _>("active")? != 0,
        version: row.try_get("version")?,
    })
}

fn group_record(row: &sqlx::any::AnyRow) -> Result<GroupRecord> {
    Ok(GroupRecord {
        id: row.try_get("id")?,
        display_name: row.try_get("display_name")?,
        external_id: row.try_get("external_id")?,
    })
}

/// A group's members as one text per group: for each member `u` (user) or `g` (group), the
/// id's length in bytes, `:`, the id. Read as one row per group instead of one per member:
/// sqlx hands every row of a SQLite result across threads, which for a 100,000-member group
/// (or the 1,000,000 memberships of a whole directory at start-up) cost far more than the
/// rest of the read. Lengths are the database's byte counts, which assumes UTF-8 storage
/// (ids are server-made UUIDs in any case).
pub(super) const MEMBERS_AGG: &str =
    "string_agg(CASE WHEN member_type = 'Group' THEN 'g' ELSE 'u' END \
     || octet_length(member_id) || ':' || member_id, '') AS members";

/// The members [`MEMBERS_AGG`] encoded.
pub(super) fn decode_members(mut s: &str) -> Result<Vec<Member>> {
    let corrupt = || StoreError::Corrupt("malformed member list from the database".into());
    let mut out = Vec::new();
    while !s.is_empty() {
        let group = s.starts_with('g');
        let rest = s.get(1..).ok_or_else(corrupt)?;
        let (len, rest) = rest.split_once(':').ok_or_else(corrupt)?;
        let len: usize = len.parse().map_err(|_| corrupt())?;
        let id = rest.get(..len).ok_or_else(corrupt)?.to_string();
        s = rest.get(len..).ok_or_else(corrupt)?;
        out.push(if group {
            Member::Group(id)
        } else {
            Member::User(id)
        });
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRow {
    pub kid: String,
    pub private_pkcs8: String,
    pub public_key: String,
    pub created: String,
    pub retired: Option<String>,
}

impl Store {
    /// Every user, group and membership, streamed (1,000,000 memberships never sit in memory as rows).
    pub async fn load_directory(
        &self,
        mut on_user: impl FnMut(UserRecord),
        mut on_group: impl FnMut(GroupRecord),
        mut on_member: impl FnMut(String, Member),
    ) -> Result<()> {
        let sql = format!("SELECT {USER_COLS} FROM scim_users");
        let mut rows = sqlx::query(&sql).fetch(&self.read);
        while let Some(row) = rows.try_next().await? {
            on_user(user_record(&row)?);
        }
        drop(rows);
        let mut rows =
            sqlx::query("SELECT id, display_name, external_id FROM scim_groups").fetch(&self.read);
        while let Some(row) = rows.try_next().await? {
            on_group(group_record(&row)?);
        }
        drop(rows);
        let sql = format!("SELECT group_id, {MEMBERS_AGG} FROM scim_members GROUP BY group_id");
        let mut rows = sqlx::query(&sql).fetch(&self.read);
        while let Some(row) = rows.try_next().await? {
            let group: String = row.try_get(0)?;
            for m in decode_members(row.try_get(1)?)? {
                on_member(group.clone(), m);
            }
        }
        Ok(())
    }

    /// The records of these users (missing ones are absent from the answer), a query per 500.
    pub async fn load_user_records(&self, ids: &[String]) -> Result<Vec<UserRecord>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(super::CHUNK) {
            let sql = format!(
                "SELECT {USER_COLS} FROM scim_users WHERE id IN ({})",
                super::placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id.clone());
            }
            for row in q.fetch_all(&self.read).await? {
                out.push(user_record(&row)?);
            }
        }
        Ok(out)
    }

    pub async fn load_user_record(&self, id: &str) -> Result<Option<UserRecord>> {
        let sql = format!("SELECT {USER_COLS} FROM scim_users WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(user_record).transpose()
    }

    pub async fn load_group_record(&self, id: &str) -> Result<Option<(GroupRecord, Vec<Member>)>> {
        let row =
            sqlx::query("SELECT id, display_name, external_id FROM scim_groups WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(&self.read)
                .await?;
        let Some(row) = row else { return Ok(None) };
        let group = group_record(&row)?;
        let sql = format!("SELECT {MEMBERS_AGG} FROM scim_members WHERE group_id = $1");
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_one(&self.read)
            .await?;
        // no members: string_agg over no rows is NULL
        let members = match row.try_get::<Option<String>, _>(0)? {
            Some(text) => decode_members(&text)?,
            None => Vec::new(),
        };
        Ok(Some((group, members)))
    }

    /// The mapping document in force and its version (None before the first apply).
    pub async fn get_mapping(&self) -> Result<Option<(i64, Value)>> {
        let row = sqlx::query("SELECT version, doc FROM mapping_document WHERE id = 1")
            .fetch_optional(&self.read)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let doc: String = row.try_get("doc")?;
        let doc = serde_json::from_str(&doc)
            .map_err(|e| StoreError::Corrupt(format!("mapping document: {e}")))?;
        Ok(Some((row.try_get("version")?, doc)))
    }

    /// Replace the mapping document if its version is still `expected` (None = whatever it is).
    /// Returns the new version. The version check is part of the write itself, so of two
    /// concurrent writers with the same `expected` exactly one wins. The audit entry carries
    /// `summary` (the diff).
    pub async fn put_mapping(
        &self,
        doc: &Value,
        expected: Option<i64>,
        summary: Value,
        actor: &Actor,
    ) -> Result<i64> {
        let mut tx = self.write.begin().await?;
        let row = match expected {
            // version 0: the document has never been applied
            Some(0) => {
                sqlx::query(
                    "INSERT INTO mapping_document (id, version, doc, updated) VALUES (1, 1, $1, $2) \
                     ON CONFLICT (id) DO NOTHING RETURNING version",
                )
                .bind(doc.to_string())
                .bind(now())
                .fetch_optional(&mut *tx)
                .await?
            }
            Some(v) => {
                sqlx::query(
                    "UPDATE mapping_document SET version = version + 1, doc = $1, updated = $2 \
                     WHERE id = 1 AND version = $3 RETURNING version",
                )
                .bind(doc.to_string())
                .bind(now())
                .bind(v)
                .fetch_optional(&mut *tx)
                .await?
            }
            None => Some(
                sqlx::query(
                    "INSERT INTO mapping_document (id, version, doc, updated) VALUES (1, 1, $1, $2) \
                     ON CONFLICT (id) DO UPDATE SET version = mapping_document.version + 1, \
                     doc = excluded.doc, updated = excluded.updated RETURNING version",
                )
                .bind(doc.to_string())
                .bind(now())
                .fetch_one(&mut *tx)
                .await?,
            ),
        };
        let Some(row) = row else {
            return Err(StoreError::PreconditionFailed(expected.unwrap_or(-1)));
        };
        let version: i64 = row.try_get("version")?;
        record(
            &mut tx,
            actor,
            "mapping.apply",
            "mapping",
            "rolecall",
            summary,
        )
        .await?;
        tx.commit().await?;
        self.committed();
        Ok(version)
    }

    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyRow>> {
        let rows = sqlx::query("SELECT kid, private_pkcs8, public_key, created, retired FROM signing_keys ORDER BY created")
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(SigningKeyRow {
                    kid: r.try_get("kid")?,
                    private_pkcs8: r.try_get("private_pkcs8")?,
                    public_key: r.try_get("public_key")?,
                    created: r.try_get("created")?,
                    retired: r.try_get("retired")?,
                })
            })
            .collect()
    }

    /// Add a signing key; the keys in use before it are marked retired (kept for verification).
    pub async fn add_signing_key(&self, key: &SigningKeyRow, actor: &Actor) -> Result<()> {
        let mut tx = self.write.begin().await?;
        sqlx::query("UPDATE signing_keys SET retired = $1 WHERE retired IS NULL")
            .bind(key.created.clone())
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO signing_keys (kid, private_pkcs8, public_key, created) VALUES ($1, $2, $3, $4)")
            .bind(key.kid.clone())
            .bind(key.private_pkcs8.clone())
            .bind(key.public_key.clone())
            .bind(key.created.clone())
            .execute(&mut *tx)
            .await?;
        record(
            &mut tx,
            actor,
            "key.rotate",
            "key",
            &key.kid,
            serde_json::json!({"kid": key.kid}),
        )
        .await?;
        tx.commit().await?;
        self.committed();
        Ok(())
    }

    /// Forget retired keys older than `before` (their tokens have all expired).
    pub async fn prune_signing_keys(&self, before: &str) -> Result<u64> {
        let done =
            sqlx::query("DELETE FROM signing_keys WHERE retired IS NOT NULL AND retired < $1")
                .bind(before.to_string())
                .execute(&self.write)
                .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_lists_decode() {
        let text = "u36:2f1e4a7c-0000-4000-8000-000000000001g2:g7u5:é-x_";
        assert_eq!(
            decode_members(text).unwrap(),
            vec![
                Member::User("2f1e4a7c-0000-4000-8000-000000000001".into()),
                Member::Group("g7".into()),
                Member::User("é-x_".into()),
            ]
        );
        assert_eq!(decode_members("").unwrap(), vec![]);
        for bad in ["u", "u3", "u3:ab", "ux:abc", "u2:a\u{e9}"] {
            assert!(decode_members(bad).is_err(), "{bad:?}");
        }
    }
}
