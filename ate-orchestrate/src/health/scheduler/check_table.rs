//! What the scheduler keeps ([`CheckTable`]): every check with its thresholds and last
//! results, every instance with its aggregate status, and the queue of due work. Recording a
//! result here is where an instance's status change is decided and reported.

use super::queue::{DueKind, DueQueue, after};
use super::reporting::Event;
use crate::health::spec::Prepared;
use crate::health::state::ThresholdState;
use crate::health::{CheckId, CheckResult, StatusChange};
use crate::registry::{HealthStatus, InstanceKey};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The scheduler's record of an instance: its checks and the status last reported.
pub(super) struct InstanceEntry {
    /// The last aggregate status reported (`None` before the first report).
    pub(super) status: Option<HealthStatus>,
    pub(super) checks: BTreeSet<CheckId>,
}

/// One check: its spec, threshold state, TTL bookkeeping and last results.
pub(super) struct CheckEntry {
    pub(super) spec: Arc<Prepared>,
    pub(super) generation: u64,
    pub(super) thresholds: ThresholdState,
    /// Since when the (thresholded) status has been critical.
    pub(super) critical_since: Option<Instant>,
    /// TTL checks: when the last report runs out (`None` once expired).
    pub(super) ttl_deadline: Option<Instant>,
    /// TTL checks: whether a `TtlExpiry` entry is queued.
    pub(super) ttl_armed: bool,
    pub(super) results: VecDeque<CheckResult>,
    pub(super) last_output: String,
}

/// How a result changes the check's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Recording {
    /// Through the thresholds (probes).
    Thresholds,
    /// Directly (TTL updates and expiry).
    Direct,
}

/// Every check and instance the scheduler keeps and the queue of their due work, behind one
/// mutex ([`Shared`](super::driver::Shared)).
#[derive(Default)]
pub(super) struct CheckTable {
    pub(super) checks: HashMap<CheckId, CheckEntry>,
    pub(super) instances: HashMap<InstanceKey, InstanceEntry>,
    pub(super) queue: DueQueue,
    pub(super) next_generation: u64,
    pub(super) closed: bool,
}

impl CheckTable {
    pub(super) fn push(&mut self, at: Instant, check: &CheckId, generation: u64, what: DueKind) {
        self.queue.push(at, check, generation, what);
    }

    pub(super) fn remove_instance(&mut self, key: &InstanceKey) -> usize {
        let Some(instance) = self.instances.remove(key) else {
            return 0;
        };
        for id in &instance.checks {
            self.checks.remove(id);
        }
        instance.checks.len()
    }

    /// Appends a result to the check's history, applies it, and reports an aggregate
    /// change. The check must exist.
    pub(super) fn record(
        &mut self,
        id: &CheckId,
        result: CheckResult,
        how: Recording,
        now: Instant,
        kept: usize,
        events: &mpsc::UnboundedSender<Event>,
    ) {
        let Some(entry) = self.checks.get_mut(id) else {
            return;
        };
        let changed = match how {
            Recording::Thresholds => entry.thresholds.observe(result.status),
            Recording::Direct => entry.thresholds.set(result.status),
        };
        entry.last_output = result.output.clone();
        while entry.results.len() >= kept {
            entry.results.pop_front();
        }
        let output = result.output.clone();
        entry.results.push_back(result);
        let Some(to) = changed else {
            return;
        };
        let was_critical = entry.critical_since.is_some();
        let dca = entry.spec.deregister_critical_after;
        let generation = entry.generation;
        let key = entry.spec.instance.clone();
        if to == HealthStatus::Critical {
            if !was_critical {
                entry.critical_since = Some(now);
                if let Some(dca) = dca {
                    self.push(after(now, dca), id, generation, DueKind::Deregister);
                }
            }
        } else {
            entry.critical_since = None;
        }
        self.refresh_instance(&key, id, output, events);
    }

    /// Recomputes the instance's aggregate and reports it if it changed.
    pub(super) fn refresh_instance(
        &mut self,
        key: &InstanceKey,
        cause: &CheckId,
        output: String,
        events: &mpsc::UnboundedSender<Event>,
    ) {
        let Some(instance) = self.instances.get(key) else {
            return;
        };
        let worst = instance
            .checks
            .iter()
            .filter_map(|id| self.checks.get(id))
            .map(|e| e.thresholds.status())
            .max();
        let Some(worst) = worst else {
            return;
        };
        let from = instance.status;
        if from == Some(worst) {
            return;
        }
        if let Some(instance) = self.instances.get_mut(key) {
            instance.status = Some(worst);
        }
        // A send error means the reporting task is gone (shutting down).
        let _ = events.send(Event::Status(StatusChange {
            instance: key.clone(),
            from,
            to: worst,
            check: cause.clone(),
            output,
        }));
    }
}
