//! Sync targets: a stack, a template major or a service instance, with its desired commit (moved
//! by branch checks), what it watches, and its bookkeeping (failures, retries); claimed for a
//! resource sync under a lease with a fencing epoch, like watched branches.

use crate::rows::{BindKey, int, opt_int, opt_text, parsed, text};
use crate::rows::{lease_lost, revision_json};
use crate::status::RepositoryKey;
use crate::{Backend, Result, Store, StoreError};
use gitsync_model::{Revision, SyncTarget, SyncType, Tenant, Timestamp};
use sqlx::any::AnyRow;

/// A target whose desired state moves to a new revision.
#[derive(Debug, Clone)]
pub struct TargetAdvance {
    pub target: SyncTarget,
    pub directory: String,
    pub revision: Revision,
    /// Tree-entry ids of the watched paths at `revision` (JSON object), for the next relevance check.
    pub watched_ids: String,
}

/// A target's current desired commit and watched ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetWatch {
    pub desired_sha: Option<String>,
    pub watched_ids: Option<String>,
    /// The commit of the last successful attempt.
    pub applied_sha: Option<String>,
}

/// What releasing a target without an attempt means for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// It stays due (the work could not be read this time).
    KeepDue,
    /// Nothing to sync: its desired commit counts as attempted.
    Settle,
}

/// A target claimed for a resource sync.
#[derive(Debug, Clone)]
pub struct ClaimedTarget {
    pub tenant: Tenant,
    pub sync_type: SyncType,
    pub target: SyncTarget,
    pub display_name: String,
    pub repository: RepositoryKey,
    pub branch: String,
    pub epoch: i64,
    pub desired: Revision,
    pub applied: Option<Revision>,
    pub superseded: Vec<String>,
    /// Failed attempts in a row at `failed_sha` (for backoff).
    pub failures: i64,
    /// The desired commit the failure counts are about; a new one starts them again.
    pub failed_sha: Option<String>,
    /// Of those failures, the deployments that ran and failed (for the repeated-failures blocker).
    pub deploy_failures: i64,
    /// An attempt a previous holder of the lease started and never finished.
    pub abandoned_attempt_id: Option<i64>,
    /// A blocker of the target was resolved since its last successful attempt: a person has
    /// looked, so what the blocker guarded against (a deleted stack) is to be repaired.
    pub guard_lifted: bool,
    /// The commit gitsync last really deployed (not merely validated) to this target.
    pub deployed: Option<String>,
}

/// How a resource sync ended, for the target's bookkeeping.
#[derive(Debug, Clone)]
pub struct TargetResult {
    pub succeeded: bool,
    /// Failed attempts in a row at this attempt's desired commit (0 after a success).
    pub failures: i64,
    /// Of those, the deployments that ran and failed.
    pub deploy_failures: i64,
    /// When a transient failure may be retried at the same revision; `None` waits for a new commit.
    pub retry_at: Option<Timestamp>,
    /// The attempt really deployed its commit (for stacks: not validation only).
    pub deployed: bool,
}

/// The target a `sync_targets` row names (its `sync_type` and `target_key`), decoded once here.
fn target_from(row: &AnyRow) -> Result<SyncTarget> {
    let sync_type = parsed(row, "sync_type", SyncType::parse)?;
    let key = text(row, "target_key")?;
    SyncTarget::from_key(sync_type, &key).ok_or_else(|| {
        StoreError::corrupt(format!("target_key '{key}' of a {}", sync_type.as_str()))
    })
}

impl Store {
    /// What each target currently wants, to decide whether a new commit is relevant to it.
    pub async fn target_watches(
        &self,
        tenant: &Tenant,
        sync_type: SyncType,
    ) -> Result<std::collections::HashMap<String, TargetWatch>> {
        let rows = sqlx::query(
            "SELECT target_key, desired_revision, watched_ids, applied_revision FROM sync_targets \
             WHERE account_id = $1 AND region = $2 AND sync_type = $3",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(sync_type.as_str())
        .fetch_all(&self.pool)
        .await?;
        let mut out = std::collections::HashMap::new();
        for row in rows {
            let desired = opt_text(&row, "desired_revision")?
                .map(|j| revision_json(&j))
                .transpose()?;
            out.insert(
                text(&row, "target_key")?,
                TargetWatch {
                    desired_sha: desired.map(|r| r.sha),
                    watched_ids: opt_text(&row, "watched_ids")?,
                    applied_sha: opt_text(&row, "applied_revision")?
                        .map(|j| revision_json(&j))
                        .transpose()?
                        .map(|r| r.sha),
                },
            );
        }
        Ok(out)
    }

    /// Moves the desired state of targets to new revisions, in one transaction. A desired commit
    /// that was never attempted is remembered as superseded by the new one.
    pub async fn advance_targets(
        &self,
        tenant: &Tenant,
        repository: &RepositoryKey,
        branch: &str,
        advances: &[TargetAdvance],
    ) -> Result<()> {
        if advances.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        for a in advances {
            let key = a.target.key();
            let sync_type = a.target.sync_type().as_str();
            let existing = sqlx::query(
                "SELECT desired_revision, attempted_sha, superseded FROM sync_targets \
                 WHERE account_id = $1 AND region = $2 AND sync_type = $3 AND target_key = $4",
            )
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(sync_type)
            .bind(&key)
            .fetch_optional(&mut *tx)
            .await?;
            let mut superseded: Vec<String> = Vec::new();
            if let Some(row) = &existing {
                superseded = opt_text(row, "superseded")?
                    .map(|j| serde_json::from_str(&j).unwrap_or_default())
                    .unwrap_or_default();
                let attempted = opt_text(row, "attempted_sha")?;
                if let Some(old) = opt_text(row, "desired_revision")?
                    .map(|j| revision_json(&j))
                    .transpose()?
                    && Some(&old.sha) != attempted.as_ref()
                    && old.sha != a.revision.sha
                {
                    superseded.push(old.sha);
                }
            }
            let desired = serde_json::to_string(&a.revision).map_err(StoreError::corrupt)?;
            let superseded = (!superseded.is_empty())
                .then(|| serde_json::to_string(&superseded).unwrap_or_default());
            sqlx::query(
                "INSERT INTO sync_targets (account_id, region, sync_type, target_key, display_name, repository_key, branch, directory, \
                   desired_revision, watched_ids, superseded, desired_sha, parent_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                 ON CONFLICT (account_id, region, sync_type, target_key) DO UPDATE SET display_name = $5, repository_key = $6, \
                   branch = $7, directory = $8, desired_revision = $9, watched_ids = $10, superseded = $11, desired_sha = $12, parent_key = $13",
            )
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(sync_type)
            .bind(&key)
            .bind(a.target.display_name())
            .bind(repository.as_key())
            .bind(branch)
            .bind(&a.directory)
            .bind(desired)
            .bind(&a.watched_ids)
            .bind(superseded)
            .bind(&a.revision.sha)
            .bind(a.target.parent_key())
            .execute(&mut *tx)
            .await?;
        }
        self.commit(tx).await?;
        Ok(())
    }

    /// Targets whose desired commit has not been attempted (or whose retry is due), not blocked,
    /// with a free lease.
    pub async fn due_targets(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Tenant, SyncTarget)>> {
        let rows = sqlx::query(
            "SELECT t.account_id, t.region, t.sync_type, t.target_key FROM sync_targets t \
             WHERE t.desired_revision IS NOT NULL AND (t.lease_owner IS NULL OR t.lease_expires_at < $1) \
             AND (t.attempted_sha IS NULL OR t.attempted_sha <> t.desired_sha OR t.running_attempt_id IS NOT NULL) \
             AND t.next_attempt_at <= $1 \
             AND NOT EXISTS (SELECT 1 FROM sync_blockers b WHERE b.account_id = t.account_id AND b.region = t.region \
               AND b.sync_type = t.sync_type AND b.status = 'ACTIVE' AND ( \
                 (b.parent_resource_name IS NULL AND b.resource_name = t.target_key) \
                 OR (b.parent_resource_name IS NOT NULL AND b.parent_resource_name || '/' || b.resource_name = t.target_key) \
                 OR (t.sync_type = 'SERVICE_SYNC' AND b.parent_resource_name IS NULL AND t.parent_key = b.resource_name))) \
             ORDER BY t.next_attempt_at LIMIT $2",
        )
        .bind(now.millis())
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    Tenant::new(text(r, "account_id")?, text(r, "region")?),
                    target_from(r)?,
                ))
            })
            .collect()
    }

    /// Claims a target for a resource sync.
    pub async fn claim_target(
        &self,
        tenant: &Tenant,
        target: &SyncTarget,
        owner: &str,
        now: Timestamp,
        ttl_ms: i64,
    ) -> Result<Option<ClaimedTarget>> {
        let (sync_type, target_key) = (target.sync_type(), target.key());
        let mut tx = self.write_tx().await?;
        if self.backend == Backend::Postgres {
            let free = sqlx::query(
                "SELECT 1 FROM sync_targets WHERE account_id = $1 AND region = $2 AND sync_type = $3 AND target_key = $4 \
                 AND (lease_owner IS NULL OR lease_expires_at < $5) FOR UPDATE SKIP LOCKED",
            )
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(sync_type.as_str())
            .bind(&target_key)
            .bind(now.millis())
            .fetch_optional(&mut *tx)
            .await?;
            if free.is_none() {
                return Ok(None);
            }
        }
        let row = sqlx::query(
            "UPDATE sync_targets SET lease_owner = $1, lease_expires_at = $2, lease_epoch = lease_epoch + 1 \
             WHERE account_id = $3 AND region = $4 AND sync_type = $5 AND target_key = $6 AND (lease_owner IS NULL OR lease_expires_at < $7) \
             RETURNING lease_epoch, display_name, repository_key, branch, desired_revision, applied_revision, superseded, failures, running_attempt_id, guard_lifted, deployed_sha, failed_sha, deploy_failures",
        )
        .bind(owner)
        .bind(now.millis() + ttl_ms)
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(sync_type.as_str())
        .bind(&target_key)
        .bind(now.millis())
        .fetch_optional(&mut *tx)
        .await?;
        self.commit(tx).await?;
        let Some(row) = row else { return Ok(None) };
        let Some(desired) = opt_text(&row, "desired_revision")? else {
            return Ok(None);
        };
        Ok(Some(ClaimedTarget {
            tenant: tenant.clone(),
            sync_type,
            target: target.clone(),
            display_name: text(&row, "display_name")?,
            repository: RepositoryKey::parse(&text(&row, "repository_key")?),
            branch: text(&row, "branch")?,
            epoch: int(&row, "lease_epoch")?,
            desired: revision_json(&desired)?,
            applied: opt_text(&row, "applied_revision")?
                .map(|j| revision_json(&j))
                .transpose()?,
            superseded: opt_text(&row, "superseded")?
                .map(|j| serde_json::from_str(&j).unwrap_or_default())
                .unwrap_or_default(),
            failures: int(&row, "failures")?,
            failed_sha: opt_text(&row, "failed_sha")?,
            deploy_failures: int(&row, "deploy_failures")?,
            abandoned_attempt_id: opt_int(&row, "running_attempt_id")?,
            guard_lifted: int(&row, "guard_lifted")? != 0,
            deployed: opt_text(&row, "deployed_sha")?,
        }))
    }

    /// Extends a held target lease (for long deployments); fails once the lease is lost.
    pub async fn renew_target_lease(
        &self,
        claim: &ClaimedTarget,
        now: Timestamp,
        ttl_ms: i64,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE sync_targets SET lease_expires_at = $1 WHERE account_id = $2 AND region = $3 AND sync_type = $4 AND target_key = $5 AND lease_epoch = $6",
        )
        .bind(now.millis() + ttl_ms)
        .bind_target(claim)
        .bind(claim.epoch)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(lease_lost(&claim.target.key()));
        }
        self.commit(tx).await?;
        Ok(())
    }

    /// Frees a target lease without an attempt. `Release::Settle` also counts its desired commit
    /// as attempted (there is nothing to sync: its configuration was deleted), so it stops being due
    /// until a new commit is desired; `Release::KeepDue` leaves it to be tried again.
    pub async fn release_target(&self, claim: &ClaimedTarget, how: Release) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE sync_targets SET lease_owner = NULL, lease_expires_at = NULL, \
             attempted_sha = CASE WHEN $6 = 1 THEN desired_sha ELSE attempted_sha END, \
             running_attempt_id = CASE WHEN $6 = 1 THEN NULL ELSE running_attempt_id END \
             WHERE account_id = $1 AND region = $2 AND sync_type = $3 AND target_key = $4 AND lease_epoch = $5",
        )
        .bind_target(claim)
        .bind(claim.epoch)
        .bind(i64::from(how == Release::Settle))
        .execute(&mut *tx)
        .await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// Makes a target try its desired commit again now (after a blocker was resolved). False when
    /// it has nothing to retry.
    pub async fn retry_target(
        &self,
        tenant: &Tenant,
        sync_type: SyncType,
        target_key: &str,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE sync_targets SET attempted_sha = NULL, next_attempt_at = 0, failures = 0 \
             WHERE account_id = $1 AND region = $2 AND sync_type = $3 AND target_key = $4 AND desired_revision IS NOT NULL",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(sync_type.as_str())
        .bind(target_key)
        .execute(&mut *tx)
        .await?;
        self.commit(tx).await?;
        Ok(done.rows_affected() > 0)
    }
}
