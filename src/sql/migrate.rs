//! A migration runner compatible with `wrangler d1 migrations`.
//!
//! - Applied migrations are recorded in `d1_migrations(id, name, applied_at)`, the table
//!   wrangler uses, with `name` relative to the migrations folder.
//! - Files are ordered by the integer before their first `_` (numerically, so `10_x` comes
//!   after `9_y`), numbered before unnumbered, ties by name.
//! - A migration is pending when its name is not in the table (a set difference).
//! - Each migration and its bookkeeping insert run as one transaction; the first failure
//!   rolls that migration back and stops, leaving earlier ones applied.

use std::path::{Path, PathBuf};

use super::conn::{Bound, SqlConn};
use super::split::split_statements;
use crate::error::{Error, Result};

/// The name of wrangler's bookkeeping table.
pub const MIGRATIONS_TABLE: &str = "d1_migrations";

/// One migration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// The file name relative to its folder, as recorded in `d1_migrations`.
    pub name: String,
    /// The SQL text.
    pub sql: String,
}

/// A migration and whether it has been applied.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MigrationStatus {
    /// The file name relative to its folder.
    pub name: String,
    /// When it was applied (`CURRENT_TIMESTAMP` of the apply), or `None` if pending.
    pub applied_at: Option<String>,
}

/// The bundled migrations: five that build the 30-table schema, then the permissions the
/// engine checks (`0006_permissions.sql`).
pub fn bundled() -> Vec<Migration> {
    macro_rules! bundled {
        ($($file:literal),*) => {
            vec![$(Migration {
                name: $file.to_owned(),
                sql: include_str!(concat!("../../migrations/", $file)).to_owned(),
            }),*]
        };
    }
    bundled!(
        "0001_core.sql",
        "0002_content_generation.sql",
        "0003_publishing.sql",
        "0004_analytics.sql",
        "0005_security.sql",
        "0006_permissions.sql"
    )
}

fn leading_number(name: &str) -> Option<u64> {
    let head = name.split('_').next()?;
    if head.is_empty() || !head.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    head.parse().ok()
}

/// Sorts migrations as wrangler does.
pub fn sort(migrations: &mut [Migration]) {
    migrations.sort_by(|a, b| {
        let key = |m: &Migration| (leading_number(&m.name).is_none(), leading_number(&m.name));
        key(a).cmp(&key(b)).then_with(|| a.name.cmp(&b.name))
    });
}

/// Reads the `*.sql` files of `dir`, in wrangler's order.
pub fn discover(dir: &Path) -> Result<Vec<Migration>> {
    let entries = std::fs::read_dir(dir).map_err(Error::io(dir))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(Error::io(dir))?;
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("sql") || !path.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let sql = std::fs::read_to_string(&path).map_err(Error::io(&path))?;
        out.push(Migration { name, sql });
    }
    sort(&mut out);
    Ok(out)
}

/// Creates the next migration file in `dir`: `NNNN_<message with spaces as _>.sql`,
/// holding one comment line, as `wrangler d1 migrations create` does.
pub fn create(dir: &Path, message: &str) -> Result<PathBuf> {
    if message.contains('/') || message.contains('\\') || message.trim().is_empty() {
        return Err(Error::invalid(
            "migration name",
            format!("`{message}` must be non-empty and contain no `/` or `\\`"),
        ));
    }
    std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    let next = discover(dir)?
        .iter()
        .filter_map(|m| leading_number(&m.name))
        .max()
        .map_or(1, |n| n + 1);
    let path = dir.join(format!(
        "{next:04}_{}.sql",
        message.trim().replace(' ', "_")
    ));
    let now = crate::time::now_iso();
    std::fs::write(&path, format!("-- Migration number: {next:04} \t {now}\n"))
        .map_err(Error::io(&path))?;
    Ok(path)
}

fn ensure_table(conn: &SqlConn, table: &str) -> Result<()> {
    let table = crate::sql::quote_ident(table);
    conn.internal(|c| {
        c.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {table}(
                id         INTEGER PRIMARY KEY AUTOINCREMENT,
                name       TEXT UNIQUE,
                applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL
            );"
        ))
    })
}

/// Every migration of `migrations` with its applied time, in order, as recorded in the
/// bookkeeping table `table` (wrangler's `migrations_table`; created if missing).
pub(crate) fn list(
    conn: &SqlConn,
    table: &str,
    migrations: &[Migration],
) -> Result<Vec<MigrationStatus>> {
    ensure_table(conn, table)?;
    let quoted = crate::sql::quote_ident(table);
    let applied = conn.internal(|c| {
        let mut stmt = c.prepare(&format!(
            "SELECT name, applied_at FROM {quoted} ORDER BY id"
        ))?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        rows.collect::<rusqlite::Result<std::collections::HashMap<_, _>>>()
    })?;
    Ok(migrations
        .iter()
        .map(|m| MigrationStatus {
            name: m.name.clone(),
            applied_at: applied.get(&m.name).cloned(),
        })
        .collect())
}

/// Applies the pending migrations of `migrations`, in order, recording them in `table`;
/// returns the names applied.
pub(crate) fn apply(conn: &SqlConn, table: &str, migrations: &[Migration]) -> Result<Vec<String>> {
    let quoted = crate::sql::quote_ident(table);
    let mut done = Vec::new();
    for status in list(conn, table, migrations)? {
        if status.applied_at.is_some() {
            continue;
        }
        let Some(m) = migrations.iter().find(|m| m.name == status.name) else {
            continue;
        };
        let wrap = |e: Error| Error::Migration {
            name: m.name.clone(),
            source: Box::new(e),
        };
        let mut stmts: Vec<Bound> = split_statements(&m.sql)
            .map_err(|e| wrap(e.into()))?
            .into_iter()
            .map(|sql| Bound {
                sql,
                params: Vec::new(),
            })
            .collect();
        stmts.push(Bound {
            sql: format!("INSERT INTO {quoted} (name) VALUES (?1)"),
            params: vec![m.name.clone().into()],
        });
        conn.run_batch(&stmts).map_err(wrap)?;
        done.push(m.name.clone());
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(names: &[&str]) -> Vec<Migration> {
        names
            .iter()
            .map(|n| Migration {
                name: (*n).to_owned(),
                sql: String::new(),
            })
            .collect()
    }

    #[test]
    fn sorts_numerically_then_unnumbered_then_by_name() {
        let mut m = named(&[
            "10_b.sql",
            "9_a.sql",
            "notes.sql",
            "0002_x.sql",
            "0002_a.sql",
        ]);
        sort(&mut m);
        let got: Vec<_> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            got,
            [
                "0002_a.sql",
                "0002_x.sql",
                "9_a.sql",
                "10_b.sql",
                "notes.sql"
            ]
        );
    }

    #[test]
    fn bundled_files_are_in_order() {
        let mut m = bundled();
        let before: Vec<_> = m.iter().map(|m| m.name.clone()).collect();
        sort(&mut m);
        let after: Vec<_> = m.iter().map(|m| m.name.clone()).collect();
        assert_eq!(before, after);
        assert_eq!(m.len(), 6);
    }
}
