//! Proton template bundles: what a `v<major>/` directory must hold to register as a version.
//!
//! Environment templates: `schema/schema.yaml` and `infrastructure/manifest.yaml` plus the files
//! the manifest names. Service templates: `schema/schema.yaml`, `instance_infrastructure/manifest.yaml`
//! (+ the files it names), optionally `pipeline_infrastructure/`, and `.template-registration.yaml`
//! with `compatible_environments` (or the older `.compatible-envs`, one `name:major` a line, as
//! Proton's sample templates have it). Infrastructure files are Jinja templates: each must render
//! with the schema's defaults and stand-ins for the inputs without one (outputs of other
//! resources as placeholders), and the result must be YAML. Every problem names the file and the
//! rule.

use serde_norway::Value;
use std::collections::BTreeMap;

pub const MAX_BUNDLE_BYTES: usize = 5 * 1024 * 1024;
pub const MAX_MANIFEST_OR_SCHEMA_BYTES: usize = 50 * 1024;
pub const MAX_OTHER_FILE_BYTES: usize = 200 * 1024;
pub const MAX_TEMPLATE_FILES: usize = 10;

/// Environment or service template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Family {
    Environment,
    Service,
}

/// What a checked bundle registers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Bundle {
    pub schema: String,
    pub compatible_environments: Vec<(String, String)>,
    pub supported_component_sources: Vec<String>,
}

fn yaml(path: &str, bytes: &[u8], problems: &mut Vec<String>) -> Option<Value> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        problems.push(format!("{path}: is not UTF-8 text"));
        return None;
    };
    match serde_norway::from_str::<Value>(text) {
        Ok(v) => Some(v),
        Err(e) => {
            problems.push(format!("{path}: is not valid YAML: {e}"));
            None
        }
    }
}

/// The files a manifest names under `infrastructure.templates[].file` (`*` means every file).
fn manifest_files(path: &str, doc: &Value, problems: &mut Vec<String>) -> Vec<String> {
    let templates = doc
        .get("infrastructure")
        .and_then(|i| i.get("templates"))
        .and_then(Value::as_sequence);
    let Some(templates) = templates else {
        problems.push(format!("{path}: must list infrastructure.templates"));
        return Vec::new();
    };
    templates
        .iter()
        .filter_map(|t| t.get("file").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// A YAML value as its author wrote it, on one line and cut short (for messages).
fn shown(value: &Value) -> String {
    let text = serde_norway::to_string(value).unwrap_or_default();
    let line = text.trim().replace('\n', " ");
    if line.chars().count() > 100 {
        format!("{}…", line.chars().take(100).collect::<String>())
    } else {
        format!("'{line}'")
    }
}

/// Checks a bundle (paths relative to `v<major>/`).
pub fn check_bundle(
    family: Family,
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<Bundle, Vec<String>> {
    let mut problems = Vec::new();
    let total: usize = files.values().map(Vec::len).sum();
    if total > MAX_BUNDLE_BYTES {
        problems.push(format!(
            "the bundle is {total} bytes; at most {MAX_BUNDLE_BYTES} are allowed"
        ));
    }
    let infrastructure = match family {
        Family::Environment => "infrastructure",
        Family::Service => "instance_infrastructure",
    };
    let input_type = match family {
        Family::Environment => "environment_input_type",
        Family::Service => "service_input_type",
    };
    let mut template_files = 0;
    for (path, bytes) in files {
        let is_meta = path.ends_with("manifest.yaml") || path == "schema/schema.yaml";
        let limit = if is_meta {
            MAX_MANIFEST_OR_SCHEMA_BYTES
        } else {
            MAX_OTHER_FILE_BYTES
        };
        if bytes.len() > limit {
            problems.push(format!(
                "{path}: {} bytes; at most {limit} are allowed",
                bytes.len()
            ));
        }
        if !is_meta
            && (path.starts_with(&format!("{infrastructure}/"))
                || path.starts_with("pipeline_infrastructure/"))
        {
            template_files += 1;
        }
    }
    if template_files > MAX_TEMPLATE_FILES {
        problems.push(format!(
            "{template_files} template files; at most {MAX_TEMPLATE_FILES} are allowed"
        ));
    }
    let schema_text = match files.get("schema/schema.yaml") {
        None => {
            problems.push("schema/schema.yaml: missing; every bundle needs a schema".into());
            None
        }
        Some(bytes) => {
            if let Some(doc) = yaml("schema/schema.yaml", bytes, &mut problems) {
                let schema = doc.get("schema");
                let named = schema
                    .and_then(|s| s.get(input_type))
                    .and_then(Value::as_str);
                match named {
                    None => {
                        problems.push(format!("schema/schema.yaml: must name schema.{input_type}"))
                    }
                    Some(name) => {
                        let ty = schema
                            .and_then(|s| s.get("types"))
                            .and_then(|t| t.get(name));
                        if ty.and_then(|t| t.get("type")).and_then(Value::as_str) != Some("object")
                        {
                            problems.push(format!("schema/schema.yaml: schema.types.{name} must be an object schema (type: object)"));
                        }
                    }
                }
            }
            Some(String::from_utf8_lossy(bytes).into_owned())
        }
    };
    for dir in [infrastructure, "pipeline_infrastructure"] {
        let manifest = format!("{dir}/manifest.yaml");
        match files.get(&manifest) {
            None if dir == infrastructure => problems.push(format!("{manifest}: missing")),
            None => {}
            Some(bytes) => {
                if let Some(doc) = yaml(&manifest, bytes, &mut problems) {
                    for file in manifest_files(&manifest, &doc, &mut problems) {
                        if file != "*" && !files.contains_key(&format!("{dir}/{file}")) {
                            problems
                                .push(format!("{manifest}: names {file}, which is not in {dir}/"));
                        }
                    }
                }
            }
        }
    }
    let contexts = schema_text
        .as_deref()
        .map(|schema| StandIns::new(family, schema));
    for (path, bytes) in files {
        let dir = path.split('/').next().unwrap_or_default();
        let is_template = (dir == infrastructure || dir == "pipeline_infrastructure")
            && !path.ends_with("manifest.yaml");
        if is_template {
            // Checked only once the schema can be read: the stand-ins come from it.
            if let Some(contexts) = &contexts {
                check_template(path, bytes, contexts.for_dir(dir), &mut problems);
            }
        } else if (path.ends_with(".yaml") || path.ends_with(".yml"))
            && !path.ends_with("manifest.yaml")
            && path != "schema/schema.yaml"
            && path != ".template-registration.yaml"
        {
            yaml(path, bytes, &mut problems);
        }
    }
    let mut compatible_environments = Vec::new();
    let mut supported_component_sources = Vec::new();
    if family == Family::Service {
        match files.get(".template-registration.yaml") {
            None if files.contains_key(".compatible-envs") => {
                let text = String::from_utf8_lossy(&files[".compatible-envs"]);
                for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                    match line.split_once(':') {
                        Some((name, major)) if !name.is_empty() && major.parse::<u64>().is_ok() => {
                            compatible_environments.push((name.to_string(), major.to_string()))
                        }
                        _ => problems.push(format!(
                            ".compatible-envs: line '{}' must be <environment template>:<major>",
                            line.chars().take(100).collect::<String>()
                        )),
                    }
                }
                if compatible_environments.is_empty() && problems.is_empty() {
                    problems.push(".compatible-envs: must list at least one <template>:<major>".into());
                }
            }
            None => problems.push(".template-registration.yaml: missing; service templates must list compatible_environments (or .compatible-envs)".into()),
            Some(bytes) => {
                if let Some(doc) = yaml(".template-registration.yaml", bytes, &mut problems) {
                    match doc.get("compatible_environments").and_then(Value::as_sequence) {
                        Some(list) if !list.is_empty() => {
                            for item in list {
                                match item.as_str().and_then(|s| s.split_once(':')) {
                                    Some((name, major)) if !name.is_empty() && major.parse::<u64>().is_ok() => {
                                        compatible_environments.push((name.to_string(), major.to_string()))
                                    }
                                    _ => problems.push(format!(
                                        ".template-registration.yaml: compatible_environments entry {} must be <environment template>:<major>",
                                        shown(item)
                                    )),
                                }
                            }
                        }
                        _ => problems.push(".template-registration.yaml: compatible_environments must list at least one <template>:<major>".into()),
                    }
                    if let Some(list) = doc.get("supported_component_sources").and_then(Value::as_sequence) {
                        for item in list {
                            match item.as_str() {
                                Some("DIRECTLY_DEFINED") => supported_component_sources.push("DIRECTLY_DEFINED".to_string()),
                                _ => problems.push(format!(
                                    ".template-registration.yaml: supported_component_sources may only hold DIRECTLY_DEFINED, not {}",
                                    shown(item)
                                )),
                            }
                        }
                    }
                }
            }
        }
    }
    match (problems.is_empty(), schema_text) {
        (true, Some(schema)) => Ok(Bundle {
            schema,
            compatible_environments,
            supported_component_sources,
        }),
        _ => Err(problems),
    }
}

/// Renders the templates one directory of a bundle (`infrastructure`, `instance_infrastructure`,
/// `pipeline_infrastructure`) holds, in the order its manifest names them (`*`: every file but the
/// manifest): each file's path and text. Every file that fails is a problem naming it.
pub fn render_dir(
    files: &BTreeMap<String, Vec<u8>>,
    dir: &str,
    context: &serde_json::Value,
    mode: crate::render::Mode,
) -> Result<Vec<(String, String)>, Vec<String>> {
    let mut problems = Vec::new();
    let manifest = format!("{dir}/manifest.yaml");
    let Some(doc) = files
        .get(&manifest)
        .and_then(|bytes| yaml(&manifest, bytes, &mut problems))
    else {
        problems.push(format!("{manifest}: missing"));
        return Err(problems);
    };
    let named = manifest_files(&manifest, &doc, &mut problems);
    let paths: Vec<String> = if named.iter().any(|f| f == "*") {
        files
            .keys()
            .filter(|p| p.starts_with(&format!("{dir}/")) && **p != manifest)
            .cloned()
            .collect()
    } else {
        named.iter().map(|f| format!("{dir}/{f}")).collect()
    };
    let mut rendered = Vec::new();
    for path in paths {
        let Some(bytes) = files.get(&path) else {
            problems.push(format!(
                "{manifest}: names {path}, which is not in the bundle"
            ));
            continue;
        };
        let Ok(text) = std::str::from_utf8(bytes) else {
            problems.push(format!("{path}: is not UTF-8 text"));
            continue;
        };
        match crate::render::render(&path, text, context, mode) {
            Ok(out) => rendered.push((path, out)),
            Err(e) => problems.push(e.to_string()),
        }
    }
    if problems.is_empty() {
        Ok(rendered)
    } else {
        Err(problems)
    }
}

/// What a bundle's templates are rendered with when it is registered: stand-ins for every
/// input, placeholders for outputs, a one-instance `service_instances` list for a pipeline.
struct StandIns {
    infrastructure: serde_json::Value,
    pipeline: serde_json::Value,
}

impl StandIns {
    fn new(family: Family, schema: &str) -> StandIns {
        use crate::render::{
            PipelineInstance, PipelineService, environment_context, instance_context,
            pipeline_context,
        };
        use crate::spec::{InputKind, Schema};
        let inputs = |kind| {
            Schema::parse(schema, kind)
                .map(|s| s.stand_ins())
                .unwrap_or_else(|_| serde_json::json!({}))
        };
        let nothing = serde_json::json!({});
        match family {
            Family::Environment => StandIns {
                infrastructure: environment_context("environment", &inputs(InputKind::Environment)),
                pipeline: serde_json::Value::Null,
            },
            Family::Service => {
                let instance = inputs(InputKind::ServiceInstance);
                StandIns {
                    infrastructure: instance_context(
                        "service",
                        "instance",
                        &instance,
                        "environment",
                        &nothing,
                        "123456789012",
                    ),
                    pipeline: pipeline_context(
                        &PipelineService {
                            name: "service".into(),
                            branch_name: "main".into(),
                            repository_connection_arn:
                                "arn:aws:codeconnections:us-east-1:123456789012:connection/example"
                                    .into(),
                            repository_id: "owner/repository".into(),
                        },
                        &inputs(InputKind::Pipeline),
                        &[PipelineInstance {
                            name: "instance".into(),
                            inputs: instance,
                            outputs: nothing.clone(),
                            environment: "environment".into(),
                            environment_outputs: nothing.clone(),
                            account_id: "123456789012".into(),
                        }],
                    ),
                }
            }
        }
    }

    fn for_dir(&self, dir: &str) -> &serde_json::Value {
        if dir == "pipeline_infrastructure" {
            &self.pipeline
        } else {
            &self.infrastructure
        }
    }
}

/// An infrastructure file must render with the stand-ins, to YAML.
fn check_template(
    path: &str,
    bytes: &[u8],
    context: &serde_json::Value,
    problems: &mut Vec<String>,
) {
    use crate::render::{Mode, render};
    let Ok(text) = std::str::from_utf8(bytes) else {
        problems.push(format!("{path}: is not UTF-8 text"));
        return;
    };
    match render(path, text, context, Mode::Check) {
        Ok(rendered) => {
            if let Err(e) = serde_norway::from_str::<Value>(&rendered) {
                problems.push(format!(
                    "{path}: renders to text that is not valid YAML: {e}"
                ));
            }
        }
        Err(e) => problems.push(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_bundle() -> BTreeMap<String, Vec<u8>> {
        let mut files = BTreeMap::new();
        files.insert(
            "schema/schema.yaml".into(),
            b"schema:\n  format:\n    openapi: \"3.0.0\"\n  environment_input_type: \"Input\"\n  types:\n    Input:\n      type: object\n".to_vec(),
        );
        files.insert("infrastructure/manifest.yaml".into(), b"infrastructure:\n  templates:\n    - file: cloudformation.yaml\n      rendering_engine: jinja\n      template_language: cloudformation\n".to_vec());
        files.insert(
            "infrastructure/cloudformation.yaml".into(),
            b"Resources: {}\n".to_vec(),
        );
        files
    }

    #[test]
    fn a_complete_environment_bundle_checks() {
        let bundle = check_bundle(Family::Environment, &env_bundle()).unwrap();
        assert!(bundle.schema.contains("environment_input_type"));
        assert!(bundle.compatible_environments.is_empty());
    }

    #[test]
    fn problems_name_the_file_and_rule() {
        let mut files = env_bundle();
        files.remove("infrastructure/cloudformation.yaml");
        files.insert(
            "schema/schema.yaml".into(),
            b"schema:\n  types: {}\n".to_vec(),
        );
        let problems = check_bundle(Family::Environment, &files).unwrap_err();
        assert!(
            problems.contains(
                &"schema/schema.yaml: must name schema.environment_input_type".to_string()
            ),
            "{problems:?}"
        );
        assert!(problems.contains(&"infrastructure/manifest.yaml: names cloudformation.yaml, which is not in infrastructure/".to_string()), "{problems:?}");
        let problems = check_bundle(Family::Environment, &BTreeMap::new()).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("schema/schema.yaml: missing"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("infrastructure/manifest.yaml: missing"))
        );
    }

    /// Proton's samples put Jinja blocks on lines of their own: not YAML before rendering.
    #[test]
    fn infrastructure_files_are_jinja_rendered_with_stand_ins() {
        let mut files = env_bundle();
        files.insert(
            "schema/schema.yaml".into(),
            b"schema:\n  format:\n    openapi: \"3.0.0\"\n  environment_input_type: \"Env\"\n  types:\n    Env:\n      type: object\n      properties:\n        cidr:\n          type: string\n          default: 10.0.0.0/16\n        subnets:\n          type: number\n        public:\n          type: boolean\n      required: [subnets]\n".to_vec(),
        );
        files.insert(
            "infrastructure/cloudformation.yaml".into(),
            b"Resources:\n  Vpc:\n    Type: AWS::EC2::VPC\n    Properties:\n      CidrBlock: {{ environment.inputs.cidr }}\n{% if environment.inputs.public %}\n  Gateway:\n    Type: AWS::EC2::InternetGateway\n{% endif %}\n{% for i in range(environment.inputs.subnets | int) %}\n  Subnet{{ loop.index }}:\n    Type: AWS::EC2::Subnet\n{% endfor %}\n".to_vec(),
        );
        let checked = check_bundle(Family::Environment, &files);
        assert!(checked.is_ok(), "{checked:?}");
        // A typo in an input's name is caught at registration, naming the file and line.
        files.insert(
            "infrastructure/cloudformation.yaml".into(),
            b"Resources:\n  Vpc:\n    Type: AWS::EC2::VPC\n    Properties:\n      CidrBlock: {{ environment.inputs.cdir }}\n".to_vec(),
        );
        let problems = check_bundle(Family::Environment, &files).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("infrastructure/cloudformation.yaml:5: "),
            "{problems:?}"
        );
        // Rendering to something that is not YAML is refused.
        files.insert(
            "infrastructure/cloudformation.yaml".into(),
            b"Resources: [{{ environment.inputs.cidr }}\n".to_vec(),
        );
        let problems = check_bundle(Family::Environment, &files).unwrap_err();
        assert!(
            problems[0].contains("renders to text that is not valid YAML"),
            "{problems:?}"
        );
    }

    #[test]
    fn service_templates_render_instances_and_pipelines_and_may_use_compatible_envs() {
        let mut files = BTreeMap::new();
        files.insert(
            "schema/schema.yaml".into(),
            b"schema:\n  format:\n    openapi: \"3.0.0\"\n  service_input_type: \"Svc\"\n  pipeline_input_type: \"Pipe\"\n  types:\n    Svc:\n      type: object\n      properties:\n        port:\n          type: number\n          default: 80\n    Pipe:\n      type: object\n      properties:\n        unit_test_command:\n          type: string\n      required: [unit_test_command]\n".to_vec(),
        );
        let manifest = b"infrastructure:\n  templates:\n    - file: cloudformation.yaml\n      rendering_engine: jinja\n      template_language: cloudformation\n".to_vec();
        files.insert(
            "instance_infrastructure/manifest.yaml".into(),
            manifest.clone(),
        );
        files.insert(
            "instance_infrastructure/cloudformation.yaml".into(),
            b"Resources:\n  Service:\n    Type: AWS::ECS::Service\n    Properties:\n      Cluster: {{ environment.outputs.ClusterName }}\n      ServiceName: {{ service.name }}-{{ service_instance.name }}-{{ service_instance.inputs.port }}\n".to_vec(),
        );
        files.insert("pipeline_infrastructure/manifest.yaml".into(), manifest);
        files.insert(
            "pipeline_infrastructure/cloudformation.yaml".into(),
            b"Resources:\n  Build:\n    Type: AWS::CodeBuild::Project\n    Properties:\n      Description: \"{{ pipeline.inputs.unit_test_command }}\"\n{% for i in service_instances %}\n  Deploy{{ loop.index }}:\n    Type: AWS::CodeBuild::Project\n    Properties:\n      Name: {{ i.name }}-{{ i.environment.outputs.ClusterName }}\n{% endfor %}\n".to_vec(),
        );
        files.insert(".compatible-envs".into(), b"vpc:1\nnet:2\n".to_vec());
        let bundle = check_bundle(Family::Service, &files).unwrap();
        assert_eq!(
            bundle.compatible_environments,
            [("vpc".into(), "1".into()), ("net".into(), "2".into())]
        );
        files.insert(".compatible-envs".into(), b"vpc\n".to_vec());
        let problems = check_bundle(Family::Service, &files).unwrap_err();
        assert_eq!(
            problems,
            [".compatible-envs: line 'vpc' must be <environment template>:<major>"]
        );
    }

    #[test]
    fn service_bundles_need_their_registration() {
        let mut files = BTreeMap::new();
        files.insert(
            "schema/schema.yaml".into(),
            b"schema:\n  service_input_type: \"S\"\n  types:\n    S:\n      type: object\n"
                .to_vec(),
        );
        files.insert(
            "instance_infrastructure/manifest.yaml".into(),
            b"infrastructure:\n  templates:\n    - file: \"*\"\n".to_vec(),
        );
        let problems = check_bundle(Family::Service, &files).unwrap_err();
        assert!(
            problems[0].starts_with(".template-registration.yaml: missing"),
            "{problems:?}"
        );
        files.insert(".template-registration.yaml".into(), b"compatible_environments:\n  - vpc:1\n  - net:2\nsupported_component_sources:\n  - DIRECTLY_DEFINED\n".to_vec());
        let bundle = check_bundle(Family::Service, &files).unwrap();
        assert_eq!(
            bundle.compatible_environments,
            vec![("vpc".into(), "1".into()), ("net".into(), "2".into())]
        );
        assert_eq!(
            bundle.supported_component_sources,
            vec!["DIRECTLY_DEFINED".to_string()]
        );
        files.insert(
            ".template-registration.yaml".into(),
            b"compatible_environments:\n  - vpc\n".to_vec(),
        );
        // The entry is quoted as written in YAML, not as a Rust debug value.
        assert_eq!(
            check_bundle(Family::Service, &files).unwrap_err(),
            [
                ".template-registration.yaml: compatible_environments entry 'vpc' must be <environment template>:<major>"
            ]
        );
    }

    #[test]
    fn sizes_are_limited() {
        let mut files = env_bundle();
        files.insert(
            "infrastructure/big.json".into(),
            vec![b'x'; MAX_OTHER_FILE_BYTES + 1],
        );
        assert!(
            check_bundle(Family::Environment, &files)
                .unwrap_err()
                .iter()
                .any(|p| p.starts_with("infrastructure/big.json:"))
        );
    }
}
