//! Sealed segments: d1vec's own memory-mapped file holding one built HNSW graph and its
//! vectors (byte layout in `docs/format.md`).
//!
//! A sealed file is written once ([`SealedSegment::write`]: temporary name, fsync, rename,
//! fsync of the folder) and never modified. [`SealedSegment::open`] maps it and checks the
//! header and the section table against the file length, then serves every read as a
//! checked cast over the mapping: nothing is deserialised or copied, so a million-vector
//! file opens in milliseconds and its pages are shared between processes.
//!
//! Trust boundary: `open` validates the structure cheaply; [`SealedSegment::verify`] adds
//! every section's checksum and every neighbour index. A file that passed only `open` may
//! still hold arbitrary bytes in its sections, so [`SealedSegment::search`] bounds-checks
//! every index it reads: a corrupt file can give poor results, never a panic, an
//! out-of-bounds read or an id that is not in [`SealedSegment::ids`].
//!
//! This is the only module of the index layer with `unsafe` beyond the distance kernels'
//! CPU-feature dispatch: the one call that maps the file.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use bytemuck::{Pod, Zeroable};
use memmap2::Mmap;

use crate::index::exact::TopK;
use crate::index::graph::{Allow, GraphParts, Hit, Metric};

/// The first eight bytes of every sealed segment file.
pub const MAGIC: [u8; 8] = *b"D1VSEG\0\x01";
/// The format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Every section starts at a multiple of this many bytes.
const ALIGN: u64 = 64;
/// Most dimensions a file may declare (Vectorize allows 1536; this only bounds arithmetic).
pub const MAX_DIMS: usize = 1 << 16;
/// Largest `M` a file may declare (hnsw_rs allows 256).
pub const MAX_M: usize = 1 << 12;
/// Marks an empty slot in an adjacency row, and "no entry point".
const NONE: u32 = u32::MAX;

/// Section indexes in the table, in file order.
const IDS: usize = 0;
const VECTORS: usize = 1;
const LEVELS: usize = 2;
const LAYER0: usize = 3;
const UPPER_OFFSETS: usize = 4;
const UPPER_LINKS: usize = 5;
const SECTIONS: usize = 6;
const SECTION_NAMES: [&str; SECTIONS] = [
    "ids",
    "vectors",
    "levels",
    "layer0",
    "upper_offsets",
    "upper_links",
];

/// One row of the section table (24 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
struct SectionEntry {
    offset: u64,
    length: u64,
    crc32: u32,
    reserved: u32,
}

/// The fixed header at the start of the file (200 bytes, little-endian, no implicit
/// padding: `Pod` refuses to derive otherwise).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct Header {
    magic: [u8; 8],
    version: u32,
    dims: u32,
    metric: u8,
    max_level: u8,
    reserved0: [u8; 2],
    m: u32,
    count: u64,
    entry_point: u32,
    section_count: u32,
    watermark: u64,
    sections: [SectionEntry; SECTIONS],
    /// crc32 of bytes `0..HEADER_CRC_AT`.
    header_crc: u32,
    reserved1: u32,
}

/// Size of the header in bytes.
const HEADER_LEN: usize = std::mem::size_of::<Header>();
/// Offset of `header_crc`: the header checksum covers every byte before it.
const HEADER_CRC_AT: usize = HEADER_LEN - 8;
const _: () = assert!(HEADER_LEN == 200 && HEADER_CRC_AT == 192);

/// What can go wrong reading or writing a sealed segment.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// The file's bytes are not a valid segment (or, from `write`, the graph given is not
    /// consistent and nothing was written). `reason` names the field or section.
    #[error("corrupt index file {path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the field, section or node.
        reason: String,
    },
    /// The operating system refused an operation on the file (missing, permissions, disk).
    #[error("I/O on {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

fn corrupt(path: &Path, reason: impl Into<String>) -> SegmentError {
    SegmentError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> SegmentError + '_ {
    move |source| SegmentError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A sealed segment mapped read-only. Cheap to share between threads (`Send + Sync`); every
/// accessor is a checked cast over the mapping.
pub struct SealedSegment {
    path: PathBuf,
    map: Mmap,
    dims: usize,
    metric: Metric,
    m: usize,
    count: usize,
    max_level: u8,
    entry_point: u32,
    watermark: u64,
    /// Byte ranges of the sections inside `map`, checked at open.
    ranges: [Range<usize>; SECTIONS],
    /// The crc32 the table records for each section.
    crcs: [u32; SECTIONS],
}

impl fmt::Debug for SealedSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedSegment")
            .field("path", &self.path)
            .field("count", &self.count)
            .field("dims", &self.dims)
            .field("metric", &self.metric)
            .field("m", &self.m)
            .field("max_level", &self.max_level)
            .field("watermark", &self.watermark)
            .finish_non_exhaustive()
    }
}

/// Reusable per-thread buffers for [`SealedSegment::search`]: a visited set (an epoch per
/// node, so clearing is O(1)) and the two heaps. Grows to the largest segment searched.
#[derive(Debug, Default)]
pub struct SearchScratch {
    visited: Vec<u32>,
    epoch: u32,
    candidates: BinaryHeap<Reverse<Near>>,
    results: BinaryHeap<Near>,
    sorted: Vec<Near>,
}

impl SearchScratch {
    /// Empty buffers (they grow on first use).
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a new search over `count` nodes: nothing visited, heaps empty.
    fn reset(&mut self, count: usize) {
        if self.visited.len() < count {
            self.visited.resize(count, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.visited.fill(0);
            self.epoch = 1;
        }
        self.candidates.clear();
        self.results.clear();
    }

    /// Marks `node` visited; returns whether it was new. Out-of-range nodes count as seen.
    #[inline]
    fn visit(&mut self, node: usize) -> bool {
        match self.visited.get_mut(node) {
            Some(mark) if *mark != self.epoch => {
                *mark = self.epoch;
                true
            }
            _ => false,
        }
    }
}

/// A node and its distance, ordered by distance (IEEE total order) then node.
#[derive(Debug, Clone, Copy)]
struct Near {
    distance: f32,
    node: u32,
}

impl Ord for Near {
    fn cmp(&self, other: &Self) -> Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then(self.node.cmp(&other.node))
    }
}

impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Near {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Near {}

/// Borrowed, typed views of the sections for one search.
struct Graph<'a> {
    vectors: &'a [f32],
    layer0: &'a [u32],
    offsets: &'a [u32],
    links: &'a [u32],
    dims: usize,
    m: usize,
    metric: Metric,
}

impl<'a> Graph<'a> {
    #[inline]
    fn vector(&self, node: usize) -> &'a [f32] {
        let start = node.saturating_mul(self.dims);
        self.vectors
            .get(start..start.saturating_add(self.dims))
            .unwrap_or(&[])
    }

    /// The distance from `query` to `node` (NaN for a node without a vector, which only a
    /// corrupt file has; NaN is never returned as a hit).
    #[inline]
    fn distance(&self, query: &[f32], node: usize) -> f32 {
        let v = self.vector(node);
        if v.len() == self.dims {
            // `+ 0.0` turns -0.0 into 0.0, as `TopK` does, so equal distances are equal.
            self.metric.distance(query, v) + 0.0
        } else {
            f32::NAN
        }
    }

    /// The layer-0 adjacency row of `node` (`2M` slots, empty ones `NONE`).
    #[inline]
    fn layer0_row(&self, node: usize) -> &'a [u32] {
        let width = 2 * self.m;
        let start = node.saturating_mul(width);
        self.layer0
            .get(start..start.saturating_add(width))
            .unwrap_or(&[])
    }

    /// The adjacency row of `node` on `layer >= 1` (`M` slots), empty when the node has no
    /// such layer or the offsets are inconsistent.
    #[inline]
    fn upper_row(&self, node: usize, layer: usize) -> &'a [u32] {
        let (Some(&first), Some(&end)) = (self.offsets.get(node), self.offsets.get(node + 1))
        else {
            return &[];
        };
        let block = first as usize + (layer - 1);
        if first > end || block >= end as usize {
            return &[];
        }
        let start = block.saturating_mul(self.m);
        self.links
            .get(start..start.saturating_add(self.m))
            .unwrap_or(&[])
    }
}

/// Collects a section's bytes while computing its checksum and length.
struct SectionSink<'w, W: Write> {
    out: &'w mut W,
    pos: &'w mut u64,
    crc: crc32fast::Hasher,
    length: u64,
}

impl<W: Write> SectionSink<'_, W> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.crc.update(bytes);
        self.length += bytes.len() as u64;
        *self.pos += bytes.len() as u64;
        Ok(())
    }
}

/// Writes zero bytes until `pos` is a multiple of [`ALIGN`].
fn pad_to_align(out: &mut impl Write, pos: &mut u64) -> io::Result<()> {
    let pad = (ALIGN - *pos % ALIGN) % ALIGN;
    out.write_all(&[0u8; ALIGN as usize][..pad as usize])?;
    *pos += pad;
    Ok(())
}

/// Checks that `parts` describes a graph this format can hold; the reason otherwise.
fn check_parts(parts: &GraphParts) -> Result<u64, String> {
    let count = parts.ids.len();
    if parts.dims == 0 || parts.dims > MAX_DIMS {
        return Err(format!("dims {} outside 1..={MAX_DIMS}", parts.dims));
    }
    if parts.m == 0 || parts.m > MAX_M {
        return Err(format!("M = {} outside 1..={MAX_M}", parts.m));
    }
    if count >= NONE as usize {
        return Err(format!("{count} vectors do not fit 32-bit local indexes"));
    }
    if Some(parts.vectors.len()) != count.checked_mul(parts.dims) {
        return Err(format!(
            "{} values for {count} vectors of {} dims",
            parts.vectors.len(),
            parts.dims
        ));
    }
    if parts.levels.len() != count || parts.neighbors.len() != count {
        return Err(format!(
            "{count} ids but {} levels and {} neighbour lists",
            parts.levels.len(),
            parts.neighbors.len()
        ));
    }
    if let Some(i) = parts.ids.windows(2).position(|w| w[0] >= w[1]) {
        return Err(format!("ids not strictly ascending at local {}", i + 1));
    }
    let mut blocks = 0u64;
    for (node, (lists, &level)) in parts.neighbors.iter().zip(&parts.levels).enumerate() {
        if lists.len() != usize::from(level) + 1 {
            return Err(format!(
                "node {node} has level {level} but {} neighbour lists",
                lists.len()
            ));
        }
        for (layer, list) in lists.iter().enumerate() {
            let width = if layer == 0 { 2 * parts.m } else { parts.m };
            if list.len() > width {
                return Err(format!(
                    "node {node} layer {layer}: {} neighbours, more than {width}",
                    list.len()
                ));
            }
            if let Some(bad) = list.iter().find(|&&n| n as usize >= count) {
                return Err(format!(
                    "node {node} layer {layer}: neighbour {bad} out of range"
                ));
            }
        }
        blocks += u64::from(level);
    }
    if blocks >= u64::from(NONE) {
        return Err(format!(
            "{blocks} upper-layer rows do not fit 32-bit offsets"
        ));
    }
    let max_level = parts.levels.iter().copied().max().unwrap_or(0);
    match parts.entry_point {
        None if count == 0 => {}
        None => return Err("no entry point for a non-empty graph".into()),
        Some(e) if (e as usize) < count && parts.levels[e as usize] == max_level => {}
        Some(e) => {
            return Err(format!(
                "entry point {e} is not a node on the top layer {max_level}"
            ))
        }
    }
    Ok(blocks)
}

impl SealedSegment {
    /// Writes `parts` to `path` atomically: to `path` + `.tmp` (replacing any leftover from
    /// a crash), fsync, rename over `path`, fsync the folder. `watermark` is stored as
    /// given (the engine records the largest vid the segment holds; loading decides what a
    /// segment covers from its ids, never from this field). Fails with [`SegmentError::Corrupt`] and
    /// writes nothing when `parts` is inconsistent (lengths, ids not ascending, a list
    /// longer than `2M` on layer 0 or `M` above, a neighbour out of range, an entry point
    /// not on the top layer); never panics.
    pub fn write(path: &Path, parts: &GraphParts, watermark: u64) -> Result<(), SegmentError> {
        if cfg!(target_endian = "big") {
            return Err(corrupt(path, "sealed segments are little-endian only"));
        }
        let blocks = check_parts(parts)
            .map_err(|r| corrupt(path, format!("inconsistent graph parts, not written: {r}")))?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let result = Self::write_file(&tmp, parts, watermark, blocks).and_then(|()| {
            fs::rename(&tmp, path).map_err(io_at(path))?;
            sync_parent(path)
        });
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Writes and fsyncs the whole file at `tmp`.
    fn write_file(
        tmp: &Path,
        parts: &GraphParts,
        watermark: u64,
        blocks: u64,
    ) -> Result<(), SegmentError> {
        let file = File::create(tmp).map_err(io_at(tmp))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let mut pos = 0u64;
        let mut sections = [SectionEntry::zeroed(); SECTIONS];
        let m = parts.m;
        let mut io_part = || -> io::Result<()> {
            out.write_all(&[0u8; HEADER_LEN])?;
            pos = HEADER_LEN as u64;
            let mut row: Vec<u32> = Vec::with_capacity(2 * m);
            for (index, entry) in sections.iter_mut().enumerate() {
                pad_to_align(&mut out, &mut pos)?;
                let offset = pos;
                let mut sink = SectionSink {
                    out: &mut out,
                    pos: &mut pos,
                    crc: crc32fast::Hasher::new(),
                    length: 0,
                };
                match index {
                    IDS => sink.put(bytemuck::cast_slice(&parts.ids))?,
                    VECTORS => sink.put(bytemuck::cast_slice(&parts.vectors))?,
                    LEVELS => sink.put(&parts.levels)?,
                    LAYER0 => {
                        for lists in &parts.neighbors {
                            let list = lists.first().map(Vec::as_slice).unwrap_or(&[]);
                            row.clear();
                            row.extend_from_slice(list);
                            row.resize(2 * m, NONE);
                            sink.put(bytemuck::cast_slice(&row))?;
                        }
                    }
                    UPPER_OFFSETS => {
                        let mut next = 0u32;
                        sink.put(&next.to_le_bytes())?;
                        for &level in &parts.levels {
                            next += u32::from(level);
                            sink.put(&next.to_le_bytes())?;
                        }
                    }
                    _ => {
                        for lists in &parts.neighbors {
                            for list in lists.iter().skip(1) {
                                row.clear();
                                row.extend_from_slice(list);
                                row.resize(m, NONE);
                                sink.put(bytemuck::cast_slice(&row))?;
                            }
                        }
                    }
                }
                *entry = SectionEntry {
                    offset,
                    length: sink.length,
                    crc32: sink.crc.finalize(),
                    reserved: 0,
                };
            }
            Ok(())
        };
        io_part().map_err(io_at(tmp))?;
        debug_assert_eq!(sections[UPPER_LINKS].length, blocks * m as u64 * 4);
        let max_level = parts.levels.iter().copied().max().unwrap_or(0);
        let mut header = Header {
            magic: MAGIC,
            version: FORMAT_VERSION,
            dims: parts.dims as u32,
            metric: parts.metric.code(),
            max_level,
            reserved0: [0; 2],
            m: m as u32,
            count: parts.ids.len() as u64,
            entry_point: parts.entry_point.unwrap_or(NONE),
            section_count: SECTIONS as u32,
            watermark,
            sections,
            header_crc: 0,
            reserved1: 0,
        };
        header.header_crc = crc32fast::hash(&bytemuck::bytes_of(&header)[..HEADER_CRC_AT]);
        let mut file = out.into_inner().map_err(|e| io_at(tmp)(e.into_error()))?;
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.write_all(bytemuck::bytes_of(&header)))
            .and_then(|()| file.sync_all())
            .map_err(io_at(tmp))
    }

    /// Maps and validates a file: magic, version, header checksum, section table (offsets
    /// in bounds, 64-byte aligned, in order, sizes consistent with the counts and dims, the
    /// file ending where the last section ends), ids strictly ascending, the entry point on
    /// the top layer. Cheap: no full-body checksum (that is [`verify`](Self::verify)); the
    /// only O(n) work is reading the ids (8 bytes per vector).
    pub fn open(path: &Path) -> Result<SealedSegment, SegmentError> {
        if cfg!(target_endian = "big") {
            return Err(corrupt(path, "sealed segments are little-endian only"));
        }
        let file = File::open(path).map_err(io_at(path))?;
        let len = file.metadata().map_err(io_at(path))?.len();
        if len < HEADER_LEN as u64 {
            return Err(corrupt(
                path,
                format!("{len} bytes, shorter than the {HEADER_LEN}-byte header"),
            ));
        }
        // SAFETY: `Mmap::map` is unsafe because the mapping aliases the file: if another
        // process truncated or rewrote it while mapped, reads could fault (SIGBUS) or see
        // bytes change under a `&[u8]`. Sealed files are written under a temporary name,
        // fsynced, renamed, and never modified or truncated afterwards (compaction writes a
        // new file and deletes the old one, which leaves existing mappings intact). Outside
        // tampering with the index folder is not defended against, the same limit ripgrep
        // states for its mmap searcher. Every byte read is still validated as untrusted.
        let map = unsafe { Mmap::map(&file) }.map_err(io_at(path))?;
        // Searches read scattered vectors and neighbour rows. Without this hint the kernel
        // reads ahead around every fault, and resident memory grows towards the whole file
        // instead of what queries touch. Advice only; a refusal changes nothing.
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Random);
        Self::parse(path, map)
    }

    /// Validates a mapping (see [`open`](Self::open)).
    fn parse(path: &Path, map: Mmap) -> Result<SealedSegment, SegmentError> {
        let bad = |reason: String| corrupt(path, reason);
        let file_len = map.len();
        let head = map
            .get(..HEADER_LEN)
            .ok_or_else(|| bad(format!("{file_len} bytes, shorter than the header")))?;
        let h: Header = bytemuck::pod_read_unaligned(head);
        if h.magic != MAGIC {
            return Err(bad(format!("bad magic {:02x?}", h.magic)));
        }
        if h.version != FORMAT_VERSION {
            return Err(bad(format!(
                "format version {} (this build reads {FORMAT_VERSION})",
                h.version
            )));
        }
        let crc = crc32fast::hash(&head[..HEADER_CRC_AT]);
        if crc != h.header_crc {
            return Err(bad(format!(
                "header crc32 {:08x} but the header hashes to {crc:08x}",
                h.header_crc
            )));
        }
        if h.reserved0 != [0; 2] || h.reserved1 != 0 {
            return Err(bad("reserved header bytes are not zero".into()));
        }
        if h.section_count != SECTIONS as u32 {
            return Err(bad(format!(
                "{} sections, expected {SECTIONS}",
                h.section_count
            )));
        }
        let metric = Metric::from_code(h.metric)
            .ok_or_else(|| bad(format!("unknown metric code {}", h.metric)))?;
        let dims = h.dims as usize;
        if dims == 0 || dims > MAX_DIMS {
            return Err(bad(format!("dims {dims} outside 1..={MAX_DIMS}")));
        }
        let m = h.m as usize;
        if m == 0 || m > MAX_M {
            return Err(bad(format!("M = {m} outside 1..={MAX_M}")));
        }
        if h.count >= u64::from(NONE) {
            return Err(bad(format!("count {} too large", h.count)));
        }
        let count = h.count as usize;
        match (count, h.entry_point) {
            (0, NONE) if h.max_level == 0 => {}
            (0, _) => return Err(bad("entry point or levels in an empty segment".into())),
            (_, e) if (e as usize) < count => {}
            (_, e) => return Err(bad(format!("entry point {e} out of range"))),
        }

        // Expected byte lengths, overflow-checked (all factors are bounded above, but the
        // arithmetic is checked anyway so that no future limit change can wrap).
        let too_big = || bad("section sizes overflow".into());
        let n = count as u64;
        let mut expect = [
            n.checked_mul(8).ok_or_else(too_big)?,
            n.checked_mul(dims as u64)
                .and_then(|x| x.checked_mul(4))
                .ok_or_else(too_big)?,
            n,
            n.checked_mul(2 * m as u64)
                .and_then(|x| x.checked_mul(4))
                .ok_or_else(too_big)?,
            (n + 1).checked_mul(4).ok_or_else(too_big)?,
            0, // upper links: checked against the offsets below
        ];
        let row_bytes = m as u64 * 4;
        let mut ranges: [Range<usize>; SECTIONS] = Default::default();
        let mut end = HEADER_LEN as u64;
        for (i, s) in h.sections.iter().enumerate() {
            let name = SECTION_NAMES[i];
            if s.reserved != 0 {
                return Err(bad(format!("section {name}: reserved field not zero")));
            }
            if s.offset % ALIGN != 0 || s.offset < end {
                return Err(bad(format!(
                    "section {name}: offset {} not 64-byte aligned after byte {end}",
                    s.offset
                )));
            }
            if i == UPPER_LINKS {
                if s.length % row_bytes != 0 {
                    return Err(bad(format!(
                        "section {name}: {} bytes is not a whole number of {row_bytes}-byte rows",
                        s.length
                    )));
                }
                expect[i] = s.length;
            }
            if s.length != expect[i] {
                return Err(bad(format!(
                    "section {name}: {} bytes, expected {}",
                    s.length, expect[i]
                )));
            }
            end = s
                .offset
                .checked_add(s.length)
                .filter(|&e| e <= file_len as u64)
                .ok_or_else(|| {
                    bad(format!(
                        "section {name} ({} bytes at {}) runs past the end of the {file_len}-byte file",
                        s.length, s.offset
                    ))
                })?;
            ranges[i] = s.offset as usize..end as usize;
        }
        if end != file_len as u64 {
            return Err(bad(format!(
                "{file_len} bytes, but the last section ends at {end}"
            )));
        }
        let segment = SealedSegment {
            path: path.to_path_buf(),
            map,
            dims,
            metric,
            m,
            count,
            max_level: h.max_level,
            entry_point: h.entry_point,
            watermark: h.watermark,
            ranges,
            crcs: h.sections.map(|s| s.crc32),
        };
        // Every cast must succeed now (alignment and sizes are checked above); confirm it so
        // that the accessors' fallbacks to empty slices are never taken on a valid file.
        let ids: &[u64] = segment
            .cast(IDS)
            .ok_or_else(|| bad("ids misaligned".into()))?;
        let vectors: &[f32] = segment
            .cast(VECTORS)
            .ok_or_else(|| bad("vectors misaligned".into()))?;
        let layer0: &[u32] = segment
            .cast(LAYER0)
            .ok_or_else(|| bad("layer0 misaligned".into()))?;
        let offsets: &[u32] = segment
            .cast(UPPER_OFFSETS)
            .ok_or_else(|| bad("upper_offsets misaligned".into()))?;
        let links: &[u32] = segment
            .cast(UPPER_LINKS)
            .ok_or_else(|| bad("upper_links misaligned".into()))?;
        debug_assert!(
            ids.len() == count && vectors.len() == count * dims && layer0.len() == count * 2 * m
        );
        if let Some(i) = ids.windows(2).position(|w| w[0] >= w[1]) {
            return Err(bad(format!(
                "ids not strictly ascending at local {}",
                i + 1
            )));
        }
        let first = offsets.first().copied().unwrap_or(NONE);
        let last = offsets.last().copied().unwrap_or(NONE) as usize;
        if first != 0 || Some(links.len()) != last.checked_mul(m) {
            return Err(bad(format!(
                "upper_offsets run {first}..{last} but upper_links holds {} rows",
                links.len() / m
            )));
        }
        if count > 0 {
            let level = segment.levels().get(segment.entry_point as usize).copied();
            if level != Some(h.max_level) {
                return Err(bad(format!(
                    "entry point {} has level {level:?}, not the top level {}",
                    segment.entry_point, h.max_level
                )));
            }
        }
        Ok(segment)
    }

    /// A section as a typed slice, `None` when misaligned or not a whole number of items.
    fn cast<T: Pod>(&self, section: usize) -> Option<&[T]> {
        let range = self.ranges.get(section)?.clone();
        bytemuck::try_cast_slice(self.map.get(range)?).ok()
    }

    /// The typed sections a search reads.
    fn graph(&self) -> Graph<'_> {
        Graph {
            vectors: self.cast(VECTORS).unwrap_or(&[]),
            layer0: self.cast(LAYER0).unwrap_or(&[]),
            offsets: self.cast(UPPER_OFFSETS).unwrap_or(&[]),
            links: self.cast(UPPER_LINKS).unwrap_or(&[]),
            dims: self.dims,
            m: self.m,
            metric: self.metric,
        }
    }

    fn levels(&self) -> &[u8] {
        self.cast(LEVELS).unwrap_or(&[])
    }

    /// Full check: every section's crc32, the padding between sections all zero (so any
    /// flipped bit anywhere in the file is caught by `open` or here), levels consistent
    /// with the upper-layer offsets, and every neighbour index `< len()` with empty slots
    /// only at the end of a row. Reads the whole file.
    pub fn verify(&self) -> Result<(), SegmentError> {
        // One sequential pass over the whole file: read ahead for it, then back to the
        // random-access advice searches want.
        #[cfg(unix)]
        let _ = self.map.advise(memmap2::Advice::Sequential);
        let checked = self.check(true);
        #[cfg(unix)]
        let _ = self.map.advise(memmap2::Advice::Random);
        checked
    }

    /// [`verify`](Self::verify) without the checksum of the `vectors` section, which is
    /// nearly all of the file: reads only the ids, levels and graph sections (a few percent
    /// of the file at 1536 dimensions), so it is cheap enough for every open.
    pub fn verify_graph(&self) -> Result<(), SegmentError> {
        self.check(false)
    }

    fn check(&self, with_vectors: bool) -> Result<(), SegmentError> {
        let bad = |reason: String| corrupt(&self.path, reason);
        let mut gap_start = HEADER_LEN;
        for (i, range) in self.ranges.iter().enumerate() {
            let name = SECTION_NAMES[i];
            let gap = self.map.get(gap_start..range.start).unwrap_or(&[]);
            if gap.iter().any(|&b| b != 0) {
                return Err(bad(format!("non-zero padding before section {name}")));
            }
            if i == VECTORS && !with_vectors {
                gap_start = range.end;
                continue;
            }
            let bytes = self.map.get(range.clone()).unwrap_or(&[]);
            let stored = self.crcs[i];
            let computed = crc32fast::hash(bytes);
            if stored != computed {
                return Err(bad(format!(
                    "section {name}: crc32 {stored:08x} but the bytes hash to {computed:08x}"
                )));
            }
            gap_start = range.end;
        }
        let levels = self.levels();
        let g = self.graph();
        if let Some(node) = levels.iter().position(|&l| l > self.max_level) {
            return Err(bad(format!(
                "node {node} has level {} above the top level {}",
                levels[node], self.max_level
            )));
        }
        for (node, pair) in g.offsets.windows(2).enumerate() {
            let level = levels.get(node).copied().unwrap_or(0);
            if pair[1].checked_sub(pair[0]) != Some(u32::from(level)) {
                return Err(bad(format!(
                    "node {node}: upper_offsets {}..{} for level {level}",
                    pair[0], pair[1]
                )));
            }
        }
        let check_row = |row: &[u32], node: usize, layer: usize| -> Result<(), SegmentError> {
            let used = row.iter().position(|&n| n == NONE).unwrap_or(row.len());
            if let Some(&n) = row[..used].iter().find(|&&n| n as usize >= self.count) {
                return Err(bad(format!(
                    "node {node} layer {layer}: neighbour {n} out of range"
                )));
            }
            if row[used..].iter().any(|&n| n != NONE) {
                return Err(bad(format!(
                    "node {node} layer {layer}: neighbour after an empty slot"
                )));
            }
            Ok(())
        };
        for node in 0..self.count {
            check_row(g.layer0_row(node), node, 0)?;
            for layer in 1..=usize::from(levels.get(node).copied().unwrap_or(0)) {
                check_row(g.upper_row(node, layer), node, layer)?;
            }
        }
        Ok(())
    }

    /// The file this segment maps.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many vectors the segment holds.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the segment holds no vector.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Dimensions of every vector.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// The metric the graph was built with.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// `M`: the width of upper-layer rows (layer 0 holds `2M`).
    pub fn m(&self) -> usize {
        self.m
    }

    /// The value the writer recorded (the engine: the largest vid the segment holds).
    pub fn watermark(&self) -> u64 {
        self.watermark
    }

    /// The internal ids of the local nodes, strictly ascending.
    pub fn ids(&self) -> &[u64] {
        self.cast(IDS).unwrap_or(&[])
    }

    /// Every vector, `len() * dims()` values in local order (for exact scans with
    /// [`exact::top_k_matrix`](crate::index::exact::top_k_matrix) over [`ids`](Self::ids)).
    pub fn vectors(&self) -> &[f32] {
        self.cast(VECTORS).unwrap_or(&[])
    }

    /// The vector of local node `local` (empty when `local >= len()`).
    pub fn vector(&self, local: u32) -> &[f32] {
        self.graph().vector(local as usize)
    }

    /// The local index of internal id `id` (binary search over the ids).
    pub fn local_of(&self, id: u64) -> Option<u32> {
        self.ids().binary_search(&id).ok().map(|i| i as u32)
    }

    /// Size of the file in bytes.
    pub fn file_bytes(&self) -> u64 {
        self.map.len() as u64
    }

    /// HNSW beam search: greedy descent on the upper layers, then an `ef`-wide search on
    /// layer 0 over the mapped arrays (`ef` is raised to `k` when smaller). Returns up to `k`
    /// hits, closest first (ties by the smaller id), whose ids pass `allow` (all when `None`).
    /// Nodes that fail `allow` are still traversed, so the graph stays connected, but never
    /// returned; the search then runs until it holds `ef` allowed nodes or runs out of
    /// graph, so a very selective `allow` approaches a full scan (use the exact plan then).
    /// Returns nothing when `query` does not have `dims()` values. Every neighbour index
    /// read from the file is bounds-checked. Uses `scratch` instead of allocating.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        allow: Option<&dyn Allow>,
        scratch: &mut SearchScratch,
    ) -> Vec<Hit> {
        if k == 0 || self.count == 0 || query.len() != self.dims {
            return Vec::new();
        }
        let ids = self.ids();
        let g = self.graph();
        let ef = ef.max(k);
        let allowed = |node: usize| match (allow, ids.get(node)) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(a), Some(&id)) => a.allows(id),
        };

        // Greedy descent: move to a strictly closer neighbour until none is (terminates:
        // the distance strictly decreases over a finite set; NaN never compares smaller).
        let mut cur = self.entry_point as usize;
        let mut cur_d = g.distance(query, cur);
        for layer in (1..=usize::from(self.max_level)).rev() {
            loop {
                let mut moved = false;
                for &nb in g.upper_row(cur, layer) {
                    if nb == NONE {
                        break;
                    }
                    let nb = nb as usize;
                    if nb >= self.count {
                        continue;
                    }
                    let d = g.distance(query, nb);
                    if d < cur_d {
                        (cur, cur_d) = (nb, d);
                        moved = true;
                    }
                }
                if !moved {
                    break;
                }
            }
        }

        // Layer 0: best-first expansion; `results` holds the best `ef` allowed nodes.
        scratch.reset(self.count);
        scratch.visit(cur);
        let start = Near {
            distance: cur_d,
            node: cur as u32,
        };
        scratch.candidates.push(Reverse(start));
        if allowed(cur) && !cur_d.is_nan() {
            scratch.results.push(start);
        }
        while let Some(Reverse(c)) = scratch.candidates.pop() {
            let full = scratch.results.len() >= ef;
            if full
                && scratch
                    .results
                    .peek()
                    .is_some_and(|w| c.distance > w.distance)
            {
                break;
            }
            for &nb in g.layer0_row(c.node as usize) {
                if nb == NONE {
                    break;
                }
                let node = nb as usize;
                if node >= self.count || !scratch.visit(node) {
                    continue;
                }
                let d = g.distance(query, node);
                if d.is_nan() {
                    continue;
                }
                let worst = scratch.results.peek().map(|w| w.distance);
                if scratch.results.len() < ef || worst.is_some_and(|w| d < w) {
                    let near = Near {
                        distance: d,
                        node: nb,
                    };
                    scratch.candidates.push(Reverse(near));
                    if allowed(node) {
                        scratch.results.push(near);
                        if scratch.results.len() > ef {
                            scratch.results.pop();
                        }
                    }
                }
            }
        }
        // Local order is id order, so sorting by (distance, node) breaks ties by id.
        scratch.sorted.clear();
        scratch.sorted.extend(scratch.results.drain());
        scratch.sorted.sort_unstable();
        scratch
            .sorted
            .iter()
            .take(k)
            .filter_map(|n| {
                ids.get(n.node as usize).map(|&id| Hit {
                    id,
                    distance: n.distance,
                })
            })
            .collect()
    }

    /// Exact distances for the given internal ids present in this segment (ids not present,
    /// and repeats, are skipped): the `k` nearest, closest first, ties by id, and every id
    /// tied with the k-th distance too (as [`exact::top_k`](crate::index::exact::top_k)).
    /// Returns nothing when `query` does not have `dims()` values.
    pub fn exact(&self, query: &[f32], ids: &[u64], k: usize) -> Vec<Hit> {
        if k == 0 || query.len() != self.dims {
            return Vec::new();
        }
        let all = self.ids();
        let g = self.graph();
        let mut locals: Vec<u32> = ids.iter().filter_map(|&id| self.local_of(id)).collect();
        locals.sort_unstable();
        locals.dedup();
        let mut top = TopK::new(k);
        for local in locals {
            if let Some(&id) = all.get(local as usize) {
                top.push(id, g.distance(query, local as usize));
            }
        }
        top.into_sorted()
    }
}

/// Fsyncs the folder holding `path`, so that a rename into it is durable.
fn sync_parent(path: &Path) -> Result<(), SegmentError> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_at(dir))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
