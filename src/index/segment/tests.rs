//! Unit tests that need the module's insides: the version 1 writer kept for the reader's
//! backward compatibility, and the storage order.

use super::*;
use crate::index::exact::top_k_matrix;
use crate::index::graph::{GraphParts, Metric};

/// A ring graph over `n` points on a circle (two neighbours each side on layer 0, every
/// fourth node also on layer 1), ids `10 + 2i`.
fn ring(n: usize, metric: Metric) -> GraphParts {
    let dims = 3;
    let mut vectors = Vec::with_capacity(n * dims);
    for i in 0..n {
        let a = i as f32 / n as f32 * std::f32::consts::TAU;
        let mut v = vec![a.cos(), a.sin(), 0.25 * (i % 3) as f32];
        if metric == Metric::Cosine {
            crate::index::distance::normalize_in_place(&mut v);
        }
        vectors.extend(v);
    }
    let levels: Vec<u8> = (0..n).map(|i| u8::from(i % 4 == 0)).collect();
    let neighbors = (0..n)
        .map(|i| {
            let near = |d: &[isize]| {
                d.iter()
                    .map(|&d| ((i as isize + d).rem_euclid(n as isize)) as u32)
                    .filter(|&j| j as usize != i)
                    .collect::<Vec<u32>>()
            };
            let mut lists = vec![near(&[-2, -1, 1, 2])];
            if levels[i] == 1 {
                lists.push(near(&[-4, 4]));
            }
            lists
        })
        .collect();
    GraphParts {
        dims,
        metric,
        m: 2,
        ids: (0..n as u64).map(|i| 10 + 2 * i).collect(),
        vectors,
        levels,
        entry_point: (n > 0).then_some(0),
        neighbors,
    }
}

#[test]
fn version_1_files_open_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    for metric in [Metric::Cosine, Metric::Euclidean, Metric::DotProduct] {
        let parts = ring(40, metric);
        let v1 = dir.path().join("v1.seg");
        let v2 = dir.path().join("v2.seg");
        SealedSegment::write_v1(&v1, &parts, 5).unwrap();
        SealedSegment::write(&v2, &parts, 5, &[]).unwrap();
        let bytes = std::fs::read(&v1).unwrap();
        assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 1);
        for memory in [Memory::Mapped, Memory::Resident] {
            let old = SealedSegment::open_with(&v1, memory).unwrap();
            let new = SealedSegment::open_with(&v2, memory).unwrap();
            old.verify().unwrap();
            new.verify().unwrap();
            assert_eq!((old.version(), new.version()), (1, 2));
            assert!(!old.has_codes() && new.has_codes());
            assert_eq!(old.ids(), parts.ids.as_slice());
            assert_eq!(old.vectors(), parts.vectors.as_slice());
            assert_eq!(old.sorted_ids(), new.sorted_ids());
            assert_eq!(old.group(b""), None);
            let mut scratch = SearchScratch::new();
            for i in 0..10 {
                let q = &parts.vectors[i * 3 * 4..][..3];
                let want = top_k_matrix(metric, q, &parts.ids, &parts.vectors, 3, 5, None);
                // A beam as wide as the graph is exact on both versions.
                assert_eq!(old.search(q, 5, 40, None, &mut scratch), want[..5]);
                assert_eq!(new.search(q, 5, 40, None, &mut scratch), want[..5]);
                assert_eq!(old.exact(q, &parts.ids, 5), new.exact(q, &parts.ids, 5));
                assert_eq!(old.scan(q, 0..40, 5, None), want);
            }
        }
    }
}

#[test]
fn storage_order_is_groups_then_breadth_first() {
    let parts = ring(20, Metric::Euclidean);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.seg");
    // Group "b": ids of nodes 5..10; group "a": nodes 15, 0; "empty": nothing.
    let b: Vec<u64> = (5..10).map(|i| parts.ids[i]).collect();
    let a = [parts.ids[15], parts.ids[0]];
    let groups = [
        Group {
            label: b"b",
            ids: &b,
        },
        Group {
            label: b"empty",
            ids: &[],
        },
        Group {
            label: b"a",
            ids: &a,
        },
    ];
    SealedSegment::write(&path, &parts, 0, &groups).unwrap();
    let seg = SealedSegment::open(&path).unwrap();
    seg.verify().unwrap();
    assert_eq!(seg.group(b"a"), Some(0..2));
    assert_eq!(seg.group(b"b"), Some(2..7));
    assert_eq!(seg.group(b"empty"), None);
    // Inside "a": the entry point (node 0) first, then node 15 (reached later).
    assert_eq!(&seg.ids()[..2], &[parts.ids[0], parts.ids[15]]);
    // Inside "b": breadth-first from node 0 reaches 2 before 3 (via 1 and 2), so the
    // ranks grow with the distance along the ring: 5, 6, 7, 8, 9.
    assert_eq!(&seg.ids()[2..7], b.as_slice());
    // The entry point is renumbered with the nodes.
    assert_eq!(seg.ids()[seg.entry_point as usize], parts.ids[0]);
    let names: Vec<&[u8]> = seg.groups().into_iter().map(|(l, _)| l).collect();
    assert_eq!(names, vec![&b"a"[..], b"b"]);
}

proptest::proptest! {
    /// Galloping from any start finds what a binary search of the rest finds.
    #[test]
    fn gallop_is_a_partition_point(
        mut sorted in proptest::collection::vec(0u64..400, 0..200),
        from in 0usize..210,
        id in 0u64..410,
    ) {
        sorted.sort_unstable();
        sorted.dedup();
        let from = from.min(sorted.len());
        // The caller's promise: everything before `from` is under `id`.
        let from = from.min(sorted.partition_point(|&x| x < id));
        let want = from + sorted[from..].partition_point(|&x| x < id);
        proptest::prop_assert_eq!(gallop(&sorted, from, id), want);
    }

    /// One walk finds the same locals as a binary search per id, in version 1 (ids in
    /// storage order) and version 2 files (graph order, through the id → local section).
    #[test]
    fn locals_of_ascending_equals_local_of(
        picks in proptest::collection::btree_set(0u64..120, 0..80),
        n in 1usize..50,
    ) {
        let parts = ring(n, Metric::Euclidean);
        let dir = tempfile::tempdir().unwrap();
        let (v1, v2) = (dir.path().join("v1.seg"), dir.path().join("v2.seg"));
        SealedSegment::write_v1(&v1, &parts, 0).unwrap();
        let half: Vec<u64> = parts.ids.iter().copied().step_by(2).collect();
        SealedSegment::write(&v2, &parts, 0, &[Group { label: b"g", ids: &half }]).unwrap();
        // Ids are 10 + 2i: picks hit stored ids, ids between them and ids past either end.
        let ascending: Vec<u64> = picks.into_iter().collect();
        for path in [&v1, &v2] {
            let seg = SealedSegment::open(path).unwrap();
            let want: Vec<u32> = ascending.iter().filter_map(|&id| seg.local_of(id)).collect();
            proptest::prop_assert_eq!(seg.locals_of_ascending(&ascending), want);
        }
    }
}
