//! [`SqlIntegrations`]: a tenant's endpoints in the `integration_endpoints` table of a
//! [`Db`], their one secret sealed under the tenant's keys ([`TenantSecrets`]).
//!
//! Reads ([`Endpoint`]) show the URL, method, headers, auth kind and the auth settings that
//! are not secret; the secret is opened only to make a call ([`SqlIntegrations::resolve`]).

use super::spec::{EndpointAuth, EndpointName, EndpointSpec};
use crate::OrchestrateError;
use ate_core::audit::{AuditAction, NewAuditEvent, Outcome, actions};
use ate_core::db::{from_micros, to_micros};
use ate_core::keys::{SecretBytes, TenantSecrets};
use ate_core::{
    Clock, CoreError, CoreTx, Db, Permission, Principal, SystemClock, TenantId, with_pool,
    with_write_tx,
};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Read a tenant's integration endpoints (never their secrets).
pub const INTEGRATIONS_READ: Permission = Permission::from_static("integrations:read");
/// Register, change and delete a tenant's integration endpoints.
pub const INTEGRATIONS_WRITE: Permission = Permission::from_static("integrations:write");
/// Call or probe a tenant's integration endpoints.
pub const INTEGRATIONS_CALL: Permission = Permission::from_static("integrations:call");

/// A registered endpoint as reads show it: nothing secret.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Endpoint {
    /// Its tenant.
    pub tenant: TenantId,
    /// Its name.
    pub name: EndpointName,
    /// Where calls go.
    pub url: String,
    /// The HTTP method of calls.
    pub method: String,
    /// Extra headers.
    pub headers: BTreeMap<String, String>,
    /// The auth kind ([`EndpointAuth::kind`]).
    pub auth_kind: String,
    /// The auth settings that are not secret ([`EndpointAuth::public_params`]).
    pub auth_params: BTreeMap<String, String>,
    /// Whether a secret is stored (sealed).
    pub has_secret: bool,
    /// The call timeout.
    pub timeout: Duration,
    /// Who registered it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Grows with every change.
    pub revision: i64,
}

/// An endpoint with its auth opened, to make a call. `Debug` shows no secret.
#[derive(Debug, Clone)]
pub struct ResolvedEndpoint {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// Its auth, secret included.
    pub auth: EndpointAuth,
}

macro_rules! endpoint_columns {
    () => {
        "id, tenant_id, name, url, method, headers, auth_kind, auth_params, secret, timeout_ms, \
         created_by, created_at, updated_at, revision"
    };
}

#[derive(sqlx::FromRow)]
struct EndpointRow {
    #[allow(dead_code)] // read with the others; the name is the handle
    id: Uuid,
    tenant_id: Uuid,
    name: String,
    url: String,
    method: String,
    headers: String,
    auth_kind: String,
    auth_params: String,
    secret: Option<Vec<u8>>,
    timeout_ms: i64,
    created_by: String,
    created_at: i64,
    updated_at: i64,
    revision: i64,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> OrchestrateError {
    OrchestrateError::Core(CoreError::Integrity(format!(
        "stored integration endpoint has a bad {what}: {e}"
    )))
}

impl EndpointRow {
    fn endpoint(&self) -> Result<Endpoint, OrchestrateError> {
        Ok(Endpoint {
            tenant: TenantId::from_uuid(self.tenant_id)?,
            name: EndpointName::new(self.name.as_str()).map_err(|e| corrupt("name", e))?,
            url: self.url.clone(),
            method: self.method.clone(),
            headers: serde_json::from_str(&self.headers).map_err(|e| corrupt("headers", e))?,
            auth_kind: self.auth_kind.clone(),
            auth_params: serde_json::from_str(&self.auth_params)
                .map_err(|e| corrupt("auth params", e))?,
            has_secret: self.secret.is_some(),
            timeout: Duration::from_millis(u64::try_from(self.timeout_ms).unwrap_or(0)),
            created_by: self.created_by.clone(),
            created_at: from_micros(self.created_at)?,
            updated_at: from_micros(self.updated_at)?,
            revision: self.revision,
        })
    }
}

/// The context a secret is sealed to: the endpoint's name, so a sealed secret copied to
/// another endpoint (or tenant) does not open.
fn secret_context(name: &str) -> Vec<u8> {
    format!("ate.integration-endpoint.v1\0{name}").into_bytes()
}

/// Integration endpoints in a [`Db`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct SqlIntegrations {
    db: Db,
    secrets: Arc<dyn TenantSecrets>,
    clock: Arc<dyn Clock>,
}

impl SqlIntegrations {
    /// Opens the store in `db` (running this crate's migrations), sealing secrets with
    /// `secrets` (the storage keyring, so they go with the tenant's keys; or
    /// [`MasterKeySecrets`](ate_core::keys::MasterKeySecrets)).
    pub async fn open(db: Db, secrets: Arc<dyn TenantSecrets>) -> Result<Self, OrchestrateError> {
        db.migrate(&crate::migrations()).await?;
        Ok(SqlIntegrations {
            db,
            secrets,
            clock: Arc::new(SystemClock),
        })
    }

    /// Uses `clock` for the times it records.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Registers `spec` for `tenant`, its secret sealed. Needs [`INTEGRATIONS_WRITE`];
    /// `AlreadyExists` for a taken name; audited as `integration_created` (with the auth
    /// kind, never the secret). The tenant must be active.
    pub async fn create(
        &self,
        actor: &Principal,
        tenant: TenantId,
        spec: &EndpointSpec,
    ) -> Result<Endpoint, OrchestrateError> {
        self.write(actor, tenant, spec, false).await
    }

    /// Replaces endpoint `spec.name` (URL, method, headers, auth and secret, timeout).
    /// Needs [`INTEGRATIONS_WRITE`]; `NotFound` for an unknown name; audited as
    /// `integration_updated`.
    pub async fn update(
        &self,
        actor: &Principal,
        tenant: TenantId,
        spec: &EndpointSpec,
    ) -> Result<Endpoint, OrchestrateError> {
        self.write(actor, tenant, spec, true).await
    }

    async fn write(
        &self,
        actor: &Principal,
        tenant: TenantId,
        spec: &EndpointSpec,
        replace: bool,
    ) -> Result<Endpoint, OrchestrateError> {
        actor.require(tenant, &INTEGRATIONS_WRITE)?;
        let name = spec.validate()?;
        let sealed = match spec.auth.secret() {
            Some(secret) => Some(
                self.secrets
                    .seal(
                        tenant,
                        secret.expose_secret(),
                        &secret_context(name.as_str()),
                    )
                    .await?,
            ),
            None => None,
        };
        let now = self.clock.now();
        let headers = serde_json::to_string(&spec.headers).map_err(|e| corrupt("headers", e))?;
        let params = serde_json::to_string(&spec.auth.public_params())
            .map_err(|e| corrupt("auth params", e))?;
        let timeout_ms = i64::try_from(spec.timeout.as_millis()).unwrap_or(i64::MAX);
        let action = if replace {
            actions::INTEGRATION_UPDATED
        } else {
            actions::INTEGRATION_CREATED
        };
        let event = event(tenant, actor, action, name.as_str())
            .metadata(json!({"url": spec.url, "method": spec.method, "auth": spec.auth.kind()}))
            .validate()?;
        // true: written; false: the name was taken (create) or unknown (update).
        let written: bool = with_write_tx!(self.db, |tx| {
            tx.lock_tenant(tenant).await?.require_active()?;
            let existing: Option<Uuid> = sqlx::query_scalar(
                "SELECT id FROM integration_endpoints WHERE tenant_id = $1 AND name = $2",
            )
            .bind(tenant.as_uuid())
            .bind(name.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            let ok = existing.is_some() == replace;
            if ok && replace {
                sqlx::query(
                    "UPDATE integration_endpoints SET url = $3, method = $4, headers = $5, \
                     auth_kind = $6, auth_params = $7, secret = $8, timeout_ms = $9, \
                     updated_at = $10, revision = revision + 1 \
                     WHERE tenant_id = $1 AND name = $2",
                )
                .bind(tenant.as_uuid())
                .bind(name.as_str())
                .bind(&spec.url)
                .bind(&spec.method)
                .bind(&headers)
                .bind(spec.auth.kind())
                .bind(&params)
                .bind(sealed.as_deref())
                .bind(timeout_ms)
                .bind(to_micros(now))
                .execute(&mut *tx)
                .await?;
            } else if ok {
                sqlx::query(concat!(
                    "INSERT INTO integration_endpoints (",
                    endpoint_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, 1)"
                ))
                .bind(Uuid::now_v7())
                .bind(tenant.as_uuid())
                .bind(name.as_str())
                .bind(&spec.url)
                .bind(&spec.method)
                .bind(&headers)
                .bind(spec.auth.kind())
                .bind(&params)
                .bind(sealed.as_deref())
                .bind(timeout_ms)
                .bind(actor.subject())
                .bind(to_micros(now))
                .execute(&mut *tx)
                .await?;
            }
            if ok {
                tx.append_audit(&event, now).await?;
            }
            ok
        });
        match (written, replace) {
            (true, _) => self.load(tenant, name.as_str()).await?.endpoint(),
            (false, false) => Err(OrchestrateError::already_exists("endpoint", name)),
            (false, true) => Err(OrchestrateError::not_found("endpoint", name)),
        }
    }

    /// The row of endpoint `name`; `InvalidInput` for a string that cannot be a name.
    async fn load(&self, tenant: TenantId, name: &str) -> Result<EndpointRow, OrchestrateError> {
        EndpointName::new(name)?;
        let row: Option<EndpointRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                endpoint_columns!(),
                " FROM integration_endpoints WHERE tenant_id = $1 AND name = $2"
            ))
            .bind(tenant.as_uuid())
            .bind(name)
            .fetch_optional(pool)
            .await?
        });
        row.ok_or_else(|| OrchestrateError::not_found("endpoint", name))
    }

    /// Endpoint `name` of `tenant` (nothing secret). Needs [`INTEGRATIONS_READ`].
    pub async fn get(
        &self,
        actor: &Principal,
        tenant: TenantId,
        name: &str,
    ) -> Result<Endpoint, OrchestrateError> {
        actor.require(tenant, &INTEGRATIONS_READ)?;
        self.load(tenant, name).await?.endpoint()
    }

    /// `tenant`'s endpoints, by name. Needs [`INTEGRATIONS_READ`].
    pub async fn list(
        &self,
        actor: &Principal,
        tenant: TenantId,
    ) -> Result<Vec<Endpoint>, OrchestrateError> {
        actor.require(tenant, &INTEGRATIONS_READ)?;
        let rows: Vec<EndpointRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                endpoint_columns!(),
                " FROM integration_endpoints WHERE tenant_id = $1 ORDER BY name"
            ))
            .bind(tenant.as_uuid())
            .fetch_all(pool)
            .await?
        });
        rows.iter().map(EndpointRow::endpoint).collect()
    }

    /// Deletes endpoint `name`. Needs [`INTEGRATIONS_WRITE`]; `NotFound` for an unknown
    /// name; audited as `integration_deleted`.
    pub async fn delete(
        &self,
        actor: &Principal,
        tenant: TenantId,
        name: &str,
    ) -> Result<(), OrchestrateError> {
        actor.require(tenant, &INTEGRATIONS_WRITE)?;
        EndpointName::new(name)?;
        let now = self.clock.now();
        let event = event(tenant, actor, actions::INTEGRATION_DELETED, name).validate()?;
        let gone: u64 = with_write_tx!(self.db, |tx| {
            tx.lock_tenant(tenant).await?;
            let gone =
                sqlx::query("DELETE FROM integration_endpoints WHERE tenant_id = $1 AND name = $2")
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
        if gone == 0 {
            return Err(OrchestrateError::not_found("endpoint", name));
        }
        Ok(())
    }

    /// Endpoint `name` with its secret opened, to make a call. For the engine's built-in
    /// step and for [`IntegrationClient`](super::IntegrationClient) after its own check:
    /// no principal is checked here.
    pub async fn resolve(
        &self,
        tenant: TenantId,
        name: &str,
    ) -> Result<ResolvedEndpoint, OrchestrateError> {
        let row = self.load(tenant, name).await?;
        let endpoint = row.endpoint()?;
        let secret: Option<SecretBytes> = match &row.secret {
            Some(sealed) => Some(
                self.secrets
                    .open(tenant, sealed, &secret_context(name))
                    .await?,
            ),
            None => None,
        };
        let auth = EndpointAuth::from_parts(&endpoint.auth_kind, &endpoint.auth_params, secret)?;
        Ok(ResolvedEndpoint { endpoint, auth })
    }
}

fn event(tenant: TenantId, actor: &Principal, action: AuditAction, name: &str) -> NewAuditEvent {
    NewAuditEvent::new(tenant, actor.subject(), action, Outcome::Success)
        .target(format!("integration_endpoint:{name}"))
}
