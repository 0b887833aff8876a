//! The sync engine's working state: watched branches and sync targets, each claimed under a lease
//! with a fencing epoch, and webhook secrets and deliveries.
//!
//! Leases use the database clock of the caller (`now`, epoch milliseconds) and are claimed with a
//! conditional `UPDATE`: only one worker can move `lease_epoch` from the value it read, so at most
//! one holds a lease; every later write of the holder names that epoch and does nothing (and
//! says so) once another worker has taken over.

use crate::rows::{int, opt_int, opt_text, parsed, text};
use crate::services::DeployedInstance;
use crate::status::RepositoryKey;
use crate::templates::NewTemplateVersion;
use crate::{Backend, Result, Store, StoreError};
use gitsync_model::{
    BlockerScope, ConnectionStatus, EventType, InstanceDeployment, ProtonProvider, ProviderType,
    RepositorySyncStatus, ResourceSyncStatus, Revision, SyncEvent, SyncTarget, SyncType,
    TemplateType, TemplateVersion, Tenant, Timestamp,
};
use sqlx::Row;
use sqlx::any::AnyRow;

/// Identifies a watched branch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BranchKey {
    pub tenant: Tenant,
    pub sync_type: SyncType,
    pub repository: RepositoryKey,
    pub branch: String,
}

/// A watched branch claimed for a check.
#[derive(Debug, Clone)]
pub struct ClaimedBranch {
    pub key: BranchKey,
    pub epoch: i64,
    pub synced_sha: Option<String>,
    pub failures: i64,
    pub queued_attempt_id: Option<i64>,
}

/// How a branch check ended, to schedule the next one.
#[derive(Debug, Clone)]
pub struct BranchCheckResult {
    pub remote_sha: Option<String>,
    pub synced_sha: Option<String>,
    pub failures: i64,
    pub last_error: Option<String>,
    pub next_check_at: Timestamp,
}

/// Where a repository link's repository lives and how to reach it.
#[derive(Debug, Clone)]
pub struct LinkSource {
    pub link_id: String,
    pub owner_id: String,
    pub repository_name: String,
    pub provider_type: ProviderType,
    pub connection_arn: String,
    pub connection_status: ConnectionStatus,
    /// The host's `ProviderEndpoint` for self-managed providers.
    pub host_endpoint: Option<String>,
    /// Opened credentials of the connection, as stored by `activate_connection`.
    pub credentials: Option<Vec<u8>>,
}

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

/// What a resource sync changes in the database. It is applied in the transaction that closes the
/// attempt, under the lease's fence: a worker that lost its lease changes nothing, and a crash
/// leaves either the effect and its attempt's record, or neither.
#[derive(Debug, Clone)]
pub enum Effect {
    /// The attempt changes nothing here (a stack deployment's effect is in CloudFormation).
    None,
    /// Registers the next minor of a template major from a bundle, unless a version of that
    /// major was registered from the same commit already (a retry registers nothing).
    RegisterTemplateVersion {
        template_type: TemplateType,
        name: String,
        version: NewTemplateVersion,
    },
    /// Creates or updates a service instance and records its deployment.
    DeployInstance {
        service: String,
        instance: String,
        deployment: InstanceDeployment,
    },
}

/// What applying an [`Effect`] did.
#[derive(Debug, Clone)]
pub enum Applied {
    Nothing,
    Registered(TemplateVersion),
    /// The version registered from this commit before.
    AlreadyRegistered(TemplateVersion),
    Deployed(Box<DeployedInstance>),
}

/// A blocker a resource sync raises as it ends.
#[derive(Debug, Clone)]
pub struct NewBlocker {
    pub scope: BlockerScope,
    pub reason: String,
    pub contexts: Vec<(String, String)>,
}

/// How an attempt ends, decided once its effect's outcome is known.
#[derive(Debug, Clone)]
pub struct Closing {
    pub events: Vec<SyncEvent>,
    pub result: TargetResult,
    /// Raised in the same transaction; the attempt's last event names it (`BLOCKED`).
    pub blocker: Option<NewBlocker>,
}

/// Makes one tenant's `watched_branches` match its sync configurations, inside the transaction
/// that changed them: one row per (sync type, repository, branch) that a stack sync, a template
/// sync or a service sync (its ops file's branch and every branch the file names) watches. New
/// rows are due at once; rows nothing watches any more go, even while a check holds them (its
/// finish then finds its lease gone and writes nothing).
pub(crate) async fn watch_configured_branches(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    tenant: &Tenant,
) -> Result<()> {
    const WANTED: &str = "SELECT DISTINCT c.sync_type AS sync_type, c.link_id AS link_id, NULL AS provider, NULL AS name, c.branch AS branch \
         FROM sync_configurations c WHERE c.account_id = $1 AND c.region = $2 \
         UNION SELECT 'TEMPLATE_SYNC', NULL, c.repository_provider, c.repository_name, c.branch \
         FROM template_sync_configs c WHERE c.account_id = $1 AND c.region = $2 \
         UNION SELECT 'SERVICE_SYNC', NULL, c.repository_provider, c.repository_name, c.branch \
         FROM service_sync_configs c WHERE c.account_id = $1 AND c.region = $2 \
         UNION SELECT 'SERVICE_SYNC', NULL, c.repository_provider, c.repository_name, b.branch \
         FROM service_sync_configs c JOIN service_sync_branches b ON b.account_id = c.account_id AND b.region = c.region \
           AND b.service_name = c.service_name WHERE c.account_id = $1 AND c.region = $2";
    let wanted: std::collections::BTreeSet<(String, String, String)> = sqlx::query(WANTED)
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| {
            let repository = match opt_text(r, "link_id")? {
                Some(link_id) => RepositoryKey::Link(link_id),
                None => RepositoryKey::Proton {
                    provider: parsed(r, "provider", ProtonProvider::parse)?,
                    name: text(r, "name")?,
                },
            };
            Ok((
                text(r, "sync_type")?,
                repository.as_key(),
                text(r, "branch")?,
            ))
        })
        .collect::<Result<_>>()?;
    let watched: std::collections::BTreeSet<(String, String, String)> = sqlx::query(
        "SELECT sync_type, repository_key, branch FROM watched_branches WHERE account_id = $1 AND region = $2",
    )
    .bind(&tenant.account_id)
    .bind(&tenant.region)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| Ok((text(r, "sync_type")?, text(r, "repository_key")?, text(r, "branch")?)))
    .collect::<Result<_>>()?;
    for (sync_type, repository_key, branch) in wanted.difference(&watched) {
        sqlx::query(
            "INSERT INTO watched_branches (account_id, region, sync_type, repository_key, branch, next_check_at, failures, lease_epoch) \
             VALUES ($1, $2, $3, $4, $5, 0, 0, 0)",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(sync_type)
        .bind(repository_key)
        .bind(branch)
        .execute(&mut **tx)
        .await?;
    }
    for (sync_type, repository_key, branch) in watched.difference(&wanted) {
        sqlx::query(
            "DELETE FROM watched_branches WHERE account_id = $1 AND region = $2 AND sync_type = $3 AND repository_key = $4 AND branch = $5",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(sync_type)
        .bind(repository_key)
        .bind(branch)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The watched branches (of every sync type) of one repository's branch, with their lease.
async fn watched_rows(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    tenant: &Tenant,
    repository: &RepositoryKey,
    branch: &str,
) -> Result<Vec<AnyRow>> {
    Ok(sqlx::query(
        "SELECT sync_type, repository_key, lease_owner, lease_expires_at, queued_attempt_id FROM watched_branches \
         WHERE account_id = $1 AND region = $2 AND repository_key = $3 AND branch = $4",
    )
    .bind(&tenant.account_id)
    .bind(&tenant.region)
    .bind(repository.as_key())
    .bind(branch)
    .fetch_all(&mut **tx)
    .await?)
}

fn branch_from(row: &AnyRow) -> Result<BranchKey> {
    Ok(BranchKey {
        tenant: Tenant::new(text(row, "account_id")?, text(row, "region")?),
        sync_type: parsed(row, "sync_type", SyncType::parse)?,
        repository: RepositoryKey::parse(&text(row, "repository_key")?),
        branch: text(row, "branch")?,
    })
}

/// The target a `sync_targets` row names (its `sync_type` and `target_key`), decoded once here.
fn target_from(row: &AnyRow) -> Result<SyncTarget> {
    let sync_type = parsed(row, "sync_type", SyncType::parse)?;
    let key = text(row, "target_key")?;
    SyncTarget::from_key(sync_type, &key).ok_or_else(|| {
        StoreError::corrupt(format!("target_key '{key}' of a {}", sync_type.as_str()))
    })
}

fn revision_json(value: &str) -> Result<Revision> {
    serde_json::from_str(value).map_err(StoreError::corrupt)
}

/// Tells the tenant's notification targets that a target's resource sync status moved (through
/// the outbox, in the caller's transaction).
async fn notify_status_change(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    claim: &ClaimedTarget,
    sync_target: &str,
    status: ResourceSyncStatus,
    previous: Option<ResourceSyncStatus>,
) -> Result<()> {
    let change = gitsync_model::notification::ResourceSyncStatusChange {
        tenant: &claim.tenant,
        sync_type: claim.sync_type,
        sync_target,
        revision: &claim.desired,
        status,
        previous,
        time: Timestamp::now(),
    };
    crate::outbox::notify(tx, &claim.tenant, &change.message()).await
}

fn lease_lost(what: &str) -> StoreError {
    StoreError::LeaseLost(format!("lease on {what} was lost to another worker"))
}

impl Store {
    /// The database's clock, in epoch milliseconds. Leases are stamped with it, so replicas whose
    /// own clocks disagree still agree on when a lease runs out.
    pub async fn now(&self) -> Result<Timestamp> {
        let sql: &'static str = match self.backend {
            Backend::Sqlite => {
                "SELECT CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
            }
            Backend::Postgres => {
                "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
            }
        };
        Ok(Timestamp(
            sqlx::query(sql)
                .fetch_one(&self.pool)
                .await?
                .try_get::<i64, _>(0)?,
        ))
    }

    /// Makes `watched_branches` match every tenant's sync configurations. Configuration changes
    /// keep them in step in their own transactions ([`watch_configured_branches`]); the engine
    /// runs this once at start-up, for databases written by an older release.
    pub async fn refresh_watched_branches(&self) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let tenants = sqlx::query(
            "SELECT account_id, region FROM sync_configurations UNION SELECT account_id, region FROM template_sync_configs \
             UNION SELECT account_id, region FROM service_sync_configs UNION SELECT account_id, region FROM watched_branches",
        )
        .fetch_all(&mut *tx)
        .await?;
        for row in tenants {
            let tenant = Tenant::new(text(&row, "account_id")?, text(&row, "region")?);
            watch_configured_branches(&mut tx, &tenant).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Makes every watched branch due now (at start-up: webhooks are hints, not a ledger).
    pub async fn check_all_branches_now(&self) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("UPDATE watched_branches SET next_check_at = 0")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Branches due for a check whose lease is free.
    pub async fn due_branches(&self, now: Timestamp, limit: usize) -> Result<Vec<BranchKey>> {
        let rows = sqlx::query(
            "SELECT account_id, region, sync_type, repository_key, branch FROM watched_branches \
             WHERE next_check_at <= $1 AND (lease_owner IS NULL OR lease_expires_at < $1) ORDER BY next_check_at LIMIT $2",
        )
        .bind(now.millis())
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(branch_from).collect()
    }

    /// Claims a due branch; `None` when another worker got it first or it is no longer due.
    pub async fn claim_branch(
        &self,
        key: &BranchKey,
        owner: &str,
        now: Timestamp,
        ttl_ms: i64,
    ) -> Result<Option<ClaimedBranch>> {
        let mut tx = self.write_tx().await?;
        if self.backend == Backend::Postgres {
            // Replicas claiming at once skip rows another is locking instead of queueing on them.
            let free = sqlx::query(
                "SELECT 1 FROM watched_branches WHERE account_id = $1 AND region = $2 AND sync_type = $3 AND repository_key = $4 \
                 AND branch = $5 AND next_check_at <= $6 AND (lease_owner IS NULL OR lease_expires_at < $6) FOR UPDATE SKIP LOCKED",
            )
            .bind(&key.tenant.account_id)
            .bind(&key.tenant.region)
            .bind(key.sync_type.as_str())
            .bind(key.repository.as_key())
            .bind(&key.branch)
            .bind(now.millis())
            .fetch_optional(&mut *tx)
            .await?;
            if free.is_none() {
                return Ok(None);
            }
        }
        let row = sqlx::query(
            // While checked, the branch is not due; a trigger during the check makes it due again
            // (next_check_at = 0), which `finish_branch_check` keeps.
            "UPDATE watched_branches SET lease_owner = $1, lease_expires_at = $2, next_check_at = $2, lease_epoch = lease_epoch + 1 \
             WHERE account_id = $3 AND region = $4 AND sync_type = $5 AND repository_key = $6 AND branch = $7 \
             AND next_check_at <= $8 AND (lease_owner IS NULL OR lease_expires_at < $8) \
             RETURNING lease_epoch, synced_sha, failures, queued_attempt_id",
        )
        .bind(owner)
        .bind(now.millis() + ttl_ms)
        .bind(&key.tenant.account_id)
        .bind(&key.tenant.region)
        .bind(key.sync_type.as_str())
        .bind(key.repository.as_key())
        .bind(&key.branch)
        .bind(now.millis())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.commit().await?;
            return Ok(None);
        };
        // A repository sync left INITIATED or IN_PROGRESS by a worker that stopped is closed here,
        // so that no attempt stays in flight forever.
        let orphans = sqlx::query(
            "SELECT attempt_id FROM repository_sync_attempts WHERE account_id = $1 AND region = $2 AND sync_type = $3 \
             AND repository_key = $4 AND branch = $5 AND status IN ('INITIATED', 'IN_PROGRESS')",
        )
        .bind(&key.tenant.account_id)
        .bind(&key.tenant.region)
        .bind(key.sync_type.as_str())
        .bind(key.repository.as_key())
        .bind(&key.branch)
        .fetch_all(&mut *tx)
        .await?;
        for orphan in orphans {
            let id = int(&orphan, "attempt_id")?;
            let stopped = SyncEvent {
                event_type: EventType::Abandoned.as_str().into(),
                event: "The worker running this repository sync stopped before it finished; the branch is checked again".into(),
                time: now,
                external_id: None,
            };
            insert_event(&mut tx, "repository_sync_events", id, &stopped).await?;
            sqlx::query("UPDATE repository_sync_attempts SET status = 'FAILED', finished_at = $1 WHERE attempt_id = $2")
                .bind(now.millis())
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Some(ClaimedBranch {
            key: key.clone(),
            epoch: int(&row, "lease_epoch")?,
            synced_sha: opt_text(&row, "synced_sha")?,
            failures: int(&row, "failures")?,
            queued_attempt_id: opt_int(&row, "queued_attempt_id")?,
        }))
    }

    /// Takes the QUEUED repository sync waiting on a branch, if any (it becomes the current one).
    pub async fn take_queued_attempt(&self, claim: &ClaimedBranch) -> Result<Option<i64>> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(
            "UPDATE watched_branches SET queued_attempt_id = NULL \
             WHERE account_id = $1 AND region = $2 AND sync_type = $3 AND repository_key = $4 AND branch = $5 AND lease_epoch = $6 \
             RETURNING queued_attempt_id",
        )
        .bind(&claim.key.tenant.account_id)
        .bind(&claim.key.tenant.region)
        .bind(claim.key.sync_type.as_str())
        .bind(claim.key.repository.as_key())
        .bind(&claim.key.branch)
        .bind(claim.epoch)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        // RETURNING gives the new (NULL) value on SQLite and PostgreSQL alike; the claim read the old one.
        Ok(row.and(claim.queued_attempt_id))
    }

    /// Ends a branch check: records what was seen, schedules the next check, frees the lease.
    pub async fn finish_branch_check(
        &self,
        claim: &ClaimedBranch,
        result: &BranchCheckResult,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            // A trigger or configuration change during the check (next_check_at = 0) means the
            // branch must be evaluated again, even at the same head.
            "UPDATE watched_branches SET remote_sha = COALESCE($1, remote_sha), \
             synced_sha = CASE WHEN next_check_at = 0 THEN NULL ELSE $2 END, failures = $3, last_error = $4, \
             next_check_at = CASE WHEN next_check_at = 0 THEN 0 ELSE $5 END, lease_owner = NULL, lease_expires_at = NULL \
             WHERE account_id = $6 AND region = $7 AND sync_type = $8 AND repository_key = $9 AND branch = $10 AND lease_epoch = $11",
        )
        .bind(&result.remote_sha)
        .bind(&result.synced_sha)
        .bind(result.failures)
        .bind(&result.last_error)
        .bind(result.next_check_at.millis())
        .bind(&claim.key.tenant.account_id)
        .bind(&claim.key.tenant.region)
        .bind(claim.key.sync_type.as_str())
        .bind(claim.key.repository.as_key())
        .bind(&claim.key.branch)
        .bind(claim.epoch)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(lease_lost(&format!("branch {}", claim.key.branch)));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Extends a branch check's lease; `LeaseLost` when another worker holds it now.
    pub async fn renew_branch_lease(
        &self,
        claim: &ClaimedBranch,
        now: Timestamp,
        ttl_ms: i64,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE watched_branches SET lease_expires_at = $1 \
             WHERE account_id = $2 AND region = $3 AND sync_type = $4 AND repository_key = $5 AND branch = $6 AND lease_epoch = $7",
        )
        .bind(now.millis() + ttl_ms)
        .bind(&claim.key.tenant.account_id)
        .bind(&claim.key.tenant.region)
        .bind(claim.key.sync_type.as_str())
        .bind(claim.key.repository.as_key())
        .bind(&claim.key.branch)
        .bind(claim.epoch)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(lease_lost(&format!("branch {}", claim.key.branch)));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Gives a branch check up without finishing it (the worker is shutting down): the branch is
    /// due again at once, for any replica; its unfinished repository sync is closed by the next
    /// claim.
    pub async fn release_branch(&self, claim: &ClaimedBranch) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE watched_branches SET lease_owner = NULL, lease_expires_at = NULL, next_check_at = 0 \
             WHERE account_id = $1 AND region = $2 AND sync_type = $3 AND repository_key = $4 AND branch = $5 AND lease_epoch = $6",
        )
        .bind(&claim.key.tenant.account_id)
        .bind(&claim.key.tenant.region)
        .bind(claim.key.sync_type.as_str())
        .bind(claim.key.repository.as_key())
        .bind(&claim.key.branch)
        .bind(claim.epoch)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Asks for an immediate check of one tenant's watched branches of `owner/repository` (its
    /// repository links and Proton repositories), as a verified webhook does. A branch being checked right now gets a QUEUED
    /// repository sync that runs when the current one ends. Answers how many branches were hit.
    pub async fn trigger_branch(
        &self,
        tenant: &Tenant,
        owner: &str,
        repository: &str,
        branch: &str,
    ) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        // The repository's links and its Proton repositories (named `owner/repository`): a
        // push to it concerns stack syncs and template and service syncs alike.
        let mut repositories = Vec::new();
        for r in sqlx::query(
            "SELECT link_id FROM repository_links WHERE account_id = $1 AND region = $2 AND owner_id = $3 AND repository_name = $4",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(owner)
        .bind(repository)
        .fetch_all(&mut *tx)
        .await?
        {
            repositories.push(RepositoryKey::Link(text(&r, "link_id")?));
        }
        for r in sqlx::query(
            "SELECT provider, name FROM proton_repositories WHERE account_id = $1 AND region = $2 AND name = $3",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(format!("{owner}/{repository}"))
        .fetch_all(&mut *tx)
        .await?
        {
            repositories.push(RepositoryKey::Proton {
                provider: parsed(&r, "provider", ProtonProvider::parse)?,
                name: text(&r, "name")?,
            });
        }
        let mut rows = Vec::new();
        for key in &repositories {
            rows.extend(watched_rows(&mut tx, tenant, key, branch).await?);
        }
        self.queue_checks(tx, tenant, &rows, branch).await
    }

    /// Asks for an immediate check of one watched repository's branch (a Proton repository, or
    /// a repository link), as `gitsync sync` does. Answers how many branch checks were hit.
    pub async fn trigger_repository_branch(
        &self,
        tenant: &Tenant,
        repository: &RepositoryKey,
        branch: &str,
    ) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let rows = watched_rows(&mut tx, tenant, repository, branch).await?;
        self.queue_checks(tx, tenant, &rows, branch).await
    }

    /// Makes the watched branches in `rows` due now; one being checked gets a QUEUED attempt.
    async fn queue_checks(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Any>,
        tenant: &Tenant,
        rows: &[AnyRow],
        branch: &str,
    ) -> Result<u64> {
        let now = self.now().await?;
        for row in rows {
            let repository_key = text(row, "repository_key")?;
            let sync_type = text(row, "sync_type")?;
            let busy = opt_text(row, "lease_owner")?.is_some()
                && opt_int(row, "lease_expires_at")?.is_some_and(|t| t >= now.millis());
            let mut queued = opt_int(row, "queued_attempt_id")?;
            if busy && queued.is_none() {
                let id = sqlx::query(
                    "INSERT INTO repository_sync_attempts (account_id, region, sync_type, repository_key, branch, status, started_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING attempt_id",
                )
                .bind(&tenant.account_id)
                .bind(&tenant.region)
                .bind(&sync_type)
                .bind(&repository_key)
                .bind(branch)
                .bind(RepositorySyncStatus::Queued.as_str())
                .bind(now.millis())
                .fetch_one(&mut *tx)
                .await?;
                queued = Some(id.try_get::<i64, _>(0)?);
            }
            sqlx::query(
                "UPDATE watched_branches SET next_check_at = 0, queued_attempt_id = $1 \
                 WHERE account_id = $2 AND region = $3 AND sync_type = $4 AND repository_key = $5 AND branch = $6",
            )
            .bind(queued)
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(&sync_type)
            .bind(&repository_key)
            .bind(branch)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(rows.len() as u64)
    }

    /// Makes the branches of links through a connection due now (after it was activated).
    pub async fn check_connection_now(&self, tenant: &Tenant, connection_arn: &str) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let links = sqlx::query(
            "SELECT link_id FROM repository_links WHERE account_id = $1 AND region = $2 AND connection_arn = $3",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(connection_arn)
        .fetch_all(&mut *tx)
        .await?;
        for link in &links {
            let key = RepositoryKey::Link(text(link, "link_id")?);
            sqlx::query(
                "UPDATE watched_branches SET next_check_at = 0, failures = 0 WHERE account_id = $1 AND region = $2 AND repository_key = $3",
            )
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(key.as_key())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Where a link's repository lives, with the connection's state and opened credentials.
    pub async fn link_source(&self, tenant: &Tenant, link_id: &str) -> Result<LinkSource> {
        let row = sqlx::query(
            "SELECT l.link_id, l.owner_id, l.repository_name, l.provider_type, l.connection_arn, c.status, c.credentials_sealed, h.provider_endpoint \
             FROM repository_links l \
             LEFT JOIN connections c ON c.account_id = l.account_id AND c.region = l.region AND c.connection_id = l.connection_id \
             LEFT JOIN hosts h ON h.account_id = l.account_id AND h.region = l.region AND h.arn = c.host_arn \
             WHERE l.account_id = $1 AND l.region = $2 AND l.link_id = $3",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(link_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("Repository link {link_id} does not exist")))?;
        let connection_arn = text(&row, "connection_arn")?;
        let status = match opt_text(&row, "status")? {
            Some(s) => ConnectionStatus::parse(&s).ok_or_else(|| StoreError::corrupt(s))?,
            None => {
                return Err(StoreError::NotFound(format!(
                    "Connection {connection_arn} of repository link {link_id} was deleted"
                )));
            }
        };
        let credentials = match opt_text(&row, "credentials_sealed")? {
            Some(sealed) => Some(self.sealer.open(&sealed)?),
            None => None,
        };
        Ok(LinkSource {
            link_id: text(&row, "link_id")?,
            owner_id: text(&row, "owner_id")?,
            repository_name: text(&row, "repository_name")?,
            provider_type: parsed(&row, "provider_type", ProviderType::parse)?,
            connection_arn,
            connection_status: status,
            host_endpoint: opt_text(&row, "provider_endpoint")?,
            credentials,
        })
    }

    /// Where a Proton repository lives: its connection's state, host and credentials.
    pub async fn proton_source(
        &self,
        tenant: &Tenant,
        provider: gitsync_model::ProtonProvider,
        name: &str,
    ) -> Result<LinkSource> {
        let repository = self.get_proton_repository(tenant, provider, name).await?;
        let (owner, repo) = gitsync_model::split_owner_repo(name)
            .ok_or_else(|| StoreError::corrupt(format!("repository name {name}")))?;
        let connection = self
            .get_connection(tenant, &repository.connection_arn)
            .await
            .map_err(|_| {
                StoreError::NotFound(format!(
                    "Connection {} of repository {name} was deleted",
                    repository.connection_arn
                ))
            })?;
        let row = sqlx::query(
            "SELECT c.credentials_sealed, h.provider_endpoint FROM connections c \
             LEFT JOIN hosts h ON h.account_id = c.account_id AND h.region = c.region AND h.arn = c.host_arn \
             WHERE c.account_id = $1 AND c.region = $2 AND c.connection_id = $3",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(&connection.id)
        .fetch_one(&self.pool)
        .await?;
        let credentials = match opt_text(&row, "credentials_sealed")? {
            Some(sealed) => Some(self.sealer.open(&sealed)?),
            None => None,
        };
        Ok(LinkSource {
            link_id: String::new(),
            owner_id: owner.to_string(),
            repository_name: repo.to_string(),
            provider_type: connection.provider_type,
            connection_arn: connection.arn,
            connection_status: connection.status,
            host_endpoint: opt_text(&row, "provider_endpoint")?,
            credentials,
        })
    }

    /// The template sync configurations that watch one branch of a Proton repository.
    pub async fn template_sync_configs_on(
        &self,
        tenant: &Tenant,
        provider: gitsync_model::ProtonProvider,
        name: &str,
        branch: &str,
    ) -> Result<Vec<gitsync_model::TemplateSyncConfig>> {
        let rows = sqlx::query(
            "SELECT template_name, template_type, subdirectory FROM template_sync_configs WHERE account_id = $1 AND region = $2 \
             AND repository_provider = $3 AND repository_name = $4 AND branch = $5 ORDER BY template_name, template_type",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(provider.as_str())
        .bind(name)
        .bind(branch)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(gitsync_model::TemplateSyncConfig {
                    template_name: text(r, "template_name")?,
                    template_type: parsed(r, "template_type", gitsync_model::TemplateType::parse)?,
                    repository_provider: provider,
                    repository_name: name.to_string(),
                    branch: branch.to_string(),
                    subdirectory: opt_text(r, "subdirectory")?,
                })
            })
            .collect()
    }

    /// The service sync configurations whose proton-ops file is in one Proton repository.
    pub async fn service_sync_configs_in(
        &self,
        tenant: &Tenant,
        provider: gitsync_model::ProtonProvider,
        name: &str,
    ) -> Result<Vec<gitsync_model::ServiceSyncConfig>> {
        let rows = sqlx::query(
            "SELECT service_name, branch, file_path FROM service_sync_configs WHERE account_id = $1 AND region = $2 \
             AND repository_provider = $3 AND repository_name = $4 ORDER BY service_name",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(provider.as_str())
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(gitsync_model::ServiceSyncConfig {
                    service_name: text(r, "service_name")?,
                    repository_provider: provider,
                    repository_name: name.to_string(),
                    branch: text(r, "branch")?,
                    file_path: text(r, "file_path")?,
                })
            })
            .collect()
    }

    /// Makes watched branches of a repository look again at their head (the proton-ops file
    /// changed what they are read for).
    pub async fn reevaluate_branches(
        &self,
        tenant: &Tenant,
        sync_type: SyncType,
        repository: &RepositoryKey,
        branches: &[String],
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        for branch in branches {
            sqlx::query(
                "UPDATE watched_branches SET synced_sha = NULL, next_check_at = 0 \
                 WHERE account_id = $1 AND region = $2 AND sync_type = $3 AND repository_key = $4 AND branch = $5",
            )
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(sync_type.as_str())
            .bind(repository.as_key())
            .bind(branch)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The commit a watched branch was last synced at, by whichever replica checked it.
    pub async fn synced_head(
        &self,
        tenant: &Tenant,
        sync_type: SyncType,
        repository: &RepositoryKey,
        branch: &str,
    ) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT synced_sha FROM watched_branches WHERE account_id = $1 AND region = $2 AND sync_type = $3 \
             AND repository_key = $4 AND branch = $5",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(sync_type.as_str())
        .bind(repository.as_key())
        .bind(branch)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .map(|r| opt_text(&r, "synced_sha"))
            .transpose()?
            .flatten())
    }

    /// The sync configurations that watch one branch of a link.
    pub async fn sync_configurations_on(
        &self,
        tenant: &Tenant,
        link_id: &str,
        branch: &str,
    ) -> Result<Vec<gitsync_model::SyncConfiguration>> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .list_sync_configurations(tenant, link_id, after.as_deref(), 500)
                .await?;
            out.extend(page.items.into_iter().filter(|c| c.branch == branch));
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(out),
            }
        }
    }

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
        tx.commit().await?;
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
        tx.commit().await?;
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
        .bind(&claim.tenant.account_id)
        .bind(&claim.tenant.region)
        .bind(claim.sync_type.as_str())
        .bind(claim.target.key())
        .bind(claim.epoch)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(lease_lost(&claim.target.key()));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Starts the resource sync of a claimed target at its desired revision: closes an attempt a
    /// stopped worker left behind, records the new attempt with its first events, and marks the
    /// desired commit attempted. Returns the new attempt's id.
    pub async fn begin_resource_attempt(
        &self,
        claim: &ClaimedTarget,
        target: &SyncTarget,
        events: &[SyncEvent],
    ) -> Result<i64> {
        let mut tx = self.write_tx().await?;
        let fence = sqlx::query(
            "SELECT lease_epoch FROM sync_targets WHERE account_id = $1 AND region = $2 AND sync_type = $3 AND target_key = $4",
        )
        .bind(&claim.tenant.account_id)
        .bind(&claim.tenant.region)
        .bind(claim.sync_type.as_str())
        .bind(claim.target.key())
        .fetch_one(&mut *tx)
        .await?;
        if int(&fence, "lease_epoch")? != claim.epoch {
            return Err(lease_lost(&claim.target.key()));
        }
        let now = Timestamp::now();
        if let Some(abandoned) = claim.abandoned_attempt_id {
            insert_event(&mut tx, "resource_sync_events", abandoned, &SyncEvent {
                event_type: EventType::Abandoned.as_str().into(),
                event: "The worker running this attempt stopped before it finished; a new attempt takes over".into(),
                time: now,
                external_id: None,
            })
            .await?;
            let closed = sqlx::query("UPDATE resource_sync_attempts SET status = $1, finished_at = $2 WHERE attempt_id = $3 AND finished_at IS NULL")
                .bind(ResourceSyncStatus::Failed.as_str())
                .bind(now.millis())
                .bind(abandoned)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if closed > 0 {
                // The abandoned attempt's end is a status change like any other.
                let row = sqlx::query(
                    "SELECT target, target_revision FROM resource_sync_attempts WHERE attempt_id = $1",
                )
                .bind(abandoned)
                .fetch_one(&mut *tx)
                .await?;
                let change = gitsync_model::notification::ResourceSyncStatusChange {
                    tenant: &claim.tenant,
                    sync_type: claim.sync_type,
                    sync_target: &text(&row, "target")?,
                    revision: &revision_json(&text(&row, "target_revision")?)?,
                    status: ResourceSyncStatus::Failed,
                    previous: Some(ResourceSyncStatus::InProgress),
                    time: now,
                };
                crate::outbox::notify(&mut tx, &claim.tenant, &change.message()).await?;
            }
        }
        let previous = sqlx::query(
            "SELECT status FROM resource_sync_attempts WHERE account_id = $1 AND region = $2 AND sync_type = $3 AND target_key = $4 \
             ORDER BY attempt_id DESC LIMIT 1",
        )
        .bind(&claim.tenant.account_id)
        .bind(&claim.tenant.region)
        .bind(claim.sync_type.as_str())
        .bind(claim.target.key())
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| parsed(&r, "status", ResourceSyncStatus::parse))
        .transpose()?;
        let initial = claim
            .applied
            .clone()
            .unwrap_or_else(|| claim.desired.clone());
        let row = sqlx::query(
            "INSERT INTO resource_sync_attempts (account_id, region, sync_type, target_key, target, status, initial_revision, target_revision, started_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING attempt_id",
        )
        .bind(&claim.tenant.account_id)
        .bind(&claim.tenant.region)
        .bind(claim.sync_type.as_str())
        .bind(claim.target.key())
        .bind(target.display_name())
        .bind(ResourceSyncStatus::InProgress.as_str())
        .bind(serde_json::to_string(&initial).map_err(StoreError::corrupt)?)
        .bind(serde_json::to_string(&claim.desired).map_err(StoreError::corrupt)?)
        .bind(now.millis())
        .fetch_one(&mut *tx)
        .await?;
        let attempt_id: i64 = row.try_get(0)?;
        insert_events(
            &mut tx,
            "resource_sync_events",
            attempt_id,
            events,
            self.limits.events_per_attempt,
        )
        .await?;
        sqlx::query(
            "UPDATE sync_targets SET running_attempt_id = $1, attempted_sha = $2, superseded = NULL \
             WHERE account_id = $3 AND region = $4 AND sync_type = $5 AND target_key = $6",
        )
        .bind(attempt_id)
        .bind(&claim.desired.sha)
        .bind(&claim.tenant.account_id)
        .bind(&claim.tenant.region)
        .bind(claim.sync_type.as_str())
        .bind(claim.target.key())
        .execute(&mut *tx)
        .await?;
        notify_status_change(
            &mut tx,
            claim,
            &target.display_name(),
            ResourceSyncStatus::InProgress,
            previous,
        )
        .await?;
        tx.commit().await?;
        Ok(attempt_id)
    }

    /// Appends an event to a running attempt, if the lease is still held.
    pub async fn record_attempt_event(
        &self,
        claim: &ClaimedTarget,
        attempt_id: i64,
        event: &SyncEvent,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        self.check_fence(&mut tx, claim).await?;
        insert_event(&mut tx, "resource_sync_events", attempt_id, event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn check_fence(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        claim: &ClaimedTarget,
    ) -> Result<()> {
        // On PostgreSQL the row stays locked until the transaction ends, so no claim can move
        // the epoch between this check and the writes it guards (SQLite writers are serial).
        let sql = if self.backend == Backend::Postgres {
            "SELECT lease_epoch FROM sync_targets WHERE account_id = $1 AND region = $2 AND sync_type = $3 AND target_key = $4 FOR UPDATE"
        } else {
            "SELECT lease_epoch FROM sync_targets WHERE account_id = $1 AND region = $2 AND sync_type = $3 AND target_key = $4"
        };
        let epoch: i64 = sqlx::query(sql)
            .bind(&claim.tenant.account_id)
            .bind(&claim.tenant.region)
            .bind(claim.sync_type.as_str())
            .bind(claim.target.key())
            .fetch_one(&mut **tx)
            .await?
            .try_get(0)?;
        if epoch == claim.epoch {
            Ok(())
        } else {
            Err(lease_lost(&claim.target.key()))
        }
    }

    /// Ends a resource sync with no effect of its own here: its final events and status, the
    /// target's bookkeeping, under the fence.
    pub async fn finish_resource_attempt(
        &self,
        claim: &ClaimedTarget,
        attempt_id: i64,
        events: &[SyncEvent],
        result: &TargetResult,
    ) -> Result<()> {
        let closing = Closing {
            events: events.to_vec(),
            result: result.clone(),
            blocker: None,
        };
        self.close_resource_attempt(claim, attempt_id, &Effect::None, |_| closing)
            .await
            .map(|_| ())
    }

    /// Ends a resource sync in one transaction that checks the lease's fence: applies its
    /// effect, lets `decide` turn the effect's outcome into the attempt's ending, raises the
    /// ending's blocker, records the final events and status, and settles the target (applied
    /// revision, failure counts, retry time) and frees its lease. An effect that fails is
    /// rolled back alone (the attempt is still closed, as `decide` says). A stale worker gets
    /// `LeaseLost` and nothing is written.
    pub async fn close_resource_attempt(
        &self,
        claim: &ClaimedTarget,
        attempt_id: i64,
        effect: &Effect,
        decide: impl FnOnce(Result<Applied>) -> Closing,
    ) -> Result<Applied> {
        let mut tx = self.write_tx().await?;
        self.check_fence(&mut tx, claim).await?;
        // A savepoint: an effect that fails half-way leaves nothing behind.
        sqlx::query("SAVEPOINT effect").execute(&mut *tx).await?;
        let applied = self.apply_effect(&mut tx, claim, effect).await;
        let end = if applied.is_ok() {
            "RELEASE SAVEPOINT effect"
        } else {
            "ROLLBACK TO SAVEPOINT effect"
        };
        sqlx::query(end).execute(&mut *tx).await?;
        let kept = applied.as_ref().ok().cloned();
        let Closing {
            mut events,
            result,
            blocker,
        } = decide(applied);
        if let Some(b) = blocker {
            let raised = crate::status::insert_blocker(
                &mut tx,
                &claim.tenant,
                &b.scope,
                &b.reason,
                &b.contexts,
            )
            .await?;
            events.push(SyncEvent::new(
                EventType::Blocked,
                format!("Sync blocked: {}", b.reason),
                Some(&raised.id),
            ));
        }
        let events = &events[..];
        let result = &result;
        insert_events(
            &mut tx,
            "resource_sync_events",
            attempt_id,
            events,
            self.limits.events_per_attempt,
        )
        .await?;
        let now = Timestamp::now();
        let status = if result.succeeded {
            ResourceSyncStatus::Succeeded
        } else {
            ResourceSyncStatus::Failed
        };
        sqlx::query(
            "UPDATE resource_sync_attempts SET status = $1, finished_at = $2 WHERE attempt_id = $3",
        )
        .bind(status.as_str())
        .bind(now.millis())
        .bind(attempt_id)
        .execute(&mut *tx)
        .await?;
        let applied = result
            .succeeded
            .then(|| serde_json::to_string(&claim.desired).unwrap_or_default());
        // A transient failure keeps the commit un-attempted so it is retried at `retry_at`.
        let attempted = if result.retry_at.is_some() {
            None
        } else {
            Some(claim.desired.sha.clone())
        };
        sqlx::query(
            "UPDATE sync_targets SET applied_revision = COALESCE($1, applied_revision), failures = $2, next_attempt_at = $3, \
             attempted_sha = $4, running_attempt_id = NULL, lease_owner = NULL, lease_expires_at = NULL, \
             guard_lifted = CASE WHEN $1 IS NULL THEN guard_lifted ELSE 0 END, \
             deployed_sha = COALESCE($10, deployed_sha), deploy_failures = $11, \
             failed_sha = CASE WHEN $2 = 0 THEN NULL ELSE $12 END \
             WHERE account_id = $5 AND region = $6 AND sync_type = $7 AND target_key = $8 AND lease_epoch = $9",
        )
        .bind(applied)
        .bind(result.failures)
        .bind(result.retry_at.map(|t| t.millis()).unwrap_or(0))
        .bind(attempted)
        .bind(&claim.tenant.account_id)
        .bind(&claim.tenant.region)
        .bind(claim.sync_type.as_str())
        .bind(claim.target.key())
        .bind(claim.epoch)
        .bind((result.succeeded && result.deployed).then(|| claim.desired.sha.clone()))
        .bind(result.deploy_failures)
        .bind(&claim.desired.sha)
        .execute(&mut *tx)
        .await?;
        // Named as the attempt names it (the stack, `template:major`, the instance).
        let target: String =
            sqlx::query("SELECT target FROM resource_sync_attempts WHERE attempt_id = $1")
                .bind(attempt_id)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
        notify_status_change(
            &mut tx,
            claim,
            &target,
            status,
            Some(ResourceSyncStatus::InProgress),
        )
        .await?;
        tx.commit().await?;
        Ok(kept.unwrap_or(Applied::Nothing))
    }

    async fn apply_effect(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        claim: &ClaimedTarget,
        effect: &Effect,
    ) -> Result<Applied> {
        match effect {
            Effect::None => Ok(Applied::Nothing),
            Effect::RegisterTemplateVersion {
                template_type,
                name,
                version,
            } => {
                if let Some(commit) = &version.source_commit
                    && let Some(existing) = crate::templates::version_from_commit(
                        &mut **tx,
                        &claim.tenant,
                        *template_type,
                        name,
                        version.major,
                        commit,
                    )
                    .await?
                {
                    return Ok(Applied::AlreadyRegistered(existing));
                }
                self.register_template_version_in(tx, &claim.tenant, *template_type, name, version)
                    .await
                    .map(Applied::Registered)
            }
            Effect::DeployInstance {
                service,
                instance,
                deployment,
            } => crate::services::deploy_instance_in(
                tx,
                self.backend == Backend::Postgres,
                &claim.tenant,
                service,
                instance,
                deployment,
                crate::services::InstanceWrite::CreateOrUpdate,
                &[],
                self.limits.tags_per_resource,
            )
            .await
            .map(|d| Applied::Deployed(Box::new(d))),
        }
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
        .bind(&claim.tenant.account_id)
        .bind(&claim.tenant.region)
        .bind(claim.sync_type.as_str())
        .bind(claim.target.key())
        .bind(claim.epoch)
        .bind(i64::from(how == Release::Settle))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
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
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    // ----- webhooks -----

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
        tx.commit().await?;
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
        tx.commit().await?;
        Ok(row.try_get(0)?)
    }

    /// Deletes webhook delivery records received before `before`; answers how many.
    pub async fn prune_webhook_deliveries(&self, before: Timestamp) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("DELETE FROM webhook_deliveries WHERE received_at < $1")
            .bind(before.millis())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }
}

/// Appends an attempt's events, at most `max` in all: past it, the events that fit are kept and
/// the last one says how many were left out (a repository can make a deployment report any
/// number of problems; the record of it stays small).
pub(crate) async fn insert_events(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    table: &'static str,
    attempt_id: i64,
    events: &[SyncEvent],
    max: u32,
) -> Result<()> {
    let count_sql: &'static str = match table {
        "resource_sync_events" => "SELECT COUNT(*) FROM resource_sync_events WHERE attempt_id = $1",
        _ => "SELECT COUNT(*) FROM repository_sync_events WHERE attempt_id = $1",
    };
    let existing: i64 = sqlx::query(count_sql)
        .bind(attempt_id)
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
    let room = (i64::from(max.max(1)) - existing).max(0) as usize;
    if events.len() <= room {
        for event in events {
            insert_event(tx, table, attempt_id, event).await?;
        }
        return Ok(());
    }
    let kept = room.saturating_sub(1);
    for event in &events[..kept] {
        insert_event(tx, table, attempt_id, event).await?;
    }
    let left_out = events.len() - kept;
    let summary = SyncEvent {
        event_type: EventType::EventsLeftOut.as_str().into(),
        event: format!(
            "{left_out} more event(s) of this attempt were left out: an attempt records at most {max} (limit events_per_attempt); the first was: {}",
            events[kept].event.chars().take(500).collect::<String>()
        ),
        time: events[events.len() - 1].time,
        external_id: None,
    };
    insert_event(tx, table, attempt_id, &summary).await
}

pub(crate) async fn insert_event(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    table: &'static str,
    attempt_id: i64,
    event: &SyncEvent,
) -> Result<()> {
    let sql: &'static str = match table {
        "resource_sync_events" => {
            "INSERT INTO resource_sync_events (attempt_id, seq, event_type, event, time, external_id) \
             VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM resource_sync_events WHERE attempt_id = $1), $2, $3, $4, $5)"
        }
        _ => {
            "INSERT INTO repository_sync_events (attempt_id, seq, event_type, event, time, external_id) \
             VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM repository_sync_events WHERE attempt_id = $1), $2, $3, $4, $5)"
        }
    };
    sqlx::query(sql)
        .bind(attempt_id)
        .bind(&event.event_type)
        .bind(&event.event)
        .bind(event.time.millis())
        .bind(&event.external_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
