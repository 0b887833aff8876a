//! The one HTTP client of the crate: hyper with rustls and the system's roots, a timeout on
//! every exchange, answers read only up to a limit, and errors that name the origin only.

use bytes::Bytes;
use gitsync_deploy::DeliveryError;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// The `User-Agent` of every request (GitHub refuses requests without one).
pub(crate) const USER_AGENT: &str = concat!("gitsync/", env!("CARGO_PKG_VERSION"));

/// What an endpoint answered.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    /// At most the limit the request was sent with.
    pub body: Bytes,
}

impl Answer {
    /// The start of the body, as text for a message.
    pub fn said(&self, chars: usize) -> String {
        String::from_utf8_lossy(&self.body)
            .chars()
            .take(chars)
            .collect::<String>()
            .trim()
            .to_string()
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `Retry-After` in seconds (the HTTP-date form is not used by the receivers gitsync talks to).
    pub fn retry_after(&self) -> Option<Duration> {
        self.header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
    }
}

#[derive(Clone)]
pub(crate) struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl HttpClient {
    /// Fails only when the system's trusted root certificates cannot be read.
    pub fn new(timeout: Duration) -> Result<Self, String> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| format!("cannot read the system's root certificates: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(HttpClient {
            client: Client::builder(TokioExecutor::new()).build(https),
            timeout,
        })
    }

    /// Sends `request` and reads at most `limit` bytes of the answer, within the timeout. A
    /// request that gets no answer is worth trying again; `what` names it in errors (never a
    /// token, never a path that may hold one).
    pub async fn send(
        &self,
        request: http::Request<Full<Bytes>>,
        limit: usize,
        what: &str,
    ) -> Result<Answer, DeliveryError> {
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| DeliveryError::retry(format!("{what}: {}", error_chain(&e))))?;
            let (parts, body) = response.into_parts();
            let body = http_body_util::Limited::new(body, limit)
                .collect()
                .await
                .map(|b| b.to_bytes());
            let body = match body {
                Ok(body) => body,
                // A failed answer's body is only shown: an unreadable one is no reason to retry.
                Err(_) if !parts.status.is_success() => Bytes::new(),
                Err(e) => {
                    return Err(DeliveryError::retry(format!(
                        "{what}: the answer could not be read within {limit} bytes: {e}"
                    )));
                }
            };
            Ok(Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(DeliveryError::retry(format!(
                    "{what}: no answer within {} s",
                    self.timeout.as_secs()
                )))
            })
    }
}

/// `scheme://host[:port]` of a URL, for messages.
pub(crate) fn origin(url: &str) -> String {
    match url.parse::<http::Uri>() {
        Ok(uri) => format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("http"),
            uri.authority()
                .map(|a| a.as_str().rsplit('@').next().unwrap_or_default())
                .unwrap_or_default()
        ),
        Err(_) => "the endpoint".to_string(),
    }
}

/// An error and its causes, `: `-separated (hyper's outer error says only "client error").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_origin_only() {
        assert_eq!(
            origin("https://user:pw@hooks.example.com:8443/services/T0/B1/secret?x=1"),
            "https://hooks.example.com:8443"
        );
        assert_eq!(origin("not a url"), "the endpoint");
    }
}
