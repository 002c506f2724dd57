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

use std::borrow::Cow;

use rayon::prelude::*;

use crate::index::exact::top_k_matrix;
use crate::index::{Allow, Metric};
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::IdBitset;

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
