//! The store's rules, on SQLite and (when reachable) PostgreSQL: tenancy, uniqueness, quotas,
//! links in use, tags, pagination keys, sync history and blockers.

use gitsync_model::*;
use gitsync_store::{MasterKey, NewResourceAttempt, RepositoryKey, Store, StoreError};

/// A fresh SQLite database in a temporary directory.
async fn sqlite(limits: Limits) -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    (
        Store::open(&url, MasterKey::generate(), limits)
            .await
            .unwrap(),
        dir,
    )
}

/// A throw-away PostgreSQL database on the server `GITSYNC_TEST_DATABASE_URL` names (made by
/// copying a migrated template database, which is fast), dropped again by
/// [`PgDatabase::drop_now`]. Without the variable the PostgreSQL tests are skipped, and say so.
struct PgDatabase {
    admin: String,
    name: String,
    store: Store,
}

impl PgDatabase {
    async fn create() -> Option<PgDatabase> {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let Ok(admin) = std::env::var("GITSYNC_TEST_DATABASE_URL") else {
            eprintln!(
                "SKIPPED: set GITSYNC_TEST_DATABASE_URL=postgres://… to run the PostgreSQL store tests"
            );
            return None;
        };
        let mut conn = sqlx::AnyConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| {
                panic!("GITSYNC_TEST_DATABASE_URL={admin} is set but unreachable: {e}")
            });
        let template = template_database(&admin).await;
        let name = format!("gitsync_store_{}_{}", std::process::id(), uuid_like());
        // Copies of one template made at the same moment can collide; try again briefly.
        for attempt in 0.. {
            let create = format!("CREATE DATABASE {name} TEMPLATE {template}");
            match sqlx::query(sqlx::AssertSqlSafe(create))
                .execute(&mut conn)
                .await
            {
                Ok(_) => break,
                Err(_) if attempt < 50 => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await
                }
                Err(e) => panic!("cannot copy the template database: {e}"),
            }
        }
        let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
        let store = Store::open(&url, MasterKey::generate(), Limits::default())
            .await
            .unwrap();
        Some(PgDatabase { admin, name, store })
    }

    async fn drop_now(self) {
        use sqlx::Connection;
        self.store.close().await;
        let mut conn = sqlx::AnyConnection::connect(&self.admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {}", self.name)))
            .execute(&mut conn)
            .await
            .unwrap();
    }
}

/// A database with the current schema, named by a hash of the migrations so that it is made once
/// and reused by later runs (a changed migration makes a new one), copied for each test.
async fn template_database(admin: &str) -> String {
    use sqlx::Connection;
    let migrations: Vec<&str> = gitsync_store::postgres_migrations().collect();
    let hash = migrations
        .concat()
        .bytes()
        .fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
        });
    let name = format!("gitsync_template_{:012x}", hash & 0xffff_ffff_ffff);
    let mut conn = sqlx::AnyConnection::connect(admin).await.unwrap();
    let exists = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT 1 FROM pg_database WHERE datname = '{name}'"
    )))
    .fetch_optional(&mut conn)
    .await
    .unwrap()
    .is_some();
    if !exists {
        let building = format!("{name}_{}", uuid_like());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {building}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let url = format!("{}/{building}", admin.rsplit_once('/').unwrap().0);
        Store::open(&url, MasterKey::generate(), Limits::default())
            .await
            .unwrap()
            .close()
            .await;
        // Another test process may have won the race; then its template serves.
        if sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {building} RENAME TO {name}"
        )))
        .execute(&mut conn)
        .await
        .is_err()
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {building}")))
                .execute(&mut conn)
                .await;
        }
    }
    name
}

fn uuid_like() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        % 1_000_000_007
}

fn tenant(account: &str) -> Tenant {
    Tenant::new(account, "us-east-1")
}

async fn link(store: &Store, t: &Tenant, repo: &str) -> RepositoryLink {
    let c = store
        .create_connection(
            t,
            ArnService::CodeConnections,
            "c",
            Some(ProviderType::GitHub),
            None,
            &[],
        )
        .await
        .unwrap();
    store
        .create_repository_link(
            t,
            ArnService::CodeConnections,
            &RepositoryLinkSpec {
                connection_arn: c.arn,
                owner_id: "o".into(),
                repository_name: repo.into(),
                encryption_key_arn: None,
            },
            &[],
        )
        .await
        .unwrap()
}

fn stack_spec(link: &RepositoryLink, name: &str, branch: &str) -> SyncConfigurationSpec {
    SyncConfigurationSpec {
        resource_name: name.into(),
        branch: branch.into(),
        config_file: "deploy.yaml".into(),
        repository_link_id: link.id.clone(),
        role_arn: "arn:aws:iam::123456789012:role/r".into(),
        publish_deployment_status: None,
        trigger_resource_update_on: Some(TriggerResourceUpdateOn::AnyChange),
        pull_request_comment: None,
    }
}

async fn rules(store: Store) {
    let a = tenant("111111111111");
    let b = tenant("222222222222");
    let l = link(&store, &a, "infra").await;
    // Another tenant sees nothing and cannot reach the link.
    assert!(matches!(
        store.get_repository_link(&b, &l.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        store
            .list_repository_links(&b, None, 10)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let config = store
        .create_sync_configuration(&a, &stack_spec(&l, "s1", "main"))
        .await
        .unwrap();
    assert_eq!(config.repository_name, "infra");
    assert_eq!(
        config.trigger_resource_update_on,
        Some(TriggerResourceUpdateOn::AnyChange)
    );
    assert!(matches!(
        store
            .create_sync_configuration(&a, &stack_spec(&l, "s1", "main"))
            .await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        store.delete_repository_link(&a, &l.id).await,
        Err(StoreError::StillInUse(_))
    ));
    // Partial update keeps what it does not name.
    let patched = store
        .update_sync_configuration(
            &a,
            "s1",
            &SyncConfigurationPatch {
                branch: Some("dev".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (patched.branch.as_str(), patched.config_file.as_str()),
        ("dev", "deploy.yaml")
    );
    // Pages follow the sort key and end.
    for i in 2..=5 {
        store
            .create_sync_configuration(&a, &stack_spec(&l, &format!("s{i}"), "main"))
            .await
            .unwrap();
    }
    let first = store
        .list_sync_configurations(&a, &l.id, None, 2)
        .await
        .unwrap();
    assert_eq!(
        first
            .items
            .iter()
            .map(|c| c.resource_name.as_str())
            .collect::<Vec<_>>(),
        ["s1", "s2"]
    );
    let rest = store
        .list_sync_configurations(&a, &l.id, first.next.as_deref(), 10)
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 3);
    assert_eq!(rest.next, None);
    // Tags live and die with their resource.
    store
        .tag_resource(
            &a,
            &l.arn,
            &[Tag {
                key: "k".into(),
                value: "v".into(),
            }],
        )
        .await
        .unwrap();
    assert!(matches!(
        store.list_tags(&b, &l.arn).await,
        Err(StoreError::NotFound(_))
    ));
    for i in 1..=5 {
        store
            .delete_sync_configuration(&a, &format!("s{i}"))
            .await
            .unwrap();
    }
    store.delete_repository_link(&a, &l.id).await.unwrap();
    assert!(matches!(
        store.list_tags(&a, &l.arn).await,
        Err(StoreError::NotFound(_))
    ));
}

/// A target's sync state, which the test knows exists.
async fn sync_state(store: &Store, tenant: &Tenant, target: &SyncTarget) -> ResourceSyncState {
    store
        .resource_sync_state(tenant, target)
        .await
        .unwrap()
        .expect("the target has attempts")
}

async fn history(store: Store) {
    let a = tenant("111111111111");
    let target = SyncTarget::CfnStack {
        stack_name: "web".into(),
    };
    assert_eq!(store.resource_sync_state(&a, &target).await.unwrap(), None);
    let rev = |sha: &str| Revision {
        branch: "main".into(),
        directory: "deploy.yaml".into(),
        owner_id: "o".into(),
        repository_name: "r".into(),
        provider_type: "GitHub".into(),
        sha: sha.into(),
    };
    let repo = RepositoryKey::Link("l1".into());
    store
        .upsert_sync_target(&a, &target, &repo, &rev("b"), None)
        .await
        .unwrap();
    let attempt = |sha: &str| NewResourceAttempt {
        target: target.clone(),
        status: ResourceSyncStatus::Initiated,
        initial_revision: rev("a"),
        target_revision: rev(sha),
        started_at: Timestamp::now(),
    };
    let ok = store
        .start_resource_attempt(&a, &attempt("a"))
        .await
        .unwrap();
    let event = |t: &str| SyncEvent {
        event_type: t.into(),
        event: t.to_lowercase(),
        time: Timestamp::now(),
        external_id: None,
    };
    store
        .record_resource_event(ok, ResourceSyncStatus::InProgress, &event("SYNC_STARTED"))
        .await
        .unwrap();
    store
        .record_resource_event(
            ok,
            ResourceSyncStatus::Succeeded,
            &event("DEPLOYMENT_SUCCEEDED"),
        )
        .await
        .unwrap();
    // A latest attempt that succeeded is also the latest successful one.
    let state = sync_state(&store, &a, &target).await;
    assert_eq!(state.latest_sync.status, ResourceSyncStatus::Succeeded);
    assert_eq!(
        state.latest_successful_sync.as_ref(),
        Some(&state.latest_sync)
    );
    assert_eq!(state.latest_sync.events.len(), 2);
    let failed = store
        .start_resource_attempt(&a, &attempt("b"))
        .await
        .unwrap();
    // A new attempt without events yet, beside the successful one with its two.
    let state = sync_state(&store, &a, &target).await;
    assert_eq!(state.latest_sync.status, ResourceSyncStatus::Initiated);
    assert!(state.latest_sync.events.is_empty());
    assert_eq!(state.latest_successful_sync.unwrap().events.len(), 2);
    store
        .record_resource_event(
            failed,
            ResourceSyncStatus::Failed,
            &event("VALIDATION_FAILED"),
        )
        .await
        .unwrap();
    let state = sync_state(&store, &a, &target).await;
    assert_eq!(state.latest_sync.status, ResourceSyncStatus::Failed);
    assert_eq!(state.latest_sync.target_revision.sha, "b");
    let good = state.latest_successful_sync.unwrap();
    assert_eq!(
        good.events
            .iter()
            .map(|e| e.event_type.as_str())
            .collect::<Vec<_>>(),
        ["SYNC_STARTED", "DEPLOYMENT_SUCCEEDED"]
    );
    assert_eq!(state.desired_state.unwrap().sha, "b");
    // Another tenant's identical target name is another target.
    assert_eq!(
        store
            .resource_sync_state(&tenant("222222222222"), &target)
            .await
            .unwrap(),
        None
    );

    let scope = BlockerScope {
        sync_type: SyncType::CfnStackSync,
        resource_name: "web".into(),
        parent_resource_name: None,
    };
    let blocker = store
        .create_blocker(
            &a,
            &scope,
            "stack deleted",
            &[("StackStatus".into(), "DELETE_COMPLETE".into())],
        )
        .await
        .unwrap();
    let listed = store
        .latest_blockers(&a, SyncType::CfnStackSync, "web", None, 10)
        .await
        .unwrap();
    assert_eq!(listed, vec![blocker.clone()]);
    assert!(matches!(
        store
            .resolve_blocker(
                &tenant("222222222222"),
                SyncType::CfnStackSync,
                Some("web"),
                &blocker.id,
                "x"
            )
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .resolve_blocker(&a, SyncType::CfnStackSync, Some("other"), &blocker.id, "x")
            .await,
        Err(StoreError::NotFound(_))
    ));
    let (resolved_scope, resolved) = store
        .resolve_blocker(
            &a,
            SyncType::CfnStackSync,
            Some("web"),
            &blocker.id,
            "fixed",
        )
        .await
        .unwrap();
    assert_eq!(resolved_scope, scope);
    assert_eq!(resolved.status, BlockerStatus::Resolved);
    assert!(matches!(
        store
            .resolve_blocker(&a, SyncType::CfnStackSync, None, &blocker.id, "again")
            .await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn rules_hold_on_sqlite() {
    let (store, _dir) = sqlite(Limits::default()).await;
    rules(store).await;
}

#[tokio::test]
async fn history_round_trips_on_sqlite() {
    let (store, _dir) = sqlite(Limits::default()).await;
    history(store).await;
}

#[tokio::test]
async fn rules_and_history_hold_on_postgres() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    rules(db.store.clone()).await;
    history(db.store.clone()).await;
    db.drop_now().await;
}

/// With statuses kept in memory for a minute, every read that follows a write of this process
/// still sees it (the history test reads after each write).
#[tokio::test]
async fn the_status_cache_never_hides_this_process_writes_on_sqlite() {
    let (store, _dir) = sqlite(Limits::default()).await;
    history(store.with_status_cache(std::time::Duration::from_secs(60))).await;
}

#[tokio::test]
async fn the_status_cache_never_hides_this_process_writes_on_postgres() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    history(
        db.store
            .clone()
            .with_status_cache(std::time::Duration::from_secs(60)),
    )
    .await;
    db.drop_now().await;
}

/// Another process's write (here another store on the same database) shows once the cached
/// answer is older than its time to live; a status that does not exist is never kept.
#[tokio::test]
async fn the_status_cache_shows_other_writers_within_its_ttl() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let key = MasterKey::generate();
    let ttl = Duration::from_millis(300);
    let cached = Store::open(&url, key.clone(), Limits::default())
        .await
        .unwrap()
        .with_status_cache(ttl);
    let other = Store::open(&url, key, Limits::default()).await.unwrap();
    let a = tenant("111111111111");
    let target = SyncTarget::CfnStack {
        stack_name: "web".into(),
    };
    assert_eq!(cached.resource_sync_state(&a, &target).await.unwrap(), None);
    let rev = Revision {
        branch: "main".into(),
        directory: "deploy.yaml".into(),
        owner_id: "o".into(),
        repository_name: "r".into(),
        provider_type: "GitHub".into(),
        sha: "a".into(),
    };
    let attempt = NewResourceAttempt {
        target: target.clone(),
        status: ResourceSyncStatus::InProgress,
        initial_revision: rev.clone(),
        target_revision: rev,
        started_at: Timestamp::now(),
    };
    let id = other.start_resource_attempt(&a, &attempt).await.unwrap();
    // Not found was not kept: the new attempt shows at once.
    let seen = sync_state(&cached, &a, &target).await;
    assert_eq!(seen.latest_sync.status, ResourceSyncStatus::InProgress);
    let done = SyncEvent {
        event_type: "DEPLOYMENT_SUCCEEDED".into(),
        event: "done".into(),
        time: Timestamp::now(),
        external_id: None,
    };
    other
        .record_resource_event(id, ResourceSyncStatus::Succeeded, &done)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        let state = sync_state(&cached, &a, &target).await;
        if state.latest_sync.status == ResourceSyncStatus::Succeeded {
            break;
        }
        assert!(
            started.elapsed() < ttl + Duration::from_millis(200),
            "another writer's change must show within the time to live"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Uncached, the same store reads the database every time.
    let uncached = cached.with_status_cache(Duration::ZERO);
    other
        .record_resource_event(id, ResourceSyncStatus::Succeeded, &done)
        .await
        .unwrap();
    assert_eq!(
        sync_state(&uncached, &a, &target)
            .await
            .latest_sync
            .events
            .len(),
        2
    );
}

#[tokio::test]
async fn quotas_are_per_tenant() {
    let mut limits = Limits::default();
    limits.set("repository_links=1").unwrap();
    let (store, _dir) = sqlite(limits).await;
    link(&store, &tenant("111111111111"), "a").await;
    let c = store
        .create_connection(
            &tenant("111111111111"),
            ArnService::CodeConnections,
            "c2",
            Some(ProviderType::GitHub),
            None,
            &[],
        )
        .await
        .unwrap();
    let refused = store
        .create_repository_link(
            &tenant("111111111111"),
            ArnService::CodeConnections,
            &RepositoryLinkSpec {
                connection_arn: c.arn,
                owner_id: "o".into(),
                repository_name: "b".into(),
                encryption_key_arn: None,
            },
            &[],
        )
        .await;
    assert!(matches!(refused, Err(StoreError::LimitExceeded(_))));
    link(&store, &tenant("222222222222"), "a").await;
}

#[tokio::test]
async fn secrets_are_sealed_at_rest() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let key = MasterKey::generate();
    let store = Store::open(&url, key.clone(), Limits::default())
        .await
        .unwrap();
    let created = store.create_access_key("123456789012").await.unwrap();
    assert!(created.access_key_id.starts_with("AKIA") && created.access_key_id.len() == 20);
    assert!(
        created.access_key_id[4..]
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    );
    assert_eq!(
        store
            .access_key(&created.access_key_id)
            .await
            .unwrap()
            .unwrap()
            .secret_access_key,
        created.secret_access_key
    );
    store.close().await;
    for file in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(file.unwrap().path()).unwrap();
        assert!(
            !bytes
                .windows(40)
                .any(|w| w == created.secret_access_key.as_bytes()),
            "secret stored in clear"
        );
    }
    // Another master key cannot open it.
    let other = Store::open(&url, MasterKey::generate(), Limits::default())
        .await
        .unwrap();
    assert!(other.access_key(&created.access_key_id).await.is_err());
    assert!(matches!(
        other.create_access_key("12345").await,
        Err(StoreError::Invalid(_))
    ));
}

/// Leases: one holder at a time, takeover after expiry with a higher epoch, and a stale holder's
/// writes refused (fencing).
async fn leases(store: Store) {
    use gitsync_store::{TargetAdvance, TargetResult};
    let a = tenant("111111111111");
    let l = link(&store, &a, "leased").await;
    store
        .create_sync_configuration(&a, &stack_spec(&l, "web", "main"))
        .await
        .unwrap();
    let revision = Revision {
        branch: "main".into(),
        directory: "deploy.yaml".into(),
        owner_id: "o".into(),
        repository_name: "leased".into(),
        provider_type: "GitHub".into(),
        sha: "a".repeat(40),
    };
    let target = SyncTarget::CfnStack {
        stack_name: "web".into(),
    };
    let advance = TargetAdvance {
        target: target.clone(),
        directory: "deploy.yaml".into(),
        revision: revision.clone(),
        watched_ids: "{}".into(),
    };
    store
        .advance_targets(&a, &RepositoryKey::Link(l.id.clone()), "main", &[advance])
        .await
        .unwrap();
    let now = Timestamp::now();
    assert_eq!(store.due_targets(now, 10).await.unwrap().len(), 1);
    let first = store
        .claim_target(
            &a,
            &SyncTarget::CfnStack {
                stack_name: "web".into(),
            },
            "one",
            now,
            1_000,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .claim_target(
                &a,
                &SyncTarget::CfnStack {
                    stack_name: "web".into()
                },
                "two",
                now,
                1_000
            )
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.due_targets(now, 10).await.unwrap().is_empty());
    let attempt = store
        .begin_resource_attempt(&first, &target, &[])
        .await
        .unwrap();
    // The lease runs out; another worker takes over with a higher epoch and sees the orphan.
    let later = now.plus_millis(2_000);
    assert_eq!(store.due_targets(later, 10).await.unwrap().len(), 1);
    let second = store
        .claim_target(
            &a,
            &SyncTarget::CfnStack {
                stack_name: "web".into(),
            },
            "two",
            later,
            1_000,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(second.epoch > first.epoch);
    assert_eq!(second.abandoned_attempt_id, Some(attempt));
    // The first worker's writes are fenced off.
    let done = TargetResult {
        succeeded: true,
        failures: 0,
        deploy_failures: 0,
        retry_at: None,
        deployed: true,
    };
    assert!(matches!(
        store
            .finish_resource_attempt(&first, attempt, &[], &done)
            .await,
        Err(StoreError::LeaseLost(_))
    ));
    assert!(
        store
            .renew_target_lease(&first, later, 1_000)
            .await
            .is_err()
    );
    let taken = store
        .begin_resource_attempt(&second, &target, &[])
        .await
        .unwrap();
    store
        .finish_resource_attempt(&second, taken, &[], &done)
        .await
        .unwrap();
    let state = sync_state(&store, &a, &target).await;
    assert_eq!(state.latest_sync.status, ResourceSyncStatus::Succeeded);
    // Done: nothing is due until the desired commit moves.
    assert!(
        store
            .due_targets(later.plus_millis(5_000), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A resource sync's effect (here: registering a template version) is applied in the
/// transaction that closes its attempt, under the fence: a worker whose lease was taken over
/// writes nothing; a retry of the same commit registers nothing new; an effect that fails is
/// rolled back alone while its attempt is still closed.
async fn effects(store: Store) {
    use gitsync_store::{
        Applied, Closing, Effect, NewTemplateVersion, TargetAdvance, TargetResult,
    };
    let a = tenant("111111111111");
    let l = link(&store, &a, "effects").await;
    store
        .create_sync_configuration(&a, &stack_spec(&l, "web", "main"))
        .await
        .unwrap();
    let spec = gitsync_store::TemplateSpec {
        name: "vpc".into(),
        display_name: None,
        description: None,
        encryption_key: None,
        provisioning: None,
    };
    store
        .create_template(&a, TemplateType::Environment, &spec, &[])
        .await
        .unwrap();
    let target = SyncTarget::CfnStack {
        stack_name: "web".into(),
    };
    let advance = |sha: &str| TargetAdvance {
        target: target.clone(),
        directory: "deploy.yaml".into(),
        revision: Revision {
            branch: "main".into(),
            directory: "deploy.yaml".into(),
            owner_id: "o".into(),
            repository_name: "effects".into(),
            provider_type: "GitHub".into(),
            sha: sha.to_string(),
        },
        watched_ids: format!("{{\"sha\":\"{sha}\"}}"),
    };
    let commit = "c".repeat(40);
    store
        .advance_targets(
            &a,
            &RepositoryKey::Link(l.id.clone()),
            "main",
            &[advance(&commit)],
        )
        .await
        .unwrap();
    let register = |name: &str| Effect::RegisterTemplateVersion {
        template_type: TemplateType::Environment,
        name: name.into(),
        version: NewTemplateVersion {
            major: 1,
            source_commit: Some(commit.clone()),
            files: [("infrastructure/manifest.yaml".to_string(), b"x".to_vec())].into(),
            ..Default::default()
        },
    };
    let ending = |succeeded: bool| Closing {
        events: Vec::new(),
        result: TargetResult {
            succeeded,
            failures: i64::from(!succeeded),
            deploy_failures: 0,
            retry_at: None,
            deployed: succeeded,
        },
        blocker: None,
    };
    let versions = || async {
        store
            .list_template_versions(&a, TemplateType::Environment, "vpc", None, None, 100)
            .await
            .unwrap()
            .items
            .len()
    };
    let now = Timestamp::now();
    let stale = store
        .claim_target(
            &a,
            &SyncTarget::CfnStack {
                stack_name: "web".into(),
            },
            "one",
            now,
            1_000,
        )
        .await
        .unwrap()
        .unwrap();
    let stale_attempt = store
        .begin_resource_attempt(&stale, &target, &[])
        .await
        .unwrap();
    let later = now.plus_millis(2_000);
    let current = store
        .claim_target(
            &a,
            &SyncTarget::CfnStack {
                stack_name: "web".into(),
            },
            "two",
            later,
            60_000,
        )
        .await
        .unwrap()
        .unwrap();
    // The stale worker's effect is refused: nothing registered, and `decide` never ran.
    let refused = store
        .close_resource_attempt(&stale, stale_attempt, &register("vpc"), |_| {
            panic!("a stale worker's attempt is not decided")
        })
        .await;
    assert!(
        matches!(refused, Err(StoreError::LeaseLost(_))),
        "{refused:?}"
    );
    assert_eq!(versions().await, 0);
    // The current worker registers 1.0 and closes its attempt in the same transaction.
    let attempt = store
        .begin_resource_attempt(&current, &target, &[])
        .await
        .unwrap();
    let applied = store
        .close_resource_attempt(&current, attempt, &register("vpc"), |applied| {
            assert!(matches!(applied, Ok(Applied::Registered(ref v)) if v.minor == 0));
            ending(true)
        })
        .await
        .unwrap();
    assert!(matches!(applied, Applied::Registered(_)));
    assert_eq!(versions().await, 1);
    // A retry of the same commit (sync now, a takeover) registers nothing new.
    store
        .retry_target(&a, SyncType::CfnStackSync, "web")
        .await
        .unwrap();
    let retry = store
        .claim_target(
            &a,
            &SyncTarget::CfnStack {
                stack_name: "web".into(),
            },
            "two",
            later,
            60_000,
        )
        .await
        .unwrap()
        .unwrap();
    let attempt = store
        .begin_resource_attempt(&retry, &target, &[])
        .await
        .unwrap();
    let applied = store
        .close_resource_attempt(&retry, attempt, &register("vpc"), |_| ending(true))
        .await
        .unwrap();
    assert!(matches!(applied, Applied::AlreadyRegistered(ref v) if v.minor == 0));
    assert_eq!(versions().await, 1);
    // An effect that fails (no such template) is rolled back alone; the attempt is closed as
    // `decide` says, with the error it was given.
    store
        .retry_target(&a, SyncType::CfnStackSync, "web")
        .await
        .unwrap();
    let failing = store
        .claim_target(
            &a,
            &SyncTarget::CfnStack {
                stack_name: "web".into(),
            },
            "two",
            later,
            60_000,
        )
        .await
        .unwrap()
        .unwrap();
    let attempt = store
        .begin_resource_attempt(&failing, &target, &[])
        .await
        .unwrap();
    let mut seen = None;
    store
        .close_resource_attempt(&failing, attempt, &register("ghost"), |applied| {
            seen = Some(matches!(applied, Err(StoreError::NotFound(_))));
            let mut closing = ending(false);
            closing.events.push(SyncEvent::new(
                EventType::ValidationFailed,
                "no template",
                None,
            ));
            closing
        })
        .await
        .unwrap();
    assert_eq!(seen, Some(true));
    let state = sync_state(&store, &a, &target).await;
    assert_eq!(state.latest_sync.status, ResourceSyncStatus::Failed);
    assert_eq!(
        state.latest_sync.events.last().unwrap().event,
        "no template"
    );
    assert_eq!(versions().await, 1);
}

/// Status changes reach the outbox in the transactions that make them, for the changed
/// resource's tenant only; deliveries are claimed under fenced leases.
async fn outbox(store: Store) {
    use gitsync_store::{Closing, Effect, TargetAdvance, TargetResult};
    let a = tenant("111111111111");
    let b = tenant("222222222222");
    let l = link(&store, &a, "outbox").await;
    store
        .create_sync_configuration(&a, &stack_spec(&l, "web", "main"))
        .await
        .unwrap();
    let to_a = store
        .add_notification_target(&a, "http://127.0.0.1:9/a", b"sa")
        .await
        .unwrap();
    let to_b = store
        .add_notification_target(&b, "http://127.0.0.1:9/b", b"sb")
        .await
        .unwrap();
    let target = SyncTarget::CfnStack {
        stack_name: "web".into(),
    };
    let commit = "d".repeat(40);
    store
        .advance_targets(
            &a,
            &RepositoryKey::Link(l.id.clone()),
            "main",
            &[TargetAdvance {
                target: target.clone(),
                directory: "deploy.yaml".into(),
                revision: Revision {
                    branch: "main".into(),
                    directory: "deploy.yaml".into(),
                    owner_id: "o".into(),
                    repository_name: "outbox".into(),
                    provider_type: "GitHub".into(),
                    sha: commit.clone(),
                },
                watched_ids: "{}".into(),
            }],
        )
        .await
        .unwrap();
    let succeeded = || Closing {
        events: Vec::new(),
        result: TargetResult {
            succeeded: true,
            failures: 0,
            deploy_failures: 0,
            retry_at: None,
            deployed: true,
        },
        blocker: None,
    };
    let now = Timestamp::now();
    let stale = store
        .claim_target(
            &a,
            &SyncTarget::CfnStack {
                stack_name: "web".into(),
            },
            "one",
            now,
            1_000,
        )
        .await
        .unwrap()
        .unwrap();
    let stale_attempt = store
        .begin_resource_attempt(&stale, &target, &[])
        .await
        .unwrap();
    let later = now.plus_millis(2_000);
    let current = store
        .claim_target(
            &a,
            &SyncTarget::CfnStack {
                stack_name: "web".into(),
            },
            "two",
            later,
            60_000,
        )
        .await
        .unwrap()
        .unwrap();
    // A stale worker's close tells no one.
    assert!(
        store
            .close_resource_attempt(&stale, stale_attempt, &Effect::None, |_| succeeded())
            .await
            .is_err()
    );
    let attempt = store
        .begin_resource_attempt(&current, &target, &[])
        .await
        .unwrap();
    store
        .close_resource_attempt(&current, attempt, &Effect::None, |_| succeeded())
        .await
        .unwrap();
    // Four changes of tenant a (the stale start, its end as the new worker takes over, the new
    // start, the success), all for a's target; none for b's. They reach the target in order, one
    // at a time: only the oldest pending row is due.
    let mut statuses = Vec::new();
    let mut next = |claim: &gitsync_store::ClaimedDelivery| {
        assert_eq!(claim.tenant, a);
        assert_eq!(claim.destination, to_a.id);
        let message: serde_json::Value = serde_json::from_str(&claim.message).unwrap();
        assert_eq!(
            message["detail-type"],
            "Git Sync Resource Sync Status Change"
        );
        assert_eq!(message["account"], "111111111111");
        assert_eq!(message["detail"]["syncTarget"], "web");
        assert_eq!(message["detail"]["commit"], commit.as_str());
        assert_eq!(message["detail"]["repositoryName"], "outbox");
        statuses.push((
            message["detail"]["status"].as_str().unwrap().to_string(),
            message["detail"]["previousSync"]
                .as_str()
                .map(str::to_string),
        ));
    };
    let due = store.due_deliveries(later, 100).await.unwrap();
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(due[0].tenant, a);
    let first = store
        .claim_delivery(due[0].id, "one", later, 30_000)
        .await
        .unwrap()
        .unwrap();
    next(&first);
    // A held row is not claimed twice, nor due; the rows behind it wait.
    assert!(
        store
            .claim_delivery(due[0].id, "two", later, 30_000)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.due_deliveries(later, 100).await.unwrap().is_empty());
    // Nor can a row behind it be claimed by its id.
    assert!(
        store
            .claim_delivery(due[0].id + 1, "two", later, 30_000)
            .await
            .unwrap()
            .is_none()
    );
    // Delivered: the next is due. It fails and is retried later, holding the rest back.
    store.finish_delivery(&first, Ok(())).await.unwrap();
    let due = store.due_deliveries(later, 100).await.unwrap();
    let second = store
        .claim_delivery(due[0].id, "one", later, 30_000)
        .await
        .unwrap()
        .unwrap();
    next(&second);
    let retry_at = later.plus_millis(60_000);
    store
        .finish_delivery(&second, Err(("503 Service Unavailable", Some(retry_at))))
        .await
        .unwrap();
    assert!(store.due_deliveries(later, 100).await.unwrap().is_empty());
    let due = store.due_deliveries(retry_at, 100).await.unwrap();
    assert_eq!(due.iter().map(|d| d.id).collect::<Vec<_>>(), [second.id]);
    // Failed for good: the next is due.
    let second = store
        .claim_delivery(second.id, "one", retry_at, 30_000)
        .await
        .unwrap()
        .unwrap();
    store
        .finish_delivery(&second, Err(("gone", None)))
        .await
        .unwrap();
    let due = store.due_deliveries(retry_at, 100).await.unwrap();
    let third = store
        .claim_delivery(due[0].id, "one", retry_at, 30_000)
        .await
        .unwrap()
        .unwrap();
    next(&third);
    // A lease that ran out is taken over; the first holder's outcome is refused.
    let taken = store
        .claim_delivery(third.id, "two", retry_at.plus_millis(31_000), 30_000)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        store.finish_delivery(&third, Ok(())).await,
        Err(StoreError::LeaseLost(_))
    ));
    store.finish_delivery(&taken, Ok(())).await.unwrap();
    let due = store.due_deliveries(retry_at, 100).await.unwrap();
    let fourth = store
        .claim_delivery(due[0].id, "one", retry_at, 30_000)
        .await
        .unwrap()
        .unwrap();
    next(&fourth);
    store.release_delivery(&fourth).await.unwrap();
    assert_eq!(
        statuses,
        [
            ("IN_PROGRESS".to_string(), None),
            ("FAILED".to_string(), Some("IN_PROGRESS".to_string())),
            ("IN_PROGRESS".to_string(), Some("FAILED".to_string())),
            ("SUCCEEDED".to_string(), Some("IN_PROGRESS".to_string())),
        ]
    );
    let listed = store.list_notification_targets(&a).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].pending, listed[0].failed), (1, 1));
    // The newest failure shows.
    assert_eq!(listed[0].last_error.as_deref(), Some("gone"));
    let listed_b = store.list_notification_targets(&b).await.unwrap();
    assert_eq!(
        (listed_b[0].id.as_str(), listed_b[0].pending),
        (to_b.id.as_str(), 0)
    );
    // The endpoint and its secret, opened, for its own tenant only.
    assert_eq!(
        store.notification_endpoint(&a, &to_a.id).await.unwrap(),
        Some(("http://127.0.0.1:9/a".to_string(), b"sa".to_vec()))
    );
    assert_eq!(
        store.notification_endpoint(&b, &to_a.id).await.unwrap(),
        None
    );
    assert!(
        !store
            .remove_notification_target(&b, &to_a.id)
            .await
            .unwrap()
    );
    // Removing a target gives up what it had pending.
    assert!(
        store
            .remove_notification_target(&a, &to_a.id)
            .await
            .unwrap()
    );
    assert!(
        store
            .due_deliveries(retry_at, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.pending_deliveries().await.unwrap(), 0);
    // Settled rows go after their retention.
    assert_eq!(
        store
            .prune_outbox(Timestamp::now().plus_millis(1_000))
            .await
            .unwrap(),
        4
    );
}

#[tokio::test]
async fn the_outbox_is_written_with_the_change_and_claimed_under_leases_on_sqlite() {
    let (store, _dir) = sqlite(Limits::default()).await;
    outbox(store).await;
}

#[tokio::test]
async fn the_outbox_is_written_with_the_change_and_claimed_under_leases_on_postgres() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    outbox(db.store.clone()).await;
    db.drop_now().await;
}

/// Starts a sync attempt of a new stack (named after `repo`) of tenant `t` (one status change: IN_PROGRESS).
async fn start_an_attempt(store: &Store, t: &Tenant, repo: &str) {
    let l = link(store, t, repo).await;
    store
        .create_sync_configuration(t, &stack_spec(&l, repo, "main"))
        .await
        .unwrap();
    let target = SyncTarget::CfnStack {
        stack_name: repo.into(),
    };
    store
        .advance_targets(
            t,
            &RepositoryKey::Link(l.id.clone()),
            "main",
            &[gitsync_store::TargetAdvance {
                target: target.clone(),
                directory: "deploy.yaml".into(),
                revision: Revision {
                    branch: "main".into(),
                    directory: "deploy.yaml".into(),
                    owner_id: "o".into(),
                    repository_name: repo.into(),
                    provider_type: "GitHub".into(),
                    sha: "e".repeat(40),
                },
                watched_ids: "{}".into(),
            }],
        )
        .await
        .unwrap();
    let now = store.now().await.unwrap();
    let claim = store
        .claim_target(t, &target, "one", now, 60_000)
        .await
        .unwrap()
        .unwrap();
    store
        .begin_resource_attempt(&claim, &target, &[])
        .await
        .unwrap();
}

/// The dashboard's overview: the keys of an account's page of targets with their details.
async fn overview(
    store: &Store,
    account: &str,
    filter: gitsync_store::TargetFilter,
    offset: usize,
) -> (Vec<String>, i64) {
    let (rows, total) = store
        .dashboard_targets(account, &filter, offset, 2)
        .await
        .unwrap();
    (rows.iter().map(|r| r.target.key()).collect(), total)
}

/// The dashboard's overview lists every stack sync configuration (synced or not yet) of the
/// account and only its, filters by latest status, blockers and name, pages in order, and drops a
/// target whose configuration is deleted.
async fn dashboard_overview(store: Store) {
    use gitsync_store::{TargetFilter, TargetState};
    let (a, b) = (tenant("111111111111"), tenant("222222222222"));
    let l = link(&store, &a, "infra").await;
    for name in ["ok", "bad", "new", "held", "gone"] {
        store
            .create_sync_configuration(&a, &stack_spec(&l, name, "main"))
            .await
            .unwrap();
    }
    let other = link(&store, &b, "infra").await;
    store
        .create_sync_configuration(&b, &stack_spec(&other, "theirs", "main"))
        .await
        .unwrap();
    let rev = |sha: &str| Revision {
        branch: "main".into(),
        directory: "deploy.yaml".into(),
        owner_id: "o".into(),
        repository_name: "infra".into(),
        provider_type: "GitHub".into(),
        sha: sha.into(),
    };
    let event = SyncEvent {
        event_type: "SYNC_STARTED".into(),
        event: "started".into(),
        time: Timestamp::now(),
        external_id: None,
    };
    let repo = RepositoryKey::Link(l.id.clone());
    for (name, statuses) in [
        (
            "ok",
            &[ResourceSyncStatus::Failed, ResourceSyncStatus::Succeeded][..],
        ),
        (
            "bad",
            &[ResourceSyncStatus::Succeeded, ResourceSyncStatus::Failed][..],
        ),
        ("held", &[ResourceSyncStatus::Succeeded][..]),
        ("gone", &[ResourceSyncStatus::Failed][..]),
    ] {
        let target = SyncTarget::CfnStack {
            stack_name: name.into(),
        };
        store
            .upsert_sync_target(&a, &target, &repo, &rev("c"), Some("c"))
            .await
            .unwrap();
        for status in statuses {
            let attempt = NewResourceAttempt {
                target: target.clone(),
                status: ResourceSyncStatus::Initiated,
                initial_revision: rev("c"),
                target_revision: rev("c"),
                started_at: Timestamp::now(),
            };
            let id = store.start_resource_attempt(&a, &attempt).await.unwrap();
            store
                .record_resource_event(id, *status, &event)
                .await
                .unwrap();
        }
    }
    let scope = BlockerScope {
        sync_type: SyncType::CfnStackSync,
        resource_name: "held".into(),
        parent_resource_name: None,
    };
    store.create_blocker(&a, &scope, "held", &[]).await.unwrap();
    store.delete_sync_configuration(&a, "gone").await.unwrap();

    let all = TargetFilter::default();
    let (page, total) = overview(&store, &a.account_id, all.clone(), 0).await;
    assert_eq!((page, total), (vec!["bad".to_string(), "held".into()], 4));
    let (page, _) = overview(&store, &a.account_id, all.clone(), 2).await;
    assert_eq!(page, ["new", "ok"]);
    assert_eq!(
        overview(&store, &a.account_id, all.clone(), 4).await,
        (vec![], 4)
    );
    let state = |s| TargetFilter {
        state: Some(s),
        ..TargetFilter::default()
    };
    for (s, expected) in [
        (TargetState::Succeeded, &["held", "ok"][..]),
        (TargetState::Failed, &["bad"][..]),
        (TargetState::NeverSynced, &["new"][..]),
        (TargetState::Blocked, &["held"][..]),
        (TargetState::Running, &[][..]),
    ] {
        let (page, total) = overview(&store, &a.account_id, state(s), 0).await;
        assert_eq!(page, expected, "{s:?}");
        assert_eq!(total, expected.len() as i64, "{s:?}");
    }
    // A row carries what the overview shows: the latest attempt, blockers, where it syncs from.
    let (rows, _) = store
        .dashboard_targets(&a.account_id, &all, 0, 10)
        .await
        .unwrap();
    let row = |key: &str| rows.iter().find(|r| r.target.key() == key).unwrap();
    assert_eq!(
        row("ok").latest.as_ref().unwrap().status,
        ResourceSyncStatus::Succeeded
    );
    assert_eq!(row("held").active_blockers, 1);
    assert!(row("new").latest.is_none());
    assert_eq!(row("new").path, "deploy.yaml");
    assert_eq!(row("new").repository, "o/infra");
    // A name search is literal: `_` and `%` match themselves only.
    let search = |q: &str| TargetFilter {
        search: Some(q.into()),
        ..TargetFilter::default()
    };
    assert_eq!(
        overview(&store, &a.account_id, search("E"), 0).await.0,
        ["held", "new"]
    );
    assert_eq!(overview(&store, &a.account_id, search("_"), 0).await.1, 0);
    // Another account sees its own target only, and a region filter narrows.
    assert_eq!(
        overview(&store, &b.account_id, all.clone(), 0).await,
        (vec!["theirs".to_string()], 1)
    );
    let elsewhere = TargetFilter {
        region: Some("eu-west-1".into()),
        ..TargetFilter::default()
    };
    assert_eq!(overview(&store, &a.account_id, elsewhere, 0).await.1, 0);
}

#[tokio::test]
async fn the_dashboard_overview_on_sqlite() {
    let (store, _dir) = sqlite(Limits::default()).await;
    dashboard_overview(store).await;
}

#[tokio::test]
async fn the_dashboard_overview_on_postgres() {
    if let Some(db) = PgDatabase::create().await {
        dashboard_overview(db.store.clone()).await;
        db.drop_now().await;
    }
}

/// Tenants take turns in the outbox: a tenant with a backlog (two targets, a change each) does
/// not hold back another tenant's message written after it.
async fn outbox_turns(store: Store) {
    let (a, b) = (tenant("111111111111"), tenant("222222222222"));
    for address in ["http://127.0.0.1:9/a1", "http://127.0.0.1:9/a2"] {
        store
            .add_notification_target(&a, address, b"s")
            .await
            .unwrap();
    }
    store
        .add_notification_target(&b, "http://127.0.0.1:9/b", b"s")
        .await
        .unwrap();
    start_an_attempt(&store, &a, "first").await;
    start_an_attempt(&store, &a, "second").await;
    start_an_attempt(&store, &b, "third").await;
    let later = store.now().await.unwrap().plus_millis(1_000);
    let due = store.due_deliveries(later, 100).await.unwrap();
    // One row per target (each target's oldest), a's first, then b's, then a's second.
    let owners: Vec<&str> = due.iter().map(|d| d.tenant.account_id.as_str()).collect();
    assert_eq!(owners, ["111111111111", "222222222222", "111111111111"]);
    assert!(due[0].id < due[2].id && due[2].id < due[1].id, "{due:?}");
    // The limit takes the turns first.
    let two = store.due_deliveries(later, 2).await.unwrap();
    assert_eq!(two, due[..2]);
}

#[tokio::test]
async fn tenants_take_turns_in_the_outbox_on_sqlite() {
    let (store, _dir) = sqlite(Limits::default()).await;
    outbox_turns(store).await;
}

#[tokio::test]
async fn tenants_take_turns_in_the_outbox_on_postgres() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    outbox_turns(db.store.clone()).await;
    db.drop_now().await;
}

/// A webhook that queues a repository sync while a branch check holds the branch (listing the
/// remote) hands it to that check: it is taken, never cleared unseen and left QUEUED.
async fn queued_during_a_check(store: Store) {
    let a = tenant("111111111111");
    let l = link(&store, &a, "queued").await;
    store
        .create_sync_configuration(&a, &stack_spec(&l, "web", "main"))
        .await
        .unwrap();
    let now = store.now().await.unwrap();
    let claim = store
        .claim_due_branches("w", now, 60_000, 10)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.key.tenant == a)
        .unwrap();
    assert_eq!(claim.queued_attempt_id, None);
    let repository = RepositoryKey::Link(l.id.clone());
    assert_eq!(
        store
            .trigger_repository_branch(&a, &repository, "main")
            .await
            .unwrap(),
        1
    );
    let taken = store.take_queued_attempt(&claim).await.unwrap();
    assert!(taken.is_some(), "the sync queued during the check is taken");
    assert_eq!(store.take_queued_attempt(&claim).await.unwrap(), None);
}

/// Due branches are claimed in batches of at most the limit asked for, each once while its lease
/// holds; after the lease runs out the branch is claimable again, and a repository sync its last
/// holder left in flight is closed as abandoned by that claim.
async fn branch_claims(store: Store) {
    let a = tenant("111111111111");
    let b = tenant("222222222222");
    for (t, name) in [(&a, "one"), (&b, "two"), (&b, "three")] {
        let l = link(&store, t, name).await;
        store
            .create_sync_configuration(t, &stack_spec(&l, name, "main"))
            .await
            .unwrap();
    }
    let now = store.now().await.unwrap();
    let first = store
        .claim_due_branches("w1", now, 60_000, 2)
        .await
        .unwrap();
    assert_eq!(first.len(), 2);
    let second = store
        .claim_due_branches("w2", now, 60_000, 2)
        .await
        .unwrap();
    assert_eq!(second.len(), 1, "only the branch not claimed yet");
    assert!(first.iter().all(|c| c.key != second[0].key));
    // Each claim carries its own link's source, read with the batch.
    for claim in first.iter().chain(&second) {
        let source = claim.link_source.as_ref().expect("read with the claim");
        assert_eq!(
            RepositoryKey::Link(source.link_id.clone()),
            claim.key.repository
        );
    }
    assert!(
        store
            .claim_due_branches("w2", now, 60_000, 10)
            .await
            .unwrap()
            .is_empty(),
        "every branch is leased"
    );
    // w2's check stops with a repository sync in flight; its lease runs out.
    let held = &second[0];
    let id = store
        .start_repository_attempt(
            &held.key.tenant,
            held.key.sync_type,
            &held.key.repository,
            &held.key.branch,
            RepositorySyncStatus::InProgress,
            now,
        )
        .await
        .unwrap();
    let later = now.plus_millis(60_001);
    let again = store
        .claim_due_branches("w3", later, 60_000, 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 3, "every lease ran out");
    let retaken = again.iter().find(|c| c.key == held.key).unwrap();
    assert_eq!(retaken.epoch, held.epoch + 1);
    let (history, _) = store
        .repository_history(&held.key.tenant, &held.key.repository, None, 10)
        .await
        .unwrap();
    let closed = history.iter().find(|h| h.id == id).unwrap();
    assert_eq!(closed.attempt.status, RepositorySyncStatus::Failed);
    assert!(
        closed
            .attempt
            .events
            .iter()
            .any(|e| e.event_type == "ABANDONED"),
        "{:?}",
        closed.attempt.events
    );
    // The old holder's finish is refused: its lease is gone.
    let result = gitsync_store::BranchCheckResult {
        remote_sha: None,
        synced_sha: None,
        failures: 0,
        last_error: None,
        next_check_in: std::time::Duration::from_secs(60),
    };
    assert!(store.finish_branch_check(held, &result).await.is_err());
    // The new holder's finish schedules the next check a minute from the database's clock.
    store.finish_branch_check(retaken, &result).await.unwrap();
    let soon = store.now().await.unwrap();
    assert!(
        store
            .claim_due_branches("w4", soon.plus_millis(59_000), 60_000, 10)
            .await
            .unwrap()
            .iter()
            .all(|c| c.key != held.key),
        "not due before its minute"
    );
}

#[tokio::test]
async fn branches_are_claimed_in_batches_on_sqlite() {
    let (store, _dir) = sqlite(Limits::default()).await;
    branch_claims(store).await;
}

#[tokio::test]
async fn branches_are_claimed_in_batches_on_postgres() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    branch_claims(db.store.clone()).await;
    db.drop_now().await;
}

#[tokio::test]
async fn a_sync_queued_during_a_check_is_taken_by_it_on_sqlite() {
    let (store, _dir) = sqlite(Limits::default()).await;
    queued_during_a_check(store).await;
}

#[tokio::test]
async fn a_sync_queued_during_a_check_is_taken_by_it_on_postgres() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    queued_during_a_check(db.store.clone()).await;
    db.drop_now().await;
}

#[tokio::test]
async fn effects_are_fenced_and_atomic_on_sqlite() {
    let (store, _dir) = sqlite(Limits::default()).await;
    effects(store).await;
}

#[tokio::test]
async fn effects_are_fenced_and_atomic_on_postgres() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    effects(db.store.clone()).await;
    db.drop_now().await;
}

#[tokio::test]
async fn leases_fence_on_sqlite() {
    let (store, _dir) = sqlite(Limits::default()).await;
    leases(store).await;
}

#[tokio::test]
async fn leases_fence_on_postgres() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    leases(db.store.clone()).await;
    db.drop_now().await;
}

async fn database_clock(store: Store) {
    let db = store.now().await.unwrap().millis();
    let local = Timestamp::now().millis();
    assert!(
        (db - local).abs() < 5_000,
        "database clock {db} vs local {local}"
    );
}

#[tokio::test]
async fn the_database_clock_is_read_on_sqlite() {
    let (store, _dir) = sqlite(Limits::default()).await;
    database_clock(store).await;
}

#[tokio::test]
async fn the_database_clock_is_read_on_postgres() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    database_clock(db.store.clone()).await;
    db.drop_now().await;
}

/// Replicas that start together migrate a fresh database once, under the advisory lock.
#[tokio::test]
async fn replicas_starting_together_migrate_once_on_postgres() {
    use sqlx::{Connection, Row};
    let Ok(admin) = std::env::var("GITSYNC_TEST_DATABASE_URL") else {
        eprintln!(
            "SKIPPED: set GITSYNC_TEST_DATABASE_URL=postgres://… to run the PostgreSQL store tests"
        );
        return;
    };
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&admin).await.unwrap();
    let name = format!("gitsync_store_{}_{}", std::process::id(), uuid_like());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
    let key = MasterKey::generate();
    let open = || Store::open(&url, key.clone(), Limits::default());
    let (a, b, c) = tokio::join!(open(), open(), open());
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    let mut check = sqlx::AnyConnection::connect(&url).await.unwrap();
    let versions: Vec<i64> = sqlx::query("SELECT version FROM schema_migrations ORDER BY version")
        .fetch_all(&mut check)
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<i64, _>(0).unwrap())
        .collect();
    assert_eq!(versions, (1..=14).collect::<Vec<i64>>());
    drop(check);
    for s in [a, b, c] {
        s.close().await;
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
}

/// Service instances: API changes of a synced service raise blockers in the same write, a
/// blocker stops only its own instance (instance names repeat across services), a service
/// blocker stops every instance of that service, and deleting a synced service blocks it.
async fn service_blockers(store: Store) {
    use gitsync_store::{InstanceWrite, NewService, TargetAdvance};
    let t = tenant("555555555555");
    let c = store
        .create_connection(
            &t,
            ArnService::CodeConnections,
            "c",
            Some(ProviderType::GitHub),
            None,
            &[],
        )
        .await
        .unwrap();
    store
        .create_proton_repository(&t, ProtonProvider::GitHub, "o/ops", &c.arn, None, &[])
        .await
        .unwrap();
    let template = DeployedTemplate {
        name: "net".into(),
        major: 1,
        minor: 0,
    };
    // Deployed (as the engine would), so that it can be deleted at the end.
    deployed_environment(&store, &t, "staging", &template).await;
    for name in ["a", "b"] {
        let new = NewService {
            name: name.into(),
            description: None,
            template_name: "web".into(),
            template_major: 1,
            spec: "proton: ServiceSpec\n".into(),
            repository_connection_arn: None,
            repository_id: None,
            branch_name: None,
        };
        store
            .create_service(&t, &new, &[], None, &[])
            .await
            .unwrap();
    }
    let deployment = |commit: Option<&str>| InstanceDeployment {
        environment_name: "staging".into(),
        template: DeployedTemplate {
            name: "web".into(),
            major: 1,
            minor: 0,
        },
        spec: "proton: ServiceSpec\n".into(),
        client_token: None,
        source_commit: commit.map(str::to_string),
    };
    // Before the service sync configuration exists, API changes raise nothing.
    let early = store
        .deploy_service_instance(
            &t,
            "a",
            "dev",
            &deployment(None),
            InstanceWrite::Create,
            &[],
        )
        .await
        .unwrap();
    assert!(early.created && early.blocker.is_none());
    settle(&store, &early.deployment_id, DeploymentStatus::Succeeded).await;
    for service in ["a", "b"] {
        store
            .create_service_sync_config(
                &t,
                &ServiceSyncConfig {
                    service_name: service.into(),
                    repository_provider: ProtonProvider::GitHub,
                    repository_name: "o/ops".into(),
                    branch: "main".into(),
                    file_path: "ops.yaml".into(),
                },
            )
            .await
            .unwrap();
    }
    // Sync deploys raise nothing; API updates of a synced service's instance raise a blocker.
    let synced = store
        .deploy_service_instance(
            &t,
            "b",
            "dev",
            &deployment(Some("c1")),
            InstanceWrite::CreateOrUpdate,
            &[],
        )
        .await
        .unwrap();
    assert!(synced.blocker.is_none() && synced.instance.source_commit.as_deref() == Some("c1"));
    settle(&store, &synced.deployment_id, DeploymentStatus::Succeeded).await;
    let manual = store
        .deploy_service_instance(
            &t,
            "a",
            "dev",
            &deployment(None),
            InstanceWrite::Update,
            &[],
        )
        .await
        .unwrap();
    settle(&store, &manual.deployment_id, DeploymentStatus::Failed).await;
    let blocker = manual
        .blocker
        .expect("an API update of a synced service raises a blocker");
    assert!(
        blocker
            .created_reason
            .contains("updated outside service sync"),
        "{}",
        blocker.created_reason
    );
    // Service sync cannot deploy over the blocked change, even one made while its attempt ran.
    assert!(matches!(
        store
            .deploy_service_instance(&t, "a", "dev", &deployment(Some("c2")), InstanceWrite::CreateOrUpdate, &[])
            .await,
        Err(StoreError::Conflict(m)) if m.starts_with("Sync blocked: ")
    ));
    // Creating again, or updating a missing instance, is refused and writes nothing.
    assert!(matches!(
        store
            .deploy_service_instance(
                &t,
                "a",
                "dev",
                &deployment(None),
                InstanceWrite::Create,
                &[]
            )
            .await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        store
            .deploy_service_instance(
                &t,
                "a",
                "nope",
                &deployment(None),
                InstanceWrite::Update,
                &[]
            )
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store
            .latest_blockers(&t, SyncType::ServiceSync, "dev", Some("a"), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    // The blocker on a/dev stops a/dev only, not b/dev.
    let advance = |service: &str| TargetAdvance {
        target: SyncTarget::ServiceInstance {
            service_name: service.into(),
            instance_name: "dev".into(),
        },
        directory: "spec.yaml".into(),
        revision: Revision {
            branch: "main".into(),
            directory: "spec.yaml".into(),
            owner_id: "o".into(),
            repository_name: "ops".into(),
            provider_type: "GITHUB".into(),
            sha: "d".repeat(40),
        },
        watched_ids: "{}".into(),
    };
    let repo = RepositoryKey::Proton {
        provider: ProtonProvider::GitHub,
        name: "o/ops".into(),
    };
    store
        .advance_targets(&t, &repo, "main", &[advance("a"), advance("b")])
        .await
        .unwrap();
    let due = |store: Store| async move {
        let mut keys: Vec<String> = store
            .due_targets(Timestamp::now(), 10)
            .await
            .unwrap()
            .into_iter()
            .filter(|(tn, _)| tn.account_id == "555555555555")
            .map(|(_, t)| t.key())
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(due(store.clone()).await, vec!["b/dev".to_string()]);
    let blocked = gitsync_store::TargetFilter {
        state: Some(gitsync_store::TargetState::Blocked),
        ..Default::default()
    };
    assert_eq!(
        overview(&store, &t.account_id, blocked, 0).await,
        (vec!["a/dev".to_string()], 1)
    );
    // Deleting a service that sync deployed blocks the service: none of its instances is due.
    let (_, service_blocker) = store.delete_service(&t, "b").await.unwrap();
    let service_blocker = service_blocker.expect("deleting a synced service raises a blocker");
    assert_eq!(
        service_blocker.contexts[1],
        ("DeletedInstances".to_string(), "dev".to_string())
    );
    assert!(due(store.clone()).await.is_empty());
    // The dashboard shows both instances blocked: a/dev by its own blocker, b/dev by its service's.
    let blocked = gitsync_store::TargetFilter {
        state: Some(gitsync_store::TargetState::Blocked),
        ..Default::default()
    };
    assert_eq!(
        overview(&store, &t.account_id, blocked, 0).await,
        (vec!["a/dev".to_string(), "b/dev".into()], 2)
    );
    assert!(matches!(
        store.get_service_instance(&t, "b", "dev").await,
        Err(StoreError::NotFound(_))
    ));
    // Resolving it retries b's instances; a/dev stays blocked.
    store
        .resolve_blocker(&t, SyncType::ServiceSync, None, &service_blocker.id, "back")
        .await
        .unwrap();
    assert_eq!(due(store.clone()).await, vec!["b/dev".to_string()]);
    // A service without synced instances is deleted without a blocker; environments in use stay.
    assert!(matches!(
        store.delete_environment(&t, "staging").await,
        Err(StoreError::Conflict(_))
    ));
    let (_, none) = store.delete_service(&t, "a").await.unwrap();
    assert!(none.is_none());
    store.delete_environment(&t, "staging").await.unwrap();
}

/// Ends a deployment as the engine does: claimed, then finished.
async fn settle(store: &Store, id: &str, status: DeploymentStatus) {
    settle_as(store, id, status, None).await;
}

/// Proton deployments as engine work (issue 15): recorded in progress, claimed under a lease,
/// one at a time per resource, their change set remembered for a takeover, fenced, and ended
/// with the stack's outputs, which the resource then answers.
async fn deployments(store: Store) {
    use gitsync_store::{DeploymentEnd, NewEnvironment};
    let t = tenant("565656565656");
    let env = |spec: &str| NewEnvironment {
        name: "dev".into(),
        description: None,
        template: DeployedTemplate {
            name: "net".into(),
            major: 1,
            minor: 0,
        },
        spec: Some(spec.into()),
        proton_service_role_arn: Some("arn:aws:iam::565656565656:role/proton".into()),
        codebuild_role_arn: None,
        component_role_arn: None,
    };
    let created = store
        .create_environment(
            &t,
            &env("proton: EnvironmentSpec
"),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(created.deployment.status, DeploymentStatus::InProgress);
    assert_eq!(created.deployment.last_succeeded_id, None);
    let id = created.deployment.last_attempted_id.clone().unwrap();
    let now = Timestamp::now();
    assert!(store.due_deployments(now, 10).await.unwrap().contains(&id));
    // Another deployment of the environment waits for this one (ConflictException on the wire).
    let template = created.template.clone();
    assert!(matches!(
        store
            .update_environment(&t, "dev", None, Some((&template, None)), [None, None, None])
            .await,
        Err(StoreError::StillInUse(m)) if m.contains("in progress")
    ));
    let first = store
        .claim_deployment(&id, "one", now, 1_000)
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .claim_deployment(&id, "two", now, 1_000)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        first.target,
        DeploymentTarget::Environment { name: "dev".into() }
    );
    let change_set = "arn:aws:cloudformation:us-east-1:565656565656:changeSet/gitsync-x/1";
    store
        .record_deployment_event(
            &first,
            &SyncEvent::new(
                EventType::DeploymentStarted,
                "Created change set",
                Some(change_set),
            ),
        )
        .await
        .unwrap();
    // The first worker stops; a second takes over after the lease and sees its change set.
    let later = now.plus_millis(2_000);
    let second = store
        .claim_deployment(&id, "two", later, 60_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.change_set_id.as_deref(), Some(change_set));
    let end = DeploymentEnd {
        status: DeploymentStatus::Succeeded,
        message: "Stack proton-env-dev deployed".into(),
        stack_name: Some("proton-env-dev".into()),
        outputs: [("VpcId".to_string(), "vpc-1".to_string())].into(),
        resources: vec![StackResource {
            logical_id: "Vpc".into(),
            physical_id: "vpc-1".into(),
            resource_type: "AWS::EC2::VPC".into(),
        }],
    };
    assert!(matches!(
        store.finish_deployment(&first, &end).await,
        Err(StoreError::LeaseLost(_))
    ));
    store.finish_deployment(&second, &end).await.unwrap();
    let done = store.get_environment(&t, "dev").await.unwrap();
    assert_eq!(done.deployment.status, DeploymentStatus::Succeeded);
    assert_eq!(
        done.deployment.last_succeeded_id.as_deref(),
        Some(id.as_str())
    );
    assert_eq!(
        store
            .resource_outputs(
                &t,
                &DeploymentTarget::Environment { name: "dev".into() },
                None
            )
            .await
            .unwrap()["VpcId"],
        "vpc-1"
    );
    let dev_target = DeploymentTarget::Environment { name: "dev".into() };
    assert_eq!(
        store.provisioned_resources(&t, &dev_target).await.unwrap(),
        end.resources
    );
    let events = store.deployment_events(&id, 0).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        store
            .deployed_resource(&t, &DeploymentTarget::Environment { name: "dev".into() })
            .await
            .unwrap()
            .stack_name
            .as_deref(),
        Some("proton-env-dev")
    );
    // A failed update keeps the last success (and its outputs) and says why.
    let updated = store
        .update_environment(&t, "dev", None, Some((&template, None)), [None, None, None])
        .await
        .unwrap();
    let next = updated.deployment.last_attempted_id.clone().unwrap();
    let claim = store
        .claim_deployment(&next, "one", Timestamp::now(), 60_000)
        .await
        .unwrap()
        .unwrap();
    let failed = DeploymentEnd {
        status: DeploymentStatus::Failed,
        message: "Resource Vpc failed: CIDR overlaps".into(),
        stack_name: Some("proton-env-dev".into()),
        outputs: Default::default(),
        resources: Vec::new(),
    };
    store.finish_deployment(&claim, &failed).await.unwrap();
    let after = store.get_environment(&t, "dev").await.unwrap();
    assert_eq!(after.deployment.status, DeploymentStatus::Failed);
    assert_eq!(
        after.deployment.status_message.as_deref(),
        Some("Resource Vpc failed: CIDR overlaps")
    );
    assert_eq!(
        after.deployment.last_succeeded_id.as_deref(),
        Some(id.as_str())
    );
    assert!(
        store
            .due_deployments(Timestamp::now(), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Binding an existing resource to another stack: its next deployment takes that stack over.
    let dev = DeploymentTarget::Environment { name: "dev".into() };
    assert_eq!(
        store
            .bind_stack(&t, &dev, "AWSProton-dev-cloudformation-1")
            .await
            .unwrap(),
        gitsync_store::Binding::Bound
    );
    let bound = store.deployed_resource(&t, &dev).await.unwrap();
    assert!(bound.adopt && bound.stack_name.as_deref() == Some("AWSProton-dev-cloudformation-1"));
    assert!(matches!(
        store.bind_stack(&t, &dev, "not_a_stack").await,
        Err(StoreError::Invalid(_))
    ));
    // Not while it deploys.
    store
        .update_environment(&t, "dev", None, Some((&template, None)), [None, None, None])
        .await
        .unwrap();
    assert!(matches!(
        store.bind_stack(&t, &dev, "other").await,
        Err(StoreError::StillInUse(_))
    ));
}

#[tokio::test]
async fn deployments_are_engine_work_on_sqlite() {
    let (store, _dir) = sqlite(Limits::default()).await;
    deployments(store).await;
}

#[tokio::test]
async fn deployments_are_engine_work_on_postgres() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    deployments(db.store.clone()).await;
    db.drop_now().await;
}

#[tokio::test]
async fn service_blockers_on_sqlite() {
    let (store, _dir) = sqlite(Limits::default()).await;
    service_blockers(store).await;
}

#[tokio::test]
async fn service_blockers_on_postgres() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    service_blockers(db.store.clone()).await;
    db.drop_now().await;
}

/// Tenancy rules of issue 12: account policies, host endpoint changes, capped events, and the
/// commit a stack was really deployed from.
async fn tenancy(store: Store) {
    use gitsync_store::{TargetAdvance, TargetResult};
    // A tenant the operator said nothing about: its own account, untrusted.
    let policy = store.account_policy("111111111111").await.unwrap();
    assert_eq!(policy, AccountPolicy::default_for("111111111111"));
    assert!(
        policy
            .check_role("arn:aws:iam::222222222222:role/r")
            .is_err()
    );
    store
        .set_account_policy(&AccountPolicy {
            account_id: "111111111111".into(),
            deploy_accounts: vec![
                "222222222222".into(),
                "111111111111".into(),
                "222222222222".into(),
            ],
            trusted: true,
        })
        .await
        .unwrap();
    let policy = store.account_policy("111111111111").await.unwrap();
    assert!(policy.trusted);
    assert_eq!(policy.deploy_accounts, ["111111111111", "222222222222"]);
    assert!(
        policy
            .check_role("arn:aws:iam::222222222222:role/r")
            .is_ok()
    );
    assert!(matches!(
        store
            .set_account_policy(&AccountPolicy::default_for("12"))
            .await,
        Err(StoreError::Invalid(_))
    ));
    store.create_access_key("333333333333").await.unwrap();
    let listed: Vec<String> = store
        .list_account_policies()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.account_id)
        .collect();
    assert!(
        listed.contains(&"111111111111".to_string())
            && listed.contains(&"333333333333".to_string())
    );

    // A host's endpoint moves: its connections wait for the operator again, credentials gone.
    let a = tenant("111111111111");
    let host = store
        .create_host(
            &a,
            ArnService::CodeConnections,
            &HostSpec {
                name: "ghe".into(),
                provider_type: ProviderType::GitHubEnterpriseServer,
                provider_endpoint: "https://git.example.com".into(),
                vpc_configuration: None,
            },
            &[],
        )
        .await
        .unwrap();
    let c = store
        .create_connection(
            &a,
            ArnService::CodeConnections,
            "c",
            None,
            Some(&host.arn),
            &[],
        )
        .await
        .unwrap();
    store
        .activate_connection(&a, &c.arn, Some(b"{\"token\":\"t\"}"))
        .await
        .unwrap();
    store
        .update_host(&a, &host.arn, Some("https://git.example.com"), None)
        .await
        .unwrap();
    assert_eq!(
        store.get_connection(&a, &c.arn).await.unwrap().status,
        ConnectionStatus::Available
    );
    store
        .update_host(&a, &host.arn, Some("http://127.0.0.1:9"), None)
        .await
        .unwrap();
    assert_eq!(
        store.get_connection(&a, &c.arn).await.unwrap().status,
        ConnectionStatus::Pending
    );

    // Events of one attempt are capped; the last says how many were left out. Only a real
    // deployment records the commit as deployed.
    let limited = store.limits().events_per_attempt as usize;
    let l = link(&store, &a, "capped").await;
    store
        .create_sync_configuration(&a, &stack_spec(&l, "capped", "main"))
        .await
        .unwrap();
    let target = SyncTarget::CfnStack {
        stack_name: "capped".into(),
    };
    let mut claims = Vec::new();
    for (i, deployed) in [(1, false), (2, true)] {
        let revision = Revision {
            branch: "main".into(),
            directory: "deploy.yaml".into(),
            owner_id: "o".into(),
            repository_name: "capped".into(),
            provider_type: "GitHub".into(),
            sha: i.to_string().repeat(40),
        };
        store
            .advance_targets(
                &a,
                &RepositoryKey::Link(l.id.clone()),
                "main",
                &[TargetAdvance {
                    target: target.clone(),
                    directory: "deploy.yaml".into(),
                    revision,
                    watched_ids: format!("{{\"v\":{i}}}"),
                }],
            )
            .await
            .unwrap();
        let claim = store
            .claim_target(&a, &target, "w", Timestamp::now(), 60_000)
            .await
            .unwrap()
            .unwrap();
        let attempt = store
            .begin_resource_attempt(&claim, &target, &[])
            .await
            .unwrap();
        let events: Vec<SyncEvent> = (0..limited + 500)
            .map(|n| SyncEvent {
                event_type: "VALIDATION_FAILED".into(),
                event: format!("problem {n}"),
                time: Timestamp::now(),
                external_id: None,
            })
            .collect();
        store
            .finish_resource_attempt(
                &claim,
                attempt,
                &events,
                &TargetResult {
                    succeeded: true,
                    failures: 0,
                    deploy_failures: 0,
                    retry_at: None,
                    deployed,
                },
            )
            .await
            .unwrap();
        claims.push(claim);
    }
    assert_eq!(claims[0].deployed, None);
    assert_eq!(claims[1].deployed, None, "validation only deployed nothing");
    let state = sync_state(&store, &a, &target).await;
    let events = &state.latest_sync.events;
    assert_eq!(events.len(), limited);
    let last = events.last().unwrap();
    assert_eq!(last.event_type, "EVENTS_LEFT_OUT");
    assert!(
        last.event.starts_with("501 more event(s)"),
        "{}",
        last.event
    );
    // The next claim knows the commit of the last real deployment.
    assert!(
        store
            .retry_target(&a, SyncType::CfnStackSync, "capped")
            .await
            .unwrap()
    );
    let again = store
        .claim_target(&a, &target, "w", Timestamp::now(), 60_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.deployed, Some("2".repeat(40)));
}

#[tokio::test]
async fn tenancy_rules_hold_on_sqlite() {
    let (store, _dir) = sqlite(Limits::default()).await;
    tenancy(store).await;
}

#[tokio::test]
async fn tenancy_rules_hold_on_postgres() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    tenancy(db.store.clone()).await;
    db.drop_now().await;
}

/// `migrate-store` copies every table the migrations create, on both backends.
async fn every_table_is_copied(store: Store) {
    let mut copied: Vec<&str> = gitsync_store::COPIED_TABLES.to_vec();
    copied.sort();
    let mut tables = store.tables().await.unwrap();
    tables.sort();
    assert_eq!(tables, copied);
}

#[tokio::test]
async fn migrate_store_knows_every_table_on_sqlite() {
    let (store, _dir) = sqlite(Limits::default()).await;
    every_table_is_copied(store).await;
}

#[tokio::test]
async fn migrate_store_knows_every_table_on_postgres() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    every_table_is_copied(db.store.clone()).await;
    db.drop_now().await;
}

/// Creates an environment without a spec and ends its first deployment as the engine would.
async fn deployed_environment(store: &Store, t: &Tenant, name: &str, template: &DeployedTemplate) {
    let created = store
        .create_environment(
            t,
            &gitsync_store::NewEnvironment {
                name: name.into(),
                description: None,
                template: template.clone(),
                spec: None,
                proton_service_role_arn: None,
                codebuild_role_arn: None,
                component_role_arn: None,
            },
            &[],
        )
        .await
        .unwrap();
    let id = created.deployment.last_attempted_id.unwrap();
    settle(store, &id, DeploymentStatus::Succeeded).await;
}

/// Ends a successful deployment as the engine would, on stack `stack`.
async fn settle_on(store: &Store, id: &str, stack: &str) {
    settle_as(store, id, DeploymentStatus::Succeeded, Some(stack)).await;
}

/// Claims a due deployment and ends it as the engine would.
async fn settle_as(store: &Store, id: &str, status: DeploymentStatus, stack: Option<&str>) {
    let claim = store
        .claim_deployment(id, "test", Timestamp::now(), 60_000)
        .await
        .unwrap()
        .expect("the deployment is due");
    store
        .finish_deployment(
            &claim,
            &gitsync_store::DeploymentEnd {
                status,
                message: "settled by the test".into(),
                stack_name: stack.map(str::to_string),
                outputs: Default::default(),
                resources: Vec::new(),
            },
        )
        .await
        .unwrap();
}

/// Service pipelines (issue 15): created with their service, deployed after the service's
/// instances, one deployment at a time, deleted with the service (its stack first, and a service
/// of the same name waits for that), and the account settings they deploy with, per tenant.
async fn pipelines(store: Store) {
    use gitsync_store::{NewService, PipelineDeployment};
    let (t, other) = (tenant("575757575757"), tenant("585858585858"));
    let template = DeployedTemplate {
        name: "web".into(),
        major: 1,
        minor: 0,
    };
    deployed_environment(&store, &t, "staging", &template).await;
    let service = NewService {
        name: "app".into(),
        description: None,
        template_name: "web".into(),
        template_major: 1,
        spec: "proton: ServiceSpec\n".into(),
        repository_connection_arn: Some("arn:aws:codeconnections:us-east-1:1:connection/x".into()),
        repository_id: Some("o/app".into()),
        branch_name: Some("main".into()),
    };
    let pipeline = PipelineDeployment {
        template: template.clone(),
        spec: "proton: ServiceSpec\npipeline:\n  days: 2\n".into(),
    };
    let instance = InstanceDeployment {
        environment_name: "staging".into(),
        template: template.clone(),
        spec: "proton: ServiceSpec\ninstances:\n  - name: dev\n    environment: staging\n".into(),
        client_token: None,
        source_commit: None,
    };
    let (_, instances) = store
        .create_service(
            &t,
            &service,
            &[("dev".into(), instance)],
            Some(&pipeline),
            &[],
        )
        .await
        .unwrap();
    let created = store
        .get_service_pipeline(&t, "app")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(created.deployment.status, DeploymentStatus::InProgress);
    assert!(created.arn.ends_with(":service/app/pipeline"));
    let first = created.deployment.last_attempted_id.clone().unwrap();
    // The pipeline waits for the service's instances: it renders their outputs.
    let later = Timestamp::now().plus_millis(1_000);
    let due = store.due_deployments(later, 10).await.unwrap();
    assert!(
        due.contains(&instances[0].deployment_id) && !due.contains(&first),
        "{due:?}"
    );
    assert!(
        store
            .claim_deployment(&first, "eager", later, 60_000)
            .await
            .unwrap()
            .is_none(),
        "not claimed by id either"
    );
    settle(
        &store,
        &instances[0].deployment_id,
        DeploymentStatus::Succeeded,
    )
    .await;
    assert!(
        store
            .due_deployments(later, 10)
            .await
            .unwrap()
            .contains(&first)
    );
    // One deployment at a time.
    assert!(matches!(
        store.update_service_pipeline(&t, "app", &pipeline).await,
        Err(StoreError::StillInUse(_))
    ));
    settle_on(&store, &first, "proton-app-pipeline-0").await;
    let second = store
        .update_service_pipeline(&t, "app", &pipeline)
        .await
        .unwrap();
    assert_ne!(
        second.deployment.last_attempted_id.as_deref(),
        Some(first.as_str())
    );
    settle_on(
        &store,
        second.deployment.last_attempted_id.as_deref().unwrap(),
        "proton-app-pipeline-0",
    )
    .await;
    // Another tenant sees none of it; what is missing is named (the service, or its pipeline).
    assert_eq!(
        store.get_service_pipeline(&other, "app").await.unwrap(),
        None
    );
    let pipeline_of = |s: &str| DeploymentTarget::ServicePipeline { service: s.into() };
    match store.deployed_resource(&other, &pipeline_of("app")).await {
        Err(StoreError::NotFound(m)) => assert_eq!(m, "Service app does not exist"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        store
            .update_service_pipeline(&other, "app", &pipeline)
            .await,
        Err(StoreError::NotFound(_))
    ));
    // Account settings: given replaces, empty clears, absent keeps; per tenant.
    let role = "arn:aws:iam::575757575757:role/pipelines";
    store
        .update_account_settings(&t, Some(role), None)
        .await
        .unwrap();
    let kept = store
        .update_account_settings(&t, None, Some("arn:aws:iam::575757575757:role/build"))
        .await
        .unwrap();
    assert_eq!(kept.pipeline_service_role_arn.as_deref(), Some(role));
    assert_eq!(
        store.account_settings(&other).await.unwrap(),
        gitsync_store::AccountSettings::default()
    );
    let cleared = store
        .update_account_settings(&t, Some(""), None)
        .await
        .unwrap();
    assert_eq!(cleared.pipeline_service_role_arn, None);
    assert!(cleared.pipeline_codebuild_role_arn.is_some());
    // Deleting the service deletes the pipeline's stack first; a service of the same name
    // waits for that, and nothing of it is written meanwhile.
    store.delete_service(&t, "app").await.unwrap();
    let deleting = store
        .get_service_pipeline(&t, "app")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        deleting.deployment.status,
        DeploymentStatus::DeleteInProgress
    );
    let again = store
        .create_service(&t, &service, &[], Some(&pipeline), &[])
        .await;
    assert!(
        matches!(again, Err(StoreError::StillInUse(ref m)) if m.contains("still being deleted")),
        "{again:?}"
    );
    assert!(matches!(
        store.get_service(&t, "app").await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn service_pipelines_on_sqlite() {
    let (store, _dir) = sqlite(Limits::default()).await;
    pipelines(store).await;
}

#[tokio::test]
async fn service_pipelines_on_postgres() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    pipelines(db.store.clone()).await;
    db.drop_now().await;
}

/// Pull requests: what the host lists is recorded (new and moved heads due, the rest closed), a
/// preview is claimed under a lease, and settling it writes each stack's comment to the outbox —
/// unless the head moved meanwhile (newest head wins) or the claim is stale. No sync target or
/// attempt is touched.
async fn pull_requests(store: Store) {
    use gitsync_model::githost::{OpenPullRequest, PullRequestComment};
    use gitsync_store::{PR_COMMENT_DELIVERER, PreviewsDone, StackPreview};
    let a = tenant("111111111111");
    let l = link(&store, &a, "pulls").await;
    let secrets = gitsync_model::githost::ConnectionSecrets {
        token: Some("t".into()),
        ..Default::default()
    };
    store
        .activate_connection(&a, &l.connection_arn, Some(&secrets.to_bytes()))
        .await
        .unwrap();
    let mut spec = stack_spec(&l, "web", "main");
    spec.pull_request_comment = Some(true);
    store.create_sync_configuration(&a, &spec).await.unwrap();
    // A stack on another branch of the link that previews nothing.
    store
        .create_sync_configuration(&a, &stack_spec(&l, "api", "dev"))
        .await
        .unwrap();
    let claims = store
        .claim_due_branches("w", store.now().await.unwrap(), 60_000, 10)
        .await
        .unwrap();
    let previews = |branch: &str| {
        claims
            .iter()
            .find(|c| c.key.branch == branch)
            .unwrap()
            .previews_pull_requests
    };
    assert!(previews("main"), "the claim says main's stack previews");
    assert!(!previews("dev"));
    let open = |number: u64, head: &str| OpenPullRequest {
        number,
        head_sha: head.repeat(40),
        head_ref: format!("refs/pull/{number}/head"),
        base_branch: "main".into(),
        from_fork: false,
        url: None,
    };
    let due = store
        .record_open_pull_requests(&a, &l.id, "main", &[open(1, "a"), open(2, "b")])
        .await
        .unwrap();
    assert_eq!(due, 2);
    // Listed again unchanged: nothing new is due.
    let again = store
        .record_open_pull_requests(&a, &l.id, "main", &[open(1, "a"), open(2, "b")])
        .await
        .unwrap();
    assert_eq!(again, 0);
    let now = store.now().await.unwrap();
    let claim = store
        .claim_pull_request(&a, &l.id, 1, "me", now, 60_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claim.head_sha, "a".repeat(40));
    // Held: not claimable by another worker, not listed as due.
    assert!(
        store
            .claim_pull_request(&a, &l.id, 1, "other", now, 60_000)
            .await
            .unwrap()
            .is_none()
    );
    let listed: Vec<u64> = store
        .due_pull_requests(now, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, _, n)| n)
        .collect();
    assert_eq!(listed, [2]);
    let comment = |body: &str| PullRequestComment {
        link_id: l.id.clone(),
        owner_id: "o".into(),
        repository_name: "pulls".into(),
        number: 1,
        marker: "<!-- m -->".into(),
        body: body.into(),
    };
    let done = |body: &str| {
        PreviewsDone::Done(vec![StackPreview {
            resource_name: "web".into(),
            summary: "1 resource change(s)".into(),
            comment: Some(comment(body)),
        }])
    };
    // The head moves while the preview runs: its result is dropped, and the new head is due.
    store
        .record_open_pull_requests(&a, &l.id, "main", &[open(1, "c"), open(2, "b")])
        .await
        .unwrap();
    store
        .finish_pull_request(&claim, &done("old"))
        .await
        .unwrap();
    let summary = store
        .delivery_summary(&a, PR_COMMENT_DELIVERER, &format!("{}/1/web", l.id))
        .await
        .unwrap();
    assert_eq!(
        summary.pending, 0,
        "nothing is posted for a head that moved"
    );
    assert!(
        store
            .pull_request_previews(&a, "web")
            .await
            .unwrap()
            .is_empty()
    );
    let now = store.now().await.unwrap();
    let claim = store
        .claim_pull_request(&a, &l.id, 1, "me", now, 60_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claim.head_sha, "c".repeat(40));
    // A stale claim (its lease taken over) writes nothing.
    let later = now.plus_millis(120_000);
    let taken = store
        .claim_pull_request(&a, &l.id, 1, "other", later, 60_000)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        store.finish_pull_request(&claim, &done("stale")).await,
        Err(StoreError::LeaseLost(_))
    ));
    store
        .finish_pull_request(&taken, &done("new"))
        .await
        .unwrap();
    let summary = store
        .delivery_summary(&a, PR_COMMENT_DELIVERER, &format!("{}/1/web", l.id))
        .await
        .unwrap();
    assert_eq!(summary.pending, 1);
    let previews = store.pull_request_previews(&a, "web").await.unwrap();
    assert_eq!(previews.len(), 1);
    assert_eq!(
        (
            previews[0].number,
            previews[0].head_sha.as_str(),
            previews[0].open
        ),
        (1, "c".repeat(40).as_str(), true)
    );
    // Previewed: no longer due. No longer listed: closed.
    let later = store.now().await.unwrap().plus_millis(1_000);
    let due: Vec<u64> = store
        .due_pull_requests(later, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, _, n)| n)
        .collect();
    assert_eq!(due, [2]);
    store
        .record_open_pull_requests(&a, &l.id, "main", &[open(2, "b")])
        .await
        .unwrap();
    assert!(!store.pull_request_previews(&a, "web").await.unwrap()[0].open);
    // Another tenant sees none of it, and its branch check previews nothing.
    let b = tenant("222222222222");
    assert!(
        store
            .pull_request_previews(&b, "web")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .claim_due_branches("w", later, 60_000, 10)
            .await
            .unwrap()
            .iter()
            .all(|c| c.key.tenant != b),
        "tenant b watches no branch"
    );
    // No sync target was made by any of this.
    assert!(store.due_targets(later, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn pull_request_previews_are_leased_and_fenced_on_sqlite() {
    let (store, _dir) = sqlite(Limits::default()).await;
    pull_requests(store).await;
}

#[tokio::test]
async fn pull_request_previews_are_leased_and_fenced_on_postgres() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    pull_requests(db.store.clone()).await;
    db.drop_now().await;
}

/// Dashboard sessions: valid until they expire, are closed, or their key is deleted; the store
/// keeps only a hash of the id.
async fn dashboard_sessions(store: Store) {
    let key = store.create_access_key("444455556666").await.unwrap();
    let now = Timestamp::now();
    let (id, expires) = store.open_dashboard_session(&key, now).await.unwrap();
    assert_eq!(expires.millis() - now.millis(), 12 * 3600 * 1000);
    let session = store.dashboard_session(&id, now).await.unwrap().unwrap();
    assert_eq!(session.account_id, "444455556666");
    assert_eq!(session.access_key_id, key.access_key_id);
    // Expired: no longer a session.
    assert!(
        store
            .dashboard_session(&id, expires)
            .await
            .unwrap()
            .is_none()
    );
    // Another id, or the stored hash used as an id, opens nothing.
    assert!(
        store
            .dashboard_session("0".repeat(64).as_str(), now)
            .await
            .unwrap()
            .is_none()
    );
    // Closed: gone.
    store.close_dashboard_session(&id).await.unwrap();
    assert!(store.dashboard_session(&id, now).await.unwrap().is_none());
    // The key deleted: its sessions end with it.
    let (second, _) = store.open_dashboard_session(&key, now).await.unwrap();
    assert!(
        store
            .dashboard_session(&second, now)
            .await
            .unwrap()
            .is_some()
    );
    assert!(store.delete_access_key(&key.access_key_id).await.unwrap());
    assert!(
        store
            .dashboard_session(&second, now)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn dashboard_sessions_end_on_sqlite() {
    let (store, _dir) = sqlite(Limits::default()).await;
    dashboard_sessions(store).await;
}

#[tokio::test]
async fn dashboard_sessions_end_on_postgres() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    dashboard_sessions(db.store.clone()).await;
    db.drop_now().await;
}
