//! BM25 over one tenant's rows: FTS5's `bm25()` formula, with the collection statistics
//! taken from the tenant's rows alone.
//!
//! For a query of phrases `p₁ … pₙ` and a row `D`:
//!
//! ```text
//! score(D) = Σᵢ IDF(pᵢ) · f(pᵢ, D) · (k₁ + 1) / (f(pᵢ, D) + k₁ · (1 − b + b · |D| / avgdl))
//! IDF(p)   = ln((N − n(p) + 0.5) / (n(p) + 0.5)), or 10⁻⁶ where that is not positive
//! ```
//!
//! with `k₁ = 1.2`, `b = 0.75`, `f(p, D)` the number of times `p` occurs in `D`, `|D|` the
//! number of tokens in `D`, and — the difference from calling `bm25()` on the shared index —
//! `N`, `avgdl` and `n(p)` (rows holding `p`) counted over the *tenant's* rows only. SQLite's
//! `bm25()` counts them over the whole FTS5 table, so one tenant's scores would move with
//! the words other tenants write: a side channel between tenants. The score here is the
//! negation of what `bm25()` returns on a table holding only the tenant's rows, computed in
//! the same order of floating-point operations (higher is better).

/// BM25's `k₁`, as FTS5 fixes it.
pub const K1: f64 = 1.2;
/// BM25's `b`, as FTS5 fixes it.
pub const B: f64 = 0.75;

/// The tenant's collection statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Collection {
    /// Rows of the tenant in the index (`N`).
    pub rows: u64,
    /// Their tokens, all together.
    pub tokens: u64,
}

/// The IDF of a phrase held by `hits` of the collection's rows.
pub(crate) fn idf(collection: Collection, hits: u64) -> f64 {
    let n = collection.rows as i64;
    let hits = hits as i64;
    let idf = (((n - hits) as f64 + 0.5) / (hits as f64 + 0.5)).ln();
    if idf <= 0.0 {
        1e-6
    } else {
        idf
    }
}

/// The score of a row of `len` tokens in which phrase `i` occurs `freqs[i]` times, given each
/// phrase's IDF.
pub(crate) fn score(collection: Collection, idfs: &[f64], freqs: &[usize], len: usize) -> f64 {
    let avgdl = collection.tokens as f64 / collection.rows as f64;
    let d = len as f64;
    let mut score = 0.0;
    for (idf, &f) in idfs.iter().zip(freqs) {
        let f = f as f64;
        score += idf * ((f * (K1 + 1.0)) / (f + K1 * (1.0 - B + B * d / avgdl)));
    }
    score
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed() {
        // 3 rows, 6 tokens (avgdl 2); a phrase in 1 row, found twice in a row of 4 tokens.
        let c = Collection { rows: 3, tokens: 6 };
        let idf = idf(c, 1);
        assert_eq!(idf, (2.5f64 / 1.5).ln());
        let s = score(c, &[idf], &[2], 4);
        let expected = idf * (2.0 * 2.2) / (2.0 + 1.2 * (0.25 + 0.75 * 4.0 / 2.0));
        assert!((s - expected).abs() < 1e-15, "{s} vs {expected}");
        // A phrase in more than half the rows has the floor IDF.
        assert_eq!(super::idf(c, 2), 1e-6);
    }
}
