//! What a sync attempt records, and how sync targets are identified.

use crate::resources::{TemplateType, string_enum};
use crate::time::Timestamp;

string_enum! {
    /// The three kinds of Git sync.
    SyncType { CfnStackSync = "CFN_STACK_SYNC", TemplateSync = "TEMPLATE_SYNC", ServiceSync = "SERVICE_SYNC" }
}

string_enum! {
    RepositorySyncStatus {
        Queued = "QUEUED",
        Initiated = "INITIATED",
        InProgress = "IN_PROGRESS",
        Succeeded = "SUCCEEDED",
        Failed = "FAILED",
    }
}

string_enum! {
    ResourceSyncStatus {
        Initiated = "INITIATED",
        InProgress = "IN_PROGRESS",
        Succeeded = "SUCCEEDED",
        Failed = "FAILED",
    }
}

string_enum! {
    BlockerStatus { Active = "ACTIVE", Resolved = "RESOLVED" }
}

/// What one status read answers for: a stack, a template major version, or a service instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SyncTarget {
    CfnStack {
        stack_name: String,
    },
    TemplateVersion {
        template_name: String,
        template_type: TemplateType,
        major: String,
    },
    ServiceInstance {
        service_name: String,
        instance_name: String,
    },
}

impl SyncTarget {
    pub fn sync_type(&self) -> SyncType {
        match self {
            SyncTarget::CfnStack { .. } => SyncType::CfnStackSync,
            SyncTarget::TemplateVersion { .. } => SyncType::TemplateSync,
            SyncTarget::ServiceInstance { .. } => SyncType::ServiceSync,
        }
    }

    /// A stable key, unique within (tenant, sync type), under which the store files the target.
    pub fn key(&self) -> String {
        match self {
            SyncTarget::CfnStack { stack_name } => stack_name.clone(),
            SyncTarget::TemplateVersion {
                template_name,
                template_type,
                major,
            } => {
                format!("{}/{}/{}", template_type.as_str(), template_name, major)
            }
            SyncTarget::ServiceInstance {
                service_name,
                instance_name,
            } => {
                format!("{service_name}/{instance_name}")
            }
        }
    }

    /// Reads back [`SyncTarget::key`] for its sync type; `None` for a key of another shape.
    /// The store decodes targets with it, once, so the layers above see only typed targets.
    pub fn from_key(sync_type: SyncType, key: &str) -> Option<SyncTarget> {
        match sync_type {
            SyncType::CfnStackSync => Some(SyncTarget::CfnStack {
                stack_name: key.to_string(),
            }),
            SyncType::TemplateSync => {
                let mut parts = key.splitn(3, '/');
                let template_type = TemplateType::parse(parts.next()?)?;
                let template_name = parts.next()?.to_string();
                let major = parts.next()?;
                major.parse::<i64>().ok()?;
                Some(SyncTarget::TemplateVersion {
                    template_name,
                    template_type,
                    major: major.to_string(),
                })
            }
            SyncType::ServiceSync => {
                let (service, instance) = key.split_once('/')?;
                Some(SyncTarget::ServiceInstance {
                    service_name: service.to_string(),
                    instance_name: instance.to_string(),
                })
            }
        }
    }

    /// What the target belongs to, for finding every target of one thing: the service of an
    /// instance (`api`), the template of a major version (`ENVIRONMENT/vpc`); stacks belong to
    /// nothing. Stored beside the key.
    pub fn parent_key(&self) -> Option<String> {
        match self {
            SyncTarget::CfnStack { .. } => None,
            SyncTarget::TemplateVersion {
                template_name,
                template_type,
                ..
            } => Some(format!("{}/{template_name}", template_type.as_str())),
            SyncTarget::ServiceInstance { service_name, .. } => Some(service_name.clone()),
        }
    }

    /// The target in words, for logs: `stack orders`, `ENVIRONMENT template vpc major version 1`,
    /// `service instance api/dev`.
    pub fn describe(&self) -> String {
        match self {
            SyncTarget::CfnStack { stack_name } => format!("stack {stack_name}"),
            SyncTarget::TemplateVersion {
                template_name,
                template_type,
                major,
            } => format!(
                "{} template {template_name} major version {major}",
                template_type.as_str()
            ),
            SyncTarget::ServiceInstance {
                service_name,
                instance_name,
            } => format!("service instance {service_name}/{instance_name}"),
        }
    }

    /// How a person (and `ResourceSyncAttempt.Target`) names the target.
    pub fn display_name(&self) -> String {
        match self {
            SyncTarget::CfnStack { stack_name } => stack_name.clone(),
            SyncTarget::TemplateVersion {
                template_name,
                major,
                ..
            } => format!("{template_name}:{major}"),
            SyncTarget::ServiceInstance { instance_name, .. } => instance_name.clone(),
        }
    }
}

/// A commit of a watched path on a branch.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Revision {
    pub branch: String,
    pub directory: String,
    pub owner_id: String,
    pub repository_name: String,
    /// The provider as the API that reads the revision spells it.
    pub provider_type: String,
    pub sha: String,
}

string_enum! {
    /// Every kind of event a sync attempt records: the one catalogue, which docs/events.md
    /// describes type by type (a unit test holds them together).
    EventType {
        // Repository syncs (branch checks).
        CloneStarted = "CLONE_STARTED",
        CloneFailed = "CLONE_FAILED",
        ConfigUpdated = "CONFIG_UPDATED",
        StartingSync = "STARTING_SYNC",
        // Both kinds of attempt.
        NoChanges = "NO_CHANGES",
        SourceFailed = "SOURCE_FAILED",
        // Resource syncs.
        TakenOver = "TAKEN_OVER",
        Superseded = "SUPERSEDED",
        SyncStarted = "SYNC_STARTED",
        ValidationFailed = "VALIDATION_FAILED",
        ValidationSucceeded = "VALIDATION_SUCCEEDED",
        LimitExceeded = "LIMIT_EXCEEDED",
        AccessDenied = "ACCESS_DENIED",
        DeploymentStarted = "DEPLOYMENT_STARTED",
        DeploymentProgress = "DEPLOYMENT_PROGRESS",
        DeploymentSucceeded = "DEPLOYMENT_SUCCEEDED",
        DeploymentFailed = "DEPLOYMENT_FAILED",
        VersionRegistered = "VERSION_REGISTERED",
        Blocked = "BLOCKED",
        EventsLeftOut = "EVENTS_LEFT_OUT",
        Abandoned = "ABANDONED",
    }
}

/// One event of an attempt. `event_type` is text because history outlives the catalogue (an
/// older release's types stay readable); new events are made with [`SyncEvent::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncEvent {
    pub event_type: String,
    pub event: String,
    pub time: Timestamp,
    pub external_id: Option<String>,
}

impl SyncEvent {
    /// An event happening now.
    pub fn new(
        event_type: EventType,
        text: impl Into<String>,
        external_id: Option<&str>,
    ) -> SyncEvent {
        SyncEvent {
            event_type: event_type.as_str().to_string(),
            event: text.into(),
            time: Timestamp::now(),
            external_id: external_id.map(str::to_string),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositorySyncAttempt {
    pub started_at: Timestamp,
    pub status: RepositorySyncStatus,
    pub events: Vec<SyncEvent>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceSyncAttempt {
    pub started_at: Timestamp,
    pub status: ResourceSyncStatus,
    pub events: Vec<SyncEvent>,
    pub initial_revision: Revision,
    pub target_revision: Revision,
    pub target: String,
}

/// Everything a `Get*SyncStatus` call answers for one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceSyncState {
    pub desired_state: Option<Revision>,
    pub latest_sync: ResourceSyncAttempt,
    pub latest_successful_sync: Option<ResourceSyncAttempt>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncBlocker {
    pub id: String,
    pub status: BlockerStatus,
    pub created_reason: String,
    pub created_at: Timestamp,
    pub contexts: Vec<(String, String)>,
    pub resolved_reason: Option<String>,
    pub resolved_at: Option<Timestamp>,
}

impl SyncBlocker {
    /// AWS knows one blocker type: the service creates blockers, people only resolve them.
    pub const TYPE: &'static str = "AUTOMATED";
}

/// Which resource a blocker stops: a stack, a service (all its instances) or one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockerScope {
    pub sync_type: SyncType,
    pub resource_name: String,
    pub parent_resource_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositorySyncDefinition {
    pub branch: String,
    pub directory: String,
    pub parent: String,
    pub target: String,
}

#[cfg(test)]
mod event_catalogue {
    use super::EventType;

    /// docs/events.md has a table row for every event type, and none for a type that is not
    /// in the catalogue.
    #[test]
    fn every_event_type_is_documented() {
        let doc = include_str!("../../../docs/events.md");
        let documented: std::collections::BTreeSet<&str> = doc
            .lines()
            .filter_map(|l| l.strip_prefix("| `")?.split_once('`').map(|(t, _)| t))
            .filter(|t| t.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
            .collect();
        for t in EventType::ALL {
            assert!(
                documented.contains(t.as_str()),
                "docs/events.md does not describe {t}"
            );
        }
        // Attempt statuses share the tables' first column.
        let statuses = ["INITIATED", "IN_PROGRESS", "SUCCEEDED", "FAILED", "QUEUED"];
        for d in documented {
            assert!(
                EventType::parse(d).is_some() || statuses.contains(&d),
                "docs/events.md describes {d}, which no code emits"
            );
        }
    }
}

#[cfg(test)]
mod target_keys {
    use super::*;

    #[test]
    fn keys_read_back_as_the_targets_they_were_made_from() {
        let targets = [
            SyncTarget::CfnStack {
                stack_name: "orders".into(),
            },
            SyncTarget::TemplateVersion {
                template_name: "vpc".into(),
                template_type: TemplateType::Environment,
                major: "12".into(),
            },
            SyncTarget::ServiceInstance {
                service_name: "api".into(),
                instance_name: "dev".into(),
            },
        ];
        for target in targets {
            assert_eq!(
                SyncTarget::from_key(target.sync_type(), &target.key()),
                Some(target.clone())
            );
        }
        assert_eq!(
            SyncTarget::from_key(SyncType::TemplateSync, "ENVIRONMENT/vpc/x"),
            None
        );
        assert_eq!(SyncTarget::from_key(SyncType::ServiceSync, "api"), None);
    }

    #[test]
    fn parents_name_what_a_target_belongs_to() {
        let major = SyncTarget::TemplateVersion {
            template_name: "vpc".into(),
            template_type: TemplateType::Service,
            major: "2".into(),
        };
        assert_eq!(major.parent_key().as_deref(), Some("SERVICE/vpc"));
        let instance = SyncTarget::ServiceInstance {
            service_name: "api".into(),
            instance_name: "dev".into(),
        };
        assert_eq!(instance.parent_key().as_deref(), Some("api"));
        let stack = SyncTarget::CfnStack {
            stack_name: "orders".into(),
        };
        assert_eq!(stack.parent_key(), None);
    }
}
