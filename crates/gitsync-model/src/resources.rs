//! The configuration resources users create through the APIs.

use crate::time::Timestamp;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The spelling used on the wire and in the store.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(value: &str) -> Option<Self> {
                match value { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use string_enum;

string_enum! {
    /// A Git hosting provider as CodeConnections names it.
    ProviderType {
        Bitbucket = "Bitbucket",
        GitHub = "GitHub",
        GitHubEnterpriseServer = "GitHubEnterpriseServer",
        GitLab = "GitLab",
        GitLabSelfManaged = "GitLabSelfManaged",
        AzureDevOps = "AzureDevOps",
    }
}

impl ProviderType {
    /// Self-managed providers need a host (with its `ProviderEndpoint`) to be reachable.
    pub fn is_self_managed(self) -> bool {
        matches!(
            self,
            ProviderType::GitHubEnterpriseServer | ProviderType::GitLabSelfManaged
        )
    }

    /// Where repositories of a cloud provider live, when no host says otherwise.
    pub fn public_base_url(self) -> Option<&'static str> {
        match self {
            ProviderType::GitHub => Some("https://github.com"),
            ProviderType::GitLab => Some("https://gitlab.com"),
            ProviderType::Bitbucket => Some("https://bitbucket.org"),
            ProviderType::AzureDevOps => Some("https://dev.azure.com"),
            ProviderType::GitHubEnterpriseServer | ProviderType::GitLabSelfManaged => None,
        }
    }
}

string_enum! {
    /// A Git hosting provider as Proton names it.
    ProtonProvider {
        GitHub = "GITHUB",
        GitHubEnterprise = "GITHUB_ENTERPRISE",
        Bitbucket = "BITBUCKET",
    }
}

impl ProtonProvider {
    /// The matching CodeConnections provider, to check a repository against its connection.
    pub fn provider_type(self) -> ProviderType {
        match self {
            ProtonProvider::GitHub => ProviderType::GitHub,
            ProtonProvider::GitHubEnterprise => ProviderType::GitHubEnterpriseServer,
            ProtonProvider::Bitbucket => ProviderType::Bitbucket,
        }
    }
}

string_enum! {
    ConnectionStatus { Pending = "PENDING", Available = "AVAILABLE", Error = "ERROR" }
}

string_enum! {
    TemplateType { Environment = "ENVIRONMENT", Service = "SERVICE" }
}

string_enum! {
    /// When a CloudFormation stack sync starts a resource sync.
    TriggerResourceUpdateOn { AnyChange = "ANY_CHANGE", FileChange = "FILE_CHANGE" }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub id: String,
    pub arn: String,
    pub name: String,
    pub provider_type: ProviderType,
    pub host_arn: Option<String>,
    pub status: ConnectionStatus,
    pub owner_account_id: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VpcConfiguration {
    pub vpc_id: String,
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
    pub tls_certificate: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub arn: String,
    pub name: String,
    pub provider_type: ProviderType,
    pub provider_endpoint: String,
    pub vpc_configuration: Option<VpcConfiguration>,
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryLink {
    pub id: String,
    pub arn: String,
    pub connection_arn: String,
    pub encryption_key_arn: Option<String>,
    pub owner_id: String,
    pub provider_type: ProviderType,
    pub repository_name: String,
}

/// A CloudFormation stack synced from a deployment file (`CFN_STACK_SYNC`). One per stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConfiguration {
    pub resource_name: String,
    pub branch: String,
    pub config_file: String,
    pub repository_link_id: String,
    pub role_arn: String,
    pub owner_id: String,
    pub provider_type: ProviderType,
    pub repository_name: String,
    pub publish_deployment_status: Option<bool>,
    pub trigger_resource_update_on: Option<TriggerResourceUpdateOn>,
    pub pull_request_comment: Option<bool>,
}

/// The fields of a sync configuration a user sets; the rest is copied from the repository link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConfigurationSpec {
    pub resource_name: String,
    pub branch: String,
    pub config_file: String,
    pub repository_link_id: String,
    pub role_arn: String,
    pub publish_deployment_status: Option<bool>,
    pub trigger_resource_update_on: Option<TriggerResourceUpdateOn>,
    pub pull_request_comment: Option<bool>,
}

/// A partial update of a sync configuration: `None` keeps the current value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncConfigurationPatch {
    pub branch: Option<String>,
    pub config_file: Option<String>,
    pub repository_link_id: Option<String>,
    pub role_arn: Option<String>,
    pub publish_deployment_status: Option<bool>,
    pub trigger_resource_update_on: Option<TriggerResourceUpdateOn>,
    pub pull_request_comment: Option<bool>,
}

/// A Git repository Proton knows, keyed by (provider, `owner/repo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtonRepository {
    pub arn: String,
    pub provider: ProtonProvider,
    pub name: String,
    pub connection_arn: String,
    pub encryption_key: Option<String>,
}

impl ProtonRepository {
    /// `arn:aws:proton:{region}:{account}:repository/{provider lower-case}:{owner}/{repo}`.
    pub fn arn_resource(provider: ProtonProvider, name: &str) -> String {
        format!(
            "repository/{}:{}",
            provider.as_str().to_ascii_lowercase(),
            name
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateSyncConfig {
    pub template_name: String,
    pub template_type: TemplateType,
    pub repository_provider: ProtonProvider,
    pub repository_name: String,
    pub branch: String,
    pub subdirectory: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSyncConfig {
    pub service_name: String,
    pub repository_provider: ProtonProvider,
    pub repository_name: String,
    pub branch: String,
    pub file_path: String,
}

/// `owner/repo` as Proton's repository names are written; both halves non-empty.
pub fn split_owner_repo(name: &str) -> Option<(&str, &str)> {
    let (owner, repo) = name.split_once('/')?;
    (!owner.is_empty() && !repo.is_empty()).then_some((owner, repo))
}

/// What a user gives to create a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    pub name: String,
    pub provider_type: ProviderType,
    pub provider_endpoint: String,
    pub vpc_configuration: Option<VpcConfiguration>,
}

/// What a user gives to create a repository link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryLinkSpec {
    pub connection_arn: String,
    pub owner_id: String,
    pub repository_name: String,
    pub encryption_key_arn: Option<String>,
}

string_enum! {
    /// Where a Proton template version stands.
    TemplateVersionStatus {
        RegistrationInProgress = "REGISTRATION_IN_PROGRESS",
        RegistrationFailed = "REGISTRATION_FAILED",
        Draft = "DRAFT",
        Published = "PUBLISHED",
    }
}

/// A Proton environment or service template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtonTemplate {
    pub template_type: TemplateType,
    pub name: String,
    pub arn: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub encryption_key: Option<String>,
    /// `provisioning` of environment templates, `pipelineProvisioning` of service templates.
    pub provisioning: Option<String>,
    pub created_at: Timestamp,
    pub last_modified_at: Timestamp,
    /// The highest PUBLISHED version, `major.minor`.
    pub recommended_version: Option<String>,
}

/// One `major.minor` version of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateVersion {
    pub template_type: TemplateType,
    pub template_name: String,
    pub major: i64,
    pub minor: i64,
    pub arn: String,
    pub description: Option<String>,
    pub status: TemplateVersionStatus,
    pub status_message: Option<String>,
    pub schema: Option<String>,
    /// Service templates: `(environment template, major)` pairs.
    pub compatible_environments: Vec<(String, String)>,
    pub supported_component_sources: Vec<String>,
    pub source_commit: Option<String>,
    pub created_at: Timestamp,
    pub last_modified_at: Timestamp,
    /// The highest PUBLISHED minor of this major.
    pub recommended_minor: Option<i64>,
}

impl ProtonTemplate {
    /// `environment-template/{name}` or `service-template/{name}`.
    pub fn arn_resource(template_type: TemplateType, name: &str) -> String {
        match template_type {
            TemplateType::Environment => format!("environment-template/{name}"),
            TemplateType::Service => format!("service-template/{name}"),
        }
    }
}

string_enum! {
    /// Where a deployment of an environment or service instance stands.
    DeploymentStatus {
        InProgress = "IN_PROGRESS",
        Failed = "FAILED",
        Succeeded = "SUCCEEDED",
        DeleteInProgress = "DELETE_IN_PROGRESS",
        DeleteFailed = "DELETE_FAILED",
        DeleteComplete = "DELETE_COMPLETE",
        Cancelling = "CANCELLING",
        Cancelled = "CANCELLED",
    }
}

/// The template version a deployment uses: an environment or a service template, `major.minor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedTemplate {
    pub name: String,
    pub major: i64,
    pub minor: i64,
}

/// The `deploymentStatusMessage` of a deployment that succeeded without CloudFormation configured:
/// the templates rendered and the stack plan validated, and nothing in AWS changed (as stack
/// syncs say it in their events).
pub const VALIDATE_ONLY: &str = "validate-only: rendered and validated, nothing was deployed";

/// What a Proton deployment deploys: one stack each.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DeploymentTarget {
    Environment {
        name: String,
    },
    ServiceInstance {
        service: String,
        instance: String,
    },
    /// A service's pipeline (a service has at most one).
    ServicePipeline {
        service: String,
    },
}

impl DeploymentTarget {
    /// Proton's `DeploymentTargetResourceType`, as `proton_deployments.target_kind` holds it.
    pub fn kind(&self) -> &'static str {
        match self {
            DeploymentTarget::Environment { .. } => "ENVIRONMENT",
            DeploymentTarget::ServiceInstance { .. } => "SERVICE_INSTANCE",
            DeploymentTarget::ServicePipeline { .. } => "SERVICE_PIPELINE",
        }
    }

    /// The name `proton_deployments.target_name` holds: `name`, `service/instance`, or the
    /// pipeline's service.
    pub fn target_name(&self) -> String {
        match self {
            DeploymentTarget::Environment { name } => name.clone(),
            DeploymentTarget::ServiceInstance { service, instance } => {
                format!("{service}/{instance}")
            }
            DeploymentTarget::ServicePipeline { service } => service.clone(),
        }
    }

    /// The inverse of [`kind`](Self::kind) and [`target_name`](Self::target_name).
    pub fn parse(kind: &str, target_name: &str) -> Option<DeploymentTarget> {
        match kind {
            "ENVIRONMENT" => Some(DeploymentTarget::Environment {
                name: target_name.to_string(),
            }),
            "SERVICE_INSTANCE" => {
                let (service, instance) = target_name.split_once('/')?;
                Some(DeploymentTarget::ServiceInstance {
                    service: service.to_string(),
                    instance: instance.to_string(),
                })
            }
            "SERVICE_PIPELINE" => Some(DeploymentTarget::ServicePipeline {
                service: target_name.to_string(),
            }),
            _ => None,
        }
    }

    /// How people read it: `environment dev`, `service instance dev of service api`.
    pub fn describe(&self) -> String {
        match self {
            DeploymentTarget::Environment { name } => format!("environment {name}"),
            DeploymentTarget::ServiceInstance { service, instance } => {
                format!("service instance {instance} of service {service}")
            }
            DeploymentTarget::ServicePipeline { service } => {
                format!("the pipeline of service {service}")
            }
        }
    }

    /// The resource part of its ARN: `environment/dev`, `service/api/service-instance/dev`,
    /// `service/api/pipeline`.
    pub fn arn_resource(&self) -> String {
        match self {
            DeploymentTarget::Environment { name } => format!("environment/{name}"),
            DeploymentTarget::ServiceInstance { service, instance } => {
                format!("service/{service}/service-instance/{instance}")
            }
            DeploymentTarget::ServicePipeline { service } => format!("service/{service}/pipeline"),
        }
    }

    /// What its stack's `gitsync:sync-configuration` tag says: `proton:environment/dev`,
    /// `proton:service/api/service-instance/dev` (the resource's ARN path).
    pub fn owner_tag(&self) -> String {
        format!("proton:{}", self.arn_resource())
    }

    /// The stack a resource is deployed to unless it was bound to another one:
    /// `proton-env-<environment>`, `proton-<service>-<instance>-<hash>` and
    /// `proton-<service>-pipeline-<hash>`, where `_` (which
    /// stack names cannot hold) becomes `-` and `<hash>` (8 hex digits of the FNV-1a hash of
    /// the exact names) keeps names unique where that, or the joining `-`, or shortening to
    /// CloudFormation's 128 characters, could make two the same. Environments get a hash only
    /// when their name changed.
    pub fn default_stack_name(&self) -> String {
        const MAX: usize = 128;
        let clean = |s: &str| s.replace('_', "-");
        let hash = |s: &str| {
            let mut h: u32 = 0x811c_9dc5;
            for b in s.bytes() {
                h ^= u32::from(b);
                h = h.wrapping_mul(0x0100_0193);
            }
            format!("{h:08x}")
        };
        let (base, hashed) = match self {
            DeploymentTarget::Environment { name } => {
                let base = format!("proton-env-{}", clean(name));
                let changed = base.len() > MAX || name.contains('_');
                (base, changed)
            }
            DeploymentTarget::ServiceInstance { service, instance } => (
                format!("proton-{}-{}", clean(service), clean(instance)),
                true,
            ),
            // The hash keeps it apart from an instance named `pipeline`.
            DeploymentTarget::ServicePipeline { service } => {
                (format!("proton-{}-pipeline", clean(service)), true)
            }
        };
        if !hashed {
            return base;
        }
        let mut cut: String = base.chars().take(MAX - 9).collect();
        cut.push('-');
        cut.push_str(&hash(&self.target_name()));
        cut
    }
}

/// A resource of a deployed stack, as Proton lists provisioned resources.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StackResource {
    pub logical_id: String,
    pub physical_id: String,
    pub resource_type: String,
}

/// One deployment of an environment or service instance, as its history keeps it (Proton's
/// `Deployment`): what it applied, how it ended, and what the resource ran before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentRecord {
    pub id: String,
    pub target: DeploymentTarget,
    pub environment_name: String,
    /// What it applies; a deletion applies nothing (`None`).
    pub target_state: Option<(DeployedTemplate, Option<String>)>,
    /// What the resource's last successful deployment before this one applied.
    pub initial_state: Option<(DeployedTemplate, Option<String>)>,
    pub status: DeploymentStatus,
    pub status_message: Option<String>,
    /// The commit service sync deployed; none when made through the API.
    pub source_commit: Option<String>,
    pub created_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    /// When the resource was created: its first deployment.
    pub target_created_at: Timestamp,
}

/// What the last deployment of an environment or instance did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentState {
    pub status: DeploymentStatus,
    pub status_message: Option<String>,
    pub last_attempted_at: Timestamp,
    pub last_succeeded_at: Timestamp,
    pub last_attempted_id: Option<String>,
    pub last_succeeded_id: Option<String>,
}

/// A Proton environment: where service instances run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    pub name: String,
    pub arn: String,
    pub description: Option<String>,
    pub template: DeployedTemplate,
    pub spec: Option<String>,
    pub proton_service_role_arn: Option<String>,
    pub codebuild_role_arn: Option<String>,
    pub component_role_arn: Option<String>,
    pub created_at: Timestamp,
    pub deployment: DeploymentState,
}

/// A Proton service: a service template's major version and the spec of its instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub arn: String,
    pub description: Option<String>,
    pub template_name: String,
    pub template_major: i64,
    pub spec: String,
    pub repository_connection_arn: Option<String>,
    pub repository_id: Option<String>,
    pub branch_name: Option<String>,
    pub created_at: Timestamp,
    pub last_modified_at: Timestamp,
}

impl Service {
    pub const STATUS: &'static str = "ACTIVE";
}

/// A service's pipeline: deployed from the service template's `pipeline_infrastructure` with
/// the account's pipeline role, its inputs the `pipeline` section of its spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePipeline {
    pub service_name: String,
    pub arn: String,
    pub template: DeployedTemplate,
    /// The service spec it was deployed with (its `pipeline` section holds the inputs).
    pub spec: String,
    pub created_at: Timestamp,
    pub deployment: DeploymentState,
}

/// One instance of a service, deployed to an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInstance {
    pub service_name: String,
    pub name: String,
    pub arn: String,
    pub environment_name: String,
    pub template: DeployedTemplate,
    pub spec: Option<String>,
    pub last_client_request_token: Option<String>,
    /// The commit its last deployment came from, when service sync made it.
    pub source_commit: Option<String>,
    pub created_at: Timestamp,
    pub deployment: DeploymentState,
}

/// What a deployment of an instance applies (from the API or from a commit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceDeployment {
    pub environment_name: String,
    pub template: DeployedTemplate,
    pub spec: String,
    pub client_token: Option<String>,
    /// `Some(sha)` when service sync applies a commit.
    pub source_commit: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::DeploymentTarget;

    #[test]
    fn deployment_targets_name_their_stacks_uniquely() {
        let env = |n: &str| DeploymentTarget::Environment { name: n.into() };
        let inst = |s: &str, i: &str| DeploymentTarget::ServiceInstance {
            service: s.into(),
            instance: i.into(),
        };
        assert_eq!(env("dev").default_stack_name(), "proton-env-dev");
        // `_` is not allowed in stack names; the hash tells my_env from my-env.
        assert_ne!(
            env("my_env").default_stack_name(),
            env("my-env").default_stack_name()
        );
        assert!(
            env("my_env")
                .default_stack_name()
                .starts_with("proton-env-my-env-")
        );
        // Joined by `-`, a-b/c and a/b-c would collide without the hash.
        assert_ne!(
            inst("a-b", "c").default_stack_name(),
            inst("a", "b-c").default_stack_name()
        );
        let long = inst(&"s".repeat(100), &"i".repeat(100)).default_stack_name();
        assert_eq!(long.len(), 128);
        // A service's pipeline is not its instance named `pipeline`.
        let pipeline = DeploymentTarget::ServicePipeline {
            service: "api".into(),
        };
        assert!(
            pipeline
                .default_stack_name()
                .starts_with("proton-api-pipeline-")
        );
        assert_ne!(
            pipeline.default_stack_name(),
            inst("api", "pipeline").default_stack_name()
        );
        for t in [env("dev"), inst("api", "prod"), pipeline] {
            assert_eq!(
                DeploymentTarget::parse(t.kind(), &t.target_name()),
                Some(t.clone())
            );
            let name = t.default_stack_name();
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
                "{name}"
            );
        }
    }
}
