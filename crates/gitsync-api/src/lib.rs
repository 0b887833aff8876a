//! The AWS wire of gitsync.
//!
//! gitsync answers the AWS Proton, CodeConnections and CodeStar Connections APIs so that boto3,
//! the AWS CLI and the AWS SDKs work against it unchanged. This crate owns everything about that
//! wire: the two protocols (awsJson1_0 and Smithy RPC v2 CBOR, [`cbor`]), request signing
//! ([`sigv4`]), the service models that every request is validated against ([`shapes`]), the
//! DTOs generated from them ([`dto`]), error names ([`error`]), and one module of operations per
//! API ([`proton`], [`connections`]) that translate between wire shapes and the store.

pub mod cbor;
mod connections;
mod dispatch;
mod document;
pub mod dto;
pub mod error;
mod history;
pub mod keys;
pub mod pagination;
mod pipelines;
mod proton;
mod provisioning;
pub mod server;
pub mod service;
mod services;
pub mod shapes;
pub mod sigv4;
mod templates;

use axum::Router;
use gitsync_store::Store;
use pagination::Paginator;
use std::sync::Arc;

/// Everything the API handlers share.
pub struct Api {
    pub store: Store,
    pages: Paginator,
    /// Access keys opened for signature checks, trusted for [`keys::KEY_TTL`].
    keys: keys::KeyCache,
    /// The current time in epoch seconds; replaceable so signature expiry can be tested.
    pub clock: fn() -> i64,
    /// Hosts may name `file://` endpoints (`gitsync serve --allow-file-remotes`).
    pub allow_file_remotes: bool,
}

fn system_clock() -> i64 {
    gitsync_model::Timestamp::now().millis() / 1000
}

impl Api {
    pub fn new(store: Store) -> Self {
        let pages = Paginator::new(store.sealer().derive_key("pagination tokens"));
        Api {
            store,
            pages,
            keys: keys::KeyCache::default(),
            clock: system_clock,
            allow_file_remotes: false,
        }
    }

    /// The AWS API routes: every path, since RPC v2 CBOR paths may carry a prefix. Merge other
    /// routes (health, webhooks, dashboard) in front of it.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new().fallback(server::handle).with_state(self)
    }
}
