//! Per-run logs in `wf_logs`.

use super::{SqlWorkflowStore, corrupt};
use crate::OrchestrateError;
use crate::workflow::dag::NodeId;
use crate::workflow::store::logs::{LogEntry, LogLevel, LogQuery};
use crate::workflow::store::{Lease, WORKFLOWS_READ};
use ate_core::db::{from_micros, to_micros};
use ate_core::{Cursor, Page, Principal, RunId, TenantId, with_pool, with_write_tx};
use uuid::Uuid;

/// Most entries one append takes.
pub const MAX_LOG_BATCH: usize = 1_000;
const CURSOR_KIND: &str = "workflow_logs";

#[derive(sqlx::FromRow)]
struct LogRow {
    id: Uuid,
    node_id: String,
    attempt: i32,
    level: i32,
    message: String,
    fields: String,
    at: i64,
}

impl LogRow {
    fn entry(self) -> Result<LogEntry, OrchestrateError> {
        let level = match self.level {
            0 => LogLevel::Debug,
            1 => LogLevel::Info,
            2 => LogLevel::Warn,
            3 => LogLevel::Error,
            other => return Err(corrupt("log level", other)),
        };
        Ok(LogEntry {
            at: from_micros(self.at)?,
            level,
            node: NodeId::new(self.node_id).map_err(|e| corrupt("log node", e))?,
            attempt: u32::try_from(self.attempt).unwrap_or(0),
            message: self.message,
            fields: serde_json::from_str(&self.fields).map_err(|e| corrupt("log fields", e))?,
        })
    }
}

impl SqlWorkflowStore {
    pub(super) async fn append_log_entries(
        &self,
        lease: &Lease,
        entries: &[LogEntry],
    ) -> Result<(), OrchestrateError> {
        if entries.is_empty() {
            return Ok(());
        }
        if entries.len() > MAX_LOG_BATCH {
            return Err(OrchestrateError::invalid(
                "log entries",
                format!("{} in one call, at most {MAX_LOG_BATCH}", entries.len()),
            ));
        }
        let run = lease.run;
        with_write_tx!(self.db, |tx| {
            let tenant: Option<Uuid> =
                sqlx::query_scalar("SELECT tenant_id FROM wf_runs WHERE id = $1")
                    .bind(run.as_uuid())
                    .fetch_optional(&mut *tx)
                    .await?;
            let tenant = tenant.ok_or_else(|| OrchestrateError::not_found("workflow run", run))?;
            for entry in entries {
                sqlx::query(
                    "INSERT INTO wf_logs (id, run_id, tenant_id, node_id, attempt, level, message, \
                     fields, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(Uuid::now_v7())
                .bind(run.as_uuid())
                .bind(tenant)
                .bind(entry.node.as_str())
                .bind(i32::try_from(entry.attempt).unwrap_or(i32::MAX))
                .bind(entry.level.rank())
                .bind(&entry.message)
                .bind(entry.fields.to_string())
                .bind(to_micros(entry.at))
                .execute(&mut *tx)
                .await?;
            }
        });
        Ok(())
    }

    pub(super) async fn read_logs(
        &self,
        actor: &Principal,
        tenant: TenantId,
        run: RunId,
        query: &LogQuery,
    ) -> Result<Page<LogEntry>, OrchestrateError> {
        actor.require(tenant, &WORKFLOWS_READ)?;
        let limit = ate_core::page::page_size(query.limit)?;
        let after: Option<Uuid> = query
            .cursor
            .as_ref()
            .map(|c| c.decode(CURSOR_KIND))
            .transpose()?
            .map(|s| {
                s.parse::<Uuid>()
                    .map_err(|_| OrchestrateError::invalid("cursor", "is not from this listing"))
            })
            .transpose()?;
        let exists: Option<Uuid> = with_pool!(self.db, |pool| {
            sqlx::query_scalar("SELECT id FROM wf_runs WHERE tenant_id = $1 AND id = $2")
                .bind(tenant.as_uuid())
                .bind(run.as_uuid())
                .fetch_optional(pool)
                .await?
        });
        if exists.is_none() {
            return Err(OrchestrateError::not_found("workflow run", run));
        }
        let rows: Vec<LogRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(
                "SELECT id, node_id, attempt, level, message, fields, at FROM wf_logs \
                 WHERE run_id = $1 AND ($2 IS NULL OR node_id = $2) AND level >= $3 \
                 AND ($4 IS NULL OR id > $4) ORDER BY id LIMIT $5",
            )
            .bind(run.as_uuid())
            .bind(query.node.as_deref())
            .bind(query.min_level.map_or(0, LogLevel::rank))
            .bind(after)
            .bind(i64::from(limit) + 1)
            .fetch_all(pool)
            .await?
        });
        let more = rows.len() > limit as usize;
        let mut last = None;
        let mut items = Vec::new();
        for row in rows.into_iter().take(limit as usize) {
            last = Some(row.id);
            items.push(row.entry()?);
        }
        let next_cursor = match (more, last) {
            (true, Some(id)) => Some(Cursor::encode(CURSOR_KIND, &id.to_string())),
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }
}
