//! Scopes: inheritance through effective(), canonical lookup, listing, display.

use super::*;

type EffectiveCase<'a> = (
    &'a CompiledMapping,
    Vec<GroupInfo<'a>>,
    Scope,
    Option<(&'a str, Scope)>,
);
type ScopeCase<'a> = (Option<&'a str>, Option<&'a str>, Result<Scope, &'a str>);

#[test]
fn effective_table() {
    let plain = compiled(BASE);
    let floor = with_default("viewer");
    // (mapping, groups, target, expected role, expected scope of the winning grant)
    let cases: Vec<EffectiveCase<'_>> = vec![
        // org grant holds everywhere
        (
            &plain,
            vec![g("claude-admin")],
            org(),
            Some(("admin", org())),
        ),
        (
            &plain,
            vec![g("claude-admin")],
            ws("sales"),
            Some(("admin", org())),
        ),
        (
            &plain,
            vec![g("claude-admin")],
            proj("legal", "Contracts"),
            Some(("admin", org())),
        ),
        // workspace grant holds in the workspace and its projects, not elsewhere
        (
            &plain,
            vec![g("engineering")],
            ws("Engineering"),
            Some(("member", ws("Engineering"))),
        ),
        (&plain, vec![g("engineering")], ws("legal"), None),
        (&plain, vec![g("engineering")], org(), None),
        (
            &plain,
            vec![g("legal-counsel")],
            ws("legal"),
            Some(("member", ws("legal"))),
        ),
        (
            &plain,
            vec![g("legal-counsel")],
            proj("legal", "Contracts"),
            Some(("member", ws("legal"))),
        ),
        (&plain, vec![g("legal-counsel")], ws("sales"), None),
        // a project grant does not hold at the workspace, nor in other projects' absence
        (&plain, vec![g("legal")], ws("legal"), None),
        (
            &plain,
            vec![g("legal")],
            proj("legal", "Contracts"),
            Some(("viewer", proj("legal", "Contracts"))),
        ),
        (
            &plain,
            vec![g("legal")],
            proj("legal", "litigation"),
            Some(("viewer", proj("legal", "litigation"))),
        ),
        // highest across inherited scopes
        (
            &plain,
            vec![g("legal"), g("legal-counsel")],
            proj("legal", "Contracts"),
            Some(("member", ws("legal"))),
        ),
        (
            &plain,
            vec![g("legal"), g("claude-admin")],
            proj("legal", "Contracts"),
            Some(("admin", org())),
        ),
        (
            &plain,
            vec![g("engineering"), g("claude-admin")],
            ws("Engineering"),
            Some(("admin", org())),
        ),
        // the same role at two scopes: the most specific grant is returned
        (
            &plain,
            vec![g("eng-leads"), g("claude-admin")],
            ws("Engineering"),
            Some(("admin", ws("Engineering"))),
        ),
        // target names compare case-insensitively
        (
            &plain,
            vec![g("engineering")],
            ws("ENGINEERING"),
            Some(("member", ws("Engineering"))),
        ),
        // default_role as a floor
        (
            &floor,
            vec![g("engineering")],
            ws("sales"),
            Some(("viewer", org())),
        ),
        (
            &floor,
            vec![g("engineering")],
            ws("Engineering"),
            Some(("member", ws("Engineering"))),
        ),
        (
            &floor,
            vec![],
            proj("legal", "litigation"),
            Some(("viewer", org())),
        ),
    ];
    for (i, (m, groups, target, want)) in cases.into_iter().enumerate() {
        let grants = m.grants(true, &groups);
        let got = m
            .effective(&grants, &target)
            .map(|g| (g.role.as_str(), g.scope.clone()));
        assert_eq!(got, want, "case {i}: target {target}");
    }
}

#[test]
fn scope_lookup_is_case_insensitive_and_canonical() {
    let m = compiled(BASE);
    let cases: Vec<ScopeCase<'_>> = vec![
        (None, None, Ok(org())),
        (Some(""), None, Ok(org())),
        (Some("engineering"), None, Ok(ws("Engineering"))),
        (Some("ENGINEERING"), Some(""), Ok(ws("Engineering"))),
        (
            Some("Legal"),
            Some("CONTRACTS"),
            Ok(proj("legal", "Contracts")),
        ),
        (
            Some("legal"),
            Some("Litigation"),
            Ok(proj("legal", "litigation")),
        ),
        (Some("nowhere"), None, Err("unknown workspace \"nowhere\"")),
        (
            Some("legal"),
            Some("nope"),
            Err("unknown project \"nope\" in workspace \"legal\""),
        ),
        (
            Some("sales"),
            Some("contracts"),
            Err("unknown project \"contracts\" in workspace \"sales\""),
        ),
        (
            None,
            Some("contracts"),
            Err("project \"contracts\" given without a workspace"),
        ),
    ];
    for (w, p, want) in cases {
        assert_eq!(m.scope(w, p), want.map_err(String::from), "{w:?} {p:?}");
    }
}

#[test]
fn scopes_lists_org_workspaces_and_projects() {
    let m = compiled(BASE);
    assert_eq!(
        m.scopes(),
        vec![
            org(),
            ws("Engineering"),
            ws("legal"),
            proj("legal", "Contracts"),
            proj("legal", "litigation"),
            ws("sales"),
        ]
    );
}

#[test]
fn scope_display_and_json() {
    assert_eq!(org().to_string(), "organization");
    assert_eq!(ws("legal").to_string(), "workspace legal");
    assert_eq!(
        proj("legal", "contracts").to_string(),
        "workspace legal, project contracts"
    );
    let json = |s: &Scope| serde_json::to_string(s).unwrap();
    assert_eq!(json(&org()), "{}");
    assert_eq!(json(&ws("legal")), r#"{"workspace":"legal"}"#);
    assert_eq!(
        json(&proj("legal", "contracts")),
        r#"{"workspace":"legal","project":"contracts"}"#
    );
    let grant = Grant {
        scope: org(),
        role: "admin".into(),
        via: vec!["claude-admin".into()],
    };
    assert_eq!(
        serde_json::to_string(&grant).unwrap(),
        r#"{"scope":{},"role":"admin","via":["claude-admin"]}"#
    );
}
