-- The sync engine's working state (PostgreSQL). Leases: lease_owner / lease_expires_at / lease_epoch;
-- every write a lease holder makes checks the epoch it claimed (fencing).

-- A branch of a repository that some sync configuration watches, for one sync type.
CREATE TABLE watched_branches (
    account_id       TEXT NOT NULL,
    region           TEXT NOT NULL,
    sync_type        TEXT NOT NULL,
    repository_key   TEXT NOT NULL,
    branch           TEXT NOT NULL,
    remote_sha       TEXT,
    synced_sha       TEXT,
    next_check_at    BIGINT NOT NULL,
    failures         INTEGER NOT NULL,
    last_error       TEXT,
    queued_attempt_id BIGINT,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    lease_epoch      BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, sync_type, repository_key, branch)
);
CREATE INDEX watched_branches_due ON watched_branches (next_check_at);

ALTER TABLE sync_targets ADD COLUMN desired_sha TEXT;
ALTER TABLE sync_targets ADD COLUMN watched_ids TEXT;
ALTER TABLE sync_targets ADD COLUMN attempted_sha TEXT;
ALTER TABLE sync_targets ADD COLUMN applied_revision TEXT;
ALTER TABLE sync_targets ADD COLUMN superseded TEXT;
ALTER TABLE sync_targets ADD COLUMN next_attempt_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sync_targets ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_targets ADD COLUMN running_attempt_id BIGINT;
ALTER TABLE sync_targets ADD COLUMN lease_owner TEXT;
ALTER TABLE sync_targets ADD COLUMN lease_expires_at BIGINT;
ALTER TABLE sync_targets ADD COLUMN lease_epoch BIGINT NOT NULL DEFAULT 0;

CREATE TABLE webhook_secrets (
    account_id      TEXT NOT NULL,
    region          TEXT NOT NULL,
    owner_id        TEXT NOT NULL,
    repository_name TEXT NOT NULL,
    secret_sealed   TEXT NOT NULL,
    PRIMARY KEY (account_id, region, owner_id, repository_name)
);
CREATE INDEX webhook_secrets_by_repository ON webhook_secrets (owner_id, repository_name);

-- Every webhook delivery, recorded before it is acknowledged.
CREATE TABLE webhook_deliveries (
    delivery_id  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider     TEXT NOT NULL,
    received_at  BIGINT NOT NULL,
    repository   TEXT NOT NULL,
    branch       TEXT NOT NULL,
    sha          TEXT,
    verified     TEXT NOT NULL,
    outcome      TEXT NOT NULL
);
