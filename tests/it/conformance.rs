//! Vectorize conformance: one test per line of vectorize.md §13.1, using d1vec's decisions
//! where the line is marked unknown. Oracles: brute-force scoring in f64, and the documented
//! limits and messages.

use d1vec::index::Metric;
use d1vec::vectorize::filter::eval::IndexType;
use d1vec::vectorize::types::{QueryOptions, ReturnMetadata, Vector};
use d1vec::vectorize::{CreateIndex, EngineOptions, Scope, VectorIndex};
use d1vec::{Database, Error};
use serde_json::{json, Map, Value};

fn db() -> Database {
    Database::open_in_memory().unwrap()
}

fn index(db: &Database, name: &str, dims: usize, metric: Metric) -> VectorIndex {
    db.create_index(&CreateIndex::new(name, dims, metric))
        .unwrap();
    db.vectorize(name).unwrap()
}

fn meta(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn vec_(id: &str, values: &[f64]) -> Vector {
    Vector::new(id, values.to_vec())
}

/// `n` vectors in 4 dims on a circle-ish spread, ids v000..; metadata {i, even, name}.
fn fill(ix: &VectorIndex, n: usize) {
    let vs: Vec<Vector> = (0..n)
        .map(|i| {
            let a = i as f64 * 0.37;
            vec_(
                &format!("v{i:03}"),
                &[a.cos(), a.sin(), (i % 7) as f64 * 0.1 + 0.05, 1.0],
            )
            .with_metadata(meta(
                json!({"i": i, "even": i % 2 == 0, "name": format!("n{i:03}")}),
            ))
        })
        .collect();
    ix.upsert(&vs).unwrap();
}

fn code(e: &Error) -> u32 {
    e.json_code()
}

#[track_caller]
fn assert_code(r: Result<impl std::fmt::Debug, Error>, expected: u32) -> String {
    match r {
        Err(e) => {
            assert_eq!(code(&e), expected, "{e}");
            e.to_string()
        }
        Ok(v) => panic!("expected error {expected}, got {v:?}"),
    }
}

fn q(ix: &VectorIndex, v: &[f64], opts: QueryOptions) -> Vec<(String, f64)> {
    ix.query(v, &opts)
        .unwrap()
        .matches
        .into_iter()
        .map(|m| (m.id, m.score))
        .collect()
}

#[test]
fn top_k_default_caps_and_rejections() {
    let db = db();
    let ix = index(&db, "k", 4, Metric::Cosine);
    fill(&ix, 120);
    let probe = [1.0, 0.0, 0.1, 1.0];
    assert_eq!(
        ix.query(&probe, &QueryOptions::new()).unwrap().count,
        5,
        "topK defaults to 5"
    );
    assert_eq!(
        ix.query(&probe, &QueryOptions::new().with_top_k(100))
            .unwrap()
            .count,
        100
    );
    assert_eq!(
        ix.query(
            &probe,
            &QueryOptions::new().with_top_k(50).with_values(true)
        )
        .unwrap()
        .count,
        50
    );
    assert_code(
        ix.query(&probe, &QueryOptions::new().with_top_k(101)),
        40025,
    );
    let m = assert_code(
        ix.query(
            &probe,
            &QueryOptions::new().with_top_k(51).with_values(true),
        ),
        40025,
    );
    assert!(m.contains("max top K is 50, but got 51"), "{m}");
    assert_code(
        ix.query(
            &probe,
            &QueryOptions::new()
                .with_top_k(51)
                .with_metadata(ReturnMetadata::All),
        ),
        40025,
    );
    assert_eq!(
        ix.query(
            &probe,
            &QueryOptions::new()
                .with_top_k(100)
                .with_metadata(ReturnMetadata::Indexed)
        )
        .unwrap()
        .count,
        100
    );
}

#[test]
fn return_metadata_levels() {
    let db = db();
    let ix = index(&db, "m", 2, Metric::Cosine);
    let long = "é".repeat(40); // 80 bytes
    ix.upsert(&[
        vec_("a", &[1.0, 0.0]).with_metadata(meta(json!({"s": long, "n": 3, "other": "x"})))
    ])
    .unwrap();
    ix.create_metadata_index("s", IndexType::String).unwrap();
    ix.upsert(&[
        vec_("a", &[1.0, 0.0]).with_metadata(meta(json!({"s": long, "n": 3, "other": "x"})))
    ])
    .unwrap();
    let one = |level| {
        ix.query(&[1.0, 0.0], &QueryOptions::new().with_metadata(level))
            .unwrap()
            .matches
            .remove(0)
    };
    assert!(one(ReturnMetadata::None).metadata.is_none());
    let all = one(ReturnMetadata::All).metadata.unwrap();
    assert_eq!(all["s"], json!(long));
    assert_eq!(all["other"], "x");
    let indexed = one(ReturnMetadata::Indexed).metadata.unwrap();
    assert_eq!(indexed.len(), 1, "only indexed keys: {indexed:?}");
    assert_eq!(
        indexed["s"],
        json!("é".repeat(32)),
        "strings come back truncated to 64 bytes"
    );
    let t = QueryOptions::from_json(&json!({"returnMetadata": true})).unwrap();
    assert_eq!(t.return_metadata, ReturnMetadata::All, "true means all");
    let e = QueryOptions::from_json(&json!({"returnMetadata": false})).unwrap_err();
    assert_eq!(e.code, 40026);
}

#[test]
fn values_are_f32_rounded_and_omitted_unless_asked() {
    let db = db();
    let ix = index(&db, "v", 2, Metric::Euclidean);
    ix.upsert(&[vec_("a", &[58.8, -1.25])]).unwrap();
    let m = ix
        .query(&[0.0, 0.0], &QueryOptions::new())
        .unwrap()
        .matches
        .remove(0);
    assert!(m.values.is_none());
    let m = ix
        .query(&[0.0, 0.0], &QueryOptions::new().with_values(true))
        .unwrap()
        .matches
        .remove(0);
    assert_eq!(m.values.unwrap(), vec![58.79999923706055, -1.25]);
    assert_eq!(
        ix.get_by_ids(&["a".into()]).unwrap()[0].values,
        vec![58.79999923706055, -1.25]
    );
}

/// Brute force in f64: cosine similarity desc, plain L2 asc, negative dot asc; ties by id.
fn oracle(metric: Metric, data: &[(String, Vec<f64>)], q: &[f64], k: usize) -> Vec<(String, f64)> {
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mut scored: Vec<(String, f64)> = data
        .iter()
        .map(|(id, v)| {
            let s = match metric {
                Metric::Cosine => dot(v, q) / (dot(v, v).sqrt() * dot(q, q).sqrt()),
                Metric::Euclidean => v
                    .iter()
                    .zip(q)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f64>()
                    .sqrt(),
                Metric::DotProduct => -dot(v, q),
            };
            (id.clone(), s)
        })
        .collect();
    scored.sort_by(|a, b| {
        let o = if metric == Metric::Cosine {
            b.1.total_cmp(&a.1)
        } else {
            a.1.total_cmp(&b.1)
        };
        o.then(a.0.cmp(&b.0))
    });
    scored.truncate(k);
    scored
}

#[test]
fn scores_and_order_for_each_metric_match_brute_force() {
    for metric in [Metric::Cosine, Metric::Euclidean, Metric::DotProduct] {
        let db = db();
        let ix = index(&db, "s", 3, metric);
        let data: Vec<(String, Vec<f64>)> = (0..40)
            .map(|i| {
                let f = i as f64;
                (
                    format!("p{i:02}"),
                    vec![(f * 0.7).sin() * 3.0, (f * 1.3).cos() * 2.0, f * 0.05 - 1.0],
                )
            })
            .collect();
        // f32 rounding is part of the contract: the oracle sees the stored (rounded) values.
        let stored: Vec<(String, Vec<f64>)> = data
            .iter()
            .map(|(id, v)| (id.clone(), v.iter().map(|x| *x as f32 as f64).collect()))
            .collect();
        ix.upsert(&data.iter().map(|(id, v)| vec_(id, v)).collect::<Vec<_>>())
            .unwrap();
        let query = [0.3, -1.1, 0.4];
        let got = q(&ix, &query, QueryOptions::new().with_top_k(10));
        let want = oracle(metric, &stored, &query, 10);
        assert_eq!(
            got.iter().map(|g| &g.0).collect::<Vec<_>>(),
            want.iter().map(|w| &w.0).collect::<Vec<_>>(),
            "{metric:?}"
        );
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g.1 - w.1).abs() < 1e-4,
                "{metric:?} score {} vs {}",
                g.1,
                w.1
            );
        }
        if metric == Metric::Cosine {
            assert!(got.iter().all(|(_, s)| (-1.0..=1.0 + 1e-6).contains(s)));
            assert!(got.windows(2).all(|w| w[0].1 >= w[1].1), "descending");
        } else {
            assert!(got.windows(2).all(|w| w[0].1 <= w[1].1), "ascending");
        }
    }
}

#[test]
fn ties_are_broken_by_id() {
    let db = db();
    let ix = index(&db, "t", 2, Metric::Euclidean);
    ix.upsert(&[
        vec_("b", &[1.0, 0.0]),
        vec_("a", &[0.0, 1.0]),
        vec_("c", &[-1.0, 0.0]),
    ])
    .unwrap();
    let got = q(&ix, &[0.0, 0.0], QueryOptions::new().with_top_k(2));
    assert_eq!(
        got.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
}

#[test]
fn namespaces_isolate_and_combine_with_filters() {
    let db = db();
    let ix = index(&db, "n", 2, Metric::Cosine);
    ix.create_metadata_index("kind", IndexType::String).unwrap();
    ix.upsert(&[
        vec_("a1", &[1.0, 0.1])
            .with_namespace("A")
            .with_metadata(meta(json!({"kind": "x"}))),
        vec_("a2", &[1.0, 0.2])
            .with_namespace("A")
            .with_metadata(meta(json!({"kind": "y"}))),
        vec_("b1", &[1.0, 0.0])
            .with_namespace("B")
            .with_metadata(meta(json!({"kind": "x"}))),
        vec_("none", &[1.0, 0.05]),
    ])
    .unwrap();
    let ids = |o: QueryOptions| {
        q(&ix, &[1.0, 0.0], o.with_top_k(10))
            .into_iter()
            .map(|x| x.0)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(QueryOptions::new().with_namespace("A")), ["a1", "a2"]);
    assert_eq!(
        ids(QueryOptions::new()
            .with_namespace("A")
            .with_filter(json!({"kind": "x"}))),
        ["a1"]
    );
    assert_eq!(
        ids(QueryOptions::new()).len(),
        4,
        "no namespace searches all"
    );
    assert!(ids(QueryOptions::new().with_namespace("C")).is_empty());
}

#[test]
fn filter_grammar_rejections() {
    let db = db();
    let ix = index(&db, "g", 2, Metric::Cosine);
    ix.create_metadata_index("a", IndexType::Number).unwrap();
    ix.upsert(&[vec_("x", &[1.0, 0.0])]).unwrap();
    let long_key = "k".repeat(513);
    let big = json!({"a": {"$in": (0..600).collect::<Vec<_>>()}});
    for f in [
        json!({}),
        big,
        json!({"$or": [{"a": 1}]}),
        json!({"a\"b": 1}),
        json!({long_key: 1}),
        json!({"a": {"$eq": 1, "$gt": 0}}),
        json!({"a": {"$gt": 0, "$gte": 1}}),
        json!({"a": {"$lt": true}}),
    ] {
        let r = ix.query(&[1.0, 0.0], &QueryOptions::new().with_filter(f.clone()));
        assert_code(r, 40030);
    }
}

#[test]
fn filter_semantics_over_indexed_values() {
    let db = db();
    let ix = index(&db, "f", 2, Metric::Cosine);
    for (p, t) in [
        ("n", IndexType::Number),
        ("s", IndexType::String),
        ("p.q", IndexType::Number),
    ] {
        ix.create_metadata_index(p, t).unwrap();
    }
    ix.upsert(&[
        vec_("a", &[1.0, 0.0]).with_metadata(meta(json!({"n": 1, "s": "net", "p": {"q": 5}}))),
        vec_("b", &[1.0, 0.1]).with_metadata(meta(json!({"n": 2, "s": "network"}))),
        vec_("c", &[1.0, 0.2]).with_metadata(meta(json!({"n": 3, "s": "new", "p": {"q": 7}}))),
        vec_("d", &[1.0, 0.3]).with_metadata(meta(json!({"s": null}))),
    ])
    .unwrap();
    let ids = |f: Value| {
        let mut v: Vec<String> = q(
            &ix,
            &[1.0, 0.0],
            QueryOptions::new().with_top_k(10).with_filter(f),
        )
        .into_iter()
        .map(|x| x.0)
        .collect();
        v.sort();
        v
    };
    assert_eq!(ids(json!({"n": 2})), ["b"]);
    assert_eq!(
        ids(json!({"n": {"$ne": 2}})),
        ["a", "c", "d"],
        "$ne includes vectors lacking the key"
    );
    assert_eq!(ids(json!({"n": {"$in": [1, 3]}})), ["a", "c"]);
    assert_eq!(ids(json!({"n": {"$nin": [1, 3]}})), ["b", "d"]);
    assert_eq!(ids(json!({"n": {"$gte": 2, "$lt": 3}})), ["b"]);
    assert_eq!(
        ids(json!({"s": {"$gte": "net", "$lt": "neu"}})),
        ["a", "b"],
        "prefix idiom"
    );
    assert_eq!(
        ids(json!({"p.q": {"$gt": 6}})),
        ["c"],
        "dotted keys reach nested values"
    );
    assert_eq!(
        ids(json!({"s": null})),
        ["d"],
        "null matches an explicit null only"
    );
    let e = assert_code(
        ix.query(
            &[1.0, 0.0],
            &QueryOptions::new().with_filter(json!({"zzz": 1})),
        ),
        40031,
    );
    assert!(e.contains("zzz"), "{e}");
}

#[test]
fn metadata_indexes_are_not_retroactive() {
    let db = db();
    let ix = index(&db, "r", 2, Metric::Cosine);
    ix.upsert(&[vec_("old", &[1.0, 0.0]).with_metadata(meta(json!({"tag": "t"})))])
        .unwrap();
    let created = ix.create_metadata_index("tag", IndexType::String).unwrap();
    assert_eq!(created.vectors_not_covered, 1);
    let hits = |ix: &VectorIndex| {
        ix.query(
            &[1.0, 0.0],
            &QueryOptions::new().with_filter(json!({"tag": "t"})),
        )
        .unwrap()
        .count
    };
    assert_eq!(
        hits(&ix),
        0,
        "a vector stored before its index is not filterable"
    );
    ix.upsert(&[vec_("old", &[1.0, 0.0]).with_metadata(meta(json!({"tag": "t"})))])
        .unwrap();
    assert_eq!(hits(&ix), 1, "re-upserting makes it filterable");
}

#[test]
fn string_index_truncates_at_64_bytes_on_a_char_boundary() {
    let db = db();
    let ix = index(&db, "u", 2, Metric::Cosine);
    ix.create_metadata_index("s", IndexType::String).unwrap();
    let base = "a".repeat(63);
    ix.upsert(&[
        vec_("x", &[1.0, 0.0]).with_metadata(meta(json!({"s": format!("{base}é")}))),
        vec_("y", &[1.0, 0.1]).with_metadata(meta(json!({"s": format!("{base}éz")}))),
    ])
    .unwrap();
    // 63 ASCII bytes + a 2-byte char: the indexed prefix stops before the char.
    let hits = ix
        .query(
            &[1.0, 0.0],
            &QueryOptions::new()
                .with_top_k(10)
                .with_filter(json!({"s": base})),
        )
        .unwrap();
    assert_eq!(hits.count, 2, "both share the same 63-byte indexed prefix");
}

#[test]
fn metadata_index_count_types_and_deletes() {
    let db = db();
    let ix = index(&db, "mi", 2, Metric::Cosine);
    for i in 0..10 {
        ix.create_metadata_index(&format!("p{i}"), IndexType::Number)
            .unwrap();
    }
    assert_code(ix.create_metadata_index("p10", IndexType::Number), 40034);
    assert_code(ix.delete_metadata_index("nope"), 40005);
    assert_code(ix.create_metadata_index("p3", IndexType::String), 40039);
    assert_eq!(ix.list_metadata_indexes().unwrap().len(), 10);
    ix.delete_metadata_index("p3").unwrap();
    assert_eq!(ix.list_metadata_indexes().unwrap().len(), 9);
}

#[test]
fn insert_keeps_existing_and_upsert_replaces_in_full() {
    let db = db();
    let ix = index(&db, "iu", 2, Metric::Cosine);
    ix.insert(&[vec_("a", &[1.0, 0.0]).with_metadata(meta(json!({"v": 1, "keep": true})))])
        .unwrap();
    ix.insert(&[vec_("a", &[0.0, 1.0]).with_metadata(meta(json!({"v": 2})))])
        .unwrap();
    let got = ix.get_by_ids(&["a".into()]).unwrap().remove(0);
    assert_eq!(got.values, vec![1.0, 0.0], "insert keeps the stored vector");
    ix.upsert(&[vec_("a", &[0.0, 1.0])
        .with_metadata(meta(json!({"v": 3})))
        .with_namespace("ns")])
        .unwrap();
    let got = ix.get_by_ids(&["a".into()]).unwrap().remove(0);
    assert_eq!(got.metadata.unwrap(), meta(json!({"v": 3})), "no merge");
    assert_eq!(got.namespace.as_deref(), Some("ns"));
    ix.insert(&[vec_("b", &[1.0, 0.0]), vec_("b", &[0.0, 1.0])])
        .unwrap();
    assert_eq!(
        ix.get_by_ids(&["b".into()]).unwrap()[0].values,
        vec![1.0, 0.0],
        "insert: first wins in a batch"
    );
    ix.upsert(&[vec_("c", &[1.0, 0.0]), vec_("c", &[0.0, 1.0])])
        .unwrap();
    assert_eq!(
        ix.get_by_ids(&["c".into()]).unwrap()[0].values,
        vec![0.0, 1.0],
        "upsert: last wins in a batch"
    );
}

#[test]
fn write_limits_are_enforced_with_vectorize_codes() {
    let db = db();
    let ix = index(&db, "l", 2, Metric::Cosine);
    let id64 = "é".repeat(32);
    ix.upsert(&[vec_(&id64, &[1.0, 0.0])]).unwrap();
    let m = assert_code(ix.upsert(&[vec_(&format!("{id64}x"), &[1.0, 0.0])]), 40008);
    assert!(m.contains("max is 64 bytes, got 65 bytes"), "{m}");
    assert_code(
        ix.upsert(&[vec_("n", &[1.0, 0.0]).with_namespace("n".repeat(65))]),
        40032,
    );
    let big = meta(json!({"k": "x".repeat(10_240)}));
    assert_code(
        ix.upsert(&[vec_("m", &[1.0, 0.0]).with_metadata(big)]),
        40016,
    );
    let m = assert_code(ix.upsert(&[vec_("d", &[1.0, 0.0, 0.0])]), 40012);
    assert!(
        m.contains("expected 2 dimensions, and got 3 dimensions"),
        "{m}"
    );
    let m = assert_code(ix.query(&[1.0], &QueryOptions::new()), 40006);
    assert!(
        m.contains("expected 2 dimensions, and got 1 dimensions"),
        "{m}"
    );
    assert_code(ix.upsert(&[vec_("z", &[0.0, 0.0])]), 40035);
    assert_code(ix.query(&[0.0, 0.0], &QueryOptions::new()), 40035);
    assert_code(ix.upsert(&[vec_("nan", &[f64::NAN, 0.0])]), 40035);
    // A bad vector rejects its whole batch.
    let before = ix.describe().unwrap().vector_count;
    assert_code(
        ix.upsert(&[vec_("ok", &[1.0, 0.0]), vec_("bad", &[1.0])]),
        40012,
    );
    assert_eq!(ix.describe().unwrap().vector_count, before);
}

#[test]
fn get_and_delete_by_ids() {
    let db = db();
    let ix = index(&db, "gd", 2, Metric::Cosine);
    fill_2d(&ix, 30);
    let got = ix
        .get_by_ids(&["v5".into(), "missing".into(), "v1".into(), "v5".into()])
        .unwrap();
    assert_eq!(
        got.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(),
        ["v5", "v1"],
        "input order, duplicates dropped, missing omitted"
    );
    let ids: Vec<String> = (0..21).map(|i| format!("v{i}")).collect();
    let m = assert_code(ix.get_by_ids(&ids), 40007);
    assert!(m.contains("max id count is 20, got 21"), "{m}");
    let ids: Vec<String> = (0..101).map(|i| format!("v{i}")).collect();
    assert_code(ix.delete_by_ids(&ids), 40007);
    ix.delete_by_ids(&["v1".into(), "unknown".into()]).unwrap();
    assert_eq!(ix.describe().unwrap().vector_count, 29);
    assert!(ix.get_by_ids(&["v1".into()]).unwrap().is_empty());
    assert!(q(&ix, &[1.0, 0.0], QueryOptions::new().with_top_k(100))
        .iter()
        .all(|(id, _)| id != "v1"));
}

fn fill_2d(ix: &VectorIndex, n: usize) {
    let vs: Vec<Vector> = (0..n)
        .map(|i| vec_(&format!("v{i}"), &[(i as f64).cos(), (i as f64).sin()]))
        .collect();
    ix.upsert(&vs).unwrap();
}

#[test]
fn describe_reports_count_and_last_mutation() {
    let db = db();
    let ix = index(&db, "d", 2, Metric::Cosine);
    let info = ix.describe().unwrap();
    assert_eq!((info.dimensions, info.vector_count), (2, 0));
    let m1 = ix.upsert(&[vec_("a", &[1.0, 0.0])]).unwrap().mutation_id;
    let info = ix.describe().unwrap();
    assert_eq!(info.vector_count, 1);
    assert_eq!(info.processed_up_to_mutation.as_deref(), Some(m1.as_str()));
    let m2 = ix.delete_by_ids(&["a".into()]).unwrap().mutation_id;
    assert!(m2 > m1, "mutation ids are ordered UUIDs");
    assert_eq!(
        ix.describe().unwrap().processed_up_to_mutation.as_deref(),
        Some(m2.as_str())
    );
    let body = serde_json::to_value(ix.describe().unwrap()).unwrap();
    // Issue 12: describe() carries the metric (docs/vectorize.md, "Decisions").
    assert_eq!(body["metric"], "cosine", "describe() names the metric");
    assert!(body["processedUpToDatetime"].is_string());
}

#[test]
fn writes_are_visible_immediately() {
    // d1vec's decision: immediate visibility (an embedded engine has no async rebuild job).
    let db = db();
    let ix = index(&db, "vis", 2, Metric::Cosine);
    ix.upsert(&[vec_("a", &[1.0, 0.0])]).unwrap();
    assert_eq!(
        ix.query(&[1.0, 0.0], &QueryOptions::new()).unwrap().count,
        1
    );
}

#[test]
fn list_vectors_pages_over_a_snapshot() {
    let db = db();
    let ix = index(&db, "lv", 2, Metric::Cosine);
    fill_2d(&ix, 25);
    let p1 = ix.list_vectors(Some(10), None).unwrap();
    assert_eq!((p1.count, p1.total_count, p1.is_truncated), (10, 25, true));
    assert!(p1.cursor_expiration_timestamp.is_some());
    // Changes after the first page do not show in this iteration.
    ix.upsert(&[vec_("zz-new", &[1.0, 0.0])]).unwrap();
    ix.delete_by_ids(&["v9".into()]).unwrap();
    let mut seen: Vec<String> = p1.vectors.iter().map(|v| v.id.clone()).collect();
    let mut cursor = p1.next_cursor;
    while let Some(c) = cursor {
        let p = ix.list_vectors(Some(10), Some(&c)).unwrap();
        seen.extend(p.vectors.iter().map(|v| v.id.clone()));
        cursor = p.next_cursor;
    }
    let mut want: Vec<String> = (0..25).map(|i| format!("v{i}")).collect();
    want.sort();
    assert_eq!(seen, want);
    assert!(ix.list_vectors(Some(0), None).is_err());
    assert!(ix.list_vectors(Some(1001), None).is_err());
    assert!(ix.list_vectors(Some(5), Some("garbage")).is_err());
    let fresh = ix.list_vectors(Some(1000), None).unwrap();
    assert_eq!(
        fresh.total_count, 25,
        "a new iteration sees the insert and the delete"
    );
}

#[test]
fn query_by_id_uses_the_stored_vector() {
    let db = db();
    let ix = index(&db, "qi", 2, Metric::Cosine);
    fill_2d(&ix, 10);
    let m = ix.query_by_id("v3", &QueryOptions::new()).unwrap();
    assert_eq!(m.matches[0].id, "v3");
    assert!((m.matches[0].score - 1.0).abs() < 1e-6);
    let e = assert_code(ix.query_by_id("nope", &QueryOptions::new()), 40036);
    assert!(e.contains("nope"));
}

#[test]
fn ndjson_ingest_and_export_round_trip() {
    use d1vec::vectorize::ndjson::{reader, write_vector, Unparsable};
    let text = "{\"id\":\"a\",\"values\":[1,0]}\n\n{\"id\":\"b\",\"values\":[0,1],\"metadata\":{\"k\":\"v\"}}\r\nnot json\n";
    let strict: Result<Vec<_>, _> = reader(text.as_bytes(), 100, Unparsable::Error).collect();
    assert!(strict.is_err(), "unparsable-behavior=error stops");
    let mut lenient = reader(text.as_bytes(), 100, Unparsable::Discard);
    let batches: Vec<Vec<Vector>> = lenient.by_ref().map(|b| b.unwrap()).collect();
    assert_eq!(lenient.discarded(), 1);
    let db = db();
    let ix = index(&db, "nd", 2, Metric::Cosine);
    for b in &batches {
        ix.upsert(b).unwrap();
    }
    let mut out = Vec::new();
    for v in ix.get_by_ids(&["a".into(), "b".into()]).unwrap() {
        write_vector(&mut out, &v).unwrap();
    }
    let again: Vec<Vector> = reader(out.as_slice(), 100, Unparsable::Error)
        .flat_map(|b| b.unwrap())
        .collect();
    assert_eq!(again, ix.get_by_ids(&["a".into(), "b".into()]).unwrap());
}

#[test]
fn index_management() {
    let db = db();
    let created = db
        .create_index(&CreateIndex::new("one", 8, Metric::DotProduct))
        .unwrap();
    assert_eq!(created.config.dimensions, 8);
    assert_code(
        db.create_index(&CreateIndex::new("one", 8, Metric::Cosine)),
        3002,
    );
    assert_code(
        db.create_index(&CreateIndex::new("wide", 1537, Metric::Cosine)),
        40038,
    );
    assert_code(
        db.create_index(&CreateIndex::new("zero", 0, Metric::Cosine)),
        40038,
    );
    assert_code(db.get_index("missing"), 3000);
    assert_eq!(db.list_indexes().unwrap().len(), 1);
    db.delete_index("one").unwrap();
    assert_code(db.vectorize("one"), 3000);
    db.create_index(&CreateIndex::new("one", 4, Metric::Cosine))
        .unwrap();
    assert_eq!(
        db.vectorize("one")
            .unwrap()
            .describe()
            .unwrap()
            .vector_count,
        0,
        "a re-created name starts empty"
    );
}

#[test]
fn tenant_scoping_of_private_and_shared_indexes() {
    let db = db();
    db.create_index(&CreateIndex::new("priv", 2, Metric::Cosine).scope(Scope::Private))
        .unwrap();
    db.create_index(&CreateIndex::new("pub", 2, Metric::Cosine))
        .unwrap();
    crate::fixtures::register_tenants(&db, &["ta", "tb"]);
    let a = db.tenant("ta").unwrap();
    let b = db.tenant("tb").unwrap();
    let (pa, pb) = (a.vectorize("priv").unwrap(), b.vectorize("priv").unwrap());
    pa.upsert(&[vec_("doc-a", &[1.0, 0.0])]).unwrap();
    pb.upsert(&[vec_("doc-b", &[1.0, 0.01])]).unwrap();
    let seen = |ix: &VectorIndex| {
        q(ix, &[1.0, 0.0], QueryOptions::new().with_top_k(10))
            .into_iter()
            .map(|x| x.0)
            .collect::<Vec<_>>()
    };
    assert_eq!(seen(&pa), ["doc-a"]);
    assert_eq!(seen(&pb), ["doc-b"]);
    assert!(
        pa.get_by_ids(&["doc-b".into()]).unwrap().is_empty(),
        "another tenant's id is missing"
    );
    assert_code(pa.query_by_id("doc-b", &QueryOptions::new()), 40036);
    pa.delete_by_ids(&["doc-b".into()]).unwrap();
    assert_eq!(
        seen(&pb),
        ["doc-b"],
        "deleting another tenant's id does nothing"
    );
    assert!(matches!(
        pa.query(&[1.0, 0.0], &QueryOptions::new().with_namespace("tb")),
        Err(Error::TenantViolation { .. })
    ));
    assert!(matches!(
        pa.upsert(&[vec_("x", &[1.0, 0.0]).with_namespace("tb")]),
        Err(Error::TenantViolation { .. })
    ));
    // Each tenant's namespace is its own id space: tb's `doc-b` is no obstacle to ta's.
    pa.upsert(&[vec_("doc-b", &[0.0, 1.0])]).unwrap();
    assert_eq!(seen(&pb), ["doc-b"], "tb's doc-b is untouched");
    assert_eq!(
        pb.get_by_ids(&["doc-b".into()]).unwrap()[0].values,
        [1.0f32 as f64, 0.01f32 as f64]
    );
    pa.delete_by_ids(&["doc-b".into()]).unwrap();
    assert_eq!(
        pa.describe().unwrap().vector_count,
        1,
        "counts are the tenant's own"
    );
    let stored = db
        .vectorize("priv")
        .unwrap()
        .get_by_ids(&["doc-a".into()])
        .unwrap();
    assert_eq!(
        stored[0].namespace.as_deref(),
        Some("ta"),
        "writes are stamped with the tenant's namespace"
    );
    db.vectorize("pub")
        .unwrap()
        .upsert(&[vec_("s", &[1.0, 0.0])])
        .unwrap();
    assert_eq!(
        seen(&a.vectorize("pub").unwrap()),
        ["s"],
        "shared indexes are readable"
    );
    assert!(matches!(
        a.vectorize("pub")
            .unwrap()
            .upsert(&[vec_("t", &[1.0, 0.0])]),
        Err(Error::TenantViolation { .. })
    ));
    assert!(matches!(
        a.vectorize("priv")
            .unwrap()
            .create_metadata_index("k", IndexType::String),
        Err(Error::TenantViolation { .. })
    ));
}

#[test]
fn planner_is_exact_up_to_its_threshold_and_takes_the_graph_above() {
    let db = db();
    db.create_index(&CreateIndex::new("plan", 8, Metric::Cosine).scope(Scope::Private))
        .unwrap();
    let admin = db.vectorize("plan").unwrap();
    let mut all = Vec::new();
    for i in 0..6000u32 {
        let ns = if i % 1000 == 0 { "small" } else { "big" };
        let v: Vec<f64> = (0..8)
            .map(|d| {
                (((i * 31 + d * 17) % 97) as f64 / 97.0) - 0.5 + if d == 0 { 0.01 } else { 0.0 }
            })
            .collect();
        all.push(vec_(&format!("x{i}"), &v).with_namespace(ns));
    }
    for chunk in all.chunks(1000) {
        admin.upsert(chunk).unwrap();
    }
    let query: Vec<f64> = (0..8).map(|d| d as f64 * 0.1 - 0.3).collect();
    crate::fixtures::register_tenants(&db, &["small"]);
    let small = db.tenant("small").unwrap().vectorize("plan").unwrap();
    let before = db.vector_stats();
    let got = q(&small, &query, QueryOptions::new().with_top_k(3));
    let after = db.vector_stats();
    assert_eq!(
        after.exact_searches,
        before.exact_searches + 1,
        "a 0.1% tenant is scored exactly"
    );
    let stored: Vec<(String, Vec<f64>)> = all
        .iter()
        .filter(|v| v.namespace.as_deref() == Some("small"))
        .map(|v| {
            (
                v.id.clone(),
                v.values.iter().map(|x| *x as f32 as f64).collect(),
            )
        })
        .collect();
    let want = oracle(Metric::Cosine, &stored, &query, 3);
    assert_eq!(
        got.iter().map(|g| &g.0).collect::<Vec<_>>(),
        want.iter().map(|w| &w.0).collect::<Vec<_>>()
    );
    // Without a filter the whole index is the candidate set: exact while it is small...
    let before = db.vector_stats();
    q(&admin, &query, QueryOptions::new().with_top_k(3));
    assert_eq!(
        db.vector_stats().exact_searches,
        before.exact_searches + 1,
        "no filter on a small index: exact"
    );
    // ...and the graph once it is larger than `exact_max_candidates`.
    db.set_vector_options(EngineOptions {
        exact_max_candidates: all.len() - 1,
        ..EngineOptions::default()
    });
    let before = db.vector_stats();
    q(&admin, &query, QueryOptions::new().with_top_k(3));
    assert_eq!(
        db.vector_stats().graph_searches,
        before.graph_searches + 1,
        "no filter on a larger index: the graph"
    );
}

#[test]
fn another_tenants_vector_writes_do_not_move_what_a_session_is_told() {
    // `modified_on` (get/list) used to move with every vector write, so a session saw when
    // other tenants wrote; it now dates the index's configuration only.
    let db = db();
    db.create_index(&CreateIndex::new("priv", 2, Metric::Cosine).scope(Scope::Private))
        .unwrap();
    crate::fixtures::register_tenants(&db, &["ta", "tb"]);
    let (a, b) = (db.tenant("ta").unwrap(), db.tenant("tb").unwrap());
    let before = a.vectorize("priv").unwrap().description();
    let listed_before = a.list_indexes().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    b.vectorize("priv")
        .unwrap()
        .upsert(&[vec_("b1", &[1.0, 0.0])])
        .unwrap();
    assert_eq!(a.vectorize("priv").unwrap().description(), before);
    assert_eq!(a.list_indexes().unwrap(), listed_before);
}
