//! `gitsync connections …`.

use crate::cli::ConnectionsCommand;
use anyhow::{Context, Result, bail};
use gitsync_model::{Arn, Tenant};

/// The tenant an ARN belongs to: its account and region.
pub fn tenant_of(arn: &str) -> Result<Tenant> {
    let parsed = Arn::parse(arn).with_context(|| format!("'{arn}' is not an ARN"))?;
    Ok(Tenant::new(parsed.account_id, parsed.region))
}

pub async fn run(command: ConnectionsCommand) -> Result<()> {
    match command {
        ConnectionsCommand::Activate {
            connection_arn,
            token_file,
            ssh_key_file,
            state,
        } => {
            let tenant = tenant_of(&connection_arn)?;
            let credentials = match (token_file, ssh_key_file) {
                (Some(file), _) => {
                    let token = std::fs::read_to_string(&file)
                        .with_context(|| format!("cannot read {}", file.display()))?;
                    let token = token.trim();
                    if token.is_empty() {
                        bail!("{} is empty", file.display());
                    }
                    Some(serde_json::json!({ "token": token }))
                }
                (None, Some(file)) => {
                    let key = std::fs::read_to_string(&file)
                        .with_context(|| format!("cannot read {}", file.display()))?;
                    if !key.contains("PRIVATE KEY") {
                        bail!("{} does not hold a private key", file.display());
                    }
                    Some(serde_json::json!({ "ssh_key": key }))
                }
                (None, None) => None,
            };
            let state = state.open().await?;
            let bytes = credentials.map(|c| c.to_string().into_bytes());
            let connection = state
                .store
                .activate_connection(&tenant, &connection_arn, bytes.as_deref())
                .await?;
            state
                .store
                .check_connection_now(&tenant, &connection.arn)
                .await?;
            println!("{} is {}", connection.arn, connection.status);
        }
    }
    Ok(())
}
