//! Helpers of the status-read benchmark (`bench/status_read_bench.py` drives them), which replays
//! one signed `GetResourceSyncStatus` with `wrk`.
//!
//! ```text
//! status_read_wrk script ENDPOINT ACCESS_KEY SECRET REGION RESOURCE   # wrk's Lua script, on stdout
//! status_read_wrk bare BYTES                                           # the baseline handler
//! ```
//!
//! `script` signs the request once with the official signer (`aws-sigv4`), so wrk spends its time
//! on I/O, not signing; SigV4 accepts the replay within its clock-skew window. `bare` serves a
//! bare axum handler answering `BYTES` bytes to any POST, prints its address and runs until killed:
//! what the HTTP stack alone costs on this machine, the benchmark's baseline.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use std::time::SystemTime;

/// A wrk script that sends one request, signed for `host`, over and over.
fn wrk_script(host: &str, key: &str, secret: &str, region: &str, resource: &str) -> String {
    let body = format!(r#"{{"ResourceName":"{resource}","SyncType":"CFN_STACK_SYNC"}}"#);
    let headers = [
        ("host", host.to_string()),
        ("content-type", "application/x-amz-json-1.0".to_string()),
        (
            "x-amz-target",
            "CodeConnections_20231201.GetResourceSyncStatus".to_string(),
        ),
    ];
    let identity: Identity = Credentials::new(key, secret, None, None, "bench").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("codeconnections")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .expect("signing parameters")
        .into();
    let url = format!("http://{host}/");
    let signable = SignableRequest::new(
        "POST",
        &url,
        headers.iter().map(|(k, v)| (*k, v.as_str())),
        SignableBody::Bytes(body.as_bytes()),
    )
    .expect("signable request");
    let (instructions, _) = sign(signable, &params).expect("signature").into_parts();
    let mut lua = format!("wrk.method = \"POST\"\nwrk.body = [[{body}]]\n");
    for (k, v) in headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .chain(
            instructions
                .headers()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        )
    {
        // wrk adds a `Host` of its own unless the script sets that very key.
        let k = if k == "host" { "Host" } else { k.as_str() };
        lua.push_str(&format!("wrk.headers[\"{k}\"] = \"{v}\"\n"));
    }
    lua
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("script") if args.len() == 7 => {
            let host = args[2].trim_start_matches("http://").trim_end_matches('/');
            print!(
                "{}",
                wrk_script(host, &args[3], &args[4], &args[5], &args[6])
            );
        }
        Some("bare") if args.len() == 3 => {
            let bytes: usize = args[2].parse().expect("BYTES is a number");
            let body = "x".repeat(bytes);
            let app = axum::Router::new().route(
                "/",
                axum::routing::post(move || {
                    let body = body.clone();
                    async move { body }
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            println!("http://{}", listener.local_addr().expect("address"));
            axum::serve(listener, app).await.expect("serve");
        }
        _ => {
            eprintln!(
                "usage: status_read_wrk script ENDPOINT ACCESS_KEY SECRET REGION RESOURCE\n       status_read_wrk bare BYTES"
            );
            std::process::exit(2);
        }
    }
}
