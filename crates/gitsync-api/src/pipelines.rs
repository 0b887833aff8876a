//! Service pipelines on the wire: `UpdateServicePipeline`, and the account settings whose role
//! pipelines deploy with (`GetAccountSettings`, `UpdateAccountSettings`). A service gets its
//! pipeline from `CreateService` (services.rs) when its template version has one; the pipeline's
//! outputs, resources and cancelling are answered with the other resources' (provisioning.rs).

use crate::Api;
use crate::dispatch::run;
use crate::dto::proton as dto;
use crate::error::ApiError;
use crate::service::Service;
use gitsync_deploy::spec::{ServiceSpec, pipeline_inputs};
use gitsync_model::{DeployedTemplate, ServicePipeline, TemplateType, TemplateVersion, Tenant};
use gitsync_store::{AccountSettings, PipelineDeployment, StoreError};
use serde_json::Value;

/// The operations this module answers.
pub(crate) fn serves(operation: &str) -> bool {
    matches!(
        operation,
        "UpdateServicePipeline" | "GetAccountSettings" | "UpdateAccountSettings"
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
        "UpdateServicePipeline" => run(input, |i| ops.update_service_pipeline(i)).await,
        "GetAccountSettings" => {
            run(input, |_: dto::GetAccountSettingsInput| {
                ops.get_account_settings()
            })
            .await
        }
        "UpdateAccountSettings" => run(input, |i| ops.update_account_settings(i)).await,
        other => unreachable!("pipelines does not serve {other}"),
    }
}

fn err(e: StoreError) -> ApiError {
    ApiError::from_store(Service::Proton, e)
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::invalid(Service::Proton, message)
}

/// A pipeline as Proton answers it.
pub(crate) fn pipeline_out(p: &ServicePipeline) -> dto::ServicePipeline {
    dto::ServicePipeline {
        arn: p.arn.clone(),
        created_at: p.created_at.into(),
        deployment_status: dto::DeploymentStatus::parse(p.deployment.status.as_str())
            .unwrap_or_default(),
        deployment_status_message: p.deployment.status_message.clone(),
        last_attempted_deployment_id: p.deployment.last_attempted_id.clone(),
        last_deployment_attempted_at: p.deployment.last_attempted_at.into(),
        last_deployment_succeeded_at: p.deployment.last_succeeded_at.into(),
        last_succeeded_deployment_id: p.deployment.last_succeeded_id.clone(),
        spec: Some(p.spec.clone()),
        template_major_version: p.template.major.to_string(),
        template_minor_version: p.template.minor.to_string(),
        template_name: p.template.name.clone(),
    }
}

fn settings_out(s: AccountSettings) -> dto::AccountSettings {
    dto::AccountSettings {
        pipeline_codebuild_role_arn: s.pipeline_codebuild_role_arn,
        pipeline_provisioning_repository: None,
        pipeline_service_role_arn: s.pipeline_service_role_arn,
    }
}

/// Whether a service on a template version has a pipeline, and what deploying it applies.
pub(crate) enum PipelinePlan {
    /// The version's pipeline with the spec's `pipeline` inputs (checked, defaults filled).
    Deploys(PipelineDeployment),
    /// The version has none, for this reason.
    None(&'static str),
}

impl PipelinePlan {
    pub(crate) fn deployment(&self) -> Option<&PipelineDeployment> {
        match self {
            PipelinePlan::Deploys(d) => Some(d),
            PipelinePlan::None(_) => None,
        }
    }
}

/// Plans a service's pipeline on a template version: none when its template says
/// `pipelineProvisioning: CUSTOMER_MANAGED` or its bundle has no `pipeline_infrastructure/`.
pub(crate) async fn plan_pipeline(
    api: &Api,
    tenant: &Tenant,
    version: &TemplateVersion,
    spec_text: &str,
) -> Result<PipelinePlan, ApiError> {
    let template = api
        .store
        .get_template(tenant, TemplateType::Service, &version.template_name)
        .await
        .map_err(err)?;
    if template.provisioning.as_deref() == Some("CUSTOMER_MANAGED") {
        return Ok(PipelinePlan::None(
            "its template's pipelineProvisioning is CUSTOMER_MANAGED",
        ));
    }
    let files = match api
        .store
        .template_version_files(
            tenant,
            TemplateType::Service,
            &version.template_name,
            version.major,
            version.minor,
        )
        .await
    {
        Ok(files) => files,
        // Registered without a bundle: nothing to render.
        Err(StoreError::NotFound(_)) => {
            return Ok(PipelinePlan::None("it was not registered from a bundle"));
        }
        Err(e) => return Err(err(e)),
    };
    if !files
        .keys()
        .any(|f| f.starts_with("pipeline_infrastructure/"))
    {
        return Ok(PipelinePlan::None(
            "its bundle has no pipeline_infrastructure/",
        ));
    }
    let spec = ServiceSpec::parse("spec", spec_text).map_err(invalid)?;
    pipeline_inputs(version.schema.as_deref().unwrap_or_default(), &spec)
        .map_err(|problems| invalid(format!("spec: {}", problems.join("; "))))?;
    Ok(PipelinePlan::Deploys(PipelineDeployment {
        template: DeployedTemplate {
            name: version.template_name.clone(),
            major: version.major,
            minor: version.minor,
        },
        spec: spec_text.to_string(),
    }))
}

struct Ops<'a> {
    api: &'a Api,
    tenant: &'a Tenant,
}

impl Ops<'_> {
    async fn update_service_pipeline(
        &self,
        i: dto::UpdateServicePipelineInput,
    ) -> Result<dto::UpdateServicePipelineOutput, ApiError> {
        let store = &self.api.store;
        let service = store
            .get_service(self.tenant, &i.service_name)
            .await
            .map_err(err)?;
        let current = store
            .get_service_pipeline(self.tenant, &service.name)
            .await
            .map_err(err)?
            .ok_or_else(|| {
                ApiError::from_store(
                    Service::Proton,
                    StoreError::NotFound(format!(
                        "Service {} has no pipeline (its template version has no pipeline_infrastructure)",
                        service.name
                    )),
                )
            })?;
        let chosen = crate::services::choose_version(
            i.deployment_type,
            i.template_major_version.as_deref(),
            i.template_minor_version.as_deref(),
            &current.template,
        )?;
        let Some((major, minor)) = chosen else {
            if i.spec != current.spec {
                return Err(invalid(
                    "spec cannot be changed with deploymentType NONE; use CURRENT_VERSION to deploy a new spec",
                ));
            }
            return Ok(dto::UpdateServicePipelineOutput {
                pipeline: pipeline_out(&current),
            });
        };
        let version = store
            .deployable_template_version(
                self.tenant,
                TemplateType::Service,
                &current.template.name,
                major,
                minor,
            )
            .await
            .map_err(err)?;
        let deployment = match plan_pipeline(self.api, self.tenant, &version, &i.spec).await? {
            PipelinePlan::Deploys(d) => d,
            PipelinePlan::None(why) => {
                return Err(invalid(format!(
                    "service template {} {}.{} has no pipeline ({why}); the pipeline of service {} cannot move to it",
                    version.template_name, version.major, version.minor, service.name
                )));
            }
        };
        let pipeline = store
            .update_service_pipeline(self.tenant, &service.name, &deployment)
            .await
            .map_err(err)?;
        Ok(dto::UpdateServicePipelineOutput {
            pipeline: pipeline_out(&pipeline),
        })
    }

    async fn get_account_settings(&self) -> Result<dto::GetAccountSettingsOutput, ApiError> {
        let settings = self
            .api
            .store
            .account_settings(self.tenant)
            .await
            .map_err(err)?;
        Ok(dto::GetAccountSettingsOutput {
            account_settings: Some(settings_out(settings)),
        })
    }

    async fn update_account_settings(
        &self,
        i: dto::UpdateAccountSettingsInput,
    ) -> Result<dto::UpdateAccountSettingsOutput, ApiError> {
        if i.pipeline_provisioning_repository.is_some() {
            return Err(invalid(
                "pipelineProvisioningRepository: gitsync does not support self-managed provisioning; \
                 pipelines are deployed through CloudFormation with pipelineServiceRoleArn",
            ));
        }
        // deletePipelineProvisioningRepository: there is never one to delete.
        let settings = self
            .api
            .store
            .update_account_settings(
                self.tenant,
                i.pipeline_service_role_arn.as_deref(),
                i.pipeline_codebuild_role_arn.as_deref(),
            )
            .await
            .map_err(err)?;
        Ok(dto::UpdateAccountSettingsOutput {
            account_settings: settings_out(settings),
        })
    }
}
