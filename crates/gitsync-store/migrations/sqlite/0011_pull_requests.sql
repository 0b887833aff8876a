-- gitsync schema, version 11: pull request previews (PullRequestComment). The open pull requests
-- of watched repositories, as their hosts list them (each branch check of a branch whose stacks
-- preview pull requests reads them), are work of the engine: a row is due while its head was not
-- previewed, and is claimed under a lease like a sync target. What each stack's last preview
-- found is kept for `gitsync status`.
CREATE TABLE pull_requests (
    account_id       TEXT NOT NULL,
    region           TEXT NOT NULL,
    link_id          TEXT NOT NULL,
    number           BIGINT NOT NULL,
    base_branch      TEXT NOT NULL,
    head_sha         TEXT NOT NULL,
    head_ref         TEXT NOT NULL,
    from_fork        BIGINT NOT NULL DEFAULT 0,
    url              TEXT,
    open             BIGINT NOT NULL DEFAULT 1,
    previewed_sha    TEXT,
    failures         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL DEFAULT 0,
    last_error       TEXT,
    updated_at       BIGINT NOT NULL,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    lease_epoch      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, region, link_id, number)
);
CREATE INDEX pull_requests_due ON pull_requests (open, next_attempt_at);

CREATE TABLE pull_request_previews (
    account_id       TEXT NOT NULL,
    region           TEXT NOT NULL,
    resource_name    TEXT NOT NULL,
    link_id          TEXT NOT NULL,
    number           BIGINT NOT NULL,
    head_sha         TEXT NOT NULL,
    summary          TEXT NOT NULL,
    previewed_at     BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, resource_name, link_id, number)
);

-- Pull requests from forks are previewed only when the configuration's owner opts in
-- (`gitsync previews forks --allow`): a preview runs CreateChangeSet with the stack's role.
ALTER TABLE sync_configurations ADD COLUMN preview_forks BIGINT NOT NULL DEFAULT 0;
