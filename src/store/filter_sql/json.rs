//! The part of the filter compiler that reads the stored JSON document: attributes of the
//! schema without an indexed column, value filters over multi-valued attributes.

use super::{bad, null_cond, string_expected, Compiler, Param};
use crate::scim::attr_ref::{resolve_sub, AttrRef};
use crate::scim::error::ProtocolError;
use crate::scim::filter::{AttrPath, CompValue, CompareOp, Filter};
use crate::scim::schema::{AttrDef, AttrType};
use crate::store::json_sql::{fold_value, Root};

impl Compiler {
    pub(super) fn json_present(&self, a: &AttrRef) -> String {
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

    pub(super) fn leaf_present(&self, root: Root, path: &[&'static str], def: &AttrDef) -> String {
        match def.ty {
            AttrType::String | AttrType::Reference | AttrType::DateTime => {
                let t = self.d.text(root, path);
                format!("({t} IS NOT NULL AND {t} <> '')")
            }
            AttrType::Boolean => format!("({} IN ('true', 'false'))", self.d.boolean(root, path)),
            _ => self.d.exists(root, path),
        }
    }

    pub(super) fn json_compare(
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
    pub(super) fn leaf_compare(
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

    /// The inside of `attr[...]` over JSON: paths are sub-attributes of `a`, at `prefix`.
    pub(super) fn json_inner(
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
}
