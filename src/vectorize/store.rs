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

/// Creates the tables if they are missing.
pub(crate) const SCHEMA: &str = "
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
    PRIMARY KEY (index_id, vid)
);
CREATE UNIQUE INDEX IF NOT EXISTS d1vec_vectors_id ON d1vec_vectors (index_id, id);
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
";

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
        "UPDATE d1vec_indexes SET seq = seq + 1, last_mutation = ?2, last_mutation_at = ?3, modified_on = ?3
         WHERE index_id = ?1 RETURNING seq",
        params![index_id, mutation_id, now],
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

/// The live vector with Vectorize id `id`, if any.
pub(crate) fn vector_by_id(
    conn: &Connection,
    index_id: i64,
    id: &str,
) -> rusqlite::Result<Option<StoredVector>> {
    conn.query_row(
        "SELECT vid, id, namespace, vals, metadata FROM d1vec_vectors WHERE index_id = ?1 AND id = ?2",
        params![index_id, id],
        row_to_vector,
    )
    .optional()
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

/// Every live internal id and its namespace, in vid order.
pub(crate) fn live_vids(
    conn: &Connection,
    index_id: i64,
) -> rusqlite::Result<Vec<(u64, Option<String>)>> {
    // The (index_id, namespace, vid) index covers this query: reading it never touches the
    // table's pages, which hold every vector's values (nearly all of the file).
    let mut stmt = conn.prepare(
        "SELECT vid, namespace FROM d1vec_vectors INDEXED BY d1vec_vectors_ns WHERE index_id = ?1",
    )?;
    let rows = stmt.query_map([index_id], |r| {
        Ok((u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0), r.get(1)?))
    })?;
    let mut all = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    all.sort_unstable_by_key(|(vid, _)| *vid);
    Ok(all)
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

/// Writes a new live vector and the indexed representation of its metadata for every
/// metadata index that exists now.
pub(crate) fn insert_vector(
    conn: &Connection,
    index_id: i64,
    v: &StoredVector,
    seq: i64,
    meta_indexes: &[(String, IndexType, i64)],
) -> rusqlite::Result<()> {
    let metadata = v.metadata.as_ref().map(|m| m.to_string());
    conn.prepare_cached(
        "INSERT INTO d1vec_vectors (index_id, vid, id, namespace, vals, metadata, seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![index_id, v.vid as i64, v.id, v.namespace, encode_values(&v.values), metadata, seq])?;
    let mut put = conn.prepare_cached(
        "INSERT INTO d1vec_meta_values (index_id, property, vid, val) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (property, ty, _) in meta_indexes {
        let val = match indexed_value(v.metadata.as_ref(), property, *ty) {
            Indexed::Absent => continue,
            Indexed::Null => rusqlite::types::Value::Null,
            Indexed::Value(s) => scalar_to_sql(&s),
        };
        put.execute(params![index_id, property, v.vid as i64, val])?;
    }
    Ok(())
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
