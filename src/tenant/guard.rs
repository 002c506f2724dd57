//! The only door from a tenant session to tenant tables.
//!
//! For every table in `main`, the session's connection gets, in its `temp` schema:
//!
//! - an *inner* view `d1vec_<secret>_<table>` that reads `main.<table>` restricted to the
//!   tenant's rows (or, for shared rollups, to rows with `tenant_count >= 5`), leaving out
//!   hidden columns;
//! - an *outer* view named like the table, reading the inner view. Unqualified names
//!   resolve to `temp` before `main`, so the application's SQL runs unchanged;
//! - for tenant-private tables, `INSTEAD OF` triggers on the outer view named
//!   `d1vec_<secret>_<table>_{ins,upd,del}` that stamp and check `tenant_id` and refuse any
//!   write whose key collides with another tenant's row (so `REPLACE` cannot delete it).
//!
//! The authorizer ([`crate::sql::auth`]) then allows a base table to be touched only when
//! SQLite names one of these secret-named objects as responsible. A CTE or subquery the
//! user writes carries a name the user chose, which cannot match the secret.

use std::collections::HashSet;
use std::fmt::Write as _;

use rusqlite::Connection;

use crate::catalog::{classify, Access, TableSpec, K_ANONYMITY};

/// A column of a base table.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    /// The declared type, as written.
    ty: String,
    default: Option<String>,
    pk: usize,
}

pub(crate) use crate::sql::quote_ident as ident;
pub(crate) use crate::sql::quote_literal as literal;

/// SQLite's own tables that may exist in a database, and that a scoped connection's `main`
/// gets too (see [`STAND_INS`]), so that their unqualified names never reach the database.
const SQLITE_TABLES: &[&str] = &["sqlite_sequence", "sqlite_stat1", "sqlite_stat4"];

/// Creates `main.sqlite_sequence`, `main.sqlite_stat1` and `main.sqlite_stat4` in a scoped
/// connection's empty `main` (SQLite creates them itself, on AUTOINCREMENT and ANALYZE).
const STAND_INS: &str =
    "CREATE TABLE main.d1vec_standin_seq (x INTEGER PRIMARY KEY AUTOINCREMENT, y);
CREATE INDEX main.d1vec_standin_seq_y ON d1vec_standin_seq (y);
ANALYZE main;";

/// Every table and view of `schema` (SQLite's own included), by name, with whether it is
/// a table.
fn schema_objects(conn: &Connection, schema: &str) -> rusqlite::Result<Vec<(String, bool)>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT name, type = 'table' FROM {}.sqlite_schema WHERE type IN ('table', 'view') ORDER BY name",
        ident(schema)
    ))?;
    let names = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    names.collect()
}

/// Whether `name` is one of SQLite's own `sqlite_*` tables.
pub(crate) fn is_sqlite_internal(name: &str) -> bool {
    name.len() >= 7 && name[..7].eq_ignore_ascii_case("sqlite_")
}

fn columns(conn: &Connection, schema: &str, table: &str) -> rusqlite::Result<Vec<Column>> {
    let mut stmt =
        conn.prepare("SELECT name, dflt_value, pk, type FROM pragma_table_info(?1, ?2)")?;
    let cols = stmt.query_map([table, schema], |r| {
        Ok(Column {
            name: r.get(0)?,
            ty: r.get(3)?,
            default: r.get(1)?,
            pk: r.get::<_, i64>(2)?.try_into().unwrap_or(0),
        })
    })?;
    cols.collect()
}

/// The column sets of `table`'s unique indexes that do not contain `tenant_id`, plus its
/// integer primary key (which has no index of its own).
fn unique_keys_without_tenant(
    conn: &Connection,
    schema: &str,
    table: &str,
    cols: &[Column],
) -> rusqlite::Result<Vec<Vec<String>>> {
    let mut keys = Vec::new();
    let mut list =
        conn.prepare("SELECT name FROM pragma_index_list(?1, ?2) WHERE \"unique\" = 1")?;
    let index_names: Vec<String> = list
        .query_map([table, schema], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut info = conn.prepare("SELECT name FROM pragma_index_info(?1, ?2) ORDER BY seqno")?;
    for index in index_names {
        let key: Vec<Option<String>> = info
            .query_map([index.as_str(), schema], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        // An expression column (None) cannot be checked here; the tenant_id stamp still holds.
        let key: Vec<String> = key.into_iter().flatten().collect();
        if !key.is_empty() && !key.iter().any(|c| c.eq_ignore_ascii_case("tenant_id")) {
            keys.push(key);
        }
    }
    let pks: Vec<&Column> = cols.iter().filter(|c| c.pk > 0).collect();
    if pks.len() == 1 && !keys.iter().any(|k| k.len() == 1 && k[0] == pks[0].name) {
        keys.push(vec![pks[0].name.clone()]);
    }
    Ok(keys)
}

/// What [`build_scope`] makes: the SQL that builds a session's objects, and which of its
/// views the session may read and write.
#[derive(Debug, Default)]
pub(crate) struct ScopeScript {
    /// Creates the stand-ins in `main` and the views and triggers in `temp`.
    pub sql: String,
    /// Lower-cased names of the views that accept writes.
    pub writable: HashSet<String>,
    /// Lower-cased names of all the user-visible views.
    pub readable: HashSet<String>,
    /// Lower-cased names of every table and view of the database (stood in for in `main`).
    pub stand_ins: HashSet<String>,
}

/// The SQL that builds a tenant session's objects over the database attached as `schema`,
/// on a connection whose `main` is empty:
///
/// - in `main`, an empty stand-in table for every table and view of the database (with the
///   same column names), and SQLite's own `sqlite_sequence`/`sqlite_stat1`/`sqlite_stat4`;
///   so an unqualified name, which SQLite looks up in `temp`, then `main`, then attached
///   databases, never reaches the database itself;
/// - in `temp`, the scoped views and the triggers that write through them.
///
/// Fails (and the session does not open) when the database holds an SQLite table this
/// function cannot stand in for.
pub(crate) fn build_scope(
    conn: &Connection,
    tenant: &str,
    policy_secret: &str,
    schema: &str,
) -> crate::error::Result<ScopeScript> {
    let prefix = format!("d1vec_{policy_secret}_");
    let tid = literal(tenant);
    let note = ident(&format!("{prefix}note"));
    let refuse = ident(&format!("{prefix}refuse"));
    let mut sql = STAND_INS.replace("d1vec_standin_", &format!("{prefix}standin_"));
    sql.push('\n');
    let mut writable = HashSet::new();
    let mut readable = HashSet::new();
    let mut stand_ins = HashSet::new();
    let objects = schema_objects(conn, schema)?;
    let mut tables = Vec::new();
    for (name, is_table) in objects {
        if is_sqlite_internal(&name) {
            if SQLITE_TABLES.iter().any(|t| t.eq_ignore_ascii_case(&name)) {
                continue;
            }
            return Err(crate::error::Error::invalid(
                "database",
                format!("it holds SQLite's table `{name}`, which a tenant session cannot hide"),
            ));
        }
        let cols = columns(conn, schema, &name)?;
        let list = if cols.is_empty() {
            "x".to_owned()
        } else {
            cols.iter()
                .map(|c| ident(&c.name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(sql, "CREATE TABLE main.{} ({list});", ident(&name));
        stand_ins.insert(name.to_ascii_lowercase());
        if is_table {
            tables.push((name, cols));
        }
    }
    for (table, cols) in tables {
        let has_tenant = cols
            .iter()
            .any(|c| c.name.eq_ignore_ascii_case("tenant_id"));
        let access = classify(&table, has_tenant);
        let hidden: &[&str] =
            crate::catalog::bundled(&table).map_or(&[], |s: &TableSpec| s.hidden_columns);
        let visible: Vec<&Column> = cols
            .iter()
            .filter(|c| !hidden.iter().any(|h| h.eq_ignore_ascii_case(&c.name)))
            .collect();
        let list = visible
            .iter()
            .map(|c| ident(&c.name))
            .collect::<Vec<_>>()
            .join(", ");
        let base = format!("{}.{}", ident(schema), ident(&table));
        let inner = ident(&format!("{prefix}{table}"));
        let outer = ident(&table);
        let filter = match access {
            Access::Hidden => continue,
            Access::TenantPrivate | Access::TenantReadOnly if has_tenant => {
                format!(" WHERE tenant_id = {tid}")
            }
            Access::TenantPrivate | Access::TenantReadOnly => continue,
            Access::Shared => String::new(),
            Access::SharedKAnonymous => format!(" WHERE tenant_count >= {K_ANONYMITY}"),
        };
        // A filtered view is fenced with `LIMIT -1 OFFSET 0`: SQLite neither flattens a
        // subquery with an OFFSET into the query that reads it nor pushes that query's WHERE
        // terms down into a subquery with a LIMIT. Without the fence the planner may test a
        // user's condition on an index entry of another tenant's row before the view's
        // filter, and a condition that raises an error (`json_extract('{}', col)`, an
        // integer overflow) would print or reveal that row's values.
        let fence = if filter.is_empty() {
            ""
        } else {
            " LIMIT -1 OFFSET 0"
        };
        let _ = writeln!(
            sql,
            "CREATE TEMP VIEW {inner} AS SELECT {list} FROM {base}{filter}{fence};"
        );
        let _ = writeln!(
            sql,
            "CREATE TEMP VIEW {outer} AS SELECT {list} FROM {inner};"
        );
        readable.insert(table.to_ascii_lowercase());
        let pk: Vec<&Column> = cols.iter().filter(|c| c.pk > 0).collect();
        if access != Access::TenantPrivate || pk.is_empty() || !hidden.is_empty() {
            // A read-only view answers every write with the guard's typed refusal (without
            // a trigger SQLite would refuse an UPDATE or DELETE with its own untyped "cannot
            // modify ... because it is a view" before the authorizer is asked).
            let what = literal(&format!("writing `{table}` (read-only for tenants)"));
            for (verb, tag) in [("INSERT", "ins"), ("UPDATE", "upd"), ("DELETE", "del")] {
                let _ = writeln!(
                    sql,
                    "CREATE TEMP TRIGGER {trg} INSTEAD OF {verb} ON {outer} BEGIN SELECT {refuse}('{kind}', {what}); END;",
                    trg = ident(&format!("{prefix}{table}_{tag}")),
                    kind = Refusal::OUTSIDE,
                );
            }
            continue;
        }
        writable.insert(table.to_ascii_lowercase());
        // Refuse a key that another tenant's row already holds: with OR REPLACE it would
        // delete that row, without it the UNIQUE error is the same information anyway.
        let mut collisions = String::new();
        for key in unique_keys_without_tenant(conn, schema, &table, &cols)? {
            let cond = key
                .iter()
                .map(|c| format!("{0} = NEW.{0}", ident(c)))
                .collect::<Vec<_>>()
                .join(" AND ");
            let _ = write!(
                collisions,
                " SELECT {refuse}('{unique}', {what}) WHERE EXISTS (SELECT 1 FROM {base} WHERE {cond} AND tenant_id IS NOT {tid});",
                unique = Refusal::UNIQUE,
                what = literal(&format!("{table}.{}", key.join(", "))),
            );
        }
        let stamp = format!(
            " SELECT {refuse}('{kind}', {what}) WHERE NEW.tenant_id IS NOT NULL AND NEW.tenant_id IS NOT {tid};",
            kind = Refusal::OUTSIDE,
            what = literal(&format!("rows of {table} with another tenant_id")),
        );
        let names = cols
            .iter()
            .map(|c| ident(&c.name))
            .collect::<Vec<_>>()
            .join(", ");
        let values = cols
            .iter()
            .map(|c| {
                if c.name.eq_ignore_ascii_case("tenant_id") {
                    tid.clone()
                } else {
                    match &c.default {
                        Some(d) => format!("COALESCE(NEW.{}, {d})", ident(&c.name)),
                        None => format!("NEW.{}", ident(&c.name)),
                    }
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let by_pk = pk
            .iter()
            .map(|c| format!("{0} IS OLD.{0}", ident(&c.name)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let sets = cols
            .iter()
            .filter(|c| !c.name.eq_ignore_ascii_case("tenant_id"))
            .map(|c| format!("{0} = NEW.{0}", ident(&c.name)))
            .collect::<Vec<_>>()
            .join(", ");
        // The new rowid is reported (D1's `last_row_id`) only where it is the row's own
        // visible key; elsewhere it is a table-wide counter that moves with every tenant's
        // inserts, and 0 is reported instead.
        let rowid_is_key = pk.len() == 1 && pk[0].ty.eq_ignore_ascii_case("INTEGER");
        let noted = if rowid_is_key {
            "last_insert_rowid()"
        } else {
            "0"
        };
        let _ = writeln!(
            sql,
            "CREATE TEMP TRIGGER {trg} INSTEAD OF INSERT ON {outer} BEGIN{stamp}{collisions} INSERT INTO {base} ({names}) VALUES ({values}); SELECT {note}({noted}); END;",
            trg = ident(&format!("{prefix}{table}_ins")),
        );
        let _ = writeln!(
            sql,
            "CREATE TEMP TRIGGER {trg} INSTEAD OF UPDATE ON {outer} BEGIN SELECT {refuse}('{kind}', {what}) WHERE NEW.tenant_id IS NOT OLD.tenant_id;{collisions} UPDATE {base} SET {sets} WHERE {by_pk} AND tenant_id = {tid}; END;",
            trg = ident(&format!("{prefix}{table}_upd")),
            kind = Refusal::OUTSIDE,
            what = literal(&format!("tenant_id of {table} cannot change")),
        );
        let _ = writeln!(
            sql,
            "CREATE TEMP TRIGGER {trg} INSTEAD OF DELETE ON {outer} BEGIN DELETE FROM {base} WHERE {by_pk} AND tenant_id = {tid}; END;",
            trg = ident(&format!("{prefix}{table}_del")),
        );
    }
    Ok(ScopeScript {
        sql,
        writable,
        readable,
        stand_ins,
    })
}

/// A fresh random secret: 128 bits as 32 hex digits.
pub(crate) fn new_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    }))
}

/// The views a session's connection was built with, and the secret their names carry: what
/// the policy's SQL hook needs to tell the session's own objects from anything else.
#[derive(Debug)]
pub(crate) struct SessionViews {
    /// The random token in the names of the session's own views and triggers.
    pub secret: String,
    /// The schema name the database's tables are attached under on the session's
    /// connection (its `main` is an empty private database); it carries the secret.
    pub schema: String,
    /// Lower-cased names of the user-visible views that accept writes.
    pub writable_views: HashSet<String>,
    /// Lower-cased names of all the user-visible views.
    pub readable_views: HashSet<String>,
    /// Lower-cased names of every table and view of the database (each has a stand-in in
    /// the session's `main`).
    pub stand_ins: HashSet<String>,
    /// `d1vec_<secret>_`, the prefix of every object the session creates for itself (made
    /// once: the authorizer asks for it on every action).
    prefix: String,
}

impl SessionViews {
    /// Describes the objects `script` built for the session with `secret`.
    pub fn new(secret: &str, schema: &str, script: ScopeScript) -> SessionViews {
        SessionViews {
            secret: secret.to_owned(),
            schema: schema.to_owned(),
            writable_views: script.writable,
            readable_views: script.readable,
            stand_ins: script.stand_ins,
            prefix: format!("d1vec_{secret}_"),
        }
    }

    /// The prefix of every object the session creates for itself.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether `accessor` is one of the session's own views or triggers.
    pub fn is_ours(&self, accessor: Option<&str>) -> bool {
        accessor.is_some_and(|a| a.starts_with(&self.prefix))
    }

    /// Whether `name` is one of the session's own views (inner or outer).
    pub fn is_view(&self, name: &str) -> bool {
        name.starts_with(&self.prefix) || self.readable_views.contains(&name.to_ascii_lowercase())
    }

    /// `text` with the secret taken out, fit for an error message.
    pub fn scrub(&self, text: &str) -> String {
        text.replace(&self.prefix, "").replace(&self.secret, "")
    }
}

/// The refusals a session's triggers raise, each through the session's own SQL function
/// `d1vec_<secret>_refuse(kind, what)`, which hands the executor a typed error (never text
/// to be recognised later).
pub(crate) struct Refusal;

impl Refusal {
    /// A key another tenant's row holds: reported exactly as SQLite's own UNIQUE failure,
    /// so it cannot be told apart from a key the session's own row holds.
    pub const UNIQUE: &'static str = "unique";
    /// A write outside the tenant's scope: [`crate::Error::TenantViolation`].
    pub const OUTSIDE: &'static str = "outside";

    /// The typed error for `kind` and `what` raised by session `tenant`'s trigger.
    pub fn error(tenant: &str, kind: &str, what: String) -> crate::error::Error {
        if kind == Self::UNIQUE {
            crate::error::Error::Sql(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE),
                Some(format!("UNIQUE constraint failed: {what}")),
            ))
        } else {
            crate::error::Error::TenantViolation {
                tenant: tenant.to_owned(),
                object: what,
            }
        }
    }
}
