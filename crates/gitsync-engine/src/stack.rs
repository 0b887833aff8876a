//! Resource syncs of CloudFormation stacks (`CFN_STACK_SYNC`): the deployment file and its
//! template read at the commit, checked, and deployed through the [`StackDeployer`].
//!
//! [`StackDeployer`]: gitsync_deploy::StackDeployer

use crate::Engine;
use crate::attempt::{AttemptProgress, Ending, SyncKind};
use crate::repository::{BranchCommit, BranchScan, CheckError, remote_for};
use gitsync_deploy::cfn::{DeployIdentity, DeploymentFile, Owner, plan};
use gitsync_deploy::{BoxFuture, DeployOutcome};
use gitsync_git::Mirror;
use gitsync_model::{
    EventType, Revision, SyncConfiguration, SyncEvent, SyncTarget, SyncType,
    TriggerResourceUpdateOn,
};
use gitsync_store::{ClaimedTarget, Release, RepositoryKey, StoreError, TargetAdvance};

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
        let SyncTarget::CfnStack { stack_name } = &claim.target else {
            return Err(Release::Settle);
        };
        match engine
            .store
            .get_sync_configuration(&claim.tenant, stack_name)
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

/// The paths a stack watches and their tree-entry ids at a commit: the deployment file, and the
/// template it names when it can be read. `previous` (the ids at the desired commit) saves
/// reading and parsing a deployment file whose id did not change: it still names the same template.
fn watched_ids(
    snapshot: &gitsync_git::Snapshot,
    config: &SyncConfiguration,
    previous: Option<&str>,
) -> serde_json::Value {
    let id = |path: &str| {
        snapshot
            .entry_id(path)
            .ok()
            .flatten()
            .map(serde_json::Value::String)
            .unwrap_or(serde_json::Value::Null)
    };
    let mut ids = serde_json::Map::new();
    let deployment_id = id(&config.config_file);
    let previous: Option<serde_json::Map<String, serde_json::Value>> =
        previous.and_then(|p| serde_json::from_str(p).ok());
    let template_path = match previous {
        Some(prev) if prev.get(&config.config_file) == Some(&deployment_id) => {
            prev.keys().find(|k| **k != config.config_file).cloned()
        }
        _ => snapshot
            .read_file(&config.config_file)
            .ok()
            .flatten()
            .and_then(|bytes| {
                gitsync_deploy::cfn::DeploymentFile::parse(&config.config_file, &bytes).ok()
            })
            .map(|file| file.template_file_path),
    };
    ids.insert(config.config_file.clone(), deployment_id);
    if let Some(path) = template_path {
        let template_id = id(&path);
        ids.insert(path, template_id);
    }
    serde_json::Value::Object(ids)
}

/// The stacks of a link's branch that its new head is relevant to.
pub(crate) fn scan<'a>(
    engine: &'a Engine,
    commit: &'a BranchCommit<'a>,
) -> BoxFuture<'a, Result<BranchScan, CheckError>> {
    Box::pin(async move {
        let RepositoryKey::Link(link_id) = commit.repository else {
            return Ok(BranchScan::default());
        };
        let configs = engine
            .store
            .sync_configurations_on(commit.tenant, link_id, commit.branch)
            .await?;
        Ok(BranchScan {
            advances: engine.relevant_stacks(commit, &configs).await?,
            targets: configs.len(),
            problems: Vec::new(),
        })
    })
}

impl Engine {
    /// The targets a commit is relevant to: with `FILE_CHANGE` (the default), those whose watched
    /// paths changed tree-entry id; with `ANY_CHANGE`, every one not already at the commit.
    async fn relevant_stacks(
        &self,
        commit: &BranchCommit<'_>,
        configs: &[SyncConfiguration],
    ) -> Result<Vec<TargetAdvance>, CheckError> {
        if configs.is_empty() {
            return Ok(Vec::new());
        }
        let watches = self
            .store
            .target_watches(commit.tenant, SyncType::CfnStackSync)
            .await?;
        let (source, mirror, branch, head) =
            (commit.source, commit.mirror, commit.branch, commit.head);
        // Reading deployment files (each within the file budget) is blocking work: off the async
        // runtime, so a repository of many large files cannot stall the server's answers.
        let (mirror, head, branch) = (mirror.clone(), head.to_string(), branch.to_string());
        let (configs, owner_id, repository_name, provider_type) = (
            configs.to_vec(),
            source.owner_id.clone(),
            source.repository_name.clone(),
            source.provider_type.as_str().to_string(),
        );
        tokio::task::spawn_blocking(move || {
            let head = head.as_str();
            let snapshot = mirror
                .at(head)
                .map_err(CheckError::git(format!("Could not read commit {head}")))?;
            let mut advances = Vec::new();
            for config in &configs {
                let target = SyncTarget::CfnStack {
                    stack_name: config.resource_name.clone(),
                };
                let watch = watches.get(&target.key());
                let ids = watched_ids(
                    &snapshot,
                    config,
                    watch.and_then(|w| w.watched_ids.as_deref()),
                )
                .to_string();
                let relevant = match (
                    watch,
                    config
                        .trigger_resource_update_on
                        .unwrap_or(TriggerResourceUpdateOn::FileChange),
                ) {
                    (None, _) => true,
                    (Some(w), TriggerResourceUpdateOn::AnyChange) => {
                        w.desired_sha.as_deref() != Some(head)
                    }
                    (Some(w), TriggerResourceUpdateOn::FileChange) => {
                        w.watched_ids.as_deref() != Some(ids.as_str())
                    }
                };
                if relevant {
                    advances.push(TargetAdvance {
                        target,
                        directory: config.config_file.clone(),
                        revision: Revision {
                            branch: branch.clone(),
                            directory: config.config_file.clone(),
                            owner_id: owner_id.clone(),
                            repository_name: repository_name.clone(),
                            provider_type: provider_type.clone(),
                            sha: head.to_string(),
                        },
                        watched_ids: ids,
                    });
                }
            }
            Ok(advances)
        })
        .await
        .map_err(|e| CheckError::Interrupted {
            commit: commit.head.to_string(),
            message: e.to_string(),
        })?
    }

    /// Reads the deployment file and template at the target commit, checks them, and deploys.
    async fn sync_stack_source(
        &self,
        claim: &ClaimedTarget,
        config: &gitsync_model::SyncConfiguration,
        progress: &AttemptProgress,
    ) -> Ending {
        let sha = &claim.desired.sha;
        let link_id = match claim.repository.clone() {
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
        let remote = match remote_for(&source, &self.settings.git_bases) {
            Ok(r) => r,
            Err(e) => {
                return Ending::Transient(
                    vec![SyncEvent::new(EventType::SourceFailed, e.to_string(), None)],
                    e.to_string(),
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
        // A worker that stopped while deploying this commit left its change set running (or
        // created and not yet executed): follow it rather than deploy the commit again.
        if let Some(abandoned) = claim.abandoned_attempt_id {
            match self
                .store
                .started_change_set(&claim.tenant, abandoned)
                .await
            {
                Ok(Some((commit, change_set))) if commit == *sha => {
                    stack_plan.started_change_set = Some(change_set);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read what the previous worker started")
                }
            }
        }
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

/// Whether a commit changes what a stack watches compared with another (a pull request's head
/// with its base branch): the deployment file's tree-entry id, or that of the template either
/// side names. Without a base, everything is a change.
pub(crate) fn watched_paths_differ(
    mirror: &Mirror,
    head: &str,
    base: Option<&str>,
    config: &SyncConfiguration,
) -> Result<bool, gitsync_git::GitError> {
    let Some(base) = base else { return Ok(true) };
    let at_head = watched_ids(&mirror.at(head)?, config, None);
    let at_base = watched_ids(&mirror.at(base)?, config, None);
    Ok(at_head != at_base)
}

/// Reads and checks the stack's source at a commit, without awaiting: gix repositories stay on
/// the thread that opened them.
pub(crate) fn read_plan(
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

#[cfg(test)]
mod tests {
    use super::*;
    use gitsync_git::Remote;
    use gitsync_model::ProviderType;

    /// Relevance of a stack sync: a commit is relevant when the tree-entry id of its deployment
    /// file, or of the template that file names, changed; anything else in the repository is not.
    #[tokio::test]
    async fn a_commit_is_relevant_when_the_deployment_file_or_its_template_changes() {
        let kit = crate::testkit::Kit::new().await;
        let repo = kit.repo("o", "r");
        let commit = |files: &[(&str, &str)]| {
            let files: Vec<(&str, Option<&str>)> =
                files.iter().map(|(p, c)| (*p, Some(*c))).collect();
            repo.commit(&files)
        };
        let settings = kit.engine.git.clone();
        let remote = Remote::new(
            format!("file://{}", kit.repos_dir().join("o/r.git").display()),
            None,
        );
        let config = SyncConfiguration {
            resource_name: "web".into(),
            branch: "main".into(),
            config_file: "deploy/web.yaml".into(),
            repository_link_id: "l".into(),
            role_arn: String::new(),
            owner_id: "o".into(),
            provider_type: ProviderType::GitHub,
            repository_name: "r".into(),
            publish_deployment_status: None,
            trigger_resource_update_on: None,
            pull_request_comment: None,
        };
        let first = commit(&[
            ("deploy/web.yaml", "template-file-path: infra/web.yaml\n"),
            ("infra/web.yaml", "Resources: {}\n"),
            ("README.md", "one"),
        ]);
        let at_first = ids_at(&remote, &settings, &config, &first, None).await;
        assert!(at_first.contains("infra/web.yaml"), "{at_first}");
        // Another file changed: not relevant (the same ids, with or without the previous ids).
        let readme = commit(&[("README.md", "two")]);
        assert_eq!(
            ids_at(&remote, &settings, &config, &readme, None).await,
            at_first
        );
        assert_eq!(
            ids_at(&remote, &settings, &config, &readme, Some(&at_first)).await,
            at_first
        );
        // The template changed: relevant.
        let template = commit(&[(
            "infra/web.yaml",
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n",
        )]);
        let at_template = ids_at(&remote, &settings, &config, &template, Some(&at_first)).await;
        assert_ne!(at_template, at_first);
        // The deployment file names another template: relevant, and the new template is watched.
        let moved = commit(&[
            ("deploy/web.yaml", "template-file-path: infra/other.yaml\n"),
            ("infra/other.yaml", "Resources: {}\n"),
        ]);
        let at_moved = ids_at(&remote, &settings, &config, &moved, Some(&at_template)).await;
        assert!(
            at_moved.contains("infra/other.yaml") && !at_moved.contains("infra/web.yaml"),
            "{at_moved}"
        );
    }

    /// The watched ids of `config` at `sha`, fetched from `remote`.
    async fn ids_at(
        remote: &Remote,
        settings: &gitsync_git::GitSettings,
        config: &SyncConfiguration,
        sha: &str,
        previous: Option<&str>,
    ) -> String {
        let (mirror, _) = remote.fetch(settings, &["main".into()]).await.unwrap();
        let snapshot = mirror.at(sha).unwrap();
        watched_ids(&snapshot, config, previous).to_string()
    }

    /// Newest commit wins, in the engine: commits that arrive before an attempt starts only move
    /// the desired state; the one attempt takes the newest and records the ones it skipped.
    #[tokio::test]
    async fn an_attempt_takes_the_newest_commit_and_records_the_ones_it_skipped() {
        use crate::testkit::{Kit, moved};
        use gitsync_model::{ResourceSyncStatus, SyncConfigurationSpec};
        let kit = Kit::new().await;
        let repo = kit.repo("octo", "infra");
        let queue = |visibility: u32| {
            format!(
                "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      VisibilityTimeout: {visibility}\n"
            )
        };
        let a = repo.commit(&[
            (
                "deploy/web.yaml",
                Some("template-file-path: infra/web.yaml\n"),
            ),
            ("infra/web.yaml", Some(&queue(30))),
        ]);
        let link = kit.link("octo", "infra").await;
        kit.store
            .create_sync_configuration(
                &kit.tenant,
                &SyncConfigurationSpec {
                    resource_name: "web".into(),
                    branch: "main".into(),
                    config_file: "deploy/web.yaml".into(),
                    repository_link_id: link.clone(),
                    role_arn: "arn:aws:iam::111122223333:role/sync".into(),
                    publish_deployment_status: None,
                    trigger_resource_update_on: None,
                    pull_request_comment: None,
                },
            )
            .await
            .unwrap();
        let key = RepositoryKey::Link(link);
        assert_eq!(
            moved(&kit.check_main(SyncType::CfnStackSync, &key).await),
            ["web"]
        );
        let b = repo.commit(&[("infra/web.yaml", Some(&queue(45)))]);
        assert_eq!(
            moved(&kit.check_main(SyncType::CfnStackSync, &key).await),
            ["web"]
        );
        let target = SyncTarget::CfnStack {
            stack_name: "web".into(),
        };
        let now = kit.store.now().await.unwrap();
        let due = kit.store.due_targets(now, 10).await.unwrap();
        assert_eq!(due, [(kit.tenant.clone(), target.clone())]);
        let claim = kit
            .store
            .claim_target(&kit.tenant, &target, "test", now, 60_000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (claim.desired.sha.as_str(), &claim.superseded[..]),
            (b.as_str(), &[a.clone()][..])
        );
        kit.engine.resource_sync(claim).await;
        let state = kit
            .store
            .resource_sync_state(&kit.tenant, &target)
            .await
            .unwrap()
            .unwrap();
        let latest = &state.latest_sync;
        assert_eq!(latest.status, ResourceSyncStatus::Succeeded);
        assert_eq!(latest.target_revision.sha, b);
        let events: Vec<&str> = latest
            .events
            .iter()
            .map(|e| e.event_type.as_str())
            .collect();
        assert_eq!(
            events,
            ["SUPERSEDED", "SYNC_STARTED", "VALIDATION_SUCCEEDED"]
        );
        assert_eq!(
            latest.events[0].event,
            format!("Commit {a} replaced by newer commit {b}")
        );
        // One attempt in all: nothing is due any more.
        let later = kit.store.now().await.unwrap();
        assert!(kit.store.due_targets(later, 10).await.unwrap().is_empty());
    }
}
