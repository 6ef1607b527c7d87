//! Running checks: the driver task pops due work in time order, fires TTL expiries and
//! deregistration deadlines, and starts probes under the concurrency limit; each probe
//! records its result back into the [`CheckTable`].

use super::check_table::{CheckTable, Recording};
use super::config::SchedulerConfig;
use super::queue::{DueKind, next_run};
use super::reporting::Event;
use crate::health::spec::{Prepared, Probe};
use crate::health::{CheckResult, CheckRun, DeregisterRequest, custom, http, millis, tcp};
use crate::registry::HealthStatus;
use chrono::Utc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// What the scheduler's handle, its driver task and its probes share.
pub(super) struct Shared {
    pub(super) state: Mutex<CheckTable>,
    pub(super) wake: Notify,
    pub(super) permits: Arc<Semaphore>,
    pub(super) events: mpsc::UnboundedSender<Event>,
    pub(super) http: reqwest::Client,
    pub(super) config: SchedulerConfig,
    pub(super) shutdown: watch::Sender<bool>,
    /// Whether the reporter wants a report per probe run.
    pub(super) report_runs: bool,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, CheckTable> {
        // No code panics while holding the lock; recovering keeps the scheduler usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fires due TTL expiries and deregistrations, then returns the next probe to start
    /// or how long to wait.
    fn next_step(&self, now: Instant) -> Step {
        let mut guard = self.lock();
        let st = &mut *guard;
        loop {
            match st.queue.next_at() {
                None => return Step::Wait(None),
                Some(at) if at > now => return Step::Wait(Some(at)),
                Some(_) => {}
            }
            let Some(due) = st.queue.pop() else {
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

/// What the driver does next.
enum Step {
    Run(Arc<Prepared>, u64),
    Wait(Option<Instant>),
}

/// The driver: pops due work in time order, starts probes under the semaphore.
pub(super) async fn drive(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
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
