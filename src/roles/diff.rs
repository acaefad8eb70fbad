//! What replacing one mapping document with another changes: the document itself, and for each
//! user the roles that change, scope by scope.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use serde::Serialize;

use super::document::RuleDef;
use super::resolve::{CompiledMapping, GroupInfo, Scope};
use super::validate::fold;

/// One user's role changing at one scope.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoleChange {
    pub user_id: String,
    pub user_name: String,
    pub scope: Scope,
    pub old: Option<String>,
    pub new: Option<String>,
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
    /// (old, new) when `default_role` changes; "" = none.
    pub default_role: Option<(String, String)>,
    /// Per user and scope where the grant's role changes, sorted by user_name then scope.
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

    let default_role = (o.default_role != n.default_role)
        .then(|| (o.default_role.clone(), n.default_role.clone()));

    let mut changes = Vec::new();
    for user in users {
        let before = old.grants(user.active, &user.groups);
        let after = new.grants(user.active, &user.groups);
        let mut by_scope: BTreeMap<&Scope, (Option<&str>, Option<&str>)> = BTreeMap::new();
        for g in &before {
            by_scope.entry(&g.scope).or_default().0 = Some(&g.role);
        }
        for g in &after {
            by_scope.entry(&g.scope).or_default().1 = Some(&g.role);
        }
        for (scope, (was, is)) in by_scope {
            if was != is {
                changes.push(RoleChange {
                    user_id: user.id.to_string(),
                    user_name: user.user_name.to_string(),
                    scope: scope.clone(),
                    old: was.map(str::to_string),
                    new: is.map(str::to_string),
                });
            }
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
        default_role,
        users: changes,
        unmatched_rules,
        unmatched_rule_indexes,
    }
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
            line(format!(
                "{}  {}: {} -> {}",
                c.user_name,
                c.scope,
                c.old.as_deref().unwrap_or("none"),
                c.new.as_deref().unwrap_or("none"),
            ));
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
