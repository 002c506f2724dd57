//! Results shaped like D1's: `{"results": [...], "success": true, "meta": {...}}`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::error::Result;

/// One row: column name to value.
pub type Row = Map<String, Json>;

/// What one statement returned, as D1's `D1Result`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct D1Result {
    /// The rows, each an object keyed by column name.
    pub results: Vec<Row>,
    /// Always `true` for a result (failures are errors).
    pub success: bool,
    /// Counters about the statement.
    pub meta: Meta,
    /// The column names in order (also for statements that returned no rows).
    #[serde(skip)]
    pub columns: Vec<String>,
}

/// D1's `meta` object, every field D1's Worker API documents
/// (<https://developers.cloudflare.com/d1/worker-api/return-object/>), in its order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// The backend that answered: `d1vec-<version>`.
    #[serde(default)]
    pub served_by: String,
    /// The region of the instance that ran the statement: always `local`.
    #[serde(default)]
    pub served_by_region: String,
    /// Whether the primary ran the statement: always `true` (one node is the primary).
    #[serde(default)]
    pub served_by_primary: bool,
    /// Durations inside the database.
    #[serde(default)]
    pub timings: Timings,
    /// Wall-clock milliseconds the statement took.
    pub duration: f64,
    /// Rows inserted, updated or deleted by the statement (0 for reads).
    pub changes: u64,
    /// The rowid of the last row inserted on this connection.
    pub last_row_id: i64,
    /// Whether the statement changed the database (rows, or the schema).
    pub changed_db: bool,
    /// The database's size in bytes after the statement (`page_count * page_size`). A
    /// tenant session gets 0: the size moves with other tenants' writes.
    #[serde(default)]
    pub size_after: u64,
    /// Rows read: rows returned plus rows stepped over by full scans. SQLite does not count
    /// index lookups, so this is a lower bound of D1's figure.
    pub rows_read: u64,
    /// Rows written, counting one more for each index a write changes, as D1 bills
    /// (see `sql::writes`).
    pub rows_written: u64,
    /// Attempts it took to run the call: 2 when a read-first transaction had to start
    /// again under the write lock (see `SqlConn::run_batch`), else 1.
    #[serde(default = "one")]
    pub total_attempts: u32,
}

fn one() -> u32 {
    1
}

/// `meta.timings`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Milliseconds the SQL ran inside the database (equal to `duration` locally: there
    /// is no network between caller and database).
    pub sql_duration_ms: f64,
}

impl D1Result {
    /// The rows as arrays in column order, like D1's `raw()`.
    pub fn raw(&self) -> Vec<Vec<Json>> {
        self.results
            .iter()
            .map(|row| {
                self.columns
                    .iter()
                    .map(|c| row.get(c).cloned().unwrap_or(Json::Null))
                    .collect()
            })
            .collect()
    }

    /// The rows converted to `T` through serde.
    pub fn rows_as<T: DeserializeOwned>(&self) -> Result<Vec<T>> {
        self.results
            .iter()
            .map(|r| Ok(serde_json::from_value(Json::Object(r.clone()))?))
            .collect()
    }
}

/// What [`crate::Database::exec`] returns, as D1's `D1ExecResult`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecResult {
    /// How many statements ran.
    pub count: usize,
    /// Wall-clock milliseconds for all of them.
    pub duration: f64,
}
