//! The mapping document: roles, workspaces (with projects) and rules from IdP groups to roles.
//!
//! The same structure is read from TOML files (`parse_toml`, with line numbers) and from JSON in
//! the admin API (`parse_json`). Both report every problem at once: syntax errors (TOML stops at
//! the first), unknown keys, wrong types, missing keys, and every semantic problem (see
//! [`validate`]). Paths in problems use 0-based indexes: `rules[0]` is the first rule.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::build;
use super::tree::{self, LineIndex};
pub use super::validate::validate;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingDocument {
    /// A role every active user holds organization-wide; empty = none (unmapped users have no access).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub default_role: String,
    #[serde(default)]
    pub roles: BTreeMap<String, RoleDef>,
    #[serde(default)]
    pub workspaces: Vec<WorkspaceDef>,
    #[serde(default)]
    pub rules: Vec<RuleDef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleDef {
    /// When several roles apply, the highest rank wins. Must not be negative.
    pub rank: i64,
    #[serde(default)]
    pub description: String,
    /// Action names such as `messages.create`; `*` for all.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Model-id globs the role may call; empty = none.
    #[serde(default)]
    pub models: Vec<String>,
    /// Cap on `max_tokens` per call; 0 = no cap.
    #[serde(default)]
    pub max_tokens: u64,
    /// Requests per minute the gateway should allow; 0 = no limit given.
    #[serde(default)]
    pub rpm: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default)]
    pub projects: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDef {
    /// The IdP group's displayName, compared case-insensitively.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The IdP group's externalId, compared exactly (Entra ID sends object ids here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_external_id: Option<String>,
    pub role: String,
    /// None = organization-wide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

/// One problem with a mapping document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// 1-based, when parsed from TOML.
    pub line: Option<usize>,
    /// Where in the document, e.g. `rules[2].role` or `roles.admin.models[1]`; empty for the
    /// document as a whole (a syntax error).
    pub path: String,
    pub message: String,
}

impl Problem {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            line: None,
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for Problem {}

/// Parse TOML and validate; every problem found (syntax errors, unknown keys, wrong types and
/// every semantic problem), each with its line, sorted by line.
pub fn parse_toml(text: &str) -> Result<MappingDocument, Vec<Problem>> {
    let lines = LineIndex::new(text);
    match tree::from_toml(text) {
        Ok(root) => finish(build::build(&root), Some(&lines)),
        Err((span, message)) => Err(vec![Problem {
            line: span.map(|s| lines.line(s.start)),
            path: String::new(),
            message: message.trim().replace('\n', "; "),
        }]),
    }
}

/// Parse the JSON form (admin API) and validate; problems have line None.
pub fn parse_json(value: serde_json::Value) -> Result<MappingDocument, Vec<Problem>> {
    finish(build::build(&tree::from_json(value)), None)
}

fn finish(built: build::Built, lines: Option<&LineIndex>) -> Result<MappingDocument, Vec<Problem>> {
    let line_of = |path: &str| -> Option<usize> {
        let lines = lines?;
        let offset = lookup(&built.spans, path)?;
        Some(lines.line(offset))
    };
    let mut problems = built.problems.clone();
    for p in &mut problems {
        p.line = line_of(&p.path);
    }
    let semantic = super::validate::validate_with(&built.doc, &line_of);
    let structural: Vec<&str> = built.problems.iter().map(|p| p.path.as_str()).collect();
    problems.extend(
        semantic
            .into_iter()
            .filter(|p| !structural.iter().any(|s| inside(&p.path, s))),
    );
    if problems.is_empty() {
        Ok(built.doc)
    } else {
        // Stable: problems on one line keep the order they were found in; no line goes last.
        problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
        Err(problems)
    }
}

/// The span recorded for `path`, or for its nearest ancestor that has one.
fn lookup(spans: &HashMap<String, usize>, path: &str) -> Option<usize> {
    let mut path = path;
    loop {
        if let Some(&offset) = spans.get(path) {
            return Some(offset);
        }
        let cut = if path.ends_with(']') {
            path.rfind('[')
        } else {
            path.rfind('.')
        };
        path = &path[..cut?];
    }
}

/// Is `inner` the path `outer` or inside it? A semantic problem at or inside a path with a
/// structural problem is a consequence of its placeholder value and is not reported.
fn inside(inner: &str, outer: &str) -> bool {
    outer.is_empty()
        || inner == outer
        || (inner.starts_with(outer)
            && matches!(inner.as_bytes().get(outer.len()), Some(b'.' | b'[')))
}

/// The document as TOML in the documented format; `parse_toml(&to_toml(d)) == Ok(d)` for every
/// valid document. Roles are written highest rank first.
pub fn to_toml(doc: &MappingDocument) -> String {
    let mut out = String::new();
    out.push_str(&format!("default_role = {}\n", quote(&doc.default_role)));
    let mut roles: Vec<(&String, &RoleDef)> = doc.roles.iter().collect();
    roles.sort_by(|a, b| b.1.rank.cmp(&a.1.rank).then(a.0.cmp(b.0)));
    for (name, role) in roles {
        out.push_str(&format!("\n[roles.{}]\n", key(name)));
        out.push_str(&format!("rank = {}\n", role.rank));
        out.push_str(&format!("description = {}\n", quote(&role.description)));
        out.push_str(&format!("permissions = {}\n", list(&role.permissions)));
        out.push_str(&format!("models = {}\n", list(&role.models)));
        out.push_str(&format!("max_tokens = {}\n", role.max_tokens));
        out.push_str(&format!("rpm = {}\n", role.rpm));
    }
    for ws in &doc.workspaces {
        out.push_str("\n[[workspaces]]\n");
        out.push_str(&format!("name = {}\n", quote(&ws.name)));
        if !ws.description.is_empty() {
            out.push_str(&format!("description = {}\n", quote(&ws.description)));
        }
        out.push_str(&format!("projects = {}\n", list(&ws.projects)));
    }
    for rule in &doc.rules {
        out.push_str("\n[[rules]]\n");
        let fields = [
            ("group", &rule.group),
            ("group_external_id", &rule.group_external_id),
            ("role", &Some(rule.role.clone())),
            ("workspace", &rule.workspace),
            ("project", &rule.project),
        ];
        for (name, value) in fields {
            if let Some(value) = value {
                out.push_str(&format!("{name} = {}\n", quote(value)));
            }
        }
    }
    out
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn key(s: &str) -> String {
    let bare = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        s.to_string()
    } else {
        quote(s)
    }
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", quoted.join(", "))
}
