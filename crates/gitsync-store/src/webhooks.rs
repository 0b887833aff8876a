//! Webhook secrets (sealed, per tenant and repository) and the record of every delivery.

use crate::rows::text;
use crate::{Result, Store};
use gitsync_model::{Tenant, Timestamp};
use sqlx::Row;

impl Store {
    pub async fn set_webhook_secret(
        &self,
        tenant: &Tenant,
        owner: &str,
        repository: &str,
        secret: &[u8],
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO webhook_secrets (account_id, region, owner_id, repository_name, secret_sealed) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (account_id, region, owner_id, repository_name) DO UPDATE SET secret_sealed = $5",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(owner)
        .bind(repository)
        .bind(self.sealer.seal(secret))
        .execute(&mut *tx)
        .await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// Every tenant's webhook secret for `owner/repository`, opened.
    pub async fn webhook_secrets(
        &self,
        owner: &str,
        repository: &str,
    ) -> Result<Vec<(Tenant, Vec<u8>)>> {
        let rows = sqlx::query(
            "SELECT account_id, region, secret_sealed FROM webhook_secrets WHERE owner_id = $1 AND repository_name = $2",
        )
        .bind(owner)
        .bind(repository)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    Tenant::new(text(r, "account_id")?, text(r, "region")?),
                    self.sealer.open(&text(r, "secret_sealed")?)?,
                ))
            })
            .collect()
    }

    /// Records a webhook delivery (before it is acknowledged); returns its id.
    pub async fn record_webhook_delivery(
        &self,
        provider: &str,
        repository: &str,
        branch: &str,
        sha: Option<&str>,
        verified: &[Tenant],
        outcome: &str,
    ) -> Result<i64> {
        // Fields come from the sender: stored cut to a bounded length.
        let cut = |s: &str, max: usize| -> String { s.chars().take(max).collect() };
        let (repository, branch) = (cut(repository, 256), cut(branch, 256));
        let sha = sha.map(|s| cut(s, 64));
        let mut tx = self.write_tx().await?;
        let verified = verified
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let row = sqlx::query(
            "INSERT INTO webhook_deliveries (provider, received_at, repository, branch, sha, verified, outcome) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING delivery_id",
        )
        .bind(provider)
        .bind(Timestamp::now().millis())
        .bind(&repository)
        .bind(&branch)
        .bind(sha.as_deref())
        .bind(verified)
        .bind(outcome)
        .fetch_one(&mut *tx)
        .await?;
        self.commit(tx).await?;
        Ok(row.try_get(0)?)
    }

    /// Deletes webhook delivery records received before `before`; answers how many.
    pub async fn prune_webhook_deliveries(&self, before: Timestamp) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("DELETE FROM webhook_deliveries WHERE received_at < $1")
            .bind(before.millis())
            .execute(&mut *tx)
            .await?;
        self.commit(tx).await?;
        Ok(done.rows_affected())
    }
}
