//! Adversarial review of issue 10's read path (in-memory state, in-memory filter index,
//! tenant-contiguous segments). Oracles: brute force over what was written with the
//! reference evaluator `filter::eval` for filters; a freshly opened `Database` (state loaded
//! from SQLite) for states brute force cannot model; the tenant's own model for isolation.

use std::collections::{BTreeMap, BTreeSet};

use d1vec::index::Metric;
use d1vec::vectorize::filter::eval::{self, IndexType};
use d1vec::vectorize::filter::parse::parse_filter;
use d1vec::vectorize::types::{QueryOptions, ReturnMetadata, Vector};
use d1vec::vectorize::{CreateIndex, Scope};
use d1vec::Database;
use serde_json::{json, Map, Value};

const DIMS: usize = 4;

fn vector(seed: u64) -> Vec<f64> {
    crate::oracle::seeded_vector(seed, DIMS)
        .into_iter()
        .map(|x| x + 0.01)
        .collect()
}

fn meta(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn long(tail: &str) -> String {
    format!("{}{tail}", "a".repeat(64))
}

/// Metadata variants over the indexed properties s (string), n (number), b (boolean),
/// o.k (string, nested): absent keys, nulls, wrong types, long strings sharing 64 bytes,
/// -0.0 and 0.0.
fn metadata(i: u64) -> Value {
    let s = [
        json!(null),
        json!("x"),
        json!(long("1")),
        json!(long("2")),
        json!(""),
        json!(1),
        json!("y"),
        Value::Null,
    ];
    let n = [
        json!(0.0),
        json!(-0.0),
        json!(1.5),
        json!(-1),
        json!("1"),
        json!(1e300),
        json!(null),
    ];
    let b = [json!(true), json!(false), json!("true"), json!(null)];
    let mut m = Map::new();
    if i % 9 != 0 {
        m.insert("s".into(), s[(i % 8) as usize].clone());
    }
    if i % 5 != 1 {
        m.insert("n".into(), n[(i % 7) as usize].clone());
    }
    if i % 4 != 3 {
        m.insert("b".into(), b[(i % 4) as usize].clone());
    }
    if i % 3 == 0 {
        m.insert("o".into(), json!({"k": s[(i % 5) as usize].clone()}));
    }
    Value::Object(m)
}

fn types(p: &str) -> Option<IndexType> {
    match p {
        "s" | "o.k" => Some(IndexType::String),
        "n" => Some(IndexType::Number),
        "b" => Some(IndexType::Boolean),
        _ => None,
    }
}

fn filters() -> Vec<Value> {
    let l1 = long("1");
    let l2 = long("2");
    let l9 = long("9");
    vec![
        json!({"s": "x"}),
        json!({"s": {"$ne": "x"}}),
        json!({"s": {"$nin": ["x", "y"]}}),
        json!({"s": {"$in": ["x", ""]}}),
        json!({"s": l1}),
        json!({"s": {"$eq": l9}}),
        json!({"s": {"$ne": l2}}),
        json!({"s": {"$in": [l2]}}),
        json!({"s": {"$gt": "a", "$lte": l1}}),
        json!({"s": {"$lt": "y"}}),
        json!({"s": {"$gte": ""}}),
        json!({"s": null}),
        json!({"s": {"$ne": null}}),
        json!({"s": 1}),
        json!({"s": {"$ne": 1}}),
        json!({"n": 0}),
        json!({"n": -0.0}),
        json!({"n": {"$ne": -0.0}}),
        json!({"n": {"$gte": -0.0}}),
        json!({"n": {"$lt": 0.0}}),
        json!({"n": {"$gt": -1, "$lt": 2}}),
        json!({"n": {"$nin": [0, 1.5]}}),
        json!({"n": {"$in": [-1, 1e300]}}),
        json!({"n": "1"}),
        json!({"n": {"$lte": 1e308}}),
        json!({"b": true}),
        json!({"b": {"$ne": true}}),
        json!({"b": {"$nin": [false]}}),
        json!({"b": "true"}),
        json!({"o.k": "x"}),
        json!({"o.k": {"$ne": "x"}}),
        json!({"s": {"$ne": "x"}, "n": {"$ne": 0}}),
        json!({"s": "x", "b": {"$ne": false}, "n": {"$gte": 0}}),
        json!({"o.k": {"$nin": [l1]}, "b": {"$in": [true, false]}}),
    ]
}

/// id -> (values, metadata)
type Model = BTreeMap<String, (Vec<f64>, Value)>;

fn oracle(model: &Model, filter: &Value) -> BTreeSet<String> {
    let f = parse_filter(filter).unwrap();
    model
        .iter()
        .filter(|(_, (_, m))| {
            eval::matches(&f, &types, &|p| {
                eval::indexed_value(Some(m), p, types(p).unwrap())
            })
            .unwrap()
        })
        .map(|(id, _)| id.clone())
        .collect()
}

fn q(filter: &Value, ns: Option<&str>) -> QueryOptions {
    QueryOptions {
        top_k: 100,
        filter: Some(filter.clone()),
        namespace: ns.map(str::to_owned),
        ..QueryOptions::default()
    }
}

fn got(ix: &d1vec::vectorize::VectorIndex, f: &Value, ns: Option<&str>) -> BTreeSet<String> {
    ix.query(&vector(999_999), &q(f, ns))
        .unwrap_or_else(|e| panic!("{f}: {e}"))
        .matches
        .into_iter()
        .map(|m| m.id)
        .collect()
}

fn setup(db: &Database, name: &str) {
    db.create_index(&CreateIndex::new(name, DIMS, Metric::Cosine))
        .unwrap();
    let ix = db.vectorize(name).unwrap();
    for (p, t) in [
        ("s", IndexType::String),
        ("n", IndexType::Number),
        ("b", IndexType::Boolean),
        ("o.k", IndexType::String),
    ] {
        ix.create_metadata_index(p, t).unwrap();
    }
}

/// Attack 3: the in-memory filter index against eval.rs, warm, through upserts that change
/// metadata, deletes, a seal, and a second Database writing the same file.
#[test]
fn adv_filters_match_eval_through_upserts_deletes_seals_and_other_writers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.sqlite");
    let db = Database::open(&path).unwrap();
    setup(&db, "f");
    let ix = db.vectorize("f").unwrap();
    let other = Database::open(&path).unwrap();
    let ox = other.vectorize("f").unwrap();
    let mut model = Model::new();
    let write = |ix: &d1vec::vectorize::VectorIndex, model: &mut Model, i: u64, mseed: u64| {
        let id = format!("v{i:02}");
        let v = vector(i);
        let m = metadata(mseed);
        ix.upsert(&[Vector::new(id.clone(), v.clone()).with_metadata(meta(m.clone()))])
            .unwrap();
        model.insert(id, (v, m));
    };
    for i in 0..40 {
        write(&ix, &mut model, i, i);
    }
    let check = |model: &Model, when: &str| {
        for f in filters() {
            assert_eq!(got(&ix, &f, None), oracle(model, &f), "{when}: {f}");
            // A repeat at the same seq is answered from the cached filter.
            assert_eq!(got(&ix, &f, None), oracle(model, &f), "{when} again: {f}");
        }
    };
    check(&model, "initial");
    // Upserts that change metadata, by this database.
    for i in 0..40 {
        if i % 3 == 0 {
            write(&ix, &mut model, i, i + 17);
        }
    }
    check(&model, "after metadata changes");
    ix.delete_by_ids(&["v01".into(), "v02".into(), "v10".into()])
        .unwrap();
    for id in ["v01", "v02", "v10"] {
        model.remove(id);
    }
    check(&model, "after deletes");
    ix.seal().unwrap();
    check(&model, "after seal");
    // The other Database changes metadata and deletes; the warm reader must see it.
    for i in 0..40 {
        if i % 4 == 1 {
            write(&ox, &mut model, i, i + 3);
        }
    }
    ox.delete_by_ids(&["v04".into(), "v08".into()]).unwrap();
    model.remove("v04");
    model.remove("v08");
    check(&model, "after another Database's writes");
    // Database::exec refuses PRAGMA wal_checkpoint (NotAllowed), so checkpoint through a
    // raw SQLite connection: the WAL restarts and its header's salts change.
    let raw = rusqlite::Connection::open(&path).unwrap();
    for mode in ["TRUNCATE", "RESTART", "TRUNCATE"] {
        raw.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(()))
            .unwrap();
        let seedm = 100 + model.len() as u64;
        write(&ox, &mut model, 5, seedm);
        check(&model, &format!("after {mode} checkpoint + write by other"));
        ox.delete_by_ids(&["v06".into()]).unwrap();
        model.remove("v06");
        check(
            &model,
            &format!("after {mode} checkpoint + delete by other"),
        );
        write(&ox, &mut model, 6, 7);
    }
    // A fresh open agrees.
    let fresh = Database::open(&path).unwrap();
    let fx = fresh.vectorize("f").unwrap();
    for f in filters() {
        assert_eq!(got(&fx, &f, None), oracle(&model, &f), "fresh: {f}");
    }
}

/// Attack 3b: a metadata index deleted and re-created between writes (coverage changes);
/// the warm answer must equal a freshly opened Database's answer for each filter.
#[test]
fn adv_metadata_index_churn_warm_equals_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.sqlite");
    let db = Database::open(&path).unwrap();
    setup(&db, "c");
    let ix = db.vectorize("c").unwrap();
    let up = |i: u64, m: u64| {
        ix.upsert(&[Vector::new(format!("v{i:02}"), vector(i)).with_metadata(meta(metadata(m)))])
            .unwrap();
    };
    let compare = |when: &str| {
        let fresh = Database::open(&path).unwrap();
        let fx = fresh.vectorize("c").unwrap();
        for f in filters() {
            let w = ix
                .query(&vector(7), &q(&f, None))
                .map(|m| m.matches.into_iter().map(|m| m.id).collect::<BTreeSet<_>>());
            let c = fx
                .query(&vector(7), &q(&f, None))
                .map(|m| m.matches.into_iter().map(|m| m.id).collect::<BTreeSet<_>>());
            match (w, c) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{when}: {f}"),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{when}: {f}"),
                (a, b) => panic!("{when}: {f}: warm {a:?} fresh {b:?}"),
            }
        }
    };
    for i in 0..20 {
        up(i, i);
    }
    compare("start");
    ix.delete_metadata_index("s").unwrap();
    compare("s deleted");
    for i in 10..30 {
        up(i, i + 1);
    }
    compare("writes without s");
    ix.create_metadata_index("s", IndexType::String).unwrap();
    compare("s recreated");
    for i in 0..8 {
        up(i, i + 2);
    }
    compare("writes after s recreated");
    ix.delete_metadata_index("n").unwrap();
    ix.create_metadata_index("n", IndexType::String).unwrap();
    compare("n recreated as string");
    ix.seal().unwrap();
    compare("sealed");
}

/// Attack 1: two tenants on a private index holding the same ids; every answer tenant A
/// gets (any filter, any namespace option, values and metadata, warm and after seals and
/// B's writes) holds only A's vectors with A's values and metadata.
#[test]
fn adv_tenant_never_sees_other_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.sqlite");
    let db = Database::open(&path).unwrap();
    db.apply_bundled().unwrap();
    db.exec("INSERT INTO tenants (tenant_id, name) VALUES ('ta','A'),('tb','B')")
        .unwrap();
    db.create_index(&CreateIndex::new("p", DIMS, Metric::Cosine).scope(Scope::Private))
        .unwrap();
    let admin = db.vectorize("p").unwrap();
    admin.create_metadata_index("s", IndexType::String).unwrap();
    admin.create_metadata_index("n", IndexType::Number).unwrap();
    let a = db.tenant("ta").unwrap().vectorize("p").unwrap();
    let b = db.tenant("tb").unwrap().vectorize("p").unwrap();
    let mut ma = Model::new();
    for i in 0..6u64 {
        let m = json!({"s": "mine", "n": i});
        let v = vector(i + 500);
        a.upsert(&[Vector::new(format!("p{i}"), v.clone()).with_metadata(meta(m.clone()))])
            .unwrap();
        ma.insert(format!("p{i}"), (v, m));
    }
    let qv = vector(999_999);
    let bwrite = |k: u64| {
        let batch: Vec<Vector> = (0..20u64)
            .map(|i| {
                Vector::new(
                    format!("p{i}"),
                    qv.iter().map(|x| x * (1.0 + (i + k) as f64)).collect(),
                )
                .with_metadata(meta(json!({"s": "secret", "n": -(i as f64) - 0.0})))
            })
            .collect();
        b.upsert(&batch).unwrap();
    };
    bwrite(0);
    admin
        .upsert(&[Vector::new("p0", qv.clone()).with_namespace("tb")])
        .ok();
    let probes = [
        json!({}),
        json!({"s": "secret"}),
        json!({"s": {"$ne": "mine"}}),
        json!({"s": {"$nin": ["mine"]}}),
        json!({"n": {"$lt": 0}}),
        json!({"n": {"$ne": 3}}),
        json!({"s": {"$in": ["secret", "mine"]}}),
    ];
    let check = |when: &str| {
        for f in &probes {
            for ns in [None, Some("tb"), Some("ta"), Some(""), Some("nowhere")] {
                let opts = QueryOptions {
                    top_k: 50,
                    return_values: true,
                    return_metadata: ReturnMetadata::All,
                    filter: if f.as_object().unwrap().is_empty() {
                        None
                    } else {
                        Some(f.clone())
                    },
                    namespace: ns.map(str::to_owned),
                };
                let Ok(res) = a.query(&qv, &opts) else {
                    continue;
                };
                for m in &res.matches {
                    let Some((v, md)) = ma.get(&m.id) else {
                        panic!("{when}: {f} ns {ns:?}: foreign id {}", m.id);
                    };
                    let vals = m.values.as_ref().unwrap();
                    assert!(
                        vals.iter().zip(v).all(|(x, y)| (x - y).abs() < 1e-6),
                        "{when}: {f} ns {ns:?}: {} values {vals:?} not A's {v:?}",
                        m.id
                    );
                    assert_eq!(
                        Value::Object(m.metadata.clone().unwrap()),
                        *md,
                        "{when}: {f} ns {ns:?}: metadata of {}",
                        m.id
                    );
                }
                if ns.is_none() {
                    let fil = if f.as_object().unwrap().is_empty() {
                        ma.keys().cloned().collect()
                    } else {
                        let pf = parse_filter(f).unwrap();
                        ma.iter()
                            .filter(|(_, (_, m))| {
                                eval::matches(
                                    &pf,
                                    &|p| match p {
                                        "s" => Some(IndexType::String),
                                        "n" => Some(IndexType::Number),
                                        _ => None,
                                    },
                                    &|p| {
                                        eval::indexed_value(
                                            Some(m),
                                            p,
                                            if p == "s" {
                                                IndexType::String
                                            } else {
                                                IndexType::Number
                                            },
                                        )
                                    },
                                )
                                .unwrap()
                            })
                            .map(|(k, _)| k.clone())
                            .collect::<BTreeSet<_>>()
                    };
                    let ids: BTreeSet<String> = res.matches.iter().map(|m| m.id.clone()).collect();
                    assert_eq!(ids, fil, "{when}: {f}: A's own answer");
                }
            }
            // query_by_id of an id only B holds behaves as absent.
            let r = a.query_by_id("p9", &QueryOptions::default());
            if let Ok(r) = r {
                assert_eq!(r.count, 0, "{when}: query_by_id p9 answered {r:?}");
            }
            let g = a.get_by_ids(&["p9".into(), "p1".into()]).unwrap();
            assert!(g.iter().all(|v| ma.contains_key(&v.id)));
            for v in &g {
                assert_eq!(
                    Value::Object(v.metadata.clone().unwrap_or_default()),
                    ma[&v.id].1
                );
            }
        }
    };
    check("warm");
    check("warm again");
    admin.seal().unwrap();
    check("sealed");
    bwrite(3);
    b.delete_by_ids(&["p2".into()]).unwrap();
    check("after B's writes");
    admin.compact().ok();
    check("after compact");
}

/// Attack 2: a warm reader and a writer in another process (the CLI) deleting vectors
/// that match a cached filter, then the same filter again.
#[test]
fn adv_cached_filter_sees_other_process_delete() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.sqlite");
    let db = Database::open(&path).unwrap();
    setup(&db, "f");
    let ix = db.vectorize("f").unwrap();
    let mut model = Model::new();
    for i in 0..30u64 {
        let m = metadata(i);
        ix.upsert(&[Vector::new(format!("v{i:02}"), vector(i)).with_metadata(meta(m.clone()))])
            .unwrap();
        model.insert(format!("v{i:02}"), (vector(i), m));
    }
    let f = json!({"s": {"$ne": "x"}});
    assert_eq!(got(&ix, &f, None), oracle(&model, &f));
    let victim = oracle(&model, &f).into_iter().next().unwrap();
    crate::cli::ok_json(
        &path,
        &[
            "--json",
            "vectorize",
            "delete-vectors",
            "f",
            "--ids",
            &victim,
        ],
    );
    model.remove(&victim);
    assert_eq!(got(&ix, &f, None), oracle(&model, &f), "after CLI delete");
}

/// Attack 4: crafted filters, namespaces and topK never panic or hang.
#[test]
fn adv_crafted_inputs_do_not_panic() {
    let db = Database::open_in_memory().unwrap();
    setup(&db, "f");
    let ix = db.vectorize("f").unwrap();
    for i in 0..10u64 {
        ix.upsert(&[Vector::new(format!("v{i}"), vector(i)).with_metadata(meta(metadata(i)))])
            .unwrap();
    }
    let big: Vec<Value> = (0..5000).map(|i| json!(format!("s{i}"))).collect();
    let crafted = vec![
        json!({"s": {"$in": big}}),
        json!({"s": {"$nin": []}}),
        json!({"s": {"$in": []}}),
        json!({"": "x"}),
        json!({".": "x"}),
        json!({"o..k": "x"}),
        json!({"s": {"$gt": "z", "$lt": "a"}}),
        json!({"n": {"$gt": 1e308, "$lt": -1e308}}),
        serde_json::from_str::<Value>(r#"{"n": {"$eq": 1e400}}"#).unwrap_or(json!({"n": 1})),
        json!({"n": {"$in": [0, -0.0, 0.0]}}),
        json!({"s": {"$eq": "é".repeat(40)}}),
        json!({"s": {"$gt": "\u{10FFFF}".repeat(20)}}),
        json!({"s": {"$foo": 1}}),
        json!({"s": [1, 2]}),
        json!({"s": {"$in": [null, "x", 1, true]}}),
        json!({"b": {"$lt": true}}),
        json!("not an object"),
        json!({"s": {}}),
    ];
    for f in crafted {
        for ns in [
            None,
            Some(""),
            Some("x".repeat(100_000).as_str()),
            Some("\0"),
        ] {
            for k in [0usize, 1, 100, 101, usize::MAX] {
                let opts = QueryOptions {
                    top_k: k,
                    filter: Some(f.clone()),
                    namespace: ns.map(str::to_owned),
                    ..QueryOptions::default()
                };
                let _ = ix.query(&vector(3), &opts);
            }
        }
    }
    for bad in [
        vec![f64::NAN; DIMS],
        vec![0.0; DIMS],
        vec![f64::INFINITY; DIMS],
        vec![],
    ] {
        let _ = ix.query(&bad, &QueryOptions::default());
    }
}
