//! [`AuditSink`] over SQLite and PostgreSQL.

use super::{
    AuditEvent, AuditQuery, AuditSink, ChainBreak, ChainHead, ChainProblem, ChainReport, Encodable,
    GENESIS_HASH, NewAuditEvent, Order, Outcome, ValidEvent, link_hash,
};
use crate::clock::{Clock, SystemClock};
use crate::db::{Db, from_micros, to_micros};
use crate::error::CoreError;
use crate::id::{AuditEventId, TenantId};
use crate::page::{Page, page_from_rows, page_size};
use crate::principal::{Permission, Principal};
use crate::tenant::TenantStatus;
use crate::tx::CoreTx;
use crate::{with_pool, with_write_tx};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use uuid::Uuid;

const VERIFY_BATCH: i64 = 500;
const CURSOR_KIND: &str = "audit";

/// The audit log in the `audit_events` and `audit_chain_heads` tables of a [`Db`].
#[derive(Debug, Clone)]
pub struct SqlAuditSink {
    db: Db,
    clock: Arc<dyn Clock>,
}

impl SqlAuditSink {
    /// A sink over `db` (whose core migrations ran when it was opened).
    pub fn new(db: Db) -> Self {
        SqlAuditSink {
            db,
            clock: Arc::new(SystemClock),
        }
    }

    /// Uses `clock` for event times instead of the system clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

/// An `audit_events` row as stored.
#[derive(Debug, sqlx::FromRow)]
struct AuditRow {
    tenant_id: Uuid,
    seq: i64,
    id: Uuid,
    occurred_at: i64,
    actor: String,
    action: String,
    target: Option<String>,
    outcome: String,
    client_addr: Option<String>,
    user_agent: Option<String>,
    metadata: String,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
}

/// The columns of [`AuditRow`], for `concat!` into queries.
macro_rules! audit_columns {
    () => {
        "tenant_id, seq, id, occurred_at, actor, action, target, outcome, \
         client_addr, user_agent, metadata, prev_hash, hash"
    };
}

impl AuditRow {
    fn encodable<'a>(&'a self, id: &'a [u8; 16], tenant: &'a [u8; 16]) -> Encodable<'a> {
        Encodable {
            id,
            tenant,
            seq: self.seq as u64,
            occurred_at_micros: self.occurred_at,
            actor: &self.actor,
            action: &self.action,
            target: self.target.as_deref(),
            outcome: &self.outcome,
            client_addr: self.client_addr.as_deref(),
            user_agent: self.user_agent.as_deref(),
            metadata: &self.metadata,
        }
    }

    fn into_event(self) -> Result<AuditEvent, CoreError> {
        let corrupt = |what: &str| {
            CoreError::Integrity(format!(
                "audit event {} of tenant {} has an unreadable {what}",
                self.seq, self.tenant_id
            ))
        };
        Ok(AuditEvent {
            id: AuditEventId::from_uuid(self.id).map_err(|_| corrupt("id"))?,
            tenant: TenantId::from_uuid(self.tenant_id).map_err(|_| corrupt("tenant id"))?,
            seq: u64::try_from(self.seq).map_err(|_| corrupt("sequence number"))?,
            occurred_at: from_micros(self.occurred_at)?,
            actor: self.actor.clone(),
            action: super::AuditAction::new(&self.action).map_err(|_| corrupt("action"))?,
            target: self.target.clone(),
            outcome: Outcome::parse(&self.outcome).map_err(|_| corrupt("outcome"))?,
            client_addr: match &self.client_addr {
                None => None,
                Some(a) => Some(a.parse().map_err(|_| corrupt("client address"))?),
            },
            user_agent: self.user_agent.clone(),
            metadata: serde_json::from_str(&self.metadata).map_err(|_| corrupt("metadata"))?,
            prev_hash: self
                .prev_hash
                .as_slice()
                .try_into()
                .map_err(|_| corrupt("previous hash"))?,
            hash: self
                .hash
                .as_slice()
                .try_into()
                .map_err(|_| corrupt("hash"))?,
        })
    }
}

/// Builds the stored form of the next event in a chain: assigns id and time, computes the
/// link hash.
pub(crate) fn next_event(
    ev: &ValidEvent,
    seq: i64,
    prev_hash: &[u8],
    now: DateTime<Utc>,
) -> Result<AuditEvent, CoreError> {
    let prev: [u8; 32] = prev_hash.try_into().map_err(|_| {
        CoreError::Integrity(format!(
            "the audit chain head of tenant {} is corrupt",
            ev.tenant
        ))
    })?;
    let id = AuditEventId::new();
    let hash = link_hash(
        &prev,
        &Encodable {
            id: id.as_bytes(),
            tenant: ev.tenant.as_bytes(),
            seq: seq as u64,
            occurred_at_micros: to_micros(now),
            actor: &ev.actor,
            action: &ev.action,
            target: ev.target.as_deref(),
            outcome: ev.outcome.as_str(),
            client_addr: ev.client_addr.as_deref(),
            user_agent: ev.user_agent.as_deref(),
            metadata: &ev.metadata,
        },
    );
    Ok(AuditEvent {
        id,
        tenant: ev.tenant,
        seq: seq as u64,
        occurred_at: now,
        actor: ev.actor.clone(),
        action: super::AuditAction::new(&ev.action)?,
        target: ev.target.clone(),
        outcome: ev.outcome,
        client_addr: ev.client_addr.as_deref().and_then(|a| a.parse().ok()),
        user_agent: ev.user_agent.clone(),
        metadata: serde_json::from_str(&ev.metadata)
            .map_err(|e| CoreError::Internal(format!("canonical metadata did not parse: {e}")))?,
        prev_hash: prev,
        hash,
    })
}

/// Decides whether `actor` may read `tenant`'s audit log, given the tenant's status.
pub(crate) fn check_read_access(
    actor: &Principal,
    tenant: TenantId,
    status: Option<TenantStatus>,
    permission: &Permission,
) -> Result<(), CoreError> {
    actor.require(tenant, permission)?;
    match status {
        None => Err(CoreError::not_found("tenant", tenant)),
        Some(TenantStatus::Deleted) if !actor.is_platform_admin() => {
            Err(CoreError::not_found("tenant", tenant))
        }
        Some(TenantStatus::Suspended) if !actor.is_platform_admin() => Err(
            CoreError::PermissionDenied(format!("tenant {tenant} is suspended")),
        ),
        Some(_) => Ok(()),
    }
}

impl SqlAuditSink {
    async fn tenant_status(&self, tenant: TenantId) -> Result<Option<TenantStatus>, CoreError> {
        let status: Option<String> = with_pool!(self.db, |pool| {
            sqlx::query_scalar("SELECT status FROM tenants WHERE id = $1")
                .bind(tenant.as_uuid())
                .fetch_optional(pool)
                .await?
        });
        status.as_deref().map(TenantStatus::parse).transpose()
    }

    async fn authorize_read(&self, actor: &Principal, tenant: TenantId) -> Result<(), CoreError> {
        // Check the permission before touching the database, so a denied caller learns
        // nothing about which tenants exist.
        actor.require(tenant, &Permission::AUDIT_READ)?;
        let status = self.tenant_status(tenant).await?;
        check_read_access(actor, tenant, status, &Permission::AUDIT_READ)
    }

    async fn read_head(&self, tenant: TenantId) -> Result<ChainHead, CoreError> {
        let row: Option<(i64, Vec<u8>)> = with_pool!(self.db, |pool| {
            sqlx::query_as("SELECT seq, head_hash FROM audit_chain_heads WHERE tenant_id = $1")
                .bind(tenant.as_uuid())
                .fetch_optional(pool)
                .await?
        });
        Ok(match row {
            None => ChainHead {
                seq: 0,
                hash: GENESIS_HASH,
            },
            Some((seq, hash)) => ChainHead {
                seq: seq as u64,
                hash: hash.as_slice().try_into().map_err(|_| {
                    CoreError::Integrity(format!(
                        "the audit chain head of tenant {tenant} is corrupt"
                    ))
                })?,
            },
        })
    }
}

#[async_trait::async_trait]
impl AuditSink for SqlAuditSink {
    async fn append(&self, event: NewAuditEvent) -> Result<AuditEvent, CoreError> {
        let valid = event.validate()?;
        let now = self.clock.now();
        let stored = with_write_tx!(self.db, |tx| {
            // The tenant check rides on the statement that takes the chain's head.
            match tx.append_audit_if_live(&valid, now).await? {
                Some(stored) => stored,
                // Refused: say why (the rare path pays the extra read).
                None => {
                    let status: Option<String> =
                        sqlx::query_scalar("SELECT status FROM tenants WHERE id = $1")
                            .bind(valid.tenant.as_uuid())
                            .fetch_optional(&mut *tx)
                            .await?;
                    return Err(match status {
                        None => CoreError::not_found("tenant", valid.tenant),
                        Some(_) => CoreError::Conflict(format!(
                            "tenant {} is deleted; its audit log is closed",
                            valid.tenant
                        )),
                    });
                }
            }
        });
        Ok(stored)
    }

    async fn query(
        &self,
        actor: &Principal,
        query: AuditQuery,
    ) -> Result<Page<AuditEvent>, CoreError> {
        let limit = page_size(query.limit)?;
        if let (Some(since), Some(until)) = (query.since, query.until)
            && since > until
        {
            return Err(CoreError::invalid(
                "audit query",
                format!("time range is reversed: since {since} is after until {until}"),
            ));
        }
        let after: Option<i64> = match &query.cursor {
            None => None,
            Some(c) => Some(c.decode(CURSOR_KIND)?.parse().map_err(|_| {
                CoreError::invalid("cursor", "not a cursor issued by this listing")
            })?),
        };
        self.authorize_read(actor, query.tenant).await?;
        let sql = match query.order {
            Order::OldestFirst => ASC_QUERY,
            Order::NewestFirst => DESC_QUERY,
        };
        // Fetch one extra row to learn whether another page follows.
        let fetch = i64::from(limit) + 1;
        let rows: Vec<AuditRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(sql)
                .bind(query.tenant.as_uuid())
                .bind(after)
                .bind(query.since.map(to_micros))
                .bind(query.until.map(to_micros))
                .bind(query.action.as_ref().map(|a| a.as_str().to_owned()))
                .bind(query.actor.clone())
                .bind(fetch)
                .fetch_all(pool)
                .await?
        });
        page_from_rows(rows, limit, AuditRow::into_event, CURSOR_KIND, |e| {
            e.seq.to_string()
        })
    }

    async fn head(&self, actor: &Principal, tenant: TenantId) -> Result<ChainHead, CoreError> {
        self.authorize_read(actor, tenant).await?;
        self.read_head(tenant).await
    }

    async fn verify_chain(
        &self,
        actor: &Principal,
        tenant: TenantId,
    ) -> Result<ChainReport, CoreError> {
        self.authorize_read(actor, tenant).await?;
        // Read the head first: events appended while we verify come after it and are not
        // part of this report.
        let head = self.read_head(tenant).await?;
        let report = |checked: u64, first_break: Option<ChainBreak>| ChainReport {
            tenant,
            events_checked: checked,
            head,
            first_break,
        };
        let mut prev = GENESIS_HASH;
        let mut expected: u64 = 1;
        let mut checked: u64 = 0;
        loop {
            let after = (expected - 1) as i64;
            let rows: Vec<AuditRow> = with_pool!(self.db, |pool| {
                sqlx::query_as(VERIFY_QUERY)
                    .bind(tenant.as_uuid())
                    .bind(after)
                    .bind(head.seq as i64)
                    .bind(VERIFY_BATCH)
                    .fetch_all(pool)
                    .await?
            });
            let batch_len = rows.len();
            for row in rows {
                let seq = row.seq as u64;
                if seq != expected {
                    let problem = ChainProblem::Missing {
                        expected_seq: expected,
                    };
                    return Ok(report(checked, Some(ChainBreak { seq, problem })));
                }
                if row.prev_hash.as_slice() != prev.as_slice() {
                    let problem = ChainProblem::LinkBroken;
                    return Ok(report(checked, Some(ChainBreak { seq, problem })));
                }
                let recomputed = link_hash(
                    &prev,
                    &row.encodable(row.id.as_bytes(), row.tenant_id.as_bytes()),
                );
                if row.hash.as_slice() != recomputed.as_slice() {
                    let problem = ChainProblem::ContentModified;
                    return Ok(report(checked, Some(ChainBreak { seq, problem })));
                }
                if let Err(e) = row.into_event() {
                    let problem = ChainProblem::Unreadable {
                        detail: e.to_string(),
                    };
                    return Ok(report(checked, Some(ChainBreak { seq, problem })));
                }
                prev = recomputed;
                expected += 1;
                checked += 1;
            }
            if batch_len < VERIFY_BATCH as usize {
                break;
            }
        }
        let last_seq = expected - 1;
        if last_seq != head.seq || prev != head.hash {
            let problem = ChainProblem::HeadMismatch { head_seq: head.seq };
            return Ok(report(
                checked,
                Some(ChainBreak {
                    seq: last_seq,
                    problem,
                }),
            ));
        }
        Ok(report(checked, None))
    }
}

/// Filters: `$2` cursor, `$3`/`$4` time range, `$5` action, `$6` actor, `$7` limit.
macro_rules! filtered_query {
    ($cmp:literal, $dir:literal) => {
        concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_events WHERE tenant_id = $1 AND ($2 IS NULL OR seq ",
            $cmp,
            " $2) AND ($3 IS NULL OR occurred_at >= $3) AND ($4 IS NULL OR occurred_at < $4) \
             AND ($5 IS NULL OR action = $5) AND ($6 IS NULL OR actor = $6) ORDER BY seq ",
            $dir,
            " LIMIT $7"
        )
    };
}
const ASC_QUERY: &str = filtered_query!(">", "ASC");
const DESC_QUERY: &str = filtered_query!("<", "DESC");
/// Events after `$2` up to the head's `$3`, `$4` at a time.
const VERIFY_QUERY: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM audit_events WHERE tenant_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq ASC LIMIT $4"
);
