//! [`AnalysisStore::apply_batch`](super::AnalysisStore::apply_batch) for
//! [`SqlAnalysisStore`]: every create and update of a batch in one write transaction, under
//! one lock of the tenant.

use super::rows::{
    GET, PAYLOADS, PayloadRow, ResultRow, check_revision, created_event, event, unfinished,
};
use super::sql::LIVE_PROJECT;
use super::{
    ANALYSIS_WRITE, AnalysisBatch, AnalysisResult, AnalysisStatus, MAX_BATCH, SqlAnalysisStore,
};
use crate::StorageError;
use ate_core::audit::actions;
use ate_core::db::to_micros;
use ate_core::{AnalysisId, Classify, CoreError, CoreTx, Principal, TenantId, with_write_tx};
use serde_json::{Value, json};
use std::collections::HashSet;

/// Names the failing operation in an error's message, keeping its kind (a `NotFound`
/// already names what it did not find).
fn at(position: &str, e: StorageError) -> StorageError {
    let message = format!("{position}: {e}");
    match e.kind() {
        ate_core::ErrorKind::InvalidInput => CoreError::invalid("analysis batch", message).into(),
        ate_core::ErrorKind::Conflict => CoreError::Conflict(message).into(),
        _ => e,
    }
}

impl SqlAnalysisStore {
    pub(super) async fn write_batch(
        &self,
        actor: &Principal,
        tenant: TenantId,
        batch: &AnalysisBatch,
    ) -> Result<Vec<AnalysisResult>, StorageError> {
        actor.require(tenant, &ANALYSIS_WRITE)?;
        let n = batch.creates.len() + batch.updates.len();
        if n == 0 || n > MAX_BATCH {
            return Err(CoreError::invalid(
                "analysis batch",
                format!("has {n} operations; 1 to {MAX_BATCH} are allowed"),
            )
            .into());
        }
        let mut seen = HashSet::new();
        for (id, _) in &batch.updates {
            if !seen.insert(*id) {
                return Err(CoreError::invalid(
                    "analysis batch",
                    format!("updates result {id} more than once"),
                )
                .into());
            }
        }
        for (i, (_, spec)) in batch.creates.iter().enumerate() {
            spec.validate()
                .map_err(|e| at(&format!("create #{i}"), e))?;
        }
        for (i, (_, update)) in batch.updates.iter().enumerate() {
            update
                .validate()
                .map_err(|e| at(&format!("update #{i}"), e))?;
        }
        let now = self.core.clock.now();
        let creates: Vec<(AnalysisId, _)> = batch
            .creates
            .iter()
            .map(|(project, spec)| {
                let id = AnalysisId::new();
                created_event(tenant, actor, id, *project, spec).map(|e| (id, e))
            })
            .collect::<Result<_, _>>()?;
        let results = with_write_tx!(self.core.db, |tx| {
            tx.lock_tenant(tenant).await?.require_active()?;
            let mut out = Vec::with_capacity(n);
            for (i, ((project, spec), (id, event))) in
                batch.creates.iter().zip(&creates).enumerate()
            {
                let created: Result<AnalysisResult, StorageError> = async {
                    Ok(insert_result!(
                        tx,
                        actor,
                        tenant,
                        *project,
                        spec,
                        *id,
                        now,
                        event.clone()
                    ))
                }
                .await;
                out.push(created.map_err(|e| at(&format!("create #{i}"), e))?);
            }
            for (i, (id, update)) in batch.updates.iter().enumerate() {
                let updated: Result<AnalysisResult, StorageError> = async {
                    let current = locked_result!(tx, tenant, *id, update.expected_revision);
                    Ok(update_result!(tx, actor, tenant, *id, update, current, now))
                }
                .await;
                out.push(updated.map_err(|e| at(&format!("update #{i}"), e))?);
            }
            out
        });
        Ok(results)
    }
}
