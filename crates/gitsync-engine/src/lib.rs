//! The reconciler that makes the status operations true.
//!
//! One loop per replica claims due work from the database and runs it under leases:
//!
//! * a **branch check** (repository sync) per watched (repository, branch, sync type): list the
//!   remote head without fetching; when it moved, fetch it once into the remote's mirror, read
//!   the configurations on that branch, decide which targets the commit is relevant to (the
//!   tree-entry ids of the paths each watches), and move their desired state;
//! * a **resource sync** per target whose desired commit has not been attempted: read its source
//!   at that commit, validate it, hand it to the deployer, record the outcome;
//! * a **pull request preview** per open pull request whose head was not previewed (`preview.rs`):
//!   plan the head, preview it through the deployer, comment on the pull request.
//!
//! Commits that arrive during an attempt only move the desired state; the next attempt takes the
//! newest and records the ones it skipped as superseded. Leases expire, so work a stopped replica
//! held is taken over; every write checks the lease epoch.

mod attempt;
mod backoff;
mod deployment;
mod outbox;
mod preview;
mod repository;
pub mod sandbox;
mod service;
mod stack;
mod template;
#[cfg(test)]
mod testkit;
pub mod webhook;

use gitsync_deploy::{Deliverer, PullRequests, StackDeployer};
use gitsync_git::GitSettings;
use gitsync_model::{SyncType, Tenant, Timestamp};
use gitsync_store::{
    ClaimedBranch, ClaimedDelivery, ClaimedDeployment, ClaimedPullRequest, ClaimedTarget, Release,
    Store,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tokio::task::{Id, JoinSet};

/// How the engine behaves; every value has a command-line flag.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// How often each watched branch is checked when nothing else triggers it.
    pub poll_interval: Duration,
    /// How long a lease lasts without renewal; a stopped replica's work is taken over after it.
    pub lease_ttl: Duration,
    /// This replica's name in leases and events.
    pub replica_id: String,
    /// Branch checks in flight at once. A check of an unchanged smart HTTP remote is one small
    /// request (at most 16 at once to any one host, `gitsync-git`), so many may wait on the network.
    pub check_concurrency: usize,
    /// `git fetch` processes running at once for branch checks.
    pub git_concurrency: usize,
    /// Resource syncs running at once.
    pub sync_concurrency: usize,
    /// Testing aid: a pause inside every resource sync, to stop a server in the middle of one.
    pub attempt_delay: Option<Duration>,
    /// Trusted tenants deploy as their sync role too (untrusted tenants always do).
    pub assume_sync_role: bool,
    /// On shutdown, how long syncs in flight may take to finish; what is still running then is
    /// stopped and its lease released, so another replica takes it over at once.
    pub shutdown_grace: Duration,
    /// Where templates from repositories are checked and rendered (the server: a child
    /// process with capped memory and CPU).
    pub render_isolation: sandbox::Isolation,
    /// Where public providers' repositories are cloned from instead of their own hosts
    /// (`gitsync serve --git-base`: mirrors, proxies, tests).
    pub git_bases: gitsync_model::githost::ProviderBases,
    /// How long sync attempts are kept (each target's latest and latest successful always are).
    pub history_retention: Duration,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            poll_interval: Duration::from_secs(60),
            lease_ttl: Duration::from_secs(60),
            replica_id: "gitsync".into(),
            check_concurrency: 64,
            git_concurrency: 4,
            sync_concurrency: 8,
            attempt_delay: None,
            assume_sync_role: false,
            shutdown_grace: Duration::from_secs(30),
            render_isolation: sandbox::Isolation::InProcess,
            git_bases: Default::default(),
            history_retention: Duration::from_secs(90 * 86_400),
        }
    }
}

/// One kind of sync, as the engine is given it per sync type: which of its targets a branch's
/// new commit moves (the branch check's half), and the work of one of those targets (the
/// attempt's half). Kinds depend on the driver modules, never on each other.
struct Kind {
    scan: repository::Scan,
    load: attempt::Load,
}

/// Outbox deliveries running at once.
const DELIVERY_CONCURRENCY: usize = 4;
/// Pull request previews running at once.
const PREVIEW_CONCURRENCY: usize = 2;
/// How often settled outbox rows past their retention are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Work this replica holds a lease on, kept per task so that a shutdown can release what it cut
/// short.
enum Held {
    Branch(Box<ClaimedBranch>),
    Target(Box<ClaimedTarget>),
    Delivery(Box<ClaimedDelivery>),
    Deployment(Box<ClaimedDeployment>),
    PullRequest(Box<ClaimedPullRequest>),
}

/// The engine's tasks: every branch check and resource sync running on this replica.
#[derive(Default)]
struct InFlight {
    tasks: JoinSet<()>,
    held: HashMap<Id, Held>,
}

impl InFlight {
    /// Forgets the tasks that ended.
    fn reap(&mut self) {
        while let Some(done) = self.tasks.try_join_next_with_id() {
            self.forget(done);
        }
    }

    /// How many deliveries each tenant has running here.
    fn deliveries_per_tenant(&self) -> HashMap<Tenant, usize> {
        let mut held = HashMap::new();
        for work in self.held.values() {
            if let Held::Delivery(claim) = work {
                *held.entry(claim.tenant.clone()).or_default() += 1;
            }
        }
        held
    }

    /// A task that ended by itself released or finished its claim; one that was cancelled or
    /// panicked did not, and stays held (a shutdown releases it) — except a delivery: its lease
    /// frees it soon enough, and held it would count against its tenant's share for good.
    fn forget(&mut self, done: Result<(Id, ()), tokio::task::JoinError>) {
        match done {
            Ok((id, ())) => {
                self.held.remove(&id);
            }
            Err(e) if e.is_panic() => {
                tracing::error!(error = %e, "a sync task panicked");
                if matches!(self.held.get(&e.id()), Some(Held::Delivery(_))) {
                    self.held.remove(&e.id());
                }
            }
            Err(_) => {}
        }
    }
}

pub struct Engine {
    store: Store,
    git: GitSettings,
    deployer: Arc<dyn StackDeployer>,
    settings: EngineSettings,
    wake: Notify,
    /// Branch checks in flight ([`EngineSettings::check_concurrency`]).
    check_slots: Arc<Semaphore>,
    /// `git fetch` processes of branch checks ([`EngineSettings::git_concurrency`]).
    fetch_slots: Arc<Semaphore>,
    /// The last claim of due branches filled every check slot (so more may be waiting).
    branch_backlog: AtomicBool,
    sync_slots: Arc<Semaphore>,
    /// Proton deployments running at once: apart from resource syncs, which may wait for them.
    deploy_slots: Arc<Semaphore>,
    delivery_slots: Arc<Semaphore>,
    preview_slots: Arc<Semaphore>,
    /// Reads repositories' open pull requests from their hosts (none: no previews).
    pull_requests: Option<Arc<dyn PullRequests>>,
    /// Who delivers each kind of outbox message (by the row's `deliverer`).
    deliverers: HashMap<&'static str, Arc<dyn Deliverer>>,
    /// The kind of sync that serves each sync type.
    kinds: HashMap<SyncType, Kind>,
}

impl Engine {
    pub fn new(
        store: Store,
        git: GitSettings,
        deployer: Arc<dyn StackDeployer>,
        deliverers: Vec<Arc<dyn Deliverer>>,
        pull_requests: Option<Arc<dyn PullRequests>>,
        settings: EngineSettings,
    ) -> Arc<Engine> {
        Arc::new(Engine {
            delivery_slots: Arc::new(Semaphore::new(DELIVERY_CONCURRENCY)),
            preview_slots: Arc::new(Semaphore::new(PREVIEW_CONCURRENCY)),
            pull_requests,
            deliverers: deliverers.into_iter().map(|d| (d.name(), d)).collect(),
            check_slots: Arc::new(Semaphore::new(settings.check_concurrency.max(1))),
            fetch_slots: Arc::new(Semaphore::new(settings.git_concurrency.max(1))),
            branch_backlog: AtomicBool::new(false),
            sync_slots: Arc::new(Semaphore::new(settings.sync_concurrency.max(1))),
            deploy_slots: Arc::new(Semaphore::new(settings.sync_concurrency.max(1))),
            store,
            git,
            deployer,
            settings,
            wake: Notify::new(),
            kinds: HashMap::from([
                (
                    SyncType::CfnStackSync,
                    Kind {
                        scan: stack::scan,
                        load: stack::load,
                    },
                ),
                (
                    SyncType::TemplateSync,
                    Kind {
                        scan: template::scan,
                        load: template::load,
                    },
                ),
                (
                    SyncType::ServiceSync,
                    Kind {
                        scan: service::scan,
                        load: service::load,
                    },
                ),
            ]),
        })
    }

    /// Asks the loop to look for work now (after a webhook, a resolved blocker, a new commit).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn deployer_mode(&self) -> &'static str {
        self.deployer.mode()
    }

    /// The database's clock (leases and schedules are compared with it), or ours if it cannot say.
    async fn db_now(&self) -> Timestamp {
        self.store.now().await.unwrap_or_else(|_| Timestamp::now())
    }

    fn lease_ms(&self) -> i64 {
        self.settings.lease_ttl.as_millis() as i64
    }

    /// Runs until `shutdown` completes. Every watched branch is checked once at start-up.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        if let Err(e) = self.store.refresh_watched_branches().await {
            tracing::error!(error = %e, "cannot read the watched branches");
        }
        match self.store.check_all_branches_now().await {
            Ok(n) => tracing::info!(
                branches = n,
                mode = self.deployer.mode(),
                "sync engine started; checking every watched branch"
            ),
            Err(e) => tracing::error!(error = %e, "cannot schedule the start-up checks"),
        }
        // Configuration changes keep the watched branches in step from here on, in their own
        // transactions: an idle engine writes nothing.
        let mut in_flight = InFlight::default();
        let mut pruned: Option<tokio::time::Instant> = None;
        loop {
            in_flight.reap();
            if pruned.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                pruned = Some(tokio::time::Instant::now());
                self.prune_outbox().await;
                self.prune_history().await;
            }
            if let Err(e) = self.dispatch(&mut in_flight).await {
                tracing::warn!(error = %e, "cannot claim work");
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.wake.notified() => {},
                _ = tokio::time::sleep(Duration::from_millis(250)) => {},
            }
        }
        self.stop(in_flight).await;
        tracing::info!("sync engine stopped");
    }

    /// Claims nothing more, lets the work in flight finish within the grace period, then stops
    /// the rest and releases its leases: another replica takes it over at once instead of after
    /// the lease's time to live (its unfinished attempts are closed as ABANDONED then).
    async fn stop(&self, mut in_flight: InFlight) {
        in_flight.reap();
        if in_flight.tasks.is_empty() {
            return;
        }
        let grace = self.settings.shutdown_grace;
        tracing::info!(
            in_flight = in_flight.tasks.len(),
            grace = ?grace,
            "stopping: claiming no new work, waiting for the syncs in flight"
        );
        let _ = tokio::time::timeout(grace, async {
            while let Some(done) = in_flight.tasks.join_next_with_id().await {
                in_flight.forget(done);
            }
        })
        .await;
        in_flight.tasks.abort_all();
        while let Some(done) = in_flight.tasks.join_next_with_id().await {
            in_flight.forget(done);
        }
        for (_, held) in in_flight.held.drain() {
            let released = match &held {
                Held::Branch(claim) => self.store.release_branch(claim).await,
                Held::Target(claim) => self.store.release_target(claim, Release::KeepDue).await,
                Held::Delivery(claim) => self.store.release_delivery(claim).await,
                Held::Deployment(claim) => self.store.release_deployment(claim).await,
                Held::PullRequest(claim) => self.store.release_pull_request(claim).await,
            };
            match (released, held) {
                (Ok(()), Held::Branch(c)) => {
                    tracing::info!(branch = %c.key.branch, repository = %c.key.repository, "stopped a branch check; released it")
                }
                (Ok(()), Held::Target(c)) => {
                    tracing::info!(target = %c.display_name, tenant = %c.tenant, "stopped a resource sync; released it for another replica")
                }
                (Ok(()), Held::Delivery(c)) => {
                    tracing::info!(delivery = c.id, "stopped a delivery; released it")
                }
                (Ok(()), Held::Deployment(c)) => {
                    tracing::info!(deployment = %c.id, tenant = %c.tenant, "stopped a deployment; released it for another replica")
                }
                (Ok(()), Held::PullRequest(c)) => {
                    tracing::info!(pull_request = c.number, tenant = %c.tenant, "stopped a pull request preview; released it")
                }
                (Err(e), _) => {
                    tracing::warn!(error = %e, "cannot release a lease; it expires by itself")
                }
            }
        }
    }

    /// Renews a lease (through `renew`) every third of its time to live; returns when it is
    /// lost: taken by another worker, or not renewed (the database unreachable) for two thirds
    /// of it, which leaves the work a third of the lease to stop in. Work races this, so no two
    /// workers ever hold one branch or target.
    async fn keep_lease<F, R>(&self, renew: F)
    where
        F: Fn(Timestamp, i64) -> R,
        R: std::future::Future<Output = gitsync_store::Result<()>>,
    {
        let ttl = self.lease_ms();
        let every = Duration::from_millis((ttl / 3).max(100) as u64);
        let mut renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(every).await;
            match renew(self.db_now().await, ttl).await {
                Ok(()) => renewed = tokio::time::Instant::now(),
                Err(gitsync_store::StoreError::LeaseLost(_)) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot renew the lease; retrying");
                    if renewed.elapsed() >= every * 2 {
                        return;
                    }
                }
            }
        }
    }

    /// Claims as much due work as there are free slots, and starts it.
    async fn dispatch(self: &Arc<Self>, in_flight: &mut InFlight) -> gitsync_store::Result<()> {
        let now = self.store.now().await?;
        let free = self.check_slots.available_permits();
        if free > 0 {
            // Claimed in one statement; their leases are renewed while the checks run (however
            // long git takes), so a stopped replica's branches are free again after one lease.
            let claims = self
                .store
                .claim_due_branches(&self.settings.replica_id, now, self.lease_ms(), free)
                .await?;
            // Every slot taken: more branches may be due, and each check that ends looks again.
            self.branch_backlog
                .store(claims.len() == free, Ordering::Relaxed);
            for claim in claims {
                let Ok(permit) = self.check_slots.clone().try_acquire_owned() else {
                    self.store.release_branch(&claim).await?;
                    continue;
                };
                let engine = self.clone();
                let held = Held::Branch(Box::new(claim.clone()));
                let task = in_flight.tasks.spawn(async move {
                    engine.check_branch(claim).await;
                    drop(permit);
                    // A check that found work woke the engine itself; an unchanged one only
                    // frees a slot, which matters when due branches are waiting for one.
                    if engine.branch_backlog.load(Ordering::Relaxed) {
                        engine.wake();
                    }
                });
                in_flight.held.insert(task.id(), held);
            }
        }
        let free = self.sync_slots.available_permits();
        if free > 0 {
            for (tenant, target) in self.store.due_targets(now, free).await? {
                let Ok(permit) = self.sync_slots.clone().try_acquire_owned() else {
                    break;
                };
                if let Some(claim) = self
                    .store
                    .claim_target(
                        &tenant,
                        &target,
                        &self.settings.replica_id,
                        now,
                        self.lease_ms(),
                    )
                    .await?
                {
                    let engine = self.clone();
                    let held = Held::Target(Box::new(claim.clone()));
                    let task = in_flight.tasks.spawn(async move {
                        engine.resource_sync(claim).await;
                        drop(permit);
                        engine.wake();
                    });
                    in_flight.held.insert(task.id(), held);
                }
            }
        }
        let free = self.deploy_slots.available_permits();
        if free > 0 {
            for id in self.store.due_deployments(now, free).await? {
                let Ok(permit) = self.deploy_slots.clone().try_acquire_owned() else {
                    break;
                };
                if let Some(claim) = self
                    .store
                    .claim_deployment(&id, &self.settings.replica_id, now, self.lease_ms())
                    .await?
                {
                    let engine = self.clone();
                    let held = Held::Deployment(Box::new(claim.clone()));
                    let task = in_flight.tasks.spawn(async move {
                        engine.run_deployment(claim).await;
                        drop(permit);
                        engine.wake();
                    });
                    in_flight.held.insert(task.id(), held);
                }
            }
        }
        let free = self.preview_slots.available_permits();
        if free > 0 && self.pull_requests.is_some() {
            for (tenant, link_id, number) in self.store.due_pull_requests(now, free).await? {
                let Ok(permit) = self.preview_slots.clone().try_acquire_owned() else {
                    break;
                };
                if let Some(claim) = self
                    .store
                    .claim_pull_request(
                        &tenant,
                        &link_id,
                        number,
                        &self.settings.replica_id,
                        now,
                        self.lease_ms(),
                    )
                    .await?
                {
                    let engine = self.clone();
                    let held = Held::PullRequest(Box::new(claim.clone()));
                    let task = in_flight.tasks.spawn(async move {
                        engine.preview_pull_request(claim).await;
                        drop(permit);
                        engine.wake();
                    });
                    in_flight.held.insert(task.id(), held);
                }
            }
        }
        let free = self.delivery_slots.available_permits();
        if free > 0 {
            // A tenant holds at most half the slots, so slow endpoints of one tenant cannot
            // keep another's messages waiting; rows of a tenant at its share wait a turn.
            let mut held = in_flight.deliveries_per_tenant();
            let share = (DELIVERY_CONCURRENCY / 2).max(1);
            for due in self
                .store
                .due_deliveries(now, DELIVERY_CONCURRENCY * 4)
                .await?
            {
                let tenant_holds = held.entry(due.tenant).or_default();
                if *tenant_holds >= share {
                    continue;
                }
                let Ok(permit) = self.delivery_slots.clone().try_acquire_owned() else {
                    break;
                };
                let lease = outbox::LEASE.as_millis() as i64;
                if let Some(claim) = self
                    .store
                    .claim_delivery(due.id, &self.settings.replica_id, now, lease)
                    .await?
                {
                    let engine = self.clone();
                    *tenant_holds += 1;
                    let held = Held::Delivery(Box::new(claim.clone()));
                    let task = in_flight.tasks.spawn(async move {
                        engine.deliver(claim).await;
                        drop(permit);
                        // The destination's next message is due now.
                        engine.wake();
                    });
                    in_flight.held.insert(task.id(), held);
                }
            }
        }
        Ok(())
    }

    /// Deletes outbox rows settled longer ago than the retention.
    /// Deletes sync attempts older than the history's retention (never a target's latest or
    /// latest successful one).
    async fn prune_history(&self) {
        let before = self
            .db_now()
            .await
            .plus_millis(-(self.settings.history_retention.as_millis() as i64));
        match self.store.prune_history(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                attempts = n,
                "pruned sync attempts past the history's retention"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot prune the sync history"),
        }
    }

    async fn prune_outbox(&self) {
        let before = self
            .db_now()
            .await
            .plus_millis(-(outbox::RETENTION.as_millis() as i64));
        match self.store.prune_outbox(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "pruned settled outbox rows"),
            Err(e) => tracing::warn!(error = %e, "cannot prune the outbox"),
        }
    }
}
