//! Proton's infrastructure files are Jinja templates; this renders them as Proton did, with a
//! maintained Jinja engine (MiniJinja).
//!
//! The parameter namespace ([`environment_context`], [`instance_context`], [`pipeline_context`]):
//! `environment.name`, `environment.inputs.*`, `environment.outputs.*`; `service.name`,
//! `service_instance.name`, `service_instance.inputs.*`,
//! `service_instance.environment.account_id`, `service_instance.components.default.outputs`
//! (empty: components are not served); for pipelines `service.branch_name`,
//! `service.repository_connection_arn`, `service.repository_id`, `pipeline.inputs.*` and the
//! `service_instances` list, each with its `name`, `inputs`, `outputs` and `environment`.
//!
//! Filters: Jinja's built-ins (`default`, `tojson`, `lower`, …), Jinja's `truncate` with all
//! four arguments (MiniJinja has none), and Proton's own `proton_cfn_ecs_task_definition_formatted_env_vars`,
//! `proton_cfn_lambda_function_formatted_env_vars` and `proton_cfn_iam_policy_arns`, which
//! render YAML in flow style (`[{"Name": "A", "Value": "b"}]`) so they fit wherever a value
//! goes, at any indentation.
//!
//! Templates come from repositories: rendering runs on a fuel budget (a loop over a huge range
//! stops with an error naming the budget), output is capped, and an undefined value is an error
//! naming the file, the line and what is missing (at registration, outputs that exist only once
//! deployed render as placeholders: [`Mode::Check`]).

use minijinja::value::{Kwargs, Object, Rest, Serde, Value as J};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, State, UndefinedBehavior};
use regex::Regex;
use serde_json::{Map, Value, json};
use std::sync::{Arc, LazyLock};

/// Instructions one rendering may run: far more than any real template needs, little enough
/// that a hostile loop ends in well under a second.
const FUEL: u64 = 10_000_000;
/// Largest rendered file: CloudFormation takes at most 1 MB through S3 (51,200 bytes inline).
pub const MAX_OUTPUT_BYTES: usize = 1 << 20;

/// Why a file could not be rendered: its path, the line, and the engine's reason (what is
/// undefined, which filter failed, which budget was hit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// How strictly undefined values are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Mode {
    /// Deployment: every value used must exist.
    Deploy,
    /// Registration of a template version: outputs of other resources do not exist yet, so
    /// `environment.outputs.*` (and an instance's outputs in a pipeline) render as placeholders;
    /// inputs must still exist.
    Check,
}

/// Renders one infrastructure file with `context` (see the context builders).
pub fn render(
    file: &str,
    source: &str,
    context: &Value,
    mode: Mode,
) -> Result<String, RenderError> {
    let mut env = Environment::new();
    // Printing or iterating what is undefined fails, naming it; testing it (`{% if x %}`,
    // `is defined`, `default`) does not, as templates test optional inputs that way.
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    // CloudFormation text, not HTML or JSON: nothing is escaped (MiniJinja would escape by the
    // file's extension).
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_fuel(Some(FUEL));
    // MiniJinja's `debug` feature names what is undefined in errors; its `debug()` function,
    // which prints the whole context, is not Jinja's and has no place in a stack template.
    env.remove_global("debug");
    env.add_filter("truncate", truncate);
    env.add_filter(
        "proton_cfn_ecs_task_definition_formatted_env_vars",
        ecs_env_vars,
    );
    env.add_filter(
        "proton_cfn_lambda_function_formatted_env_vars",
        lambda_env_vars,
    );
    env.add_filter("proton_cfn_iam_policy_arns", iam_policy_arns);
    let fail = |e: Error| RenderError {
        file: file.to_string(),
        line: e.line(),
        message: describe(&e),
    };
    let template = env.template_from_named_str(file, source).map_err(fail)?;
    let context = match mode {
        Mode::Deploy => J::from(Serde(context)),
        Mode::Check => with_placeholders(context),
    };
    let out = template.render(context).map_err(fail)?;
    if out.len() > MAX_OUTPUT_BYTES {
        return Err(RenderError {
            file: file.to_string(),
            line: None,
            message: format!(
                "renders to {} bytes; at most {MAX_OUTPUT_BYTES} are allowed",
                out.len()
            ),
        });
    }
    Ok(out)
}

/// The engine's reason in words a template author acts on.
fn describe(e: &Error) -> String {
    match e.kind() {
        ErrorKind::OutOfFuel => format!(
            "rendering took more than the budget of {FUEL} steps (a loop over a huge range, or values built too large?)"
        ),
        _ => match e.detail() {
            Some(detail) => format!("{}: {detail}", e.kind()),
            None => e.kind().to_string(),
        },
    }
}

/// The environment's parameters, for its infrastructure files.
pub fn environment_context(name: &str, inputs: &Value) -> Value {
    json!({ "environment": { "name": name, "inputs": inputs } })
}

/// A service instance's parameters, for its instance infrastructure files.
pub fn instance_context(
    service: &str,
    instance: &str,
    inputs: &Value,
    environment: &str,
    environment_outputs: &Value,
    account_id: &str,
) -> Value {
    json!({
        "service": { "name": service },
        "service_instance": {
            "name": instance,
            "inputs": inputs,
            "environment": { "account_id": account_id },
            "components": { "default": { "outputs": {} } },
        },
        "environment": { "name": environment, "outputs": environment_outputs },
    })
}

/// One instance as a pipeline sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineInstance {
    pub name: String,
    pub inputs: Value,
    pub outputs: Value,
    pub environment: String,
    pub environment_outputs: Value,
    pub account_id: String,
}

/// What a service's pipeline is rendered with, besides its instances.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PipelineService {
    pub name: String,
    pub branch_name: String,
    pub repository_connection_arn: String,
    pub repository_id: String,
}

/// A service pipeline's parameters, for its pipeline infrastructure files.
pub fn pipeline_context(
    service: &PipelineService,
    inputs: &Value,
    instances: &[PipelineInstance],
) -> Value {
    let instances: Vec<Value> = instances
        .iter()
        .map(|i| {
            json!({
                "name": i.name,
                "inputs": i.inputs,
                "outputs": i.outputs,
                "environment": {
                    "name": i.environment,
                    "account_id": i.account_id,
                    "outputs": i.environment_outputs,
                },
            })
        })
        .collect();
    json!({
        "service": {
            "name": service.name,
            "branch_name": service.branch_name,
            "repository_connection_arn": service.repository_connection_arn,
            "repository_id": service.repository_id,
        },
        "pipeline": { "inputs": inputs },
        "service_instances": instances,
    })
}

/// Outputs that exist only once resources are deployed: any name renders as a placeholder.
#[derive(Debug)]
struct Placeholders(&'static str);

impl Object for Placeholders {
    fn get_value(self: &Arc<Self>, key: &J) -> Option<J> {
        Some(J::from(format!("{}-{key}", self.0)))
    }
}

/// The context as a value in which every `outputs` mapping of another resource answers any
/// name with a placeholder ([`Mode::Check`]).
fn with_placeholders(context: &Value) -> J {
    fn walk(value: &Value, key: Option<&str>) -> J {
        match (key, value) {
            (Some("outputs"), Value::Object(map)) if map.is_empty() => {
                J::from_object(Placeholders("output"))
            }
            (_, Value::Object(map)) => J::from_pairs(
                map.iter()
                    .map(|(k, v)| (k.clone(), walk(v, Some(k.as_str())))),
            ),
            (_, Value::Array(items)) => J::from_iter(items.iter().map(|v| walk(v, None))),
            (_, other) => J::from(Serde(other)),
        }
    }
    walk(context, None)
}

/// Jinja's `truncate(s, length=255, killwords=False, end='...', leeway=None)`: a string longer
/// than `length` (plus a leeway of 5 by default) is cut to `length` characters including
/// `end`, at the last whole word unless `killwords`.
fn truncate(s: String, positional: Rest<J>, kwargs: Kwargs) -> Result<String, Error> {
    // Jinja takes each argument by position or by name.
    let at = |i: usize| positional.get(i).filter(|v| !v.is_none()).cloned();
    if positional.len() > 4 {
        return Err(Error::new(
            ErrorKind::TooManyArguments,
            "truncate takes at most length, killwords, end and leeway",
        ));
    }
    let typed = |v: Option<J>, name: &str| -> Result<Option<J>, Error> {
        let named: Option<J> = kwargs.get(name)?;
        Ok(named.or(v))
    };
    let number = |v: Option<J>, name: &str| -> Result<Option<usize>, Error> {
        typed(v, name)?
            .map(|v| {
                usize::try_from(v.clone()).map_err(|_| {
                    Error::new(
                        ErrorKind::InvalidOperation,
                        format!("truncate: {name} must be a whole number, not {v}"),
                    )
                })
            })
            .transpose()
    };
    let length = number(at(0), "length")?.unwrap_or(255);
    let killwords = typed(at(1), "killwords")?.is_some_and(|v| v.is_true());
    let end = typed(at(2), "end")?
        .map(|v| v.to_string())
        .unwrap_or_else(|| "...".to_string());
    let leeway = number(at(3), "leeway")?.unwrap_or(5);
    kwargs.assert_all_used()?;
    cut(s, length, killwords, end, leeway)
}

fn cut(
    s: String,
    length: usize,
    killwords: bool,
    end: String,
    leeway: usize,
) -> Result<String, Error> {
    let chars: Vec<char> = s.chars().collect();
    let end_len = end.chars().count();
    if length < end_len {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("truncate: length {length} is shorter than the end '{end}'"),
        ));
    }
    // Lengths come from templates: a huge one must not overflow.
    if chars.len() <= length.saturating_add(leeway) {
        return Ok(s);
    }
    let head: String = chars[..length - end_len].iter().collect();
    if killwords {
        return Ok(head + &end);
    }
    let cut = match head.rfind(' ') {
        Some(i) => head[..i].to_string(),
        None => head,
    };
    Ok(cut + &end)
}

/// `raw`, given by position or by name (`raw=False`); true by default.
fn raw_flag(raw: Option<bool>, kwargs: &Kwargs) -> Result<Option<bool>, Error> {
    let named: Option<bool> = kwargs.get("raw")?;
    kwargs.assert_all_used()?;
    Ok(named.or(raw))
}

/// A mapping's entries as (name, value) strings, checked when `raw` is false.
fn entries(filter: &str, value: &J, raw: Option<bool>) -> Result<Vec<(String, String)>, Error> {
    static SAFE: LazyLock<Regex> = LazyLock::new(|| Regex::new("^[a-zA-Z0-9_-]*$").unwrap());
    let mut out = Vec::new();
    for key in value.try_iter()? {
        let item = value.get_item(&key)?;
        let (name, text) = (key.to_string(), item.to_string());
        if raw == Some(false) && !SAFE.is_match(&text) {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("{filter}: the value of {name} must match ^[a-zA-Z0-9_-]*$ (raw=False)"),
            ));
        }
        out.push((name, text));
    }
    Ok(out)
}

/// `dict | proton_cfn_ecs_task_definition_formatted_env_vars(raw=True)`: an ECS container
/// definition's `Environment`, a list of `{Name, Value}`.
fn ecs_env_vars(value: J, raw: Option<bool>, kwargs: Kwargs) -> Result<String, Error> {
    let list: Vec<Value> = entries(
        "proton_cfn_ecs_task_definition_formatted_env_vars",
        &value,
        raw_flag(raw, &kwargs)?,
    )?
    .into_iter()
    .map(|(name, value)| json!({ "Name": name, "Value": value }))
    .collect();
    Ok(Value::Array(list).to_string())
}

/// `dict | proton_cfn_lambda_function_formatted_env_vars(raw=True)`: a Lambda function's
/// `Environment.Variables`, a mapping of names to values.
fn lambda_env_vars(value: J, raw: Option<bool>, kwargs: Kwargs) -> Result<String, Error> {
    let map: Map<String, Value> = entries(
        "proton_cfn_lambda_function_formatted_env_vars",
        &value,
        raw_flag(raw, &kwargs)?,
    )?
    .into_iter()
    .map(|(name, value)| (name, Value::String(value)))
    .collect();
    Ok(Value::Object(map).to_string())
}

/// `dict | proton_cfn_iam_policy_arns`: the values that are IAM managed policy ARNs, as a list
/// (for a role's `ManagedPolicyArns`); anything else is left out.
fn iam_policy_arns(_state: &State, value: J) -> Result<String, Error> {
    static POLICY: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^arn:[a-zA-Z-]+:iam::\d{12}:policy/").unwrap());
    let list: Vec<Value> = entries("proton_cfn_iam_policy_arns", &value, None)?
        .into_iter()
        .filter(|(_, v)| POLICY.is_match(v))
        .map(|(_, v)| Value::String(v))
        .collect();
    Ok(Value::Array(list).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(inputs: Value) -> Value {
        environment_context("prod", &inputs)
    }

    #[test]
    fn environment_parameters_render() {
        let out = render(
            "infrastructure/cloudformation.yaml",
            "CidrBlock: {{ environment.inputs.vpc_cidr }}\nName: {{ environment.name }}\n",
            &env(json!({ "vpc_cidr": "10.0.0.0/16" })),
            Mode::Deploy,
        )
        .unwrap();
        // As in Jinja, a single trailing newline is dropped.
        assert_eq!(out, "CidrBlock: 10.0.0.0/16\nName: prod");
    }

    #[test]
    fn a_missing_input_names_the_file_line_and_input() {
        let e = render(
            "infrastructure/cloudformation.yaml",
            "A: 1\nB: {{ environment.inputs.subnet }}\n",
            &env(json!({})),
            Mode::Deploy,
        )
        .unwrap_err();
        assert_eq!(e.file, "infrastructure/cloudformation.yaml");
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("undefined"), "{e}");
        assert!(
            e.to_string()
                .starts_with("infrastructure/cloudformation.yaml:2: ")
        );
    }

    #[test]
    fn truncate_follows_jinja() {
        let t = |s: &str, n, kill, end: &str, leeway| {
            cut(s.into(), n, kill, end.into(), leeway).unwrap()
        };
        // Hand-checked against Jinja 3's do_truncate.
        assert_eq!(t("foo bar baz qux", 6, false, "...", 0), "foo...");
        assert_eq!(t("foo bar baz qux", 6, true, "...", 0), "foo...");
        assert_eq!(t("foo bar baz qux", 10, true, "!", 0), "foo bar b!");
        assert_eq!(t("foo bar baz qux", 10, false, "!", 0), "foo bar!");
        assert_eq!(t("foo bar baz qux", 11, false, "...", 5), "foo bar baz qux");
        assert_eq!(t("joined", 4, false, "..", 0), "jo..");
        assert_eq!(t("short", usize::MAX, false, "...", usize::MAX), "short");
        assert_eq!(
            render(
                "f",
                "{{ 'a very long name for a stack'|truncate(10, True, '', 0) }}",
                &json!({}),
                Mode::Deploy
            )
            .unwrap(),
            "a very lon"
        );
        // By name, as Jinja allows; an unknown name is an error.
        assert_eq!(
            render(
                "f",
                "{{ 'foo bar baz qux'|truncate(length=10, end='!', leeway=0) }}",
                &json!({}),
                Mode::Deploy
            )
            .unwrap(),
            "foo bar!"
        );
        assert!(
            render(
                "f",
                "{{ 'foo'|truncate(lenght=1) }}",
                &json!({}),
                Mode::Deploy
            )
            .is_err()
        );
    }

    #[test]
    fn minijinjas_debug_function_is_not_offered() {
        let e = render(
            "f",
            "{{ debug() }}",
            &json!({ "secret": "x" }),
            Mode::Deploy,
        )
        .unwrap_err();
        assert!(
            e.message.contains("unknown function") || e.message.contains("undefined"),
            "{e}"
        );
    }

    #[test]
    fn protons_filters_render_flow_yaml() {
        let ctx = json!({ "o": { "A": "hello", "B": "world" } });
        let r = |src: &str| render("f", src, &ctx, Mode::Deploy);
        assert_eq!(
            r("{{ o | proton_cfn_ecs_task_definition_formatted_env_vars }}").unwrap(),
            r#"[{"Name":"A","Value":"hello"},{"Name":"B","Value":"world"}]"#
        );
        assert_eq!(
            r("{{ o | proton_cfn_lambda_function_formatted_env_vars }}").unwrap(),
            r#"{"A":"hello","B":"world"}"#
        );
        let bad = json!({ "o": { "A": "has space" } });
        let e = render(
            "f",
            "{{ o | proton_cfn_lambda_function_formatted_env_vars(raw=False) }}",
            &bad,
            Mode::Deploy,
        )
        .unwrap_err();
        assert!(e.message.contains("must match"), "{e}");
        let positional = render(
            "f",
            "{{ o | proton_cfn_ecs_task_definition_formatted_env_vars(False) }}",
            &bad,
            Mode::Deploy,
        );
        assert!(positional.is_err());
        let arns = json!({ "o": {
            "P": "arn:aws:iam::123456789012:policy/Read",
            "Q": "not-an-arn",
            "R": "arn:aws-us-gov:iam::123456789012:policy/path/Write",
        }});
        assert_eq!(
            render(
                "f",
                "{{ o | proton_cfn_iam_policy_arns }}",
                &arns,
                Mode::Deploy
            )
            .unwrap(),
            r#"["arn:aws:iam::123456789012:policy/Read","arn:aws-us-gov:iam::123456789012:policy/path/Write"]"#
        );
    }

    #[test]
    fn jinja_features_of_protons_samples_render() {
        let ctx = json!({ "service_instances": [
            { "name": "dev", "inputs": { "port": 80 } },
            { "name": "prod", "inputs": { "port": 443 } },
        ], "x": { "y": 1 } });
        let src = "{% for i in service_instances %}{{ loop.index }}:{{ i.name }}={{ i.inputs.port }};{% endfor %}\
                   {% if x.z is defined %}z{% else %}no z{% endif %};{{ x.z | default('d') }};{{ x | tojson }};\
                   {% raw %}{{ literal }}{% endraw %}";
        assert_eq!(
            render("f", src, &ctx, Mode::Deploy).unwrap(),
            r#"1:dev=80;2:prod=443;no z;d;{"y": 1};{{ literal }}"#
        );
    }

    #[test]
    fn at_registration_outputs_are_placeholders_but_inputs_must_exist() {
        let ctx = instance_context(
            "api",
            "dev",
            &json!({ "port": 80 }),
            "staging",
            &json!({}),
            "111122223333",
        );
        let src =
            "Vpc: {{ environment.outputs.VpcId }}\nPort: {{ service_instance.inputs.port }}\n";
        assert_eq!(
            render("f", src, &ctx, Mode::Check).unwrap(),
            "Vpc: output-VpcId\nPort: 80"
        );
        assert!(render("f", src, &ctx, Mode::Deploy).is_err());
        let typo = "Port: {{ service_instance.inputs.prot }}\n";
        assert!(render("f", typo, &ctx, Mode::Check).is_err());
    }

    #[test]
    fn hostile_templates_stop_on_a_budget() {
        let e = render(
            "f",
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            &json!({}),
            Mode::Deploy,
        )
        .unwrap_err();
        assert!(e.message.contains("budget"), "{e}");
        let e = render(
            "f",
            "{% for i in range(2000) %}{{ 'x' * 1000 }}{% endfor %}",
            &json!({}),
            Mode::Deploy,
        )
        .unwrap_err();
        assert!(e.message.contains("at most"), "{e}");
        assert!(render("f", "{{ unclosed", &json!({}), Mode::Deploy).is_err());
    }
}
