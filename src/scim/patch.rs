//! The PATCH engine (RFC 7644 §3.5.2): parse a PatchOp request and apply it to a stored
//! document, in memory, atomically (the caller keeps the original when this fails).
//!
//! Group `members` are not part of the document: operations on them come back as
//! [`MemberChange`] deltas that the store applies to the membership table, so a change to a
//! group with 100,000 members never reads or rewrites the whole list.
//!
//! Dialects handled: op names in any case (Entra), path-less `replace` of `{active: false}`
//! (Okta deactivation) and of `{id, displayName}` (Okta group rename: `id` is ignored), dotted
//! and URN keys in a path-less value (Entra `aadOptscim062020`), `add` on a single-valued
//! attribute replacing it, `remove` of `members` with a value list removing only those members,
//! and `members[value eq "id"]` filters.

use serde_json::{Map, Value};

use super::error::{ProtocolError, ScimType};
use super::filter::{self, AttrPath, CompValue, CompareOp, Filter, PatchPath};
use super::resource::{extension_key, parse_members, MemberRef, ResourceKind};
use super::schema::{find_attr, AttrDef, AttrType, Mutability, PATCH_OP_SCHEMA};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Add,
    Remove,
    Replace,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PatchOp {
    pub op: OpKind,
    pub path: Option<PatchPath>,
    /// The path exactly as sent (for error messages and whole-extension targets).
    pub raw_path: Option<String>,
    pub value: Option<Value>,
}

/// A change to a group's membership table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    Add(Vec<MemberRef>),
    Remove(Vec<String>),
    RemoveAll,
    Replace(Vec<MemberRef>),
}

fn get_ci<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// Parse a PatchOp request body.
pub fn parse_patch(body: Value) -> Result<Vec<PatchOp>, ProtocolError> {
    let Value::Object(obj) = body else {
        return Err(ProtocolError::invalid_syntax(
            "a PATCH body must be a JSON object",
        ));
    };
    let schemas_ok = get_ci(&obj, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|a| {
            a.iter().any(|s| {
                s.as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(PATCH_OP_SCHEMA))
            })
        });
    if !schemas_ok {
        return Err(ProtocolError::invalid_syntax(format!(
            "\"schemas\" must be [\"{PATCH_OP_SCHEMA}\"]"
        )));
    }
    let Some(Value::Array(ops)) = get_ci(&obj, "Operations") else {
        return Err(ProtocolError::invalid_syntax(
            "\"Operations\" must be an array of operations",
        ));
    };
    if ops.is_empty() {
        return Err(ProtocolError::invalid_syntax("\"Operations\" is empty"));
    }
    let mut out = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let Value::Object(op) = op else {
            return Err(ProtocolError::invalid_syntax(format!(
                "operation {i} must be an object"
            )));
        };
        let kind = match get_ci(op, "op").and_then(Value::as_str) {
            Some(s) if s.eq_ignore_ascii_case("add") => OpKind::Add,
            Some(s) if s.eq_ignore_ascii_case("remove") => OpKind::Remove,
            Some(s) if s.eq_ignore_ascii_case("replace") => OpKind::Replace,
            other => {
                return Err(ProtocolError::invalid_syntax(format!(
                    "operation {i}: \"op\" must be \"add\", \"remove\" or \"replace\", not {}",
                    other.map_or("missing".to_string(), |s| format!("\"{s}\""))
                )))
            }
        };
        let raw_path = match get_ci(op, "path") {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) if p.trim().is_empty() => None,
            Some(Value::String(p)) => Some(p.trim().to_string()),
            Some(_) => {
                return Err(ProtocolError::invalid_path(format!(
                    "operation {i}: \"path\" must be a string"
                )))
            }
        };
        let path = match &raw_path {
            // a bare extension URN is a whole-object target, not an attribute path
            Some(p) if is_extension_urn(p) => None,
            Some(p) => Some(filter::parse_patch_path(p).map_err(|e| {
                ProtocolError::invalid_path(format!("operation {i}: invalid path \"{p}\": {e}"))
            })?),
            None => None,
        };
        let value = get_ci(op, "value").cloned();
        if kind != OpKind::Remove && value.is_none() {
            return Err(ProtocolError::invalid_syntax(format!(
                "operation {i}: \"{}\" needs a \"value\"",
                if kind == OpKind::Add {
                    "add"
                } else {
                    "replace"
                }
            )));
        }
        if kind == OpKind::Remove && raw_path.is_none() {
            return Err(ProtocolError::new(
                ScimType::NoTarget,
                format!("operation {i}: \"remove\" needs a \"path\""),
            ));
        }
        out.push(PatchOp {
            op: kind,
            path,
            raw_path,
            value,
        });
    }
    Ok(out)
}

fn is_extension_urn(p: &str) -> bool {
    super::resource::is_whole_extension(p)
}

/// Apply `ops` to `doc` in order. On error `doc` may be partly changed: the caller applies
/// to a copy and discards it, so a request applies entirely or not at all.
pub fn apply(
    kind: ResourceKind,
    doc: &mut Map<String, Value>,
    ops: &[PatchOp],
) -> Result<Vec<MemberChange>, ProtocolError> {
    let mut changes = Vec::new();
    for op in ops {
        match (&op.path, &op.raw_path) {
            (Some(path), _) => {
                let value = op.value.clone().unwrap_or(Value::Null);
                apply_path(kind, doc, op.op, path, value, &mut changes)?;
            }
            (None, Some(urn)) => {
                // whole extension object
                let Some(urn) = extension_key(kind, doc, urn) else {
                    return Err(ProtocolError::invalid_path(format!(
                        "\"{urn}\" is not an extension of {}",
                        kind.as_str()
                    )));
                };
                match (op.op, op.value.clone()) {
                    (OpKind::Remove, _) => {
                        doc.remove(&urn);
                    }
                    (_, Some(Value::Object(values))) => {
                        for (k, v) in values {
                            let path = simple_path(Some(&urn), &k)?;
                            apply_path(kind, doc, op.op, &path, v, &mut changes)?;
                        }
                    }
                    _ => {
                        return Err(ProtocolError::invalid_value(format!(
                            "the value for \"{urn}\" must be an object"
                        )))
                    }
                }
            }
            (None, None) => {
                let Some(Value::Object(values)) = op.value.clone() else {
                    return Err(ProtocolError::invalid_value(
                        "an operation without \"path\" needs an object \"value\"",
                    ));
                };
                for (k, v) in values {
                    if ["schemas", "id", "meta"]
                        .iter()
                        .any(|s| k.eq_ignore_ascii_case(s))
                    {
                        continue; // Okta's rename sends {id, displayName}; id is not changed
                    }
                    let whole = super::resource::is_whole_extension(&k)
                        .then(|| extension_key(kind, doc, &k))
                        .flatten();
                    if let Some(urn) = whole {
                        let Value::Object(ext) = v else {
                            return Err(ProtocolError::invalid_value(format!(
                                "the value for \"{urn}\" must be an object"
                            )));
                        };
                        for (sk, sv) in ext {
                            let path = simple_path(Some(&urn), &sk)?;
                            apply_path(kind, doc, op.op, &path, sv, &mut changes)?;
                        }
                        continue;
                    }
                    // Entra (aadOptscim062020): "name.givenName" and URN-qualified keys
                    let path = filter::parse_patch_path(&k).map_err(|e| {
                        ProtocolError::invalid_path(format!("invalid attribute \"{k}\": {e}"))
                    })?;
                    apply_path(kind, doc, op.op, &path, v, &mut changes)?;
                }
            }
        }
    }
    // an extension whose last attribute was removed is gone, not an empty object
    doc.retain(|k, v| {
        let extension = kind.extension(k).is_some() || super::resource::is_foreign_extension(k);
        !(extension && v.as_object().is_some_and(Map::is_empty))
    });
    Ok(changes)
}

fn simple_path(schema: Option<&str>, attr: &str) -> Result<PatchPath, ProtocolError> {
    let text = match schema {
        Some(s) => format!("{s}:{attr}"),
        None => attr.to_string(),
    };
    filter::parse_patch_path(&text)
        .map_err(|e| ProtocolError::invalid_path(format!("invalid attribute \"{attr}\": {e}")))
}

fn is_members(kind: ResourceKind, path: &PatchPath) -> bool {
    kind == ResourceKind::Group
        && path.attr.attr.eq_ignore_ascii_case("members")
        && path
            .attr
            .schema
            .as_deref()
            .is_none_or(|s| s.eq_ignore_ascii_case(kind.core_schema()))
}

fn apply_path(
    kind: ResourceKind,
    doc: &mut Map<String, Value>,
    op: OpKind,
    path: &PatchPath,
    value: Value,
    changes: &mut Vec<MemberChange>,
) -> Result<(), ProtocolError> {
    if is_members(kind, path) {
        changes.push(member_change(op, path, value)?);
        return Ok(());
    }
    let schema = path.attr.schema.as_deref();
    let core = schema.is_none_or(|s| s.eq_ignore_ascii_case(kind.core_schema()));
    if core
        && ["meta", "schemas"]
            .iter()
            .any(|a| path.attr.attr.eq_ignore_ascii_case(a))
    {
        return Err(ProtocolError::mutability(format!(
            "attribute \"{}\" is read-only",
            path.attr.attr
        )));
    }
    let def = kind.attr(schema, &path.attr.attr);
    // the extension object holding the attribute (None: the document itself)
    let extension = match schema {
        Some(s) if !core => match extension_key(kind, doc, s) {
            Some(key) => Some(key),
            None => {
                return Err(ProtocolError::invalid_path(format!(
                    "unknown schema in path \"{path}\""
                )))
            }
        },
        _ => None,
    };
    if let Some(def) = def {
        match def.mutability {
            Mutability::ReadOnly => {
                return Err(ProtocolError::mutability(format!(
                    "attribute \"{}\" is read-only",
                    def.name
                )))
            }
            Mutability::WriteOnly => return Ok(()), // password: discarded
            _ => {}
        }
    }
    // the object holding the attribute: the document, or an extension object inside it
    let container: &mut Map<String, Value> = match extension {
        Some(urn) => {
            let slot = doc.entry(urn).or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            match slot.as_object_mut() {
                Some(m) => m,
                None => return Err(ProtocolError::invalid_path("extension is not an object")),
            }
        }
        None => doc,
    };
    let key = match def {
        Some(d) => d.name.to_string(),
        None => container
            .keys()
            .find(|k| k.eq_ignore_ascii_case(&path.attr.attr))
            .cloned()
            .unwrap_or_else(|| path.attr.attr.clone()),
    };
    let multi = def.map_or_else(
        || container.get(&key).is_some_and(Value::is_array),
        |d| d.multi,
    );
    let sub_defs: &[AttrDef] = def.map_or(&[], |d| d.sub);

    if let Some(filter) = &path.value_filter {
        if !multi {
            return Err(ProtocolError::invalid_path(format!(
                "a value filter needs a multi-valued attribute; \"{key}\" is not"
            )));
        }
        let sub = path.sub_attr.as_deref().or(path.attr.sub_attr.as_deref());
        return apply_filtered(container, &key, sub_defs, filter, sub, op, value);
    }

    if let Some(sub) = &path.attr.sub_attr {
        if multi {
            return Err(ProtocolError::invalid_path(format!(
                "\"{key}.{sub}\": select elements of a multi-valued attribute with a filter, e.g. {key}[type eq \"work\"].{sub}"
            )));
        }
        let sub_key = find_attr(sub_defs, sub).map_or_else(|| sub.clone(), |d| d.name.to_string());
        let slot = container
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        if let Some(obj) = slot.as_object_mut() {
            match op {
                OpKind::Remove => {
                    obj.remove(&sub_key);
                }
                OpKind::Add | OpKind::Replace => {
                    obj.insert(sub_key, value);
                }
            }
            if obj.is_empty() {
                container.remove(&key);
            }
        }
        return Ok(());
    }

    match op {
        OpKind::Remove => {
            if multi && !value.is_null() {
                // remove only the listed values (Entra sends members this way; same for others)
                let listed: Vec<Value> = match value {
                    Value::Array(a) => a,
                    v => vec![v],
                };
                if let Some(Value::Array(items)) = container.get_mut(&key) {
                    items.retain(|item| !listed.iter().any(|l| same_element(item, l)));
                    if items.is_empty() {
                        container.remove(&key);
                    }
                }
            } else {
                container.remove(&key);
            }
        }
        OpKind::Add if multi => {
            let new: Vec<Value> = match value {
                Value::Array(a) => a,
                Value::Null => Vec::new(),
                v => vec![v],
            };
            let slot = container
                .entry(key.clone())
                .or_insert_with(|| Value::Array(Vec::new()));
            if !slot.is_array() {
                *slot = Value::Array(Vec::new());
            }
            if let Value::Array(items) = slot {
                // bounded before the per-value work below, which scans the values for each
                // added one; normalize() bounds the result
                if new.len() > super::resource::MAX_VALUES {
                    return Err(super::resource::too_many_values(&key, new.len()));
                }
                for v in new {
                    if let Some(pos) = items.iter().position(|i| same_element(i, &v)) {
                        merge_into(&mut items[pos], v);
                        fix_primary(items, Some(pos));
                    } else {
                        items.push(v);
                        let last = items.len() - 1;
                        fix_primary(items, Some(last));
                    }
                }
            }
        }
        OpKind::Add | OpKind::Replace => {
            let complex = def.is_some_and(|d| d.ty == AttrType::Complex && !d.multi);
            match container.get_mut(&key) {
                // RFC 7644 §3.5.2.3: replacing a complex attribute replaces the given sub-attributes
                Some(existing) if complex && existing.is_object() && value.is_object() => {
                    merge_into(existing, value)
                }
                _ => {
                    let mut value = value;
                    if let Value::Array(items) = &mut value {
                        fix_primary(items, None);
                    }
                    container.insert(key, value);
                }
            }
        }
    }
    Ok(())
}

/// Two elements of a multi-valued attribute are the same when their `value`s are equal
/// (or, without a `value`, when they are equal as JSON).
fn same_element(a: &Value, b: &Value) -> bool {
    match (a.get("value"), b.get("value")) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn merge_into(target: &mut Value, value: Value) {
    match (target, value) {
        (Value::Object(t), Value::Object(v)) => {
            for (k, x) in v {
                let key = t
                    .keys()
                    .find(|e| e.eq_ignore_ascii_case(&k))
                    .cloned()
                    .unwrap_or(k);
                t.insert(key, x);
            }
        }
        (t, v) => *t = v,
    }
}

fn is_primary(v: &Value) -> bool {
    matches!(v.get("primary"), Some(Value::Bool(true)))
        || v.get("primary")
            .and_then(Value::as_str)
            .is_some_and(|s| s.eq_ignore_ascii_case("true"))
}

/// Keep at most one element with `primary: true`: the one just written wins, else the last.
fn fix_primary(items: &mut [Value], winner: Option<usize>) {
    let winner = match winner {
        Some(i) if items.get(i).is_some_and(is_primary) => i,
        Some(_) if items.iter().filter(|v| is_primary(v)).count() <= 1 => return,
        _ => match items.iter().rposition(is_primary) {
            Some(i) => i,
            None => return,
        },
    };
    for (i, item) in items.iter_mut().enumerate() {
        if i != winner && is_primary(item) {
            if let Some(o) = item.as_object_mut() {
                o.insert("primary".into(), Value::Bool(false));
            }
        }
    }
}

fn apply_filtered(
    container: &mut Map<String, Value>,
    key: &str,
    sub_defs: &[AttrDef],
    filter: &Filter,
    sub: Option<&str>,
    op: OpKind,
    value: Value,
) -> Result<(), ProtocolError> {
    if !sub_defs.is_empty() {
        check_value_filter(key, sub_defs, filter)?;
        if let Some(s) = sub {
            if find_attr(sub_defs, s).is_none() {
                return Err(ProtocolError::invalid_path(format!(
                    "\"{key}\" has no sub-attribute \"{s}\""
                )));
            }
        }
    }
    // a whole element is written from an object of its sub-attributes (a one-element array
    // of one is taken as that object); anything else would be silently dropped
    let value = match (sub, op, value) {
        (None, OpKind::Add | OpKind::Replace, Value::Array(mut a))
            if a.len() == 1 && a[0].is_object() =>
        {
            a.remove(0)
        }
        (None, OpKind::Add | OpKind::Replace, v) if !v.is_object() => {
            return Err(ProtocolError::invalid_value(format!(
                "the value for \"{key}[{filter}]\" must be an object of its sub-attributes, \
                 e.g. {{\"value\": ...}}; to set one sub-attribute name it in the path \
                 ({key}[{filter}].value)"
            )))
        }
        (_, _, v) => v,
    };
    let case_exact = |p: &AttrPath| find_attr(sub_defs, &p.attr).is_some_and(|d| d.case_exact);
    let items = match container.get_mut(key) {
        Some(Value::Array(items)) => items,
        _ => {
            if op == OpKind::Remove {
                return Ok(()); // nothing to remove: idempotent, IdPs retry removals
            }
            container.insert(key.to_string(), Value::Array(Vec::new()));
            match container.get_mut(key) {
                Some(Value::Array(items)) => items,
                _ => return Err(ProtocolError::invalid_path("internal: array vanished")),
            }
        }
    };
    let matched: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, item)| filter::matches(filter, item, &case_exact))
        .map(|(i, _)| i)
        .collect();
    let sub_key =
        sub.map(|s| find_attr(sub_defs, s).map_or_else(|| s.to_string(), |d| d.name.to_string()));
    match op {
        OpKind::Remove => {
            match &sub_key {
                None => {
                    let mut gone = vec![false; items.len()];
                    for &i in &matched {
                        gone[i] = true;
                    }
                    let mut i = 0;
                    items.retain(|_| {
                        let keep = !gone[i];
                        i += 1;
                        keep
                    });
                }
                Some(s) => {
                    for &i in &matched {
                        if let Some(o) = items[i].as_object_mut() {
                            o.remove(s);
                        }
                    }
                    // an element that has lost its `value` (`emails[type eq "work"].value`)
                    // is no longer a value of the attribute: it goes, rather than stay as
                    // `{"type": "work", "primary": true}`
                    if s == "value" && find_attr(sub_defs, "value").is_some() {
                        items.retain(|item| {
                            item.as_object().is_none_or(|o| o.contains_key("value"))
                        });
                    }
                }
            }
            if items.is_empty() {
                container.remove(key);
            }
        }
        OpKind::Add | OpKind::Replace => {
            if matched.is_empty() {
                // create the element the filter describes (RFC 7644 §3.5.2.1 / Entra, Okta)
                let mut element = element_from_filter(filter).ok_or_else(|| {
                    ProtocolError::new(
                        ScimType::NoTarget,
                        format!("no value of \"{key}\" matches the filter [{filter}]"),
                    )
                })?;
                match &sub_key {
                    Some(s) => {
                        element.insert(s.clone(), value);
                    }
                    None => {
                        let mut el = Value::Object(element);
                        merge_into(&mut el, value);
                        element = match el {
                            Value::Object(m) => m,
                            _ => Map::new(),
                        };
                    }
                }
                items.push(Value::Object(element));
                let last = items.len() - 1;
                fix_primary(items, Some(last));
            } else {
                for &i in &matched {
                    match &sub_key {
                        Some(s) => {
                            if let Some(o) = items[i].as_object_mut() {
                                o.insert(s.clone(), value.clone());
                            }
                        }
                        None => merge_into(&mut items[i], value.clone()),
                    }
                }
                // once, not per element (it reads them all): the last element written as
                // primary wins, as if each write had settled it in turn
                let winner = matched
                    .iter()
                    .rev()
                    .copied()
                    .find(|&i| is_primary(&items[i]));
                fix_primary(items, winner);
            }
        }
    }
    Ok(())
}

/// A value filter of a PATCH path names sub-attributes of `key` and compares each with a
/// literal of its type, as a `filter` query's value filter must (the same mistakes are
/// `invalidFilter` there; here they are `invalidPath`).
fn check_value_filter(key: &str, sub_defs: &[AttrDef], f: &Filter) -> Result<(), ProtocolError> {
    let def = |p: &AttrPath| -> Result<&AttrDef, ProtocolError> {
        let found =
            find_attr(sub_defs, &p.attr).filter(|_| p.sub_attr.is_none() && p.schema.is_none());
        found.ok_or_else(|| {
            ProtocolError::invalid_path(format!(
                "\"{key}\" has no sub-attribute \"{p}\" to filter on"
            ))
        })
    };
    match f {
        Filter::And(a, b) | Filter::Or(a, b) => {
            check_value_filter(key, sub_defs, a)?;
            check_value_filter(key, sub_defs, b)
        }
        Filter::Not(inner) => check_value_filter(key, sub_defs, inner),
        Filter::Present(p) => def(p).map(|_| ()),
        Filter::ValuePath { path, .. } => Err(ProtocolError::invalid_path(format!(
            "\"{key}[{path}[...]]\": value filters do not nest"
        ))),
        Filter::Compare { path, op, value } => {
            let d = def(path)?;
            let fits = match (d.ty, value) {
                (_, CompValue::Null) => matches!(op, CompareOp::Eq | CompareOp::Ne),
                (
                    AttrType::String | AttrType::Reference | AttrType::DateTime,
                    CompValue::String(_),
                ) => true,
                (AttrType::Boolean, CompValue::Bool(_)) => {
                    matches!(op, CompareOp::Eq | CompareOp::Ne)
                }
                (AttrType::Integer | AttrType::Decimal, CompValue::Number(_)) => true,
                _ => false,
            };
            if fits {
                Ok(())
            } else {
                Err(ProtocolError::invalid_path(format!(
                    "\"{key}.{}\" is {}: \"{path} {} ...\" does not apply to it",
                    d.name,
                    d.ty.as_str(),
                    op.as_str()
                )))
            }
        }
    }
}

/// The element a filter of `eq` terms joined by `and` describes, e.g. `type eq "work"`.
fn element_from_filter(filter: &Filter) -> Option<Map<String, Value>> {
    let mut out = Map::new();
    fn walk(f: &Filter, out: &mut Map<String, Value>) -> bool {
        match f {
            Filter::And(a, b) => walk(a, out) && walk(b, out),
            Filter::Compare {
                path,
                op: CompareOp::Eq,
                value,
            } if path.sub_attr.is_none() => {
                let v = match value {
                    CompValue::String(s) => Value::String(s.clone()),
                    CompValue::Bool(b) => Value::Bool(*b),
                    CompValue::Number(n) => Value::Number(n.clone()),
                    CompValue::Null => return false,
                };
                out.insert(path.attr.clone(), v);
                true
            }
            _ => false,
        }
    }
    walk(filter, &mut out).then_some(out)
}

/// Member ids named by `value eq "id"` terms joined with `or`.
fn ids_from_filter(filter: &Filter, out: &mut Vec<String>) -> bool {
    match filter {
        Filter::Or(a, b) => ids_from_filter(a, out) && ids_from_filter(b, out),
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: CompValue::String(id),
        } if path.attr.eq_ignore_ascii_case("value") && path.sub_attr.is_none() => {
            out.push(id.clone());
            true
        }
        _ => false,
    }
}

fn member_change(
    op: OpKind,
    path: &PatchPath,
    value: Value,
) -> Result<MemberChange, ProtocolError> {
    if path.attr.sub_attr.is_some() || path.sub_attr.is_some() {
        return Err(ProtocolError::invalid_path(
            "members can be added, removed or replaced as a whole; sub-attributes of members are immutable",
        ));
    }
    if let Some(filter) = &path.value_filter {
        let mut ids = Vec::new();
        if !ids_from_filter(filter, &mut ids) {
            return Err(ProtocolError::invalid_filter(format!(
                "members can be selected by value only, e.g. members[value eq \"id\"]; got [{filter}]"
            )));
        }
        return match op {
            OpKind::Remove => Ok(MemberChange::Remove(ids)),
            _ => Err(ProtocolError::invalid_path(
                "members are immutable: add or remove a member instead of changing one",
            )),
        };
    }
    match op {
        OpKind::Add => Ok(MemberChange::Add(parse_members(&value)?)),
        OpKind::Replace => Ok(MemberChange::Replace(parse_members(&value)?)),
        OpKind::Remove if value.is_null() => Ok(MemberChange::RemoveAll),
        OpKind::Remove => Ok(MemberChange::Remove(
            parse_members(&value)?
                .into_iter()
                .map(|m| m.value)
                .collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::{ENTERPRISE_USER_SCHEMA, USER_SCHEMA};
    use serde_json::json;

    fn patch(ops: Value) -> Vec<PatchOp> {
        parse_patch(json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops})).unwrap()
    }

    fn user() -> Map<String, Value> {
        json!({"schemas": [USER_SCHEMA], "userName": "alice", "active": true,
               "name": {"givenName": "Alice", "familyName": "A"},
               "emails": [{"value": "a@work.com", "type": "work", "primary": true},
                          {"value": "a@home.com", "type": "home"}]})
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn okta_deactivation_and_entra_add_active() {
        let mut d = user();
        apply(
            ResourceKind::User,
            &mut d,
            &patch(json!([{"op": "replace", "value": {"active": false}}])),
        )
        .unwrap();
        assert_eq!(d["active"], false);
        let mut d = user();
        apply(
            ResourceKind::User,
            &mut d,
            &patch(json!([{"op": "Add", "path": "active", "value": "False"}])),
        )
        .unwrap();
        assert_eq!(d["active"], "False"); // coerced to a boolean by normalize()
    }

    #[test]
    fn sub_attributes_filters_and_extensions() {
        let mut d = user();
        let ops = patch(json!([
            {"op": "replace", "path": "name.givenName", "value": "Alicia"},
            {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "new@work.com"},
            {"op": "add", "path": "addresses[type eq \"work\"].streetAddress", "value": "1 Main St"},
            {"op": "remove", "path": "emails[type eq \"home\"]"},
            {"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "R&D"},
            {"op": "Replace", "value": {"name.familyName": "B", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager": "boss"}},
        ]));
        apply(ResourceKind::User, &mut d, &ops).unwrap();
        assert_eq!(d["name"], json!({"givenName": "Alicia", "familyName": "B"}));
        assert_eq!(
            d["emails"],
            json!([{"value": "new@work.com", "type": "work", "primary": true}])
        );
        assert_eq!(
            d["addresses"],
            json!([{"type": "work", "streetAddress": "1 Main St"}])
        );
        assert_eq!(
            d[ENTERPRISE_USER_SCHEMA],
            json!({"department": "R&D", "manager": "boss"})
        );
    }

    #[test]
    fn primary_stays_unique() {
        let mut d = user();
        apply(
            ResourceKind::User,
            &mut d,
            &patch(json!([
                {"op": "add", "path": "emails", "value": [{"value": "x@y.com", "primary": true}]}
            ])),
        )
        .unwrap();
        let primaries: Vec<_> = d["emails"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["primary"] == true)
            .collect();
        assert_eq!(primaries.len(), 1);
        assert_eq!(primaries[0]["value"], "x@y.com");
    }

    #[test]
    fn members_become_deltas() {
        let mut d = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "eng"})
            .as_object().unwrap().clone();
        let ops = patch(json!([
            {"op": "remove", "path": "members[value eq \"u1\"]"},
            {"op": "add", "path": "members", "value": [{"value": "u2"}]},
            {"op": "Remove", "path": "members", "value": [{"value": "u3"}]},
            {"op": "replace", "value": {"id": "g1", "displayName": "Engineering"}},
            {"op": "remove", "path": "members"},
        ]));
        let changes = apply(ResourceKind::Group, &mut d, &ops).unwrap();
        assert_eq!(
            changes,
            vec![
                MemberChange::Remove(vec!["u1".into()]),
                MemberChange::Add(vec![MemberRef {
                    value: "u2".into(),
                    kind: None
                }]),
                MemberChange::Remove(vec!["u3".into()]),
                MemberChange::RemoveAll,
            ]
        );
        assert_eq!(d["displayName"], "Engineering");
        assert!(!d.contains_key("id"));
    }

    #[test]
    fn bad_requests_are_rejected() {
        let bad = [
            json!({"Operations": [{"op": "add", "path": "x", "value": 1}]}),
            json!({"schemas": [PATCH_OP_SCHEMA], "Operations": []}),
            json!({"schemas": [PATCH_OP_SCHEMA], "Operations": [{"op": "move", "path": "x"}]}),
            json!({"schemas": [PATCH_OP_SCHEMA], "Operations": [{"op": "add", "path": "x"}]}),
            json!({"schemas": [PATCH_OP_SCHEMA], "Operations": [{"op": "remove"}]}),
            json!({"schemas": [PATCH_OP_SCHEMA], "Operations": [{"op": "add", "path": "a[[", "value": 1}]}),
        ];
        for b in bad {
            assert!(parse_patch(b.clone()).is_err(), "{b}");
        }
        let mut d = user();
        let err = apply(
            ResourceKind::User,
            &mut d,
            &patch(json!([{"op": "replace", "path": "id", "value": "x"}])),
        )
        .unwrap_err();
        assert_eq!(err.scim_type, ScimType::Mutability);
        let err = apply(
            ResourceKind::User,
            &mut d,
            &patch(json!([{"op": "replace", "path": "emails[value co \"z\"].type", "value": "x"}])),
        )
        .unwrap_err();
        assert_eq!(err.scim_type, ScimType::NoTarget);
    }

    /// Removing the `value` of filtered elements removes those elements (an email without an
    /// address is not an email); other sub-attributes are removed alone.
    #[test]
    fn removing_the_value_of_an_element_removes_it() {
        let mut d = user();
        apply(
            ResourceKind::User,
            &mut d,
            &patch(json!([{"op": "remove", "path": "emails[type eq \"work\"].value"}])),
        )
        .unwrap();
        assert_eq!(
            d["emails"],
            json!([{"value": "a@home.com", "type": "home"}])
        );
        apply(
            ResourceKind::User,
            &mut d,
            &patch(json!([{"op": "remove", "path": "emails[type eq \"home\"].type"}])),
        )
        .unwrap();
        assert_eq!(d["emails"], json!([{"value": "a@home.com"}]));
        apply(
            ResourceKind::User,
            &mut d,
            &patch(json!([{"op": "remove", "path": "emails[value pr].value"}])),
        )
        .unwrap();
        assert!(!d.contains_key("emails"), "{d:?}");
    }

    /// Entra ID's custom extension attributes (`urn:...:CustomExtensionName:2.0:User:tag`):
    /// an extension rolecall does not model is changed like any attribute it keeps as sent,
    /// by attribute path, by whole-extension path, and in a path-less value.
    #[test]
    fn foreign_extensions_are_patched() {
        const CUSTOM: &str = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";
        let mut d = user();
        d.insert(CUSTOM.into(), json!({"tag": "701984"}));
        let tag = format!("{CUSTOM}:tag");
        apply(
            ResourceKind::User,
            &mut d,
            &patch(json!([
                {"op": "Replace", "path": "active", "value": "False"},
                {"op": "Replace", "path": tag, "value": "701985"},
            ])),
        )
        .unwrap();
        assert_eq!(d["active"], "False");
        assert_eq!(d[CUSTOM], json!({"tag": "701985"}));

        // the URN in another case finds the same object; a whole-extension path merges
        let upper = CUSTOM.to_uppercase();
        apply(
            ResourceKind::User,
            &mut d,
            &patch(json!([
                {"op": "add", "path": format!("{upper}:costCode"), "value": "7"},
                {"op": "replace", "path": CUSTOM, "value": {"tag": "1", "site": "Oslo"}},
            ])),
        )
        .unwrap();
        assert_eq!(
            d[CUSTOM],
            json!({"tag": "1", "costCode": "7", "site": "Oslo"})
        );
        assert!(!d.contains_key(&upper));

        // path-less (aadOptscim062020): attribute keys and a whole-extension key, and an
        // extension not seen before
        let other = "urn:ietf:params:scim:schemas:extension:Microsoft:Entra:2.0:User";
        apply(
            ResourceKind::User,
            &mut d,
            &patch(json!([{"op": "replace", "value": {
                tag.clone(): "2",
                format!("{other}:extensionAttribute1"): "x",
                CUSTOM: {"site": "Bergen"},
            }}])),
        )
        .unwrap();
        assert_eq!(d[CUSTOM]["tag"], "2");
        assert_eq!(d[CUSTOM]["site"], "Bergen");
        assert_eq!(d[other], json!({"extensionAttribute1": "x"}));

        // removing the last attribute removes the extension; removing a whole one too
        apply(
            ResourceKind::User,
            &mut d,
            &patch(json!([
                {"op": "remove", "path": format!("{other}:extensionAttribute1")},
                {"op": "remove", "path": CUSTOM},
            ])),
        )
        .unwrap();
        assert!(!d.contains_key(other) && !d.contains_key(CUSTOM), "{d:?}");

        // a core schema's URN (or a prefix of it) is not an extension
        for path in [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:core:2.0:User:nope:x",
            "urn:ietf:params:scim:api:messages:2.0:PatchOp:x",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager:x",
        ] {
            let r = apply(
                ResourceKind::User,
                &mut d,
                &patch(json!([{"op": "add", "path": path, "value": "v"}])),
            );
            assert!(r.is_err(), "{path}: {d:?}");
        }
    }

    #[test]
    fn large_multi_valued_attributes_stay_linear() {
        // 1,000 phone numbers, every one matched and written, the last made primary: one
        // settling of `primary`, not one per element (this took minutes at 50,000 before)
        let phones: Vec<Value> = (0..1000)
            .map(|i| json!({"value": format!("+1 555 {i:04}"), "primary": i % 2 == 0}))
            .collect();
        let mut d = user();
        d.insert("phoneNumbers".into(), Value::Array(phones));
        let ops = patch(json!([
            {"op": "replace", "path": "phoneNumbers[value pr].type", "value": "work"},
            {"op": "replace", "path": "phoneNumbers[value eq \"+1 555 0999\"].primary", "value": true},
            {"op": "remove", "path": "phoneNumbers[value sw \"+1 555 00\"]"}
        ]));
        apply(ResourceKind::User, &mut d, &ops).unwrap();
        let phones = d["phoneNumbers"].as_array().unwrap();
        assert_eq!(phones.len(), 900);
        assert!(phones.iter().all(|p| p["type"] == "work"));
        let primaries: Vec<&Value> = phones.iter().filter(|p| is_primary(p)).collect();
        assert_eq!(primaries.len(), 1);
        assert_eq!(primaries[0]["value"], "+1 555 0999");
        // adding more than the limit at once is refused before the work
        let many: Vec<Value> = (0..1001)
            .map(|i| json!({"value": format!("x{i}")}))
            .collect();
        let err = apply(
            ResourceKind::User,
            &mut user(),
            &patch(json!([{"op": "add", "path": "emails", "value": many}])),
        )
        .unwrap_err();
        assert_eq!(err.scim_type, ScimType::InvalidValue);
    }

    #[test]
    fn value_filter_paths_are_checked_against_the_schema() {
        let fails = |op: Value| {
            let mut d = user();
            let before = d.clone();
            let err = apply(ResourceKind::User, &mut d, &patch(json!([op.clone()])))
                .expect_err(&op.to_string());
            (err.scim_type, d == before) // (error, document untouched)
        };
        // unknown sub-attributes, in the filter or after it, and literals of the wrong type
        for op in [
            json!({"op": "replace", "path": "emails[foo eq \"x\"].value", "value": "y"}),
            json!({"op": "add", "path": "emails[type eq \"work\"].bogus", "value": "y"}),
            json!({"op": "add", "path": "emails[primary eq \"x\"]", "value": {"value": "a@b"}}),
            json!({"op": "replace", "path": "emails[value eq true].type", "value": "x"}),
            json!({"op": "remove", "path": "emails[display.x pr]"}),
            json!({"op": "add", "path": "emails[primary gt false].type", "value": "x"}),
        ] {
            assert_eq!(fails(op), (ScimType::InvalidPath, true));
        }
        // a whole element needs an object; a one-element array of one is accepted
        for value in [
            json!([{"value": "o@x.com"}, {"value": "p@x.com"}]),
            json!("v"),
            json!(5),
            json!(null),
        ] {
            for op in ["add", "replace"] {
                let o = json!({"op": op, "path": "emails[type eq \"other\"]", "value": value});
                assert_eq!(fails(o), (ScimType::InvalidValue, true));
            }
        }
        let mut d = user();
        apply(
            ResourceKind::User,
            &mut d,
            &patch(json!([{"op": "add", "path": "emails[type eq \"other\"]",
                           "value": [{"value": "o@x.com"}]},
                          {"op": "remove", "path": "emails[type eq \"home\" and not (primary eq true)]"}])),
        )
        .unwrap();
        assert_eq!(
            d["emails"],
            json!([{"value": "a@work.com", "type": "work", "primary": true},
                   {"type": "other", "value": "o@x.com"}])
        );
    }
}
