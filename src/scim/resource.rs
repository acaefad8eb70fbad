//! Validation and canonicalisation of User and Group documents against the schema table,
//! extraction of the indexed fields, and rendering of stored resources back to SCIM JSON.
//!
//! A stored document is the client's JSON with attribute names in canonical case, values
//! type-checked, read-only and write-only attributes removed, and attributes the server does
//! not model kept as they came. `id`, `meta` and group `members` live outside the document.

use serde_json::{Map, Value};

use super::error::ProtocolError;
use super::schema::{
    find_attr, AttrDef, AttrType, Mutability, COMMON_ATTRS, ENTERPRISE_ATTRS,
    ENTERPRISE_USER_SCHEMA, GROUP_ATTRS, GROUP_SCHEMA, USER_ATTRS, USER_SCHEMA,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    User,
    Group,
}

impl ResourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::User => "User",
            ResourceKind::Group => "Group",
        }
    }
    pub fn endpoint(self) -> &'static str {
        match self {
            ResourceKind::User => "Users",
            ResourceKind::Group => "Groups",
        }
    }
    pub fn core_schema(self) -> &'static str {
        match self {
            ResourceKind::User => USER_SCHEMA,
            ResourceKind::Group => GROUP_SCHEMA,
        }
    }
    pub fn core_attrs(self) -> &'static [AttrDef] {
        match self {
            ResourceKind::User => USER_ATTRS,
            ResourceKind::Group => GROUP_ATTRS,
        }
    }
    /// Extension schemas this resource type accepts, with their attributes.
    pub fn extensions(self) -> &'static [(&'static str, &'static [AttrDef])] {
        match self {
            ResourceKind::User => &[(ENTERPRISE_USER_SCHEMA, ENTERPRISE_ATTRS)],
            ResourceKind::Group => &[],
        }
    }
    /// The attribute definition for a (possibly URN-qualified) top-level name.
    pub fn attr(self, schema: Option<&str>, name: &str) -> Option<&'static AttrDef> {
        match schema {
            None => find_attr(COMMON_ATTRS, name).or_else(|| find_attr(self.core_attrs(), name)),
            Some(urn) if urn.eq_ignore_ascii_case(self.core_schema()) => {
                find_attr(COMMON_ATTRS, name).or_else(|| find_attr(self.core_attrs(), name))
            }
            Some(urn) => self
                .extensions()
                .iter()
                .find(|(id, _)| id.eq_ignore_ascii_case(urn))
                .and_then(|(_, attrs)| find_attr(attrs, name)),
        }
    }
    /// The canonical extension URN for a key, if the key names one of this type's extensions.
    pub fn extension(self, key: &str) -> Option<(&'static str, &'static [AttrDef])> {
        self.extensions()
            .iter()
            .find(|(id, _)| id.eq_ignore_ascii_case(key))
            .copied()
    }
}

/// Whether `urn` names a schema extension rolecall does not model, such as Entra ID's
/// `urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User`: any `urn:` outside
/// the core schemas' and SCIM messages' namespaces that neither is, nor starts with, nor is
/// the start of a known schema's URN (so `urn:ietf:params:scim:schemas:core:2.0` and
/// `...:enterprise:2.0:User:manager` are never taken for one).
/// Such an extension's object is kept as sent, listed in `schemas`, and changed by PATCH
/// like any attribute rolecall does not model.
pub fn is_foreign_extension(urn: &str) -> bool {
    let lower = urn.to_ascii_lowercase();
    let known = [USER_SCHEMA, GROUP_SCHEMA, ENTERPRISE_USER_SCHEMA].map(str::to_ascii_lowercase);
    lower.starts_with("urn:")
        && lower.len() > "urn:".len()
        && !lower.starts_with("urn:ietf:params:scim:api:")
        && !lower.starts_with("urn:ietf:params:scim:schemas:core:")
        && !known
            .iter()
            .any(|k| k.starts_with(&lower) || lower.starts_with(k.as_str()))
}

/// Whether a PATCH path names a whole extension object rather than an attribute inside one:
/// a known extension's URN, or a foreign one ending with a resource type's name
/// (`...:2.0:User`), as schema URNs do.
pub fn is_whole_extension(path: &str) -> bool {
    let ends_with_type = ["User", "Group"].iter().any(|t| {
        path.len() > t.len()
            && path.is_char_boundary(path.len() - t.len() - 1)
            && path[path.len() - t.len() - 1..].eq_ignore_ascii_case(&format!(":{t}"))
    });
    [ResourceKind::User, ResourceKind::Group]
        .iter()
        .any(|k| k.extension(path).is_some())
        || (ends_with_type && is_foreign_extension(path))
}

/// The key of `doc` that holds the extension `urn`: the canonical URN of a known extension,
/// or for a foreign one the key already in `doc` (compared case-insensitively), else `urn`
/// as written. None when `urn` is not an extension of `kind`.
pub fn extension_key(kind: ResourceKind, doc: &Map<String, Value>, urn: &str) -> Option<String> {
    if let Some((canonical, _)) = kind.extension(urn) {
        return Some(canonical.to_string());
    }
    is_foreign_extension(urn).then(|| {
        doc.keys()
            .find(|k| k.eq_ignore_ascii_case(urn))
            .cloned()
            .unwrap_or_else(|| urn.to_string())
    })
}

/// `schemas` of a stored resource: its core schema, the known extensions it holds, then the
/// foreign ones it holds (in the document's order).
pub fn schemas_of(kind: ResourceKind, doc: &Map<String, Value>) -> Value {
    let mut schemas = vec![Value::String(kind.core_schema().to_string())];
    for (urn, _) in kind.extensions() {
        if doc.get(*urn).is_some_and(Value::is_object) {
            schemas.push(Value::String(urn.to_string()));
        }
    }
    for (k, v) in doc {
        if v.is_object() && is_foreign_extension(k) {
            schemas.push(Value::String(k.clone()));
        }
    }
    Value::Array(schemas)
}

/// Members of a group as the client sent them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRef {
    pub value: String,
    /// "User" or "Group" when the client said; otherwise resolved by the store.
    pub kind: Option<String>,
}

/// A validated User or Group document plus the fields the store indexes.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalized {
    pub doc: Map<String, Value>,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    /// Users only.
    pub user_name: String,
    pub active: bool,
    pub emails: Vec<String>,
}

/// Validate and canonicalise a client document for a create or a replace.
pub fn normalize(kind: ResourceKind, input: Value) -> Result<Normalized, ProtocolError> {
    let Value::Object(obj) = input else {
        return Err(ProtocolError::invalid_syntax(
            "the request body must be a JSON object",
        ));
    };
    // PostgreSQL cannot store U+0000 in text; refused on both back-ends alike
    if obj.iter().any(|(k, v)| k.contains('\0') || has_nul(v)) {
        return Err(ProtocolError::invalid_value(
            "text may not contain the character U+0000 (NUL)",
        ));
    }
    let mut doc = Map::new();
    for (key, value) in obj {
        if key.eq_ignore_ascii_case("schemas") {
            doc.insert("schemas".into(), check_schemas(value)?);
            continue;
        }
        if key.eq_ignore_ascii_case("id") || key.eq_ignore_ascii_case("meta") {
            continue; // server-assigned; RFC 7643 §3.1 says clients' values are ignored
        }
        if let Some((urn, attrs)) = kind.extension(&key) {
            let Value::Object(ext) = value else {
                if value.is_null() {
                    continue;
                }
                return Err(ProtocolError::invalid_value(format!(
                    "\"{urn}\" must be an object"
                )));
            };
            let mut out = Map::new();
            for (k, v) in ext {
                put_attr(&mut out, attrs, k, v, urn)?;
            }
            if !out.is_empty() {
                doc.insert(urn.to_string(), Value::Object(out));
            }
            continue;
        }
        if is_foreign_extension(&key) {
            // an extension rolecall does not model: an object kept as sent, once per URN
            // whatever its case (PATCH finds it case-insensitively), dropped when empty
            match value {
                Value::Null => continue,
                Value::Object(ext) if ext.is_empty() => continue,
                Value::Object(_) => {}
                _ => {
                    return Err(ProtocolError::invalid_value(format!(
                        "\"{key}\" names a schema extension and must be an object"
                    )))
                }
            }
            if doc.keys().any(|k| k.eq_ignore_ascii_case(&key)) {
                return Err(ProtocolError::invalid_value(format!(
                    "the extension \"{key}\" is given twice (URNs compare case-insensitively)"
                )));
            }
            doc.insert(key, value);
            continue;
        }
        if kind == ResourceKind::Group && key.eq_ignore_ascii_case("members") {
            // validated here, stored in the membership table by the caller
            let members = parse_members(&value)?;
            let arr = members
                .into_iter()
                .map(|m| {
                    let mut o = Map::new();
                    o.insert("value".into(), Value::String(m.value));
                    if let Some(k) = m.kind {
                        o.insert("type".into(), Value::String(k));
                    }
                    Value::Object(o)
                })
                .collect();
            doc.insert("members".into(), Value::Array(arr));
            continue;
        }
        let attrs: &[AttrDef] = if find_attr(COMMON_ATTRS, &key).is_some() {
            COMMON_ATTRS
        } else {
            kind.core_attrs()
        };
        put_attr(&mut doc, attrs, key, value, kind.as_str())?;
    }
    if !doc.contains_key("schemas") {
        return Err(ProtocolError::invalid_value(format!(
            "\"schemas\" is required and must include \"{}\"",
            kind.core_schema()
        )));
    }
    let schemas_ok = doc
        .get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|a| {
            a.iter().any(|s| {
                s.as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(kind.core_schema()))
            })
        });
    if !schemas_ok {
        return Err(ProtocolError::invalid_value(format!(
            "\"schemas\" must include \"{}\"",
            kind.core_schema()
        )));
    }
    extract(kind, doc)
}

fn extract(kind: ResourceKind, mut doc: Map<String, Value>) -> Result<Normalized, ProtocolError> {
    let get_str = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_owned);
    let external_id = get_str("externalId");
    let display_name = get_str("displayName");
    let mut n = Normalized {
        external_id,
        display_name,
        user_name: String::new(),
        active: true,
        emails: Vec::new(),
        doc: Map::new(),
    };
    match kind {
        ResourceKind::User => {
            n.user_name = get_str("userName")
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| ProtocolError::invalid_value("\"userName\" is required"))?;
            n.active = doc.get("active").and_then(Value::as_bool).unwrap_or(true);
            doc.insert("active".into(), Value::Bool(n.active));
            if let Some(Value::Array(emails)) = doc.get("emails") {
                for e in emails {
                    if let Some(v) = e.get("value").and_then(Value::as_str) {
                        let v = v.to_lowercase();
                        if !n.emails.contains(&v) {
                            n.emails.push(v);
                        }
                    }
                }
            }
        }
        ResourceKind::Group => {
            if n.display_name
                .as_deref()
                .is_none_or(|s| s.trim().is_empty())
            {
                return Err(ProtocolError::invalid_value("\"displayName\" is required"));
            }
        }
    }
    check_size(&doc)?;
    n.doc = doc;
    Ok(n)
}

/// The most a stored document (a group's without its members, which are rows) may take as
/// JSON text. Users and groups as IdPs send them take 1–3 KB; without a bound, PATCHes adding
/// attributes or extensions grew one user to 20 MB, and every copy of it in memory with it
/// (found by an audit).
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

fn check_size(doc: &Map<String, Value>) -> Result<(), ProtocolError> {
    /// Counts bytes written, keeping none.
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut size = Count(0);
    for (k, v) in doc.iter().filter(|(k, _)| k.as_str() != "members") {
        size.0 += k.len() + 4;
        let _ = serde_json::to_writer(&mut size, v);
    }
    if size.0 > MAX_DOCUMENT_BYTES {
        return Err(ProtocolError::invalid_value(format!(
            "the resource would take {} bytes; at most {MAX_DOCUMENT_BYTES} are accepted",
            size.0
        )));
    }
    Ok(())
}

fn check_schemas(value: Value) -> Result<Value, ProtocolError> {
    match value {
        Value::Array(items) if items.iter().all(Value::is_string) => Ok(Value::Array(items)),
        _ => Err(ProtocolError::invalid_value(
            "\"schemas\" must be an array of schema URNs",
        )),
    }
}

/// Parse a `members` value: an array of `{"value": id, "type"?: "User"|"Group"}`.
pub fn parse_members(value: &Value) -> Result<Vec<MemberRef>, ProtocolError> {
    let items: Vec<&Value> = match value {
        Value::Array(a) => a.iter().collect(),
        Value::Object(_) => vec![value],
        Value::Null => Vec::new(),
        _ => {
            return Err(ProtocolError::invalid_value(
                "\"members\" must be an array of objects with a \"value\"",
            ))
        }
    };
    let mut out: Vec<MemberRef> = Vec::with_capacity(items.len());
    // duplicates are dropped (the first one stays); a set, as lists run to 100,000 members
    let mut seen: std::collections::HashSet<&str> =
        std::collections::HashSet::with_capacity(items.len());
    for item in items {
        let Value::Object(o) = item else {
            return Err(ProtocolError::invalid_value(
                "each member must be an object with a \"value\"",
            ));
        };
        let field = |name: &str| {
            o.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        };
        let value = match field("value") {
            Some(Value::String(s)) if !s.is_empty() => s,
            _ => {
                return Err(ProtocolError::invalid_value(
                    "each member needs a non-empty string \"value\" (the member's id)",
                ))
            }
        };
        let kind = match field("type") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) if t.eq_ignore_ascii_case("user") => Some("User".to_string()),
            Some(Value::String(t)) if t.eq_ignore_ascii_case("group") => Some("Group".to_string()),
            Some(other) => {
                return Err(ProtocolError::invalid_value(format!(
                    "member type must be \"User\" or \"Group\", not {other}"
                )))
            }
        };
        if seen.insert(value) {
            out.push(MemberRef {
                value: value.clone(),
                kind,
            });
        }
    }
    Ok(out)
}

/// Insert `key: value` into `out`, checked against `attrs` and with the key in canonical case.
/// Unknown attributes are kept as sent; null means "unassigned" and removes the attribute.
fn put_attr(
    out: &mut Map<String, Value>,
    attrs: &[AttrDef],
    key: String,
    value: Value,
    owner: &str,
) -> Result<(), ProtocolError> {
    let Some(def) = find_attr(attrs, &key) else {
        if !value.is_null() {
            out.insert(key, value);
        }
        return Ok(());
    };
    if def.mutability == Mutability::ReadOnly && def.name != "id" {
        return Ok(()); // read-only attributes sent by a client are ignored (RFC 7643 §2.2)
    }
    if def.mutability == Mutability::WriteOnly {
        return Ok(()); // password: accepted and discarded, never stored
    }
    if let Some(v) = check_value(def, value, owner)? {
        out.insert(def.name.to_string(), v);
    } else {
        out.remove(def.name);
    }
    Ok(())
}

fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// The most values a multi-valued attribute of a resource may have (group members are not an
/// attribute of the document: they are rows, and unlimited). A user with more e-mail addresses
/// or phone numbers than this is a mistake or an attack, and PATCH work grows with the count.
pub const MAX_VALUES: usize = 1000;

pub fn too_many_values(name: &str, n: usize) -> ProtocolError {
    ProtocolError::invalid_value(format!(
        "attribute \"{name}\" has {n} values; at most {MAX_VALUES} are accepted"
    ))
}

/// Check one attribute value against its definition. `Ok(None)` means unassigned.
pub fn check_value(
    def: &AttrDef,
    value: Value,
    owner: &str,
) -> Result<Option<Value>, ProtocolError> {
    if value.is_null() {
        return Ok(None);
    }
    if def.multi {
        let items = match value {
            Value::Array(items) => items,
            // a single value where an array belongs: accepted as a one-element array
            other => vec![other],
        };
        if items.len() > MAX_VALUES {
            return Err(too_many_values(def.name, items.len()));
        }
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            if let Some(v) = check_single(def, item, owner)? {
                out.push(v);
            }
        }
        if out.is_empty() {
            return Ok(None);
        }
        let primaries = out
            .iter()
            .filter(|v| v.get("primary") == Some(&Value::Bool(true)))
            .count();
        if primaries > 1 {
            // RFC 7643 §2.4: "primary" true appears no more than once (a PATCH that adds a
            // primary value clears the others instead, RFC 7644 §3.5.2)
            return Err(ProtocolError::invalid_value(format!(
                "attribute \"{}\" of {owner} has {primaries} values with \"primary\": true; \
                 at most one may be primary",
                def.name
            )));
        }
        return Ok(Some(Value::Array(out)));
    }
    check_single(def, value, owner)
}

fn type_error(def: &AttrDef, owner: &str, got: &Value) -> ProtocolError {
    let got = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    let want = match def.ty {
        AttrType::String | AttrType::Reference | AttrType::DateTime => "a string",
        AttrType::Boolean => "a boolean",
        AttrType::Decimal => "a number",
        AttrType::Integer => "an integer",
        AttrType::Complex => "an object",
    };
    ProtocolError::invalid_value(format!(
        "attribute \"{}\" of {owner} must be {want}, not {got}",
        def.name
    ))
}

fn check_single(def: &AttrDef, value: Value, owner: &str) -> Result<Option<Value>, ProtocolError> {
    match (def.ty, value) {
        (_, Value::Null) => Ok(None),
        (AttrType::String | AttrType::Reference | AttrType::DateTime, Value::String(s)) => {
            Ok(Some(Value::String(s)))
        }
        (AttrType::Boolean, Value::Bool(b)) => Ok(Some(Value::Bool(b))),
        // Entra ID sends booleans as "True"/"False"
        (AttrType::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("true") => {
            Ok(Some(Value::Bool(true)))
        }
        (AttrType::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("false") => {
            Ok(Some(Value::Bool(false)))
        }
        (AttrType::Decimal, Value::Number(n)) => Ok(Some(Value::Number(n))),
        (AttrType::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => {
            Ok(Some(Value::Number(n)))
        }
        // Entra sends manager as a bare id string; store the canonical complex form
        (AttrType::Complex, Value::String(s)) if def.name == "manager" => {
            let mut m = Map::new();
            m.insert("value".into(), Value::String(s));
            Ok(Some(Value::Object(m)))
        }
        (AttrType::Complex, Value::Object(obj)) => {
            let mut out = Map::new();
            let owner = format!("{owner}.{}", def.name);
            for (k, v) in obj {
                put_attr(&mut out, def.sub, k, v, &owner)?;
            }
            if out.is_empty() {
                Ok(None)
            } else {
                Ok(Some(Value::Object(out)))
            }
        }
        (_, other) => Err(type_error(def, owner, &other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn user_is_canonicalised_and_extracted() {
        let n = normalize(
            ResourceKind::User,
            json!({
                "schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
                "UserName": "Alice@Example.com",
                "id": "client-chosen", "meta": {"x": 1},
                "active": "False",
                "password": "hunter2",
                "emails": [{"Value": "Alice@Example.com", "type": "work", "primary": true}],
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user": {"Department": "R&D", "manager": "boss-id"},
                "customThing": {"kept": true},
                "nickName": null,
            }),
        )
        .unwrap();
        assert_eq!(n.user_name, "Alice@Example.com");
        assert!(!n.active);
        assert_eq!(n.emails, vec!["alice@example.com"]);
        assert!(!n.doc.contains_key("id"));
        assert!(!n.doc.contains_key("password"));
        assert!(!n.doc.contains_key("nickName"));
        assert_eq!(n.doc["userName"], "Alice@Example.com");
        assert_eq!(n.doc["emails"][0]["value"], "Alice@Example.com");
        assert_eq!(n.doc[ENTERPRISE_USER_SCHEMA]["department"], "R&D");
        assert_eq!(n.doc[ENTERPRISE_USER_SCHEMA]["manager"]["value"], "boss-id");
        assert_eq!(n.doc["customThing"]["kept"], true);
    }

    #[test]
    fn wrong_types_are_invalid_values() {
        for body in [
            json!({"schemas": [USER_SCHEMA], "userName": 5}),
            json!({"schemas": [USER_SCHEMA], "userName": "a", "active": "yes"}),
            json!({"schemas": [USER_SCHEMA], "userName": "a", "name": "Alice"}),
            json!({"schemas": [USER_SCHEMA], "userName": "a", "emails": [{"primary": "x"}]}),
            json!({"schemas": [USER_SCHEMA], "userName": "a",
                   "emails": [{"value": "a@x", "primary": true}, {"value": "b@x", "primary": "True"}]}),
            json!({"schemas": [USER_SCHEMA], "userName": "nul\u{0}a"}),
            json!({"schemas": [USER_SCHEMA], "userName": "a", "name": {"givenName": "x\u{0}"}}),
            json!({"schemas": [USER_SCHEMA], "userName": "a", "x\u{0}y": 1}),
            json!({"schemas": [USER_SCHEMA], "userName": "a",
                   "phoneNumbers": (0..1001).map(|i| json!({"value": i.to_string()})).collect::<Vec<_>>()}),
            json!({"schemas": [USER_SCHEMA]}),
            json!({"schemas": [GROUP_SCHEMA], "userName": "a"}),
            json!({"userName": "a"}),
            json!({"schemas": "x", "userName": "a"}),
        ] {
            let err = normalize(ResourceKind::User, body.clone()).unwrap_err();
            assert_eq!(
                err.scim_type,
                crate::scim::error::ScimType::InvalidValue,
                "{body}"
            );
        }
        let err = normalize(ResourceKind::User, json!([1])).unwrap_err();
        assert_eq!(err.scim_type, crate::scim::error::ScimType::InvalidSyntax);
    }

    #[test]
    fn group_members_are_parsed() {
        let n = normalize(
            ResourceKind::Group,
            json!({"schemas": [GROUP_SCHEMA], "displayName": "eng",
                   "members": [{"value": "u1"}, {"value": "u1"}, {"value": "g2", "type": "group"}]}),
        )
        .unwrap();
        let members = parse_members(&n.doc["members"]).unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!(members[1].kind.as_deref(), Some("Group"));
        assert!(normalize(ResourceKind::Group, json!({"schemas": [GROUP_SCHEMA], "displayName": "x", "members": [{"display": "no value"}]})).is_err());
        assert!(normalize(ResourceKind::Group, json!({"schemas": [GROUP_SCHEMA]})).is_err());
    }

    #[test]
    fn foreign_extensions_and_size() {
        let custom = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";
        let n = normalize(
            ResourceKind::User,
            json!({"schemas": [USER_SCHEMA], "userName": "a", custom: {"tag": "1"},
                   "urn:empty:2.0:User": {}, "urn:none:2.0:User": null}),
        )
        .unwrap();
        assert_eq!(n.doc[custom], json!({"tag": "1"}));
        assert!(!n.doc.contains_key("urn:empty:2.0:User"));
        assert!(!n.doc.contains_key("urn:none:2.0:User"));
        for bad in [
            json!({"schemas": [USER_SCHEMA], "userName": "a", "urn:a:2.0:User": "str"}),
            json!({"schemas": [USER_SCHEMA], "userName": "a", "urn:a:2.0:User": {"t": 1},
                   "URN:A:2.0:USER": {"t": 2}}),
            json!({"schemas": [USER_SCHEMA], "userName": "a",
                   "x": "y".repeat(MAX_DOCUMENT_BYTES)}),
        ] {
            assert_eq!(
                normalize(ResourceKind::User, bad).unwrap_err().scim_type,
                crate::scim::error::ScimType::InvalidValue
            );
        }
        // a group's members are rows, not part of its document's size
        let members: Vec<Value> = (0..20_000)
            .map(|i| json!({"value": format!("{i:036}")}))
            .collect();
        assert!(normalize(
            ResourceKind::Group,
            json!({"schemas": [GROUP_SCHEMA], "displayName": "big", "members": members})
        )
        .is_ok());
    }
}
