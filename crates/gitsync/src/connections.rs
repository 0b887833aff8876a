//! `gitsync connections …`.

use crate::cli::ConnectionsCommand;
use anyhow::{Context, Result, bail};
use gitsync_model::githost::ConnectionSecrets;
use gitsync_model::{Arn, Tenant};
use std::path::Path;

/// A token from a file: its one line, trimmed.
fn read_token(file: &Path) -> Result<String> {
    let token =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let token = token.trim();
    if token.is_empty() {
        bail!("{} is empty", file.display());
    }
    Ok(token.to_string())
}

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
            api_token_file,
            api_url,
            state,
        } => {
            let tenant = tenant_of(&connection_arn)?;
            let mut secrets = ConnectionSecrets {
                token: token_file.as_deref().map(read_token).transpose()?,
                api_token: api_token_file.as_deref().map(read_token).transpose()?,
                ..ConnectionSecrets::default()
            };
            if let Some(file) = ssh_key_file {
                let key = std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                if !key.contains("PRIVATE KEY") {
                    bail!("{} does not hold a private key", file.display());
                }
                secrets.ssh_key = Some(key);
            }
            if let Some(url) = api_url {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    bail!("--api-url {url} must start with https:// or http://");
                }
                secrets.api_url = Some(url);
            }
            let bytes = (secrets != ConnectionSecrets::default()).then(|| secrets.to_bytes());
            let state = state.open().await?;
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
