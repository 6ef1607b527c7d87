-- Workflow runs, their nodes and labels. Times are microseconds since the epoch. A run
-- belongs to a tenant and goes with it; nodes and labels go with their run.
CREATE TABLE wf_runs (
    id              BLOB    PRIMARY KEY,               -- UUIDv7
    tenant_id       BLOB    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    stopping        TEXT    CHECK (stopping IN ('failed', 'cancelled')),
    definition      TEXT    NOT NULL,                  -- the DagSpec as JSON
    input           TEXT    NOT NULL,                  -- JSON
    idempotency_key TEXT,
    priority        INTEGER NOT NULL,
    labels          TEXT    NOT NULL,                  -- JSON object
    start_at        BIGINT  NOT NULL,
    timeout_ms      BIGINT,
    error           TEXT,
    created_by      TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    finished_at     BIGINT,
    revision        BIGINT  NOT NULL
);
CREATE UNIQUE INDEX wf_runs_idempotency ON wf_runs (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX wf_runs_by_tenant ON wf_runs (tenant_id, id);
CREATE INDEX wf_runs_by_status ON wf_runs (tenant_id, status, id);

CREATE TABLE wf_run_labels (
    run_id          BLOB    NOT NULL REFERENCES wf_runs (id) ON DELETE CASCADE,
    tenant_id       BLOB    NOT NULL,
    key             TEXT    NOT NULL,
    value           TEXT    NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE INDEX wf_run_labels_lookup ON wf_run_labels (tenant_id, key, value, run_id);

CREATE TABLE wf_nodes (
    run_id          BLOB    NOT NULL REFERENCES wf_runs (id) ON DELETE CASCADE,
    idx             INTEGER NOT NULL,                  -- the node's index in the DAG
    tenant_id       BLOB    NOT NULL,
    node_id         TEXT    NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('step', 'signal')),
    task            TEXT    NOT NULL,                  -- the step's or the signal's name
    status          TEXT    NOT NULL CHECK (status IN ('blocked', 'ready', 'running', 'waiting', 'succeeded', 'failed', 'skipped', 'cancelled')),
    attempt         INTEGER NOT NULL,
    priority        INTEGER NOT NULL,                  -- the run's, for claims
    ready_at        BIGINT,
    first_ready_at  BIGINT,
    output          TEXT,                              -- JSON
    error           TEXT,                              -- JSON {kind, message, retryable}
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    lease_owner     TEXT,
    lease_token     BIGINT  NOT NULL DEFAULT 0,        -- fencing: grows with every claim
    lease_expires_at BIGINT,
    started_at      BIGINT,
    finished_at     BIGINT,
    PRIMARY KEY (run_id, idx)
);
CREATE INDEX wf_nodes_ready ON wf_nodes (status, ready_at);
