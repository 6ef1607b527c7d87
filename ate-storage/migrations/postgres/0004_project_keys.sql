-- Per-project keys, sealed under the tenant's data key of `tenant_key_version`. Deleted with
-- their project: that is the project's crypto-shredding.
CREATE TABLE project_keys (
    project_id         UUID    NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    tenant_id          UUID    NOT NULL,
    version            BIGINT  NOT NULL CHECK (version > 0),
    state              TEXT    NOT NULL CHECK (state IN ('active', 'decrypt_only')),
    tenant_key_version BIGINT  NOT NULL CHECK (tenant_key_version > 0),
    sealed             BYTEA   NOT NULL,
    created_at         BIGINT  NOT NULL,
    retired_at         BIGINT,
    PRIMARY KEY (project_id, version)
);

-- At most one key per project encrypts new data.
CREATE UNIQUE INDEX project_keys_one_active ON project_keys (project_id) WHERE state = 'active';
-- Rewrapping finds the keys still sealed under an older tenant key.
CREATE INDEX project_keys_by_tenant_key ON project_keys (tenant_id, tenant_key_version);
