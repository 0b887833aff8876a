-- gitsync schema, version 1 (SQLite). Times are epoch milliseconds. Every tenant-owned table
-- leads with (account_id, region) so that every query is scoped by its primary key prefix.

CREATE TABLE access_keys (
    access_key_id TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL,
    secret_sealed TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE connections (
    account_id         TEXT NOT NULL,
    region             TEXT NOT NULL,
    connection_id      TEXT NOT NULL,
    arn                TEXT NOT NULL,
    name               TEXT NOT NULL,
    provider_type      TEXT NOT NULL,
    host_arn           TEXT,
    status             TEXT NOT NULL,
    credentials_sealed TEXT,
    created_at         BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, connection_id)
);

CREATE TABLE hosts (
    account_id        TEXT NOT NULL,
    region            TEXT NOT NULL,
    host_id           TEXT NOT NULL,
    arn               TEXT NOT NULL,
    name              TEXT NOT NULL,
    provider_type     TEXT NOT NULL,
    provider_endpoint TEXT NOT NULL,
    vpc_configuration TEXT,
    status            TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, host_id)
);

CREATE TABLE repository_links (
    account_id         TEXT NOT NULL,
    region             TEXT NOT NULL,
    link_id            TEXT NOT NULL,
    arn                TEXT NOT NULL,
    connection_id      TEXT NOT NULL,
    connection_arn     TEXT NOT NULL,
    encryption_key_arn TEXT,
    owner_id           TEXT NOT NULL,
    provider_type      TEXT NOT NULL,
    repository_name    TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, link_id),
    UNIQUE (account_id, region, connection_id, owner_id, repository_name)
);

CREATE TABLE sync_configurations (
    account_id                 TEXT NOT NULL,
    region                     TEXT NOT NULL,
    sync_type                  TEXT NOT NULL,
    resource_name              TEXT NOT NULL,
    link_id                    TEXT NOT NULL,
    branch                     TEXT NOT NULL,
    config_file                TEXT NOT NULL,
    role_arn                   TEXT NOT NULL,
    publish_deployment_status  TEXT,
    trigger_resource_update_on TEXT,
    pull_request_comment       TEXT,
    created_at                 BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, sync_type, resource_name)
);
CREATE INDEX sync_configurations_by_link ON sync_configurations (account_id, region, link_id, resource_name);

CREATE TABLE tags (
    account_id   TEXT NOT NULL,
    region       TEXT NOT NULL,
    resource_arn TEXT NOT NULL,
    tag_key      TEXT NOT NULL,
    tag_value    TEXT NOT NULL,
    PRIMARY KEY (account_id, region, resource_arn, tag_key)
);

CREATE TABLE proton_repositories (
    account_id     TEXT NOT NULL,
    region         TEXT NOT NULL,
    provider       TEXT NOT NULL,
    name           TEXT NOT NULL,
    arn            TEXT NOT NULL,
    connection_arn TEXT NOT NULL,
    encryption_key TEXT,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, provider, name)
);

CREATE TABLE template_sync_configs (
    account_id          TEXT NOT NULL,
    region              TEXT NOT NULL,
    template_name       TEXT NOT NULL,
    template_type       TEXT NOT NULL,
    repository_provider TEXT NOT NULL,
    repository_name     TEXT NOT NULL,
    branch              TEXT NOT NULL,
    subdirectory        TEXT,
    created_at          BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, template_name, template_type)
);

CREATE TABLE service_sync_configs (
    account_id          TEXT NOT NULL,
    region              TEXT NOT NULL,
    service_name        TEXT NOT NULL,
    repository_provider TEXT NOT NULL,
    repository_name     TEXT NOT NULL,
    branch              TEXT NOT NULL,
    file_path           TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, service_name)
);

-- Sync history. A target is what one status read answers for; its attempts are kept.
CREATE TABLE sync_targets (
    account_id     TEXT NOT NULL,
    region         TEXT NOT NULL,
    sync_type      TEXT NOT NULL,
    target_key     TEXT NOT NULL,
    display_name   TEXT NOT NULL,
    repository_key TEXT NOT NULL,
    branch         TEXT NOT NULL,
    directory      TEXT NOT NULL,
    desired_revision TEXT,
    PRIMARY KEY (account_id, region, sync_type, target_key)
);

CREATE TABLE resource_sync_attempts (
    attempt_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id       TEXT NOT NULL,
    region           TEXT NOT NULL,
    sync_type        TEXT NOT NULL,
    target_key       TEXT NOT NULL,
    target           TEXT NOT NULL,
    status           TEXT NOT NULL,
    initial_revision TEXT NOT NULL,
    target_revision  TEXT NOT NULL,
    started_at       BIGINT NOT NULL,
    finished_at      BIGINT
);
CREATE INDEX resource_sync_attempts_by_target
    ON resource_sync_attempts (account_id, region, sync_type, target_key, attempt_id);

CREATE TABLE resource_sync_events (
    attempt_id  BIGINT NOT NULL,
    seq         INTEGER NOT NULL,
    event_type  TEXT NOT NULL,
    event       TEXT NOT NULL,
    time        BIGINT NOT NULL,
    external_id TEXT,
    PRIMARY KEY (attempt_id, seq)
);

CREATE TABLE repository_sync_attempts (
    attempt_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id     TEXT NOT NULL,
    region         TEXT NOT NULL,
    sync_type      TEXT NOT NULL,
    repository_key TEXT NOT NULL,
    branch         TEXT NOT NULL,
    status         TEXT NOT NULL,
    started_at     BIGINT NOT NULL,
    finished_at    BIGINT
);
CREATE INDEX repository_sync_attempts_by_branch
    ON repository_sync_attempts (account_id, region, sync_type, repository_key, branch, attempt_id);

CREATE TABLE repository_sync_events (
    attempt_id  BIGINT NOT NULL,
    seq         INTEGER NOT NULL,
    event_type  TEXT NOT NULL,
    event       TEXT NOT NULL,
    time        BIGINT NOT NULL,
    external_id TEXT,
    PRIMARY KEY (attempt_id, seq)
);

CREATE TABLE sync_blockers (
    blocker_id           TEXT PRIMARY KEY,
    account_id           TEXT NOT NULL,
    region               TEXT NOT NULL,
    sync_type            TEXT NOT NULL,
    resource_name        TEXT NOT NULL,
    parent_resource_name TEXT,
    status               TEXT NOT NULL,
    created_reason       TEXT NOT NULL,
    created_at           BIGINT NOT NULL,
    contexts             TEXT NOT NULL,
    resolved_reason      TEXT,
    resolved_at          BIGINT
);
CREATE INDEX sync_blockers_by_resource ON sync_blockers (account_id, region, sync_type, resource_name, created_at);
