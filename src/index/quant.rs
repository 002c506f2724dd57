//! Int8 scalar quantization of prepared `f32` vectors, and the integer kernels that compare
//! the codes.
//!
//! Each vector `v` is coded on its own, symmetrically: `scale = max|v[i]| / 127` and
//! `code[i] = round(v[i] / scale)` (in `-127..=127`; a zero vector has scale 0 and all codes
//! 0). The dot product of two vectors is then estimated as
//! `scale_a * scale_b * Σ code_a[i] * code_b[i]`, and the metrics' distances follow from
//! it and the exact squared norms kept beside the codes (see [`Estimator`]). The estimate
//! only steers graph traversal: sealed segments rescore their final candidates with the
//! exact `f32` vectors, so no score a caller sees comes from a code.
//!
//! The integer sum is exact: `|code| <= 127`, so one product is at most `16,129` and a sum
//! over [`MAX_CODE_DIMS`] values fits an `i32`. The AVX2 kernel and the portable one
//! therefore return the same bits for the same inputs, on every CPU.

use crate::index::graph::Metric;

/// Largest magnitude of a code.
pub const CODE_MAX: i8 = 127;
/// Most dimensions the integer sum is exact for (`127² · 2^16 < 2^31`).
pub const MAX_CODE_DIMS: usize = 1 << 16;

/// The per-vector parameters stored beside the codes: the scale and the exact squared norm
/// of the `f32` vector (8 bytes, little-endian `f32`s, in this order).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct CodeParams {
    /// The value of one code step: `max|v[i]| / 127` (0 for a zero vector).
    pub scale: f32,
    /// `Σ v[i]²` of the `f32` vector (not of the codes).
    pub norm2: f32,
}

/// Quantizes `v` into `codes` (which must hold `v.len()` values; extra ones are left as
/// they are) and returns its parameters. Non-finite values code as 0 and the scale ignores
/// them, so a bad vector gives a poor estimate, never a panic.
pub fn quantize_into(v: &[f32], codes: &mut [i8]) -> CodeParams {
    let max = v
        .iter()
        .filter(|x| x.is_finite())
        .fold(0.0f32, |m, x| m.max(x.abs()));
    let norm2 = crate::index::distance::dot(v, v);
    let scale = if max > 0.0 && max.is_finite() {
        max / f32::from(CODE_MAX)
    } else {
        0.0
    };
    let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
    for (c, &x) in codes.iter_mut().zip(v) {
        let q = if x.is_finite() {
            (x * inv).round()
        } else {
            0.0
        };
        // `as` saturates; the clamp keeps -128 out (the range is symmetric).
        *c = q.clamp(-f32::from(CODE_MAX), f32::from(CODE_MAX)) as i8;
    }
    CodeParams { scale, norm2 }
}

/// Quantizes `v` into a new vector of codes.
pub fn quantize(v: &[f32]) -> (Vec<i8>, CodeParams) {
    let mut codes = vec![0i8; v.len()];
    let params = quantize_into(v, &mut codes);
    (codes, params)
}

/// `Σ a[i]·b[i]` over the common prefix of two code vectors, exactly (see the module
/// docs; with more than [`MAX_CODE_DIMS`] values the sum wraps instead of panicking).
#[inline]
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    if x86::available() {
        // SAFETY: `available()` has just confirmed that this CPU supports AVX2, the only
        // requirement of `x86::dot_i8`; its loads stay inside the slices it is given.
        return unsafe { x86::dot_i8(a, b) };
    }
    dot_i8_portable(a, b)
}

/// The portable kernel: 16 independent `i32` lanes, then the tail, summed with wrapping
/// arithmetic (exact below [`MAX_CODE_DIMS`]).
#[inline]
pub fn dot_i8_portable(a: &[i8], b: &[i8]) -> i32 {
    const N: usize = 16;
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0i32; N];
    let ca = a.chunks_exact(N);
    let cb = b.chunks_exact(N);
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..N {
            acc[i] = acc[i].wrapping_add(i32::from(x[i]) * i32::from(y[i]));
        }
    }
    let mut sum = 0i32;
    for (x, y) in ta.iter().zip(tb) {
        sum = sum.wrapping_add(i32::from(*x) * i32::from(*y));
    }
    acc.iter().fold(sum, |s, &v| s.wrapping_add(v))
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::sync::atomic::{AtomicU8, Ordering};

    /// 0 = not probed yet, 1 = AVX2 absent, 2 = present.
    static AVX2: AtomicU8 = AtomicU8::new(0);

    /// Whether the running CPU has AVX2 (probed once, then one relaxed load).
    #[inline(always)]
    pub(super) fn available() -> bool {
        match AVX2.load(Ordering::Relaxed) {
            0 => {
                let yes = std::is_x86_feature_detected!("avx2");
                AVX2.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
                yes
            }
            state => state == 2,
        }
    }

    /// [`super::dot_i8`] with AVX2: 32 codes per step, sign-extended to 16 bits and
    /// multiplied pairwise into 32-bit lanes (`vpmaddwd`), so no product saturates.
    ///
    /// # Safety
    /// The CPU must support AVX2 ([`available`] returned true).
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
        let n = a.len().min(b.len());
        let mut acc0 = _mm256_setzero_si256();
        let mut acc1 = _mm256_setzero_si256();
        let mut i = 0;
        while i + 32 <= n {
            // SAFETY: `i + 32 <= n <= a.len(), b.len()`, so both 32-byte unaligned loads
            // read inside the slices.
            let (va, vb) = unsafe {
                (
                    _mm256_loadu_si256(a.as_ptr().add(i).cast()),
                    _mm256_loadu_si256(b.as_ptr().add(i).cast()),
                )
            };
            let a_lo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(va));
            let b_lo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(vb));
            let a_hi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(va));
            let b_hi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(vb));
            acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(a_lo, b_lo));
            acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(a_hi, b_hi));
            i += 32;
        }
        let acc = _mm256_add_epi32(acc0, acc1);
        let mut lanes = [0i32; 8];
        // SAFETY: `lanes` is 32 writable bytes; the store is unaligned.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), acc) };
        let mut sum = lanes.iter().fold(0i32, |s, &v| s.wrapping_add(v));
        for (x, y) in a[i..n].iter().zip(&b[i..n]) {
            sum = sum.wrapping_add(i32::from(*x) * i32::from(*y));
        }
        sum
    }
}

/// Hints the CPU to start loading the cache line holding `bytes[0]` (x86-64:
/// `prefetcht0`; a no-op elsewhere and for an empty slice). Never faults.
#[inline(always)]
pub fn prefetch(bytes: &[i8]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(first) = bytes.first() {
        // SAFETY: a prefetch is a hint that never faults and has no effect on memory; the
        // pointer comes from a live reference. SSE (which `_mm_prefetch` needs) is part of
        // the x86-64 baseline.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                (first as *const i8).cast(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// A query coded once, compared with many coded vectors.
#[derive(Debug, Clone)]
pub struct Estimator {
    metric: Metric,
    codes: Vec<i8>,
    scale: f32,
    norm2: f32,
}

impl Estimator {
    /// Codes `query` (a prepared vector: unit length for cosine) for `metric`.
    pub fn new(metric: Metric, query: &[f32]) -> Self {
        let (codes, p) = quantize(query);
        Estimator {
            metric,
            codes,
            scale: p.scale,
            norm2: p.norm2,
        }
    }

    /// The estimated distance (as [`Metric::distance`] measures it) from the query to the
    /// vector coded as `codes` with `params`.
    #[inline]
    pub fn distance(&self, codes: &[i8], params: CodeParams) -> f32 {
        let dot = dot_i8(&self.codes, codes) as f32 * (self.scale * params.scale);
        match self.metric {
            Metric::Cosine => 1.0 - dot,
            Metric::Euclidean => (self.norm2 + params.norm2 - 2.0 * dot).max(0.0),
            Metric::DotProduct => -dot,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn codes(n: usize) -> impl Strategy<Value = (Vec<i8>, Vec<i8>)> {
        (
            proptest::collection::vec(-127i8..=127, n),
            proptest::collection::vec(-127i8..=127, n),
        )
    }

    fn exact_sum(a: &[i8], b: &[i8]) -> i64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| i64::from(*x) * i64::from(*y))
            .sum()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// The dispatched kernel (AVX2 where the CPU has it) and the portable one return
        /// the same bits, equal to an i64 reference, at every length including tails.
        #[test]
        fn kernels_agree_bit_for_bit((a, b) in (0usize..2000).prop_flat_map(codes)) {
            let want = exact_sum(&a, &b);
            prop_assert_eq!(i64::from(dot_i8_portable(&a, &b)), want);
            prop_assert_eq!(i64::from(dot_i8(&a, &b)), want);
        }

        /// The estimate stays close to the f32 distance for every metric.
        #[test]
        fn estimates_are_close(
            (a, b) in (1usize..1600).prop_flat_map(|n| (
                proptest::collection::vec(-1.0f32..1.0, n),
                proptest::collection::vec(-1.0f32..1.0, n),
            ))
        ) {
            for metric in [Metric::Cosine, Metric::Euclidean, Metric::DotProduct] {
                let (mut a, mut b) = (a.clone(), b.clone());
                if metric == Metric::Cosine {
                    crate::index::distance::normalize_in_place(&mut a);
                    crate::index::distance::normalize_in_place(&mut b);
                }
                let exact = metric.distance(&a, &b);
                let (cb, pb) = quantize(&b);
                let est = Estimator::new(metric, &a).distance(&cb, pb);
                // Each code is off by at most half a step: the dot error is bounded by
                // half a step of each vector times the other's L1 norm.
                let l1 = |v: &[f32]| v.iter().map(|x| x.abs()).sum::<f32>();
                let step = |v: &[f32]| v.iter().fold(0.0f32, |m, x| m.max(x.abs())) / 127.0;
                let bound = 0.5 * step(&a) * l1(&b) + 0.5 * step(&b) * l1(&a)
                    + 0.25 * step(&a) * step(&b) * a.len() as f32;
                let factor = if metric == Metric::Euclidean { 2.0 } else { 1.0 };
                prop_assert!(
                    (est - exact).abs() <= factor * bound * 1.01 + 1e-4,
                    "{metric:?}: estimate {est}, exact {exact}, bound {bound}"
                );
            }
        }
    }

    #[test]
    fn kernels_agree_at_the_extremes() {
        for n in [0, 1, 31, 32, 33, 1536, 1999, MAX_CODE_DIMS] {
            let a = vec![-127i8; n];
            let b = vec![127i8; n];
            assert_eq!(i64::from(dot_i8(&a, &b)), -16129 * n as i64);
            assert_eq!(dot_i8(&a, &b), dot_i8_portable(&a, &b));
            assert_eq!(dot_i8(&a, &a), dot_i8_portable(&a, &a));
        }
    }

    #[test]
    fn quantize_is_symmetric_and_handles_zero_and_non_finite() {
        let (c, p) = quantize(&[0.5, -1.0, 0.25, 0.0]);
        assert_eq!(c, vec![64, -127, 32, 0]);
        assert_eq!(p.scale, 1.0 / 127.0);
        assert_eq!(p.norm2, 0.25 + 1.0 + 0.0625);
        let (c, p) = quantize(&[0.0; 5]);
        assert_eq!((c, p.scale), (vec![0; 5], 0.0));
        let (c, p) = quantize(&[f32::NAN, 2.0, f32::INFINITY]);
        assert_eq!(c, vec![0, 127, 0]);
        assert_eq!(p.scale, 2.0 / 127.0);
    }
}
