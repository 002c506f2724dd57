//! d1vec's own HNSW graph, built on the int8 codes of [`super::quant`] by parallel batch
//! insertion: the graph of the mutable segment, and of every sealed segment (a seal exports
//! it; a compaction builds a new one in one parallel pass over the live vectors).
//!
//! Why not `hnsw_rs`: measured on 100,000 x 1,536 vectors, inserting into `hnsw_rs` ran at
//! about half of hnswlib's build rate, and 56 % of its time went to `f32` distances over
//! 6 KiB rows that do not fit any cache. Here construction compares codes (1.5 KiB a row,
//! an exact integer kernel), and the graph's structure is the paper's, as hnswlib builds it:
//!
//! - a node's top layer is drawn as `floor(-ln(u) / ln(M))` (capped at [`MAX_LEVEL`]), from a
//!   hash of its local index, so a build is reproducible up to the order threads run in;
//! - insertion descends greedily from the entry point to the node's top layer + 1, then on
//!   each layer down to 0 searches with `efConstruction` candidates and keeps `M` of them by
//!   the neighbour-selection heuristic (a candidate is kept only if it is closer to the new
//!   node than to every neighbour kept before it);
//! - each kept neighbour links back; a list that overflows (`M` on upper layers, `2 * M` on
//!   layer 0) is cut back to its cap by the same heuristic;
//! - a cut can leave a node that no link reaches, so after every batch [`link_orphans`]
//!   links each such node on layer 0 from a reached node nearby whose list has room (the
//!   heuristic leaves room in most lists). Found by the tests: with `M = 2` on clustered
//!   data, whole clusters were unreachable and a vector's own query missed it.
//!
//! Concurrency: each node's lists sit behind their own mutex and no thread holds two of
//! them at once (a search copies a list and lets go), so insertion cannot deadlock. A node
//! drawn above the current top layer holds the `grow` mutex for its whole insertion and
//! then becomes the entry point, as in hnswlib. Every lock is taken with poisoning ignored:
//! a list is valid after any completed push or replace.
//!
//! Distances here are estimates from codes; they steer construction and traversal only.
//! [`super::mutable::MutableSegment`] and sealed segments rescore the final candidates
//! with the exact `f32` vectors.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Mutex, MutexGuard};

use rayon::prelude::*;

use crate::index::graph::{Metric, Near, Visited};
use crate::index::quant::{dot_i8, prefetch, quantize_into, CodeParams, Estimator};

/// The highest layer a node may be drawn on (16 layers, `0..=15`).
pub const MAX_LEVEL: u8 = 15;

/// The first this-many nodes of a graph are inserted one by one: nodes inserted at the same
/// time do not see each other, which matters only while the graph is small.
pub const SERIAL_PREFIX: usize = 1024;

/// Batches of at least this many nodes (after the serial prefix) are inserted on rayon's pool.
pub const PARALLEL_MIN_BATCH: usize = 64;

/// Per-thread buffers of a layer search: a visited set (an epoch per node, cleared in O(1)),
/// the two heaps and a copy of the list being expanded.
#[derive(Debug, Default)]
struct Scratch {
    visited: Visited,
    candidates: BinaryHeap<Reverse<Near>>,
    results: BinaryHeap<Near>,
    list: Vec<u32>,
}

impl Scratch {
    fn reset(&mut self, count: usize) {
        self.visited.reset(count);
        self.candidates.clear();
        self.results.clear();
    }

    /// Marks `node` visited; returns whether it was new (out-of-range nodes count as seen).
    #[inline]
    fn visit(&mut self, node: u32) -> bool {
        self.visited.visit(node as usize)
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// An HNSW graph over int8 codes that grows by batches (see the module docs). Nodes are
/// local indexes `0..len()`, in insertion order.
#[derive(Debug)]
pub struct GrowingGraph {
    dims: usize,
    metric: Metric,
    m: usize,
    ef_construction: usize,
    codes: Vec<i8>,
    params: Vec<CodeParams>,
    levels: Vec<u8>,
    links: Vec<Mutex<Vec<Vec<u32>>>>,
    /// The entry node and its top layer; `None` while the graph is empty.
    entry: Mutex<Option<(u32, u8)>>,
    grow: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The estimated distance between nodes `a` and `b` from their codes.
#[inline]
fn estimate(
    metric: Metric,
    dims: usize,
    codes: &[i8],
    params: &[CodeParams],
    a: usize,
    b: usize,
) -> f32 {
    let (pa, pb) = (params[a], params[b]);
    let (ca, cb) = (
        &codes[a * dims..(a + 1) * dims],
        &codes[b * dims..(b + 1) * dims],
    );
    let dot = dot_i8(ca, cb) as f32 * (pa.scale * pb.scale);
    match metric {
        Metric::Cosine => 1.0 - dot,
        Metric::Euclidean => (pa.norm2 + pb.norm2 - 2.0 * dot).max(0.0),
        Metric::DotProduct => -dot,
    }
}

/// A uniform draw in `(0, 1]` from a node's index (splitmix64).
fn unit_draw(node: u64) -> f64 {
    let mut z = node.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    ((z >> 11) as f64 + 1.0) / (1u64 << 53) as f64
}

/// The top layer of node `node` in a graph with `M = m`.
fn draw_level(node: u64, m: usize) -> u8 {
    let ml = 1.0 / (m.max(2) as f64).ln();
    let level = (-unit_draw(node).ln() * ml).floor();
    if level >= f64::from(MAX_LEVEL) {
        MAX_LEVEL
    } else {
        level as u8
    }
}

impl GrowingGraph {
    /// An empty graph. `m` is clamped to `2..=255` and `ef_construction` to at least `m`.
    pub fn new(dims: usize, metric: Metric, m: usize, ef_construction: usize) -> Self {
        let m = m.clamp(2, 255);
        GrowingGraph {
            dims,
            metric,
            m,
            ef_construction: ef_construction.max(m),
            codes: Vec::new(),
            params: Vec::new(),
            levels: Vec::new(),
            links: Vec::new(),
            entry: Mutex::new(None),
            grow: Mutex::new(()),
        }
    }

    /// `M` after clamping.
    pub fn m(&self) -> usize {
        self.m
    }

    /// How many nodes the graph holds.
    pub fn len(&self) -> usize {
        self.levels.len()
    }

    /// Whether the graph is empty.
    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }

    /// Reserves room for `more` nodes.
    pub fn reserve(&mut self, more: usize) {
        self.codes.reserve(more.saturating_mul(self.dims));
        self.params.reserve(more);
        self.levels.reserve(more);
        self.links.reserve(more);
    }

    /// Adds the prepared vectors in `vectors` (`dims` values each, finite; the caller
    /// checked) as the next nodes, and links them in: the first [`SERIAL_PREFIX`] nodes of
    /// the graph one by one, larger batches after that in parallel.
    pub fn insert(&mut self, vectors: &[f32]) {
        if self.dims == 0 {
            // Nothing to compare or to count rows by: the caller's searches scan instead.
            return;
        }
        let start = self.len();
        let added = vectors.len() / self.dims;
        self.codes.resize((start + added) * self.dims, 0);
        for (i, v) in vectors.chunks_exact(self.dims).enumerate() {
            let node = start + i;
            let at = node * self.dims;
            let p = quantize_into(v, &mut self.codes[at..at + self.dims]);
            self.params.push(p);
            let level = draw_level(node as u64, self.m);
            self.levels.push(level);
            self.links
                .push(Mutex::new(vec![Vec::new(); usize::from(level) + 1]));
        }
        let end = start + added;
        let serial_end = end.min(start.max(SERIAL_PREFIX));
        for node in start..serial_end {
            self.link(node as u32);
        }
        let rest = serial_end..end;
        if rest.len() >= PARALLEL_MIN_BATCH {
            let this = &*self;
            rest.into_par_iter().for_each(|node| this.link(node as u32));
        } else {
            for node in rest {
                self.link(node as u32);
            }
        }
        if let Some((entry, _)) = *lock(&self.entry) {
            let cap = self.cap(0);
            let (metric, dims, codes, params) = (self.metric, self.dims, &self.codes, &self.params);
            // A component no nearby list can reach is linked from the closest reached node
            // with room.
            let mut closest =
                |orphan: usize, reached: &[bool], lists: &mut [Mutex<Vec<Vec<u32>>>]| {
                    (0..reached.len())
                        .filter(|&v| reached[v] && lists.list(v).len() < cap)
                        .map(|v| (estimate(metric, dims, codes, params, orphan, v), v))
                        .min_by(|a, b| a.0.total_cmp(&b.0))
                        .map(|(_, v)| v)
                };
            link_orphans(&mut self.links[..], entry as usize, cap, &mut closest);
        }
    }

    /// The codes of a node.
    #[inline]
    fn code(&self, node: u32) -> &[i8] {
        let at = node as usize * self.dims;
        &self.codes[at..at + self.dims]
    }

    /// The estimated distance between two nodes.
    #[inline]
    fn between(&self, a: u32, b: u32) -> f32 {
        estimate(
            self.metric,
            self.dims,
            &self.codes,
            &self.params,
            a as usize,
            b as usize,
        )
    }

    /// A copy of `node`'s list on `layer` into `out` (empty when the node is not on it).
    #[inline]
    fn copy_list(&self, node: u32, layer: usize, out: &mut Vec<u32>) {
        out.clear();
        if let Some(list) = lock(&self.links[node as usize]).get(layer) {
            out.extend_from_slice(list);
        }
    }

    /// Greedy descent on `layer` from `from` (at distance `d`): the closest node reached.
    fn greedy(
        &self,
        dist: &dyn Fn(u32) -> f32,
        mut from: Near,
        layer: usize,
        list: &mut Vec<u32>,
    ) -> Near {
        loop {
            let mut moved = false;
            self.copy_list(from.node, layer, list);
            for &nb in list.iter() {
                let d = Near {
                    distance: dist(nb),
                    node: nb,
                };
                if d < from {
                    from = d;
                    moved = true;
                }
            }
            if !moved {
                return from;
            }
        }
    }

    /// Greedy descent from `entry` (on layer `top`) down to layer `to + 1`: the closest node
    /// reached, the start of the beam search on layer `to`.
    fn descend(
        &self,
        s: &mut Scratch,
        dist: &dyn Fn(u32) -> f32,
        entry: u32,
        top: u8,
        to: u8,
    ) -> Near {
        let mut list = std::mem::take(&mut s.list);
        let mut from = Near {
            distance: dist(entry),
            node: entry,
        };
        for layer in (usize::from(to) + 1..=usize::from(top)).rev() {
            from = self.greedy(dist, from, layer, &mut list);
        }
        s.list = list;
        from
    }

    /// The best-first search of one layer from `entries`: up to `ef` allowed nodes, closest
    /// first. Walks on while it holds fewer than `ef` allowed nodes, so with a selective
    /// `allow` it visits every node it can reach.
    fn search_layer(
        &self,
        s: &mut Scratch,
        dist: &dyn Fn(u32) -> f32,
        entries: &[Near],
        ef: usize,
        layer: usize,
        allow: Option<&dyn Fn(u32) -> bool>,
    ) -> Vec<Near> {
        s.reset(self.len());
        for &e in entries {
            if s.visit(e.node) {
                s.candidates.push(Reverse(e));
                if allow.is_none_or(|a| a(e.node)) {
                    s.results.push(e);
                    if s.results.len() > ef {
                        s.results.pop();
                    }
                }
            }
        }
        let mut list = std::mem::take(&mut s.list);
        while let Some(Reverse(c)) = s.candidates.pop() {
            if s.results.len() >= ef && s.results.peek().is_some_and(|w| c.distance > w.distance) {
                break;
            }
            self.copy_list(c.node, layer, &mut list);
            for &nb in &list {
                prefetch(self.code(nb));
            }
            for &nb in &list {
                if !s.visit(nb) {
                    continue;
                }
                let near = Near {
                    distance: dist(nb),
                    node: nb,
                };
                let room = s.results.len() < ef;
                if room || s.results.peek().is_some_and(|w| near.distance < w.distance) {
                    s.candidates.push(Reverse(near));
                    if allow.is_none_or(|a| a(nb)) {
                        s.results.push(near);
                        if s.results.len() > ef {
                            s.results.pop();
                        }
                    }
                }
            }
        }
        s.list = list;
        let mut out: Vec<Near> = s.results.drain().collect();
        out.sort_unstable();
        out.truncate(ef);
        out
    }

    /// The neighbour-selection heuristic: from `sorted` (closest first), at most `max`
    /// nodes, each closer to the base than to every node kept before it.
    fn select(&self, sorted: &[Near], max: usize) -> Vec<u32> {
        let mut kept: Vec<u32> = Vec::with_capacity(max);
        for c in sorted {
            if kept.len() >= max {
                break;
            }
            if kept.iter().all(|&k| self.between(c.node, k) >= c.distance) {
                kept.push(c.node);
            }
        }
        kept
    }

    /// The most links a node keeps on `layer`.
    fn cap(&self, layer: usize) -> usize {
        if layer == 0 {
            2 * self.m
        } else {
            self.m
        }
    }

    /// Adds `node` to `host`'s list on `layer`, cutting the list back to its cap by the
    /// heuristic when it overflows.
    fn connect(&self, host: u32, node: u32, layer: usize) {
        let cap = self.cap(layer);
        let mut lists = lock(&self.links[host as usize]);
        let Some(list) = lists.get_mut(layer) else {
            return;
        };
        if host == node || list.contains(&node) {
            return;
        }
        if list.len() < cap {
            list.push(node);
            return;
        }
        let mut near: Vec<Near> = list
            .iter()
            .chain(std::iter::once(&node))
            .map(|&x| Near {
                distance: self.between(host, x),
                node: x,
            })
            .collect();
        near.sort_unstable();
        *list = self.select(&near, cap);
    }

    /// Links an added node into the graph.
    fn link(&self, node: u32) {
        let level = self.levels[node as usize];
        let (entry, top) = {
            let mut e = lock(&self.entry);
            match *e {
                None => {
                    *e = Some((node, level));
                    return;
                }
                Some(x) => x,
            }
        };
        // A node above the top layer keeps the graph to itself until it is the new entry.
        let grow = (level > top).then(|| lock(&self.grow));
        let (entry, top) = if grow.is_some() {
            lock(&self.entry).unwrap_or((entry, top))
        } else {
            (entry, top)
        };
        if entry == node {
            return;
        }
        let dist = |other: u32| self.between(node, other);
        SCRATCH.with(|cell| {
            let mut s = cell.borrow_mut();
            let from = self.descend(&mut s, &dist, entry, top, level);
            let mut entries = vec![from];
            for layer in (0..=usize::from(level.min(top))).rev() {
                let found =
                    self.search_layer(&mut s, &dist, &entries, self.ef_construction, layer, None);
                let chosen = self.select(&found, self.m);
                {
                    let mut own = lock(&self.links[node as usize]);
                    let mine = &mut own[layer];
                    for &c in &chosen {
                        if !mine.contains(&c) {
                            mine.push(c);
                        }
                    }
                    if mine.len() > self.cap(layer) {
                        let mut near: Vec<Near> = mine
                            .iter()
                            .map(|&x| Near {
                                distance: dist(x),
                                node: x,
                            })
                            .collect();
                        near.sort_unstable();
                        *mine = self.select(&near, self.cap(layer));
                    }
                }
                for &c in &chosen {
                    self.connect(c, node, layer);
                }
                if !found.is_empty() {
                    entries = found;
                }
            }
        });
        if grow.is_some() {
            let mut e = lock(&self.entry);
            if e.is_none_or(|(_, t)| level > t) {
                *e = Some((node, level));
            }
        }
        drop(grow);
    }

    /// Up to `ef` nodes nearest to the query behind `estimator` that `allow` accepts,
    /// closest first by estimated distance.
    pub fn search(
        &self,
        estimator: &Estimator,
        ef: usize,
        allow: Option<&dyn Fn(u32) -> bool>,
    ) -> Vec<Near> {
        let Some((entry, top)) = *lock(&self.entry) else {
            return Vec::new();
        };
        if ef == 0 || self.dims == 0 {
            return Vec::new();
        }
        let dist = |node: u32| estimator.distance(self.code(node), self.params[node as usize]);
        SCRATCH.with(|cell| {
            let mut s = cell.borrow_mut();
            let from = self.descend(&mut s, &dist, entry, top, 0);
            self.search_layer(&mut s, &dist, &[from], ef, 0, allow)
        })
    }

    /// The entry node, when the graph has one.
    pub fn entry_point(&self) -> Option<u32> {
        lock(&self.entry).map(|(node, _)| node)
    }

    /// The top layer of each node.
    pub fn levels(&self) -> &[u8] {
        &self.levels
    }

    /// Each node's lists, layer 0 first (a copy).
    pub fn neighbors(&self) -> Vec<Vec<Vec<u32>>> {
        self.links.iter().map(|l| lock(l).clone()).collect()
    }
}

/// Layer-0 lists that [`link_orphans`] can read and extend.
pub(crate) trait Layer0 {
    /// How many nodes there are.
    fn nodes(&self) -> usize;
    /// Node `i`'s layer-0 list.
    fn list(&mut self, i: usize) -> &mut Vec<u32>;
}

impl Layer0 for [Vec<Vec<u32>>] {
    fn nodes(&self) -> usize {
        self.len()
    }
    fn list(&mut self, i: usize) -> &mut Vec<u32> {
        &mut self[i][0]
    }
}

impl Layer0 for [Mutex<Vec<Vec<u32>>>] {
    fn nodes(&self) -> usize {
        self.len()
    }
    fn list(&mut self, i: usize) -> &mut Vec<u32> {
        &mut self[i].get_mut().unwrap_or_else(|e| e.into_inner())[0]
    }
}

/// Makes every node reachable from `entry` on layer 0 where it can: a list that overflows
/// drops a link, which can leave a node with no incoming link (more so for dot-product,
/// which is not a metric, and for small `M`). Each such orphan gets a link from a reached
/// node among its own neighbours, or their neighbours, whose list still has room (`cap`), or
/// else from the reached node `fallback` names (given the orphan and the reached set).
/// Returns how many nodes stay unreachable (no candidate with room).
pub(crate) fn link_orphans<L, F>(lists: &mut L, entry: usize, cap: usize, fallback: &mut F) -> usize
where
    L: Layer0 + ?Sized,
    F: FnMut(usize, &[bool], &mut L) -> Option<usize>,
{
    let n = lists.nodes();
    if entry >= n {
        return n;
    }
    let mut reached = vec![false; n];
    let mut stack = vec![entry];
    reached[entry] = true;
    let mut left = n - 1;
    let reach = |lists: &mut L, stack: &mut Vec<usize>, reached: &mut [bool], left: &mut usize| {
        while let Some(node) = stack.pop() {
            for &nb in lists.list(node).iter() {
                if let Some(seen) = reached.get_mut(nb as usize) {
                    if !std::mem::replace(seen, true) {
                        *left -= 1;
                        stack.push(nb as usize);
                    }
                }
            }
        }
    };
    loop {
        reach(lists, &mut stack, &mut reached, &mut left);
        if left == 0 {
            return 0;
        }
        let mut linked = false;
        for orphan in 0..n {
            if reached[orphan] {
                continue;
            }
            let near: Vec<u32> = lists.list(orphan).clone();
            let mut hosts: Vec<u32> = near.clone();
            for &nb in &near {
                if (nb as usize) < n {
                    hosts.extend_from_slice(lists.list(nb as usize));
                }
            }
            let host = hosts
                .into_iter()
                .map(|v| v as usize)
                .find(|&v| v < n && reached[v] && lists.list(v).len() < cap)
                .or_else(|| fallback(orphan, &reached, lists))
                .filter(|&v| v < n && reached[v]);
            if let Some(host) = host {
                lists.list(host).push(orphan as u32);
                reached[orphan] = true;
                left -= 1;
                stack.push(orphan);
                linked = true;
                // Reach what the orphan links to before choosing hosts for the others.
                reach(lists, &mut stack, &mut reached, &mut left);
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

    #[test]
    fn levels_follow_the_geometric_law() {
        let m = 16;
        let n = 200_000u64;
        let above0 = (0..n).filter(|&i| draw_level(i, m) >= 1).count() as f64 / n as f64;
        // P(level >= 1) = 1/M.
        assert!((above0 - 1.0 / 16.0).abs() < 0.005, "{above0}");
        assert!((0..n).all(|i| draw_level(i, m) <= MAX_LEVEL));
        assert!((0..1000).all(|i| draw_level(i, 2) <= MAX_LEVEL));
    }

    #[test]
    fn unit_draw_stays_in_range() {
        for i in (0..1_000_000u64).step_by(997).chain([u64::MAX, 0]) {
            let u = unit_draw(i);
            assert!(u > 0.0 && u <= 1.0);
        }
    }
}
