//! Types shared by every part of the index layer.

use serde::{Deserialize, Serialize};

/// How vectors are compared. Internally every search minimises a *distance*; Vectorize's
/// *score* is derived from it by [`Metric::score`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// Cosine similarity. Vectors are normalised to unit length when written and queried,
    /// so the distance is `1 - dot(a, b)` and the score `dot(a, b)`, higher is better.
    Cosine,
    /// Euclidean. The distance is the squared L2 distance; the score is plain L2 (not
    /// squared), lower is better.
    Euclidean,
    /// Dot product. The distance and the score are both `-dot(a, b)`, lower is better.
    DotProduct,
}

impl Metric {
    /// The internal distance between two prepared vectors (lower is closer).
    #[inline]
    pub fn distance(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Metric::Cosine => 1.0 - crate::index::distance::dot(a, b),
            Metric::Euclidean => crate::index::distance::l2_squared(a, b),
            Metric::DotProduct => -crate::index::distance::dot(a, b),
        }
    }

    /// Vectorize's score for an internal distance.
    pub fn score(self, distance: f32) -> f64 {
        let d = f64::from(distance);
        match self {
            Metric::Cosine => 1.0 - d,
            Metric::Euclidean => d.max(0.0).sqrt(),
            Metric::DotProduct => d,
        }
    }

    /// Whether a higher score is better (cosine) or a lower one (euclidean, dot-product).
    pub fn higher_is_better(self) -> bool {
        matches!(self, Metric::Cosine)
    }

    /// The name Vectorize uses: `cosine`, `euclidean` or `dot-product`.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::Euclidean => "euclidean",
            Metric::DotProduct => "dot-product",
        }
    }

    /// Parses Vectorize's name of a metric.
    pub fn parse(name: &str) -> Option<Metric> {
        match name {
            "cosine" => Some(Metric::Cosine),
            "euclidean" => Some(Metric::Euclidean),
            "dot-product" => Some(Metric::DotProduct),
            _ => None,
        }
    }

    /// The file-format code of the metric (docs/format.md).
    pub fn code(self) -> u8 {
        match self {
            Metric::Cosine => 1,
            Metric::Euclidean => 2,
            Metric::DotProduct => 3,
        }
    }

    /// The metric for a file-format code.
    pub fn from_code(code: u8) -> Option<Metric> {
        match code {
            1 => Some(Metric::Cosine),
            2 => Some(Metric::Euclidean),
            3 => Some(Metric::DotProduct),
            _ => None,
        }
    }
}

/// One search result: an internal id and its internal distance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// The vector's internal id.
    pub id: u64,
    /// Its distance to the query (lower is closer).
    pub distance: f32,
}

/// Which internal ids a search may return (live ids that pass namespace and filter).
pub trait Allow: Sync {
    /// Whether `id` may be returned.
    fn allows(&self, id: u64) -> bool;
}

/// A node of a graph search and its distance, ordered by distance (IEEE total order) then
/// node, so heaps of them are deterministic; equal exactly when that order says so.
#[derive(Debug, Clone, Copy)]
pub struct Near {
    /// The distance (exact or estimated, as the search computes it).
    pub distance: f32,
    /// The node's local index.
    pub node: u32,
}

impl Ord for Near {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then(self.node.cmp(&other.node))
    }
}

impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Near {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}

impl Eq for Near {}

/// The visited set of a graph search: an epoch per node, so starting a new search is O(1)
/// (the marks are cleared only when the epoch wraps). Grows to the largest graph searched.
#[derive(Debug, Default)]
pub(crate) struct Visited {
    marks: Vec<u32>,
    epoch: u32,
}

impl Visited {
    /// Starts a new search over `count` nodes: nothing visited.
    pub(crate) fn reset(&mut self, count: usize) {
        if self.marks.len() < count {
            self.marks.resize(count, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.fill(0);
            self.epoch = 1;
        }
    }

    /// Whether `node` was visited in this search (out-of-range nodes count as seen).
    #[inline]
    pub(crate) fn seen(&self, node: usize) -> bool {
        self.marks.get(node).is_none_or(|&m| m == self.epoch)
    }

    /// Marks `node` visited; returns whether it was new (out-of-range nodes count as seen).
    #[inline]
    pub(crate) fn visit(&mut self, node: usize) -> bool {
        match self.marks.get_mut(node) {
            Some(mark) if *mark != self.epoch => {
                *mark = self.epoch;
                true
            }
            _ => false,
        }
    }
}

/// A set of internal ids as a bitmap: one bit per id below its capacity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdBitset {
    words: Vec<u64>,
    count: usize,
}

impl IdBitset {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `id`; returns whether it was new.
    pub fn insert(&mut self, id: u64) -> bool {
        let (w, b) = ((id / 64) as usize, id % 64);
        if w >= self.words.len() {
            self.words.resize(w + 1, 0);
        }
        let fresh = self.words[w] & (1 << b) == 0;
        self.words[w] |= 1 << b;
        self.count += usize::from(fresh);
        fresh
    }

    /// Removes `id`; returns whether it was present.
    pub fn remove(&mut self, id: u64) -> bool {
        let (w, b) = ((id / 64) as usize, id % 64);
        match self.words.get_mut(w) {
            Some(word) if *word & (1 << b) != 0 => {
                *word &= !(1 << b);
                self.count -= 1;
                true
            }
            _ => false,
        }
    }

    /// Whether `id` is in the set.
    #[inline]
    pub fn contains(&self, id: u64) -> bool {
        let w = (id / 64) as usize;
        self.words
            .get(w)
            .is_some_and(|word| word & (1 << (id % 64)) != 0)
    }

    /// How many ids the set holds.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The ids in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &word)| {
            (0..64u64)
                .filter(move |b| word & (1 << b) != 0)
                .map(move |b| w as u64 * 64 + b)
        })
    }
}

impl FromIterator<u64> for IdBitset {
    fn from_iter<I: IntoIterator<Item = u64>>(iter: I) -> Self {
        let mut set = IdBitset::new();
        for id in iter {
            set.insert(id);
        }
        set
    }
}

impl Allow for IdBitset {
    fn allows(&self, id: u64) -> bool {
        self.contains(id)
    }
}

/// HNSW build parameters, in the paper's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphParams {
    /// `M`: neighbours kept per node on layers above 0 (layer 0 keeps `2 * M`). Default 16.
    pub m: usize,
    /// `efConstruction`: the candidate list size while inserting. Default 128.
    pub ef_construction: usize,
}

impl Default for GraphParams {
    fn default() -> Self {
        GraphParams {
            m: 16,
            ef_construction: 128,
        }
    }
}

/// A built graph and its vectors: what the mutable segment exports and a sealed segment
/// file stores. Nodes are addressed by *local* indexes `0..ids.len()`.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphParts {
    /// Dimensions of every vector.
    pub dims: usize,
    /// The metric the graph was built with.
    pub metric: Metric,
    /// `M`: the most neighbours a node keeps on layers above 0 (layer 0 keeps `2 * M`).
    pub m: usize,
    /// The internal id of each local node, strictly ascending.
    pub ids: Vec<u64>,
    /// `ids.len() * dims` prepared values (unit length for cosine), in local order.
    pub vectors: Vec<f32>,
    /// The top layer of each node.
    pub levels: Vec<u8>,
    /// The local index of the search's entry node (a node on the top layer); `None` when empty.
    pub entry_point: Option<u32>,
    /// For each local node, for each layer `0..=levels[node]`, its neighbours' local indexes.
    pub neighbors: Vec<Vec<Vec<u32>>>,
}
