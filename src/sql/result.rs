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

/// D1's `meta` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// Rows inserted, updated or deleted by the statement (0 for reads).
    pub changes: u64,
    /// The rowid of the last row inserted on this connection.
    pub last_row_id: i64,
    /// Rows read: rows returned plus rows stepped over by full scans. SQLite does not count
    /// index lookups, so this is a lower bound of D1's figure.
    pub rows_read: u64,
    /// Rows written (equal to `changes`; index writes are not counted).
    pub rows_written: u64,
    /// Wall-clock milliseconds the statement took.
    pub duration: f64,
    /// Whether the statement changed the database.
    pub changed_db: bool,
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
