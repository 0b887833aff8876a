//! Watched branches: one row per (tenant, sync type, repository, branch) that a configuration
//! watches, kept in step with the configurations in their own transactions, and claimed for a
//! branch check under a lease with a fencing epoch. Webhooks and `gitsync sync` make them due.
//!
//! Leases use the database clock (`Store::now`, epoch milliseconds) and are claimed with a
//! conditional `UPDATE`: only one worker can move `lease_epoch` from the value it read, so at most
//! one holds a lease; every later write of the holder names that epoch and does nothing (and
//! says so) once another worker has taken over.

use crate::attempts::insert_event;
use crate::rows::lease_lost;
use crate::rows::{BindKey, int, opt_int, opt_text, parsed, text};
use crate::sources::{LINK_SOURCE_COLUMNS, LINK_SOURCE_JOINS, LinkSource};
use crate::status::RepositoryKey;
use crate::{Backend, Result, Store};
use gitsync_model::{
    EventType, ProtonProvider, RepositorySyncStatus, SyncEvent, SyncType, Tenant, Timestamp,
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
    /// Whether a stack sync on this branch previews its pull requests (read with the claim).
    pub previews_pull_requests: bool,
    /// Where a link's repository lives, read for the whole claimed batch at once (`None`: the
    /// check reads it, and says why when it cannot).
    pub link_source: Option<LinkSource>,
}

/// How a branch check ended, to schedule the next one.
#[derive(Debug, Clone)]
pub struct BranchCheckResult {
    pub remote_sha: Option<String>,
    pub synced_sha: Option<String>,
    pub failures: i64,
    pub last_error: Option<String>,
    /// When the next check is due, from the database's clock at the check's end.
    pub next_check_in: std::time::Duration,
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
        let link_id = match RepositoryKey::parse(repository_key) {
            RepositoryKey::Link(link_id) => Some(link_id),
            RepositoryKey::Proton { .. } => None,
        };
        sqlx::query(
            "INSERT INTO watched_branches (account_id, region, sync_type, repository_key, link_id, branch, next_check_at, failures, lease_epoch) \
             VALUES ($1, $2, $3, $4, $5, $6, 0, 0, 0)",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(sync_type)
        .bind(repository_key)
        .bind(link_id)
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

impl Store {
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
        self.commit(tx).await?;
        Ok(())
    }

    /// Makes every watched branch due now (at start-up: webhooks are hints, not a ledger).
    pub async fn check_all_branches_now(&self) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("UPDATE watched_branches SET next_check_at = 0")
            .execute(&mut *tx)
            .await?;
        self.commit(tx).await?;
        Ok(done.rows_affected())
    }

    /// Claims up to `limit` due branches whose lease is free, in one statement: the claim of an
    /// idle engine's many unchanged checks costs one write per batch, not one per branch. A
    /// repository sync that a stopped worker left INITIATED or IN_PROGRESS on a claimed branch
    /// is closed as ABANDONED here, so that no attempt stays in flight forever.
    pub async fn claim_due_branches(
        &self,
        owner: &str,
        now: Timestamp,
        ttl_ms: i64,
        limit: usize,
    ) -> Result<Vec<ClaimedBranch>> {
        // Which rows: the due ones, oldest first. PostgreSQL replicas claiming at once skip rows
        // another is locking instead of queueing on them; SQLite's one writer needs no lock.
        let due = "FROM watched_branches WHERE next_check_at <= $3 AND (lease_owner IS NULL OR lease_expires_at < $3) \
             ORDER BY next_check_at LIMIT $4";
        let pick = match self.backend {
            Backend::Sqlite => format!("rowid IN (SELECT rowid {due})"),
            Backend::Postgres => format!(
                "(account_id, region, sync_type, repository_key, branch) IN \
                 (SELECT account_id, region, sync_type, repository_key, branch {due} FOR UPDATE SKIP LOCKED) \
                 AND next_check_at <= $3 AND (lease_owner IS NULL OR lease_expires_at < $3)"
            ),
        };
        // While checked, a branch is not due; a trigger during the check makes it due again
        // (next_check_at = 0), which `finish_branch_check` keeps. The claim also says whether
        // a repository sync is left unfinished (the rare case that needs a transaction) and
        // whether the branch's stacks preview pull requests (read here, not once per check).
        let claim = format!(
            "UPDATE watched_branches SET lease_owner = $1, lease_expires_at = $2, next_check_at = $2, lease_epoch = lease_epoch + 1 \
             WHERE {pick} \
             RETURNING account_id, region, sync_type, repository_key, branch, lease_epoch, synced_sha, failures, queued_attempt_id, \
             (SELECT COUNT(*) FROM repository_sync_attempts a WHERE a.account_id = watched_branches.account_id \
               AND a.region = watched_branches.region AND a.sync_type = watched_branches.sync_type \
               AND a.repository_key = watched_branches.repository_key AND a.branch = watched_branches.branch \
               AND a.status IN ('INITIATED', 'IN_PROGRESS')) AS unfinished, \
             (SELECT COUNT(*) FROM sync_configurations c WHERE c.account_id = watched_branches.account_id \
               AND c.region = watched_branches.region AND watched_branches.sync_type = 'CFN_STACK_SYNC' \
               AND c.link_id = watched_branches.link_id AND c.branch = watched_branches.branch \
               AND c.pull_request_comment = 'ENABLED') AS previews"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(claim))
            .bind(owner)
            .bind(now.millis() + ttl_ms)
            .bind(now.millis())
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        let mut claims = Vec::with_capacity(rows.len());
        for row in &rows {
            let claim = ClaimedBranch {
                key: branch_from(row)?,
                epoch: int(row, "lease_epoch")?,
                synced_sha: opt_text(row, "synced_sha")?,
                failures: int(row, "failures")?,
                queued_attempt_id: opt_int(row, "queued_attempt_id")?,
                previews_pull_requests: int(row, "previews")? > 0,
                link_source: None,
            };
            if int(row, "unfinished")? > 0 {
                self.close_unfinished_repository_syncs(&claim, now).await?;
            }
            claims.push(claim);
        }
        if claims
            .iter()
            .any(|c| matches!(c.key.repository, RepositoryKey::Link(_)))
        {
            self.read_link_sources(owner, now.millis() + ttl_ms, &mut claims)
                .await;
        }
        Ok(claims)
    }

    /// Reads the link sources of one claimed batch in one statement (its rows are those leased
    /// to `owner` until `until`). A source that cannot be read here is left for the check to
    /// read, which reports why; so is every source if the statement fails.
    async fn read_link_sources(&self, owner: &str, until: i64, claims: &mut [ClaimedBranch]) {
        let sql = format!(
            "SELECT w.account_id, w.region, w.sync_type, w.repository_key, w.branch, {LINK_SOURCE_COLUMNS} \
             FROM watched_branches w \
             JOIN repository_links l ON l.account_id = w.account_id AND l.region = w.region \
               AND l.link_id = w.link_id {LINK_SOURCE_JOINS} \
             WHERE w.next_check_at = $1 AND w.lease_owner = $2"
        );
        let rows = match sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(until)
            .bind(owner)
            .fetch_all(&self.pool)
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the claimed branches' repositories at once");
                return;
            }
        };
        let mut sources: std::collections::HashMap<BranchKey, LinkSource> = rows
            .iter()
            .filter_map(|row| Some((branch_from(row).ok()?, self.link_source_from(row).ok()?)))
            .collect();
        for claim in claims {
            claim.link_source = sources.remove(&claim.key);
        }
    }

    /// Closes the repository syncs of a just claimed branch that the worker before left
    /// INITIATED or IN_PROGRESS (it stopped, or lost its lease).
    async fn close_unfinished_repository_syncs(
        &self,
        claim: &ClaimedBranch,
        now: Timestamp,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let orphans = sqlx::query(
            "SELECT attempt_id, status FROM repository_sync_attempts WHERE account_id = $1 AND region = $2 AND sync_type = $3 \
             AND repository_key = $4 AND branch = $5 AND status IN ('INITIATED', 'IN_PROGRESS')",
        )
        .bind_branch(&claim.key)
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
            let previous = parsed(&orphan, "status", RepositorySyncStatus::parse)?;
            sqlx::query("UPDATE repository_sync_attempts SET status = 'FAILED', finished_at = $1 WHERE attempt_id = $2")
                .bind(now.millis())
                .bind(id)
                .execute(&mut *tx)
                .await?;
            crate::status::notify_repository_change(
                &mut tx,
                id,
                RepositorySyncStatus::Failed,
                Some(previous),
            )
            .await?;
        }
        self.commit(tx).await?;
        Ok(())
    }

    /// Takes the QUEUED repository sync waiting on a branch, if any (it becomes the current one).
    pub async fn take_queued_attempt(&self, claim: &ClaimedBranch) -> Result<Option<i64>> {
        const QUEUED: &str = "SELECT queued_attempt_id FROM watched_branches \
             WHERE account_id = $1 AND region = $2 AND sync_type = $3 AND repository_key = $4 AND branch = $5 AND lease_epoch = $6";
        // No row at this epoch: the lease was lost, and the check's own writes are refused.
        let queued_id = |row: Option<sqlx::any::AnyRow>| -> Result<Option<i64>> {
            Ok(row
                .map(|r| opt_int(&r, "queued_attempt_id"))
                .transpose()?
                .flatten())
        };
        // Most checks find nothing queued: one read says so, without a write transaction. A sync
        // queued after that read also made the branch due (next_check_at = 0, which
        // `finish_branch_check` keeps), so the next check takes it.
        let row = sqlx::query(QUEUED)
            .bind_branch(&claim.key)
            .bind(claim.epoch)
            .fetch_optional(&self.pool)
            .await?;
        if queued_id(row)?.is_none() {
            return Ok(None);
        }
        // Read and cleared in one transaction (the row locked on PostgreSQL; SQLite's write lock
        // is taken up front): a sync queued by a webhook after the claim, while the remote was
        // listed, is taken here too, never cleared unseen and left QUEUED.
        let mut tx = self.write_tx().await?;
        let lock = if self.backend == Backend::Postgres {
            " FOR UPDATE"
        } else {
            ""
        };
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{QUEUED}{lock}")))
            .bind_branch(&claim.key)
            .bind(claim.epoch)
            .fetch_optional(&mut *tx)
            .await?;
        let queued = queued_id(row)?;
        if queued.is_some() {
            sqlx::query(
                "UPDATE watched_branches SET queued_attempt_id = NULL \
                 WHERE account_id = $1 AND region = $2 AND sync_type = $3 AND repository_key = $4 AND branch = $5 AND lease_epoch = $6",
            )
            .bind_branch(&claim.key)
            .bind(claim.epoch)
            .execute(&mut *tx)
            .await?;
        }
        self.commit(tx).await?;
        Ok(queued)
    }

    /// Ends a branch check: records what was seen, schedules the next check, frees the lease.
    pub async fn finish_branch_check(
        &self,
        claim: &ClaimedBranch,
        result: &BranchCheckResult,
    ) -> Result<()> {
        // One statement, so no transaction around it: it is atomic on its own. A trigger or
        // configuration change during the check (next_check_at = 0) means the branch must be
        // evaluated again, even at the same head.
        let finish = format!(
            "UPDATE watched_branches SET remote_sha = COALESCE($1, remote_sha), \
             synced_sha = CASE WHEN next_check_at = 0 THEN NULL ELSE $2 END, failures = $3, last_error = $4, \
             next_check_at = CASE WHEN next_check_at = 0 THEN 0 ELSE {} + $5 END, lease_owner = NULL, lease_expires_at = NULL \
             WHERE account_id = $6 AND region = $7 AND sync_type = $8 AND repository_key = $9 AND branch = $10 AND lease_epoch = $11",
            self.clock()
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(finish))
            .bind(&result.remote_sha)
            .bind(&result.synced_sha)
            .bind(result.failures)
            .bind(&result.last_error)
            .bind(result.next_check_in.as_millis() as i64)
            .bind_branch(&claim.key)
            .bind(claim.epoch)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(lease_lost(&format!("branch {}", claim.key.branch)));
        }
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
        .bind_branch(&claim.key)
        .bind(claim.epoch)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(lease_lost(&format!("branch {}", claim.key.branch)));
        }
        self.commit(tx).await?;
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
        .bind_branch(&claim.key)
        .bind(claim.epoch)
        .execute(&mut *tx)
        .await?;
        self.commit(tx).await?;
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
                let previous = crate::status::latest_repository_status(
                    &mut tx,
                    tenant,
                    &sync_type,
                    &repository_key,
                    branch,
                )
                .await?;
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
                let id = id.try_get::<i64, _>(0)?;
                crate::status::notify_repository_change(
                    &mut tx,
                    id,
                    RepositorySyncStatus::Queued,
                    previous,
                )
                .await?;
                queued = Some(id);
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
        self.commit(tx).await?;
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
        self.commit(tx).await?;
        Ok(())
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
        self.commit(tx).await?;
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
}
