//! Proton environments, services and service instances on the wire.
//!
//! Specs are YAML; each is checked against its template version's schema (`environment_input_type`
//! or `service_input_type`, and `pipeline_input_type` for a service's pipeline) before anything is
//! written, and the error names the environment or instance, the input and the rule. Writes record
//! deployments `IN_PROGRESS`; the engine deploys them (docs/proton.md).

use crate::Api;
use crate::dispatch::run;
use crate::dto::proton as dto;
use crate::error::ApiError;
use crate::pipelines::{PipelinePlan, pipeline_out, plan_pipeline};
use crate::proton::tags_in;
use crate::service::Service;
use gitsync_deploy::spec::{
    InputKind, InstanceSpec, Schema, ServiceSpec, environment_inputs, plan_instance,
};
use gitsync_model::{
    DeployedTemplate, DeploymentState, Environment, InstanceDeployment, ServiceInstance,
    ServicePipeline, TemplateType, TemplateVersion, Tenant,
};
use gitsync_store::{InstanceWrite, NewEnvironment, NewService, StoreError};
use serde_json::Value;

/// The operations this module answers.
pub(crate) fn serves(operation: &str) -> bool {
    matches!(
        operation,
        "CreateEnvironment"
            | "GetEnvironment"
            | "ListEnvironments"
            | "UpdateEnvironment"
            | "DeleteEnvironment"
            | "CreateService"
            | "GetService"
            | "ListServices"
            | "UpdateService"
            | "DeleteService"
            | "CreateServiceInstance"
            | "GetServiceInstance"
            | "ListServiceInstances"
            | "UpdateServiceInstance"
    )
}

pub(crate) async fn call(
    api: &Api,
    tenant: &Tenant,
    operation: &str,
    input: Value,
) -> Result<Value, ApiError> {
    let ops = Ops { api, tenant };
    match operation {
        "CreateEnvironment" => run(input, |i| ops.create_environment(i)).await,
        "GetEnvironment" => run(input, |i| ops.get_environment(i)).await,
        "ListEnvironments" => run(input, |i| ops.list_environments(i)).await,
        "UpdateEnvironment" => run(input, |i| ops.update_environment(i)).await,
        "DeleteEnvironment" => run(input, |i| ops.delete_environment(i)).await,
        "CreateService" => run(input, |i| ops.create_service(i)).await,
        "GetService" => run(input, |i| ops.get_service(i)).await,
        "ListServices" => run(input, |i| ops.list_services(i)).await,
        "UpdateService" => run(input, |i| ops.update_service(i)).await,
        "DeleteService" => run(input, |i| ops.delete_service(i)).await,
        "CreateServiceInstance" => run(input, |i| ops.create_service_instance(i)).await,
        "GetServiceInstance" => run(input, |i| ops.get_service_instance(i)).await,
        "ListServiceInstances" => run(input, |i| ops.list_service_instances(i)).await,
        "UpdateServiceInstance" => run(input, |i| ops.update_service_instance(i)).await,
        other => unreachable!("services does not serve {other}"),
    }
}

fn err(e: StoreError) -> ApiError {
    ApiError::from_store(Service::Proton, e)
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::invalid(Service::Proton, message)
}

/// A version number given as text (`templateMajorVersion`, `templateMinorVersion`).
pub(crate) fn version_part(member: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .map(|v| {
            v.parse().map_err(|_| {
                invalid(format!(
                    "{member}: not a version number this server can hold"
                ))
            })
        })
        .transpose()
}

/// Page sizes: `maxResults` (at most 100), 50 by default.
fn page_size(max_results: Option<i32>) -> usize {
    max_results.filter(|n| *n > 0).map_or(50, |n| n as usize)
}

pub(crate) fn status_out(d: &DeploymentState) -> dto::DeploymentStatus {
    dto::DeploymentStatus::parse(d.status.as_str()).unwrap_or_default()
}

pub(crate) fn environment_out(e: &Environment) -> dto::Environment {
    dto::Environment {
        arn: e.arn.clone(),
        codebuild_role_arn: e.codebuild_role_arn.clone(),
        component_role_arn: e.component_role_arn.clone(),
        created_at: e.created_at.into(),
        deployment_status: status_out(&e.deployment),
        deployment_status_message: e.deployment.status_message.clone(),
        description: e.description.clone(),
        last_attempted_deployment_id: e.deployment.last_attempted_id.clone(),
        last_deployment_attempted_at: e.deployment.last_attempted_at.into(),
        last_deployment_succeeded_at: e.deployment.last_succeeded_at.into(),
        last_succeeded_deployment_id: e.deployment.last_succeeded_id.clone(),
        name: e.name.clone(),
        proton_service_role_arn: e.proton_service_role_arn.clone(),
        spec: e.spec.clone(),
        template_major_version: e.template.major.to_string(),
        template_minor_version: e.template.minor.to_string(),
        template_name: e.template.name.clone(),
        ..Default::default()
    }
}

fn environment_summary(e: &Environment) -> dto::EnvironmentSummary {
    let full = environment_out(e);
    dto::EnvironmentSummary {
        arn: full.arn,
        component_role_arn: full.component_role_arn,
        created_at: full.created_at,
        deployment_status: full.deployment_status,
        deployment_status_message: full.deployment_status_message,
        description: full.description,
        last_attempted_deployment_id: full.last_attempted_deployment_id,
        last_deployment_attempted_at: full.last_deployment_attempted_at,
        last_deployment_succeeded_at: full.last_deployment_succeeded_at,
        last_succeeded_deployment_id: full.last_succeeded_deployment_id,
        name: full.name,
        proton_service_role_arn: full.proton_service_role_arn,
        template_major_version: full.template_major_version,
        template_minor_version: full.template_minor_version,
        template_name: full.template_name,
        ..Default::default()
    }
}

fn service_out(svc: &gitsync_model::Service, pipeline: Option<&ServicePipeline>) -> dto::Service {
    dto::Service {
        arn: svc.arn.clone(),
        branch_name: svc.branch_name.clone(),
        created_at: svc.created_at.into(),
        description: svc.description.clone(),
        last_modified_at: svc.last_modified_at.into(),
        name: svc.name.clone(),
        pipeline: pipeline.map(pipeline_out),
        repository_connection_arn: svc.repository_connection_arn.clone(),
        repository_id: svc.repository_id.clone(),
        spec: svc.spec.clone(),
        status: dto::ServiceStatus::parse(gitsync_model::Service::STATUS).unwrap_or_default(),
        status_message: None,
        template_name: svc.template_name.clone(),
    }
}

fn service_summary(svc: &gitsync_model::Service) -> dto::ServiceSummary {
    let full = service_out(svc, None);
    dto::ServiceSummary {
        arn: full.arn,
        created_at: full.created_at,
        description: full.description,
        last_modified_at: full.last_modified_at,
        name: full.name,
        status: full.status,
        status_message: full.status_message,
        template_name: full.template_name,
    }
}

pub(crate) fn instance_out(i: &ServiceInstance) -> dto::ServiceInstance {
    dto::ServiceInstance {
        arn: i.arn.clone(),
        created_at: i.created_at.into(),
        deployment_status: status_out(&i.deployment),
        deployment_status_message: i.deployment.status_message.clone(),
        environment_name: i.environment_name.clone(),
        last_attempted_deployment_id: i.deployment.last_attempted_id.clone(),
        last_client_request_token: i.last_client_request_token.clone(),
        last_deployment_attempted_at: i.deployment.last_attempted_at.into(),
        last_deployment_succeeded_at: i.deployment.last_succeeded_at.into(),
        last_succeeded_deployment_id: i.deployment.last_succeeded_id.clone(),
        name: i.name.clone(),
        service_name: i.service_name.clone(),
        spec: i.spec.clone(),
        template_major_version: i.template.major.to_string(),
        template_minor_version: i.template.minor.to_string(),
        template_name: i.template.name.clone(),
    }
}

fn instance_summary(i: &ServiceInstance) -> dto::ServiceInstanceSummary {
    let full = instance_out(i);
    dto::ServiceInstanceSummary {
        arn: full.arn,
        created_at: full.created_at,
        deployment_status: full.deployment_status,
        deployment_status_message: full.deployment_status_message,
        environment_name: full.environment_name,
        last_attempted_deployment_id: full.last_attempted_deployment_id,
        last_deployment_attempted_at: full.last_deployment_attempted_at,
        last_deployment_succeeded_at: full.last_deployment_succeeded_at,
        last_succeeded_deployment_id: full.last_succeeded_deployment_id,
        name: full.name,
        service_name: full.service_name,
        template_major_version: full.template_major_version,
        template_minor_version: full.template_minor_version,
        template_name: full.template_name,
    }
}

fn deployed(v: &TemplateVersion) -> DeployedTemplate {
    DeployedTemplate {
        name: v.template_name.clone(),
        major: v.major,
        minor: v.minor,
    }
}

/// Self-managed provisioning and cross-account environments, which gitsync does not do: the
/// first such member given is refused.
fn refuse_unsupported(given: &[(&str, bool)]) -> Result<(), ApiError> {
    match given.iter().find(|(_, present)| *present) {
        Some((m, _)) => Err(invalid(format!(
            "{m}: gitsync does not support self-managed provisioning or environment account connections; leave {m} out"
        ))),
        None => Ok(()),
    }
}

/// Checks that a new service asks for a pipeline exactly when its template version has one.
fn check_pipeline_request(
    input: &dto::CreateServiceInput,
    spec: &ServiceSpec,
    version: &TemplateVersion,
    pipeline: &PipelinePlan,
) -> Result<(), ApiError> {
    let label = format!(
        "service template {} {}.{}",
        version.template_name, version.major, version.minor
    );
    let members = [
        (
            "repositoryConnectionArn",
            input.repository_connection_arn.is_some(),
        ),
        ("repositoryId", input.repository_id.is_some()),
        ("branchName", input.branch_name.is_some()),
    ];
    let PipelinePlan::None(why) = pipeline else {
        return match members.iter().find(|(_, given)| !given) {
            Some((missing, _)) => Err(invalid(format!(
                "{missing} is required: {label} has a pipeline, whose template reads repositoryConnectionArn, repositoryId and branchName"
            ))),
            None => Ok(()),
        };
    };
    let asked = members
        .iter()
        .find(|(_, given)| *given)
        .map(|(m, _)| *m)
        .or(spec
            .pipeline
            .as_ref()
            .map(|_| "the spec's pipeline section"));
    match asked {
        Some(what) => Err(invalid(format!(
            "{what}: {label} has no pipeline ({why}); leave it out"
        ))),
        None => Ok(()),
    }
}

/// Checks an environment spec against the environment template version; `None` spec checks an
/// empty input set.
fn check_environment(
    name: &str,
    version: &TemplateVersion,
    spec: Option<&str>,
) -> Result<(), ApiError> {
    let inputs = match spec {
        Some(text) => environment_inputs(text).map_err(invalid)?,
        None => None,
    };
    let schema = version.schema.as_deref().ok_or_else(|| {
        invalid(format!(
            "environment template {} has no schema",
            version.template_name
        ))
    })?;
    let schema = Schema::parse(schema, InputKind::Environment).map_err(invalid)?;
    schema
        .check(&format!("environment {name}"), inputs.as_ref())
        .map(|_| ())
        .map_err(|problems| invalid(problems.join("; ")))
}

/// The entry for `name` of a service spec given to an instance operation.
fn instance_entry(spec: &str, name: &str) -> Result<InstanceSpec, ApiError> {
    let parsed = ServiceSpec::parse("spec", spec).map_err(invalid)?;
    parsed.instance(name).cloned().ok_or_else(|| {
        invalid(format!(
            "spec: lists no instance named {name}; give it as 'instances: [{{name: {name}, environment: ENV, spec: {{...}}}}]'"
        ))
    })
}

/// What a `deploymentType` deploys from the resource's `current` version and the versions
/// asked for: nothing (`NONE`), or a major and (unless the major's recommended) minor.
pub(crate) fn choose_version(
    deployment_type: dto::DeploymentUpdateType,
    major: Option<&str>,
    minor: Option<&str>,
    current: &DeployedTemplate,
) -> Result<Option<(i64, Option<i64>)>, ApiError> {
    let major = version_part("templateMajorVersion", major)?;
    let minor = version_part("templateMinorVersion", minor)?;
    Ok(match deployment_type {
        dto::DeploymentUpdateType::None => None,
        dto::DeploymentUpdateType::CurrentVersion => {
            if major.is_some() || minor.is_some() {
                return Err(invalid(
                    "templateMajorVersion and templateMinorVersion cannot be given with deploymentType CURRENT_VERSION",
                ));
            }
            Some((current.major, Some(current.minor)))
        }
        dto::DeploymentUpdateType::MinorVersion => {
            if major.is_some_and(|m| m != current.major) {
                return Err(invalid(format!(
                    "templateMajorVersion: deploymentType MINOR_VERSION stays on major version {}; use MAJOR_VERSION to change it",
                    current.major
                )));
            }
            Some((current.major, minor))
        }
        dto::DeploymentUpdateType::MajorVersion => {
            let major = major.ok_or_else(|| {
                invalid("templateMajorVersion is required with deploymentType MAJOR_VERSION")
            })?;
            Some((major, minor))
        }
    })
}

/// A spec cannot change without a deployment.
fn spec_needs_a_deployment() -> ApiError {
    invalid(
        "spec cannot be changed with deploymentType NONE; use CURRENT_VERSION to deploy a new spec",
    )
}

/// Whether a create or update repeats the `clientToken` of the instance's last deployment (SDKs
/// resend it when a response was lost): then the instance is answered as it is.
fn repeats_last_request(instance: &ServiceInstance, client_token: Option<&str>) -> bool {
    client_token.is_some_and(|t| instance.last_client_request_token.as_deref() == Some(t))
}

struct Ops<'a> {
    api: &'a Api,
    tenant: &'a Tenant,
}

impl Ops<'_> {
    /// Where a listing goes on from: the position `token` holds for this tenant and listing.
    fn resume(&self, listing: &str, token: Option<&str>) -> Result<Option<String>, ApiError> {
        self.api
            .pages
            .resume(self.tenant, listing, token, Service::Proton, "nextToken")
    }

    /// Checks one instance of a spec for `service` and returns what deploying it applies.
    async fn plan_instance(
        &self,
        service: &str,
        instance: &InstanceSpec,
        major: Option<i64>,
        minor: Option<i64>,
        client_token: Option<&str>,
    ) -> Result<InstanceDeployment, ApiError> {
        let context = self
            .api
            .store
            .instance_context(self.tenant, service, &instance.environment, major, minor)
            .await
            .map_err(err)?;
        plan_instance(
            instance,
            &context.version,
            &context.environment,
            client_token,
            None,
        )
        .map_err(|problems| invalid(problems.join("; ")))
    }

    /// A service with its pipeline, as `CreateService` and `GetService` answer it.
    async fn service_with_pipeline(
        &self,
        svc: &gitsync_model::Service,
    ) -> Result<dto::Service, ApiError> {
        let pipeline = self
            .api
            .store
            .get_service_pipeline(self.tenant, &svc.name)
            .await
            .map_err(err)?;
        Ok(service_out(svc, pipeline.as_ref()))
    }

    async fn create_environment(
        &self,
        i: dto::CreateEnvironmentInput,
    ) -> Result<dto::CreateEnvironmentOutput, ApiError> {
        refuse_unsupported(&[
            (
                "environmentAccountConnectionId",
                i.environment_account_connection_id.is_some(),
            ),
            (
                "provisioningRepository",
                i.provisioning_repository.is_some(),
            ),
        ])?;
        let store = &self.api.store;
        let version = store
            .deployable_template_version(
                self.tenant,
                TemplateType::Environment,
                &i.template_name,
                version_part("templateMajorVersion", Some(&i.template_major_version))?
                    .unwrap_or_default(),
                version_part("templateMinorVersion", i.template_minor_version.as_deref())?,
            )
            .await
            .map_err(err)?;
        check_environment(&i.name, &version, Some(&i.spec))?;
        let new = NewEnvironment {
            name: i.name,
            description: i.description,
            template: deployed(&version),
            spec: Some(i.spec),
            proton_service_role_arn: i.proton_service_role_arn,
            codebuild_role_arn: i.codebuild_role_arn,
            component_role_arn: i.component_role_arn,
        };
        let e = store
            .create_environment(self.tenant, &new, &tags_in(i.tags.unwrap_or_default()))
            .await
            .map_err(err)?;
        Ok(dto::CreateEnvironmentOutput {
            environment: environment_out(&e),
        })
    }

    async fn get_environment(
        &self,
        i: dto::GetEnvironmentInput,
    ) -> Result<dto::GetEnvironmentOutput, ApiError> {
        let e = self
            .api
            .store
            .get_environment(self.tenant, &i.name)
            .await
            .map_err(err)?;
        Ok(dto::GetEnvironmentOutput {
            environment: environment_out(&e),
        })
    }

    async fn list_environments(
        &self,
        i: dto::ListEnvironmentsInput,
    ) -> Result<dto::ListEnvironmentsOutput, ApiError> {
        const LISTING: &str = "environments";
        let mut filters = Vec::new();
        for f in i.environment_templates.unwrap_or_default() {
            let major = version_part("majorVersion", Some(&f.major_version))?.unwrap_or_default();
            filters.push((f.template_name, major));
        }
        let after = self.resume(LISTING, i.next_token.as_deref())?;
        let page = self
            .api
            .store
            .list_environments(
                self.tenant,
                &filters,
                after.as_deref(),
                page_size(i.max_results),
            )
            .await
            .map_err(err)?;
        Ok(dto::ListEnvironmentsOutput {
            environments: page.items.iter().map(environment_summary).collect(),
            next_token: page
                .next
                .map(|n| self.api.pages.issue(self.tenant, LISTING, &n)),
        })
    }

    async fn update_environment(
        &self,
        i: dto::UpdateEnvironmentInput,
    ) -> Result<dto::UpdateEnvironmentOutput, ApiError> {
        refuse_unsupported(&[
            (
                "environmentAccountConnectionId",
                i.environment_account_connection_id.is_some(),
            ),
            (
                "provisioningRepository",
                i.provisioning_repository.is_some(),
            ),
        ])?;
        let store = &self.api.store;
        let current = store
            .get_environment(self.tenant, &i.name)
            .await
            .map_err(err)?;
        let spec = i.spec.as_deref();
        let deploy = match choose_version(
            i.deployment_type,
            i.template_major_version.as_deref(),
            i.template_minor_version.as_deref(),
            &current.template,
        )? {
            None if spec.is_some() => return Err(spec_needs_a_deployment()),
            None => None,
            Some((major, minor)) => {
                let version = store
                    .deployable_template_version(
                        self.tenant,
                        TemplateType::Environment,
                        &current.template.name,
                        major,
                        minor,
                    )
                    .await
                    .map_err(err)?;
                check_environment(&i.name, &version, spec.or(current.spec.as_deref()))?;
                Some((deployed(&version), spec))
            }
        };
        let e = store
            .update_environment(
                self.tenant,
                &i.name,
                i.description.as_deref(),
                deploy.as_ref().map(|(t, spec)| (t, *spec)),
                [
                    i.proton_service_role_arn.as_deref(),
                    i.codebuild_role_arn.as_deref(),
                    i.component_role_arn.as_deref(),
                ],
            )
            .await
            .map_err(err)?;
        Ok(dto::UpdateEnvironmentOutput {
            environment: environment_out(&e),
        })
    }

    async fn delete_environment(
        &self,
        i: dto::DeleteEnvironmentInput,
    ) -> Result<dto::DeleteEnvironmentOutput, ApiError> {
        let e = self
            .api
            .store
            .delete_environment(self.tenant, &i.name)
            .await
            .map_err(err)?;
        Ok(dto::DeleteEnvironmentOutput {
            environment: Some(environment_out(&e)),
        })
    }

    async fn create_service(
        &self,
        i: dto::CreateServiceInput,
    ) -> Result<dto::CreateServiceOutput, ApiError> {
        let store = &self.api.store;
        let major = version_part("templateMajorVersion", Some(&i.template_major_version))?
            .unwrap_or_default();
        let minor = version_part("templateMinorVersion", i.template_minor_version.as_deref())?;
        // The version must be deployable even when the spec lists no instance yet.
        let version = store
            .deployable_template_version(
                self.tenant,
                TemplateType::Service,
                &i.template_name,
                major,
                minor,
            )
            .await
            .map_err(err)?;
        let spec = ServiceSpec::parse("spec", &i.spec).map_err(invalid)?;
        let pipeline = plan_pipeline(self.api, self.tenant, &version, &i.spec).await?;
        check_pipeline_request(&i, &spec, &version, &pipeline)?;
        // The service does not exist yet, so each instance is planned with the version
        // resolved above rather than through the service.
        let mut instances = Vec::new();
        for instance in &spec.instances {
            let environment = store
                .get_environment(self.tenant, &instance.environment)
                .await
                .map_err(err)?;
            let deployment = plan_instance(instance, &version, &environment, None, None)
                .map_err(|problems| invalid(problems.join("; ")))?;
            instances.push((instance.name.clone(), deployment));
        }
        let new = NewService {
            name: i.name,
            description: i.description,
            template_name: i.template_name,
            template_major: major,
            spec: i.spec,
            repository_connection_arn: i.repository_connection_arn,
            repository_id: i.repository_id,
            branch_name: i.branch_name,
        };
        let (svc, _) = store
            .create_service(
                self.tenant,
                &new,
                &instances,
                pipeline.deployment(),
                &tags_in(i.tags.unwrap_or_default()),
            )
            .await
            .map_err(err)?;
        Ok(dto::CreateServiceOutput {
            service: self.service_with_pipeline(&svc).await?,
        })
    }

    async fn get_service(
        &self,
        i: dto::GetServiceInput,
    ) -> Result<dto::GetServiceOutput, ApiError> {
        let svc = self
            .api
            .store
            .get_service(self.tenant, &i.name)
            .await
            .map_err(err)?;
        Ok(dto::GetServiceOutput {
            service: Some(self.service_with_pipeline(&svc).await?),
        })
    }

    async fn list_services(
        &self,
        i: dto::ListServicesInput,
    ) -> Result<dto::ListServicesOutput, ApiError> {
        const LISTING: &str = "services";
        let after = self.resume(LISTING, i.next_token.as_deref())?;
        let page = self
            .api
            .store
            .list_services(self.tenant, after.as_deref(), page_size(i.max_results))
            .await
            .map_err(err)?;
        Ok(dto::ListServicesOutput {
            services: page.items.iter().map(service_summary).collect(),
            next_token: page
                .next
                .map(|n| self.api.pages.issue(self.tenant, LISTING, &n)),
        })
    }

    async fn update_service(
        &self,
        i: dto::UpdateServiceInput,
    ) -> Result<dto::UpdateServiceOutput, ApiError> {
        let store = &self.api.store;
        let name = &i.name;
        let (mut added, mut removed) = (Vec::new(), Vec::new());
        if let Some(text) = &i.spec {
            // A pipeline section changes the pipeline only when it is deployed
            // (UpdateServicePipeline), as in Proton; a service without one refuses it.
            let spec = ServiceSpec::parse("spec", text).map_err(invalid)?;
            if spec.pipeline.is_some()
                && store
                    .get_service_pipeline(self.tenant, name)
                    .await
                    .map_err(err)?
                    .is_none()
            {
                return Err(invalid(format!(
                    "the spec's pipeline section: service {name} has no pipeline (its template version has none); leave it out"
                )));
            }
            // As in Proton: the spec adds the instances it lists that do not exist and deletes
            // those it leaves out; existing ones change with UpdateServiceInstance.
            let existing = store
                .service_instances(self.tenant, Some(name))
                .await
                .map_err(err)?;
            for instance in &spec.instances {
                if existing.iter().any(|e| e.name == instance.name) {
                    continue;
                }
                let deployment = self.plan_instance(name, instance, None, None, None).await?;
                added.push((instance.name.clone(), deployment));
            }
            removed = existing
                .iter()
                .filter(|e| spec.instance(&e.name).is_none())
                .map(|e| e.name.clone())
                .collect();
        }
        let (svc, _, _) = store
            .update_service(
                self.tenant,
                name,
                i.description.as_deref(),
                i.spec.as_deref(),
                &added,
                &removed,
            )
            .await
            .map_err(err)?;
        Ok(dto::UpdateServiceOutput {
            service: self.service_with_pipeline(&svc).await?,
        })
    }

    async fn delete_service(
        &self,
        i: dto::DeleteServiceInput,
    ) -> Result<dto::DeleteServiceOutput, ApiError> {
        let (svc, blocker) = self
            .api
            .store
            .delete_service(self.tenant, &i.name)
            .await
            .map_err(err)?;
        if let Some(b) = blocker {
            tracing::info!(service = %svc.name, blocker = %b.id, "service deleted outside service sync; blocker raised");
        }
        // Gone already; Proton's model has no deleted status, it answers DELETE_IN_PROGRESS.
        let mut out = service_out(&svc, None);
        out.status = dto::ServiceStatus::DeleteInProgress;
        Ok(dto::DeleteServiceOutput { service: Some(out) })
    }

    async fn create_service_instance(
        &self,
        i: dto::CreateServiceInstanceInput,
    ) -> Result<dto::CreateServiceInstanceOutput, ApiError> {
        let store = &self.api.store;
        let (service, name) = (&i.service_name, &i.name);
        if i.client_token.is_some() {
            match store.get_service_instance(self.tenant, service, name).await {
                Ok(existing) if repeats_last_request(&existing, i.client_token.as_deref()) => {
                    return Ok(dto::CreateServiceInstanceOutput {
                        service_instance: instance_out(&existing),
                    });
                }
                Ok(_) | Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(err(e)),
            }
        }
        let entry = instance_entry(&i.spec, name)?;
        let deployment = self
            .plan_instance(
                service,
                &entry,
                version_part("templateMajorVersion", i.template_major_version.as_deref())?,
                version_part("templateMinorVersion", i.template_minor_version.as_deref())?,
                i.client_token.as_deref(),
            )
            .await?;
        let done = store
            .deploy_service_instance(
                self.tenant,
                service,
                name,
                &deployment,
                InstanceWrite::Create,
                &tags_in(i.tags.unwrap_or_default()),
            )
            .await
            .map_err(err)?;
        Ok(dto::CreateServiceInstanceOutput {
            service_instance: instance_out(&done.instance),
        })
    }

    async fn get_service_instance(
        &self,
        i: dto::GetServiceInstanceInput,
    ) -> Result<dto::GetServiceInstanceOutput, ApiError> {
        let found = self
            .api
            .store
            .get_service_instance(self.tenant, &i.service_name, &i.name)
            .await
            .map_err(err)?;
        Ok(dto::GetServiceInstanceOutput {
            service_instance: instance_out(&found),
        })
    }

    async fn update_service_instance(
        &self,
        i: dto::UpdateServiceInstanceInput,
    ) -> Result<dto::UpdateServiceInstanceOutput, ApiError> {
        let store = &self.api.store;
        let (service, name) = (&i.service_name, &i.name);
        let current = store
            .get_service_instance(self.tenant, service, name)
            .await
            .map_err(err)?;
        let answer = |instance: &ServiceInstance| dto::UpdateServiceInstanceOutput {
            service_instance: instance_out(instance),
        };
        if repeats_last_request(&current, i.client_token.as_deref()) {
            return Ok(answer(&current));
        }
        let spec = i.spec.as_deref();
        let Some((major, minor)) = choose_version(
            i.deployment_type,
            i.template_major_version.as_deref(),
            i.template_minor_version.as_deref(),
            &current.template,
        )?
        else {
            if spec.is_some() {
                return Err(spec_needs_a_deployment());
            }
            // Nothing to deploy: the instance is answered as it is.
            return Ok(answer(&current));
        };
        let text = spec.or(current.spec.as_deref()).ok_or_else(|| {
            invalid(format!(
                "spec is required: service instance {name} has none yet"
            ))
        })?;
        let entry = instance_entry(text, name)?;
        let deployment = self
            .plan_instance(
                service,
                &entry,
                Some(major),
                minor,
                i.client_token.as_deref(),
            )
            .await?;
        let done = store
            .deploy_service_instance(
                self.tenant,
                service,
                name,
                &deployment,
                InstanceWrite::Update,
                &[],
            )
            .await
            .map_err(err)?;
        Ok(answer(&done.instance))
    }

    /// `ListServiceInstances` with its filters and sort order, paged by position.
    async fn list_service_instances(
        &self,
        i: dto::ListServiceInstancesInput,
    ) -> Result<dto::ListServiceInstancesOutput, ApiError> {
        use dto::ListServiceInstancesFilterBy as By;
        use dto::ListServiceInstancesSortBy as Sort;
        let mut instances = self
            .api
            .store
            .service_instances(self.tenant, i.service_name.as_deref())
            .await
            .map_err(err)?;
        for f in i.filters.iter().flatten() {
            let (Some(key), Some(value)) = (f.key, f.value.as_deref()) else {
                return Err(invalid("filters: each filter needs a key and a value"));
            };
            let time = |v: &str| -> Result<f64, ApiError> {
                // `NaN` and `inf` parse as numbers and compare as nothing useful.
                let seconds = v.parse::<f64>().ok().filter(|t| t.is_finite());
                seconds.ok_or_else(|| {
                    invalid(format!(
                        "filters: {} takes a time in epoch seconds (got {v})",
                        key.as_str()
                    ))
                })
            };
            match key {
                By::Name => instances.retain(|x| x.name == value),
                By::ServiceName => instances.retain(|x| x.service_name == value),
                By::EnvironmentName => instances.retain(|x| x.environment_name == value),
                By::TemplateName => instances.retain(|x| x.template.name == value),
                By::DeploymentStatus => instances.retain(|x| x.deployment.status.as_str() == value),
                By::CreatedAtBefore => {
                    let t = time(value)?;
                    instances.retain(|x| x.created_at.epoch_seconds() < t)
                }
                By::CreatedAtAfter => {
                    let t = time(value)?;
                    instances.retain(|x| x.created_at.epoch_seconds() > t)
                }
                By::LastDeploymentAttemptedAtBefore => {
                    let t = time(value)?;
                    instances.retain(|x| x.deployment.last_attempted_at.epoch_seconds() < t)
                }
                By::LastDeploymentAttemptedAtAfter => {
                    let t = time(value)?;
                    instances.retain(|x| x.deployment.last_attempted_at.epoch_seconds() > t)
                }
                By::DeployedTemplateVersionStatus => {
                    return Err(invalid(
                        "filters: gitsync does not filter by deployedTemplateVersionStatus; it filters by name, serviceName, \
                         environmentName, templateName, deploymentStatus and the createdAt / lastDeploymentAttemptedAt bounds",
                    ));
                }
            }
        }
        let sort_by = i.sort_by.unwrap_or(Sort::ServiceName);
        instances.sort_by(|a, b| {
            let key = |x: &ServiceInstance| -> (String, i64) {
                match sort_by {
                    Sort::Name => (x.name.clone(), 0),
                    Sort::DeploymentStatus => (x.deployment.status.as_str().to_string(), 0),
                    Sort::TemplateName => (x.template.name.clone(), 0),
                    Sort::EnvironmentName => (x.environment_name.clone(), 0),
                    Sort::LastDeploymentAttemptedAt => {
                        (String::new(), x.deployment.last_attempted_at.millis())
                    }
                    Sort::CreatedAt => (String::new(), x.created_at.millis()),
                    Sort::ServiceName => (x.service_name.clone(), 0),
                }
            };
            key(a)
                .cmp(&key(b))
                .then_with(|| (&a.service_name, &a.name).cmp(&(&b.service_name, &b.name)))
        });
        if i.sort_order == Some(dto::SortOrder::Descending) {
            instances.reverse();
        }
        // The position is only meaningful for the same query, so the token is bound to it.
        let listing = format!(
            "instances/{}",
            serde_json::to_string(&(&i.service_name, &i.filters, &i.sort_by, &i.sort_order))
                .unwrap_or_default()
        );
        let start: usize = match self.resume(&listing, i.next_token.as_deref())? {
            Some(p) => p.parse().unwrap_or(0),
            None => 0,
        };
        let size = page_size(i.max_results);
        Ok(dto::ListServiceInstancesOutput {
            service_instances: instances
                .iter()
                .skip(start)
                .take(size)
                .map(instance_summary)
                .collect(),
            next_token: (start + size < instances.len()).then(|| {
                self.api
                    .pages
                    .issue(self.tenant, &listing, &(start + size).to_string())
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every status gitsync records has its wire value: `status_out` never falls back to the
    /// DTO's default for one of them.
    #[test]
    fn every_deployment_status_is_on_the_wire_as_itself() {
        for status in gitsync_model::DeploymentStatus::ALL {
            let wire = dto::DeploymentStatus::parse(status.as_str());
            assert_eq!(wire.map(|w| w.as_str()), Some(status.as_str()));
        }
        assert!(dto::ServiceStatus::parse(gitsync_model::Service::STATUS).is_some());
    }
}
