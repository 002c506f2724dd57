//! Fuzzes sealed segment files: any bytes written to a file must either be refused by
//! `open` with a `Corrupt` error, or give a segment whose `verify`, graph search and exact
//! scoring never panic, never read out of bounds, and only return ids the file holds.
#![no_main]

use d1vec::index::segment::{SealedSegment, SearchScratch, SegmentError};
use libfuzzer_sys::fuzz_target;

thread_local! {
    static DIR: std::path::PathBuf = {
        let dir = std::env::temp_dir().join(format!("d1vec-fuzz-seg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch folder");
        dir
    };
}

fuzz_target!(|data: &[u8]| {
    let path = DIR.with(|d| d.join("input.seg"));
    std::fs::write(&path, data).expect("scratch file");
    let seg = match SealedSegment::open(&path) {
        Ok(seg) => seg,
        Err(SegmentError::Corrupt { reason, .. }) => {
            assert!(!reason.is_empty());
            return;
        }
        Err(e) => panic!("unexpected error {e}"),
    };
    let _ = seg.verify();
    let dims = seg.dims();
    let ids = seg.ids().to_vec();
    let mut scratch = SearchScratch::new();
    for seed in 0..2u32 {
        let q: Vec<f32> = (0..dims)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        for (k, ef) in [(1, 1), (10, 32)] {
            for hit in seg.search(&q, k, ef, None, &mut scratch) {
                assert!(ids.contains(&hit.id), "search returned a foreign id");
            }
        }
        // Ties with the fifth distance are kept too, so only membership is bounded.
        for hit in seg.exact(&q, &ids, 5) {
            assert!(ids.contains(&hit.id), "exact returned a foreign id");
        }
    }
});
