//! Stack deployment files and templates.
//!
//! A deployment file (YAML or JSON) names the template (`template-file-path`, from the
//! repository root) and gives `parameters` and `tags`; the AWS tooling superset
//! `on-stack-failure`, `include-nested-stacks` and `import-existing-resources` is accepted too.
//! Scalars become strings, lists become comma-joined strings (for `CommaDelimitedList`
//! parameters); anything else, and any unknown key, is a problem naming the key.

use serde_norway::Value;
use std::collections::BTreeMap;

/// CloudFormation's limits on what gitsync passes it.
pub const MAX_PARAMETERS: usize = 50;
pub const MAX_TAGS: usize = 50;
/// `TemplateBody` may be at most 51,200 bytes.
pub const MAX_TEMPLATE_BODY_BYTES: usize = 51_200;
const ON_STACK_FAILURE: &[&str] = &["DO_NOTHING", "ROLLBACK", "DELETE"];

/// A parsed deployment file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeploymentFile {
    pub template_file_path: String,
    pub parameters: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub on_stack_failure: Option<String>,
    pub include_nested_stacks: Option<bool>,
    pub import_existing_resources: Option<bool>,
}

/// A stack's template, parameter values and tags: what a deployment leaves it running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedStack {
    pub template_body: String,
    pub parameters: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

impl AppliedStack {
    /// The names of what differs from `other` (`template`, `parameter Foo`, `tag team`).
    pub fn differences(&self, other: &AppliedStack) -> Vec<String> {
        let mut out = Vec::new();
        if self.template_body != other.template_body {
            out.push("template".to_string());
        }
        let keys = |a: &BTreeMap<String, String>, b: &BTreeMap<String, String>| {
            a.keys()
                .chain(b.keys())
                .filter(|k| a.get(*k) != b.get(*k))
                .cloned()
                .collect::<std::collections::BTreeSet<_>>()
        };
        out.extend(
            keys(&self.parameters, &other.parameters)
                .into_iter()
                .map(|k| format!("parameter {k}")),
        );
        out.extend(
            keys(&self.tags, &other.tags)
                .into_iter()
                .map(|k| format!("tag {k}")),
        );
        out
    }
}

impl StackPlan {
    /// What the stack runs once this plan is deployed.
    pub fn applied(&self) -> AppliedStack {
        AppliedStack {
            template_body: self.template_body.clone(),
            parameters: self.effective_parameters.clone(),
            tags: self.tags.clone(),
        }
    }
}

/// Everything a deployer needs to create or update one stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackPlan {
    pub stack_name: String,
    pub template_path: String,
    pub template_body: String,
    pub parameters: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub role_arn: String,
    pub on_stack_failure: Option<String>,
    /// Where the stack lives (the sync configuration's region); set by the engine.
    pub region: String,
    /// The commit the plan was read from; set by the engine.
    pub commit: String,
    /// The commit gitsync last deployed the stack from, while a missing stack means someone
    /// deleted it (the deployer then asks for a blocker instead of creating it again). `None` for
    /// a stack never deployed, or once a person resolved its blocker. Set by the engine.
    pub deployed_from: Option<String>,
    /// What gitsync last applied to the stack (read from `deployed_from`), to tell a change made
    /// outside gitsync from one that is not applied yet. Set by the engine.
    pub previous: Option<AppliedStack>,
    /// Every parameter's value once deployed: the given ones over the template's defaults (what
    /// DescribeStacks reports for a stack that matches this plan).
    pub effective_parameters: BTreeMap<String, String>,
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn string_map(
    section: &str,
    value: &Value,
    limit: usize,
    problems: &mut Vec<String>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Value::Mapping(map) = value else {
        if !matches!(value, Value::Null) {
            problems.push(format!("{section}: must be a mapping of names to values"));
        }
        return out;
    };
    for (k, v) in map {
        let Some(key) = scalar(k) else {
            problems.push(format!("{section}: keys must be plain names"));
            continue;
        };
        let text = match v {
            Value::Sequence(items) => items
                .iter()
                .map(scalar)
                .collect::<Option<Vec<_>>>()
                .map(|v| v.join(",")),
            other => scalar(other),
        };
        match text {
            Some(t) => {
                out.insert(key, t);
            }
            None => problems.push(format!(
                "{section}.{key}: must be a string, number, boolean or list of those (for CommaDelimitedList)"
            )),
        }
    }
    if out.len() > limit {
        problems.push(format!(
            "{section}: {} entries, at most {limit} are allowed",
            out.len()
        ));
    }
    out
}

fn flag(key: &str, value: &Value, problems: &mut Vec<String>) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        _ => {
            problems.push(format!("{key}: must be true or false"));
            None
        }
    }
}

impl DeploymentFile {
    /// Parses a deployment file; on failure, every problem found.
    pub fn parse(path: &str, bytes: &[u8]) -> Result<DeploymentFile, Vec<String>> {
        let text =
            std::str::from_utf8(bytes).map_err(|_| vec![format!("{path}: is not UTF-8 text")])?;
        let doc: Value = serde_norway::from_str(text)
            .map_err(|e| vec![format!("{path}: is not valid YAML or JSON: {e}")])?;
        let Value::Mapping(map) = doc else {
            return Err(vec![format!(
                "{path}: must be a mapping with template-file-path, parameters and tags"
            )]);
        };
        let mut problems = Vec::new();
        let mut file = DeploymentFile::default();
        let mut has_template = false;
        for (k, v) in &map {
            let key = scalar(k).unwrap_or_default();
            match key.as_str() {
                "template-file-path" => match v {
                    Value::String(s) if !s.trim().is_empty() => {
                        file.template_file_path = s.trim_start_matches("./").to_string();
                        has_template = true;
                    }
                    _ => problems.push("template-file-path: must be the template's path from the repository root".into()),
                },
                "parameters" => file.parameters = string_map("parameters", v, MAX_PARAMETERS, &mut problems),
                "tags" => file.tags = string_map("tags", v, MAX_TAGS, &mut problems),
                "on-stack-failure" => match scalar(v) {
                    Some(s) if ON_STACK_FAILURE.contains(&s.as_str()) => file.on_stack_failure = Some(s),
                    _ => problems.push(format!("on-stack-failure: must be one of {}", ON_STACK_FAILURE.join(", "))),
                },
                "include-nested-stacks" => file.include_nested_stacks = flag(&key, v, &mut problems),
                "import-existing-resources" => file.import_existing_resources = flag(&key, v, &mut problems),
                other => problems.push(format!(
                    "{other}: unknown key (allowed: template-file-path, parameters, tags, on-stack-failure, include-nested-stacks, import-existing-resources)"
                )),
            }
        }
        if !has_template && !problems.iter().any(|p| p.starts_with("template-file-path")) {
            problems.push("template-file-path: missing; it names the template to deploy".into());
        }
        if problems.is_empty() {
            Ok(file)
        } else {
            Err(problems)
        }
    }
}

/// What gitsync needs to know of a template: its parameters and whether each has a default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateParameters {
    pub declared: BTreeMap<String, bool>,
    /// The defaults the template gives, as CloudFormation reports them (lists comma-joined).
    pub defaults: BTreeMap<String, String>,
}

/// Reads a template (JSON, or YAML with CloudFormation's short-form tags such as `!Ref`).
pub fn read_template(path: &str, bytes: &[u8]) -> Result<TemplateParameters, Vec<String>> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| vec![format!("{path}: is not UTF-8 text")])?;
    let doc: Value = serde_norway::from_str(text)
        .map_err(|e| vec![format!("{path}: is not a valid JSON or YAML template: {e}")])?;
    let Value::Mapping(map) = doc else {
        return Err(vec![format!(
            "{path}: a template must be a mapping with a Resources section"
        )]);
    };
    let mut problems = Vec::new();
    match map.get("Resources") {
        Some(Value::Mapping(r)) if !r.is_empty() => {}
        _ => problems.push(format!(
            "{path}: Resources must declare at least one resource"
        )),
    }
    let mut declared = BTreeMap::new();
    let mut defaults = BTreeMap::new();
    match map.get("Parameters") {
        None | Some(Value::Null) => {}
        Some(Value::Mapping(params)) => {
            for (name, spec) in params {
                let name = scalar(name).unwrap_or_default();
                let default = match spec {
                    Value::Mapping(m) => m.get("Default"),
                    _ => None,
                };
                if let Some(d) = default {
                    let text = match d {
                        Value::Sequence(items) => items
                            .iter()
                            .filter_map(scalar)
                            .collect::<Vec<_>>()
                            .join(","),
                        other => scalar(other).unwrap_or_default(),
                    };
                    defaults.insert(name.clone(), text);
                }
                declared.insert(name, default.is_some());
            }
        }
        Some(_) => problems.push(format!("{path}: Parameters must be a mapping")),
    }
    if bytes.len() > MAX_TEMPLATE_BODY_BYTES {
        problems.push(format!(
            "{path}: {} bytes; CloudFormation takes at most {MAX_TEMPLATE_BODY_BYTES} bytes in a template body",
            bytes.len()
        ));
    }
    if problems.is_empty() {
        Ok(TemplateParameters { declared, defaults })
    } else {
        Err(problems)
    }
}

/// Checks the deployment file's parameters against the template's, and builds the plan.
pub fn plan(
    stack_name: &str,
    role_arn: &str,
    deployment: &DeploymentFile,
    template_bytes: &[u8],
) -> Result<StackPlan, Vec<String>> {
    let template = read_template(&deployment.template_file_path, template_bytes)?;
    let mut problems = Vec::new();
    let names = || {
        template
            .declared
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    };
    for given in deployment.parameters.keys() {
        if !template.declared.contains_key(given) {
            let declared = if template.declared.is_empty() {
                "none".to_string()
            } else {
                names()
            };
            problems.push(format!(
                "parameters: unknown parameter '{given}' (template declares: {declared})"
            ));
        }
    }
    for (name, has_default) in &template.declared {
        if !has_default && !deployment.parameters.contains_key(name) {
            problems.push(format!(
                "parameters: '{name}' has no default in the template and is not given"
            ));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(StackPlan {
        stack_name: stack_name.to_string(),
        template_path: deployment.template_file_path.clone(),
        template_body: String::from_utf8_lossy(template_bytes).into_owned(),
        parameters: deployment.parameters.clone(),
        tags: deployment.tags.clone(),
        role_arn: role_arn.to_string(),
        on_stack_failure: deployment.on_stack_failure.clone(),
        region: String::new(),
        commit: String::new(),
        deployed_from: None,
        previous: None,
        effective_parameters: template
            .defaults
            .iter()
            .chain(deployment.parameters.iter())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = "Parameters:\n  QueueName:\n    Type: String\n  Env:\n    Type: String\n    Default: dev\n  Subnets:\n    Type: CommaDelimitedList\n    Default: a\nResources:\n  Queue:\n    Type: AWS::SQS::Queue\n    Properties:\n      QueueName: !Ref QueueName\n      Tags:\n        - Key: env\n          Value: !Sub \"${Env}\"\n";

    #[test]
    fn reads_the_documented_format_with_scalars_and_lists() {
        let file = DeploymentFile::parse(
            "d.yaml",
            b"template-file-path: ./infra/t.yaml\nparameters:\n  QueueName: q1\n  Port: 8080\n  Debug: true\n  Subnets: [a, b]\ntags:\n  cost-center: '123'\non-stack-failure: ROLLBACK\n",
        )
        .unwrap();
        assert_eq!(file.template_file_path, "infra/t.yaml");
        assert_eq!(file.parameters["Port"], "8080");
        assert_eq!(file.parameters["Debug"], "true");
        assert_eq!(file.parameters["Subnets"], "a,b");
        assert_eq!(file.tags["cost-center"], "123");
        assert_eq!(file.on_stack_failure.as_deref(), Some("ROLLBACK"));
        let json = DeploymentFile::parse(
            "d.json",
            br#"{"template-file-path": "t.json", "parameters": {"A": "1"}}"#,
        )
        .unwrap();
        assert_eq!(json.parameters["A"], "1");
    }

    #[test]
    fn problems_name_the_key() {
        let err = DeploymentFile::parse(
            "d.yaml",
            b"template-file-path: t.yaml\nparamters:\n  A: 1\nparameters:\n  B: {x: 1}\n",
        )
        .unwrap_err();
        assert!(
            err.iter().any(|p| p.starts_with("paramters: unknown key")),
            "{err:?}"
        );
        assert!(
            err.iter()
                .any(|p| p.starts_with("parameters.B: must be a string")),
            "{err:?}"
        );
        let err = DeploymentFile::parse("d.yaml", b"parameters: {}\n").unwrap_err();
        assert_eq!(
            err,
            ["template-file-path: missing; it names the template to deploy"]
        );
        let err = DeploymentFile::parse("d.yaml", b"template-file-path: [\n").unwrap_err();
        assert!(
            err[0].starts_with("d.yaml: is not valid YAML or JSON"),
            "{err:?}"
        );
        let many: String = (0..51).map(|i| format!("  K{i}: v\n")).collect();
        let err = DeploymentFile::parse(
            "d.yaml",
            format!("template-file-path: t\ntags:\n{many}").as_bytes(),
        )
        .unwrap_err();
        assert_eq!(err, ["tags: 51 entries, at most 50 are allowed"]);
    }

    #[test]
    fn parameters_are_checked_against_the_template() {
        let file = DeploymentFile::parse(
            "d.yaml",
            b"template-file-path: t.yaml\nparameters:\n  QueueName: q\n",
        )
        .unwrap();
        let plan = plan("s", "arn:aws:iam::1:role/r", &file, TEMPLATE.as_bytes()).unwrap();
        assert_eq!(plan.parameters["QueueName"], "q");
        assert!(plan.template_body.contains("!Ref QueueName"));
        let file = DeploymentFile::parse(
            "d.yaml",
            b"template-file-path: t.yaml\nparameters:\n  Foo: x\n",
        )
        .unwrap();
        let err = plan_err(&file);
        assert!(
            err.contains(
                &"parameters: unknown parameter 'Foo' (template declares: Env, QueueName, Subnets)"
                    .to_string()
            ),
            "{err:?}"
        );
        assert!(
            err.contains(
                &"parameters: 'QueueName' has no default in the template and is not given"
                    .to_string()
            ),
            "{err:?}"
        );
    }

    fn plan_err(file: &DeploymentFile) -> Vec<String> {
        plan("s", "r", file, TEMPLATE.as_bytes()).unwrap_err()
    }

    #[test]
    fn templates_must_be_templates() {
        assert!(
            read_template("t.yaml", b"Resources: {}\n").unwrap_err()[0]
                .contains("at least one resource")
        );
        assert!(
            read_template(
                "t.json",
                b"{\"Resources\": {\"Q\": {\"Type\": \"AWS::SQS::Queue\"}}}"
            )
            .is_ok()
        );
        assert!(read_template("t.yaml", b"- a\n").is_err());
        let big = format!(
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n# {}\n",
            "x".repeat(60_000)
        );
        assert!(
            read_template("t.yaml", big.as_bytes()).unwrap_err()[0].contains("at most 51200 bytes")
        );
    }
}
