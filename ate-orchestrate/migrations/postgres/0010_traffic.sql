-- Traffic: draining instances and per-service traffic policies (canary splits, blue-green).
-- Times are microseconds since the epoch.
ALTER TABLE registry_instances ADD COLUMN draining_since BIGINT;

CREATE TABLE registry_policies (
    scope           TEXT    NOT NULL,                  -- 'platform' or 'tenant:<uuid>'
    service         TEXT    NOT NULL,
    policy          TEXT    NOT NULL,                  -- JSON TrafficPolicy
    updated_at      BIGINT  NOT NULL,
    CONSTRAINT registry_policies_key PRIMARY KEY (scope, service)
);
