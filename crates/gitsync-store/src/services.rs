//! Proton environments, services and service instances, and the deployments that change them.
//!
//! A deployment made through the API of an instance whose service has a service sync
//! configuration raises a blocker on that instance in the same transaction; deleting a service
//! that service sync deployed raises one on the service. Deployments from Git (service sync)
//! carry their commit and raise nothing.

use crate::rows::{int, opt_text, parsed, text};
use crate::tags::{delete_tags, insert_tags};
use crate::{Page, Result, Store, StoreError};
use gitsync_model::{
    Arn, BlockerScope, DeployedTemplate, DeploymentState, DeploymentStatus, DeploymentTarget,
    Environment, InstanceDeployment, Service, ServiceInstance, SyncBlocker, SyncType, Tag,
    TemplateType, TemplateVersion, TemplateVersionStatus, Tenant, Timestamp,
};
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};
use std::collections::BTreeMap;

/// What a user gives to create an environment (the template version already resolved).
#[derive(Debug, Clone)]
pub struct NewEnvironment {
    pub name: String,
    pub description: Option<String>,
    pub template: DeployedTemplate,
    pub spec: Option<String>,
    pub proton_service_role_arn: Option<String>,
    pub codebuild_role_arn: Option<String>,
    pub component_role_arn: Option<String>,
}

/// What a user gives to create a service; its instances are deployed with it.
#[derive(Debug, Clone)]
pub struct NewService {
    pub name: String,
    pub description: Option<String>,
    pub template_name: String,
    pub template_major: i64,
    pub spec: String,
    pub repository_connection_arn: Option<String>,
    pub repository_id: Option<String>,
    pub branch_name: Option<String>,
}

/// Whether deploying an instance creates it, updates it, or either (service sync).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceWrite {
    Create,
    Update,
    CreateOrUpdate,
}

/// What deploying an instance needs to know besides its spec.
#[derive(Debug, Clone)]
pub struct InstanceContext {
    pub service: Service,
    pub version: TemplateVersion,
    pub environment: Environment,
}

/// An instance deployment's result, and the blocker it raised when it was made outside sync.
#[derive(Debug, Clone)]
pub struct DeployedInstance {
    pub instance: ServiceInstance,
    pub created: bool,
    pub deployment_id: String,
    pub blocker: Option<SyncBlocker>,
}

pub(crate) fn deployment_from(row: &AnyRow) -> Result<DeploymentState> {
    Ok(DeploymentState {
        status: parsed(row, "deployment_status", DeploymentStatus::parse)?,
        status_message: opt_text(row, "deployment_status_message")?,
        last_attempted_at: Timestamp(int(row, "last_attempted_at")?),
        last_succeeded_at: Timestamp(int(row, "last_succeeded_at")?),
        last_attempted_id: opt_text(row, "last_attempted_deployment_id")?,
        last_succeeded_id: opt_text(row, "last_succeeded_deployment_id")?,
    })
}

fn template_from(row: &AnyRow) -> Result<DeployedTemplate> {
    Ok(DeployedTemplate {
        name: text(row, "template_name")?,
        major: int(row, "template_major")?,
        minor: int(row, "template_minor")?,
    })
}

fn environment_from(row: &AnyRow) -> Result<Environment> {
    Ok(Environment {
        name: text(row, "name")?,
        arn: text(row, "arn")?,
        description: opt_text(row, "description")?,
        template: template_from(row)?,
        spec: opt_text(row, "spec")?,
        proton_service_role_arn: opt_text(row, "proton_service_role_arn")?,
        codebuild_role_arn: opt_text(row, "codebuild_role_arn")?,
        component_role_arn: opt_text(row, "component_role_arn")?,
        created_at: Timestamp(int(row, "created_at")?),
        deployment: deployment_from(row)?,
    })
}

fn service_from(row: &AnyRow) -> Result<Service> {
    Ok(Service {
        name: text(row, "name")?,
        arn: text(row, "arn")?,
        description: opt_text(row, "description")?,
        template_name: text(row, "template_name")?,
        template_major: int(row, "template_major")?,
        spec: text(row, "spec")?,
        repository_connection_arn: opt_text(row, "repository_connection_arn")?,
        repository_id: opt_text(row, "repository_id")?,
        branch_name: opt_text(row, "branch_name")?,
        created_at: Timestamp(int(row, "created_at")?),
        last_modified_at: Timestamp(int(row, "last_modified_at")?),
    })
}

fn instance_from(row: &AnyRow) -> Result<ServiceInstance> {
    Ok(ServiceInstance {
        service_name: text(row, "service_name")?,
        name: text(row, "name")?,
        arn: text(row, "arn")?,
        environment_name: text(row, "environment_name")?,
        template: template_from(row)?,
        spec: opt_text(row, "spec")?,
        last_client_request_token: opt_text(row, "last_client_request_token")?,
        source_commit: opt_text(row, "source_commit")?,
        created_at: Timestamp(int(row, "created_at")?),
        deployment: deployment_from(row)?,
    })
}

fn missing_environment(name: &str) -> StoreError {
    StoreError::NotFound(format!("Environment {name} does not exist"))
}

pub(crate) fn missing_service(name: &str) -> StoreError {
    StoreError::NotFound(format!("Service {name} does not exist"))
}

fn missing_instance(service: &str, name: &str) -> StoreError {
    StoreError::NotFound(format!(
        "Service instance {name} of service {service} does not exist"
    ))
}

/// Appends a deployment (`IN_PROGRESS`) to the history; returns its id.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn record_deployment(
    tx: &mut Transaction<'static, Any>,
    tenant: &Tenant,
    kind: &str,
    target: &str,
    environment: &str,
    template: &DeployedTemplate,
    spec: Option<&str>,
    source_commit: Option<&str>,
    attempt_id: Option<i64>,
    now: Timestamp,
) -> Result<String> {
    let target = DeploymentTarget::parse(kind, target)
        .ok_or_else(|| StoreError::corrupt(format!("deployment target {kind} {target}")))?;
    insert_deployment(
        tx,
        tenant,
        &target,
        DeploymentStatus::InProgress,
        environment,
        template,
        (spec, source_commit, attempt_id),
        now,
    )
    .await
}

/// Appends a deployment in `status` to the history and tells the tenant's notification targets
/// (its resource's status change); returns its id.
#[allow(clippy::too_many_arguments)]
async fn insert_deployment(
    tx: &mut Transaction<'static, Any>,
    tenant: &Tenant,
    target: &DeploymentTarget,
    status: DeploymentStatus,
    environment: &str,
    template: &DeployedTemplate,
    (spec, source_commit, attempt_id): (Option<&str>, Option<&str>, Option<i64>),
    now: Timestamp,
) -> Result<String> {
    let previous = sqlx::query(
        "SELECT status FROM proton_deployments WHERE account_id = $1 AND region = $2 AND target_kind = $3 \
         AND target_name = $4 ORDER BY created_at DESC LIMIT 1",
    )
    .bind(&tenant.account_id)
    .bind(&tenant.region)
    .bind(target.kind())
    .bind(target.target_name())
    .fetch_optional(&mut **tx)
    .await?
    .map(|r| text(&r, "status"))
    .transpose()?;
    let id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO proton_deployments (deployment_id, account_id, region, target_kind, target_name, environment_name, \
         template_name, template_major, template_minor, spec, source_commit, status, created_at, attempt_id, next_attempt_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $14, $12, $13, 0)",
    )
    .bind(&id)
    .bind(&tenant.account_id)
    .bind(&tenant.region)
    .bind(target.kind())
    .bind(target.target_name())
    .bind(environment)
    .bind(&template.name)
    .bind(template.major)
    .bind(template.minor)
    .bind(spec)
    .bind(source_commit)
    .bind(now.millis())
    .bind(attempt_id)
    .bind(status.as_str())
    .execute(&mut **tx)
    .await?;
    let arn = Arn::new("proton", tenant, target.arn_resource()).to_string();
    crate::outbox::notify_proton(
        tx,
        tenant,
        target.into(),
        &arn,
        status.as_str(),
        previous.as_deref(),
    )
    .await?;
    Ok(id)
}

/// Refuses a second deployment of a resource while one is in progress, as Proton does.
pub(crate) fn not_busy(row: &AnyRow, what: &str) -> Result<()> {
    let status = text(row, "deployment_status")?;
    let doing = if status == DeploymentStatus::InProgress.as_str() {
        "has a deployment in progress"
    } else if status == DeploymentStatus::DeleteInProgress.as_str() {
        "is being deleted"
    } else if status == DeploymentStatus::Cancelling.as_str() {
        "has a deployment being cancelled"
    } else {
        return Ok(());
    };
    Err(StoreError::StillInUse(format!(
        "{what} {doing} ({}); wait for it to end",
        opt_text(row, "last_attempted_deployment_id")?.unwrap_or_default()
    )))
}

impl Store {
    // ----- template versions as deployments use them -----

    /// The version a deployment uses: `major.minor` as given, or the major's recommended
    /// (highest PUBLISHED) minor. Only PUBLISHED versions can be deployed.
    pub async fn deployable_template_version(
        &self,
        tenant: &Tenant,
        template_type: TemplateType,
        name: &str,
        major: i64,
        minor: Option<i64>,
    ) -> Result<TemplateVersion> {
        let kind = match template_type {
            TemplateType::Environment => "Environment",
            TemplateType::Service => "Service",
        };
        self.get_template(tenant, template_type, name).await?;
        let minor = match minor {
            Some(m) => m,
            None => {
                let page = self
                    .list_template_versions(tenant, template_type, name, Some(major), None, 1)
                    .await?;
                page.items
                    .first()
                    .and_then(|v| v.recommended_minor)
                    .ok_or_else(|| {
                        StoreError::Invalid(format!(
                            "{kind} template {name} has no PUBLISHED version in major version {major}: \
                             publish one with Update{kind}TemplateVersion (status PUBLISHED)"
                        ))
                    })?
            }
        };
        let version = self
            .get_template_version(tenant, template_type, name, major, minor)
            .await?;
        if version.status != TemplateVersionStatus::Published {
            return Err(StoreError::Invalid(format!(
                "{kind} template {name} version {major}.{minor} is {}, not PUBLISHED: publish it with Update{kind}TemplateVersion",
                version.status
            )));
        }
        Ok(version)
    }

    /// The service, the template version (`major` defaults to the service's, `minor` to the
    /// recommended one) and the environment an instance deployment uses.
    pub async fn instance_context(
        &self,
        tenant: &Tenant,
        service: &str,
        environment: &str,
        major: Option<i64>,
        minor: Option<i64>,
    ) -> Result<InstanceContext> {
        let service = self.get_service(tenant, service).await?;
        let version = self
            .deployable_template_version(
                tenant,
                TemplateType::Service,
                &service.template_name,
                major.unwrap_or(service.template_major),
                minor,
            )
            .await?;
        let environment = self.get_environment(tenant, environment).await?;
        Ok(InstanceContext {
            service,
            version,
            environment,
        })
    }

    // ----- environments -----

    pub async fn create_environment(
        &self,
        tenant: &Tenant,
        new: &NewEnvironment,
        tags: &[Tag],
    ) -> Result<Environment> {
        let mut tx = self.write_tx().await?;
        let now = Timestamp::now();
        let arn = Arn::new("proton", tenant, format!("environment/{}", new.name)).to_string();
        let deployment = record_deployment(
            &mut tx,
            tenant,
            "ENVIRONMENT",
            &new.name,
            &new.name,
            &new.template,
            new.spec.as_deref(),
            None,
            None,
            now,
        )
        .await?;
        // Proton requires lastDeploymentSucceededAt of every environment: until one succeeds it
        // is the creation time, and last_succeeded_deployment_id stays empty.
        let inserted = sqlx::query(
            "INSERT INTO proton_environments (account_id, region, name, arn, description, template_name, template_major, template_minor, \
             spec, proton_service_role_arn, codebuild_role_arn, component_role_arn, created_at, deployment_status, last_attempted_at, \
             last_succeeded_at, last_attempted_deployment_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'IN_PROGRESS', $13, $13, $14)",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(&new.name)
        .bind(&arn)
        .bind(&new.description)
        .bind(&new.template.name)
        .bind(new.template.major)
        .bind(new.template.minor)
        .bind(&new.spec)
        .bind(&new.proton_service_role_arn)
        .bind(&new.codebuild_role_arn)
        .bind(&new.component_role_arn)
        .bind(now.millis())
        .bind(&deployment)
        .execute(&mut *tx)
        .await;
        crate::rows::unique(inserted, || {
            format!("Environment {} already exists", new.name)
        })?;
        let target = DeploymentTarget::Environment {
            name: new.name.clone(),
        };
        if let Some(stack) = crate::deployments::take_binding(&mut tx, tenant, &target).await? {
            sqlx::query(
                "UPDATE proton_environments SET stack_name = $4, stack_adopt = 1 WHERE account_id = $1 AND region = $2 AND name = $3",
            )
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(&new.name)
            .bind(stack)
            .execute(&mut *tx)
            .await?;
        }
        insert_tags(&mut tx, tenant, &arn, tags, self.limits.tags_per_resource).await?;
        self.commit(tx).await?;
        self.get_environment(tenant, &new.name).await
    }

    pub async fn get_environment(&self, tenant: &Tenant, name: &str) -> Result<Environment> {
        let row = row(&self.pool, Table::Environment, tenant, &[name], false)
            .await?
            .ok_or_else(|| missing_environment(name))?;
        environment_from(&row)
    }

    /// Environments by name; `templates` keeps those of the given (template, major) pairs.
    pub async fn list_environments(
        &self,
        tenant: &Tenant,
        templates: &[(String, i64)],
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Environment>> {
        let rows = sqlx::query(
            "SELECT * FROM proton_environments WHERE account_id = $1 AND region = $2 AND name > $3 ORDER BY name",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(after.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        let mut items = Vec::new();
        for row in &rows {
            let e = environment_from(row)?;
            if templates.is_empty()
                || templates
                    .iter()
                    .any(|(t, m)| *t == e.template.name && *m == e.template.major)
            {
                items.push(e);
            }
        }
        Ok(Page::cut(items, limit, |e| e.name.clone()))
    }

    /// Changes an environment's description and roles and, with `deploy` (template version,
    /// spec), deploys it again.
    pub async fn update_environment(
        &self,
        tenant: &Tenant,
        name: &str,
        description: Option<&str>,
        deploy: Option<(&DeployedTemplate, Option<&str>)>,
        roles: [Option<&str>; 3],
    ) -> Result<Environment> {
        let mut tx = self.write_tx().await?;
        if deploy.is_some() {
            let pg = self.backend == crate::Backend::Postgres;
            let current = row(&mut *tx, Table::Environment, tenant, &[name], pg)
                .await?
                .ok_or_else(|| missing_environment(name))?;
            not_busy(&current, &format!("Environment {name}"))?;
        }
        let [service_role, codebuild_role, component_role] = roles;
        let updated = sqlx::query(
            "UPDATE proton_environments SET description = COALESCE($4, description), \
             proton_service_role_arn = COALESCE($5, proton_service_role_arn), codebuild_role_arn = COALESCE($6, codebuild_role_arn), \
             component_role_arn = COALESCE($7, component_role_arn) WHERE account_id = $1 AND region = $2 AND name = $3",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(name)
        .bind(description)
        .bind(service_role)
        .bind(codebuild_role)
        .bind(component_role)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(missing_environment(name));
        }
        if let Some((template, spec)) = deploy {
            let now = Timestamp::now();
            let deployment = record_deployment(
                &mut tx,
                tenant,
                "ENVIRONMENT",
                name,
                name,
                template,
                spec,
                None,
                None,
                now,
            )
            .await?;
            sqlx::query(
                "UPDATE proton_environments SET template_name = $4, template_major = $5, template_minor = $6, spec = COALESCE($7, spec), \
                 deployment_status = 'IN_PROGRESS', deployment_status_message = NULL, last_attempted_at = $8, \
                 last_attempted_deployment_id = $9 \
                 WHERE account_id = $1 AND region = $2 AND name = $3",
            )
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(name)
            .bind(&template.name)
            .bind(template.major)
            .bind(template.minor)
            .bind(spec)
            .bind(now.millis())
            .bind(&deployment)
            .execute(&mut *tx)
            .await?;
        }
        self.commit(tx).await?;
        self.get_environment(tenant, name).await
    }

    /// Deletes an environment no service instance runs in.
    pub async fn delete_environment(&self, tenant: &Tenant, name: &str) -> Result<Environment> {
        let mut tx = self.write_tx().await?;
        let pg = self.backend == crate::Backend::Postgres;
        let row = row(&mut *tx, Table::Environment, tenant, &[name], pg)
            .await?
            .ok_or_else(|| missing_environment(name))?;
        let mut environment = environment_from(&row)?;
        not_busy(&row, &format!("Environment {name}"))?;
        let users: Vec<AnyRow> = sqlx::query(
            "SELECT service_name, name FROM proton_service_instances WHERE account_id = $1 AND region = $2 \
             AND environment_name = $3 ORDER BY service_name, name LIMIT 3",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(name)
        .fetch_all(&mut *tx)
        .await?;
        if !users.is_empty() {
            let names = users
                .iter()
                .map(|r| Ok(format!("{}/{}", text(r, "service_name")?, text(r, "name")?)))
                .collect::<Result<Vec<_>>>()?;
            return Err(StoreError::Conflict(format!(
                "Environment {name} still has service instances ({}); delete or move them first",
                names.join(", ")
            )));
        }
        let target = DeploymentTarget::Environment {
            name: name.to_string(),
        };
        if opt_text(&row, "stack_name")?.is_some() {
            // Its stack is deleted first (engine work); the environment goes when it is gone.
            start_deletion(&mut tx, tenant, &target, name, &environment.template).await?;
            self.commit(tx).await?;
            return self.get_environment(tenant, name).await;
        }
        delete_resource(&mut tx, tenant, &target).await?;
        self.commit(tx).await?;
        environment.deployment.status = DeploymentStatus::DeleteComplete;
        Ok(environment)
    }

    // ----- services -----

    /// Creates a service and deploys the instances its spec lists and its pipeline (when its
    /// template version has one), in one transaction.
    pub async fn create_service(
        &self,
        tenant: &Tenant,
        new: &NewService,
        instances: &[(String, InstanceDeployment)],
        pipeline: Option<&crate::PipelineDeployment>,
        tags: &[Tag],
    ) -> Result<(Service, Vec<DeployedInstance>)> {
        let mut tx = self.write_tx().await?;
        let now = Timestamp::now();
        let arn = Arn::new("proton", tenant, format!("service/{}", new.name)).to_string();
        let inserted = sqlx::query(
            "INSERT INTO proton_services (account_id, region, name, arn, description, template_name, template_major, spec, \
             repository_connection_arn, repository_id, branch_name, created_at, last_modified_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(&new.name)
        .bind(&arn)
        .bind(&new.description)
        .bind(&new.template_name)
        .bind(new.template_major)
        .bind(&new.spec)
        .bind(&new.repository_connection_arn)
        .bind(&new.repository_id)
        .bind(&new.branch_name)
        .bind(now.millis())
        .execute(&mut *tx)
        .await;
        crate::rows::unique(inserted, || format!("Service {} already exists", new.name))?;
        insert_tags(&mut tx, tenant, &arn, tags, self.limits.tags_per_resource).await?;
        let mut deployed = Vec::new();
        for (name, deployment) in instances {
            deployed.push(
                deploy_instance_in(
                    &mut tx,
                    self.backend == crate::Backend::Postgres,
                    tenant,
                    &new.name,
                    name,
                    deployment,
                    InstanceWrite::Create,
                    &[],
                    self.limits.tags_per_resource,
                    None,
                )
                .await?,
            );
        }
        if let Some(pipeline) = pipeline {
            crate::pipelines::create_pipeline_in(&mut tx, tenant, &new.name, pipeline).await?;
        }
        self.commit(tx).await?;
        Ok((self.get_service(tenant, &new.name).await?, deployed))
    }

    pub async fn get_service(&self, tenant: &Tenant, name: &str) -> Result<Service> {
        let row = row(&self.pool, Table::Service, tenant, &[name], false)
            .await?
            .ok_or_else(|| missing_service(name))?;
        service_from(&row)
    }

    pub async fn list_services(
        &self,
        tenant: &Tenant,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Service>> {
        let rows = sqlx::query(
            "SELECT * FROM proton_services WHERE account_id = $1 AND region = $2 AND name > $3 ORDER BY name LIMIT $4",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(after.unwrap_or(""))
        .bind(limit as i64 + 1)
        .fetch_all(&self.pool)
        .await?;
        Page::from_rows(rows, limit, service_from, |s| s.name.clone())
    }

    /// Changes a service's description or spec, deploys the instances the new spec adds and
    /// deletes those it leaves out (`removed`), as Proton's UpdateService does.
    pub async fn update_service(
        &self,
        tenant: &Tenant,
        name: &str,
        description: Option<&str>,
        spec: Option<&str>,
        new_instances: &[(String, InstanceDeployment)],
        removed: &[String],
    ) -> Result<(Service, Vec<DeployedInstance>, Option<SyncBlocker>)> {
        let mut tx = self.write_tx().await?;
        let updated = sqlx::query(
            "UPDATE proton_services SET description = COALESCE($4, description), spec = COALESCE($5, spec), last_modified_at = $6 \
             WHERE account_id = $1 AND region = $2 AND name = $3",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(name)
        .bind(description)
        .bind(spec)
        .bind(Timestamp::now().millis())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(missing_service(name));
        }
        let mut deployed = Vec::new();
        for (instance, deployment) in new_instances {
            deployed.push(
                deploy_instance_in(
                    &mut tx,
                    self.backend == crate::Backend::Postgres,
                    tenant,
                    name,
                    instance,
                    deployment,
                    InstanceWrite::Create,
                    &[],
                    self.limits.tags_per_resource,
                    None,
                )
                .await?,
            );
        }
        let mut gone = Vec::new();
        for instance in removed {
            if let Some(row) =
                row(&mut *tx, Table::Instance, tenant, &[name, instance], false).await?
            {
                gone.push(instance_from(&row)?);
            }
        }
        let blocker = remove_instances(&mut tx, tenant, name, &gone, "UpdateService").await?;
        self.commit(tx).await?;
        Ok((self.get_service(tenant, name).await?, deployed, blocker))
    }

    /// Deletes a service, its instances and its pipeline (their stacks are deleted by the
    /// engine, then they go). When service sync deployed any of them and the
    /// service still has a service sync configuration, a blocker on the service is raised: the
    /// next commit must not quietly bring the instances back.
    pub async fn delete_service(
        &self,
        tenant: &Tenant,
        name: &str,
    ) -> Result<(Service, Option<SyncBlocker>)> {
        let mut tx = self.write_tx().await?;
        let pg = self.backend == crate::Backend::Postgres;
        let row = row(&mut *tx, Table::Service, tenant, &[name], pg)
            .await?
            .ok_or_else(|| missing_service(name))?;
        let service = service_from(&row)?;
        let instances = sqlx::query(
            "SELECT * FROM proton_service_instances WHERE account_id = $1 AND region = $2 AND service_name = $3 ORDER BY name",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(name)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(instance_from)
        .collect::<Result<Vec<_>>>()?;
        let blocker = remove_instances(&mut tx, tenant, name, &instances, "DeleteService").await?;
        crate::pipelines::remove_pipeline_in(&mut tx, tenant, name).await?;
        sqlx::query(
            "DELETE FROM proton_services WHERE account_id = $1 AND region = $2 AND name = $3",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        delete_tags(&mut tx, tenant, &service.arn).await?;
        self.commit(tx).await?;
        Ok((service, blocker))
    }

    // ----- service instances -----

    /// Creates or updates an instance and records the deployment. Made through the API
    /// (`source_commit` None) while the service has a service sync configuration, it raises a
    /// blocker on the instance.
    pub async fn deploy_service_instance(
        &self,
        tenant: &Tenant,
        service: &str,
        name: &str,
        deployment: &InstanceDeployment,
        write: InstanceWrite,
        tags: &[Tag],
    ) -> Result<DeployedInstance> {
        let mut tx = self.write_tx().await?;
        let deployed = deploy_instance_in(
            &mut tx,
            self.backend == crate::Backend::Postgres,
            tenant,
            service,
            name,
            deployment,
            write,
            tags,
            self.limits.tags_per_resource,
            None,
        )
        .await?;
        self.commit(tx).await?;
        Ok(deployed)
    }

    pub async fn get_service_instance(
        &self,
        tenant: &Tenant,
        service: &str,
        name: &str,
    ) -> Result<ServiceInstance> {
        let row = row(&self.pool, Table::Instance, tenant, &[service, name], false)
            .await?
            .ok_or_else(|| missing_instance(service, name))?;
        instance_from(&row)
    }

    /// Every instance of the tenant, or of one service (which must exist), by service and name.
    /// Filtering and ordering are the caller's: instance counts are small.
    pub async fn service_instances(
        &self,
        tenant: &Tenant,
        service: Option<&str>,
    ) -> Result<Vec<ServiceInstance>> {
        if let Some(s) = service {
            self.get_service(tenant, s).await?;
        }
        let rows = sqlx::query(
            "SELECT * FROM proton_service_instances WHERE account_id = $1 AND region = $2 \
             AND ($3 = '' OR service_name = $3) ORDER BY service_name, name",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(service.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(instance_from).collect()
    }

    // ----- service sync's branches -----

    /// Remembers the branches a service's proton-ops file names (other than its own) and the
    /// entries on each, so the engine watches them. Returns the branches whose entries changed
    /// (added, removed or edited): only those need another look at their head.
    pub async fn set_service_sync_branches(
        &self,
        tenant: &Tenant,
        service: &str,
        branches: &BTreeMap<String, String>,
    ) -> Result<Vec<String>> {
        let mut tx = self.write_tx().await?;
        let rows = sqlx::query(
            "SELECT branch, entries FROM service_sync_branches WHERE account_id = $1 AND region = $2 AND service_name = $3",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(service)
        .fetch_all(&mut *tx)
        .await?;
        let mut before = BTreeMap::new();
        for row in &rows {
            before.insert(text(row, "branch")?, text(row, "entries")?);
        }
        if &before == branches {
            return Ok(Vec::new());
        }
        let changed: Vec<String> = before
            .keys()
            .chain(branches.keys())
            .filter(|b| before.get(*b) != branches.get(*b))
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        sqlx::query(
            "DELETE FROM service_sync_branches WHERE account_id = $1 AND region = $2 AND service_name = $3",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(service)
        .execute(&mut *tx)
        .await?;
        for (branch, entries) in branches {
            sqlx::query(
                "INSERT INTO service_sync_branches (account_id, region, service_name, branch, entries) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(service)
            .bind(branch)
            .bind(entries)
            .execute(&mut *tx)
            .await?;
        }
        crate::branches::watch_configured_branches(&mut tx, tenant).await?;
        self.commit(tx).await?;
        Ok(changed)
    }
}

async fn has_service_sync(
    tx: &mut Transaction<'static, Any>,
    tenant: &Tenant,
    service: &str,
) -> Result<bool> {
    Ok(sqlx::query(
        "SELECT 1 FROM service_sync_configs WHERE account_id = $1 AND region = $2 AND service_name = $3",
    )
    .bind(&tenant.account_id)
    .bind(&tenant.region)
    .bind(service)
    .fetch_optional(&mut **tx)
    .await?
    .is_some())
}

/// The rows these operations read by key.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Table {
    Environment,
    Service,
    /// Keyed by (service, name).
    Instance,
}

/// A row by its key within the tenant (`[name]`, or `[service, name]` for an instance). With
/// `lock` on PostgreSQL it stays locked for the rest of the transaction, so a concurrent delete of
/// a service or environment waits for a deployment into it (SQLite write transactions are serial
/// already).
pub(crate) async fn row<'e, E>(
    executor: E,
    table: Table,
    tenant: &Tenant,
    key: &[&str],
    lock: bool,
) -> Result<Option<AnyRow>>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let sql = match (table, lock) {
        (Table::Environment, false) => {
            "SELECT * FROM proton_environments WHERE account_id = $1 AND region = $2 AND name = $3"
        }
        (Table::Environment, true) => {
            "SELECT * FROM proton_environments WHERE account_id = $1 AND region = $2 AND name = $3 FOR UPDATE"
        }
        (Table::Service, false) => {
            "SELECT * FROM proton_services WHERE account_id = $1 AND region = $2 AND name = $3"
        }
        (Table::Service, true) => {
            "SELECT * FROM proton_services WHERE account_id = $1 AND region = $2 AND name = $3 FOR UPDATE"
        }
        (Table::Instance, _) => {
            "SELECT * FROM proton_service_instances WHERE account_id = $1 AND region = $2 AND service_name = $3 AND name = $4"
        }
    };
    let mut query = sqlx::query(sql)
        .bind(&tenant.account_id)
        .bind(&tenant.region);
    for k in key {
        query = query.bind(*k);
    }
    Ok(query.fetch_optional(executor).await?)
}

/// An ACTIVE blocker that stops service sync from deploying this instance, if any.
async fn active_blocker(
    tx: &mut Transaction<'static, Any>,
    tenant: &Tenant,
    service: &str,
    name: &str,
) -> Result<Option<String>> {
    let row = sqlx::query(
        "SELECT created_reason FROM sync_blockers WHERE account_id = $1 AND region = $2 AND sync_type = 'SERVICE_SYNC' \
         AND status = 'ACTIVE' AND ((parent_resource_name = $3 AND resource_name = $4) \
           OR (parent_resource_name IS NULL AND resource_name = $3)) ORDER BY created_at LIMIT 1",
    )
    .bind(&tenant.account_id)
    .bind(&tenant.region)
    .bind(service)
    .bind(name)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|r| text(&r, "created_reason")).transpose()
}

/// The instances of a service that service sync has deployed at some point (a target with an
/// applied commit), whatever changed them since.
async fn synced_instances(
    tx: &mut Transaction<'static, Any>,
    tenant: &Tenant,
    service: &str,
) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT target_key FROM sync_targets WHERE account_id = $1 AND region = $2 AND sync_type = 'SERVICE_SYNC' \
         AND applied_revision IS NOT NULL AND parent_key = $3",
    )
    .bind(&tenant.account_id)
    .bind(&tenant.region)
    .bind(service)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|r| {
            let key = text(r, "target_key")?;
            match gitsync_model::SyncTarget::from_key(SyncType::ServiceSync, &key) {
                Some(gitsync_model::SyncTarget::ServiceInstance { instance_name, .. }) => {
                    Ok(instance_name)
                }
                _ => Err(StoreError::corrupt(format!(
                    "service instance target_key '{key}'"
                ))),
            }
        })
        .collect()
}

/// Deletes instances of a service; when service sync had deployed any of them and the service
/// has a service sync configuration, raises a blocker on the service (Git must not quietly
/// bring them back).
async fn remove_instances(
    tx: &mut Transaction<'static, Any>,
    tenant: &Tenant,
    service: &str,
    removed: &[ServiceInstance],
    operation: &str,
) -> Result<Option<SyncBlocker>> {
    let synced = synced_instances(tx, tenant, service).await?;
    let names: Vec<&str> = removed
        .iter()
        .filter(|i| i.source_commit.is_some() || synced.contains(&i.name))
        .map(|i| i.name.as_str())
        .collect();
    let blocker = if !names.is_empty() && has_service_sync(tx, tenant, service).await? {
        let reason = format!(
            "Synced instances of service {service} were deleted outside service sync ({operation}: {})",
            names.join(", ")
        );
        let contexts = vec![
            ("ServiceName".to_string(), service.to_string()),
            ("DeletedInstances".to_string(), names.join(",")),
            ("Operation".to_string(), operation.to_string()),
        ];
        let scope = BlockerScope {
            sync_type: SyncType::ServiceSync,
            resource_name: service.to_string(),
            parent_resource_name: None,
        };
        Some(crate::status::insert_blocker(tx, tenant, &scope, &reason, &contexts).await?)
    } else {
        None
    };
    for instance in removed {
        let target = DeploymentTarget::ServiceInstance {
            service: service.to_string(),
            instance: instance.name.clone(),
        };
        let Some(row) = row(
            &mut **tx,
            Table::Instance,
            tenant,
            &[service, &instance.name],
            false,
        )
        .await?
        else {
            continue;
        };
        not_busy(
            &row,
            &format!("Service instance {} of service {service}", instance.name),
        )?;
        if opt_text(&row, "stack_name")?.is_some() {
            // Its stack is deleted first (engine work); the instance goes when it is gone.
            start_deletion(
                tx,
                tenant,
                &target,
                &instance.environment_name,
                &instance.template,
            )
            .await?;
        } else {
            delete_resource(tx, tenant, &target).await?;
        }
    }
    Ok(blocker)
}

/// Records the deletion of a resource's stack as a deployment (`DELETE_IN_PROGRESS`, for the
/// engine to run) and marks the resource so.
pub(crate) async fn start_deletion(
    tx: &mut Transaction<'static, Any>,
    tenant: &Tenant,
    target: &DeploymentTarget,
    environment: &str,
    template: &DeployedTemplate,
) -> Result<()> {
    let now = Timestamp::now();
    let id = insert_deployment(
        tx,
        tenant,
        target,
        DeploymentStatus::DeleteInProgress,
        environment,
        template,
        (None, None, None),
        now,
    )
    .await?;
    const SET: &str = "SET deployment_status = 'DELETE_IN_PROGRESS', deployment_status_message = NULL, \
         last_attempted_at = $3, last_attempted_deployment_id = $4 WHERE account_id = $1 AND region = $2";
    let (sql, key) = crate::deployments::update_resource(target, SET, 5);
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(now.millis())
        .bind(&id);
    for part in key {
        query = query.bind(part);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// Removes an environment, instance or pipeline and its tags (its deployment history stays).
pub(crate) async fn delete_resource(
    tx: &mut Transaction<'static, Any>,
    tenant: &Tenant,
    target: &DeploymentTarget,
) -> Result<()> {
    let resource = crate::deployments::ResourceRow::of(target);
    let (key, values) = resource.key_from(3);
    let bound = |sql: String| {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.account_id.clone())
            .bind(tenant.region.clone());
        for value in &values {
            query = query.bind(value.clone());
        }
        query
    };
    let Some(row) = bound(format!(
        "SELECT arn FROM {} WHERE account_id = $1 AND region = $2{key}",
        resource.table
    ))
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(());
    };
    delete_tags(tx, tenant, &text(&row, "arn")?).await?;
    bound(format!(
        "DELETE FROM {} WHERE account_id = $1 AND region = $2{key}",
        resource.table
    ))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn deploy_instance_in(
    tx: &mut Transaction<'static, Any>,
    pg: bool,
    tenant: &Tenant,
    service: &str,
    name: &str,
    deployment: &InstanceDeployment,
    write: InstanceWrite,
    tags: &[Tag],
    tag_limit: u32,
    attempt_id: Option<i64>,
) -> Result<DeployedInstance> {
    if row(&mut **tx, Table::Service, tenant, &[service], pg)
        .await?
        .is_none()
    {
        return Err(missing_service(service));
    }
    // Service sync never deploys over a change a blocker protects, even one made while its
    // attempt was running.
    if deployment.source_commit.is_some()
        && let Some(reason) = active_blocker(tx, tenant, service, name).await?
    {
        return Err(StoreError::Conflict(format!("Sync blocked: {reason}")));
    }
    let environment = row(
        &mut **tx,
        Table::Environment,
        tenant,
        &[&deployment.environment_name],
        pg,
    )
    .await?;
    if environment.is_none() {
        return Err(StoreError::NotFound(format!(
            "Environment {} does not exist (service instance {name} is to run in it)",
            deployment.environment_name
        )));
    }
    let existing = row(&mut **tx, Table::Instance, tenant, &[service, name], false).await?;
    if let Some(current) = &existing {
        not_busy(
            current,
            &format!("Service instance {name} of service {service}"),
        )?;
    }
    let now = Timestamp::now();
    let target = DeploymentTarget::ServiceInstance {
        service: service.to_string(),
        instance: name.to_string(),
    };
    let deployment_id = record_deployment(
        tx,
        tenant,
        target.kind(),
        &target.target_name(),
        &deployment.environment_name,
        &deployment.template,
        Some(&deployment.spec),
        deployment.source_commit.as_deref(),
        attempt_id,
        now,
    )
    .await?;
    let arn = Arn::new(
        "proton",
        tenant,
        format!("service/{service}/service-instance/{name}"),
    )
    .to_string();
    let created = match (&existing, write) {
        (Some(_), InstanceWrite::Create) => {
            return Err(StoreError::AlreadyExists(format!(
                "Service instance {name} of service {service} already exists"
            )));
        }
        (None, InstanceWrite::Update) => return Err(missing_instance(service, name)),
        (Some(_), _) => {
            sqlx::query(
                "UPDATE proton_service_instances SET environment_name = $5, template_name = $6, template_major = $7, template_minor = $8, \
                 spec = $9, last_client_request_token = COALESCE($10, last_client_request_token), source_commit = $11, \
                 deployment_status = 'IN_PROGRESS', deployment_status_message = NULL, last_attempted_at = $12, \
                 last_attempted_deployment_id = $13 \
                 WHERE account_id = $1 AND region = $2 AND service_name = $3 AND name = $4",
            )
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(service)
            .bind(name)
            .bind(&deployment.environment_name)
            .bind(&deployment.template.name)
            .bind(deployment.template.major)
            .bind(deployment.template.minor)
            .bind(&deployment.spec)
            .bind(&deployment.client_token)
            .bind(&deployment.source_commit)
            .bind(now.millis())
            .bind(&deployment_id)
            .execute(&mut **tx)
            .await?;
            false
        }
        (None, _) => {
            let inserted = sqlx::query(
                "INSERT INTO proton_service_instances (account_id, region, service_name, name, arn, environment_name, template_name, \
                 template_major, template_minor, spec, last_client_request_token, source_commit, created_at, deployment_status, \
                 last_attempted_at, last_succeeded_at, last_attempted_deployment_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'IN_PROGRESS', $13, $13, $14)",
            )
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(service)
            .bind(name)
            .bind(&arn)
            .bind(&deployment.environment_name)
            .bind(&deployment.template.name)
            .bind(deployment.template.major)
            .bind(deployment.template.minor)
            .bind(&deployment.spec)
            .bind(&deployment.client_token)
            .bind(&deployment.source_commit)
            .bind(now.millis())
            .bind(&deployment_id)
            .execute(&mut **tx)
            .await;
            crate::rows::unique(inserted, || {
                format!("Service instance {name} of service {service} already exists")
            })?;
            if let Some(stack) = crate::deployments::take_binding(tx, tenant, &target).await? {
                sqlx::query(
                    "UPDATE proton_service_instances SET stack_name = $5, stack_adopt = 1 \
                     WHERE account_id = $1 AND region = $2 AND service_name = $3 AND name = $4",
                )
                .bind(&tenant.account_id)
                .bind(&tenant.region)
                .bind(service)
                .bind(name)
                .bind(stack)
                .execute(&mut **tx)
                .await?;
            }
            true
        }
    };
    insert_tags(tx, tenant, &arn, tags, tag_limit).await?;
    let blocker = if deployment.source_commit.is_none()
        && has_service_sync(tx, tenant, service).await?
    {
        let operation = if created {
            "CreateServiceInstance"
        } else {
            "UpdateServiceInstance"
        };
        let reason = format!(
            "Service instance {name} was {} outside service sync ({operation}); Git will not overwrite it until this blocker is resolved",
            if created { "created" } else { "updated" }
        );
        let contexts = vec![
            ("ServiceName".to_string(), service.to_string()),
            ("ServiceInstanceName".to_string(), name.to_string()),
            ("Operation".to_string(), operation.to_string()),
            ("DeploymentId".to_string(), deployment_id.clone()),
        ];
        let scope = BlockerScope {
            sync_type: SyncType::ServiceSync,
            resource_name: name.to_string(),
            parent_resource_name: Some(service.to_string()),
        };
        Some(crate::status::insert_blocker(tx, tenant, &scope, &reason, &contexts).await?)
    } else {
        None
    };
    let written = row(&mut **tx, Table::Instance, tenant, &[service, name], false)
        .await?
        .ok_or_else(|| missing_instance(service, name))?;
    Ok(DeployedInstance {
        instance: instance_from(&written)?,
        created,
        deployment_id,
        blocker,
    })
}
