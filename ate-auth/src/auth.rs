//! [`Auth`]: registration, login, refresh, logout and verification, over the stores.
//!
//! Every path that issues tokens (login and refresh) checks, at that moment, that the tenant
//! is active and the user active and not locked; every outcome is audited with OWASP's
//! vocabulary (`authn_login_success`, `authn_login_fail`, `authn_login_lock`,
//! `authn_token_created`, `authn_token_revoked`, `authn_token_reuse`, `authz_fail`). Failures
//! toward the caller are uniform: a wrong password, an unknown email, a disabled or locked
//! account all return [`AuthError::InvalidCredentials`] after the same Argon2id work.

use crate::error::AuthError;
use crate::jwt::Claims;
use crate::password::{
    Argon2Params, Password, PasswordHash, PasswordHasher, PasswordPolicy, PolicyContext,
};
use crate::ratelimit::{RateLimiter, RateLimits};
use crate::sessions::{Session, SessionPolicy, SessionStore};
use crate::tokens::refresh::Login;
use crate::tokens::{AccessToken, RefreshToken, TokenConfig, TokenService};
use crate::users::{
    Attempt, LockoutPolicy, NewUser, Refusal, RolePermissions, USERS_MANAGE, User, UserStatus,
    UserStore,
};
use crate::verify_cache::{VerifyCache, VerifyFacts};
use ate_core::audit::{AuditAction, NewAuditEvent, Outcome, actions};
use ate_core::keys::KeyProvider;
use ate_core::{
    AuditSink, Clock, CoreError, Db, NewTenant, Principal, SqlAuditSink, SqlTenantStore,
    SystemClock, Tenant, TenantId, TenantStatus, TenantStore, UserId,
};
use serde_json::json;
use std::net::IpAddr;
use std::sync::Arc;
use uuid::Uuid;

/// Everything configurable, with safe defaults.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AuthConfig {
    /// Access tokens: issuer, audience, lifetime, algorithm, leeway, size limit.
    pub tokens: TokenConfig,
    /// Argon2id cost (default: the OWASP minimum).
    pub argon2: Argon2Params,
    /// Concurrent password hashes at most (default: the number of CPUs).
    pub max_concurrent_hashes: Option<usize>,
    /// The password policy.
    pub password_policy: PasswordPolicy,
    /// Lockout after failed logins.
    pub lockout: LockoutPolicy,
    /// Session lifetimes and the refresh retry grace.
    pub sessions: SessionPolicy,
    /// Rate limits for login and refresh.
    pub rate_limits: RateLimits,
    /// How long [`Auth::verify`] may reuse what it read about a tenant, user and session
    /// (default 1 s; zero reads the database on every call). Changes made through this
    /// process (and tenant changes through a tenant store on the same [`Db`] handle) take
    /// effect at once regardless; changes made by another process sharing the database
    /// are seen within this time. See [`crate::verify_cache`].
    pub verify_cache_ttl: std::time::Duration,
    /// How many (user, session) entries the verification cache keeps at most.
    pub verify_cache_capacity: usize,
    /// Permissions each role carries in this deployment beyond its built-in ones (default:
    /// none). See [`RolePermissions`].
    pub role_permissions: RolePermissions,
    /// Fast, weak password hashing: **tests only**.
    pub insecure_fast_hashing_for_tests: bool,
}

impl AuthConfig {
    /// Defaults with this issuer and audience.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        AuthConfig {
            tokens: TokenConfig::new(issuer, audience),
            argon2: Argon2Params::default(),
            max_concurrent_hashes: None,
            password_policy: PasswordPolicy::new(),
            lockout: LockoutPolicy::default(),
            sessions: SessionPolicy::default(),
            rate_limits: RateLimits::default(),
            verify_cache_ttl: crate::verify_cache::DEFAULT_VERIFY_CACHE_TTL,
            verify_cache_capacity: crate::verify_cache::DEFAULT_VERIFY_CACHE_CAPACITY,
            role_permissions: RolePermissions::default(),
            insecure_fast_hashing_for_tests: false,
        }
    }
}

/// Where a request comes from (for rate limits and the audit log).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientInfo {
    /// The client's address, as the host determined it.
    pub addr: Option<IpAddr>,
    /// The client's user agent.
    pub user_agent: Option<String>,
}

impl ClientInfo {
    /// A client at `addr`.
    pub fn addr(addr: IpAddr) -> Self {
        ClientInfo {
            addr: Some(addr),
            user_agent: None,
        }
    }

    /// Adds a user agent.
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = Some(ua.into());
        self
    }
}

/// What a login or refresh returns.
#[derive(Debug)]
#[non_exhaustive]
pub struct Tokens {
    /// The access token (a JWT) and its expiry.
    pub access: AccessToken,
    /// The refresh token: hand it to the client once; ATE keeps only its hash.
    pub refresh: RefreshToken,
    /// The session (refresh-token family) it belongs to.
    pub session: Session,
    /// The user.
    pub user: User,
}

/// Authentication and user management for every tenant in one database.
#[derive(Debug, Clone)]
pub struct Auth {
    users: UserStore,
    sessions: SessionStore,
    tokens: TokenService,
    passwords: PasswordHasher,
    policy: PasswordPolicy,
    lockout: LockoutPolicy,
    limiter: RateLimiter,
    tenants: SqlTenantStore,
    audit: SqlAuditSink,
    clock: Arc<dyn Clock>,
}

impl Auth {
    /// Opens authentication over `db` (running migrations), with signing keys wrapped by
    /// `master`.
    pub async fn open(
        db: Db,
        master: Arc<dyn KeyProvider>,
        config: AuthConfig,
    ) -> Result<Self, AuthError> {
        Self::open_with_clock(db, master, config, Arc::new(SystemClock)).await
    }

    /// [`open`](Self::open) with a clock (tests, simulations).
    pub async fn open_with_clock(
        db: Db,
        master: Arc<dyn KeyProvider>,
        config: AuthConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AuthError> {
        config.lockout.validate()?;
        let cache = Arc::new(VerifyCache::new(
            config.verify_cache_ttl,
            config.verify_cache_capacity,
        ));
        let users = UserStore::open(db.clone())
            .await?
            .with_clock(clock.clone())
            .with_verify_cache(cache.clone())
            .with_role_permissions(config.role_permissions);
        let mut passwords = if config.insecure_fast_hashing_for_tests {
            PasswordHasher::insecure_for_tests()
        } else {
            PasswordHasher::new(config.argon2)?
        };
        if let Some(n) = config.max_concurrent_hashes {
            passwords = passwords.with_max_concurrent(n)?;
        }
        Ok(Auth {
            sessions: SessionStore::new(db.clone(), clock.clone(), config.sessions)?
                .with_verify_cache(cache),
            tokens: TokenService::open(db.clone(), master, config.tokens, clock.clone()).await?,
            limiter: RateLimiter::new(db.clone(), clock.clone(), config.rate_limits)?,
            tenants: SqlTenantStore::new(db.clone()).with_clock(clock.clone()),
            audit: SqlAuditSink::new(db).with_clock(clock.clone()),
            users,
            passwords,
            policy: config.password_policy,
            lockout: config.lockout,
            clock,
        })
    }

    /// The user store (get, list, update, enable/disable/unlock).
    pub fn users(&self) -> &UserStore {
        &self.users
    }

    /// Drops what the verification cache holds about `user` (or, with `None`, everything),
    /// for hosts that change users or tenants behind ATE's back (raw SQL, another tool).
    /// Changes made through ATE in this process need no call.
    pub fn forget_cached(&self, user: Option<UserId>) {
        self.users.forget_cached(user);
    }

    /// The token service (JWKS, signing-key rotation).
    pub fn tokens(&self) -> &TokenService {
        &self.tokens
    }

    fn check_password(&self, password: &Password, new: &NewUser) -> Result<(), AuthError> {
        let mut ctx = PolicyContext::new().email(&new.email);
        if let Some(u) = &new.username {
            ctx = ctx.username(u);
        }
        if !new.name.is_empty() {
            ctx = ctx.name(&new.name);
        }
        self.policy.check(password, &ctx)
    }

    /// Registers a new organization (tenant) with its first user, an `admin` of it, in one
    /// transaction.
    pub async fn register(
        &self,
        org: NewTenant,
        user: NewUser,
        password: &Password,
    ) -> Result<(Tenant, User), AuthError> {
        self.check_password(password, &user)?;
        let hash = self.passwords.hash(password).await?;
        self.users
            .register_with_org(org, &user, hash.into_string())
            .await
    }

    /// Creates a user in `tenant` (with a password, or none for single sign-on only).
    /// Needs `users:manage` there, and to hold every role and permission given.
    pub async fn create_user(
        &self,
        actor: &Principal,
        tenant: TenantId,
        user: NewUser,
        password: Option<&Password>,
    ) -> Result<User, AuthError> {
        actor.require(tenant, &USERS_MANAGE)?;
        let hash = match password {
            Some(p) => {
                self.check_password(p, &user)?;
                Some(self.passwords.hash(p).await?.into_string())
            }
            None => None,
        };
        self.users.create(actor, tenant, &user, hash).await
    }

    /// Creates a user whose password hash was imported from another system (see
    /// [`import_bcrypt`](crate::password::import_bcrypt)); the next successful login rehashes
    /// it with Argon2id. Needs what [`create_user`](Self::create_user) needs.
    pub async fn import_user(
        &self,
        actor: &Principal,
        tenant: TenantId,
        user: NewUser,
        hash: PasswordHash,
    ) -> Result<User, AuthError> {
        actor.require(tenant, &USERS_MANAGE)?;
        self.users
            .create(actor, tenant, &user, Some(hash.into_string()))
            .await
    }

    /// An audit event from `client`, checked and ready to append (in a transaction of this
    /// crate's, or through the audit sink by [`audit`](Self::audit)).
    fn event(
        tenant: TenantId,
        actor: String,
        action: AuditAction,
        outcome: Outcome,
        client: &ClientInfo,
        metadata: serde_json::Value,
    ) -> NewAuditEvent {
        let mut e = NewAuditEvent::new(tenant, actor, action, outcome).metadata(metadata);
        if let Some(a) = client.addr {
            e = e.client_addr(a);
        }
        if let Some(ua) = &client.user_agent {
            e = e.user_agent(ua.chars().take(512).collect::<String>());
        }
        e
    }

    /// Appends `e` through the audit sink (its own transaction).
    async fn audit(&self, e: NewAuditEvent) -> Result<(), AuthError> {
        self.audit.append(e).await?;
        Ok(())
    }

    /// Logs a user in with email and password; on success starts a session and returns an
    /// access token and the session's first refresh token. Every failure is
    /// [`AuthError::InvalidCredentials`] (or `RateLimited`), after the same password work.
    pub async fn login(
        &self,
        tenant: TenantId,
        email: &str,
        password: &Password,
        client: &ClientInfo,
    ) -> Result<Tokens, AuthError> {
        self.limiter.login(tenant, client.addr).await?;
        let active = matches!(
            self.tenants.require_active(tenant).await,
            Ok(t) if t.status == TenantStatus::Active
        );
        let attempt = if active {
            self.users
                .reserve_attempt(tenant, email, &self.lockout)
                .await?
        } else {
            Attempt::Refused(Refusal::Unknown)
        };
        let (row, n) = match attempt {
            Attempt::Proceed(row, n) => (row, n),
            Attempt::Refused(why) => {
                let err = self.passwords.verify_dummy(password).await;
                if active {
                    let reason = match why {
                        Refusal::Unknown => "unknown_user",
                        Refusal::Disabled => "disabled",
                        Refusal::Locked => "locked",
                    };
                    self.audit(Self::event(
                        tenant,
                        "anonymous".into(),
                        actions::AUTHN_LOGIN_FAIL,
                        Outcome::Failure,
                        client,
                        json!({ "reason": reason }),
                    ))
                    .await?;
                }
                return Err(err);
            }
        };
        let user = row.user()?;
        let subject = format!("user:{}", user.id);
        let Some(stored) = row.password_hash.as_deref() else {
            let err = self.passwords.verify_dummy(password).await;
            self.fail(&user, n, client, "no_password").await?;
            return Err(err);
        };
        match self.passwords.verify(password, stored).await {
            Ok(verified) => {
                if verified.needs_rehash {
                    let new = self.passwords.hash(password).await?;
                    self.users
                        .upgrade_password_hash(user.id, stored, new.as_str())
                        .await?;
                }
                // One transaction: the counters reset, the session and its first refresh
                // token, the audit event.
                let id = Uuid::now_v7();
                let event = Self::event(
                    tenant,
                    subject,
                    actions::AUTHN_LOGIN_SUCCESS,
                    Outcome::Success,
                    client,
                    json!({ "session": id, "rehashed": verified.needs_rehash }),
                )
                .validate()?;
                let login = Login {
                    tenant,
                    user: user.id,
                    client_addr: client.addr,
                    user_agent: client.user_agent.as_deref(),
                };
                let (session, refresh) = self.sessions.start(&login, id, &event).await?;
                let access = self.tokens.issue(&user, session.id).await?;
                Ok(Tokens {
                    access,
                    refresh,
                    session,
                    user,
                })
            }
            Err(AuthError::InvalidCredentials) => {
                self.fail(&user, n, client, "bad_password").await?;
                Err(AuthError::InvalidCredentials)
            }
            Err(e) => Err(e),
        }
    }

    async fn fail(
        &self,
        user: &User,
        attempt: i64,
        client: &ClientInfo,
        reason: &str,
    ) -> Result<(), AuthError> {
        let subject = format!("user:{}", user.id);
        self.audit(Self::event(
            user.tenant,
            subject.clone(),
            actions::AUTHN_LOGIN_FAIL,
            Outcome::Failure,
            client,
            json!({ "reason": reason, "attempt": attempt }),
        ))
        .await?;
        if let Some(until) = self
            .users
            .attempt_failed(user.id, attempt, &self.lockout)
            .await?
        {
            self.audit(Self::event(
                user.tenant,
                subject,
                actions::AUTHN_LOGIN_LOCK,
                Outcome::Failure,
                client,
                json!({ "until": until.map(|t| t.to_rfc3339()), "permanent": until.is_none() }),
            ))
            .await?;
        }
        Ok(())
    }

    /// Exchanges a refresh token for a new access token and the token's successor (see
    /// [`tokens::refresh`](crate::tokens::refresh)). The tenant must be active and the user active and not
    /// locked, checked now.
    pub async fn refresh(
        &self,
        token: &RefreshToken,
        client: &ClientInfo,
    ) -> Result<Tokens, AuthError> {
        self.limiter.refresh(client.addr).await?;
        // Check the user before spending the token: a refresh refused because the account is
        // locked for a while must leave the session usable afterwards.
        let peeked = self.sessions.peek(token).await?;
        let user = self.usable_user(peeked.tenant, peeked.user).await?;
        let event = Self::event(
            peeked.tenant,
            format!("user:{}", user.id),
            actions::AUTHN_TOKEN_CREATED,
            Outcome::Success,
            client,
            json!({ "session": peeked.id, "via": "refresh" }),
        )
        .validate()?;
        let refreshed = self.sessions.refresh(token, &event).await?;
        let access = self.tokens.issue(&user, refreshed.session.id).await?;
        Ok(Tokens {
            access,
            refresh: refreshed.token,
            session: refreshed.session,
            user,
        })
    }

    /// The user, if the tenant is active and the user active and not locked now.
    async fn usable_user(&self, tenant: TenantId, id: UserId) -> Result<User, AuthError> {
        Ok(self
            .usable(tenant, id, None, Read::Fresh)
            .await?
            .user
            .clone())
    }

    /// The user (and whether session `sid`, if given, is still open), if the tenant is active
    /// and the user active and not locked now: one query.
    async fn usable(
        &self,
        tenant: TenantId,
        id: UserId,
        sid: Option<Uuid>,
        read: Read,
    ) -> Result<Arc<VerifyFacts>, AuthError> {
        let facts = match read {
            Read::Fresh => self
                .users
                .verify_state(tenant, id, sid)
                .await?
                .map(Arc::new),
            Read::Cached => self.users.verify_facts(tenant, id, sid).await?,
        };
        let Some(facts) = facts else {
            return Err(AuthError::token("the user no longer exists"));
        };
        if !facts.tenant_active {
            return Err(AuthError::token("the tenant is not active"));
        }
        let user = &facts.user;
        if user.status != UserStatus::Active
            || user.locked_until.is_some_and(|t| t > self.clock.now())
        {
            return Err(AuthError::token("the user is disabled or locked"));
        }
        Ok(facts)
    }

    /// Verifies an access token and returns the principal it carries. Besides the
    /// signature and claims, checks now that the tenant is active, the user active, the token
    /// issued after the user's last "log out everywhere", its session not ended, and the
    /// token not individually revoked.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let claims = self.tokens.verify(token).await?;
        Ok(self.check_claims(&claims).await?.facts.principal.clone())
    }

    /// The checks of [`verify`](Self::verify) after the signature and claims: the tenant,
    /// the user and the session, read now in one round trip.
    async fn check_claims(&self, claims: &Claims) -> Result<Verified, AuthError> {
        let tenant: TenantId = claims
            .tenant
            .parse()
            .map_err(|_| AuthError::token("the tenant claim is not a tenant id"))?;
        let id: UserId = claims
            .sub
            .strip_prefix("user:")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| AuthError::token("the subject is not an ATE user"))?;
        let sid = claims
            .sid
            .as_deref()
            .map(|s| {
                s.parse::<Uuid>()
                    .map_err(|_| AuthError::token("the session claim is not a session id"))
            })
            .transpose()?;
        let facts = self.usable(tenant, id, sid, Read::Cached).await?;
        if claims.iat < facts.user.not_before.timestamp() {
            return Err(AuthError::token("the token was issued before a logout"));
        }
        // `iat` has whole seconds: a token from the same second as a "log out everywhere"
        // would pass the check above. Its session, though, was ended.
        if sid.is_some() && !facts.session_open {
            return Err(AuthError::token("the token's session has ended"));
        }
        Ok(Verified {
            facts,
            session: sid,
        })
    }

    /// Ends the session of `token` (single logout): its refresh tokens stop working and the
    /// access token is denied until it would have expired.
    pub async fn logout(&self, access_token: &str, client: &ClientInfo) -> Result<(), AuthError> {
        let claims = self.tokens.verify(access_token).await?;
        let Verified { facts, session } = self.check_claims(&claims).await?;
        let user = &facts.user;
        if let Some(sid) = session {
            self.sessions
                .end(user.tenant, user.id, Some(sid), "logout")
                .await?;
        }
        self.tokens.deny(&claims).await?;
        self.audit(Self::event(
            user.tenant,
            format!("user:{}", user.id),
            actions::AUTHN_TOKEN_REVOKED,
            Outcome::Success,
            client,
            json!({ "scope": "session", "session": claims.sid }),
        ))
        .await
    }

    /// Ends every session of the principal's user and invalidates every access token issued
    /// so far ("log out everywhere").
    pub async fn logout_everywhere(
        &self,
        principal: &Principal,
        client: &ClientInfo,
    ) -> Result<u64, AuthError> {
        let (tenant, user) = self.principal_user(principal).await?;
        let n = self.sessions.end(tenant, user, None, "logout_all").await?;
        self.users.revoke_tokens_before_now(user).await?;
        self.audit(Self::event(
            tenant,
            principal.subject().to_owned(),
            actions::AUTHN_TOKEN_REVOKED,
            Outcome::Success,
            client,
            json!({ "scope": "all", "sessions": n }),
        ))
        .await?;
        Ok(n)
    }

    /// The principal's own sessions.
    pub async fn sessions(&self, principal: &Principal) -> Result<Vec<Session>, AuthError> {
        let (tenant, user) = self.principal_user(principal).await?;
        self.sessions.list(tenant, user).await
    }

    /// Ends one of the principal's own sessions.
    pub async fn end_session(&self, principal: &Principal, session: Uuid) -> Result<(), AuthError> {
        let (tenant, user) = self.principal_user(principal).await?;
        match self
            .sessions
            .end(tenant, user, Some(session), "ended_by_user")
            .await?
        {
            0 => Err(CoreError::not_found("open session", session).into()),
            _ => Ok(()),
        }
    }

    /// Changes the principal's own password: the current one is required; every other
    /// session ends (the one given as `keep` stays).
    pub async fn change_password(
        &self,
        principal: &Principal,
        current: &Password,
        new: &Password,
        keep: Option<Uuid>,
    ) -> Result<(), AuthError> {
        let (tenant, id) = self.principal_user(principal).await?;
        let row = self
            .users
            .row(tenant, id)
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        let user = row.user()?;
        let Some(stored) = row.password_hash.as_deref() else {
            return Err(self.passwords.verify_dummy(current).await);
        };
        let _verified = self.passwords.verify(current, stored).await?;
        self.check_password(new, &as_new_user(&user))?;
        let hash = self.passwords.hash(new).await?;
        self.users
            .set_password_hash(principal.subject(), tenant, id, hash.as_str(), keep)
            .await
    }

    /// The principal's own user.
    pub async fn profile(&self, principal: &Principal) -> Result<User, AuthError> {
        let (tenant, id) = self.principal_user(principal).await?;
        self.users.get(principal, tenant, id).await
    }

    /// Changes the principal's own display name (see [`UserStore::update_own_name`]).
    pub async fn update_profile(
        &self,
        principal: &Principal,
        name: &str,
    ) -> Result<User, AuthError> {
        let (tenant, id) = self.principal_user(principal).await?;
        self.users
            .update_own_name(principal, tenant, id, name)
            .await
    }

    /// Sets a user's password as an administrator (`users:manage`, holding the user's
    /// privileges): every session of the user ends.
    pub async fn reset_password(
        &self,
        actor: &Principal,
        tenant: TenantId,
        id: UserId,
        new: &Password,
    ) -> Result<(), AuthError> {
        let user = self.users.get(actor, tenant, id).await?;
        crate::users::authorize_grant(actor, tenant, &user.roles, &user.permissions)?;
        self.check_password(new, &as_new_user(&user))?;
        let hash = self.passwords.hash(new).await?;
        self.users
            .set_password_hash(actor.subject(), tenant, id, hash.as_str(), None)
            .await?;
        self.users.revoke_tokens_before_now(id).await
    }

    /// Records an authorization failure (`authz_fail`) for a principal, for hosts that deny
    /// a request after ATE authenticated it.
    pub async fn record_denied(
        &self,
        principal: &Principal,
        tenant: TenantId,
        what: &str,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        self.audit(Self::event(
            tenant,
            principal.subject().to_owned(),
            actions::AUTHZ_FAIL,
            Outcome::Denied,
            client,
            json!({ "denied": what.chars().take(200).collect::<String>() }),
        ))
        .await
    }
}

/// What [`Auth::check_claims`] found: the user, and the token's session if it names one.
/// Where [`Auth::usable`] reads: paths that issue tokens always read the database.
#[derive(Debug, Clone, Copy)]
enum Read {
    Fresh,
    Cached,
}

struct Verified {
    facts: Arc<VerifyFacts>,
    session: Option<Uuid>,
}

/// The identity fields of `user` the password policy compares passwords with.
fn as_new_user(user: &User) -> NewUser {
    let mut nu = NewUser::new(user.email.clone()).name(user.name.clone());
    if let Some(u) = &user.username {
        nu = nu.username(u.clone());
    }
    nu
}

impl Auth {
    /// The tenant and user id of a user principal (a `super_admin` user's principal carries
    /// no tenant: it is looked up).
    async fn principal_user(&self, p: &Principal) -> Result<(TenantId, UserId), AuthError> {
        let id: UserId = p
            .subject()
            .strip_prefix("user:")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| AuthError::invalid("principal", "is not an ATE user"))?;
        let tenant = match p.tenant() {
            Some(t) => t,
            None => self
                .users
                .tenant_of(id)
                .await?
                .ok_or_else(|| CoreError::not_found("user", id))?,
        };
        Ok((tenant, id))
    }
}
