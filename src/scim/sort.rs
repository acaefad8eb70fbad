//! `sortBy` / `sortOrder` (RFC 7644 §3.4.2.3), parsed at the edge. Which attributes can be
//! sorted on, and how, is decided against the schema where the sort is compiled.

use super::error::ProtocolError;
use super::filter::{parse_patch_path, AttrPath};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    Ascending,
    Descending,
}

/// A requested order: by `path`, then by insertion order.
#[derive(Debug, Clone, PartialEq)]
pub struct SortSpec {
    pub path: AttrPath,
    pub order: SortOrder,
}

impl SortSpec {
    /// A canonical text of the sort, for cursor fingerprints (names are case-insensitive).
    pub fn canonical(&self) -> String {
        let order = match self.order {
            SortOrder::Ascending => "ascending",
            SortOrder::Descending => "descending",
        };
        format!("{} {order}", self.path.to_string().to_ascii_lowercase())
    }
}

/// Parse `sortBy` and `sortOrder`. No `sortBy` (or an empty one) is the default order;
/// `sortOrder` is then checked but has nothing to apply to.
pub fn parse_sort(
    sort_by: Option<&str>,
    sort_order: Option<&str>,
) -> Result<Option<SortSpec>, ProtocolError> {
    let order = match sort_order.map(str::trim) {
        None | Some("") => SortOrder::Ascending,
        Some(o) if o.eq_ignore_ascii_case("ascending") => SortOrder::Ascending,
        Some(o) if o.eq_ignore_ascii_case("descending") => SortOrder::Descending,
        Some(o) => {
            return Err(ProtocolError::invalid_value(format!(
                "\"sortOrder\" must be \"ascending\" or \"descending\", not \"{o}\""
            )))
        }
    };
    let Some(by) = sort_by.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let bad =
        |why: String| ProtocolError::invalid_value(format!("invalid \"sortBy\" \"{by}\": {why}"));
    let p = parse_patch_path(by).map_err(|e| bad(e.to_string()))?;
    if p.value_filter.is_some() || p.sub_attr.is_some() {
        return Err(bad(
            "it must be an attribute name, not a value filter".into()
        ));
    }
    Ok(Some(SortSpec {
        path: p.attr,
        order,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::error::ScimType;

    #[test]
    fn sort_parameters_parse() {
        let s = parse_sort(Some("name.familyName"), Some("DESCENDING"))
            .unwrap()
            .unwrap();
        assert_eq!(s.path.attr, "name");
        assert_eq!(s.path.sub_attr.as_deref(), Some("familyName"));
        assert_eq!(s.order, SortOrder::Descending);
        assert_eq!(s.canonical(), "name.familyname descending");
        let s = parse_sort(
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"),
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.order, SortOrder::Ascending);
        assert!(s.path.schema.is_some());
        assert_eq!(parse_sort(None, Some("descending")).unwrap(), None);
        assert_eq!(parse_sort(Some(" "), None).unwrap(), None);
    }

    #[test]
    fn bad_sort_parameters_are_invalid_values() {
        for (by, order) in [
            (Some("userName"), Some("up")),
            (None, Some("sideways")),
            (Some("emails[type eq \"work\"]"), None),
            (Some("user name"), None),
            (Some("a.b.c"), None),
        ] {
            let e = parse_sort(by, order).unwrap_err();
            assert_eq!(e.scim_type, ScimType::InvalidValue, "{by:?} {order:?}");
        }
    }
}
