//! Answers for gateways: a user's roles per scope, the effective role and policy at a scope,
//! and access decisions. Everything here reads memory only.
//!
//! What a user's answers share (the user's groups and grants) is worked out once and kept as
//! a [`UserView`] in the user's own slot in the directory, stamped with the directory
//! generation and the mapping it was made from. Any change to the directory moves the
//! generation and any mapping change replaces the mapping, so a stale view is never used: the
//! next lookup makes a new one. A view holds indexes only (the groups by directory index, each
//! grant by the rule it comes from), about 150 bytes a user, so every user has one; answers
//! are serialized per request from the directory and the mapping, which the indexes point
//! into.

use serde::ser::{Serialize, SerializeStruct, Serializer};

use super::directory::{Directory, UserRecord};
use super::{Access, Mapping};
use crate::roles::document::RoleDef;
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

/// Marks a grant that comes from `default_role` (no rule) in [`UserView::data`].
const NO_RULE: u32 = u32::MAX;

/// One user resolved against one mapping, for one directory generation, by index.
#[derive(Debug)]
pub(crate) struct UserView {
    generation: u64,
    /// [`Mapping::serial`] of the mapping it was made from.
    mapping: u64,
    /// `n`, the user's `n` groups (direct and nested; directory indexes in display-name
    /// order), then per grant (in scope order): the rule giving its scope and role
    /// ([`NO_RULE`] for `default_role`), `m`, and the `m` positions among the groups of those
    /// granting it.
    data: Box<[u32]>,
}

/// One grant of a [`UserView`].
#[derive(Debug, Clone, Copy)]
struct ViewGrant<'v> {
    rule: Option<u32>,
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
        let len = 1 + groups.len() + grants.iter().map(|g| 2 + g.via.len()).sum::<usize>();
        let mut data = Vec::with_capacity(len);
        data.push(groups.len() as u32);
        data.extend(groups.iter().map(|(gi, _)| *gi));
        for g in grants {
            data.push(g.rule.unwrap_or(NO_RULE));
            data.push(g.via.len() as u32);
            data.extend(g.via);
        }
        Self {
            generation: dir.generation(),
            mapping: mapping.serial,
            data: data.into_boxed_slice(),
        }
    }

    fn is_current(&self, dir: &Directory, mapping: &Mapping) -> bool {
        self.generation == dir.generation() && self.mapping == mapping.serial
    }

    /// Directory indexes of the user's groups, in display-name order.
    fn groups(&self) -> &[u32] {
        let n = self.data.first().map_or(0, |&n| n as usize);
        self.data.get(1..1 + n).unwrap_or_default()
    }

    fn grants(&self) -> impl Iterator<Item = ViewGrant<'_>> + Clone {
        let n = self.data.first().map_or(0, |&n| n as usize);
        let mut rest: &[u32] = self.data.get(1 + n..).unwrap_or_default();
        std::iter::from_fn(move || {
            let (&rule, tail) = rest.split_first()?;
            let (&m, tail) = tail.split_first()?;
            let (via, tail) = tail.split_at_checked(m as usize)?;
            rest = tail;
            Some(ViewGrant {
                rule: (rule != NO_RULE).then_some(rule),
                via,
            })
        })
    }
}

/// Group names by position in a view's groups (`positions` None: all of them), as a JSON array.
struct GroupNames<'a> {
    dir: &'a Directory,
    groups: &'a [u32],
    positions: Option<&'a [u32]>,
}

impl Serialize for GroupNames<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let name = |g: &u32| self.dir.group_at(*g).map(|g| g.display_name.as_str());
        match self.positions {
            None => s.collect_seq(self.groups.iter().filter_map(name)),
            Some(p) => s.collect_seq(
                p.iter()
                    .filter_map(|&p| self.groups.get(p as usize))
                    .filter_map(name),
            ),
        }
    }
}

/// A grant as the roles answer shows it (the fields of [`Grant`]).
#[derive(serde::Serialize)]
struct GrantOut<'a> {
    scope: &'a Scope,
    role: &'a str,
    via: GroupNames<'a>,
}

/// The effective role at a scope and its policy.
#[derive(serde::Serialize)]
struct EffectiveOut<'a> {
    /// The scope asked about.
    scope: &'a Scope,
    role: &'a str,
    /// Where the winning grant was made (the scope itself or one containing it).
    granted_at: &'a Scope,
    via: GroupNames<'a>,
    policy: Option<&'a RoleDef>,
}

/// What answers about one user read: the directory, the user, its view and the mapping.
#[derive(Clone, Copy)]
struct Resolved<'a> {
    dir: &'a Directory,
    user: &'a UserRecord,
    view: &'a UserView,
    compiled: &'a CompiledMapping,
}

impl<'a> Resolved<'a> {
    fn names(&self, positions: Option<&'a [u32]>) -> GroupNames<'a> {
        GroupNames {
            dir: self.dir,
            groups: self.view.groups(),
            positions,
        }
    }

    fn grant_out(&self, g: ViewGrant<'a>) -> GrantOut<'a> {
        GrantOut {
            scope: self.compiled.grant_scope(g.rule),
            role: self.compiled.grant_role(g.rule),
            via: self.names(Some(g.via)),
        }
    }

    /// The winning grant at `target` (see [`CompiledMapping::effective`]).
    fn effective(&self, target: &Scope) -> Option<ViewGrant<'a>> {
        let c = self.compiled;
        self.compiled.effective_among(
            self.view
                .grants()
                .map(|g| (g, c.grant_scope(g.rule), c.grant_role(g.rule))),
            target,
        )
    }
}

/// The roles answer: `user`, `groups`, `roles`, `effective` (when a workspace was asked about;
/// null for no role there) and `mapping_version`.
struct Answer<'a> {
    r: Resolved<'a>,
    effective: Option<Option<EffectiveOut<'a>>>,
    mapping_version: i64,
}

impl Serialize for Answer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Grants<'a>(Resolved<'a>);
        impl Serialize for Grants<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.view.grants().map(|g| self.0.grant_out(g)))
            }
        }
        let r = self.r;
        let fields = if self.effective.is_some() { 5 } else { 4 };
        let mut st = s.serialize_struct("RoleAnswer", fields)?;
        st.serialize_field(
            "user",
            &UserRef {
                id: &r.user.id,
                user_name: &r.user.user_name,
                active: r.user.active,
            },
        )?;
        st.serialize_field("groups", &r.names(None))?;
        st.serialize_field("roles", &Grants(r))?;
        if let Some(effective) = &self.effective {
            st.serialize_field("effective", effective)?;
        }
        st.serialize_field("mapping_version", &self.mapping_version)?;
        st.end()
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
        Some(v) if v.is_current(dir, mapping) => v,
        stale => stale.insert(UserView::build(dir, i, user, mapping)),
    };
    Ok(f(Resolved {
        dir,
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
        let effective = target.as_ref().map(|target| {
            r.effective(target).and_then(|g| {
                let role = compiled.grant_role(g.rule);
                let policy = compiled.role(role)?;
                Some(EffectiveOut {
                    scope: target,
                    role,
                    granted_at: compiled.grant_scope(g.rule),
                    via: r.names(Some(g.via)),
                    policy: Some(policy),
                })
            })
        });
        let mut out = Vec::with_capacity(1024);
        serde_json::to_writer(
            &mut out,
            &Answer {
                r,
                effective,
                mapping_version: mapping.version,
            },
        )
        .map_err(|e| LookupError::Serialize(e.to_string()))?;
        Ok(out)
    })?
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
                let role = r.effective(&target).map(|g| compiled.grant_role(g.rule));
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
                scope: r.compiled.grant_scope(g.rule).clone(),
                role: r.compiled.grant_role(g.rule).to_string(),
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
