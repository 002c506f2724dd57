//! Distance kernels over `f32` slices: [`dot`], [`l2_squared`], [`norm`] and
//! [`normalize_in_place`].
//!
//! The kernels are plain Rust loops over fixed-size chunks with independent accumulators,
//! written so that LLVM vectorises them for whatever the build targets (SSE2 on a baseline
//! x86-64 build). On x86-64 the same loops are compiled a second time with AVX2 and FMA
//! enabled and chosen at run time when the CPU has both; that copy is about twice as fast on
//! vectors that sit in cache (graph search) and changes nothing else.
//!
//! Slices of different lengths are compared over their common prefix (callers check
//! dimensions; a kernel never panics). Every kernel sums in a fixed order, so a given build
//! on a given CPU always returns the same bits for the same inputs.

/// Lanes of the portable kernels: four SSE registers of independent accumulators.
const LANES: usize = 16;
/// Lanes of the AVX2 kernels: four 8-lane registers, enough to hide the latency of the
/// fused multiply-adds.
#[cfg(target_arch = "x86_64")]
const LANES_AVX2: usize = 32;

/// `acc + x * y`, fused when the caller was compiled with FMA (then it is one instruction;
/// without FMA it would be a library call, so the portable kernels never fuse).
#[inline(always)]
fn mul_add<const FMA: bool>(x: f32, y: f32, acc: f32) -> f32 {
    if FMA {
        x.mul_add(y, acc)
    } else {
        acc + x * y
    }
}

// The kernels below are shaped for LLVM's vectoriser: one `[f32; N]` accumulator updated
// lane by lane over `chunks_exact(N)`, a scalar tail, and a plain sequential sum at the
// end. Seemingly harmless changes (a tree reduction, two accumulator arrays, `split_at`)
// made LLVM 20 fall back to scalar or 2-lane code and cost 3-4x; measure before changing.

/// The dot product kernel with `N` accumulator lanes, generic over fused multiply-add.
#[inline(always)]
fn dot_kernel<const N: usize, const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; N];
    let ca = a.chunks_exact(N);
    let cb = b.chunks_exact(N);
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..N {
            acc[i] = mul_add::<FMA>(x[i], y[i], acc[i]);
        }
    }
    let mut sum = 0.0f32;
    for (x, y) in ta.iter().zip(tb) {
        sum = mul_add::<FMA>(*x, *y, sum);
    }
    for v in acc {
        sum += v;
    }
    sum
}

/// The squared L2 distance kernel with `N` accumulator lanes, generic over fused
/// multiply-add.
#[inline(always)]
fn l2_kernel<const N: usize, const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; N];
    let ca = a.chunks_exact(N);
    let cb = b.chunks_exact(N);
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..N {
            let d = x[i] - y[i];
            acc[i] = mul_add::<FMA>(d, d, acc[i]);
        }
    }
    let mut sum = 0.0f32;
    for (x, y) in ta.iter().zip(tb) {
        let d = *x - *y;
        sum = mul_add::<FMA>(d, d, sum);
    }
    for v in acc {
        sum += v;
    }
    sum
}

/// The same kernels compiled with AVX2 and FMA enabled, for CPUs that have them.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::sync::atomic::{AtomicU8, Ordering};

    /// 0 = not probed yet, 1 = AVX2 and FMA absent, 2 = both present.
    static AVX2_FMA: AtomicU8 = AtomicU8::new(0);

    /// Whether the running CPU has AVX2 and FMA (probed once, then one relaxed load).
    #[inline(always)]
    pub(super) fn available() -> bool {
        match AVX2_FMA.load(Ordering::Relaxed) {
            0 => {
                let yes =
                    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
                AVX2_FMA.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
                yes
            }
            state => state == 2,
        }
    }

    /// [`super::dot`] with AVX2 and FMA.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA ([`available`] returned true).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        super::dot_kernel::<{ super::LANES_AVX2 }, true>(a, b)
    }

    /// [`super::l2_squared`] with AVX2 and FMA.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA ([`available`] returned true).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
        super::l2_kernel::<{ super::LANES_AVX2 }, true>(a, b)
    }
}

/// The dot product `Σ a[i]·b[i]` over the common prefix of `a` and `b`.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if x86::available() {
        // SAFETY: `available()` has just confirmed that this CPU supports AVX2 and FMA, the
        // only requirement of `x86::dot`; the function itself is ordinary safe Rust.
        return unsafe { x86::dot(a, b) };
    }
    dot_kernel::<LANES, false>(a, b)
}

/// The squared Euclidean distance `Σ (a[i] - b[i])²` over the common prefix of `a` and `b`.
#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if x86::available() {
        // SAFETY: `available()` has just confirmed that this CPU supports AVX2 and FMA, the
        // only requirement of `x86::l2_squared`; the function itself is ordinary safe Rust.
        return unsafe { x86::l2_squared(a, b) };
    }
    l2_kernel::<LANES, false>(a, b)
}

/// The Euclidean length of `a`.
#[inline]
pub fn norm(a: &[f32]) -> f32 {
    dot(a, a).sqrt()
}

/// Scales `a` to unit length and returns its length before scaling. A vector whose length
/// is zero or not finite is left unchanged (the caller rejects it; cosine needs a non-zero
/// vector).
pub fn normalize_in_place(a: &mut [f32]) -> f32 {
    let n = norm(a);
    if n > 0.0 && n.is_finite() {
        let inv = 1.0 / n;
        for x in a.iter_mut() {
            *x *= inv;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dot_f64(a: &[f32], b: &[f32]) -> (f64, f64) {
        let exact = a
            .iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum();
        let magnitude = a
            .iter()
            .zip(b)
            .map(|(x, y)| (f64::from(*x) * f64::from(*y)).abs())
            .sum();
        (exact, magnitude)
    }

    fn l2_f64(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
            .sum()
    }

    /// Pairs of equally long vectors, lengths around the chunk boundaries and up to 1536.
    fn pair() -> impl Strategy<Value = (Vec<f32>, Vec<f32>)> {
        prop_oneof![
            0usize..80,
            1000usize..1100,
            Just(1024usize),
            Just(1536usize)
        ]
        .prop_flat_map(|n| {
            (
                proptest::collection::vec(-10.0f32..10.0, n),
                proptest::collection::vec(-10.0f32..10.0, n),
            )
        })
    }

    /// Checks a kernel result against the f64 reference: the error relative to the sum of
    /// the absolute terms (the scale of the rounding; a dot product may cancel to ~0).
    #[track_caller]
    fn close(got: f32, exact: f64, magnitude: f64) {
        let err = (f64::from(got) - exact).abs();
        assert!(
            err <= 1e-5 * magnitude.max(f64::MIN_POSITIVE),
            "got {got}, exact {exact}, magnitude {magnitude}, error {err}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn dot_matches_f64((a, b) in pair()) {
            let (exact, magnitude) = dot_f64(&a, &b);
            close(dot(&a, &b), exact, magnitude);
            close(dot_kernel::<LANES, false>(&a, &b), exact, magnitude);
        }

        #[test]
        fn l2_matches_f64((a, b) in pair()) {
            let exact = l2_f64(&a, &b);
            close(l2_squared(&a, &b), exact, exact);
            close(l2_kernel::<LANES, false>(&a, &b), exact, exact);
        }

        #[test]
        fn normalize_gives_unit_length(a in proptest::collection::vec(-1e3f32..1e3, 1..1600)) {
            let mut v = a.clone();
            let before = normalize_in_place(&mut v);
            let exact = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
            close(before, exact, exact);
            if exact > 0.0 {
                let len = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
                prop_assert!((len - 1.0).abs() < 1e-5, "length {len}");
            }
        }
    }

    #[test]
    fn mismatched_lengths_use_the_common_prefix() {
        let a = [1.0f32, 2.0, 3.0, 4.0];
        let b = [2.0f32, 3.0];
        assert_eq!(dot(&a, &b), 8.0);
        assert_eq!(l2_squared(&a, &b), 2.0);
        assert_eq!(dot(&[], &b), 0.0);
    }

    #[test]
    fn zero_and_non_finite_vectors_are_left_alone() {
        let mut z = vec![0.0f32; 7];
        assert_eq!(normalize_in_place(&mut z), 0.0);
        assert_eq!(z, vec![0.0; 7]);
        let mut inf = vec![f32::INFINITY, 1.0];
        assert!(!normalize_in_place(&mut inf).is_finite());
        assert_eq!(inf, vec![f32::INFINITY, 1.0]);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn dispatched_kernels_agree_with_the_portable_ones() {
        // Both versions must be accurate; on a CPU with FMA they may differ in the last bits.
        let a: Vec<f32> = (0..1536)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let b: Vec<f32> = (0..1536)
            .map(|i| ((i * 53 % 97) as f32 - 48.0) / 5.0)
            .collect();
        let (exact, magnitude) = dot_f64(&a, &b);
        close(dot(&a, &b), exact, magnitude);
        close(dot_kernel::<LANES, false>(&a, &b), exact, magnitude);
        let exact = l2_f64(&a, &b);
        close(l2_squared(&a, &b), exact, exact);
    }
}
