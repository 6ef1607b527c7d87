-- Analysis results: what an analyzer found in a project or one of its snapshots, with a
-- JSON summary and optional payloads (encrypted blobs under the project key).
-- Times are microseconds since the epoch.

CREATE TABLE analysis_results (
    id               BLOB    NOT NULL PRIMARY KEY,           -- UUIDv7
    tenant_id        BLOB    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    project_id       BLOB    NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    snapshot_id      BLOB    REFERENCES snapshots (id) ON DELETE CASCADE,
    kind             TEXT    NOT NULL,
    analyzer         TEXT    NOT NULL,
    analyzer_version TEXT    NOT NULL,
    status           TEXT    NOT NULL
        CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
    summary          TEXT    NOT NULL,                       -- JSON object
    error            TEXT,                                   -- why it failed
    created_by       TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    revision         INTEGER NOT NULL
) STRICT;

CREATE INDEX analysis_by_project ON analysis_results (project_id, id);
CREATE INDEX analysis_by_snapshot ON analysis_results (snapshot_id, id);
CREATE INDEX analysis_by_kind ON analysis_results (project_id, kind, id);
CREATE INDEX analysis_by_tenant ON analysis_results (tenant_id, created_at);

-- A result's payloads: each one a Cobblestone message under the project key at
-- t/<tenant>/p/<project>/a/<blob_id>. `stored_bytes` counts against max_storage_bytes.
CREATE TABLE analysis_payloads (
    result_id    BLOB    NOT NULL REFERENCES analysis_results (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    tenant_id    BLOB    NOT NULL,
    blob_id      BLOB    NOT NULL UNIQUE,                    -- UUIDv7
    content_type TEXT    NOT NULL,
    size         INTEGER NOT NULL CHECK (size >= 0),         -- plaintext bytes
    stored_bytes INTEGER NOT NULL CHECK (stored_bytes >= 0), -- ciphertext bytes
    sha256       BLOB    NOT NULL,
    key_version  INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (result_id, name)
) STRICT;

CREATE INDEX analysis_payloads_by_tenant ON analysis_payloads (tenant_id);
