//! Oracles shared by the vector test modules: cosine similarity in f64 and brute-force
//! ranking.

use d1vec::vectorize::types::Vector;

/// Cosine similarity of `a` and `b`, in f64.
pub fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Brute-force cosine ranking of `stored` against `q`: best first, ties by id.
pub fn brute(stored: &[&Vector], q: &[f64]) -> Vec<(String, f64)> {
    let mut all: Vec<(String, f64)> = stored
        .iter()
        .map(|v| (v.id.clone(), cosine(&v.values, q)))
        .collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    all
}

/// A deterministic vector of `dims` values in [-1, 1] from `seed` (xorshift64, seeded
/// through the golden-ratio constant), for tests that need many distinct vectors.
pub fn seeded_vector(seed: u64, dims: usize) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..dims)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 2001) as f64 / 1000.0 - 1.0
        })
        .collect()
}
