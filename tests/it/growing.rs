//! d1vec's own graph (`index::growing`, inside the mutable segment) against two oracles that
//! differ from it in one way each:
//! - `hnsw_rs` built on the same vectors with the same `M` and `efConstruction` (an
//!   independent HNSW over `f32` distances): at the same search `ef`, d1vec's recall@10
//!   against brute force must be at least `hnsw_rs`'s minus a small margin;
//! - the same segment built one row at a time (never in parallel): the parallel build must
//!   reach the same recall within a small margin.
//!
//! Brute force (`Metric::distance` over every vector) is the truth for both.

use hnsw_rs::prelude::{DistDot, DistL2, Distance, Hnsw};

use d1vec::index::mutable::MutableSegment;
use d1vec::index::{GraphParams, Metric};

use crate::oracle::seeded_vector;

const DIMS: usize = 96;
const N: usize = 6000;
const QUERIES: usize = 60;
const K: usize = 10;

/// `n` vectors around 30 centres (unit length for cosine), deterministic.
fn clustered(metric: Metric, n: usize, seed: u64) -> Vec<Vec<f32>> {
    let centres: Vec<Vec<f64>> = (0..30).map(|c| seeded_vector(1000 + c, DIMS)).collect();
    (0..n)
        .map(|i| {
            let noise = seeded_vector(seed * 1_000_003 + i as u64, DIMS);
            let c = &centres[i % 30];
            let mut v: Vec<f32> = c
                .iter()
                .zip(&noise)
                .map(|(a, b)| (a + 0.35 * b) as f32)
                .collect();
            if metric == Metric::Cosine {
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter_mut().for_each(|x| *x /= norm);
            }
            v
        })
        .collect()
}

fn truth(metric: Metric, data: &[Vec<f32>], q: &[f32]) -> Vec<usize> {
    let mut all: Vec<(f32, usize)> = data
        .iter()
        .enumerate()
        .map(|(i, v)| (metric.distance(q, v), i))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    all.into_iter().take(K).map(|(_, i)| i).collect()
}

fn recall(found: &[usize], truth: &[usize]) -> f64 {
    found.iter().filter(|i| truth.contains(i)).count() as f64 / truth.len() as f64
}

fn own(metric: Metric, data: &[Vec<f32>], batch: usize) -> MutableSegment {
    let mut seg = MutableSegment::new(DIMS, metric, GraphParams::default(), data.len());
    for (c, chunk) in data.chunks(batch).enumerate() {
        let rows: Vec<(u64, &[f32])> = chunk
            .iter()
            .enumerate()
            .map(|(i, v)| ((c * batch + i) as u64, v.as_slice()))
            .collect();
        seg.insert(&rows).unwrap();
    }
    seg
}

fn own_recall(seg: &MutableSegment, queries: &[Vec<f32>], truths: &[Vec<usize>], ef: usize) -> f64 {
    let total: f64 = queries
        .iter()
        .zip(truths)
        .map(|(q, t)| {
            let found: Vec<usize> = seg
                .search(q, K, ef, None)
                .iter()
                .map(|h| h.id as usize)
                .collect();
            recall(&found, t)
        })
        .sum();
    total / queries.len() as f64
}

fn peer_recall<D: Distance<f32> + Send + Sync>(
    dist: D,
    data: &[Vec<f32>],
    queries: &[Vec<f32>],
    truths: &[Vec<usize>],
    ef: usize,
) -> f64 {
    let params = GraphParams::default();
    let graph = Hnsw::new(params.m, data.len(), 16, params.ef_construction, dist);
    let rows: Vec<(&[f32], usize)> = data
        .iter()
        .enumerate()
        .map(|(i, v)| (v.as_slice(), i))
        .collect();
    for row in &rows[..1024] {
        graph.insert_slice(*row);
    }
    graph.parallel_insert_slice(&rows[1024..].to_vec());
    let total: f64 = queries
        .iter()
        .zip(truths)
        .map(|(q, t)| {
            let found: Vec<usize> = graph.search(q, K, ef).iter().map(|n| n.d_id).collect();
            recall(&found, t)
        })
        .sum();
    total / queries.len() as f64
}

fn parity(metric: Metric) {
    let data = clustered(metric, N, 1);
    let queries = clustered(metric, QUERIES, 2);
    let truths: Vec<Vec<usize>> = queries.iter().map(|q| truth(metric, &data, q)).collect();
    let parallel = own(metric, &data, 2000);
    let serial = own(metric, &data, 50);
    for ef in [16, 32, 64] {
        let mine = own_recall(&parallel, &queries, &truths, ef);
        let one_by_one = own_recall(&serial, &queries, &truths, ef);
        let peer = match metric {
            Metric::Euclidean => peer_recall(DistL2, &data, &queries, &truths, ef),
            _ => peer_recall(DistDot, &data, &queries, &truths, ef),
        };
        eprintln!("{metric:?} ef {ef}: d1vec {mine:.3}, serial {one_by_one:.3}, hnsw_rs {peer:.3}");
        assert!(
            mine >= peer - 0.03,
            "{metric:?} ef {ef}: d1vec {mine} < hnsw_rs {peer}"
        );
        assert!(
            mine >= one_by_one - 0.03,
            "{metric:?} ef {ef}: parallel {mine} < serial {one_by_one}"
        );
    }
    // At a generous ef the graph finds nearly everything.
    assert!(own_recall(&parallel, &queries, &truths, 200) >= 0.97);
}

#[test]
fn cosine_graph_matches_hnsw_rs_and_a_serial_build() {
    parity(Metric::Cosine);
}

#[test]
fn euclidean_graph_matches_hnsw_rs_and_a_serial_build() {
    parity(Metric::Euclidean);
}
