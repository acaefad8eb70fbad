//! Answers for gateways: a user's roles per scope, the effective role and policy at a scope,
//! and access decisions. Everything here reads memory only.
//!
//! What a user's answers share (the user, its grants, and the serialized head of the roles
//! answer) is worked out once and kept as a [`UserView`] in a [`ViewCache`] of fixed size,
//! stamped with the directory generation and the mapping it was made from. Any change to the
//! directory moves the generation and any mapping change replaces the mapping, so a stale view
//! is never used: the next lookup makes a new one.

use std::sync::Arc;

use serde::Serialize;

use super::{Access, Mapping};
use crate::roles::document::RoleDef;
use crate::roles::evaluate::Decision;
use crate::roles::resolve::{Grant, GroupInfo, Scope};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("no user with that userName, id or externalId")]
    UnknownUser,
    #[error("{0}")]
    UnknownScope(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct UserOut {
    pub id: String,
    #[serde(rename = "userName")]
    pub user_name: String,
    pub active: bool,
}

/// One user resolved against one mapping, for one directory generation.
pub struct UserView {
    /// The user's index in the directory.
    index: u32,
    generation: u64,
    mapping: Arc<Mapping>,
    pub user: UserOut,
    pub grants: Vec<Grant>,
    /// `{"user":…,"groups":[…],"roles":[…]`: the roles answer up to its scope-dependent part.
    head: Vec<u8>,
}

impl std::fmt::Debug for UserView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserView")
            .field("generation", &self.generation)
            .field("user", &self.user)
            .field("grants", &self.grants)
            .finish_non_exhaustive()
    }
}

/// The effective role at a scope; its policy is read from the mapping it came from when
/// serialized (not copied per answer).
#[derive(Clone)]
pub struct Effective {
    /// The scope asked about.
    pub scope: Scope,
    pub role: String,
    /// Where the winning grant was made (the scope itself or one containing it).
    pub granted_at: Scope,
    pub via: Vec<String>,
    mapping: Arc<Mapping>,
}

impl Effective {
    pub fn policy(&self) -> Option<&RoleDef> {
        self.mapping.compiled.role(&self.role)
    }
}

impl Serialize for Effective {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Effective", 5)?;
        st.serialize_field("scope", &self.scope)?;
        st.serialize_field("role", &self.role)?;
        st.serialize_field("granted_at", &self.granted_at)?;
        st.serialize_field("via", &self.via)?;
        st.serialize_field("policy", &self.policy())?;
        st.end()
    }
}

/// The answer to `GET /v1/users/{user}/roles`.
pub struct RoleAnswer {
    view: Arc<UserView>,
    /// Present when a workspace was asked about; `Some(None)` when the user has no role there.
    pub effective: Option<Option<Effective>>,
}

impl RoleAnswer {
    /// The answer as JSON: `user`, `groups`, `roles`, `effective` (when a workspace was asked
    /// about; null for no role there) and `mapping_version`.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut out = Vec::with_capacity(self.view.head.len() + 512);
        out.extend_from_slice(&self.view.head);
        if let Some(effective) = &self.effective {
            out.extend_from_slice(b",\"effective\":");
            serde_json::to_writer(&mut out, effective)?;
        }
        out.extend_from_slice(b",\"mapping_version\":");
        out.extend_from_slice(self.view.mapping.version.to_string().as_bytes());
        out.push(b'}');
        Ok(out)
    }
}

/// Recently made views, direct-mapped by user index: a fixed number of slots
/// (`--lookup-cache-users`), so memory stays bounded whatever the size of the directory (a
/// view is 1–2 KB).
pub(crate) struct ViewCache {
    slots: Box<[std::sync::Mutex<Option<Arc<UserView>>>]>,
}

impl ViewCache {
    /// A cache of `slots` views (rounded up to a power of two).
    pub(crate) fn new(slots: usize) -> Self {
        let n = slots.max(1).next_power_of_two();
        Self {
            slots: (0..n).map(|_| Default::default()).collect(),
        }
    }

    fn slot(&self, index: u32) -> std::sync::MutexGuard<'_, Option<Arc<UserView>>> {
        let i = index as usize & (self.slots.len() - 1);
        self.slots[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, index: u32, generation: u64, mapping: &Arc<Mapping>) -> Option<Arc<UserView>> {
        self.slot(index)
            .as_ref()
            .filter(|v| {
                v.index == index && v.generation == generation && Arc::ptr_eq(&v.mapping, mapping)
            })
            .map(Arc::clone)
    }

    fn put(&self, view: Arc<UserView>) {
        let index = view.index;
        *self.slot(index) = Some(view);
    }
}

#[derive(Serialize)]
struct Head<'a> {
    user: &'a UserOut,
    groups: &'a [&'a str],
    roles: &'a [Grant],
}

impl Access {
    /// The view of the user `user_key` names, from the cache when it is current.
    fn view(&self, user_key: &str) -> Result<Arc<UserView>, LookupError> {
        let mapping = self.mapping();
        let dir = self.directory();
        let i = dir
            .find_user_index(user_key)
            .ok_or(LookupError::UnknownUser)?;
        if let Some(v) = self.views.get(i, dir.generation(), &mapping) {
            return Ok(v);
        }
        let user = dir.user_at(i).ok_or(LookupError::UnknownUser)?;
        let groups = dir.groups_of_index(i);
        let infos: Vec<GroupInfo<'_>> = groups
            .iter()
            .map(|g| GroupInfo {
                display_name: &g.display_name,
                external_id: g.external_id.as_deref(),
            })
            .collect();
        let grants = mapping.compiled.grants(user.active, &infos);
        let user = UserOut {
            id: user.id.clone(),
            user_name: user.user_name.clone(),
            active: user.active,
        };
        let names: Vec<&str> = groups.iter().map(|g| g.display_name.as_str()).collect();
        let mut head = serde_json::to_vec(&Head {
            user: &user,
            groups: &names,
            roles: &grants,
        })
        .unwrap_or_default();
        // an object always ends in `}`: drop it so the scope-dependent part can follow
        head.pop();
        head.shrink_to_fit();
        let view = Arc::new(UserView {
            index: i,
            generation: dir.generation(),
            mapping,
            user,
            grants,
            head,
        });
        drop(dir);
        self.views.put(Arc::clone(&view));
        Ok(view)
    }

    /// `GET /v1/users/{user}/roles[?workspace=W&project=P]`.
    pub fn roles(
        &self,
        user_key: &str,
        workspace: Option<&str>,
        project: Option<&str>,
    ) -> Result<RoleAnswer, LookupError> {
        let view = self.view(user_key)?;
        let effective = match workspace {
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
            Some(w) => {
                let compiled = &view.mapping.compiled;
                let target = compiled
                    .scope(Some(w), project)
                    .map_err(LookupError::UnknownScope)?;
                let effective = compiled.effective(&view.grants, &target).and_then(|g| {
                    compiled.role(&g.role)?;
                    Some(Effective {
                        scope: target.clone(),
                        role: g.role.clone(),
                        granted_at: g.scope.clone(),
                        via: g.via.clone(),
                        mapping: Arc::clone(&view.mapping),
                    })
                });
                Some(effective)
            }
        };
        Ok(RoleAnswer { view, effective })
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
        let view = match self.view(user_key) {
            Ok(v) => v,
            Err(e) => return Decision::deny(None, format!("unknown user \"{user_key}\": {e}")),
        };
        if !view.user.active {
            return Decision::deny(None, format!("user {} is deactivated", view.user.user_name));
        }
        let compiled = &view.mapping.compiled;
        match compiled.scope(workspace, project) {
            Ok(target) => compiled.evaluate_at(&view.grants, &target, action, model, max_tokens),
            Err(e) => Decision::deny(None, e),
        }
    }

    /// Grants of a user for a signed role token: (user, grants).
    pub fn token_claims(&self, user_key: &str) -> Result<(UserOut, Vec<Grant>), LookupError> {
        let view = self.view(user_key)?;
        Ok((view.user.clone(), view.grants.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roles::document::MappingDocument;
    use crate::roles::resolve::CompiledMapping;

    fn mapping(version: i64) -> Arc<Mapping> {
        Arc::new(Mapping {
            version,
            compiled: CompiledMapping::new(MappingDocument::default()).expect("empty mapping"),
        })
    }

    fn view(index: u32, generation: u64, mapping: &Arc<Mapping>) -> Arc<UserView> {
        Arc::new(UserView {
            index,
            generation,
            mapping: Arc::clone(mapping),
            user: UserOut {
                id: format!("u{index}"),
                user_name: format!("user{index}"),
                active: true,
            },
            grants: Vec::new(),
            head: b"{".to_vec(),
        })
    }

    #[test]
    fn a_view_is_served_only_for_its_user_generation_and_mapping() {
        let m1 = mapping(1);
        let cache = ViewCache::new(2);
        cache.put(view(0, 7, &m1));
        assert!(cache.get(0, 7, &m1).is_some());
        // another generation or another mapping (even with the same version number): stale
        assert!(cache.get(0, 8, &m1).is_none());
        assert!(cache.get(0, 7, &mapping(1)).is_none());
        // user 2 shares user 0's slot (2 slots): it replaces it, and is never taken for it
        cache.put(view(2, 7, &m1));
        assert!(cache.get(0, 7, &m1).is_none());
        assert_eq!(
            cache.get(2, 7, &m1).map(|v| v.user.id.clone()),
            Some("u2".into())
        );
        // user 1 has the other slot
        cache.put(view(1, 7, &m1));
        assert!(cache.get(2, 7, &m1).is_some());
        // a cache of one slot (the CLI's) still answers correctly
        let one = ViewCache::new(1);
        one.put(view(5, 1, &m1));
        assert!(one.get(6, 1, &m1).is_none());
        assert!(one.get(5, 1, &m1).is_some());
    }
}
