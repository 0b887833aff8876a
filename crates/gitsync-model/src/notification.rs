//! Status-change notifications: what gitsync tells the outside world when a sync's status
//! changes, shaped as the Amazon EventBridge events AWS documents for Git sync (docs/events.md,
//! "Status-change notifications"). The store writes them to its outbox in the transaction of the
//! change they report; deliverers add the envelope's `source` and send them.

use crate::{ResourceSyncStatus, Revision, SyncType, Tenant, Timestamp};
use serde_json::{Value, json};

/// The `detail-type` of a resource sync's status change, spelled as in the CloudFormation user
/// guide's example events.
pub const RESOURCE_SYNC_STATUS_CHANGE: &str = "Git Sync Resource Sync Status Change";

/// The `source` of gitsync's events unless the server is told otherwise (EventBridge reserves
/// `aws.*` for AWS: rules written for AWS's events need only their `source` changed).
pub const DEFAULT_SOURCE: &str = "gitsync";

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
        json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "detail-type": RESOURCE_SYNC_STATUS_CHANGE,
            "account": self.tenant.account_id,
            "time": self.time.utc_string(),
            "region": self.tenant.region,
            "resources": [],
            "detail": {
                "providerType": self.revision.provider_type,
                "commit": self.revision.sha,
                "repositoryName": self.revision.repository_name,
                "ownerId": self.revision.owner_id,
                "branch": self.revision.branch,
                "syncType": self.sync_type.as_str(),
                "syncTarget": self.sync_target,
                "status": self.status.as_str(),
                "previousSync": self.previous.map(|s| s.as_str()),
            },
        })
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
}
