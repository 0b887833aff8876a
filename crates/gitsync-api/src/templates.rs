//! Proton's template registry on the wire: the nine operations each of environment and service
//! templates. The two families differ in a handful of member names (`provisioning` or
//! `pipelineProvisioning`, the compatibility lists of service versions), so one set of handlers
//! serves both, reading the validated input document and writing the output document directly.

use crate::Api;
use crate::document::{insert_opt, page_size, part, redeem, required, s, tags};
use crate::error::ApiError;
use crate::service::Service;
use gitsync_model::{ProtonTemplate, TemplateType, TemplateVersion, TemplateVersionStatus, Tenant};
use gitsync_store::{StoreError, TemplateSpec};
use serde_json::{Map, Value, json};

/// Which registry operation a Proton operation name is, and for which template type.
pub(crate) fn operation(name: &str) -> Option<(TemplateType, &'static str)> {
    use TemplateType::{Environment, Service};
    Some(match name {
        "CreateEnvironmentTemplate" => (Environment, "CreateTemplate"),
        "GetEnvironmentTemplate" => (Environment, "GetTemplate"),
        "ListEnvironmentTemplates" => (Environment, "ListTemplates"),
        "UpdateEnvironmentTemplate" => (Environment, "UpdateTemplate"),
        "DeleteEnvironmentTemplate" => (Environment, "DeleteTemplate"),
        "GetEnvironmentTemplateVersion" => (Environment, "GetVersion"),
        "ListEnvironmentTemplateVersions" => (Environment, "ListVersions"),
        "UpdateEnvironmentTemplateVersion" => (Environment, "UpdateVersion"),
        "DeleteEnvironmentTemplateVersion" => (Environment, "DeleteVersion"),
        "CreateServiceTemplate" => (Service, "CreateTemplate"),
        "GetServiceTemplate" => (Service, "GetTemplate"),
        "ListServiceTemplates" => (Service, "ListTemplates"),
        "UpdateServiceTemplate" => (Service, "UpdateTemplate"),
        "DeleteServiceTemplate" => (Service, "DeleteTemplate"),
        "GetServiceTemplateVersion" => (Service, "GetVersion"),
        "ListServiceTemplateVersions" => (Service, "ListVersions"),
        "UpdateServiceTemplateVersion" => (Service, "UpdateVersion"),
        "DeleteServiceTemplateVersion" => (Service, "DeleteVersion"),
        _ => return None,
    })
}

fn err(e: StoreError) -> ApiError {
    ApiError::from_store(Service::Proton, e)
}

fn provisioning_member(template_type: TemplateType) -> &'static str {
    match template_type {
        TemplateType::Environment => "provisioning",
        TemplateType::Service => "pipelineProvisioning",
    }
}

/// The output member names of each family.
fn names(template_type: TemplateType) -> (&'static str, &'static str, &'static str) {
    match template_type {
        TemplateType::Environment => (
            "environmentTemplate",
            "environmentTemplateVersion",
            "templates",
        ),
        TemplateType::Service => ("serviceTemplate", "serviceTemplateVersion", "templates"),
    }
}

fn template_json(t: &ProtonTemplate, summary: bool) -> Value {
    let mut m = Map::new();
    m.insert("arn".into(), json!(t.arn));
    m.insert("createdAt".into(), json!(t.created_at.epoch_seconds()));
    m.insert(
        "lastModifiedAt".into(),
        json!(t.last_modified_at.epoch_seconds()),
    );
    m.insert("name".into(), json!(t.name));
    insert_opt(
        &mut m,
        "description",
        t.description.as_ref().map(|d| json!(d)),
    );
    insert_opt(
        &mut m,
        "displayName",
        t.display_name.as_ref().map(|d| json!(d)),
    );
    if !summary {
        insert_opt(
            &mut m,
            "encryptionKey",
            t.encryption_key.as_ref().map(|d| json!(d)),
        );
    }
    insert_opt(
        &mut m,
        provisioning_member(t.template_type),
        t.provisioning.as_ref().map(|d| json!(d)),
    );
    insert_opt(
        &mut m,
        "recommendedVersion",
        t.recommended_version.as_ref().map(|d| json!(d)),
    );
    Value::Object(m)
}

fn version_json(v: &TemplateVersion, summary: bool) -> Value {
    let mut m = Map::new();
    m.insert("arn".into(), json!(v.arn));
    m.insert("createdAt".into(), json!(v.created_at.epoch_seconds()));
    m.insert(
        "lastModifiedAt".into(),
        json!(v.last_modified_at.epoch_seconds()),
    );
    m.insert("majorVersion".into(), json!(v.major.to_string()));
    m.insert("minorVersion".into(), json!(v.minor.to_string()));
    m.insert("status".into(), json!(v.status.as_str()));
    m.insert("templateName".into(), json!(v.template_name));
    insert_opt(
        &mut m,
        "description",
        v.description.as_ref().map(|d| json!(d)),
    );
    insert_opt(
        &mut m,
        "statusMessage",
        v.status_message.as_ref().map(|d| json!(d)),
    );
    insert_opt(
        &mut m,
        "recommendedMinorVersion",
        v.recommended_minor.map(|n| json!(n.to_string())),
    );
    if !summary {
        insert_opt(&mut m, "schema", v.schema.as_ref().map(|d| json!(d)));
        if v.template_type == TemplateType::Service {
            let compat: Vec<Value> = v
                .compatible_environments
                .iter()
                .map(|(name, major)| json!({"templateName": name, "majorVersion": major}))
                .collect();
            m.insert(
                "compatibleEnvironmentTemplates".into(),
                Value::Array(compat),
            );
            if !v.supported_component_sources.is_empty() {
                m.insert(
                    "supportedComponentSources".into(),
                    json!(v.supported_component_sources),
                );
            }
        }
    }
    Value::Object(m)
}

/// Runs one registry operation.
pub(crate) async fn call(
    api: &Api,
    tenant: &Tenant,
    template_type: TemplateType,
    op: &str,
    input: &Value,
) -> Result<Value, ApiError> {
    let store = &api.store;
    let (template_key, version_key, list_key) = names(template_type);
    let listing = |what: &str| format!("{what}/{}", template_type.as_str());
    Ok(match op {
        "CreateTemplate" => {
            let spec = TemplateSpec {
                name: required(input, "name")?.to_string(),
                display_name: s(input, "displayName").map(str::to_string),
                description: s(input, "description").map(str::to_string),
                encryption_key: s(input, "encryptionKey").map(str::to_string),
                provisioning: s(input, provisioning_member(template_type)).map(str::to_string),
            };
            let t = store
                .create_template(tenant, template_type, &spec, &tags(input))
                .await
                .map_err(err)?;
            json!({ template_key: template_json(&t, false) })
        }
        "GetTemplate" => {
            let t = store
                .get_template(tenant, template_type, required(input, "name")?)
                .await
                .map_err(err)?;
            json!({ template_key: template_json(&t, false) })
        }
        "UpdateTemplate" => {
            let t = store
                .update_template(
                    tenant,
                    template_type,
                    required(input, "name")?,
                    s(input, "displayName"),
                    s(input, "description"),
                )
                .await
                .map_err(err)?;
            json!({ template_key: template_json(&t, false) })
        }
        "DeleteTemplate" => {
            let t = store
                .delete_template(tenant, template_type, required(input, "name")?)
                .await
                .map_err(err)?;
            json!({ template_key: template_json(&t, false) })
        }
        "ListTemplates" => {
            let after = redeem(api, tenant, &listing("templates"), input)?;
            let page = store
                .list_templates(tenant, template_type, after.as_deref(), page_size(input))
                .await
                .map_err(err)?;
            let mut out = json!({ list_key: page.items.iter().map(|t| template_json(t, true)).collect::<Vec<_>>() });
            if let Some(next) = page.next {
                out["nextToken"] = json!(api.pages.issue(tenant, &listing("templates"), &next));
            }
            out
        }
        "GetVersion" => {
            let v = store
                .get_template_version(
                    tenant,
                    template_type,
                    required(input, "templateName")?,
                    part(input, "majorVersion")?,
                    part(input, "minorVersion")?,
                )
                .await
                .map_err(err)?;
            json!({ version_key: version_json(&v, false) })
        }
        "UpdateVersion" => {
            let status = s(input, "status").and_then(TemplateVersionStatus::parse);
            if template_type == TemplateType::Service
                && (input.get("compatibleEnvironmentTemplates").is_some()
                    || input.get("supportedComponentSources").is_some())
            {
                return Err(ApiError::invalid(
                    Service::Proton,
                    "compatibleEnvironmentTemplates and supportedComponentSources come from the version's .template-registration.yaml in Git; change them there",
                ));
            }
            let v = store
                .update_template_version(
                    tenant,
                    &gitsync_store::VersionRef {
                        template_type,
                        name: required(input, "templateName")?.to_string(),
                        major: part(input, "majorVersion")?,
                        minor: part(input, "minorVersion")?,
                    },
                    s(input, "description"),
                    status,
                )
                .await
                .map_err(err)?;
            json!({ version_key: version_json(&v, false) })
        }
        "DeleteVersion" => {
            let v = store
                .delete_template_version(
                    tenant,
                    template_type,
                    required(input, "templateName")?,
                    part(input, "majorVersion")?,
                    part(input, "minorVersion")?,
                )
                .await
                .map_err(err)?;
            json!({ version_key: version_json(&v, false) })
        }
        "ListVersions" => {
            let name = required(input, "templateName")?;
            let major = match s(input, "majorVersion") {
                Some(_) => Some(part(input, "majorVersion")?),
                None => None,
            };
            let list = format!("{}/{name}", listing("versions"));
            let after = redeem(api, tenant, &list, input)?;
            let page = store
                .list_template_versions(
                    tenant,
                    template_type,
                    name,
                    major,
                    after.as_deref(),
                    page_size(input),
                )
                .await
                .map_err(err)?;
            let mut out = json!({ "templateVersions": page.items.iter().map(|v| version_json(v, true)).collect::<Vec<_>>() });
            if let Some(next) = page.next {
                out["nextToken"] = json!(api.pages.issue(tenant, &list, &next));
            }
            out
        }
        other => {
            return Err(ApiError::unknown_operation(format!(
                "{other} is not a template registry operation"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_map_to_registry_operations() {
        assert_eq!(
            operation("CreateEnvironmentTemplate"),
            Some((TemplateType::Environment, "CreateTemplate"))
        );
        assert_eq!(
            operation("ListServiceTemplates"),
            Some((TemplateType::Service, "ListTemplates"))
        );
        assert_eq!(
            operation("UpdateServiceTemplateVersion"),
            Some((TemplateType::Service, "UpdateVersion"))
        );
        assert_eq!(
            operation("ListEnvironmentTemplateVersions"),
            Some((TemplateType::Environment, "ListVersions"))
        );
        assert_eq!(operation("CreateEnvironmentTemplateVersion"), None);
        assert_eq!(operation("CreateService"), None);
    }
}
