//! [`WorkflowStore::stats`](crate::workflow::WorkflowStore::stats) on SQL: three grouped
//! reads (runs by status, due nodes, running nodes) per call.

use super::{SqlWorkflowStore, corrupt};
use crate::OrchestrateError;
use crate::workflow::state::RunStatus;
use crate::workflow::store::{TenantWorkload, WorkflowStats};
use ate_core::db::{from_micros, to_micros};
use ate_core::{TenantId, with_pool};
use uuid::Uuid;

impl SqlWorkflowStore {
    pub(super) async fn read_stats(&self) -> Result<WorkflowStats, OrchestrateError> {
        let now = self.clock.now();
        let runs: Vec<(Uuid, String, i64)> = with_pool!(self.db, |pool| {
            sqlx::query_as(
                "SELECT tenant_id, status, COUNT(*) FROM wf_runs GROUP BY tenant_id, status",
            )
            .fetch_all(pool)
            .await?
        });
        let ready: Vec<(Uuid, i64, Option<i64>)> = with_pool!(self.db, |pool| {
            sqlx::query_as(
                "SELECT n.tenant_id, COUNT(*), MIN(n.ready_at) FROM wf_nodes n \
                 JOIN wf_runs r ON r.id = n.run_id \
                 WHERE n.status = 'ready' AND n.ready_at <= $1 AND r.status = 'running' \
                 AND r.stopping IS NULL GROUP BY n.tenant_id",
            )
            .bind(to_micros(now))
            .fetch_all(pool)
            .await?
        });
        let running: Vec<(Uuid, i64)> = with_pool!(self.db, |pool| {
            sqlx::query_as(
                "SELECT tenant_id, COUNT(*) FROM wf_nodes WHERE status = 'running' \
                 GROUP BY tenant_id",
            )
            .fetch_all(pool)
            .await?
        });
        let mut stats = WorkflowStats {
            at: now,
            tenants: Default::default(),
        };
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        for (tenant, status, n) in runs {
            let status = RunStatus::parse(&status).map_err(|e| corrupt("status", e))?;
            workload(&mut stats, tenant)?.runs.insert(status, count(n));
        }
        for (tenant, n, oldest) in ready {
            let w = workload(&mut stats, tenant)?;
            w.ready_nodes = count(n);
            w.oldest_ready_at = oldest.map(from_micros).transpose()?;
        }
        for (tenant, n) in running {
            workload(&mut stats, tenant)?.running_nodes = count(n);
        }
        Ok(stats)
    }
}

fn workload(
    stats: &mut WorkflowStats,
    tenant: Uuid,
) -> Result<&mut TenantWorkload, OrchestrateError> {
    Ok(stats
        .tenants
        .entry(TenantId::from_uuid(tenant)?)
        .or_default())
}
