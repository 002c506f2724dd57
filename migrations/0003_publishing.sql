-- 0003 publishing: OAuth connections per platform, the publishing queue, and what went out.

-- OAuth per platform. The tokens are ENCRYPTED with the data key of the tenant, of version
-- key_version (see tenant_keys): only ciphertext is stored here.
CREATE TABLE platform_connections (
    connection_id       TEXT NOT NULL PRIMARY KEY,
    tenant_id           TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    platform            TEXT NOT NULL
                        CHECK (platform IN ('linkedin', 'twitter', 'facebook', 'instagram',
                                            'tiktok', 'youtube', 'threads', 'pinterest')),
    handle              TEXT NOT NULL,
    external_account_id TEXT,
    access_token_ct     BLOB,
    refresh_token_ct    BLOB,
    key_version         INTEGER NOT NULL DEFAULT 1 CHECK (key_version >= 1),
    scopes              TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(scopes)),
    expires_at          TEXT,
    status              TEXT NOT NULL DEFAULT 'active'
                        CHECK (status IN ('active', 'expired', 'revoked', 'error')),
    created_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (tenant_id, connection_id),
    UNIQUE (tenant_id, platform, handle)
);

-- the token refresher looks for connections about to expire
CREATE INDEX idx_connections_status_expires ON platform_connections (status, expires_at);

-- The publishing queue.
CREATE TABLE scheduled_posts (
    schedule_id   TEXT NOT NULL PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    draft_id      TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    scheduled_for TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'queued'
                  CHECK (status IN ('queued', 'publishing', 'published', 'failed', 'cancelled')),
    attempts      INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error    TEXT,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (tenant_id, schedule_id),
    FOREIGN KEY (tenant_id, draft_id) REFERENCES content_drafts (tenant_id, draft_id),
    FOREIGN KEY (tenant_id, connection_id)
        REFERENCES platform_connections (tenant_id, connection_id)
);

-- the queue scan of the publisher: due items across tenants
CREATE INDEX idx_scheduled_status_due ON scheduled_posts (status, scheduled_for);
CREATE INDEX idx_scheduled_tenant_due ON scheduled_posts (tenant_id, scheduled_for);
CREATE INDEX idx_scheduled_tenant_draft ON scheduled_posts (tenant_id, draft_id);
CREATE INDEX idx_scheduled_tenant_connection ON scheduled_posts (tenant_id, connection_id);

-- What went out. campaign_id and skill_id are copied from the request and the draft so that
-- the analytics queries need no joins.
CREATE TABLE published_posts (
    post_id       TEXT NOT NULL PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    draft_id      TEXT,
    campaign_id   TEXT,
    skill_id      TEXT REFERENCES skills (skill_id),
    schedule_id   TEXT,
    connection_id TEXT,
    platform      TEXT NOT NULL
                  CHECK (platform IN ('linkedin', 'twitter', 'facebook', 'instagram',
                                      'tiktok', 'youtube', 'threads', 'pinterest')),
    external_id   TEXT,
    url           TEXT,
    published_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (tenant_id, post_id),
    UNIQUE (tenant_id, platform, external_id),
    FOREIGN KEY (tenant_id, draft_id) REFERENCES content_drafts (tenant_id, draft_id),
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaigns (tenant_id, campaign_id),
    FOREIGN KEY (tenant_id, schedule_id) REFERENCES scheduled_posts (tenant_id, schedule_id),
    FOREIGN KEY (tenant_id, connection_id)
        REFERENCES platform_connections (tenant_id, connection_id)
);

-- recent posts per platform (the composite index of the spec)
CREATE INDEX idx_posts_tenant_platform_date
    ON published_posts (tenant_id, platform, published_at DESC);
-- recent posts and cursor pagination: WHERE tenant_id = ? AND published_at < ?
CREATE INDEX idx_posts_tenant_date ON published_posts (tenant_id, published_at DESC);
-- ROI by campaign: WHERE tenant_id = ? AND campaign_id IS NOT NULL GROUP BY campaign_id
CREATE INDEX idx_posts_tenant_campaign ON published_posts (tenant_id, campaign_id, published_at);
CREATE INDEX idx_posts_tenant_draft ON published_posts (tenant_id, draft_id);
CREATE INDEX idx_posts_tenant_schedule ON published_posts (tenant_id, schedule_id);
CREATE INDEX idx_posts_tenant_connection ON published_posts (tenant_id, connection_id);
CREATE INDEX idx_posts_skill ON published_posts (skill_id, published_at);
