//! Previewing and applying a mapping document against the current directory. Shared by the
//! admin API, `rolecall mappings diff|apply` and `rolecall serve --mappings`.

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

/// A short audit summary of a diff.
fn summary(d: &MappingDiff, version_before: i64) -> Value {
    json!({
        "from_version": version_before,
        "rules_added": d.rules_added,
        "rules_removed": d.rules_removed,
        "roles_added": d.roles_added,
        "roles_removed": d.roles_removed,
        "roles_changed": d.roles_changed,
        "users_affected": d.users.iter().map(|u| &u.user_id).collect::<std::collections::BTreeSet<_>>().len(),
    })
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
