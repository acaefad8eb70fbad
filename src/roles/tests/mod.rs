//! Table tests for the role-mapping module (pure; no I/O besides the shipped mapping file).

mod diff_tests;
mod document_tests;
mod evaluate_tests;
mod resolve_tests;
mod scope_tests;

use super::*;

/// A mapping with enough structure to exercise resolution.
pub(super) const BASE: &str = r#"
[roles.owner]
rank = 100
permissions = ["*"]
models = ["claude-*"]
max_tokens = 8192
rpm = 200

[roles.admin]
rank = 80
permissions = ["messages.create", "chats.read", "members.manage"]
models = ["claude-haiku-*", "claude-sonnet-*", "claude-opus-*"]
max_tokens = 8192
rpm = 200

[roles.member]
rank = 40
permissions = ["messages.create", "chats.read"]
models = ["claude-haiku-*"]
max_tokens = 512
rpm = 10

[roles.alpha]
rank = 40
permissions = ["chats.read"]

[roles.viewer]
rank = 20
permissions = ["chats.read"]

[[workspaces]]
name = "Engineering"

[[workspaces]]
name = "legal"
projects = ["Contracts", "litigation"]

[[workspaces]]
name = "sales"

[[rules]]
group = "claude-admin"
role = "admin"

[[rules]]
group = "engineering"
role = "member"
workspace = "Engineering"

[[rules]]
group = "engineering"
role = "viewer"
workspace = "engineering"

[[rules]]
group = "eng-leads"
role = "admin"
workspace = "engineering"

[[rules]]
group = "legal"
role = "viewer"
workspace = "legal"
project = "contracts"

[[rules]]
group = "legal"
role = "viewer"
workspace = "legal"
project = "litigation"

[[rules]]
group = "legal-counsel"
role = "member"
workspace = "legal"

[[rules]]
group_external_id = "0f1a-AAAA"
role = "admin"
workspace = "sales"

[[rules]]
group = "tie-b"
role = "member"
workspace = "sales"

[[rules]]
group = "tie-a"
role = "alpha"
workspace = "sales"

[[rules]]
group = "platform"
role = "member"
workspace = "engineering"
"#;

pub(super) const SHIPPED: &str = include_str!("../../../mappings/rolecall.toml");

pub(super) fn doc(text: &str) -> MappingDocument {
    match parse_toml(text) {
        Ok(doc) => doc,
        Err(problems) => panic!("{problems:#?}"),
    }
}

pub(super) fn compiled(text: &str) -> CompiledMapping {
    match CompiledMapping::new(doc(text)) {
        Ok(c) => c,
        Err(problems) => panic!("{problems:#?}"),
    }
}

/// `BASE` with `default_role` set.
pub(super) fn with_default(role: &str) -> CompiledMapping {
    compiled(&format!("default_role = {role:?}\n{BASE}"))
}

pub(super) fn g(name: &str) -> GroupInfo<'_> {
    GroupInfo {
        display_name: name,
        external_id: None,
    }
}

pub(super) fn gx<'a>(name: &'a str, id: &'a str) -> GroupInfo<'a> {
    GroupInfo {
        display_name: name,
        external_id: Some(id),
    }
}

pub(super) fn org() -> Scope {
    Scope::default()
}

pub(super) fn ws(w: &str) -> Scope {
    Scope {
        workspace: Some(w.to_string()),
        project: None,
    }
}

pub(super) fn proj(w: &str, p: &str) -> Scope {
    Scope {
        workspace: Some(w.to_string()),
        project: Some(p.to_string()),
    }
}
