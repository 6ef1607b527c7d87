-- Service registry: instances and the change log that watches follow.
-- Times are microseconds since the epoch.
CREATE TABLE registry_instances (
    scope           TEXT    NOT NULL,                  -- 'platform' or 'tenant:<uuid>'
    service         TEXT    NOT NULL,
    instance_id     TEXT    NOT NULL,
    endpoint        TEXT    NOT NULL,
    tags            TEXT    NOT NULL,                  -- JSON array
    capabilities    TEXT    NOT NULL,                  -- JSON array
    metadata        TEXT    NOT NULL,                  -- JSON object
    weight          BIGINT  NOT NULL CHECK (weight BETWEEN 1 AND 10000),
    environment     TEXT    NOT NULL CHECK (environment IN ('development', 'staging', 'production')),
    status          TEXT    NOT NULL CHECK (status IN ('passing', 'warning', 'critical')),
    status_output   TEXT    NOT NULL DEFAULT '',
    registered_at   BIGINT  NOT NULL,
    last_heartbeat  BIGINT  NOT NULL,
    status_since    BIGINT  NOT NULL,
    CONSTRAINT registry_instances_key UNIQUE (scope, service, instance_id)
);
CREATE INDEX registry_instances_by_service ON registry_instances (service, scope);
CREATE INDEX registry_instances_by_status ON registry_instances (status, status_since);

-- The last change sequence number handed out. Every change bumps it in its own
-- transaction, which serializes writers on this row: sequence order is commit order and
-- has no gaps, so a watcher that sees change N has seen every change before it.
CREATE TABLE registry_change_seq (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    seq             BIGINT  NOT NULL
);
INSERT INTO registry_change_seq (id, seq) VALUES (1, 0);

-- The change log watches poll (a bounded window: old rows are pruned on write).
CREATE TABLE registry_changes (
    seq             BIGINT  PRIMARY KEY,
    at              BIGINT  NOT NULL,
    event           TEXT    NOT NULL                   -- JSON RegistryEvent
);
