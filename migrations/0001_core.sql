-- 0001 core: tenants, the people inside them, and the private brand voice of each tenant.
--
-- Conventions for every migration of the bundled schema
--   * ids are TEXT (ULID-style, sortable) and every table is an ordinary rowid table
--     with a PRIMARY KEY
--   * times are ISO-8601 UTC TEXT, defaulting to strftime('%Y-%m-%dT%H:%M:%fZ','now')
--   * enumerations are CHECK (x IN (...)) and JSON columns are CHECK (json_valid(x))
--   * a tenant-owned row carries tenant_id, which references tenants ON DELETE CASCADE
--     (the only cascading reference), and a reference from one tenant table to another is
--     a composite foreign key that includes tenant_id, so no row can point at a row of
--     another tenant, and every UNIQUE key other than the primary key includes tenant_id

CREATE TABLE tenants (
    tenant_id   TEXT NOT NULL PRIMARY KEY,
    name        TEXT NOT NULL,
    plan        TEXT NOT NULL DEFAULT 'free'
                CHECK (plan IN ('free', 'starter', 'pro', 'enterprise')),
    region      TEXT NOT NULL DEFAULT 'us' CHECK (region IN ('us', 'eu', 'apac')),
    -- the industry peer group used by platform_benchmarks (NULL: 'unspecified')
    industry    TEXT,
    status      TEXT NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'suspended', 'deleted')),
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    deleted_at  TEXT,
    CHECK (status <> 'deleted' OR deleted_at IS NOT NULL)
);

CREATE INDEX idx_tenants_status ON tenants (status);

CREATE TABLE users (
    user_id       TEXT NOT NULL PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    email         TEXT NOT NULL CHECK (email LIKE '%_@_%'),
    display_name  TEXT,
    role          TEXT NOT NULL DEFAULT 'viewer'
                  CHECK (role IN ('owner', 'admin', 'editor', 'viewer')),
    status        TEXT NOT NULL DEFAULT 'active'
                  CHECK (status IN ('invited', 'active', 'disabled')),
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    last_login_at TEXT,
    UNIQUE (tenant_id, email),
    -- the target of composite references from other tenant tables
    UNIQUE (tenant_id, user_id)
);

CREATE INDEX idx_users_tenant_role ON users (tenant_id, role);

-- PRIVATE: never readable from the session of another tenant.
CREATE TABLE brand_profiles (
    tenant_id        TEXT NOT NULL PRIMARY KEY
                     REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    brand_name       TEXT NOT NULL,
    tone             TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(tone)),
    lexicon          TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(lexicon)),
    messaging        TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(messaging)),
    -- id of the brand voice embedding in the `nds-brand-voice` vector index
    voice_vector_id  TEXT,
    created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- maps a vector search hit back to its profile
CREATE INDEX idx_brand_profiles_voice_vector ON brand_profiles (voice_vector_id);
