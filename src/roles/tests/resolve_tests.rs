use super::*;

type Expected<'a> = Vec<(Scope, &'a str, Vec<&'a str>)>;

fn grants_as_tuples(grants: &[Grant]) -> Vec<(Scope, String, Vec<String>)> {
    grants
        .iter()
        .map(|g| (g.scope.clone(), g.role.clone(), g.via.clone()))
        .collect()
}

fn check(
    m: &CompiledMapping,
    label: &str,
    active: bool,
    groups: &[GroupInfo<'_>],
    want: Expected<'_>,
) {
    let got = grants_as_tuples(&m.grants(active, groups));
    let want: Vec<(Scope, String, Vec<String>)> = want
        .into_iter()
        .map(|(s, r, v)| (s, r.to_string(), v.into_iter().map(String::from).collect()))
        .collect();
    assert_eq!(got, want, "{label}");
}

#[test]
fn grants_table() {
    let m = compiled(BASE);
    let cases: Vec<(&str, bool, Vec<GroupInfo<'_>>, Expected<'_>)> = vec![
        (
            "unmapped user, no default",
            true,
            vec![g("nothing")],
            vec![],
        ),
        ("no groups, no default", true, vec![], vec![]),
        (
            "org-wide rule",
            true,
            vec![g("claude-admin")],
            vec![(org(), "admin", vec!["claude-admin"])],
        ),
        (
            "rank order: two rules of one group at one scope, higher rank wins",
            true,
            vec![g("engineering")],
            vec![(ws("Engineering"), "member", vec!["engineering"])],
        ),
        (
            "rank order: two groups at one scope, higher rank wins; via names the winner's groups",
            true,
            vec![g("engineering"), g("eng-leads")],
            vec![(ws("Engineering"), "admin", vec!["eng-leads"])],
        ),
        (
            "via lists every group granting the winning role, sorted and deduplicated",
            true,
            vec![g("platform"), g("engineering"), g("platform")],
            vec![(ws("Engineering"), "member", vec!["engineering", "platform"])],
        ),
        (
            "case-insensitive group names; via shows the group's own display name",
            true,
            vec![g("ENGINEERING")],
            vec![(ws("Engineering"), "member", vec!["ENGINEERING"])],
        ),
        (
            "inactive user: no grants even with groups",
            false,
            vec![g("claude-admin"), g("engineering")],
            vec![],
        ),
        (
            "a workspace grant outranked by an org-wide one is left out (nobody's effective role)",
            true,
            vec![g("engineering"), g("claude-admin")],
            vec![(org(), "admin", vec!["claude-admin"])],
        ),
        (
            "project grants outranked by their workspace's are left out",
            true,
            vec![g("legal"), g("legal-counsel")],
            vec![(ws("legal"), "member", vec!["legal-counsel"])],
        ),
        (
            "project rules, canonical project names",
            true,
            vec![g("Legal")],
            vec![
                (proj("legal", "Contracts"), "viewer", vec!["Legal"]),
                (proj("legal", "litigation"), "viewer", vec!["Legal"]),
            ],
        ),
        (
            "external-id rule matches the exact id, whatever the display name",
            true,
            vec![gx("Sales Team (renamed)", "0f1a-AAAA")],
            vec![(ws("sales"), "admin", vec!["Sales Team (renamed)"])],
        ),
        (
            "external ids compare exactly",
            true,
            vec![gx("Sales", "0f1a-aaaa")],
            vec![],
        ),
        (
            "an external-id rule does not match a display name",
            true,
            vec![g("0f1a-AAAA")],
            vec![],
        ),
        (
            "a group matching by name and another by id",
            true,
            vec![gx("engineering", "x-1"), gx("Sales", "0f1a-AAAA")],
            vec![
                (ws("Engineering"), "member", vec!["engineering"]),
                (ws("sales"), "admin", vec!["Sales"]),
            ],
        ),
        (
            "tie in rank: the role name that sorts first wins, whatever the group order",
            true,
            vec![g("tie-b"), g("tie-a")],
            vec![(ws("sales"), "alpha", vec!["tie-a"])],
        ),
        (
            "tie in rank, other group order",
            true,
            vec![g("tie-a"), g("tie-b")],
            vec![(ws("sales"), "alpha", vec!["tie-a"])],
        ),
    ];
    for (label, active, groups, want) in cases {
        check(&m, label, active, &groups, want);
    }
}

#[test]
fn default_role_table() {
    let m = with_default("viewer");
    let cases: Vec<(&str, bool, Vec<GroupInfo<'_>>, Expected<'_>)> = vec![
        (
            "unmapped user gets exactly the default",
            true,
            vec![g("nothing")],
            vec![(org(), "viewer", vec![])],
        ),
        (
            "user with no groups gets the default",
            true,
            vec![],
            vec![(org(), "viewer", vec![])],
        ),
        (
            "inactive user gets nothing, not even the default",
            false,
            vec![g("nothing")],
            vec![],
        ),
        (
            "a higher org-wide rule beats the default",
            true,
            vec![g("claude-admin")],
            vec![(org(), "admin", vec!["claude-admin"])],
        ),
        (
            "a mapped user keeps the default as an org-wide floor",
            true,
            vec![g("legal")],
            vec![
                (org(), "viewer", vec![]),
                (proj("legal", "Contracts"), "viewer", vec!["legal"]),
                (proj("legal", "litigation"), "viewer", vec!["legal"]),
            ],
        ),
    ];
    for (label, active, groups, want) in cases {
        check(&m, label, active, &groups, want);
    }
    // The default outranks a lower org-wide rule; a rule granting the default's own role names
    // its groups in via.
    let m = compiled(&format!(
        "default_role = \"member\"\n{BASE}\n[[rules]]\ngroup = \"readers\"\nrole = \"viewer\"\n\n[[rules]]\ngroup = \"members\"\nrole = \"member\"\n"
    ));
    check(
        &m,
        "default beats lower rule",
        true,
        &[g("readers")],
        vec![(org(), "member", vec![])],
    );
    check(
        &m,
        "rule with default's role",
        true,
        &[g("members")],
        vec![(org(), "member", vec!["members"])],
    );
}

#[test]
fn unmatched_rules_flags_rules_without_a_group() {
    let m = compiled(BASE);
    let groups = [
        g("Claude-Admin"),
        g("engineering"),
        gx("Sales (renamed)", "0f1a-AAAA"),
        g("legal"),
        g("legal-counsel"),
        g("tie-a"),
        g("tie-b"),
    ];
    let unmatched = m.unmatched_rules(groups.iter().copied());
    let indexes: Vec<usize> = unmatched.iter().map(|(i, _)| *i).collect();
    // eng-leads (3) and platform (10) match no group
    assert_eq!(indexes, vec![3, 10]);
    assert_eq!(unmatched[0].1.group.as_deref(), Some("eng-leads"));
    assert_eq!(
        m.unmatched_rules(std::iter::empty()).len(),
        m.document().rules.len()
    );
}

#[test]
fn compile_rejects_invalid_documents() {
    let mut d = doc(BASE);
    d.rules[0].role = "superuser".into();
    let problems = CompiledMapping::new(d).unwrap_err();
    assert_eq!(problems.len(), 1);
    assert_eq!(
        problems[0].to_string(),
        "rules[0].role: unknown role \"superuser\""
    );
    let m = compiled(BASE);
    assert_eq!(m.role("admin").map(|r| r.rank), Some(80));
    assert!(m.role("nobody").is_none());
}

#[test]
fn evaluate_at_combines_effective_and_evaluate() {
    let m = compiled(BASE);
    let grants = m.grants(true, &[g("engineering")]);
    let d = m.evaluate_at(
        &grants,
        &ws("Engineering"),
        "messages.create",
        Some("claude-haiku-4-20250514"),
        Some(4000),
    );
    assert!(d.allowed);
    assert_eq!(
        (d.role.as_deref(), d.max_tokens, d.rpm),
        (Some("member"), Some(512), Some(10))
    );
    let d = m.evaluate_at(&grants, &ws("sales"), "messages.create", None, None);
    assert!(!d.allowed);
    assert_eq!(d.reason.as_deref(), Some("no role in workspace sales"));
}
