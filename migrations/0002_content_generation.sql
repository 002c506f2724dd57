-- 0002 content generation: brand assets, campaigns, the SHARED skills and guards, and the
-- request -> draft -> revision pipeline with its workflow runs and knowledge base.

-- PRIVATE: colours, typography, logos.
CREATE TABLE brand_assets (
    asset_id    TEXT NOT NULL PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    kind        TEXT NOT NULL
                CHECK (kind IN ('color', 'typography', 'logo', 'image', 'template')),
    name        TEXT NOT NULL,
    value       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(value)),
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (tenant_id, kind, name)
);

CREATE INDEX idx_brand_assets_tenant_kind ON brand_assets (tenant_id, kind);

CREATE TABLE campaigns (
    campaign_id TEXT NOT NULL PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    objective   TEXT,
    status      TEXT NOT NULL DEFAULT 'draft'
                CHECK (status IN ('draft', 'active', 'paused', 'completed', 'archived')),
    budget      REAL NOT NULL DEFAULT 0 CHECK (budget >= 0),
    currency    TEXT NOT NULL DEFAULT 'USD' CHECK (length(currency) = 3),
    starts_at   TEXT,
    ends_at     TEXT,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CHECK (starts_at IS NULL OR ends_at IS NULL OR ends_at >= starts_at),
    UNIQUE (tenant_id, campaign_id)
);

CREATE INDEX idx_campaigns_tenant_status ON campaigns (tenant_id, status);
CREATE INDEX idx_campaigns_tenant_starts ON campaigns (tenant_id, starts_at);

-- SHARED: structural patterns, safe to share. origin_tenant_id records who contributed a
-- skill and is never shown to other tenants.
CREATE TABLE skills (
    skill_id         TEXT NOT NULL PRIMARY KEY,
    name             TEXT NOT NULL,
    category         TEXT NOT NULL,
    description      TEXT,
    structure        TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(structure)),
    status           TEXT NOT NULL DEFAULT 'draft'
                     CHECK (status IN ('draft', 'active', 'deprecated')),
    version          INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    origin_tenant_id TEXT REFERENCES tenants (tenant_id) ON DELETE SET NULL,
    -- id of the skill embedding in the `nds-skills` vector index
    vector_id        TEXT,
    created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE INDEX idx_skills_status ON skills (status);
CREATE INDEX idx_skills_category ON skills (category);
CREATE INDEX idx_skills_origin_tenant ON skills (origin_tenant_id);
CREATE INDEX idx_skills_vector ON skills (vector_id);

-- SHARED: quality rules every draft is checked against.
CREATE TABLE guards (
    guard_id    TEXT NOT NULL PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT,
    rule        TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(rule)),
    severity    TEXT NOT NULL DEFAULT 'warning'
                CHECK (severity IN ('info', 'warning', 'error', 'critical')),
    status      TEXT NOT NULL DEFAULT 'active'
                CHECK (status IN ('draft', 'active', 'deprecated')),
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE INDEX idx_guards_status ON guards (status);

-- A brief to generate content for one platform.
CREATE TABLE content_requests (
    request_id  TEXT NOT NULL PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    user_id     TEXT,
    campaign_id TEXT,
    platform    TEXT NOT NULL
                CHECK (platform IN ('linkedin', 'twitter', 'facebook', 'instagram',
                                    'tiktok', 'youtube', 'threads', 'pinterest')),
    brief       TEXT NOT NULL,
    params      TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(params)),
    status      TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'generating', 'review', 'approved',
                                  'rejected', 'cancelled', 'failed')),
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (tenant_id, request_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, user_id),
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaigns (tenant_id, campaign_id)
);

CREATE INDEX idx_requests_tenant_status ON content_requests (tenant_id, status, created_at);
CREATE INDEX idx_requests_tenant_user ON content_requests (tenant_id, user_id);
CREATE INDEX idx_requests_tenant_campaign ON content_requests (tenant_id, campaign_id);

-- Generated versions of the content of a request.
CREATE TABLE content_drafts (
    draft_id    TEXT NOT NULL PRIMARY KEY,
    request_id  TEXT NOT NULL,
    tenant_id   TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    skill_id    TEXT REFERENCES skills (skill_id),
    body        TEXT NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    status      TEXT NOT NULL DEFAULT 'draft'
                CHECK (status IN ('draft', 'in_review', 'approved', 'rejected', 'published')),
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (tenant_id, draft_id),
    -- also the index behind the reference to the request
    UNIQUE (tenant_id, request_id, version),
    FOREIGN KEY (tenant_id, request_id) REFERENCES content_requests (tenant_id, request_id)
);

CREATE INDEX idx_drafts_tenant_status ON content_drafts (tenant_id, status);
CREATE INDEX idx_drafts_skill ON content_drafts (skill_id, created_at);

-- Raw guard and review events: the source of the skill and guard rollups.
-- event_type 'guard_check' names a guard and says whether the draft passed it (pass_rate is
-- the share of the rule clauses of the guard satisfied), 'review_approved' and
-- 'review_rejected' are the decisions of a reviewer. skill_id is copied from the draft when
-- the event is written.
CREATE TABLE revision_events (
    event_id      TEXT NOT NULL PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    draft_id      TEXT NOT NULL,
    skill_id      TEXT REFERENCES skills (skill_id),
    guard_id      TEXT REFERENCES guards (guard_id),
    event_type    TEXT NOT NULL
                  CHECK (event_type IN ('guard_check', 'review_approved', 'review_rejected',
                                        'edit', 'regenerate')),
    passed        INTEGER CHECK (passed IN (0, 1)),
    pass_rate     REAL CHECK (pass_rate >= 0 AND pass_rate <= 1),
    actor_user_id TEXT,
    details       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(details)),
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CHECK ((event_type = 'guard_check') = (guard_id IS NOT NULL)),
    CHECK ((event_type = 'guard_check') = (passed IS NOT NULL)),
    FOREIGN KEY (tenant_id, draft_id) REFERENCES content_drafts (tenant_id, draft_id),
    FOREIGN KEY (tenant_id, actor_user_id) REFERENCES users (tenant_id, user_id)
);

CREATE INDEX idx_revisions_tenant_draft ON revision_events (tenant_id, draft_id, created_at);
CREATE INDEX idx_revisions_skill ON revision_events (skill_id, created_at);
CREATE INDEX idx_revisions_guard ON revision_events (guard_id, created_at);
CREATE INDEX idx_revisions_tenant_actor ON revision_events (tenant_id, actor_user_id);

-- Dify and OpenManus runs, with the tokens and money they cost.
CREATE TABLE workflow_runs (
    run_id      TEXT NOT NULL PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    request_id  TEXT,
    engine      TEXT NOT NULL CHECK (engine IN ('dify', 'openmanus')),
    workflow    TEXT,
    status      TEXT NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    -- the model provider and model billed (NULL provider: billed as the engine itself)
    provider    TEXT,
    model       TEXT,
    tokens_in   INTEGER NOT NULL DEFAULT 0 CHECK (tokens_in >= 0),
    tokens_out  INTEGER NOT NULL DEFAULT 0 CHECK (tokens_out >= 0),
    cost_usd    REAL NOT NULL DEFAULT 0 CHECK (cost_usd >= 0),
    latency_ms  INTEGER CHECK (latency_ms >= 0),
    error       TEXT,
    started_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at TEXT,
    FOREIGN KEY (tenant_id, request_id) REFERENCES content_requests (tenant_id, request_id)
);

CREATE INDEX idx_runs_tenant_started ON workflow_runs (tenant_id, started_at);
CREATE INDEX idx_runs_tenant_request ON workflow_runs (tenant_id, request_id);

-- Knowledge base sources.
CREATE TABLE knowledge_documents (
    doc_id       TEXT NOT NULL PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    title        TEXT NOT NULL,
    source_uri   TEXT,
    mime_type    TEXT,
    content_hash TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'processing', 'ready', 'failed', 'archived')),
    chunk_count  INTEGER NOT NULL DEFAULT 0 CHECK (chunk_count >= 0),
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (tenant_id, doc_id)
);

CREATE INDEX idx_docs_tenant_status ON knowledge_documents (tenant_id, status);
CREATE INDEX idx_docs_tenant_hash ON knowledge_documents (tenant_id, content_hash);

-- Chunks of those sources, each embedded in the `nds-knowledge` vector index.
CREATE TABLE knowledge_chunks (
    chunk_id    TEXT NOT NULL PRIMARY KEY,
    doc_id      TEXT NOT NULL,
    tenant_id   TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    ordinal     INTEGER NOT NULL CHECK (ordinal >= 0),
    text        TEXT NOT NULL,
    token_count INTEGER CHECK (token_count >= 0),
    vector_id   TEXT,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    -- also the index behind the reference to the document
    UNIQUE (tenant_id, doc_id, ordinal),
    FOREIGN KEY (tenant_id, doc_id) REFERENCES knowledge_documents (tenant_id, doc_id)
);

CREATE INDEX idx_chunks_tenant_vector ON knowledge_chunks (tenant_id, vector_id);
