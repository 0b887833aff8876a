//! API access keys. Each belongs to one account; the secret is sealed at rest and only opened to
//! verify a signature.

use crate::rows::{int, text};
use crate::{Result, Store, StoreError};
use gitsync_model::Timestamp;
use rand::Rng;
use std::fmt;

/// A key pair as handed to a user once, at creation.
#[derive(Clone)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub account_id: String,
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKey")
            .field("access_key_id", &self.access_key_id)
            .field("account_id", &self.account_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeySummary {
    pub access_key_id: String,
    pub account_id: String,
    pub created_at: Timestamp,
}

const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn random_string(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

impl Store {
    /// Creates a key pair for `account_id`: an id shaped like AWS's (`AKIA` + 16 upper-case letters
    /// and digits) and a 40-character secret.
    pub async fn create_access_key(&self, account_id: &str) -> Result<AccessKey> {
        if !gitsync_model::tenant::is_account_id(account_id) {
            return Err(StoreError::Invalid(format!(
                "account id '{account_id}' must be exactly 12 digits"
            )));
        }
        let key = AccessKey {
            access_key_id: format!("AKIA{}", random_string(ID_ALPHABET, 16)),
            secret_access_key: random_string(SECRET_ALPHABET, 40),
            account_id: account_id.to_string(),
        };
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO access_keys (access_key_id, account_id, secret_sealed, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&key.access_key_id)
        .bind(&key.account_id)
        .bind(self.sealer.seal(key.secret_access_key.as_bytes()))
        .bind(Timestamp::now().millis())
        .execute(&mut *tx)
        .await?;
        self.commit(tx).await?;
        Ok(key)
    }

    pub async fn list_access_keys(&self) -> Result<Vec<AccessKeySummary>> {
        let rows = sqlx::query(
            "SELECT access_key_id, account_id, created_at FROM access_keys ORDER BY account_id, created_at, access_key_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AccessKeySummary {
                    access_key_id: text(row, "access_key_id")?,
                    account_id: text(row, "account_id")?,
                    created_at: Timestamp(int(row, "created_at")?),
                })
            })
            .collect()
    }

    /// Deletes a key; false when there was none by that id.
    pub async fn delete_access_key(&self, access_key_id: &str) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("DELETE FROM access_keys WHERE access_key_id = $1")
            .bind(access_key_id)
            .execute(&mut *tx)
            .await?;
        // Its dashboard sessions end with it (they are checked against the key anyway).
        sqlx::query("DELETE FROM dashboard_sessions WHERE access_key_id = $1")
            .bind(access_key_id)
            .execute(&mut *tx)
            .await?;
        self.commit(tx).await?;
        Ok(done.rows_affected() > 0)
    }

    /// The key's account and secret, to verify a signature made with it.
    pub async fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>> {
        let row = sqlx::query(
            "SELECT account_id, secret_sealed FROM access_keys WHERE access_key_id = $1",
        )
        .bind(access_key_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let secret = self.sealer.open(&text(&row, "secret_sealed")?)?;
        Ok(Some(AccessKey {
            access_key_id: access_key_id.to_string(),
            secret_access_key: String::from_utf8(secret).map_err(StoreError::corrupt)?,
            account_id: text(&row, "account_id")?,
        }))
    }

    /// Whether this store's master key opens the secrets already sealed in the database (one of
    /// each kind is tried). A replica started with another key must refuse to run: it would
    /// answer `/healthz` and then fail every signed request.
    pub async fn check_master_key(&self) -> Result<()> {
        for sql in [
            "SELECT secret_sealed AS sealed FROM access_keys ORDER BY created_at LIMIT 1",
            "SELECT credentials_sealed AS sealed FROM connections WHERE credentials_sealed IS NOT NULL LIMIT 1",
            "SELECT secret_sealed AS sealed FROM webhook_secrets LIMIT 1",
        ] {
            if let Some(row) = sqlx::query(sql).fetch_optional(&self.pool).await? {
                self.sealer.open(&text(&row, "sealed")?)?;
            }
        }
        Ok(())
    }
}
