//! Differential tests of tenant isolation. The oracle is the admin connection itself.
//!
//! Reads: queries generated from a small grammar over the bundled schema run twice, from
//! one abstract query: through `db.tenant(t)` as written, and on the admin connection with
//! every table reference replaced by what the tenant is entitled to see, spelled out by
//! hand here (independently of `d1vec::catalog`):
//!
//! - a tenant-private table `T` becomes `(SELECT * FROM main.T WHERE tenant_id = '<t>')`;
//! - a k-anonymous rollup becomes `(SELECT * FROM main.T WHERE tenant_count >= 5)`;
//! - `skills` becomes a subquery listing every column but `origin_tenant_id`;
//! - the other shared tables are read as they are.
//!
//! Both must return the same columns and the same rows (as multisets, or as sequences when
//! the query has a total `ORDER BY`).
//!
//! Writes: random INSERT/UPDATE/DELETE statements (with every conflict clause) run through
//! a tenant session on one database, and the same operation, scoped by hand with an
//! explicit `tenant_id`, runs on the admin connection of a second, identical database; see
//! [`oracle_plan`] for the oracle's rules.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};

use d1vec::sql::migrate;
use d1vec::{Database, Error, Param, TenantSession};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;

/// The tenants: one with a quote in its id, one without any rows.
const TENANTS: [&str; 5] = ["t_a", "t_b", "t'x", "t_d", "t_e"];
/// A short tag per tenant, used in its row ids (the quote tenant's ids carry a quote too).
const TAGS: [&str; 5] = ["a", "b", "x'", "d", "e"];
/// How much data each tenant has (0: none).
const SCALE: [usize; 5] = [4, 3, 3, 1, 0];

// ---------------------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------------------

/// A fixed-seed linear congruential generator: the fixture has no other randomness.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as usize
    }

    fn below(&mut self, n: usize) -> usize {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// An SQL string literal.
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// An SQL literal for an optional string.
fn opt(s: Option<&str>) -> String {
    s.map_or_else(|| "NULL".to_owned(), lit)
}

/// A database with the bundled schema and the fixture's rows.
fn fixture() -> Database {
    let db = Database::open_in_memory().unwrap();
    db.apply_migrations(&migrate::bundled()).unwrap();
    db.exec(&fixture_sql()).unwrap();
    pin_default_times(&db);
    db
}

/// Replaces the `created_at`/`updated_at` defaults (the wall clock, which differs between
/// the session's database and the oracle's) with times derived from the rowid, so that a
/// predicate comparing times gives the same answer in both.
fn pin_default_times(db: &Database) {
    let tables = db
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'd1_%'")
        .raw(false)
        .unwrap();
    for t in tables {
        let table = t[0].as_str().unwrap();
        for c in ["created_at", "updated_at"] {
            let has = db
                .prepare("SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2")
                .bind([table, c])
                .raw(false)
                .unwrap();
            if has[0][0] == 1 {
                db.exec(&format!(
                    "UPDATE \"{table}\" SET {c} = strftime('%Y-%m-%dT%H:%M:%fZ', '2026-01-01', '+' || (rowid % 5) || ' minutes') WHERE {c} NOT LIKE '2026-01-01%'"
                ))
                .unwrap();
            }
        }
    }
}

/// The fixture as one script. Values overlap between tenants on purpose (names, emails,
/// dates, external ids), so a predicate on a value often matches rows of several tenants.
fn fixture_sql() -> String {
    let mut rng = Lcg(0x00d1_7ec0);
    let mut s = String::new();
    let infos = [
        ("Alpha", "pro", "eu", Some("retail")),
        ("Beta", "free", "us", None),
        ("Quote's", "starter", "apac", Some("saas")),
        ("Delta", "enterprise", "us", Some("retail")),
        ("Empty", "free", "eu", None),
    ];
    for (t, (name, plan, region, industry)) in TENANTS.iter().zip(infos) {
        s += &format!(
            "INSERT INTO tenants (tenant_id, name, plan, region, industry) VALUES ({}, {}, '{plan}', '{region}', {});\n",
            lit(t),
            lit(name),
            opt(industry)
        );
    }
    // Shared tables: skills contributed by tenants, guards, and rollups on both sides of k.
    let skills = [
        ("s1", "Hook", "opening", "active", Some("t_a")),
        ("s2", "Listicle", "structure", "active", Some("t_b")),
        ("s3", "O'Reilly style", "voice", "draft", None),
        ("s4", "Case study", "structure", "deprecated", Some("t'x")),
        ("s5", "Teaser", "opening", "active", None),
    ];
    for (i, (id, name, cat, status, origin)) in skills.iter().enumerate() {
        s += &format!(
            "INSERT INTO skills (skill_id, name, category, status, version, origin_tenant_id, description) VALUES ('{id}', {}, '{cat}', '{status}', {}, {}, {});\n",
            lit(name),
            i % 3 + 1,
            opt(*origin),
            opt((i % 2 == 0).then_some("shared pattern"))
        );
    }
    for (id, name, severity) in [
        ("g1", "No banned words", "error"),
        ("g2", "Length", "warning"),
        ("g3", "Tone", "info"),
    ] {
        s += &format!(
            "INSERT INTO guards (guard_id, name, severity) VALUES ('{id}', '{name}', '{severity}');\n"
        );
    }
    for (skill, date, uses, count) in [
        ("s1", "2026-01-01", 10, 7),
        ("s1", "2026-01-02", 3, 2),
        ("s2", "2026-01-01", 8, 5),
        ("s2", "2026-01-02", 30, 12),
        ("s3", "2026-01-03", 4, 4),
        ("s4", "2026-01-01", 1, 0),
        ("s5", "2026-01-03", 6, 6),
    ] {
        s += &format!(
            "INSERT INTO skill_metrics_daily (skill_id, date, uses, approval_rate, pass_rate, tenant_count) VALUES ('{skill}', '{date}', {uses}, 0.5, 0.25, {count});\n"
        );
    }
    for (guard, date, evals, fails, count) in [
        ("g1", "2026-01-01", 10, 2, 5),
        ("g1", "2026-01-02", 4, 1, 4),
        ("g2", "2026-01-01", 3, 0, 3),
        ("g3", "2026-01-02", 9, 9, 9),
    ] {
        s += &format!(
            "INSERT INTO guard_metrics_daily (guard_id, date, evaluations, failures, tenant_count) VALUES ('{guard}', '{date}', {evals}, {fails}, {count});\n"
        );
    }
    let emails = ["ann@x.test", "bob@x.test", "o'neil@x.test", "cy@y.test"];
    let names = ["Spring", "Fall", "O'Brien push", "Launch"];
    let platforms = ["linkedin", "twitter", "instagram", "facebook"];
    for (k, (t, g)) in TENANTS.iter().zip(TAGS).enumerate() {
        let n = SCALE[k];
        if n == 0 {
            continue;
        }
        let t = lit(t);
        // The tag as it appears inside an SQL string literal.
        let ge = g.replace('\'', "''");
        let users: Vec<String> = (0..n).map(|i| format!("u_{g}{i}")).collect();
        for (i, u) in users.iter().enumerate() {
            s += &format!(
                "INSERT INTO users (user_id, tenant_id, email, display_name, role, status) VALUES ({}, {t}, {}, {}, '{}', '{}');\n",
                lit(u),
                lit(emails[(i + k) % emails.len()]),
                opt([Some("Ann"), None, Some("O'Neil"), Some("Bob")][(i + k) % 4]),
                rng.pick(&["owner", "admin", "editor", "viewer"]),
                rng.pick(&["invited", "active", "active", "disabled"]),
            );
        }
        // The last campaign of every tenant is never referenced.
        let campaigns: Vec<String> = (0..=n).map(|i| format!("c_{g}{i}")).collect();
        for (i, c) in campaigns.iter().enumerate() {
            let starts = (rng.below(3) > 0).then(|| format!("2026-0{}-01", 1 + rng.below(4)));
            let ends = starts
                .as_ref()
                .filter(|_| i % 2 == 0)
                .map(|_| "2026-09-30".to_owned());
            s += &format!(
                "INSERT INTO campaigns (campaign_id, tenant_id, name, objective, status, budget, currency, starts_at, ends_at) VALUES ({}, {t}, {}, {}, '{}', {:?}, '{}', {}, {});\n",
                lit(c),
                lit(names[rng.below(names.len())]),
                opt([None, Some("sales"), Some("awareness")][rng.below(3)]),
                rng.pick(&["draft", "active", "paused", "completed", "archived"]),
                rng.below(40) as f64 * 0.5,
                rng.pick(&["USD", "USD", "EUR"]),
                opt(starts.as_deref()),
                opt(ends.as_deref()),
            );
        }
        let referable = &campaigns[..n];
        let posts: Vec<String> = (0..2 * n + 2).map(|i| format!("p_{g}{i}")).collect();
        for (i, p) in posts.iter().enumerate() {
            let campaign = if i == 0 {
                Some(referable[0].as_str())
            } else {
                (rng.below(3) > 0).then(|| referable[rng.below(referable.len())].as_str())
            };
            s += &format!(
                "INSERT INTO published_posts (post_id, tenant_id, campaign_id, skill_id, platform, external_id, url, published_at) VALUES ({}, {t}, {}, {}, '{}', 'e{i}', {}, '2026-02-0{}T{}:00:00.000Z');\n",
                lit(p),
                opt(campaign),
                opt([None, Some("s1"), Some("s2"), Some("s3"), Some("s5")][rng.below(5)]),
                platforms[rng.below(platforms.len())],
                opt((i % 3 != 0).then(|| format!("https://x.test/{i}")).as_deref()),
                1 + rng.below(6),
                ["09", "12"][rng.below(2)],
            );
            if i % 2 == 0 {
                s += &format!(
                    "INSERT INTO post_metrics (post_id, tenant_id, impressions, reach, clicks, likes) VALUES ({}, {t}, {}, {}, {}, {});\n",
                    lit(p),
                    rng.below(5) * 100,
                    rng.below(300),
                    rng.below(20),
                    rng.below(50),
                );
            }
        }
        for i in 0..2 * n {
            s += &format!(
                "INSERT INTO conversions (conversion_id, tenant_id, post_id, kind, value, currency, occurred_at) VALUES ('v_{ge}{i}', {t}, {}, '{}', {:?}, 'USD', '2026-02-1{}T08:00:00.000Z');\n",
                opt((rng.below(4) > 0).then(|| posts[rng.below(posts.len())].as_str())),
                rng.pick(&["signup", "lead", "purchase", "subscription", "other"]),
                rng.below(20) as f64 * 0.5,
                rng.below(4),
            );
        }
        for i in 0..=n {
            s += &format!(
                "INSERT INTO content_requests (request_id, tenant_id, user_id, campaign_id, platform, brief, status) VALUES ('r_{ge}{i}', {t}, {}, {}, '{}', {}, '{}');\n",
                opt((rng.below(3) > 0).then(|| users[rng.below(users.len())].as_str())),
                opt((rng.below(2) > 0).then(|| referable[rng.below(referable.len())].as_str())),
                platforms[rng.below(platforms.len())],
                lit(["Write it", "Don't stop", "Launch"][rng.below(3)]),
                rng.pick(&["pending", "generating", "review", "approved"]),
            );
        }
        for d in 0..n.min(2) {
            let chunks = rng.below(3);
            s += &format!(
                "INSERT INTO knowledge_documents (doc_id, tenant_id, title, content_hash, status, chunk_count) VALUES ('k_{ge}{d}', {t}, {}, 'h{}', '{}', {chunks});\n",
                lit(["Handbook", "FAQ", "Pricing"][rng.below(3)]),
                rng.below(4),
                rng.pick(&["pending", "ready", "failed"]),
            );
            for j in 0..chunks {
                s += &format!(
                    "INSERT INTO knowledge_chunks (chunk_id, doc_id, tenant_id, ordinal, text, token_count) VALUES ('ch_{ge}{d}{j}', 'k_{ge}{d}', {t}, {j}, {}, {});\n",
                    lit(["intro", "pricing it's", "faq"][rng.below(3)]),
                    opt((j > 0).then(|| (rng.below(9) * 10).to_string()).as_deref()).replace('\'', ""),
                );
            }
        }
        for date in ["2026-02-01", "2026-02-02"] {
            s += &format!(
                "INSERT INTO tenant_metrics_daily (tenant_id, date, posts, impressions, engagements, conversions, revenue) VALUES ({t}, '{date}', {}, {}, {}, {}, {:?});\n",
                rng.below(5),
                rng.below(5) * 100,
                rng.below(40),
                rng.below(3),
                rng.below(10) as f64 * 0.5,
            );
        }
    }
    s
}

// ---------------------------------------------------------------------------------------
// The schema as the read grammar sees it
// ---------------------------------------------------------------------------------------

/// How a tenant may see a table: the oracle's rule for rewriting a reference to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Only the tenant's own rows.
    Private,
    /// Every row.
    Shared,
    /// Rows with `tenant_count >= 5`.
    KAnon,
    /// Every row, without the listed columns.
    Hidden(&'static [&'static str]),
    /// A CTE of the query itself, the same in both forms.
    Cte,
}

/// The tables the read grammar draws from.
const READ_TABLES: &[(&str, Class)] = &[
    ("tenants", Class::Private),
    ("users", Class::Private),
    ("campaigns", Class::Private),
    ("content_requests", Class::Private),
    ("published_posts", Class::Private),
    ("conversions", Class::Private),
    ("post_metrics", Class::Private),
    ("knowledge_documents", Class::Private),
    ("knowledge_chunks", Class::Private),
    ("tenant_metrics_daily", Class::Private),
    ("skills", Class::Hidden(&["origin_tenant_id"])),
    ("guards", Class::Shared),
    ("role_permissions", Class::Shared),
    ("skill_metrics_daily", Class::KAnon),
    ("guard_metrics_daily", Class::KAnon),
];

/// Column pairs that joins and correlated subqueries match on: `(table, columns, table,
/// columns)`.
type Relation = (
    &'static str,
    &'static [&'static str],
    &'static str,
    &'static [&'static str],
);

const RELATIONS: &[Relation] = &[
    ("published_posts", &["post_id"], "conversions", &["post_id"]),
    (
        "campaigns",
        &["campaign_id", "tenant_id"],
        "published_posts",
        &["campaign_id", "tenant_id"],
    ),
    (
        "published_posts",
        &["post_id"],
        "post_metrics",
        &["post_id"],
    ),
    (
        "knowledge_documents",
        &["doc_id"],
        "knowledge_chunks",
        &["doc_id"],
    ),
    ("users", &["user_id"], "content_requests", &["user_id"]),
    (
        "campaigns",
        &["campaign_id"],
        "content_requests",
        &["campaign_id"],
    ),
    ("skills", &["skill_id"], "published_posts", &["skill_id"]),
    (
        "skills",
        &["skill_id"],
        "skill_metrics_daily",
        &["skill_id"],
    ),
    (
        "guards",
        &["guard_id"],
        "guard_metrics_daily",
        &["guard_id"],
    ),
    ("tenants", &["tenant_id"], "campaigns", &["tenant_id"]),
    ("users", &["tenant_id"], "published_posts", &["tenant_id"]),
    ("users", &["role"], "role_permissions", &["role"]),
    (
        "published_posts",
        &["external_id"],
        "published_posts",
        &["external_id"],
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Text,
    Int,
    Real,
}

#[derive(Debug, Clone)]
struct Col {
    name: String,
    ty: Ty,
    /// Values predicates compare with: every value of the column in the whole database
    /// (all tenants), plus a few that match nothing.
    pool: Vec<Value>,
}

#[derive(Debug, Clone)]
struct Table {
    name: String,
    class: Class,
    /// The columns a tenant sees, in table order.
    cols: Vec<Col>,
    /// The primary key.
    key: Vec<String>,
}

/// The read grammar's view of the schema, built from the fixture through the admin.
struct Ctx {
    tables: Vec<Table>,
}

impl Ctx {
    fn new(db: &Database) -> Ctx {
        let tables = READ_TABLES
            .iter()
            .map(|&(name, class)| {
                let info = db
                    .prepare("SELECT name, type, pk FROM pragma_table_info(?1) ORDER BY cid")
                    .bind([name])
                    .raw(false)
                    .unwrap();
                let hidden: &[&str] = match class {
                    Class::Hidden(h) => h,
                    _ => &[],
                };
                let mut key: Vec<(i64, String)> = Vec::new();
                let mut cols = Vec::new();
                for row in info {
                    let col = row[0].as_str().unwrap().to_owned();
                    let pk = row[2].as_i64().unwrap();
                    if pk > 0 {
                        key.push((pk, col.clone()));
                    }
                    if hidden.contains(&col.as_str()) {
                        continue;
                    }
                    let ty = match row[1].as_str().unwrap() {
                        "INTEGER" => Ty::Int,
                        "REAL" => Ty::Real,
                        _ => Ty::Text,
                    };
                    let mut pool: Vec<Value> = db
                        .prepare(&format!(
                            "SELECT DISTINCT \"{col}\" FROM main.\"{name}\" ORDER BY 1 LIMIT 40"
                        ))
                        .raw(false)
                        .unwrap()
                        .into_iter()
                        .map(|mut r| r.remove(0))
                        .collect();
                    pool.extend(match ty {
                        Ty::Text => vec![Value::from("zz'none"), Value::from("")],
                        Ty::Int => vec![Value::from(-1), Value::from(3)],
                        Ty::Real => vec![Value::from(0.5), Value::from(1e9)],
                    });
                    cols.push(Col {
                        name: col,
                        ty,
                        pool,
                    });
                }
                key.sort();
                Table {
                    name: name.to_owned(),
                    class,
                    cols,
                    key: key.into_iter().map(|(_, c)| c).collect(),
                }
            })
            .collect();
        Ctx { tables }
    }

    fn table(&self, pick: u16) -> &Table {
        &self.tables[usize::from(pick) % self.tables.len()]
    }

    fn by_name(&self, name: &str) -> &Table {
        self.tables.iter().find(|t| t.name == name).unwrap()
    }
}

/// An SQL literal for a JSON value read from the database.
fn sql_value(v: &Value) -> String {
    match v {
        Value::Null => "NULL".to_owned(),
        Value::Number(n) if n.is_f64() => format!("{:?}", n.as_f64().unwrap()),
        Value::Number(n) => n.to_string(),
        Value::String(s) => lit(s),
        Value::Bool(b) => i64::from(*b).to_string(),
        other => lit(&other.to_string()),
    }
}

// ---------------------------------------------------------------------------------------
// The read grammar. Every choice is a number resolved against the schema when rendering,
// so one abstract query renders to both forms and shrinks well.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Pred {
    /// column, operator, value
    Cmp(u16, u8, u16),
    In(u16, Vec<u16>),
    /// column, value the pattern is cut from, pattern shape
    Like(u16, u16, u8),
    IsNull(u16, bool),
    /// `col [NOT] IN (SELECT sub_col FROM table [WHERE pred])`
    InSub {
        col: u16,
        table: u16,
        sub_col: u16,
        pred: Option<Box<Pred>>,
        not: bool,
    },
    /// `[NOT] EXISTS (SELECT 1 FROM ... WHERE <correlated on a relation> [AND pred])`
    Exists {
        rel: u16,
        pred: Option<Box<Pred>>,
        not: bool,
    },
    And(Box<Pred>, Box<Pred>),
    Or(Box<Pred>, Box<Pred>),
    Not(Box<Pred>),
}

#[derive(Debug, Clone)]
enum FromAst {
    Single { table: u16, bare: bool },
    Join { rel: u16, flip: bool, left: bool },
}

#[derive(Debug, Clone)]
enum Proj {
    Star,
    Cols(Vec<u16>),
    /// group-by columns, aggregates (kind, column), HAVING
    Agg(Vec<u16>, Vec<(u8, u16)>, bool),
}

#[derive(Debug, Clone)]
enum Order {
    None,
    /// picked columns (descending?) then every key column of every table in FROM
    Keys(Vec<(u16, bool)>, Option<u8>, Option<u8>),
    /// every output column by position
    Outputs(bool, Option<u8>),
}

#[derive(Debug, Clone)]
struct Select {
    from: FromAst,
    proj: Proj,
    pred: Option<Pred>,
    order: Order,
    distinct: bool,
}

#[derive(Debug, Clone)]
struct Side {
    table: u16,
    cols: Vec<u16>,
    pred: Option<Pred>,
}

#[derive(Debug, Clone)]
enum Query {
    Plain(Select),
    Union {
        all: bool,
        left: Side,
        right: Side,
        order: Option<(bool, Option<u8>)>,
    },
    Cte {
        from: FromAst,
        cols: Vec<u16>,
        pred: Option<Pred>,
        outer_pred: Option<Pred>,
        group: bool,
        order: Option<(bool, Option<u8>)>,
    },
}

fn pred_strategy() -> BoxedStrategy<Pred> {
    let leaf = prop_oneof![
        3 => (any::<u16>(), 0..8u8, any::<u16>()).prop_map(|(c, o, l)| Pred::Cmp(c, o, l)),
        1 => (any::<u16>(), prop::collection::vec(any::<u16>(), 1..4))
            .prop_map(|(c, ls)| Pred::In(c, ls)),
        1 => (any::<u16>(), any::<u16>(), 0..4u8).prop_map(|(c, l, s)| Pred::Like(c, l, s)),
        1 => (any::<u16>(), any::<bool>()).prop_map(|(c, n)| Pred::IsNull(c, n)),
    ];
    leaf.prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Pred::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Pred::Or(Box::new(a), Box::new(b))),
            inner.clone().prop_map(|p| Pred::Not(Box::new(p))),
            (
                any::<u16>(),
                any::<u16>(),
                any::<u16>(),
                prop::option::of(inner.clone()),
                prop::bool::weighted(0.3)
            )
                .prop_map(|(col, table, sub_col, pred, not)| Pred::InSub {
                    col,
                    table,
                    sub_col,
                    pred: pred.map(Box::new),
                    not,
                }),
            (
                any::<u16>(),
                prop::option::of(inner),
                prop::bool::weighted(0.3)
            )
                .prop_map(|(rel, pred, not)| Pred::Exists {
                    rel,
                    pred: pred.map(Box::new),
                    not,
                }),
        ]
    })
    .boxed()
}

fn from_strategy() -> impl Strategy<Value = FromAst> {
    prop_oneof![
        3 => (any::<u16>(), prop::bool::weighted(0.3))
            .prop_map(|(table, bare)| FromAst::Single { table, bare }),
        2 => (any::<u16>(), any::<bool>(), prop::bool::weighted(0.3))
            .prop_map(|(rel, flip, left)| FromAst::Join { rel, flip, left }),
    ]
}

fn limit() -> impl Strategy<Value = Option<u8>> {
    prop::option::of(0..6u8)
}

fn select_strategy() -> impl Strategy<Value = Select> {
    let proj = prop_oneof![
        1 => Just(Proj::Star),
        2 => prop::collection::vec(any::<u16>(), 1..4).prop_map(Proj::Cols),
        1 => (
            prop::collection::vec(any::<u16>(), 0..3),
            prop::collection::vec((0..7u8, any::<u16>()), 1..3),
            prop::bool::weighted(0.3)
        )
            .prop_map(|(g, a, h)| Proj::Agg(g, a, h)),
    ];
    let order = prop_oneof![
        2 => Just(Order::None),
        2 => (
            prop::collection::vec((any::<u16>(), any::<bool>()), 0..3),
            limit(),
            prop::option::of(0..4u8)
        )
            .prop_map(|(c, l, o)| Order::Keys(c, l, o)),
        1 => (any::<bool>(), limit()).prop_map(|(d, l)| Order::Outputs(d, l)),
    ];
    (
        from_strategy(),
        proj,
        prop::option::of(pred_strategy()),
        order,
        prop::bool::weighted(0.2),
    )
        .prop_map(|(from, proj, pred, order, distinct)| Select {
            from,
            proj,
            pred,
            order,
            distinct,
        })
}

fn side_strategy() -> impl Strategy<Value = Side> {
    (
        any::<u16>(),
        prop::collection::vec(any::<u16>(), 1..3),
        prop::option::of(pred_strategy()),
    )
        .prop_map(|(table, cols, pred)| Side { table, cols, pred })
}

fn query_strategy() -> impl Strategy<Value = Query> {
    let outputs_order = || prop::option::of((any::<bool>(), limit()));
    prop_oneof![
        4 => select_strategy().prop_map(Query::Plain),
        1 => (any::<bool>(), side_strategy(), side_strategy(), outputs_order()).prop_map(
            |(all, left, right, order)| Query::Union {
                all,
                left,
                right,
                order
            }
        ),
        1 => (
            from_strategy(),
            prop::collection::vec(any::<u16>(), 1..4),
            prop::option::of(pred_strategy()),
            prop::option::of(pred_strategy()),
            any::<bool>(),
            outputs_order()
        )
            .prop_map(|(from, cols, pred, outer_pred, group, order)| Query::Cte {
                from,
                cols,
                pred,
                outer_pred,
                group,
                order
            }),
    ]
}

// ---------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------

/// Which SQL to render from an abstract query.
#[derive(Debug, Clone, Copy)]
enum Form<'t> {
    /// As an application would write it, for a tenant session.
    Tenant,
    /// For the admin connection, with every table reference scoped to this tenant by hand.
    Oracle(&'t str),
    /// For the admin connection, unscoped (to measure how often scoping mattered).
    Admin,
}

/// The tables in scope: `(qualifier, table)`.
type Scope<'a> = Vec<(String, &'a Table)>;

const OPS: [&str; 8] = ["=", "<>", "<", "<=", ">", ">=", "IS", "IS NOT"];

struct Render<'c> {
    ctx: &'c Ctx,
    form: Form<'c>,
    next_alias: usize,
}

/// A rendered query: its SQL, how many columns it returns, and whether its order is total.
struct Rendered {
    sql: String,
    outputs: usize,
    ordered: bool,
}

fn pick<T>(items: &[T], n: u16) -> &T {
    &items[usize::from(n) % items.len()]
}

fn col_at<'a>(scope: &Scope<'a>, n: u16) -> (String, &'a Col) {
    let all: Vec<(&String, &'a Col)> = scope
        .iter()
        .flat_map(|(q, t)| t.cols.iter().map(move |c| (q, c)))
        .collect();
    let (q, c) = *pick(&all, n);
    (format!("{q}.{}", c.name), c)
}

fn value_at(col: &Col, n: u16) -> &Value {
    pick(&col.pool, n)
}

impl<'c> Render<'c> {
    fn new(ctx: &'c Ctx, form: Form<'c>) -> Self {
        Render {
            ctx,
            form,
            next_alias: 0,
        }
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.next_alias += 1;
        format!("{prefix}{}", self.next_alias)
    }

    /// A reference to `t` in FROM, named `alias` (which is `t`'s own name when `bare`).
    fn table_ref(&self, t: &Table, alias: &str, bare: bool) -> String {
        let name = &t.name;
        let plain = if bare {
            name.clone()
        } else {
            format!("{name} AS {alias}")
        };
        match (self.form, t.class) {
            (Form::Tenant, _) | (_, Class::Cte) => plain,
            (Form::Admin, _) => format!("main.{name} AS {alias}"),
            (Form::Oracle(tid), Class::Private) => format!(
                "(SELECT * FROM main.{name} WHERE tenant_id = {}) AS {alias}",
                lit(tid)
            ),
            (Form::Oracle(_), Class::Shared) => format!("main.{name} AS {alias}"),
            (Form::Oracle(_), Class::KAnon) => {
                format!("(SELECT * FROM main.{name} WHERE tenant_count >= 5) AS {alias}")
            }
            (Form::Oracle(_), Class::Hidden(_)) => {
                let cols: Vec<&str> = t.cols.iter().map(|c| c.name.as_str()).collect();
                format!("(SELECT {} FROM main.{name}) AS {alias}", cols.join(", "))
            }
        }
    }

    fn pred(&mut self, p: &Pred, scope: &Scope<'_>) -> String {
        let ctx = self.ctx;
        match p {
            Pred::Cmp(c, op, l) => {
                let (e, col) = col_at(scope, *c);
                let op = OPS[usize::from(*op) % OPS.len()];
                format!("{e} {op} {}", sql_value(value_at(col, *l)))
            }
            Pred::In(c, ls) => {
                let (e, col) = col_at(scope, *c);
                let vals: Vec<String> = ls.iter().map(|l| sql_value(value_at(col, *l))).collect();
                format!("{e} IN ({})", vals.join(", "))
            }
            Pred::Like(c, l, shape) => {
                let (e, col) = col_at(scope, *c);
                let text: Vec<char> = match value_at(col, *l) {
                    Value::String(s) => s.chars().collect(),
                    other => other.to_string().chars().collect(),
                };
                let part = |a: usize, b: usize| -> String {
                    text[a.min(text.len())..b.min(text.len())].iter().collect()
                };
                let pattern = match shape % 4 {
                    0 => format!("{}%", part(0, 2)),
                    1 => format!("%{}%", part(1, 3)),
                    2 => part(0, text.len()),
                    _ => format!("_{}", part(1, text.len())),
                };
                format!("{e} LIKE {}", lit(&pattern))
            }
            Pred::IsNull(c, not) => {
                let (e, _) = col_at(scope, *c);
                format!("{e} IS {}NULL", if *not { "NOT " } else { "" })
            }
            Pred::InSub {
                col,
                table,
                sub_col,
                pred,
                not,
            } => {
                let (e, _) = col_at(scope, *col);
                let t = ctx.table(*table);
                let alias = self.fresh("s");
                let from = self.table_ref(t, &alias, false);
                let sub: Scope<'_> = vec![(alias, t)];
                let (sc, _) = col_at(&sub, *sub_col);
                let filter = match pred {
                    Some(p) => format!(" WHERE {}", self.pred(p, &sub)),
                    None => String::new(),
                };
                let not = if *not { "NOT " } else { "" };
                format!("{e} {not}IN (SELECT {sc} FROM {from}{filter})")
            }
            Pred::Exists { rel, pred, not } => {
                // Correlate on a relation one of whose sides is in scope, if any.
                let mut candidates = Vec::new();
                for (q, t) in scope {
                    for &(ta, ca, tb, cb) in RELATIONS {
                        if ta == t.name {
                            candidates.push((q.clone(), ca, tb, cb));
                        }
                        if tb == t.name {
                            candidates.push((q.clone(), cb, ta, ca));
                        }
                    }
                }
                let alias = self.fresh("s");
                let (inner, mut conds) = if candidates.is_empty() {
                    (ctx.table(*rel), Vec::new())
                } else {
                    let (q, outer_cols, other, inner_cols) = pick(&candidates, *rel).clone();
                    let conds = outer_cols
                        .iter()
                        .zip(inner_cols)
                        .map(|(o, i)| format!("{alias}.{i} = {q}.{o}"))
                        .collect();
                    (ctx.by_name(other), conds)
                };
                let from = self.table_ref(inner, &alias, false);
                let sub: Scope<'_> = vec![(alias, inner)];
                if let Some(p) = pred {
                    conds.push(format!("({})", self.pred(p, &sub)));
                }
                let filter = if conds.is_empty() {
                    String::new()
                } else {
                    format!(" WHERE {}", conds.join(" AND "))
                };
                let not = if *not { "NOT " } else { "" };
                format!("{not}EXISTS (SELECT 1 FROM {from}{filter})")
            }
            Pred::And(a, b) => format!("({}) AND ({})", self.pred(a, scope), self.pred(b, scope)),
            Pred::Or(a, b) => format!("({}) OR ({})", self.pred(a, scope), self.pred(b, scope)),
            Pred::Not(a) => format!("NOT ({})", self.pred(a, scope)),
        }
    }

    /// The FROM clause and the tables it puts in scope.
    fn from(&mut self, f: &FromAst) -> (String, Scope<'c>) {
        let ctx = self.ctx;
        match f {
            FromAst::Single { table, bare } => {
                let t = ctx.table(*table);
                let alias = if *bare {
                    t.name.clone()
                } else {
                    self.fresh("q")
                };
                (self.table_ref(t, &alias, *bare), vec![(alias, t)])
            }
            FromAst::Join { rel, flip, left } => {
                let &(ta, ca, tb, cb) = pick(RELATIONS, *rel);
                let (ta, ca, tb, cb) = if *flip {
                    (tb, cb, ta, ca)
                } else {
                    (ta, ca, tb, cb)
                };
                let (a, b) = (ctx.by_name(ta), ctx.by_name(tb));
                let (qa, qb) = (self.fresh("q"), self.fresh("q"));
                let on: Vec<String> = ca
                    .iter()
                    .zip(cb)
                    .map(|(x, y)| format!("{qb}.{y} = {qa}.{x}"))
                    .collect();
                let join = if *left { "LEFT JOIN" } else { "JOIN" };
                let sql = format!(
                    "{} {join} {} ON {}",
                    self.table_ref(a, &qa, false),
                    self.table_ref(b, &qb, false),
                    on.join(" AND ")
                );
                (sql, vec![(qa, a), (qb, b)])
            }
        }
    }

    fn select(&mut self, s: &Select) -> Rendered {
        let (from, scope) = self.from(&s.from);
        let mut group = String::new();
        let mut grouped = false;
        let (list, outputs) = match &s.proj {
            Proj::Star if scope.len() == 1 => ("*".to_owned(), scope[0].1.cols.len()),
            Proj::Star => (format!("{}.*", scope[0].0), scope[0].1.cols.len()),
            Proj::Cols(cs) => {
                let items: Vec<String> = cs
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{} AS c{i}", col_at(&scope, *c).0))
                    .collect();
                (items.join(", "), items.len())
            }
            Proj::Agg(gs, aggs, having) => {
                grouped = true;
                let mut items: Vec<String> = Vec::new();
                let keys: Vec<String> = gs.iter().map(|g| col_at(&scope, *g).0).collect();
                for (i, k) in keys.iter().enumerate() {
                    items.push(format!("{k} AS g{i}"));
                }
                let numeric: Vec<(String, &Col)> = scope
                    .iter()
                    .flat_map(|(q, t)| t.cols.iter().map(move |c| (q, c)))
                    .filter(|(_, c)| c.ty != Ty::Text)
                    .map(|(q, c)| (format!("{q}.{}", c.name), c))
                    .collect();
                for (i, (kind, c)) in aggs.iter().enumerate() {
                    let any = col_at(&scope, *c).0;
                    let num = if numeric.is_empty() {
                        format!("length({any})")
                    } else {
                        pick(&numeric, *c).0.clone()
                    };
                    let agg = match kind % 7 {
                        0 => "count(*)".to_owned(),
                        1 => format!("count({any})"),
                        2 => format!("sum({num})"),
                        3 => format!("min({any})"),
                        4 => format!("max({any})"),
                        5 => format!("total({num})"),
                        _ => format!("count(DISTINCT {any})"),
                    };
                    items.push(format!("{agg} AS a{i}"));
                }
                if !keys.is_empty() {
                    group = format!(" GROUP BY {}", keys.join(", "));
                    if *having {
                        group += " HAVING count(*) > 1";
                    }
                }
                (items.join(", "), items.len())
            }
        };
        let filter = match &s.pred {
            Some(p) => format!(" WHERE {}", self.pred(p, &scope)),
            None => String::new(),
        };
        let distinct = if s.distinct { "DISTINCT " } else { "" };
        let mut sql = format!("SELECT {distinct}{list} FROM {from}{filter}{group}");
        let ordered = match &s.order {
            Order::None => false,
            Order::Keys(_, l, _) | Order::Outputs(_, l) if grouped || s.distinct => {
                let desc = matches!(&s.order, Order::Outputs(true, _));
                sql += &by_outputs(outputs, desc, *l);
                true
            }
            Order::Outputs(desc, l) => {
                sql += &by_outputs(outputs, *desc, *l);
                true
            }
            Order::Keys(cs, l, o) => {
                let mut terms: Vec<String> = cs
                    .iter()
                    .map(|(c, desc)| {
                        let dir = if *desc { " DESC" } else { "" };
                        format!("{}{dir}", col_at(&scope, *c).0)
                    })
                    .collect();
                for (q, t) in &scope {
                    terms.extend(t.key.iter().map(|k| format!("{q}.{k}")));
                }
                sql += &format!(" ORDER BY {}", terms.join(", "));
                if let Some(l) = l {
                    sql += &format!(" LIMIT {l} OFFSET {}", o.unwrap_or(0));
                }
                true
            }
        };
        Rendered {
            sql,
            outputs,
            ordered,
        }
    }

    fn side(&mut self, s: &Side, types: Option<&[Ty]>) -> (String, Vec<Ty>) {
        let ctx = self.ctx;
        let t = ctx.table(s.table);
        let alias = self.fresh("q");
        let from = self.table_ref(t, &alias, false);
        let scope: Scope<'_> = vec![(alias.clone(), t)];
        let mut items = Vec::new();
        let mut tys = Vec::new();
        match types {
            None => {
                for (i, c) in s.cols.iter().enumerate() {
                    let (e, col) = col_at(&scope, *c);
                    items.push(format!("{e} AS c{i}"));
                    tys.push(col.ty);
                }
            }
            Some(want) => {
                // Match the left side's types column by column, so that rows that compare
                // equal in an ORDER BY are also identical.
                for (i, ty) in want.iter().enumerate() {
                    let n = s.cols[i % s.cols.len()];
                    let same: Vec<&Col> = t.cols.iter().filter(|c| c.ty == *ty).collect();
                    let e = if same.is_empty() {
                        let cast = match ty {
                            Ty::Text => "TEXT",
                            Ty::Int => "INTEGER",
                            Ty::Real => "REAL",
                        };
                        format!("CAST({} AS {cast})", col_at(&scope, n).0)
                    } else {
                        format!("{alias}.{}", pick(&same, n).name)
                    };
                    items.push(format!("{e} AS c{i}"));
                    tys.push(*ty);
                }
            }
        }
        let filter = match &s.pred {
            Some(p) => format!(" WHERE {}", self.pred(p, &scope)),
            None => String::new(),
        };
        (
            format!("SELECT {} FROM {from}{filter}", items.join(", ")),
            tys,
        )
    }

    fn query(&mut self, q: &Query) -> Rendered {
        match q {
            Query::Plain(s) => self.select(s),
            Query::Union {
                all,
                left,
                right,
                order,
            } => {
                let (l, tys) = self.side(left, None);
                let (r, _) = self.side(right, Some(&tys));
                let op = if *all { "UNION ALL" } else { "UNION" };
                let mut sql = format!("{l} {op} {r}");
                if let Some((desc, lim)) = order {
                    sql += &by_outputs(tys.len(), *desc, *lim);
                }
                Rendered {
                    sql,
                    outputs: tys.len(),
                    ordered: order.is_some(),
                }
            }
            Query::Cte {
                from,
                cols,
                pred,
                outer_pred,
                group,
                order,
            } => {
                let (from, scope) = self.from(from);
                let mut items = Vec::new();
                let mut xcols = Vec::new();
                for (i, c) in cols.iter().enumerate() {
                    let (e, col) = col_at(&scope, *c);
                    items.push(format!("{e} AS c{i}"));
                    xcols.push(Col {
                        name: format!("c{i}"),
                        ..col.clone()
                    });
                }
                let filter = match pred {
                    Some(p) => format!(" WHERE {}", self.pred(p, &scope)),
                    None => String::new(),
                };
                let x = Table {
                    name: "cte_x".to_owned(),
                    class: Class::Cte,
                    cols: xcols,
                    key: Vec::new(),
                };
                let alias = self.fresh("q");
                let xref = self.table_ref(&x, &alias, false);
                let xscope: Scope<'_> = vec![(alias.clone(), &x)];
                let outer_filter = match outer_pred {
                    Some(p) => format!(" WHERE {}", self.pred(p, &xscope)),
                    None => String::new(),
                };
                let (list, outputs, grouping) = if *group {
                    (
                        format!("{alias}.c0 AS g0, count(*) AS n"),
                        2,
                        format!(" GROUP BY {alias}.c0"),
                    )
                } else {
                    ("*".to_owned(), cols.len(), String::new())
                };
                let mut sql = format!(
                    "WITH cte_x AS (SELECT {} FROM {from}{filter}) SELECT {list} FROM {xref}{outer_filter}{grouping}",
                    items.join(", ")
                );
                if let Some((desc, lim)) = order {
                    sql += &by_outputs(outputs, *desc, *lim);
                }
                Rendered {
                    sql,
                    outputs,
                    ordered: order.is_some(),
                }
            }
        }
    }
}

/// `ORDER BY 1, 2, ...` over every output column: a total order up to identical rows.
fn by_outputs(n: usize, desc: bool, limit: Option<u8>) -> String {
    let dir = if desc { " DESC" } else { "" };
    let terms: Vec<String> = (1..=n).map(|i| format!("{i}{dir}")).collect();
    let mut s = format!(" ORDER BY {}", terms.join(", "));
    if let Some(l) = limit {
        s += &format!(" LIMIT {l}");
    }
    s
}

fn render(ctx: &Ctx, form: Form<'_>, q: &Query) -> Rendered {
    Render::new(ctx, form).query(q)
}

/// Rows in a canonical order, for comparison as multisets.
fn sorted(mut rows: Vec<Vec<Value>>) -> Vec<Vec<Value>> {
    rows.sort_by_cached_key(|r| serde_json::to_string(r).unwrap());
    rows
}

fn proptest_runner(cases: u32) -> TestRunner {
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new(config)
}

#[test]
fn generated_reads_through_a_session_equal_hand_scoped_admin_reads() {
    let db = fixture();
    let ctx = Ctx::new(&db);
    let sessions: Vec<(&str, TenantSession)> = TENANTS
        .iter()
        .map(|t| (*t, db.tenant(t).unwrap()))
        .collect();
    let runs = Cell::new(0usize);
    let non_empty = Cell::new(0usize);
    let scoping_mattered = Cell::new(0usize);
    let mut runner = proptest_runner(4000);
    let result = runner.run(&query_strategy(), |q| {
        let mine = render(&ctx, Form::Tenant, &q);
        let unscoped = render(&ctx, Form::Admin, &q);
        let everything = db.prepare(&unscoped.sql).raw(true).map_err(|e| {
            TestCaseError::fail(format!("generated SQL is invalid: {}\n  {e}", unscoped.sql))
        })?;
        for (t, session) in &sessions {
            let oracle = render(&ctx, Form::Oracle(t), &q);
            let got0 = session.prepare(&mine.sql).raw(true);
            if let Err(e) = &got0 {
                if e.to_string().contains("outside the tenant's views")
                    && ["skills", "guards", "role_permissions"]
                        .iter()
                        .any(|t| e.to_string().contains(&format!("`{t}`")))
                {
                    continue;
                }
            }
            let got = got0.map_err(|e| {
                TestCaseError::fail(format!(
                    "tenant {t} refused a query the oracle runs:\n  {}\n  {e}",
                    mine.sql
                ))
            })?;
            let want = db.prepare(&oracle.sql).raw(true).map_err(|e| {
                TestCaseError::fail(format!("oracle failed: {}\n  {e}", oracle.sql))
            })?;
            let (got_cols, got_rows) = got.split_first().unwrap();
            let (want_cols, want_rows) = want.split_first().unwrap();
            prop_assert_eq!(got_cols, want_cols, "columns differ for {}", mine.sql);
            prop_assert_eq!(got_cols.len(), mine.outputs);
            let (got_rows, want_rows) = if mine.ordered {
                (got_rows.to_vec(), want_rows.to_vec())
            } else {
                (sorted(got_rows.to_vec()), sorted(want_rows.to_vec()))
            };
            prop_assert_eq!(
                &got_rows,
                &want_rows,
                "tenant {}:\n  session: {}\n  oracle:  {}",
                t,
                mine.sql,
                oracle.sql
            );
            runs.set(runs.get() + 1);
            if !got_rows.is_empty() {
                non_empty.set(non_empty.get() + 1);
            }
            if sorted(got_rows) != sorted(everything[1..].to_vec()) {
                scoping_mattered.set(scoping_mattered.get() + 1);
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // The comparison must not be vacuous: many results have rows, and for many the
    // tenant's answer differs from the unscoped one.
    let (runs, non_empty, mattered) = (runs.get(), non_empty.get(), scoping_mattered.get());
    eprintln!("STATS runs {runs} nonempty {non_empty} mattered {mattered}");

    assert!(
        non_empty * 3 >= runs,
        "{non_empty} of {runs} results had rows"
    );
    assert!(
        mattered * 3 >= runs,
        "scoping changed {mattered} of {runs} results"
    );
}

// ---------------------------------------------------------------------------------------
// Writes
// ---------------------------------------------------------------------------------------

/// A column a write may set: literal values to draw from, and row-dependent expressions.
struct WCol {
    name: &'static str,
    required: bool,
    values: &'static [&'static str],
    exprs: &'static [&'static str],
}

/// A table tenants write.
struct WTable {
    name: &'static str,
    id: &'static str,
    /// Columns besides the primary key that are unique per tenant: an UPDATE setting one of
    /// them (or the key) is confined to one row, so the outcome does not depend on the
    /// order rows are visited.
    unique: &'static [&'static str],
    cols: &'static [WCol],
}

const fn wcol(
    name: &'static str,
    required: bool,
    values: &'static [&'static str],
    exprs: &'static [&'static str],
) -> WCol {
    WCol {
        name,
        required,
        values,
        exprs,
    }
}

const WRITE_TABLES: &[WTable] = &[
    WTable {
        name: "campaigns",
        id: "campaign_id",
        unique: &[],
        cols: &[
            wcol(
                "name",
                true,
                &["'Spring'", "'O''Brien'", "NULL", "'Launch'"],
                &["name || '!'", "upper(name)", "objective"],
            ),
            wcol("objective", false, &["NULL", "'sales'"], &[]),
            wcol(
                "status",
                false,
                &["'draft'", "'active'", "'bogus'", "NULL"],
                &["CASE status WHEN 'draft' THEN 'active' ELSE 'draft' END"],
            ),
            wcol(
                "budget",
                false,
                &["0", "12.5", "-1", "NULL"],
                &["budget + 1", "budget * 2", "budget - 10"],
            ),
            wcol("currency", false, &["'USD'", "'EURO'"], &[]),
            wcol(
                "starts_at",
                false,
                &["NULL", "'2026-03-01'", "'2026-12-01'"],
                &["ends_at"],
            ),
            wcol("ends_at", false, &["NULL", "'2026-04-01'"], &["starts_at"]),
            wcol("created_at", false, &["'2026-01-01T00:00:00.000Z'"], &[]),
        ],
    },
    WTable {
        name: "users",
        id: "user_id",
        unique: &["email"],
        cols: &[
            wcol(
                "email",
                true,
                &[
                    "'ann@x.test'",
                    "'new@x.test'",
                    "'noat'",
                    "NULL",
                    "'o''neil@x.test'",
                    "'bob@x.test'",
                ],
                &[],
            ),
            wcol(
                "display_name",
                false,
                &["NULL", "'Zed'"],
                &["email", "display_name || '?'"],
            ),
            wcol(
                "role",
                false,
                &["'owner'", "'viewer'", "'root'"],
                &["CASE role WHEN 'owner' THEN 'viewer' ELSE 'owner' END"],
            ),
            wcol("status", false, &["'active'", "'disabled'", "NULL"], &[]),
            wcol("last_login_at", false, &["NULL", "'2026-02-01'"], &[]),
        ],
    },
    WTable {
        name: "content_requests",
        id: "request_id",
        unique: &[],
        cols: &[
            wcol(
                "user_id",
                false,
                &[
                    "NULL", "'u_a0'", "'u_a1'", "'u_b0'", "'u_x''0'", "'u_d0'", "'u_zz'",
                ],
                &[],
            ),
            wcol(
                "campaign_id",
                false,
                &["NULL", "'c_a0'", "'c_a4'", "'c_b1'", "'c_x''2'", "'c_d0'"],
                &[],
            ),
            wcol(
                "platform",
                true,
                &["'linkedin'", "'myspace'", "'threads'"],
                &[],
            ),
            wcol(
                "brief",
                true,
                &["'Go'", "'Don''t'", "NULL"],
                &["brief || ' v2'"],
            ),
            wcol("params", false, &["'{}'", "'not json'", "'{\"a\":1}'"], &[]),
            wcol("status", false, &["'pending'", "'approved'", "'nope'"], &[]),
        ],
    },
];

const INSERT_VERBS: [&str; 7] = [
    "INSERT",
    "INSERT OR IGNORE",
    "INSERT OR REPLACE",
    "REPLACE",
    "INSERT OR ABORT",
    "INSERT OR FAIL",
    "INSERT OR ROLLBACK",
];
const UPDATE_VERBS: [&str; 6] = [
    "UPDATE",
    "UPDATE OR IGNORE",
    "UPDATE OR REPLACE",
    "UPDATE OR ABORT",
    "UPDATE OR FAIL",
    "UPDATE OR ROLLBACK",
];

#[derive(Debug, Clone)]
enum WriteOp {
    Insert {
        table: u8,
        verb: u8,
        /// which columns the statement names (bit i: column i; bit 15 clear: required
        /// columns always)
        cols: u16,
        /// `tenant_id` named with this value: one of the tenants or NULL
        tenant: Option<u8>,
        /// per row: the id, and a value pick per column
        rows: Vec<(u16, Vec<u16>)>,
    },
    Update {
        table: u8,
        verb: u8,
        /// (column, kind, value): column 0 is tenant_id, 1 the id, then the table's columns;
        /// kind 0 a literal, 1 a row expression, 2 a scalar subquery
        sets: Vec<(u8, u8, u16)>,
        /// restrict to the row with this id (always when a unique column is set)
        id: Option<u16>,
        pred: Option<Pred>,
    },
    Delete {
        table: u8,
        id: Option<u16>,
        pred: Option<Pred>,
    },
}

fn write_strategy() -> impl Strategy<Value = WriteOp> {
    let small_pred = || prop::option::of(pred_strategy());
    prop_oneof![
        3 => (
            any::<u8>(),
            any::<u8>(),
            any::<u16>(),
            prop::option::weighted(0.3, any::<u8>()),
            prop::collection::vec(
                (any::<u16>(), prop::collection::vec(any::<u16>(), 8)),
                1..4
            )
        )
            .prop_map(|(table, verb, cols, tenant, rows)| WriteOp::Insert {
                table,
                verb,
                cols,
                tenant,
                rows
            }),
        2 => (
            any::<u8>(),
            any::<u8>(),
            prop::collection::vec((any::<u8>(), 0..3u8, any::<u16>()), 1..3),
            prop::option::of(any::<u16>()),
            small_pred()
        )
            .prop_map(|(table, verb, sets, id, pred)| WriteOp::Update {
                table,
                verb,
                sets,
                id,
                pred
            }),
        1 => (any::<u8>(), prop::option::of(any::<u16>()), small_pred())
            .prop_map(|(table, id, pred)| WriteOp::Delete { table, id, pred }),
    ]
}

/// What the write test needs besides the read context: ids to draw from, and which columns
/// have defaults.
struct WCtx {
    read: Ctx,
    /// per write table: every id in the fixture (all tenants), fresh ids, and NULL
    ids: Vec<Vec<Value>>,
    /// per write table: the columns with a DEFAULT, and its expression
    defaults: Vec<Vec<(String, String)>>,
}

impl WCtx {
    fn new(db: &Database) -> WCtx {
        let mut ids = Vec::new();
        let mut defaults = Vec::new();
        for t in WRITE_TABLES {
            let mut pool: Vec<Value> = db
                .prepare(&format!("SELECT {} FROM main.{} ORDER BY 1", t.id, t.name))
                .raw(false)
                .unwrap()
                .into_iter()
                .map(|mut r| r.remove(0))
                .collect();
            let letter = &t.name[..1];
            for i in 1..=3 {
                pool.push(Value::from(format!("{letter}_new{i}")));
            }
            pool.push(Value::Null);
            ids.push(pool);
            defaults.push(
                db.prepare(
                    "SELECT name, dflt_value FROM pragma_table_info(?1) WHERE dflt_value IS NOT NULL",
                )
                .bind([t.name])
                .raw(false)
                .unwrap()
                .into_iter()
                .map(|r| {
                    let text = |i: usize| r[i].as_str().unwrap().to_owned();
                    (text(0), text(1))
                })
                .collect(),
            );
        }
        WCtx {
            read: Ctx::new(db),
            ids,
            defaults,
        }
    }
}

/// The value a tenant pick names: one of the tenants, or NULL.
fn tenant_value(p: impl Into<usize>) -> Option<&'static str> {
    TENANTS.get(p.into() % (TENANTS.len() + 1)).copied()
}

/// What the oracle expects of one write.
#[derive(Debug, PartialEq)]
enum Expect {
    /// `Error::TenantViolation` for the acting tenant; nothing changes.
    Violation,
    /// `Error::Sql` with this primary result code (SQLite reports only the first failure,
    /// and a statement that fails on several rows may visit them in another order);
    /// nothing changes.
    SqlError(Option<rusqlite::ErrorCode>, String),
    /// Success, with this `meta.changes`.
    Changes(u64),
}

/// A write rendered for the session, and the oracle's verdict from running its scoped
/// equivalent on the oracle database (which it leaves changed exactly when it expects
/// success).
struct Planned {
    sql: String,
    oracle_sql: Vec<String>,
    expect: Expect,
}

/// Whether `id` of `table` is held by a row of a tenant other than `t` (in the oracle
/// database, which equals the tested one before the write).
fn held_by_other(oracle: &Database, table: &WTable, id: &Value, t: &str) -> bool {
    let n = oracle
        .prepare(&format!(
            "SELECT count(*) AS n FROM main.{} WHERE {} = ?1 AND tenant_id IS NOT ?2",
            table.name, table.id
        ))
        .bind([Param::from_json(id).unwrap(), Param::from(t)])
        .first_column("n")
        .unwrap();
    n != Some(Value::from(0))
}

/// Runs `statements` atomically on the oracle; with `then_refuse`, rolls them back after
/// they succeed. Returns the oracle's verdict.
fn run_oracle(oracle: &Database, statements: &[String], then_refuse: Option<Expect>) -> Expect {
    const SENTINEL: &str = "SELECT * FROM oracle_sentinel_refusal";
    let mut stmts: Vec<_> = statements.iter().map(|s| oracle.prepare(s)).collect();
    let refusal = then_refuse.is_some();
    if refusal {
        stmts.push(oracle.prepare(SENTINEL));
    }
    if stmts.is_empty() {
        return Expect::Changes(0);
    }
    match oracle.batch(&stmts) {
        Ok(results) => Expect::Changes(results.iter().map(|r| r.meta.changes).sum()),
        Err(e) if e.to_string().contains("oracle_sentinel_refusal") => {
            then_refuse.unwrap_or(Expect::Violation)
        }
        Err(Error::Sql(e)) => Expect::SqlError(e.sqlite_error_code(), e.to_string()),
        Err(e) => panic!("the oracle failed outside SQLite: {e}"),
    }
}

/// SQLite's failure for a key another row holds.
fn unique_failure() -> Expect {
    Expect::SqlError(
        Some(rusqlite::ErrorCode::ConstraintViolation),
        "UNIQUE constraint failed".to_owned(),
    )
}

/// Renders `op` for tenant `t`'s session, and decides what must happen by running its
/// scoped equivalent on the admin connection of `oracle`.
///
/// The oracle's semantics, for a session of tenant `t`:
///
/// - INSERT (any conflict clause) runs on the admin as one statement with `tenant_id = t`
///   prepended to every row, the same conflict clause and the same rows in the same order.
///   A NULL given explicitly for a column with a DEFAULT is replaced by that default: a
///   session writes through a view, whose INSTEAD OF trigger cannot tell an explicit NULL
///   from an omitted column (a known deviation from plain SQLite, which would refuse the
///   NULL in these NOT NULL columns).
/// - Except that a row naming a `tenant_id` other than `t` (or NULL) is refused with
///   `TenantViolation`, and a row whose primary key a row of another tenant holds fails
///   with SQLite's own `UNIQUE constraint failed` (the same error as for a key the tenant's
///   own row holds), whatever the conflict clause (the engine refuses rather than let
///   `OR REPLACE` delete the other tenant's row or `OR IGNORE` skip over it). Rows are visited in VALUES order, so an
///   error raised by a row before the refused one wins; a foreign key is only checked at
///   the end of a statement, which a refusal never reaches.
/// - UPDATE runs on the admin as `UPDATE ... WHERE (<where>) AND tenant_id = t` with the
///   same conflict clause; except that when at least one of `t`'s rows matches, a statement
///   that sets `tenant_id` to anything but `t`, or the primary key to a value another
///   tenant holds, is refused with `TenantViolation` (the generator keeps such values the
///   same for every row, so which row is visited first does not matter).
/// - DELETE runs on the admin as `DELETE ... WHERE (<where>) AND tenant_id = t`.
/// - Subqueries inside a write read the tables as the read oracle scopes them.
/// - Any error leaves the database unchanged; `meta.changes` equals the admin's `changes`.
fn oracle_plan(w: &WCtx, oracle: &Database, t: &str, op: &WriteOp) -> Planned {
    let tenant_lit = lit(t);
    match op {
        WriteOp::Insert {
            table,
            verb,
            cols,
            tenant,
            rows,
        } => {
            let ti = usize::from(*table) % WRITE_TABLES.len();
            let wt = &WRITE_TABLES[ti];
            let verb = pick(&INSERT_VERBS, u16::from(*verb));
            let force_required = cols & 0x8000 == 0;
            let named: Vec<(usize, &WCol)> = wt
                .cols
                .iter()
                .enumerate()
                .filter(|(i, c)| cols & (1 << i) != 0 || (force_required && c.required))
                .collect();
            let tenant = tenant.map(tenant_value);
            let mut names: Vec<&str> = vec![wt.id];
            names.extend(named.iter().map(|(_, c)| c.name));
            if tenant.is_some() {
                names.push("tenant_id");
            }
            let mut tuples = Vec::new();
            let mut oracle_tuples = Vec::new();
            let mut refused: Option<Expect> = None;
            for (id, picks) in rows {
                let id = pick(&w.ids[ti], *id);
                let mut values = vec![sql_value(id)];
                for (i, c) in &named {
                    values.push((*pick(c.values, picks[*i % picks.len()])).to_owned());
                }
                if let Some(v) = tenant {
                    values.push(opt(v));
                }
                tuples.push(format!("({})", values.join(", ")));
                if refused.is_some() {
                    continue;
                }
                if tenant.is_some_and(|v| v.is_some_and(|v| v != t)) {
                    refused = Some(Expect::Violation);
                    continue;
                }
                if held_by_other(oracle, wt, id, t) {
                    refused = Some(unique_failure());
                    continue;
                }
                let mut o_values = vec![tenant_lit.clone()];
                for (n, v) in names.iter().zip(&values) {
                    if *n == "tenant_id" {
                        continue;
                    }
                    let default = w.defaults[ti].iter().find(|(d, _)| d == n);
                    match default {
                        Some((_, expr)) if v == "NULL" => o_values.push(format!("({expr})")),
                        _ => o_values.push(v.clone()),
                    }
                }
                oracle_tuples.push(format!("({})", o_values.join(", ")));
            }
            let sql = format!(
                "{verb} INTO {} ({}) VALUES {}",
                wt.name,
                names.join(", "),
                tuples.join(", ")
            );
            let o_names: Vec<&str> = std::iter::once("tenant_id")
                .chain(names.iter().copied().filter(|n| *n != "tenant_id"))
                .collect();
            let mut oracle_sql = Vec::new();
            if refused.is_some() {
                // The rows before the refused one run, and may fail on their own; a foreign
                // key is checked only at the end of the statement, which never comes.
                oracle_sql.push("PRAGMA defer_foreign_keys = ON".to_owned());
            }
            if !oracle_tuples.is_empty() {
                oracle_sql.push(format!(
                    "{verb} INTO {} ({}) VALUES {}",
                    wt.name,
                    o_names.join(", "),
                    oracle_tuples.join(", ")
                ));
            }
            let expect = run_oracle(oracle, &oracle_sql, refused);
            Planned {
                sql,
                oracle_sql,
                expect,
            }
        }
        WriteOp::Update {
            table,
            verb,
            sets,
            id,
            pred,
        } => {
            let ti = usize::from(*table) % WRITE_TABLES.len();
            let wt = &WRITE_TABLES[ti];
            let verb = pick(&UPDATE_VERBS, u16::from(*verb));
            let mut assigned: Vec<&str> = Vec::new();
            let mut set_tenant: Option<Option<&str>> = None;
            let mut set_id: Option<&Value> = None;
            // One assignment list per form (subqueries differ).
            let mut lists = [Vec::new(), Vec::new()];
            let forms = [Form::Tenant, Form::Oracle(t)];
            for (c, kind, v) in sets {
                let c = usize::from(*c) % (wt.cols.len() + 2);
                let name = match c {
                    0 => "tenant_id",
                    1 => wt.id,
                    _ => wt.cols[c - 2].name,
                };
                if assigned.contains(&name) {
                    continue;
                }
                assigned.push(name);
                for (list, form) in lists.iter_mut().zip(forms) {
                    let value = match c {
                        0 => {
                            let tv = tenant_value(*v);
                            set_tenant = Some(tv);
                            opt(tv)
                        }
                        1 => {
                            let idv = pick(&w.ids[ti], *v);
                            set_id = Some(idv);
                            sql_value(idv)
                        }
                        _ => {
                            let col = &wt.cols[c - 2];
                            match kind {
                                1 if !col.exprs.is_empty() => (*pick(col.exprs, *v)).to_owned(),
                                2 => scalar_subquery(&w.read, form, col.name, *v),
                                _ => (*pick(col.values, *v)).to_owned(),
                            }
                        }
                    };
                    list.push(format!("{name} = {value}"));
                }
            }
            let single = assigned
                .iter()
                .any(|a| *a == wt.id || wt.unique.contains(a));
            let target = w.read.by_name(wt.name);
            let mut wheres = [Vec::new(), Vec::new()];
            for (wh, form) in wheres.iter_mut().zip(forms) {
                if let Some(idp) = id.or(single.then_some(0)) {
                    wh.push(format!(
                        "{}.{} = {}",
                        wt.name,
                        wt.id,
                        sql_value(pick(&w.ids[ti], idp))
                    ));
                }
                if let Some(p) = pred {
                    let scope: Scope<'_> = vec![(wt.name.to_owned(), target)];
                    wh.push(format!("({})", Render::new(&w.read, form).pred(p, &scope)));
                }
            }
            let [mine_where, oracle_where] = wheres;
            let [mine_sets, oracle_sets] = lists;
            let sql = format!(
                "{verb} {} SET {}{}",
                wt.name,
                mine_sets.join(", "),
                if mine_where.is_empty() {
                    String::new()
                } else {
                    format!(" WHERE {}", mine_where.join(" AND "))
                }
            );
            let mut scoped = oracle_where;
            scoped.push(format!("{}.tenant_id = {tenant_lit}", wt.name));
            let scoped = scoped.join(" AND ");
            let matched = oracle
                .prepare(&format!(
                    "SELECT count(*) AS n FROM main.{} WHERE {scoped}",
                    wt.name
                ))
                .first_column("n")
                .unwrap()
                != Some(Value::from(0));
            let refused = if !matched {
                None
            } else if set_tenant.is_some_and(|v| v != Some(t)) {
                Some(Expect::Violation)
            } else if set_id.is_some_and(|v| held_by_other(oracle, wt, v, t)) {
                Some(unique_failure())
            } else {
                None
            };
            let oracle_sql = vec![format!(
                "{verb} {} SET {} WHERE {scoped}",
                wt.name,
                oracle_sets.join(", ")
            )];
            let expect = match refused {
                Some(refusal) => refusal,
                None => run_oracle(oracle, &oracle_sql, None),
            };
            Planned {
                sql,
                oracle_sql,
                expect,
            }
        }
        WriteOp::Delete { table, id, pred } => {
            let ti = usize::from(*table) % WRITE_TABLES.len();
            let wt = &WRITE_TABLES[ti];
            let target = w.read.by_name(wt.name);
            let mut wheres = [Vec::new(), Vec::new()];
            for (wh, form) in wheres.iter_mut().zip([Form::Tenant, Form::Oracle(t)]) {
                if let Some(idp) = id {
                    wh.push(format!(
                        "{}.{} = {}",
                        wt.name,
                        wt.id,
                        sql_value(pick(&w.ids[ti], *idp))
                    ));
                }
                if let Some(p) = pred {
                    let scope: Scope<'_> = vec![(wt.name.to_owned(), target)];
                    wh.push(format!("({})", Render::new(&w.read, form).pred(p, &scope)));
                }
            }
            let [mine, mut scoped] = wheres;
            let sql = if mine.is_empty() {
                format!("DELETE FROM {}", wt.name)
            } else {
                format!("DELETE FROM {} WHERE {}", wt.name, mine.join(" AND "))
            };
            scoped.push(format!("{}.tenant_id = {tenant_lit}", wt.name));
            let oracle_sql = vec![format!(
                "DELETE FROM {} WHERE {}",
                wt.name,
                scoped.join(" AND ")
            )];
            let expect = run_oracle(oracle, &oracle_sql, None);
            Planned {
                sql,
                oracle_sql,
                expect,
            }
        }
    }
}

/// A scalar subquery over a table in the tenant's scope, for a SET of column `col`.
fn scalar_subquery(ctx: &Ctx, form: Form<'_>, col: &str, v: u16) -> String {
    let r = Render::new(ctx, form);
    let t = ctx.table(v);
    let from = r.table_ref(t, "sq", false);
    match col {
        "budget" => format!("(SELECT count(*) FROM {from})"),
        _ => format!("(SELECT max(sq.{}) FROM {from})", t.cols[0].name),
    }
}

/// Every row of every table, with its rowid; for tables with a `tenant_id`, only the rows
/// of tenants other than `except` (all rows when `except` is `None`).
fn rows_of_others(db: &Database, except: Option<&str>) -> BTreeMap<String, Vec<Vec<Value>>> {
    let tables = db
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .raw(false)
        .unwrap();
    let mut out = BTreeMap::new();
    for t in tables {
        let name = t[0].as_str().unwrap().to_owned();
        let has_tenant = db
            .prepare("SELECT count(*) AS n FROM pragma_table_info(?1) WHERE name = 'tenant_id'")
            .bind([name.as_str()])
            .first_column("n")
            .unwrap()
            == Some(Value::from(1));
        let rows = match except {
            Some(t) if has_tenant => db
                .prepare(&format!(
                    "SELECT rowid, * FROM \"{name}\" WHERE tenant_id IS NOT ?1 ORDER BY rowid"
                ))
                .bind([t])
                .raw(false),
            _ => db
                .prepare(&format!("SELECT rowid, * FROM \"{name}\" ORDER BY rowid"))
                .raw(false),
        };
        out.insert(name, rows.unwrap());
    }
    out
}

/// Every row of every table, with its rowid, and with the `created_at`/`updated_at`
/// defaults (the current time, which differs between two databases) reduced to their shape.
fn normalized(db: &Database) -> BTreeMap<String, Vec<Vec<Value>>> {
    let tables = db
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .raw(false)
        .unwrap();
    let mut out = BTreeMap::new();
    for t in tables {
        let name = t[0].as_str().unwrap().to_owned();
        if name.starts_with("d1_") {
            // The migrations' bookkeeping records when each database was migrated.
            continue;
        }
        let cols: Vec<String> = db
            .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
            .bind([name.as_str()])
            .raw(false)
            .unwrap()
            .into_iter()
            .map(|r| {
                let c = r[0].as_str().unwrap();
                if c == "created_at" || c == "updated_at" {
                    format!("CASE WHEN {c} LIKE '2026-01-01%' THEN {c} ELSE typeof({c}) || length({c}) END")
                } else {
                    format!("\"{c}\"")
                }
            })
            .collect();
        let rows = db
            .prepare(&format!(
                "SELECT rowid, {} FROM \"{name}\" ORDER BY rowid",
                cols.join(", ")
            ))
            .raw(false)
            .unwrap();
        out.insert(name, rows);
    }
    out
}

/// Applies one write through tenant `t`'s session on `db`, and its oracle on `oracle`, and
/// checks the outcome.
fn check_write(
    w: &WCtx,
    db: &Database,
    oracle: &Database,
    sessions: &mut HashMap<usize, TenantSession>,
    ti: usize,
    op: &WriteOp,
    tally: &mut [usize; 3],
) -> Result<(), TestCaseError> {
    let t = TENANTS[ti];
    let session = sessions.entry(ti).or_insert_with(|| db.tenant(t).unwrap());
    let before = rows_of_others(db, None);
    let others_before = rows_of_others(db, Some(t));
    let plan = oracle_plan(w, oracle, t, op);
    let got = session.prepare(&plan.sql).run();
    let context = || {
        format!(
            "tenant {t}: {}\n  oracle: {:?}\n  expected {:?}, got {:?}",
            plan.sql, plan.oracle_sql, plan.expect, got
        )
    };
    if let Err(e) = &got {
        if e.to_string().contains("outside the tenant's views") {
            // A refused shape: the oracle has already applied its plan, so the two
            // databases part here and the rest of the case would compare nothing useful.
            prop_assert!(
                rows_of_others(db, None) == before,
                "a refused write changed data: {}",
                context()
            );
            return Err(TestCaseError::reject(
                "the session refuses this query shape",
            ));
        }
    }
    let matches = match (&plan.expect, &got) {
        (Expect::Violation, Err(Error::TenantViolation { tenant, .. })) => tenant == t,
        (Expect::SqlError(code, _), Err(Error::Sql(e))) => *code == e.sqlite_error_code(),
        (Expect::Changes(n), Ok(r)) => r.meta.changes == *n,
        _ => false,
    };
    prop_assert!(matches, "{}", context());
    tally[match plan.expect {
        Expect::Violation => 0,
        Expect::SqlError(..) => 1,
        Expect::Changes(_) => 2,
    }] += 1;
    prop_assert!(
        rows_of_others(db, Some(t)) == others_before,
        "other tenants' rows changed: {}",
        context()
    );
    if got.is_err() {
        prop_assert!(
            rows_of_others(db, None) == before,
            "a refused write changed data: {}",
            context()
        );
    }
    let (mine, theirs) = (normalized(db), normalized(oracle));
    for (table, rows) in &mine {
        prop_assert_eq!(
            rows,
            &theirs[table],
            "table {} differs from the oracle after {}",
            table,
            context()
        );
    }
    Ok(())
}

#[test]
fn generated_writes_through_a_session_match_hand_scoped_admin_writes() {
    let template = fixture();
    let w = WCtx::new(&template);
    let tally = std::cell::RefCell::new([0usize; 3]);
    let mut runner = proptest_runner(500);
    let ops = prop::collection::vec((0..TENANTS.len(), write_strategy()), 1..8);
    let result = runner.run(&ops, |ops| {
        let db = fixture();
        let oracle = fixture();
        let mut sessions = HashMap::new();
        let mut tally = tally.borrow_mut();
        for (ti, op) in &ops {
            check_write(&w, &db, &oracle, &mut sessions, *ti, op, &mut tally)?;
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // Each outcome must have come up often enough for the property to mean something.
    let [violations, errors, successes] = *tally.borrow();
    eprintln!("STATS v {violations} e {errors} ok {successes}");
    assert!(violations >= 20, "only {violations} refusals");
    assert!(errors >= 20, "only {errors} SQL errors");
    assert!(successes >= 60, "only {successes} successful writes");
}

// ---------------------------------------------------------------------------------------
// Foreign keys through a session
// ---------------------------------------------------------------------------------------

#[test]
fn deleting_a_referenced_campaign_fails_on_its_foreign_key_and_changes_nothing() {
    let db = fixture();
    let a = db.tenant("t_a").unwrap();
    let referenced = db
        .prepare("SELECT campaign_id FROM campaigns WHERE tenant_id = 't_a' AND campaign_id IN (SELECT campaign_id FROM published_posts) ORDER BY 1")
        .first_column("campaign_id")
        .unwrap()
        .unwrap();
    let before = rows_of_others(&db, None);
    let err = a
        .prepare("DELETE FROM campaigns WHERE campaign_id = ?1")
        .bind([Param::from_json(&referenced).unwrap()])
        .run()
        .unwrap_err();
    match &err {
        Error::Sql(e) => assert!(
            e.to_string().contains("FOREIGN KEY constraint failed"),
            "{e}"
        ),
        other => panic!("expected a foreign key error, got {other:?}"),
    }
    assert_eq!(
        rows_of_others(&db, None),
        before,
        "a failed delete changed data"
    );

    // Deleting every campaign at once fails the same way, and takes nothing with it.
    let err = a.prepare("DELETE FROM campaigns").run().unwrap_err();
    assert!(
        matches!(&err, Error::Sql(e) if e.to_string().contains("FOREIGN KEY")),
        "{err:?}"
    );
    assert_eq!(rows_of_others(&db, None), before);

    // An unreferenced campaign goes, and only it.
    let free = db
        .prepare(
            "SELECT campaign_id FROM campaigns c WHERE tenant_id = 't_a'
               AND NOT EXISTS (SELECT 1 FROM published_posts p WHERE p.campaign_id = c.campaign_id)
               AND NOT EXISTS (SELECT 1 FROM content_requests r WHERE r.campaign_id = c.campaign_id)
               AND NOT EXISTS (SELECT 1 FROM campaign_metrics_daily m WHERE m.campaign_id = c.campaign_id)
             ORDER BY 1",
        )
        .first_column("campaign_id")
        .unwrap()
        .unwrap();
    let done = a
        .prepare("DELETE FROM campaigns WHERE campaign_id = ?1")
        .bind([Param::from_json(&free).unwrap()])
        .run()
        .unwrap();
    assert_eq!(done.meta.changes, 1);
    let mut expected = before.clone();
    expected
        .get_mut("campaigns")
        .unwrap()
        .retain(|row| row[1] != free);
    assert_eq!(rows_of_others(&db, None), expected);

    // Another tenant's campaign id, referenced or not, is simply not there.
    let theirs = a
        .prepare("DELETE FROM campaigns WHERE campaign_id IN ('c_b0', 'c_b3')")
        .run()
        .unwrap();
    assert_eq!(theirs.meta.changes, 0);
    assert_eq!(rows_of_others(&db, None), expected);
}
