//! `gitsync status`: a target's sync state in words: a stack, a template major version or a
//! service instance. Blockers come first: they are what stops a sync.

use crate::cli::StatusArgs;
use anyhow::Result;
use gitsync_model::{ResourceSyncAttempt, SyncTarget, SyncType, Timestamp};

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
        print_event("  ", e);
    }
}

/// One event of an attempt, on one line after `indent`.
pub(crate) fn print_event(indent: &str, e: &gitsync_model::SyncEvent) {
    let id = e
        .external_id
        .as_deref()
        .map(|i| format!(" [{i}]"))
        .unwrap_or_default();
    println!(
        "{indent}{}  {:<22} {}{id}",
        time(e.time),
        e.event_type,
        e.event
    );
}

/// How the stack's commit statuses (`PublishDeploymentStatus`) reached its Git host.
async fn print_commit_statuses(
    store: &gitsync_store::Store,
    tenant: &gitsync_model::Tenant,
    config: &gitsync_model::SyncConfiguration,
) -> Result<()> {
    let summary = store
        .delivery_summary(
            tenant,
            gitsync_store::COMMIT_STATUS_DELIVERER,
            &gitsync_store::commit_status_destination(
                &config.repository_link_id,
                &config.resource_name,
            ),
        )
        .await?;
    let publishing = config.publish_deployment_status == Some(true);
    if !publishing && summary.delivered + summary.pending + summary.failed == 0 {
        return Ok(());
    }
    println!(
        "Commit statuses ({}): {} posted, {} waiting, {} given up",
        if publishing {
            "PublishDeploymentStatus ENABLED"
        } else {
            "PublishDeploymentStatus DISABLED"
        },
        summary.delivered,
        summary.pending,
        summary.failed
    );
    if let Some(error) = summary.last_error {
        println!("  last failure: {error}");
    }
    Ok(())
}

/// The stack's last pull request previews (`PullRequestComment`).
async fn print_previews(
    store: &gitsync_store::Store,
    tenant: &gitsync_model::Tenant,
    config: &gitsync_model::SyncConfiguration,
) -> Result<()> {
    let previews = store
        .pull_request_previews(tenant, &config.resource_name)
        .await?;
    if config.pull_request_comment != Some(true) && previews.is_empty() {
        return Ok(());
    }
    println!(
        "Pull request previews (PullRequestComment {}):{}",
        if config.pull_request_comment == Some(true) {
            "ENABLED"
        } else {
            "DISABLED"
        },
        if previews.is_empty() { " none yet" } else { "" }
    );
    for p in previews {
        println!(
            "  #{} at {} ({}, {}): {}",
            p.number,
            p.head_sha.get(..12).unwrap_or(&p.head_sha),
            if p.open { "open" } else { "closed" },
            time(p.previewed_at),
            p.summary
        );
    }
    Ok(())
}

pub async fn run(args: StatusArgs) -> Result<()> {
    let state = args.state.open().await?;
    let tenant = args.tenant.tenant();
    let store = &state.store;
    // Which target, and the (resource, parent) names its blockers are filed under.
    let (target, blocker_scopes) = match (&args.resource_name, &args.service, &args.instance) {
        (Some(stack), _, _) => {
            match store.get_sync_configuration(&tenant, stack).await {
                Ok(c) => {
                    println!(
                        "Stack {} syncs from {}/{} branch {} ({}), deployment file {}",
                        c.resource_name,
                        c.owner_id,
                        c.repository_name,
                        c.branch,
                        c.provider_type,
                        c.config_file
                    );
                    print_commit_statuses(store, &tenant, &c).await?;
                    print_previews(store, &tenant, &c).await?;
                }
                Err(_) => println!("Stack {stack} has no sync configuration (history is kept)"),
            }
            (
                SyncTarget::CfnStack {
                    stack_name: stack.clone(),
                },
                vec![(SyncType::CfnStackSync, stack.clone(), None)],
            )
        }
        (None, Some(service), Some(instance)) => {
            match store.get_service_sync_config(&tenant, service).await {
                Ok(c) => println!(
                    "Service {service} syncs from {} ({}) branch {}, proton-ops file {}",
                    c.repository_name, c.repository_provider, c.branch, c.file_path
                ),
                Err(_) => println!("Service {service} has no service sync configuration"),
            }
            match store.get_service_instance(&tenant, service, instance).await {
                Ok(i) => println!(
                    "Instance {instance}: environment {}, template {} {}.{}, last deployment {} {}{}",
                    i.environment_name,
                    i.template.name,
                    i.template.major,
                    i.template.minor,
                    i.deployment.last_attempted_id.as_deref().unwrap_or("-"),
                    i.deployment.status,
                    i.source_commit
                        .map(|c| format!(" from commit {c}"))
                        .unwrap_or_else(|| " (made through the API)".into())
                ),
                Err(_) => println!("Instance {instance} does not exist"),
            }
            (
                SyncTarget::ServiceInstance {
                    service_name: service.clone(),
                    instance_name: instance.clone(),
                },
                vec![
                    (
                        SyncType::ServiceSync,
                        instance.clone(),
                        Some(service.clone()),
                    ),
                    (SyncType::ServiceSync, service.clone(), None),
                ],
            )
        }
        _ => match args.template.parsed()? {
            Some((name, template_type, major)) => {
                let kind = template_type.as_str();
                match store
                    .get_template_sync_config(&tenant, name, template_type)
                    .await
                {
                    Ok(c) => println!(
                        "Template {name} ({kind}) syncs from {} ({}) branch {}{}, major version {major} from v{major}/",
                        c.repository_name,
                        c.repository_provider,
                        c.branch,
                        c.subdirectory
                            .map(|d| format!(", subdirectory {d}"))
                            .unwrap_or_default()
                    ),
                    Err(_) => {
                        println!("Template {name} ({kind}) has no template sync configuration")
                    }
                }
                // Template versions get no blockers (as in AWS).
                (
                    SyncTarget::TemplateVersion {
                        template_name: name.to_string(),
                        template_type,
                        major: major.to_string(),
                    },
                    Vec::new(),
                )
            }
            None => anyhow::bail!(
                "give --resource-name STACK, --service NAME --instance NAME, or --template NAME --template-type TYPE --major N"
            ),
        },
    };
    // Blockers first (ACTIVE ones lead): they are why nothing syncs.
    let mut blockers = Vec::new();
    for (sync_type, resource, parent) in &blocker_scopes {
        blockers.extend(
            store
                .latest_blockers(&tenant, *sync_type, resource, parent.as_deref(), 5)
                .await?,
        );
    }
    blockers.sort_by_key(|b| b.status != gitsync_model::BlockerStatus::Active);
    if blockers.is_empty() && !blocker_scopes.is_empty() {
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
    Ok(())
}
