//! Status-change events put on tenants' Amazon EventBridge buses (`gitsync notifications add
//! --eventbridge-bus`): [`EventBridgeNotifications`] is the outbox's `eventbridge` deliverer.
//!
//! Each event is one `PutEvents` entry in the tenant's region, with the event's `source`,
//! `detail-type` and `detail` (docs/events.md). It runs with the tenant's deployment identity:
//! the server's own credentials for a trusted tenant without a role, otherwise the target's role
//! in the tenant's account, assumed through STS with the tenant's account as `ExternalId` (as
//! stack deployments are).

use aws_config::BehaviorVersion;
use aws_sdk_eventbridge as eb;
use aws_sdk_eventbridge::error::ProvideErrorMetadata;
use gitsync_deploy::{BoxFuture, Deliverer, DeliveryError};
use gitsync_model::Tenant;
use gitsync_model::notification::envelope;
use gitsync_store::{EVENTBRIDGE_DELIVERER, Store};
use std::time::Duration;

/// How long one `PutEvents` may take, credentials included.
const TIMEOUT: Duration = Duration::from_secs(20);

/// Puts status-change events on EventBridge buses.
pub struct EventBridgeNotifications {
    store: Store,
    base: aws_config::SdkConfig,
    /// An endpoint override (an EventBridge-compatible server, which serves STS too).
    endpoint: Option<String>,
    source: String,
}

impl EventBridgeNotifications {
    /// Loads the standard AWS configuration once; the region is always the tenant's.
    pub async fn new(
        store: Store,
        endpoint: Option<String>,
        source: impl Into<String>,
    ) -> EventBridgeNotifications {
        let base = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .load()
            .await;
        EventBridgeNotifications {
            store,
            base,
            endpoint,
            source: source.into(),
        }
    }

    async fn client(&self, tenant: &Tenant, role_arn: Option<&str>) -> eb::Client {
        let region = aws_config::Region::new(tenant.region.clone());
        let mut config = eb::config::Builder::from(&self.base).region(region.clone());
        if let Some(endpoint) = &self.endpoint {
            config = config.endpoint_url(endpoint);
        }
        if let Some(role_arn) = role_arn {
            let mut assume = aws_config::sts::AssumeRoleProvider::builder(role_arn)
                .session_name(format!("gitsync-events-{}", tenant.account_id))
                .external_id(&tenant.account_id)
                .region(region);
            assume = match &self.endpoint {
                Some(endpoint) => {
                    assume.configure(&self.base.to_builder().endpoint_url(endpoint).build())
                }
                None => assume.configure(&self.base),
            };
            config = config.credentials_provider(assume.build().await);
        }
        eb::Client::from_conf(config.build())
    }

    async fn put(
        &self,
        tenant: &Tenant,
        bus: &str,
        role_arn: Option<&str>,
        message: &str,
    ) -> Result<(), DeliveryError> {
        let message: serde_json::Value = serde_json::from_str(message)
            .map_err(|e| DeliveryError::permanent(format!("the stored event is not JSON: {e}")))?;
        let event = envelope(&message, &self.source);
        let text = |field: &str| event[field].as_str().unwrap_or_default().to_string();
        let entry = eb::types::PutEventsRequestEntry::builder()
            .event_bus_name(bus)
            .source(text("source"))
            .detail_type(text("detail-type"))
            .detail(event["detail"].to_string())
            .build();
        let client = self.client(tenant, role_arn).await;
        let call = client.put_events().entries(entry).send();
        let answer = tokio::time::timeout(TIMEOUT, call).await.map_err(|_| {
            DeliveryError::retry(format!(
                "PutEvents on {bus}: no answer within {} s",
                TIMEOUT.as_secs()
            ))
        })?;
        let output = answer.map_err(|e| {
            let code = e.code().unwrap_or("no error code").to_string();
            let said = e
                .message()
                .map(str::to_string)
                .unwrap_or_else(|| format!("{e}"));
            let message = format!("PutEvents on {bus} failed: {code}: {said}");
            // A bus or role that does not exist or may not be used is a person's to fix: the
            // event is retried (with backoff, for a day) so it arrives once they did.
            DeliveryError::retry(message)
        })?;
        if output.failed_entry_count() > 0 {
            let failed = output.entries().iter().find(|e| e.error_code().is_some());
            let code = failed.and_then(|e| e.error_code()).unwrap_or("unknown");
            let said = failed.and_then(|e| e.error_message()).unwrap_or("");
            let message = format!("PutEvents on {bus} refused the event: {code}: {said}");
            // Malformed events stay malformed; anything else (throttling, an internal failure)
            // may pass later.
            return Err(
                if code.contains("Malformed") || code.contains("InvalidArgument") {
                    DeliveryError::permanent(message)
                } else {
                    DeliveryError::retry(message)
                },
            );
        }
        Ok(())
    }
}

impl Deliverer for EventBridgeNotifications {
    fn name(&self) -> &'static str {
        EVENTBRIDGE_DELIVERER
    }

    fn deliver<'a>(
        &'a self,
        tenant: &'a Tenant,
        destination: &'a str,
        message: &'a str,
    ) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let target = self
                .store
                .eventbridge_target(tenant, destination)
                .await
                .map_err(|e| {
                    DeliveryError::retry(format!("cannot read notification target: {e}"))
                })?;
            let Some((bus, role_arn)) = target else {
                return Err(DeliveryError::permanent(format!(
                    "notification target {destination} was removed"
                )));
            };
            // The tenant's identity now: an operator may have changed its policy since.
            let policy = self
                .store
                .account_policy(&tenant.account_id)
                .await
                .map_err(|e| {
                    DeliveryError::retry(format!("cannot read the account's policy: {e}"))
                })?;
            match &role_arn {
                Some(role) => policy
                    .check_role(role)
                    .map_err(|why| DeliveryError::retry(format!("role {role}: {why}")))?,
                None if policy.trusted => {}
                None => {
                    return Err(DeliveryError::retry(format!(
                        "{tenant} does not deploy with the server's identity, and target {destination} names no role to put events as: remove it and add it again with --role-arn"
                    )));
                }
            }
            self.put(tenant, &bus, role_arn.as_deref(), message).await
        })
    }
}
