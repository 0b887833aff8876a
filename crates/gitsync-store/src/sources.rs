//! What a branch check reads before it reads Git: where a repository lives and how to reach it
//! (with the connection's opened credentials), and the configurations that watch a branch.

use crate::rows::{opt_text, parsed, text};
use crate::{Result, Store, StoreError};
use gitsync_model::githost::ConnectionSecrets;
use gitsync_model::{ConnectionStatus, ProviderType, Tenant};
use sqlx::AssertSqlSafe;
use sqlx::any::AnyRow;

/// Where a repository link's repository lives and how to reach it.
#[derive(Debug, Clone)]
pub struct LinkSource {
    pub link_id: String,
    pub owner_id: String,
    pub repository_name: String,
    pub provider_type: ProviderType,
    pub connection_arn: String,
    pub connection_status: ConnectionStatus,
    /// The host's `ProviderEndpoint` for self-managed providers.
    pub host_endpoint: Option<String>,
    /// The connection's opened secrets, as stored by `activate_connection` (`None` when it
    /// has none).
    pub secrets: Option<ConnectionSecrets>,
}

/// What a [`LinkSource`] is read from: a link (`l`) with its connection and host.
pub(crate) const LINK_SOURCE_COLUMNS: &str = "l.link_id, l.owner_id, l.repository_name, l.provider_type, l.connection_arn, \
     c.status, c.credentials_sealed, h.provider_endpoint";
pub(crate) const LINK_SOURCE_JOINS: &str = "LEFT JOIN connections c ON c.account_id = l.account_id AND c.region = l.region AND c.connection_id = l.connection_id \
     LEFT JOIN hosts h ON h.account_id = l.account_id AND h.region = l.region AND h.arn = c.host_arn";

impl Store {
    /// A connection's sealed secrets, opened and read.
    pub(crate) fn open_secrets(&self, sealed: Option<String>) -> Result<Option<ConnectionSecrets>> {
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let opened = self.sealer.open(&sealed)?;
        ConnectionSecrets::parse(&opened)
            .map(Some)
            .ok_or_else(|| StoreError::corrupt("a connection's secrets are not JSON"))
    }

    /// Where a link's repository lives, with the connection's state and opened credentials.
    pub async fn link_source(&self, tenant: &Tenant, link_id: &str) -> Result<LinkSource> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {LINK_SOURCE_COLUMNS} FROM repository_links l {LINK_SOURCE_JOINS} \
             WHERE l.account_id = $1 AND l.region = $2 AND l.link_id = $3"
        )))
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(link_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("Repository link {link_id} does not exist")))?;
        self.link_source_from(&row)
    }

    /// A [`LinkSource`] from a row of [`LINK_SOURCE_COLUMNS`].
    pub(crate) fn link_source_from(&self, row: &AnyRow) -> Result<LinkSource> {
        let link_id = text(row, "link_id")?;
        let connection_arn = text(row, "connection_arn")?;
        let status = match opt_text(row, "status")? {
            Some(s) => ConnectionStatus::parse(&s).ok_or_else(|| StoreError::corrupt(s))?,
            None => {
                return Err(StoreError::NotFound(format!(
                    "Connection {connection_arn} of repository link {link_id} was deleted"
                )));
            }
        };
        let secrets = self.open_secrets(opt_text(row, "credentials_sealed")?)?;
        Ok(LinkSource {
            link_id,
            owner_id: text(row, "owner_id")?,
            repository_name: text(row, "repository_name")?,
            provider_type: parsed(row, "provider_type", ProviderType::parse)?,
            connection_arn,
            connection_status: status,
            host_endpoint: opt_text(row, "provider_endpoint")?,
            secrets,
        })
    }

    /// Where a Proton repository lives: its connection's state, host and credentials.
    pub async fn proton_source(
        &self,
        tenant: &Tenant,
        provider: gitsync_model::ProtonProvider,
        name: &str,
    ) -> Result<LinkSource> {
        let repository = self.get_proton_repository(tenant, provider, name).await?;
        let (owner, repo) = gitsync_model::split_owner_repo(name)
            .ok_or_else(|| StoreError::corrupt(format!("repository name {name}")))?;
        let connection = self
            .get_connection(tenant, &repository.connection_arn)
            .await
            .map_err(|_| {
                StoreError::NotFound(format!(
                    "Connection {} of repository {name} was deleted",
                    repository.connection_arn
                ))
            })?;
        let row = sqlx::query(
            "SELECT c.credentials_sealed, h.provider_endpoint FROM connections c \
             LEFT JOIN hosts h ON h.account_id = c.account_id AND h.region = c.region AND h.arn = c.host_arn \
             WHERE c.account_id = $1 AND c.region = $2 AND c.connection_id = $3",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(&connection.id)
        .fetch_one(&self.pool)
        .await?;
        let secrets = self.open_secrets(opt_text(&row, "credentials_sealed")?)?;
        Ok(LinkSource {
            link_id: String::new(),
            owner_id: owner.to_string(),
            repository_name: repo.to_string(),
            provider_type: connection.provider_type,
            connection_arn: connection.arn,
            connection_status: connection.status,
            host_endpoint: opt_text(&row, "provider_endpoint")?,
            secrets,
        })
    }

    /// The sync configurations that watch one branch of a link.
    pub async fn sync_configurations_on(
        &self,
        tenant: &Tenant,
        link_id: &str,
        branch: &str,
    ) -> Result<Vec<gitsync_model::SyncConfiguration>> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .list_sync_configurations(tenant, link_id, after.as_deref(), 500)
                .await?;
            out.extend(page.items.into_iter().filter(|c| c.branch == branch));
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(out),
            }
        }
    }

    /// The template sync configurations that watch one branch of a Proton repository.
    pub async fn template_sync_configs_on(
        &self,
        tenant: &Tenant,
        provider: gitsync_model::ProtonProvider,
        name: &str,
        branch: &str,
    ) -> Result<Vec<gitsync_model::TemplateSyncConfig>> {
        let rows = sqlx::query(
            "SELECT template_name, template_type, subdirectory FROM template_sync_configs WHERE account_id = $1 AND region = $2 \
             AND repository_provider = $3 AND repository_name = $4 AND branch = $5 ORDER BY template_name, template_type",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(provider.as_str())
        .bind(name)
        .bind(branch)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(gitsync_model::TemplateSyncConfig {
                    template_name: text(r, "template_name")?,
                    template_type: parsed(r, "template_type", gitsync_model::TemplateType::parse)?,
                    repository_provider: provider,
                    repository_name: name.to_string(),
                    branch: branch.to_string(),
                    subdirectory: opt_text(r, "subdirectory")?,
                })
            })
            .collect()
    }

    /// The service sync configurations whose proton-ops file is in one Proton repository.
    pub async fn service_sync_configs_in(
        &self,
        tenant: &Tenant,
        provider: gitsync_model::ProtonProvider,
        name: &str,
    ) -> Result<Vec<gitsync_model::ServiceSyncConfig>> {
        let rows = sqlx::query(
            "SELECT service_name, branch, file_path FROM service_sync_configs WHERE account_id = $1 AND region = $2 \
             AND repository_provider = $3 AND repository_name = $4 ORDER BY service_name",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(provider.as_str())
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(gitsync_model::ServiceSyncConfig {
                    service_name: text(r, "service_name")?,
                    repository_provider: provider,
                    repository_name: name.to_string(),
                    branch: text(r, "branch")?,
                    file_path: text(r, "file_path")?,
                })
            })
            .collect()
    }
}
