-- Snapshots of a project's codebase, their files, and the deduplicated chunk store.
-- Times are microseconds since the epoch.

-- What a project's chunks occupy once committed (compressed and encrypted bytes), and a
-- counter every import start and commit bumps, so garbage collection can tell that nothing
-- began or committed while it was marking.
ALTER TABLE projects ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN write_epoch INTEGER NOT NULL DEFAULT 0;

-- One import of a codebase. Invisible until committed; an import whose lease ran out is
-- removed by garbage collection.
CREATE TABLE snapshots (
    id            BLOB    NOT NULL PRIMARY KEY,              -- UUIDv7
    tenant_id     BLOB    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    project_id    BLOB    NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    state         TEXT    NOT NULL CHECK (state IN ('importing', 'committed', 'deleting')),
    label         TEXT    NOT NULL,
    source        TEXT    NOT NULL,
    created_by    TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    committed_at  INTEGER,
    lease_until   INTEGER,                                   -- while importing
    files         INTEGER NOT NULL DEFAULT 0,
    logical_bytes INTEGER NOT NULL DEFAULT 0,
    new_bytes     INTEGER NOT NULL DEFAULT 0,                -- stored bytes it added
    stats         TEXT    NOT NULL DEFAULT '{}'              -- JSON
) STRICT;

CREATE INDEX snapshots_by_project ON snapshots (project_id, state, id);

-- The files of a snapshot. `chunks` lists the content's chunks: 36 bytes each, the chunk id
-- then its plaintext length (u32, big-endian).
CREATE TABLE snapshot_files (
    snapshot_id    BLOB    NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
    path           TEXT    NOT NULL,                         -- compared bytewise
    kind           TEXT    NOT NULL CHECK (kind IN ('file', 'symlink')),
    size           INTEGER NOT NULL CHECK (size >= 0),
    mode           INTEGER NOT NULL,
    sha256         BLOB    NOT NULL,
    md5            BLOB    NOT NULL,
    language       TEXT,
    is_vendored    INTEGER NOT NULL,
    is_generated   INTEGER NOT NULL,
    is_binary      INTEGER NOT NULL,
    lines_code     INTEGER,
    lines_comments INTEGER,
    lines_blank    INTEGER,
    link_target    TEXT,
    quarantined    TEXT,                             -- the scanner's finding, if kept
    chunks         BLOB    NOT NULL,
    PRIMARY KEY (snapshot_id, path)
) STRICT;

CREATE INDEX snapshot_files_by_language ON snapshot_files (snapshot_id, language, path);

-- Pack blobs (t/<tenant>/p/<project>/k/<id>): chunks written by one import, one after another.
CREATE TABLE packs (
    id         BLOB    NOT NULL PRIMARY KEY,                 -- UUIDv7: also dates the blob
    tenant_id  BLOB    NOT NULL,
    project_id BLOB    NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    size       INTEGER NOT NULL,
    sha256     BLOB    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX packs_by_project ON packs (project_id);

-- A project's committed chunks: where each one is, how it was encoded and under which key.
CREATE TABLE chunks (
    project_id  BLOB    NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    chunk_id    BLOB    NOT NULL,                            -- HMAC under the tenant's dedup key
    pack_id     BLOB    NOT NULL REFERENCES packs (id),
    pack_offset INTEGER NOT NULL,
    stored_len  INTEGER NOT NULL,
    raw_len     INTEGER NOT NULL,
    key_version INTEGER NOT NULL,
    encoding    INTEGER NOT NULL,                            -- 0 stored, 1 zstd
    PRIMARY KEY (project_id, chunk_id)
) STRICT;

CREATE INDEX chunks_by_pack ON chunks (pack_id);

-- Chunks an import has written but not yet committed; they join `chunks` at its commit.
CREATE TABLE pending_chunks (
    snapshot_id BLOB    NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
    chunk_id    BLOB    NOT NULL,
    pack_id     BLOB    NOT NULL REFERENCES packs (id),
    pack_offset INTEGER NOT NULL,
    stored_len  INTEGER NOT NULL,
    raw_len     INTEGER NOT NULL,
    key_version INTEGER NOT NULL,
    encoding    INTEGER NOT NULL,
    PRIMARY KEY (snapshot_id, chunk_id)
) STRICT;

CREATE INDEX pending_chunks_by_pack ON pending_chunks (pack_id);

-- Each tenant's dedup key (chunk ids are an HMAC under it), sealed under a tenant data key.
CREATE TABLE dedup_keys (
    tenant_id          BLOB    NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    tenant_key_version INTEGER NOT NULL CHECK (tenant_key_version > 0),
    sealed             BLOB    NOT NULL,
    created_at         INTEGER NOT NULL
) STRICT;
