//! The alert history in SQLite or PostgreSQL.

use super::{AlertHistory, AlertQuery};
use crate::alerts::event::{AlertEvent, AlertEventState, AlertRecord};
use crate::alerts::rule::Severity;
use crate::error::OrchestrateError;
use ate_core::db::{from_micros, is_unique_violation, to_micros};
use ate_core::{CoreError, Db, with_pool};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use uuid::Uuid;

/// An [`AlertHistory`] in the `orchestrate_alert_history` table of a [`Db`] (SQLite or
/// PostgreSQL); several host processes may share it.
#[derive(Debug, Clone)]
pub struct SqlAlertHistory {
    db: Db,
}

macro_rules! columns {
    () => {
        "id, rule_id, rule_name, severity, state, labels, value, summary, occurred_at, \
         firing_id, delivered_at, attempts"
    };
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    rule_id: String,
    rule_name: String,
    severity: String,
    state: String,
    labels: String,
    value: f64,
    summary: String,
    occurred_at: i64,
    firing_id: Option<Uuid>,
    delivered_at: Option<i64>,
    attempts: i64,
}

impl Row {
    fn record(self) -> Result<AlertRecord, OrchestrateError> {
        let corrupt = |what: &str, e: &dyn std::fmt::Display| {
            OrchestrateError::Core(CoreError::Internal(format!(
                "stored alert event {} has a bad {what}: {e}",
                self.id
            )))
        };
        let labels: BTreeMap<String, String> =
            serde_json::from_str(&self.labels).map_err(|e| corrupt("labels", &e))?;
        let severity = Severity::parse(&self.severity).map_err(|e| corrupt("severity", &e))?;
        let state = AlertEventState::parse(&self.state).map_err(|e| corrupt("state", &e))?;
        Ok(AlertRecord {
            event: AlertEvent {
                id: self.id,
                rule_id: self.rule_id,
                rule_name: self.rule_name,
                severity,
                labels,
                state,
                value: self.value,
                summary: self.summary,
                at: from_micros(self.occurred_at)?,
                firing_id: self.firing_id,
            },
            delivered_at: self.delivered_at.map(from_micros).transpose()?,
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
        })
    }
}

impl SqlAlertHistory {
    /// Opens the history in `db`, running this crate's migrations
    /// ([`crate::migrations`]) first.
    ///
    /// Errors: whatever the migration fails with (`Unavailable` when the database cannot be
    /// reached).
    pub async fn open(db: Db) -> Result<Self, OrchestrateError> {
        db.migrate(&crate::migrations()).await?;
        Ok(SqlAlertHistory { db })
    }
}

#[async_trait::async_trait]
impl AlertHistory for SqlAlertHistory {
    async fn append(&self, event: &AlertEvent) -> Result<(), OrchestrateError> {
        let labels = serde_json::to_string(&event.labels).map_err(|e| {
            OrchestrateError::Core(CoreError::Internal(format!("encoding alert labels: {e}")))
        })?;
        if !event.value.is_finite() {
            return Err(OrchestrateError::invalid(
                "alert event value",
                format!("{} is not finite", event.value),
            ));
        }
        let result = with_pool!(self.db, |pool| {
            sqlx::query(concat!(
                "INSERT INTO orchestrate_alert_history (",
                columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, 0)"
            ))
            .bind(event.id)
            .bind(&event.rule_id)
            .bind(&event.rule_name)
            .bind(event.severity.as_str())
            .bind(event.state.as_str())
            .bind(&labels)
            .bind(event.value)
            .bind(&event.summary)
            .bind(to_micros(event.at))
            .bind(event.firing_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        });
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => {
                Err(OrchestrateError::already_exists("alert event", event.id))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn mark_delivered(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
        attempts: u32,
    ) -> Result<(), OrchestrateError> {
        let changed = with_pool!(self.db, |pool| {
            sqlx::query(
                "UPDATE orchestrate_alert_history SET delivered_at = $2, attempts = $3 \
                 WHERE id = $1 AND delivered_at IS NULL",
            )
            .bind(id)
            .bind(to_micros(at))
            .bind(i64::from(attempts))
            .execute(pool)
            .await?
            .rows_affected()
        });
        if changed == 0 && self.get(id).await?.is_none() {
            return Err(OrchestrateError::not_found("alert event", id));
        }
        Ok(())
    }

    async fn get(&self, id: Uuid) -> Result<Option<AlertRecord>, OrchestrateError> {
        let row: Option<Row> = with_pool!(self.db, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                columns!(),
                " FROM orchestrate_alert_history WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        row.map(Row::record).transpose()
    }

    async fn query(&self, query: &AlertQuery) -> Result<Vec<AlertRecord>, OrchestrateError> {
        query.validate()?;
        let rows: Vec<Row> = with_pool!(self.db, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                columns!(),
                " FROM orchestrate_alert_history \
                 WHERE ($1 IS NULL OR rule_id = $1) AND ($2 IS NULL OR state = $2) \
                 AND ($3 IS NULL OR occurred_at >= $3) AND ($4 IS NULL OR occurred_at < $4) \
                 ORDER BY occurred_at DESC, id DESC LIMIT $5"
            ))
            .bind(query.rule_id.as_deref())
            .bind(query.state.map(AlertEventState::as_str))
            .bind(query.since.map(to_micros))
            .bind(query.until.map(to_micros))
            .bind(i64::from(query.limit))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(Row::record).collect()
    }

    async fn purge_before(&self, before: DateTime<Utc>) -> Result<u64, OrchestrateError> {
        Ok(with_pool!(self.db, |pool| {
            sqlx::query("DELETE FROM orchestrate_alert_history WHERE occurred_at < $1")
                .bind(to_micros(before))
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }
}
