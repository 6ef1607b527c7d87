-- Codebase projects: one row per project of a tenant, its name unique without case.
CREATE TABLE projects (
    id          UUID    NOT NULL PRIMARY KEY,                 -- UUIDv7
    tenant_id   UUID    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,                             -- as given
    name_key    TEXT    COLLATE "C" NOT NULL,                 -- lower-cased: unique per tenant
    description TEXT    NOT NULL,
    labels      TEXT    NOT NULL,                             -- JSON object of strings
    settings    TEXT    NOT NULL,                             -- JSON object
    created_by  TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    revision    BIGINT  NOT NULL,
    UNIQUE (tenant_id, name_key)
);

-- A project's labels, one row each, for filtering listings.
CREATE TABLE project_labels (
    project_id UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    tenant_id  UUID NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (project_id, key)
);

CREATE INDEX project_labels_by_value ON project_labels (tenant_id, key, value);
