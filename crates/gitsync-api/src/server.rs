//! The HTTP side of the AWS APIs: recognise the service, protocol and operation of a request,
//! authenticate it, decode and validate its body, run the operation, and encode the answer or
//! the error. Everything a client sees passes through [`handle`].

use crate::cbor;
use crate::error::ApiError;
use crate::service::{Protocol, Service};
use crate::sigv4::{self, AuthError, SignedRequest};
use crate::{Api, connections, proton};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use gitsync_model::Tenant;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Instant;

/// Requests larger than this are refused; no operation takes more than a few kilobytes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

struct Call {
    service: Service,
    protocol: Protocol,
    operation: String,
}

/// Answers one AWS API request.
pub async fn handle(State(api): State<Arc<Api>>, request: Request) -> Response {
    let started = Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let (parts, body) = request.into_parts();
    let fallback_protocol = if is_cbor(&parts.headers) {
        Protocol::RpcV2Cbor
    } else {
        Protocol::AwsJson10
    };
    // Requests refused before their operation is known are counted as `unknown`.
    let unidentified = |error: ApiError| {
        gitsync_telemetry::Event::ApiRequest {
            request_id: &request_id,
            service: "unknown",
            operation: "unknown",
            status: error.status.as_u16(),
            error: error.code,
            elapsed: started.elapsed(),
        }
        .emit();
        respond_error(fallback_protocol, None, &request_id, error)
    };
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return unidentified(ApiError::serialization(format!(
                "the request body is larger than {MAX_BODY_BYTES} bytes"
            )));
        }
    };
    let call = match identify(&parts.method, parts.uri.path(), &parts.headers) {
        Ok(call) => call,
        Err(error) => return unidentified(error),
    };
    let query = parts.uri.query().unwrap_or("");
    let result = serve(
        &api,
        &call,
        parts.uri.path(),
        query,
        &parts.method,
        &parts.headers,
        &body,
    )
    .await;
    let status = match &result {
        Ok(_) => StatusCode::OK,
        Err(e) => e.status,
    };
    let error = result.as_ref().err().map(|e| e.code).unwrap_or("");
    gitsync_telemetry::Event::ApiRequest {
        request_id: &request_id,
        service: call.service.signing_name(),
        // Only operations of the service's model are labels: a name a client made up (signed or
        // not) is `unknown`.
        operation: if call
            .service
            .model()
            .operations
            .contains_key(&call.operation)
        {
            &call.operation
        } else {
            "unknown"
        },
        status: status.as_u16(),
        error,
        elapsed: started.elapsed(),
    }
    .emit();
    match result {
        Ok(output) => respond_ok(&call, &request_id, output),
        Err(error) => respond_error(call.protocol, Some(call.service), &request_id, error),
    }
}

fn is_cbor(headers: &HeaderMap) -> bool {
    headers
        .get("smithy-protocol")
        .is_some_and(|v| v == "rpc-v2-cbor")
        || headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v == "application/cbor")
}

/// Which service, protocol and operation a request is for.
fn identify(method: &http::Method, path: &str, headers: &HeaderMap) -> Result<Call, ApiError> {
    if method != http::Method::POST {
        return Err(ApiError::unknown_operation(format!(
            "{method} {path} is not an operation; AWS API calls are POST requests"
        )));
    }
    // RPC v2 CBOR: `[prefix]/service/{service}/operation/{operation}`.
    if let Some(index) = path.rfind("/service/") {
        let rest = &path[index + "/service/".len()..];
        let (service_name, operation) = rest.split_once("/operation/").ok_or_else(|| {
            ApiError::unknown_operation(format!(
                "{path} is not of the form /service/NAME/operation/NAME"
            ))
        })?;
        let service = Service::from_cbor_service_name(service_name).ok_or_else(|| {
            ApiError::unknown_operation(format!(
                "service {service_name} does not speak RPC v2 CBOR here"
            ))
        })?;
        if headers.contains_key("x-amz-target") || headers.contains_key("x-amzn-target") {
            return Err(ApiError::serialization(
                "RPC v2 CBOR requests must not carry X-Amz-Target",
            ));
        }
        if headers
            .get("smithy-protocol")
            .is_none_or(|v| v != "rpc-v2-cbor")
        {
            return Err(ApiError::serialization(
                "RPC v2 CBOR requests need the header smithy-protocol: rpc-v2-cbor",
            ));
        }
        return Ok(Call {
            service,
            protocol: Protocol::RpcV2Cbor,
            operation: operation.to_string(),
        });
    }
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::unknown_operation("missing X-Amz-Target header naming the operation")
        })?;
    let (prefix, operation) = target.rsplit_once('.').ok_or_else(|| {
        ApiError::unknown_operation(format!(
            "X-Amz-Target '{target}' is not of the form Service.Operation"
        ))
    })?;
    let service = Service::from_target_prefix(prefix).ok_or_else(|| {
        ApiError::unknown_operation(format!("unknown service '{prefix}' in X-Amz-Target"))
    })?;
    Ok(Call {
        service,
        protocol: Protocol::AwsJson10,
        operation: operation.to_string(),
    })
}

async fn serve(
    api: &Api,
    call: &Call,
    path: &str,
    query: &str,
    method: &http::Method,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Value, ApiError> {
    let tenant = authenticate(
        api,
        call.service,
        &SignedRequest {
            method: method.as_str(),
            path,
            query,
            headers,
            body,
        },
    )
    .await
    .map_err(|e| ApiError::auth(&e))?;
    let model = call.service.model();
    let operation = model.operations.get(&call.operation).ok_or_else(|| {
        ApiError::unknown_operation(format!(
            "{} is not an operation of {}",
            call.operation,
            call.service.signing_name()
        ))
    })?;
    let input = match call.protocol {
        Protocol::AwsJson10 if body.is_empty() => Value::Object(Map::new()),
        Protocol::AwsJson10 => serde_json::from_slice::<Value>(body).map_err(|e| {
            ApiError::serialization(format!("the request body is not valid JSON: {e}"))
        })?,
        Protocol::RpcV2Cbor => cbor::decode(body).map_err(ApiError::serialization)?,
    };
    if !input.is_object() {
        return Err(ApiError::serialization(
            "the request body must be a JSON object",
        ));
    }
    if let Some(shape) = &operation.input {
        model
            .validate(shape, &input)
            .map_err(|invalid| match invalid {
                crate::shapes::Invalid::Type(m) => ApiError::serialization(m),
                // AWS's front end answers every modeled-constraint violation of every service
                // with ValidationException, whether or not the operation models it.
                constraints => ApiError::validation(constraints.message()),
            })?;
    }
    match call.service {
        Service::Proton => proton::call(api, &tenant, &call.operation, input).await,
        Service::CodeConnections | Service::CodestarConnections => {
            connections::call(api, call.service, &tenant, &call.operation, input).await
        }
    }
}

/// Verifies the request's signature; the tenant is the key's account in the signed region.
async fn authenticate(
    api: &Api,
    service: Service,
    request: &SignedRequest<'_>,
) -> Result<Tenant, AuthError> {
    let auth = sigv4::parse_authorization(request.headers)?;
    let region = &auth.credential.region;
    if region.len() > 32
        || !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(AuthError::Invalid(format!(
            "Credential scope region '{region}' is not a region name"
        )));
    }
    let key = match api.keys.credential(&api.store, &auth.credential).await {
        Ok(Some(key)) => key,
        Ok(None) => return Err(AuthError::UnknownKey),
        Err(e) => {
            tracing::error!(error = %e, "cannot read access keys");
            return Err(AuthError::UnknownKey);
        }
    };
    sigv4::verify_with(
        request,
        &auth,
        &key.signing_key,
        service.signing_name(),
        (api.clock)(),
        true,
    )?;
    Ok(Tenant::new(key.account_id, auth.credential.region))
}

fn base_response(
    status: StatusCode,
    request_id: &str,
    content_type: &'static str,
) -> http::response::Builder {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header("x-amzn-RequestId", request_id)
}

fn respond_ok(call: &Call, request_id: &str, output: Value) -> Response {
    let model = call.service.model();
    let output_shape = model
        .operations
        .get(&call.operation)
        .and_then(|o| o.output.as_deref());
    match call.protocol {
        Protocol::AwsJson10 => {
            let body = serde_json::to_vec(&output).unwrap_or_else(|_| b"{}".to_vec());
            build(
                base_response(StatusCode::OK, request_id, "application/x-amz-json-1.0"),
                body,
            )
        }
        Protocol::RpcV2Cbor => {
            let body = cbor::encode(model, output_shape, &output);
            build(
                base_response(StatusCode::OK, request_id, "application/cbor")
                    .header("smithy-protocol", "rpc-v2-cbor"),
                body,
            )
        }
    }
}

/// Errors carry `__type` in the body (botocore reads only that) and `x-amzn-ErrorType` in the
/// headers (the JavaScript and Rust SDKs read it when `__type` is missing).
fn respond_error(
    protocol: Protocol,
    service: Option<Service>,
    request_id: &str,
    error: ApiError,
) -> Response {
    let message_member = service.map(Service::message_member).unwrap_or("message");
    let mut document = Map::new();
    document.insert("__type".into(), Value::String(error.code.to_string()));
    document.insert(message_member.into(), Value::String(error.message.clone()));
    let document = Value::Object(document);
    let builder = match protocol {
        Protocol::AwsJson10 => {
            base_response(error.status, request_id, "application/x-amz-json-1.0")
        }
        Protocol::RpcV2Cbor => base_response(error.status, request_id, "application/cbor")
            .header("smithy-protocol", "rpc-v2-cbor"),
    }
    .header("x-amzn-ErrorType", HeaderValue::from_static(error.code));
    let body = match protocol {
        Protocol::AwsJson10 => serde_json::to_vec(&document).unwrap_or_default(),
        Protocol::RpcV2Cbor => cbor::encode(&crate::shapes::CODECONNECTIONS, None, &document),
    };
    build(builder, body)
}

fn build(builder: http::response::Builder, body: Vec<u8>) -> Response {
    builder.body(Body::from(body)).unwrap_or_else(|_| {
        let mut response = Response::new(Body::from("{}"));
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        response
    })
}
