//! The engine: step handlers registered by name, submission checked against them, and
//! workers that run the steps ([`WorkflowEngine`], [`Worker`]).
//!
//! ```no_run
//! use ate_orchestrate::workflow::{
//!     DagSpec, NodeSpec, RunSpec, SqlWorkflowStore, StepContext, WorkerConfig, WorkflowEngine,
//! };
//! use serde_json::{Value, json};
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! # async fn demo(db: ate_core::Db, admin: ate_core::Principal, tenant: ate_core::TenantId) -> Result<(), ate_orchestrate::OrchestrateError> {
//! let store = Arc::new(SqlWorkflowStore::open(db).await?);
//! let engine = WorkflowEngine::builder(store)
//!     .step("count", |_ctx: StepContext, input: Value| async move {
//!         Ok(json!({"files": input["input"]["files"].as_u64().unwrap_or(0)}))
//!     })?
//!     .build();
//! let worker = engine.start_worker(WorkerConfig::new("host-1"))?;
//! let dag = DagSpec::new().node(NodeSpec::step("count", "count"));
//! let run = engine.submit(&admin, tenant, &RunSpec::new(dag, json!({"files": 3}))).await?;
//! // … later: the host is stopping.
//! worker.shutdown(Duration::from_secs(10)).await;
//! # let _ = run; Ok(()) }
//! ```

mod recorder;
mod step;
mod worker;

pub use step::{StepContext, StepHandler, StepResult};
pub use worker::{ShutdownReport, Worker, WorkerConfig};

use crate::OrchestrateError;
use crate::workflow::dag::StepName;
use crate::workflow::metrics::WorkflowMetrics;
use crate::workflow::run::{RunSpec, ValidRun};
use crate::workflow::schedule::{Schedule, ScheduleSpec};
use crate::workflow::spec::Limits;
use crate::workflow::store::{Submitted, WorkflowStore};
use ate_core::{Principal, TenantId};
use std::collections::HashMap;
use std::sync::Arc;

/// Step handlers and the store they work on. Cheap to clone.
#[derive(Clone)]
pub struct WorkflowEngine {
    store: Arc<dyn WorkflowStore>,
    steps: Arc<HashMap<StepName, Arc<dyn StepHandler>>>,
    limits: Limits,
    metrics: Option<WorkflowMetrics>,
    /// Where this engine's workers send attempts' results: one recorder for all of them,
    /// so their results share transactions ([`recorder::Recorder`]).
    recorder: recorder::Recorder,
}

impl std::fmt::Debug for WorkflowEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut steps: Vec<&str> = self.steps.keys().map(StepName::as_str).collect();
        steps.sort_unstable();
        f.debug_struct("WorkflowEngine")
            .field("store", &self.store)
            .field("steps", &steps)
            .finish_non_exhaustive()
    }
}

/// Builds a [`WorkflowEngine`].
pub struct EngineBuilder {
    store: Arc<dyn WorkflowStore>,
    steps: HashMap<StepName, Arc<dyn StepHandler>>,
    limits: Limits,
    metrics: Option<WorkflowMetrics>,
}

impl std::fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut steps: Vec<&str> = self.steps.keys().map(StepName::as_str).collect();
        steps.sort_unstable();
        f.debug_struct("EngineBuilder")
            .field("steps", &steps)
            .finish_non_exhaustive()
    }
}

impl WorkflowEngine {
    /// An engine over `store`, with no steps yet.
    pub fn builder(store: Arc<dyn WorkflowStore>) -> EngineBuilder {
        EngineBuilder {
            store,
            steps: HashMap::new(),
            limits: Limits::default(),
            metrics: None,
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn WorkflowStore> {
        &self.store
    }

    /// Checks `run` ([`RunSpec::validate`], every step registered here) and submits it
    /// ([`WorkflowStore::submit`]).
    pub async fn submit(
        &self,
        actor: &Principal,
        tenant: TenantId,
        run: &RunSpec,
    ) -> Result<Submitted, OrchestrateError> {
        let valid = self.validate(run)?;
        self.store.submit(actor, tenant, &valid).await
    }

    /// Checks `schedule` ([`ScheduleSpec::validate`], its steps registered here) and
    /// creates it ([`WorkflowStore::create_schedule`]).
    pub async fn create_schedule(
        &self,
        actor: &Principal,
        tenant: TenantId,
        schedule: &ScheduleSpec,
    ) -> Result<Schedule, OrchestrateError> {
        let valid = schedule.validate(&self.limits, &|step| self.steps.contains_key(step))?;
        self.store.create_schedule(actor, tenant, &valid).await
    }

    /// Checks `run` against this engine's limits and steps.
    pub(crate) fn validate(&self, run: &RunSpec) -> Result<ValidRun, OrchestrateError> {
        run.validate(&self.limits, &|step| self.steps.contains_key(step))
    }

    /// Checks every run of `runs` as [`submit`](Self::submit) does and submits them in one
    /// transaction ([`WorkflowStore::submit_many`]): all or nothing.
    pub async fn submit_many(
        &self,
        actor: &Principal,
        tenant: TenantId,
        runs: &[RunSpec],
    ) -> Result<Vec<Submitted>, OrchestrateError> {
        let valid = runs
            .iter()
            .map(|run| self.validate(run))
            .collect::<Result<Vec<_>, _>>()?;
        self.store.submit_many(actor, tenant, &valid).await
    }

    pub(crate) fn handler(&self, step: &StepName) -> Option<Arc<dyn StepHandler>> {
        self.steps.get(step).cloned()
    }
}

impl EngineBuilder {
    /// Registers `handler` as step `name`. `InvalidInput` for a name that breaks the name
    /// rules or is registered already.
    pub fn step(mut self, name: &str, handler: impl StepHandler) -> Result<Self, OrchestrateError> {
        let name = StepName::new(name)?;
        if self.steps.contains_key(&name) {
            return Err(OrchestrateError::invalid(
                "step name",
                format!("{name} is registered already"),
            ));
        }
        self.steps.insert(name, Arc::new(handler));
        Ok(self)
    }

    /// Sets the [`Limits`] submissions are held to.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Has the workers count attempts and maintenance into `metrics`, and refresh its
    /// database gauges (register `metrics` in the host's registry).
    pub fn metrics(mut self, metrics: WorkflowMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The engine.
    pub fn build(self) -> WorkflowEngine {
        WorkflowEngine {
            store: self.store,
            steps: Arc::new(self.steps),
            limits: self.limits,
            metrics: self.metrics,
            recorder: recorder::Recorder::default(),
        }
    }
}
