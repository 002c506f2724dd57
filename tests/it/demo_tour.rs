//! `d1vec demo`: the tour's facts, checked against SQLite and brute force at `Scale::Tiny`
//! (library and command line), and the committed dataset against its generator.

use std::path::Path;

use d1vec::demo::build::{self, voice_text};
use d1vec::demo::tour::{self, Step, Tour, TENANT_A, TENANT_B};
use d1vec::demo::{archive, Quiet, Scale, DEMO_SEED};
use d1vec::vectorize::types::Vector;
use d1vec::Database;
use serde_json::Value as Json;

use crate::cli::d1vec;
use crate::oracle::{brute, cosine};

#[track_caller]
fn step<'t>(tour: &'t Tour, id: &str) -> &'t Step {
    tour.step(id)
        .unwrap_or_else(|| panic!("the tour has no step {id}"))
}

fn strs(values: Vec<&Json>) -> Vec<String> {
    values
        .into_iter()
        .map(|v| v.as_str().unwrap_or_default().to_owned())
        .collect()
}

fn floats(values: Vec<&Json>) -> Vec<f64> {
    values.into_iter().map(|v| v.as_f64().unwrap()).collect()
}

/// The admin's rows of `sql` as arrays in column order.
fn raw(db: &Database, sql: &str) -> Vec<Vec<Json>> {
    db.prepare(sql).raw(false).unwrap()
}

/// Brute-force knowledge search of `tenant`'s FAQ chunks: what the tour's search must return.
fn brute_knowledge(db: &Database, tenant: &str) -> Vec<(String, f64)> {
    let rows = raw(
        db,
        &format!(
            "SELECT c.vector_id, c.text FROM knowledge_chunks c
             JOIN knowledge_documents d ON d.doc_id = c.doc_id
             WHERE c.tenant_id = '{tenant}' AND d.title LIKE 'FAQ:%'"
        ),
    );
    let stored: Vec<Vector> = rows
        .iter()
        .map(|r| {
            Vector::new(
                r[0].as_str().unwrap(),
                tour::embed(1536, r[1].as_str().unwrap()).unwrap(),
            )
        })
        .collect();
    let refs: Vec<&Vector> = stored.iter().collect();
    let query = tour::embed(1536, tour::KNOWLEDGE_QUERY).unwrap();
    let mut ranked = brute(&refs, &query);
    ranked.truncate(tour::TOP_K);
    ranked
}

#[track_caller]
fn assert_search_is_brute(step: &Step, expected: &[(String, f64)]) {
    assert!(!expected.is_empty(), "{}: nothing to find", step.id);
    assert_eq!(
        strs(step.column("chunk_id")),
        expected
            .iter()
            .map(|(id, _)| id.clone())
            .collect::<Vec<_>>(),
        "{}",
        step.id
    );
    for (got, (_, want)) in floats(step.column("score")).iter().zip(expected) {
        assert!(
            (got - want).abs() < 1e-5,
            "{}: score {got} vs {want}",
            step.id
        );
    }
}

/// The owner of each chunk id, as SQLite has it.
fn owners(db: &Database, ids: &[String]) -> Vec<String> {
    ids.iter()
        .map(|id| {
            db.prepare("SELECT tenant_id FROM knowledge_chunks WHERE vector_id = ?1")
                .bind([id.as_str()])
                .first_column("tenant_id")
                .unwrap()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| panic!("{id} is not a knowledge chunk"))
        })
        .collect()
}

/// ROI per campaign of `tenant`, straight from the raw tables (no rollup):
/// `(campaign_id, posts, conversions, revenue, spend)` of campaigns with any activity.
fn roi_oracle(db: &Database, tenant: &str) -> Vec<(String, i64, i64, f64, f64)> {
    let rows = raw(
        db,
        &format!(
            "SELECT c.campaign_id,
               (SELECT count(*) FROM published_posts p WHERE p.campaign_id = c.campaign_id),
               (SELECT count(*) FROM conversions v JOIN published_posts p ON p.post_id = v.post_id
                 WHERE p.campaign_id = c.campaign_id),
               (SELECT total(v.value) FROM conversions v JOIN published_posts p ON p.post_id = v.post_id
                 WHERE p.campaign_id = c.campaign_id),
               (SELECT total(w.cost_usd) FROM workflow_runs w
                 JOIN content_requests r ON r.request_id = w.request_id
                 WHERE r.campaign_id = c.campaign_id),
               (SELECT count(*) FROM workflow_runs w
                 JOIN content_requests r ON r.request_id = w.request_id
                 WHERE r.campaign_id = c.campaign_id)
             FROM campaigns c WHERE c.tenant_id = '{tenant}'"
        ),
    );
    rows.iter()
        .filter(|r| {
            r[1].as_i64() != Some(0) || r[2].as_i64() != Some(0) || r[5].as_i64() != Some(0)
        })
        .map(|r| {
            (
                r[0].as_str().unwrap().to_owned(),
                r[1].as_i64().unwrap(),
                r[2].as_i64().unwrap(),
                r[3].as_f64().unwrap(),
                r[4].as_f64().unwrap(),
            )
        })
        .collect()
}

#[track_caller]
fn assert_roi_matches(db: &Database, tour: &Tour) {
    let step = step(tour, "roi");
    let mut expected = roi_oracle(db, TENANT_A);
    assert!(!expected.is_empty());
    expected.sort_by(|a, b| b.3.total_cmp(&a.3).then_with(|| a.0.cmp(&b.0)));
    let col = |name: &str| step.columns.iter().position(|c| c == name).unwrap();
    assert_eq!(step.rows.len(), expected.len());
    for (row, (id, posts, conversions, revenue, spend)) in step.rows.iter().zip(&expected) {
        assert_eq!(row[col("campaign_id")].as_str(), Some(id.as_str()));
        assert_eq!(row[col("posts")].as_i64(), Some(*posts), "{id}");
        assert_eq!(row[col("conversions")].as_i64(), Some(*conversions), "{id}");
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
        let got_revenue = row[col("revenue")].as_f64().unwrap();
        let got_spend = row[col("spend")].as_f64().unwrap();
        assert!(
            close(got_revenue, *revenue),
            "{id}: revenue {got_revenue} vs {revenue}"
        );
        assert!(
            close(got_spend, *spend),
            "{id}: spend {got_spend} vs {spend}"
        );
        match row[col("roi")].as_f64() {
            Some(roi) => assert!(close(roi, (revenue - spend) / spend), "{id}: roi {roi}"),
            None => assert_eq!(*spend, 0.0, "{id}: roi missing"),
        }
    }
}

/// The shared-skills step shows exactly the k-anonymous aggregate: the same query over
/// the rows with `tenant_count >= 5` only. Returns `(visible rows, suppressed rows)`.
#[track_caller]
fn assert_skills_k_anonymous(db: &Database, tour: &Tour) -> (usize, i64) {
    let step = step(tour, "shared_skills");
    let only_k = tour::SKILLS_SQL.replace(
        "FROM skill_metrics_daily m",
        "FROM (SELECT * FROM skill_metrics_daily WHERE tenant_count >= 5) m",
    );
    assert_ne!(only_k, tour::SKILLS_SQL);
    assert_eq!(step.rows, raw(db, &only_k));
    for min in step.column("min_tenants") {
        assert!(min.as_i64().unwrap() >= 5, "{min}");
    }
    let suppressed = raw(
        db,
        "SELECT count(*) FROM skill_metrics_daily WHERE tenant_count < 5",
    )[0][0]
        .as_i64()
        .unwrap();
    assert!(suppressed > 0, "no suppressed rows to hide");
    assert!(
        step.note.contains(&format!("{suppressed} of them")),
        "{}",
        step.note
    );
    (step.rows.len(), suppressed)
}

#[test]
fn tour_facts_hold_at_tiny_scale() {
    let dir = tempfile::tempdir().unwrap();
    let (db, tour) = d1vec::demo::run(&dir.path().join("demo"), Scale::Tiny, &Quiet).unwrap();
    let ids: Vec<&str> = tour.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "knowledge_search",
            "cross_tenant",
            "brand_voice",
            "shared_skills",
            "skill_search",
            "roi",
            "paged_listing",
            "hybrid_search"
        ]
    );

    // Every row loaded, every vector inserted.
    for (table, rows) in &tour.build.rows {
        let n = raw(&db, &format!("SELECT count(*) FROM {table}"))[0][0].as_u64();
        assert_eq!(n, Some(*rows as u64), "{table}");
    }
    for (index, vectors) in &tour.build.vectors {
        let info = db.vectorize(index).unwrap().describe().unwrap();
        assert_eq!(info.vector_count, *vectors as u64, "{index}");
    }

    // Tenant A's filtered search is the brute-force answer over its own FAQ chunks.
    let search = step(&tour, "knowledge_search");
    assert_search_is_brute(search, &brute_knowledge(&db, TENANT_A));
    let mine = strs(search.column("chunk_id"));
    assert!(owners(&db, &mine).iter().all(|t| t == TENANT_A));

    // Tenant B's same search: its own chunks, none of A's.
    let cross = step(&tour, "cross_tenant");
    let theirs = strs(cross.column("chunk_id"));
    assert!(theirs.iter().all(|id| !mine.contains(id)));
    assert!(owners(&db, &theirs).iter().all(|t| t == TENANT_B));
    assert!(strs(cross.column("namespace"))
        .iter()
        .all(|n| n == TENANT_B));
    assert_search_is_brute(cross, &brute_knowledge(&db, TENANT_B));
    assert!(cross.note.contains("refused"), "{}", cross.note);

    // Brand voice: each draft's nearest voice is its own brand's, at the cosine of the two.
    let voice = step(&tour, "brand_voice");
    assert!(!voice.rows.is_empty());
    let profile = raw(
        &db,
        &format!(
            "SELECT brand_name, tone, lexicon, messaging FROM brand_profiles
             WHERE tenant_id = '{TENANT_A}'"
        ),
    );
    let p: Vec<&str> = profile[0].iter().map(|v| v.as_str().unwrap()).collect();
    let voice_vec = tour::embed(1536, &voice_text(p[0], &p[1..])).unwrap();
    for row in &voice.rows {
        assert_eq!(row[2], format!("voice-{TENANT_A}"));
        let body = tour::embed(1536, row[4].as_str().unwrap()).unwrap();
        let want = cosine(&body, &voice_vec);
        assert!((row[3].as_f64().unwrap() - want).abs() < 1e-5);
    }
    let scores = floats(voice.column("score"));
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");

    // Three tenants never reach k = 5: every skill row is suppressed.
    assert_eq!(assert_skills_k_anonymous(&db, &tour).0, 0);
    assert_roi_matches(&db, &tour);

    // Paging: two pages of A's posts, newest first, as one ORDER BY gives them.
    let paged = step(&tour, "paged_listing");
    let expected = raw(
        &db,
        &format!(
            "SELECT p.post_id FROM published_posts p WHERE p.tenant_id = '{TENANT_A}'
             ORDER BY p.published_at DESC, p.post_id DESC LIMIT {}",
            2 * tour::PAGE_ROWS
        ),
    );
    let expected: Vec<String> = expected
        .iter()
        .map(|r| r[0].as_str().unwrap().to_owned())
        .collect();
    assert!(
        expected.len() > tour::PAGE_ROWS,
        "A needs two pages of posts"
    );
    assert_eq!(strs(paged.column("post_id")), expected);
    let pages: Vec<i64> = paged
        .column("page")
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(pages.iter().filter(|&&p| p == 1).count(), tour::PAGE_ROWS);
    assert!(pages.iter().skip(tour::PAGE_ROWS).all(|&p| p == 2));

    // The hybrid step shows what the library's hybrid search returns for tenant A, and only
    // tenant A's chunks, each found by at least one of the two lists.
    let hybrid = step(&tour, "hybrid_search");
    let shown = strs(hybrid.column("chunk_id"));
    assert!(!shown.is_empty());
    let embedder = d1vec::embed::HashingEmbedder::new(1536).unwrap();
    let direct = db
        .tenant(TENANT_A)
        .unwrap()
        .hybrid_search(
            &d1vec::search::HybridQuery::new(tour::HYBRID_QUERY).top_k(tour::HYBRID_ROWS),
            Some(&embedder),
        )
        .unwrap();
    assert_eq!(
        shown,
        direct.iter().map(|h| h.id.clone()).collect::<Vec<_>>()
    );
    assert!(owners(&db, &shown).iter().all(|t| t == TENANT_A));
    assert!(direct
        .iter()
        .all(|h| h.keyword.is_some() || h.vector.is_some()));
    assert!(tour.total_seconds >= tour.tour_seconds && tour.tour_seconds > 0.0);
}

/// With revenue credited to A's campaigns and some skill-days lifted to k = 5, the tour shows
/// exactly those skill-days and the new ROI.
#[test]
fn suppression_and_roi_follow_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let (db, report) =
        build::build(&dir.path().join("demo"), DEMO_SEED, Scale::Tiny, &Quiet).unwrap();
    db.exec(&format!(
        "INSERT INTO conversions (conversion_id, tenant_id, post_id, kind, value, occurred_at)
         SELECT 'extra_' || post_id, tenant_id, post_id, 'purchase', 100.0 + rowid % 7 * 12.5,
                published_at
         FROM published_posts WHERE tenant_id = '{TENANT_A}' AND campaign_id IS NOT NULL"
    ))
    .unwrap();
    db.rollup(&d1vec::rollup::RollupRange::All).unwrap();
    db.exec(
        "UPDATE skill_metrics_daily SET tenant_count = 5
         WHERE rowid IN (SELECT rowid FROM skill_metrics_daily ORDER BY skill_id, date LIMIT 3)",
    )
    .unwrap();
    let tour = tour::run(&db, report).unwrap();
    let (visible, _) = assert_skills_k_anonymous(&db, &tour);
    assert!(visible > 0);
    assert_roi_matches(&db, &tour);
    let revenue = floats(step(&tour, "roi").column("revenue"));
    assert!(revenue.iter().any(|&r| r > 0.0), "{revenue:?}");
}

#[test]
fn cli_demo_json_rebuilds_and_refuses_foreign_folders() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let unused_db = dir.path().join("unused.sqlite");
    let args = ["--json", "demo", "--scale", "tiny", "--dir"];
    let run = |target: &Path| {
        let mut all: Vec<&str> = args.to_vec();
        all.push(target.to_str().unwrap());
        d1vec(&unused_db, &all)
    };
    for _ in 0..2 {
        // The second run rebuilds the folder the first one made.
        let out = run(&demo);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stderr.is_empty(), "no progress bars with --json");
        let tour: Json = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(tour["tenant_a"], TENANT_A);
        let steps = tour["steps"].as_array().unwrap();
        let cross = steps.iter().find(|s| s["id"] == "cross_tenant").unwrap();
        let rows = cross["rows"].as_array().unwrap();
        assert!(!rows.is_empty());
        for row in rows {
            assert_eq!(row[3], TENANT_B, "{row}");
        }
        assert!(tour["total_seconds"].as_f64().unwrap() > 0.0);
    }
    assert!(!unused_db.exists(), "demo ignores --db");

    let foreign = dir.path().join("thesis");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("chapter1.tex"), "precious").unwrap();
    let out = run(&foreign);
    assert!(!out.status.success());
    let err: Json = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(err["code"], 400);
    assert!(err["error"]
        .as_str()
        .unwrap()
        .contains("not a d1vec demo folder"));
    assert_eq!(
        std::fs::read_to_string(foreign.join("chapter1.tex")).unwrap(),
        "precious"
    );
}

fn committed_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(archive::COMMITTED_PATH)
}

#[test]
fn committed_dataset_is_the_generators_output() {
    let committed = archive::read_sql_gz(&committed_path()).unwrap();
    let generated = archive::committed_dataset().to_sql();
    if committed != generated {
        let at = committed
            .bytes()
            .zip(generated.bytes())
            .position(|(a, b)| a != b)
            .unwrap_or(committed.len().min(generated.len()));
        panic!(
            "{} differs from generate({DEMO_SEED}, Scale::Demo).to_sql() at byte {at} \
             (lengths {} and {}); regenerate it with `cargo test --release --test it \
             demo_tour::regenerate_committed_dataset -- --ignored`",
            archive::COMMITTED_PATH,
            committed.len(),
            generated.len()
        );
    }
}

/// Rewrites the committed file from the generator.
#[test]
#[ignore = "rewrites data/demo-seed42.sql.gz"]
fn regenerate_committed_dataset() {
    let path = committed_path();
    let file = std::fs::File::create(&path).unwrap();
    archive::write_sql_gz(&archive::committed_dataset(), std::io::BufWriter::new(file)).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    println!("wrote {} ({size} bytes)", path.display());
}
