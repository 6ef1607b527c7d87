-- The metadata index: one row per committed object. The blob lives at t/<tenant>/o/<id>.
CREATE TABLE objects (
    id             UUID    NOT NULL PRIMARY KEY,         -- UUIDv7: also dates the blob
    tenant_id      UUID    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    logical_path   TEXT    COLLATE "C" NOT NULL,         -- compared bytewise
    size           BIGINT  NOT NULL CHECK (size >= 0),   -- plaintext bytes
    sha256         BYTEA   NOT NULL,                     -- of the plaintext
    key_version    BIGINT  NOT NULL,
    format_version BIGINT  NOT NULL,
    content_type   TEXT    NOT NULL,
    user_metadata  TEXT    NOT NULL,                     -- JSON object
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL,
    UNIQUE (tenant_id, logical_path)
);

CREATE INDEX objects_by_key_version ON objects (tenant_id, key_version);
