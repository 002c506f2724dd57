//! `d1vec push`: a source database pushed to a target database through the REST API, then
//! compared (oracle: the source's export equals the target's, and every vector reads back
//! equal). The target is served by a small stand-in for the REST API over a second
//! `Database` (the routes push uses), so these tests run without `d1vec serve`; the same
//! push against the real server is in `remote_serve.rs`.

use std::path::Path;
use std::sync::{Arc, Mutex};

use d1vec::cli::push::{push, PushOptions};
use d1vec::index::Metric;
use d1vec::remote::{Cloudflare, RetryPolicy};
use d1vec::sql::export::ExportOptions;
use d1vec::vectorize::filter::eval::IndexType;
use d1vec::vectorize::types::Vector;
use d1vec::vectorize::CreateIndex;
use d1vec::{Database, Error};
use serde_json::{json, Value as Json};

use super::remote_mock::{Mock, Reply, Seen};

fn envelope(result: Json) -> Reply {
    Reply::ok(&json!({"result": result, "success": true, "errors": [], "messages": []}).to_string())
}

fn failure(status: u16, code: u32, message: &str) -> Reply {
    Reply::status(
        status,
        &json!({"result": null, "success": false, "errors": [{"code": code, "message": message}], "messages": []})
            .to_string(),
    )
}

fn answer(r: d1vec::Result<Json>) -> Reply {
    match r {
        Ok(v) => envelope(v),
        Err(e) => {
            let code = e.json_code();
            let status = if code == 3000 { 404 } else { 400 };
            failure(
                status,
                if code < 1000 { 7500 } else { code },
                &e.to_string(),
            )
        }
    }
}

/// The D1 and Vectorize routes `push` uses, over `target` (one D1 database, created once).
pub fn fake_cloudflare(target: Arc<Database>) -> Mock {
    let created: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    Mock::serve(move |req: &Seen| {
        let path = req.target.split('?').next().unwrap_or_default();
        let rest = path
            .split_once("/client/v4/accounts/")
            .and_then(|(_, r)| r.split_once('/'))
            .map(|(_, r)| r.to_owned())
            .unwrap_or_default();
        let parts: Vec<&str> = rest.split('/').collect();
        let db = &target;
        match (req.method.as_str(), parts.as_slice()) {
            ("GET", ["d1", "database"]) => {
                let name = created.lock().unwrap().clone();
                let list: Vec<Json> = name
                    .into_iter()
                    .map(|n| json!({"uuid": "target-uuid", "name": n}))
                    .collect();
                envelope(json!(list))
            }
            ("POST", ["d1", "database"]) => {
                let name = req.json()["name"].as_str().unwrap().to_owned();
                *created.lock().unwrap() = Some(name.clone());
                envelope(json!({"uuid": "target-uuid", "name": name}))
            }
            ("POST", ["d1", "database", _, "query"]) => {
                let sql = req.json()["sql"].as_str().unwrap().to_owned();
                answer(db.execute(&sql).map(|r| serde_json::to_value(r).unwrap()))
            }
            ("GET", ["vectorize", "v2", "indexes", name]) => {
                answer(db.get_index(name).map(|d| serde_json::to_value(d).unwrap()))
            }
            ("POST", ["vectorize", "v2", "indexes"]) => {
                let b = req.json();
                let metric = Metric::parse(b["config"]["metric"].as_str().unwrap()).unwrap();
                let dims = b["config"]["dimensions"].as_u64().unwrap() as usize;
                let ci = CreateIndex::new(b["name"].as_str().unwrap(), dims, metric);
                answer(
                    db.create_index(&ci)
                        .map(|d| serde_json::to_value(d).unwrap()),
                )
            }
            ("GET", ["vectorize", "v2", "indexes", name, "metadata_index", "list"]) => answer(
                db.vectorize(name)
                    .and_then(|ix| ix.list_metadata_indexes())
                    .map(|l| json!({"metadataIndexes": l})),
            ),
            ("POST", ["vectorize", "v2", "indexes", name, "metadata_index", "create"]) => {
                let b = req.json();
                let t: IndexType = serde_json::from_value(b["indexType"].clone()).unwrap();
                answer(
                    db.vectorize(name)
                        .and_then(|ix| {
                            ix.create_metadata_index(b["propertyName"].as_str().unwrap(), t)
                        })
                        .map(|_| json!({"mutationId": "m"})),
                )
            }
            ("POST", ["vectorize", "v2", "indexes", name, "upsert"]) => {
                assert_eq!(req.header("content-type"), Some("application/x-ndjson"));
                let vectors: Vec<Vector> = std::str::from_utf8(&req.body)
                    .unwrap()
                    .lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect();
                assert!(
                    vectors.len() <= 1000,
                    "{} vectors in one upsert",
                    vectors.len()
                );
                answer(
                    db.vectorize(name)
                        .and_then(|ix| ix.upsert(&vectors))
                        .map(|m| serde_json::to_value(m).unwrap()),
                )
            }
            _ => failure(
                404,
                7000,
                &format!("no route {} {}", req.method, req.target),
            ),
        }
    })
}

/// A source with foreign keys in an order the schema does not follow, awkward text, blobs,
/// an index, a view and a trigger, enough rows for several batches, and a vector index with
/// a metadata index and namespaces, big enough for three upserts.
pub fn source(dir: &Path) -> Database {
    let db = Database::open(dir.join("src.sqlite")).unwrap();
    db.exec(
        "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parent(id), note TEXT, data BLOB);
         CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
         CREATE TABLE loose (a TEXT, b REAL);
         CREATE INDEX child_parent ON child(parent_id);
         CREATE VIEW v AS SELECT p.name, count(*) AS n FROM parent p JOIN child c ON c.parent_id = p.id GROUP BY p.id;
         CREATE TABLE audit (n INTEGER);
         CREATE TRIGGER child_ins AFTER INSERT ON child BEGIN INSERT INTO audit VALUES (NEW.id); END;",
    )
    .unwrap();
    db.exec(
        "WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < 40)
         INSERT INTO parent (id, name) SELECT v, 'p' || v FROM s",
    )
    .unwrap();
    db.exec(
        "WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < 1500)
         INSERT INTO child (id, parent_id, note, data)
         SELECT v, 1 + v % 40, 'it''s; \"quoted\" -- ' || printf('%0200d', v), randomblob(16)
         FROM s",
    )
    .unwrap();
    db.exec("INSERT INTO loose VALUES ('x;y', 1.5), (NULL, -0.25), ('line\nbreak', 1e300)")
        .unwrap();
    db.create_index(&CreateIndex::new("docs", 8, Metric::Cosine))
        .unwrap();
    let ix = db.vectorize("docs").unwrap();
    ix.create_metadata_index("lang", IndexType::String).unwrap();
    let vectors: Vec<Vector> = (0..2500)
        .map(|i| {
            let values = (0..8)
                .map(|d| ((i * 7 + d * 3) % 11) as f64 + 0.1)
                .collect();
            let mut v = Vector::new(format!("v{i:05}"), values);
            if i % 3 == 0 {
                v = v.with_namespace(format!("ns{}", i % 4));
            }
            let mut m = serde_json::Map::new();
            m.insert("lang".into(), json!(if i % 2 == 0 { "en" } else { "de" }));
            m.insert("n".into(), json!(i));
            v.with_metadata(m)
        })
        .collect();
    for chunk in vectors.chunks(1000) {
        ix.upsert(chunk).unwrap();
    }
    db
}

fn export(db: &Database) -> String {
    let mut out = Vec::new();
    db.export_sql(&ExportOptions::default(), &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// The oracle: the target holds what the source holds.
#[track_caller]
pub fn check_same(src: &Database, dst: &Database) {
    let (a, b) = (export(src), export(dst));
    assert!(
        a == b,
        "exports differ:\n--- source\n{}\n--- target\n{}",
        &a[..a.len().min(2000)],
        &b[..b.len().min(2000)]
    );
    let rows = |db: &Database, sql: &str| db.prepare(sql).all().unwrap().results;
    assert_eq!(
        rows(src, "SELECT count(*) AS n FROM audit"),
        rows(dst, "SELECT count(*) AS n FROM audit")
    );
    for ix in src.list_indexes().unwrap() {
        let (s, d) = (
            src.vectorize(&ix.name).unwrap(),
            dst.vectorize(&ix.name).unwrap(),
        );
        assert_eq!(dst.get_index(&ix.name).unwrap().config, ix.config);
        assert_eq!(
            s.describe().unwrap().vector_count,
            d.describe().unwrap().vector_count
        );
        assert_eq!(
            s.list_metadata_indexes().unwrap(),
            d.list_metadata_indexes().unwrap()
        );
        let mut cursor = None;
        loop {
            let page = s.list_vectors(Some(1000), cursor.as_deref()).unwrap();
            let ids: Vec<String> = page.vectors.iter().map(|v| v.id.clone()).collect();
            for chunk in ids.chunks(20) {
                assert_eq!(s.get_by_ids(chunk).unwrap(), d.get_by_ids(chunk).unwrap());
            }
            if !page.is_truncated {
                break;
            }
            cursor = page.next_cursor;
        }
    }
}

fn client(mock: &Mock) -> Cloudflare {
    Cloudflare::new("acc", "token")
        .base_url(&mock.base_url)
        .retry(RetryPolicy::none())
}

fn options(dir: &Path) -> PushOptions {
    let mut o = PushOptions::for_path(&dir.join("src.sqlite"));
    o.d1_name = "pushed".into();
    o
}

#[test]
fn a_push_copies_schema_rows_and_vectors_and_dry_run_counts_its_requests() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let dst = Arc::new(Database::open(dir.path().join("dst.sqlite")).unwrap());
    let mock = fake_cloudflare(dst.clone());
    let cf = client(&mock);

    let mut dry = options(dir.path());
    dry.dry_run = true;
    let plan = push(&src, Some(&cf), &dry).unwrap();
    assert!(mock.seen().is_empty(), "a dry run sent {:?}", mock.seen());
    assert!(!dry.state_path.exists());
    let rows: Vec<(&str, u64)> = plan
        .tables
        .iter()
        .map(|t| (t.name.as_str(), t.rows))
        .collect();
    // Parents before children; every table with its row count.
    assert_eq!(
        rows,
        [
            ("parent", 40),
            ("child", 1500),
            ("loose", 3),
            ("audit", 1500)
        ]
    );
    assert_eq!(plan.indexes.len(), 1);
    assert_eq!(plan.indexes[0].vectors, 2500);
    assert_eq!(plan.schema_statements, 7);

    let report = push(&src, Some(&cf), &options(dir.path())).unwrap();
    assert!(!report.resumed);
    assert_eq!(report.d1_id.as_deref(), Some("target-uuid"));
    assert_eq!(report.indexes[0].sent, 2500);
    // The dry run's count is the real one.
    assert_eq!(plan.requests, mock.seen().len() as u64);
    assert_eq!(report.requests, plan.requests);
    check_same(&src, &dst);
    // Every SQL request fits D1's limits.
    for r in mock.seen().iter().filter(|r| r.target.ends_with("/query")) {
        let sql = r.json()["sql"].as_str().unwrap().to_owned();
        assert!(sql.len() <= 100_000, "{} bytes", sql.len());
        assert!(sql.starts_with("PRAGMA defer_foreign_keys=TRUE;"));
    }

    // A second run finds everything done and sends nothing more.
    let before = mock.seen().len();
    let again = push(&src, Some(&cf), &options(dir.path())).unwrap();
    assert!(again.resumed);
    assert_eq!(mock.seen().len(), before);
    assert!(again.tables.iter().all(|t| t.sent == 0));
    check_same(&src, &dst);
}

/// Interrupted pushes, resumed: once cleanly between batches, once with a batch applied
/// whose answer was lost (re-sent in its idempotent form), in the rows and in the vectors.
#[test]
fn an_interrupted_push_resumes_to_the_same_end_state() {
    // How many batches a whole push sends: its requests less the D1 list and create and the
    // index's get, create, metadata list and metadata create.
    let batches = {
        let dir = tempfile::tempdir().unwrap();
        let src = source(dir.path());
        let mut o = options(dir.path());
        o.dry_run = true;
        push(&src, None, &o).unwrap().requests as usize - 6
    };
    assert!(batches > 10, "{batches}");
    let cases = [
        (0, true),            // the schema batch applied, its answer lost
        (3, false),           // stopped cleanly between row batches
        (4, true),            // a row batch applied, its answer lost
        (batches - 2, false), // stopped between vector batches
        (batches - 2, true),  // a vector batch applied, its answer lost
    ];
    for (stop, lost) in cases {
        let dir = tempfile::tempdir().unwrap();
        let src = source(dir.path());
        let dst = Arc::new(Database::open(dir.path().join("dst.sqlite")).unwrap());
        let mock = fake_cloudflare(dst.clone());
        let cf = client(&mock);
        let mut o = options(dir.path());
        o.interrupt_after = Some(stop);
        o.interrupt_after_send = lost;
        let err = push(&src, Some(&cf), &o).unwrap_err();
        assert!(matches!(err, Error::Remote { .. }), "{err}");
        assert!(o.state_path.exists());
        let report = push(&src, Some(&cf), &options(dir.path())).unwrap();
        assert!(report.resumed, "stop={stop}");
        check_same(&src, &dst);
    }
}

#[test]
fn a_changed_source_is_refused_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let dst = Arc::new(Database::open(dir.path().join("dst.sqlite")).unwrap());
    let mock = fake_cloudflare(dst.clone());
    let cf = client(&mock);
    let mut o = options(dir.path());
    o.interrupt_after = Some(3);
    push(&src, Some(&cf), &o).unwrap_err();
    src.exec("UPDATE child SET note = 'changed' WHERE id = 1")
        .unwrap();
    let sent = mock.seen().len();
    let err = push(&src, Some(&cf), &options(dir.path())).unwrap_err();
    assert!(err.to_string().contains("source changed"), "{err}");
    assert_eq!(
        mock.seen().len(),
        sent,
        "nothing is sent once the change is found"
    );
}

#[test]
fn an_existing_database_not_made_by_this_push_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let dst = Arc::new(Database::open(dir.path().join("dst.sqlite")).unwrap());
    let mock = fake_cloudflare(dst.clone());
    let cf = client(&mock);
    cf.d1_create("pushed").unwrap();
    let err = push(&src, Some(&cf), &options(dir.path())).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(
        mock.seen().len(),
        2,
        "a list after the create, nothing else"
    );
}

/// The command line: `--dry-run` prints the plan as JSON and writes no state; a real run
/// reads the token from the named variable and never prints it.
#[test]
fn the_push_command_dry_runs_and_pushes() {
    let dir = tempfile::tempdir().unwrap();
    let src_path = dir.path().join("src.sqlite");
    drop(source(dir.path()));
    let dst = Arc::new(Database::open(dir.path().join("dst.sqlite")).unwrap());
    let mock = fake_cloudflare(dst.clone());
    let run = |extra: &[&str]| {
        let mut args = vec![
            "--json",
            "push",
            "--to",
            "cloudflare",
            "--account-id",
            "acc",
            "--token-env",
            "D1VEC_TEST_PUSH_TOKEN",
            "--base-url",
            &mock.base_url,
        ];
        args.extend_from_slice(extra);
        std::process::Command::new(env!("CARGO_BIN_EXE_d1vec"))
            .arg("--db")
            .arg(&src_path)
            .args(&args)
            .env("D1VEC_TEST_PUSH_TOKEN", "canary-push-token")
            .env_remove("CLOUDFLARE_API_BASE_URL")
            .output()
            .unwrap()
    };
    let out = run(&["--dry-run"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["d1_name"], "src");
    assert_eq!(plan["tables"][1]["name"], "child");
    assert_eq!(plan["tables"][1]["rows"], 1500);
    assert_eq!(plan["indexes"][0]["vectors"], 2500);
    assert!(mock.seen().is_empty());
    assert!(!d1vec::cli::push::state_path(&src_path).exists());

    let out = run(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["requests"], plan["requests"]);
    assert_eq!(report["requests"].as_u64(), Some(mock.seen().len() as u64));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("canary-push-token"));
    let state = std::fs::read_to_string(d1vec::cli::push::state_path(&src_path)).unwrap();
    assert!(!state.contains("canary-push-token"));
    assert!(mock
        .seen()
        .iter()
        .all(|r| r.header("authorization") == Some("Bearer canary-push-token")));
    let src = Database::open(&src_path).unwrap();
    check_same(&src, &dst);
}
