//! The AWS SDK for Rust against the real `gitsync` binary: aws-sdk-codeconnections (Smithy RPC v2
//! CBOR, indefinite-length maps), aws-sdk-codestarconnections and aws-sdk-proton (awsJson1_0).
#![allow(deprecated)] // Every Proton operation is marked deprecated since Proton's end of support.

use aws_sdk_codeconnections::error::ProvideErrorMetadata;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `target/debug/gitsync`, next to this test's own `target/debug/deps/…` executable.
fn target_file(relative: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let debug = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/debug");
    let path = debug.join(relative);
    assert!(
        path.exists(),
        "{} is missing: build the workspace's binaries and examples first",
        path.display()
    );
    path
}

struct Server {
    child: Child,
    data_dir: PathBuf,
    endpoint: String,
}

impl Server {
    fn start() -> Server {
        let data_dir =
            std::env::temp_dir().join(format!("gitsync-rust-sdk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(target_file("gitsync"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(&data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start gitsync");
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "gitsync did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Server {
            child,
            data_dir,
            endpoint,
        }
    }

    fn gitsync(&self, args: &[&str]) -> String {
        let out = Command::new(target_file("gitsync"))
            .args(args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A fresh tenant: (access key, secret).
    fn tenant(&self, account: &str) -> (String, String) {
        let out = self.gitsync(&["keys", "create", "--account-id", account]);
        let field = |name: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim_start_matches(" = ").to_string())
                .unwrap()
        };
        (field("aws_access_key_id"), field("aws_secret_access_key"))
    }

    fn seed(&self, account: &str, link: &str) -> serde_json::Value {
        let out = Command::new(target_file("examples/seed_sync_history"))
            .arg(format!("sqlite://{}/gitsync.db", self.data_dir.display()))
            .arg(self.data_dir.join("master.key"))
            .args([account, "us-east-1", link])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

macro_rules! config {
    ($krate:ident, $server:expr, $key:expr) => {
        $krate::Config::builder()
            .behavior_version($krate::config::BehaviorVersion::latest())
            .region($krate::config::Region::new("us-east-1"))
            .endpoint_url(&$server.endpoint)
            .credentials_provider($krate::config::Credentials::new(
                &$key.0,
                &$key.1,
                None,
                None,
                "gitsync-test",
            ))
            .retry_config($krate::config::retry::RetryConfig::disabled())
            .build()
    };
}

#[tokio::test]
async fn rust_sdks_work_against_gitsync() {
    let server = Server::start();
    let account = "246813579024";
    let key = server.tenant(account);
    let cc =
        aws_sdk_codeconnections::Client::from_conf(config!(aws_sdk_codeconnections, server, key));
    let legacy = aws_sdk_codestarconnections::Client::from_conf(config!(
        aws_sdk_codestarconnections,
        server,
        key
    ));
    let proton = aws_sdk_proton::Client::from_conf(config!(aws_sdk_proton, server, key));

    // CodeConnections speaks CBOR from this SDK.
    let arn = cc
        .create_connection()
        .connection_name("rust")
        .provider_type(aws_sdk_codeconnections::types::ProviderType::Github)
        .send()
        .await
        .expect("create connection")
        .connection_arn;
    assert!(arn.starts_with(&format!(
        "arn:aws:codeconnections:us-east-1:{account}:connection/"
    )));
    let connection = cc
        .get_connection()
        .connection_arn(&arn)
        .send()
        .await
        .unwrap()
        .connection
        .unwrap();
    assert_eq!(connection.connection_name(), Some("rust"));
    assert_eq!(
        connection.connection_status().map(|s| s.as_str()),
        Some("PENDING")
    );
    let link = cc
        .create_repository_link()
        .connection_arn(&arn)
        .owner_id("octo")
        .repository_name("infra")
        .send()
        .await
        .unwrap()
        .repository_link_info
        .unwrap();
    let config = cc
        .create_sync_configuration()
        .branch("main")
        .config_file("deploy/stack.yaml")
        .repository_link_id(link.repository_link_id())
        .resource_name("seeded-stack")
        .role_arn(format!("arn:aws:iam::{account}:role/r"))
        .sync_type(aws_sdk_codeconnections::types::SyncConfigurationType::CfnStackSync)
        .send()
        .await
        .unwrap()
        .sync_configuration
        .unwrap();
    assert_eq!(config.repository_name(), "infra");

    // Errors map to the modeled types over CBOR.
    let missing = cc
        .get_resource_sync_status()
        .resource_name("seeded-stack")
        .sync_type("CFN_STACK_SYNC".into())
        .send()
        .await;
    assert!(
        missing
            .unwrap_err()
            .into_service_error()
            .is_resource_not_found_exception()
    );
    let invalid = cc
        .create_connection()
        .connection_name("x".repeat(40))
        .provider_type("GitHub".into())
        .send()
        .await;
    // AWS answers a modeled-constraint violation with ValidationException, which
    // CreateConnection does not model; the code and message still come through.
    let invalid = invalid.unwrap_err().into_service_error();
    assert_eq!(invalid.code(), Some("ValidationException"));
    assert!(
        invalid
            .message()
            .is_some_and(|m| m.contains("at 'connectionName' failed to satisfy constraint"))
    );

    // Timestamps: tag-1 CBOR numbers become DateTimes.
    let seeded = server.seed(account, link.repository_link_id());
    let status = cc
        .get_resource_sync_status()
        .resource_name("seeded-stack")
        .sync_type("CFN_STACK_SYNC".into())
        .send()
        .await
        .unwrap();
    let good = status.latest_successful_sync.unwrap();
    // 1700000000.123 has no exact f64; the SDK reads 1700000000.12299990…, so round to millis.
    let millis = good.started_at().secs() * 1000
        + i64::from((good.started_at().subsec_nanos() + 500_000) / 1_000_000);
    assert_eq!(millis, 1_700_000_000_123);
    let latest = status.latest_sync.unwrap();
    assert_eq!(latest.status().as_str(), "FAILED");
    assert_eq!(
        latest.target_revision().unwrap().sha(),
        seeded["new"].as_str().unwrap()
    );
    assert_eq!(
        latest
            .events()
            .iter()
            .map(|e| e.r#type())
            .collect::<Vec<_>>(),
        ["SYNC_STARTED", "VALIDATION_FAILED"]
    );
    let blockers = cc
        .get_sync_blocker_summary()
        .resource_name("seeded-stack")
        .sync_type("CFN_STACK_SYNC".into())
        .send()
        .await
        .unwrap();
    assert_eq!(
        blockers
            .sync_blocker_summary
            .unwrap()
            .latest_blockers()
            .len(),
        1
    );

    // The legacy service sees the same rows, over JSON with the bare target prefix.
    let listed = legacy.list_connections().send().await.unwrap();
    assert_eq!(
        listed
            .connections()
            .iter()
            .filter_map(|c| c.connection_arn())
            .collect::<Vec<_>>(),
        [arn.as_str()]
    );

    // Proton over JSON.
    let repo = proton
        .create_repository()
        .connection_arn(&arn)
        .name("octo/templates")
        .provider(aws_sdk_proton::types::RepositoryProvider::Github)
        .send()
        .await
        .unwrap()
        .repository
        .unwrap();
    assert!(repo.arn().ends_with(":repository/github:octo/templates"));
    proton
        .create_template_sync_config()
        .template_name("seeded-template")
        .template_type(aws_sdk_proton::types::TemplateType::Environment)
        .repository_name("octo/templates")
        .repository_provider(aws_sdk_proton::types::RepositoryProvider::Github)
        .branch("main")
        .send()
        .await
        .unwrap();
    let template = proton
        .get_template_sync_status()
        .template_name("seeded-template")
        .template_type(aws_sdk_proton::types::TemplateType::Environment)
        .template_version("1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        template.latest_successful_sync.unwrap().started_at().secs(),
        1_700_000_000
    );
    assert_eq!(
        template.desired_state.unwrap().sha(),
        seeded["new"].as_str().unwrap()
    );
    let gone = proton
        .get_repository()
        .name("octo/none")
        .provider(aws_sdk_proton::types::RepositoryProvider::Github)
        .send()
        .await;
    assert!(
        gone.unwrap_err()
            .into_service_error()
            .is_resource_not_found_exception()
    );
    let bad = proton
        .get_template_sync_status()
        .template_name("bad name")
        .template_type("ENVIRONMENT".into())
        .template_version("1")
        .send()
        .await;
    assert!(
        bad.unwrap_err()
            .into_service_error()
            .is_validation_exception()
    );
}
