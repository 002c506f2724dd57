//! Reciprocal Rank Fusion (Cormack, Clarke and Büttcher, SIGIR 2009): merges ranked lists
//! using only the ranks, so lists scored on incomparable scales (BM25, cosine similarity)
//! can be combined without calibrating them.
//!
//! ```text
//! score(d) = Σ over lists L that contain d of  weight(L) / (k + rank_L(d))
//! ```
//!
//! `rank_L(d)` is 1 for the first item of `L`. A document absent from a list gets nothing
//! from it. The result is ordered by score, highest first; equal scores are ordered by id
//! (byte order), so the output never depends on hash order or on the order of ties in the
//! input. See [`crate::search`] for a worked example.

use crate::error::{Error, Result};

/// The `k` of the paper, and of most hybrid search engines: it flattens the difference
/// between the top ranks (with `k = 60`, rank 1 is worth 1/61 and rank 2 is worth 1/62).
pub const DEFAULT_K: f64 = 60.0;

/// One ranked list going into the fusion.
#[derive(Debug, Clone, Copy)]
pub struct RankedList<'a> {
    /// How much this list counts (1.0 for plain RRF). Finite and at least 0.
    pub weight: f64,
    /// The ids, best first. An id repeated in the list counts at its first position only;
    /// later copies are skipped and do not take up a rank.
    pub ids: &'a [String],
}

/// One fused document.
#[derive(Debug, Clone, PartialEq)]
pub struct Fused {
    /// The document's id.
    pub id: String,
    /// Its fused score.
    pub score: f64,
    /// Its 1-based rank in each input list (in input order), `None` where it is absent.
    pub ranks: Vec<Option<usize>>,
}

/// Fuses `lists` with constant `k` (finite, at least 0): every id of every list, best
/// first. Refuses a negative or non-finite `k` or weight with [`Error::InvalidInput`].
///
/// ```
/// use d1vec::search::rrf::{fuse, RankedList};
/// let keyword = ["a".to_owned(), "b".to_owned()];
/// let vector = ["b".to_owned(), "c".to_owned()];
/// let fused = fuse(
///     &[RankedList { weight: 1.0, ids: &keyword }, RankedList { weight: 1.0, ids: &vector }],
///     60.0,
/// )?;
/// assert_eq!(fused[0].id, "b"); // 1/62 + 1/61 beats a's 1/61
/// assert_eq!(fused[0].ranks, vec![Some(2), Some(1)]);
/// # Ok::<(), d1vec::Error>(())
/// ```
pub fn fuse(lists: &[RankedList<'_>], k: f64) -> Result<Vec<Fused>> {
    if !k.is_finite() || k < 0.0 {
        return Err(Error::invalid(
            "RRF k",
            format!("must be a finite number of at least 0, got {k}"),
        ));
    }
    for list in lists {
        if !list.weight.is_finite() || list.weight < 0.0 {
            return Err(Error::invalid(
                "RRF weight",
                format!("must be a finite number of at least 0, got {}", list.weight),
            ));
        }
    }
    let mut fused: Vec<Fused> = Vec::new();
    let mut position = std::collections::HashMap::<&str, usize>::new();
    for (l, list) in lists.iter().enumerate() {
        let mut rank = 0;
        for id in list.ids {
            let slot = match position.get(id.as_str()) {
                Some(&i) => i,
                None => {
                    position.insert(id.as_str(), fused.len());
                    fused.push(Fused {
                        id: id.clone(),
                        score: 0.0,
                        ranks: vec![None; lists.len()],
                    });
                    fused.len() - 1
                }
            };
            let doc = &mut fused[slot];
            if doc.ranks[l].is_some() {
                continue; // a repeat within this list
            }
            rank += 1;
            doc.ranks[l] = Some(rank);
        }
    }
    // Sum in list order, so a document's score is the same expression however the lists
    // interleave.
    for doc in &mut fused {
        doc.score = doc
            .ranks
            .iter()
            .zip(lists)
            .filter_map(|(r, list)| r.map(|r| list.weight / (k + r as f64)))
            .sum();
    }
    fused.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
    Ok(fused)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn repeats_keep_their_first_rank_and_take_no_rank() {
        let l = ids(&["a", "a", "b"]);
        let out = fuse(
            &[RankedList {
                weight: 1.0,
                ids: &l,
            }],
            0.0,
        )
        .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].id.as_str(), out[0].score), ("a", 1.0));
        assert_eq!((out[1].id.as_str(), out[1].score), ("b", 0.5));
    }

    #[test]
    fn bad_parameters_are_refused() {
        let l = ids(&["a"]);
        let list = |weight| RankedList { weight, ids: &l };
        assert!(fuse(&[list(1.0)], -1.0).is_err());
        assert!(fuse(&[list(1.0)], f64::NAN).is_err());
        assert!(fuse(&[list(f64::INFINITY)], 60.0).is_err());
        assert!(fuse(&[list(-0.5)], 60.0).is_err());
        assert!(fuse(&[], 60.0).unwrap().is_empty());
    }
}
