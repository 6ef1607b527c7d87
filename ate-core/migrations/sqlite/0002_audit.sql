-- The tamper-evident audit log: one hash chain per tenant.
CREATE TABLE audit_events (
    tenant_id   BLOB    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,                         -- 1, 2, 3, ... per tenant
    id          BLOB    NOT NULL UNIQUE,
    occurred_at INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    target      TEXT,
    outcome     TEXT    NOT NULL,
    client_addr TEXT,
    user_agent  TEXT,
    metadata    TEXT    NOT NULL,                         -- canonical JSON, hashed as stored
    prev_hash   BLOB    NOT NULL,
    hash        BLOB    NOT NULL,
    PRIMARY KEY (tenant_id, seq)
) STRICT;

CREATE INDEX audit_events_by_time ON audit_events (tenant_id, occurred_at);
CREATE INDEX audit_events_by_action ON audit_events (tenant_id, action, seq);

-- The newest link of each chain; appends lock this row, so a chain never forks.
CREATE TABLE audit_chain_heads (
    tenant_id BLOB    NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,
    head_hash BLOB    NOT NULL
) STRICT;
