//! Answers for gateways: a user's roles per scope, the effective role and policy at a scope,
//! and access decisions. Everything here reads memory only.
//!
//! What a user's answers share (the user's groups and grants) is worked out once and kept as
//! a [`UserView`] in the user's own slot in the directory, stamped with the directory
//! generation it was made in and the mapping it was made from. The directory records, per
//! user, the generation of the last change to what the view is made from (the user's record,
//! its groups, direct and nested, and their names: see `Directory::user_changed`), and any
//! mapping change replaces the mapping, so a stale view is never used: the next lookup makes a
//! new one. Changes to other users and groups leave a view alone. A view is small enough for every user to have one (the
//! server makes them all at start-up): the answer's first part, `{"user":…,"groups":[…]`,
//! serialized (~230 bytes), the groups by directory index and where each name sits in that
//! JSON, and each grant as the rule it comes from and the positions of the groups granting it.
//! The rest of an answer is put together per request from those and from JSON pieces made once
//! per mapping ([`Fragments`]): copies, no serialization of the directory or the mapping.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use super::directory::{Directory, UserRecord};
use super::{Access, Mapping};
use crate::roles::evaluate::Decision;
use crate::roles::resolve::{CompiledMapping, Grant, GroupInfo, Scope};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("no user with that userName, id or externalId")]
    UnknownUser,
    #[error("{0}")]
    UnknownScope(String),
    #[error("serializing the answer: {0}")]
    Serialize(String),
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct UserOut {
    pub id: String,
    #[serde(rename = "userName")]
    pub user_name: String,
    pub active: bool,
}

/// [`UserOut`] borrowed from the directory.
#[derive(serde::Serialize)]
struct UserRef<'a> {
    id: &'a str,
    #[serde(rename = "userName")]
    user_name: &'a str,
    active: bool,
}

/// One user resolved against one mapping, for one directory generation.
#[derive(Debug)]
pub(crate) struct UserView {
    generation: u64,
    /// [`Mapping::serial`] of the mapping it was made from.
    mapping: u64,
    /// `{"user":…,"groups":[…]`: the roles answer up to its grants.
    head: Box<[u8]>,
    /// Per grant (in scope order): its scope and role (`GrantRef::kind`), `m`, and the `m`
    /// positions among the groups of those granting it. Kept in the view itself when short
    /// (as most users' are): a decision reads nothing else, so at 100,000 users it then reads
    /// only the user's slot, not another allocation (one cache miss fewer).
    grants: Ints,
    /// `n`, the user's `n` groups (direct and nested; directory indexes in display-name
    /// order), and where each group's name starts and ends in `head` (2·`n` offsets).
    groups: Box<[u32]>,
}

/// A view's grants: three grants, each by one or two groups (or more grants by one group
/// each, ...), in place.
type Ints = super::inline::InlineSlice<u32, 11>;

/// One grant of a [`UserView`].
#[derive(Debug, Clone, Copy)]
struct ViewGrant<'v> {
    kind: u32,
    /// Positions in [`UserView::groups`].
    via: &'v [u32],
}

impl UserView {
    fn build(dir: &Directory, i: u32, user: &UserRecord, mapping: &Mapping) -> Self {
        let groups = dir.indexed_groups_of(i);
        let infos: Vec<GroupInfo<'_>> = groups
            .iter()
            .map(|(_, g)| GroupInfo {
                display_name: &g.display_name,
                external_id: g.external_id.as_deref(),
            })
            .collect();
        let grants = mapping.compiled.grant_refs(user.active, &infos);
        let mut grant_ints =
            Vec::with_capacity(grants.iter().map(|g| 2 + g.via.len()).sum::<usize>());
        for g in grants {
            grant_ints.push(g.kind);
            grant_ints.push(g.via.len() as u32);
            grant_ints.extend(g.via);
        }
        let mut data = Vec::with_capacity(1 + 3 * groups.len());
        data.push(groups.len() as u32);
        data.extend(groups.iter().map(|(gi, _)| *gi));
        let mut head = Vec::with_capacity(64 + groups.len() * 24);
        head.extend_from_slice(b"{\"user\":");
        let user_out = UserRef {
            id: &user.id,
            user_name: &user.user_name,
            active: user.active,
        };
        // writing to a Vec fails only for maps with keys that are not strings: none here
        let _ = serde_json::to_writer(&mut head, &user_out);
        head.extend_from_slice(b",\"groups\":[");
        for (n, (_, g)) in groups.iter().enumerate() {
            if n > 0 {
                head.push(b',');
            }
            data.push(head.len() as u32);
            let _ = serde_json::to_writer(&mut head, &g.display_name);
            data.push(head.len() as u32);
        }
        head.push(b']');
        Self {
            generation: dir.generation(),
            mapping: mapping.serial,
            head: head.into_boxed_slice(),
            grants: Ints::new(&grant_ints),
            groups: data.into_boxed_slice(),
        }
    }

    /// Made from `mapping`, and since the last change to what user `i`'s view is made from.
    fn is_current(&self, dir: &Directory, i: u32, mapping: &Mapping) -> bool {
        self.generation >= dir.user_changed(i) && self.mapping == mapping.serial
    }

    fn group_count(&self) -> usize {
        self.groups.first().map_or(0, |&n| n as usize)
    }

    /// Directory indexes of the user's groups, in display-name order.
    fn groups(&self) -> &[u32] {
        self.groups
            .get(1..1 + self.group_count())
            .unwrap_or_default()
    }

    /// The name of the group at `position` in [`Self::groups`], as JSON.
    fn name_json(&self, position: u32) -> &[u8] {
        let at = 1 + self.group_count() + 2 * position as usize;
        match (self.groups.get(at), self.groups.get(at + 1)) {
            (Some(&start), Some(&end)) => self
                .head
                .get(start as usize..end as usize)
                .unwrap_or_default(),
            _ => b"",
        }
    }

    /// Names of groups by position, as the elements of a JSON array.
    fn write_names(&self, out: &mut Vec<u8>, positions: &[u32]) {
        for (n, &p) in positions.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(self.name_json(p));
        }
    }

    fn grants(&self) -> impl Iterator<Item = ViewGrant<'_>> + Clone {
        let mut rest: &[u32] = self.grants.as_slice();
        std::iter::from_fn(move || {
            let (&kind, tail) = rest.split_first()?;
            let (&m, tail) = tail.split_first()?;
            let (via, tail) = tail.split_at_checked(m as usize)?;
            rest = tail;
            Some(ViewGrant { kind, via })
        })
    }
}

/// The JSON of what a grant shows, per (scope, role) of a mapping (`GrantRef::kind`), made
/// when the mapping is loaded.
pub(crate) struct Fragments {
    grants: Vec<GrantJson>,
}

struct GrantJson {
    /// `{"scope":…,"role":…,"via":[`
    head: Box<[u8]>,
    scope: Box<[u8]>,
    role: Box<[u8]>,
    /// The role's policy; None for a role the mapping does not define.
    policy: Option<Arc<[u8]>>,
}

impl Fragments {
    pub(crate) fn new(c: &CompiledMapping) -> Self {
        let mut policies: HashMap<&str, Option<Arc<[u8]>>> = HashMap::new();
        let grants = (0..c.grant_kinds() as u32)
            .map(|kind| {
                let role = c.grant_role(kind);
                let policy = policies
                    .entry(role)
                    .or_insert_with(|| {
                        c.role(role)
                            .and_then(|def| serde_json::to_vec(def).ok())
                            .map(Arc::from)
                    })
                    .clone();
                let scope = serde_json::to_vec(c.grant_scope(kind)).unwrap_or_default();
                let role = serde_json::to_vec(role).unwrap_or_default();
                let mut head = b"{\"scope\":".to_vec();
                head.extend_from_slice(&scope);
                head.extend_from_slice(b",\"role\":");
                head.extend_from_slice(&role);
                head.extend_from_slice(b",\"via\":[");
                GrantJson {
                    head: head.into(),
                    scope: scope.into(),
                    role: role.into(),
                    policy,
                }
            })
            .collect();
        Self { grants }
    }

    fn grant(&self, kind: u32) -> Option<&GrantJson> {
        self.grants.get(kind as usize)
    }
}

/// What answers about one user read: the directory, the user, its view and the mapping.
#[derive(Clone, Copy)]
struct Resolved<'a> {
    user: &'a UserRecord,
    view: &'a UserView,
    compiled: &'a CompiledMapping,
}

impl<'a> Resolved<'a> {
    /// The winning grant at `target` (see [`CompiledMapping::effective`]).
    fn effective(&self, target: &Scope) -> Option<ViewGrant<'a>> {
        let c = self.compiled;
        self.compiled.effective_among(
            self.view
                .grants()
                .map(|g| (g, c.grant_scope(g.kind), c.grant_role(g.kind))),
            target,
        )
    }
}

/// `f` of the current view of the user at `i` (made now if its slot holds none or a stale one).
fn with_view<R>(
    dir: &Directory,
    mapping: &Mapping,
    i: u32,
    f: impl FnOnce(Resolved<'_>) -> R,
) -> Result<R, LookupError> {
    let user = dir.user_at(i).ok_or(LookupError::UnknownUser)?;
    let slot = dir.view_slot(i).ok_or(LookupError::UnknownUser)?;
    let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
    let view = match &mut *slot {
        Some(v) if v.is_current(dir, i, mapping) => v,
        stale => stale.insert(UserView::build(dir, i, user, mapping)),
    };
    Ok(f(Resolved {
        user,
        view,
        compiled: &mapping.compiled,
    }))
}

/// `GET /v1/users/{user}/roles[?workspace=W&project=P]`: the answer's JSON.
fn roles_in(
    dir: &Directory,
    mapping: &Mapping,
    user_key: &str,
    workspace: Option<&str>,
    project: Option<&str>,
) -> Result<Vec<u8>, LookupError> {
    let i = dir
        .find_user_index(user_key)
        .ok_or(LookupError::UnknownUser)?;
    let compiled = &mapping.compiled;
    let target = match workspace {
        None if project.is_some() => {
            return Err(LookupError::UnknownScope(
                "a project needs its workspace".into(),
            ));
        }
        None => None,
        Some(w) if w.trim().is_empty() => {
            return Err(LookupError::UnknownScope(
                "\"workspace\" must not be empty".into(),
            ));
        }
        Some(w) => Some(
            compiled
                .scope(Some(w), project)
                .map_err(LookupError::UnknownScope)?,
        ),
    };
    with_view(dir, mapping, i, |r| {
        let mut out = Vec::with_capacity(r.view.head.len() + 1024);
        write_answer(
            &mut out,
            r,
            &mapping.fragments,
            target.as_ref(),
            mapping.version,
        )
        .map_err(|e| LookupError::Serialize(e.to_string()))?;
        Ok(out)
    })?
}

/// The roles answer: `user`, `groups`, `roles`, `effective` (when a workspace was asked about;
/// null for no role there) and `mapping_version`.
fn write_answer(
    out: &mut Vec<u8>,
    r: Resolved<'_>,
    fragments: &Fragments,
    target: Option<&Scope>,
    mapping_version: i64,
) -> Result<(), serde_json::Error> {
    let missing = || serde_json::Error::io(std::io::Error::other("a grant of no known kind"));
    let view = r.view;
    out.extend_from_slice(&view.head);
    out.extend_from_slice(b",\"roles\":[");
    for (n, g) in view.grants().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        let f = fragments.grant(g.kind).ok_or_else(missing)?;
        out.extend_from_slice(&f.head);
        view.write_names(out, g.via);
        out.extend_from_slice(b"]}");
    }
    out.push(b']');
    if let Some(target) = target {
        out.extend_from_slice(b",\"effective\":");
        let won = r
            .effective(target)
            .and_then(|g| Some((g, fragments.grant(g.kind)?)))
            .and_then(|(g, f)| Some((g, f, f.policy.as_ref()?)));
        match won {
            None => out.extend_from_slice(b"null"),
            Some((g, f, policy)) => {
                out.extend_from_slice(b"{\"scope\":");
                serde_json::to_writer(&mut *out, target)?;
                out.extend_from_slice(b",\"role\":");
                out.extend_from_slice(&f.role);
                out.extend_from_slice(b",\"granted_at\":");
                out.extend_from_slice(&f.scope);
                out.extend_from_slice(b",\"via\":[");
                view.write_names(out, g.via);
                out.extend_from_slice(b"],\"policy\":");
                out.extend_from_slice(policy);
                out.push(b'}');
            }
        }
    }
    out.extend_from_slice(b",\"mapping_version\":");
    write!(out, "{mapping_version}").map_err(serde_json::Error::io)?;
    out.push(b'}');
    Ok(())
}

/// What an evaluation asks, besides who (see [`Access::decide`]).
struct Ask<'a> {
    action: &'a str,
    workspace: Option<&'a str>,
    project: Option<&'a str>,
    model: Option<&'a str>,
    max_tokens: Option<u64>,
}

/// See [`Access::decide`].
fn decide_in(dir: &Directory, mapping: &Mapping, user_key: &str, ask: &Ask<'_>) -> Decision {
    let unknown = || {
        Decision::deny(
            None,
            format!("unknown user \"{user_key}\": {}", LookupError::UnknownUser),
        )
    };
    let Some(i) = dir.find_user_index(user_key) else {
        return unknown();
    };
    with_view(dir, mapping, i, |r| {
        if !r.user.active {
            return Decision::deny(None, format!("user {} is deactivated", r.user.user_name));
        }
        let compiled = r.compiled;
        match compiled.scope(ask.workspace, ask.project) {
            Ok(target) => {
                let role = r.effective(&target).map(|g| compiled.grant_role(g.kind));
                compiled.evaluate_role(role, &target, ask.action, ask.model, ask.max_tokens)
            }
            Err(e) => Decision::deny(None, e),
        }
    })
    .unwrap_or_else(|_| unknown())
}

/// See [`Access::token_claims`].
fn claims_in(
    dir: &Directory,
    mapping: &Mapping,
    user_key: &str,
) -> Result<(UserOut, Vec<Grant>), LookupError> {
    let i = dir
        .find_user_index(user_key)
        .ok_or(LookupError::UnknownUser)?;
    with_view(dir, mapping, i, |r| {
        let user = UserOut {
            id: r.user.id.clone(),
            user_name: r.user.user_name.clone(),
            active: r.user.active,
        };
        let groups = r.view.groups();
        let grants = r
            .view
            .grants()
            .map(|g| Grant {
                scope: r.compiled.grant_scope(g.kind).clone(),
                role: r.compiled.grant_role(g.kind).to_string(),
                via: g
                    .via
                    .iter()
                    .filter_map(|&p| groups.get(p as usize))
                    .filter_map(|&gi| dir.group_at(gi))
                    .map(|g| g.display_name.clone())
                    .collect(),
            })
            .collect();
        (user, grants)
    })
}

impl Access {
    /// `GET /v1/users/{user}/roles[?workspace=W&project=P]`: the answer's JSON.
    pub fn roles(
        &self,
        user_key: &str,
        workspace: Option<&str>,
        project: Option<&str>,
    ) -> Result<Vec<u8>, LookupError> {
        let mapping = self.mapping();
        roles_in(&self.directory(), &mapping, user_key, workspace, project)
    }

    /// May `user_key` do `action` at the scope named by `workspace`/`project` (on `model`, asking
    /// for `max_tokens`)? Unknown users and scopes are denials, not errors.
    pub fn decide(
        &self,
        user_key: &str,
        action: &str,
        workspace: Option<&str>,
        project: Option<&str>,
        model: Option<&str>,
        max_tokens: Option<u64>,
    ) -> Decision {
        let mapping = self.mapping();
        let ask = Ask {
            action,
            workspace,
            project,
            model,
            max_tokens,
        };
        decide_in(&self.directory(), &mapping, user_key, &ask)
    }

    /// Make every user's view now (at start-up), so that no lookup waits for one; returns how
    /// many were made. Views made stale later are made again by the next lookup.
    pub fn warm_views(&self) -> usize {
        let mapping = self.mapping();
        let dir = self.directory();
        dir.user_indexes()
            .filter(|&i| with_view(&dir, &mapping, i, |_| ()).is_ok())
            .count()
    }

    /// Grants of a user for a signed role token: (user, grants).
    pub fn token_claims(&self, user_key: &str) -> Result<(UserOut, Vec<Grant>), LookupError> {
        let mapping = self.mapping();
        claims_in(&self.directory(), &mapping, user_key)
    }
}

#[cfg(test)]
#[path = "lookup_tests.rs"]
mod tests;
