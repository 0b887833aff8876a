//! What the example clients share: the server and the tenant's key come from the environment
//! (GITSYNC_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION), as the pytest
//! tenants set them.

use aws_sdk_proton::config::Credentials;

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

pub fn endpoint() -> String {
    env("GITSYNC_ENDPOINT")
}

pub fn region() -> String {
    env("AWS_REGION")
}

/// The same credentials type serves every SDK crate (aws-credential-types).
pub fn credentials() -> Credentials {
    Credentials::new(
        env("AWS_ACCESS_KEY_ID"),
        env("AWS_SECRET_ACCESS_KEY"),
        None,
        None,
        "gitsync-test",
    )
}
