//! `gitsync notifications …`: where each tenant's status-change events go (docs/events.md,
//! "Status-change notifications").

use crate::cli::NotificationsCommand;
use anyhow::{Result, bail};

pub async fn run(command: NotificationsCommand) -> Result<()> {
    match command {
        NotificationsCommand::Add {
            url,
            secret_file,
            tenant,
            state,
        } => {
            gitsync_notify::check_url(&url).map_err(anyhow::Error::msg)?;
            let secret = crate::webhooks::read_secret_file(&secret_file)?;
            let state = state.open().await?;
            let target = state
                .store
                .add_notification_target(&tenant.tenant(), &url, secret.as_bytes())
                .await?;
            println!(
                "{}: {} receives the status changes of {}",
                target.id,
                target.address,
                tenant.tenant()
            );
        }
        NotificationsCommand::List { tenant, state } => {
            let state = state.open().await?;
            let targets = state
                .store
                .list_notification_targets(&tenant.tenant())
                .await?;
            println!(
                "{:<16} {:<5} {:>7} {:>6}  {:<40} LAST ERROR",
                "ID", "KIND", "PENDING", "FAILED", "ADDRESS"
            );
            for t in targets {
                println!(
                    "{:<16} {:<5} {:>7} {:>6}  {:<40} {}",
                    t.id,
                    t.kind,
                    t.pending,
                    t.failed,
                    t.address,
                    t.last_error.as_deref().unwrap_or("-")
                );
            }
        }
        NotificationsCommand::Remove { id, tenant, state } => {
            let state = state.open().await?;
            if !state
                .store
                .remove_notification_target(&tenant.tenant(), &id)
                .await?
            {
                bail!("{} has no notification target {id}", tenant.tenant());
            }
            println!("removed {id}");
        }
    }
    Ok(())
}
