//! Amazon Resource Names for the resources gitsync owns.

use crate::tenant::Tenant;
use std::fmt;

/// The service segment of a connections ARN. Connections, hosts and repository links created
/// through the legacy CodeStar Connections API carry `codestar-connections`, the rest
/// `codeconnections`; both APIs accept both spellings for the same rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArnService {
    CodeConnections,
    CodestarConnections,
}

impl ArnService {
    pub fn as_str(self) -> &'static str {
        match self {
            ArnService::CodeConnections => "codeconnections",
            ArnService::CodestarConnections => "codestar-connections",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "codeconnections" => Some(ArnService::CodeConnections),
            "codestar-connections" => Some(ArnService::CodestarConnections),
            _ => None,
        }
    }
}

/// A parsed ARN: `arn:{partition}:{service}:{region}:{account}:{resource}`. The resource part may
/// itself contain `:` and `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Arn {
    pub partition: String,
    pub service: String,
    pub region: String,
    pub account_id: String,
    pub resource: String,
}

impl Arn {
    pub fn new(service: &str, tenant: &Tenant, resource: impl Into<String>) -> Self {
        Arn {
            partition: "aws".into(),
            service: service.into(),
            region: tenant.region.clone(),
            account_id: tenant.account_id.clone(),
            resource: resource.into(),
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.splitn(6, ':');
        if parts.next()? != "arn" {
            return None;
        }
        let partition = parts.next()?.to_string();
        let service = parts.next()?.to_string();
        let region = parts.next()?.to_string();
        let account_id = parts.next()?.to_string();
        let resource = parts.next()?.to_string();
        if partition.is_empty() || service.is_empty() || resource.is_empty() {
            return None;
        }
        Some(Arn {
            partition,
            service,
            region,
            account_id,
            resource,
        })
    }

    /// Whether the ARN names a resource of this tenant (same account and region).
    pub fn belongs_to(&self, tenant: &Tenant) -> bool {
        self.account_id == tenant.account_id && self.region == tenant.region
    }

    /// `(type, id)` from a resource of the form `type/id`.
    pub fn resource_type_and_id(&self) -> Option<(&str, &str)> {
        self.resource.split_once('/')
    }
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:{}:{}:{}:{}",
            self.partition, self.service, self.region, self.account_id, self.resource
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_round_trip() {
        let text = "arn:aws:proton:us-east-1:123456789012:repository/github:owner/repo";
        let arn = Arn::parse(text).expect("valid");
        assert_eq!(arn.service, "proton");
        assert_eq!(arn.resource, "repository/github:owner/repo");
        assert_eq!(
            arn.resource_type_and_id(),
            Some(("repository", "github:owner/repo"))
        );
        assert_eq!(arn.to_string(), text);
    }

    #[test]
    fn rejects_non_arns() {
        for bad in [
            "",
            "arn",
            "arn:aws",
            "foo:aws:s3:::x",
            "arn::s3:r:a:x",
            "arn:aws:s3:r:a:",
        ] {
            assert!(Arn::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn scoping_needs_account_and_region() {
        let arn =
            Arn::parse("arn:aws:codeconnections:eu-west-1:111111111111:connection/x").unwrap();
        assert!(arn.belongs_to(&Tenant::new("111111111111", "eu-west-1")));
        assert!(!arn.belongs_to(&Tenant::new("111111111111", "us-east-1")));
        assert!(!arn.belongs_to(&Tenant::new("222222222222", "eu-west-1")));
    }
}
