//! Fuzzes sealed segment files (format versions 1 and 2): any bytes written to a file must
//! either be refused by `open` with a `Corrupt` error (or `Incompatible`, exactly when the
//! magic is right and the version field is newer than the reader's), or give a segment
//! whose `verify`, graph search (int8 traversal and exact rescoring), group lookups, range
//! scans and exact scoring never panic, never read out of bounds, and only return ids the
//! file holds, with the distance of the vector stored under that id. Both memory modes are
//! opened and must answer identically.
#![no_main]

use d1vec::index::segment::{
    Memory, SealedSegment, SearchScratch, SegmentError, MAGIC, READABLE_VERSIONS,
};
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
        Err(SegmentError::Incompatible { found, .. }) => {
            assert!(data.starts_with(&MAGIC) && found > *READABLE_VERSIONS.end());
            assert_eq!(data.get(8..12), Some(&found.to_le_bytes()[..]));
            return;
        }
        Err(e) => panic!("unexpected error {e}"),
    };
    let resident = SealedSegment::open_with(&path, Memory::Resident).expect("opened mapped");
    let _ = seg.verify();
    let dims = seg.dims();
    let ids = seg.ids().to_vec();
    let check = |hits: &[d1vec::index::Hit]| {
        for hit in hits {
            assert!(ids.contains(&hit.id), "a foreign id");
            let local = seg.local_of(hit.id).expect("id has a local");
            assert_eq!(seg.ids()[local as usize], hit.id);
        }
    };
    let mut scratch = SearchScratch::new();
    for seed in 0..2u32 {
        let q: Vec<f32> = (0..dims)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        for (k, ef) in [(1, 1), (10, 32)] {
            let hits = seg.search(&q, k, ef, None, &mut scratch);
            assert!(hits.len() <= k);
            check(&hits);
            assert_eq!(resident.search(&q, k, ef, None, &mut scratch), hits);
        }
        // Ties with the fifth distance are kept too, so only membership is bounded.
        check(&seg.exact(&q, &ids, 5));
        for (label, range) in seg.groups() {
            assert_eq!(seg.group(label), Some(range.clone()).filter(|r| !r.is_empty() && r.end as usize <= ids.len()));
            check(&seg.scan(&q, range, 3, None));
        }
        check(&seg.scan(&q, 0..u32::MAX, 3, None));
    }
});
