//! The audit log: one entry per change, written in the same transaction as the change.
//! It doubles as the change feed: every rolecall server on the database follows it to keep
//! its in-memory view of users, groups, mappings, tokens and keys current.

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{now, Result, Store, StoreError};

/// Who made a change, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The token's name, or the operating-system user for the CLI.
    pub name: String,
    /// The token's scope (`scim`, `admin`, ...) or `cli`.
    pub kind: String,
    pub request_id: Option<String>,
    pub client: Option<String>,
}

impl Actor {
    /// The person running a CLI verb: named by `$USER` (which they choose), with the
    /// process's effective uid (which they do not) as the client.
    pub fn cli() -> Self {
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        #[cfg(unix)]
        // SAFETY: geteuid(2) takes no arguments, touches no memory and cannot fail.
        let client = Some(format!("local uid {}", unsafe { libc::geteuid() }));
        #[cfg(not(unix))]
        let client = Some("local".to_string());
        Self {
            name: format!("cli:{user}"),
            kind: "cli".into(),
            request_id: None,
            client,
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub actor_kind: String,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub summary: Value,
    pub request_id: Option<String>,
    pub client: Option<String>,
}

/// What the change feed needs of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub seq: i64,
    pub target_type: String,
    pub target_id: String,
    /// A group's PATCH or PUT that changed few enough members to itemize: the group's name
    /// and externalId after it, and the member rows it inserted and deleted, in order.
    pub group_delta: Option<GroupDelta>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDelta {
    pub display_name: String,
    pub external_id: Option<String>,
    pub members: super::groups::MemberDelta,
}

impl GroupDelta {
    fn from_summary(summary: &str) -> Option<Self> {
        let v: Value = serde_json::from_str(summary).ok()?;
        Some(Self {
            members: super::groups::MemberDelta::from_summary(&v)?,
            display_name: v.get("displayName")?.as_str()?.to_string(),
            external_id: match v.get("externalId") {
                None | Some(Value::Null) => None,
                Some(e) => Some(e.as_str()?.to_string()),
            },
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub since: Option<String>,
    pub until: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    /// Entries strictly older than this sequence number (the previous page's cursor).
    pub before: Option<i64>,
    pub limit: i64,
}

/// Append an entry inside `tx`; returns its sequence number.
pub(super) async fn record(
    tx: &mut Transaction<'_, Any>,
    actor: &Actor,
    action: &str,
    target_type: &str,
    target_id: &str,
    summary: Value,
) -> Result<i64> {
    let row = sqlx::query(
        "INSERT INTO audit_log (at, actor, actor_kind, action, target_type, target_id, summary, request_id, client) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING seq",
    )
    .bind(now())
    .bind(actor.name.clone())
    .bind(actor.kind.clone())
    .bind(action.to_string())
    .bind(target_type.to_string())
    .bind(target_id.to_string())
    .bind(summary.to_string())
    .bind(actor.request_id.clone())
    .bind(actor.client.clone())
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.try_get("seq")?)
}

fn from_row(row: &AnyRow) -> Result<AuditEntry> {
    let summary: String = row.try_get("summary")?;
    Ok(AuditEntry {
        seq: row.try_get("seq")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        actor_kind: row.try_get("actor_kind")?,
        action: row.try_get("action")?,
        target_type: row.try_get("target_type")?,
        target_id: row.try_get("target_id")?,
        summary: serde_json::from_str(&summary).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        request_id: row.try_get("request_id")?,
        client: row.try_get("client")?,
    })
}

impl Store {
    /// Audit entries matching `q`, newest first.
    pub async fn list_audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let mut conds = Vec::new();
        let mut params: Vec<String> = Vec::new();
        let mut push = |cond: &str, value: &Option<String>| {
            if let Some(v) = value {
                params.push(v.clone());
                conds.push(cond.replace('?', &format!("${}", params.len())));
            }
        };
        push("at >= ?", &q.since);
        push("at < ?", &q.until);
        push("actor = ?", &q.actor);
        push("action = ?", &q.action);
        push("target_id = ?", &q.target);
        let before = q.before.map(|b| b.to_string());
        push("seq < CAST(? AS BIGINT)", &before);
        let cond = if conds.is_empty() {
            "TRUE".to_string()
        } else {
            conds.join(" AND ")
        };
        let sql = format!(
            "SELECT seq, at, actor, actor_kind, action, target_type, target_id, summary, request_id, client \
             FROM audit_log WHERE {cond} ORDER BY seq DESC LIMIT ${}",
            params.len() + 1
        );
        let mut query = sqlx::query(&sql);
        for p in params {
            query = query.bind(p);
        }
        let rows = query.bind(q.limit).fetch_all(&self.read).await?;
        rows.iter().map(from_row).collect()
    }

    /// Feed entries after `after`, plus the listed sequence numbers (gaps seen earlier), oldest first.
    pub async fn changes_since(&self, after: i64, gaps: &[i64], limit: i64) -> Result<Vec<Change>> {
        let mut sql = String::from(
            "SELECT seq, target_type, target_id, summary FROM audit_log WHERE seq > $1",
        );
        if !gaps.is_empty() {
            sql.push_str(&format!(
                " OR seq IN ({})",
                super::placeholders(3, gaps.len())
            ));
        }
        sql.push_str(" ORDER BY seq LIMIT $2");
        let mut q = sqlx::query(&sql).bind(after).bind(limit);
        for g in gaps {
            q = q.bind(*g);
        }
        let rows = q.fetch_all(&self.read).await?;
        rows.iter()
            .map(|r| {
                let target_type: String = r.try_get("target_type")?;
                let group_delta = match target_type.as_str() {
                    "group" => GroupDelta::from_summary(r.try_get("summary")?),
                    _ => None,
                };
                Ok(Change {
                    seq: r.try_get("seq")?,
                    target_type,
                    target_id: r.try_get("target_id")?,
                    group_delta,
                })
            })
            .collect()
    }

    /// The newest sequence number (0 when the log is empty).
    pub async fn last_change(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) AS n FROM audit_log")
            .fetch_one(&self.read)
            .await?;
        Ok(row.try_get("n")?)
    }
}

#[cfg(test)]
mod delta_tests {
    use super::super::groups::MemberDelta;
    use super::GroupDelta;
    use crate::access::directory::Member;
    use serde_json::json;

    #[test]
    fn a_delta_survives_the_audit_summary() {
        let delta = MemberDelta {
            ops: vec![
                (true, Member::User("u-1".into())),
                (false, Member::Group("g:2".into())),
            ],
        };
        let summary = json!({"displayName": "eng", "externalId": null,
                             "members": {"added": 1}, "delta": delta.to_json()});
        assert_eq!(summary["delta"], json!(["+User:u-1", "-Group:g:2"]));
        let parsed = GroupDelta::from_summary(&summary.to_string()).unwrap();
        assert_eq!(parsed.members, delta);
        assert_eq!(parsed.display_name, "eng");
        assert_eq!(parsed.external_id, None);
        let with_ext = json!({"displayName": "eng", "externalId": "x", "delta": []});
        let parsed = GroupDelta::from_summary(&with_ext.to_string()).unwrap();
        assert_eq!(parsed.external_id.as_deref(), Some("x"));
        assert!(parsed.members.ops.is_empty());
        // no delta, or a malformed one: the feed reloads the group
        for s in [
            json!({"displayName": "eng", "members": {"replacedWith": 3}}),
            json!({"displayName": "eng", "delta": ["*User:u"]}),
            json!({"displayName": "eng", "delta": ["+Robot:u"]}),
            json!({"displayName": "eng", "delta": ["+User"]}),
            json!({"delta": []}),
        ] {
            assert!(GroupDelta::from_summary(&s.to_string()).is_none(), "{s}");
        }
        assert!(GroupDelta::from_summary("not json").is_none());
    }
}
