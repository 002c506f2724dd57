//! [`D1Registry`]: the D1 databases `d1vec serve` serves, and the table that records them.
//!
//! The primary database (the served `--db` file) is always there. Databases created through
//! the API are SQLite files in `<folder of the primary>/d1vec-d1/<uuid>.sqlite` (in memory
//! when the primary is), recorded in `d1vec_d1_databases` inside the primary file: one row
//! per database, the primary's included, so its uuid stays the same from one run to the
//! next. The table is created when the registry first opens; its name starts with `d1vec_`,
//! so tenant sessions cannot read it (`catalog::classify`), and `export_sql` leaves it out.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::OptionalExtension;
use serde_json::{json, Value as Json};

use crate::error::{D1Problem, Error, Result};
use crate::sql::quote_ident;
use crate::Database;

/// The registry table, in the primary database file.
pub const TABLE: &str = "d1vec_d1_databases";

/// The folder (beside the primary file) that holds the databases created through the API.
pub const FOLDER: &str = "d1vec-d1";

/// The fewest and most databases one page of a list may ask for. Cloudflare documents
/// `per_page` between 10 and 10000; d1vec also answers smaller pages, which clients'
/// auto-pagination tests ask for (`per_page=1`), rather than refuse them.
pub const PER_PAGE: std::ops::RangeInclusive<usize> = 1..=10_000;

/// The page size when a list request gives none (d1vec's choice; Cloudflare does not
/// document its default).
pub const DEFAULT_PER_PAGE: usize = 1_000;

/// The longest database name accepted, in bytes (d1vec's bound; Cloudflare documents none).
pub const MAX_NAME_BYTES: usize = 64;

/// The location hints Cloudflare documents for `primary_location_hint`.
const LOCATION_HINTS: [&str; 6] = ["wnam", "enam", "weur", "eeur", "apac", "oc"];

/// The jurisdictions Cloudflare documents.
const JURISDICTIONS: [&str; 2] = ["eu", "fedramp"];

/// How the registry names the primary database; see [`D1Registry::open_with`].
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// The primary's name. Default: the name it was given before, else the file's stem
    /// (`app` for `app.sqlite`), else `memory` for an in-memory database.
    pub name: Option<String>,
    /// The primary's uuid, for example the `database_id` an existing wrangler config holds.
    /// Default: the uuid it was given before, else a new random one.
    pub uuid: Option<String>,
}

/// One row of the registry table.
#[derive(Debug, Clone)]
struct Entry {
    uuid: String,
    name: String,
    primary: bool,
    created_at: String,
}

/// The D1 databases the server serves: the primary database and those created through the
/// API (see the [module documentation](self)).
#[derive(Debug)]
pub struct D1Registry {
    primary: Arc<Database>,
    primary_uuid: String,
    /// Where created databases live; `None` when the primary is in memory.
    folder: Option<PathBuf>,
    /// Created databases opened so far (all of them when in memory), by uuid.
    open: Mutex<HashMap<String, Arc<Database>>>,
    /// Serialises create and delete.
    changes: Mutex<()>,
}

impl D1Registry {
    /// Opens the registry of `primary` with default names ([`RegistryOptions::default`]).
    pub fn open(primary: Arc<Database>) -> Result<Self> {
        Self::open_with(primary, &RegistryOptions::default())
    }

    /// Opens the registry of `primary`, creating its table and the primary's row where
    /// missing. A name or uuid in `options` replaces the stored one; it is refused with
    /// [`D1Problem::NameTaken`] when a created database already has it.
    pub fn open_with(primary: Arc<Database>, options: &RegistryOptions) -> Result<Self> {
        if let Some(name) = &options.name {
            validate_name(name)?;
        }
        if let Some(uuid) = &options.uuid {
            validate_uuid(uuid)?;
        }
        let path = primary.path();
        let default_name = path
            .as_deref()
            .and_then(Path::file_stem)
            .and_then(|s| s.to_str())
            .filter(|s| validate_name(s).is_ok())
            .unwrap_or("memory")
            .to_owned();
        let folder = path
            .as_deref()
            .map(|p| p.parent().unwrap_or(Path::new(".")).join(FOLDER));
        let conn = &primary.shared().admin;
        let schema = quote_ident(conn.schema());
        let primary_uuid = conn.internal_tx(|tx| {
            tx.execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS {schema}.{TABLE} (
                     uuid TEXT PRIMARY KEY,
                     name TEXT NOT NULL UNIQUE,
                     seq INTEGER NOT NULL UNIQUE,
                     is_primary INTEGER NOT NULL CHECK (is_primary IN (0, 1)),
                     created_at TEXT NOT NULL
                 ) WITHOUT ROWID"
            ))?;
            let stored: Option<(String, String)> = tx
                .query_row(
                    &format!("SELECT uuid, name FROM {schema}.{TABLE} WHERE is_primary = 1"),
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let taken = |column: &str, value: &str| -> Result<bool> {
                Ok(tx.query_row(
                    &format!(
                        "SELECT EXISTS (SELECT 1 FROM {schema}.{TABLE} \
                         WHERE is_primary = 0 AND {column} = ?1)"
                    ),
                    [value],
                    |r| r.get(0),
                )?)
            };
            match stored {
                None => {
                    let uuid = match &options.uuid {
                        Some(u) => u.to_ascii_lowercase(),
                        None => new_uuid()?,
                    };
                    let name = options.name.clone().unwrap_or(default_name);
                    tx.execute(
                        &format!(
                            "INSERT INTO {schema}.{TABLE} (uuid, name, seq, is_primary, created_at) \
                             VALUES (?1, ?2, 0, 1, ?3)"
                        ),
                        rusqlite::params![uuid, name, crate::time::now_iso()],
                    )?;
                    Ok(uuid)
                }
                Some((mut uuid, name)) => {
                    if let Some(wanted) = &options.name {
                        if *wanted != name {
                            if taken("name", wanted)? {
                                return Err(Error::D1Database {
                                    database: wanted.clone(),
                                    problem: D1Problem::NameTaken,
                                });
                            }
                            tx.execute(
                                &format!(
                                    "UPDATE {schema}.{TABLE} SET name = ?1 WHERE is_primary = 1"
                                ),
                                [wanted],
                            )?;
                        }
                    }
                    if let Some(wanted) = &options.uuid {
                        let wanted = wanted.to_ascii_lowercase();
                        if wanted != uuid {
                            if taken("uuid", &wanted)? {
                                return Err(Error::D1Database {
                                    database: wanted,
                                    problem: D1Problem::NameTaken,
                                });
                            }
                            tx.execute(
                                &format!(
                                    "UPDATE {schema}.{TABLE} SET uuid = ?1 WHERE is_primary = 1"
                                ),
                                [&wanted],
                            )?;
                            uuid = wanted;
                        }
                    }
                    Ok(uuid)
                }
            }
        })?;
        Ok(D1Registry {
            primary,
            primary_uuid,
            folder,
            open: Mutex::new(HashMap::new()),
            changes: Mutex::new(()),
        })
    }

    /// The primary database's uuid.
    pub fn primary_id(&self) -> &str {
        &self.primary_uuid
    }

    /// The primary database.
    pub fn primary(&self) -> &Arc<Database> {
        &self.primary
    }

    /// One page of the databases whose name is `name` (all when `None`), in creation order
    /// (the primary first), each as [`D1Registry::get`] gives it (wrangler's `d1 list`
    /// prints `num_tables` and `file_size`), and the page's
    /// `result_info` (`page`, `per_page`, `count`, `total_count`). `page` counts from 1;
    /// `per_page` must be in [`PER_PAGE`].
    pub fn list(
        &self,
        name: Option<&str>,
        page: usize,
        per_page: usize,
    ) -> Result<(Vec<Json>, Json)> {
        if page == 0 {
            return Err(Error::invalid("page", "pages count from 1"));
        }
        if !PER_PAGE.contains(&per_page) {
            return Err(Error::invalid(
                "per_page",
                format!(
                    "{per_page} is outside {}..={}",
                    PER_PAGE.start(),
                    PER_PAGE.end()
                ),
            ));
        }
        let all: Vec<Entry> = self
            .entries()?
            .into_iter()
            .filter(|e| name.is_none_or(|n| e.name == n))
            .collect();
        let total = all.len();
        let items: Vec<Json> = all
            .into_iter()
            .skip((page - 1).saturating_mul(per_page))
            .take(per_page)
            .map(|e| {
                // A file removed behind the server's back still lists, without its sizes.
                self.open_entry(&e)
                    .and_then(|db| details(&e, &db))
                    .unwrap_or_else(|_| list_item(&e))
            })
            .collect();
        let info = json!({
            "page": page,
            "per_page": per_page,
            "count": items.len(),
            "total_count": total,
        });
        Ok((items, info))
    }

    /// The database `id` (its uuid, or its name) as Cloudflare's get returns it: `uuid`,
    /// `name`, `version`, `num_tables`, `file_size`, `created_at`, `jurisdiction`,
    /// `read_replication`.
    pub fn get(&self, id: &str) -> Result<Json> {
        let entry = self.find(id)?;
        let db = self.open_entry(&entry)?;
        details(&entry, &db)
    }

    /// Creates a database from the body of Cloudflare's create request
    /// (`{"name", "primary_location_hint"?, "jurisdiction"?}`; the hint and jurisdiction are
    /// checked against Cloudflare's lists and otherwise ignored) and returns it as
    /// [`D1Registry::get`] does. A name another database has is refused with
    /// [`D1Problem::NameTaken`].
    pub fn create(&self, body: &Json) -> Result<Json> {
        let body = body
            .as_object()
            .ok_or_else(|| Error::invalid("body", "expected a JSON object"))?;
        let name = match body.get("name") {
            Some(Json::String(s)) => s.as_str(),
            Some(_) => return Err(Error::invalid("name", "expected a string")),
            None => return Err(Error::invalid("name", "missing")),
        };
        validate_name(name)?;
        check_choice(
            body.get("primary_location_hint"),
            "primary_location_hint",
            &LOCATION_HINTS,
        )?;
        check_choice(body.get("jurisdiction"), "jurisdiction", &JURISDICTIONS)?;
        let _changes = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        if self.entries()?.iter().any(|e| e.name == name) {
            return Err(Error::D1Database {
                database: name.to_owned(),
                problem: D1Problem::NameTaken,
            });
        }
        let uuid = new_uuid()?;
        let db = match &self.folder {
            Some(folder) => Database::open(folder.join(format!("{uuid}.sqlite")))?,
            None => Database::open_in_memory()?,
        };
        let db = Arc::new(db);
        let conn = &self.primary.shared().admin;
        let schema = quote_ident(conn.schema());
        let created_at = crate::time::now_iso();
        let inserted = conn.internal_tx(|tx| {
            tx.execute(
                &format!(
                    "INSERT INTO {schema}.{TABLE} (uuid, name, seq, is_primary, created_at) \
                     SELECT ?1, ?2, coalesce(max(seq), 0) + 1, 0, ?3 FROM {schema}.{TABLE}"
                ),
                rusqlite::params![uuid, name, created_at],
            )?;
            Ok(())
        });
        if let Err(e) = inserted {
            drop(db);
            self.remove_files(&uuid);
            return Err(e);
        }
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(uuid.clone(), Arc::clone(&db));
        let entry = Entry {
            uuid,
            name: name.to_owned(),
            primary: false,
            created_at,
        };
        details(&entry, &db)
    }

    /// Deletes the database `id` (uuid or name): its row, then its files. The primary is
    /// refused with [`D1Problem::Primary`]. A request already holding the database finishes
    /// on it.
    pub fn delete(&self, id: &str) -> Result<()> {
        let _changes = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        let entry = self.find(id)?;
        if entry.primary {
            return Err(Error::D1Database {
                database: id.to_owned(),
                problem: D1Problem::Primary,
            });
        }
        let conn = &self.primary.shared().admin;
        let schema = quote_ident(conn.schema());
        conn.internal_tx(|tx| {
            tx.execute(
                &format!("DELETE FROM {schema}.{TABLE} WHERE uuid = ?1 AND is_primary = 0"),
                [&entry.uuid],
            )?;
            Ok(())
        })?;
        let db = self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&entry.uuid);
        drop(db);
        self.remove_files(&entry.uuid);
        Ok(())
    }

    /// The database `id` (uuid or name), opened.
    pub fn database(&self, id: &str) -> Result<Arc<Database>> {
        let entry = self.find(id)?;
        self.open_entry(&entry)
    }

    /// The uuid of the database `id` (uuid or name).
    pub fn uuid_of(&self, id: &str) -> Result<String> {
        Ok(self.find(id)?.uuid)
    }

    fn open_entry(&self, entry: &Entry) -> Result<Arc<Database>> {
        if entry.primary {
            return Ok(Arc::clone(&self.primary));
        }
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(db) = open.get(&entry.uuid) {
            return Ok(Arc::clone(db));
        }
        let Some(folder) = &self.folder else {
            return Err(Error::D1Database {
                database: entry.uuid.clone(),
                problem: D1Problem::NotFound,
            });
        };
        let path = folder.join(format!("{}.sqlite", entry.uuid));
        if !path.exists() {
            return Err(Error::D1Database {
                database: entry.uuid.clone(),
                problem: D1Problem::NotFound,
            });
        }
        let db = Arc::new(Database::open(path)?);
        open.insert(entry.uuid.clone(), Arc::clone(&db));
        Ok(db)
    }

    /// Every row, in creation order.
    fn entries(&self) -> Result<Vec<Entry>> {
        let conn = &self.primary.shared().admin;
        let schema = quote_ident(conn.schema());
        conn.internal_with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT uuid, name, is_primary, created_at FROM {schema}.{TABLE} ORDER BY seq"
            ))?;
            let rows = stmt.query_map([], |r| {
                Ok(Entry {
                    uuid: r.get(0)?,
                    name: r.get(1)?,
                    primary: r.get::<_, i64>(2)? == 1,
                    created_at: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// The row whose uuid (any case) or name is `id`; a uuid wins over a name.
    fn find(&self, id: &str) -> Result<Entry> {
        let entries = self.entries()?;
        entries
            .iter()
            .find(|e| e.uuid.eq_ignore_ascii_case(id))
            .or_else(|| entries.iter().find(|e| e.name == id))
            .cloned()
            .ok_or_else(|| Error::D1Database {
                database: id.to_owned(),
                problem: D1Problem::NotFound,
            })
    }

    /// Removes a created database's files; what cannot be removed is left (a later create
    /// uses a new uuid, so nothing reads it again).
    fn remove_files(&self, uuid: &str) {
        let Some(folder) = &self.folder else {
            return;
        };
        let base = format!("{uuid}.sqlite");
        for suffix in ["", "-wal", "-shm", "-journal", ".key"] {
            let _ = std::fs::remove_file(folder.join(format!("{base}{suffix}")));
        }
        let _ = std::fs::remove_dir_all(folder.join(format!("{base}.vectors")));
    }
}

/// A list item as Cloudflare's list documents it (no sizes).
fn list_item(e: &Entry) -> Json {
    json!({
        "uuid": e.uuid,
        "name": e.name,
        "version": "production",
        "created_at": e.created_at,
        "jurisdiction": Json::Null,
    })
}

/// A database's details as Cloudflare's get documents them.
fn details(e: &Entry, db: &Database) -> Result<Json> {
    let (num_tables, file_size) = db.shared().admin.internal_with(|c| {
        let tables: i64 = c.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' \
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
             AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\' \
             AND name NOT LIKE 'd1vec\\_%' ESCAPE '\\'",
            [],
            |r| r.get(0),
        )?;
        let size: i64 = c.query_row(
            "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
            [],
            |r| r.get(0),
        )?;
        Ok((tables, size))
    })?;
    Ok(json!({
        "uuid": e.uuid,
        "name": e.name,
        "version": "production",
        "num_tables": num_tables,
        "file_size": file_size,
        "created_at": e.created_at,
        "jurisdiction": Json::Null,
        "read_replication": {"mode": "disabled"},
    }))
}

/// A database name: 1 to [`MAX_NAME_BYTES`] bytes, no control characters, no `/`, and not
/// shaped like a uuid (requests name a database by uuid or name, so they must not collide).
fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(Error::invalid(
            "name",
            format!(
                "a database name is 1 to {MAX_NAME_BYTES} bytes, got {}",
                name.len()
            ),
        ));
    }
    if name.chars().any(|c| c.is_control() || c == '/') {
        return Err(Error::invalid(
            "name",
            "a database name may not hold control characters or `/`",
        ));
    }
    if uuid::Uuid::parse_str(name).is_ok() {
        return Err(Error::invalid(
            "name",
            "a database name may not be shaped like a uuid",
        ));
    }
    Ok(())
}

/// A uuid in its hyphenated form.
fn validate_uuid(text: &str) -> Result<()> {
    match uuid::Uuid::try_parse(text) {
        Ok(u) if u.hyphenated().to_string().eq_ignore_ascii_case(text) => Ok(()),
        _ => Err(Error::invalid(
            "uuid",
            "expected a hyphenated uuid (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
        )),
    }
}

/// An optional field that must be one of `choices` when given.
fn check_choice(value: Option<&Json>, what: &'static str, choices: &[&str]) -> Result<()> {
    match value {
        None | Some(Json::Null) => Ok(()),
        Some(Json::String(s)) if choices.contains(&s.as_str()) => Ok(()),
        Some(other) => Err(Error::invalid(
            what,
            format!("expected one of {choices:?}, got {other}"),
        )),
    }
}

/// A new random (version 4) uuid.
fn new_uuid() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| Error::invalid("randomness", e.to_string()))?;
    Ok(uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string())
}
