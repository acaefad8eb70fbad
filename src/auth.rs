//! Bearer tokens: `rc_<id>_<secret>`. The id finds the row; the secret is compared by its
//! SHA-256 hash in constant time. Secrets are 256 random bits, so a fast hash is enough
//! (there is nothing to brute-force that a slow hash would protect).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::{StoreError, TokenRow};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `/scim/v2`: the identity provider.
    Scim,
    /// The role lookup and evaluation API: gateways.
    Lookup,
    /// The admin API.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Scim => "scim",
            Scope::Lookup => "lookup",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "scim" => Ok(Scope::Scim),
            "lookup" => Ok(Scope::Lookup),
            "admin" => Ok(Scope::Admin),
            other => Err(format!(
                "unknown scope \"{other}\" (expected scim, lookup or admin)"
            )),
        }
    }
}

/// The caller behind a valid token (cheap to clone: it is attached to every authenticated
/// request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub token_name: Arc<str>,
    pub scope: Scope,
}

/// A stored token as the request path checks it: the secret's SHA-256 as bytes and the
/// principal it stands for, both prepared once when the token is read, so that checking a
/// presented token allocates nothing.
#[derive(Debug, Clone)]
pub struct Credential {
    /// `None` when the stored hash or scope is malformed: such a token never matches.
    digest: Option<[u8; 32]>,
    principal: Principal,
    scope_ok: bool,
}

impl From<&TokenRow> for Credential {
    fn from(row: &TokenRow) -> Self {
        let scope = Scope::from_str(&row.scope);
        Credential {
            digest: from_hex32(&row.secret_hash),
            scope_ok: scope.is_ok(),
            principal: Principal {
                token_name: Arc::from(row.name.as_str()),
                scope: scope.unwrap_or(Scope::Lookup),
            },
        }
    }
}

/// 64 hex digits (either case) as 32 bytes.
fn from_hex32(hex: &str) -> Option<[u8; 32]> {
    fn digit(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("invalid bearer token")]
    Invalid,
    #[error("this token's scope is \"{have}\"; this endpoint needs \"{need}\"")]
    WrongScope { have: Scope, need: Scope },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Lower-case hex, without a `format!` per byte (this runs on every authenticated request).
pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    s
}

fn hash(secret: &str) -> String {
    to_hex(&Sha256::digest(secret.as_bytes()))
}

fn random_hex(bytes: usize) -> Result<String, getrandom::Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf)?;
    Ok(to_hex(&buf))
}

/// A token's name: 1 to 100 characters, not blank, no control characters and no leading or
/// trailing space (names are shown in `token list` columns and revoked by name).
pub fn check_token_name(name: &str) -> Result<(), String> {
    let ok = !name.trim().is_empty()
        && name.trim() == name
        && name.chars().count() <= 100
        && !name.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "a token name is 1 to 100 characters, not blank, without control characters or \
             leading/trailing spaces, not {name:?}"
        ))
    }
}

/// A new token: the row to store and the secret to show once.
pub fn generate(name: &str, scope: Scope) -> anyhow::Result<(TokenRow, String)> {
    let id = random_hex(8)?;
    let secret = random_hex(32)?;
    let row = TokenRow {
        id: id.clone(),
        name: name.to_string(),
        scope: scope.as_str().to_string(),
        secret_hash: hash(&secret),
        created: crate::store::now(),
    };
    Ok((row, format!("rc_{id}_{secret}")))
}

/// Split `rc_<id>_<secret>` into its id and secret.
pub fn token_id(presented: &str) -> Option<(&str, &str)> {
    let rest = presented.strip_prefix("rc_")?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some((id, secret))
}

/// Check a presented bearer token against its stored credential (found by id) and the scope
/// needed.
pub fn verify(
    presented: Option<&str>,
    stored: Option<&Credential>,
    need: Scope,
) -> Result<Principal, AuthError> {
    let presented = presented.ok_or(AuthError::Missing)?;
    let (_, secret) = token_id(presented).ok_or(AuthError::Invalid)?;
    let stored = stored.ok_or(AuthError::Invalid)?;
    let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
    // a malformed stored hash is compared against itself negated: never equal, same time
    let expected = stored.digest.unwrap_or_else(|| digest.map(|b| !b));
    let ok: bool = digest.ct_eq(&expected).into();
    if !ok || !stored.scope_ok {
        return Err(AuthError::Invalid);
    }
    let have = stored.principal.scope;
    if have != need {
        return Err(AuthError::WrongScope { have, need });
    }
    Ok(stored.principal.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_only_hashed() {
        let (row, secret) = generate("okta", Scope::Scim).unwrap();
        let (_, other) = generate("okta", Scope::Scim).unwrap();
        assert_ne!(secret, other);
        assert!(secret.starts_with(&format!("rc_{}_", row.id)));
        assert!(!row.secret_hash.contains(&secret[20..]));
        assert_eq!(row.secret_hash, hash(secret.rsplit('_').next().unwrap()));
        assert_eq!("admin".parse::<Scope>(), Ok(Scope::Admin));
        assert_eq!(to_hex(&[0x00, 0x9f, 0xff]), "009fff");
        assert!("root".parse::<Scope>().is_err());
        for good in ["okta", "entra prod", "gateway-1", "Ünïcode ✓"] {
            assert!(check_token_name(good).is_ok(), "{good}");
        }
        let long = "x".repeat(101);
        for bad in [
            "",
            "   ",
            " lead",
            "trail ",
            "new\nline",
            "tab\tx",
            "esc\u{1b}[31m",
            long.as_str(),
        ] {
            assert!(check_token_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn verify_checks_secret_scope_and_stored_form() {
        let (row, secret) = generate("gw", Scope::Lookup).unwrap();
        let cred = Credential::from(&row);
        let p = verify(Some(&secret), Some(&cred), Scope::Lookup).unwrap();
        assert_eq!((&*p.token_name, p.scope), ("gw", Scope::Lookup));
        assert!(matches!(
            verify(Some(&secret), Some(&cred), Scope::Admin),
            Err(AuthError::WrongScope {
                have: Scope::Lookup,
                need: Scope::Admin
            })
        ));
        let mut wrong = secret.clone();
        wrong.pop();
        wrong.push(if secret.ends_with('0') { '1' } else { '0' });
        assert!(matches!(
            verify(Some(&wrong), Some(&cred), Scope::Lookup),
            Err(AuthError::Invalid)
        ));
        assert!(matches!(
            verify(None, Some(&cred), Scope::Lookup),
            Err(AuthError::Missing)
        ));
        assert!(matches!(
            verify(Some(&secret), None, Scope::Lookup),
            Err(AuthError::Invalid)
        ));
        // an upper-case stored hash still matches; a malformed one or an unknown scope never does
        let upper = TokenRow {
            secret_hash: row.secret_hash.to_uppercase(),
            ..row.clone()
        };
        assert!(verify(
            Some(&secret),
            Some(&Credential::from(&upper)),
            Scope::Lookup
        )
        .is_ok());
        for bad in [
            TokenRow {
                secret_hash: row.secret_hash[1..].to_string(),
                ..row.clone()
            },
            TokenRow {
                secret_hash: format!("{}zz", &row.secret_hash[2..]),
                ..row.clone()
            },
            TokenRow {
                scope: "root".into(),
                ..row.clone()
            },
        ] {
            let c = Credential::from(&bad);
            assert!(matches!(
                verify(Some(&secret), Some(&c), Scope::Lookup),
                Err(AuthError::Invalid)
            ));
        }
    }
}
