//! Resolution: which roles a user holds where, from the user's groups and a compiled mapping.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::Serialize;

use super::document::{MappingDocument, Problem, RoleDef, RuleDef};
pub use super::evaluate::{evaluate, Decision};
use super::validate::{fold, fold_cow, same_folded, validate};

/// Where a role holds: the organization (both None), a workspace, or a project in a workspace.
/// Names are canonical (as written in the document). Orders organization first, then by
/// workspace, with a workspace before its projects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Scope {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

impl Scope {
    /// The organization-wide scope.
    pub fn org() -> Self {
        Scope::default()
    }

    /// Does a grant at `self` hold at `target`? The organization contains everything; a workspace
    /// contains itself and its projects; a project only itself. Names compare case-insensitively.
    pub fn contains(&self, target: &Scope) -> bool {
        let same = same_folded;
        match (&self.workspace, &target.workspace) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(w), Some(t)) => {
                same(w, t)
                    && match (&self.project, &target.project) {
                        (None, _) => true,
                        (Some(_), None) => false,
                        (Some(p), Some(q)) => same(p, q),
                    }
            }
        }
    }
}

/// "organization", "workspace legal", "workspace legal, project contracts".
impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.workspace, &self.project) {
            (None, _) => f.write_str("organization"),
            (Some(w), None) => write!(f, "workspace {w}"),
            (Some(w), Some(p)) => write!(f, "workspace {w}, project {p}"),
        }
    }
}

/// A role a user holds at one scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    pub scope: Scope,
    pub role: String,
    /// Display names of the user's groups whose rules grant this role at this scope, sorted and
    /// deduplicated; empty when the grant comes from `default_role` alone.
    pub via: Vec<String>,
}

/// A group as the resolver sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupInfo<'a> {
    pub display_name: &'a str,
    pub external_id: Option<&'a str>,
}

/// A grant by reference into the [`CompiledMapping`] it came from (see
/// [`CompiledMapping::grant_refs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRef {
    /// The grant's scope and role, as an index into the mapping's (scope, role) pairs
    /// ([`CompiledMapping::grant_scope`], [`CompiledMapping::grant_role`]).
    pub kind: u32,
    /// Positions, in the groups resolved, of the groups whose rules grant it: in display-name
    /// order, one per name; empty when the grant comes from `default_role` alone.
    pub via: Vec<u32>,
}

/// The organization-wide scope (for a kind out of range, which a caller never has).
static ORG: Scope = Scope {
    workspace: None,
    project: None,
};

/// A validated mapping document with lookup indexes.
#[derive(Debug, Clone)]
pub struct CompiledMapping {
    doc: MappingDocument,
    /// Lower-cased group displayName -> indexes of rules naming it by `group`.
    by_name: HashMap<String, Vec<usize>>,
    /// externalId -> indexes of rules naming it by `group_external_id`.
    by_external_id: HashMap<String, Vec<usize>>,
    /// Lower-cased workspace name -> (canonical name, lower-cased project name -> canonical).
    workspaces: HashMap<String, (String, HashMap<String, String>)>,
    /// Each (canonical scope, role) some rule or `default_role` grants, once: few, however
    /// many rules there are, so what a grant reads of the mapping stays in cache.
    kinds: Vec<(Scope, String)>,
    /// The index in `kinds` of each rule's scope and role.
    rule_kinds: Vec<u32>,
    /// The index in `kinds` of `default_role` at the organization, when there is one.
    default_kind: Option<u32>,
}

impl CompiledMapping {
    /// Validates the document and builds the indexes.
    pub fn new(doc: MappingDocument) -> Result<Self, Vec<Problem>> {
        let problems = validate(&doc);
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut workspaces = HashMap::new();
        for ws in &doc.workspaces {
            let projects = ws.projects.iter().map(|p| (fold(p), p.clone())).collect();
            workspaces.insert(fold(&ws.name), (ws.name.clone(), projects));
        }
        let mut compiled = CompiledMapping {
            doc: MappingDocument::default(),
            by_name: HashMap::new(),
            by_external_id: HashMap::new(),
            workspaces,
            kinds: Vec::new(),
            rule_kinds: Vec::new(),
            default_kind: None,
        };
        let mut kinds: HashMap<(Scope, String), u32> = HashMap::new();
        let mut kind_of = |compiled: &mut CompiledMapping, scope: Scope, role: &str| {
            *kinds
                .entry((scope, role.to_string()))
                .or_insert_with_key(|k| {
                    compiled.kinds.push(k.clone());
                    (compiled.kinds.len() - 1) as u32
                })
        };
        if !doc.default_role.is_empty() {
            compiled.default_kind = Some(kind_of(&mut compiled, Scope::org(), &doc.default_role));
        }
        for (i, rule) in doc.rules.iter().enumerate() {
            if let Some(name) = &rule.group {
                compiled.by_name.entry(fold(name)).or_default().push(i);
            }
            if let Some(id) = &rule.group_external_id {
                compiled
                    .by_external_id
                    .entry(id.clone())
                    .or_default()
                    .push(i);
            }
            let scope = compiled
                .scope(rule.workspace.as_deref(), rule.project.as_deref())
                .unwrap_or_default();
            let kind = kind_of(&mut compiled, scope, &rule.role);
            compiled.rule_kinds.push(kind);
        }
        compiled.doc = doc;
        Ok(compiled)
    }

    pub fn document(&self) -> &MappingDocument {
        &self.doc
    }

    pub fn role(&self, name: &str) -> Option<&RoleDef> {
        self.doc.roles.get(name)
    }

    /// The rank of a role; unknown roles (never in a validated document) rank below all.
    fn rank(&self, role: &str) -> i64 {
        self.role(role).map_or(i64::MIN, |r| r.rank)
    }

    /// Does `a` beat `b`? Higher rank wins; on a tie the role name that sorts first.
    fn beats(&self, a: &str, b: &str) -> bool {
        (self.rank(a), std::cmp::Reverse(a)) > (self.rank(b), std::cmp::Reverse(b))
    }

    /// Canonical scope for names given by a caller (case-insensitive). An empty name counts as
    /// absent. Err(message) for an unknown workspace or project, or a project without workspace.
    pub fn scope(&self, workspace: Option<&str>, project: Option<&str>) -> Result<Scope, String> {
        let workspace = workspace.filter(|w| !w.is_empty());
        let project = project.filter(|p| !p.is_empty());
        let Some(ws) = workspace else {
            return match project {
                Some(p) => Err(format!("project {p:?} given without a workspace")),
                None => Ok(Scope::org()),
            };
        };
        let (canonical, projects) = self
            .workspaces
            .get(fold_cow(ws).as_ref())
            .ok_or_else(|| format!("unknown workspace {ws:?}"))?;
        let project = match project {
            None => None,
            Some(p) => Some(
                projects
                    .get(fold_cow(p).as_ref())
                    .cloned()
                    .ok_or_else(|| format!("unknown project {p:?} in workspace {canonical:?}"))?,
            ),
        };
        Ok(Scope {
            workspace: Some(canonical.clone()),
            project,
        })
    }

    /// Every scope the document declares: the organization, each workspace, each project; sorted.
    pub fn scopes(&self) -> Vec<Scope> {
        let mut scopes = vec![Scope::org()];
        for ws in &self.doc.workspaces {
            let workspace = Some(ws.name.clone());
            scopes.push(Scope {
                workspace: workspace.clone(),
                project: None,
            });
            for p in &ws.projects {
                scopes.push(Scope {
                    workspace: workspace.clone(),
                    project: Some(p.clone()),
                });
            }
        }
        scopes.sort();
        scopes
    }

    /// Indexes of the rules matching one group: by displayName (case-insensitive) or externalId.
    fn rules_of<'s>(&'s self, group: &GroupInfo<'_>) -> impl Iterator<Item = usize> + 's {
        let by_name = self.by_name.get(fold_cow(group.display_name).as_ref());
        let by_id = group.external_id.and_then(|id| self.by_external_id.get(id));
        by_name.into_iter().chain(by_id).flatten().copied()
    }

    /// The user's grants: one per scope where a rule (or `default_role`) gives a role; at each
    /// scope the highest-ranked role among the rules matching any of `groups` (all the user's
    /// groups, direct and nested; the caller expands nesting) at exactly that scope, unless a
    /// grant at an enclosing scope outranks it (then it is left out: it is nobody's effective
    /// role, and the most specific grant containing a scope is always the role there). An
    /// inactive user has none. `default_role`, when set, competes at the organization scope for every
    /// active user (an unmapped user has exactly it; a mapped user keeps it as a floor). Sorted by
    /// scope, organization first. Ties in rank: the role name that sorts first wins.
    pub fn grants(&self, active: bool, groups: &[GroupInfo<'_>]) -> Vec<Grant> {
        self.grant_refs(active, groups)
            .into_iter()
            .map(|r| Grant {
                scope: self.grant_scope(r.kind).clone(),
                role: self.grant_role(r.kind).to_string(),
                via: r
                    .via
                    .iter()
                    .filter_map(|&p| groups.get(p as usize))
                    .map(|g| g.display_name.to_string())
                    .collect(),
            })
            .collect()
    }

    /// [`Self::grants`] by reference: for each grant, its scope and role as an index (see
    /// [`Self::grant_scope`]) and the positions in `groups` of the groups granting it (see
    /// [`GrantRef`]). Nothing is copied, so a caller can keep a user's grants in a few
    /// integers.
    pub fn grant_refs(&self, active: bool, groups: &[GroupInfo<'_>]) -> Vec<GrantRef> {
        if !active {
            return Vec::new();
        }
        // (scope, role, granting group, the index of scope and role, the group's position); a
        // `None` group marks `default_role`, which names no group
        type Hit<'a> = (&'a Scope, &'a str, Option<&'a str>, u32, u32);
        fn key<'h>(h: &Hit<'h>) -> (&'h Scope, &'h str, Option<&'h str>) {
            (h.0, h.1, h.2)
        }
        let mut hits: Vec<Hit<'_>> = Vec::with_capacity(groups.len() * 2);
        if let Some(k) = self.default_kind {
            hits.push((self.grant_scope(k), self.grant_role(k), None, k, 0));
        }
        for (pos, group) in groups.iter().enumerate() {
            for i in self.rules_of(group) {
                if let Some(&k) = self.rule_kinds.get(i) {
                    hits.push((
                        self.grant_scope(k),
                        self.grant_role(k),
                        Some(group.display_name),
                        k,
                        pos as u32,
                    ));
                }
            }
        }
        hits.sort_unstable_by(|a, b| key(a).cmp(&key(b)));
        // one hit per group name: groups of the same name count once
        hits.dedup_by(|a, b| key(a) == key(b));
        let mut grants = Vec::new();
        for by_scope in hits.chunk_by(|a, b| a.0 == b.0) {
            let mut best: Option<&[Hit<'_>]> = None;
            for by_role in by_scope.chunk_by(|a, b| a.1 == b.1) {
                if best.is_none_or(|b| self.beats(by_role[0].1, b[0].1)) {
                    best = Some(by_role);
                }
            }
            if let Some(winner) = best {
                grants.push(GrantRef {
                    kind: winner[0].3,
                    via: winner
                        .iter()
                        .filter(|h| h.2.is_some())
                        .map(|h| h.4)
                        .collect(),
                });
            }
        }
        // A grant that a grant at an enclosing scope outranks is never anyone's effective
        // role: it goes, so that the most specific grant containing a scope is always the
        // role there (the rule a gateway reading a role token applies). Grants are sorted
        // with enclosing scopes first, so each is weighed against those already kept.
        let mut kept: Vec<GrantRef> = Vec::with_capacity(grants.len());
        for g in grants {
            let (scope, role) = (self.grant_scope(g.kind), self.grant_role(g.kind));
            let inherited = self.effective_among(
                kept.iter().map(|k| {
                    let r = self.grant_role(k.kind);
                    (r, self.grant_scope(k.kind), r)
                }),
                scope,
            );
            if inherited.is_none_or(|r| r == role || self.beats(role, r)) {
                kept.push(g);
            }
        }
        kept
    }

    /// The scope of a [`GrantRef::kind`].
    pub fn grant_scope(&self, kind: u32) -> &Scope {
        self.kinds.get(kind as usize).map_or(&ORG, |k| &k.0)
    }

    /// The role of a [`GrantRef::kind`].
    pub fn grant_role(&self, kind: u32) -> &str {
        self.kinds.get(kind as usize).map_or("", |k| k.1.as_str())
    }

    /// How many (scope, role) pairs the mapping grants: [`GrantRef::kind`]s are below it.
    pub fn grant_kinds(&self) -> usize {
        self.kinds.len()
    }

    /// The effective role at `target`: the highest-ranked grant whose scope is the target or
    /// contains it. Ties in rank: the role name that sorts first; for the same role at several
    /// scopes, the most specific scope. Returns the grant that won.
    pub fn effective<'g>(&self, grants: &'g [Grant], target: &Scope) -> Option<&'g Grant> {
        self.effective_among(
            grants.iter().map(|g| (g, &g.scope, g.role.as_str())),
            target,
        )
    }

    /// [`Self::effective`] over grants given as (what to return, scope, role).
    pub fn effective_among<'a, T>(
        &self,
        grants: impl IntoIterator<Item = (T, &'a Scope, &'a str)>,
        target: &Scope,
    ) -> Option<T> {
        let mut best: Option<(T, &Scope, &str)> = None;
        for (it, scope, role) in grants {
            if !scope.contains(target) {
                continue;
            }
            let better = match &best {
                None => true,
                Some((_, b_scope, b_role)) if *b_role == role => scope > *b_scope,
                Some((_, _, b_role)) => self.beats(role, b_role),
            };
            if better {
                best = Some((it, scope, role));
            }
        }
        best.map(|(it, _, _)| it)
    }

    /// The effective role at `target` (see [`Self::effective`]) and the decision for one request
    /// (see [`evaluate`]).
    pub fn evaluate_at(
        &self,
        grants: &[Grant],
        target: &Scope,
        action: &str,
        model: Option<&str>,
        max_tokens: Option<u64>,
    ) -> Decision {
        let role = self.effective(grants, target).map(|g| g.role.as_str());
        self.evaluate_role(role, target, action, model, max_tokens)
    }

    /// The decision for one request (see [`evaluate`]) when `role` is the effective role at
    /// `target`.
    pub fn evaluate_role(
        &self,
        role: Option<&str>,
        target: &Scope,
        action: &str,
        model: Option<&str>,
        max_tokens: Option<u64>,
    ) -> Decision {
        let role = role
            .and_then(|r| self.doc.roles.get_key_value(r))
            .map(|(name, def)| (name.as_str(), def));
        evaluate(role, target, action, model, max_tokens)
    }

    /// Rules that match none of the given groups, with their indexes. A displayName rule stops
    /// matching silently when the group is renamed in the IdP, so these are flagged (by validate
    /// in the CLI, diff, preview and the admin API) rather than bound to group ids behind the
    /// document's back.
    pub fn unmatched_rules<'a>(
        &self,
        groups: impl Iterator<Item = GroupInfo<'a>>,
    ) -> Vec<(usize, RuleDef)> {
        let mut names = HashSet::new();
        let mut ids = HashSet::new();
        for g in groups {
            names.insert(fold(g.display_name));
            if let Some(id) = g.external_id {
                ids.insert(id);
            }
        }
        let matches = |rule: &RuleDef| {
            rule.group
                .as_deref()
                .is_some_and(|n| names.contains(&fold(n)))
                || rule
                    .group_external_id
                    .as_deref()
                    .is_some_and(|id| ids.contains(id))
        };
        self.doc
            .rules
            .iter()
            .enumerate()
            .filter(|(_, rule)| !matches(rule))
            .map(|(i, rule)| (i, rule.clone()))
            .collect()
    }
}
