//! `dump()`: the database as one SQLite file's bytes, as D1's `db.dump()` returns it.
//!
//! The copy is made with `VACUUM INTO` a private in-memory database, which reads one
//! consistent snapshot (concurrent writers neither block it nor show up half-way), then
//! taken out of memory with `sqlite3_serialize`. Nothing touches the disk. The copy leaves
//! out the key that signs cursors (`d1vec_cursor_key`, a secret; a database opened from the
//! dump makes a new one), with `secure_delete` so its bytes are overwritten, not just freed.
//! The result is a compacted, valid SQLite file with the same schema and rows; its bytes
//! differ from the original file's (page order, free pages).

use rusqlite::{Connection, MAIN_DB};

use crate::error::{Error, Result};
use crate::sql::{quote_ident, quote_literal};

/// Serializes the database reached as `schema` on `src` (which must not be in a
/// transaction).
pub(crate) fn dump(src: &Connection, schema: &str) -> Result<Vec<u8>> {
    let name = format!(
        "file:/d1vec-dump-{}?vfs=memdb",
        crate::tenant::guard::new_secret()
            .map_err(|e| Error::invalid("randomness", e.to_string()))?
    );
    let mut dst = Connection::open_with_flags(&name, super::conn::open_flags())?;
    src.execute_batch(&format!(
        "VACUUM {} INTO {}",
        quote_ident(schema),
        quote_literal(&name)
    ))?;
    let has_key: bool = dst.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1)",
        [crate::sql::token::KEY_TABLE],
        |r| r.get(0),
    )?;
    if has_key {
        dst.execute_batch(&format!(
            "PRAGMA secure_delete = ON; DELETE FROM {};",
            quote_ident(crate::sql::token::KEY_TABLE)
        ))?;
    }
    let data = dst.serialize(MAIN_DB)?;
    Ok(data.to_vec())
}
