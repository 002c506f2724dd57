//! Vectorize metadata filters: the grammar (every documented rejection names the offending
//! part), hand-checked semantics, and the SQL of `to_sql` against the reference evaluator
//! `eval::matches` on random metadata loaded into SQLite exactly as the design note says.

use std::collections::BTreeMap;

use d1vec::vectorize::filter::eval::{indexed_value, matches, IndexType, Indexed};
use d1vec::vectorize::filter::parse::{
    parse_filter, parse_filter_text, Condition, Filter, FilterError, Scalar,
};
use d1vec::vectorize::filter::to_sql::{candidate_sql, count_sql};
use proptest::prelude::*;
use rusqlite::types::Value as SqlValue;
use rusqlite::Connection;
use serde_json::{json, Value as Json};

/// The vector tables of the design note (vectorize-design.md), verbatim in shape.
const TABLES: &str = "
CREATE TABLE d1vec_vectors (index_id INTEGER NOT NULL, vid INTEGER NOT NULL, id TEXT NOT NULL,
  namespace TEXT, vals BLOB NOT NULL, metadata TEXT, seq INTEGER NOT NULL,
  PRIMARY KEY (index_id, vid));
CREATE UNIQUE INDEX d1vec_vectors_id ON d1vec_vectors (index_id, id);
CREATE INDEX d1vec_vectors_ns ON d1vec_vectors (index_id, namespace, vid);
CREATE TABLE d1vec_metadata_indexes (index_id INTEGER NOT NULL, property TEXT NOT NULL,
  index_type TEXT NOT NULL CHECK (index_type IN ('string','number','boolean')),
  created_seq INTEGER NOT NULL, PRIMARY KEY (index_id, property));
CREATE TABLE d1vec_meta_values (index_id INTEGER NOT NULL, property TEXT NOT NULL,
  vid INTEGER NOT NULL, val, PRIMARY KEY (index_id, property, vid));
CREATE INDEX d1vec_meta_values_val ON d1vec_meta_values (index_id, property, val, vid);
";

// ---------------------------------------------------------------------------------------
// Grammar
// ---------------------------------------------------------------------------------------

#[track_caller]
fn check_rejected(filter: Json, path: &str, reason_has: &str) {
    let err = parse_filter(&filter).expect_err(&format!("{filter} should be rejected"));
    assert_eq!(err.path, path, "{filter}: {err}");
    assert!(
        err.reason.contains(reason_has),
        "{filter}: reason {:?} lacks {reason_has:?}",
        err.reason
    );
    assert!(!err.is_missing_index());
    assert_eq!(
        err.to_string(),
        format!("invalid filter at `{path}`: {}", err.reason)
    );
}

#[test]
fn documented_rejections_name_the_offending_part() {
    // Vectorize 13.1 checklist.
    check_rejected(json!({}), "filter", "must not be empty");
    let big = json!({ "k": "x".repeat(2048 - 8) });
    check_rejected(big, "filter", "2048 bytes");
    check_rejected(
        json!({"$or": [{"a": 1}, {"b": 2}]}),
        "filter.$or",
        "must not start with `$`",
    );
    check_rejected(json!({"a\"b": 1}), "filter[\"a\\\"b\"]", "`\"`");
    let long = "k".repeat(513);
    check_rejected(
        json!({ long.clone(): 1 }),
        &format!("filter.{}…", "k".repeat(32)),
        "512 characters",
    );
    check_rejected(
        json!({"a": {"$eq": 1, "$gt": 0}}),
        "filter.a.$gt",
        "cannot be combined with `$eq`",
    );
    check_rejected(
        json!({"a": {"$gt": 1, "$gte": 2}}),
        "filter.a.$gte",
        "cannot be combined with `$gt`",
    );
    check_rejected(
        json!({"a": {"$lt": 1, "$lte": 2}}),
        "filter.a.$lte",
        "cannot be combined with `$lt`",
    );
    check_rejected(
        json!({"a": {"$gt": true}}),
        "filter.a.$gt",
        "string or a number",
    );
    check_rejected(
        json!({"a": {"$lte": null}}),
        "filter.a.$lte",
        "string or a number",
    );
    // The rest of the grammar.
    check_rejected(json!({"$and": 1}), "filter.$and", "`$`");
    check_rejected(json!({"a..b": 1}), "filter.a..b", "no segment may be empty");
    check_rejected(json!({".a": 1}), "filter..a", "no segment may be empty");
    check_rejected(json!({"a.": 1}), "filter.a.", "no segment may be empty");
    check_rejected(json!({"": 1}), "filter[\"\"]", "must not be empty");
    check_rejected(
        json!({"a": {"$regex": "x"}}),
        "filter.a.$regex",
        "unknown operator",
    );
    check_rejected(
        json!({"a": {"$eq": 1, "b": 2}}),
        "filter.a.b",
        "unknown operator",
    );
    check_rejected(json!({"a": [1, 2]}), "filter.a", "use {\"$in\"");
    check_rejected(json!({"a": {"b": 1}}), "filter.a", "dotted key");
    check_rejected(json!({"a": {}}), "filter.a", "at least one operator");
    check_rejected(
        json!({"a": {"$in": "x"}}),
        "filter.a.$in",
        "must be an array",
    );
    check_rejected(
        json!({"a": {"$nin": {"x": 1}}}),
        "filter.a.$nin",
        "must be an array",
    );
    check_rejected(
        json!({"a": {"$in": [1, [2]]}}),
        "filter.a.$in[1]",
        "list element",
    );
    check_rejected(
        json!({"a": {"$in": [{}]}}),
        "filter.a.$in[0]",
        "list element",
    );
    check_rejected(json!({"a": {"$eq": [1]}}), "filter.a.$eq", "not an array");
    check_rejected(json!({"a": {"$ne": {}}}), "filter.a.$ne", "not an object");
    check_rejected(
        json!({"a": {"$in": [1], "$gt": 0}}),
        "filter.a.$in",
        "`$gt`",
    );
    check_rejected(json!({"a": {"$eq": 1, "$ne": 2}}), "filter.a.$ne", "`$eq`");
    check_rejected(
        json!({"a": {"$in": [1], "$nin": [2]}}),
        "filter.a.$nin",
        "`$in`",
    );
    check_rejected(
        json!({"a": {"$gte": 0, "$lt": 5, "$ne": 3}}),
        "filter.a.$ne",
        "`$gte`",
    );
    check_rejected(json!([{"a": 1}]), "filter", "must be a JSON object");
    check_rejected(json!(null), "filter", "must be a JSON object");
    check_rejected(json!("a"), "filter", "must be a JSON object");
    // Several faults: the first key in sorted order is reported.
    check_rejected(
        json!({"b": [1], "a": {"$foo": 1}}),
        "filter.a.$foo",
        "unknown",
    );
}

#[test]
fn size_and_key_length_limits_are_exact() {
    // {"k":"…"} is 8 bytes plus the string: 2047 bytes pass, 2048 fail.
    assert!(parse_filter(&json!({ "k": "x".repeat(2047 - 8) })).is_ok());
    assert!(parse_filter(&json!({ "k": "x".repeat(2048 - 8) })).is_err());
    // Keys are limited in characters, not bytes: 512 two-byte chars pass.
    let key = "é".repeat(512);
    assert_eq!(
        parse_filter(&json!({ key.clone(): 1 }))
            .unwrap()
            .clauses
            .len(),
        1
    );
    let key = "é".repeat(513);
    assert!(parse_filter(&json!({ key: 1 })).is_err());
    // Escapes count as written in compact JSON: a quote in a value takes two bytes.
    let s = "\"".repeat((2047 - 8) / 2);
    assert!(parse_filter(&json!({ "k": s })).is_ok());
    let s = "\"".repeat((2047 - 8) / 2 + 1);
    assert!(parse_filter(&json!({ "k": s })).is_err());
}

fn s(v: &str) -> Scalar {
    Scalar::String(v.to_owned())
}

fn n(v: f64) -> Scalar {
    Scalar::Number(v)
}

#[track_caller]
fn check_parses(filter: Json, expected: &[(&str, Condition)]) {
    let got = parse_filter(&filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
    let want = Filter {
        clauses: expected
            .iter()
            .map(|(k, c)| ((*k).to_owned(), c.clone()))
            .collect(),
    };
    assert_eq!(got, want, "{filter}");
    // And back: the JSON form parses to the same filter.
    assert_eq!(parse_filter(&got.to_json()), Ok(want), "{filter}");
}

#[test]
fn accepted_filters_parse_to_their_ast() {
    use Condition::*;
    check_parses(json!({"genre": "jazz"}), &[("genre", Eq(s("jazz")))]);
    check_parses(json!({"n": 3}), &[("n", Eq(n(3.0)))]);
    check_parses(json!({"n": -2.5e3}), &[("n", Eq(n(-2500.0)))]);
    check_parses(json!({"b": false}), &[("b", Eq(Scalar::Bool(false)))]);
    check_parses(json!({"x": null}), &[("x", Eq(Scalar::Null))]);
    check_parses(json!({"x": {"$eq": null}}), &[("x", Eq(Scalar::Null))]);
    check_parses(
        json!({"x": {"$ne": true}}),
        &[("x", Ne(Scalar::Bool(true)))],
    );
    check_parses(
        json!({"pandas.nice": 42, "a": {"$in": ["x", 1, false, null]}}),
        &[
            (
                "a",
                In(vec![s("x"), n(1.0), Scalar::Bool(false), Scalar::Null]),
            ),
            ("pandas.nice", Eq(n(42.0))),
        ],
    );
    check_parses(json!({"a": {"$in": []}}), &[("a", In(vec![]))]);
    check_parses(json!({"a": {"$nin": []}}), &[("a", Nin(vec![]))]);
    check_parses(json!({"a": {"$nin": ["é"]}}), &[("a", Nin(vec![s("é")]))]);
    check_parses(
        json!({"k": {"$gte": "net", "$lt": "neu"}}),
        &[(
            "k",
            Range {
                lower: Some((s("net"), true)),
                upper: Some((s("neu"), false)),
            },
        )],
    );
    check_parses(
        json!({"k": {"$gt": 1}}),
        &[(
            "k",
            Range {
                lower: Some((n(1.0), false)),
                upper: None,
            },
        )],
    );
    check_parses(
        json!({"k": {"$lte": 7}}),
        &[(
            "k",
            Range {
                lower: None,
                upper: Some((n(7.0), true)),
            },
        )],
    );
    // Mixed bound types are grammatical (they just never match).
    check_parses(
        json!({"k": {"$gt": "a", "$lt": 5}}),
        &[(
            "k",
            Range {
                lower: Some((s("a"), false)),
                upper: Some((n(5.0), false)),
            },
        )],
    );
    // `$` inside a later segment, and a 512-character key, are allowed.
    check_parses(json!({"a.$b": 1}), &[("a.$b", Eq(n(1.0)))]);
    let key = "k".repeat(512);
    check_parses(json!({ key.clone(): 1 }), &[(key.as_str(), Eq(n(1.0)))]);
}

#[test]
fn text_filters_report_bad_json() {
    let err = parse_filter_text("{\"a\": ").unwrap_err();
    assert_eq!(err.path, "filter");
    assert!(err.reason.starts_with("not valid JSON"), "{err}");
    assert_eq!(
        parse_filter_text(r#"{"a": {"$in": [1]}}"#),
        parse_filter(&json!({"a": {"$in": [1]}}))
    );
}

// ---------------------------------------------------------------------------------------
// The store: vectors and their indexed metadata, in SQLite and in memory
// ---------------------------------------------------------------------------------------

/// One vector of the fixture.
#[derive(Debug, Clone)]
struct Vector {
    vid: i64,
    namespace: Option<String>,
    metadata: Option<Json>,
    /// Properties this vector was written after (others did not exist yet: no rows).
    covered: Vec<String>,
}

/// One Vectorize index of the fixture.
#[derive(Debug, Clone)]
struct Index {
    index_id: i64,
    types: BTreeMap<String, IndexType>,
    vectors: Vec<Vector>,
}

impl Index {
    fn type_of(&self, property: &str) -> Option<IndexType> {
        self.types.get(property).copied()
    }

    /// The indexed value of `property` for `v`, as the SQL rows hold it.
    fn lookup(&self, v: &Vector, property: &str) -> Indexed {
        match self.type_of(property) {
            Some(ty) if v.covered.iter().any(|p| p == property) => {
                indexed_value(v.metadata.as_ref(), property, ty)
            }
            _ => Indexed::Absent,
        }
    }

    /// The oracle: vids in the namespace whose metadata `matches` the filter.
    fn expected(
        &self,
        namespace: Option<&str>,
        filter: Option<&Filter>,
    ) -> Result<Vec<i64>, FilterError> {
        let mut out = Vec::new();
        let types = |p: &str| self.type_of(p);
        for v in &self.vectors {
            let in_ns = namespace.is_none_or(|ns| v.namespace.as_deref() == Some(ns));
            let pass = match filter {
                Some(f) => matches(f, &types, &|p| self.lookup(v, p))?,
                None => true,
            };
            if in_ns && pass {
                out.push(v.vid);
            }
        }
        // Errors do not depend on the vectors: check with no vectors too.
        if let Some(f) = filter {
            matches(f, &types, &|_| Indexed::Absent)?;
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Writes the index, its vectors and their indexed metadata as the design note says.
    fn load(&self, conn: &Connection) {
        let tx = conn.unchecked_transaction().unwrap();
        for (property, ty) in &self.types {
            let ty = match ty {
                IndexType::String => "string",
                IndexType::Number => "number",
                IndexType::Boolean => "boolean",
            };
            tx.execute(
                "INSERT INTO d1vec_metadata_indexes VALUES (?1, ?2, ?3, 1)",
                rusqlite::params![self.index_id, property, ty],
            )
            .unwrap();
        }
        for v in &self.vectors {
            tx.execute(
                "INSERT INTO d1vec_vectors VALUES (?1, ?2, ?3, ?4, x'00000000', ?5, 1)",
                rusqlite::params![
                    self.index_id,
                    v.vid,
                    format!("id{}", v.vid),
                    v.namespace,
                    v.metadata.as_ref().map(Json::to_string)
                ],
            )
            .unwrap();
            for property in self.types.keys() {
                let val = match self.lookup(v, property) {
                    Indexed::Absent => continue,
                    Indexed::Null => SqlValue::Null,
                    Indexed::Value(Scalar::String(t)) => SqlValue::Text(t),
                    Indexed::Value(Scalar::Number(x)) => SqlValue::Real(x),
                    Indexed::Value(Scalar::Bool(b)) => SqlValue::Integer(i64::from(b)),
                    Indexed::Value(Scalar::Null) => unreachable!("null is Indexed::Null"),
                };
                tx.execute(
                    "INSERT INTO d1vec_meta_values VALUES (?1, ?2, ?3, ?4)",
                    rusqlite::params![self.index_id, property, v.vid, val],
                )
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }

    /// The SQL's answer, and its count, which must agree with each other.
    fn sql_answer(
        &self,
        conn: &Connection,
        namespace: Option<&str>,
        filter: Option<&Filter>,
    ) -> Result<Vec<i64>, FilterError> {
        let types = |p: &str| self.type_of(p);
        let q = candidate_sql(self.index_id, namespace, filter, &types)?;
        let vids = q.vids(conn).unwrap_or_else(|e| panic!("{}: {e}", q.sql));
        let c = count_sql(self.index_id, namespace, filter, &types)?;
        let count = c.count(conn).unwrap_or_else(|e| panic!("{}: {e}", c.sql));
        assert_eq!(count, vids.len() as i64, "count_sql disagrees: {}", c.sql);
        Ok(vids)
    }
}

fn open_db(indexes: &[&Index]) -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(TABLES).unwrap();
    for index in indexes {
        index.load(&conn);
    }
    conn
}

#[track_caller]
fn check_agree(conn: &Connection, index: &Index, namespace: Option<&str>, filter: Option<&Filter>) {
    let expected = index.expected(namespace, filter);
    let got = index.sql_answer(conn, namespace, filter);
    if std::env::var("FILTER_STATS").is_ok() {
        let total = index.expected(namespace, None).unwrap().len();
        eprintln!(
            "STAT {} {} {} {:?} {}",
            total,
            match &got {
                Ok(v) => v.len() as i64,
                Err(_) => -1,
            },
            index.index_id,
            namespace,
            filter.map(|f| f.to_json().to_string()).unwrap_or_default()
        );
    }
    assert_eq!(
        got,
        expected,
        "index {} namespace {namespace:?} filter {:?}",
        index.index_id,
        filter.map(Filter::to_json)
    );
}

// ---------------------------------------------------------------------------------------
// Hand-checked semantics (each through both the evaluator and the SQL)
// ---------------------------------------------------------------------------------------

fn p64(last: char) -> String {
    format!("{}{last}", "p".repeat(64))
}

fn demo_index() -> Index {
    let all = ["genre", "year", "live", "pandas.nice", "tag"]
        .map(String::from)
        .to_vec();
    let metas = [
        (
            Some("a"),
            json!({"genre": "jazz", "year": 1955, "live": true, "pandas": {"nice": 42}}),
        ),
        (
            Some("b"),
            json!({"genre": "rock", "year": 1971, "live": false, "tag": ["x"]}),
        ),
        (None, json!({"genre": null, "year": "1960"})),
        (None, json!({})),
        (
            Some("a"),
            json!({"genre": "network", "year": 1960.0, "pandas": 42}),
        ),
        (None, json!({"genre": p64('A')})),
        (None, json!({"genre": p64('B'), "live": 1})),
        (None, json!({"genre": format!("{}é", "q".repeat(63))})),
    ];
    let vectors = metas
        .into_iter()
        .enumerate()
        .map(|(i, (ns, m))| Vector {
            vid: i as i64 + 1,
            namespace: ns.map(String::from),
            metadata: Some(m),
            covered: all.clone(),
        })
        .collect();
    Index {
        index_id: 1,
        types: [
            ("genre", IndexType::String),
            ("year", IndexType::Number),
            ("live", IndexType::Boolean),
            ("pandas.nice", IndexType::Number),
            ("tag", IndexType::String),
        ]
        .into_iter()
        .map(|(p, t)| (p.to_owned(), t))
        .collect(),
        vectors,
    }
}

#[test]
fn documented_and_decided_semantics() {
    let index = demo_index();
    let conn = open_db(&[&index]);
    let cases: Vec<(Option<&str>, Json, Vec<i64>)> = vec![
        (None, json!({"genre": "jazz"}), vec![1]),
        (None, json!({"genre": {"$eq": "jazz"}}), vec![1]),
        // $ne keeps vectors without the key, and explicit nulls.
        (
            None,
            json!({"genre": {"$ne": "jazz"}}),
            vec![2, 3, 4, 5, 6, 7, 8],
        ),
        // null matches an explicit JSON null only.
        (None, json!({"genre": null}), vec![3]),
        (
            None,
            json!({"genre": {"$ne": null}}),
            vec![1, 2, 4, 5, 6, 7, 8],
        ),
        (
            None,
            json!({"genre": {"$in": ["jazz", "rock"]}}),
            vec![1, 2],
        ),
        (None, json!({"genre": {"$in": ["jazz", null]}}), vec![1, 3]),
        (
            None,
            json!({"genre": {"$nin": ["jazz", null]}}),
            vec![2, 4, 5, 6, 7, 8],
        ),
        (None, json!({"genre": {"$in": []}}), vec![]),
        (
            None,
            json!({"genre": {"$nin": []}}),
            vec![1, 2, 3, 4, 5, 6, 7, 8],
        ),
        // The documented prefix idiom.
        (
            None,
            json!({"genre": {"$gte": "net", "$lt": "neu"}}),
            vec![5],
        ),
        // Number ranges; "1960" is a string, so it has no row in a number index.
        (
            None,
            json!({"year": {"$gte": 1955, "$lt": 1971}}),
            vec![1, 5],
        ),
        (
            None,
            json!({"year": {"$gt": 1955, "$lte": 1971}}),
            vec![2, 5],
        ),
        (None, json!({"year": 1960}), vec![5]),
        // Type mismatch: positive never, negative always.
        (None, json!({"year": "1960"}), vec![]),
        (
            None,
            json!({"year": {"$ne": "1960"}}),
            vec![1, 2, 3, 4, 5, 6, 7, 8],
        ),
        (None, json!({"year": {"$lt": "9"}}), vec![]),
        (None, json!({"live": true}), vec![1]),
        (None, json!({"live": false}), vec![2]),
        (None, json!({"live": 1}), vec![]),
        (
            None,
            json!({"live": {"$ne": false}}),
            vec![1, 3, 4, 5, 6, 7, 8],
        ),
        // Dotted keys address nested objects only.
        (None, json!({"pandas.nice": 42}), vec![1]),
        // Arrays are not indexed.
        (None, json!({"tag": "x"}), vec![]),
        // Strings sharing their first 64 bytes are equal to every operator.
        (None, json!({"genre": p64('A')}), vec![6, 7]),
        (None, json!({"genre": "p".repeat(64)}), vec![6, 7]),
        (None, json!({"genre": {"$gt": "p".repeat(64)}}), vec![2, 8]),
        (None, json!({"genre": {"$lt": p64('B')}}), vec![1, 5]),
        // 63 ASCII bytes and a 2-byte char: the index keeps the 63 bytes.
        (None, json!({"genre": "q".repeat(63)}), vec![8]),
        (
            None,
            json!({"genre": format!("{}ü", "q".repeat(63))}),
            vec![8],
        ),
        // AND across keys, and the namespace first.
        (None, json!({"genre": "jazz", "year": 1971}), vec![]),
        (Some("a"), json!({"year": {"$gt": 0}}), vec![1, 5]),
        (Some("b"), json!({"genre": {"$ne": "zzz"}}), vec![2]),
        (Some("c"), json!({"genre": {"$ne": "zzz"}}), vec![]),
    ];
    for (ns, filter, want) in cases {
        let f = parse_filter(&filter).unwrap();
        assert_eq!(
            index.expected(ns, Some(&f)),
            Ok(want.clone()),
            "eval {filter}"
        );
        assert_eq!(
            index.sql_answer(&conn, ns, Some(&f)),
            Ok(want),
            "sql {filter}"
        );
    }
    assert_eq!(index.sql_answer(&conn, Some("a"), None), Ok(vec![1, 5]));
}

#[test]
fn unindexed_property_errors_name_it_in_both() {
    let index = demo_index();
    let conn = open_db(&[&index]);
    let f = parse_filter(&json!({"genre": "jazz", "mood": "calm", "zzz": 1})).unwrap();
    let err = index.sql_answer(&conn, None, Some(&f)).unwrap_err();
    assert!(err.is_missing_index());
    assert_eq!(err.path, "filter.mood");
    assert!(err.reason.contains("`mood`"), "{err}");
    assert_eq!(index.expected(None, Some(&f)), Err(err));
}

#[test]
fn metadata_indexes_are_not_retroactive() {
    // Vector 1 was written before the `genre` index existed: it has no row, so it never
    // matches `$eq` and always matches `$ne`.
    let mut index = demo_index();
    index.vectors[0].covered.retain(|p| p != "genre");
    let conn = open_db(&[&index]);
    for (filter, want) in [
        (json!({"genre": "jazz"}), vec![]),
        (json!({"genre": {"$ne": "rock"}}), vec![1, 3, 4, 5, 6, 7, 8]),
    ] {
        let f = parse_filter(&filter).unwrap();
        assert_eq!(index.sql_answer(&conn, None, Some(&f)), Ok(want.clone()));
        assert_eq!(index.expected(None, Some(&f)), Ok(want));
    }
}

// ---------------------------------------------------------------------------------------
// The oracle property: SQL == evaluator on random metadata, index types and filters
// ---------------------------------------------------------------------------------------

/// Properties that filters use; `zz` never appears in metadata.
const PROPS: [&str; 7] = ["a", "b", "s", "a.b", "a.x", "s.b", "zz"];
/// Top-level metadata keys, and the keys of nested objects.
const TOP_KEYS: [&str; 4] = ["a", "b", "s", "t"];
const NESTED_KEYS: [&str; 2] = ["b", "x"];

fn string_pool() -> Vec<String> {
    let mut v: Vec<String> = [
        "", "x", "y", "X", "apple", "apricot", "ap", "banana", "é", "日本", "a\u{0}b", "a", "10",
        "2",
    ]
    .map(String::from)
    .to_vec();
    v.push("p".repeat(64));
    v.push(p64('A'));
    v.push(p64('B'));
    v.push(format!("{}é", "q".repeat(63)));
    v.push(format!("{}ü", "q".repeat(63)));
    v.push("q".repeat(63));
    v.push(format!("{}€z", "q".repeat(62)));
    v.push(format!("{}é", "q".repeat(62)));
    v.push(format!("{}😀", "q".repeat(61)));
    v
}

fn number_pool() -> Vec<Json> {
    let mut v: Vec<Json> = [-1.5, -0.0, 0.0, 1.0, 2.0, 2.5, 100.0, 1e20, -1e-7, 1e300]
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

/// Pool values that most draws come from, so that equality and ranges hit often.
fn common_strings() -> Vec<String> {
    vec![
        "x".into(),
        "apple".into(),
        p64('A'),
        p64('B'),
        format!("{}é", "q".repeat(63)),
    ]
}

fn common_numbers() -> Vec<Json> {
    vec![json!(1), json!(2.0), json!(2.5), json!(-0.0)]
}

fn string_json() -> impl Strategy<Value = Json> {
    prop_oneof![
        2 => prop::sample::select(common_strings()),
        1 => prop::sample::select(string_pool()),
    ]
    .prop_map(Json::String)
}

fn number_json() -> impl Strategy<Value = Json> {
    prop_oneof![
        2 => prop::sample::select(common_numbers()),
        1 => prop::sample::select(number_pool()),
    ]
}

fn scalar_json() -> impl Strategy<Value = Json> {
    prop_oneof![
        1 => Just(Json::Null),
        2 => any::<bool>().prop_map(Json::Bool),
        3 => number_json(),
        3 => string_json(),
    ]
}

fn meta_value() -> impl Strategy<Value = Json> {
    prop_oneof![
        6 => scalar_json(),
        1 => prop::collection::vec(scalar_json(), 0..3).prop_map(Json::Array),
        2 => prop::collection::btree_map(prop::sample::select(NESTED_KEYS.to_vec()), scalar_json(), 0..3)
            .prop_map(|m| Json::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
    ]
}

/// A scalar of type `ty`.
fn typed_json(ty: IndexType) -> BoxedStrategy<Json> {
    match ty {
        IndexType::String => string_json().boxed(),
        IndexType::Number => number_json().boxed(),
        IndexType::Boolean => any::<bool>().prop_map(Json::Bool).boxed(),
    }
}

/// A metadata value at a property indexed as `ty`: mostly of that type, else anything.
fn value_for(ty: Option<IndexType>) -> BoxedStrategy<Json> {
    match ty {
        Some(ty) => prop_oneof![
            6 => typed_json(ty),
            1 => Just(Json::Null),
            3 => meta_value(),
        ]
        .boxed(),
        None => meta_value().boxed(),
    }
}

/// Metadata whose values lean towards the index types, so filters select some vectors.
fn metadata(types: &BTreeMap<String, IndexType>) -> impl Strategy<Value = Option<Json>> {
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
            let nested = children
                .prop_map(|kv| Json::Object(kv.into_iter().flatten().collect()))
                .boxed();
            let value = prop_oneof![3 => value_for(ty(key)), 2 => nested];
            prop::option::weighted(0.75, value).prop_map(move |v| v.map(|v| (key.to_owned(), v)))
        })
        .collect();
    prop::option::weighted(
        0.95,
        keys.prop_map(|kv| Json::Object(kv.into_iter().flatten().collect())),
    )
}

fn namespace() -> impl Strategy<Value = Option<String>> {
    prop::sample::select(vec![None, Some("ns1"), Some("ns2"), Some("")])
        .prop_map(|ns| ns.map(String::from))
}

fn index_type() -> impl Strategy<Value = IndexType> {
    prop::sample::select(vec![
        IndexType::String,
        IndexType::Number,
        IndexType::Boolean,
    ])
}

/// An index: types for most of `PROPS` (never `zz` in index 1), then ~30 vectors, each
/// covered by each metadata index with probability 0.85.
fn index(index_id: i64) -> impl Strategy<Value = Index> {
    let types = prop::collection::vec(prop::option::weighted(0.9, index_type()), PROPS.len())
        .prop_map(move |types| -> BTreeMap<String, IndexType> {
            PROPS
                .iter()
                .zip(types)
                .filter(|(p, _)| **p != "zz" || index_id == 2)
                .filter_map(|(p, t)| t.map(|t| ((*p).to_owned(), t)))
                .collect()
        });
    types.prop_flat_map(move |types| {
        let vector = (
            namespace(),
            metadata(&types),
            prop::collection::vec(prop::bool::weighted(0.85), PROPS.len()),
        );
        prop::collection::vec(vector, 20..36).prop_map(move |vectors| Index {
            index_id,
            types: types.clone(),
            vectors: vectors
                .into_iter()
                .enumerate()
                .map(|(i, (namespace, metadata, covered))| Vector {
                    vid: i as i64 * 3 + 1,
                    namespace,
                    metadata,
                    covered: PROPS
                        .iter()
                        .zip(covered)
                        .filter(|(_, c)| *c)
                        .map(|(p, _)| (*p).to_owned())
                        .collect(),
                })
                .collect(),
        })
    })
}

fn range_operand(ty: Option<IndexType>) -> BoxedStrategy<Json> {
    let any = prop_oneof![string_json(), number_json()];
    match ty {
        Some(ty @ (IndexType::String | IndexType::Number)) => {
            prop_oneof![3 => typed_json(ty), 1 => any].boxed()
        }
        _ => any.boxed(),
    }
}

/// An operand leaning towards the index type `ty`.
fn operand(ty: Option<IndexType>) -> BoxedStrategy<Json> {
    match ty {
        Some(ty) => prop_oneof![3 => typed_json(ty), 1 => scalar_json()].boxed(),
        None => scalar_json().boxed(),
    }
}

/// One key's value in a filter, in any of its spellings, for a property of type `ty`.
fn condition_json(ty: Option<IndexType>) -> impl Strategy<Value = Json> {
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
}

/// A filter of one or two keys, its operands leaning towards the types in `types`.
fn filter_json(types: &BTreeMap<String, IndexType>) -> impl Strategy<Value = Json> {
    let clauses: Vec<_> = PROPS
        .iter()
        .map(|&p| {
            let ty = types.get(p).copied();
            let weight = if p == "zz" { 0.04 } else { 0.25 };
            prop::option::weighted(weight, condition_json(ty))
                .prop_map(move |c| c.map(|c| (p.to_owned(), c)))
        })
        .collect();
    clauses
        .prop_map(|kv| Json::Object(kv.into_iter().flatten().collect()))
        .prop_filter("a filter needs a key", |f| {
            f.as_object().is_some_and(|m| !m.is_empty())
        })
}

/// Two indexes, and filters that lean towards the one or the other's types.
fn indexes_and_filters() -> impl Strategy<Value = (Index, Index, Vec<Json>)> {
    (index(1), index(2)).prop_flat_map(|(one, two)| {
        let filters = (
            prop::collection::vec(filter_json(&one.types), 1..5),
            prop::collection::vec(filter_json(&two.types), 1..5),
        )
            .prop_map(|(mut a, b)| {
                a.extend(b);
                a
            });
        (Just(one), Just(two), filters)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sql_selects_exactly_what_the_evaluator_accepts(
        (one, two, filters) in indexes_and_filters(),
    ) {
        let conn = open_db(&[&one, &two]);
        let namespaces = [None, Some("ns1"), Some("ns2"), Some(""), Some("nsX")];
        for index in [&one, &two] {
            for ns in namespaces {
                check_agree(&conn, index, ns, None);
            }
        }
        for filter in &filters {
            let parsed = parse_filter(filter);
            prop_assert!(parsed.is_ok(), "{filter}: {parsed:?}");
            let parsed = parsed.unwrap();
            prop_assert_eq!(parse_filter(&parsed.to_json()), Ok(parsed.clone()));
            for index in [&one, &two] {
                for ns in namespaces {
                    check_agree(&conn, index, ns, Some(&parsed));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Robustness: arbitrary JSON never panics, and answers are deterministic
// ---------------------------------------------------------------------------------------

fn key_like() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "$eq", "$ne", "$in", "$nin", "$lt", "$lte", "$gt", "$gte", "$or", "$and", "$", "gte",
            "a", "a.b", "a..b", ".", "", "\"", "é", "$EQ",
        ])
        .prop_map(String::from),
        "[a-c$.\"]{0,4}",
        Just("k".repeat(513)),
    ]
}

fn any_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Json::Number)),
        any::<i64>().prop_map(Json::from),
        ".{0,8}".prop_map(Json::String),
        Just(Json::String("x".repeat(2100))),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            prop::collection::vec((key_like(), inner), 0..6)
                .prop_map(|kv| Json::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parse_never_panics_and_is_deterministic(value in any_json()) {
        let first = parse_filter(&value);
        prop_assert_eq!(&parse_filter(&value), &first);
        if let Ok(filter) = &first {
            // An accepted filter serialises back to itself (when it still fits).
            let again = filter.to_json();
            if again.to_string().len() < d1vec::vectorize::filter::parse::MAX_FILTER_BYTES {
                prop_assert_eq!(parse_filter(&again), Ok(filter.clone()));
            }
            // And its SQL prepares on the real tables.
            let conn = open_db(&[]);
            let q = candidate_sql(1, Some("n"), Some(filter), &|_| Some(IndexType::String)).unwrap();
            prop_assert_eq!(q.vids(&conn).unwrap(), Vec::<i64>::new());
        } else if let Err(e) = &first {
            prop_assert!(e.path.starts_with("filter"), "{}", e);
        }
    }
}

#[test]
fn fuzz_corpus_replays() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/filter_json");
    let conn = open_db(&[]);
    let (mut seen, mut accepted) = (0, 0);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        seen += 1;
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        let first = parse_filter_text(text);
        assert_eq!(parse_filter_text(text), first, "{}", path.display());
        if let Ok(filter) = first {
            accepted += 1;
            // As the fuzz target: an accepted filter serialises back to itself.
            let again = filter.to_json().to_string();
            if again.len() < d1vec::vectorize::filter::MAX_FILTER_BYTES {
                assert_eq!(
                    parse_filter_text(&again).as_ref(),
                    Ok(&filter),
                    "{}",
                    path.display()
                );
            }
            for ty in [IndexType::String, IndexType::Number, IndexType::Boolean] {
                let q = candidate_sql(1, None, Some(&filter), &|_| Some(ty)).unwrap();
                assert_eq!(
                    q.vids(&conn).unwrap(),
                    Vec::<i64>::new(),
                    "{}",
                    path.display()
                );
            }
        }
    }
    assert!(seen >= 10, "expected the seed corpus in {}", dir.display());
    assert!(
        accepted >= 3 && accepted < seen,
        "the corpus mixes valid and invalid filters"
    );
}
