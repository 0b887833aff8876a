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
    pub proton_templates: u32,
    /// Events one sync attempt records at most; the last says how many were left out.
    pub events_per_attempt: u32,
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
            proton_templates: 100,
            events_per_attempt: 1000,
        }
    }
}

impl Limits {
    /// The names `set` accepts, for help texts and error messages.
    pub const NAMES: &'static [&'static str] = &[
        "connections",
        "hosts",
        "repository_links",
        "cfn_sync_configurations",
        "sync_configurations_per_link",
        "sync_configurations_per_branch",
        "tags_per_resource",
        "proton_repositories",
        "template_sync_configs",
        "service_sync_configs",
        "proton_templates",
        "events_per_attempt",
    ];

    /// Sets one quota from `name=value` (for example `repository_links=200`).
    pub fn set(&mut self, assignment: &str) -> Result<(), String> {
        let (name, value) = assignment
            .split_once('=')
            .ok_or_else(|| format!("limit '{assignment}' must have the form NAME=NUMBER"))?;
        let value: u32 = value
            .trim()
            .parse()
            .map_err(|_| format!("limit {name}: '{value}' is not a whole number"))?;
        let slot = match name.trim() {
            "connections" => &mut self.connections,
            "hosts" => &mut self.hosts,
            "repository_links" => &mut self.repository_links,
            "cfn_sync_configurations" => &mut self.cfn_sync_configurations,
            "sync_configurations_per_link" => &mut self.sync_configurations_per_link,
            "sync_configurations_per_branch" => &mut self.sync_configurations_per_branch,
            "tags_per_resource" => &mut self.tags_per_resource,
            "proton_repositories" => &mut self.proton_repositories,
            "template_sync_configs" => &mut self.template_sync_configs,
            "service_sync_configs" => &mut self.service_sync_configs,
            "proton_templates" => &mut self.proton_templates,
            "events_per_attempt" => &mut self.events_per_attempt,
            other => {
                return Err(format!(
                    "unknown limit '{other}'; known limits: {}",
                    Self::NAMES.join(", ")
                ));
            }
        };
        *slot = value;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_set_by_name() {
        let mut limits = Limits::default();
        limits.set("repository_links=3").unwrap();
        assert_eq!(limits.repository_links, 3);
        assert!(limits.set("nope=1").unwrap_err().contains("known limits"));
        assert!(limits.set("hosts=x").is_err());
        assert!(limits.set("hosts").is_err());
        for name in Limits::NAMES {
            limits.set(&format!("{name}=7")).unwrap();
        }
        assert_eq!(limits.service_sync_configs, 7);
    }
}
