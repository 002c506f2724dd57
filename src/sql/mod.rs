//! The D1-compatible SQL layer: statements, results, limits, migrations, export, cursors.

pub(crate) mod auth;
pub(crate) mod conn;
pub mod cursor;
pub mod export;
pub(crate) mod limits;
pub mod migrate;
pub mod result;
pub mod split;
pub mod statement;
pub mod token;
pub mod value;

pub use conn::{MAX_BOUND_PARAMETERS, MAX_STATEMENT_BYTES};
pub use limits::D1Limits;
pub use result::{D1Result, ExecResult, Meta, Row};
pub use statement::{Session, Statement};
pub use value::Param;

/// Quotes an identifier for SQL.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string literal for SQL.
pub(crate) fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
