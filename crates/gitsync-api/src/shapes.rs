//! The service models as data: every operation's input and output shape, and the constraints
//! (required, length, range, pattern, enum) each request is checked against.
//!
//! The models are the stripped botocore files in `models/`, embedded at build time. Checking
//! requests against them, rather than against hand-written rules, keeps gitsync's validation
//! exactly the contract real clients were generated from.

use regex::Regex;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::LazyLock;

#[derive(Debug)]
pub enum Shape {
    Structure {
        members: Vec<(String, String)>,
        required: Vec<String>,
    },
    String {
        min: Option<u64>,
        max: Option<u64>,
        pattern: Option<(String, Regex)>,
        values: Option<Vec<String>>,
        sensitive: bool,
    },
    Integer {
        min: Option<i64>,
        max: Option<i64>,
    },
    Boolean,
    Double,
    Timestamp,
    List {
        member: String,
        min: Option<u64>,
        max: Option<u64>,
    },
    Map {
        key: String,
        value: String,
        min: Option<u64>,
        max: Option<u64>,
    },
}

#[derive(Debug)]
pub struct Operation {
    pub input: Option<String>,
    pub output: Option<String>,
}

/// One service's model.
#[derive(Debug)]
pub struct ServiceModel {
    pub target_prefix: String,
    pub signing_name: String,
    pub operations: HashMap<String, Operation>,
    pub shapes: HashMap<String, Shape>,
}

pub static PROTON: LazyLock<ServiceModel> =
    LazyLock::new(|| ServiceModel::load(include_str!("../models/proton.json")));
pub static CODECONNECTIONS: LazyLock<ServiceModel> =
    LazyLock::new(|| ServiceModel::load(include_str!("../models/codeconnections.json")));
pub static CODESTAR_CONNECTIONS: LazyLock<ServiceModel> =
    LazyLock::new(|| ServiceModel::load(include_str!("../models/codestar-connections.json")));

impl ServiceModel {
    /// Parses an embedded model. The models are committed and tested, so a malformed one is a
    /// build defect, not a runtime condition.
    fn load(text: &str) -> ServiceModel {
        let doc: Value = serde_json::from_str(text).expect("embedded model is JSON");
        let shapes = doc["shapes"]
            .as_object()
            .expect("model has shapes")
            .iter()
            .map(|(name, s)| (name.clone(), parse_shape(s)))
            .collect();
        let operations = doc["operations"]
            .as_object()
            .expect("model has operations")
            .iter()
            .map(|(name, op)| {
                let shape = |k: &str| {
                    op.get(k)
                        .and_then(|v| v["shape"].as_str())
                        .map(str::to_string)
                };
                (
                    name.clone(),
                    Operation {
                        input: shape("input"),
                        output: shape("output"),
                    },
                )
            })
            .collect();
        ServiceModel {
            target_prefix: doc["metadata"]["targetPrefix"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            signing_name: doc["metadata"]["signingName"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            operations,
            shapes,
        }
    }

    pub fn shape(&self, name: &str) -> Option<&Shape> {
        self.shapes.get(name)
    }
}

fn parse_shape(s: &Value) -> Shape {
    let u = |k: &str| s.get(k).and_then(Value::as_u64);
    let i = |k: &str| s.get(k).and_then(Value::as_i64);
    let target = |k: &str| s[k]["shape"].as_str().unwrap_or_default().to_string();
    match s["type"].as_str().unwrap_or_default() {
        "structure" => Shape::Structure {
            members: s["members"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                v["shape"].as_str().unwrap_or_default().to_string(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
            required: s["required"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        },
        "string" => Shape::String {
            min: u("min"),
            max: u("max"),
            pattern: s["pattern"]
                .as_str()
                .map(|p| (p.to_string(), compile_pattern(p))),
            values: s["enum"].as_array().map(|e| {
                e.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            }),
            sensitive: s["sensitive"].as_bool().unwrap_or(false),
        },
        "integer" | "long" => Shape::Integer {
            min: i("min"),
            max: i("max"),
        },
        "boolean" => Shape::Boolean,
        "double" | "float" => Shape::Double,
        "timestamp" => Shape::Timestamp,
        "list" => Shape::List {
            member: target("member"),
            min: u("min"),
            max: u("max"),
        },
        "map" => Shape::Map {
            key: target("key"),
            value: target("value"),
            min: u("min"),
            max: u("max"),
        },
        other => panic!("model shape type {other} is not supported"),
    }
}

/// Compiles a model pattern with Java's (and so AWS's) meaning of `\w` and `\d`: ASCII only.
/// Unicode classes would also blow up bounded repeats such as `[\w+=,.@-]{1,512}`.
fn compile_pattern(pattern: &str) -> Regex {
    let ascii = pattern
        .replace("\\w", "[0-9A-Za-z_]")
        .replace("\\d", "[0-9]");
    regex::RegexBuilder::new(&ascii)
        .size_limit(64 << 20)
        .build()
        .unwrap_or_else(|e| panic!("model pattern {pattern} does not compile: {e}"))
}

/// A request that does not fit its input shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// A member of the wrong JSON/CBOR type: the body cannot be read as the operation's input.
    Type(String),
    /// Constraint violations, each naming the member and the rule, AWS-style.
    Constraints(Vec<String>),
}

impl Invalid {
    pub fn message(&self) -> String {
        match self {
            Invalid::Type(m) => m.clone(),
            Invalid::Constraints(v) if v.len() == 1 => {
                format!("1 validation error detected: {}", v[0])
            }
            Invalid::Constraints(v) => {
                format!("{} validation errors detected: {}", v.len(), v.join("; "))
            }
        }
    }
}

impl ServiceModel {
    /// Checks `input` against the input shape of `operation`.
    pub fn validate(&self, shape: &str, input: &Value) -> Result<(), Invalid> {
        let mut violations = Vec::new();
        self.check(shape, input, "", &mut violations)?;
        if violations.is_empty() {
            Ok(())
        } else {
            Err(Invalid::Constraints(violations))
        }
    }

    fn check(
        &self,
        name: &str,
        value: &Value,
        path: &str,
        out: &mut Vec<String>,
    ) -> Result<(), Invalid> {
        let Some(shape) = self.shape(name) else {
            return Ok(());
        };
        let at = |p: &str| {
            if p.is_empty() {
                "the request".to_string()
            } else {
                format!("'{p}'")
            }
        };
        let wrong = |expected: &str| {
            Invalid::Type(format!(
                "Expected {expected} at {}, got {}",
                at(path),
                kind(value)
            ))
        };
        match shape {
            Shape::Structure { members, required } => {
                let object = value.as_object().ok_or_else(|| wrong("an object"))?;
                for (member, target) in members {
                    // AWS's front end names members in lower camel case whatever the model's
                    // spelling (`connectionName` for CodeConnections' `ConnectionName`).
                    let member_name = lower_camel(member);
                    let child = if path.is_empty() {
                        member_name
                    } else {
                        format!("{path}.{member_name}")
                    };
                    match object.get(member) {
                        None | Some(Value::Null) => {
                            if required.contains(member) {
                                out.push(format!("Value null at '{child}' failed to satisfy constraint: Member must not be null"));
                            }
                        }
                        Some(v) => self.check(target, v, &child, out)?,
                    }
                }
            }
            Shape::String {
                min,
                max,
                pattern,
                values,
                sensitive,
            } => {
                let s = value.as_str().ok_or_else(|| wrong("a string"))?;
                let shown = if *sensitive || s.chars().count() > 128 {
                    String::new()
                } else {
                    format!("'{s}' ")
                };
                let len = s.chars().count() as u64;
                if let Some(min) = min
                    && len < *min
                {
                    out.push(format!("Value {shown}at '{path}' failed to satisfy constraint: Member must have length greater than or equal to {min}"));
                }
                if let Some(max) = max
                    && len > *max
                {
                    out.push(format!("Value {shown}at '{path}' failed to satisfy constraint: Member must have length less than or equal to {max}"));
                }
                if let Some((text, regex)) = pattern
                    && !regex.is_match(s)
                {
                    out.push(format!("Value {shown}at '{path}' failed to satisfy constraint: Member must satisfy regular expression pattern: {text}"));
                }
                if let Some(values) = values
                    && !values.iter().any(|v| v == s)
                {
                    out.push(format!(
                        "Value {shown}at '{path}' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                        values.join(", ")
                    ));
                }
            }
            Shape::Integer { min, max } => {
                let n = value.as_i64().ok_or_else(|| wrong("an integer"))?;
                if let Some(min) = min
                    && n < *min
                {
                    out.push(format!("Value '{n}' at '{path}' failed to satisfy constraint: Member must have value greater than or equal to {min}"));
                }
                if let Some(max) = max
                    && n > *max
                {
                    out.push(format!("Value '{n}' at '{path}' failed to satisfy constraint: Member must have value less than or equal to {max}"));
                }
            }
            Shape::Boolean => {
                value.as_bool().ok_or_else(|| wrong("a boolean"))?;
            }
            Shape::Double | Shape::Timestamp => {
                value.as_f64().ok_or_else(|| wrong("a number"))?;
            }
            Shape::List { member, min, max } => {
                let items = value.as_array().ok_or_else(|| wrong("a list"))?;
                let len = items.len() as u64;
                if let Some(min) = min
                    && len < *min
                {
                    out.push(format!("Value at '{path}' failed to satisfy constraint: Member must have length greater than or equal to {min}"));
                }
                if let Some(max) = max
                    && len > *max
                {
                    out.push(format!("Value at '{path}' failed to satisfy constraint: Member must have length less than or equal to {max}"));
                }
                for (i, item) in items.iter().enumerate() {
                    self.check(member, item, &format!("{path}.{}", i + 1), out)?;
                }
            }
            Shape::Map {
                key,
                value: value_shape,
                min,
                max,
            } => {
                let entries = value.as_object().ok_or_else(|| wrong("a map"))?;
                let len = entries.len() as u64;
                if min.is_some_and(|m| len < m) || max.is_some_and(|m| len > m) {
                    out.push(format!(
                        "Value at '{path}' failed to satisfy constraint: Member must have between {} and {} entries",
                        min.unwrap_or(0),
                        max.map(|m| m.to_string()).unwrap_or_else(|| "any number of".into())
                    ));
                }
                for (k, v) in entries {
                    self.check(key, &Value::String(k.clone()), &format!("{path}.{k}"), out)?;
                    self.check(value_shape, v, &format!("{path}.{k}"), out)?;
                }
            }
        }
        Ok(())
    }
}

/// `ConnectionName` → `connectionName`: how AWS's validation messages spell a member.
fn lower_camel(member: &str) -> String {
    let mut chars = member.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_model_loads_and_every_pattern_compiles() {
        for model in [&*PROTON, &*CODECONNECTIONS, &*CODESTAR_CONNECTIONS] {
            assert!(model.operations.len() >= 27);
            for op in model.operations.values() {
                for shape in op.input.iter().chain(op.output.iter()) {
                    assert!(model.shapes.contains_key(shape), "{shape}");
                }
            }
        }
        assert_eq!(PROTON.target_prefix, "AwsProton20200720");
        assert_eq!(CODESTAR_CONNECTIONS.signing_name, "codestar-connections");
    }

    #[test]
    fn required_length_pattern_and_enum_violations_name_member_and_rule() {
        let input = json!({"templateName": "bad name!", "templateType": "BOGUS"});
        let err = PROTON
            .validate("GetTemplateSyncStatusInput", &input)
            .unwrap_err();
        let message = err.message();
        assert!(
            message.starts_with("3 validation errors detected"),
            "{message}"
        );
        assert!(message.contains("'templateName' failed to satisfy constraint: Member must satisfy regular expression pattern"));
        assert!(message.contains("'templateType' failed to satisfy constraint: Member must satisfy enum value set: [ENVIRONMENT, SERVICE]"));
        assert!(message.contains(
            "Value null at 'templateVersion' failed to satisfy constraint: Member must not be null"
        ));
        let long = "a".repeat(101);
        let err = CODECONNECTIONS
            .validate(
                "GetResourceSyncStatusInput",
                &json!({"ResourceName": long, "SyncType": "CFN_STACK_SYNC"}),
            )
            .unwrap_err();
        assert!(err.message().contains("at 'resourceName' failed to satisfy constraint: Member must have length less than or equal to 100"));
        assert!(
            CODECONNECTIONS
                .validate("ListConnectionsInput", &json!({"MaxResults": 101}))
                .unwrap_err()
                .message()
                .contains("less than or equal to 100")
        );
        assert_eq!(
            CODECONNECTIONS.validate(
                "GetResourceSyncStatusInput",
                &json!({"ResourceName": "s", "SyncType": "CFN_STACK_SYNC"})
            ),
            Ok(())
        );
    }

    #[test]
    fn wrong_types_are_serialization_problems() {
        let err = PROTON
            .validate(
                "GetRepositoryInput",
                &json!({"name": 5, "provider": "GITHUB"}),
            )
            .unwrap_err();
        assert_eq!(
            err,
            Invalid::Type("Expected a string at 'name', got a number".into())
        );
        assert!(matches!(
            PROTON.validate("GetRepositoryInput", &json!([])),
            Err(Invalid::Type(_))
        ));
        let nested = json!({"ConnectionName": "c", "Tags": [{"Key": "k", "Value": 1}]});
        assert_eq!(
            CODECONNECTIONS
                .validate("CreateConnectionInput", &nested)
                .unwrap_err(),
            Invalid::Type("Expected a string at 'tags.1.value', got a number".into())
        );
    }
}
