//! Sealed segment files: write → open → search against the brute-force oracle
//! (`index::exact`), allow-sets, ties, atomic writes, and corruption of every kind (a
//! corrupt file is an error or a segment that still answers safely; never a panic).
//!
//! Graphs here come from a small test-only builder (exact k nearest plus a few random long
//! links on layer 0, exact nearest on the sparse upper layers), not from hnsw_rs: the point
//! is the file format and the search over it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use d1vec::index::exact::{top_k, top_k_matrix};
use d1vec::index::segment::{SealedSegment, SearchScratch, SegmentError};
use d1vec::index::{Allow, GraphParts, Hit, IdBitset, Metric};
use proptest::prelude::*;
use rayon::prelude::*;

/// splitmix64: a tiny deterministic generator (fixed seeds, reproducible failures).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Uniform in [-1, 1).
    fn signed(&mut self) -> f32 {
        self.unit() * 2.0 - 1.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn normalize(v: &mut [f32]) {
    d1vec::index::distance::normalize_in_place(v);
}

/// `n` vectors around `clusters` random centres, prepared for `metric` (unit length for
/// cosine; for dot-product, lengths between 0.8 and 1.2 so the graph stays navigable).
fn clustered(n: usize, dims: usize, clusters: usize, metric: Metric, seed: u64) -> Vec<f32> {
    let mut rng = Rng(seed);
    let centres: Vec<Vec<f32>> = (0..clusters)
        .map(|_| (0..dims).map(|_| rng.signed()).collect())
        .collect();
    let mut out = Vec::with_capacity(n * dims);
    for _ in 0..n {
        out.extend(point_near(&centres[rng.below(clusters)], metric, &mut rng));
    }
    out
}

fn point_near(centre: &[f32], metric: Metric, rng: &mut Rng) -> Vec<f32> {
    let mut v: Vec<f32> = centre.iter().map(|c| c + 0.35 * rng.signed()).collect();
    match metric {
        Metric::Cosine => normalize(&mut v),
        Metric::DotProduct => {
            normalize(&mut v);
            let scale = 0.8 + 0.4 * rng.unit();
            v.iter_mut().for_each(|x| *x *= scale);
        }
        Metric::Euclidean => {}
    }
    v
}

/// A test-only HNSW-ish graph: levels drawn as HNSW does (`P(level >= l) = M^-l`, capped
/// at 3), layer 0 = the `2M - 4` exact nearest plus 4 random nodes, upper layers = the `M`
/// exact nearest among the nodes of that layer; the entry point is the first node on the
/// top layer.
fn build(ids: Vec<u64>, vectors: Vec<f32>, dims: usize, metric: Metric, m: usize) -> GraphParts {
    let n = ids.len();
    let mut rng = Rng(0xB01D ^ n as u64);
    let levels: Vec<u8> = (0..n)
        .map(|_| {
            let u = f64::from(rng.unit()).max(1e-9);
            ((-u.ln() / (m as f64).ln()) as u8).min(3)
        })
        .collect();
    let vec_of = |i: usize| &vectors[i * dims..(i + 1) * dims];
    let max_level = levels.iter().copied().max().unwrap_or(0);
    let mut neighbors: Vec<Vec<Vec<u32>>> = (0..n)
        .map(|i| vec![Vec::new(); usize::from(levels[i]) + 1])
        .collect();
    for layer in 0..=max_level {
        let members: Vec<usize> = (0..n).filter(|&i| levels[i] >= layer).collect();
        let width = if layer == 0 { 2 * m - 4 } else { m };
        let lists: Vec<Vec<u32>> = members
            .par_iter()
            .map(|&i| {
                let mut d: Vec<(f32, usize)> = members
                    .iter()
                    .filter(|&&j| j != i)
                    .map(|&j| (metric.distance(vec_of(i), vec_of(j)), j))
                    .collect();
                d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                d.iter().take(width).map(|&(_, j)| j as u32).collect()
            })
            .collect();
        for (&i, mut list) in members.iter().zip(lists) {
            if layer == 0 {
                let mut tries = 0;
                while list.len() < 2 * m && list.len() + 1 < n && tries < 50 {
                    let j = rng.below(n) as u32;
                    if j as usize != i && !list.contains(&j) {
                        list.push(j);
                    }
                    tries += 1;
                }
            }
            neighbors[i][usize::from(layer)] = list;
        }
    }
    let entry_point = (0..n).find(|&i| levels[i] == max_level).map(|i| i as u32);
    GraphParts {
        dims,
        metric,
        m,
        ids,
        vectors,
        levels,
        entry_point,
        neighbors,
    }
}

const DIMS: usize = 64;
/// Length of a version 2 header (prefix 48, 12 table rows of 24, crc32, reserved).
const HEADER_LEN: usize = 344;
/// Offset of the header's crc32.
const HEADER_CRC_AT: usize = 336;
const N: usize = 3000;

/// The 3,000 × 64 clustered fixture of each metric, built once per test binary.
fn fixture(metric: Metric) -> &'static GraphParts {
    static CELLS: [OnceLock<GraphParts>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    CELLS[usize::from(metric.code() - 1)].get_or_init(|| {
        // Ids with gaps, ascending: local order is id order.
        let ids: Vec<u64> = (0..N as u64).map(|i| 1000 + i * 3 + i % 2).collect();
        let vectors = clustered(N, DIMS, 24, metric, 7 + u64::from(metric.code()));
        build(ids, vectors, DIMS, metric, 16)
    })
}

/// A small fixture for the corruption tests (fast to rewrite hundreds of times).
fn small() -> &'static GraphParts {
    static CELL: OnceLock<GraphParts> = OnceLock::new();
    CELL.get_or_init(|| {
        let ids: Vec<u64> = (0..200u64).map(|i| i * 2 + 5).collect();
        let vectors = clustered(200, 8, 4, Metric::Euclidean, 99);
        build(ids, vectors, 8, Metric::Euclidean, 4)
    })
}

fn queries(metric: Metric, count: usize, seed: u64) -> Vec<Vec<f32>> {
    // The same distribution as the data (fresh points near the same centres).
    let mut rng = Rng(7 + u64::from(metric.code()));
    let centres: Vec<Vec<f32>> = (0..24)
        .map(|_| (0..DIMS).map(|_| rng.signed()).collect())
        .collect();
    let mut rng = Rng(seed);
    (0..count)
        .map(|_| point_near(&centres[rng.below(24)], metric, &mut rng))
        .collect()
}

fn write_open(dir: &Path, name: &str, parts: &GraphParts, watermark: u64) -> SealedSegment {
    let path = dir.join(name);
    SealedSegment::write(&path, parts, watermark, &[]).unwrap();
    let seg = SealedSegment::open(&path).unwrap();
    seg.verify().unwrap();
    seg
}

fn recall(got: &[Hit], want: &[Hit], k: usize) -> f64 {
    let want: Vec<u64> = want.iter().take(k).map(|h| h.id).collect();
    if want.is_empty() {
        return 1.0;
    }
    let found = got.iter().filter(|h| want.contains(&h.id)).count();
    found as f64 / want.len() as f64
}

/// What every answer from any segment, corrupt or not, must satisfy: ids from `ids()`,
/// allowed, at most `k`, sorted by (distance, id), distances exactly those of the stored
/// vectors and never NaN.
#[track_caller]
fn assert_sound(seg: &SealedSegment, q: &[f32], hits: &[Hit], k: usize, allow: Option<&dyn Allow>) {
    assert!(
        hits.len() <= k || k == usize::MAX,
        "{} hits for k={k}",
        hits.len()
    );
    for w in hits.windows(2) {
        assert!(
            (w[0].distance, w[0].id) < (w[1].distance, w[1].id),
            "not sorted: {w:?}"
        );
    }
    for h in hits {
        let local = seg
            .local_of(h.id)
            .unwrap_or_else(|| panic!("id {} not in ids()", h.id));
        assert!(!h.distance.is_nan());
        let d = seg.metric().distance(q, seg.vector(local));
        assert_eq!(
            h.distance.to_bits(),
            (d + 0.0).to_bits(),
            "distance of id {}",
            h.id
        );
        if let Some(a) = allow {
            assert!(a.allows(h.id), "disallowed id {} returned", h.id);
        }
    }
}

#[test]
fn search_recall_per_metric() {
    let dir = tempfile::tempdir().unwrap();
    let mut scratch = SearchScratch::default();
    for metric in [Metric::Cosine, Metric::Euclidean, Metric::DotProduct] {
        let parts = fixture(metric);
        let seg = write_open(dir.path(), metric.as_str(), parts, 42);
        let qs = queries(metric, 60, 1234);
        let mut total = 0.0;
        for q in &qs {
            let want = top_k_matrix(metric, q, &parts.ids, &parts.vectors, DIMS, 10, None);
            let got = seg.search(q, 10, 16, None, &mut scratch);
            assert_eq!(got.len(), 10);
            assert_sound(&seg, q, &got, 10, None);
            total += recall(&got, &want, 10);
        }
        let mean = total / qs.len() as f64;
        assert!(mean >= 0.95, "{metric:?}: recall@10 {mean}");
        // A wide beam over this small graph finds the exact answer.
        for q in qs.iter().take(5) {
            let want = top_k_matrix(metric, q, &parts.ids, &parts.vectors, DIMS, 5, None);
            assert_eq!(seg.search(q, 5, 400, None, &mut scratch), want[..5]);
        }
    }
}

#[test]
fn accessors_match_the_parts() {
    let dir = tempfile::tempdir().unwrap();
    let parts = fixture(Metric::Cosine);
    let seg = write_open(dir.path(), "a.seg", parts, u64::MAX - 1);
    assert_eq!(seg.path(), dir.path().join("a.seg"));
    assert_eq!(seg.len(), N);
    assert!(!seg.is_empty());
    assert_eq!(seg.dims(), DIMS);
    assert_eq!(seg.metric(), Metric::Cosine);
    assert_eq!(seg.m(), 16);
    assert_eq!(seg.watermark(), u64::MAX - 1);
    // Version 2 stores nodes in graph order: the ids are a permutation of the parts'.
    assert_eq!(seg.sorted_ids(), parts.ids.as_slice());
    assert_eq!(seg.max_id(), parts.ids.last().copied());
    assert_eq!(seg.vectors().len(), parts.vectors.len());
    for l in [0usize, 1, 1234, N - 1] {
        let local = seg.local_of(parts.ids[l]).unwrap();
        assert_eq!(seg.ids()[local as usize], parts.ids[l]);
        assert_eq!(seg.vector(local), &parts.vectors[l * DIMS..(l + 1) * DIMS]);
    }
    assert!(seg.vector(N as u32).is_empty());
    assert!(seg.vector(u32::MAX).is_empty());
    assert_eq!(seg.local_of(0), None);
    assert_eq!(seg.local_of(parts.ids[5] + 1), None);
    let on_disk = std::fs::metadata(dir.path().join("a.seg")).unwrap().len();
    assert_eq!(seg.file_bytes(), on_disk);
    // Every section is present at its documented size (header 344 + padding): ids,
    // vectors, levels, layer0, upper offsets and links, codes, code params, the id lookup
    // (8 + 4 bytes per vector), no groups.
    let upper_rows: usize = parts.levels.iter().map(|&l| usize::from(l)).sum();
    let min =
        (N * (8 + DIMS * 4 + 1 + 32 * 4 + 4 + DIMS + 8 + 12) + 4 + upper_rows * 16 * 4) as u64;
    assert!(
        on_disk >= min + 344 && on_disk < min + 344 + 12 * 64,
        "{on_disk}"
    );
}

#[test]
fn exact_equals_brute_force_over_the_given_ids() {
    let dir = tempfile::tempdir().unwrap();
    for metric in [Metric::Cosine, Metric::Euclidean, Metric::DotProduct] {
        let parts = fixture(metric);
        let seg = write_open(dir.path(), metric.as_str(), parts, 0);
        let mut rng = Rng(5);
        for q in queries(metric, 10, 77) {
            // Present ids, absent ids and repeats.
            let mut wanted: Vec<u64> = (0..300).map(|_| parts.ids[rng.below(N)]).collect();
            wanted.extend([0, 1, parts.ids[N - 1] + 10, parts.ids[3] + 1]);
            wanted.push(wanted[0]);
            let mut present: Vec<usize> =
                (0..N).filter(|&i| wanted.contains(&parts.ids[i])).collect();
            present.dedup();
            let rows = present
                .iter()
                .map(|&i| (parts.ids[i], &parts.vectors[i * DIMS..(i + 1) * DIMS]));
            for k in [1, 10, 1000] {
                let want = top_k(metric, &q, rows.clone(), k);
                let got = seg.exact(&q, &wanted, k);
                assert_eq!(got, want, "{metric:?} k={k}");
            }
            assert!(seg.exact(&q, &wanted, 0).is_empty());
            assert!(seg.exact(&q[..DIMS - 1], &wanted, 5).is_empty());
            assert!(seg.exact(&q, &[], 5).is_empty());
        }
    }
}

/// Allows ids whose hash falls in one bucket of `buckets`.
struct Sample(u64);

impl Allow for Sample {
    fn allows(&self, id: u64) -> bool {
        id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60 < self.0
    }
}

#[test]
fn allow_is_honoured_and_recall_stays_high() {
    let dir = tempfile::tempdir().unwrap();
    let mut scratch = SearchScratch::new();
    for metric in [Metric::Cosine, Metric::Euclidean] {
        let parts = fixture(metric);
        let seg = write_open(dir.path(), metric.as_str(), parts, 0);
        // ~1/16 of the ids through a hash (scattered over the graph), and exactly 10% as a
        // bitset.
        let hashed = Sample(1);
        let tenth: IdBitset = parts
            .ids
            .iter()
            .copied()
            .filter(|id| id / 2 % 10 == 3)
            .collect();
        assert!(tenth.len() > N / 20);
        for allow in [&hashed as &dyn Allow, &tenth] {
            let mut total = 0.0;
            let qs = queries(metric, 40, 99);
            for q in &qs {
                let want =
                    top_k_matrix(metric, q, &parts.ids, &parts.vectors, DIMS, 10, Some(allow));
                let got = seg.search(q, 10, 16, Some(allow), &mut scratch);
                assert_eq!(got.len(), 10);
                assert_sound(&seg, q, &got, 10, Some(allow));
                total += recall(&got, &want, 10);
            }
            let mean = total / qs.len() as f64;
            assert!(mean >= 0.9, "{metric:?}: filtered recall@10 {mean}");
        }
        // Nothing allowed: nothing returned. Three allowed: exactly those three, found by
        // traversing the disallowed rest.
        let q = &queries(metric, 1, 3)[0];
        let none = IdBitset::new();
        assert!(seg.search(q, 10, 64, Some(&none), &mut scratch).is_empty());
        let three: IdBitset = [parts.ids[17], parts.ids[1500], parts.ids[2999]]
            .into_iter()
            .collect();
        let got = seg.search(q, 10, 64, Some(&three), &mut scratch);
        let want = top_k_matrix(
            metric,
            q,
            &parts.ids,
            &parts.vectors,
            DIMS,
            10,
            Some(&three),
        );
        assert_eq!(got, want);
    }
}

#[test]
fn ties_are_broken_by_the_smaller_id() {
    // 60 nodes on 3 points (20 copies each), every node linked to every other: every
    // distance is tied 20 ways, and the search must return the smallest ids of the nearest
    // point, in id order, exactly as the exact oracle does.
    let (n, dims) = (60usize, 4usize);
    let points = [
        [1.0f32, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
    ];
    let ids: Vec<u64> = (0..n as u64).map(|i| 10 + i).collect();
    let vectors: Vec<f32> = (0..n).flat_map(|i| points[(i * 7) % 3]).collect();
    let parts = build(ids, vectors, dims, Metric::Euclidean, 32);
    let dir = tempfile::tempdir().unwrap();
    let seg = write_open(dir.path(), "ties", &parts, 0);
    let mut scratch = SearchScratch::new();
    for (q, k) in [
        ([1.0f32, 0.0, 0.0, 0.0], 5),
        ([0.0, 0.9, 0.1, 0.0], 25),
        ([0.0, 0.0, 0.0, 1.0], 7),
    ] {
        let want = top_k_matrix(
            Metric::Euclidean,
            &q,
            &parts.ids,
            &parts.vectors,
            dims,
            k,
            None,
        );
        let got = seg.search(&q, k, 64, None, &mut scratch);
        assert_eq!(got, want[..k], "q={q:?}");
        assert_sound(&seg, &q, &got, k, None);
    }
}

#[test]
fn empty_and_tiny_segments() {
    let dir = tempfile::tempdir().unwrap();
    let empty = GraphParts {
        dims: 3,
        metric: Metric::DotProduct,
        m: 8,
        ids: vec![],
        vectors: vec![],
        levels: vec![],
        entry_point: None,
        neighbors: vec![],
    };
    let seg = write_open(dir.path(), "empty", &empty, 7);
    assert!(seg.is_empty());
    assert_eq!((seg.len(), seg.dims(), seg.watermark()), (0, 3, 7));
    let mut scratch = SearchScratch::new();
    assert!(seg
        .search(&[1.0, 2.0, 3.0], 10, 10, None, &mut scratch)
        .is_empty());
    assert!(seg.exact(&[1.0, 2.0, 3.0], &[1, 2], 10).is_empty());
    assert_eq!(seg.local_of(1), None);

    let one = build(
        vec![u64::MAX],
        vec![0.5, -0.5, 2.0],
        3,
        Metric::DotProduct,
        8,
    );
    let seg = write_open(dir.path(), "one", &one, 0);
    let got = seg.search(&[1.0, 1.0, 1.0], 10, 1, None, &mut scratch);
    assert_eq!(
        got,
        vec![Hit {
            id: u64::MAX,
            distance: -2.0
        }]
    );
    // A query of the wrong dimensions gets nothing (callers validate dimensions first).
    assert!(seg
        .search(&[1.0, 1.0], 10, 10, None, &mut scratch)
        .is_empty());
    assert!(seg
        .search(&[1.0, 1.0, 1.0], 0, 10, None, &mut scratch)
        .is_empty());
}

#[test]
fn write_rejects_inconsistent_parts_and_leaves_no_file() {
    let base = small().clone();
    let mut cases: Vec<(&str, GraphParts)> = Vec::new();
    let mut p = base.clone();
    p.ids.swap(3, 4);
    cases.push(("ids not ascending", p));
    let mut p = base.clone();
    p.ids[4] = p.ids[3];
    cases.push(("duplicate id", p));
    let mut p = base.clone();
    p.vectors.pop();
    cases.push(("short vectors", p));
    let mut p = base.clone();
    p.levels.pop();
    cases.push(("short levels", p));
    let mut p = base.clone();
    p.neighbors[7][0].push(200);
    cases.push(("neighbour out of range", p));
    let mut p = base.clone();
    p.neighbors[7][0] = (0..9).collect();
    cases.push(("layer 0 longer than 2M", p));
    let mut p = base.clone();
    let top = p.entry_point.unwrap() as usize;
    assert!(p.levels[top] >= 1, "the small fixture has an upper layer");
    p.neighbors[top][1] = (0..5).collect();
    cases.push(("upper layer longer than M", p));
    let mut p = base.clone();
    p.levels[9] += 1;
    cases.push(("levels disagree with lists", p));
    let mut p = base.clone();
    p.entry_point = None;
    cases.push(("no entry point", p));
    let mut p = base.clone();
    p.entry_point = Some(200);
    cases.push(("entry point out of range", p));
    let mut p = base.clone();
    p.entry_point = (0..200u32).find(|&i| p.levels[i as usize] == 0);
    cases.push(("entry point below the top", p));
    let mut p = base.clone();
    p.dims = 0;
    p.vectors.clear();
    cases.push(("zero dims", p));
    let mut p = base.clone();
    p.m = 0;
    cases.push(("zero M", p));

    let dir = tempfile::tempdir().unwrap();
    for (what, parts) in cases {
        let path = dir.path().join("bad");
        match SealedSegment::write(&path, &parts, 0, &[]) {
            Err(SegmentError::Corrupt { reason, .. }) => {
                assert!(reason.contains("inconsistent"), "{what}: {reason}")
            }
            other => panic!("{what}: {other:?}"),
        }
        assert!(!path.exists(), "{what}");
        assert!(!dir.path().join("bad.tmp").exists(), "{what}");
    }
}

#[test]
fn leftover_tmp_and_rewrites_are_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.seg");
    let tmp = dir.path().join("s.seg.tmp");
    // A crash mid-write left a half-written temporary file.
    std::fs::write(&tmp, b"D1VSEG\0\x01 half a file").unwrap();
    SealedSegment::write(&path, small(), 1, &[]).unwrap();
    assert!(!tmp.exists());
    let seg = SealedSegment::open(&path).unwrap();
    seg.verify().unwrap();
    assert_eq!(seg.watermark(), 1);
    // Another crash leaves a temporary next to the good file: the file still opens.
    std::fs::write(&tmp, vec![0xAB; 4096]).unwrap();
    let again = SealedSegment::open(&path).unwrap();
    again.verify().unwrap();
    // Replacing the file while the old mapping is alive: the old one keeps its bytes.
    SealedSegment::write(&path, small(), 2, &[]).unwrap();
    assert_eq!(SealedSegment::open(&path).unwrap().watermark(), 2);
    assert_eq!(seg.watermark(), 1);
    seg.verify().unwrap();
    assert_eq!(seg.sorted_ids(), small().ids.as_slice());
    // The file is complete and byte-identical to a fresh write.
    let fresh = dir.path().join("fresh.seg");
    SealedSegment::write(&fresh, small(), 2, &[]).unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        std::fs::read(&fresh).unwrap()
    );
}

// ---- corruption ----------------------------------------------------------------------

struct Corrupted {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

/// The small fixture's bytes, written by the real writer.
fn good_bytes() -> &'static [u8] {
    static CELL: OnceLock<Vec<u8>> = OnceLock::new();
    CELL.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("good");
        // With two groups, so that damage to the group sections is exercised too.
        let ids = &small().ids;
        let groups = [
            d1vec::index::segment::Group {
                label: b"alpha",
                ids: &ids[..50],
            },
            d1vec::index::segment::Group {
                label: b"beta",
                ids: &ids[120..150],
            },
        ];
        SealedSegment::write(&path, small(), 3, &groups).unwrap();
        std::fs::read(path).unwrap()
    })
}

fn put(bytes: &[u8]) -> Corrupted {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.seg");
    std::fs::write(&path, bytes).unwrap();
    Corrupted { _dir: dir, path }
}

/// Opens a damaged file. It must fail with `Corrupt`, or give a segment that answers
/// soundly. Returns the opened segment (if any) for further checks.
#[track_caller]
fn open_damaged(bytes: &[u8]) -> Option<SealedSegment> {
    let file = put(bytes);
    match SealedSegment::open(&file.path) {
        Err(SegmentError::Corrupt { path, reason }) => {
            assert_eq!(path, file.path);
            assert!(!reason.is_empty());
            None
        }
        // A flipped bit in the version field can declare a newer version: still refused.
        Err(SegmentError::Incompatible { found, .. })
            if found > 2 && bytes.get(8..12) == Some(&found.to_le_bytes()[..]) =>
        {
            None
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(seg) => {
            exercise(&seg);
            Some(seg)
        }
    }
}

/// Runs searches (plain, filtered, wide) and exact lookups and checks every answer.
#[track_caller]
fn exercise(seg: &SealedSegment) {
    let mut scratch = SearchScratch::new();
    let mut rng = Rng(11);
    let dims = seg.dims();
    let allow = Sample(4);
    let all_ids: Vec<u64> = small().ids.clone();
    for _ in 0..3 {
        let q: Vec<f32> = (0..dims).map(|_| rng.signed()).collect();
        for (k, ef, allow) in [
            (10, 16, None),
            (3, 64, Some(&allow as &dyn Allow)),
            (50, 8, None),
        ] {
            let hits = seg.search(&q, k, ef, allow, &mut scratch);
            assert_sound(seg, &q, &hits, k, allow);
        }
        let hits = seg.exact(&q, &all_ids, 10);
        assert_sound(seg, &q, &hits, usize::MAX, None);
    }
}

#[test]
fn truncation_at_any_point_is_rejected() {
    let good = good_bytes();
    let mut cuts: Vec<usize> = (0..=300).collect();
    cuts.extend((300..good.len()).step_by(97));
    cuts.push(good.len() - 1);
    for cut in cuts {
        assert!(
            open_damaged(&good[..cut]).is_none(),
            "truncated at {cut} opened"
        );
    }
}

#[test]
fn appended_junk_and_deleted_files_are_rejected() {
    let good = good_bytes();
    for junk in [&[0u8][..], &[0; 64], b"junk at the end"] {
        let mut bytes = good.to_vec();
        bytes.extend_from_slice(junk);
        assert!(open_damaged(&bytes).is_none());
    }
    let file = put(good);
    std::fs::remove_file(&file.path).unwrap();
    assert!(matches!(
        SealedSegment::open(&file.path),
        Err(SegmentError::Io { .. })
    ));
    // A folder is not a segment either.
    assert!(SealedSegment::open(file._dir.path()).is_err());
}

#[test]
fn zeroed_ranges_are_caught() {
    let good = good_bytes();
    let mut starts: Vec<usize> = (0..256).step_by(8).collect();
    starts.extend((256..good.len()).step_by(211));
    for start in starts {
        for len in [1usize, 8, 64, 1000] {
            let end = (start + len).min(good.len());
            if good[start..end].iter().all(|&b| b == 0) {
                continue;
            }
            let mut bytes = good.to_vec();
            bytes[start..end].fill(0);
            if let Some(seg) = open_damaged(&bytes) {
                assert!(seg.verify().is_err(), "zeroed {start}..{end} passed verify");
            }
        }
    }
}

/// Rewrites header fields and fixes the header checksum, as a hostile or buggy writer
/// would: `open` must still refuse (its checks cannot rely on the checksum).
#[test]
fn crafted_headers_with_valid_checksums_are_rejected() {
    let good = good_bytes();
    let patch = |edits: &[(usize, &[u8])]| {
        let mut b = good.to_vec();
        for (at, bytes) in edits {
            b[*at..*at + bytes.len()].copy_from_slice(bytes);
        }
        let crc = crc32fast::hash(&b[..HEADER_CRC_AT]);
        b[HEADER_CRC_AT..HEADER_CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
        b
    };
    let u32le = |v: u32| v.to_le_bytes();
    let u64le = |v: u64| v.to_le_bytes();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("version 1", patch(&[(8, &u32le(1))])),
        ("version 0", patch(&[(8, &u32le(0))])),
        ("dims 0", patch(&[(12, &u32le(0))])),
        ("dims huge", patch(&[(12, &u32le(u32::MAX))])),
        ("dims 9", patch(&[(12, &u32le(9))])),
        ("metric 0", patch(&[(16, &[0])])),
        ("metric 9", patch(&[(16, &[9])])),
        ("max level 200", patch(&[(17, &[200])])),
        ("reserved", patch(&[(18, &[1, 0])])),
        ("m 0", patch(&[(20, &u32le(0))])),
        ("m huge", patch(&[(20, &u32le(u32::MAX))])),
        ("m 5", patch(&[(20, &u32le(5))])),
        ("count +1", patch(&[(24, &u64le(201))])),
        ("count huge", patch(&[(24, &u64le(u64::MAX / 4))])),
        ("count 0", patch(&[(24, &u64le(0))])),
        ("entry out of range", patch(&[(32, &u32le(200))])),
        ("entry none", patch(&[(32, &u32le(u32::MAX))])),
        ("section count", patch(&[(36, &u32le(5))])),
        ("ids offset misaligned", patch(&[(48, &u64le(260))])),
        ("ids offset inside header", patch(&[(48, &u64le(128))])),
        ("ids offset past end", patch(&[(48, &u64le(1 << 40))])),
        ("ids offset wraps", patch(&[(48, &u64le(u64::MAX - 63))])),
        ("ids length huge", patch(&[(56, &u64le(u64::MAX))])),
        ("vectors overlap ids", patch(&[(72, &u64le(256))])),
        (
            "upper links ragged",
            patch(&[(48 + 5 * 24 + 8, &u64le(20))]),
        ),
        (
            "upper links length 0",
            patch(&[(48 + 5 * 24 + 8, &u64le(0))]),
        ),
        ("section reserved", patch(&[(48 + 20, &u32le(1))])),
        (
            "trailing reserved",
            patch(&[(HEADER_CRC_AT + 4, &u32le(1))]),
        ),
        ("section count 6", patch(&[(36, &u32le(6))])),
        ("codes length", patch(&[(48 + 6 * 24 + 8, &u64le(8))])),
        ("id lookup length", patch(&[(48 + 9 * 24 + 8, &u64le(4))])),
        ("groups ragged", patch(&[(48 + 10 * 24 + 8, &u64le(8))])),
    ];
    for (what, bytes) in cases {
        assert!(open_damaged(&bytes).is_none(), "{what} opened");
    }
}

/// Section bytes rewritten without fixing their checksums pass `open` (it does not hash the
/// body) and must still be answered soundly, then fail `verify`.
#[test]
fn crafted_bodies_are_searched_safely() {
    let good = good_bytes();
    let table = |i: usize| {
        let at = 48 + i * 24;
        let offset = u64::from_le_bytes(good[at..at + 8].try_into().unwrap()) as usize;
        let len = u64::from_le_bytes(good[at + 8..at + 16].try_into().unwrap()) as usize;
        offset..offset + len
    };
    let mut rng = Rng(21);
    let fill_u32 = |bytes: &mut [u8], range: std::ops::Range<usize>, f: &mut dyn FnMut() -> u32| {
        for c in bytes[range].chunks_exact_mut(4) {
            c.copy_from_slice(&f().to_le_bytes());
        }
    };
    let gens: [fn(&mut Rng) -> u32; 4] = [
        |r| r.next() as u32,
        |r| 195 + (r.next() % 10) as u32,
        |_| u32::MAX - 1,
        |_| 0,
    ];
    let mut variants: Vec<(&str, Vec<u8>)> = Vec::new();
    for (what, section) in [("layer0", 3), ("upper offsets", 4), ("upper links", 5)] {
        let mut range = table(section);
        if section == 4 {
            // `open` checks the first and last offsets; scramble the ones between.
            range = range.start + 4..range.end - 4;
        }
        for gen in gens {
            let mut b = good.to_vec();
            fill_u32(&mut b, range.clone(), &mut || gen(&mut rng));
            variants.push((what, b));
        }
    }
    // Non-finite vectors: never returned as NaN distances, never a panic.
    for bits in [
        f32::NAN.to_bits(),
        f32::INFINITY.to_bits(),
        f32::NEG_INFINITY.to_bits(),
    ] {
        let mut b = good.to_vec();
        let r = table(1);
        fill_u32(&mut b, r.start..r.start + r.len() / 2, &mut || bits);
        variants.push(("vectors", b));
    }
    // Levels all at the top (more upper layers than offsets describe).
    let mut b = good.to_vec();
    let r = table(2);
    let top = good[17];
    b[r].fill(top);
    variants.push(("levels", b));
    for (what, bytes) in variants {
        let seg = open_damaged(&bytes).unwrap_or_else(|| panic!("{what}: open refused"));
        assert!(seg.verify().is_err(), "{what}: verify passed");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Any flipped bit is caught: `open` refuses, or `verify` does; either way nothing
    /// panics and searches stay sound.
    #[test]
    fn bit_flips_are_always_detected(flips in proptest::collection::vec((any::<usize>(), 0u8..8), 1..4)) {
        let good = good_bytes();
        let mut bytes = good.to_vec();
        for (at, bit) in &flips {
            bytes[at % good.len()] ^= 1 << bit;
        }
        prop_assume!(bytes != good);
        if let Some(seg) = open_damaged(&bytes) {
            prop_assert!(seg.verify().is_err(), "flips {flips:?} passed verify");
        }
    }

    /// The same, with flips concentrated in the header and section table.
    #[test]
    fn header_bit_flips_are_rejected(at in 0usize..HEADER_LEN, bit in 0u8..8) {
        let mut bytes = good_bytes().to_vec();
        bytes[at] ^= 1 << bit;
        prop_assert!(open_damaged(&bytes).is_none());
    }
}

// ---- fuzz seeds and timings (run by hand) ---------------------------------------------

/// Regenerates `fuzz/corpus/segment_open/`: `cargo test --test it
/// segment::regenerate_fuzz_corpus -- --ignored`.
#[test]
#[ignore]
fn regenerate_fuzz_corpus() {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/segment_open");
    std::fs::create_dir_all(&out).unwrap();
    let tiny = |n: usize, dims: usize, metric: Metric, m: usize| {
        let ids: Vec<u64> = (0..n as u64).map(|i| i * 5 + 1).collect();
        build(
            ids,
            clustered(n, dims, 2, metric, n as u64),
            dims,
            metric,
            m,
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let seeds = [
        ("v2_empty", tiny(0, 2, Metric::Cosine, 2)),
        ("v2_one", tiny(1, 2, Metric::Euclidean, 2)),
        ("v2_cosine_12x4", tiny(12, 4, Metric::Cosine, 3)),
        ("v2_dot_30x3", tiny(30, 3, Metric::DotProduct, 2)),
        ("v2_l2_40x2", tiny(40, 2, Metric::Euclidean, 4)),
    ];
    // The files without a `v2_` prefix were written by the version 1 writer: they stay,
    // as the reader's backward-compatibility fixtures (`segment_v2::version_1_files_*`).
    for (name, parts) in seeds {
        let path = dir.path().join(name);
        // Two groups over the first ids (a namespace map), the rest in none.
        let (a, b) = parts.ids.split_at(parts.ids.len() / 3);
        let b = &b[..b.len() / 2];
        let groups = [
            d1vec::index::segment::Group {
                label: b"tenant-b",
                ids: b,
            },
            d1vec::index::segment::Group {
                label: b"a",
                ids: a,
            },
        ];
        SealedSegment::write(&path, &parts, 9, &groups).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(out.join(name), &bytes).unwrap();
        if bytes.len() > 300 {
            std::fs::write(out.join(format!("{name}_cut_header")), &bytes[..150]).unwrap();
            std::fs::write(
                out.join(format!("{name}_cut_body")),
                &bytes[..bytes.len() - 9],
            )
            .unwrap();
        }
    }
}

/// Timing of `open` for a 100k × 1536 file and of an exact scan over its mapped vectors.
/// Run in release: `cargo test --release --test it segment::timing -- --ignored --nocapture`.
#[test]
#[ignore]
fn timing_open_and_exact_scan_100k_x_1536() {
    let (n, dims, m) = (100_000usize, 1536usize, 16usize);
    let mut rng = Rng(1);
    let vectors: Vec<f32> = (0..n * dims).map(|_| rng.signed()).collect();
    // A ring lattice is enough to time the format (this test is not about recall).
    let neighbors: Vec<Vec<Vec<u32>>> = (0..n)
        .map(|i| vec![(1..=2 * m).map(|d| ((i + d * 7) % n) as u32).collect()])
        .collect();
    let parts = GraphParts {
        dims,
        metric: Metric::Euclidean,
        m,
        ids: (0..n as u64).collect(),
        vectors,
        levels: vec![0; n],
        entry_point: Some(0),
        neighbors,
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.seg");
    let t = Instant::now();
    SealedSegment::write(&path, &parts, 0, &[]).unwrap();
    println!(
        "write: {:?} for {} MB",
        t.elapsed(),
        std::fs::metadata(&path).unwrap().len() >> 20
    );
    drop(parts);
    let t = Instant::now();
    let seg = SealedSegment::open(&path).unwrap();
    println!("open: {:?}", t.elapsed());
    let q: Vec<f32> = (0..dims).map(|_| rng.signed()).collect();
    let bytes = (n * dims * 4) as f64;
    for round in 0..4 {
        let t = Instant::now();
        let hits = top_k_matrix(seg.metric(), &q, seg.ids(), seg.vectors(), dims, 10, None);
        let s = t.elapsed().as_secs_f64();
        assert_eq!(hits.len(), 10);
        println!(
            "exact top_k_matrix round {round}: {:.1} ms, {:.2} GB/s",
            s * 1e3,
            bytes / s / 1e9
        );
    }
    let t = Instant::now();
    seg.verify().unwrap();
    println!("verify: {:?}", t.elapsed());
    let mut scratch = SearchScratch::new();
    let t = Instant::now();
    for _ in 0..100 {
        seg.search(&q, 10, 64, None, &mut scratch);
    }
    println!(
        "search (ring graph, ef 64): {:?} per query",
        t.elapsed() / 100
    );
}
