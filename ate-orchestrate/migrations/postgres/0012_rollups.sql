-- Coarse history (ate_orchestrate::metrics::SqlRollups): one row per series, tenant, subject,
-- measuring host and time bucket. Buckets start at whole multiples of step_secs (seconds since
-- the epoch); old fine buckets are merged into hourly ones, then dropped.
CREATE TABLE orchestrate_rollups (
    series      TEXT    NOT NULL,              -- 'service', 'api', 'workflows', 'storage', ...
    tenant_key  TEXT    NOT NULL,              -- the tenant's id, or '' for the platform
    subject     TEXT    NOT NULL,              -- e.g. the service's name; '' when none
    source      TEXT    NOT NULL,              -- the host that measured it; '' when read from the database
    step_secs   BIGINT  NOT NULL,
    bucket      BIGINT  NOT NULL,
    count       BIGINT  NOT NULL,
    errors      BIGINT  NOT NULL,
    p50_ms      DOUBLE PRECISION,
    p95_ms      DOUBLE PRECISION,
    p99_ms      DOUBLE PRECISION,
    gauge       DOUBLE PRECISION,
    PRIMARY KEY (series, tenant_key, subject, step_secs, bucket, source)
);
CREATE INDEX orchestrate_rollups_age ON orchestrate_rollups (step_secs, bucket);
