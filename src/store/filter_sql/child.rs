//! Multi-valued attributes kept in child tables (`scim_emails`, `scim_members`): their
//! filters are `r.id IN (SELECT <link column> FROM <child> WHERE ...)` over indexed columns.
//! (Not `EXISTS (... WHERE link = r.id ...)`: SQLite runs a correlated `EXISTS` once per row
//! of the resource table, a full scan; the `IN` form searches the child's index first. The
//! two are equivalent here because both id columns are NOT NULL.)

use super::{bad, core_schema_or_none, null_cond, null_op, string_expected, Compiler, Param};
use crate::scim::error::ProtocolError;
use crate::scim::filter::{AttrPath, CompValue, CompareOp, Filter};
use crate::scim::resource::ResourceKind;

/// A multi-valued attribute kept in a child table: `r.id IN (SELECT link FROM table WHERE ...)`.
#[derive(Debug)]
pub(super) struct Child {
    pub(super) table: &'static str,
    /// The child column holding the resource's id.
    pub(super) link: &'static str,
    pub(super) subs: &'static [Sub],
}

impl Child {
    /// "Some element satisfies `cond`", as a condition on the resource row `r`.
    pub(super) fn any(&self, cond: &str) -> String {
        format!(
            "r.id IN (SELECT {} FROM {} WHERE {cond})",
            self.link, self.table
        )
    }
}

/// A searchable sub-attribute of a child table; `ci` = stored lower-cased.
#[derive(Debug)]
pub(super) struct Sub {
    pub(super) name: &'static str,
    pub(super) col: &'static str,
    pub(super) ci: bool,
}

const USER_EMAILS: Child = Child {
    table: "scim_emails e",
    link: "e.user_id",
    subs: &[Sub {
        name: "value",
        col: "e.value_lower",
        ci: true,
    }],
};
const USER_GROUPS: Child = Child {
    table: "scim_members gm JOIN scim_groups gg ON gg.id = gm.group_id",
    link: "gm.member_id",
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
    link: "m.group_id",
    subs: &[Sub {
        name: "value",
        col: "m.member_id",
        ci: false,
    }],
};

pub(super) fn child(kind: ResourceKind, path: &AttrPath) -> Option<&'static Child> {
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

pub(super) fn child_sub(c: &'static Child, name: Option<&str>) -> Option<&'static Sub> {
    let name = name.unwrap_or("value");
    c.subs.iter().find(|s| s.name.eq_ignore_ascii_case(name))
}

/// Does the inside of a value filter only name sub-attributes the child table has?
pub(super) fn child_only(c: &'static Child, f: &Filter) -> bool {
    match f {
        Filter::And(l, r) | Filter::Or(l, r) => child_only(c, l) && child_only(c, r),
        Filter::Not(i) => child_only(c, i),
        Filter::Present(p) | Filter::Compare { path: p, .. } => {
            p.schema.is_none() && p.sub_attr.is_none() && child_sub(c, Some(&p.attr)).is_some()
        }
        Filter::ValuePath { .. } => false,
    }
}

impl Compiler {
    pub(super) fn child_compare(
        &mut self,
        c: &'static Child,
        sub: &'static Sub,
        path: &AttrPath,
        op: CompareOp,
        value: &CompValue,
    ) -> Result<String, ProtocolError> {
        let exists = |cond: &str| c.any(cond);
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

    /// The inside of `attr[...]` over a child table's columns.
    pub(super) fn child_inner(
        &mut self,
        c: &'static Child,
        f: &Filter,
    ) -> Result<String, ProtocolError> {
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
