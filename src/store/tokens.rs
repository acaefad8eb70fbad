//! API tokens: only a SHA-256 hash of each secret is stored.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::audit::{record, Actor};
use super::{Result, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub scope: String,
    pub secret_hash: String,
    pub created: String,
}

fn from_row(row: &AnyRow) -> Result<TokenRow> {
    Ok(TokenRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        scope: row.try_get("scope")?,
        secret_hash: row.try_get("secret_hash")?,
        created: row.try_get("created")?,
    })
}

impl Store {
    pub async fn create_token(&self, t: &TokenRow, actor: &Actor) -> Result<()> {
        let mut tx = self.write.begin().await?;
        sqlx::query(
            "INSERT INTO api_tokens (id, name, scope, secret_hash, created) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(t.id.clone())
        .bind(t.name.clone())
        .bind(t.scope.clone())
        .bind(t.secret_hash.clone())
        .bind(t.created.clone())
        .execute(&mut *tx)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => {
                StoreError::Conflict(format!("a token named \"{}\" already exists", t.name))
            }
            other => other,
        })?;
        let summary = serde_json::json!({"name": t.name, "scope": t.scope});
        record(&mut tx, actor, "token.create", "token", &t.id, summary).await?;
        tx.commit().await?;
        self.token_committed();
        Ok(())
    }

    pub async fn list_tokens(&self) -> Result<Vec<TokenRow>> {
        let rows = sqlx::query(
            "SELECT id, name, scope, secret_hash, created FROM api_tokens ORDER BY name",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn revoke_token(&self, name: &str, actor: &Actor) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let row = sqlx::query("DELETE FROM api_tokens WHERE name = $1 RETURNING id, scope")
            .bind(name.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let id: String = row.try_get("id")?;
        let scope: String = row.try_get("scope")?;
        let summary = serde_json::json!({"name": name, "scope": scope});
        record(&mut tx, actor, "token.revoke", "token", &id, summary).await?;
        tx.commit().await?;
        self.token_committed();
        Ok(())
    }
}
