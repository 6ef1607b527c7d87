-- Users of a tenant. Times are microseconds since the epoch.
CREATE TABLE auth_users (
    id              UUID    PRIMARY KEY,
    tenant_id       UUID    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email           TEXT    NOT NULL,                  -- as given
    email_norm      TEXT    NOT NULL,                  -- normalized: the uniqueness key
    username        TEXT,
    username_norm   TEXT,
    display_name    TEXT    NOT NULL DEFAULT '',
    status          TEXT    NOT NULL CHECK (status IN ('active', 'disabled', 'locked')),
    roles           TEXT    NOT NULL,                  -- JSON array of role names
    permissions     TEXT    NOT NULL,                  -- JSON array of granted permissions
    password_hash   TEXT,                              -- PHC string; NULL: no password login
    -- Tokens issued before this instant are invalid ("log out everywhere").
    not_before      BIGINT  NOT NULL DEFAULT 0,
    -- Lockout: failures since the last success, temporary lockouts in a row, and until when.
    failed_attempts BIGINT  NOT NULL DEFAULT 0,
    lockouts        BIGINT  NOT NULL DEFAULT 0,
    locked_until    BIGINT,
    revision        BIGINT  NOT NULL DEFAULT 1,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL
);
CREATE UNIQUE INDEX auth_users_email ON auth_users (tenant_id, email_norm);
CREATE UNIQUE INDEX auth_users_username ON auth_users (tenant_id, username_norm)
    WHERE username_norm IS NOT NULL;
CREATE INDEX auth_users_by_email ON auth_users (email_norm);

-- Refresh-token families: one per login session.
CREATE TABLE auth_sessions (
    id              UUID    PRIMARY KEY,
    tenant_id       UUID    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id         UUID    NOT NULL REFERENCES auth_users (id) ON DELETE CASCADE,
    secret          BYTEA   NOT NULL,                  -- derives successor tokens (see sessions.rs)
    created_at      BIGINT  NOT NULL,
    last_used_at    BIGINT  NOT NULL,
    expires_at      BIGINT  NOT NULL,                  -- absolute lifetime
    idle_expires_at BIGINT  NOT NULL,                  -- idle lifetime, pushed on each refresh
    revoked_at      BIGINT,
    revoked_reason  TEXT,
    client_addr     TEXT,
    user_agent      TEXT
);
CREATE INDEX auth_sessions_by_user ON auth_sessions (user_id);

-- Refresh tokens, stored only as SHA-256 hashes. Spent tokens stay until their family ends,
-- so a replay is recognized and revokes the family.
CREATE TABLE auth_refresh_tokens (
    token_hash      BYTEA   PRIMARY KEY,
    session_id      UUID    NOT NULL REFERENCES auth_sessions (id) ON DELETE CASCADE,
    generation      BIGINT  NOT NULL,
    issued_at       BIGINT  NOT NULL,
    spent_at        BIGINT,
    successor_hash  BYTEA
);
CREATE INDEX auth_refresh_tokens_by_session ON auth_refresh_tokens (session_id);

-- Access-token signing keys (platform-wide), private halves wrapped under the master key.
CREATE TABLE auth_signing_keys (
    kid             TEXT    PRIMARY KEY,
    algorithm       TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('active', 'verify_only', 'retired')),
    public_jwk      TEXT    NOT NULL,
    master_key_id   TEXT,
    wrapped         BYTEA,
    created_at      BIGINT  NOT NULL,
    verify_until    BIGINT,                            -- set when a newer key takes over
    retired_at      BIGINT
);
CREATE UNIQUE INDEX auth_signing_keys_one_active ON auth_signing_keys (state) WHERE state = 'active';

-- Single logout: access tokens denied until they would have expired anyway.
CREATE TABLE auth_denied_tokens (
    issuer          TEXT    NOT NULL,
    jti             TEXT    NOT NULL,
    expires_at      BIGINT  NOT NULL,
    denied_at       BIGINT  NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE INDEX auth_denied_tokens_by_time ON auth_denied_tokens (denied_at);

-- Fixed-window rate-limit counters, keyed by purpose and subject (tenant, client address).
CREATE TABLE auth_rate_limits (
    key             TEXT    PRIMARY KEY,
    window_start    BIGINT  NOT NULL,
    hits            BIGINT  NOT NULL
);
