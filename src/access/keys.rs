//! Ed25519 keys for signed role tokens: generated on first start, rotated by
//! `rolecall keys rotate`; a retired key stays in the JWKS for 24 hours (role tokens live at
//! most that long) and is removed by the next rotation after that. Private keys live only in
//! the database.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{json, Value};

use super::AccessError;
use crate::store::{Actor, SigningKeyRow, Store};

/// The active signing key and every public key a verifier may still need.
pub struct KeySet {
    active: Option<(String, EncodingKey)>,
    jwks: Vec<Value>,
}

fn key_error(e: impl std::fmt::Display) -> AccessError {
    AccessError::Key(e.to_string())
}

impl KeySet {
    pub async fn load(store: &Store) -> Result<Self, AccessError> {
        let rows = store.signing_keys().await?;
        let mut active = None;
        let mut jwks = Vec::new();
        for row in &rows {
            let public = STANDARD.decode(&row.public_key).map_err(key_error)?;
            jwks.push(json!({
                "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
                "kid": row.kid, "x": URL_SAFE_NO_PAD.encode(public),
            }));
            if row.retired.is_none() {
                let der = STANDARD.decode(&row.private_pkcs8).map_err(key_error)?;
                active = Some((row.kid.clone(), EncodingKey::from_ed_der(&der)));
            }
        }
        Ok(Self { active, jwks })
    }

    pub fn jwks(&self) -> Value {
        json!({ "keys": self.jwks })
    }

    /// Sign claims with the active key (kid in the header).
    pub fn sign(&self, claims: &Value) -> Result<String, AccessError> {
        let (kid, key) = self
            .active
            .as_ref()
            .ok_or_else(|| key_error("no signing key; run `rolecall keys rotate`"))?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.clone());
        jsonwebtoken::encode(&header, claims, key).map_err(key_error)
    }

    pub fn has_active(&self) -> bool {
        self.active.is_some()
    }
}

/// Generate and store a new key; the previous one is retired (still published).
pub async fn rotate(store: &Store, actor: &Actor) -> Result<String, AccessError> {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(key_error)?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(key_error)?;
    let mut kid_bytes = [0u8; 8];
    getrandom::getrandom(&mut kid_bytes).map_err(key_error)?;
    let kid: String = kid_bytes.iter().map(|b| format!("{b:02x}")).collect();
    let row = SigningKeyRow {
        kid: kid.clone(),
        private_pkcs8: STANDARD.encode(pkcs8.as_ref()),
        public_key: STANDARD.encode(pair.public_key().as_ref()),
        created: crate::store::now(),
        retired: None,
    };
    store.add_signing_key(&row, actor).await?;
    // retired keys stay published for a day (role tokens live at most that long), then go
    let cutoff = (chrono::Utc::now() - chrono::Duration::hours(24))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    store.prune_signing_keys(&cutoff).await?;
    Ok(kid)
}
