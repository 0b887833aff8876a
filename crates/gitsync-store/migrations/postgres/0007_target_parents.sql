-- gitsync schema, version 7 (PostgreSQL): what each sync target belongs to, as a column, so that
-- "every instance of a service" and "every major of a template" are equality matches on it
-- instead of prefix matches on the formatted target key (SyncTarget::parent_key in the model).
ALTER TABLE sync_targets ADD COLUMN parent_key TEXT;

-- Service instances (`service/instance`) belong to their service; template majors
-- (`TYPE/name/major`, the major all digits) to `TYPE/name`; stacks to nothing.
UPDATE sync_targets SET parent_key = split_part(target_key, '/', 1) WHERE sync_type = 'SERVICE_SYNC';
UPDATE sync_targets SET parent_key = rtrim(rtrim(target_key, '0123456789'), '/') WHERE sync_type = 'TEMPLATE_SYNC';

CREATE INDEX sync_targets_by_parent ON sync_targets (account_id, region, sync_type, parent_key);
