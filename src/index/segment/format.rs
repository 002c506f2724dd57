//! The byte layout of a sealed segment file: magic, versions, header and section table
//! (every byte is described in `docs/format.md`).
//!
//! The header is a fixed 48-byte prefix, then the section table (24 bytes per section; 6
//! sections in version 1, 12 in version 2), then the header's crc32 and 4 reserved bytes.
//! Everything is little-endian.

use std::ops::RangeInclusive;

use bytemuck::{Pod, Zeroable};

/// The first eight bytes of every sealed segment file (every version).
pub const MAGIC: [u8; 8] = *b"D1VSEG\0\x01";
/// The format version this code writes.
pub const FORMAT_VERSION: u32 = 2;
/// The format versions this code reads. Version 1 files open as they are (graph search on
/// `f32` vectors, no groups); a newer version is [`SegmentError::Incompatible`].
///
/// [`SegmentError::Incompatible`]: super::SegmentError::Incompatible
pub const READABLE_VERSIONS: RangeInclusive<u32> = 1..=2;
/// Every section starts at a multiple of this many bytes.
pub(super) const ALIGN: u64 = 64;
/// Most dimensions a file may declare (Vectorize allows 1536; this only bounds arithmetic,
/// and keeps the int8 code sums exact).
pub const MAX_DIMS: usize = 1 << 16;
/// Largest `M` a file may declare: a bound on the list sizes a reader accepts from a file
/// (d1vec's builder clamps `M` to 255).
pub const MAX_M: usize = 1 << 12;
/// Longest group label, in bytes.
pub const MAX_LABEL: usize = 1 << 16;
/// Marks an empty slot in an adjacency row, and "no entry point".
pub(super) const NONE: u32 = u32::MAX;

/// Section indexes in the table, in file order. Version 1 has the first six.
pub(super) const IDS: usize = 0;
pub(super) const VECTORS: usize = 1;
pub(super) const LEVELS: usize = 2;
pub(super) const LAYER0: usize = 3;
pub(super) const UPPER_OFFSETS: usize = 4;
pub(super) const UPPER_LINKS: usize = 5;
pub(super) const CODES: usize = 6;
pub(super) const CODE_PARAMS: usize = 7;
pub(super) const ID_SORTED: usize = 8;
pub(super) const ID_LOCALS: usize = 9;
pub(super) const GROUPS: usize = 10;
pub(super) const LABELS: usize = 11;
/// Sections of a version 1 file.
pub(super) const SECTIONS_V1: usize = 6;
/// Sections of a version 2 file (the most any readable version has).
pub(super) const SECTIONS: usize = 12;
pub(super) const SECTION_NAMES: [&str; SECTIONS] = [
    "ids",
    "vectors",
    "levels",
    "layer0",
    "upper_offsets",
    "upper_links",
    "codes",
    "code_params",
    "id_sorted",
    "id_locals",
    "groups",
    "labels",
];

/// The sections [`Memory::Resident`](super::Memory::Resident) copies into anonymous
/// memory: everything a graph search reads except the `f32` vectors (read only to rescore
/// the final candidates).
pub(super) const RESIDENT: [usize; 8] = [
    IDS,
    LEVELS,
    LAYER0,
    UPPER_OFFSETS,
    UPPER_LINKS,
    CODES,
    CODE_PARAMS,
    ID_SORTED,
];

/// One row of the section table (24 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub(super) struct SectionEntry {
    pub offset: u64,
    pub length: u64,
    pub crc32: u32,
    pub reserved: u32,
}

/// The fixed start of the header (48 bytes, the same in versions 1 and 2).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(super) struct Prefix {
    pub magic: [u8; 8],
    pub version: u32,
    pub dims: u32,
    pub metric: u8,
    pub max_level: u8,
    pub reserved0: [u8; 2],
    pub m: u32,
    pub count: u64,
    pub entry_point: u32,
    pub section_count: u32,
    pub watermark: u64,
}

/// Size of the header prefix.
pub(super) const PREFIX_LEN: usize = std::mem::size_of::<Prefix>();
const _: () = assert!(PREFIX_LEN == 48 && std::mem::size_of::<SectionEntry>() == 24);

/// One row of the `groups` section (16 bytes): a label (a byte range of the `labels`
/// section) and the local range of its vectors.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub(super) struct GroupEntry {
    pub label_offset: u32,
    pub label_len: u32,
    pub start: u32,
    pub end: u32,
}

/// How many sections a version has (`None`: not a readable version).
pub(super) fn sections_of(version: u32) -> Option<usize> {
    match version {
        1 => Some(SECTIONS_V1),
        2 => Some(SECTIONS),
        _ => None,
    }
}

/// Header length of a file with `sections` sections: prefix, table, crc32, reserved.
pub(super) const fn header_len(sections: usize) -> usize {
    PREFIX_LEN + sections * 24 + 8
}

/// Offset of the header crc32 (it covers every byte before it).
pub(super) const fn header_crc_at(sections: usize) -> usize {
    PREFIX_LEN + sections * 24
}

const _: () = assert!(header_len(SECTIONS_V1) == 200 && header_len(SECTIONS) == 344);

/// Encodes a header: prefix, table, crc32 of both, four zero bytes.
pub(super) fn encode_header(prefix: &Prefix, sections: &[SectionEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(header_len(sections.len()));
    out.extend_from_slice(bytemuck::bytes_of(prefix));
    out.extend_from_slice(bytemuck::cast_slice(sections));
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out
}
