//! The CodeConnections and CodeStar Connections operations. Both APIs share one store: the same
//! connections, hosts, repository links and sync configurations are visible through either.

use crate::Api;
use crate::dispatch::run;
use crate::dto::connections as dto;
use crate::error::ApiError;
use crate::service::Service;
use gitsync_model as model;
use gitsync_model::{SyncTarget, SyncType, Tenant};
use gitsync_store::RepositoryKey;
use serde_json::Value;

/// Runs one operation of `service` (CodeConnections or CodeStar Connections).
pub(crate) async fn call(
    api: &Api,
    service: Service,
    tenant: &Tenant,
    operation: &str,
    input: Value,
) -> Result<Value, ApiError> {
    let ops = Ops {
        api,
        service,
        tenant,
    };
    let mut output = match operation {
        "CreateConnection" => run(input, |i| ops.create_connection(i)).await,
        "GetConnection" => run(input, |i| ops.get_connection(i)).await,
        "ListConnections" => run(input, |i| ops.list_connections(i)).await,
        "DeleteConnection" => run(input, |i| ops.delete_connection(i)).await,
        "CreateHost" => run(input, |i| ops.create_host(i)).await,
        "GetHost" => run(input, |i| ops.get_host(i)).await,
        "ListHosts" => run(input, |i| ops.list_hosts(i)).await,
        "UpdateHost" => run(input, |i| ops.update_host(i)).await,
        "DeleteHost" => run(input, |i| ops.delete_host(i)).await,
        "CreateRepositoryLink" => run(input, |i| ops.create_repository_link(i)).await,
        "GetRepositoryLink" => run(input, |i| ops.get_repository_link(i)).await,
        "ListRepositoryLinks" => run(input, |i| ops.list_repository_links(i)).await,
        "UpdateRepositoryLink" => run(input, |i| ops.update_repository_link(i)).await,
        "DeleteRepositoryLink" => run(input, |i| ops.delete_repository_link(i)).await,
        "CreateSyncConfiguration" => run(input, |i| ops.create_sync_configuration(i)).await,
        "GetSyncConfiguration" => run(input, |i| ops.get_sync_configuration(i)).await,
        "ListSyncConfigurations" => run(input, |i| ops.list_sync_configurations(i)).await,
        "UpdateSyncConfiguration" => run(input, |i| ops.update_sync_configuration(i)).await,
        "DeleteSyncConfiguration" => run(input, |i| ops.delete_sync_configuration(i)).await,
        "GetRepositorySyncStatus" => run(input, |i| ops.get_repository_sync_status(i)).await,
        "GetResourceSyncStatus" => run(input, |i| ops.get_resource_sync_status(i)).await,
        "ListRepositorySyncDefinitions" => {
            run(input, |i| ops.list_repository_sync_definitions(i)).await
        }
        "GetSyncBlockerSummary" => run(input, |i| ops.get_sync_blocker_summary(i)).await,
        "UpdateSyncBlocker" => run(input, |i| ops.update_sync_blocker(i)).await,
        "TagResource" => run(input, |i| ops.tag_resource(i)).await,
        "UntagResource" => run(input, |i| ops.untag_resource(i)).await,
        "ListTagsForResource" => run(input, |i| ops.list_tags_for_resource(i)).await,
        other => Err(ApiError::unknown_operation(format!(
            "{other} is not an operation of {}",
            service.signing_name()
        ))),
    }?;
    if service == Service::CodestarConnections {
        // The legacy model has no PullRequestComment; keep its answers to its own shapes.
        strip_member(&mut output, "PullRequestComment");
    }
    Ok(output)
}

fn strip_member(value: &mut Value, name: &str) {
    match value {
        Value::Object(map) => {
            map.remove(name);
            map.values_mut().for_each(|v| strip_member(v, name));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| strip_member(v, name)),
        _ => {}
    }
}

struct Ops<'a> {
    api: &'a Api,
    service: Service,
    tenant: &'a Tenant,
}

/// Listing sizes: `MaxResults` absent or 0 means the default.
fn page_size(max_results: Option<i32>) -> usize {
    match max_results {
        Some(n) if n > 0 => n as usize,
        _ => 50,
    }
}

fn provider(p: model::ProviderType) -> dto::ProviderType {
    dto::ProviderType::parse(p.as_str()).unwrap_or_default()
}

fn model_provider(p: dto::ProviderType) -> model::ProviderType {
    model::ProviderType::parse(p.as_str()).unwrap_or(model::ProviderType::GitHub)
}

fn tags_in(tags: Option<Vec<dto::Tag>>) -> Vec<model::Tag> {
    tags.unwrap_or_default()
        .into_iter()
        .map(|t| model::Tag {
            key: t.key,
            value: t.value,
        })
        .collect()
}

fn tags_out(tags: Vec<model::Tag>) -> Vec<dto::Tag> {
    tags.into_iter()
        .map(|t| dto::Tag {
            key: t.key,
            value: t.value,
        })
        .collect()
}

fn toggle<T: Copy>(value: Option<bool>, enabled: T, disabled: T) -> Option<T> {
    value.map(|v| if v { enabled } else { disabled })
}

fn connection_out(c: model::Connection) -> dto::Connection {
    dto::Connection {
        connection_arn: Some(c.arn),
        connection_name: Some(c.name),
        connection_status: dto::ConnectionStatus::parse(c.status.as_str()),
        host_arn: c.host_arn,
        owner_account_id: Some(c.owner_account_id),
        provider_type: Some(provider(c.provider_type)),
    }
}

fn vpc_in(v: dto::VpcConfiguration) -> model::VpcConfiguration {
    model::VpcConfiguration {
        vpc_id: v.vpc_id,
        subnet_ids: v.subnet_ids,
        security_group_ids: v.security_group_ids,
        tls_certificate: v.tls_certificate,
    }
}

fn vpc_out(v: model::VpcConfiguration) -> dto::VpcConfiguration {
    dto::VpcConfiguration {
        vpc_id: v.vpc_id,
        subnet_ids: v.subnet_ids,
        security_group_ids: v.security_group_ids,
        tls_certificate: v.tls_certificate,
    }
}

fn link_out(l: model::RepositoryLink) -> dto::RepositoryLinkInfo {
    dto::RepositoryLinkInfo {
        connection_arn: l.connection_arn,
        encryption_key_arn: l.encryption_key_arn,
        owner_id: l.owner_id,
        provider_type: provider(l.provider_type),
        repository_link_arn: l.arn,
        repository_link_id: l.id,
        repository_name: l.repository_name,
    }
}

fn sync_config_out(c: model::SyncConfiguration) -> dto::SyncConfiguration {
    dto::SyncConfiguration {
        branch: c.branch,
        config_file: Some(c.config_file),
        owner_id: c.owner_id,
        provider_type: provider(c.provider_type),
        publish_deployment_status: toggle(
            c.publish_deployment_status,
            dto::PublishDeploymentStatus::Enabled,
            dto::PublishDeploymentStatus::Disabled,
        ),
        pull_request_comment: toggle(
            c.pull_request_comment,
            dto::PullRequestComment::Enabled,
            dto::PullRequestComment::Disabled,
        ),
        repository_link_id: c.repository_link_id,
        repository_name: c.repository_name,
        resource_name: c.resource_name,
        role_arn: c.role_arn,
        sync_type: dto::SyncConfigurationType::CfnStackSync,
        trigger_resource_update_on: c
            .trigger_resource_update_on
            .and_then(|t| dto::TriggerResourceUpdateOn::parse(t.as_str())),
    }
}

fn revision_out(r: model::Revision) -> dto::Revision {
    dto::Revision {
        branch: r.branch,
        directory: r.directory,
        owner_id: r.owner_id,
        provider_type: dto::ProviderType::parse(&r.provider_type).unwrap_or_default(),
        repository_name: r.repository_name,
        sha: r.sha,
    }
}

crate::history::history_conversions!(connections);

impl Ops<'_> {
    /// A host endpoint must be one gitsync may reach (security.md: no server-local files unless
    /// the operator allows them, no credentials in URLs).
    fn check_endpoint(&self, endpoint: &str) -> Result<(), ApiError> {
        gitsync_model::security::check_host_endpoint(endpoint, self.api.allow_file_remotes)
            .map_err(ApiError::validation)
    }

    /// A sync role must be in an AWS account the operator allows this tenant.
    async fn check_role(&self, role_arn: &str) -> Result<(), ApiError> {
        let policy = self
            .api
            .store
            .account_policy(&self.tenant.account_id)
            .await
            .map_err(self.store_err())?;
        policy.check_role(role_arn).map_err(ApiError::access_denied)
    }

    fn store_err(&self) -> impl Fn(gitsync_store::StoreError) -> ApiError + '_ {
        move |e| ApiError::from_store(self.service, e)
    }

    /// Where a listing continues: the sort key inside a valid token for this tenant and listing.
    fn after(&self, listing: &str, token: Option<&str>) -> Result<Option<String>, ApiError> {
        self.api
            .pages
            .resume(self.tenant, listing, token, self.service, "NextToken")
    }

    fn next_token(&self, listing: &str, next: Option<String>) -> Option<String> {
        next.map(|k| self.api.pages.issue(self.tenant, listing, &k))
    }

    async fn create_connection(
        &self,
        i: dto::CreateConnectionInput,
    ) -> Result<dto::CreateConnectionOutput, ApiError> {
        let tags = tags_in(i.tags);
        let c = self
            .api
            .store
            .create_connection(
                self.tenant,
                self.service.arn_service(),
                &i.connection_name,
                i.provider_type.map(model_provider),
                i.host_arn.as_deref(),
                &tags,
            )
            .await
            .map_err(self.store_err())?;
        Ok(dto::CreateConnectionOutput {
            connection_arn: c.arn,
            tags: (!tags.is_empty()).then(|| tags_out(tags)),
        })
    }

    async fn get_connection(
        &self,
        i: dto::GetConnectionInput,
    ) -> Result<dto::GetConnectionOutput, ApiError> {
        let c = self
            .api
            .store
            .get_connection(self.tenant, &i.connection_arn)
            .await
            .map_err(self.store_err())?;
        Ok(dto::GetConnectionOutput {
            connection: Some(connection_out(c)),
        })
    }

    async fn list_connections(
        &self,
        i: dto::ListConnectionsInput,
    ) -> Result<dto::ListConnectionsOutput, ApiError> {
        let after = self.after("ListConnections", i.next_token.as_deref())?;
        let page = self
            .api
            .store
            .list_connections(
                self.tenant,
                i.provider_type_filter.map(model_provider),
                i.host_arn_filter.as_deref(),
                after.as_deref(),
                page_size(i.max_results),
            )
            .await
            .map_err(self.store_err())?;
        Ok(dto::ListConnectionsOutput {
            connections: Some(page.items.into_iter().map(connection_out).collect()),
            next_token: self.next_token("ListConnections", page.next),
        })
    }

    async fn delete_connection(
        &self,
        i: dto::DeleteConnectionInput,
    ) -> Result<dto::DeleteConnectionOutput, ApiError> {
        self.api
            .store
            .delete_connection(self.tenant, &i.connection_arn)
            .await
            .map_err(self.store_err())?;
        Ok(dto::DeleteConnectionOutput {})
    }

    async fn create_host(
        &self,
        i: dto::CreateHostInput,
    ) -> Result<dto::CreateHostOutput, ApiError> {
        gitsync_model::security::check_host_name(&i.name).map_err(ApiError::validation)?;
        self.check_endpoint(&i.provider_endpoint)?;
        let tags = tags_in(i.tags);
        let vpc = i.vpc_configuration.map(vpc_in);
        let host = self
            .api
            .store
            .create_host(
                self.tenant,
                self.service.arn_service(),
                &model::HostSpec {
                    name: i.name,
                    provider_type: model_provider(i.provider_type),
                    provider_endpoint: i.provider_endpoint,
                    vpc_configuration: vpc,
                },
                &tags,
            )
            .await
            .map_err(self.store_err())?;
        Ok(dto::CreateHostOutput {
            host_arn: Some(host.arn),
            tags: (!tags.is_empty()).then(|| tags_out(tags)),
        })
    }

    async fn get_host(&self, i: dto::GetHostInput) -> Result<dto::GetHostOutput, ApiError> {
        let h = self
            .api
            .store
            .get_host(self.tenant, &i.host_arn)
            .await
            .map_err(self.store_err())?;
        Ok(dto::GetHostOutput {
            name: Some(h.name),
            provider_endpoint: Some(h.provider_endpoint),
            provider_type: Some(provider(h.provider_type)),
            status: Some(h.status),
            vpc_configuration: h.vpc_configuration.map(vpc_out),
        })
    }

    async fn list_hosts(&self, i: dto::ListHostsInput) -> Result<dto::ListHostsOutput, ApiError> {
        let after = self.after("ListHosts", i.next_token.as_deref())?;
        let page = self
            .api
            .store
            .list_hosts(self.tenant, after.as_deref(), page_size(i.max_results))
            .await
            .map_err(self.store_err())?;
        Ok(dto::ListHostsOutput {
            hosts: Some(
                page.items
                    .into_iter()
                    .map(|h| dto::Host {
                        host_arn: Some(h.arn),
                        name: Some(h.name),
                        provider_endpoint: Some(h.provider_endpoint),
                        provider_type: Some(provider(h.provider_type)),
                        status: Some(h.status),
                        status_message: None,
                        vpc_configuration: h.vpc_configuration.map(vpc_out),
                    })
                    .collect(),
            ),
            next_token: self.next_token("ListHosts", page.next),
        })
    }

    async fn update_host(
        &self,
        i: dto::UpdateHostInput,
    ) -> Result<dto::UpdateHostOutput, ApiError> {
        if let Some(endpoint) = &i.provider_endpoint {
            self.check_endpoint(endpoint)?;
        }
        let vpc = i.vpc_configuration.map(vpc_in);
        self.api
            .store
            .update_host(
                self.tenant,
                &i.host_arn,
                i.provider_endpoint.as_deref(),
                vpc.as_ref(),
            )
            .await
            .map_err(self.store_err())?;
        Ok(dto::UpdateHostOutput {})
    }

    async fn delete_host(
        &self,
        i: dto::DeleteHostInput,
    ) -> Result<dto::DeleteHostOutput, ApiError> {
        self.api
            .store
            .delete_host(self.tenant, &i.host_arn)
            .await
            .map_err(|e| match e {
                gitsync_store::StoreError::Conflict(m) => ApiError::new(
                    http::StatusCode::BAD_REQUEST,
                    "ResourceUnavailableException",
                    m,
                ),
                other => ApiError::from_store(self.service, other),
            })?;
        Ok(dto::DeleteHostOutput {})
    }

    async fn create_repository_link(
        &self,
        i: dto::CreateRepositoryLinkInput,
    ) -> Result<dto::CreateRepositoryLinkOutput, ApiError> {
        let tags = tags_in(i.tags);
        let link = self
            .api
            .store
            .create_repository_link(
                self.tenant,
                self.service.arn_service(),
                &model::RepositoryLinkSpec {
                    connection_arn: i.connection_arn,
                    owner_id: i.owner_id,
                    repository_name: i.repository_name,
                    encryption_key_arn: i.encryption_key_arn,
                },
                &tags,
            )
            .await
            .map_err(self.store_err())?;
        Ok(dto::CreateRepositoryLinkOutput {
            repository_link_info: link_out(link),
        })
    }

    async fn get_repository_link(
        &self,
        i: dto::GetRepositoryLinkInput,
    ) -> Result<dto::GetRepositoryLinkOutput, ApiError> {
        let link = self
            .api
            .store
            .get_repository_link(self.tenant, &i.repository_link_id)
            .await
            .map_err(self.store_err())?;
        Ok(dto::GetRepositoryLinkOutput {
            repository_link_info: link_out(link),
        })
    }

    async fn list_repository_links(
        &self,
        i: dto::ListRepositoryLinksInput,
    ) -> Result<dto::ListRepositoryLinksOutput, ApiError> {
        let after = self.after("ListRepositoryLinks", i.next_token.as_deref())?;
        let page = self
            .api
            .store
            .list_repository_links(self.tenant, after.as_deref(), page_size(i.max_results))
            .await
            .map_err(self.store_err())?;
        Ok(dto::ListRepositoryLinksOutput {
            repository_links: page.items.into_iter().map(link_out).collect(),
            next_token: self.next_token("ListRepositoryLinks", page.next),
        })
    }

    async fn update_repository_link(
        &self,
        i: dto::UpdateRepositoryLinkInput,
    ) -> Result<dto::UpdateRepositoryLinkOutput, ApiError> {
        let link = self
            .api
            .store
            .update_repository_link(
                self.tenant,
                &i.repository_link_id,
                i.connection_arn.as_deref(),
                i.encryption_key_arn.as_deref(),
            )
            .await
            .map_err(self.store_err())?;
        Ok(dto::UpdateRepositoryLinkOutput {
            repository_link_info: link_out(link),
        })
    }

    async fn delete_repository_link(
        &self,
        i: dto::DeleteRepositoryLinkInput,
    ) -> Result<dto::DeleteRepositoryLinkOutput, ApiError> {
        self.api
            .store
            .delete_repository_link(self.tenant, &i.repository_link_id)
            .await
            .map_err(self.store_err())?;
        Ok(dto::DeleteRepositoryLinkOutput {})
    }

    async fn create_sync_configuration(
        &self,
        i: dto::CreateSyncConfigurationInput,
    ) -> Result<dto::CreateSyncConfigurationOutput, ApiError> {
        self.check_role(&i.role_arn).await?;
        let spec = model::SyncConfigurationSpec {
            resource_name: i.resource_name,
            branch: i.branch,
            config_file: i.config_file,
            repository_link_id: i.repository_link_id,
            role_arn: i.role_arn,
            publish_deployment_status: i
                .publish_deployment_status
                .map(|p| p == dto::PublishDeploymentStatus::Enabled),
            trigger_resource_update_on: i
                .trigger_resource_update_on
                .and_then(|t| model::TriggerResourceUpdateOn::parse(t.as_str())),
            pull_request_comment: i
                .pull_request_comment
                .map(|p| p == dto::PullRequestComment::Enabled),
        };
        let config = self
            .api
            .store
            .create_sync_configuration(self.tenant, &spec)
            .await
            .map_err(self.store_err())?;
        Ok(dto::CreateSyncConfigurationOutput {
            sync_configuration: sync_config_out(config),
        })
    }

    async fn get_sync_configuration(
        &self,
        i: dto::GetSyncConfigurationInput,
    ) -> Result<dto::GetSyncConfigurationOutput, ApiError> {
        let config = self
            .api
            .store
            .get_sync_configuration(self.tenant, &i.resource_name)
            .await
            .map_err(self.store_err())?;
        Ok(dto::GetSyncConfigurationOutput {
            sync_configuration: sync_config_out(config),
        })
    }

    async fn list_sync_configurations(
        &self,
        i: dto::ListSyncConfigurationsInput,
    ) -> Result<dto::ListSyncConfigurationsOutput, ApiError> {
        let listing = format!("ListSyncConfigurations/{}", i.repository_link_id);
        let after = self.after(&listing, i.next_token.as_deref())?;
        let page = self
            .api
            .store
            .list_sync_configurations(
                self.tenant,
                &i.repository_link_id,
                after.as_deref(),
                page_size(i.max_results),
            )
            .await
            .map_err(self.store_err())?;
        Ok(dto::ListSyncConfigurationsOutput {
            sync_configurations: page.items.into_iter().map(sync_config_out).collect(),
            next_token: self.next_token(&listing, page.next),
        })
    }

    async fn update_sync_configuration(
        &self,
        i: dto::UpdateSyncConfigurationInput,
    ) -> Result<dto::UpdateSyncConfigurationOutput, ApiError> {
        if let Some(role_arn) = &i.role_arn {
            self.check_role(role_arn).await?;
        }
        let patch = model::SyncConfigurationPatch {
            branch: i.branch,
            config_file: i.config_file,
            repository_link_id: i.repository_link_id,
            role_arn: i.role_arn,
            publish_deployment_status: i
                .publish_deployment_status
                .map(|p| p == dto::PublishDeploymentStatus::Enabled),
            trigger_resource_update_on: i
                .trigger_resource_update_on
                .and_then(|t| model::TriggerResourceUpdateOn::parse(t.as_str())),
            pull_request_comment: i
                .pull_request_comment
                .map(|p| p == dto::PullRequestComment::Enabled),
        };
        let config = self
            .api
            .store
            .update_sync_configuration(self.tenant, &i.resource_name, &patch)
            .await
            .map_err(self.store_err())?;
        Ok(dto::UpdateSyncConfigurationOutput {
            sync_configuration: sync_config_out(config),
        })
    }

    async fn delete_sync_configuration(
        &self,
        i: dto::DeleteSyncConfigurationInput,
    ) -> Result<dto::DeleteSyncConfigurationOutput, ApiError> {
        self.api
            .store
            .delete_sync_configuration(self.tenant, &i.resource_name)
            .await
            .map_err(self.store_err())?;
        Ok(dto::DeleteSyncConfigurationOutput {})
    }

    async fn get_repository_sync_status(
        &self,
        i: dto::GetRepositorySyncStatusInput,
    ) -> Result<dto::GetRepositorySyncStatusOutput, ApiError> {
        self.api
            .store
            .get_repository_link(self.tenant, &i.repository_link_id)
            .await
            .map_err(self.store_err())?;
        let attempt = self
            .api
            .store
            .latest_repository_sync(
                self.tenant,
                SyncType::CfnStackSync,
                &RepositoryKey::Link(i.repository_link_id.clone()),
                &i.branch,
            )
            .await
            .map_err(self.store_err())?
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "Could not find a sync status for repository link:{} on branch {}",
                    i.repository_link_id, i.branch
                ))
            })?;
        Ok(dto::GetRepositorySyncStatusOutput {
            latest_sync: repository_attempt_out(attempt),
        })
    }

    async fn get_resource_sync_status(
        &self,
        i: dto::GetResourceSyncStatusInput,
    ) -> Result<dto::GetResourceSyncStatusOutput, ApiError> {
        let target = SyncTarget::CfnStack {
            stack_name: i.resource_name.clone(),
        };
        let state = self
            .api
            .store
            .resource_sync_state(self.tenant, &target)
            .await
            .map_err(self.store_err())?
            .ok_or_else(|| {
                ApiError::not_found(format!("No sync status exists for resource {} of type CFN_STACK_SYNC: nothing has synced it yet", i.resource_name))
            })?;
        Ok(dto::GetResourceSyncStatusOutput {
            desired_state: state.desired_state.map(revision_out),
            latest_successful_sync: state.latest_successful_sync.map(resource_attempt_out),
            latest_sync: resource_attempt_out(state.latest_sync),
        })
    }

    async fn list_repository_sync_definitions(
        &self,
        i: dto::ListRepositorySyncDefinitionsInput,
    ) -> Result<dto::ListRepositorySyncDefinitionsOutput, ApiError> {
        self.api
            .store
            .get_repository_link(self.tenant, &i.repository_link_id)
            .await
            .map_err(self.store_err())?;
        let definitions = self
            .api
            .store
            .repository_sync_definitions(
                self.tenant,
                SyncType::CfnStackSync,
                &RepositoryKey::Link(i.repository_link_id),
            )
            .await
            .map_err(self.store_err())?;
        Ok(dto::ListRepositorySyncDefinitionsOutput {
            next_token: None,
            repository_sync_definitions: definitions
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

    async fn get_sync_blocker_summary(
        &self,
        i: dto::GetSyncBlockerSummaryInput,
    ) -> Result<dto::GetSyncBlockerSummaryOutput, ApiError> {
        let blockers = self
            .api
            .store
            .latest_blockers(
                self.tenant,
                SyncType::CfnStackSync,
                &i.resource_name,
                None,
                50,
            )
            .await
            .map_err(self.store_err())?;
        if blockers.is_empty() {
            // Without blockers there is still a summary, provided the stack is synced at all.
            self.api
                .store
                .get_sync_configuration(self.tenant, &i.resource_name)
                .await
                .map_err(self.store_err())?;
        }
        Ok(dto::GetSyncBlockerSummaryOutput {
            sync_blocker_summary: dto::SyncBlockerSummary {
                latest_blockers: Some(blockers.into_iter().map(blocker_out).collect()),
                parent_resource_name: None,
                resource_name: i.resource_name,
            },
        })
    }

    async fn update_sync_blocker(
        &self,
        i: dto::UpdateSyncBlockerInput,
    ) -> Result<dto::UpdateSyncBlockerOutput, ApiError> {
        let (scope, blocker) = self
            .api
            .store
            .resolve_blocker(
                self.tenant,
                SyncType::CfnStackSync,
                Some(&i.resource_name),
                &i.id,
                &i.resolved_reason,
            )
            .await
            .map_err(|e| match e {
                gitsync_store::StoreError::NotFound(m) => ApiError::new(
                    http::StatusCode::BAD_REQUEST,
                    "SyncBlockerDoesNotExistException",
                    m,
                ),
                gitsync_store::StoreError::Conflict(m) => ApiError::new(
                    http::StatusCode::BAD_REQUEST,
                    "RetryLatestCommitFailedException",
                    m,
                ),
                other => ApiError::from_store(self.service, other),
            })?;
        Ok(dto::UpdateSyncBlockerOutput {
            parent_resource_name: scope.parent_resource_name,
            resource_name: scope.resource_name,
            sync_blocker: blocker_out(blocker),
        })
    }

    async fn tag_resource(
        &self,
        i: dto::TagResourceInput,
    ) -> Result<dto::TagResourceOutput, ApiError> {
        self.api
            .store
            .tag_resource(self.tenant, &i.resource_arn, &tags_in(Some(i.tags)))
            .await
            .map_err(self.store_err())?;
        Ok(dto::TagResourceOutput {})
    }

    async fn untag_resource(
        &self,
        i: dto::UntagResourceInput,
    ) -> Result<dto::UntagResourceOutput, ApiError> {
        self.api
            .store
            .untag_resource(self.tenant, &i.resource_arn, &i.tag_keys)
            .await
            .map_err(self.store_err())?;
        Ok(dto::UntagResourceOutput {})
    }

    async fn list_tags_for_resource(
        &self,
        i: dto::ListTagsForResourceInput,
    ) -> Result<dto::ListTagsForResourceOutput, ApiError> {
        let tags = self
            .api
            .store
            .list_tags(self.tenant, &i.resource_arn)
            .await
            .map_err(self.store_err())?;
        Ok(dto::ListTagsForResourceOutput {
            tags: Some(tags_out(tags)),
        })
    }
}
