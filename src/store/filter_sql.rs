//! Compile a SCIM filter AST to a parameterised SQL condition (values are always bound,
//! never spliced). Attributes map to indexed columns; an attribute the store cannot search
//! is an `invalidFilter` error that names it.

use crate::scim::error::ProtocolError;
use crate::scim::filter::{AttrPath, CompValue, CompareOp, Filter};
use crate::scim::resource::ResourceKind;

/// A list request after parsing: filter, 1-based start index, page size.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub filter: Option<Filter>,
    pub start_index: i64,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Text(String),
    Bool(bool),
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
        };
    }
    q
}

/// How one attribute is stored.
#[derive(Debug, Clone, Copy)]
enum Col {
    /// A text column; `ci` = stored lower-cased and compared case-insensitively.
    Text {
        expr: &'static str,
        ci: bool,
    },
    Bool(&'static str),
    /// A multi-valued attribute in a child table: `EXISTS (SELECT 1 FROM table WHERE link AND col op ?)`.
    Child {
        table: &'static str,
        link: &'static str,
        col: &'static str,
        ci: bool,
    },
}

const USER_EMAILS: Col = Col::Child {
    table: "scim_emails e",
    link: "e.user_id = r.id",
    col: "e.value_lower",
    ci: true,
};
const GROUP_MEMBERS: Col = Col::Child {
    table: "scim_members m",
    link: "m.group_id = r.id",
    col: "m.member_id",
    ci: false,
};

fn column(kind: ResourceKind, path: &AttrPath) -> Option<Col> {
    if let Some(schema) = &path.schema {
        if !schema.eq_ignore_ascii_case(kind.core_schema()) {
            return None;
        }
    }
    let a = path.attr.to_ascii_lowercase();
    let s = path.sub_attr.as_deref().map(str::to_ascii_lowercase);
    let text = |expr, ci| Some(Col::Text { expr, ci });
    match (kind, a.as_str(), s.as_deref()) {
        (_, "id", None) => text("r.id", false),
        (_, "externalid", None) => text("r.external_id", false),
        (_, "meta", Some("created")) => text("r.created", false),
        (_, "meta", Some("lastmodified")) => text("r.last_modified", false),
        (_, "displayname", None) => text("r.display_name_lower", true),
        (ResourceKind::User, "username", None) => text("r.user_name_lower", true),
        (ResourceKind::User, "active", None) => Some(Col::Bool("r.active")),
        (ResourceKind::User, "emails", None | Some("value")) => Some(USER_EMAILS),
        (ResourceKind::Group, "members", None | Some("value")) => Some(GROUP_MEMBERS),
        _ => None,
    }
}

/// SQL builder: the condition text and its parameters, numbered from `first`.
pub struct Compiled {
    pub sql: String,
    pub params: Vec<Param>,
}

pub fn compile(
    kind: ResourceKind,
    filter: &Filter,
    first: usize,
) -> Result<Compiled, ProtocolError> {
    let mut c = Compiled {
        sql: String::new(),
        params: Vec::new(),
    };
    let mut next = first;
    emit(kind, filter, &mut c, &mut next)?;
    Ok(c)
}

fn unsupported(path: &AttrPath) -> ProtocolError {
    ProtocolError::invalid_filter(format!(
        "filtering on \"{path}\" is not supported; searchable attributes are id, externalId, \
         userName, displayName, active, emails.value, members.value, meta.created and meta.lastModified"
    ))
}

fn emit(
    kind: ResourceKind,
    f: &Filter,
    c: &mut Compiled,
    next: &mut usize,
) -> Result<(), ProtocolError> {
    match f {
        Filter::And(a, b) | Filter::Or(a, b) => {
            c.sql.push('(');
            emit(kind, a, c, next)?;
            c.sql.push_str(if matches!(f, Filter::And(..)) {
                " AND "
            } else {
                " OR "
            });
            emit(kind, b, c, next)?;
            c.sql.push(')');
        }
        Filter::Not(inner) => {
            c.sql.push_str("(NOT COALESCE(");
            emit(kind, inner, c, next)?;
            c.sql.push_str(", FALSE))");
        }
        Filter::Present(path) => {
            let col = column(kind, path).ok_or_else(|| unsupported(path))?;
            match col {
                Col::Text { expr, .. } => c
                    .sql
                    .push_str(&format!("({expr} IS NOT NULL AND {expr} <> '')")),
                Col::Bool(expr) => c.sql.push_str(&format!("({expr} IS NOT NULL)")),
                Col::Child { table, link, .. } => c
                    .sql
                    .push_str(&format!("EXISTS (SELECT 1 FROM {table} WHERE {link})")),
            }
        }
        Filter::Compare { path, op, value } => {
            let col = column(kind, path).ok_or_else(|| unsupported(path))?;
            compare(col, path, *op, value, c, next)?;
        }
        Filter::ValuePath { path, filter } => {
            // emails[value eq "x"], members[value eq "id"]: only the `value` sub-attribute is stored
            let col = column(kind, path).ok_or_else(|| unsupported(path))?;
            let Col::Child {
                table,
                link,
                col: inner_col,
                ci,
            } = col
            else {
                return Err(ProtocolError::invalid_filter(format!(
                    "\"{path}\" is not multi-valued; a [filter] needs a multi-valued attribute"
                )));
            };
            c.sql
                .push_str(&format!("EXISTS (SELECT 1 FROM {table} WHERE {link} AND "));
            emit_inner(filter, inner_col, ci, path, c, next)?;
            c.sql.push(')');
        }
    }
    Ok(())
}

/// The inside of a value path: sub-attribute `value` only.
fn emit_inner(
    f: &Filter,
    col: &'static str,
    ci: bool,
    outer: &AttrPath,
    c: &mut Compiled,
    next: &mut usize,
) -> Result<(), ProtocolError> {
    match f {
        Filter::And(a, b) | Filter::Or(a, b) => {
            c.sql.push('(');
            emit_inner(a, col, ci, outer, c, next)?;
            c.sql.push_str(if matches!(f, Filter::And(..)) { " AND " } else { " OR " });
            emit_inner(b, col, ci, outer, c, next)?;
            c.sql.push(')');
            Ok(())
        }
        Filter::Not(inner) => {
            c.sql.push_str("(NOT COALESCE(");
            emit_inner(inner, col, ci, outer, c, next)?;
            c.sql.push_str(", FALSE))");
            Ok(())
        }
        Filter::Compare { path, op, value } if path.attr.eq_ignore_ascii_case("value") && path.sub_attr.is_none() => {
            compare(Col::Text { expr: col, ci }, path, *op, value, c, next)
        }
        Filter::Present(path) if path.attr.eq_ignore_ascii_case("value") => {
            c.sql.push_str("TRUE");
            Ok(())
        }
        Filter::Compare { path, .. } | Filter::Present(path) | Filter::ValuePath { path, .. } => {
            Err(ProtocolError::invalid_filter(format!(
                "filtering on \"{outer}.{}\" is not supported; only \"{outer}.value\" is searchable",
                path.attr
            )))
        }
    }
}

fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

fn compare(
    col: Col,
    path: &AttrPath,
    op: CompareOp,
    value: &CompValue,
    c: &mut Compiled,
    next: &mut usize,
) -> Result<(), ProtocolError> {
    let (expr, ci, child) = match col {
        Col::Text { expr, ci } => (expr, ci, None),
        Col::Child {
            table,
            link,
            col,
            ci,
        } => (col, ci, Some((table, link))),
        Col::Bool(expr) => {
            let b = match value {
                CompValue::Bool(b) => *b,
                _ => {
                    return Err(ProtocolError::invalid_filter(format!(
                        "\"{path}\" is a boolean: compare it with true or false"
                    )))
                }
            };
            let sql = match op {
                CompareOp::Eq => format!("{expr} = ${}", *next),
                CompareOp::Ne => format!("{expr} <> ${}", *next),
                _ => {
                    return Err(ProtocolError::invalid_filter(format!(
                        "\"{path}\" is a boolean: only eq and ne apply"
                    )))
                }
            };
            *next += 1;
            c.params.push(Param::Bool(b));
            c.sql.push_str(&format!("({sql})"));
            return Ok(());
        }
    };
    // `ne` on a multi-valued attribute: no element equals the value
    let negate = child.is_some() && op == CompareOp::Ne;
    let op = if negate { CompareOp::Eq } else { op };
    let cond = match value {
        CompValue::Null => match op {
            CompareOp::Eq => format!("{expr} IS NULL"),
            CompareOp::Ne => format!("{expr} IS NOT NULL"),
            _ => {
                return Err(ProtocolError::invalid_filter(format!(
                    "null can only be compared with eq or ne (\"{path}\")"
                )))
            }
        },
        CompValue::String(s) => {
            let v = if ci { s.to_lowercase() } else { s.clone() };
            let n = *next;
            let (cond, param) = match op {
                CompareOp::Eq => (format!("{expr} = ${n}"), v),
                CompareOp::Ne => (format!("({expr} IS NULL OR {expr} <> ${n})"), v),
                CompareOp::Co => (
                    format!("{expr} LIKE ${n} ESCAPE '\\'"),
                    format!("%{}%", like_escape(&v)),
                ),
                CompareOp::Sw => (
                    format!("{expr} LIKE ${n} ESCAPE '\\'"),
                    format!("{}%", like_escape(&v)),
                ),
                CompareOp::Ew => (
                    format!("{expr} LIKE ${n} ESCAPE '\\'"),
                    format!("%{}", like_escape(&v)),
                ),
                CompareOp::Gt => (format!("{expr} > ${n}"), v),
                CompareOp::Ge => (format!("{expr} >= ${n}"), v),
                CompareOp::Lt => (format!("{expr} < ${n}"), v),
                CompareOp::Le => (format!("{expr} <= ${n}"), v),
            };
            *next += 1;
            c.params.push(Param::Text(param));
            cond
        }
        CompValue::Bool(_) | CompValue::Number(_) => {
            return Err(ProtocolError::invalid_filter(format!(
                "\"{path}\" is a string: compare it with a quoted string"
            )))
        }
    };
    match child {
        Some((table, link)) => c.sql.push_str(&format!(
            "{}EXISTS (SELECT 1 FROM {table} WHERE {link} AND {cond})",
            if negate { "NOT " } else { "" }
        )),
        None => c.sql.push_str(&format!("({cond})")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::filter::parse_filter;

    fn sql(kind: ResourceKind, f: &str) -> Result<(String, Vec<Param>), ProtocolError> {
        let c = compile(kind, &parse_filter(f).unwrap(), 1)?;
        Ok((c.sql, c.params))
    }

    #[test]
    fn values_are_bound_and_lowercased_where_case_insensitive() {
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
        assert!(s.starts_with(
            "EXISTS (SELECT 1 FROM scim_emails e WHERE e.user_id = r.id AND e.value_lower LIKE $1"
        ));
        assert_eq!(p, vec![Param::Text("%50\\%\\_'%".into())]);
        let (s, _) = sql(ResourceKind::Group, r#"members[value eq "u1"]"#).unwrap();
        assert_eq!(
            s,
            "EXISTS (SELECT 1 FROM scim_members m WHERE m.group_id = r.id AND (m.member_id = $1))"
        );
        let (_, p) = sql(ResourceKind::User, "active eq true").unwrap();
        assert_eq!(p, vec![Param::Bool(true)]);
    }

    #[test]
    fn unsearchable_attributes_are_invalid_filters() {
        for f in [
            r#"title eq "x""#,
            r#"members.value eq "x""#,
            "active eq \"yes\"",
            r#"userName gt 5"#,
        ] {
            assert!(sql(ResourceKind::User, f).is_err(), "{f}");
        }
    }
}
