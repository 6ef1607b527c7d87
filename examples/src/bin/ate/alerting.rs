//! How `ate serve` wires ate-orchestrate's alerts: the hub evaluates the rules every second
//! against this host's service metrics and instance states, events go to the log (this
//! sink) and to the alert history in the database; the rules live in the database
//! ([`SqlAlertRules`](ate_orchestrate::alerts::SqlAlertRules)) and a background task syncs them into the hub's engine (at start,
//! after every change through this host's API, and every `[monitoring] rule_sync_secs` for
//! changes made through other hosts) and applies the history's retention.

use crate::host::Host;
use ate_orchestrate::OrchestrateError;
use ate_orchestrate::alerts::{AlertEvent, AlertEventState, AlertHistory, AlertSink};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Delivers alert events to the log: firing as warnings, resolved as information.
#[derive(Debug, Default)]
pub(crate) struct LogSink;

#[async_trait::async_trait]
impl AlertSink for LogSink {
    async fn deliver(&self, e: &AlertEvent) -> Result<(), OrchestrateError> {
        match e.state {
            AlertEventState::Firing => tracing::warn!(
                alert = %e.rule_id, severity = %e.severity, value = e.value, event = %e.id,
                summary = %e.summary, "alert firing"
            ),
            _ => tracing::info!(
                alert = %e.rule_id, severity = %e.severity, value = e.value, event = %e.id,
                summary = %e.summary, "alert resolved"
            ),
        }
        Ok(())
    }
}

/// Wakes the sync task at once (after a change through this host's API).
#[derive(Debug, Clone, Default)]
pub(crate) struct RuleSync(Arc<Notify>);

impl RuleSync {
    pub(crate) fn now(&self) {
        self.0.notify_one();
    }
}

/// Syncs the stored rules into this host's engine until `stop`, and purges history older
/// than the retention once an hour.
pub(crate) async fn run(host: Host, mut stop: tokio::sync::watch::Receiver<bool>) {
    let Some(engine) = host.hub.alerts().cloned() else {
        return;
    };
    let every = Duration::from_secs(host.config.monitoring.rule_sync_secs);
    let retention = chrono::TimeDelta::days(i64::from(host.config.monitoring.history_days));
    let mut last_purge: Option<tokio::time::Instant> = None;
    loop {
        match host.alert_rules.sync(&engine).await {
            Ok(r) if r.added + r.replaced + r.removed > 0 => {
                tracing::info!(
                    added = r.added,
                    replaced = r.replaced,
                    removed = r.removed,
                    "alert rules synced"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "syncing alert rules"),
        }
        if last_purge.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
            last_purge = Some(tokio::time::Instant::now());
            match host
                .alert_history
                .purge_before(chrono::Utc::now() - retention)
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "alert history retention"),
                Err(e) => tracing::warn!(error = %e, "alert history retention"),
            }
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = host.rule_sync.0.notified() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
