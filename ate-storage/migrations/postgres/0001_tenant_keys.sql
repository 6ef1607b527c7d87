-- Tenant data keys, wrapped under the master key. Times are microseconds since the epoch.
CREATE TABLE tenant_keys (
    tenant_id     UUID    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    version       BIGINT  NOT NULL CHECK (version > 0),
    state         TEXT    NOT NULL CHECK (state IN ('active', 'decrypt_only', 'destroyed')),
    master_key_id TEXT,                                  -- NULL once destroyed
    wrapped       BYTEA,                                 -- NULL once destroyed
    created_at    BIGINT  NOT NULL,
    retired_at    BIGINT ,
    destroyed_at  BIGINT ,
    PRIMARY KEY (tenant_id, version),
    CHECK ((state = 'destroyed') = (wrapped IS NULL))
);

-- At most one key per tenant encrypts new data.
CREATE UNIQUE INDEX tenant_keys_one_active ON tenant_keys (tenant_id) WHERE state = 'active';
-- Master-key rotation finds the keys still wrapped under an old master key.
CREATE INDEX tenant_keys_by_master ON tenant_keys (master_key_id) WHERE master_key_id IS NOT NULL;
