-- Refused logins that matched no usable account (unknown email, disabled, locked), counted
-- per tenant in 16 buckets (by a byte of SHA-256 of the normalized email). Two reasons:
-- operators see enumeration and credential stuffing, and a refused login commits one write
-- like a wrong password does, so the two take the same time.
CREATE TABLE auth_login_refusals (
    tenant_id  UUID    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    bucket     INTEGER NOT NULL CHECK (bucket BETWEEN 0 AND 15),
    refusals   BIGINT  NOT NULL DEFAULT 0,
    last_at    BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, bucket)
);
