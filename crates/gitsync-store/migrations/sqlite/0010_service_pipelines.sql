-- gitsync schema, version 10: service pipelines. A service whose template version has a
-- `pipeline_infrastructure` bundle has one pipeline, deployed like an instance (its deployments
-- are `SERVICE_PIPELINE` rows of proton_deployments, `target_name` the service) with the
-- account's pipeline role. Columns as proton_service_instances have them.
CREATE TABLE proton_service_pipelines (
    account_id       TEXT NOT NULL,
    region           TEXT NOT NULL,
    service_name     TEXT NOT NULL,
    arn              TEXT NOT NULL,
    template_name    TEXT NOT NULL,
    template_major   BIGINT NOT NULL,
    template_minor   BIGINT NOT NULL,
    spec             TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    deployment_status TEXT NOT NULL,
    deployment_status_message TEXT,
    last_attempted_at BIGINT NOT NULL,
    last_succeeded_at BIGINT NOT NULL,
    last_attempted_deployment_id TEXT,
    last_succeeded_deployment_id TEXT,
    stack_name       TEXT,
    stack_adopt      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, region, service_name)
);

-- Proton's account settings: the role pipelines deploy with (UpdateAccountSettings).
CREATE TABLE proton_account_settings (
    account_id       TEXT NOT NULL,
    region           TEXT NOT NULL,
    pipeline_service_role_arn TEXT,
    pipeline_codebuild_role_arn TEXT,
    PRIMARY KEY (account_id, region)
);
