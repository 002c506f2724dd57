//! Deterministic fixture data for the bundled schema, shared by the integration tests.
//!
//! [`load`] fills every table of the bundled migrations except the rollups (run
//! `d1vec::rollup::recompute` for those) with eight tenants and 42 days of activity. There
//! is no randomness: choices come from a fixed linear congruential generator. Timestamps
//! are relative to today's UTC date (activity runs from [`DAYS`] days ago to yesterday, a
//! few derived events spill into today), so the spec's `date('now', '-30 days')` queries
//! find some rows inside and some outside their window.
//!
//! Shapes worth knowing when writing assertions:
//! - on days a multiple of 3 every tenant is active, posts on `linkedin` with skill
//!   `skill_001` and gets its draft approved, so those days give shared rollup rows with
//!   `tenant_count` of 7 or 8 (5 for the `retail` benchmark group);
//! - the last tenant works at 23:40, so its drafts, events and posts cross midnight;
//! - `guard_003` runs for four tenants only (pro and enterprise plans), so its rollup rows
//!   never reach `tenant_count` 5;
//! - `skill_002` and `skill_004` were contributed by `tenant_002` and `tenant_005`
//!   (`skills.origin_tenant_id`);
//! - one post (`post_3_09`) has no impressions, and each tenant has one conversion
//!   credited to no post.
#![allow(dead_code)]

use rusqlite::{params, Connection};

/// The five bundled migrations, in order: `(file name, SQL)`.
pub const MIGRATIONS: [(&str, &str); 5] = [
    (
        "0001_core.sql",
        include_str!("../../migrations/0001_core.sql"),
    ),
    (
        "0002_content_generation.sql",
        include_str!("../../migrations/0002_content_generation.sql"),
    ),
    (
        "0003_publishing.sql",
        include_str!("../../migrations/0003_publishing.sql"),
    ),
    (
        "0004_analytics.sql",
        include_str!("../../migrations/0004_analytics.sql"),
    ),
    (
        "0005_security.sql",
        include_str!("../../migrations/0005_security.sql"),
    ),
];

/// The fixture's tenants.
pub const TENANTS: [&str; 8] = [
    "tenant_001",
    "tenant_002",
    "tenant_003",
    "tenant_004",
    "tenant_005",
    "tenant_006",
    "tenant_007",
    "tenant_008",
];

/// Each tenant's industry (`None`: NULL, benchmarked as `unspecified`).
pub const INDUSTRIES: [Option<&str>; 8] = [
    Some("retail"),
    Some("retail"),
    Some("retail"),
    Some("retail"),
    Some("retail"),
    Some("saas"),
    Some("saas"),
    None,
];

/// Activity runs over the days `1..=DAYS` before today.
pub const DAYS: i64 = 42;

/// The platforms tenants post on.
pub const PLATFORMS: [&str; 4] = ["linkedin", "twitter", "instagram", "facebook"];

/// The shared skills: `(skill_id, name, category, status, origin tenant)`.
pub const SKILLS: [(&str, &str, &str, &str, Option<&str>); 6] = [
    (
        "skill_001",
        "Hook, story, offer",
        "structure",
        "active",
        None,
    ),
    (
        "skill_002",
        "Numbered listicle",
        "structure",
        "active",
        Some("tenant_002"),
    ),
    ("skill_003", "Question opener", "hook", "active", None),
    (
        "skill_004",
        "Customer case study",
        "long_form",
        "active",
        Some("tenant_005"),
    ),
    ("skill_005", "Thread teaser", "hook", "draft", None),
    ("skill_006", "Legacy carousel", "visual", "deprecated", None),
];

/// The shared guards: `(guard_id, name, severity, status)`; the deprecated one is never run.
pub const GUARDS: [(&str, &str, &str, &str); 4] = [
    ("guard_001", "No banned words", "error", "active"),
    ("guard_002", "Platform length limit", "warning", "active"),
    ("guard_003", "Brand tone", "warning", "active"),
    ("guard_004", "Legacy emoji rule", "info", "deprecated"),
];

/// Opens an in-memory database with the five bundled migrations applied.
pub fn bundled() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    apply_bundled(&conn);
    conn
}

/// Turns foreign keys on, then executes the five migration files in order.
pub fn apply_bundled(conn: &Connection) {
    conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
    for (name, sql) in MIGRATIONS {
        conn.execute_batch(sql)
            .unwrap_or_else(|e| panic!("migration {name}: {e}"));
    }
}

/// Opens an in-memory database with the bundled migrations and the fixture data.
pub fn loaded() -> Connection {
    let conn = bundled();
    load(&conn);
    conn
}

/// A tiny deterministic generator (Knuth's MMIX constants).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// Inserts the fixture data (one transaction). Expects the bundled schema, with its seeded
/// `role_permissions`, and no other rows.
pub fn load(conn: &Connection) {
    let tx = conn.unchecked_transaction().unwrap();
    let today: String = tx
        .query_row("SELECT date('now')", [], |r| r.get(0))
        .unwrap();
    // The timestamp `minutes` after midnight of the day `days_ago` days before today.
    let at = |days_ago: i64, minutes: i64| -> String {
        tx.prepare_cached("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', ?1, ?2, ?3)")
            .unwrap()
            .query_row(
                params![
                    today,
                    format!("{:+} days", -days_ago),
                    format!("{minutes:+} minutes")
                ],
                |r| r.get(0),
            )
            .unwrap()
    };
    let exec = |sql: &str, p: &[&dyn rusqlite::ToSql]| {
        tx.prepare_cached(sql)
            .unwrap()
            .execute(p)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    };
    let mut rng = Lcg(0x00d1_7ec0);

    for (ti, tid) in TENANTS.iter().enumerate() {
        exec(
            "INSERT INTO tenants (tenant_id, name, plan, region, industry, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                tid,
                format!("Tenant {}", ti + 1),
                ["free", "starter", "pro", "enterprise"][ti % 4],
                ["us", "eu", "apac"][ti % 3],
                INDUSTRIES[ti],
                at(DAYS + 30, 0),
            ],
        );
    }
    for (skill_id, name, category, status, origin) in SKILLS {
        exec(
            "INSERT INTO skills (skill_id, name, category, status, origin_tenant_id, vector_id,
                                 structure, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                skill_id,
                name,
                category,
                status,
                origin,
                format!("vec_{skill_id}"),
                format!(r#"{{"sections":["hook","body","cta"],"skill":"{skill_id}"}}"#),
                at(DAYS + 60, 0),
            ],
        );
    }
    for (guard_id, name, severity, status) in GUARDS {
        exec(
            "INSERT INTO guards (guard_id, name, severity, status, rule, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                guard_id,
                name,
                severity,
                status,
                format!(r#"{{"check":"{guard_id}","max":280}}"#),
                at(DAYS + 60, 0),
            ],
        );
    }

    for (ti, tid) in TENANTS.iter().enumerate() {
        let n = ti + 1;
        let editor = format!("u_{n}_editor");
        for role in ["owner", "editor", "viewer"] {
            exec(
                "INSERT INTO users (user_id, tenant_id, email, display_name, role, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    format!("u_{n}_{role}"),
                    tid,
                    format!("{role}@tenant{n}.example"),
                    format!("The {role} of tenant {n}"),
                    role,
                    at(DAYS + 30, 5),
                ],
            );
        }
        exec(
            "INSERT INTO brand_profiles (tenant_id, brand_name, tone, lexicon, messaging,
                                         voice_vector_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                tid,
                format!("Brand {n}"),
                format!(r#"{{"voice":"friendly","formality":{ti}}}"#),
                format!(r#"{{"prefer":["we","you"],"avoid":["cheap{n}"]}}"#),
                format!(r#"{{"pillars":["quality","care"],"tagline":"Brand {n} cares"}}"#),
                format!("bv_{tid}"),
            ],
        );
        for (kind, name, value) in [
            (
                "color",
                "primary",
                format!(r##"{{"hex":"#{:06x}"}}"##, 0x10_2030 * n),
            ),
            (
                "logo",
                "main",
                format!(r#"{{"uri":"r2://logos/{tid}.svg"}}"#),
            ),
        ] {
            exec(
                "INSERT INTO brand_assets (asset_id, tenant_id, kind, name, value)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![format!("asset_{n}_{kind}"), tid, kind, name, value],
            );
        }
        for (c, starts, ends, budget) in [(1, DAYS, 21, 1000.0 * n as f64), (2, 21, -10, 500.0)] {
            exec(
                "INSERT INTO campaigns (campaign_id, tenant_id, name, status, budget, starts_at,
                                        ends_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    format!("cmp_{n}_{c}"),
                    tid,
                    format!("Campaign {c} of tenant {n}"),
                    if c == 1 { "completed" } else { "active" },
                    budget,
                    at(starts, 0),
                    at(ends, 0),
                ],
            );
        }
        for platform in PLATFORMS {
            exec(
                "INSERT INTO platform_connections (connection_id, tenant_id, platform, handle,
                     access_token_ct, refresh_token_ct, key_version, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 2, ?7)",
                params![
                    format!("conn_{n}_{platform}"),
                    tid,
                    platform,
                    format!("@tenant{n}_{platform}"),
                    vec![n as u8; 28],
                    vec![0xa0 | n as u8; 28],
                    at(-30, 0),
                ],
            );
        }
        for (d, chunks) in [(1, 3), (2, 2)] {
            let doc = format!("doc_{n}_{d}");
            exec(
                "INSERT INTO knowledge_documents (doc_id, tenant_id, title, source_uri,
                     mime_type, content_hash, status, chunk_count)
                 VALUES (?1, ?2, ?3, ?4, 'text/markdown', ?5, 'ready', ?6)",
                params![
                    doc,
                    tid,
                    format!("Guide {d} of tenant {n}"),
                    format!("https://tenant{n}.example/guide{d}.md"),
                    format!("{:016x}", rng.below(u64::MAX)),
                    chunks,
                ],
            );
            for ordinal in 0..chunks {
                exec(
                    "INSERT INTO knowledge_chunks (chunk_id, doc_id, tenant_id, ordinal, text,
                                                   token_count, vector_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?1)",
                    params![
                        format!("chunk_{n}_{d}_{ordinal}"),
                        doc,
                        tid,
                        ordinal,
                        format!("Paragraph {ordinal} of guide {d} for tenant {n}."),
                        40 + rng.below(200) as i64,
                    ],
                );
            }
        }
        exec(
            "INSERT INTO experiments (experiment_id, tenant_id, name, status, started_at)
             VALUES (?1, ?2, 'Listicle vs story', 'running', ?3)",
            params![format!("exp_{n}"), tid, at(20, 0)],
        );
        for (v, skill) in [("a", "skill_001"), ("b", "skill_002")] {
            exec(
                "INSERT INTO experiment_variants (variant_id, experiment_id, tenant_id, name,
                     skill_id, traffic_share, posts, conversions)
                 VALUES (?1, ?2, ?3, ?4, ?5, 0.5, ?6, ?7)",
                params![
                    format!("var_{n}_{v}"),
                    format!("exp_{n}"),
                    tid,
                    v,
                    skill,
                    rng.below(20) as i64,
                    rng.below(5) as i64,
                ],
            );
        }
        for (k, version, status) in [(1, 1, "retired"), (2, 2, "active")] {
            exec(
                "INSERT INTO tenant_keys (key_id, tenant_id, version, wrapped_key, status,
                                          created_at, rotate_after)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    format!("key_{n}_{k}"),
                    tid,
                    version,
                    vec![(n * 16 + k) as u8; 40],
                    status,
                    at(DAYS + 30 - 20 * k as i64, 0),
                    at(-90 + 20 * k as i64, 0),
                ],
            );
        }
        let mut prev_hash: Option<String> = None;
        for (a, action) in ["tenant.create", "connections.manage", "posts.publish"]
            .iter()
            .enumerate()
        {
            let hash = format!("{:016x}{:016x}", rng.below(u64::MAX), rng.below(u64::MAX));
            exec(
                "INSERT INTO audit_logs (audit_id, tenant_id, actor, action, resource_type,
                     resource_id, outcome, created_at, prev_hash, hash)
                 VALUES (?1, ?2, ?3, ?4, 'tenant', ?2, 'success', ?5, ?6, ?7)",
                params![
                    format!("audit_{n}_{a}"),
                    tid,
                    format!("u_{n}_owner"),
                    action,
                    at(DAYS + 20 - a as i64, 0),
                    prev_hash,
                    hash,
                ],
            );
            prev_hash = Some(hash);
        }
        // A run that belongs to no request (knowledge ingestion), billed to its engine.
        exec(
            "INSERT INTO workflow_runs (run_id, tenant_id, engine, workflow, status, tokens_in,
                 tokens_out, cost_usd, latency_ms, started_at, finished_at)
             VALUES (?1, ?2, 'openmanus', 'ingest', 'succeeded', ?3, 0, ?4, 900, ?5, ?6)",
            params![
                format!("run_{n}_kb"),
                tid,
                3000 + n as i64,
                0.003 * n as f64,
                at(5, 60 + n as i64),
                at(5, 61 + n as i64),
            ],
        );
        // A conversion credited to no post.
        exec(
            "INSERT INTO conversions (conversion_id, tenant_id, post_id, kind, value,
                                      occurred_at)
             VALUES (?1, ?2, NULL, 'signup', ?3, ?4)",
            params![format!("conv_{n}_direct"), tid, 5.0 * n as f64, at(10, 600)],
        );

        for d in 1..=DAYS {
            let every_tenant_day = d % 3 == 0;
            if !every_tenant_day && (d + ti as i64) % 4 == 3 {
                continue;
            }
            let start = if ti == 7 {
                23 * 60 + 40
            } else {
                9 * 60 + 7 * ti as i64
            };
            let request = format!("req_{n}_{d:02}");
            let campaign = match rng.below(4) {
                0 => None,
                _ if d > 21 => Some(format!("cmp_{n}_1")),
                _ => Some(format!("cmp_{n}_2")),
            };
            let platform = if every_tenant_day {
                "linkedin"
            } else {
                PLATFORMS[rng.below(4) as usize]
            };
            let skill = if every_tenant_day {
                "skill_001"
            } else {
                SKILLS[rng.below(6) as usize].0
            };
            let versions = 1 + rng.below(2) as i64;
            let approved = every_tenant_day || rng.below(10) < 7;
            exec(
                "INSERT INTO content_requests (request_id, tenant_id, user_id, campaign_id,
                     platform, brief, params, status, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
                params![
                    request,
                    tid,
                    editor,
                    campaign,
                    platform,
                    format!("Announce update {d} for tenant {n}"),
                    format!(r#"{{"length":{}}}"#, 100 + d),
                    if approved { "approved" } else { "rejected" },
                    at(d, start),
                ],
            );
            let mut final_draft = String::new();
            for v in 1..=versions {
                let draft = format!("drf_{n}_{d:02}_{v}");
                let t0 = start + 10 * v;
                let last = v == versions;
                exec(
                    "INSERT INTO content_drafts (draft_id, request_id, tenant_id, skill_id,
                         body, version, status, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
                    params![
                        draft,
                        request,
                        tid,
                        skill,
                        format!("Draft {v} of update {d} for tenant {n}"),
                        v,
                        if last && approved {
                            "published"
                        } else {
                            "rejected"
                        },
                        at(d, t0),
                    ],
                );
                let (provider, model) = match rng.below(3) {
                    0 => (Some("openai"), Some("gpt-4o-mini")),
                    1 => (Some("anthropic"), Some("claude-haiku")),
                    _ => (None, None),
                };
                let (tokens_in, tokens_out) = (500 + rng.below(1500), 200 + rng.below(800));
                exec(
                    "INSERT INTO workflow_runs (run_id, tenant_id, request_id, engine,
                         workflow, status, provider, model, tokens_in, tokens_out, cost_usd,
                         latency_ms, started_at, finished_at)
                     VALUES (?1, ?2, ?3, ?4, 'generate', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,
                             ?13)",
                    params![
                        format!("run_{n}_{d:02}_{v}"),
                        tid,
                        request,
                        if (d + v) % 2 == 0 {
                            "dify"
                        } else {
                            "openmanus"
                        },
                        if rng.below(15) == 0 {
                            "failed"
                        } else {
                            "succeeded"
                        },
                        provider,
                        model,
                        tokens_in as i64,
                        tokens_out as i64,
                        (tokens_in + tokens_out) as f64 * 0.000_002_5,
                        1000 + rng.below(4000) as i64,
                        at(d, t0 - 1),
                        at(d, t0),
                    ],
                );
                // The brand tone guard runs on the pro and enterprise plans only.
                let guards = if ti % 4 >= 2 { 3 } else { 2 };
                for (g, (guard, ..)) in GUARDS[..guards].iter().enumerate() {
                    let passed = rng.below(5) != 0;
                    let pass_rate = if passed {
                        1.0
                    } else {
                        (1 + rng.below(4)) as f64 / 5.0
                    };
                    exec(
                        "INSERT INTO revision_events (event_id, tenant_id, draft_id, skill_id,
                             guard_id, event_type, passed, pass_rate, created_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, 'guard_check', ?6, ?7, ?8)",
                        params![
                            format!("rev_{n}_{d:02}_{v}_{guard}"),
                            tid,
                            draft,
                            skill,
                            guard,
                            passed,
                            pass_rate,
                            at(d, t0 + 1 + g as i64),
                        ],
                    );
                }
                if rng.below(4) == 0 {
                    exec(
                        "INSERT INTO revision_events (event_id, tenant_id, draft_id, skill_id,
                             event_type, actor_user_id, details, created_at)
                         VALUES (?1, ?2, ?3, ?4, 'edit', ?5, '{\"chars\":12}', ?6)",
                        params![
                            format!("rev_{n}_{d:02}_{v}_edit"),
                            tid,
                            draft,
                            skill,
                            editor,
                            at(d, t0 + 4),
                        ],
                    );
                }
                exec(
                    "INSERT INTO revision_events (event_id, tenant_id, draft_id, skill_id,
                         event_type, actor_user_id, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        format!("rev_{n}_{d:02}_{v}_review"),
                        tid,
                        draft,
                        skill,
                        if last && approved {
                            "review_approved"
                        } else {
                            "review_rejected"
                        },
                        format!("u_{n}_owner"),
                        at(d, t0 + 5),
                    ],
                );
                final_draft = draft;
            }
            if !approved {
                continue;
            }
            let published = start + 120;
            let schedule = format!("sch_{n}_{d:02}");
            let connection = format!("conn_{n}_{platform}");
            let post = format!("post_{n}_{d:02}");
            exec(
                "INSERT INTO scheduled_posts (schedule_id, tenant_id, draft_id, connection_id,
                     scheduled_for, status, attempts)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'published', 1)",
                params![schedule, tid, final_draft, connection, at(d, published)],
            );
            exec(
                "INSERT INTO published_posts (post_id, tenant_id, draft_id, campaign_id,
                     skill_id, schedule_id, connection_id, platform, external_id, url,
                     published_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    post,
                    tid,
                    final_draft,
                    campaign,
                    skill,
                    schedule,
                    connection,
                    platform,
                    format!("ext{n}{d:02}"),
                    format!("https://{platform}.example/tenant{n}/{d}"),
                    at(d, published),
                ],
            );
            let impressions = if n == 3 && d == 9 {
                0
            } else {
                200 + rng.below(1800)
            };
            let clicks = rng.below(impressions / 20 + 1);
            let likes = rng.below(impressions / 10 + 1);
            let comments = rng.below(impressions / 100 + 1);
            let shares = rng.below(impressions / 150 + 1);
            exec(
                "INSERT INTO post_metrics (post_id, tenant_id, impressions, reach, clicks, likes,
                     comments, shares, saves, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9)",
                params![
                    post,
                    tid,
                    impressions as i64,
                    (impressions * 3 / 4) as i64,
                    clicks as i64,
                    likes as i64,
                    comments as i64,
                    shares as i64,
                    at(d - 1, published),
                ],
            );
            for (kind, quantity, after) in [
                ("impression", impressions, 30),
                ("like", likes, 180),
                ("comment", comments, 300),
                ("click", clicks, 20 * 60),
            ] {
                if quantity == 0 {
                    continue;
                }
                exec(
                    "INSERT INTO engagement_events (event_id, tenant_id, post_id, kind,
                         quantity, occurred_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        format!("eng_{n}_{d:02}_{kind}"),
                        tid,
                        post,
                        kind,
                        quantity as i64,
                        at(d, published + after),
                    ],
                );
            }
            for k in 0..rng.below(3) {
                exec(
                    "INSERT INTO conversions (conversion_id, tenant_id, post_id, kind, value,
                                              occurred_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        format!("conv_{n}_{d:02}_{k}"),
                        tid,
                        post,
                        if k == 0 { "purchase" } else { "lead" },
                        10.0 + rng.below(20_000) as f64 / 100.0,
                        at(d, published + 300 + 900 * k as i64),
                    ],
                );
            }
        }
    }
    tx.commit().unwrap();
}

/// Gives a database without the bundled schema the one thing a tenant session needs: a
/// `tenants` table with a row for each of `ids` (a session opens only for a known tenant).
pub fn register_tenants(db: &d1vec::Database, ids: &[&str]) {
    db.exec("CREATE TABLE IF NOT EXISTS tenants (tenant_id TEXT PRIMARY KEY)")
        .unwrap();
    for id in ids {
        db.prepare("INSERT OR IGNORE INTO tenants (tenant_id) VALUES (?1)")
            .bind([*id])
            .run()
            .unwrap();
    }
}
