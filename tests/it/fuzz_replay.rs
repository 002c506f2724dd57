//! Replays the committed fuzz corpora of `fuzz/corpus/{ndjson_line,segment_open}` on stable
//! Rust, checking the same properties the fuzz targets check, so CI covers every seed and
//! every input the fuzzers kept. (The filter and SQL-splitter corpora are replayed in
//! `filter.rs` and `split.rs`.)

use std::path::{Path, PathBuf};

use d1vec::index::segment::{SealedSegment, SearchScratch, SegmentError};
use d1vec::vectorize::ndjson::{parse_line, reader, write_vector, Unparsable};
use d1vec::vectorize::types::Vector;

/// Every file of one corpus folder, sorted.
fn corpus(name: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Reads `data` in `mode`: the vectors, whether an error ended the read, and the counts.
fn read_all(data: &[u8], batch: usize, mode: Unparsable) -> (Vec<Vector>, bool, usize) {
    let mut r = reader(data, batch, mode);
    let mut out = Vec::new();
    let mut failed = false;
    for item in r.by_ref() {
        match item {
            Ok(b) => {
                assert!(!b.is_empty() && b.len() <= batch.max(1));
                out.extend(b);
            }
            Err(e) => {
                assert!(!failed, "two errors");
                assert_eq!(e.code, 40023);
                failed = true;
            }
        }
    }
    (out, failed, r.discarded())
}

#[test]
fn ndjson_corpus_reads_consistently_and_round_trips() {
    let files = corpus("ndjson_line");
    assert!(files.len() >= 10, "the seed corpus is missing");
    let mut vectors = 0;
    for file in files {
        let data = std::fs::read(&file).unwrap();
        let batch = data.first().map_or(1, |&b| usize::from(b % 7));
        let (all, failed, discarded) = read_all(&data, batch, Unparsable::Discard);
        assert!(!failed, "{}", file.display());
        let (prefix, failed, _) = read_all(&data, batch, Unparsable::Error);
        assert_eq!(failed, discarded > 0, "{}", file.display());
        assert_eq!(all[..prefix.len()], prefix[..], "{}", file.display());
        for v in all
            .iter()
            .filter(|v| v.values.iter().all(|&x| (x as f32).is_finite()))
        {
            let mut line = Vec::new();
            write_vector(&mut line, v).unwrap();
            let back = parse_line(&line[..line.len() - 1], 1).unwrap().unwrap();
            assert_eq!((&back.id, &back.namespace), (&v.id, &v.namespace));
            let a: Vec<f32> = back.values.iter().map(|&x| x as f32).collect();
            let b: Vec<f32> = v.values.iter().map(|&x| x as f32).collect();
            assert_eq!(a, b, "{}", file.display());
            vectors += 1;
        }
    }
    assert!(vectors > 0, "no seed holds a readable vector");
}

#[test]
fn segment_corpus_opens_soundly_or_is_refused() {
    let files = corpus("segment_open");
    assert!(files.len() >= 5, "the seed corpus is missing");
    let (mut opened, mut verified) = (0, 0);
    for file in files {
        let seg = match SealedSegment::open(&file) {
            Ok(seg) => seg,
            Err(SegmentError::Corrupt { reason, .. }) => {
                assert!(!reason.is_empty());
                continue;
            }
            Err(e) => panic!("{}: unexpected error {e}", file.display()),
        };
        opened += 1;
        verified += usize::from(seg.verify().is_ok());
        let ids = seg.ids().to_vec();
        let mut scratch = SearchScratch::new();
        let q: Vec<f32> = (0..seg.dims()).map(|i| (i % 5) as f32 - 2.0).collect();
        for (k, ef) in [(1, 1), (10, 32)] {
            let hits = seg.search(&q, k, ef, None, &mut scratch);
            assert!(hits.len() <= k);
            assert!(
                hits.iter().all(|h| ids.contains(&h.id)),
                "{}",
                file.display()
            );
        }
        // Ties with the fifth distance are kept too, so only membership is bounded.
        assert!(seg.exact(&q, &ids, 5).iter().all(|h| ids.contains(&h.id)));
    }
    // The seeds include whole, valid files as well as damaged ones.
    assert!(
        opened > 0 && verified > 0,
        "opened {opened}, verified {verified}"
    );
}
