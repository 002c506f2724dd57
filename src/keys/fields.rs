//! Sealing on every write path: SQL functions and TEMP triggers on a d1vec connection.
//!
//! Every connection d1vec writes through (the admin connection, each tenant session's)
//! gets three scalar functions whose names carry a per-connection random prefix, and two
//! TEMP triggers on the real `platform_connections` table (`AFTER INSERT`, and `AFTER
//! UPDATE OF` the token columns). The triggers replace a plaintext token by its sealed form
//! inside the writing statement, creating the tenant's first data key if it has none, so
//! the plaintext never reaches a committed page. A value that already has a sealed value's
//! shape is left as it is; an update that leaves a token unchanged leaves it alone.
//!
//! Nothing of this is stored in the database file: TEMP objects live in the connection, so
//! the file stays a plain SQLite file that `sqlite3` and wrangler open. Writes made by
//! other programs are not sealed (`d1vec keys rotate` seals what it finds).

use std::sync::{Arc, Mutex};

use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;

use super::envelope::{self, FieldRef};
use super::error::KeyError;
use super::KeyRing;
use crate::error::{Error, Result};
use crate::sql::conn::{RaisedError, ScopeRefresh};
use crate::sql::{quote_ident as ident, quote_literal as literal};

/// The table whose token columns are sealed.
pub const TABLE: &str = "platform_connections";
/// The sealed columns of [`TABLE`].
pub const COLUMNS: [&str; 2] = ["access_token_ct", "refresh_token_ct"];
/// The column that keys a row of [`TABLE`] (bound into the associated data).
pub const ROW_KEY: &str = "connection_id";

fn raise(raised: &RaisedError, e: Error) -> rusqlite::Error {
    let text = e.to_string();
    *raised.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
    rusqlite::Error::UserFunctionError(text.into())
}

fn text_arg(ctx: &Context<'_>, i: usize) -> rusqlite::Result<String> {
    match ctx.get_raw(i) {
        ValueRef::Text(t) => Ok(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Integer(n) => Ok(n.to_string()),
        other => Err(rusqlite::Error::InvalidParameterType(i, other.data_type())),
    }
}

/// The bytes a plaintext value is sealed as (text as UTF-8, numbers as their text).
fn plaintext_bytes(v: ValueRef<'_>) -> Option<zeroize::Zeroizing<Vec<u8>>> {
    let bytes = match v {
        ValueRef::Null => return None,
        ValueRef::Text(t) | ValueRef::Blob(t) => t.to_vec(),
        ValueRef::Integer(n) => n.to_string().into_bytes(),
        ValueRef::Real(f) => f.to_string().into_bytes(),
    };
    Some(zeroize::Zeroizing::new(bytes))
}

/// Whether `v` must be sealed: not NULL and not a BLOB of a sealed value's shape.
fn needs_seal(v: ValueRef<'_>) -> bool {
    match v {
        ValueRef::Null => false,
        ValueRef::Blob(b) => !envelope::is_sealed_shape(b),
        _ => true,
    }
}

/// Registers `<prefix>needs_seal`, `<prefix>wrap_new` and `<prefix>seal` on `conn` and
/// turns on `secure_delete` for `schema` (the plaintext a trigger replaces is zeroed in
/// its page, not left in free space).
pub(crate) fn register(
    conn: &Connection,
    ring: &Arc<KeyRing>,
    raised: &RaisedError,
    prefix: &str,
    schema: &str,
) -> Result<()> {
    conn.execute_batch(&format!("PRAGMA {}.secure_delete = ON", ident(schema)))?;
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DIRECTONLY;
    conn.create_scalar_function(
        format!("{prefix}needs_seal").as_str(),
        1,
        flags | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| Ok(needs_seal(ctx.get_raw(0))),
    )?;
    {
        let ring = Arc::clone(ring);
        let raised = Arc::clone(raised);
        conn.create_scalar_function(format!("{prefix}wrap_new").as_str(), 2, flags, move |ctx| {
            let tenant = text_arg(ctx, 0)?;
            let version: i64 = ctx.get(1)?;
            let version = u32::try_from(version)
                .map_err(|_| raise(&raised, Error::invalid("key version", "out of range")))?;
            ring.wrap_new(&tenant, version)
                .map_err(|e| raise(&raised, e))
        })?;
    }
    let ring = Arc::clone(ring);
    let raised = Arc::clone(raised);
    conn.create_scalar_function(format!("{prefix}seal").as_str(), 7, flags, move |ctx| {
        let value = ctx.get_raw(0);
        if !needs_seal(value) {
            return Ok(match value {
                ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                _ => Value::Null,
            });
        }
        let tenant = text_arg(ctx, 1)?;
        let table = text_arg(ctx, 2)?;
        let column = text_arg(ctx, 3)?;
        let row_key = text_arg(ctx, 4)?;
        let field = FieldRef {
            tenant: &tenant,
            table: &table,
            column: &column,
            row_key: &row_key,
        };
        let (version, wrapped) = match (ctx.get_raw(5), ctx.get_raw(6)) {
            (ValueRef::Integer(v), ValueRef::Blob(w)) => (v, w),
            _ => {
                return Err(raise(
                    &raised,
                    KeyError::MissingKey {
                        what: format!("no active data key for tenant `{tenant}`"),
                    }
                    .into(),
                ))
            }
        };
        let version = u32::try_from(version)
            .map_err(|_| raise(&raised, Error::invalid("key version", "out of range")))?;
        let plain = plaintext_bytes(value).unwrap_or_default();
        ring.seal(&field, version, wrapped, &plain)
            .map(Value::Blob)
            .map_err(|e| raise(&raised, e))
    })?;
    Ok(())
}

/// Whether `schema` holds the tables sealing needs, with the columns it uses.
fn has_tables(conn: &Connection, schema: &str) -> rusqlite::Result<bool> {
    let count = |table: &str, cols: &[&str]| -> rusqlite::Result<usize> {
        let mut stmt = conn.prepare("SELECT name FROM pragma_table_info(?1, ?2)")?;
        let names: Vec<String> = stmt
            .query_map([table, schema], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(cols
            .iter()
            .filter(|c| names.iter().any(|n| n.eq_ignore_ascii_case(c)))
            .count())
    };
    let conns = [ROW_KEY, "tenant_id", COLUMNS[0], COLUMNS[1], "key_version"];
    let keys = [
        "tenant_id",
        "version",
        "wrapped_key",
        "status",
        "rotate_after",
    ];
    Ok(count(TABLE, &conns)? == conns.len() && count("tenant_keys", &keys)? == keys.len())
}

/// The SQL that (re)creates the sealing triggers of a connection whose functions carry
/// `prefix`, on the tables of `schema`; only drops them when the tables are missing.
pub(crate) fn trigger_sql(conn: &Connection, schema: &str, prefix: &str) -> Result<String> {
    let ins = ident(&format!("{prefix}seal_ins"));
    let upd = ident(&format!("{prefix}seal_upd"));
    let mut sql =
        format!("DROP TRIGGER IF EXISTS temp.{ins};\nDROP TRIGGER IF EXISTS temp.{upd};\n");
    if !has_tables(conn, schema)? {
        return Ok(sql);
    }
    let s = ident(schema);
    let t = ident(TABLE);
    let f = |name: &str| ident(&format!("{prefix}{name}"));
    let (needs, wrap_new, seal) = (f("needs_seal"), f("wrap_new"), f("seal"));
    let active = |col: &str| {
        format!("(SELECT {col} FROM {s}.tenant_keys WHERE tenant_id = NEW.tenant_id AND status = 'active' ORDER BY version DESC LIMIT 1)")
    };
    let ensure_key = format!(
        "INSERT INTO {s}.tenant_keys (key_id, tenant_id, version, wrapped_key, status, rotate_after) \
         SELECT lower(hex(randomblob(16))), NEW.tenant_id, v, {wrap_new}(NEW.tenant_id, v), 'active', \
         strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+90 days') \
         FROM (SELECT coalesce(max(version), 0) + 1 AS v FROM {s}.tenant_keys WHERE tenant_id = NEW.tenant_id) \
         WHERE NOT EXISTS (SELECT 1 FROM {s}.tenant_keys WHERE tenant_id = NEW.tenant_id AND status = 'active');"
    );
    let sets = COLUMNS
        .iter()
        .map(|c| {
            format!(
                "{col} = {seal}({col}, NEW.tenant_id, {tl}, {cl}, NEW.{rk}, {v}, {w})",
                col = ident(c),
                tl = literal(TABLE),
                cl = literal(c),
                rk = ident(ROW_KEY),
                v = active("version"),
                w = active("wrapped_key"),
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let update = format!(
        "UPDATE {s}.{t} SET {sets}, key_version = coalesce({v}, key_version) WHERE rowid = NEW.rowid;",
        v = active("version")
    );
    let when_ins = COLUMNS
        .iter()
        .map(|c| format!("{needs}(NEW.{})", ident(c)))
        .collect::<Vec<_>>()
        .join(" OR ");
    let when_upd = COLUMNS
        .iter()
        .map(|c| format!("(NEW.{0} IS NOT OLD.{0} AND {needs}(NEW.{0}))", ident(c)))
        .collect::<Vec<_>>()
        .join(" OR ");
    let cols = COLUMNS.map(ident).join(", ");
    sql.push_str(&format!(
        "CREATE TEMP TRIGGER {ins} AFTER INSERT ON {s}.{t} WHEN {when_ins} BEGIN {ensure_key} {update} END;\n\
         CREATE TEMP TRIGGER {upd} AFTER UPDATE OF {cols} ON {s}.{t} WHEN {when_upd} BEGIN {ensure_key} {update} END;\n"
    ));
    Ok(sql)
}

/// The admin connection's sealing triggers, kept in step with its schema: rebuilt at the
/// start of each statement after the schema changed (a script that creates
/// `platform_connections` and then inserts into it is sealed too).
#[derive(Debug)]
pub(crate) struct AdminSeal {
    prefix: String,
    built: Mutex<Option<i64>>,
}

impl AdminSeal {
    /// Registers the functions on the admin connection and returns its scope.
    pub(crate) fn install(
        conn: &crate::sql::conn::SqlConn,
        ring: &Arc<KeyRing>,
    ) -> Result<AdminSeal> {
        let secret =
            crate::tenant::guard::new_secret().map_err(|_| Error::from(KeyError::Randomness))?;
        let prefix = format!("d1vec_{secret}_");
        conn.internal_with(|c| register(c, ring, &conn.raised, &prefix, "main"))?;
        Ok(AdminSeal {
            prefix,
            built: Mutex::new(None),
        })
    }
}

impl ScopeRefresh for AdminSeal {
    fn refresh(&self, conn: &Connection) -> Result<bool> {
        let version: i64 = conn
            .prepare_cached("PRAGMA main.schema_version")?
            .query_row([], |r| r.get(0))?;
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        if *built == Some(version) {
            return Ok(false);
        }
        conn.execute_batch(&trigger_sql(conn, "main", &self.prefix)?)?;
        *built = Some(version);
        Ok(true)
    }

    fn invalidate(&self) {
        *self.built.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn admit(&self, _writes: bool) -> Result<()> {
        // Admin SQL has no quota.
        Ok(())
    }
}
