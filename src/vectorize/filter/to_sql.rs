//! SQL for the vectors of one index that pass a namespace and a [`Filter`], over the tables
//! of the design note (`d1vec_vectors`, `d1vec_meta_values`).
//!
//! Each clause becomes a semi-join on the indexed values, using the
//! `(index_id, property, val, vid)` index:
//! - a positive condition (`$eq`, `$in`, ranges):
//!   `vid IN (SELECT vid FROM d1vec_meta_values WHERE index_id = ?1 AND property = ?n AND <pred>)`;
//! - a negative one (`$ne`, `$nin`): `vid NOT IN (...)` over the positive predicate, so a vector
//!   without a row (key missing, other type, written before the index) matches;
//! - a condition whose operands can never equal a value of the index's type is the constant
//!   `0` (positive) or `1` (negative); `null` operands become `val IS NULL`.
//!
//! Strings are bound as their 64-byte indexed prefix and compare with SQLite's BINARY
//! collation (bytewise, as Rust's `str` ordering); numbers bind as REAL, booleans as INTEGER
//! 0/1. Every value and property name is a bound parameter, numbered explicitly (`?n`).
//! Rows of one `(index_id, property)` hold only the index's type or NULL, which the semantics
//! rely on: a stale row of another type would compare across SQLite's storage classes.

use rusqlite::types::Value;

use super::eval::{has_type, truncate_indexed, IndexType};
use super::parse::{Condition, Filter, FilterError, Scalar};

/// SQL for the set of live vids of one index that pass namespace + filter, over the tables
/// in the design note.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterSql {
    /// The statement, with parameters `?1..?n` (`?1` is the index id).
    pub sql: String,
    /// The values of `?1..?n`, in order.
    pub params: Vec<Value>,
}

impl FilterSql {
    /// The parameters as D1-style [`crate::Param`]s, to run the statement through a
    /// [`crate::Database`].
    pub fn d1_params(&self) -> Vec<crate::Param> {
        self.params
            .iter()
            .map(|v| match v {
                Value::Null => crate::Param::Null,
                Value::Integer(i) => crate::Param::Integer(*i),
                Value::Real(f) => crate::Param::Real(*f),
                Value::Text(s) => crate::Param::Text(s.clone()),
                Value::Blob(b) => crate::Param::Blob(b.clone()),
            })
            .collect()
    }

    /// Runs a [`candidate_sql`] statement on `conn`: the matching vids, ascending.
    pub fn vids(&self, conn: &rusqlite::Connection) -> rusqlite::Result<Vec<i64>> {
        let mut stmt = conn.prepare(&self.sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(&self.params), |r| r.get(0))?;
        rows.collect()
    }

    /// Runs a [`count_sql`] statement on `conn`.
    pub fn count(&self, conn: &rusqlite::Connection) -> rusqlite::Result<i64> {
        conn.query_row(&self.sql, rusqlite::params_from_iter(&self.params), |r| {
            r.get(0)
        })
    }
}

/// Accumulates parameters and hands out their `?n` placeholders.
struct Binder {
    params: Vec<Value>,
}

impl Binder {
    fn bind(&mut self, value: Value) -> String {
        self.params.push(value);
        format!("?{}", self.params.len())
    }
}

/// The SQLite value an operand binds as, for an index of its type.
fn operand_value(s: &Scalar) -> Value {
    match s {
        Scalar::Null => Value::Null,
        Scalar::Bool(b) => Value::Integer(i64::from(*b)),
        Scalar::Number(n) => Value::Real(*n),
        Scalar::String(t) => Value::Text(truncate_indexed(t).to_owned()),
    }
}

/// The predicate on `val` of `$eq s`, or `None` when no row of type `ty` can satisfy it.
fn eq_pred(b: &mut Binder, ty: IndexType, s: &Scalar) -> Option<String> {
    match s {
        Scalar::Null => Some("val IS NULL".to_owned()),
        _ if has_type(s, ty) => Some(format!("val = {}", b.bind(operand_value(s)))),
        _ => None,
    }
}

/// The predicate on `val` of `$in list`, or `None` when no row can satisfy it.
fn in_pred(b: &mut Binder, ty: IndexType, list: &[Scalar]) -> Option<String> {
    let with_null = list.contains(&Scalar::Null);
    let typed: Vec<&Scalar> = list.iter().filter(|s| has_type(s, ty)).collect();
    let mut parts = Vec::new();
    if !typed.is_empty() {
        let marks: Vec<String> = typed
            .into_iter()
            .map(|s| b.bind(operand_value(s)))
            .collect();
        parts.push(format!("val IN ({})", marks.join(", ")));
    }
    if with_null {
        parts.push("val IS NULL".to_owned());
    }
    match parts.len() {
        0 => None,
        1 => parts.pop(),
        _ => Some(format!("({})", parts.join(" OR "))),
    }
}

/// The predicate on `val` of a range, or `None` when a bound has another type than `ty`.
fn range_pred(
    b: &mut Binder,
    ty: IndexType,
    lower: Option<&(Scalar, bool)>,
    upper: Option<&(Scalar, bool)>,
) -> Option<String> {
    let bounds = [(lower, ">", ">="), (upper, "<", "<=")];
    if bounds
        .iter()
        .any(|(bound, _, _)| bound.is_some_and(|(s, _)| !has_type(s, ty)))
    {
        return None;
    }
    let mut parts = Vec::new();
    for (bound, strict, inclusive) in bounds {
        if let Some((s, incl)) = bound {
            let op = if *incl { inclusive } else { strict };
            parts.push(format!("val {op} {}", b.bind(operand_value(s))));
        }
    }
    if parts.is_empty() {
        // Not produced by the parser: any value of the index's type.
        parts.push("val IS NOT NULL".to_owned());
    }
    Some(parts.join(" AND "))
}

/// The SQL of one clause (property `property` of type `ty`, index id at `?1`).
fn clause_sql(b: &mut Binder, property: &str, ty: IndexType, condition: &Condition) -> String {
    let mark = b.params.len();
    let prop = b.bind(Value::Text(property.to_owned()));
    let (negated, pred) = match condition {
        Condition::Eq(s) => (false, eq_pred(b, ty, s)),
        Condition::Ne(s) => (true, eq_pred(b, ty, s)),
        Condition::In(list) => (false, in_pred(b, ty, list)),
        Condition::Nin(list) => (true, in_pred(b, ty, list)),
        Condition::Range { lower, upper } => {
            (false, range_pred(b, ty, lower.as_ref(), upper.as_ref()))
        }
    };
    match pred {
        Some(pred) => format!(
            "vid {}IN (SELECT vid FROM d1vec_meta_values WHERE index_id = ?1 AND property = {prop} AND {pred})",
            if negated { "NOT " } else { "" }
        ),
        None => {
            b.params.truncate(mark);
            if negated { "1" } else { "0" }.to_owned()
        }
    }
}

/// Builds `SELECT vid FROM d1vec_vectors WHERE index_id = ?1 [AND namespace = ?] AND <clauses>
/// ORDER BY vid`. Errors like eval for a property with no metadata index. `types` gives each
/// indexed property's type.
pub fn candidate_sql(
    index_id: i64,
    namespace: Option<&str>,
    filter: Option<&Filter>,
    types: &dyn Fn(&str) -> Option<IndexType>,
) -> Result<FilterSql, FilterError> {
    let mut typed = Vec::new();
    if let Some(filter) = filter {
        for (property, condition) in &filter.clauses {
            let ty = types(property).ok_or_else(|| FilterError::missing_index(property))?;
            typed.push((property, ty, condition));
        }
    }
    let mut b = Binder { params: Vec::new() };
    let index = b.bind(Value::Integer(index_id));
    let mut sql = format!("SELECT vid FROM d1vec_vectors WHERE index_id = {index}");
    if let Some(ns) = namespace {
        let ns = b.bind(Value::Text(ns.to_owned()));
        sql.push_str(&format!(" AND namespace = {ns}"));
    }
    for (property, ty, condition) in typed {
        let clause = clause_sql(&mut b, property, ty, condition);
        sql.push_str(" AND ");
        sql.push_str(&clause);
    }
    sql.push_str(" ORDER BY vid");
    Ok(FilterSql {
        sql,
        params: b.params,
    })
}

/// The same query wrapped as `SELECT count(*) FROM (...)` for the planner's estimate.
pub fn count_sql(
    index_id: i64,
    namespace: Option<&str>,
    filter: Option<&Filter>,
    types: &dyn Fn(&str) -> Option<IndexType>,
) -> Result<FilterSql, FilterError> {
    let inner = candidate_sql(index_id, namespace, filter, types)?;
    Ok(FilterSql {
        sql: format!("SELECT count(*) FROM ({})", inner.sql),
        params: inner.params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectorize::filter::parse::parse_filter;
    use serde_json::json;

    fn sql_for(filter: serde_json::Value, ty: IndexType) -> FilterSql {
        let f = parse_filter(&filter).unwrap();
        candidate_sql(7, Some("ns"), Some(&f), &|_| Some(ty)).unwrap()
    }

    #[test]
    fn positive_and_negative_clauses_are_semi_joins() {
        let q = sql_for(
            json!({"a": "x", "b": {"$nin": ["y", null]}}),
            IndexType::String,
        );
        assert_eq!(
            q.sql,
            "SELECT vid FROM d1vec_vectors WHERE index_id = ?1 AND namespace = ?2 \
             AND vid IN (SELECT vid FROM d1vec_meta_values WHERE index_id = ?1 AND property = ?3 AND val = ?4) \
             AND vid NOT IN (SELECT vid FROM d1vec_meta_values WHERE index_id = ?1 AND property = ?5 \
             AND (val IN (?6) OR val IS NULL)) ORDER BY vid"
        );
        assert_eq!(
            q.params,
            vec![
                Value::Integer(7),
                Value::Text("ns".into()),
                Value::Text("a".into()),
                Value::Text("x".into()),
                Value::Text("b".into()),
                Value::Text("y".into()),
            ]
        );
    }

    #[test]
    fn mismatched_operands_become_constants_without_parameters() {
        let q = sql_for(
            json!({"a": 1, "b": {"$ne": true}, "c": {"$gt": "a", "$lt": 3}, "d": {"$in": []}}),
            IndexType::String,
        );
        assert!(
            q.sql.ends_with("?2 AND 0 AND 1 AND 0 AND 0 ORDER BY vid"),
            "{}",
            q.sql
        );
        assert_eq!(q.params.len(), 2);
    }

    #[test]
    fn string_operands_bind_their_indexed_prefix() {
        let long = format!("{}é", "q".repeat(63));
        let q = sql_for(json!({"a": {"$gte": long}}), IndexType::String);
        assert_eq!(q.params[3], Value::Text("q".repeat(63)));
        let q = sql_for(json!({"a": {"$gt": 1, "$lte": 2.5}}), IndexType::Number);
        assert!(q.sql.contains("AND val > ?4 AND val <= ?5)"), "{}", q.sql);
        assert_eq!(q.params[3..], [Value::Real(1.0), Value::Real(2.5)]);
    }

    #[test]
    fn no_filter_and_no_namespace_selects_the_whole_index() {
        let q = candidate_sql(3, None, None, &|_| None).unwrap();
        assert_eq!(
            q.sql,
            "SELECT vid FROM d1vec_vectors WHERE index_id = ?1 ORDER BY vid"
        );
        let c = count_sql(3, None, None, &|_| None).unwrap();
        assert_eq!(
            c.sql,
            "SELECT count(*) FROM (SELECT vid FROM d1vec_vectors WHERE index_id = ?1 ORDER BY vid)"
        );
        assert_eq!(c.params, vec![Value::Integer(3)]);
    }

    #[test]
    fn unindexed_property_is_an_error() {
        let f = parse_filter(&json!({"a": 1, "z": 2})).unwrap();
        let types = |p: &str| (p == "a").then_some(IndexType::Number);
        let err = candidate_sql(1, None, Some(&f), &types).unwrap_err();
        assert!(err.is_missing_index());
        assert_eq!(err.path, "filter.z");
    }
}
