-- gitsync schema, version 12: Amazon EventBridge notification targets. A target of kind
-- `eventbridge` has the event bus (name or ARN) as its address and, for tenants that do not
-- deploy with the server's identity, the role in the tenant's account that PutEvents runs as.
ALTER TABLE notification_targets ADD COLUMN role_arn TEXT;
