//! The CloudFormation deployer: applies a [`StackPlan`] through a change set with the official
//! AWS SDK client.
//!
//! `CREATE` when the stack does not exist, `UPDATE` when it does; an empty change set is
//! `NO_CHANGES` and a success; otherwise the change set is executed, the stack is watched until it
//! settles, its events are copied into the attempt, and the final stack status decides the
//! outcome. A stack in a state no update can leave (`ROLLBACK_COMPLETE`, `*_FAILED`, `DELETE_*`)
//! fails without a change set, saying what a person must do.
//!
//! Endpoint and credentials come from the standard AWS chain (environment, profile, …) with an
//! optional endpoint override; a plan whose identity is a role is deployed as that role,
//! assumed through STS with the tenant's account id as `ExternalId`.

use aws_config::BehaviorVersion;
use aws_sdk_cloudformation as cfn;
use aws_sdk_cloudformation::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudformation::types::{
    Capability, ChangeSetStatus, ChangeSetType, ExecutionStatus, OnStackFailure, Parameter,
    StackStatus, Tag,
};
use gitsync_deploy::cfn::{
    AppliedStack, DeployIdentity, OWNER_ACCOUNT_TAG, OWNER_CONFIGURATION_TAG, RESOLVE_BLOCKER,
    StackPlan,
};
use gitsync_model::{EventType, SyncEvent};

use gitsync_deploy::{
    BlockerRequest, BoxFuture, CancelOutcome, CancelReport, DeployOutcome, DeployReport,
    PreviewOutcome, Progress, ResourceChange, StackDeployer,
};
use std::collections::BTreeMap;
use std::time::Duration;

/// How the deployer reaches CloudFormation and how patiently it waits.
#[derive(Debug, Clone)]
pub struct Settings {
    /// An endpoint override (a CloudFormation-compatible server); `None` for AWS's own.
    pub endpoint: Option<String>,
    /// How often change sets and stacks are polled while they settle.
    pub poll_interval: Duration,
    /// How long one deployment may take before the attempt gives up (transiently).
    pub timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            endpoint: None,
            poll_interval: Duration::from_secs(2),
            timeout: Duration::from_secs(3600),
        }
    }
}

/// Whether the environment names AWS credentials (keys, a profile, web identity, a container
/// role). Only these count: probing instance metadata would slow every start-up, and deploying
/// for real must be something the operator asked for.
pub fn credentials_configured() -> bool {
    [
        "AWS_ACCESS_KEY_ID",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
}

/// Where the default credential chain will find the server's credentials, as far as the
/// environment tells; `None` leaves the shared files (`~/.aws`) and instance metadata.
fn credentials_source() -> Option<&'static str> {
    let set = |v: &str| std::env::var_os(v).is_some_and(|x| !x.is_empty());
    if set("AWS_ACCESS_KEY_ID") {
        Some("environment (AWS_ACCESS_KEY_ID)")
    } else if set("AWS_PROFILE") {
        Some("profile (AWS_PROFILE)")
    } else if set("AWS_WEB_IDENTITY_TOKEN_FILE") {
        Some("web identity (AWS_WEB_IDENTITY_TOKEN_FILE)")
    } else if set("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        || set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
    {
        Some("container role (AWS_CONTAINER_CREDENTIALS_*)")
    } else {
        None
    }
}

/// What to do when the server has no credentials.
const MISSING_CREDENTIALS: &str = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, AWS_WEB_IDENTITY_TOKEN_FILE, a container or instance role) in the gitsync server's environment";

/// Deploys stacks through the CloudFormation API.
pub struct CloudFormation {
    base: aws_config::SdkConfig,
    settings: Settings,
    mode: &'static str,
}

impl CloudFormation {
    /// Loads the standard AWS configuration once. The region is always the plan's (the
    /// tenant's), so none is looked up (that would probe instance metadata).
    pub async fn new(settings: Settings) -> CloudFormation {
        let base = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .load()
            .await;
        let mode = match settings.endpoint {
            Some(_) => "CloudFormation change sets (endpoint override)",
            None => "CloudFormation change sets (AWS endpoints)",
        };
        CloudFormation {
            base,
            settings,
            mode,
        }
    }

    /// Resolves the server's own credentials: which source, and the access key id (shortened),
    /// or why there are none and what to set. Logged at start-up; checked before every
    /// deployment so that a missing credential is named instead of surfacing as a dispatch
    /// failure of the first CloudFormation call.
    pub async fn server_credentials(&self) -> Result<String, String> {
        use cfn::config::ProvideCredentials;
        let source = credentials_source()
            .unwrap_or("shared config files (~/.aws) or instance metadata (IMDS)");
        let Some(provider) = self.base.credentials_provider() else {
            return Err(format!(
                "no AWS credentials provider: {MISSING_CREDENTIALS}"
            ));
        };
        let resolved =
            tokio::time::timeout(Duration::from_secs(10), provider.provide_credentials()).await;
        match resolved {
            Ok(Ok(c)) => {
                let id = c.access_key_id();
                let shown = match (
                    id.get(..4),
                    id.len().checked_sub(4).and_then(|i| id.get(i..)),
                ) {
                    (Some(head), Some(tail)) if id.len() > 8 => format!("{head}…{tail}"),
                    _ => "…".to_string(),
                };
                Ok(format!("{source}, access key {shown}"))
            }
            Ok(Err(e)) => Err(format!(
                "no AWS credentials found (looked in the environment, ~/.aws and instance metadata: {e}): {MISSING_CREDENTIALS}"
            )),
            Err(_) => Err(format!(
                "no AWS credentials within 10 s (looked in the environment, ~/.aws and instance metadata): {MISSING_CREDENTIALS}"
            )),
        }
    }

    /// A client for the plan's region with the plan's identity: the server's own credentials,
    /// or the sync role assumed through STS with the tenant's account id as `ExternalId`.
    async fn client(&self, plan: &StackPlan) -> cfn::Client {
        let mut config = cfn::config::Builder::from(&self.base)
            .region(cfn::config::Region::new(plan.region.clone()));
        if let Some(endpoint) = &self.settings.endpoint {
            config = config.endpoint_url(endpoint);
        }
        if let DeployIdentity::AssumeRole {
            role_arn,
            external_id,
        } = &plan.identity
        {
            let mut assume = aws_config::sts::AssumeRoleProvider::builder(role_arn)
                .session_name(format!("gitsync-{external_id}"))
                .external_id(external_id)
                .region(aws_config::Region::new(plan.region.clone()));
            if let Some(endpoint) = &self.settings.endpoint {
                // A CloudFormation-compatible test server usually serves STS too.
                let sts = self.base.to_builder().endpoint_url(endpoint).build();
                assume = assume.configure(&sts);
            } else {
                assume = assume.configure(&self.base);
            }
            let provider = assume.build().await;
            config = config.credentials_provider(provider);
        }
        cfn::Client::from_conf(config.build())
    }
}

impl StackDeployer for CloudFormation {
    fn mode(&self) -> &'static str {
        self.mode
    }

    fn deploy<'a>(
        &'a self,
        plan: &'a StackPlan,
        progress: &'a dyn Progress,
    ) -> BoxFuture<'a, DeployReport> {
        Box::pin(self.run(plan, progress, false))
    }

    fn delete<'a>(
        &'a self,
        plan: &'a StackPlan,
        progress: &'a dyn Progress,
    ) -> BoxFuture<'a, DeployReport> {
        Box::pin(self.run(plan, progress, true))
    }

    fn preview<'a>(&'a self, plan: &'a StackPlan) -> BoxFuture<'a, PreviewOutcome> {
        Box::pin(async move {
            if let Err(missing) = self.server_credentials().await {
                return PreviewOutcome::Transient(format!(
                    "no AWS credentials to call CloudFormation with: {missing}"
                ));
            }
            let client = self.client(plan).await;
            let quiet = Quiet;
            let mut run = Deployment::new(&client, plan, &self.settings, &quiet);
            run.preview().await
        })
    }

    fn cancel<'a>(
        &'a self,
        plan: &'a StackPlan,
        change_set: Option<&'a str>,
        progress: &'a dyn Progress,
    ) -> BoxFuture<'a, CancelReport> {
        Box::pin(async move {
            let Some(change_set) = change_set else {
                // Nothing was asked of CloudFormation yet.
                return CancelReport {
                    events: vec![SyncEvent::new(
                        EventType::DeploymentProgress,
                        format!(
                            "Cancelled before a change set was made; stack {} was not changed",
                            plan.stack_name
                        ),
                        None,
                    )],
                    outcome: CancelOutcome::Stopped { rolled_back: false },
                    outputs: BTreeMap::new(),
                };
            };
            let client = self.client(plan).await;
            let mut run = Deployment::new(&client, plan, &self.settings, progress);
            let outcome = run.cancel(change_set).await;
            let mut outputs = BTreeMap::new();
            if outcome == CancelOutcome::TooLate(DeployOutcome::Succeeded)
                && let Ok(Some(d)) = run.stack().await
            {
                outputs = d.outputs;
            }
            CancelReport {
                events: run.events.split_off(run.reported),
                outcome,
                outputs,
            }
        })
    }
}

impl CloudFormation {
    /// Deploys the plan, or deletes its stack.
    async fn run(&self, plan: &StackPlan, progress: &dyn Progress, delete: bool) -> DeployReport {
        // Without credentials nothing can be called: say so (an operator fixes it; the
        // attempt backs off and tries again).
        if let Err(missing) = self.server_credentials().await {
            return DeployReport {
                events: vec![SyncEvent::new(EventType::DeploymentFailed, missing, None)],
                outcome: DeployOutcome::FailedTransiently,
                blocker: None,
                deployed: false,
                outputs: BTreeMap::new(),
                resources: Vec::new(),
            };
        }
        let client = self.client(plan).await;
        let mut run = Deployment::new(&client, plan, &self.settings, progress);
        if delete {
            let (outcome, deleted) = run.delete().await;
            return DeployReport {
                events: run.events.split_off(run.reported),
                outcome,
                blocker: None,
                deployed: deleted,
                outputs: BTreeMap::new(),
                resources: Vec::new(),
            };
        }
        let mut outcome = run.deploy().await;
        // What the stack now offers its dependents (Proton's outputs) and what it holds (its
        // provisioned resources), read once it settled.
        let (mut outputs, mut resources) = (BTreeMap::new(), Vec::new());
        if outcome == DeployOutcome::Succeeded {
            match run.stack().await {
                Ok(Some(d)) => outputs = d.outputs,
                Ok(None) => {}
                Err(e) => outcome = run.fail(e),
            }
            match run.resources().await {
                Ok(r) => resources = r,
                Err(e) => outcome = run.fail(e),
            }
        }
        DeployReport {
            events: run.events.split_off(run.reported),
            outcome,
            blocker: run.blocker,
            deployed: outcome == DeployOutcome::Succeeded,
            outputs,
            resources,
        }
    }
}

/// What DescribeStacks says of a stack.
struct Described {
    status: StackStatus,
    id: String,
    reason: Option<String>,
    parameters: BTreeMap<String, String>,
    tags: BTreeMap<String, String>,
    outputs: BTreeMap<String, String>,
}

/// One deployment of one plan, collecting its events.
struct Deployment<'a> {
    client: &'a cfn::Client,
    plan: &'a StackPlan,
    settings: &'a Settings,
    events: Vec<SyncEvent>,
    /// How many of `events` went to `progress` already.
    reported: usize,
    progress: &'a dyn Progress,
    blocker: Option<BlockerRequest>,
}

/// A CloudFormation error: deterministic (the request is wrong and will stay wrong) or not.
struct CallError {
    message: String,
    transient: bool,
}

fn call_error<E: ProvideErrorMetadata + std::fmt::Debug>(
    what: &str,
    e: SdkError<E, cfn::config::http::HttpResponse>,
) -> CallError {
    match &e {
        SdkError::ServiceError(service) => {
            let err = service.err();
            let status = service.raw().status().as_u16();
            let code = err.code().unwrap_or("Unknown");
            // Some errors come without a message; the HTTP status then says what kind it was.
            let message = match err.message() {
                Some(m) if !m.is_empty() => m.to_string(),
                _ => format!("no message (HTTP {status})"),
            };
            CallError {
                message: format!("{what}: {code}: {message}"),
                transient: matches!(
                    code,
                    "Throttling"
                        | "ThrottlingException"
                        | "RequestLimitExceeded"
                        | "ServiceUnavailable"
                ) || code.starts_with("InternalFailure"),
            }
        }
        other => CallError {
            message: format!("{what}: CloudFormation could not be reached: {other:?}"),
            transient: true,
        },
    }
}

/// States no update can leave: a person must delete or repair the stack.
/// The most changes a preview lists (CloudFormation allows 500 resources a stack).
const MAX_PREVIEW_CHANGES: usize = 1000;

/// A failed call as a preview's outcome.
fn preview_failed(e: CallError) -> PreviewOutcome {
    if e.transient {
        PreviewOutcome::Transient(e.message)
    } else {
        PreviewOutcome::Failed(e.message)
    }
}

/// Where a preview's progress goes: nowhere (a preview is no attempt; it records no events).
struct Quiet;

impl Progress for Quiet {
    fn report(&self, _event: SyncEvent) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

fn stuck(status: &StackStatus) -> bool {
    let s = status.as_str();
    s == "ROLLBACK_COMPLETE" || s.starts_with("DELETE_") || s.ends_with("_FAILED")
}

fn in_progress(status: &StackStatus) -> bool {
    status.as_str().ends_with("_IN_PROGRESS")
}

fn succeeded(status: &StackStatus) -> bool {
    matches!(
        status.as_str(),
        "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "IMPORT_COMPLETE"
    )
}

impl<'a> Deployment<'a> {
    fn new(
        client: &'a cfn::Client,
        plan: &'a StackPlan,
        settings: &'a Settings,
        progress: &'a dyn Progress,
    ) -> Self {
        Deployment {
            client,
            plan,
            settings,
            events: Vec::new(),
            reported: 0,
            progress,
            blocker: None,
        }
    }
}

impl Deployment<'_> {
    /// Records the events so far on the attempt now (before a step that takes long or changes
    /// the stack).
    async fn flush(&mut self) {
        for event in &self.events[self.reported..] {
            self.progress.report(event.clone()).await;
        }
        self.reported = self.events.len();
    }

    fn event(&mut self, event_type: EventType, text: String, external_id: Option<String>) {
        self.events
            .push(SyncEvent::new(event_type, text, external_id.as_deref()));
    }

    fn fail(&mut self, e: CallError) -> DeployOutcome {
        self.event(EventType::DeploymentFailed, e.message, None);
        if e.transient {
            DeployOutcome::FailedTransiently
        } else {
            DeployOutcome::Failed
        }
    }

    /// What DescribeStacks says of the stack, or `None` when it does not exist.
    async fn stack(&self) -> Result<Option<Described>, CallError> {
        match self
            .client
            .describe_stacks()
            .stack_name(&self.plan.stack_name)
            .send()
            .await
        {
            Ok(out) => Ok(out.stacks().first().and_then(|s| {
                let pairs = |items: Vec<(Option<&str>, Option<&str>)>| {
                    items
                        .into_iter()
                        .map(|(k, v)| {
                            (
                                k.unwrap_or_default().to_string(),
                                v.unwrap_or_default().to_string(),
                            )
                        })
                        .collect::<BTreeMap<String, String>>()
                };
                Some(Described {
                    status: s.stack_status()?.clone(),
                    id: s.stack_id().unwrap_or_default().to_string(),
                    reason: s.stack_status_reason().map(str::to_string),
                    parameters: pairs(
                        s.parameters()
                            .iter()
                            .map(|p| (p.parameter_key(), p.parameter_value()))
                            .collect(),
                    ),
                    tags: pairs(s.tags().iter().map(|t| (t.key(), t.value())).collect()),
                    outputs: pairs(
                        s.outputs()
                            .iter()
                            .map(|o| (o.output_key(), o.output_value()))
                            .collect(),
                    ),
                })
            })),
            Err(SdkError::ServiceError(e))
                if e.err()
                    .message()
                    .is_some_and(|m| m.contains("does not exist")) =>
            {
                Ok(None)
            }
            Err(e) => Err(call_error("DescribeStacks", e)),
        }
    }

    async fn deploy(&mut self) -> DeployOutcome {
        if let Some(started) = self.plan.started_change_set.clone()
            && let Some(outcome) = self.resume(&started).await
        {
            return outcome;
        }
        let name = self.plan.stack_name.clone();
        let existing = match self.stack().await {
            Ok(s) => s,
            Err(e) => return self.fail(e),
        };
        // gitsync touches only the stacks it owns; a person decides about any other.
        if let Some(d) = &existing
            && !self.plan.owner.account.is_empty()
            && let Some(why) = self
                .plan
                .owner
                .refuses(&d.tags, self.plan.deployed_from.is_some())
        {
            let reason = format!("Stack {name} exists and is not owned by gitsync: {why}");
            self.event(
                EventType::DeploymentFailed,
                reason.clone(),
                Some(d.id.clone()),
            );
            let tag = |key: &str| d.tags.get(key).cloned().unwrap_or_else(|| "none".into());
            self.blocker = Some(BlockerRequest {
                reason,
                contexts: vec![
                    ("StackName".into(), name.clone()),
                    ("StackId".into(), d.id.clone()),
                    ("OwnerAccount".into(), tag(OWNER_ACCOUNT_TAG)),
                    (
                        "OwnerSyncConfiguration".into(),
                        tag(OWNER_CONFIGURATION_TAG),
                    ),
                    ("Commit".into(), self.plan.commit.clone()),
                ],
            });
            return DeployOutcome::Failed;
        }
        let change_set_type = match &existing {
            // Deployed before, gone now: someone deleted it. A person decides (resolving the
            // blocker creates it again from the latest commit).
            None if self.plan.deployed_from.is_some() => {
                let last = self.plan.deployed_from.clone().unwrap_or_default();
                let reason = format!(
                    "Stack {name} was deleted outside gitsync (last deployed from commit {last}); {RESOLVE_BLOCKER} to create it again from the latest commit"
                );
                self.event(EventType::DeploymentFailed, reason.clone(), None);
                self.blocker = Some(BlockerRequest {
                    reason,
                    contexts: vec![
                        ("StackName".into(), name.clone()),
                        ("StackStatus".into(), "DOES_NOT_EXIST".into()),
                        ("LastDeployedCommit".into(), last),
                        ("Commit".into(), self.plan.commit.clone()),
                    ],
                });
                return DeployOutcome::Failed;
            }
            None => ChangeSetType::Create,
            // A stack left in REVIEW_IN_PROGRESS by a CREATE change set that never ran (its
            // execution was refused, or the worker stopped) holds no resources: it is deleted,
            // with its change sets, and created afresh. (Stacking a second CREATE change set on
            // it is allowed by AWS, but leaves two change sets to tell apart.)
            Some(d) if d.status.as_str() == "REVIEW_IN_PROGRESS" => {
                if let Some(gave_up) = self.discard_unexecuted(d).await {
                    return gave_up;
                }
                ChangeSetType::Create
            }
            Some(Described {
                status, id, reason, ..
            }) if stuck(status) => {
                let text = format!(
                    "Stack {name} is {}{}: no update can leave that state; delete or repair the stack, then {RESOLVE_BLOCKER}",
                    status.as_str(),
                    reason
                        .as_ref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                );
                self.event(EventType::DeploymentFailed, text.clone(), Some(id.clone()));
                self.blocker = Some(BlockerRequest {
                    reason: text,
                    contexts: vec![
                        ("StackName".into(), name.clone()),
                        ("StackStatus".into(), status.as_str().to_string()),
                        ("StackId".into(), id.clone()),
                        ("Commit".into(), self.plan.commit.clone()),
                    ],
                });
                return DeployOutcome::Failed;
            }
            Some(Described { status, id, .. }) if in_progress(status) => {
                self.event(
                    EventType::DeploymentFailed,
                    format!(
                        "Stack {name} is {}; the sync tries again when it settles",
                        status.as_str()
                    ),
                    Some(id.clone()),
                );
                return DeployOutcome::FailedTransiently;
            }
            Some(_) => ChangeSetType::Update,
        };
        if change_set_type == ChangeSetType::Update {
            let running = match &existing {
                Some(described) => match self.running(described).await {
                    Ok(r) => Some(r),
                    Err(e) => return self.fail(e),
                },
                None => None,
            };
            let wanted = self.plan.applied();
            // Already what this commit asks for: no change set at all.
            if running.as_ref() == Some(&wanted) {
                self.event(
                    EventType::NoChanges,
                    format!("The stack already matches commit {}", self.plan.commit),
                    None,
                );
                return DeployOutcome::Succeeded;
            }
            // Not what gitsync last applied either: someone changed it; a person decides.
            if let (Some(running), Some(previous), Some(from)) =
                (&running, &self.plan.previous, &self.plan.deployed_from)
            {
                let changed = running.differences(previous);
                if !changed.is_empty() {
                    let reason = format!(
                        "Stack {name} was changed outside gitsync since commit {from} ({} differ); {RESOLVE_BLOCKER} to deploy commit {} over it",
                        changed.join(", "),
                        self.plan.commit
                    );
                    self.event(EventType::DeploymentFailed, reason.clone(), None);
                    self.blocker = Some(BlockerRequest {
                        reason,
                        contexts: vec![
                            ("StackName".into(), name.clone()),
                            ("ChangedOutsideGitsync".into(), changed.join(", ")),
                            ("LastDeployedCommit".into(), from.clone()),
                            ("Commit".into(), self.plan.commit.clone()),
                        ],
                    });
                    return DeployOutcome::Failed;
                }
            }
        }
        let change_set_name = format!(
            "gitsync-{}-{}",
            &self.plan.commit.get(..12).unwrap_or("manual"),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or_default()
        );
        let request = self.change_set_request(
            &change_set_name,
            change_set_type.clone(),
            format!("gitsync: commit {}", self.plan.commit),
        );
        let created = match request.send().await {
            Ok(c) => c,
            Err(e) => return self.fail(call_error("CreateChangeSet", e)),
        };
        let change_set = created.id().unwrap_or(&change_set_name).to_string();
        self.event(
            EventType::DeploymentStarted,
            format!(
                "Change set {change_set_name} created ({} stack {name})",
                change_set_type.as_str()
            ),
            Some(change_set.clone()),
        );
        self.flush().await;
        let started = std::time::SystemTime::now();
        self.run_change_set(
            &change_set,
            &change_set_name,
            change_set_type,
            false,
            started,
        )
        .await
    }

    /// Computes the plan's change set, lists its changes, and deletes it (and the empty stack a
    /// CREATE change set made): the stack is never changed.
    async fn preview(&mut self) -> PreviewOutcome {
        let name = self.plan.stack_name.clone();
        let existing = match self.stack().await {
            Ok(s) => s,
            Err(e) => return preview_failed(e),
        };
        let change_set_type = match &existing {
            None => ChangeSetType::Create,
            Some(d) => {
                if !self.plan.owner.account.is_empty()
                    && let Some(why) = self.plan.owner.refuses(&d.tags, false)
                {
                    return PreviewOutcome::Failed(format!(
                        "Stack {name} exists and is not owned by gitsync: {why}"
                    ));
                }
                // A stack being created or changed by its own sync is left alone: the preview
                // is made again once it settles.
                if in_progress(&d.status) || d.status.as_str() == "REVIEW_IN_PROGRESS" {
                    return PreviewOutcome::Transient(format!(
                        "Stack {name} is {}; previewed once it settles",
                        d.status.as_str()
                    ));
                }
                if stuck(&d.status) {
                    return PreviewOutcome::Failed(format!(
                        "Stack {name} is {}: no change set can be made for it",
                        d.status.as_str()
                    ));
                }
                ChangeSetType::Update
            }
        };
        let change_set_name = format!(
            "gitsync-preview-{}-{}",
            self.plan.commit.get(..12).unwrap_or("manual"),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or_default()
        );
        let created = match self
            .change_set_request(
                &change_set_name,
                change_set_type.clone(),
                format!(
                    "gitsync preview of commit {} (never executed)",
                    self.plan.commit
                ),
            )
            .send()
            .await
        {
            Ok(c) => c,
            Err(e) => return preview_failed(call_error("CreateChangeSet", e)),
        };
        let change_set = created.id().unwrap_or(&change_set_name).to_string();
        let made_stack = (change_set_type == ChangeSetType::Create)
            .then(|| created.stack_id().map(str::to_string))
            .flatten();
        let outcome = self.changes_of(&change_set, &change_set_name).await;
        // Whatever it found, the change set goes, and so does the stack only it made.
        if let Err(e) = self
            .client
            .delete_change_set()
            .change_set_name(&change_set)
            .stack_name(&name)
            .send()
            .await
        {
            tracing::warn!(change_set = %change_set, error = %call_error("DeleteChangeSet", e).message, "cannot delete a preview's change set");
        }
        if let Some(stack_id) = made_stack {
            self.discard_preview_stack(&stack_id).await;
        }
        outcome
    }

    /// Deletes the stack a preview's CREATE change set made, only while nothing but previews
    /// uses it: still `REVIEW_IN_PROGRESS`, with no change set left but gitsync's previews. (The
    /// stack's own sync may have put its CREATE change set on the same stack meanwhile: then the
    /// stack is the sync's, and it is left alone.)
    async fn discard_preview_stack(&self, stack_id: &str) {
        let described = self
            .client
            .describe_stacks()
            .stack_name(stack_id)
            .send()
            .await;
        let reviewing = described.as_ref().is_ok_and(|d| {
            d.stacks()
                .first()
                .and_then(|s| s.stack_status())
                .is_some_and(|st| st.as_str() == "REVIEW_IN_PROGRESS")
        });
        if !reviewing {
            return;
        }
        let change_sets = match self
            .client
            .list_change_sets()
            .stack_name(stack_id)
            .send()
            .await
        {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!(stack = %stack_id, error = %call_error("ListChangeSets", e).message, "cannot tell whether a preview's stack is used; left in place");
                return;
            }
        };
        let others = change_sets.summaries().iter().any(|c| {
            !c.change_set_name()
                .is_some_and(|n| n.starts_with("gitsync-preview-"))
        });
        if others {
            return;
        }
        if let Err(e) = self.client.delete_stack().stack_name(stack_id).send().await {
            tracing::warn!(stack = %stack_id, error = %call_error("DeleteStack", e).message, "cannot delete the stack a preview's change set made");
        }
    }

    /// Waits for a change set to be computed and lists its changes (every page).
    async fn changes_of(&mut self, change_set: &str, change_set_name: &str) -> PreviewOutcome {
        let deadline = tokio::time::Instant::now() + self.settings.timeout;
        loop {
            let described = match self.describe_change_set(change_set).await {
                Ok(d) => d,
                Err(e) => return preview_failed(e),
            };
            match described.status() {
                Some(ChangeSetStatus::CreateComplete) => break,
                Some(ChangeSetStatus::Failed) => {
                    let reason = described.status_reason().unwrap_or("no reason given");
                    if reason.contains("didn't contain changes") || reason.contains("No updates") {
                        return PreviewOutcome::Changes(Vec::new());
                    }
                    return PreviewOutcome::Failed(format!(
                        "Change set {change_set_name} failed: {reason}"
                    ));
                }
                _ => {}
            }
            if tokio::time::Instant::now() > deadline {
                return PreviewOutcome::Transient(format!(
                    "Change set {change_set_name} was not computed within {:?}",
                    self.settings.timeout
                ));
            }
            tokio::time::sleep(self.settings.poll_interval).await;
        }
        let mut changes = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = match self
                .client
                .describe_change_set()
                .change_set_name(change_set)
                .stack_name(&self.plan.stack_name)
                .set_next_token(token.take())
                .send()
                .await
            {
                Ok(p) => p,
                Err(e) => return preview_failed(call_error("DescribeChangeSet", e)),
            };
            for change in page.changes() {
                if let Some(r) = change.resource_change() {
                    changes.push(ResourceChange {
                        action: r
                            .action()
                            .map(|a| a.as_str().to_string())
                            .unwrap_or_default(),
                        logical_id: r.logical_resource_id().unwrap_or_default().to_string(),
                        resource_type: r.resource_type().unwrap_or_default().to_string(),
                        replacement: r.replacement().map(|x| x.as_str().to_string()),
                    });
                }
            }
            match page.next_token() {
                Some(next) if changes.len() < MAX_PREVIEW_CHANGES => token = Some(next.to_string()),
                _ => return PreviewOutcome::Changes(changes),
            }
        }
    }

    /// A CreateChangeSet request for the plan: its template, parameters, tags, capabilities and
    /// options.
    fn change_set_request(
        &self,
        change_set_name: &str,
        change_set_type: ChangeSetType,
        description: String,
    ) -> cfn::operation::create_change_set::builders::CreateChangeSetFluentBuilder {
        let name = &self.plan.stack_name;
        let tags: Vec<Tag> = self
            .plan
            .all_tags()
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        let mut request = self
            .client
            .create_change_set()
            .stack_name(name)
            .change_set_name(change_set_name)
            .change_set_type(change_set_type.clone())
            .template_body(&self.plan.template_body)
            .set_parameters(Some(
                self.plan
                    .parameters
                    .iter()
                    .map(|(k, v)| {
                        Parameter::builder()
                            .parameter_key(k)
                            .parameter_value(v)
                            .build()
                    })
                    .collect(),
            ))
            .set_tags(Some(tags))
            .capabilities(Capability::CapabilityIam)
            .capabilities(Capability::CapabilityNamedIam)
            .capabilities(Capability::CapabilityAutoExpand)
            .description(description);
        // Sent only when the deployment file asks, so a CloudFormation (or double) that does
        // not know them is not handed them.
        if self.plan.include_nested_stacks {
            request = request.include_nested_stacks(true);
        }
        if self.plan.import_existing_resources {
            request = request.import_existing_resources(true);
        }
        if change_set_type == ChangeSetType::Create
            && let Some(on_failure) = &self.plan.on_stack_failure
        {
            request = request.on_stack_failure(OnStackFailure::from(on_failure.as_str()));
        }
        request
    }

    /// Follows a change set a previous worker created for this commit before it stopped:
    /// executes it if it never was, waits for the stack either way, and reports how it ended.
    /// `None` when there is nothing to follow (the change set is gone, obsolete, or could not be
    /// computed): the commit is then deployed as if for the first time. When CloudFormation
    /// cannot say (throttled, unreachable), the deployment fails transiently and is tried again
    /// later: deploying afresh beside a change set that may still run would be worse.
    async fn resume(&mut self, change_set: &str) -> Option<DeployOutcome> {
        let described = match self.describe_change_set(change_set).await {
            Ok(d) => d,
            Err(e) if e.transient => return Some(self.fail(e)),
            Err(_) => return None,
        };
        let executed = match (described.status(), described.execution_status()) {
            (Some(ChangeSetStatus::Failed), _) => return None,
            (
                _,
                Some(
                    ExecutionStatus::ExecuteInProgress
                    | ExecutionStatus::ExecuteComplete
                    | ExecutionStatus::ExecuteFailed,
                ),
            ) => true,
            (_, Some(ExecutionStatus::Available | ExecutionStatus::Unavailable) | None) => false,
            (_, Some(_)) => return None,
        };
        let name = described
            .change_set_name()
            .unwrap_or(change_set)
            .to_string();
        let change_set_type = match self.stack().await {
            Ok(Some(d)) if d.status.as_str() == "REVIEW_IN_PROGRESS" => ChangeSetType::Create,
            Ok(Some(_)) => ChangeSetType::Update,
            Ok(None) => return None,
            Err(e) if e.transient => return Some(self.fail(e)),
            Err(_) => return None,
        };
        let started = described
            .creation_time()
            .and_then(|t| std::time::SystemTime::try_from(*t).ok())
            .unwrap_or_else(std::time::SystemTime::now);
        self.event(
            EventType::DeploymentProgress,
            format!(
                "Following change set {name}, which the previous worker created for commit {}{}",
                self.plan.commit,
                if executed {
                    " and executed"
                } else {
                    "; executing it"
                }
            ),
            Some(change_set.to_string()),
        );
        self.flush().await;
        Some(
            self.run_change_set(change_set, &name, change_set_type, executed, started)
                .await,
        )
    }

    /// Takes a created change set to its end: waits until it is computed, executes it (unless
    /// `executed`), waits for the stack to settle, copies the stack events it caused and says
    /// how it ended.
    async fn run_change_set(
        &mut self,
        change_set: &str,
        change_set_name: &str,
        change_set_type: ChangeSetType,
        executed: bool,
        started: std::time::SystemTime,
    ) -> DeployOutcome {
        let name = self.plan.stack_name.clone();
        let deadline = tokio::time::Instant::now() + self.settings.timeout;

        if !executed && let Some(ended) = self.computed(change_set, change_set_name, deadline).await
        {
            return ended;
        }

        // The stack's newest event before this deployment: copying stops there, so an update's
        // attempt never repeats the stack's earlier history, however recent. (A change set the
        // previous worker executed is bounded by its creation time and request token alone.)
        let before = if change_set_type == ChangeSetType::Update && !executed {
            self.newest_event_id(&name).await
        } else {
            None
        };
        if !executed
            && let Err(e) = self
                .client
                .execute_change_set()
                .change_set_name(change_set)
                .stack_name(&name)
                .client_request_token(change_set_name)
                .send()
                .await
        {
            return self.fail(call_error("ExecuteChangeSet", e));
        }

        // Wait for the stack to settle.
        let (status, stack_id, reason) = loop {
            match self.stack().await {
                Ok(Some(d)) if !in_progress(&d.status) => break (d.status, d.id, d.reason),
                Ok(Some(_)) => {}
                Ok(None) => {
                    self.event(
                        EventType::DeploymentFailed,
                        format!("Stack {name} disappeared while its change set ran"),
                        None,
                    );
                    return DeployOutcome::Failed;
                }
                Err(e) => return self.fail(e),
            }
            if let Some(gave_up) = self
                .pause(deadline, format!("Stack {name} did not settle"))
                .await
            {
                return gave_up;
            }
        };
        let first_failure = self
            .copy_stack_events(&name, started, before.as_deref(), change_set_name)
            .await;
        if succeeded(&status) {
            self.event(
                EventType::DeploymentSucceeded,
                format!("Stack {}", status.as_str()),
                Some(stack_id),
            );
            DeployOutcome::Succeeded
        } else {
            let why = first_failure
                .or(reason)
                .unwrap_or_else(|| "no reason given".into());
            self.event(
                EventType::DeploymentFailed,
                format!("Stack {}: {why}", status.as_str()),
                Some(stack_id),
            );
            DeployOutcome::Failed
        }
    }

    /// Waits until a change set is computed: `None` when it is ready to execute, or how the
    /// deployment ended (it failed, had nothing to change, or took too long).
    async fn computed(
        &mut self,
        change_set: &str,
        change_set_name: &str,
        deadline: tokio::time::Instant,
    ) -> Option<DeployOutcome> {
        loop {
            let described = match self.describe_change_set(change_set).await {
                Ok(d) => d,
                Err(e) => return Some(self.fail(e)),
            };
            match described.status() {
                Some(ChangeSetStatus::CreateComplete) => return None,
                Some(ChangeSetStatus::Failed) => {
                    let reason = described
                        .status_reason()
                        .unwrap_or("no reason given")
                        .to_string();
                    if reason.contains("didn't contain changes") || reason.contains("No updates") {
                        return Some(self.no_changes(change_set).await);
                    }
                    self.event(
                        EventType::DeploymentFailed,
                        format!("Change set {change_set_name} failed: {reason}"),
                        Some(change_set.to_string()),
                    );
                    return Some(DeployOutcome::Failed);
                }
                _ => {}
            }
            if let Some(gave_up) = self
                .pause(
                    deadline,
                    format!("Change set {change_set_name} was not ready"),
                )
                .await
            {
                return Some(gave_up);
            }
        }
    }

    /// Deletes a stack that only a never-executed CREATE change set made (REVIEW_IN_PROGRESS:
    /// no resources) and waits until it is gone.
    /// The stack's resources (at most 1,000: CloudFormation allows 500 a stack).
    async fn resources(&self) -> Result<Vec<gitsync_model::StackResource>, CallError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_stack_resources()
                .stack_name(&self.plan.stack_name)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| call_error("ListStackResources", e))?;
            for r in page.stack_resource_summaries() {
                out.push(gitsync_model::StackResource {
                    logical_id: r.logical_resource_id().unwrap_or_default().to_string(),
                    physical_id: r.physical_resource_id().unwrap_or_default().to_string(),
                    resource_type: r.resource_type().unwrap_or_default().to_string(),
                });
            }
            token = page.next_token().map(str::to_string);
            if token.is_none() || out.len() >= 1000 {
                return Ok(out);
            }
        }
    }

    /// Stops a deployment at `change_set`: an unexecuted change set is deleted; a running update
    /// is cancelled (CancelUpdateStack) and its rollback awaited; a creation cannot be
    /// cancelled, so it runs to its end, as does an update that finished first.
    async fn cancel(&mut self, change_set: &str) -> CancelOutcome {
        let name = self.plan.stack_name.clone();
        let executed = match self.describe_change_set(change_set).await {
            Ok(d) => !matches!(
                d.execution_status(),
                None | Some(ExecutionStatus::Available | ExecutionStatus::Unavailable)
            ),
            // Gone: it was never executed, or the stack it belonged to is gone.
            Err(e) if !e.transient => false,
            Err(e) => {
                self.fail(e);
                return CancelOutcome::FailedTransiently;
            }
        };
        if !executed {
            let _ = self
                .client
                .delete_change_set()
                .change_set_name(change_set)
                .stack_name(&name)
                .send()
                .await;
            self.event(
                EventType::DeploymentProgress,
                format!("Cancelled before change set {change_set} was executed; deleted it; stack {name} was not changed"),
                Some(change_set.to_string()),
            );
            return CancelOutcome::Stopped { rolled_back: false };
        }
        let deadline = tokio::time::Instant::now() + self.settings.timeout;
        let mut asked = false;
        loop {
            let d = match self.stack().await {
                Ok(Some(d)) => d,
                Ok(None) => {
                    self.event(
                        EventType::DeploymentFailed,
                        format!("Stack {name} disappeared while its deployment was cancelled"),
                        None,
                    );
                    return CancelOutcome::TooLate(DeployOutcome::Failed);
                }
                Err(e) => {
                    self.fail(e);
                    return CancelOutcome::FailedTransiently;
                }
            };
            match d.status.as_str() {
                "UPDATE_IN_PROGRESS" if !asked => {
                    if let Err(e) = self
                        .client
                        .cancel_update_stack()
                        .stack_name(&d.id)
                        .send()
                        .await
                    {
                        // It may have finished meanwhile: look again.
                        tracing::info!(error = ?e, stack = %name, "CancelUpdateStack refused; reading the stack again");
                    } else {
                        self.event(
                            EventType::DeploymentProgress,
                            format!("Cancelling the update of stack {name}"),
                            Some(d.id.clone()),
                        );
                        self.flush().await;
                    }
                    asked = true;
                }
                "UPDATE_ROLLBACK_COMPLETE" => {
                    self.event(
                        EventType::DeploymentProgress,
                        format!("The update of stack {name} was cancelled and rolled back"),
                        Some(d.id.clone()),
                    );
                    return CancelOutcome::Stopped { rolled_back: true };
                }
                _ if in_progress(&d.status) => {}
                s if succeeded(&d.status) => {
                    self.event(
                        EventType::DeploymentSucceeded,
                        format!("Too late to cancel: stack {name} is {s}"),
                        Some(d.id.clone()),
                    );
                    return CancelOutcome::TooLate(DeployOutcome::Succeeded);
                }
                s => {
                    let reason = d.reason.clone().unwrap_or_default();
                    self.event(
                        EventType::DeploymentFailed,
                        format!("Stack {name} is {s} {reason}")
                            .trim_end()
                            .to_string(),
                        Some(d.id.clone()),
                    );
                    return CancelOutcome::TooLate(DeployOutcome::Failed);
                }
            }
            if self
                .pause(deadline, format!("Stack {name} did not settle"))
                .await
                .is_some()
            {
                return CancelOutcome::FailedTransiently;
            }
        }
    }

    /// Deletes the plan's stack if gitsync owns it and waits until it is gone; answers how it
    /// ended and whether a stack was deleted.
    async fn delete(&mut self) -> (DeployOutcome, bool) {
        let name = self.plan.stack_name.clone();
        let existing = match self.stack().await {
            Ok(s) => s,
            Err(e) => return (self.fail(e), false),
        };
        let Some(d) = existing.filter(|d| d.status.as_str() != "DELETE_COMPLETE") else {
            self.event(
                EventType::NoChanges,
                format!("Stack {name} does not exist: nothing to delete"),
                None,
            );
            return (DeployOutcome::Succeeded, false);
        };
        if let Some(why) = self.plan.owner.refuses(&d.tags, true) {
            self.event(
                EventType::DeploymentFailed,
                format!("Stack {name} was not deleted: {why}"),
                Some(d.id.clone()),
            );
            return (DeployOutcome::Failed, false);
        }
        if in_progress(&d.status) && d.status.as_str() != "DELETE_IN_PROGRESS" {
            self.event(
                EventType::DeploymentFailed,
                format!(
                    "Stack {name} is {}; it is deleted when it settles",
                    d.status.as_str()
                ),
                Some(d.id.clone()),
            );
            return (DeployOutcome::FailedTransiently, false);
        }
        if let Err(e) = self.client.delete_stack().stack_name(&d.id).send().await {
            return (self.fail(call_error("DeleteStack", e)), false);
        }
        self.event(
            EventType::DeploymentStarted,
            format!("Deleting stack {name}"),
            Some(d.id.clone()),
        );
        self.flush().await;
        let deadline = tokio::time::Instant::now() + self.settings.timeout;
        loop {
            match self.stack().await {
                Ok(None) => break,
                Ok(Some(now)) if now.id != d.id || now.status.as_str() == "DELETE_COMPLETE" => {
                    break;
                }
                Ok(Some(now)) if now.status.as_str() == "DELETE_FAILED" => {
                    let reason = now.reason.unwrap_or_default();
                    self.event(
                        EventType::DeploymentFailed,
                        format!("Stack {name} could not be deleted: DELETE_FAILED {reason}"),
                        Some(d.id.clone()),
                    );
                    return (DeployOutcome::Failed, false);
                }
                Ok(Some(_)) => {}
                Err(e) => return (self.fail(e), false),
            }
            if let Some(gave_up) = self
                .pause(deadline, format!("Stack {name} was not deleted"))
                .await
            {
                return (gave_up, false);
            }
        }
        self.event(
            EventType::DeploymentSucceeded,
            format!("Stack {name} deleted"),
            Some(d.id.clone()),
        );
        (DeployOutcome::Succeeded, true)
    }

    async fn discard_unexecuted(&mut self, stack: &Described) -> Option<DeployOutcome> {
        let name = self.plan.stack_name.clone();
        if let Err(e) = self
            .client
            .delete_stack()
            .stack_name(&stack.id)
            .send()
            .await
        {
            return Some(self.fail(call_error("DeleteStack", e)));
        }
        let deadline = tokio::time::Instant::now() + self.settings.timeout;
        loop {
            match self.stack().await {
                Ok(None) => break,
                Ok(Some(d)) if d.id != stack.id || d.status.as_str() == "DELETE_COMPLETE" => break,
                Ok(Some(_)) => {}
                Err(e) => return Some(self.fail(e)),
            }
            if let Some(gave_up) = self
                .pause(deadline, format!("Stack {name} was not deleted"))
                .await
            {
                return Some(gave_up);
            }
        }
        self.event(
            EventType::DeploymentProgress,
            format!(
                "Stack {name} was left in REVIEW_IN_PROGRESS by a change set that never ran; deleted it (it held no resources) to create it afresh"
            ),
            Some(stack.id.clone()),
        );
        None
    }

    /// Waits one poll interval, or gives up (transiently) past the deadline.
    async fn pause(
        &mut self,
        deadline: tokio::time::Instant,
        what: String,
    ) -> Option<DeployOutcome> {
        if tokio::time::Instant::now() > deadline {
            return Some(self.fail(CallError {
                message: format!("{what} within {:?}", self.settings.timeout),
                transient: true,
            }));
        }
        tokio::time::sleep(self.settings.poll_interval).await;
        None
    }

    /// What the stack runs now: its original template, parameter values and tags.
    async fn running(&self, described: &Described) -> Result<AppliedStack, CallError> {
        let name = &self.plan.stack_name;
        let template = self
            .client
            .get_template()
            .stack_name(name)
            .template_stage(cfn::types::TemplateStage::Original)
            .send()
            .await
            .map_err(|e| call_error("GetTemplate", e))?;
        Ok(AppliedStack {
            template_body: template.template_body().unwrap_or_default().to_string(),
            parameters: described.parameters.clone(),
            tags: described.tags.clone(),
        })
    }

    async fn describe_change_set(
        &self,
        change_set: &str,
    ) -> Result<cfn::operation::describe_change_set::DescribeChangeSetOutput, CallError> {
        self.client
            .describe_change_set()
            .change_set_name(change_set)
            .stack_name(&self.plan.stack_name)
            .send()
            .await
            .map_err(|e| call_error("DescribeChangeSet", e))
    }

    /// An empty change set: nothing to apply. It is deleted so change sets do not pile up.
    async fn no_changes(&mut self, change_set: &str) -> DeployOutcome {
        let _ = self
            .client
            .delete_change_set()
            .change_set_name(change_set)
            .stack_name(&self.plan.stack_name)
            .send()
            .await;
        self.event(
            EventType::NoChanges,
            format!("The stack already matches commit {}", self.plan.commit),
            Some(change_set.to_string()),
        );
        DeployOutcome::Succeeded
    }

    /// The id of the stack's newest event, if it can be read.
    async fn newest_event_id(&self, name: &str) -> Option<String> {
        let page = self
            .client
            .describe_stack_events()
            .stack_name(name)
            .send()
            .await
            .ok()?;
        page.stack_events()
            .first()
            .and_then(|e| e.event_id())
            .map(str::to_string)
    }

    /// Copies the events this deployment caused, oldest first: those newer than `before` (the
    /// newest event before it executed) and not older than its start (with slack for clock
    /// skew), skipping events another operation's request token marks. Returns the first failed
    /// resource's reason.
    async fn copy_stack_events(
        &mut self,
        name: &str,
        since: std::time::SystemTime,
        before: Option<&str>,
        request_token: &str,
    ) -> Option<String> {
        let since = since
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64() - 5.0)
            .unwrap_or_default();
        let mut events = Vec::new();
        let mut token = None;
        // Newest first; stop at the first page that reaches back before the deployment.
        for _ in 0..20 {
            let page = match self
                .client
                .describe_stack_events()
                .stack_name(name)
                .set_next_token(token.clone())
                .send()
                .await
            {
                Ok(p) => p,
                Err(_) => break,
            };
            let mut older = false;
            for e in page.stack_events() {
                let at = e.timestamp().map(|t| t.as_secs_f64()).unwrap_or_default();
                if at < since || (before.is_some() && e.event_id() == before) {
                    older = true;
                    break;
                }
                let ours = e
                    .client_request_token()
                    .is_none_or(|token| token == request_token);
                if ours {
                    events.push(e.clone());
                }
            }
            token = page.next_token().map(str::to_string);
            if older || token.is_none() {
                break;
            }
        }
        events.reverse();
        let mut first_failure = None;
        for e in events {
            let status = e
                .resource_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default();
            let reason = e.resource_status_reason().filter(|r| !r.is_empty());
            if first_failure.is_none() && status.ends_with("_FAILED") {
                first_failure = Some(format!(
                    "{} {}: {}",
                    e.resource_type().unwrap_or_default(),
                    e.logical_resource_id().unwrap_or_default(),
                    reason.unwrap_or("no reason given")
                ));
            }
            self.event(
                EventType::DeploymentProgress,
                format!(
                    "{} {} {status}{}",
                    e.resource_type().unwrap_or_default(),
                    e.logical_resource_id().unwrap_or_default(),
                    reason.map(|r| format!(": {r}")).unwrap_or_default()
                ),
                e.event_id().map(str::to_string),
            );
        }
        first_failure
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_states_are_classified() {
        for s in [
            "ROLLBACK_COMPLETE",
            "CREATE_FAILED",
            "DELETE_COMPLETE",
            "DELETE_IN_PROGRESS",
            "UPDATE_ROLLBACK_FAILED",
        ] {
            assert!(stuck(&StackStatus::from(s)), "{s}");
        }
        for s in [
            "CREATE_COMPLETE",
            "UPDATE_COMPLETE",
            "UPDATE_ROLLBACK_COMPLETE",
            "IMPORT_COMPLETE",
        ] {
            assert!(!stuck(&StackStatus::from(s)), "{s}");
        }
        assert!(in_progress(&StackStatus::from("UPDATE_IN_PROGRESS")));
        assert!(succeeded(&StackStatus::from("UPDATE_COMPLETE")));
        assert!(!succeeded(&StackStatus::from("UPDATE_ROLLBACK_COMPLETE")));
    }
}
