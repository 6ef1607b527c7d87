-- Workflow schedules: a run template submitted at every tick of a cron expression read in
-- a time zone. next_fire_at is the next tick (NULL: none will come); hosts fire a tick by
-- submitting its run under the key schedule:<id>:<tick> and moving next_fire_at on with a
-- compare-and-set, so each tick fires once however many hosts try.
CREATE TABLE wf_schedules (
    id              UUID    PRIMARY KEY,               -- UUIDv7
    tenant_id       UUID    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name            TEXT    NOT NULL,
    cron            TEXT    NOT NULL,
    time_zone       TEXT    NOT NULL,
    template        TEXT    NOT NULL,                  -- JSON: dag, input, priority, labels, timeout_ms
    paused          INTEGER NOT NULL,
    next_fire_at    BIGINT,
    last_fired_at   BIGINT,
    last_run_id     UUID,
    created_by      TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL
);
CREATE UNIQUE INDEX wf_schedules_name ON wf_schedules (tenant_id, name);
CREATE INDEX wf_schedules_due ON wf_schedules (paused, next_fire_at);
