//! `gitsync sync`: sync now, without waiting for the next poll or a webhook.

use crate::cli::SyncArgs;
use anyhow::{Result, bail};
use gitsync_model::{BlockerStatus, SyncType};

pub async fn run(args: SyncArgs) -> Result<()> {
    let tenant = args.tenant.tenant();
    let state = args.state.open().await?;
    let store = &state.store;
    if let Some(name) = &args.resource_name {
        // The configuration must exist: a typo says so instead of doing nothing.
        store.get_sync_configuration(&tenant, name).await?;
        let blockers = store
            .latest_blockers(&tenant, SyncType::CfnStackSync, name, None, 1)
            .await?;
        if let Some(active) = blockers.iter().find(|b| b.status == BlockerStatus::Active) {
            bail!(
                "stack {name} is blocked ({}): a person resolves that first, with `aws codeconnections update-sync-blocker --id {} --resource-name {name} --sync-type CFN_STACK_SYNC --resolved-reason …`",
                active.created_reason,
                active.id
            );
        }
        if !store
            .retry_target(&tenant, SyncType::CfnStackSync, name)
            .await?
        {
            bail!(
                "stack {name} has no commit to sync yet: its branch has not been read; try --repository-link-id with --branch"
            );
        }
        println!("stack {name} will retry its latest commit now");
    } else if let (Some(link_id), Some(branch)) = (&args.repository_link_id, &args.branch) {
        let link = store.get_repository_link(&tenant, link_id).await?;
        let checks = store
            .trigger_branch(&tenant, &link.owner_id, &link.repository_name, branch)
            .await?;
        if checks == 0 {
            bail!(
                "no sync configuration watches branch {branch} of {}/{}",
                link.owner_id,
                link.repository_name
            );
        }
        println!(
            "branch {branch} of {}/{} will be checked now",
            link.owner_id, link.repository_name
        );
    }
    Ok(())
}
