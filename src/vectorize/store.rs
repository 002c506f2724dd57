//! The vector indexes' source of truth: tables in the database's own SQLite file.
//!
//! Every write call is one SQLite transaction; the in-memory graphs and the sealed segment
//! files are derived from these rows and can always be rebuilt from them. Table names start
//! with `d1vec_`: tenant sessions cannot reach them and `d1 export` leaves them out.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value as Json;

use crate::index::Metric;
use crate::vectorize::filter::eval::{indexed_value, IndexType, Indexed};
use crate::vectorize::filter::parse::Scalar;

/// The format version of the `d1vec_` vector tables this code writes (docs/format.md,
/// section 4.0). Version 1 (no version row) had one id space per index; version 2 gives
/// each namespace of a private index its own id space and records, per namespace, the last
/// mutation that touched it.
pub(crate) const TABLES_VERSION: i64 = 2;

/// The versions this code reads and writes as they are. Older ones down to
/// [`OLDEST_UPGRADABLE`] are upgraded in place; newer ones are refused and left untouched.
pub(crate) const READABLE_VERSIONS: std::ops::RangeInclusive<i64> = 2..=TABLES_VERSION;

/// The oldest format version [`upgrade_from_v1`] can bring to [`TABLES_VERSION`].
pub(crate) const OLDEST_UPGRADABLE: i64 = 1;

/// The row of `d1vec_versions` that holds the vector tables' format version.
const VERSION_KEY: &str = "vector_tables";

/// Creates the tables (format version [`TABLES_VERSION`]) if they are missing.
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS d1vec_versions (
    component TEXT PRIMARY KEY,
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS d1vec_indexes (
    index_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT,
    dimensions INTEGER NOT NULL,
    metric TEXT NOT NULL,
    scope TEXT NOT NULL CHECK (scope IN ('private', 'shared')),
    created_on TEXT NOT NULL,
    modified_on TEXT NOT NULL,
    next_vid INTEGER NOT NULL DEFAULT 1,
    seq INTEGER NOT NULL DEFAULT 0,
    last_mutation TEXT,
    last_mutation_at TEXT
);
CREATE TABLE IF NOT EXISTS d1vec_vectors (
    index_id INTEGER NOT NULL,
    vid INTEGER NOT NULL,
    id TEXT NOT NULL,
    namespace TEXT,
    vals BLOB NOT NULL,
    metadata TEXT,
    seq INTEGER NOT NULL,
    space TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (index_id, vid)
);
CREATE UNIQUE INDEX IF NOT EXISTS d1vec_vectors_key ON d1vec_vectors (index_id, id, space);
CREATE INDEX IF NOT EXISTS d1vec_vectors_ns ON d1vec_vectors (index_id, namespace, vid);
CREATE TABLE IF NOT EXISTS d1vec_tombstones (
    index_id INTEGER NOT NULL,
    vid INTEGER NOT NULL,
    id TEXT NOT NULL,
    namespace TEXT,
    row_seq INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (index_id, vid)
);
CREATE TABLE IF NOT EXISTS d1vec_metadata_indexes (
    index_id INTEGER NOT NULL,
    property TEXT NOT NULL,
    index_type TEXT NOT NULL CHECK (index_type IN ('string', 'number', 'boolean')),
    created_seq INTEGER NOT NULL,
    PRIMARY KEY (index_id, property)
);
CREATE TABLE IF NOT EXISTS d1vec_meta_values (
    index_id INTEGER NOT NULL,
    property TEXT NOT NULL,
    vid INTEGER NOT NULL,
    val,
    PRIMARY KEY (index_id, property, vid)
);
CREATE INDEX IF NOT EXISTS d1vec_meta_values_val ON d1vec_meta_values (index_id, property, val, vid);
CREATE TABLE IF NOT EXISTS d1vec_mutations (
    index_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    mutation_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (index_id, seq)
);
CREATE TABLE IF NOT EXISTS d1vec_namespace_mutations (
    index_id INTEGER NOT NULL,
    namespace TEXT NOT NULL,
    seq INTEGER NOT NULL,
    mutation_id TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (index_id, namespace)
);
";

/// What a database holds of the vector tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TablesFound {
    /// No vector table yet.
    Missing,
    /// The tables, at this format version (1 when they predate the version row).
    Version(i64),
}

/// Whether `main` has a table named `name`.
pub(crate) fn table_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM main.sqlite_schema WHERE type = 'table' AND name = ?1)",
        [name],
        |r| r.get(0),
    )
}

/// Which format version the vector tables are at, if they exist. Only reads.
pub(crate) fn tables_found(conn: &Connection) -> rusqlite::Result<TablesFound> {
    if table_exists(conn, "d1vec_versions")? {
        let version: Option<i64> = conn
            .query_row(
                "SELECT version FROM d1vec_versions WHERE component = ?1",
                [VERSION_KEY],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(v) = version {
            return Ok(TablesFound::Version(v));
        }
    }
    Ok(if table_exists(conn, "d1vec_indexes")? {
        TablesFound::Version(1)
    } else {
        TablesFound::Missing
    })
}

/// Creates every table at [`TABLES_VERSION`]; for a caller inside a write transaction that
/// found them [`TablesFound::Missing`].
pub(crate) fn create_tables(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)?;
    conn.execute(
        "INSERT OR IGNORE INTO d1vec_versions (component, version) VALUES (?1, ?2)",
        params![VERSION_KEY, TABLES_VERSION],
    )?;
    Ok(())
}

/// Brings version-1 tables to [`TABLES_VERSION`], in the caller's write transaction.
///
/// Version 1 had one id space per index (a unique `(index_id, id)`). Every existing row
/// keeps its id, which stays unique in its new space: rows of private indexes move to the
/// space of their namespace (`''` without one), rows of shared indexes stay in `''`. The
/// per-namespace last mutation is rebuilt from what the rows still show: the newest `seq`
/// among a namespace's live vectors and tombstones.
pub(crate) fn upgrade_from_v1(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "ALTER TABLE d1vec_vectors ADD COLUMN space TEXT NOT NULL DEFAULT '';
         UPDATE d1vec_vectors SET space = coalesce(namespace, '')
          WHERE index_id IN (SELECT index_id FROM d1vec_indexes WHERE scope = 'private');
         DROP INDEX IF EXISTS d1vec_vectors_id;",
    )?;
    create_tables(conn)?;
    conn.execute_batch(
        "INSERT OR REPLACE INTO d1vec_namespace_mutations (index_id, namespace, seq, mutation_id, at)
         SELECT t.index_id, t.namespace, t.seq, m.mutation_id, m.at
           FROM (SELECT index_id, namespace, max(seq) AS seq
                   FROM (SELECT index_id, namespace, seq FROM d1vec_vectors
                         UNION ALL
                         SELECT index_id, namespace, seq FROM d1vec_tombstones)
                  WHERE namespace IS NOT NULL
                  GROUP BY index_id, namespace) AS t
           JOIN d1vec_mutations AS m ON m.index_id = t.index_id AND m.seq = t.seq;",
    )?;
    conn.execute(
        "INSERT OR REPLACE INTO d1vec_versions (component, version) VALUES (?1, ?2)",
        params![VERSION_KEY, TABLES_VERSION],
    )?;
    Ok(())
}

/// Whether a private index confines each tenant to its own namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Each tenant session reads and writes only the namespace named after its tenant.
    Private,
    /// Every tenant session reads all of it; only the admin surface writes.
    Shared,
}

impl Scope {
    /// `private` or `shared`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Private => "private",
            Scope::Shared => "shared",
        }
    }
}

/// One index's row of `d1vec_indexes`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IndexRow {
    pub index_id: i64,
    pub name: String,
    pub description: Option<String>,
    pub dimensions: usize,
    pub metric: Metric,
    pub scope: Scope,
    pub created_on: String,
    pub modified_on: String,
    pub seq: i64,
    pub last_mutation: Option<String>,
    pub last_mutation_at: Option<String>,
}

fn row_to_index(r: &rusqlite::Row<'_>) -> rusqlite::Result<IndexRow> {
    let metric: String = r.get("metric")?;
    let scope: String = r.get("scope")?;
    Ok(IndexRow {
        index_id: r.get("index_id")?,
        name: r.get("name")?,
        description: r.get("description")?,
        dimensions: r.get::<_, i64>("dimensions")?.try_into().unwrap_or(0),
        metric: Metric::parse(&metric).unwrap_or(Metric::Cosine),
        scope: if scope == "private" {
            Scope::Private
        } else {
            Scope::Shared
        },
        created_on: r.get("created_on")?,
        modified_on: r.get("modified_on")?,
        seq: r.get("seq")?,
        last_mutation: r.get("last_mutation")?,
        last_mutation_at: r.get("last_mutation_at")?,
    })
}

/// The index named `name`, if any.
pub(crate) fn index_by_name(conn: &Connection, name: &str) -> rusqlite::Result<Option<IndexRow>> {
    conn.query_row(
        "SELECT * FROM d1vec_indexes WHERE name = ?1",
        [name],
        row_to_index,
    )
    .optional()
}

/// Every index, by name.
pub(crate) fn list_indexes(conn: &Connection) -> rusqlite::Result<Vec<IndexRow>> {
    let mut stmt = conn.prepare("SELECT * FROM d1vec_indexes ORDER BY name")?;
    let rows = stmt.query_map([], row_to_index)?;
    rows.collect()
}

/// Inserts a new index row; returns its id.
pub(crate) fn create_index(
    conn: &Connection,
    name: &str,
    description: Option<&str>,
    dimensions: usize,
    metric: Metric,
    scope: Scope,
    now: &str,
) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO d1vec_indexes (name, description, dimensions, metric, scope, created_on, modified_on)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        params![name, description, dimensions as i64, metric.as_str(), scope.as_str(), now],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Removes an index and everything it holds.
pub(crate) fn delete_index(conn: &Connection, index_id: i64) -> rusqlite::Result<()> {
    for table in [
        "d1vec_vectors",
        "d1vec_tombstones",
        "d1vec_metadata_indexes",
        "d1vec_meta_values",
        "d1vec_mutations",
        "d1vec_namespace_mutations",
        "d1vec_indexes",
    ] {
        conn.execute(
            &format!("DELETE FROM {table} WHERE index_id = ?1"),
            [index_id],
        )?;
    }
    Ok(())
}

/// The metadata indexes of an index: property, type, creation sequence.
pub(crate) fn metadata_indexes(
    conn: &Connection,
    index_id: i64,
) -> rusqlite::Result<Vec<(String, IndexType, i64)>> {
    let mut stmt = conn.prepare(
        "SELECT property, index_type, created_seq FROM d1vec_metadata_indexes WHERE index_id = ?1 ORDER BY property",
    )?;
    let rows = stmt.query_map([index_id], |r| {
        let ty: String = r.get(1)?;
        let ty = match ty.as_str() {
            "number" => IndexType::Number,
            "boolean" => IndexType::Boolean,
            _ => IndexType::String,
        };
        Ok((r.get(0)?, ty, r.get(2)?))
    })?;
    rows.collect()
}

/// The string SQLite stores for an index type.
pub(crate) fn index_type_str(ty: IndexType) -> &'static str {
    match ty {
        IndexType::String => "string",
        IndexType::Number => "number",
        IndexType::Boolean => "boolean",
    }
}

/// Advances the index's mutation sequence and records the mutation; returns the new seq.
pub(crate) fn next_mutation(
    conn: &Connection,
    index_id: i64,
    kind: &str,
    mutation_id: &str,
    now: &str,
) -> rusqlite::Result<i64> {
    let seq: i64 = conn.query_row(
        // `modified_on` dates the index's configuration (its metadata indexes), as in
        // Vectorize; vector writes leave it, so it never shows when any tenant wrote.
        "UPDATE d1vec_indexes SET seq = seq + 1, last_mutation = ?2, last_mutation_at = ?3,
             modified_on = CASE WHEN ?4 IN ('insert', 'upsert', 'delete') THEN modified_on ELSE ?3 END
         WHERE index_id = ?1 RETURNING seq",
        params![index_id, mutation_id, now, kind],
        |r| r.get(0),
    )?;
    conn.execute(
        "INSERT INTO d1vec_mutations (index_id, seq, mutation_id, kind, at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![index_id, seq, mutation_id, kind, now],
    )?;
    Ok(seq)
}

/// The internal id the index will hand out next: every committed vid is below it.
pub(crate) fn next_vid(conn: &Connection, index_id: i64) -> rusqlite::Result<u64> {
    let next: i64 = conn.query_row(
        "SELECT next_vid FROM d1vec_indexes WHERE index_id = ?1",
        [index_id],
        |r| r.get(0),
    )?;
    Ok(u64::try_from(next).unwrap_or(0))
}

/// Raises the index's next internal id to at least `floor` (never lowers it).
pub(crate) fn raise_next_vid(conn: &Connection, index_id: i64, floor: u64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE d1vec_indexes SET next_vid = ?2 WHERE index_id = ?1 AND next_vid < ?2",
    )?
    .execute(params![index_id, i64::try_from(floor).unwrap_or(i64::MAX)])?;
    Ok(())
}

/// Allocates `n` fresh internal ids; returns the first.
pub(crate) fn allocate_vids(conn: &Connection, index_id: i64, n: usize) -> rusqlite::Result<u64> {
    let first: i64 = conn.query_row(
        "UPDATE d1vec_indexes SET next_vid = next_vid + ?2 WHERE index_id = ?1 RETURNING next_vid - ?2",
        params![index_id, n as i64],
        |r| r.get(0),
    )?;
    Ok(u64::try_from(first).unwrap_or(0))
}

/// A stored vector as SQLite holds it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredVector {
    pub vid: u64,
    pub id: String,
    pub namespace: Option<String>,
    pub values: Vec<f32>,
    pub metadata: Option<Json>,
}

/// Encodes values as a little-endian f32 BLOB.
pub(crate) fn encode_values(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Decodes a little-endian f32 BLOB.
pub(crate) fn decode_values(blob: &[u8]) -> Vec<f32> {
    blob.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn row_to_vector(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredVector> {
    let metadata: Option<String> = r.get(4)?;
    Ok(StoredVector {
        vid: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
        id: r.get(1)?,
        namespace: r.get(2)?,
        values: decode_values(&r.get::<_, Vec<u8>>(3)?),
        metadata: metadata.and_then(|m| serde_json::from_str(&m).ok()),
    })
}

/// The live vector with Vectorize id `id` in id space `space` (see [`space_of`]), if any.
pub(crate) fn vector_in_space(
    conn: &Connection,
    index_id: i64,
    space: &str,
    id: &str,
) -> rusqlite::Result<Option<StoredVector>> {
    conn.prepare_cached(
        "SELECT vid, id, namespace, vals, metadata FROM d1vec_vectors WHERE index_id = ?1 AND id = ?2 AND space = ?3",
    )?
    .query_row(params![index_id, id, space], row_to_vector)
    .optional()
}

/// Every live vector with Vectorize id `id`, whatever its id space, by space: one at most on
/// a shared index, one per namespace holding it on a private one.
pub(crate) fn vectors_with_id(
    conn: &Connection,
    index_id: i64,
    id: &str,
) -> rusqlite::Result<Vec<StoredVector>> {
    let mut stmt = conn.prepare_cached(
        "SELECT vid, id, namespace, vals, metadata FROM d1vec_vectors WHERE index_id = ?1 AND id = ?2 ORDER BY space",
    )?;
    let rows = stmt.query_map(params![index_id, id], row_to_vector)?;
    rows.collect()
}

/// The id space a vector with `namespace` belongs to: on a private index its namespace (`''`
/// without one; a namespace is never empty), so that each tenant's namespace holds its own
/// ids; on a shared index `''`, one id space for the whole index.
pub(crate) fn space_of(scope: Scope, namespace: Option<&str>) -> &str {
    match scope {
        Scope::Private => namespace.unwrap_or(""),
        Scope::Shared => "",
    }
}

/// Whether any live vector of the index is in `namespace`.
pub(crate) fn namespace_exists(
    conn: &Connection,
    index_id: i64,
    namespace: &str,
) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM d1vec_vectors WHERE index_id = ?1 AND namespace = ?2)",
    )?
    .query_row(params![index_id, namespace], |r| r.get(0))
}

/// How many namespaces the index's live vectors use, counting no further than `cap`. Each
/// step seeks the next namespace in `d1vec_vectors_ns`: the cost grows with the namespaces,
/// not with the vectors.
pub(crate) fn count_namespaces(
    conn: &Connection,
    index_id: i64,
    cap: usize,
) -> rusqlite::Result<usize> {
    let n: i64 = conn.query_row(
        "WITH RECURSIVE ns(n) AS (
             SELECT (SELECT min(namespace) FROM d1vec_vectors WHERE index_id = ?1)
             UNION ALL
             SELECT (SELECT min(namespace) FROM d1vec_vectors WHERE index_id = ?1 AND namespace > ns.n)
               FROM ns WHERE ns.n IS NOT NULL
             LIMIT ?2
         )
         SELECT count(n) FROM ns",
        params![index_id, i64::try_from(cap.saturating_add(1)).unwrap_or(i64::MAX)],
        |r| r.get(0),
    )?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Records mutation `seq` as the last one that touched each of `namespaces`.
pub(crate) fn touch_namespaces<'a>(
    conn: &Connection,
    index_id: i64,
    namespaces: impl IntoIterator<Item = &'a str>,
    seq: i64,
    mutation_id: &str,
    now: &str,
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO d1vec_namespace_mutations (index_id, namespace, seq, mutation_id, at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (index_id, namespace) DO UPDATE
            SET seq = excluded.seq, mutation_id = excluded.mutation_id, at = excluded.at",
    )?;
    for ns in namespaces {
        stmt.execute(params![index_id, ns, seq, mutation_id, now])?;
    }
    Ok(())
}

/// The last mutation that touched `namespace`: its id and time.
pub(crate) fn namespace_mutation(
    conn: &Connection,
    index_id: i64,
    namespace: &str,
) -> rusqlite::Result<Option<(String, String)>> {
    conn.query_row(
        "SELECT mutation_id, at FROM d1vec_namespace_mutations WHERE index_id = ?1 AND namespace = ?2",
        params![index_id, namespace],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

/// How many live vectors of the index are in `namespace`.
pub(crate) fn count_in_namespace(
    conn: &Connection,
    index_id: i64,
    namespace: &str,
) -> rusqlite::Result<u64> {
    conn.query_row(
        "SELECT count(*) FROM d1vec_vectors WHERE index_id = ?1 AND namespace = ?2",
        params![index_id, namespace],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| u64::try_from(n).unwrap_or(0))
}

/// The live vectors with the given internal ids (missing ones are skipped).
pub(crate) fn vectors_by_vid(
    conn: &Connection,
    index_id: i64,
    vids: &[u64],
) -> rusqlite::Result<Vec<StoredVector>> {
    let mut stmt = conn.prepare_cached(
        "SELECT vid, id, namespace, vals, metadata FROM d1vec_vectors WHERE index_id = ?1 AND vid = ?2",
    )?;
    let mut out = Vec::with_capacity(vids.len());
    for &vid in vids {
        if let Some(v) = stmt
            .query_row(params![index_id, vid as i64], row_to_vector)
            .optional()?
        {
            out.push(v);
        }
    }
    Ok(out)
}

/// Every live vector's internal id, Vectorize id and namespace, in vid order.
///
/// Read from two covering indexes (`d1vec_vectors_ns` for vid and namespace,
/// `d1vec_vectors_key` for the id) joined on the rowid here: neither read touches the
/// table's pages, which hold every vector's values (nearly all of the file).
pub(crate) fn live_ids(
    conn: &Connection,
    index_id: i64,
) -> rusqlite::Result<Vec<(u64, String, Option<String>)>> {
    let mut ids = std::collections::HashMap::new();
    let mut stmt = conn.prepare(
        "SELECT rowid, id FROM d1vec_vectors INDEXED BY d1vec_vectors_key WHERE index_id = ?1",
    )?;
    let rows = stmt.query_map([index_id], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
    })?;
    for row in rows {
        let (rowid, id) = row?;
        ids.insert(rowid, id);
    }
    let mut stmt = conn.prepare(
        "SELECT rowid, vid, namespace FROM d1vec_vectors INDEXED BY d1vec_vectors_ns WHERE index_id = ?1",
    )?;
    let rows = stmt.query_map([index_id], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
            r.get::<_, Option<String>>(2)?,
        ))
    })?;
    let mut all = Vec::with_capacity(ids.len());
    for row in rows {
        let (rowid, vid, ns) = row?;
        // Both reads are in one transaction: every row is in both indexes.
        let id = ids.remove(&rowid).unwrap_or_default();
        all.push((vid, id, ns));
    }
    all.sort_unstable_by_key(|(vid, _, _)| *vid);
    Ok(all)
}

/// The earliest due time (ms) of index `index_id`'s queued writes, if it has any.
pub(crate) fn earliest_pending_due(
    conn: &Connection,
    index_id: i64,
) -> rusqlite::Result<Option<i64>> {
    if !table_exists(conn, "d1vec_pending_writes")? {
        return Ok(None);
    }
    conn.query_row(
        "SELECT min(due_ms) FROM d1vec_pending_writes WHERE index_id = ?1",
        [index_id],
        |r| r.get(0),
    )
}

/// Deletes the live vector `old` and its indexed metadata, leaving a tombstone that keeps
/// its id, namespace and writing sequence (list-vectors snapshots still show it).
pub(crate) fn delete_vector_with(
    conn: &Connection,
    index_id: i64,
    old: &StoredVector,
    seq: i64,
) -> rusqlite::Result<()> {
    let vid = old.vid as i64;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO d1vec_tombstones (index_id, vid, id, namespace, row_seq, seq)
         SELECT index_id, vid, id, namespace, seq, ?3 FROM d1vec_vectors WHERE index_id = ?1 AND vid = ?2",
    )?
    .execute(params![index_id, vid, seq])?;
    conn.prepare_cached("DELETE FROM d1vec_vectors WHERE index_id = ?1 AND vid = ?2")?
        .execute(params![index_id, vid])?;
    conn.prepare_cached("DELETE FROM d1vec_meta_values WHERE index_id = ?1 AND vid = ?2")?
        .execute(params![index_id, vid])?;
    Ok(())
}

/// Writes a new live vector under internal id `vid` (`v.vid` is not read), in id space
/// `space`, and the indexed representation of its metadata for every metadata index that
/// exists now.
pub(crate) fn insert_vector(
    conn: &Connection,
    index_id: i64,
    vid: u64,
    v: &StoredVector,
    space: &str,
    seq: i64,
    meta_indexes: &[(String, IndexType, i64)],
) -> rusqlite::Result<()> {
    let metadata = v.metadata.as_ref().map(|m| m.to_string());
    conn.prepare_cached(
        "INSERT INTO d1vec_vectors (index_id, vid, id, namespace, vals, metadata, seq, space) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![index_id, vid as i64, v.id, v.namespace, encode_values(&v.values), metadata, seq, space])?;
    let mut put = conn.prepare_cached(
        "INSERT INTO d1vec_meta_values (index_id, property, vid, val) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (property, ty, _) in meta_indexes {
        let val = match indexed_value(v.metadata.as_ref(), property, *ty) {
            Indexed::Absent => continue,
            Indexed::Null => rusqlite::types::Value::Null,
            Indexed::Value(s) => scalar_to_sql(&s),
        };
        put.execute(params![index_id, property, vid as i64, val])?;
    }
    Ok(())
}

/// Every indexed metadata value of an index, as `insert_vector` stored it: vid, property
/// and value (typed by the property's metadata index in `meta_indexes`). The in-memory
/// filter index is built from this at load.
pub(crate) fn meta_values(
    conn: &Connection,
    index_id: i64,
    meta_indexes: &[(String, IndexType, i64)],
) -> rusqlite::Result<Vec<(u64, String, Indexed)>> {
    let mut stmt = conn.prepare(
        "SELECT property, vid, val FROM d1vec_meta_values WHERE index_id = ?1 ORDER BY property, vid",
    )?;
    let mut rows = stmt.query([index_id])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let property: String = r.get(0)?;
        let vid = u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0);
        let Some((_, ty, _)) = meta_indexes.iter().find(|(p, _, _)| *p == property) else {
            continue;
        };
        let value = super::filter::bitmap::indexed_from_sql(*ty, r.get_ref(2)?);
        // A value of another type than its index's: never written by `insert_vector`.
        if value == Indexed::Absent {
            continue;
        }
        out.push((vid, property, value));
    }
    Ok(out)
}

/// The SQLite value an indexed scalar is stored as.
pub(crate) fn scalar_to_sql(s: &Scalar) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match s {
        Scalar::Null => Value::Null,
        Scalar::Bool(b) => Value::Integer(i64::from(*b)),
        Scalar::Number(n) => Value::Real(*n),
        Scalar::String(t) => Value::Text(t.clone()),
    }
}

/// How many live vectors an index holds.
pub(crate) fn count_vectors(conn: &Connection, index_id: i64) -> rusqlite::Result<u64> {
    conn.query_row(
        "SELECT count(*) FROM d1vec_vectors WHERE index_id = ?1",
        [index_id],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| u64::try_from(n).unwrap_or(0))
}

/// Whether `e` is SQLite saying another connection holds a lock (`SQLITE_BUSY`, including
/// `BUSY_SNAPSHOT` and `BUSY_RECOVERY`, or `SQLITE_LOCKED`): worth retrying.
pub(crate) fn is_busy(e: &crate::error::Error) -> bool {
    use rusqlite::ErrorCode;
    matches!(
        e,
        crate::error::Error::Sql(rusqlite::Error::SqliteFailure(f, _))
            if matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Runs `attempt` until it returns something other than a busy error ([`is_busy`]), or
/// until `patience` has passed since the first attempt; then returns its last result.
///
/// SQLite's busy timeout already makes `BEGIN IMMEDIATE` wait for another writer; this
/// covers what it does not: a busy error returned without waiting (a stale WAL snapshot,
/// WAL recovery in another process) or a wait that ran out while the queue was still moving.
/// Waits grow from 1 ms to 50 ms, with jitter so that processes woken together spread out.
pub(crate) fn retry_busy<T>(
    patience: std::time::Duration,
    mut attempt: impl FnMut() -> crate::error::Result<T>,
) -> crate::error::Result<T> {
    let started = std::time::Instant::now();
    let mut jitter = crate::rng::Rng(
        u64::from(std::process::id()) << 32
            ^ u64::from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.subsec_nanos())
                    .unwrap_or(0),
            ),
    );
    let mut wait_ms: u64 = 1;
    loop {
        match attempt() {
            Err(e) if is_busy(&e) && started.elapsed() < patience => {
                let sleep = wait_ms + jitter.next_u64() % (wait_ms + 1);
                std::thread::sleep(std::time::Duration::from_millis(sleep));
                wait_ms = (wait_ms * 2).min(50);
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::time::Duration;

    fn busy(extended: std::os::raw::c_int) -> crate::error::Error {
        crate::error::Error::Sql(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(extended),
            Some("database is locked".into()),
        ))
    }

    #[test]
    fn busy_errors_are_retried_until_they_stop() {
        let tries = Cell::new(0);
        // SQLITE_BUSY_SNAPSHOT, SQLITE_BUSY_RECOVERY, SQLITE_LOCKED, then success.
        let errors = [517, 261, 6];
        let got = retry_busy(Duration::from_secs(5), || {
            let n = tries.get();
            tries.set(n + 1);
            match errors.get(n) {
                Some(&code) => Err(busy(code)),
                None => Ok(n),
            }
        });
        assert_eq!(got.unwrap(), 3);
        assert_eq!(tries.get(), 4);
    }

    #[test]
    fn other_errors_and_exhausted_patience_are_returned_at_once() {
        let tries = Cell::new(0);
        let got: crate::error::Result<()> = retry_busy(Duration::from_secs(5), || {
            tries.set(tries.get() + 1);
            Err(crate::error::Error::invalid("x", "not a lock"))
        });
        assert!(matches!(got, Err(crate::error::Error::InvalidInput { .. })));
        assert_eq!(tries.get(), 1, "a non-busy error is not retried");

        tries.set(0);
        let got: crate::error::Result<()> = retry_busy(Duration::ZERO, || {
            tries.set(tries.get() + 1);
            Err(busy(5))
        });
        assert!(got.as_ref().is_err_and(is_busy), "{got:?}");
        assert_eq!(tries.get(), 1, "no patience, no retry");
    }

    #[test]
    fn a_real_lock_held_past_the_busy_timeout_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock.sqlite");
        let holder = Connection::open(&path).unwrap();
        holder
            .execute_batch("PRAGMA journal_mode = wal; CREATE TABLE t (x); BEGIN IMMEDIATE; INSERT INTO t VALUES (1)")
            .unwrap();
        let waiter = Connection::open(&path).unwrap();
        // The busy timeout alone (20 ms) runs out while the lock is held for 150 ms.
        waiter.busy_timeout(Duration::from_millis(20)).unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            holder.execute_batch("COMMIT").unwrap();
        });
        let started = std::time::Instant::now();
        let attempts = Cell::new(0);
        let got = retry_busy(Duration::from_secs(5), || {
            attempts.set(attempts.get() + 1);
            waiter.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (2); COMMIT")?;
            Ok(())
        });
        release.join().unwrap();
        got.unwrap();
        assert!(attempts.get() > 1, "the lock was never met");
        assert!(started.elapsed() >= Duration::from_millis(100));
        let n: i64 = waiter
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2, "both writes are there");
    }
}
