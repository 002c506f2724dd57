//! Opening a sealed segment: mapping, validating the header and section table, the
//! resident copy, and the full verification.

use std::fs::File;
use std::ops::Range;
use std::path::Path;

use memmap2::Mmap;

use super::format::{
    header_crc_at, header_len, sections_of, GroupEntry, Prefix, SectionEntry, ALIGN, CODES,
    CODE_PARAMS, GROUPS, IDS, ID_LOCALS, ID_SORTED, LABELS, LAYER0, MAGIC, MAX_DIMS, MAX_LABEL,
    MAX_M, NONE, PREFIX_LEN, READABLE_VERSIONS, RESIDENT, SECTIONS, SECTION_NAMES, UPPER_LINKS,
    UPPER_OFFSETS, VECTORS,
};
use super::{corrupt, io_at, Memory, SealedSegment, SegmentError};
use crate::index::graph::Metric;

impl SealedSegment {
    /// [`open_with`](Self::open_with) in [`Memory::Mapped`] mode.
    pub fn open(path: &Path) -> Result<SealedSegment, SegmentError> {
        Self::open_with(path, Memory::Mapped)
    }

    /// Maps and validates a file: magic, version (a version above [`READABLE_VERSIONS`] is
    /// [`SegmentError::Incompatible`]; the file is only read), header checksum, section
    /// table (offsets in bounds, 64-byte aligned, in order, sizes consistent with the
    /// counts and dims, the file ending where the last section ends), the id lookup (ids
    /// strictly ascending, each mapping to the local that holds it), the groups (labels
    /// ascending, ranges contiguous from 0 and inside the segment), the entry point on the
    /// top layer. Cheap: no full-body checksum (that is [`verify`](Self::verify)); the only
    /// O(n) work is reading the ids and the lookup (20 bytes per vector). With
    /// [`Memory::Resident`], then copies the ids, graph, codes and lookup into anonymous
    /// memory.
    pub fn open_with(path: &Path, memory: Memory) -> Result<SealedSegment, SegmentError> {
        if cfg!(target_endian = "big") {
            return Err(corrupt(path, "sealed segments are little-endian only"));
        }
        let file = File::open(path).map_err(io_at(path))?;
        let len = file.metadata().map_err(io_at(path))?.len();
        if len < PREFIX_LEN as u64 {
            return Err(corrupt(
                path,
                format!("{len} bytes, shorter than the {PREFIX_LEN}-byte header prefix"),
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
        let mut segment = Self::parse(path, map)?;
        if memory == Memory::Resident {
            for section in RESIDENT {
                if section < segment.sections {
                    let bytes = segment.bytes(section);
                    let mut copy = vec![0u64; bytes.len().div_ceil(8)].into_boxed_slice();
                    bytemuck::cast_slice_mut::<u64, u8>(&mut copy)[..bytes.len()]
                        .copy_from_slice(bytes);
                    segment.resident[section] = Some(copy);
                }
            }
            segment.memory = Memory::Resident;
        }
        Ok(segment)
    }

    /// Validates a mapping (see [`open_with`](Self::open_with)).
    fn parse(path: &Path, map: Mmap) -> Result<SealedSegment, SegmentError> {
        let bad = |reason: String| corrupt(path, reason);
        let file_len = map.len();
        let prefix = map
            .get(..PREFIX_LEN)
            .ok_or_else(|| bad(format!("{file_len} bytes, shorter than the header")))?;
        let h: Prefix = bytemuck::pod_read_unaligned(prefix);
        if h.magic != MAGIC {
            return Err(bad(format!("bad magic {:02x?}", h.magic)));
        }
        if h.version > *READABLE_VERSIONS.end() {
            return Err(SegmentError::Incompatible {
                path: path.to_path_buf(),
                found: h.version,
                supported: READABLE_VERSIONS,
            });
        }
        let n_sections = sections_of(h.version).ok_or_else(|| {
            bad(format!(
                "format version {} is not one d1vec wrote",
                h.version
            ))
        })?;
        let head_len = header_len(n_sections);
        let crc_at = header_crc_at(n_sections);
        let head = map.get(..head_len).ok_or_else(|| {
            bad(format!(
                "{file_len} bytes, shorter than the {head_len}-byte version {} header",
                h.version
            ))
        })?;
        let stored_crc = u32::from_le_bytes([
            head[crc_at],
            head[crc_at + 1],
            head[crc_at + 2],
            head[crc_at + 3],
        ]);
        let crc = crc32fast::hash(&head[..crc_at]);
        if crc != stored_crc {
            return Err(bad(format!(
                "header crc32 {stored_crc:08x} but the header hashes to {crc:08x}"
            )));
        }
        if h.reserved0 != [0; 2] || head[crc_at + 4..head_len] != [0; 4] {
            return Err(bad("reserved header bytes are not zero".into()));
        }
        if h.section_count != n_sections as u32 {
            return Err(bad(format!(
                "{} sections, version {} has {n_sections}",
                h.section_count, h.version
            )));
        }
        let table: Vec<SectionEntry> = head[PREFIX_LEN..crc_at]
            .chunks_exact(24)
            .map(bytemuck::pod_read_unaligned)
            .collect();
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
        // arithmetic is checked anyway so that no future limit change can wrap). `None`:
        // a whole number of rows of the given size, checked against other sections below.
        let too_big = || bad("section sizes overflow".into());
        let n = count as u64;
        let times = |a: u64, b: u64| a.checked_mul(b).ok_or_else(too_big);
        let expect: [Result<u64, u64>; SECTIONS] = [
            Ok(times(n, 8)?),
            Ok(times(times(n, dims as u64)?, 4)?),
            Ok(n),
            Ok(times(times(n, 2 * m as u64)?, 4)?),
            Ok(times(n + 1, 4)?),
            Err(m as u64 * 4),
            Ok(times(n, dims as u64)?),
            Ok(times(n, 8)?),
            Ok(times(n, 8)?),
            Ok(times(n, 4)?),
            Err(std::mem::size_of::<GroupEntry>() as u64),
            Err(1),
        ];
        let mut ranges: [Range<usize>; SECTIONS] = Default::default();
        let mut crcs = [0u32; SECTIONS];
        let mut end = head_len as u64;
        for (i, s) in table.iter().enumerate() {
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
            match expect[i] {
                Ok(want) if s.length != want => {
                    return Err(bad(format!(
                        "section {name}: {} bytes, expected {want}",
                        s.length
                    )))
                }
                Err(row) if s.length % row != 0 => {
                    return Err(bad(format!(
                        "section {name}: {} bytes is not a whole number of {row}-byte rows",
                        s.length
                    )))
                }
                _ => {}
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
            crcs[i] = s.crc32;
        }
        if end != file_len as u64 {
            return Err(bad(format!(
                "{file_len} bytes, but the last section ends at {end}"
            )));
        }
        let segment = SealedSegment {
            path: path.to_path_buf(),
            map,
            version: h.version,
            memory: Memory::Mapped,
            dims,
            metric,
            m,
            count,
            max_level: h.max_level,
            entry_point: h.entry_point,
            watermark: h.watermark,
            sections: n_sections,
            ranges,
            crcs,
            resident: Default::default(),
        };
        // Every cast must succeed now (alignment and sizes are checked above); confirm it so
        // that the accessors' fallbacks to empty slices are never taken on a valid file.
        let misaligned = |name: &str| bad(format!("{name} misaligned"));
        let ids: &[u64] = segment.cast(IDS).ok_or_else(|| misaligned("ids"))?;
        let vectors: &[f32] = segment.cast(VECTORS).ok_or_else(|| misaligned("vectors"))?;
        let layer0: &[u32] = segment.cast(LAYER0).ok_or_else(|| misaligned("layer0"))?;
        let offsets: &[u32] = segment
            .cast(UPPER_OFFSETS)
            .ok_or_else(|| misaligned("upper_offsets"))?;
        let links: &[u32] = segment
            .cast(UPPER_LINKS)
            .ok_or_else(|| misaligned("upper_links"))?;
        debug_assert!(
            ids.len() == count && vectors.len() == count * dims && layer0.len() == count * 2 * m
        );
        let sorted = segment.sorted_ids();
        if let Some(i) = sorted.windows(2).position(|w| w[0] >= w[1]) {
            return Err(bad(format!("ids not strictly ascending at {}", i + 1)));
        }
        if segment.sections > ID_LOCALS {
            let _: &[i8] = segment.cast(CODES).ok_or_else(|| misaligned("codes"))?;
            let _: &[crate::index::quant::CodeParams] = segment
                .cast(CODE_PARAMS)
                .ok_or_else(|| misaligned("code_params"))?;
            let locals: &[u32] = segment
                .cast(ID_LOCALS)
                .ok_or_else(|| misaligned("id_locals"))?;
            let sorted: &[u64] = segment
                .cast(ID_SORTED)
                .ok_or_else(|| misaligned("id_sorted"))?;
            for (i, (&id, &local)) in sorted.iter().zip(locals).enumerate() {
                if ids.get(local as usize) != Some(&id) {
                    return Err(bad(format!(
                        "id lookup {i}: id {id} maps to local {local}, which holds another id"
                    )));
                }
            }
            segment.check_groups()?;
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

    /// Groups: labels inside the `labels` section, at most [`MAX_LABEL`] bytes, strictly
    /// ascending; ranges non-empty, contiguous from local 0, inside the segment.
    fn check_groups(&self) -> Result<(), SegmentError> {
        let bad = |reason: String| corrupt(&self.path, reason);
        let entries: &[GroupEntry] = self
            .cast(GROUPS)
            .ok_or_else(|| bad("groups misaligned".into()))?;
        let labels = self.bytes(LABELS);
        let mut previous: Option<&[u8]> = None;
        let mut next_start = 0u32;
        for (i, e) in entries.iter().enumerate() {
            let start = e.label_offset as usize;
            let label = labels
                .get(start..start.saturating_add(e.label_len as usize))
                .filter(|l| l.len() <= MAX_LABEL)
                .ok_or_else(|| bad(format!("group {i}: label outside the labels section")))?;
            if previous.is_some_and(|p| p >= label) {
                return Err(bad(format!("group {i}: labels not strictly ascending")));
            }
            if e.start != next_start || e.end <= e.start || e.end as usize > self.count {
                return Err(bad(format!(
                    "group {i}: range {}..{} (expected to start at {next_start}, non-empty, within {})",
                    e.start, e.end, self.count
                )));
            }
            previous = Some(label);
            next_start = e.end;
        }
        Ok(())
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

    /// [`verify`](Self::verify) without the checksums of the `vectors` and `codes`
    /// sections, which are nearly all of the file: reads only the ids, levels, graph,
    /// lookup and group sections (a few percent of the file at 1536 dimensions), so it is
    /// cheap enough for every open. Damaged codes or vectors it misses can only make
    /// answers worse (every read is bounds-checked), never unsafe.
    pub fn verify_graph(&self) -> Result<(), SegmentError> {
        self.check(false)
    }

    fn check(&self, with_vectors: bool) -> Result<(), SegmentError> {
        let bad = |reason: String| corrupt(&self.path, reason);
        let mut gap_start = header_len(self.sections);
        for (i, range) in self.ranges.iter().enumerate().take(self.sections) {
            let name = SECTION_NAMES[i];
            // The checksums are of the file: read the mapping, not a resident copy.
            let gap = self.map.get(gap_start..range.start).unwrap_or(&[]);
            if gap.iter().any(|&b| b != 0) {
                return Err(bad(format!("non-zero padding before section {name}")));
            }
            gap_start = range.end;
            if (i == VECTORS || i == CODES) && !with_vectors {
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
}
