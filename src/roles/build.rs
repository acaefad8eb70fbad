//! Converts a document tree (from TOML or JSON) into a [`MappingDocument`] by hand, reporting
//! every unknown key, wrong type and missing key instead of stopping at the first, and recording
//! where each path starts in the text so that later (semantic) problems get lines too.
//!
//! Where a value is unusable a placeholder takes its place (so indexes stay aligned with the
//! text); `document::finish` drops semantic problems that are mere consequences of placeholders.

use std::collections::HashMap;
use std::ops::Range;

use super::document::{MappingDocument, Problem, RoleDef, RuleDef, WorkspaceDef};
use super::tree::{Located, Node};
use super::validate::{child, item};

pub(crate) struct Built {
    pub doc: MappingDocument,
    /// Structural problems (lines not yet filled in).
    pub problems: Vec<Problem>,
    /// Path -> byte offset where it starts (TOML only).
    pub spans: HashMap<String, usize>,
}

pub(crate) fn build(root: &Located) -> Built {
    let mut cx = Cx::default();
    let mut doc = MappingDocument::default();
    for (name, path, value) in cx.table("", root, &["default_role", "roles", "workspaces", "rules"])
    {
        match name {
            "default_role" => doc.default_role = cx.string(&path, value).unwrap_or_default(),
            "roles" => {
                for (role, role_path, v) in cx.any_table(&path, value) {
                    doc.roles.insert(role.to_string(), cx.role(&role_path, v));
                }
            }
            "workspaces" => {
                doc.workspaces = cx.array(&path, value, |cx, p, v| cx.workspace(p, v));
            }
            _ => doc.rules = cx.array(&path, value, |cx, p, v| cx.rule(p, v)),
        }
    }
    Built {
        doc,
        problems: cx.problems,
        spans: cx.spans,
    }
}

#[derive(Default)]
struct Cx {
    problems: Vec<Problem>,
    spans: HashMap<String, usize>,
}

type Entry<'t> = (&'t str, String, &'t Located);

impl Cx {
    fn note(&mut self, path: &str, span: &Option<Range<usize>>) {
        if let Some(span) = span {
            self.spans.entry(path.to_string()).or_insert(span.start);
        }
    }

    fn problem(&mut self, path: &str, message: String) {
        self.problems.push(Problem::new(path, message));
    }

    fn wrong_type(&mut self, path: &str, expected: &str, found: &Located) {
        self.problem(
            path,
            format!("expected {expected}, found {}", found.node.kind()),
        );
    }

    /// The entries of a table, with their paths; every key is allowed.
    fn any_table<'t>(&mut self, path: &str, value: &'t Located) -> Vec<Entry<'t>> {
        self.note(path, &value.span);
        let Node::Table(entries) = &value.node else {
            self.wrong_type(path, "a table", value);
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in entries {
            let name = match (&k.node, &v.node) {
                // JSON null stands for an absent key, as it does for serde's Option.
                (Node::Str(_), Node::Null) => continue,
                (Node::Str(s), _) => s.as_str(),
                _ => continue,
            };
            let p = child(path, name);
            self.note(&p, &k.span);
            self.note(&p, &v.span);
            out.push((name, p, v));
        }
        out
    }

    /// The entries of a table with known keys; unknown keys are reported and left out.
    fn table<'t>(&mut self, path: &str, value: &'t Located, known: &[&str]) -> Vec<Entry<'t>> {
        let entries = self.any_table(path, value);
        let mut out = Vec::new();
        for (name, p, v) in entries {
            if known.contains(&name) {
                out.push((name, p, v));
            } else {
                self.problem(
                    &p,
                    format!(
                        "unknown key {name:?} (expected one of: {})",
                        known.join(", ")
                    ),
                );
            }
        }
        out
    }

    fn require(&mut self, path: &str, present: bool, name: &str) {
        if !present {
            self.problem(&child(path, name), format!("missing required key {name:?}"));
        }
    }

    /// Each element of an array, converted by `each`.
    fn array<T>(
        &mut self,
        path: &str,
        value: &Located,
        mut each: impl FnMut(&mut Self, &str, &Located) -> T,
    ) -> Vec<T> {
        let Node::Array(items) = &value.node else {
            self.wrong_type(path, "an array", value);
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, v) in items.iter().enumerate() {
            let p = item(path, i);
            self.note(&p, &v.span);
            out.push(each(self, &p, v));
        }
        out
    }

    fn string(&mut self, path: &str, value: &Located) -> Option<String> {
        match &value.node {
            Node::Str(s) => Some(s.clone()),
            _ => {
                self.wrong_type(path, "a string", value);
                None
            }
        }
    }

    fn strings(&mut self, path: &str, value: &Located) -> Vec<String> {
        self.array(path, value, |cx, p, v| cx.string(p, v).unwrap_or_default())
    }

    fn int(&mut self, path: &str, value: &Located, min: i128) -> Option<i64> {
        match &value.node {
            Node::Int(i) if *i >= min && *i <= i128::from(i64::MAX) => i64::try_from(*i).ok(),
            Node::Int(_) => {
                self.problem(
                    path,
                    format!("expected an integer from {min} to {}", i64::MAX),
                );
                None
            }
            _ => {
                self.wrong_type(path, "an integer", value);
                None
            }
        }
    }

    fn count(&mut self, path: &str, value: &Located) -> u64 {
        self.int(path, value, 0)
            .and_then(|i| u64::try_from(i).ok())
            .unwrap_or_default()
    }

    fn role(&mut self, path: &str, value: &Located) -> RoleDef {
        let mut role = RoleDef {
            rank: 0,
            description: String::new(),
            permissions: Vec::new(),
            models: Vec::new(),
            max_tokens: 0,
            rpm: 0,
        };
        let known = [
            "rank",
            "description",
            "permissions",
            "models",
            "max_tokens",
            "rpm",
        ];
        let mut has_rank = false;
        let entries = self.table(path, value, &known);
        let is_table = matches!(value.node, Node::Table(_));
        for (name, p, v) in entries {
            match name {
                "rank" => {
                    has_rank = true;
                    role.rank = self.int(&p, v, i128::from(i64::MIN)).unwrap_or_default();
                }
                "description" => role.description = self.string(&p, v).unwrap_or_default(),
                "permissions" => role.permissions = self.strings(&p, v),
                "models" => role.models = self.strings(&p, v),
                "max_tokens" => role.max_tokens = self.count(&p, v),
                _ => role.rpm = self.count(&p, v),
            }
        }
        if is_table {
            self.require(path, has_rank, "rank");
        }
        role
    }

    fn workspace(&mut self, path: &str, value: &Located) -> WorkspaceDef {
        let mut ws = WorkspaceDef {
            name: String::new(),
            description: String::new(),
            projects: Vec::new(),
        };
        let mut has_name = false;
        let is_table = matches!(value.node, Node::Table(_));
        for (name, p, v) in self.table(path, value, &["name", "description", "projects"]) {
            match name {
                "name" => {
                    has_name = true;
                    ws.name = self.string(&p, v).unwrap_or_default();
                }
                "description" => ws.description = self.string(&p, v).unwrap_or_default(),
                _ => ws.projects = self.strings(&p, v),
            }
        }
        if is_table {
            self.require(path, has_name, "name");
        }
        ws
    }

    fn rule(&mut self, path: &str, value: &Located) -> RuleDef {
        let mut rule = RuleDef {
            group: None,
            group_external_id: None,
            role: String::new(),
            workspace: None,
            project: None,
        };
        let known = ["group", "group_external_id", "role", "workspace", "project"];
        let mut has_role = false;
        let is_table = matches!(value.node, Node::Table(_));
        for (name, p, v) in self.table(path, value, &known) {
            // A present key keeps its place even when unusable (placeholder ""), so that the
            // semantic checks see what the author meant to give.
            let s = self.string(&p, v).unwrap_or_default();
            match name {
                "group" => rule.group = Some(s),
                "group_external_id" => rule.group_external_id = Some(s),
                "role" => {
                    has_role = true;
                    rule.role = s;
                }
                "workspace" => rule.workspace = Some(s),
                _ => rule.project = Some(s),
            }
        }
        if is_table {
            self.require(path, has_role, "role");
        }
        rule
    }
}
