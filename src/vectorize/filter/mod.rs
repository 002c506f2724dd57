//! Vectorize metadata filters: parsing and validation ([`parse`]), the reference evaluator
//! that defines their meaning ([`eval`]), and the SQL that finds matching vectors
//! ([`to_sql`]), which must agree with the evaluator exactly (tests/it/filter.rs checks it
//! with proptest against SQLite).
//!
//! ```
//! use d1vec::vectorize::filter::{candidate_sql, parse_filter_text, IndexType};
//! let filter = parse_filter_text(r#"{"genre": "jazz", "year": {"$gte": 1950, "$lt": 1960}}"#).unwrap();
//! let types = |p: &str| match p {
//!     "genre" => Some(IndexType::String),
//!     "year" => Some(IndexType::Number),
//!     _ => None,
//! };
//! let sql = candidate_sql(1, None, Some(&filter), &types).unwrap();
//! assert!(sql.sql.starts_with("SELECT vid FROM d1vec_vectors WHERE index_id = ?1"));
//! ```

pub mod bitmap;
pub mod eval;
pub mod parse;
pub mod to_sql;

pub use bitmap::{indexed_from_sql, FilterIndex};
pub use eval::{indexed_value, matches, truncate_indexed, IndexType, Indexed};
pub use parse::{
    parse_filter, parse_filter_text, Condition, Filter, FilterError, Scalar, MAX_FILTER_BYTES,
    MAX_KEY_CHARS,
};
pub use to_sql::{candidate_sql, count_sql, FilterSql};
