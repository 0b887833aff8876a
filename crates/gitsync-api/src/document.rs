//! Reading validated input documents and writing output documents, for the Proton operations
//! that are served straight from JSON (the template registry, environments, services).

use crate::Api;
use crate::error::ApiError;
use crate::service::Service;
use gitsync_model::{Tag, Tenant};
use serde_json::{Map, Value};

pub(crate) fn s<'a>(input: &'a Value, member: &str) -> Option<&'a str> {
    input.get(member).and_then(Value::as_str)
}

pub(crate) fn required<'a>(input: &'a Value, member: &str) -> Result<&'a str, ApiError> {
    s(input, member)
        .ok_or_else(|| ApiError::invalid(Service::Proton, format!("{member} is required")))
}

/// A version part (`^(0|[1-9]\d*)$`, checked by the model) as a number.
pub(crate) fn part(input: &Value, member: &str) -> Result<i64, ApiError> {
    required(input, member)?.parse().map_err(|_| {
        ApiError::invalid(
            Service::Proton,
            format!("{member}: not a version number this server can hold"),
        )
    })
}

pub(crate) fn insert_opt(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        map.insert(key.into(), v);
    }
}

pub(crate) fn tags(input: &Value) -> Vec<Tag> {
    input
        .get("tags")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|t| {
                    Some(Tag {
                        key: s(t, "key")?.to_string(),
                        value: s(t, "value")?.to_string(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn page_size(input: &Value) -> usize {
    input
        .get("maxResults")
        .and_then(Value::as_i64)
        .filter(|n| *n > 0)
        .map(|n| n as usize)
        .unwrap_or(50)
}

pub(crate) fn redeem(
    api: &Api,
    tenant: &Tenant,
    listing: &str,
    input: &Value,
) -> Result<Option<String>, ApiError> {
    api.pages.resume(
        tenant,
        listing,
        s(input, "nextToken"),
        Service::Proton,
        "nextToken",
    )
}
