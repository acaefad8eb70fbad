//! SCIM filters (RFC 7644 §3.4.2.2) and PATCH paths (RFC 7644 §3.5.2).
//!
//! This module parses filter expressions and PATCH `path` values into an AST, prints them back
//! in a canonical form (`parse_filter(&f.to_string()) == Ok(f)`), and evaluates filters in memory
//! against `serde_json::Value` documents. It is pure: no I/O, no panics on any input.
//!
//! # Supported grammar
//!
//! ```text
//! FILTER    = orExp
//! orExp     = andExp *( ws "or" ws andExp )          ; left-associative
//! andExp    = term *( ws "and" ws term )             ; left-associative, binds tighter than "or"
//! term      = "not" [ws] "(" FILTER ")"              ; "not" always needs parentheses
//!           / "(" FILTER ")"
//!           / attrPath "[" valFilter "]"             ; value path, no whitespace before "["
//!           / attrPath ws "pr"
//!           / attrPath ws compareOp ws compValue
//! valFilter = FILTER without nested value paths; attribute paths are relative to the element
//! compareOp = "eq" / "ne" / "co" / "sw" / "ew" / "gt" / "ge" / "lt" / "le"
//! compValue = "true" / "false" / "null" / JSON number / JSON string (with JSON escapes)
//! attrPath  = [ URN ":" ] ATTRNAME [ "." ATTRNAME ]  ; URN = text starting with "urn:" up to the
//!                                                    ; LAST ":" (so "...:2.0:User:x" works)
//! ATTRNAME  = ALPHA *( "-" / "_" / DIGIT / ALPHA ) / "$ref"
//! PATH      = attrPath / attrPath "[" valFilter "]" [ "." ATTRNAME ]    ; PATCH path
//! ```
//!
//! Keywords (`and`, `or`, `not`, `pr`, operators, `true`, `false`, `null`) are case-insensitive.
//! Any run of ASCII whitespace is accepted where the RFC requires a single space, leading and
//! trailing whitespace is ignored, and whitespace may be omitted next to parentheses and quotes.
//! After the `]` of a value path in a *filter* only `and`, `or`, `)` or the end may follow
//! (`emails[type eq "work"].value eq "x"` is rejected); a PATCH path may continue with
//! `.subAttr`.
//!
//! Limits: input longer than [`MAX_FILTER_LEN`] bytes is rejected, and so is nesting deeper than
//! [`MAX_DEPTH`] levels — both the number of simultaneously open `(`/`not (`/`[` groups and the
//! height of the resulting tree (every `and`/`or`/`not`/value path node is one level, so a flat
//! chain of `or` terms may have at most `MAX_DEPTH + 1` terms). Code walking a parsed [`Filter`]
//! recursively can therefore rely on a recursion depth of at most `MAX_DEPTH + 1`.

use std::fmt;

mod eval;
#[cfg(test)]
mod fuzz_tests;
mod lex;
mod parse;

pub use eval::matches;
pub use parse::{parse_filter, parse_patch_path};

/// Maximum nesting of parentheses / `not` / value paths / `and`-`or` chains.
pub const MAX_DEPTH: usize = 32;
/// Maximum length of a filter or PATCH path, in bytes.
pub const MAX_FILTER_LEN: usize = 8192;

/// A parsed SCIM filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `left and right`
    And(Box<Filter>, Box<Filter>),
    /// `left or right`
    Or(Box<Filter>, Box<Filter>),
    /// `not (inner)`
    Not(Box<Filter>),
    /// `path op value`, e.g. `userName eq "bjensen"`.
    Compare {
        path: AttrPath,
        op: CompareOp,
        value: CompValue,
    },
    /// `path pr`
    Present(AttrPath),
    /// `attr[valFilter]` — e.g. `emails[type eq "work" and value co "@x.com"]`. Inside, paths are
    /// relative to the element (sub-attribute names, stored in `AttrPath.attr`).
    ValuePath { path: AttrPath, filter: Box<Filter> },
}

/// An attribute path: `[schemaURN:]attr[.subAttr]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttrPath {
    /// Full schema URN if the path was written with one, e.g.
    /// "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User". Kept as written.
    pub schema: Option<String>,
    /// Attribute name as written (attribute names are case-insensitive in SCIM; not lowercased).
    pub attr: String,
    /// Sub-attribute name as written, if any.
    pub sub_attr: Option<String>,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `eq`: equal
    Eq,
    /// `ne`: not equal
    Ne,
    /// `co`: contains
    Co,
    /// `sw`: starts with
    Sw,
    /// `ew`: ends with
    Ew,
    /// `gt`: greater than
    Gt,
    /// `ge`: greater than or equal
    Ge,
    /// `lt`: less than
    Lt,
    /// `le`: less than or equal
    Le,
}

/// The literal on the right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A JSON number; integers that fit in i64/u64 stay integers.
    Number(serde_json::Number),
    /// A decoded JSON string literal.
    String(String),
}

/// A parse error: what went wrong and the byte offset into the input where it was detected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// What went wrong, without the position.
    pub message: String,
    /// Byte offset into the input where the problem is.
    pub position: usize,
}

impl FilterError {
    pub(crate) fn new(message: impl Into<String>, position: usize) -> Self {
        FilterError {
            message: message.into(),
            position,
        }
    }
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at position {}", self.message, self.position)
    }
}

impl std::error::Error for FilterError {}

/// PATCH path: `attrPath / valuePath [subAttr]`, e.g. `members`, `name.givenName`,
/// `emails[type eq "work"].value`, `members[value eq "2819c223"]`,
/// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager`,
/// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`.
///
/// For `emails[type eq "work"].value`: `attr = {schema: None, attr: "emails", sub_attr: None}`,
/// `value_filter = Some(..)`, `sub_attr = Some("value")`. For `name.givenName`:
/// `attr = {attr: "name", sub_attr: Some("givenName")}`, `value_filter = None`, `sub_attr = None`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    /// The attribute (possibly with schema URN and, when there is no value filter, a
    /// sub-attribute).
    pub attr: AttrPath,
    /// The `[...]` filter selecting elements of a multi-valued attribute.
    pub value_filter: Option<Filter>,
    /// The `.subAttr` after the value filter.
    pub sub_attr: Option<String>,
}

impl CompareOp {
    /// All operators, in RFC order.
    pub const ALL: [CompareOp; 9] = [
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Co,
        CompareOp::Sw,
        CompareOp::Ew,
        CompareOp::Gt,
        CompareOp::Ge,
        CompareOp::Lt,
        CompareOp::Le,
    ];

    /// The canonical (lower-case) spelling: "eq", "ne", ...
    pub fn as_str(&self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    /// Parses an operator case-insensitively ("eq", "EQ", "Eq", ...).
    pub fn from_keyword(word: &str) -> Option<CompareOp> {
        CompareOp::ALL
            .iter()
            .copied()
            .find(|op| op.as_str().eq_ignore_ascii_case(word))
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AttrPath {
    /// A path without schema or sub-attribute.
    pub fn new(attr: impl Into<String>) -> Self {
        AttrPath {
            schema: None,
            attr: attr.into(),
            sub_attr: None,
        }
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(schema) = &self.schema {
            write!(f, "{schema}:")?;
        }
        f.write_str(&self.attr)?;
        if let Some(sub) = &self.sub_attr {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

impl fmt::Display for CompValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompValue::Null => f.write_str("null"),
            CompValue::Bool(b) => write!(f, "{b}"),
            CompValue::Number(n) => write!(f, "{n}"),
            CompValue::String(s) => {
                let quoted = serde_json::to_string(s).map_err(|_| fmt::Error)?;
                f.write_str(&quoted)
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Logic {
    And,
    Or,
}

fn logic_of(f: &Filter) -> Option<Logic> {
    match f {
        Filter::And(..) => Some(Logic::And),
        Filter::Or(..) => Some(Logic::Or),
        _ => None,
    }
}

/// Writes an operand of an `and`/`or` node, parenthesized when it is itself an `and`/`or` node
/// with a different operator, or the right operand of a same-operator chain.
fn fmt_operand(
    f: &mut fmt::Formatter<'_>,
    child: &Filter,
    parent: Logic,
    right: bool,
) -> fmt::Result {
    match logic_of(child) {
        Some(l) if l != parent || right => write!(f, "({child})"),
        _ => write!(f, "{child}"),
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::And(l, r) => {
                fmt_operand(f, l, Logic::And, false)?;
                f.write_str(" and ")?;
                fmt_operand(f, r, Logic::And, true)
            }
            Filter::Or(l, r) => {
                fmt_operand(f, l, Logic::Or, false)?;
                f.write_str(" or ")?;
                fmt_operand(f, r, Logic::Or, true)
            }
            Filter::Not(inner) => write!(f, "not ({inner})"),
            Filter::Compare { path, op, value } => write!(f, "{path} {op} {value}"),
            Filter::Present(path) => write!(f, "{path} pr"),
            Filter::ValuePath { path, filter } => write!(f, "{path}[{filter}]"),
        }
    }
}

impl fmt::Display for PatchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.attr)?;
        if let Some(filter) = &self.value_filter {
            write!(f, "[{filter}]")?;
        }
        if let Some(sub) = &self.sub_attr {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(attr: &str) -> AttrPath {
        AttrPath::new(attr)
    }

    fn cmp(attr: &str, op: CompareOp, value: CompValue) -> Filter {
        Filter::Compare {
            path: p(attr),
            op,
            value,
        }
    }

    #[test]
    fn display_compare_ops() {
        for op in CompareOp::ALL {
            let f = cmp("userName", op, CompValue::String("x".into()));
            assert_eq!(f.to_string(), format!("userName {} \"x\"", op.as_str()));
            assert_eq!(op.to_string(), op.as_str());
            assert_eq!(
                CompareOp::from_keyword(&op.as_str().to_uppercase()),
                Some(op)
            );
        }
        assert_eq!(CompareOp::from_keyword("pr"), None);
    }

    #[test]
    fn display_values() {
        let num = serde_json::Number::from(-42);
        assert_eq!(
            cmp("a", CompareOp::Eq, CompValue::Null).to_string(),
            "a eq null"
        );
        assert_eq!(
            cmp("a", CompareOp::Eq, CompValue::Bool(true)).to_string(),
            "a eq true"
        );
        assert_eq!(
            cmp("a", CompareOp::Gt, CompValue::Number(num)).to_string(),
            "a gt -42"
        );
        let s = CompValue::String("say \"hi\" \\ é\n".into());
        assert_eq!(
            cmp("a", CompareOp::Co, s).to_string(),
            r#"a co "say \"hi\" \\ é\n""#
        );
    }

    #[test]
    fn display_attr_paths() {
        let full = AttrPath {
            schema: Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User".into()),
            attr: "manager".into(),
            sub_attr: Some("value".into()),
        };
        assert_eq!(
            full.to_string(),
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"
        );
        let name = AttrPath {
            schema: None,
            attr: "name".into(),
            sub_attr: Some("givenName".into()),
        };
        assert_eq!(name.to_string(), "name.givenName");
        assert_eq!(p("userName").to_string(), "userName");
    }

    #[test]
    fn display_parenthesizes_logic() {
        let a = || Box::new(Filter::Present(p("a")));
        let b = || Box::new(Filter::Present(p("b")));
        let c = || Box::new(Filter::Present(p("c")));
        let or_bc = Filter::Or(b(), c());
        let and_ab = Filter::And(a(), b());
        assert_eq!(
            Filter::And(a(), Box::new(or_bc.clone())).to_string(),
            "a pr and (b pr or c pr)"
        );
        assert_eq!(
            Filter::Or(Box::new(and_ab.clone()), c()).to_string(),
            "(a pr and b pr) or c pr"
        );
        assert_eq!(
            Filter::And(Box::new(and_ab.clone()), c()).to_string(),
            "a pr and b pr and c pr"
        );
        assert_eq!(
            Filter::And(c(), Box::new(and_ab)).to_string(),
            "c pr and (a pr and b pr)"
        );
        assert_eq!(
            Filter::Not(Box::new(or_bc)).to_string(),
            "not (b pr or c pr)"
        );
        let vp = Filter::ValuePath {
            path: p("emails"),
            filter: Box::new(cmp("type", CompareOp::Eq, CompValue::String("work".into()))),
        };
        assert_eq!(vp.to_string(), r#"emails[type eq "work"]"#);
    }

    #[test]
    fn display_patch_path_and_error() {
        let pp = PatchPath {
            attr: p("emails"),
            value_filter: Some(cmp("type", CompareOp::Eq, CompValue::String("work".into()))),
            sub_attr: Some("value".into()),
        };
        assert_eq!(pp.to_string(), r#"emails[type eq "work"].value"#);
        let e = FilterError::new("empty filter", 0);
        assert_eq!(e.to_string(), "empty filter at position 0");
    }
}
