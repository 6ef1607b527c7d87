-- Alert history: one row per firing or resolved event. Times are microseconds since the
-- epoch. Alert rules are the host's (platform-wide), so rows carry no tenant.
CREATE TABLE orchestrate_alert_history (
    id           BLOB    PRIMARY KEY,                  -- UUIDv7 of the event
    rule_id      TEXT    NOT NULL,
    rule_name    TEXT    NOT NULL,
    severity     TEXT    NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    state        TEXT    NOT NULL CHECK (state IN ('firing', 'resolved')),
    labels       TEXT    NOT NULL,                     -- JSON object of the rule's labels
    value        REAL    NOT NULL,
    summary      TEXT    NOT NULL,
    occurred_at  INTEGER NOT NULL,
    firing_id    BLOB,                                 -- resolved: the firing event it ends
    delivered_at INTEGER,                              -- NULL until the sink accepted it
    attempts     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX orchestrate_alert_history_time ON orchestrate_alert_history (occurred_at, id);
CREATE INDEX orchestrate_alert_history_rule
    ON orchestrate_alert_history (rule_id, occurred_at, id);
