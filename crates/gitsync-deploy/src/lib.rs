//! What a sync applies, independent of how it was triggered.
//!
//! [`cfn`] turns a stack deployment file and the template it names into a [`cfn::StackPlan`],
//! or into the list of problems that make it unusable, each naming what is wrong. A
//! [`StackDeployer`] applies a plan. Until a CloudFormation endpoint is configured the deployer is
//! [`ValidateOnly`], which says plainly that nothing was deployed.

pub mod cfn;
pub mod preview;
pub mod proton;
pub mod render;
pub mod sandbox;
pub mod spec;

pub use gitsync_model::githost::OpenPullRequest;
use gitsync_model::{EventType, SyncEvent, Tenant};
use std::future::Future;
use std::pin::Pin;

/// How a deployment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployOutcome {
    Succeeded,
    /// Will fail the same way until the source changes (a rejected template, a failed stack).
    Failed,
    /// May succeed if tried again (throttling, an unreachable endpoint).
    FailedTransiently,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployReport {
    pub events: Vec<SyncEvent>,
    pub outcome: DeployOutcome,
    /// A reason for a person to look before syncing goes on (the stack was deleted or is stuck):
    /// the engine raises a sync blocker with it.
    pub blocker: Option<BlockerRequest>,
    /// The stack really is as the plan says (deployed, or found matching it): false for
    /// validation only. A stack missing later was deleted outside gitsync only if this was true.
    pub deployed: bool,
    /// The stack's outputs once it settled (empty unless deployed): a Proton resource's outputs.
    pub outputs: std::collections::BTreeMap<String, String>,
    /// The stack's resources once it settled (empty unless deployed): a Proton resource's
    /// provisioned resources.
    pub resources: Vec<gitsync_model::StackResource>,
}

/// How cancelling a deployment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The deployment stopped: nothing had changed the stack (`rolled_back` false), or its
    /// update was cancelled and rolled back.
    Stopped { rolled_back: bool },
    /// The stack had already finished (or could not stop: a creation runs to its end): the
    /// deployment ended as the stack did.
    TooLate(DeployOutcome),
    /// Could not be cancelled now (CloudFormation unreachable): tried again.
    FailedTransiently,
}

/// What cancelling reported: its events, its outcome, and the stack's outputs when it was too
/// late and the stack completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelReport {
    pub events: Vec<SyncEvent>,
    pub outcome: CancelOutcome,
    pub outputs: std::collections::BTreeMap<String, String>,
}

/// What a sync blocker raised by a deployment says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockerRequest {
    pub reason: String,
    /// Key/value pairs that let a person act (`StackStatus`, `StackId`, `LastDeployedCommit`, …).
    pub contexts: Vec<(String, String)>,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a deployer reports events while it works: each is recorded on the attempt at once, so a
/// status read during a long deployment shows how far it got, and a worker that takes over an
/// attempt sees what was started (a change set) before it was started.
pub trait Progress: Send + Sync {
    fn report(&self, event: SyncEvent) -> BoxFuture<'_, ()>;
}

/// Applies CloudFormation stack plans.
pub trait StackDeployer: Send + Sync {
    /// Shown by `gitsync status` and the logs: how this deployer applies plans.
    fn mode(&self) -> &'static str;
    /// Applies a plan. Events reported through `progress` are not repeated in the report.
    fn deploy<'a>(
        &'a self,
        plan: &'a cfn::StackPlan,
        progress: &'a dyn Progress,
    ) -> BoxFuture<'a, DeployReport>;
    /// Stops the deployment of a plan whose worker was told to cancel: deletes the change set
    /// `change_set` if it was not executed, cancels the stack's update if it runs (and waits for
    /// its rollback), and says whether it was too late.
    fn cancel<'a>(
        &'a self,
        plan: &'a cfn::StackPlan,
        change_set: Option<&'a str>,
        progress: &'a dyn Progress,
    ) -> BoxFuture<'a, CancelReport>;
    /// Computes what deploying a plan would change, without changing the stack: a change set is
    /// created, described and deleted, never executed, and a stack that only the preview's
    /// CREATE change set made is deleted too.
    fn preview<'a>(&'a self, plan: &'a cfn::StackPlan) -> BoxFuture<'a, PreviewOutcome>;
    /// Deletes the stack a plan names (only one gitsync owns), and waits until it is gone.
    /// `Succeeded` once it does not exist (also when it never did); `deployed` is true when a
    /// stack was really deleted.
    fn delete<'a>(
        &'a self,
        plan: &'a cfn::StackPlan,
        progress: &'a dyn Progress,
    ) -> BoxFuture<'a, DeployReport>;
}

/// One change a change set would make, as CloudFormation lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceChange {
    /// `Add`, `Modify`, `Remove`, `Import` or `Dynamic`.
    pub action: String,
    pub logical_id: String,
    pub resource_type: String,
    /// For `Modify`: `True`, `False` or `Conditional`.
    pub replacement: Option<String>,
}

/// What previewing a plan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreviewOutcome {
    /// The change set was computed: what deploying the plan would change (empty: nothing). It
    /// was deleted, never executed.
    Changes(Vec<ResourceChange>),
    /// Only validated (no CloudFormation is configured): what was checked.
    Validated(String),
    /// CloudFormation refused the change set, or the stack cannot be previewed: why.
    Failed(String),
    /// May work if tried again (throttling, an unreachable endpoint, a stack in the middle of
    /// a deployment): why.
    Transient(String),
}

/// Reads a repository's open pull requests from its Git host's API.
pub trait PullRequests: Send + Sync {
    /// The open pull requests of a repository link's repository whose base is `base_branch`.
    fn open_pull_requests<'a>(
        &'a self,
        tenant: &'a Tenant,
        link_id: &'a str,
        base_branch: &'a str,
    ) -> BoxFuture<'a, Result<Vec<OpenPullRequest>, String>>;
}

/// Why a message from the outbox could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryError {
    /// For the outbox row, the log and `gitsync notifications list`.
    pub message: String,
    /// Trying again cannot help (the destination is gone): the row is given up at once.
    pub permanent: bool,
    /// The receiver asked to wait this long before trying again (`Retry-After`).
    pub retry_after: Option<std::time::Duration>,
}

impl DeliveryError {
    pub fn retry(message: impl Into<String>) -> Self {
        DeliveryError {
            message: message.into(),
            permanent: false,
            retry_after: None,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        DeliveryError {
            message: message.into(),
            permanent: true,
            retry_after: None,
        }
    }
}

/// Tells the outside world what the outbox holds: one implementation per kind of destination
/// (the outbox row's `deliverer`). The engine's delivery worker calls it at least once per row,
/// so a receiver may see a message twice (each carries a stable `id`).
pub trait Deliverer: Send + Sync {
    /// The outbox rows this delivers (their `deliverer` column).
    fn name(&self) -> &'static str;
    /// Sends `message` (as stored) for `tenant` to `destination`; `Ok` once the receiver took it.
    fn deliver<'a>(
        &'a self,
        tenant: &'a Tenant,
        destination: &'a str,
        message: &'a str,
    ) -> BoxFuture<'a, Result<(), DeliveryError>>;
}

/// The deployer used while no CloudFormation endpoint is configured: it has nothing to do after
/// validation, and says so.
#[derive(Debug, Default, Clone, Copy)]
pub struct ValidateOnly;

impl StackDeployer for ValidateOnly {
    fn mode(&self) -> &'static str {
        "validate-only (no CloudFormation endpoint is configured)"
    }

    fn deploy<'a>(
        &'a self,
        plan: &'a cfn::StackPlan,
        _progress: &'a dyn Progress,
    ) -> BoxFuture<'a, DeployReport> {
        Box::pin(async move {
            DeployReport {
                events: vec![SyncEvent::new(
                    EventType::ValidationSucceeded,
                    format!(
                        "Validated {} with {} parameter(s) and {} tag(s); no CloudFormation endpoint is configured, nothing was deployed",
                        plan.template_path,
                        plan.parameters.len(),
                        plan.tags.len()
                    ),
                    None,
                )],
                outcome: DeployOutcome::Succeeded,
                blocker: None,
                deployed: false,
                outputs: Default::default(),
                resources: Vec::new(),
            }
        })
    }

    fn preview<'a>(&'a self, plan: &'a cfn::StackPlan) -> BoxFuture<'a, PreviewOutcome> {
        Box::pin(async move {
            PreviewOutcome::Validated(format!(
                "Validated {} with {} parameter(s) and {} tag(s); no CloudFormation endpoint is configured, so no change set was computed",
                plan.template_path,
                plan.parameters.len(),
                plan.tags.len()
            ))
        })
    }

    fn cancel<'a>(
        &'a self,
        _plan: &'a cfn::StackPlan,
        _change_set: Option<&'a str>,
        _progress: &'a dyn Progress,
    ) -> BoxFuture<'a, CancelReport> {
        // Validation has nothing that runs long or changes a stack: stopping it changes nothing.
        Box::pin(async move {
            CancelReport {
                events: Vec::new(),
                outcome: CancelOutcome::Stopped { rolled_back: false },
                outputs: Default::default(),
            }
        })
    }

    fn delete<'a>(
        &'a self,
        plan: &'a cfn::StackPlan,
        _progress: &'a dyn Progress,
    ) -> BoxFuture<'a, DeployReport> {
        Box::pin(async move {
            DeployReport {
                // The stack exists (it was deployed when CloudFormation was configured): saying
                // it is gone would be a lie.
                events: vec![SyncEvent::new(
                    EventType::DeploymentFailed,
                    format!(
                        "Stack {} was not deleted: no CloudFormation endpoint is configured",
                        plan.stack_name
                    ),
                    None,
                )],
                outcome: DeployOutcome::Failed,
                blocker: None,
                deployed: false,
                outputs: Default::default(),
                resources: Vec::new(),
            }
        })
    }
}
