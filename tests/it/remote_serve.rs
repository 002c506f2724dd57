//! `remote::Cloudflare` against the real `d1vec serve` (`d1vec::serve::spawn`): the same
//! operations through the REST client and directly on the library, compared (oracle: the
//! library), and `push` end to end into a served database.

use std::sync::Arc;

use d1vec::index::Metric;
use d1vec::remote::{Cloudflare, RetryPolicy, VectorBackend};
use d1vec::serve::{spawn, ServeOptions};
use d1vec::vectorize::filter::eval::IndexType;
use d1vec::vectorize::types::{
    CreateIndexConfig, CreateIndexRequest, Matches, QueryOptions, ReturnMetadata, Vector,
};
use d1vec::vectorize::CreateIndex;
use d1vec::Database;
use serde_json::json;

fn serve(db: Arc<Database>) -> (d1vec::serve::RunningServer, Cloudflare) {
    let options = ServeOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..ServeOptions::default()
    };
    let server = spawn(db, options).unwrap();
    let cf = Cloudflare::new("acc", "any-token")
        .base_url(server.base_url())
        .retry(RetryPolicy::none());
    (server, cf)
}

fn vectors() -> Vec<Vector> {
    (0..60)
        .map(|i| {
            let values = (0..4)
                .map(|d| ((i * 5 + d * 7) % 13) as f64 - 6.0 + 0.5)
                .collect();
            let mut m = serde_json::Map::new();
            m.insert("lang".into(), json!(if i % 3 == 0 { "en" } else { "fr" }));
            m.insert("rank".into(), json!(i));
            Vector::new(format!("id-{i:03}"), values).with_metadata(m)
        })
        .collect()
}

fn ids(m: &Matches) -> Vec<(String, f32)> {
    m.matches
        .iter()
        .map(|x| (x.id.clone(), x.score as f32))
        .collect()
}

#[test]
fn vectorize_over_serve_answers_as_the_library() {
    let served = Arc::new(Database::open_in_memory().unwrap());
    let local = Database::open_in_memory().unwrap();
    let (server, cf) = serve(served.clone());

    let desc = cf
        .create_index(&CreateIndexRequest {
            name: "docs".into(),
            description: None,
            config: CreateIndexConfig::Dimensions {
                dimensions: 4,
                metric: Metric::Euclidean,
            },
        })
        .unwrap();
    let oracle_desc = local
        .create_index(&CreateIndex::new("docs", 4, Metric::Euclidean))
        .unwrap();
    assert_eq!(desc.config, oracle_desc.config);
    assert_eq!(cf.list_indexes().unwrap().len(), 1);

    let remote = cf.vectorize("docs");
    let lib = local.vectorize("docs").unwrap();
    remote
        .create_metadata_index("lang", IndexType::String)
        .unwrap();
    lib.create_metadata_index("lang", IndexType::String)
        .unwrap();
    assert_eq!(
        remote.list_metadata_indexes().unwrap(),
        lib.list_metadata_indexes().unwrap()
    );

    let vs = vectors();
    VectorBackend::upsert(&remote, &vs[..40]).unwrap();
    lib.upsert(&vs[..40]).unwrap();
    VectorBackend::insert(&remote, &vs[30..]).unwrap();
    lib.insert(&vs[30..]).unwrap();
    let gone = vec!["id-001".to_owned(), "id-007".to_owned()];
    remote.delete_by_ids(&gone).unwrap();
    lib.delete_by_ids(&gone).unwrap();

    let opts = QueryOptions::new()
        .with_top_k(7)
        .with_values(true)
        .with_metadata(ReturnMetadata::All)
        .with_filter(json!({"lang": "fr"}));
    let q = [0.5, -1.5, 2.5, 0.5];
    assert_eq!(
        ids(&remote.query(&q, &opts).unwrap()),
        ids(&lib.query(&q, &opts).unwrap())
    );
    let a = remote.query(&q, &opts).unwrap();
    let b = lib.query(&q, &opts).unwrap();
    for (x, y) in a.matches.iter().zip(&b.matches) {
        assert_eq!((&x.values, &x.metadata), (&y.values, &y.metadata));
    }
    assert_eq!(
        ids(&remote.query_by_id("id-010", &opts).unwrap()),
        ids(&lib.query_by_id("id-010", &opts).unwrap())
    );
    let some: Vec<String> = ["id-000", "id-001", "id-045", "nope"]
        .map(String::from)
        .to_vec();
    assert_eq!(
        remote.get_by_ids(&some).unwrap(),
        lib.get_by_ids(&some).unwrap()
    );
    let (ri, li) = (remote.describe().unwrap(), lib.describe().unwrap());
    assert_eq!(
        (ri.dimensions, ri.metric, ri.vector_count),
        (li.dimensions, li.metric, li.vector_count)
    );
    let (rp, lp) = (
        remote.list_vectors(Some(10), None).unwrap(),
        lib.list_vectors(Some(10), None).unwrap(),
    );
    assert_eq!(rp.vectors, lp.vectors);
    assert_eq!(rp.total_count, lp.total_count);
    let rp2 = remote
        .list_vectors(Some(10), rp.next_cursor.as_deref())
        .unwrap();
    let lp2 = lib
        .list_vectors(Some(10), lp.next_cursor.as_deref())
        .unwrap();
    assert_eq!(rp2.vectors, lp2.vectors);

    // Errors come back typed, with the library's codes.
    let err = cf.get_index("missing").unwrap_err();
    let lib_err = local.get_index("missing").unwrap_err();
    assert_eq!(err.json_code(), lib_err.json_code());
    assert!(
        matches!(err, d1vec::Error::Remote { status: 404, .. }),
        "{err:?}"
    );

    remote.delete_metadata_index("lang").unwrap();
    assert!(remote.list_metadata_indexes().unwrap().is_empty());
    cf.delete_index("docs").unwrap();
    assert!(cf.list_indexes().unwrap().is_empty());
    server.shutdown().unwrap();
}

#[test]
fn d1_over_serve_answers_as_the_library() {
    let served = Arc::new(Database::open_in_memory().unwrap());
    let local = Database::open_in_memory().unwrap();
    let (server, cf) = serve(served.clone());
    let dbs = cf.d1_list(None).unwrap();
    assert!(!dbs.is_empty());
    let id = dbs[0].uuid.clone();
    assert_eq!(cf.d1_get(&id).unwrap().uuid, id);

    let script = "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL, raw BLOB);
                  INSERT INTO t (name, score) VALUES ('a', 1.5), ('b', NULL), ('c''d', -2)";
    let r = cf.d1_query(&id, script, &[]).unwrap();
    let l = local.execute(script).unwrap();
    assert_eq!(r.len(), l.len());
    assert_eq!(r[1].meta.changes, l[1].meta.changes);
    assert_eq!(r[1].meta.last_row_id, l[1].meta.last_row_id);

    let sql = "SELECT id, name, score FROM t WHERE id >= ?1 ORDER BY id";
    let params = [json!(2)];
    let r = cf.d1_query(&id, sql, &params).unwrap();
    let l = local
        .prepare(sql)
        .bind_json(&params)
        .unwrap()
        .all()
        .unwrap();
    assert_eq!(r[0].results, l.results);
    let raw = cf.d1_raw(&id, sql, &params).unwrap();
    assert_eq!(raw[0].columns, l.columns);
    assert_eq!(raw[0].rows, l.raw());

    let err = cf.d1_query(&id, "SELECT * FROM nope", &[]).unwrap_err();
    assert!(
        matches!(err, d1vec::Error::Remote { status: 400, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("no such table"), "{err}");
    server.shutdown().unwrap();
}

#[test]
fn push_into_serve_copies_rows_and_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let src = super::remote_push::source(dir.path());
    let served = Arc::new(Database::open(dir.path().join("served.sqlite")).unwrap());
    let (server, cf) = serve(served.clone());
    let mut o = d1vec::cli::push::PushOptions::for_path(&dir.path().join("src.sqlite"));
    o.d1_name = "pushed".into();
    o.interrupt_after = Some(4);
    o.interrupt_after_send = true;
    assert!(d1vec::cli::push::push(&src, Some(&cf), &o).is_err());
    o.interrupt_after = None;
    let report = d1vec::cli::push::push(&src, Some(&cf), &o).unwrap();
    assert!(report.resumed);
    let id = report.d1_id.clone().unwrap();
    // Oracle: every table's rows, read through the API, equal the source's.
    for t in &report.tables {
        let sql = format!("SELECT * FROM \"{}\" ORDER BY rowid", t.name);
        let remote = cf.d1_raw(&id, &sql, &[]).unwrap();
        let local = src.prepare(&sql).all().unwrap();
        assert_eq!(remote[0].rows, local.raw(), "table {}", t.name);
    }
    let remote = cf.vectorize("docs");
    let lib = src.vectorize("docs").unwrap();
    assert_eq!(remote.describe().unwrap().vector_count, 2500);
    for i in (0..2500).step_by(97) {
        let ids = vec![format!("v{i:05}")];
        assert_eq!(
            remote.get_by_ids(&ids).unwrap(),
            lib.get_by_ids(&ids).unwrap()
        );
    }
    server.shutdown().unwrap();
}
