//! The in-memory alert history.

use super::{AlertHistory, AlertQuery};
use crate::alerts::event::{AlertEvent, AlertRecord};
use crate::error::OrchestrateError;
use chrono::{DateTime, Utc};
use std::collections::VecDeque;
use std::sync::Mutex;
use uuid::Uuid;

/// An [`AlertHistory`] in memory, for hosts without a database. Bounded: beyond
/// `capacity` records (default 10,000) the oldest appended is dropped.
#[derive(Debug)]
pub struct MemoryAlertHistory {
    records: Mutex<VecDeque<AlertRecord>>,
    capacity: usize,
}

impl Default for MemoryAlertHistory {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryAlertHistory {
    /// An empty history keeping 10,000 records.
    pub fn new() -> Self {
        Self::with_capacity(10_000)
    }

    /// An empty history keeping `capacity` records (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        MemoryAlertHistory {
            records: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<AlertRecord>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait::async_trait]
impl AlertHistory for MemoryAlertHistory {
    async fn append(&self, event: &AlertEvent) -> Result<(), OrchestrateError> {
        let mut records = self.lock();
        if records.iter().any(|r| r.event.id == event.id) {
            return Err(OrchestrateError::already_exists("alert event", event.id));
        }
        if records.len() >= self.capacity {
            records.pop_front();
        }
        records.push_back(AlertRecord {
            event: event.clone(),
            delivered_at: None,
            attempts: 0,
        });
        Ok(())
    }

    async fn mark_delivered(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
        attempts: u32,
    ) -> Result<(), OrchestrateError> {
        let mut records = self.lock();
        let record = records
            .iter_mut()
            .find(|r| r.event.id == id)
            .ok_or_else(|| OrchestrateError::not_found("alert event", id))?;
        if record.delivered_at.is_none() {
            record.delivered_at = Some(at);
            record.attempts = attempts;
        }
        Ok(())
    }

    async fn get(&self, id: Uuid) -> Result<Option<AlertRecord>, OrchestrateError> {
        Ok(self.lock().iter().find(|r| r.event.id == id).cloned())
    }

    async fn query(&self, query: &AlertQuery) -> Result<Vec<AlertRecord>, OrchestrateError> {
        query.validate()?;
        let mut out: Vec<AlertRecord> = self
            .lock()
            .iter()
            .filter(|r| query.matches(&r.event))
            .cloned()
            .collect();
        out.sort_by_key(|r| std::cmp::Reverse((r.event.at, r.event.id)));
        out.truncate(query.limit as usize);
        Ok(out)
    }

    async fn purge_before(&self, before: DateTime<Utc>) -> Result<u64, OrchestrateError> {
        let mut records = self.lock();
        let n = records.len();
        records.retain(|r| r.event.at >= before);
        Ok((n - records.len()) as u64)
    }
}
