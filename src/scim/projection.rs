//! `attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5 and §3.9): which attributes of a
//! rendered resource are returned. `id` and `schemas` are always returned; with `attributes`
//! only the named ones (and those) are; `excludedAttributes` removes attributes from the
//! default set but never `id` or `schemas`.

use serde_json::{Map, Value};

use super::error::ProtocolError;
use super::filter::{parse_patch_path, AttrPath};
use super::resource::ResourceKind;

/// A parsed `attributes` / `excludedAttributes` request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Projection {
    pub attributes: Vec<AttrPath>,
    pub excluded: Vec<AttrPath>,
}

fn parse_list(list: Option<&str>, param: &str) -> Result<Vec<AttrPath>, ProtocolError> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            // a whole extension, named by its schema URN (whose last part would otherwise be
            // read as an attribute): `attr` is left empty
            if let Some(urn) = extension_urn(item) {
                return Ok(AttrPath {
                    schema: Some(urn.to_string()),
                    attr: String::new(),
                    sub_attr: None,
                });
            }
            let p = parse_patch_path(item).map_err(|e| {
                ProtocolError::invalid_value(format!("{param}: invalid attribute \"{item}\": {e}"))
            })?;
            if p.value_filter.is_some() || p.sub_attr.is_some() {
                return Err(ProtocolError::invalid_value(format!(
                    "{param}: \"{item}\" is not an attribute name (filters are not allowed here)"
                )));
            }
            Ok(p.attr)
        })
        .collect()
}

const ALWAYS: [&str; 2] = ["id", "schemas"];

/// The extension schema URN `item` names, if it names one (of any resource type).
fn extension_urn(item: &str) -> Option<&'static str> {
    [ResourceKind::User, ResourceKind::Group]
        .iter()
        .flat_map(|k| k.extensions())
        .map(|(urn, _)| *urn)
        .find(|urn| urn.eq_ignore_ascii_case(item))
}

/// A request for a whole extension (see [`extension_urn`]).
fn whole_extension(p: &AttrPath, key: &str) -> bool {
    p.attr.is_empty()
        && p.schema
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case(key))
}

impl Projection {
    pub fn parse(attributes: Option<&str>, excluded: Option<&str>) -> Result<Self, ProtocolError> {
        Ok(Self {
            attributes: parse_list(attributes, "attributes")?,
            excluded: parse_list(excluded, "excludedAttributes")?,
        })
    }

    pub fn is_identity(&self) -> bool {
        self.attributes.is_empty() && self.excluded.is_empty()
    }

    /// Is the top-level attribute `name` (core, not an extension) returned at all?
    pub fn returns(&self, kind: ResourceKind, name: &str) -> bool {
        let core = |p: &AttrPath| {
            p.schema
                .as_deref()
                .is_none_or(|s| s.eq_ignore_ascii_case(kind.core_schema()))
        };
        if ALWAYS.iter().any(|a| a.eq_ignore_ascii_case(name)) {
            return true;
        }
        if !self.attributes.is_empty() {
            return self
                .attributes
                .iter()
                .any(|p| core(p) && p.attr.eq_ignore_ascii_case(name));
        }
        !self
            .excluded
            .iter()
            .any(|p| core(p) && p.attr.eq_ignore_ascii_case(name) && p.sub_attr.is_none())
    }

    /// Apply to a rendered resource.
    pub fn apply(&self, kind: ResourceKind, resource: Map<String, Value>) -> Map<String, Value> {
        if self.is_identity() {
            return resource;
        }
        if !self.attributes.is_empty() {
            let mut out = Map::new();
            for (k, v) in resource {
                if ALWAYS.iter().any(|a| a.eq_ignore_ascii_case(&k)) {
                    out.insert(k, v);
                    continue;
                }
                if let Some(v) = select(kind, &k, v, &self.attributes) {
                    out.insert(k, v);
                }
            }
            return out;
        }
        let mut out = resource;
        for p in &self.excluded {
            exclude(kind, &mut out, p);
        }
        out
    }
}

fn is_extension_key(kind: ResourceKind, key: &str) -> bool {
    kind.extension(key).is_some()
}

/// Keep the requested parts of `key: value`, or None.
fn select(kind: ResourceKind, key: &str, value: Value, wanted: &[AttrPath]) -> Option<Value> {
    if is_extension_key(kind, key) {
        let Value::Object(ext) = value else {
            return None;
        };
        if wanted.iter().any(|p| whole_extension(p, key)) {
            return Some(Value::Object(ext));
        }
        let mine: Vec<&AttrPath> = wanted
            .iter()
            .filter(|p| {
                p.schema
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case(key))
            })
            .collect();
        let mut out = Map::new();
        for (k, v) in ext {
            let subs: Vec<AttrPath> = mine
                .iter()
                .filter(|p| p.attr.eq_ignore_ascii_case(&k))
                .map(|p| AttrPath {
                    schema: None,
                    attr: p.attr.clone(),
                    sub_attr: p.sub_attr.clone(),
                })
                .collect();
            if let Some(v) = keep(v, &subs) {
                out.insert(k, v);
            }
        }
        return (!out.is_empty()).then_some(Value::Object(out));
    }
    let core = |p: &&AttrPath| {
        p.schema
            .as_deref()
            .is_none_or(|s| s.eq_ignore_ascii_case(kind.core_schema()))
    };
    let subs: Vec<AttrPath> = wanted
        .iter()
        .filter(core)
        .filter(|p| p.attr.eq_ignore_ascii_case(key))
        .cloned()
        .collect();
    keep(value, &subs)
}

/// `subs` are the requests naming this attribute; a request without sub-attribute keeps it whole.
fn keep(value: Value, subs: &[AttrPath]) -> Option<Value> {
    if subs.is_empty() {
        return None;
    }
    if subs.iter().any(|p| p.sub_attr.is_none()) {
        return Some(value);
    }
    let names: Vec<&str> = subs.iter().filter_map(|p| p.sub_attr.as_deref()).collect();
    let pick = |v: Value| -> Option<Value> {
        let Value::Object(o) = v else { return None };
        let o: Map<String, Value> = o
            .into_iter()
            .filter(|(k, _)| names.iter().any(|n| n.eq_ignore_ascii_case(k)))
            .collect();
        (!o.is_empty()).then_some(Value::Object(o))
    };
    match value {
        Value::Array(items) => {
            let items: Vec<Value> = items.into_iter().filter_map(pick).collect();
            (!items.is_empty()).then_some(Value::Array(items))
        }
        other => pick(other),
    }
}

fn exclude(kind: ResourceKind, out: &mut Map<String, Value>, p: &AttrPath) {
    if p.attr.is_empty() {
        if let Some(key) = out.keys().find(|k| whole_extension(p, k)).cloned() {
            out.remove(&key);
        }
        return;
    }
    let container = match &p.schema {
        Some(s) if !s.eq_ignore_ascii_case(kind.core_schema()) => {
            match out
                .iter_mut()
                .find(|(k, _)| k.eq_ignore_ascii_case(s))
                .map(|(_, v)| v)
            {
                Some(Value::Object(ext)) => ext,
                _ => return,
            }
        }
        _ => out,
    };
    let Some(key) = container
        .keys()
        .find(|k| k.eq_ignore_ascii_case(&p.attr))
        .cloned()
    else {
        return;
    };
    if ALWAYS.iter().any(|a| a.eq_ignore_ascii_case(&key)) && p.schema.is_none() {
        return;
    }
    match &p.sub_attr {
        None => {
            container.remove(&key);
        }
        Some(sub) => {
            let strip = |v: &mut Value| {
                if let Value::Object(o) = v {
                    if let Some(k) = o.keys().find(|k| k.eq_ignore_ascii_case(sub)).cloned() {
                        o.remove(&k);
                    }
                }
            };
            match container.get_mut(&key) {
                Some(Value::Array(items)) => items.iter_mut().for_each(strip),
                Some(v) => strip(v),
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> Map<String, Value> {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": "1", "userName": "a",
            "name": {"givenName": "A", "familyName": "B"},
            "emails": [{"value": "a@x", "type": "work"}, {"value": "a@y", "type": "home"}],
            "meta": {"resourceType": "User"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D", "costCenter": "1"}
        })
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn attributes_keep_only_what_is_asked_plus_always() {
        let p = Projection::parse(
            Some("userName, name.givenName,emails.value,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"),
            None,
        )
        .unwrap();
        let out = Value::Object(p.apply(ResourceKind::User, user()));
        assert_eq!(
            out,
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": "1", "userName": "a",
                   "name": {"givenName": "A"}, "emails": [{"value": "a@x"}, {"value": "a@y"}],
                   "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"}})
        );
    }

    #[test]
    fn excluded_attributes_never_remove_id_or_schemas() {
        let p = Projection::parse(None, Some("id,schemas,emails,name.familyName,meta,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter")).unwrap();
        let out = p.apply(ResourceKind::User, user());
        assert!(out.contains_key("id") && out.contains_key("schemas"));
        assert!(!out.contains_key("emails") && !out.contains_key("meta"));
        assert_eq!(out["name"], json!({"givenName": "A"}));
        assert_eq!(
            out["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            json!({"department": "R&D"})
        );
        assert!(!p.returns(ResourceKind::Group, "emails"));
        assert!(p.returns(ResourceKind::Group, "members"));
        let q = Projection::parse(Some("displayName"), None).unwrap();
        assert!(!q.returns(ResourceKind::Group, "members"));
        assert!(Projection::parse(Some("emails[type eq \"work\"]"), None).is_err());
    }

    #[test]
    fn a_whole_extension_is_named_by_its_urn() {
        const EXT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        let only =
            Projection::parse(Some(&format!("userName,{}", EXT.to_uppercase())), None).unwrap();
        let out = Value::Object(only.apply(ResourceKind::User, user()));
        assert_eq!(
            out,
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": "1", "userName": "a",
                   EXT: {"department": "R&D", "costCenter": "1"}})
        );
        let without = Projection::parse(None, Some(EXT)).unwrap();
        let out = without.apply(ResourceKind::User, user());
        assert!(!out.contains_key(EXT));
        assert!(out.contains_key("emails") && out.contains_key("name"));
        assert!(without.returns(ResourceKind::User, "emails"));
    }
}
