//! `gitsync proton render`: a template version rendered as a deployment would render it, without
//! a server (docs/proton.md, "Preview before push").

use crate::cli::ProtonCommand;
use anyhow::{Context, Result, anyhow, bail};
use gitsync_deploy::proton::{MAX_BUNDLE_BYTES, render_dir};
use gitsync_deploy::render::{
    Mode, PipelineInstance, PipelineService, environment_context, instance_context,
    pipeline_context,
};
use gitsync_deploy::spec::{
    InputKind, Schema, ServiceSpec, checked_environment_inputs, pipeline_inputs,
};
use gitsync_model::DeploymentTarget;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;

/// Most files read from a bundle directory (a template version holds a handful).
const MAX_FILES: usize = 64;

pub async fn run(command: ProtonCommand) -> Result<()> {
    match command {
        ProtonCommand::BindStack {
            environment,
            service,
            instance,
            pipeline,
            stack_name,
            tenant,
            state,
        } => {
            let target = match (environment, service, instance, pipeline) {
                (Some(name), None, None, None) => DeploymentTarget::Environment { name },
                (None, Some(service), Some(instance), None) => {
                    DeploymentTarget::ServiceInstance { service, instance }
                }
                (None, None, None, Some(service)) => DeploymentTarget::ServicePipeline { service },
                _ => bail!(
                    "name one resource: --environment, --service with --instance, or --pipeline SERVICE"
                ),
            };
            let state = state.open().await?;
            let bound = state
                .store
                .bind_stack(&tenant.tenant(), &target, &stack_name)
                .await?;
            let what = target.describe();
            match bound {
                gitsync_store::Binding::Bound => println!(
                    "{what} is bound to stack {stack_name}: its next deployment updates that stack and tags it as gitsync's"
                ),
                gitsync_store::Binding::Pending => println!(
                    "{what} does not exist yet; creating it will deploy to stack {stack_name} and tag it as gitsync's"
                ),
            }
            Ok(())
        }
        render @ ProtonCommand::Render { .. } => render_command(render),
    }
}

fn render_command(command: ProtonCommand) -> Result<()> {
    let ProtonCommand::Render {
        bundle_dir,
        spec,
        instance,
        pipeline,
        environment_outputs,
        instance_outputs,
        account_id,
        name,
        branch,
        repository_id,
        repository_connection_arn,
    } = command
    else {
        unreachable!("render_command is called with ProtonCommand::Render only");
    };
    let files = read_bundle(&bundle_dir)?;
    let name = name.unwrap_or_else(|| template_name(&bundle_dir));
    let schema = files
        .get("schema/schema.yaml")
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .with_context(|| format!("{} has no schema/schema.yaml", bundle_dir.display()))?;
    let spec_text = std::fs::read_to_string(&spec)
        .with_context(|| format!("cannot read {}", spec.display()))?;
    let environment_outputs = json_map(environment_outputs.as_deref())?;
    let problems = |p: Vec<String>| anyhow!(p.join("\n"));
    let (dir, context) = if files.contains_key("infrastructure/manifest.yaml") {
        if instance.is_some() || pipeline {
            bail!(
                "{} is an environment template: --instance and --pipeline are for service templates",
                bundle_dir.display()
            );
        }
        let inputs =
            checked_environment_inputs(&schema, &name, Some(&spec_text)).map_err(problems)?;
        ("infrastructure", environment_context(&name, &inputs))
    } else if files.contains_key("instance_infrastructure/manifest.yaml") {
        let service =
            ServiceSpec::parse(&spec.display().to_string(), &spec_text).map_err(|e| anyhow!(e))?;
        let instance_schema =
            Schema::parse(&schema, InputKind::ServiceInstance).map_err(|e| anyhow!(e))?;
        let inputs_of = |i: &gitsync_deploy::spec::InstanceSpec| {
            instance_schema
                .check(&format!("instance {}", i.name), i.inputs.as_ref())
                .map_err(problems)
        };
        if pipeline {
            let instance_outputs = json_map(instance_outputs.as_deref())?;
            let pipeline_inputs = pipeline_inputs(&schema, &service).map_err(problems)?;
            let mut instances = Vec::new();
            for i in &service.instances {
                instances.push(PipelineInstance {
                    name: i.name.clone(),
                    inputs: inputs_of(i)?,
                    outputs: instance_outputs
                        .get(&i.name)
                        .cloned()
                        .unwrap_or_else(|| json!({})),
                    environment: i.environment.clone(),
                    environment_outputs: environment_outputs.clone(),
                    account_id: account_id.clone(),
                });
            }
            let service = PipelineService {
                name: name.clone(),
                branch_name: branch,
                repository_connection_arn,
                repository_id,
            };
            (
                "pipeline_infrastructure",
                pipeline_context(&service, &pipeline_inputs, &instances),
            )
        } else {
            let chosen = match (&instance, service.instances.as_slice()) {
                (Some(wanted), all) => all
                    .iter()
                    .find(|i| &i.name == wanted)
                    .with_context(|| format!("{} lists no instance {wanted}", spec.display()))?,
                (None, [only]) => only,
                (None, []) => bail!("{} lists no instances", spec.display()),
                (None, all) => bail!(
                    "{} lists {} instances ({}): choose one with --instance, or render the pipeline with --pipeline",
                    spec.display(),
                    all.len(),
                    all.iter()
                        .map(|i| i.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            (
                "instance_infrastructure",
                instance_context(
                    &name,
                    &chosen.name,
                    &inputs_of(chosen)?,
                    &chosen.environment,
                    &environment_outputs,
                    &account_id,
                ),
            )
        }
    } else {
        bail!(
            "{} holds neither infrastructure/manifest.yaml nor instance_infrastructure/manifest.yaml: give a template version's directory (templates/NAME/v1)",
            bundle_dir.display()
        );
    };
    if dir == "pipeline_infrastructure"
        && !files.contains_key("pipeline_infrastructure/manifest.yaml")
    {
        bail!(
            "{} has no pipeline_infrastructure/manifest.yaml: this template defines no pipeline",
            bundle_dir.display()
        );
    }
    let rendered = render_dir(&files, dir, &context, Mode::Deploy).map_err(problems)?;
    let many = rendered.len() > 1;
    for (path, text) in rendered {
        if many {
            println!("# ---- {path} ----");
        }
        println!("{text}");
    }
    Ok(())
}

/// The template's name: the directory above `v<major>`.
fn template_name(bundle_dir: &Path) -> String {
    let dir = bundle_dir
        .canonicalize()
        .unwrap_or(bundle_dir.to_path_buf());
    dir.parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "example".into())
}

/// Every file under the bundle directory, by path relative to it, within the bundle limits.
fn read_bundle(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    let mut total = 0usize;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        let entries =
            std::fs::read_dir(&at).with_context(|| format!("cannot read {}", at.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let bytes =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            total += bytes.len();
            if files.len() >= MAX_FILES || total > MAX_BUNDLE_BYTES {
                bail!(
                    "{} holds more than {MAX_FILES} files or {MAX_BUNDLE_BYTES} bytes: is it a template version's directory?",
                    dir.display()
                );
            }
            let relative = path
                .strip_prefix(dir)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            files.insert(relative, bytes);
        }
    }
    Ok(files)
}

/// A JSON map from a file, or an empty map without one.
fn json_map(file: Option<&Path>) -> Result<Value> {
    let Some(file) = file else {
        return Ok(json!({}));
    };
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let value: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))?;
    if !value.is_object() {
        bail!(
            "{} must hold a JSON map of output names to values",
            file.display()
        );
    }
    Ok(value)
}
