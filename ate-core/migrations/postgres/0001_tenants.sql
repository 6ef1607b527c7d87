-- Tenants: the unit of isolation. Times are integer microseconds since the Unix epoch (UTC).
CREATE TABLE tenants (
    id            UUID    NOT NULL PRIMARY KEY,
    slug          TEXT    NOT NULL UNIQUE,
    name          TEXT    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('active', 'suspended', 'deleted')),
    status_reason TEXT,
    settings      TEXT    NOT NULL,                       -- JSON
    revision      BIGINT  NOT NULL,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL,
    deleted_at    BIGINT ,
    purge_at      BIGINT
);

CREATE INDEX tenants_purge_at ON tenants (purge_at) WHERE purge_at IS NOT NULL;
