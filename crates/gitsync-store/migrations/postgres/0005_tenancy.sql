-- gitsync schema, version 5 (PostgreSQL): what the operator allows each tenant, and which commit
-- gitsync really deployed to each stack.

-- `gitsync accounts set`: the AWS accounts a tenant's sync roles may be in (a JSON array) and
-- whether it may deploy with the server's own credentials. A tenant without a row may deploy
-- into its own account only, through its role.
CREATE TABLE account_policies (
    account_id      TEXT PRIMARY KEY,
    deploy_accounts TEXT NOT NULL,
    trusted         BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

-- An installation that existed before: the account created on its first start keeps deploying
-- as it did: trusted, into its own account and those its sync configurations name today.
INSERT INTO account_policies (account_id, deploy_accounts, trusted, updated_at)
SELECT k.account_id,
       (SELECT json_agg(a)::text FROM (
            SELECT k.account_id AS a
            UNION
            SELECT substr(s.role_arn, 14, 12) AS a FROM sync_configurations s
            WHERE s.account_id = k.account_id AND s.role_arn LIKE 'arn:aws:iam::____________:role/%'
        ) allowed),
       1, k.created_at
FROM (SELECT account_id, created_at FROM access_keys ORDER BY created_at, access_key_id LIMIT 1) k;

-- The commit gitsync last deployed for real (not merely validated); a stack missing now was
-- deleted outside gitsync only when this is set.
ALTER TABLE sync_targets ADD COLUMN deployed_sha TEXT;

UPDATE sync_targets SET deployed_sha = (
    SELECT (a.target_revision::json ->> 'sha')
    FROM resource_sync_attempts a
    WHERE a.account_id = sync_targets.account_id AND a.region = sync_targets.region
      AND a.sync_type = sync_targets.sync_type AND a.target_key = sync_targets.target_key
      AND a.status = 'SUCCEEDED'
      AND EXISTS (SELECT 1 FROM resource_sync_events e WHERE e.attempt_id = a.attempt_id
                  AND e.event_type IN ('DEPLOYMENT_SUCCEEDED', 'NO_CHANGES'))
    ORDER BY a.attempt_id DESC LIMIT 1)
WHERE sync_type = 'CFN_STACK_SYNC';

-- Fix forward (semantics: repeated failures): what `failures` counts is the failed attempts at
-- one desired commit (`failed_sha`); `deploy_failures` counts those among them whose deployment
-- ran and failed. Only the latter raise the repeated-failures blocker.
ALTER TABLE sync_targets ADD COLUMN failed_sha TEXT;
ALTER TABLE sync_targets ADD COLUMN deploy_failures BIGINT NOT NULL DEFAULT 0;
