//! `gitsync accounts …`: what each tenant may do (security.md, "Deployment identity").

use crate::cli::AccountsCommand;
use anyhow::Result;
use gitsync_model::AccountPolicy;

pub async fn run(command: AccountsCommand) -> Result<()> {
    match command {
        AccountsCommand::Set {
            account_id,
            deploy_accounts,
            trusted,
            untrusted: _,
            state,
        } => {
            let state = state.open().await?;
            let mut accounts = vec![account_id.clone()];
            accounts.extend(deploy_accounts);
            let policy = AccountPolicy {
                account_id,
                deploy_accounts: accounts,
                trusted,
            };
            state.store.set_account_policy(&policy).await?;
            print_policies(&[state.store.account_policy(&policy.account_id).await?]);
        }
        AccountsCommand::List { state } => {
            let state = state.open().await?;
            print_policies(&state.store.list_account_policies().await?);
        }
    }
    Ok(())
}

fn print_policies(policies: &[AccountPolicy]) {
    println!("{:<14} {:<9} DEPLOY ACCOUNTS", "ACCOUNT", "TRUSTED");
    for p in policies {
        println!(
            "{:<14} {:<9} {}",
            p.account_id,
            if p.trusted { "yes" } else { "no" },
            p.deploy_accounts.join(",")
        );
    }
}
