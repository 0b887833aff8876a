//! What the engine's own tests run on: a real SQLite store, a real Git repository served over
//! `file://`, and an engine that validates stacks without deploying them.

use crate::repository::{BranchCommit, BranchScan, remote_for};
use crate::{Engine, EngineSettings};
use gitsync_git::{GitSettings, Mirror};
use gitsync_model::{
    ArnService, HostSpec, Limits, ProviderType, RepositoryLinkSpec, SyncType, Tenant,
};
use gitsync_store::{MasterKey, RepositoryKey, Store};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

pub(crate) struct Kit {
    pub engine: Arc<Engine>,
    pub store: Store,
    pub tenant: Tenant,
    /// A connection through a host whose endpoint is the directory the repositories are in.
    pub connection_arn: String,
    repos: PathBuf,
    _dir: tempfile::TempDir,
}

/// A repository at `<repos>/<owner>/<name>.git` and a working copy that pushes to it.
pub(crate) struct Repo {
    bare: PathBuf,
    work: PathBuf,
}

fn git(cwd: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(cwd)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

impl Repo {
    /// Writes (or, with `None`, deletes) files, commits and pushes to `main`; answers the commit.
    pub fn commit(&self, files: &[(&str, Option<&str>)]) -> String {
        for (path, contents) in files {
            let p = self.work.join(path);
            match contents {
                Some(c) => {
                    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                    std::fs::write(p, c).unwrap();
                }
                None => std::fs::remove_file(p).unwrap(),
            }
        }
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "--allow-empty", "-m", "c"]);
        git(
            &self.work,
            &["push", "-q", self.bare.to_str().unwrap(), "HEAD:main"],
        );
        git(&self.work, &["rev-parse", "HEAD"])
    }
}

impl Kit {
    pub async fn new() -> Kit {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/gitsync.db", dir.path().display());
        let store = Store::open(&url, MasterKey::generate(), Limits::default())
            .await
            .unwrap();
        let mut git = GitSettings::new(dir.path().join("cache"));
        git.allow_file = true;
        let engine = Engine::new(
            store.clone(),
            git,
            Arc::new(gitsync_deploy::ValidateOnly),
            Vec::new(),
            None,
            EngineSettings::default(),
        );
        let tenant = Tenant::new("111122223333", "us-east-1");
        let repos = dir.path().join("repos");
        let host = store
            .create_host(
                &tenant,
                ArnService::CodeConnections,
                &HostSpec {
                    name: "local".into(),
                    provider_type: ProviderType::GitHubEnterpriseServer,
                    provider_endpoint: format!("file://{}", repos.display()),
                    vpc_configuration: None,
                },
                &[],
            )
            .await
            .unwrap();
        let connection = store
            .create_connection(
                &tenant,
                ArnService::CodeConnections,
                "local",
                None,
                Some(&host.arn),
                &[],
            )
            .await
            .unwrap();
        store
            .activate_connection(&tenant, &connection.arn, None)
            .await
            .unwrap();
        Kit {
            engine,
            store,
            tenant,
            connection_arn: connection.arn,
            repos,
            _dir: dir,
        }
    }

    /// The directory the kit's host serves repositories from.
    pub fn repos_dir(&self) -> &Path {
        &self.repos
    }

    /// A new repository `owner/name` with an empty first commit on `main`.
    pub fn repo(&self, owner: &str, name: &str) -> Repo {
        let bare = self.repos.join(owner).join(format!("{name}.git"));
        let work = self.repos.join("work").join(owner).join(name);
        std::fs::create_dir_all(&bare).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        git(&bare, &["init", "--bare", "-q", "-b", "main"]);
        git(&work, &["init", "-q", "-b", "main"]);
        Repo { bare, work }
    }

    /// A repository link to `owner/name` through the kit's connection; answers its id.
    pub async fn link(&self, owner: &str, name: &str) -> String {
        self.store
            .create_repository_link(
                &self.tenant,
                ArnService::CodeConnections,
                &RepositoryLinkSpec {
                    connection_arn: self.connection_arn.clone(),
                    owner_id: owner.into(),
                    repository_name: name.into(),
                    encryption_key_arn: None,
                },
                &[],
            )
            .await
            .unwrap()
            .id
    }

    /// What the branch check of `main` would find at the repository's head for `sync_type`
    /// (fetching it), applied to the targets as a branch check applies it. Answers the scan.
    pub async fn check_main(&self, sync_type: SyncType, repository: &RepositoryKey) -> BranchScan {
        let source = match repository {
            RepositoryKey::Link(id) => self.store.link_source(&self.tenant, id).await,
            RepositoryKey::Proton { provider, name } => {
                self.store
                    .proton_source(&self.tenant, *provider, name)
                    .await
            }
        }
        .unwrap();
        let remote = remote_for(&source, &Default::default()).unwrap();
        let branch = "main".to_string();
        let (_, heads) = remote
            .fetch(&self.engine.git, std::slice::from_ref(&branch))
            .await
            .unwrap();
        let mirror = Mirror::for_url(&self.engine.git, &remote.url).unwrap();
        let commit = BranchCommit {
            tenant: &self.tenant,
            repository,
            source: &source,
            remote: &remote,
            mirror: &mirror,
            branch: &branch,
            head: &heads[&branch],
        };
        let scan = (self.engine.kinds[&sync_type].scan)(&self.engine, &commit)
            .await
            .unwrap();
        self.store
            .advance_targets(&self.tenant, repository, &branch, &scan.advances)
            .await
            .unwrap();
        scan
    }
}

/// The display names of the targets a scan moved, sorted.
pub(crate) fn moved(scan: &BranchScan) -> Vec<String> {
    let mut names: Vec<String> = scan
        .advances
        .iter()
        .map(|a| a.target.display_name())
        .collect();
    names.sort();
    names
}
