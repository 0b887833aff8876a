-- gitsync schema, version 8: Proton deployments provision for real. A deployment is engine work
-- (claimed under a lease like any other, retried after transient failures) that renders the
-- template version, deploys its stack and records how it ended, its stack's outputs and its
-- events. Deployments recorded before this version deployed nothing; they keep saying so.
ALTER TABLE proton_deployments ADD COLUMN status_message TEXT;
ALTER TABLE proton_deployments ADD COLUMN completed_at BIGINT;
-- The stack's outputs (a JSON object) and resources (a JSON list of [logical id, physical id,
-- type]) once the deployment succeeded.
ALTER TABLE proton_deployments ADD COLUMN outputs TEXT;
ALTER TABLE proton_deployments ADD COLUMN resources TEXT;
ALTER TABLE proton_deployments ADD COLUMN stack_name TEXT;
-- The change set the deployment created, recorded before it is executed: a worker that takes
-- the deployment over follows it instead of deploying again.
ALTER TABLE proton_deployments ADD COLUMN change_set_id TEXT;
-- The service sync attempt that started the deployment and ends as it ends (none: the API).
ALTER TABLE proton_deployments ADD COLUMN attempt_id BIGINT;
ALTER TABLE proton_deployments ADD COLUMN failures BIGINT NOT NULL DEFAULT 0;
ALTER TABLE proton_deployments ADD COLUMN next_attempt_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE proton_deployments ADD COLUMN lease_owner TEXT;
ALTER TABLE proton_deployments ADD COLUMN lease_expires_at BIGINT;
ALTER TABLE proton_deployments ADD COLUMN lease_epoch BIGINT NOT NULL DEFAULT 0;
UPDATE proton_deployments SET completed_at = created_at,
    status_message = 'recorded only: gitsync does not provision Proton environments, service instances or pipelines yet; no stack was created or changed'
    WHERE status = 'SUCCEEDED';
CREATE INDEX proton_deployments_due ON proton_deployments (status, next_attempt_at);

-- What a deployment did, in order (stack events, change sets, failures).
CREATE TABLE proton_deployment_events (
    deployment_id TEXT NOT NULL,
    seq           BIGINT NOT NULL,
    event_type    TEXT NOT NULL,
    event         TEXT NOT NULL,
    external_id   TEXT,
    time          BIGINT NOT NULL,
    PRIMARY KEY (deployment_id, seq)
);

-- The stack each resource is deployed to: set by its first deployment (the documented naming
-- scheme) or by `gitsync proton bind-stack` (a stack Proton created).
ALTER TABLE proton_environments ADD COLUMN stack_name TEXT;
ALTER TABLE proton_service_instances ADD COLUMN stack_name TEXT;
-- 1 after bind-stack, until the next successful deployment: that deployment may take over the
-- bound stack (tag it as gitsync's), which gitsync otherwise never does with an untagged stack.
ALTER TABLE proton_environments ADD COLUMN stack_adopt BIGINT NOT NULL DEFAULT 0;
ALTER TABLE proton_service_instances ADD COLUMN stack_adopt BIGINT NOT NULL DEFAULT 0;

-- Stacks bound (`gitsync proton bind-stack`) to resources that do not exist yet: migrating from
-- AWS Proton, the binding comes first, so that creating the resource adopts Proton's stack
-- instead of deploying a new one. Creating the resource takes its binding.
CREATE TABLE proton_stack_bindings (
    account_id  TEXT NOT NULL,
    region      TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    target_name TEXT NOT NULL,
    stack_name  TEXT NOT NULL,
    PRIMARY KEY (account_id, region, target_kind, target_name)
);
