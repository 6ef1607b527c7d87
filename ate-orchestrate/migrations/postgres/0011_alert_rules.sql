-- Alert rules kept in the database, so every host evaluates the same rules and they survive
-- restarts (ate_orchestrate::alerts::SqlAlertRules). Times are microseconds since the epoch.
CREATE TABLE orchestrate_alert_rules (
    id              TEXT    PRIMARY KEY,
    rule            TEXT    NOT NULL,                  -- JSON AlertRule
    created_by      TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    revision        BIGINT  NOT NULL
);
