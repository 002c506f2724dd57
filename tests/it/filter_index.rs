//! The in-memory filter index (`filter::bitmap::FilterIndex`) against the reference
//! evaluator (`filter::eval::matches`): on random metadata and filters, after random inserts,
//! replacements, deletes and late metadata indexes, and after a rebuild from the
//! `d1vec_meta_values` rows a real database wrote through the public API.

use std::collections::BTreeMap;
use std::time::Instant;

use d1vec::index::Metric;
use d1vec::vectorize::filter::bitmap::{indexed_from_sql, Evaluation as Eval, FilterIndex};
use d1vec::vectorize::filter::eval::{indexed_value, matches, IndexType, Indexed};
use d1vec::vectorize::filter::parse::{parse_filter, Filter, FilterError, Scalar};
use d1vec::vectorize::types::Vector;
use d1vec::vectorize::CreateIndex;
use d1vec::Database;
use proptest::prelude::*;
use roaring::RoaringTreemap;
use rusqlite::types::Value as SqlValue;
use serde_json::{json, Value as Json};

const STRATEGIES: [Eval; 3] = [Eval::Auto, Eval::Sets, Eval::Probe];

/// Properties filters use. `late` gets its metadata index half way through the writes;
/// `zz` never has one.
const PROPS: [&str; 6] = ["a", "b", "s", "a.b", "a.x", "late"];
const TOP_KEYS: [&str; 5] = ["a", "b", "s", "t", "late"];
const NESTED_KEYS: [&str; 2] = ["b", "x"];

// ---------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------

/// `p` x 63 then `last`: strings equal in their 64-byte indexed prefix up to the last byte.
fn p64(last: &str) -> String {
    format!("{}{last}", "p".repeat(63))
}

fn strings() -> Vec<String> {
    let mut v: Vec<String> = [
        "", "x", "X", "apple", "ap", "é", "日本", "a\u{0}b", "10", "2",
    ]
    .map(String::from)
    .to_vec();
    // Long strings: equal 64-byte prefixes, and multibyte chars across byte 64.
    v.extend([
        "p".repeat(64),
        p64("A"),
        p64("AB"),
        p64("B"),
        format!("{}é", "q".repeat(63)),
        format!("{}ü", "q".repeat(63)),
        "q".repeat(63),
        format!("{}€z", "q".repeat(62)),
        format!("{}😀", "q".repeat(61)),
        "é".repeat(40),
    ]);
    v
}

fn numbers() -> Vec<Json> {
    let mut v: Vec<Json> = [-1.5, -0.0, 0.0, 1.0, 2.0, 2.5, 1e20, -1e-7, 1e300, -1e300]
        .iter()
        .map(|f| json!(f))
        .collect();
    v.extend([
        json!(0),
        json!(1),
        json!(2),
        json!(-1),
        json!(i64::MAX),
        json!(u64::MAX),
    ]);
    v
}

fn string_json() -> BoxedStrategy<Json> {
    prop_oneof![
        2 => prop::sample::select(vec!["x".to_owned(), p64("A"), p64("B"), "é".to_owned()]),
        1 => prop::sample::select(strings()),
    ]
    .prop_map(Json::String)
    .boxed()
}

fn number_json() -> BoxedStrategy<Json> {
    prop_oneof![
        2 => prop::sample::select(vec![json!(1), json!(2.0), json!(2.5), json!(-0.0), json!(0)]),
        1 => prop::sample::select(numbers()),
    ]
    .boxed()
}

fn scalar_json() -> BoxedStrategy<Json> {
    prop_oneof![
        1 => Just(Json::Null),
        2 => any::<bool>().prop_map(Json::Bool),
        3 => number_json(),
        3 => string_json(),
    ]
    .boxed()
}

/// Any metadata value: scalars, arrays and objects (never indexed as such).
fn meta_value() -> BoxedStrategy<Json> {
    prop_oneof![
        6 => scalar_json(),
        1 => prop::collection::vec(scalar_json(), 0..3).prop_map(Json::Array),
        2 => prop::collection::btree_map(prop::sample::select(NESTED_KEYS.to_vec()), scalar_json(), 0..3)
            .prop_map(|m| Json::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
    ]
    .boxed()
}

fn typed_json(ty: IndexType) -> BoxedStrategy<Json> {
    match ty {
        IndexType::String => string_json(),
        IndexType::Number => number_json(),
        IndexType::Boolean => any::<bool>().prop_map(Json::Bool).boxed(),
    }
}

/// A value at a property indexed as `ty`: mostly that type, else null or anything.
fn value_for(ty: Option<IndexType>) -> BoxedStrategy<Json> {
    match ty {
        Some(ty) => {
            prop_oneof![6 => typed_json(ty), 1 => Just(Json::Null), 3 => meta_value()].boxed()
        }
        None => meta_value(),
    }
}

/// Metadata leaning towards the index types (keys sometimes absent, sometimes nested).
fn metadata(types: &BTreeMap<String, IndexType>) -> BoxedStrategy<Option<Json>> {
    let ty = |p: &str| types.get(p).copied();
    let keys: Vec<_> = TOP_KEYS
        .iter()
        .map(|&key| {
            let children: Vec<_> = NESTED_KEYS
                .iter()
                .map(|&child| {
                    prop::option::weighted(0.7, value_for(ty(&format!("{key}.{child}"))))
                        .prop_map(move |v| v.map(|v| (child.to_owned(), v)))
                })
                .collect();
            let nested = children.prop_map(|kv| Json::Object(kv.into_iter().flatten().collect()));
            let value = prop_oneof![3 => value_for(ty(key)), 2 => nested];
            prop::option::weighted(0.75, value).prop_map(move |v| v.map(|v| (key.to_owned(), v)))
        })
        .collect();
    prop::option::weighted(
        0.95,
        keys.prop_map(|kv| Json::Object(kv.into_iter().flatten().collect())),
    )
    .boxed()
}

fn index_type() -> impl Strategy<Value = IndexType> {
    prop::sample::select(vec![
        IndexType::String,
        IndexType::Number,
        IndexType::Boolean,
    ])
}

/// Types for most of `PROPS` (`late` always has one: it is created late).
fn types() -> impl Strategy<Value = BTreeMap<String, IndexType>> {
    prop::collection::vec(prop::option::weighted(0.85, index_type()), PROPS.len()).prop_map(
        |types| {
            PROPS
                .iter()
                .zip(types)
                .filter_map(|(p, t)| match (*p, t) {
                    ("late", None) => Some(("late".to_owned(), IndexType::Number)),
                    (p, t) => t.map(|t| (p.to_owned(), t)),
                })
                .collect()
        },
    )
}

fn operand(ty: Option<IndexType>) -> BoxedStrategy<Json> {
    match ty {
        Some(ty) => prop_oneof![3 => typed_json(ty), 1 => scalar_json()].boxed(),
        None => scalar_json(),
    }
}

fn range_operand(ty: Option<IndexType>) -> BoxedStrategy<Json> {
    match ty {
        Some(ty @ (IndexType::String | IndexType::Number)) => {
            prop_oneof![3 => typed_json(ty), 1 => string_json(), 1 => number_json()].boxed()
        }
        _ => prop_oneof![string_json(), number_json()].boxed(),
    }
}

fn condition_json(ty: Option<IndexType>) -> BoxedStrategy<Json> {
    let list = || prop::collection::vec(operand(ty), 0..5).prop_map(Json::Array);
    let bound = || prop::option::of((any::<bool>(), range_operand(ty)));
    prop_oneof![
        2 => operand(ty),
        1 => operand(ty).prop_map(|v| json!({"$eq": v})),
        2 => operand(ty).prop_map(|v| json!({"$ne": v})),
        2 => list().prop_map(|v| json!({"$in": v})),
        2 => list().prop_map(|v| json!({"$nin": v})),
        4 => (bound(), bound())
            .prop_filter("a range needs a bound", |(l, u)| l.is_some() || u.is_some())
            .prop_map(|(lower, upper)| {
                let mut m = serde_json::Map::new();
                if let Some((incl, v)) = lower {
                    m.insert(if incl { "$gte" } else { "$gt" }.to_owned(), v);
                }
                if let Some((incl, v)) = upper {
                    m.insert(if incl { "$lte" } else { "$lt" }.to_owned(), v);
                }
                Json::Object(m)
            }),
    ]
    .boxed()
}

/// A filter of one to three keys (rarely `zz`, which has no metadata index), parsed.
fn filter(types: &BTreeMap<String, IndexType>) -> BoxedStrategy<Filter> {
    let clauses: Vec<_> = PROPS
        .iter()
        .chain(&["zz"])
        .map(|&p| {
            let weight = if p == "zz" { 0.03 } else { 0.3 };
            prop::option::weighted(weight, condition_json(types.get(p).copied()))
                .prop_map(move |c| c.map(|c| (p.to_owned(), c)))
        })
        .collect();
    clauses
        .prop_map(|kv| Json::Object(kv.into_iter().flatten().collect()))
        .prop_filter("a filter needs a key", |f| {
            f.as_object().is_some_and(|m| !m.is_empty())
        })
        .prop_map(|f| parse_filter(&f).unwrap_or_else(|e| panic!("{f}: {e}")))
        .boxed()
}

/// One write: put (insert or replace) id `slot` with metadata, or delete it.
#[derive(Debug, Clone)]
enum Op {
    Put(u8, Option<Json>),
    Delete(u8),
}

const SLOTS: u8 = 24;

fn ops(types: &BTreeMap<String, IndexType>, n: std::ops::Range<usize>) -> BoxedStrategy<Vec<Op>> {
    let op = prop_oneof![
        4 => (0..SLOTS, metadata(types)).prop_map(|(s, m)| Op::Put(s, m)),
        1 => (0..SLOTS).prop_map(Op::Delete),
    ];
    prop::collection::vec(op, n).boxed()
}

fn scenario() -> impl Strategy<Value = (BTreeMap<String, IndexType>, Vec<Op>, Vec<Filter>)> {
    types().prop_flat_map(|types| {
        (
            Just(types.clone()),
            ops(&types, 10..60),
            prop::collection::vec(filter(&types), 1..6),
        )
    })
}

// ---------------------------------------------------------------------------------------
// The oracle
// ---------------------------------------------------------------------------------------

/// A vector as the evaluator sees it: its metadata, and whether it was written after the
/// `late` metadata index existed (metadata indexes are not retroactive).
#[derive(Debug, Clone)]
struct Live {
    metadata: Option<Json>,
    covers_late: bool,
}

/// The vids of `universe` the reference evaluator passes (a vid not in `live` holds nothing).
fn expected(
    live: &BTreeMap<u64, Live>,
    types: &BTreeMap<String, IndexType>,
    filter: &Filter,
    universe: &RoaringTreemap,
) -> Result<RoaringTreemap, FilterError> {
    let ty = |p: &str| types.get(p).copied();
    // A property without a metadata index is an error whatever the universe holds (as
    // the SQL compiler gives it), so check it before looking at any vid.
    matches(filter, &ty, &|_| Indexed::Absent)?;
    let mut out = RoaringTreemap::new();
    for vid in universe {
        let lookup = |p: &str| match (live.get(&vid), ty(p)) {
            (Some(v), Some(t)) if p != "late" || v.covers_late => {
                indexed_value(v.metadata.as_ref(), p, t)
            }
            _ => Indexed::Absent,
        };
        if matches(filter, &ty, &lookup)? {
            out.insert(vid);
        }
    }
    Ok(out)
}

/// Universes to test against: every live vid plus dead ones, the live vids alone, and two
/// thinner subsets (as a namespace would give; small ones take the probing path).
fn universes(live: &BTreeMap<u64, Live>, next_vid: u64) -> Vec<RoaringTreemap> {
    let all: RoaringTreemap = (0..next_vid + 2).collect();
    let alive: RoaringTreemap = live.keys().copied().collect();
    let thirds: RoaringTreemap = live.keys().copied().filter(|v| v % 3 == 0).collect();
    let few: RoaringTreemap = live.keys().copied().take(2).collect();
    vec![all, alive, thirds, few, RoaringTreemap::new()]
}

fn check(
    index: &FilterIndex,
    live: &BTreeMap<u64, Live>,
    types: &BTreeMap<String, IndexType>,
    filters: &[Filter],
    next_vid: u64,
    when: &str,
) -> Result<(), TestCaseError> {
    for filter in filters {
        for universe in universes(live, next_vid) {
            let want = expected(live, types, filter, &universe);
            for s in STRATEGIES {
                let got = index.candidates_with(filter, &universe, s);
                prop_assert_eq!(
                    &got,
                    &want,
                    "{}: {} with {:?} over {:?}",
                    when,
                    filter.to_json(),
                    s,
                    universe
                );
            }
            prop_assert_eq!(index.candidates(filter, &universe), want);
        }
    }
    Ok(())
}

/// The `d1vec_meta_values.val` the write path stores for an indexed value (the encoding
/// of `store::scalar_to_sql`; the database test below reads the real rows instead).
fn stored_row(value: &Indexed) -> Option<SqlValue> {
    match value {
        Indexed::Absent => None,
        Indexed::Null | Indexed::Value(Scalar::Null) => Some(SqlValue::Null),
        Indexed::Value(Scalar::String(s)) => Some(SqlValue::Text(s.clone())),
        Indexed::Value(Scalar::Number(n)) => Some(SqlValue::Real(*n)),
        Indexed::Value(Scalar::Bool(b)) => Some(SqlValue::Integer(i64::from(*b))),
    }
}

// ---------------------------------------------------------------------------------------
// The model: writes applied to the index as the engine applies them
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn index_equals_the_evaluator_through_writes_and_reopen(
        (types, ops, filters) in scenario(),
    ) {
        let early: Vec<(String, IndexType)> = types
            .iter()
            .filter(|(p, _)| *p != "late")
            .map(|(p, t)| (p.clone(), *t))
            .collect();
        let mut index = FilterIndex::new(&early);
        let mut live: BTreeMap<u64, Live> = BTreeMap::new();
        let mut vid_of: BTreeMap<u8, u64> = BTreeMap::new();
        let mut next_vid = 1u64;
        let half = ops.len() / 2;
        let mut late_created = false;
        let mut known = types.clone();
        known.remove("late");
        for (i, op) in ops.iter().enumerate() {
            if i == half {
                index.add_property("late", types["late"]);
                late_created = true;
                known = types.clone();
                check(&index, &live, &known, &filters, next_vid, "late index created")?;
            }
            match op {
                Op::Put(slot, metadata) => {
                    // An upsert deletes the old row and writes a new vid.
                    if let Some(old) = vid_of.remove(slot) {
                        index.remove(old);
                        live.remove(&old);
                    }
                    let vid = next_vid;
                    next_vid += 1;
                    index.insert_metadata(vid, metadata.as_ref());
                    live.insert(vid, Live { metadata: metadata.clone(), covers_late: late_created });
                    vid_of.insert(*slot, vid);
                }
                Op::Delete(slot) => {
                    if let Some(old) = vid_of.remove(slot) {
                        index.remove(old);
                        live.remove(&old);
                    }
                }
            }
            if i % 7 == 6 {
                check(&index, &live, &known, &filters, next_vid, "after writes")?;
            }
        }
        check(&index, &live, &known, &filters, next_vid, "after all writes")?;

        // Reopen: rebuild from the rows the write path stores, one per covered property.
        let mut reopened = FilterIndex::new(&types.iter().map(|(p, t)| (p.clone(), *t)).collect::<Vec<_>>());
        for (vid, v) in &live {
            for (p, t) in &types {
                if p == "late" && !v.covers_late {
                    continue;
                }
                if let Some(val) = stored_row(&indexed_value(v.metadata.as_ref(), p, *t)) {
                    reopened.insert_row(*vid, p, (&val).into());
                }
            }
        }
        check(&reopened, &live, &known, &filters, next_vid, "after reopen")?;

        // Dropping a metadata index: filters on it are the evaluator's missing-index error.
        index.remove_property("late");
        known.remove("late");
        check(&index, &live, &known, &filters, next_vid, "late index dropped")?;
    }
}

// ---------------------------------------------------------------------------------------
// A real database: write through the public API, rebuild from d1vec_meta_values
// ---------------------------------------------------------------------------------------

/// The index's rows: vid -> id, and every (property, vid, val) of d1vec_meta_values.
struct Rows {
    vids: BTreeMap<u64, String>,
    values: Vec<(String, u64, SqlValue)>,
}

fn read_rows(conn: &rusqlite::Connection, name: &str) -> Rows {
    let index_id: i64 = conn
        .query_row(
            "SELECT index_id FROM d1vec_indexes WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .unwrap();
    let mut stmt = conn
        .prepare("SELECT vid, id FROM d1vec_vectors WHERE index_id = ?1")
        .unwrap();
    let vids = stmt
        .query_map([index_id], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let mut stmt = conn
        .prepare("SELECT property, vid, val FROM d1vec_meta_values WHERE index_id = ?1")
        .unwrap();
    let values = stmt
        .query_map([index_id], |r| {
            Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, r.get(2)?))
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    Rows { vids, values }
}

fn id_of(slot: u8) -> String {
    format!("v{slot:02}")
}

fn vector(slot: u8, metadata: &Option<Json>) -> Vector {
    let v = Vector::new(id_of(slot), vec![1.0, f64::from(slot) + 1.0]);
    match metadata {
        Some(Json::Object(m)) => v.with_metadata(m.clone()),
        _ => v,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn index_rebuilt_from_sqlite_rows_equals_the_evaluator(
        (types, ops, filters) in scenario(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.db");
        let db = Database::open(&path).unwrap();
        db.create_index(&CreateIndex::new("f", 2, Metric::Cosine)).unwrap();
        let ix = db.vectorize("f").unwrap();
        for (p, t) in types.iter().filter(|(p, _)| *p != "late") {
            ix.create_metadata_index(p, *t).unwrap();
        }
        let conn = rusqlite::Connection::open(&path).unwrap();
        let mut known = types.clone();
        known.remove("late");
        // Kept as the engine would keep it: diff the live vids after each write.
        let mut incremental = FilterIndex::new(
            &known.iter().map(|(p, t)| (p.clone(), *t)).collect::<Vec<_>>(),
        );
        let mut seen: BTreeMap<u64, String> = BTreeMap::new();
        let mut late_from = u64::MAX; // vids at or above this were written after `late`
        let half = ops.len() / 2;
        for (i, op) in ops.iter().enumerate() {
            if i == half {
                ix.create_metadata_index("late", types["late"]).unwrap();
                incremental.add_property("late", types["late"]);
                known = types.clone();
                late_from = read_rows(&conn, "f").vids.keys().max().map_or(0, |v| v + 1);
            }
            match op {
                Op::Put(slot, metadata) => {
                    ix.upsert(&[vector(*slot, metadata)]).unwrap();
                }
                Op::Delete(slot) => {
                    ix.delete_by_ids(&[id_of(*slot)]).unwrap();
                }
            }
            let now = read_rows(&conn, "f").vids;
            for vid in seen.keys().filter(|v| !now.contains_key(v)) {
                incremental.remove(*vid);
            }
            for (vid, id) in now.iter().filter(|(v, _)| !seen.contains_key(v)) {
                let got = ix.get_by_ids(std::slice::from_ref(id)).unwrap();
                let metadata = got[0].metadata.clone().map(Json::Object);
                incremental.insert_metadata(*vid, metadata.as_ref());
            }
            seen = now;
        }

        // The oracle: the evaluator on the metadata get_by_ids returns.
        let rows = read_rows(&conn, "f");
        let ids: Vec<String> = rows.vids.values().cloned().collect();
        // get_by_ids takes at most 20 ids a call, as Vectorize's getByIds does.
        let by_id: BTreeMap<String, Option<Json>> = ids
            .chunks(20)
            .flat_map(|chunk| ix.get_by_ids(chunk).unwrap())
            .map(|v| (v.id, v.metadata.map(Json::Object)))
            .collect();
        let live: BTreeMap<u64, Live> = rows
            .vids
            .iter()
            .map(|(vid, id)| {
                (*vid, Live { metadata: by_id[id].clone(), covers_late: *vid >= late_from })
            })
            .collect();
        prop_assert_eq!(live.len(), by_id.len());

        // Reopen: every metadata index, filled from d1vec_meta_values.
        let mut reopened = FilterIndex::new(
            &ix.list_metadata_indexes()
                .unwrap()
                .into_iter()
                .map(|m| (m.property_name, m.index_type))
                .collect::<Vec<_>>(),
        );
        for (property, vid, val) in &rows.values {
            reopened.insert_row(*vid, property, val.into());
        }
        let next_vid = rows.vids.keys().max().map_or(1, |v| v + 1);
        check(&reopened, &live, &known, &filters, next_vid, "rebuilt from SQLite")?;
        check(&incremental, &live, &known, &filters, next_vid, "kept incrementally")?;
    }
}

/// Decoding a row gives the evaluator's value for each type the write path stores.
#[test]
fn stored_values_decode_to_the_evaluator_s_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.db");
    let db = Database::open(&path).unwrap();
    db.create_index(&CreateIndex::new("d", 2, Metric::Cosine))
        .unwrap();
    let ix = db.vectorize("d").unwrap();
    let types = [
        ("s", IndexType::String),
        ("n", IndexType::Number),
        ("b", IndexType::Boolean),
    ];
    for (p, t) in types {
        ix.create_metadata_index(p, t).unwrap();
    }
    let long = format!("{}é", "q".repeat(63));
    let metas = [
        json!({"s": long, "n": -0.0, "b": true}),
        json!({"s": "x", "n": u64::MAX, "b": false}),
        json!({"s": null, "n": 1e300, "b": null}),
        json!({"s": 1, "n": "1", "b": 1}),
    ];
    for (i, m) in metas.iter().enumerate() {
        ix.upsert(&[vector(i as u8, &Some(m.clone()))]).unwrap();
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    let rows = read_rows(&conn, "d");
    let mut decoded: BTreeMap<(u64, String), Indexed> = BTreeMap::new();
    for (p, vid, val) in &rows.values {
        let ty = types.iter().find(|(n, _)| n == p).unwrap().1;
        decoded.insert((*vid, p.clone()), indexed_from_sql(ty, val.into()));
    }
    for (vid, id) in &rows.vids {
        let slot: usize = id[1..].parse().unwrap();
        for (p, t) in types {
            let want = indexed_value(Some(&metas[slot]), p, t);
            let got = decoded
                .get(&(*vid, p.to_owned()))
                .cloned()
                .unwrap_or(Indexed::Absent);
            // -0.0 may come back as 0.0; the evaluator treats them as equal.
            assert_eq!(got, want, "{id}.{p}");
        }
    }
    assert_eq!(decoded.len(), 3 + 3 + 3, "one row per non-absent value");
}

/// Not a timed assertion: how long candidates take over 100k vids (printed for the report).
#[test]
fn candidates_over_100k_vids_sanity() {
    let n = 100_000u64;
    let mut index = FilterIndex::new(&[
        ("cat".to_owned(), IndexType::String),
        ("price".to_owned(), IndexType::Number),
        ("flag".to_owned(), IndexType::Boolean),
    ]);
    for vid in 0..n {
        let meta = json!({
            "cat": format!("c{}", vid % 20),
            "price": (vid * 7919 % 100_000) as f64 / 100.0,
            "flag": vid % 3 == 0,
        });
        index.insert_metadata(vid, Some(&meta));
    }
    let universe: RoaringTreemap = (0..n).collect();
    let tenant: RoaringTreemap = (0..n).step_by(1000).collect();
    let cases = [
        json!({"cat": "c3"}),
        json!({"cat": {"$in": ["c1", "c2", "c3", "c4", "c5", "c6"]}}),
        json!({"price": {"$gte": 100, "$lt": 400}}),
        json!({"cat": {"$ne": "c3"}, "flag": true}),
        json!({"cat": {"$nin": ["c1", "c2"]}, "price": {"$lt": 500}, "flag": {"$ne": false}}),
    ];
    for f in cases {
        let filter = parse_filter(&f).unwrap();
        for (name, u) in [("all", &universe), ("tenant of 100", &tenant)] {
            let start = Instant::now();
            let got = index.candidates(&filter, u).unwrap();
            let took = start.elapsed();
            // Spot-check against the evaluator on a sample.
            for vid in u.iter().step_by(997) {
                let meta = json!({
                    "cat": format!("c{}", vid % 20),
                    "price": (vid * 7919 % 100_000) as f64 / 100.0,
                    "flag": vid % 3 == 0,
                });
                let ty = |p: &str| index.property_type(p);
                let want = matches(&filter, &ty, &|p| {
                    indexed_value(Some(&meta), p, ty(p).unwrap())
                })
                .unwrap();
                assert_eq!(got.contains(vid), want, "{f} vid {vid}");
            }
            println!(
                "filter-index sanity: {f} over {name}: {} vids in {took:?}",
                got.len()
            );
        }
    }
}
