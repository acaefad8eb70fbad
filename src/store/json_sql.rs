//! SQL expressions over the stored JSON document (`doc`, JSON text in both back-ends),
//! the one place where the two dialects really differ for searching and sorting:
//! SQLite `json_extract`/`json_type`/`json_each`, PostgreSQL `jsonb` operators.
//!
//! Paths are built only from `&'static str` names out of the schema table (never from
//! request text); values are always bound parameters.
//!
//! Both back-ends are made to agree exactly: case-insensitive comparisons fold ASCII
//! letters only (SQLite's `lower()` does nothing else, so PostgreSQL uses `translate`),
//! and ordering is by code point (PostgreSQL `COLLATE "C"`, SQLite's default `BINARY`).

use super::Backend;

/// Where a JSON value is read from: the resource's document, or the element of a
/// multi-valued attribute that an enclosing `EXISTS (SELECT 1 FROM <elements> ...)` visits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    Doc,
    Elem,
}

#[derive(Debug, Clone, Copy)]
pub struct Dialect(pub Backend);

const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";

impl Dialect {
    fn base(self, root: Root) -> &'static str {
        match (self.0, root) {
            (Backend::Sqlite, Root::Doc) => "r.doc",
            (Backend::Sqlite, Root::Elem) => "je.value",
            (Backend::Postgres, Root::Doc) => "r.doc_json",
            (Backend::Postgres, Root::Elem) => "je.v",
        }
    }

    fn path(self, path: &[&'static str]) -> String {
        match self.0 {
            Backend::Sqlite => {
                let mut s = String::from("'$");
                for p in path {
                    s.push_str(".\"");
                    s.push_str(p);
                    s.push('"');
                }
                s.push('\'');
                s
            }
            Backend::Postgres => {
                let inner: Vec<String> = path.iter().map(|p| format!("\"{p}\"")).collect();
                format!("'{{{}}}'", inner.join(","))
            }
        }
    }

    /// The value at `path` as SQL text (a JSON string unquoted); NULL when absent or null.
    pub fn text(self, root: Root, path: &[&'static str]) -> String {
        let (b, p) = (self.base(root), self.path(path));
        match self.0 {
            Backend::Sqlite => format!("json_extract({b}, {p})"),
            Backend::Postgres => format!("({b} #>> {p})"),
        }
    }

    /// `'true'` / `'false'` for a JSON boolean at `path`, something else for other JSON
    /// values, NULL when absent.
    pub fn boolean(self, root: Root, path: &[&'static str]) -> String {
        let (b, p) = (self.base(root), self.path(path));
        match self.0 {
            Backend::Sqlite => format!("json_type({b}, {p})"),
            Backend::Postgres => format!("(({b} #> {p})::text)"),
        }
    }

    /// True when `path` holds a non-null value (NULL, i.e. false, when absent).
    pub fn exists(self, root: Root, path: &[&'static str]) -> String {
        let (b, p) = (self.base(root), self.path(path));
        match self.0 {
            Backend::Sqlite => format!("(json_type({b}, {p}) <> 'null')"),
            Backend::Postgres => format!("(jsonb_typeof({b} #> {p}) <> 'null')"),
        }
    }

    /// The sub-attribute `leaf` of the first element of the array at `path` in the
    /// document: as text, or (with `boolean`) as [`Dialect::boolean`] gives it.
    pub fn first_element(self, path: &[&'static str], leaf: &'static str, boolean: bool) -> String {
        let b = self.base(Root::Doc);
        match self.0 {
            Backend::Sqlite => {
                let p = self.path(path);
                let p = format!("{}[0].\"{leaf}\"'", &p[..p.len() - 1]);
                if boolean {
                    format!("json_type({b}, {p})")
                } else {
                    format!("json_extract({b}, {p})")
                }
            }
            Backend::Postgres => {
                let p = self.path(path);
                let p = format!("{},0,\"{leaf}\"}}'", &p[..p.len() - 2]);
                if boolean {
                    format!("(({b} #> {p})::text)")
                } else {
                    format!("({b} #>> {p})")
                }
            }
        }
    }

    /// `FROM` items and a condition visiting the object elements of the array at `path` in
    /// the document, each as [`Root::Elem`].
    pub fn elements(self, path: &[&'static str]) -> (String, String) {
        let (b, p) = (self.base(Root::Doc), self.path(path));
        match self.0 {
            Backend::Sqlite => (
                format!("json_each({b}, {p}) je"),
                format!("json_type({b}, {p}) = 'array' AND je.type = 'object'"),
            ),
            Backend::Postgres => (
                format!(
                    "jsonb_array_elements(CASE WHEN jsonb_typeof({b} #> {p}) = 'array' \
                     THEN {b} #> {p} ELSE '[]'::jsonb END) je(v)"
                ),
                "jsonb_typeof(je.v) = 'object'".to_string(),
            ),
        }
    }

    /// `expr` with ASCII letters lower-cased (pair with [`fold_value`] on the parameter).
    pub fn fold(self, expr: &str) -> String {
        match self.0 {
            Backend::Sqlite => format!("lower({expr})"),
            Backend::Postgres => format!("translate({expr}, '{UPPER}', '{LOWER}')"),
        }
    }

    /// `expr` compared and sorted by code point.
    pub fn ordered(self, expr: &str) -> String {
        match self.0 {
            Backend::Sqlite => expr.to_string(),
            Backend::Postgres => format!("({expr} COLLATE \"C\")"),
        }
    }

    /// `needle` occurs in `hay` (case as given).
    pub fn contains(self, hay: &str, needle: &str) -> String {
        match self.0 {
            Backend::Sqlite => format!("(instr({hay}, {needle}) > 0)"),
            Backend::Postgres => format!("(strpos({hay}, {needle}) > 0)"),
        }
    }
}

/// A filter value folded the way [`Dialect::fold`] folds the stored side.
pub fn fold_value(s: &str) -> String {
    s.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_quote_every_schema_name() {
        let urn = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        assert_eq!(
            Dialect(Backend::Sqlite).text(Root::Doc, &[urn, "department"]),
            format!("json_extract(r.doc, '$.\"{urn}\".\"department\"')")
        );
        assert_eq!(
            Dialect(Backend::Postgres).text(Root::Doc, &[urn, "department"]),
            format!("(r.doc_json #>> '{{\"{urn}\",\"department\"}}')")
        );
        assert_eq!(
            Dialect(Backend::Postgres).boolean(Root::Elem, &["primary"]),
            "((je.v #> '{\"primary\"}')::text)"
        );
        assert_eq!(fold_value("ÀB"), "Àb");
        assert_eq!(
            Dialect(Backend::Sqlite).first_element(&["emails"], "value", false),
            "json_extract(r.doc, '$.\"emails\"[0].\"value\"')"
        );
        assert_eq!(
            Dialect(Backend::Postgres).first_element(&["emails"], "primary", true),
            "((r.doc_json #> '{\"emails\",0,\"primary\"}')::text)"
        );
    }
}
