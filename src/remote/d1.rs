//! D1 over REST: databases (list, get, create, delete) and the statement API (`query`, `raw`).

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json};

use super::http::{segment, Call};
use super::retry::Idempotency::{Safe, Unsafe};
use super::vectorize::decode;
use super::Cloudflare;
use crate::error::{Error, Result};
use crate::sql::result::{Meta, Timings};
use crate::sql::D1Result;

/// A D1 database as the REST API describes it. Fields the API leaves out are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct D1Database {
    /// The database id (a UUID).
    pub uuid: String,
    /// Its name.
    pub name: String,
    /// When it was created (ISO-8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// The storage backend's version (`production`, `alpha`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// How many tables it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_tables: Option<u64>,
    /// Its size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
}

/// One statement's answer from `…/raw`: the column names in order and the rows as arrays.
#[derive(Debug, Clone, PartialEq)]
pub struct D1RawResult {
    /// The column names, in order (also when no row came back).
    pub columns: Vec<String>,
    /// The rows, each in column order.
    pub rows: Vec<Vec<Json>>,
    /// The statement's counters.
    pub meta: Meta,
}

/// Most pages of the database list read before giving up (100 databases a page).
const MAX_LIST_PAGES: usize = 100;

impl Cloudflare {
    fn d1_path(&self, rest: &str) -> String {
        if rest.is_empty() {
            "d1/database".to_owned()
        } else {
            format!("d1/database/{rest}")
        }
    }

    /// Lists the account's D1 databases (every page), those named `name` when given.
    pub fn d1_list(&self, name: Option<&str>) -> Result<Vec<D1Database>> {
        let mut out = Vec::new();
        for page in 1..=MAX_LIST_PAGES {
            let mut call = Call::new(Method::GET, self.d1_path(""), Safe)
                .query("page", page.to_string())
                .query("per_page", "100");
            if let Some(n) = name {
                call = call.query("name", n);
            }
            let answer = self.send(&call)?;
            let batch: Vec<D1Database> = decode("database list", answer.result)?;
            let got = batch.len();
            out.extend(batch);
            let total_pages = answer
                .result_info
                .as_ref()
                .and_then(|i| i.get("total_pages"))
                .and_then(Json::as_u64);
            let more = match total_pages {
                Some(t) => (page as u64) < t,
                None => got == 100,
            };
            if !more || got == 0 {
                break;
            }
        }
        Ok(out)
    }

    /// Gets one D1 database by id.
    pub fn d1_get(&self, id: &str) -> Result<D1Database> {
        let call = Call::new(Method::GET, self.d1_path(&segment(id)), Safe);
        decode("database", self.send(&call)?.result)
    }

    /// Creates a D1 database named `name`. Not retried once it may have been applied.
    pub fn d1_create(&self, name: &str) -> Result<D1Database> {
        let call = Call::new(Method::POST, self.d1_path(""), Unsafe).json(json!({"name": name}));
        decode("database", self.send(&call)?.result)
    }

    /// Deletes a D1 database. Not retried once it may have been applied.
    pub fn d1_delete(&self, id: &str) -> Result<()> {
        let call = Call::new(Method::DELETE, self.d1_path(&segment(id)), Unsafe);
        self.send(&call)?;
        Ok(())
    }

    fn d1_statement(&self, id: &str, op: &str, sql: &str, params: &[Json]) -> Result<Vec<Json>> {
        let mut body = json!({"sql": sql});
        if !params.is_empty() {
            body["params"] = json!(params);
        }
        // SQL may write: retried only when certainly not applied (429, no connection).
        let call = Call::new(
            Method::POST,
            self.d1_path(&format!("{}/{op}", segment(id))),
            Unsafe,
        )
        .json(body);
        match self.send(&call)?.result {
            Json::Array(items) => Ok(items),
            other => Err(Error::Remote {
                status: 200,
                code: 0,
                message: format!(
                    "unexpected D1 answer: expected an array of results, got {}",
                    crate::vectorize::types::json_type(&other)
                ),
            }),
        }
    }

    /// Runs `sql` (one statement, or several joined by `;`, which D1 runs as one batch: all
    /// or nothing) with `params` bound to `?` / `?N`, and returns one [`D1Result`] per
    /// statement. `columns` is taken from the first row's keys, which serde_json keeps in
    /// sorted order; use [`Cloudflare::d1_raw`] when column order matters.
    pub fn d1_query(&self, id: &str, sql: &str, params: &[Json]) -> Result<Vec<D1Result>> {
        self.d1_statement(id, "query", sql, params)?
            .into_iter()
            .map(d1_result)
            .collect()
    }

    /// [`Cloudflare::d1_query`] through `…/raw`: rows as arrays, with the column names in order.
    pub fn d1_raw(&self, id: &str, sql: &str, params: &[Json]) -> Result<Vec<D1RawResult>> {
        self.d1_statement(id, "raw", sql, params)?
            .into_iter()
            .map(|item| {
                let results = item.get("results").cloned().unwrap_or(Json::Null);
                let columns: Vec<String> = match results.get("columns") {
                    Some(c) => decode("raw columns", c.clone())?,
                    None => Vec::new(),
                };
                let rows: Vec<Vec<Json>> = match results.get("rows") {
                    Some(r) => decode("raw rows", r.clone())?,
                    None => Vec::new(),
                };
                Ok(D1RawResult {
                    columns,
                    rows,
                    meta: meta(item.get("meta")),
                })
            })
            .collect()
    }
}

/// A statement's `meta`, read leniently: Cloudflare documents every field as optional.
fn meta(value: Option<&Json>) -> Meta {
    let empty = Map::new();
    let m = value.and_then(Json::as_object).unwrap_or(&empty);
    let u = |k: &str| m.get(k).and_then(Json::as_u64).unwrap_or(0);
    let f = |k: &str| m.get(k).and_then(Json::as_f64).unwrap_or(0.0);
    let s = |k: &str| {
        m.get(k)
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Meta {
        served_by: s("served_by"),
        served_by_region: s("served_by_region"),
        served_by_primary: m
            .get("served_by_primary")
            .and_then(Json::as_bool)
            .unwrap_or(false),
        timings: Timings {
            sql_duration_ms: m
                .get("timings")
                .and_then(|t| t.get("sql_duration_ms"))
                .and_then(Json::as_f64)
                .unwrap_or(0.0),
        },
        duration: f("duration"),
        changes: u("changes"),
        last_row_id: m.get("last_row_id").and_then(Json::as_i64).unwrap_or(0),
        changed_db: m.get("changed_db").and_then(Json::as_bool).unwrap_or(false),
        size_after: u("size_after"),
        rows_read: u("rows_read"),
        rows_written: u("rows_written"),
        total_attempts: u32::try_from(u("total_attempts")).unwrap_or(1).max(1),
    }
}

fn d1_result(item: Json) -> Result<D1Result> {
    let results: Vec<Map<String, Json>> = match item.get("results") {
        None | Some(Json::Null) => Vec::new(),
        Some(r) => decode("result rows", r.clone())?,
    };
    let columns = results
        .first()
        .map(|row| row.keys().cloned().collect())
        .unwrap_or_default();
    Ok(D1Result {
        success: item.get("success").and_then(Json::as_bool).unwrap_or(true),
        meta: meta(item.get("meta")),
        results,
        columns,
    })
}
