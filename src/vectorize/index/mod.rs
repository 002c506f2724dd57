//! [`VectorIndex`]: one Vectorize index, in the shape of the V2 Workers binding.

mod query;
mod write;

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value as Json};

use super::delay::{self, IndexOptions, Pending};
use super::engine::{prepare, Added, Change, IndexState, Stats};
use super::error::{codes, VectorizeError};
use super::filter::eval::{indexed_value, IndexType, Indexed};
use super::filter::parse::{parse_filter, Scalar};
use super::limits;
use super::planner::{self, Ask, Candidates};
use super::store::{self, IndexRow, Scope, StoredVector};
use super::types::{
    f32_rounded, IndexConfig, IndexDescription, IndexInfo, ListVectorsResponse, Match, Matches,
    MetadataIndex, MutationResult, QueryOptions, ReturnMetadata, Vector,
};
use crate::db::Shared;
use crate::error::{Error, Result};
use crate::index::Metric;

/// What a scoped caller asks of an index before a call: the vector engine's one hook into
/// the tenant policy (`tenant::policy::Scope` implements it). The engine itself decides no
/// tenant rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VectorAction<'a> {
    /// A query (by vector or by id).
    Read,
    /// An insert, upsert or delete.
    Write,
    /// Managing the index (the words name what: "compaction", "metadata indexes", ...).
    Admin(&'a str),
}

/// A caller's scope as the vector engine sees it.
pub(crate) trait VectorScope: Send + Sync + std::fmt::Debug {
    /// The tenant, for error reports.
    fn tenant(&self) -> &str;
    /// The namespace every read and write on an index of `scope` is confined to, if any.
    fn namespace(&self, scope: Scope) -> Option<&str>;
    /// Refuses (or admits) `action` on the index `index` of scope `scope`; called before the
    /// call changes anything.
    fn check(&self, action: VectorAction<'_>, index: &str, scope: Scope) -> Result<()>;
}

/// Who is calling: the admin surface, or a scoped (tenant) caller.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    Admin,
    Scoped(Arc<dyn VectorScope>),
}

/// The scope a delayed write is applied under: the tenant that queued it. Its scope's
/// checks (permission, quota, shared-index refusal) ran when the write was queued; applying
/// it later keeps the one rule the data itself needs, the tenant's namespace on a private
/// index.
#[derive(Debug)]
struct QueuedWrite {
    tenant: String,
}

impl VectorScope for QueuedWrite {
    fn tenant(&self) -> &str {
        &self.tenant
    }

    fn namespace(&self, scope: Scope) -> Option<&str> {
        match scope {
            Scope::Private => Some(&self.tenant),
            Scope::Shared => None,
        }
    }

    fn check(&self, action: VectorAction<'_>, index: &str, scope: Scope) -> Result<()> {
        match action {
            VectorAction::Read => Ok(()),
            VectorAction::Write if scope == Scope::Private => Ok(()),
            _ => Err(Error::TenantViolation {
                tenant: self.tenant.clone(),
                object: format!("a queued write to index `{index}`"),
            }),
        }
    }
}

impl Caller {
    /// Whether the caller is confined to a scope.
    pub(crate) fn is_scoped(&self) -> bool {
        matches!(self, Caller::Scoped(_))
    }
}

/// One Vectorize index. Obtained from [`crate::Database::vectorize`] (unscoped) or
/// [`crate::TenantSession::vectorize`] (confined to the tenant on a private index; read-only on
/// a shared one). Every write is one SQLite transaction and is visible to the next call.
#[derive(Debug)]
pub struct VectorIndex {
    shared: Arc<Shared>,
    row: IndexRow,
    caller: Caller,
    options: IndexOptions,
}

fn verr(code: u32, message: impl Into<String>) -> Error {
    Error::Vectorize(VectorizeError::new(code, message))
}

fn mutation_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// How many read snapshots a search takes at most to find one as new as the index's
/// in-memory state (see `VectorIndex::with_read_state`). Each retry loses only to a write
/// that commits inside one snapshot's few microseconds; with 4 attempts, 1 search in about
/// 25,000 still lost under 32 clients writing 140 times a second (`benches/serve_load.rs`).
const SNAPSHOT_ATTEMPTS: usize = 16;

impl VectorIndex {
    pub(crate) fn open(shared: Arc<Shared>, name: &str, caller: Caller) -> Result<VectorIndex> {
        let row = shared
            .admin
            .internal(|c| store::index_by_name(c, name))?
            .ok_or_else(|| not_found(name))?;
        Ok(VectorIndex {
            shared,
            row,
            caller,
            options: IndexOptions::default(),
        })
    }

    /// [`VectorIndex::open`] reading through `conn`, a connection to this database that the
    /// caller already holds (the `vectorize_query` SQL function's own, mid-statement).
    pub(crate) fn open_on(
        conn: &rusqlite::Connection,
        shared: Arc<Shared>,
        name: &str,
        caller: Caller,
    ) -> Result<VectorIndex> {
        let row = store::index_by_name(conn, name)?.ok_or_else(|| not_found(name))?;
        Ok(VectorIndex {
            shared,
            row,
            caller,
            options: IndexOptions::default(),
        })
    }

    /// This handle with `options` (see [`IndexOptions`]): e.g. a visibility delay for the
    /// writes made through it.
    pub fn with_options(mut self, options: IndexOptions) -> Self {
        self.options = options;
        self
    }

    /// This handle's options.
    pub fn options(&self) -> IndexOptions {
        self.options
    }

    /// The index's name.
    pub fn name(&self) -> &str {
        &self.row.name
    }

    /// Dimensions every vector must have.
    pub fn dimensions(&self) -> usize {
        self.row.dimensions
    }

    /// The metric.
    pub fn metric(&self) -> Metric {
        self.row.metric
    }

    /// Whether tenants are confined to their own namespace.
    pub fn scope(&self) -> Scope {
        self.row.scope
    }

    /// Counters of the query paths taken so far in this database.
    pub fn stats(&self) -> Stats {
        self.shared.vectors.stats()
    }

    fn tenant(&self) -> Option<&str> {
        match &self.caller {
            Caller::Scoped(scope) => Some(scope.tenant()),
            Caller::Admin => None,
        }
    }

    fn violation(&self, object: String) -> Error {
        Error::TenantViolation {
            tenant: self.tenant().unwrap_or_default().to_owned(),
            object,
        }
    }

    /// The namespace every read is confined to, if any (the policy decides).
    fn forced_namespace(&self) -> Option<&str> {
        match &self.caller {
            Caller::Scoped(scope) => scope.namespace(self.row.scope),
            Caller::Admin => None,
        }
    }

    /// Asks the caller's scope about `action` (nothing to ask for the admin surface).
    fn check(&self, action: VectorAction<'_>) -> Result<()> {
        match &self.caller {
            Caller::Scoped(scope) => scope.check(action, &self.row.name, self.row.scope),
            Caller::Admin => Ok(()),
        }
    }

    fn check_write(&self) -> Result<()> {
        self.check(VectorAction::Write)
    }

    /// The namespace a read uses: the tenant's on a private index (another is a violation).
    fn read_namespace(&self, asked: Option<&str>) -> Result<Option<String>> {
        match (self.forced_namespace(), asked) {
            (Some(own), Some(a)) if a != own => {
                Err(self.violation(format!("namespace `{a}` of index `{}`", self.row.name)))
            }
            (Some(own), _) => Ok(Some(own.to_owned())),
            (None, a) => Ok(a.map(str::to_owned)),
        }
    }

    /// This index's row as `conn`'s transaction sees it (not found if it was deleted, or
    /// deleted and created again under the same name).
    fn current_row(&self, conn: &rusqlite::Connection) -> Result<IndexRow> {
        store::index_by_name(conn, &self.row.name)?
            .filter(|r| r.index_id == self.row.index_id)
            .ok_or_else(|| not_found(&self.row.name))
    }

    /// Runs `f` in one short write transaction on the admin connection, with the index's
    /// row as that transaction sees it, and retries it while SQLite reports another
    /// connection's lock (up to the busy timeout; see [`store::retry_busy`]). It builds no
    /// index state: a writer holds SQLite's write lock only for its own rows, and the
    /// in-memory state follows after the commit ([`super::engine::Engine::apply`]).
    fn write_tx<T>(
        &self,
        mut f: impl FnMut(&rusqlite::Connection, &IndexRow) -> Result<T>,
    ) -> Result<(IndexRow, T)> {
        let began = std::cell::Cell::new(None);
        let out = store::retry_busy(self.shared.options.busy_timeout, || {
            self.shared.admin.internal_tx(|tx| {
                let row = self.current_row(tx)?;
                began.set(Some(row.seq));
                let out = f(tx, &row)?;
                Ok((row, out))
            })
        });
        if let (Err(_), Some(from)) = (&out, began.get()) {
            // Rolled back: what `f` announced (`Engine::announce`) never commits.
            self.shared.vectors.withdraw_after(self.row.index_id, from);
        }
        self.shared.vectors.wrote();
        out
    }

    /// The index's row in a fresh read snapshot and a state at least as new (loaded on a
    /// reader connection if needed), for sealing and compaction.
    fn read_state(&self) -> Result<(IndexRow, Arc<IndexState>)> {
        let engine = &self.shared.vectors;
        self.shared.read_tx(|tx| {
            let row = self.current_row(tx)?;
            let state = engine.state_for_read(tx, &row)?;
            Ok((row, state))
        })
    }

    /// The stored vectors that `id` names for this caller, read on `conn`: in a tenant's
    /// namespace on a private index (another tenant's vectors are simply not there), in the
    /// one id space of a shared index, and in every namespace for the admin surface on a
    /// private index (one vector per namespace holding the id, by namespace).
    fn lookup(&self, conn: &rusqlite::Connection, id: &str) -> Result<Vec<StoredVector>> {
        let index_id = self.row.index_id;
        Ok(match (self.row.scope, self.forced_namespace()) {
            (_, Some(own)) => store::vector_in_space(conn, index_id, own, id)?
                .into_iter()
                .collect(),
            (Scope::Shared, None) => store::vector_in_space(conn, index_id, "", id)?
                .into_iter()
                .collect(),
            (Scope::Private, None) => store::vectors_with_id(conn, index_id, id)?,
        })
    }

    /// Runs a search against one read snapshot on a reader connection (see
    /// [`crate::db`]'s `read_tx`) with the index's state; a failed read leaves the state be.
    ///
    /// `f` gets `last = false` while it may decline with `Ok(None)`: it does so when, under
    /// the state's read lock, the state holds a write committed after this snapshot began.
    /// That write's vectors would be found and then dropped as missing from the snapshot
    /// (and the vectors it replaced not found), leaving fewer than topK. A newer snapshot
    /// sees the write, so the search takes one, a bounded number of times; the last
    /// attempt (`last = true`) answers from what it has.
    ///
    /// The database's moment read before each snapshot begins marks the state validated
    /// at it ([`super::engine::Engine::validate`]): until the moment changes, queries answer
    /// from the state without SQLite.
    fn with_read_state<T>(
        &self,
        mut f: impl FnMut(&rusqlite::Connection, &IndexRow, &Arc<IndexState>, bool) -> Result<Option<T>>,
    ) -> Result<T> {
        let engine = &self.shared.vectors;
        for attempt in 1..=SNAPSHOT_ATTEMPTS {
            let last = attempt == SNAPSHOT_ATTEMPTS;
            let moment = engine.moment();
            let answered = self.shared.read_tx(|tx| {
                let row = store::index_by_name(tx, &self.row.name)?
                    .filter(|r| r.index_id == self.row.index_id)
                    .ok_or_else(|| not_found(&self.row.name))?;
                let state = engine.state_for_read(tx, &row)?;
                // At least as new as this snapshot, which began after `moment` was read.
                if moment.is_some() {
                    engine.validate(&state, moment);
                }
                f(tx, &row, &state, last)
            })?;
            if let Some(out) = answered {
                return Ok(out);
            }
        }
        Err(Error::invalid(
            "vector search",
            "the search declined its last snapshot",
        ))
    }

    /// [`VectorIndex::with_read_state`], or on `on` when given: a connection already inside
    /// a statement of this database (the SQL function's). Its `Mutex` is held by that
    /// statement, so the admin connection is not touched and no transaction is begun (and
    /// the one snapshot is the last).
    fn with_state_on<T>(
        &self,
        on: Option<&rusqlite::Connection>,
        mut f: impl FnMut(&rusqlite::Connection, &IndexRow, &Arc<IndexState>, bool) -> Result<Option<T>>,
    ) -> Result<T> {
        let Some(conn) = on else {
            return self.with_read_state(f);
        };
        let row = store::index_by_name(conn, &self.row.name)?
            .filter(|r| r.index_id == self.row.index_id)
            .ok_or_else(|| not_found(&self.row.name))?;
        let state = self.shared.vectors.state_for_read(conn, &row)?;
        f(conn, &row, &state, true)?
            .ok_or_else(|| Error::invalid("vector search", "the search declined its snapshot"))
    }

    /// The stored vectors with these ids, in input order, duplicates dropped, missing ids
    /// omitted, all read from one snapshot. At most 20 ids. On a private index a tenant
    /// finds only its own namespace's vectors; the admin surface finds an id in every
    /// namespace that holds it (by namespace).
    pub fn get_by_ids(&self, ids: &[String]) -> Result<Vec<Vector>> {
        self.drain_due()?;
        limits::check_get_ids(ids.len())?;
        self.check(VectorAction::Read)?;
        let mut seen = HashSet::new();
        let found = self.shared.read_tx(|tx| {
            let mut out = Vec::new();
            for id in ids {
                if seen.insert(id.as_str()) {
                    out.extend(self.lookup(tx, id)?);
                }
            }
            Ok(out)
        })?;
        Ok(found
            .into_iter()
            .map(|v| Vector {
                id: v.id,
                values: v.values.iter().map(|&x| f32_rounded(x)).collect(),
                namespace: v.namespace,
                metadata: v.metadata.and_then(|m| m.as_object().cloned()),
            })
            .collect())
    }

    /// Vectorize's `describe()`: dimensions, vector count and the last applied mutation.
    ///
    /// In a tenant session on a private index everything is the tenant's own: the vectors
    /// in its namespace, and the last mutation that touched that namespace (one the tenant
    /// made, or an admin write or delete of vectors in it), `null` before any. Other
    /// tenants' writes never move them.
    pub fn describe(&self) -> Result<IndexInfo> {
        self.drain_due()?;
        self.shared.read_tx(|tx| {
            let row = self.current_row(tx)?;
            let (vector_count, last) = match self.forced_namespace() {
                Some(ns) => (
                    store::count_in_namespace(tx, row.index_id, ns)?,
                    store::namespace_mutation(tx, row.index_id, ns)?,
                ),
                None => (
                    store::count_vectors(tx, row.index_id)?,
                    row.last_mutation.clone().zip(row.last_mutation_at.clone()),
                ),
            };
            let (mutation, at) = last.unzip();
            Ok(IndexInfo {
                dimensions: row.dimensions,
                metric: row.metric,
                vector_count,
                processed_up_to_datetime: at,
                processed_up_to_mutation: mutation,
            })
        })
    }

    /// The index's name, description and configuration, as Vectorize's "get index".
    pub fn description(&self) -> IndexDescription {
        describe_row(&self.row)
    }

    /// Lists vector ids in id order, `count` (1..=1000, default 100) at a time. The first call
    /// takes a snapshot: later pages show the ids as they were then.
    pub fn list_vectors(
        &self,
        count: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<ListVectorsResponse> {
        self.drain_due()?;
        super::list::list_vectors(
            &self.shared,
            &self.row,
            self.forced_namespace(),
            count,
            cursor,
        )
    }

    /// Creates a metadata index on `property` (a dotted path). Not retroactive, as in
    /// Vectorize: vectors already stored are not covered until they are upserted again; the
    /// result says how many.
    pub fn create_metadata_index(
        &self,
        property: &str,
        index_type: IndexType,
    ) -> Result<MetadataIndexCreated> {
        self.check_admin("metadata indexes")?;
        validate_property(property)?;
        let mid = mutation_id();
        let now = crate::time::now_iso();
        let (row, (from_seq, seq, vectors_not_covered, meta_indexes)) = self.write_tx(|tx, row| {
            let existing = store::metadata_indexes(tx, row.index_id)?;
            if existing.iter().any(|(p, _, _)| p == property) {
                return Err(verr(
                    codes::DUPLICATE_METADATA_INDEX,
                    format!("A metadata index for property {property} already exists"),
                ));
            }
            if existing.len() >= limits::MAX_METADATA_INDEXES {
                return Err(verr(
                    codes::TOO_MANY_METADATA_INDEXES,
                    format!(
                        "an index can have at most {} metadata indexes",
                        limits::MAX_METADATA_INDEXES
                    ),
                ));
            }
            let seq = store::next_mutation(tx, row.index_id, "create_metadata_index", &mid, &now)?;
            tx.execute(
                "INSERT INTO d1vec_metadata_indexes (index_id, property, index_type, created_seq) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![row.index_id, property, store::index_type_str(index_type), seq],
            )?;
            self.shared.vectors.announce(row.index_id, seq);
            Ok((
                row.seq,
                seq,
                store::count_vectors(tx, row.index_id)?,
                store::metadata_indexes(tx, row.index_id)?,
            ))
        })?;
        self.shared.vectors.apply(
            &row,
            &Change {
                from_seq,
                seq,
                meta_indexes: Some(meta_indexes),
                ..Change::default()
            },
        );
        Ok(MetadataIndexCreated {
            mutation_id: mid,
            vectors_not_covered,
        })
    }

    /// The metadata indexes, by property name.
    pub fn list_metadata_indexes(&self) -> Result<Vec<MetadataIndex>> {
        let rows = self
            .shared
            .read_tx(|tx| Ok(store::metadata_indexes(tx, self.row.index_id)?))?;
        Ok(rows
            .into_iter()
            .map(|(property_name, index_type, _)| MetadataIndex {
                property_name,
                index_type,
            })
            .collect())
    }

    /// Deletes the metadata index on `property` (error 40005 if there is none).
    pub fn delete_metadata_index(&self, property: &str) -> Result<MutationResult> {
        self.check_admin("metadata indexes")?;
        let mid = mutation_id();
        let now = crate::time::now_iso();
        let (row, (from_seq, seq, meta_indexes)) = self.write_tx(|tx, row| {
            let gone = tx.execute(
                "DELETE FROM d1vec_metadata_indexes WHERE index_id = ?1 AND property = ?2",
                rusqlite::params![row.index_id, property],
            )?;
            if gone == 0 {
                return Err(verr(
                    codes::METADATA_INDEX_NOT_FOUND,
                    format!("metadata index not found: {property}"),
                ));
            }
            tx.execute(
                "DELETE FROM d1vec_meta_values WHERE index_id = ?1 AND property = ?2",
                rusqlite::params![row.index_id, property],
            )?;
            let seq = store::next_mutation(tx, row.index_id, "delete_metadata_index", &mid, &now)?;
            self.shared.vectors.announce(row.index_id, seq);
            Ok((row.seq, seq, store::metadata_indexes(tx, row.index_id)?))
        })?;
        self.shared.vectors.apply(
            &row,
            &Change {
                from_seq,
                seq,
                meta_indexes: Some(meta_indexes),
                ..Change::default()
            },
        );
        Ok(MutationResult { mutation_id: mid })
    }

    /// Rebuilds the index's files from its live vectors (one sealed segment), then clears
    /// its tombstones. The files are built from a state at least as new as a fresh
    /// snapshot, outside any write transaction; vectors written meanwhile by another
    /// process are not in the new file and are rebuilt from SQLite at their next load.
    pub fn compact(&self) -> Result<()> {
        self.check_admin("compaction")?;
        let (row, state) = self.read_state()?;
        self.shared.vectors.compact(&row, &state)?;
        self.write_tx(|tx, row| {
            tx.execute(
                "DELETE FROM d1vec_tombstones WHERE index_id = ?1",
                [row.index_id],
            )?;
            Ok(())
        })?;
        Ok(())
    }

    /// Builds this process's in-memory state of the index now, if it has none as new as
    /// SQLite (the first search would build it otherwise). Writes never build state, they
    /// only keep a loaded one current: a process that writes a lot and should seal as it
    /// goes (a bulk ingest) calls this first.
    pub fn warm(&self) -> Result<()> {
        self.read_state().map(|_| ())
    }

    /// Writes the mutable segment to a sealed, memory-mapped file now (normally it is sealed
    /// when it reaches `EngineOptions::seal_at` vectors). A no-op for in-memory databases.
    pub fn seal(&self) -> Result<()> {
        self.check_admin("sealing")?;
        let (row, state) = self.read_state()?;
        let mut segs = state.inner.write().unwrap_or_else(|e| e.into_inner());
        self.shared.vectors.seal(&row, &mut segs)
    }

    fn check_admin(&self, what: &str) -> Result<()> {
        self.check(VectorAction::Admin(what))
    }
}

/// What creating a metadata index returns: the mutation, and how many stored vectors it does
/// not cover (they need an upsert to become filterable on it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataIndexCreated {
    /// The mutation's id.
    pub mutation_id: String,
    /// Vectors stored before the index existed.
    pub vectors_not_covered: u64,
}

/// A metadata index's property must be a valid filter key: non-empty dotted path of
/// non-empty segments, at most 512 characters, no `"`, not starting with `$`.
fn validate_property(property: &str) -> Result<()> {
    let bad = property.is_empty()
        || property.chars().count() > 512
        || property.contains('"')
        || property.starts_with('$')
        || property.split('.').any(str::is_empty);
    if bad {
        return Err(verr(
            codes::INVALID_METADATA,
            format!("invalid metadata index property `{property}`: a non-empty dotted path of at most 512 characters, without `\"` or a leading `$`"),
        ));
    }
    Ok(())
}

pub(crate) fn not_found(name: &str) -> Error {
    verr(
        codes::INDEX_NOT_FOUND,
        format!("vectorize.index.not_found - Index name \"{name}\""),
    )
}

pub(crate) fn describe_row(row: &IndexRow) -> IndexDescription {
    IndexDescription {
        name: row.name.clone(),
        description: row.description.clone(),
        config: IndexConfig {
            dimensions: row.dimensions,
            metric: row.metric,
        },
        created_on: row.created_on.clone(),
        modified_on: row.modified_on.clone(),
    }
}
