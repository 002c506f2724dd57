use d1vec::index::Metric;
use d1vec::vectorize::types::{QueryOptions, Vector};
use d1vec::vectorize::CreateIndex;
use std::time::Instant;
fn main() {
    let dir = tempfile::tempdir().unwrap();
    let db = d1vec::Database::open(dir.path().join("p.sqlite")).unwrap();
    db.create_index(&CreateIndex::new("x", 64, Metric::Cosine))
        .unwrap();
    let mut s = 1u64;
    let mut r = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s % 1000) as f64 / 500.0 - 1.0
    };
    let vs: Vec<Vector> = (0..5000)
        .map(|i| Vector::new(format!("p{i}"), (0..64).map(|_| r()).collect()))
        .collect();
    let idx = db.vectorize("x").unwrap();
    for c in vs.chunks(1000) {
        idx.insert(c).unwrap();
    }
    let q: Vec<f64> = (0..64).map(|_| r()).collect();
    let o = QueryOptions {
        top_k: 10,
        ..Default::default()
    };
    for round in 0..4 {
        let t = Instant::now();
        idx.query(&q, &o).unwrap();
        println!("query {round}: {:?}", t.elapsed());
        let t = Instant::now();
        db.vectorize("x")
            .unwrap()
            .upsert(&[Vector::new(
                format!("u{round}"),
                (0..64).map(|_| r()).collect(),
            )])
            .unwrap();
        println!("upsert: {:?}", t.elapsed());
        let t = Instant::now();
        db.vectorize("x").unwrap().query(&q, &o).unwrap();
        println!("query after upsert: {:?}", t.elapsed());
    }
}
