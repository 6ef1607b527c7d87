-- Retention policies and legal holds, per tenant and per project (JSON documents; NULL when
-- none is set).

ALTER TABLE projects ADD COLUMN retention TEXT;
ALTER TABLE projects ADD COLUMN legal_hold TEXT;

CREATE TABLE tenant_retention (
    tenant_id  BLOB NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    retention  TEXT,
    legal_hold TEXT
) STRICT;
