//! Proton deployments as engine work: each one, recorded `IN_PROGRESS` by the API or by service
//! sync (services.rs), is claimed under a lease like any other work, runs (renders its template
//! version and deploys its stack), records its events, and ends `SUCCEEDED` or `FAILED` with its
//! stack's outputs, in one fenced write that also moves its resource's `deploymentStatus`.

use crate::rows::{int, lease_lost, opt_int, opt_text, text};
use crate::{Backend, Result, Store, StoreError};
use gitsync_model::{
    Arn, DeployedTemplate, DeploymentRecord, DeploymentStatus, DeploymentTarget, StackResource,
    SyncEvent, Tenant, Timestamp,
};
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::BTreeMap;

/// A deployment (`d`) that does not wait: a pipeline renders its service's instances with their
/// outputs, so its deployment waits while any of them deploys (a new service's instances first,
/// as in Proton). Checked when due and again in the claim.
const NOT_WAITING: &str = "NOT (d.target_kind = 'SERVICE_PIPELINE' AND d.status = 'IN_PROGRESS' AND EXISTS ( \
     SELECT 1 FROM proton_deployments i WHERE i.account_id = d.account_id AND i.region = d.region \
     AND i.target_kind = 'SERVICE_INSTANCE' AND i.status IN ('IN_PROGRESS', 'CANCELLING') \
     AND substr(i.target_name, 1, length(d.target_name) + 1) = d.target_name || '/'))";

/// The most events one deployment keeps (a stack of many resources reports each of them).
const MAX_EVENTS: i64 = 500;

/// What `bind_stack` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// The resource is bound now.
    Bound,
    /// The resource does not exist yet: creating it takes the binding.
    Pending,
}

/// Takes the stack bound to a resource before it existed, when it is created: its stack name.
pub(crate) async fn take_binding(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    tenant: &Tenant,
    target: &DeploymentTarget,
) -> Result<Option<String>> {
    let row = sqlx::query(
        "DELETE FROM proton_stack_bindings WHERE account_id = $1 AND region = $2 AND target_kind = $3 AND target_name = $4 \
         RETURNING stack_name",
    )
    .bind(&tenant.account_id)
    .bind(&tenant.region)
    .bind(target.kind())
    .bind(target.target_name())
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|r| text(&r, "stack_name")).transpose()
}

/// Where a resource that deploys is kept: its table, and its key within the tenant.
pub(crate) struct ResourceRow {
    pub table: &'static str,
    key: Vec<(&'static str, String)>,
}

impl ResourceRow {
    pub(crate) fn of(target: &DeploymentTarget) -> ResourceRow {
        match target {
            DeploymentTarget::Environment { name } => ResourceRow {
                table: "proton_environments",
                key: vec![("name", name.clone())],
            },
            DeploymentTarget::ServiceInstance { service, instance } => ResourceRow {
                table: "proton_service_instances",
                key: vec![
                    ("service_name", service.clone()),
                    ("name", instance.clone()),
                ],
            },
            DeploymentTarget::ServicePipeline { service } => ResourceRow {
                table: "proton_service_pipelines",
                key: vec![("service_name", service.clone())],
            },
        }
    }

    /// ` AND <column> = $<next> …` for the key's columns, and the values to bind in that order.
    pub(crate) fn key_from(&self, next: usize) -> (String, Vec<String>) {
        let clause = self
            .key
            .iter()
            .enumerate()
            .map(|(i, (column, _))| format!(" AND {column} = ${}", next + i))
            .collect();
        (clause, self.key.iter().map(|(_, v)| v.clone()).collect())
    }
}

/// `UPDATE <the resource's table> <set> AND <its key> …`: `set` holds the SET and WHERE
/// clauses, whose parameters come first; the key's parameters are numbered from `next`, and
/// their values are returned to bind in that order.
pub(crate) fn update_resource(
    target: &DeploymentTarget,
    set: &str,
    next: usize,
) -> (String, Vec<String>) {
    let row = ResourceRow::of(target);
    let (key, values) = row.key_from(next);
    (format!("UPDATE {} {set}{key}", row.table), values)
}

/// A deployment this worker holds the lease on.
#[derive(Debug, Clone)]
pub struct ClaimedDeployment {
    pub id: String,
    pub epoch: i64,
    pub tenant: Tenant,
    pub target: DeploymentTarget,
    pub environment_name: String,
    pub template: DeployedTemplate,
    pub spec: Option<String>,
    pub source_commit: Option<String>,
    /// The service sync attempt waiting for this deployment, if service sync started it.
    pub attempt_id: Option<i64>,
    /// The change set a previous worker created for it before it stopped.
    pub change_set_id: Option<String>,
    /// Transient failures so far.
    pub failures: i64,
    pub created_at: Timestamp,
    /// The resource is being deleted: its stack goes, then the resource.
    pub deleting: bool,
    /// A person asked to cancel it before this worker claimed it.
    pub cancelling: bool,
}

/// How a deployment ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentEnd {
    /// `Succeeded` or `Failed`; a deletion `DeleteComplete` (the resource goes with its stack)
    /// or `DeleteFailed`.
    pub status: DeploymentStatus,
    pub message: String,
    pub stack_name: Option<String>,
    /// The stack's outputs (succeeded deployments).
    pub outputs: BTreeMap<String, String>,
    /// The stack's resources (succeeded deployments).
    pub resources: Vec<StackResource>,
}

/// What the resource a deployment changes holds besides the deployment itself.
#[derive(Debug, Clone, Default)]
pub struct DeployedResource {
    /// The stack it is bound to or was deployed to before.
    pub stack_name: Option<String>,
    /// Its last successful deployment (a stack it had is expected to exist).
    pub last_succeeded_id: Option<String>,
    /// The role it deploys with: its environment's (`protonServiceRoleArn`), or for a pipeline
    /// the account's (`pipelineServiceRoleArn`).
    pub role_arn: Option<String>,
    /// Bound to an existing stack (`gitsync proton bind-stack`) and not deployed since: the next
    /// deployment takes that stack over.
    pub adopt: bool,
}

fn claimed_from(r: &AnyRow) -> Result<ClaimedDeployment> {
    let (kind, name) = (text(r, "target_kind")?, text(r, "target_name")?);
    Ok(ClaimedDeployment {
        id: text(r, "deployment_id")?,
        epoch: int(r, "lease_epoch")?,
        tenant: Tenant::new(text(r, "account_id")?, text(r, "region")?),
        target: DeploymentTarget::parse(&kind, &name)
            .ok_or_else(|| StoreError::corrupt(format!("deployment target {kind} {name}")))?,
        environment_name: text(r, "environment_name")?,
        template: DeployedTemplate {
            name: text(r, "template_name")?,
            major: int(r, "template_major")?,
            minor: int(r, "template_minor")?,
        },
        spec: opt_text(r, "spec")?,
        source_commit: opt_text(r, "source_commit")?,
        attempt_id: opt_int(r, "attempt_id")?,
        change_set_id: opt_text(r, "change_set_id")?,
        failures: int(r, "failures")?,
        created_at: Timestamp(int(r, "created_at")?),
        deleting: text(r, "status")? == DeploymentStatus::DeleteInProgress.as_str(),
        cancelling: text(r, "status")? == DeploymentStatus::Cancelling.as_str(),
    })
}

/// Which deployments a listing holds: of one environment's resources, one service's instances,
/// or one instance (all of the tenant's when empty).
#[derive(Debug, Clone, Default)]
pub struct DeploymentFilter {
    pub environment: Option<String>,
    pub service: Option<String>,
    pub instance: Option<String>,
}

/// A deployment row with what the listing computes beside it: its resource's first deployment
/// and the state the resource was in before it.
const RECORD_SELECT: &str = "SELECT d.*, \
     (SELECT MIN(f.created_at) FROM proton_deployments f WHERE f.account_id = d.account_id AND f.region = d.region \
      AND f.target_kind = d.target_kind AND f.target_name = d.target_name) AS target_created_at, \
     i.template_name AS initial_template_name, i.template_major AS initial_template_major, \
     i.template_minor AS initial_template_minor, i.spec AS initial_spec \
     FROM proton_deployments d LEFT JOIN proton_deployments i ON i.deployment_id = \
     (SELECT p.deployment_id FROM proton_deployments p WHERE p.account_id = d.account_id AND p.region = d.region \
      AND p.target_kind = d.target_kind AND p.target_name = d.target_name AND p.status = 'SUCCEEDED' \
      AND p.created_at < d.created_at ORDER BY p.created_at DESC LIMIT 1)";

/// The template version and spec a row holds under `prefix` (`""`: the deployment's own,
/// `"initial_"`: what the resource ran before it), if any.
fn state_of(r: &AnyRow, prefix: &str) -> Result<Option<(DeployedTemplate, Option<String>)>> {
    let Some(name) = opt_text(r, &format!("{prefix}template_name"))? else {
        return Ok(None);
    };
    Ok(Some((
        DeployedTemplate {
            name,
            major: int(r, &format!("{prefix}template_major"))?,
            minor: int(r, &format!("{prefix}template_minor"))?,
        },
        opt_text(r, &format!("{prefix}spec"))?,
    )))
}

fn record_from(r: &AnyRow) -> Result<DeploymentRecord> {
    let (kind, name) = (text(r, "target_kind")?, text(r, "target_name")?);
    let status = crate::rows::parsed(r, "status", DeploymentStatus::parse)?;
    let deletion = matches!(
        status,
        DeploymentStatus::DeleteInProgress
            | DeploymentStatus::DeleteComplete
            | DeploymentStatus::DeleteFailed
    );
    Ok(DeploymentRecord {
        id: text(r, "deployment_id")?,
        target: DeploymentTarget::parse(&kind, &name)
            .ok_or_else(|| StoreError::corrupt(format!("deployment target {kind} {name}")))?,
        environment_name: text(r, "environment_name")?,
        target_state: if deletion { None } else { state_of(r, "")? },
        initial_state: state_of(r, "initial_")?,
        status,
        status_message: opt_text(r, "status_message")?,
        source_commit: opt_text(r, "source_commit")?,
        created_at: Timestamp(int(r, "created_at")?),
        completed_at: opt_int(r, "completed_at")?.map(Timestamp),
        target_created_at: Timestamp(int(r, "target_created_at")?),
    })
}

impl Store {
    /// The tenant's deployments, newest first, `limit` a page; `after` is the previous page's
    /// token.
    pub async fn list_deployments(
        &self,
        tenant: &Tenant,
        filter: &DeploymentFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<crate::Page<DeploymentRecord>> {
        // Pages go on after (created_at, id) of the last item, newest first.
        let (before_at, before_id) = match after.and_then(|a| a.split_once('/')) {
            Some((at, id)) => (at.parse::<i64>().unwrap_or(i64::MAX), id.to_string()),
            None => (i64::MAX, String::new()),
        };
        // A service's deployments are its instances' and its pipeline's; an instance's, its own.
        let (target, instance, service) = match (&filter.service, &filter.instance) {
            (Some(service), Some(instance)) => (
                "d.target_kind = 'SERVICE_INSTANCE' AND d.target_name = $4",
                format!("{service}/{instance}"),
                String::new(),
            ),
            (Some(service), None) => (
                "((d.target_kind = 'SERVICE_INSTANCE' AND substr(d.target_name, 1, length($4)) = $4) \
                 OR (d.target_kind = 'SERVICE_PIPELINE' AND d.target_name = $5))",
                format!("{service}/"),
                service.clone(),
            ),
            _ => ("1 = 1", String::new(), String::new()),
        };
        let sql = format!(
            "{RECORD_SELECT} WHERE d.account_id = $1 AND d.region = $2 \
             AND ($3 = '' OR d.environment_name = $3) AND {target} \
             AND (d.created_at < $6 OR (d.created_at = $6 AND d.deployment_id > $7)) \
             ORDER BY d.created_at DESC, d.deployment_id LIMIT $8"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(filter.environment.as_deref().unwrap_or(""))
            .bind(&instance)
            .bind(&service)
            .bind(before_at)
            .bind(&before_id)
            .bind(limit as i64 + 1)
            .fetch_all(&self.pool)
            .await?;
        crate::Page::from_rows(rows, limit, record_from, |d| {
            format!("{}/{}", d.created_at.millis(), d.id)
        })
    }

    pub async fn get_deployment(&self, tenant: &Tenant, id: &str) -> Result<DeploymentRecord> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{RECORD_SELECT} WHERE d.account_id = $1 AND d.region = $2 AND d.deployment_id = $3"
        )))
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("Deployment {id} does not exist")))?;
        record_from(&row)
    }

    /// Deletes a deployment from the history, with its events. Refused while it runs, and for
    /// the latest deployment (attempted or successful) of a resource that exists: the resource's
    /// state and outputs are read from those.
    pub async fn delete_deployment(&self, tenant: &Tenant, id: &str) -> Result<DeploymentRecord> {
        let record = self.get_deployment(tenant, id).await?;
        if matches!(
            record.status,
            DeploymentStatus::InProgress
                | DeploymentStatus::DeleteInProgress
                | DeploymentStatus::Cancelling
        ) {
            return Err(StoreError::StillInUse(format!(
                "Deployment {id} of {} is {}; it can be deleted once it ended",
                record.target.describe(),
                record.status.as_str()
            )));
        }
        let mut tx = self.write_tx().await?;
        let resource = ResourceRow::of(&record.target);
        let (key, values) = resource.key_from(4);
        let mut current = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT 1 FROM {} WHERE account_id = $1 AND region = $2 \
             AND (last_attempted_deployment_id = $3 OR last_succeeded_deployment_id = $3){key}",
            resource.table
        )))
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(id);
        for value in values {
            current = current.bind(value);
        }
        let current = current.fetch_optional(&mut *tx).await?;
        if current.is_some() {
            return Err(StoreError::StillInUse(format!(
                "Deployment {id} is the latest deployment of {}; only earlier ones can be deleted",
                record.target.describe()
            )));
        }
        sqlx::query("DELETE FROM proton_deployment_events WHERE deployment_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM proton_deployments WHERE account_id = $1 AND region = $2 AND deployment_id = $3")
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        self.commit(tx).await?;
        Ok(record)
    }

    /// Deployments in progress that no live worker holds and whose retry time has come.
    pub async fn due_deployments(&self, now: Timestamp, limit: usize) -> Result<Vec<String>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT d.deployment_id FROM proton_deployments d WHERE d.status IN ('IN_PROGRESS', 'DELETE_IN_PROGRESS', 'CANCELLING') \
             AND d.next_attempt_at <= $1 AND (d.lease_expires_at IS NULL OR d.lease_expires_at <= $1) AND {NOT_WAITING} \
             ORDER BY d.next_attempt_at, d.created_at LIMIT $2"
        )))
        .bind(now.millis())
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| text(r, "deployment_id")).collect()
    }

    /// Claims a due deployment for `owner` until `now + ttl_ms`; `None` when another worker
    /// holds or ended it.
    pub async fn claim_deployment(
        &self,
        id: &str,
        owner: &str,
        now: Timestamp,
        ttl_ms: i64,
    ) -> Result<Option<ClaimedDeployment>> {
        let mut tx = self.write_tx().await?;
        let claimed = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE proton_deployments AS d SET lease_owner = $2, lease_expires_at = $3, lease_epoch = lease_epoch + 1 \
             WHERE d.deployment_id = $1 AND d.status IN ('IN_PROGRESS', 'DELETE_IN_PROGRESS', 'CANCELLING') AND d.next_attempt_at <= $4 \
             AND (d.lease_expires_at IS NULL OR d.lease_expires_at <= $4) AND {NOT_WAITING}"
        )))
        .bind(id)
        .bind(owner)
        .bind(now.millis() + ttl_ms)
        .bind(now.millis())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            return Ok(None);
        }
        let row = sqlx::query("SELECT * FROM proton_deployments WHERE deployment_id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let claim = claimed_from(&row)?;
        self.commit(tx).await?;
        Ok(Some(claim))
    }

    /// Keeps the lease of a running deployment; `LeaseLost` when another worker took it.
    pub async fn renew_deployment(
        &self,
        claim: &ClaimedDeployment,
        now: Timestamp,
        ttl_ms: i64,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let renewed = sqlx::query(
            "UPDATE proton_deployments SET lease_expires_at = $3 WHERE deployment_id = $1 AND lease_epoch = $2 \
             AND status IN ('IN_PROGRESS', 'DELETE_IN_PROGRESS', 'CANCELLING')",
        )
        .bind(&claim.id)
        .bind(claim.epoch)
        .bind(now.millis() + ttl_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        self.commit(tx).await?;
        if renewed == 0 {
            return Err(lease_lost(&format!("deployment {}", claim.id)));
        }
        Ok(())
    }

    /// Checks the fence of a claimed deployment inside a write transaction.
    async fn check_deployment_fence(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        claim: &ClaimedDeployment,
    ) -> Result<()> {
        let sql = if self.backend == Backend::Postgres {
            "SELECT lease_epoch FROM proton_deployments WHERE deployment_id = $1 FOR UPDATE"
        } else {
            "SELECT lease_epoch FROM proton_deployments WHERE deployment_id = $1"
        };
        let epoch: i64 = sqlx::query(sql)
            .bind(&claim.id)
            .fetch_one(&mut **tx)
            .await?
            .try_get(0)?;
        if epoch == claim.epoch {
            Ok(())
        } else {
            Err(lease_lost(&format!("deployment {}", claim.id)))
        }
    }

    /// Appends an event to a running deployment. The change set a `DEPLOYMENT_STARTED` event
    /// names is remembered, so that a worker taking the deployment over follows it.
    pub async fn record_deployment_event(
        &self,
        claim: &ClaimedDeployment,
        event: &SyncEvent,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        self.check_deployment_fence(&mut tx, claim).await?;
        let count: i64 =
            sqlx::query("SELECT COUNT(*) FROM proton_deployment_events WHERE deployment_id = $1")
                .bind(&claim.id)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
        if count < MAX_EVENTS {
            sqlx::query(
                "INSERT INTO proton_deployment_events (deployment_id, seq, event_type, event, external_id, time) \
                 VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM proton_deployment_events WHERE deployment_id = $1), $2, $3, $4, $5)",
            )
            .bind(&claim.id)
            .bind(&event.event_type)
            .bind(&event.event)
            .bind(&event.external_id)
            .bind(event.time.millis())
            .execute(&mut *tx)
            .await?;
        }
        if let Some(id) = &event.external_id
            && event.event_type == gitsync_model::EventType::DeploymentStarted.as_str()
            && id.contains(":changeSet/")
        {
            sqlx::query(
                "UPDATE proton_deployments SET change_set_id = $2 WHERE deployment_id = $1",
            )
            .bind(&claim.id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        self.commit(tx).await?;
        Ok(())
    }

    /// A deployment's events after `after` (a sequence number), in order, with theirs.
    pub async fn deployment_events(&self, id: &str, after: i64) -> Result<Vec<(i64, SyncEvent)>> {
        let rows = sqlx::query(
            "SELECT seq, event_type, event, external_id, time FROM proton_deployment_events \
             WHERE deployment_id = $1 AND seq > $2 ORDER BY seq",
        )
        .bind(id)
        .bind(after)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    int(r, "seq")?,
                    SyncEvent {
                        event_type: text(r, "event_type")?,
                        event: text(r, "event")?,
                        time: Timestamp(int(r, "time")?),
                        external_id: opt_text(r, "external_id")?,
                    },
                ))
            })
            .collect()
    }

    /// A deployment's status and message, for a service sync attempt waiting for it.
    pub async fn deployment_status(
        &self,
        tenant: &Tenant,
        id: &str,
    ) -> Result<(DeploymentStatus, Option<String>)> {
        let row = sqlx::query(
            "SELECT status, status_message FROM proton_deployments WHERE account_id = $1 AND region = $2 AND deployment_id = $3",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("Deployment {id} does not exist")))?;
        Ok((
            crate::rows::parsed(&row, "status", DeploymentStatus::parse)?,
            opt_text(&row, "status_message")?,
        ))
    }

    /// Asks to cancel the deployment in progress of a resource (`CANCELLING`): the engine stops
    /// it, cancels its stack update (rolled back) and ends it `CANCELLED`. Refused when nothing
    /// is in progress.
    pub async fn cancel_deployment(
        &self,
        tenant: &Tenant,
        target: &DeploymentTarget,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        const SET: &str = "SET deployment_status = 'CANCELLING' WHERE account_id = $1 AND region = $2 \
             AND deployment_status = 'IN_PROGRESS'";
        let (sql, key) = update_resource(target, SET, 3);
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&tenant.account_id)
            .bind(&tenant.region);
        for part in key {
            query = query.bind(part);
        }
        if query.execute(&mut *tx).await?.rows_affected() == 0 {
            tx.rollback().await?;
            self.deployed_resource(tenant, target).await?;
            return Err(StoreError::StillInUse(format!(
                "{} has no deployment in progress to cancel",
                target.describe()
            )));
        }
        sqlx::query(
            "UPDATE proton_deployments SET status = 'CANCELLING' WHERE account_id = $1 AND region = $2 \
             AND target_kind = $3 AND target_name = $4 AND status = 'IN_PROGRESS'",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(target.kind())
        .bind(target.target_name())
        .execute(&mut *tx)
        .await?;
        crate::outbox::notify_proton(
            &mut tx,
            tenant,
            target.into(),
            &Arn::new("proton", tenant, target.arn_resource()).to_string(),
            DeploymentStatus::Cancelling.as_str(),
            Some(DeploymentStatus::InProgress.as_str()),
        )
        .await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// The change set a deployment recorded so far (read afresh: the worker records it while
    /// it runs).
    pub async fn deployment_change_set(&self, id: &str) -> Result<Option<String>> {
        let row =
            sqlx::query("SELECT change_set_id FROM proton_deployments WHERE deployment_id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row
            .map(|r| opt_text(&r, "change_set_id"))
            .transpose()?
            .flatten())
    }

    /// The deployment a service sync attempt started, if any (a worker taking the attempt over
    /// waits for it instead of starting another).
    /// Answers its id and the commit it deploys.
    pub async fn deployment_of_attempt(
        &self,
        attempt_id: i64,
    ) -> Result<Option<(String, Option<String>)>> {
        let row = sqlx::query(
            "SELECT deployment_id, source_commit FROM proton_deployments WHERE attempt_id = $1 ORDER BY created_at DESC LIMIT 1",
        )
        .bind(attempt_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((text(&r, "deployment_id")?, opt_text(&r, "source_commit")?)))
            .transpose()
    }

    /// What a deployment needs to know of its resource: its stack, its last success, its role.
    pub async fn deployed_resource(
        &self,
        tenant: &Tenant,
        target: &DeploymentTarget,
    ) -> Result<DeployedResource> {
        let environment = |name: &str| {
            sqlx::query(
                "SELECT stack_name, stack_adopt, last_succeeded_deployment_id, proton_service_role_arn FROM proton_environments \
                 WHERE account_id = $1 AND region = $2 AND name = $3",
            )
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(name.to_string())
        };
        match target {
            DeploymentTarget::Environment { name } => {
                let row = environment(name)
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or_else(|| {
                        StoreError::NotFound(format!("Environment {name} does not exist"))
                    })?;
                Ok(DeployedResource {
                    stack_name: opt_text(&row, "stack_name")?,
                    last_succeeded_id: opt_text(&row, "last_succeeded_deployment_id")?,
                    role_arn: opt_text(&row, "proton_service_role_arn")?,
                    adopt: int(&row, "stack_adopt")? != 0,
                })
            }
            DeploymentTarget::ServiceInstance { service, instance } => {
                let row = sqlx::query(
                    "SELECT i.stack_name, i.stack_adopt, i.last_succeeded_deployment_id, e.proton_service_role_arn \
                     FROM proton_service_instances i LEFT JOIN proton_environments e \
                     ON e.account_id = i.account_id AND e.region = i.region AND e.name = i.environment_name \
                     WHERE i.account_id = $1 AND i.region = $2 AND i.service_name = $3 AND i.name = $4",
                )
                .bind(&tenant.account_id)
                .bind(&tenant.region)
                .bind(service)
                .bind(instance)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| {
                    StoreError::NotFound(format!(
                        "Service instance {instance} of service {service} does not exist"
                    ))
                })?;
                Ok(DeployedResource {
                    stack_name: opt_text(&row, "stack_name")?,
                    last_succeeded_id: opt_text(&row, "last_succeeded_deployment_id")?,
                    role_arn: opt_text(&row, "proton_service_role_arn")?,
                    adopt: int(&row, "stack_adopt")? != 0,
                })
            }
            DeploymentTarget::ServicePipeline { service } => {
                let Some(row) = sqlx::query(
                    "SELECT p.stack_name, p.stack_adopt, p.last_succeeded_deployment_id, a.pipeline_service_role_arn \
                     FROM proton_service_pipelines p LEFT JOIN proton_account_settings a \
                     ON a.account_id = p.account_id AND a.region = p.region \
                     WHERE p.account_id = $1 AND p.region = $2 AND p.service_name = $3",
                )
                .bind(&tenant.account_id)
                .bind(&tenant.region)
                .bind(service)
                .fetch_optional(&self.pool)
                .await?
                else {
                    // Name what is missing: the service, or only its pipeline.
                    self.get_service(tenant, service).await?;
                    return Err(StoreError::NotFound(format!(
                        "Service {service} has no pipeline"
                    )));
                };
                Ok(DeployedResource {
                    stack_name: opt_text(&row, "stack_name")?,
                    last_succeeded_id: opt_text(&row, "last_succeeded_deployment_id")?,
                    role_arn: opt_text(&row, "pipeline_service_role_arn")?,
                    adopt: int(&row, "stack_adopt")? != 0,
                })
            }
        }
    }

    /// Binds a resource to an existing stack (one AWS Proton created, say): its next deployment
    /// updates that stack in place and tags it as gitsync's. Refused while it deploys. A
    /// resource that does not exist yet takes the binding when it is created.
    pub async fn bind_stack(
        &self,
        tenant: &Tenant,
        target: &DeploymentTarget,
        stack_name: &str,
    ) -> Result<Binding> {
        let valid = stack_name.len() <= 128
            && stack_name.starts_with(|c: char| c.is_ascii_alphabetic())
            && stack_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !valid {
            return Err(StoreError::Invalid(format!(
                "'{stack_name}' is not a CloudFormation stack name (a letter, then letters, digits and '-', at most 128)"
            )));
        }
        let mut tx = self.write_tx().await?;
        const SET: &str = "SET stack_name = $3, stack_adopt = 1 WHERE account_id = $1 AND region = $2 \
             AND deployment_status NOT IN ('IN_PROGRESS', 'DELETE_IN_PROGRESS', 'CANCELLING')";
        let (sql, key) = update_resource(target, SET, 4);
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(stack_name);
        for part in key {
            query = query.bind(part);
        }
        let bound = query.execute(&mut *tx).await?.rows_affected();
        if bound == 1 {
            self.commit(tx).await?;
            return Ok(Binding::Bound);
        }
        tx.rollback().await?;
        match self.deployed_resource(tenant, target).await {
            Ok(_) => Err(StoreError::StillInUse(format!(
                "{} has a deployment in progress; bind it once that ended",
                target.describe()
            ))),
            // A service that exists without a pipeline never gets one (its template version
            // decides): a binding would wait for ever.
            Err(StoreError::NotFound(_))
                if matches!(target, DeploymentTarget::ServicePipeline { service }
                    if self.get_service(tenant, service).await.is_ok()) =>
            {
                Err(StoreError::Invalid(format!(
                    "{} does not exist: the service's template version has no pipeline",
                    target.describe()
                )))
            }
            // Not created yet: creating it takes the binding.
            Err(StoreError::NotFound(_)) => {
                let mut tx = self.write_tx().await?;
                sqlx::query(
                    "INSERT INTO proton_stack_bindings (account_id, region, target_kind, target_name, stack_name) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id, region, target_kind, target_name) \
                     DO UPDATE SET stack_name = excluded.stack_name",
                )
                .bind(&tenant.account_id)
                .bind(&tenant.region)
                .bind(target.kind())
                .bind(target.target_name())
                .bind(stack_name)
                .execute(&mut *tx)
                .await?;
                self.commit(tx).await?;
                Ok(Binding::Pending)
            }
            Err(e) => Err(e),
        }
    }

    /// The outputs of a resource's last successful deployment (empty before it has one), or of
    /// the given deployment of it (empty unless it succeeded; `NotFound` when it is not one of
    /// this resource's).
    pub async fn resource_outputs(
        &self,
        tenant: &Tenant,
        target: &DeploymentTarget,
        deployment: Option<&str>,
    ) -> Result<BTreeMap<String, String>> {
        let recorded = match deployment {
            None => self.last_success(tenant, target, "outputs").await?,
            Some(id) => sqlx::query(
                "SELECT outputs FROM proton_deployments WHERE account_id = $1 AND region = $2 AND target_kind = $3 \
                 AND target_name = $4 AND deployment_id = $5",
            )
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(target.kind())
            .bind(target.target_name())
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| {
                StoreError::NotFound(format!(
                    "Deployment {id} is not a deployment of {}",
                    target.describe()
                ))
            })
            .and_then(|r| opt_text(&r, "outputs"))?,
        };
        match recorded {
            Some(json) => serde_json::from_str(&json).map_err(StoreError::corrupt),
            None => Ok(BTreeMap::new()),
        }
    }

    /// The resources of the stack of a resource's last successful deployment (empty before it
    /// has one, or when it deployed nothing: validate-only).
    pub async fn provisioned_resources(
        &self,
        tenant: &Tenant,
        target: &DeploymentTarget,
    ) -> Result<Vec<StackResource>> {
        match self.last_success(tenant, target, "resources").await? {
            Some(json) => serde_json::from_str(&json).map_err(StoreError::corrupt),
            None => Ok(Vec::new()),
        }
    }

    /// A column the resource's last successful deployment recorded (`outputs`, `resources`).
    async fn last_success(
        &self,
        tenant: &Tenant,
        target: &DeploymentTarget,
        column: &'static str,
    ) -> Result<Option<String>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {column} FROM proton_deployments WHERE account_id = $1 AND region = $2 AND target_kind = $3 \
             AND target_name = $4 AND status = 'SUCCEEDED' ORDER BY completed_at DESC, created_at DESC LIMIT 1"
        )))
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(target.kind())
        .bind(target.target_name())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| opt_text(&r, column)).transpose()?.flatten())
    }

    /// Ends a claimed deployment: its row, and its resource's deployment status (while that
    /// deployment is still the resource's latest), in one transaction under the fence.
    pub async fn finish_deployment(
        &self,
        claim: &ClaimedDeployment,
        end: &DeploymentEnd,
    ) -> Result<()> {
        let now = Timestamp::now().millis();
        let succeeded = end.status == DeploymentStatus::Succeeded;
        let outputs = succeeded
            .then(|| serde_json::to_string(&end.outputs))
            .transpose()
            .map_err(StoreError::corrupt)?;
        let resources = succeeded
            .then(|| serde_json::to_string(&end.resources))
            .transpose()
            .map_err(StoreError::corrupt)?;
        let message: String = end.message.chars().take(4000).collect();
        let mut tx = self.write_tx().await?;
        self.check_deployment_fence(&mut tx, claim).await?;
        let previous =
            sqlx::query("SELECT status FROM proton_deployments WHERE deployment_id = $1")
                .bind(&claim.id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| text(&r, "status"))
                .transpose()?;
        // Its resource's status change, told in the same transaction.
        crate::outbox::notify_proton(
            &mut tx,
            &claim.tenant,
            (&claim.target).into(),
            &Arn::new("proton", &claim.tenant, claim.target.arn_resource()).to_string(),
            end.status.as_str(),
            previous.as_deref(),
        )
        .await?;
        sqlx::query(
            "UPDATE proton_deployments SET status = $2, status_message = $3, outputs = $4, stack_name = $5, \
             completed_at = $6, resources = $7, lease_owner = NULL, lease_expires_at = NULL WHERE deployment_id = $1",
        )
        .bind(&claim.id)
        .bind(end.status.as_str())
        .bind(&message)
        .bind(&outputs)
        .bind(&end.stack_name)
        .bind(now)
        .bind(&resources)
        .execute(&mut *tx)
        .await?;
        if end.status == DeploymentStatus::DeleteComplete {
            crate::services::delete_resource(&mut tx, &claim.tenant, &claim.target).await?;
            self.commit(tx).await?;
            return Ok(());
        }
        // The resource moves only while this is its latest deployment.
        const SET: &str = "SET deployment_status = $3, deployment_status_message = $4, stack_name = COALESCE($5, stack_name), \
             stack_adopt = CASE WHEN $3 = 'SUCCEEDED' THEN 0 ELSE stack_adopt END, \
             last_succeeded_at = CASE WHEN $3 = 'SUCCEEDED' THEN $6 ELSE last_succeeded_at END, \
             last_succeeded_deployment_id = CASE WHEN $3 = 'SUCCEEDED' THEN $2 ELSE last_succeeded_deployment_id END \
             WHERE last_attempted_deployment_id = $2 AND account_id = $1 AND region = $7";
        let (sql, key) = update_resource(&claim.target, SET, 8);
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&claim.tenant.account_id)
            .bind(&claim.id)
            .bind(end.status.as_str())
            .bind(&message)
            .bind(&end.stack_name)
            .bind(now)
            .bind(&claim.tenant.region);
        for part in key {
            query = query.bind(part);
        }
        query.execute(&mut *tx).await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// A transient failure: the deployment stays in progress, to be tried again at `at`.
    pub async fn retry_deployment(
        &self,
        claim: &ClaimedDeployment,
        at: Timestamp,
        message: &str,
    ) -> Result<()> {
        let message: String = message.chars().take(4000).collect();
        let mut tx = self.write_tx().await?;
        self.check_deployment_fence(&mut tx, claim).await?;
        sqlx::query(
            "UPDATE proton_deployments SET failures = failures + 1, next_attempt_at = $2, status_message = $3, \
             lease_owner = NULL, lease_expires_at = NULL WHERE deployment_id = $1",
        )
        .bind(&claim.id)
        .bind(at.millis())
        .bind(&message)
        .execute(&mut *tx)
        .await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// Frees a claimed deployment (the server is stopping), for another worker to take at once.
    pub async fn release_deployment(&self, claim: &ClaimedDeployment) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE proton_deployments SET lease_owner = NULL, lease_expires_at = NULL WHERE deployment_id = $1 AND lease_epoch = $2",
        )
        .bind(&claim.id)
        .bind(claim.epoch)
        .execute(&mut *tx)
        .await?;
        self.commit(tx).await?;
        Ok(())
    }
}
