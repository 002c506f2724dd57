//! [`VectorIndex`]: one Vectorize index, in the shape of the V2 Workers binding.

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

    /// Inserts vectors; an id that already exists keeps its stored vector (the first wins,
    /// also within one batch). At most 1,000 vectors per call.
    pub fn insert(&self, vectors: &[Vector]) -> Result<MutationResult> {
        self.write(vectors, false, limits::MAX_BATCH)
    }

    /// Inserts or replaces vectors in full (values, metadata and namespace); within one batch
    /// the last occurrence of an id wins. At most 1,000 vectors per call.
    pub fn upsert(&self, vectors: &[Vector]) -> Result<MutationResult> {
        self.write(vectors, true, limits::MAX_BATCH)
    }

    /// [`VectorIndex::insert`] with a caller-chosen batch cap (the CLI's file import allows 5,000).
    pub fn insert_batch(&self, vectors: &[Vector], max_batch: usize) -> Result<MutationResult> {
        self.write(vectors, false, max_batch.min(limits::MAX_FILE_BATCH))
    }

    /// [`VectorIndex::upsert`] with a caller-chosen batch cap (the CLI's file import allows 5,000).
    pub fn upsert_batch(&self, vectors: &[Vector], max_batch: usize) -> Result<MutationResult> {
        self.write(vectors, true, max_batch.min(limits::MAX_FILE_BATCH))
    }

    fn write(&self, vectors: &[Vector], upsert: bool, max_batch: usize) -> Result<MutationResult> {
        self.drain_due()?;
        self.check_write()?;
        limits::check_batch(vectors.len(), max_batch)?;
        let accepted = self.validate_batch(vectors, upsert)?;
        let kind = if upsert { "upsert" } else { "insert" };
        if let Some(queued) = self.maybe_enqueue(kind, || Ok(serde_json::to_string(vectors)?))? {
            return Ok(queued);
        }
        self.apply_write(accepted, upsert, None)
    }

    /// Validates a batch for this caller (one bad vector rejects it all) and drops batch
    /// duplicates: insert keeps the first occurrence of an id, upsert the last.
    fn validate_batch(&self, vectors: &[Vector], upsert: bool) -> Result<Vec<StoredVector>> {
        let mut accepted: Vec<StoredVector> = Vec::with_capacity(vectors.len());
        for v in vectors {
            limits::validate_id(&v.id)?;
            let namespace = match (self.forced_namespace(), v.namespace.as_deref()) {
                (Some(own), Some(ns)) if ns != own => {
                    return Err(
                        self.violation(format!("namespace `{ns}` of index `{}`", self.row.name))
                    )
                }
                (Some(own), _) => Some(own.to_owned()),
                (None, ns) => ns.map(str::to_owned),
            };
            if let Some(ns) = &namespace {
                limits::validate_namespace(ns)?;
            }
            if let Some(m) = &v.metadata {
                limits::validate_metadata(&v.id, &Json::Object(m.clone()))?;
            }
            let values =
                limits::validate_values(&v.id, &v.values, self.row.dimensions, self.row.metric)?;
            accepted.push(StoredVector {
                vid: 0,
                id: v.id.clone(),
                namespace,
                values,
                metadata: v.metadata.clone().map(Json::Object),
            });
        }
        // Batch duplicates (the same id in the same id space): insert keeps the first
        // occurrence, upsert the last.
        let scope = self.row.scope;
        let mut seen = HashSet::new();
        let mut first_seen = |v: &StoredVector| {
            seen.insert((
                store::space_of(scope, v.namespace.as_deref()).to_owned(),
                v.id.clone(),
            ))
        };
        if upsert {
            accepted.reverse();
            accepted.retain(|v| first_seen(v));
            accepted.reverse();
        } else {
            accepted.retain(|v| first_seen(v));
        }
        Ok(accepted)
    }

    /// Queues a write when this handle has a visibility delay or earlier writes are still
    /// queued (a write never overtakes one made before it); `None` when it is to be applied
    /// now.
    fn maybe_enqueue(
        &self,
        kind: &str,
        payload: impl FnOnce() -> Result<String>,
    ) -> Result<Option<MutationResult>> {
        let wait = self.options.visibility_delay;
        let index_id = self.row.index_id;
        if wait.is_zero()
            && !self
                .shared
                .admin
                .internal(|c| delay::has_pending(c, index_id))?
        {
            return Ok(None);
        }
        let pending = Pending {
            pending_id: 0,
            mutation_id: mutation_id(),
            kind: kind.to_owned(),
            tenant: self.tenant().map(str::to_owned),
            payload: payload()?,
        };
        self.write_tx(|tx, row| Ok(delay::enqueue(tx, row.index_id, wait, &pending)?))?;
        Ok(Some(MutationResult {
            mutation_id: pending.mutation_id,
        }))
    }

    /// Applies the queued writes that are due, oldest first (see [`super::delay`]).
    fn drain_due(&self) -> Result<()> {
        let index_id = self.row.index_id;
        let engine = &self.shared.vectors;
        loop {
            let now = delay::now_ms();
            // Known empty (or not due) since no transaction committed: no SQL.
            if engine.queue_idle(index_id, now) {
                return Ok(());
            }
            let moment = engine.moment();
            // On a pooled reader, so that queries do not queue on the admin connection.
            let due = self.shared.read_tx(|tx| {
                let due = delay::next_due(tx, index_id, now)?;
                if due.is_none() {
                    let earliest = store::earliest_pending_due(tx, index_id)?;
                    engine.queue_seen(index_id, moment, earliest);
                }
                Ok(due)
            })?;
            let Some(p) = due else {
                return Ok(());
            };
            // Applied as the caller that queued it, so its namespace rules hold.
            let applier = VectorIndex {
                shared: Arc::clone(&self.shared),
                row: self.row.clone(),
                caller: p.tenant.clone().map_or(Caller::Admin, |t| {
                    Caller::Scoped(Arc::new(QueuedWrite { tenant: t }))
                }),
                options: IndexOptions::default(),
            };
            match applier.apply_pending(&p) {
                Ok(()) => {}
                Err(e) if delay::is_already_applied(&e) => {}
                Err(_) => self
                    .shared
                    .admin
                    .internal(|c| delay::drop_failed(c, p.pending_id))?,
            }
        }
    }

    fn apply_pending(&self, p: &Pending) -> Result<()> {
        if p.kind == "delete" {
            let ids: Vec<String> = serde_json::from_str(&p.payload)?;
            self.apply_delete(&ids, Some(p))?;
        } else {
            let upsert = p.kind == "upsert";
            let vectors: Vec<Vector> = serde_json::from_str(&p.payload)?;
            let accepted = self.validate_batch(&vectors, upsert)?;
            self.apply_write(accepted, upsert, Some(p))?;
        }
        Ok(())
    }

    /// Stores a validated batch in one transaction (removing its queue entry when it was
    /// queued, with the mutation id given then) and brings the in-memory state along.
    fn apply_write(
        &self,
        accepted: Vec<StoredVector>,
        upsert: bool,
        pending: Option<&Pending>,
    ) -> Result<MutationResult> {
        let mid = pending.map_or_else(mutation_id, |p| p.mutation_id.clone());
        let now = crate::time::now_iso();
        let kind = if upsert { "upsert" } else { "insert" };
        let forced = self.forced_namespace();
        let batch_namespaces: BTreeSet<&str> = accepted
            .iter()
            .filter_map(|v| v.namespace.as_deref())
            .collect();
        let sealed_high = self.shared.vectors.highest_sealed_vid(self.row.index_id);
        let max_vectors = self.shared.vectors.max_vectors();
        let (row, (from_seq, seq, removed, added)) = self.write_tx(|tx, row| {
            if let Some(p) = pending {
                if !delay::take(tx, p.pending_id)? {
                    return Err(delay::already_applied());
                }
            }
            store::raise_next_vid(tx, row.index_id, sealed_high.saturating_add(1))?;
            // Whether the batch brings a namespace the index does not hold yet.
            let mut new_namespace = false;
            for ns in &batch_namespaces {
                if !store::namespace_exists(tx, row.index_id, ns)? {
                    new_namespace = true;
                    break;
                }
            }
            let seq = store::next_mutation(tx, row.index_id, kind, &mid, &now)?;
            let meta_indexes = store::metadata_indexes(tx, row.index_id)?;
            let mut touched: BTreeSet<String> = forced.map(str::to_owned).into_iter().collect();
            let mut removed: Vec<(u64, Option<String>)> = Vec::new();
            // (position in `accepted`, vid), in vid order.
            let mut added: Vec<(usize, u64)> = Vec::new();
            for (at, v) in accepted.iter().enumerate() {
                let space = store::space_of(row.scope, v.namespace.as_deref());
                if let Some(old) = store::vector_in_space(tx, row.index_id, space, &v.id)? {
                    if !upsert {
                        continue;
                    }
                    store::delete_vector_with(tx, row.index_id, &old, seq)?;
                    touched.extend(old.namespace.clone());
                    removed.push((old.vid, old.namespace));
                }
                let vid = store::allocate_vids(tx, row.index_id, 1)?;
                store::insert_vector(tx, row.index_id, vid, v, space, seq, &meta_indexes)?;
                touched.extend(v.namespace.clone());
                added.push((at, vid));
            }
            // Vids are unique and start at 1, so the highest one bounds the vector count:
            // only an index that could be over the limit pays for an exact count.
            let highest = added.last().map_or(0, |&(_, vid)| vid);
            if usize::try_from(highest).unwrap_or(usize::MAX) > max_vectors {
                let count = store::count_vectors(tx, row.index_id)?;
                limits::check_vector_count(
                    &row.name,
                    usize::try_from(count).unwrap_or(usize::MAX),
                    max_vectors,
                )?;
            }
            if new_namespace
                && store::count_namespaces(tx, row.index_id, limits::MAX_NAMESPACES)?
                    > limits::MAX_NAMESPACES
            {
                return Err(verr(
                    codes::TOO_MANY_NAMESPACES,
                    format!(
                        "an index holds at most {} namespaces",
                        limits::MAX_NAMESPACES
                    ),
                ));
            }
            store::touch_namespaces(
                tx,
                row.index_id,
                touched.iter().map(String::as_str),
                seq,
                &mid,
                &now,
            )?;
            self.shared.vectors.announce(row.index_id, seq);
            Ok((row.seq, seq, removed, added))
        })?;
        let change = Change {
            from_seq,
            seq,
            removed,
            added: added
                .iter()
                .map(|&(at, vid)| {
                    let v = &accepted[at];
                    Added {
                        vid,
                        id: &v.id,
                        namespace: v.namespace.as_deref(),
                        values: &v.values,
                        metadata: v.metadata.as_ref(),
                    }
                })
                .collect(),
            meta_indexes: None,
        };
        self.shared.vectors.apply(&row, &change);
        Ok(MutationResult { mutation_id: mid })
    }

    /// The `topK` nearest vectors to `vector` that pass the options' namespace and filter.
    pub fn query(&self, vector: &[f64], options: &QueryOptions) -> Result<Matches> {
        self.drain_due()?;
        let values = limits::validate_query_vector(vector, self.row.dimensions, self.row.metric)?;
        self.query_prepared(&values, options)
    }

    /// [`VectorIndex::query`] run on `conn` instead of the admin connection: the path of the
    /// `vectorize_query` SQL function, which runs inside a statement on `conn`.
    pub(crate) fn query_on(
        &self,
        conn: &rusqlite::Connection,
        vector: &[f64],
        options: &QueryOptions,
    ) -> Result<Matches> {
        let values = limits::validate_query_vector(vector, self.row.dimensions, self.row.metric)?;
        self.query_prepared_on(Some(conn), &values, options)
    }

    /// [`VectorIndex::query`] with options given as Vectorize's JSON (`{"topK": 3, ...}`).
    pub fn query_json(&self, vector: &[f64], options: &Json) -> Result<Matches> {
        self.query(vector, &QueryOptions::from_json(options)?)
    }

    /// Queries with the stored vector `id` as the query vector. The `namespace` option
    /// applies as in [`VectorIndex::query`]; an unknown id is an error naming it.
    ///
    /// On a private index the admin surface finds `id` in the namespace the option names,
    /// or, without one, wherever it is; an id held in several namespaces then needs the
    /// option (error 40032 listing them).
    pub fn query_by_id(&self, id: &str, options: &QueryOptions) -> Result<Matches> {
        self.drain_due()?;
        let found = self.shared.read_tx(|tx| {
            match (self.row.scope, self.tenant(), options.namespace.as_deref()) {
                (Scope::Private, None, Some(ns)) => {
                    Ok(store::vector_in_space(tx, self.row.index_id, ns, id)?
                        .into_iter()
                        .collect::<Vec<_>>())
                }
                _ => self.lookup(tx, id),
            }
        })?;
        match found.as_slice() {
            [] => Err(verr(
                codes::QUERY_ID_NOT_FOUND,
                format!("no vector with id \"{id}\" in index `{}`", self.row.name),
            )),
            [v] => self.query_prepared(&v.values, options),
            several => {
                let namespaces: Vec<String> = several
                    .iter()
                    .map(|v| v.namespace.clone().unwrap_or_else(|| "(none)".to_owned()))
                    .collect();
                Err(verr(
                    codes::INVALID_NAMESPACE,
                    format!(
                        "id \"{id}\" is held in {} namespaces of private index `{}` ({}); give the namespace option to choose one",
                        several.len(),
                        self.row.name,
                        namespaces.join(", ")
                    ),
                ))
            }
        }
    }

    fn query_prepared(&self, values: &[f32], options: &QueryOptions) -> Result<Matches> {
        self.query_prepared_on(None, values, options)
    }

    /// The one query path; `on` as in [`VectorIndex::with_state_on`].
    ///
    /// First from memory ([`VectorIndex::query_from_memory`]) when the state is known to be
    /// current; otherwise against a read snapshot, which also validates the state for the
    /// queries after it.
    fn query_prepared_on(
        &self,
        on: Option<&rusqlite::Connection>,
        values: &[f32],
        options: &QueryOptions,
    ) -> Result<Matches> {
        limits::check_top_k(
            options.top_k,
            options.return_values,
            options.return_metadata,
        )?;
        let namespace = self.read_namespace(options.namespace.as_deref())?;
        if let Some(ns) = &namespace {
            limits::validate_namespace(ns)?;
        }
        let filter = options
            .filter
            .as_ref()
            .map(parse_filter)
            .transpose()
            .map_err(|e| verr(codes::INVALID_FILTER, e.to_string()))?;
        self.check(VectorAction::Read)?;
        let query = prepare(self.row.metric, values);
        let ask = Ask {
            namespace: namespace.as_deref(),
            filter: filter.as_ref().zip(options.filter.as_ref()),
        };
        if on.is_none() {
            if let Some(answer) = self.query_from_memory(&query, options, ask)? {
                return Ok(answer);
            }
        }
        let engine = &self.shared.vectors;
        self.with_state_on(on, |tx, row, state, last| {
            let segs = state.inner.read().unwrap_or_else(|e| e.into_inner());
            // The state's seq moves only under its write lock: stable while `segs` is held.
            let newer = state.seq() > row.seq;
            if newer && !last {
                return Ok(None);
            }
            // At the snapshot's seq the state's metadata indexes are the snapshot's.
            let meta = if newer {
                store::metadata_indexes(tx, row.index_id)?
            } else {
                segs.meta_indexes().to_vec()
            };
            let candidates =
                planner::candidates(state, &segs, row.seq, ask)?.unwrap_or(Candidates::All);
            let hits = engine.search(
                &segs,
                row.metric,
                &query,
                options.top_k,
                candidates.set(),
                if ask.filter.is_none() {
                    ask.namespace
                } else {
                    None
                },
            );
            let mut found = from_memory(&segs, &hits);
            drop(segs);
            // A newer state's hits are re-checked against the snapshot's rows (a hit it
            // lacks is dropped); at the snapshot's seq, rows are read only for what the
            // answer returns.
            if newer || needs_rows(options) {
                let vids: Vec<u64> = hits.iter().map(|h| h.id).collect();
                let rows = store::vectors_by_vid(tx, row.index_id, &vids)?;
                found = from_rows(rows);
            }
            Ok(Some(finish(
                row.metric,
                &hits,
                found,
                options,
                &meta,
                ask.namespace,
                &candidates,
            )))
        })
    }

    /// Answers a query from the in-memory state alone when it is known to be current
    /// ([`super::engine::Engine::fresh_state`]) and its candidates need no SQL: no SQLite
    /// at all, unless the answer returns values or metadata (then only the hits' rows, in a
    /// read transaction). `None`: take the snapshot path (not known current, a filter not
    /// in memory, or a hit's row gone since: a write committed meanwhile).
    fn query_from_memory(
        &self,
        query: &[f32],
        options: &QueryOptions,
        ask: Ask<'_>,
    ) -> Result<Option<Matches>> {
        let engine = &self.shared.vectors;
        let Some(state) = engine.fresh_state(&self.row) else {
            return Ok(None);
        };
        let segs = state.inner.read().unwrap_or_else(|e| e.into_inner());
        let seq = state.seq();
        let Some(candidates) = planner::candidates(&state, &segs, seq, ask)? else {
            return Ok(None);
        };
        let hits = engine.search(
            &segs,
            self.row.metric,
            query,
            options.top_k,
            candidates.set(),
            if ask.filter.is_none() {
                ask.namespace
            } else {
                None
            },
        );
        let mut found = from_memory(&segs, &hits);
        let meta = if options.return_metadata == ReturnMetadata::Indexed {
            segs.meta_indexes().to_vec()
        } else {
            Vec::new()
        };
        drop(segs);
        if needs_rows(options) {
            let vids: Vec<u64> = hits.iter().map(|h| h.id).collect();
            let index_id = self.row.index_id;
            let rows = self
                .shared
                .read_tx(|tx| Ok(store::vectors_by_vid(tx, index_id, &vids)?))?;
            if rows.len() != vids.len() {
                return Ok(None);
            }
            found = from_rows(rows);
        }
        Ok(Some(finish(
            self.row.metric,
            &hits,
            found,
            options,
            &meta,
            ask.namespace,
            &candidates,
        )))
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

    /// Deletes vectors by id; unknown ids are ignored. At most 100 ids. On a private index a
    /// tenant deletes only in its own namespace; the admin surface deletes the id in every
    /// namespace that holds it.
    pub fn delete_by_ids(&self, ids: &[String]) -> Result<MutationResult> {
        self.drain_due()?;
        self.check_write()?;
        limits::check_delete_ids(ids.len())?;
        if let Some(queued) = self.maybe_enqueue("delete", || Ok(serde_json::to_string(ids)?))? {
            return Ok(queued);
        }
        self.apply_delete(ids, None)
    }

    fn apply_delete(&self, ids: &[String], pending: Option<&Pending>) -> Result<MutationResult> {
        let mid = pending.map_or_else(mutation_id, |p| p.mutation_id.clone());
        let now = crate::time::now_iso();
        let forced = self.forced_namespace();
        let (row, (from_seq, seq, removed)) = self.write_tx(|tx, row| {
            if let Some(p) = pending {
                if !delay::take(tx, p.pending_id)? {
                    return Err(delay::already_applied());
                }
            }
            let seq = store::next_mutation(tx, row.index_id, "delete", &mid, &now)?;
            let mut touched: BTreeSet<String> = forced.map(str::to_owned).into_iter().collect();
            let mut removed: Vec<(u64, Option<String>)> = Vec::new();
            for id in ids {
                for old in self.lookup(tx, id)? {
                    store::delete_vector_with(tx, row.index_id, &old, seq)?;
                    touched.extend(old.namespace.clone());
                    removed.push((old.vid, old.namespace));
                }
            }
            store::touch_namespaces(
                tx,
                row.index_id,
                touched.iter().map(String::as_str),
                seq,
                &mid,
                &now,
            )?;
            self.shared.vectors.announce(row.index_id, seq);
            Ok((row.seq, seq, removed))
        })?;
        let change = Change {
            from_seq,
            seq,
            removed,
            added: Vec::new(),
            meta_indexes: None,
        };
        self.shared.vectors.apply(&row, &change);
        Ok(MutationResult { mutation_id: mid })
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

/// Metadata as `returnMetadata` asks: nothing, the indexed properties (strings truncated to
/// their indexed 64 bytes), or everything.
fn project_metadata(
    metadata: Option<&Json>,
    level: ReturnMetadata,
    meta_indexes: &[(String, IndexType, i64)],
) -> Option<Map<String, Json>> {
    match level {
        ReturnMetadata::None => None,
        ReturnMetadata::All => metadata.and_then(|m| m.as_object().cloned()),
        ReturnMetadata::Indexed => {
            let mut out = Map::new();
            for (property, ty, _) in meta_indexes {
                let value = match indexed_value(metadata, property, *ty) {
                    Indexed::Absent => continue,
                    Indexed::Null => Json::Null,
                    Indexed::Value(Scalar::String(s)) => Json::String(s),
                    Indexed::Value(Scalar::Number(n)) => {
                        serde_json::Number::from_f64(n).map_or(Json::Null, Json::Number)
                    }
                    Indexed::Value(Scalar::Bool(b)) => Json::Bool(b),
                    Indexed::Value(Scalar::Null) => Json::Null,
                };
                insert_path(&mut out, property, value);
            }
            Some(out)
        }
    }
}

fn insert_path(obj: &mut Map<String, Json>, path: &str, value: Json) {
    match path.split_once('.') {
        None => {
            obj.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let child = obj
                .entry(head.to_owned())
                .or_insert_with(|| Json::Object(Map::new()));
            if let Json::Object(m) = child {
                insert_path(m, rest, value);
            }
        }
    }
}

/// Whether the answer returns something only the vectors' rows hold.
fn needs_rows(options: &QueryOptions) -> bool {
    options.return_values || options.return_metadata != ReturnMetadata::None
}

/// A hit as the answer needs it: from memory (id, namespace) or from its row (everything).
struct Found {
    vid: u64,
    id: String,
    namespace: Option<String>,
    values: Vec<f32>,
    metadata: Option<Json>,
}

/// The hits' ids and namespaces from the state (hits not live in it are left out).
fn from_memory(segs: &super::engine::Segments, hits: &[crate::index::Hit]) -> Vec<Found> {
    hits.iter()
        .filter_map(|h| {
            Some(Found {
                vid: h.id,
                id: segs.id_of(h.id)?.to_owned(),
                namespace: segs.namespace_of(h.id)?.map(str::to_owned),
                values: Vec::new(),
                metadata: None,
            })
        })
        .collect()
}

/// The hits as their rows hold them.
fn from_rows(rows: Vec<StoredVector>) -> Vec<Found> {
    rows.into_iter()
        .map(|v| Found {
            vid: v.vid,
            id: v.id,
            namespace: v.namespace,
            values: v.values,
            metadata: v.metadata,
        })
        .collect()
}

/// The matches of `hits` (in Vectorize's order, at most topK), each re-checked against
/// what the search promised: found (live), in the namespace, through the filter.
fn finish(
    metric: Metric,
    hits: &[crate::index::Hit],
    found: Vec<Found>,
    options: &QueryOptions,
    meta: &[(String, IndexType, i64)],
    namespace: Option<&str>,
    candidates: &Candidates,
) -> Matches {
    let mut matches = Vec::with_capacity(found.len());
    for hit in hits {
        let Some(v) = found.iter().find(|r| r.vid == hit.id) else {
            continue;
        };
        if namespace.is_some() && v.namespace.as_deref() != namespace {
            continue;
        }
        if candidates.set().is_some_and(|c| !c.contains(v.vid)) {
            continue;
        }
        matches.push(Match {
            id: v.id.clone(),
            score: metric.score(hit.distance),
            values: options
                .return_values
                .then(|| v.values.iter().map(|&x| f32_rounded(x)).collect()),
            namespace: v.namespace.clone(),
            metadata: project_metadata(v.metadata.as_ref(), options.return_metadata, meta),
        });
    }
    let better = |a: &Match, b: &Match| {
        let by_score = if metric.higher_is_better() {
            b.score.total_cmp(&a.score)
        } else {
            a.score.total_cmp(&b.score)
        };
        by_score.then_with(|| a.id.cmp(&b.id))
    };
    matches.sort_by(better);
    matches.truncate(options.top_k);
    Matches {
        count: matches.len(),
        matches,
    }
}
