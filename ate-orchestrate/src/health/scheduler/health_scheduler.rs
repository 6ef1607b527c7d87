//! [`HealthScheduler`]: the handle hosts hold (add and remove checks, TTL reports, results
//! and statuses, shutdown); it starts the driver and reporting tasks.

use super::check_table::{CheckEntry, CheckTable, InstanceEntry, Recording};
use super::config::SchedulerConfig;
use super::driver::{Shared, drive};
use super::queue::{DueKind, after, random_jitter};
use super::reporting::report;
use crate::error::OrchestrateError;
use crate::health::spec::{CheckSpec, Probe};
use crate::health::state::ThresholdState;
use crate::health::{CheckId, CheckResult, HealthReporter, cap_output, http};
use crate::registry::{HealthStatus, InstanceKey};
use chrono::Utc;
use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Runs health checks and reports status changes.
///
/// Behavior:
/// * [`HealthScheduler::new`] spawns one driver task and one reporting task on the current
///   tokio runtime. The driver keeps every check in one queue ordered by due time and
///   starts due probes while fewer than
///   [`max_concurrent_checks`](SchedulerConfig::max_concurrent_checks) run; a due check
///   waits for a free slot rather than being skipped.
/// * A check's first run comes after a random delay within its jitter (at once without
///   jitter); each next run is due one interval (plus a fresh random jitter) after the
///   previous run started.
/// * Every result goes into the check's history and through its [`ThresholdState`]; when
///   the worst status among an instance's checks changes, the [`HealthReporter`] hears of
///   it once ([`StatusChange`](crate::health::StatusChange)). Adding the first check of an
///   instance reports its starting status, critical.
/// * A check critical for longer than its `deregister_critical_after` removes every check
///   of its instance and asks the reporter to deregister it
///   ([`DeregisterRequest`](crate::health::DeregisterRequest)).
/// * [`HealthScheduler::shutdown`] stops the driver, cancels running probes and delivers
///   reports already queued; dropping the scheduler stops both tasks at once (queued
///   reports are lost). No task outlives the scheduler.
pub struct HealthScheduler {
    shared: Arc<Shared>,
    driver: Mutex<Option<JoinHandle<()>>>,
    reporting: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for HealthScheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared.lock();
        f.debug_struct("HealthScheduler")
            .field("config", &self.shared.config)
            .field("checks", &st.checks.len())
            .field("instances", &st.instances.len())
            .field("closed", &st.closed)
            .finish()
    }
}

impl HealthScheduler {
    /// A scheduler reporting to `reporter`. Must be called inside a tokio runtime.
    ///
    /// Errors: [`OrchestrateError::InvalidInput`] for a config out of range or when no
    /// tokio runtime is running; [`OrchestrateError::Unavailable`] if the HTTP client
    /// cannot be built.
    pub fn new(
        reporter: Arc<dyn HealthReporter>,
        config: SchedulerConfig,
    ) -> Result<Self, OrchestrateError> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            OrchestrateError::invalid("health scheduler", "must be created inside a tokio runtime")
        })?;
        let http = http::client().map_err(|e| {
            OrchestrateError::Unavailable(format!("cannot build the HTTP check client: {e}"))
        })?;
        let (events, events_rx) = mpsc::unbounded_channel();
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            state: Mutex::new(CheckTable::default()),
            wake: Notify::new(),
            permits: Arc::new(Semaphore::new(config.max_concurrent_checks)),
            events,
            http,
            config,
            shutdown,
            report_runs: reporter.wants_check_runs(),
        });
        let driver = runtime.spawn(drive(shared.clone(), shared.shutdown.subscribe()));
        let reporting = runtime.spawn(report(reporter, events_rx, shared.shutdown.subscribe()));
        Ok(HealthScheduler {
            shared,
            driver: Mutex::new(Some(driver)),
            reporting: Mutex::new(Some(reporting)),
        })
    }

    /// Adds a check; it starts critical.
    ///
    /// Errors: [`OrchestrateError::InvalidInput`] from [`CheckSpec::validate`];
    /// [`OrchestrateError::AlreadyExists`] if the id is taken;
    /// [`OrchestrateError::Unavailable`] after [`HealthScheduler::shutdown`].
    pub fn add_check(&self, spec: CheckSpec) -> Result<(), OrchestrateError> {
        let prepared = Arc::new(spec.prepare()?);
        let thresholds = ThresholdState::new(
            prepared.success_before_passing,
            prepared.failures_before_critical,
        )?;
        let now = Instant::now();
        let mut guard = self.shared.lock();
        let st = &mut *guard;
        if st.closed {
            return Err(shut_down());
        }
        if st.checks.contains_key(&prepared.id) {
            return Err(OrchestrateError::already_exists(
                "health check",
                &prepared.id,
            ));
        }
        st.next_generation += 1;
        let generation = st.next_generation;
        let id = prepared.id.clone();
        let key = prepared.instance.clone();
        let mut entry = CheckEntry {
            spec: prepared.clone(),
            generation,
            thresholds,
            critical_since: Some(now),
            ttl_deadline: None,
            ttl_armed: false,
            results: VecDeque::new(),
            last_output: "check added, not run yet".to_owned(),
        };
        match &prepared.probe {
            Probe::Ttl { ttl } => {
                let deadline = after(now, *ttl);
                entry.ttl_deadline = Some(deadline);
                entry.ttl_armed = true;
                st.push(deadline, &id, generation, DueKind::TtlExpiry);
            }
            _ => {
                let first = after(now, random_jitter(prepared.jitter));
                st.push(first, &id, generation, DueKind::Run);
            }
        }
        if let Some(dca) = prepared.deregister_critical_after {
            st.push(after(now, dca), &id, generation, DueKind::Deregister);
        }
        st.checks.insert(id.clone(), entry);
        let instance = st
            .instances
            .entry(key.clone())
            .or_insert_with(|| InstanceEntry {
                status: None,
                checks: BTreeSet::new(),
            });
        instance.checks.insert(id.clone());
        let output = "check added, not run yet".to_owned();
        st.refresh_instance(&key, &id, output, &self.shared.events);
        drop(guard);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Removes a check. A probe of it still running finishes unseen. If it was the
    /// instance's last check, the scheduler forgets the instance (nothing is reported);
    /// otherwise the instance's aggregate is recomputed and a change reported.
    ///
    /// Errors: [`OrchestrateError::NotFound`].
    pub fn remove_check(&self, id: &CheckId) -> Result<(), OrchestrateError> {
        let mut st = self.shared.lock();
        let entry = st
            .checks
            .remove(id)
            .ok_or_else(|| OrchestrateError::not_found("health check", id))?;
        let key = entry.spec.instance.clone();
        let now_empty = match st.instances.get_mut(&key) {
            Some(instance) => {
                instance.checks.remove(id);
                instance.checks.is_empty()
            }
            None => false,
        };
        if now_empty {
            st.instances.remove(&key);
        } else {
            st.refresh_instance(&key, id, format!("check {id} removed"), &self.shared.events);
        }
        Ok(())
    }

    /// Removes every check of an instance (for example after it deregistered); returns how
    /// many there were. Nothing is reported.
    pub fn remove_instance(&self, instance: &InstanceKey) -> usize {
        self.shared.lock().remove_instance(instance)
    }

    /// Records a passing report for a TTL check (Consul's "pass"); see
    /// [`HealthScheduler::update_ttl`].
    pub fn heartbeat(&self, id: &CheckId) -> Result<(), OrchestrateError> {
        self.update_ttl(id, HealthStatus::Passing, "TTL heartbeat")
    }

    /// Records a report for a TTL check: its status becomes `status` at once (thresholds do
    /// not apply to TTL checks) and stays valid for one TTL; with no further report by
    /// then the check turns critical (`TTL expired …`).
    ///
    /// Errors: [`OrchestrateError::NotFound`]; [`OrchestrateError::InvalidInput`] if the
    /// check is not a TTL check.
    pub fn update_ttl(
        &self,
        id: &CheckId,
        status: HealthStatus,
        output: impl Into<String>,
    ) -> Result<(), OrchestrateError> {
        let now = Instant::now();
        let output = cap_output(output.into());
        let mut guard = self.shared.lock();
        let st = &mut *guard;
        let entry = st
            .checks
            .get_mut(id)
            .ok_or_else(|| OrchestrateError::not_found("health check", id))?;
        let Probe::Ttl { ttl } = entry.spec.probe else {
            return Err(OrchestrateError::invalid(
                "TTL update",
                format!("check {id} is not a TTL check"),
            ));
        };
        entry.ttl_deadline = Some(after(now, ttl));
        let arm = !entry.ttl_armed;
        entry.ttl_armed = true;
        let generation = entry.generation;
        let result = CheckResult {
            at: Utc::now(),
            status,
            output,
            duration: Duration::ZERO,
        };
        if arm {
            st.push(after(now, ttl), id, generation, DueKind::TtlExpiry);
        }
        st.record(
            id,
            result,
            Recording::Direct,
            now,
            self.shared.config.results_kept,
            &self.shared.events,
        );
        drop(guard);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// The check's last results, oldest first (at most
    /// [`results_kept`](SchedulerConfig::results_kept)).
    ///
    /// Errors: [`OrchestrateError::NotFound`].
    pub fn results(&self, id: &CheckId) -> Result<Vec<CheckResult>, OrchestrateError> {
        let st = self.shared.lock();
        let entry = st
            .checks
            .get(id)
            .ok_or_else(|| OrchestrateError::not_found("health check", id))?;
        Ok(entry.results.iter().cloned().collect())
    }

    /// The check's current status, after thresholds.
    ///
    /// Errors: [`OrchestrateError::NotFound`].
    pub fn check_status(&self, id: &CheckId) -> Result<HealthStatus, OrchestrateError> {
        let st = self.shared.lock();
        st.checks
            .get(id)
            .map(|e| e.thresholds.status())
            .ok_or_else(|| OrchestrateError::not_found("health check", id))
    }

    /// The instance's aggregate status (the worst of its checks), or `None` if it has no
    /// checks here.
    pub fn instance_status(&self, instance: &InstanceKey) -> Option<HealthStatus> {
        self.shared
            .lock()
            .instances
            .get(instance)
            .and_then(|i| i.status)
    }

    /// The ids of the instance's checks, sorted.
    pub fn instance_checks(&self, instance: &InstanceKey) -> Vec<CheckId> {
        self.shared
            .lock()
            .instances
            .get(instance)
            .map(|i| i.checks.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// How many checks are scheduled.
    pub fn len(&self) -> usize {
        self.shared.lock().checks.len()
    }

    /// Whether no check is scheduled.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops the scheduler: no new checks, running probes cancelled, reports already
    /// queued delivered, both tasks finished when this returns. Idempotent.
    pub async fn shutdown(&self) {
        self.shared.lock().closed = true;
        self.shared.shutdown.send_replace(true);
        let driver = take(&self.driver);
        if let Some(driver) = driver
            && let Err(e) = driver.await
            && e.is_panic()
        {
            tracing::error!("health check driver panicked: {e}");
        }
        let reporting = take(&self.reporting);
        if let Some(reporting) = reporting
            && let Err(e) = reporting.await
            && e.is_panic()
        {
            tracing::error!("health reporting task panicked: {e}");
        }
    }
}

impl Drop for HealthScheduler {
    fn drop(&mut self) {
        self.shared.shutdown.send_replace(true);
        // Aborting drops the driver's future, and with it the JoinSet of running probes.
        for handle in [take(&self.driver), take(&self.reporting)]
            .into_iter()
            .flatten()
        {
            handle.abort();
        }
    }
}

fn take(slot: &Mutex<Option<JoinHandle<()>>>) -> Option<JoinHandle<()>> {
    slot.lock().unwrap_or_else(PoisonError::into_inner).take()
}

fn shut_down() -> OrchestrateError {
    OrchestrateError::Unavailable("the health scheduler is shut down".to_owned())
}
