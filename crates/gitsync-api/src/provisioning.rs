//! What Proton deployments did, as Proton answers it: the deployments themselves (the history
//! gitsync keeps of every one, and cancelling the one in progress), and the outputs and
//! provisioned resources of environments, service instances and service pipelines (their stacks'
//! outputs and resources, recorded when a deployment succeeded).

use crate::Api;
use crate::dispatch::run;
use crate::dto::proton as dto;
use crate::error::ApiError;
use crate::service::Service;
use gitsync_model::{Arn, DeployedTemplate, DeploymentRecord, DeploymentTarget, Tenant};
use gitsync_store::DeploymentFilter;
use serde_json::Value;
use std::collections::BTreeMap;

/// The operations this module answers.
pub(crate) fn serves(operation: &str) -> bool {
    matches!(
        operation,
        "ListEnvironmentOutputs"
            | "ListServiceInstanceOutputs"
            | "ListDeployments"
            | "GetDeployment"
            | "DeleteDeployment"
            | "CancelEnvironmentDeployment"
            | "CancelServiceInstanceDeployment"
            | "ListEnvironmentProvisionedResources"
            | "ListServiceInstanceProvisionedResources"
            | "ListServicePipelineOutputs"
            | "ListServicePipelineProvisionedResources"
            | "CancelServicePipelineDeployment"
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
        "ListEnvironmentOutputs" => run(input, |i| ops.list_environment_outputs(i)).await,
        "ListServiceInstanceOutputs" => run(input, |i| ops.list_service_instance_outputs(i)).await,
        "ListDeployments" => run(input, |i| ops.list_deployments(i)).await,
        "GetDeployment" => run(input, |i| ops.get_deployment(i)).await,
        "DeleteDeployment" => run(input, |i| ops.delete_deployment(i)).await,
        "CancelEnvironmentDeployment" => run(input, |i| ops.cancel_environment_deployment(i)).await,
        "CancelServiceInstanceDeployment" => {
            run(input, |i| ops.cancel_service_instance_deployment(i)).await
        }
        "ListEnvironmentProvisionedResources" => {
            run(input, |i| ops.list_environment_provisioned_resources(i)).await
        }
        "ListServiceInstanceProvisionedResources" => {
            run(input, |i| {
                ops.list_service_instance_provisioned_resources(i)
            })
            .await
        }
        "ListServicePipelineOutputs" => run(input, |i| ops.list_service_pipeline_outputs(i)).await,
        "ListServicePipelineProvisionedResources" => {
            run(input, |i| {
                ops.list_service_pipeline_provisioned_resources(i)
            })
            .await
        }
        "CancelServicePipelineDeployment" => {
            run(input, |i| ops.cancel_service_pipeline_deployment(i)).await
        }
        other => unreachable!("provisioning does not serve {other}"),
    }
}

struct Ops<'a> {
    api: &'a Api,
    tenant: &'a Tenant,
}

fn err(e: gitsync_store::StoreError) -> ApiError {
    ApiError::from_store(Service::Proton, e)
}

/// Outputs by key (a stack has at most 200): all on one page.
fn outputs_out(outputs: BTreeMap<String, String>) -> dto::OutputsList {
    outputs
        .into_iter()
        .map(|(key, value)| dto::Output {
            key: Some(key),
            value_string: Some(value),
        })
        .collect()
}

fn state_out(
    target: &DeploymentTarget,
    state: &Option<(DeployedTemplate, Option<String>)>,
) -> Option<dto::DeploymentState> {
    let (template, spec) = state.as_ref()?;
    Some(match target {
        DeploymentTarget::Environment { .. } => dto::DeploymentState {
            environment: Some(dto::EnvironmentState {
                spec: spec.clone(),
                template_major_version: template.major.to_string(),
                template_minor_version: template.minor.to_string(),
                template_name: template.name.clone(),
            }),
            ..Default::default()
        },
        DeploymentTarget::ServiceInstance { .. } => dto::DeploymentState {
            service_instance: Some(dto::ServiceInstanceState {
                spec: spec.clone().unwrap_or_default(),
                template_major_version: template.major.to_string(),
                template_minor_version: template.minor.to_string(),
                template_name: template.name.clone(),
                ..Default::default()
            }),
            ..Default::default()
        },
        DeploymentTarget::ServicePipeline { .. } => dto::DeploymentState {
            service_pipeline: Some(dto::ServicePipelineState {
                spec: spec.clone(),
                template_major_version: template.major.to_string(),
                template_minor_version: template.minor.to_string(),
                template_name: template.name.clone(),
            }),
            ..Default::default()
        },
    })
}

/// What every view of a deployment shares: its ARN, its target's, and its names.
struct Identity {
    arn: String,
    target_arn: String,
    target_type: dto::DeploymentTargetResourceType,
    service_name: Option<String>,
    service_instance_name: Option<String>,
}

fn identity(tenant: &Tenant, d: &DeploymentRecord) -> Identity {
    let (target_path, service, instance) = match &d.target {
        DeploymentTarget::Environment { name } => (format!("environment/{name}"), None, None),
        DeploymentTarget::ServiceInstance { service, instance } => (
            format!("service/{service}/service-instance/{instance}"),
            Some(service.clone()),
            Some(instance.clone()),
        ),
        DeploymentTarget::ServicePipeline { service } => (
            format!("service/{service}/pipeline"),
            Some(service.clone()),
            None,
        ),
    };
    Identity {
        arn: Arn::new("proton", tenant, format!("deployment/{}", d.id)).to_string(),
        target_arn: Arn::new("proton", tenant, target_path).to_string(),
        target_type: dto::DeploymentTargetResourceType::parse(d.target.kind()).unwrap_or_default(),
        service_name: service,
        service_instance_name: instance,
    }
}

fn status_out(d: &DeploymentRecord) -> dto::DeploymentStatus {
    dto::DeploymentStatus::parse(d.status.as_str()).unwrap_or_default()
}

fn deployment_out(tenant: &Tenant, d: DeploymentRecord) -> dto::Deployment {
    let id = identity(tenant, &d);
    dto::Deployment {
        arn: id.arn,
        completed_at: d.completed_at.map(Into::into),
        created_at: d.created_at.into(),
        deployment_status: status_out(&d),
        deployment_status_message: d.status_message.clone(),
        environment_name: d.environment_name.clone(),
        initial_state: state_out(&d.target, &d.initial_state),
        target_state: state_out(&d.target, &d.target_state),
        last_modified_at: d.completed_at.unwrap_or(d.created_at).into(),
        target_arn: id.target_arn,
        target_resource_created_at: d.target_created_at.into(),
        target_resource_type: id.target_type,
        service_name: id.service_name,
        service_instance_name: id.service_instance_name,
        id: d.id,
        ..Default::default()
    }
}

fn summary_out(tenant: &Tenant, d: DeploymentRecord) -> dto::DeploymentSummary {
    let id = identity(tenant, &d);
    dto::DeploymentSummary {
        arn: id.arn,
        completed_at: d.completed_at.map(Into::into),
        created_at: d.created_at.into(),
        deployment_status: status_out(&d),
        environment_name: d.environment_name.clone(),
        last_modified_at: d.completed_at.unwrap_or(d.created_at).into(),
        target_arn: id.target_arn,
        target_resource_created_at: d.target_created_at.into(),
        target_resource_type: id.target_type,
        service_name: id.service_name,
        service_instance_name: id.service_instance_name,
        id: d.id,
        ..Default::default()
    }
}

impl Ops<'_> {
    async fn list_deployments(
        &self,
        i: dto::ListDeploymentsInput,
    ) -> Result<dto::ListDeploymentsOutput, ApiError> {
        if i.component_name.is_some() {
            return Err(ApiError::invalid(
                Service::Proton,
                "componentName: gitsync does not serve components, so none has deployments",
            ));
        }
        if i.service_instance_name.is_some() && i.service_name.is_none() {
            return Err(ApiError::invalid(
                Service::Proton,
                "serviceInstanceName needs serviceName: instances are named within their service",
            ));
        }
        // A page position means something only for the same filters: the token is bound to them.
        let listing = format!(
            "ListDeployments/{}",
            serde_json::to_string(&(
                &i.environment_name,
                &i.service_name,
                &i.service_instance_name
            ))
            .unwrap_or_default()
        );
        let after = self.api.pages.resume(
            self.tenant,
            &listing,
            i.next_token.as_deref(),
            Service::Proton,
            "nextToken",
        )?;
        let filter = DeploymentFilter {
            environment: i.environment_name,
            service: i.service_name,
            instance: i.service_instance_name,
        };
        let limit = i.max_results.unwrap_or(100).clamp(1, 100) as usize;
        let page = self
            .api
            .store
            .list_deployments(self.tenant, &filter, after.as_deref(), limit)
            .await
            .map_err(err)?;
        Ok(dto::ListDeploymentsOutput {
            next_token: page
                .next
                .map(|n| self.api.pages.issue(self.tenant, &listing, &n)),
            deployments: page
                .items
                .into_iter()
                .map(|d| summary_out(self.tenant, d))
                .collect(),
        })
    }

    async fn get_deployment(
        &self,
        i: dto::GetDeploymentInput,
    ) -> Result<dto::GetDeploymentOutput, ApiError> {
        let d = self
            .api
            .store
            .get_deployment(self.tenant, &i.id)
            .await
            .map_err(err)?;
        Ok(dto::GetDeploymentOutput {
            deployment: Some(deployment_out(self.tenant, d)),
        })
    }

    async fn cancel_environment_deployment(
        &self,
        i: dto::CancelEnvironmentDeploymentInput,
    ) -> Result<dto::CancelEnvironmentDeploymentOutput, ApiError> {
        let store = &self.api.store;
        let target = DeploymentTarget::Environment {
            name: i.environment_name.clone(),
        };
        store
            .cancel_deployment(self.tenant, &target)
            .await
            .map_err(err)?;
        let environment = store
            .get_environment(self.tenant, &i.environment_name)
            .await
            .map_err(err)?;
        Ok(dto::CancelEnvironmentDeploymentOutput {
            environment: crate::services::environment_out(&environment),
        })
    }

    async fn cancel_service_instance_deployment(
        &self,
        i: dto::CancelServiceInstanceDeploymentInput,
    ) -> Result<dto::CancelServiceInstanceDeploymentOutput, ApiError> {
        let store = &self.api.store;
        let target = DeploymentTarget::ServiceInstance {
            service: i.service_name.clone(),
            instance: i.service_instance_name.clone(),
        };
        store
            .cancel_deployment(self.tenant, &target)
            .await
            .map_err(err)?;
        let instance = store
            .get_service_instance(self.tenant, &i.service_name, &i.service_instance_name)
            .await
            .map_err(err)?;
        Ok(dto::CancelServiceInstanceDeploymentOutput {
            service_instance: crate::services::instance_out(&instance),
        })
    }

    async fn cancel_service_pipeline_deployment(
        &self,
        i: dto::CancelServicePipelineDeploymentInput,
    ) -> Result<dto::CancelServicePipelineDeploymentOutput, ApiError> {
        let store = &self.api.store;
        let target = DeploymentTarget::ServicePipeline {
            service: i.service_name.clone(),
        };
        store
            .cancel_deployment(self.tenant, &target)
            .await
            .map_err(err)?;
        let pipeline = store
            .get_service_pipeline(self.tenant, &i.service_name)
            .await
            .map_err(err)?
            .ok_or_else(|| {
                err(gitsync_store::StoreError::NotFound(format!(
                    "Service {} has no pipeline",
                    i.service_name
                )))
            })?;
        Ok(dto::CancelServicePipelineDeploymentOutput {
            pipeline: crate::pipelines::pipeline_out(&pipeline),
        })
    }

    async fn delete_deployment(
        &self,
        i: dto::DeleteDeploymentInput,
    ) -> Result<dto::DeleteDeploymentOutput, ApiError> {
        let d = self
            .api
            .store
            .delete_deployment(self.tenant, &i.id)
            .await
            .map_err(err)?;
        Ok(dto::DeleteDeploymentOutput {
            deployment: Some(deployment_out(self.tenant, d)),
        })
    }

    async fn outputs(
        &self,
        target: DeploymentTarget,
        deployment: Option<&str>,
    ) -> Result<dto::OutputsList, ApiError> {
        let store = &self.api.store;
        // The resource must exist for this tenant, whatever its history holds.
        store
            .deployed_resource(self.tenant, &target)
            .await
            .map_err(err)?;
        let outputs = store
            .resource_outputs(self.tenant, &target, deployment)
            .await
            .map_err(err)?;
        Ok(outputs_out(outputs))
    }

    /// The resources of a resource's stack as its last successful deployment left it (a stack
    /// has at most 500: one page).
    async fn provisioned(
        &self,
        target: DeploymentTarget,
    ) -> Result<Vec<dto::ProvisionedResource>, ApiError> {
        let store = &self.api.store;
        store
            .deployed_resource(self.tenant, &target)
            .await
            .map_err(err)?;
        let resources = store
            .provisioned_resources(self.tenant, &target)
            .await
            .map_err(err)?;
        Ok(resources
            .into_iter()
            .map(|r| dto::ProvisionedResource {
                identifier: Some(r.physical_id),
                name: Some(r.logical_id),
                provisioning_engine: Some(dto::ProvisionedResourceEngine::Cloudformation),
            })
            .collect())
    }

    async fn list_environment_provisioned_resources(
        &self,
        i: dto::ListEnvironmentProvisionedResourcesInput,
    ) -> Result<dto::ListEnvironmentProvisionedResourcesOutput, ApiError> {
        let target = DeploymentTarget::Environment {
            name: i.environment_name,
        };
        Ok(dto::ListEnvironmentProvisionedResourcesOutput {
            next_token: None,
            provisioned_resources: self.provisioned(target).await?,
        })
    }

    async fn list_service_instance_provisioned_resources(
        &self,
        i: dto::ListServiceInstanceProvisionedResourcesInput,
    ) -> Result<dto::ListServiceInstanceProvisionedResourcesOutput, ApiError> {
        let target = DeploymentTarget::ServiceInstance {
            service: i.service_name,
            instance: i.service_instance_name,
        };
        Ok(dto::ListServiceInstanceProvisionedResourcesOutput {
            next_token: None,
            provisioned_resources: self.provisioned(target).await?,
        })
    }

    async fn list_environment_outputs(
        &self,
        i: dto::ListEnvironmentOutputsInput,
    ) -> Result<dto::ListEnvironmentOutputsOutput, ApiError> {
        let target = DeploymentTarget::Environment {
            name: i.environment_name,
        };
        Ok(dto::ListEnvironmentOutputsOutput {
            next_token: None,
            outputs: self.outputs(target, i.deployment_id.as_deref()).await?,
        })
    }

    async fn list_service_instance_outputs(
        &self,
        i: dto::ListServiceInstanceOutputsInput,
    ) -> Result<dto::ListServiceInstanceOutputsOutput, ApiError> {
        let target = DeploymentTarget::ServiceInstance {
            service: i.service_name,
            instance: i.service_instance_name,
        };
        Ok(dto::ListServiceInstanceOutputsOutput {
            next_token: None,
            outputs: self.outputs(target, i.deployment_id.as_deref()).await?,
        })
    }

    async fn list_service_pipeline_outputs(
        &self,
        i: dto::ListServicePipelineOutputsInput,
    ) -> Result<dto::ListServicePipelineOutputsOutput, ApiError> {
        let target = DeploymentTarget::ServicePipeline {
            service: i.service_name,
        };
        Ok(dto::ListServicePipelineOutputsOutput {
            next_token: None,
            outputs: self.outputs(target, i.deployment_id.as_deref()).await?,
        })
    }

    async fn list_service_pipeline_provisioned_resources(
        &self,
        i: dto::ListServicePipelineProvisionedResourcesInput,
    ) -> Result<dto::ListServicePipelineProvisionedResourcesOutput, ApiError> {
        let target = DeploymentTarget::ServicePipeline {
            service: i.service_name,
        };
        Ok(dto::ListServicePipelineProvisionedResourcesOutput {
            next_token: None,
            provisioned_resources: self.provisioned(target).await?,
        })
    }
}
