//! Quotas. The defaults are AWS's published ones; every one can be changed per deployment.

/// Per-tenant quotas enforced by the store when it creates resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub connections: u32,
    pub hosts: u32,
    pub repository_links: u32,
    pub cfn_sync_configurations: u32,
    pub sync_configurations_per_link: u32,
    pub sync_configurations_per_branch: u32,
    pub tags_per_resource: u32,
    pub proton_repositories: u32,
    pub template_sync_configs: u32,
    pub service_sync_configs: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections: 250,
            hosts: 50,
            repository_links: 100,
            cfn_sync_configurations: 100,
            sync_configurations_per_link: 100,
            sync_configurations_per_branch: 50,
            tags_per_resource: 50,
            proton_repositories: 100,
            template_sync_configs: 100,
            service_sync_configs: 1000,
        }
    }
}
