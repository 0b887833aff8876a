//! Resource sync attempts as the engine runs them: begun with their first events, progress
//! recorded while the lease holds, and closed in one fenced transaction with the sync's database
//! effect, any blocker, and the status change written to the outbox.

use crate::rows::{BindKey, int, parsed, text, toggle};
use crate::rows::{lease_lost, revision_json};
use crate::services::DeployedInstance;
use crate::status::RepositoryKey;
use crate::targets::{ClaimedTarget, TargetResult};
use crate::templates::NewTemplateVersion;
use crate::{Backend, Result, Store, StoreError};
use gitsync_model::githost::{CommitState, CommitStatus};
use gitsync_model::{
    BlockerScope, EventType, InstanceDeployment, ResourceSyncStatus, Revision, SyncEvent,
    SyncTarget, TemplateType, TemplateVersion, Tenant, Timestamp,
};
use sqlx::Row;

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
}

/// What applying an [`Effect`] did.
#[derive(Debug, Clone)]
pub enum Applied {
    Nothing,
    Registered(TemplateVersion),
    /// The version registered from this commit before.
    AlreadyRegistered(TemplateVersion),
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

/// Posts a commit status on `revision` for a stack's attempt when its sync configuration asks
/// for it (`PublishDeploymentStatus`), through the outbox in the caller's transaction. Other
/// kinds of sync have no such switch.
async fn publish_commit_status(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    claim: &ClaimedTarget,
    revision: &Revision,
    state: CommitState,
    description: &str,
) -> Result<()> {
    let (SyncTarget::CfnStack { stack_name }, RepositoryKey::Link(link_id)) =
        (&claim.target, &claim.repository)
    else {
        return Ok(());
    };
    let row = sqlx::query(
        "SELECT publish_deployment_status FROM sync_configurations WHERE account_id = $1 AND region = $2 AND resource_name = $3",
    )
    .bind(&claim.tenant.account_id)
    .bind(&claim.tenant.region)
    .bind(stack_name)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(()) };
    if toggle(&row, "publish_deployment_status")? != Some(true) {
        return Ok(());
    }
    let status = CommitStatus {
        link_id: link_id.clone(),
        owner_id: revision.owner_id.clone(),
        repository_name: revision.repository_name.clone(),
        sha: revision.sha.clone(),
        state,
        context: CommitStatus::context_of(stack_name),
        description: CommitStatus::describe(description),
    };
    crate::outbox::post(
        tx,
        &claim.tenant,
        crate::outbox::COMMIT_STATUS_DELIVERER,
        &crate::outbox::commit_status_destination(link_id, stack_name),
        &status,
    )
    .await
}

impl Store {
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
        .bind_target(claim)
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
                publish_commit_status(
                    &mut tx,
                    claim,
                    change.revision,
                    CommitState::Error,
                    "The worker running this sync stopped before it finished",
                )
                .await?;
            }
        }
        let previous = sqlx::query(
            "SELECT status FROM resource_sync_attempts WHERE account_id = $1 AND region = $2 AND sync_type = $3 AND target_key = $4 \
             ORDER BY attempt_id DESC LIMIT 1",
        )
        .bind_target(claim)
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
        .bind_target(claim)
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
        .bind_target(claim)
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
        publish_commit_status(
            &mut tx,
            claim,
            &claim.desired,
            CommitState::Pending,
            &format!("Syncing {}", target.display_name()),
        )
        .await?;
        self.commit(tx).await?;
        Ok(attempt_id)
    }

    /// The change set an attempt started or followed (the change set id of its last
    /// `DEPLOYMENT_STARTED` or `DEPLOYMENT_PROGRESS` event) and the commit the attempt was for;
    /// `None` when it started none.
    pub async fn started_change_set(
        &self,
        tenant: &Tenant,
        attempt_id: i64,
    ) -> Result<Option<(String, String)>> {
        let row = sqlx::query(
            "SELECT a.target_revision, e.external_id FROM resource_sync_attempts a \
             JOIN resource_sync_events e ON e.attempt_id = a.attempt_id \
             WHERE a.account_id = $1 AND a.region = $2 AND a.attempt_id = $3 \
             AND e.event_type IN ($4, $5) AND e.external_id LIKE '%:changeSet/%' ORDER BY e.seq DESC LIMIT 1",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(attempt_id)
        // Started by that attempt, or followed by it when it had itself taken over.
        .bind(EventType::DeploymentStarted.as_str())
        .bind(EventType::DeploymentProgress.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let revision = revision_json(&text(&r, "target_revision")?)?;
            Ok((revision.sha, text(&r, "external_id")?))
        })
        .transpose()
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
        self.commit(tx).await?;
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
            .bind_target(claim)
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
        .bind_target(claim)
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
        // The attempt's last word says how it went (the failure's reason, the stack's state).
        let (state, fallback) = if result.succeeded {
            (CommitState::Success, "Succeeded")
        } else {
            (CommitState::Failure, "Failed")
        };
        let outcome = events.last().map_or(fallback, |e| e.event.as_str());
        publish_commit_status(&mut tx, claim, &claim.desired, state, outcome).await?;
        self.commit(tx).await?;
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
        }
    }

    /// Starts the deployment of a service instance from a service sync attempt, under the
    /// attempt's fence: the instance is created or updated and its deployment recorded
    /// `IN_PROGRESS`, to be run by the engine while the attempt waits for it.
    pub async fn start_synced_deployment(
        &self,
        claim: &ClaimedTarget,
        attempt_id: i64,
        service: &str,
        instance: &str,
        deployment: &InstanceDeployment,
    ) -> Result<DeployedInstance> {
        let mut tx = self.write_tx().await?;
        self.check_fence(&mut tx, claim).await?;
        let deployed = crate::services::deploy_instance_in(
            &mut tx,
            self.backend == Backend::Postgres,
            &claim.tenant,
            service,
            instance,
            deployment,
            crate::services::InstanceWrite::CreateOrUpdate,
            &[],
            self.limits.tags_per_resource,
            Some(attempt_id),
        )
        .await?;
        self.commit(tx).await?;
        Ok(deployed)
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
