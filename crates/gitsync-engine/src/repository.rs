//! Branch checks: the repository syncs of watched branches.

use crate::Engine;
use crate::backoff::{after_failures, jittered};
use gitsync_deploy::BoxFuture;
use gitsync_git::{Credential, GitError, Mirror, Remote};
use gitsync_model::githost::{ConnectionSecrets, ProviderBases};
use gitsync_model::{EventType, SyncEvent};
use gitsync_model::{RepositorySyncStatus, Tenant, Timestamp};
use gitsync_store::{
    BranchCheckResult, ClaimedBranch, LinkSource, RepositoryKey, StoreError, TargetAdvance,
};
use std::time::Duration;

/// Why a branch check failed. Each message names the branch and the remote; whether checking
/// the same head again can help is decided here, once ([`CheckError::is_transient`]).
#[derive(Debug, thiserror::Error)]
pub(crate) enum CheckError {
    /// The configuration could not be read, or the outcome not written.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The repository cannot be used as configured: a pending connection, an unusable URL, a
    /// branch a configuration names that is not on the remote.
    #[error("{0}")]
    Config(String),
    /// The branch is not on the remote.
    #[error("Branch {branch} does not exist in {url}")]
    NoSuchBranch { branch: String, url: String },
    /// A git operation failed; `what` says which.
    #[error("{what}: {source}")]
    Git {
        what: String,
        #[source]
        source: GitError,
    },
    /// Reading the commit off the async runtime did not finish (the task panicked).
    #[error("reading commit {commit} failed: {message}")]
    Interrupted { commit: String, message: String },
}

impl CheckError {
    /// Wraps a git error with what was being done.
    pub(crate) fn git(what: impl Into<String>) -> impl FnOnce(GitError) -> CheckError {
        let what = what.into();
        move |source| CheckError::Git { what, source }
    }

    /// Whether the same check may pass later without the repository changing. A repository
    /// over a budget stays over it until a new commit; everything else (the network, the
    /// database, a connection activated meanwhile, a branch pushed meanwhile) may change.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            CheckError::Git { source, .. } => source.is_transient(),
            _ => true,
        }
    }

    /// The repository sync event that reports it.
    fn event_type(&self) -> EventType {
        match self {
            CheckError::Git {
                source: GitError::OverBudget(_),
                ..
            } => EventType::LimitExceeded,
            _ => EventType::CloneFailed,
        }
    }
}

/// A watched branch's new head, fetched into its mirror: what each kind of sync reads to decide
/// which of its targets the commit is relevant to.
pub(crate) struct BranchCommit<'a> {
    pub tenant: &'a Tenant,
    pub repository: &'a RepositoryKey,
    pub source: &'a LinkSource,
    pub remote: &'a Remote,
    pub mirror: &'a Mirror,
    pub branch: &'a str,
    pub head: &'a str,
}

/// What one kind of sync found in a branch's new head.
#[derive(Debug, Default)]
pub(crate) struct BranchScan {
    /// The targets the commit is relevant to, with their new desired state.
    pub advances: Vec<TargetAdvance>,
    /// How many targets the branch has in all.
    pub targets: usize,
    /// Configuration files on the branch that cannot be used, each naming the file: they fail
    /// the repository sync (after the targets that could still move did).
    pub problems: Vec<String>,
}

/// A kind's relevance: which of its targets a branch's new head moves.
pub(crate) type Scan =
    for<'a> fn(&'a Engine, &'a BranchCommit<'a>) -> BoxFuture<'a, Result<BranchScan, CheckError>>;

/// Failing remotes are retried no less often than this.
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// `{base}/{owner}/{name}.git`, where base is the host's endpoint, or the provider's public host
/// unless `git_bases` replaces it (`gitsync serve --git-base`).
pub fn remote_url(source: &LinkSource, git_bases: &ProviderBases) -> Result<String, String> {
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
        git_bases
            .get(source.provider_type)
            .or(source.provider_type.public_base_url()),
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

/// The Git credential among a connection's secrets: its token, else its ssh key.
pub fn credential(secrets: Option<&ConnectionSecrets>) -> Option<Credential> {
    let secrets = secrets?;
    if let Some(token) = &secrets.token {
        return Some(Credential::Token(token.clone()));
    }
    secrets.ssh_key.clone().map(Credential::SshKey)
}

/// How to reach a link's repository, or why it cannot be reached.
pub(crate) fn remote_for(
    source: &LinkSource,
    git_bases: &ProviderBases,
) -> Result<Remote, CheckError> {
    if source.connection_status != gitsync_model::ConnectionStatus::Available {
        return Err(CheckError::Config(format!(
            "Connection {arn} is {status}, not AVAILABLE: activate it with `gitsync connections activate {arn} --token-file FILE` \
             (or --ssh-key-file FILE for ssh, or neither for file://)",
            arn = source.connection_arn,
            status = source.connection_status
        )));
    }
    Ok(Remote::new(
        remote_url(source, git_bases).map_err(CheckError::Config)?,
        credential(source.secrets.as_ref()),
    ))
}

impl Engine {
    /// Checks one watched branch and, when it moved, runs its repository sync.
    pub(crate) async fn check_branch(&self, claim: ClaimedBranch) {
        use tracing::Instrument;
        let key = &claim.key;
        let span = tracing::info_span!("branch_check", tenant = %key.tenant, repository = %key.repository, branch = %key.branch);
        self.check_branch_in_span(claim.clone())
            .instrument(span)
            .await
    }

    async fn check_branch_in_span(&self, claim: ClaimedBranch) {
        let work = async {
            self.discover_pull_requests(&claim).await;
            match self.repository_sync(&claim).await {
                Ok(result) => result,
                Err(error) => self.branch_failed(&claim, &error).await,
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

    /// How long until the next poll of a branch (from the database's clock when it is saved).
    fn next_check(&self) -> Duration {
        jittered(self.settings.poll_interval)
    }

    /// Records a failed repository sync (once per run of failures, and whenever a sync was
    /// already queued or started), and backs off.
    async fn branch_failed(&self, claim: &ClaimedBranch, error: &CheckError) -> BranchCheckResult {
        let message = error.to_string();
        tracing::warn!(
            failures = claim.failures + 1,
            transient = error.is_transient(),
            error = %message,
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
                            &claim.key.repository,
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
                            &SyncEvent::new(error.event_type(), &message, None),
                        )
                        .await
                }
                Err(e) => Err(e),
            };
            match recorded {
                Ok(()) => gitsync_telemetry::Event::RepositorySyncEnded {
                    commit: None,
                    targets: 0,
                    affected: 0,
                    failure: Some(&message),
                }
                .emit(),
                Err(e) => tracing::warn!(error = %e, "cannot record the failed repository sync"),
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
            last_error: Some(message),
            next_check_in: wait,
        }
    }

    async fn repository_sync(
        &self,
        claim: &ClaimedBranch,
    ) -> Result<BranchCheckResult, CheckError> {
        let key = &claim.key;
        let repository = key.repository.clone();
        let Some(kind) = self.kinds.get(&key.sync_type) else {
            return Err(CheckError::Config(format!(
                "no sync kind serves {}",
                key.sync_type.as_str()
            )));
        };
        let source = match (&repository, &claim.link_source) {
            (_, Some(source)) => source.clone(),
            (RepositoryKey::Link(link_id), None) => {
                self.store.link_source(&key.tenant, link_id).await?
            }
            (RepositoryKey::Proton { provider, name }, None) => {
                self.store
                    .proton_source(&key.tenant, *provider, name)
                    .await?
            }
        };
        let remote = remote_for(&source, &self.settings.git_bases)?;
        let branch = key.branch.clone();
        let heads = remote
            .list_branches(&self.git, std::slice::from_ref(&branch))
            .await
            .map_err(CheckError::git(format!(
                "Could not list refs/heads/{branch} of {}",
                remote.url
            )))?;
        let head = heads
            .get(&branch)
            .cloned()
            .ok_or_else(|| CheckError::NoSuchBranch {
                branch: branch.clone(),
                url: remote.url.clone(),
            })?;
        if Some(&head) == claim.synced_sha.as_ref() {
            // A sync queued after the claim also made the branch due again (next_check_at = 0,
            // which `finish_branch_check` keeps): the next check, at once, takes it.
            let queued = match claim.queued_attempt_id {
                Some(_) => self.store.take_queued_attempt(claim).await?,
                None => None,
            };
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
                next_check_in: self.next_check(),
            });
        }
        let attempt = match self.store.take_queued_attempt(claim).await? {
            Some(id) => id,
            None => {
                self.store
                    .start_repository_attempt(
                        &key.tenant,
                        key.sync_type,
                        &repository,
                        &branch,
                        RepositorySyncStatus::Initiated,
                        Timestamp::now(),
                    )
                    .await?
            }
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
        let mirror = Mirror::for_url(&self.git, &remote.url).map_err(CheckError::git(format!(
            "Could not open the mirror of {}",
            remote.url
        )))?;
        let head = if mirror.has_commit(&head) {
            head
        } else {
            let fetched = {
                let _slot = self.fetch_slots.acquire().await.expect("never closed");
                remote.fetch(&self.git, std::slice::from_ref(&branch)).await
            };
            match fetched {
                Ok((_, fetched)) => fetched.get(&branch).cloned().unwrap_or(head),
                Err(e) => {
                    let error = match e {
                        GitError::NoSuchBranch(_) => CheckError::NoSuchBranch {
                            branch: branch.clone(),
                            url: remote.url.clone(),
                        },
                        other => CheckError::git(format!(
                            "Could not fetch refs/heads/{branch} from {}",
                            remote.url
                        ))(other),
                    };
                    record(
                        RepositorySyncStatus::Failed,
                        SyncEvent::new(error.event_type(), error.to_string(), None),
                    )
                    .await;
                    return Err(error);
                }
            }
        };
        record(
            RepositorySyncStatus::InProgress,
            SyncEvent::new(EventType::ConfigUpdated, "Updated configuration", None),
        )
        .await;
        // The kind of sync decides which of its targets the commit is relevant to.
        let commit = BranchCommit {
            tenant: &key.tenant,
            repository: &repository,
            source: &source,
            remote: &remote,
            mirror: &mirror,
            branch: &branch,
            head: &head,
        };
        let BranchScan {
            advances,
            targets,
            mut problems,
        } = (kind.scan)(self, &commit).await?;
        let affected = advances.len();
        self.store
            .advance_targets(&key.tenant, &repository, &branch, &advances)
            .await?;
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
        gitsync_telemetry::Event::RepositorySyncEnded {
            commit: Some(&head),
            targets,
            affected,
            failure: None,
        }
        .emit();
        Ok(BranchCheckResult {
            remote_sha: Some(head.clone()),
            synced_sha: Some(head),
            failures: 0,
            last_error: None,
            next_check_in: self.next_check(),
        })
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
            secrets: None,
        }
    }

    #[test]
    fn remote_urls_come_from_host_or_provider() {
        assert_eq!(
            remote_url(
                &source("octo", "infra", None, ProviderType::GitHub),
                &ProviderBases::default()
            )
            .unwrap(),
            "https://github.com/octo/infra.git"
        );
        assert_eq!(
            remote_url(
                &source(
                    "grp/sub",
                    "app.git",
                    Some("https://git.example.com/"),
                    ProviderType::GitLabSelfManaged
                ),
                &ProviderBases::default()
            )
            .unwrap(),
            "https://git.example.com/grp/sub/app.git"
        );
        assert_eq!(
            remote_url(
                &source(
                    "o",
                    "r",
                    Some("file:///srv/git"),
                    ProviderType::GitHubEnterpriseServer
                ),
                &ProviderBases::default()
            )
            .unwrap(),
            "file:///srv/git/o/r.git"
        );
        assert!(
            remote_url(
                &source("o", "r", None, ProviderType::GitLabSelfManaged),
                &ProviderBases::default()
            )
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
                remote_url(
                    &source(owner, repo, None, ProviderType::GitHub),
                    &ProviderBases::default()
                )
                .is_err(),
                "{owner}/{repo}"
            );
        }
        assert!(
            remote_url(
                &source(
                    "o",
                    "r",
                    Some("ext::sh"),
                    ProviderType::GitHubEnterpriseServer
                ),
                &ProviderBases::default()
            )
            .is_err()
        );
    }

    #[test]
    fn pending_connections_name_the_command_that_fixes_them() {
        let mut s = source("o", "r", None, ProviderType::GitHub);
        s.connection_status = ConnectionStatus::Pending;
        let message = remote_for(&s, &ProviderBases::default())
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("gitsync connections activate arn"),
            "{message}"
        );
    }

    #[test]
    fn stored_credentials_are_read() {
        let read = |json: &[u8]| credential(ConnectionSecrets::parse(json).as_ref());
        assert!(matches!(read(br#"{"token":"t"}"#), Some(Credential::Token(t)) if t == "t"));
        assert!(matches!(read(br#"{"ssh_key":"k"}"#), Some(Credential::SshKey(k)) if k == "k"));
        // An API token alone is no Git credential.
        assert!(read(br#"{"api_token":"a"}"#).is_none());
        assert!(read(b"{}").is_none());
        assert!(credential(None).is_none());
    }
}
