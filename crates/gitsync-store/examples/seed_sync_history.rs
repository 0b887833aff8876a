//! Test fixture: writes a realistic sync history into a gitsync database through the store, the
//! way the sync engine records it, so that client tests can read statuses, events, timestamps and
//! blockers over the wire before (and independently of) a real sync.
//!
//! Usage: seed_sync_history DATABASE_URL MASTER_KEY_FILE ACCOUNT REGION [LINK_ID]
//! Prints a JSON object with the ids it created.

use gitsync_model::{
    BlockerScope, Limits, RepositorySyncStatus, ResourceSyncStatus, Revision, SyncEvent,
    SyncTarget, SyncType, TemplateType, Tenant, Timestamp,
};
use gitsync_store::{MasterKey, NewResourceAttempt, RepositoryKey, Store};

fn event(kind: &str, text: &str, external_id: Option<&str>) -> SyncEvent {
    SyncEvent {
        event_type: kind.into(),
        event: text.into(),
        time: Timestamp::now(),
        external_id: external_id.map(str::to_string),
    }
}

fn revision(provider: &str, owner: &str, repo: &str, directory: &str, sha: &str) -> Revision {
    Revision {
        branch: "main".into(),
        directory: directory.into(),
        owner_id: owner.into(),
        repository_name: repo.into(),
        provider_type: provider.into(),
        sha: sha.into(),
    }
}

/// Two attempts for `target`: one that succeeded at `old`, and a newer one at `new` that failed.
async fn history(
    store: &Store,
    tenant: &Tenant,
    target: SyncTarget,
    repo: RepositoryKey,
    old: Revision,
    new: Revision,
) -> Result<(), Box<dyn std::error::Error>> {
    store
        .upsert_sync_target(tenant, &target, &repo, &new, Some(&new.sha))
        .await?;
    let first = store
        .start_resource_attempt(
            tenant,
            &NewResourceAttempt {
                target: target.clone(),
                status: ResourceSyncStatus::Initiated,
                initial_revision: old.clone(),
                target_revision: old.clone(),
                started_at: Timestamp(1_700_000_000_123),
            },
        )
        .await?;
    let name = target.display_name();
    store
        .record_resource_event(
            first,
            ResourceSyncStatus::InProgress,
            &event(
                "SYNC_STARTED",
                &format!("Syncing {name} to commit {}", old.sha),
                Some(&old.sha),
            ),
        )
        .await?;
    store
        .record_resource_event(
            first,
            ResourceSyncStatus::Succeeded,
            &event("DEPLOYMENT_SUCCEEDED", "Stack UPDATE_COMPLETE", None),
        )
        .await?;
    let second = store
        .start_resource_attempt(
            tenant,
            &NewResourceAttempt {
                target,
                status: ResourceSyncStatus::Initiated,
                initial_revision: old,
                target_revision: new.clone(),
                started_at: Timestamp::now(),
            },
        )
        .await?;
    store
        .record_resource_event(
            second,
            ResourceSyncStatus::InProgress,
            &event(
                "SYNC_STARTED",
                &format!("Syncing {name} to commit {}", new.sha),
                Some(&new.sha),
            ),
        )
        .await?;
    store
        .record_resource_event(
            second,
            ResourceSyncStatus::Failed,
            &event(
                "VALIDATION_FAILED",
                "parameters: unknown parameter 'Foo' (template declares: Bar, Baz)",
                None,
            ),
        )
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: seed_sync_history DATABASE_URL MASTER_KEY_FILE ACCOUNT REGION [LINK_ID]");
        std::process::exit(2);
    }
    let hex = std::fs::read_to_string(&args[2])?;
    let hex = hex.trim();
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)?;
    }
    let store = Store::open(&args[1], MasterKey::from_bytes(key), Limits::default()).await?;
    let tenant = Tenant::new(&args[3], &args[4]);
    let link = args
        .get(5)
        .cloned()
        .unwrap_or_else(|| "00000000-0000-0000-0000-000000000000".into());
    let (old, new) = (
        "1111111111111111111111111111111111111111",
        "2222222222222222222222222222222222222222",
    );

    history(
        &store,
        &tenant,
        SyncTarget::CfnStack {
            stack_name: "seeded-stack".into(),
        },
        RepositoryKey::Link(link.clone()),
        revision("GitHub", "octo", "infra", "deploy/stack.yaml", old),
        revision("GitHub", "octo", "infra", "deploy/stack.yaml", new),
    )
    .await?;
    let proton_repo = RepositoryKey::Proton {
        provider: gitsync_model::ProtonProvider::GitHub,
        name: "octo/templates".into(),
    };
    history(
        &store,
        &tenant,
        SyncTarget::TemplateVersion {
            template_name: "seeded-template".into(),
            template_type: TemplateType::Environment,
            major: "1".into(),
        },
        proton_repo.clone(),
        revision("GITHUB", "octo", "templates", "seeded-template/v1", old),
        revision("GITHUB", "octo", "templates", "seeded-template/v1", new),
    )
    .await?;
    history(
        &store,
        &tenant,
        SyncTarget::ServiceInstance {
            service_name: "seeded-service".into(),
            instance_name: "seeded-instance".into(),
        },
        proton_repo.clone(),
        revision("GITHUB", "octo", "templates", "specs/seeded.yaml", old),
        revision("GITHUB", "octo", "templates", "specs/seeded.yaml", new),
    )
    .await?;

    let repo_attempt = store
        .start_repository_attempt(
            &tenant,
            SyncType::CfnStackSync,
            &RepositoryKey::Link(link.clone()),
            "main",
            RepositorySyncStatus::Initiated,
            Timestamp::now(),
        )
        .await?;
    store
        .record_repository_event(
            repo_attempt,
            RepositorySyncStatus::InProgress,
            &event("CLONE_STARTED", "Clone started", None),
        )
        .await?;
    store
        .record_repository_event(
            repo_attempt,
            RepositorySyncStatus::InProgress,
            &event("CONFIG_UPDATED", "Updated configuration", None),
        )
        .await?;
    store
        .record_repository_event(
            repo_attempt,
            RepositorySyncStatus::Succeeded,
            &event(
                "STARTING_SYNC",
                &format!("Starting syncs for commit {new}"),
                Some(new),
            ),
        )
        .await?;
    let proton_attempt = store
        .start_repository_attempt(
            &tenant,
            SyncType::TemplateSync,
            &proton_repo,
            "main",
            RepositorySyncStatus::Initiated,
            Timestamp::now(),
        )
        .await?;
    store
        .record_repository_event(
            proton_attempt,
            RepositorySyncStatus::Succeeded,
            &event("CLONE_STARTED", "Clone started", None),
        )
        .await?;

    let contexts = vec![
        ("StackStatus".to_string(), "ROLLBACK_COMPLETE".to_string()),
        ("Commit".to_string(), new.to_string()),
    ];
    let stack_blocker = store
        .create_blocker(
            &tenant,
            &BlockerScope {
                sync_type: SyncType::CfnStackSync,
                resource_name: "seeded-stack".into(),
                parent_resource_name: None,
            },
            "Stack seeded-stack is in ROLLBACK_COMPLETE",
            &contexts,
        )
        .await?;
    let instance_blocker = store
        .create_blocker(
            &tenant,
            &BlockerScope {
                sync_type: SyncType::ServiceSync,
                resource_name: "seeded-instance".into(),
                parent_resource_name: Some("seeded-service".into()),
            },
            "Service instance seeded-instance was updated outside Git",
            &[],
        )
        .await?;
    println!(
        "{}",
        serde_json::json!({"stack_blocker": stack_blocker.id, "instance_blocker": instance_blocker.id, "link": link, "old": old, "new": new})
    );
    store.close().await;
    Ok(())
}
