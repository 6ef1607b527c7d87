-- Analysis results: what an analyzer found in a project or one of its snapshots, with a
-- JSON summary and optional payloads (encrypted blobs under the project key).
-- Times are microseconds since the epoch.

CREATE TABLE analysis_results (
    id               UUID    NOT NULL PRIMARY KEY,           -- UUIDv7
    tenant_id        UUID    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    project_id       UUID    NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    snapshot_id      UUID    REFERENCES snapshots (id) ON DELETE CASCADE,
    kind             TEXT    NOT NULL,
    analyzer         TEXT    NOT NULL,
    analyzer_version TEXT    NOT NULL,
    status           TEXT    NOT NULL
        CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
    summary          TEXT    NOT NULL,                       -- JSON object
    error            TEXT,                                   -- why it failed
    created_by       TEXT    NOT NULL,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
    revision         BIGINT  NOT NULL
);

CREATE INDEX analysis_by_project ON analysis_results (project_id, id);
CREATE INDEX analysis_by_snapshot ON analysis_results (snapshot_id, id);
CREATE INDEX analysis_by_kind ON analysis_results (project_id, kind, id);
CREATE INDEX analysis_by_tenant ON analysis_results (tenant_id, created_at);

-- A result's payloads: each one a Cobblestone message under the project key at
-- t/<tenant>/p/<project>/a/<blob_id>. `stored_bytes` counts against max_storage_bytes.
CREATE TABLE analysis_payloads (
    result_id    UUID    NOT NULL REFERENCES analysis_results (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    tenant_id    UUID    NOT NULL,
    blob_id      UUID    NOT NULL UNIQUE,                    -- UUIDv7
    content_type TEXT    NOT NULL,
    size         BIGINT  NOT NULL CHECK (size >= 0),         -- plaintext bytes
    stored_bytes BIGINT  NOT NULL CHECK (stored_bytes >= 0), -- ciphertext bytes
    sha256       BYTEA   NOT NULL,
    key_version  BIGINT  NOT NULL,
    created_at   BIGINT  NOT NULL,
    PRIMARY KEY (result_id, name)
);

CREATE INDEX analysis_payloads_by_tenant ON analysis_payloads (tenant_id);
