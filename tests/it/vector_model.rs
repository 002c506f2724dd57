//! Model-based test of a Vectorize index: random sequences of operations run against a d1vec
//! index in a file database and against a model written here, and every read is compared.
//!
//! Operations: insert and upsert batches (with repeated ids, inside a batch and across
//! batches), `deleteByIds`, metadata-index creation (string, number or boolean, on a fixed set
//! of properties, one of them nested), queries (optional namespace, optional filter),
//! `getByIds`, compaction, sealing, and reopening the database from its path.
//!
//! The model is a `BTreeMap` from id to the stored vector (values rounded to f32, namespace,
//! metadata, and the metadata indexes that existed when it was written), kept by d1vec's
//! decisions: insert keeps a stored id and, within one batch, the first occurrence; upsert
//! replaces in full and the last occurrence in a batch wins; metadata indexes are not
//! retroactive, so a vector is filterable on a property only if it was written after that
//! property's index was created.
//!
//! The oracle scores every live vector by brute force in f64 on the f32-rounded values
//! (cosine similarity, descending, ties by id ascending) and evaluates filters with its own
//! evaluator: implicit `$eq`, `$eq`, `$ne`, `$in`, `$nin`, `$lt`/`$lte`/`$gt`/`$gte` on numbers
//! and strings (bytewise, on the 64-byte indexed prefix), booleans, and `null` (an explicit
//! JSON null only); `$ne`/`$nin` match a vector that lacks the key; a stored value or an
//! operand whose type is not the index's type never equals anything.
//!
//! Two engine configurations, each a fixed-seed proptest:
//! - exact: every namespace- or filter-restricted query is scored exactly; its matches must be
//!   the oracle's (same ids in the same order, scores within 1e-4; only vectors whose oracle
//!   scores are within 1e-5 of each other, but not equal, may trade places, as f32 arithmetic
//!   may order them either way);
//! - graph: every query goes through the HNSW graphs of the sealed and mutable segments; every
//!   match must be live and pass the namespace and the filter, the count must be
//!   `min(topK, eligible)`, and recall@10 averaged over a run's graph queries must be >= 0.95.
//!
//! In both, `getByIds` must return exactly the model's live vectors, `describe()` the model's
//! count, and `Database::vector_stats` must show which path each query took.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use d1vec::index::{GraphParams, Metric};
use d1vec::vectorize::filter::eval::IndexType;
use d1vec::vectorize::types::{Match, QueryOptions, ReturnMetadata, Vector};
use d1vec::vectorize::{CreateIndex, EngineOptions, Stats, VectorIndex};
use d1vec::Database;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use serde_json::{json, Map, Value};

const DIMS: usize = 8;
const INDEX: &str = "model";
/// The metadata properties: (dotted path, the type its values and its index usually have).
const PROPERTIES: [(&str, IndexType); 4] = [
    ("color", IndexType::String),
    ("size", IndexType::Number),
    ("flag", IndexType::Boolean),
    ("m.k", IndexType::String),
];
const NAMESPACES: [&str; 3] = ["ns-a", "ns-b", "ns-c"];
/// A namespace no vector is ever written to.
const UNUSED_NAMESPACE: &str = "ns-unused";
const TYPES: [IndexType; 3] = [IndexType::String, IndexType::Number, IndexType::Boolean];
/// How many vectors share one of the fixed "shared" directions (exact ties).
const SHARED_DIRECTIONS: usize = 4;
/// Oracle scores closer than this (but not equal) may be ordered either way by f32 arithmetic.
const NEAR_TIE: f64 = 1e-5;
/// Scores are computed in f32 by d1vec and in f64 by the oracle.
const SCORE_TOLERANCE: f64 = 1e-4;
const MIN_RECALL: f64 = 0.95;
/// `Error::json_code` of a filter on a property with no metadata index.
const FILTER_WITHOUT_METADATA_INDEX: u32 = 40031;
/// `Error::json_code` of creating a metadata index that exists.
const DUPLICATE_METADATA_INDEX: u32 = 40039;

// ---------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------

/// A metadata value or a filter operand.
#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    Null,
    Bool(bool),
    Number(f64),
    Str(String),
}

fn long_string(tail: &str) -> String {
    format!("{}{tail}", "x".repeat(64))
}

/// Strings stored as metadata; the last two share their 64-byte indexed prefix.
fn metadata_strings() -> Vec<String> {
    let mut v: Vec<String> = ["apple", "banana", "cherry", "date"]
        .map(String::from)
        .to_vec();
    v.extend([long_string("a"), long_string("b")]);
    v
}

/// Strings used as operands: the stored ones, bounds between them, and the shared prefix.
fn operand_strings() -> Vec<String> {
    let mut v = metadata_strings();
    v.extend(["b", "c", "zzz", ""].map(String::from));
    v.push("x".repeat(64));
    v
}

const METADATA_NUMBERS: [f64; 6] = [-1.0, 0.0, 1.5, 2.0, 3.0, 10.0];
const OPERAND_NUMBERS: [f64; 9] = [-1.0, 0.0, 1.5, 2.0, 3.0, 10.0, 1.0, 2.5, -5.0];

fn type_position(ty: IndexType) -> usize {
    TYPES.iter().position(|t| *t == ty).unwrap()
}

/// The type `steps` places after `ty` in [`TYPES`].
fn rotate(ty: IndexType, steps: usize) -> IndexType {
    TYPES[(type_position(ty) + steps) % TYPES.len()]
}

/// A value of type `ty` picked by `roll` from the metadata or the operand pool.
fn scalar_of(ty: IndexType, roll: u8, operand: bool) -> Scalar {
    let roll = usize::from(roll);
    match ty {
        IndexType::String => {
            let pool = if operand {
                operand_strings()
            } else {
                metadata_strings()
            };
            Scalar::Str(pool[roll % pool.len()].clone())
        }
        IndexType::Number => {
            let pool: &[f64] = if operand {
                &OPERAND_NUMBERS
            } else {
                &METADATA_NUMBERS
            };
            Scalar::Number(pool[roll % pool.len()])
        }
        IndexType::Boolean => Scalar::Bool(roll % 2 == 0),
    }
}

/// A stored metadata value as JSON: whole numbers as JSON integers, so that `2` in metadata
/// must equal `2.0` in a filter.
fn metadata_json(s: &Scalar) -> Value {
    match s {
        Scalar::Null => Value::Null,
        Scalar::Bool(b) => json!(b),
        Scalar::Number(n) if n.fract() == 0.0 => json!(*n as i64),
        Scalar::Number(n) => json!(n),
        Scalar::Str(s) => json!(s),
    }
}

/// An operand as JSON: numbers always as JSON floats.
fn operand_json(s: &Scalar) -> Value {
    match s {
        Scalar::Number(n) => Value::Number(serde_json::Number::from_f64(*n).unwrap()),
        other => metadata_json(other),
    }
}

/// Sets `path` (dotted) in `obj`, creating the intermediate objects.
fn insert_path(obj: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            obj.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let child = obj
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            insert_path(child.as_object_mut().unwrap(), rest, value);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Generated operations
// ---------------------------------------------------------------------------------------

/// A vector's values: random, or one of a few fixed directions (so that exact ties occur).
#[derive(Debug, Clone)]
enum ValuesSeed {
    Random(Vec<f64>),
    Shared(usize),
}

impl ValuesSeed {
    fn values(&self) -> Vec<f64> {
        match self {
            ValuesSeed::Random(v) => v.clone(),
            ValuesSeed::Shared(i) => (0..DIMS)
                .map(|d| ((i * 7 + d * 3) % 11) as f64 / 11.0 - 0.4 + 0.013 * *i as f64)
                .collect(),
        }
    }
}

/// One vector to write.
#[derive(Debug, Clone)]
struct Spec {
    id: u16,
    values: ValuesSeed,
    namespace: Option<usize>,
    /// Per property: `None` when the key is missing.
    metadata: Vec<Option<Scalar>>,
    /// An unindexed property, returned with the metadata.
    note: Option<u8>,
}

impl Spec {
    fn id(&self) -> String {
        id_name(self.id)
    }

    fn metadata(&self) -> Option<Map<String, Value>> {
        let mut m = Map::new();
        for ((property, _), value) in PROPERTIES.iter().zip(&self.metadata) {
            if let Some(value) = value {
                insert_path(&mut m, property, metadata_json(value));
            }
        }
        if let Some(note) = self.note {
            m.insert("note".into(), json!(format!("n{note}")));
        }
        (!m.is_empty()).then_some(m)
    }

    fn to_vector(&self) -> Vector {
        let mut v = Vector::new(self.id(), self.values.values());
        if let Some(ns) = self.namespace {
            v = v.with_namespace(NAMESPACES[ns]);
        }
        if let Some(m) = self.metadata() {
            v = v.with_metadata(m);
        }
        v
    }
}

fn id_name(id: u16) -> String {
    format!("v{id:03}")
}

/// An operand, resolved against the type of the property's index when the query runs.
#[derive(Debug, Clone, Copy)]
struct OperandSeed {
    kind: u8,
    value: u8,
}

impl OperandSeed {
    /// Mostly of the index's type; sometimes `null` or another type.
    fn resolve(self, ty: IndexType) -> Scalar {
        match self.kind % 10 {
            0..=6 => scalar_of(ty, self.value, true),
            7 => Scalar::Null,
            k => scalar_of(rotate(ty, usize::from(k - 7)), self.value, true),
        }
    }

    /// A range operand: a string or a number, mostly of the index's type.
    fn resolve_bound(self, ty: IndexType) -> Scalar {
        let other = |t| match t {
            IndexType::String => IndexType::Number,
            _ => IndexType::String,
        };
        let t = match ty {
            IndexType::Boolean if self.kind % 2 == 0 => IndexType::Number,
            IndexType::Boolean => IndexType::String,
            t if self.kind % 8 == 7 => other(t),
            t => t,
        };
        scalar_of(t, self.value, true)
    }
}

#[derive(Debug, Clone)]
enum ConditionSeed {
    Eq {
        implicit: bool,
        operand: OperandSeed,
    },
    Ne(OperandSeed),
    In(Vec<OperandSeed>),
    Nin(Vec<OperandSeed>),
    Range {
        lower: Option<(OperandSeed, bool)>,
        upper: Option<(OperandSeed, bool)>,
    },
}

#[derive(Debug, Clone)]
struct QuerySeed {
    values: ValuesSeed,
    top_k: usize,
    /// An index into [`NAMESPACES`]; `NAMESPACES.len()` is [`UNUSED_NAMESPACE`].
    namespace: Option<usize>,
    /// (property slot, condition); slots are mapped onto the indexed properties at run time.
    filter: Vec<(usize, ConditionSeed)>,
    return_values: bool,
    return_metadata: bool,
}

#[derive(Debug, Clone)]
enum Op {
    Insert(Vec<Spec>),
    Upsert(Vec<Spec>),
    Delete(Vec<u16>),
    CreateMetadataIndex { property: usize, type_roll: u8 },
    Query(QuerySeed),
    GetByIds(Vec<u16>),
    Compact,
    Seal,
    Reopen,
}

/// One test case: metadata indexes created first, a bulk load, then random operations.
#[derive(Debug, Clone)]
struct Plan {
    first_indexes: Vec<(usize, u8)>,
    bulk: Vec<Spec>,
    ops: Vec<Op>,
}

/// The engine configuration and the size of the generated cases.
#[derive(Debug, Clone, Copy)]
struct Mode {
    name: &'static str,
    /// Whether every query must take the graph path (else restricted queries are exact).
    graph: bool,
    options: EngineOptions,
    id_space: u16,
    first_indexes: (usize, usize),
    bulk: (usize, usize),
    batch: (usize, usize),
    ops: (usize, usize),
    top_k: (usize, usize),
    /// Weight (out of 100) of vectors and queries on a shared direction.
    shared_weight: u32,
    cases: u32,
    seed: u8,
}

fn metadata_value(natural: IndexType) -> impl Strategy<Value = Option<Scalar>> {
    (any::<u8>(), any::<u8>()).prop_map(move |(kind, value)| match kind % 12 {
        0..=2 => None,
        3..=8 => Some(scalar_of(natural, value, false)),
        9 => Some(Scalar::Null),
        k => Some(scalar_of(rotate(natural, usize::from(k - 9)), value, false)),
    })
}

fn values_seed(shared_weight: u32) -> impl Strategy<Value = ValuesSeed> {
    let random = prop::collection::vec(-1.0f64..1.0, DIMS).prop_map(|mut v| {
        // Never (close to) the zero vector: cosine rejects it.
        if v.iter().map(|x| x * x).sum::<f64>() < 0.09 {
            v[0] = 1.0;
        }
        ValuesSeed::Random(v)
    });
    prop_oneof![
        100 - shared_weight => random,
        shared_weight => (0..SHARED_DIRECTIONS).prop_map(ValuesSeed::Shared),
    ]
}

fn spec_body(
    mode: Mode,
) -> impl Strategy<Value = (ValuesSeed, Option<usize>, Vec<Option<Scalar>>, Option<u8>)> {
    let metadata: Vec<_> = PROPERTIES
        .iter()
        .map(|(_, natural)| metadata_value(*natural))
        .collect();
    (
        values_seed(mode.shared_weight),
        prop::option::weighted(0.6, 0..NAMESPACES.len()),
        metadata,
        prop::option::weighted(0.3, any::<u8>()),
    )
}

fn spec(mode: Mode) -> impl Strategy<Value = Spec> {
    (0..mode.id_space, spec_body(mode)).prop_map(|(id, (values, namespace, metadata, note))| Spec {
        id,
        values,
        namespace,
        metadata,
        note,
    })
}

fn operand() -> impl Strategy<Value = OperandSeed> {
    (any::<u8>(), any::<u8>()).prop_map(|(kind, value)| OperandSeed { kind, value })
}

fn condition() -> impl Strategy<Value = ConditionSeed> {
    let bound = || (operand(), any::<bool>());
    prop_oneof![
        3 => (any::<bool>(), operand())
            .prop_map(|(implicit, operand)| ConditionSeed::Eq { implicit, operand }),
        2 => operand().prop_map(ConditionSeed::Ne),
        2 => prop::collection::vec(operand(), 0..4).prop_map(ConditionSeed::In),
        2 => prop::collection::vec(operand(), 0..4).prop_map(ConditionSeed::Nin),
        3 => (prop::option::of(bound()), prop::option::of(bound()), bound())
            .prop_map(|(lower, upper, fallback)| match (lower, upper) {
                (None, None) => ConditionSeed::Range { lower: Some(fallback), upper: None },
                (lower, upper) => ConditionSeed::Range { lower, upper },
            }),
    ]
}

fn query(mode: Mode) -> impl Strategy<Value = QuerySeed> {
    (
        values_seed(mode.shared_weight.max(10)),
        mode.top_k.0..=mode.top_k.1,
        prop::option::weighted(0.5, 0..=NAMESPACES.len()),
        prop_oneof![
            2 => Just(Vec::new()),
            3 => prop::collection::vec((0..PROPERTIES.len(), condition()), 1..=2),
        ],
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(values, top_k, namespace, filter, return_values, return_metadata)| QuerySeed {
                values,
                top_k,
                namespace,
                filter,
                return_values,
                return_metadata,
            },
        )
}

fn op(mode: Mode) -> impl Strategy<Value = Op> {
    let batch = move || prop::collection::vec(spec(mode), mode.batch.0..=mode.batch.1);
    let ids = move |n: usize| prop::collection::vec(0..mode.id_space, 1..=n);
    prop_oneof![
        3 => batch().prop_map(Op::Insert),
        3 => batch().prop_map(Op::Upsert),
        2 => ids(20).prop_map(Op::Delete),
        1 => (0..PROPERTIES.len(), any::<u8>())
            .prop_map(|(property, type_roll)| Op::CreateMetadataIndex { property, type_roll }),
        8 => query(mode).prop_map(Op::Query),
        2 => ids(20).prop_map(Op::GetByIds),
        1 => Just(Op::Compact),
        1 => Just(Op::Seal),
        1 => Just(Op::Reopen),
    ]
}

fn plan(mode: Mode) -> impl Strategy<Value = Plan> {
    (
        prop::collection::vec(
            (0..PROPERTIES.len(), any::<u8>()),
            mode.first_indexes.0..=mode.first_indexes.1,
        ),
        prop::collection::vec(spec_body(mode), mode.bulk.0..=mode.bulk.1),
        prop::collection::vec(op(mode), mode.ops.0..=mode.ops.1),
    )
        .prop_map(|(first_indexes, bulk, ops)| Plan {
            first_indexes,
            bulk: bulk
                .into_iter()
                .enumerate()
                .map(|(i, (values, namespace, metadata, note))| Spec {
                    id: i as u16,
                    values,
                    namespace,
                    metadata,
                    note,
                })
                .collect(),
            ops,
        })
}

// ---------------------------------------------------------------------------------------
// The model and the oracle
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Stored {
    values: Vec<f32>,
    namespace: Option<String>,
    metadata: Option<Map<String, Value>>,
    /// The properties that had a metadata index when this vector was written.
    covered: BTreeSet<String>,
}

#[derive(Debug, Default)]
struct Model {
    vectors: BTreeMap<String, Stored>,
    indexes: BTreeMap<String, IndexType>,
}

/// A filter condition with resolved operands.
#[derive(Debug, Clone)]
enum Condition {
    Eq {
        implicit: bool,
        operand: Scalar,
    },
    Ne(Scalar),
    In(Vec<Scalar>),
    Nin(Vec<Scalar>),
    Range {
        lower: Option<(Scalar, bool)>,
        upper: Option<(Scalar, bool)>,
    },
}

impl Condition {
    fn resolve(seed: &ConditionSeed, ty: IndexType) -> Condition {
        let bound =
            |b: &Option<(OperandSeed, bool)>| b.map(|(o, incl)| (o.resolve_bound(ty), incl));
        match seed {
            ConditionSeed::Eq { implicit, operand } => Condition::Eq {
                implicit: *implicit,
                operand: operand.resolve(ty),
            },
            ConditionSeed::Ne(o) => Condition::Ne(o.resolve(ty)),
            ConditionSeed::In(list) => Condition::In(list.iter().map(|o| o.resolve(ty)).collect()),
            ConditionSeed::Nin(list) => {
                Condition::Nin(list.iter().map(|o| o.resolve(ty)).collect())
            }
            ConditionSeed::Range { lower, upper } => Condition::Range {
                lower: bound(lower),
                upper: bound(upper),
            },
        }
    }

    fn to_json(&self) -> Value {
        let list = |l: &[Scalar]| Value::Array(l.iter().map(operand_json).collect());
        match self {
            Condition::Eq {
                implicit: true,
                operand,
            } => operand_json(operand),
            Condition::Eq { operand, .. } => json!({ "$eq": operand_json(operand) }),
            Condition::Ne(o) => json!({ "$ne": operand_json(o) }),
            Condition::In(l) => json!({ "$in": list(l) }),
            Condition::Nin(l) => json!({ "$nin": list(l) }),
            Condition::Range { lower, upper } => {
                let mut m = Map::new();
                if let Some((o, inclusive)) = lower {
                    m.insert(
                        if *inclusive { "$gte" } else { "$gt" }.into(),
                        operand_json(o),
                    );
                }
                if let Some((o, inclusive)) = upper {
                    m.insert(
                        if *inclusive { "$lte" } else { "$lt" }.into(),
                        operand_json(o),
                    );
                }
                Value::Object(m)
            }
        }
    }
}

/// What a metadata index holds for one vector and property.
#[derive(Debug, Clone, PartialEq)]
enum IndexedValue {
    /// No entry: key missing, a value of another type, or written before the index existed.
    Absent,
    /// An explicit JSON null.
    Null,
    /// A value of the index's type, strings cut to 64 bytes.
    Value(Scalar),
}

/// The first 64 bytes of a string, cut back to a char boundary.
fn indexed_prefix(s: &str) -> String {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

fn has_type(s: &Scalar, ty: IndexType) -> bool {
    matches!(
        (s, ty),
        (Scalar::Str(_), IndexType::String)
            | (Scalar::Number(_), IndexType::Number)
            | (Scalar::Bool(_), IndexType::Boolean)
    )
}

/// An operand or stored value as the index compares it.
fn as_indexed(s: &Scalar) -> Scalar {
    match s {
        Scalar::Str(t) => Scalar::Str(indexed_prefix(t)),
        other => other.clone(),
    }
}

fn lookup<'a>(metadata: Option<&'a Map<String, Value>>, path: &str) -> Option<&'a Value> {
    let mut segments = path.split('.');
    let mut at = metadata?.get(segments.next()?)?;
    for segment in segments {
        at = at.as_object()?.get(segment)?;
    }
    Some(at)
}

impl Stored {
    fn indexed(&self, property: &str, ty: IndexType) -> IndexedValue {
        if !self.covered.contains(property) {
            return IndexedValue::Absent;
        }
        let scalar = match lookup(self.metadata.as_ref(), property) {
            None => return IndexedValue::Absent,
            Some(Value::Null) => return IndexedValue::Null,
            Some(Value::Bool(b)) => Scalar::Bool(*b),
            Some(Value::Number(n)) => Scalar::Number(n.as_f64().unwrap()),
            Some(Value::String(s)) => Scalar::Str(s.clone()),
            Some(_) => return IndexedValue::Absent,
        };
        if has_type(&scalar, ty) {
            IndexedValue::Value(as_indexed(&scalar))
        } else {
            IndexedValue::Absent
        }
    }
}

fn equals(ty: IndexType, value: &IndexedValue, operand: &Scalar) -> bool {
    match operand {
        Scalar::Null => *value == IndexedValue::Null,
        o if has_type(o, ty) => *value == IndexedValue::Value(as_indexed(o)),
        _ => false,
    }
}

/// Whether `value` is on the right side of one range bound.
fn satisfies(ty: IndexType, value: &Scalar, bound: &(Scalar, bool), lower: bool) -> bool {
    let (operand, inclusive) = bound;
    if !has_type(operand, ty) {
        return false;
    }
    let order = match (value, &as_indexed(operand)) {
        (Scalar::Str(a), Scalar::Str(b)) => a.as_bytes().cmp(b.as_bytes()),
        (Scalar::Number(a), Scalar::Number(b)) => a.partial_cmp(b).unwrap(),
        _ => return false,
    };
    match order {
        std::cmp::Ordering::Equal => *inclusive,
        std::cmp::Ordering::Greater => lower,
        std::cmp::Ordering::Less => !lower,
    }
}

fn holds(ty: IndexType, condition: &Condition, value: &IndexedValue) -> bool {
    match condition {
        Condition::Eq { operand, .. } => equals(ty, value, operand),
        Condition::Ne(o) => !equals(ty, value, o),
        Condition::In(list) => list.iter().any(|o| equals(ty, value, o)),
        Condition::Nin(list) => !list.iter().any(|o| equals(ty, value, o)),
        Condition::Range { lower, upper } => {
            let IndexedValue::Value(v) = value else {
                return false;
            };
            lower.as_ref().is_none_or(|b| satisfies(ty, v, b, true))
                && upper.as_ref().is_none_or(|b| satisfies(ty, v, b, false))
        }
    }
}

/// A query as run: its f32-rounded vector, namespace and resolved filter.
#[derive(Debug)]
struct ResolvedQuery {
    values: Vec<f64>,
    namespace: Option<String>,
    /// (property, index type, condition); empty for no filter.
    filter: Vec<(String, IndexType, Condition)>,
    filter_json: Option<Value>,
    /// The filter names a property with no metadata index: the query must fail.
    unindexed: bool,
}

fn cosine(a: &[f64], b: &[f32]) -> f64 {
    let b: Vec<f64> = b.iter().map(|&x| f64::from(x)).collect();
    let dot: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

impl Model {
    fn write(&mut self, specs: &[Spec], upsert: bool) {
        let covered: BTreeSet<String> = self.indexes.keys().cloned().collect();
        let stored = |s: &Spec| Stored {
            values: s.values.values().iter().map(|&x| x as f32).collect(),
            namespace: s.namespace.map(|n| NAMESPACES[n].to_owned()),
            metadata: s.metadata(),
            covered: covered.clone(),
        };
        if upsert {
            // The last occurrence of an id wins.
            for s in specs {
                self.vectors.insert(s.id(), stored(s));
            }
        } else {
            // Stored ids are kept, and the first occurrence in the batch wins.
            for s in specs {
                self.vectors.entry(s.id()).or_insert_with(|| stored(s));
            }
        }
    }

    fn resolve(&self, seed: &QuerySeed) -> ResolvedQuery {
        let values: Vec<f64> = seed
            .values
            .values()
            .iter()
            .map(|&x| f64::from(x as f32))
            .collect();
        let namespace = seed.namespace.map(|i| {
            NAMESPACES
                .get(i)
                .copied()
                .unwrap_or(UNUSED_NAMESPACE)
                .to_owned()
        });
        let indexed: Vec<(&String, &IndexType)> = self.indexes.iter().collect();
        let mut filter: Vec<(String, IndexType, Condition)> = Vec::new();
        let unindexed = !seed.filter.is_empty() && indexed.is_empty();
        for (slot, condition) in &seed.filter {
            // With indexes, filter on indexed properties only; without, keep the property
            // (and its usual type) to check the error.
            let (property, ty) = match indexed.get(slot % indexed.len().max(1)) {
                Some((p, t)) => ((*p).clone(), **t),
                None => (PROPERTIES[*slot].0.to_owned(), PROPERTIES[*slot].1),
            };
            if filter.iter().all(|(p, _, _)| *p != property) {
                filter.push((property, ty, Condition::resolve(condition, ty)));
            }
        }
        let filter_json = (!filter.is_empty()).then(|| {
            Value::Object(
                filter
                    .iter()
                    .map(|(p, _, c)| (p.clone(), c.to_json()))
                    .collect(),
            )
        });
        ResolvedQuery {
            values,
            namespace,
            filter,
            filter_json,
            unindexed,
        }
    }

    /// Every vector the query may return, with its score, best first (ties by id).
    fn eligible(&self, q: &ResolvedQuery) -> Vec<(String, f64)> {
        let mut out: Vec<(String, f64)> = self
            .vectors
            .iter()
            .filter(|(_, v)| q.namespace.is_none() || v.namespace == q.namespace)
            .filter(|(_, v)| {
                q.filter
                    .iter()
                    .all(|(p, ty, c)| holds(*ty, c, &v.indexed(p, *ty)))
            })
            .map(|(id, v)| (id.clone(), cosine(&q.values, &v.values)))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
    }
}

// ---------------------------------------------------------------------------------------
// Running a plan
// ---------------------------------------------------------------------------------------

/// What a test's cases add up to, for the final assertions and the report.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    exact_queries: usize,
    graph_queries: usize,
    fallbacks: usize,
    recall_sum: f64,
    worst_run_recall: Option<f64>,
    unindexed_errors: usize,
    /// Queries whose filter let through some, but not all, of the live vectors.
    selective_filters: usize,
    tolerated_swaps: usize,
}

struct Session {
    db: Database,
    ix: VectorIndex,
}

struct Run {
    mode: Mode,
    path: PathBuf,
    session: Option<Session>,
    model: Model,
    tally: Tally,
    /// Graph queries of this run (not fallbacks) and their summed recall.
    run_graph: (usize, f64),
}

fn fail(msg: impl Into<String>) -> TestCaseError {
    TestCaseError::fail(msg.into())
}

fn open(path: &Path, options: EngineOptions, create: bool) -> Result<Session, TestCaseError> {
    let db = Database::open(path).map_err(|e| fail(format!("open: {e}")))?;
    db.set_vector_options(options);
    if create {
        db.create_index(&CreateIndex::new(INDEX, DIMS, Metric::Cosine))
            .map_err(|e| fail(format!("create_index: {e}")))?;
    }
    let ix = db
        .vectorize(INDEX)
        .map_err(|e| fail(format!("vectorize: {e}")))?;
    Ok(Session { db, ix })
}

fn same_values(got: &[f64], want: &[f32]) -> bool {
    got.len() == want.len() && got.iter().zip(want).all(|(g, w)| *g == f64::from(*w))
}

impl Run {
    fn ix(&self) -> &VectorIndex {
        &self.session.as_ref().unwrap().ix
    }

    fn stats(&self) -> Stats {
        self.session.as_ref().unwrap().db.vector_stats()
    }

    fn apply(&mut self, step: usize, op: &Op) -> Result<(), TestCaseError> {
        let at = |what: &str| format!("step {step}: {what}");
        match op {
            Op::Insert(specs) | Op::Upsert(specs) => {
                let upsert = matches!(op, Op::Upsert(_));
                let vectors: Vec<Vector> = specs.iter().map(Spec::to_vector).collect();
                let r = if upsert {
                    self.ix().upsert(&vectors)
                } else {
                    self.ix().insert(&vectors)
                };
                r.map_err(|e| fail(at(&format!("write failed: {e}"))))?;
                self.model.write(specs, upsert);
            }
            Op::Delete(ids) => {
                let ids: Vec<String> = ids.iter().map(|&i| id_name(i)).collect();
                self.ix()
                    .delete_by_ids(&ids)
                    .map_err(|e| fail(at(&format!("delete failed: {e}"))))?;
                for id in &ids {
                    self.model.vectors.remove(id);
                }
            }
            Op::CreateMetadataIndex {
                property,
                type_roll,
            } => self.create_metadata_index(step, *property, *type_roll)?,
            Op::Query(seed) => self.query(step, seed)?,
            Op::GetByIds(ids) => {
                let ids: Vec<String> = ids.iter().map(|&i| id_name(i)).collect();
                self.check_get_by_ids(step, &ids)?;
                self.check_count(step)?;
            }
            Op::Compact => self
                .ix()
                .compact()
                .map_err(|e| fail(at(&format!("compact failed: {e}"))))?,
            Op::Seal => self
                .ix()
                .seal()
                .map_err(|e| fail(at(&format!("seal failed: {e}"))))?,
            Op::Reopen => {
                self.session = None;
                self.session = Some(open(&self.path, self.mode.options, false)?);
            }
        }
        Ok(())
    }

    fn create_metadata_index(
        &mut self,
        step: usize,
        property: usize,
        type_roll: u8,
    ) -> Result<(), TestCaseError> {
        let (name, natural) = PROPERTIES[property];
        let ty = if type_roll % 4 == 3 {
            rotate(natural, 1 + usize::from(type_roll / 4) % 2)
        } else {
            natural
        };
        let r = self.ix().create_metadata_index(name, ty);
        if self.model.indexes.contains_key(name) {
            match r {
                Err(e) if e.json_code() == DUPLICATE_METADATA_INDEX => Ok(()),
                other => Err(fail(format!(
                    "step {step}: a second metadata index on {name} must fail with \
                     {DUPLICATE_METADATA_INDEX}, got {other:?}"
                ))),
            }
        } else {
            let created =
                r.map_err(|e| fail(format!("step {step}: create_metadata_index({name}): {e}")))?;
            prop_assert_eq!(
                created.vectors_not_covered,
                self.model.vectors.len() as u64,
                "step {}: vectors not covered by the new index on {}",
                step,
                name
            );
            self.model.indexes.insert(name.to_owned(), ty);
            Ok(())
        }
    }

    fn query(&mut self, step: usize, seed: &QuerySeed) -> Result<(), TestCaseError> {
        let q = self.model.resolve(seed);
        let mut options = QueryOptions::new()
            .with_top_k(seed.top_k)
            .with_values(seed.return_values);
        if seed.return_metadata {
            options = options.with_metadata(ReturnMetadata::All);
        }
        if let Some(ns) = &q.namespace {
            options = options.with_namespace(ns.clone());
        }
        if let Some(f) = &q.filter_json {
            options = options.with_filter(f.clone());
        }
        let context = format!(
            "step {step}: query top_k={} namespace={:?} filter={}",
            seed.top_k,
            q.namespace,
            q.filter_json
                .as_ref()
                .map_or("none".into(), |f| f.to_string())
        );
        let before = self.stats();
        let result = self.ix().query(&seed.values.values(), &options);
        let after = self.stats();
        if q.unindexed {
            return match result {
                Err(e) if e.json_code() == FILTER_WITHOUT_METADATA_INDEX => {
                    self.tally.unindexed_errors += 1;
                    Ok(())
                }
                other => Err(fail(format!(
                    "{context}: a filter on unindexed properties must fail with \
                     {FILTER_WITHOUT_METADATA_INDEX}, got {other:?}"
                ))),
            };
        }
        let got = result.map_err(|e| fail(format!("{context}: {e}")))?.matches;
        let eligible = self.model.eligible(&q);
        if q.filter_json.is_some()
            && !eligible.is_empty()
            && eligible.len() < self.model.vectors.len()
        {
            self.tally.selective_filters += 1;
        }
        let want: Vec<(String, f64)> = eligible.iter().take(seed.top_k).cloned().collect();
        let scores: BTreeMap<&str, f64> =
            eligible.iter().map(|(id, s)| (id.as_str(), *s)).collect();
        let context = format!(
            "{context}\n  got:  {:?}\n  want: {:?}",
            got.iter().map(|m| (&m.id, m.score)).collect::<Vec<_>>(),
            want
        );

        // Which path ran.
        let exact = after.exact_searches - before.exact_searches;
        let graph = after.graph_searches - before.graph_searches;
        let fallback = after.exact_fallbacks - before.exact_fallbacks;
        // The planner scores exactly whenever the vectors a query may return number at most
        // `exact_max_candidates`: always in exact mode (1,000,000), never in graph mode (0).
        let searched = u64::from(!eligible.is_empty());
        let (want_exact, want_graph) = if self.mode.graph {
            (0, searched)
        } else {
            (searched, 0)
        };
        prop_assert!(
            exact == want_exact && graph == want_graph && fallback <= graph,
            "{}\n  path counters: exact +{} graph +{} fallback +{}, expected exact +{} graph +{}",
            context,
            exact,
            graph,
            fallback,
            want_exact,
            want_graph
        );

        // Every match: eligible, once, with its score, values, namespace and metadata.
        let mut seen = HashSet::new();
        for m in &got {
            let Some(&score) = scores.get(m.id.as_str()) else {
                return Err(fail(format!(
                    "{context}\n  {} is not a live vector passing the namespace and filter",
                    m.id
                )));
            };
            prop_assert!(seen.insert(&m.id), "{}\n  {} returned twice", context, m.id);
            prop_assert!(
                (m.score - score).abs() <= SCORE_TOLERANCE,
                "{}\n  score of {}: got {}, oracle {}",
                context,
                m.id,
                m.score,
                score
            );
            self.check_match_fields(m, seed, &context)?;
        }
        prop_assert_eq!(got.len(), want.len(), "{}\n  match count", context);
        for pair in got.windows(2) {
            let ordered = pair[0].score > pair[1].score
                || (pair[0].score == pair[1].score && pair[0].id < pair[1].id);
            prop_assert!(ordered, "{}\n  not sorted by score, then id", context);
        }

        if exact == 1 || fallback == 1 {
            self.tally.exact_queries += 1;
            for (i, (m, (want_id, want_score))) in got.iter().zip(&want).enumerate() {
                if m.id == *want_id {
                    continue;
                }
                let score = scores[m.id.as_str()];
                prop_assert!(
                    score != *want_score,
                    "{}\n  position {}: {} and {} tie, so the smaller id comes first",
                    context,
                    i,
                    m.id,
                    want_id
                );
                prop_assert!(
                    (score - want_score).abs() <= NEAR_TIE,
                    "{}\n  position {}: got {} (oracle score {}), want {} ({})",
                    context,
                    i,
                    m.id,
                    score,
                    want_id,
                    want_score
                );
                self.tally.tolerated_swaps += 1;
            }
        } else if graph == 1 {
            self.tally.graph_queries += 1;
            if let Some((_, kth)) = want.last() {
                let found = got
                    .iter()
                    .filter(|m| scores[m.id.as_str()] >= kth - NEAR_TIE)
                    .count();
                let recall = found as f64 / want.len() as f64;
                self.tally.recall_sum += recall;
                self.run_graph.0 += 1;
                self.run_graph.1 += recall;
            }
        }
        self.tally.fallbacks += fallback as usize;
        Ok(())
    }

    fn check_match_fields(
        &self,
        m: &Match,
        seed: &QuerySeed,
        context: &str,
    ) -> Result<(), TestCaseError> {
        let stored = &self.model.vectors[&m.id];
        prop_assert_eq!(
            &m.namespace,
            &stored.namespace,
            "{}\n  namespace of {}",
            context,
            m.id
        );
        match &m.values {
            Some(v) => prop_assert!(
                seed.return_values && same_values(v, &stored.values),
                "{}\n  values of {}: got {:?}, stored {:?} (asked: {})",
                context,
                m.id,
                v,
                stored.values,
                seed.return_values
            ),
            None => prop_assert!(!seed.return_values, "{}\n  no values for {}", context, m.id),
        }
        let want_metadata = if seed.return_metadata {
            stored.metadata.as_ref()
        } else {
            None
        };
        prop_assert_eq!(
            m.metadata.as_ref(),
            want_metadata,
            "{}\n  metadata of {}",
            context,
            m.id
        );
        Ok(())
    }

    /// `getByIds`: input order, duplicates dropped, missing ids omitted; values, namespace
    /// and metadata as stored.
    fn check_get_by_ids(&self, step: usize, ids: &[String]) -> Result<(), TestCaseError> {
        let got = self
            .ix()
            .get_by_ids(ids)
            .map_err(|e| fail(format!("step {step}: get_by_ids: {e}")))?;
        let mut seen = HashSet::new();
        let want: Vec<&String> = ids
            .iter()
            .filter(|id| seen.insert(*id) && self.model.vectors.contains_key(*id))
            .collect();
        prop_assert_eq!(
            got.iter().map(|v| &v.id).collect::<Vec<_>>(),
            want,
            "step {}: get_by_ids({:?}) ids",
            step,
            ids
        );
        for v in &got {
            let stored = &self.model.vectors[&v.id];
            prop_assert!(
                same_values(&v.values, &stored.values),
                "step {}: get_by_ids values of {}: got {:?}, stored {:?}",
                step,
                v.id,
                v.values,
                stored.values
            );
            prop_assert_eq!(
                &v.namespace,
                &stored.namespace,
                "step {}: namespace of {}",
                step,
                v.id
            );
            prop_assert_eq!(
                &v.metadata,
                &stored.metadata,
                "step {}: metadata of {}",
                step,
                v.id
            );
        }
        Ok(())
    }

    fn check_count(&self, step: usize) -> Result<(), TestCaseError> {
        let info = self
            .ix()
            .describe()
            .map_err(|e| fail(format!("step {step}: describe: {e}")))?;
        prop_assert_eq!(
            info.vector_count,
            self.model.vectors.len() as u64,
            "step {}: describe().vectorCount",
            step
        );
        Ok(())
    }

    /// Every id of the id space through `getByIds`, 20 at a time, and the count.
    fn check_everything(&self, step: usize) -> Result<(), TestCaseError> {
        let all: Vec<String> = (0..self.mode.id_space).map(id_name).collect();
        for chunk in all.chunks(20) {
            self.check_get_by_ids(step, chunk)?;
        }
        self.check_count(step)
    }
}

fn run_plan(mode: Mode, plan: &Plan, tally: &RefCell<Tally>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().map_err(|e| fail(format!("tempdir: {e}")))?;
    let path = dir.path().join("model.db");
    let session = open(&path, mode.options, true)?;
    let mut run = Run {
        mode,
        path,
        session: Some(session),
        model: Model::default(),
        tally: Tally::default(),
        run_graph: (0, 0.0),
    };
    let mut ops: Vec<Op> = plan
        .first_indexes
        .iter()
        .map(|&(property, type_roll)| Op::CreateMetadataIndex {
            property,
            type_roll,
        })
        .collect();
    ops.extend(
        plan.bulk
            .chunks(mode.batch.1.max(1))
            .map(|c| Op::Upsert(c.to_vec())),
    );
    ops.extend(plan.ops.iter().cloned());
    for (step, op) in ops.iter().enumerate() {
        run.apply(step, op)?;
    }
    run.check_everything(ops.len())?;
    let (queries, recall_sum) = run.run_graph;
    if queries > 0 {
        let recall = recall_sum / queries as f64;
        let mut t = tally.borrow_mut();
        t.worst_run_recall = Some(t.worst_run_recall.map_or(recall, |w| w.min(recall)));
        prop_assert!(
            recall >= MIN_RECALL,
            "average recall@k over {} graph queries is {:.3} < {}",
            queries,
            recall,
            MIN_RECALL
        );
    }
    let mut t = tally.borrow_mut();
    t.exact_queries += run.tally.exact_queries;
    t.graph_queries += run.tally.graph_queries;
    t.fallbacks += run.tally.fallbacks;
    t.recall_sum += run.tally.recall_sum;
    t.unindexed_errors += run.tally.unindexed_errors;
    t.selective_filters += run.tally.selective_filters;
    t.tolerated_swaps += run.tally.tolerated_swaps;
    Ok(())
}

fn run_mode(mode: Mode) -> Tally {
    let config = Config {
        cases: mode.cases,
        failure_persistence: None,
        max_shrink_iters: 200,
        ..Config::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[mode.seed; 32]);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let tally = RefCell::new(Tally::default());
    if let Err(e) = runner.run(&plan(mode), |p| run_plan(mode, &p, &tally)) {
        panic!("{} mode: {e}", mode.name);
    }
    let t = tally.into_inner();
    eprintln!(
        "{} mode: {} exact queries ({} near-tie swaps), {} graph queries (mean recall {:.4}, \
         worst run {:?}), {} exact fallbacks, {} selective filters, {} unindexed-filter errors",
        mode.name,
        t.exact_queries,
        t.tolerated_swaps,
        t.graph_queries,
        t.recall_sum / t.graph_queries.max(1) as f64,
        t.worst_run_recall,
        t.fallbacks,
        t.selective_filters,
        t.unindexed_errors
    );
    t
}

#[test]
fn exact_path_matches_the_brute_force_oracle() {
    let mode = Mode {
        name: "exact",
        graph: false,
        options: EngineOptions {
            exact_max_candidates: 1_000_000,
            seal_at: 16,
            ef_search: 96,
            graph: GraphParams::default(),
            memory: Default::default(),
        },
        id_space: 40,
        first_indexes: (0, 3),
        bulk: (0, 20),
        batch: (1, 8),
        ops: (20, 60),
        top_k: (1, 12),
        shared_weight: 12,
        cases: 64,
        seed: 11,
    };
    let t = run_mode(mode);
    assert!(t.exact_queries > 150, "exact path rarely ran: {t:?}");
    assert!(
        t.unindexed_errors > 0,
        "no filter on an unindexed property: {t:?}"
    );
}

#[test]
fn graph_path_returns_only_eligible_vectors_with_high_recall() {
    let mode = Mode {
        name: "graph",
        graph: true,
        options: EngineOptions {
            exact_max_candidates: 0,
            seal_at: 64,
            ef_search: 32,
            graph: GraphParams::default(),
            memory: Default::default(),
        },
        id_space: 700,
        first_indexes: (1, 3),
        bulk: (350, 500),
        batch: (1, 60),
        ops: (25, 45),
        top_k: (10, 10),
        shared_weight: 3,
        cases: 32,
        seed: 23,
    };
    let t = run_mode(mode);
    assert!(t.graph_queries > 150, "graph path rarely ran: {t:?}");
    let mean = t.recall_sum / t.graph_queries as f64;
    assert!(
        mean >= MIN_RECALL,
        "mean recall@10 {mean:.3} < {MIN_RECALL}"
    );
}
