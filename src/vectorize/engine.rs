//! The in-memory side of the vector indexes: per index, the sealed segments mapped from
//! `<db>.vectors/<index_id>/`, the mutable segment (its own graph on codes), the live set
//! and namespace sets, and the planner that picks exact scoring or graph search for each query.
//!
//! Everything here is derived from SQLite ([`super::store`]) and is rebuilt from it whenever
//! it is missing, stale (another process wrote) or damaged (a corrupt segment file).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use rusqlite::Connection;
use serde::Serialize;

use super::filter::bitmap::FilterIndex;
use super::filter::eval::IndexType;
use super::planner::{self, Plan, Shape};
use super::state::VidTable;
use super::state_wal::{WalStamp, WalWatch};
use super::store::{self, IndexRow};
use crate::error::{Error, Result};
use crate::index::exact;
use crate::index::mutable::MutableSegment;
use crate::index::segment::{Group, Memory, SealedSegment, SearchScratch, SegmentError};
use crate::index::{Allow, GraphParams, GraphParts, Hit, IdBitset, Metric};
use crate::sql::conn::StatementCount;

/// Tuning knobs of the vector engine. Defaults were chosen by measurement (see README).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineOptions {
    /// When the vectors a query may return (its namespace and filter candidates, or every
    /// live vector) number at most this many, they are scored exactly instead of searched
    /// in the graph: exact answers, and faster than the graph at these sizes.
    pub exact_max_candidates: usize,
    /// The mutable segment is sealed into a file when it holds this many vectors.
    pub seal_at: usize,
    /// `ef` of graph searches (the candidate list size); raised for selective filters.
    pub ef_search: usize,
    /// HNSW build parameters.
    pub graph: GraphParams,
    /// Where sealed segments' search data lives: mapped from the files (the default; the
    /// kernel's page cache holds it and may reclaim it) or copied into the process's own
    /// memory at load (for machines that reclaim page cache; costs the codes and graph in RSS).
    pub memory: Memory,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            // `examples/vecbench.rs sweep`, 100,000 x 1536 cosine, one thread: exact scoring
            // beat the filtered graph 28x at 4,000 candidates and 5x at 8,000, and tied at
            // 16,000; 12,000 keeps a margin below the tie.
            exact_max_candidates: 12_000,
            seal_at: 50_000,
            ef_search: 96,
            graph: GraphParams::default(),
            memory: Memory::Mapped,
        }
    }
}

/// Counters of which query paths ran, for tests and tuning.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    exact: AtomicU64,
    graph: AtomicU64,
    fallback: AtomicU64,
    rebuilt_segments: AtomicU64,
    loads: AtomicU64,
}

/// A snapshot of the engine's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Queries answered by exact scoring of a candidate set.
    pub exact_searches: u64,
    /// Queries answered by graph search.
    pub graph_searches: u64,
    /// Graph searches that found fewer than topK allowed vectors and were redone exactly.
    pub exact_fallbacks: u64,
    /// Segment files found damaged, foreign or uncommitted at load, deleted and rebuilt from
    /// SQLite (a file that is simply missing is not counted: its vectors are rebuilt all the same).
    pub rebuilt_segments: u64,
    /// Index states built from SQLite (the first search of an index in this process, or
    /// one that found the state behind a write it could not wait for).
    pub state_loads: u64,
    /// SQL statements run on any connection of the database so far (SQLite's statement
    /// trace): a test hook showing which calls reach SQLite at all.
    pub sql_statements: u64,
}

/// All indexes' in-memory state for one database.
#[derive(Debug)]
pub(crate) struct Engine {
    /// Whether the `d1vec_` tables are known to exist.
    pub schema_ready: std::sync::atomic::AtomicBool,
    dir: Option<PathBuf>,
    options: Mutex<EngineOptions>,
    loaded: Mutex<HashMap<i64, Arc<IndexState>>>,
    /// Held while an index's state is built, so concurrent readers build it once.
    loading: Mutex<()>,
    /// Writes committed but not yet followed by the state ([`super::settle`]).
    settling: super::settle::Settling,
    /// Held while segment files are scanned, written or removed, so that a reader building
    /// state never takes a seal's or a compaction's half-done files for leftovers.
    files: Mutex<()>,
    /// Per index, the highest vid any of its segment files holds, once this process has
    /// looked ([`Engine::highest_sealed_vid`]); raised by this process's seals.
    sealed_high: Mutex<HashMap<i64, u64>>,
    counters: Counters,
    /// The most vectors one index may hold (see [`Engine::max_vectors`]).
    max_vectors: std::sync::atomic::AtomicUsize,
    /// The database's statement counter ([`Stats::sql_statements`]).
    statements: Arc<StatementCount>,
    /// How a query knows its state is current without SQL ([`Engine::fresh_state`]).
    freshness: Freshness,
    /// Per index, the highest mutation seq this process's writes committed.
    committed: Mutex<HashMap<i64, i64>>,
    /// Bumped after every write transaction of this process ends (committed or not).
    writes: AtomicU64,
    /// Per index, what the last look at its queue of delayed writes found, and at which
    /// moment ([`Engine::queue_idle`]).
    queues: Mutex<HashMap<i64, (Moment, Option<i64>)>>,
}

/// How the engine knows, without SQL, that no transaction committed since a moment.
#[derive(Debug)]
enum Freshness {
    /// An in-memory database: only this process writes it, every vector write goes
    /// through [`Engine::apply`] and every write transaction bumps `Engine::writes`.
    Memory,
    /// A file database in WAL mode: the WAL-index header ([`super::state_wal`]).
    Wal(WalWatch),
    /// Anything else (the journal mode could not be set to WAL): always ask SQLite.
    Never,
}

/// A moment of the database, as [`Engine::moment`] reads it: equal moments mean that no
/// transaction committed between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Moment {
    /// The WAL-index header's stamp.
    Wal(WalStamp),
    /// `Engine::writes` (in-memory databases).
    Writes(u64),
}

/// One index's in-memory state.
pub(crate) struct IndexState {
    pub row: IndexRow,
    /// The moment, read before the snapshot this state was last found at least as new as
    /// began ([`Engine::validate`]); `None` until then.
    validated: Mutex<Option<Moment>>,
    /// The SQLite mutation sequence this state reflects. Written only while `inner` is
    /// write-locked, and only ever upwards; read without the lock to pick a state.
    seq: AtomicI64,
    pub inner: RwLock<Segments>,
    /// Filter candidate sets of recent queries.
    pub candidates: super::candidates::CandidateCache,
}

impl IndexState {
    /// The SQLite mutation sequence this state reflects.
    pub fn seq(&self) -> i64 {
        self.seq.load(Ordering::Acquire)
    }
}

/// A committed write, as the in-memory state follows it ([`Engine::apply`]).
#[derive(Debug, Default)]
pub(crate) struct Change<'a> {
    /// The index's sequence when the write's transaction began.
    pub from_seq: i64,
    /// The sequence the write committed.
    pub seq: i64,
    /// Vectors it removed (deleted, or replaced by an upsert): vid and namespace.
    pub removed: Vec<(u64, Option<String>)>,
    /// Vectors it added, in ascending vid order.
    pub added: Vec<Added<'a>>,
    /// The index's metadata indexes after the write, when it changed them.
    pub meta_indexes: Option<Vec<MetaIndex>>,
}

/// A metadata index: property, type, creation seq (as `store::metadata_indexes` reads it).
pub(crate) type MetaIndex = (String, IndexType, i64);

/// A vector a committed write added.
#[derive(Debug)]
pub(crate) struct Added<'a> {
    pub vid: u64,
    pub id: &'a str,
    pub namespace: Option<&'a str>,
    /// The stored values (not yet prepared for the metric).
    pub values: &'a [f32],
    /// Its metadata, for the in-memory filter index.
    pub metadata: Option<&'a serde_json::Value>,
}

impl std::fmt::Debug for IndexState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexState")
            .field("row", &self.row)
            .finish_non_exhaustive()
    }
}

/// The searchable parts of one index, and what a query answers from memory. Changed only
/// by the engine's own methods (load, follow, seal, compact).
pub(crate) struct Segments {
    sealed: Vec<SealedSegment>,
    mutable: MutableSegment,
    live: IdBitset,
    /// Shared, so a namespace query takes its set without copying it (a write copies a
    /// set only while a query still holds it).
    namespaces: HashMap<String, Arc<IdBitset>>,
    /// Vid -> Vectorize id and namespace of every live vector.
    ids: VidTable,
    /// The index's metadata indexes.
    meta_indexes: Vec<MetaIndex>,
    /// The metadata-indexed values of every live vector, for filters without SQL.
    filter: FilterIndex,
    /// The live set again, as the filter index's universe.
    live_roaring: roaring::RoaringTreemap,
}

impl Segments {
    /// The live vids of namespace `ns` (`None`: it holds none).
    pub fn namespace(&self, ns: &str) -> Option<&Arc<IdBitset>> {
        self.namespaces.get(ns)
    }

    /// The Vectorize id of a live vid.
    pub fn id_of(&self, vid: u64) -> Option<&str> {
        self.ids.id(vid)
    }

    /// The namespace of a live vid (`None`: not live; `Some(None)`: no namespace).
    pub fn namespace_of(&self, vid: u64) -> Option<Option<&str>> {
        self.ids.namespace(vid)
    }

    /// The index's metadata indexes, by property.
    pub fn meta_indexes(&self) -> &[MetaIndex] {
        &self.meta_indexes
    }

    /// Whether every sealed segment stores its namespaces as contiguous ranges (then a
    /// namespace is scanned range by range; see [`super::planner`]): format 2 and later.
    pub fn sealed_have_groups(&self) -> bool {
        self.sealed.iter().all(|s| s.version() >= 2)
    }

    /// The in-memory filter index.
    pub fn filter(&self) -> &FilterIndex {
        &self.filter
    }

    /// The vids a filter may pass: namespace `ns`'s live vids, or every live one.
    pub fn universe(&self, ns: Option<&str>) -> roaring::RoaringTreemap {
        match ns {
            None => self.live_roaring.clone(),
            Some(ns) => self
                .namespaces
                .get(ns)
                .map(|set| set.iter().collect())
                .unwrap_or_default(),
        }
    }
}

impl Engine {
    /// An engine whose segment files live beside `db_path` (none for in-memory databases),
    /// counting the database's statements in `statements`; `wal`: the database runs in WAL
    /// mode (its admin connection could set it).
    pub fn new(db_path: Option<&Path>, statements: Arc<StatementCount>, wal: bool) -> Engine {
        let freshness = match db_path {
            None => Freshness::Memory,
            Some(path) if wal => Freshness::Wal(WalWatch::new(path)),
            Some(_) => Freshness::Never,
        };
        let dir = db_path.map(|p| {
            let mut name = p.as_os_str().to_owned();
            name.push(".vectors");
            PathBuf::from(name)
        });
        Engine {
            schema_ready: std::sync::atomic::AtomicBool::new(false),
            dir,
            options: Mutex::new(EngineOptions::default()),
            loaded: Mutex::new(HashMap::new()),
            loading: Mutex::new(()),
            settling: Default::default(),
            files: Mutex::new(()),
            sealed_high: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            max_vectors: std::sync::atomic::AtomicUsize::new(super::limits::MAX_VECTORS_PER_INDEX),
            statements,
            freshness,
            committed: Mutex::new(HashMap::new()),
            writes: AtomicU64::new(0),
            queues: Mutex::new(HashMap::new()),
        }
    }

    /// Whether index `index_id`'s queue of delayed writes is known, without SQL, to hold
    /// nothing due at `now_ms`: the database's moment is the one a look found it empty (or
    /// its earliest entry due later) at.
    pub fn queue_idle(&self, index_id: i64, now_ms: i64) -> bool {
        let Some(now) = self.moment() else {
            return false;
        };
        let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        match queues.get(&index_id) {
            Some(&(at, earliest)) => at == now && earliest.is_none_or(|due| now_ms < due),
            None => false,
        }
    }

    /// Records what a look at the queue found in a snapshot that began after `moment` was
    /// read: nothing due, and the earliest due time if anything is queued.
    pub fn queue_seen(&self, index_id: i64, moment: Option<Moment>, earliest: Option<i64>) {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        match moment {
            Some(m) => {
                queues.insert(index_id, (m, earliest));
            }
            None => {
                queues.remove(&index_id);
            }
        }
    }

    /// The database's moment now, if it can be read without SQL (see [`Moment`]).
    pub fn moment(&self) -> Option<Moment> {
        match &self.freshness {
            Freshness::Memory => Some(Moment::Writes(self.writes.load(Ordering::Acquire))),
            Freshness::Wal(watch) => watch.stamp().map(Moment::Wal),
            Freshness::Never => None,
        }
    }

    /// A write transaction of this process ended (committed or rolled back).
    pub fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::AcqRel);
    }

    /// The loaded state of `row`'s index if it is known to be as new as the database now,
    /// without asking SQLite: the database's moment is the one the state was validated at
    /// ([`Engine::validate`]), so no transaction of any connection committed since, and no
    /// write of this process left the state behind.
    pub fn fresh_state(&self, row: &IndexRow) -> Option<Arc<IndexState>> {
        let now = self.moment()?;
        let state = self.loaded_state(row)?;
        let validated = *state.validated.lock().unwrap_or_else(|e| e.into_inner());
        if validated != Some(now) {
            return None;
        }
        let committed = self
            .committed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&row.index_id)
            .copied();
        if committed.is_some_and(|seq| state.seq() < seq) {
            return None;
        }
        Some(state)
    }

    /// Records that `state` is at least as new as a snapshot that began after `moment`
    /// was read: until the database's moment changes, [`Engine::fresh_state`] may answer
    /// from it.
    pub fn validate(&self, state: &IndexState, moment: Option<Moment>) {
        *state.validated.lock().unwrap_or_else(|e| e.into_inner()) = moment;
    }

    /// The most vectors one index may hold (default Vectorize's 20,000,000).
    pub fn max_vectors(&self) -> usize {
        self.max_vectors.load(Ordering::Relaxed)
    }

    /// Sets [`Engine::max_vectors`].
    pub fn set_max_vectors(&self, max: usize) {
        self.max_vectors.store(max, Ordering::Relaxed);
    }

    pub fn options(&self) -> EngineOptions {
        *self.options.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_options(&self, options: EngineOptions) {
        *self.options.lock().unwrap_or_else(|e| e.into_inner()) = options;
    }

    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            exact_searches: c.exact.load(Ordering::Relaxed),
            graph_searches: c.graph.load(Ordering::Relaxed),
            exact_fallbacks: c.fallback.load(Ordering::Relaxed),
            rebuilt_segments: c.rebuilt_segments.load(Ordering::Relaxed),
            state_loads: c.loads.load(Ordering::Relaxed),
            sql_statements: self.statements.get(),
        }
    }

    fn index_dir(&self, index_id: i64) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(index_id.to_string()))
    }

    /// Forgets an index's state (after it is deleted, or when it must be reloaded).
    pub fn forget(&self, index_id: i64) {
        self.settling.forget(index_id);
        self.queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&index_id);
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&index_id);
    }

    /// Forgets `state` if it is still the index's current one (not a newer one loaded since).
    fn forget_state(&self, state: &Arc<IndexState>) {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if loaded
            .get(&state.row.index_id)
            .is_some_and(|s| Arc::ptr_eq(s, state))
        {
            loaded.remove(&state.row.index_id);
        }
    }

    /// The index's loaded state, if this process has one of `row`'s shape.
    fn loaded_state(&self, row: &IndexRow) -> Option<Arc<IndexState>> {
        let state = self
            .loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&row.index_id)
            .cloned()?;
        same_index(&state.row, row).then_some(state)
    }

    /// The highest vid held by any of the index's segment files that open (0 without any),
    /// read once per process (headers only) and then kept up to date by its own seals.
    ///
    /// A write allocates its vids above this ([`store::raise_next_vid`]): segment files only
    /// ever hold committed vids, so this changes nothing unless SQLite went back behind the
    /// files (restored from an older copy). Then the files' extra vids are simply not live,
    /// instead of being handed out again to other vectors while a file still holds the old
    /// values under them. (The load-time check of [`open_checked`] covers the same case when
    /// a search comes first, by deleting such files.)
    pub fn highest_sealed_vid(&self, index_id: i64) -> u64 {
        if let Some(&high) = self
            .sealed_high
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&index_id)
        {
            return high;
        }
        let _files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        let mut high = 0;
        if let Some(entries) = self
            .index_dir(index_id)
            .and_then(|dir| std::fs::read_dir(dir).ok())
        {
            for path in entries.flatten().map(|e| e.path()) {
                if path.extension().is_some_and(|e| e == "seg") {
                    if let Ok(seg) = SealedSegment::open(&path) {
                        high = high.max(seg.max_id().unwrap_or(0));
                    }
                }
            }
        }
        let mut known = self.sealed_high.lock().unwrap_or_else(|e| e.into_inner());
        let entry = known.entry(index_id).or_insert(0);
        *entry = (*entry).max(high);
        *entry
    }

    /// Makes the loaded state follow a committed write, or leaves it be.
    ///
    /// The state follows only if it reflects exactly the sequence the write started from
    /// (`change.from_seq`): then adding the write gives the state of `change.seq`. Any other
    /// state (none loaded, one that missed a write of another process or thread, one already
    /// reloaded past this write) is left as it is; a search whose snapshot is newer reloads
    /// it from SQLite. Nothing is lost either way, since SQLite already holds the write.
    ///
    /// Sealing, when the write filled the mutable segment, happens here, after the commit,
    /// under the state's write lock. A failure of the memory (an insert the graph refuses)
    /// drops the state, to be rebuilt from SQLite; a failed seal leaves the vectors in the
    /// mutable segment, and the next write or load tries again.
    pub fn apply(&self, row: &IndexRow, change: &Change<'_>) {
        // Writes commit in sequence order, but their threads may get here in any order; the
        // state follows them in commit order, or a later write would find it one behind
        // and leave it there, so that every search after rebuilt it.
        self.settling
            .wait(row.index_id, change.from_seq, super::settle::SETTLE_WAIT);
        {
            let mut committed = self.committed.lock().unwrap_or_else(|e| e.into_inner());
            let seq = committed.entry(row.index_id).or_insert(change.seq);
            *seq = (*seq).max(change.seq);
        }
        self.follow(row, change);
        self.settling.settle(row.index_id, change.seq);
    }

    /// A write is about to commit sequence `seq` of `index_id`: searches that see it before
    /// [`Engine::apply`] has run wait for it rather than rebuild the state.
    pub fn announce(&self, index_id: i64, seq: i64) {
        self.settling.announce(index_id, seq);
    }

    /// A write that began at sequence `from` failed: its announcement is void.
    pub fn withdraw_after(&self, index_id: i64, from: i64) {
        self.settling.withdraw_after(index_id, from);
    }

    /// [`Engine::apply`]'s work on the state.
    fn follow(&self, row: &IndexRow, change: &Change<'_>) {
        let Some(state) = self.loaded_state(row) else {
            return;
        };
        let mut segs = state.inner.write().unwrap_or_else(|e| e.into_inner());
        if state.seq.load(Ordering::Acquire) != change.from_seq {
            return;
        }
        let prepared: Vec<(u64, Vec<f32>)> = change
            .added
            .iter()
            .map(|a| (a.vid, prepare(row.metric, a.values)))
            .collect();
        let refs: Vec<(u64, &[f32])> = prepared.iter().map(|(id, v)| (*id, v.as_slice())).collect();
        if segs.mutable.insert(&refs).is_err() {
            drop(segs);
            self.forget_state(&state);
            return;
        }
        if let Some(meta) = &change.meta_indexes {
            // Property changes first: a new metadata index starts empty (vectors written
            // before it are not indexed), a dropped one forgets its values.
            let before: Vec<String> = segs.meta_indexes.iter().map(|m| m.0.clone()).collect();
            for name in before.iter().filter(|n| !meta.iter().any(|m| &m.0 == *n)) {
                segs.filter.remove_property(name);
            }
            for (name, ty, _) in meta.iter().filter(|m| !before.contains(&m.0)) {
                segs.filter.add_property(name, *ty);
            }
        }
        for (vid, ns) in &change.removed {
            segs.live.remove(*vid);
            segs.live_roaring.remove(*vid);
            segs.filter.remove(*vid);
            segs.ids.remove(*vid);
            if let Some(set) = ns.as_ref().and_then(|ns| segs.namespaces.get_mut(ns)) {
                Arc::make_mut(set).remove(*vid);
            }
        }
        for a in &change.added {
            segs.live.insert(a.vid);
            segs.live_roaring.insert(a.vid);
            segs.filter.insert_metadata(a.vid, a.metadata);
            segs.ids.insert(a.vid, a.id, a.namespace);
            if let Some(ns) = a.namespace {
                Arc::make_mut(segs.namespaces.entry(ns.to_owned()).or_default()).insert(a.vid);
            }
        }
        if let Some(meta) = &change.meta_indexes {
            segs.meta_indexes = meta.clone();
        }
        segs.namespaces.retain(|_, set| !set.is_empty());
        state.seq.store(change.seq, Ordering::Release);
        // A failed seal changed nothing in memory; see above.
        let _ = self.maybe_seal(row, &mut segs);
    }

    /// Removes an index's segment files.
    pub fn remove_files(&self, index_id: i64) -> Result<()> {
        self.forget(index_id);
        let _files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        self.sealed_high
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&index_id);
        if let Some(dir) = self.index_dir(index_id) {
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(Error::io(&dir))?;
            }
        }
        Ok(())
    }

    /// The state of `row`'s index for a search (or a seal or compaction) whose snapshot
    /// shows `row`, loaded on `conn` when this process has none as new. The snapshot may be
    /// older than the memory (a write committed since it began), so a newer state is used
    /// as it is: a search re-checks every hit against the rows of its snapshot.
    pub fn state_for_read(&self, conn: &Connection, row: &IndexRow) -> Result<Arc<IndexState>> {
        if let Some(state) = self.cached(row) {
            return Ok(state);
        }
        // A write of this process may have committed and not yet been followed.
        self.settling
            .wait(row.index_id, row.seq, super::settle::SETTLE_WAIT);
        if let Some(state) = self.cached(row) {
            return Ok(state);
        }
        let _loading = self.loading.lock().unwrap_or_else(|e| e.into_inner());
        // Another thread may have loaded it while this one waited.
        if let Some(state) = self.cached(row) {
            return Ok(state);
        }
        self.counters.loads.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(self.load(conn, row)?);
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        // Never replace a newer state with an older one: a writer may have moved the current
        // state past this snapshot while it loaded. (Only loaders insert, one at a time, and
        // a state's seq only grows, so the comparison holds until the insert.)
        if let Some(current) = loaded.get(&row.index_id) {
            if same_index(&current.row, row) && current.seq() >= state.seq() {
                return Ok(Arc::clone(current));
            }
        }
        loaded.insert(row.index_id, Arc::clone(&state));
        Ok(state)
    }

    /// The loaded state if it is at least as new as `row`.
    fn cached(&self, row: &IndexRow) -> Option<Arc<IndexState>> {
        self.loaded_state(row)
            .filter(|state| state.seq() >= row.seq)
    }

    /// Builds an index's state: maps valid segment files, drops damaged ones, and puts every
    /// live vector no segment covers into the mutable segment.
    fn load(&self, conn: &Connection, row: &IndexRow) -> Result<IndexState> {
        let options = self.options();
        let mut sealed = Vec::new();
        // Every vid some kept segment holds.
        let mut covered = IdBitset::new();
        let files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(dir) = self.index_dir(row.index_id) {
            if dir.exists() {
                let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
                    .map_err(Error::io(&dir))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .collect();
                paths.sort();
                let next_vid = store::next_vid(conn, row.index_id)?;
                for path in paths {
                    if is_stamp(&path) {
                        // Kept while its segment exists; a stale stamp never matches.
                        if !segment_of_stamp(&path).exists() {
                            let _ = std::fs::remove_file(&path);
                        }
                        continue;
                    }
                    let is_segment = path.extension().is_some_and(|e| e == "seg");
                    if !is_segment {
                        // Leftovers of an interrupted write: never trusted.
                        let _ = std::fs::remove_file(&path);
                        continue;
                    }
                    match open_checked(&path, row, next_vid, options.memory)? {
                        // A compaction cut off between writing its output and removing its
                        // inputs leaves segments that share vectors: keep the first.
                        Some(seg) if !seg.ids().iter().any(|&id| covered.contains(id)) => {
                            for &id in seg.ids() {
                                covered.insert(id);
                            }
                            sealed.push(seg)
                        }
                        _ => {
                            self.counters
                                .rebuilt_segments
                                .fetch_add(1, Ordering::Relaxed);
                            let _ = std::fs::remove_file(&path);
                            let _ = std::fs::remove_file(stamp_path(&path));
                        }
                    }
                }
            }
        }
        drop(files);
        let mut live = IdBitset::new();
        let mut namespaces: HashMap<String, Arc<IdBitset>> = HashMap::new();
        let mut ids = VidTable::default();
        for (vid, id, ns) in store::live_ids(conn, row.index_id)? {
            live.insert(vid);
            ids.insert(vid, &id, ns.as_deref());
            if let Some(ns) = ns {
                Arc::make_mut(namespaces.entry(ns).or_default()).insert(vid);
            }
        }
        let meta_indexes = store::metadata_indexes(conn, row.index_id)?;
        let properties: Vec<(String, IndexType)> = meta_indexes
            .iter()
            .map(|(name, ty, _)| (name.clone(), *ty))
            .collect();
        let mut filter = FilterIndex::new(&properties);
        for (vid, property, value) in store::meta_values(conn, row.index_id, &meta_indexes)? {
            if live.contains(vid) {
                filter.insert_value(vid, &property, &value);
            }
        }
        let live_roaring: roaring::RoaringTreemap = live.iter().collect();
        let missing: Vec<u64> = live.iter().filter(|v| !covered.contains(*v)).collect();
        let mut mutable =
            MutableSegment::new(row.dimensions, row.metric, options.graph, missing.len());
        for chunk in missing.chunks(4096) {
            let rows = store::vectors_by_vid(conn, row.index_id, chunk)?;
            let prepared: Vec<(u64, Vec<f32>)> = rows
                .into_iter()
                .map(|v| (v.vid, prepare(row.metric, &v.values)))
                .collect();
            let refs: Vec<(u64, &[f32])> =
                prepared.iter().map(|(id, v)| (*id, v.as_slice())).collect();
            mutable
                .insert(&refs)
                .map_err(|e| Error::invalid("stored vectors", e.to_string()))?;
        }
        let mut segments = Segments {
            sealed,
            mutable,
            live,
            namespaces,
            ids,
            meta_indexes,
            filter,
            live_roaring,
        };
        self.maybe_seal(row, &mut segments)?;
        Ok(IndexState {
            row: row.clone(),
            validated: Mutex::new(None),
            seq: AtomicI64::new(row.seq),
            inner: RwLock::new(segments),
            candidates: Default::default(),
        })
    }

    /// Seals the mutable segment into a file when it has grown past the threshold.
    pub fn maybe_seal(&self, row: &IndexRow, segs: &mut Segments) -> Result<()> {
        if segs.mutable.len() >= self.options().seal_at {
            self.seal(row, segs)?;
        }
        Ok(())
    }

    /// Writes the mutable segment to a new sealed file and starts an empty one.
    pub fn seal(&self, row: &IndexRow, segs: &mut Segments) -> Result<()> {
        let _files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        self.seal_unlocked(row, segs)
    }

    /// [`Engine::seal`] for a caller already holding the files lock.
    fn seal_unlocked(&self, row: &IndexRow, segs: &mut Segments) -> Result<()> {
        let Some(dir) = self.index_dir(row.index_id) else {
            return Ok(());
        };
        if segs.mutable.is_empty() {
            return Ok(());
        }
        std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        let mut parts = segs.mutable.take_parts();
        let written = write_segment(&dir, &parts, &segs.namespaces, self.options().memory);
        let (seg, last) = match written {
            Ok(done) => done,
            Err(e) => {
                segs.mutable
                    .restore_vectors(std::mem::take(&mut parts.vectors));
                return Err(e);
            }
        };
        let mut known = self.sealed_high.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(high) = known.get_mut(&row.index_id) {
            *high = (*high).max(last);
        }
        drop(known);
        segs.sealed.push(seg);
        segs.mutable = MutableSegment::new(row.dimensions, row.metric, self.options().graph, 0);
        Ok(())
    }

    /// Rebuilds an index's searchable state from its live vectors only: one new sealed
    /// segment (or one mutable segment in memory). Old files are removed after the new one
    /// is in place. Touches no SQLite row (the caller clears the tombstones).
    pub fn compact(&self, row: &IndexRow, state: &IndexState) -> Result<()> {
        let mut segs = state.inner.write().unwrap_or_else(|e| e.into_inner());
        let options = self.options();
        let live: Vec<u64> = segs.live.iter().collect();
        let mut mutable =
            MutableSegment::new(row.dimensions, row.metric, options.graph, live.len());
        for chunk in live.chunks(4096) {
            let prepared: Vec<(u64, Vec<f32>)> = chunk
                .iter()
                .filter_map(|&vid| vector_of(&segs, vid).map(|v| (vid, v.to_vec())))
                .collect();
            let refs: Vec<(u64, &[f32])> =
                prepared.iter().map(|(id, v)| (*id, v.as_slice())).collect();
            mutable
                .insert(&refs)
                .map_err(|e| Error::invalid("stored vectors", e.to_string()))?;
        }
        let old: Vec<PathBuf> = segs.sealed.iter().map(|s| s.path().to_path_buf()).collect();
        segs.sealed.clear();
        segs.mutable = mutable;
        let _files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        if self.dir.is_some() {
            self.seal_unlocked(row, &mut segs)?;
        }
        let keep: Vec<PathBuf> = segs.sealed.iter().map(|s| s.path().to_path_buf()).collect();
        for path in old.into_iter().filter(|p| !keep.contains(p)) {
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_file(stamp_path(&path));
        }
        Ok(())
    }

    /// The `k` nearest allowed vectors to a prepared query. `candidates` is the set the
    /// namespace and filter allow (`None`: every live vector); `namespace` names the one
    /// namespace the set is when there is no filter. The path is [`super::planner::plan`]'s.
    pub fn search(
        &self,
        segs: &Segments,
        metric: Metric,
        query: &[f32],
        k: usize,
        candidates: Option<&IdBitset>,
        namespace: Option<&str>,
    ) -> Vec<Hit> {
        let options = self.options();
        let allowed: &IdBitset = candidates.unwrap_or(&segs.live);
        let shape = Shape {
            k,
            allowed: allowed.len(),
            live: segs.live.len(),
            namespace_only: namespace.is_some() && candidates.is_some(),
            groups: segs.sealed_have_groups(),
        };
        match planner::plan(&options, shape) {
            Plan::Empty => Vec::new(),
            Plan::ExactNamespaceRanges => {
                self.counters.exact.fetch_add(1, Ordering::Relaxed);
                let label = namespace.unwrap_or_default().as_bytes();
                namespace_scan(segs, metric, query, k, allowed, label)
            }
            Plan::ExactCandidates => {
                self.counters.exact.fetch_add(1, Ordering::Relaxed);
                exact_search(segs, metric, query, k, allowed)
            }
            Plan::Graph { ef } => {
                self.counters.graph.fetch_add(1, Ordering::Relaxed);
                let both = Both {
                    live: &segs.live,
                    allowed,
                };
                // A few more than k, so that a tie at the k-th distance can be broken by the
                // caller (by Vectorize id) rather than by whichever tied node the graph
                // reached first.
                let wanted = k + planner::TIE_MARGIN;
                let mut hits = Vec::new();
                let mut scratch = SearchScratch::default();
                for seg in &segs.sealed {
                    hits.extend(seg.search(query, wanted, ef, Some(&both), &mut scratch));
                }
                hits.extend(segs.mutable.search(query, wanted, ef, Some(&both)));
                hits.retain(|h| both.allows(h.id));
                sort_hits(&mut hits);
                hits.dedup_by_key(|h| h.id);
                if hits.len() < k.min(allowed.len()) {
                    self.counters.fallback.fetch_add(1, Ordering::Relaxed);
                    return exact_search(segs, metric, query, k, allowed);
                }
                hits.truncate(wanted);
                hits
            }
        }
    }
}

/// Whether two rows describe the same index with the same shape: an index deleted and
/// created again (by another process) may get the same `index_id`, but only within the
/// same millisecond the same creation time as well.
fn same_index(a: &IndexRow, b: &IndexRow) -> bool {
    a.index_id == b.index_id
        && a.dimensions == b.dimensions
        && a.metric == b.metric
        && a.created_on == b.created_on
}

/// Allowed means live and in the candidate set.
struct Both<'a> {
    live: &'a IdBitset,
    allowed: &'a IdBitset,
}

impl Allow for Both<'_> {
    fn allows(&self, id: u64) -> bool {
        self.live.contains(id) && self.allowed.contains(id)
    }
}

fn sort_hits(hits: &mut [Hit]) {
    hits.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
}

/// Writes `parts` as a sealed segment file in `dir`, one group per namespace (its vectors
/// then form one contiguous range of the file), and opens it; returns it with the largest
/// vid it holds.
fn write_segment(
    dir: &Path,
    parts: &GraphParts,
    namespaces: &HashMap<String, Arc<IdBitset>>,
    memory: Memory,
) -> Result<(SealedSegment, u64)> {
    let (first, last) = (parts.ids[0], parts.ids[parts.ids.len() - 1]);
    let path = dir.join(format!("{first:016}-{last:016}.seg"));
    let members: Vec<(&str, Vec<u64>)> = namespaces
        .iter()
        .map(|(ns, set)| {
            let ids: Vec<u64> = parts
                .ids
                .iter()
                .copied()
                .filter(|id| set.contains(*id))
                .collect();
            (ns.as_str(), ids)
        })
        .filter(|(_, ids)| !ids.is_empty())
        .collect();
    let groups: Vec<Group<'_>> = members
        .iter()
        .map(|(ns, ids)| Group {
            label: ns.as_bytes(),
            ids,
        })
        .collect();
    SealedSegment::write(&path, parts, last, &groups)
        .map_err(|e| Error::invalid("segment file", e.to_string()))?;
    let seg = SealedSegment::open_with(&path, memory)
        .map_err(|e| Error::invalid("segment file", e.to_string()))?;
    // The checksums were computed from these very bytes as they were written.
    write_stamp(&path);
    Ok((seg, last))
}

/// A vector's prepared values, wherever it is held.
pub(crate) fn vector_of(segs: &Segments, vid: u64) -> Option<&[f32]> {
    for seg in &segs.sealed {
        if let Some(local) = seg.local_of(vid) {
            return Some(seg.vector(local));
        }
    }
    segs.mutable.vector(vid)
}

/// A namespace scored exactly: each sealed segment's contiguous range of it (one
/// sequential read), and its members in the mutable segment.
fn namespace_scan(
    segs: &Segments,
    metric: Metric,
    query: &[f32],
    k: usize,
    allowed: &IdBitset,
    label: &[u8],
) -> Vec<Hit> {
    let both = Both {
        live: &segs.live,
        allowed,
    };
    let mut hits = Vec::new();
    for seg in &segs.sealed {
        if let Some(range) = seg.group(label) {
            hits.extend(seg.scan(query, range, k, Some(&both)));
        }
    }
    if !segs.mutable.is_empty() {
        // Walk whichever side is smaller.
        let members: Vec<u64> = if segs.mutable.len() < allowed.len() {
            segs.mutable
                .ids()
                .iter()
                .copied()
                .filter(|&id| both.allows(id))
                .collect()
        } else {
            allowed
                .iter()
                .filter(|&id| segs.live.contains(id) && segs.mutable.vector(id).is_some())
                .collect()
        };
        let rows = members
            .iter()
            .filter_map(|&vid| segs.mutable.vector(vid).map(|v| (vid, v)));
        hits.extend(exact::top_k(metric, query, rows, k));
    }
    keep_best(&mut hits, k);
    hits
}

/// Sorts `hits` and keeps the `k` best and every hit tied with the k-th, as
/// `exact::top_k` does for one list.
fn keep_best(hits: &mut Vec<Hit>, k: usize) {
    sort_hits(hits);
    if hits.len() > k && k > 0 {
        let kth = hits[k - 1].distance;
        let mut keep = k;
        while keep < hits.len() && hits[keep].distance == kth {
            keep += 1;
        }
        hits.truncate(keep);
    }
}

/// The allowed live vectors scored exactly: per sealed segment, the allowed ids found by one
/// galloping walk of its sorted ids and read in storage order; then the mutable segment's.
/// A vid lives in exactly one segment (a seal moves the mutable segment's rows into the
/// file; a load puts into the mutable segment only what no kept file holds).
fn exact_search(
    segs: &Segments,
    metric: Metric,
    query: &[f32],
    k: usize,
    allowed: &IdBitset,
) -> Vec<Hit> {
    let wanted: Vec<u64> = allowed.iter().filter(|&v| segs.live.contains(v)).collect();
    let mut hits = Vec::new();
    for seg in &segs.sealed {
        hits.extend(seg.exact(query, &wanted, k));
    }
    if !segs.mutable.is_empty() {
        // Walk whichever side is smaller.
        let rows: Vec<(u64, &[f32])> = if segs.mutable.len() < wanted.len() {
            let set = &segs.live;
            segs.mutable
                .ids()
                .iter()
                .filter(|&&id| set.contains(id) && allowed.contains(id))
                .filter_map(|&id| segs.mutable.vector(id).map(|v| (id, v)))
                .collect()
        } else {
            wanted
                .iter()
                .filter_map(|&id| segs.mutable.vector(id).map(|v| (id, v)))
                .collect()
        };
        hits.extend(exact::top_k(metric, query, rows.into_iter(), k));
    }
    keep_best(&mut hits, k);
    hits
}

/// Prepares stored values for search: unit length for cosine, as given otherwise.
pub(crate) fn prepare(metric: Metric, values: &[f32]) -> Vec<f32> {
    let mut v = values.to_vec();
    if metric == Metric::Cosine {
        let norm = crate::index::distance::dot(&v, &v).sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
    }
    v
}

/// Maps the segment at `path` (with `memory`) if it belongs to `row`'s index, holds only
/// committed vids (below `next_vid`) and is sound: the header, section table, ids, levels
/// and graph (checksums and every neighbour index) on every open, and the vectors' checksum
/// too unless a verification stamp says this exact file (length and modification time)
/// passed before. The full pass reads the whole file once, after which opens stay cheap.
///
/// `Ok(None)`: damaged, foreign or uncommitted (the caller deletes it and rebuilds from
/// SQLite). A file of a newer format than this build reads is an error naming both
/// versions, and is left on disk as it is: a newer d1vec wrote it and can still use it.
fn open_checked(
    path: &Path,
    row: &IndexRow,
    next_vid: u64,
    memory: Memory,
) -> Result<Option<SealedSegment>> {
    let seg = match SealedSegment::open_with(path, memory) {
        Ok(seg) => seg,
        Err(e @ SegmentError::Incompatible { .. }) => {
            return Err(Error::invalid("segment file", e.to_string()))
        }
        Err(_) => return Ok(None),
    };
    if seg.dims() != row.dimensions || seg.metric() != row.metric {
        return Ok(None);
    }
    // Ids at or past the next vid SQLite would hand out were never committed: a write
    // sealed them and then died (or SQLite was restored from an older copy).
    if seg.max_id().is_some_and(|last| last >= next_vid) {
        return Ok(None);
    }
    if seg.version() < crate::index::segment::FORMAT_VERSION {
        tracing::info!(
            file = %path.display(),
            version = seg.version(),
            "segment of an older format read as it is (no namespace ranges, f32 traversal); compaction rewrites it"
        );
    }
    let stamped = std::fs::read_to_string(stamp_path(path)).ok();
    if stamped.is_some() && stamped == file_stamp(path) {
        // Everything but the vectors' checksum, on every open.
        return Ok(seg.verify_graph().ok().map(|()| seg));
    }
    if seg.verify().is_err() {
        return Ok(None);
    }
    write_stamp(path);
    Ok(Some(seg))
}

/// The verification stamp next to a segment file: `<name>.seg.verified`.
fn stamp_path(segment: &Path) -> PathBuf {
    let mut name = segment.as_os_str().to_owned();
    name.push(".verified");
    PathBuf::from(name)
}

/// Whether `path` is a verification stamp.
fn is_stamp(path: &Path) -> bool {
    path.to_str().is_some_and(|p| p.ends_with(".seg.verified"))
}

/// The segment a stamp belongs to.
fn segment_of_stamp(stamp: &Path) -> PathBuf {
    let text = stamp.to_string_lossy();
    PathBuf::from(text.trim_end_matches(".verified"))
}

/// `<length> <mtime in ns>` of a file: what a stamp records.
fn file_stamp(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let mtime = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some(format!("{} {}", meta.len(), mtime.as_nanos()))
}

/// Records that the segment at `path`, as it is now, passed the full check. Best effort: a
/// missing stamp only costs one more full check at the next open.
fn write_stamp(path: &Path) {
    let Some(stamp) = file_stamp(path) else {
        return;
    };
    let target = stamp_path(path);
    let mut tmp = target.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    if std::fs::write(&tmp, stamp).is_ok() && std::fs::rename(&tmp, &target).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}
