//! Groups and their membership table. Membership changes are applied as deltas of
//! (group, member) rows inside the same transaction as the group's new version, so adding
//! ten members to a group of 100,000 touches ten rows.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::audit::{record, Actor};
use super::filter_sql::ListQuery;
use super::{
    now, parse_doc, placeholders, retrying, Backend, ListPage, Result, Store, StoreError, CHUNK,
};
use crate::access::directory::Member;
use crate::scim::error::ProtocolError;
use crate::scim::patch::MemberChange;
use crate::scim::resource::{MemberRef, Normalized, ResourceKind};

#[derive(Debug, Clone)]
pub struct GroupRow {
    pub id: String,
    pub doc: Map<String, Value>,
    pub version: i64,
    pub created: String,
    pub last_modified: String,
    /// `None` when the caller asked not to read the membership table.
    pub members: Option<MemberList>,
}

/// One member of a group: its id, `User` or `Group`, and its display name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberRow<'a> {
    pub value: &'a str,
    pub kind: &'static str,
    pub display: Option<&'a str>,
}

/// A group's members in id order (byte order): the text the database aggregated them into,
/// and where each member's fields are in it. Reading 100,000 members so allocates two
/// buffers, not a string per id and per name (which was a third of the CPU of reading a
/// large group and answering with it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberList {
    text: String,
    spans: Vec<Span>,
}

/// Where one member's fields are in [`MemberList::text`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    /// The id's first 8 bytes, big-endian (zero-padded): orders most ids without reading them.
    key: u64,
    value: (u32, u32),
    display: Option<(u32, u32)>,
    group: bool,
}

impl MemberList {
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The bytes of every id and display name (for sizing an answer).
    pub fn text_len(&self) -> usize {
        self.text.len()
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = MemberRow<'_>> + '_ {
        self.spans.iter().map(|s| self.row(s))
    }

    fn row(&self, s: &Span) -> MemberRow<'_> {
        let at = |(a, b): (u32, u32)| &self.text[a as usize..b as usize];
        MemberRow {
            value: at(s.value),
            kind: if s.group { "Group" } else { "User" },
            display: s.display.map(at),
        }
    }

    /// Add a member (copying its text); [`MemberList::sort`] puts the list in order.
    pub fn push(&mut self, value: &str, kind: &str, display: Option<&str>) {
        let mut field = |t: &str| {
            let start = self.text.len() as u32;
            self.text.push_str(t);
            (start, self.text.len() as u32)
        };
        let value = field(value);
        let display = display.map(field);
        self.spans.push(Span {
            key: prefix_key(&self.text[value.0 as usize..value.1 as usize]),
            value,
            display,
            group: kind == "Group",
        });
    }

    /// Put the members in id order (byte order, as SQLite's `ORDER BY` gives).
    pub fn sort(&mut self) {
        let text = &self.text;
        let id = |s: &Span| &text.as_bytes()[s.value.0 as usize..s.value.1 as usize];
        self.spans
            .sort_unstable_by(|a, b| a.key.cmp(&b.key).then_with(|| id(a).cmp(id(b))));
    }
}

/// The first 8 bytes of `s` as a big-endian number, zero-padded: comparing two of them
/// compares the strings' first 8 bytes in byte order (ids hold no U+0000).
fn prefix_key(s: &str) -> u64 {
    let mut b = [0u8; 8];
    let n = s.len().min(8);
    b[..n].copy_from_slice(&s.as_bytes()[..n]);
    u64::from_be_bytes(b)
}

pub(super) const COLS: &str = "r.id, r.doc, r.version, r.created, r.last_modified";

/// Members per statement when membership rows are checked, added or removed. Smaller than
/// [`CHUNK`]: binding `$N` parameters on SQLite costs time proportional to the statement's
/// parameter count for each parameter (sqlx looks each one up by name, and SQLite searches
/// its list of names), so a statement of p parameters costs p² and 10,000 members in
/// statements of 1,001 parameters spent more time binding than writing.
const MEMBER_CHUNK: usize = 100;

fn from_row(row: &AnyRow) -> Result<GroupRow> {
    Ok(GroupRow {
        id: row.try_get("id")?,
        doc: parse_doc(row.try_get::<&str, _>("doc")?)?,
        version: row.try_get("version")?,
        created: row.try_get("created")?,
        last_modified: row.try_get("last_modified")?,
        members: None,
    })
}

/// The stored document of a group: everything but `members`.
fn stored_doc(doc: &Map<String, Value>) -> Map<String, Value> {
    let mut d = doc.clone();
    d.remove("members");
    d
}

/// [`stored_doc`] as the text stored.
fn doc_text(doc: &Map<String, Value>) -> Result<String> {
    serde_json::to_string(&stored_doc(doc)).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Resolve member ids to their types, failing with `invalidValue` on any unknown id.
/// Members are never created implicitly.
///
/// On PostgreSQL the members' rows are share-locked until the transaction ends: the
/// membership rows written next copy their display names, and a concurrent rename (which
/// updates the member's row, then the membership rows it can see) must either finish
/// before this reads the name or wait until these rows are committed. Resolve before
/// deleting any membership row of the group (a rename waiting on a deleted row while this
/// waits on the renamed member would deadlock).
async fn resolve_members(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    group_id: &str,
    members: &[MemberRef],
) -> Result<Vec<(String, &'static str)>> {
    let lock = match backend {
        Backend::Postgres => " FOR SHARE",
        Backend::Sqlite => "", // one writer at a time
    };
    let mut kinds: HashMap<String, &'static str> = HashMap::with_capacity(members.len());
    for chunk in members.chunks(MEMBER_CHUNK) {
        let list = placeholders(1, chunk.len());
        let sql = format!(
            "SELECT id, kind FROM (SELECT id, 'User' AS kind FROM scim_users \
             WHERE id IN ({list}){lock}) u \
             UNION ALL SELECT id, kind FROM (SELECT id, 'Group' AS kind FROM scim_groups \
             WHERE id IN ({list}){lock}) g"
        );
        let mut q = sqlx::query(&sql);
        for m in chunk {
            q = q.bind(m.value.clone());
        }
        for row in q.fetch_all(&mut **tx).await? {
            let id: String = row.try_get(0)?;
            let kind: String = row.try_get(1)?;
            kinds.insert(id, if kind == "Group" { "Group" } else { "User" });
        }
    }
    let mut out = Vec::with_capacity(members.len());
    for m in members {
        if m.value == group_id {
            return Err(
                ProtocolError::invalid_value("a group cannot be a member of itself").into(),
            );
        }
        let Some(kind) = kinds.get(&m.value) else {
            return Err(ProtocolError::invalid_value(format!(
                "member \"{}\" is not a known User or Group id",
                m.value
            ))
            .into());
        };
        if let Some(said) = &m.kind {
            if said != kind {
                return Err(ProtocolError::invalid_value(format!(
                    "member \"{}\" is a {kind}, not a {said}",
                    m.value
                ))
                .into());
            }
        }
        out.push((m.value.clone(), *kind));
    }
    Ok(out)
}

/// Insert the (already resolved) members' rows, each with its member's display name as it
/// is now (see [`resolve_members`] for why that name cannot change before the commit). With
/// `added`, the rows really inserted (members that were not members yet) are pushed to it.
async fn insert_members(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    group_id: &str,
    resolved: &[(String, &'static str)],
    mut added: Option<&mut Vec<Member>>,
) -> Result<()> {
    for chunk in resolved.chunks(MEMBER_CHUNK) {
        let list = placeholders(2, chunk.len());
        // SQLite: who is a member already, asked first (see `existing_members`)
        let existing = match (&added, backend) {
            (Some(_), Backend::Sqlite) => {
                let ids: Vec<&str> = chunk.iter().map(|(id, _)| id.as_str()).collect();
                Some(existing_members(tx, group_id, &ids).await?)
            }
            _ => None,
        };
        let returning = match (&added, backend) {
            (Some(_), Backend::Postgres) => " RETURNING member_id, member_type",
            _ => "",
        };
        // the kinds were resolved from these same tables, so each id is found in the one
        // its kind names
        let sql = format!(
            "INSERT INTO scim_members (group_id, member_id, member_type, display) \
             SELECT $1, id, 'User', COALESCE(display_name, user_name) FROM scim_users \
             WHERE id IN ({list}) \
             UNION ALL SELECT $1, id, 'Group', display_name FROM scim_groups WHERE id IN ({list}) \
             ON CONFLICT (group_id, member_id) DO NOTHING{returning}"
        );
        let mut q = sqlx::query(&sql).bind(group_id.to_string());
        for (id, _) in chunk {
            q = q.bind(id.clone());
        }
        let Some(added) = added.as_deref_mut() else {
            q.execute(&mut **tx).await?;
            continue;
        };
        match existing {
            Some(existing) => {
                q.execute(&mut **tx).await?;
                let mut seen: std::collections::HashSet<&str> =
                    existing.iter().map(Member::id).collect();
                for (id, kind) in chunk {
                    if seen.insert(id.as_str()) {
                        added.push(Member::of_type(kind, id.clone()));
                    }
                }
            }
            None => {
                for row in q.fetch_all(&mut **tx).await? {
                    added.push(Member::of_type(row.try_get(1)?, row.try_get(0)?));
                }
            }
        }
    }
    Ok(())
}

/// SQLite: which of `ids` are members of the group, read as one
/// aggregated row. sqlx hands each result row over from its SQLite worker thread on its own,
/// so the same answer through `RETURNING` cost ~4 ms per 1,000 rows; with one writer at a
/// time, this is exactly what the statement that follows in the transaction finds.
async fn existing_members(
    tx: &mut Transaction<'_, Any>,
    group_id: &str,
    ids: &[&str],
) -> Result<Vec<Member>> {
    // point lookups in the primary key (group_id, member_id); `group_id || ''`, which
    // PostgreSQL's statistics need elsewhere, made SQLite scan the table here
    let sql = format!(
        "SELECT {} FROM scim_members WHERE group_id = $1 AND member_id IN ({})",
        super::snapshot::MEMBERS_AGG,
        placeholders(2, ids.len())
    );
    let mut q = sqlx::query(&sql).bind(group_id.to_string());
    for id in ids {
        q = q.bind(id.to_string());
    }
    let row = q.fetch_one(&mut **tx).await?;
    // no rows: string_agg over nothing is NULL
    let Some(text) = row.try_get::<Option<String>, _>(0)? else {
        return Ok(Vec::new());
    };
    super::snapshot::decode_members(&text)
}

/// A member's `member_type` as stored.
fn kind_of(m: &Member) -> &'static str {
    match m {
        Member::User(_) => "User",
        Member::Group(_) => "Group",
    }
}

/// Every member of the group, read as one aggregated row (in the transaction that changes
/// the group: its row is locked by then, so no other membership change of this group runs).
async fn current_members(tx: &mut Transaction<'_, Any>, group_id: &str) -> Result<Vec<Member>> {
    let sql = format!(
        "SELECT {} FROM scim_members WHERE group_id = $1",
        super::snapshot::MEMBERS_AGG
    );
    let row = sqlx::query(&sql)
        .bind(group_id.to_string())
        .fetch_one(&mut **tx)
        .await?;
    match row.try_get::<Option<String>, _>(0)? {
        Some(text) => super::snapshot::decode_members(&text),
        None => Ok(Vec::new()),
    }
}

/// Remove the listed members; the ones that were members are pushed to `removed`.
async fn remove_members(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    group_id: &str,
    ids: &[String],
    removed: &mut Vec<Member>,
) -> Result<()> {
    for chunk in ids.chunks(MEMBER_CHUNK) {
        let returning = match backend {
            Backend::Sqlite => {
                let list: Vec<&str> = chunk.iter().map(String::as_str).collect();
                removed.extend(existing_members(tx, group_id, &list).await?);
                ""
            }
            Backend::Postgres => " RETURNING member_id, member_type",
        };
        // `group_id || ''` keeps the primary key out of this plan: found through the
        // member_id index, each listed member costs one lookup. PostgreSQL otherwise scans
        // the whole group through the primary key whenever its statistics underestimate
        // the group (a group grown since the last ANALYZE): 100 statements over a
        // 110,000-member group took 2.2 s instead of 0.06 s.
        let sql = format!(
            "DELETE FROM scim_members WHERE group_id || '' = $1 AND member_id IN ({}){returning}",
            placeholders(2, chunk.len())
        );
        let mut q = sqlx::query(&sql).bind(group_id.to_string());
        for id in chunk {
            q = q.bind(id.clone());
        }
        if returning.is_empty() {
            q.execute(&mut **tx).await?;
        } else {
            for row in q.fetch_all(&mut **tx).await? {
                removed.push(Member::of_type(row.try_get(1)?, row.try_get(0)?));
            }
        }
    }
    Ok(())
}

/// Apply membership changes in order. Returns what they did as a [`MemberDelta`] when it
/// is small enough to send through the change feed, else `None` (the feed then reloads the
/// group).
async fn apply_changes(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    group_id: &str,
    changes: &[MemberChange],
) -> Result<Option<MemberDelta>> {
    // every member added is resolved (and on PostgreSQL locked) before any row is deleted
    let mut resolved = Vec::new();
    for change in changes {
        if let MemberChange::Add(m) | MemberChange::Replace(m) = change {
            resolved.push(resolve_members(tx, backend, group_id, m).await?);
        }
    }
    let mut resolved = resolved.into_iter();
    let mut delta = Some(MemberDelta::default());
    for change in changes {
        match change {
            MemberChange::Add(_) => {
                let members = resolved.next().unwrap_or_default();
                let mut added = Vec::new();
                insert_members(tx, backend, group_id, &members, Some(&mut added)).await?;
                if let Some(d) = delta.as_mut() {
                    d.ops.extend(added.into_iter().map(|m| (true, m)));
                }
            }
            MemberChange::Remove(ids) => {
                let mut removed = Vec::new();
                remove_members(tx, backend, group_id, ids, &mut removed).await?;
                if let Some(d) = delta.as_mut() {
                    d.ops.extend(removed.into_iter().map(|m| (false, m)));
                }
            }
            MemberChange::RemoveAll => {
                delta = None;
                sqlx::query("DELETE FROM scim_members WHERE group_id = $1")
                    .bind(group_id.to_string())
                    .execute(&mut **tx)
                    .await?;
            }
            MemberChange::Replace(_) => {
                // as a difference: the rows of members that stay are left alone, so a PUT
                // that changes a few members of a large group writes a few rows
                let members = resolved.next().unwrap_or_default();
                let current = current_members(tx, group_id).await?;
                let wanted: HashSet<(&str, &str)> = members
                    .iter()
                    .map(|(id, kind)| (*kind, id.as_str()))
                    .collect();
                let have: HashSet<(&str, &str)> =
                    current.iter().map(|m| (kind_of(m), m.id())).collect();
                let gone: Vec<String> = current
                    .iter()
                    .filter(|m| !wanted.contains(&(kind_of(m), m.id())))
                    .map(|m| m.id().to_string())
                    .collect();
                let new: Vec<(String, &'static str)> = members
                    .iter()
                    .filter(|(id, kind)| !have.contains(&(*kind, id.as_str())))
                    .cloned()
                    .collect();
                let (mut removed, mut added) = (Vec::new(), Vec::new());
                if !gone.is_empty() && gone.len() == current.len() {
                    // nobody stays: one statement
                    sqlx::query("DELETE FROM scim_members WHERE group_id = $1")
                        .bind(group_id.to_string())
                        .execute(&mut **tx)
                        .await?;
                    removed = current;
                } else {
                    remove_members(tx, backend, group_id, &gone, &mut removed).await?;
                }
                insert_members(tx, backend, group_id, &new, Some(&mut added)).await?;
                if let Some(d) = delta.as_mut() {
                    d.ops.extend(removed.into_iter().map(|m| (false, m)));
                    d.ops.extend(added.into_iter().map(|m| (true, m)));
                }
            }
        }
        if delta
            .as_ref()
            .is_some_and(|d| d.ops.len() > MemberDelta::MAX_OPS)
        {
            delta = None;
        }
    }
    Ok(delta)
}

/// What a membership change did, in order: each row actually inserted (`true`) or deleted
/// (`false`). Carried in the change's audit entry
/// (`summary.delta`, one `"+User:id"`/`"-Group:id"` string per row) so that servers following
/// the change feed apply it instead of reloading the whole group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberDelta {
    pub ops: Vec<(bool, Member)>,
}

impl MemberDelta {
    /// Larger changes are not itemized: the feed reloads the group (one read of its
    /// member list instead of thousands of entries in the audit log).
    pub const MAX_OPS: usize = 1000;

    pub(super) fn to_json(&self) -> Value {
        Value::Array(
            self.ops
                .iter()
                .map(|(add, m)| {
                    let t = match m {
                        Member::User(_) => "User",
                        Member::Group(_) => "Group",
                    };
                    Value::String(format!("{}{t}:{}", if *add { '+' } else { '-' }, m.id()))
                })
                .collect(),
        )
    }

    /// The delta in an audit summary, if it has one (and it is well-formed).
    pub(super) fn from_summary(summary: &Value) -> Option<Self> {
        let ops = summary.get("delta")?.as_array()?;
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            let s = op.as_str()?;
            let (add, rest) = match s.as_bytes().first()? {
                b'+' => (true, &s[1..]),
                b'-' => (false, &s[1..]),
                _ => return None,
            };
            let m = match rest.split_once(':')? {
                ("User", id) => Member::User(id.to_string()),
                ("Group", id) => Member::Group(id.to_string()),
                _ => return None,
            };
            out.push((add, m));
        }
        Some(Self { ops: out })
    }
}

/// A group's new document and membership deltas, computed from `expected` (the version
/// read; None = any), recorded in the audit log as `action`.
pub struct GroupChange<'a> {
    pub n: &'a Normalized,
    pub changes: &'a [MemberChange],
    pub expected: Option<i64>,
    pub action: &'a str,
    /// The caller knows the stored document equals `n.doc`: then a membership change that
    /// inserts and deletes no row (members added who already are members, removed who are
    /// not) changes nothing, and is rolled back instead of making a new version.
    pub doc_unchanged: bool,
}

/// What a PATCH or PUT did to the membership, for the audit log.
fn change_summary(changes: &[MemberChange]) -> Value {
    let (mut added, mut removed, mut replaced) = (0usize, 0usize, None);
    for c in changes {
        match c {
            MemberChange::Add(m) => added += m.len(),
            MemberChange::Remove(ids) => removed += ids.len(),
            MemberChange::RemoveAll => replaced = Some(0),
            MemberChange::Replace(m) => replaced = Some(m.len()),
        }
    }
    serde_json::json!({"added": added, "removed": removed, "replacedWith": replaced})
}

impl Store {
    #[tracing::instrument(skip_all)]
    pub async fn create_group(
        &self,
        n: &Normalized,
        members: &[MemberRef],
        actor: &Actor,
    ) -> Result<GroupRow> {
        retrying(|| self.create_group_once(n, members, actor)).await
    }

    async fn create_group_once(
        &self,
        n: &Normalized,
        members: &[MemberRef],
        actor: &Actor,
    ) -> Result<GroupRow> {
        let id = uuid::Uuid::new_v4().to_string();
        let ts = now();
        let display = n.display_name.clone().unwrap_or_default();
        let mut tx = self.write.begin().await?;
        sqlx::query(
            "INSERT INTO scim_groups (id, display_name, display_name_lower, external_id, doc, \
             version, created, last_modified) VALUES ($1, $2, $3, $4, $5, 1, $6, $6)",
        )
        .bind(id.clone())
        .bind(display.clone())
        .bind(display.to_lowercase())
        .bind(n.external_id.clone())
        .bind(doc_text(&n.doc)?)
        .bind(ts.clone())
        .execute(&mut *tx)
        .await?;
        let resolved = resolve_members(&mut tx, self.backend, &id, members).await?;
        insert_members(&mut tx, self.backend, &id, &resolved, None).await?;
        let summary = serde_json::json!({"displayName": display, "externalId": n.external_id, "members": members.len()});
        record(&mut tx, actor, "group.create", "group", &id, summary).await?;
        tx.commit().await?;
        self.committed();
        match self.get_group(&id, true).await {
            Ok(group) => Ok(group),
            // The group exists now: failing the request would have the IdP create it again
            // (group names need not be unique), so the answer is made from what was written,
            // its members without their display names (found by an audit).
            Err(e) => {
                tracing::warn!(error = %e, "reading a created group back failed; answering from what was written");
                let mut list = MemberList::default();
                for (member, kind) in &resolved {
                    list.push(member, kind, None);
                }
                list.sort();
                Ok(GroupRow {
                    id,
                    doc: stored_doc(&n.doc),
                    version: 1,
                    created: ts.clone(),
                    last_modified: ts,
                    members: Some(list),
                })
            }
        }
    }

    #[tracing::instrument(skip_all)]
    pub async fn get_group(&self, id: &str, with_members: bool) -> Result<GroupRow> {
        let row = sqlx::query(&format!("SELECT {COLS} FROM scim_groups r WHERE r.id = $1"))
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await?
            .ok_or(StoreError::NotFound)?;
        let mut group = from_row(&row)?;
        if with_members {
            self.attach_members(std::slice::from_mut(&mut group))
                .await?;
        }
        Ok(group)
    }

    /// Write a group's new document and apply membership deltas in one transaction.
    /// `expected` is the version the change was computed from.
    #[tracing::instrument(skip_all)]
    pub async fn update_group(
        &self,
        id: &str,
        change: &GroupChange<'_>,
        with_members: bool,
        actor: &Actor,
    ) -> Result<GroupRow> {
        retrying(|| self.update_group_once(id, change, with_members, actor)).await
    }

    async fn update_group_once(
        &self,
        id: &str,
        change: &GroupChange<'_>,
        with_members: bool,
        actor: &Actor,
    ) -> Result<GroupRow> {
        let GroupChange {
            n,
            changes,
            expected,
            action,
            doc_unchanged,
        } = *change;
        let display = n.display_name.clone().unwrap_or_default();
        let mut tx = self.write.begin().await?;
        let done = sqlx::query(
            "UPDATE scim_groups SET display_name = $1, display_name_lower = $2, external_id = $3, \
             doc = $4, version = version + 1, last_modified = $5 \
             WHERE id = $6 AND ($7 < 0 OR version = $7)",
        )
        .bind(display.clone())
        .bind(display.to_lowercase())
        .bind(n.external_id.clone())
        .bind(doc_text(&n.doc)?)
        .bind(now())
        .bind(id.to_string())
        .bind(expected.unwrap_or(-1))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            drop(tx);
            return Err(self.missing_or_stale("scim_groups", id, expected).await);
        }
        // memberships of this group in other groups show its name
        sqlx::query(
            "UPDATE scim_members SET display = $1 \
             WHERE member_id = $2 AND member_type = 'Group' AND (display IS NULL OR display <> $1)",
        )
        .bind(display.clone())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        let delta = apply_changes(&mut tx, self.backend, id, changes).await?;
        if doc_unchanged && delta.as_ref().is_some_and(|d| d.ops.is_empty()) {
            // nothing changed after all: no new version, no audit entry (dropping the
            // transaction rolls back the version bump above)
            drop(tx);
            return self.get_group(id, with_members).await;
        }
        let mut summary = serde_json::json!({"displayName": display, "externalId": n.external_id, "members": change_summary(changes)});
        if let Some(d) = delta {
            summary["delta"] = d.to_json();
        }
        record(&mut tx, actor, action, "group", id, summary).await?;
        tx.commit().await?;
        self.committed();
        self.get_group(id, with_members).await
    }

    #[tracing::instrument(skip_all)]
    pub async fn delete_group(&self, id: &str, expected: Option<i64>, actor: &Actor) -> Result<()> {
        retrying(|| self.delete_group_once(id, expected, actor)).await
    }

    async fn delete_group_once(
        &self,
        id: &str,
        expected: Option<i64>,
        actor: &Actor,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        // the group's row first, for the reason `delete_user` gives: a change adding this
        // group to another one commits before this, or finds it gone
        if !self.lock_row(&mut tx, "scim_groups", id, expected).await? {
            drop(tx);
            return Err(self.missing_or_stale("scim_groups", id, expected).await);
        }
        // the group may itself be a member of other groups
        sqlx::query(
            "UPDATE scim_groups SET version = version + 1, last_modified = $1 \
             WHERE id IN (SELECT group_id FROM scim_members WHERE member_id = $2)",
        )
        .bind(now())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        for sql in [
            "DELETE FROM scim_members WHERE member_id = $1",
            "DELETE FROM scim_members WHERE group_id = $1",
        ] {
            sqlx::query(sql)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        let done =
            sqlx::query("DELETE FROM scim_groups WHERE id = $1 AND ($2 < 0 OR version = $2)")
                .bind(id.to_string())
                .bind(expected.unwrap_or(-1))
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            drop(tx);
            return Err(self.missing_or_stale("scim_groups", id, expected).await);
        }
        record(
            &mut tx,
            actor,
            "group.delete",
            "group",
            id,
            serde_json::json!({}),
        )
        .await?;
        tx.commit().await?;
        self.committed();
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    pub async fn list_groups(
        &self,
        q: &ListQuery,
        with_members: bool,
    ) -> Result<ListPage<GroupRow>> {
        let page = self
            .list_rows("scim_groups", COLS, ResourceKind::Group, q, false)
            .await?;
        let mut groups = page
            .items
            .iter()
            .map(from_row)
            .collect::<Result<Vec<_>>>()?;
        if with_members {
            self.attach_members(&mut groups).await?;
        }
        Ok(ListPage {
            total: page.total,
            items: groups,
            next: page.next,
        })
    }

    /// Fill in `members` of these groups: one row per group, its members aggregated in the
    /// database (a group of 100,000 members would otherwise be 100,000 rows, and sqlx
    /// hands each row across threads, which cost more than all the rest of reading it).
    /// The display names are the rows' own copies (no join), and the members are put in
    /// id order here (byte order, as SQLite's `ORDER BY` gave) rather than by an `ORDER BY`
    /// in the aggregate, which PostgreSQL sorted with the database's collation.
    async fn attach_members(&self, groups: &mut [GroupRow]) -> Result<()> {
        for chunk in groups.chunks_mut(CHUNK) {
            let sql = format!(
                "SELECT group_id, string_agg({MEMBER_FIELDS}, '') AS members \
                 FROM scim_members WHERE group_id IN ({}) GROUP BY group_id",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for g in chunk.iter() {
                q = q.bind(g.id.clone());
            }
            let mut by_group: HashMap<String, MemberList> = HashMap::new();
            for row in q.fetch_all(&self.read).await? {
                let group: String = row.try_get(0)?;
                let members: String = row.try_get(1)?;
                let mut members = decode_members(members)?;
                members.sort();
                by_group.insert(group, members);
            }
            for g in chunk.iter_mut() {
                g.members = Some(by_group.remove(&g.id).unwrap_or_default());
            }
        }
        Ok(())
    }
}

/// One member as text for `string_agg`: `g` (group) or `u` (user), then the id and the
/// display name each as `<bytes>:<text>`, or `-` for a member without a display name (the
/// length prefixes make any text safe to concatenate).
/// Byte counts are the database's: this assumes UTF-8 storage (SQLite's default, and
/// PostgreSQL's usual database encoding); another server encoding fails to decode (500).
const MEMBER_FIELDS: &str = "CASE WHEN member_type = 'Group' THEN 'g' ELSE 'u' END \
     || octet_length(member_id) || ':' || member_id \
     || COALESCE(octet_length(display) || ':' || display, '-')";

/// The members [`MEMBER_FIELDS`] encoded, in the order given, read in place.
fn decode_members(text: String) -> Result<MemberList> {
    fn corrupt() -> StoreError {
        StoreError::Corrupt("malformed member list from the database".into())
    }
    if u32::try_from(text.len()).is_err() {
        return Err(corrupt());
    }
    // `<len>:<text>` at `at`: the field's span and where the next one starts
    let field = |at: usize| -> Result<((u32, u32), usize)> {
        let rest = text.get(at..).ok_or_else(corrupt)?;
        let colon = rest.find(':').ok_or_else(corrupt)?;
        let len: usize = rest[..colon].parse().map_err(|_| corrupt())?;
        let start = at + colon + 1;
        let end = start.checked_add(len).ok_or_else(corrupt)?;
        text.get(start..end).ok_or_else(corrupt)?; // in bounds, on char boundaries
        Ok(((start as u32, end as u32), end))
    };
    let mut spans = Vec::new();
    let mut at = 0;
    while at < text.len() {
        let group = match text.as_bytes()[at] {
            b'u' => false,
            b'g' => true,
            _ => return Err(corrupt()),
        };
        let (value, next) = field(at + 1)?;
        let (display, next) = if text.as_bytes().get(next) == Some(&b'-') {
            (None, next + 1)
        } else {
            let (d, next) = field(next)?;
            (Some(d), next)
        };
        spans.push(Span {
            key: prefix_key(&text[value.0 as usize..value.1 as usize]),
            value,
            display,
            group,
        });
        at = next;
    }
    Ok(MemberList { text, spans })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_lists_decode() {
        let s = "u3:u:18:a:b ü -g2:g1-u3:u:20:";
        let m = decode_members(s.into()).unwrap();
        let m: Vec<MemberRow> = m.iter().collect();
        assert_eq!(m.len(), 3);
        assert_eq!((m[0].value, m[0].kind), ("u:1", "User"));
        assert_eq!(m[1].kind, "Group");
        assert_eq!(m[0].display, Some("a:b ü -"));
        assert_eq!((m[1].value, m[1].display), ("g1", None));
        assert_eq!(m[2].display, Some(""));
        assert!(decode_members(String::new()).unwrap().is_empty());
        for bad in [
            "u9:u",
            "x1:u-",
            "u1:ü-",
            "u",
            "u1:a",
            "ux:a-",
            "u99999999999999999999:a-",
        ] {
            assert!(decode_members(bad.into()).is_err(), "{bad}");
        }
    }

    /// Members come out in byte order of their ids, whatever order they were read in, and
    /// whether or not the ids differ within their first 8 bytes.
    #[test]
    fn member_lists_sort_in_byte_order() {
        let ids = [
            "b",
            "a",
            "ab",
            "aaaaaaaab",
            "aaaaaaaaa",
            "aaaaaaaa",
            "Z",
            "é",
            "e-1",
            "e1",
            "a-a",
            "aaaaaaaa-2",
            "aaaaaaaa-10",
        ];
        let mut m = MemberList::default();
        for (i, id) in ids.iter().enumerate() {
            m.push(
                id,
                if i % 2 == 0 { "User" } else { "Group" },
                Some(&format!("n{i}")),
            );
        }
        m.sort();
        let mut want = ids.to_vec();
        want.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let got: Vec<&str> = m.iter().map(|r| r.value).collect();
        assert_eq!(got, want);
        // each id keeps its own kind and display name
        for r in m.iter() {
            let i = ids.iter().position(|id| *id == r.value).unwrap();
            assert_eq!(r.display, Some(format!("n{i}").as_str()));
            assert_eq!(r.kind, if i % 2 == 0 { "User" } else { "Group" });
        }
    }
}
