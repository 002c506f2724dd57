//! Exact ground truth: the true top-k neighbours of every query, as `.ivecs` rows.
//!
//! Distances follow d1vec's own convention, so the answer is the one d1vec's exact search
//! gives on the same data (recall 1.0 for the exact strategies is an identity, not a
//! tolerance):
//!
//! - cosine: base and query vectors are prepared exactly as the Vectorize write and query
//!   paths prepare them (scaled to unit length), then ranked by `1 - dot`;
//! - euclidean: squared L2 distance;
//! - dot-product: `-dot`.
//!
//! The kernels and the bounded top-k collector are [`crate::index::exact`]'s; this module
//! only prepares the data, fans the queries out on rayon's pool and cuts ties at `k`.
//!
//! [`MultiTruth`] computes every case of a dataset in one pass over base rows streamed in
//! blocks: memory is one block plus `queries x cases` collectors of `k`, whatever the rows
//! (1,000,000 x 1536 needs no copy of the 6 GB of vectors), and each row's distance to a
//! query is computed once and offered to every case that allows the row.

use std::borrow::Cow;

use rayon::prelude::*;

use crate::index::distance;
use crate::index::exact::{top_k_matrix, TopK};
use crate::index::{Allow, IdBitset, Metric};
use crate::vectorize::engine::prepare;

/// The most base rows a ground truth can address: ids are written as `i32` in `.ivecs`, so
/// rows past `i32::MAX` are not considered.
const MAX_ROWS: usize = i32::MAX as usize + 1;

/// The exact `k` nearest base rows to each query, by `metric`: one row per query, holding
/// base row indexes (0-based, the `.ivecs` ground-truth convention), closest first, ties
/// broken by the smaller index.
///
/// - `base` and `queries` are row-major matrices of `dims` values per row; a trailing
///   partial row is ignored, and `dims == 0` gives no rows at all.
/// - `allow`, when given, restricts the candidates to the row indexes it accepts (a
///   tenant's rows, say an [`crate::index::IdBitset`] of row indexes). When fewer than `k`
///   rows are allowed, every allowed row is returned, in order.
/// - A base row whose distance is NaN (a non-finite value in the data) is never returned,
///   so its query's row may then be shorter than `k`. Under cosine a zero vector cannot be
///   scaled and ranks at distance 1 (d1vec's write path refuses it).
///
/// Queries are answered in parallel on rayon's global pool.
pub fn ground_truth(
    metric: Metric,
    base: &[f32],
    dims: usize,
    queries: &[f32],
    k: usize,
    allow: Option<&dyn Allow>,
) -> Vec<Vec<i32>> {
    ground_truth_with_progress(metric, base, dims, queries, k, allow, &|| {})
}

/// [`ground_truth`], calling `progress` once as each query is answered (from rayon's worker
/// threads, in no particular order): the hook for a progress bar over a long computation.
pub fn ground_truth_with_progress(
    metric: Metric,
    base: &[f32],
    dims: usize,
    queries: &[f32],
    k: usize,
    allow: Option<&dyn Allow>,
    progress: &(dyn Fn() + Sync),
) -> Vec<Vec<i32>> {
    if dims == 0 {
        return Vec::new();
    }
    let rows = (base.len() / dims).min(MAX_ROWS);
    let base = &base[..rows * dims];
    let prepared: Cow<'_, [f32]> = match metric {
        Metric::Cosine => {
            let mut unit = base.to_vec();
            unit.par_chunks_exact_mut(dims)
                .for_each(|row| row.copy_from_slice(&prepare(metric, row)));
            Cow::Owned(unit)
        }
        Metric::Euclidean | Metric::DotProduct => Cow::Borrowed(base),
    };
    let ids: Vec<u64> = (0..rows as u64).collect();
    queries
        .par_chunks_exact(dims)
        .map(|query| {
            let query = prepare(metric, query);
            let hits = top_k_matrix(metric, &query, &ids, &prepared, dims, k, allow);
            progress();
            // `top_k_matrix` keeps every row tied with the k-th; the (distance, id) order
            // makes the cut keep the smaller indexes. Ids are below MAX_ROWS, so they fit.
            hits.iter()
                .take(k)
                .map(|h| i32::try_from(h.id).unwrap_or(i32::MAX))
                .collect()
        })
        .collect()
}

/// Which base rows a case's queries may return.
#[derive(Debug, Clone)]
pub enum Candidates {
    /// Every row.
    All,
    /// The rows of the set, for every query.
    Rows(IdBitset),
    /// Query `i` may return the rows of set `i` (a filter new for every query).
    PerQuery(Vec<IdBitset>),
}

impl Candidates {
    #[inline]
    fn allows(&self, query: usize, row: u64) -> bool {
        match self {
            Candidates::All => true,
            Candidates::Rows(set) => set.allows(row),
            Candidates::PerQuery(sets) => sets.get(query).is_some_and(|s| s.allows(row)),
        }
    }
}

/// Queries answered together per task: their vectors stay in cache while a block's rows
/// stream past them.
const QUERY_TILE: usize = 8;

/// Exact top-k of every query for several cases at once, over base rows fed in blocks
/// (see the module documentation). Row numbers continue from block to block.
#[derive(Debug)]
pub struct MultiTruth {
    metric: Metric,
    dims: usize,
    k: usize,
    /// Prepared queries, row-major.
    queries: Vec<f32>,
    cases: Vec<Candidates>,
    /// `tops[query][case]`.
    tops: Vec<Vec<TopK>>,
    next_row: usize,
}

impl MultiTruth {
    /// A computation of depth `k` for `queries` (row-major, `dims` values each; a trailing
    /// partial row is ignored) under each of `cases`.
    pub fn new(
        metric: Metric,
        dims: usize,
        queries: &[f32],
        k: usize,
        cases: Vec<Candidates>,
    ) -> Self {
        let dims = dims.max(1);
        let prepared: Vec<f32> = queries
            .chunks_exact(dims)
            .flat_map(|q| prepare(metric, q))
            .collect();
        let nq = prepared.len() / dims;
        MultiTruth {
            metric,
            dims,
            k,
            queries: prepared,
            tops: (0..nq)
                .map(|_| cases.iter().map(|_| TopK::new(k)).collect())
                .collect(),
            cases,
            next_row: 0,
        }
    }

    /// Rows fed so far.
    pub fn rows(&self) -> usize {
        self.next_row
    }

    /// Offers the next rows (row-major; a trailing partial row is ignored; rows past
    /// `i32::MAX` are not considered, as in [`ground_truth`]). Parallel over queries.
    pub fn add_block(&mut self, block: &[f32]) {
        let dims = self.dims;
        let rows = (block.len() / dims).min(MAX_ROWS.saturating_sub(self.next_row));
        if rows == 0 {
            return;
        }
        let block = &block[..rows * dims];
        let metric = self.metric;
        let prepared: Cow<'_, [f32]> = match metric {
            Metric::Cosine => {
                let mut unit = block.to_vec();
                unit.par_chunks_exact_mut(dims)
                    .for_each(|row| row.copy_from_slice(&prepare(metric, row)));
                Cow::Owned(unit)
            }
            Metric::Euclidean | Metric::DotProduct => Cow::Borrowed(block),
        };
        let first = self.next_row;
        let cases = &self.cases;
        self.tops
            .par_chunks_mut(QUERY_TILE)
            .zip(self.queries.par_chunks(QUERY_TILE * dims))
            .enumerate()
            .for_each(|(tile, (tops, queries))| {
                let q0 = tile * QUERY_TILE;
                for (r, v) in prepared.chunks_exact(dims).enumerate() {
                    let id = (first + r) as u64;
                    for (j, (top, q)) in tops.iter_mut().zip(queries.chunks_exact(dims)).enumerate()
                    {
                        // The same expressions as `top_k_matrix`, so ranks agree bit for bit.
                        let d = match metric {
                            Metric::Cosine => 1.0 - distance::dot(q, v),
                            Metric::Euclidean => distance::l2_squared(q, v),
                            Metric::DotProduct => -distance::dot(q, v),
                        };
                        for (case, t) in cases.iter().zip(top.iter_mut()) {
                            if case.allows(q0 + j, id) {
                                t.push(id, d);
                            }
                        }
                    }
                }
            });
        self.next_row += rows;
    }

    /// The answers: `[case][query]`, each a list of base rows, closest first, ties to the
    /// smaller row, cut at `k`.
    pub fn finish(self) -> Vec<Vec<Vec<i32>>> {
        let ncases = self.cases.len();
        let mut out: Vec<Vec<Vec<i32>>> = (0..ncases)
            .map(|_| Vec::with_capacity(self.tops.len()))
            .collect();
        for per_case in self.tops {
            for (c, top) in per_case.into_iter().enumerate() {
                out[c].push(
                    top.into_sorted()
                        .iter()
                        .take(self.k)
                        .map(|h| i32::try_from(h.id).unwrap_or(i32::MAX))
                        .collect(),
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_of_any_size_give_what_one_scan_gives_for_every_case() {
        let mut rng = crate::rng::Rng(7);
        let (dims, n, nq) = (5, 300, 12);
        // Coarse values make exact distance ties common, which the cut must settle alike.
        let base: Vec<f32> = (0..n * dims).map(|_| rng.below(3) as f32 - 1.0).collect();
        let queries: Vec<f32> = (0..nq * dims).map(|_| rng.below(5) as f32 - 2.0).collect();
        let tenant: IdBitset = (0..n as u64).filter(|i| i % 7 == 2).collect();
        let per_query: Vec<IdBitset> = (0..nq)
            .map(|q| (0..n as u64).filter(|i| (i + q as u64) % 3 == 0).collect())
            .collect();
        for metric in [Metric::Cosine, Metric::Euclidean, Metric::DotProduct] {
            let want_all = ground_truth(metric, &base, dims, &queries, 10, None);
            let want_tenant = ground_truth(metric, &base, dims, &queries, 10, Some(&tenant));
            let want_pq: Vec<Vec<i32>> = (0..nq)
                .map(|q| {
                    let one = &queries[q * dims..(q + 1) * dims];
                    ground_truth(metric, &base, dims, one, 10, Some(&per_query[q])).remove(0)
                })
                .collect();
            for block in [1, 7, 64, n] {
                let mut job = MultiTruth::new(
                    metric,
                    dims,
                    &queries,
                    10,
                    vec![
                        Candidates::All,
                        Candidates::Rows(tenant.clone()),
                        Candidates::PerQuery(per_query.clone()),
                    ],
                );
                for chunk in base.chunks(block * dims) {
                    job.add_block(chunk);
                }
                assert_eq!(job.rows(), n);
                let got = job.finish();
                assert_eq!(got[0], want_all, "{metric:?} block {block}");
                assert_eq!(got[1], want_tenant, "{metric:?} block {block}");
                assert_eq!(got[2], want_pq, "{metric:?} block {block}");
            }
        }
    }

    #[test]
    fn ties_go_to_the_smaller_index_and_k_is_cut_exactly() {
        // Rows 1, 3 and 4 are identical; row 0 is farther, row 2 is the closest.
        let base = [5.0, 0.0, 1.0, 0.0, 0.5, 0.0, 1.0, 0.0, 1.0, 0.0];
        let q = [0.4, 0.0];
        let gt = ground_truth(Metric::Euclidean, &base, 2, &q, 3, None);
        assert_eq!(gt, vec![vec![2, 1, 3]]);
        let gt = ground_truth(Metric::Euclidean, &base, 2, &q, 10, None);
        assert_eq!(gt, vec![vec![2, 1, 3, 4, 0]]);
    }

    #[test]
    fn allow_smaller_than_k_returns_every_allowed_row() {
        let base = [1.0, 2.0, 3.0, 4.0, 5.0];
        let allow: IdBitset = [4u64, 1].into_iter().collect();
        let gt = ground_truth(Metric::DotProduct, &base, 1, &[1.0], 3, Some(&allow));
        assert_eq!(gt, vec![vec![4, 1]]);
        let none = IdBitset::new();
        let gt = ground_truth(Metric::DotProduct, &base, 1, &[1.0, -1.0], 3, Some(&none));
        assert_eq!(gt, vec![Vec::<i32>::new(), Vec::new()]);
    }

    #[test]
    fn degenerate_shapes_give_empty_answers() {
        assert!(ground_truth(Metric::Cosine, &[1.0], 0, &[1.0], 1, None).is_empty());
        assert_eq!(
            ground_truth(Metric::Cosine, &[], 2, &[1.0, 0.0, 9.0], 1, None),
            vec![Vec::<i32>::new()]
        );
        assert_eq!(
            ground_truth(Metric::Cosine, &[1.0, 0.0], 2, &[1.0, 0.0], 0, None),
            vec![Vec::<i32>::new()]
        );
    }
}
