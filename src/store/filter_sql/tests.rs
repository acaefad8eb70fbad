use super::*;
use crate::scim::filter::parse_filter;

fn sql_on(
    backend: Backend,
    kind: ResourceKind,
    f: &str,
) -> Result<(String, Vec<Param>), ProtocolError> {
    let c = compile(backend, kind, &parse_filter(f).unwrap(), 1, false)?;
    Ok((c.sql, c.params))
}

fn sql(kind: ResourceKind, f: &str) -> Result<(String, Vec<Param>), ProtocolError> {
    sql_on(Backend::Sqlite, kind, f)
}

#[test]
fn indexed_attributes_use_their_columns() {
    let (s, p) = sql(
        ResourceKind::User,
        r#"userName eq "Alice@X.com" and externalId eq "E1""#,
    )
    .unwrap();
    assert_eq!(s, "((r.user_name_lower = $1) AND (r.external_id = $2))");
    assert_eq!(
        p,
        vec![Param::Text("alice@x.com".into()), Param::Text("E1".into())]
    );
    let (s, p) = sql(ResourceKind::User, r#"emails.value co "50%_'""#).unwrap();
    assert_eq!(
        s,
        "r.id IN (SELECT e.user_id FROM scim_emails e WHERE (instr(e.value_lower, $1) > 0))"
    );
    assert_eq!(p, vec![Param::Text("50%_'".into())]);
    let (s, _) = sql(ResourceKind::Group, r#"members[value eq "u1"]"#).unwrap();
    assert_eq!(
        s,
        "r.id IN (SELECT m.group_id FROM scim_members m WHERE (m.member_id = $1))"
    );
    let (_, p) = sql(ResourceKind::User, "active eq true").unwrap();
    assert_eq!(p, vec![Param::Bool(true)]);
    let (_, p) = sql(
        ResourceKind::User,
        r#"meta.lastModified ge "2026-01-02T04:04:05+01:00""#,
    )
    .unwrap();
    assert_eq!(p, vec![Param::Text("2026-01-02T03:04:05.000Z".into())]);
    // a bound between two stored milliseconds: compared with the stored times on either side
    let t = "2026-01-02T03:04:05.0004Z";
    let on = |op: &str| {
        sql(
            ResourceKind::User,
            &format!(r#"meta.lastModified {op} "{t}""#),
        )
        .unwrap()
    };
    let (before, after) = ("2026-01-02T03:04:05.000Z", "2026-01-02T03:04:05.001Z");
    for (op, sym, bound) in [
        ("gt", ">=", after),
        ("ge", ">=", after),
        ("lt", "<=", before),
        ("le", "<=", before),
    ] {
        let (s, p) = on(op);
        assert!(s.contains(sym), "{op}: {s}");
        assert_eq!(p, vec![Param::Text(bound.into())], "{op}");
    }
    assert_eq!(on("eq"), ("FALSE".to_string(), vec![]));
    assert_eq!(on("ne"), ("TRUE".to_string(), vec![]));
}

#[test]
fn other_attributes_read_the_document_by_schema_name() {
    let (s, p) = sql(ResourceKind::User, r#"NAME.FAMILYNAME sw "Lid""#).unwrap();
    assert_eq!(
        s,
        "(substr(lower(json_extract(r.doc, '$.\"name\".\"familyName\"')), 1, length($1)) = $1)"
    );
    assert_eq!(p, vec![Param::Text("lid".into())]);
    let (s, _) = sql_on(
        Backend::Postgres,
        ResourceKind::User,
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "m1""#,
    )
    .unwrap();
    assert!(s.contains("#>> '{\"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\",\"manager\",\"value\"}'"), "{s}");
    let (s, p) = sql(
        ResourceKind::User,
        r#"phoneNumbers[type eq "work" and value sw "+1"]"#,
    )
    .unwrap();
    assert!(
        s.starts_with("EXISTS (SELECT 1 FROM json_each(r.doc, '$.\"phoneNumbers\"') je"),
        "{s}"
    );
    assert_eq!(
        p,
        vec![Param::Text("work".into()), Param::Text("+1".into())]
    );
    // an emails value filter naming more than `value` reads the document
    let (s, _) = sql(
        ResourceKind::User,
        r#"emails[type eq "work" and value co "@example.com"]"#,
    )
    .unwrap();
    assert!(s.contains("json_each(r.doc, '$.\"emails\"')"), "{s}");
    let (s, _) = sql(ResourceKind::User, r#"emails[primary eq true]"#).unwrap();
    assert!(
        s.contains("json_type(je.value, '$.\"primary\"') = $1"),
        "{s}"
    );
}

#[test]
fn unknown_or_unsearchable_attributes_are_invalid_filters() {
    for (kind, f) in [
        (ResourceKind::User, r#"nope eq "x""#),
        (ResourceKind::User, r#"name.nope eq "x""#),
        (ResourceKind::User, r#"department eq "x""#),
        (ResourceKind::User, r#"password eq "x""#),
        (ResourceKind::User, r#"name eq "x""#),
        (ResourceKind::User, r#"members.value eq "x""#),
        (ResourceKind::Group, r#"members.display eq "x""#),
        (ResourceKind::User, "active eq \"yes\""),
        (ResourceKind::User, r#"userName gt 5"#),
        (ResourceKind::User, r#"title[value eq "x"]"#),
        (ResourceKind::User, r#"meta.created eq "yesterday""#),
        (ResourceKind::User, r#"emails[type eq "work" and x eq "y"]"#),
    ] {
        let e = sql(kind, f).unwrap_err();
        assert_eq!(
            e.scim_type,
            crate::scim::error::ScimType::InvalidFilter,
            "{f}"
        );
    }
}

#[test]
fn lenient_mode_treats_the_other_types_attributes_as_absent() {
    let f = parse_filter(r#"userName eq "x" or not (userName ne "x")"#).unwrap();
    let c = compile(Backend::Sqlite, ResourceKind::Group, &f, 1, true).unwrap();
    assert_eq!(c.sql, "(FALSE OR (NOT COALESCE(TRUE, FALSE)))");
    let f = parse_filter(r#"nope eq "x""#).unwrap();
    assert!(compile(Backend::Sqlite, ResourceKind::Group, &f, 1, true).is_err());
}
