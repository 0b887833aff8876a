-- gitsync schema, version 9: each destination receives its messages in the order they were
-- written, one at a time. A pending row is due only when no earlier row for the same destination
-- is pending; this index answers that question without scanning the destination's history.
CREATE INDEX outbox_destination_pending ON outbox (account_id, region, deliverer, destination, delivery_id)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
