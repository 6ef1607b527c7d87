//! The recorder of an engine's workers: one task that records attempts' results and answers
//! the workers' requests for work together, in batches, as a database's group commit does.
//!
//! It takes every job waiting (results and requests from all the engine's workers) and
//! hands them to [`WorkflowStore::record_and_claim`] at once (one transaction on a SQL
//! store) while the next ones gather; a job that finds it idle is done at once, alone. A
//! worker asks for work as soon as a handler returns, while that handler's result is on its
//! way here, so under load one transaction records the results and claims the next nodes,
//! including those the results have just made ready.

use crate::OrchestrateError;
use crate::workflow::WorkflowStore;
use crate::workflow::state::{NodeError, RunStatus};
use crate::workflow::store::{Claim, ClaimRequest, Lease};
use serde_json::Value;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{mpsc, oneshot};

/// Where an answer goes.
type Reply<T> = oneshot::Sender<Result<T, OrchestrateError>>;

/// What the recorder is sent.
pub(super) enum Job {
    /// An attempt's result, and where its outcome goes.
    Record(Lease, Result<Value, NodeError>, Reply<RunStatus>),
    /// A worker's request for work, and where its claims go.
    Claim(ClaimRequest, Reply<Vec<Claim>>),
}

/// Most jobs one batch takes.
const MAX_BATCH: usize = 256;

/// The recorder of an engine: shared by its workers, so two workers' results and requests
/// share a transaction too. Started by the first worker, on its runtime; started again
/// should that runtime go.
#[derive(Clone, Default)]
pub(super) struct Recorder(Arc<Mutex<Option<mpsc::UnboundedSender<Job>>>>);

impl Recorder {
    /// Where to send jobs (starting the task if it is not running).
    pub(super) fn sender(&self, store: &Arc<dyn WorkflowStore>) -> mpsc::UnboundedSender<Job> {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = slot.as_ref().filter(|s| !s.is_closed()) {
            return sender.clone();
        }
        let (sender, waiting) = mpsc::unbounded_channel();
        tokio::spawn(record(store.clone(), waiting));
        *slot = Some(sender.clone());
        sender
    }
}

/// Sends `job` and waits for its answer; [`stopped`] if the recorder has gone.
pub(super) async fn ask<T>(
    recorder: &mpsc::UnboundedSender<Job>,
    job: impl FnOnce(Reply<T>) -> Job,
) -> Result<T, OrchestrateError> {
    let (reply, answer) = oneshot::channel();
    match recorder.send(job(reply)) {
        Ok(()) => answer.await.unwrap_or_else(|_| Err(stopped())),
        Err(_) => Err(stopped()),
    }
}

/// The error of a job whose recorder stopped before doing it.
pub(super) fn stopped() -> OrchestrateError {
    OrchestrateError::Core(ate_core::CoreError::Unavailable {
        message: "the worker stopped before recording the attempt".into(),
        source: None,
    })
}

/// The recorder's task; ends when its engine (every sender) has gone. Runs up to the
/// store's [`concurrent_batches`](WorkflowStore::concurrent_batches) at once; while they
/// are all running, the next jobs gather.
async fn record(store: Arc<dyn WorkflowStore>, mut waiting: mpsc::UnboundedReceiver<Job>) {
    let most = store.concurrent_batches().max(1);
    let mut running = tokio::task::JoinSet::new();
    loop {
        let mut batch = Vec::new();
        tokio::select! {
            taken = waiting.recv_many(&mut batch, MAX_BATCH), if running.len() < most => {
                if taken == 0 {
                    break;
                }
                running.spawn(run_batch(store.clone(), batch));
            }
            Some(_) = running.join_next(), if !running.is_empty() => {}
        }
    }
    while running.join_next().await.is_some() {}
}

/// Does one batch of jobs: [`WorkflowStore::record_and_claim`], then the answers.
async fn run_batch(store: Arc<dyn WorkflowStore>, batch: Vec<Job>) {
    let mut attempts = Vec::new();
    let mut recorded_to = Vec::new();
    let mut requests = Vec::new();
    let mut claimed_to = Vec::new();
    for job in batch {
        match job {
            Job::Record(lease, result, reply) => {
                attempts.push((lease, result));
                recorded_to.push(reply);
            }
            Job::Claim(request, reply) => {
                requests.push(request);
                claimed_to.push(reply);
            }
        }
    }
    let (recorded, claimed) = match store.record_and_claim(&attempts, &requests).await {
        Ok(done) => (done.recorded, done.claimed),
        Err(e) => {
            tracing::warn!(error = %e, attempts = attempts.len(), "recording a batch of attempts failed; recording them apart");
            apart(store.as_ref(), attempts, &requests).await
        }
    };
    // Their attempts or workers may have gone meanwhile.
    for (reply, outcome) in recorded_to.into_iter().zip(recorded) {
        let _ = reply.send(outcome);
    }
    for (reply, claims) in claimed_to.into_iter().zip(claimed) {
        let _ = reply.send(claims);
    }
}

/// What [`record`] does when a batch fails as a whole: the attempts in a batch of their
/// own, then one by one if that fails too (so that one attempt the store refuses does not
/// hold back the others), then each request alone.
async fn apart(
    store: &dyn WorkflowStore,
    attempts: Vec<(Lease, Result<Value, NodeError>)>,
    requests: &[ClaimRequest],
) -> (
    Vec<Result<RunStatus, OrchestrateError>>,
    Vec<Result<Vec<Claim>, OrchestrateError>>,
) {
    let recorded = if attempts.is_empty() {
        Vec::new()
    } else {
        match store.record_many(&attempts).await {
            Ok(done) => done,
            Err(e) => {
                tracing::warn!(error = %e, attempts = attempts.len(), "recording attempts together failed; recording them one by one");
                let mut done = Vec::with_capacity(attempts.len());
                for (lease, result) in attempts {
                    done.push(match result {
                        Ok(output) => store.complete(&lease, output).await,
                        Err(error) => store.fail(&lease, error).await,
                    });
                }
                done
            }
        }
    };
    let mut claimed = Vec::with_capacity(requests.len());
    for r in requests {
        claimed.push(store.claim_steps(&r.worker, &r.steps, r.max, r.lease).await);
    }
    (recorded, claimed)
}
