//! Provisioning operations: SCIM protocol logic (validation, PATCH) joined to the store.
//! PATCH is read, apply in memory, write conditionally on the version read; a concurrent
//! writer makes the write miss and the operation is retried from a fresh read.

use serde_json::Value;

use crate::scim::patch::{self, MemberChange};
use crate::scim::resource::{normalize, parse_members, ResourceKind};
use crate::store::{Actor, GroupChange, GroupRow, Store, StoreError, UserRow};

const PATCH_ATTEMPTS: u64 = 20;

pub async fn create_user(store: &Store, body: Value, actor: &Actor) -> Result<UserRow, StoreError> {
    let n = normalize(ResourceKind::User, body)?;
    store.create_user(n, actor).await
}

pub async fn replace_user(
    store: &Store,
    id: &str,
    body: Value,
    if_match: Option<i64>,
    actor: &Actor,
) -> Result<UserRow, StoreError> {
    // `"active": null` is the attribute unassigned (RFC 7643 §2.5), as if left out
    let names_active = body.as_object().is_some_and(|o| {
        o.iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("active") && !v.is_null())
    });
    let n = normalize(ResourceKind::User, body)?;
    if names_active {
        return store
            .replace_user(id, &n, if_match, "user.replace", actor)
            .await;
    }
    // A PUT that leaves out `active` keeps the user's current value (RFC 7644 §3.5.1 lets a
    // server keep omitted readWrite attributes): a profile update must never reactivate a
    // deactivated user by omission.
    rewrite_user(store, id, if_match, "user.replace", actor, |current| {
        let mut n = n.clone();
        n.active = current.active;
        n.doc.insert("active".into(), Value::Bool(current.active));
        Ok(n)
    })
    .await
}

pub async fn patch_user(
    store: &Store,
    id: &str,
    body: Value,
    if_match: Option<i64>,
    actor: &Actor,
) -> Result<UserRow, StoreError> {
    let ops = patch::parse_patch(body)?;
    rewrite_user(store, id, if_match, "user.patch", actor, |current| {
        let mut doc = current.doc.clone();
        patch::apply(ResourceKind::User, &mut doc, &ops)?;
        // `active` removed or set to null is unassigned, which must not reactivate a
        // deactivated user (a new user without it is active; an existing one keeps its
        // value, as a PUT that leaves it out does)
        let unassigned = doc
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("active"))
            .is_none_or(|(_, v)| v.is_null());
        let mut n = normalize(ResourceKind::User, Value::Object(doc))?;
        if unassigned {
            n.active = current.active;
            n.doc.insert("active".into(), Value::Bool(current.active));
        }
        Ok(n)
    })
    .await
}

/// Replace a user with what `change` makes of its current row: read, check `If-Match`, write
/// against the version read, and start again if the user changed in between (unless the client
/// named a version, which is then simply stale).
async fn rewrite_user(
    store: &Store,
    id: &str,
    if_match: Option<i64>,
    action: &str,
    actor: &Actor,
    change: impl Fn(&UserRow) -> Result<crate::scim::resource::Normalized, StoreError>,
) -> Result<UserRow, StoreError> {
    for attempt in 0..PATCH_ATTEMPTS {
        let current = store.get_user(id).await?;
        check_version(if_match, current.version)?;
        let n = change(&current)?;
        if n.doc == current.doc && n.active == current.active {
            // nothing changes (a password, which is discarded; a value set to what it is):
            // no write, no new version, no audit entry
            return Ok(current);
        }
        match store
            .replace_user(id, &n, Some(current.version), action, actor)
            .await
        {
            Err(StoreError::PreconditionFailed(_)) if if_match.is_none() => backoff(attempt).await,
            other => return other,
        }
    }
    Err(StoreError::Conflict(
        "the user is being changed concurrently; retry".into(),
    ))
}

fn check_version(if_match: Option<i64>, current: i64) -> Result<(), StoreError> {
    match if_match {
        Some(v) if v != current => Err(StoreError::PreconditionFailed(v)),
        _ => Ok(()),
    }
}

/// Split a group document into its stored part and its member list.
fn group_parts(
    body: Value,
) -> Result<(crate::scim::resource::Normalized, Vec<MemberChange>), StoreError> {
    let mut n = normalize(ResourceKind::Group, body)?;
    let members = match n.doc.remove("members") {
        Some(m) => parse_members(&m)?,
        None => Vec::new(),
    };
    Ok((n, vec![MemberChange::Replace(members)]))
}

pub async fn create_group(
    store: &Store,
    body: Value,
    actor: &Actor,
) -> Result<GroupRow, StoreError> {
    let (n, changes) = group_parts(body)?;
    let members = match changes.into_iter().next() {
        Some(MemberChange::Replace(m)) => m,
        _ => Vec::new(),
    };
    store.create_group(&n, &members, actor).await
}

pub async fn replace_group(
    store: &Store,
    id: &str,
    body: Value,
    if_match: Option<i64>,
    with_members: bool,
    actor: &Actor,
) -> Result<GroupRow, StoreError> {
    let (n, changes) = group_parts(body)?;
    store
        .update_group(
            id,
            &GroupChange {
                n: &n,
                changes: &changes,
                expected: if_match,
                action: "group.replace",
                doc_unchanged: false,
            },
            with_members,
            actor,
        )
        .await
}

pub async fn patch_group(
    store: &Store,
    id: &str,
    body: Value,
    if_match: Option<i64>,
    with_members: bool,
    actor: &Actor,
) -> Result<GroupRow, StoreError> {
    let ops = patch::parse_patch(body)?;
    for attempt in 0..PATCH_ATTEMPTS {
        let current = store.get_group(id, false).await?;
        check_version(if_match, current.version)?;
        let mut doc = current.doc.clone();
        let changes = patch::apply(ResourceKind::Group, &mut doc, &ops)?;
        let n = normalize(ResourceKind::Group, Value::Object(doc))?;
        if changes.is_empty() && n.doc == current.doc {
            // nothing changes: no write, no new version, no audit entry
            return if with_members {
                store.get_group(id, true).await
            } else {
                Ok(current)
            };
        }
        match store
            .update_group(
                id,
                &GroupChange {
                    n: &n,
                    changes: &changes,
                    expected: Some(current.version),
                    action: "group.patch",
                    doc_unchanged: n.doc == current.doc,
                },
                with_members,
                actor,
            )
            .await
        {
            Err(StoreError::PreconditionFailed(_)) if if_match.is_none() => backoff(attempt).await,
            other => return other,
        }
    }
    Err(StoreError::Conflict(
        "the group is being changed concurrently; retry".into(),
    ))
}

/// A short, growing, jittered pause before retrying a PATCH that lost a race.
async fn backoff(attempt: u64) {
    let mut b = [0u8; 1];
    let jitter = getrandom::getrandom(&mut b).map_or(0, |()| u64::from(b[0] % 4));
    tokio::time::sleep(std::time::Duration::from_millis(attempt.min(10) + jitter)).await;
}
