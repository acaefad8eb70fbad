//! Bearer tokens: `rc_<id>_<secret>`. The id finds the row; the secret is compared by its
//! SHA-256 hash in constant time. Secrets are 256 random bits, so a fast hash is enough
//! (there is nothing to brute-force that a slow hash would protect).

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::{Store, StoreError, TokenRow};

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

/// The caller behind a valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub token_name: String,
    pub scope: Scope,
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

/// Check a presented bearer token against its stored row (found by id) and the scope needed.
pub fn verify(
    presented: Option<&str>,
    row: Option<&TokenRow>,
    need: Scope,
) -> Result<Principal, AuthError> {
    let presented = presented.ok_or(AuthError::Missing)?;
    let (_, secret) = token_id(presented).ok_or(AuthError::Invalid)?;
    let row = row.ok_or(AuthError::Invalid)?;
    let ok: bool = hash(secret)
        .as_bytes()
        .ct_eq(row.secret_hash.as_bytes())
        .into();
    if !ok {
        return Err(AuthError::Invalid);
    }
    let have = Scope::from_str(&row.scope).map_err(|_| AuthError::Invalid)?;
    if have != need {
        return Err(AuthError::WrongScope { have, need });
    }
    Ok(Principal {
        token_name: row.name.clone(),
        scope: have,
    })
}

/// Check a presented bearer token by reading its row from the database.
pub async fn authenticate(
    store: &Store,
    presented: Option<&str>,
    need: Scope,
) -> Result<Principal, AuthError> {
    let row = match presented.and_then(token_id) {
        Some((id, _)) => store.find_token(id).await?,
        None => None,
    };
    verify(presented, row.as_ref(), need)
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
    }
}
