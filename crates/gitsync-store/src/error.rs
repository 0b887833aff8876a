//! What can go wrong in the store, in domain terms. The wire layer maps each kind to the
//! modeled exception of the service that asked.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    /// The named resource does not exist for this tenant.
    #[error("{0}")]
    NotFound(String),
    /// A resource with the same key exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// A quota would be exceeded.
    #[error("{0}")]
    LimitExceeded(String),
    /// The resource is still used by others (sync configurations on a repository link).
    #[error("{0}")]
    StillInUse(String),
    /// The request contradicts the current state (for example a connection of another provider).
    #[error("{0}")]
    Conflict(String),
    /// A worker's lease on a branch or target was taken by another worker (or released): its
    /// writes are refused.
    #[error("{0}")]
    LeaseLost(String),
    /// The request is well-formed but breaks a rule the store checks.
    #[error("{0}")]
    Invalid(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("sealed secret cannot be opened: {0}")]
    Crypto(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub(crate) fn corrupt(what: impl std::fmt::Display) -> Self {
        StoreError::Corrupt(what.to_string())
    }
}
