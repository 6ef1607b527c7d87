//! The alert engine: evaluates rules, moves alerts through their states, and delivers and
//! records events.

use super::event::{AlertEvent, AlertEventState, AlertState, AlertStatus};
use super::history::AlertHistory;
use super::rule::{AlertRule, Condition, Quantile};
use super::sink::AlertSink;
use crate::error::OrchestrateError;
use crate::metrics::{MetricsRecorder, WindowStats};
use crate::registry::{HealthStatus, InstanceId, ServiceName};
use crate::workflow::WorkflowStats;
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use uuid::Uuid;

/// Most events waiting for delivery or recording; beyond it the oldest is dropped (and
/// counted in [`AlertEngine::dropped_events`]).
pub const MAX_QUEUED_EVENTS: usize = 10_000;

/// What one [`AlertEngine::evaluate`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EvaluationReport {
    /// Rules evaluated.
    pub rules: usize,
    /// Alerts that started firing.
    pub fired: usize,
    /// Alerts that resolved.
    pub resolved: usize,
    /// Events the sink accepted in this evaluation (new or retried).
    pub delivered: usize,
    /// Sink calls that failed (the events stay queued).
    pub delivery_failures: usize,
    /// History writes that failed (retried at the next evaluation).
    pub history_failures: usize,
    /// Events still queued afterwards (not yet delivered, or delivered but not recorded).
    pub queued: usize,
}

#[derive(Debug)]
struct RuleEntry {
    rule: AlertRule,
    state: AlertState,
    since: Option<DateTime<Utc>>,
    value: f64,
    firing_id: Option<Uuid>,
}

impl RuleEntry {
    /// A new rule's entry: inactive, never evaluated.
    fn new(rule: AlertRule) -> Self {
        RuleEntry {
            rule,
            state: AlertState::Inactive,
            since: None,
            value: 0.0,
            firing_id: None,
        }
    }
}

#[derive(Debug, Clone)]
struct Outgoing {
    event: AlertEvent,
    persisted: bool,
    delivered_at: Option<DateTime<Utc>>,
    attempts: u32,
    recorded: bool,
}

impl Outgoing {
    fn done(&self) -> bool {
        self.persisted && self.delivered_at.is_some() && self.recorded
    }
}

type InstanceKey = (String, String);

#[derive(Debug, Default)]
struct EngineState {
    rules: BTreeMap<String, RuleEntry>,
    statuses: HashMap<InstanceKey, HealthStatus>,
    open_breakers: HashSet<InstanceKey>,
    workflow: Option<WorkflowStats>,
    outbox: VecDeque<Outgoing>,
    dropped_events: u64,
}

#[derive(Debug)]
struct Inner {
    recorder: Arc<MetricsRecorder>,
    sink: Arc<dyn AlertSink>,
    history: Arc<dyn AlertHistory>,
    state: Mutex<EngineState>,
    evaluating: tokio::sync::Mutex<()>,
}

/// Evaluates [`AlertRule`]s over a [`MetricsRecorder`]'s aggregates and over the instance
/// health and breaker states the host feeds it, and delivers firing and resolved events to
/// an [`AlertSink`] while keeping them in an [`AlertHistory`]. Cheap to clone (shared).
///
/// **Life cycle of a rule's alert**: `Inactive` → (condition breached) `Pending` → (still
/// breached after `for`) `Firing` → (no longer breached) `Resolved`, which acts like
/// `Inactive`. A breach that ends before `for` has elapsed returns to `Inactive` and emits
/// nothing; with `for = 0` the first breached evaluation fires. Conditions are only seen at
/// evaluations, so a breach between two evaluations goes unnoticed.
///
/// **Delivery guarantee**: each transition to `Firing` or `Resolved` creates exactly one
/// [`AlertEvent`] with a fresh id. The engine queues it and, at that evaluation and each later
/// one until done: (1) appends it to the history (retried if the write fails; an
/// `AlreadyExists` answer counts as written), (2) offers it to the sink until the sink returns
/// `Ok` — after an `Ok` the event is never offered again; after an `Err` it is offered again
/// at the next evaluation, with the same id — and (3) records the delivery time and the
/// number of attempts in the history, once. Events of one rule are offered in order: a
/// resolved event waits until its firing event was accepted. Sinks therefore see each event
/// once per `Ok`; only if an evaluation is cancelled while the sink call is in flight (the
/// loop dropped mid-call) may the sink see that event again, which the stable id lets it
/// detect. The queue lives in memory: events queued when the process exits are lost from
/// delivery, but any already appended stay in the history with no delivery time. At most
/// [`MAX_QUEUED_EVENTS`] wait; beyond that the oldest is dropped.
///
/// The state feeds ([`AlertEngine::set_instance_status`], [`AlertEngine::set_breaker_open`])
/// are meant to be wired to the registry's watch and the breakers' state changes.
#[derive(Debug, Clone)]
pub struct AlertEngine {
    inner: Arc<Inner>,
}

fn key(service: &ServiceName, instance: &InstanceId) -> InstanceKey {
    (service.as_str().to_owned(), instance.as_str().to_owned())
}

fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

fn target(service: &ServiceName, instance: Option<&InstanceId>) -> String {
    match instance {
        Some(i) => format!("{service}/{i}"),
        None => service.to_string(),
    }
}

impl AlertEngine {
    /// An engine with no rules, reading `recorder`, delivering to `sink`, recording in
    /// `history`.
    pub fn new(
        recorder: Arc<MetricsRecorder>,
        sink: Arc<dyn AlertSink>,
        history: Arc<dyn AlertHistory>,
    ) -> Self {
        AlertEngine {
            inner: Arc::new(Inner {
                recorder,
                sink,
                history,
                state: Mutex::new(EngineState::default()),
                evaluating: tokio::sync::Mutex::new(()),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, EngineState> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a rule; its alert starts `Inactive`.
    ///
    /// Errors: [`OrchestrateError::InvalidInput`] for a rule failing
    /// [`AlertRule::validate`] or with a window longer than the recorder's
    /// [`MetricsRecorder::max_window`]; [`OrchestrateError::AlreadyExists`] for a taken id.
    pub fn add_rule(&self, rule: AlertRule) -> Result<(), OrchestrateError> {
        self.check(&rule)?;
        let mut state = self.lock();
        if state.rules.contains_key(&rule.id) {
            return Err(OrchestrateError::already_exists("alert rule", &rule.id));
        }
        state.rules.insert(rule.id.clone(), RuleEntry::new(rule));
        Ok(())
    }

    /// The rule is valid and its window within the recorder's.
    fn check(&self, rule: &AlertRule) -> Result<(), OrchestrateError> {
        rule.validate()?;
        if let Some(w) = rule.condition.window() {
            crate::metrics::validate_window("alert window", w, self.inner.recorder.max_window())?;
        }
        Ok(())
    }

    /// Removes a rule and returns it.
    ///
    /// Behavior: events it already emitted are still delivered and recorded; a firing alert
    /// is dropped without a resolved event. Errors: [`OrchestrateError::NotFound`].
    pub fn remove_rule(&self, id: &str) -> Result<AlertRule, OrchestrateError> {
        self.lock()
            .rules
            .remove(id)
            .map(|e| e.rule)
            .ok_or_else(|| OrchestrateError::not_found("alert rule", id))
    }

    /// Adds `rule`, or replaces the rule with its id. A replaced rule's alert keeps its
    /// state: a firing alert whose new condition no longer holds resolves (with its event) at
    /// the next evaluation, one that still holds keeps firing. Errors as for
    /// [`add_rule`](Self::add_rule), without `AlreadyExists`. Returns whether a rule was
    /// replaced.
    pub fn set_rule(&self, rule: AlertRule) -> Result<bool, OrchestrateError> {
        self.check(&rule)?;
        let mut state = self.lock();
        if let Some(entry) = state.rules.get_mut(&rule.id) {
            entry.rule = rule;
            return Ok(true);
        }
        state.rules.insert(rule.id.clone(), RuleEntry::new(rule));
        Ok(false)
    }

    /// The rules, by id.
    pub fn rules(&self) -> Vec<AlertRule> {
        self.lock().rules.values().map(|e| e.rule.clone()).collect()
    }

    /// Every rule's alert state, by rule id.
    pub fn statuses(&self) -> Vec<AlertStatus> {
        self.lock()
            .rules
            .values()
            .map(|e| AlertStatus {
                rule_id: e.rule.id.clone(),
                state: e.state,
                since: e.since,
                value: e.value,
            })
            .collect()
    }

    /// One rule's alert state.
    pub fn status(&self, rule_id: &str) -> Option<AlertStatus> {
        self.statuses().into_iter().find(|s| s.rule_id == rule_id)
    }

    /// Feeds an instance's current health status (from the registry).
    pub fn set_instance_status(
        &self,
        service: &ServiceName,
        instance: &InstanceId,
        status: HealthStatus,
    ) {
        self.lock().statuses.insert(key(service, instance), status);
    }

    /// Feeds whether an instance's circuit breaker is open (half-open counts as not open).
    pub fn set_breaker_open(&self, service: &ServiceName, instance: &InstanceId, open: bool) {
        let mut state = self.lock();
        if open {
            state.open_breakers.insert(key(service, instance));
        } else {
            state.open_breakers.remove(&key(service, instance));
        }
    }

    /// Feeds the latest workflow workload ([`WorkflowStore::stats`](crate::workflow::WorkflowStore::stats))
    /// for [`Condition::WorkflowBacklogAbove`] rules; call it as often as the stats are
    /// read (a worker with metrics does every few seconds; the host decides).
    pub fn set_workflow_stats(&self, stats: &WorkflowStats) {
        self.lock().workflow = Some(stats.clone());
    }

    /// Forgets what was fed about an instance (call it when it is deregistered).
    pub fn forget_instance(&self, service: &ServiceName, instance: &InstanceId) {
        let mut state = self.lock();
        let k = key(service, instance);
        state.statuses.remove(&k);
        state.open_breakers.remove(&k);
    }

    /// Events waiting for delivery or recording.
    pub fn queued_events(&self) -> usize {
        self.lock().outbox.len()
    }

    /// Events dropped because more than [`MAX_QUEUED_EVENTS`] were waiting.
    pub fn dropped_events(&self) -> u64 {
        self.lock().dropped_events
    }

    /// Evaluates every rule at `now`, then works through the event queue (see the type's
    /// documentation for the guarantee).
    ///
    /// Behavior: never fails; sink and history failures are counted in the report, logged,
    /// and retried at the next evaluation. Concurrent calls run one after the other.
    pub async fn evaluate(&self, now: DateTime<Utc>) -> EvaluationReport {
        let _serial = self.inner.evaluating.lock().await;
        let now = truncate_to_micros(now);
        let mut report = EvaluationReport::default();
        let work: Vec<Outgoing> = {
            let mut guard = self.lock();
            let state = &mut *guard;
            let mut new_events = Vec::new();
            for entry in state.rules.values_mut() {
                report.rules += 1;
                let (breached, value, summary) = check(
                    &entry.rule.condition,
                    &self.inner.recorder,
                    &state.statuses,
                    &state.open_breakers,
                    state.workflow.as_ref(),
                    now,
                );
                entry.value = value;
                if let Some(event) = transition(entry, breached, value, summary, now) {
                    match event.state {
                        AlertEventState::Firing => report.fired += 1,
                        AlertEventState::Resolved => report.resolved += 1,
                    }
                    new_events.push(event);
                }
            }
            for event in new_events {
                if state.outbox.len() >= MAX_QUEUED_EVENTS {
                    if let Some(old) = state.outbox.pop_front() {
                        tracing::warn!(event = %old.event.id, rule = %old.event.rule_id,
                            "alert event queue full: dropping the oldest event");
                    }
                    state.dropped_events += 1;
                }
                state.outbox.push_back(Outgoing {
                    event,
                    persisted: false,
                    delivered_at: None,
                    attempts: 0,
                    recorded: false,
                });
            }
            state.outbox.iter().cloned().collect()
        };

        let mut blocked: HashSet<String> = HashSet::new();
        for mut out in work {
            if !out.persisted {
                match self.inner.history.append(&out.event).await {
                    Ok(()) | Err(OrchestrateError::AlreadyExists { .. }) => out.persisted = true,
                    Err(e) => {
                        report.history_failures += 1;
                        tracing::warn!(event = %out.event.id, error = %e,
                            "recording an alert event failed; retrying at the next evaluation");
                    }
                }
                self.update(&out);
            }
            if out.delivered_at.is_none() && !blocked.contains(&out.event.rule_id) {
                out.attempts = out.attempts.saturating_add(1);
                match self.inner.sink.deliver(&out.event).await {
                    Ok(()) => {
                        out.delivered_at = Some(now);
                        report.delivered += 1;
                    }
                    Err(e) => {
                        report.delivery_failures += 1;
                        tracing::warn!(event = %out.event.id, attempts = out.attempts, error = %e,
                            "alert sink failed; offering the event again at the next evaluation");
                    }
                }
                self.update(&out);
            }
            if out.delivered_at.is_none() {
                // Keep each rule's events in order: later ones wait for this one.
                blocked.insert(out.event.rule_id.clone());
            }
            if let (Some(at), true, false) = (out.delivered_at, out.persisted, out.recorded) {
                match self
                    .inner
                    .history
                    .mark_delivered(out.event.id, at, out.attempts)
                    .await
                {
                    Ok(()) => out.recorded = true,
                    Err(e) => {
                        report.history_failures += 1;
                        tracing::warn!(event = %out.event.id, error = %e,
                            "recording an alert delivery failed; retrying at the next evaluation");
                    }
                }
                self.update(&out);
            }
        }
        let mut state = self.lock();
        state.outbox.retain(|o| !o.done());
        report.queued = state.outbox.len();
        report
    }

    /// Writes an entry's progress back to the queue at once, so a cancelled evaluation never
    /// forgets that the sink accepted an event.
    fn update(&self, out: &Outgoing) {
        let mut state = self.lock();
        if let Some(slot) = state.outbox.iter_mut().find(|o| o.event.id == out.event.id) {
            *slot = out.clone();
        }
    }

    /// Evaluates every `interval` on a Tokio task (first evaluation at once), at the
    /// recorder's clock's time. The task stops when the returned [`AlertLoop`] is dropped or
    /// stopped, or when every clone of the engine is dropped.
    ///
    /// Errors: [`OrchestrateError::InvalidInput`] for a zero interval or when called outside
    /// a Tokio runtime.
    pub fn spawn(&self, interval: Duration) -> Result<AlertLoop, OrchestrateError> {
        if interval.is_zero() {
            return Err(OrchestrateError::invalid(
                "alert evaluation interval",
                "must be positive",
            ));
        }
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            OrchestrateError::invalid(
                "alert evaluation loop",
                "spawn must be called inside a Tokio runtime",
            )
        })?;
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let task = handle.spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let engine = AlertEngine { inner };
                let now = engine.inner.recorder.clock().now();
                engine.evaluate(now).await;
            }
        });
        Ok(AlertLoop { task: Some(task) })
    }
}

/// A running evaluation loop ([`AlertEngine::spawn`]); dropping it stops the loop.
#[derive(Debug)]
pub struct AlertLoop {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl AlertLoop {
    /// Stops the loop and waits until it has stopped (an evaluation in progress is
    /// cancelled at its next await point).
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for AlertLoop {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

fn transition(
    entry: &mut RuleEntry,
    breached: bool,
    value: f64,
    summary: String,
    now: DateTime<Utc>,
) -> Option<AlertEvent> {
    let for_duration = TimeDelta::from_std(entry.rule.for_duration).unwrap_or(TimeDelta::MAX);
    let mut fire = false;
    match (entry.state, breached) {
        (AlertState::Inactive | AlertState::Resolved, true) => {
            if for_duration.is_zero() {
                fire = true;
            } else {
                entry.state = AlertState::Pending;
                entry.since = Some(now);
            }
        }
        (AlertState::Pending, true) => {
            let since = entry.since.unwrap_or(now);
            if now - since >= for_duration {
                fire = true;
            }
        }
        (AlertState::Pending, false) => {
            entry.state = AlertState::Inactive;
            entry.since = Some(now);
        }
        (AlertState::Firing, false) => {
            entry.state = AlertState::Resolved;
            entry.since = Some(now);
            let firing_id = entry.firing_id.take();
            return Some(event(
                entry,
                AlertEventState::Resolved,
                value,
                summary,
                now,
                firing_id,
            ));
        }
        (AlertState::Firing, true) => {}
        (AlertState::Inactive | AlertState::Resolved, false) => {
            entry.since.get_or_insert(now);
        }
    }
    if fire {
        entry.state = AlertState::Firing;
        entry.since = Some(now);
        let e = event(entry, AlertEventState::Firing, value, summary, now, None);
        entry.firing_id = Some(e.id);
        return Some(e);
    }
    None
}

fn event(
    entry: &RuleEntry,
    state: AlertEventState,
    value: f64,
    summary: String,
    now: DateTime<Utc>,
    firing_id: Option<Uuid>,
) -> AlertEvent {
    let mut e = AlertEvent::new(&entry.rule, state, value, summary, now);
    e.firing_id = firing_id;
    e
}

fn stats(
    recorder: &MetricsRecorder,
    service: &ServiceName,
    instance: Option<&InstanceId>,
    window: Duration,
    now: DateTime<Utc>,
) -> Option<WindowStats> {
    match recorder.stats_at(service, instance, window, now) {
        Ok(s) => Some(s),
        Err(e) => {
            // Windows are validated when rules are added; this is unreachable in practice.
            tracing::warn!(error = %e, "alert rule window rejected by the recorder");
            None
        }
    }
}

/// Whether `condition` holds at `now`, the value observed, and a one-line summary.
fn check(
    condition: &Condition,
    recorder: &MetricsRecorder,
    statuses: &HashMap<InstanceKey, HealthStatus>,
    open_breakers: &HashSet<InstanceKey>,
    workflow: Option<&WorkflowStats>,
    now: DateTime<Utc>,
) -> (bool, f64, String) {
    match condition {
        Condition::WorkflowBacklogAbove {
            tenant,
            oldest_ready,
        } => {
            let Some(stats) = workflow else {
                return (false, 0.0, "no workflow stats fed yet".into());
            };
            let worst = stats
                .tenants
                .keys()
                .filter(|t| tenant.is_none_or(|want| want == **t))
                .map(|t| (stats.oldest_ready_age(*t), *t))
                .max();
            let (age, who) = match worst {
                Some((age, who)) => (age, who.to_string()),
                None => (Duration::ZERO, "none".into()),
            };
            let summary = format!(
                "the oldest ready workflow node waited {:.1} s (tenant {who}; limit {:.1} s)",
                age.as_secs_f64(),
                oldest_ready.as_secs_f64()
            );
            (age > *oldest_ready, age.as_secs_f64(), summary)
        }
        Condition::ErrorRateAbove {
            service,
            instance,
            threshold,
            window,
            min_requests,
        } => {
            let Some(s) = stats(recorder, service, instance.as_ref(), *window, now) else {
                return (false, 0.0, String::new());
            };
            let breached = s.count >= *min_requests && s.error_rate > *threshold;
            let summary = format!(
                "error rate {:.4} (threshold {threshold}) over {}s for {}: {} of {} requests failed",
                s.error_rate,
                window.as_secs(),
                target(service, instance.as_ref()),
                s.errors,
                s.count
            );
            (breached, s.error_rate, summary)
        }
        Condition::LatencyAbove {
            service,
            instance,
            quantile,
            threshold,
            window,
        } => {
            let Some(s) = stats(recorder, service, instance.as_ref(), *window, now) else {
                return (false, 0.0, String::new());
            };
            let q = match quantile {
                Quantile::P50 => s.p50,
                Quantile::P95 => s.p95,
                Quantile::P99 => s.p99,
            };
            let value = q.map_or(0.0, |d| d.as_secs_f64());
            let breached = q.is_some_and(|d| d > *threshold);
            let summary = format!(
                "{} latency {value:.6}s (threshold {:.6}s) over {}s for {}",
                quantile.as_str(),
                threshold.as_secs_f64(),
                window.as_secs(),
                target(service, instance.as_ref())
            );
            (breached, value, summary)
        }
        Condition::RequestRateBelow {
            service,
            instance,
            per_second,
            window,
        }
        | Condition::RequestRateAbove {
            service,
            instance,
            per_second,
            window,
        } => {
            let Some(s) = stats(recorder, service, instance.as_ref(), *window, now) else {
                return (false, 0.0, String::new());
            };
            let below = matches!(condition, Condition::RequestRateBelow { .. });
            let breached = if below {
                s.rate_per_sec < *per_second
            } else {
                s.rate_per_sec > *per_second
            };
            let summary = format!(
                "request rate {:.3}/s ({} threshold {per_second}/s) over {}s for {}",
                s.rate_per_sec,
                if below { "lower" } else { "upper" },
                window.as_secs(),
                target(service, instance.as_ref())
            );
            (breached, s.rate_per_sec, summary)
        }
        Condition::InstanceStatus {
            service,
            instance,
            at_least,
        } => {
            let matching = matching_instances(
                statuses
                    .iter()
                    .filter(|(_, st)| **st >= *at_least)
                    .map(|(k, _)| k),
                service,
                instance.as_ref(),
            );
            let summary = format!(
                "{} instance(s) of {} at least {at_least}{}",
                matching.len(),
                target(service, instance.as_ref()),
                list(&matching)
            );
            (!matching.is_empty(), matching.len() as f64, summary)
        }
        Condition::BreakerOpen { service, instance } => {
            let matching = matching_instances(open_breakers.iter(), service, instance.as_ref());
            let summary = format!(
                "{} open circuit breaker(s) on {}{}",
                matching.len(),
                target(service, instance.as_ref()),
                list(&matching)
            );
            (!matching.is_empty(), matching.len() as f64, summary)
        }
    }
}

fn matching_instances<'a>(
    keys: impl Iterator<Item = &'a InstanceKey>,
    service: &ServiceName,
    instance: Option<&InstanceId>,
) -> Vec<&'a str> {
    let mut out: Vec<&str> = keys
        .filter(|(s, i)| s == service.as_str() && instance.is_none_or(|want| i == want.as_str()))
        .map(|(_, i)| i.as_str())
        .collect();
    out.sort_unstable();
    out
}

fn list(instances: &[&str]) -> String {
    let mut s = String::new();
    for (n, i) in instances.iter().take(5).enumerate() {
        let _ = write!(s, "{}{i}", if n == 0 { ": " } else { ", " });
    }
    if instances.len() > 5 {
        let _ = write!(s, ", and {} more", instances.len() - 5);
    }
    s
}
