//! Recursive-descent parser for SCIM filters and PATCH paths (over the tokens of `lex`).
//!
//! Recursion only happens when entering a `(`, `not (` or `[` group, and the number of open
//! groups is capped at [`MAX_DEPTH`], so the parser's stack use is bounded for any input.
//! `and`/`or` chains are built iteratively; the height of the resulting tree is capped too.

use super::lex::{
    check_name, is_number_like, lex, parse_attr_path, parse_number, quote, sub_attr_before_bracket,
    Kind, Tok,
};
use super::{
    AttrPath, CompValue, CompareOp, Filter, FilterError, PatchPath, MAX_DEPTH, MAX_FILTER_LEN,
};

const OPERATORS: &str = "eq, ne, co, sw, ew, gt, ge, lt, le, pr";
const VALUE_KINDS: &str = "a \"quoted string\", a number, true, false or null";

/// Parses a SCIM filter (RFC 7644 §3.4.2.2), e.g. `userName eq "bjensen" and not (title pr)`.
pub fn parse_filter(input: &str) -> Result<Filter, FilterError> {
    check_len(input, "filter")?;
    let toks = lex(input)?;
    if toks.is_empty() {
        return Err(FilterError::new("empty filter", 0));
    }
    let mut p = Parser::new(input, toks);
    let (filter, _) = p.parse_or()?;
    p.finish("")?;
    Ok(filter)
}

/// Parses a PATCH operation path (RFC 7644 §3.5.2): `attrPath / valuePath [subAttr]`, e.g.
/// `members`, `name.givenName`, `emails[type eq "work"].value`,
/// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager`.
pub fn parse_patch_path(input: &str) -> Result<PatchPath, FilterError> {
    check_len(input, "path")?;
    let toks = lex(input)?;
    let mut p = Parser::new(input, toks);
    let Some(first) = p.peek().cloned() else {
        return Err(FilterError::new("empty path", 0));
    };
    let Kind::Word(word) = first.kind else {
        return Err(FilterError::new(
            format!("expected an attribute path, found {}", p.describe(&first)),
            first.start,
        ));
    };
    let attr = parse_attr_path(word, first.start)?;
    p.pos += 1;

    let mut value_filter = None;
    let mut sub_attr = None;
    if let Some(open) = p.peek().cloned() {
        if open.kind == Kind::LBracket && !open.ws_before {
            if let Some(sub) = &attr.sub_attr {
                return Err(sub_attr_before_bracket(&attr, sub, open.start));
            }
            p.pos += 1;
            p.enter(open.start)?;
            p.in_value_path = true;
            let (filter, _) = p.parse_or()?;
            p.expect_close(&Kind::RBracket, open.start)?;
            p.leave();
            p.in_value_path = false;
            value_filter = Some(filter);

            if let Some(next) = p.peek().cloned() {
                if let Kind::Word(w) = next.kind {
                    if let (Some(name), false) = (w.strip_prefix('.'), next.ws_before) {
                        let at = next.start.saturating_add(1);
                        if let Some(dot) = name.find('.') {
                            return Err(FilterError::new(
                                format!(
                                    "invalid sub-attribute {}: only one level of sub-attribute is allowed",
                                    quote(name)
                                ),
                                at.saturating_add(dot),
                            ));
                        }
                        check_name(name, at, "sub-attribute")?;
                        sub_attr = Some(name.to_string());
                        p.pos += 1;
                    }
                }
            }
        }
    }
    p.finish(" (a PATCH path is an attribute path, optionally followed by a value filter \"[...]\" and \".subAttribute\")")?;
    Ok(PatchPath {
        attr,
        value_filter,
        sub_attr,
    })
}

fn check_len(input: &str, what: &str) -> Result<(), FilterError> {
    if input.len() > MAX_FILTER_LEN {
        return Err(FilterError::new(
            format!(
                "{what} is too long ({} bytes; at most {MAX_FILTER_LEN} are allowed)",
                input.len()
            ),
            MAX_FILTER_LEN,
        ));
    }
    Ok(())
}

fn too_deep(at: usize) -> FilterError {
    FilterError::new(format!("filter nests deeper than {MAX_DEPTH} levels"), at)
}

/// One more level of tree height, checked against [`MAX_DEPTH`].
fn deeper(height: usize, at: usize) -> Result<usize, FilterError> {
    let h = height.saturating_add(1);
    if h > MAX_DEPTH {
        Err(too_deep(at))
    } else {
        Ok(h)
    }
}

/// Whether a token looks like a comparison value (used to reject `attr pr value`).
fn is_value_like(t: &Tok<'_>) -> bool {
    match t.kind {
        Kind::Str(_) => true,
        Kind::Word(w) => {
            ["true", "false", "null"]
                .iter()
                .any(|k| w.eq_ignore_ascii_case(k))
                || is_number_like(w)
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

/// A parsed sub-filter with the height of its tree (leaves have height 0).
type Parsed = (Filter, usize);

struct Parser<'a> {
    input: &'a str,
    toks: Vec<Tok<'a>>,
    pos: usize,
    /// Number of currently open `(`, `not (` and `[` groups.
    depth: usize,
    in_value_path: bool,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str, toks: Vec<Tok<'a>>) -> Self {
        Parser {
            input,
            toks,
            pos: 0,
            depth: 0,
            in_value_path: false,
        }
    }

    fn peek(&self) -> Option<&Tok<'a>> {
        self.toks.get(self.pos)
    }

    fn peek_at(&self, n: usize) -> Option<&Tok<'a>> {
        self.toks.get(self.pos.saturating_add(n))
    }

    fn prev(&self) -> Option<&Tok<'a>> {
        self.pos.checked_sub(1).and_then(|i| self.toks.get(i))
    }

    fn end(&self) -> usize {
        self.input.len()
    }

    /// If the next token is the (case-insensitive) keyword `kw`, returns its position.
    fn peek_keyword(&self, kw: &str) -> Option<usize> {
        match self.peek() {
            Some(Tok {
                kind: Kind::Word(w),
                start,
                ..
            }) if w.eq_ignore_ascii_case(kw) => Some(*start),
            _ => None,
        }
    }

    fn describe(&self, t: &Tok<'_>) -> String {
        match &t.kind {
            Kind::LParen => "\"(\"".to_string(),
            Kind::RParen => "\")\"".to_string(),
            Kind::LBracket => "\"[\"".to_string(),
            Kind::RBracket => "\"]\"".to_string(),
            Kind::Str(_) => {
                // The literal as written, shortened when long.
                let raw = self.input.get(t.start..t.end).unwrap_or("\"...\"");
                let short: String = raw.chars().take(40).collect();
                if short.len() < raw.len() {
                    format!("the string {short}...")
                } else {
                    format!("the string {raw}")
                }
            }
            Kind::Word(w) => quote(w),
        }
    }

    fn enter(&mut self, at: usize) -> Result<(), FilterError> {
        self.depth = self.depth.saturating_add(1);
        if self.depth > MAX_DEPTH {
            Err(too_deep(at))
        } else {
            Ok(())
        }
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Consumes the closing `)` or `]` of a group opened at `open_at`.
    fn expect_close(&mut self, close: &Kind<'a>, open_at: usize) -> Result<(), FilterError> {
        let (closing, what) = if *close == Kind::RParen {
            ("\")\"", "parenthesis: \"(\"")
        } else {
            ("\"]\"", "bracket: \"[\"")
        };
        match self.peek() {
            None => Err(FilterError::new(
                format!("unbalanced {what} is never closed"),
                open_at,
            )),
            Some(t) if t.kind == *close => {
                self.pos += 1;
                Ok(())
            }
            Some(t) => Err(FilterError::new(
                format!(
                    "expected \"and\", \"or\" or {closing}, found {}",
                    self.describe(t)
                ),
                t.start,
            )),
        }
    }

    /// Requires that all input has been consumed.
    fn finish(&self, hint: &str) -> Result<(), FilterError> {
        let Some(t) = self.peek() else {
            return Ok(());
        };
        let message = match t.kind {
            Kind::RParen => "unbalanced parenthesis: unexpected \")\"".to_string(),
            Kind::RBracket => "unbalanced bracket: unexpected \"]\"".to_string(),
            _ => {
                let rest = self.input.get(t.start..).unwrap_or("").trim_end();
                format!("unexpected trailing input {}{hint}", quote(rest))
            }
        };
        Err(FilterError::new(message, t.start))
    }

    fn parse_or(&mut self) -> Result<Parsed, FilterError> {
        let (mut left, mut height) = self.parse_and()?;
        while let Some(at) = self.peek_keyword("or") {
            self.pos += 1;
            let (right, h) = self.parse_and()?;
            height = deeper(height.max(h), at)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok((left, height))
    }

    fn parse_and(&mut self) -> Result<Parsed, FilterError> {
        let (mut left, mut height) = self.parse_term()?;
        while let Some(at) = self.peek_keyword("and") {
            self.pos += 1;
            let (right, h) = self.parse_term()?;
            height = deeper(height.max(h), at)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok((left, height))
    }

    fn expected_term(&self, found: Option<&Tok<'_>>) -> FilterError {
        let after = match self.prev() {
            Some(t) => format!(" after {}", self.describe(t)),
            None => String::new(),
        };
        let prev_kind = self.prev().map(|t| &t.kind);
        match found {
            Some(t) if t.kind == Kind::RParen && prev_kind == Some(&Kind::LParen) => {
                FilterError::new("empty parentheses \"()\"", t.start)
            }
            Some(t) if t.kind == Kind::RBracket && prev_kind == Some(&Kind::LBracket) => {
                FilterError::new("empty value filter \"[]\"", t.start)
            }
            Some(t) => FilterError::new(
                format!(
                    "expected an attribute path, \"(\" or \"not (\"{after}, found {}",
                    self.describe(t)
                ),
                t.start,
            ),
            None => FilterError::new(
                format!("expected an attribute path, \"(\" or \"not (\"{after}, found the end of the filter"),
                self.end(),
            ),
        }
    }

    fn parse_term(&mut self) -> Result<Parsed, FilterError> {
        let Some(tok) = self.peek().cloned() else {
            return Err(self.expected_term(None));
        };
        match tok.kind {
            Kind::LParen => {
                self.pos += 1;
                self.enter(tok.start)?;
                let parsed = self.parse_or()?;
                self.expect_close(&Kind::RParen, tok.start)?;
                self.leave();
                Ok(parsed)
            }
            Kind::Word(w) if w.eq_ignore_ascii_case("not") => {
                match self.peek_at(1).cloned() {
                    Some(open) if open.kind == Kind::LParen => {
                        self.pos += 2;
                        self.enter(tok.start)?;
                        let (inner, h) = self.parse_or()?;
                        self.expect_close(&Kind::RParen, open.start)?;
                        self.leave();
                        Ok((Filter::Not(Box::new(inner)), deeper(h, tok.start)?))
                    }
                    // An attribute that happens to be called "not": `not pr`, `not eq 1`, `not[...]`.
                    Some(Tok {
                        kind: Kind::Word(next),
                        ..
                    }) if next.eq_ignore_ascii_case("pr")
                        || CompareOp::from_keyword(next).is_some() =>
                    {
                        self.parse_attr_expr(w, tok.start)
                    }
                    Some(open) if open.kind == Kind::LBracket && !open.ws_before => {
                        self.parse_attr_expr(w, tok.start)
                    }
                    Some(t) => Err(FilterError::new(
                        format!(
                            "expected \"(\" after \"not\", found {} (write \"not (...)\")",
                            self.describe(&t)
                        ),
                        t.start,
                    )),
                    None => Err(FilterError::new(
                        "expected \"(\" after \"not\", found the end of the filter",
                        self.end(),
                    )),
                }
            }
            Kind::Word(w) => self.parse_attr_expr(w, tok.start),
            Kind::Str(_) => Err(FilterError::new(
                format!(
                    "expected an attribute path, found {} (attribute names are not quoted)",
                    self.describe(&tok)
                ),
                tok.start,
            )),
            _ => Err(self.expected_term(Some(&tok))),
        }
    }

    /// `attrPath "[" valFilter "]"`, `attrPath pr` or `attrPath op value`; the attribute path
    /// is the current token.
    fn parse_attr_expr(&mut self, word: &'a str, at: usize) -> Result<Parsed, FilterError> {
        let path = parse_attr_path(word, at)?;
        self.pos += 1;

        match self.peek() {
            Some(next) if next.kind == Kind::LBracket && !next.ws_before => {
                let open_at = next.start;
                self.parse_value_path(path, open_at)
            }
            _ => Ok((self.parse_comparison(path, word)?, 0)),
        }
    }

    /// `pr` or `op value` after the attribute path `path` (written `word`).
    fn parse_comparison(&mut self, path: AttrPath, word: &str) -> Result<Filter, FilterError> {
        let Some(next) = self.peek().cloned() else {
            return Err(FilterError::new(
                format!(
                    "expected a comparison operator ({OPERATORS}) after {}",
                    quote(word)
                ),
                self.end(),
            ));
        };
        match next.kind {
            Kind::Word(op_word) if op_word.eq_ignore_ascii_case("pr") => {
                self.pos += 1;
                if let Some(t) = self.peek() {
                    if is_value_like(t) {
                        return Err(FilterError::new("\"pr\" takes no value", t.start));
                    }
                }
                Ok(Filter::Present(path))
            }
            Kind::Word(op_word) => match CompareOp::from_keyword(op_word) {
                Some(op) => {
                    self.pos += 1;
                    let value = self.parse_value(op_word)?;
                    Ok(Filter::Compare { path, op, value })
                }
                None => Err(self.expected_operator(word, &next)),
            },
            _ => Err(self.expected_operator(word, &next)),
        }
    }

    fn expected_operator(&self, word: &str, found: &Tok<'_>) -> FilterError {
        let hint = if found.kind == Kind::LBracket {
            " (no whitespace is allowed between an attribute and \"[\")"
        } else {
            ""
        };
        FilterError::new(
            format!(
                "expected a comparison operator ({OPERATORS}) after {}, found {}{hint}",
                quote(word),
                self.describe(found)
            ),
            found.start,
        )
    }

    /// `attr "[" valFilter "]"` in a filter; the current token is the `[` at `open_at`.
    fn parse_value_path(&mut self, path: AttrPath, open_at: usize) -> Result<Parsed, FilterError> {
        if self.in_value_path {
            return Err(FilterError::new(
                "value filters cannot be nested: a value path \"attr[...]\" may not appear inside another one",
                open_at,
            ));
        }
        if let Some(sub) = &path.sub_attr {
            return Err(sub_attr_before_bracket(&path, sub, open_at));
        }
        self.pos += 1;
        self.enter(open_at)?;
        self.in_value_path = true;
        let (inner, h) = self.parse_or()?;
        self.expect_close(&Kind::RBracket, open_at)?;
        self.in_value_path = false;
        self.leave();
        let height = deeper(h, open_at)?;

        // `emails[type eq "work"].value eq "x"`: RFC 7644's filter grammar has no sub-attribute
        // after a value filter (only PATCH paths do), but Entra ID documents this form for its
        // matching lookups; it means `emails[type eq "work" and value eq "x"]`, and is parsed
        // (and printed back) as that.
        let sub = match self.peek() {
            Some(t) if !t.ws_before => match t.kind {
                Kind::Word(w) => w.strip_prefix('.').map(|sub| (sub, w, t.start)),
                _ => None,
            },
            _ => None,
        };
        let inner = match sub {
            None => inner,
            Some((sub, word, at)) => {
                let sub_path = parse_attr_path(sub, at + 1)?;
                if sub_path.schema.is_some() || sub_path.sub_attr.is_some() {
                    return Err(FilterError::new(
                        format!(
                            "after \"]\" only a sub-attribute name may follow, e.g. {path}[...].value; found {}",
                            quote(word)
                        ),
                        at,
                    ));
                }
                self.pos += 1;
                let word = format!("{path}[...]{word}");
                let compare = self.parse_comparison(sub_path, &word)?;
                Filter::And(Box::new(inner), Box::new(compare))
            }
        };
        Ok((
            Filter::ValuePath {
                path,
                filter: Box::new(inner),
            },
            height,
        ))
    }

    /// The comparison value after operator `op_word`.
    fn parse_value(&mut self, op_word: &str) -> Result<CompValue, FilterError> {
        let Some(t) = self.peek() else {
            return Err(FilterError::new(
                format!(
                    "expected a value ({VALUE_KINDS}) after {}, found the end of the filter",
                    quote(op_word)
                ),
                self.end(),
            ));
        };
        let value = match &t.kind {
            Kind::Str(s) => CompValue::String(s.clone()),
            Kind::Word(w) if w.eq_ignore_ascii_case("true") => CompValue::Bool(true),
            Kind::Word(w) if w.eq_ignore_ascii_case("false") => CompValue::Bool(false),
            Kind::Word(w) if w.eq_ignore_ascii_case("null") => CompValue::Null,
            Kind::Word(w) if is_number_like(w) => CompValue::Number(parse_number(w, t.start)?),
            Kind::Word(w) => {
                return Err(FilterError::new(
                    format!(
                        "invalid value {} after {}: expected {VALUE_KINDS} (strings must be in double quotes)",
                        quote(w),
                        quote(op_word)
                    ),
                    t.start,
                ))
            }
            _ => {
                return Err(FilterError::new(
                    format!(
                        "expected a value ({VALUE_KINDS}) after {}, found {}",
                        quote(op_word),
                        self.describe(t)
                    ),
                    t.start,
                ))
            }
        };
        self.pos += 1;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{
        parse_filter, parse_patch_path, AttrPath, CompValue, CompareOp, Filter, FilterError,
        PatchPath, MAX_DEPTH, MAX_FILTER_LEN,
    };

    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

    // ---- helpers (no unwrap/expect, so the tests stay clean under any clippy settings) ----

    fn ok(input: &str) -> Filter {
        match parse_filter(input) {
            Ok(f) => {
                // Every successfully parsed filter must survive a print/parse round trip.
                assert_eq!(
                    parse_filter(&f.to_string()),
                    Ok(f.clone()),
                    "round trip of {input:?}"
                );
                f
            }
            Err(e) => panic!("{input:?} should parse, got: {e}"),
        }
    }

    fn err(input: &str) -> FilterError {
        match parse_filter(input) {
            Ok(f) => panic!("{input:?} should fail, parsed as {f:?}"),
            Err(e) => e,
        }
    }

    fn pp_ok(input: &str) -> PatchPath {
        match parse_patch_path(input) {
            Ok(p) => {
                assert_eq!(
                    parse_patch_path(&p.to_string()),
                    Ok(p.clone()),
                    "round trip of {input:?}"
                );
                p
            }
            Err(e) => panic!("{input:?} should parse as a PATCH path, got: {e}"),
        }
    }

    fn pp_err(input: &str) -> FilterError {
        match parse_patch_path(input) {
            Ok(p) => panic!("{input:?} should fail, parsed as {p:?}"),
            Err(e) => e,
        }
    }

    fn assert_err(input: &str, message_part: &str, position: usize) {
        let e = err(input);
        assert!(
            e.message.contains(message_part),
            "{input:?}: message {:?} should contain {message_part:?}",
            e.message
        );
        assert_eq!(
            e.position, position,
            "{input:?}: position of {:?}",
            e.message
        );
    }

    fn path(attr: &str) -> AttrPath {
        AttrPath::new(attr)
    }

    fn sub(attr: &str, sub_attr: &str) -> AttrPath {
        AttrPath {
            schema: None,
            attr: attr.into(),
            sub_attr: Some(sub_attr.into()),
        }
    }

    fn urn(schema: &str, attr: &str, sub_attr: Option<&str>) -> AttrPath {
        AttrPath {
            schema: Some(schema.into()),
            attr: attr.into(),
            sub_attr: sub_attr.map(str::to_string),
        }
    }

    fn s(v: &str) -> CompValue {
        CompValue::String(v.into())
    }

    fn n(v: i64) -> CompValue {
        CompValue::Number(v.into())
    }

    fn f64v(v: f64) -> CompValue {
        match serde_json::Number::from_f64(v) {
            Some(num) => CompValue::Number(num),
            None => panic!("not finite: {v}"),
        }
    }

    fn cmp(p: AttrPath, op: CompareOp, value: CompValue) -> Filter {
        Filter::Compare { path: p, op, value }
    }

    fn eq(attr: &str, value: CompValue) -> Filter {
        cmp(path(attr), CompareOp::Eq, value)
    }

    fn pr(attr: &str) -> Filter {
        Filter::Present(path(attr))
    }

    fn and(a: Filter, b: Filter) -> Filter {
        Filter::And(Box::new(a), Box::new(b))
    }

    fn or(a: Filter, b: Filter) -> Filter {
        Filter::Or(Box::new(a), Box::new(b))
    }

    fn not(a: Filter) -> Filter {
        Filter::Not(Box::new(a))
    }

    fn vp(attr: &str, inner: Filter) -> Filter {
        Filter::ValuePath {
            path: path(attr),
            filter: Box::new(inner),
        }
    }

    // ---- operators, keywords, values ----

    #[test]
    fn every_operator() {
        for op in CompareOp::ALL {
            let expected = cmp(path("userName"), op, s("x"));
            assert_eq!(ok(&format!("userName {op} \"x\"")), expected);
            assert_eq!(
                ok(&format!("userName {} \"x\"", op.as_str().to_uppercase())),
                expected
            );
        }
        assert_eq!(ok("title pr"), pr("title"));
        assert_eq!(ok("title PR"), pr("title"));
    }

    #[test]
    fn keywords_are_case_insensitive() {
        assert_eq!(
            ok("a Eq TRUE AND b eQ False Or NOT (c EQ nUlL)"),
            or(
                and(
                    eq("a", CompValue::Bool(true)),
                    eq("b", CompValue::Bool(false))
                ),
                not(eq("c", CompValue::Null))
            )
        );
        assert_eq!(ok("Not (x Pr)"), not(pr("x")));
    }

    #[test]
    fn attribute_names_keep_their_case() {
        assert_eq!(ok("USERNAME eq \"x\""), eq("USERNAME", s("x")));
        assert_eq!(
            ok("Name.GivenName pr"),
            Filter::Present(sub("Name", "GivenName"))
        );
        assert_eq!(
            ok("members.$ref pr"),
            Filter::Present(sub("members", "$ref"))
        );
        assert_eq!(ok("$ref pr"), pr("$ref"));
        assert_eq!(ok("x-y_z9 pr"), pr("x-y_z9"));
    }

    #[test]
    fn keywords_as_attribute_names() {
        assert_eq!(ok("not eq 1"), eq("not", n(1)));
        assert_eq!(ok("not pr"), pr("not"));
        assert_eq!(ok("and pr and or pr"), and(pr("and"), pr("or")));
        assert_eq!(ok("pr pr or eq eq 1"), or(pr("pr"), eq("eq", n(1))));
        assert_eq!(ok("not[value pr]"), vp("not", pr("value")));
        assert_eq!(ok("null eq null"), eq("null", CompValue::Null));
    }

    #[test]
    fn numbers() {
        assert_eq!(ok("a eq 42"), eq("a", n(42)));
        assert_eq!(ok("a eq -7"), eq("a", n(-7)));
        assert_eq!(ok("a eq 0"), eq("a", n(0)));
        assert_eq!(ok("a eq 1.5"), eq("a", f64v(1.5)));
        assert_eq!(ok("a eq -0.25"), eq("a", f64v(-0.25)));
        assert_eq!(ok("a eq 1e3"), eq("a", f64v(1000.0)));
        assert_eq!(ok("a eq 2E-2"), eq("a", f64v(0.02)));
        assert_eq!(ok("a eq 1.5e+10"), eq("a", f64v(1.5e10)));
        assert_eq!(
            ok("a eq 18446744073709551615"),
            eq("a", CompValue::Number(u64::MAX.into()))
        );
        assert_eq!(
            ok("a eq -9223372036854775808"),
            eq("a", CompValue::Number(i64::MIN.into()))
        );
        // Beyond u64: a float, like serde_json does.
        assert_eq!(ok("a eq 100000000000000000000"), eq("a", f64v(1e20)));
        assert_eq!(ok("a gt 1.0").to_string(), "a gt 1.0");
        assert_eq!(ok("a lt 1e3").to_string(), "a lt 1000.0");

        assert_err("a eq 01", "invalid number \"01\"", 5);
        assert_err("a eq 1.", "invalid number \"1.\"", 5);
        assert_err("a eq -", "invalid number \"-\"", 5);
        assert_err("a eq 1e", "invalid number \"1e\"", 5);
        assert_err("a eq 12abc", "invalid number \"12abc\"", 5);
        assert_err("a eq 1e400", "number out of range", 5);
        assert_err("a eq .5", "invalid value \".5\"", 5);
        assert_err("a eq +1", "invalid value \"+1\"", 5);
    }

    #[test]
    fn strings_escapes_and_unicode() {
        assert_eq!(ok(r#"a eq "say \"hi\"""#), eq("a", s("say \"hi\"")));
        assert_eq!(ok(r#"a eq "back\\slash""#), eq("a", s("back\\slash")));
        assert_eq!(ok(r#"a eq "caf\u00e9""#), eq("a", s("café")));
        assert_eq!(ok(r#"a eq "café 日本 😀""#), eq("a", s("café 日本 😀")));
        assert_eq!(ok(r#"a eq "\ud83d\ude00""#), eq("a", s("😀")));
        assert_eq!(
            ok(r#"a eq "t\tn\nr\r\/\b\f""#),
            eq("a", s("t\tn\nr\r/\u{8}\u{c}"))
        );
        assert_eq!(ok(r#"a eq """#), eq("a", s("")));
        assert_eq!(ok(r#"a eq "(x) [y] and or""#), eq("a", s("(x) [y] and or")));
        assert_eq!(
            ok(r#"name.familyName co "O'Malley""#).to_string(),
            r#"name.familyName co "O'Malley""#
        );
        assert_eq!(
            ok(r#"a eq "q\"b\\ é\u0001""#).to_string(),
            r#"a eq "q\"b\\ é\u0001""#
        );

        assert_err(r#"a eq "abc"#, "unterminated string", 5);
        assert_err(r#"a eq "abc\""#, "unterminated string", 5);
        assert_err(r#"a eq "\q""#, "invalid string literal: invalid escape", 7);
        assert_err(
            "a eq \"tab\there\"",
            "invalid string literal: control character",
            9,
        );
        assert_err(r#"a eq "\ud800""#, "invalid string literal", 12);
        let e = err(r#"a eq "\q""#);
        assert!(
            !e.message.contains("line"),
            "serde location stripped: {}",
            e.message
        );
    }

    #[test]
    fn whitespace_is_lenient() {
        let expected = and(eq("a", s("x")), pr("b"));
        assert_eq!(ok("  a   eq\t\"x\"\n and\r\nb pr  "), expected);
        assert_eq!(ok("(a eq \"x\")and(b pr)"), expected);
        assert_eq!(ok("a eq\"x\" and b pr"), expected);
        assert_eq!(ok("not(a pr)"), not(pr("a")));
        assert_eq!(ok("( a pr )"), pr("a"));
        assert_eq!(
            ok("emails[ type eq \"work\" ]"),
            vp("emails", eq("type", s("work")))
        );
    }

    // ---- structure ----

    #[test]
    fn precedence_and_associativity() {
        let (a, b, c) = (eq("a", n(1)), eq("b", n(2)), eq("c", n(3)));
        assert_eq!(
            ok("a eq 1 or b eq 2 and c eq 3"),
            or(a.clone(), and(b.clone(), c.clone()))
        );
        assert_eq!(
            ok("a eq 1 and b eq 2 or c eq 3"),
            or(and(a.clone(), b.clone()), c.clone())
        );
        assert_eq!(
            ok("a eq 1 and b eq 2 and c eq 3"),
            and(and(a.clone(), b.clone()), c.clone())
        );
        assert_eq!(
            ok("a eq 1 or b eq 2 or c eq 3"),
            or(or(a.clone(), b.clone()), c.clone())
        );
        assert_eq!(
            ok("a eq 1 or b eq 2 and c eq 3 or a eq 1"),
            or(or(a.clone(), and(b.clone(), c.clone())), a.clone())
        );
        assert_eq!(
            ok("not (a eq 1) and b eq 2"),
            and(not(a.clone()), b.clone())
        );
        assert_eq!(
            ok("a eq 1 or not (b eq 2) and c eq 3"),
            or(a, and(not(b), c))
        );
    }

    #[test]
    fn parentheses() {
        let (a, b, c) = (pr("a"), pr("b"), pr("c"));
        assert_eq!(
            ok("(a pr or b pr) and c pr"),
            and(or(a.clone(), b.clone()), c.clone())
        );
        assert_eq!(
            ok("a pr and (b pr and c pr)"),
            and(a.clone(), and(b.clone(), c.clone()))
        );
        assert_eq!(ok("((((a pr))))"), a.clone());
        assert_eq!(
            ok("not ((a pr) or ((b pr)))"),
            not(or(a.clone(), b.clone()))
        );
        assert_eq!(ok("not (not (a pr))"), not(not(a)));
    }

    #[test]
    fn value_paths() {
        assert_eq!(
            ok(r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#),
            vp(
                "members",
                eq("value", s("2819c223-7f76-453a-919d-413861904646"))
            )
        );
        assert_eq!(
            ok(r#"emails[type eq "work" and value co "@example.com"]"#),
            vp(
                "emails",
                and(
                    eq("type", s("work")),
                    cmp(path("value"), CompareOp::Co, s("@example.com"))
                )
            )
        );
        assert_eq!(
            ok(r#"emails[not (type eq "work") or (primary eq true)]"#),
            vp(
                "emails",
                or(
                    not(eq("type", s("work"))),
                    eq("primary", CompValue::Bool(true))
                )
            )
        );
        assert_eq!(
            ok(r#"x pr and emails[type pr] or y pr"#),
            or(and(pr("x"), vp("emails", pr("type"))), pr("y"))
        );
        assert_eq!(
            ok(&format!("{ENTERPRISE}:manager[value eq \"m\"]")),
            Filter::ValuePath {
                path: urn(ENTERPRISE, "manager", None),
                filter: Box::new(eq("value", s("m"))),
            }
        );
        assert_eq!(
            ok(r#"emails[type eq "work"]"#).to_string(),
            r#"emails[type eq "work"]"#
        );

        assert_err(
            r#"emails[type eq "work" and addresses[type pr]]"#,
            "value filters cannot be nested",
            35,
        );
        // Entra ID's matching form: a sub-attribute after the value filter, compared; the
        // same as comparing it inside the brackets
        assert_eq!(
            ok(r#"emails[type eq "work"].value eq "x""#),
            vp("emails", and(eq("type", s("work")), eq("value", s("x"))))
        );
        assert_eq!(
            ok(r#"emails[type eq "work" or type eq "home"].Value co "@x" and userName pr"#),
            and(
                vp(
                    "emails",
                    and(
                        or(eq("type", s("work")), eq("type", s("home"))),
                        cmp(path("Value"), CompareOp::Co, s("@x"))
                    )
                ),
                pr("userName")
            )
        );
        assert_eq!(
            ok(r#"addresses[type eq "work"].locality pr"#).to_string(),
            r#"addresses[type eq "work" and locality pr]"#
        );
        let printed = ok(r#"emails[type eq "a" or type eq "b"].value eq "x""#).to_string();
        assert_eq!(
            ok(&printed),
            ok(r#"emails[type eq "a" or type eq "b"].value eq "x""#)
        );
        assert_err(
            r#"emails[type eq "work"].value"#,
            "expected a comparison operator",
            28,
        );
        assert_err(
            r#"emails[type eq "work"].value.display eq "x""#,
            "only a sub-attribute name may follow",
            22,
        );
        assert_err(r#"emails[type eq "work"] .value eq "x""#, "expected", 23);
        assert_err(
            r#"emails.type[value pr]"#,
            "must follow a multi-valued attribute",
            11,
        );
        assert_err(r#"emails [type eq "work"]"#, "no whitespace is allowed", 7);
        assert_err("emails[]", "empty value filter", 7);
        assert_err(
            r#"emails[type eq "work""#,
            "unbalanced bracket: \"[\" is never closed",
            6,
        );
        assert_err(
            r#"emails[type eq "work"]]"#,
            "unbalanced bracket: unexpected \"]\"",
            22,
        );
        assert_err(
            r#"emails[type eq "work")"#,
            r#"expected "and", "or" or "]", found ")""#,
            21,
        );
        assert_err(
            r#"(emails[type eq "work")]"#,
            r#"expected "and", "or" or "]", found ")""#,
            22,
        );
    }

    #[test]
    fn urn_paths() {
        assert_eq!(
            ok(&format!("{ENTERPRISE}:department eq \"Sales\"")),
            cmp(
                urn(ENTERPRISE, "department", None),
                CompareOp::Eq,
                s("Sales")
            )
        );
        assert_eq!(
            ok(&format!("{ENTERPRISE}:manager.value eq \"26118915\"")),
            cmp(
                urn(ENTERPRISE, "manager", Some("value")),
                CompareOp::Eq,
                s("26118915")
            )
        );
        assert_eq!(
            ok(&format!("{CORE_USER}:name.givenName pr")),
            Filter::Present(urn(CORE_USER, "name", Some("givenName")))
        );
        let upper = "URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER";
        assert_eq!(
            ok(&format!("{upper}:userName sw \"J\"")),
            cmp(urn(upper, "userName", None), CompareOp::Sw, s("J"))
        );
        assert_eq!(ok("urn:x:a pr"), Filter::Present(urn("urn:x", "a", None)));
        let text = format!("{ENTERPRISE}:manager.value eq \"x\"");
        assert_eq!(ok(&text).to_string(), text);

        assert_err("urn:a pr", "no schema URN before the attribute name", 0);
        assert_err(
            &format!("{CORE_USER}: pr"),
            "missing attribute name after schema URN",
            43,
        );
        // Without the attribute, "2.0" would be the attribute: rejected, not misread.
        assert_err(
            "urn:ietf:params:scim:schemas:core:2.0 pr",
            "invalid attribute name \"2\"",
            34,
        );
        assert_err(
            &format!("{ENTERPRISE}:manager.value.x pr"),
            "only one level of sub-attribute",
            ENTERPRISE.len() + 14,
        );
    }

    /// All example filters of RFC 7644 §3.4.2.2.
    #[test]
    fn rfc7644_examples() {
        let lm = || sub("meta", "lastModified");
        let ts = || s("2011-05-13T04:42:34Z");
        let cases: Vec<(&str, Filter)> = vec![
            (r#"userName eq "bjensen""#, eq("userName", s("bjensen"))),
            (
                r#"name.familyName co "O'Malley""#,
                cmp(sub("name", "familyName"), CompareOp::Co, s("O'Malley")),
            ),
            (
                r#"userName sw "J""#,
                cmp(path("userName"), CompareOp::Sw, s("J")),
            ),
            (
                r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
                cmp(urn(CORE_USER, "userName", None), CompareOp::Sw, s("J")),
            ),
            ("title pr", pr("title")),
            (
                r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
                cmp(lm(), CompareOp::Gt, ts()),
            ),
            (
                r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
                cmp(lm(), CompareOp::Ge, ts()),
            ),
            (
                r#"meta.lastModified lt "2011-05-13T04:42:34Z""#,
                cmp(lm(), CompareOp::Lt, ts()),
            ),
            (
                r#"meta.lastModified le "2011-05-13T04:42:34Z""#,
                cmp(lm(), CompareOp::Le, ts()),
            ),
            (
                r#"title pr and userType eq "Employee""#,
                and(pr("title"), eq("userType", s("Employee"))),
            ),
            (
                r#"title pr or userType eq "Intern""#,
                or(pr("title"), eq("userType", s("Intern"))),
            ),
            (
                r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
                eq("schemas", s(ENTERPRISE)),
            ),
            (
                r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
                and(
                    eq("userType", s("Employee")),
                    or(
                        cmp(path("emails"), CompareOp::Co, s("example.com")),
                        cmp(sub("emails", "value"), CompareOp::Co, s("example.org")),
                    ),
                ),
            ),
            (
                r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
                and(
                    cmp(path("userType"), CompareOp::Ne, s("Employee")),
                    not(or(
                        cmp(path("emails"), CompareOp::Co, s("example.com")),
                        cmp(sub("emails", "value"), CompareOp::Co, s("example.org")),
                    )),
                ),
            ),
            (
                r#"userType eq "Employee" and (emails.type eq "work")"#,
                and(
                    eq("userType", s("Employee")),
                    cmp(sub("emails", "type"), CompareOp::Eq, s("work")),
                ),
            ),
            (
                r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
                and(
                    eq("userType", s("Employee")),
                    vp(
                        "emails",
                        and(
                            eq("type", s("work")),
                            cmp(path("value"), CompareOp::Co, s("@example.com")),
                        ),
                    ),
                ),
            ),
            (
                r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
                or(
                    vp(
                        "emails",
                        and(
                            eq("type", s("work")),
                            cmp(path("value"), CompareOp::Co, s("@example.com")),
                        ),
                    ),
                    vp(
                        "ims",
                        and(
                            eq("type", s("xmpp")),
                            cmp(path("value"), CompareOp::Co, s("@foo.com")),
                        ),
                    ),
                ),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(ok(text), expected, "{text}");
        }
    }

    #[test]
    fn canonical_display() {
        assert_eq!(
            ok(r#"  userName  EQ "x" AND ((b Pr)) OR Not(c lt 1E2) "#).to_string(),
            r#"(userName eq "x" and b pr) or not (c lt 100.0)"#
        );
        assert_eq!(
            ok("a pr or (b pr or c pr)").to_string(),
            "a pr or (b pr or c pr)"
        );
        assert_eq!(
            ok("(a pr or b pr) or c pr").to_string(),
            "a pr or b pr or c pr"
        );
        assert_eq!(
            ok("a pr or b pr and c pr").to_string(),
            "a pr or (b pr and c pr)"
        );
    }

    // ---- errors ----

    #[test]
    fn error_messages_and_positions() {
        assert_err(
            "userName",
            "expected a comparison operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr) after \"userName\"",
            8,
        );
        assert_err(
            r#"userName is "x""#,
            "expected a comparison operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr) after \"userName\", found \"is\"",
            9,
        );
        assert_err(r#"userName = "x""#, "found \"=\"", 9);
        assert_err("userName eq", "expected a value", 11);
        assert_err("userName eq )", "expected a value", 12);
        assert_err(
            "userName eq bjensen",
            "strings must be in double quotes",
            12,
        );
        assert_err(r#"userName eq "bjensen"#, "unterminated string", 12);
        assert_err(
            r#"(userName eq "x""#,
            "unbalanced parenthesis: \"(\" is never closed",
            0,
        );
        assert_err(
            r#"(a pr and (b pr)"#,
            "unbalanced parenthesis: \"(\" is never closed",
            0,
        );
        assert_err(
            r#"userName eq "x")"#,
            "unbalanced parenthesis: unexpected \")\"",
            15,
        );
        assert_err(
            r#"userName eq "x" foo"#,
            "unexpected trailing input \"foo\"",
            16,
        );
        assert_err(r#"a pr b pr"#, "unexpected trailing input \"b pr\"", 5);
        assert_err(r#"a eq "x" "y""#, "unexpected trailing input", 9);
        assert_err(
            r#"(a eq "x" "y")"#,
            r#"expected "and", "or" or ")", found the string "y""#,
            10,
        );
        assert_err(r#"title pr "x""#, "\"pr\" takes no value", 9);
        assert_err("title pr 1", "\"pr\" takes no value", 9);
        assert_err("title pr null", "\"pr\" takes no value", 9);
        assert_err("", "empty filter", 0);
        assert_err(" \t\n ", "empty filter", 0);
        assert_err("9abc eq 1", "invalid attribute name \"9abc\"", 0);
        assert_err("a pr and 9abc pr", "invalid attribute name \"9abc\"", 9);
        assert_err("user@name pr", "invalid attribute name \"user@name\"", 0);
        assert_err("a.b.c pr", "only one level of sub-attribute", 3);
        assert_err("name. pr", "missing sub-attribute name", 5);
        assert_err("name.9 pr", "invalid sub-attribute name \"9\"", 5);
        assert_err(".name pr", "missing attribute name", 0);
        assert_err(
            "a eq 1 and",
            "expected an attribute path, \"(\" or \"not (\" after \"and\"",
            10,
        );
        assert_err("a eq 1 or )", "found \")\"", 10);
        assert_err("and", "expected a comparison operator", 3);
        assert_err("not a pr", "expected \"(\" after \"not\", found \"a\"", 4);
        assert_err("not", "expected \"(\" after \"not\"", 3);
        assert_err("()", "empty parentheses", 1);
        assert_err("(a pr) )", "unbalanced parenthesis: unexpected \")\"", 7);
        assert_err(r#""userName" eq "x""#, "attribute names are not quoted", 0);
        assert_err("[a pr]", "expected an attribute path", 0);
        assert_err("]", "expected an attribute path", 0);

        let e = err("userName");
        assert_eq!(
            e.to_string(),
            "expected a comparison operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr) after \"userName\" at position 8"
        );
        let boxed: Box<dyn std::error::Error> = Box::new(e);
        assert!(boxed.to_string().ends_with("at position 8"));
    }

    #[test]
    fn long_trailing_input_is_truncated_in_message() {
        let input = format!("a pr {}", "x".repeat(500));
        let e = err(&input);
        assert!(e.message.len() < 120, "{}", e.message);
        assert!(e.message.contains("..."));
        for input in [
            format!("(a eq \"x\" \"{}\")", "y".repeat(500)),
            format!("a eq {}", "z".repeat(500)),
            format!("{} is 1", "w".repeat(500)),
        ] {
            let e = err(&input);
            assert!(e.message.len() < 200, "{}", e.message);
        }
    }

    #[test]
    fn length_limit() {
        let padded = format!("a eq \"{}\"", "x".repeat(MAX_FILTER_LEN - 7));
        assert_eq!(padded.len(), MAX_FILTER_LEN);
        assert!(parse_filter(&padded).is_ok());
        let long = format!("a eq \"{}\"", "x".repeat(MAX_FILTER_LEN));
        assert_err(&long, "filter is too long", MAX_FILTER_LEN);
        let e = pp_err(&format!("a{}", "b".repeat(MAX_FILTER_LEN)));
        assert!(e.message.contains("path is too long"), "{}", e.message);
    }

    // ---- depth limits ----

    #[test]
    fn deep_parentheses_are_rejected_without_overflow() {
        for depth in [33, 100, 1000] {
            let input = format!("{}a pr{}", "(".repeat(depth), ")".repeat(depth));
            assert_err(&input, "filter nests deeper than 32 levels", MAX_DEPTH);
        }
        let ok_input = format!("{}a pr{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert_eq!(ok(&ok_input), pr("a"));
        // Unclosed deep nesting too.
        assert_err(
            &"(".repeat(4000),
            "filter nests deeper than 32 levels",
            MAX_DEPTH,
        );
    }

    #[test]
    fn deep_not_is_rejected_without_overflow() {
        for depth in [33, 1000] {
            let input = format!("{}a pr{}", "not (".repeat(depth), ")".repeat(depth));
            assert_err(&input, "filter nests deeper than 32 levels", MAX_DEPTH * 5);
        }
        let mut expected = pr("a");
        for _ in 0..MAX_DEPTH {
            expected = not(expected);
        }
        let ok_input = format!("{}a pr{}", "not (".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert_eq!(ok(&ok_input), expected);
        // 32 nots around an and: tree height 33.
        let too_high = format!(
            "{}a pr and b pr{}",
            "not (".repeat(MAX_DEPTH),
            ")".repeat(MAX_DEPTH)
        );
        // Reported at the "not" that makes the tree too high: the outermost one.
        assert_err(&too_high, "filter nests deeper than 32 levels", 0);
        // Far beyond the length limit: a length error, not a stack overflow.
        let huge = format!("{}a pr{}", "not (".repeat(100_000), ")".repeat(100_000));
        assert_err(&huge, "too long", MAX_FILTER_LEN);
    }

    #[test]
    fn long_and_or_chains_count_as_nesting() {
        let chain = |terms: usize, op: &str| {
            (0..terms)
                .map(|i| format!("a{i} pr"))
                .collect::<Vec<_>>()
                .join(&format!(" {op} "))
        };
        // MAX_DEPTH operators (MAX_DEPTH + 1 terms) are fine ...
        assert!(parse_filter(&chain(MAX_DEPTH + 1, "or")).is_ok());
        assert!(parse_filter(&chain(MAX_DEPTH + 1, "and")).is_ok());
        // ... one more is not.
        for op in ["or", "and"] {
            let e = err(&chain(MAX_DEPTH + 2, op));
            assert_eq!(e.message, "filter nests deeper than 32 levels");
        }
        assert!(parse_filter(&chain(1000, "or")).is_err());
        // Mixed precedence: "a and b or c and d ..." has height of the or-chain + 1.
        let mixed = (0..40)
            .map(|i| format!("a{i} pr and b{i} pr"))
            .collect::<Vec<_>>()
            .join(" or ");
        assert!(parse_filter(&mixed).is_err());
    }

    // ---- PATCH paths ----

    #[test]
    fn patch_paths_rfc7644() {
        assert_eq!(
            pp_ok("members"),
            PatchPath {
                attr: path("members"),
                value_filter: None,
                sub_attr: None
            }
        );
        assert_eq!(
            pp_ok("name.familyName"),
            PatchPath {
                attr: sub("name", "familyName"),
                value_filter: None,
                sub_attr: None
            }
        );
        assert_eq!(
            pp_ok(r#"addresses[type eq "work"]"#),
            PatchPath {
                attr: path("addresses"),
                value_filter: Some(eq("type", s("work"))),
                sub_attr: None
            }
        );
        let member = "2819c223-7f76-453a-919d-413861904646";
        assert_eq!(
            pp_ok(&format!("members[value eq \"{member}\"]")),
            PatchPath {
                attr: path("members"),
                value_filter: Some(eq("value", s(member))),
                sub_attr: None
            }
        );
        assert_eq!(
            pp_ok(&format!("members[value eq \"{member}\"].displayName")),
            PatchPath {
                attr: path("members"),
                value_filter: Some(eq("value", s(member))),
                sub_attr: Some("displayName".into())
            }
        );
        assert_eq!(
            pp_ok(r#"emails[type eq "work" and value ew "example.com"]"#).value_filter,
            Some(and(
                eq("type", s("work")),
                cmp(path("value"), CompareOp::Ew, s("example.com"))
            ))
        );
    }

    #[test]
    fn patch_paths_okta_entra() {
        assert_eq!(
            pp_ok(r#"members[value eq "id"]"#),
            PatchPath {
                attr: path("members"),
                value_filter: Some(eq("value", s("id"))),
                sub_attr: None
            }
        );
        assert_eq!(
            pp_ok(r#"emails[type eq "work"].value"#),
            PatchPath {
                attr: path("emails"),
                value_filter: Some(eq("type", s("work"))),
                sub_attr: Some("value".into())
            }
        );
        assert_eq!(
            pp_ok(r#"addresses[type eq "work"].streetAddress"#),
            PatchPath {
                attr: path("addresses"),
                value_filter: Some(eq("type", s("work"))),
                sub_attr: Some("streetAddress".into())
            }
        );
        assert_eq!(
            pp_ok(r#"phoneNumbers[type eq "mobile"].value"#).sub_attr,
            Some("value".into())
        );
        assert_eq!(
            pp_ok(&format!("{ENTERPRISE}:manager")),
            PatchPath {
                attr: urn(ENTERPRISE, "manager", None),
                value_filter: None,
                sub_attr: None
            }
        );
        assert_eq!(
            pp_ok(&format!("{ENTERPRISE}:manager.value")),
            PatchPath {
                attr: urn(ENTERPRISE, "manager", Some("value")),
                value_filter: None,
                sub_attr: None
            }
        );
        assert_eq!(
            pp_ok(&format!("{CORE_USER}:name.givenName")).attr,
            urn(CORE_USER, "name", Some("givenName"))
        );
        assert_eq!(pp_ok("  active ").attr, path("active"));
        assert_eq!(
            pp_ok(r#"roles[primary eq TRUE]"#).value_filter,
            Some(eq("primary", CompValue::Bool(true)))
        );
        assert_eq!(
            pp_ok(r#"emails[type eq "work"].value"#).to_string(),
            r#"emails[type eq "work"].value"#
        );
        assert_eq!(
            pp_ok(&format!("{ENTERPRISE}:manager.value")).to_string(),
            format!("{ENTERPRISE}:manager.value")
        );
    }

    #[test]
    fn patch_path_errors() {
        let cases: [(&str, &str, usize); 14] = [
            ("", "empty path", 0),
            ("   ", "empty path", 0),
            ("9x", "invalid attribute name \"9x\"", 0),
            (
                r#"name.givenName eq "x""#,
                "unexpected trailing input \"eq \\\"x\\\"\"",
                15,
            ),
            (
                r#"emails[type eq "work"].value.x"#,
                "only one level of sub-attribute",
                28,
            ),
            (
                r#"emails[type eq "work"]."#,
                "missing sub-attribute name",
                23,
            ),
            (
                r#"emails[type eq "work"].9x"#,
                "invalid sub-attribute name \"9x\"",
                23,
            ),
            (
                r#"emails[type eq "work"] .value"#,
                "unexpected trailing input \".value\"",
                23,
            ),
            (
                r#"emails[type eq "work"]x"#,
                "unexpected trailing input \"x\"",
                22,
            ),
            (r#"emails[type eq "work""#, "unbalanced bracket", 6),
            (r#"emails[]"#, "empty value filter", 7),
            (
                r#"members[value eq "a" and x[y pr]]"#,
                "cannot be nested",
                26,
            ),
            (
                r#"emails.type[value pr]"#,
                "must follow a multi-valued attribute",
                11,
            ),
            (r#""emails""#, "expected an attribute path", 0),
        ];
        for (input, message, position) in cases {
            let e = pp_err(input);
            assert!(
                e.message.contains(message),
                "{input:?}: {:?} should contain {message:?}",
                e.message
            );
            assert_eq!(e.position, position, "{input:?}: {}", e.message);
        }
        let deep = format!("x[{}a pr{}]", "(".repeat(100), ")".repeat(100));
        assert!(pp_err(&deep).message.contains("nests deeper"));
    }
}
