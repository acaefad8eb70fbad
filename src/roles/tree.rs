//! A generic document tree whose nodes remember where they were in the TOML text.
//!
//! The mapping document is first read into this tree (from TOML or from JSON), then converted by
//! hand (see `build.rs`), so that every unknown key and every wrong type is reported, not just the
//! first one serde would stop at, and every problem gets a line.
//!
//! Spans come from the `toml` crate's `Spanned` protocol. Rather than wrapping nodes in
//! `toml::Spanned` (which fails outright on nodes that have no span, such as the implicit `roles`
//! table created by `[roles.admin]`), the node type asks for a span the same way `toml::Spanned`
//! does and falls back to "no span" when the deserializer doesn't offer one. The protocol's names
//! are learnt from `toml::Spanned` itself at run time, not hard-coded.

use std::fmt;
use std::ops::Range;
use std::sync::OnceLock;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// A node and, when parsed from TOML, its byte range.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Located {
    pub span: Option<Range<usize>>,
    pub node: Node,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Str(String),
    Int(i128),
    Float(f64),
    Bool(bool),
    Datetime,
    Null,
    Array(Vec<Located>),
    /// Keys are `Node::Str` nodes carrying the key's own span.
    Table(Vec<(Located, Located)>),
}

impl Node {
    /// "a string", "an integer", ... for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Node::Str(_) => "a string",
            Node::Int(_) => "an integer",
            Node::Float(_) => "a float",
            Node::Bool(_) => "a boolean",
            Node::Datetime => "a date-time",
            Node::Null => "null",
            Node::Array(_) => "an array",
            Node::Table(_) => "a table",
        }
    }
}

/// Read TOML text into a tree. The error is (byte span, message).
pub(crate) fn from_toml(text: &str) -> Result<Located, (Option<Range<usize>>, String)> {
    toml::from_str::<Located>(text).map_err(|e| (e.span(), e.message().to_string()))
}

/// Convert a JSON value into a tree (no spans).
pub(crate) fn from_json(value: serde_json::Value) -> Located {
    use serde_json::Value;
    let node = match value {
        Value::Null => Node::Null,
        Value::Bool(b) => Node::Bool(b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Node::Int(i128::from(i)),
            (None, Some(u)) => Node::Int(i128::from(u)),
            _ => Node::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Node::Str(s),
        Value::Array(items) => Node::Array(items.into_iter().map(from_json).collect()),
        Value::Object(map) => Node::Table(
            map.into_iter()
                .map(|(k, v)| (plain(Node::Str(k)), from_json(v)))
                .collect(),
        ),
    };
    plain(node)
}

fn plain(node: Node) -> Located {
    Located { span: None, node }
}

/// Byte offset -> 1-based line number.
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(at, _)| at + 1));
        LineIndex { starts }
    }

    pub fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&start| start <= offset).max(1)
    }
}

/// The names of the `Spanned` protocol (struct name and its three fields: start, end, value) and
/// of the date-time protocol's single field.
struct Protocol {
    spanned_name: &'static str,
    spanned_fields: &'static [&'static str],
    datetime_field: &'static str,
}

fn protocol() -> &'static Protocol {
    static PROTOCOL: OnceLock<Protocol> = OnceLock::new();
    PROTOCOL.get_or_init(|| {
        let spanned = match toml::Spanned::<()>::deserialize(Recorder) {
            Err(Recorded::Struct(name, fields)) if fields.len() == 3 => Some((name, fields)),
            _ => None,
        };
        let datetime = match toml::value::Datetime::deserialize(Recorder) {
            Err(Recorded::Struct(_, [field])) => field,
            _ => "",
        };
        let (spanned_name, spanned_fields) = spanned.unwrap_or(("", &[]));
        Protocol {
            spanned_name,
            spanned_fields,
            datetime_field: datetime,
        }
    })
}

/// A deserializer that only records what `deserialize_struct` was asked for.
struct Recorder;

#[derive(Debug)]
enum Recorded {
    Struct(&'static str, &'static [&'static str]),
    Other,
}

impl fmt::Display for Recorded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("recorded")
    }
}

impl std::error::Error for Recorded {}

impl de::Error for Recorded {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        Recorded::Other
    }
}

impl<'de> Deserializer<'de> for Recorder {
    type Error = Recorded;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Recorded> {
        Err(Recorded::Other)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Recorded> {
        Err(Recorded::Struct(name, fields))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

impl<'de> Deserialize<'de> for Located {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let p = protocol();
        if p.spanned_fields.is_empty() {
            deserializer.deserialize_any(LocatedVisitor)
        } else {
            deserializer.deserialize_struct(p.spanned_name, p.spanned_fields, LocatedVisitor)
        }
    }
}

/// Deserializes a node with no span of its own (used for the value inside a span wrapper).
struct Unwrapped;

impl<'de> DeserializeSeed<'de> for Unwrapped {
    type Value = Located;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Located, D::Error> {
        deserializer.deserialize_any(LocatedVisitor)
    }
}

struct LocatedVisitor;

impl<'de> Visitor<'de> for LocatedVisitor {
    type Value = Located;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any TOML value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Located, E> {
        Ok(plain(Node::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Located, E> {
        Ok(plain(Node::Int(i128::from(v))))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Located, E> {
        Ok(plain(Node::Int(i128::from(v))))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Located, E> {
        Ok(plain(Node::Float(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Located, E> {
        Ok(plain(Node::Str(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Located, E> {
        Ok(plain(Node::Str(v)))
    }
    fn visit_unit<E>(self) -> Result<Located, E> {
        Ok(plain(Node::Null))
    }
    fn visit_none<E>(self) -> Result<Located, E> {
        Ok(plain(Node::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Located, D::Error> {
        Located::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Located, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Located>()? {
            items.push(item);
        }
        Ok(plain(Node::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Located, A::Error> {
        let p = protocol();
        let Some(first) = map.next_key::<Located>()? else {
            return Ok(plain(Node::Table(Vec::new())));
        };
        let first_name = match &first.node {
            Node::Str(s) => s.as_str(),
            _ => "",
        };
        if !p.spanned_fields.is_empty() && first_name == p.spanned_fields[0] {
            return visit_spanned(map);
        }
        if !p.datetime_field.is_empty() && first_name == p.datetime_field {
            let _: de::IgnoredAny = map.next_value()?;
            while map
                .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                .is_some()
            {}
            return Ok(plain(Node::Datetime));
        }
        let mut entries = vec![(first, map.next_value::<Located>()?)];
        while let Some(key) = map.next_key::<Located>()? {
            let value = map.next_value::<Located>()?;
            entries.push((key, value));
        }
        Ok(plain(Node::Table(entries)))
    }
}

/// The rest of a span wrapper whose start key has been read: start, end key, end, value key, value.
fn visit_spanned<'de, A: MapAccess<'de>>(mut map: A) -> Result<Located, A::Error> {
    let start: usize = map.next_value()?;
    let mut end = start;
    let mut inner = None;
    while let Some(key) = map.next_key::<Located>()? {
        let is_end = matches!(&key.node, Node::Str(s) if protocol().spanned_fields.get(1) == Some(&s.as_str()));
        if is_end {
            end = map.next_value()?;
        } else {
            inner = Some(map.next_value_seed(Unwrapped)?);
        }
    }
    let mut located = inner.ok_or_else(|| de::Error::custom("span without a value"))?;
    located.span = Some(start..end);
    Ok(located)
}
