//! The lookups IdPs make (`eq` on userName, externalId, id, emails.value, group displayName
//! and members.value) use an index with 1,000,000 users: checked from the database's own
//! plan for the exact page query the server runs, not trusted.

use rolecall::scim::filter::parse_filter;
use rolecall::scim::resource::ResourceKind;
use rolecall::store::ListQuery;
use sqlx::Connection;

use crate::both;
use crate::helpers::{Backend, TestApp};

both!(identity_lookups_use_an_index_at_a_million_users);

const USERS: i64 = 1_000_000;
const GROUPS: i64 = 10_000;
const MEMBERSHIPS: i64 = 200_000;

/// 1,000,000 users (each with one e-mail), 10,000 groups and 200,000 memberships, written
/// straight into the tables, then the planner's statistics refreshed.
async fn seed(app: &TestApp) {
    let mut conn = sqlx::AnyConnection::connect(&app.database_url)
        .await
        .expect("connect");
    let (series, active, doc) = match app.backend {
        Backend::Sqlite => (
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {N})",
            "1",
            "'{}'",
        ),
        Backend::Postgres => (
            "WITH n(i) AS (SELECT generate_series(1, {N}))",
            "TRUE",
            "'{}'",
        ),
    };
    let ts = "'2026-01-01T00:00:00.000Z'";
    let statements = [
        format!(
            "{} INSERT INTO scim_users (id, user_name, user_name_lower, external_id, \
             display_name, display_name_lower, active, doc, version, created, last_modified) \
             SELECT 'u' || i, 'User' || i || '@Example.com', 'user' || i || '@example.com', \
             'ext-' || i, 'User ' || i, 'user ' || i, {active}, {doc}, 1, {ts}, {ts} FROM n",
            series.replace("{N}", &USERS.to_string())
        ),
        format!(
            "{} INSERT INTO scim_emails (user_id, value_lower) \
             SELECT 'u' || i, 'user' || i || '@example.com' FROM n",
            series.replace("{N}", &USERS.to_string())
        ),
        format!(
            "{} INSERT INTO scim_groups (id, display_name, display_name_lower, external_id, \
             doc, version, created, last_modified) \
             SELECT 'g' || i, 'Group ' || i, 'group ' || i, 'gext-' || i, {doc}, 1, {ts}, {ts} \
             FROM n",
            series.replace("{N}", &GROUPS.to_string())
        ),
        format!(
            "{} INSERT INTO scim_members (group_id, member_id, member_type) \
             SELECT 'g' || (1 + i % {GROUPS}), 'u' || i, 'User' FROM n",
            series.replace("{N}", &MEMBERSHIPS.to_string())
        ),
        "ANALYZE".to_string(),
    ];
    for sql in statements {
        sqlx::query(&sql)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// A plan line that reads a whole table of ours instead of searching an index.
fn full_scan(backend: Backend, line: &str) -> bool {
    match backend {
        // "SCAN r", "SCAN scim_users", "SCAN e" … (a scan of a subquery's result is fine)
        Backend::Sqlite => line
            .trim_start_matches([' ', '|', '-', '`'])
            .strip_prefix("SCAN ")
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|t| t.starts_with("scim_") || ["r", "e", "m", "g", "c"].contains(&t)),
        Backend::Postgres => line.contains("Seq Scan on scim_"),
    }
}

async fn identity_lookups_use_an_index_at_a_million_users(app: TestApp) {
    seed(&app).await;
    let cases = [
        (
            ResourceKind::User,
            r#"userName eq "USER500000@example.com""#,
        ),
        (ResourceKind::User, r#"externalId eq "ext-42""#),
        (ResourceKind::User, r#"id eq "u999999""#),
        (
            ResourceKind::User,
            r#"emails.value eq "user77@example.com""#,
        ),
        (
            ResourceKind::User,
            r#"emails[value eq "user77@example.com"]"#,
        ),
        (
            ResourceKind::User,
            r#"userName eq "user1@example.com" and active eq true"#,
        ),
        (ResourceKind::Group, r#"displayName eq "Group 5000""#),
        (ResourceKind::Group, r#"externalId eq "gext-7""#),
        (ResourceKind::Group, r#"members[value eq "u123"]"#),
        (ResourceKind::Group, r#"members.value eq "u123""#),
    ];
    for (kind, filter) in cases {
        let q = ListQuery {
            filter: Some(parse_filter(filter).expect("filter")),
            start_index: 1,
            count: 100,
            sort: None,
            cursor: None,
            lenient: false,
        };
        let plan = app.store.explain_list(kind, &q).await.expect("explain");
        assert!(!plan.is_empty(), "{filter}: empty plan");
        let scans: Vec<&String> = plan.iter().filter(|l| full_scan(app.backend, l)).collect();
        assert!(
            scans.is_empty(),
            "{:?} {filter}: full scan at {USERS} users:\n{}",
            app.backend,
            plan.join("\n")
        );
        // and the query answers: exactly the one resource
        let total = match kind {
            ResourceKind::User => app.store.list_users(&q).await.expect("list").total,
            ResourceKind::Group => app.store.list_groups(&q, false).await.expect("list").total,
        };
        assert_eq!(total, 1, "{:?} {filter}", app.backend);
    }
}
