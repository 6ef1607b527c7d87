//! [`SqlAlertRules`]: alert rules kept in the `orchestrate_alert_rules` table of a [`Db`],
//! so every host on the database evaluates the same rules and they survive restarts.
//!
//! The store is the source of truth; [`SqlAlertRules::sync`] makes an [`AlertEngine`]'s
//! rules equal to the stored ones (adding, replacing and removing), which a host calls after
//! its own changes and periodically to pick up other hosts'. Rules watch platform-wide
//! service metrics, so managing and reading them is for platform administrators.

use super::engine::AlertEngine;
use super::rule::AlertRule;
use crate::OrchestrateError;
use ate_core::db::{from_micros, is_unique_violation, to_micros};
use ate_core::{Clock, CoreError, Db, Principal, SystemClock, with_pool};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Most rules the store keeps.
pub const MAX_STORED_RULES: usize = 1000;

/// A stored rule with its bookkeeping.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StoredRule {
    /// The rule.
    pub rule: AlertRule,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Grows with every change.
    pub revision: i64,
}

/// What [`SqlAlertRules::sync`] changed in the engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncReport {
    /// Rules added.
    pub added: usize,
    /// Rules replaced because they changed.
    pub replaced: usize,
    /// Rules removed because they are no longer stored.
    pub removed: usize,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    rule: String,
    created_by: String,
    created_at: i64,
    updated_at: i64,
    revision: i64,
}

impl Row {
    fn stored(self) -> Result<StoredRule, OrchestrateError> {
        let rule: AlertRule = serde_json::from_str(&self.rule).map_err(|e| {
            OrchestrateError::Core(CoreError::Integrity(format!(
                "stored alert rule {} does not parse: {e}",
                self.id
            )))
        })?;
        Ok(StoredRule {
            rule,
            created_by: self.created_by,
            created_at: from_micros(self.created_at)?,
            updated_at: from_micros(self.updated_at)?,
            revision: self.revision,
        })
    }
}

/// Alert rules in a [`Db`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct SqlAlertRules {
    db: Db,
    clock: Arc<dyn Clock>,
}

impl SqlAlertRules {
    /// Opens the store in `db`, running this crate's migrations first.
    pub async fn open(db: Db) -> Result<Self, OrchestrateError> {
        db.migrate(&crate::migrations()).await?;
        Ok(SqlAlertRules {
            db,
            clock: Arc::new(SystemClock),
        })
    }

    /// Uses `clock` for the times it records.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Stores a new rule. Platform administrators only; `InvalidInput` for a rule failing
    /// [`AlertRule::validate`] (windows are checked again, against the recorder, when an
    /// engine takes it); `AlreadyExists` for a taken id; `QuotaExceeded` beyond
    /// [`MAX_STORED_RULES`].
    pub async fn create(
        &self,
        actor: &Principal,
        rule: &AlertRule,
    ) -> Result<StoredRule, OrchestrateError> {
        actor.require_platform_admin("creating alert rules")?;
        rule.validate()?;
        let body = encode(rule)?;
        let now = to_micros(self.clock.now());
        let count: i64 = with_pool!(self.db, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM orchestrate_alert_rules")
                .fetch_one(pool)
                .await?
        });
        if usize::try_from(count).unwrap_or(usize::MAX) >= MAX_STORED_RULES {
            return Err(OrchestrateError::Core(CoreError::QuotaExceeded(format!(
                "{MAX_STORED_RULES} alert rules are stored already; delete one first"
            ))));
        }
        let result = with_pool!(self.db, |pool| {
            sqlx::query(
                "INSERT INTO orchestrate_alert_rules \
                 (id, rule, created_by, created_at, updated_at, revision) \
                 VALUES ($1, $2, $3, $4, $4, 1)",
            )
            .bind(&rule.id)
            .bind(&body)
            .bind(actor.subject())
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        });
        match result {
            Ok(_) => self.load(&rule.id).await,
            Err(e) if is_unique_violation(&e) => {
                Err(OrchestrateError::already_exists("alert rule", &rule.id))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces rule `rule.id`. Platform administrators only; `NotFound` for an unknown id.
    pub async fn replace(
        &self,
        actor: &Principal,
        rule: &AlertRule,
    ) -> Result<StoredRule, OrchestrateError> {
        actor.require_platform_admin("changing alert rules")?;
        rule.validate()?;
        let body = encode(rule)?;
        let now = to_micros(self.clock.now());
        let changed = with_pool!(self.db, |pool| {
            sqlx::query(
                "UPDATE orchestrate_alert_rules SET rule = $2, updated_at = $3, \
                 revision = revision + 1 WHERE id = $1",
            )
            .bind(&rule.id)
            .bind(&body)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if changed == 0 {
            return Err(OrchestrateError::not_found("alert rule", &rule.id));
        }
        self.load(&rule.id).await
    }

    /// Deletes rule `id`. Platform administrators only; `NotFound` for an unknown id. The
    /// alert history keeps its events.
    pub async fn delete(&self, actor: &Principal, id: &str) -> Result<(), OrchestrateError> {
        actor.require_platform_admin("deleting alert rules")?;
        let changed = with_pool!(self.db, |pool| {
            sqlx::query("DELETE FROM orchestrate_alert_rules WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if changed == 0 {
            return Err(OrchestrateError::not_found("alert rule", id));
        }
        Ok(())
    }

    /// Rule `id`. Platform administrators only; `NotFound` for an unknown id.
    pub async fn get(&self, actor: &Principal, id: &str) -> Result<StoredRule, OrchestrateError> {
        actor.require_platform_admin("reading alert rules")?;
        self.load(id).await
    }

    /// Every rule, by id. Platform administrators only.
    pub async fn list(&self, actor: &Principal) -> Result<Vec<StoredRule>, OrchestrateError> {
        actor.require_platform_admin("reading alert rules")?;
        self.all().await
    }

    /// Makes `engine`'s rules equal to the stored ones: adds the missing, replaces the
    /// changed (their alerts keep their state, see [`AlertEngine::set_rule`]), removes those
    /// no longer stored. A stored rule the engine refuses (a window beyond its recorder's)
    /// is skipped and reported in the error after the others were applied.
    pub async fn sync(&self, engine: &AlertEngine) -> Result<SyncReport, OrchestrateError> {
        let stored: BTreeMap<String, AlertRule> = self
            .all()
            .await?
            .into_iter()
            .map(|s| (s.rule.id.clone(), s.rule))
            .collect();
        let current: BTreeMap<String, AlertRule> = engine
            .rules()
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        let mut report = SyncReport::default();
        let mut refused = Vec::new();
        for id in current.keys().filter(|id| !stored.contains_key(*id)) {
            if engine.remove_rule(id).is_ok() {
                report.removed += 1;
            }
        }
        for (id, rule) in stored {
            if current.get(&id) == Some(&rule) {
                continue;
            }
            match engine.set_rule(rule) {
                Ok(true) => report.replaced += 1,
                Ok(false) => report.added += 1,
                Err(e) => refused.push(format!("{id}: {e}")),
            }
        }
        if refused.is_empty() {
            Ok(report)
        } else {
            Err(OrchestrateError::invalid(
                "stored alert rules",
                format!("the engine refused {}", refused.join("; ")),
            ))
        }
    }

    async fn all(&self) -> Result<Vec<StoredRule>, OrchestrateError> {
        let rows: Vec<Row> = with_pool!(self.db, |pool| {
            sqlx::query_as(
                "SELECT id, rule, created_by, created_at, updated_at, revision \
                 FROM orchestrate_alert_rules ORDER BY id",
            )
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(Row::stored).collect()
    }

    async fn load(&self, id: &str) -> Result<StoredRule, OrchestrateError> {
        let row: Option<Row> = with_pool!(self.db, |pool| {
            sqlx::query_as(
                "SELECT id, rule, created_by, created_at, updated_at, revision \
                 FROM orchestrate_alert_rules WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        row.ok_or_else(|| OrchestrateError::not_found("alert rule", id))?
            .stored()
    }
}

fn encode(rule: &AlertRule) -> Result<String, OrchestrateError> {
    serde_json::to_string(rule).map_err(|e| {
        OrchestrateError::Core(CoreError::Internal(format!("encoding alert rule: {e}")))
    })
}
