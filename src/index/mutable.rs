//! The mutable segment: the in-memory part of an index that takes new vectors.
//!
//! New vectors go into a flat copy kept here (exact scoring, [`MutableSegment::vector`], the
//! seal's export) and into d1vec's own HNSW graph over their int8 codes
//! ([`super::growing::GrowingGraph`]), which inserts large batches in parallel. A seal
//! exports that graph as [`GraphParts`]; nothing is rebuilt.
//!
//! What the segment guarantees, whatever it is given:
//! - **Input that would break the graph.** Every row is validated before anything changes:
//!   length, finiteness, ids strictly ascending. A batch is inserted entirely or not at all.
//! - **Parameters.** `M` is clamped to `2..=255` (the file format's limit) and the build
//!   `ef` to at least `M`; the size hint is capped before it becomes an allocation.
//! - **Scores are exact.** The graph ranks candidates by code estimates; every returned
//!   distance is recomputed with [`Metric::distance`] from the stored `f32` copy, over the
//!   search's whole candidate list (`ef` of them), before the top `k` are taken.
//! - **Orphans.** A list that overflows drops the link the heuristic likes least, which can
//!   leave a node no link reaches. After every insert the graph links each such node on
//!   layer 0 from a nearby reached node whose list has room (`growing::link_orphans`), so a
//!   search, here or over the exported graph, can reach every vector unless all those lists
//!   are full.
//! - **Short answers are complete.** A filtered search keeps walking the graph while it
//!   holds fewer than `ef` allowed points, so with a selective allow-set it already visits
//!   every reachable node. When it returns fewer than `k` hits (fewer than `min(k, len)`
//!   without an allow-set), [`MutableSegment::search`] falls back to an exact scan of the
//!   segment, so a short answer is always the complete answer.

use std::fmt;

use rayon::prelude::*;

use crate::index::graph::{Allow, GraphParams, GraphParts, Hit, Metric};
use crate::index::growing::GrowingGraph;
use crate::index::quant::Estimator;

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

/// The in-memory segment that takes new vectors: an HNSW graph on codes plus a copy of each
/// prepared vector.
///
/// Ids are internal ids, strictly ascending in insertion order; an id is never inserted twice
/// (the graph has no delete and would keep both copies): deletions are the caller's allow-set.
/// Searches take `&self` and may run concurrently; inserts take `&mut self`.
pub struct MutableSegment {
    dims: usize,
    metric: Metric,
    /// The effective `M` (clamped to the file format's `2..=255`).
    m: usize,
    ids: Vec<u64>,
    /// `ids.len() * dims` values in local order.
    vectors: Vec<f32>,
    /// Nodes are local indexes (positions in `ids`).
    graph: GrowingGraph,
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
    /// hint for allocations. `params.m` is clamped to `2..=255` (the file format's limit)
    /// and `params.ef_construction` raised to at least `M` (as hnswlib does);
    /// [`GraphParts::m`] reports the `M` used.
    pub fn new(dims: usize, metric: Metric, params: GraphParams, expected: usize) -> Self {
        let hint = expected.min(MAX_HINT);
        let mut graph = GrowingGraph::new(dims, metric, params.m, params.ef_construction);
        let m = graph.m();
        graph.reserve(hint.min(MAX_HINT * 16 / dims.max(1)));
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

        // The graph inserts its first nodes one by one and large batches in parallel.
        self.graph
            .insert(&self.vectors[start * self.dims..end * self.dims]);
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
        let estimator = Estimator::new(self.metric, query);
        let filter = |local: u32| passes(local as usize);
        let found = match allow {
            None => self.graph.search(&estimator, ef, None),
            Some(_) => self.graph.search(&estimator, ef, Some(&filter)),
        };
        // The graph returns each node once and only allowed ones; sorting and deduplicating
        // costs little and makes that certain.
        let mut locals: Vec<usize> = found
            .iter()
            .map(|n| n.node as usize)
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
    /// `2 * M` on layer 0, plus the links added on layer 0 to reach nodes that no link
    /// reached), levels as the graph drew them, and its entry point (a node on the top layer).
    pub fn to_parts(&self) -> GraphParts {
        let n = self.ids.len();
        let mut levels = self.graph.levels().to_vec();
        let mut neighbors = self.graph.neighbors();
        // A zero-dimension segment has no graph: one node per row, no links.
        levels.resize(n, 0);
        neighbors.resize(n, vec![Vec::new()]);
        let entry_point = self
            .graph
            .entry_point()
            .map(|e| (levels[e as usize], e))
            .or((n > 0).then_some((0, 0)));
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

    /// [`to_parts`](Self::to_parts) for a seal, with the vectors moved out instead of copied
    /// (a segment of 1,000,000 x 1,536 holds 6 GB of them). Until
    /// [`restore_vectors`](Self::restore_vectors) puts them back, the segment has no vectors:
    /// the caller holds the state's write lock and either replaces the segment (the seal
    /// succeeded) or restores them (it failed).
    pub fn take_parts(&mut self) -> GraphParts {
        let vectors = std::mem::take(&mut self.vectors);
        let mut parts = self.to_parts();
        parts.vectors = vectors;
        parts
    }

    /// Puts back the vectors [`take_parts`](Self::take_parts) moved out.
    pub fn restore_vectors(&mut self, vectors: Vec<f32>) {
        self.vectors = vectors;
    }
}

#[cfg(test)]
mod tests {
    use crate::index::growing::link_orphans;

    fn layer0(lists: &[&[u32]]) -> Vec<Vec<Vec<u32>>> {
        lists.iter().map(|l| vec![l.to_vec()]).collect()
    }

    #[test]
    fn orphans_get_a_link_from_a_reached_neighbour_with_room() {
        // 2 links to 1 but nothing links to 2.
        let mut g = layer0(&[&[1], &[0], &[1]]);
        assert_eq!(link_orphans(&mut g[..], 0, 4, &mut |_, _, _| None), 0);
        assert_eq!(g, layer0(&[&[1], &[0, 2], &[1]]));
        // 3 and 4 link to each other only, 4 also to 1: 3 is hosted two hops away, by 1, and
        // 4 is then reached through 3.
        let mut g = layer0(&[&[1], &[0, 2], &[0], &[4], &[3, 1]]);
        assert_eq!(link_orphans(&mut g[..], 0, 4, &mut |_, _, _| None), 0);
        assert_eq!(g, layer0(&[&[1], &[0, 2, 3], &[0], &[4], &[3, 1]]));
        // An island with no reached node within two hops stays unreachable.
        let mut g = layer0(&[&[1], &[0], &[3], &[2]]);
        assert_eq!(link_orphans(&mut g[..], 0, 4, &mut |_, _, _| None), 2);
        assert_eq!(g, layer0(&[&[1], &[0], &[3], &[2]]));
        // Full lists cannot host: the orphan stays and nothing changes.
        let mut g = layer0(&[&[1], &[0], &[1]]);
        assert_eq!(link_orphans(&mut g[..], 0, 1, &mut |_, _, _| None), 1);
        assert_eq!(g, layer0(&[&[1], &[0], &[1]]));
        // Upper layers are left alone.
        let mut g = [vec![vec![1], vec![]], vec![vec![0], vec![]], vec![vec![0]]];
        assert_eq!(link_orphans(&mut g[..], 0, 4, &mut |_, _, _| None), 0);
        assert_eq!(g[0], vec![vec![1, 2], vec![]]);
    }
}
