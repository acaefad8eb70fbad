//! Semantic validation of a mapping document.

use std::collections::HashMap;

use super::document::{MappingDocument, Problem, RuleDef};
use super::glob::glob_problem;

/// Every semantic problem of an already-deserialized document (lines None): unknown roles in
/// rules or `default_role`; unknown workspaces and projects (or a project without a workspace);
/// rules naming their group by both or neither of `group`/`group_external_id`, or by an empty
/// name; duplicate rules; duplicate workspaces or projects (case-insensitive); bad role names,
/// permission names and model globs; negative ranks.
pub fn validate(doc: &MappingDocument) -> Vec<Problem> {
    validate_with(doc, &|_| None)
}

/// `path.key`, quoting a key that is not a bare TOML key.
/// Roles that may call models (`messages.create` or `*`, and a model allow-list) without a
/// `max_tokens` cap or an `rpm`: valid (0 means "no cap" / "no limit given"), but an omission
/// more often than a choice, so `mappings validate` names them. (name, the fields at 0)
pub fn uncapped_roles(doc: &MappingDocument) -> Vec<(&str, Vec<&'static str>)> {
    doc.roles
        .iter()
        .filter(|(_, r)| {
            !r.models.is_empty()
                && r.permissions
                    .iter()
                    .any(|p| p == "*" || p == "messages.create")
        })
        .filter_map(|(name, r)| {
            let missing: Vec<&'static str> = [("max_tokens", r.max_tokens), ("rpm", r.rpm)]
                .into_iter()
                .filter(|(_, v)| *v == 0)
                .map(|(k, _)| k)
                .collect();
            (!missing.is_empty()).then_some((name.as_str(), missing))
        })
        .collect()
}

pub(crate) fn child(parent: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if parent.is_empty() {
        key
    } else {
        format!("{parent}.{key}")
    }
}

/// `path[i]`.
pub(crate) fn item(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// Case folding used for group names, workspace and project names.
pub(crate) fn fold(s: &str) -> String {
    s.to_lowercase()
}

/// [`fold`] without allocating when `s` is already folded (ASCII without capitals).
pub(crate) fn fold_cow(s: &str) -> std::borrow::Cow<'_, str> {
    if s.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        std::borrow::Cow::Borrowed(s)
    } else {
        std::borrow::Cow::Owned(fold(s))
    }
}

/// `fold(a) == fold(b)`, without allocating when both are ASCII.
pub(crate) fn same_folded(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b || fold(a) == fold(b)
    }
}

/// `[a-z0-9][a-z0-9_-]*`
pub(crate) fn is_role_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z' | '0'..='9'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'))
}

/// `[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*` or `*`
pub(crate) fn is_permission(name: &str) -> bool {
    name == "*"
        || name.split('.').all(|segment| {
            let mut chars = segment.chars();
            matches!(chars.next(), Some('a'..='z'))
                && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        })
}

pub(crate) fn validate_with(
    doc: &MappingDocument,
    line_of: &dyn Fn(&str) -> Option<usize>,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut report = |path: String, message: String| {
        problems.push(Problem {
            line: line_of(&path),
            path,
            message,
        });
    };
    // " (same as rules[0], line 3)" or " (same as rules[0])"
    let same_as = |path: &str| match line_of(path) {
        Some(line) => format!("same as {path}, line {line}"),
        None => format!("same as {path}"),
    };

    if !doc.default_role.is_empty() && !doc.roles.contains_key(&doc.default_role) {
        let message = format!("unknown role {:?}", doc.default_role);
        report("default_role".to_string(), message);
    }

    for (name, role) in &doc.roles {
        let path = child("roles", name);
        if !is_role_name(name) {
            report(
                path.clone(),
                format!("role name {name:?} must match [a-z0-9][a-z0-9_-]*"),
            );
        }
        if role.rank < 0 {
            let message = format!("rank must not be negative (found {})", role.rank);
            report(child(&path, "rank"), message);
        }
        for (i, permission) in role.permissions.iter().enumerate() {
            if !is_permission(permission) {
                report(
                    item(&child(&path, "permissions"), i),
                    format!("bad permission name {permission:?} (expected a name like \"messages.create\", or \"*\")"),
                );
            }
        }
        for (i, model) in role.models.iter().enumerate() {
            if let Some(message) = glob_problem(model) {
                report(item(&child(&path, "models"), i), message);
            }
        }
    }

    // Lower-cased workspace name -> (index, lower-cased project name -> index).
    let mut workspaces: HashMap<String, (usize, HashMap<String, usize>)> = HashMap::new();
    for (i, ws) in doc.workspaces.iter().enumerate() {
        let path = item("workspaces", i);
        let name_path = child(&path, "name");
        if ws.name.trim().is_empty() {
            report(name_path, "workspace name must not be empty".to_string());
            continue;
        }
        let mut projects: HashMap<String, usize> = HashMap::new();
        for (j, project) in ws.projects.iter().enumerate() {
            let project_path = item(&child(&path, "projects"), j);
            if project.trim().is_empty() {
                report(project_path, "project name must not be empty".to_string());
            } else if let Some(&first) = projects.get(&fold(project)) {
                let first = same_as(&item(&child(&path, "projects"), first));
                report(
                    project_path,
                    format!(
                        "duplicate project {project:?} in workspace {:?} ({first})",
                        ws.name
                    ),
                );
            } else {
                projects.insert(fold(project), j);
            }
        }
        if let Some((first, _)) = workspaces.get(&fold(&ws.name)) {
            let first = same_as(&child(&item("workspaces", *first), "name"));
            report(
                name_path,
                format!("duplicate workspace {:?} ({first})", ws.name),
            );
        } else {
            workspaces.insert(fold(&ws.name), (i, projects));
        }
    }

    let mut seen: HashMap<(String, String, String, String), usize> = HashMap::new();
    for (i, rule) in doc.rules.iter().enumerate() {
        let path = item("rules", i);
        let group_key = match (&rule.group, &rule.group_external_id) {
            (Some(_), Some(_)) => {
                report(
                    path.clone(),
                    "a rule names its group by group or by group_external_id, not both".to_string(),
                );
                None
            }
            (None, None) => {
                report(
                    path.clone(),
                    "a rule must name its group by group or by group_external_id".to_string(),
                );
                None
            }
            (Some(name), None) if name.trim().is_empty() => {
                let message = "group name must not be empty".to_string();
                report(child(&path, "group"), message);
                None
            }
            (None, Some(id)) if id.trim().is_empty() => {
                let message = "group_external_id must not be empty".to_string();
                report(child(&path, "group_external_id"), message);
                None
            }
            (Some(name), None) => Some(format!("name:{}", fold(name))),
            (None, Some(id)) => Some(format!("id:{id}")),
        };
        if !doc.roles.contains_key(&rule.role) {
            let message = format!("unknown role {:?}", rule.role);
            report(child(&path, "role"), message);
        }
        match (&rule.workspace, &rule.project) {
            (None, Some(project)) => report(
                child(&path, "project"),
                format!("project {project:?} given without a workspace"),
            ),
            (Some(ws), project) => match workspaces.get(&fold(ws)) {
                None => report(
                    child(&path, "workspace"),
                    format!("unknown workspace {ws:?}"),
                ),
                Some((index, projects)) => {
                    if let Some(project) = project {
                        if !projects.contains_key(&fold(project)) {
                            let canonical = &doc.workspaces[*index].name;
                            report(
                                child(&path, "project"),
                                format!("unknown project {project:?} in workspace {canonical:?}"),
                            );
                        }
                    }
                }
            },
            (None, None) => {}
        }
        if let Some(group_key) = group_key {
            let key = scope_key(rule, group_key);
            if let Some(&first) = seen.get(&key) {
                let first = same_as(&item("rules", first));
                report(
                    path,
                    format!("duplicate rule: same group, role and scope ({first})"),
                );
            } else {
                seen.insert(key, i);
            }
        }
    }
    problems
}

fn scope_key(rule: &RuleDef, group_key: String) -> (String, String, String, String) {
    let ws = rule.workspace.as_deref().map(fold).unwrap_or_default();
    let project = rule.project.as_deref().map(fold).unwrap_or_default();
    (group_key, rule.role.clone(), ws, project)
}
