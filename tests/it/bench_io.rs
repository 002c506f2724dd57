//! The benchmark dataset foundation: `.fvecs`/`.ivecs` readers and writers, and exact
//! ground truth.
//!
//! Oracles: the byte layout is checked against an encoder written here from the format's
//! definition; round trips compare bits, not values (NaN payloads, `-0.0`, subnormals);
//! malformed input (cut at every offset, bad headers, arbitrary bytes) must give an error
//! naming the vector, never a panic; and ground truth is compared with a brute force in f64
//! written here, for all three metrics, with and without an allow-set.

use std::collections::BTreeSet;
use std::io::Cursor;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use d1vec::bench::{
    ground_truth, ground_truth_with_progress, read_fvecs, read_ivecs, write_fvecs, write_ivecs,
    FvecsReader, FvecsWriter, IvecsReader, IvecsWriter, VecsError, MAX_DIMS,
};
use d1vec::index::{IdBitset, Metric};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// The format by definition: per vector, an i32 LE length, then 4-byte LE values.
fn encode<T: Copy>(rows: &[Vec<T>], le: impl Fn(T) -> [u8; 4]) -> Vec<u8> {
    let mut out = Vec::new();
    for row in rows {
        out.extend_from_slice(&(row.len() as i32).to_le_bytes());
        for &v in row {
            out.extend_from_slice(&le(v));
        }
    }
    out
}

fn f32_le(v: f32) -> [u8; 4] {
    v.to_bits().to_le_bytes()
}

fn bits(rows: &[Vec<f32>]) -> Vec<Vec<u32>> {
    rows.iter()
        .map(|r| r.iter().map(|v| v.to_bits()).collect())
        .collect()
}

fn write_f_stream(rows: &[Vec<f32>]) -> Vec<u8> {
    let mut w = FvecsWriter::new(Vec::new());
    for r in rows {
        w.write(r).unwrap();
    }
    w.finish().unwrap()
}

fn write_i_stream(rows: &[Vec<i32>]) -> Vec<u8> {
    let mut w = IvecsWriter::new(Vec::new());
    for r in rows {
        w.write(r).unwrap();
    }
    w.finish().unwrap()
}

fn read_f_stream(bytes: &[u8]) -> Result<Vec<Vec<f32>>, VecsError> {
    FvecsReader::new(bytes).read_rows()
}

fn read_i_stream(bytes: &[u8]) -> Result<Vec<Vec<i32>>, VecsError> {
    IvecsReader::new(bytes).read_rows()
}

/// Any f32 bit pattern, weighted towards the awkward ones.
fn any_f32_bits() -> impl Strategy<Value = f32> {
    prop_oneof![
        any::<f32>(),
        any::<u32>().prop_map(f32::from_bits),
        (1u32..0x0080_0000, any::<bool>())
            .prop_map(|(m, neg)| f32::from_bits(m | (u32::from(neg) << 31))),
        Just(0.0f32),
        Just(-0.0f32),
        Just(f32::NAN),
        Just(f32::INFINITY),
        Just(f32::NEG_INFINITY),
        (-1000.0f32..1000.0),
    ]
}

fn fvecs_rows() -> impl Strategy<Value = Vec<Vec<f32>>> {
    (1usize..64, 0usize..50).prop_flat_map(|(dims, n)| {
        proptest::collection::vec(proptest::collection::vec(any_f32_bits(), dims), n)
    })
}

fn ivecs_rows() -> impl Strategy<Value = Vec<Vec<i32>>> {
    proptest::collection::vec(proptest::collection::vec(any::<i32>(), 0..64), 0..50)
}

/// Where each vector of an encoded file starts, plus the total length.
fn boundaries<T>(rows: &[Vec<T>]) -> Vec<usize> {
    let mut at = vec![0];
    for r in rows {
        at.push(at.last().unwrap() + 4 + 4 * r.len());
    }
    at
}

/// What cutting a file at `cut` must give: the vectors before it when `cut` is a boundary,
/// otherwise a truncation of the vector containing it, in its header or in its values.
fn check_cut<T: std::fmt::Debug + Clone>(
    rows: &[Vec<T>],
    cut: usize,
    got: Result<Vec<Vec<T>>, VecsError>,
    same: impl Fn(&[Vec<T>], &[Vec<T>]) -> bool,
    path: &str,
) -> Result<(), TestCaseError> {
    let at = boundaries(rows);
    match at.iter().position(|&b| b == cut) {
        Some(whole) => {
            let got = got.map_err(|e| TestCaseError::fail(format!("cut at {cut}: {e}")))?;
            prop_assert!(same(&got, &rows[..whole]));
        }
        None => {
            let index = at.iter().rposition(|&b| b < cut).unwrap();
            let err = got.expect_err("a cut inside a vector is an error");
            let message = err.to_string();
            match &err {
                VecsError::Truncated {
                    index: i,
                    offset,
                    part,
                    ..
                } => {
                    prop_assert_eq!(*i, index as u64);
                    prop_assert_eq!(*offset, at[index] as u64);
                    let want = if cut - at[index] < 4 {
                        "dimension header"
                    } else {
                        "values"
                    };
                    prop_assert_eq!(*part, want);
                }
                other => prop_assert!(false, "expected Truncated, got {other:?}"),
            }
            prop_assert_eq!(err.index(), Some(index as u64));
            prop_assert!(
                message.contains(&format!("vector {index} ")),
                "message {message}"
            );
            prop_assert!(message.contains(path), "message {message}");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn fvecs_round_trip_is_bit_exact(rows in fvecs_rows()) {
        let bytes = write_f_stream(&rows);
        prop_assert_eq!(&bytes, &encode(&rows, f32_le));
        prop_assert_eq!(bits(&read_f_stream(&bytes).unwrap()), bits(&rows));

        // The same through files and the flat-matrix helpers.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("base.fvecs");
        let dims = rows.first().map_or(0, Vec::len);
        let flat: Vec<f32> = rows.concat();
        write_fvecs(&path, dims.max(1), &flat).unwrap();
        prop_assert_eq!(std::fs::read(&path).unwrap(), bytes);
        let (got_dims, got) = read_fvecs(&path).unwrap();
        prop_assert_eq!(got_dims, dims);
        prop_assert_eq!(
            got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            flat.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        // And vector by vector through the iterator.
        let iterated: Vec<Vec<f32>> =
            FvecsReader::open(&path).unwrap().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(bits(&iterated), bits(&rows));
    }

    #[test]
    fn ivecs_round_trip_is_exact_with_ragged_rows(rows in ivecs_rows()) {
        let bytes = write_i_stream(&rows);
        prop_assert_eq!(&bytes, &encode(&rows, i32::to_le_bytes));
        prop_assert_eq!(&read_i_stream(&bytes).unwrap(), &rows);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("groundtruth.ivecs");
        write_ivecs(&path, &rows).unwrap();
        prop_assert_eq!(std::fs::read(&path).unwrap(), bytes);
        prop_assert_eq!(&read_ivecs(&path).unwrap(), &rows);
    }

    #[test]
    fn ivecs_fixed_k_reads_as_a_matrix(k in 0usize..20, n in 0usize..30, seed: u64) {
        let mut rng = Rng(seed);
        let flat: Vec<i32> = (0..n * k).map(|_| rng.next() as i32).collect();
        let mut w = IvecsWriter::new(Vec::new());
        if k > 0 {
            w.write_matrix(k, &flat).unwrap();
        } else {
            (0..n).for_each(|_| w.write(&[]).unwrap());
        }
        let bytes = w.finish().unwrap();
        let (dims, got) = IvecsReader::new(&bytes[..]).read_matrix().unwrap();
        prop_assert_eq!(dims, if n == 0 { 0 } else { k });
        prop_assert_eq!(got, flat);
    }

    // -----------------------------------------------------------------------------------
    // Truncation and arbitrary bytes
    // -----------------------------------------------------------------------------------

    #[test]
    fn fvecs_cut_anywhere_is_an_error_naming_the_vector(
        rows in (1usize..12, 1usize..8).prop_flat_map(|(d, n)| {
            proptest::collection::vec(proptest::collection::vec(any_f32_bits(), d), n)
        }),
        cut_frac in 0.0f64..1.0,
    ) {
        let bytes = write_f_stream(&rows);
        let cut = ((bytes.len() as f64) * cut_frac) as usize;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.fvecs");
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let got = FvecsReader::open(&path).unwrap().read_rows();
        let p = path.display().to_string();
        check_cut(&rows, cut, got, |a, b| bits(a) == bits(b), &p)?;
        // The stream reader agrees, naming `<stream>`.
        check_cut(&rows, cut, read_f_stream(&bytes[..cut]), |a, b| bits(a) == bits(b), "<stream>")?;
    }

    #[test]
    fn ivecs_cut_anywhere_is_an_error_naming_the_vector(
        rows in proptest::collection::vec(proptest::collection::vec(any::<i32>(), 0..10), 1..8),
        cut_frac in 0.0f64..1.0,
    ) {
        let bytes = write_i_stream(&rows);
        let cut = ((bytes.len() as f64) * cut_frac) as usize;
        check_cut(&rows, cut, read_i_stream(&bytes[..cut]), |a, b| a == b, "<stream>")?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        check_arbitrary(&bytes)?;
    }

    /// Arbitrary bytes rarely form a plausible header; these are mostly small headers
    /// (including 0 and negatives) with payloads of any length.
    #[test]
    fn plausible_garbage_never_panics(
        parts in proptest::collection::vec(
            (prop_oneof![4 => -3i32..12, 1 => any::<i32>()],
             proptest::collection::vec(any::<u8>(), 0..60)),
            0..8,
        ),
        tail in proptest::collection::vec(any::<u8>(), 0..4),
    ) {
        let mut bytes = Vec::new();
        for (header, payload) in &parts {
            bytes.extend_from_slice(&header.to_le_bytes());
            bytes.extend_from_slice(payload);
        }
        bytes.extend_from_slice(&tail);
        check_arbitrary(&bytes)?;
    }
}

/// Reads `bytes` as both formats: an error names a vector the file could contain, and an
/// accepted file writes back to the very same bytes.
fn check_arbitrary(bytes: &[u8]) -> Result<(), TestCaseError> {
    match read_f_stream(bytes) {
        Ok(rows) => prop_assert_eq!(write_f_stream(&rows), bytes),
        Err(e) => check_error(&e, bytes.len())?,
    }
    match read_i_stream(bytes) {
        Ok(rows) => prop_assert_eq!(write_i_stream(&rows), bytes),
        Err(e) => check_error(&e, bytes.len())?,
    }
    // The matrix form and the iterator stop at the same error as `read_rows`.
    let matrix = FvecsReader::new(bytes).read_matrix().map(|_| ());
    prop_assert_eq!(matrix.is_ok(), read_f_stream(bytes).is_ok());
    let iterated: Result<Vec<_>, _> = IvecsReader::new(bytes).collect();
    prop_assert_eq!(iterated.is_ok(), read_i_stream(bytes).is_ok());
    Ok(())
}

fn check_error(e: &VecsError, len: usize) -> Result<(), TestCaseError> {
    let index = e.index().expect("a format error names its vector");
    prop_assert!(index as usize <= len / 4, "{e}");
    let message = e.to_string();
    prop_assert!(message.contains(&format!("vector {index} ")), "{message}");
    prop_assert!(message.starts_with("<stream>: "), "{message}");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Bad headers, inconsistent dimensions, writer refusals
// ---------------------------------------------------------------------------------------

/// Two good 2-d vectors, then a header, then 8 bytes of values.
fn with_third_header(header: i32) -> Vec<u8> {
    let mut bytes = encode(&[vec![1.0f32, 2.0], vec![3.0, 4.0]], f32_le);
    bytes.extend_from_slice(&header.to_le_bytes());
    bytes.extend_from_slice(&[0; 8]);
    bytes
}

#[test]
fn bad_dimensions_are_errors_naming_the_vector() {
    let too_big = i32::try_from(MAX_DIMS).unwrap() + 1;
    for header in [0, -1, -2, i32::MIN, too_big, i32::MAX] {
        let bytes = with_third_header(header);
        let err = read_f_stream(&bytes).unwrap_err();
        match &err {
            VecsError::BadDimension {
                index,
                offset,
                dims,
                format,
                ..
            } => {
                assert_eq!((*index, *offset, *dims), (2, 24, i64::from(header)));
                assert_eq!(*format, "fvecs");
            }
            other => panic!("header {header}: expected BadDimension, got {other:?}"),
        }
        let message = err.to_string();
        assert!(
            message.contains("vector 2 ") && message.contains(&header.to_string()),
            "{message}"
        );
        // ivecs takes an empty row (and the 8 zero bytes after it are two more); every other
        // bad header is refused the same way.
        let ivecs = read_i_stream(&bytes);
        if header == 0 {
            let rows = ivecs.unwrap();
            assert_eq!(rows.len(), 5);
            assert!(rows[2..].iter().all(Vec::is_empty));
        } else {
            assert!(
                matches!(ivecs, Err(VecsError::BadDimension { index: 2, .. })),
                "{ivecs:?}"
            );
        }
    }
}

#[test]
fn a_huge_header_over_a_short_file_is_a_truncation() {
    // MAX_DIMS is a valid dimension: reading must stop at the real end (8 bytes) rather than
    // allocate for the 4 MiB the header claims.
    let mut bytes = i32::try_from(MAX_DIMS).unwrap().to_le_bytes().to_vec();
    bytes.extend_from_slice(&[0; 8]);
    let err = read_f_stream(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            VecsError::Truncated { index: 0, offset: 0, part: "values", expected, found: 8, .. }
                if expected == 4 * MAX_DIMS as u64
        ),
        "{err:?}"
    );
    // Exactly MAX_DIMS values read back.
    let big = vec![vec![0.5f32; MAX_DIMS]];
    assert_eq!(
        bits(&read_f_stream(&write_f_stream(&big)).unwrap()),
        bits(&big)
    );
}

#[test]
fn fvecs_dimensions_must_agree_ivecs_rows_need_not() {
    let rows = vec![vec![1i32, 2, 3], vec![4, 5, 6], vec![7, 8]];
    let bytes = encode(&rows, i32::to_le_bytes);
    let err = read_f_stream(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            VecsError::InconsistentDimension {
                index: 2,
                offset: 32,
                expected: 3,
                got: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("vector 2 "), "{err}");
    assert_eq!(read_i_stream(&bytes).unwrap(), rows);
    // Ragged ivecs is not a matrix.
    let err = IvecsReader::new(&bytes[..]).read_matrix().unwrap_err();
    assert!(
        matches!(err, VecsError::InconsistentDimension { index: 2, .. }),
        "{err:?}"
    );
}

#[test]
fn writers_refuse_what_readers_would_refuse_and_write_nothing() {
    let mut w = FvecsWriter::new(Vec::new()).with_path("out.fvecs");
    w.write(&[1.0, 2.0]).unwrap();
    let err = w.write(&[1.0]).unwrap_err();
    assert!(matches!(
        err,
        VecsError::InconsistentDimension {
            index: 1,
            offset: 12,
            ..
        }
    ));
    assert!(err.to_string().starts_with("out.fvecs: vector 1 "), "{err}");
    assert!(matches!(
        w.write(&[]),
        Err(VecsError::BadDimension {
            index: 1,
            dims: 0,
            ..
        })
    ));
    assert!(matches!(
        w.write_matrix(2, &[1.0, 2.0, 3.0]),
        Err(VecsError::Shape { .. })
    ));
    assert!(matches!(
        w.write_matrix(0, &[1.0]),
        Err(VecsError::Shape { .. })
    ));
    w.write(&[3.0, 4.0]).unwrap();
    assert_eq!(w.count(), 2);
    let bytes = w.finish().unwrap();
    assert_eq!(bytes, encode(&[vec![1.0f32, 2.0], vec![3.0, 4.0]], f32_le));

    let mut w = IvecsWriter::new(Vec::new());
    let too_long = vec![0i32; MAX_DIMS + 1];
    assert!(matches!(
        w.write(&too_long),
        Err(VecsError::BadDimension { .. })
    ));
    assert_eq!(w.finish().unwrap(), Vec::<u8>::new());

    let dir = tempfile::tempdir().unwrap();
    let err = write_fvecs(dir.path().join("x.fvecs"), 3, &[1.0; 4]).unwrap_err();
    assert!(
        matches!(
            err,
            VecsError::Shape {
                dims: 3,
                len: 4,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn empty_files_hold_no_vectors_and_missing_files_name_their_path() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.fvecs");
    write_fvecs(&empty, 8, &[]).unwrap();
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);
    assert_eq!(read_fvecs(&empty).unwrap(), (0, Vec::new()));
    write_ivecs(&empty, Vec::<Vec<i32>>::new()).unwrap();
    assert!(read_ivecs(&empty).unwrap().is_empty());

    let missing = dir.path().join("missing.ivecs");
    let err = read_ivecs(&missing).unwrap_err();
    assert!(matches!(&err, VecsError::Io { path, .. } if path == &missing));
    assert_eq!(err.path(), missing.as_path());
    // Into the crate's error: I/O stays I/O with its path, format problems are input errors.
    assert!(matches!(d1vec::Error::from(err), d1vec::Error::Io { path, .. } if path == missing));
    let bad = read_f_stream(&with_third_header(-5)).unwrap_err();
    let message = bad.to_string();
    match d1vec::Error::from(bad) {
        d1vec::Error::InvalidInput { reason, .. } => assert_eq!(reason, message),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_reader_is_finished_after_an_error() {
    let mut bytes = encode(&[vec![1.0f32]], f32_le);
    bytes.extend_from_slice(&[9, 9]);
    let mut reader = FvecsReader::new(Cursor::new(bytes));
    let mut out = vec![7.0];
    assert_eq!(reader.next_into(&mut out).unwrap(), Some(1));
    assert_eq!(out, vec![7.0, 1.0], "next_into appends");
    assert!(reader.next_into(&mut out).is_err());
    assert_eq!(
        out,
        vec![7.0, 1.0],
        "a failed read leaves the buffer as it was"
    );
    assert_eq!(reader.next_into(&mut out).unwrap(), None);
    assert_eq!((reader.dims(), reader.position()), (Some(1), 1));
}

// ---------------------------------------------------------------------------------------
// Ground truth against brute force in f64
// ---------------------------------------------------------------------------------------

/// splitmix64: a tiny deterministic generator (reproducible failures).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1): continuous, so exact distance ties practically never occur.
    fn signed(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn matrix(&mut self, rows: usize, dims: usize) -> Vec<f32> {
        (0..rows * dims).map(|_| self.signed()).collect()
    }
}

const METRICS: [Metric; 3] = [Metric::Cosine, Metric::Euclidean, Metric::DotProduct];

/// The metric by its definition, in f64 (cosine as one minus the cosine of the angle).
/// `-0.0` is folded into `0.0` (`0.0 + d`): a zero dot product may come out with either
/// sign, and both are the same distance.
fn distance64(metric: Metric, a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    0.0 + match metric {
        Metric::Cosine => {
            let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
            let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
            // d1vec's convention: a zero vector has no direction and ranks at distance 1.
            if na == 0.0 || nb == 0.0 {
                1.0
            } else {
                1.0 - dot / (na * nb)
            }
        }
        Metric::Euclidean => a
            .iter()
            .zip(b)
            .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
            .sum(),
        Metric::DotProduct => -dot,
    }
}

/// How far apart f32 and f64 evaluations of one distance may be.
fn tolerance(d: f64) -> f64 {
    1e-4 * (1.0 + d.abs())
}

/// Checks one query's answer against brute force: the right length (k, or every allowed
/// row), distinct allowed rows, and the brute-force distance at every position (so two ids
/// may only swap when their distances are within rounding of each other). Returns how many
/// positions hold exactly the brute-force id.
fn check_query(
    metric: Metric,
    base: &[f32],
    dims: usize,
    query: &[f32],
    k: usize,
    allow: Option<&BTreeSet<usize>>,
    got: &[i32],
) -> Result<usize, String> {
    let mut all: Vec<(f64, usize)> = base
        .chunks_exact(dims)
        .enumerate()
        .filter(|(i, _)| allow.is_none_or(|a| a.contains(i)))
        .map(|(i, row)| (distance64(metric, query, row), i))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let want = &all[..k.min(all.len())];
    if got.len() != want.len() {
        return Err(format!("got {} ids, want {}", got.len(), want.len()));
    }
    let mut seen = BTreeSet::new();
    let mut same = 0;
    for (pos, (&id, &(wd, wid))) in got.iter().zip(want).enumerate() {
        let id = usize::try_from(id).map_err(|_| format!("negative id {id}"))?;
        if !seen.insert(id) || allow.is_some_and(|a| !a.contains(&id)) || id * dims >= base.len() {
            return Err(format!(
                "id {id} at {pos} is repeated, not allowed or out of range"
            ));
        }
        let d = distance64(metric, query, &base[id * dims..][..dims]);
        if (d - wd).abs() > tolerance(wd) {
            return Err(format!(
                "position {pos}: id {id} at {d}, brute force has {wid} at {wd}"
            ));
        }
        same += usize::from(id == wid);
    }
    Ok(same)
}

/// [`check_query`] for every query; returns (positions equal to brute force, positions).
fn check_all(
    metric: Metric,
    base: &[f32],
    dims: usize,
    queries: &[f32],
    k: usize,
    allow: Option<&BTreeSet<usize>>,
    got: &[Vec<i32>],
) -> Result<(usize, usize), String> {
    if got.len() != queries.len() / dims {
        return Err(format!(
            "{} rows for {} queries",
            got.len(),
            queries.len() / dims
        ));
    }
    let (mut same, mut total) = (0, 0);
    for (qi, (q, row)) in queries.chunks_exact(dims).zip(got).enumerate() {
        same += check_query(metric, base, dims, q, k, allow, row)
            .map_err(|e| format!("{metric:?} k={k} query {qi}: {e}"))?;
        total += row.len();
    }
    Ok((same, total))
}

fn bitset(rows: &BTreeSet<usize>) -> IdBitset {
    rows.iter().map(|&i| i as u64).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn ground_truth_equals_brute_force(
        seed: u64,
        n in 0usize..150,
        dims in 1usize..24,
        nq in 1usize..6,
        k in 0usize..15,
        // None: no filter; Some(m): rows whose index is divisible by m (m = 40 leaves
        // fewer rows than k); Some(0): nothing allowed.
        modulus in proptest::option::of(0usize..41),
    ) {
        let mut rng = Rng(seed);
        let base = rng.matrix(n, dims);
        let queries = rng.matrix(nq, dims);
        let allowed: Option<BTreeSet<usize>> =
            modulus.map(|m| (0..n).filter(|i| m != 0 && i % m == 0).collect());
        let bits = allowed.as_ref().map(bitset);
        for metric in METRICS {
            let got = ground_truth(
                metric, &base, dims, &queries, k,
                bits.as_ref().map(|b| b as &dyn d1vec::index::Allow),
            );
            check_all(metric, &base, dims, &queries, k, allowed.as_ref(), &got)
                .map_err(TestCaseError::fail)?;
        }
    }
}

#[test]
fn exact_ties_go_to_the_smaller_row_index() {
    // Small integers: f32 euclidean and dot products are exact, so f64 brute force sorted by
    // (distance, index) must match exactly, duplicates and all.
    let mut rng = Rng(7);
    let dims = 3;
    let base: Vec<f32> = (0..300 * dims)
        .map(|_| (rng.next() % 5) as f32 - 2.0)
        .collect();
    let queries: Vec<f32> = (0..20 * dims)
        .map(|_| (rng.next() % 5) as f32 - 2.0)
        .collect();
    let allowed: BTreeSet<usize> = (0..300).filter(|i| i % 3 != 1).collect();
    for metric in [Metric::Euclidean, Metric::DotProduct] {
        for (k, allow) in [(10, None), (25, Some(&allowed)), (1000, Some(&allowed))] {
            let bits = allow.map(bitset);
            let got = ground_truth(
                metric,
                &base,
                dims,
                &queries,
                k,
                bits.as_ref().map(|b| b as &dyn d1vec::index::Allow),
            );
            for (q, row) in queries.chunks_exact(dims).zip(&got) {
                let mut all: Vec<(f64, usize)> = base
                    .chunks_exact(dims)
                    .enumerate()
                    .filter(|(i, _)| allow.is_none_or(|a| a.contains(i)))
                    .map(|(i, r)| (distance64(metric, q, r), i))
                    .collect();
                all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                let want: Vec<i32> = all.iter().take(k).map(|&(_, i)| i as i32).collect();
                assert_eq!(row, &want, "{metric:?} k={k}");
            }
        }
    }
    // Cosine on the same data (zero vectors included) has ties up to rounding: compare by
    // distance (check_all).
    let got = ground_truth(Metric::Cosine, &base, dims, &queries, 10, None);
    check_all(Metric::Cosine, &base, dims, &queries, 10, None, &got).unwrap();
}

#[test]
fn ground_truth_at_scale_is_parallel_exact_and_round_trips_through_ivecs() {
    // 20,000 x 64 = 1.28M floats: large enough for the parallel scan inside each query, on
    // top of the parallel fan-out over queries.
    let (n, dims, nq, k) = (20_000, 64, 24, 100);
    let mut rng = Rng(42);
    let base = rng.matrix(n, dims);
    let queries = rng.matrix(nq, dims);
    let tenant: BTreeSet<usize> = (0..n).filter(|i| i % 97 == 3 || i % 13 == 0).collect();
    let tiny: BTreeSet<usize> = [5, 17_000, 123].into_iter().collect();
    let dir = tempfile::tempdir().unwrap();
    let (mut same, mut total) = (0, 0);
    for metric in METRICS {
        for allow in [None, Some(&tenant), Some(&tiny)] {
            let bits = allow.map(bitset);
            let answered = AtomicUsize::new(0);
            let got = ground_truth_with_progress(
                metric,
                &base,
                dims,
                &queries,
                k,
                bits.as_ref().map(|b| b as &dyn d1vec::index::Allow),
                &|| {
                    answered.fetch_add(1, Ordering::Relaxed);
                },
            );
            assert_eq!(answered.into_inner(), nq);
            let (s, t) = check_all(metric, &base, dims, &queries, k, allow, &got).unwrap();
            (same, total) = (same + s, total + t);
            if allow == Some(&tiny) {
                assert!(
                    got.iter().all(|r| r.len() == 3),
                    "every allowed row, no more"
                );
            }
            let path = dir.path().join("gt.ivecs");
            write_ivecs(&path, &got).unwrap();
            assert_eq!(read_ivecs(&path).unwrap(), got);
        }
    }
    // Continuous random data: rounding may swap near-equal neighbours, but almost every
    // position holds exactly the brute-force id (not merely one at the same distance).
    assert!(
        same * 100 >= total * 99,
        "only {same} of {total} positions are exact"
    );
    check_files_agree(dir.path(), &base, dims);
}

/// The flat helpers and the streaming writer produce the same file.
fn check_files_agree(dir: &Path, base: &[f32], dims: usize) {
    let a = dir.join("a.fvecs");
    write_fvecs(&a, dims, base).unwrap();
    let mut w = FvecsWriter::create(dir.join("b.fvecs")).unwrap();
    for row in base.chunks_exact(dims) {
        w.write(row).unwrap();
    }
    w.finish().unwrap();
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(dir.join("b.fvecs")).unwrap()
    );
    let (d, back) = read_fvecs(&a).unwrap();
    assert_eq!((d, back.len()), (dims, base.len()));
    assert!(back
        .iter()
        .zip(base)
        .all(|(x, y)| x.to_bits() == y.to_bits()));
}
