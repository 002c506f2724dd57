//! Sealed segments: d1vec's own memory-mapped file holding one built HNSW graph, its
//! vectors, int8 codes of the vectors and a map of groups (byte layout in
//! `docs/format.md`).
//!
//! The module is split by job: [`format`] (magic, versions, header, section table),
//! `write` (ordering and writing a file), `open` (mapping, validation, `verify`) and
//! `search` (graph search on the codes with exact rescoring, range scans, exact scoring).
//!
//! A sealed file is written once ([`SealedSegment::write`]: temporary name, fsync, rename,
//! fsync of the folder) and never modified. Version 2 stores the vectors in *graph order*:
//! each [`Group`] is one contiguous local range (groups by label, ids in no group last),
//! and inside a range the nodes follow a breadth-first walk of layer 0 from the entry
//! point, so a search's reads share pages and a group's scan is one sequential read.
//! [`SealedSegment::open`] maps the file and checks the header and the section table
//! against the file length; [`SealedSegment::open_with`] can also copy what graph search
//! reads into anonymous memory ([`Memory::Resident`]).
//!
//! Trust boundary: `open` validates the structure cheaply; [`SealedSegment::verify`] adds
//! every section's checksum and every neighbour index. A file that passed only `open` may
//! still hold arbitrary bytes in its sections, so every read bounds-checks every index: a
//! corrupt file can give poor results, never a panic, an out-of-bounds read or an id that
//! is not in [`SealedSegment::ids`].
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

pub mod format;
mod open;
mod search;
mod write;

use std::fmt;
use std::io;
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};

use bytemuck::Pod;
use memmap2::Mmap;

pub use format::{FORMAT_VERSION, MAGIC, MAX_DIMS, MAX_LABEL, MAX_M, READABLE_VERSIONS};
pub use search::SearchScratch;

use format::{GroupEntry, GROUPS, IDS, ID_LOCALS, ID_SORTED, LABELS, SECTIONS, VECTORS};

/// What can go wrong reading or writing a sealed segment.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// The file's bytes are not a valid segment (or, from `write`, the graph or groups
    /// given are not consistent and nothing was written). `reason` names the field or
    /// section.
    #[error("corrupt index file {path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the field, section or node.
        reason: String,
    },
    /// The file declares a format version newer than this build reads. The file may be
    /// valid for a newer d1vec: callers must not delete or rewrite it.
    #[error(
        "index file {path} has format version {found}; this build reads versions {}..={}",
        supported.start(),
        supported.end()
    )]
    Incompatible {
        /// The file.
        path: PathBuf,
        /// The version the file declares.
        found: u32,
        /// The versions this build reads ([`READABLE_VERSIONS`]).
        supported: RangeInclusive<u32>,
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

pub(super) fn corrupt(path: &Path, reason: impl Into<String>) -> SegmentError {
    SegmentError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

pub(super) fn io_at(path: &Path) -> impl FnOnce(io::Error) -> SegmentError + '_ {
    move |source| SegmentError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where an open segment's graph-search data lives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Memory {
    /// Everything is read through the read-only mapping (page cache, shared between
    /// processes; pages the kernel reclaims are read again from disk). The default.
    #[default]
    Mapped,
    /// The ids, graph, codes and id lookup are copied into anonymous memory at open, so
    /// graph traversal never waits for a page fault; the `f32` vectors (rescoring, scans)
    /// stay mapped. Costs about `count * (dims + 8 * M + 32)` bytes of heap.
    Resident,
}

/// A group of vectors stored together (the engine: one namespace). The label is opaque
/// bytes to the index layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group<'a> {
    /// The group's name, at most [`MAX_LABEL`] bytes, unique among a file's groups.
    pub label: &'a [u8],
    /// The internal ids in the group; each must be one of the segment's ids and in no
    /// other group.
    pub ids: &'a [u64],
}

/// An open sealed segment. Cheap to share between threads (`Send + Sync`); every accessor
/// is a checked cast over the mapping or the resident copy.
pub struct SealedSegment {
    path: PathBuf,
    map: Mmap,
    version: u32,
    memory: Memory,
    dims: usize,
    metric: crate::index::Metric,
    m: usize,
    count: usize,
    max_level: u8,
    entry_point: u32,
    watermark: u64,
    /// How many sections the file's version has (the others are empty).
    sections: usize,
    /// Byte ranges of the sections inside `map`, checked at open (empty when absent).
    ranges: [Range<usize>; SECTIONS],
    /// The crc32 the table records for each section.
    crcs: [u32; SECTIONS],
    /// Copies of sections in anonymous memory ([`Memory::Resident`]), 8-byte aligned.
    resident: [Option<Box<[u64]>>; SECTIONS],
}

impl fmt::Debug for SealedSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedSegment")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("memory", &self.memory)
            .field("count", &self.count)
            .field("dims", &self.dims)
            .field("metric", &self.metric)
            .field("m", &self.m)
            .field("max_level", &self.max_level)
            .field("watermark", &self.watermark)
            .finish_non_exhaustive()
    }
}

impl SealedSegment {
    /// A section's bytes: the resident copy when there is one, else the mapping.
    fn bytes(&self, section: usize) -> &[u8] {
        let Some(range) = self.ranges.get(section) else {
            return &[];
        };
        match self.resident.get(section) {
            Some(Some(copy)) => bytemuck::cast_slice::<u64, u8>(copy)
                .get(..range.len())
                .unwrap_or(&[]),
            _ => self.map.get(range.clone()).unwrap_or(&[]),
        }
    }

    /// A section as a typed slice, `None` when misaligned or not a whole number of items.
    fn cast<T: Pod>(&self, section: usize) -> Option<&[T]> {
        bytemuck::try_cast_slice(self.bytes(section)).ok()
    }

    fn levels(&self) -> &[u8] {
        self.bytes(format::LEVELS)
    }

    fn group_entries(&self) -> &[GroupEntry] {
        self.cast(GROUPS).unwrap_or(&[])
    }

    fn label(&self, e: &GroupEntry) -> &[u8] {
        let start = e.label_offset as usize;
        self.bytes(LABELS)
            .get(start..start.saturating_add(e.label_len as usize))
            .unwrap_or(&[])
    }

    /// The file this segment maps.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's format version (one of [`READABLE_VERSIONS`]).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Where the graph-search data lives (as asked of [`open_with`](Self::open_with)).
    pub fn memory(&self) -> Memory {
        self.memory
    }

    /// Whether the file carries int8 codes (version 2): graph search then traverses the
    /// codes and rescores with the `f32` vectors; otherwise it traverses the vectors.
    pub fn has_codes(&self) -> bool {
        self.sections > format::CODES
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
    pub fn metric(&self) -> crate::index::Metric {
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

    /// The internal id of each local node, in local (storage) order. In a version 1 file
    /// that is ascending id order; in version 2 it is graph order (groups contiguous), so
    /// use [`sorted_ids`](Self::sorted_ids) or [`max_id`](Self::max_id) for id order.
    pub fn ids(&self) -> &[u64] {
        self.cast(IDS).unwrap_or(&[])
    }

    /// The segment's internal ids, strictly ascending.
    pub fn sorted_ids(&self) -> &[u64] {
        if self.sections > ID_SORTED {
            self.cast(ID_SORTED).unwrap_or(&[])
        } else {
            self.ids()
        }
    }

    /// The largest internal id the segment holds (`None` when empty).
    pub fn max_id(&self) -> Option<u64> {
        self.sorted_ids().last().copied()
    }

    /// Every vector, `len() * dims()` values in local order (for exact scans with
    /// [`exact::top_k_matrix`](crate::index::exact::top_k_matrix) over [`ids`](Self::ids)).
    pub fn vectors(&self) -> &[f32] {
        // The vectors are never copied: they stay in the mapping in both memory modes.
        bytemuck::try_cast_slice(self.map.get(self.ranges[VECTORS].clone()).unwrap_or(&[]))
            .unwrap_or(&[])
    }

    /// The vector of local node `local` (empty when `local >= len()`).
    pub fn vector(&self, local: u32) -> &[f32] {
        let start = (local as usize).saturating_mul(self.dims);
        self.vectors()
            .get(start..start.saturating_add(self.dims))
            .unwrap_or(&[])
    }

    /// The local index of internal id `id`.
    pub fn local_of(&self, id: u64) -> Option<u32> {
        let sorted = self.sorted_ids();
        let i = sorted.binary_search(&id).ok()?;
        if self.sections > ID_LOCALS {
            let local = *self.cast::<u32>(ID_LOCALS)?.get(i)?;
            // Checked at open; a corrupt body still never yields a foreign node.
            (self.ids().get(local as usize) == Some(&id)).then_some(local)
        } else {
            Some(i as u32)
        }
    }

    /// The local index of each id of `ascending` (strictly ascending internal ids) that the
    /// segment holds, in the same order. One forward walk over [`sorted_ids`](Self::sorted_ids)
    /// that gallops over gaps, so `m` ids cost `O(m log(n / m))` comparisons against `n`
    /// stored ids, not `m` full binary searches (each of which misses the cache).
    pub fn locals_of_ascending(&self, ascending: &[u64]) -> Vec<u32> {
        let sorted = self.sorted_ids();
        let map = if self.sections > ID_LOCALS {
            self.cast::<u32>(ID_LOCALS)
        } else {
            None
        };
        let ids = self.ids();
        let mut out = Vec::new();
        let mut at = 0;
        for &id in ascending {
            if at >= sorted.len() {
                break;
            }
            at = gallop(sorted, at, id);
            if sorted.get(at) != Some(&id) {
                continue;
            }
            let local = match map {
                // Checked at open; a corrupt body still never yields a foreign node.
                Some(map) => match map.get(at) {
                    Some(&local) if ids.get(local as usize) == Some(&id) => local,
                    _ => continue,
                },
                None if self.sections > ID_LOCALS => continue,
                None => at as u32,
            };
            out.push(local);
            at += 1;
        }
        out
    }

    /// The local range of the group labelled `label` (`None` when the file has no such
    /// group: an empty group is not stored, and version 1 files have none).
    pub fn group(&self, label: &[u8]) -> Option<Range<u32>> {
        let entries = self.group_entries();
        let i = entries
            .binary_search_by(|e| self.label(e).cmp(label))
            .ok()?;
        let e = entries[i];
        (e.start < e.end && e.end as usize <= self.count).then_some(e.start..e.end)
    }

    /// Every stored group: its label and local range, in label order.
    pub fn groups(&self) -> Vec<(&[u8], Range<u32>)> {
        self.group_entries()
            .iter()
            .map(|e| (self.label(e), e.start..e.end))
            .collect()
    }

    /// Size of the file in bytes.
    pub fn file_bytes(&self) -> u64 {
        self.map.len() as u64
    }
}

/// The first index at or after `from` whose value is at least `id` in `sorted` (ascending),
/// found by doubling steps from `from` and then a binary search of the last step.
fn gallop(sorted: &[u64], from: usize, id: u64) -> usize {
    let mut below = from; // every index before `below` holds a value under `id`
    let mut step = 1;
    while from + step < sorted.len() && sorted[from + step] < id {
        below = from + step + 1;
        step *= 2;
    }
    let end = (from + step + 1).min(sorted.len());
    below + sorted[below.min(end)..end].partition_point(|&x| x < id)
}

#[cfg(test)]
mod tests;
