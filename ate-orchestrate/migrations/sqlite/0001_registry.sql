-- Service registry: instances and the change log that watches follow.
CREATE TABLE IF NOT EXISTS _ate_orchestrate_placeholder_registry (id INTEGER);
