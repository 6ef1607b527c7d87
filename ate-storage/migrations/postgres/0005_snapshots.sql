-- Snapshots of a project's codebase, their files, and the deduplicated chunk store.
-- Times are microseconds since the epoch.

-- What a project's chunks occupy once committed (compressed and encrypted bytes), and a
-- counter every import start and commit bumps, so garbage collection can tell that nothing
-- began or committed while it was marking.
ALTER TABLE projects ADD COLUMN stored_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN write_epoch BIGINT NOT NULL DEFAULT 0;

-- One import of a codebase. Invisible until committed; an import whose lease ran out is
-- removed by garbage collection.
CREATE TABLE snapshots (
    id            UUID    NOT NULL PRIMARY KEY,              -- UUIDv7
    tenant_id     UUID    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    project_id    UUID    NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    state         TEXT    NOT NULL CHECK (state IN ('importing', 'committed', 'deleting')),
    label         TEXT    NOT NULL,
    source        TEXT    NOT NULL,
    created_by    TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    committed_at  BIGINT,
    lease_until   BIGINT,                                   -- while importing
    files         BIGINT  NOT NULL DEFAULT 0,
    logical_bytes BIGINT  NOT NULL DEFAULT 0,
    new_bytes     BIGINT  NOT NULL DEFAULT 0,                -- stored bytes it added
    stats         TEXT    NOT NULL DEFAULT '{}'              -- JSON
);

CREATE INDEX snapshots_by_project ON snapshots (project_id, state, id);

-- The files of a snapshot. `chunks` lists the content's chunks: 36 bytes each, the chunk id
-- then its plaintext length (u32, big-endian).
CREATE TABLE snapshot_files (
    snapshot_id    UUID    NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
    path           TEXT    COLLATE "C" NOT NULL,             -- compared bytewise
    kind           TEXT    NOT NULL CHECK (kind IN ('file', 'symlink')),
    size           BIGINT  NOT NULL CHECK (size >= 0),
    mode           BIGINT  NOT NULL,
    sha256         BYTEA   NOT NULL,
    md5            BYTEA   NOT NULL,
    language       TEXT,
    is_vendored    BIGINT  NOT NULL,
    is_generated   BIGINT  NOT NULL,
    is_binary      BIGINT  NOT NULL,
    lines_code     BIGINT,
    lines_comments BIGINT,
    lines_blank    BIGINT,
    link_target    TEXT,
    quarantined    TEXT,                             -- the scanner's finding, if kept
    chunks         BYTEA   NOT NULL,
    PRIMARY KEY (snapshot_id, path)
);

CREATE INDEX snapshot_files_by_language ON snapshot_files (snapshot_id, language, path);

-- Pack blobs (t/<tenant>/p/<project>/k/<id>): chunks written by one import, one after another.
CREATE TABLE packs (
    id         UUID    NOT NULL PRIMARY KEY,                 -- UUIDv7: also dates the blob
    tenant_id  UUID    NOT NULL,
    project_id UUID    NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    size       BIGINT  NOT NULL,
    sha256     BYTEA   NOT NULL,
    created_at BIGINT  NOT NULL
);

CREATE INDEX packs_by_project ON packs (project_id);

-- A project's committed chunks: where each one is, how it was encoded and under which key.
CREATE TABLE chunks (
    project_id  UUID    NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    chunk_id    BYTEA   NOT NULL,                            -- HMAC under the tenant's dedup key
    pack_id     UUID    NOT NULL REFERENCES packs (id),
    pack_offset BIGINT  NOT NULL,
    stored_len  BIGINT  NOT NULL,
    raw_len     BIGINT  NOT NULL,
    key_version BIGINT  NOT NULL,
    encoding    BIGINT  NOT NULL,                            -- 0 stored, 1 zstd
    PRIMARY KEY (project_id, chunk_id)
);

CREATE INDEX chunks_by_pack ON chunks (pack_id);

-- Chunks an import has written but not yet committed; they join `chunks` at its commit.
CREATE TABLE pending_chunks (
    snapshot_id UUID    NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
    chunk_id    BYTEA   NOT NULL,
    pack_id     UUID    NOT NULL REFERENCES packs (id),
    pack_offset BIGINT  NOT NULL,
    stored_len  BIGINT  NOT NULL,
    raw_len     BIGINT  NOT NULL,
    key_version BIGINT  NOT NULL,
    encoding    BIGINT  NOT NULL,
    PRIMARY KEY (snapshot_id, chunk_id)
);

CREATE INDEX pending_chunks_by_pack ON pending_chunks (pack_id);

-- Each tenant's dedup key (chunk ids are an HMAC under it), sealed under a tenant data key.
CREATE TABLE dedup_keys (
    tenant_id          UUID    NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    tenant_key_version BIGINT  NOT NULL CHECK (tenant_key_version > 0),
    sealed             BYTEA   NOT NULL,
    created_at         BIGINT  NOT NULL
);
