//! Lexer, literals (JSON strings and numbers) and attribute paths.
//!
//! The input is split into parentheses, brackets, JSON string literals and "words" (maximal runs
//! of anything else that is not whitespace); words are interpreted by the parser according to
//! their position (attribute path, operator, keyword or number).

use super::{AttrPath, FilterError};

/// Quotes user text for an error message, truncated to a readable length.
pub(super) fn quote(s: &str) -> String {
    const MAX_CHARS: usize = 40;
    let mut t: String = s.chars().take(MAX_CHARS).collect();
    if t.len() < s.len() {
        t.push_str("...");
    }
    format!("{t:?}")
}

// ---------------------------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Kind<'a> {
    LParen,
    RParen,
    LBracket,
    RBracket,
    /// A decoded JSON string literal.
    Str(String),
    /// A maximal run of characters that are not whitespace, parentheses, brackets or quotes:
    /// attribute paths, operators, keywords and numbers.
    Word(&'a str),
}

#[derive(Debug, Clone)]
pub(super) struct Tok<'a> {
    pub(super) kind: Kind<'a>,
    pub(super) start: usize,
    pub(super) end: usize,
    /// Whether whitespace separates this token from the previous one.
    pub(super) ws_before: bool,
}

fn is_delim(b: u8) -> bool {
    b.is_ascii_whitespace() || matches!(b, b'(' | b')' | b'[' | b']' | b'"')
}

pub(super) fn lex(input: &str) -> Result<Vec<Tok<'_>>, FilterError> {
    let bytes = input.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    let mut ws = false;
    while let Some(&b) = bytes.get(i) {
        if b.is_ascii_whitespace() {
            ws = true;
            i += 1;
            continue;
        }
        let start = i;
        let kind = match b {
            b'(' => {
                i += 1;
                Kind::LParen
            }
            b')' => {
                i += 1;
                Kind::RParen
            }
            b'[' => {
                i += 1;
                Kind::LBracket
            }
            b']' => {
                i += 1;
                Kind::RBracket
            }
            b'"' => {
                let close = scan_string(bytes, start)?;
                i = close + 1;
                Kind::Str(decode_string(slice(input, start, i)?, start)?)
            }
            _ => {
                while bytes.get(i).is_some_and(|&c| !is_delim(c)) {
                    i += 1;
                }
                Kind::Word(slice(input, start, i)?)
            }
        };
        toks.push(Tok {
            kind,
            start,
            end: i,
            ws_before: ws,
        });
        ws = false;
    }
    Ok(toks)
}

/// `input[start..end]` without the possibility of a panic. Token boundaries are always next to
/// ASCII bytes and therefore on character boundaries, so the error is unreachable in practice.
pub(super) fn slice(input: &str, start: usize, end: usize) -> Result<&str, FilterError> {
    input
        .get(start..end)
        .ok_or_else(|| FilterError::new("invalid UTF-8 boundary", start))
}

/// Returns the index of the closing quote of the string literal opening at `start`.
fn scan_string(bytes: &[u8], start: usize) -> Result<usize, FilterError> {
    let mut i = start + 1;
    loop {
        match bytes.get(i) {
            None => return Err(FilterError::new("unterminated string", start)),
            Some(b'\\') => i += 2,
            Some(b'"') => return Ok(i),
            Some(_) => i += 1,
        }
    }
}

/// Decodes a quoted JSON string literal (escapes, `\uXXXX`, surrogate pairs) with `serde_json`.
fn decode_string(raw: &str, start: usize) -> Result<String, FilterError> {
    serde_json::from_str::<String>(raw).map_err(|e| {
        let mut msg = e.to_string();
        if let Some(idx) = msg.rfind(" at line ") {
            msg.truncate(idx);
        }
        let offset = if e.line() == 1 {
            e.column()
                .saturating_sub(1)
                .min(raw.len().saturating_sub(1))
        } else {
            0
        };
        FilterError::new(
            format!("invalid string literal: {msg}"),
            start.saturating_add(offset),
        )
    })
}

// ---------------------------------------------------------------------------------------------
// Attribute paths, names, numbers
// ---------------------------------------------------------------------------------------------

/// ATTRNAME = ALPHA *( "-" / "_" / DIGIT / ALPHA ), or `$ref`.
fn is_attr_name(s: &str) -> bool {
    if s.eq_ignore_ascii_case("$ref") {
        return true;
    }
    let mut bytes = s.bytes();
    match bytes.next() {
        Some(c) if c.is_ascii_alphabetic() => {}
        _ => return false,
    }
    bytes.all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

pub(super) fn check_name(name: &str, at: usize, what: &str) -> Result<(), FilterError> {
    if name.is_empty() {
        return Err(FilterError::new(format!("missing {what} name"), at));
    }
    if !is_attr_name(name) {
        return Err(FilterError::new(
            format!("invalid {what} name {}", quote(name)),
            at,
        ));
    }
    Ok(())
}

/// Parses `[URN ":"] ATTRNAME ["." ATTRNAME]` from one word starting at byte offset `pos`.
pub(super) fn parse_attr_path(word: &str, pos: usize) -> Result<AttrPath, FilterError> {
    let has_urn = word
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("urn:"));
    let (schema, rest, rest_pos) = match word.rfind(':') {
        Some(idx) if has_urn => {
            let schema = slice(word, 0, idx)?;
            let rest = word.get(idx + 1..).unwrap_or("");
            if schema.len() <= "urn:".len() {
                return Err(FilterError::new(
                    format!(
                        "attribute path {} starts with \"urn:\" but has no schema URN before the attribute name",
                        quote(word)
                    ),
                    pos,
                ));
            }
            if let Some(bad) = schema.find(|c: char| !c.is_ascii_graphic()) {
                return Err(FilterError::new(
                    format!("invalid character in schema URN {}", quote(schema)),
                    pos.saturating_add(bad),
                ));
            }
            if rest.is_empty() {
                return Err(FilterError::new(
                    format!("missing attribute name after schema URN {}", quote(schema)),
                    pos.saturating_add(word.len()),
                ));
            }
            (Some(schema.to_string()), rest, pos.saturating_add(idx + 1))
        }
        _ => (None, word, pos),
    };
    let (attr, sub_attr) = match rest.split_once('.') {
        Some((attr, sub)) => (attr, Some(sub)),
        None => (rest, None),
    };
    if attr.is_empty() {
        return Err(FilterError::new(
            format!("missing attribute name in {}", quote(word)),
            rest_pos,
        ));
    }
    if !is_attr_name(attr) {
        return Err(FilterError::new(
            format!("invalid attribute name {}", quote(attr)),
            rest_pos,
        ));
    }
    if let Some(sub) = sub_attr {
        let sub_pos = rest_pos.saturating_add(attr.len() + 1);
        if let Some(dot) = sub.find('.') {
            return Err(FilterError::new(
                format!(
                    "invalid attribute path {}: only one level of sub-attribute is allowed",
                    quote(word)
                ),
                sub_pos.saturating_add(dot),
            ));
        }
        check_name(sub, sub_pos, "sub-attribute")?;
    }
    Ok(AttrPath {
        schema,
        attr: attr.to_string(),
        sub_attr: sub_attr.map(str::to_string),
    })
}

pub(super) fn sub_attr_before_bracket(path: &AttrPath, sub: &str, at: usize) -> FilterError {
    FilterError::new(
        format!(
            "a value filter \"[...]\" must follow a multi-valued attribute, not the sub-attribute {} of {}",
            quote(sub),
            quote(&path.to_string())
        ),
        at,
    )
}

pub(super) fn is_number_like(word: &str) -> bool {
    word.starts_with(|c: char| c == '-' || c.is_ascii_digit())
}

/// JSON number syntax: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn is_json_number(word: &str) -> bool {
    let b = word.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let from = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > from
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(c) if c.is_ascii_digit() => {
            digits(&mut i);
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == b.len()
}

/// Parses a JSON number like `serde_json` does (integers stay integers when they fit in i64/u64),
/// but with correctly rounded float parsing so printed floats always parse back identically.
pub(super) fn parse_number(word: &str, pos: usize) -> Result<serde_json::Number, FilterError> {
    if !is_json_number(word) {
        return Err(FilterError::new(
            format!(
                "invalid number {}: expected JSON number syntax such as 42, -7, 1.5 or 2e10",
                quote(word)
            ),
            pos,
        ));
    }
    let is_float = word.contains(['.', 'e', 'E']);
    if !is_float {
        if word.starts_with('-') {
            if let Ok(i) = word.parse::<i64>() {
                return Ok(i.into());
            }
        } else if let Ok(u) = word.parse::<u64>() {
            return Ok(u.into());
        }
    }
    word.parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .ok_or_else(|| FilterError::new(format!("number out of range: {}", quote(word)), pos))
}
