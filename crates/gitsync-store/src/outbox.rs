//! The outbox: what must be told outside (status-change notifications, commit statuses),
//! written in the same transaction as the change it reports, and drained by the engine's
//! delivery worker at least once.
//!
//! One row is one message for one destination. Rows are claimed under a lease with a fencing
//! epoch, like sync targets, so replicas share the work and a stopped replica's deliveries are
//! taken over; a delivery that keeps failing is retried with backoff until its deadline, then kept
//! with `failed_at` and its last error. Notification targets are per tenant: a change is fanned
//! out to the targets of the tenant whose resource changed, and to no one else's.

use crate::rows::{int, opt_text, text};
use crate::{Result, Store, StoreError};
use gitsync_model::{Tenant, Timestamp};
use sqlx::{AssertSqlSafe, Row};

/// The deliverer of status-change notifications to HTTP endpoints (`destination`: a
/// notification target's id).
pub const NOTIFICATION_DELIVERER: &str = "notification";
/// The deliverer of status-change notifications to Amazon EventBridge buses (`destination`: a
/// notification target's id).
pub const EVENTBRIDGE_DELIVERER: &str = "eventbridge";

/// A notification target's deliverer, by its kind (SQL over `notification_targets`).
const TARGET_DELIVERER: &str =
    "CASE kind WHEN 'eventbridge' THEN 'eventbridge' ELSE 'notification' END";
/// Outbox rows of notification targets, of either kind (`o` is the row).
const OF_TARGETS: &str = "o.deliverer IN ('notification', 'eventbridge')";
/// The deliverer of commit statuses (message: a `CommitStatus`; `destination`: the repository
/// link and the resource, so one stack's statuses reach its host in the order they were written).
pub const COMMIT_STATUS_DELIVERER: &str = "commit-status";

/// Where a tenant's status-change notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationTarget {
    pub id: String,
    /// `http`: POSTed to `address`, signed with the target's secret.
    pub kind: String,
    pub address: String,
    pub created_at: Timestamp,
    /// Deliveries not yet made (waiting, or retrying after failures).
    pub pending: i64,
    /// Deliveries given up after failing past their deadline.
    pub failed: i64,
    /// The last failure of a delivery to this target, if any is pending or failed.
    pub last_error: Option<String>,
}

/// How the outbox rows of one destination stand (kept for the outbox's retention).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverySummary {
    pub delivered: i64,
    /// Waiting, or retrying after failures.
    pub pending: i64,
    /// Given up.
    pub failed: i64,
    /// The last failure of a row not delivered, if any.
    pub last_error: Option<String>,
}

/// The outbox destination of a stack's commit statuses.
pub fn commit_status_destination(link_id: &str, resource_name: &str) -> String {
    format!("{link_id}/{resource_name}")
}

/// A pending row is due only when it is the oldest pending row of its destination: messages
/// reach a destination in the order they were written, and a failing one holds those behind it
/// until it is delivered or given up. (`o` is the row in question.)
const FIRST_OF_ITS_DESTINATION: &str = "NOT EXISTS (SELECT 1 FROM outbox e WHERE e.account_id = o.account_id \
     AND e.region = o.region AND e.deliverer = o.deliverer AND e.destination = o.destination \
     AND e.delivered_at IS NULL AND e.failed_at IS NULL AND e.delivery_id < o.delivery_id)";

/// An outbox row that is due, and whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    pub id: i64,
    pub tenant: Tenant,
}

/// An outbox row claimed for delivery.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub epoch: i64,
    pub tenant: Tenant,
    pub deliverer: String,
    pub destination: String,
    /// The message as stored (JSON).
    pub message: String,
    /// Deliveries tried before this one.
    pub attempts: i64,
    pub created_at: Timestamp,
}

/// Writes `message` to the outbox for every notification target of `tenant`, inside the
/// transaction of the change it reports. No targets, no rows.
pub(crate) async fn notify(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    tenant: &Tenant,
    message: &serde_json::Value,
) -> Result<()> {
    let now = Timestamp::now().millis();
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO outbox (account_id, region, deliverer, destination, message, created_at, next_attempt_at) \
         SELECT account_id, region, {TARGET_DELIVERER}, target_id, $3, $4, $4 FROM notification_targets \
         WHERE account_id = $1 AND region = $2"
    )))
    .bind(&tenant.account_id)
    .bind(&tenant.region)
    .bind(message.to_string())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Tells the tenant's notification targets that a Proton resource's status moved (through the
/// outbox, in the caller's transaction).
pub(crate) async fn notify_proton(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    tenant: &Tenant,
    kind: gitsync_model::notification::ProtonResourceKind,
    arn: &str,
    status: &str,
    previous: Option<&str>,
) -> Result<()> {
    let change = gitsync_model::notification::ProtonStatusChange {
        tenant,
        kind,
        arn,
        status,
        previous,
        time: Timestamp::now(),
    };
    notify(tx, tenant, &change.message()).await
}

/// Writes one message for one destination to the outbox, inside the transaction of the change
/// it reports.
pub(crate) async fn post(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    tenant: &Tenant,
    deliverer: &str,
    destination: &str,
    message: &impl serde::Serialize,
) -> Result<()> {
    let now = Timestamp::now().millis();
    let message = serde_json::to_string(message).map_err(StoreError::corrupt)?;
    sqlx::query(
        "INSERT INTO outbox (account_id, region, deliverer, destination, message, created_at, next_attempt_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(&tenant.account_id)
    .bind(&tenant.region)
    .bind(deliverer)
    .bind(destination)
    .bind(message)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Adds an HTTP notification target for `tenant`; its deliveries are signed with `secret`.
    pub async fn add_notification_target(
        &self,
        tenant: &Tenant,
        url: &str,
        secret: &[u8],
    ) -> Result<NotificationTarget> {
        self.add_target(tenant, "http", url, Some(secret), None)
            .await
    }

    /// Adds an Amazon EventBridge target for `tenant`: its events are put on `bus` (a name or
    /// an ARN), as `role_arn` when the tenant does not deploy with the server's identity.
    pub async fn add_eventbridge_target(
        &self,
        tenant: &Tenant,
        bus: &str,
        role_arn: Option<&str>,
    ) -> Result<NotificationTarget> {
        self.add_target(tenant, "eventbridge", bus, None, role_arn)
            .await
    }

    async fn add_target(
        &self,
        tenant: &Tenant,
        kind: &str,
        address: &str,
        secret: Option<&[u8]>,
        role_arn: Option<&str>,
    ) -> Result<NotificationTarget> {
        let id = format!("nt-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let now = Timestamp::now();
        let mut tx = self.write_tx().await?;
        let count: i64 = sqlx::query(
            "SELECT COUNT(*) FROM notification_targets WHERE account_id = $1 AND region = $2",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        // Every change is written once per target, in the transaction of the change.
        if count >= MAX_TARGETS_PER_TENANT {
            return Err(StoreError::LimitExceeded(format!(
                "{tenant} has {count} notification targets, the most allowed; remove one first"
            )));
        }
        sqlx::query(
            "INSERT INTO notification_targets (account_id, region, target_id, kind, address, secret_sealed, role_arn, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(&id)
        .bind(kind)
        .bind(address)
        .bind(secret.map(|s| self.sealer.seal(s)))
        .bind(role_arn)
        .bind(now.millis())
        .execute(&mut *tx)
        .await?;
        self.commit(tx).await?;
        Ok(NotificationTarget {
            id,
            kind: kind.into(),
            address: address.into(),
            created_at: now,
            pending: 0,
            failed: 0,
            last_error: None,
        })
    }

    /// An EventBridge target's bus and role; `None` once removed (or not such a target).
    pub async fn eventbridge_target(
        &self,
        tenant: &Tenant,
        id: &str,
    ) -> Result<Option<(String, Option<String>)>> {
        let row = sqlx::query(
            "SELECT address, role_arn FROM notification_targets WHERE account_id = $1 AND region = $2 \
             AND target_id = $3 AND kind = 'eventbridge'",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((text(&r, "address")?, opt_text(&r, "role_arn")?)))
            .transpose()
    }

    /// A tenant's notification targets, with how their deliveries stand.
    pub async fn list_notification_targets(
        &self,
        tenant: &Tenant,
    ) -> Result<Vec<NotificationTarget>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT t.target_id, t.kind, t.address, t.created_at, \
             (SELECT COUNT(*) FROM outbox o WHERE o.account_id = t.account_id AND o.region = t.region \
                AND {OF_TARGETS} AND o.destination = t.target_id AND o.delivered_at IS NULL AND o.failed_at IS NULL) AS pending, \
             (SELECT COUNT(*) FROM outbox o WHERE o.account_id = t.account_id AND o.region = t.region \
                AND {OF_TARGETS} AND o.destination = t.target_id AND o.failed_at IS NOT NULL) AS failed, \
             (SELECT o.last_error FROM outbox o WHERE o.account_id = t.account_id AND o.region = t.region \
                AND {OF_TARGETS} AND o.destination = t.target_id AND o.delivered_at IS NULL AND o.last_error IS NOT NULL \
                ORDER BY o.delivery_id DESC LIMIT 1) AS last_error \
             FROM notification_targets t WHERE t.account_id = $1 AND t.region = $2 ORDER BY t.created_at, t.target_id"
        )))
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(NotificationTarget {
                    id: text(r, "target_id")?,
                    kind: text(r, "kind")?,
                    address: text(r, "address")?,
                    created_at: Timestamp(int(r, "created_at")?),
                    pending: int(r, "pending")?,
                    failed: int(r, "failed")?,
                    last_error: opt_text(r, "last_error")?,
                })
            })
            .collect()
    }

    /// Removes a tenant's notification target; what was still to be delivered to it is given
    /// up, and says why. False when the tenant has no such target.
    pub async fn remove_notification_target(&self, tenant: &Tenant, id: &str) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let removed = sqlx::query(
            "DELETE FROM notification_targets WHERE account_id = $1 AND region = $2 AND target_id = $3",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE outbox AS o SET failed_at = $4, last_error = 'the notification target was removed', \
             lease_owner = NULL, lease_expires_at = NULL, lease_epoch = lease_epoch + 1 \
             WHERE o.account_id = $1 AND o.region = $2 AND {OF_TARGETS} AND o.destination = $3 \
             AND o.delivered_at IS NULL AND o.failed_at IS NULL"
        )))
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(id)
        .bind(Timestamp::now().millis())
        .execute(&mut *tx)
        .await?;
        self.commit(tx).await?;
        Ok(removed > 0)
    }

    /// Where a notification target delivers, and its secret, opened; `None` once removed.
    pub async fn notification_endpoint(
        &self,
        tenant: &Tenant,
        id: &str,
    ) -> Result<Option<(String, Vec<u8>)>> {
        let row = sqlx::query(
            "SELECT address, secret_sealed FROM notification_targets WHERE account_id = $1 AND region = $2 AND target_id = $3 AND kind = 'http'",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let secret = match opt_text(&r, "secret_sealed")? {
                Some(sealed) => self.sealer.open(&sealed)?,
                None => Vec::new(),
            };
            Ok((text(&r, "address")?, secret))
        })
        .transpose()
    }

    /// Outbox rows that are due: each the oldest pending row of its destination (a destination
    /// receives its messages in order, one at a time), not held by a live lease. Tenants take
    /// turns: every tenant's first due row comes before any tenant's second, so one tenant's
    /// backlog does not hold the others' messages back.
    pub async fn due_deliveries(&self, now: Timestamp, limit: usize) -> Result<Vec<DueDelivery>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT delivery_id, account_id, region FROM ( \
               SELECT o.delivery_id, o.account_id, o.region, o.next_attempt_at, \
                 ROW_NUMBER() OVER (PARTITION BY o.account_id, o.region ORDER BY o.next_attempt_at, o.delivery_id) AS turn \
               FROM outbox o WHERE o.delivered_at IS NULL AND o.failed_at IS NULL AND o.next_attempt_at <= $1 \
               AND (o.lease_expires_at IS NULL OR o.lease_expires_at <= $1) AND {FIRST_OF_ITS_DESTINATION} \
             ) AS due ORDER BY turn, next_attempt_at, delivery_id LIMIT $2"
        )))
        .bind(now.millis())
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DueDelivery {
                    id: int(r, "delivery_id")?,
                    tenant: Tenant::new(text(r, "account_id")?, text(r, "region")?),
                })
            })
            .collect()
    }

    /// Claims a due outbox row for `owner` until `now + ttl_ms`; `None` when another worker
    /// holds or finished it.
    pub async fn claim_delivery(
        &self,
        id: i64,
        owner: &str,
        now: Timestamp,
        ttl_ms: i64,
    ) -> Result<Option<ClaimedDelivery>> {
        let mut tx = self.write_tx().await?;
        let claimed = sqlx::query(AssertSqlSafe(format!(
            "UPDATE outbox AS o SET lease_owner = $2, lease_expires_at = $3, lease_epoch = lease_epoch + 1 \
             WHERE delivery_id = $1 AND delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $4 \
             AND (lease_expires_at IS NULL OR lease_expires_at <= $4) AND {FIRST_OF_ITS_DESTINATION}",
        )))
        .bind(id)
        .bind(owner)
        .bind(now.millis() + ttl_ms)
        .bind(now.millis())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            return Ok(None);
        }
        let r = sqlx::query(
            "SELECT delivery_id, lease_epoch, account_id, region, deliverer, destination, message, attempts, created_at \
             FROM outbox WHERE delivery_id = $1",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let claim = ClaimedDelivery {
            id: int(&r, "delivery_id")?,
            epoch: int(&r, "lease_epoch")?,
            tenant: Tenant::new(text(&r, "account_id")?, text(&r, "region")?),
            deliverer: text(&r, "deliverer")?,
            destination: text(&r, "destination")?,
            message: text(&r, "message")?,
            attempts: int(&r, "attempts")?,
            created_at: Timestamp(int(&r, "created_at")?),
        };
        self.commit(tx).await?;
        Ok(Some(claim))
    }

    /// Records how a claimed delivery went: delivered; failed, to be retried at `retry_at`; or
    /// failed for good (`retry_at` `None`). A worker that lost the row's lease writes nothing.
    pub async fn finish_delivery(
        &self,
        claim: &ClaimedDelivery,
        outcome: std::result::Result<(), (&str, Option<Timestamp>)>,
    ) -> Result<()> {
        let now = Timestamp::now().millis();
        let (delivered_at, failed_at, error, next) = match outcome {
            Ok(()) => (Some(now), None, None, None),
            Err((error, Some(retry_at))) => (None, None, Some(error), Some(retry_at.millis())),
            Err((error, None)) => (None, Some(now), Some(error), None),
        };
        // A message from outside (an endpoint's answer) is kept short.
        let error = error.map(|e| e.chars().take(1000).collect::<String>());
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, delivered_at = $1, failed_at = $2, \
             last_error = COALESCE($3, last_error), next_attempt_at = COALESCE($4, next_attempt_at), \
             lease_owner = NULL, lease_expires_at = NULL WHERE delivery_id = $5 AND lease_epoch = $6",
        )
        .bind(delivered_at)
        .bind(failed_at)
        .bind(error)
        .bind(next)
        .bind(claim.id)
        .bind(claim.epoch)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        self.commit(tx).await?;
        if done == 0 {
            return Err(StoreError::LeaseLost(format!(
                "lease on outbox row {} was lost to another worker",
                claim.id
            )));
        }
        Ok(())
    }

    /// Frees a claimed delivery without trying it (the server is stopping), to be taken at once.
    pub async fn release_delivery(&self, claim: &ClaimedDelivery) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE outbox SET lease_owner = NULL, lease_expires_at = NULL WHERE delivery_id = $1 AND lease_epoch = $2",
        )
        .bind(claim.id)
        .bind(claim.epoch)
        .execute(&mut *tx)
        .await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// Deletes delivered and given-up outbox rows settled before `before`; answers how many.
    pub async fn prune_outbox(&self, before: Timestamp) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("DELETE FROM outbox WHERE delivered_at < $1 OR failed_at < $1")
            .bind(before.millis())
            .execute(&mut *tx)
            .await?;
        self.commit(tx).await?;
        Ok(done.rows_affected())
    }

    /// How the deliveries of one destination stand (a stack's commit statuses, say).
    pub async fn delivery_summary(
        &self,
        tenant: &Tenant,
        deliverer: &str,
        destination: &str,
    ) -> Result<DeliverySummary> {
        let row = sqlx::query(
            "SELECT \
             COALESCE(SUM(CASE WHEN delivered_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS delivered, \
             COALESCE(SUM(CASE WHEN delivered_at IS NULL AND failed_at IS NULL THEN 1 ELSE 0 END), 0) AS pending, \
             COALESCE(SUM(CASE WHEN failed_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS failed, \
             (SELECT o.last_error FROM outbox o WHERE o.account_id = $1 AND o.region = $2 AND o.deliverer = $3 \
                AND o.destination = $4 AND o.delivered_at IS NULL AND o.last_error IS NOT NULL \
                ORDER BY o.delivery_id DESC LIMIT 1) AS last_error \
             FROM outbox WHERE account_id = $1 AND region = $2 AND deliverer = $3 AND destination = $4",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(deliverer)
        .bind(destination)
        .fetch_one(&self.pool)
        .await?;
        Ok(DeliverySummary {
            delivered: int(&row, "delivered")?,
            pending: int(&row, "pending")?,
            failed: int(&row, "failed")?,
            last_error: opt_text(&row, "last_error")?,
        })
    }

    /// Operator-wide counts for `/metrics`: outbox rows waiting per deliverer, and active
    /// sync blockers per sync type, over every tenant.
    pub async fn operator_gauges(&self) -> Result<(Vec<(String, i64)>, Vec<(String, i64)>)> {
        let count = |sql: &'static str| async move {
            let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
            rows.iter()
                .map(|r| Ok((text(r, "k")?, int(r, "n")?)))
                .collect::<Result<Vec<_>>>()
        };
        let pending = count(
            "SELECT deliverer AS k, COUNT(*) AS n FROM outbox WHERE delivered_at IS NULL AND failed_at IS NULL GROUP BY deliverer",
        )
        .await?;
        let blockers = count(
            "SELECT sync_type AS k, COUNT(*) AS n FROM sync_blockers WHERE status = 'ACTIVE' GROUP BY sync_type",
        )
        .await?;
        Ok((pending, blockers))
    }

    /// How many outbox rows wait for delivery, over every tenant.
    pub async fn pending_deliveries(&self) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM outbox WHERE delivered_at IS NULL AND failed_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        int(&row, "n")
    }
}

/// Notification targets a tenant may have: each status change is written once per target.
const MAX_TARGETS_PER_TENANT: i64 = 10;
