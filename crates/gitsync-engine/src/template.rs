//! Proton template sync (`TEMPLATE_SYNC`): each `v<major>/` directory of a synced template is a
//! target; a commit that changes one registers the next minor version of that major.

use crate::Engine;
use crate::attempt::{AttemptProgress, Ending, SyncKind};
use crate::repository::{BranchCommit, BranchScan, CheckError, remote_for};
use gitsync_deploy::BoxFuture;
use gitsync_deploy::proton::Family;
use gitsync_deploy::sandbox::{Job, Outcome};
use gitsync_git::Mirror;
use gitsync_model::{EventType, SyncEvent};
use gitsync_model::{ProtonProvider, Revision, SyncTarget, TemplateSyncConfig, TemplateType};
use gitsync_store::{
    Applied, ClaimedTarget, Effect, NewTemplateVersion, Release, RepositoryKey, StoreError,
    TargetAdvance,
};

/// The most files a bundle may have (the registry allows 10 template files plus schema,
/// manifests and registration); more is refused before reading them all.
const MAX_BUNDLE_FILES: usize = 64;

/// One major version of one template: what a template sync target is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateMajor {
    pub template_type: TemplateType,
    pub name: String,
    pub major: i64,
}

impl TemplateMajor {
    pub fn target(&self) -> SyncTarget {
        SyncTarget::TemplateVersion {
            template_name: self.name.clone(),
            template_type: self.template_type,
            major: self.major.to_string(),
        }
    }

    /// The major a template version target names.
    pub fn of(target: &SyncTarget) -> Option<TemplateMajor> {
        match target {
            SyncTarget::TemplateVersion {
                template_name,
                template_type,
                major,
            } => Some(TemplateMajor {
                template_type: *template_type,
                name: template_name.clone(),
                major: major.parse().ok()?,
            }),
            _ => None,
        }
    }
}

impl SyncKind for TemplateMajor {
    fn target(&self) -> SyncTarget {
        TemplateMajor::target(self)
    }

    fn run<'a>(
        &'a self,
        engine: &'a Engine,
        claim: &'a ClaimedTarget,
        _progress: &'a AttemptProgress,
    ) -> BoxFuture<'a, Ending> {
        Box::pin(engine.sync_template_source(claim, self))
    }
}

/// The template major a claimed target names.
pub(crate) fn load<'a>(
    _engine: &'a Engine,
    claim: &'a ClaimedTarget,
) -> BoxFuture<'a, Result<Box<dyn SyncKind>, Release>> {
    Box::pin(async move {
        TemplateMajor::of(&claim.target)
            .map(|major| Box::new(major) as Box<dyn SyncKind>)
            .ok_or(Release::Settle)
    })
}

/// `v<major>` directory names: `v0`, `v1`, `v12` (no leading zeros, as version parts have none).
fn major_of(dir: &str) -> Option<i64> {
    let digits = dir.strip_prefix('v')?;
    let valid = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if valid { digits.parse().ok() } else { None }
}

/// Where a template's `v<major>` directories are: `subdirectory/name`, or the first directory
/// named like the template (breadth first, shallowest first, at most 4 levels down).
fn template_dir(
    snapshot: &gitsync_git::Snapshot,
    config: &TemplateSyncConfig,
) -> Result<Option<String>, gitsync_git::GitError> {
    if let Some(sub) = &config.subdirectory {
        let path = format!("{}/{}", sub.trim_matches('/'), config.template_name);
        return Ok(snapshot.list_dir(&path)?.map(|_| path));
    }
    snapshot.find_dir_named(&config.template_name, 4)
}

/// The template majors of a Proton repository's branch that its new head changed.
pub(crate) fn scan<'a>(
    engine: &'a Engine,
    commit: &'a BranchCommit<'a>,
) -> BoxFuture<'a, Result<BranchScan, CheckError>> {
    Box::pin(async move {
        let RepositoryKey::Proton { provider, name } = commit.repository else {
            return Ok(BranchScan::default());
        };
        let configs = engine
            .store
            .template_sync_configs_on(commit.tenant, *provider, name, commit.branch)
            .await?;
        let (advances, targets) = engine
            .relevant_template_majors(commit, *provider, &configs)
            .await?;
        Ok(BranchScan {
            advances,
            targets,
            problems: Vec::new(),
        })
    })
}

impl Engine {
    /// The mirror of a Proton repository target's repository, holding the target's commit
    /// (fetched when this replica does not have it yet).
    pub(crate) async fn proton_commit(&self, claim: &ClaimedTarget) -> Result<Mirror, Ending> {
        let sha = &claim.desired.sha;
        let transient = |m: String| {
            Ending::Transient(vec![SyncEvent::new(EventType::SourceFailed, &m, None)], m)
        };
        let RepositoryKey::Proton { provider, name } = claim.repository.clone() else {
            return Err(Ending::Failed(vec![], "not a Proton repository".into()));
        };
        let source = self
            .store
            .proton_source(&claim.tenant, provider, &name)
            .await
            .map_err(|e| transient(e.to_string()))?;
        let remote =
            remote_for(&source, &self.settings.git_bases).map_err(|e| transient(e.to_string()))?;
        let mirror =
            Mirror::for_url(&self.git, &remote.url).map_err(|e| transient(e.to_string()))?;
        if !mirror.has_commit(sha)
            && remote
                .fetch(&self.git, std::slice::from_ref(&claim.branch))
                .await
                .is_err()
        {
            return Err(transient(format!(
                "Could not fetch commit {sha} from {}",
                remote.url
            )));
        }
        Ok(mirror)
    }

    /// The template majors a commit changed: every `v<major>/` of every synced template whose
    /// tree id differs from the one at its desired commit (or that is new).
    async fn relevant_template_majors(
        &self,
        commit: &BranchCommit<'_>,
        provider: ProtonProvider,
        configs: &[TemplateSyncConfig],
    ) -> Result<(Vec<TargetAdvance>, usize), CheckError> {
        let (tenant, source, mirror, branch, head) = (
            commit.tenant,
            commit.source,
            commit.mirror,
            commit.branch,
            commit.head,
        );
        let watches = self
            .store
            .target_watches(tenant, gitsync_model::SyncType::TemplateSync)
            .await?;
        // Read the trees off the async runtime (a walk of a hostile repository is bounded, but
        // still work): gix repositories cannot be held across an await anyway.
        let found = {
            let (mirror, commit) = (mirror.clone(), head.to_string());
            let wanted: Vec<(usize, TemplateSyncConfig)> =
                configs.iter().cloned().enumerate().collect();
            tokio::task::spawn_blocking(move || -> Result<Vec<_>, CheckError> {
                let read =
                    || CheckError::git(format!("Could not read the templates at commit {commit}"));
                let snapshot = mirror.at(&commit).map_err(read())?;
                let mut found = Vec::new();
                for (index, config) in &wanted {
                    let Some(dir) = template_dir(&snapshot, config).map_err(read())? else {
                        continue;
                    };
                    let Some(entries) = snapshot.list_dir(&dir).map_err(read())? else {
                        continue;
                    };
                    for entry in entries.iter().filter(|e| e.is_dir) {
                        if let Some(major) = major_of(&entry.name) {
                            found.push((
                                *index,
                                major,
                                format!("{dir}/{}", entry.name),
                                entry.id.clone(),
                            ));
                        }
                    }
                }
                Ok(found)
            })
            .await
            .map_err(|e| CheckError::Interrupted {
                commit: head.to_string(),
                message: e.to_string(),
            })??
        };
        let targets = found.len();
        let mut advances = Vec::new();
        for (index, major, directory, tree) in found {
            let config = &configs[index];
            let target = TemplateMajor {
                template_type: config.template_type,
                name: config.template_name.clone(),
                major,
            }
            .target();
            let ids = serde_json::json!({ "tree": tree }).to_string();
            let relevant = match watches.get(&target.key()) {
                None => true,
                Some(w) if w.watched_ids.as_deref() != Some(ids.as_str()) => true,
                // Unchanged bundle: register again only if the version it registered was deleted.
                Some(w) => match (&w.desired_sha, &w.applied_sha) {
                    (Some(desired), Some(applied)) if desired == applied => self
                        .store
                        .template_version_from_commit(
                            tenant,
                            config.template_type,
                            &config.template_name,
                            major,
                            desired,
                        )
                        .await?
                        .is_none(),
                    _ => false,
                },
            };
            if relevant {
                advances.push(TargetAdvance {
                    target,
                    directory: directory.clone(),
                    revision: Revision {
                        branch: branch.to_string(),
                        directory,
                        owner_id: source.owner_id.clone(),
                        repository_name: source.repository_name.clone(),
                        provider_type: provider.as_str().to_string(),
                        sha: head.to_string(),
                    },
                    watched_ids: ids,
                });
            }
        }
        Ok((advances, targets))
    }

    /// Reads a major's bundle at the target commit, checks it, and registers the next minor.
    pub(crate) async fn sync_template_source(
        &self,
        claim: &ClaimedTarget,
        major: &TemplateMajor,
    ) -> Ending {
        let sha = &claim.desired.sha;
        let transient = |m: String| {
            Ending::Transient(vec![SyncEvent::new(EventType::SourceFailed, &m, None)], m)
        };
        let mirror = match self.proton_commit(claim).await {
            Ok(m) => m,
            Err(ending) => return ending,
        };
        let read = {
            let (sha, directory) = (sha.clone(), claim.desired.directory.clone());
            tokio::task::spawn_blocking(move || {
                mirror
                    .at(&sha)
                    .and_then(|s| s.files_under(&directory, MAX_BUNDLE_FILES))
            })
            .await
        };
        let files = match read {
            Ok(Ok(Some(files))) => files,
            Ok(Ok(None)) => {
                let m = format!(
                    "{}: no such directory at commit {sha}",
                    claim.desired.directory
                );
                return Ending::Failed(
                    vec![SyncEvent::new(EventType::ValidationFailed, &m, None)],
                    m,
                );
            }
            Ok(Err(e)) if !e.is_transient() => {
                let m = e.to_string();
                return Ending::Failed(
                    vec![SyncEvent::new(EventType::LimitExceeded, &m, Some(sha))],
                    m,
                );
            }
            Ok(Err(e)) => return transient(e.to_string()),
            Err(e) => return transient(format!("reading commit {sha} failed: {e}")),
        };
        let family = match major.template_type {
            TemplateType::Environment => Family::Environment,
            TemplateType::Service => Family::Service,
        };
        let job = Job::CheckBundle {
            family,
            files: files.clone(),
        };
        let checked = match self.settings.render_isolation.run(job).await {
            Ok(Outcome::Checked(checked)) => checked,
            Ok(other) => unreachable!("a bundle check answered {other:?}"),
            Err(limit) => {
                let m = format!("{}: {limit}", claim.desired.directory);
                return Ending::Failed(
                    vec![SyncEvent::new(EventType::LimitExceeded, &m, Some(sha))],
                    m,
                );
            }
        };
        let bundle = match checked {
            Ok(b) => b,
            Err(problems) => {
                return Ending::invalid(
                    problems
                        .into_iter()
                        .map(|p| format!("{}/{p}", claim.desired.directory))
                        .collect(),
                );
            }
        };
        let kind = match major.template_type {
            TemplateType::Environment => "Environment",
            TemplateType::Service => "Service",
        };
        let new = NewTemplateVersion {
            major: major.major,
            description: Some(format!("Synced from commit {sha}")),
            schema: Some(bundle.schema),
            compatible_environments: bundle.compatible_environments,
            supported_component_sources: bundle.supported_component_sources,
            source_commit: Some(sha.clone()),
            files,
        };
        let effect = Effect::RegisterTemplateVersion {
            template_type: major.template_type,
            name: major.name.clone(),
            version: new,
        };
        let (name, major_version, sha) = (major.name.clone(), major.major, sha.clone());
        Ending::Apply(
            Box::new(effect),
            Box::new(move |applied| match applied {
                Ok(Applied::Registered(v)) => Ending::Succeeded(vec![SyncEvent::new(
                    EventType::VersionRegistered,
                    format!(
                        "Registered {} template {name} version {}.{} (DRAFT)",
                        kind.to_lowercase(),
                        v.major,
                        v.minor
                    ),
                    Some(&v.arn),
                )]),
                // A retry (sync now, a taken-over attempt) of a commit whose version is
                // registered already registers nothing: one commit, one version.
                Ok(Applied::AlreadyRegistered(v)) => Ending::Succeeded(vec![SyncEvent::new(
                    EventType::NoChanges,
                    format!(
                        "{kind} template {name} version {major_version}.{} is registered from commit {sha} already; nothing registered",
                        v.minor
                    ),
                    Some(&v.arn),
                )]),
                Ok(other) => unreachable!("a template registration applied as {other:?}"),
                // Fixed through the API, not by a commit: retried with backoff, and at once
                // when the template is created.
                Err(StoreError::NotFound(_)) => {
                    let m = format!(
                        "{kind} template {name} does not exist: create it with Create{kind}Template; the sync is retried with backoff, and at once when the template is created"
                    );
                    Ending::Transient(
                        vec![SyncEvent::new(EventType::ValidationFailed, &m, None)],
                        m,
                    )
                }
                Err(e) => {
                    let m = e.to_string();
                    Ending::Transient(vec![SyncEvent::new(EventType::SourceFailed, &m, None)], m)
                }
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn major_directories_and_targets() {
        assert_eq!(major_of("v1"), Some(1));
        assert_eq!(major_of("v0"), Some(0));
        assert_eq!(major_of("v12"), Some(12));
        for bad in ["v", "v01", "1", "va", "version1"] {
            assert_eq!(major_of(bad), None, "{bad}");
        }
        let m = TemplateMajor {
            template_type: TemplateType::Service,
            name: "api".into(),
            major: 3,
        };
        assert_eq!(TemplateMajor::of(&m.target()), Some(m));
    }

    /// Template sync's relevance, in the engine: a commit moves exactly the majors whose
    /// `v<major>/` directory it changed (or added), of the templates synced from the branch.
    #[tokio::test]
    async fn a_commit_moves_the_majors_whose_directory_changed() {
        use crate::testkit::{Kit, moved};
        use gitsync_model::{SyncType, TemplateSyncConfig};
        let kit = Kit::new().await;
        let repo = kit.repo("octo", "templates");
        repo.commit(&[("README.md", Some("hi"))]);
        let provider = ProtonProvider::GitHubEnterprise;
        kit.store
            .create_proton_repository(
                &kit.tenant,
                provider,
                "octo/templates",
                &kit.connection_arn,
                None,
                &[],
            )
            .await
            .unwrap();
        let spec = gitsync_store::TemplateSpec {
            name: "vpc".into(),
            display_name: None,
            description: None,
            encryption_key: None,
            provisioning: None,
        };
        kit.store
            .create_template(&kit.tenant, TemplateType::Environment, &spec, &[])
            .await
            .unwrap();
        kit.store
            .create_template_sync_config(
                &kit.tenant,
                &TemplateSyncConfig {
                    template_name: "vpc".into(),
                    template_type: TemplateType::Environment,
                    repository_provider: provider,
                    repository_name: "octo/templates".into(),
                    branch: "main".into(),
                    subdirectory: None,
                },
            )
            .await
            .unwrap();
        let key = RepositoryKey::Proton {
            provider,
            name: "octo/templates".into(),
        };
        let check = || kit.check_main(SyncType::TemplateSync, &key);
        let none: Vec<String> = Vec::new();
        assert_eq!(moved(&check().await), none, "no template directory yet");
        repo.commit(&[
            ("vpc/v1/schema/schema.yaml", Some("schema: 1")),
            ("vpc/v1/infrastructure/cloudformation.yaml", Some("a: 1")),
        ]);
        let first = check().await;
        assert_eq!((moved(&first), first.targets), (vec!["vpc:1".into()], 1));
        repo.commit(&[("README.md", Some("changed"))]);
        assert_eq!(moved(&check().await), none, "outside the template");
        repo.commit(&[("vpc/v2/schema/schema.yaml", Some("schema: 2"))]);
        let added = check().await;
        assert_eq!((moved(&added), added.targets), (vec!["vpc:2".into()], 2));
        repo.commit(&[("vpc/v1/infrastructure/cloudformation.yaml", Some("a: 2"))]);
        assert_eq!(moved(&check().await), ["vpc:1"]);
        repo.commit(&[("other/v1/schema/schema.yaml", Some("x"))]);
        assert_eq!(moved(&check().await), none, "a template nobody syncs");
    }
}
