//! Where alert events go: a sink the host implements.

use super::event::AlertEvent;
use crate::error::OrchestrateError;
use std::sync::Mutex;

/// Receives firing and resolved events (a pager, a chat webhook, a Python callback).
///
/// Behavior expected from implementations: return `Ok` only once the event is handed over;
/// return `Err` to have the engine offer the same event (same [`AlertEvent::id`]) again at
/// its next evaluation. See [`AlertEngine`](super::AlertEngine) for the delivery guarantee.
/// A sink is called from the evaluating task, one event at a time; a slow sink delays the
/// evaluation.
#[async_trait::async_trait]
pub trait AlertSink: Send + Sync + std::fmt::Debug {
    /// Delivers one event.
    async fn deliver(&self, event: &AlertEvent) -> Result<(), OrchestrateError>;
}

/// An [`AlertSink`] that keeps events in memory, for hosts that poll
/// ([`CollectingSink::drain`]) and for tests. Bounded: beyond `capacity` (default 10,000)
/// the oldest undrained event is dropped.
#[derive(Debug)]
pub struct CollectingSink {
    events: Mutex<std::collections::VecDeque<AlertEvent>>,
    capacity: usize,
}

impl Default for CollectingSink {
    fn default() -> Self {
        Self::new()
    }
}

impl CollectingSink {
    /// An empty sink keeping up to 10,000 events.
    pub fn new() -> Self {
        Self::with_capacity(10_000)
    }

    /// An empty sink keeping up to `capacity` events (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        CollectingSink {
            events: Mutex::new(Default::default()),
            capacity: capacity.max(1),
        }
    }

    /// The events received and not yet drained, oldest first.
    pub fn events(&self) -> Vec<AlertEvent> {
        self.lock().iter().cloned().collect()
    }

    /// Takes the events received so far, oldest first.
    pub fn drain(&self) -> Vec<AlertEvent> {
        self.lock().drain(..).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::VecDeque<AlertEvent>> {
        self.events.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait::async_trait]
impl AlertSink for CollectingSink {
    async fn deliver(&self, event: &AlertEvent) -> Result<(), OrchestrateError> {
        let mut events = self.lock();
        if events.len() >= self.capacity {
            events.pop_front();
        }
        events.push_back(event.clone());
        Ok(())
    }
}
