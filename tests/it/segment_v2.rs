//! Sealed segment format version 2: int8-coded graph traversal with exact rescoring, groups
//! stored as contiguous local ranges, the id lookup, and the version policy (version 1 files
//! open as they are; a newer version is `Incompatible` and left alone).
//!
//! Oracles: brute force over the written `GraphParts` (`index::exact`), and the stored
//! `f32` vectors for every returned distance. Graphs come from the real mutable segment
//! (hnsw_rs), so the traversal is measured on the graphs the engine seals.

use std::collections::BTreeSet;
use std::path::Path;

use d1vec::index::exact::{top_k, top_k_matrix};
use d1vec::index::mutable::MutableSegment;
use d1vec::index::segment::{
    Group, Memory, SealedSegment, SearchScratch, SegmentError, FORMAT_VERSION, READABLE_VERSIONS,
};
use d1vec::index::{Allow, GraphParams, GraphParts, Hit, IdBitset, Metric};
use proptest::prelude::*;

const METRICS: [Metric; 3] = [Metric::Cosine, Metric::Euclidean, Metric::DotProduct];

/// splitmix64: a small deterministic generator.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn gauss(&mut self) -> f32 {
        let (u, v) = (self.unit(), self.unit());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// `n` points (then `queries` more from the same distribution) around 32 gaussian centres,
/// prepared for `metric`: unit length for cosine; for dot-product, lengths spread over
/// 0.5..1.5 so that the norm matters.
fn clustered(metric: Metric, n: usize, dims: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng(seed);
    let centres: Vec<Vec<f32>> = (0..32)
        .map(|_| (0..dims).map(|_| rng.gauss()).collect())
        .collect();
    let mut out = Vec::with_capacity(n * dims);
    for _ in 0..n {
        let c = &centres[rng.below(centres.len())];
        let mut v: Vec<f32> = c.iter().map(|x| x + 0.6 * rng.gauss()).collect();
        if metric != Metric::Euclidean {
            d1vec::index::distance::normalize_in_place(&mut v);
        }
        if metric == Metric::DotProduct {
            let s = 0.5 + rng.unit() as f32;
            v.iter_mut().for_each(|x| *x *= s);
        }
        out.extend(v);
    }
    out
}

/// A graph built by the mutable segment over `vectors`, ids `3i + 7` (gaps, ascending).
fn build(metric: Metric, dims: usize, vectors: &[f32]) -> GraphParts {
    let n = vectors.len() / dims;
    let ids: Vec<u64> = (0..n as u64).map(|i| 3 * i + 7).collect();
    let rows: Vec<(u64, &[f32])> = ids
        .iter()
        .copied()
        .zip(vectors.chunks_exact(dims))
        .collect();
    let params = GraphParams {
        m: 16,
        ef_construction: 100,
    };
    let mut seg = MutableSegment::new(dims, metric, params, n.max(1));
    seg.insert(&rows).unwrap();
    let parts = seg.to_parts();
    assert_eq!(parts.ids, ids);
    parts
}

fn recall(got: &[Hit], want: &[Hit], k: usize) -> f64 {
    let want: Vec<u64> = want.iter().take(k).map(|h| h.id).collect();
    let found = got.iter().filter(|h| want.contains(&h.id)).count();
    found as f64 / want.len().max(1) as f64
}

/// The stored vector of `id` in `parts`.
fn vector_of(parts: &GraphParts, id: u64) -> &[f32] {
    let i = parts.ids.binary_search(&id).unwrap();
    &parts.vectors[i * parts.dims..(i + 1) * parts.dims]
}

/// Every returned distance is the exact f32 distance to the written vector (to 1e-6),
/// hits are sorted by (distance, id) and unique.
#[track_caller]
fn assert_exact_scores(parts: &GraphParts, q: &[f32], hits: &[Hit]) {
    for w in hits.windows(2) {
        assert!((w[0].distance, w[0].id) < (w[1].distance, w[1].id), "{w:?}");
    }
    for h in hits {
        let exact = parts.metric.distance(q, vector_of(parts, h.id)) + 0.0;
        assert!(
            (h.distance - exact).abs() <= 1e-6 * exact.abs().max(1.0),
            "id {}: {} but exact {exact}",
            h.id,
            h.distance
        );
    }
}

/// Recall@10 of quantized traversal + rescoring against brute force, every metric, both
/// memory modes (which must answer identically).
fn check_recall(n: usize, dims: usize, queries: usize, ef: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut scratch = SearchScratch::new();
    for metric in METRICS {
        let seed = 40 + u64::from(metric.code()) + dims as u64;
        let all = clustered(metric, n + queries, dims, seed);
        let (data, qs) = all.split_at(n * dims);
        let parts = build(metric, dims, data);
        let path = dir.path().join(format!("{}.seg", metric.as_str()));
        SealedSegment::write(&path, &parts, 1, &[]).unwrap();
        let mapped = SealedSegment::open(&path).unwrap();
        let resident = SealedSegment::open_with(&path, Memory::Resident).unwrap();
        mapped.verify().unwrap();
        assert_eq!(mapped.version(), FORMAT_VERSION);
        assert!(mapped.has_codes());
        assert_eq!(resident.memory(), Memory::Resident);
        let mut total = 0.0;
        for q in qs.chunks_exact(dims) {
            let want = top_k_matrix(metric, q, &parts.ids, &parts.vectors, dims, 10, None);
            let got = mapped.search(q, 10, ef, None, &mut scratch);
            assert_eq!(got.len(), 10);
            assert_exact_scores(&parts, q, &got);
            assert_eq!(resident.search(q, 10, ef, None, &mut scratch), got);
            total += recall(&got, &want, 10);
        }
        let mean = total / queries as f64;
        eprintln!("{n} x {dims} {metric:?}: recall@10 at ef {ef} = {mean:.3}");
        assert!(
            mean >= 0.95,
            "{metric:?} {n}x{dims}: recall@10 {mean} at ef {ef}"
        );
    }
}

#[test]
fn quantized_recall_5000_x_128() {
    check_recall(5000, 128, 100, 64);
}

#[test]
fn quantized_recall_1000_x_1536() {
    check_recall(1000, 1536, 40, 64);
}

/// Ids of `parts` split into groups of the given sizes (the rest in no group).
fn split_groups(parts: &GraphParts, sizes: &[usize], seed: u64) -> Vec<Vec<u64>> {
    let mut ids = parts.ids.clone();
    let mut rng = Rng(seed);
    for i in (1..ids.len()).rev() {
        ids.swap(i, rng.below(i + 1));
    }
    let mut out = Vec::new();
    let mut at = 0;
    for &s in sizes {
        let end = (at + s).min(ids.len());
        out.push(ids[at..end].to_vec());
        at = end;
    }
    out
}

struct Odd;

impl Allow for Odd {
    fn allows(&self, id: u64) -> bool {
        id % 2 == 1
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Each group is one contiguous range holding exactly its ids; a scan of that range
    /// equals brute force over the group's vectors (with and without an allow-set), after
    /// a reopen in either memory mode; empty groups are absent.
    #[test]
    fn group_scan_equals_brute_force(
        sizes in proptest::collection::vec(prop_oneof![Just(0usize), Just(1usize), 2usize..80], 0..6),
        extra in 0usize..40,
        metric in prop_oneof![Just(Metric::Cosine), Just(Metric::Euclidean), Just(Metric::DotProduct)],
        seed in any::<u64>(),
    ) {
        let dims = 12;
        let n = sizes.iter().sum::<usize>() + extra;
        prop_assume!(n > 0);
        let all = clustered(metric, n + 3, dims, seed);
        let (data, qs) = all.split_at(n * dims);
        let parts = build(metric, dims, data);
        let groups = split_groups(&parts, &sizes, seed ^ 1);
        let labels: Vec<Vec<u8>> = (0..groups.len()).map(|g| format!("ns-{}", (g * 7) % 10).into_bytes()).collect();
        // Labels may repeat in this scheme (g and g + 10); keep the first of each.
        let mut seen = BTreeSet::new();
        let given: Vec<Group<'_>> = groups.iter().zip(&labels)
            .filter(|(_, l)| seen.insert(l.to_vec()))
            .map(|(ids, label)| Group { label, ids })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.seg");
        SealedSegment::write(&path, &parts, 0, &given).unwrap();
        for memory in [Memory::Mapped, Memory::Resident] {
            let seg = SealedSegment::open_with(&path, memory).unwrap();
            seg.verify().unwrap();
            let mut covered = 0u32;
            let mut stored: Vec<&[u8]> = Vec::new();
            for g in &given {
                let Some(range) = seg.group(g.label) else {
                    prop_assert!(g.ids.is_empty(), "group {:?} missing", g.label);
                    continue;
                };
                stored.push(g.label);
                prop_assert_eq!(range.len(), g.ids.len());
                covered += range.len() as u32;
                let mut in_range: Vec<u64> = seg.ids()[range.start as usize..range.end as usize].to_vec();
                in_range.sort_unstable();
                let mut want_ids = g.ids.to_vec();
                want_ids.sort_unstable();
                prop_assert_eq!(&in_range, &want_ids);
                for q in qs.chunks_exact(dims) {
                    for (k, allow) in [(1, None), (5, None), (1000, None), (4, Some(&Odd as &dyn Allow))] {
                        let rows = want_ids.iter()
                            .filter(|&&id| allow.is_none_or(|a| a.allows(id)))
                            .map(|&id| (id, vector_of(&parts, id)));
                        let want = top_k(metric, q, rows, k);
                        let got = seg.scan(q, range.clone(), k, allow);
                        prop_assert_eq!(got, want);
                    }
                }
            }
            stored.sort();
            let listed: Vec<&[u8]> = seg.groups().into_iter().map(|(l, _)| l).collect();
            prop_assert_eq!(listed, stored);
            // Ids in no group come last; every id maps to the local holding it.
            prop_assert!(seg.groups().iter().all(|(_, r)| r.end <= covered));
            for (local, &id) in seg.ids().iter().enumerate() {
                prop_assert_eq!(seg.local_of(id), Some(local as u32));
                prop_assert_eq!(seg.vector(local as u32), vector_of(&parts, id));
            }
            prop_assert_eq!(seg.sorted_ids(), parts.ids.as_slice());
            prop_assert_eq!(seg.group(b"absent"), None);
            // Scans clamp out-of-range bounds.
            let q = &qs[..dims];
            prop_assert_eq!(seg.scan(q, 0..u32::MAX, 3, None), top_k(metric, q, parts.ids.iter().map(|&id| (id, vector_of(&parts, id))), 3));
        }
    }
}

#[test]
fn write_refuses_inconsistent_groups_and_leaves_no_file() {
    let dims = 4;
    let data = clustered(Metric::Cosine, 30, dims, 3);
    let parts = build(Metric::Cosine, dims, &data);
    let (a, b) = (&parts.ids[..5], &parts.ids[5..9]);
    let long = vec![b'x'; d1vec::index::segment::MAX_LABEL + 1];
    let twice = [parts.ids[0], parts.ids[0]];
    let cases: Vec<(&str, Vec<Group<'_>>)> = vec![
        (
            "label twice",
            vec![
                Group {
                    label: b"t",
                    ids: a,
                },
                Group {
                    label: b"t",
                    ids: b,
                },
            ],
        ),
        (
            "id twice",
            vec![Group {
                label: b"t",
                ids: &twice,
            }],
        ),
        (
            "id in two groups",
            vec![
                Group {
                    label: b"t",
                    ids: a,
                },
                Group {
                    label: b"u",
                    ids: &a[..1],
                },
            ],
        ),
        (
            "unknown id",
            vec![Group {
                label: b"t",
                ids: &[1],
            }],
        ),
        (
            "label too long",
            vec![Group {
                label: &long,
                ids: a,
            }],
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (what, groups) in cases {
        let path = dir.path().join("bad.seg");
        match SealedSegment::write(&path, &parts, 0, &groups) {
            Err(SegmentError::Corrupt { reason, .. }) => {
                assert!(reason.contains("not written"), "{what}: {reason}")
            }
            other => panic!("{what}: {other:?}"),
        }
        assert!(
            std::fs::read_dir(dir.path()).unwrap().next().is_none(),
            "{what} left a file"
        );
    }
}

/// The corpus of the segment fuzzer holds files written by the version 1 writer (before
/// version 2 existed); they open as they are and answer exactly on a wide beam.
#[test]
fn version_1_files_open_and_search() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/segment_open");
    let mut scratch = SearchScratch::new();
    let mut opened = 0;
    for name in ["cosine_12x4", "dot_30x3", "l2_40x2", "one"] {
        for memory in [Memory::Mapped, Memory::Resident] {
            let seg = SealedSegment::open_with(&corpus.join(name), memory).unwrap();
            seg.verify().unwrap();
            assert_eq!(seg.version(), 1, "{name}");
            assert!(!seg.has_codes());
            assert!(seg.groups().is_empty() && seg.group(b"").is_none());
            assert_eq!(seg.sorted_ids(), seg.ids());
            let dims = seg.dims();
            let mut rng = Rng(9);
            for _ in 0..5 {
                let q: Vec<f32> = (0..dims).map(|_| rng.gauss()).collect();
                let want = top_k_matrix(seg.metric(), &q, seg.ids(), seg.vectors(), dims, 3, None);
                let got = seg.search(&q, 3, 64, None, &mut scratch);
                assert_eq!(got, want[..got.len()], "{name}");
                assert_eq!(got.len(), want.len().min(3));
                assert_eq!(seg.scan(&q, 0..seg.len() as u32, 3, None), want);
            }
            opened += 1;
        }
    }
    assert_eq!(opened, 8);
}

/// A file from a newer d1vec: `Incompatible` naming both versions, in either memory mode,
/// and the file is left byte for byte as it was.
#[test]
fn newer_version_is_incompatible_and_left_alone() {
    let dims = 4;
    let parts = build(
        Metric::Euclidean,
        dims,
        &clustered(Metric::Euclidean, 20, dims, 5),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.seg");
    SealedSegment::write(&path, &parts, 0, &[]).unwrap();
    for version in [3u32, 7, u32::MAX] {
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[8..12].copy_from_slice(&version.to_le_bytes());
        // A newer writer may also change the header's length: cut the file short too.
        for len in [bytes.len(), 200, 48] {
            let file = dir.path().join(format!("v{version}-{len}.seg"));
            std::fs::write(&file, &bytes[..len]).unwrap();
            for memory in [Memory::Mapped, Memory::Resident] {
                match SealedSegment::open_with(&file, memory) {
                    Err(e @ SegmentError::Incompatible { .. }) => {
                        let SegmentError::Incompatible {
                            ref path,
                            found,
                            ref supported,
                        } = e
                        else {
                            unreachable!()
                        };
                        assert_eq!((path, found), (&file, version));
                        assert_eq!(supported, &READABLE_VERSIONS);
                        let text = e.to_string();
                        assert!(
                            text.contains(&version.to_string()) && text.contains("1..=2"),
                            "{text}"
                        );
                    }
                    other => panic!("version {version}: {other:?}"),
                }
            }
            assert_eq!(std::fs::read(&file).unwrap(), &bytes[..len]);
        }
    }
}

/// Graph order: a group's rows are one contiguous block of the vectors section, and the
/// allow-set path still returns only allowed ids with exact distances.
#[test]
fn search_with_allow_set_over_groups() {
    let dims = 32;
    let metric = Metric::Cosine;
    let all = clustered(metric, 2020, dims, 11);
    let (data, qs) = all.split_at(2000 * dims);
    let parts = build(metric, dims, data);
    let groups = split_groups(&parts, &[500, 700, 1], 4);
    let given: Vec<Group<'_>> = groups
        .iter()
        .zip([&b"b"[..], b"a", b"c"])
        .map(|(ids, label)| Group { label, ids })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.seg");
    SealedSegment::write(&path, &parts, 0, &given).unwrap();
    let seg = SealedSegment::open(&path).unwrap();
    assert_eq!(seg.group(b"a"), Some(0..700));
    assert_eq!(seg.group(b"b"), Some(700..1200));
    assert_eq!(seg.group(b"c"), Some(1200..1201));
    let allow: IdBitset = groups[0].iter().copied().collect();
    let mut scratch = SearchScratch::new();
    let mut total = 0.0;
    for q in qs.chunks_exact(dims) {
        let rows = groups[0].iter().map(|&id| (id, vector_of(&parts, id)));
        let want = top_k(metric, q, rows, 10);
        let got = seg.search(q, 10, 64, Some(&allow), &mut scratch);
        assert!(got.iter().all(|h| allow.contains(h.id)));
        assert_exact_scores(&parts, q, &got);
        assert_eq!(seg.scan(q, 700..1200, 10, None), want);
        total += recall(&got, &want, 10);
    }
    assert!(total / 20.0 >= 0.9, "recall {}", total / 20.0);
}
