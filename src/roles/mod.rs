//! Role mapping: the mapping document (roles, workspaces, rules from IdP groups to roles), its
//! validation, the resolution of a user's groups into roles per scope, access evaluation, and the
//! diff between two documents. Pure: no database, no I/O, no async.
//!
//! Design decisions:
//! - Scopes nest organization > workspace > project; a grant holds at its scope and below.
//!   [`CompiledMapping::grants`] gives the best role at each scope where rules match (per exact
//!   scope); [`CompiledMapping::effective`] takes the best over the target and its ancestors.
//! - Ties in rank are broken by role name (the name that sorts first wins), so results never
//!   depend on rule order or group order.
//! - `default_role` is an organization-wide grant for every active user: an unmapped user holds
//!   exactly it, a mapped user keeps it as a floor (it competes with the org-wide rules by rank).
//!   Inactive users hold nothing, default included.
//! - Group renames: rules naming a group by displayName are not silently re-bound to group ids;
//!   instead every rule that matches no existing group is flagged
//!   ([`CompiledMapping::unmatched_rules`], [`diff::MappingDiff::unmatched_rules`]). The document
//!   stays the single source of truth (what is exported is what is applied), and rules that must
//!   survive renames can use `group_external_id`.
//! - Group names match case-insensitively (Unicode lower-casing), external ids exactly; workspace
//!   and project names in rules and in [`CompiledMapping::scope`] match case-insensitively and
//!   resolve to the names as written in the document.

pub mod diff;
pub mod document;
pub mod evaluate;
pub mod glob;
pub mod resolve;

mod build;
mod tree;
mod validate;
pub(crate) use validate::fold_cow;

#[cfg(test)]
mod tests;

pub use diff::{diff, policy_changes, MappingDiff, RoleChange, UserView};
pub use document::{
    parse_json, parse_toml, to_toml, validate, MappingDocument, Problem, RoleDef, RuleDef,
    WorkspaceDef,
};
pub use evaluate::{evaluate, Decision};
pub use glob::glob_match;
pub use resolve::{CompiledMapping, Grant, GroupInfo, Scope};
pub use validate::uncapped_roles;
