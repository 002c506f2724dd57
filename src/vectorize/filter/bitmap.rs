//! The in-memory inverted index of one vector index's metadata-indexed values, which answers
//! a [`Filter`] without SQL.
//!
//! For each metadata index (property) it keeps:
//! - one posting per distinct indexed value (a single vid, or a [`RoaringTreemap`] once a
//!   value has two), in a `BTreeMap` ordered as [`super::eval`] compares values (strings
//!   bytewise, numbers as f64 with `-0.0` stored as `0.0`), so a range is one ordered walk;
//! - a bitmap of the vids whose value is an explicit JSON `null`;
//! - a bitmap of the vids that hold a value no operand can equal or bound (NaN, or a value
//!   of another type given to [`FilterIndex::insert_value`]);
//! - the value each vid holds, so that [`FilterIndex::remove`] is a few map operations and a
//!   small candidate set can be checked vid by vid.
//!
//! The ordered map stands in for a sorted array of `(value, vid)`: it has the same order and
//! the same range walk, but an insert or delete costs O(log n) instead of moving the array.
//!
//! [`FilterIndex::candidates`] evaluates each clause as a set: `$eq`/`$in` and ranges are
//! unions of postings, `$ne`/`$nin` subtract the `$eq`/`$in` set, and clauses intersect. It
//! returns exactly the vids of the universe that [`super::eval::matches`] passes, for every
//! filter (tests/it/filter_index.rs checks it with proptest, after writes, deletes and a
//! rebuild from the rows SQLite holds).

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Bound;
use std::sync::Arc;

use roaring::RoaringTreemap;
use rusqlite::types::ValueRef;
use serde_json::Value;

use super::eval::{has_type, indexed_value, truncate_indexed, IndexType, Indexed};
use super::parse::{Condition, Filter, FilterError, Scalar};

/// A number as a key: never NaN, and `-0.0` is stored as `0.0`, so the total order of f64
/// agrees with the `==` and `partial_cmp` the evaluator uses.
#[derive(Debug, Clone, Copy)]
struct Num(f64);

impl Num {
    fn new(f: f64) -> Option<Num> {
        if f.is_nan() {
            None
        } else if f == 0.0 {
            Some(Num(0.0))
        } else {
            Some(Num(f))
        }
    }
}

impl PartialEq for Num {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Num {}

impl PartialOrd for Num {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Num {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// A value of a property's type, ordered as the evaluator compares two values of that type.
/// One property only ever holds keys of one variant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Bool(bool),
    Number(Num),
    /// Compared bytewise (`str`'s order), as the evaluator and SQLite's BINARY collation.
    String(Arc<str>),
}

/// The key of scalar `s` in a property of type `ty`, or `None` when `s` can never equal or
/// be compared with a value of that type (another type, `null`, NaN).
fn key_of(ty: IndexType, s: &Scalar) -> Option<Key> {
    match (s, ty) {
        (Scalar::String(t), IndexType::String) => Some(Key::String(Arc::from(t.as_str()))),
        (Scalar::Number(f), IndexType::Number) => Num::new(*f).map(Key::Number),
        (Scalar::Bool(b), IndexType::Boolean) => Some(Key::Bool(*b)),
        _ => None,
    }
}

/// The key of a filter operand as the evaluator sees it (strings cut to their indexed
/// prefix), or `None` when it has another type than `ty` or is NaN.
fn operand_key(ty: IndexType, s: &Scalar) -> Option<Key> {
    if !has_type(s, ty) {
        return None;
    }
    match s {
        Scalar::String(t) => key_of(ty, &Scalar::String(truncate_indexed(t).to_owned())),
        other => key_of(ty, other),
    }
}

/// What one vid holds for one property (a vid without an entry is absent).
#[derive(Debug, Clone)]
enum Slot {
    /// An explicit JSON `null`.
    Null,
    /// A value that no operand equals or bounds: NaN, `Scalar::Null`, or another type.
    Other,
    /// A value of the property's type.
    Value(Key),
}

/// The vids holding one value.
#[derive(Debug, Clone)]
enum Posting {
    One(u64),
    Many(RoaringTreemap),
}

impl Posting {
    fn add(&mut self, vid: u64) {
        match self {
            Posting::One(v) if *v == vid => {}
            Posting::One(v) => {
                let mut set = RoaringTreemap::new();
                set.insert(*v);
                set.insert(vid);
                *self = Posting::Many(set);
            }
            Posting::Many(set) => {
                set.insert(vid);
            }
        }
    }

    /// Removes `vid`; true when the posting is then empty.
    fn remove(&mut self, vid: u64) -> bool {
        match self {
            Posting::One(v) => *v == vid,
            Posting::Many(set) => {
                set.remove(vid);
                match set.len() {
                    0 => true,
                    1 => {
                        *self = Posting::One(set.min().unwrap_or(vid));
                        false
                    }
                    _ => false,
                }
            }
        }
    }

    /// Adds this posting's vids that are in `within` to `acc` (a `Many` is added whole;
    /// callers intersect with `within` afterwards).
    fn collect_into(&self, within: &RoaringTreemap, ones: &mut Vec<u64>, acc: &mut RoaringTreemap) {
        match self {
            Posting::One(v) => {
                if within.contains(*v) {
                    ones.push(*v);
                }
            }
            Posting::Many(set) => *acc |= set,
        }
    }

    /// Removes this posting's vids from `out`.
    fn subtract_from(&self, out: &mut RoaringTreemap) {
        match self {
            Posting::One(v) => {
                out.remove(*v);
            }
            Posting::Many(set) => *out -= set,
        }
    }
}

/// One metadata index: its type and the values of the vids it covers.
#[derive(Debug, Clone)]
struct Property {
    ty: IndexType,
    nulls: RoaringTreemap,
    others: RoaringTreemap,
    values: BTreeMap<Key, Posting>,
    slots: HashMap<u64, Slot>,
}

impl Property {
    fn new(ty: IndexType) -> Self {
        Property {
            ty,
            nulls: RoaringTreemap::new(),
            others: RoaringTreemap::new(),
            values: BTreeMap::new(),
            slots: HashMap::new(),
        }
    }

    fn remove(&mut self, vid: u64) {
        match self.slots.remove(&vid) {
            None => {}
            Some(Slot::Null) => {
                self.nulls.remove(vid);
            }
            Some(Slot::Other) => {
                self.others.remove(vid);
            }
            Some(Slot::Value(key)) => {
                if let Some(posting) = self.values.get_mut(&key) {
                    if posting.remove(vid) {
                        self.values.remove(&key);
                    }
                }
            }
        }
    }

    /// Sets `vid`'s value (replacing any it had).
    fn insert(&mut self, vid: u64, value: &Indexed) {
        self.remove(vid);
        let slot = match value {
            Indexed::Absent => return,
            Indexed::Null => {
                self.nulls.insert(vid);
                Slot::Null
            }
            Indexed::Value(s) => match key_of(self.ty, s) {
                None => {
                    self.others.insert(vid);
                    Slot::Other
                }
                Some(key) => {
                    // Share one allocation of a string between the map and the slots.
                    let key = match self.values.get_key_value(&key) {
                        Some((stored, _)) => stored.clone(),
                        None => key,
                    };
                    self.values
                        .entry(key.clone())
                        .and_modify(|p| p.add(vid))
                        .or_insert(Posting::One(vid));
                    Slot::Value(key)
                }
            },
        };
        self.slots.insert(vid, slot);
    }
}

/// A clause reduced to a set over one property: the vids it selects, possibly negated.
#[derive(Debug)]
enum Pred {
    /// `$eq`/`$in`: the vids equal to one of `keys` (sorted, deduplicated), or null when
    /// `null` is an operand.
    Atoms { null: bool, keys: Vec<Key> },
    /// A range with at least one bound of the property's type (never a boolean property).
    Range { lo: Bound<Key>, hi: Bound<Key> },
    /// Every vid holding a value (a range without bounds, which the parser never builds).
    AnyValue,
    /// No vid.
    Nothing,
}

impl Pred {
    fn of(ty: IndexType, condition: &Condition) -> (Pred, bool) {
        let atoms = |list: &[Scalar]| {
            let null = list.contains(&Scalar::Null);
            let mut keys: Vec<Key> = list.iter().filter_map(|s| operand_key(ty, s)).collect();
            keys.sort();
            keys.dedup();
            Pred::Atoms { null, keys }
        };
        match condition {
            Condition::Eq(s) => (atoms(std::slice::from_ref(s)), false),
            Condition::Ne(s) => (atoms(std::slice::from_ref(s)), true),
            Condition::In(list) => (atoms(list), false),
            Condition::Nin(list) => (atoms(list), true),
            Condition::Range { lower, upper } => (Pred::range(ty, lower, upper), false),
        }
    }

    fn range(
        ty: IndexType,
        lower: &Option<(Scalar, bool)>,
        upper: &Option<(Scalar, bool)>,
    ) -> Pred {
        if lower.is_none() && upper.is_none() {
            return Pred::AnyValue;
        }
        // The evaluator orders strings and numbers only: a bound on a boolean property, of
        // another type, or NaN, holds for no value.
        if ty == IndexType::Boolean {
            return Pred::Nothing;
        }
        let bound = |b: &Option<(Scalar, bool)>| -> Option<Bound<Key>> {
            match b {
                None => Some(Bound::Unbounded),
                Some((s, inclusive)) => operand_key(ty, s).map(|k| {
                    if *inclusive {
                        Bound::Included(k)
                    } else {
                        Bound::Excluded(k)
                    }
                }),
            }
        };
        let (Some(lo), Some(hi)) = (bound(lower), bound(upper)) else {
            return Pred::Nothing;
        };
        // BTreeMap::range panics on an empty or inverted range; such a range selects nothing.
        if let (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) =
            (&lo, &hi)
        {
            let both_inclusive =
                matches!(lo, Bound::Included(_)) && matches!(hi, Bound::Included(_));
            match a.cmp(b) {
                Ordering::Greater => return Pred::Nothing,
                Ordering::Equal if !both_inclusive => return Pred::Nothing,
                _ => {}
            }
        }
        Pred::Range { lo, hi }
    }

    /// Whether a vid holding `slot` (`None`: absent) is in the (positive) set.
    fn holds(&self, slot: Option<&Slot>) -> bool {
        match (self, slot) {
            (Pred::Atoms { null, .. }, Some(Slot::Null)) => *null,
            (Pred::Atoms { keys, .. }, Some(Slot::Value(k))) => keys.binary_search(k).is_ok(),
            (Pred::Range { lo, hi }, Some(Slot::Value(k))) => {
                let above = match lo {
                    Bound::Unbounded => true,
                    Bound::Included(b) => k >= b,
                    Bound::Excluded(b) => k > b,
                };
                let below = match hi {
                    Bound::Unbounded => true,
                    Bound::Included(b) => k <= b,
                    Bound::Excluded(b) => k < b,
                };
                above && below
            }
            (Pred::AnyValue, Some(Slot::Value(_) | Slot::Other)) => true,
            _ => false,
        }
    }
}

/// How [`FilterIndex::candidates_with`] evaluates each clause. Every strategy gives the same
/// answer; they differ in cost.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evaluation {
    /// Per clause: probe vid by vid when the candidates so far are few compared with the
    /// property's entries, else set algebra over the postings.
    Auto,
    /// Always set algebra over the postings.
    Sets,
    /// Always check each remaining candidate's value.
    Probe,
}

/// Probe vid by vid when the candidates so far are at most 1/PROBE_RATIO of the vids the
/// property covers: a probe costs one hash lookup per candidate, a set evaluation up to one
/// step per vid in the selected postings.
const PROBE_RATIO: u64 = 16;

/// The in-memory inverted index over the metadata-indexed properties of one vector index.
/// See the [module documentation](self).
#[derive(Default, Clone)]
pub struct FilterIndex {
    properties: BTreeMap<String, Property>,
}

impl fmt::Debug for FilterIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The values are not printed: they can be large, and they are the user's data.
        let mut map = f.debug_map();
        for (name, p) in &self.properties {
            map.entry(
                name,
                &format_args!(
                    "{:?}: {} vids, {} distinct values, {} null",
                    p.ty,
                    p.slots.len(),
                    p.values.len(),
                    p.nulls.len()
                ),
            );
        }
        map.finish()
    }
}

impl FilterIndex {
    /// An index over `properties` (name and type), holding no vid yet.
    pub fn new(properties: &[(String, IndexType)]) -> Self {
        let mut index = FilterIndex::default();
        for (name, ty) in properties {
            index.add_property(name, *ty);
        }
        index
    }

    /// Adds a metadata index on `name`, covering no vid (as in Vectorize, vectors already
    /// stored are not indexed). A property that already exists with the same type is left
    /// as it is; with another type it starts empty.
    pub fn add_property(&mut self, name: &str, ty: IndexType) {
        match self.properties.get(name) {
            Some(p) if p.ty == ty => {}
            _ => {
                self.properties.insert(name.to_owned(), Property::new(ty));
            }
        }
    }

    /// Drops the metadata index on `name` and every value it held (no-op if there is none).
    pub fn remove_property(&mut self, name: &str) {
        self.properties.remove(name);
    }

    /// The type of the metadata index on `name`, if there is one.
    pub fn property_type(&self, name: &str) -> Option<IndexType> {
        self.properties.get(name).map(|p| p.ty)
    }

    /// The metadata indexes, by name.
    pub fn properties(&self) -> impl Iterator<Item = (&str, IndexType)> + '_ {
        self.properties.iter().map(|(n, p)| (n.as_str(), p.ty))
    }

    /// Sets vid's value of `property` (replacing the one it had), as loaded from a
    /// `d1vec_meta_values` row or computed by [`indexed_value`]. [`Indexed::Absent`] clears
    /// it. Strings are taken as given: the write path stores them already cut to 64 bytes.
    /// A property without a metadata index is ignored.
    pub fn insert_value(&mut self, vid: u64, property: &str, value: &Indexed) {
        if let Some(p) = self.properties.get_mut(property) {
            p.insert(vid, value);
        }
    }

    /// Sets vid's value of `property` from a `d1vec_meta_values.val` column; see
    /// [`indexed_from_sql`].
    pub fn insert_row(&mut self, vid: u64, property: &str, val: ValueRef<'_>) {
        if let Some(p) = self.properties.get_mut(property) {
            let value = indexed_from_sql(p.ty, val);
            p.insert(vid, &value);
        }
    }

    /// Indexes vid's metadata for every metadata index, exactly as the write path derives
    /// its `d1vec_meta_values` rows ([`indexed_value`]), replacing whatever vid held.
    pub fn insert_metadata(&mut self, vid: u64, metadata: Option<&Value>) {
        for (name, p) in self.properties.iter_mut() {
            p.insert(vid, &indexed_value(metadata, name, p.ty));
        }
    }

    /// Removes every property's entry of `vid` (no-op for a vid it does not hold).
    pub fn remove(&mut self, vid: u64) {
        for p in self.properties.values_mut() {
            p.remove(vid);
        }
    }

    /// Exactly the vids of `universe` that the reference evaluator ([`super::eval::matches`])
    /// passes, given the values this index holds. A filter on a property without a metadata
    /// index is the same error the evaluator and the SQL compiler give (the first such
    /// property in key order).
    ///
    /// Work is bounded by the filter's operands (one map lookup each) and by the vids of
    /// `universe` and of the postings the filter selects; it allocates at most a few bitmaps
    /// no larger than those.
    pub fn candidates(
        &self,
        filter: &Filter,
        universe: &RoaringTreemap,
    ) -> Result<RoaringTreemap, FilterError> {
        self.candidates_with(filter, universe, Evaluation::Auto)
    }

    /// [`FilterIndex::candidates`] with a chosen evaluation strategy (for tests).
    #[doc(hidden)]
    pub fn candidates_with(
        &self,
        filter: &Filter,
        universe: &RoaringTreemap,
        strategy: Evaluation,
    ) -> Result<RoaringTreemap, FilterError> {
        let mut clauses = Vec::with_capacity(filter.clauses.len());
        for (property, condition) in &filter.clauses {
            let p = self
                .properties
                .get(property)
                .ok_or_else(|| FilterError::missing_index(property))?;
            let (pred, negated) = Pred::of(p.ty, condition);
            clauses.push((p, pred, negated));
        }
        // Positive clauses first: they shrink the set the negations then probe or subtract.
        clauses.sort_by_key(|(_, _, negated)| *negated);
        let mut out = universe.clone();
        for (p, pred, negated) in &clauses {
            if out.is_empty() {
                break;
            }
            let probe = match strategy {
                Evaluation::Probe => true,
                Evaluation::Sets => false,
                Evaluation::Auto => out.len().saturating_mul(PROBE_RATIO) <= p.slots.len() as u64,
            };
            if probe {
                out = probe_clause(p, pred, *negated, &out);
            } else {
                set_clause(p, pred, *negated, &mut out);
            }
        }
        Ok(out)
    }
}

/// The vids of `out` passing one clause, checked one by one.
fn probe_clause(p: &Property, pred: &Pred, negated: bool, out: &RoaringTreemap) -> RoaringTreemap {
    // `out` iterates in ascending order, so the filtered sequence is sorted.
    let kept = out
        .iter()
        .filter(|vid| pred.holds(p.slots.get(vid)) != negated);
    RoaringTreemap::from_sorted_iter(kept).unwrap_or_default()
}

/// Narrows `out` to the vids passing one clause, by set algebra over the postings.
fn set_clause(p: &Property, pred: &Pred, negated: bool, out: &mut RoaringTreemap) {
    if negated {
        // Only `$ne`/`$nin` are negated, and they reduce to atoms.
        if let Pred::Atoms { null, keys } = pred {
            if *null {
                *out -= &p.nulls;
            }
            for key in keys {
                if let Some(posting) = p.values.get(key) {
                    posting.subtract_from(out);
                }
            }
        }
        return;
    }
    let mut ones = Vec::new();
    let mut acc = RoaringTreemap::new();
    match pred {
        Pred::Nothing => {}
        Pred::Atoms { null, keys } => {
            if *null {
                acc |= &p.nulls;
            }
            for key in keys {
                if let Some(posting) = p.values.get(key) {
                    posting.collect_into(out, &mut ones, &mut acc);
                }
            }
        }
        Pred::Range { lo, hi } => {
            for posting in p.values.range((lo.clone(), hi.clone())).map(|(_, v)| v) {
                posting.collect_into(out, &mut ones, &mut acc);
            }
        }
        Pred::AnyValue => {
            acc |= &p.others;
            for posting in p.values.values() {
                posting.collect_into(out, &mut ones, &mut acc);
            }
        }
    }
    ones.sort_unstable();
    ones.dedup();
    acc |= RoaringTreemap::from_sorted_iter(ones).unwrap_or_default();
    *out &= &acc;
}

/// The indexed value a `d1vec_meta_values.val` column holds for a property of type `ty`, the
/// inverse of how the write path stores it (`NULL` for a JSON null, TEXT for a string,
/// REAL for a number, INTEGER 0/1 for a boolean; an INTEGER is also read as a number).
/// A column of another type than `ty` is [`Indexed::Absent`], as a metadata value of another
/// type is; so is TEXT that is not UTF-8.
pub fn indexed_from_sql(ty: IndexType, val: ValueRef<'_>) -> Indexed {
    match (val, ty) {
        (ValueRef::Null, _) => Indexed::Null,
        (ValueRef::Text(t), IndexType::String) => match std::str::from_utf8(t) {
            Ok(s) => Indexed::Value(Scalar::String(s.to_owned())),
            Err(_) => Indexed::Absent,
        },
        (ValueRef::Real(f), IndexType::Number) => Indexed::Value(Scalar::Number(f)),
        (ValueRef::Integer(i), IndexType::Number) => Indexed::Value(Scalar::Number(i as f64)),
        (ValueRef::Integer(i), IndexType::Boolean) => Indexed::Value(Scalar::Bool(i != 0)),
        _ => Indexed::Absent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectorize::filter::eval::matches;
    use crate::vectorize::filter::parse::parse_filter;
    use proptest::prelude::*;
    use serde_json::json;

    const ALL: [Evaluation; 3] = [Evaluation::Auto, Evaluation::Sets, Evaluation::Probe];

    fn types() -> Vec<(String, IndexType)> {
        vec![
            ("s".into(), IndexType::String),
            ("n".into(), IndexType::Number),
            ("b".into(), IndexType::Boolean),
            ("o.k".into(), IndexType::Number),
        ]
    }

    /// The oracle: the vids of `universe` whose metadata the evaluator passes.
    fn oracle(
        metas: &BTreeMap<u64, Option<Value>>,
        filter: &Filter,
        universe: &RoaringTreemap,
    ) -> Result<RoaringTreemap, FilterError> {
        let types = types();
        let ty = |p: &str| types.iter().find(|(n, _)| n == p).map(|(_, t)| *t);
        let mut out = RoaringTreemap::new();
        for vid in universe.iter() {
            let meta = metas.get(&vid).cloned().flatten();
            let lookup = |p: &str| match metas.get(&vid) {
                Some(_) => indexed_value(meta.as_ref(), p, ty(p).unwrap_or(IndexType::String)),
                None => Indexed::Absent,
            };
            if matches(filter, &ty, &lookup)? {
                out.insert(vid);
            }
        }
        Ok(out)
    }

    #[track_caller]
    fn check(index: &FilterIndex, metas: &BTreeMap<u64, Option<Value>>, filter: Value) {
        let filter = parse_filter(&filter).unwrap();
        let mut universe: RoaringTreemap = metas.keys().copied().collect();
        universe.insert(999); // a vid the index has never seen
        let want = oracle(metas, &filter, &universe);
        for s in ALL {
            assert_eq!(
                index.candidates_with(&filter, &universe, s),
                want,
                "{filter:?} {s:?}"
            );
        }
    }

    fn sample() -> (FilterIndex, BTreeMap<u64, Option<Value>>) {
        let long = "p".repeat(70);
        let metas: BTreeMap<u64, Option<Value>> = [
            json!({"s": "x", "n": 1, "b": true}),
            json!({"s": long, "n": -0.0, "b": false, "o": {"k": 2.5}}),
            json!({"s": null, "n": 0, "b": null, "o": {"k": null}}),
            json!({"s": 3, "n": "3", "b": 1, "o": 1}),
            json!({"s": "é", "n": 1e300, "o": {"k": [1]}}),
            json!({"s": "x", "n": 1.0}),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, m)| (i as u64 * 7 + 1, Some(m)))
        .chain([(100, None)])
        .collect();
        let mut index = FilterIndex::new(&types());
        for (vid, m) in &metas {
            index.insert_metadata(*vid, m.as_ref());
        }
        (index, metas)
    }

    #[test]
    fn every_operator_agrees_with_the_evaluator() {
        let (index, metas) = sample();
        let long = "p".repeat(80);
        for f in [
            json!({"s": "x"}),
            json!({"s": long}),
            json!({"s": {"$ne": "x"}}),
            json!({"s": null}),
            json!({"s": {"$ne": null}}),
            json!({"s": {"$in": ["x", "é", 3, null]}}),
            json!({"s": {"$nin": ["x", null]}}),
            json!({"s": {"$nin": []}}),
            json!({"s": {"$in": []}}),
            json!({"s": {"$gte": "p", "$lt": "q"}}),
            json!({"s": {"$gt": "x"}}),
            json!({"s": {"$gt": 1}}),
            json!({"s": {"$gt": "z", "$lt": "a"}}),
            json!({"s": {"$gt": "x", "$lt": "x"}}),
            json!({"s": {"$gte": "x", "$lte": "x"}}),
            json!({"n": 0}),
            json!({"n": -0.0}),
            json!({"n": {"$lte": -0.0}}),
            json!({"n": {"$gt": -0.0}}),
            json!({"n": 1}),
            json!({"n": {"$ne": 1}}),
            json!({"n": {"$gte": 1, "$lt": 1e300}}),
            json!({"n": "3"}),
            json!({"b": true}),
            json!({"b": {"$ne": true}}),
            json!({"b": {"$gt": 0}}),
            json!({"b": {"$in": [true, false]}}),
            json!({"o.k": 2.5}),
            json!({"o.k": null}),
            json!({"o.k": {"$nin": [2.5]}}),
            json!({"s": "x", "n": {"$gte": 1}, "b": {"$ne": false}}),
        ] {
            check(&index, &metas, f);
        }
    }

    #[test]
    fn unindexed_properties_are_the_evaluator_s_error() {
        let (index, _) = sample();
        let filter = parse_filter(&json!({"a": 1, "s": "x", "z": 2})).unwrap();
        let err = index
            .candidates(&filter, &RoaringTreemap::new())
            .unwrap_err();
        assert!(err.is_missing_index());
        assert_eq!(err.path, "filter.a");
    }

    #[test]
    fn removal_and_replacement_leave_no_trace() {
        let (mut index, mut metas) = sample();
        let vids: Vec<u64> = metas.keys().copied().collect();
        for vid in vids.iter().step_by(2) {
            index.remove(*vid);
            metas.remove(vid);
        }
        index.insert_metadata(8, Some(&json!({"s": "y", "n": 1})));
        metas.insert(8, Some(json!({"s": "y", "n": 1})));
        for f in [
            json!({"s": "x"}),
            json!({"s": {"$ne": "x"}}),
            json!({"n": 1}),
            json!({"n": {"$gte": 0}}),
            json!({"s": null}),
        ] {
            check(&index, &metas, f);
        }
        for vid in vids {
            index.remove(vid);
        }
        for p in index.properties.values() {
            assert!(p.slots.is_empty() && p.values.is_empty());
            assert!(p.nulls.is_empty() && p.others.is_empty());
        }
    }

    #[test]
    fn odd_values_given_directly_match_only_negations() {
        // NaN, a value of another type, Scalar::Null inside a value: never equal, never in a
        // range; only $ne/$nin (and a range without bounds, which parse never builds).
        let mut index = FilterIndex::new(&[("n".to_owned(), IndexType::Number)]);
        let odd = [
            Indexed::Value(Scalar::Number(f64::NAN)),
            Indexed::Value(Scalar::String("1".into())),
            Indexed::Value(Scalar::Null),
        ];
        for (vid, v) in odd.iter().enumerate() {
            index.insert_value(vid as u64, "n", v);
        }
        let universe: RoaringTreemap = (0..4).collect();
        let ty = |_: &str| Some(IndexType::Number);
        let conditions = [
            Condition::Eq(Scalar::Number(f64::NAN)),
            Condition::Ne(Scalar::Number(f64::NAN)),
            Condition::Eq(Scalar::Null),
            Condition::Nin(vec![Scalar::Number(1.0)]),
            Condition::Range {
                lower: Some((Scalar::Number(f64::NAN), true)),
                upper: None,
            },
            Condition::Range {
                lower: None,
                upper: Some((Scalar::Number(f64::INFINITY), true)),
            },
            Condition::Range {
                lower: None,
                upper: None,
            },
        ];
        for c in conditions {
            let filter = Filter {
                clauses: [("n".to_owned(), c)].into_iter().collect(),
            };
            let want: RoaringTreemap = universe
                .iter()
                .filter(|vid| {
                    let v = odd.get(*vid as usize).cloned().unwrap_or(Indexed::Absent);
                    matches(&filter, &ty, &|_| v.clone()).unwrap()
                })
                .collect();
            for s in ALL {
                assert_eq!(
                    index.candidates_with(&filter, &universe, s).unwrap(),
                    want,
                    "{filter:?} {s:?}"
                );
            }
        }
    }

    #[test]
    fn rows_decode_as_the_write_path_encodes() {
        use crate::vectorize::store::scalar_to_sql;
        use rusqlite::types::Value as Sql;
        for (ty, s) in [
            (IndexType::String, Scalar::String("é".into())),
            (IndexType::Number, Scalar::Number(-2.5)),
            (IndexType::Boolean, Scalar::Bool(true)),
            (IndexType::Boolean, Scalar::Bool(false)),
        ] {
            let sql = scalar_to_sql(&s);
            assert_eq!(indexed_from_sql(ty, (&sql).into()), Indexed::Value(s));
        }
        assert_eq!(
            indexed_from_sql(IndexType::Number, ValueRef::Null),
            Indexed::Null
        );
        assert_eq!(
            indexed_from_sql(IndexType::Number, ValueRef::Integer(3)),
            Indexed::Value(Scalar::Number(3.0))
        );
        let text = Sql::Text("x".into());
        assert_eq!(
            indexed_from_sql(IndexType::Number, (&text).into()),
            Indexed::Absent
        );
        assert_eq!(
            indexed_from_sql(IndexType::String, ValueRef::Text(&[0xff])),
            Indexed::Absent
        );
    }

    #[test]
    fn debug_shows_counts_not_values() {
        let (index, _) = sample();
        let shown = format!("{index:?}");
        assert!(shown.contains("\"s\": String: "), "{shown}");
        assert!(!shown.contains("é"), "{shown}");
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            prop::sample::select(vec![-1.5, -0.0, 0.0, 1.0, 2.0, 1e300]).prop_map(|f| json!(f)),
            (0i64..4).prop_map(|i| json!(i)),
            prop::sample::select(vec!["", "a", "b", "é", "pp"]).prop_map(|s| json!(s)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Small random data and clauses; every strategy equals the evaluator, and so does
        /// the index after random removals.
        #[test]
        fn strategies_agree_with_the_evaluator(
            values in prop::collection::vec(
                prop::collection::btree_map(prop::sample::select(vec!["s", "n", "b"]), scalar(), 0..4),
                0..40),
            ops in prop::collection::vec(
                (prop::sample::select(vec!["s", "n", "b"]),
                 prop::sample::select(vec!["$eq", "$ne", "$in", "$nin", "$lt", "$lte", "$gt", "$gte"]),
                 scalar(), scalar()),
                1..4),
            removed in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
        ) {
            let mut metas: BTreeMap<u64, Option<Value>> = values
                .into_iter()
                .enumerate()
                .map(|(i, m)| (i as u64 * 3, Some(json!(m))))
                .collect();
            let mut index = FilterIndex::new(&types());
            for (vid, m) in &metas {
                index.insert_metadata(*vid, m.as_ref());
            }
            let mut filter = serde_json::Map::new();
            for (p, op, a, b) in ops {
                let operand = match op {
                    "$in" | "$nin" => json!([a, b]),
                    "$lt" | "$lte" | "$gt" | "$gte" if !(a.is_string() || a.is_number()) => json!(1),
                    _ => a,
                };
                filter.insert(p.to_owned(), json!({ op: operand }));
            }
            let filter = Value::Object(filter);
            check(&index, &metas, filter.clone());
            let vids: Vec<u64> = metas.keys().copied().collect();
            for r in removed {
                if !vids.is_empty() {
                    let vid = vids[r.index(vids.len())];
                    index.remove(vid);
                    metas.remove(&vid);
                }
            }
            check(&index, &metas, filter);
        }
    }
}
