//! Access evaluation: may the holder of a role do an action, possibly a model call, and within
//! which limits?

use serde::Serialize;

use super::document::RoleDef;
use super::glob::glob_match;
use super::resolve::Scope;

/// The permission a model call needs.
pub const MESSAGES_CREATE: &str = "messages.create";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub allowed: bool,
    /// The role the decision was made for (also on denials); None when the user has no role.
    pub role: Option<String>,
    /// Granted `max_tokens` when allowed: min(asked, cap), the cap when not asked, the asked
    /// value when there is no cap (0), None when neither.
    pub max_tokens: Option<u64>,
    /// The role's requests per minute when allowed (None for 0, no limit given).
    pub rpm: Option<u64>,
    /// Why it was denied.
    pub reason: Option<String>,
}

impl Decision {
    pub(crate) fn deny(role: Option<&str>, reason: String) -> Self {
        Decision {
            allowed: false,
            role: role.map(str::to_string),
            max_tokens: None,
            rpm: None,
            reason: Some(reason),
        }
    }
}

fn has_permission(role: &RoleDef, action: &str) -> bool {
    role.permissions.iter().any(|p| p == "*" || p == action)
}

/// May the holder of `role` (None = no role at that scope) do `action` (a permission name like
/// `messages.create`), on a model (`model: Some(id)`) or not, asking for `max_tokens` (None = not
/// asked)?
///
/// No role: deny, "no role in <scope>". The action must be among the role's permissions (or they
/// contain `*`), else deny "role X lacks permission Y". A model call also needs `messages.create`
/// and a model matching one of the role's `models` globs (empty = none), else deny "model M is not
/// allowed for role X". When allowed, `max_tokens` and `rpm` carry the role's limits (see
/// [`Decision`]).
pub fn evaluate(
    role: Option<(&str, &RoleDef)>,
    scope: &Scope,
    action: &str,
    model: Option<&str>,
    max_tokens: Option<u64>,
) -> Decision {
    let Some((name, def)) = role else {
        return Decision::deny(None, format!("no role in {scope}"));
    };
    if !has_permission(def, action) {
        return Decision::deny(Some(name), format!("role {name} lacks permission {action}"));
    }
    if let Some(model) = model {
        if !has_permission(def, MESSAGES_CREATE) {
            return Decision::deny(
                Some(name),
                format!("role {name} lacks permission {MESSAGES_CREATE}"),
            );
        }
        if !def.models.iter().any(|glob| glob_match(glob, model)) {
            return Decision::deny(
                Some(name),
                format!("model {model} is not allowed for role {name}"),
            );
        }
    }
    let cap = def.max_tokens;
    let granted = match (max_tokens, cap) {
        (Some(asked), 0) => Some(asked),
        (Some(asked), cap) => Some(asked.min(cap)),
        (None, 0) => None,
        (None, cap) => Some(cap),
    };
    Decision {
        allowed: true,
        role: Some(name.to_string()),
        max_tokens: granted,
        rpm: (def.rpm > 0).then_some(def.rpm),
        reason: None,
    }
}
