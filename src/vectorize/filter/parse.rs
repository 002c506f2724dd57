//! Parsing and validation of Vectorize metadata filters into a [`Filter`].
//!
//! The grammar (Vectorize's documented rules; d1vec rejects what the service documents as
//! invalid, with an error naming the offending part):
//! - the filter is a non-empty JSON object whose compact serialisation is shorter than
//!   [`MAX_FILTER_BYTES`];
//! - each key is a property path: non-empty, at most [`MAX_KEY_CHARS`] characters, without
//!   `"`, not starting with `$`, and with `.` only as the separator of non-empty segments
//!   (`pandas.nice` addresses `{"pandas": {"nice": ..}}`);
//! - each value is a string, number, boolean or `null` (implicit `$eq`), or a non-empty
//!   operator object over `$eq $ne $in $nin $lt $lte $gt $gte`;
//! - `$eq`/`$ne` take a string, number, boolean or `null`; `$in`/`$nin` an array of those
//!   (possibly empty); the range operators a string or a number;
//! - one operator object holds one operator, or one lower bound (`$gt`/`$gte`) with one upper
//!   bound (`$lt`/`$lte`); every other combination is rejected.
//!
//! Keys are ANDed. Keys and operators are checked in sorted order, so the error reported for
//! a filter with several faults is always the same one.

use std::collections::BTreeMap;
use std::io;

use serde_json::{Map, Value};

/// A filter operand value.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// JSON `null`: matches an explicit `null` in the metadata only.
    Null,
    /// A boolean.
    Bool(bool),
    /// A number, as the f64 JSON gives.
    Number(f64),
    /// A string, as written in the filter (not truncated; evaluation compares its 64-byte
    /// indexed prefix).
    String(String),
}

/// One condition on one property.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `{k: v}` or `{k: {"$eq": v}}`.
    Eq(Scalar),
    /// `{k: {"$ne": v}}`: the negation of `$eq` (a vector without the key matches).
    Ne(Scalar),
    /// `{k: {"$in": [..]}}`: `$eq` any element (an empty list matches nothing).
    In(Vec<Scalar>),
    /// `{k: {"$nin": [..]}}`: the negation of `$in` (an empty list matches everything).
    Nin(Vec<Scalar>),
    /// `$gt`/`$gte` and/or `$lt`/`$lte`: each bound is its operand (a string or number) and
    /// whether it is inclusive. The parser always sets at least one bound.
    Range {
        /// `$gt` (`false`) or `$gte` (`true`).
        lower: Option<(Scalar, bool)>,
        /// `$lt` (`false`) or `$lte` (`true`).
        upper: Option<(Scalar, bool)>,
    },
}

/// A parsed, validated filter: property path -> condition, ANDed (keys sorted, so every
/// use of a filter is deterministic).
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// Each property path and its condition.
    pub clauses: BTreeMap<String, Condition>,
}

/// Why a filter was rejected; `path` is the JSON path of the offending part, e.g.
/// `filter.price.$gt` (keys that are empty or hold unusual characters are written as
/// `filter["..."]`, long ones abbreviated).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid filter at `{path}`: {reason}")]
pub struct FilterError {
    /// Where: `filter`, `filter.<key>`, `filter.<key>.<op>` or `filter.<key>.<op>[i]`.
    pub path: String,
    /// What is wrong, and what would be accepted.
    pub reason: String,
}

/// The start of [`FilterError::reason`] for a filter on a property without a metadata index.
const MISSING_INDEX: &str = "no metadata index on property";

impl FilterError {
    /// An error at `path`.
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        FilterError {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// The error for a filter on `property`, which has no metadata index (code 40031 rather
    /// than 40030; see [`FilterError::is_missing_index`]).
    pub fn missing_index(property: &str) -> Self {
        FilterError::new(
            key_path(property),
            format!(
                "{MISSING_INDEX} `{property}`; create one first (type string, number or boolean; \
                 Vectorize: `wrangler vectorize create-metadata-index <index> \
                 --property-name={property} --type=<type>`), then re-upsert the vectors to filter, \
                 since metadata indexes only cover vectors written after their creation"
            ),
        )
    }

    /// Whether this error is a filter on a property without a metadata index (as opposed to
    /// a filter that breaks the grammar).
    pub fn is_missing_index(&self) -> bool {
        self.reason.starts_with(MISSING_INDEX)
    }
}

/// The compact JSON of a filter must be shorter than this many bytes.
pub const MAX_FILTER_BYTES: usize = 2048;
/// A filter key (property path) may hold at most this many characters.
pub const MAX_KEY_CHARS: usize = 512;

/// The eight operators, in the order error messages list them.
const OPERATORS: [&str; 8] = ["$eq", "$ne", "$in", "$nin", "$lt", "$lte", "$gt", "$gte"];

/// The path of filter key `key`: `filter.key`, or `filter["key"]` (JSON-quoted) when the key
/// is empty or holds `"`, brackets, whitespace or control characters. Keys longer than 64
/// characters are cut to their first 32 and `…`.
pub fn key_path(key: &str) -> String {
    const SHOWN: usize = 32;
    let long = key.chars().count() > 64;
    let shown: String = if long {
        key.chars().take(SHOWN).collect()
    } else {
        key.to_owned()
    };
    let plain = !shown.is_empty()
        && !shown
            .chars()
            .any(|c| matches!(c, '"' | '[' | ']' | '\\') || c.is_whitespace() || c.is_control());
    let ellipsis = if long { "…" } else { "" };
    if plain {
        format!("filter.{shown}{ellipsis}")
    } else {
        // Quoting a string cannot fail.
        let quoted = serde_json::to_string(&shown).unwrap_or_default();
        format!("filter[{quoted}{ellipsis}]")
    }
}

/// Counts bytes written, failing once `limit` is reached (so an oversized filter is never
/// serialised in full).
struct ByteBudget {
    used: usize,
    limit: usize,
}

impl io::Write for ByteBudget {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.used = self.used.saturating_add(buf.len());
        if self.used >= self.limit {
            return Err(io::Error::other("filter too large"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Whether `value`'s compact JSON is shorter than [`MAX_FILTER_BYTES`].
fn fits(value: &Value) -> bool {
    let mut budget = ByteBudget {
        used: 0,
        limit: MAX_FILTER_BYTES,
    };
    serde_json::to_writer(&mut budget, value).is_ok()
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses and validates a filter given as JSON.
pub fn parse_filter(value: &Value) -> Result<Filter, FilterError> {
    let Value::Object(map) = value else {
        return Err(FilterError::new(
            "filter",
            format!("must be a JSON object, not {}", type_name(value)),
        ));
    };
    if map.is_empty() {
        return Err(FilterError::new(
            "filter",
            "must not be empty; omit the filter to match every vector",
        ));
    }
    if !fits(value) {
        return Err(FilterError::new(
            "filter",
            format!("its compact JSON must be shorter than {MAX_FILTER_BYTES} bytes"),
        ));
    }
    let mut clauses = BTreeMap::new();
    for (key, value) in sorted(map) {
        check_key(key)?;
        let path = key_path(key);
        clauses.insert(key.clone(), parse_condition(&path, value)?);
    }
    Ok(Filter { clauses })
}

/// Parses a filter from JSON text (as `--filter '<json>'` gives it).
pub fn parse_filter_text(text: &str) -> Result<Filter, FilterError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| FilterError::new("filter", format!("not valid JSON: {e}")))?;
    parse_filter(&value)
}

/// The entries of `map` sorted by key, whatever order the map keeps.
fn sorted(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

fn check_key(key: &str) -> Result<(), FilterError> {
    let fail = |reason: &str| Err(FilterError::new(key_path(key), reason));
    if key.is_empty() {
        return fail("a filter key must not be empty");
    }
    if key.contains('"') {
        return fail("a filter key must not contain `\"`");
    }
    if key.starts_with('$') {
        return fail(
            "a filter key must not start with `$`; there is no `$and`/`$or`/`$not`: keys are ANDed, \
             and `$in` expresses OR on one key",
        );
    }
    if key.chars().count() > MAX_KEY_CHARS {
        return fail("a filter key must be at most 512 characters long");
    }
    if key.split('.').any(str::is_empty) {
        return fail(
            "`.` only separates the segments of a nested key (`a.b`); no segment may be empty",
        );
    }
    Ok(())
}

/// A scalar operand, or `None` for an array or object.
fn scalar(value: &Value) -> Option<Scalar> {
    match value {
        Value::Null => Some(Scalar::Null),
        Value::Bool(b) => Some(Scalar::Bool(*b)),
        Value::Number(n) => n.as_f64().map(Scalar::Number),
        Value::String(s) => Some(Scalar::String(s.clone())),
        Value::Array(_) | Value::Object(_) => None,
    }
}

fn parse_condition(path: &str, value: &Value) -> Result<Condition, FilterError> {
    let ops = match value {
        Value::Array(_) => return Err(FilterError::new(
            path,
            "an array is not a valid value; use {\"$in\": [...]} to match any of several values",
        )),
        Value::Object(ops) => ops,
        other => {
            return scalar(other)
                .map(Condition::Eq)
                .ok_or_else(|| FilterError::new(path, "not a valid value"));
        }
    };
    if ops.is_empty() {
        return Err(FilterError::new(
            path,
            "an operator object must hold at least one operator",
        ));
    }
    if !ops.keys().any(|k| k.starts_with('$')) {
        return Err(FilterError::new(
            path,
            "an object is not a valid value; address a nested property with a dotted key \
             such as `a.b`, or use an operator object such as {\"$eq\": ...}",
        ));
    }
    let mut lower: Option<(&str, (Scalar, bool))> = None;
    let mut upper: Option<(&str, (Scalar, bool))> = None;
    let mut single: Option<(&str, Condition)> = None;
    for (op, operand) in sorted(ops) {
        let op_path = format!("{path}.{op}");
        let Some(op) = OPERATORS.iter().copied().find(|o| *o == op) else {
            return Err(FilterError::new(
                op_path,
                format!("unknown operator; expected one of {}", OPERATORS.join(" ")),
            ));
        };
        let parsed = parse_operand(&op_path, op, operand)?;
        let combine_error = |other: &str| {
            FilterError::new(
                op_path.clone(),
                format!(
                    "cannot be combined with `{other}`: an operator object holds one operator, \
                     or one lower bound ($gt/$gte) with one upper bound ($lt/$lte)"
                ),
            )
        };
        if let Some((other, _)) = &single {
            return Err(combine_error(other));
        }
        match parsed {
            Operand::Lower(bound) => {
                if let Some((other, _)) = lower.as_ref() {
                    return Err(combine_error(other));
                }
                lower = Some((op, bound));
            }
            Operand::Upper(bound) => {
                if let Some((other, _)) = upper.as_ref() {
                    return Err(combine_error(other));
                }
                upper = Some((op, bound));
            }
            Operand::Single(condition) => {
                if let Some((other, _)) = lower.as_ref().or(upper.as_ref()) {
                    return Err(combine_error(other));
                }
                single = Some((op, condition));
            }
        }
    }
    if let Some((_, condition)) = single {
        return Ok(condition);
    }
    Ok(Condition::Range {
        lower: lower.map(|(_, b)| b),
        upper: upper.map(|(_, b)| b),
    })
}

/// One operator with its operand, before combination.
enum Operand {
    Single(Condition),
    Lower((Scalar, bool)),
    Upper((Scalar, bool)),
}

fn parse_operand(path: &str, op: &str, operand: &Value) -> Result<Operand, FilterError> {
    let equality = |wrap: fn(Scalar) -> Condition| {
        scalar(operand)
            .map(|s| Operand::Single(wrap(s)))
            .ok_or_else(|| {
                FilterError::new(
                    path,
                    format!(
                        "the operand must be a string, number, boolean or null, not {}",
                        type_name(operand)
                    ),
                )
            })
    };
    let list = |wrap: fn(Vec<Scalar>) -> Condition| {
        let Value::Array(items) = operand else {
            return Err(FilterError::new(
                path,
                format!(
                    "the operand must be an array of strings, numbers, booleans or nulls, not {}",
                    type_name(operand)
                ),
            ));
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.push(scalar(item).ok_or_else(|| {
                FilterError::new(
                    format!("{path}[{i}]"),
                    format!(
                        "a list element must be a string, number, boolean or null, not {}",
                        type_name(item)
                    ),
                )
            })?);
        }
        Ok(Operand::Single(wrap(out)))
    };
    let bound = |inclusive: bool| match operand {
        Value::String(_) | Value::Number(_) => scalar(operand)
            .map(|s| (s, inclusive))
            .ok_or_else(|| FilterError::new(path, "not a valid operand")),
        other => Err(FilterError::new(
            path,
            format!(
                "a range operand must be a string or a number, not {}",
                type_name(other)
            ),
        )),
    };
    match op {
        "$eq" => equality(Condition::Eq),
        "$ne" => equality(Condition::Ne),
        "$in" => list(Condition::In),
        "$nin" => list(Condition::Nin),
        "$gt" => bound(false).map(Operand::Lower),
        "$gte" => bound(true).map(Operand::Lower),
        "$lt" => bound(false).map(Operand::Upper),
        _ => bound(true).map(Operand::Upper),
    }
}

impl Scalar {
    /// The scalar as JSON (numbers that are whole and within ±2^53 as JSON integers).
    pub fn to_json(&self) -> Value {
        match self {
            Scalar::Null => Value::Null,
            Scalar::Bool(b) => Value::Bool(*b),
            Scalar::Number(n) => {
                const EXACT: f64 = 9_007_199_254_740_992.0;
                if n.fract() == 0.0 && n.abs() <= EXACT && !(*n == 0.0 && n.is_sign_negative()) {
                    // In range and whole, so the cast is exact.
                    Value::from(*n as i64)
                } else {
                    serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number)
                }
            }
            Scalar::String(s) => Value::String(s.clone()),
        }
    }
}

impl Condition {
    /// The condition as the JSON value of its key (`$eq` written implicitly), which
    /// [`parse_filter`] turns back into the same condition.
    pub fn to_json(&self) -> Value {
        let list = |items: &[Scalar]| Value::Array(items.iter().map(Scalar::to_json).collect());
        let one = |op: &str, v: Value| {
            let mut m = Map::new();
            m.insert(op.to_owned(), v);
            Value::Object(m)
        };
        match self {
            Condition::Eq(s) => s.to_json(),
            Condition::Ne(s) => one("$ne", s.to_json()),
            Condition::In(items) => one("$in", list(items)),
            Condition::Nin(items) => one("$nin", list(items)),
            Condition::Range { lower, upper } => {
                let mut m = Map::new();
                if let Some((s, inclusive)) = lower {
                    m.insert(if *inclusive { "$gte" } else { "$gt" }.into(), s.to_json());
                }
                if let Some((s, inclusive)) = upper {
                    m.insert(if *inclusive { "$lte" } else { "$lt" }.into(), s.to_json());
                }
                Value::Object(m)
            }
        }
    }
}

impl Filter {
    /// The filter as JSON; [`parse_filter`] of it gives this filter back, provided it fits
    /// in [`MAX_FILTER_BYTES`] and the filter came from [`parse_filter`].
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.clauses
                .iter()
                .map(|(k, c)| (k.clone(), c.to_json()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_paths_quote_unusual_keys_and_cut_long_ones() {
        assert_eq!(key_path("price"), "filter.price");
        assert_eq!(key_path("a.b"), "filter.a.b");
        assert_eq!(key_path(""), "filter[\"\"]");
        assert_eq!(key_path("a\"b"), "filter[\"a\\\"b\"]");
        assert_eq!(key_path("a b"), "filter[\"a b\"]");
        let long = "k".repeat(600);
        assert_eq!(key_path(&long), format!("filter.{}…", "k".repeat(32)));
    }

    #[test]
    fn size_limit_is_exclusive_at_2048_bytes() {
        // {"k":"<s>"} is 8 bytes plus the string.
        let at = |n: usize| json!({ "k": "x".repeat(n - 8) });
        assert_eq!(serde_json::to_string(&at(2047)).unwrap().len(), 2047);
        assert!(parse_filter(&at(2047)).is_ok());
        let err = parse_filter(&at(2048)).unwrap_err();
        assert_eq!(err.path, "filter");
    }

    #[test]
    fn missing_index_errors_say_so() {
        let e = FilterError::missing_index("price");
        assert!(e.is_missing_index());
        assert_eq!(e.path, "filter.price");
        assert!(e.reason.contains("create-metadata-index"));
        assert!(!FilterError::new("filter", "must not be empty").is_missing_index());
    }

    #[test]
    fn whole_numbers_serialise_as_integers() {
        assert_eq!(Scalar::Number(3.0).to_json(), json!(3));
        assert_eq!(Scalar::Number(2.5).to_json(), json!(2.5));
        assert_eq!(Scalar::Number(-0.0).to_json().as_f64(), Some(-0.0));
        assert_eq!(Scalar::Number(1e300).to_json(), json!(1e300));
    }
}
