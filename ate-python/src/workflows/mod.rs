//! `a.workflows`: the durable workflow engine for Python.
//!
//! Step handlers are Python callables registered by name on the client
//! (`a.workflows.register(name, fn)` or the `@a.workflows.step(name)` decorator); a worker
//! (`a.workflows.start_worker(...)`) runs them on background threads while the calling
//! thread goes on. Runs are submitted, read, awaited, watched, cancelled, signalled and
//! retried as the client's principal, like every other domain. The store is opened on first
//! use (running the engine's migrations).

mod handler;
pub(crate) mod state;
mod worker;

pub(crate) use handler::StepContext;
pub(crate) use worker::{AsyncRunEvents, AsyncWorker, RunEvents, Worker};

use crate::convert::{parse_id, to_json, to_utc};
use crate::core::View;
use crate::error::Error;
use crate::runtime::lock;
use crate::types::workflows::{LogPage, Run, RunPage};
use ate_core::{Cursor, RunId, TenantId};
use ate_orchestrate::workflow::{
    self as wf, DagSpec, Limits, LogLevel, LogQuery, RunQuery, RunSpec, RunStatus,
    SqlWorkflowStore, WorkflowStore,
};
use handler::{PyStep, SharedStep};
use pyo3::prelude::*;
use pyo3::types::PyDateTime;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

impl View {
    async fn workflow_store(&self) -> Result<Arc<SqlWorkflowStore>, Error> {
        let db = self.core.db.clone();
        let store = self
            .core
            .workflows
            .store
            .get_or_try_init(|| async move { SqlWorkflowStore::open(db).await.map(Arc::new) })
            .await?;
        Ok(store.clone())
    }

    /// An engine with every step registered so far.
    async fn workflow_engine(&self) -> Result<wf::WorkflowEngine, Error> {
        let store = self.workflow_store().await?;
        let steps: Vec<(String, Arc<PyStep>)> = lock(&self.core.workflows.steps)
            .iter()
            .map(|(name, step)| (name.clone(), step.clone()))
            .collect();
        let mut builder = wf::WorkflowEngine::builder(store);
        for (name, step) in steps {
            builder = builder.step(&name, SharedStep(step))?;
        }
        Ok(builder.build())
    }

    async fn submit_run(self, tenant: TenantId, spec: RunSpec) -> Result<Run, Error> {
        let engine = self.workflow_engine().await?;
        Ok(engine.submit(&self.actor, tenant, &spec).await?.run.into())
    }

    async fn get_run(self, tenant: TenantId, id: RunId) -> Result<Run, Error> {
        let store = self.workflow_store().await?;
        Ok(store.get(&self.actor, tenant, id).await?.into())
    }

    async fn list_runs(self, tenant: TenantId, query: RunQuery) -> Result<RunPage, Error> {
        let store = self.workflow_store().await?;
        Ok(store.list(&self.actor, tenant, &query).await?.into())
    }

    async fn wait_run(
        self,
        tenant: TenantId,
        id: RunId,
        timeout: Option<Duration>,
    ) -> Result<Run, Error> {
        let store = self.workflow_store().await?;
        let waiting = async {
            let mut watch = store.watch(&self.actor, tenant, Some(id)).await?;
            loop {
                let run = store.get(&self.actor, tenant, id).await?;
                if run.status.is_finished() {
                    return Ok::<_, Error>(run);
                }
                // An event, or a look every second (a missed notification costs a second).
                let _ = tokio::time::timeout(Duration::from_secs(1), watch.next()).await;
            }
        };
        match timeout {
            None => Ok(waiting.await?.into()),
            Some(limit) => match tokio::time::timeout(limit, waiting).await {
                Ok(run) => Ok(run?.into()),
                Err(_) => Err(Error::python(pyo3::exceptions::PyTimeoutError::new_err(
                    format!("run {id} did not finish within {} s", limit.as_secs_f64()),
                ))),
            },
        }
    }

    async fn run_logs(
        self,
        tenant: TenantId,
        id: RunId,
        query: LogQuery,
    ) -> Result<LogPage, Error> {
        let store = self.workflow_store().await?;
        Ok(store.logs(&self.actor, tenant, id, &query).await?.into())
    }

    async fn cancel_run(self, tenant: TenantId, id: RunId) -> Result<Run, Error> {
        let store = self.workflow_store().await?;
        Ok(store.cancel(&self.actor, tenant, id).await?.into())
    }

    async fn retry_run(self, tenant: TenantId, id: RunId) -> Result<Run, Error> {
        let store = self.workflow_store().await?;
        Ok(store.retry(&self.actor, tenant, id).await?.into())
    }

    async fn signal_run(
        self,
        tenant: TenantId,
        id: RunId,
        name: String,
        payload: serde_json::Value,
    ) -> Result<Run, Error> {
        let store = self.workflow_store().await?;
        Ok(store
            .signal(&self.actor, tenant, id, &name, payload)
            .await?
            .into())
    }

    async fn watch_runs(self, tenant: TenantId, run: Option<RunId>) -> Result<wf::RunWatch, Error> {
        let store = self.workflow_store().await?;
        Ok(store.watch(&self.actor, tenant, run).await?)
    }

    async fn start_workflow_worker(self, config: wf::WorkerConfig) -> Result<wf::Worker, Error> {
        let engine = self.workflow_engine().await?;
        if lock(&self.core.workflows.steps).is_empty() {
            return Err(Error::invalid(
                "no step handlers are registered: register them before starting a worker",
            ));
        }
        Ok(engine.start_worker(config)?)
    }

    fn register_step(&self, name: &str, handler: &Bound<'_, PyAny>) -> Result<(), Error> {
        wf::StepName::new(name)?;
        let step = PyStep::new(handler)?;
        let mut steps = lock(&self.core.workflows.steps);
        if steps.contains_key(name) {
            return Err(Error::invalid(format!(
                "step name: {name} is registered already"
            )));
        }
        steps.insert(name.to_owned(), Arc::new(step));
        Ok(())
    }
}

/// Builds a run from `submit`'s arguments.
#[allow(clippy::too_many_arguments)]
fn run_spec(
    dag: &Bound<'_, PyAny>,
    input: Option<&Bound<'_, PyAny>>,
    idempotency_key: Option<String>,
    priority: i32,
    labels: Option<BTreeMap<String, String>>,
    start_at: Option<&Bound<'_, PyDateTime>>,
    timeout: Option<f64>,
) -> Result<RunSpec, Error> {
    let dag = to_json(dag, "dag")?;
    let dag = DagSpec::from_json(dag.to_string().as_bytes(), &Limits::default())?;
    let input = input
        .map(|i| to_json(i, "input"))
        .transpose()?
        .unwrap_or(serde_json::Value::Null);
    let mut spec = RunSpec::new(dag, input).priority(priority);
    if let Some(key) = idempotency_key {
        spec = spec.idempotency_key(key);
    }
    for (k, v) in labels.unwrap_or_default() {
        spec = spec.label(k, v);
    }
    if let Some(at) = start_at {
        spec = spec.start_at(to_utc(at, "start_at")?);
    }
    if let Some(t) = timeout {
        spec = spec.timeout(crate::convert::seconds(t, "timeout")?);
    }
    Ok(spec)
}

fn log_query(
    node: Option<String>,
    min_level: Option<&str>,
    limit: Option<u32>,
    cursor: Option<String>,
) -> Result<LogQuery, Error> {
    let mut q = LogQuery::new();
    if let Some(n) = node {
        q = q.node(n);
    }
    if let Some(l) = min_level {
        q = q.min_level(LogLevel::parse(l)?);
    }
    if let Some(l) = limit {
        q = q.limit(l);
    }
    if let Some(c) = cursor {
        q = q.cursor(Cursor::from_string(c));
    }
    Ok(q)
}

fn run_query(
    status: Option<&str>,
    label: Option<(String, String)>,
    limit: Option<u32>,
    cursor: Option<String>,
) -> Result<RunQuery, Error> {
    let mut q = RunQuery::new();
    if let Some(s) = status {
        q = q.status(RunStatus::parse(s)?);
    }
    if let Some((k, v)) = label {
        q = q.label(k, v);
    }
    if let Some(l) = limit {
        q = q.limit(l);
    }
    if let Some(c) = cursor {
        q = q.cursor(Cursor::from_string(c));
    }
    Ok(q)
}

fn worker_config(
    worker_id: &str,
    concurrency: usize,
    lease: f64,
    poll_interval: f64,
) -> Result<wf::WorkerConfig, Error> {
    Ok(wf::WorkerConfig::new(worker_id)
        .concurrency(concurrency)
        .lease(crate::convert::seconds(lease, "lease")?)
        .poll_interval(crate::convert::seconds(poll_interval, "poll_interval")?))
}

/// `@a.workflows.step("name")`: registers the decorated function and returns it unchanged.
#[pyclass(module = "ate.workflows", frozen)]
pub(crate) struct StepDecorator {
    view: View,
    name: String,
}

#[pymethods]
impl StepDecorator {
    fn __call__<'py>(&self, handler: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        self.view.register_step(&self.name, &handler)?;
        Ok(handler)
    }
}

/// Defines the workflows API class for one mode (`sync` or `async`).
macro_rules! workflows_class {
    ($mode:ident, $name:ident, $py_name:literal, $worker:ident, $events:ident) => {
        /// The durable workflow engine (`a.workflows`).
        #[pyclass(module = "ate.workflows", frozen, name = $py_name)]
        pub(crate) struct $name {
            pub(crate) view: View,
        }

        #[pymethods]
        impl $name {
            /// Registers `handler` (`handler(ctx, input)`, plain or `async def`) as step
            /// `name` on this client. `InvalidInputError` for a bad or taken name.
            fn register(&self, name: &str, handler: &Bound<'_, PyAny>) -> PyResult<()> {
                Ok(self.view.register_step(name, handler)?)
            }

            /// A decorator registering the function as step `name`.
            fn step(&self, name: &str) -> PyResult<StepDecorator> {
                wf::StepName::new(name).map_err(Error::from)?;
                Ok(StepDecorator {
                    view: self.view.clone(),
                    name: name.to_owned(),
                })
            }

            /// The names of the registered steps.
            fn steps(&self) -> Vec<String> {
                lock(&self.view.core.workflows.steps).keys().cloned().collect()
            }

            #[pyo3(signature = (tenant, dag, input = None, *, idempotency_key = None, priority = 0, labels = None, start_at = None, timeout = None))]
            #[allow(clippy::too_many_arguments)]
            fn submit(
                &self,
                py: Python<'_>,
                tenant: &str,
                dag: &Bound<'_, PyAny>,
                input: Option<&Bound<'_, PyAny>>,
                idempotency_key: Option<String>,
                priority: i32,
                labels: Option<BTreeMap<String, String>>,
                start_at: Option<&Bound<'_, PyDateTime>>,
                timeout: Option<f64>,
            ) -> PyResult<Py<PyAny>> {
                let tenant = parse_id(tenant)?;
                let spec = run_spec(dag, input, idempotency_key, priority, labels, start_at, timeout)?;
                Ok(dispatch!($mode, py, self.view.clone().submit_run(tenant, spec)))
            }

            fn get(&self, py: Python<'_>, tenant: &str, run_id: &str) -> PyResult<Py<PyAny>> {
                let (tenant, id) = (parse_id(tenant)?, parse_id(run_id)?);
                Ok(dispatch!($mode, py, self.view.clone().get_run(tenant, id)))
            }

            #[pyo3(signature = (tenant, *, status = None, label = None, limit = None, cursor = None))]
            fn list(
                &self,
                py: Python<'_>,
                tenant: &str,
                status: Option<&str>,
                label: Option<(String, String)>,
                limit: Option<u32>,
                cursor: Option<String>,
            ) -> PyResult<Py<PyAny>> {
                let tenant = parse_id(tenant)?;
                let query = run_query(status, label, limit, cursor)?;
                Ok(dispatch!($mode, py, self.view.clone().list_runs(tenant, query)))
            }

            #[pyo3(signature = (tenant, run_id, *, timeout = None))]
            fn wait(
                &self,
                py: Python<'_>,
                tenant: &str,
                run_id: &str,
                timeout: Option<f64>,
            ) -> PyResult<Py<PyAny>> {
                let (tenant, id) = (parse_id(tenant)?, parse_id(run_id)?);
                let timeout = timeout
                    .map(|t| crate::convert::seconds(t, "timeout"))
                    .transpose()?;
                Ok(dispatch!($mode, py, self.view.clone().wait_run(tenant, id, timeout)))
            }

            #[pyo3(signature = (tenant, run_id = None))]
            fn watch(
                &self,
                py: Python<'_>,
                tenant: &str,
                run_id: Option<&str>,
            ) -> PyResult<Py<PyAny>> {
                let tenant = parse_id(tenant)?;
                let run = run_id.map(parse_id).transpose()?;
                let view = self.view.clone();
                Ok(dispatch!($mode, py, async move {
                    Ok::<_, Error>($events::new(view.watch_runs(tenant, run).await?))
                }))
            }

            #[pyo3(signature = (tenant, run_id, *, node = None, min_level = None, limit = None, cursor = None))]
            #[allow(clippy::too_many_arguments)]
            fn logs(
                &self,
                py: Python<'_>,
                tenant: &str,
                run_id: &str,
                node: Option<String>,
                min_level: Option<&str>,
                limit: Option<u32>,
                cursor: Option<String>,
            ) -> PyResult<Py<PyAny>> {
                let (tenant, id) = (parse_id(tenant)?, parse_id(run_id)?);
                let query = log_query(node, min_level, limit, cursor)?;
                Ok(dispatch!($mode, py, self.view.clone().run_logs(tenant, id, query)))
            }

            fn cancel(&self, py: Python<'_>, tenant: &str, run_id: &str) -> PyResult<Py<PyAny>> {
                let (tenant, id) = (parse_id(tenant)?, parse_id(run_id)?);
                Ok(dispatch!($mode, py, self.view.clone().cancel_run(tenant, id)))
            }

            fn retry(&self, py: Python<'_>, tenant: &str, run_id: &str) -> PyResult<Py<PyAny>> {
                let (tenant, id) = (parse_id(tenant)?, parse_id(run_id)?);
                Ok(dispatch!($mode, py, self.view.clone().retry_run(tenant, id)))
            }

            #[pyo3(signature = (tenant, run_id, name, payload = None))]
            fn signal(
                &self,
                py: Python<'_>,
                tenant: &str,
                run_id: &str,
                name: String,
                payload: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<Py<PyAny>> {
                let (tenant, id) = (parse_id(tenant)?, parse_id(run_id)?);
                let payload = payload
                    .map(|p| to_json(p, "payload"))
                    .transpose()?
                    .unwrap_or(serde_json::Value::Null);
                Ok(dispatch!($mode, py, self.view.clone().signal_run(tenant, id, name, payload)))
            }

            /// Starts a worker running the registered steps on background threads (the
            /// GIL is held only while a handler's Python runs). Stop it with `shutdown`
            /// (or a `with` block).
            #[pyo3(signature = (worker_id = "python", *, concurrency = 4, lease = 30.0, poll_interval = 1.0))]
            fn start_worker(
                &self,
                py: Python<'_>,
                worker_id: &str,
                concurrency: usize,
                lease: f64,
                poll_interval: f64,
            ) -> PyResult<Py<PyAny>> {
                let config = worker_config(worker_id, concurrency, lease, poll_interval)?;
                let view = self.view.clone();
                Ok(dispatch!($mode, py, async move {
                    Ok::<_, Error>($worker::new(view.start_workflow_worker(config).await?))
                }))
            }

            fn __repr__(&self) -> String {
                let steps = lock(&self.view.core.workflows.steps).len();
                format!(concat!($py_name, "(steps={})"), steps)
            }
        }
    };
}

workflows_class!(sync, Workflows, "Workflows", Worker, RunEvents);
workflows_class!(
    async,
    AsyncWorkflows,
    "AsyncWorkflows",
    AsyncWorker,
    AsyncRunEvents
);
