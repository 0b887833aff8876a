//! Reads `GetSyncBlockerSummary` with the AWS SDK for Rust's CodeConnections client (Smithy RPC v2
//! CBOR) and prints what it saw as JSON, so the CloudFormation integration test (pytest, with
//! moto_server and a real Git server) can check a real blocker.
//!
//! Usage: sync_blocker_summary STACK, with GITSYNC_ENDPOINT, AWS_ACCESS_KEY_ID,
//! AWS_SECRET_ACCESS_KEY and AWS_REGION set.

mod common;

use aws_sdk_codeconnections::config::{BehaviorVersion, Region};
use aws_sdk_codeconnections::types::SyncConfigurationType;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let Some(stack) = std::env::args().nth(1) else {
        eprintln!("usage: sync_blocker_summary STACK");
        std::process::exit(2);
    };
    let config = aws_sdk_codeconnections::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(common::endpoint())
        .region(Region::new(common::region()))
        .credentials_provider(common::credentials())
        .build();
    let client = aws_sdk_codeconnections::Client::from_conf(config);
    let out = client
        .get_sync_blocker_summary()
        .resource_name(&stack)
        .sync_type(SyncConfigurationType::CfnStackSync)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetSyncBlockerSummary failed: {e:?}"));
    let summary = out.sync_blocker_summary();
    let blockers: Vec<serde_json::Value> = summary
        .map(|s| s.latest_blockers())
        .unwrap_or_default()
        .iter()
        .map(|b| {
            serde_json::json!({
                "id": b.id(),
                "status": b.status().as_str(),
                "type": b.r#type().as_str(),
                "createdReason": b.created_reason(),
                "createdAtSecs": b.created_at().secs(),
                "contexts": b.contexts().iter().map(|c| serde_json::json!([c.key(), c.value()])).collect::<Vec<_>>(),
            })
        })
        .collect();
    println!(
        "{}",
        serde_json::json!({
            "resourceName": summary.map(|s| s.resource_name()),
            "latestBlockers": blockers,
        })
    );
}
