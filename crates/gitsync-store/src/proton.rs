//! Proton's repositories and its template and service sync configurations.

use crate::connections::connections_resource_id;
use crate::rows::{opt_text, parsed, text};
use crate::tags::{delete_tags, insert_tags};
use crate::{Page, Result, Store, StoreError};
use gitsync_model::{
    Arn, ProtonProvider, ProtonRepository, ServiceSyncConfig, Tag, TemplateSyncConfig,
    TemplateType, Tenant, Timestamp,
};
use sqlx::any::AnyRow;
use sqlx::{Any, Row};

fn repository_from(row: &AnyRow) -> Result<ProtonRepository> {
    Ok(ProtonRepository {
        arn: text(row, "arn")?,
        provider: parsed(row, "provider", ProtonProvider::parse)?,
        name: text(row, "name")?,
        connection_arn: text(row, "connection_arn")?,
        encryption_key: opt_text(row, "encryption_key")?,
    })
}

fn template_config_from(row: &AnyRow) -> Result<TemplateSyncConfig> {
    Ok(TemplateSyncConfig {
        template_name: text(row, "template_name")?,
        template_type: parsed(row, "template_type", TemplateType::parse)?,
        repository_provider: parsed(row, "repository_provider", ProtonProvider::parse)?,
        repository_name: text(row, "repository_name")?,
        branch: text(row, "branch")?,
        subdirectory: opt_text(row, "subdirectory")?,
    })
}

fn service_config_from(row: &AnyRow) -> Result<ServiceSyncConfig> {
    Ok(ServiceSyncConfig {
        service_name: text(row, "service_name")?,
        repository_provider: parsed(row, "repository_provider", ProtonProvider::parse)?,
        repository_name: text(row, "repository_name")?,
        branch: text(row, "branch")?,
        file_path: text(row, "file_path")?,
    })
}

fn repository_missing(provider: ProtonProvider, name: &str) -> StoreError {
    StoreError::NotFound(format!(
        "Repository {name} of provider {provider} does not exist; create it with CreateRepository"
    ))
}

impl Store {
    pub async fn create_proton_repository(
        &self,
        tenant: &Tenant,
        provider: ProtonProvider,
        name: &str,
        connection_arn: &str,
        encryption_key: Option<&str>,
        tags: &[Tag],
    ) -> Result<ProtonRepository> {
        let mut tx = self.write_tx().await?;
        let connection_id = connections_resource_id(tenant, connection_arn, "connection")
            .ok_or_else(|| {
                StoreError::Invalid(format!(
                    "connectionArn: {connection_arn} is not a connection of this account and region"
                ))
            })?;
        let row = sqlx::query("SELECT provider_type FROM connections WHERE account_id = $1 AND region = $2 AND connection_id = $3")
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(&connection_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::Invalid(format!("connectionArn: connection {connection_arn} does not exist")))?;
        let connection_provider = text(&row, "provider_type")?;
        if connection_provider != provider.provider_type().as_str() {
            return Err(StoreError::Invalid(format!(
                "connectionArn: connection {connection_arn} is for {connection_provider}, not {provider}"
            )));
        }
        let existing: i64 = sqlx::query(
            "SELECT COUNT(*) FROM proton_repositories WHERE account_id = $1 AND region = $2",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        if existing >= i64::from(self.limits.proton_repositories) {
            return Err(StoreError::LimitExceeded(format!(
                "this account has {existing} repositories in {}, the limit is {}",
                tenant.region, self.limits.proton_repositories
            )));
        }
        let repository = ProtonRepository {
            arn: Arn::new(
                "proton",
                tenant,
                ProtonRepository::arn_resource(provider, name),
            )
            .to_string(),
            provider,
            name: name.to_string(),
            connection_arn: connection_arn.to_string(),
            encryption_key: encryption_key.map(str::to_string),
        };
        let inserted = sqlx::query(
            "INSERT INTO proton_repositories (account_id, region, provider, name, arn, connection_arn, encryption_key, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(provider.as_str())
        .bind(name)
        .bind(&repository.arn)
        .bind(connection_arn)
        .bind(encryption_key)
        .bind(Timestamp::now().millis())
        .execute(&mut *tx)
        .await;
        crate::rows::unique(inserted, || {
            format!("Repository {name} of provider {provider} already exists")
        })?;
        insert_tags(
            &mut tx,
            tenant,
            &repository.arn,
            tags,
            self.limits.tags_per_resource,
        )
        .await?;
        self.commit(tx).await?;
        Ok(repository)
    }

    async fn proton_repository_in<'e, E>(
        &self,
        executor: E,
        tenant: &Tenant,
        provider: ProtonProvider,
        name: &str,
    ) -> Result<ProtonRepository>
    where
        E: sqlx::Executor<'e, Database = Any>,
    {
        let row = sqlx::query("SELECT * FROM proton_repositories WHERE account_id = $1 AND region = $2 AND provider = $3 AND name = $4")
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(provider.as_str())
            .bind(name)
            .fetch_optional(executor)
            .await?
            .ok_or_else(|| repository_missing(provider, name))?;
        repository_from(&row)
    }

    pub async fn get_proton_repository(
        &self,
        tenant: &Tenant,
        provider: ProtonProvider,
        name: &str,
    ) -> Result<ProtonRepository> {
        self.proton_repository_in(&self.pool, tenant, provider, name)
            .await
    }

    pub async fn list_proton_repositories(
        &self,
        tenant: &Tenant,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<ProtonRepository>> {
        let rows = sqlx::query(
            "SELECT * FROM proton_repositories WHERE account_id = $1 AND region = $2 AND arn > $3 ORDER BY arn LIMIT $4",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(after.unwrap_or(""))
        .bind(limit as i64 + 1)
        .fetch_all(&self.pool)
        .await?;
        Page::from_rows(rows, limit, repository_from, |r| r.arn.clone())
    }

    pub async fn delete_proton_repository(
        &self,
        tenant: &Tenant,
        provider: ProtonProvider,
        name: &str,
    ) -> Result<ProtonRepository> {
        let mut tx = self.write_tx().await?;
        let repository = self
            .proton_repository_in(&mut *tx, tenant, provider, name)
            .await?;
        let users: i64 = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM template_sync_configs WHERE account_id = $1 AND region = $2 AND repository_provider = $3 AND repository_name = $4) \
                  + (SELECT COUNT(*) FROM service_sync_configs WHERE account_id = $1 AND region = $2 AND repository_provider = $3 AND repository_name = $4)",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(provider.as_str())
        .bind(name)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        if users > 0 {
            return Err(StoreError::StillInUse(format!(
                "Repository {name} is used by {users} sync configuration(s); delete them first"
            )));
        }
        sqlx::query("DELETE FROM proton_repositories WHERE account_id = $1 AND region = $2 AND provider = $3 AND name = $4")
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(provider.as_str())
            .bind(name)
            .execute(&mut *tx)
            .await?;
        delete_tags(&mut tx, tenant, &repository.arn).await?;
        self.commit(tx).await?;
        Ok(repository)
    }

    // ----- template sync configurations -----

    pub async fn create_template_sync_config(
        &self,
        tenant: &Tenant,
        config: &TemplateSyncConfig,
    ) -> Result<TemplateSyncConfig> {
        let mut tx = self.write_tx().await?;
        self.proton_repository_in(
            &mut *tx,
            tenant,
            config.repository_provider,
            &config.repository_name,
        )
        .await?;
        let existing: i64 = sqlx::query(
            "SELECT COUNT(*) FROM template_sync_configs WHERE account_id = $1 AND region = $2",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        if existing >= i64::from(self.limits.template_sync_configs) {
            return Err(StoreError::LimitExceeded(format!(
                "this account has {existing} template sync configurations in {}, the limit is {}",
                tenant.region, self.limits.template_sync_configs
            )));
        }
        let inserted = sqlx::query(
            "INSERT INTO template_sync_configs (account_id, region, template_name, template_type, repository_provider, repository_name, branch, subdirectory, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(&config.template_name)
        .bind(config.template_type.as_str())
        .bind(config.repository_provider.as_str())
        .bind(&config.repository_name)
        .bind(&config.branch)
        .bind(&config.subdirectory)
        .bind(Timestamp::now().millis())
        .execute(&mut *tx)
        .await;
        crate::rows::unique(inserted, || {
            format!(
                "a template sync configuration for {} template {} already exists",
                config.template_type, config.template_name
            )
        })?;
        let key = crate::status::RepositoryKey::Proton {
            provider: config.repository_provider,
            name: config.repository_name.clone(),
        };
        crate::connections::reevaluate_branch(&mut tx, tenant, &key.as_key(), &config.branch)
            .await?;
        crate::branches::watch_configured_branches(&mut tx, tenant).await?;
        self.commit(tx).await?;
        Ok(config.clone())
    }

    async fn template_config_in<'e, E>(
        &self,
        executor: E,
        tenant: &Tenant,
        name: &str,
        template_type: TemplateType,
    ) -> Result<TemplateSyncConfig>
    where
        E: sqlx::Executor<'e, Database = Any>,
    {
        let row = sqlx::query(
            "SELECT * FROM template_sync_configs WHERE account_id = $1 AND region = $2 AND template_name = $3 AND template_type = $4",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(name)
        .bind(template_type.as_str())
        .fetch_optional(executor)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("No template sync configuration exists for {template_type} template {name}")))?;
        template_config_from(&row)
    }

    pub async fn get_template_sync_config(
        &self,
        tenant: &Tenant,
        name: &str,
        template_type: TemplateType,
    ) -> Result<TemplateSyncConfig> {
        self.template_config_in(&self.pool, tenant, name, template_type)
            .await
    }

    pub async fn update_template_sync_config(
        &self,
        tenant: &Tenant,
        config: &TemplateSyncConfig,
    ) -> Result<TemplateSyncConfig> {
        let mut tx = self.write_tx().await?;
        self.template_config_in(
            &mut *tx,
            tenant,
            &config.template_name,
            config.template_type,
        )
        .await?;
        self.proton_repository_in(
            &mut *tx,
            tenant,
            config.repository_provider,
            &config.repository_name,
        )
        .await?;
        sqlx::query(
            "UPDATE template_sync_configs SET repository_provider = $1, repository_name = $2, branch = $3, subdirectory = $4 \
             WHERE account_id = $5 AND region = $6 AND template_name = $7 AND template_type = $8",
        )
        .bind(config.repository_provider.as_str())
        .bind(&config.repository_name)
        .bind(&config.branch)
        .bind(&config.subdirectory)
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(&config.template_name)
        .bind(config.template_type.as_str())
        .execute(&mut *tx)
        .await?;
        let key = crate::status::RepositoryKey::Proton {
            provider: config.repository_provider,
            name: config.repository_name.clone(),
        };
        crate::connections::reevaluate_branch(&mut tx, tenant, &key.as_key(), &config.branch)
            .await?;
        crate::branches::watch_configured_branches(&mut tx, tenant).await?;
        self.commit(tx).await?;
        Ok(config.clone())
    }

    pub async fn delete_template_sync_config(
        &self,
        tenant: &Tenant,
        name: &str,
        template_type: TemplateType,
    ) -> Result<TemplateSyncConfig> {
        let mut tx = self.write_tx().await?;
        let config = self
            .template_config_in(&mut *tx, tenant, name, template_type)
            .await?;
        sqlx::query("DELETE FROM template_sync_configs WHERE account_id = $1 AND region = $2 AND template_name = $3 AND template_type = $4")
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(name)
            .bind(template_type.as_str())
            .execute(&mut *tx)
            .await?;
        crate::branches::watch_configured_branches(&mut tx, tenant).await?;
        self.commit(tx).await?;
        Ok(config)
    }

    // ----- service sync configurations -----

    pub async fn create_service_sync_config(
        &self,
        tenant: &Tenant,
        config: &ServiceSyncConfig,
    ) -> Result<ServiceSyncConfig> {
        let mut tx = self.write_tx().await?;
        self.proton_repository_in(
            &mut *tx,
            tenant,
            config.repository_provider,
            &config.repository_name,
        )
        .await?;
        let service = sqlx::query(
            "SELECT 1 FROM proton_services WHERE account_id = $1 AND region = $2 AND name = $3",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(&config.service_name)
        .fetch_optional(&mut *tx)
        .await?;
        if service.is_none() {
            return Err(StoreError::NotFound(format!(
                "Service {} does not exist: create it with CreateService, then its service sync configuration",
                config.service_name
            )));
        }
        let existing: i64 = sqlx::query(
            "SELECT COUNT(*) FROM service_sync_configs WHERE account_id = $1 AND region = $2",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        if existing >= i64::from(self.limits.service_sync_configs) {
            return Err(StoreError::LimitExceeded(format!(
                "this account has {existing} service sync configurations in {}, the limit is {}",
                tenant.region, self.limits.service_sync_configs
            )));
        }
        let inserted = sqlx::query(
            "INSERT INTO service_sync_configs (account_id, region, service_name, repository_provider, repository_name, branch, file_path, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(&config.service_name)
        .bind(config.repository_provider.as_str())
        .bind(&config.repository_name)
        .bind(&config.branch)
        .bind(&config.file_path)
        .bind(Timestamp::now().millis())
        .execute(&mut *tx)
        .await;
        crate::rows::unique(inserted, || {
            format!(
                "a service sync configuration for service {} already exists",
                config.service_name
            )
        })?;
        let key = crate::status::RepositoryKey::Proton {
            provider: config.repository_provider,
            name: config.repository_name.clone(),
        };
        crate::connections::reevaluate_branch(&mut tx, tenant, &key.as_key(), &config.branch)
            .await?;
        // A service synced before (its configuration deleted and created again) is taken over
        // anew: every instance Git names is deployed from Git at the next check.
        sqlx::query(
            "UPDATE sync_targets SET watched_ids = NULL WHERE account_id = $1 AND region = $2 AND sync_type = 'SERVICE_SYNC' \
             AND parent_key = $3",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(&config.service_name)
        .execute(&mut *tx)
        .await?;
        crate::branches::watch_configured_branches(&mut tx, tenant).await?;
        self.commit(tx).await?;
        Ok(config.clone())
    }

    async fn service_config_in<'e, E>(
        &self,
        executor: E,
        tenant: &Tenant,
        service_name: &str,
    ) -> Result<ServiceSyncConfig>
    where
        E: sqlx::Executor<'e, Database = Any>,
    {
        let row = sqlx::query("SELECT * FROM service_sync_configs WHERE account_id = $1 AND region = $2 AND service_name = $3")
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(service_name)
            .fetch_optional(executor)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("No service sync configuration exists for service {service_name}")))?;
        service_config_from(&row)
    }

    pub async fn get_service_sync_config(
        &self,
        tenant: &Tenant,
        service_name: &str,
    ) -> Result<ServiceSyncConfig> {
        self.service_config_in(&self.pool, tenant, service_name)
            .await
    }

    pub async fn update_service_sync_config(
        &self,
        tenant: &Tenant,
        config: &ServiceSyncConfig,
    ) -> Result<ServiceSyncConfig> {
        let mut tx = self.write_tx().await?;
        self.service_config_in(&mut *tx, tenant, &config.service_name)
            .await?;
        self.proton_repository_in(
            &mut *tx,
            tenant,
            config.repository_provider,
            &config.repository_name,
        )
        .await?;
        sqlx::query(
            "UPDATE service_sync_configs SET repository_provider = $1, repository_name = $2, branch = $3, file_path = $4 \
             WHERE account_id = $5 AND region = $6 AND service_name = $7",
        )
        .bind(config.repository_provider.as_str())
        .bind(&config.repository_name)
        .bind(&config.branch)
        .bind(&config.file_path)
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(&config.service_name)
        .execute(&mut *tx)
        .await?;
        let key = crate::status::RepositoryKey::Proton {
            provider: config.repository_provider,
            name: config.repository_name.clone(),
        };
        // The branches the old ops file named are read again from the new one.
        sqlx::query(
            "DELETE FROM service_sync_branches WHERE account_id = $1 AND region = $2 AND service_name = $3",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(&config.service_name)
        .execute(&mut *tx)
        .await?;
        crate::connections::reevaluate_branch(&mut tx, tenant, &key.as_key(), &config.branch)
            .await?;
        crate::branches::watch_configured_branches(&mut tx, tenant).await?;
        self.commit(tx).await?;
        Ok(config.clone())
    }

    pub async fn delete_service_sync_config(
        &self,
        tenant: &Tenant,
        service_name: &str,
    ) -> Result<ServiceSyncConfig> {
        let mut tx = self.write_tx().await?;
        let config = self
            .service_config_in(&mut *tx, tenant, service_name)
            .await?;
        for table in [
            "DELETE FROM service_sync_configs WHERE account_id = $1 AND region = $2 AND service_name = $3",
            "DELETE FROM service_sync_branches WHERE account_id = $1 AND region = $2 AND service_name = $3",
        ] {
            sqlx::query(table)
                .bind(&tenant.account_id)
                .bind(&tenant.region)
                .bind(service_name)
                .execute(&mut *tx)
                .await?;
        }
        crate::branches::watch_configured_branches(&mut tx, tenant).await?;
        self.commit(tx).await?;
        Ok(config)
    }
}
