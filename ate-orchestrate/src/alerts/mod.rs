//! Alerts: threshold rules over service metrics and instance states, firing and resolved
//! events delivered once each to a sink the host implements, and an alert history.
//!
//! * [`AlertRule`] / [`Condition`]: error rate above X over a window, p50/p95/p99 latency
//!   above X, request rate below or above X, an instance at least critical, a breaker open;
//!   each with a `for` duration, a severity and labels.
//! * [`AlertEngine`]: evaluates the rules (host-driven [`AlertEngine::evaluate`] or a loop
//!   from [`AlertEngine::spawn`]), moves each alert through
//!   inactive → pending → firing → resolved, and delivers the events to an [`AlertSink`]
//!   while recording them in an [`AlertHistory`] ([`MemoryAlertHistory`] or
//!   [`SqlAlertHistory`]).
//! * [`SqlAlertRules`]: rules kept in the database (JSON, see [`AlertRule`]) and synced
//!   into each host's engine, so every host evaluates the same rules.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use ate_orchestrate::alerts::*;
//! use ate_orchestrate::Outcome;
//! use ate_orchestrate::metrics::{MetricsRecorder, RecorderConfig};
//! use ate_orchestrate::registry::{InstanceId, ServiceName};
//! use ate_core::ErrorKind;
//! use std::{sync::Arc, time::Duration};
//!
//! let recorder = Arc::new(MetricsRecorder::new(RecorderConfig::default())?);
//! let sink = Arc::new(CollectingSink::new());
//! let history = Arc::new(MemoryAlertHistory::new());
//! let engine = AlertEngine::new(recorder.clone(), sink.clone(), history.clone());
//!
//! let billing = ServiceName::new("billing")?;
//! engine.add_rule(
//!     AlertRule::new("billing-errors", "Billing error rate",
//!         Condition::error_rate_above(billing.clone(), 0.5, Duration::from_secs(60)))
//!     .severity(Severity::Critical),
//! )?;
//! let one = InstanceId::new("billing-1")?;
//! recorder.record(&billing, &one, Duration::from_millis(5), Outcome::Failure(ErrorKind::Unavailable));
//!
//! let report = engine.evaluate(recorder.clock().now()).await;
//! assert_eq!(report.fired, 1);
//! assert_eq!(sink.drain()[0].state, AlertEventState::Firing);
//! assert_eq!(history.query(&AlertQuery::new()).await?.len(), 1);
//! # Ok::<(), ate_orchestrate::OrchestrateError>(()) }).unwrap();
//! ```

mod engine;
mod event;
mod history;
mod rule;
mod rules;
mod sink;

#[cfg(test)]
mod tests;

pub use engine::{AlertEngine, AlertLoop, EvaluationReport, MAX_QUEUED_EVENTS};
pub use event::{AlertEvent, AlertEventState, AlertRecord, AlertState, AlertStatus};
pub use history::{AlertHistory, AlertQuery, MAX_QUERY_LIMIT, MemoryAlertHistory, SqlAlertHistory};
pub use rule::{
    AlertRule, Condition, MAX_FOR, MAX_RULE_ID_LEN, MAX_RULE_LABELS, MAX_RULE_NAME_LEN,
    MAX_RULE_WINDOW, Quantile, Severity,
};
pub use rules::{MAX_STORED_RULES, SqlAlertRules, StoredRule, SyncReport};
pub use sink::{AlertSink, CollectingSink};
