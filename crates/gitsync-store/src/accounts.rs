//! What the operator allows each tenant (`gitsync accounts set`): the AWS accounts its sync roles
//! may be in, and whether it may deploy with the server's own credentials.

use crate::rows::{int, text};
use crate::{Result, Store, StoreError};
use gitsync_model::{AccountPolicy, Timestamp};

impl Store {
    /// The tenant's policy, or the default (its own account, untrusted) when none was set.
    pub async fn account_policy(&self, account_id: &str) -> Result<AccountPolicy> {
        let row = sqlx::query(
            "SELECT deploy_accounts, trusted FROM account_policies WHERE account_id = $1",
        )
        .bind(account_id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            None => Ok(AccountPolicy::default_for(account_id)),
            Some(row) => Ok(AccountPolicy {
                account_id: account_id.to_string(),
                deploy_accounts: serde_json::from_str(&text(&row, "deploy_accounts")?)
                    .map_err(StoreError::corrupt)?,
                trusted: int(&row, "trusted")? != 0,
            }),
        }
    }

    /// Sets a tenant's policy (replacing any earlier one).
    pub async fn set_account_policy(&self, policy: &AccountPolicy) -> Result<()> {
        for account in std::iter::once(&policy.account_id).chain(&policy.deploy_accounts) {
            if !gitsync_model::tenant::is_account_id(account) {
                return Err(StoreError::Invalid(format!(
                    "account id '{account}' must be exactly 12 digits"
                )));
            }
        }
        let mut accounts = policy.deploy_accounts.clone();
        accounts.sort();
        accounts.dedup();
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM account_policies WHERE account_id = $1")
            .bind(&policy.account_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO account_policies (account_id, deploy_accounts, trusted, updated_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&policy.account_id)
        .bind(serde_json::to_string(&accounts).map_err(StoreError::corrupt)?)
        .bind(i64::from(policy.trusted))
        .bind(Timestamp::now().millis())
        .execute(&mut *tx)
        .await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// Every tenant: those with a policy, and those with access keys but none (the default).
    pub async fn list_account_policies(&self) -> Result<Vec<AccountPolicy>> {
        let rows = sqlx::query(
            "SELECT account_id FROM account_policies UNION SELECT account_id FROM access_keys ORDER BY account_id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(self.account_policy(&text(row, "account_id")?).await?);
        }
        Ok(out)
    }
}
