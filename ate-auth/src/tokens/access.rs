//! Access tokens: issuing and verifying ATE's JWTs with signing keys kept in the database.
//!
//! Signing keys are platform-wide. Their private halves are stored wrapped under the master
//! key (`KeyProvider::wrap`, bound to the key id); one key is **active** (signs), older ones
//! are **verify-only** until every token they signed has expired, then **retired** (the
//! wrapped private half is erased). [`TokenService::rotate`] makes a new key active;
//! [`TokenService::jwks`] publishes the public halves of every key that still verifies.
//!
//! Single logout puts a token's `jti` on a denylist until the token would have expired. The
//! list is cached in memory and refreshed from the database at most once a second, so a
//! denial made by another process takes effect there within a second, and verification
//! costs no database round trip.

use crate::error::AuthError;
use crate::jwt::{Claims, KeySet, SigningAlgorithm, SigningKey, SigningKeyRing, Verifier};
use crate::users::User;
use ate_core::db::{from_micros, to_micros};
use ate_core::keys::{KeyProvider, WrappedKey};
use ate_core::{Clock, Db, Principal, with_pool, with_write_tx};
use chrono::{DateTime, TimeDelta, Utc};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use uuid::Uuid;

/// Access-token settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TokenConfig {
    /// `iss` of every token, and the only issuer accepted.
    pub issuer: String,
    /// `aud` of every token, and the audience required.
    pub audience: String,
    /// Lifetime of an access token (default 15 minutes).
    pub lifetime: TimeDelta,
    /// Algorithm of new signing keys (default EdDSA).
    pub algorithm: SigningAlgorithm,
    /// Clock skew tolerated on `exp`/`nbf`/`iat` (default 30 s, at most 5 minutes).
    pub leeway: TimeDelta,
    /// Tokens longer than this are rejected before parsing (default 8 KiB).
    pub max_token_bytes: usize,
}

impl TokenConfig {
    /// Defaults with this issuer and audience.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        TokenConfig {
            issuer: issuer.into(),
            audience: audience.into(),
            lifetime: TimeDelta::minutes(15),
            algorithm: SigningAlgorithm::EdDSA,
            leeway: TimeDelta::seconds(30),
            max_token_bytes: 8 * 1024,
        }
    }

    fn validate(&self) -> Result<(), AuthError> {
        let bad = |r: &str| AuthError::invalid("token config", r.to_string());
        if self.issuer.is_empty() || self.issuer.len() > 512 {
            return Err(bad("issuer must be 1 to 512 bytes"));
        }
        if self.audience.is_empty() || self.audience.len() > 512 {
            return Err(bad("audience must be 1 to 512 bytes"));
        }
        if self.lifetime < TimeDelta::seconds(30) || self.lifetime > TimeDelta::hours(24) {
            return Err(bad("lifetime must be 30 s to 24 h"));
        }
        if self.leeway < TimeDelta::zero() || self.leeway > TimeDelta::minutes(5) {
            return Err(bad("leeway must be 0 to 5 minutes"));
        }
        if !(1024..=64 * 1024).contains(&self.max_token_bytes) {
            return Err(bad("max_token_bytes must be 1 KiB to 64 KiB"));
        }
        Ok(())
    }
}

/// An issued access token.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccessToken {
    /// The compact JWT. Never log it.
    pub token: String,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// Its `jti`.
    pub jti: String,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("jti", &self.jti)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A signing key's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SigningKeyInfo {
    /// Key id.
    pub kid: String,
    /// Algorithm.
    pub algorithm: SigningAlgorithm,
    /// `active`, `verify_only` or `retired`.
    pub state: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Until when a verify-only key still verifies.
    pub verify_until: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    kid: String,
    algorithm: String,
    state: String,
    master_key_id: Option<String>,
    wrapped: Option<Vec<u8>>,
    created_at: i64,
    verify_until: Option<i64>,
}

impl KeyRow {
    fn info(&self) -> Result<SigningKeyInfo, AuthError> {
        Ok(SigningKeyInfo {
            kid: self.kid.clone(),
            algorithm: SigningAlgorithm::from_jose_name(&self.algorithm).ok_or_else(|| {
                AuthError::Crypto(format!(
                    "stored key algorithm {:?} is unknown",
                    self.algorithm
                ))
            })?,
            state: self.state.clone(),
            created_at: from_micros(self.created_at)?,
            verify_until: self.verify_until.map(from_micros).transpose()?,
        })
    }
}

/// The insert of a new active signing key (its private half wrapped), ready to execute.
macro_rules! insert_key {
    ($key:expr, $wrapped:expr, $now:expr) => {
        sqlx::query(
            "INSERT INTO auth_signing_keys (kid, algorithm, state, public_jwk, master_key_id, \
             wrapped, created_at) VALUES ($1, $2, 'active', $3, $4, $5, $6)",
        )
        .bind($key.kid())
        .bind($key.algorithm().as_str())
        .bind($key.public_jwk().to_string())
        .bind(&$wrapped.key_id)
        .bind(&$wrapped.ciphertext)
        .bind(to_micros($now))
    };
}

fn wrap_context(kid: &str) -> Vec<u8> {
    let mut ctx = b"ate.jwt-signing-key.v1\0".to_vec();
    ctx.extend_from_slice(kid.as_bytes());
    ctx
}

/// Keys and denylist as cached in memory.
#[derive(Debug)]
struct Cache {
    ring: SigningKeyRing,
    verifier: Verifier,
    /// Tokens whose signature and claims this verifier accepted: SHA-256 of the token →
    /// its claims. Valid until the token's `exp`; emptied whenever the keys are reloaded.
    verified: HashMap<[u8; 32], Claims>,
    /// Delegated tokens for reuse ([`TokenService::delegate_cached`]): SHA-256 of what
    /// they say → the token. Emptied whenever the keys are reloaded.
    delegated: HashMap<[u8; 32], AccessToken>,
    /// Denied jti → expiry (seconds).
    denied: HashMap<String, i64>,
    denied_seen_until: i64,
    refreshed_at: DateTime<Utc>,
}

/// Most verified tokens [`TokenService::verify`] remembers.
pub const VERIFIED_TOKEN_CACHE_CAPACITY: usize = 10_000;

/// Issues and verifies ATE's access tokens.
#[derive(Debug, Clone)]
pub struct TokenService {
    db: Db,
    master: Arc<dyn KeyProvider>,
    config: TokenConfig,
    clock: Arc<dyn Clock>,
    cache: Arc<RwLock<Cache>>,
}

macro_rules! key_columns {
    () => {
        "kid, algorithm, state, master_key_id, wrapped, created_at, verify_until"
    };
}

impl TokenService {
    /// Opens the service over `db` (migrated by [`UserStore::open`](crate::UserStore::open)),
    /// creating the first signing key if there is none.
    pub async fn open(
        db: Db,
        master: Arc<dyn KeyProvider>,
        config: TokenConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AuthError> {
        config.validate()?;
        let (ring, verifier) = Self::load_keys(&db, &*master, &config, &*clock).await?;
        let cache = Cache {
            ring,
            verifier,
            verified: HashMap::new(),
            delegated: HashMap::new(),
            denied: HashMap::new(),
            denied_seen_until: 0,
            refreshed_at: DateTime::<Utc>::MIN_UTC,
        };
        let service = TokenService {
            db,
            master,
            config,
            clock,
            cache: Arc::new(RwLock::new(cache)),
        };
        service.refresh_cache(true).await?;
        Ok(service)
    }

    fn verifier_for(config: &TokenConfig, keys: KeySet) -> Result<Verifier, AuthError> {
        Verifier::new(keys, &config.issuer, &config.audience)?
            .with_leeway(config.leeway)?
            .with_max_token_bytes(config.max_token_bytes)
    }

    async fn rows(db: &Db) -> Result<Vec<KeyRow>, AuthError> {
        Ok(with_pool!(db, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                key_columns!(),
                " FROM auth_signing_keys WHERE state <> 'retired' ORDER BY created_at"
            ))
            .fetch_all(pool)
            .await?
        }))
    }

    /// Loads every key that still verifies, creating the first one if needed.
    async fn load_keys(
        db: &Db,
        master: &dyn KeyProvider,
        config: &TokenConfig,
        clock: &dyn Clock,
    ) -> Result<(SigningKeyRing, Verifier), AuthError> {
        let mut rows = Self::rows(db).await?;
        if !rows.iter().any(|r| r.state == "active") {
            let key = SigningKey::generate(config.algorithm)?;
            Self::insert_active(db, master, &key, clock.now()).await?;
            rows = Self::rows(db).await?;
        }
        let mut keys = Vec::new();
        // The active key last: the ring signs with its newest key.
        rows.sort_by_key(|r| (r.state == "active", r.created_at));
        let now = to_micros(clock.now());
        for row in &rows {
            if row.state == "verify_only" && row.verify_until.is_some_and(|v| v < now) {
                continue; // every token it signed has expired
            }
            let (Some(id), Some(ct)) = (&row.master_key_id, &row.wrapped) else {
                continue;
            };
            let der = master
                .unwrap(
                    &WrappedKey {
                        key_id: id.clone(),
                        ciphertext: ct.clone(),
                    },
                    &wrap_context(&row.kid),
                )
                .await?;
            keys.push(SigningKey::from_pkcs8(
                row.info()?.algorithm,
                row.kid.clone(),
                der.expose_secret(),
            )?);
        }
        let ring = SigningKeyRing::from_keys(keys)?;
        let verifier = Self::verifier_for(config, ring.key_set())?;
        Ok((ring, verifier))
    }

    /// Inserts `key` as the active key; if another process made one meanwhile, keeps theirs.
    async fn insert_active(
        db: &Db,
        master: &dyn KeyProvider,
        key: &SigningKey,
        now: DateTime<Utc>,
    ) -> Result<(), AuthError> {
        let wrapped = master
            .wrap(key.to_pkcs8().expose_secret(), &wrap_context(key.kid()))
            .await?;
        let inserted: Result<(), AuthError> = async {
            with_pool!(db, |pool| {
                insert_key!(key, wrapped, now)
                    .execute(pool)
                    .await?
                    .rows_affected()
            });
            Ok(())
        }
        .await;
        match inserted {
            Err(AuthError::Core(ate_core::CoreError::AlreadyExists { .. })) => Ok(()),
            other => other,
        }
    }

    /// Reloads keys (when `keys`) and the denylist if the cache is older than a second.
    async fn refresh_cache(&self, keys: bool) -> Result<(), AuthError> {
        let now = self.clock.now();
        let since = {
            let cache = self.cache.read().map_err(|_| poisoned())?;
            if !keys && now - cache.refreshed_at < TimeDelta::seconds(1) {
                return Ok(());
            }
            cache.denied_seen_until
        };
        let denied: Vec<(String, i64, i64)> = with_pool!(self.db, |pool| {
            sqlx::query_as(
                "SELECT jti, expires_at, denied_at FROM auth_denied_tokens \
                 WHERE issuer = $1 AND denied_at >= $2",
            )
            .bind(&self.config.issuer)
            .bind(since)
            .fetch_all(pool)
            .await?
        });
        let reloaded = if keys {
            Some(Self::load_keys(&self.db, &*self.master, &self.config, &*self.clock).await?)
        } else {
            None
        };
        let mut cache = self.cache.write().map_err(|_| poisoned())?;
        let now_s = now.timestamp();
        cache.denied.retain(|_, exp| *exp >= now_s);
        for (jti, exp, at) in denied {
            cache.denied.insert(jti, exp / 1_000_000);
            cache.denied_seen_until = cache.denied_seen_until.max(at);
        }
        if let Some((ring, verifier)) = reloaded {
            cache.ring = ring;
            cache.verifier = verifier;
            cache.verified.clear();
            cache.delegated.clear();
        }
        cache.refreshed_at = now;
        Ok(())
    }

    /// Issues an access token for `user` in `session`.
    pub(crate) async fn issue(&self, user: &User, session: Uuid) -> Result<AccessToken, AuthError> {
        self.mint(
            &self.config.audience,
            format!("user:{}", user.id),
            user.tenant.to_string(),
            self.config.lifetime,
            |claims| {
                claims
                    .with_roles(user.roles.iter().map(|r| r.as_str()))
                    .session(session.to_string())
            },
        )
    }

    /// Signs claims for `subject` in `tenant`, for `audience`, valid `lifetime` from now,
    /// with a fresh `jti`; `more` adds roles and a session.
    fn mint(
        &self,
        audience: &str,
        subject: String,
        tenant: String,
        lifetime: TimeDelta,
        more: impl FnOnce(Claims) -> Claims,
    ) -> Result<AccessToken, AuthError> {
        let now = self.clock.now();
        let exp = now + lifetime;
        let jti = Uuid::now_v7().simple().to_string();
        let claims = more(Claims::new(
            &self.config.issuer,
            audience,
            subject,
            tenant,
            now.timestamp(),
            exp.timestamp(),
            jti.clone(),
        ));
        let token = self
            .cache
            .read()
            .map_err(|_| poisoned())?
            .ring
            .sign(&claims)?;
        Ok(AccessToken {
            token,
            expires_at: exp,
            jti,
        })
    }

    /// Issues a short-lived token that speaks for `principal` to another service (a
    /// gateway forwarding a caller's identity upstream): signed by the active key, so it
    /// verifies against [`jwks`](Self::jwks) with [`Verifier`], issued by this service's
    /// issuer for `audience`, which must differ from the access tokens' own: a delegated
    /// token is never accepted where ATE's access tokens are, so an upstream cannot replay
    /// it against the API that issued it. `sub` is the principal's subject, `tenant` its
    /// tenant id (`platform` for a platform administrator), `roles` its roles; no session.
    ///
    /// Errors: `InvalidInput` for an empty, too long (over 512 bytes) or reused audience,
    /// or a lifetime outside 1 s to 5 minutes.
    pub fn delegate(
        &self,
        principal: &Principal,
        audience: &str,
        lifetime: TimeDelta,
    ) -> Result<AccessToken, AuthError> {
        if audience.is_empty() || audience.len() > 512 {
            return Err(AuthError::invalid("audience", "must be 1 to 512 bytes"));
        }
        if audience == self.config.audience {
            return Err(AuthError::invalid(
                "audience",
                "must differ from the access tokens' audience (a delegated token would \
                 then be accepted as an access token)",
            ));
        }
        if lifetime < TimeDelta::seconds(1) || lifetime > TimeDelta::minutes(5) {
            return Err(AuthError::invalid("lifetime", "must be 1 s to 5 minutes"));
        }
        let tenant = principal
            .tenant()
            .map_or_else(|| "platform".to_owned(), |t| t.to_string());
        self.mint(
            audience,
            principal.subject().to_owned(),
            tenant,
            lifetime,
            |claims| claims.with_roles(principal.roles()),
        )
    }

    /// [`delegate`](Self::delegate), reusing a token minted earlier for the same subject,
    /// tenant and roles, audience and lifetime while at least half of its lifetime is left
    /// (so an upstream always gets at least half the lifetime), instead of signing one per
    /// call: a gateway forwards the same caller's identity to the same service many times a
    /// second. At most [`VERIFIED_TOKEN_CACHE_CAPACITY`] tokens are kept; a key rotation
    /// forgets them. Errors as for `delegate`.
    pub fn delegate_cached(
        &self,
        principal: &Principal,
        audience: &str,
        lifetime: TimeDelta,
    ) -> Result<AccessToken, AuthError> {
        let mut h = Sha256::new();
        for part in [principal.subject(), audience] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        h.update(
            principal
                .tenant()
                .map_or([0; 16], |t| *t.as_uuid().as_bytes()),
        );
        let mut roles: Vec<&str> = principal.roles().collect();
        roles.sort_unstable();
        for r in roles {
            h.update((r.len() as u64).to_be_bytes());
            h.update(r.as_bytes());
        }
        h.update(lifetime.num_milliseconds().to_be_bytes());
        let key: [u8; 32] = h.finalize().into();
        let now = self.clock.now();
        {
            let cache = self.cache.read().map_err(|_| poisoned())?;
            if let Some(t) = cache.delegated.get(&key)
                && t.expires_at - now >= lifetime / 2
            {
                return Ok(t.clone());
            }
        }
        let token = self.delegate(principal, audience, lifetime)?;
        let mut cache = self.cache.write().map_err(|_| poisoned())?;
        if cache.delegated.len() >= VERIFIED_TOKEN_CACHE_CAPACITY {
            cache.delegated.retain(|_, t| t.expires_at > now);
            if cache.delegated.len() >= VERIFIED_TOKEN_CACHE_CAPACITY {
                cache.delegated.clear();
            }
        }
        cache.delegated.insert(key, token.clone());
        Ok(token)
    }

    /// The issuer of every token this service signs.
    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    /// Verifies a token's signature and claims and that it is not denied. (The user and
    /// tenant checks are [`Auth::verify`](crate::Auth::verify)'s.)
    ///
    /// A token verified once is remembered (by its SHA-256) until it expires, so the
    /// signature is checked once per token rather than once per request (the way Envoy's
    /// JWT filter caches); the denylist and the expiry are checked every time, and the
    /// memory is emptied when the keys are reloaded. At most
    /// [`VERIFIED_TOKEN_CACHE_CAPACITY`] tokens are remembered.
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        self.refresh_cache(false).await?;
        let now = self.clock.now().timestamp();
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        {
            let cache = self.cache.read().map_err(|_| poisoned())?;
            if let Some(claims) = cache.verified.get(&digest)
                && claims.exp > now
            {
                if cache.denied.contains_key(&claims.jti) {
                    return Err(AuthError::token("the token was revoked"));
                }
                return Ok(claims.clone());
            }
        }
        let result = {
            let cache = self.cache.read().map_err(|_| poisoned())?;
            cache.verifier.verify(token, now)
        };
        let claims = match result {
            // A key another process created since we loaded ours: reload once, try again.
            Err(AuthError::InvalidToken { reason }) if reason.contains("unknown kid") => {
                self.refresh_cache(true).await?;
                let cache = self.cache.read().map_err(|_| poisoned())?;
                cache.verifier.verify(token, now)?
            }
            other => other?,
        };
        let mut cache = self.cache.write().map_err(|_| poisoned())?;
        if cache.denied.contains_key(&claims.jti) {
            return Err(AuthError::token("the token was revoked"));
        }
        if claims.exp > now {
            if cache.verified.len() >= VERIFIED_TOKEN_CACHE_CAPACITY {
                cache.verified.retain(|_, c| c.exp > now);
                if cache.verified.len() >= VERIFIED_TOKEN_CACHE_CAPACITY {
                    cache.verified.clear();
                }
            }
            cache.verified.insert(digest, claims.clone());
        }
        Ok(claims)
    }

    /// Denies a verified token until it expires (single logout).
    pub(crate) async fn deny(&self, claims: &Claims) -> Result<(), AuthError> {
        let now = self.clock.now();
        with_pool!(self.db, |pool| {
            sqlx::query(
                "INSERT INTO auth_denied_tokens (issuer, jti, expires_at, denied_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (issuer, jti) DO NOTHING",
            )
            .bind(&claims.iss)
            .bind(&claims.jti)
            .bind(claims.exp.saturating_mul(1_000_000))
            .bind(to_micros(now))
            .execute(pool)
            .await?
            .rows_affected()
        });
        let mut cache = self.cache.write().map_err(|_| poisoned())?;
        cache.denied.insert(claims.jti.clone(), claims.exp);
        Ok(())
    }

    /// The public keys that verify ATE's tokens, as a JWKS document.
    pub fn jwks(&self) -> Result<serde_json::Value, AuthError> {
        Ok(self
            .cache
            .read()
            .map_err(|_| poisoned())?
            .ring
            .key_set()
            .to_jwks())
    }

    /// The signing keys (metadata only).
    pub async fn keys(&self) -> Result<Vec<SigningKeyInfo>, AuthError> {
        let rows: Vec<KeyRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                key_columns!(),
                " FROM auth_signing_keys ORDER BY created_at"
            ))
            .fetch_all(pool)
            .await?
        });
        rows.iter().map(KeyRow::info).collect()
    }

    /// Rotates the signing key (platform administrators): a new key signs from now on; the
    /// old one verifies until every token it signed has expired; keys past that are retired
    /// and their private halves erased. Returns the new key's id.
    pub async fn rotate(&self, actor: &Principal) -> Result<String, AuthError> {
        actor.require_platform_admin("rotating the token signing key")?;
        let now = self.clock.now();
        let key = SigningKey::generate(self.config.algorithm)?;
        let wrapped = self
            .master
            .wrap(key.to_pkcs8().expose_secret(), &wrap_context(key.kid()))
            .await?;
        let verify_until = now + self.config.lifetime + self.config.leeway;
        let _: () = with_write_tx!(self.db, |tx| {
            sqlx::query(
                "UPDATE auth_signing_keys SET state = 'retired', wrapped = NULL, \
                 master_key_id = NULL, retired_at = $1 \
                 WHERE state = 'verify_only' AND verify_until < $1",
            )
            .bind(to_micros(now))
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE auth_signing_keys SET state = 'verify_only', verify_until = $1 \
                 WHERE state = 'active'",
            )
            .bind(to_micros(verify_until))
            .execute(&mut *tx)
            .await?;
            insert_key!(key, wrapped, now).execute(&mut *tx).await?;
        });
        self.refresh_cache(true).await?;
        Ok(key.kid().to_owned())
    }
}

fn poisoned() -> AuthError {
    AuthError::Crypto("the token key cache was poisoned by a panic".into())
}
