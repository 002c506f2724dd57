//! The mutable segment: the in-memory part of an index that takes new vectors.
//!
//! New vectors go into an `hnsw_rs` graph (it builds good graphs, in parallel) and into a flat
//! copy kept here, which serves exact scoring, [`MutableSegment::vector`] and the export to
//! [`GraphParts`] when the segment is sealed.
//!
//! How the hazards of `hnsw_rs` 0.3 are handled:
//! - **Distances must be non-negative and never NaN.** `hnsw_rs` asserts `distance >= 0` in its
//!   layer search and neighbour selection and panics on a NaN while ordering candidates. The
//!   graph is therefore built and searched with `order_key` of the metric's internal distance:
//!   a strictly monotone map (up to one bit of precision) from every `f32` onto `[0, +inf]`, with
//!   NaN sent to `+inf`. `hnsw_rs` only compares and negates distances, so the graph it builds
//!   is the one it would build with the raw distance. Distances returned to callers are always
//!   recomputed with [`Metric::distance`] from the stored copy.
//! - **Input that would reach a panic.** Every row is validated before anything changes: length,
//!   finiteness, ids strictly ascending. A batch is inserted entirely or not at all.
//! - **Process termination and overflow in `Hnsw::new`.** `M` is clamped to `2..=255`
//!   (`hnsw_rs` ends the whole process above 256 and truncates `M` to a `u8`; `M = 1` breaks its level sampler), the size
//!   hint is capped (it becomes `Vec::with_capacity`), and the build `ef` is at least `M` (its
//!   layer search unwraps an empty heap when `ef` is 0).
//! - **Lifetimes.** The graph is `Hnsw<'static, ..>` fed through `insert_slice`, which copies
//!   each vector; nothing borrows from this struct.
//! - **Ids.** `hnsw_rs` identifies points by a `usize` "data id"; the segment gives it the
//!   *local* index (position in [`MutableSegment::ids`]) and maps back to the `u64` id, so no
//!   id is ever truncated and the export needs no lookup table.
//! - **Parallel insertion races.** If the first points are inserted concurrently, `hnsw_rs` can
//!   lose its entry point or leave a point with no neighbours. The first [`SERIAL_PREFIX`]
//!   points of a segment are always inserted one by one; only later batches of at least
//!   [`PARALLEL_MIN_BATCH`] rows use `parallel_insert_slice`.
//! - **Cross-layer links.** When a point is drawn above the current top layer, `hnsw_rs` links
//!   it (and, in reverse, the old entry point) on layers where the other end does not live, and
//!   records greedy-descent hops on layers above a point's own level. The export keeps, for each
//!   node and each layer `0..=level`, only neighbours that live on that layer, without
//!   self-links or duplicates, capped at `M` (`2 * M` on layer 0).
//! - **Orphans.** `hnsw_rs` drops a node's farthest link when a list overflows, which can leave
//!   a node that no link reaches (a few per 10,000 in the tests; up to 1.5% with dot-product).
//!   The export links each such node on layer 0 from a nearby reached node whose list has room
//!   (`link_orphans`), so a search over the exported graph can reach every vector unless all
//!   those lists are full.
//! - **Filtered search.** `search_filter` keeps walking the graph while it holds fewer than `ef`
//!   allowed points, so with a selective allow-set it already visits every reachable node;
//!   retrying with a larger `ef` would repeat that walk for nothing. When it returns fewer than
//!   `k` hits (fewer than `min(k, len)` without an allow-set), [`MutableSegment::search`] falls
//!   back to an exact scan of the segment, so a short answer is always the complete answer.

use std::fmt;

use hnsw_rs::hnsw::{FilterT, Hnsw};
use hnsw_rs::prelude::Distance;
use rayon::prelude::*;

use crate::index::graph::{Allow, GraphParams, GraphParts, Hit, Metric};

/// A segment inserts its first this-many points one at a time, whatever the batch size.
pub const SERIAL_PREFIX: usize = 1024;

/// Batches of at least this many rows (after the serial prefix) are inserted in parallel.
pub const PARALLEL_MIN_BATCH: usize = 256;

/// The number of layers `hnsw_rs` may use (levels `0..=15`).
const MAX_LAYERS: usize = 16;

/// The largest `M` that `hnsw_rs` accepts without exiting or truncating it.
const MAX_M: usize = 255;

/// The largest size hint passed on to allocations.
const MAX_HINT: usize = 1 << 20;

/// Exact scans over this many ids or more run on rayon's pool.
const PARALLEL_EXACT: usize = 8192;

/// Why rows were refused by [`MutableSegment::insert`]. Nothing is inserted when an error is
/// returned.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum MutableError {
    /// A vector does not have the segment's number of dimensions.
    #[error("vector {id} has {got} dimensions, expected {expected}")]
    Dimensions {
        /// The row's id.
        id: u64,
        /// The segment's dimensions.
        expected: usize,
        /// The vector's length.
        got: usize,
    },
    /// An id is not greater than the id inserted (or given) before it.
    #[error("id {id} is not greater than the previous id {previous}")]
    IdOrder {
        /// The offending id.
        id: u64,
        /// The largest id already in the segment or earlier in the batch.
        previous: u64,
    },
    /// A vector holds a NaN or an infinity.
    #[error("vector {id} has a non-finite value")]
    NonFinite {
        /// The row's id.
        id: u64,
    },
    /// The segment cannot address more nodes (local indexes are `u32`).
    #[error("the segment is full: at most {limit} vectors")]
    Full {
        /// The most vectors a segment holds.
        limit: usize,
    },
}

/// Maps an internal distance onto `[0, +inf]`, keeping its order: `hnsw_rs` asserts that
/// distances are non-negative (dot-product distances are not) and panics on NaN.
///
/// The float's bits are turned into a key that sorts like the float (the usual sign flip),
/// halved so that it fits the bit patterns of non-negative floats, and capped below the NaN
/// patterns. Distinct distances stay distinct except for pairs one unit in the last place
/// apart, and distances above 2^127 all map to `+inf`. NaN maps to `+inf` (farthest).
#[inline]
fn order_key(distance: f32) -> f32 {
    if distance.is_nan() {
        return f32::INFINITY;
    }
    let bits = distance.to_bits();
    let key = if bits & 0x8000_0000 != 0 {
        !bits
    } else {
        bits | 0x8000_0000
    };
    f32::from_bits((key >> 1).min(f32::INFINITY.to_bits()))
}

/// The distance `hnsw_rs` builds and searches with: [`order_key`] of the metric's internal
/// distance.
#[derive(Debug, Clone, Copy)]
struct GraphDistance(Metric);

impl Distance<f32> for GraphDistance {
    #[inline]
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        order_key(self.0.distance(a, b))
    }
}

/// Orders hits closest first (NaN distances last), ties by id.
fn sort_hits(hits: &mut [Hit]) {
    hits.sort_unstable_by(cmp_hits);
}

fn cmp_hits(a: &Hit, b: &Hit) -> std::cmp::Ordering {
    // Every NaN as the positive NaN, which `total_cmp` puts after +inf.
    let key = |h: &Hit| {
        if h.distance.is_nan() {
            f32::NAN
        } else {
            h.distance
        }
    };
    key(a).total_cmp(&key(b)).then(a.id.cmp(&b.id))
}

/// Keeps the `k` closest hits, sorted.
fn top_k(mut hits: Vec<Hit>, k: usize) -> Vec<Hit> {
    if hits.len() > k {
        hits.select_nth_unstable_by(k, cmp_hits);
        hits.truncate(k);
    }
    sort_hits(&mut hits);
    hits
}

/// The in-memory segment that takes new vectors: an hnsw_rs graph plus a copy of each
/// prepared vector.
///
/// Ids are internal ids, strictly ascending in insertion order; an id is never inserted twice
/// (`hnsw_rs` has no delete and would keep both copies): deletions are the caller's allow-set.
/// Searches take `&self` and may run concurrently; inserts take `&mut self`.
pub struct MutableSegment {
    dims: usize,
    metric: Metric,
    /// The effective `M` (clamped to what `hnsw_rs` supports).
    m: usize,
    ids: Vec<u64>,
    /// `ids.len() * dims` values in local order.
    vectors: Vec<f32>,
    graph: Hnsw<'static, f32, GraphDistance>,
}

impl fmt::Debug for MutableSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MutableSegment")
            .field("dims", &self.dims)
            .field("metric", &self.metric)
            .field("m", &self.m)
            .field("len", &self.ids.len())
            .finish_non_exhaustive()
    }
}

impl MutableSegment {
    /// An empty segment for `dims`-long vectors compared with `metric`. `expected` is a size
    /// hint for allocations. `params.m` is clamped to `2..=255` (limits of `hnsw_rs`) and
    /// `params.ef_construction` raised to at least `M` (as hnswlib does; `hnsw_rs` needs at
    /// least 1); [`GraphParts::m`] reports the `M` used.
    pub fn new(dims: usize, metric: Metric, params: GraphParams, expected: usize) -> Self {
        let m = params.m.clamp(2, MAX_M);
        let hint = expected.min(MAX_HINT);
        let graph = Hnsw::new(
            m,
            hint,
            MAX_LAYERS,
            params.ef_construction.max(m),
            GraphDistance(metric),
        );
        MutableSegment {
            dims,
            metric,
            m,
            ids: Vec::with_capacity(hint),
            vectors: Vec::with_capacity(hint.saturating_mul(dims).min(MAX_HINT * 16)),
            graph,
        }
    }

    /// The dimensions of every vector.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// The metric the segment compares with.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// Adds prepared vectors: ids strictly greater than any already inserted and ascending
    /// within the batch, each slice `dims` long and finite (unit length for cosine, which is
    /// the caller's job). The whole batch is validated first; on error nothing is inserted.
    /// Large batches are inserted in parallel on rayon's pool.
    pub fn insert(&mut self, rows: &[(u64, &[f32])]) -> Result<(), MutableError> {
        let mut previous = self.ids.last().copied();
        for &(id, values) in rows {
            if values.len() != self.dims {
                return Err(MutableError::Dimensions {
                    id,
                    expected: self.dims,
                    got: values.len(),
                });
            }
            if let Some(previous) = previous.filter(|&p| id <= p) {
                return Err(MutableError::IdOrder { id, previous });
            }
            if !values.iter().all(|v| v.is_finite()) {
                return Err(MutableError::NonFinite { id });
            }
            previous = Some(id);
        }
        let limit = u32::MAX as usize;
        if self.ids.len().saturating_add(rows.len()) > limit {
            return Err(MutableError::Full { limit });
        }

        let start = self.ids.len();
        self.ids.reserve(rows.len());
        self.vectors.reserve(rows.len().saturating_mul(self.dims));
        for &(id, values) in rows {
            self.ids.push(id);
            self.vectors.extend_from_slice(values);
        }
        let end = self.ids.len();

        // The first points go in one by one: concurrent first inserts race on the entry point.
        let serial_end = end.min(start.max(SERIAL_PREFIX));
        for local in start..serial_end {
            self.graph.insert_slice((self.local_vector(local), local));
        }
        let rest = serial_end..end;
        if rest.len() >= PARALLEL_MIN_BATCH {
            let batch: Vec<(&[f32], usize)> = rest
                .map(|local| (self.local_vector(local), local))
                .collect();
            self.graph.parallel_insert_slice(&batch);
        } else {
            for local in rest {
                self.graph.insert_slice((self.local_vector(local), local));
            }
        }
        Ok(())
    }

    /// How many vectors the segment holds.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the segment holds no vector.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The ids of the segment, ascending.
    pub fn ids(&self) -> &[u64] {
        &self.ids
    }

    /// The stored (prepared) vector of `id`, if the segment holds it.
    pub fn vector(&self, id: u64) -> Option<&[f32]> {
        self.local(id).map(|local| self.local_vector(local))
    }

    /// The local index of `id`.
    fn local(&self, id: u64) -> Option<usize> {
        self.ids.binary_search(&id).ok()
    }

    /// The vector of a local index (which must be `< len`).
    fn local_vector(&self, local: usize) -> &[f32] {
        &self.vectors[local * self.dims..(local + 1) * self.dims]
    }

    /// Whether a query can be compared with the stored vectors.
    fn valid_query(&self, query: &[f32]) -> bool {
        query.len() == self.dims && query.iter().all(|v| v.is_finite())
    }

    /// Graph search: up to `k` hits, closest first (ties by id), whose ids pass `allow` (all
    /// when `None`), searching with `ef = max(ef, k)`. Distances are
    /// `metric.distance(query, stored vector)`.
    ///
    /// When the graph yields fewer than `k` allowed hits (fewer than `min(k, len)` without an
    /// allow-set), the answer comes from an exact scan of the whole segment instead, so a
    /// result shorter than `k` holds every allowed vector. This makes a very selective
    /// allow-set cost a full scan: callers with few candidates should use [`Self::exact`].
    /// A query of the wrong length or with a non-finite value finds nothing.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        allow: Option<&dyn Allow>,
    ) -> Vec<Hit> {
        if k == 0 || self.ids.is_empty() || !self.valid_query(query) {
            return Vec::new();
        }
        let ef = ef.max(k);
        let ids = &self.ids;
        let passes = |local: usize| {
            ids.get(local)
                .is_some_and(|&id| allow.is_none_or(|a| a.allows(id)))
        };
        let found = match allow {
            None => self.graph.search_filter(query, k, ef, None),
            Some(_) => {
                let filter = |local: &usize| passes(*local);
                self.graph
                    .search_filter(query, k, ef, Some(&filter as &dyn FilterT))
            }
        };
        // hnsw_rs returns each point once; sorting and deduplicating costs little and makes
        // that certain.
        let mut locals: Vec<usize> = found
            .iter()
            .map(|n| n.get_origin_id())
            .filter(|&local| passes(local))
            .collect();
        locals.sort_unstable();
        locals.dedup();
        let hits: Vec<Hit> = locals
            .into_iter()
            .map(|local| Hit {
                id: ids[local],
                distance: self.metric.distance(query, self.local_vector(local)),
            })
            .collect();
        let wanted = if allow.is_some() { k } else { k.min(ids.len()) };
        if hits.len() < wanted {
            return self.scan(query, k, allow);
        }
        top_k(hits, k)
    }

    /// Exact search over the whole segment, restricted to `allow`.
    fn scan(&self, query: &[f32], k: usize, allow: Option<&dyn Allow>) -> Vec<Hit> {
        let score = |local: usize| {
            let id = self.ids[local];
            allow.is_none_or(|a| a.allows(id)).then(|| Hit {
                id,
                distance: self.metric.distance(query, self.local_vector(local)),
            })
        };
        let n = self.ids.len();
        let hits: Vec<Hit> = if n >= PARALLEL_EXACT {
            (0..n).into_par_iter().filter_map(score).collect()
        } else {
            (0..n).filter_map(score).collect()
        };
        top_k(hits, k)
    }

    /// Exact distances from `query` to this segment's vectors of the given ids (ids not here
    /// are skipped, repeated ids count once): the `k` closest, closest first (ties by id).
    /// A query of the wrong length or with a non-finite value finds nothing.
    pub fn exact(&self, query: &[f32], ids: &[u64], k: usize) -> Vec<Hit> {
        if k == 0 || self.ids.is_empty() || !self.valid_query(query) {
            return Vec::new();
        }
        let score = |&id: &u64| {
            self.local(id).map(|local| Hit {
                id,
                distance: self.metric.distance(query, self.local_vector(local)),
            })
        };
        let mut hits: Vec<Hit> = if ids.len() >= PARALLEL_EXACT {
            ids.par_iter().filter_map(score).collect()
        } else {
            ids.iter().filter_map(score).collect()
        };
        if !ids.is_sorted_by(|a, b| a < b) {
            hits.sort_unstable_by_key(|h| h.id);
            hits.dedup_by_key(|h| h.id);
        }
        top_k(hits, k)
    }

    /// Exports the graph and vectors for sealing: locals in ascending id order, for each node
    /// and each of its layers `0..=level` its neighbours on that layer as locals (at most `M`,
    /// `2 * M` on layer 0; closest first as `hnsw_rs` keeps them, except for the links added
    /// on layer 0 to reach nodes that no link reached), levels as `hnsw_rs` drew them, and an
    /// entry point on the top layer (the one `hnsw_rs` searches from after serial insertion).
    pub fn to_parts(&self) -> GraphParts {
        let n = self.ids.len();
        let index = self.graph.get_point_indexation();
        let layers = self.graph.get_max_level().min(MAX_LAYERS);
        // Pass 1: levels. `hnsw_rs` keeps each point in the list of its level.
        let mut levels = vec![0u8; n];
        let mut entry_point: Option<(u8, u32)> = None;
        for layer in 0..layers {
            for point in index.get_layer_iterator(layer) {
                let local = point.get_origin_id();
                if local < n {
                    let level = layer as u8;
                    levels[local] = level;
                    // The first point drawn on the top layer: hnsw_rs's own entry point.
                    if entry_point.is_none_or(|(top, _)| level > top) {
                        entry_point = Some((level, local as u32));
                    }
                }
            }
        }
        // Pass 2: neighbours that live on each layer of each node.
        let mut neighbors: Vec<Vec<Vec<u32>>> = vec![vec![Vec::new()]; n];
        for layer in 0..layers {
            for point in index.get_layer_iterator(layer) {
                let local = point.get_origin_id();
                if local >= n {
                    continue;
                }
                let hood = point.get_neighborhood_id();
                neighbors[local] = (0..=usize::from(levels[local]))
                    .map(|l| {
                        let cap = if l == 0 { 2 * self.m } else { self.m };
                        let mut list: Vec<u32> = Vec::with_capacity(cap);
                        for nb in hood.get(l).into_iter().flatten() {
                            let other = nb.get_origin_id();
                            if list.len() < cap
                                && other < n
                                && other != local
                                && usize::from(levels[other]) >= l
                                && !list.contains(&(other as u32))
                            {
                                list.push(other as u32);
                            }
                        }
                        list
                    })
                    .collect();
            }
        }
        if let Some((_, entry)) = entry_point {
            link_orphans(&mut neighbors, entry as usize, 2 * self.m);
        }
        GraphParts {
            dims: self.dims,
            metric: self.metric,
            m: self.m,
            ids: self.ids.clone(),
            vectors: self.vectors.clone(),
            levels,
            entry_point: entry_point.map(|(_, local)| local),
            neighbors,
        }
    }
}

/// Makes every node reachable from `entry` on layer 0 where it can: `hnsw_rs` drops a node's
/// farthest link when a list overflows, which can leave a node with no incoming link (more so
/// for dot-product, which is not a metric). Each such orphan gets a link from a reached node
/// among its own neighbours, or their neighbours, whose list still has room (`cap`); the link
/// is appended, so that list is no longer sorted by distance. Returns how many nodes stay
/// unreachable (all their candidates' lists full).
fn link_orphans(neighbors: &mut [Vec<Vec<u32>>], entry: usize, cap: usize) -> usize {
    let n = neighbors.len();
    let mut reached = vec![false; n];
    let mut stack = vec![entry];
    reached[entry] = true;
    let mut left = n - 1;
    loop {
        while let Some(node) = stack.pop() {
            for &nb in &neighbors[node][0] {
                if !std::mem::replace(&mut reached[nb as usize], true) {
                    left -= 1;
                    stack.push(nb as usize);
                }
            }
        }
        if left == 0 {
            return 0;
        }
        let mut linked = false;
        for orphan in 0..n {
            if reached[orphan] {
                continue;
            }
            let near = &neighbors[orphan][0];
            let two_hops = near.iter().flat_map(|&nb| neighbors[nb as usize][0].iter());
            let host = near
                .iter()
                .chain(two_hops)
                .map(|&v| v as usize)
                .find(|&v| reached[v] && neighbors[v][0].len() < cap);
            if let Some(host) = host {
                neighbors[host][0].push(orphan as u32);
                reached[orphan] = true;
                left -= 1;
                stack.push(orphan);
                linked = true;
                // Reach what the orphan links to before choosing hosts for the others.
                while let Some(node) = stack.pop() {
                    for &nb in &neighbors[node][0] {
                        if !std::mem::replace(&mut reached[nb as usize], true) {
                            left -= 1;
                            stack.push(nb as usize);
                        }
                    }
                }
            }
        }
        if !linked {
            return left;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn layer0(lists: &[&[u32]]) -> Vec<Vec<Vec<u32>>> {
        lists.iter().map(|l| vec![l.to_vec()]).collect()
    }

    #[test]
    fn orphans_get_a_link_from_a_reached_neighbour_with_room() {
        // 2 links to 1 but nothing links to 2.
        let mut g = layer0(&[&[1], &[0], &[1]]);
        assert_eq!(link_orphans(&mut g, 0, 4), 0);
        assert_eq!(g, layer0(&[&[1], &[0, 2], &[1]]));
        // 3 and 4 link to each other only, 4 also to 1: 3 is hosted two hops away, by 1, and
        // 4 is then reached through 3.
        let mut g = layer0(&[&[1], &[0, 2], &[0], &[4], &[3, 1]]);
        assert_eq!(link_orphans(&mut g, 0, 4), 0);
        assert_eq!(g, layer0(&[&[1], &[0, 2, 3], &[0], &[4], &[3, 1]]));
        // An island with no reached node within two hops stays unreachable.
        let mut g = layer0(&[&[1], &[0], &[3], &[2]]);
        assert_eq!(link_orphans(&mut g, 0, 4), 2);
        assert_eq!(g, layer0(&[&[1], &[0], &[3], &[2]]));
        // Full lists cannot host: the orphan stays and nothing changes.
        let mut g = layer0(&[&[1], &[0], &[1]]);
        assert_eq!(link_orphans(&mut g, 0, 1), 1);
        assert_eq!(g, layer0(&[&[1], &[0], &[1]]));
        // Upper layers are left alone.
        let mut g = vec![vec![vec![1], vec![]], vec![vec![0], vec![]], vec![vec![0]]];
        assert_eq!(link_orphans(&mut g, 0, 4), 0);
        assert_eq!(g[0], vec![vec![1, 2], vec![]]);
    }

    #[test]
    fn order_key_edges() {
        assert_eq!(order_key(f32::NAN), f32::INFINITY);
        assert_eq!(order_key(f32::INFINITY), f32::INFINITY);
        assert!(order_key(f32::NEG_INFINITY) > 0.0);
        assert!(order_key(-0.0) < order_key(0.0));
        assert!(order_key(-1e-30) < order_key(-0.0));
        assert!(order_key(0.0) < order_key(1e-30));
        assert!(order_key(-f32::MAX) < order_key(-1.0));
        assert!(order_key(1.0) < order_key(2.0));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn order_key_is_monotone_and_non_negative(a in any::<f32>(), b in any::<f32>()) {
            let (ka, kb) = (order_key(a), order_key(b));
            prop_assert!(ka >= 0.0 && !ka.is_nan());
            prop_assert!(kb >= 0.0 && !kb.is_nan());
            if !a.is_nan() && !b.is_nan() && a < b {
                prop_assert!(ka <= kb);
                // Strict unless one unit in the last place apart, or both beyond 2^127.
                let sortable = |x: f32| {
                    let bits = x.to_bits();
                    if bits >> 31 == 1 { i64::from(!bits) } else { i64::from(bits | 0x8000_0000) }
                };
                if sortable(b) - sortable(a) >= 2 && a < 1e38 {
                    prop_assert!(ka < kb, "{a} {b} {ka} {kb}");
                }
            }
        }
    }
}
