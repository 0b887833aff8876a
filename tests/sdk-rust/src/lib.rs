//! Nothing to build: this crate only holds the AWS SDK for Rust wire tests in `tests/`.
