//! The reference evaluator: whether one vector matches a [`Filter`], computed the plain way.
//!
//! This is the oracle the SQL of [`super::to_sql`] is tested against, so it favours being
//! obviously right over being fast. The semantics (see the design note):
//! - each indexed property of a vector is [`Indexed::Absent`], [`Indexed::Null`] (an explicit
//!   JSON `null`) or [`Indexed::Value`] of the index's type, strings cut to their 64-byte
//!   indexed prefix;
//! - string operands are compared by their indexed prefix too, so strings that share their
//!   first 64 bytes are equal to every operator;
//! - `$eq v`: the value equals `v` (same type), or is `Null` when `v` is `null`; `$ne` is its
//!   negation, so a vector without the key matches `$ne`; `$in` is `$eq` any element, `$nin`
//!   its negation;
//! - ranges hold for a value of the operand's type with every bound satisfied (strings
//!   bytewise, numbers as f64);
//! - an operand whose type differs from the index type never equals anything.

use std::cmp::Ordering;

use serde_json::Value;

use super::parse::{Condition, Filter, FilterError, Scalar};

/// The indexed representation of one vector's metadata for one property.
#[derive(Debug, Clone, PartialEq)]
pub enum Indexed {
    /// No row: the key is missing, holds an array, an object or a value of another type than
    /// the index's, or the vector was written before the metadata index existed.
    Absent,
    /// The key holds an explicit JSON `null`.
    Null,
    /// A value of the index's type (strings already cut to 64 bytes).
    Value(Scalar),
}

/// Metadata index types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexType {
    /// Strings, indexed by their first 64 bytes (cut back to a UTF-8 boundary).
    String,
    /// Numbers, as f64.
    Number,
    /// Booleans.
    Boolean,
}

/// How many bytes of a string a metadata index keeps.
pub const INDEXED_STRING_BYTES: usize = 64;

/// Truncates a string to at most 64 bytes at a char boundary.
pub fn truncate_indexed(s: &str) -> &str {
    if s.len() <= INDEXED_STRING_BYTES {
        return s;
    }
    let mut end = INDEXED_STRING_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Looks up a dotted path in metadata JSON and returns its indexed representation for an
/// index of type `ty` (strings truncated to the longest well-formed UTF-8 prefix <= 64 bytes).
///
/// Each `.`-separated segment of `path` steps into an object; anything else on the way, or
/// a missing key, gives [`Indexed::Absent`].
pub fn indexed_value(metadata: Option<&Value>, path: &str, ty: IndexType) -> Indexed {
    let mut at = match metadata {
        Some(m) => m,
        None => return Indexed::Absent,
    };
    for segment in path.split('.') {
        match at.get(segment) {
            Some(next) => at = next,
            None => return Indexed::Absent,
        }
    }
    match (at, ty) {
        (Value::Null, _) => Indexed::Null,
        (Value::String(s), IndexType::String) => {
            Indexed::Value(Scalar::String(truncate_indexed(s).to_owned()))
        }
        (Value::Number(n), IndexType::Number) => match n.as_f64() {
            Some(f) => Indexed::Value(Scalar::Number(f)),
            None => Indexed::Absent,
        },
        (Value::Bool(b), IndexType::Boolean) => Indexed::Value(Scalar::Bool(*b)),
        _ => Indexed::Absent,
    }
}

/// Whether operand `s` has type `ty` (`null` has none).
pub fn has_type(s: &Scalar, ty: IndexType) -> bool {
    matches!(
        (s, ty),
        (Scalar::String(_), IndexType::String)
            | (Scalar::Number(_), IndexType::Number)
            | (Scalar::Bool(_), IndexType::Boolean)
    )
}

/// The operand as the index sees it: strings cut to their indexed prefix.
fn as_indexed(s: &Scalar) -> Scalar {
    match s {
        Scalar::String(t) => Scalar::String(truncate_indexed(t).to_owned()),
        other => other.clone(),
    }
}

/// `$eq operand` on one indexed value.
fn equals(ty: IndexType, value: &Indexed, operand: &Scalar) -> bool {
    match operand {
        Scalar::Null => *value == Indexed::Null,
        _ if has_type(operand, ty) => *value == Indexed::Value(as_indexed(operand)),
        _ => false,
    }
}

/// How `value` compares with `operand`, when both are strings or both are numbers.
fn compare(value: &Scalar, operand: &Scalar) -> Option<Ordering> {
    match (value, operand) {
        (Scalar::String(a), Scalar::String(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        (Scalar::Number(a), Scalar::Number(b)) => a.partial_cmp(b),
        _ => None,
    }
}

/// Whether `value` satisfies one bound; `below` says the bound is a lower one.
fn within(ty: IndexType, value: &Scalar, bound: &(Scalar, bool), below: bool) -> bool {
    let (operand, inclusive) = bound;
    if !has_type(operand, ty) {
        return false;
    }
    match compare(value, &as_indexed(operand)) {
        Some(Ordering::Equal) => *inclusive,
        Some(Ordering::Greater) => below,
        Some(Ordering::Less) => !below,
        None => false,
    }
}

/// Whether one indexed value satisfies `condition` on a property of type `ty`.
pub fn condition_holds(ty: IndexType, condition: &Condition, value: &Indexed) -> bool {
    match condition {
        Condition::Eq(s) => equals(ty, value, s),
        Condition::Ne(s) => !equals(ty, value, s),
        Condition::In(list) => list.iter().any(|s| equals(ty, value, s)),
        Condition::Nin(list) => !list.iter().any(|s| equals(ty, value, s)),
        Condition::Range { lower, upper } => {
            let Indexed::Value(v) = value else {
                return false;
            };
            lower.as_ref().is_none_or(|b| within(ty, v, b, true))
                && upper.as_ref().is_none_or(|b| within(ty, v, b, false))
        }
    }
}

/// Whether a vector whose indexed values are given by `lookup(property)` matches `filter`,
/// given the index type of each property (`types`). Returns Err naming the first property
/// (in key order) with no metadata index, whatever the vector holds.
pub fn matches(
    filter: &Filter,
    types: &dyn Fn(&str) -> Option<IndexType>,
    lookup: &dyn Fn(&str) -> Indexed,
) -> Result<bool, FilterError> {
    let mut typed = Vec::with_capacity(filter.clauses.len());
    for (property, condition) in &filter.clauses {
        let ty = types(property).ok_or_else(|| FilterError::missing_index(property))?;
        typed.push((property, ty, condition));
    }
    Ok(typed
        .into_iter()
        .all(|(property, ty, condition)| condition_holds(ty, condition, &lookup(property))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn truncation_stops_at_a_char_boundary() {
        let ascii = "a".repeat(70);
        assert_eq!(truncate_indexed(&ascii).len(), 64);
        // 63 ASCII bytes then a 2-byte char spanning bytes 63..65: the char goes.
        let s = format!("{}é", "a".repeat(63));
        assert_eq!(truncate_indexed(&s), "a".repeat(63));
        // A 2-byte char ending exactly at byte 64 stays.
        let s = format!("{}éz", "a".repeat(62));
        assert_eq!(truncate_indexed(&s), format!("{}é", "a".repeat(62)));
        // A 4-byte char over the boundary.
        let s = format!("{}😀", "a".repeat(61));
        assert_eq!(truncate_indexed(&s), "a".repeat(61));
        assert_eq!(truncate_indexed("short"), "short");
    }

    #[test]
    fn indexed_values_follow_dotted_paths_and_types() {
        let m = json!({"a": {"b": 3, "n": null}, "s": "x", "t": true, "l": [1], "o": {}});
        let m = Some(&m);
        assert_eq!(
            indexed_value(m, "a.b", IndexType::Number),
            Indexed::Value(Scalar::Number(3.0))
        );
        assert_eq!(indexed_value(m, "a.b", IndexType::String), Indexed::Absent);
        assert_eq!(indexed_value(m, "a.n", IndexType::Boolean), Indexed::Null);
        assert_eq!(indexed_value(m, "a", IndexType::Number), Indexed::Absent);
        assert_eq!(
            indexed_value(m, "a.b.c", IndexType::Number),
            Indexed::Absent
        );
        assert_eq!(indexed_value(m, "s.x", IndexType::String), Indexed::Absent);
        assert_eq!(
            indexed_value(m, "t", IndexType::Boolean),
            Indexed::Value(Scalar::Bool(true))
        );
        assert_eq!(indexed_value(m, "l", IndexType::Number), Indexed::Absent);
        assert_eq!(indexed_value(m, "o", IndexType::String), Indexed::Absent);
        assert_eq!(indexed_value(m, "zz", IndexType::String), Indexed::Absent);
        assert_eq!(indexed_value(None, "a", IndexType::String), Indexed::Absent);
        // An array is not an object: "0" is not an index into it.
        let arr = json!({"l": ["x"]});
        assert_eq!(
            indexed_value(Some(&arr), "l.0", IndexType::String),
            Indexed::Absent
        );
    }

    #[test]
    fn negations_match_missing_keys_and_mismatched_types() {
        let ty = IndexType::Number;
        let one = Scalar::Number(1.0);
        let ne = Condition::Ne(one.clone());
        assert!(condition_holds(ty, &ne, &Indexed::Absent));
        assert!(condition_holds(ty, &ne, &Indexed::Null));
        assert!(!condition_holds(ty, &ne, &Indexed::Value(one.clone())));
        let ne_str = Condition::Ne(Scalar::String("1".into()));
        assert!(condition_holds(ty, &ne_str, &Indexed::Value(one.clone())));
        assert!(!condition_holds(
            ty,
            &Condition::In(vec![]),
            &Indexed::Value(one.clone())
        ));
        assert!(condition_holds(
            ty,
            &Condition::Nin(vec![]),
            &Indexed::Absent
        ));
        let eq_null = Condition::Eq(Scalar::Null);
        assert!(condition_holds(ty, &eq_null, &Indexed::Null));
        assert!(!condition_holds(ty, &eq_null, &Indexed::Absent));
    }

    #[test]
    fn ranges_compare_indexed_prefixes_bytewise() {
        let ty = IndexType::String;
        let v = |s: &str| Indexed::Value(Scalar::String(s.to_owned()));
        let prefix = Condition::Range {
            lower: Some((Scalar::String("net".into()), true)),
            upper: Some((Scalar::String("neu".into()), false)),
        };
        assert!(condition_holds(ty, &prefix, &v("net")));
        assert!(condition_holds(ty, &prefix, &v("network")));
        assert!(!condition_holds(ty, &prefix, &v("neu")));
        assert!(!condition_holds(ty, &prefix, &v("Network")));
        assert!(!condition_holds(ty, &prefix, &Indexed::Null));
        // Bytewise: 'é' (0xC3..) sorts after 'z'.
        let gt_z = Condition::Range {
            lower: Some((Scalar::String("z".into()), false)),
            upper: None,
        };
        assert!(condition_holds(ty, &gt_z, &v("é")));
        // A long operand is compared by its 64-byte prefix.
        let long = "p".repeat(70);
        let lte = Condition::Range {
            lower: None,
            upper: Some((Scalar::String(long.clone()), false)),
        };
        assert!(!condition_holds(ty, &lte, &v(truncate_indexed(&long))));
        assert!(condition_holds(
            ty,
            &Condition::Eq(Scalar::String(long.clone())),
            &v(truncate_indexed(&long))
        ));
    }

    #[test]
    fn unindexed_properties_fail_before_evaluation() {
        let filter = super::super::parse::parse_filter(&json!({"a": 1, "b": 2, "c": 3})).unwrap();
        let types = |p: &str| (p == "a").then_some(IndexType::Number);
        let err = matches(&filter, &types, &|_| Indexed::Absent).unwrap_err();
        assert!(err.is_missing_index());
        assert_eq!(err.path, "filter.b");
    }
}
