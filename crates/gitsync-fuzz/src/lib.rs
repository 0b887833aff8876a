//! One entry point per parser of untrusted input, for fuzzing (`fuzz/`, cargo-fuzz) and for
//! replaying the fuzzers' corpora in `cargo test` (this crate's `tests/corpus.rs`). Each takes
//! arbitrary bytes and must return without panicking, whatever they are: an error is a fine
//! answer, a panic or a hang is a bug.

use std::collections::BTreeMap;

/// An entry point: arbitrary bytes in, nothing out.
pub type Target = fn(&[u8]);

/// The fuzz targets, by the name of their `fuzz/fuzz_targets/*.rs` file and corpus folder.
pub const TARGETS: &[(&str, Target)] = &[
    ("wire_json", wire_json),
    ("wire_cbor", wire_cbor),
    ("sigv4", sigv4),
    ("deployment_file", deployment_file),
    ("template_bundle", template_bundle),
    ("proton_specs", proton_specs),
    ("webhook", webhook),
];

/// Picks an operation's input shape of one of the three models from a byte.
fn input_shape(selector: u8) -> (&'static gitsync_api::shapes::ServiceModel, String) {
    use gitsync_api::shapes::{CODECONNECTIONS, CODESTAR_CONNECTIONS, PROTON};
    let model: &'static gitsync_api::shapes::ServiceModel = match selector % 3 {
        0 => &PROTON,
        1 => &CODECONNECTIONS,
        _ => &CODESTAR_CONNECTIONS,
    };
    let mut inputs: Vec<&String> = model
        .operations
        .values()
        .filter_map(|op| op.input.as_ref())
        .collect();
    inputs.sort();
    let shape = inputs[usize::from(selector / 3) % inputs.len()].clone();
    (model, shape)
}

/// An awsJson 1.0 request body, decoded and validated against an operation's input shape.
pub fn wire_json(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        let (model, shape) = input_shape(selector);
        let _ = model.validate(&shape, &value).map_err(|e| e.message());
    }
}

/// A Smithy RPC v2 CBOR request body, decoded and validated the same way.
pub fn wire_cbor(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    if let Ok(value) = gitsync_api::cbor::decode(body) {
        let (model, shape) = input_shape(selector);
        let _ = model.validate(&shape, &value).map_err(|e| e.message());
    }
}

/// The `Authorization` header, the `X-Amz-Date` header and the query string of a request, as
/// SigV4 verification reads them (split at the first two newlines).
pub fn sigv4(data: &[u8]) {
    use gitsync_api::sigv4::{SignedRequest, canonical_request, parse_authorization};
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let (authorization, date, query) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let mut headers = http::HeaderMap::new();
    if let Ok(value) = http::HeaderValue::from_bytes(authorization) {
        headers.insert(http::header::AUTHORIZATION, value);
    }
    if let Ok(value) = http::HeaderValue::from_bytes(date) {
        headers.insert("x-amz-date", value);
    }
    headers.insert(
        http::header::HOST,
        http::HeaderValue::from_static("localhost"),
    );
    let query = String::from_utf8_lossy(query);
    let Ok(auth) = parse_authorization(&headers) else {
        return;
    };
    let request = SignedRequest {
        method: "POST",
        path: "/",
        query: &query,
        headers: &headers,
        body: b"",
    };
    let _ = canonical_request(&request, &auth.signed_headers, "UNSIGNED-PAYLOAD", true);
    let _ = gitsync_api::sigv4::parse_amz_date(&String::from_utf8_lossy(date));
}

/// A stack deployment file and the template it names (split at the first NUL byte).
pub fn deployment_file(data: &[u8]) {
    use gitsync_deploy::cfn::{DeploymentFile, plan, read_template};
    let (deployment, template) = split(data);
    let _ = read_template("template.yaml", template);
    if let Ok(file) = DeploymentFile::parse("deploy.yaml", deployment)
        && let Ok(p) = plan("stack", "arn:aws:iam::111111111111:role/r", &file, template)
    {
        let _ = p.applied();
    }
}

/// A Proton template bundle: files separated by NUL bytes, each `path\n` then its contents.
pub fn template_bundle(data: &[u8]) {
    use gitsync_deploy::proton::{Family, check_bundle};
    let mut files = BTreeMap::new();
    for file in data.split(|b| *b == 0) {
        let (path, contents) = match file.iter().position(|b| *b == b'\n') {
            Some(at) => (&file[..at], &file[at + 1..]),
            None => (file, &b""[..]),
        };
        files.insert(
            String::from_utf8_lossy(path).into_owned(),
            contents.to_vec(),
        );
    }
    let _ = check_bundle(Family::Environment, &files);
    let _ = check_bundle(Family::Service, &files);
}

/// A template schema checked against specs, and the proton-ops file (split at NUL bytes:
/// schema, spec, ops file).
pub fn proton_specs(data: &[u8]) {
    use gitsync_deploy::spec::{InputKind, OpsFile, Schema, ServiceSpec, environment_inputs};
    let mut parts = data.splitn(3, |b| *b == 0);
    let schema = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let spec = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let ops = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let _ = OpsFile::parse("proton-ops.yaml", &ops);
    let service = ServiceSpec::parse("spec.yaml", &spec);
    let environment = environment_inputs(&spec);
    for kind in [InputKind::Environment, InputKind::ServiceInstance] {
        let Ok(schema) = Schema::parse(&schema, kind) else {
            continue;
        };
        if let Ok(Some(inputs)) = &environment {
            let _ = schema.check("environment", Some(inputs));
        }
        if let Ok(service) = &service {
            for instance in &service.instances {
                let _ = schema.check(&instance.name, instance.inputs.as_ref());
            }
        }
    }
}

/// A webhook delivery body, as each provider's endpoint reads it.
pub fn webhook(data: &[u8]) {
    use gitsync_engine::webhook::{Provider, parse_push};
    for provider in [
        Provider::GitHub,
        Provider::GitLab,
        Provider::Bitbucket,
        Provider::Generic,
    ] {
        let _ = parse_push(provider, data);
    }
}

fn split(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[]),
    }
}
