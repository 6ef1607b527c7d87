-- Per-run logs written by step handlers. Ids are UUIDv7, so id order is writing order.
CREATE TABLE wf_logs (
    id              UUID    PRIMARY KEY,
    run_id          UUID    NOT NULL REFERENCES wf_runs (id) ON DELETE CASCADE,
    tenant_id       UUID    NOT NULL,
    node_id         TEXT    NOT NULL,
    attempt         INTEGER NOT NULL,
    level           INTEGER NOT NULL CHECK (level BETWEEN 0 AND 3), -- debug, info, warn, error
    message         TEXT    NOT NULL,
    fields          TEXT    NOT NULL,                  -- JSON
    at              BIGINT  NOT NULL
);
CREATE INDEX wf_logs_by_run ON wf_logs (run_id, id);
