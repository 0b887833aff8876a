//! Branch checks: the repository syncs of watched branches.

use crate::Engine;
use crate::backoff::{after_failures, jittered};
use gitsync_git::{Credential, GitError, Mirror, Remote};
use gitsync_model::{EventType, SyncEvent};
use gitsync_model::{
    RepositorySyncStatus, Revision, SyncConfiguration, SyncTarget, SyncType, Tenant, Timestamp,
    TriggerResourceUpdateOn,
};
use gitsync_store::{BranchCheckResult, ClaimedBranch, LinkSource, RepositoryKey, TargetAdvance};
use std::time::Duration;

/// Failing remotes are retried no less often than this.
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// `{base}/{owner}/{name}.git`, where base is the host's endpoint or the provider's public host.
pub fn remote_url(source: &LinkSource) -> Result<String, String> {
    let safe = |s: &str, slash: bool| {
        !s.is_empty()
            && !s.starts_with('-')
            && !s
                .split('/')
                .any(|part| part.is_empty() || part == "." || part == "..")
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b) || (slash && b == b'/'))
    };
    if !safe(&source.owner_id, true) || !safe(&source.repository_name, false) {
        return Err(format!(
            "'{}/{}' cannot be made into a repository URL: owner and repository may hold letters, digits, '.', '_' and '-'",
            source.owner_id, source.repository_name
        ));
    }
    let base = match (
        &source.host_endpoint,
        source.provider_type.public_base_url(),
    ) {
        (Some(endpoint), _) => endpoint.trim_end_matches('/').to_string(),
        (None, Some(public)) => public.to_string(),
        (None, None) => {
            return Err(format!(
                "provider {} needs a host with a ProviderEndpoint",
                source.provider_type
            ));
        }
    };
    if !["https://", "http://", "ssh://", "file://"]
        .iter()
        .any(|s| base.starts_with(s))
    {
        return Err(format!(
            "ProviderEndpoint {base} must start with https://, http://, ssh:// or file://"
        ));
    }
    let name = source.repository_name.trim_end_matches(".git");
    Ok(format!("{base}/{}/{name}.git", source.owner_id))
}

/// The credential stored by `gitsync connections activate` (JSON `{"token": …}` or `{"ssh_key": …}`).
pub fn credential(stored: Option<&[u8]>) -> Option<Credential> {
    let value: serde_json::Value = serde_json::from_slice(stored?).ok()?;
    if let Some(token) = value["token"].as_str() {
        return Some(Credential::Token(token.to_string()));
    }
    value["ssh_key"]
        .as_str()
        .map(|k| Credential::SshKey(k.to_string()))
}

/// How to reach a link's repository, or why it cannot be reached.
pub(crate) fn remote_for(source: &LinkSource) -> Result<Remote, String> {
    if source.connection_status != gitsync_model::ConnectionStatus::Available {
        return Err(format!(
            "Connection {arn} is {status}, not AVAILABLE: activate it with `gitsync connections activate {arn} --token-file FILE` \
             (or --ssh-key-file FILE for ssh, or neither for file://)",
            arn = source.connection_arn,
            status = source.connection_status
        ));
    }
    Ok(Remote::new(
        remote_url(source)?,
        credential(source.credentials.as_deref()),
    ))
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

impl Engine {
    /// Checks one watched branch and, when it moved, runs its repository sync.
    pub(crate) async fn check_branch(&self, claim: ClaimedBranch) {
        use tracing::Instrument;
        let key = &claim.key;
        let span = tracing::info_span!("branch_check", tenant = %key.tenant, repository = %key.repository_key, branch = %key.branch);
        self.check_branch_in_span(claim.clone())
            .instrument(span)
            .await
    }

    async fn check_branch_in_span(&self, claim: ClaimedBranch) {
        let work = async {
            match self.repository_sync(&claim).await {
                Ok(result) => result,
                Err(message) => self.branch_failed(&claim, &message).await,
            }
        };
        let result = tokio::select! {
            result = work => result,
            () = self.keep_lease(|now, ttl| self.store.renew_branch_lease(&claim, now, ttl)) => {
                tracing::warn!("lost the lease on this branch; its check stops here");
                return;
            }
        };
        if let Err(e) = self.store.finish_branch_check(&claim, &result).await {
            tracing::warn!(error = %e, "cannot finish the branch check");
        }
    }

    async fn next_check(&self) -> Timestamp {
        self.db_now()
            .await
            .plus_millis(jittered(self.settings.poll_interval).as_millis() as i64)
    }

    /// Records a failed repository sync (once per run of failures, and whenever a sync was
    /// already queued or started), and backs off.
    async fn branch_failed(&self, claim: &ClaimedBranch, message: &str) -> BranchCheckResult {
        tracing::warn!(
            failures = claim.failures + 1,
            error = message,
            "branch check failed"
        );
        let queued = match self.store.take_queued_attempt(claim).await {
            Ok(queued) => queued,
            Err(e) => {
                tracing::warn!(error = %e, "cannot take the queued repository sync");
                None
            }
        };
        if claim.failures == 0 || queued.is_some() {
            let attempt = match queued {
                Some(id) => Ok(id),
                None => {
                    self.store
                        .start_repository_attempt(
                            &claim.key.tenant,
                            claim.key.sync_type,
                            &RepositoryKey::parse(&claim.key.repository_key),
                            &claim.key.branch,
                            RepositorySyncStatus::InProgress,
                            Timestamp::now(),
                        )
                        .await
                }
            };
            let recorded = match attempt {
                Ok(id) => {
                    self.store
                        .record_repository_event(
                            id,
                            RepositorySyncStatus::Failed,
                            &SyncEvent::new(EventType::CloneFailed, message, None),
                        )
                        .await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = recorded {
                tracing::warn!(error = %e, "cannot record the failed repository sync");
            }
        }
        let failures = claim.failures + 1;
        let wait = after_failures(
            self.settings.poll_interval,
            failures,
            MAX_BACKOFF.max(self.settings.poll_interval),
        );
        BranchCheckResult {
            remote_sha: None,
            synced_sha: claim.synced_sha.clone(),
            failures,
            last_error: Some(message.to_string()),
            next_check_at: self.db_now().await.plus_millis(wait.as_millis() as i64),
        }
    }

    async fn repository_sync(&self, claim: &ClaimedBranch) -> Result<BranchCheckResult, String> {
        let key = &claim.key;
        let repository = RepositoryKey::parse(&key.repository_key);
        let source = match &repository {
            RepositoryKey::Link(link_id) => self.store.link_source(&key.tenant, link_id).await,
            RepositoryKey::Proton { provider, name } => {
                self.store.proton_source(&key.tenant, *provider, name).await
            }
        }
        .map_err(|e| e.to_string())?;
        let remote = remote_for(&source)?;
        let branch = key.branch.clone();
        let heads = remote
            .list_branches(&self.git, std::slice::from_ref(&branch))
            .await
            .map_err(|e| format!("Could not list refs/heads/{branch} of {}: {e}", remote.url))?;
        let head = heads
            .get(&branch)
            .cloned()
            .ok_or_else(|| format!("Branch {branch} does not exist in {}", remote.url))?;
        let queued = self
            .store
            .take_queued_attempt(claim)
            .await
            .map_err(|e| e.to_string())?;
        if Some(&head) == claim.synced_sha.as_ref() {
            // An unchanged remote costs one ref listing: no fetch, no attempt.
            if let Some(id) = queued
                && let Err(e) = self
                    .store
                    .record_repository_event(
                        id,
                        RepositorySyncStatus::Succeeded,
                        &SyncEvent::new(
                            EventType::NoChanges,
                            format!("Commit {head} is already synced"),
                            Some(&head),
                        ),
                    )
                    .await
            {
                tracing::warn!(error = %e, "cannot close the queued repository sync");
            }
            return Ok(BranchCheckResult {
                remote_sha: Some(head.clone()),
                synced_sha: Some(head),
                failures: 0,
                last_error: None,
                next_check_at: self.next_check().await,
            });
        }
        let attempt = match queued {
            Some(id) => id,
            None => self
                .store
                .start_repository_attempt(
                    &key.tenant,
                    key.sync_type,
                    &repository,
                    &branch,
                    RepositorySyncStatus::Initiated,
                    Timestamp::now(),
                )
                .await
                .map_err(|e| e.to_string())?,
        };
        let record = |status, e| {
            let store = self.store.clone();
            async move {
                if let Err(err) = store.record_repository_event(attempt, status, &e).await {
                    tracing::warn!(error = %err, "cannot record a repository sync event");
                }
            }
        };
        record(
            RepositorySyncStatus::InProgress,
            SyncEvent::new(EventType::CloneStarted, "Clone started", None),
        )
        .await;
        let mirror = Mirror::for_url(&self.git, &remote.url).map_err(|e| e.to_string())?;
        let head = if mirror.has_commit(&head) {
            head
        } else {
            match remote.fetch(&self.git, std::slice::from_ref(&branch)).await {
                Ok((_, fetched)) => fetched.get(&branch).cloned().unwrap_or(head),
                Err(e) => {
                    let message = match e {
                        GitError::NoSuchBranch(_) => {
                            format!("Branch {branch} does not exist in {}", remote.url)
                        }
                        other => format!(
                            "Could not fetch refs/heads/{branch} from {}: {other}",
                            remote.url
                        ),
                    };
                    record(
                        RepositorySyncStatus::Failed,
                        SyncEvent::new(EventType::CloneFailed, &message, None),
                    )
                    .await;
                    return Err(message);
                }
            }
        };
        record(
            RepositorySyncStatus::InProgress,
            SyncEvent::new(EventType::ConfigUpdated, "Updated configuration", None),
        )
        .await;
        // Configuration files on this branch that cannot be used (service sync's ops files).
        let mut problems: Vec<String> = Vec::new();
        let (advances, targets) = match &repository {
            RepositoryKey::Link(link_id) => {
                let configs = self
                    .store
                    .sync_configurations_on(&key.tenant, link_id, &branch)
                    .await
                    .map_err(|e| e.to_string())?;
                let advances = self
                    .relevant_targets(&key.tenant, &source, &mirror, &branch, &head, &configs)
                    .await?;
                (advances, configs.len())
            }
            RepositoryKey::Proton { provider, name } if key.sync_type == SyncType::ServiceSync => {
                let scan = self
                    .relevant_service_instances(
                        &key.tenant,
                        *provider,
                        name,
                        &source,
                        &remote,
                        &mirror,
                        &branch,
                        &head,
                    )
                    .await?;
                problems = scan.problems;
                (scan.advances, scan.targets)
            }
            RepositoryKey::Proton { provider, name } => {
                let configs = self
                    .store
                    .template_sync_configs_on(&key.tenant, *provider, name, &branch)
                    .await
                    .map_err(|e| e.to_string())?;
                self.relevant_template_majors(
                    &key.tenant,
                    *provider,
                    &source,
                    &mirror,
                    &branch,
                    &head,
                    &configs,
                )
                .await?
            }
        };
        let affected = advances.len();
        self.store
            .advance_targets(&key.tenant, &repository, &branch, &advances)
            .await
            .map_err(|e| e.to_string())?;
        // Unusable configuration files fail the repository sync (after any targets that could
        // still move did); a new commit, or a configuration change, tries again.
        let failed = !problems.is_empty();
        // One record per problem, but never more than an attempt keeps.
        gitsync_model::security::cap_list(
            &mut problems,
            self.store.limits().events_per_attempt.saturating_sub(8) as usize,
            |n| format!("{n} more problem(s) left out"),
        );
        let done = if failed {
            RepositorySyncStatus::Failed
        } else {
            RepositorySyncStatus::Succeeded
        };
        for (i, problem) in problems.iter().enumerate() {
            let last = i + 1 == problems.len() && affected == 0;
            record(
                if last {
                    done
                } else {
                    RepositorySyncStatus::InProgress
                },
                SyncEvent::new(EventType::ValidationFailed, problem, Some(&head)),
            )
            .await;
        }
        if affected > 0 {
            record(
                done,
                SyncEvent::new(
                    EventType::StartingSync,
                    format!("Starting syncs for commit {head}"),
                    Some(&head),
                ),
            )
            .await;
            self.wake();
        } else if !failed {
            record(
                done,
                SyncEvent::new(
                    EventType::NoChanges,
                    format!("No sync target is affected by commit {head}"),
                    Some(&head),
                ),
            )
            .await;
        }
        tracing::info!(commit = %head, targets, affected, "repository sync finished");
        Ok(BranchCheckResult {
            remote_sha: Some(head.clone()),
            synced_sha: Some(head),
            failures: 0,
            last_error: None,
            next_check_at: self.next_check().await,
        })
    }

    /// The targets a commit is relevant to: with `FILE_CHANGE` (the default), those whose watched
    /// paths changed tree-entry id; with `ANY_CHANGE`, every one not already at the commit.
    async fn relevant_targets(
        &self,
        tenant: &Tenant,
        source: &LinkSource,
        mirror: &Mirror,
        branch: &str,
        head: &str,
        configs: &[SyncConfiguration],
    ) -> Result<Vec<TargetAdvance>, String> {
        if configs.is_empty() {
            return Ok(Vec::new());
        }
        let watches = self
            .store
            .target_watches(tenant, SyncType::CfnStackSync)
            .await
            .map_err(|e| e.to_string())?;
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
            let snapshot = mirror.at(head).map_err(|e| e.to_string())?;
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
        .map_err(|e| format!("deciding relevance failed: {e}"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitsync_model::{ConnectionStatus, ProviderType};

    fn source(
        owner: &str,
        repo: &str,
        endpoint: Option<&str>,
        provider: ProviderType,
    ) -> LinkSource {
        LinkSource {
            link_id: "l".into(),
            owner_id: owner.into(),
            repository_name: repo.into(),
            provider_type: provider,
            connection_arn: "arn".into(),
            connection_status: ConnectionStatus::Available,
            host_endpoint: endpoint.map(str::to_string),
            credentials: None,
        }
    }

    /// Relevance of a stack sync: a commit is relevant when the tree-entry id of its deployment
    /// file, or of the template that file names, changed; anything else in the repository is not.
    #[tokio::test]
    async fn a_commit_is_relevant_when_the_deployment_file_or_its_template_changes() {
        use std::process::Command;
        let dir = tempfile::tempdir().unwrap();
        let (bare, work) = (dir.path().join("srv.git"), dir.path().join("work"));
        std::fs::create_dir_all(&work).unwrap();
        let git = |cwd: &std::path::Path, args: &[&str]| {
            let out = Command::new("git")
                .args(args)
                .current_dir(cwd)
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.com")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.com")
                .output()
                .unwrap();
            assert!(out.status.success(), "git {args:?}");
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        git(
            dir.path(),
            &["init", "--bare", "-q", "-b", "main", bare.to_str().unwrap()],
        );
        git(&work, &["init", "-q", "-b", "main"]);
        let commit = |files: &[(&str, &str)]| {
            for (path, contents) in files {
                let p = work.join(path);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, contents).unwrap();
            }
            git(&work, &["add", "-A"]);
            git(&work, &["commit", "-q", "--allow-empty", "-m", "c"]);
            git(&work, &["push", "-q", bare.to_str().unwrap(), "HEAD:main"]);
            git(&work, &["rev-parse", "HEAD"])
        };
        let cache = tempfile::tempdir().unwrap();
        let mut settings = gitsync_git::GitSettings::new(cache.path());
        settings.allow_file = true;
        let remote = Remote::new(format!("file://{}", bare.display()), None);
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

    #[test]
    fn remote_urls_come_from_host_or_provider() {
        assert_eq!(
            remote_url(&source("octo", "infra", None, ProviderType::GitHub)).unwrap(),
            "https://github.com/octo/infra.git"
        );
        assert_eq!(
            remote_url(&source(
                "grp/sub",
                "app.git",
                Some("https://git.example.com/"),
                ProviderType::GitLabSelfManaged
            ))
            .unwrap(),
            "https://git.example.com/grp/sub/app.git"
        );
        assert_eq!(
            remote_url(&source(
                "o",
                "r",
                Some("file:///srv/git"),
                ProviderType::GitHubEnterpriseServer
            ))
            .unwrap(),
            "file:///srv/git/o/r.git"
        );
        assert!(
            remote_url(&source("o", "r", None, ProviderType::GitLabSelfManaged))
                .unwrap_err()
                .contains("needs a host")
        );
        for (owner, repo) in [
            ("..", "r"),
            ("o", "../x"),
            ("-o", "r"),
            ("o", "r x"),
            ("o", "a/b"),
        ] {
            assert!(
                remote_url(&source(owner, repo, None, ProviderType::GitHub)).is_err(),
                "{owner}/{repo}"
            );
        }
        assert!(
            remote_url(&source(
                "o",
                "r",
                Some("ext::sh"),
                ProviderType::GitHubEnterpriseServer
            ))
            .is_err()
        );
    }

    #[test]
    fn pending_connections_name_the_command_that_fixes_them() {
        let mut s = source("o", "r", None, ProviderType::GitHub);
        s.connection_status = ConnectionStatus::Pending;
        let message = remote_for(&s).unwrap_err();
        assert!(
            message.contains("gitsync connections activate arn"),
            "{message}"
        );
    }

    #[test]
    fn stored_credentials_are_read() {
        assert!(
            matches!(credential(Some(br#"{"token":"t"}"#)), Some(Credential::Token(t)) if t == "t")
        );
        assert!(
            matches!(credential(Some(br#"{"ssh_key":"k"}"#)), Some(Credential::SshKey(k)) if k == "k")
        );
        assert!(credential(Some(b"{}")).is_none());
        assert!(credential(None).is_none());
    }
}
