-- 0004 analytics (raw events, attribution, experiments) and the daily metrics and benchmark
-- rollups that src/rollup.rs recomputes from them.

-- Latest totals per post, as last reported by the platform.
CREATE TABLE post_metrics (
    post_id     TEXT NOT NULL PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    impressions INTEGER NOT NULL DEFAULT 0 CHECK (impressions >= 0),
    reach       INTEGER NOT NULL DEFAULT 0 CHECK (reach >= 0),
    clicks      INTEGER NOT NULL DEFAULT 0 CHECK (clicks >= 0),
    likes       INTEGER NOT NULL DEFAULT 0 CHECK (likes >= 0),
    comments    INTEGER NOT NULL DEFAULT 0 CHECK (comments >= 0),
    shares      INTEGER NOT NULL DEFAULT 0 CHECK (shares >= 0),
    saves       INTEGER NOT NULL DEFAULT 0 CHECK (saves >= 0),
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    FOREIGN KEY (tenant_id, post_id) REFERENCES published_posts (tenant_id, post_id)
);

CREATE INDEX idx_post_metrics_tenant_post ON post_metrics (tenant_id, post_id);

-- Raw engagement events. A platform reports counts, so one event may stand for several
-- occurrences (quantity).
CREATE TABLE engagement_events (
    event_id    TEXT NOT NULL PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    post_id     TEXT NOT NULL,
    kind        TEXT NOT NULL
                CHECK (kind IN ('impression', 'click', 'like', 'comment', 'share', 'save',
                                'follow', 'view')),
    quantity    INTEGER NOT NULL DEFAULT 1 CHECK (quantity >= 1),
    metadata    TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    occurred_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    FOREIGN KEY (tenant_id, post_id) REFERENCES published_posts (tenant_id, post_id)
);

CREATE INDEX idx_engagement_tenant_post ON engagement_events (tenant_id, post_id, occurred_at);
CREATE INDEX idx_engagement_tenant_time ON engagement_events (tenant_id, occurred_at);

-- Revenue attribution. post_id is NULL for a conversion no post is credited with.
CREATE TABLE conversions (
    conversion_id TEXT NOT NULL PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    post_id       TEXT,
    kind          TEXT NOT NULL
                  CHECK (kind IN ('signup', 'lead', 'purchase', 'subscription', 'other')),
    value         REAL NOT NULL DEFAULT 0 CHECK (value >= 0),
    currency      TEXT NOT NULL DEFAULT 'USD' CHECK (length(currency) = 3),
    occurred_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    FOREIGN KEY (tenant_id, post_id) REFERENCES published_posts (tenant_id, post_id)
);

-- ROI by campaign joins conversions on post_id alone
CREATE INDEX idx_conversions_post ON conversions (post_id);
CREATE INDEX idx_conversions_tenant_time ON conversions (tenant_id, occurred_at);

-- A/B tests of skills.
CREATE TABLE experiments (
    experiment_id TEXT NOT NULL PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    hypothesis    TEXT,
    metric        TEXT NOT NULL DEFAULT 'conversions',
    status        TEXT NOT NULL DEFAULT 'draft'
                  CHECK (status IN ('draft', 'running', 'paused', 'completed')),
    started_at    TEXT,
    ended_at      TEXT,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (tenant_id, experiment_id)
);

CREATE INDEX idx_experiments_tenant_status ON experiments (tenant_id, status);

-- Arms of a test.
CREATE TABLE experiment_variants (
    variant_id    TEXT NOT NULL PRIMARY KEY,
    experiment_id TEXT NOT NULL,
    tenant_id     TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    skill_id      TEXT REFERENCES skills (skill_id),
    traffic_share REAL NOT NULL DEFAULT 0.5 CHECK (traffic_share >= 0 AND traffic_share <= 1),
    posts         INTEGER NOT NULL DEFAULT 0 CHECK (posts >= 0),
    conversions   INTEGER NOT NULL DEFAULT 0 CHECK (conversions >= 0),
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    -- also the index behind the reference to the experiment
    UNIQUE (tenant_id, experiment_id, name),
    FOREIGN KEY (tenant_id, experiment_id) REFERENCES experiments (tenant_id, experiment_id)
);

CREATE INDEX idx_variants_skill ON experiment_variants (skill_id);

-- SHARED rollup per skill and UTC day (k-anonymous: tenants see rows with tenant_count >= 5).
CREATE TABLE skill_metrics_daily (
    skill_id      TEXT NOT NULL REFERENCES skills (skill_id),
    date          TEXT NOT NULL CHECK (date(date) IS date),
    uses          INTEGER NOT NULL DEFAULT 0 CHECK (uses >= 0),
    approval_rate REAL CHECK (approval_rate >= 0 AND approval_rate <= 1),
    pass_rate     REAL CHECK (pass_rate >= 0 AND pass_rate <= 1),
    tenant_count  INTEGER NOT NULL DEFAULT 0 CHECK (tenant_count >= 0),
    PRIMARY KEY (skill_id, date)
);

CREATE INDEX idx_skill_metrics_date ON skill_metrics_daily (date);

-- SHARED rollup per guard and UTC day (k-anonymous).
CREATE TABLE guard_metrics_daily (
    guard_id     TEXT NOT NULL REFERENCES guards (guard_id),
    date         TEXT NOT NULL CHECK (date(date) IS date),
    evaluations  INTEGER NOT NULL DEFAULT 0 CHECK (evaluations >= 0),
    failures     INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0 AND failures <= evaluations),
    tenant_count INTEGER NOT NULL DEFAULT 0 CHECK (tenant_count >= 0),
    PRIMARY KEY (guard_id, date)
);

CREATE INDEX idx_guard_metrics_date ON guard_metrics_daily (date);

-- SHARED percentiles of per-tenant values per platform, industry, UTC day and metric
-- (k-anonymous).
CREATE TABLE platform_benchmarks (
    platform     TEXT NOT NULL,
    industry     TEXT NOT NULL,
    date         TEXT NOT NULL CHECK (date(date) IS date),
    metric       TEXT NOT NULL CHECK (metric IN ('engagement_rate', 'click_through_rate')),
    p25          REAL NOT NULL,
    p50          REAL NOT NULL,
    p75          REAL NOT NULL,
    tenant_count INTEGER NOT NULL DEFAULT 0 CHECK (tenant_count >= 0),
    CHECK (p25 <= p50 AND p50 <= p75),
    PRIMARY KEY (platform, industry, date, metric)
);

CREATE INDEX idx_benchmarks_date ON platform_benchmarks (date);

-- PRIVATE daily rollup per tenant.
CREATE TABLE tenant_metrics_daily (
    tenant_id   TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    date        TEXT NOT NULL CHECK (date(date) IS date),
    posts       INTEGER NOT NULL DEFAULT 0 CHECK (posts >= 0),
    impressions INTEGER NOT NULL DEFAULT 0 CHECK (impressions >= 0),
    engagements INTEGER NOT NULL DEFAULT 0 CHECK (engagements >= 0),
    conversions INTEGER NOT NULL DEFAULT 0 CHECK (conversions >= 0),
    revenue     REAL NOT NULL DEFAULT 0 CHECK (revenue >= 0),
    PRIMARY KEY (tenant_id, date)
);

-- PRIVATE daily rollup per campaign.
CREATE TABLE campaign_metrics_daily (
    campaign_id TEXT NOT NULL,
    tenant_id   TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    date        TEXT NOT NULL CHECK (date(date) IS date),
    posts       INTEGER NOT NULL DEFAULT 0 CHECK (posts >= 0),
    conversions INTEGER NOT NULL DEFAULT 0 CHECK (conversions >= 0),
    revenue     REAL NOT NULL DEFAULT 0 CHECK (revenue >= 0),
    spend       REAL NOT NULL DEFAULT 0 CHECK (spend >= 0),
    PRIMARY KEY (tenant_id, campaign_id, date),
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaigns (tenant_id, campaign_id)
);

-- PRIVATE cost tracking per tenant, UTC day, provider and model.
CREATE TABLE api_usage_daily (
    tenant_id TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    date      TEXT NOT NULL CHECK (date(date) IS date),
    provider  TEXT NOT NULL,
    model     TEXT NOT NULL,
    calls     INTEGER NOT NULL DEFAULT 0 CHECK (calls >= 0),
    tokens    INTEGER NOT NULL DEFAULT 0 CHECK (tokens >= 0),
    cost_usd  REAL NOT NULL DEFAULT 0 CHECK (cost_usd >= 0),
    PRIMARY KEY (tenant_id, date, provider, model)
);
