//! `POST …/d1/database/{id}/query` and `…/raw`: a request body run on a [`D1Target`].
//!
//! Cloudflare documents two bodies
//! (<https://developers.cloudflare.com/api/resources/d1/subresources/database/methods/query/>):
//! `{"sql", "params"?}`, where `sql` may hold several statements joined by semicolons, run
//! as a batch; and `{"batch": [{"sql", "params"?}, …]}`. Every statement of a request runs in
//! one transaction, as a D1 batch does: one failure rolls back the whole request. When one
//! `sql` holds several statements, its `params` bind to the last of them, the rule D1
//! documents for a prepared statement holding several queries; the others take none.
//!
//! The answer has one object per statement: `/query` gives `{"results": [rows as objects],
//! "success", "meta"}` (the library's [`D1Result`](crate::D1Result) serialised, `meta`
//! with its twelve fields); `/raw` gives `{"results": {"columns", "rows"}, "success",
//! "meta"}`. The whole body is read and checked before anything runs, so a refused body
//! changes nothing.

use serde_json::{json, Map, Value as Json};

use super::D1Target;
use crate::error::{Error, Result};
use crate::sql::split::split_statements;
use crate::D1Result;

/// The most statements one request may run (d1vec's bound; the request body's size bounds
/// it on Cloudflare). Larger scripts go through import.
pub const MAX_STATEMENTS: usize = 10_000;

/// One statement of a request, ready to prepare.
#[derive(Debug, Clone, PartialEq)]
struct Planned {
    sql: String,
    params: Vec<Json>,
}

/// Runs the body of a `/query` (`raw == false`) or `/raw` (`raw == true`) request on
/// `target` and returns the envelope's `result`: an array with one object per statement.
pub fn query(target: &dyn D1Target, body: &Json, raw: bool) -> Result<Json> {
    let planned = plan(body)?;
    let statements = planned
        .iter()
        .map(|p| target.prepare(&p.sql).bind_json(&p.params))
        .collect::<Result<Vec<_>>>()?;
    let results = target.batch(&statements)?;
    results
        .iter()
        .map(|r| if raw { raw_result(r) } else { object_result(r) })
        .collect::<Result<Vec<_>>>()
        .map(Json::Array)
}

/// The `/query` shape of one result.
fn object_result(result: &D1Result) -> Result<Json> {
    Ok(serde_json::to_value(result)?)
}

/// The `/raw` shape of one result.
fn raw_result(result: &D1Result) -> Result<Json> {
    Ok(json!({
        "results": {
            "columns": result.columns,
            "rows": result.raw(),
        },
        "success": result.success,
        "meta": serde_json::to_value(&result.meta)?,
    }))
}

/// Reads and checks a request body into its statements, running nothing.
fn plan(body: &Json) -> Result<Vec<Planned>> {
    let object = body
        .as_object()
        .ok_or_else(|| Error::invalid("body", "expected a JSON object with `sql` or `batch`"))?;
    let mut out = Vec::new();
    match (object.get("sql"), object.get("batch")) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "body",
                "give either `sql` or `batch`, not both",
            ))
        }
        (None, None) => return Err(Error::invalid("sql", "missing")),
        (Some(_), None) => plan_one(object, "sql", &mut out)?,
        (None, Some(Json::Array(items))) => {
            if items.is_empty() {
                return Err(Error::invalid("batch", "expected at least one query"));
            }
            for item in items {
                let item = item.as_object().ok_or_else(|| {
                    Error::invalid("batch", "each item must be an object with `sql`")
                })?;
                plan_one(item, "batch[].sql", &mut out)?;
            }
        }
        (None, Some(_)) => return Err(Error::invalid("batch", "expected an array")),
    }
    if out.len() > MAX_STATEMENTS {
        return Err(Error::LimitExceeded {
            what: "statements in one request",
            limit: MAX_STATEMENTS,
            got: out.len(),
        });
    }
    Ok(out)
}

/// One `{"sql", "params"?}` object: its statements, `params` bound to the last.
fn plan_one(object: &Map<String, Json>, what: &'static str, out: &mut Vec<Planned>) -> Result<()> {
    let sql = match object.get("sql") {
        Some(Json::String(s)) => s,
        Some(_) => return Err(Error::invalid(what, "expected a string")),
        None => return Err(Error::invalid(what, "missing")),
    };
    let params = match object.get("params") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(values)) => values.clone(),
        Some(_) => return Err(Error::invalid("params", "expected an array")),
    };
    let mut statements = split_statements(sql)?;
    let Some(last) = statements.pop() else {
        return Err(Error::invalid("SQL", "No SQL statements detected."));
    };
    out.extend(statements.into_iter().map(|sql| Planned {
        sql,
        params: Vec::new(),
    }));
    out.push(Planned { sql: last, params });
    Ok(())
}
