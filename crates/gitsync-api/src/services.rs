//! Proton environments, services and service instances on the wire.
//!
//! Specs are YAML; each is checked against its template version's schema (`environment_input_type`
//! or `service_input_type`) before anything is written, and the error names the environment or
//! instance, the input and the rule. Deployments are recorded (gitsync keeps the desired state and
//! its history; it does not render and run the template's infrastructure code).

use crate::Api;
use crate::document::{insert_opt, page_size, part, redeem, required, s, tags};
use crate::error::ApiError;
use crate::service::Service;
use gitsync_deploy::spec::{
    InputKind, InstanceSpec, Schema, ServiceSpec, environment_inputs, plan_instance,
};
use gitsync_model::{
    DeployedTemplate, DeploymentState, Environment, InstanceDeployment, ServiceInstance,
    TemplateType, TemplateVersion, Tenant,
};
use gitsync_store::{InstanceWrite, NewEnvironment, NewService, StoreError};
use serde_json::{Map, Value, json};

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

fn err(e: StoreError) -> ApiError {
    ApiError::from_store(Service::Proton, e)
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::invalid(Service::Proton, message)
}

fn optional_part(input: &Value, member: &str) -> Result<Option<i64>, ApiError> {
    match s(input, member) {
        Some(_) => part(input, member).map(Some),
        None => Ok(None),
    }
}

fn deployment_fields(m: &mut Map<String, Value>, d: &DeploymentState) {
    m.insert("deploymentStatus".into(), json!(d.status.as_str()));
    insert_opt(
        m,
        "deploymentStatusMessage",
        d.status_message.as_ref().map(|v| json!(v)),
    );
    m.insert(
        "lastDeploymentAttemptedAt".into(),
        json!(d.last_attempted_at.epoch_seconds()),
    );
    m.insert(
        "lastDeploymentSucceededAt".into(),
        json!(d.last_succeeded_at.epoch_seconds()),
    );
    insert_opt(
        m,
        "lastAttemptedDeploymentId",
        d.last_attempted_id.as_ref().map(|v| json!(v)),
    );
    insert_opt(
        m,
        "lastSucceededDeploymentId",
        d.last_succeeded_id.as_ref().map(|v| json!(v)),
    );
}

fn template_fields(m: &mut Map<String, Value>, t: &DeployedTemplate) {
    m.insert("templateName".into(), json!(t.name));
    m.insert("templateMajorVersion".into(), json!(t.major.to_string()));
    m.insert("templateMinorVersion".into(), json!(t.minor.to_string()));
}

pub(crate) fn environment_json(e: &Environment, summary: bool) -> Value {
    let mut m = Map::new();
    m.insert("arn".into(), json!(e.arn));
    m.insert("name".into(), json!(e.name));
    m.insert("createdAt".into(), json!(e.created_at.epoch_seconds()));
    insert_opt(
        &mut m,
        "description",
        e.description.as_ref().map(|v| json!(v)),
    );
    template_fields(&mut m, &e.template);
    deployment_fields(&mut m, &e.deployment);
    insert_opt(
        &mut m,
        "protonServiceRoleArn",
        e.proton_service_role_arn.as_ref().map(|v| json!(v)),
    );
    insert_opt(
        &mut m,
        "componentRoleArn",
        e.component_role_arn.as_ref().map(|v| json!(v)),
    );
    if !summary {
        insert_opt(
            &mut m,
            "codebuildRoleArn",
            e.codebuild_role_arn.as_ref().map(|v| json!(v)),
        );
        insert_opt(&mut m, "spec", e.spec.as_ref().map(|v| json!(v)));
    }
    Value::Object(m)
}

fn service_json(svc: &gitsync_model::Service, summary: bool) -> Value {
    let mut m = Map::new();
    m.insert("arn".into(), json!(svc.arn));
    m.insert("name".into(), json!(svc.name));
    m.insert("createdAt".into(), json!(svc.created_at.epoch_seconds()));
    m.insert(
        "lastModifiedAt".into(),
        json!(svc.last_modified_at.epoch_seconds()),
    );
    m.insert("status".into(), json!(gitsync_model::Service::STATUS));
    m.insert("templateName".into(), json!(svc.template_name));
    insert_opt(
        &mut m,
        "description",
        svc.description.as_ref().map(|v| json!(v)),
    );
    if !summary {
        m.insert("spec".into(), json!(svc.spec));
        insert_opt(
            &mut m,
            "repositoryConnectionArn",
            svc.repository_connection_arn.as_ref().map(|v| json!(v)),
        );
        insert_opt(
            &mut m,
            "repositoryId",
            svc.repository_id.as_ref().map(|v| json!(v)),
        );
        insert_opt(
            &mut m,
            "branchName",
            svc.branch_name.as_ref().map(|v| json!(v)),
        );
    }
    Value::Object(m)
}

/// A service with its pipeline, as `CreateService` and `GetService` answer it.
async fn service_document(
    api: &Api,
    tenant: &Tenant,
    svc: &gitsync_model::Service,
) -> Result<Value, ApiError> {
    let mut out = service_json(svc, false);
    if let Some(pipeline) = api
        .store
        .get_service_pipeline(tenant, &svc.name)
        .await
        .map_err(err)?
    {
        out["pipeline"] = serde_json::to_value(crate::pipelines::pipeline_out(&pipeline))
            .map_err(|_| ApiError::internal())?;
    }
    Ok(out)
}

pub(crate) fn instance_json(i: &ServiceInstance, summary: bool) -> Value {
    let mut m = Map::new();
    m.insert("arn".into(), json!(i.arn));
    m.insert("name".into(), json!(i.name));
    m.insert("serviceName".into(), json!(i.service_name));
    m.insert("environmentName".into(), json!(i.environment_name));
    m.insert("createdAt".into(), json!(i.created_at.epoch_seconds()));
    template_fields(&mut m, &i.template);
    deployment_fields(&mut m, &i.deployment);
    if !summary {
        insert_opt(&mut m, "spec", i.spec.as_ref().map(|v| json!(v)));
        insert_opt(
            &mut m,
            "lastClientRequestToken",
            i.last_client_request_token.as_ref().map(|v| json!(v)),
        );
    }
    Value::Object(m)
}

fn deployed(v: &TemplateVersion) -> DeployedTemplate {
    DeployedTemplate {
        name: v.template_name.clone(),
        major: v.major,
        minor: v.minor,
    }
}

/// Members of self-managed provisioning and cross-account environments, which gitsync does not do.
fn refuse_unsupported(input: &Value, members: &[&str]) -> Result<(), ApiError> {
    match members.iter().find(|m| input.get(**m).is_some()) {
        Some(m) => Err(invalid(format!(
            "{m}: gitsync does not support self-managed provisioning or environment account connections; leave {m} out"
        ))),
        None => Ok(()),
    }
}

/// The members that describe a service's pipeline: given only for a template version that has
/// one, and then all of them (its template renders them).
const PIPELINE_MEMBERS: [&str; 3] = ["repositoryConnectionArn", "repositoryId", "branchName"];

/// Checks that a new service asks for a pipeline exactly when its template version has one.
fn check_pipeline_request(
    input: &Value,
    spec: &ServiceSpec,
    version: &TemplateVersion,
    pipeline: &crate::pipelines::PipelinePlan,
) -> Result<(), ApiError> {
    let label = format!(
        "service template {} {}.{}",
        version.template_name, version.major, version.minor
    );
    let crate::pipelines::PipelinePlan::None(why) = pipeline else {
        return match PIPELINE_MEMBERS.iter().find(|m| s(input, m).is_none()) {
            Some(missing) => Err(invalid(format!(
                "{missing} is required: {label} has a pipeline, whose template reads repositoryConnectionArn, repositoryId and branchName"
            ))),
            None => Ok(()),
        };
    };
    let asked = PIPELINE_MEMBERS
        .into_iter()
        .find(|m| input.get(*m).is_some())
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

impl Api {
    /// Checks one instance of a spec for `service` and returns what deploying it applies.
    async fn plan_instance(
        &self,
        tenant: &Tenant,
        service: &str,
        instance: &InstanceSpec,
        major: Option<i64>,
        minor: Option<i64>,
        client_token: Option<&str>,
    ) -> Result<InstanceDeployment, ApiError> {
        let context = self
            .store
            .instance_context(tenant, service, &instance.environment, major, minor)
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
}

/// The version an update deploys: `deploymentType` picks the major and minor.
fn update_version(
    input: &Value,
    current: &DeployedTemplate,
) -> Result<Option<(i64, Option<i64>)>, ApiError> {
    choose_version(
        required(input, "deploymentType")?,
        optional_part(input, "templateMajorVersion")?,
        optional_part(input, "templateMinorVersion")?,
        current,
    )
}

/// What a `deploymentType` deploys from the resource's `current` version and the versions
/// asked for: nothing (`NONE`), or a major and (unless the major's recommended) minor.
pub(crate) fn choose_version(
    deployment_type: &str,
    major: Option<i64>,
    minor: Option<i64>,
    current: &DeployedTemplate,
) -> Result<Option<(i64, Option<i64>)>, ApiError> {
    Ok(match deployment_type {
        "NONE" => None,
        "CURRENT_VERSION" => {
            if major.is_some() || minor.is_some() {
                return Err(invalid(
                    "templateMajorVersion and templateMinorVersion cannot be given with deploymentType CURRENT_VERSION",
                ));
            }
            Some((current.major, Some(current.minor)))
        }
        "MINOR_VERSION" => {
            if major.is_some_and(|m| m != current.major) {
                return Err(invalid(format!(
                    "templateMajorVersion: deploymentType MINOR_VERSION stays on major version {}; use MAJOR_VERSION to change it",
                    current.major
                )));
            }
            Some((current.major, minor))
        }
        _ => {
            let major = major.ok_or_else(|| {
                invalid("templateMajorVersion is required with deploymentType MAJOR_VERSION")
            })?;
            Some((major, minor))
        }
    })
}

/// Runs one environment, service or service instance operation.
pub(crate) async fn call(
    api: &Api,
    tenant: &Tenant,
    operation: &str,
    input: &Value,
) -> Result<Value, ApiError> {
    let store = &api.store;
    Ok(match operation {
        "CreateEnvironment" => {
            refuse_unsupported(
                input,
                &["environmentAccountConnectionId", "provisioningRepository"],
            )?;
            let name = required(input, "name")?;
            let version = store
                .deployable_template_version(
                    tenant,
                    TemplateType::Environment,
                    required(input, "templateName")?,
                    part(input, "templateMajorVersion")?,
                    optional_part(input, "templateMinorVersion")?,
                )
                .await
                .map_err(err)?;
            let spec = required(input, "spec")?;
            check_environment(name, &version, Some(spec))?;
            let new = NewEnvironment {
                name: name.to_string(),
                description: s(input, "description").map(str::to_string),
                template: deployed(&version),
                spec: Some(spec.to_string()),
                proton_service_role_arn: s(input, "protonServiceRoleArn").map(str::to_string),
                codebuild_role_arn: s(input, "codebuildRoleArn").map(str::to_string),
                component_role_arn: s(input, "componentRoleArn").map(str::to_string),
            };
            let e = store
                .create_environment(tenant, &new, &tags(input))
                .await
                .map_err(err)?;
            json!({ "environment": environment_json(&e, false) })
        }
        "GetEnvironment" => {
            let e = store
                .get_environment(tenant, required(input, "name")?)
                .await
                .map_err(err)?;
            json!({ "environment": environment_json(&e, false) })
        }
        "ListEnvironments" => {
            let mut filters = Vec::new();
            for f in input
                .get("environmentTemplates")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                filters.push((
                    required(f, "templateName")?.to_string(),
                    part(f, "majorVersion")?,
                ));
            }
            let after = redeem(api, tenant, "environments", input)?;
            let page = store
                .list_environments(tenant, &filters, after.as_deref(), page_size(input))
                .await
                .map_err(err)?;
            let mut out = json!({ "environments": page.items.iter().map(|e| environment_json(e, true)).collect::<Vec<_>>() });
            if let Some(next) = page.next {
                out["nextToken"] = json!(api.pages.issue(tenant, "environments", &next));
            }
            out
        }
        "UpdateEnvironment" => {
            refuse_unsupported(
                input,
                &["environmentAccountConnectionId", "provisioningRepository"],
            )?;
            let name = required(input, "name")?;
            let current = store.get_environment(tenant, name).await.map_err(err)?;
            let spec = s(input, "spec");
            let deploy = match update_version(input, &current.template)? {
                None if spec.is_some() => {
                    return Err(invalid(
                        "spec cannot be changed with deploymentType NONE; use CURRENT_VERSION to deploy a new spec",
                    ));
                }
                None => None,
                Some((major, minor)) => {
                    let version = store
                        .deployable_template_version(
                            tenant,
                            TemplateType::Environment,
                            &current.template.name,
                            major,
                            minor,
                        )
                        .await
                        .map_err(err)?;
                    check_environment(name, &version, spec.or(current.spec.as_deref()))?;
                    Some((deployed(&version), spec))
                }
            };
            let e = store
                .update_environment(
                    tenant,
                    name,
                    s(input, "description"),
                    deploy.as_ref().map(|(t, spec)| (t, *spec)),
                    [
                        s(input, "protonServiceRoleArn"),
                        s(input, "codebuildRoleArn"),
                        s(input, "componentRoleArn"),
                    ],
                )
                .await
                .map_err(err)?;
            json!({ "environment": environment_json(&e, false) })
        }
        "DeleteEnvironment" => {
            let e = store
                .delete_environment(tenant, required(input, "name")?)
                .await
                .map_err(err)?;
            json!({ "environment": environment_json(&e, false) })
        }
        "CreateService" => {
            let name = required(input, "name")?;
            let template_name = required(input, "templateName")?;
            let major = part(input, "templateMajorVersion")?;
            let minor = optional_part(input, "templateMinorVersion")?;
            // The version must be deployable even when the spec lists no instance yet.
            let version = store
                .deployable_template_version(
                    tenant,
                    TemplateType::Service,
                    template_name,
                    major,
                    minor,
                )
                .await
                .map_err(err)?;
            let spec_text = required(input, "spec")?;
            let spec = ServiceSpec::parse("spec", spec_text).map_err(invalid)?;
            let pipeline =
                crate::pipelines::plan_pipeline(api, tenant, &version, spec_text).await?;
            check_pipeline_request(input, &spec, &version, &pipeline)?;
            let new = NewService {
                name: name.to_string(),
                description: s(input, "description").map(str::to_string),
                template_name: template_name.to_string(),
                template_major: major,
                spec: spec_text.to_string(),
                repository_connection_arn: s(input, "repositoryConnectionArn").map(str::to_string),
                repository_id: s(input, "repositoryId").map(str::to_string),
                branch_name: s(input, "branchName").map(str::to_string),
            };
            // The service does not exist yet, so each instance is planned with the version
            // resolved above rather than through the service.
            let mut instances = Vec::new();
            for instance in &spec.instances {
                let environment = store
                    .get_environment(tenant, &instance.environment)
                    .await
                    .map_err(err)?;
                let deployment = plan_instance(instance, &version, &environment, None, None)
                    .map_err(|problems| invalid(problems.join("; ")))?;
                instances.push((instance.name.clone(), deployment));
            }
            let (svc, _) = store
                .create_service(
                    tenant,
                    &new,
                    &instances,
                    pipeline.deployment(),
                    &tags(input),
                )
                .await
                .map_err(err)?;
            json!({ "service": service_document(api, tenant, &svc).await? })
        }
        "GetService" => {
            let svc = store
                .get_service(tenant, required(input, "name")?)
                .await
                .map_err(err)?;
            json!({ "service": service_document(api, tenant, &svc).await? })
        }
        "ListServices" => {
            let after = redeem(api, tenant, "services", input)?;
            let page = store
                .list_services(tenant, after.as_deref(), page_size(input))
                .await
                .map_err(err)?;
            let mut out = json!({ "services": page.items.iter().map(|x| service_json(x, true)).collect::<Vec<_>>() });
            if let Some(next) = page.next {
                out["nextToken"] = json!(api.pages.issue(tenant, "services", &next));
            }
            out
        }
        "UpdateService" => {
            let name = required(input, "name")?;
            let spec_text = s(input, "spec");
            let (mut added, mut removed) = (Vec::new(), Vec::new());
            if let Some(text) = spec_text {
                // A pipeline section changes the pipeline only when it is deployed
                // (UpdateServicePipeline), as in Proton; a service without one refuses it.
                let spec = ServiceSpec::parse("spec", text).map_err(invalid)?;
                if spec.pipeline.is_some()
                    && store
                        .get_service_pipeline(tenant, name)
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
                    .service_instances(tenant, Some(name))
                    .await
                    .map_err(err)?;
                for instance in &spec.instances {
                    if existing.iter().any(|e| e.name == instance.name) {
                        continue;
                    }
                    let deployment = api
                        .plan_instance(tenant, name, instance, None, None, None)
                        .await?;
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
                    tenant,
                    name,
                    s(input, "description"),
                    spec_text,
                    &added,
                    &removed,
                )
                .await
                .map_err(err)?;
            json!({ "service": service_json(&svc, false) })
        }
        "DeleteService" => {
            let (svc, blocker) = store
                .delete_service(tenant, required(input, "name")?)
                .await
                .map_err(err)?;
            if let Some(b) = blocker {
                tracing::info!(service = %svc.name, blocker = %b.id, "service deleted outside service sync; blocker raised");
            }
            // Gone already; Proton's model has no deleted status, it answers DELETE_IN_PROGRESS.
            let mut out = service_json(&svc, false);
            out["status"] = json!("DELETE_IN_PROGRESS");
            json!({ "service": out })
        }
        "CreateServiceInstance" => {
            let service = required(input, "serviceName")?;
            let name = required(input, "name")?;
            if s(input, "clientToken").is_some() {
                match store.get_service_instance(tenant, service, name).await {
                    Ok(i) if repeats_last_request(&i, input) => {
                        return Ok(json!({ "serviceInstance": instance_json(&i, false) }));
                    }
                    Ok(_) | Err(StoreError::NotFound(_)) => {}
                    Err(e) => return Err(err(e)),
                }
            }
            let entry = instance_entry(required(input, "spec")?, name)?;
            let deployment = api
                .plan_instance(
                    tenant,
                    service,
                    &entry,
                    optional_part(input, "templateMajorVersion")?,
                    optional_part(input, "templateMinorVersion")?,
                    s(input, "clientToken"),
                )
                .await?;
            let done = store
                .deploy_service_instance(
                    tenant,
                    service,
                    name,
                    &deployment,
                    InstanceWrite::Create,
                    &tags(input),
                )
                .await
                .map_err(err)?;
            json!({ "serviceInstance": instance_json(&done.instance, false) })
        }
        "GetServiceInstance" => {
            let i = store
                .get_service_instance(
                    tenant,
                    required(input, "serviceName")?,
                    required(input, "name")?,
                )
                .await
                .map_err(err)?;
            json!({ "serviceInstance": instance_json(&i, false) })
        }
        "UpdateServiceInstance" => {
            let service = required(input, "serviceName")?;
            let name = required(input, "name")?;
            let current = store
                .get_service_instance(tenant, service, name)
                .await
                .map_err(err)?;
            if repeats_last_request(&current, input) {
                return Ok(json!({ "serviceInstance": instance_json(&current, false) }));
            }
            let spec = s(input, "spec");
            let Some((major, minor)) = update_version(input, &current.template)? else {
                if spec.is_some() {
                    return Err(invalid(
                        "spec cannot be changed with deploymentType NONE; use CURRENT_VERSION to deploy a new spec",
                    ));
                }
                // Nothing to deploy: the instance is answered as it is.
                return Ok(json!({ "serviceInstance": instance_json(&current, false) }));
            };
            let text = spec.or(current.spec.as_deref()).ok_or_else(|| {
                invalid(format!(
                    "spec is required: service instance {name} has none yet"
                ))
            })?;
            let entry = instance_entry(text, name)?;
            let deployment = api
                .plan_instance(
                    tenant,
                    service,
                    &entry,
                    Some(major),
                    minor,
                    s(input, "clientToken"),
                )
                .await?;
            let done = store
                .deploy_service_instance(
                    tenant,
                    service,
                    name,
                    &deployment,
                    InstanceWrite::Update,
                    &[],
                )
                .await
                .map_err(err)?;
            json!({ "serviceInstance": instance_json(&done.instance, false) })
        }
        "ListServiceInstances" => list_instances(api, tenant, input).await?,
        other => {
            return Err(ApiError::unknown_operation(format!(
                "{other} is not an environment or service operation"
            )));
        }
    })
}

/// Whether a create or update repeats the `clientToken` of the instance's last deployment (SDKs
/// resend it when a response was lost): then the instance is answered as it is.
fn repeats_last_request(instance: &ServiceInstance, input: &Value) -> bool {
    s(input, "clientToken")
        .is_some_and(|t| instance.last_client_request_token.as_deref() == Some(t))
}

/// `ListServiceInstances` with its filters and sort order, paged by position.
async fn list_instances(api: &Api, tenant: &Tenant, input: &Value) -> Result<Value, ApiError> {
    let mut instances = api
        .store
        .service_instances(tenant, s(input, "serviceName"))
        .await
        .map_err(|e| ApiError::from_store(Service::Proton, e))?;
    for f in input
        .get("filters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (Some(key), Some(value)) = (s(f, "key"), s(f, "value")) else {
            return Err(invalid("filters: each filter needs a key and a value"));
        };
        let time = |v: &str| -> Result<f64, ApiError> {
            v.parse::<f64>().map_err(|_| {
                invalid(format!(
                    "filters: {key} takes a time in epoch seconds (got {v})"
                ))
            })
        };
        match key {
            "name" => instances.retain(|i| i.name == value),
            "serviceName" => instances.retain(|i| i.service_name == value),
            "environmentName" => instances.retain(|i| i.environment_name == value),
            "templateName" => instances.retain(|i| i.template.name == value),
            "deploymentStatus" => instances.retain(|i| i.deployment.status.as_str() == value),
            "createdAtBefore" => {
                let t = time(value)?;
                instances.retain(|i| i.created_at.epoch_seconds() < t)
            }
            "createdAtAfter" => {
                let t = time(value)?;
                instances.retain(|i| i.created_at.epoch_seconds() > t)
            }
            "lastDeploymentAttemptedAtBefore" => {
                let t = time(value)?;
                instances.retain(|i| i.deployment.last_attempted_at.epoch_seconds() < t)
            }
            "lastDeploymentAttemptedAtAfter" => {
                let t = time(value)?;
                instances.retain(|i| i.deployment.last_attempted_at.epoch_seconds() > t)
            }
            other => {
                return Err(invalid(format!(
                    "filters: gitsync does not filter by {other}; it filters by name, serviceName, environmentName, \
                     templateName, deploymentStatus and the createdAt / lastDeploymentAttemptedAt bounds"
                )));
            }
        }
    }
    let sort_by = s(input, "sortBy").unwrap_or("serviceName");
    instances.sort_by(|a, b| {
        let key = |i: &ServiceInstance| -> (String, i64) {
            match sort_by {
                "name" => (i.name.clone(), 0),
                "deploymentStatus" => (i.deployment.status.as_str().to_string(), 0),
                "templateName" => (i.template.name.clone(), 0),
                "environmentName" => (i.environment_name.clone(), 0),
                "lastDeploymentAttemptedAt" => {
                    (String::new(), i.deployment.last_attempted_at.millis())
                }
                "createdAt" => (String::new(), i.created_at.millis()),
                _ => (i.service_name.clone(), 0),
            }
        };
        key(a)
            .cmp(&key(b))
            .then_with(|| (&a.service_name, &a.name).cmp(&(&b.service_name, &b.name)))
    });
    if s(input, "sortOrder") == Some("DESCENDING") {
        instances.reverse();
    }
    // The position is only meaningful for the same query, so the token is bound to it.
    let listing = format!(
        "instances/{}",
        serde_json::to_string(&[
            input.get("serviceName"),
            input.get("filters"),
            input.get("sortBy"),
            input.get("sortOrder")
        ])
        .unwrap_or_default()
    );
    let start: usize = match redeem(api, tenant, &listing, input)? {
        Some(p) => p.parse().unwrap_or(0),
        None => 0,
    };
    let size = page_size(input);
    let page: Vec<Value> = instances
        .iter()
        .skip(start)
        .take(size)
        .map(|i| instance_json(i, true))
        .collect();
    let mut out = json!({ "serviceInstances": page });
    if start + size < instances.len() {
        out["nextToken"] = json!(
            api.pages
                .issue(tenant, &listing, &(start + size).to_string())
        );
    }
    Ok(out)
}
