//! Tags on any taggable resource, kept under the resource's canonical ARN.

use crate::connections::connections_resource_id;
use crate::rows::text;
use crate::{Result, Store, StoreError};
use gitsync_model::{Arn, Tag, Tenant};
use sqlx::{Any, Row, Transaction};

/// A resource that tags can be put on, found from an ARN the caller gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaggedResource {
    Connection(String),
    Host(String),
    RepositoryLink(String),
    ProtonRepository(String),
    /// A template or a template version.
    ProtonTemplate(String),
    /// An environment, a service or a service instance.
    ProtonDeployable(String),
}

impl TaggedResource {
    /// Which resource an ARN names, if it is one of this tenant's kinds. Whether it exists is
    /// for the store to say.
    pub fn from_arn(tenant: &Tenant, arn: &str) -> Option<Self> {
        if let Some(id) = connections_resource_id(tenant, arn, "connection") {
            return Some(TaggedResource::Connection(id));
        }
        if let Some(id) = connections_resource_id(tenant, arn, "host") {
            return Some(TaggedResource::Host(id));
        }
        if let Some(id) = connections_resource_id(tenant, arn, "repository-link") {
            return Some(TaggedResource::RepositoryLink(id));
        }
        let parsed = Arn::parse(arn)?;
        if parsed.service == "proton"
            && parsed.belongs_to(tenant)
            && parsed.resource.starts_with("repository/")
        {
            return Some(TaggedResource::ProtonRepository(arn.to_string()));
        }
        let template = parsed.resource.starts_with("environment-template/")
            || parsed.resource.starts_with("service-template/");
        if parsed.service == "proton" && parsed.belongs_to(tenant) && template {
            return Some(TaggedResource::ProtonTemplate(arn.to_string()));
        }
        let deployable =
            parsed.resource.starts_with("environment/") || parsed.resource.starts_with("service/");
        if parsed.service == "proton" && parsed.belongs_to(tenant) && deployable {
            return Some(TaggedResource::ProtonDeployable(arn.to_string()));
        }
        None
    }
}

impl Store {
    /// The stored ARN of a taggable resource, or `NotFound` naming the ARN the caller gave.
    async fn canonical_arn(
        &self,
        tx: &mut Transaction<'static, Any>,
        tenant: &Tenant,
        arn: &str,
    ) -> Result<String> {
        let (sql, key): (&'static str, String) = match TaggedResource::from_arn(tenant, arn) {
            Some(TaggedResource::Connection(id)) => (
                "SELECT arn FROM connections WHERE account_id = $1 AND region = $2 AND connection_id = $3",
                id,
            ),
            Some(TaggedResource::Host(id)) => (
                "SELECT arn FROM hosts WHERE account_id = $1 AND region = $2 AND host_id = $3",
                id,
            ),
            Some(TaggedResource::RepositoryLink(id)) => (
                "SELECT arn FROM repository_links WHERE account_id = $1 AND region = $2 AND link_id = $3",
                id,
            ),
            Some(TaggedResource::ProtonRepository(arn)) => (
                "SELECT arn FROM proton_repositories WHERE account_id = $1 AND region = $2 AND arn = $3",
                arn,
            ),
            Some(TaggedResource::ProtonTemplate(arn)) => (
                "SELECT arn FROM proton_templates WHERE account_id = $1 AND region = $2 AND arn = $3 \
                 UNION SELECT arn FROM proton_template_versions WHERE account_id = $1 AND region = $2 AND arn = $3",
                arn,
            ),
            Some(TaggedResource::ProtonDeployable(arn)) => (
                "SELECT arn FROM proton_environments WHERE account_id = $1 AND region = $2 AND arn = $3 \
                 UNION SELECT arn FROM proton_services WHERE account_id = $1 AND region = $2 AND arn = $3 \
                 UNION SELECT arn FROM proton_service_instances WHERE account_id = $1 AND region = $2 AND arn = $3",
                arn,
            ),
            None => {
                return Err(StoreError::NotFound(format!(
                    "Resource {arn} does not exist"
                )));
            }
        };
        let row = sqlx::query(sql)
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(key)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("Resource {arn} does not exist")))?;
        text(&row, "arn")
    }

    pub async fn tag_resource(&self, tenant: &Tenant, arn: &str, tags: &[Tag]) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let arn = self.canonical_arn(&mut tx, tenant, arn).await?;
        insert_tags(&mut tx, tenant, &arn, tags, self.limits.tags_per_resource).await?;
        self.commit(tx).await?;
        Ok(())
    }

    pub async fn untag_resource(&self, tenant: &Tenant, arn: &str, keys: &[String]) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let arn = self.canonical_arn(&mut tx, tenant, arn).await?;
        for key in keys {
            sqlx::query("DELETE FROM tags WHERE account_id = $1 AND region = $2 AND resource_arn = $3 AND tag_key = $4")
                .bind(&tenant.account_id)
                .bind(&tenant.region)
                .bind(&arn)
                .bind(key)
                .execute(&mut *tx)
                .await?;
        }
        self.commit(tx).await?;
        Ok(())
    }

    pub async fn list_tags(&self, tenant: &Tenant, arn: &str) -> Result<Vec<Tag>> {
        let mut tx = self.pool.begin().await?;
        let arn = self.canonical_arn(&mut tx, tenant, arn).await?;
        let tags = tags_of(&mut tx, tenant, &arn).await?;
        tx.rollback().await?;
        Ok(tags)
    }
}

pub(crate) async fn tags_of(
    tx: &mut Transaction<'static, Any>,
    tenant: &Tenant,
    arn: &str,
) -> Result<Vec<Tag>> {
    let rows = sqlx::query(
        "SELECT tag_key, tag_value FROM tags WHERE account_id = $1 AND region = $2 AND resource_arn = $3 ORDER BY tag_key",
    )
    .bind(&tenant.account_id)
    .bind(&tenant.region)
    .bind(arn)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Tag {
                key: r.try_get("tag_key")?,
                value: r.try_get("tag_value")?,
            })
        })
        .collect()
}

/// Adds or overwrites tags, keeping the resource within its tag quota.
pub(crate) async fn insert_tags(
    tx: &mut Transaction<'static, Any>,
    tenant: &Tenant,
    arn: &str,
    tags: &[Tag],
    limit: u32,
) -> Result<()> {
    if tags.is_empty() {
        return Ok(());
    }
    let mut keys: Vec<String> = tags_of(tx, tenant, arn)
        .await?
        .into_iter()
        .map(|t| t.key)
        .collect();
    keys.extend(tags.iter().map(|t| t.key.clone()));
    keys.sort();
    keys.dedup();
    if keys.len() > limit as usize {
        return Err(StoreError::LimitExceeded(format!(
            "a resource can have at most {limit} tags; this would give {arn} {}",
            keys.len()
        )));
    }
    for tag in tags {
        sqlx::query("DELETE FROM tags WHERE account_id = $1 AND region = $2 AND resource_arn = $3 AND tag_key = $4")
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(arn)
            .bind(&tag.key)
            .execute(&mut **tx)
            .await?;
        sqlx::query("INSERT INTO tags (account_id, region, resource_arn, tag_key, tag_value) VALUES ($1, $2, $3, $4, $5)")
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(arn)
            .bind(&tag.key)
            .bind(&tag.value)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

pub(crate) async fn delete_tags(
    tx: &mut Transaction<'static, Any>,
    tenant: &Tenant,
    arn: &str,
) -> Result<()> {
    sqlx::query("DELETE FROM tags WHERE account_id = $1 AND region = $2 AND resource_arn = $3")
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(arn)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
