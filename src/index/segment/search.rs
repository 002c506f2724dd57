//! Reading a sealed segment: graph search (on the int8 codes when the file has them, then
//! exact rescoring), scans of a local range, and exact scoring of given ids.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::format::{CODES, CODE_PARAMS, LAYER0, NONE, UPPER_LINKS, UPPER_OFFSETS};
use super::SealedSegment;
use crate::index::exact::TopK;
use crate::index::graph::{Allow, Hit, Metric, Near, Visited};
use crate::index::quant::{prefetch, CodeParams, Estimator};

/// Reusable per-thread buffers for [`SealedSegment::search`]: a visited set (an epoch per
/// node, so clearing is O(1)) and the two heaps. Grows to the largest segment searched.
#[derive(Debug, Default)]
pub struct SearchScratch {
    visited: Visited,
    candidates: BinaryHeap<Reverse<Near>>,
    results: BinaryHeap<Near>,
    sorted: Vec<Hit>,
}

impl SearchScratch {
    /// Empty buffers (they grow on first use).
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a new search over `count` nodes: nothing visited, heaps empty.
    fn reset(&mut self, count: usize) {
        self.visited.reset(count);
        self.candidates.clear();
        self.results.clear();
    }

    /// Whether `node` was visited in this search (out-of-range nodes count as seen).
    #[inline]
    fn seen(&self, node: usize) -> bool {
        self.visited.seen(node)
    }

    /// Marks `node` visited; returns whether it was new. Out-of-range nodes count as seen.
    #[inline]
    fn visit(&mut self, node: usize) -> bool {
        self.visited.visit(node)
    }
}

/// Borrowed, typed views of the sections for one search.
pub(super) struct Graph<'a> {
    vectors: &'a [f32],
    layer0: &'a [u32],
    pub(super) offsets: &'a [u32],
    links: &'a [u32],
    codes: &'a [i8],
    params: &'a [CodeParams],
    dims: usize,
    m: usize,
    metric: Metric,
}

impl<'a> Graph<'a> {
    #[inline]
    fn vector(&self, node: usize) -> &'a [f32] {
        let start = node.saturating_mul(self.dims);
        self.vectors
            .get(start..start.saturating_add(self.dims))
            .unwrap_or(&[])
    }

    /// The exact distance from `query` to `node` (NaN for a node without a vector, which
    /// only a corrupt file has; NaN is never returned as a hit).
    #[inline]
    fn distance(&self, query: &[f32], node: usize) -> f32 {
        let v = self.vector(node);
        if v.len() == self.dims {
            // `+ 0.0` turns -0.0 into 0.0, as `TopK` does, so equal distances are equal.
            self.metric.distance(query, v) + 0.0
        } else {
            f32::NAN
        }
    }

    #[inline]
    fn code(&self, node: usize) -> &'a [i8] {
        let start = node.saturating_mul(self.dims);
        self.codes
            .get(start..start.saturating_add(self.dims))
            .unwrap_or(&[])
    }

    /// The estimated distance from the coded query to `node` (NaN when the node has no
    /// code, which only a corrupt file has).
    #[inline]
    fn estimate(&self, est: &Estimator, node: usize) -> f32 {
        let code = self.code(node);
        match self.params.get(node) {
            Some(&p) if code.len() == self.dims => est.distance(code, p),
            _ => f32::NAN,
        }
    }

    /// Asks the CPU to start loading `node`'s code, one cache line at a time.
    #[inline]
    fn prefetch_code(&self, node: usize) {
        let code = self.code(node);
        let mut at = 0;
        while at < code.len() {
            prefetch(&code[at..]);
            at += 64;
        }
    }

    /// The layer-0 adjacency row of `node` (`2M` slots, empty ones `NONE`).
    #[inline]
    pub(super) fn layer0_row(&self, node: usize) -> &'a [u32] {
        let width = 2 * self.m;
        let start = node.saturating_mul(width);
        self.layer0
            .get(start..start.saturating_add(width))
            .unwrap_or(&[])
    }

    /// The adjacency row of `node` on `layer >= 1` (`M` slots), empty when the node has no
    /// such layer or the offsets are inconsistent.
    #[inline]
    pub(super) fn upper_row(&self, node: usize, layer: usize) -> &'a [u32] {
        let (Some(&first), Some(&end)) = (self.offsets.get(node), self.offsets.get(node + 1))
        else {
            return &[];
        };
        let block = first as usize + (layer - 1);
        if first > end || block >= end as usize {
            return &[];
        }
        let start = block.saturating_mul(self.m);
        self.links
            .get(start..start.saturating_add(self.m))
            .unwrap_or(&[])
    }
}

impl SealedSegment {
    /// The typed sections a search reads.
    pub(super) fn graph(&self) -> Graph<'_> {
        Graph {
            vectors: self.vectors(),
            layer0: self.cast(LAYER0).unwrap_or(&[]),
            offsets: self.cast(UPPER_OFFSETS).unwrap_or(&[]),
            links: self.cast(UPPER_LINKS).unwrap_or(&[]),
            codes: self.cast(CODES).unwrap_or(&[]),
            params: self.cast(CODE_PARAMS).unwrap_or(&[]),
            dims: self.dims,
            m: self.m,
            metric: self.metric,
        }
    }

    /// HNSW beam search: greedy descent on the upper layers, then an `ef`-wide search on
    /// layer 0 (`ef` is raised to `k` when smaller). With int8 codes (version 2) the
    /// traversal compares codes (prefetching each next neighbour's code) and the final
    /// `ef` candidates are rescored with the exact `f32` vectors; without (version 1) it
    /// compares the vectors. Either way the returned distances are exact `f32` distances:
    /// up to `k` hits, closest first (ties by the smaller id), whose ids pass `allow` (all
    /// when `None`). Nodes that fail `allow` are still traversed, so the graph stays
    /// connected, but never returned; the search then runs until it holds `ef` allowed
    /// nodes or runs out of graph, so a very selective `allow` approaches a full scan (use
    /// [`scan`](Self::scan) or [`exact`](Self::exact) then). Returns nothing when `query`
    /// does not have `dims()` values. Every index read from the file is bounds-checked.
    /// Uses `scratch` instead of allocating.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        allow: Option<&dyn Allow>,
        scratch: &mut SearchScratch,
    ) -> Vec<Hit> {
        if k == 0 || self.count == 0 || query.len() != self.dims {
            return Vec::new();
        }
        let g = self.graph();
        let ef = ef.max(k);
        if self.has_codes() {
            let est = Estimator::new(self.metric, query);
            self.beam(
                &g,
                ef,
                allow,
                scratch,
                |node| g.estimate(&est, node),
                |node| g.prefetch_code(node),
            );
        } else {
            self.beam(
                &g,
                ef,
                allow,
                scratch,
                |node| g.distance(query, node),
                |_| {},
            );
        }
        // Rescore with the exact vectors (for a version 1 file the distances are already
        // exact; computing them again costs `ef` distances and keeps one path).
        let ids = self.ids();
        scratch.sorted.clear();
        for n in scratch.results.drain() {
            let node = n.node as usize;
            let (Some(&id), d) = (ids.get(node), g.distance(query, node)) else {
                continue;
            };
            if !d.is_nan() {
                scratch.sorted.push(Hit { id, distance: d });
            }
        }
        scratch
            .sorted
            .sort_unstable_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
        scratch.sorted.truncate(k);
        scratch.sorted.clone()
    }

    /// The traversal: leaves the best `ef` allowed nodes by `dist` in `scratch.results`.
    fn beam(
        &self,
        g: &Graph<'_>,
        ef: usize,
        allow: Option<&dyn Allow>,
        scratch: &mut SearchScratch,
        dist: impl Fn(usize) -> f32,
        fetch: impl Fn(usize),
    ) {
        let ids = self.ids();
        let allowed = |node: usize| match (allow, ids.get(node)) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(a), Some(&id)) => a.allows(id),
        };

        // Greedy descent: move to a strictly closer neighbour until none is (terminates:
        // the distance strictly decreases over a finite set; NaN never compares smaller).
        let mut cur = self.entry_point as usize;
        let mut cur_d = dist(cur);
        for layer in (1..=usize::from(self.max_level)).rev() {
            loop {
                let mut moved = false;
                for &nb in g.upper_row(cur, layer) {
                    if nb == NONE {
                        break;
                    }
                    let nb = nb as usize;
                    if nb >= self.count {
                        continue;
                    }
                    let d = dist(nb);
                    if d < cur_d {
                        (cur, cur_d) = (nb, d);
                        moved = true;
                    }
                }
                if !moved {
                    break;
                }
            }
        }

        // Layer 0: best-first expansion; `results` holds the best `ef` allowed nodes.
        scratch.reset(self.count);
        scratch.visit(cur);
        let start = Near {
            distance: cur_d,
            node: cur as u32,
        };
        scratch.candidates.push(Reverse(start));
        if allowed(cur) && !cur_d.is_nan() {
            scratch.results.push(start);
        }
        while let Some(Reverse(c)) = scratch.candidates.pop() {
            let full = scratch.results.len() >= ef;
            if full
                && scratch
                    .results
                    .peek()
                    .is_some_and(|w| c.distance > w.distance)
            {
                break;
            }
            let row = g.layer0_row(c.node as usize);
            // Start loading the codes of the neighbours this expansion will compare.
            for &nb in row {
                if nb == NONE {
                    break;
                }
                if !scratch.seen(nb as usize) {
                    fetch(nb as usize);
                }
            }
            for &nb in row {
                if nb == NONE {
                    break;
                }
                let node = nb as usize;
                if node >= self.count || !scratch.visit(node) {
                    continue;
                }
                let d = dist(node);
                if d.is_nan() {
                    continue;
                }
                let worst = scratch.results.peek().map(|w| w.distance);
                if scratch.results.len() < ef || worst.is_some_and(|w| d < w) {
                    let near = Near {
                        distance: d,
                        node: nb,
                    };
                    scratch.candidates.push(Reverse(near));
                    if allowed(node) {
                        scratch.results.push(near);
                        if scratch.results.len() > ef {
                            scratch.results.pop();
                        }
                    }
                }
            }
        }
    }

    /// Exact `f32` distances over the contiguous local range `range` (clamped to the
    /// segment; e.g. a [`group`](Self::group)), read sequentially: the `k` nearest whose
    /// ids pass `allow`, closest first, ties by id, and every id tied with the k-th
    /// distance too (as [`exact::top_k`](crate::index::exact::top_k)). Returns nothing
    /// when `query` does not have `dims()` values.
    pub fn scan(
        &self,
        query: &[f32],
        range: std::ops::Range<u32>,
        k: usize,
        allow: Option<&dyn Allow>,
    ) -> Vec<Hit> {
        if k == 0 || query.len() != self.dims {
            return Vec::new();
        }
        let end = (range.end as usize).min(self.count);
        let start = (range.start as usize).min(end);
        let ids = self.ids();
        let g = self.graph();
        let mut top = TopK::new(k);
        for (local, &id) in ids.iter().enumerate().take(end).skip(start) {
            if allow.is_none_or(|a| a.allows(id)) {
                top.push(id, g.distance(query, local));
            }
        }
        top.into_sorted()
    }

    /// Exact distances for the given internal ids present in this segment (ids not present,
    /// and repeats, are skipped): the `k` nearest, closest first, ties by id, and every id
    /// tied with the k-th distance too (as [`exact::top_k`](crate::index::exact::top_k)).
    /// Returns nothing when `query` does not have `dims()` values.
    pub fn exact(&self, query: &[f32], ids: &[u64], k: usize) -> Vec<Hit> {
        if k == 0 || query.len() != self.dims {
            return Vec::new();
        }
        let all = self.ids();
        let g = self.graph();
        let mut locals = if ids.windows(2).all(|w| w[0] < w[1]) {
            self.locals_of_ascending(ids)
        } else {
            let mut ascending = ids.to_vec();
            ascending.sort_unstable();
            ascending.dedup();
            self.locals_of_ascending(&ascending)
        };
        // Storage order: the rows are read front to back.
        locals.sort_unstable();
        let mut top = TopK::new(k);
        for local in locals {
            if let Some(&id) = all.get(local as usize) {
                top.push(id, g.distance(query, local as usize));
            }
        }
        top.into_sorted()
    }
}
