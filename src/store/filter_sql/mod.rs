//! Compile a SCIM filter AST to a parameterised SQL condition (values are always bound,
//! never spliced). Attributes the store indexes use their columns (the fast path IdPs hit:
//! `userName`, `externalId`, `id`, `emails.value`, `displayName`, `members.value`); every
//! other attribute of the schema is read from the stored JSON document through
//! [`super::json_sql`]. An attribute the schema does not have is an `invalidFilter` error
//! that names it.

use super::json_sql::{Dialect, Root};
use super::Backend;

mod child;
mod json;

use crate::scim::attr_ref::{resolve, AttrRef};
use crate::scim::cursor::Position;
use crate::scim::error::ProtocolError;
use crate::scim::filter::{AttrPath, CompValue, CompareOp, Filter};
use crate::scim::resource::ResourceKind;
use crate::scim::schema::{AttrDef, AttrType, Mutability};
use crate::scim::sort::SortSpec;
use child::{child, child_only, child_sub, Child, Sub};

/// A list request after parsing: filter, order, and either index paging (1-based
/// `start_index`) or cursor paging (`cursor`), at most `count` resources per page.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub filter: Option<Filter>,
    pub start_index: i64,
    pub count: i64,
    pub sort: Option<SortSpec>,
    /// Cursor paging: `Some(None)` for the first page, `Some(Some(pos))` after `pos`.
    pub cursor: Option<Option<Position>>,
    /// A search across resource types: attributes of the other type are absent, not errors.
    pub lenient: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Text(String),
    Bool(bool),
    Int(i64),
}

/// Bind compiled filter parameters to a query, in order.
pub fn bind<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    params: &[Param],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for p in params {
        q = match p {
            Param::Text(s) => q.bind(s.clone()),
            Param::Bool(b) => q.bind(*b),
            Param::Int(i) => q.bind(*i),
        };
    }
    q
}

/// A single-valued attribute stored in a column of the resource's row.
#[derive(Debug, Clone, Copy)]
enum Col {
    /// A text column; `ci` = stored lower-cased (Unicode) and compared case-insensitively;
    /// `time` = an RFC 3339 timestamp as stored by [`super::now`].
    Text {
        expr: &'static str,
        ci: bool,
        time: bool,
    },
    Bool(&'static str),
}

fn core_schema_or_none(kind: ResourceKind, path: &AttrPath) -> bool {
    path.schema
        .as_deref()
        .is_none_or(|s| s.eq_ignore_ascii_case(kind.core_schema()))
}

fn column(kind: ResourceKind, path: &AttrPath) -> Option<Col> {
    if !core_schema_or_none(kind, path) {
        return None;
    }
    let a = path.attr.to_ascii_lowercase();
    let s = path.sub_attr.as_deref().map(str::to_ascii_lowercase);
    let text = |expr, ci, time| Some(Col::Text { expr, ci, time });
    match (kind, a.as_str(), s.as_deref()) {
        (_, "id", None) => text("r.id", false, false),
        (_, "externalid", None) => text("r.external_id", false, false),
        (_, "meta", Some("created")) => text("r.created", false, true),
        (_, "meta", Some("lastmodified")) => text("r.last_modified", false, true),
        (_, "displayname", None) => text("r.display_name_lower", true, false),
        (ResourceKind::User, "username", None) => text("r.user_name_lower", true, false),
        (ResourceKind::User, "active", None) => Some(Col::Bool("r.active")),
        _ => None,
    }
}

/// Attributes that live outside the document (memberships are rows of `scim_members`).
fn in_doc(kind: ResourceKind, top: &AttrDef) -> bool {
    !matches!(
        (kind, top.name),
        (ResourceKind::Group, "members") | (ResourceKind::User, "groups")
    )
}

fn other(kind: ResourceKind) -> ResourceKind {
    match kind {
        ResourceKind::User => ResourceKind::Group,
        ResourceKind::Group => ResourceKind::User,
    }
}

/// Does `kind` have the attribute `path` at all?
pub(super) fn known(kind: ResourceKind, path: &AttrPath) -> bool {
    column(kind, path).is_some() || child(kind, path).is_some() || resolve(kind, path).is_ok()
}

/// The compiled condition and its parameters, numbered from `first`.
pub struct Compiled {
    pub sql: String,
    pub params: Vec<Param>,
}

/// Compile `filter` for `kind`. With `lenient` (a search across resource types), an
/// attribute that only the other resource type has is treated as absent here instead of
/// being an error: `userName eq "x"` matches no Group, `userName ne "x"` every Group.
pub fn compile(
    backend: Backend,
    kind: ResourceKind,
    filter: &Filter,
    first: usize,
    lenient: bool,
) -> Result<Compiled, ProtocolError> {
    let mut c = Compiler {
        d: Dialect(backend),
        kind,
        lenient,
        params: Vec::new(),
        next: first,
    };
    let sql = c.emit(filter)?;
    Ok(Compiled {
        sql,
        params: c.params,
    })
}

fn bad(detail: impl Into<String>) -> ProtocolError {
    ProtocolError::invalid_filter(detail)
}

struct Compiler {
    d: Dialect,
    kind: ResourceKind,
    lenient: bool,
    params: Vec<Param>,
    next: usize,
}

/// What a path names for this resource type.
enum Target {
    Col(Col),
    Child(&'static Child, &'static Sub),
    Json(AttrRef),
    /// Only the other resource type has it (lenient mode): absent here.
    Absent,
}

impl Compiler {
    fn bind(&mut self, p: Param) -> String {
        let s = format!("${}", self.next);
        self.next += 1;
        self.params.push(p);
        s
    }

    fn target(&self, path: &AttrPath) -> Result<Target, ProtocolError> {
        if let Some(col) = column(self.kind, path) {
            return Ok(Target::Col(col));
        }
        if let Some(c) = child(self.kind, path) {
            if let Some(sub) = child_sub(c, path.sub_attr.as_deref()) {
                return Ok(Target::Child(c, sub));
            }
        }
        self.json_target(path)
    }

    /// What a path names in the stored document.
    fn json_target(&self, path: &AttrPath) -> Result<Target, ProtocolError> {
        if path.attr.eq_ignore_ascii_case("meta") && core_schema_or_none(self.kind, path) {
            return Err(bad(format!(
                "filtering on \"{path}\" is not supported; meta.created and meta.lastModified are"
            )));
        }
        match resolve(self.kind, path) {
            Ok(a) if !in_doc(self.kind, a.top) => {
                let names: Vec<String> = child(self.kind, path)
                    .map(|c| {
                        c.subs
                            .iter()
                            .map(|s| format!("{}.{}", a.top.name, s.name))
                            .collect()
                    })
                    .unwrap_or_default();
                Err(bad(format!(
                    "filtering on \"{path}\" is not supported; searchable: {}",
                    names.join(", ")
                )))
            }
            Ok(a) if a.top.mutability == Mutability::WriteOnly => Err(bad(format!(
                "\"{path}\" is write-only and never stored, so it cannot be filtered on"
            ))),
            Ok(a) => Ok(Target::Json(a)),
            Err(_) if self.lenient && known(other(self.kind), path) => Ok(Target::Absent),
            Err(msg) => Err(bad(format!("invalid filter attribute {msg}"))),
        }
    }

    fn emit(&mut self, f: &Filter) -> Result<String, ProtocolError> {
        Ok(match f {
            Filter::And(a, b) => format!("({} AND {})", self.emit(a)?, self.emit(b)?),
            Filter::Or(a, b) => format!("({} OR {})", self.emit(a)?, self.emit(b)?),
            Filter::Not(inner) => format!("(NOT COALESCE({}, FALSE))", self.emit(inner)?),
            Filter::Present(path) => match self.target(path)? {
                Target::Col(Col::Text { expr, .. }) => {
                    format!("({expr} IS NOT NULL AND {expr} <> '')")
                }
                Target::Col(Col::Bool(expr)) => format!("({expr} IS NOT NULL)"),
                Target::Child(c, sub) => c.any(&format!("{} <> ''", sub.col)),
                Target::Json(a) => self.json_present(&a),
                Target::Absent => "FALSE".to_string(),
            },
            Filter::Compare { path, op, value } => match self.target(path)? {
                Target::Col(col) => self.col_compare(col, path, *op, value)?,
                Target::Child(c, sub) => self.child_compare(c, sub, path, *op, value)?,
                Target::Json(a) => self.json_compare(&a, path, *op, value)?,
                Target::Absent => absent(*op, value).to_string(),
            },
            Filter::ValuePath { path, filter } => self.value_path(path, filter)?,
        })
    }

    fn col_compare(
        &mut self,
        col: Col,
        path: &AttrPath,
        op: CompareOp,
        value: &CompValue,
    ) -> Result<String, ProtocolError> {
        match col {
            Col::Bool(expr) => {
                let CompValue::Bool(b) = value else {
                    return Err(bad(format!(
                        "\"{path}\" is a boolean: compare it with true or false"
                    )));
                };
                let p = self.bind(Param::Bool(*b));
                match op {
                    CompareOp::Eq => Ok(format!("({expr} = {p})")),
                    CompareOp::Ne => Ok(format!("({expr} <> {p})")),
                    _ => Err(bad(format!(
                        "\"{path}\" is a boolean: only eq and ne apply"
                    ))),
                }
            }
            Col::Text { expr, ci, time } => {
                let s = match value {
                    CompValue::Null => return null_cond(expr, op, path),
                    CompValue::String(s) => s,
                    _ => return Err(string_expected(path)),
                };
                let v = if time {
                    if matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) {
                        return Err(bad(format!(
                            "\"{path}\" is a dateTime: use eq, ne, gt, ge, lt or le"
                        )));
                    }
                    let b = super::time_bounds(s).ok_or_else(|| {
                        bad(format!(
                            "\"{path}\" is a dateTime: \"{s}\" is not an RFC 3339 timestamp"
                        ))
                    })?;
                    // stored times are whole milliseconds; a bound between two of them is
                    // compared as the stored times on either side of it
                    let Some(after) = b.after else {
                        let p = self.bind(Param::Text(b.at_or_before));
                        return Ok(self.text_cond(expr, op, &p));
                    };
                    return Ok(match op {
                        CompareOp::Eq => "FALSE".to_string(),
                        CompareOp::Ne => "TRUE".to_string(),
                        CompareOp::Gt | CompareOp::Ge => {
                            let p = self.bind(Param::Text(after));
                            self.text_cond(expr, CompareOp::Ge, &p)
                        }
                        _ => {
                            let p = self.bind(Param::Text(b.at_or_before));
                            self.text_cond(expr, CompareOp::Le, &p)
                        }
                    });
                } else if ci {
                    s.to_lowercase()
                } else {
                    s.clone()
                };
                let p = self.bind(Param::Text(v));
                Ok(self.text_cond(expr, op, &p))
            }
        }
    }

    /// A string comparison of the text expression `x` with the bound parameter `p`.
    fn text_cond(&self, x: &str, op: CompareOp, p: &str) -> String {
        let o = |sym: &str| format!("({} {sym} {p})", self.d.ordered(x));
        match op {
            CompareOp::Eq => format!("({x} = {p})"),
            CompareOp::Ne => format!("({x} IS NULL OR {x} <> {p})"),
            CompareOp::Co => self.d.contains(x, p),
            CompareOp::Sw => format!("(substr({x}, 1, length({p})) = {p})"),
            CompareOp::Ew => format!(
                "(length({x}) >= length({p}) AND substr({x}, length({x}) - length({p}) + 1) = {p})"
            ),
            CompareOp::Gt => o(">"),
            CompareOp::Ge => o(">="),
            CompareOp::Lt => o("<"),
            CompareOp::Le => o("<="),
        }
    }

    fn value_path(&mut self, path: &AttrPath, inner: &Filter) -> Result<String, ProtocolError> {
        if path.sub_attr.is_some() {
            return Err(bad(format!(
                "\"{path}[...]\": a value filter applies to an attribute, not a sub-attribute"
            )));
        }
        if let Some(c) = child(self.kind, path) {
            if child_only(c, inner) {
                let cond = self.child_inner(c, inner)?;
                return Ok(c.any(&cond));
            }
        }
        let a = match self.json_target(path)? {
            Target::Json(a) => a,
            Target::Absent => return Ok("FALSE".to_string()),
            Target::Col(_) | Target::Child(..) => {
                return Err(bad(format!(
                    "\"{path}\" is not complex; a [filter] needs a complex attribute"
                )))
            }
        };
        if a.top.ty != AttrType::Complex {
            return Err(bad(format!(
                "\"{path}\" is not complex; a [filter] needs a complex attribute"
            )));
        }
        let top = a.top_path();
        if a.top.multi {
            let (from, cond) = self.d.elements(&top);
            let inner = self.json_inner(&a, Root::Elem, &[], inner)?;
            Ok(format!(
                "EXISTS (SELECT 1 FROM {from} WHERE {cond} AND {inner})"
            ))
        } else {
            self.json_inner(&a, Root::Doc, &top, inner)
        }
    }
}

/// An attribute that is absent: equal to null, not equal to anything else.
fn absent(op: CompareOp, value: &CompValue) -> &'static str {
    match (op, value) {
        (CompareOp::Eq, CompValue::Null) => "TRUE",
        (CompareOp::Ne, CompValue::Null) => "FALSE",
        (CompareOp::Ne, _) => "TRUE",
        _ => "FALSE",
    }
}

fn null_cond(expr: &str, op: CompareOp, path: &AttrPath) -> Result<String, ProtocolError> {
    match op {
        CompareOp::Eq => Ok(format!("({expr} IS NULL)")),
        CompareOp::Ne => Ok(format!("({expr} IS NOT NULL)")),
        _ => Err(null_op(path)),
    }
}

fn null_op(path: &AttrPath) -> ProtocolError {
    bad(format!(
        "null can only be compared with eq or ne (\"{path}\")"
    ))
}

fn string_expected(path: &AttrPath) -> ProtocolError {
    bad(format!(
        "\"{path}\" is a string: compare it with a quoted string"
    ))
}

#[cfg(test)]
mod tests;
