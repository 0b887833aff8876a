//! Service pipelines and the account settings they deploy with.
//!
//! A service whose template version has a pipeline gets one when it is created; it deploys like
//! an instance (a `SERVICE_PIPELINE` deployment the engine runs), again on
//! `UpdateServicePipeline`, and its stack is deleted with the service. Its role is the account's
//! `pipelineServiceRoleArn` (`UpdateAccountSettings`).

use crate::rows::{int, opt_text, text};
use crate::services::{
    Table, deployment_from, missing_service, not_busy, record_deployment, row, start_deletion,
};
use crate::{Result, Store, StoreError};
use gitsync_model::{Arn, DeployedTemplate, DeploymentTarget, ServicePipeline, Tenant, Timestamp};
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

/// What a pipeline deployment applies: a version of the service's template and the service spec
/// whose `pipeline` section holds the inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineDeployment {
    pub template: DeployedTemplate,
    pub spec: String,
}

/// Proton's account settings, per tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountSettings {
    /// The role pipeline stacks are deployed with.
    pub pipeline_service_role_arn: Option<String>,
    /// Kept and answered: the pipelines' own CodeBuild projects name their roles in the template.
    pub pipeline_codebuild_role_arn: Option<String>,
}

fn pipeline_from(row: &AnyRow) -> Result<ServicePipeline> {
    Ok(ServicePipeline {
        service_name: text(row, "service_name")?,
        arn: text(row, "arn")?,
        template: DeployedTemplate {
            name: text(row, "template_name")?,
            major: int(row, "template_major")?,
            minor: int(row, "template_minor")?,
        },
        spec: text(row, "spec")?,
        created_at: Timestamp(int(row, "created_at")?),
        deployment: deployment_from(row)?,
    })
}

fn no_pipeline(service: &str) -> StoreError {
    StoreError::NotFound(format!(
        "Service {service} has no pipeline (its template version has no pipeline_infrastructure)"
    ))
}

async fn pipeline_row(
    tx: &mut Transaction<'static, Any>,
    tenant: &Tenant,
    service: &str,
) -> Result<Option<AnyRow>> {
    Ok(sqlx::query(
        "SELECT * FROM proton_service_pipelines WHERE account_id = $1 AND region = $2 AND service_name = $3",
    )
    .bind(&tenant.account_id)
    .bind(&tenant.region)
    .bind(service)
    .fetch_optional(&mut **tx)
    .await?)
}

/// Records a deployment of a service's pipeline (`IN_PROGRESS`, for the engine); its id.
async fn record_pipeline_deployment(
    tx: &mut Transaction<'static, Any>,
    tenant: &Tenant,
    service: &str,
    deployment: &PipelineDeployment,
    now: Timestamp,
) -> Result<String> {
    let target = DeploymentTarget::ServicePipeline {
        service: service.to_string(),
    };
    // Pipelines run in no environment: Proton's deployments of them name none.
    record_deployment(
        tx,
        tenant,
        target.kind(),
        &target.target_name(),
        "",
        &deployment.template,
        Some(&deployment.spec),
        None,
        None,
        now,
    )
    .await
}

/// Creates a new service's pipeline and records its first deployment (`IN_PROGRESS`), in the
/// service's transaction. A stack bound to it beforehand is taken over.
pub(crate) async fn create_pipeline_in(
    tx: &mut Transaction<'static, Any>,
    tenant: &Tenant,
    service: &str,
    deployment: &PipelineDeployment,
) -> Result<()> {
    let now = Timestamp::now();
    let target = DeploymentTarget::ServicePipeline {
        service: service.to_string(),
    };
    let id = record_pipeline_deployment(tx, tenant, service, deployment, now).await?;
    // A service of this name was deleted and its pipeline's stack is still being deleted.
    if let Some(previous) = pipeline_row(tx, tenant, service).await? {
        return Err(StoreError::StillInUse(format!(
            "the pipeline of the previous service {service} is still being deleted ({}); create the service again once it is gone",
            opt_text(&previous, "last_attempted_deployment_id")?.unwrap_or_default()
        )));
    }
    let arn = Arn::new("proton", tenant, format!("service/{service}/pipeline")).to_string();
    let stack = crate::deployments::take_binding(tx, tenant, &target).await?;
    let inserted = sqlx::query(
        "INSERT INTO proton_service_pipelines (account_id, region, service_name, arn, template_name, template_major, \
         template_minor, spec, created_at, deployment_status, last_attempted_at, last_succeeded_at, \
         last_attempted_deployment_id, stack_name, stack_adopt) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'IN_PROGRESS', $9, $9, $10, $11, $12)",
    )
    .bind(&tenant.account_id)
    .bind(&tenant.region)
    .bind(service)
    .bind(&arn)
    .bind(&deployment.template.name)
    .bind(deployment.template.major)
    .bind(deployment.template.minor)
    .bind(&deployment.spec)
    .bind(now.millis())
    .bind(&id)
    .bind(&stack)
    .bind(i64::from(stack.is_some()))
    .execute(&mut **tx)
    .await;
    crate::rows::unique(inserted, || {
        format!("the pipeline of service {service} already exists")
    })?;
    Ok(())
}

/// Removes a service's pipeline with the service: its stack is deleted first (engine work) when
/// it has one; refused while it deploys.
pub(crate) async fn remove_pipeline_in(
    tx: &mut Transaction<'static, Any>,
    tenant: &Tenant,
    service: &str,
) -> Result<()> {
    let Some(row) = pipeline_row(tx, tenant, service).await? else {
        return Ok(());
    };
    not_busy(&row, &format!("The pipeline of service {service}"))?;
    let target = DeploymentTarget::ServicePipeline {
        service: service.to_string(),
    };
    if opt_text(&row, "stack_name")?.is_some() {
        let pipeline = pipeline_from(&row)?;
        start_deletion(tx, tenant, &target, "", &pipeline.template).await
    } else {
        crate::services::delete_resource(tx, tenant, &target).await
    }
}

impl Store {
    /// A service's pipeline; `None` when its template version has none.
    pub async fn get_service_pipeline(
        &self,
        tenant: &Tenant,
        service: &str,
    ) -> Result<Option<ServicePipeline>> {
        sqlx::query(
            "SELECT * FROM proton_service_pipelines WHERE account_id = $1 AND region = $2 AND service_name = $3",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(service)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(pipeline_from)
        .transpose()
    }

    /// Deploys a service's pipeline again (`UpdateServicePipeline`): records the deployment
    /// `IN_PROGRESS` for the engine. Refused while one runs.
    pub async fn update_service_pipeline(
        &self,
        tenant: &Tenant,
        service: &str,
        deployment: &PipelineDeployment,
    ) -> Result<ServicePipeline> {
        let mut tx = self.write_tx().await?;
        // The service's row, locked on PostgreSQL (SQLite's write transactions are serial):
        // two updates of its pipeline, or one and `DeleteService`, never interleave.
        let pg = self.backend == crate::Backend::Postgres;
        if row(&mut *tx, Table::Service, tenant, &[service], pg)
            .await?
            .is_none()
        {
            return Err(missing_service(service));
        }
        let current = pipeline_row(&mut tx, tenant, service)
            .await?
            .ok_or_else(|| no_pipeline(service))?;
        not_busy(&current, &format!("The pipeline of service {service}"))?;
        let now = Timestamp::now();
        let id = record_pipeline_deployment(&mut tx, tenant, service, deployment, now).await?;
        sqlx::query(
            "UPDATE proton_service_pipelines SET template_name = $4, template_major = $5, template_minor = $6, spec = $7, \
             deployment_status = 'IN_PROGRESS', deployment_status_message = NULL, last_attempted_at = $8, \
             last_attempted_deployment_id = $9 WHERE account_id = $1 AND region = $2 AND service_name = $3",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(service)
        .bind(&deployment.template.name)
        .bind(deployment.template.major)
        .bind(deployment.template.minor)
        .bind(&deployment.spec)
        .bind(now.millis())
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        let row = pipeline_row(&mut tx, tenant, service)
            .await?
            .ok_or_else(|| no_pipeline(service))?;
        self.commit(tx).await?;
        pipeline_from(&row)
    }

    /// The tenant's Proton account settings (all unset until `UpdateAccountSettings`).
    pub async fn account_settings(&self, tenant: &Tenant) -> Result<AccountSettings> {
        let row = sqlx::query(
            "SELECT pipeline_service_role_arn, pipeline_codebuild_role_arn FROM proton_account_settings \
             WHERE account_id = $1 AND region = $2",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(AccountSettings {
                pipeline_service_role_arn: opt_text(&r, "pipeline_service_role_arn")?,
                pipeline_codebuild_role_arn: opt_text(&r, "pipeline_codebuild_role_arn")?,
            }),
            None => Ok(AccountSettings::default()),
        }
    }

    /// Changes the account settings: a role given replaces the current one, an empty one
    /// removes it (as Proton's `UpdateAccountSettings`), one not given stays.
    pub async fn update_account_settings(
        &self,
        tenant: &Tenant,
        pipeline_service_role_arn: Option<&str>,
        pipeline_codebuild_role_arn: Option<&str>,
    ) -> Result<AccountSettings> {
        // Given: replaces (empty: clears); not given: the stored value stays. One statement, so
        // two updates of different settings never undo each other.
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO proton_account_settings (account_id, region, pipeline_service_role_arn, pipeline_codebuild_role_arn) \
             VALUES ($1, $2, NULLIF($3, ''), NULLIF($4, '')) ON CONFLICT (account_id, region) DO UPDATE SET \
             pipeline_service_role_arn = CASE WHEN $5 = 1 THEN excluded.pipeline_service_role_arn \
               ELSE proton_account_settings.pipeline_service_role_arn END, \
             pipeline_codebuild_role_arn = CASE WHEN $6 = 1 THEN excluded.pipeline_codebuild_role_arn \
               ELSE proton_account_settings.pipeline_codebuild_role_arn END",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(pipeline_service_role_arn.unwrap_or(""))
        .bind(pipeline_codebuild_role_arn.unwrap_or(""))
        .bind(i64::from(pipeline_service_role_arn.is_some()))
        .bind(i64::from(pipeline_codebuild_role_arn.is_some()))
        .execute(&mut *tx)
        .await?;
        self.commit(tx).await?;
        self.account_settings(tenant).await
    }
}
