//! `vectorize_query`, the table-valued function: its rows are what `VectorIndex::query`
//! returns (ids, scores, order, namespace, metadata), on the admin connection without a
//! deadlock, and on a tenant session exactly what `session.vectorize(..)` sees.

use std::sync::mpsc;
use std::time::Duration;

use d1vec::embed::{Embedder, HashingEmbedder};
use d1vec::index::Metric;
use d1vec::vectorize::filter::eval::IndexType;
use d1vec::vectorize::types::{Match, QueryOptions, ReturnMetadata, Vector};
use d1vec::vectorize::{CreateIndex, Scope};
use d1vec::{Database, Error, Param, TenantSession};
use serde_json::{json, Map, Value};

use crate::oracle::brute;

/// Runs `f` on another thread and fails the test if it has not finished within 60 s: a
/// statement that re-entered its own connection's lock would hang here instead of passing.
fn within<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("not finished after 60 s: deadlock?"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the test body panicked (above)"),
    }
}

/// The little-endian float32 BLOB of a vector.
fn blob(v: &[f64]) -> Param {
    Param::Blob(v.iter().flat_map(|x| (*x as f32).to_le_bytes()).collect())
}

/// A vector as JSON text.
fn text(v: &[f64]) -> Param {
    Param::Text(serde_json::to_string(v).unwrap())
}

/// What a SQL row of `vectorize_query` says, in `Match`'s shape.
fn row_to_match(row: &Map<String, Value>) -> Match {
    Match {
        id: row["id"].as_str().unwrap().to_owned(),
        score: row["score"].as_f64().unwrap(),
        values: None,
        namespace: row["namespace"].as_str().map(str::to_owned),
        metadata: row["metadata"]
            .as_str()
            .map(|m| serde_json::from_str(m).unwrap()),
    }
}

/// Runs `SELECT * FROM vectorize_query(...)` with `args` on either surface; checks `rank`.
fn sql_matches(
    run: impl Fn(&str, Vec<Param>) -> d1vec::Result<d1vec::D1Result>,
    args: Vec<Param>,
) -> d1vec::Result<Vec<Match>> {
    let marks = vec!["?"; args.len()].join(", ");
    let result = run(
        &format!("SELECT * FROM vectorize_query({marks}) ORDER BY rank"),
        args,
    )?;
    for (i, row) in result.results.iter().enumerate() {
        assert_eq!(row["rank"], json!(i + 1), "ranks count from 1, best first");
    }
    Ok(result.results.iter().map(row_to_match).collect())
}

fn admin_sql(db: &Database, args: Vec<Param>) -> d1vec::Result<Vec<Match>> {
    sql_matches(|sql, args| db.prepare(sql).bind(args).all(), args)
}

fn tenant_sql(session: &TenantSession, args: Vec<Param>) -> d1vec::Result<Vec<Match>> {
    sql_matches(|sql, args| session.prepare(sql).bind(args).all(), args)
}

fn opt_text(v: Option<&str>) -> Param {
    v.map_or(Param::Null, |s| Param::Text(s.to_owned()))
}

/// 80 vectors of 6 dims in namespaces `ns0`..`ns2` (every fifth without one), metadata
/// `{i, even, group}`, with metadata indexes on `even` and `group`.
fn small_index(db: &Database, name: &str, metric: Metric) -> Vec<Vector> {
    db.create_index(&CreateIndex::new(name, 6, metric)).unwrap();
    let ix = db.vectorize(name).unwrap();
    ix.create_metadata_index("even", IndexType::Boolean)
        .unwrap();
    ix.create_metadata_index("group", IndexType::String)
        .unwrap();
    let vs: Vec<Vector> = (0..80)
        .map(|i| {
            let a = i as f64 * 0.61;
            let v = Vector::new(
                format!("v{i:02}"),
                vec![
                    a.cos(),
                    a.sin(),
                    (i % 7) as f64 * 0.2 - 0.6,
                    (i % 3) as f64 * 0.5,
                    1.0,
                    -((i % 5) as f64) * 0.3,
                ],
            )
            .with_metadata(
                json!({"i": i, "even": i % 2 == 0, "group": format!("g{}", i % 4)})
                    .as_object()
                    .unwrap()
                    .clone(),
            );
            if i % 5 == 0 {
                v
            } else {
                v.with_namespace(format!("ns{}", i % 3))
            }
        })
        .collect();
    ix.upsert(&vs).unwrap();
    vs
}

/// One query's optional arguments: topK, filter, namespace, returnMetadata.
type Case = (
    Option<i64>,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);

#[test]
fn rows_equal_vector_index_query_on_the_admin_connection() {
    within(|| {
        let db = Database::open_in_memory().unwrap();
        let stored = small_index(&db, "small", Metric::Cosine);
        let ix = db.vectorize("small").unwrap();
        let queries: [[f64; 6]; 3] = [
            [1.0, 0.0, 0.0, 0.5, 1.0, 0.0],
            [-0.3, 0.9, 0.4, 0.0, 0.2, -1.0],
            [0.1, 0.1, -0.6, 1.0, 1.0, -0.3],
        ];
        let cases: [Case; 7] = [
            (None, None, None, None),
            (Some(10), None, None, None),
            (Some(100), None, None, None),
            (Some(7), Some(r#"{"even": true}"#), None, Some("all")),
            (
                Some(20),
                Some(r#"{"group": {"$in": ["g1", "g3"]}}"#),
                None,
                Some("indexed"),
            ),
            (Some(5), None, Some("ns1"), None),
            (
                Some(50),
                Some(r#"{"even": false}"#),
                Some("ns2"),
                Some("all"),
            ),
        ];
        let mut compared = 0;
        for q in &queries {
            for (top_k, filter, namespace, meta) in cases {
                let mut options = QueryOptions::new();
                if let Some(k) = top_k {
                    options = options.with_top_k(k as usize);
                }
                if let Some(f) = filter {
                    options = options.with_filter(serde_json::from_str(f).unwrap());
                }
                if let Some(ns) = namespace {
                    options = options.with_namespace(ns);
                }
                if let Some(m) = meta {
                    options = options.with_metadata(match m {
                        "all" => ReturnMetadata::All,
                        _ => ReturnMetadata::Indexed,
                    });
                }
                let expected = ix.query(q, &options).unwrap().matches;
                assert!(!expected.is_empty());
                for vector in [text(q), blob(q)] {
                    let args = vec![
                        Param::Text("small".into()),
                        vector,
                        top_k.map_or(Param::Null, Param::Integer),
                        opt_text(filter),
                        opt_text(namespace),
                        opt_text(meta),
                    ];
                    assert_eq!(
                        admin_sql(&db, args).unwrap(),
                        expected,
                        "{q:?} {top_k:?} {filter:?} {namespace:?} {meta:?}"
                    );
                    compared += 1;
                }
            }
        }
        assert_eq!(compared, 42);
        // The unfiltered query against brute force in f64, as a check of the reference itself.
        let q = queries[0];
        let all: Vec<&Vector> = stored.iter().collect();
        let oracle = brute(&all, &q);
        let got = admin_sql(
            &db,
            vec![Param::Text("small".into()), text(&q), Param::Integer(10)],
        )
        .unwrap();
        for (m, (id, score)) in got.iter().zip(&oracle) {
            assert_eq!(&m.id, id);
            assert!(
                (m.score - score).abs() < 1e-5,
                "{} {} {}",
                m.id,
                m.score,
                score
            );
        }
        // Trailing arguments are optional: two arguments mean topK 5.
        let two = admin_sql(&db, vec![Param::Text("small".into()), text(&q)]).unwrap();
        assert_eq!(two, ix.query(&q, &QueryOptions::new()).unwrap().matches);
        assert_eq!(two.len(), 5);
    });
}

#[test]
fn euclidean_and_dot_product_scores_and_order_match_too() {
    within(|| {
        let db = Database::open_in_memory().unwrap();
        for (name, metric) in [("l2", Metric::Euclidean), ("dot", Metric::DotProduct)] {
            small_index(&db, name, metric);
            let ix = db.vectorize(name).unwrap();
            let q = [0.5, -0.5, 0.2, 0.1, 0.9, -0.2];
            let expected = ix
                .query(&q, &QueryOptions::new().with_top_k(15))
                .unwrap()
                .matches;
            let got = admin_sql(
                &db,
                vec![Param::Text(name.into()), blob(&q), Param::Integer(15)],
            )
            .unwrap();
            assert_eq!(got, expected, "{name}");
        }
    });
}

#[test]
fn arguments_as_hidden_column_constraints_and_as_a_join_input() {
    within(|| {
        let db = Database::open_in_memory().unwrap();
        small_index(&db, "small", Metric::Cosine);
        let ix = db.vectorize("small").unwrap();
        let q = [0.2, 0.8, 0.0, 0.5, 1.0, 0.0];
        let expected: Vec<String> = ix
            .query(&q, &QueryOptions::new().with_top_k(4))
            .unwrap()
            .matches
            .into_iter()
            .map(|m| m.id)
            .collect();
        let ids = |rows: d1vec::D1Result| -> Vec<String> {
            rows.results
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_owned())
                .collect()
        };
        let by_where = db
            .prepare("SELECT id FROM vectorize_query WHERE index_name = 'small' AND query_vector = ?1 AND top_k = 4 ORDER BY rank")
            .bind([text(&q)])
            .all()
            .unwrap();
        assert_eq!(ids(by_where), expected);
        // Vectors stored in a table, queried one per row (the function is the inner loop).
        db.exec("CREATE TABLE probes (name TEXT PRIMARY KEY, vec TEXT)")
            .unwrap();
        let p2 = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        db.prepare("INSERT INTO probes VALUES ('a', ?1), ('b', ?2)")
            .bind([text(&q), text(&p2)])
            .run()
            .unwrap();
        let rows = db
            .prepare("SELECT p.name, m.id FROM probes p, vectorize_query('small', p.vec, 4) m ORDER BY p.name, m.rank")
            .all()
            .unwrap();
        let got: Vec<(String, String)> = rows
            .results
            .iter()
            .map(|r| {
                (
                    r["name"].as_str().unwrap().into(),
                    r["id"].as_str().unwrap().into(),
                )
            })
            .collect();
        let mut want: Vec<(String, String)> =
            expected.iter().map(|id| ("a".into(), id.clone())).collect();
        for m in ix
            .query(&p2, &QueryOptions::new().with_top_k(4))
            .unwrap()
            .matches
        {
            want.push(("b".into(), m.id));
        }
        assert_eq!(got, want);
    });
}

fn code(r: d1vec::Result<impl std::fmt::Debug>) -> (u32, String) {
    match r {
        Err(e) => (e.json_code(), e.to_string()),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

#[test]
fn bad_arguments_fail_with_vectorize_codes_and_change_nothing() {
    within(|| {
        let db = Database::open_in_memory().unwrap();
        small_index(&db, "small", Metric::Cosine);
        let name = || Param::Text("small".into());
        let q = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let run = |args: Vec<Param>| code(admin_sql(&db, args));
        let (c, msg) = run(vec![Param::Text("nope".into()), text(&q)]);
        assert_eq!(c, 3000, "{msg}");
        assert!(msg.contains("nope"), "{msg}");
        let (c, msg) = run(vec![name(), text(&[1.0, 0.0])]);
        assert_eq!(c, 40006, "{msg}");
        assert!(msg.contains("expected 6 dimensions"), "{msg}");
        assert_eq!(run(vec![name(), blob(&[1.0; 5])]).0, 40006);
        assert_eq!(run(vec![name(), Param::Text("[1, 2".into())]).0, 40026);
        assert_eq!(
            run(vec![name(), Param::Text("[1, \"x\", 0, 0, 0, 0]".into())]).0,
            40026
        );
        assert_eq!(run(vec![name(), Param::Blob(vec![0; 7])]).0, 40026);
        assert_eq!(run(vec![name(), Param::Null]).0, 40026);
        assert_eq!(run(vec![Param::Null, text(&q)]).0, 40026);
        assert_eq!(
            run(vec![name(), text(&[0.0; 6])]).0,
            40035,
            "zero vector under cosine"
        );
        assert_eq!(run(vec![name(), text(&q), Param::Integer(0)]).0, 40025);
        assert_eq!(run(vec![name(), text(&q), Param::Integer(101)]).0, 40025);
        assert_eq!(
            run(vec![
                name(),
                text(&q),
                Param::Integer(51),
                Param::Null,
                Param::Null,
                Param::Text("all".into())
            ])
            .0,
            40025
        );
        assert_eq!(
            run(vec![name(), text(&q), Param::Text("ten".into())]).0,
            40026
        );
        assert_eq!(
            run(vec![name(), text(&q), Param::Null, Param::Text("{".into())]).0,
            40030
        );
        assert_eq!(
            run(vec![
                name(),
                text(&q),
                Param::Null,
                Param::Text(r#"{"even": {"$bad": 1}}"#.into())
            ])
            .0,
            40030
        );
        assert_eq!(
            run(vec![
                name(),
                text(&q),
                Param::Null,
                Param::Text(r#"{"i": 3}"#.into())
            ])
            .0,
            40031,
            "no metadata index on i"
        );
        assert_eq!(
            run(vec![
                name(),
                text(&q),
                Param::Null,
                Param::Null,
                Param::Null,
                Param::Text("most".into())
            ])
            .0,
            40026
        );
        let (c, msg) = code(db.prepare("SELECT * FROM vectorize_query('small')").all());
        assert_eq!(c, 40026, "{msg}");
        assert!(msg.contains("required"), "{msg}");
        // Errors inside a batch roll the batch back.
        db.exec("CREATE TABLE log (x TEXT)").unwrap();
        let r = db.batch(&[
            db.prepare("INSERT INTO log VALUES ('kept?')"),
            db.prepare("INSERT INTO log SELECT id FROM vectorize_query('small', '[1]')"),
        ]);
        assert_eq!(code(r).0, 40006);
        let n = db
            .prepare("SELECT count(*) AS n FROM log")
            .first_column("n")
            .unwrap();
        assert_eq!(n, Some(json!(0)));
        // The function works again right after (and the connection is still usable).
        assert_eq!(run(vec![Param::Text("nope".into()), text(&q)]).0, 3000);
        assert_eq!(admin_sql(&db, vec![name(), text(&q)]).unwrap().len(), 5);
    });
}

#[test]
fn no_index_yet_is_index_not_found_and_views_cannot_hide_the_function() {
    within(|| {
        let db = Database::open_in_memory().unwrap();
        let (c, _) = code(admin_sql(
            &db,
            vec![Param::Text("none".into()), Param::Text("[1]".into())],
        ));
        assert_eq!(c, 3000);
        crate::fixtures::register_tenants(&db, &["ta"]);
        let t = db.tenant("ta").unwrap();
        let (c, _) = code(tenant_sql(
            &t,
            vec![Param::Text("none".into()), Param::Text("[1]".into())],
        ));
        assert_eq!(c, 3000);
        // Directly-only: a view (which a later reader would run unawares) cannot use it.
        small_index(&db, "small", Metric::Cosine);
        db.exec("CREATE VIEW near AS SELECT id FROM vectorize_query('small', '[1,0,0,0,0,0]')")
            .unwrap();
        let e = db.prepare("SELECT * FROM near").all().unwrap_err();
        assert!(e.to_string().contains("unsafe use of virtual table"), "{e}");
    });
}

#[test]
fn a_file_database_loads_its_segments_from_inside_the_statement() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tvf.sqlite");
    let q = [0.3, -0.2, 0.9, 0.5, 1.0, -0.4];
    let expected = {
        let db = Database::open(&path).unwrap();
        db.set_vector_options(d1vec::vectorize::EngineOptions {
            seal_at: 16,
            ..Default::default()
        });
        small_index(&db, "small", Metric::Cosine);
        let ix = db.vectorize("small").unwrap();
        ix.seal().unwrap();
        ix.query(&q, &QueryOptions::new().with_top_k(12))
            .unwrap()
            .matches
    };
    within(move || {
        // A fresh engine: the first use of the index is the SQL function, which loads the
        // sealed segments and the live set through the statement's own connection.
        let db = Database::open(&path).unwrap();
        let got = admin_sql(
            &db,
            vec![Param::Text("small".into()), text(&q), Param::Integer(12)],
        )
        .unwrap();
        assert_eq!(got, expected);
        crate::fixtures::register_tenants(&db, &["t"]);
        let t = db.tenant("t").unwrap();
        assert_eq!(
            tenant_sql(
                &t,
                vec![Param::Text("small".into()), blob(&q), Param::Integer(12)]
            )
            .unwrap(),
            expected,
            "a shared index reads in full from a tenant session"
        );
        drop(dir);
    });
}

/// The bundled schema with two tenants, each with one knowledge document of three chunks
/// embedded in `nds-knowledge`; tenant B also has a chunk identical to the query text.
fn bundled_two_tenants(db: &Database, query: &str) {
    db.apply_bundled().unwrap();
    let embed = HashingEmbedder::new(1536).unwrap();
    for (tenant, texts) in [
        (
            "t_a",
            [
                "solar panels on the warehouse roof",
                "quarterly report on roof insulation",
                "staff rota for the summer",
            ]
            .as_slice(),
        ),
        ("t_b", [query, "solar roof tiles brochure"].as_slice()),
    ] {
        db.prepare(
            "INSERT INTO tenants (tenant_id, name, plan, region) VALUES (?1, ?1, 'pro', 'eu')",
        )
        .bind([tenant])
        .run()
        .unwrap();
        let s = db.tenant(tenant).unwrap();
        s.prepare(
            "INSERT INTO knowledge_documents (doc_id, title, content_hash) VALUES (?1, 'doc', 'h')",
        )
        .bind([format!("doc_{tenant}")])
        .run()
        .unwrap();
        let mut vectors = Vec::new();
        for (i, t) in texts.iter().enumerate() {
            let chunk = format!("{tenant}_c{i}");
            s.prepare("INSERT INTO knowledge_chunks (chunk_id, doc_id, ordinal, text, vector_id) VALUES (?1, ?2, ?3, ?4, ?1)")
                .bind([Param::Text(chunk.clone()), Param::Text(format!("doc_{tenant}")), Param::Integer(i as i64), Param::Text((*t).into())])
                .run()
                .unwrap();
            let values = embed.embed(t).into_iter().map(f64::from).collect();
            vectors.push(
                Vector::new(chunk, values)
                    .with_metadata(json!({"ordinal": i}).as_object().unwrap().clone()),
            );
        }
        s.vectorize("nds-knowledge")
            .unwrap()
            .upsert(&vectors)
            .unwrap();
    }
}

/// The issue's example, verbatim but for `?1`/`?2` and the `ORDER BY` that pins the order.
const ISSUE_JOIN: &str = "SELECT c.text, m.score FROM vectorize_query('nds-knowledge', ?1, 10, ?2) AS m JOIN knowledge_chunks c ON c.vector_id = m.id ORDER BY m.rank";

#[test]
fn the_issue_join_runs_in_a_tenant_session_and_sees_only_that_tenant() {
    within(|| {
        let db = Database::open_in_memory().unwrap();
        let query = "solar panels on the roof";
        bundled_two_tenants(&db, query);
        let q: Vec<f64> = HashingEmbedder::new(1536)
            .unwrap()
            .embed(query)
            .into_iter()
            .map(f64::from)
            .collect();
        // The admin surface sees tenant B's identical chunk first.
        let admin = admin_sql(
            &db,
            vec![
                Param::Text("nds-knowledge".into()),
                text(&q),
                Param::Integer(10),
            ],
        )
        .unwrap();
        assert_eq!(admin[0].id, "t_b_c0");
        assert!(admin[0].score > 0.999);
        assert_eq!(admin.len(), 5);

        let a = db.tenant("t_a").unwrap();
        let own = a
            .vectorize("nds-knowledge")
            .unwrap()
            .query(&q, &QueryOptions::new().with_top_k(10))
            .unwrap()
            .matches;
        assert_eq!(own.len(), 3);
        for vector in [text(&q), blob(&q)] {
            let got = tenant_sql(
                &a,
                vec![
                    Param::Text("nds-knowledge".into()),
                    vector.clone(),
                    Param::Integer(10),
                ],
            )
            .unwrap();
            assert_eq!(
                got, own,
                "the session's SQL sees what session.vectorize sees"
            );
            assert!(got
                .iter()
                .all(|m| m.id.starts_with("t_a_") && m.namespace.as_deref() == Some("t_a")));
            // The issue's JOIN, verbatim, with and without a filter.
            let rows = a
                .prepare(ISSUE_JOIN)
                .bind([vector.clone(), Param::Null])
                .all()
                .unwrap();
            let texts: Vec<&str> = rows
                .results
                .iter()
                .map(|r| r["text"].as_str().unwrap())
                .collect();
            assert_eq!(texts[0], "solar panels on the warehouse roof");
            assert_eq!(texts.len(), 3);
            let scores: Vec<f64> = rows
                .results
                .iter()
                .map(|r| r["score"].as_f64().unwrap())
                .collect();
            assert_eq!(scores, own.iter().map(|m| m.score).collect::<Vec<_>>());
        }
        // A filter needs a metadata index, as in Vectorize; vectors written before it are not
        // covered, so re-upsert them.
        db.vectorize("nds-knowledge")
            .unwrap()
            .create_metadata_index("ordinal", IndexType::Number)
            .unwrap();
        let filtered = a
            .prepare(ISSUE_JOIN)
            .bind([text(&q), Param::Text(r#"{"ordinal": {"$gte": 1}}"#.into())])
            .all()
            .unwrap();
        assert!(filtered.results.is_empty(), "not covered before an upsert");
        bundled_reupsert(&a, "t_a");
        let filter = json!({"ordinal": {"$gte": 1}});
        let own_filtered = a
            .vectorize("nds-knowledge")
            .unwrap()
            .query(
                &q,
                &QueryOptions::new()
                    .with_top_k(10)
                    .with_filter(filter.clone()),
            )
            .unwrap()
            .matches;
        assert_eq!(own_filtered.len(), 2);
        let got = tenant_sql(
            &a,
            vec![
                Param::Text("nds-knowledge".into()),
                text(&q),
                Param::Integer(10),
                Param::Text(filter.to_string()),
            ],
        )
        .unwrap();
        assert_eq!(got, own_filtered);
        let rows = a
            .prepare(ISSUE_JOIN)
            .bind([text(&q), Param::Text(filter.to_string())])
            .all()
            .unwrap();
        assert_eq!(rows.results.len(), 2);
        assert!(rows
            .results
            .iter()
            .all(|r| r["text"] != "solar panels on the warehouse roof"));
    });
}

/// Upserts tenant `t`'s chunks again (same ids, values and metadata).
fn bundled_reupsert(s: &TenantSession, t: &str) {
    let ix = s.vectorize("nds-knowledge").unwrap();
    let ids: Vec<String> = (0..3).map(|i| format!("{t}_c{i}")).collect();
    let stored = ix.get_by_ids(&ids).unwrap();
    assert_eq!(stored.len(), 3);
    ix.upsert(&stored).unwrap();
}

#[test]
fn a_tenant_session_cannot_reach_another_tenants_vectors() {
    within(|| {
        let db = Database::open_in_memory().unwrap();
        db.create_index(&CreateIndex::new("priv", 3, Metric::Cosine).scope(Scope::Private))
            .unwrap();
        crate::fixtures::register_tenants(&db, &["ta", "tb"]);
        let (a, b) = (db.tenant("ta").unwrap(), db.tenant("tb").unwrap());
        a.vectorize("priv")
            .unwrap()
            .upsert(&[
                Vector::new("a1", vec![1.0, 0.2, 0.0]),
                Vector::new("a2", vec![0.0, 1.0, 0.0]),
            ])
            .unwrap();
        // B's vector is exactly the query: the closest one in the index.
        b.vectorize("priv")
            .unwrap()
            .upsert(&[Vector::new("b1", vec![1.0, 0.0, 0.0])])
            .unwrap();
        db.vectorize("priv")
            .unwrap()
            .upsert(&[Vector::new("none1", vec![1.0, 0.0, 0.01])])
            .unwrap();
        let q = [1.0, 0.0, 0.0];
        let ids = |m: Vec<Match>| m.into_iter().map(|m| m.id).collect::<Vec<_>>();
        let name = || Param::Text("priv".into());
        assert_eq!(
            ids(admin_sql(&db, vec![name(), text(&q), Param::Integer(10)]).unwrap()),
            ["b1", "none1", "a1", "a2"]
        );
        assert_eq!(
            ids(tenant_sql(&a, vec![name(), text(&q), Param::Integer(10)]).unwrap()),
            ["a1", "a2"]
        );
        assert_eq!(
            ids(tenant_sql(&b, vec![name(), blob(&q), Param::Integer(10)]).unwrap()),
            ["b1"]
        );
        // The tenant's own namespace is fine; any other, by argument or by constraint, is not.
        assert_eq!(
            ids(tenant_sql(
                &a,
                vec![
                    name(),
                    text(&q),
                    Param::Integer(10),
                    Param::Null,
                    Param::Text("ta".into())
                ]
            )
            .unwrap()),
            ["a1", "a2"]
        );
        for attempt in [
            a.prepare("SELECT id FROM vectorize_query('priv', '[1,0,0]', 10, NULL, 'tb')"),
            a.prepare("SELECT id FROM vectorize_query WHERE index_name = 'priv' AND query_vector = '[1,0,0]' AND query_namespace = 'tb'"),
        ] {
            match attempt.all() {
                Err(Error::TenantViolation { tenant, object }) => {
                    assert_eq!(tenant, "ta");
                    assert!(object.contains("`tb`"), "{object}");
                }
                other => panic!("expected a tenant violation, got {other:?}"),
            }
        }
        // The same refusal as the API gives.
        assert!(matches!(
            a.vectorize("priv")
                .unwrap()
                .query(&q, &QueryOptions::new().with_namespace("tb")),
            Err(Error::TenantViolation { .. })
        ));
        // Filters cannot widen the scope either.
        db.vectorize("priv")
            .unwrap()
            .create_metadata_index("k", IndexType::String)
            .unwrap();
        let tagged = |id: &str, v: Vec<f64>, k: &str| {
            Vector::new(id, v).with_metadata(json!({"k": k}).as_object().unwrap().clone())
        };
        a.vectorize("priv")
            .unwrap()
            .upsert(&[
                tagged("a1", vec![1.0, 0.2, 0.0], "x"),
                tagged("a2", vec![0.0, 1.0, 0.0], "y"),
            ])
            .unwrap();
        b.vectorize("priv")
            .unwrap()
            .upsert(&[tagged("b1", vec![1.0, 0.0, 0.0], "z")])
            .unwrap();
        for filter in [
            json!({"k": {"$ne": "x"}}),
            json!({"k": {"$in": ["x", "z"]}}),
            json!({"k": "z"}),
        ] {
            let api = a
                .vectorize("priv")
                .unwrap()
                .query(
                    &q,
                    &QueryOptions::new()
                        .with_top_k(10)
                        .with_filter(filter.clone()),
                )
                .unwrap()
                .matches;
            let got = tenant_sql(
                &a,
                vec![
                    name(),
                    text(&q),
                    Param::Integer(10),
                    Param::Text(filter.to_string()),
                ],
            )
            .unwrap();
            assert_eq!(got, api, "{filter}");
            assert!(
                got.iter().all(|m| m.id.starts_with('a')),
                "{filter}: {got:?}"
            );
        }
        assert_eq!(
            ids(admin_sql(
                &db,
                vec![
                    name(),
                    text(&q),
                    Param::Integer(10),
                    Param::Text(r#"{"k": "z"}"#.into())
                ]
            )
            .unwrap()),
            ["b1"],
            "the filter does match B's vector, for the admin"
        );
        // The function's internal mode does not leak into the user's SQL: the vector tables
        // stay out of reach in the same statement and in the next one.
        for sql in [
            "SELECT m.id, (SELECT count(*) FROM main.d1vec_vectors) AS n FROM vectorize_query('priv', '[1,0,0]') m",
            "SELECT id FROM main.d1vec_vectors",
            "SELECT m.id FROM vectorize_query('priv', '[1,0,0]') m JOIN main.d1vec_vectors v ON v.id = m.id",
        ] {
            assert!(matches!(a.prepare(sql).all(), Err(Error::TenantViolation { .. })), "{sql}");
        }
        assert_eq!(
            ids(tenant_sql(&a, vec![name(), text(&q)]).unwrap()),
            ["a1", "a2"]
        );
        assert!(matches!(
            a.prepare("SELECT id FROM main.d1vec_vectors").all(),
            Err(Error::TenantViolation { .. })
        ));
        // The admin connection is not in internal mode after the function ran either: D1's
        // rules still apply.
        admin_sql(&db, vec![name(), text(&q)]).unwrap();
        assert!(matches!(
            db.prepare("PRAGMA writable_schema = 1").run(),
            Err(Error::NotAllowed(_))
        ));
    });
}

#[test]
fn tenant_and_admin_queries_interleave_across_threads() {
    let db = std::sync::Arc::new(Database::open_in_memory().unwrap());
    small_index(&db, "small", Metric::Cosine);
    let q = [1.0, 0.0, 0.0, 0.5, 1.0, 0.0];
    let expected = db
        .vectorize("small")
        .unwrap()
        .query(&q, &QueryOptions::new().with_top_k(8))
        .unwrap()
        .matches;
    crate::fixtures::register_tenants(&db, &["t0", "t1", "t2", "t3"]);
    let (tx, rx) = mpsc::channel();
    for i in 0..4 {
        let (db, expected, tx) = (std::sync::Arc::clone(&db), expected.clone(), tx.clone());
        std::thread::spawn(move || {
            let t = db.tenant(&format!("t{i}")).unwrap();
            let args = || vec![Param::Text("small".into()), text(&q), Param::Integer(8)];
            for _ in 0..10 {
                assert_eq!(admin_sql(&db, args()).unwrap(), expected);
                assert_eq!(tenant_sql(&t, args()).unwrap(), expected);
            }
            let _ = tx.send(i);
        });
    }
    let mut done: Vec<i32> = (0..4)
        .map(|_| {
            rx.recv_timeout(Duration::from_secs(60))
                .expect("a thread failed or deadlocked")
        })
        .collect();
    done.sort_unstable();
    assert_eq!(done, [0, 1, 2, 3]);
}
