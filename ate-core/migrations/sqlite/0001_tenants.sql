-- Tenants: the unit of isolation. Times are integer microseconds since the Unix epoch (UTC).
CREATE TABLE tenants (
    id            BLOB    NOT NULL PRIMARY KEY,           -- UUIDv7, 16 bytes
    slug          TEXT    NOT NULL UNIQUE,
    name          TEXT    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('active', 'suspended', 'deleted')),
    status_reason TEXT,
    settings      TEXT    NOT NULL,                       -- JSON
    revision      INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    deleted_at    INTEGER,
    purge_at      INTEGER
) STRICT;

CREATE INDEX tenants_purge_at ON tenants (purge_at) WHERE purge_at IS NOT NULL;
