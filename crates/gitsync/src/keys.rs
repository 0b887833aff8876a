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
                    format_time(key.created_at.millis())
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

fn format_time(millis: i64) -> String {
    let secs = millis / 1000;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
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
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}
