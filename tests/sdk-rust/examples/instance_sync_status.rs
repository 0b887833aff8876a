//! Reads `GetServiceInstanceSyncStatus` with the AWS SDK for Rust and prints what it saw as JSON,
//! so the service sync integration test (pytest, with a real Git server) can check a real status.
//!
//! Usage: instance_sync_status SERVICE INSTANCE, with GITSYNC_ENDPOINT, AWS_ACCESS_KEY_ID,
//! AWS_SECRET_ACCESS_KEY and AWS_REGION set.

#![allow(deprecated)] // Proton is in end of support; its SDK marks every operation deprecated.

mod common;

use aws_sdk_proton::config::{BehaviorVersion, Region};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (service, instance) = match (args.next(), args.next()) {
        (Some(s), Some(i)) => (s, i),
        _ => {
            eprintln!("usage: instance_sync_status SERVICE INSTANCE");
            std::process::exit(2);
        }
    };
    let config = aws_sdk_proton::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(common::endpoint())
        .region(Region::new(common::region()))
        .credentials_provider(common::credentials())
        .build();
    let proton = aws_sdk_proton::Client::from_conf(config);
    let status = proton
        .get_service_instance_sync_status()
        .service_name(&service)
        .service_instance_name(&instance)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetServiceInstanceSyncStatus failed: {e:?}"));
    let attempt = |a: Option<&aws_sdk_proton::types::ResourceSyncAttempt>| {
        a.map(|a| {
            serde_json::json!({
                "status": a.status().as_str(),
                "target": a.target(),
                "sha": a.target_revision().map(|r| r.sha()),
                "startedAtSecs": a.started_at().secs(),
                "events": a.events().iter().map(|e| serde_json::json!([e.r#type(), e.event()])).collect::<Vec<_>>(),
            })
        })
    };
    let out = serde_json::json!({
        "desiredSha": status.desired_state().map(|d| d.sha()),
        "desiredDirectory": status.desired_state().map(|d| d.directory()),
        "latestSync": attempt(status.latest_sync()),
        "latestSuccessfulSync": attempt(status.latest_successful_sync()),
    });
    println!("{out}");
}
