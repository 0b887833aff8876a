//! Proton service sync (`SERVICE_SYNC`): the proton-ops file of a service sync configuration
//! names, per instance, a branch and a spec file. Each instance is a target; a commit that
//! changes its spec file (or its entry in the ops file) deploys that instance, and only it.

use crate::Engine;
use crate::attempt::{AttemptProgress, Ending, SyncKind};
use crate::repository::{BranchCommit, BranchScan, CheckError};
use gitsync_deploy::spec::{OpsEntry, OpsFile, ServiceSpec, plan_instance};
use gitsync_deploy::{BoxFuture, Progress};
use gitsync_model::{DeploymentStatus, EventType, SyncEvent};
use gitsync_model::{ProtonProvider, Revision, SyncTarget, SyncType};
use gitsync_store::{ClaimedTarget, Release, RepositoryKey, StoreError, TargetAdvance};
use std::collections::BTreeMap;
use std::time::Duration;

/// How often an attempt looks at the deployment it waits for.
const DEPLOYMENT_POLL: Duration = Duration::from_millis(500);

/// One instance of one service: what a service sync target is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncedInstance {
    pub service: String,
    pub instance: String,
}

impl SyncedInstance {
    pub fn target(&self) -> SyncTarget {
        SyncTarget::ServiceInstance {
            service_name: self.service.clone(),
            instance_name: self.instance.clone(),
        }
    }

    /// The instance a service instance target names.
    pub fn of(target: &SyncTarget) -> Option<SyncedInstance> {
        match target {
            SyncTarget::ServiceInstance {
                service_name,
                instance_name,
            } => Some(SyncedInstance {
                service: service_name.clone(),
                instance: instance_name.clone(),
            }),
            _ => None,
        }
    }
}

impl SyncKind for SyncedInstance {
    fn target(&self) -> SyncTarget {
        SyncedInstance::target(self)
    }

    fn run<'a>(
        &'a self,
        engine: &'a Engine,
        claim: &'a ClaimedTarget,
        progress: &'a AttemptProgress,
    ) -> BoxFuture<'a, Ending> {
        Box::pin(engine.sync_service_instance(claim, self, progress))
    }
}

/// The instance a claimed target names, while its service has a service sync configuration
/// (turned off, its instances stay as they are).
pub(crate) fn load<'a>(
    engine: &'a Engine,
    claim: &'a ClaimedTarget,
) -> BoxFuture<'a, Result<Box<dyn SyncKind>, Release>> {
    Box::pin(async move {
        let instance = SyncedInstance::of(&claim.target).ok_or(Release::Settle)?;
        match engine
            .store
            .get_service_sync_config(&claim.tenant, &instance.service)
            .await
        {
            Ok(_) => Ok(Box::new(instance) as Box<dyn SyncKind>),
            Err(StoreError::NotFound(_)) => Err(Release::Settle),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the service sync configuration");
                Err(Release::KeepDue)
            }
        }
    })
}

/// The service instances of a Proton repository's branch that its new head is relevant to.
pub(crate) fn scan<'a>(
    engine: &'a Engine,
    commit: &'a BranchCommit<'a>,
) -> BoxFuture<'a, Result<BranchScan, CheckError>> {
    Box::pin(async move {
        let RepositoryKey::Proton { provider, name } = commit.repository else {
            return Ok(BranchScan::default());
        };
        engine
            .relevant_service_instances(commit, *provider, name)
            .await
    })
}

/// The instances one ops file assigns to `branch`, with what each watches: its ops entry, and
/// its own entry in the spec file (or the file's id when the file cannot be read as a spec, so
/// that the attempt reports why).
fn instances_on(
    snapshot: &gitsync_git::Snapshot,
    service: &str,
    entries: &std::collections::BTreeMap<String, OpsEntry>,
    branch: &str,
) -> Vec<(SyncedInstance, OpsEntry, String)> {
    let mut specs: std::collections::HashMap<&str, Option<ServiceSpec>> = Default::default();
    entries
        .iter()
        .filter(|(_, e)| e.branch == branch)
        .map(|(instance, entry)| {
            let spec = specs.entry(&entry.spec).or_insert_with(|| {
                let bytes = snapshot.read_file(&entry.spec).ok().flatten()?;
                ServiceSpec::parse(&entry.spec, &String::from_utf8_lossy(&bytes)).ok()
            });
            let watched = match spec.as_ref().and_then(|s| s.fingerprint(instance)) {
                Some(fingerprint) => serde_json::Value::String(fingerprint),
                None => snapshot
                    .entry_id(&entry.spec)
                    .ok()
                    .flatten()
                    .map(serde_json::Value::String)
                    .unwrap_or(serde_json::Value::Null),
            };
            let ids = serde_json::json!({
                "entry": { "branch": entry.branch, "spec": entry.spec },
                "instance": watched,
            })
            .to_string();
            (
                SyncedInstance {
                    service: service.to_string(),
                    instance: instance.clone(),
                },
                entry.clone(),
                ids,
            )
        })
        .collect()
}

impl Engine {
    /// The instances a commit on `branch` is relevant to, over every service whose ops file is
    /// in this repository. The ops file is read at its own branch's head; when this branch
    /// holds it, the branches it names are recorded (so they are watched) and re-read.
    /// Problems with ops files read from this branch, each naming the file, fail the branch's
    /// repository sync.
    async fn relevant_service_instances(
        &self,
        commit: &BranchCommit<'_>,
        provider: ProtonProvider,
        name: &str,
    ) -> Result<BranchScan, CheckError> {
        let (tenant, source, remote, mirror, branch, head) = (
            commit.tenant,
            commit.source,
            commit.remote,
            commit.mirror,
            commit.branch,
            commit.head,
        );
        let configs = self
            .store
            .service_sync_configs_in(tenant, provider, name)
            .await?;
        let watches = self
            .store
            .target_watches(tenant, SyncType::ServiceSync)
            .await?;
        let mut scan = BranchScan::default();
        let key = RepositoryKey::Proton {
            provider,
            name: name.to_string(),
        };
        for config in configs {
            let own = config.branch == branch;
            // Where the ops file is read: this commit, or the head its own branch was last
            // synced at (by any replica; listed from the remote before its first check).
            let ops_commit = if own {
                head.to_string()
            } else {
                let synced = self
                    .store
                    .synced_head(tenant, SyncType::ServiceSync, &key, &config.branch)
                    .await?;
                let wanted = std::slice::from_ref(&config.branch);
                let sha = match synced {
                    Some(sha) => sha,
                    None => remote
                        .list_branches(&self.git, wanted)
                        .await
                        .map_err(CheckError::git(format!(
                            "Could not list refs/heads/{} of {}",
                            config.branch, remote.url
                        )))?
                        .get(&config.branch)
                        .cloned()
                        .ok_or_else(|| {
                            CheckError::Config(format!(
                                "Branch {} (holding {} of service {}) does not exist in {}",
                                config.branch, config.file_path, config.service_name, remote.url
                            ))
                        })?,
                };
                if !mirror.has_commit(&sha) {
                    let _slot = self.fetch_slots.acquire().await.expect("never closed");
                    remote
                        .fetch(&self.git, wanted)
                        .await
                        .map_err(CheckError::git(format!(
                            "Could not fetch refs/heads/{} from {}",
                            config.branch, remote.url
                        )))?;
                }
                sha
            };
            let found = {
                let read = || {
                    CheckError::git(format!(
                        "Could not read {} at commit {ops_commit}",
                        config.file_path
                    ))
                };
                let snapshot = mirror.at(&ops_commit).map_err(read())?;
                let ops = match snapshot.read_file(&config.file_path) {
                    Ok(Some(bytes)) => {
                        OpsFile::parse(&config.file_path, &String::from_utf8_lossy(&bytes))
                    }
                    Ok(None) => Err(vec![format!(
                        "{}: no such file on branch {} at commit {ops_commit} (service {})",
                        config.file_path, config.branch, config.service_name
                    )]),
                    Err(e) => return Err(read()(e)),
                };
                match ops {
                    Err(problems) => Err(problems),
                    Ok(ops) => match ops.services.get(&config.service_name) {
                        None => Err(vec![format!(
                            "{}: sync.services has no entry for service {}",
                            config.file_path, config.service_name
                        )]),
                        Some(entries) => {
                            // The entries on each other branch, as the ops file now says.
                            let mut others: BTreeMap<
                                String,
                                serde_json::Map<String, serde_json::Value>,
                            > = BTreeMap::new();
                            for (instance, entry) in
                                entries.iter().filter(|(_, e)| e.branch != config.branch)
                            {
                                others.entry(entry.branch.clone()).or_default().insert(
                                    instance.clone(),
                                    serde_json::Value::String(entry.spec.clone()),
                                );
                            }
                            let others: BTreeMap<String, String> = others
                                .into_iter()
                                .map(|(b, m)| (b, serde_json::Value::Object(m).to_string()))
                                .collect();
                            let here = if entries.values().any(|e| e.branch == branch) {
                                let at_head = mirror.at(head).map_err(CheckError::git(format!(
                                    "Could not read commit {head}"
                                )))?;
                                instances_on(&at_head, &config.service_name, entries, branch)
                            } else {
                                Vec::new()
                            };
                            Ok((others, here))
                        }
                    },
                }
            };
            let (others, here) = match found {
                Ok(found) => found,
                Err(problems) => {
                    // Reported by the check of the branch that holds the ops file.
                    if own {
                        scan.problems.extend(problems);
                    }
                    continue;
                }
            };
            if own {
                // Branches whose entries the ops file changed look at their heads again (a ref
                // listing each; no fetch when they did not move). Unchanged ones are left alone.
                let changed = self
                    .store
                    .set_service_sync_branches(tenant, &config.service_name, &others)
                    .await?;
                let changed: Vec<String> = changed.into_iter().filter(|b| b != branch).collect();
                if !changed.is_empty() {
                    self.store
                        .reevaluate_branches(tenant, SyncType::ServiceSync, &key, &changed)
                        .await?;
                }
            }
            scan.targets += here.len();
            for (instance, entry, ids) in here {
                let target = instance.target();
                let relevant = watches
                    .get(&target.key())
                    .is_none_or(|w| w.watched_ids.as_deref() != Some(ids.as_str()));
                if relevant {
                    scan.advances.push(TargetAdvance {
                        target,
                        directory: entry.spec.clone(),
                        revision: Revision {
                            branch: branch.to_string(),
                            directory: entry.spec,
                            owner_id: source.owner_id.clone(),
                            repository_name: source.repository_name.clone(),
                            provider_type: provider.as_str().to_string(),
                            sha: head.to_string(),
                        },
                        watched_ids: ids,
                    });
                }
            }
        }
        Ok(scan)
    }

    /// Reads the instance's spec at the target commit, checks it against the service template
    /// version and the environment, starts the instance's deployment and ends as it ends.
    pub(crate) async fn sync_service_instance(
        &self,
        claim: &ClaimedTarget,
        target: &SyncedInstance,
        progress: &AttemptProgress,
    ) -> Ending {
        let sha = &claim.desired.sha;
        let path = &claim.desired.directory;
        let invalid = |mut problems: Vec<String>| {
            gitsync_model::security::cap_list(&mut problems, 100, |n| {
                format!("{n} more problem(s) left out")
            });
            Ending::invalid(problems)
        };
        let mirror = match self.proton_commit(claim).await {
            Ok(m) => m,
            Err(ending) => return ending,
        };
        let text = match mirror.at(sha).and_then(|s| s.read_file(path)) {
            Ok(Some(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
            Ok(None) => {
                return invalid(vec![format!(
                    "{path}: no such file on branch {} at commit {sha}",
                    claim.branch
                )]);
            }
            Err(e) => {
                return Ending::Transient(
                    vec![SyncEvent::new(EventType::SourceFailed, e.to_string(), None)],
                    e.to_string(),
                );
            }
        };
        let spec = match ServiceSpec::parse(path, &text) {
            Ok(s) => s,
            Err(p) => return invalid(vec![p]),
        };
        let Some(instance) = spec.instance(&target.instance) else {
            return invalid(vec![format!(
                "{path}: lists no instance named {} (it lists: {})",
                target.instance,
                spec.instances
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )]);
        };
        // An existing instance stays on its major version; a new one takes the service's.
        let major = match self
            .store
            .get_service_instance(&claim.tenant, &target.service, &target.instance)
            .await
        {
            Ok(current) => Some(current.template.major),
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Ending::Transient(vec![], e.to_string()),
        };
        let context = match self
            .store
            .instance_context(
                &claim.tenant,
                &target.service,
                &instance.environment,
                major,
                None,
            )
            .await
        {
            Ok(c) => c,
            // A missing service or environment, or an unpublished version, is fixed through
            // the API rather than in Git: retried with backoff, so the fix is picked up.
            Err(StoreError::NotFound(m) | StoreError::Invalid(m)) => {
                let m = format!("instance {}: {m}", target.instance);
                return Ending::Transient(
                    vec![SyncEvent::new(EventType::ValidationFailed, &m, None)],
                    m,
                );
            }
            Err(e) => return Ending::Transient(vec![], e.to_string()),
        };
        let deployment = match plan_instance(
            instance,
            &context.version,
            &context.environment,
            None,
            Some(sha),
        ) {
            Ok(d) => d,
            Err(problems) => return invalid(problems),
        };
        // A worker taking this attempt over first waits for the deployment the stopped worker
        // started: the instance takes one deployment at a time. When it was of this commit,
        // the attempt ends as it ended.
        if let Some(abandoned) = claim.abandoned_attempt_id {
            match self.store.deployment_of_attempt(abandoned).await {
                Ok(Some((id, commit))) => {
                    let ended = self.await_deployment(claim, &id, target, progress).await;
                    if commit.as_deref() == Some(sha.as_str()) {
                        return ended;
                    }
                }
                Ok(None) => {}
                Err(e) => return Ending::Transient(vec![], e.to_string()),
            }
        }
        let started = self
            .store
            .start_synced_deployment(
                claim,
                progress.attempt_id(),
                &target.service,
                &target.instance,
                &deployment,
            )
            .await;
        let done = match started {
            Ok(done) => done,
            // A blocker raised while this attempt ran (a change through the API) wins.
            Err(StoreError::Conflict(m)) => {
                return Ending::Failed(vec![SyncEvent::new(EventType::Blocked, &m, None)], m);
            }
            // A deployment made through the API is still running: tried again after it.
            Err(StoreError::StillInUse(m)) => return Ending::Transient(vec![], m),
            Err(StoreError::NotFound(m) | StoreError::Invalid(m)) => {
                let m = format!("instance {}: {m}", target.instance);
                return Ending::Transient(
                    vec![SyncEvent::new(EventType::ValidationFailed, &m, None)],
                    m,
                );
            }
            Err(e) => return Ending::Transient(vec![], e.to_string()),
        };
        progress
            .report(SyncEvent::new(
                EventType::DeploymentStarted,
                format!(
                    "Deployment {} of service instance {} {} with service template {} {}.{} into environment {} started from {path}",
                    done.deployment_id,
                    target.instance,
                    if done.created { "(new)" } else { "(update)" },
                    deployment.template.name,
                    deployment.template.major,
                    deployment.template.minor,
                    instance.environment,
                ),
                Some(&done.deployment_id),
            ))
            .await;
        self.await_deployment(claim, &done.deployment_id, target, progress)
            .await
    }

    /// Waits for a deployment to end, copying its events to the attempt as they come, and
    /// ends the attempt as the deployment ended.
    async fn await_deployment(
        &self,
        claim: &ClaimedTarget,
        deployment_id: &str,
        target: &SyncedInstance,
        progress: &AttemptProgress,
    ) -> Ending {
        let mut seen = 0;
        loop {
            match self.store.deployment_events(deployment_id, seen).await {
                Ok(events) => {
                    for (seq, event) in events {
                        seen = seq;
                        progress.report(event).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the deployment's events"),
            }
            let (status, message) = match self
                .store
                .deployment_status(&claim.tenant, deployment_id)
                .await
            {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the deployment's status");
                    tokio::time::sleep(DEPLOYMENT_POLL).await;
                    continue;
                }
            };
            let message = message.unwrap_or_default();
            let what = format!(
                "Deployment {deployment_id} of service instance {} of service {}",
                target.instance, target.service
            );
            match status {
                DeploymentStatus::InProgress => tokio::time::sleep(DEPLOYMENT_POLL).await,
                DeploymentStatus::Succeeded => {
                    let event = SyncEvent::new(
                        EventType::DeploymentSucceeded,
                        format!("{what} succeeded: {message}"),
                        Some(deployment_id),
                    );
                    return if message == gitsync_model::VALIDATE_ONLY {
                        Ending::Succeeded(vec![event])
                    } else {
                        Ending::Deployed(vec![event])
                    };
                }
                other => {
                    let m = format!("{what} ended {}: {message}", other.as_str());
                    return Ending::DeployFailed(
                        vec![SyncEvent::new(
                            EventType::DeploymentFailed,
                            &m,
                            Some(deployment_id),
                        )],
                        m,
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_are_read_from_their_targets() {
        let t = SyncedInstance {
            service: "api".into(),
            instance: "dev".into(),
        };
        assert_eq!(SyncedInstance::of(&t.target()), Some(t));
        let stack = SyncTarget::CfnStack {
            stack_name: "api".into(),
        };
        assert_eq!(SyncedInstance::of(&stack), None);
    }

    /// Service sync's relevance, in the engine: what each instance on a branch watches is its
    /// ops entry and its own entry in the spec file, so a change to one instance of a shared
    /// spec file moves only that instance, and instances on other branches are not read.
    #[tokio::test]
    async fn an_instance_watches_its_ops_entry_and_its_own_entry_in_the_spec() {
        let kit = crate::testkit::Kit::new().await;
        let repo = kit.repo("octo", "services");
        let spec = |port: u16| {
            format!(
                "proton: ServiceSpec\ninstances:\n  - name: dev\n    environment: env\n    spec:\n      port: 80\n  \
                 - name: prod\n    environment: env\n    spec:\n      port: {port}\n"
            )
        };
        let remote = gitsync_git::Remote::new(
            format!(
                "file://{}",
                kit.repos_dir().join("octo/services.git").display()
            ),
            None,
        );
        // Fetches are one commit deep: fetch each commit as a branch check would.
        let fetch = || async {
            remote
                .fetch(&kit.engine.git, &["main".to_string()])
                .await
                .unwrap()
                .0
        };
        let first = repo.commit(&[("specs/api.yaml", Some(&spec(80)))]);
        fetch().await;
        let second = repo.commit(&[("specs/api.yaml", Some(&spec(443)))]);
        let mirror = fetch().await;
        let entry = |branch: &str| OpsEntry {
            branch: branch.into(),
            spec: "specs/api.yaml".into(),
        };
        let entries: BTreeMap<String, OpsEntry> = [
            ("dev".to_string(), entry("main")),
            ("prod".to_string(), entry("main")),
            ("qa".to_string(), entry("release")),
        ]
        .into();
        let watched = |sha: &str| -> BTreeMap<String, String> {
            instances_on(&mirror.at(sha).unwrap(), "api", &entries, "main")
                .into_iter()
                .map(|(instance, _, ids)| (instance.instance, ids))
                .collect()
        };
        let (before, after) = (watched(&first), watched(&second));
        assert_eq!(
            before.keys().collect::<Vec<_>>(),
            ["dev", "prod"],
            "only the instances on the checked branch"
        );
        assert_eq!(before["dev"], after["dev"], "dev's entry did not change");
        assert_ne!(before["prod"], after["prod"], "prod's port changed");
        // The ops entry is watched too: the same spec under another path moves the instance.
        let moved_entries: BTreeMap<String, OpsEntry> = [(
            "dev".to_string(),
            OpsEntry {
                branch: "main".into(),
                spec: "./specs/api.yaml".into(),
            },
        )]
        .into();
        let moved = instances_on(&mirror.at(&second).unwrap(), "api", &moved_entries, "main");
        assert_ne!(moved[0].2, after["dev"]);
    }
}
