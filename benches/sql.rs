//! What tenant isolation costs: the same statements through the admin surface and through a
//! tenant session, and the price of opening a session. Report ratios from one run:
//! `cargo bench --bench sql`.

use criterion::{criterion_group, criterion_main, Criterion};
use d1vec::sql::migrate;
use d1vec::Database;

fn fixture() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Database::open(dir.path().join("bench.sqlite")).expect("open");
    db.apply_migrations(&migrate::bundled()).expect("migrate");
    let mut script = String::new();
    for t in 0..20 {
        script.push_str(&format!(
            "INSERT INTO tenants (tenant_id, name, plan, region) VALUES ('t{t}', 'T{t}', 'pro', 'us');"
        ));
        script.push_str(&format!(
            "INSERT INTO campaigns (campaign_id, tenant_id, name) \
             WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 499) \
             SELECT 't{t}_c' || i, 't{t}', 'campaign ' || i FROM n;"
        ));
    }
    db.exec(&script).expect("fixture");
    (dir, db)
}

fn bench(c: &mut Criterion) {
    let (_dir, db) = fixture();
    let session = db.tenant("t7").expect("session");
    let mut g = c.benchmark_group("point_query");
    g.bench_function("admin", |b| {
        b.iter(|| {
            db.prepare("SELECT name FROM campaigns WHERE tenant_id = ?1 AND campaign_id = ?2")
                .bind(["t7", "t7_c250"])
                .first()
                .expect("query")
        })
    });
    g.bench_function("tenant_session", |b| {
        b.iter(|| {
            session
                .prepare("SELECT name FROM campaigns WHERE campaign_id = ?1")
                .bind(["t7_c250"])
                .first()
                .expect("query")
        })
    });
    g.finish();
    let mut g = c.benchmark_group("tenant_scan_500_rows");
    g.bench_function("admin", |b| {
        b.iter(|| {
            db.prepare("SELECT * FROM campaigns WHERE tenant_id = ?1")
                .bind(["t7"])
                .all()
                .expect("query")
        })
    });
    g.bench_function("tenant_session", |b| {
        b.iter(|| {
            session
                .prepare("SELECT * FROM campaigns")
                .all()
                .expect("query")
        })
    });
    g.finish();
    c.bench_function("open_tenant_session", |b| {
        b.iter(|| db.tenant("t3").expect("session"))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
