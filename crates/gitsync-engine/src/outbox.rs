//! The delivery worker: drains the outbox the store writes in the transactions of the changes it
//! reports. Each due row is claimed under a lease (replicas share the work; a stopped replica's
//! rows are taken over when its lease runs out, or at once after a graceful stop) and handed to the
//! [`Deliverer`] its row names. Delivery is at least once: a row is marked delivered only after
//! the receiver took it. A failure is recorded on the row and retried with backoff until the
//! row's deadline, then given up and logged; it never touches the sync that caused it.

use crate::Engine;
use crate::backoff::after_failures;
use gitsync_deploy::DeliveryError;
use gitsync_model::Timestamp;
use gitsync_store::ClaimedDelivery;
use std::time::Duration;

/// Failed deliveries retry after 5 s, doubling to 10 min.
const RETRY_BASE: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(600);
/// A message not delivered within a day of the change it reports is given up.
pub(crate) const DEADLINE: Duration = Duration::from_secs(24 * 3600);
/// Delivered and given-up rows are kept this long (for `gitsync notifications list`).
pub(crate) const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// A delivery's lease: longer than any one delivery may take (the deliverers time out sooner).
pub(crate) const LEASE: Duration = Duration::from_secs(60);

impl Engine {
    /// Delivers one claimed outbox row and records how it went.
    pub(crate) async fn deliver(&self, claim: ClaimedDelivery) {
        let outcome = match self.deliverers.get(claim.deliverer.as_str()) {
            Some(deliverer) => {
                deliverer
                    .deliver(&claim.tenant, &claim.destination, &claim.message)
                    .await
            }
            None => Err(DeliveryError::retry(format!(
                "this server has no deliverer for '{}' messages",
                claim.deliverer
            ))),
        };
        let now = self.db_now().await;
        let retry_at = outcome
            .as_ref()
            .err()
            .and_then(|error| retry_time(&claim, error, now));
        // Labels come from this server's deliverers only, never from a stored row.
        let deliverer = self
            .deliverers
            .get(claim.deliverer.as_str())
            .map_or("unknown", |d| d.name());
        gitsync_telemetry::Event::OutboxDelivery {
            deliverer,
            outcome: match (&outcome, retry_at) {
                (Ok(()), _) => "delivered",
                (Err(_), Some(_)) => "retrying",
                (Err(_), None) => "given_up",
            },
        }
        .emit();
        let recorded = match &outcome {
            Ok(()) => {
                tracing::debug!(delivery = claim.id, deliverer = %claim.deliverer, destination = %claim.destination, "delivered");
                self.store.finish_delivery(&claim, Ok(())).await
            }
            Err(error) => {
                match retry_at {
                    Some(at) => tracing::warn!(
                        delivery = claim.id,
                        tenant = %claim.tenant,
                        deliverer = %claim.deliverer,
                        destination = %claim.destination,
                        attempts = claim.attempts + 1,
                        retry_in_s = (at.millis() - now.millis()) / 1000,
                        error = %error.message,
                        "delivery failed; retrying"
                    ),
                    None => tracing::error!(
                        delivery = claim.id,
                        tenant = %claim.tenant,
                        deliverer = %claim.deliverer,
                        destination = %claim.destination,
                        attempts = claim.attempts + 1,
                        error = %error.message,
                        "delivery failed; giving it up"
                    ),
                }
                self.store
                    .finish_delivery(&claim, Err((&error.message, retry_at)))
                    .await
            }
        };
        if let Err(e) = recorded {
            tracing::warn!(delivery = claim.id, error = %e, "cannot record a delivery's outcome; it will be tried again");
        }
    }
}

/// When a failed delivery is tried again: after the backoff or the receiver's `Retry-After`
/// (whichever is later), unless the failure is permanent or that is past the row's deadline.
fn retry_time(claim: &ClaimedDelivery, error: &DeliveryError, now: Timestamp) -> Option<Timestamp> {
    if error.permanent {
        return None;
    }
    let backoff = after_failures(RETRY_BASE, claim.attempts + 1, RETRY_MAX);
    let wait = error
        .retry_after
        .map_or(backoff, |asked| asked.max(backoff));
    // A receiver may ask for any wait: one past the deadline means giving up (and no overflow).
    if wait > DEADLINE {
        return None;
    }
    let at = now.plus_millis(wait.as_millis() as i64);
    let deadline = claim.created_at.plus_millis(DEADLINE.as_millis() as i64);
    (at.millis() <= deadline.millis()).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitsync_model::Tenant;

    fn claim(attempts: i64, created_at: Timestamp) -> ClaimedDelivery {
        ClaimedDelivery {
            id: 1,
            epoch: 1,
            tenant: Tenant::new("111122223333", "us-east-1"),
            deliverer: "notification".into(),
            destination: "nt-1".into(),
            message: "{}".into(),
            attempts,
            created_at,
        }
    }

    #[test]
    fn failures_back_off_until_the_deadline_and_permanent_ones_stop_at_once() {
        let now = Timestamp(1_000_000_000_000);
        let fresh = claim(0, now);
        let first = retry_time(&fresh, &DeliveryError::retry("503"), now).unwrap();
        let waited = first.millis() - now.millis();
        assert!((4_500..=5_500).contains(&waited), "{waited}");
        // The receiver's Retry-After wins when it asks for longer.
        let asked = DeliveryError {
            retry_after: Some(Duration::from_secs(120)),
            ..DeliveryError::retry("429")
        };
        let later = retry_time(&fresh, &asked, now).unwrap();
        assert_eq!(later.millis() - now.millis(), 120_000);
        // Asking for ever does not overflow: it is past the deadline, so the row is given up.
        let forever = DeliveryError {
            retry_after: Some(Duration::from_secs(u64::MAX)),
            ..DeliveryError::retry("429")
        };
        assert_eq!(retry_time(&fresh, &forever, now), None);
        // Past the deadline, or permanent: given up.
        let old = claim(30, now.plus_millis(-(DEADLINE.as_millis() as i64) + 1_000));
        assert_eq!(retry_time(&old, &DeliveryError::retry("503"), now), None);
        assert_eq!(
            retry_time(&fresh, &DeliveryError::permanent("gone"), now),
            None
        );
    }
}
