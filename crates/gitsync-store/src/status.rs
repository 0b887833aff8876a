//! Sync history: targets with their desired state, resource and repository sync attempts with
//! their ordered events, and blockers. The status operations read it; the engine writes it.

use crate::rows::{int, opt_int, opt_text, parsed, text};
use crate::{Result, Store, StoreError};
use gitsync_model::notification::{RepositorySyncStatusChange, SyncedRepository};
use gitsync_model::{
    BlockerScope, BlockerStatus, ProtonProvider, RepositorySyncAttempt, RepositorySyncDefinition,
    RepositorySyncStatus, ResourceSyncAttempt, ResourceSyncState, ResourceSyncStatus, Revision,
    SyncBlocker, SyncEvent, SyncTarget, SyncType, Tenant, Timestamp,
};
use sqlx::any::AnyRow;
use sqlx::{Any, Row};

/// Which repository a repository sync is for: a CodeConnections repository link, or a Proton
/// repository.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RepositoryKey {
    Link(String),
    Proton {
        provider: ProtonProvider,
        name: String,
    },
}

impl RepositoryKey {
    /// Reads back what [`RepositoryKey::as_key`] wrote; anything else is taken as a link id.
    pub fn parse(key: &str) -> RepositoryKey {
        if let Some(rest) = key.strip_prefix("proton:")
            && let Some((provider, name)) = rest.split_once(':')
            && let Some(provider) = ProtonProvider::parse(provider)
        {
            return RepositoryKey::Proton {
                provider,
                name: name.to_string(),
            };
        }
        RepositoryKey::Link(key.strip_prefix("link:").unwrap_or(key).to_string())
    }

    pub fn as_key(&self) -> String {
        match self {
            RepositoryKey::Link(id) => format!("link:{id}"),
            RepositoryKey::Proton { provider, name } => {
                format!("proton:{}:{name}", provider.as_str())
            }
        }
    }
}

/// For logs: the stored form, `link:<id>` or `proton:<PROVIDER>:<owner/repo>`.
impl std::fmt::Display for RepositoryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_key())
    }
}

/// What the engine records when it starts a resource sync.
#[derive(Debug, Clone)]
pub struct NewResourceAttempt {
    pub target: SyncTarget,
    pub status: ResourceSyncStatus,
    pub initial_revision: Revision,
    pub target_revision: Revision,
    pub started_at: Timestamp,
}

fn revision(row: &AnyRow, column: &str) -> Result<Revision> {
    serde_json::from_str(&text(row, column)?).map_err(StoreError::corrupt)
}

/// An attempt from its row (the columns of `resource_sync_attempts`), with its events.
fn attempt_from(row: &AnyRow, events: Vec<SyncEvent>) -> Result<ResourceSyncAttempt> {
    Ok(ResourceSyncAttempt {
        started_at: Timestamp(int(row, "started_at")?),
        status: parsed(row, "status", ResourceSyncStatus::parse)?,
        events,
        initial_revision: revision(row, "initial_revision")?,
        target_revision: revision(row, "target_revision")?,
        target: text(row, "target")?,
    })
}

fn event_from(row: &AnyRow) -> Result<SyncEvent> {
    Ok(SyncEvent {
        event_type: text(row, "event_type")?,
        event: text(row, "event")?,
        time: Timestamp(int(row, "time")?),
        external_id: opt_text(row, "external_id")?,
    })
}

fn blocker_from(row: &AnyRow) -> Result<SyncBlocker> {
    let contexts: Vec<(String, String)> =
        serde_json::from_str(&text(row, "contexts")?).map_err(StoreError::corrupt)?;
    Ok(SyncBlocker {
        id: text(row, "blocker_id")?,
        status: parsed(row, "status", BlockerStatus::parse)?,
        created_reason: text(row, "created_reason")?,
        created_at: Timestamp(int(row, "created_at")?),
        contexts,
        resolved_reason: opt_text(row, "resolved_reason")?,
        resolved_at: opt_int(row, "resolved_at")?.map(Timestamp),
    })
}

fn blocker_scope_from(row: &AnyRow) -> Result<BlockerScope> {
    Ok(BlockerScope {
        sync_type: parsed(row, "sync_type", SyncType::parse)?,
        resource_name: text(row, "resource_name")?,
        parent_resource_name: opt_text(row, "parent_resource_name")?,
    })
}

/// The repository behind a repository key, as status-change events name it; `None` once it was
/// deleted.
async fn synced_repository(
    tx: &mut sqlx::Transaction<'static, Any>,
    tenant: &Tenant,
    key: &RepositoryKey,
) -> Result<Option<SyncedRepository>> {
    Ok(match key {
        RepositoryKey::Link(link_id) => sqlx::query(
            "SELECT arn, connection_arn, owner_id, repository_name, provider_type FROM repository_links \
             WHERE account_id = $1 AND region = $2 AND link_id = $3",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(link_id)
        .fetch_optional(&mut **tx)
        .await?
        .map(|r| {
            Ok::<_, StoreError>(SyncedRepository {
                connection_arn: text(&r, "connection_arn")?,
                provider_type: text(&r, "provider_type")?,
                owner_id: text(&r, "owner_id")?,
                repository_name: text(&r, "repository_name")?,
                repository_arn: text(&r, "arn")?,
                repository_link_id: Some(link_id.clone()),
            })
        })
        .transpose()?,
        RepositoryKey::Proton { provider, name } => sqlx::query(
            "SELECT arn, connection_arn FROM proton_repositories WHERE account_id = $1 AND region = $2 AND provider = $3 AND name = $4",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(provider.as_str())
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?
        .map(|r| {
            let (owner, repository) = name.split_once('/').unwrap_or(("", name));
            Ok::<_, StoreError>(SyncedRepository {
                connection_arn: text(&r, "connection_arn")?,
                provider_type: provider.as_str().to_string(),
                owner_id: owner.to_string(),
                repository_name: repository.to_string(),
                repository_arn: text(&r, "arn")?,
                repository_link_id: None,
            })
        })
        .transpose()?,
    })
}

/// The status of a branch's newest repository sync, before a new one is recorded.
pub(crate) async fn latest_repository_status(
    tx: &mut sqlx::Transaction<'static, Any>,
    tenant: &Tenant,
    sync_type: &str,
    repository_key: &str,
    branch: &str,
) -> Result<Option<RepositorySyncStatus>> {
    sqlx::query(
        "SELECT status FROM repository_sync_attempts WHERE account_id = $1 AND region = $2 AND sync_type = $3 \
         AND repository_key = $4 AND branch = $5 ORDER BY attempt_id DESC LIMIT 1",
    )
    .bind(&tenant.account_id)
    .bind(&tenant.region)
    .bind(sync_type)
    .bind(repository_key)
    .bind(branch)
    .fetch_optional(&mut **tx)
    .await?
    .map(|r| parsed(&r, "status", RepositorySyncStatus::parse))
    .transpose()
}

/// Tells the tenant's notification targets that a repository sync's status moved to `status`
/// (through the outbox, in the caller's transaction). The commit is the newest one its events
/// name, if any yet.
pub(crate) async fn notify_repository_change(
    tx: &mut sqlx::Transaction<'static, Any>,
    attempt_id: i64,
    status: RepositorySyncStatus,
    previous: Option<RepositorySyncStatus>,
) -> Result<()> {
    let Some(row) = sqlx::query(
        "SELECT a.account_id, a.region, a.sync_type, a.repository_key, a.branch FROM repository_sync_attempts a \
         WHERE a.attempt_id = $1 AND EXISTS (SELECT 1 FROM notification_targets n \
         WHERE n.account_id = a.account_id AND n.region = a.region)",
    )
    .bind(attempt_id)
    .fetch_optional(&mut **tx)
    .await?
    else {
        // No target to tell (or no such attempt): nothing to write.
        return Ok(());
    };
    let tenant = Tenant::new(text(&row, "account_id")?, text(&row, "region")?);
    let key = RepositoryKey::parse(&text(&row, "repository_key")?);
    let Some(repository) = synced_repository(tx, &tenant, &key).await? else {
        return Ok(());
    };
    let commits = sqlx::query(
        "SELECT external_id FROM repository_sync_events WHERE attempt_id = $1 AND external_id IS NOT NULL ORDER BY seq DESC",
    )
    .bind(attempt_id)
    .fetch_all(&mut **tx)
    .await?;
    let mut commit = None;
    for r in &commits {
        let id = text(r, "external_id")?;
        if matches!(id.len(), 40 | 64) && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            commit = Some(id);
            break;
        }
    }
    let branch = text(&row, "branch")?;
    let change = RepositorySyncStatusChange {
        tenant: &tenant,
        sync_type: parsed(&row, "sync_type", SyncType::parse)?,
        repository: &repository,
        branch: &branch,
        commit: commit.as_deref(),
        status,
        previous,
        time: Timestamp::now(),
    };
    crate::outbox::notify(tx, &tenant, &change.message()).await
}

impl Store {
    async fn resource_events<'e, E: sqlx::Executor<'e, Database = Any>>(
        &self,
        executor: E,
        attempt_id: i64,
    ) -> Result<Vec<SyncEvent>> {
        let rows =
            sqlx::query("SELECT * FROM resource_sync_events WHERE attempt_id = $1 ORDER BY seq")
                .bind(attempt_id)
                .fetch_all(executor)
                .await?;
        rows.iter().map(event_from).collect()
    }

    pub(crate) async fn resource_attempt(&self, row: &AnyRow) -> Result<ResourceSyncAttempt> {
        let events = self
            .resource_events(&self.pool, int(row, "attempt_id")?)
            .await?;
        attempt_from(row, events)
    }

    /// Desired state, latest and latest successful attempt of a target; `None` before any attempt.
    ///
    /// One statement, so a status is one round trip and one snapshot: the rows of the (at most
    /// two) attempts, newest first, each joined with its events in order, and the desired state
    /// alongside. When the latest attempt succeeded, it is also the latest successful one.
    ///
    /// Served from the status cache while it is fresh ([`Store::with_status_cache`]).
    pub async fn resource_sync_state(
        &self,
        tenant: &Tenant,
        target: &SyncTarget,
    ) -> Result<Option<ResourceSyncState>> {
        let key = (
            tenant.account_id.clone(),
            tenant.region.clone(),
            target.sync_type().as_str(),
            target.key(),
        );
        if let Some(state) = self.status_cache.get(&key) {
            return Ok(Some(state));
        }
        let ticket = self.status_cache.ticket();
        let state = self.read_resource_sync_state(tenant, target).await?;
        if let Some(state) = &state {
            self.status_cache.put(key, state, ticket);
        }
        Ok(state)
    }

    /// [`Store::resource_sync_state`] from the database.
    async fn read_resource_sync_state(
        &self,
        tenant: &Tenant,
        target: &SyncTarget,
    ) -> Result<Option<ResourceSyncState>> {
        let rows = sqlx::query(
            "SELECT a.attempt_id, a.status, a.started_at, a.initial_revision, a.target_revision, a.target, \
                    e.event_type, e.event, e.time, e.external_id, \
                    (SELECT t.desired_revision FROM sync_targets t WHERE t.account_id = $1 AND t.region = $2 \
                       AND t.sync_type = $3 AND t.target_key = $4) AS desired_revision \
               FROM resource_sync_attempts a LEFT JOIN resource_sync_events e ON e.attempt_id = a.attempt_id \
              WHERE a.attempt_id IN ( \
                    (SELECT x.attempt_id FROM resource_sync_attempts x WHERE x.account_id = $1 AND x.region = $2 \
                       AND x.sync_type = $3 AND x.target_key = $4 ORDER BY x.attempt_id DESC LIMIT 1), \
                    (SELECT x.attempt_id FROM resource_sync_attempts x WHERE x.account_id = $1 AND x.region = $2 \
                       AND x.sync_type = $3 AND x.target_key = $4 AND x.status = $5 ORDER BY x.attempt_id DESC LIMIT 1)) \
              ORDER BY a.attempt_id DESC, e.seq",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(target.sync_type().as_str())
        .bind(target.key())
        .bind(ResourceSyncStatus::Succeeded.as_str())
        .fetch_all(&self.pool)
        .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let desired_state = match opt_text(first, "desired_revision")? {
            Some(json) => Some(serde_json::from_str(&json).map_err(StoreError::corrupt)?),
            None => None,
        };
        // The attempts in the order of their rows (newest first), each with its events.
        let mut attempts: Vec<(i64, ResourceSyncAttempt)> = Vec::with_capacity(2);
        for row in &rows {
            let id = int(row, "attempt_id")?;
            if attempts.last().is_none_or(|(last, _)| *last != id) {
                attempts.push((id, attempt_from(row, Vec::new())?));
            }
            // No event row joined (an attempt without events) leaves these NULL.
            if opt_text(row, "event_type")?.is_some() {
                let (_, attempt) = attempts.last_mut().expect("pushed above");
                attempt.events.push(event_from(row)?);
            }
        }
        let mut attempts = attempts.into_iter().map(|(_, a)| a);
        let latest_sync = attempts.next().expect("a row means an attempt");
        let latest_successful_sync = match attempts.next() {
            Some(successful) => Some(successful),
            None if latest_sync.status == ResourceSyncStatus::Succeeded => {
                Some(latest_sync.clone())
            }
            None => None,
        };
        Ok(Some(ResourceSyncState {
            desired_state,
            latest_sync,
            latest_successful_sync,
        }))
    }

    /// The newest repository sync of a branch, if any ran.
    pub async fn latest_repository_sync(
        &self,
        tenant: &Tenant,
        sync_type: SyncType,
        repository: &RepositoryKey,
        branch: &str,
    ) -> Result<Option<RepositorySyncAttempt>> {
        let row = sqlx::query(
            "SELECT * FROM repository_sync_attempts WHERE account_id = $1 AND region = $2 AND sync_type = $3 \
             AND repository_key = $4 AND branch = $5 ORDER BY attempt_id DESC LIMIT 1",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(sync_type.as_str())
        .bind(repository.as_key())
        .bind(branch)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let events =
            sqlx::query("SELECT * FROM repository_sync_events WHERE attempt_id = $1 ORDER BY seq")
                .bind(int(&row, "attempt_id")?)
                .fetch_all(&self.pool)
                .await?;
        Ok(Some(RepositorySyncAttempt {
            started_at: Timestamp(int(&row, "started_at")?),
            status: parsed(&row, "status", RepositorySyncStatus::parse)?,
            events: events.iter().map(event_from).collect::<Result<_>>()?,
        }))
    }

    /// The sync definitions of a repository: which targets sync from which branch and path.
    pub async fn repository_sync_definitions(
        &self,
        tenant: &Tenant,
        sync_type: SyncType,
        repository: &RepositoryKey,
    ) -> Result<Vec<RepositorySyncDefinition>> {
        if let (SyncType::CfnStackSync, RepositoryKey::Link(link_id)) = (sync_type, repository) {
            // A stack syncs from its deployment file: parent and target are both the stack.
            let rows = sqlx::query(
                "SELECT resource_name, branch, config_file FROM sync_configurations \
                 WHERE account_id = $1 AND region = $2 AND link_id = $3 AND sync_type = $4 ORDER BY resource_name",
            )
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(link_id)
            .bind(sync_type.as_str())
            .fetch_all(&self.pool)
            .await?;
            return rows
                .iter()
                .map(|r| {
                    Ok(RepositorySyncDefinition {
                        branch: text(r, "branch")?,
                        directory: text(r, "config_file")?,
                        parent: text(r, "resource_name")?,
                        target: text(r, "resource_name")?,
                    })
                })
                .collect();
        }
        let rows = sqlx::query(
            "SELECT target_key, display_name, branch, directory FROM sync_targets \
             WHERE account_id = $1 AND region = $2 AND sync_type = $3 AND repository_key = $4 ORDER BY target_key",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(sync_type.as_str())
        .bind(repository.as_key())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let display = text(r, "display_name")?;
                // A template major's parent is its template (`vpc:1`); an instance's is its
                // service (key `service/instance`).
                let parent = match sync_type {
                    SyncType::ServiceSync => {
                        let key = text(r, "target_key")?;
                        key.split_once('/')
                            .map(|(s, _)| s.to_string())
                            .unwrap_or(key)
                    }
                    _ => display.split(':').next().unwrap_or_default().to_string(),
                };
                Ok(RepositorySyncDefinition {
                    branch: text(r, "branch")?,
                    directory: text(r, "directory")?,
                    parent,
                    target: display,
                })
            })
            .collect()
    }

    /// The newest blockers of a resource (at most `limit`), active ones first.
    pub async fn latest_blockers(
        &self,
        tenant: &Tenant,
        sync_type: SyncType,
        resource_name: &str,
        parent_resource_name: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SyncBlocker>> {
        let rows = sqlx::query(
            "SELECT * FROM sync_blockers WHERE account_id = $1 AND region = $2 AND sync_type = $3 AND resource_name = $4 \
             AND COALESCE(parent_resource_name, '') = $5 ORDER BY CASE status WHEN 'ACTIVE' THEN 0 ELSE 1 END, created_at DESC LIMIT $6",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(sync_type.as_str())
        .bind(resource_name)
        .bind(parent_resource_name.unwrap_or(""))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(blocker_from).collect()
    }

    /// Marks an ACTIVE blocker RESOLVED and makes the blocked targets retry their newest commit
    /// ("retry latest commit"), in one transaction. `resource_name` narrows which resource the id
    /// must belong to (CodeConnections names it; Proton gives only the id). When no blocked target
    /// has a commit to retry, nothing changes and the answer is `StoreError::Conflict`.
    pub async fn resolve_blocker(
        &self,
        tenant: &Tenant,
        sync_type: SyncType,
        resource_name: Option<&str>,
        id: &str,
        reason: &str,
    ) -> Result<(BlockerScope, SyncBlocker)> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(
            "SELECT * FROM sync_blockers WHERE blocker_id = $1 AND account_id = $2 AND region = $3 AND sync_type = $4 AND status = 'ACTIVE'",
        )
        .bind(id)
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(sync_type.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("No active sync blocker with id {id} exists")))?;
        let scope = blocker_scope_from(&row)?;
        if let Some(name) = resource_name
            && scope.resource_name != name
        {
            return Err(StoreError::NotFound(format!(
                "No active sync blocker with id {id} exists for resource {name}"
            )));
        }
        // The targets the blocker stops: a stack, one instance, or every instance of a service.
        let (exact, parent) = match &scope.parent_resource_name {
            Some(service) => (
                Some(
                    SyncTarget::ServiceInstance {
                        service_name: service.clone(),
                        instance_name: scope.resource_name.clone(),
                    }
                    .key(),
                ),
                None,
            ),
            None if sync_type == SyncType::ServiceSync => (None, Some(scope.resource_name.clone())),
            None => (
                Some(
                    SyncTarget::CfnStack {
                        stack_name: scope.resource_name.clone(),
                    }
                    .key(),
                ),
                None,
            ),
        };
        let retried = sqlx::query(
            "UPDATE sync_targets SET attempted_sha = NULL, next_attempt_at = 0, failures = 0, guard_lifted = 1 \
             WHERE account_id = $1 AND region = $2 AND sync_type = $3 AND desired_revision IS NOT NULL \
             AND (target_key = $4 OR parent_key = $5)",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(sync_type.as_str())
        .bind(&exact)
        .bind(&parent)
        .execute(&mut *tx)
        .await?;
        // A stack's blocker promises a retry; an instance (or service) that Git has not synced yet
        // has nothing to retry, and resolving its blocker just lets the next commit through.
        if retried.rows_affected() == 0 && sync_type != SyncType::ServiceSync {
            return Err(StoreError::Conflict(format!(
                "Retrying the latest commit failed: {} has no commit to retry yet; the blocker stays active",
                scope.resource_name
            )));
        }
        let now = Timestamp::now();
        sqlx::query("UPDATE sync_blockers SET status = 'RESOLVED', resolved_reason = $1, resolved_at = $2 WHERE blocker_id = $3")
            .bind(reason)
            .bind(now.millis())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        self.commit(tx).await?;
        let mut blocker = blocker_from(&row)?;
        blocker.status = BlockerStatus::Resolved;
        blocker.resolved_reason = Some(reason.to_string());
        blocker.resolved_at = Some(now);
        Ok((scope, blocker))
    }

    // ----- writes made by the engine -----

    /// Files a target under its repository and the branch of `desired`, and sets its desired
    /// state. `attempted` says which commit its newest attempt was at (so the engine does not
    /// start another for it); importers and fixtures that write history directly use it.
    pub async fn upsert_sync_target(
        &self,
        tenant: &Tenant,
        target: &SyncTarget,
        repository: &RepositoryKey,
        desired: &Revision,
        attempted: Option<&str>,
    ) -> Result<()> {
        let (branch, directory) = (&desired.branch, &desired.directory);
        let desired_sha = Some(desired.sha.clone());
        let desired = Some(serde_json::to_string(desired).map_err(StoreError::corrupt)?);
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO sync_targets (account_id, region, sync_type, target_key, display_name, repository_key, branch, directory, desired_revision, desired_sha, parent_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (account_id, region, sync_type, target_key) DO UPDATE SET display_name = $5, repository_key = $6, \
             branch = $7, directory = $8, desired_revision = COALESCE($9, sync_targets.desired_revision), \
             desired_sha = COALESCE($10, sync_targets.desired_sha), parent_key = $11",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(target.sync_type().as_str())
        .bind(target.key())
        .bind(target.display_name())
        .bind(repository.as_key())
        .bind(branch)
        .bind(directory)
        .bind(desired)
        .bind(desired_sha)
        .bind(target.parent_key())
        .execute(&mut *tx)
        .await?;
        if let Some(sha) = attempted {
            sqlx::query(
                "UPDATE sync_targets SET attempted_sha = $1 WHERE account_id = $2 AND region = $3 AND sync_type = $4 AND target_key = $5",
            )
            .bind(sha)
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(target.sync_type().as_str())
            .bind(target.key())
            .execute(&mut *tx)
            .await?;
        }
        self.commit(tx).await?;
        Ok(())
    }

    /// Records a new resource sync attempt; returns its id.
    pub async fn start_resource_attempt(
        &self,
        tenant: &Tenant,
        attempt: &NewResourceAttempt,
    ) -> Result<i64> {
        let initial =
            serde_json::to_string(&attempt.initial_revision).map_err(StoreError::corrupt)?;
        let target =
            serde_json::to_string(&attempt.target_revision).map_err(StoreError::corrupt)?;
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(
            "INSERT INTO resource_sync_attempts (account_id, region, sync_type, target_key, target, status, initial_revision, target_revision, started_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING attempt_id",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(attempt.target.sync_type().as_str())
        .bind(attempt.target.key())
        .bind(attempt.target.display_name())
        .bind(attempt.status.as_str())
        .bind(initial)
        .bind(target)
        .bind(attempt.started_at.millis())
        .fetch_one(&mut *tx)
        .await?;
        self.commit(tx).await?;
        Ok(row.try_get::<i64, _>(0)?)
    }

    /// Appends an event to a resource sync attempt and sets its status.
    pub async fn record_resource_event(
        &self,
        attempt_id: i64,
        status: ResourceSyncStatus,
        event: &SyncEvent,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO resource_sync_events (attempt_id, seq, event_type, event, time, external_id) \
             VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM resource_sync_events WHERE attempt_id = $1), $2, $3, $4, $5)",
        )
        .bind(attempt_id)
        .bind(&event.event_type)
        .bind(&event.event)
        .bind(event.time.millis())
        .bind(&event.external_id)
        .execute(&mut *tx)
        .await?;
        let finished = matches!(
            status,
            ResourceSyncStatus::Succeeded | ResourceSyncStatus::Failed
        )
        .then(|| event.time.millis());
        sqlx::query("UPDATE resource_sync_attempts SET status = $1, finished_at = COALESCE($2, finished_at) WHERE attempt_id = $3")
            .bind(status.as_str())
            .bind(finished)
            .bind(attempt_id)
            .execute(&mut *tx)
            .await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// Records a new repository sync attempt; returns its id.
    pub async fn start_repository_attempt(
        &self,
        tenant: &Tenant,
        sync_type: SyncType,
        repository: &RepositoryKey,
        branch: &str,
        status: RepositorySyncStatus,
        started_at: Timestamp,
    ) -> Result<i64> {
        let mut tx = self.write_tx().await?;
        let previous = latest_repository_status(
            &mut tx,
            tenant,
            sync_type.as_str(),
            &repository.as_key(),
            branch,
        )
        .await?;
        let row = sqlx::query(
            "INSERT INTO repository_sync_attempts (account_id, region, sync_type, repository_key, branch, status, started_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING attempt_id",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(sync_type.as_str())
        .bind(repository.as_key())
        .bind(branch)
        .bind(status.as_str())
        .bind(started_at.millis())
        .fetch_one(&mut *tx)
        .await?;
        let id = row.try_get::<i64, _>(0)?;
        notify_repository_change(&mut tx, id, status, previous).await?;
        self.commit(tx).await?;
        Ok(id)
    }

    /// Appends an event to a repository sync attempt and sets its status.
    pub async fn record_repository_event(
        &self,
        attempt_id: i64,
        status: RepositorySyncStatus,
        event: &SyncEvent,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let previous =
            sqlx::query("SELECT status FROM repository_sync_attempts WHERE attempt_id = $1")
                .bind(attempt_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| parsed(&r, "status", RepositorySyncStatus::parse))
                .transpose()?;
        sqlx::query(
            "INSERT INTO repository_sync_events (attempt_id, seq, event_type, event, time, external_id) \
             VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM repository_sync_events WHERE attempt_id = $1), $2, $3, $4, $5)",
        )
        .bind(attempt_id)
        .bind(&event.event_type)
        .bind(&event.event)
        .bind(event.time.millis())
        .bind(&event.external_id)
        .execute(&mut *tx)
        .await?;
        let finished = matches!(
            status,
            RepositorySyncStatus::Succeeded | RepositorySyncStatus::Failed
        )
        .then(|| event.time.millis());
        sqlx::query("UPDATE repository_sync_attempts SET status = $1, finished_at = COALESCE($2, finished_at) WHERE attempt_id = $3")
            .bind(status.as_str())
            .bind(finished)
            .bind(attempt_id)
            .execute(&mut *tx)
            .await?;
        if previous.is_some_and(|p| p != status) {
            notify_repository_change(&mut tx, attempt_id, status, previous).await?;
        }
        self.commit(tx).await?;
        Ok(())
    }

    /// Raises an ACTIVE blocker on a resource.
    pub async fn create_blocker(
        &self,
        tenant: &Tenant,
        scope: &BlockerScope,
        reason: &str,
        contexts: &[(String, String)],
    ) -> Result<SyncBlocker> {
        let mut tx = self.write_tx().await?;
        let blocker = insert_blocker(&mut tx, tenant, scope, reason, contexts).await?;
        self.commit(tx).await?;
        Ok(blocker)
    }
}

/// Raises an ACTIVE blocker inside a caller's transaction (with the change that caused it).
pub(crate) async fn insert_blocker(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    tenant: &Tenant,
    scope: &BlockerScope,
    reason: &str,
    contexts: &[(String, String)],
) -> Result<SyncBlocker> {
    let blocker = SyncBlocker {
        id: uuid::Uuid::new_v4().to_string(),
        status: BlockerStatus::Active,
        created_reason: reason.to_string(),
        created_at: Timestamp::now(),
        contexts: contexts.to_vec(),
        resolved_reason: None,
        resolved_at: None,
    };
    sqlx::query(
        "INSERT INTO sync_blockers (blocker_id, account_id, region, sync_type, resource_name, parent_resource_name, status, created_reason, created_at, contexts) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&blocker.id)
    .bind(&tenant.account_id)
    .bind(&tenant.region)
    .bind(scope.sync_type.as_str())
    .bind(&scope.resource_name)
    .bind(&scope.parent_resource_name)
    .bind(blocker.status.as_str())
    .bind(reason)
    .bind(blocker.created_at.millis())
    .bind(serde_json::to_string(contexts).map_err(StoreError::corrupt)?)
    .execute(&mut **tx)
    .await?;
    Ok(blocker)
}
