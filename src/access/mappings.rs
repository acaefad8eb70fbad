//! Previewing and applying a mapping document against the current directory. Shared by the
//! admin API, `rolecall mappings diff|apply` and `rolecall serve --mappings`.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::{Access, AccessError};
use crate::roles::diff::{diff, MappingDiff, UserView};
use crate::roles::document::{MappingDocument, Problem, RuleDef};
use crate::roles::resolve::{CompiledMapping, GroupInfo};
use crate::store::{Actor, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("the mapping document has {} problem(s)", .0.len())]
    Invalid(Vec<Problem>),
    #[error("the mapping changed since version {0}")]
    Stale(i64),
    #[error(transparent)]
    Access(#[from] AccessError),
}

impl From<StoreError> for ApplyError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::PreconditionFailed(v) => ApplyError::Stale(v),
            other => ApplyError::Access(AccessError::Store(other)),
        }
    }
}

/// A short audit summary of a diff. `users_affected` counts the users with any entry in the diff
/// (a change of role, or the same role with a new policy). `default_role` is there only when it
/// changes, as `{"from": old, "to": new}` (null = none).
fn summary(d: &MappingDiff, version_before: i64) -> Value {
    let users: BTreeSet<&str> = d.users.iter().map(|u| u.user_id.as_str()).collect();
    let mut s = json!({
        "from_version": version_before,
        "rules_added": d.rules_added,
        "rules_removed": d.rules_removed,
        "roles_added": d.roles_added,
        "roles_removed": d.roles_removed,
        "roles_changed": d.roles_changed,
        "workspaces_added": d.workspaces_added,
        "workspaces_removed": d.workspaces_removed,
        "projects_added": d.projects_added,
        "projects_removed": d.projects_removed,
        "users_affected": users.len(),
    });
    if let Some((from, to)) = &d.default_role {
        let role = |r: &str| (!r.is_empty()).then(|| r.to_string());
        s["default_role"] = json!({"from": role(from), "to": role(to)});
    }
    s
}

impl Access {
    /// What applying `doc` would change, against the directory as it is now.
    pub fn preview(&self, doc: MappingDocument) -> Result<MappingDiff, ApplyError> {
        let new = CompiledMapping::new(doc).map_err(ApplyError::Invalid)?;
        let old = self.mapping();
        let dir = self.directory();
        let users: Vec<_> = dir.all_users().collect();
        let views = users.iter().map(|u| UserView {
            id: &u.id,
            user_name: &u.user_name,
            active: u.active,
            groups: dir
                .groups_of(&u.id)
                .into_iter()
                .map(|g| GroupInfo {
                    display_name: &g.display_name,
                    external_id: g.external_id.as_deref(),
                })
                .collect(),
        });
        let groups = dir.all_groups().map(|g| GroupInfo {
            display_name: &g.display_name,
            external_id: g.external_id.as_deref(),
        });
        Ok(diff(&old.compiled, &new, views, groups))
    }

    /// Rules of the mapping in force that match no group (renamed or not yet pushed).
    pub fn unmatched_rules(&self) -> Vec<RuleDef> {
        let mapping = self.mapping();
        self.unmatched_rules_of(&mapping.compiled)
            .into_iter()
            .map(|(_, r)| r)
            .collect()
    }

    /// Rules of `mapping` (with their indexes) that match no group of the directory.
    pub fn unmatched_rules_of(&self, mapping: &CompiledMapping) -> Vec<(usize, RuleDef)> {
        let dir = self.directory();
        let groups = dir.all_groups().map(|g| GroupInfo {
            display_name: &g.display_name,
            external_id: g.external_id.as_deref(),
        });
        mapping.unmatched_rules(groups)
    }

    /// Validate, diff and store `doc` in one transaction (if the version is still `expected`),
    /// then make it current here. Returns the new version and the diff.
    pub async fn apply(
        &self,
        doc: MappingDocument,
        expected: Option<i64>,
        actor: &Actor,
    ) -> Result<(i64, MappingDiff), ApplyError> {
        let before = self.mapping().version;
        let d = self.preview(doc.clone())?;
        let value =
            serde_json::to_value(&doc).map_err(|e| AccessError::InvalidMapping(e.to_string()))?;
        let version = self
            .store()
            .put_mapping(&value, expected, summary(&d, before), actor)
            .await?;
        self.catch_up().await?;
        Ok((version, d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roles::resolve::Scope;

    fn diff_of(old: &str, new: &str) -> MappingDiff {
        let compile = |text: &str| {
            CompiledMapping::new(crate::roles::parse_toml(text).expect("valid")).expect("valid")
        };
        let groups = [GroupInfo {
            display_name: "eng",
            external_id: None,
        }];
        let users = [("u1", "alice@example.com"), ("u2", "bob@example.com")]
            .into_iter()
            .map(|(id, user_name)| UserView {
                id,
                user_name,
                active: true,
                groups: if id == "u1" { groups.to_vec() } else { vec![] },
            });
        diff(&compile(old), &compile(new), users, groups.into_iter())
    }

    const OLD: &str = r#"
[roles.member]
rank = 40
models = ["claude-haiku-*", "claude-opus-*"]

[roles.viewer]
rank = 20

[[workspaces]]
name = "legal"
projects = ["contracts"]

[[rules]]
group = "eng"
role = "member"
"#;

    #[test]
    fn summary_records_default_role_workspaces_projects_and_policy_holders() {
        let new = OLD
            .replace(r#", "claude-opus-*""#, "")
            .replace(r#"projects = ["contracts"]"#, r#"projects = ["ip"]"#)
            + "\n[[workspaces]]\nname = \"ops\"\n";
        let new = format!("default_role = \"viewer\"\n{new}");
        let s = summary(&diff_of(OLD, &new), 3);
        assert_eq!(s["from_version"], 3);
        assert_eq!(s["default_role"], json!({"from": null, "to": "viewer"}));
        assert_eq!(s["workspaces_added"], json!(["ops"]));
        assert_eq!(s["workspaces_removed"], json!([]));
        let project = |p: &str| {
            json!(Scope {
                workspace: Some("legal".into()),
                project: Some(p.into())
            })
        };
        assert_eq!(s["projects_added"], json!([project("ip")]));
        assert_eq!(s["projects_removed"], json!([project("contracts")]));
        assert_eq!(s["roles_changed"], json!(["member"]));
        // alice keeps member (its models changed), bob gains the default
        assert_eq!(s["users_affected"], 2);

        // back again: default_role to none; unchanged: no default_role key at all
        let s = summary(&diff_of(&new, OLD), 4);
        assert_eq!(s["default_role"], json!({"from": "viewer", "to": null}));
        assert_eq!(s["workspaces_removed"], json!(["ops"]));
        let s = summary(&diff_of(OLD, OLD), 5);
        assert!(s.get("default_role").is_none(), "{s}");
        assert_eq!(s["users_affected"], 0);
    }
}
