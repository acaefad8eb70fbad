use super::*;

/// Lines 1-7; snippets appended start at line 8.
const MINI: &str = r#"[roles.admin]
rank = 80
[roles.viewer]
rank = 20
[[workspaces]]
name = "legal"
projects = ["contracts"]
"#;

fn problems(text: &str) -> Vec<Problem> {
    match parse_toml(text) {
        Ok(_) => panic!("expected problems in:\n{text}"),
        Err(problems) => problems,
    }
}

#[test]
fn mini_is_valid() {
    assert!(parse_toml(MINI).is_ok());
}

#[test]
fn each_problem_kind_has_its_line() {
    let rule = |body: &str| format!("{MINI}[[rules]]\n{body}");
    // (text, line, path, message fragment)
    let cases: Vec<(String, usize, &str, &str)> = vec![
        (rule("group = \"a\"\nrole = \"superuser\"\n"), 10, "rules[0].role", "unknown role \"superuser\""),
        (format!("default_role = \"ghost\"\n{MINI}"), 1, "default_role", "unknown role \"ghost\""),
        (rule("group = \"a\"\nrole = \"admin\"\nworkspace = \"nowhere\"\n"), 11, "rules[0].workspace", "unknown workspace \"nowhere\""),
        (
            rule("group = \"a\"\nrole = \"admin\"\nworkspace = \"LEGAL\"\nproject = \"nope\"\n"),
            12,
            "rules[0].project",
            "unknown project \"nope\" in workspace \"legal\"",
        ),
        (rule("group = \"a\"\nrole = \"admin\"\nproject = \"contracts\"\n"), 11, "rules[0].project", "given without a workspace"),
        (rule("group = \"a\"\ngroup_external_id = \"b\"\nrole = \"admin\"\n"), 8, "rules[0]", "not both"),
        (rule("role = \"admin\"\n"), 8, "rules[0]", "must name its group"),
        (rule("group = \"\"\nrole = \"admin\"\n"), 9, "rules[0].group", "must not be empty"),
        (rule("group_external_id = \" \"\nrole = \"admin\"\n"), 9, "rules[0].group_external_id", "must not be empty"),
        (
            rule("group = \"a\"\nrole = \"admin\"\n[[rules]]\ngroup = \"A\"\nrole = \"admin\"\n"),
            11,
            "rules[1]",
            "duplicate rule: same group, role and scope (same as rules[0], line 8)",
        ),
        (
            rule("group_external_id = \"x\"\nrole = \"admin\"\nworkspace = \"legal\"\n[[rules]]\ngroup_external_id = \"x\"\nrole = \"admin\"\nworkspace = \"Legal\"\n"),
            12,
            "rules[1]",
            "same as rules[0], line 8",
        ),
        (format!("{MINI}[[workspaces]]\nname = \"Legal\"\n"), 9, "workspaces[1].name", "duplicate workspace \"Legal\" (same as workspaces[0].name, line 6)"),
        (format!("{MINI}[[workspaces]]\nname = \" \"\n"), 9, "workspaces[1].name", "must not be empty"),
        (
            format!("{MINI}[[workspaces]]\nname = \"x\"\nprojects = [\"p\", \"P\"]\n"),
            10,
            "workspaces[1].projects[1]",
            "duplicate project \"P\" in workspace \"x\"",
        ),
        (format!("{MINI}[roles.Bad_Name]\nrank = 1\n"), 8, "roles.Bad_Name", "must match [a-z0-9][a-z0-9_-]*"),
        (format!("{MINI}[roles.\"a b\"]\nrank = 1\n"), 8, "roles.\"a b\"", "role name \"a b\""),
        (format!("{MINI}[roles.m]\nrank = 1\nmodels = [\"ok-*\", \"no spaces\"]\n"), 10, "roles.m.models[1]", "bad model glob \"no spaces\""),
        (format!("{MINI}[roles.m]\nrank = 1\nmodels = [\n  \"ok-*\",\n  \"\",\n]\n"), 12, "roles.m.models[1]", "must not be empty"),
        (format!("{MINI}[roles.m]\nrank = 1\npermissions = [\"Messages.Create\"]\n"), 10, "roles.m.permissions[0]", "bad permission name"),
        (format!("{MINI}[roles.m]\nrank = 1\npermissions = [\"messages.\"]\n"), 10, "roles.m.permissions[0]", "bad permission name"),
        (format!("{MINI}[roles.m]\nrank = -3\n"), 9, "roles.m.rank", "rank must not be negative"),
        // structural problems
        (format!("{MINI}[[rules]\n"), 8, "", "invalid"),
        (format!("{MINI}[roles.m]\nrank = 1\ncolor = \"red\"\n"), 10, "roles.m.color", "unknown key \"color\""),
        (format!("{MINI}oops = 1\n"), 8, "workspaces[0].oops", "unknown key \"oops\""),
        (format!("extra = true\n{MINI}"), 1, "extra", "unknown key \"extra\""),
        (format!("{MINI}[roles.m]\nrank = \"high\"\n"), 9, "roles.m.rank", "expected an integer, found a string"),
        (format!("{MINI}[roles.m]\nrank = 1\nmax_tokens = -1\n"), 10, "roles.m.max_tokens", "expected an integer from 0"),
        (format!("{MINI}[roles.m]\nrank = 1\nrpm = 1.5\n"), 10, "roles.m.rpm", "found a float"),
        (format!("{MINI}[roles.m]\nrank = 1\nmodels = \"claude-*\"\n"), 10, "roles.m.models", "expected an array"),
        (format!("{MINI}[roles.m]\ndescription = \"x\"\n"), 8, "roles.m.rank", "missing required key \"rank\""),
        (rule("group = \"a\"\n"), 8, "rules[0].role", "missing required key \"role\""),
        (rule("group = 5\nrole = \"admin\"\n"), 9, "rules[0].group", "expected a string, found an integer"),
        (rule("group = \"a\"\nrole = \"admin\"\nworkspace = [\"legal\"]\n"), 11, "rules[0].workspace", "found an array"),
        (format!("{MINI}[[workspaces]]\nname = 7\n"), 9, "workspaces[1].name", "expected a string"),
        (format!("{MINI}[[rules]]\ngroup = \"a\"\n[[workspaces]]\nname = \"w\"\n"), 8, "rules[0].role", "missing required key"),
        (format!("{MINI}[roles]\nx = 1\n"), 9, "roles.x", "expected a table, found an integer"),
        (rule("group = \"a\"\nrole = 2024-01-01\n"), 10, "rules[0].role", "found a date-time"),
        (format!("{MINI}rules = 5\n"), 8, "workspaces[0].rules", "unknown key"),
        (format!("rules = 5\n{MINI}"), 1, "rules", "expected an array, found an integer"),
        // dotted keys create implicit tables; lines still come through
        (format!("roles.m.rank = -1\n{MINI}"), 1, "roles.m.rank", "rank must not be negative"),
    ];
    for (text, line, path, fragment) in cases {
        let found = problems(&text);
        assert!(
            found
                .iter()
                .any(|p| p.line == Some(line) && p.path == path && p.message.contains(fragment)),
            "expected line {line}: {path}: ...{fragment}... in\n{text}\ngot {found:#?}"
        );
        assert_eq!(
            found.len(),
            1,
            "exactly one problem expected for\n{text}\ngot {found:#?}"
        );
    }
}

#[test]
fn every_problem_is_reported_sorted_by_line() {
    let text = format!(
        "default_role = \"ghost\"\nbogus = 1\n{MINI}[roles.m]\nrank = -1\nmodels = [\"\"]\n[[rules]]\ngroup = \"a\"\nrole = \"nope\"\nworkspace = \"nowhere\"\n[[rules]]\nrole = 5\nextra = 1\n"
    );
    let found = problems(&text);
    let summary: Vec<(Option<usize>, &str)> =
        found.iter().map(|p| (p.line, p.path.as_str())).collect();
    assert_eq!(
        summary,
        vec![
            (Some(1), "default_role"),
            (Some(2), "bogus"),
            (Some(11), "roles.m.rank"),
            (Some(12), "roles.m.models[0]"),
            (Some(15), "rules[0].role"),
            (Some(16), "rules[0].workspace"),
            // rules[1]: no group (semantic), wrong type and unknown key (structural); "unknown
            // role" is not reported for the placeholder of the wrongly typed role
            (Some(17), "rules[1]"),
            (Some(18), "rules[1].role"),
            (Some(19), "rules[1].extra"),
        ]
    );
}

#[test]
fn problem_display() {
    let p = Problem {
        line: Some(12),
        path: "rules[2].role".into(),
        message: "unknown role \"superuser\"".into(),
    };
    assert_eq!(
        p.to_string(),
        "line 12: rules[2].role: unknown role \"superuser\""
    );
    let p = Problem {
        line: None,
        path: "default_role".into(),
        message: "x".into(),
    };
    assert_eq!(p.to_string(), "default_role: x");
    let p = Problem {
        line: Some(3),
        path: String::new(),
        message: "syntax".into(),
    };
    assert_eq!(p.to_string(), "line 3: syntax");
}

#[test]
fn json_form_reports_problems_without_lines() {
    let value = serde_json::json!({
        "roles": {"admin": {"rank": 80, "colour": "red"}},
        "rules": [{"group": "a", "role": "superuser"}, {"group": null, "group_external_id": "x", "role": "admin"}],
    });
    let found = parse_json(value).unwrap_err();
    let summary: Vec<(Option<usize>, &str)> =
        found.iter().map(|p| (p.line, p.path.as_str())).collect();
    assert_eq!(
        summary,
        vec![(None, "roles.admin.colour"), (None, "rules[0].role")]
    );
    let found = parse_json(serde_json::json!(["not", "an", "object"])).unwrap_err();
    assert_eq!(found[0].to_string(), "expected a table, found an array");
    let found =
        parse_json(serde_json::json!({"roles": {"a": {"rank": 1, "rpm": u64::MAX}}})).unwrap_err();
    assert_eq!(found[0].path, "roles.a.rpm");
}

#[test]
fn validate_reports_without_lines() {
    let mut d = doc(BASE);
    d.default_role = "ghost".into();
    d.rules[1].workspace = Some("nowhere".into());
    let found = validate(&d);
    let summary: Vec<String> = found.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        summary,
        vec![
            "default_role: unknown role \"ghost\"",
            "rules[1].workspace: unknown workspace \"nowhere\""
        ]
    );
    assert!(validate(&doc(BASE)).is_empty());
    assert!(validate(&MappingDocument::default()).is_empty());
}

fn tricky() -> MappingDocument {
    let mut d = doc(BASE);
    d.default_role = "viewer".into();
    if let Some(admin) = d.roles.get_mut("admin") {
        admin.description =
            "Quotes \" and 'single', back\\slash,\nnewline, tab\t, unicode é ☃".into();
    }
    d.workspaces[0].description = "line one\nline two".into();
    d.rules.push(RuleDef {
        group: Some("Grüppe \"x\"".into()),
        group_external_id: None,
        role: "member".into(),
        workspace: Some("legal".into()),
        project: Some("Contracts".into()),
    });
    d
}

#[test]
fn to_toml_round_trips() {
    for (label, d) in [
        ("base", doc(BASE)),
        ("shipped", doc(SHIPPED)),
        ("tricky", tricky()),
        ("empty", MappingDocument::default()),
    ] {
        let text = to_toml(&d);
        assert_eq!(parse_toml(&text), Ok(d.clone()), "{label}:\n{text}");
        // serde's view of the same text agrees with ours
        assert_eq!(
            toml::from_str::<MappingDocument>(&text).ok(),
            Some(d.clone()),
            "{label}"
        );
        // and the JSON form round-trips through parse_json
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(parse_json(json), Ok(d), "{label} (json)");
    }
    let text = to_toml(&doc(BASE));
    assert!(
        text.starts_with("default_role = \"\"\n\n[roles.owner]\nrank = 100\n"),
        "{text}"
    );
    assert!(text.contains(
        "\n[[rules]]\ngroup_external_id = \"0f1a-AAAA\"\nrole = \"admin\"\nworkspace = \"sales\"\n"
    ));
}

#[test]
fn shipped_mapping_is_valid_and_matches_the_seeds() {
    let d = doc(SHIPPED);
    assert_eq!(
        toml::from_str::<MappingDocument>(SHIPPED).ok(),
        Some(d.clone())
    );
    let ranks: Vec<(&str, i64)> = d.roles.iter().map(|(k, v)| (k.as_str(), v.rank)).collect();
    assert_eq!(
        ranks,
        vec![
            ("admin", 80),
            ("billing", 10),
            ("developer", 60),
            ("member", 40),
            ("owner", 100),
            ("power-user", 50),
            ("viewer", 20)
        ]
    );
    let names: Vec<&str> = d.workspaces.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "engineering",
            "legal",
            "production",
            "staging",
            "development"
        ]
    );
    assert_eq!(d.workspaces[1].projects, vec!["contracts", "litigation"]);
    assert_eq!(d.default_role, "");
    assert_eq!(d.rules.len(), 4);
    let power = &d.roles["power-user"];
    assert_eq!(
        (power.max_tokens, power.rpm, power.models.len()),
        (4096, 60, 3)
    );
    assert!(d.roles["viewer"].models.is_empty() && d.roles["billing"].models.is_empty());
}
