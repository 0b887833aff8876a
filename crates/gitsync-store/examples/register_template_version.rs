//! Test fixture: registers the next minor version of a template's major from a small bundle,
//! through the store method template sync uses, so registry tests have versions before (and
//! independently of) a real template sync.
//!
//! Usage: register_template_version DATABASE_URL MASTER_KEY_FILE ACCOUNT REGION ENVIRONMENT|SERVICE NAME MAJOR

use gitsync_model::{Limits, TemplateType, Tenant};
use gitsync_store::{MasterKey, NewTemplateVersion, Store};
use std::collections::BTreeMap;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 8 {
        eprintln!(
            "usage: register_template_version DATABASE_URL MASTER_KEY_FILE ACCOUNT REGION ENVIRONMENT|SERVICE NAME MAJOR"
        );
        std::process::exit(2);
    }
    let hex = std::fs::read_to_string(&args[2])?;
    let hex = hex.trim();
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)?;
    }
    let store = Store::open(&args[1], MasterKey::from_bytes(key), Limits::default()).await?;
    let tenant = Tenant::new(&args[3], &args[4]);
    let template_type =
        TemplateType::parse(&args[5]).ok_or("type must be ENVIRONMENT or SERVICE")?;
    let major: i64 = args[7].parse()?;
    let schema = "schema:\n  format:\n    openapi: \"3.0.0\"\n  environment_input_type: \"Input\"\n  types:\n    Input:\n      type: object\n";
    let mut files = BTreeMap::new();
    files.insert("schema/schema.yaml".to_string(), schema.as_bytes().to_vec());
    files.insert(
        "infrastructure/manifest.yaml".to_string(),
        b"infrastructure:\n  templates:\n    - file: cloudformation.yaml\n".to_vec(),
    );
    let new = NewTemplateVersion {
        major,
        description: Some(format!("registered for a test at major {major}")),
        schema: Some(schema.to_string()),
        compatible_environments: if template_type == TemplateType::Service {
            vec![("env".into(), "1".into())]
        } else {
            vec![]
        },
        supported_component_sources: vec![],
        source_commit: Some("3333333333333333333333333333333333333333".into()),
        files,
    };
    let version = store
        .register_template_version(&tenant, template_type, &args[6], &new)
        .await?;
    println!(
        "{}",
        serde_json::json!({"major": version.major, "minor": version.minor, "arn": version.arn})
    );
    store.close().await;
    Ok(())
}
