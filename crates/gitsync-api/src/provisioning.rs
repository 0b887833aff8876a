//! What Proton deployments produced, as Proton answers it: the outputs of environments and
//! service instances (their stacks' outputs, recorded when a deployment succeeded).

use crate::Api;
use crate::dispatch::run;
use crate::dto::proton as dto;
use crate::error::ApiError;
use crate::service::Service;
use gitsync_model::{DeploymentTarget, Tenant};
use serde_json::Value;
use std::collections::BTreeMap;

/// The operations this module answers.
pub(crate) fn serves(operation: &str) -> bool {
    matches!(
        operation,
        "ListEnvironmentOutputs" | "ListServiceInstanceOutputs"
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

impl Ops<'_> {
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
}
