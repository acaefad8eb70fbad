//! In-memory evaluation of filters against JSON documents.

use super::{AttrPath, CompValue, CompareOp, Filter};
use serde_json::{Number, Value};
use std::cmp::Ordering;

/// In-memory evaluation of a filter against one JSON object (a resource, or one element of a
/// multi-valued attribute when evaluating the inside of a value path / PATCH value filter).
///
/// * `case_exact(path)` tells whether string comparison for that attribute is case-sensitive;
///   when it returns false, strings are compared after Unicode lower-casing both sides. Inside a
///   [`Filter::ValuePath`] the closure receives the qualified path: for `emails[type eq "work"]`
///   it is called with `emails.type` (schema of the outer path, `attr = "emails"`,
///   `sub_attr = Some("type")`). When the caller evaluates a PATCH value filter directly against
///   an element, the closure receives the element-relative paths as written (`type`).
/// * Attribute names (and schema URN member keys) are looked up case-insensitively; an exact
///   match wins.
/// * A path with `schema: Some(urn)` is looked up inside the object's member named `urn` when
///   there is such an object member (extension attributes), otherwise at top level.
/// * `eq`/`ne`/`co`/`sw`/`ew` work on strings; `gt`/`ge`/`lt`/`le` on strings (lexicographic,
///   which orders RFC 3339 UTC timestamps correctly) and numbers; booleans support `eq`/`ne`
///   only. Values of different JSON types are never equal (`ne` is true, everything else false).
/// * Multi-valued attributes (JSON arrays) match when ANY element matches (this includes `ne`,
///   per RFC 7644). Elements that are complex objects are compared through their `"value"`
///   sub-attribute when the path has no sub-attribute; the same holds for a single complex
///   value such as the enterprise `manager`.
/// * `pr` is true when the value is present and not null, not an empty string and not an empty
///   array/object (an array or object counts as present when one of its members is).
/// * When the attribute is absent, null or an empty array: `eq null` and `ne <non-null>` are
///   true, everything else is false. When it has a value, `eq null` is false and `ne null` true.
pub fn matches(filter: &Filter, value: &Value, case_exact: &dyn Fn(&AttrPath) -> bool) -> bool {
    match filter {
        Filter::And(l, r) => matches(l, value, case_exact) && matches(r, value, case_exact),
        Filter::Or(l, r) => matches(l, value, case_exact) || matches(r, value, case_exact),
        Filter::Not(inner) => !matches(inner, value, case_exact),
        Filter::Present(path) => lookup(value, path).into_iter().any(is_present),
        Filter::Compare {
            path,
            op,
            value: expected,
        } => compare(value, path, *op, expected, case_exact),
        Filter::ValuePath { path, filter } => {
            let inner_case_exact = |p: &AttrPath| case_exact(&qualify(path, p));
            lookup(value, path).into_iter().any(|v| match v {
                Value::Array(items) => items
                    .iter()
                    .any(|item| item.is_object() && matches(filter, item, &inner_case_exact)),
                Value::Object(_) => matches(filter, v, &inner_case_exact),
                _ => false,
            })
        }
    }
}

/// The path of a sub-attribute `inner` of the multi-valued attribute `outer`.
fn qualify(outer: &AttrPath, inner: &AttrPath) -> AttrPath {
    if inner.schema.is_none() && inner.sub_attr.is_none() {
        AttrPath {
            schema: outer.schema.clone(),
            attr: outer.attr.clone(),
            sub_attr: Some(inner.attr.clone()),
        }
    } else {
        inner.clone()
    }
}

/// Case-insensitive member lookup; an exact match wins.
fn get_ci<'v>(value: &'v Value, key: &str) -> Option<&'v Value> {
    let map = value.as_object()?;
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// The values the path designates: the attribute itself, or its sub-attribute in the attribute
/// (or in each element of it, when it is multi-valued).
fn lookup<'v>(root: &'v Value, path: &AttrPath) -> Vec<&'v Value> {
    let base = match &path.schema {
        Some(urn) => match get_ci(root, urn) {
            Some(ext) if ext.is_object() => ext,
            _ => root,
        },
        None => root,
    };
    let Some(attr) = get_ci(base, &path.attr) else {
        return Vec::new();
    };
    match &path.sub_attr {
        None => vec![attr],
        Some(sub) => match attr {
            Value::Array(items) => items.iter().filter_map(|item| get_ci(item, sub)).collect(),
            Value::Object(_) => get_ci(attr, sub).into_iter().collect(),
            _ => Vec::new(),
        },
    }
}

fn is_present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => items.iter().any(is_present),
        Value::Object(map) => map.values().any(is_present),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

/// Flattens looked-up values into the non-null scalars to compare: array elements, and the
/// `"value"` sub-attribute of complex values.
fn comparables(values: Vec<&Value>) -> Vec<&Value> {
    fn push<'v>(out: &mut Vec<&'v Value>, v: &'v Value) {
        match v {
            Value::Null | Value::Array(_) => {}
            Value::Object(_) => {
                if let Some(inner) = get_ci(v, "value") {
                    if !matches!(inner, Value::Null | Value::Array(_) | Value::Object(_)) {
                        out.push(inner);
                    }
                }
            }
            _ => out.push(v),
        }
    }
    let mut out = Vec::new();
    for v in values {
        match v {
            Value::Array(items) => items.iter().for_each(|item| push(&mut out, item)),
            _ => push(&mut out, v),
        }
    }
    out
}

fn compare(
    root: &Value,
    path: &AttrPath,
    op: CompareOp,
    expected: &CompValue,
    case_exact: &dyn Fn(&AttrPath) -> bool,
) -> bool {
    let actual = comparables(lookup(root, path));
    if actual.is_empty() {
        // Absent: equal to null, not equal to anything else, no order/substring relation.
        return match expected {
            CompValue::Null => op == CompareOp::Eq,
            _ => op == CompareOp::Ne,
        };
    }
    match expected {
        CompValue::Null => op == CompareOp::Ne,
        CompValue::Bool(b) => actual.iter().any(|v| match v {
            Value::Bool(a) => match op {
                CompareOp::Eq => a == b,
                CompareOp::Ne => a != b,
                _ => false,
            },
            _ => op == CompareOp::Ne,
        }),
        CompValue::Number(n) => actual.iter().any(|v| match v {
            Value::Number(a) => number_cmp(a, n).is_some_and(|ord| ordering_matches(ord, op)),
            _ => op == CompareOp::Ne,
        }),
        CompValue::String(s) => {
            let exact = case_exact(path);
            let expected = if exact { s.clone() } else { s.to_lowercase() };
            actual.iter().any(|v| match v {
                Value::String(a) if exact => string_matches(a, &expected, op),
                Value::String(a) => string_matches(&a.to_lowercase(), &expected, op),
                _ => op == CompareOp::Ne,
            })
        }
    }
}

fn string_matches(actual: &str, expected: &str, op: CompareOp) -> bool {
    match op {
        CompareOp::Co => actual.contains(expected),
        CompareOp::Sw => actual.starts_with(expected),
        CompareOp::Ew => actual.ends_with(expected),
        _ => ordering_matches(actual.cmp(expected), op),
    }
}

fn ordering_matches(ord: Ordering, op: CompareOp) -> bool {
    match op {
        CompareOp::Eq => ord == Ordering::Equal,
        CompareOp::Ne => ord != Ordering::Equal,
        CompareOp::Gt => ord == Ordering::Greater,
        CompareOp::Ge => ord != Ordering::Less,
        CompareOp::Lt => ord == Ordering::Less,
        CompareOp::Le => ord != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

/// Exact for integers (i64 / u64), f64 otherwise.
fn number_cmp(a: &Number, b: &Number) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

#[cfg(test)]
mod tests {
    use super::super::{matches, parse_filter, AttrPath, Filter};
    use serde_json::{json, Value};
    use std::cell::RefCell;

    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    fn f(input: &str) -> Filter {
        match parse_filter(input) {
            Ok(f) => f,
            Err(e) => panic!("{input:?}: {e}"),
        }
    }

    fn user() -> Value {
        json!({
            "schemas": [
                "urn:ietf:params:scim:schemas:core:2.0:User",
                ENTERPRISE
            ],
            "id": "2819c223",
            "userName": "BJensen",
            "userType": "Employee",
            "name": { "familyName": "Jensen", "givenName": "Barbara", "middleName": "" },
            "title": "",
            "nickName": null,
            "active": false,
            "emails": [
                { "value": "bjensen@example.com", "type": "work", "primary": true },
                { "value": "babs@jensen.org", "type": "home" }
            ],
            "phoneNumbers": [],
            "x509Certificates": [{ "value": null }],
            "groups": [{ "value": "g1", "display": "Admins" }, { "value": "g2" }],
            "tags": ["alpha", "Beta"],
            "loginCount": 42,
            "score": 3.5,
            "big": 18446744073709551615u64,
            "empty": {},
            "nulls": { "a": null },
            "meta": { "lastModified": "2011-05-13T04:42:34Z", "resourceType": "User" },
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "employeeNumber": "701984",
                "department": "Tour Operations",
                "manager": { "value": "26118915", "displayName": "John Smith" }
            }
        })
    }

    /// `id` is case-exact, everything else case-insensitive (like the SCIM core schema).
    fn schema_case(p: &AttrPath) -> bool {
        p.schema.is_none() && p.sub_attr.is_none() && p.attr.eq_ignore_ascii_case("id")
    }

    fn check(doc: &Value, cases: &[(&str, bool)]) {
        for (input, expected) in cases {
            assert_eq!(
                matches(&f(input), doc, &schema_case),
                *expected,
                "{input} should be {expected}"
            );
        }
    }

    #[test]
    fn string_operators_and_case() {
        check(
            &user(),
            &[
                (r#"userName eq "bjensen""#, true),
                (r#"userName eq "BJensen""#, true),
                (r#"userName eq "bjensen2""#, false),
                (r#"userName ne "bjensen""#, false),
                (r#"userName ne "someone""#, true),
                (r#"userName co "JEN""#, true),
                (r#"userName co "xyz""#, false),
                (r#"userName sw "bj""#, true),
                (r#"userName sw "jen""#, false),
                (r#"userName ew "SEN""#, true),
                (r#"userName ew "bj""#, false),
                (r#"userName gt "a""#, true),
                (r#"userName lt "a""#, false),
                (r#"userName ge "bjensen""#, true),
                (r#"userName le "bjensen""#, true),
                (r#"id eq "2819c223""#, true),
                (r#"id eq "2819C223""#, false),
                (r#"id ne "2819C223""#, true),
                (r#"id sw "2819C""#, false),
                (r#"name.familyName co "ENS""#, true),
                (r#"name.givenName eq "barbara""#, true),
            ],
        );
        // The closure decides: everything case-exact.
        let doc = user();
        assert!(!matches(&f(r#"userName eq "bjensen""#), &doc, &|_| true));
        assert!(matches(&f(r#"userName eq "BJensen""#), &doc, &|_| true));
        // Unicode lower-casing.
        let doc = json!({ "displayName": "ÉCOLE Ärger" });
        assert!(matches(
            &f(r#"displayName eq "école ärger""#),
            &doc,
            &|_| false
        ));
        assert!(!matches(
            &f(r#"displayName eq "école ärger""#),
            &doc,
            &|_| true
        ));
    }

    #[test]
    fn dates_compare_lexicographically() {
        check(
            &user(),
            &[
                (r#"meta.lastModified gt "2011-05-13T04:42:33Z""#, true),
                (r#"meta.lastModified gt "2011-05-13T04:42:34Z""#, false),
                (r#"meta.lastModified ge "2011-05-13T04:42:34Z""#, true),
                (r#"meta.lastModified lt "2012-01-01T00:00:00Z""#, true),
                (r#"meta.lastModified le "2011-05-13T04:42:34Z""#, true),
                (r#"meta.lastModified le "2010-12-31T23:59:59Z""#, false),
            ],
        );
    }

    #[test]
    fn numbers() {
        check(
            &user(),
            &[
                ("loginCount eq 42", true),
                ("loginCount eq 42.0", true),
                ("loginCount ne 41", true),
                ("loginCount ne 42", false),
                ("loginCount gt 41", true),
                ("loginCount gt 42", false),
                ("loginCount ge 42", true),
                ("loginCount lt 43", true),
                ("loginCount le 41", false),
                ("loginCount gt -5", true),
                ("score gt 3", true),
                ("score lt 3.6", true),
                ("score eq 3.5", true),
                ("big gt 18446744073709551614", true),
                ("big gt -1", true),
                ("big eq 18446744073709551615", true),
                ("loginCount co 4", false),
                ("loginCount sw 4", false),
                (r#"loginCount eq "42""#, false),
                (r#"loginCount ne "42""#, true),
                (r#"userName gt 1"#, false),
            ],
        );
    }

    #[test]
    fn booleans() {
        check(
            &user(),
            &[
                ("active eq false", true),
                ("active eq FALSE", true),
                ("active eq true", false),
                ("active ne true", true),
                ("active ne false", false),
                ("active gt true", false),
                ("active lt true", false),
                (r#"active eq "false""#, false),
                ("active pr", true),
                ("emails[primary eq true]", true),
                ("emails.primary eq true", true),
                ("emails.primary eq false", false),
            ],
        );
    }

    #[test]
    fn presence() {
        check(
            &user(),
            &[
                ("userName pr", true),
                ("title pr", false),
                ("nickName pr", false),
                ("missing pr", false),
                ("phoneNumbers pr", false),
                ("x509Certificates pr", false),
                ("emails pr", true),
                ("emails.type pr", true),
                ("emails.display pr", false),
                ("name pr", true),
                ("name.middleName pr", false),
                ("empty pr", false),
                ("nulls pr", false),
                ("loginCount pr", true),
                ("not (title pr)", true),
                (&format!("{ENTERPRISE}:manager pr"), true),
                (&format!("{ENTERPRISE}:costCenter pr"), false),
            ],
        );
    }

    #[test]
    fn missing_and_null() {
        check(
            &user(),
            &[
                (r#"missing ne "x""#, true),
                ("missing ne 1", true),
                ("missing ne null", false),
                ("missing eq null", true),
                (r#"missing eq "x""#, false),
                (r#"missing co "x""#, false),
                (r#"missing gt "x""#, false),
                ("nickName eq null", true),
                (r#"nickName ne "x""#, true),
                ("phoneNumbers eq null", true),
                ("userName eq null", false),
                ("userName ne null", true),
                ("userName gt null", false),
                (r#"name.nickName ne "x""#, true),
                (r#"emails.display ne "x""#, true),
                ("emails.display eq null", true),
            ],
        );
    }

    #[test]
    fn multi_valued_any_match() {
        check(
            &user(),
            &[
                (r#"emails.type eq "home""#, true),
                (r#"emails.type eq "other""#, false),
                (r#"emails.type ne "work""#, true),
                (r#"emails eq "babs@jensen.org""#, true),
                (r#"emails co "example.com""#, true),
                (r#"emails co "example.org""#, false),
                (r#"emails.value ew "jensen.org""#, true),
                (r#"groups eq "g2""#, true),
                (r#"groups.display eq "admins""#, true),
                (r#"groups.display eq "g2""#, false),
                (r#"tags eq "beta""#, true),
                (r#"tags sw "AL""#, true),
                (r#"tags eq "gamma""#, false),
                (
                    r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
                    true,
                ),
            ],
        );
    }

    #[test]
    fn value_paths() {
        check(
            &user(),
            &[
                (
                    r#"emails[type eq "work" and value co "@example.com"]"#,
                    true,
                ),
                (
                    r#"emails[type eq "home" and value co "@example.com"]"#,
                    false,
                ),
                (r#"emails[type eq "WORK"]"#, true),
                (r#"emails[not (type eq "work")]"#, true),
                (r#"emails[type eq "work" or type eq "home"]"#, true),
                (r#"emails[display pr]"#, false),
                (r#"phoneNumbers[type eq "work"]"#, false),
                (r#"missing[type eq "work"]"#, false),
                (r#"not (emails[type eq "other"])"#, true),
                (r#"groups[value eq "g1" and display eq "Admins"]"#, true),
                (
                    r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
                    true,
                ),
                (
                    &format!(r#"{ENTERPRISE}:manager[value eq "26118915"]"#),
                    true,
                ),
            ],
        );
        let group = json!({
            "displayName": "Tour Guides",
            "members": [
                { "value": "2819c223-7f76-453a-919d-413861904646", "display": "Babs" },
                { "value": "902c246b-6245-4190-8e05-00816be7344a" }
            ]
        });
        check(
            &group,
            &[
                (
                    r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#,
                    true,
                ),
                (r#"members[value eq "nope"]"#, false),
                (r#"members eq "902c246b-6245-4190-8e05-00816be7344a""#, true),
            ],
        );
    }

    #[test]
    fn extension_and_core_urn_paths() {
        let lower = ENTERPRISE.to_lowercase();
        check(
            &user(),
            &[
                (
                    &format!(r#"{ENTERPRISE}:department eq "tour operations""#),
                    true,
                ),
                (&format!(r#"{lower}:DEPARTMENT eq "tour operations""#), true),
                (&format!(r#"{ENTERPRISE}:employeeNumber eq "701984""#), true),
                (
                    &format!(r#"{ENTERPRISE}:manager.value eq "26118915""#),
                    true,
                ),
                (&format!(r#"{ENTERPRISE}:manager eq "26118915""#), true),
                (
                    &format!(r#"{ENTERPRISE}:manager.displayName sw "john""#),
                    true,
                ),
                (&format!(r#"{ENTERPRISE}:department eq "Other""#), false),
                (
                    r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "bjensen""#,
                    true,
                ),
                (
                    r#"urn:ietf:params:scim:schemas:core:2.0:User:name.familyName eq "jensen""#,
                    true,
                ),
            ],
        );
    }

    #[test]
    fn attribute_lookup_is_case_insensitive() {
        check(
            &user(),
            &[
                (r#"USERNAME eq "bjensen""#, true),
                (r#"Name.FamilyName eq "jensen""#, true),
                (r#"EMAILS[TYPE eq "work"]"#, true),
                ("LOGINCOUNT eq 42", true),
            ],
        );
        // An exact key match wins over a case-insensitive one.
        let doc = json!({ "userName": "exact", "USERNAME": "other" });
        assert!(matches(&f(r#"userName eq "exact""#), &doc, &|_| true));
    }

    #[test]
    fn logic_and_rfc_examples() {
        check(
            &user(),
            &[
                (r#"title pr and userType eq "Employee""#, false),
                (r#"title pr or userType eq "Employee""#, true),
                (
                    r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
                    true,
                ),
                (
                    r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
                    false,
                ),
                (
                    r#"userType eq "Employee" and (emails.type eq "work")"#,
                    true,
                ),
                (
                    r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
                    true,
                ),
                (r#"userName sw "J""#, false),
                (r#"name.familyName co "O'Malley""#, false),
                (r#"not (userName eq "bjensen")"#, false),
                (r#"not (not (userName eq "bjensen"))"#, true),
            ],
        );
    }

    #[test]
    fn case_exact_closure_receives_qualified_paths() {
        let seen = RefCell::new(Vec::new());
        let record = |p: &AttrPath| {
            seen.borrow_mut().push(p.to_string());
            false
        };
        let doc = user();
        assert!(matches(
            &f(&format!(
                r#"userName eq "x" or emails[type eq "work"] or {ENTERPRISE}:manager[displayName co "smith"]"#
            )),
            &doc,
            &record
        ));
        let seen = seen.into_inner();
        assert_eq!(seen[0], "userName");
        assert!(seen.contains(&"emails.type".to_string()), "{seen:?}");
        // Short-circuit: the enterprise value path is never evaluated.
        assert!(!seen.iter().any(|p| p.contains("displayName")), "{seen:?}");

        let seen = RefCell::new(Vec::new());
        let record = |p: &AttrPath| {
            seen.borrow_mut().push(p.to_string());
            false
        };
        assert!(matches(
            &f(&format!(r#"{ENTERPRISE}:manager[displayName co "SMITH"]"#)),
            &doc,
            &record
        ));
        assert_eq!(
            seen.into_inner(),
            vec![format!("{ENTERPRISE}:manager.displayName")]
        );
    }

    #[test]
    fn evaluating_a_patch_value_filter_against_an_element() {
        let element = json!({ "type": "Work", "value": "bjensen@example.com", "primary": true });
        let filter = f(r#"type eq "work" and primary eq true"#);
        let seen = RefCell::new(Vec::new());
        let record = |p: &AttrPath| {
            seen.borrow_mut().push(p.to_string());
            false
        };
        assert!(matches(&filter, &element, &record));
        assert_eq!(seen.into_inner(), vec!["type".to_string()]);
        assert!(!matches(&filter, &element, &|_| true));
        let member = json!({ "value": "2819c223", "display": "Babs" });
        assert!(matches(&f(r#"value eq "2819c223""#), &member, &|_| true));
    }

    #[test]
    fn non_object_documents() {
        for doc in [json!(null), json!(5), json!("x"), json!([1, 2])] {
            assert!(!matches(&f("a pr"), &doc, &|_| false));
            assert!(!matches(&f("a eq 1"), &doc, &|_| false));
            assert!(matches(&f("a ne 1"), &doc, &|_| false));
            assert!(matches(&f("a eq null"), &doc, &|_| false));
            assert!(!matches(&f("a[b pr]"), &doc, &|_| false));
        }
    }
}
