//! Load generator for the status-read benchmark (`bench/status_read_bench.py` drives it).
//!
//! Sends one SigV4-signed `GetResourceSyncStatus` (CodeConnections, awsJson 1.0) over and over on
//! `--connections` keep-alive HTTP/1.1 connections for `--seconds`, and does the same against a
//! bare axum handler it serves itself on the same machine, answering a body of the same size.
//! Prints both throughputs and latency percentiles, and their ratio, as JSON.
//!
//! Usage: status_read_load ENDPOINT ACCESS_KEY SECRET REGION RESOURCE [SECONDS] [CONNECTIONS]
//!
//! The request is signed once and replayed (SigV4 allows it within the clock-skew window), so the
//! client spends its time on I/O, not on signing.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Builds the raw request bytes once.
fn signed_request(host: &str, key: &str, secret: &str, region: &str, resource: &str) -> Vec<u8> {
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
    let mut raw = String::from("POST / HTTP/1.1\r\n");
    for (k, v) in headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .chain(
            instructions
                .headers()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        )
    {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    raw.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    raw.into_bytes()
}

/// Reads one HTTP/1.1 response (headers and a Content-Length body); returns its status code.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<u16> {
    buf.clear();
    let mut chunk = [0u8; 16384];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok(status);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Runs the load; returns (requests per second, latencies in microseconds, non-200 answers).
async fn load(
    addr: SocketAddr,
    request: Vec<u8>,
    seconds: u64,
    connections: usize,
) -> (f64, Vec<u64>, usize) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            stream.set_nodelay(true).ok();
            let (mut latencies, mut errors, mut buf) = (Vec::new(), 0usize, Vec::new());
            while Instant::now() < deadline {
                let started = Instant::now();
                stream.write_all(&request).await.expect("write");
                match read_response(&mut stream, &mut buf).await {
                    Ok(200) => latencies.push(started.elapsed().as_micros() as u64),
                    Ok(_) => errors += 1,
                    Err(e) => panic!("connection failed: {e}"),
                }
            }
            (latencies, errors)
        }));
    }
    let started = Instant::now();
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await.expect("load task");
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    (all.len() as f64 / elapsed, all, errors)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 {
        eprintln!(
            "usage: status_read_load ENDPOINT ACCESS_KEY SECRET REGION RESOURCE [SECONDS] [CONNECTIONS]"
        );
        std::process::exit(2);
    }
    let endpoint = args[1].trim_start_matches("http://").trim_end_matches('/');
    let seconds: u64 = args.get(6).and_then(|s| s.parse().ok()).unwrap_or(10);
    let connections: usize = args.get(7).and_then(|s| s.parse().ok()).unwrap_or(16);
    let addr: SocketAddr = endpoint.parse().expect("ENDPOINT must be http://IP:PORT");
    let request = signed_request(endpoint, &args[2], &args[3], &args[4], &args[5]);

    // One real answer, to size the bare handler's body like it.
    let mut probe = TcpStream::connect(addr).await.expect("connect to gitsync");
    probe.write_all(&request).await.expect("write");
    let mut buf = Vec::new();
    let status = read_response(&mut probe, &mut buf).await.expect("answer");
    assert_eq!(
        status,
        200,
        "gitsync answered {status}: {}",
        String::from_utf8_lossy(&buf)
    );
    let body_len = buf.len() - buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() - 4;

    let bare_body = "x".repeat(body_len);
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move || {
            let body = bare_body.clone();
            async move { body }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let bare = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let bare_request = signed_request(&bare.to_string(), &args[2], &args[3], &args[4], &args[5]);

    let (bare_rps, bare_lat, _) = load(bare, bare_request, seconds, connections).await;
    let (rps, lat, errors) = load(addr, request, seconds, connections).await;
    println!(
        "{}",
        serde_json::json!({
            "connections": connections,
            "seconds": seconds,
            "body_bytes": body_len,
            "bare": {"rps": bare_rps.round(), "p50_ms": percentile(&bare_lat, 50.0), "p99_ms": percentile(&bare_lat, 99.0)},
            "gitsync": {"rps": rps.round(), "p50_ms": percentile(&lat, 50.0), "p99_ms": percentile(&lat, 99.0), "errors": errors},
            "ratio": (rps / bare_rps * 1000.0).round() / 1000.0,
        })
    );
}
