//! The attempt driver: one resource sync of a claimed target, whatever its kind. It records the
//! attempt, keeps the lease while the kind's work runs (and stops the work when the lease is
//! lost), applies the rules every kind shares (failure counts, backoff, the repeated-failures
//! blocker) and closes the attempt with its effect in one transaction. Kinds ([`SyncKind`])
//! depend on this module, never the reverse; the engine is given them by sync type.

use crate::Engine;
use crate::backoff::after_failures;
use gitsync_deploy::BoxFuture;
use gitsync_model::{BlockerScope, EventType, SyncEvent, SyncTarget, Timestamp};
use gitsync_store::{
    Applied, ClaimedTarget, Closing, Effect, NewBlocker, Release, StoreError, TargetResult,
};
use std::time::Duration;

/// Transient failures retry after 30 s, doubling to 10 min.
const RETRY_BASE: Duration = Duration::from_secs(30);
const RETRY_MAX: Duration = Duration::from_secs(600);
/// Failed deployments at one desired commit after which a stack is blocked until a person looks.
const FAILURES_BEFORE_BLOCKER: i64 = 3;

/// What one kind of sync (a stack, a template major, a service instance) does with a claimed
/// target.
pub(crate) trait SyncKind: Send + Sync {
    /// The target the attempt is recorded against.
    fn target(&self) -> SyncTarget;
    /// Whether deployments failing again and again at one commit raise a blocker (stacks);
    /// Proton's targets get none for failures, as in AWS.
    fn blocks_repeated_failures(&self) -> bool {
        false
    }
    /// Reads the source at the claimed commit, checks it, and applies it or says what to apply.
    /// Events reported to `progress` are recorded on the attempt at once.
    fn run<'a>(
        &'a self,
        engine: &'a Engine,
        claim: &'a ClaimedTarget,
        progress: &'a AttemptProgress,
    ) -> BoxFuture<'a, Ending>;
}

/// Records events on a running attempt as they happen, while this worker holds the lease.
pub(crate) struct AttemptProgress {
    store: gitsync_store::Store,
    claim: ClaimedTarget,
    attempt: i64,
}

impl AttemptProgress {
    /// The attempt this progress is recorded on.
    pub(crate) fn attempt_id(&self) -> i64 {
        self.attempt
    }
}

impl gitsync_deploy::Progress for AttemptProgress {
    fn report(&self, event: SyncEvent) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Err(e) = self
                .store
                .record_attempt_event(&self.claim, self.attempt, &event)
                .await
            {
                tracing::warn!(error = %e, "cannot record a progress event");
            }
        })
    }
}

/// Makes a kind's work for a claimed target, or says why there is none (its configuration is
/// gone: settle; it could not be read: keep it due).
pub(crate) type Load =
    for<'a> fn(&'a Engine, &'a ClaimedTarget) -> BoxFuture<'a, Result<Box<dyn SyncKind>, Release>>;

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

impl Ending {
    /// The source breaks rules a new commit must fix: one `VALIDATION_FAILED` event per problem.
    pub(crate) fn invalid(problems: Vec<String>) -> Ending {
        let error = problems.join("; ");
        let events = problems
            .into_iter()
            .map(|p| SyncEvent::new(EventType::ValidationFailed, p, None))
            .collect();
        Ending::Failed(events, error)
    }
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
        let Some(load) = self.kinds.get(&claim.sync_type).map(|k| k.load) else {
            tracing::error!(
                sync_type = claim.sync_type.as_str(),
                "no sync kind serves this sync type"
            );
            return;
        };
        let work = match load(self, &claim).await {
            Ok(work) => work,
            Err(release) => {
                if let Err(e) = self.store.release_target(&claim, release).await {
                    tracing::warn!(error = %e, "cannot release the target");
                }
                return;
            }
        };
        self.attempt(claim, work).await
    }

    /// One attempt: record it, keep the lease, do the work, record how it ended.
    async fn attempt(&self, claim: ClaimedTarget, work: Box<dyn SyncKind>) {
        let started = std::time::Instant::now();
        let sha = claim.desired.sha.clone();
        let target = work.target();
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
        let progress = AttemptProgress {
            store: self.store.clone(),
            claim: claim.clone(),
            attempt,
        };
        let work_done = async {
            if let Some(delay) = self.settings.attempt_delay {
                tokio::time::sleep(delay).await;
            }
            work.run(self, &claim, &progress).await
        };
        let ending = tokio::select! {
            ending = work_done => ending,
            () = self.keep_lease(|now, ttl| self.store.renew_target_lease(&claim, now, ttl)) => {
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
                let (closing, error) = self.closing(&claim, work.as_ref(), then(applied), now);
                logged = Some((closing.result.succeeded, error));
                closing
            })
            .await;
        match (closed, logged) {
            (Ok(_), Some((succeeded, error))) => gitsync_telemetry::Event::ResourceSyncEnded {
                sync_type: claim.sync_type.as_str(),
                account: &claim.tenant.account_id,
                target: &target.describe(),
                commit: &sha,
                failure: (!succeeded).then(|| error.as_deref().unwrap_or("no reason recorded")),
                elapsed: started.elapsed(),
            }
            .emit(),
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
        work: &dyn SyncKind,
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
        // fix, never transient ones (they back off). Only kinds that say so get it: template
        // versions and service instances get no blockers for failures (as in AWS).
        if requested.is_none()
            && deployment_failed
            && deploy_failures >= FAILURES_BEFORE_BLOCKER
            && work.blocks_repeated_failures()
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
                sync_type: claim.sync_type,
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
}
