//! The demo dataset generator: loads into the bundled schema with every constraint on,
//! is deterministic per seed, and has the shape the demo's tour relies on.

use d1vec::demo::{generate, Dataset, Scale};
use d1vec::rollup::RollupRange;
use d1vec::sql::migrate;
use d1vec::Database;
use serde_json::Value as Json;

fn fresh() -> Database {
    let db = Database::open_in_memory().unwrap();
    db.apply_migrations(&migrate::bundled()).unwrap();
    db
}

#[track_caller]
fn scalar(db: &Database, sql: &str) -> i64 {
    match db.prepare(sql).first_column("n").unwrap() {
        Some(Json::Number(n)) => n.as_i64().unwrap(),
        other => panic!("{sql}: {other:?}"),
    }
}

/// Loads `data` and checks that every table holds exactly the rows generated.
#[track_caller]
fn check_loaded(data: &Dataset) -> Database {
    let db = fresh();
    data.load(&db).unwrap();
    assert_eq!(
        scalar(&db, "SELECT count(*) AS n FROM pragma_foreign_key_check"),
        0
    );
    for (table, rows) in data.counts() {
        let n = scalar(&db, &format!("SELECT count(*) AS n FROM {table}"));
        assert_eq!(n as usize, rows, "rows in {table} (seed {})", data.seed);
    }
    db
}

#[test]
fn tiny_loads_and_to_sql_executes() {
    let data = generate(7, Scale::Tiny);
    assert_eq!(data.row_count("tenants"), 3);
    for (table, rows) in data.counts() {
        assert!(rows <= 400, "{table} has {rows} rows at Tiny scale");
    }
    assert!(data.row_count("knowledge_chunks") >= 10);
    check_loaded(&data);
    // The SQL text is accepted by the same schema, foreign keys on.
    let db = fresh();
    db.exec(&data.to_sql()).unwrap();
    for (table, rows) in data.counts() {
        let n = scalar(&db, &format!("SELECT count(*) AS n FROM {table}"));
        assert_eq!(n as usize, rows, "rows in {table} from to_sql");
    }
}

#[test]
fn same_seed_same_bytes_other_seed_differs() {
    let a = generate(42, Scale::Tiny).to_sql();
    assert_eq!(a, generate(42, Scale::Tiny).to_sql());
    assert_ne!(a, generate(43, Scale::Tiny).to_sql());
    let demo = generate(42, Scale::Demo).to_sql();
    assert_eq!(demo, generate(42, Scale::Demo).to_sql());
}

#[test]
fn demo_scale_shape_and_rollups() {
    let data = generate(42, Scale::Demo);
    let ranges: &[(&str, usize, usize)] = &[
        ("tenants", 12, 12),
        ("users", 40, 80),
        ("brand_profiles", 12, 12),
        ("campaigns", 40, 80),
        ("platform_connections", 24, 48),
        ("knowledge_documents", 200, 400),
        ("knowledge_chunks", 2_000, 5_000),
        ("content_requests", 2_000, 6_000),
        ("content_drafts", 2_000, 8_000),
        ("revision_events", 10_000, 40_000),
        ("workflow_runs", 2_000, 8_000),
        ("published_posts", 1_000, 5_000),
        ("post_metrics", 1_000, 5_000),
        ("engagement_events", 5_000, 50_000),
        ("conversions", 300, 5_000),
        ("experiments", 12, 48),
        ("experiment_variants", 24, 96),
    ];
    for &(table, lo, hi) in ranges {
        let n = data.row_count(table);
        assert!(
            (lo..=hi).contains(&n),
            "{table}: {n} rows, expected {lo}..={hi}"
        );
    }
    assert!(data.row_count("skills") + data.row_count("guards") >= 100);
    let db = check_loaded(&data);

    // Every tenant has knowledge, and a chunk's vector id is its chunk id.
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) AS n FROM tenants t WHERE NOT EXISTS
                 (SELECT 1 FROM knowledge_chunks c WHERE c.tenant_id = t.tenant_id)"
        ),
        0
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) AS n FROM knowledge_chunks WHERE vector_id IS NOT chunk_id"
        ),
        0
    );
    // Every day of the window has revision events from at least 5 tenants.
    let days = scalar(
        &db,
        "SELECT count(DISTINCT date(created_at)) AS n FROM revision_events",
    );
    assert!(days >= 100, "{days} active days");
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) AS n FROM (SELECT date(created_at) AS d FROM revision_events
                 GROUP BY d HAVING count(DISTINCT tenant_id) < 5)"
        ),
        0
    );

    // The k-anonymous rollups have rows on both sides of k = 5.
    db.rollup(&RollupRange::All).unwrap();
    for table in ["skill_metrics_daily", "guard_metrics_daily"] {
        let shown = scalar(
            &db,
            &format!("SELECT count(*) AS n FROM {table} WHERE tenant_count >= 5"),
        );
        let suppressed = scalar(
            &db,
            &format!("SELECT count(*) AS n FROM {table} WHERE tenant_count < 5"),
        );
        assert!(
            shown > 0 && suppressed > 0,
            "{table}: {shown} shown, {suppressed} suppressed"
        );
    }
    assert!(
        scalar(
            &db,
            "SELECT count(*) AS n FROM campaign_metrics_daily WHERE revenue > 0"
        ) > 0
    );
}
