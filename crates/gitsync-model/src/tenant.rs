//! Who owns a resource.

use std::fmt;

/// Every resource belongs to one (account, region). The account comes from the access key that
/// signed a request, the region from the signature's credential scope; every store query is
/// scoped by both, so one tenant can never see another's rows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tenant {
    pub account_id: String,
    pub region: String,
}

impl Tenant {
    pub fn new(account_id: impl Into<String>, region: impl Into<String>) -> Self {
        Self {
            account_id: account_id.into(),
            region: region.into(),
        }
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.account_id, self.region)
    }
}

/// An AWS account id: exactly twelve ASCII digits.
pub fn is_account_id(value: &str) -> bool {
    value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit())
}
