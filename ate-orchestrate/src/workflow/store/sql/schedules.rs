//! Schedules in [`SqlWorkflowStore`] (`wf_schedules`): creating, reading, pausing and
//! deleting them, and firing due ticks from the maintenance pass, exactly once per tick (see
//! [`schedule`](crate::workflow::schedule)).

use super::{SqlWorkflowStore, corrupt, json_text, micros};
use crate::OrchestrateError;
use crate::workflow::dag::StepName;
use crate::workflow::run::RunSpec;
use crate::workflow::schedule::{CronTz, Schedule, ScheduleName, ValidSchedule};
use crate::workflow::spec::{DagSpec, Limits};
use crate::workflow::store::{WORKFLOWS_READ, WORKFLOWS_RUN};
use ate_core::audit::{AuditAction, NewAuditEvent, Outcome, actions};
use ate_core::db::{from_micros, to_micros};
use ate_core::{CoreError, CoreTx, Principal, RunId, TenantId, with_pool, with_write_tx};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

/// Most due schedules one maintenance pass fires.
const FIRE_BATCH: i64 = 100;

macro_rules! schedule_columns {
    () => {
        "id, tenant_id, name, cron, time_zone, template, paused, next_fire_at, last_fired_at, \
         last_run_id, created_by, created_at, updated_at"
    };
}

#[derive(sqlx::FromRow)]
struct ScheduleRow {
    id: Uuid,
    tenant_id: Uuid,
    name: String,
    cron: String,
    time_zone: String,
    template: String,
    paused: i32,
    next_fire_at: Option<i64>,
    last_fired_at: Option<i64>,
    last_run_id: Option<Uuid>,
    created_by: String,
    created_at: i64,
    updated_at: i64,
}

/// A run template as stored: everything of a [`RunSpec`] a schedule keeps.
fn template_json(run: &RunSpec) -> Result<String, OrchestrateError> {
    let dag: Value =
        serde_json::from_str(&run.dag.to_json()).map_err(|e| corrupt("definition", e))?;
    json_text(
        &json!({
            "dag": dag,
            "input": run.input,
            "priority": run.priority,
            "labels": run.labels,
            "timeout_ms": run.timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        }),
        "schedule template",
    )
}

/// A stored template, read back (it was validated when the schedule was created).
fn template(text: &str) -> Result<RunSpec, OrchestrateError> {
    let v: Value = serde_json::from_str(text).map_err(|e| corrupt("schedule template", e))?;
    let unlimited = Limits::default()
        .max_nodes(usize::MAX)
        .max_definition_bytes(usize::MAX)
        .max_input_bytes(usize::MAX);
    let dag = DagSpec::from_json(v["dag"].to_string().as_bytes(), &unlimited)
        .map_err(|e| corrupt("schedule template", e))?;
    let mut run = RunSpec::new(dag, v["input"].clone());
    run.priority = v["priority"]
        .as_i64()
        .and_then(|p| i32::try_from(p).ok())
        .unwrap_or(0);
    run.labels =
        serde_json::from_value(v["labels"].clone()).map_err(|e| corrupt("schedule template", e))?;
    run.timeout = v["timeout_ms"].as_u64().map(Duration::from_millis);
    Ok(run)
}

impl ScheduleRow {
    fn schedule(self) -> Result<Schedule, OrchestrateError> {
        Ok(Schedule {
            tenant: TenantId::from_uuid(self.tenant_id)?,
            name: ScheduleName::new(self.name).map_err(|e| corrupt("schedule name", e))?,
            cron: self.cron,
            time_zone: self.time_zone,
            run: template(&self.template)?,
            paused: self.paused != 0,
            next_fire_at: micros(self.next_fire_at)?,
            last_fired_at: micros(self.last_fired_at)?,
            last_run: self.last_run_id.map(RunId::from_uuid).transpose()?,
            created_by: self.created_by,
            created_at: from_micros(self.created_at)?,
            updated_at: from_micros(self.updated_at)?,
        })
    }
}

fn schedule_event(
    tenant: TenantId,
    actor: &Principal,
    action: AuditAction,
    name: &str,
) -> NewAuditEvent {
    NewAuditEvent::new(tenant, actor.subject(), action, Outcome::Success)
        .target(format!("workflow_schedule:{name}"))
}

impl SqlWorkflowStore {
    pub(super) async fn create_schedule_row(
        &self,
        actor: &Principal,
        tenant: TenantId,
        schedule: &ValidSchedule,
    ) -> Result<Schedule, OrchestrateError> {
        actor.require(tenant, &WORKFLOWS_RUN)?;
        let now = self.clock.now();
        let name = schedule.name().as_str();
        let next = schedule.cron().next_after(now).map(to_micros);
        let template = template_json(schedule.run().spec())?;
        let event = schedule_event(tenant, actor, actions::SCHEDULE_CREATED, name)
            .metadata(json!({
                "cron": schedule.cron().expression(),
                "time_zone": schedule.cron().time_zone(),
                "paused": schedule.is_paused(),
            }))
            .validate()?;
        let created: bool = with_write_tx!(self.db, |tx| {
            tx.lock_tenant(tenant).await?.require_active()?;
            let taken: Option<Uuid> = sqlx::query_scalar(
                "SELECT id FROM wf_schedules WHERE tenant_id = $1 AND name = $2",
            )
            .bind(tenant.as_uuid())
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
            if taken.is_none() {
                sqlx::query(concat!(
                    "INSERT INTO wf_schedules (",
                    schedule_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL, $9, $10, $10)"
                ))
                .bind(Uuid::now_v7())
                .bind(tenant.as_uuid())
                .bind(name)
                .bind(schedule.cron().expression())
                .bind(schedule.cron().time_zone())
                .bind(&template)
                .bind(i32::from(schedule.is_paused()))
                .bind(next)
                .bind(actor.subject())
                .bind(to_micros(now))
                .execute(&mut *tx)
                .await?;
                tx.append_audit(&event, now).await?;
            }
            taken.is_none()
        });
        if !created {
            return Err(OrchestrateError::already_exists("schedule", name));
        }
        self.load_schedule(tenant, name).await
    }

    async fn load_schedule(
        &self,
        tenant: TenantId,
        name: &str,
    ) -> Result<Schedule, OrchestrateError> {
        let row: Option<ScheduleRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                schedule_columns!(),
                " FROM wf_schedules WHERE tenant_id = $1 AND name = $2"
            ))
            .bind(tenant.as_uuid())
            .bind(name)
            .fetch_optional(pool)
            .await?
        });
        row.ok_or_else(|| OrchestrateError::not_found("schedule", name))?
            .schedule()
    }

    pub(super) async fn read_schedule(
        &self,
        actor: &Principal,
        tenant: TenantId,
        name: &str,
    ) -> Result<Schedule, OrchestrateError> {
        actor.require(tenant, &WORKFLOWS_READ)?;
        self.load_schedule(tenant, name).await
    }

    pub(super) async fn list_schedule_rows(
        &self,
        actor: &Principal,
        tenant: TenantId,
    ) -> Result<Vec<Schedule>, OrchestrateError> {
        actor.require(tenant, &WORKFLOWS_READ)?;
        let rows: Vec<ScheduleRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                schedule_columns!(),
                " FROM wf_schedules WHERE tenant_id = $1 ORDER BY name"
            ))
            .bind(tenant.as_uuid())
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(ScheduleRow::schedule).collect()
    }

    pub(super) async fn pause_schedule_row(
        &self,
        actor: &Principal,
        tenant: TenantId,
        name: &str,
        paused: bool,
    ) -> Result<Schedule, OrchestrateError> {
        actor.require(tenant, &WORKFLOWS_RUN)?;
        let now = self.clock.now();
        let event = schedule_event(tenant, actor, actions::SCHEDULE_UPDATED, name)
            .metadata(json!({ "paused": paused }))
            .validate()?;
        let found: bool = with_write_tx!(self.db, |tx| {
            tx.lock_tenant(tenant).await?.require_active()?;
            let row: Option<(i32, String, String)> = sqlx::query_as(
                "SELECT paused, cron, time_zone FROM wf_schedules WHERE tenant_id = $1 AND name = $2",
            )
            .bind(tenant.as_uuid())
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
            let found = row.is_some();
            if let Some((was, cron, tz)) = row
                && (was != 0) != paused
            {
                // Resuming starts from now: ticks missed while paused do not fire.
                let next = if paused {
                    None
                } else {
                    CronTz::parse(&cron, &tz)
                        .map_err(|e| corrupt("schedule", e))?
                        .next_after(now)
                        .map(to_micros)
                };
                sqlx::query(
                    "UPDATE wf_schedules SET paused = $3, next_fire_at = $4, updated_at = $5 \
                     WHERE tenant_id = $1 AND name = $2",
                )
                .bind(tenant.as_uuid())
                .bind(name)
                .bind(i32::from(paused))
                .bind(next)
                .bind(to_micros(now))
                .execute(&mut *tx)
                .await?;
                tx.append_audit(&event, now).await?;
            }
            found
        });
        if !found {
            return Err(OrchestrateError::not_found("schedule", name));
        }
        self.load_schedule(tenant, name).await
    }

    pub(super) async fn delete_schedule_row(
        &self,
        actor: &Principal,
        tenant: TenantId,
        name: &str,
    ) -> Result<(), OrchestrateError> {
        actor.require(tenant, &WORKFLOWS_RUN)?;
        let now = self.clock.now();
        let event = schedule_event(tenant, actor, actions::SCHEDULE_DELETED, name).validate()?;
        let deleted: u64 = with_write_tx!(self.db, |tx| {
            tx.lock_tenant(tenant).await?;
            let gone = sqlx::query("DELETE FROM wf_schedules WHERE tenant_id = $1 AND name = $2")
                .bind(tenant.as_uuid())
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if gone > 0 {
                tx.append_audit(&event, now).await?;
            }
            gone
        });
        if deleted == 0 {
            return Err(OrchestrateError::not_found("schedule", name));
        }
        Ok(())
    }

    /// Fires the schedules whose tick has come (a bounded batch); returns how many ticks
    /// this call fired. Safe on every host at once: each tick's run has the key
    /// `schedule:<id>:<tick>`, and the schedule moves on by compare-and-set.
    pub(super) async fn fire_schedules(&self) -> Result<usize, OrchestrateError> {
        let now = self.clock.now();
        let due: Vec<ScheduleRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                schedule_columns!(),
                " FROM wf_schedules WHERE paused = 0 AND next_fire_at <= $1 \
                 ORDER BY next_fire_at LIMIT $2"
            ))
            .bind(to_micros(now))
            .bind(FIRE_BATCH)
            .fetch_all(pool)
            .await?
        });
        let mut fired = 0;
        for row in due {
            fired += usize::from(self.fire(&row, now).await?);
        }
        Ok(fired)
    }

    /// Fires `row`'s due tick; `false` when another host fired it first.
    async fn fire(&self, row: &ScheduleRow, now: DateTime<Utc>) -> Result<bool, OrchestrateError> {
        let Some(tick) = row.next_fire_at else {
            return Ok(false);
        };
        let tenant = TenantId::from_uuid(row.tenant_id)?;
        let cron = CronTz::parse(&row.cron, &row.time_zone).map_err(|e| corrupt("schedule", e))?;
        let unlimited = Limits::default()
            .max_nodes(usize::MAX)
            .max_definition_bytes(usize::MAX)
            .max_input_bytes(usize::MAX);
        let run = template(&row.template)?
            .idempotency_key(format!("schedule:{}:{tick}", row.id))
            .validate(&unlimited, &|_: &StepName| true)
            .map_err(|e| corrupt("schedule template", e))?;
        let actor = format!("schedule:{}", row.name);
        let started = match self
            .store_runs(&actor, tenant, std::slice::from_ref(&run), None)
            .await
        {
            Ok(mut runs) => runs.pop().map(|s| s.run.id),
            // A suspended (or deleted) tenant's ticks pass without a run.
            Err(OrchestrateError::Core(
                CoreError::PermissionDenied(_) | CoreError::NotFound { .. },
            )) => None,
            Err(e) => return Err(e),
        };
        // Missed ticks do not pile up: the next one is the first after now.
        let next = cron.next_after(from_micros(tick)?.max(now)).map(to_micros);
        let moved = with_pool!(self.db, |pool| {
            sqlx::query(
                "UPDATE wf_schedules SET next_fire_at = $3, last_fired_at = $2, \
                 last_run_id = COALESCE($4, last_run_id), updated_at = $5 \
                 WHERE id = $1 AND next_fire_at = $2 AND paused = 0",
            )
            .bind(row.id)
            .bind(tick)
            .bind(next)
            .bind(started.map(|r| r.as_uuid()))
            .bind(to_micros(now))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(moved == 1)
    }
}
