-- Proton's template registry (PostgreSQL). Versions keep the bundle they were registered from,
-- content-addressed in template_bundles so identical bundles are stored once.

CREATE TABLE proton_templates (
    account_id       TEXT NOT NULL,
    region           TEXT NOT NULL,
    template_type    TEXT NOT NULL,
    name             TEXT NOT NULL,
    arn              TEXT NOT NULL,
    display_name     TEXT,
    description      TEXT,
    encryption_key   TEXT,
    provisioning     TEXT,
    created_at       BIGINT NOT NULL,
    last_modified_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, template_type, name)
);

CREATE TABLE proton_template_versions (
    account_id       TEXT NOT NULL,
    region           TEXT NOT NULL,
    template_type    TEXT NOT NULL,
    template_name    TEXT NOT NULL,
    major            BIGINT NOT NULL,
    minor            BIGINT NOT NULL,
    arn              TEXT NOT NULL,
    description      TEXT,
    status           TEXT NOT NULL,
    status_message   TEXT,
    template_schema  TEXT,
    compatible_environments TEXT,
    supported_component_sources TEXT,
    bundle_id        TEXT,
    source_commit    TEXT,
    created_at       BIGINT NOT NULL,
    last_modified_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, template_type, template_name, major, minor)
);

CREATE TABLE template_bundles (
    bundle_id TEXT PRIMARY KEY,
    files     TEXT NOT NULL
);
