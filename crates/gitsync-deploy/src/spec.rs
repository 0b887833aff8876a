//! Proton specs: the inputs an environment or a service instance is deployed with, checked
//! against its template version's schema with JSON Schema semantics (types, required, enums,
//! defaults, ranges, lengths, patterns); and the proton-ops file that tells service sync which
//! branch and spec file each instance reads.
//!
//! Every problem names the subject (`instance dev`, `environment prod`), the input and the rule.

use gitsync_model::{DeployedTemplate, Environment, InstanceDeployment, TemplateVersion};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Specs are at most this long (the API's `SpecContents` limit, applied to files from Git too).
pub const MAX_SPEC_BYTES: usize = 51_200;

/// proton-ops files name every synced instance of every service in a repository, so they may be
/// much longer than one spec.
pub const MAX_OPS_FILE_BYTES: usize = 1024 * 1024;

/// How deep schemas may nest (and `$ref`s chain) before we call the schema unusable.
const MAX_DEPTH: usize = 32;

/// The input type of a template version's schema (`schema.<family>_input_type`) and the types
/// it may refer to.
#[derive(Debug, Clone)]
pub struct Schema {
    input_type: String,
    types: Map<String, Value>,
}

/// Which input type of a schema an input is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    Environment,
    ServiceInstance,
    /// A service's pipeline (`schema.pipeline_input_type`).
    Pipeline,
}

impl InputKind {
    fn member(self) -> &'static str {
        match self {
            InputKind::Environment => "environment_input_type",
            InputKind::ServiceInstance => "service_input_type",
            InputKind::Pipeline => "pipeline_input_type",
        }
    }
}

fn parse_yaml(what: &str, text: &str, limit: usize) -> Result<Value, String> {
    if text.len() > limit {
        return Err(format!(
            "{what}: is {} bytes; at most {limit} are allowed",
            text.len()
        ));
    }
    serde_norway::from_str::<Value>(text).map_err(|e| format!("{what}: is not valid YAML: {e}"))
}

impl Schema {
    /// Reads a registered schema file (`schema/schema.yaml` of the bundle).
    pub fn parse(text: &str, kind: InputKind) -> Result<Schema, String> {
        let doc = serde_norway::from_str::<Value>(text)
            .map_err(|e| format!("the template's schema is not valid YAML: {e}"))?;
        let schema = doc
            .get("schema")
            .ok_or("the template's schema has no top-level 'schema' key")?;
        let input_type = schema
            .get(kind.member())
            .and_then(Value::as_str)
            .ok_or_else(|| format!("the template's schema names no schema.{}", kind.member()))?
            .to_string();
        let types = schema
            .get("types")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if !types.contains_key(&input_type) {
            return Err(format!(
                "the template's schema.{} names type {input_type}, which schema.types does not define",
                kind.member()
            ));
        }
        Ok(Schema { input_type, types })
    }

    /// Checks inputs (a mapping, or nothing) and returns them with defaults filled in.
    pub fn check(&self, subject: &str, inputs: Option<&Value>) -> Result<Value, Vec<String>> {
        let empty = Value::Object(Map::new());
        let inputs = match inputs {
            None | Some(Value::Null) => &empty,
            Some(v) => v,
        };
        let mut problems = Vec::new();
        let root = Value::Object(
            [("$ref".to_string(), Value::String(self.input_type.clone()))]
                .into_iter()
                .collect(),
        );
        let checked = self.value(&root, inputs, "", 0, &mut problems);
        if problems.is_empty() {
            Ok(checked)
        } else {
            Err(problems
                .into_iter()
                .map(|p| format!("{subject}: {p}"))
                .collect())
        }
    }

    /// Inputs to render a template with before any resource uses it: every default, and a
    /// stand-in of the right type for each required input without one (the first allowed value,
    /// the minimum, `"example"`, `false`, an empty list or a mapping of its own stand-ins).
    pub fn stand_ins(&self) -> Value {
        let root = Value::Object(
            [("$ref".to_string(), Value::String(self.input_type.clone()))]
                .into_iter()
                .collect(),
        );
        let given = self.stand_in(&root, 0);
        self.check("stand-ins", Some(&given)).unwrap_or(given)
    }

    fn stand_in(&self, schema: &Value, depth: usize) -> Value {
        let Ok(schema) = self.resolve(schema, depth) else {
            return Value::Null;
        };
        if let Some(first) = schema
            .get("enum")
            .and_then(Value::as_array)
            .and_then(|o| o.first())
        {
            return first.clone();
        }
        match schema.get("type").and_then(Value::as_str) {
            Some("string") => Value::String("example".into()),
            Some("number" | "integer") => {
                Value::from(number(schema, "minimum").map_or(1, |m| m.ceil() as i64))
            }
            Some("boolean") => Value::Bool(false),
            Some("array") => Value::Array(Vec::new()),
            _ if depth >= MAX_DEPTH => Value::Object(Map::new()),
            _ => {
                let properties = schema.get("properties").and_then(Value::as_object);
                let required = schema.get("required").and_then(Value::as_array);
                let mut out = Map::new();
                for name in required.into_iter().flatten().filter_map(Value::as_str) {
                    let property = properties.and_then(|p| p.get(name));
                    if property.is_some_and(|p| p.get("default").is_none()) {
                        let value = self.stand_in(property.unwrap_or(&Value::Null), depth + 1);
                        out.insert(name.to_string(), value);
                    }
                }
                Value::Object(out)
            }
        }
    }

    /// `#/types/Name` or a bare type name.
    fn resolve<'s>(&'s self, schema: &'s Value, depth: usize) -> Result<&'s Value, String> {
        match schema.get("$ref").and_then(Value::as_str) {
            None => Ok(schema),
            Some(_) if depth > MAX_DEPTH => {
                Err("the template's schema nests $ref too deeply".into())
            }
            Some(r) => {
                let name = r.strip_prefix("#/types/").unwrap_or(r);
                let target = self.types.get(name).ok_or_else(|| {
                    format!("the template's schema refers to type {name}, which it does not define")
                })?;
                self.resolve(target, depth + 1)
            }
        }
    }

    fn value(
        &self,
        schema: &Value,
        value: &Value,
        path: &str,
        depth: usize,
        problems: &mut Vec<String>,
    ) -> Value {
        let schema = match self.resolve(schema, depth) {
            Ok(s) => s,
            Err(p) => {
                problems.push(p);
                return value.clone();
            }
        };
        let at = |rule: String| {
            if path.is_empty() {
                format!("inputs {rule}")
            } else {
                format!("input '{path}' {rule}")
            }
        };
        let before = problems.len();
        if let Some(expected) = schema.get("type").and_then(Value::as_str)
            && !has_type(value, expected)
        {
            problems.push(at(format!(
                "must be of type {expected} (got {})",
                describe(value)
            )));
            return value.clone();
        }
        if let Some(options) = schema.get("enum").and_then(Value::as_array)
            && !options.iter().any(|o| same(o, value))
        {
            let listed: Vec<String> = options.iter().map(short).collect();
            problems.push(at(format!(
                "must be one of {} (got {})",
                listed.join(", "),
                short(value)
            )));
        }
        let out = match value {
            Value::Object(map) => self.object(schema, map, path, depth, problems),
            Value::Array(items) => {
                let n = items.len() as f64;
                if let Some(min) = number(schema, "minItems")
                    && n < min
                {
                    problems.push(at(format!("must have at least {min} items (has {n})")));
                }
                if let Some(max) = number(schema, "maxItems")
                    && n > max
                {
                    problems.push(at(format!("must have at most {max} items (has {n})")));
                }
                if schema.get("uniqueItems").and_then(Value::as_bool) == Some(true) {
                    for (i, a) in items.iter().enumerate() {
                        if items[..i].iter().any(|b| same(a, b)) {
                            problems.push(at(format!("must not repeat {}", short(a))));
                            break;
                        }
                    }
                }
                let item_schema = schema.get("items");
                Value::Array(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| match item_schema {
                            Some(s) if depth < MAX_DEPTH => {
                                self.value(s, item, &format!("{path}[{i}]"), depth + 1, problems)
                            }
                            _ => item.clone(),
                        })
                        .collect(),
                )
            }
            Value::String(s) => {
                let n = s.chars().count() as f64;
                if let Some(min) = number(schema, "minLength")
                    && n < min
                {
                    problems.push(at(format!("must be at least {min} characters long")));
                }
                if let Some(max) = number(schema, "maxLength")
                    && n > max
                {
                    problems.push(at(format!("must be at most {max} characters long")));
                }
                if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
                    match regex::Regex::new(pattern) {
                        Ok(re) if !re.is_match(s) => {
                            problems.push(at(format!("must match the pattern {pattern}")))
                        }
                        Ok(_) => {}
                        Err(_) => problems.push(at(format!(
                            "cannot be checked: the schema's pattern {pattern} is not a valid regular expression"
                        ))),
                    }
                }
                value.clone()
            }
            Value::Number(_) => {
                let v = value.as_f64().unwrap_or(0.0);
                // OpenAPI 3.0 spells exclusive bounds as booleans beside minimum/maximum; JSON
                // Schema 2019+ as numbers. Both are understood.
                let exclusive = |key: &str| schema.get(key).and_then(Value::as_bool) == Some(true);
                if let Some(min) = number(schema, "minimum") {
                    if exclusive("exclusiveMinimum") && v <= min {
                        problems.push(at(format!("must be greater than {min} (got {value})")));
                    } else if v < min {
                        problems.push(at(format!("must be at least {min} (got {value})")));
                    }
                }
                if let Some(max) = number(schema, "maximum") {
                    if exclusive("exclusiveMaximum") && v >= max {
                        problems.push(at(format!("must be less than {max} (got {value})")));
                    } else if v > max {
                        problems.push(at(format!("must be at most {max} (got {value})")));
                    }
                }
                if let Some(min) = number(schema, "exclusiveMinimum")
                    && v <= min
                {
                    problems.push(at(format!("must be greater than {min} (got {value})")));
                }
                if let Some(max) = number(schema, "exclusiveMaximum")
                    && v >= max
                {
                    problems.push(at(format!("must be less than {max} (got {value})")));
                }
                value.clone()
            }
            _ => value.clone(),
        };
        if problems.len() > before {
            value.clone()
        } else {
            out
        }
    }

    fn object(
        &self,
        schema: &Value,
        map: &Map<String, Value>,
        path: &str,
        depth: usize,
        problems: &mut Vec<String>,
    ) -> Value {
        let child = |name: &str| {
            if path.is_empty() {
                name.to_string()
            } else {
                format!("{path}.{name}")
            }
        };
        let empty = Map::new();
        let properties = schema
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let mut out = Map::new();
        for (name, value) in map {
            match properties.get(name) {
                Some(s) if depth < MAX_DEPTH => {
                    let checked = self.value(s, value, &child(name), depth + 1, problems);
                    out.insert(name.clone(), checked);
                }
                Some(_) => {
                    out.insert(name.clone(), value.clone());
                }
                None => {
                    if schema.get("additionalProperties") == Some(&Value::Bool(false)) {
                        let declared: Vec<&str> = properties.keys().map(String::as_str).collect();
                        problems.push(format!(
                            "input '{}' is not declared by the template (it declares: {})",
                            child(name),
                            if declared.is_empty() {
                                "nothing".to_string()
                            } else {
                                declared.join(", ")
                            }
                        ));
                    }
                    out.insert(name.clone(), value.clone());
                }
            }
        }
        for (name, property) in properties {
            if out.contains_key(name) {
                continue;
            }
            let default = self
                .resolve(property, depth)
                .ok()
                .and_then(|p| p.get("default"));
            if let Some(default) = default {
                out.insert(name.clone(), default.clone());
            }
        }
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !out.contains_key(name) {
                problems.push(format!("input '{}' is required", child(name)));
            }
        }
        Value::Object(out)
    }
}

fn number(schema: &Value, key: &str) -> Option<f64> {
    schema.get(key).and_then(Value::as_f64)
}

fn has_type(value: &Value, expected: &str) -> bool {
    match expected {
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => {
            value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        "null" => value.is_null(),
        _ => true,
    }
}

/// Equality as JSON Schema sees it: 1 and 1.0 are the same number.
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_number() && b.is_number() => x == y,
        _ => a == b,
    }
}

fn describe(value: &Value) -> String {
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    match value {
        Value::Array(_) | Value::Object(_) | Value::Null => kind.to_string(),
        other => format!("{kind} {}", short(other)),
    }
}

fn short(value: &Value) -> String {
    let s = value.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

/// One instance of a service spec (`instances:` entry).
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceSpec {
    pub name: String,
    pub environment: String,
    pub inputs: Option<Value>,
}

/// A service spec: `proton: ServiceSpec`, optional `pipeline`, and `instances`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    pub pipeline: Option<Value>,
    pub instances: Vec<InstanceSpec>,
}

fn check_proton_key(what: &str, doc: &Value, expected: &str) -> Result<(), String> {
    match doc.get("proton") {
        None => Ok(()),
        Some(Value::String(s)) if s == expected => Ok(()),
        Some(other) => Err(format!(
            "{what}: 'proton' must be {expected} (got {})",
            short(other)
        )),
    }
}

impl ServiceSpec {
    /// Reads a service spec; `what` names it in problems (`the spec`, `services/api/spec.yaml`).
    pub fn parse(what: &str, text: &str) -> Result<ServiceSpec, String> {
        let doc = parse_yaml(what, text, MAX_SPEC_BYTES)?;
        if !doc.is_object() {
            return Err(format!(
                "{what}: must be a mapping with 'proton: ServiceSpec' and 'instances'"
            ));
        }
        check_proton_key(what, &doc, "ServiceSpec")?;
        let mut instances = Vec::new();
        match doc.get("instances") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let field = |key: &str| {
                        item.get(key)
                            .and_then(Value::as_str)
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .ok_or_else(|| {
                                format!(
                                    "{what}: instances[{i}].{key} is required and must be a string"
                                )
                            })
                    };
                    let name = field("name")?;
                    if instances.iter().any(|x: &InstanceSpec| x.name == name) {
                        return Err(format!("{what}: instance {name} is listed twice"));
                    }
                    let inputs = item.get("spec").cloned();
                    if let Some(v) = &inputs
                        && !(v.is_object() || v.is_null())
                    {
                        return Err(format!(
                            "{what}: instances[{i}].spec must be a mapping of inputs"
                        ));
                    }
                    instances.push(InstanceSpec {
                        environment: field("environment")?,
                        name,
                        inputs,
                    });
                }
            }
            Some(_) => return Err(format!("{what}: 'instances' must be a list")),
        }
        Ok(ServiceSpec {
            pipeline: doc.get("pipeline").cloned(),
            instances,
        })
    }

    pub fn instance(&self, name: &str) -> Option<&InstanceSpec> {
        self.instances.iter().find(|i| i.name == name)
    }

    /// What an instance's entry says, as canonical JSON: service sync compares it between
    /// commits, so a change to one instance of a shared spec file moves only that instance.
    pub fn fingerprint(&self, name: &str) -> Option<String> {
        let i = self.instance(name)?;
        Some(
            serde_json::json!({ "name": i.name, "environment": i.environment, "spec": i.inputs })
                .to_string(),
        )
    }

    /// The spec text an instance is stored with: its own entry, inputs with defaults filled.
    pub fn instance_text(instance: &InstanceSpec, inputs: &Value) -> String {
        let doc = serde_json::json!({
            "proton": "ServiceSpec",
            "instances": [{ "name": instance.name, "environment": instance.environment, "spec": inputs }],
        });
        serde_norway::to_string(&doc).unwrap_or_default()
    }
}

/// Plans the deployment of one instance of a service spec with a service template version into
/// an environment: its inputs are checked against the version's schema (defaults filled in), the
/// environment's template against the version's compatible environments. The API and service
/// sync both deploy through this one rule set.
pub fn plan_instance(
    instance: &InstanceSpec,
    version: &TemplateVersion,
    environment: &Environment,
    client_token: Option<&str>,
    source_commit: Option<&str>,
) -> Result<InstanceDeployment, Vec<String>> {
    let subject = format!("instance {}", instance.name);
    let label = format!(
        "{} {}.{}",
        version.template_name, version.major, version.minor
    );
    let schema = version
        .schema
        .as_deref()
        .ok_or_else(|| vec![format!("{subject}: service template {label} has no schema")])?;
    let schema = Schema::parse(schema, InputKind::ServiceInstance)
        .map_err(|e| vec![format!("{subject}: {e}")])?;
    let inputs = schema.check(&subject, instance.inputs.as_ref())?;
    let (env_template, env_major) = (&environment.template.name, environment.template.major);
    let compatible = &version.compatible_environments;
    if !compatible.is_empty()
        && !compatible
            .iter()
            .any(|(t, m)| t == env_template && *m == env_major.to_string())
    {
        let listed: Vec<String> = compatible.iter().map(|(t, m)| format!("{t}:{m}")).collect();
        return Err(vec![format!(
            "{subject}: environment {} uses environment template {env_template}:{env_major}, which service template {label} \
             is not compatible with (compatible: {})",
            instance.environment,
            listed.join(", ")
        )]);
    }
    Ok(InstanceDeployment {
        environment_name: instance.environment.clone(),
        template: DeployedTemplate {
            name: version.template_name.clone(),
            major: version.major,
            minor: version.minor,
        },
        spec: ServiceSpec::instance_text(instance, &inputs),
        client_token: client_token.map(str::to_string),
        source_commit: source_commit.map(str::to_string),
    })
}

/// An environment spec: `proton: EnvironmentSpec` and `spec` (the inputs).
pub fn environment_inputs(text: &str) -> Result<Option<Value>, String> {
    let doc = parse_yaml("the spec", text, MAX_SPEC_BYTES)?;
    if !(doc.is_object() || doc.is_null()) {
        return Err("the spec: must be a mapping with 'proton: EnvironmentSpec' and 'spec'".into());
    }
    check_proton_key("the spec", &doc, "EnvironmentSpec")?;
    match doc.get("spec") {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
        Some(_) => Err("the spec: 'spec' must be a mapping of inputs".into()),
    }
}

/// An environment's inputs as its templates see them: its spec's (none: an empty spec) checked
/// against the template version's schema, defaults filled in.
pub fn checked_environment_inputs(
    schema: &str,
    environment: &str,
    spec: Option<&str>,
) -> Result<Value, Vec<String>> {
    let inputs = match spec {
        Some(text) => environment_inputs(text).map_err(|e| vec![e])?,
        None => None,
    };
    Schema::parse(schema, InputKind::Environment)
        .map_err(|e| vec![e])?
        .check(&format!("environment {environment}"), inputs.as_ref())
}

/// A service pipeline's inputs: the spec's `pipeline` section checked against the schema's
/// `pipeline_input_type`, defaults filled in. A schema that names no pipeline type takes the
/// section as it is (or no inputs).
pub fn pipeline_inputs(schema: &str, spec: &ServiceSpec) -> Result<Value, Vec<String>> {
    let names_pipeline = serde_norway::from_str::<Value>(schema)
        .ok()
        .and_then(|doc| {
            doc.get("schema")?
                .get(InputKind::Pipeline.member())
                .cloned()
        })
        .is_some();
    if !names_pipeline {
        return Ok(spec
            .pipeline
            .clone()
            .filter(|v| !v.is_null())
            .unwrap_or_else(|| Value::Object(Map::new())));
    }
    Schema::parse(schema, InputKind::Pipeline)
        .map_err(|e| vec![e])?
        .check("pipeline", spec.pipeline.as_ref())
}

/// Where one synced instance reads its spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpsEntry {
    pub branch: String,
    pub spec: String,
}

/// The proton-ops file: `sync.services.<service>.<instance>: {branch, spec}`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OpsFile {
    pub services: BTreeMap<String, BTreeMap<String, OpsEntry>>,
}

impl OpsFile {
    pub fn parse(path: &str, text: &str) -> Result<OpsFile, Vec<String>> {
        let doc = parse_yaml(path, text, MAX_OPS_FILE_BYTES).map_err(|e| vec![e])?;
        let services = doc
            .get("sync")
            .and_then(|s| s.get("services"))
            .and_then(Value::as_object)
            .ok_or_else(|| vec![format!("{path}: must hold a mapping at sync.services")])?;
        let mut problems = Vec::new();
        let mut out = BTreeMap::new();
        for (service, instances) in services {
            let Some(instances) = instances.as_object() else {
                problems.push(format!(
                    "{path}: sync.services.{service} must map instance names to {{branch, spec}}"
                ));
                continue;
            };
            let mut entries = BTreeMap::new();
            for (instance, entry) in instances {
                let field = |key: &str| {
                    entry
                        .get(key)
                        .and_then(Value::as_str)
                        .map(|s| s.trim().trim_start_matches("./").to_string())
                        .filter(|s| !s.is_empty())
                };
                match (field("branch"), field("spec")) {
                    (Some(branch), Some(spec)) => {
                        entries.insert(instance.clone(), OpsEntry { branch, spec });
                    }
                    (branch, _) => problems.push(format!(
                        "{path}: sync.services.{service}.{instance}.{} is required",
                        if branch.is_none() { "branch" } else { "spec" }
                    )),
                }
            }
            out.insert(service.clone(), entries);
        }
        if problems.is_empty() {
            Ok(OpsFile { services: out })
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SCHEMA: &str = r##"
schema:
  format:
    openapi: "3.0.0"
  service_input_type: "ServiceInput"
  environment_input_type: "EnvInput"
  types:
    EnvInput:
      type: object
      properties:
        cidr: { type: string, pattern: "^10\\." }
      required: [cidr]
    ServiceInput:
      type: object
      properties:
        port: { type: number, default: 80, minimum: 1, maximum: 65535 }
        size: { type: string, enum: [small, large], default: small }
        replicas: { type: integer, minimum: 1 }
        name: { type: string, minLength: 1, maxLength: 5 }
        tags: { type: array, items: { type: string }, maxItems: 2 }
        nested: { $ref: "#/types/Nested" }
      required: [replicas]
    Nested:
      type: object
      properties:
        on: { type: boolean }
"##;

    fn service() -> Schema {
        Schema::parse(SCHEMA, InputKind::ServiceInstance).unwrap()
    }

    #[test]
    fn defaults_are_filled_and_valid_inputs_pass() {
        let out = service()
            .check("instance dev", Some(&json!({"replicas": 2})))
            .unwrap();
        assert_eq!(out, json!({"replicas": 2, "port": 80, "size": "small"}));
        let env = Schema::parse(SCHEMA, InputKind::Environment).unwrap();
        assert!(
            env.check("environment e", Some(&json!({"cidr": "10.0.0.0/16"})))
                .is_ok()
        );
        assert_eq!(
            env.check("environment e", Some(&json!({"cidr": "192.168.0.0/16"})))
                .unwrap_err(),
            vec!["environment e: input 'cidr' must match the pattern ^10\\.".to_string()]
        );
    }

    #[test]
    fn every_rule_names_the_subject_the_input_and_the_rule() {
        let s = service();
        let err = |v: Value| s.check("instance dev", Some(&v)).unwrap_err().join("; ");
        assert_eq!(err(json!({})), "instance dev: input 'replicas' is required");
        assert_eq!(
            err(json!({"replicas": 1, "port": 70000})),
            "instance dev: input 'port' must be at most 65535 (got 70000)"
        );
        assert_eq!(
            err(json!({"replicas": 1, "port": "80"})),
            "instance dev: input 'port' must be of type number (got string \"80\")"
        );
        assert_eq!(
            err(json!({"replicas": 1.5})),
            "instance dev: input 'replicas' must be of type integer (got number 1.5)"
        );
        assert_eq!(
            err(json!({"replicas": 1, "size": "huge"})),
            "instance dev: input 'size' must be one of \"small\", \"large\" (got \"huge\")"
        );
        assert_eq!(
            err(json!({"replicas": 1, "name": "toolong"})),
            "instance dev: input 'name' must be at most 5 characters long"
        );
        assert_eq!(
            err(json!({"replicas": 1, "tags": ["a", 1]})),
            "instance dev: input 'tags[1]' must be of type string (got number 1)"
        );
        assert_eq!(
            err(json!({"replicas": 1, "nested": {"on": "yes"}})),
            "instance dev: input 'nested.on' must be of type boolean (got string \"yes\")"
        );
        assert_eq!(
            err(json!(["x"])),
            "instance dev: inputs must be of type object (got array)"
        );
        // Integers written as 2.0 are integers; 1 equals 1.0 in enums.
        assert!(s.check("i", Some(&json!({"replicas": 2.0}))).is_ok());
    }

    #[test]
    fn schemas_without_the_input_type_are_refused() {
        let e = Schema::parse(
            "schema: {service_input_type: X, types: {}}",
            InputKind::ServiceInstance,
        )
        .unwrap_err();
        assert!(e.contains("type X"), "{e}");
        let e = Schema::parse("schema: {types: {}}", InputKind::Environment).unwrap_err();
        assert!(e.contains("environment_input_type"), "{e}");
    }

    #[test]
    fn service_specs_and_environment_specs_are_read() {
        let spec = ServiceSpec::parse(
            "spec.yaml",
            "proton: ServiceSpec\ninstances:\n  - name: dev\n    environment: staging\n    spec:\n      replicas: 1\n  - name: prod\n    environment: production\n",
        )
        .unwrap();
        assert_eq!(spec.instances.len(), 2);
        assert_eq!(
            spec.instance("dev").unwrap().inputs,
            Some(json!({"replicas": 1}))
        );
        assert_eq!(spec.instance("prod").unwrap().environment, "production");
        let e = ServiceSpec::parse("spec.yaml", "proton: EnvironmentSpec\n").unwrap_err();
        assert!(e.contains("'proton' must be ServiceSpec"), "{e}");
        let e = ServiceSpec::parse("spec.yaml", "instances:\n  - name: a\n").unwrap_err();
        assert_eq!(
            e,
            "spec.yaml: instances[0].environment is required and must be a string"
        );
        let e = ServiceSpec::parse(
            "spec.yaml",
            "instances: [{name: a, environment: e}, {name: a, environment: e}]",
        )
        .unwrap_err();
        assert!(e.contains("listed twice"), "{e}");
        assert_eq!(
            environment_inputs("proton: EnvironmentSpec\nspec:\n  cidr: 10.0.0.0/8\n").unwrap(),
            Some(json!({"cidr": "10.0.0.0/8"}))
        );
        assert!(environment_inputs("spec: [1]").is_err());
        assert!(ServiceSpec::parse("s", &"x".repeat(MAX_SPEC_BYTES + 1)).is_err());
    }

    #[test]
    fn ops_files_map_instances_to_branches_and_specs() {
        let ops = OpsFile::parse(
            "proton-ops.yaml",
            "sync:\n  services:\n    api:\n      dev:\n        branch: dev\n        spec: ./spec/dev.yaml\n      prod:\n        branch: main\n        spec: spec/prod.yaml\n",
        )
        .unwrap();
        assert_eq!(
            ops.services["api"]["dev"],
            OpsEntry {
                branch: "dev".into(),
                spec: "spec/dev.yaml".into()
            }
        );
        assert_eq!(ops.services["api"]["prod"].branch, "main");
        let e = OpsFile::parse(
            "ops.yaml",
            "sync:\n  services:\n    api:\n      dev: {spec: s.yaml}\n",
        )
        .unwrap_err();
        assert_eq!(
            e,
            vec!["ops.yaml: sync.services.api.dev.branch is required".to_string()]
        );
        let big = format!(
            "sync:\n  services:\n    api:\n{}",
            (0..1000)
                .map(|i| format!(
                    "      i{i:04}:\n        branch: main\n        spec: specs/i{i:04}.yaml\n"
                ))
                .collect::<String>()
        );
        assert!(big.len() > MAX_SPEC_BYTES);
        assert_eq!(
            OpsFile::parse("ops.yaml", &big).unwrap().services["api"].len(),
            1000
        );
        let e = OpsFile::parse("ops.yaml", "services: {}").unwrap_err();
        assert_eq!(
            e,
            vec!["ops.yaml: must hold a mapping at sync.services".to_string()]
        );
    }
}
