//! The service hub behind `a.registry` and the sink its alerts go to.
//!
//! One hub per client (shared by the client's `acting_as` views), built on first use over
//! the client's database: `SqlRegistry` for the instances, `SqlAlertHistory` for the alert
//! history, so several processes on one database share one registry. Building it runs
//! `ate-orchestrate`'s migrations. Health checks, balancing state, breakers, window
//! statistics and alert rules live in the hub, in this process's memory.
//!
//! The alert sink exists from the client's start, so `on_alert` callbacks can be added
//! before the hub is built.

use crate::error::Error;
use crate::runtime::lock;
use crate::types::registry::AlertEvent;
use ate_orchestrate::OrchestrateError;
use ate_orchestrate::alerts::{AlertEvent as CoreAlertEvent, AlertSink, SqlAlertHistory};
use ate_orchestrate::hub::ServiceHub;
use ate_orchestrate::registry::SqlRegistry;
use pyo3::prelude::*;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

/// Alert events kept for `alert_events()` until drained; beyond it the oldest is dropped.
const MAX_POLLED_EVENTS: usize = 10_000;
/// Events whose callbacks partly failed, remembered so a retry skips the callbacks that
/// already took them; beyond it the memory is cleared (a retry may then repeat a callback).
const MAX_PARTIAL_DELIVERIES: usize = 10_000;

/// The service hub of one client (an `Ate` or `AsyncAte` and its `acting_as` views).
pub(crate) struct Hub {
    pub(crate) hub: ServiceHub,
}

impl Hub {
    /// Builds the hub over `db` (runs `ate-orchestrate`'s migrations), delivering its
    /// alerts to `sink`. Must run on the shared runtime (the hub spawns its scheduler there).
    pub(crate) async fn open(db: ate_core::Db, sink: Arc<PySink>) -> Result<Hub, Error> {
        let store = SqlRegistry::open(db.clone()).await?;
        let history = SqlAlertHistory::open(db).await?;
        let hub = ServiceHub::builder(Arc::new(store))
            .alerts(sink, Arc::new(history))
            .build()?;
        Ok(Hub { hub })
    }

    /// The alert engine (the hub is always built with alerts).
    pub(crate) fn alerts(&self) -> Result<&ate_orchestrate::alerts::AlertEngine, Error> {
        self.hub
            .alerts()
            .ok_or_else(|| Error::internal("the service hub was built without alerts"))
    }

    /// Stops the health checks and the alert loop.
    pub(crate) async fn shutdown(&self) {
        self.hub.shutdown().await;
    }
}

#[derive(Default)]
struct SinkState {
    /// Events for `alert_events()`, oldest first.
    polled: VecDeque<CoreAlertEvent>,
    /// Event id → indices of the callbacks that already took it (partial deliveries).
    partial: HashMap<uuid::Uuid, HashSet<usize>>,
}

/// Every alert event goes to the polling queue once, then to each Python callback; a
/// callback that raises makes the delivery fail, and the engine offers the same event again
/// at its next evaluation (only to the callbacks that have not taken it yet).
#[derive(Default)]
pub(crate) struct PySink {
    state: Mutex<SinkState>,
    callbacks: Mutex<Vec<Arc<Py<PyAny>>>>,
}

impl PySink {
    /// Adds a callback for every later event.
    pub(crate) fn add_callback(&self, callback: Py<PyAny>) {
        lock(&self.callbacks).push(Arc::new(callback));
    }

    /// The events delivered since the last call, oldest first.
    pub(crate) fn drain(&self) -> Vec<AlertEvent> {
        let mut state = lock(&self.state);
        state
            .polled
            .drain(..)
            .map(|e| AlertEvent::from(&e))
            .collect()
    }
}

impl std::fmt::Debug for PySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PySink")
            .field("callbacks", &lock(&self.callbacks).len())
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl AlertSink for PySink {
    async fn deliver(&self, event: &CoreAlertEvent) -> Result<(), OrchestrateError> {
        let pending: Vec<(usize, Arc<Py<PyAny>>)> = {
            let mut state = lock(&self.state);
            let done = if let Some(done) = state.partial.get(&event.id) {
                done.clone()
            } else {
                if state.polled.len() >= MAX_POLLED_EVENTS {
                    state.polled.pop_front();
                }
                state.polled.push_back(event.clone());
                HashSet::new()
            };
            let callbacks = lock(&self.callbacks);
            let pending: Vec<_> = callbacks
                .iter()
                .enumerate()
                .filter(|(i, _)| !done.contains(i))
                .map(|(i, c)| (i, c.clone()))
                .collect();
            if pending.is_empty() {
                state.partial.remove(&event.id);
            } else {
                if state.partial.len() >= MAX_PARTIAL_DELIVERIES {
                    state.partial.clear();
                }
                state.partial.insert(event.id, done);
            }
            pending
        };
        if pending.is_empty() {
            return Ok(());
        }
        let payload = AlertEvent::from(event);
        let outcome = tokio::task::spawn_blocking(move || {
            Python::attach(|py| {
                let mut ok = Vec::new();
                let mut failed = None;
                for (i, callback) in pending {
                    let result =
                        Py::new(py, payload.clone()).and_then(|event| callback.call1(py, (event,)));
                    match result {
                        Ok(_) => ok.push(i),
                        Err(e) => {
                            let message = e.to_string();
                            // Shown through sys.unraisablehook, as Python does for errors
                            // it cannot raise to anyone.
                            e.write_unraisable(py, Some(callback.bind(py)));
                            failed.get_or_insert(message);
                        }
                    }
                }
                (ok, failed)
            })
        })
        .await
        .map_err(|e| OrchestrateError::Unavailable(format!("alert callback task: {e}")))?;
        let (ok, failed) = outcome;
        let mut state = lock(&self.state);
        match failed {
            None => {
                state.partial.remove(&event.id);
                Ok(())
            }
            Some(message) => {
                state.partial.entry(event.id).or_default().extend(ok);
                Err(OrchestrateError::Unavailable(format!(
                    "an alert callback raised: {message}"
                )))
            }
        }
    }
}
