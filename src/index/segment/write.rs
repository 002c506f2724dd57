//! Writing a sealed segment: checking the parts, choosing the storage order, streaming the
//! sections with their checksums, and the atomic rename.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytemuck::Zeroable;

use super::format::{
    encode_header, header_len, sections_of, GroupEntry, Prefix, SectionEntry, ALIGN, CODES,
    CODE_PARAMS, FORMAT_VERSION, GROUPS, IDS, ID_LOCALS, ID_SORTED, LABELS, LAYER0, LEVELS, MAGIC,
    MAX_DIMS, MAX_LABEL, MAX_M, NONE, UPPER_LINKS, UPPER_OFFSETS, VECTORS,
};
use super::{corrupt, io_at, Group, SealedSegment, SegmentError};
use crate::index::graph::GraphParts;
use crate::index::quant::quantize_into;

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
fn check_parts(parts: &GraphParts) -> Result<(), String> {
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
    Ok(())
}

/// The storage order of a file: `order[new] = old` local, its inverse, and the groups'
/// table rows and label bytes.
struct Layout {
    order: Vec<u32>,
    inverse: Vec<u32>,
    groups: Vec<GroupEntry>,
    labels: Vec<u8>,
}

impl Layout {
    #[cfg(test)]
    /// Local order unchanged, no groups (version 1).
    fn identity(count: usize) -> Layout {
        let order: Vec<u32> = (0..count as u32).collect();
        Layout {
            inverse: order.clone(),
            order,
            groups: Vec::new(),
            labels: Vec::new(),
        }
    }

    /// Groups contiguous in label order, ids in no group last; inside each, the order of a
    /// breadth-first walk of layer 0 from the entry point (nodes it does not reach follow,
    /// in id order). Fails on a label too long or repeated, an id not in `parts`, or an id
    /// in two groups.
    fn graph_order(parts: &GraphParts, groups: &[Group<'_>]) -> Result<Layout, String> {
        let count = parts.ids.len();
        // Breadth-first rank of every node.
        let mut rank = vec![u32::MAX; count];
        let mut next = 0u32;
        if let Some(entry) = parts.entry_point {
            let mut queue = VecDeque::from([entry]);
            rank[entry as usize] = 0;
            next = 1;
            while let Some(node) = queue.pop_front() {
                let row = parts.neighbors[node as usize].first();
                for &nb in row.map(Vec::as_slice).unwrap_or(&[]) {
                    if rank[nb as usize] == u32::MAX {
                        rank[nb as usize] = next;
                        next += 1;
                        queue.push_back(nb);
                    }
                }
            }
        }
        for r in rank.iter_mut().filter(|r| **r == u32::MAX) {
            *r = next;
            next += 1;
        }
        // Group of every node, groups numbered in label order; empty groups are dropped.
        let mut sorted: Vec<&Group<'_>> = groups.iter().filter(|g| !g.ids.is_empty()).collect();
        sorted.sort_by(|a, b| a.label.cmp(b.label));
        if let Some(w) = sorted.windows(2).find(|w| w[0].label == w[1].label) {
            return Err(format!("group label {:?} given twice", w[0].label));
        }
        let ungrouped = sorted.len() as u32;
        let mut group_of = vec![ungrouped; count];
        for (g, group) in sorted.iter().enumerate() {
            if group.label.len() > MAX_LABEL {
                return Err(format!(
                    "group label of {} bytes, more than {MAX_LABEL}",
                    group.label.len()
                ));
            }
            for &id in group.ids {
                let local = parts.ids.binary_search(&id).map_err(|_| {
                    format!("group {:?}: id {id} is not in the segment", group.label)
                })?;
                if group_of[local] != ungrouped {
                    return Err(format!("id {id} is in two groups (or twice in one)"));
                }
                group_of[local] = g as u32;
            }
        }
        let mut order: Vec<u32> = (0..count as u32).collect();
        order.sort_unstable_by_key(|&old| (group_of[old as usize], rank[old as usize]));
        let mut inverse = vec![0u32; count];
        for (new, &old) in order.iter().enumerate() {
            inverse[old as usize] = new as u32;
        }
        let mut entries = Vec::with_capacity(sorted.len());
        let mut labels = Vec::new();
        let mut start = 0u32;
        for group in &sorted {
            // Every id of the group is distinct and in the segment (checked above).
            let len = group.ids.len() as u32;
            let label_offset =
                u32::try_from(labels.len()).map_err(|_| "group labels exceed 4 GiB".to_string())?;
            labels.extend_from_slice(group.label);
            entries.push(GroupEntry {
                label_offset,
                label_len: group.label.len() as u32,
                start,
                end: start + len,
            });
            start += len;
        }
        Ok(Layout {
            order,
            inverse,
            groups: entries,
            labels,
        })
    }
}

impl SealedSegment {
    /// Writes `parts` to `path` atomically in format version [`FORMAT_VERSION`]: to `path` +
    /// `.tmp` (replacing any leftover from a crash), fsync, rename over `path`, fsync the
    /// folder. Storage order: each non-empty group of `groups` is one contiguous local
    /// range (groups by label bytes, ids in no group last), and inside a range nodes follow
    /// a breadth-first walk of layer 0 from the entry point. Int8 codes are written for
    /// every vector. `watermark` is stored as given (the engine records the largest vid the
    /// segment holds; loading decides what a segment covers from its ids, never from this
    /// field).
    ///
    /// Fails with [`SegmentError::Corrupt`] and writes nothing when `parts` or `groups`
    /// are inconsistent (lengths, ids not ascending, a list longer than `2M` on layer 0 or
    /// `M` above, a neighbour out of range, an entry point not on the top layer, a group
    /// label repeated or longer than [`MAX_LABEL`](super::MAX_LABEL), a group id not in
    /// `parts` or in two groups); never panics.
    pub fn write(
        path: &Path,
        parts: &GraphParts,
        watermark: u64,
        groups: &[Group<'_>],
    ) -> Result<(), SegmentError> {
        let layout = check_parts(parts)
            .and_then(|()| Layout::graph_order(parts, groups))
            .map_err(|r| corrupt(path, format!("inconsistent graph parts, not written: {r}")))?;
        Self::write_version(path, parts, watermark, FORMAT_VERSION, &layout)
    }

    /// Writes `parts` in format version 1 (ids order, no codes, no groups): for tests of
    /// the reader's backward compatibility only.
    #[cfg(test)]
    pub(super) fn write_v1(
        path: &Path,
        parts: &GraphParts,
        watermark: u64,
    ) -> Result<(), SegmentError> {
        check_parts(parts).map_err(|r| corrupt(path, r))?;
        Self::write_version(
            path,
            parts,
            watermark,
            1,
            &Layout::identity(parts.ids.len()),
        )
    }

    fn write_version(
        path: &Path,
        parts: &GraphParts,
        watermark: u64,
        version: u32,
        layout: &Layout,
    ) -> Result<(), SegmentError> {
        if cfg!(target_endian = "big") {
            return Err(corrupt(path, "sealed segments are little-endian only"));
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let result = write_file(&tmp, parts, watermark, version, layout).and_then(|()| {
            fs::rename(&tmp, path).map_err(io_at(path))?;
            sync_parent(path)
        });
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

/// Writes and fsyncs the whole file at `tmp`.
fn write_file(
    tmp: &Path,
    parts: &GraphParts,
    watermark: u64,
    version: u32,
    layout: &Layout,
) -> Result<(), SegmentError> {
    let n_sections = sections_of(version).unwrap_or(0);
    let file = File::create(tmp).map_err(io_at(tmp))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut pos = 0u64;
    let mut sections = vec![SectionEntry::zeroed(); n_sections];
    let (m, dims) = (parts.m, parts.dims);
    let old = |new: u32| layout.order[new as usize] as usize;
    let map = |nb: &u32| layout.inverse[*nb as usize];
    let mut io_part = || -> io::Result<()> {
        let head = header_len(n_sections);
        out.write_all(&vec![0u8; head])?;
        pos = head as u64;
        let mut row: Vec<u32> = Vec::with_capacity(2 * m);
        let mut codes = vec![0i8; dims];
        for (index, entry) in sections.iter_mut().enumerate() {
            pad_to_align(&mut out, &mut pos)?;
            let offset = pos;
            let mut sink = SectionSink {
                out: &mut out,
                pos: &mut pos,
                crc: crc32fast::Hasher::new(),
                length: 0,
            };
            let nodes = 0..layout.order.len() as u32;
            match index {
                IDS => {
                    for new in nodes {
                        sink.put(&parts.ids[old(new)].to_le_bytes())?;
                    }
                }
                VECTORS => {
                    for new in nodes {
                        let v = &parts.vectors[old(new) * dims..][..dims];
                        sink.put(bytemuck::cast_slice(v))?;
                    }
                }
                LEVELS => {
                    for new in nodes {
                        sink.put(&[parts.levels[old(new)]])?;
                    }
                }
                LAYER0 => {
                    for new in nodes {
                        let lists = &parts.neighbors[old(new)];
                        row.clear();
                        row.extend(lists.first().into_iter().flatten().map(map));
                        row.resize(2 * m, NONE);
                        sink.put(bytemuck::cast_slice(&row))?;
                    }
                }
                UPPER_OFFSETS => {
                    let mut next = 0u32;
                    sink.put(&next.to_le_bytes())?;
                    for new in nodes {
                        next += u32::from(parts.levels[old(new)]);
                        sink.put(&next.to_le_bytes())?;
                    }
                }
                UPPER_LINKS => {
                    for new in nodes {
                        for list in parts.neighbors[old(new)].iter().skip(1) {
                            row.clear();
                            row.extend(list.iter().map(map));
                            row.resize(m, NONE);
                            sink.put(bytemuck::cast_slice(&row))?;
                        }
                    }
                }
                CODES => {
                    for new in nodes {
                        quantize_into(&parts.vectors[old(new) * dims..][..dims], &mut codes);
                        sink.put(bytemuck::cast_slice(&codes))?;
                    }
                }
                CODE_PARAMS => {
                    for new in nodes {
                        let p =
                            quantize_into(&parts.vectors[old(new) * dims..][..dims], &mut codes);
                        sink.put(bytemuck::bytes_of(&p))?;
                    }
                }
                // `parts.ids` is ascending, so sorted position `i` is old local `i`.
                ID_SORTED => sink.put(bytemuck::cast_slice(&parts.ids))?,
                ID_LOCALS => sink.put(bytemuck::cast_slice(&layout.inverse))?,
                GROUPS => sink.put(bytemuck::cast_slice(&layout.groups))?,
                LABELS => sink.put(&layout.labels)?,
                _ => unreachable!("a version has at most {LABELS} + 1 sections"),
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
    let prefix = Prefix {
        magic: MAGIC,
        version,
        dims: dims as u32,
        metric: parts.metric.code(),
        max_level: parts.levels.iter().copied().max().unwrap_or(0),
        reserved0: [0; 2],
        m: m as u32,
        count: parts.ids.len() as u64,
        entry_point: parts
            .entry_point
            .map_or(NONE, |e| layout.inverse[e as usize]),
        section_count: n_sections as u32,
        watermark,
    };
    let header = encode_header(&prefix, &sections);
    let mut file = out.into_inner().map_err(|e| io_at(tmp)(e.into_error()))?;
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.write_all(&header))
        .and_then(|()| file.sync_all())
        .map_err(io_at(tmp))
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
