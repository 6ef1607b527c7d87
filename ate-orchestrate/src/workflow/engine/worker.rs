//! Workers: tasks in the host's tokio runtime that claim due nodes, run their handlers, keep
//! their leases alive, and record results. Any number of workers, in any number of hosts,
//! may share one store.

use super::WorkflowEngine;
use super::recorder::{Job, ask};
use super::step::StepContext;
use crate::OrchestrateError;
use crate::workflow::metrics::AttemptOutcome;
use crate::workflow::state::NodeError;
use crate::workflow::store::{Claim, ClaimRequest, Lease, LogEntry, MAX_LOG_BATCH};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How a worker behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerConfig {
    /// Names the worker in leases (host and process, for example).
    pub id: String,
    /// Most handlers run at once (default 8). A place is free again as soon as its handler
    /// returns: the worker asks for the next node while the result is being recorded, and
    /// the two are done in one transaction. For short steps, more places mean larger
    /// batches and more throughput: in `benches/README.md`, two workers went from about
    /// 4–6k node completions/s at 16 places each to 8–12k at 64.
    pub concurrency: usize,
    /// How long a claim holds a node without a heartbeat (default 30 s). The worker renews
    /// it every third of that while the handler runs; a worker that dies loses it after at
    /// most this long, and the node is retried elsewhere.
    pub lease: Duration,
    /// How long an idle worker waits before looking for work again when no run event woke
    /// it (default 1 s). Events wake it at once when a node becomes ready anywhere on the
    /// database, and when a retry's backoff or a delayed run's start time comes, so this
    /// only bounds how late work found without an event (a lost notification) starts.
    pub poll_interval: Duration,
    /// How often the worker runs the store's maintenance pass (default 1 s).
    pub maintain_interval: Duration,
    /// How often the worker refreshes the engine's [`WorkflowMetrics`](crate::workflow::WorkflowMetrics) gauges from
    /// [`WorkflowStore::stats`](crate::workflow::WorkflowStore::stats) (default 10 s; only
    /// with [`EngineBuilder::metrics`](super::EngineBuilder::metrics)). One worker per host
    /// is enough; each does it.
    pub stats_interval: Duration,
}

impl WorkerConfig {
    /// The defaults, for a worker called `id`.
    pub fn new(id: impl Into<String>) -> Self {
        WorkerConfig {
            id: id.into(),
            concurrency: 8,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            maintain_interval: Duration::from_secs(1),
            stats_interval: Duration::from_secs(10),
        }
    }

    /// Sets [`WorkerConfig::concurrency`].
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// Sets [`WorkerConfig::lease`].
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Sets [`WorkerConfig::poll_interval`].
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every;
        self
    }

    /// Sets [`WorkerConfig::stats_interval`].
    pub fn stats_interval(mut self, every: Duration) -> Self {
        self.stats_interval = every;
        self
    }

    /// Sets [`WorkerConfig::maintain_interval`].
    pub fn maintain_interval(mut self, every: Duration) -> Self {
        self.maintain_interval = every;
        self
    }

    fn validate(&self) -> Result<(), OrchestrateError> {
        let bad = |reason: &str| OrchestrateError::invalid("worker config", reason.to_owned());
        if self.id.is_empty() || self.id.len() > 256 {
            return Err(bad("the id must have 1 to 256 bytes"));
        }
        if self.concurrency == 0 {
            return Err(bad("concurrency must be at least 1"));
        }
        if self.lease < Duration::from_millis(30) {
            return Err(bad("the lease must be at least 30 ms"));
        }
        if self.poll_interval.is_zero()
            || self.maintain_interval.is_zero()
            || self.stats_interval.is_zero()
        {
            return Err(bad("intervals must be positive"));
        }
        Ok(())
    }
}

/// What [`Worker::shutdown`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Attempts that finished (and were recorded) within the grace period.
    pub finished: usize,
    /// Attempts still running at the deadline: cancelled, and their nodes given back to be
    /// claimed again at once.
    pub released: usize,
}

/// A running worker. Dropping it stops it abruptly, as a crash would (leases then expire);
/// [`Worker::shutdown`] stops it gracefully.
#[derive(Debug)]
pub struct Worker {
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<ShutdownReport>>,
    grace: Arc<Mutex<Duration>>,
}

/// Attempts in flight: their leases and cancellation tokens.
type InFlight = Arc<Mutex<HashMap<Lease, Running>>>;

/// An attempt in flight: how to cancel it, and its step (for metrics).
struct Running {
    cancel: CancellationToken,
    step: crate::workflow::StepName,
}

impl WorkflowEngine {
    /// Starts a worker on the current tokio runtime. `InvalidInput` for a bad config.
    pub fn start_worker(&self, config: WorkerConfig) -> Result<Worker, OrchestrateError> {
        config.validate()?;
        let stop = CancellationToken::new();
        let grace = Arc::new(Mutex::new(Duration::ZERO));
        let task = tokio::spawn(run(self.clone(), config, stop.clone(), grace.clone()));
        Ok(Worker {
            stop,
            task: Some(task),
            grace,
        })
    }
}

impl Worker {
    /// Stops claiming, lets running attempts finish for up to `grace`, then cancels the rest
    /// and gives their nodes back (another worker may claim them at once).
    pub async fn shutdown(mut self, grace: Duration) -> ShutdownReport {
        *lock_grace(&self.grace) = grace;
        self.stop.cancel();
        match self.task.take() {
            Some(task) => task.await.unwrap_or_default(),
            None => ShutdownReport::default(),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn run(
    engine: WorkflowEngine,
    config: WorkerConfig,
    stop: CancellationToken,
    grace: Arc<Mutex<Duration>>,
) -> ShutdownReport {
    let in_flight: InFlight = Arc::default();
    let mut attempts: JoinSet<()> = JoinSet::new();
    let recorder = engine.recorder.sender(&engine.store);
    let places = Places::default();
    let mut next_maintenance = tokio::time::Instant::now();
    let mut next_stats = tokio::time::Instant::now();
    // Only nodes this engine can run: other engines on the database take theirs.
    let steps: Vec<crate::workflow::StepName> = engine.steps.keys().cloned().collect();
    // Run events wake the worker when work becomes due; polling stays as the fallback.
    let mut events = match engine.store.events().await {
        Ok(events) => Some(events),
        Err(e) => {
            tracing::warn!(worker = %config.id, error = %e, "no workflow events; polling only");
            None
        }
    };
    // The times events said work becomes due (retries' backoffs, delayed runs).
    let mut due = DueTimes::default();
    while !stop.is_cancelled() {
        let due_now = due.take_due(tokio::time::Instant::now());
        if due_now || tokio::time::Instant::now() >= next_maintenance {
            match engine.store.maintain().await {
                Ok(done) => {
                    if let Some(metrics) = &engine.metrics {
                        metrics.record_maintenance(&done);
                    }
                }
                Err(e) => {
                    tracing::warn!(worker = %config.id, error = %e, "workflow maintenance failed")
                }
            }
            next_maintenance = tokio::time::Instant::now() + config.maintain_interval;
        }
        if let Some(metrics) = &engine.metrics
            && tokio::time::Instant::now() >= next_stats
        {
            match engine.store.stats().await {
                Ok(stats) => metrics.observe(&stats),
                Err(e) => {
                    tracing::warn!(worker = %config.id, error = %e, "reading workflow stats failed")
                }
            }
            next_stats = tokio::time::Instant::now() + config.stats_interval;
        }
        while attempts.try_join_next().is_some() {}
        // Events already waiting say nothing a claim now would not find.
        drain_events(&mut events, &in_flight, &mut due);
        let quarter = config.concurrency.div_ceil(4);
        if places.busy() > config.concurrency.saturating_sub(quarter) {
            // Few places are free: handlers returning within moments free more, and one
            // claim then fills them all.
            let until = tokio::time::Instant::now() + CLAIM_GATHER;
            while places.busy() > config.concurrency.saturating_sub(quarter) {
                if tokio::time::timeout_at(until, places.freed())
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
        let free = config.concurrency.saturating_sub(places.busy());
        let mut claimed = 0;
        if free > 0 {
            let request = ClaimRequest::new(config.id.clone(), steps.clone(), free, config.lease);
            match ask(&recorder, |reply| Job::Claim(request, reply)).await {
                Ok(claims) => {
                    claimed = claims.len();
                    for claim in claims {
                        let token = CancellationToken::new();
                        lock(&in_flight).insert(
                            claim.lease,
                            Running {
                                cancel: token.clone(),
                                step: claim.step.clone(),
                            },
                        );
                        let attempt = attempt(
                            engine.clone(),
                            claim,
                            config.lease,
                            token,
                            in_flight.clone(),
                            recorder.clone(),
                            places.take(),
                        );
                        attempts.spawn(attempt);
                    }
                }
                Err(e) => {
                    tracing::warn!(worker = %config.id, error = %e, "claiming workflow nodes failed")
                }
            }
        }
        if claimed > 0 && claimed == free {
            continue; // there may be more
        }
        let poll_at = tokio::time::Instant::now() + config.poll_interval;
        loop {
            let wake_at = due
                .next()
                .map_or(poll_at, |at| at.min(poll_at))
                .min(next_maintenance);
            tokio::select! {
                () = tokio::time::sleep_until(wake_at) => break,
                () = stop.cancelled() => break,
                () = places.freed() => break,
                event = next_event(&mut events, &in_flight) => match event {
                    Wake::Now => break,
                    Wake::At(at) => due.add(at),
                    Wake::Not => {}
                },
            }
        }
    }
    // Graceful shutdown: no more claims; running attempts get the grace period.
    let grace = *lock_grace(&grace);
    let mut report = ShutdownReport::default();
    let deadline = tokio::time::Instant::now() + grace;
    while !attempts.is_empty() {
        match tokio::time::timeout_at(deadline, attempts.join_next()).await {
            Ok(_) => report.finished += 1,
            Err(_) => break,
        }
    }
    attempts.abort_all();
    let left: Vec<(Lease, Running)> = lock(&in_flight).drain().collect();
    for (lease, running) in left {
        running.cancel.cancel();
        match engine.store.release(&lease).await {
            Ok(()) => {
                report.released += 1;
                if let Some(metrics) = &engine.metrics {
                    metrics.record_attempt(
                        running.step.as_str(),
                        AttemptOutcome::Released,
                        Duration::ZERO,
                    );
                }
            }
            Err(e) => tracing::warn!(worker = %config.id, error = %e, "releasing a lease failed"),
        }
    }
    report
}

/// The future times at which work becomes due, as run events announced them. Bounded: past
/// [`DueTimes::MAX`] the latest are forgotten (polling finds that work).
#[derive(Default)]
struct DueTimes(std::collections::BTreeSet<tokio::time::Instant>);

impl DueTimes {
    const MAX: usize = 1024;

    fn add(&mut self, at: tokio::time::Instant) {
        self.0.insert(at);
        if self.0.len() > Self::MAX {
            self.0.pop_last();
        }
    }

    fn next(&self) -> Option<tokio::time::Instant> {
        self.0.first().copied()
    }

    /// Forgets the times that have come; `true` if there were any.
    fn take_due(&mut self, now: tokio::time::Instant) -> bool {
        let later = self.0.split_off(&now);
        let came = !self.0.is_empty();
        self.0 = later;
        came
    }
}

/// What a run event asks of an idle worker.
enum Wake {
    /// Work is due now: claim.
    Now,
    /// Work becomes due then.
    At(tokio::time::Instant),
    /// Nothing.
    Not,
}

/// The next run event, as a [`Wake`]; never completes without a subscription. Missed events
/// (lagging) wake the worker, which then looks for itself. An event saying a run is stopping
/// or has ended cancels this worker's attempts of that run at once (on any host: the event
/// travels by notification on PostgreSQL), rather than at their next lease renewal.
async fn next_event(
    events: &mut Option<tokio::sync::broadcast::Receiver<crate::workflow::RunEvent>>,
    in_flight: &InFlight,
) -> Wake {
    let Some(receiver) = events else {
        return std::future::pending().await;
    };
    let received = receiver.recv().await;
    wake_for(received, events, in_flight)
}

/// Takes the run events already waiting (their wake-ups folded into one): `true` if one asks
/// for work now. Called before claiming, so a burst of events makes one claim, not one each.
fn drain_events(
    events: &mut Option<tokio::sync::broadcast::Receiver<crate::workflow::RunEvent>>,
    in_flight: &InFlight,
    due: &mut DueTimes,
) -> bool {
    use tokio::sync::broadcast::error::TryRecvError;
    let mut now = false;
    while let Some(receiver) = events {
        let received = match receiver.try_recv() {
            Ok(event) => Ok(event),
            Err(TryRecvError::Empty) => break,
            Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
            Err(TryRecvError::Closed) => Err(RecvError::Closed),
        };
        match wake_for(received, events, in_flight) {
            Wake::Now => now = true,
            Wake::At(at) => due.add(at),
            Wake::Not => {}
        }
    }
    now
}

/// What one received run event (or a gap) asks for; see [`next_event`].
fn wake_for(
    received: Result<crate::workflow::RunEvent, RecvError>,
    events: &mut Option<tokio::sync::broadcast::Receiver<crate::workflow::RunEvent>>,
    in_flight: &InFlight,
) -> Wake {
    match received {
        Ok(event) if event.stopping.is_some() || event.status.is_finished() => {
            for (lease, running) in lock(in_flight).iter() {
                if lease.run == event.run {
                    running.cancel.cancel();
                }
            }
            Wake::Not
        }
        Ok(event) => match event.due_at {
            None => Wake::Not,
            Some(at) => {
                // Far-off times are looked at again in a day (no overflow).
                let wait = (at - chrono::Utc::now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(Duration::from_secs(86_400));
                if wait.is_zero() {
                    Wake::Now
                } else {
                    // A little after: the runtime's timer and the wall clock the store
                    // compares with may differ by a fraction of a millisecond.
                    Wake::At(tokio::time::Instant::now() + wait + Duration::from_millis(2))
                }
            }
        },
        Err(RecvError::Lagged(_)) => Wake::Now,
        Err(RecvError::Closed) => {
            *events = None;
            Wake::Not
        }
    }
}

fn lock(in_flight: &InFlight) -> std::sync::MutexGuard<'_, HashMap<Lease, Running>> {
    in_flight.lock().unwrap_or_else(PoisonError::into_inner)
}

fn lock_grace(grace: &Mutex<Duration>) -> std::sync::MutexGuard<'_, Duration> {
    grace.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How long a worker with less than a quarter of its places free waits for more to free
/// before claiming: claims come in batches (one transaction for many nodes) without holding
/// work back noticeably.
const CLAIM_GATHER: Duration = Duration::from_millis(2);

/// Runs one attempt: the handler (in its own task, under the start-to-close timeout) while
/// the lease is renewed; then records the result (through [`record`]), unless the lease
/// was lost meanwhile.
async fn attempt(
    engine: WorkflowEngine,
    claim: Claim,
    lease_for: Duration,
    cancel: CancellationToken,
    in_flight: InFlight,
    recorder: mpsc::UnboundedSender<Job>,
    place: Place,
) {
    let lease = claim.lease;
    let began = tokio::time::Instant::now();
    let Some(handler) = engine.handler(&claim.step) else {
        // Claims ask only for this engine's steps, so this does not happen; should it,
        // give the node back for an engine that has the step.
        tracing::warn!(step = %claim.step, "no handler for a claimed step here");
        if let Err(e) = engine.store.release(&lease).await {
            tracing::warn!(error = %e, "releasing a node without a handler failed");
        }
        lock(&in_flight).remove(&lease);
        return;
    };
    let logs: Arc<Mutex<Vec<LogEntry>>> = Arc::default();
    let beat = Arc::new(Mutex::new(tokio::time::Instant::now()));
    let ctx = StepContext {
        tenant: claim.tenant,
        run: claim.lease.run,
        node: claim.node_id.clone(),
        attempt: claim.attempt,
        cancel: cancel.clone(),
        logs: logs.clone(),
        beat: beat.clone(),
        engine: engine.clone(),
        lease,
    };
    let mut work = tokio::spawn(handler.run(ctx, claim.input));
    let deadline = tokio::time::sleep(claim.start_to_close);
    tokio::pin!(deadline);
    let mut renew = tokio::time::interval(lease_for / 3);
    renew.tick().await; // the first tick is immediate
    let mut lost = false;
    let result = loop {
        tokio::select! {
            joined = &mut work => break match joined {
                Ok(result) => result,
                Err(e) if e.is_panic() => Err(NodeError::retryable("panic", "the step handler panicked")),
                Err(_) => Err(NodeError::retryable("cancelled", "the step handler was aborted")),
            },
            () = &mut deadline => {
                cancel.cancel();
                work.abort();
                break Err(NodeError::retryable(
                    "timeout",
                    format!("the start-to-close timeout of {} ms passed", claim.start_to_close.as_millis()),
                ));
            }
            () = silence(&beat, claim.heartbeat_timeout) => {
                cancel.cancel();
                work.abort();
                let limit = claim.heartbeat_timeout.unwrap_or_default();
                break Err(NodeError::retryable(
                    "heartbeat_timeout",
                    format!("no heartbeat for {} ms", limit.as_millis()),
                ));
            }
            _ = renew.tick() => {
                flush_logs(&engine, &lease, &logs).await;
                let renewed = engine.store.heartbeat(&lease, lease_for).await;
                match renewed {
                    Ok(stop) => {
                        if stop {
                            cancel.cancel();
                        }
                    }
                    Err(OrchestrateError::Core(ate_core::CoreError::Conflict(_))) => {
                        // Someone else holds the node now: stop, and record nothing.
                        cancel.cancel();
                        work.abort();
                        lost = true;
                        break Err(NodeError::retryable("lease_lost", "the lease was lost"));
                    }
                    Err(e) => tracing::warn!(error = %e, "renewing a workflow lease failed"),
                }
            }
        }
    };
    // The handler is done: its place is free, and the worker may ask for the next node
    // while this result is recorded (in the same transaction, under load).
    drop(place);
    flush_logs(&engine, &lease, &logs).await;
    let mut outcome = AttemptOutcome::Lost;
    if !lost {
        let done = match result {
            Ok(_) => AttemptOutcome::Succeeded,
            Err(_) => AttemptOutcome::Failed,
        };
        let recorded = ask(&recorder, |reply| Job::Record(lease, result, reply)).await;
        match recorded {
            Ok(_) => outcome = done,
            Err(e) => {
                tracing::warn!(run = %lease.run, node = lease.node, error = %e, "recording an attempt failed")
            }
        }
    }
    // Given back at shutdown meanwhile: counted there.
    if lock(&in_flight).remove(&lease).is_some()
        && let Some(metrics) = &engine.metrics
    {
        metrics.record_attempt(claim.step.as_str(), outcome, began.elapsed());
    }
}

/// The worker's places: how many handlers run, and a wake-up when one returns.
#[derive(Clone, Default)]
struct Places {
    busy: Arc<AtomicUsize>,
    freed: Arc<Notify>,
}

impl Places {
    fn busy(&self) -> usize {
        self.busy.load(Ordering::Acquire)
    }

    /// Takes a place, held until the [`Place`] is dropped.
    fn take(&self) -> Place {
        self.busy.fetch_add(1, Ordering::AcqRel);
        Place(self.clone())
    }

    /// Completes when a place is given back (at once if one was given back since the last
    /// call returned).
    async fn freed(&self) {
        self.freed.notified().await;
    }
}

/// A place taken by a running handler; given back when dropped (also if its attempt is
/// aborted).
struct Place(Places);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
        self.0.freed.notify_one();
    }
}

/// Sends the attempt's buffered log entries to the store.
async fn flush_logs(engine: &WorkflowEngine, lease: &Lease, logs: &Mutex<Vec<LogEntry>>) {
    let entries: Vec<LogEntry> =
        std::mem::take(&mut *logs.lock().unwrap_or_else(PoisonError::into_inner));
    for batch in entries.chunks(MAX_LOG_BATCH) {
        if let Err(e) = engine.store.append_logs(lease, batch).await {
            tracing::warn!(run = %lease.run, error = %e, "writing workflow logs failed");
        }
    }
}

/// Completes once the handler has gone longer than `limit` without a heartbeat (never, when
/// the node has no heartbeat timeout).
async fn silence(beat: &Mutex<tokio::time::Instant>, limit: Option<Duration>) {
    let Some(limit) = limit else {
        return std::future::pending().await;
    };
    let mut every = tokio::time::interval((limit / 4).max(Duration::from_millis(1)));
    loop {
        every.tick().await;
        let last = *beat.lock().unwrap_or_else(PoisonError::into_inner);
        if last.elapsed() > limit {
            return;
        }
    }
}
