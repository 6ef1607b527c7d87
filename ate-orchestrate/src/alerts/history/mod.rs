//! The alert history: every firing and resolved event with its delivery record.
//!
//! Backends: [`MemoryAlertHistory`] (hosts without a database; bounded) and
//! [`SqlAlertHistory`] (SQLite or PostgreSQL through [`ate_core::Db`]). Both pass the same
//! conformance suite (`tests/src/alert_history.rs`).

mod memory;
mod sql;

pub use memory::MemoryAlertHistory;
pub use sql::SqlAlertHistory;

use super::event::{AlertEvent, AlertEventState, AlertRecord};
use crate::error::OrchestrateError;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Most records one [`AlertQuery`] returns.
pub const MAX_QUERY_LIMIT: u32 = 1000;

/// Filters for [`AlertHistory::query`]. Records come newest first (by event time, then id).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AlertQuery {
    /// Only this rule's events.
    pub rule_id: Option<String>,
    /// Only firing or only resolved events.
    pub state: Option<AlertEventState>,
    /// Only events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only events strictly before this time.
    pub until: Option<DateTime<Utc>>,
    /// At most this many records, 1 to [`MAX_QUERY_LIMIT`] (default 100).
    pub limit: u32,
}

impl Default for AlertQuery {
    fn default() -> Self {
        AlertQuery {
            rule_id: None,
            state: None,
            since: None,
            until: None,
            limit: 100,
        }
    }
}

impl AlertQuery {
    /// Every event, newest 100.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only `rule_id`'s events.
    pub fn rule(mut self, rule_id: impl Into<String>) -> Self {
        self.rule_id = Some(rule_id.into());
        self
    }

    /// Only events in `state`.
    pub fn state(mut self, state: AlertEventState) -> Self {
        self.state = Some(state);
        self
    }

    /// Only events at or after `t`.
    pub fn since(mut self, t: DateTime<Utc>) -> Self {
        self.since = Some(t);
        self
    }

    /// Only events before `t`.
    pub fn until(mut self, t: DateTime<Utc>) -> Self {
        self.until = Some(t);
        self
    }

    /// At most `n` records.
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = n;
        self
    }

    /// Checks the query.
    ///
    /// Errors: [`OrchestrateError::InvalidInput`] for a limit outside 1 to
    /// [`MAX_QUERY_LIMIT`] or a `since` after `until`.
    pub fn validate(&self) -> Result<(), OrchestrateError> {
        if self.limit == 0 || self.limit > MAX_QUERY_LIMIT {
            return Err(OrchestrateError::invalid(
                "alert query limit",
                format!("{} is outside 1..={MAX_QUERY_LIMIT}", self.limit),
            ));
        }
        if let (Some(s), Some(u)) = (self.since, self.until)
            && s > u
        {
            return Err(OrchestrateError::invalid(
                "alert query time range",
                format!("since {s} is after until {u}"),
            ));
        }
        Ok(())
    }

    pub(crate) fn matches(&self, e: &AlertEvent) -> bool {
        self.rule_id.as_ref().is_none_or(|r| *r == e.rule_id)
            && self.state.is_none_or(|s| s == e.state)
            && self.since.is_none_or(|t| e.at >= t)
            && self.until.is_none_or(|t| e.at < t)
    }
}

/// Where alert events are kept. Implemented by [`MemoryAlertHistory`] and
/// [`SqlAlertHistory`]; a host may bring its own.
#[async_trait::async_trait]
pub trait AlertHistory: Send + Sync + std::fmt::Debug {
    /// Stores a new event, not yet delivered, with 0 attempts.
    ///
    /// Behavior: an event whose id is already stored fails with
    /// [`OrchestrateError::AlreadyExists`] and changes nothing.
    async fn append(&self, event: &AlertEvent) -> Result<(), OrchestrateError>;

    /// Records that the sink accepted event `id` at `at` after `attempts` calls.
    ///
    /// Behavior: the first call wins; later calls for the same event succeed and change
    /// nothing, so a delivery is recorded exactly once. An unknown id fails with
    /// [`OrchestrateError::NotFound`].
    async fn mark_delivered(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
        attempts: u32,
    ) -> Result<(), OrchestrateError>;

    /// One event's record, if stored.
    async fn get(&self, id: Uuid) -> Result<Option<AlertRecord>, OrchestrateError>;

    /// Records matching `query`, newest first (event time, then id, both descending).
    ///
    /// Errors: [`OrchestrateError::InvalidInput`] for a query failing
    /// [`AlertQuery::validate`].
    async fn query(&self, query: &AlertQuery) -> Result<Vec<AlertRecord>, OrchestrateError>;

    /// Deletes the events strictly older than `before` (retention); returns how many.
    async fn purge_before(&self, before: DateTime<Utc>) -> Result<u64, OrchestrateError>;
}
