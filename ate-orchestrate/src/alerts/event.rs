//! Alert events and states.

use super::rule::{AlertRule, Severity};
use crate::error::OrchestrateError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use uuid::Uuid;

/// Where a rule's alert is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AlertState {
    /// The condition does not hold (and the rule never fired, or was removed and re-added).
    Inactive,
    /// The condition holds but not yet for the rule's `for` duration.
    Pending,
    /// The condition has held for `for`; a firing event was emitted.
    Firing,
    /// The alert fired and its condition stopped holding; a resolved event was emitted.
    /// Behaves like [`AlertState::Inactive`]: a new breach starts a new cycle.
    Resolved,
}

impl AlertState {
    /// The stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

impl fmt::Display for AlertState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an [`AlertEvent`] announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AlertEventState {
    /// The alert started firing.
    Firing,
    /// The alert stopped firing.
    Resolved,
}

impl AlertEventState {
    /// `firing` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertEventState::Firing => "firing",
            AlertEventState::Resolved => "resolved",
        }
    }

    /// Parses [`AlertEventState::as_str`]'s names.
    pub fn parse(s: &str) -> Result<Self, OrchestrateError> {
        match s {
            "firing" => Ok(AlertEventState::Firing),
            "resolved" => Ok(AlertEventState::Resolved),
            other => Err(OrchestrateError::invalid(
                "alert event state",
                format!(
                    "{:?} is not one of firing, resolved",
                    other.chars().take(32).collect::<String>()
                ),
            )),
        }
    }
}

impl fmt::Display for AlertEventState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One firing or resolved transition of a rule's alert, as delivered to the
/// [`AlertSink`](super::AlertSink) and kept in the [`AlertHistory`](super::AlertHistory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AlertEvent {
    /// Unique id (UUIDv7), stable across delivery retries: sinks can deduplicate on it.
    pub id: Uuid,
    /// The rule's id.
    pub rule_id: String,
    /// The rule's name.
    pub rule_name: String,
    /// The rule's severity.
    pub severity: Severity,
    /// The rule's labels.
    pub labels: BTreeMap<String, String>,
    /// Firing or resolved.
    pub state: AlertEventState,
    /// The observed value at the transition: the error rate, the latency in seconds, the
    /// request rate, or the number of matching instances for state conditions.
    pub value: f64,
    /// One line for humans (`error rate 0.42 > 0.10 over 60s for billing`).
    pub summary: String,
    /// When the transition was evaluated (whole microseconds).
    pub at: DateTime<Utc>,
    /// For a resolved event, the id of the firing event it ends.
    pub firing_id: Option<Uuid>,
}

impl AlertEvent {
    /// A new event of `rule` with a fresh id (UUIDv7), at `at` truncated to whole
    /// microseconds (the precision histories store). A non-finite `value` is stored as 0.
    pub fn new(
        rule: &AlertRule,
        state: AlertEventState,
        value: f64,
        summary: impl Into<String>,
        at: DateTime<Utc>,
    ) -> Self {
        AlertEvent {
            id: Uuid::now_v7(),
            rule_id: rule.id.clone(),
            rule_name: rule.name.clone(),
            severity: rule.severity,
            labels: rule.labels.clone(),
            state,
            value: if value.is_finite() { value } else { 0.0 },
            summary: summary.into(),
            at: DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at),
            firing_id: None,
        }
    }
}

/// A stored [`AlertEvent`] with its delivery record.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AlertRecord {
    /// The event.
    pub event: AlertEvent,
    /// When the sink accepted it; `None` while it has not (yet).
    pub delivered_at: Option<DateTime<Utc>>,
    /// Calls to the sink it took, counted when it was delivered (0 before).
    pub attempts: u32,
}

/// A snapshot of one rule's alert ([`AlertEngine::statuses`](super::AlertEngine::statuses)).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AlertStatus {
    /// The rule's id.
    pub rule_id: String,
    /// Its state.
    pub state: AlertState,
    /// Since when it has been in that state (`None` for a rule never evaluated).
    pub since: Option<DateTime<Utc>>,
    /// The value seen at the last evaluation.
    pub value: f64,
}
