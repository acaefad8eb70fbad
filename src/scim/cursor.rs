//! Cursor tokens for cursor paging (RFC 9865). Stateless: a token carries the position of
//! the last resource of a page (its sort key and insertion sequence) and a fingerprint of
//! the query's resource type, filter and sort, so a token can only continue the query that
//! produced it. Tokens are base64url (RFC 3986 unreserved characters only) of a small JSON
//! object; clients must treat them as opaque.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use super::error::{ProtocolError, ScimType};

/// Tokens longer than this are not ours.
const MAX_TOKEN_LEN: usize = 4096;

/// Where the next page starts: after the resource with this sort key and sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The sort key as the store compares it (`None`: the resource had no value).
    pub key: Option<String>,
    pub seq: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub pos: Position,
    pub fingerprint: u64,
}

fn invalid(detail: &str) -> ProtocolError {
    ProtocolError::new(
        ScimType::InvalidCursor,
        format!(
            "invalid cursor: {detail}; send an empty cursor for the first page, then the \
             nextCursor of the previous page with the same filter and sort"
        ),
    )
}

impl Cursor {
    pub fn encode(&self) -> String {
        let v = json!({"k": self.pos.key, "s": self.pos.seq, "f": format!("{:016x}", self.fingerprint)});
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    pub fn decode(token: &str) -> Result<Cursor, ProtocolError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(invalid("too long"));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token.trim())
            .map_err(|_| invalid("not a cursor this server issued"))?;
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|_| invalid("not a cursor this server issued"))?;
        let seq = v.get("s").and_then(Value::as_i64);
        let key = match v.get("k") {
            Some(Value::Null) => Some(None),
            // no stored value holds U+0000 (refused on input), so no cursor of ours does; the
            // key would otherwise reach the database (PostgreSQL refuses it: 400 invalidValue
            // there, where SQLite answered 200)
            Some(Value::String(s)) if !s.contains('\0') => Some(Some(s.clone())),
            _ => None,
        };
        let fingerprint = v
            .get("f")
            .and_then(Value::as_str)
            .and_then(|f| u64::from_str_radix(f, 16).ok());
        match (key, seq, fingerprint) {
            (Some(key), Some(seq), Some(fingerprint)) => Ok(Cursor {
                pos: Position { key, seq },
                fingerprint,
            }),
            _ => Err(invalid("not a cursor this server issued")),
        }
    }

    /// The cursor, if it belongs to the query with this fingerprint.
    pub fn check(self, fingerprint: u64) -> Result<Position, ProtocolError> {
        if self.fingerprint == fingerprint {
            Ok(self.pos)
        } else {
            Err(invalid(
                "it was issued for a different resource type, filter or sort",
            ))
        }
    }
}

/// FNV-1a over the parts, each followed by a separator: stable across processes and
/// versions, so any replica can continue any other's cursor.
pub fn fingerprint(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_use_unreserved_characters() {
        for key in [
            None,
            Some("alice@example.com".to_string()),
            Some("é \"x\"".into()),
        ] {
            let c = Cursor {
                pos: Position { key, seq: 42 },
                fingerprint: fingerprint(&["User", "userName pr", ""]),
            };
            let t = c.encode();
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{t}"
            );
            assert_eq!(Cursor::decode(&t).unwrap(), c);
        }
    }

    #[test]
    fn foreign_or_mismatched_cursors_are_invalid_cursors() {
        for t in [
            "x",
            "!!!",
            &URL_SAFE_NO_PAD.encode("[1]"),
            &URL_SAFE_NO_PAD.encode(r#"{"k":1,"s":1,"f":"0"}"#),
            &URL_SAFE_NO_PAD.encode(r#"{"k":"a\u0000b","s":1,"f":"0"}"#),
            &"a".repeat(5000),
        ] {
            assert_eq!(
                Cursor::decode(t).unwrap_err().scim_type,
                ScimType::InvalidCursor,
                "{t}"
            );
        }
        let c = Cursor {
            pos: Position { key: None, seq: 1 },
            fingerprint: fingerprint(&["User", "", ""]),
        };
        let back = Cursor::decode(&c.encode()).unwrap();
        assert_eq!(
            back.clone()
                .check(fingerprint(&["Group", "", ""]))
                .unwrap_err()
                .scim_type,
            ScimType::InvalidCursor
        );
        assert_eq!(back.check(fingerprint(&["User", "", ""])).unwrap().seq, 1);
        assert_ne!(fingerprint(&["ab", "c"]), fingerprint(&["a", "bc"]));
    }
}
