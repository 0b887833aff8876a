//! Proton's template registry: environment and service templates and their `major.minor`
//! versions, with the bundle each version was registered from.

use crate::rows::{int, opt_text, parsed, text};
use crate::tags::{delete_tags, insert_tags};
use crate::{Page, Result, Store, StoreError};
use gitsync_model::{
    Arn, ProtonTemplate, SyncType, Tag, TemplateType, TemplateVersion, TemplateVersionStatus,
    Tenant, Timestamp,
};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{Any, Row};
use std::collections::BTreeMap;

/// What a user gives to create a template.
#[derive(Debug, Clone, Default)]
pub struct TemplateSpec {
    pub name: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub encryption_key: Option<String>,
    pub provisioning: Option<String>,
}

/// Names one `major.minor` version of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRef {
    pub template_type: TemplateType,
    pub name: String,
    pub major: i64,
    pub minor: i64,
}

/// A version to register from a bundle (by template sync).
#[derive(Debug, Clone, Default)]
pub struct NewTemplateVersion {
    pub major: i64,
    pub description: Option<String>,
    pub schema: Option<String>,
    pub compatible_environments: Vec<(String, String)>,
    pub supported_component_sources: Vec<String>,
    pub source_commit: Option<String>,
    /// Path → contents of every file of the bundle.
    pub files: BTreeMap<String, Vec<u8>>,
}

fn template_from(row: &AnyRow) -> Result<ProtonTemplate> {
    Ok(ProtonTemplate {
        template_type: parsed(row, "template_type", TemplateType::parse)?,
        name: text(row, "name")?,
        arn: text(row, "arn")?,
        display_name: opt_text(row, "display_name")?,
        description: opt_text(row, "description")?,
        encryption_key: opt_text(row, "encryption_key")?,
        provisioning: opt_text(row, "provisioning")?,
        created_at: Timestamp(int(row, "created_at")?),
        last_modified_at: Timestamp(int(row, "last_modified_at")?),
        recommended_version: None,
    })
}

fn version_from(row: &AnyRow) -> Result<TemplateVersion> {
    let compat: Vec<(String, String)> = opt_text(row, "compatible_environments")?
        .map(|j| serde_json::from_str(&j).unwrap_or_default())
        .unwrap_or_default();
    let sources: Vec<String> = opt_text(row, "supported_component_sources")?
        .map(|j| serde_json::from_str(&j).unwrap_or_default())
        .unwrap_or_default();
    Ok(TemplateVersion {
        template_type: parsed(row, "template_type", TemplateType::parse)?,
        template_name: text(row, "template_name")?,
        major: int(row, "major")?,
        minor: int(row, "minor")?,
        arn: text(row, "arn")?,
        description: opt_text(row, "description")?,
        status: parsed(row, "status", TemplateVersionStatus::parse)?,
        status_message: opt_text(row, "status_message")?,
        schema: opt_text(row, "template_schema")?,
        compatible_environments: compat,
        supported_component_sources: sources,
        source_commit: opt_text(row, "source_commit")?,
        created_at: Timestamp(int(row, "created_at")?),
        last_modified_at: Timestamp(int(row, "last_modified_at")?),
        recommended_minor: None,
    })
}

fn missing_template(template_type: TemplateType, name: &str) -> StoreError {
    StoreError::NotFound(format!(
        "{} template {name} does not exist",
        kind(template_type)
    ))
}

fn kind(template_type: TemplateType) -> &'static str {
    match template_type {
        TemplateType::Environment => "Environment",
        TemplateType::Service => "Service",
    }
}

/// Version keys sort by number, so list positions are written `major:minor` with zero padding.
fn version_key(v: &TemplateVersion) -> String {
    format!("{:020}:{:020}", v.major, v.minor)
}

impl Store {
    async fn recommended(
        &self,
        tenant: &Tenant,
        template_type: TemplateType,
        name: &str,
        major: Option<i64>,
    ) -> Result<Option<(i64, i64)>> {
        let row = sqlx::query(
            "SELECT major, minor FROM proton_template_versions WHERE account_id = $1 AND region = $2 AND template_type = $3 \
             AND template_name = $4 AND status = 'PUBLISHED' AND ($5 < 0 OR major = $5) ORDER BY major DESC, minor DESC LIMIT 1",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(template_type.as_str())
        .bind(name)
        .bind(major.unwrap_or(-1))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((int(&r, "major")?, int(&r, "minor")?)))
            .transpose()
    }

    async fn with_recommendation(
        &self,
        tenant: &Tenant,
        mut t: ProtonTemplate,
    ) -> Result<ProtonTemplate> {
        t.recommended_version = self
            .recommended(tenant, t.template_type, &t.name, None)
            .await?
            .map(|(a, b)| format!("{a}.{b}"));
        Ok(t)
    }

    async fn version_with_recommendation(
        &self,
        tenant: &Tenant,
        mut v: TemplateVersion,
    ) -> Result<TemplateVersion> {
        v.recommended_minor = self
            .recommended(tenant, v.template_type, &v.template_name, Some(v.major))
            .await?
            .map(|(_, m)| m);
        Ok(v)
    }

    pub async fn create_template(
        &self,
        tenant: &Tenant,
        template_type: TemplateType,
        spec: &TemplateSpec,
        tags: &[Tag],
    ) -> Result<ProtonTemplate> {
        let mut tx = self.write_tx().await?;
        let existing: i64 = sqlx::query(
            "SELECT COUNT(*) FROM proton_templates WHERE account_id = $1 AND region = $2",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        if existing >= i64::from(self.limits.proton_templates) {
            return Err(StoreError::LimitExceeded(format!(
                "this account has {existing} templates in {}, the limit is {}",
                tenant.region, self.limits.proton_templates
            )));
        }
        let now = Timestamp::now();
        let arn = Arn::new(
            "proton",
            tenant,
            ProtonTemplate::arn_resource(template_type, &spec.name),
        )
        .to_string();
        let inserted = sqlx::query(
            "INSERT INTO proton_templates (account_id, region, template_type, name, arn, display_name, description, encryption_key, \
             provisioning, created_at, last_modified_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(template_type.as_str())
        .bind(&spec.name)
        .bind(&arn)
        .bind(&spec.display_name)
        .bind(&spec.description)
        .bind(&spec.encryption_key)
        .bind(&spec.provisioning)
        .bind(now.millis())
        .execute(&mut *tx)
        .await;
        crate::rows::unique(inserted, || {
            format!(
                "{} template {} already exists",
                kind(template_type),
                spec.name
            )
        })?;
        insert_tags(&mut tx, tenant, &arn, tags, self.limits.tags_per_resource).await?;
        // A template sync that failed because this template did not exist yet (it retries with
        // backoff) tries again at once.
        sqlx::query(
            "UPDATE sync_targets SET next_attempt_at = 0 WHERE account_id = $1 AND region = $2 AND sync_type = $3 \
             AND parent_key = $4 AND attempted_sha IS NULL",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(SyncType::TemplateSync.as_str())
        .bind(format!("{}/{}", template_type.as_str(), spec.name))
        .execute(&mut *tx)
        .await?;
        self.commit(tx).await?;
        Ok(ProtonTemplate {
            template_type,
            name: spec.name.clone(),
            arn,
            display_name: spec.display_name.clone(),
            description: spec.description.clone(),
            encryption_key: spec.encryption_key.clone(),
            provisioning: spec.provisioning.clone(),
            created_at: now,
            last_modified_at: now,
            recommended_version: None,
        })
    }

    async fn template_in<'e, E>(
        &self,
        executor: E,
        tenant: &Tenant,
        template_type: TemplateType,
        name: &str,
    ) -> Result<ProtonTemplate>
    where
        E: sqlx::Executor<'e, Database = Any>,
    {
        let row = sqlx::query("SELECT * FROM proton_templates WHERE account_id = $1 AND region = $2 AND template_type = $3 AND name = $4")
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(template_type.as_str())
            .bind(name)
            .fetch_optional(executor)
            .await?
            .ok_or_else(|| missing_template(template_type, name))?;
        template_from(&row)
    }

    pub async fn get_template(
        &self,
        tenant: &Tenant,
        template_type: TemplateType,
        name: &str,
    ) -> Result<ProtonTemplate> {
        let t = self
            .template_in(&self.pool, tenant, template_type, name)
            .await?;
        self.with_recommendation(tenant, t).await
    }

    pub async fn list_templates(
        &self,
        tenant: &Tenant,
        template_type: TemplateType,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<ProtonTemplate>> {
        let rows = sqlx::query(
            "SELECT * FROM proton_templates WHERE account_id = $1 AND region = $2 AND template_type = $3 AND name > $4 ORDER BY name LIMIT $5",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(template_type.as_str())
        .bind(after.unwrap_or(""))
        .bind(limit as i64 + 1)
        .fetch_all(&self.pool)
        .await?;
        let mut page = Page::from_rows(rows, limit, template_from, |t| t.name.clone())?;
        let mut items = Vec::with_capacity(page.items.len());
        for t in page.items {
            items.push(self.with_recommendation(tenant, t).await?);
        }
        page.items = items;
        Ok(page)
    }

    pub async fn update_template(
        &self,
        tenant: &Tenant,
        template_type: TemplateType,
        name: &str,
        display_name: Option<&str>,
        description: Option<&str>,
    ) -> Result<ProtonTemplate> {
        let mut tx = self.write_tx().await?;
        let mut t = self
            .template_in(&mut *tx, tenant, template_type, name)
            .await?;
        if let Some(d) = display_name {
            t.display_name = Some(d.to_string());
        }
        if let Some(d) = description {
            t.description = Some(d.to_string());
        }
        t.last_modified_at = Timestamp::now();
        sqlx::query(
            "UPDATE proton_templates SET display_name = $1, description = $2, last_modified_at = $3 \
             WHERE account_id = $4 AND region = $5 AND template_type = $6 AND name = $7",
        )
        .bind(&t.display_name)
        .bind(&t.description)
        .bind(t.last_modified_at.millis())
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(template_type.as_str())
        .bind(name)
        .execute(&mut *tx)
        .await?;
        self.commit(tx).await?;
        self.with_recommendation(tenant, t).await
    }

    pub async fn delete_template(
        &self,
        tenant: &Tenant,
        template_type: TemplateType,
        name: &str,
    ) -> Result<ProtonTemplate> {
        let mut tx = self.write_tx().await?;
        let t = self
            .template_in(&mut *tx, tenant, template_type, name)
            .await?;
        let versions: i64 = sqlx::query(
            "SELECT COUNT(*) FROM proton_template_versions WHERE account_id = $1 AND region = $2 AND template_type = $3 AND template_name = $4",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(template_type.as_str())
        .bind(name)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        if versions > 0 {
            return Err(StoreError::StillInUse(format!(
                "{} template {name} still has {versions} version(s); delete them first",
                kind(template_type)
            )));
        }
        sqlx::query("DELETE FROM proton_templates WHERE account_id = $1 AND region = $2 AND template_type = $3 AND name = $4")
            .bind(&tenant.account_id)
            .bind(&tenant.region)
            .bind(template_type.as_str())
            .bind(name)
            .execute(&mut *tx)
            .await?;
        delete_tags(&mut tx, tenant, &t.arn).await?;
        self.commit(tx).await?;
        Ok(t)
    }

    async fn version_in<'e, E>(
        &self,
        executor: E,
        tenant: &Tenant,
        template_type: TemplateType,
        name: &str,
        major: i64,
        minor: i64,
    ) -> Result<TemplateVersion>
    where
        E: sqlx::Executor<'e, Database = Any>,
    {
        let row = sqlx::query(
            "SELECT * FROM proton_template_versions WHERE account_id = $1 AND region = $2 AND template_type = $3 AND template_name = $4 \
             AND major = $5 AND minor = $6",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(template_type.as_str())
        .bind(name)
        .bind(major)
        .bind(minor)
        .fetch_optional(executor)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("{} template {name} has no version {major}.{minor}", kind(template_type))))?;
        version_from(&row)
    }

    pub async fn get_template_version(
        &self,
        tenant: &Tenant,
        template_type: TemplateType,
        name: &str,
        major: i64,
        minor: i64,
    ) -> Result<TemplateVersion> {
        let v = self
            .version_in(&self.pool, tenant, template_type, name, major, minor)
            .await?;
        self.version_with_recommendation(tenant, v).await
    }

    pub async fn list_template_versions(
        &self,
        tenant: &Tenant,
        template_type: TemplateType,
        name: &str,
        major: Option<i64>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<TemplateVersion>> {
        self.template_in(&self.pool, tenant, template_type, name)
            .await?;
        let (after_major, after_minor) = after
            .and_then(|a| a.split_once(':'))
            .and_then(|(a, b)| Some((a.parse::<i64>().ok()?, b.parse::<i64>().ok()?)))
            .unwrap_or((-1, -1));
        let rows = sqlx::query(
            "SELECT * FROM proton_template_versions WHERE account_id = $1 AND region = $2 AND template_type = $3 AND template_name = $4 \
             AND ($5 < 0 OR major = $5) AND (major > $6 OR (major = $6 AND minor > $7)) ORDER BY major, minor LIMIT $8",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(template_type.as_str())
        .bind(name)
        .bind(major.unwrap_or(-1))
        .bind(after_major)
        .bind(after_minor)
        .bind(limit as i64 + 1)
        .fetch_all(&self.pool)
        .await?;
        let mut page = Page::from_rows(rows, limit, version_from, version_key)?;
        let mut items = Vec::with_capacity(page.items.len());
        for v in page.items {
            items.push(self.version_with_recommendation(tenant, v).await?);
        }
        page.items = items;
        Ok(page)
    }

    /// Changes a version's description or status. Only `DRAFT` and `PUBLISHED` can be set, and
    /// only on a version that registered.
    pub async fn update_template_version(
        &self,
        tenant: &Tenant,
        version: &VersionRef,
        description: Option<&str>,
        status: Option<TemplateVersionStatus>,
    ) -> Result<TemplateVersion> {
        let (template_type, name, major, minor) = (
            version.template_type,
            version.name.as_str(),
            version.major,
            version.minor,
        );
        let mut tx = self.write_tx().await?;
        let mut v = self
            .version_in(&mut *tx, tenant, template_type, name, major, minor)
            .await?;
        let before = v.status;
        if let Some(status) = status {
            if !matches!(
                status,
                TemplateVersionStatus::Draft | TemplateVersionStatus::Published
            ) {
                return Err(StoreError::Invalid(format!(
                    "status: a version can be set to DRAFT or PUBLISHED, not {status}"
                )));
            }
            if !matches!(
                v.status,
                TemplateVersionStatus::Draft | TemplateVersionStatus::Published
            ) {
                return Err(StoreError::Conflict(format!(
                    "version {major}.{minor} is {} and cannot be {status}",
                    v.status
                )));
            }
            v.status = status;
        }
        if let Some(d) = description {
            v.description = Some(d.to_string());
        }
        v.last_modified_at = Timestamp::now();
        sqlx::query(
            "UPDATE proton_template_versions SET description = $1, status = $2, last_modified_at = $3 \
             WHERE account_id = $4 AND region = $5 AND template_type = $6 AND template_name = $7 AND major = $8 AND minor = $9",
        )
        .bind(&v.description)
        .bind(v.status.as_str())
        .bind(v.last_modified_at.millis())
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(template_type.as_str())
        .bind(name)
        .bind(major)
        .bind(minor)
        .execute(&mut *tx)
        .await?;
        if v.status != before {
            crate::outbox::notify_proton(
                &mut tx,
                tenant,
                version_event_kind(template_type),
                &v.arn,
                v.status.as_str(),
                Some(before.as_str()),
            )
            .await?;
        }
        self.commit(tx).await?;
        self.version_with_recommendation(tenant, v).await
    }

    pub async fn delete_template_version(
        &self,
        tenant: &Tenant,
        template_type: TemplateType,
        name: &str,
        major: i64,
        minor: i64,
    ) -> Result<TemplateVersion> {
        let mut tx = self.write_tx().await?;
        let v = self
            .version_in(&mut *tx, tenant, template_type, name, major, minor)
            .await?;
        sqlx::query(
            "DELETE FROM proton_template_versions WHERE account_id = $1 AND region = $2 AND template_type = $3 AND template_name = $4 \
             AND major = $5 AND minor = $6",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(template_type.as_str())
        .bind(name)
        .bind(major)
        .bind(minor)
        .execute(&mut *tx)
        .await?;
        delete_tags(&mut tx, tenant, &v.arn).await?;
        self.commit(tx).await?;
        Ok(v)
    }

    /// Registers the next minor version of a major from a bundle (DRAFT), storing the bundle
    /// content-addressed. Template sync calls this; the template must exist.
    pub async fn register_template_version(
        &self,
        tenant: &Tenant,
        template_type: TemplateType,
        name: &str,
        new: &NewTemplateVersion,
    ) -> Result<TemplateVersion> {
        let mut tx = self.write_tx().await?;
        let v = self
            .register_template_version_in(&mut tx, tenant, template_type, name, new)
            .await?;
        self.commit(tx).await?;
        self.get_template_version(tenant, template_type, name, v.major, v.minor)
            .await
    }

    /// Registers the next minor inside a caller's transaction (template sync closes its attempt
    /// in the same one).
    pub(crate) async fn register_template_version_in(
        &self,
        tx: &mut sqlx::Transaction<'static, Any>,
        tenant: &Tenant,
        template_type: TemplateType,
        name: &str,
        new: &NewTemplateVersion,
    ) -> Result<TemplateVersion> {
        use base64::Engine;
        let files: BTreeMap<&String, String> = new
            .files
            .iter()
            .map(|(k, v)| (k, base64::engine::general_purpose::STANDARD.encode(v)))
            .collect();
        let files_json = serde_json::to_string(&files).map_err(StoreError::corrupt)?;
        let bundle_id = hex_sha256(files_json.as_bytes());
        self.template_in(&mut **tx, tenant, template_type, name)
            .await?;
        let next: i64 = sqlx::query(
            "SELECT COALESCE(MAX(minor) + 1, 0) FROM proton_template_versions WHERE account_id = $1 AND region = $2 \
             AND template_type = $3 AND template_name = $4 AND major = $5",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(template_type.as_str())
        .bind(name)
        .bind(new.major)
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
        sqlx::query("INSERT INTO template_bundles (bundle_id, files) VALUES ($1, $2) ON CONFLICT (bundle_id) DO NOTHING")
            .bind(&bundle_id)
            .bind(&files_json)
            .execute(&mut **tx)
            .await?;
        let now = Timestamp::now();
        let arn = Arn::new(
            "proton",
            tenant,
            format!(
                "{}:{}.{}",
                ProtonTemplate::arn_resource(template_type, name),
                new.major,
                next
            ),
        )
        .to_string();
        sqlx::query(
            "INSERT INTO proton_template_versions (account_id, region, template_type, template_name, major, minor, arn, description, status, \
             template_schema, compatible_environments, supported_component_sources, bundle_id, source_commit, created_at, last_modified_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15)",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(template_type.as_str())
        .bind(name)
        .bind(new.major)
        .bind(next)
        .bind(&arn)
        .bind(&new.description)
        .bind(TemplateVersionStatus::Draft.as_str())
        .bind(&new.schema)
        .bind(serde_json::to_string(&new.compatible_environments).map_err(StoreError::corrupt)?)
        .bind(serde_json::to_string(&new.supported_component_sources).map_err(StoreError::corrupt)?)
        .bind(&bundle_id)
        .bind(&new.source_commit)
        .bind(now.millis())
        .execute(&mut **tx)
        .await?;
        // A version comes into being registered (DRAFT): it has no status before.
        crate::outbox::notify_proton(
            tx,
            tenant,
            version_event_kind(template_type),
            &arn,
            TemplateVersionStatus::Draft.as_str(),
            None,
        )
        .await?;
        self.version_in(&mut **tx, tenant, template_type, name, new.major, next)
            .await
    }

    /// The newest version of a major registered from a commit and still there.
    pub async fn template_version_from_commit(
        &self,
        tenant: &Tenant,
        template_type: TemplateType,
        name: &str,
        major: i64,
        commit: &str,
    ) -> Result<Option<TemplateVersion>> {
        version_from_commit(&self.pool, tenant, template_type, name, major, commit).await
    }

    /// The files a version was registered from.
    pub async fn template_version_files(
        &self,
        tenant: &Tenant,
        template_type: TemplateType,
        name: &str,
        major: i64,
        minor: i64,
    ) -> Result<BTreeMap<String, Vec<u8>>> {
        use base64::Engine;
        let row = sqlx::query(
            "SELECT b.files FROM proton_template_versions v JOIN template_bundles b ON b.bundle_id = v.bundle_id \
             WHERE v.account_id = $1 AND v.region = $2 AND v.template_type = $3 AND v.template_name = $4 AND v.major = $5 AND v.minor = $6",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(template_type.as_str())
        .bind(name)
        .bind(major)
        .bind(minor)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("{} template {name} has no version {major}.{minor} with a bundle", kind(template_type))))?;
        let files: BTreeMap<String, String> =
            serde_json::from_str(&text(&row, "files")?).map_err(StoreError::corrupt)?;
        files
            .into_iter()
            .map(|(k, v)| {
                Ok((
                    k,
                    base64::engine::general_purpose::STANDARD
                        .decode(v)
                        .map_err(StoreError::corrupt)?,
                ))
            })
            .collect()
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The newest version of a major registered from a commit, read through `executor` (a
/// transaction sees its own writes).
pub(crate) async fn version_from_commit<'e, E>(
    executor: E,
    tenant: &Tenant,
    template_type: TemplateType,
    name: &str,
    major: i64,
    commit: &str,
) -> Result<Option<TemplateVersion>>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    sqlx::query(
        "SELECT * FROM proton_template_versions WHERE account_id = $1 AND region = $2 AND template_type = $3 \
         AND template_name = $4 AND major = $5 AND source_commit = $6 ORDER BY minor DESC LIMIT 1",
    )
    .bind(&tenant.account_id)
    .bind(&tenant.region)
    .bind(template_type.as_str())
    .bind(name)
    .bind(major)
    .bind(commit)
    .fetch_optional(executor)
    .await?
    .as_ref()
    .map(version_from)
    .transpose()
}

/// The status-change event kind of a template type's versions.
fn version_event_kind(
    template_type: TemplateType,
) -> gitsync_model::notification::ProtonResourceKind {
    use gitsync_model::notification::ProtonResourceKind;
    match template_type {
        TemplateType::Environment => ProtonResourceKind::EnvironmentTemplateVersion,
        TemplateType::Service => ProtonResourceKind::ServiceTemplateVersion,
    }
}
