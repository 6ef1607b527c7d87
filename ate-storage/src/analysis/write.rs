//! The writes of [`SqlAnalysisStore`](super::SqlAnalysisStore) inside a write
//! transaction, as macros over the transaction (one expansion per backend, as
//! `with_write_tx!` makes): creating and updating a result, shared by the single calls and
//! by [`apply_batch`](super::AnalysisStore::apply_batch).

/// Inserts result `$id` of `$project` from `$spec` with its audit event, in transaction
/// `$tx` whose tenant is locked and active; evaluates to the stored result.
macro_rules! insert_result {
    ($tx:ident, $actor:expr, $tenant:expr, $project:expr, $spec:expr, $id:expr, $now:expr, $event:expr) => {{
        let (actor, tenant, project, spec, id, now, event) =
            ($actor, $tenant, $project, $spec, $id, $now, $event);
        let finished = spec.status.is_finished().then_some(to_micros(now));
        let started = (spec.status == AnalysisStatus::Running).then_some(to_micros(now));
        let summary = spec.summary.to_string();
        let known: Option<i64> = sqlx::query_scalar(LIVE_PROJECT)
            .bind(project.as_uuid())
            .bind(tenant.as_uuid())
            .fetch_optional(&mut *$tx)
            .await
            .map_err(CoreError::from)?;
        if known.is_none() {
            return Err(CoreError::not_found("project", project).into());
        }
        if let Some(snapshot) = spec.snapshot {
            let committed: Option<i64> = sqlx::query_scalar(
                "SELECT CAST(1 AS BIGINT) FROM snapshots WHERE id = $1 AND project_id = $2 \
                 AND state = 'committed'",
            )
            .bind(snapshot.as_uuid())
            .bind(project.as_uuid())
            .fetch_optional(&mut *$tx)
            .await
            .map_err(CoreError::from)?;
            if committed.is_none() {
                return Err(CoreError::not_found("snapshot", snapshot).into());
            }
        }
        sqlx::query(
            "INSERT INTO analysis_results (id, tenant_id, project_id, snapshot_id, kind, \
             analyzer, analyzer_version, status, summary, error, created_by, created_at, \
             updated_at, started_at, finished_at, revision) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $14, 1)",
        )
        .bind(id.as_uuid())
        .bind(tenant.as_uuid())
        .bind(project.as_uuid())
        .bind(spec.snapshot.map(|s| s.as_uuid()))
        .bind(&spec.kind)
        .bind(&spec.analyzer)
        .bind(&spec.analyzer_version)
        .bind(spec.status.as_str())
        .bind(&summary)
        .bind(spec.error.as_deref())
        .bind(actor.subject())
        .bind(to_micros(now))
        .bind(started)
        .bind(finished)
        .execute(&mut *$tx)
        .await
        .map_err(CoreError::from)?;
        $tx.append_audit(&event, now).await?;
        read_result!($tx, tenant, id).ok_or_else(|| CoreError::not_found("analysis result", id))?
    }};
}

/// Applies `$update` to `$current` (result `$id`, read under the tenant's lock) in
/// transaction `$tx`; evaluates to the result after it (unchanged when nothing changes).
macro_rules! update_result {
    ($tx:ident, $actor:expr, $tenant:expr, $id:expr, $update:expr, $current:expr, $now:expr) => {{
        let (actor, tenant, id, update, current, now) =
            ($actor, $tenant, $id, $update, $current, $now);
        unfinished(&current)?;
        let status = update.status.unwrap_or(current.status);
        if !current.status.may_become(status) {
            return Err(CoreError::Conflict(format!(
                "analysis result {id} is {}; it cannot go back to {status}",
                current.status
            ))
            .into());
        }
        let summary = update.summary.as_ref().filter(|s| **s != current.summary);
        let error = update
            .error
            .as_ref()
            .filter(|e| Some(*e) != current.error.as_ref());
        if status == current.status && summary.is_none() && error.is_none() {
            // Nothing changes: no write, no new revision, no audit event.
            current
        } else {
            let started = match (current.started_at, status) {
                (Some(at), _) => Some(to_micros(at)),
                (None, AnalysisStatus::Running) => Some(to_micros(now)),
                (None, _) => None,
            };
            let finished = status.is_finished().then_some(to_micros(now));
            let summary_text = summary.map(Value::to_string);
            sqlx::query(
                "UPDATE analysis_results SET status = $2, summary = COALESCE($3, summary), \
                 error = COALESCE($4, error), started_at = $5, finished_at = $6, \
                 updated_at = $7, revision = revision + 1 WHERE id = $1",
            )
            .bind(id.as_uuid())
            .bind(status.as_str())
            .bind(summary_text.as_deref())
            .bind(error.map(String::as_str))
            .bind(started)
            .bind(finished)
            .bind(to_micros(now))
            .execute(&mut *$tx)
            .await
            .map_err(CoreError::from)?;
            let event = event(
                tenant,
                actor,
                actions::ANALYSIS_UPDATED,
                id,
                json!({
                    "from": current.status,
                    "to": status,
                    "summary_changed": summary.is_some(),
                }),
            )?;
            $tx.append_audit(&event, now).await?;
            read_result!($tx, tenant, id)
                .ok_or_else(|| CoreError::not_found("analysis result", id))?
        }
    }};
}
