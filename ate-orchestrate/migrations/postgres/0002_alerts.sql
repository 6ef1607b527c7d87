-- Alert history.
CREATE TABLE IF NOT EXISTS _ate_orchestrate_placeholder_alerts (id INTEGER);
