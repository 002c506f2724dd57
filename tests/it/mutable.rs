//! The mutable segment (graph on codes + stored vectors) against brute force.
//!
//! The oracle is a scan over every stored vector with `Metric::distance`; the stored vectors
//! are themselves checked against the generated data. Each metric's 5,000-vector segment is
//! built once and shared by the tests that need it.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashSet};
use std::sync::OnceLock;

use d1vec::index::mutable::{MutableError, MutableSegment};
use d1vec::index::{Allow, GraphParams, GraphParts, Hit, IdBitset, Metric};

const DIMS: usize = 64;
const N: usize = 5000;
const K: usize = 10;
const QUERIES: usize = 50;
const EF: usize = 64;
/// Spread of each cluster around its centre (centres are standard normal vectors).
const NOISE: f32 = 0.4;

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
}

fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
}

/// `n` vectors around 40 cluster centres (unit length for cosine).
fn clustered(metric: Metric, n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut centres = Rng(0xC0FFEE);
    let centres: Vec<Vec<f32>> = (0..40)
        .map(|_| (0..DIMS).map(|_| centres.gauss()).collect())
        .collect();
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| {
            let c = &centres[(rng.next_u64() % 40) as usize];
            let mut v: Vec<f32> = c.iter().map(|x| x + NOISE * rng.gauss()).collect();
            if metric == Metric::Cosine {
                normalise(&mut v);
            }
            v
        })
        .collect()
}

/// Sparse, ascending ids: the segment must not assume ids are dense.
fn id_of(i: usize) -> u64 {
    7 + 3 * i as u64
}

struct Fixture {
    seg: MutableSegment,
    data: Vec<Vec<f32>>,
    queries: Vec<Vec<f32>>,
}

fn fixture(metric: Metric) -> &'static Fixture {
    static CELLS: [OnceLock<Fixture>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let slot = METRICS.iter().position(|&m| m == metric).unwrap();
    CELLS[slot].get_or_init(|| {
        let data = clustered(metric, N, 1 + slot as u64);
        let queries = clustered(metric, QUERIES, 100 + slot as u64);
        let mut seg = MutableSegment::new(DIMS, metric, GraphParams::default(), N);
        // Batch sizes exercise the serial prefix, a batch that crosses it (then goes parallel),
        // full parallel batches and a small serial batch.
        let mut start = 0;
        for size in [700, 1300, 1000, 1000, 900, 100] {
            let rows: Vec<(u64, &[f32])> = (start..start + size)
                .map(|i| (id_of(i), data[i].as_slice()))
                .collect();
            seg.insert(&rows).unwrap();
            start += size;
        }
        assert_eq!(start, N);
        Fixture { seg, data, queries }
    })
}

fn cmp_hit(a: &Hit, b: &Hit) -> Ordering {
    a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id))
}

/// The oracle: every stored vector scored with `Metric::distance`, the `k` closest allowed.
fn brute(seg: &MutableSegment, query: &[f32], k: usize, allow: impl Fn(u64) -> bool) -> Vec<Hit> {
    let mut all: Vec<Hit> = seg
        .ids()
        .iter()
        .filter(|&&id| allow(id))
        .map(|&id| Hit {
            id,
            distance: seg.metric().distance(query, seg.vector(id).unwrap()),
        })
        .collect();
    all.sort_by(cmp_hit);
    all.truncate(k);
    all
}

fn recall(found: &[u64], truth: &[Hit]) -> f64 {
    if truth.is_empty() {
        return 1.0;
    }
    let truth: HashSet<u64> = truth.iter().map(|h| h.id).collect();
    found.iter().filter(|id| truth.contains(id)).count() as f64 / truth.len() as f64
}

/// Hits are sorted, distinct, and carry the exact distance to the stored vector.
fn check_hits(seg: &MutableSegment, query: &[f32], hits: &[Hit]) {
    let mut ids = HashSet::new();
    for h in hits {
        assert!(ids.insert(h.id), "duplicate id {}", h.id);
        let stored = seg.vector(h.id).expect("hit id is stored");
        let exact = seg.metric().distance(query, stored);
        assert_eq!(
            h.distance.to_bits(),
            exact.to_bits(),
            "distance of {}",
            h.id
        );
    }
    assert!(hits
        .windows(2)
        .all(|w| cmp_hit(&w[0], &w[1]) != Ordering::Greater));
}

fn check_recall(metric: Metric) {
    let fx = fixture(metric);
    let seg = &fx.seg;
    assert_eq!(seg.len(), N);
    let mut total = 0.0;
    for q in &fx.queries {
        let truth = brute(seg, q, K, |_| true);
        // `exact` over every id is the brute force.
        assert_eq!(seg.exact(q, seg.ids(), K), truth);
        let hits = seg.search(q, K, EF, None);
        assert_eq!(hits.len(), K);
        check_hits(seg, q, &hits);
        let ids: Vec<u64> = hits.iter().map(|h| h.id).collect();
        total += recall(&ids, &truth);
    }
    let mean = total / QUERIES as f64;
    eprintln!("{metric:?}: recall@10 {mean}");
    assert!(mean >= 0.95, "{metric:?}: recall@10 {mean}");
}

#[test]
fn recall_cosine() {
    check_recall(Metric::Cosine);
}

#[test]
fn recall_euclidean() {
    check_recall(Metric::Euclidean);
}

#[test]
fn recall_dot_product() {
    check_recall(Metric::DotProduct);
}

#[test]
fn stores_the_inserted_vectors() {
    let fx = fixture(Metric::Euclidean);
    let want: Vec<u64> = (0..N).map(id_of).collect();
    assert_eq!(fx.seg.ids(), want.as_slice());
    for (i, v) in fx.data.iter().enumerate() {
        assert_eq!(fx.seg.vector(id_of(i)), Some(v.as_slice()));
    }
    assert_eq!(fx.seg.vector(0), None);
    assert_eq!(fx.seg.vector(id_of(1) - 1), None);
    assert_eq!(fx.seg.vector(id_of(N)), None);
}

#[test]
fn exact_skips_foreign_ids_and_counts_repeats_once() {
    let fx = fixture(Metric::Cosine);
    let q = &fx.queries[0];
    let some: Vec<u64> = (0..N).step_by(7).map(id_of).collect();
    let mut asked: Vec<u64> = some.iter().rev().copied().collect();
    asked.extend([1, 2, id_of(N) + 5]); // not in the segment
    asked.extend(some.iter().take(30)); // repeats
    let set: HashSet<u64> = some.iter().copied().collect();
    let truth = brute(&fx.seg, q, K, |id| set.contains(&id));
    assert_eq!(fx.seg.exact(q, &asked, K), truth);
    assert_eq!(fx.seg.exact(q, &asked, 0), vec![]);
    assert_eq!(fx.seg.exact(q, &[], K), vec![]);
    // k larger than the candidates: all of them, sorted.
    assert_eq!(
        fx.seg.exact(q, &some, N),
        brute(&fx.seg, q, N, |id| set.contains(&id))
    );
}

/// A deterministic pseudo-random choice of ids: `1 / every` of them.
fn allow_set(seg: &MutableSegment, every: u64) -> IdBitset {
    seg.ids()
        .iter()
        .copied()
        .filter(|id| id.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) % every == 0)
        .collect()
}

fn check_filtered(metric: Metric) {
    let fx = fixture(metric);
    let seg = &fx.seg;
    for (every, floor) in [(2, 0.9), (20, 0.9)] {
        let allow = allow_set(seg, every);
        assert!(allow.len() > K);
        let mut total = 0.0;
        for q in &fx.queries {
            let hits = seg.search(q, K, EF, Some(&allow));
            assert!(!hits.is_empty());
            assert!(
                hits.iter().all(|h| allow.contains(h.id)),
                "disallowed id returned"
            );
            check_hits(seg, q, &hits);
            let truth = brute(seg, q, K, |id| allow.contains(id));
            assert_eq!(hits.len(), K, "a short answer must be complete");
            let ids: Vec<u64> = hits.iter().map(|h| h.id).collect();
            total += recall(&ids, &truth);
        }
        let mean = total / QUERIES as f64;
        eprintln!("{metric:?} 1/{every}: filtered recall {mean}");
        assert!(
            mean >= floor,
            "{metric:?} 1/{every}: filtered recall {mean}"
        );
    }
}

#[test]
fn filtered_cosine() {
    check_filtered(Metric::Cosine);
}

#[test]
fn filtered_euclidean() {
    check_filtered(Metric::Euclidean);
}

#[test]
fn filtered_dot_product() {
    check_filtered(Metric::DotProduct);
}

/// An allow-set given as a closure-backed type, not a bitset.
struct Only(Vec<u64>);

impl Allow for Only {
    fn allows(&self, id: u64) -> bool {
        self.0.contains(&id)
    }
}

#[test]
fn tiny_allow_sets_get_the_exact_answer() {
    let fx = fixture(Metric::DotProduct);
    let seg = &fx.seg;
    let few = Only(vec![id_of(3), id_of(2500), id_of(4999)]);
    for q in fx.queries.iter().take(10) {
        let hits = seg.search(q, K, EF, Some(&few));
        assert_eq!(hits, brute(seg, q, K, |id| few.allows(id)));
    }
    let none = Only(vec![]);
    assert_eq!(seg.search(&fx.queries[0], K, EF, Some(&none)), vec![]);
}

/// A plain HNSW search written against the exported arrays only: greedy descent on the upper
/// layers, then a best-first search with a bounded result list on layer 0.
fn beam_search(parts: &GraphParts, query: &[f32], k: usize, ef: usize) -> Vec<u64> {
    #[derive(PartialEq)]
    struct Near(f32, u32);
    impl Eq for Near {}
    impl PartialOrd for Near {
        fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
            Some(self.cmp(other))
        }
    }
    impl Ord for Near {
        fn cmp(&self, other: &Self) -> Ordering {
            self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
        }
    }

    let d = parts.dims;
    let dist = |node: u32| {
        let at = node as usize * d;
        parts.metric.distance(query, &parts.vectors[at..at + d])
    };
    let Some(mut cur) = parts.entry_point else {
        return Vec::new();
    };
    let mut cur_d = dist(cur);
    for layer in (1..=usize::from(parts.levels[cur as usize])).rev() {
        loop {
            let mut moved = false;
            for &nb in &parts.neighbors[cur as usize][layer] {
                let nd = dist(nb);
                if nd < cur_d {
                    (cur, cur_d, moved) = (nb, nd, true);
                }
            }
            if !moved {
                break;
            }
        }
    }
    let mut visited = vec![false; parts.ids.len()];
    visited[cur as usize] = true;
    let mut frontier = BinaryHeap::from([std::cmp::Reverse(Near(cur_d, cur))]);
    let mut best = BinaryHeap::from([Near(cur_d, cur)]);
    while let Some(std::cmp::Reverse(Near(cd, c))) = frontier.pop() {
        if best.len() >= ef && cd > best.peek().unwrap().0 {
            break;
        }
        for &nb in &parts.neighbors[c as usize][0] {
            if std::mem::replace(&mut visited[nb as usize], true) {
                continue;
            }
            let nd = dist(nb);
            if best.len() < ef || nd < best.peek().unwrap().0 {
                frontier.push(std::cmp::Reverse(Near(nd, nb)));
                best.push(Near(nd, nb));
                if best.len() > ef {
                    best.pop();
                }
            }
        }
    }
    let mut out = best.into_sorted_vec();
    out.truncate(k);
    out.into_iter().map(|n| parts.ids[n.1 as usize]).collect()
}

fn check_parts(metric: Metric) {
    let fx = fixture(metric);
    let seg = &fx.seg;
    let parts = seg.to_parts();
    let n = parts.ids.len();
    assert_eq!(n, N);
    assert_eq!((parts.dims, parts.metric, parts.m), (DIMS, metric, 16));
    assert_eq!(parts.ids.as_slice(), seg.ids());
    assert!(parts.ids.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(parts.vectors.len(), n * DIMS);
    for (i, chunk) in parts.vectors.chunks(DIMS).enumerate() {
        assert_eq!(chunk, fx.data[i].as_slice());
    }
    assert_eq!(parts.levels.len(), n);
    assert_eq!(parts.neighbors.len(), n);
    let top = *parts.levels.iter().max().unwrap();
    // With M = 16 about one node in 16 is drawn above layer 0.
    let upper = parts.levels.iter().filter(|&&l| l > 0).count();
    assert!(
        top >= 1 && (150..600).contains(&upper),
        "top {top}, upper {upper}"
    );
    let entry = parts.entry_point.expect("entry point") as usize;
    assert_eq!(parts.levels[entry], top);
    let mut edges = 0;
    for (node, layers) in parts.neighbors.iter().enumerate() {
        assert_eq!(
            layers.len(),
            usize::from(parts.levels[node]) + 1,
            "node {node}"
        );
        for (layer, list) in layers.iter().enumerate() {
            let cap = if layer == 0 { 2 * parts.m } else { parts.m };
            assert!(list.len() <= cap);
            let distinct: HashSet<u32> = list.iter().copied().collect();
            assert_eq!(distinct.len(), list.len(), "duplicate neighbour of {node}");
            for &nb in list {
                assert!((nb as usize) < n);
                assert_ne!(nb as usize, node);
                assert!(usize::from(parts.levels[nb as usize]) >= layer);
            }
            edges += list.len();
        }
    }
    assert!(edges >= n * 8, "too few edges: {edges}");
    // Every node is reachable on layer 0 from the entry point (the export links the nodes
    // the graph left without an incoming link, which dot-product data can leave).
    let mut seen = vec![false; n];
    let mut stack = vec![entry];
    seen[entry] = true;
    while let Some(node) = stack.pop() {
        for &nb in &parts.neighbors[node][0] {
            if !std::mem::replace(&mut seen[nb as usize], true) {
                stack.push(nb as usize);
            }
        }
    }
    let reached = seen.iter().filter(|&&s| s).count();
    assert_eq!(reached, n, "layer 0 reaches {reached} of {n}");
    // The exported arrays alone make a usable graph.
    let mut total = 0.0;
    for q in &fx.queries {
        let found = beam_search(&parts, q, K, EF);
        total += recall(&found, &brute(seg, q, K, |_| true));
    }
    let mean = total / QUERIES as f64;
    eprintln!("{metric:?}: exported-graph recall@10 {mean}");
    assert!(mean >= 0.9, "{metric:?}: exported-graph recall@10 {mean}");
}

#[test]
fn parts_cosine() {
    check_parts(Metric::Cosine);
}

#[test]
fn parts_euclidean() {
    check_parts(Metric::Euclidean);
}

#[test]
fn parts_dot_product() {
    check_parts(Metric::DotProduct);
}

fn small(metric: Metric) -> MutableSegment {
    let mut seg = MutableSegment::new(4, metric, GraphParams::default(), 0);
    seg.insert(&[(10, &[0.5, 0.5, 0.5, 0.5]), (20, &[1.0, 0.0, 0.0, 0.0])])
        .unwrap();
    seg
}

#[test]
fn misuse_is_an_error_and_changes_nothing() {
    let mut seg = small(Metric::Euclidean);
    let ok = [0.0f32; 4];
    assert_eq!(
        seg.insert(&[(30, &[1.0, 2.0, 3.0])]),
        Err(MutableError::Dimensions {
            id: 30,
            expected: 4,
            got: 3
        })
    );
    assert_eq!(
        seg.insert(&[(30, &ok), (31, &[0.0; 5])]),
        Err(MutableError::Dimensions {
            id: 31,
            expected: 4,
            got: 5
        })
    );
    assert_eq!(
        seg.insert(&[(20, &ok)]),
        Err(MutableError::IdOrder {
            id: 20,
            previous: 20
        })
    );
    assert_eq!(
        seg.insert(&[(5, &ok)]),
        Err(MutableError::IdOrder {
            id: 5,
            previous: 20
        })
    );
    assert_eq!(
        seg.insert(&[(40, &ok), (40, &ok)]),
        Err(MutableError::IdOrder {
            id: 40,
            previous: 40
        })
    );
    assert_eq!(
        seg.insert(&[(50, &ok), (45, &ok)]),
        Err(MutableError::IdOrder {
            id: 45,
            previous: 50
        })
    );
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        assert_eq!(
            seg.insert(&[(30, &ok), (31, &[0.0, bad, 0.0, 0.0])]),
            Err(MutableError::NonFinite { id: 31 })
        );
    }
    // Nothing of the refused batches went in: 30 is still free.
    assert_eq!(seg.ids(), &[10, 20]);
    assert_eq!(seg.vector(30), None);
    seg.insert(&[(30, &ok)]).unwrap();
    assert_eq!(seg.ids(), &[10, 20, 30]);
    assert_eq!(seg.to_parts().ids, vec![10, 20, 30]);
    assert_eq!(seg.search(&ok, 10, 10, None).len(), 3);
    assert!(seg.insert(&[]).is_ok());
    assert!(!MutableError::NonFinite { id: 1 }.to_string().is_empty());
}

#[test]
fn bad_queries_find_nothing() {
    let seg = small(Metric::Cosine);
    let q = [1.0, 0.0, 0.0, 0.0];
    assert_eq!(seg.search(&q, 0, 10, None), vec![]);
    assert_eq!(seg.search(&q[..3], 5, 10, None), vec![]);
    assert_eq!(seg.search(&[f32::NAN, 0.0, 0.0, 0.0], 5, 10, None), vec![]);
    assert_eq!(
        seg.exact(&[f32::INFINITY, 0.0, 0.0, 0.0], &[10, 20], 5),
        vec![]
    );
    assert_eq!(seg.exact(&q[..2], &[10, 20], 5), vec![]);
    // ef below k is raised to k.
    let hits = seg.search(&q, 2, 0, None);
    assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), vec![20, 10]);
    assert_eq!(hits, seg.exact(&q, &[10, 20], 2));
}

#[test]
fn empty_and_single() {
    let seg = MutableSegment::new(3, Metric::DotProduct, GraphParams::default(), 0);
    assert!(seg.is_empty());
    assert_eq!(seg.len(), 0);
    assert_eq!(seg.search(&[1.0, 0.0, 0.0], 5, 10, None), vec![]);
    assert_eq!(seg.exact(&[1.0, 0.0, 0.0], &[1, 2], 5), vec![]);
    let parts = seg.to_parts();
    assert_eq!(parts.entry_point, None);
    assert!(parts.ids.is_empty() && parts.vectors.is_empty());
    assert!(parts.levels.is_empty() && parts.neighbors.is_empty());

    let mut seg = seg;
    seg.insert(&[(u64::MAX, &[1.0, 2.0, 3.0])]).unwrap();
    let hits = seg.search(&[1.0, 0.0, 0.0], 5, 10, None);
    assert_eq!(
        hits,
        vec![Hit {
            id: u64::MAX,
            distance: -1.0
        }]
    );
    let parts = seg.to_parts();
    assert_eq!(parts.entry_point, Some(0));
    assert_eq!(parts.neighbors[0].len(), usize::from(parts.levels[0]) + 1);
    assert!(parts.neighbors[0].iter().all(|l| l.is_empty()));
    // Nothing can follow u64::MAX.
    assert!(matches!(
        seg.insert(&[(u64::MAX, &[0.0; 3])]),
        Err(MutableError::IdOrder { .. })
    ));
}

#[test]
fn extreme_values_do_not_panic() {
    // Finite values whose products overflow: dot products become +-inf or NaN, squared L2
    // +inf. The graph must order such estimates without panicking.
    let mut rng = Rng(77);
    let data: Vec<Vec<f32>> = (0..400)
        .map(|i| {
            (0..8)
                .map(|_| {
                    let s = if rng.next_u64() % 2 == 0 { 1.0 } else { -1.0 };
                    if i % 3 == 0 {
                        s * 3.0e38
                    } else {
                        s * rng.unit() as f32
                    }
                })
                .collect()
        })
        .collect();
    for metric in [Metric::DotProduct, Metric::Euclidean, Metric::Cosine] {
        let mut seg = MutableSegment::new(8, metric, GraphParams::default(), 400);
        let rows: Vec<(u64, &[f32])> = data
            .iter()
            .enumerate()
            .map(|(i, v)| (i as u64, v.as_slice()))
            .collect();
        seg.insert(&rows).unwrap();
        for q in data.iter().take(20) {
            let hits = seg.search(q, 5, 20, None);
            assert_eq!(hits.len(), 5);
            for h in &hits {
                let d = metric.distance(q, seg.vector(h.id).unwrap());
                assert_eq!(h.distance.to_bits(), d.to_bits());
            }
        }
        let parts = seg.to_parts();
        assert_eq!(parts.ids.len(), 400);
    }
}

#[test]
fn parameters_are_clamped_to_what_the_format_supports() {
    // The file format holds M in 2..=255, and a build ef below M would make a poor graph.
    let data = clustered(Metric::Euclidean, 300, 5);
    let rows: Vec<(u64, &[f32])> = data
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64, v.as_slice()))
        .collect();
    for (m, ef, want_m) in [(1000, 0, 255), (0, 1, 2), (1, 8, 2)] {
        let params = GraphParams {
            m,
            ef_construction: ef,
        };
        let mut seg = MutableSegment::new(DIMS, Metric::Euclidean, params, usize::MAX);
        seg.insert(&rows).unwrap();
        let parts = seg.to_parts();
        assert_eq!(parts.m, want_m);
        assert_eq!(parts.ids.len(), 300);
        // With M = 2 the heuristic keeps two or three links a node, and a beam of 50 can
        // stop before it reaches a vector (hnswlib's construction does the same). What the
        // segment guarantees is reachability: with ef >= len the beam visits every node it
        // can reach, and the orphan links make that every node.
        let ef = if want_m == 2 { 300 } else { 50 };
        for at in [0, 17, 150, 299] {
            let hits = seg.search(&data[at], 5, ef, None);
            assert_eq!(hits.len(), 5);
            assert_eq!(hits[0].id, at as u64, "M {want_m}: vector {at} not found");
        }
    }
}

#[test]
fn segment_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<MutableSegment>();
    check::<MutableError>();
}
