//! Reads `GetSyncBlockerSummary` with the AWS SDK for Rust's CodeConnections client (Smithy RPC v2
//! CBOR) and prints what it saw as JSON, so the CloudFormation integration test (pytest, with
//! moto_server and a real Git server) can check a real blocker.
//!
//! Usage: sync_blocker_summary STACK, with GITSYNC_ENDPOINT, AWS_ACCESS_KEY_ID,
//! AWS_SECRET_ACCESS_KEY and AWS_REGION set.

use aws_sdk_codeconnections::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_codeconnections::types::SyncConfigurationType;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let Some(stack) = std::env::args().nth(1) else {
        eprintln!("usage: sync_blocker_summary STACK");
        std::process::exit(2);
    };
    let env = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let config = aws_sdk_codeconnections::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(env("GITSYNC_ENDPOINT"))
        .region(Region::new(env("AWS_REGION")))
        .credentials_provider(Credentials::new(
            env("AWS_ACCESS_KEY_ID"),
            env("AWS_SECRET_ACCESS_KEY"),
            None,
            None,
            "gitsync-test",
        ))
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
