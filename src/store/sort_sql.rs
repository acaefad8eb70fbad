//! `sortBy` compiled to a SQL sort key, and keyset conditions for cursor paging.
//!
//! A sort key is one text expression (NULL when the resource has no value): the indexed
//! column where there is one, otherwise the value in the stored document. A multi-valued
//! attribute sorts by its primary element's value, else its first element's (RFC 7644
//! §3.4.2.3). Resources without a value sort last in ascending order and first in
//! descending order (the RFC: "ordered last if ascending and first if descending"), and the
//! insertion sequence `seq` breaks every tie, so an order is total and deterministic.

use super::filter_sql::{known, Param};
use super::json_sql::{Dialect, Root};
use crate::scim::attr_ref::resolve;
use crate::scim::cursor::Position;
use crate::scim::error::ProtocolError;
use crate::scim::filter::AttrPath;
use crate::scim::resource::ResourceKind;
use crate::scim::schema::{find_attr, AttrDef, AttrType, Mutability};
use crate::scim::sort::{SortOrder, SortSpec};

fn bad(detail: String) -> ProtocolError {
    ProtocolError::invalid_value(detail)
}

fn core(kind: ResourceKind, path: &AttrPath) -> bool {
    path.schema
        .as_deref()
        .is_none_or(|s| s.eq_ignore_ascii_case(kind.core_schema()))
}

/// The sort key expression of `path` for `kind`, in code-point order. With `lenient`, an
/// attribute only the other resource type has is a key with no value (`NULL`).
pub fn sort_key(
    d: Dialect,
    kind: ResourceKind,
    path: &AttrPath,
    lenient: bool,
) -> Result<String, ProtocolError> {
    let a = path.attr.to_ascii_lowercase();
    let s = path.sub_attr.as_deref().map(str::to_ascii_lowercase);
    if core(kind, path) {
        let col = match (kind, a.as_str(), s.as_deref()) {
            (_, "id", None) => Some("r.id"),
            (_, "externalid", None) => Some("r.external_id"),
            (_, "meta", Some("created")) => Some("r.created"),
            (_, "meta", Some("lastmodified")) => Some("r.last_modified"),
            (_, "displayname", None) => Some("r.display_name_lower"),
            (ResourceKind::User, "username", None) => Some("r.user_name_lower"),
            _ => None,
        };
        if let Some(col) = col {
            return Ok(d.ordered(col));
        }
        if a == "meta" {
            return Err(bad(format!(
                "cannot sort by \"{path}\"; meta.created and meta.lastModified can be sorted on"
            )));
        }
        if matches!(
            (kind, a.as_str()),
            (ResourceKind::Group, "members") | (ResourceKind::User, "groups")
        ) {
            return Err(bad(format!("cannot sort by \"{path}\"")));
        }
    }
    let r = match resolve(kind, path) {
        Ok(r) => r,
        Err(_) if lenient && known(other(kind), path) => return Ok("NULL".to_string()),
        Err(msg) => return Err(bad(format!("cannot sort by {msg}"))),
    };
    if r.top.mutability == Mutability::WriteOnly {
        return Err(bad(format!(
            "cannot sort by \"{path}\": it is never stored"
        )));
    }
    let leaf = r.leaf().ok_or_else(|| {
        bad(format!(
            "cannot sort by \"{path}\": it is complex; sort by one of its sub-attributes"
        ))
    })?;
    let top = r.top_path();
    let expr = if r.top.multi {
        let value = leaf_expr(d, Root::Elem, &[leaf.name], leaf, path)?;
        let first = match leaf.ty {
            AttrType::Boolean => d.first_element(&top, leaf.name, true),
            _ => fold(d, leaf, d.first_element(&top, leaf.name, false)),
        };
        match find_attr(r.top.sub, "primary") {
            Some(primary) => {
                let (from, cond) = d.elements(&top);
                let is_primary = d.boolean(Root::Elem, &[primary.name]);
                format!(
                    "COALESCE((SELECT {value} FROM {from} WHERE {cond} AND {is_primary} = 'true' LIMIT 1), {first})"
                )
            }
            None => first,
        }
    } else {
        let mut at = top;
        if r.top.ty == AttrType::Complex {
            at.push(leaf.name);
        }
        leaf_expr(d, Root::Doc, &at, leaf, path)?
    };
    Ok(d.ordered(&expr))
}

fn fold(d: Dialect, def: &AttrDef, expr: String) -> String {
    if def.case_exact {
        expr
    } else {
        d.fold(&expr)
    }
}

fn leaf_expr(
    d: Dialect,
    root: Root,
    at: &[&'static str],
    def: &AttrDef,
    path: &AttrPath,
) -> Result<String, ProtocolError> {
    match def.ty {
        AttrType::String | AttrType::Reference | AttrType::DateTime => {
            Ok(fold(d, def, d.text(root, at)))
        }
        AttrType::Boolean => Ok(d.boolean(root, at)),
        _ => Err(bad(format!(
            "cannot sort by \"{path}\": {} values are not sortable",
            def.ty.as_str()
        ))),
    }
}

fn other(kind: ResourceKind) -> ResourceKind {
    match kind {
        ResourceKind::User => ResourceKind::Group,
        ResourceKind::Group => ResourceKind::User,
    }
}

/// `ORDER BY` terms for a key expression (or none: insertion order) and a sequence column.
pub fn order_by(key: Option<&str>, seq: &str, sort: Option<&SortSpec>) -> String {
    match (key, sort.map(|s| s.order)) {
        (Some(k), Some(SortOrder::Descending)) => format!("({k} IS NULL) DESC, {k} DESC, {seq}"),
        (Some(k), _) => format!("({k} IS NULL), {k}, {seq}"),
        (None, _) => seq.to_string(),
    }
}

/// The rows after `pos` in the order [`order_by`] gives (key expression `key`, sequence
/// column `seq`), with its parameters numbered from `first`.
pub fn after(
    key: Option<&str>,
    seq_col: &str,
    sort: Option<&SortSpec>,
    pos: &Position,
    first: usize,
) -> (String, Vec<Param>) {
    let (k, s) = (format!("${first}"), format!("${}", first + 1));
    let desc = sort.is_some_and(|s| s.order == SortOrder::Descending);
    let seq = Param::Int(pos.seq);
    match (key, &pos.key) {
        (None, _) => (format!("({seq_col} > ${first})"), vec![seq]),
        (Some(x), Some(v)) => {
            let cond = if desc {
                format!("({x} < {k} OR ({x} = {k} AND {seq_col} > {s}))")
            } else {
                format!("({x} IS NULL OR {x} > {k} OR ({x} = {k} AND {seq_col} > {s}))")
            };
            (cond, vec![Param::Text(v.clone()), seq])
        }
        // the last row had no value: in ascending order only valueless rows follow; in
        // descending order the valueless rows come first, then every row with a value
        (Some(x), None) => {
            let cond = if desc {
                format!("({x} IS NOT NULL OR {seq_col} > ${first})")
            } else {
                format!("({x} IS NULL AND {seq_col} > ${first})")
            };
            (cond, vec![seq])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::sort::parse_sort;
    use crate::store::Backend;

    fn key(backend: Backend, kind: ResourceKind, by: &str) -> Result<String, ProtocolError> {
        let s = parse_sort(Some(by), None).unwrap().unwrap();
        sort_key(Dialect(backend), kind, &s.path, false)
    }

    #[test]
    fn sort_keys_use_columns_then_the_document() {
        assert_eq!(
            key(Backend::Sqlite, ResourceKind::User, "USERNAME").unwrap(),
            "r.user_name_lower"
        );
        assert_eq!(
            key(Backend::Postgres, ResourceKind::User, "meta.lastModified").unwrap(),
            "(r.last_modified COLLATE \"C\")"
        );
        assert_eq!(
            key(Backend::Sqlite, ResourceKind::User, "name.familyName").unwrap(),
            "lower(json_extract(r.doc, '$.\"name\".\"familyName\"'))"
        );
        let k = key(Backend::Sqlite, ResourceKind::User, "emails").unwrap();
        assert!(
            k.starts_with("COALESCE((SELECT lower(json_extract(je.value, '$.\"value\"'))"),
            "{k}"
        );
        assert!(
            k.contains("json_type(je.value, '$.\"primary\"') = 'true'"),
            "{k}"
        );
        assert!(
            k.ends_with("lower(json_extract(r.doc, '$.\"emails\"[0].\"value\"')))"),
            "{k}"
        );
    }

    #[test]
    fn unsortable_attributes_are_invalid_values() {
        for (kind, by) in [
            (ResourceKind::User, "nope"),
            (ResourceKind::User, "name"),
            (ResourceKind::User, "addresses"),
            (ResourceKind::User, "password"),
            (ResourceKind::User, "groups"),
            (ResourceKind::User, "meta.version"),
            (ResourceKind::Group, "userName"),
        ] {
            let e = key(Backend::Sqlite, kind, by).unwrap_err();
            assert_eq!(
                e.scim_type,
                crate::scim::error::ScimType::InvalidValue,
                "{by}"
            );
        }
        let s = parse_sort(Some("userName"), None).unwrap().unwrap();
        assert_eq!(
            sort_key(Dialect(Backend::Sqlite), ResourceKind::Group, &s.path, true).unwrap(),
            "NULL"
        );
    }

    #[test]
    fn keyset_conditions_follow_the_order() {
        let asc = parse_sort(Some("title"), None).unwrap();
        let desc = parse_sort(Some("title"), Some("descending")).unwrap();
        let at = |key: Option<&str>| Position {
            key: key.map(str::to_string),
            seq: 7,
        };
        assert_eq!(
            after(Some("k"), "r.seq", asc.as_ref(), &at(Some("m")), 3).0,
            "(k IS NULL OR k > $3 OR (k = $3 AND r.seq > $4))"
        );
        assert_eq!(
            after(Some("k"), "r.seq", asc.as_ref(), &at(None), 3).0,
            "(k IS NULL AND r.seq > $3)"
        );
        assert_eq!(
            after(Some("k"), "r.seq", desc.as_ref(), &at(None), 1).0,
            "(k IS NOT NULL OR r.seq > $1)"
        );
        assert_eq!(
            after(None, "r.seq", None, &at(None), 2),
            ("(r.seq > $2)".to_string(), vec![Param::Int(7)])
        );
        assert_eq!(
            order_by(Some("k"), "r.seq", desc.as_ref()),
            "(k IS NULL) DESC, k DESC, r.seq"
        );
    }
}
