-- gitsync schema, version 6 (SQLite): the outbox, and the notification targets it delivers to.

-- `gitsync notifications add`: where a tenant's status-change events are sent. An HTTP target
-- (kind 'http') is a URL and the secret its deliveries are signed with (sealed).
CREATE TABLE notification_targets (
    account_id    TEXT NOT NULL,
    region        TEXT NOT NULL,
    target_id     TEXT NOT NULL,
    kind          TEXT NOT NULL,
    address       TEXT NOT NULL,
    secret_sealed TEXT,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, target_id)
);

-- What must be told outside, written in the transaction of the change it reports and drained by
-- the delivery worker: one row per message and destination. `deliverer` names the code that
-- delivers it ('notification': a notification target, `destination` its id). Rows are claimed
-- under a lease with a fencing epoch, like sync targets; a delivered row keeps `delivered_at`,
-- one that kept failing past its deadline keeps `failed_at` and its last error.
CREATE TABLE outbox (
    delivery_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id       TEXT NOT NULL,
    region           TEXT NOT NULL,
    deliverer        TEXT NOT NULL,
    destination      TEXT NOT NULL,
    message          TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    last_error       TEXT,
    delivered_at     BIGINT,
    failed_at        BIGINT,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    lease_epoch      BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX outbox_pending ON outbox (next_attempt_at) WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX outbox_by_tenant ON outbox (account_id, region, delivery_id);
