//! `gitsync sync`: sync now, without waiting for the next poll or a webhook.

use crate::cli::SyncArgs;
use anyhow::{Context, Result, bail};
use gitsync_model::{BlockerStatus, ProtonProvider, SyncTarget, SyncType, Tenant};
use gitsync_store::{RepositoryKey, Store};

pub async fn run(args: SyncArgs) -> Result<()> {
    let tenant = args.tenant.tenant();
    let state = args.state.open().await?;
    let store = &state.store;
    if let Some(name) = &args.resource_name {
        // The configuration must exist: a typo says so instead of doing nothing.
        store.get_sync_configuration(&tenant, name).await?;
        refuse_if_blocked(
            store,
            &tenant,
            SyncType::CfnStackSync,
            (name, None),
            &format!(
                "aws codeconnections update-sync-blocker --id ID --resource-name {name} --sync-type CFN_STACK_SYNC --resolved-reason …"
            ),
        )
        .await?;
        let target = SyncTarget::CfnStack {
            stack_name: name.clone(),
        };
        retry(store, &tenant, &target, &format!("stack {name}")).await
    } else if let Some((name, template_type, major)) = args.template.parsed()? {
        store
            .get_template_sync_config(&tenant, name, template_type)
            .await?;
        let target = SyncTarget::TemplateVersion {
            template_name: name.to_string(),
            template_type,
            major: major.to_string(),
        };
        retry(
            store,
            &tenant,
            &target,
            &format!("template {name} major version {major}"),
        )
        .await
    } else if let (Some(service), Some(instance)) = (&args.service, &args.instance) {
        store.get_service_sync_config(&tenant, service).await?;
        // A blocker on the instance or on its whole service holds it.
        for scope in [(instance.as_str(), Some(service.as_str())), (service, None)] {
            refuse_if_blocked(
                store,
                &tenant,
                SyncType::ServiceSync,
                scope,
                "aws proton update-service-sync-blocker --id ID --resolved-reason …",
            )
            .await?;
        }
        let target = SyncTarget::ServiceInstance {
            service_name: service.clone(),
            instance_name: instance.clone(),
        };
        retry(
            store,
            &tenant,
            &target,
            &format!("service instance {service}/{instance}"),
        )
        .await
    } else if let (Some(link_id), Some(branch)) = (&args.repository_link_id, &args.branch) {
        let link = store.get_repository_link(&tenant, link_id).await?;
        let checks = store
            .trigger_branch(&tenant, &link.owner_id, &link.repository_name, branch)
            .await?;
        let repository = format!("{}/{}", link.owner_id, link.repository_name);
        checked(checks, branch, &repository)
    } else if let (Some(repository), Some(branch)) = (&args.repository, &args.branch) {
        let (provider, name) = repository
            .split_once(':')
            .and_then(|(p, n)| Some((ProtonProvider::parse(p)?, n)))
            .with_context(|| {
                format!(
                    "--repository {repository}: give PROVIDER:NAME, with PROVIDER one of GITHUB, GITHUB_ENTERPRISE, BITBUCKET (as in `aws proton list-repositories`)"
                )
            })?;
        store.get_proton_repository(&tenant, provider, name).await?;
        let key = RepositoryKey::Proton {
            provider,
            name: name.to_string(),
        };
        let checks = store
            .trigger_repository_branch(&tenant, &key, branch)
            .await?;
        checked(checks, branch, repository)
    } else {
        bail!("give --branch with --repository-link-id or --repository")
    }
}

/// Says what was asked for, or that nothing watches the branch.
fn checked(checks: u64, branch: &str, repository: &str) -> Result<()> {
    if checks == 0 {
        bail!("no sync configuration watches branch {branch} of {repository}");
    }
    println!("branch {branch} of {repository} will be checked now");
    Ok(())
}

/// Refuses to retry a target an ACTIVE blocker holds: a person resolves it first (`how`).
async fn refuse_if_blocked(
    store: &Store,
    tenant: &Tenant,
    sync_type: SyncType,
    (resource, parent): (&str, Option<&str>),
    how: &str,
) -> Result<()> {
    let blockers = store
        .latest_blockers(tenant, sync_type, resource, parent, 1)
        .await?;
    if let Some(active) = blockers.iter().find(|b| b.status == BlockerStatus::Active) {
        let what = parent.map_or(resource.to_string(), |p| format!("{p}/{resource}"));
        bail!(
            "{what} is blocked ({}): a person resolves that first, with `{}`",
            active.created_reason,
            how.replace("--id ID", &format!("--id {}", active.id))
        );
    }
    Ok(())
}

/// Makes the target's latest commit due again now.
async fn retry(store: &Store, tenant: &Tenant, target: &SyncTarget, what: &str) -> Result<()> {
    if !store
        .retry_target(tenant, target.sync_type(), &target.key())
        .await?
    {
        bail!(
            "{what} has no commit to sync yet: its branch has not been read; check the branch with --repository-link-id or --repository and --branch"
        );
    }
    println!("{what} will retry its latest commit now");
    Ok(())
}
