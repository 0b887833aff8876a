//! From a validated input document to a typed operation and back.

use crate::error::ApiError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::future::Future;

/// Reads `input` as the operation's typed input, runs it, and writes its typed output.
pub(crate) async fn run<I, O, F, Fut>(input: Value, operation: F) -> Result<Value, ApiError>
where
    I: DeserializeOwned,
    O: Serialize,
    F: FnOnce(I) -> Fut,
    Fut: Future<Output = Result<O, ApiError>>,
{
    // The input passed model validation, so this only fails where a type the model allows
    // cannot be represented (for example an integer beyond 32 bits).
    let input: I = serde_json::from_value(input)
        .map_err(|e| ApiError::serialization(format!("cannot read the request: {e}")))?;
    let output = operation(input).await?;
    serde_json::to_value(output).map_err(|e| {
        tracing::error!(error = %e, "cannot serialize a response");
        ApiError::internal()
    })
}
