//! Proton deployments: an environment's or a service instance's template version rendered with
//! its spec (and, for an instance, its environment's outputs) and deployed to its stack through
//! the [`StackDeployer`], like a stack sync's. A deployment is recorded `IN_PROGRESS` by the API
//! or by a service sync attempt; the engine claims it under a lease, runs it here, and ends it
//! `SUCCEEDED` (the stack reached a complete state; its outputs recorded) or `FAILED` (the reason
//! named). A transient failure (CloudFormation unreachable, throttled) keeps it in progress and
//! tries again with backoff. A worker that takes a deployment over follows the change set the
//! stopped one created.
//!
//! [`StackDeployer`]: gitsync_deploy::StackDeployer

use crate::Engine;
use crate::backoff::after_failures;
use gitsync_deploy::cfn::{
    DeployIdentity, DeploymentFile, Owner, RESOLVE_BLOCKER, StackPlan, plan,
};
use gitsync_deploy::render::{
    Mode, PipelineInstance, PipelineService, environment_context, instance_context,
    pipeline_context,
};
use gitsync_deploy::sandbox::{Job, Outcome};
use gitsync_deploy::spec::{ServiceSpec, checked_environment_inputs, pipeline_inputs};
use gitsync_deploy::{BoxFuture, CancelOutcome, DeployOutcome, Progress};
use gitsync_model::{
    DeploymentStatus, DeploymentTarget, EventType, SyncEvent, TemplateType, VALIDATE_ONLY,
};
use gitsync_store::{ClaimedDeployment, DeployedResource, DeploymentEnd, StoreError};
use serde_json::Value;
use std::time::Duration;

/// Transient failures retry after 10 s, doubling to 5 min.
const RETRY_BASE: Duration = Duration::from_secs(10);
const RETRY_MAX: Duration = Duration::from_secs(300);
/// Transient failures after which a deployment is given up (about an hour of retries).
const MAX_FAILURES: i64 = 15;
/// How often a running deployment looks whether a person asked to cancel it.
const CANCEL_POLL: Duration = Duration::from_secs(1);

/// How one run of a deployment ended.
enum Step {
    Ended(DeploymentEnd),
    /// Try again later, for this reason.
    Retry(String),
}

fn failed(message: impl Into<String>, stack_name: Option<&str>) -> Step {
    Step::Ended(DeploymentEnd {
        status: DeploymentStatus::Failed,
        message: message.into(),
        stack_name: stack_name.map(str::to_string),
        outputs: Default::default(),
        resources: Vec::new(),
    })
}

/// Records a deployment's events as they happen, while this worker holds its lease.
struct DeploymentProgress<'a> {
    engine: &'a Engine,
    claim: &'a ClaimedDeployment,
}

impl DeploymentProgress<'_> {
    /// Records the events a deployer reported at its end; answers the last one's text (what
    /// the deployment's message says).
    async fn record(&self, events: &[SyncEvent]) -> String {
        for event in events {
            self.report(event.clone()).await;
        }
        events.last().map(|e| e.event.clone()).unwrap_or_default()
    }
}

impl Progress for DeploymentProgress<'_> {
    fn report(&self, event: SyncEvent) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Err(e) = self
                .engine
                .store
                .record_deployment_event(self.claim, &event)
                .await
            {
                tracing::warn!(error = %e, "cannot record a deployment event");
            }
        })
    }
}

impl Engine {
    /// Runs one claimed deployment to its end (or to its next retry), keeping its lease.
    pub(crate) async fn run_deployment(&self, claim: ClaimedDeployment) {
        use tracing::Instrument;
        let span = tracing::info_span!("deployment", tenant = %claim.tenant, id = %claim.id, target = %claim.target.describe());
        async {
            let keeper = self.keep_lease(|now, ttl| self.store.renew_deployment(&claim, now, ttl));
            // A deployment asked to cancel stops where it is (its future is dropped) and is
            // cancelled from there.
            let work = async {
                if !claim.cancelling {
                    tokio::select! {
                        step = self.deploy(&claim) => return step,
                        () = self.cancel_requested(&claim) => {}
                    }
                }
                self.cancel(&claim).await
            };
            let step = tokio::select! {
                step = work => step,
                () = keeper => {
                    tracing::warn!("lost the deployment's lease; another worker goes on with it");
                    return;
                }
            };
            let recorded = match step {
                Step::Ended(end) => {
                    tracing::info!(status = end.status.as_str(), message = %end.message, "deployment ended");
                    self.store.finish_deployment(&claim, &end).await
                }
                Step::Retry(reason) if claim.failures + 1 >= MAX_FAILURES => {
                    let end = DeploymentEnd {
                        status: if claim.deleting {
                            DeploymentStatus::DeleteFailed
                        } else {
                            DeploymentStatus::Failed
                        },
                        message: format!(
                            "gave up after {} tries: {reason}",
                            claim.failures + 1
                        ),
                        stack_name: None,
                        outputs: Default::default(),
                        resources: Vec::new(),
                    };
                    tracing::warn!(message = %end.message, "deployment given up");
                    self.store.finish_deployment(&claim, &end).await
                }
                Step::Retry(reason) => {
                    let wait = after_failures(RETRY_BASE, claim.failures + 1, RETRY_MAX);
                    let at = self.db_now().await.plus_millis(wait.as_millis() as i64);
                    tracing::warn!(retry_in_s = wait.as_secs(), %reason, "deployment failed for now; trying again");
                    self.store.retry_deployment(&claim, at, &reason).await
                }
            };
            if let Err(e) = recorded {
                tracing::warn!(error = %e, "cannot record how the deployment went");
            }
        }
        .instrument(span)
        .await
    }

    /// Renders the template version with the resource's spec and deploys its stack.
    async fn deploy(&self, claim: &ClaimedDeployment) -> Step {
        let progress = DeploymentProgress {
            engine: self,
            claim,
        };
        if claim.deleting {
            return self.delete_stack(claim, &progress).await;
        }
        let (template_type, dir) = match claim.target {
            DeploymentTarget::Environment { .. } => (TemplateType::Environment, "infrastructure"),
            DeploymentTarget::ServiceInstance { .. } => {
                (TemplateType::Service, "instance_infrastructure")
            }
            DeploymentTarget::ServicePipeline { .. } => {
                (TemplateType::Service, "pipeline_infrastructure")
            }
        };
        let template = &claim.template;
        let label = format!(
            "{} template {} {}.{}",
            match template_type {
                TemplateType::Environment => "environment",
                TemplateType::Service => "service",
            },
            template.name,
            template.major,
            template.minor
        );
        let transient = |e: StoreError| Step::Retry(e.to_string());
        let version = match self
            .store
            .get_template_version(
                &claim.tenant,
                template_type,
                &template.name,
                template.major,
                template.minor,
            )
            .await
        {
            Ok(v) => v,
            Err(StoreError::NotFound(m)) => return failed(m, None),
            Err(e) => return transient(e),
        };
        let files = match self
            .store
            .template_version_files(
                &claim.tenant,
                template_type,
                &template.name,
                template.major,
                template.minor,
            )
            .await
        {
            Ok(files) => files,
            Err(StoreError::NotFound(_)) => {
                return failed(
                    format!(
                        "{label} has no template files (it was not registered from a bundle): there is nothing to render"
                    ),
                    None,
                );
            }
            Err(e) => return transient(e),
        };
        let schema = version.schema.clone().unwrap_or_default();
        let context = match &claim.target {
            DeploymentTarget::Environment { name } => {
                match checked_environment_inputs(&schema, name, claim.spec.as_deref()) {
                    Ok(inputs) => environment_context(name, &inputs),
                    Err(problems) => return failed(problems.join("; "), None),
                }
            }
            DeploymentTarget::ServiceInstance { service, instance } => {
                let spec = claim.spec.as_deref().unwrap_or_default();
                let inputs = match ServiceSpec::parse("the instance's spec", spec)
                    .map_err(|e| vec![e])
                    .and_then(|s| {
                        s.instance(instance).cloned().ok_or_else(|| {
                            vec![format!("the instance's spec has no instance {instance}")]
                        })
                    }) {
                    Ok(i) => i
                        .inputs
                        .unwrap_or_else(|| Value::Object(Default::default())),
                    Err(problems) => return failed(problems.join("; "), None),
                };
                let environment = DeploymentTarget::Environment {
                    name: claim.environment_name.clone(),
                };
                let outputs = match self
                    .store
                    .resource_outputs(&claim.tenant, &environment, None)
                    .await
                {
                    Ok(o) => o,
                    Err(e) => return transient(e),
                };
                instance_context(
                    service,
                    instance,
                    &inputs,
                    &claim.environment_name,
                    &serde_json::to_value(outputs).unwrap_or_default(),
                    &claim.tenant.account_id,
                )
            }
            DeploymentTarget::ServicePipeline { service } => {
                match self.pipeline_context(claim, service, &schema).await {
                    Ok(context) => context,
                    Err(step) => return step,
                }
            }
        };
        let job = Job::RenderDir {
            files,
            dir: dir.to_string(),
            context,
            mode: Mode::Deploy,
        };
        let rendered = match self.settings.render_isolation.run(job).await {
            Ok(Outcome::Rendered(Ok(rendered))) => rendered,
            Ok(Outcome::Rendered(Err(problems))) => {
                let m = format!("rendering {label}: {}", problems.join("; "));
                progress
                    .report(SyncEvent::new(EventType::ValidationFailed, &m, None))
                    .await;
                return failed(m, None);
            }
            Ok(other) => unreachable!("a rendering answered {other:?}"),
            Err(limit) => {
                let m = format!("rendering {label}: {limit}");
                progress
                    .report(SyncEvent::new(EventType::LimitExceeded, &m, None))
                    .await;
                return failed(m, None);
            }
        };
        let (path, body) = match rendered.as_slice() {
            [(path, body)] => (path.clone(), body.clone()),
            many => {
                return failed(
                    format!(
                        "{label} renders {} CloudFormation files under {dir}/; gitsync deploys one stack per {}, from one file",
                        many.len(),
                        claim.target.describe()
                    ),
                    None,
                );
            }
        };
        let resource = match self
            .store
            .deployed_resource(&claim.tenant, &claim.target)
            .await
        {
            Ok(r) => r,
            Err(StoreError::NotFound(m)) => return failed(m, None),
            Err(e) => return transient(e),
        };
        let stack_name = resource
            .stack_name
            .clone()
            .unwrap_or_else(|| claim.target.default_stack_name());
        let file = DeploymentFile {
            template_file_path: path,
            ..Default::default()
        };
        let role_arn = resource.role_arn.clone().unwrap_or_default();
        let mut stack_plan = match plan(&stack_name, &role_arn, &file, body.as_bytes()) {
            Ok(p) => p,
            // Nothing reached CloudFormation: no stack is recorded (a delete would look for it).
            Err(problems) => {
                let m = format!("{label}: {}", problems.join("; "));
                return failed(m, None);
            }
        };
        stack_plan.identity = match self.identity(claim, &role_arn).await {
            Ok(identity) => identity,
            Err(step) => return step,
        };
        stack_plan.region = claim.tenant.region.clone();
        // Change sets are named after what is deployed: the commit service sync applies, or
        // the deployment's id.
        stack_plan.commit = claim
            .source_commit
            .clone()
            .unwrap_or_else(|| claim.id.clone());
        // A stack once deployed and now missing was deleted outside gitsync: say so rather
        // than create it again (a later issue lets a person decide).
        // A stack bound by `gitsync proton bind-stack` is taken over (tagged) by this deployment.
        stack_plan.deployed_from = resource
            .last_succeeded_id
            .clone()
            .filter(|_| resource.stack_name.is_some() && !resource.adopt);
        stack_plan.owner = owner(claim, resource.adopt);
        stack_plan.started_change_set = claim.change_set_id.clone();
        let report = self.deployer.deploy(&stack_plan, &progress).await;
        let last = progress.record(&report.events).await;
        match (report.outcome, report.blocker) {
            // Proton's resources take no blockers: the remedy is binding the stack again.
            (_, Some(blocker)) => failed(
                blocker
                    .reason
                    .replace(RESOLVE_BLOCKER, &rebind(claim, &stack_name)),
                Some(&stack_name),
            ),
            (DeployOutcome::Succeeded, None) if !report.deployed => Step::Ended(DeploymentEnd {
                status: DeploymentStatus::Succeeded,
                message: VALIDATE_ONLY.to_string(),
                stack_name: None,
                outputs: Default::default(),
                resources: Vec::new(),
            }),
            (DeployOutcome::Succeeded, None) => Step::Ended(DeploymentEnd {
                status: DeploymentStatus::Succeeded,
                message: format!("Stack {stack_name} deployed: {last}"),
                stack_name: Some(stack_name),
                outputs: report.outputs,
                resources: report.resources,
            }),
            (DeployOutcome::Failed, None) => failed(last, Some(&stack_name)),
            (DeployOutcome::FailedTransiently, None) => Step::Retry(last),
        }
    }

    /// What a service's pipeline renders with: the service, the `pipeline` inputs of the spec
    /// it deploys, and every instance of the service (not being deleted) with its inputs, its
    /// outputs and its environment's.
    async fn pipeline_context(
        &self,
        claim: &ClaimedDeployment,
        service: &str,
        schema: &str,
    ) -> Result<Value, Step> {
        let transient = |e: StoreError| Step::Retry(e.to_string());
        let spec = claim.spec.as_deref().unwrap_or_default();
        let inputs = ServiceSpec::parse("the pipeline's spec", spec)
            .map_err(|e| vec![e])
            .and_then(|spec| pipeline_inputs(schema, &spec))
            .map_err(|problems| failed(problems.join("; "), None))?;
        let found = match self.store.get_service(&claim.tenant, service).await {
            Ok(s) => s,
            Err(StoreError::NotFound(m)) => return Err(failed(m, None)),
            Err(e) => return Err(transient(e)),
        };
        let mut instances = Vec::new();
        for instance in self
            .store
            .service_instances(&claim.tenant, Some(service))
            .await
            .map_err(transient)?
        {
            if instance.deployment.status == DeploymentStatus::DeleteInProgress {
                continue;
            }
            let inputs = instance
                .spec
                .as_deref()
                .and_then(|text| ServiceSpec::parse("the instance's spec", text).ok())
                .and_then(|spec| spec.instance(&instance.name).cloned())
                .and_then(|entry| entry.inputs)
                .unwrap_or_else(|| Value::Object(Default::default()));
            let of = |target: DeploymentTarget| async move {
                self.store
                    .resource_outputs(&claim.tenant, &target, None)
                    .await
                    .map(|o| serde_json::to_value(o).unwrap_or_default())
            };
            let outputs = of(DeploymentTarget::ServiceInstance {
                service: service.to_string(),
                instance: instance.name.clone(),
            })
            .await
            .map_err(transient)?;
            let environment_outputs = of(DeploymentTarget::Environment {
                name: instance.environment_name.clone(),
            })
            .await
            .map_err(transient)?;
            instances.push(PipelineInstance {
                name: instance.name,
                inputs,
                outputs,
                environment: instance.environment_name,
                environment_outputs,
                account_id: claim.tenant.account_id.clone(),
            });
        }
        let service = PipelineService {
            name: found.name,
            branch_name: found.branch_name.unwrap_or_default(),
            repository_connection_arn: found.repository_connection_arn.unwrap_or_default(),
            repository_id: found.repository_id.unwrap_or_default(),
        };
        Ok(pipeline_context(&service, &inputs, &instances))
    }

    /// Returns once a person asked to cancel the deployment (`CancelEnvironmentDeployment`, …).
    async fn cancel_requested(&self, claim: &ClaimedDeployment) {
        loop {
            tokio::time::sleep(CANCEL_POLL).await;
            if let Ok((DeploymentStatus::Cancelling, _)) =
                self.store.deployment_status(&claim.tenant, &claim.id).await
            {
                return;
            }
        }
    }

    /// Stops a deployment a person cancelled: its unexecuted change set deleted, or its stack's
    /// update cancelled and rolled back; `CANCELLED`, or as the stack ended when too late.
    async fn cancel(&self, claim: &ClaimedDeployment) -> Step {
        let progress = DeploymentProgress {
            engine: self,
            claim,
        };
        let resource = match self
            .store
            .deployed_resource(&claim.tenant, &claim.target)
            .await
        {
            Ok(r) => r,
            Err(e) => return Step::Retry(e.to_string()),
        };
        let stack_name = resource
            .stack_name
            .clone()
            .unwrap_or_else(|| claim.target.default_stack_name());
        let change_set = match self.store.deployment_change_set(&claim.id).await {
            Ok(c) => c,
            Err(e) => return Step::Retry(e.to_string()),
        };
        let plan = match self.existing_stack(claim, &resource, &stack_name).await {
            Ok(plan) => plan,
            // It could not have deployed without an identity: nothing to stop.
            Err(Step::Ended(_)) => return cancelled("Cancelled; the stack was not changed".into()),
            Err(retry) => return retry,
        };
        let report = self
            .deployer
            .cancel(&plan, change_set.as_deref(), &progress)
            .await;
        let mut last = progress.record(&report.events).await;
        if last.is_empty() {
            last = "Cancelled; nothing was deployed".to_string();
        }
        match report.outcome {
            CancelOutcome::Stopped { .. } => cancelled(last),
            CancelOutcome::TooLate(DeployOutcome::Succeeded) => Step::Ended(DeploymentEnd {
                status: DeploymentStatus::Succeeded,
                message: last,
                stack_name: Some(stack_name),
                outputs: report.outputs,
                resources: Vec::new(),
            }),
            CancelOutcome::TooLate(_) => failed(last, Some(&stack_name)),
            CancelOutcome::FailedTransiently => Step::Retry(last),
        }
    }

    /// A plan naming a resource's existing stack, with whose credentials to reach it: what
    /// deleting it or cancelling its update needs.
    async fn existing_stack(
        &self,
        claim: &ClaimedDeployment,
        resource: &DeployedResource,
        stack_name: &str,
    ) -> Result<StackPlan, Step> {
        let mut plan = StackPlan::for_stack(stack_name);
        plan.identity = self
            .identity(claim, resource.role_arn.as_deref().unwrap_or_default())
            .await?;
        plan.region = claim.tenant.region.clone();
        plan.owner = owner(claim, resource.adopt);
        Ok(plan)
    }

    /// Whose credentials deploy or delete a resource's stack: the environment's role (assumed
    /// with the tenant's account id as `ExternalId`, within the accounts the tenant may deploy
    /// into), or the server's own for a tenant the operator trusts.
    async fn identity(
        &self,
        claim: &ClaimedDeployment,
        role_arn: &str,
    ) -> Result<DeployIdentity, Step> {
        let policy = self
            .store
            .account_policy(&claim.tenant.account_id)
            .await
            .map_err(|e| Step::Retry(e.to_string()))?;
        if policy.trusted && !self.settings.assume_sync_role {
            return Ok(DeployIdentity::Server);
        }
        if role_arn.is_empty() {
            let missing = match claim.target {
                DeploymentTarget::ServicePipeline { .. } => {
                    "the account has no pipelineServiceRoleArn: gitsync deploys pipeline stacks with that role (set it with UpdateAccountSettings)".to_string()
                }
                _ => format!(
                    "environment {} has no protonServiceRoleArn: gitsync deploys its stacks with that role (set it with UpdateEnvironment)",
                    claim.environment_name
                ),
            };
            return Err(failed(missing, None));
        }
        policy.check_role(role_arn).map_err(|m| failed(m, None))?;
        Ok(DeployIdentity::AssumeRole {
            role_arn: role_arn.to_string(),
            external_id: claim.tenant.account_id.clone(),
        })
    }

    /// Deletes the stack of a resource being deleted; the resource goes once its stack is gone.
    async fn delete_stack(
        &self,
        claim: &ClaimedDeployment,
        progress: &DeploymentProgress<'_>,
    ) -> Step {
        let resource = match self
            .store
            .deployed_resource(&claim.tenant, &claim.target)
            .await
        {
            Ok(r) => r,
            Err(StoreError::NotFound(m)) => return deleted(m),
            Err(e) => return Step::Retry(e.to_string()),
        };
        let Some(stack_name) = resource.stack_name.clone() else {
            return deleted(format!("{} had no stack", claim.target.describe()));
        };
        let plan = match self.existing_stack(claim, &resource, &stack_name).await {
            Ok(plan) => plan,
            Err(Step::Ended(end)) => return delete_failed(end.message, &stack_name),
            Err(retry) => return retry,
        };
        let report = self.deployer.delete(&plan, progress).await;
        let last = progress.record(&report.events).await;
        match report.outcome {
            DeployOutcome::Succeeded => deleted(last),
            DeployOutcome::Failed => delete_failed(last, &stack_name),
            DeployOutcome::FailedTransiently => Step::Retry(last),
        }
    }
}

/// What takes a blocker's place for a Proton resource: binding it to its stack again, which lets
/// the next deployment take the stack over (or create it when it is gone).
fn rebind(claim: &ClaimedDeployment, stack_name: &str) -> String {
    let resource = match &claim.target {
        DeploymentTarget::Environment { name } => format!("--environment {name}"),
        DeploymentTarget::ServiceInstance { service, instance } => {
            format!("--service {service} --instance {instance}")
        }
        DeploymentTarget::ServicePipeline { service } => format!("--pipeline {service}"),
    };
    format!(
        "run `gitsync proton bind-stack {resource} --stack-name {stack_name} --account-id {} --region {}` and deploy again",
        claim.tenant.account_id, claim.tenant.region
    )
}

/// Who owns a resource's stack, as its tags say; `adopt`: the resource was bound to an existing
/// stack, which may be taken over (never one tagged for another tenant).
fn owner(claim: &ClaimedDeployment, adopt: bool) -> Owner {
    Owner {
        account: claim.tenant.account_id.clone(),
        configuration: claim.target.owner_tag(),
        adopt,
    }
}

fn cancelled(message: String) -> Step {
    Step::Ended(DeploymentEnd {
        status: DeploymentStatus::Cancelled,
        message,
        stack_name: None,
        outputs: Default::default(),
        resources: Vec::new(),
    })
}

fn deleted(message: impl Into<String>) -> Step {
    Step::Ended(DeploymentEnd {
        status: DeploymentStatus::DeleteComplete,
        message: message.into(),
        stack_name: None,
        outputs: Default::default(),
        resources: Vec::new(),
    })
}

fn delete_failed(message: impl Into<String>, stack_name: &str) -> Step {
    Step::Ended(DeploymentEnd {
        status: DeploymentStatus::DeleteFailed,
        message: message.into(),
        stack_name: Some(stack_name.to_string()),
        outputs: Default::default(),
        resources: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitsync_model::{DeployedTemplate, TemplateType};
    use gitsync_store::{NewEnvironment, NewTemplateVersion, TemplateSpec};
    use std::collections::BTreeMap;

    const SCHEMA: &str = "schema:\n  format:\n    openapi: \"3.0.0\"\n  environment_input_type: \"I\"\n  types:\n    I:\n      type: object\n      properties:\n        cidr:\n          type: string\n          default: \"10.0.0.0/16\"\n";
    const MANIFEST: &str = "infrastructure:\n  templates:\n    - file: cloudformation.yaml\n";

    /// Registers environment template `name` 1.0 with `template` as its one infrastructure file.
    async fn version(kit: &crate::testkit::Kit, name: &str, template: &str) -> DeployedTemplate {
        let spec = TemplateSpec {
            name: name.into(),
            display_name: None,
            description: None,
            encryption_key: None,
            provisioning: None,
        };
        let (store, t) = (&kit.store, &kit.tenant);
        store
            .create_template(t, TemplateType::Environment, &spec, &[])
            .await
            .unwrap();
        let files: BTreeMap<String, Vec<u8>> = [
            ("schema/schema.yaml", SCHEMA),
            ("infrastructure/manifest.yaml", MANIFEST),
            ("infrastructure/cloudformation.yaml", template),
        ]
        .into_iter()
        .map(|(p, c)| (p.to_string(), c.as_bytes().to_vec()))
        .collect();
        let new = NewTemplateVersion {
            major: 1,
            description: None,
            schema: Some(SCHEMA.into()),
            compatible_environments: Vec::new(),
            supported_component_sources: Vec::new(),
            source_commit: None,
            files,
        };
        let v = store
            .register_template_version(t, TemplateType::Environment, name, &new)
            .await
            .unwrap();
        DeployedTemplate {
            name: name.into(),
            major: v.major,
            minor: v.minor,
        }
    }

    /// Creates environment `name` and runs its deployment in the engine, as the run loop would;
    /// answers the environment afterwards.
    async fn deploy(
        kit: &crate::testkit::Kit,
        name: &str,
        template: DeployedTemplate,
        spec: &str,
    ) -> gitsync_model::Environment {
        let (store, t) = (&kit.store, &kit.tenant);
        let new = NewEnvironment {
            name: name.into(),
            description: None,
            template,
            spec: Some(spec.into()),
            proton_service_role_arn: Some(format!("arn:aws:iam::{}:role/proton", t.account_id)),
            codebuild_role_arn: None,
            component_role_arn: None,
        };
        let created = store.create_environment(t, &new, &[]).await.unwrap();
        assert_eq!(created.deployment.status, DeploymentStatus::InProgress);
        let id = created.deployment.last_attempted_id.unwrap();
        let claim = store
            .claim_deployment(&id, "test", gitsync_model::Timestamp::now(), 60_000)
            .await
            .unwrap()
            .expect("the new deployment is due");
        kit.engine.run_deployment(claim).await;
        store.get_environment(t, name).await.unwrap()
    }

    /// With the validate-only deployer a deployment renders (the spec over the schema's
    /// defaults), plans and ends SUCCEEDED saying that nothing was deployed, with no stack
    /// recorded; a template that prints an input the schema does not have ends FAILED naming
    /// the file, the line and the value.
    #[tokio::test]
    async fn deployments_end_as_they_really_did() {
        let kit = crate::testkit::Kit::new().await;
        let good = version(
            &kit,
            "net",
            "Resources:\n  Vpc:\n    Type: AWS::EC2::VPC\n    Properties:\n      CidrBlock: {{ environment.inputs.cidr }}\n",
        )
        .await;
        let env = deploy(&kit, "dev", good, "proton: EnvironmentSpec\n").await;
        assert_eq!(env.deployment.status, DeploymentStatus::Succeeded);
        assert_eq!(
            env.deployment.status_message.as_deref(),
            Some(VALIDATE_ONLY)
        );
        let target = DeploymentTarget::Environment { name: "dev".into() };
        let resource = kit
            .store
            .deployed_resource(&kit.tenant, &target)
            .await
            .unwrap();
        assert_eq!(resource.stack_name, None, "validate-only deploys no stack");
        let events = kit
            .store
            .deployment_events(env.deployment.last_attempted_id.as_deref().unwrap(), 0)
            .await
            .unwrap();
        assert!(
            events
                .iter()
                .any(|(_, e)| e.event.contains("nothing was deployed")),
            "{events:?}"
        );

        let typo = version(
            &kit,
            "typo",
            "Resources:\n  Vpc:\n    Type: AWS::EC2::VPC\n    Properties:\n      CidrBlock: {{ environment.inputs.cdir }}\n",
        )
        .await;
        let env = deploy(&kit, "broken", typo, "proton: EnvironmentSpec\n").await;
        assert_eq!(env.deployment.status, DeploymentStatus::Failed);
        let message = env.deployment.status_message.unwrap_or_default();
        assert!(
            message.contains("infrastructure/cloudformation.yaml:5")
                && message.contains("environment.inputs.cdir"),
            "{message}"
        );
        assert_eq!(env.deployment.last_succeeded_id, None);
    }
}
