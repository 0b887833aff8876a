//! Pull request previews (`PullRequestComment`): for every open pull request onto a stack's
//! branch whose head changes what the stack watches, the head's deployment file and template
//! are planned and previewed through the [`StackDeployer`] (a change set created, described and
//! deleted, never executed) and one comment per stack is kept up to date on the pull request.
//!
//! Previews are engine work apart from syncs: a pull request is claimed under its own lease (one
//! preview at a time per pull request, and so per pull request and stack), a head that moved
//! meanwhile is previewed again and the old one's results dropped, and nothing here reads or
//! writes a stack's sync targets, attempts, statuses or blockers.
//!
//! [`StackDeployer`]: gitsync_deploy::StackDeployer

use crate::Engine;
use crate::attempt::Ending;
use crate::backoff::after_failures;
use crate::repository::remote_for;
use gitsync_deploy::PreviewOutcome;
use gitsync_deploy::cfn::{DeployIdentity, Owner};
use gitsync_git::Mirror;
use gitsync_model::githost::{PullRequestComment, preview_marker};
use gitsync_model::{SyncConfiguration, SyncType};
use gitsync_store::{ClaimedBranch, ClaimedPullRequest, PreviewsDone, RepositoryKey, StackPreview};
use std::time::Duration;

/// A failed preview is tried again after 10 s, doubling to 10 min.
const RETRY_BASE: Duration = Duration::from_secs(10);
const RETRY_MAX: Duration = Duration::from_secs(600);

impl Engine {
    /// Reads the open pull requests onto a checked branch when a stack on it previews them:
    /// part of the branch check, under its lease, at its poll interval (and at once after a
    /// verified pull request webhook). A failure is logged and changes nothing else.
    pub(crate) async fn discover_pull_requests(&self, claim: &ClaimedBranch) {
        let key = &claim.key;
        let (Some(hosts), RepositoryKey::Link(link_id), SyncType::CfnStackSync) =
            (&self.pull_requests, &key.repository, key.sync_type)
        else {
            return;
        };
        if !claim.previews_pull_requests {
            return;
        }
        let pulls = match hosts
            .open_pull_requests(&key.tenant, link_id, &key.branch)
            .await
        {
            Ok(pulls) => pulls,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the open pull requests; previews wait for the next check");
                return;
            }
        };
        match self
            .store
            .record_open_pull_requests(&key.tenant, link_id, &key.branch, &pulls)
            .await
        {
            Ok(0) => {}
            Ok(due) => {
                tracing::info!(open = pulls.len(), due, "pull requests to preview");
                self.wake();
            }
            Err(e) => tracing::warn!(error = %e, "cannot record the open pull requests"),
        }
    }

    /// Previews a claimed pull request's head for every stack on its base branch that asks,
    /// and settles it.
    pub(crate) async fn preview_pull_request(&self, claim: ClaimedPullRequest) {
        use tracing::Instrument;
        let span = tracing::info_span!("preview", tenant = %claim.tenant, link = %claim.link_id, pull_request = claim.number, head = %claim.head_sha);
        async {
            let done = tokio::select! {
                done = self.previews(&claim) => done,
                () = self.keep_lease(|now, ttl| self.store.renew_pull_request_lease(&claim, now, ttl)) => {
                    tracing::warn!("lost the lease on this pull request; its preview stops here");
                    return;
                }
            };
            match &done {
                PreviewsDone::Done(previews) => {
                    tracing::info!(stacks = previews.len(), "pull request previewed")
                }
                PreviewsDone::Retry { error, .. } => {
                    tracing::warn!(error = %error, failures = claim.failures + 1, "pull request preview failed; retrying")
                }
            }
            if let Err(e) = self.store.finish_pull_request(&claim, &done).await {
                tracing::warn!(error = %e, "cannot settle the pull request's preview");
            }
        }
        .instrument(span)
        .await
    }

    async fn previews(&self, claim: &ClaimedPullRequest) -> PreviewsDone {
        let retry = |error: String| {
            let wait = after_failures(RETRY_BASE, claim.failures + 1, RETRY_MAX);
            PreviewsDone::Retry {
                error,
                at: gitsync_model::Timestamp::now().plus_millis(wait.as_millis() as i64),
            }
        };
        let tenant = &claim.tenant;
        let configs: Vec<SyncConfiguration> = match self
            .store
            .sync_configurations_on(tenant, &claim.link_id, &claim.base_branch)
            .await
        {
            Ok(configs) => configs
                .into_iter()
                .filter(|c| c.pull_request_comment == Some(true))
                .collect(),
            Err(e) => return retry(format!("cannot read the sync configurations: {e}")),
        };
        // Pull requests from forks are previewed only for stacks whose owner opted in, and never
        // from a branch of another repository (Bitbucket's forks): decided before anything is
        // fetched.
        let mut previews = Vec::new();
        let mut configs = configs;
        if claim.from_fork {
            let mut allowed = Vec::new();
            for config in configs {
                let stack = &config.resource_name;
                let why = if claim.head_ref.starts_with("refs/heads/") {
                    Some("not previewed: the pull request's head is a branch of another repository (a fork), which gitsync does not fetch".to_string())
                } else {
                    match self.store.previews_forks(tenant, stack).await {
                        Ok(true) => None,
                        Ok(false) => Some(format!(
                            "not previewed: the pull request comes from a fork (`gitsync previews forks --resource-name {stack} --allow` opts in)"
                        )),
                        Err(e) => return retry(e.to_string()),
                    }
                };
                match why {
                    Some(summary) => previews.push(StackPreview {
                        resource_name: stack.clone(),
                        summary,
                        comment: None,
                    }),
                    None => allowed.push(config),
                }
            }
            configs = allowed;
        }
        if configs.is_empty() {
            return PreviewsDone::Done(previews);
        }
        let source = match self.store.link_source(tenant, &claim.link_id).await {
            Ok(s) => s,
            Err(e) => return retry(e.to_string()),
        };
        let remote = match remote_for(&source, &self.settings.git_bases) {
            Ok(r) => r,
            Err(e) => return retry(e.to_string()),
        };
        let head = match remote.fetch_ref(&self.git, &claim.head_ref).await {
            Ok(sha) => sha,
            Err(e) => return retry(format!("cannot fetch {}: {e}", claim.head_ref)),
        };
        // The host named the head (Bitbucket by a prefix); a ref that moved since is previewed
        // once the host lists its new head.
        if !head.starts_with(&claim.head_sha) {
            return retry(format!(
                "{} is at {head}, not at {} as the host listed it",
                claim.head_ref, claim.head_sha
            ));
        }
        // The base branch as the repository's syncs see it: what the pull request changes.
        let base = match remote
            .fetch(&self.git, std::slice::from_ref(&claim.base_branch))
            .await
        {
            Ok((_, heads)) => heads.get(&claim.base_branch).cloned(),
            Err(e) => return retry(format!("cannot fetch {}: {e}", claim.base_branch)),
        };
        let mirror = match Mirror::for_url(&self.git, &remote.url) {
            Ok(m) => m,
            Err(e) => return retry(e.to_string()),
        };
        let policy = match self.store.account_policy(&tenant.account_id).await {
            Ok(p) => p,
            Err(e) => return retry(format!("cannot read the account's deployment policy: {e}")),
        };
        for config in &configs {
            let stack = &config.resource_name;
            let skip = |summary: String| StackPreview {
                resource_name: stack.clone(),
                summary,
                comment: None,
            };
            // Read off the async runtime, within the repository budgets.
            let read = {
                let (mirror, head, base, stack, config) = (
                    mirror.clone(),
                    head.clone(),
                    base.clone(),
                    stack.clone(),
                    config.clone(),
                );
                tokio::task::spawn_blocking(move || {
                    let changed = crate::stack::watched_paths_differ(
                        &mirror,
                        &head,
                        base.as_deref(),
                        &config,
                    )?;
                    if !changed {
                        return Ok(None);
                    }
                    Ok::<_, gitsync_git::GitError>(Some(crate::stack::read_plan(
                        &mirror, &head, &stack, &config,
                    )))
                })
                .await
            };
            let plan = match read {
                Ok(Ok(None)) => {
                    previews.push(skip(
                        "nothing to preview: the pull request changes neither the deployment file nor its template".into(),
                    ));
                    continue;
                }
                Ok(Ok(Some(plan))) => plan,
                Ok(Err(e)) => return retry(format!("cannot read commit {head}: {e}")),
                Err(e) => return retry(format!("reading commit {head} failed: {e}")),
            };
            let outcome = match plan {
                Ok(mut plan) => match policy.check_role(&config.role_arn) {
                    Err(refused) => PreviewOutcome::Failed(refused),
                    Ok(()) => {
                        plan.region = tenant.region.clone();
                        plan.commit = head.clone();
                        plan.identity = if policy.trusted && !self.settings.assume_sync_role {
                            DeployIdentity::Server
                        } else {
                            DeployIdentity::AssumeRole {
                                role_arn: config.role_arn.clone(),
                                external_id: tenant.account_id.clone(),
                            }
                        };
                        plan.owner = Owner {
                            account: tenant.account_id.clone(),
                            configuration: stack.clone(),
                            adopt: false,
                        };
                        self.deployer.preview(&plan).await
                    }
                },
                Err(Ending::Failed(_, why)) => PreviewOutcome::Failed(why),
                Err(Ending::Transient(_, why)) => return retry(why),
                Err(_) => PreviewOutcome::Failed("the commit cannot be planned".into()),
            };
            if let PreviewOutcome::Transient(why) = &outcome {
                return retry(why.clone());
            }
            let marker = preview_marker(stack);
            previews.push(StackPreview {
                resource_name: stack.clone(),
                summary: summary(&outcome),
                comment: Some(PullRequestComment {
                    link_id: claim.link_id.clone(),
                    owner_id: source.owner_id.clone(),
                    repository_name: source.repository_name.clone(),
                    number: claim.number,
                    body: gitsync_deploy::preview::comment(&marker, stack, &head, &outcome),
                    marker,
                }),
            });
        }
        PreviewsDone::Done(previews)
    }
}

/// One line for `gitsync status`.
fn summary(outcome: &PreviewOutcome) -> String {
    match outcome {
        PreviewOutcome::Changes(changes) if changes.is_empty() => "no resource changes".into(),
        PreviewOutcome::Changes(changes) => format!("{} resource change(s)", changes.len()),
        PreviewOutcome::Validated(_) => "validated (no CloudFormation is configured)".into(),
        PreviewOutcome::Failed(why) | PreviewOutcome::Transient(why) => {
            let line: String = why.split_whitespace().collect::<Vec<_>>().join(" ");
            format!(
                "cannot be deployed: {}",
                line.chars().take(200).collect::<String>()
            )
        }
    }
}
