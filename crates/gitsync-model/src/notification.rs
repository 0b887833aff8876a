//! Status-change notifications: what gitsync tells the outside world when a sync's status
//! changes, shaped as the Amazon EventBridge events AWS documents for Git sync (docs/events.md,
//! "Status-change notifications"). The store writes them to its outbox in the transaction of the
//! change they report; deliverers add the envelope's `source` and send them.

use crate::{RepositorySyncStatus, ResourceSyncStatus, Revision, SyncType, Tenant, Timestamp};
use serde_json::{Value, json};

/// The `detail-type` of a resource sync's status change, spelled as in the CloudFormation user
/// guide's example events.
pub const RESOURCE_SYNC_STATUS_CHANGE: &str = "Git Sync Resource Sync Status Change";

/// The `detail-type` of a repository sync's status change, spelled as AWS's user guide does.
pub const REPOSITORY_SYNC_STATUS_CHANGE: &str = "Git Sync Repository Sync Status Change";

/// The `source` of gitsync's events unless the server is told otherwise (EventBridge reserves
/// `aws.*` for AWS: rules written for AWS's events need only their `source` changed).
pub const DEFAULT_SOURCE: &str = "gitsync";

/// One event, without its envelope's `version` and `source` (see [`envelope`]): a fresh id,
/// the tenant's account and region, and what changed.
fn message(
    tenant: &Tenant,
    detail_type: &str,
    time: Timestamp,
    resources: Vec<&str>,
    detail: Value,
) -> Value {
    json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": detail_type,
        "account": tenant.account_id,
        "time": time.utc_string(),
        "region": tenant.region,
        "resources": resources,
        "detail": detail,
    })
}

/// A resource sync's status moved: an attempt started (`IN_PROGRESS`) or ended.
#[derive(Debug, Clone)]
pub struct ResourceSyncStatusChange<'a> {
    pub tenant: &'a Tenant,
    pub sync_type: SyncType,
    /// How the target is named on the wire: the stack name, `template:major`, the instance.
    pub sync_target: &'a str,
    pub revision: &'a Revision,
    pub status: ResourceSyncStatus,
    /// The target's sync status before this change; `None` for its first attempt.
    pub previous: Option<ResourceSyncStatus>,
    pub time: Timestamp,
}

impl ResourceSyncStatusChange<'_> {
    /// The event without its envelope's `version` and `source` (see [`envelope`]).
    pub fn message(&self) -> Value {
        message(
            self.tenant,
            RESOURCE_SYNC_STATUS_CHANGE,
            self.time,
            vec![],
            json!({
                "providerType": self.revision.provider_type,
                "commit": self.revision.sha,
                "repositoryName": self.revision.repository_name,
                "ownerId": self.revision.owner_id,
                "branch": self.revision.branch,
                "syncType": self.sync_type.as_str(),
                "syncTarget": self.sync_target,
                "status": self.status.as_str(),
                "previousSync": self.previous.map(|s| s.as_str()),
            }),
        )
    }
}

/// The repository a repository sync read, as its status-change event names it.
#[derive(Debug, Clone)]
pub struct SyncedRepository {
    /// The CodeConnections connection (of the link, or of the Proton repository).
    pub connection_arn: String,
    pub provider_type: String,
    pub owner_id: String,
    pub repository_name: String,
    /// The repository link's ARN, or the Proton repository's.
    pub repository_arn: String,
    /// For a repository link (stack syncs); Proton repositories have none.
    pub repository_link_id: Option<String>,
}

/// A repository sync's status moved: a branch check was queued, started or ended.
#[derive(Debug, Clone)]
pub struct RepositorySyncStatusChange<'a> {
    pub tenant: &'a Tenant,
    pub sync_type: SyncType,
    pub repository: &'a SyncedRepository,
    pub branch: &'a str,
    /// The commit the sync is about, once it is known.
    pub commit: Option<&'a str>,
    pub status: RepositorySyncStatus,
    /// The branch's repository sync status before this change; `None` for its first.
    pub previous: Option<RepositorySyncStatus>,
    pub time: Timestamp,
}

impl RepositorySyncStatusChange<'_> {
    /// The event without its envelope's `version` and `source` (see [`envelope`]).
    pub fn message(&self) -> Value {
        let r = self.repository;
        message(
            self.tenant,
            REPOSITORY_SYNC_STATUS_CHANGE,
            self.time,
            vec![],
            json!({
                "connectionArn": r.connection_arn,
                "providerType": r.provider_type,
                "repositoryName": r.repository_name,
                "repositoryArn": r.repository_arn,
                "repositoryLinkId": r.repository_link_id,
                "ownerId": r.owner_id,
                "commit": self.commit,
                "branch": self.branch,
                "syncType": self.sync_type.as_str(),
                "status": self.status.as_str(),
                "previousSync": self.previous.map(|s| s.as_str()),
            }),
        )
    }
}

/// What kind of Proton resource changed status: each has the `detail-type` AWS Proton used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtonResourceKind {
    Environment,
    ServiceInstance,
    ServicePipeline,
    EnvironmentTemplateVersion,
    ServiceTemplateVersion,
}

impl From<&crate::DeploymentTarget> for ProtonResourceKind {
    fn from(target: &crate::DeploymentTarget) -> Self {
        match target {
            crate::DeploymentTarget::Environment { .. } => ProtonResourceKind::Environment,
            crate::DeploymentTarget::ServiceInstance { .. } => ProtonResourceKind::ServiceInstance,
            crate::DeploymentTarget::ServicePipeline { .. } => ProtonResourceKind::ServicePipeline,
        }
    }
}

impl ProtonResourceKind {
    pub fn detail_type(self) -> &'static str {
        match self {
            ProtonResourceKind::Environment => "AWS Proton Environment Status Change",
            ProtonResourceKind::ServiceInstance => "AWS Proton Service Instance Status Change",
            ProtonResourceKind::ServicePipeline => "AWS Proton Service Pipeline Status Change",
            ProtonResourceKind::EnvironmentTemplateVersion => {
                "AWS Proton Environment Template Version Status Change"
            }
            ProtonResourceKind::ServiceTemplateVersion => {
                "AWS Proton Service Template Version Status Change"
            }
        }
    }
}

/// A Proton resource's status moved: a deployment of an environment, instance or pipeline
/// started or ended (`deploymentStatus`), or a template version was registered or published.
#[derive(Debug, Clone)]
pub struct ProtonStatusChange<'a> {
    pub tenant: &'a Tenant,
    pub kind: ProtonResourceKind,
    pub arn: &'a str,
    pub status: &'a str,
    /// The status before; `None` for a resource's first.
    pub previous: Option<&'a str>,
    pub time: Timestamp,
}

impl ProtonStatusChange<'_> {
    /// The event as AWS Proton shaped it (the resource's ARN in `resources`, `status` and
    /// `previousStatus` in `detail`), without its envelope's `version` and `source`.
    pub fn message(&self) -> Value {
        message(
            self.tenant,
            self.kind.detail_type(),
            self.time,
            vec![self.arn],
            json!({
                "status": self.status,
                "previousStatus": self.previous,
            }),
        )
    }
}

/// The whole event as delivered: a stored message with EventBridge's `version` and the
/// server's `source`.
pub fn envelope(message: &Value, source: &str) -> Value {
    let mut event = json!({ "version": "0", "source": source });
    if let (Some(event), Some(fields)) = (event.as_object_mut(), message.as_object()) {
        for (k, v) in fields {
            event.insert(k.clone(), v.clone());
        }
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_change_has_the_fields_aws_documents() {
        let tenant = Tenant::new("111122223333", "us-east-1");
        let revision = Revision {
            branch: "main".into(),
            directory: "deploy.yaml".into(),
            owner_id: "acme".into(),
            repository_name: "infra".into(),
            provider_type: "GitHub".into(),
            sha: "abc123".into(),
        };
        let change = ResourceSyncStatusChange {
            tenant: &tenant,
            sync_type: SyncType::CfnStackSync,
            sync_target: "orders",
            revision: &revision,
            status: ResourceSyncStatus::Succeeded,
            previous: Some(ResourceSyncStatus::InProgress),
            time: Timestamp(1_703_270_628_000),
        };
        let event = envelope(&change.message(), "gitsync");
        assert_eq!(event["version"], "0");
        assert_eq!(event["source"], "gitsync");
        assert_eq!(event["detail-type"], "Git Sync Resource Sync Status Change");
        assert_eq!(event["account"], "111122223333");
        assert_eq!(event["region"], "us-east-1");
        assert_eq!(event["time"], "2023-12-22T18:43:48Z");
        let detail = &event["detail"];
        for (field, want) in [
            ("providerType", "GitHub"),
            ("commit", "abc123"),
            ("repositoryName", "infra"),
            ("branch", "main"),
            ("syncType", "CFN_STACK_SYNC"),
            ("syncTarget", "orders"),
            ("status", "SUCCEEDED"),
            ("previousSync", "IN_PROGRESS"),
        ] {
            assert_eq!(detail[field], want, "{field}");
        }
        assert_eq!(event["id"].as_str().map(str::len), Some(36));
    }

    #[test]
    fn repository_and_proton_changes_have_the_fields_aws_documents() {
        let tenant = Tenant::new("111122223333", "us-east-1");
        let repository = SyncedRepository {
            connection_arn: "arn:aws:codeconnections:us-east-1:111122223333:connection/c".into(),
            provider_type: "GitHub".into(),
            owner_id: "acme".into(),
            repository_name: "infra".into(),
            repository_arn: "arn:aws:codeconnections:us-east-1:111122223333:repository-link/l"
                .into(),
            repository_link_id: Some("l".into()),
        };
        let change = RepositorySyncStatusChange {
            tenant: &tenant,
            sync_type: SyncType::CfnStackSync,
            repository: &repository,
            branch: "main",
            commit: None,
            status: RepositorySyncStatus::InProgress,
            previous: Some(RepositorySyncStatus::Initiated),
            time: Timestamp(0),
        };
        let event = envelope(&change.message(), "gitsync");
        assert_eq!(
            event["detail-type"],
            "Git Sync Repository Sync Status Change"
        );
        let detail = &event["detail"];
        for (field, want) in [
            (
                "connectionArn",
                "arn:aws:codeconnections:us-east-1:111122223333:connection/c",
            ),
            ("providerType", "GitHub"),
            ("repositoryName", "infra"),
            ("repositoryLinkId", "l"),
            ("ownerId", "acme"),
            ("branch", "main"),
            ("syncType", "CFN_STACK_SYNC"),
            ("status", "IN_PROGRESS"),
            ("previousSync", "INITIATED"),
        ] {
            assert_eq!(detail[field], want, "{field}");
        }
        assert!(detail["commit"].is_null());

        let proton = ProtonStatusChange {
            tenant: &tenant,
            kind: ProtonResourceKind::from(&crate::DeploymentTarget::ServiceInstance {
                service: "api".into(),
                instance: "dev".into(),
            }),
            arn: "arn:aws:proton:us-east-1:111122223333:service/api/service-instance/dev",
            status: "SUCCEEDED",
            previous: Some("IN_PROGRESS"),
            time: Timestamp(0),
        };
        let event = envelope(&proton.message(), "gitsync");
        assert_eq!(
            event["detail-type"],
            "AWS Proton Service Instance Status Change"
        );
        assert_eq!(
            event["resources"][0],
            "arn:aws:proton:us-east-1:111122223333:service/api/service-instance/dev"
        );
        assert_eq!(event["detail"]["status"], "SUCCEEDED");
        assert_eq!(event["detail"]["previousStatus"], "IN_PROGRESS");
    }
}
