-- The metadata index: one row per committed object. The blob lives at t/<tenant>/o/<id>.
CREATE TABLE objects (
    id             BLOB    NOT NULL PRIMARY KEY,         -- UUIDv7: also dates the blob
    tenant_id      BLOB    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    logical_path   TEXT    NOT NULL,                     -- compared bytewise
    size           INTEGER NOT NULL CHECK (size >= 0),   -- plaintext bytes
    sha256         BLOB    NOT NULL,                     -- of the plaintext
    key_version    INTEGER NOT NULL,
    format_version INTEGER NOT NULL,
    content_type   TEXT    NOT NULL,
    user_metadata  TEXT    NOT NULL,                     -- JSON object
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    UNIQUE (tenant_id, logical_path)
) STRICT;

CREATE INDEX objects_by_key_version ON objects (tenant_id, key_version);
