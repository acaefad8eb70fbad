//! What replacing one mapping document with another changes: the document itself, and for each
//! user the roles that change, scope by scope, including a role kept at a scope whose policy
//! (what its holders may do) changes.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use serde::Serialize;

use super::document::{RoleDef, RuleDef, WorkspaceDef};
use super::resolve::{CompiledMapping, GroupInfo, Scope};
use super::validate::fold;

/// One user's access changing at one scope: either the role there changes (`old != new`), or the
/// role stays (`old == new`) and its policy changes (`policy_changed` names what).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoleChange {
    pub user_id: String,
    pub user_name: String,
    pub scope: Scope,
    pub old: Option<String>,
    pub new: Option<String>,
    /// When the user keeps the same role at this scope but that role's definition changes in a
    /// way that changes access: the fields that changed (see [`policy_changes`]). Empty when the
    /// role's name changes, and then left out of the JSON, so those entries are as before.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policy_changed: Vec<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MappingDiff {
    pub rules_added: Vec<RuleDef>,
    pub rules_removed: Vec<RuleDef>,
    pub roles_added: Vec<String>,
    pub roles_removed: Vec<String>,
    /// Roles whose definition changed.
    pub roles_changed: Vec<String>,
    pub workspaces_added: Vec<String>,
    pub workspaces_removed: Vec<String>,
    /// Workspaces (in both) whose description or projects changed. (Addition to the brief.)
    pub workspaces_changed: Vec<String>,
    /// Projects added to a workspace in both documents (the projects of an added or removed
    /// workspace are not listed again), as written in the new document.
    pub projects_added: Vec<Scope>,
    /// Projects removed from a workspace in both documents, as written in the old document.
    pub projects_removed: Vec<Scope>,
    /// (old, new) when `default_role` changes; "" = none.
    pub default_role: Option<(String, String)>,
    /// Per user and scope where the grant's role changes, or where the role stays and its policy
    /// changes (see [`RoleChange::policy_changed`]); sorted by user_name then scope.
    pub users: Vec<RoleChange>,
    /// Rules of the NEW document matching no existing group. Warnings, not changes.
    pub unmatched_rules: Vec<RuleDef>,
    /// The indexes (0-based, in the new document) of `unmatched_rules`. (Addition to the brief.)
    pub unmatched_rule_indexes: Vec<usize>,
}

/// A user as the diff sees it: all groups, direct and nested.
pub struct UserView<'a> {
    pub id: &'a str,
    pub user_name: &'a str,
    pub active: bool,
    pub groups: Vec<GroupInfo<'a>>,
}

/// Compare two mappings, and the grants of every user under each.
pub fn diff<'a>(
    old: &CompiledMapping,
    new: &CompiledMapping,
    users: impl Iterator<Item = UserView<'a>>,
    all_groups: impl Iterator<Item = GroupInfo<'a>>,
) -> MappingDiff {
    let (o, n) = (old.document(), new.document());

    let rules_added = multiset_minus(&n.rules, &o.rules);
    let rules_removed = multiset_minus(&o.rules, &n.rules);

    let roles_added = n
        .roles
        .keys()
        .filter(|k| !o.roles.contains_key(*k))
        .cloned()
        .collect();
    let roles_removed = o
        .roles
        .keys()
        .filter(|k| !n.roles.contains_key(*k))
        .cloned()
        .collect();
    let roles_changed = n
        .roles
        .iter()
        .filter(|(k, v)| o.roles.get(*k).is_some_and(|old| old != *v))
        .map(|(k, _)| k.clone())
        .collect();
    // the roles in both whose policy changes, and how: their holders' access changes even where
    // the role they hold does not
    let policy: HashMap<&str, Vec<&'static str>> = n
        .roles
        .iter()
        .filter_map(|(k, v)| {
            let fields = policy_changes(o.roles.get(k)?, v);
            (!fields.is_empty()).then_some((k.as_str(), fields))
        })
        .collect();

    let old_ws: HashMap<String, _> = o.workspaces.iter().map(|w| (fold(&w.name), w)).collect();
    let new_ws: HashMap<String, _> = n.workspaces.iter().map(|w| (fold(&w.name), w)).collect();
    let workspaces_added = n
        .workspaces
        .iter()
        .filter(|w| !old_ws.contains_key(&fold(&w.name)))
        .map(|w| w.name.clone())
        .collect();
    let workspaces_removed = o
        .workspaces
        .iter()
        .filter(|w| !new_ws.contains_key(&fold(&w.name)))
        .map(|w| w.name.clone())
        .collect();
    let workspaces_changed = n
        .workspaces
        .iter()
        .filter(|w| old_ws.get(&fold(&w.name)).is_some_and(|old| old != w))
        .map(|w| w.name.clone())
        .collect();
    // projects added to (removed from) a workspace in both: those of `a` not in its namesake in
    // `b`, project names compared as rules compare them (case-insensitively)
    let projects_minus = |a: &[WorkspaceDef], b: &HashMap<String, &WorkspaceDef>| {
        let mut out = Vec::new();
        for w in a {
            let Some(other) = b.get(&fold(&w.name)) else {
                continue;
            };
            let theirs: BTreeSet<String> = other.projects.iter().map(|p| fold(p)).collect();
            for p in w.projects.iter().filter(|p| !theirs.contains(&fold(p))) {
                out.push(Scope {
                    workspace: Some(w.name.clone()),
                    project: Some(p.clone()),
                });
            }
        }
        out
    };
    let projects_added = projects_minus(&n.workspaces, &old_ws);
    let projects_removed = projects_minus(&o.workspaces, &new_ws);

    let default_role = (o.default_role != n.default_role)
        .then(|| (o.default_role.clone(), n.default_role.clone()));

    // scopes that exist before and not after: every project of a removed workspace too
    let mut removed_scopes: Vec<Scope> = projects_removed.clone();
    for w in o
        .workspaces
        .iter()
        .filter(|w| !new_ws.contains_key(&fold(&w.name)))
    {
        removed_scopes.push(Scope {
            workspace: Some(w.name.clone()),
            project: None,
        });
        removed_scopes.extend(w.projects.iter().map(|p| Scope {
            workspace: Some(w.name.clone()),
            project: Some(p.clone()),
        }));
    }

    // Per user, the effective role (what lookups and evaluations answer) before and after, at
    // each scope where either side grants a role, and at each scope that is removed: a grant
    // outranked at an enclosing scope changes nobody's access, and a removed workspace takes
    // away what its users held there by inheritance.
    let mut changes = Vec::new();
    for user in users {
        let before = old.grants(user.active, &user.groups);
        let after = new.grants(user.active, &user.groups);
        let scopes: BTreeSet<&Scope> = before
            .iter()
            .chain(after.iter())
            .map(|g| &g.scope)
            .chain(removed_scopes.iter())
            .collect();
        for scope in scopes {
            let (was, is) = (
                effective_role(old, &before, scope),
                effective_role(new, &after, scope),
            );
            let (was, is) = (was.as_deref(), is.as_deref());
            // a removed scope where the user held only what an enclosing scope gave, and that
            // enclosing scope's role changes too: already said there
            if is.is_none()
                && new
                    .scope(scope.workspace.as_deref(), scope.project.as_deref())
                    .is_err()
            {
                if let Some(g) = old.effective(&before, scope) {
                    let inherited = &g.scope != scope;
                    let enclosing_changes = effective_role(old, &before, &g.scope)
                        != effective_role(new, &after, &g.scope);
                    if inherited && enclosing_changes {
                        continue;
                    }
                }
            }
            let policy_changed = if was != is {
                Vec::new()
            } else if let Some(fields) = is.and_then(|role| policy.get(role)) {
                // the same role, with a new policy
                fields.clone()
            } else {
                continue;
            };
            changes.push(RoleChange {
                user_id: user.id.to_string(),
                user_name: user.user_name.to_string(),
                scope: scope.clone(),
                old: was.map(str::to_string),
                new: is.map(str::to_string),
                policy_changed,
            });
        }
    }
    changes.sort_by(|a, b| {
        (&a.user_name, &a.scope, &a.user_id).cmp(&(&b.user_name, &b.scope, &b.user_id))
    });

    let (unmatched_rule_indexes, unmatched_rules) =
        new.unmatched_rules(all_groups).into_iter().unzip();

    MappingDiff {
        rules_added,
        rules_removed,
        roles_added,
        roles_removed,
        roles_changed,
        workspaces_added,
        workspaces_removed,
        workspaces_changed,
        projects_added,
        projects_removed,
        default_role,
        users: changes,
        unmatched_rules,
        unmatched_rule_indexes,
    }
}

/// The effective role at `scope` among `grants` under `m`; at a scope `m` does not have (not
/// yet, or no more) nobody holds anything.
fn effective_role(
    m: &CompiledMapping,
    grants: &[super::resolve::Grant],
    scope: &Scope,
) -> Option<String> {
    m.scope(scope.workspace.as_deref(), scope.project.as_deref())
        .ok()
        .and_then(|_| m.effective(grants, scope))
        .map(|g| g.role.clone())
}

/// What changes in a role's policy from `old` to `new`: the names of the fields that differ in a way
/// that can change a decision, in declaration order, among `rank` (which role wins where several
/// apply), `permissions`, `models`, `max_tokens` and `rpm`. Empty when none do.
///
/// `description` is left out on purpose: it changes no decision, so a description-only edit
/// makes nobody "affected" (the role is still listed in `roles_changed`, which names every
/// edited definition). `permissions` and `models` compare as sets: evaluation asks whether any
/// entry matches, so reordering or repeating entries changes nothing either.
pub fn policy_changes(old: &RoleDef, new: &RoleDef) -> Vec<&'static str> {
    // destructured in full so that a field added to RoleDef has to be considered here
    let RoleDef {
        rank,
        description: _,
        permissions,
        models,
        max_tokens,
        rpm,
    } = old;
    let set = |v: &[String]| v.iter().cloned().collect::<BTreeSet<String>>();
    let mut out = Vec::new();
    if *rank != new.rank {
        out.push("rank");
    }
    if set(permissions) != set(&new.permissions) {
        out.push("permissions");
    }
    if set(models) != set(&new.models) {
        out.push("models");
    }
    if *max_tokens != new.max_tokens {
        out.push("max_tokens");
    }
    if *rpm != new.rpm {
        out.push("rpm");
    }
    out
}

/// The elements of `a` not in `b`, counting repeats, in `a`'s order.
fn multiset_minus(a: &[RuleDef], b: &[RuleDef]) -> Vec<RuleDef> {
    let mut left: HashMap<&RuleDef, usize> = HashMap::new();
    for r in b {
        *left.entry(r).or_default() += 1;
    }
    let mut out = Vec::new();
    for r in a {
        match left.get_mut(r) {
            Some(n) if *n > 0 => *n -= 1,
            _ => out.push(r.clone()),
        }
    }
    out
}

/// `group "legal" -> viewer in workspace legal, project contracts`
pub fn describe_rule(rule: &RuleDef) -> String {
    let group = match (&rule.group, &rule.group_external_id) {
        (Some(name), _) => format!("group {name:?}"),
        (None, Some(id)) => format!("group_external_id {id:?}"),
        (None, None) => "no group".to_string(),
    };
    let scope = Scope {
        workspace: rule.workspace.clone(),
        project: rule.project.clone(),
    };
    format!("{group} -> {} in {scope}", rule.role)
}

impl MappingDiff {
    /// Nothing would change: no document change and no user's roles. (Unmatched rules are
    /// warnings and do not count.)
    pub fn is_empty(&self) -> bool {
        self.rules_added.is_empty()
            && self.rules_removed.is_empty()
            && self.roles_added.is_empty()
            && self.roles_removed.is_empty()
            && self.roles_changed.is_empty()
            && self.workspaces_added.is_empty()
            && self.workspaces_removed.is_empty()
            && self.workspaces_changed.is_empty()
            && self.projects_added.is_empty()
            && self.projects_removed.is_empty()
            && self.default_role.is_none()
            && self.users.is_empty()
    }

    /// A readable report for the CLI.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        for name in &self.roles_added {
            line(format!("+ role {name}"));
        }
        for name in &self.roles_removed {
            line(format!("- role {name}"));
        }
        for name in &self.roles_changed {
            line(format!("~ role {name} (definition changed)"));
        }
        for name in &self.workspaces_added {
            line(format!("+ workspace {name}"));
        }
        for name in &self.workspaces_removed {
            line(format!("- workspace {name}"));
        }
        for name in &self.workspaces_changed {
            line(format!(
                "~ workspace {name} (description or projects changed)"
            ));
        }
        for scope in &self.projects_added {
            line(format!("+ {scope}"));
        }
        for scope in &self.projects_removed {
            line(format!("- {scope}"));
        }
        if let Some((old, new)) = &self.default_role {
            line(format!(
                "~ default_role: {} -> {}",
                or_none(old),
                or_none(new)
            ));
        }
        for rule in &self.rules_added {
            line(format!("+ rule {}", describe_rule(rule)));
        }
        for rule in &self.rules_removed {
            line(format!("- rule {}", describe_rule(rule)));
        }
        let users: BTreeSet<&str> = self.users.iter().map(|c| c.user_id.as_str()).collect();
        if !self.users.is_empty() {
            line(format!(
                "{} role change(s) for {} user(s):",
                self.users.len(),
                users.len()
            ));
        }
        for c in &self.users {
            let new = c.new.as_deref().unwrap_or("none");
            if c.policy_changed.is_empty() {
                line(format!(
                    "{}  {}: {} -> {new}",
                    c.user_name,
                    c.scope,
                    c.old.as_deref().unwrap_or("none"),
                ));
            } else {
                line(format!(
                    "{}  {}: {new} (policy changed: {})",
                    c.user_name,
                    c.scope,
                    c.policy_changed.join(", "),
                ));
            }
        }
        if self.is_empty() {
            line("no changes".to_string());
        }
        for (i, rule) in self.unmatched_rules.iter().enumerate() {
            let mut text = String::from("! rule ");
            if let Some(index) = self.unmatched_rule_indexes.get(i) {
                let _ = write!(text, "{index} ");
            }
            let _ = write!(text, "matches no group: {}", describe_rule(rule));
            line(text);
        }
        out
    }
}

fn or_none(role: &str) -> &str {
    if role.is_empty() {
        "none"
    } else {
        role
    }
}
