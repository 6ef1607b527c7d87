-- Per-project keys, sealed under the tenant's data key of `tenant_key_version`. Deleted with
-- their project: that is the project's crypto-shredding.
CREATE TABLE project_keys (
    project_id         BLOB    NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    tenant_id          BLOB    NOT NULL,
    version            INTEGER NOT NULL CHECK (version > 0),
    state              TEXT    NOT NULL CHECK (state IN ('active', 'decrypt_only')),
    tenant_key_version INTEGER NOT NULL CHECK (tenant_key_version > 0),
    sealed             BLOB    NOT NULL,
    created_at         INTEGER NOT NULL,
    retired_at         INTEGER,
    PRIMARY KEY (project_id, version)
) STRICT;

-- At most one key per project encrypts new data.
CREATE UNIQUE INDEX project_keys_one_active ON project_keys (project_id) WHERE state = 'active';
-- Rewrapping finds the keys still sealed under an older tenant key.
CREATE INDEX project_keys_by_tenant_key ON project_keys (tenant_id, tenant_key_version);
