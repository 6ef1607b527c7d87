//! [`SqlRegistry`]: the registry in SQLite or PostgreSQL, shared by several host processes.
//!
//! Instances live in `registry_instances`, unique on `(scope, service, instance_id)`.
//! Every change also appends a row to `registry_changes` in the same transaction, numbered
//! by a one-row counter (`registry_change_seq`) that each writer bumps: the row lock
//! serializes writers, so sequence numbers follow commit order without gaps. A watch
//! remembers the last sequence it delivered and polls for newer rows, which is how it sees
//! changes made by other processes. The log keeps a bounded window
//! ([`SqlRegistry::with_change_log_capacity`]); a watcher that falls further behind gets
//! [`RegistryEvent::Lagged`].

use super::model::{
    Environment, HealthStatus, Instance, InstanceId, InstanceKey, InstanceSpec, Scope, ServiceName,
};
use super::policy::{ServicePolicy, TrafficPolicy};
use super::store::{
    DeregisterReason, Query, RegistryEvent, RegistryStore, RegistryWatch, Visibility, clean_output,
    critical_cutoff, new_instance, not_found, sort_instances,
};
use crate::error::OrchestrateError;
use async_trait::async_trait;
use ate_core::db::{from_micros, is_unique_violation, to_micros};
use ate_core::{Clock, CoreError, Db, SystemClock, TenantId, with_pool, with_write_tx};
use futures::StreamExt;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How often a watch polls the change log by default.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How many changes the log keeps by default.
pub const DEFAULT_CHANGE_LOG_CAPACITY: u64 = 10_000;
/// Most change rows one poll reads.
const POLL_BATCH: i64 = 512;

/// The registry in a SQL database ([`Db`]: SQLite or PostgreSQL).
///
/// Several processes (on several hosts, for PostgreSQL) may open it on one database; each
/// sees the others' registrations at once and their changes through [`watch`] within one
/// poll interval. Clones share the clock and settings.
///
/// [`watch`]: RegistryStore::watch
#[derive(Debug, Clone)]
pub struct SqlRegistry {
    db: Db,
    clock: Arc<dyn Clock>,
    poll_interval: Duration,
    change_log_capacity: u64,
    /// Wakes this handle's own watchers right after it writes (other processes' changes
    /// arrive by polling).
    local_change: Arc<Notify>,
}

macro_rules! columns {
    () => {
        "scope, service, instance_id, endpoint, tags, capabilities, metadata, weight, \
         environment, status, status_output, registered_at, last_heartbeat, status_since, \
         draining_since, maintenance, maintenance_since"
    };
}

const INSERT: &str = concat!(
    "INSERT INTO registry_instances (",
    columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, NULL, NULL, NULL)"
);
const DELETE: &str = concat!(
    "DELETE FROM registry_instances WHERE scope = $1 AND service = $2 AND instance_id = $3 \
     RETURNING ",
    columns!()
);
const HEARTBEAT: &str = concat!(
    "UPDATE registry_instances SET last_heartbeat = $4 \
     WHERE scope = $1 AND service = $2 AND instance_id = $3 RETURNING ",
    columns!()
);
/// A no-op update that takes the row's write lock (PostgreSQL) before it is read.
const LOCK_ROW: &str = "UPDATE registry_instances SET status = status \
     WHERE scope = $1 AND service = $2 AND instance_id = $3";
const GET: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM registry_instances WHERE scope = $1 AND service = $2 AND instance_id = $3"
);
const SET_STATUS: &str = "UPDATE registry_instances \
     SET status = $4, status_output = $5, status_since = $6 \
     WHERE scope = $1 AND service = $2 AND instance_id = $3";
/// `$1`: every scope; `$2`: the one tenant scope besides the platform's.
const DISCOVER: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM registry_instances \
     WHERE ($1 OR scope = 'platform' OR scope = $2) \
       AND ($3 IS NULL OR service = $3) \
       AND ($4 IS NULL OR environment = $4) \
       AND ($5 OR (status <> 'critical' AND draining_since IS NULL AND maintenance IS NULL))"
);
const SERVICES: &str = "SELECT DISTINCT service FROM registry_instances \
     WHERE ($1 OR scope = 'platform' OR scope = $2)";
const REAP: &str = concat!(
    "DELETE FROM registry_instances WHERE status = 'critical' AND status_since <= $1 \
     RETURNING ",
    columns!()
);
const SET_MAINTENANCE: &str = "UPDATE registry_instances SET maintenance = $4, \
     maintenance_since = $5 WHERE scope = $1 AND service = $2 AND instance_id = $3";
const SET_DRAINING: &str = "UPDATE registry_instances SET draining_since = $4 \
     WHERE scope = $1 AND service = $2 AND instance_id = $3";
const GET_POLICY: &str =
    "SELECT policy, updated_at FROM registry_policies WHERE scope = $1 AND service = $2";
const UPSERT_POLICY: &str = "INSERT INTO registry_policies (scope, service, policy, updated_at) \
     VALUES ($1, $2, $3, $4) \
     ON CONFLICT (scope, service) DO UPDATE SET policy = $3, updated_at = $4";
const DELETE_POLICY: &str = "DELETE FROM registry_policies WHERE scope = $1 AND service = $2";
/// Takes the policy's row lock (PostgreSQL) before it is read, when it exists; when it does
/// not, the change-sequence row lock taken by every change serializes concurrent writers.
const LOCK_POLICY: &str =
    "UPDATE registry_policies SET policy = policy WHERE scope = $1 AND service = $2";
const BUMP_SEQ: &str = "UPDATE registry_change_seq SET seq = seq + $1 WHERE id = 1 RETURNING seq";
const CURRENT_SEQ: &str = "SELECT seq FROM registry_change_seq WHERE id = 1";
const INSERT_CHANGE: &str = "INSERT INTO registry_changes (seq, at, event) VALUES ($1, $2, $3)";
const PRUNE_CHANGES: &str = "DELETE FROM registry_changes WHERE seq <= $1";
const CHANGES_SINCE: &str =
    "SELECT seq, event FROM registry_changes WHERE seq > $1 ORDER BY seq LIMIT $2";

/// One `registry_instances` row as stored.
#[derive(sqlx::FromRow)]
struct InstanceRow {
    scope: String,
    service: String,
    instance_id: String,
    endpoint: String,
    tags: String,
    capabilities: String,
    metadata: String,
    weight: i64,
    environment: String,
    status: String,
    status_output: String,
    registered_at: i64,
    last_heartbeat: i64,
    status_since: i64,
    draining_since: Option<i64>,
    maintenance: Option<String>,
    maintenance_since: Option<i64>,
}

fn corrupt(what: &str, detail: impl std::fmt::Display) -> OrchestrateError {
    OrchestrateError::Core(CoreError::Integrity(format!(
        "stored registry {what} is unreadable: {detail}"
    )))
}

fn scope_text(scope: Scope) -> String {
    // `Scope`'s display form ("platform", "tenant:<uuid>") sorts like `Scope` itself.
    scope.to_string()
}

fn parse_scope(s: &str) -> Result<Scope, OrchestrateError> {
    if s == "platform" {
        return Ok(Scope::Platform);
    }
    s.strip_prefix("tenant:")
        .and_then(|t| TenantId::from_str(t).ok())
        .map(Scope::Tenant)
        .ok_or_else(|| corrupt("scope", s))
}

impl InstanceRow {
    fn into_instance(self) -> Result<Instance, OrchestrateError> {
        let tags: BTreeSet<String> =
            serde_json::from_str(&self.tags).map_err(|e| corrupt("tags", e))?;
        let capabilities: BTreeSet<String> =
            serde_json::from_str(&self.capabilities).map_err(|e| corrupt("capabilities", e))?;
        let metadata: BTreeMap<String, String> =
            serde_json::from_str(&self.metadata).map_err(|e| corrupt("metadata", e))?;
        let endpoint = url::Url::parse(&self.endpoint).map_err(|e| corrupt("endpoint", e))?;
        let spec = InstanceSpec {
            service: ServiceName::new(self.service).map_err(|e| corrupt("service", e))?,
            id: InstanceId::new(self.instance_id).map_err(|e| corrupt("instance id", e))?,
            endpoint,
            tags,
            capabilities,
            metadata,
            weight: u32::try_from(self.weight).map_err(|e| corrupt("weight", e))?,
            environment: Environment::parse(&self.environment)
                .map_err(|e| corrupt("environment", e))?,
            scope: parse_scope(&self.scope)?,
        };
        Ok(Instance {
            spec,
            status: HealthStatus::parse(&self.status).map_err(|e| corrupt("status", e))?,
            status_output: self.status_output,
            registered_at: from_micros(self.registered_at)?,
            last_heartbeat: from_micros(self.last_heartbeat)?,
            status_since: from_micros(self.status_since)?,
            draining_since: self.draining_since.map(from_micros).transpose()?,
            maintenance: self.maintenance,
            maintenance_since: self.maintenance_since.map(from_micros).transpose()?,
        })
    }
}

fn to_json<T: serde::Serialize>(what: &str, value: &T) -> Result<String, OrchestrateError> {
    serde_json::to_string(value).map_err(|e| {
        OrchestrateError::Core(CoreError::Internal(format!("cannot encode {what}: {e}")))
    })
}

/// `($1, $2)` binds of the scope filter in [`DISCOVER`] and [`SERVICES`].
fn visibility_binds(v: &Visibility) -> (bool, Option<String>) {
    match v {
        Visibility::All => (true, None),
        Visibility::Platform => (false, None),
        Visibility::Tenant(t) => (false, Some(scope_text(Scope::Tenant(*t)))),
    }
}

/// Locks instance `$key`'s row inside transaction `$tx` (PostgreSQL: against concurrent
/// writers) and reads it; returns `NotFound` from the enclosing function when it is absent.
macro_rules! locked_instance {
    ($tx:ident, $key:expr) => {{
        let key: &InstanceKey = $key;
        let locked = sqlx::query(LOCK_ROW)
            .bind(scope_text(key.scope()))
            .bind(key.service().as_str())
            .bind(key.id().as_str())
            .execute(&mut *$tx)
            .await?;
        if locked.rows_affected() == 0 {
            return Err(not_found(key));
        }
        let row: InstanceRow = sqlx::query_as(GET)
            .bind(scope_text(key.scope()))
            .bind(key.service().as_str())
            .bind(key.id().as_str())
            .fetch_one(&mut *$tx)
            .await?;
        row.into_instance()?
    }};
}

/// Appends `events` to the change log inside transaction `$tx` and prunes the window.
macro_rules! record_changes {
    ($tx:ident, $self:ident, $now:expr, $events:expr) => {{
        let events: &[RegistryEvent] = $events;
        if !events.is_empty() {
            let count = i64::try_from(events.len()).unwrap_or(i64::MAX);
            let last: i64 = sqlx::query_scalar(BUMP_SEQ)
                .bind(count)
                .fetch_one(&mut *$tx)
                .await?;
            let mut seq = last - count;
            for event in events {
                seq += 1;
                sqlx::query(INSERT_CHANGE)
                    .bind(seq)
                    .bind(to_micros($now))
                    .bind(to_json("registry event", event)?)
                    .execute(&mut *$tx)
                    .await?;
            }
            let keep = i64::try_from($self.change_log_capacity).unwrap_or(i64::MAX);
            sqlx::query(PRUNE_CHANGES)
                .bind(last.saturating_sub(keep))
                .execute(&mut *$tx)
                .await?;
        }
    }};
}

impl SqlRegistry {
    /// A registry over `db`, running `ate-orchestrate`'s migrations first.
    pub async fn open(db: Db) -> Result<Self, OrchestrateError> {
        db.migrate(&crate::migrations()).await?;
        Ok(SqlRegistry {
            db,
            clock: Arc::new(SystemClock),
            poll_interval: DEFAULT_POLL_INTERVAL,
            change_log_capacity: DEFAULT_CHANGE_LOG_CAPACITY,
            local_change: Arc::new(Notify::new()),
        })
    }

    /// Uses `clock` for every time it records.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How often watches poll the change log (default [`DEFAULT_POLL_INTERVAL`]; at least
    /// 1 ms). Changes made through this handle wake its watchers at once.
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// How many recent changes the log keeps for watchers (default
    /// [`DEFAULT_CHANGE_LOG_CAPACITY`]; at least 1). Every process sharing the database
    /// prunes with its own setting, so give them the same one.
    pub fn with_change_log_capacity(mut self, capacity: u64) -> Self {
        self.change_log_capacity = capacity.max(1);
        self
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    async fn fetch(&self, key: &InstanceKey) -> Result<Option<Instance>, OrchestrateError> {
        let row: Option<InstanceRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(GET)
                .bind(scope_text(key.scope()))
                .bind(key.service().as_str())
                .bind(key.id().as_str())
                .fetch_optional(pool)
                .await?
        });
        row.map(InstanceRow::into_instance).transpose()
    }
}

#[async_trait]
impl RegistryStore for SqlRegistry {
    async fn register(&self, spec: InstanceSpec) -> Result<Instance, OrchestrateError> {
        spec.validate()?;
        let now = self.clock.now();
        let instance = new_instance(spec, now);
        let spec = &instance.spec;
        let tags = to_json("tags", &spec.tags)?;
        let capabilities = to_json("capabilities", &spec.capabilities)?;
        let metadata = to_json("metadata", &spec.metadata)?;
        let events = [RegistryEvent::Registered {
            instance: instance.clone(),
        }];
        with_write_tx!(self.db, |tx| {
            let inserted = sqlx::query(INSERT)
                .bind(scope_text(spec.scope))
                .bind(spec.service.as_str())
                .bind(spec.id.as_str())
                .bind(spec.endpoint.as_str())
                .bind(&tags)
                .bind(&capabilities)
                .bind(&metadata)
                .bind(i64::from(spec.weight))
                .bind(spec.environment.as_str())
                .bind(instance.status.as_str())
                .bind(&instance.status_output)
                .bind(to_micros(now))
                .bind(to_micros(now))
                .bind(to_micros(now))
                .execute(&mut *tx)
                .await;
            match inserted {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => {
                    return Err(OrchestrateError::already_exists(
                        "instance",
                        spec.key().to_string(),
                    ));
                }
                Err(e) => return Err(e.into()),
            }
            record_changes!(tx, self, now, &events);
        });
        self.local_change.notify_waiters();
        Ok(instance)
    }

    async fn deregister(&self, key: &InstanceKey) -> Result<Instance, OrchestrateError> {
        let now = self.clock.now();
        let instance = with_write_tx!(self.db, |tx| {
            let row: Option<InstanceRow> = sqlx::query_as(DELETE)
                .bind(scope_text(key.scope()))
                .bind(key.service().as_str())
                .bind(key.id().as_str())
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                return Err(not_found(key));
            };
            let instance = row.into_instance()?;
            let events = [RegistryEvent::Deregistered {
                instance: instance.clone(),
                reason: DeregisterReason::Requested,
            }];
            record_changes!(tx, self, now, &events);
            instance
        });
        self.local_change.notify_waiters();
        Ok(instance)
    }

    async fn heartbeat(&self, key: &InstanceKey) -> Result<Instance, OrchestrateError> {
        let now = self.clock.now();
        let row: Option<InstanceRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(HEARTBEAT)
                .bind(scope_text(key.scope()))
                .bind(key.service().as_str())
                .bind(key.id().as_str())
                .bind(to_micros(now))
                .fetch_optional(pool)
                .await?
        });
        row.ok_or_else(|| not_found(key))?.into_instance()
    }

    async fn set_status(
        &self,
        key: &InstanceKey,
        status: HealthStatus,
        output: &str,
    ) -> Result<Instance, OrchestrateError> {
        let output = clean_output(output);
        let now = self.clock.now();
        let (instance, changed) = with_write_tx!(self.db, |tx| {
            let mut instance = locked_instance!(tx, key);
            let from = instance.status;
            if from != status {
                instance.status = status;
                instance.status_since = now;
            }
            instance.status_output = output;
            sqlx::query(SET_STATUS)
                .bind(scope_text(key.scope()))
                .bind(key.service().as_str())
                .bind(key.id().as_str())
                .bind(instance.status.as_str())
                .bind(&instance.status_output)
                .bind(to_micros(instance.status_since))
                .execute(&mut *tx)
                .await?;
            if from != status {
                let events = [RegistryEvent::StatusChanged {
                    instance: instance.clone(),
                    from,
                    to: status,
                }];
                record_changes!(tx, self, now, &events);
            }
            (instance, from != status)
        });
        if changed {
            self.local_change.notify_waiters();
        }
        Ok(instance)
    }

    async fn get(&self, key: &InstanceKey) -> Result<Instance, OrchestrateError> {
        self.fetch(key).await?.ok_or_else(|| not_found(key))
    }

    async fn discover(&self, query: &Query) -> Result<Vec<Instance>, OrchestrateError> {
        query.validate()?;
        let (all, tenant) = visibility_binds(&query.visibility);
        let rows: Vec<InstanceRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(DISCOVER)
                .bind(all)
                .bind(tenant.as_deref())
                .bind(query.service.as_ref().map(ServiceName::as_str))
                .bind(query.environment.map(Environment::as_str))
                .bind(query.include_unhealthy)
                .fetch_all(pool)
                .await?
        });
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let instance = row.into_instance()?;
            // Tags and capabilities are JSON: filter them here (and re-check the rest).
            if query.matches(&instance) {
                out.push(instance);
            }
        }
        sort_instances(&mut out);
        Ok(out)
    }

    async fn services(
        &self,
        visibility: &Visibility,
    ) -> Result<Vec<ServiceName>, OrchestrateError> {
        let (all, tenant) = visibility_binds(visibility);
        let names: Vec<String> = with_pool!(self.db, |pool| {
            sqlx::query_scalar(SERVICES)
                .bind(all)
                .bind(tenant.as_deref())
                .fetch_all(pool)
                .await?
        });
        let names = names
            .into_iter()
            .map(|n| ServiceName::new(n).map_err(|e| corrupt("service", e)))
            .collect::<Result<BTreeSet<_>, _>>()?;
        Ok(names.into_iter().collect())
    }

    async fn deregister_critical(
        &self,
        older_than: Duration,
    ) -> Result<Vec<Instance>, OrchestrateError> {
        let now = self.clock.now();
        let Some(cutoff) = critical_cutoff(now, older_than) else {
            return Ok(Vec::new());
        };
        let removed = with_write_tx!(self.db, |tx| {
            // DELETE … RETURNING reports only the rows this transaction removed, so two
            // hosts reaping at once never both report (and announce) the same instance.
            let rows: Vec<InstanceRow> = sqlx::query_as(REAP)
                .bind(to_micros(cutoff))
                .fetch_all(&mut *tx)
                .await?;
            let mut removed = rows
                .into_iter()
                .map(InstanceRow::into_instance)
                .collect::<Result<Vec<_>, _>>()?;
            sort_instances(&mut removed);
            let events: Vec<RegistryEvent> = removed
                .iter()
                .map(|instance| RegistryEvent::Deregistered {
                    instance: instance.clone(),
                    reason: DeregisterReason::CriticalTooLong,
                })
                .collect();
            record_changes!(tx, self, now, &events);
            removed
        });
        if !removed.is_empty() {
            self.local_change.notify_waiters();
        }
        Ok(removed)
    }

    async fn watch(&self) -> Result<RegistryWatch, OrchestrateError> {
        let last: i64 = with_pool!(self.db, |pool| {
            sqlx::query_scalar(CURRENT_SEQ).fetch_one(pool).await?
        });
        let mut ticker = tokio::time::interval(self.poll_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let state = WatchState {
            db: self.db.clone(),
            local_change: self.local_change.clone(),
            ticker,
            last,
            pending: VecDeque::new(),
        };
        Ok(futures::stream::unfold(state, |mut st| async move {
            loop {
                if let Some(event) = st.pending.pop_front() {
                    return Some((event, st));
                }
                st.wait().await;
                if let Err(e) = st.poll().await {
                    // The database may be briefly unreachable: keep the position and try
                    // again at the next tick rather than end the watch.
                    tracing::warn!(error = %e, "registry watch: polling the change log failed");
                }
            }
        })
        .boxed())
    }

    async fn drain(&self, key: &InstanceKey) -> Result<Instance, OrchestrateError> {
        let now = self.clock.now();
        let (instance, changed) = with_write_tx!(self.db, |tx| {
            let mut instance = locked_instance!(tx, key);
            if instance.draining_since.is_some() {
                (instance, false)
            } else {
                instance.draining_since = Some(now);
                sqlx::query(SET_DRAINING)
                    .bind(scope_text(key.scope()))
                    .bind(key.service().as_str())
                    .bind(key.id().as_str())
                    .bind(to_micros(now))
                    .execute(&mut *tx)
                    .await?;
                let events = [RegistryEvent::Draining {
                    instance: instance.clone(),
                }];
                record_changes!(tx, self, now, &events);
                (instance, true)
            }
        });
        if changed {
            self.local_change.notify_waiters();
        }
        Ok(instance)
    }

    async fn set_maintenance(
        &self,
        key: &InstanceKey,
        reason: Option<&str>,
    ) -> Result<Instance, OrchestrateError> {
        let reason = super::store::maintenance_reason(reason)?;
        let now = self.clock.now();
        let (instance, changed) = with_write_tx!(self.db, |tx| {
            let mut instance = locked_instance!(tx, key);
            let changed = instance.maintenance.is_some() != reason.is_some();
            if changed || (reason.is_some() && instance.maintenance != reason) {
                if changed {
                    instance.maintenance_since = reason.as_ref().map(|_| now);
                }
                instance.maintenance = reason.clone();
                sqlx::query(SET_MAINTENANCE)
                    .bind(scope_text(key.scope()))
                    .bind(key.service().as_str())
                    .bind(key.id().as_str())
                    .bind(instance.maintenance.as_deref())
                    .bind(instance.maintenance_since.map(to_micros))
                    .execute(&mut *tx)
                    .await?;
                if changed {
                    let events = [RegistryEvent::Maintenance {
                        instance: instance.clone(),
                    }];
                    record_changes!(tx, self, now, &events);
                }
            }
            (instance, changed)
        });
        if changed {
            self.local_change.notify_waiters();
        }
        Ok(instance)
    }

    async fn set_policy(
        &self,
        scope: Scope,
        service: &ServiceName,
        policy: Option<TrafficPolicy>,
    ) -> Result<Option<ServicePolicy>, OrchestrateError> {
        if let Some(p) = &policy {
            p.validate()?;
        }
        let json = policy
            .as_ref()
            .map(|p| to_json("traffic policy", p))
            .transpose()?;
        let now = self.clock.now();
        let (stored, changed) = with_write_tx!(self.db, |tx| {
            sqlx::query(LOCK_POLICY)
                .bind(scope_text(scope))
                .bind(service.as_str())
                .execute(&mut *tx)
                .await?;
            let current: Option<(String, i64)> = sqlx::query_as(GET_POLICY)
                .bind(scope_text(scope))
                .bind(service.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            let current = current
                .map(|(json, at)| policy_row(scope, service, &json, at))
                .transpose()?;
            if current.as_ref().map(|c| &c.policy) == policy.as_ref() {
                (current, false)
            } else {
                let stored = match (&policy, &json) {
                    (Some(p), Some(json)) => {
                        sqlx::query(UPSERT_POLICY)
                            .bind(scope_text(scope))
                            .bind(service.as_str())
                            .bind(json)
                            .bind(to_micros(now))
                            .execute(&mut *tx)
                            .await?;
                        Some(ServicePolicy {
                            scope,
                            service: service.clone(),
                            policy: p.clone(),
                            updated_at: now,
                        })
                    }
                    _ => {
                        sqlx::query(DELETE_POLICY)
                            .bind(scope_text(scope))
                            .bind(service.as_str())
                            .execute(&mut *tx)
                            .await?;
                        None
                    }
                };
                let events = [RegistryEvent::PolicyChanged {
                    scope,
                    service: service.clone(),
                    policy: policy.clone(),
                }];
                record_changes!(tx, self, now, &events);
                (stored, true)
            }
        });
        if changed {
            self.local_change.notify_waiters();
        }
        Ok(stored)
    }

    async fn policy(
        &self,
        scope: Scope,
        service: &ServiceName,
    ) -> Result<Option<ServicePolicy>, OrchestrateError> {
        let row: Option<(String, i64)> = with_pool!(self.db, |pool| {
            sqlx::query_as(GET_POLICY)
                .bind(scope_text(scope))
                .bind(service.as_str())
                .fetch_optional(pool)
                .await?
        });
        row.map(|(json, at)| policy_row(scope, service, &json, at))
            .transpose()
    }
}

fn policy_row(
    scope: Scope,
    service: &ServiceName,
    json: &str,
    updated_at: i64,
) -> Result<ServicePolicy, OrchestrateError> {
    Ok(ServicePolicy {
        scope,
        service: service.clone(),
        policy: serde_json::from_str(json).map_err(|e| corrupt("traffic policy", e))?,
        updated_at: from_micros(updated_at)?,
    })
}

/// A SQL watch's position and buffered events.
struct WatchState {
    db: Db,
    local_change: Arc<Notify>,
    ticker: tokio::time::Interval,
    last: i64,
    pending: VecDeque<RegistryEvent>,
}

impl WatchState {
    /// Waits for the next poll: a tick, or a change made through the same handle.
    async fn wait(&mut self) {
        tokio::select! {
            _ = self.ticker.tick() => {}
            _ = self.local_change.notified() => {}
        }
    }

    /// Reads the changes after `last` into `pending`.
    async fn poll(&mut self) -> Result<(), OrchestrateError> {
        let rows: Vec<(i64, String)> = with_pool!(self.db, |pool| {
            sqlx::query_as(CHANGES_SINCE)
                .bind(self.last)
                .bind(POLL_BATCH)
                .fetch_all(pool)
                .await?
        });
        for (seq, json) in rows {
            if seq > self.last + 1 {
                // Sequence numbers have no gaps, so these were pruned before we read them.
                self.pending.push_back(RegistryEvent::Lagged {
                    missed: u64::try_from(seq - self.last - 1).unwrap_or(0),
                });
            }
            self.last = seq;
            match serde_json::from_str::<RegistryEvent>(&json) {
                Ok(event) => self.pending.push_back(event),
                Err(e) => {
                    tracing::warn!(seq, error = %e, "registry watch: unreadable change skipped");
                    self.pending.push_back(RegistryEvent::Lagged { missed: 1 });
                }
            }
        }
        Ok(())
    }
}
