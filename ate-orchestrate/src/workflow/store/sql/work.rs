//! The worker side of [`SqlWorkflowStore`] after the claim (`claim.rs`): heartbeats,
//! completions and failures, and the maintenance pass that starts delayed runs, takes back
//! expired leases and times runs out. Every change to a run goes through
//! [`RunState`], applied under the run's row lock ([`SqlWorkflowStore::mutate`]).

use super::{Loaded, NodeRow, SqlWorkflowStore, json_size};
use crate::OrchestrateError;
use crate::workflow::state::{NodeError, NodeStatus, RunState, RunStatus};
use crate::workflow::store::{ClaimRequest, Lease, Maintenance, RecordedAndClaimed};
use ate_core::db::to_micros;
use ate_core::{RunId, with_pool};
use chrono::TimeDelta;
use serde_json::Value;
use std::time::Duration;
use uuid::Uuid;

/// Most rows one maintenance step handles; the next pass takes the rest.
const MAINTENANCE_BATCH: i64 = 100;

pub(super) fn to_delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

pub(super) fn lost(lease: &Lease) -> OrchestrateError {
    OrchestrateError::Core(ate_core::CoreError::Conflict(format!(
        "the lease on node {} of run {} (token {}) is no longer held",
        lease.node, lease.run, lease.token
    )))
}

/// The index of the node `lease` is on, if the lease is still held (the node runs under the
/// same fencing token); otherwise `Conflict`.
fn held(loaded: &Loaded, lease: &Lease) -> Result<usize, OrchestrateError> {
    let i = usize::try_from(lease.node).unwrap_or(usize::MAX);
    let holds = loaded.nodes.get(i).is_some_and(|n: &NodeRow| {
        n.lease_token == lease.token && n.status == NodeStatus::Running.as_str()
    });
    if holds { Ok(i) } else { Err(lost(lease)) }
}

/// Records an attempt's result on its run's state: the node succeeds (unless its output is
/// over `max_output` bytes) or fails (and is retried per its policy, with `random` as the
/// backoff's jitter).
fn record(
    loaded: &Loaded,
    state: &mut RunState,
    lease: &Lease,
    result: Result<Value, NodeError>,
    now: chrono::DateTime<chrono::Utc>,
    random: f64,
    max_output: usize,
) -> Result<(RunStatus, Option<ate_core::audit::ValidEvent>), OrchestrateError> {
    let i = held(loaded, lease)?;
    match result {
        Ok(output) => {
            let size = json_size(&output);
            if size > max_output {
                let error = NodeError::permanent(
                    "output_too_large",
                    format!("the output is {size} bytes, over the limit of {max_output}"),
                );
                state.node_failed(&loaded.dag, i, error, now, random)?;
            } else {
                state.node_succeeded(&loaded.dag, i, output, now)?;
            }
        }
        Err(error) => {
            state.node_failed(&loaded.dag, i, error, now, random)?;
        }
    }
    Ok((state.status, None))
}

impl SqlWorkflowStore {
    pub(super) async fn renew(
        &self,
        lease: &Lease,
        extend: Duration,
    ) -> Result<bool, OrchestrateError> {
        let now = self.clock.now();
        let cancel: Option<i32> = with_pool!(self.db, |pool| {
            sqlx::query_scalar(
                "UPDATE wf_nodes SET lease_expires_at = $4 WHERE run_id = $1 AND idx = $2 \
                 AND lease_token = $3 AND status = 'running' RETURNING cancel_requested",
            )
            .bind(lease.run.as_uuid())
            .bind(i32::try_from(lease.node).unwrap_or(i32::MAX))
            .bind(lease.token)
            .bind(to_micros(now + to_delta(extend)))
            .fetch_optional(pool)
            .await?
        });
        cancel.map(|c| c != 0).ok_or_else(|| lost(lease))
    }

    pub(super) async fn finish(
        &self,
        lease: &Lease,
        result: Result<Value, NodeError>,
    ) -> Result<RunStatus, OrchestrateError> {
        let now = self.clock.now();
        let random = fastrand::f64();
        let max_output = self.limits.max_input_bytes;
        self.mutate(lease.run, None, now, move |loaded, state| {
            record(loaded, state, lease, result, now, random, max_output)
        })
        .await
    }

    /// [`finish`](Self::finish) for several attempts, in one transaction; each gets its own
    /// result (a lost lease fails only its attempt). Then, in the same transaction, the
    /// claims `requests` (they see the nodes the results made ready). An error for the
    /// batch means nothing was recorded and nothing claimed; a request that is invalid
    /// gets its own error and takes no part.
    pub(super) async fn finish_many(
        &self,
        attempts: Vec<(Lease, Result<Value, NodeError>)>,
        requests: &[ClaimRequest],
    ) -> Result<RecordedAndClaimed, OrchestrateError> {
        let now = self.clock.now();
        let max_output = self.limits.max_input_bytes;
        let mut asks = Vec::new();
        // Each request's place in `asks`, or its answer without a claim.
        let mut slots: Vec<Result<Option<usize>, OrchestrateError>> = Vec::new();
        for r in requests {
            slots.push(
                self.ask(&r.worker, Some(&r.steps), r.max, r.lease, now)
                    .map(|ask| {
                        ask.map(|ask| {
                            asks.push(ask);
                            asks.len() - 1
                        })
                    }),
            );
        }
        let runs: Vec<RunId> = attempts.iter().map(|(lease, _)| lease.run).collect();
        let changes = attempts
            .into_iter()
            .map(|(lease, result)| {
                let random = fastrand::f64();
                let change = move |loaded: &Loaded, state: &mut RunState| {
                    record(loaded, state, &lease, result, now, random, max_output)
                };
                (lease.run, None, change)
            })
            .collect();
        let (done, mut taken) = self.mutate_batch(changes, now, true, &asks).await?;
        let mut closed = Vec::new();
        let mut recorded = Vec::with_capacity(done.len());
        for (result, run) in done.into_iter().zip(runs) {
            recorded.push(result.map(|(status, ended)| {
                if ended {
                    closed.push(run);
                }
                status
            }));
        }
        if !closed.is_empty() {
            self.close_children(closed, now).await;
        }
        let claimed = slots
            .into_iter()
            .map(|slot| {
                slot.map(|at| {
                    at.and_then(|at| taken.get_mut(at).map(std::mem::take))
                        .unwrap_or_default()
                })
            })
            .collect();
        Ok(RecordedAndClaimed { recorded, claimed })
    }

    pub(super) async fn give_back(&self, lease: &Lease) -> Result<(), OrchestrateError> {
        let now = self.clock.now();
        self.mutate(lease.run, None, now, move |loaded, state| {
            let i = held(loaded, lease)?;
            state.node_released(i, now)?;
            Ok(((), None))
        })
        .await
    }

    pub(super) async fn maintain_runs(&self) -> Result<Maintenance, OrchestrateError> {
        let now = self.clock.now();
        let mut done = Maintenance::default();
        let due: Vec<Uuid> = with_pool!(self.db, |pool| {
            sqlx::query_scalar(
                "SELECT id FROM wf_runs WHERE status = 'pending' AND stopping IS NULL \
                 AND start_at <= $1 ORDER BY start_at LIMIT $2",
            )
            .bind(to_micros(now))
            .bind(MAINTENANCE_BATCH)
            .fetch_all(pool)
            .await?
        });
        for id in due {
            let started = self
                .mutate(RunId::from_uuid(id)?, None, now, |loaded, state| {
                    let was = state.status;
                    state.start(&loaded.dag, now);
                    Ok((was != state.status, None))
                })
                .await?;
            done.started += usize::from(started);
        }
        let expired: Vec<(Uuid, i32, i64)> = with_pool!(self.db, |pool| {
            sqlx::query_as(
                "SELECT run_id, idx, lease_token FROM wf_nodes WHERE status = 'running' \
                 AND lease_expires_at < $1 ORDER BY lease_expires_at LIMIT $2",
            )
            .bind(to_micros(now))
            .bind(MAINTENANCE_BATCH)
            .fetch_all(pool)
            .await?
        });
        for (run, idx, token) in expired {
            let lease = Lease {
                run: RunId::from_uuid(run)?,
                node: u32::try_from(idx).unwrap_or(0),
                token,
            };
            let error = NodeError::retryable("lease_expired", "the worker's lease expired");
            match self.finish(&lease, Err(error)).await {
                Ok(_) => done.expired_leases += 1,
                // Its worker finished or renewed it meanwhile.
                Err(OrchestrateError::Core(ate_core::CoreError::Conflict(_))) => {}
                Err(e) => return Err(e),
            }
        }
        // Run timeouts are capped (`run::MAX_RUN_TIMEOUT`), so the sum cannot overflow.
        let late: Vec<Uuid> = with_pool!(self.db, |pool| {
            sqlx::query_scalar(
                "SELECT id FROM wf_runs WHERE status = 'running' AND stopping IS NULL \
                 AND timeout_ms IS NOT NULL AND start_at + timeout_ms * 1000 <= $1 \
                 ORDER BY start_at LIMIT $2",
            )
            .bind(to_micros(now))
            .bind(MAINTENANCE_BATCH)
            .fetch_all(pool)
            .await?
        });
        for id in late {
            let timed_out = self
                .mutate(RunId::from_uuid(id)?, None, now, |_, state| {
                    Ok((state.timed_out(), None))
                })
                .await?;
            done.timed_out += usize::from(timed_out);
        }
        let waited: Vec<(Uuid, i32)> = with_pool!(self.db, |pool| {
            sqlx::query_as(
                "SELECT run_id, idx FROM wf_nodes WHERE status = 'waiting' \
                 AND wait_until IS NOT NULL AND wait_until <= $1 ORDER BY wait_until LIMIT $2",
            )
            .bind(to_micros(now))
            .bind(MAINTENANCE_BATCH)
            .fetch_all(pool)
            .await?
        });
        for (run, idx) in waited {
            let i = usize::try_from(idx).unwrap_or(usize::MAX);
            let failed = self
                .mutate(RunId::from_uuid(run)?, None, now, move |loaded, state| {
                    let waiting = state
                        .nodes
                        .get(i)
                        .is_some_and(|n| n.status == NodeStatus::Waiting);
                    if waiting {
                        state.signal_timed_out(&loaded.dag, i, now)?;
                    }
                    Ok((waiting, None))
                })
                .await?;
            done.signals_timed_out += usize::from(failed);
        }
        let orphans: Vec<(Uuid, Uuid)> = with_pool!(self.db, |pool| {
            sqlx::query_as(
                "SELECT c.id, p.id FROM wf_runs c JOIN wf_runs p ON p.id = c.parent_run_id \
                 WHERE c.status IN ('pending', 'running') AND c.stopping IS NULL \
                 AND (p.status IN ('succeeded', 'failed', 'cancelled') OR p.stopping IS NOT NULL) \
                 LIMIT $1",
            )
            .bind(MAINTENANCE_BATCH)
            .fetch_all(pool)
            .await?
        });
        for (child, parent) in orphans {
            self.cancel_child(child, RunId::from_uuid(parent)?, now)
                .await?;
            done.children_cancelled += 1;
        }
        done.schedules_fired = self.fire_schedules().await?;
        Ok(done)
    }
}
