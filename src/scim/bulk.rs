//! Bulk requests (RFC 7644 §3.7): the envelope parsed and validated as a whole, `bulkId:`
//! references found in paths and data, an order in which every resource is created before
//! the operations that reference it (§3.7.1, §3.7.2), circular references detected (and
//! the data a cycle's POST can be created with before the rest of the cycle exists), and
//! references replaced by the ids that were created. Performing the operations is the
//! caller's job.
//!
//! Envelope errors are `invalidSyntax` (RFC 7644 Table 9 names it for Bulk): the whole
//! request is refused and nothing is performed. A reference is a JSON string that is exactly
//! `bulkId:<id>`, anywhere in `data` (notably `members[].value` and the enterprise `manager`),
//! or the id segment of `path` (`/Groups/bulkId:g1`).

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::error::ProtocolError;
use super::resource::ResourceKind;

mod plan;
pub use plan::{plan, Step};

pub const BULK_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
pub const BULK_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

/// What a value starts with when it stands for a resource created in the same request.
pub const BULK_ID_PREFIX: &str = "bulkId:";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// One operation of a bulk request, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub method: Method,
    pub kind: ResourceKind,
    /// The target's id from `path` (absent for POST); may be a `bulkId:` reference.
    pub id: Option<String>,
    pub bulk_id: Option<String>,
    /// `version` as sent (an entity tag); it acts as `If-Match`.
    pub version: Option<String>,
    /// The body of the single-resource request (absent for DELETE).
    pub data: Option<Value>,
}

impl Operation {
    /// The bulkIds this operation references, in order of appearance, without repeats.
    pub fn references(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(b) = self.id.as_deref().and_then(reference) {
            out.push(b.to_string());
        }
        if let Some(d) = &self.data {
            collect_references(d, &mut out);
        }
        let mut seen = HashSet::new();
        out.retain(|b| seen.insert(b.clone()));
        out
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BulkRequest {
    /// Stop after this many failed operations (`failOnErrors`); `None`: never stop.
    pub fail_on_errors: Option<usize>,
    pub operations: Vec<Operation>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BulkError {
    /// The envelope is not a valid BulkRequest (a 400).
    #[error(transparent)]
    Invalid(#[from] ProtocolError),
    /// More operations than `maxOperations` (a 413).
    #[error("the bulk request has {got} operations, more than maxOperations ({max})")]
    TooManyOperations { got: usize, max: usize },
}

fn invalid(detail: impl Into<String>) -> BulkError {
    BulkError::Invalid(ProtocolError::invalid_syntax(detail))
}

/// The bulkId a value refers to, when it is a `bulkId:` reference.
pub fn reference(s: &str) -> Option<&str> {
    s.strip_prefix(BULK_ID_PREFIX)
}

fn collect_references(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            if let Some(b) = reference(s) {
                out.push(b.to_string());
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_references(i, out)),
        Value::Object(o) => o.values().for_each(|i| collect_references(i, out)),
        _ => {}
    }
}

/// Parse and validate a BulkRequest body. The operation count is checked before anything
/// else about the operations, so an oversized request is refused cheaply.
pub fn parse_request(body: Value, max_operations: usize) -> Result<BulkRequest, BulkError> {
    let Value::Object(obj) = body else {
        return Err(invalid("a bulk request must be a JSON object"));
    };
    let mut schema_ok = false;
    let mut fail_on_errors = None;
    let mut operations = None;
    for (k, v) in obj {
        match k.to_ascii_lowercase().as_str() {
            "schemas" => {
                schema_ok = v.as_array().is_some_and(|a| {
                    a.iter().any(|s| {
                        s.as_str()
                            .is_some_and(|s| s.eq_ignore_ascii_case(BULK_REQUEST_SCHEMA))
                    })
                });
            }
            "failonerrors" => {
                let n = v
                    .as_u64()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| invalid("\"failOnErrors\" must be an integer of at least 1"))?;
                fail_on_errors = Some(usize::try_from(n).unwrap_or(usize::MAX));
            }
            "operations" => {
                let Value::Array(items) = v else {
                    return Err(invalid("\"Operations\" must be an array"));
                };
                operations = Some(items);
            }
            _ => return Err(invalid(format!("unknown bulk request attribute \"{k}\""))),
        }
    }
    if !schema_ok {
        return Err(invalid(format!(
            "\"schemas\" must be [\"{BULK_REQUEST_SCHEMA}\"]"
        )));
    }
    let items = operations.ok_or_else(|| invalid("\"Operations\" is required"))?;
    if items.len() > max_operations {
        return Err(BulkError::TooManyOperations {
            got: items.len(),
            max: max_operations,
        });
    }
    let operations = items
        .into_iter()
        .enumerate()
        .map(|(i, item)| parse_operation(i, item))
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = HashSet::new();
    for (i, op) in operations.iter().enumerate() {
        if let Some(b) = &op.bulk_id {
            if !seen.insert(b.as_str()) {
                return Err(invalid(format!(
                    "Operations[{i}]: bulkId \"{b}\" is used by an earlier operation; bulkIds must be unique within a request"
                )));
            }
        }
    }
    Ok(BulkRequest {
        fail_on_errors,
        operations,
    })
}

fn string(i: usize, name: &str, v: Value) -> Result<String, BulkError> {
    match v {
        Value::String(s) => Ok(s),
        _ => Err(invalid(format!(
            "Operations[{i}]: \"{name}\" must be a string"
        ))),
    }
}

fn parse_operation(i: usize, item: Value) -> Result<Operation, BulkError> {
    let Value::Object(obj) = item else {
        return Err(invalid(format!("Operations[{i}] must be a JSON object")));
    };
    let (mut method, mut path, mut bulk_id, mut version, mut data) = (None, None, None, None, None);
    for (k, v) in obj {
        match k.to_ascii_lowercase().as_str() {
            "method" => {
                let m = string(i, "method", v)?;
                method = Some(match m.to_ascii_uppercase().as_str() {
                    "POST" => Method::Post,
                    "PUT" => Method::Put,
                    "PATCH" => Method::Patch,
                    "DELETE" => Method::Delete,
                    _ => {
                        return Err(invalid(format!(
                            "Operations[{i}]: method \"{m}\" is not one of POST, PUT, PATCH, DELETE"
                        )))
                    }
                });
            }
            "path" => path = Some(string(i, "path", v)?),
            "bulkid" => {
                let b = string(i, "bulkId", v)?;
                if b.is_empty() {
                    return Err(invalid(format!("Operations[{i}]: \"bulkId\" is empty")));
                }
                bulk_id = Some(b);
            }
            "version" => version = Some(string(i, "version", v)?),
            "data" => match v {
                Value::Object(o) => data = Some(Value::Object(o)),
                _ => {
                    return Err(invalid(format!(
                        "Operations[{i}]: \"data\" must be a JSON object"
                    )))
                }
            },
            _ => {
                return Err(invalid(format!(
                    "Operations[{i}]: unknown attribute \"{k}\""
                )))
            }
        }
    }
    let method =
        method.ok_or_else(|| invalid(format!("Operations[{i}]: \"method\" is required")))?;
    let path = path.ok_or_else(|| invalid(format!("Operations[{i}]: \"path\" is required")))?;
    let (kind, id) = parse_path(&path).ok_or_else(|| {
        invalid(format!(
            "Operations[{i}]: path \"{path}\" must be /Users or /Groups, or /Users/{{id}} or /Groups/{{id}}"
        ))
    })?;
    let m = method.as_str();
    match (method, &id) {
        (Method::Post, Some(_)) => {
            return Err(invalid(format!(
                "Operations[{i}]: POST takes a resource type endpoint (/Users or /Groups), not \"{path}\""
            )))
        }
        (Method::Put | Method::Patch | Method::Delete, None) => {
            return Err(invalid(format!(
                "Operations[{i}]: {m} takes the path of one resource (e.g. /Users/{{id}}), not \"{path}\""
            )))
        }
        _ => {}
    }
    match (method, &data) {
        (Method::Post | Method::Put | Method::Patch, None) => {
            return Err(invalid(format!("Operations[{i}]: {m} requires \"data\"")))
        }
        (Method::Delete, Some(_)) => {
            return Err(invalid(format!(
                "Operations[{i}]: DELETE takes no \"data\""
            )))
        }
        _ => {}
    }
    if method == Method::Post {
        if bulk_id.is_none() {
            return Err(invalid(format!(
                "Operations[{i}]: \"bulkId\" is required when method is POST"
            )));
        }
        if version.is_some() {
            return Err(invalid(format!(
                "Operations[{i}]: \"version\" applies to PUT, PATCH and DELETE, not POST"
            )));
        }
    }
    Ok(Operation {
        method,
        kind,
        id,
        bulk_id,
        version,
        data,
    })
}

/// `/Users`, `/Groups` (no id) or `/Users/{id}`, `/Groups/{id}`.
fn parse_path(path: &str) -> Option<(ResourceKind, Option<String>)> {
    let rest = path.strip_prefix('/')?;
    let (endpoint, id) = match rest.split_once('/') {
        Some((e, id)) => (e, Some(id)),
        None => (rest, None),
    };
    let kind = match endpoint {
        "Users" => ResourceKind::User,
        "Groups" => ResourceKind::Group,
        _ => return None,
    };
    match id {
        None => Some((kind, None)),
        Some(id) if !id.is_empty() && !id.contains('/') => Some((kind, Some(id.to_string()))),
        Some(_) => None,
    }
}

/// What became of each POST's bulkId so far: the id it created, or `None` when it failed.
pub type Outcomes = HashMap<String, Option<String>>;

/// An operation's id and data with every `bulkId:` reference replaced by the created id.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub id: Option<String>,
    pub data: Option<Value>,
}

/// Replace the references of `op`; a reference to a bulkId that no POST of the request
/// created (unknown, or its POST failed) is `invalidValue`, as an unknown member id is.
pub fn resolve(op: &Operation, outcomes: &Outcomes) -> Result<Resolved, ProtocolError> {
    let mut ids = HashMap::new();
    for b in op.references() {
        match outcomes.get(&b) {
            Some(Some(id)) => {
                ids.insert(b, id.clone());
            }
            Some(None) => {
                return Err(ProtocolError::invalid_value(format!(
                    "bulkId \"{b}\" refers to an operation of this request that failed"
                )))
            }
            None => {
                return Err(ProtocolError::invalid_value(format!(
                    "bulkId \"{b}\" is not defined by any POST operation of this request"
                )))
            }
        }
    }
    let id = op
        .id
        .as_deref()
        .map(|id| {
            reference(id)
                .and_then(|b| ids.get(b))
                .map_or(id, String::as_str)
        })
        .map(str::to_owned);
    let data = op.data.clone().map(|mut d| {
        substitute(&mut d, &ids);
        d
    });
    Ok(Resolved { id, data })
}

fn substitute(v: &mut Value, ids: &HashMap<String, String>) {
    match v {
        Value::String(s) => {
            if let Some(id) = reference(s).and_then(|b| ids.get(b)) {
                *s = id.clone();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| substitute(i, ids)),
        Value::Object(o) => o.values_mut().for_each(|i| substitute(i, ids)),
        _ => {}
    }
}

/// The first half of a POST on a cycle of references (RFC 7644 §3.7.1): its data without
/// whatever refers to a bulkId in `pending` (a POST of the cycle not performed yet), the
/// other references replaced. What is left out is an array element (a member) or an object
/// member (`manager`) that contains such a reference anywhere; [`resolve`] of the whole
/// operation, once the rest of the cycle exists, gives the complete data.
pub fn resolve_without(
    op: &Operation,
    outcomes: &Outcomes,
    pending: &HashSet<String>,
) -> Result<Resolved, ProtocolError> {
    let mut stripped = op.clone();
    if let Some(d) = stripped.data.as_mut() {
        strip(d, pending);
    }
    resolve(&stripped, outcomes)
}

/// Is `v` a reference to a bulkId in `pending`?
fn pending_ref(v: &Value, pending: &HashSet<String>) -> bool {
    v.as_str()
        .and_then(reference)
        .is_some_and(|b| pending.contains(b))
}

/// Does `v` refer to a bulkId in `pending` anywhere?
fn refers_to(v: &Value, pending: &HashSet<String>) -> bool {
    let mut refs = Vec::new();
    collect_references(v, &mut refs);
    refs.iter().any(|b| pending.contains(b))
}

/// Leave out of `v` the array elements that refer to `pending` anywhere (a member), the
/// object members that are such a reference, and the complex values that hold one directly
/// (`"manager": {"value": "bulkId:x"}`); containers themselves stay.
fn strip(v: &mut Value, pending: &HashSet<String>) {
    match v {
        Value::Array(items) => items.retain(|i| !refers_to(i, pending)),
        Value::Object(o) => {
            o.retain(|_, i| match i {
                Value::Object(inner) => !inner.values().any(|x| pending_ref(x, pending)),
                other => !pending_ref(other, pending),
            });
            o.values_mut().for_each(|i| strip(i, pending));
        }
        _ => {}
    }
}

/// The BulkResponse body for the operation results given, in request order.
pub fn response(results: Vec<Map<String, Value>>) -> Value {
    let ops: Vec<Value> = results.into_iter().map(Value::Object).collect();
    serde_json::json!({"schemas": [BULK_RESPONSE_SCHEMA], "Operations": ops})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::error::ScimType;
    use serde_json::json;

    #[test]
    fn a_cycle_member_is_first_created_without_its_pending_references() {
        let body = json!({"schemas": [BULK_REQUEST_SCHEMA], "Operations": [
            {"method": "POST", "path": "/Groups", "bulkId": "a", "data": {
                "displayName": "A",
                "members": [{"value": "bulkId:b"}, {"value": "bulkId:u"}, {"value": "kept"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "v", "data": {
                "userName": "v",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                    "department": "R&D", "manager": {"value": "bulkId:b"}}}},
        ]});
        let req = parse_request(body, 10).unwrap();
        let outcomes: Outcomes = [("u".to_string(), Some("id-u".to_string()))].into();
        let pending: HashSet<String> = ["b".to_string()].into();
        let a = resolve_without(&req.operations[0], &outcomes, &pending).unwrap();
        assert_eq!(
            a.data.unwrap()["members"],
            json!([{"value": "id-u"}, {"value": "kept"}])
        );
        let v = resolve_without(&req.operations[1], &outcomes, &pending).unwrap();
        assert_eq!(
            v.data.unwrap()["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            json!({"department": "R&D"})
        );
        // once b exists, the whole operation resolves
        let mut done = outcomes.clone();
        done.insert("b".into(), Some("id-b".into()));
        let full = resolve(&req.operations[0], &done).unwrap();
        assert_eq!(
            full.data.unwrap()["members"],
            json!([{"value": "id-b"}, {"value": "id-u"}, {"value": "kept"}])
        );
    }

    fn req(ops: Value) -> Value {
        json!({"schemas": [BULK_REQUEST_SCHEMA], "Operations": ops})
    }

    fn parse(ops: Value) -> Result<BulkRequest, BulkError> {
        parse_request(req(ops), 1000)
    }

    fn user(b: &str) -> Value {
        json!({"method": "POST", "path": "/Users", "bulkId": b, "data": {"userName": b}})
    }

    fn syntax_error(r: Result<BulkRequest, BulkError>) -> String {
        match r {
            Err(BulkError::Invalid(e)) => {
                assert_eq!(e.scim_type, ScimType::InvalidSyntax);
                e.detail
            }
            other => panic!("expected an envelope error, got {other:?}"),
        }
    }

    #[test]
    fn parses_every_method() {
        let r = parse_request(
            json!({
                "schemas": [BULK_REQUEST_SCHEMA],
                "failOnErrors": 2,
                "Operations": [
                    {"method": "POST", "path": "/Users", "bulkId": "u1", "data": {"userName": "a"}},
                    {"method": "put", "path": "/Users/abc", "version": "W/\"3\"", "data": {"userName": "b"}},
                    {"method": "Patch", "path": "/Groups/bulkId:g1", "data": {"Operations": []}},
                    {"METHOD": "DELETE", "PATH": "/Groups/xyz"},
                ]
            }),
            10,
        )
        .unwrap();
        assert_eq!(r.fail_on_errors, Some(2));
        let ops = &r.operations;
        assert_eq!(ops.len(), 4);
        assert_eq!(ops[0].method, Method::Post);
        assert_eq!(ops[0].kind, ResourceKind::User);
        assert_eq!(ops[0].id, None);
        assert_eq!(ops[0].bulk_id.as_deref(), Some("u1"));
        assert_eq!(ops[1].method, Method::Put);
        assert_eq!(ops[1].id.as_deref(), Some("abc"));
        assert_eq!(ops[1].version.as_deref(), Some("W/\"3\""));
        assert_eq!(ops[2].method, Method::Patch);
        assert_eq!(ops[2].kind, ResourceKind::Group);
        assert_eq!(ops[2].references(), vec!["g1".to_string()]);
        assert_eq!(ops[3].method, Method::Delete);
        assert_eq!(ops[3].data, None);
    }

    #[test]
    fn envelope_errors() {
        let bad = |body: Value| syntax_error(parse_request(body, 1000));
        assert!(bad(json!([])).contains("JSON object"));
        assert!(bad(json!({"Operations": []})).contains("schemas"));
        assert!(bad(json!({"schemas": ["urn:x"], "Operations": []})).contains("schemas"));
        assert!(bad(json!({"schemas": [BULK_REQUEST_SCHEMA]})).contains("Operations"));
        assert!(bad(json!({"schemas": [BULK_REQUEST_SCHEMA], "Operations": {}})).contains("array"));
        assert!(bad(
            json!({"schemas": [BULK_REQUEST_SCHEMA], "Operations": [], "failOnErrors": 0})
        )
        .contains("failOnErrors"));
        assert!(bad(
            json!({"schemas": [BULK_REQUEST_SCHEMA], "Operations": [], "failOnErrors": "1"})
        )
        .contains("failOnErrors"));
        assert!(
            bad(json!({"schemas": [BULK_REQUEST_SCHEMA], "Operations": [], "extra": 1}))
                .contains("extra")
        );
        let op_error = |op: Value| syntax_error(parse(json!([user("ok"), op])));
        assert!(op_error(json!("POST")).contains("Operations[1]"));
        assert!(op_error(json!({"path": "/Users", "bulkId": "x", "data": {}})).contains("method"));
        assert!(op_error(json!({"method": "GET", "path": "/Users/1"})).contains("not one of"));
        assert!(op_error(json!({"method": "DELETE"})).contains("path"));
        for path in [
            "Users/1",
            "/Things/1",
            "/Users/",
            "/Users/1/2",
            "/users/1",
            "",
        ] {
            assert!(
                op_error(json!({"method": "DELETE", "path": path})).contains("must be /Users"),
                "{path}"
            );
        }
        assert!(
            op_error(json!({"method": "POST", "path": "/Users/1", "bulkId": "x", "data": {}}))
                .contains("resource type endpoint")
        );
        assert!(
            op_error(json!({"method": "PATCH", "path": "/Users", "data": {}}))
                .contains("one resource")
        );
        assert!(
            op_error(json!({"method": "POST", "path": "/Users", "bulkId": "x"}))
                .contains("requires \"data\"")
        );
        assert!(op_error(json!({"method": "PUT", "path": "/Users/1"})).contains("requires"));
        assert!(
            op_error(json!({"method": "PATCH", "path": "/Users/1", "data": []}))
                .contains("JSON object")
        );
        assert!(
            op_error(json!({"method": "DELETE", "path": "/Users/1", "data": {}}))
                .contains("no \"data\"")
        );
        assert!(
            op_error(json!({"method": "POST", "path": "/Users", "data": {}}))
                .contains("bulkId\" is required")
        );
        assert!(
            op_error(json!({"method": "POST", "path": "/Users", "bulkId": "", "data": {}}))
                .contains("empty")
        );
        assert!(op_error(
            json!({"method": "POST", "path": "/Users", "bulkId": "x", "version": "W/\"1\"", "data": {}})
        )
        .contains("version"));
        assert!(
            op_error(json!({"method": "DELETE", "path": "/Users/1", "bulkId": 7}))
                .contains("must be a string")
        );
        assert!(
            op_error(json!({"method": "DELETE", "path": "/Users/1", "status": "200"}))
                .contains("unknown attribute")
        );
        // duplicate bulkIds
        let dup = syntax_error(parse(json!([user("u1"), user("u2"), user("u1")])));
        assert!(
            dup.contains("Operations[2]") && dup.contains("\"u1\""),
            "{dup}"
        );
    }

    #[test]
    fn too_many_operations_is_checked_first() {
        // three operations, one of them malformed: the count is what is reported
        let body = req(json!([user("a"), user("b"), {"method": "nope"}]));
        assert_eq!(
            parse_request(body.clone(), 2),
            Err(BulkError::TooManyOperations { got: 3, max: 2 })
        );
        assert!(matches!(parse_request(body, 3), Err(BulkError::Invalid(_))));
    }

    #[test]
    fn references_in_path_and_anywhere_in_data() {
        let r = parse(json!([
            {"method": "PATCH", "path": "/Groups/bulkId:g", "data": {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "add", "path": "members",
                                "value": [{"value": "bulkId:u1"}, {"value": "bulkId:u2"}, {"value": "bulkId:u1"}]}]}},
            {"method": "POST", "path": "/Users", "bulkId": "m", "data": {
                "userName": "bob",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": {"value": "bulkId:boss"}},
                "nickName": "not bulkId:x", "title": "bulkid:lowercase"}},
        ]))
        .unwrap();
        assert_eq!(r.operations[0].references(), vec!["g", "u1", "u2"]);
        assert_eq!(r.operations[1].references(), vec!["boss"]);
    }

    #[test]
    fn resolve_replaces_references() {
        let r = parse(json!([
            {"method": "PUT", "path": "/Groups/bulkId:g", "data": {
                "displayName": "x", "members": [{"value": "bulkId:u"}, {"value": "plain"}]}},
        ]))
        .unwrap();
        let mut outcomes = Outcomes::new();
        outcomes.insert("g".into(), Some("G-1".into()));
        outcomes.insert("u".into(), Some("U-1".into()));
        let done = resolve(&r.operations[0], &outcomes).unwrap();
        assert_eq!(done.id.as_deref(), Some("G-1"));
        assert_eq!(
            done.data,
            Some(json!({"displayName": "x", "members": [{"value": "U-1"}, {"value": "plain"}]}))
        );
        // unknown and failed bulkIds
        outcomes.insert("u".into(), None);
        let e = resolve(&r.operations[0], &outcomes).unwrap_err();
        assert_eq!(e.scim_type, ScimType::InvalidValue);
        assert!(
            e.detail.contains("\"u\"") && e.detail.contains("failed"),
            "{}",
            e.detail
        );
        outcomes.remove("g");
        let e = resolve(&r.operations[0], &outcomes).unwrap_err();
        assert_eq!(e.scim_type, ScimType::InvalidValue);
        assert!(
            e.detail.contains("\"g\"") && e.detail.contains("not defined"),
            "{}",
            e.detail
        );
    }

    #[test]
    fn resolve_without_references_is_identity() {
        let r = parse(json!([{"method": "DELETE", "path": "/Users/abc"}])).unwrap();
        let done = resolve(&r.operations[0], &Outcomes::new()).unwrap();
        assert_eq!(done.id.as_deref(), Some("abc"));
        assert_eq!(done.data, None);
    }

    #[test]
    fn response_shape() {
        let mut one = Map::new();
        one.insert("method".into(), json!("POST"));
        one.insert("status".into(), json!("201"));
        assert_eq!(
            response(vec![one]),
            json!({"schemas": [BULK_RESPONSE_SCHEMA], "Operations": [{"method": "POST", "status": "201"}]})
        );
    }
}
