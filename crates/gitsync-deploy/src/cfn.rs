//! Stack deployment files and templates.
//!
//! A deployment file (YAML or JSON) names the template (`template-file-path`, from the
//! repository root) and gives `parameters` and `tags`; the AWS tooling superset
//! `on-stack-failure`, `include-nested-stacks` and `import-existing-resources` is accepted too,
//! and passed to CreateChangeSet as `OnStackFailure`, `IncludeNestedStacks` and
//! `ImportExistingResources`.
//! Scalars become strings, lists become comma-joined strings (for `CommaDelimitedList`
//! parameters); anything else, and any unknown key, is a problem naming the key.

pub use gitsync_model::security::{OWNER_ACCOUNT_TAG, OWNER_CONFIGURATION_TAG};
use serde_norway::Value;
use std::collections::BTreeMap;

/// CloudFormation's limits on what gitsync passes it (a template declares at most 200
/// parameters).
pub const MAX_PARAMETERS: usize = 200;
/// CloudFormation allows 50 tags; gitsync's two ownership tags take the other two.
pub const MAX_TAGS: usize = gitsync_model::security::MAX_USER_STACK_TAGS;
/// Problems reported for one file at most (the last says how many more there were).
pub const MAX_PROBLEMS: usize = 100;
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
                // gitsync's own tags are added to stacks it adopts; they are no outside change.
                .filter(|k| !k.starts_with("gitsync:"))
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
            tags: self.all_tags(),
        }
    }

    /// The deployment file's tags and gitsync's ownership tags (when the owner is known).
    pub fn all_tags(&self) -> BTreeMap<String, String> {
        let mut tags = self.tags.clone();
        if !self.owner.account.is_empty() {
            tags.insert(OWNER_ACCOUNT_TAG.into(), self.owner.account.clone());
            tags.insert(
                OWNER_CONFIGURATION_TAG.into(),
                self.owner.configuration.clone(),
            );
        }
        tags
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
    /// CreateChangeSet's `IncludeNestedStacks`: the change set covers nested stacks too.
    pub include_nested_stacks: bool,
    /// CreateChangeSet's `ImportExistingResources`: resources with custom names that exist
    /// already are imported instead of failing the create.
    pub import_existing_resources: bool,
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
    /// With whose credentials the stack is deployed. Set by the engine.
    pub identity: DeployIdentity,
    /// Whose stack this is: its tags say so, and gitsync touches no stack tagged otherwise. Set
    /// by the engine.
    pub owner: Owner,
    /// A change set a previous worker created for this commit before it stopped (its attempt
    /// was taken over): the deployer follows it to its end, executing it if it never was,
    /// instead of deploying the commit a second time. Set by the engine.
    pub started_change_set: Option<String>,
}

impl StackPlan {
    /// A plan that names a stack and nothing to deploy: what deleting it needs (the engine
    /// sets region, identity and owner).
    pub fn for_stack(stack_name: &str) -> StackPlan {
        StackPlan {
            stack_name: stack_name.to_string(),
            template_path: String::new(),
            template_body: String::new(),
            parameters: BTreeMap::new(),
            tags: BTreeMap::new(),
            role_arn: String::new(),
            on_stack_failure: None,
            include_nested_stacks: false,
            import_existing_resources: false,
            region: String::new(),
            commit: String::new(),
            deployed_from: None,
            previous: None,
            effective_parameters: BTreeMap::new(),
            identity: DeployIdentity::Server,
            owner: Owner::default(),
            started_change_set: None,
        }
    }
}

/// The credentials a deployment runs with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum DeployIdentity {
    /// The server's own credentials (a trusted tenant, or validation only).
    #[default]
    Server,
    /// The sync configuration's role, assumed through STS with the tenant's account id as
    /// `ExternalId` so the role's trust policy can pin the tenant.
    AssumeRole {
        role_arn: String,
        external_id: String,
    },
}

/// What a person does about a deployment's blocker, as its reason says it (`…; resolve this
/// blocker to …`). Resources without blockers (Proton's) say their own remedy in its place.
pub const RESOLVE_BLOCKER: &str = "resolve this blocker";

/// Who owns a stack, as gitsync tags it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owner {
    /// The tenant's account id (`gitsync:account`).
    pub account: String,
    /// The sync configuration's resource name (`gitsync:sync-configuration`).
    pub configuration: String,
    /// A person resolved the "not owned by gitsync" blocker: gitsync may take the stack over
    /// and tag it (never a stack tagged for another tenant).
    pub adopt: bool,
}

impl Owner {
    /// Why gitsync must not touch a stack with these tags, or `None` when it may. `deployed`:
    /// gitsync's own history shows it deployed this stack (an installation from before the
    /// ownership tags, whose stacks are tagged on their next deployment).
    pub fn refuses(&self, tags: &BTreeMap<String, String>, deployed: bool) -> Option<String> {
        let account = tags.get(OWNER_ACCOUNT_TAG);
        let configuration = tags.get(OWNER_CONFIGURATION_TAG);
        match (account, configuration) {
            (Some(a), Some(c)) if *a == self.account && *c == self.configuration => None,
            (Some(a), _) if *a != self.account => Some(format!(
                "it belongs to account {a}, and gitsync never takes over another tenant's stack"
            )),
            (Some(_), Some(c)) => (!self.adopt).then(|| {
                format!(
                    "it belongs to sync configuration {c}; {RESOLVE_BLOCKER} to move it to {}",
                    self.configuration
                )
            }),
            _ if deployed || self.adopt => None,
            _ => Some(format!(
                "it has no gitsync:account and gitsync:sync-configuration tags; {RESOLVE_BLOCKER} to let gitsync adopt it"
            )),
        }
    }
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
                "{section}.{}: must be a string, number, boolean or list of those (for CommaDelimitedList)",
                shortened(&key)
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

/// A name from a file, cut short for a message (a key may be any length).
fn shortened(name: &str) -> String {
    const MAX: usize = 100;
    match name.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &name[..at]),
        None => name.to_string(),
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
                    "{}: unknown key (allowed: template-file-path, parameters, tags, on-stack-failure, include-nested-stacks, import-existing-resources)",
                    shortened(other)
                )),
            }
        }
        if !has_template && !problems.iter().any(|p| p.starts_with("template-file-path")) {
            problems.push("template-file-path: missing; it names the template to deploy".into());
        }
        if let Some(reserved) = file.tags.keys().find(|k| k.starts_with("gitsync:")) {
            problems.push(format!(
                "tags: '{}' is reserved: gitsync marks the stacks it owns with gitsync:account and gitsync:sync-configuration",
                shortened(reserved)
            ));
        }
        gitsync_model::security::cap_list(&mut problems, MAX_PROBLEMS, |n| {
            format!("{path}: {n} more problem(s) left out")
        });
        if problems.is_empty() {
            Ok(file)
        } else {
            Err(problems)
        }
    }
}

/// What gitsync needs to know of a template: its parameters, whether each has a default, and
/// the constraints CloudFormation would check their values against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateParameters {
    pub declared: BTreeMap<String, bool>,
    /// The defaults the template gives, as CloudFormation reports them (lists comma-joined).
    pub defaults: BTreeMap<String, String>,
    pub constraints: BTreeMap<String, ParameterConstraints>,
}

/// A parameter's `Type`, `AllowedValues`, `AllowedPattern`, `MinLength`/`MaxLength` and
/// `MinValue`/`MaxValue`, checked before CloudFormation is called so that a bad value fails
/// at once, naming the parameter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParameterConstraints {
    pub kind: String,
    pub allowed_values: Vec<String>,
    pub allowed_pattern: Option<String>,
    pub min_length: Option<String>,
    pub max_length: Option<String>,
    pub min_value: Option<String>,
    pub max_value: Option<String>,
}

impl ParameterConstraints {
    fn read(spec: &serde_norway::Mapping) -> ParameterConstraints {
        let text = |key: &str| spec.get(key).and_then(scalar);
        ParameterConstraints {
            kind: text("Type").unwrap_or_else(|| "String".into()),
            allowed_values: match spec.get("AllowedValues") {
                Some(Value::Sequence(items)) => items.iter().filter_map(scalar).collect(),
                _ => Vec::new(),
            },
            allowed_pattern: text("AllowedPattern"),
            min_length: text("MinLength"),
            max_length: text("MaxLength"),
            min_value: text("MinValue"),
            max_value: text("MaxValue"),
        }
    }

    /// What is wrong with `value` for parameter `name`, as CloudFormation's checks would find
    /// it. Types gitsync cannot check here (AWS-specific and SSM parameter types) pass.
    pub fn problems(&self, name: &str, value: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let shown = shortened(value);
        let (items, numbers): (Vec<&str>, bool) = match self.kind.as_str() {
            "String" => (vec![value], false),
            "Number" => (vec![value], true),
            "List<Number>" => (value.split(',').map(str::trim).collect(), true),
            "CommaDelimitedList" => (value.split(',').map(str::trim).collect(), false),
            _ => return problems,
        };
        for item in &items {
            if numbers && item.parse::<f64>().map_or(true, |n| !n.is_finite()) {
                problems.push(format!(
                    "parameters: '{name}' must be a number ({} parameter; got '{shown}')",
                    self.kind
                ));
                return problems;
            }
        }
        if !self.allowed_values.is_empty() {
            for item in &items {
                if !self.allowed_values.iter().any(|a| a == item) {
                    problems.push(format!(
                        "parameters: '{name}' must be one of {} (got '{}')",
                        self.allowed_values.join(", "),
                        shortened(item)
                    ));
                }
            }
        }
        if let Some(pattern) = &self.allowed_pattern
            && !numbers
            // CloudFormation matches the whole value. A pattern this regex engine cannot
            // compile (lookaround, backreferences) is left to CloudFormation.
            && let Ok(re) = regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
                .size_limit(1 << 20)
                .build()
        {
            for item in &items {
                if !re.is_match(item) {
                    problems.push(format!(
                        "parameters: '{name}' must match the pattern {pattern} (got '{}')",
                        shortened(item)
                    ));
                }
            }
        }
        let bound = |b: &Option<String>| b.as_deref().and_then(|b| b.parse::<f64>().ok());
        if self.kind == "String" {
            let length = value.chars().count() as f64;
            if let Some(min) = bound(&self.min_length)
                && length < min
            {
                problems.push(format!(
                    "parameters: '{name}' must be at least {min} characters long (got {length})"
                ));
            }
            if let Some(max) = bound(&self.max_length)
                && length > max
            {
                problems.push(format!(
                    "parameters: '{name}' must be at most {max} characters long (got {length})"
                ));
            }
        }
        if numbers {
            for item in &items {
                let n: f64 = item.parse().unwrap_or_default();
                if let Some(min) = bound(&self.min_value)
                    && n < min
                {
                    problems.push(format!(
                        "parameters: '{name}' must be at least {min} (got {item})"
                    ));
                }
                if let Some(max) = bound(&self.max_value)
                    && n > max
                {
                    problems.push(format!(
                        "parameters: '{name}' must be at most {max} (got {item})"
                    ));
                }
            }
        }
        problems
    }
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
    let mut constraints = BTreeMap::new();
    match map.get("Parameters") {
        None | Some(Value::Null) => {}
        Some(Value::Mapping(params)) => {
            for (name, spec) in params {
                let name = scalar(name).unwrap_or_default();
                let default = match spec {
                    Value::Mapping(m) => {
                        constraints.insert(name.clone(), ParameterConstraints::read(m));
                        m.get("Default")
                    }
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
        Ok(TemplateParameters {
            declared,
            defaults,
            constraints,
        })
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
    // Given values are checked; defaults are the template's own business (CloudFormation
    // rejects a template whose default breaks its constraints).
    for (name, value) in &deployment.parameters {
        if let Some(c) = template.constraints.get(name) {
            problems.extend(c.problems(name, value));
        }
    }
    gitsync_model::security::cap_list(&mut problems, MAX_PROBLEMS, |n| {
        format!("parameters: {n} more problem(s) left out")
    });
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
        include_nested_stacks: deployment.include_nested_stacks.unwrap_or(false),
        import_existing_resources: deployment.import_existing_resources.unwrap_or(false),
        region: String::new(),
        commit: String::new(),
        deployed_from: None,
        previous: None,
        identity: DeployIdentity::Server,
        owner: Owner::default(),
        started_change_set: None,
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
        assert_eq!(err, ["tags: 51 entries, at most 48 are allowed"]);
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

    #[test]
    fn parameter_values_are_checked_against_the_templates_constraints() {
        // Every parameter has a default, so each case checks only the value it gives.
        let template = "Parameters:\n  Port:\n    Type: Number\n    MinValue: 1\n    MaxValue: 65535\n    Default: 80\n  Env:\n    Type: String\n    AllowedValues: [dev, prod]\n    Default: dev\n  Name:\n    Type: String\n    AllowedPattern: '[a-z]+'\n    MaxLength: 5\n    Default: x\n  Ids:\n    Type: List<Number>\n    Default: '1'\n  Zones:\n    Type: CommaDelimitedList\n    AllowedValues: [a, b]\n    Default: a\n  Key:\n    Type: AWS::EC2::KeyPair::KeyName\n    Default: k\nResources:\n  Queue:\n    Type: AWS::SQS::Queue\n";
        let with = |params: &[(&str, &str)]| {
            let mut file =
                DeploymentFile::parse("d.yaml", b"template-file-path: t.yaml\n").unwrap();
            file.parameters = params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            plan("s", "", &file, template.as_bytes())
                .err()
                .unwrap_or_default()
        };
        assert!(
            with(&[
                ("Port", "443"),
                ("Env", "dev"),
                ("Name", "abc"),
                ("Ids", "1, 2"),
                ("Zones", "a,b"),
                ("Key", "anything")
            ])
            .is_empty()
        );
        assert_eq!(
            with(&[("Port", "http")]),
            ["parameters: 'Port' must be a number (Number parameter; got 'http')"]
        );
        assert_eq!(
            with(&[("Port", "70000")]),
            ["parameters: 'Port' must be at most 65535 (got 70000)"]
        );
        assert_eq!(
            with(&[("Env", "qa")]),
            ["parameters: 'Env' must be one of dev, prod (got 'qa')"]
        );
        // The pattern must match the whole value, as in CloudFormation.
        assert_eq!(
            with(&[("Name", "ab1")]),
            ["parameters: 'Name' must match the pattern [a-z]+ (got 'ab1')"]
        );
        assert_eq!(
            with(&[("Name", "abcdef")]),
            ["parameters: 'Name' must be at most 5 characters long (got 6)"]
        );
        assert_eq!(
            with(&[("Ids", "1,x")]),
            ["parameters: 'Ids' must be a number (List<Number> parameter; got '1,x')"]
        );
        assert_eq!(
            with(&[("Zones", "a,c")]),
            ["parameters: 'Zones' must be one of a, b (got 'c')"]
        );
        // A hostile list cannot make an unbounded report.
        let many = vec!["z"; 1000].join(",");
        assert_eq!(with(&[("Zones", &many)]).len(), MAX_PROBLEMS);
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

    #[test]
    fn gitsync_owns_only_stacks_tagged_for_the_same_tenant_and_configuration() {
        let owner = Owner {
            account: "111111111111".into(),
            configuration: "prod".into(),
            adopt: false,
        };
        let tags = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        let ours = tags(&[
            (OWNER_ACCOUNT_TAG, "111111111111"),
            (OWNER_CONFIGURATION_TAG, "prod"),
        ]);
        assert_eq!(owner.refuses(&ours, false), None);
        let untagged = tags(&[("team", "web")]);
        assert!(
            owner
                .refuses(&untagged, false)
                .unwrap()
                .contains("no gitsync:account")
        );
        // gitsync's own history says it deployed the stack: an upgrade, tagged on this deployment.
        assert_eq!(owner.refuses(&untagged, true), None);
        let other_tenant = tags(&[
            (OWNER_ACCOUNT_TAG, "000000000000"),
            (OWNER_CONFIGURATION_TAG, "prod"),
        ]);
        let adopting = Owner {
            adopt: true,
            ..owner.clone()
        };
        for who in [&owner, &adopting] {
            assert!(
                who.refuses(&other_tenant, true)
                    .unwrap()
                    .contains("account 000000000000")
            );
        }
        let other_config = tags(&[
            (OWNER_ACCOUNT_TAG, "111111111111"),
            (OWNER_CONFIGURATION_TAG, "staging"),
        ]);
        assert!(owner.refuses(&other_config, true).is_some());
        assert_eq!(adopting.refuses(&other_config, false), None);
        assert_eq!(adopting.refuses(&untagged, false), None);
    }

    #[test]
    fn plans_carry_the_ownership_tags_and_comparisons_ignore_them() {
        let file =
            DeploymentFile::parse("d.yaml", b"template-file-path: t.yaml\ntags: {team: web}\n")
                .unwrap();
        let mut p = plan(
            "prod",
            "arn:aws:iam::111111111111:role/r",
            &file,
            b"Resources: {Q: {Type: AWS::SQS::Queue}}\n",
        )
        .unwrap();
        assert_eq!(p.applied().tags.len(), 1);
        p.owner = Owner {
            account: "111111111111".into(),
            configuration: "prod".into(),
            adopt: false,
        };
        let applied = p.applied();
        assert_eq!(applied.tags[OWNER_ACCOUNT_TAG], "111111111111");
        assert_eq!(applied.tags[OWNER_CONFIGURATION_TAG], "prod");
        let mut before = applied.clone();
        before.tags.retain(|k, _| !k.starts_with("gitsync:"));
        assert!(applied.differences(&before).is_empty());
    }

    #[test]
    fn deployment_files_keep_two_tags_for_gitsync_and_cap_their_problems() {
        let tags: String = (0..49).map(|i| format!("  t{i}: v\n")).collect();
        let text = format!("template-file-path: t.yaml\ntags:\n{tags}");
        let problems = DeploymentFile::parse("d.yaml", text.as_bytes()).unwrap_err();
        assert!(problems[0].contains("at most 48"), "{problems:?}");
        let reserved = DeploymentFile::parse(
            "d.yaml",
            b"template-file-path: t.yaml\ntags: {\"gitsync:account\": x}\n",
        )
        .unwrap_err();
        assert!(reserved[0].contains("reserved"), "{reserved:?}");
        let many: String = (0..5000).map(|i| format!("k{i}: 1\n")).collect();
        let problems = DeploymentFile::parse("d.yaml", many.as_bytes()).unwrap_err();
        assert_eq!(problems.len(), MAX_PROBLEMS);
        assert!(
            problems
                .last()
                .unwrap()
                .contains("4902 more problem(s) left out"),
            "{:?}",
            problems.last()
        );
        let long_key = format!("{}: 1\n", "k".repeat(10_000));
        let problems = DeploymentFile::parse("d.yaml", long_key.as_bytes()).unwrap_err();
        assert!(problems[0].len() < 400, "{}", problems[0].len());
    }
}
