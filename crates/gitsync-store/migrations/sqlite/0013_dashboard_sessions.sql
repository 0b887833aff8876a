-- gitsync schema, version 13: dashboard sessions. The browser holds a signed cookie naming the
-- session; the row is what makes it valid, so signing out (deleting the row) or deleting the
-- access key it was opened with (the join in `Store::dashboard_session`) ends it on every replica.
CREATE TABLE dashboard_sessions (
    session_id    TEXT PRIMARY KEY,
    access_key_id TEXT NOT NULL,
    account_id    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX dashboard_sessions_by_key ON dashboard_sessions (access_key_id);
