//! Attribute paths of filters and `sortBy` matched against the schema table: what a
//! `[urn:]attr[.sub]` names, with the canonical (schema-spelled) names a stored document
//! uses. Only names that come out of here may be used to address a stored document.

use super::filter::AttrPath;
use super::resource::ResourceKind;
use super::schema::{find_attr, AttrDef, AttrType};

/// An attribute of a resource type, as the schema defines it.
#[derive(Debug, Clone, Copy)]
pub struct AttrRef {
    /// The extension schema the attribute belongs to (its canonical URN, which is also the
    /// key of the extension object in a stored document), or `None` for the core schema.
    pub ext: Option<&'static str>,
    /// The top-level attribute.
    pub top: &'static AttrDef,
    /// The sub-attribute, for `attr.sub`.
    pub sub: Option<&'static AttrDef>,
}

impl AttrRef {
    /// The document path of the top-level attribute: `[urn, attr]` or `[attr]`.
    pub fn top_path(&self) -> Vec<&'static str> {
        let mut p: Vec<&'static str> = self.ext.into_iter().collect();
        p.push(self.top.name);
        p
    }

    /// The attribute a value comparison reads: the sub-attribute if named, else the
    /// attribute itself, else (for a complex attribute) its `value` sub-attribute, as
    /// RFC 7644 §3.4.2.2 and the in-memory evaluator treat complex values.
    pub fn leaf(&self) -> Option<&'static AttrDef> {
        match self.sub {
            Some(s) => Some(s),
            None if self.top.ty == AttrType::Complex => find_attr(self.top.sub, "value"),
            None => Some(self.top),
        }
    }
}

/// Resolve `path` against the schemas of `kind`. The error names what is unknown.
pub fn resolve(kind: ResourceKind, path: &AttrPath) -> Result<AttrRef, String> {
    let ext = match &path.schema {
        None => None,
        Some(urn) if urn.eq_ignore_ascii_case(kind.core_schema()) => None,
        Some(urn) => match kind.extension(urn) {
            Some((canonical, _)) => Some(canonical),
            None => {
                return Err(format!(
                    "\"{path}\": {} resources have no schema \"{urn}\"",
                    kind.as_str()
                ))
            }
        },
    };
    let top = kind.attr(ext, &path.attr).ok_or_else(|| {
        format!(
            "\"{path}\": {} resources have no attribute \"{}\"",
            kind.as_str(),
            path.attr
        )
    })?;
    let sub = match &path.sub_attr {
        None => None,
        Some(s) if top.ty == AttrType::Complex => {
            Some(find_attr(top.sub, s).ok_or_else(|| {
                format!("\"{path}\": \"{}\" has no sub-attribute \"{s}\"", top.name)
            })?)
        }
        Some(_) => {
            return Err(format!(
                "\"{path}\": \"{}\" is not complex and has no sub-attributes",
                top.name
            ))
        }
    };
    Ok(AttrRef { ext, top, sub })
}

/// A sub-attribute of a complex attribute, named relative to it (inside `attr[...]`).
pub fn resolve_sub(outer: &AttrRef, inner: &AttrPath) -> Result<&'static AttrDef, String> {
    if inner.schema.is_some() || inner.sub_attr.is_some() {
        return Err(format!(
            "\"{inner}\" inside \"{}[...]\" must be a plain sub-attribute name",
            outer.top.name
        ));
    }
    find_attr(outer.top.sub, &inner.attr).ok_or_else(|| {
        format!(
            "\"{}\" has no sub-attribute \"{}\"",
            outer.top.name, inner.attr
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::filter::parse_filter;
    use crate::scim::filter::Filter;
    use crate::scim::schema::ENTERPRISE_USER_SCHEMA;

    fn path(f: &str) -> AttrPath {
        match parse_filter(&format!("{f} pr")).unwrap() {
            Filter::Present(p) => p,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn names_resolve_to_canonical_schema_names() {
        let r = resolve(ResourceKind::User, &path("NAME.familyname")).unwrap();
        assert_eq!(r.top_path(), vec!["name"]);
        assert_eq!(r.sub.map(|s| s.name), Some("familyName"));
        let r = resolve(
            ResourceKind::User,
            &path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:Manager.Value"),
        )
        .unwrap();
        assert_eq!(r.top_path(), vec![ENTERPRISE_USER_SCHEMA, "manager"]);
        assert_eq!(r.leaf().map(|l| l.name), Some("value"));
        let r = resolve(ResourceKind::User, &path("phoneNumbers")).unwrap();
        assert!(r.top.multi);
        assert_eq!(r.leaf().map(|l| l.name), Some("value"));
        let r = resolve(
            ResourceKind::User,
            &path("urn:ietf:params:scim:schemas:core:2.0:User:title"),
        )
        .unwrap();
        assert_eq!(r.top_path(), vec!["title"]);
        assert!(resolve(ResourceKind::User, &path("addresses"))
            .unwrap()
            .leaf()
            .is_none());
    }

    #[test]
    fn unknown_names_are_errors_that_name_them() {
        for (kind, p, needle) in [
            (ResourceKind::User, "nope", "\"nope\""),
            (ResourceKind::User, "name.nope", "\"nope\""),
            (ResourceKind::User, "title.x", "not complex"),
            (ResourceKind::Group, "userName", "\"userName\""),
            (ResourceKind::User, "department", "\"department\""),
            (
                ResourceKind::Group,
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
                "no schema",
            ),
        ] {
            let e = resolve(kind, &path(p)).unwrap_err();
            assert!(e.contains(needle), "{p}: {e}");
        }
    }
}
