//! `gitsync previews …`: which pull requests a stack previews.

use crate::cli::PreviewsCommand;
use anyhow::Result;

pub async fn run(command: PreviewsCommand) -> Result<()> {
    match command {
        PreviewsCommand::Forks {
            resource_name,
            allow,
            deny: _,
            tenant,
            state,
        } => {
            let state = state.open().await?;
            state
                .store
                .set_previews_forks(&tenant.tenant(), &resource_name, allow)
                .await?;
            println!(
                "{resource_name} {} pull requests from forks",
                if allow {
                    "previews"
                } else {
                    "does not preview"
                }
            );
        }
    }
    Ok(())
}
