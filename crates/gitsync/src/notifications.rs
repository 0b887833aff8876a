//! `gitsync notifications …`: where each tenant's status-change events go (docs/events.md,
//! "Status-change notifications").

use crate::cli::NotificationsCommand;
use anyhow::{Result, bail};

pub async fn run(command: NotificationsCommand) -> Result<()> {
    match command {
        NotificationsCommand::Add {
            url,
            secret_file,
            eventbridge_bus,
            role_arn,
            tenant,
            state,
        } => {
            let tenant = tenant.tenant();
            let state = state.open().await?;
            let target = match (url, secret_file, eventbridge_bus) {
                (Some(url), Some(secret_file), None) => {
                    gitsync_notify::check_url(&url).map_err(anyhow::Error::msg)?;
                    let secret = crate::webhooks::read_secret_file(&secret_file)?;
                    state
                        .store
                        .add_notification_target(&tenant, &url, secret.as_bytes())
                        .await?
                }
                (None, None, Some(bus)) => {
                    let bus = bus.trim();
                    if bus.is_empty() || bus.len() > 1600 {
                        bail!("--eventbridge-bus must be a bus name or ARN");
                    }
                    // Whose identity puts the events is decided as for stack deployments.
                    let policy = state.store.account_policy(&tenant.account_id).await?;
                    match &role_arn {
                        Some(role) => policy.check_role(role).map_err(anyhow::Error::msg)?,
                        None if policy.trusted => {}
                        None => bail!(
                            "{tenant} does not deploy with the server's identity: name the role in its account that puts the events with --role-arn"
                        ),
                    }
                    state
                        .store
                        .add_eventbridge_target(&tenant, bus, role_arn.as_deref())
                        .await?
                }
                _ => bail!("give --url and --secret-file, or --eventbridge-bus"),
            };
            println!(
                "{}: {} receives the status changes of {tenant}",
                target.id, target.address
            );
        }
        NotificationsCommand::List { tenant, state } => {
            let state = state.open().await?;
            let targets = state
                .store
                .list_notification_targets(&tenant.tenant())
                .await?;
            println!(
                "{:<16} {:<11} {:>7} {:>6}  {:<40} LAST ERROR",
                "ID", "KIND", "PENDING", "FAILED", "ADDRESS"
            );
            for t in targets {
                println!(
                    "{:<16} {:<11} {:>7} {:>6}  {:<40} {}",
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
