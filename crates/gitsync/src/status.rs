//! `gitsync status`: a stack's sync state in words.

use crate::cli::StatusArgs;
use anyhow::Result;
use gitsync_model::{ResourceSyncAttempt, SyncTarget, SyncType, Tenant, Timestamp};

fn time(t: Timestamp) -> String {
    let secs = t.millis().div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
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
