//! `gitsync status`: a stack's sync state in words.

use crate::cli::StatusArgs;
use anyhow::Result;
use gitsync_model::{ResourceSyncAttempt, SyncTarget, SyncType, Tenant, Timestamp};

fn time(t: Timestamp) -> String {
    t.utc_string()
}

fn print_attempt(title: &str, a: &ResourceSyncAttempt) {
    println!(
        "{title}: {} at commit {} (from {}), started {}",
        a.status,
        a.target_revision.sha,
        a.initial_revision.sha,
        time(a.started_at)
    );
    for e in &a.events {
        let id = e
            .external_id
            .as_deref()
            .map(|i| format!(" [{i}]"))
            .unwrap_or_default();
        println!("  {}  {:<22} {}{id}", time(e.time), e.event_type, e.event);
    }
}

pub async fn run(args: StatusArgs) -> Result<()> {
    let state = args.state.open().await?;
    let tenant = Tenant::new(&args.account_id, &args.region);
    let store = &state.store;
    match store
        .get_sync_configuration(&tenant, &args.resource_name)
        .await
    {
        Ok(c) => println!(
            "Stack {} syncs from {}/{} branch {} ({}), deployment file {}",
            c.resource_name,
            c.owner_id,
            c.repository_name,
            c.branch,
            c.provider_type,
            c.config_file
        ),
        Err(_) => println!(
            "Stack {} has no sync configuration (history is kept)",
            args.resource_name
        ),
    }
    let target = SyncTarget::CfnStack {
        stack_name: args.resource_name.clone(),
    };
    match store.resource_sync_state(&tenant, &target).await? {
        None => println!("Nothing has synced it yet."),
        Some(s) => {
            match &s.desired_state {
                Some(d) => println!(
                    "Desired state: commit {} on {} ({})",
                    d.sha, d.branch, d.directory
                ),
                None => println!("Desired state: none"),
            }
            print_attempt("Latest sync", &s.latest_sync);
            match &s.latest_successful_sync {
                Some(a) if a != &s.latest_sync => print_attempt("Latest successful sync", a),
                Some(_) => {}
                None => println!("Latest successful sync: none"),
            }
        }
    }
    let blockers = store
        .latest_blockers(
            &tenant,
            SyncType::CfnStackSync,
            &args.resource_name,
            None,
            5,
        )
        .await?;
    if blockers.is_empty() {
        println!("Blockers: none");
    }
    for b in blockers {
        println!(
            "Blocker {} {}: {} (since {})",
            b.id,
            b.status,
            b.created_reason,
            time(b.created_at)
        );
        for (k, v) in &b.contexts {
            println!("  {k} = {v}");
        }
        if let Some(r) = &b.resolved_reason {
            println!("  resolved: {r}");
        }
    }
    Ok(())
}
