//! The AWS Proton operations gitsync answers: repositories, template and service sync
//! configurations, their statuses and blockers, and tags; the template registry (`templates`) and
//! environments, services and instances (`services`) are dispatched to their own modules. Other
//! Proton operations are answered with a validation error that says they are not supported yet.

use crate::Api;
use crate::dispatch::run;
use crate::dto::proton as dto;
use crate::error::ApiError;
use crate::service::Service;
use gitsync_model as model;
use gitsync_model::{Arn, SyncTarget, SyncType, Tenant};
use gitsync_store::{RepositoryKey, StoreError};
use serde_json::Value;

pub(crate) async fn call(
    api: &Api,
    tenant: &Tenant,
    operation: &str,
    input: Value,
) -> Result<Value, ApiError> {
    if let Some((template_type, op)) = crate::templates::operation(operation) {
        return crate::templates::call(api, tenant, template_type, op, &input).await;
    }
    if crate::services::serves(operation) {
        return crate::services::call(api, tenant, operation, input).await;
    }
    if crate::provisioning::serves(operation) {
        return crate::provisioning::call(api, tenant, operation, input).await;
    }
    if crate::pipelines::serves(operation) {
        return crate::pipelines::call(api, tenant, operation, input).await;
    }
    let ops = Ops { api, tenant };
    match operation {
        "CreateRepository" => run(input, |i| ops.create_repository(i)).await,
        "GetRepository" => run(input, |i| ops.get_repository(i)).await,
        "ListRepositories" => run(input, |i| ops.list_repositories(i)).await,
        "DeleteRepository" => run(input, |i| ops.delete_repository(i)).await,
        "CreateTemplateSyncConfig" => run(input, |i| ops.create_template_sync_config(i)).await,
        "GetTemplateSyncConfig" => run(input, |i| ops.get_template_sync_config(i)).await,
        "UpdateTemplateSyncConfig" => run(input, |i| ops.update_template_sync_config(i)).await,
        "DeleteTemplateSyncConfig" => run(input, |i| ops.delete_template_sync_config(i)).await,
        "CreateServiceSyncConfig" => run(input, |i| ops.create_service_sync_config(i)).await,
        "GetServiceSyncConfig" => run(input, |i| ops.get_service_sync_config(i)).await,
        "UpdateServiceSyncConfig" => run(input, |i| ops.update_service_sync_config(i)).await,
        "DeleteServiceSyncConfig" => run(input, |i| ops.delete_service_sync_config(i)).await,
        "GetTemplateSyncStatus" => run(input, |i| ops.get_template_sync_status(i)).await,
        "GetServiceInstanceSyncStatus" => {
            run(input, |i| ops.get_service_instance_sync_status(i)).await
        }
        "GetRepositorySyncStatus" => run(input, |i| ops.get_repository_sync_status(i)).await,
        "ListRepositorySyncDefinitions" => {
            run(input, |i| ops.list_repository_sync_definitions(i)).await
        }
        "GetServiceSyncBlockerSummary" => {
            run(input, |i| ops.get_service_sync_blocker_summary(i)).await
        }
        "UpdateServiceSyncBlocker" => run(input, |i| ops.update_service_sync_blocker(i)).await,
        "TagResource" => run(input, |i| ops.tag_resource(i)).await,
        "UntagResource" => run(input, |i| ops.untag_resource(i)).await,
        "ListTagsForResource" => run(input, |i| ops.list_tags_for_resource(i)).await,
        other => Err(ApiError::invalid(
            Service::Proton,
            format!(
                "gitsync does not support the Proton operation {other} yet. It serves Proton's Git sync operations \
                 (repositories, template and service sync configurations, their sync statuses and blockers), the template \
                 registry, environments, services and service instances (deployed through CloudFormation) and their outputs, and tags."
            ),
        )),
    }
}

struct Ops<'a> {
    api: &'a Api,
    tenant: &'a Tenant,
}

fn err(e: StoreError) -> ApiError {
    ApiError::from_store(Service::Proton, e)
}

fn provider(p: dto::RepositoryProvider) -> model::ProtonProvider {
    model::ProtonProvider::parse(p.as_str()).unwrap_or(model::ProtonProvider::GitHub)
}

fn provider_out(p: model::ProtonProvider) -> dto::RepositoryProvider {
    dto::RepositoryProvider::parse(p.as_str()).unwrap_or_default()
}

fn template_type(t: dto::TemplateType) -> model::TemplateType {
    model::TemplateType::parse(t.as_str()).unwrap_or(model::TemplateType::Environment)
}

fn repository_out(r: model::ProtonRepository) -> dto::Repository {
    dto::Repository {
        arn: r.arn,
        connection_arn: r.connection_arn,
        encryption_key: r.encryption_key,
        name: r.name,
        provider: provider_out(r.provider),
    }
}

fn template_config_out(c: model::TemplateSyncConfig) -> dto::TemplateSyncConfig {
    dto::TemplateSyncConfig {
        branch: c.branch,
        repository_name: c.repository_name,
        repository_provider: provider_out(c.repository_provider),
        subdirectory: c.subdirectory,
        template_name: c.template_name,
        template_type: dto::TemplateType::parse(c.template_type.as_str()).unwrap_or_default(),
    }
}

fn service_config_out(c: model::ServiceSyncConfig) -> dto::ServiceSyncConfig {
    dto::ServiceSyncConfig {
        branch: c.branch,
        file_path: c.file_path,
        repository_name: c.repository_name,
        repository_provider: provider_out(c.repository_provider),
        service_name: c.service_name,
    }
}

/// Proton names repositories `owner/repo` and providers `GITHUB`-style.
fn revision_out(r: model::Revision) -> dto::Revision {
    dto::Revision {
        branch: r.branch,
        directory: r.directory,
        repository_name: if r.owner_id.is_empty() {
            r.repository_name
        } else {
            format!("{}/{}", r.owner_id, r.repository_name)
        },
        repository_provider: dto::RepositoryProvider::parse(&r.provider_type).unwrap_or_default(),
        sha: r.sha,
    }
}

crate::history::history_conversions!(proton);

pub(crate) fn tags_in(tags: Vec<dto::Tag>) -> Vec<model::Tag> {
    tags.into_iter()
        .map(|t| model::Tag {
            key: t.key,
            value: t.value,
        })
        .collect()
}

/// The three status reads share one answer shape.
struct SyncStatus {
    desired_state: Option<dto::Revision>,
    latest_successful_sync: Option<dto::ResourceSyncAttempt>,
    latest_sync: Option<dto::ResourceSyncAttempt>,
}

impl Ops<'_> {
    fn page_size(max_results: Option<i32>) -> usize {
        max_results
            .filter(|n| *n > 0)
            .map(|n| n as usize)
            .unwrap_or(50)
    }

    fn after(&self, listing: &str, token: Option<&str>) -> Result<Option<String>, ApiError> {
        self.api
            .pages
            .resume(self.tenant, listing, token, Service::Proton, "nextToken")
    }

    /// Tags on Proton's own resources only; a Proton call cannot reach a connection's tags.
    fn proton_arn<'s>(&self, arn: &'s str) -> Result<&'s str, ApiError> {
        match Arn::parse(arn) {
            Some(a) if a.service == "proton" => Ok(arn),
            _ => Err(ApiError::not_found(format!(
                "Resource {arn} does not exist"
            ))),
        }
    }

    async fn status(&self, target: SyncTarget) -> Result<SyncStatus, ApiError> {
        let state = self
            .api
            .store
            .resource_sync_state(self.tenant, &target)
            .await
            .map_err(err)?;
        Ok(match state {
            None => SyncStatus {
                desired_state: None,
                latest_successful_sync: None,
                latest_sync: None,
            },
            Some(s) => SyncStatus {
                desired_state: s.desired_state.map(revision_out),
                latest_successful_sync: s.latest_successful_sync.map(resource_attempt_out),
                latest_sync: Some(resource_attempt_out(s.latest_sync)),
            },
        })
    }

    async fn create_repository(
        &self,
        i: dto::CreateRepositoryInput,
    ) -> Result<dto::CreateRepositoryOutput, ApiError> {
        if model::split_owner_repo(&i.name).is_none() {
            return Err(ApiError::invalid(
                Service::Proton,
                format!("name: '{}' must have the form owner/repository", i.name),
            ));
        }
        let r = self
            .api
            .store
            .create_proton_repository(
                self.tenant,
                provider(i.provider),
                &i.name,
                &i.connection_arn,
                i.encryption_key.as_deref(),
                &tags_in(i.tags.unwrap_or_default()),
            )
            .await
            .map_err(err)?;
        Ok(dto::CreateRepositoryOutput {
            repository: repository_out(r),
        })
    }

    async fn get_repository(
        &self,
        i: dto::GetRepositoryInput,
    ) -> Result<dto::GetRepositoryOutput, ApiError> {
        let r = self
            .api
            .store
            .get_proton_repository(self.tenant, provider(i.provider), &i.name)
            .await
            .map_err(err)?;
        Ok(dto::GetRepositoryOutput {
            repository: repository_out(r),
        })
    }

    async fn list_repositories(
        &self,
        i: dto::ListRepositoriesInput,
    ) -> Result<dto::ListRepositoriesOutput, ApiError> {
        let after = self.after("ListRepositories", i.next_token.as_deref())?;
        let page = self
            .api
            .store
            .list_proton_repositories(
                self.tenant,
                after.as_deref(),
                Self::page_size(i.max_results),
            )
            .await
            .map_err(err)?;
        Ok(dto::ListRepositoriesOutput {
            next_token: page
                .next
                .map(|k| self.api.pages.issue(self.tenant, "ListRepositories", &k)),
            repositories: page
                .items
                .into_iter()
                .map(|r| dto::RepositorySummary {
                    arn: r.arn,
                    connection_arn: r.connection_arn,
                    name: r.name,
                    provider: provider_out(r.provider),
                })
                .collect(),
        })
    }

    async fn delete_repository(
        &self,
        i: dto::DeleteRepositoryInput,
    ) -> Result<dto::DeleteRepositoryOutput, ApiError> {
        let r = self
            .api
            .store
            .delete_proton_repository(self.tenant, provider(i.provider), &i.name)
            .await
            .map_err(err)?;
        Ok(dto::DeleteRepositoryOutput {
            repository: Some(repository_out(r)),
        })
    }

    async fn create_template_sync_config(
        &self,
        i: dto::CreateTemplateSyncConfigInput,
    ) -> Result<dto::CreateTemplateSyncConfigOutput, ApiError> {
        let config = model::TemplateSyncConfig {
            template_name: i.template_name,
            template_type: template_type(i.template_type),
            repository_provider: provider(i.repository_provider),
            repository_name: i.repository_name,
            branch: i.branch,
            subdirectory: i.subdirectory,
        };
        let c = self
            .api
            .store
            .create_template_sync_config(self.tenant, &config)
            .await
            .map_err(err)?;
        Ok(dto::CreateTemplateSyncConfigOutput {
            template_sync_config: Some(template_config_out(c)),
        })
    }

    async fn get_template_sync_config(
        &self,
        i: dto::GetTemplateSyncConfigInput,
    ) -> Result<dto::GetTemplateSyncConfigOutput, ApiError> {
        let c = self
            .api
            .store
            .get_template_sync_config(
                self.tenant,
                &i.template_name,
                template_type(i.template_type),
            )
            .await
            .map_err(err)?;
        Ok(dto::GetTemplateSyncConfigOutput {
            template_sync_config: Some(template_config_out(c)),
        })
    }

    async fn update_template_sync_config(
        &self,
        i: dto::UpdateTemplateSyncConfigInput,
    ) -> Result<dto::UpdateTemplateSyncConfigOutput, ApiError> {
        let config = model::TemplateSyncConfig {
            template_name: i.template_name,
            template_type: template_type(i.template_type),
            repository_provider: provider(i.repository_provider),
            repository_name: i.repository_name,
            branch: i.branch,
            subdirectory: i.subdirectory,
        };
        let c = self
            .api
            .store
            .update_template_sync_config(self.tenant, &config)
            .await
            .map_err(err)?;
        Ok(dto::UpdateTemplateSyncConfigOutput {
            template_sync_config: Some(template_config_out(c)),
        })
    }

    async fn delete_template_sync_config(
        &self,
        i: dto::DeleteTemplateSyncConfigInput,
    ) -> Result<dto::DeleteTemplateSyncConfigOutput, ApiError> {
        let c = self
            .api
            .store
            .delete_template_sync_config(
                self.tenant,
                &i.template_name,
                template_type(i.template_type),
            )
            .await
            .map_err(err)?;
        Ok(dto::DeleteTemplateSyncConfigOutput {
            template_sync_config: Some(template_config_out(c)),
        })
    }

    async fn create_service_sync_config(
        &self,
        i: dto::CreateServiceSyncConfigInput,
    ) -> Result<dto::CreateServiceSyncConfigOutput, ApiError> {
        let config = model::ServiceSyncConfig {
            service_name: i.service_name,
            repository_provider: provider(i.repository_provider),
            repository_name: i.repository_name,
            branch: i.branch,
            file_path: i.file_path,
        };
        let c = self
            .api
            .store
            .create_service_sync_config(self.tenant, &config)
            .await
            .map_err(err)?;
        Ok(dto::CreateServiceSyncConfigOutput {
            service_sync_config: Some(service_config_out(c)),
        })
    }

    async fn get_service_sync_config(
        &self,
        i: dto::GetServiceSyncConfigInput,
    ) -> Result<dto::GetServiceSyncConfigOutput, ApiError> {
        let c = self
            .api
            .store
            .get_service_sync_config(self.tenant, &i.service_name)
            .await
            .map_err(err)?;
        Ok(dto::GetServiceSyncConfigOutput {
            service_sync_config: Some(service_config_out(c)),
        })
    }

    async fn update_service_sync_config(
        &self,
        i: dto::UpdateServiceSyncConfigInput,
    ) -> Result<dto::UpdateServiceSyncConfigOutput, ApiError> {
        let config = model::ServiceSyncConfig {
            service_name: i.service_name,
            repository_provider: provider(i.repository_provider),
            repository_name: i.repository_name,
            branch: i.branch,
            file_path: i.file_path,
        };
        let c = self
            .api
            .store
            .update_service_sync_config(self.tenant, &config)
            .await
            .map_err(err)?;
        Ok(dto::UpdateServiceSyncConfigOutput {
            service_sync_config: Some(service_config_out(c)),
        })
    }

    async fn delete_service_sync_config(
        &self,
        i: dto::DeleteServiceSyncConfigInput,
    ) -> Result<dto::DeleteServiceSyncConfigOutput, ApiError> {
        let c = self
            .api
            .store
            .delete_service_sync_config(self.tenant, &i.service_name)
            .await
            .map_err(err)?;
        Ok(dto::DeleteServiceSyncConfigOutput {
            service_sync_config: Some(service_config_out(c)),
        })
    }

    async fn get_template_sync_status(
        &self,
        i: dto::GetTemplateSyncStatusInput,
    ) -> Result<dto::GetTemplateSyncStatusOutput, ApiError> {
        let template_type = template_type(i.template_type);
        // No configuration, no status; a configuration that has not synced yet answers empty.
        self.api
            .store
            .get_template_sync_config(self.tenant, &i.template_name, template_type)
            .await
            .map_err(err)?;
        let s = self
            .status(SyncTarget::TemplateVersion {
                template_name: i.template_name,
                template_type,
                major: i.template_version,
            })
            .await?;
        Ok(dto::GetTemplateSyncStatusOutput {
            desired_state: s.desired_state,
            latest_successful_sync: s.latest_successful_sync,
            latest_sync: s.latest_sync,
        })
    }

    async fn get_service_instance_sync_status(
        &self,
        i: dto::GetServiceInstanceSyncStatusInput,
    ) -> Result<dto::GetServiceInstanceSyncStatusOutput, ApiError> {
        self.api
            .store
            .get_service_sync_config(self.tenant, &i.service_name)
            .await
            .map_err(err)?;
        let s = self
            .status(SyncTarget::ServiceInstance {
                service_name: i.service_name,
                instance_name: i.service_instance_name,
            })
            .await?;
        Ok(dto::GetServiceInstanceSyncStatusOutput {
            desired_state: s.desired_state,
            latest_successful_sync: s.latest_successful_sync,
            latest_sync: s.latest_sync,
        })
    }

    async fn get_repository_sync_status(
        &self,
        i: dto::GetRepositorySyncStatusInput,
    ) -> Result<dto::GetRepositorySyncStatusOutput, ApiError> {
        let provider = provider(i.repository_provider);
        self.api
            .store
            .get_proton_repository(self.tenant, provider, &i.repository_name)
            .await
            .map_err(err)?;
        let sync_type = SyncType::parse(i.sync_type.as_str()).unwrap_or(SyncType::TemplateSync);
        let key = RepositoryKey::Proton {
            provider,
            name: i.repository_name,
        };
        let attempt = self
            .api
            .store
            .latest_repository_sync(self.tenant, sync_type, &key, &i.branch)
            .await
            .map_err(err)?;
        Ok(dto::GetRepositorySyncStatusOutput {
            latest_sync: attempt.map(repository_attempt_out),
        })
    }

    async fn list_repository_sync_definitions(
        &self,
        i: dto::ListRepositorySyncDefinitionsInput,
    ) -> Result<dto::ListRepositorySyncDefinitionsOutput, ApiError> {
        let sync_type = SyncType::parse(i.sync_type.as_str()).unwrap_or(SyncType::TemplateSync);
        let key = RepositoryKey::Proton {
            provider: provider(i.repository_provider),
            name: i.repository_name,
        };
        let definitions = self
            .api
            .store
            .repository_sync_definitions(self.tenant, sync_type, &key)
            .await
            .map_err(err)?;
        Ok(dto::ListRepositorySyncDefinitionsOutput {
            next_token: None,
            sync_definitions: definitions
                .into_iter()
                .map(|d| dto::RepositorySyncDefinition {
                    branch: d.branch,
                    directory: d.directory,
                    parent: d.parent,
                    target: d.target,
                })
                .collect(),
        })
    }

    async fn get_service_sync_blocker_summary(
        &self,
        i: dto::GetServiceSyncBlockerSummaryInput,
    ) -> Result<dto::GetServiceSyncBlockerSummaryOutput, ApiError> {
        // A service-level blocker is filed under the service; an instance-level one under the
        // instance with the service as its parent.
        let (resource, parent) = match &i.service_instance_name {
            Some(instance) => (instance.as_str(), Some(i.service_name.as_str())),
            None => (i.service_name.as_str(), None),
        };
        let blockers = self
            .api
            .store
            .latest_blockers(self.tenant, SyncType::ServiceSync, resource, parent, 50)
            .await
            .map_err(err)?;
        if blockers.is_empty() {
            self.api
                .store
                .get_service_sync_config(self.tenant, &i.service_name)
                .await
                .map_err(err)?;
        }
        Ok(dto::GetServiceSyncBlockerSummaryOutput {
            service_sync_blocker_summary: Some(dto::ServiceSyncBlockerSummary {
                latest_blockers: Some(blockers.into_iter().map(blocker_out).collect()),
                service_instance_name: i.service_instance_name,
                service_name: i.service_name,
            }),
        })
    }

    async fn update_service_sync_blocker(
        &self,
        i: dto::UpdateServiceSyncBlockerInput,
    ) -> Result<dto::UpdateServiceSyncBlockerOutput, ApiError> {
        let (scope, blocker) = self
            .api
            .store
            .resolve_blocker(
                self.tenant,
                SyncType::ServiceSync,
                None,
                &i.id,
                &i.resolved_reason,
            )
            .await
            .map_err(err)?;
        let (service_name, service_instance_name) = match scope.parent_resource_name {
            Some(service) => (service, Some(scope.resource_name)),
            None => (scope.resource_name, None),
        };
        Ok(dto::UpdateServiceSyncBlockerOutput {
            service_instance_name,
            service_name,
            service_sync_blocker: blocker_out(blocker),
        })
    }

    async fn tag_resource(
        &self,
        i: dto::TagResourceInput,
    ) -> Result<dto::TagResourceOutput, ApiError> {
        let arn = self.proton_arn(&i.resource_arn)?;
        self.api
            .store
            .tag_resource(self.tenant, arn, &tags_in(i.tags))
            .await
            .map_err(err)?;
        Ok(dto::TagResourceOutput {})
    }

    async fn untag_resource(
        &self,
        i: dto::UntagResourceInput,
    ) -> Result<dto::UntagResourceOutput, ApiError> {
        let arn = self.proton_arn(&i.resource_arn)?;
        self.api
            .store
            .untag_resource(self.tenant, arn, &i.tag_keys)
            .await
            .map_err(err)?;
        Ok(dto::UntagResourceOutput {})
    }

    async fn list_tags_for_resource(
        &self,
        i: dto::ListTagsForResourceInput,
    ) -> Result<dto::ListTagsForResourceOutput, ApiError> {
        let arn = self.proton_arn(&i.resource_arn)?;
        // A resource has at most 50 tags: one page always holds them all.
        self.after("ListTagsForResource", i.next_token.as_deref())?;
        let tags = self
            .api
            .store
            .list_tags(self.tenant, arn)
            .await
            .map_err(err)?;
        Ok(dto::ListTagsForResourceOutput {
            next_token: None,
            tags: tags
                .into_iter()
                .map(|t| dto::Tag {
                    key: t.key,
                    value: t.value,
                })
                .collect(),
        })
    }
}
