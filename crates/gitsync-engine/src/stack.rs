//! Resource syncs of CloudFormation stacks (`CFN_STACK_SYNC`): the deployment file and its
//! template read at the commit, checked, and deployed through the [`StackDeployer`].
//!
//! [`StackDeployer`]: gitsync_deploy::StackDeployer

use crate::Engine;
use crate::attempt::{AttemptProgress, Ending, SyncKind};
use crate::repository::remote_for;
use gitsync_deploy::cfn::{DeployIdentity, DeploymentFile, Owner, plan};
use gitsync_deploy::{BoxFuture, DeployOutcome};
use gitsync_git::Mirror;
use gitsync_model::{EventType, SyncEvent, SyncTarget};
use gitsync_store::{ClaimedTarget, Release, RepositoryKey, StoreError};

/// A stack and its sync configuration.
struct StackSync {
    config: gitsync_model::SyncConfiguration,
}

impl SyncKind for StackSync {
    fn target(&self) -> SyncTarget {
        SyncTarget::CfnStack {
            stack_name: self.config.resource_name.clone(),
        }
    }

    fn blocks_repeated_failures(&self) -> bool {
        true
    }

    fn run<'a>(
        &'a self,
        engine: &'a Engine,
        claim: &'a ClaimedTarget,
        progress: &'a AttemptProgress,
    ) -> BoxFuture<'a, Ending> {
        Box::pin(engine.sync_stack_source(claim, &self.config, progress))
    }
}

/// The stack's sync configuration; a deleted one leaves nothing to sync (history is kept).
pub(crate) fn load<'a>(
    engine: &'a Engine,
    claim: &'a ClaimedTarget,
) -> BoxFuture<'a, Result<Box<dyn SyncKind>, Release>> {
    Box::pin(async move {
        match engine
            .store
            .get_sync_configuration(&claim.tenant, &claim.target_key)
            .await
        {
            Ok(config) => Ok(Box::new(StackSync { config }) as Box<dyn SyncKind>),
            Err(StoreError::NotFound(_)) => Err(Release::Settle),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the sync configuration");
                Err(Release::KeepDue)
            }
        }
    })
}

impl Engine {
    /// Reads the deployment file and template at the target commit, checks them, and deploys.
    async fn sync_stack_source(
        &self,
        claim: &ClaimedTarget,
        config: &gitsync_model::SyncConfiguration,
        progress: &AttemptProgress,
    ) -> Ending {
        let sha = &claim.desired.sha;
        let link_id = match RepositoryKey::parse(&claim.repository_key) {
            RepositoryKey::Link(id) => id,
            RepositoryKey::Proton { .. } => {
                return Ending::Failed(vec![], "not a repository link".into());
            }
        };
        let source = match self.store.link_source(&claim.tenant, &link_id).await {
            Ok(s) => s,
            Err(e) => {
                return Ending::Transient(
                    vec![SyncEvent::new(EventType::SourceFailed, e.to_string(), None)],
                    e.to_string(),
                );
            }
        };
        let remote = match remote_for(&source) {
            Ok(r) => r,
            Err(m) => {
                return Ending::Transient(
                    vec![SyncEvent::new(EventType::SourceFailed, &m, None)],
                    m,
                );
            }
        };
        let mirror = match Mirror::for_url(&self.git, &remote.url) {
            Ok(m) => m,
            Err(e) => {
                return Ending::Transient(
                    vec![SyncEvent::new(EventType::SourceFailed, e.to_string(), None)],
                    e.to_string(),
                );
            }
        };
        if !mirror.has_commit(sha) {
            // Another replica may have made the repository sync; this one fetches for itself.
            if let Err(e) = remote
                .fetch(&self.git, std::slice::from_ref(&claim.branch))
                .await
            {
                let m = format!("Could not fetch commit {sha} from {}: {e}", remote.url);
                return Ending::Transient(
                    vec![SyncEvent::new(EventType::SourceFailed, &m, None)],
                    m,
                );
            }
            if !mirror.has_commit(sha) {
                let m = format!(
                    "Commit {sha} is no longer on branch {} of {}",
                    claim.branch, remote.url
                );
                return Ending::Failed(
                    vec![SyncEvent::new(EventType::SourceFailed, &m, Some(sha))],
                    m,
                );
            }
        }
        // Whose credentials deploy, checked again now: the operator may have changed the
        // tenant's policy since the configuration was made.
        let policy = match self.store.account_policy(&claim.tenant.account_id).await {
            Ok(p) => p,
            Err(e) => {
                let m = format!("cannot read the account's deployment policy: {e}");
                return Ending::Transient(
                    vec![SyncEvent::new(EventType::SourceFailed, &m, None)],
                    m,
                );
            }
        };
        if let Err(m) = policy.check_role(&config.role_arn) {
            return Ending::Failed(vec![SyncEvent::new(EventType::AccessDenied, &m, None)], m);
        }
        let deployed_from = claim.deployed.clone().filter(|_| !claim.guard_lifted);
        // Git objects are read off the async runtime, within the repository budgets.
        let read = {
            let (mirror, sha, stack, config) = (
                mirror.clone(),
                sha.clone(),
                claim.display_name.clone(),
                config.clone(),
            );
            let from = deployed_from.clone();
            tokio::task::spawn_blocking(move || {
                let plan = read_plan(&mirror, &sha, &stack, &config)?;
                // What the last deployment applied, read back from its commit (when the mirror
                // still has it), so a stack changed outside gitsync is told from one that is
                // merely behind.
                let previous = from
                    .and_then(|from| read_plan(&mirror, &from, &stack, &config).ok())
                    .map(|p| p.applied());
                Ok::<_, Ending>((plan, previous))
            })
            .await
        };
        let (mut stack_plan, previous) = match read {
            Ok(Ok(read)) => read,
            Ok(Err(ending)) => return ending,
            Err(e) => {
                let m = format!("reading commit {sha} failed: {e}");
                return Ending::Transient(
                    vec![SyncEvent::new(EventType::SourceFailed, &m, None)],
                    m,
                );
            }
        };
        stack_plan.region = claim.tenant.region.clone();
        stack_plan.commit = sha.clone();
        stack_plan.deployed_from = deployed_from;
        stack_plan.identity = if policy.trusted && !self.settings.assume_sync_role {
            DeployIdentity::Server
        } else {
            DeployIdentity::AssumeRole {
                role_arn: config.role_arn.clone(),
                external_id: claim.tenant.account_id.clone(),
            }
        };
        stack_plan.owner = Owner {
            account: claim.tenant.account_id.clone(),
            configuration: config.resource_name.clone(),
            adopt: claim.guard_lifted,
        };
        // (Its plan carries no ownership tags; comparisons ignore gitsync's tags.)
        stack_plan.previous = previous;
        let report = self.deployer.deploy(&stack_plan, progress).await;
        let events = report.events;
        let last = events.last().map(|e| e.event.clone()).unwrap_or_default();
        match (report.outcome, report.blocker) {
            (_, Some(blocker)) => Ending::Blocked(events, blocker),
            (DeployOutcome::Succeeded, None) if report.deployed => Ending::Deployed(events),
            (DeployOutcome::Succeeded, None) => Ending::Succeeded(events),
            (DeployOutcome::Failed, None) => Ending::DeployFailed(events, last),
            (DeployOutcome::FailedTransiently, None) => Ending::Transient(events, last),
        }
    }
}

/// Reads and checks the stack's source at a commit, without awaiting: gix repositories stay on
/// the thread that opened them.
fn read_plan(
    mirror: &Mirror,
    sha: &str,
    stack: &str,
    config: &gitsync_model::SyncConfiguration,
) -> Result<gitsync_deploy::cfn::StackPlan, Ending> {
    let transient = |e: gitsync_git::GitError| {
        let m = e.to_string();
        if e.is_transient() {
            Ending::Transient(vec![SyncEvent::new(EventType::SourceFailed, &m, None)], m)
        } else {
            Ending::Failed(
                vec![SyncEvent::new(EventType::LimitExceeded, &m, Some(sha))],
                m,
            )
        }
    };
    let invalid = Ending::invalid;
    let snapshot = mirror.at(sha).map_err(transient)?;
    let deployment = snapshot
        .read_file(&config.config_file)
        .map_err(transient)?
        .ok_or_else(|| {
            invalid(vec![format!(
                "{}: no such file at commit {sha}",
                config.config_file
            )])
        })?;
    let file = DeploymentFile::parse(&config.config_file, &deployment).map_err(invalid)?;
    let template = snapshot.read_file(&file.template_file_path).map_err(transient)?.ok_or_else(|| {
        invalid(vec![format!(
            "template-file-path: {} does not exist at commit {sha} (paths are from the repository root)",
            file.template_file_path
        )])
    })?;
    plan(stack, &config.role_arn, &file, &template).map_err(invalid)
}
