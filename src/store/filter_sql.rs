//! Compile a SCIM filter AST to a parameterised SQL condition (values are always bound,
//! never spliced). Attributes the store indexes use their columns (the fast path IdPs hit:
//! `userName`, `externalId`, `id`, `emails.value`, `displayName`, `members.value`); every
//! other attribute of the schema is read from the stored JSON document through
//! [`super::json_sql`]. An attribute the schema does not have is an `invalidFilter` error
//! that names it.

use super::json_sql::{fold_value, Dialect, Root};
use super::Backend;
use crate::scim::attr_ref::{resolve, resolve_sub, AttrRef};
use crate::scim::cursor::Position;
use crate::scim::error::ProtocolError;
use crate::scim::filter::{AttrPath, CompValue, CompareOp, Filter};
use crate::scim::resource::ResourceKind;
use crate::scim::schema::{AttrDef, AttrType, Mutability};
use crate::scim::sort::SortSpec;

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

impl ListQuery {
    /// Index paging from `start_index`, in insertion order.
    pub fn index(filter: Option<Filter>, start_index: i64, count: i64) -> Self {
        Self {
            filter,
            start_index,
            count,
            sort: None,
            cursor: None,
            lenient: false,
        }
    }
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

/// A multi-valued attribute kept in a child table: `EXISTS (SELECT 1 FROM table WHERE link ...)`.
#[derive(Debug)]
struct Child {
    table: &'static str,
    link: &'static str,
    subs: &'static [Sub],
}

/// A searchable sub-attribute of a child table; `ci` = stored lower-cased.
#[derive(Debug)]
struct Sub {
    name: &'static str,
    col: &'static str,
    ci: bool,
}

const USER_EMAILS: Child = Child {
    table: "scim_emails e",
    link: "e.user_id = r.id",
    subs: &[Sub {
        name: "value",
        col: "e.value_lower",
        ci: true,
    }],
};
const USER_GROUPS: Child = Child {
    table: "scim_members gm JOIN scim_groups gg ON gg.id = gm.group_id",
    link: "gm.member_id = r.id",
    subs: &[
        Sub {
            name: "value",
            col: "gm.group_id",
            ci: false,
        },
        Sub {
            name: "display",
            col: "gg.display_name_lower",
            ci: true,
        },
    ],
};
const GROUP_MEMBERS: Child = Child {
    table: "scim_members m",
    link: "m.group_id = r.id",
    subs: &[Sub {
        name: "value",
        col: "m.member_id",
        ci: false,
    }],
};

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

fn child(kind: ResourceKind, path: &AttrPath) -> Option<&'static Child> {
    if !core_schema_or_none(kind, path) {
        return None;
    }
    let a = path.attr.as_str();
    match kind {
        ResourceKind::User if a.eq_ignore_ascii_case("emails") => Some(&USER_EMAILS),
        ResourceKind::User if a.eq_ignore_ascii_case("groups") => Some(&USER_GROUPS),
        ResourceKind::Group if a.eq_ignore_ascii_case("members") => Some(&GROUP_MEMBERS),
        _ => None,
    }
}

fn child_sub(c: &'static Child, name: Option<&str>) -> Option<&'static Sub> {
    let name = name.unwrap_or("value");
    c.subs.iter().find(|s| s.name.eq_ignore_ascii_case(name))
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
                Target::Child(c, sub) => format!(
                    "EXISTS (SELECT 1 FROM {} WHERE {} AND {} <> '')",
                    c.table, c.link, sub.col
                ),
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
                    normalize_time(s).ok_or_else(|| {
                        bad(format!(
                            "\"{path}\" is a dateTime: \"{s}\" is not an RFC 3339 timestamp"
                        ))
                    })?
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

    fn child_compare(
        &mut self,
        c: &'static Child,
        sub: &'static Sub,
        path: &AttrPath,
        op: CompareOp,
        value: &CompValue,
    ) -> Result<String, ProtocolError> {
        let exists = |cond: &str| {
            format!(
                "EXISTS (SELECT 1 FROM {} WHERE {} AND {cond})",
                c.table, c.link
            )
        };
        match value {
            // a multi-valued attribute is null when it has no elements
            CompValue::Null => match op {
                CompareOp::Eq => Ok(format!("(NOT {})", exists("TRUE"))),
                CompareOp::Ne => Ok(exists("TRUE")),
                _ => Err(null_op(path)),
            },
            CompValue::String(s) => {
                let v = if sub.ci { s.to_lowercase() } else { s.clone() };
                let p = self.bind(Param::Text(v));
                // `ne` on a multi-valued attribute: no element equals the value
                Ok(if op == CompareOp::Ne {
                    format!("(NOT {})", exists(&format!("{} = {p}", sub.col)))
                } else {
                    exists(&self.text_cond(sub.col, op, &p))
                })
            }
            _ => Err(string_expected(path)),
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

    fn json_present(&self, a: &AttrRef) -> String {
        let top = a.top_path();
        if a.top.multi {
            let (from, cond) = self.d.elements(&top);
            let inner = match a.sub {
                Some(sub) => format!(" AND {}", self.leaf_present(Root::Elem, &[sub.name], sub)),
                None => String::new(),
            };
            return format!("EXISTS (SELECT 1 FROM {from} WHERE {cond}{inner})");
        }
        match a.sub {
            Some(sub) => {
                let mut p = top;
                p.push(sub.name);
                self.leaf_present(Root::Doc, &p, sub)
            }
            None => self.leaf_present(Root::Doc, &top, a.top),
        }
    }

    fn leaf_present(&self, root: Root, path: &[&'static str], def: &AttrDef) -> String {
        match def.ty {
            AttrType::String | AttrType::Reference | AttrType::DateTime => {
                let t = self.d.text(root, path);
                format!("({t} IS NOT NULL AND {t} <> '')")
            }
            AttrType::Boolean => format!("({} IN ('true', 'false'))", self.d.boolean(root, path)),
            _ => self.d.exists(root, path),
        }
    }

    fn json_compare(
        &mut self,
        a: &AttrRef,
        path: &AttrPath,
        op: CompareOp,
        value: &CompValue,
    ) -> Result<String, ProtocolError> {
        let leaf = a.leaf().ok_or_else(|| {
            bad(format!(
                "\"{path}\" is complex: compare one of its sub-attributes (\"{}.x\")",
                a.top.name
            ))
        })?;
        let mut p = a.top_path();
        if !a.top.multi {
            if a.top.ty == AttrType::Complex {
                p.push(leaf.name);
            }
            return self.leaf_compare(Root::Doc, &p, leaf, path, op, value);
        }
        let (from, cond) = self.d.elements(&p);
        let exists = |c: &str| format!("EXISTS (SELECT 1 FROM {from} WHERE {cond} AND {c})");
        Ok(match (value, op) {
            (CompValue::Null, CompareOp::Eq) => {
                format!(
                    "(NOT {})",
                    exists(&self.leaf_present(Root::Elem, &[leaf.name], leaf))
                )
            }
            (CompValue::Null, CompareOp::Ne) => {
                exists(&self.leaf_present(Root::Elem, &[leaf.name], leaf))
            }
            // `ne` on a multi-valued attribute: no element equals the value
            (_, CompareOp::Ne) => {
                let eq =
                    self.leaf_compare(Root::Elem, &[leaf.name], leaf, path, CompareOp::Eq, value)?;
                format!("(NOT {})", exists(&eq))
            }
            _ => exists(&self.leaf_compare(Root::Elem, &[leaf.name], leaf, path, op, value)?),
        })
    }

    /// A comparison of one single-valued JSON value (in the document or an element).
    fn leaf_compare(
        &mut self,
        root: Root,
        at: &[&'static str],
        def: &AttrDef,
        path: &AttrPath,
        op: CompareOp,
        value: &CompValue,
    ) -> Result<String, ProtocolError> {
        match def.ty {
            AttrType::String | AttrType::Reference | AttrType::DateTime => {
                let t = self.d.text(root, at);
                match value {
                    CompValue::Null => null_cond(&t, op, path),
                    CompValue::String(s) => {
                        let (x, v) = if def.case_exact {
                            (t, s.clone())
                        } else {
                            (self.d.fold(&t), fold_value(s))
                        };
                        let p = self.bind(Param::Text(v));
                        Ok(self.text_cond(&x, op, &p))
                    }
                    _ => Err(string_expected(path)),
                }
            }
            AttrType::Boolean => {
                let b = self.d.boolean(root, at);
                match value {
                    CompValue::Null => null_cond(&b, op, path),
                    CompValue::Bool(v) => {
                        let p = self.bind(Param::Text(v.to_string()));
                        match op {
                            CompareOp::Eq => Ok(format!("({b} = {p})")),
                            CompareOp::Ne => Ok(format!("({b} IS NULL OR {b} <> {p})")),
                            _ => Err(bad(format!(
                                "\"{path}\" is a boolean: only eq and ne apply"
                            ))),
                        }
                    }
                    _ => Err(bad(format!(
                        "\"{path}\" is a boolean: compare it with true or false"
                    ))),
                }
            }
            AttrType::Integer | AttrType::Decimal | AttrType::Complex => Err(bad(format!(
                "\"{path}\" is {}: it cannot be compared with a value",
                def.ty.as_str()
            ))),
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
                return Ok(format!(
                    "EXISTS (SELECT 1 FROM {} WHERE {} AND {cond})",
                    c.table, c.link
                ));
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

    /// The inside of `attr[...]` over JSON: paths are sub-attributes of `a`, at `prefix`.
    fn json_inner(
        &mut self,
        a: &AttrRef,
        root: Root,
        prefix: &[&'static str],
        f: &Filter,
    ) -> Result<String, ProtocolError> {
        let at = |def: &AttrDef| {
            let mut p = prefix.to_vec();
            p.push(def.name);
            p
        };
        Ok(match f {
            Filter::And(l, r) => format!(
                "({} AND {})",
                self.json_inner(a, root, prefix, l)?,
                self.json_inner(a, root, prefix, r)?
            ),
            Filter::Or(l, r) => format!(
                "({} OR {})",
                self.json_inner(a, root, prefix, l)?,
                self.json_inner(a, root, prefix, r)?
            ),
            Filter::Not(i) => format!(
                "(NOT COALESCE({}, FALSE))",
                self.json_inner(a, root, prefix, i)?
            ),
            Filter::Present(p) => {
                let def = resolve_sub(a, p).map_err(bad)?;
                self.leaf_present(root, &at(def), def)
            }
            Filter::Compare { path, op, value } => {
                let def = resolve_sub(a, path).map_err(bad)?;
                let shown = AttrPath {
                    schema: None,
                    attr: a.top.name.to_string(),
                    sub_attr: Some(def.name.to_string()),
                };
                self.leaf_compare(root, &at(def), def, &shown, *op, value)?
            }
            Filter::ValuePath { path, .. } => {
                return Err(bad(format!(
                    "\"{path}[...]\" cannot be nested inside \"{}[...]\"",
                    a.top.name
                )))
            }
        })
    }

    /// The inside of `attr[...]` over a child table's columns.
    fn child_inner(&mut self, c: &'static Child, f: &Filter) -> Result<String, ProtocolError> {
        Ok(match f {
            Filter::And(l, r) => format!(
                "({} AND {})",
                self.child_inner(c, l)?,
                self.child_inner(c, r)?
            ),
            Filter::Or(l, r) => format!(
                "({} OR {})",
                self.child_inner(c, l)?,
                self.child_inner(c, r)?
            ),
            Filter::Not(i) => format!("(NOT COALESCE({}, FALSE))", self.child_inner(c, i)?),
            Filter::Present(p) => match child_sub(c, Some(&p.attr)) {
                Some(sub) => format!("({} <> '')", sub.col),
                None => return Err(bad(format!("\"{p}\" is not searchable here"))),
            },
            Filter::Compare { path, op, value } => {
                let Some(sub) = child_sub(c, Some(&path.attr)) else {
                    return Err(bad(format!("\"{path}\" is not searchable here")));
                };
                match value {
                    CompValue::Null => null_cond(sub.col, *op, path)?,
                    CompValue::String(s) => {
                        let v = if sub.ci { s.to_lowercase() } else { s.clone() };
                        let p = self.bind(Param::Text(v));
                        self.text_cond(sub.col, *op, &p)
                    }
                    _ => return Err(string_expected(path)),
                }
            }
            Filter::ValuePath { path, .. } => {
                return Err(bad(format!("\"{path}[...]\" cannot be nested")))
            }
        })
    }
}

/// Does the inside of a value filter only name sub-attributes the child table has?
fn child_only(c: &'static Child, f: &Filter) -> bool {
    match f {
        Filter::And(l, r) | Filter::Or(l, r) => child_only(c, l) && child_only(c, r),
        Filter::Not(i) => child_only(c, i),
        Filter::Present(p) | Filter::Compare { path: p, .. } => {
            p.schema.is_none() && p.sub_attr.is_none() && child_sub(c, Some(&p.attr)).is_some()
        }
        Filter::ValuePath { .. } => false,
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

/// An RFC 3339 timestamp in the stored form (UTC, milliseconds), so text order is time order.
fn normalize_time(s: &str) -> Option<String> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::filter::parse_filter;

    fn sql_on(
        backend: Backend,
        kind: ResourceKind,
        f: &str,
    ) -> Result<(String, Vec<Param>), ProtocolError> {
        let c = compile(backend, kind, &parse_filter(f).unwrap(), 1, false)?;
        Ok((c.sql, c.params))
    }

    fn sql(kind: ResourceKind, f: &str) -> Result<(String, Vec<Param>), ProtocolError> {
        sql_on(Backend::Sqlite, kind, f)
    }

    #[test]
    fn indexed_attributes_use_their_columns() {
        let (s, p) = sql(
            ResourceKind::User,
            r#"userName eq "Alice@X.com" and externalId eq "E1""#,
        )
        .unwrap();
        assert_eq!(s, "((r.user_name_lower = $1) AND (r.external_id = $2))");
        assert_eq!(
            p,
            vec![Param::Text("alice@x.com".into()), Param::Text("E1".into())]
        );
        let (s, p) = sql(ResourceKind::User, r#"emails.value co "50%_'""#).unwrap();
        assert_eq!(
            s,
            "EXISTS (SELECT 1 FROM scim_emails e WHERE e.user_id = r.id AND (instr(e.value_lower, $1) > 0))"
        );
        assert_eq!(p, vec![Param::Text("50%_'".into())]);
        let (s, _) = sql(ResourceKind::Group, r#"members[value eq "u1"]"#).unwrap();
        assert_eq!(
            s,
            "EXISTS (SELECT 1 FROM scim_members m WHERE m.group_id = r.id AND (m.member_id = $1))"
        );
        let (_, p) = sql(ResourceKind::User, "active eq true").unwrap();
        assert_eq!(p, vec![Param::Bool(true)]);
        let (_, p) = sql(
            ResourceKind::User,
            r#"meta.lastModified ge "2026-01-02T04:04:05+01:00""#,
        )
        .unwrap();
        assert_eq!(p, vec![Param::Text("2026-01-02T03:04:05.000Z".into())]);
    }

    #[test]
    fn other_attributes_read_the_document_by_schema_name() {
        let (s, p) = sql(ResourceKind::User, r#"NAME.FAMILYNAME sw "Lid""#).unwrap();
        assert_eq!(
            s,
            "(substr(lower(json_extract(r.doc, '$.\"name\".\"familyName\"')), 1, length($1)) = $1)"
        );
        assert_eq!(p, vec![Param::Text("lid".into())]);
        let (s, _) = sql_on(
            Backend::Postgres,
            ResourceKind::User,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "m1""#,
        )
        .unwrap();
        assert!(s.contains("#>> '{\"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\",\"manager\",\"value\"}'"), "{s}");
        let (s, p) = sql(
            ResourceKind::User,
            r#"phoneNumbers[type eq "work" and value sw "+1"]"#,
        )
        .unwrap();
        assert!(
            s.starts_with("EXISTS (SELECT 1 FROM json_each(r.doc, '$.\"phoneNumbers\"') je"),
            "{s}"
        );
        assert_eq!(
            p,
            vec![Param::Text("work".into()), Param::Text("+1".into())]
        );
        // an emails value filter naming more than `value` reads the document
        let (s, _) = sql(
            ResourceKind::User,
            r#"emails[type eq "work" and value co "@example.com"]"#,
        )
        .unwrap();
        assert!(s.contains("json_each(r.doc, '$.\"emails\"')"), "{s}");
        let (s, _) = sql(ResourceKind::User, r#"emails[primary eq true]"#).unwrap();
        assert!(
            s.contains("json_type(je.value, '$.\"primary\"') = $1"),
            "{s}"
        );
    }

    #[test]
    fn unknown_or_unsearchable_attributes_are_invalid_filters() {
        for (kind, f) in [
            (ResourceKind::User, r#"nope eq "x""#),
            (ResourceKind::User, r#"name.nope eq "x""#),
            (ResourceKind::User, r#"department eq "x""#),
            (ResourceKind::User, r#"password eq "x""#),
            (ResourceKind::User, r#"name eq "x""#),
            (ResourceKind::User, r#"members.value eq "x""#),
            (ResourceKind::Group, r#"members.display eq "x""#),
            (ResourceKind::User, "active eq \"yes\""),
            (ResourceKind::User, r#"userName gt 5"#),
            (ResourceKind::User, r#"title[value eq "x"]"#),
            (ResourceKind::User, r#"meta.created eq "yesterday""#),
            (ResourceKind::User, r#"emails[type eq "work" and x eq "y"]"#),
        ] {
            let e = sql(kind, f).unwrap_err();
            assert_eq!(
                e.scim_type,
                crate::scim::error::ScimType::InvalidFilter,
                "{f}"
            );
        }
    }

    #[test]
    fn lenient_mode_treats_the_other_types_attributes_as_absent() {
        let f = parse_filter(r#"userName eq "x" or not (userName ne "x")"#).unwrap();
        let c = compile(Backend::Sqlite, ResourceKind::Group, &f, 1, true).unwrap();
        assert_eq!(c.sql, "(FALSE OR (NOT COALESCE(TRUE, FALSE)))");
        let f = parse_filter(r#"nope eq "x""#).unwrap();
        assert!(compile(Backend::Sqlite, ResourceKind::Group, &f, 1, true).is_err());
    }
}
