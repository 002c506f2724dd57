-- 0005 security and audit: the hash-chained audit trail, wrapped per-tenant data keys, and
-- role-based permissions.

-- Append-only trail. The hash of each row covers its canonical bytes and prev_hash, the hash
-- of the previous row of the tenant (NULL for the first), so editing or removing a row breaks
-- the chain. Written by the engine only, tenants read their own rows.
CREATE TABLE audit_logs (
    audit_id      TEXT NOT NULL PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    actor         TEXT NOT NULL,
    action        TEXT NOT NULL,
    resource_type TEXT,
    resource_id   TEXT,
    outcome       TEXT NOT NULL DEFAULT 'success'
                  CHECK (outcome IN ('success', 'denied', 'error')),
    details       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(details)),
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    prev_hash     TEXT,
    hash          TEXT NOT NULL
);

CREATE INDEX idx_audit_tenant_time ON audit_logs (tenant_id, created_at);
CREATE INDEX idx_audit_tenant_resource ON audit_logs (tenant_id, resource_type, resource_id);

-- Per-tenant data keys, wrapped by the master key. Destroying a key (crypto-shredding) may
-- clear wrapped_key, which every other status requires.
CREATE TABLE tenant_keys (
    key_id       TEXT NOT NULL PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    version      INTEGER NOT NULL CHECK (version >= 1),
    wrapped_key  BLOB,
    algorithm    TEXT NOT NULL DEFAULT 'AES-256-GCM',
    status       TEXT NOT NULL DEFAULT 'active'
                 CHECK (status IN ('active', 'retired', 'destroyed')),
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    rotate_after TEXT,
    retired_at   TEXT,
    destroyed_at TEXT,
    CHECK (status = 'destroyed' OR wrapped_key IS NOT NULL),
    UNIQUE (tenant_id, version)
);

-- the rotation sweeper: active keys past rotate_after
CREATE INDEX idx_tenant_keys_status_rotate ON tenant_keys (status, rotate_after);

-- RBAC: which role holds which permission. Shared, read-only for tenants.
CREATE TABLE role_permissions (
    role       TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'editor', 'viewer')),
    permission TEXT NOT NULL,
    PRIMARY KEY (role, permission)
);

CREATE INDEX idx_role_permissions_permission ON role_permissions (permission);

INSERT INTO role_permissions (role, permission) VALUES
    ('owner', 'tenant.manage'),
    ('owner', 'users.manage'),
    ('owner', 'keys.rotate'),
    ('owner', 'audit.read'),
    ('owner', 'connections.manage'),
    ('owner', 'brand.manage'),
    ('owner', 'campaigns.manage'),
    ('owner', 'content.generate'),
    ('owner', 'content.approve'),
    ('owner', 'posts.publish'),
    ('owner', 'analytics.read'),
    ('admin', 'users.manage'),
    ('admin', 'audit.read'),
    ('admin', 'connections.manage'),
    ('admin', 'brand.manage'),
    ('admin', 'campaigns.manage'),
    ('admin', 'content.generate'),
    ('admin', 'content.approve'),
    ('admin', 'posts.publish'),
    ('admin', 'analytics.read'),
    ('editor', 'campaigns.manage'),
    ('editor', 'content.generate'),
    ('editor', 'posts.publish'),
    ('editor', 'analytics.read'),
    ('viewer', 'analytics.read');
