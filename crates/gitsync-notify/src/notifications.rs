//! Status-change notifications, POSTed to the HTTP endpoints each tenant registers (`gitsync
//! notifications add --url`), signed with the endpoint's secret. [`HttpNotifications`] is a [`Deliverer`] of the engine's outbox: the engine
//! calls it at least once per message and records what it answers.
//!
//! A delivery is a `POST` of the event (JSON, the shape of an Amazon EventBridge event) with:
//! - `Content-Type: application/json`;
//! - `X-Gitsync-Event`: the event's `detail-type`;
//! - `X-Gitsync-Delivery`: the event's `id`, the same on every retry of one message;
//! - `X-Gitsync-Signature-256`: `sha256=` and the hex HMAC-SHA256 of the body under the secret.
//!
//! Any 2xx answer delivers it; 400, 413, 415 and 422 refuse this message and give it up; anything
//! else (or no answer within the timeout) is retried by the engine with backoff, after
//! `Retry-After` when the receiver sends one.

use crate::http::{HttpClient, USER_AGENT, origin};
use bytes::Bytes;
use gitsync_deploy::{BoxFuture, Deliverer, DeliveryError};
use gitsync_model::Tenant;
use gitsync_model::notification::envelope;
use gitsync_store::{NOTIFICATION_DELIVERER, Store};
use hmac::{Hmac, Mac};
use http_body_util::Full;
use sha2::Sha256;
use std::time::Duration;

/// The header that carries a delivery's signature.
pub const SIGNATURE_HEADER: &str = "x-gitsync-signature-256";
/// The header that carries the event's `detail-type`.
pub const EVENT_HEADER: &str = "x-gitsync-event";
/// The header that carries the event's `id` (stable across retries).
pub const DELIVERY_HEADER: &str = "x-gitsync-delivery";

/// How long one delivery may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a failed answer's body kept in the error.
const ERROR_BODY_BYTES: usize = 300;

/// `sha256=<hex HMAC-SHA256 of body under secret>`, the value of [`SIGNATURE_HEADER`].
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a notification endpoint's URL: `http` or `https`, with a host. Answers why not.
pub fn check_url(url: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("'{url}' is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(format!("'{url}' must start with https:// or http://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("'{url}' names no host"));
    }
    Ok(uri)
}

/// Whether an answer refuses this message itself (malformed, too large, not understood), so
/// that trying it again cannot help: then it is given up at once rather than holding the
/// messages behind it (a target receives its messages in order) for a day. Any other failure
/// (unauthorized, not found, timeouts, rate limits, server errors) may pass and is retried.
fn rejects_this_message(status: http::StatusCode) -> bool {
    matches!(status.as_u16(), 400 | 413 | 415 | 422)
}

/// Delivers status-change notifications to tenants' HTTP endpoints.
pub struct HttpNotifications {
    store: Store,
    client: HttpClient,
    source: String,
}

impl HttpNotifications {
    /// `source` is the events' `source` field. Fails only when the system's trusted root
    /// certificates cannot be read.
    pub fn new(store: Store, source: impl Into<String>) -> Result<Self, String> {
        Ok(HttpNotifications {
            store,
            client: HttpClient::new(TIMEOUT)?,
            source: source.into(),
        })
    }

    async fn post(&self, url: &str, secret: &[u8], message: &str) -> Result<(), DeliveryError> {
        // Endpoint paths often carry a token (chat webhooks do): errors, which are stored and
        // logged, name the origin only.
        let shown = origin(url);
        let message: serde_json::Value = serde_json::from_str(message)
            .map_err(|e| DeliveryError::permanent(format!("the stored event is not JSON: {e}")))?;
        let event = envelope(&message, &self.source);
        let body = event.to_string();
        let text = |field: &str| event[field].as_str().unwrap_or_default().to_string();
        let request = http::Request::post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, USER_AGENT)
            .header(EVENT_HEADER, text("detail-type"))
            .header(DELIVERY_HEADER, text("id"))
            .header(SIGNATURE_HEADER, signature(secret, body.as_bytes()))
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| DeliveryError::permanent(format!("cannot address {shown}: {e}")))?;
        let answer = self
            .client
            .send(request, ERROR_BODY_BYTES, &format!("POST {shown}"))
            .await?;
        if answer.status.is_success() {
            return Ok(());
        }
        let said = answer.said(ERROR_BODY_BYTES);
        Err(DeliveryError {
            message: if said.is_empty() {
                format!("POST {shown} answered {}", answer.status)
            } else {
                format!("POST {shown} answered {}: {said}", answer.status)
            },
            permanent: rejects_this_message(answer.status),
            retry_after: answer.retry_after(),
        })
    }
}

impl Deliverer for HttpNotifications {
    fn name(&self) -> &'static str {
        NOTIFICATION_DELIVERER
    }

    fn deliver<'a>(
        &'a self,
        tenant: &'a Tenant,
        destination: &'a str,
        message: &'a str,
    ) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let endpoint = self
                .store
                .notification_endpoint(tenant, destination)
                .await
                .map_err(|e| {
                    DeliveryError::retry(format!("cannot read notification target: {e}"))
                })?;
            let Some((url, secret)) = endpoint else {
                return Err(DeliveryError::permanent(format!(
                    "notification target {destination} was removed"
                )));
            };
            self.post(&url, &secret, message).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_in_hex() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn only_refusals_of_the_message_itself_give_it_up_at_once() {
        for given_up in [400, 413, 415, 422] {
            assert!(rejects_this_message(
                http::StatusCode::from_u16(given_up).unwrap()
            ));
        }
        for retried in [401, 403, 404, 408, 429, 500, 502, 503] {
            assert!(!rejects_this_message(
                http::StatusCode::from_u16(retried).unwrap()
            ));
        }
    }

    #[test]
    fn only_http_and_https_urls_with_a_host_are_endpoints() {
        assert!(check_url("https://hooks.example.com/gitsync").is_ok());
        assert!(check_url("http://127.0.0.1:8080/x").is_ok());
        for bad in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "example.com",
            "https://",
            "",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
