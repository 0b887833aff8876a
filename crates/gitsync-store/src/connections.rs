//! Connections, hosts, repository links and CloudFormation sync configurations: the resources of
//! the CodeConnections / CodeStar Connections APIs, which both see the same rows.

use crate::rows::{opt_text, parsed, text, toggle, toggle_text};
use crate::tags::{delete_tags, insert_tags};
use crate::{Page, Result, Store, StoreError};
use gitsync_model::{
    Arn, ArnService, Connection, ConnectionStatus, Host, HostSpec, ProviderType, RepositoryLink,
    RepositoryLinkSpec, SyncConfiguration, SyncConfigurationPatch, SyncConfigurationSpec, SyncType,
    Tag, Tenant, Timestamp, TriggerResourceUpdateOn, VpcConfiguration,
};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

/// Stored form of a host's VPC configuration.
#[derive(Serialize, Deserialize)]
struct VpcJson {
    vpc_id: String,
    subnet_ids: Vec<String>,
    security_group_ids: Vec<String>,
    tls_certificate: Option<String>,
}

fn connection_from(row: &AnyRow) -> Result<Connection> {
    Ok(Connection {
        id: text(row, "connection_id")?,
        arn: text(row, "arn")?,
        name: text(row, "name")?,
        provider_type: parsed(row, "provider_type", ProviderType::parse)?,
        host_arn: opt_text(row, "host_arn")?,
        status: parsed(row, "status", ConnectionStatus::parse)?,
        owner_account_id: text(row, "account_id")?,
        created_at: Timestamp(row.try_get("created_at")?),
    })
}

fn host_from(row: &AnyRow) -> Result<Host> {
    let vpc = match opt_text(row, "vpc_configuration")? {
        Some(json) => {
            let v: VpcJson = serde_json::from_str(&json).map_err(StoreError::corrupt)?;
            Some(VpcConfiguration {
                vpc_id: v.vpc_id,
                subnet_ids: v.subnet_ids,
                security_group_ids: v.security_group_ids,
                tls_certificate: v.tls_certificate,
            })
        }
        None => None,
    };
    Ok(Host {
        arn: text(row, "arn")?,
        name: text(row, "name")?,
        provider_type: parsed(row, "provider_type", ProviderType::parse)?,
        provider_endpoint: text(row, "provider_endpoint")?,
        vpc_configuration: vpc,
        status: text(row, "status")?,
    })
}

fn vpc_json(vpc: Option<&VpcConfiguration>) -> Option<String> {
    vpc.map(|v| {
        serde_json::json!({
            "vpc_id": v.vpc_id, "subnet_ids": v.subnet_ids,
            "security_group_ids": v.security_group_ids, "tls_certificate": v.tls_certificate,
        })
        .to_string()
    })
}

fn link_from(row: &AnyRow) -> Result<RepositoryLink> {
    Ok(RepositoryLink {
        id: text(row, "link_id")?,
        arn: text(row, "arn")?,
        connection_arn: text(row, "connection_arn")?,
        encryption_key_arn: opt_text(row, "encryption_key_arn")?,
        owner_id: text(row, "owner_id")?,
        provider_type: parsed(row, "provider_type", ProviderType::parse)?,
        repository_name: text(row, "repository_name")?,
    })
}

const SYNC_CONFIG_SELECT: &str = "SELECT c.resource_name, c.branch, c.config_file, c.link_id, c.role_arn, \
     c.publish_deployment_status, c.trigger_resource_update_on, c.pull_request_comment, \
     l.owner_id, l.provider_type, l.repository_name \
     FROM sync_configurations c JOIN repository_links l \
       ON l.account_id = c.account_id AND l.region = c.region AND l.link_id = c.link_id";

fn sync_config_from(row: &AnyRow) -> Result<SyncConfiguration> {
    Ok(SyncConfiguration {
        resource_name: text(row, "resource_name")?,
        branch: text(row, "branch")?,
        config_file: text(row, "config_file")?,
        repository_link_id: text(row, "link_id")?,
        role_arn: text(row, "role_arn")?,
        owner_id: text(row, "owner_id")?,
        provider_type: parsed(row, "provider_type", ProviderType::parse)?,
        repository_name: text(row, "repository_name")?,
        publish_deployment_status: toggle(row, "publish_deployment_status")?,
        trigger_resource_update_on: opt_text(row, "trigger_resource_update_on")?
            .map(|v| TriggerResourceUpdateOn::parse(&v).ok_or_else(|| StoreError::corrupt(v)))
            .transpose()?,
        pull_request_comment: toggle(row, "pull_request_comment")?,
    })
}

/// The id of a connections-API resource ARN of this tenant, if the ARN is one of `kind`.
pub(crate) fn connections_resource_id(tenant: &Tenant, arn: &str, kind: &str) -> Option<String> {
    let arn = Arn::parse(arn)?;
    ArnService::parse(&arn.service)?;
    if !arn.belongs_to(tenant) {
        return None;
    }
    let (k, id) = arn.resource_type_and_id()?;
    (k == kind).then(|| id.to_string())
}

async fn count(
    tx: &mut Transaction<'static, Any>,
    sql: &'static str,
    tenant: &Tenant,
    extra: &[&str],
) -> Result<i64> {
    let mut q = sqlx::query(sql)
        .bind(&tenant.account_id)
        .bind(&tenant.region);
    for e in extra {
        q = q.bind(*e);
    }
    Ok(q.fetch_one(&mut **tx).await?.try_get::<i64, _>(0)?)
}

impl Store {
    // ----- connections -----

    pub async fn create_connection(
        &self,
        tenant: &Tenant,
        service: ArnService,
        name: &str,
        provider_type: Option<ProviderType>,
        host_arn: Option<&str>,
        tags: &[Tag],
    ) -> Result<Connection> {
        let mut tx = self.write_tx().await?;
        let provider_type = match host_arn {
            Some(host_arn) => {
                let host = self.host_in(&mut tx, tenant, host_arn).await?;
                if let Some(p) = provider_type
                    && p != host.provider_type
                {
                    return Err(StoreError::Invalid(format!(
                        "ProviderType {p} does not match the host's provider type {}",
                        host.provider_type
                    )));
                }
                host.provider_type
            }
            None => match provider_type {
                Some(p) if p.is_self_managed() => {
                    return Err(StoreError::Invalid(format!(
                        "ProviderType {p} is self-managed: give the HostArn of a host instead"
                    )));
                }
                Some(p) => p,
                None => {
                    return Err(StoreError::Invalid(
                        "give either ProviderType or HostArn".into(),
                    ));
                }
            },
        };
        let existing = count(
            &mut tx,
            "SELECT COUNT(*) FROM connections WHERE account_id = $1 AND region = $2",
            tenant,
            &[],
        )
        .await?;
        if existing >= i64::from(self.limits.connections) {
            return Err(StoreError::LimitExceeded(format!(
                "this account has {existing} connections in {}, the limit is {}",
                tenant.region, self.limits.connections
            )));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let arn = Arn::new(service.as_str(), tenant, format!("connection/{id}")).to_string();
        let now = Timestamp::now();
        sqlx::query(
            "INSERT INTO connections (account_id, region, connection_id, arn, name, provider_type, host_arn, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(&id)
        .bind(&arn)
        .bind(name)
        .bind(provider_type.as_str())
        .bind(host_arn)
        .bind(ConnectionStatus::Pending.as_str())
        .bind(now.millis())
        .execute(&mut *tx)
        .await?;
        insert_tags(&mut tx, tenant, &arn, tags, self.limits.tags_per_resource).await?;
        self.commit(tx).await?;
        Ok(Connection {
            id,
            arn,
            name: name.to_string(),
            provider_type,
            host_arn: host_arn.map(str::to_string),
            status: ConnectionStatus::Pending,
            owner_account_id: tenant.account_id.clone(),
            created_at: now,
        })
    }

    pub async fn get_connection(&self, tenant: &Tenant, arn: &str) -> Result<Connection> {
        let not_found = || StoreError::NotFound(format!("Connection {arn} does not exist"));
        let id = connections_resource_id(tenant, arn, "connection").ok_or_else(not_found)?;
        let row = sqlx::query("SELECT * FROM connections WHERE account_id = $1 AND region = $2 AND connection_id = $3")
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(&id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(not_found)?;
        connection_from(&row)
    }

    pub async fn list_connections(
        &self,
        tenant: &Tenant,
        provider_type: Option<ProviderType>,
        host_arn: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Connection>> {
        let rows = sqlx::query(
            "SELECT * FROM connections WHERE account_id = $1 AND region = $2 AND connection_id > $3 \
             AND ($4 = '' OR provider_type = $4) AND ($5 = '' OR host_arn = $5) \
             ORDER BY connection_id LIMIT $6",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(after.unwrap_or(""))
        .bind(provider_type.map(|p| p.as_str()).unwrap_or(""))
        .bind(host_arn.unwrap_or(""))
        .bind(limit as i64 + 1)
        .fetch_all(&self.pool)
        .await?;
        Page::from_rows(rows, limit, connection_from, |c| c.id.clone())
    }

    pub async fn delete_connection(&self, tenant: &Tenant, arn: &str) -> Result<()> {
        let connection = self.get_connection(tenant, arn).await?;
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "DELETE FROM connections WHERE account_id = $1 AND region = $2 AND connection_id = $3",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(&connection.id)
        .execute(&mut *tx)
        .await?;
        delete_tags(&mut tx, tenant, &connection.arn).await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// Marks a connection usable, with its Git credentials sealed (none for `file://` remotes).
    pub async fn activate_connection(
        &self,
        tenant: &Tenant,
        arn: &str,
        credentials: Option<&[u8]>,
    ) -> Result<Connection> {
        let connection = self.get_connection(tenant, arn).await?;
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE connections SET status = $1, credentials_sealed = $2 \
             WHERE account_id = $3 AND region = $4 AND connection_id = $5",
        )
        .bind(ConnectionStatus::Available.as_str())
        .bind(credentials.map(|c| self.sealer.seal(c)))
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(&connection.id)
        .execute(&mut *tx)
        .await?;
        self.commit(tx).await?;
        Ok(Connection {
            status: ConnectionStatus::Available,
            ..connection
        })
    }

    // ----- hosts -----

    async fn host_in(
        &self,
        tx: &mut Transaction<'static, Any>,
        tenant: &Tenant,
        arn: &str,
    ) -> Result<Host> {
        let not_found = || StoreError::NotFound(format!("Host {arn} does not exist"));
        let id = connections_resource_id(tenant, arn, "host").ok_or_else(not_found)?;
        let row = sqlx::query(
            "SELECT * FROM hosts WHERE account_id = $1 AND region = $2 AND host_id = $3",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(&id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(not_found)?;
        host_from(&row)
    }

    pub async fn create_host(
        &self,
        tenant: &Tenant,
        service: ArnService,
        spec: &HostSpec,
        tags: &[Tag],
    ) -> Result<Host> {
        let HostSpec {
            name,
            provider_type,
            provider_endpoint,
            vpc_configuration,
        } = spec;
        let (provider_type, vpc) = (*provider_type, vpc_configuration.as_ref());
        if !provider_type.is_self_managed() {
            return Err(StoreError::Invalid(format!(
                "ProviderType {provider_type} is a cloud provider; hosts are for GitHubEnterpriseServer and GitLabSelfManaged"
            )));
        }
        let mut tx = self.write_tx().await?;
        let existing = count(
            &mut tx,
            "SELECT COUNT(*) FROM hosts WHERE account_id = $1 AND region = $2",
            tenant,
            &[],
        )
        .await?;
        if existing >= i64::from(self.limits.hosts) {
            return Err(StoreError::LimitExceeded(format!(
                "this account has {existing} hosts in {}, the limit is {}",
                tenant.region, self.limits.hosts
            )));
        }
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let id = format!("{name}-{suffix}");
        let arn = Arn::new(service.as_str(), tenant, format!("host/{id}")).to_string();
        // Nothing has to be installed for gitsync to reach a self-managed server: a host is usable
        // as soon as it exists.
        let host = Host {
            arn: arn.clone(),
            name: name.clone(),
            provider_type,
            provider_endpoint: provider_endpoint.clone(),
            vpc_configuration: vpc.cloned(),
            status: "AVAILABLE".into(),
        };
        sqlx::query(
            "INSERT INTO hosts (account_id, region, host_id, arn, name, provider_type, provider_endpoint, vpc_configuration, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(&id)
        .bind(&arn)
        .bind(name)
        .bind(provider_type.as_str())
        .bind(provider_endpoint)
        .bind(vpc_json(vpc))
        .bind(&host.status)
        .bind(Timestamp::now().millis())
        .execute(&mut *tx)
        .await?;
        insert_tags(&mut tx, tenant, &arn, tags, self.limits.tags_per_resource).await?;
        self.commit(tx).await?;
        Ok(host)
    }

    pub async fn get_host(&self, tenant: &Tenant, arn: &str) -> Result<Host> {
        let mut tx = self.pool.begin().await?;
        let host = self.host_in(&mut tx, tenant, arn).await?;
        tx.rollback().await?;
        Ok(host)
    }

    pub async fn list_hosts(
        &self,
        tenant: &Tenant,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Host>> {
        let rows = sqlx::query(
            "SELECT * FROM hosts WHERE account_id = $1 AND region = $2 AND host_id > $3 ORDER BY host_id LIMIT $4",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(after.unwrap_or(""))
        .bind(limit as i64 + 1)
        .fetch_all(&self.pool)
        .await?;
        Page::from_rows(rows, limit, host_from, |h| {
            h.arn.rsplit('/').next().unwrap_or_default().to_string()
        })
    }

    pub async fn update_host(
        &self,
        tenant: &Tenant,
        arn: &str,
        provider_endpoint: Option<&str>,
        vpc: Option<&VpcConfiguration>,
    ) -> Result<Host> {
        let mut tx = self.write_tx().await?;
        let mut host = self.host_in(&mut tx, tenant, arn).await?;
        if let Some(endpoint) = provider_endpoint
            && endpoint != host.provider_endpoint
        {
            host.provider_endpoint = endpoint.to_string();
            // The operator activated these connections for the old endpoint; their credentials
            // must never be sent to a new one. They wait for `gitsync connections activate` again.
            sqlx::query(
                "UPDATE connections SET status = 'PENDING', credentials_sealed = NULL \
                 WHERE account_id = $1 AND region = $2 AND host_arn = $3",
            )
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(&host.arn)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(vpc) = vpc {
            host.vpc_configuration = Some(vpc.clone());
        }
        sqlx::query(
            "UPDATE hosts SET provider_endpoint = $1, vpc_configuration = $2 WHERE account_id = $3 AND region = $4 AND arn = $5",
        )
        .bind(&host.provider_endpoint)
        .bind(vpc_json(host.vpc_configuration.as_ref()))
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(&host.arn)
        .execute(&mut *tx)
        .await?;
        self.commit(tx).await?;
        Ok(host)
    }

    pub async fn delete_host(&self, tenant: &Tenant, arn: &str) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let host = self.host_in(&mut tx, tenant, arn).await?;
        let users = count(
            &mut tx,
            "SELECT COUNT(*) FROM connections WHERE account_id = $1 AND region = $2 AND host_arn = $3",
            tenant,
            &[&host.arn],
        )
        .await?;
        if users > 0 {
            return Err(StoreError::Conflict(format!(
                "host {} still has {users} connection(s); delete them first",
                host.arn
            )));
        }
        sqlx::query("DELETE FROM hosts WHERE account_id = $1 AND region = $2 AND arn = $3")
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(&host.arn)
            .execute(&mut *tx)
            .await?;
        delete_tags(&mut tx, tenant, &host.arn).await?;
        self.commit(tx).await?;
        Ok(())
    }

    // ----- repository links -----

    async fn connection_in(
        &self,
        tx: &mut Transaction<'static, Any>,
        tenant: &Tenant,
        arn: &str,
    ) -> Result<Connection> {
        let missing =
            || StoreError::Invalid(format!("ConnectionArn: connection {arn} does not exist"));
        let id = connections_resource_id(tenant, arn, "connection").ok_or_else(missing)?;
        let row = sqlx::query("SELECT * FROM connections WHERE account_id = $1 AND region = $2 AND connection_id = $3")
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(&id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(missing)?;
        connection_from(&row)
    }

    pub async fn create_repository_link(
        &self,
        tenant: &Tenant,
        service: ArnService,
        spec: &RepositoryLinkSpec,
        tags: &[Tag],
    ) -> Result<RepositoryLink> {
        let RepositoryLinkSpec {
            connection_arn,
            owner_id,
            repository_name,
            encryption_key_arn,
        } = spec;
        let mut tx = self.write_tx().await?;
        let connection = self.connection_in(&mut tx, tenant, connection_arn).await?;
        let existing = count(
            &mut tx,
            "SELECT COUNT(*) FROM repository_links WHERE account_id = $1 AND region = $2",
            tenant,
            &[],
        )
        .await?;
        if existing >= i64::from(self.limits.repository_links) {
            return Err(StoreError::LimitExceeded(format!(
                "this account has {existing} repository links in {}, the limit is {}",
                tenant.region, self.limits.repository_links
            )));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let link = RepositoryLink {
            arn: Arn::new(service.as_str(), tenant, format!("repository-link/{id}")).to_string(),
            id,
            connection_arn: connection.arn.clone(),
            encryption_key_arn: encryption_key_arn.clone(),
            owner_id: owner_id.clone(),
            provider_type: connection.provider_type,
            repository_name: repository_name.clone(),
        };
        let inserted = sqlx::query(
            "INSERT INTO repository_links (account_id, region, link_id, arn, connection_id, connection_arn, encryption_key_arn, owner_id, provider_type, repository_name, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(&link.id)
        .bind(&link.arn)
        .bind(&connection.id)
        .bind(&link.connection_arn)
        .bind(encryption_key_arn)
        .bind(owner_id)
        .bind(link.provider_type.as_str())
        .bind(repository_name)
        .bind(Timestamp::now().millis())
        .execute(&mut *tx)
        .await;
        crate::rows::unique(inserted, || {
            format!(
                "a repository link for {owner_id}/{repository_name} through connection {} already exists",
                connection.arn
            )
        })?;
        insert_tags(
            &mut tx,
            tenant,
            &link.arn,
            tags,
            self.limits.tags_per_resource,
        )
        .await?;
        self.commit(tx).await?;
        Ok(link)
    }

    async fn link_in<'e, E>(
        &self,
        executor: E,
        tenant: &Tenant,
        link_id: &str,
    ) -> Result<RepositoryLink>
    where
        E: sqlx::Executor<'e, Database = Any>,
    {
        let row = sqlx::query(
            "SELECT * FROM repository_links WHERE account_id = $1 AND region = $2 AND link_id = $3",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(link_id)
        .fetch_optional(executor)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("Repository link {link_id} does not exist")))?;
        link_from(&row)
    }

    pub async fn get_repository_link(
        &self,
        tenant: &Tenant,
        link_id: &str,
    ) -> Result<RepositoryLink> {
        self.link_in(&self.pool, tenant, link_id).await
    }

    pub async fn list_repository_links(
        &self,
        tenant: &Tenant,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<RepositoryLink>> {
        let rows = sqlx::query(
            "SELECT * FROM repository_links WHERE account_id = $1 AND region = $2 AND link_id > $3 ORDER BY link_id LIMIT $4",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(after.unwrap_or(""))
        .bind(limit as i64 + 1)
        .fetch_all(&self.pool)
        .await?;
        Page::from_rows(rows, limit, link_from, |l| l.id.clone())
    }

    pub async fn update_repository_link(
        &self,
        tenant: &Tenant,
        link_id: &str,
        connection_arn: Option<&str>,
        encryption_key_arn: Option<&str>,
    ) -> Result<RepositoryLink> {
        let mut tx = self.write_tx().await?;
        let mut link = self.link_in(&mut *tx, tenant, link_id).await?;
        let mut connection_id = None;
        if let Some(arn) = connection_arn {
            let connection = self.connection_in(&mut tx, tenant, arn).await?;
            if connection.provider_type != link.provider_type {
                return Err(StoreError::Invalid(format!(
                    "ConnectionArn: connection {arn} is for {}, the repository link is for {}; the provider cannot change",
                    connection.provider_type, link.provider_type
                )));
            }
            link.connection_arn = connection.arn.clone();
            connection_id = Some(connection.id);
        }
        if let Some(key) = encryption_key_arn {
            link.encryption_key_arn = Some(key.to_string());
        }
        sqlx::query(
            "UPDATE repository_links SET connection_arn = $1, connection_id = COALESCE($2, connection_id), encryption_key_arn = $3 \
             WHERE account_id = $4 AND region = $5 AND link_id = $6",
        )
        .bind(&link.connection_arn)
        .bind(connection_id)
        .bind(&link.encryption_key_arn)
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(link_id)
        .execute(&mut *tx)
        .await?;
        self.commit(tx).await?;
        Ok(link)
    }

    pub async fn delete_repository_link(&self, tenant: &Tenant, link_id: &str) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let link = self.link_in(&mut *tx, tenant, link_id).await?;
        let users = count(
            &mut tx,
            "SELECT COUNT(*) FROM sync_configurations WHERE account_id = $1 AND region = $2 AND link_id = $3",
            tenant,
            &[link_id],
        )
        .await?;
        if users > 0 {
            return Err(StoreError::StillInUse(format!(
                "repository link {link_id} is used by {users} sync configuration(s); delete them first"
            )));
        }
        sqlx::query(
            "DELETE FROM repository_links WHERE account_id = $1 AND region = $2 AND link_id = $3",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(link_id)
        .execute(&mut *tx)
        .await?;
        delete_tags(&mut tx, tenant, &link.arn).await?;
        self.commit(tx).await?;
        Ok(())
    }

    // ----- sync configurations (CFN_STACK_SYNC) -----

    /// Quotas on sync configurations: per account, per link, per branch of a link.
    async fn check_sync_config_limits(
        &self,
        tx: &mut Transaction<'static, Any>,
        tenant: &Tenant,
        link_id: &str,
        branch: &str,
        excluding: &str,
    ) -> Result<()> {
        let l = &self.limits;
        let checks: [(&'static str, Vec<&str>, u32, String); 3] = [
            (
                "SELECT COUNT(*) FROM sync_configurations WHERE account_id = $1 AND region = $2 AND resource_name <> $3",
                vec![excluding],
                l.cfn_sync_configurations,
                format!(
                    "CloudFormation stack sync configurations in {}",
                    tenant.region
                ),
            ),
            (
                "SELECT COUNT(*) FROM sync_configurations WHERE account_id = $1 AND region = $2 AND resource_name <> $3 AND link_id = $4",
                vec![excluding, link_id],
                l.sync_configurations_per_link,
                format!("sync configurations on repository link {link_id}"),
            ),
            (
                "SELECT COUNT(*) FROM sync_configurations WHERE account_id = $1 AND region = $2 AND resource_name <> $3 AND link_id = $4 AND branch = $5",
                vec![excluding, link_id, branch],
                l.sync_configurations_per_branch,
                format!("sync configurations on branch {branch} of repository link {link_id}"),
            ),
        ];
        for (sql, extra, limit, what) in checks {
            let n = count(tx, sql, tenant, &extra).await?;
            if n >= i64::from(limit) {
                return Err(StoreError::LimitExceeded(format!(
                    "there are already {n} {what}; the limit is {limit}"
                )));
            }
        }
        Ok(())
    }

    /// The switches that post to the Git host (`PublishDeploymentStatus`,
    /// `PullRequestComment`) are refused when the link's connection cannot call its host's API,
    /// naming what to do, rather than accepted and left to fail at every attempt.
    async fn check_feedback_switches(
        &self,
        tx: &mut Transaction<'static, Any>,
        tenant: &Tenant,
        link_id: &str,
        publish_deployment_status: Option<bool>,
        pull_request_comment: Option<bool>,
    ) -> Result<()> {
        let member = match (publish_deployment_status, pull_request_comment) {
            (Some(true), _) => "PublishDeploymentStatus",
            (_, Some(true)) => "PullRequestComment",
            _ => return Ok(()),
        };
        let row = sqlx::query(
            "SELECT c.arn, c.provider_type, c.credentials_sealed, h.provider_endpoint FROM repository_links l \
             JOIN connections c ON c.account_id = l.account_id AND c.region = l.region AND c.connection_id = l.connection_id \
             LEFT JOIN hosts h ON h.account_id = c.account_id AND h.region = c.region AND h.arn = c.host_arn \
             WHERE l.account_id = $1 AND l.region = $2 AND l.link_id = $3",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(link_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| {
            StoreError::Invalid(format!(
                "{member}: the connection of repository link {link_id} was deleted"
            ))
        })?;
        let secrets = self.open_secrets(opt_text(&row, "credentials_sealed")?)?;
        gitsync_model::githost::check_api_access(
            &text(&row, "arn")?,
            parsed(&row, "provider_type", ProviderType::parse)?,
            opt_text(&row, "provider_endpoint")?.as_deref(),
            secrets.as_ref(),
        )
        .map_err(|why| StoreError::Invalid(format!("{member} is ENABLED but {why}")))
    }

    pub async fn create_sync_configuration(
        &self,
        tenant: &Tenant,
        spec: &SyncConfigurationSpec,
    ) -> Result<SyncConfiguration> {
        let mut tx = self.write_tx().await?;
        let link = match self
            .link_in(&mut *tx, tenant, &spec.repository_link_id)
            .await
        {
            Err(StoreError::NotFound(m)) => {
                return Err(StoreError::Invalid(format!("RepositoryLinkId: {m}")));
            }
            other => other?,
        };
        self.check_sync_config_limits(&mut tx, tenant, &link.id, &spec.branch, &spec.resource_name)
            .await?;
        self.check_feedback_switches(
            &mut tx,
            tenant,
            &link.id,
            spec.publish_deployment_status,
            spec.pull_request_comment,
        )
        .await?;
        let inserted = sqlx::query(
            "INSERT INTO sync_configurations (account_id, region, sync_type, resource_name, link_id, branch, config_file, role_arn, \
             publish_deployment_status, trigger_resource_update_on, pull_request_comment, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(SyncType::CfnStackSync.as_str())
        .bind(&spec.resource_name)
        .bind(&link.id)
        .bind(&spec.branch)
        .bind(&spec.config_file)
        .bind(&spec.role_arn)
        .bind(toggle_text(spec.publish_deployment_status))
        .bind(spec.trigger_resource_update_on.map(|t| t.as_str()))
        .bind(toggle_text(spec.pull_request_comment))
        .bind(Timestamp::now().millis())
        .execute(&mut *tx)
        .await;
        crate::rows::unique(inserted, || {
            format!(
                "a sync configuration for resource {} of type CFN_STACK_SYNC already exists",
                spec.resource_name
            )
        })?;
        reevaluate_branch(&mut tx, tenant, &format!("link:{}", link.id), &spec.branch).await?;
        crate::branches::watch_configured_branches(&mut tx, tenant).await?;
        self.commit(tx).await?;
        Ok(SyncConfiguration {
            resource_name: spec.resource_name.clone(),
            branch: spec.branch.clone(),
            config_file: spec.config_file.clone(),
            repository_link_id: link.id,
            role_arn: spec.role_arn.clone(),
            owner_id: link.owner_id,
            provider_type: link.provider_type,
            repository_name: link.repository_name,
            publish_deployment_status: spec.publish_deployment_status,
            trigger_resource_update_on: spec.trigger_resource_update_on,
            pull_request_comment: spec.pull_request_comment,
        })
    }

    async fn sync_config_in<'e, E>(
        &self,
        executor: E,
        tenant: &Tenant,
        resource_name: &str,
    ) -> Result<SyncConfiguration>
    where
        E: sqlx::Executor<'e, Database = Any>,
    {
        let row = sqlx::query(sync_config_by_name_sql())
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(SyncType::CfnStackSync.as_str())
            .bind(resource_name)
            .fetch_optional(executor)
            .await?
            .ok_or_else(|| {
                StoreError::NotFound(format!(
                    "No sync configuration of type CFN_STACK_SYNC exists for resource {resource_name}"
                ))
            })?;
        sync_config_from(&row)
    }

    pub async fn get_sync_configuration(
        &self,
        tenant: &Tenant,
        resource_name: &str,
    ) -> Result<SyncConfiguration> {
        self.sync_config_in(&self.pool, tenant, resource_name).await
    }

    pub async fn update_sync_configuration(
        &self,
        tenant: &Tenant,
        resource_name: &str,
        patch: &SyncConfigurationPatch,
    ) -> Result<SyncConfiguration> {
        let mut tx = self.write_tx().await?;
        let mut config = self.sync_config_in(&mut *tx, tenant, resource_name).await?;
        if let Some(link_id) = &patch.repository_link_id {
            let link = match self.link_in(&mut *tx, tenant, link_id).await {
                Err(StoreError::NotFound(m)) => {
                    return Err(StoreError::Invalid(format!("RepositoryLinkId: {m}")));
                }
                other => other?,
            };
            config.repository_link_id = link.id;
            config.owner_id = link.owner_id;
            config.provider_type = link.provider_type;
            config.repository_name = link.repository_name;
        }
        if let Some(v) = &patch.branch {
            config.branch = v.clone();
        }
        if let Some(v) = &patch.config_file {
            config.config_file = v.clone();
        }
        if let Some(v) = &patch.role_arn {
            config.role_arn = v.clone();
        }
        config.publish_deployment_status = patch
            .publish_deployment_status
            .or(config.publish_deployment_status);
        config.trigger_resource_update_on = patch
            .trigger_resource_update_on
            .or(config.trigger_resource_update_on);
        config.pull_request_comment = patch.pull_request_comment.or(config.pull_request_comment);
        // A switch turned on, or kept on while the configuration moves to another link, needs
        // the (new) link's connection to reach its host's API.
        let moved = patch.repository_link_id.is_some();
        let turned_on = |patched: Option<bool>, now: Option<bool>| {
            (patched == Some(true) || moved) && now == Some(true)
        };
        self.check_feedback_switches(
            &mut tx,
            tenant,
            &config.repository_link_id,
            Some(turned_on(
                patch.publish_deployment_status,
                config.publish_deployment_status,
            )),
            Some(turned_on(
                patch.pull_request_comment,
                config.pull_request_comment,
            )),
        )
        .await?;
        self.check_sync_config_limits(
            &mut tx,
            tenant,
            &config.repository_link_id,
            &config.branch,
            resource_name,
        )
        .await?;
        sqlx::query(
            "UPDATE sync_configurations SET link_id = $1, branch = $2, config_file = $3, role_arn = $4, \
             publish_deployment_status = $5, trigger_resource_update_on = $6, pull_request_comment = $7 \
             WHERE account_id = $8 AND region = $9 AND sync_type = $10 AND resource_name = $11",
        )
        .bind(&config.repository_link_id)
        .bind(&config.branch)
        .bind(&config.config_file)
        .bind(&config.role_arn)
        .bind(toggle_text(config.publish_deployment_status))
        .bind(config.trigger_resource_update_on.map(|t| t.as_str()))
        .bind(toggle_text(config.pull_request_comment))
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(SyncType::CfnStackSync.as_str())
        .bind(resource_name)
        .execute(&mut *tx)
        .await?;
        reevaluate_branch(
            &mut tx,
            tenant,
            &format!("link:{}", config.repository_link_id),
            &config.branch,
        )
        .await?;
        crate::branches::watch_configured_branches(&mut tx, tenant).await?;
        self.commit(tx).await?;
        Ok(config)
    }

    pub async fn delete_sync_configuration(
        &self,
        tenant: &Tenant,
        resource_name: &str,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "DELETE FROM sync_configurations WHERE account_id = $1 AND region = $2 AND sync_type = $3 AND resource_name = $4",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(SyncType::CfnStackSync.as_str())
        .bind(resource_name)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "No sync configuration of type CFN_STACK_SYNC exists for resource {resource_name}"
            )));
        }
        crate::branches::watch_configured_branches(&mut tx, tenant).await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// The sync configurations on one repository link, by resource name.
    pub async fn list_sync_configurations(
        &self,
        tenant: &Tenant,
        link_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<SyncConfiguration>> {
        self.link_in(&self.pool, tenant, link_id).await?;
        let rows = sqlx::query(sync_config_by_link_sql())
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(link_id)
            .bind(after.unwrap_or(""))
            .bind(limit as i64 + 1)
            .fetch_all(&self.pool)
            .await?;
        Page::from_rows(rows, limit, sync_config_from, |c| c.resource_name.clone())
    }
}

// The SELECT with its WHERE clauses, spelled out once each (sqlx wants `&'static str`).
fn sync_config_by_name_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        format!("{SYNC_CONFIG_SELECT} WHERE c.account_id = $1 AND c.region = $2 AND c.sync_type = $3 AND c.resource_name = $4")
    })
}

fn sync_config_by_link_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "{SYNC_CONFIG_SELECT} WHERE c.account_id = $1 AND c.region = $2 AND c.link_id = $3 AND c.resource_name > $4 \
             ORDER BY c.resource_name LIMIT $5"
        )
    })
}

/// A new or changed sync configuration must be evaluated against the branch's current head, not
/// only against the next commit: the watched branch forgets which head it synced and becomes due.
pub(crate) async fn reevaluate_branch(
    tx: &mut Transaction<'static, Any>,
    tenant: &Tenant,
    repository_key: &str,
    branch: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE watched_branches SET synced_sha = NULL, next_check_at = 0 \
         WHERE account_id = $1 AND region = $2 AND repository_key = $3 AND branch = $4",
    )
    .bind(&tenant.account_id)
    .bind(&tenant.region)
    .bind(repository_key)
    .bind(branch)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
