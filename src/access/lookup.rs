//! Answers for gateways: a user's roles per scope, the effective role and policy at a scope,
//! and access decisions. Everything here reads memory only.

use serde::Serialize;

use super::Access;
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

#[derive(Debug, Clone, Serialize)]
pub struct Effective {
    /// The scope asked about.
    pub scope: Scope,
    pub role: String,
    /// Where the winning grant was made (the scope itself or one containing it).
    pub granted_at: Scope,
    pub via: Vec<String>,
    pub policy: RoleDef,
}

/// A user resolved against the mapping in force.
struct Resolved {
    user: UserOut,
    groups: Vec<String>,
    grants: Vec<Grant>,
    mapping: std::sync::Arc<super::Mapping>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RoleAnswer {
    pub user: UserOut,
    pub groups: Vec<String>,
    pub roles: Vec<Grant>,
    /// Present when a workspace was asked about; null when the user has no role there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective: Option<Option<Effective>>,
    pub mapping_version: i64,
}

impl Access {
    /// The user's grants and group names, from memory.
    fn resolve(&self, user_key: &str) -> Result<Resolved, LookupError> {
        let mapping = self.mapping();
        let dir = self.directory();
        let user = dir.find_user(user_key).ok_or(LookupError::UnknownUser)?;
        let groups = dir.groups_of(&user.id);
        let infos: Vec<GroupInfo<'_>> = groups
            .iter()
            .map(|g| GroupInfo {
                display_name: &g.display_name,
                external_id: g.external_id.as_deref(),
            })
            .collect();
        let grants = mapping.compiled.grants(user.active, &infos);
        let names = groups.iter().map(|g| g.display_name.clone()).collect();
        let user = UserOut {
            id: user.id.clone(),
            user_name: user.user_name.clone(),
            active: user.active,
        };
        drop(dir);
        Ok(Resolved {
            user,
            groups: names,
            grants,
            mapping,
        })
    }

    /// `GET /v1/users/{user}/roles[?workspace=W&project=P]`.
    pub fn roles(
        &self,
        user_key: &str,
        workspace: Option<&str>,
        project: Option<&str>,
    ) -> Result<RoleAnswer, LookupError> {
        let Resolved {
            user,
            groups,
            grants,
            mapping,
        } = self.resolve(user_key)?;
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
                let target = mapping
                    .compiled
                    .scope(Some(w), project)
                    .map_err(LookupError::UnknownScope)?;
                Some(mapping.compiled.effective(&grants, &target).and_then(|g| {
                    mapping.compiled.role(&g.role).map(|def| Effective {
                        scope: target.clone(),
                        role: g.role.clone(),
                        granted_at: g.scope.clone(),
                        via: g.via.clone(),
                        policy: def.clone(),
                    })
                }))
            }
        };
        Ok(RoleAnswer {
            user,
            groups,
            roles: grants,
            effective,
            mapping_version: mapping.version,
        })
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
        let deny = |reason: String| Decision {
            allowed: false,
            role: None,
            max_tokens: None,
            rpm: None,
            reason: Some(reason),
        };
        let Resolved {
            user,
            grants,
            mapping,
            ..
        } = match self.resolve(user_key) {
            Ok(r) => r,
            Err(e) => return deny(format!("unknown user \"{user_key}\": {e}")),
        };
        if !user.active {
            return deny(format!("user {} is deactivated", user.user_name));
        }
        let target = match mapping.compiled.scope(workspace, project) {
            Ok(t) => t,
            Err(e) => return deny(e),
        };
        mapping
            .compiled
            .evaluate_at(&grants, &target, action, model, max_tokens)
    }

    /// Grants of a user for a signed role token: (user, grants).
    pub fn token_claims(&self, user_key: &str) -> Result<(UserOut, Vec<Grant>), LookupError> {
        let r = self.resolve(user_key)?;
        Ok((r.user, r.grants))
    }
}
