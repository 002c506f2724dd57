//! Exact (brute-force) nearest-neighbour search: the oracle every approximate search is
//! measured against, and the plan for small or highly filtered candidate sets.
//!
//! Results are ordered by internal distance, then by id, and keep every row tied with the
//! k-th distance (so a caller can break those ties by another key). Rows whose distance is
//! NaN are never returned (a prepared vector cannot produce one; a corrupt file might).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rayon::prelude::*;

use crate::index::distance;
use crate::index::graph::{Allow, Hit, Metric};

/// Below this many floats (rows × dims) a matrix is scanned on the calling thread: about
/// 4 MiB, where splitting starts to pay for rayon's hand-off.
const PARALLEL_MIN_FLOATS: usize = 1 << 20;

/// A candidate ordered by distance (IEEE total order), then by id.
#[derive(Debug, Clone, Copy)]
struct Entry {
    distance: f32,
    id: u64,
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then(self.id.cmp(&other.id))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Entry {}

/// A bounded collector of the `k` nearest hits: a max-heap of the best `k` by
/// (distance, id), plus every other hit whose distance equals the current k-th distance.
///
/// Pushing is O(log k); memory is O(k + ties).
#[derive(Debug, Clone)]
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Entry>,
    /// Hits outside `heap` whose distance equals the distance of `heap`'s worst entry.
    ties: Vec<Entry>,
}

impl TopK {
    /// An empty collector of the `k` nearest (keeps nothing when `k` is 0).
    pub fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k.min(4096) + 1),
            ties: Vec::new(),
        }
    }

    /// The largest distance a new hit may have and still be kept, once `k` hits are held
    /// (`None` before: anything is kept). A hit at exactly this distance is kept as a tie.
    #[inline]
    pub fn bound(&self) -> Option<f32> {
        if self.k > 0 && self.heap.len() >= self.k {
            self.heap.peek().map(|e| e.distance)
        } else {
            None
        }
    }

    /// Offers a hit. NaN distances are ignored; `-0.0` counts as `0.0`.
    #[inline]
    pub fn push(&mut self, id: u64, distance: f32) {
        if self.k == 0 || distance.is_nan() {
            return;
        }
        // -0.0 + 0.0 == +0.0, so equal distances compare equal under the total order.
        let entry = Entry {
            distance: distance + 0.0,
            id,
        };
        if self.heap.len() < self.k {
            self.heap.push(entry);
            return;
        }
        let Some(mut worst) = self.heap.peek_mut() else {
            return;
        };
        let old = *worst;
        match entry.distance.total_cmp(&old.distance) {
            Ordering::Greater => {}
            Ordering::Equal if entry.id < old.id => {
                // Same distance, smaller id: it takes the heap slot, the old one becomes a tie.
                *worst = entry;
                drop(worst);
                self.ties.push(old);
            }
            Ordering::Equal => self.ties.push(entry),
            Ordering::Less => {
                *worst = entry;
                drop(worst);
                let still_tied = self
                    .heap
                    .peek()
                    .is_some_and(|e| e.distance.total_cmp(&old.distance) == Ordering::Equal);
                if still_tied {
                    self.ties.push(old);
                } else {
                    self.ties.clear();
                }
            }
        }
    }

    /// Offers every hit another collector holds (merging partial scans).
    pub fn merge(&mut self, other: TopK) {
        for e in other.heap.into_iter().chain(other.ties) {
            self.push(e.id, e.distance);
        }
    }

    /// How many hits are held (at least `min(k, offered)`, more when the k-th is tied).
    pub fn len(&self) -> usize {
        self.heap.len() + self.ties.len()
    }

    /// Whether no hit is held.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The hits, closest first, ties by the smaller id; ties at the k-th distance included.
    pub fn into_sorted(self) -> Vec<Hit> {
        let mut all = self.heap.into_vec();
        all.extend(self.ties);
        all.sort_unstable();
        all.into_iter()
            .map(|e| Hit {
                id: e.id,
                distance: e.distance,
            })
            .collect()
    }
}

/// The k nearest of `rows` to `query` by `metric`'s internal distance, closest first; ties
/// broken by the smaller id. Returns every row whose distance equals the k-th distance too
/// (so a caller can break ties by another key). Rows are compared over their common prefix
/// with `query` (callers pass rows of the query's dimensions).
pub fn top_k<'a>(
    metric: Metric,
    query: &[f32],
    rows: impl Iterator<Item = (u64, &'a [f32])>,
    k: usize,
) -> Vec<Hit> {
    let mut top = TopK::new(k);
    if k == 0 {
        return Vec::new();
    }
    for (id, row) in rows {
        top.push(id, metric.distance(query, row));
    }
    top.into_sorted()
}

/// The same as [`top_k`] over a contiguous matrix: `ids[i]` owns `vectors[i*dims..][..dims]`,
/// and only ids that `allow` accepts (all when `None`) are candidates. Large matrices are
/// scanned in parallel chunks on rayon's pool. Returns nothing when `k` or `dims` is 0 or
/// `query` does not have `dims` values; rows beyond the shorter of `ids` and `vectors` are
/// ignored.
pub fn top_k_matrix(
    metric: Metric,
    query: &[f32],
    ids: &[u64],
    vectors: &[f32],
    dims: usize,
    k: usize,
    allow: Option<&dyn Allow>,
) -> Vec<Hit> {
    if k == 0 || dims == 0 || query.len() != dims {
        return Vec::new();
    }
    let rows = ids.len().min(vectors.len() / dims);
    let (ids, vectors) = (&ids[..rows], &vectors[..rows * dims]);
    match metric {
        Metric::Cosine => scan(ids, vectors, dims, k, allow, |v| {
            1.0 - distance::dot(query, v)
        }),
        Metric::Euclidean => scan(ids, vectors, dims, k, allow, |v| {
            distance::l2_squared(query, v)
        }),
        Metric::DotProduct => scan(ids, vectors, dims, k, allow, |v| -distance::dot(query, v)),
    }
}

/// Scans a matrix with one distance function, in parallel chunks when it is large.
fn scan(
    ids: &[u64],
    vectors: &[f32],
    dims: usize,
    k: usize,
    allow: Option<&dyn Allow>,
    dist: impl Fn(&[f32]) -> f32 + Sync,
) -> Vec<Hit> {
    let serial = |ids: &[u64], vectors: &[f32]| {
        let mut top = TopK::new(k);
        let rows = ids.iter().zip(vectors.chunks_exact(dims));
        match allow {
            None => rows.for_each(|(&id, v)| top.push(id, dist(v))),
            Some(allow) => rows
                .filter(|(&id, _)| allow.allows(id))
                .for_each(|(&id, v)| top.push(id, dist(v))),
        }
        top
    };
    let threads = rayon::current_num_threads();
    if vectors.len() < PARALLEL_MIN_FLOATS || threads < 2 {
        return serial(ids, vectors).into_sorted();
    }
    // A few chunks per thread so an unevenly loaded machine still balances, each at least
    // ~1 MiB so per-chunk overhead stays negligible.
    let chunk_rows = (ids.len() / (threads * 4)).max((1 << 18) / dims).max(1);
    ids.par_chunks(chunk_rows)
        .zip(vectors.par_chunks(chunk_rows * dims))
        .map(|(ids, vectors)| serial(ids, vectors))
        .reduce(
            || TopK::new(k),
            |mut a, b| {
                a.merge(b);
                a
            },
        )
        .into_sorted()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::graph::IdBitset;
    use proptest::prelude::*;

    /// The oracle: every distance, sorted by (distance, id), cut after the k-th distance.
    fn brute(metric: Metric, q: &[f32], rows: &[(u64, Vec<f32>)], k: usize) -> Vec<(u64, f32)> {
        let mut all: Vec<(u64, f32)> = rows
            .iter()
            .map(|(id, v)| (*id, metric.distance(q, v) + 0.0))
            .collect();
        all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        if k == 0 {
            return Vec::new();
        }
        match all.get(k - 1).map(|e| e.1) {
            None => all,
            Some(kth) => all.into_iter().filter(|e| e.1 <= kth).collect(),
        }
    }

    fn pairs(hits: &[Hit]) -> Vec<(u64, f32)> {
        hits.iter().map(|h| (h.id, h.distance)).collect()
    }

    fn metric() -> impl Strategy<Value = Metric> {
        prop_oneof![
            Just(Metric::Cosine),
            Just(Metric::Euclidean),
            Just(Metric::DotProduct)
        ]
    }

    /// Rows with coarse values (many exact ties) and unique ids.
    fn rows(dims: usize) -> impl Strategy<Value = Vec<(u64, Vec<f32>)>> {
        proptest::collection::btree_map(
            0u64..10_000,
            proptest::collection::vec((-3i8..=3).prop_map(f32::from), dims),
            0..120,
        )
        .prop_map(|m| m.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn top_k_matches_brute_force(
            metric in metric(),
            rows in rows(5),
            q in proptest::collection::vec((-3i8..=3).prop_map(f32::from), 5),
            k in 0usize..20,
        ) {
            let want = brute(metric, &q, &rows, k);
            let got = top_k(metric, &q, rows.iter().map(|(id, v)| (*id, v.as_slice())), k);
            prop_assert_eq!(pairs(&got), want.clone());
            // The matrix form (serial here) and any row order give the same answer.
            let mut shuffled = rows.clone();
            shuffled.reverse();
            let ids: Vec<u64> = shuffled.iter().map(|r| r.0).collect();
            let flat: Vec<f32> = shuffled.iter().flat_map(|r| r.1.clone()).collect();
            let got = top_k_matrix(metric, &q, &ids, &flat, 5, k, None);
            prop_assert_eq!(pairs(&got), want);
        }

        #[test]
        fn allow_restricts_the_matrix_scan(
            metric in metric(),
            rows in rows(4),
            q in proptest::collection::vec((-3i8..=3).prop_map(f32::from), 4),
            k in 1usize..10,
            modulus in 1u64..5,
        ) {
            let allowed: IdBitset = rows.iter().map(|r| r.0).filter(|id| id % modulus == 0).collect();
            let kept: Vec<(u64, Vec<f32>)> =
                rows.iter().filter(|r| allowed.contains(r.0)).cloned().collect();
            let ids: Vec<u64> = rows.iter().map(|r| r.0).collect();
            let flat: Vec<f32> = rows.iter().flat_map(|r| r.1.clone()).collect();
            let got = top_k_matrix(metric, &q, &ids, &flat, 4, k, Some(&allowed));
            prop_assert_eq!(pairs(&got), brute(metric, &q, &kept, k));
        }
    }

    #[test]
    fn parallel_scan_equals_serial_oracle() {
        // Large enough to take the rayon path; values from a fixed LCG with many ties.
        let (dims, n) = (32, (PARALLEL_MIN_FLOATS / 32) * 3 + 17);
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            f32::from(((state >> 33) % 5) as u8) - 2.0
        };
        let vectors: Vec<f32> = (0..n * dims).map(|_| next()).collect();
        let ids: Vec<u64> = (0..n as u64).map(|i| i * 3 + 1).collect();
        let q: Vec<f32> = (0..dims).map(|_| next()).collect();
        let rows: Vec<(u64, Vec<f32>)> = ids
            .iter()
            .zip(vectors.chunks_exact(dims))
            .map(|(id, v)| (*id, v.to_vec()))
            .collect();
        for metric in [Metric::Cosine, Metric::Euclidean, Metric::DotProduct] {
            for k in [1, 10] {
                let got = top_k_matrix(metric, &q, &ids, &vectors, dims, k, None);
                assert_eq!(pairs(&got), brute(metric, &q, &rows, k), "{metric:?} k={k}");
            }
        }
    }

    #[test]
    fn ties_at_the_kth_distance_are_all_returned() {
        let rows: Vec<(u64, Vec<f32>)> = vec![
            (9, vec![1.0, 0.0]),
            (4, vec![1.0, 0.0]),
            (7, vec![0.0, 1.0]),
            (2, vec![1.0, 0.0]),
            (5, vec![0.0, 1.0]),
        ];
        let q = [1.0, 0.0];
        let it = || rows.iter().map(|(id, v)| (*id, v.as_slice()));
        let ids = |h: Vec<Hit>| h.into_iter().map(|h| h.id).collect::<Vec<_>>();
        assert_eq!(ids(top_k(Metric::Euclidean, &q, it(), 1)), vec![2, 4, 9]);
        assert_eq!(ids(top_k(Metric::Euclidean, &q, it(), 3)), vec![2, 4, 9]);
        assert_eq!(
            ids(top_k(Metric::Euclidean, &q, it(), 4)),
            vec![2, 4, 9, 5, 7]
        );
        assert!(top_k(Metric::Euclidean, &q, it(), 0).is_empty());
    }

    #[test]
    fn nan_rows_and_bad_shapes_are_skipped() {
        let ids = [1, 2, 3];
        let vectors = [f32::NAN, 0.0, 1.0, 0.0, 2.0, 0.0];
        let got = top_k_matrix(Metric::Euclidean, &[0.0, 0.0], &ids, &vectors, 2, 5, None);
        assert_eq!(pairs(&got), vec![(2, 1.0), (3, 4.0)]);
        assert!(top_k_matrix(Metric::Euclidean, &[0.0], &ids, &vectors, 2, 5, None).is_empty());
        assert!(top_k_matrix(Metric::Euclidean, &[], &ids, &vectors, 0, 5, None).is_empty());
        // A short `vectors` just means fewer rows.
        let got = top_k_matrix(
            Metric::Euclidean,
            &[0.0, 0.0],
            &ids,
            &vectors[..5],
            2,
            5,
            None,
        );
        assert_eq!(pairs(&got), vec![(2, 1.0)]);
    }
}
