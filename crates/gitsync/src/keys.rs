//! `gitsync keys …`: access keys, one account each.

use crate::cli::KeysCommand;
use anyhow::{Result, bail};
use gitsync_store::AccessKey;

pub async fn run(command: KeysCommand) -> Result<()> {
    match command {
        KeysCommand::Create {
            account_id,
            profile,
            state,
        } => {
            let state = state.open().await?;
            let key = state.store.create_access_key(&account_id).await?;
            let profile = profile.unwrap_or_else(|| format!("account-{account_id}"));
            print!("{}", credentials_section(&profile, &key));
        }
        KeysCommand::List { state } => {
            let state = state.open().await?;
            let keys = state.store.list_access_keys().await?;
            println!("{:<22} {:<14} CREATED", "ACCESS KEY ID", "ACCOUNT");
            for key in keys {
                println!(
                    "{:<22} {:<14} {}",
                    key.access_key_id,
                    key.account_id,
                    key.created_at.utc_string()
                );
            }
        }
        KeysCommand::Delete {
            access_key_id,
            state,
        } => {
            let state = state.open().await?;
            if !state.store.delete_access_key(&access_key_id).await? {
                bail!("no access key {access_key_id}");
            }
            println!("deleted {access_key_id}");
        }
    }
    Ok(())
}

/// A profile in AWS shared-credentials format, ready to append to a credentials file.
pub fn credentials_section(profile: &str, key: &AccessKey) -> String {
    format!(
        "# gitsync access key for account {}\n[{profile}]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
        key.account_id, key.access_key_id, key.secret_access_key
    )
}
