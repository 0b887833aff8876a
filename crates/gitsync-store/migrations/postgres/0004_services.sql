-- Proton environments, services and service instances (PostgreSQL), the deployments that made them,
-- and the branches each service's proton-ops file names (service sync watches them).

CREATE TABLE proton_environments (
    account_id       TEXT NOT NULL,
    region           TEXT NOT NULL,
    name             TEXT NOT NULL,
    arn              TEXT NOT NULL,
    description      TEXT,
    template_name    TEXT NOT NULL,
    template_major   BIGINT NOT NULL,
    template_minor   BIGINT NOT NULL,
    spec             TEXT,
    proton_service_role_arn TEXT,
    codebuild_role_arn TEXT,
    component_role_arn TEXT,
    created_at       BIGINT NOT NULL,
    deployment_status TEXT NOT NULL,
    deployment_status_message TEXT,
    last_attempted_at BIGINT NOT NULL,
    last_succeeded_at BIGINT NOT NULL,
    last_attempted_deployment_id TEXT,
    last_succeeded_deployment_id TEXT,
    PRIMARY KEY (account_id, region, name)
);

CREATE TABLE proton_services (
    account_id       TEXT NOT NULL,
    region           TEXT NOT NULL,
    name             TEXT NOT NULL,
    arn              TEXT NOT NULL,
    description      TEXT,
    template_name    TEXT NOT NULL,
    template_major   BIGINT NOT NULL,
    spec             TEXT NOT NULL,
    repository_connection_arn TEXT,
    repository_id    TEXT,
    branch_name      TEXT,
    created_at       BIGINT NOT NULL,
    last_modified_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, name)
);

CREATE TABLE proton_service_instances (
    account_id       TEXT NOT NULL,
    region           TEXT NOT NULL,
    service_name     TEXT NOT NULL,
    name             TEXT NOT NULL,
    arn              TEXT NOT NULL,
    environment_name TEXT NOT NULL,
    template_name    TEXT NOT NULL,
    template_major   BIGINT NOT NULL,
    template_minor   BIGINT NOT NULL,
    spec             TEXT,
    last_client_request_token TEXT,
    source_commit    TEXT,
    created_at       BIGINT NOT NULL,
    deployment_status TEXT NOT NULL,
    deployment_status_message TEXT,
    last_attempted_at BIGINT NOT NULL,
    last_succeeded_at BIGINT NOT NULL,
    last_attempted_deployment_id TEXT,
    last_succeeded_deployment_id TEXT,
    PRIMARY KEY (account_id, region, service_name, name)
);
CREATE INDEX proton_service_instances_by_environment ON proton_service_instances (account_id, region, environment_name);

-- Every deployment, kept as history: what was applied, from where (a commit, or the API).
CREATE TABLE proton_deployments (
    deployment_id    TEXT PRIMARY KEY,
    account_id       TEXT NOT NULL,
    region           TEXT NOT NULL,
    target_kind      TEXT NOT NULL,
    target_name      TEXT NOT NULL,
    environment_name TEXT NOT NULL,
    template_name    TEXT NOT NULL,
    template_major   BIGINT NOT NULL,
    template_minor   BIGINT NOT NULL,
    spec             TEXT,
    source_commit    TEXT,
    status           TEXT NOT NULL,
    created_at       BIGINT NOT NULL
);
CREATE INDEX proton_deployments_by_target ON proton_deployments (account_id, region, target_kind, target_name, created_at);

-- entries: the ops file's entries for the instances on that branch (canonical JSON), so a check
-- of the ops file's branch re-evaluates only the branches whose entries changed.
CREATE TABLE service_sync_branches (
    account_id       TEXT NOT NULL,
    region           TEXT NOT NULL,
    service_name     TEXT NOT NULL,
    branch           TEXT NOT NULL,
    entries          TEXT NOT NULL,
    PRIMARY KEY (account_id, region, service_name, branch)
);

-- 1 after a blocker of the target was resolved, until its next successful attempt: the deployer
-- then recreates a stack that is gone instead of raising the blocker again.
ALTER TABLE sync_targets ADD COLUMN guard_lifted BIGINT NOT NULL DEFAULT 0;
