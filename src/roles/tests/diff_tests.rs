use super::*;

struct User {
    id: &'static str,
    name: &'static str,
    active: bool,
    groups: Vec<GroupInfo<'static>>,
}

fn people() -> Vec<User> {
    vec![
        User {
            id: "u1",
            name: "alice@example.com",
            active: true,
            groups: vec![g("engineering")],
        },
        User {
            id: "u2",
            name: "bob@example.com",
            active: true,
            groups: vec![g("legal")],
        },
        User {
            id: "u3",
            name: "carol@example.com",
            active: false,
            groups: vec![g("engineering")],
        },
        User {
            id: "u4",
            name: "aaron@example.com",
            active: true,
            groups: vec![g("Engineering"), g("claude-admin")],
        },
    ]
}

fn all_groups() -> Vec<GroupInfo<'static>> {
    [
        "claude-admin",
        "engineering",
        "eng-leads",
        "legal",
        "legal-counsel",
        "tie-a",
        "tie-b",
        "platform",
    ]
    .into_iter()
    .map(g)
    .chain(std::iter::once(gx("Sales", "0f1a-AAAA")))
    .collect()
}

fn run(
    old: &CompiledMapping,
    new: &CompiledMapping,
    people: &[User],
    groups: &[GroupInfo<'static>],
) -> MappingDiff {
    let users = people.iter().map(|u| UserView {
        id: u.id,
        user_name: u.name,
        active: u.active,
        groups: u.groups.clone(),
    });
    diff(old, new, users, groups.iter().copied())
}

fn changes(d: &MappingDiff) -> Vec<(&str, Scope, Option<&str>, Option<&str>)> {
    d.users
        .iter()
        .map(|c| {
            (
                c.user_name.as_str(),
                c.scope.clone(),
                c.old.as_deref(),
                c.new.as_deref(),
            )
        })
        .collect()
}

const ADD: &str =
    "\n[[rules]]\ngroup = \"engineering\"\nrole = \"owner\"\nworkspace = \"engineering\"\n";

#[test]
fn identical_documents_make_an_empty_diff() {
    let m = compiled(BASE);
    let d = run(&m, &m, &people(), &all_groups());
    assert!(d.is_empty(), "{d:#?}");
    assert!(d.unmatched_rules.is_empty());
    assert_eq!(d.render_text(), "no changes\n");
    // the same document compiled again: equal definitions, no policy changes, nobody affected
    let again = compiled(BASE);
    let d = run(&m, &again, &people(), &all_groups());
    assert!(d.is_empty(), "{d:#?}");
    assert!(d.users.is_empty() && d.roles_changed.is_empty());
    assert!(d.projects_added.is_empty() && d.projects_removed.is_empty());
    for (name, role) in &m.document().roles {
        assert!(policy_changes(role, role).is_empty(), "{name}");
    }
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["users"], serde_json::json!([]));
    assert_eq!(d.render_text(), "no changes\n");
}

#[test]
fn rule_added_lists_the_affected_users() {
    let old = compiled(BASE);
    let new = compiled(&format!("{BASE}{ADD}"));
    let d = run(&old, &new, &people(), &all_groups());
    assert_eq!(d.rules_added.len(), 1);
    assert_eq!(d.rules_added[0].role, "owner");
    assert!(d.rules_removed.is_empty());
    // sorted by user name; bob (not in the group) and inactive carol are unaffected
    assert_eq!(
        changes(&d),
        vec![
            // aaron's effective role at Engineering was admin (org-wide), not his member
            // grant there, which admin outranks
            (
                "aaron@example.com",
                ws("Engineering"),
                Some("admin"),
                Some("owner")
            ),
            (
                "alice@example.com",
                ws("Engineering"),
                Some("member"),
                Some("owner")
            ),
        ]
    );
    let text = d.render_text();
    assert!(
        text.contains("+ rule group \"engineering\" -> owner in workspace engineering\n"),
        "{text}"
    );
    assert!(
        text.contains("alice@example.com  workspace Engineering: member -> owner\n"),
        "{text}"
    );
}

#[test]
fn rule_removed_lists_the_affected_users() {
    let old = compiled(&format!("{BASE}{ADD}"));
    let new = compiled(BASE);
    let d = run(&old, &new, &people(), &all_groups());
    assert_eq!(d.rules_removed.len(), 1);
    assert!(d.rules_added.is_empty());
    assert_eq!(
        changes(&d),
        vec![
            (
                "aaron@example.com",
                ws("Engineering"),
                Some("owner"),
                Some("admin")
            ),
            (
                "alice@example.com",
                ws("Engineering"),
                Some("owner"),
                Some("member")
            ),
        ]
    );
    assert!(d
        .render_text()
        .contains("- rule group \"engineering\" -> owner in workspace engineering\n"));
    // removing the only rule that maps a group: its users go to none
    let mut smaller = doc(BASE);
    smaller
        .rules
        .retain(|r| r.group.as_deref() != Some("legal"));
    let d = run(
        &compiled(BASE),
        &CompiledMapping::new(smaller).unwrap(),
        &people(),
        &all_groups(),
    );
    assert_eq!(
        changes(&d),
        vec![
            (
                "bob@example.com",
                proj("legal", "Contracts"),
                Some("viewer"),
                None
            ),
            (
                "bob@example.com",
                proj("legal", "litigation"),
                Some("viewer"),
                None
            ),
        ]
    );
    assert!(d
        .render_text()
        .contains("bob@example.com  workspace legal, project Contracts: viewer -> none\n"));
}

#[test]
fn role_renamed() {
    let old = compiled(BASE);
    let renamed = BASE
        .replace("[roles.member]", "[roles.engineer]")
        .replace("role = \"member\"", "role = \"engineer\"");
    let new = compiled(&renamed);
    let d = run(&old, &new, &people(), &all_groups());
    assert_eq!(d.roles_added, vec!["engineer"]);
    assert_eq!(d.roles_removed, vec!["member"]);
    assert!(d.roles_changed.is_empty());
    assert_eq!(d.rules_added.len(), 4);
    assert_eq!(d.rules_removed.len(), 4);
    assert_eq!(
        changes(&d),
        // aaron's member grant at Engineering is outranked by his org-wide admin: renaming
        // member changes nothing for him
        vec![(
            "alice@example.com",
            ws("Engineering"),
            Some("member"),
            Some("engineer")
        ),]
    );
    let text = d.render_text();
    assert!(text.contains("+ role engineer\n- role member\n"), "{text}");
}

#[test]
fn role_definition_workspace_and_default_changes() {
    let old = compiled(BASE);
    let mut changed = doc(BASE);
    if let Some(member) = changed.roles.get_mut("member") {
        member.max_tokens = 1024;
    }
    changed.workspaces[1].projects.push("ip".into());
    changed.workspaces[1].projects.retain(|p| p != "litigation");
    changed
        .rules
        .retain(|r| r.project.as_deref() != Some("litigation"));
    changed.workspaces.push(WorkspaceDef {
        name: "ops".into(),
        description: String::new(),
        projects: vec!["infra".into()],
    });
    changed.default_role = "viewer".into();
    let new = CompiledMapping::new(changed).unwrap();
    let d = run(&old, &new, &people(), &all_groups());
    assert_eq!(d.roles_changed, vec!["member"]);
    assert_eq!(d.workspaces_added, vec!["ops"]);
    assert_eq!(d.workspaces_changed, vec!["legal"]);
    // the projects of the new workspace are not listed again
    assert_eq!(d.projects_added, vec![proj("legal", "ip")]);
    assert_eq!(d.projects_removed, vec![proj("legal", "litigation")]);
    assert_eq!(d.default_role, Some((String::new(), "viewer".to_string())));
    // everyone active without an org-wide role gains the default there; aaron (admin) keeps
    // admin, and member's new max_tokens is nothing to him (admin outranks it at Engineering),
    // but he held admin in the removed litigation project; alice keeps member at Engineering,
    // with a new max_tokens; bob loses the litigation rule
    assert_eq!(
        policy_changes_of(&d),
        vec![
            (
                "aaron@example.com",
                proj("legal", "litigation"),
                Some("admin"),
                None,
                vec![]
            ),
            ("alice@example.com", org(), None, Some("viewer"), vec![]),
            (
                "alice@example.com",
                ws("Engineering"),
                Some("member"),
                Some("member"),
                vec!["max_tokens"]
            ),
            ("bob@example.com", org(), None, Some("viewer"), vec![]),
            (
                "bob@example.com",
                proj("legal", "litigation"),
                Some("viewer"),
                None,
                vec![]
            ),
        ]
    );
    let text = d.render_text();
    assert!(
        text.contains("~ role member (definition changed)\n"),
        "{text}"
    );
    assert!(text.contains("~ default_role: none -> viewer\n"), "{text}");
    assert!(
        text.contains("+ workspace legal, project ip\n- workspace legal, project litigation\n"),
        "{text}"
    );
    assert!(!text.contains("project infra"), "{text}");
    assert!(
        text.contains("alice@example.com  organization: none -> viewer\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "alice@example.com  workspace Engineering: member (policy changed: max_tokens)\n"
        ),
        "{text}"
    );
    assert!(text.contains("5 role change(s) for 3 user(s):\n"), "{text}");
}

/// (user, scope, old, new, policy fields changed) of a diff entry.
type Entry<'d> = (
    &'d str,
    Scope,
    Option<&'d str>,
    Option<&'d str>,
    Vec<&'static str>,
);

/// Each entry of a diff, with the policy fields that changed.
fn policy_changes_of(d: &MappingDiff) -> Vec<Entry<'_>> {
    d.users
        .iter()
        .map(|c| {
            (
                c.user_name.as_str(),
                c.scope.clone(),
                c.old.as_deref(),
                c.new.as_deref(),
                c.policy_changed.clone(),
            )
        })
        .collect()
}

#[test]
fn policy_change_marks_the_holders_affected() {
    // admin keeps its name and rules, but loses sonnet and opus and most of its max_tokens (the
    // change a black-box audit found reported with no users at all)
    let old = compiled(BASE);
    let mut changed = doc(BASE);
    if let Some(admin) = changed.roles.get_mut("admin") {
        admin.models = vec!["claude-haiku-*".into()];
        admin.max_tokens = 512;
    }
    let new = CompiledMapping::new(changed).unwrap();
    let mut people = people();
    people.push(User {
        id: "u5",
        name: "dora@example.com",
        active: false,
        groups: vec![g("claude-admin")],
    });
    let d = run(&old, &new, &people, &all_groups());
    assert_eq!(d.roles_changed, vec!["admin"]);
    assert!(d.rules_added.is_empty() && d.rules_removed.is_empty());
    // only aaron holds admin (org-wide, through claude-admin); alice and bob hold other roles,
    // carol and dora are inactive
    assert_eq!(
        policy_changes_of(&d),
        vec![(
            "aaron@example.com",
            org(),
            Some("admin"),
            Some("admin"),
            vec!["models", "max_tokens"]
        )]
    );
    let text = d.render_text();
    assert!(
        text.contains("1 role change(s) for 1 user(s):\naaron@example.com  organization: admin (policy changed: models, max_tokens)\n"),
        "{text}"
    );
    // JSON: the entry says what changed; the other keys are as for a change of role
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(
        json["users"],
        serde_json::json!([{
            "user_id": "u4",
            "user_name": "aaron@example.com",
            "scope": {},
            "old": "admin",
            "new": "admin",
            "policy_changed": ["models", "max_tokens"]
        }])
    );

    // a user holding the role at several scopes has an entry at each
    let mut changed = doc(BASE);
    if let Some(viewer) = changed.roles.get_mut("viewer") {
        viewer.permissions.push("messages.create".into());
        viewer.rpm = 5;
    }
    let d = run(
        &old,
        &CompiledMapping::new(changed).unwrap(),
        &people,
        &all_groups(),
    );
    assert_eq!(
        policy_changes_of(&d),
        vec![
            ("bob@example.com", proj("legal", "Contracts"), Some("viewer"), Some("viewer"), vec!["permissions", "rpm"]),
            ("bob@example.com", proj("legal", "litigation"), Some("viewer"), Some("viewer"), vec!["permissions", "rpm"]),
        ],
        "alice's engineering group also maps to viewer, but member wins there: she does not hold it"
    );

    // rank: a change that leaves every winner in place still reaches the holders; one that
    // makes the role win somewhere is a change of role there, reported as before
    let with_viewer_rank = |rank: i64| {
        let mut changed = doc(BASE);
        if let Some(viewer) = changed.roles.get_mut("viewer") {
            viewer.rank = rank;
        }
        CompiledMapping::new(changed).unwrap()
    };
    let d = run(&old, &with_viewer_rank(30), &people, &all_groups());
    assert_eq!(
        policy_changes_of(&d),
        vec![
            (
                "bob@example.com",
                proj("legal", "Contracts"),
                Some("viewer"),
                Some("viewer"),
                vec!["rank"]
            ),
            (
                "bob@example.com",
                proj("legal", "litigation"),
                Some("viewer"),
                Some("viewer"),
                vec!["rank"]
            ),
        ]
    );
    let d = run(&old, &with_viewer_rank(50), &people, &all_groups());
    assert_eq!(
        policy_changes_of(&d),
        vec![
            (
                "alice@example.com",
                ws("Engineering"),
                Some("member"),
                Some("viewer"),
                vec![]
            ),
            (
                "bob@example.com",
                proj("legal", "Contracts"),
                Some("viewer"),
                Some("viewer"),
                vec!["rank"]
            ),
            (
                "bob@example.com",
                proj("legal", "litigation"),
                Some("viewer"),
                Some("viewer"),
                vec!["rank"]
            ),
        ]
    );
    let json = serde_json::to_value(&d).unwrap();
    assert!(
        json["users"][0].get("policy_changed").is_none(),
        "a change of role has the keys it always had: {json}"
    );

    // holders are counted after the change: a user moved off the changed role by a new rule has
    // the change of role only
    let mut changed = doc(&format!("{BASE}{ADD}"));
    if let Some(member) = changed.roles.get_mut("member") {
        member.rpm = 20;
    }
    let d = run(
        &old,
        &CompiledMapping::new(changed).unwrap(),
        &people,
        &all_groups(),
    );
    assert_eq!(
        policy_changes_of(&d),
        vec![
            (
                "aaron@example.com",
                ws("Engineering"),
                Some("admin"),
                Some("owner"),
                vec![]
            ),
            (
                "alice@example.com",
                ws("Engineering"),
                Some("member"),
                Some("owner"),
                vec![]
            ),
        ]
    );
}

#[test]
fn description_only_changes_affect_nobody() {
    let old = compiled(BASE);
    let mut changed = doc(BASE);
    for role in changed.roles.values_mut() {
        role.description = "reworded".into();
    }
    // reordering models or permissions changes no decision either
    if let Some(admin) = changed.roles.get_mut("admin") {
        admin.models.reverse();
        admin.permissions.reverse();
    }
    let new = CompiledMapping::new(changed).unwrap();
    let d = run(&old, &new, &people(), &all_groups());
    assert_eq!(d.roles_changed.len(), 5, "every definition was edited");
    assert!(d.users.is_empty(), "{:#?}", d.users);
    for (name, role) in &new.document().roles {
        let before = old.role(name).unwrap();
        assert_eq!(policy_changes(before, role), Vec::<&str>::new(), "{name}");
    }
    let text = d.render_text();
    assert!(
        text.contains("~ role admin (definition changed)\n"),
        "{text}"
    );
    assert!(!text.contains("role change(s)"), "{text}");
    assert!(!text.contains("policy changed"), "{text}");
}

#[test]
fn group_renamed_in_the_idp_flags_the_rule() {
    // Okta renamed "engineering" to "Engineering Team"; the mapping still names "engineering".
    let m = compiled(BASE);
    let groups: Vec<GroupInfo<'static>> = all_groups()
        .into_iter()
        .map(|g| {
            if g.display_name == "engineering" {
                GroupInfo {
                    display_name: "Engineering Team",
                    ..g
                }
            } else {
                g
            }
        })
        .collect();
    let alice = vec![User {
        id: "u1",
        name: "alice@example.com",
        active: true,
        groups: vec![g("Engineering Team")],
    }];
    let d = run(&m, &m, &alice, &groups);
    assert!(d.is_empty(), "nothing changes between identical documents");
    let rules: Vec<&str> = d
        .unmatched_rules
        .iter()
        .filter_map(|r| r.group.as_deref())
        .collect();
    assert_eq!(rules, vec!["engineering", "engineering"]);
    assert_eq!(d.unmatched_rule_indexes, vec![1, 2]);
    let text = d.render_text();
    assert!(
        text.contains(
            "! rule 1 matches no group: group \"engineering\" -> member in workspace Engineering\n"
        ),
        "{text}"
    );

    // Renaming a group whose rule uses the external id changes nothing.
    let groups: Vec<GroupInfo<'static>> = all_groups()
        .into_iter()
        .map(|g| {
            if g.external_id.is_some() {
                GroupInfo {
                    display_name: "Sales EMEA",
                    ..g
                }
            } else {
                g
            }
        })
        .collect();
    assert!(run(&m, &m, &[], &groups).unmatched_rules.is_empty());

    // The fix in the new document: name the new displayName; alice gets her role back.
    let fixed = compiled(&BASE.replace("group = \"engineering\"", "group = \"engineering team\""));
    let d = run(
        &m,
        &fixed,
        &alice,
        &all_groups()
            .into_iter()
            .map(|g| {
                if g.display_name == "engineering" {
                    GroupInfo {
                        display_name: "Engineering Team",
                        ..g
                    }
                } else {
                    g
                }
            })
            .collect::<Vec<_>>(),
    );
    assert!(d.unmatched_rules.is_empty(), "{:#?}", d.unmatched_rules);
    assert_eq!(
        changes(&d),
        vec![("alice@example.com", ws("Engineering"), None, Some("member"))]
    );
}

#[test]
fn diff_serializes() {
    let old = compiled(BASE);
    let new = compiled(&format!("{BASE}{ADD}"));
    let d = run(&old, &new, &people(), &all_groups());
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(
        json["users"][0]["scope"],
        serde_json::json!({"workspace": "Engineering"})
    );
    assert_eq!(json["rules_added"][0]["role"], "owner");
    assert!(json["default_role"].is_null());
}

/// A removed workspace takes away what its users held there, by a rule of its own or by
/// inheritance from the organization (found by an audit: only holders of a rule there were
/// listed, though everyone with an org-wide role lost access to it).
#[test]
fn a_removed_workspace_lists_everyone_who_held_a_role_in_it() {
    let old = compiled(BASE);
    let mut changed = doc(BASE);
    changed.workspaces.retain(|w| w.name != "sales");
    changed
        .rules
        .retain(|r| r.workspace.as_deref() != Some("sales"));
    let new = CompiledMapping::new(changed).unwrap();
    let d = run(&old, &new, &people(), &all_groups());
    assert_eq!(d.workspaces_removed, vec!["sales"]);
    // aaron held admin in sales through claude-admin; alice and bob held nothing there;
    // inactive carol holds nothing anywhere
    assert_eq!(
        changes(&d),
        vec![("aaron@example.com", ws("sales"), Some("admin"), None)]
    );
}
