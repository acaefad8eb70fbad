//! Filters that name at most one user by a unique key: `id eq "…"`, `userName eq "…"`
//! (unique case-insensitively) or `externalId eq "…"` (unique per resource type). These are
//! the lookups an IdP makes before every create and during reconciliation, and the ones the
//! server can answer from its in-memory directory (see `access::user_docs`).

use super::filter::{CompValue, CompareOp, Filter};
use super::schema::USER_SCHEMA;

/// A unique key of a user, as written in the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserKey<'a> {
    /// `id`: compared exactly.
    Id(&'a str),
    /// `userName`: compared case-insensitively (`caseExact: false`).
    UserName(&'a str),
    /// `externalId`: compared exactly (`caseExact: true`).
    ExternalId(&'a str),
}

/// The key `filter` looks a user up by, if it is exactly one `eq` comparison of a string
/// with `id`, `userName` or `externalId` (attribute names case-insensitive, with or without
/// the core User schema URN). Anything else (`and`, other operators, other attributes,
/// non-string values) is `None`: a general query.
pub fn user_key(filter: &Filter) -> Option<UserKey<'_>> {
    let Filter::Compare {
        path,
        op: CompareOp::Eq,
        value: CompValue::String(value),
    } = filter
    else {
        return None;
    };
    if path.sub_attr.is_some()
        || !path
            .schema
            .as_deref()
            .is_none_or(|s| s.eq_ignore_ascii_case(USER_SCHEMA))
    {
        return None;
    }
    let a = path.attr.as_str();
    if a.eq_ignore_ascii_case("id") {
        Some(UserKey::Id(value))
    } else if a.eq_ignore_ascii_case("userName") {
        Some(UserKey::UserName(value))
    } else if a.eq_ignore_ascii_case("externalId") {
        Some(UserKey::ExternalId(value))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::filter::parse_filter;

    fn key(f: &str) -> Option<UserKey<'static>> {
        let f: &'static Filter = Box::leak(Box::new(parse_filter(f).unwrap()));
        user_key(f)
    }

    #[test]
    fn unique_keys_are_recognised() {
        assert_eq!(
            key(r#"userName eq "Alice""#),
            Some(UserKey::UserName("Alice"))
        );
        assert_eq!(key(r#"USERNAME EQ "a""#), Some(UserKey::UserName("a")));
        assert_eq!(key(r#"id eq "x-1""#), Some(UserKey::Id("x-1")));
        assert_eq!(
            key(r#"externalId eq "00u1""#),
            Some(UserKey::ExternalId("00u1"))
        );
        assert_eq!(
            key(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "a""#),
            Some(UserKey::UserName("a"))
        );
        assert_eq!(
            key(r#"userName eq "with \"quotes\"""#),
            Some(UserKey::UserName("with \"quotes\""))
        );
    }

    #[test]
    fn everything_else_is_a_general_query() {
        for f in [
            r#"userName ne "a""#,
            r#"userName sw "a""#,
            r#"userName eq "a" and active eq true"#,
            r#"userName eq "a" or userName eq "b""#,
            r#"not (userName eq "a")"#,
            r#"displayName eq "a""#,
            r#"emails.value eq "a@example.com""#,
            r#"emails[value eq "a@example.com"]"#,
            r#"name.givenName eq "a""#,
            "userName eq null",
            "externalId eq 5",
            "userName pr",
            r#"urn:ietf:params:scim:schemas:core:2.0:Group:id eq "a""#,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "1""#,
        ] {
            assert_eq!(key(f), None, "{f}");
        }
    }
}
