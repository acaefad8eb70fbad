use super::*;

fn role(permissions: &[&str], models: &[&str], max_tokens: u64, rpm: u64) -> RoleDef {
    RoleDef {
        rank: 1,
        description: String::new(),
        permissions: permissions.iter().map(|s| s.to_string()).collect(),
        models: models.iter().map(|s| s.to_string()).collect(),
        max_tokens,
        rpm,
    }
}

#[test]
fn evaluate_table() {
    let member = role(
        &["messages.create", "chats.read"],
        &["claude-haiku-*"],
        512,
        10,
    );
    let owner = role(&["*"], &["claude-*"], 8192, 200);
    let uncapped = role(&["messages.create"], &["*"], 0, 0);
    let viewer = role(&["chats.read"], &[], 0, 0);
    let no_models = role(&["messages.create"], &[], 1000, 5);
    let haiku = Some("claude-haiku-4-20250514");
    let opus = Some("claude-opus-4-20250514");
    let legal = ws("legal");

    type Want<'a> = (
        bool,
        Option<&'a str>,
        Option<u64>,
        Option<u64>,
        Option<&'a str>,
    );
    type Case<'a> = (
        Option<(&'a str, &'a RoleDef)>,
        &'a str,
        Option<&'a str>,
        Option<u64>,
        Want<'a>,
    );
    let cases: Vec<Case<'_>> = vec![
        // no role
        (
            None,
            "messages.create",
            haiku,
            Some(100),
            (false, None, None, None, Some("no role in workspace legal")),
        ),
        // allowed model call: granted = min(asked, cap), rpm from the role
        (
            Some(("member", &member)),
            "messages.create",
            haiku,
            Some(100),
            (true, Some("member"), Some(100), Some(10), None),
        ),
        (
            Some(("member", &member)),
            "messages.create",
            haiku,
            Some(4096),
            (true, Some("member"), Some(512), Some(10), None),
        ),
        (
            Some(("member", &member)),
            "messages.create",
            haiku,
            None,
            (true, Some("member"), Some(512), Some(10), None),
        ),
        // model ids compare case-insensitively
        (
            Some(("member", &member)),
            "messages.create",
            Some("Claude-Haiku-4"),
            None,
            (true, Some("member"), Some(512), Some(10), None),
        ),
        // disallowed model
        (
            Some(("member", &member)),
            "messages.create",
            opus,
            Some(100),
            (
                false,
                Some("member"),
                None,
                None,
                Some("model claude-opus-4-20250514 is not allowed for role member"),
            ),
        ),
        // missing permission
        (
            Some(("member", &member)),
            "keys.manage",
            None,
            None,
            (
                false,
                Some("member"),
                None,
                None,
                Some("role member lacks permission keys.manage"),
            ),
        ),
        (
            Some(("viewer", &viewer)),
            "messages.create",
            haiku,
            None,
            (
                false,
                Some("viewer"),
                None,
                None,
                Some("role viewer lacks permission messages.create"),
            ),
        ),
        // a model call under another action still needs messages.create
        (
            Some(("viewer", &viewer)),
            "chats.read",
            haiku,
            None,
            (
                false,
                Some("viewer"),
                None,
                None,
                Some("role viewer lacks permission messages.create"),
            ),
        ),
        // empty models list = no models
        (
            Some(("nomodels", &no_models)),
            "messages.create",
            haiku,
            None,
            (
                false,
                Some("nomodels"),
                None,
                None,
                Some("model claude-haiku-4-20250514 is not allowed for role nomodels"),
            ),
        ),
        // "*" permissions
        (
            Some(("owner", &owner)),
            "billing.view",
            None,
            None,
            (true, Some("owner"), Some(8192), Some(200), None),
        ),
        (
            Some(("owner", &owner)),
            "messages.create",
            opus,
            Some(10_000),
            (true, Some("owner"), Some(8192), Some(200), None),
        ),
        (
            Some(("owner", &owner)),
            "messages.create",
            Some("gpt-4"),
            None,
            (
                false,
                Some("owner"),
                None,
                None,
                Some("model gpt-4 is not allowed for role owner"),
            ),
        ),
        // cap 0 = no cap: granted = asked, or None; rpm 0 = None
        (
            Some(("uncapped", &uncapped)),
            "messages.create",
            opus,
            Some(100_000),
            (true, Some("uncapped"), Some(100_000), None, None),
        ),
        (
            Some(("uncapped", &uncapped)),
            "messages.create",
            opus,
            None,
            (true, Some("uncapped"), None, None, None),
        ),
        // a plain action (no model)
        (
            Some(("viewer", &viewer)),
            "chats.read",
            None,
            None,
            (true, Some("viewer"), None, None, None),
        ),
    ];
    for (i, (role, action, model, asked, want)) in cases.into_iter().enumerate() {
        let d = evaluate(role, &legal, action, model, asked);
        let got = (
            d.allowed,
            d.role.as_deref(),
            d.max_tokens,
            d.rpm,
            d.reason.as_deref(),
        );
        assert_eq!(got, want, "case {i}: {action} {model:?}");
    }
    let d = evaluate(None, &org(), "chats.read", None, None);
    assert_eq!(d.reason.as_deref(), Some("no role in organization"));
    let d = evaluate(None, &proj("legal", "contracts"), "chats.read", None, None);
    assert_eq!(
        d.reason.as_deref(),
        Some("no role in workspace legal, project contracts")
    );
}

#[test]
fn shipped_mapping_behaves_like_the_seeds() {
    let m = compiled(SHIPPED);
    let eval = |groups: &[GroupInfo<'_>], w: Option<&str>, p: Option<&str>, model: Option<&str>| {
        let scope = m.scope(w, p).unwrap();
        let grants = m.grants(true, groups);
        m.evaluate_at(&grants, &scope, "messages.create", model, Some(10_000))
    };
    let opus = Some("claude-opus-4-20250514");
    let haiku = Some("claude-haiku-4-20250514");
    // claude-admin -> admin everywhere, all three families, 8192 cap
    let d = eval(&[g("claude-admin")], Some("production"), None, opus);
    assert_eq!(
        (d.allowed, d.role.as_deref(), d.max_tokens, d.rpm),
        (true, Some("admin"), Some(8192), Some(200))
    );
    // engineering -> member in engineering only: haiku, 512 tokens, 10 rpm
    let d = eval(&[g("Engineering")], Some("Engineering"), None, haiku);
    assert_eq!(
        (d.allowed, d.role.as_deref(), d.max_tokens, d.rpm),
        (true, Some("member"), Some(512), Some(10))
    );
    assert!(!eval(&[g("engineering")], Some("engineering"), None, opus).allowed);
    assert!(!eval(&[g("engineering")], Some("legal"), None, haiku).allowed);
    // legal -> viewer on the legal projects: no direct API
    let d = eval(&[g("legal")], Some("legal"), Some("contracts"), haiku);
    assert_eq!((d.allowed, d.role.as_deref()), (false, Some("viewer")));
    let grants = m.grants(true, &[g("legal")]);
    let scope = m.scope(Some("legal"), Some("litigation")).unwrap();
    assert!(
        m.evaluate_at(&grants, &scope, "chats.read", None, None)
            .allowed
    );
    assert!(m
        .effective(&grants, &m.scope(Some("legal"), None).unwrap())
        .is_none());
    // unmapped users have nothing
    assert!(m.grants(true, &[g("marketing")]).is_empty());
}
