//! The tamper-evident audit log.
//!
//! Every security-relevant event is an [`AuditEvent`] in its tenant's log. Each tenant's
//! events form a hash chain (see [`chain`](self#the-chain)): event *n* stores
//! `SHA-256(hash(n-1) ‖ canonical(n))`, and the store keeps the chain's head separately. So
//! editing, deleting, inserting or reordering a stored event, or cutting off the newest
//! ones, is detected by [`AuditSink::verify_chain`], which names the first broken link.
//!
//! # The chain
//!
//! The exact encoding is documented on the `chain` module source (`audit/chain.rs`) so
//! auditors can verify an export independently. A database administrator who can rewrite
//! *every* row, head included, can forge a consistent chain; to rule that out, publish
//! [`AuditSink::head`] to somewhere they cannot write (a ticket, a transparency log, a
//! signed email) and compare later.
//!
//! # Vocabulary
//!
//! Actions are named after the OWASP logging vocabulary (`authn_login_fail`, `authz_fail`,
//! `user_created`, …) plus ATE's own (`tenant_created`, `key_rotated`, …); the constants in
//! [`actions`] are the documented list. Hosts record their own events under the `app_`
//! prefix ([`AuditAction::custom`]), which ATE never uses, so host and SDK names never clash.

mod chain;
mod sql;

pub use chain::GENESIS_HASH;
pub use sql::SqlAuditSink;

pub(crate) use chain::{Encodable, canonical_json, link_hash};
pub(crate) use sql::next_event;

use crate::error::CoreError;
use crate::id::{AuditEventId, TenantId};
use crate::page::{Cursor, Page};
use crate::principal::Principal;
use chrono::{DateTime, Utc};
use std::net::IpAddr;

/// Largest accepted metadata, as canonical JSON bytes.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Longest stored user agent, in characters; longer ones are truncated (never rejected:
/// the client controls it, and a security event must not be lost to a long header).
pub const MAX_USER_AGENT_CHARS: usize = 512;
/// Longest accepted target, in bytes.
pub const MAX_TARGET_BYTES: usize = 512;

pub mod actions;

/// An action name from the documented vocabulary, or a host-defined `app_…` action.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct AuditAction(std::borrow::Cow<'static, str>);

impl AuditAction {
    const fn from_static(s: &'static str) -> Self {
        AuditAction(std::borrow::Cow::Borrowed(s))
    }

    /// Parses an action: one of [`actions::ALL`] or an `app_` action.
    pub fn new(s: &str) -> Result<Self, CoreError> {
        if let Some(known) = actions::ALL.iter().find(|a| a.as_str() == s) {
            return Ok(known.clone());
        }
        if s.starts_with("app_") {
            return AuditAction::custom(s);
        }
        Err(CoreError::invalid(
            "audit action",
            format!(
                "{:?} is not in ATE's vocabulary; host-defined actions start with \"app_\"",
                truncate(s, 80)
            ),
        ))
    }

    /// A host-defined action: `app_` followed by lowercase letters, digits and `_`,
    /// at most 64 bytes in all.
    pub fn custom(s: &str) -> Result<Self, CoreError> {
        let rest = s.strip_prefix("app_").ok_or_else(|| {
            CoreError::invalid(
                "audit action",
                format!("{:?} must start with \"app_\"", truncate(s, 80)),
            )
        })?;
        if rest.is_empty()
            || s.len() > 64
            || !rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(CoreError::invalid(
                "audit action",
                format!(
                    "{:?} must be \"app_\" plus a-z, 0-9 or '_', at most 64 bytes",
                    truncate(s, 80)
                ),
            ));
        }
        Ok(AuditAction(std::borrow::Cow::Owned(s.to_owned())))
    }

    /// The action's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditAction({})", self.0)
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for AuditAction {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, CoreError> {
        AuditAction::new(s)
    }
}

fn truncate(s: &str, max_chars: usize) -> &str {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// How the audited operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// It succeeded.
    Success,
    /// It failed (bad credentials, invalid input, backend error).
    Failure,
    /// It was refused by an authorization check.
    Denied,
}

impl Outcome {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        match s {
            "success" => Ok(Outcome::Success),
            "failure" => Ok(Outcome::Failure),
            "denied" => Ok(Outcome::Denied),
            other => Err(CoreError::invalid(
                "audit outcome",
                format!("{other:?} is not one of success, failure, denied"),
            )),
        }
    }
}

/// An event to record. The sink assigns its id, sequence number, time and hashes.
///
/// ```
/// use ate_core::audit::{actions, NewAuditEvent, Outcome};
/// use ate_core::TenantId;
///
/// let event = NewAuditEvent::new(TenantId::new(), "user:alice", actions::AUTHN_LOGIN_FAIL, Outcome::Failure)
///     .client_addr("203.0.113.9".parse().unwrap())
///     .user_agent("curl/8.0")
///     .metadata(serde_json::json!({"reason": "bad_password"}));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NewAuditEvent {
    /// The tenant whose log receives the event.
    pub tenant: TenantId,
    /// Who acted (a principal's subject, or `system:…`).
    pub actor: String,
    /// What happened.
    pub action: AuditAction,
    /// What it happened to (an id or name), if anything.
    pub target: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// The client's IP address, if known.
    pub client_addr: Option<IpAddr>,
    /// The client's user agent, if known (truncated to [`MAX_USER_AGENT_CHARS`]).
    pub user_agent: Option<String>,
    /// Structured details; must be a JSON object (or null) of at most [`MAX_METADATA_BYTES`].
    pub metadata: serde_json::Value,
}

impl NewAuditEvent {
    /// An event with no target, client details or metadata.
    pub fn new(
        tenant: TenantId,
        actor: impl Into<String>,
        action: AuditAction,
        outcome: Outcome,
    ) -> Self {
        NewAuditEvent {
            tenant,
            actor: actor.into(),
            action,
            target: None,
            outcome,
            client_addr: None,
            user_agent: None,
            metadata: serde_json::Value::Null,
        }
    }

    /// Sets the target.
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// Sets the client address.
    pub fn client_addr(mut self, addr: IpAddr) -> Self {
        self.client_addr = Some(addr);
        self
    }

    /// Sets the user agent.
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = Some(ua.into());
        self
    }

    /// Sets the metadata.
    pub fn metadata(mut self, metadata: serde_json::Value) -> Self {
        self.metadata = metadata;
        self
    }

    /// Checks and normalizes the event: the metadata becomes canonical JSON text, the user
    /// agent is truncated with control characters replaced. Stores call it before opening
    /// the transaction they audit in, then append the result with
    /// [`CoreTx::append_audit`](crate::CoreTx::append_audit), so a bad event fails before
    /// anything is written. Errors: `InvalidInput` naming the field.
    pub fn validate(&self) -> Result<ValidEvent, CoreError> {
        if self.actor.is_empty()
            || self.actor.len() > 256
            || self.actor.chars().any(char::is_control)
        {
            return Err(CoreError::invalid(
                "audit actor",
                "must be 1 to 256 bytes without control characters",
            ));
        }
        if let Some(t) = &self.target
            && (t.len() > MAX_TARGET_BYTES || t.chars().any(char::is_control))
        {
            return Err(CoreError::invalid(
                "audit target",
                format!("must be at most {MAX_TARGET_BYTES} bytes without control characters"),
            ));
        }
        let metadata = match &self.metadata {
            serde_json::Value::Null => "{}".to_owned(),
            v @ serde_json::Value::Object(_) => canonical_json(v),
            _ => {
                return Err(CoreError::invalid(
                    "audit metadata",
                    "must be a JSON object or null",
                ));
            }
        };
        if metadata.len() > MAX_METADATA_BYTES {
            return Err(CoreError::invalid(
                "audit metadata",
                format!(
                    "is {} bytes as canonical JSON; the limit is {MAX_METADATA_BYTES}",
                    metadata.len()
                ),
            ));
        }
        let user_agent = self.user_agent.as_deref().map(|ua| {
            ua.chars()
                .take(MAX_USER_AGENT_CHARS)
                .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
                .collect::<String>()
        });
        Ok(ValidEvent {
            tenant: self.tenant,
            actor: self.actor.clone(),
            action: self.action.as_str().to_owned(),
            target: self.target.clone(),
            outcome: self.outcome,
            client_addr: self.client_addr.map(|a| a.to_string()),
            user_agent,
            metadata,
        })
    }
}

/// An event that passed [`NewAuditEvent::validate`], in the form it will be stored; append
/// it with [`CoreTx::append_audit`](crate::CoreTx::append_audit).
#[derive(Debug, Clone)]
pub struct ValidEvent {
    pub(crate) tenant: TenantId,
    pub(crate) actor: String,
    pub(crate) action: String,
    pub(crate) target: Option<String>,
    pub(crate) outcome: Outcome,
    pub(crate) client_addr: Option<String>,
    pub(crate) user_agent: Option<String>,
    pub(crate) metadata: String,
}

impl ValidEvent {
    /// The tenant whose chain the event joins.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct AuditEvent {
    /// Unique id.
    pub id: AuditEventId,
    /// The tenant whose log holds it.
    pub tenant: TenantId,
    /// Position in the tenant's chain, starting at 1.
    pub seq: u64,
    /// When it was recorded.
    pub occurred_at: DateTime<Utc>,
    /// Who acted.
    pub actor: String,
    /// What happened.
    pub action: AuditAction,
    /// What it happened to.
    pub target: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// The client's IP address.
    pub client_addr: Option<IpAddr>,
    /// The client's user agent (possibly truncated).
    pub user_agent: Option<String>,
    /// Structured details (a JSON object).
    pub metadata: serde_json::Value,
    /// The previous event's hash (or [`GENESIS_HASH`]).
    #[serde(with = "hex_bytes")]
    pub prev_hash: [u8; 32],
    /// This event's hash.
    #[serde(with = "hex_bytes")]
    pub hash: [u8; 32],
}

mod hex_bytes {
    pub(super) fn serialize<S: serde::Serializer>(b: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }
}

/// Result order for [`AuditQuery`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Order {
    /// Oldest first (the default).
    #[default]
    OldestFirst,
    /// Newest first.
    NewestFirst,
}

/// What to read from one tenant's log.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AuditQuery {
    /// The tenant whose log to read.
    pub tenant: TenantId,
    /// Only events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only events before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only events with this action.
    pub action: Option<AuditAction>,
    /// Only events by this actor.
    pub actor: Option<String>,
    /// Result order (by sequence number).
    pub order: Order,
    /// Page size, 1 to 1000 (default 50).
    pub limit: Option<u32>,
    /// Continue after the page that returned this cursor.
    pub cursor: Option<Cursor>,
}

impl AuditQuery {
    /// Every event of `tenant`, oldest first.
    pub fn tenant(tenant: TenantId) -> Self {
        AuditQuery {
            tenant,
            since: None,
            until: None,
            action: None,
            actor: None,
            order: Order::OldestFirst,
            limit: None,
            cursor: None,
        }
    }
    /// Only events at or after `t`.
    pub fn since(mut self, t: DateTime<Utc>) -> Self {
        self.since = Some(t);
        self
    }
    /// Only events before `t`.
    pub fn until(mut self, t: DateTime<Utc>) -> Self {
        self.until = Some(t);
        self
    }
    /// Only events with `action`.
    pub fn action(mut self, action: AuditAction) -> Self {
        self.action = Some(action);
        self
    }
    /// Only events by `actor`.
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }
    /// Sets the order.
    pub fn order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }
    /// Sets the page size.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }
    /// Continues from a cursor.
    pub fn cursor(mut self, cursor: Option<Cursor>) -> Self {
        self.cursor = cursor;
        self
    }
}

/// The newest link of a tenant's chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ChainHead {
    /// Sequence number of the newest event (0 for an empty log).
    pub seq: u64,
    /// Its hash ([`GENESIS_HASH`] for an empty log).
    #[serde(with = "hex_bytes")]
    pub hash: [u8; 32],
}

/// What is wrong at a broken link.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChainProblem {
    /// The event's content no longer matches its stored hash: it was edited.
    ContentModified,
    /// The event's `prev_hash` is not the previous event's hash: an event was replaced or
    /// inserted, or the chain was re-spliced.
    LinkBroken,
    /// A sequence number is missing: events were deleted.
    Missing {
        /// The sequence number that should have come next.
        expected_seq: u64,
    },
    /// The stored chain head does not match the last event: the newest events were removed
    /// or the head was altered.
    HeadMismatch {
        /// The head's recorded sequence number.
        head_seq: u64,
    },
    /// A stored field cannot be decoded (for example a malformed id or address).
    Unreadable {
        /// What could not be decoded.
        detail: String,
    },
}

/// Where and how a chain first breaks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ChainBreak {
    /// Sequence number of the first bad link.
    pub seq: u64,
    /// The problem found there.
    #[serde(flatten)]
    pub problem: ChainProblem,
}

impl std::fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.problem {
            ChainProblem::ContentModified => write!(f, "event {} was modified", self.seq),
            ChainProblem::LinkBroken => write!(
                f,
                "event {} does not link to its predecessor (replaced or inserted)",
                self.seq
            ),
            ChainProblem::Missing { expected_seq } => write!(
                f,
                "event {expected_seq} is missing (found {} next)",
                self.seq
            ),
            ChainProblem::HeadMismatch { head_seq } => write!(
                f,
                "the chain ends at event {} but its head says {head_seq}: events were removed or the head altered",
                self.seq
            ),
            ChainProblem::Unreadable { detail } => {
                write!(f, "event {} cannot be read: {detail}", self.seq)
            }
        }
    }
}

/// The result of [`AuditSink::verify_chain`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ChainReport {
    /// The tenant checked.
    pub tenant: TenantId,
    /// How many events were checked (up to the first break).
    pub events_checked: u64,
    /// The head as stored.
    pub head: ChainHead,
    /// The first broken link, if any.
    pub first_break: Option<ChainBreak>,
}

impl ChainReport {
    /// Whether the whole chain verified.
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }
}

/// Records and reads audit events.
///
/// Behavior contract (checked by the conformance suite on every backend):
///
/// * `append` assigns consecutive sequence numbers per tenant starting at 1, even under
///   concurrent appends from many tasks or processes; it never forks a chain.
/// * `append` to an unknown tenant is `NotFound`, to a deleted one `Conflict`; appends to a
///   suspended tenant succeed (its security events must still be recorded).
/// * Invalid events (oversized metadata, metadata that is not an object, a control character
///   in the actor) are `InvalidInput` and append nothing.
/// * `query`, `head` and `verify_chain` need [`Permission::AUDIT_READ`](crate::Permission::AUDIT_READ)
///   in the tenant (or a platform administrator). Appending trusts its caller: it is the
///   recording side, fed by ATE components and the host.
/// * `verify_chain` reports the first broken link; it reads in batches, so its memory use
///   does not grow with the log.
#[async_trait::async_trait]
pub trait AuditSink: Send + Sync + std::fmt::Debug {
    /// Appends one event to its tenant's chain.
    async fn append(&self, event: NewAuditEvent) -> Result<AuditEvent, CoreError>;

    /// Reads events of one tenant, one page at a time.
    async fn query(
        &self,
        actor: &Principal,
        query: AuditQuery,
    ) -> Result<Page<AuditEvent>, CoreError>;

    /// The chain's newest link, for anchoring outside the database.
    async fn head(&self, actor: &Principal, tenant: TenantId) -> Result<ChainHead, CoreError>;

    /// Recomputes the tenant's chain and reports the first broken link.
    async fn verify_chain(
        &self,
        actor: &Principal,
        tenant: TenantId,
    ) -> Result<ChainReport, CoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_names_are_well_formed_and_unique() {
        let mut names: Vec<&str> = actions::ALL.iter().map(|a| a.as_str()).collect();
        for n in &names {
            assert!(
                n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{n}"
            );
            assert!(!n.starts_with("app_"));
            assert_eq!(AuditAction::new(n).unwrap().as_str(), *n);
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), actions::ALL.len());
    }

    #[test]
    fn custom_actions_need_the_app_prefix() {
        assert!(AuditAction::new("app_invoice_paid").is_ok());
        for bad in [
            "invoice_paid",
            "app_",
            "app_Invoice",
            "app_a-b",
            "",
            &format!("app_{}", "x".repeat(61)),
        ] {
            assert!(AuditAction::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn validation_rejects_bad_events() {
        let t = TenantId::new();
        let base = NewAuditEvent::new(t, "user:a", actions::AUTHZ_FAIL, Outcome::Denied);
        assert_eq!(base.validate().unwrap().metadata, "{}");
        let big = serde_json::json!({ "blob": "x".repeat(MAX_METADATA_BYTES) });
        let e = base.clone().metadata(big).validate().unwrap_err();
        assert!(e.to_string().contains("the limit is 16384"), "{e}");
        assert!(
            base.clone()
                .metadata(serde_json::json!([1]))
                .validate()
                .is_err()
        );
        assert!(
            base.clone()
                .metadata(serde_json::json!("s"))
                .validate()
                .is_err()
        );
        let mut bad_actor = base.clone();
        bad_actor.actor = "a\nforged line".into();
        assert!(bad_actor.validate().is_err());
        assert!(base.clone().target("x".repeat(513)).validate().is_err());
    }

    #[test]
    fn long_or_hostile_user_agents_are_kept_but_tamed() {
        let t = TenantId::new();
        let ua = format!("evil\r\nX-Injected: 1{}", "a".repeat(1000));
        let v = NewAuditEvent::new(t, "user:a", actions::AUTHN_LOGIN_FAIL, Outcome::Failure)
            .user_agent(ua)
            .validate()
            .unwrap();
        let stored = v.user_agent.unwrap();
        assert_eq!(stored.chars().count(), MAX_USER_AGENT_CHARS);
        assert!(!stored.contains('\n') && !stored.contains('\r'));
    }
}
