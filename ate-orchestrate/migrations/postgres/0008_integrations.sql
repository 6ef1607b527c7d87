-- Integration endpoints: external HTTP endpoints a tenant registers, with how to
-- authenticate to them. The one secret of the auth (token, password, key, client secret)
-- is sealed under the tenant's keys (ate_core::keys::TenantSecrets) and never read back
-- by the API; auth_params holds the settings that are not secret.
CREATE TABLE integration_endpoints (
    id              UUID    PRIMARY KEY,               -- UUIDv7
    tenant_id       UUID    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name            TEXT    NOT NULL,
    url             TEXT    NOT NULL,
    method          TEXT    NOT NULL,
    headers         TEXT    NOT NULL,                  -- JSON object
    auth_kind       TEXT    NOT NULL,
    auth_params     TEXT    NOT NULL,                  -- JSON object, nothing secret
    secret          BYTEA,                               -- sealed, or NULL without a secret
    timeout_ms      BIGINT  NOT NULL,
    created_by      TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    revision        BIGINT  NOT NULL
);
CREATE UNIQUE INDEX integration_endpoints_name ON integration_endpoints (tenant_id, name);
