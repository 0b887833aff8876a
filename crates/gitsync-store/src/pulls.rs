//! Pull requests of watched repositories and their previews (`PullRequestComment`): the open
//! pull requests a branch check reads from the host, claimed by the engine under leases while
//! their head was not previewed, and settled in one fenced transaction that records what each
//! stack's preview found and writes its comment to the outbox. Previews never touch a stack's
//! sync: its targets, attempts, statuses and blockers are not read or written here.

use crate::rows::{int, text};
use crate::{Backend, Result, Store, StoreError};
use gitsync_model::githost::{OpenPullRequest, PullRequestComment};
use gitsync_model::{Tenant, Timestamp};

/// The deliverer of pull request previews (message: a [`PullRequestComment`]; `destination`:
/// the link, the pull request and the stack, so one stack's comments on one pull request are
/// posted in order).
pub const PR_COMMENT_DELIVERER: &str = "pr-comment";

/// A pull request claimed for previewing its head.
#[derive(Debug, Clone)]
pub struct ClaimedPullRequest {
    pub tenant: Tenant,
    pub link_id: String,
    pub number: u64,
    pub base_branch: String,
    pub head_sha: String,
    pub head_ref: String,
    pub from_fork: bool,
    pub failures: i64,
    pub epoch: i64,
}

/// What one stack's preview of a pull request's head found.
#[derive(Debug, Clone)]
pub struct StackPreview {
    pub resource_name: String,
    /// One line for `gitsync status`.
    pub summary: String,
    /// The comment to post; `None` when the pull request changes nothing the stack watches.
    pub comment: Option<PullRequestComment>,
}

/// How previewing a pull request's head ended.
#[derive(Debug, Clone)]
pub enum PreviewsDone {
    /// Every stack was previewed (or had nothing to preview).
    Done(Vec<StackPreview>),
    /// Try the whole head again at `at` (the fetch or CloudFormation failed for now).
    Retry { error: String, at: Timestamp },
}

/// A stack's last preview of a pull request, for `gitsync status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewRecord {
    pub number: u64,
    pub head_sha: String,
    pub summary: String,
    pub previewed_at: Timestamp,
    /// The pull request is still open.
    pub open: bool,
}

/// The error of a worker whose lease on a pull request was taken.
fn lease_lost(claim: &ClaimedPullRequest) -> StoreError {
    crate::rows::lease_lost(&format!(
        "pull request {} of link {}",
        claim.number, claim.link_id
    ))
}

fn pull_number(row: &sqlx::any::AnyRow) -> Result<u64> {
    u64::try_from(int(row, "number")?).map_err(StoreError::corrupt)
}

impl Store {
    /// Records the pull requests a host lists as open onto a link's branch: new ones are added
    /// and moved heads updated (both due at once); those no longer listed are closed and get
    /// nothing more. Answers how many are due.
    pub async fn record_open_pull_requests(
        &self,
        tenant: &Tenant,
        link_id: &str,
        base_branch: &str,
        pulls: &[OpenPullRequest],
    ) -> Result<usize> {
        let now = Timestamp::now().millis();
        let mut tx = self.write_tx().await?;
        let mut due = 0;
        for pull in pulls {
            let number = i64::try_from(pull.number).map_err(StoreError::corrupt)?;
            let moved = sqlx::query(
                "INSERT INTO pull_requests (account_id, region, link_id, number, base_branch, head_sha, head_ref, from_fork, url, open, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10) \
                 ON CONFLICT (account_id, region, link_id, number) DO UPDATE SET \
                   base_branch = excluded.base_branch, head_sha = excluded.head_sha, head_ref = excluded.head_ref, \
                   from_fork = excluded.from_fork, url = excluded.url, open = 1, updated_at = excluded.updated_at, \
                   failures = CASE WHEN pull_requests.head_sha = excluded.head_sha THEN pull_requests.failures ELSE 0 END, \
                   next_attempt_at = CASE WHEN pull_requests.head_sha = excluded.head_sha THEN pull_requests.next_attempt_at ELSE 0 END \
                 WHERE pull_requests.head_sha <> excluded.head_sha OR pull_requests.open = 0 \
                   OR pull_requests.base_branch <> excluded.base_branch",
            )
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(link_id)
            .bind(number)
            .bind(&pull.base_branch)
            .bind(&pull.head_sha)
            .bind(&pull.head_ref)
            .bind(i64::from(pull.from_fork))
            .bind(&pull.url)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            due += moved as usize;
        }
        let open: Vec<i64> = pulls
            .iter()
            .filter_map(|p| i64::try_from(p.number).ok())
            .collect();
        // Closed (or merged, or retargeted): those of this branch the host no longer lists.
        let listed = sqlx::query(
            "SELECT number FROM pull_requests WHERE account_id = $1 AND region = $2 AND link_id = $3 AND base_branch = $4 AND open = 1",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(link_id)
        .bind(base_branch)
        .fetch_all(&mut *tx)
        .await?;
        for row in listed {
            let number = int(&row, "number")?;
            if !open.contains(&number) {
                sqlx::query(
                    "UPDATE pull_requests SET open = 0, updated_at = $5 WHERE account_id = $1 AND region = $2 AND link_id = $3 AND number = $4",
                )
                .bind(&tenant.account_id)
                .bind(&tenant.region)
                .bind(link_id)
                .bind(number)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
        }
        self.commit(tx).await?;
        Ok(due)
    }

    /// Open pull requests whose head was not previewed, not held by a live lease.
    pub async fn due_pull_requests(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Tenant, String, u64)>> {
        let rows = sqlx::query(
            "SELECT account_id, region, link_id, number FROM pull_requests \
             WHERE open = 1 AND (previewed_sha IS NULL OR previewed_sha <> head_sha) AND next_attempt_at <= $1 \
             AND (lease_owner IS NULL OR lease_expires_at < $1) ORDER BY next_attempt_at, updated_at LIMIT $2",
        )
        .bind(now.millis())
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    Tenant::new(text(r, "account_id")?, text(r, "region")?),
                    text(r, "link_id")?,
                    pull_number(r)?,
                ))
            })
            .collect()
    }

    /// Claims a due pull request for `owner` until `now + ttl_ms`; `None` when another worker
    /// holds it or it is no longer due.
    pub async fn claim_pull_request(
        &self,
        tenant: &Tenant,
        link_id: &str,
        number: u64,
        owner: &str,
        now: Timestamp,
        ttl_ms: i64,
    ) -> Result<Option<ClaimedPullRequest>> {
        let n = i64::try_from(number).map_err(StoreError::corrupt)?;
        let mut tx = self.write_tx().await?;
        if self.backend == Backend::Postgres {
            let free = sqlx::query(
                "SELECT 1 FROM pull_requests WHERE account_id = $1 AND region = $2 AND link_id = $3 AND number = $4 \
                 AND (lease_owner IS NULL OR lease_expires_at < $5) FOR UPDATE SKIP LOCKED",
            )
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(link_id)
            .bind(n)
            .bind(now.millis())
            .fetch_optional(&mut *tx)
            .await?;
            if free.is_none() {
                return Ok(None);
            }
        }
        let row = sqlx::query(
            "UPDATE pull_requests SET lease_owner = $1, lease_expires_at = $2, lease_epoch = lease_epoch + 1 \
             WHERE account_id = $3 AND region = $4 AND link_id = $5 AND number = $6 AND open = 1 \
             AND (previewed_sha IS NULL OR previewed_sha <> head_sha) AND next_attempt_at <= $7 \
             AND (lease_owner IS NULL OR lease_expires_at < $7) \
             RETURNING lease_epoch, base_branch, head_sha, head_ref, from_fork, failures",
        )
        .bind(owner)
        .bind(now.millis() + ttl_ms)
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(link_id)
        .bind(n)
        .bind(now.millis())
        .fetch_optional(&mut *tx)
        .await?;
        self.commit(tx).await?;
        row.map(|r| {
            Ok(ClaimedPullRequest {
                tenant: tenant.clone(),
                link_id: link_id.to_string(),
                number,
                base_branch: text(&r, "base_branch")?,
                head_sha: text(&r, "head_sha")?,
                head_ref: text(&r, "head_ref")?,
                from_fork: int(&r, "from_fork")? != 0,
                failures: int(&r, "failures")?,
                epoch: int(&r, "lease_epoch")?,
            })
        })
        .transpose()
    }

    /// Keeps a claimed pull request's lease; `LeaseLost` once another worker took it.
    pub async fn renew_pull_request_lease(
        &self,
        claim: &ClaimedPullRequest,
        now: Timestamp,
        ttl_ms: i64,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE pull_requests SET lease_expires_at = $1 WHERE account_id = $2 AND region = $3 AND link_id = $4 AND number = $5 AND lease_epoch = $6",
        )
        .bind(now.millis() + ttl_ms)
        .bind(&claim.tenant.account_id)
        .bind(&claim.tenant.region)
        .bind(&claim.link_id)
        .bind(claim.number as i64)
        .bind(claim.epoch)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        self.commit(tx).await?;
        if done == 0 {
            return Err(lease_lost(claim));
        }
        Ok(())
    }

    /// Settles a claimed pull request under its fence. Previews of a head that is still the
    /// pull request's head are recorded and their comments written to the outbox; a head that
    /// moved meanwhile is previewed again (newest head wins: nothing is posted for the old one).
    pub async fn finish_pull_request(
        &self,
        claim: &ClaimedPullRequest,
        done: &PreviewsDone,
    ) -> Result<()> {
        let now = Timestamp::now().millis();
        let (tenant, n) = (&claim.tenant, claim.number as i64);
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(
            "SELECT head_sha, open, lease_epoch FROM pull_requests WHERE account_id = $1 AND region = $2 AND link_id = $3 AND number = $4",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(&claim.link_id)
        .bind(n)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(()) };
        if int(&row, "lease_epoch")? != claim.epoch {
            return Err(lease_lost(claim));
        }
        let current = text(&row, "head_sha")? == claim.head_sha && int(&row, "open")? != 0;
        let settled;
        match done {
            PreviewsDone::Done(previews) => {
                if current {
                    for preview in previews {
                        sqlx::query(
                            "INSERT INTO pull_request_previews (account_id, region, resource_name, link_id, number, head_sha, summary, previewed_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                             ON CONFLICT (account_id, region, resource_name, link_id, number) DO UPDATE SET \
                               head_sha = excluded.head_sha, summary = excluded.summary, previewed_at = excluded.previewed_at",
                        )
                        .bind(&tenant.account_id)
                        .bind(&tenant.region)
                        .bind(&preview.resource_name)
                        .bind(&claim.link_id)
                        .bind(n)
                        .bind(&claim.head_sha)
                        .bind(&preview.summary)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                        if let Some(comment) = &preview.comment {
                            let destination = format!(
                                "{}/{}/{}",
                                claim.link_id, claim.number, preview.resource_name
                            );
                            crate::outbox::post(
                                &mut tx,
                                tenant,
                                PR_COMMENT_DELIVERER,
                                &destination,
                                comment,
                            )
                            .await?;
                        }
                    }
                }
                settled = sqlx::query(
                    "UPDATE pull_requests SET previewed_sha = $1, failures = 0, last_error = NULL, next_attempt_at = 0, \
                     lease_owner = NULL, lease_expires_at = NULL \
                     WHERE account_id = $2 AND region = $3 AND link_id = $4 AND number = $5 AND lease_epoch = $6",
                )
                .bind(&claim.head_sha)
                .bind(&tenant.account_id)
                .bind(&tenant.region)
                .bind(&claim.link_id)
                .bind(n)
                .bind(claim.epoch)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            PreviewsDone::Retry { error, at } => {
                settled = sqlx::query(
                    "UPDATE pull_requests SET failures = failures + 1, last_error = $1, next_attempt_at = $2, \
                     lease_owner = NULL, lease_expires_at = NULL \
                     WHERE account_id = $3 AND region = $4 AND link_id = $5 AND number = $6 AND lease_epoch = $7",
                )
                .bind(error.chars().take(1000).collect::<String>())
                .bind(at.millis())
                .bind(&tenant.account_id)
                .bind(&tenant.region)
                .bind(&claim.link_id)
                .bind(n)
                .bind(claim.epoch)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
        }
        // The writes above are kept only if the lease still fenced them (another worker may have
        // claimed the pull request since the check: then nothing of this preview is written).
        if settled == 0 {
            tx.rollback().await?;
            return Err(lease_lost(claim));
        }
        self.commit(tx).await?;
        Ok(())
    }

    /// Frees a claimed pull request without settling it (the server is stopping).
    pub async fn release_pull_request(&self, claim: &ClaimedPullRequest) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE pull_requests SET lease_owner = NULL, lease_expires_at = NULL \
             WHERE account_id = $1 AND region = $2 AND link_id = $3 AND number = $4 AND lease_epoch = $5",
        )
        .bind(&claim.tenant.account_id)
        .bind(&claim.tenant.region)
        .bind(&claim.link_id)
        .bind(claim.number as i64)
        .bind(claim.epoch)
        .execute(&mut *tx)
        .await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// A stack's last previews of pull requests, newest first (at most 20).
    pub async fn pull_request_previews(
        &self,
        tenant: &Tenant,
        resource_name: &str,
    ) -> Result<Vec<PreviewRecord>> {
        let rows = sqlx::query(
            "SELECT v.number, v.head_sha, v.summary, v.previewed_at, COALESCE(p.open, 0) AS open \
             FROM pull_request_previews v LEFT JOIN pull_requests p ON p.account_id = v.account_id \
               AND p.region = v.region AND p.link_id = v.link_id AND p.number = v.number \
             WHERE v.account_id = $1 AND v.region = $2 AND v.resource_name = $3 \
             ORDER BY v.previewed_at DESC LIMIT 20",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(resource_name)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PreviewRecord {
                    number: pull_number(r)?,
                    head_sha: text(r, "head_sha")?,
                    summary: text(r, "summary")?,
                    previewed_at: Timestamp(int(r, "previewed_at")?),
                    open: int(r, "open")? != 0,
                })
            })
            .collect()
    }

    /// Whether a stack previews pull requests from forks (off unless its owner opted in).
    pub async fn previews_forks(&self, tenant: &Tenant, resource_name: &str) -> Result<bool> {
        let row = sqlx::query(
            "SELECT preview_forks FROM sync_configurations WHERE account_id = $1 AND region = $2 AND resource_name = $3",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(resource_name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => int(&r, "preview_forks")? != 0,
            None => false,
        })
    }

    /// Opts a stack in or out of previewing pull requests from forks.
    pub async fn set_previews_forks(
        &self,
        tenant: &Tenant,
        resource_name: &str,
        allow: bool,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE sync_configurations SET preview_forks = $1 WHERE account_id = $2 AND region = $3 AND resource_name = $4",
        )
        .bind(i64::from(allow))
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(resource_name)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        self.commit(tx).await?;
        if done == 0 {
            return Err(StoreError::NotFound(format!(
                "No sync configuration of type CFN_STACK_SYNC exists for resource {resource_name}"
            )));
        }
        Ok(())
    }
}
