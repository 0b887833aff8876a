//! Resource syncs of CloudFormation stacks (`CFN_STACK_SYNC`).

use crate::Engine;
use crate::backoff::after_failures;
use crate::repository::remote_for;
use gitsync_deploy::DeployOutcome;
use gitsync_deploy::cfn::{DeployIdentity, DeploymentFile, Owner, plan};
use gitsync_git::Mirror;
use gitsync_model::{BlockerScope, EventType, SyncEvent, SyncTarget, SyncType, Timestamp};
use gitsync_store::{
    Applied, ClaimedTarget, Closing, Effect, NewBlocker, Release, RepositoryKey, StoreError,
    TargetResult,
};
use std::time::Duration;

/// Transient failures retry after 30 s, doubling to 10 min.
const RETRY_BASE: Duration = Duration::from_secs(30);
const RETRY_MAX: Duration = Duration::from_secs(600);
/// Failed deployments at one desired commit after which a stack is blocked until a person looks.
const FAILURES_BEFORE_BLOCKER: i64 = 3;

/// What a resource sync applies.
enum Work {
    Stack(gitsync_model::SyncConfiguration),
    Template(crate::template::TemplateMajor),
    Instance(crate::service::SyncedInstance),
}

/// How a sync of the source ended before or after deployment.
pub(crate) enum Ending {
    Succeeded(Vec<SyncEvent>),
    /// Succeeded, and the target really is as the commit says (a stack deployed or found
    /// matching), not merely validated.
    Deployed(Vec<SyncEvent>),
    /// Fails the same way until the source changes (nothing was deployed: the source is invalid).
    Failed(Vec<SyncEvent>, String),
    /// The deployment ran and failed (a rejected change set, a stack that rolled back).
    DeployFailed(Vec<SyncEvent>, String),
    /// May work later (the source could not be fetched, the endpoint was unreachable).
    Transient(Vec<SyncEvent>, String),
    /// Needs a person: fails and raises a sync blocker with this reason and contexts.
    Blocked(Vec<SyncEvent>, gitsync_deploy::BlockerRequest),
    /// The work is ready to change the database: the effect is applied in the transaction that
    /// closes the attempt, and the closure says how the attempt ends from its outcome.
    Apply(Box<Effect>, Then),
}

/// Decides an attempt's ending once its effect was applied, or failed to be.
pub(crate) type Then = Box<dyn FnOnce(Result<Applied, StoreError>) -> Ending + Send>;

impl Engine {
    /// Runs one resource sync of a claimed target.
    pub(crate) async fn resource_sync(&self, claim: ClaimedTarget) {
        use tracing::Instrument;
        let span = tracing::info_span!("resource_sync", tenant = %claim.tenant, target = %claim.display_name, commit = %claim.desired.sha);
        self.resource_sync_in_span(claim).instrument(span).await
    }

    async fn resource_sync_in_span(&self, claim: ClaimedTarget) {
        let work = match claim.sync_type {
            SyncType::CfnStackSync => match self
                .store
                .get_sync_configuration(&claim.tenant, &claim.target_key)
                .await
            {
                Ok(config) => Work::Stack(config),
                Err(StoreError::NotFound(_)) => {
                    // The configuration was deleted: nothing to sync any more (history is kept).
                    let _ = self.store.release_target(&claim, Release::Settle).await;
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the sync configuration");
                    let _ = self.store.release_target(&claim, Release::KeepDue).await;
                    return;
                }
            },
            SyncType::TemplateSync => {
                match crate::template::TemplateMajor::from_key(&claim.target_key) {
                    Some(major) => Work::Template(major),
                    None => {
                        let _ = self.store.release_target(&claim, Release::Settle).await;
                        return;
                    }
                }
            }
            SyncType::ServiceSync => {
                let Some(instance) = crate::service::SyncedInstance::from_key(&claim.target_key)
                else {
                    let _ = self.store.release_target(&claim, Release::Settle).await;
                    return;
                };
                match self
                    .store
                    .get_service_sync_config(&claim.tenant, &instance.service)
                    .await
                {
                    Ok(_) => Work::Instance(instance),
                    Err(StoreError::NotFound(_)) => {
                        // Service sync was turned off for the service: its instances stay as they are.
                        let _ = self.store.release_target(&claim, Release::Settle).await;
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the service sync configuration");
                        let _ = self.store.release_target(&claim, Release::KeepDue).await;
                        return;
                    }
                }
            }
        };
        self.stack_sync(claim, work).await
    }

    /// One attempt: record it, keep the lease, do the work, record how it ended.
    async fn stack_sync(&self, claim: ClaimedTarget, work: Work) {
        let sha = claim.desired.sha.clone();
        let target = match &work {
            Work::Stack(_) => SyncTarget::CfnStack {
                stack_name: claim.target_key.clone(),
            },
            Work::Template(t) => t.target(),
            Work::Instance(i) => i.target(),
        };
        let mut first = Vec::new();
        if claim.abandoned_attempt_id.is_some() {
            first.push(SyncEvent::new(
                EventType::TakenOver,
                format!(
                    "The previous worker stopped; resumed by {}",
                    self.settings.replica_id
                ),
                None,
            ));
        }
        for old in &claim.superseded {
            first.push(SyncEvent::new(
                EventType::Superseded,
                format!("Commit {old} replaced by newer commit {sha}"),
                Some(&sha),
            ));
        }
        first.push(SyncEvent::new(
            EventType::SyncStarted,
            format!("Syncing {} to commit {sha}", claim.display_name),
            Some(&sha),
        ));
        let attempt = match self
            .store
            .begin_resource_attempt(&claim, &target, &first)
            .await
        {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the attempt");
                return;
            }
        };
        // The work runs only while this worker holds the lease: when it cannot be renewed, the
        // work stops here, before the lease expires and another worker can claim the target, so
        // two deployments of one target never run at once. The unfinished attempt is closed as
        // ABANDONED by whoever claims the target next.
        let work_done = async {
            if let Some(delay) = self.settings.attempt_delay {
                tokio::time::sleep(delay).await;
            }
            match &work {
                Work::Stack(config) => self.sync_stack_source(&claim, config).await,
                Work::Template(major) => self.sync_template_source(&claim, major).await,
                Work::Instance(instance) => self.sync_service_instance(&claim, instance).await,
            }
        };
        let ending = tokio::select! {
            ending = work_done => ending,
            () = self.keep_lease(&claim) => {
                tracing::warn!("lost the lease on this target; the attempt stops here and another worker takes it over");
                return;
            }
        };
        // The ending is decided when the effect's outcome is known, inside the transaction that
        // applies it and closes the attempt.
        let (effect, then) = match ending {
            Ending::Apply(effect, then) => (*effect, then),
            other => (
                Effect::None,
                Box::new(move |_: Result<Applied, StoreError>| other) as Then,
            ),
        };
        let now = self.db_now().await;
        let mut logged = None;
        let closed = self
            .store
            .close_resource_attempt(&claim, attempt, &effect, |applied| {
                let (closing, error) = self.closing(&claim, &work, then(applied), now);
                logged = Some((closing.result.succeeded, error));
                closing
            })
            .await;
        match (closed, logged) {
            (Ok(_), Some((true, _))) => tracing::info!(
                sync_type = claim.sync_type.as_str(),
                account = %claim.tenant.account_id,
                target = %target.describe(),
                commit = %sha,
                "resource sync succeeded"
            ),
            // A failure is what an operator looks for in the log: say what failed and why
            // (cut short: the reason may quote a repository's content).
            (Ok(_), Some((false, error))) => tracing::warn!(
                sync_type = claim.sync_type.as_str(),
                account = %claim.tenant.account_id,
                target = %target.describe(),
                commit = %sha,
                reason = %error.as_deref().unwrap_or("no reason recorded").chars().take(500).collect::<String>(),
                "resource sync failed"
            ),
            (Ok(_), None) => {}
            (Err(e), _) => {
                tracing::warn!(error = %e, "cannot finish the attempt (another worker took it over?)")
            }
        }
    }

    /// How an attempt ends: its events, the target's bookkeeping and any blocker, from how the
    /// work ended. Also answers the failure's reason, for the log.
    fn closing(
        &self,
        claim: &ClaimedTarget,
        work: &Work,
        ending: Ending,
        now: Timestamp,
    ) -> (Closing, Option<String>) {
        let sha = &claim.desired.sha;
        let deployed = matches!(ending, Ending::Deployed(_));
        let deployment_failed = matches!(ending, Ending::DeployFailed(..));
        // Failure counts are about one desired commit: a new commit starts them again, so a
        // fix after bad commits is always attempted (users fix forward).
        let same_commit = claim.failed_sha.as_deref() == Some(sha.as_str());
        let (earlier_failures, earlier_deploy_failures) = if same_commit {
            (claim.failures, claim.deploy_failures)
        } else {
            (0, 0)
        };
        let mut requested = None;
        let (events, succeeded, retry_at, error) = match ending {
            Ending::Succeeded(events) | Ending::Deployed(events) => (events, true, None, None),
            Ending::Failed(events, error) | Ending::DeployFailed(events, error) => {
                (events, false, None, Some(error))
            }
            Ending::Blocked(events, blocker) => {
                let error = blocker.reason.clone();
                requested = Some(blocker);
                (events, false, None, Some(error))
            }
            Ending::Transient(events, error) => {
                let wait = after_failures(RETRY_BASE, earlier_failures + 1, RETRY_MAX);
                (
                    events,
                    false,
                    Some(now.plus_millis(wait.as_millis() as i64)),
                    Some(error),
                )
            }
            // Work answers Apply, and the driver turns it into one of the above.
            Ending::Apply(..) => unreachable!("an effect's ending is decided by its closure"),
        };
        let failures = if succeeded { 0 } else { earlier_failures + 1 };
        let deploy_failures = match (succeeded, deployment_failed) {
            (true, _) => 0,
            (false, true) => earlier_deploy_failures + 1,
            (false, false) => earlier_deploy_failures,
        };
        // The repeated-failures blocker counts deployments that ran and failed at one desired
        // commit (retries after a resolve included), never validation failures a new commit can
        // fix, never transient ones (they back off). Template versions and service instances get
        // no blockers for failures (as in AWS); instance blockers come from changes outside sync.
        if requested.is_none()
            && deployment_failed
            && deploy_failures >= FAILURES_BEFORE_BLOCKER
            && matches!(work, Work::Stack(_))
        {
            requested = Some(gitsync_deploy::BlockerRequest {
                reason: format!(
                    "{deploy_failures} deployments of stack {} at commit {sha} failed",
                    claim.display_name
                ),
                contexts: vec![
                    ("FailedAttempts".to_string(), deploy_failures.to_string()),
                    ("Commit".to_string(), sha.clone()),
                    ("LastError".to_string(), error.clone().unwrap_or_default()),
                ],
            });
        }
        let blocker = requested.map(|b| NewBlocker {
            scope: BlockerScope {
                sync_type: SyncType::CfnStackSync,
                resource_name: claim.display_name.clone(),
                parent_resource_name: None,
            },
            reason: b.reason,
            contexts: b.contexts,
        });
        let closing = Closing {
            events,
            result: TargetResult {
                succeeded,
                failures,
                deploy_failures,
                retry_at,
                deployed,
            },
            blocker,
        };
        (closing, error)
    }

    /// Renews the target's lease every third of its time to live; returns when it is lost: taken
    /// by another worker, or not renewed (the database unreachable) for two thirds of it, which
    /// leaves the work a third of the lease to stop in.
    async fn keep_lease(&self, claim: &ClaimedTarget) {
        let ttl = self.lease_ms();
        let every = Duration::from_millis((ttl / 3).max(100) as u64);
        let mut renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(every).await;
            match self
                .store
                .renew_target_lease(claim, self.db_now().await, ttl)
                .await
            {
                Ok(()) => renewed = tokio::time::Instant::now(),
                Err(StoreError::LeaseLost(_)) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot renew the lease; retrying");
                    if renewed.elapsed() >= every * 2 {
                        return;
                    }
                }
            }
        }
    }

    /// Reads the deployment file and template at the target commit, checks them, and deploys.
    async fn sync_stack_source(
        &self,
        claim: &ClaimedTarget,
        config: &gitsync_model::SyncConfiguration,
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
        let report = self.deployer.deploy(&stack_plan).await;
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
    let invalid = |problems: Vec<String>| {
        let error = problems.join("; ");
        Ending::Failed(
            problems
                .into_iter()
                .map(|p| SyncEvent::new(EventType::ValidationFailed, p, None))
                .collect(),
            error,
        )
    };
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
