//! The scheduler: one driver task, a queue ordered by due time, bounded concurrency.

use super::spec::{CheckSpec, Prepared, Probe};
use super::state::ThresholdState;
use super::{
    CheckId, CheckResult, CheckRun, DeregisterRequest, HealthReporter, StatusChange, cap_output,
    custom, http, millis, tcp,
};
use crate::error::OrchestrateError;
use crate::registry::{HealthStatus, InstanceKey};
use chrono::Utc;
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// The scheduler's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SchedulerConfig {
    /// Most probes (HTTP, TCP, custom) running at once; further due checks wait for a
    /// slot. Default 64.
    pub max_concurrent_checks: usize,
    /// Results kept per check (oldest dropped first). Default 10.
    pub results_kept: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            max_concurrent_checks: 64,
            results_kept: 10,
        }
    }
}

impl SchedulerConfig {
    /// Sets [`SchedulerConfig::max_concurrent_checks`] (1 to 100,000).
    pub fn max_concurrent_checks(mut self, n: usize) -> Self {
        self.max_concurrent_checks = n;
        self
    }

    /// Sets [`SchedulerConfig::results_kept`] (1 to 1,000).
    pub fn results_kept(mut self, n: usize) -> Self {
        self.results_kept = n;
        self
    }

    fn validate(&self) -> Result<(), OrchestrateError> {
        if !(1..=100_000).contains(&self.max_concurrent_checks) {
            return Err(OrchestrateError::invalid(
                "max_concurrent_checks",
                format!("{} is outside 1..=100000", self.max_concurrent_checks),
            ));
        }
        if !(1..=1000).contains(&self.results_kept) {
            return Err(OrchestrateError::invalid(
                "results_kept",
                format!("{} is outside 1..=1000", self.results_kept),
            ));
        }
        Ok(())
    }
}

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
///   it once ([`StatusChange`]). Adding the first check of an instance reports its
///   starting status, critical.
/// * A check critical for longer than its `deregister_critical_after` removes every check
///   of its instance and asks the reporter to deregister it ([`DeregisterRequest`]).
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
            state: Mutex::new(State::default()),
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

/// `t + d`, saturating at `t`. Every duration is validated to at most
/// [`MAX_CHECK_PERIOD`](super::MAX_CHECK_PERIOD), so the fallback is never reached; it only
/// keeps the arithmetic panic-free.
fn after(t: Instant, d: Duration) -> Instant {
    t.checked_add(d).unwrap_or(t)
}

/// A random delay in `0..=jitter`.
fn random_jitter(jitter: Duration) -> Duration {
    if jitter.is_zero() {
        return Duration::ZERO;
    }
    let max = u64::try_from(jitter.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(0..=max))
}

/// When the run after one started at `started` is due.
fn next_run(started: Instant, interval: Duration, jitter: Duration, now: Instant) -> Instant {
    after(after(started, interval), random_jitter(jitter)).max(now)
}

struct Shared {
    state: Mutex<State>,
    wake: Notify,
    permits: Arc<Semaphore>,
    events: mpsc::UnboundedSender<Event>,
    http: reqwest::Client,
    config: SchedulerConfig,
    shutdown: watch::Sender<bool>,
    /// Whether the reporter wants a report per probe run.
    report_runs: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock; recovering keeps the scheduler usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fires due TTL expiries and deregistrations, then returns the next probe to start
    /// or how long to wait.
    fn next_step(&self, now: Instant) -> Step {
        let mut guard = self.lock();
        let st = &mut *guard;
        loop {
            match st.queue.peek() {
                None => return Step::Wait(None),
                Some(Reverse(due)) if due.at > now => return Step::Wait(Some(due.at)),
                Some(_) => {}
            }
            let Some(Reverse(due)) = st.queue.pop() else {
                return Step::Wait(None);
            };
            let Some(entry) = st.checks.get_mut(&due.check) else {
                continue;
            };
            if entry.generation != due.generation {
                continue;
            }
            match due.what {
                DueKind::Run => {
                    return Step::Run(entry.spec.clone(), entry.generation);
                }
                DueKind::TtlExpiry => {
                    let Probe::Ttl { ttl } = entry.spec.probe else {
                        continue;
                    };
                    match entry.ttl_deadline {
                        Some(deadline) if deadline > now => {
                            // Renewed since this entry was queued: re-arm at the deadline.
                            st.push(deadline, &due.check, due.generation, DueKind::TtlExpiry);
                        }
                        Some(_) => {
                            entry.ttl_deadline = None;
                            entry.ttl_armed = false;
                            let result = CheckResult {
                                at: Utc::now(),
                                status: HealthStatus::Critical,
                                output: format!("TTL expired: no update within {} ms", millis(ttl)),
                                duration: Duration::ZERO,
                            };
                            st.record(
                                &due.check,
                                result,
                                Recording::Direct,
                                now,
                                self.config.results_kept,
                                &self.events,
                            );
                        }
                        None => entry.ttl_armed = false,
                    }
                }
                DueKind::Deregister => {
                    let (Some(since), Some(dca)) =
                        (entry.critical_since, entry.spec.deregister_critical_after)
                    else {
                        continue;
                    };
                    let critical_for = now.saturating_duration_since(since);
                    if entry.thresholds.status() != HealthStatus::Critical || critical_for < dca {
                        continue;
                    }
                    let spec = entry.spec.clone();
                    st.remove_instance(&spec.instance);
                    // A send error means the reporting task is gone (shutting down).
                    let _ = self.events.send(Event::Deregister(DeregisterRequest {
                        instance: spec.instance.clone(),
                        check: spec.id.clone(),
                        critical_for,
                    }));
                }
            }
        }
    }

    /// Records a probe's result and schedules its next run.
    fn finish_run(&self, spec: &Prepared, generation: u64, started: Instant, result: CheckResult) {
        let now = Instant::now();
        let mut guard = self.lock();
        let st = &mut *guard;
        match st.checks.get(&spec.id) {
            Some(e) if e.generation == generation => {}
            _ => return,
        }
        st.record(
            &spec.id,
            result,
            Recording::Thresholds,
            now,
            self.config.results_kept,
            &self.events,
        );
        let due = next_run(started, spec.interval, spec.jitter, now);
        st.push(due, &spec.id, generation, DueKind::Run);
        drop(guard);
        self.wake.notify_one();
    }
}

enum Step {
    Run(Arc<Prepared>, u64),
    Wait(Option<Instant>),
}

#[derive(Debug)]
enum Event {
    Status(StatusChange),
    Deregister(DeregisterRequest),
    Ran(CheckRun),
}

struct InstanceEntry {
    /// The last aggregate status reported (`None` before the first report).
    status: Option<HealthStatus>,
    checks: BTreeSet<CheckId>,
}

struct CheckEntry {
    spec: Arc<Prepared>,
    generation: u64,
    thresholds: ThresholdState,
    /// Since when the (thresholded) status has been critical.
    critical_since: Option<Instant>,
    /// TTL checks: when the last report runs out (`None` once expired).
    ttl_deadline: Option<Instant>,
    /// TTL checks: whether a `TtlExpiry` entry is queued.
    ttl_armed: bool,
    results: VecDeque<CheckResult>,
    last_output: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DueKind {
    Run,
    TtlExpiry,
    Deregister,
}

#[derive(Debug)]
struct Due {
    at: Instant,
    seq: u64,
    check: CheckId,
    generation: u64,
    what: DueKind,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// How a result changes the check's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recording {
    /// Through the thresholds (probes).
    Thresholds,
    /// Directly (TTL updates and expiry).
    Direct,
}

#[derive(Default)]
struct State {
    checks: HashMap<CheckId, CheckEntry>,
    instances: HashMap<InstanceKey, InstanceEntry>,
    queue: BinaryHeap<Reverse<Due>>,
    next_seq: u64,
    next_generation: u64,
    closed: bool,
}

impl State {
    fn push(&mut self, at: Instant, check: &CheckId, generation: u64, what: DueKind) {
        self.next_seq += 1;
        self.queue.push(Reverse(Due {
            at,
            seq: self.next_seq,
            check: check.clone(),
            generation,
            what,
        }));
    }

    fn remove_instance(&mut self, key: &InstanceKey) -> usize {
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
    fn record(
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
    fn refresh_instance(
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

/// The driver: pops due work in time order, starts probes under the semaphore.
async fn drive(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut running: JoinSet<()> = JoinSet::new();
    loop {
        if *shutdown.borrow_and_update() {
            break;
        }
        while let Some(done) = running.try_join_next() {
            if let Err(e) = done
                && e.is_panic()
            {
                tracing::error!("health check probe panicked: {e}");
            }
        }
        match shared.next_step(Instant::now()) {
            Step::Run(spec, generation) => {
                let permit = tokio::select! {
                    permit = shared.permits.clone().acquire_owned() => match permit {
                        Ok(p) => p,
                        // The semaphore is never closed; treat it as a shutdown.
                        Err(_) => break,
                    },
                    _ = shutdown.changed() => break,
                };
                running.spawn(probe(shared.clone(), spec, generation, permit));
            }
            Step::Wait(until) => {
                let sleep = async {
                    match until {
                        Some(t) => tokio::time::sleep_until(t).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = shutdown.changed() => break,
                    _ = shared.wake.notified() => {}
                    _ = sleep => {}
                }
            }
        }
    }
    running.shutdown().await;
}

/// One probe run, holding a concurrency slot.
async fn probe(
    shared: Arc<Shared>,
    spec: Arc<Prepared>,
    generation: u64,
    permit: OwnedSemaphorePermit,
) {
    let at = Utc::now();
    let started = Instant::now();
    let (status, output) = match &spec.probe {
        Probe::Http { url, method } => http::run(&shared.http, method, url, spec.timeout).await,
        Probe::Tcp(target) => tcp::run(target, spec.timeout).await,
        Probe::Custom(check) => custom::run(check.as_ref(), spec.timeout).await,
        // TTL checks are never queued to run; treat a stray one as a no-op.
        Probe::Ttl { .. } => return,
    };
    let duration = started.elapsed();
    drop(permit);
    if shared.report_runs {
        let _ = shared.events.send(Event::Ran(CheckRun {
            instance: spec.instance.clone(),
            check: spec.id.clone(),
            kind: spec.probe.kind_name(),
            status,
            duration,
        }));
    }
    let result = CheckResult {
        at,
        status,
        output,
        duration,
    };
    shared.finish_run(&spec, generation, started, result);
}

/// The reporting task: delivers events one at a time, in order.
async fn report(
    reporter: Arc<dyn HealthReporter>,
    mut events: mpsc::UnboundedReceiver<Event>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            biased;
            event = events.recv() => match event {
                Some(event) => deliver(reporter.as_ref(), event).await,
                None => return,
            },
            _ = shutdown.changed() => break,
        }
    }
    while let Ok(event) = events.try_recv() {
        deliver(reporter.as_ref(), event).await;
    }
}

async fn deliver(reporter: &dyn HealthReporter, event: Event) {
    match event {
        Event::Status(change) => {
            let what = format!("{} -> {}", change.instance, change.to);
            if let Err(e) = reporter.status_changed(change).await {
                tracing::warn!("health reporter failed to record {what}: {e}");
            }
        }
        Event::Deregister(request) => {
            let what = request.instance.to_string();
            if let Err(e) = reporter.deregister_requested(request).await {
                tracing::warn!("health reporter failed to deregister {what}: {e}");
            }
        }
        Event::Ran(run) => reporter.check_ran(run).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_run_spreads_within_the_jitter() {
        let start = Instant::now();
        let interval = Duration::from_millis(100);
        let jitter = Duration::from_millis(50);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let due = next_run(start, interval, jitter, start);
            let delay = due - start;
            assert!(delay >= interval && delay <= interval + jitter, "{delay:?}");
            seen.insert(delay);
        }
        assert!(seen.len() > 10, "jitter does not spread runs: {seen:?}");
        // Without jitter, exactly one interval; never in the past.
        assert_eq!(
            next_run(start, interval, Duration::ZERO, start),
            start + interval
        );
        let late = start + Duration::from_secs(1);
        assert_eq!(next_run(start, interval, Duration::ZERO, late), late);
    }

    #[test]
    fn queue_pops_earliest_first() {
        let mut st = State::default();
        let t = Instant::now();
        let id = CheckId::new("a").unwrap();
        st.push(t + Duration::from_secs(3), &id, 1, DueKind::Run);
        st.push(t + Duration::from_secs(1), &id, 1, DueKind::Deregister);
        st.push(t + Duration::from_secs(2), &id, 1, DueKind::TtlExpiry);
        let order: Vec<_> =
            std::iter::from_fn(|| st.queue.pop().map(|Reverse(d)| d.what)).collect();
        assert_eq!(
            order,
            [DueKind::Deregister, DueKind::TtlExpiry, DueKind::Run]
        );
    }

    #[test]
    fn config_bounds() {
        assert!(SchedulerConfig::default().validate().is_ok());
        assert!(
            SchedulerConfig::default()
                .max_concurrent_checks(0)
                .validate()
                .is_err()
        );
        assert!(
            SchedulerConfig::default()
                .results_kept(0)
                .validate()
                .is_err()
        );
    }
}
