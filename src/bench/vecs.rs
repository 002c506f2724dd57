//! The `.fvecs` and `.ivecs` formats: streaming readers, writers and whole-file helpers.
//!
//! Both formats are a plain sequence of vectors, with no file header:
//!
//! ```text
//! per vector:  d: i32 (little-endian)  |  d values, 4 bytes each (little-endian)
//!              .fvecs: f32 values          .ivecs: i32 values
//! ```
//!
//! Rules this module enforces, on read and on write alike (so whatever it writes, it reads):
//!
//! - `.fvecs`: every vector has the same dimension `d`, `1 <= d <=` [`MAX_DIMS`].
//! - `.ivecs`: each row has its own length, `0 <= d <=` [`MAX_DIMS`]. Ground-truth files
//!   have a fixed `k` per row, but a row restricted to a small (or empty) tenant may be
//!   shorter, so the reader accepts any length; an empty row is how an empty result is
//!   written.
//! - Values are taken bit for bit: NaN, infinities, subnormals and `-0.0` are accepted on
//!   read and written back unchanged (checking them is the consumer's job: d1vec's write
//!   path rejects non-finite values).
//! - A file that ends inside a vector is an error ([`VecsError::Truncated`]); a file that
//!   ends exactly after a vector is complete (an empty file holds no vectors).
//!
//! Reading never trusts a header with memory: a vector's values are read in chunks of at
//! most 64 KiB and memory grows only with the bytes actually present, so a header claiming
//! [`MAX_DIMS`] values over a 10-byte file allocates a few bytes and reports the truncation.
//! The whole-file helpers size their buffers from the file's length, never from a header.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, ErrorKind, Read, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

/// The most values a vector may declare: 2^20 (4 MiB per vector). Real embeddings have at
/// most a few thousand; the bound only stops a corrupt header from meaning "read 8 GiB".
pub const MAX_DIMS: usize = 1 << 20;

/// Values are read in pieces of this many bytes (a multiple of 4), so memory follows the
/// bytes present rather than the bytes a header claims.
const CHUNK_BYTES: usize = 64 << 10;

/// The name errors give a reader or writer that was not opened from a path.
const STREAM: &str = "<stream>";

/// A `.fvecs` or `.ivecs` file could not be read or written. Every variant names the file
/// (or `<stream>`), and every format problem names the vector's index (0-based) and the
/// byte offset where it starts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VecsError {
    /// The operating system refused an operation on the file (missing, permissions, disk).
    #[error("I/O on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The file ends inside a vector: in its 4-byte dimension header or in its values.
    #[error(
        "{path}: vector {index} (at byte {offset}) is truncated: its {part} needs {expected} \
         bytes, only {found} remain"
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// The vector's index (0-based).
        index: u64,
        /// The byte offset where the vector starts.
        offset: u64,
        /// Which part was cut: `"dimension header"` or `"values"`.
        part: &'static str,
        /// The bytes that part needs.
        expected: u64,
        /// The bytes that were there.
        found: u64,
    },
    /// A vector declares (or, when writing, has) a dimension outside the format's range.
    #[error(
        "{path}: vector {index} (at byte {offset}) has dimension {dims}; a .{format} vector \
         has {min} to {max} values"
    )]
    BadDimension {
        /// The file.
        path: PathBuf,
        /// The vector's index (0-based).
        index: u64,
        /// The byte offset where the vector starts.
        offset: u64,
        /// The dimension found (negative values come from a corrupt header).
        dims: i64,
        /// `"fvecs"` or `"ivecs"`.
        format: &'static str,
        /// The smallest dimension the format allows (1 for fvecs, 0 for ivecs).
        min: usize,
        /// The largest, [`MAX_DIMS`].
        max: usize,
    },
    /// A `.fvecs` vector whose dimension differs from the first vector's.
    #[error(
        "{path}: vector {index} (at byte {offset}) has dimension {got}, but vector 0 has \
         {expected}; all vectors of a .fvecs file have the same dimension"
    )]
    InconsistentDimension {
        /// The file.
        path: PathBuf,
        /// The vector's index (0-based).
        index: u64,
        /// The byte offset where the vector starts.
        offset: u64,
        /// The first vector's dimension.
        expected: usize,
        /// This vector's dimension.
        got: usize,
    },
    /// A flat buffer handed to a writer is not a whole number of rows of `dims` values.
    #[error("{path}: {len} values are not a whole number of vectors of dimension {dims}")]
    Shape {
        /// The file.
        path: PathBuf,
        /// The dimension given.
        dims: usize,
        /// The number of values given.
        len: usize,
    },
}

impl VecsError {
    /// The file the error concerns (`<stream>` for readers and writers not opened by path).
    pub fn path(&self) -> &Path {
        match self {
            VecsError::Io { path, .. }
            | VecsError::Truncated { path, .. }
            | VecsError::BadDimension { path, .. }
            | VecsError::InconsistentDimension { path, .. }
            | VecsError::Shape { path, .. } => path,
        }
    }

    /// The index of the offending vector, for format errors (`None` for I/O and shape errors).
    pub fn index(&self) -> Option<u64> {
        match self {
            VecsError::Truncated { index, .. }
            | VecsError::BadDimension { index, .. }
            | VecsError::InconsistentDimension { index, .. } => Some(*index),
            VecsError::Io { .. } | VecsError::Shape { .. } => None,
        }
    }
}

/// I/O failures keep their path ([`crate::Error::Io`]); format problems are invalid input
/// ([`crate::Error::InvalidInput`], what = `"vector file"`) whose reason is the full message.
impl From<VecsError> for crate::Error {
    fn from(e: VecsError) -> Self {
        match e {
            VecsError::Io { path, source } => crate::Error::Io { path, source },
            other => crate::Error::invalid("vector file", other.to_string()),
        }
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for i32 {}
}

/// A value type of the vecs family: `f32` is `.fvecs`, `i32` is `.ivecs`. Sealed: the
/// format's rules (the dimension range, whether all vectors share it) come with the type.
pub trait VecsElement: sealed::Sealed + Copy + Send + Sync + fmt::Debug + 'static {
    /// The format's name and usual file extension: `"fvecs"` or `"ivecs"`.
    const FORMAT: &'static str;
    /// Whether every vector of a file must have the first vector's dimension (fvecs).
    const UNIFORM: bool;
    /// The smallest dimension allowed: 1 for fvecs, 0 for ivecs (an empty result row).
    const MIN_DIMS: usize;
    /// Decodes one value from its 4 little-endian bytes, bit for bit.
    fn from_le(bytes: [u8; 4]) -> Self;
    /// Encodes one value as 4 little-endian bytes, bit for bit.
    fn to_le(self) -> [u8; 4];
}

impl VecsElement for f32 {
    const FORMAT: &'static str = "fvecs";
    const UNIFORM: bool = true;
    const MIN_DIMS: usize = 1;
    #[inline]
    fn from_le(bytes: [u8; 4]) -> Self {
        f32::from_bits(u32::from_le_bytes(bytes))
    }
    #[inline]
    fn to_le(self) -> [u8; 4] {
        self.to_bits().to_le_bytes()
    }
}

impl VecsElement for i32 {
    const FORMAT: &'static str = "ivecs";
    const UNIFORM: bool = false;
    const MIN_DIMS: usize = 0;
    #[inline]
    fn from_le(bytes: [u8; 4]) -> Self {
        i32::from_le_bytes(bytes)
    }
    #[inline]
    fn to_le(self) -> [u8; 4] {
        self.to_le_bytes()
    }
}

/// Checks a dimension against the format's range, and (fvecs) against the first vector's.
fn check_dims<T: VecsElement>(
    path: &Path,
    index: u64,
    offset: u64,
    dims: i64,
    first: Option<usize>,
) -> Result<usize, VecsError> {
    let valid = usize::try_from(dims)
        .ok()
        .filter(|d| (T::MIN_DIMS..=MAX_DIMS).contains(d));
    let Some(d) = valid else {
        return Err(VecsError::BadDimension {
            path: path.to_path_buf(),
            index,
            offset,
            dims,
            format: T::FORMAT,
            min: T::MIN_DIMS,
            max: MAX_DIMS,
        });
    };
    match first {
        Some(expected) if T::UNIFORM && expected != d => Err(VecsError::InconsistentDimension {
            path: path.to_path_buf(),
            index,
            offset,
            expected,
            got: d,
        }),
        _ => Ok(d),
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read. Retries on
/// `Interrupted`, like `read_exact`, but reports a short read instead of failing.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// A streaming reader of `.fvecs` ([`FvecsReader`]) or `.ivecs` ([`IvecsReader`]) vectors,
/// buffered internally (wrap nothing in a `BufReader` first).
///
/// Read one vector at a time with [`next_into`](Self::next_into) (reusing a buffer) or as an
/// iterator of `Result<Vec<T>, VecsError>`. After the end of the input or an error, the
/// reader is finished: further calls return `Ok(None)` (the iterator ends).
#[derive(Debug)]
pub struct VecsReader<R, T> {
    inner: BufReader<R>,
    path: PathBuf,
    /// The index of the next vector.
    index: u64,
    /// The byte offset of the next vector.
    offset: u64,
    /// The first vector's dimension, once read.
    dims: Option<usize>,
    /// The input's total length when known (opened from a file): a capacity hint.
    len_hint: Option<u64>,
    /// Raw bytes of the values being read, at most [`CHUNK_BYTES`].
    chunk: Vec<u8>,
    finished: bool,
    _values: PhantomData<fn() -> T>,
}

/// A streaming `.fvecs` reader (f32 vectors, all of one dimension).
pub type FvecsReader<R> = VecsReader<R, f32>;
/// A streaming `.ivecs` reader (i32 rows, each of its own length).
pub type IvecsReader<R> = VecsReader<R, i32>;

impl<T: VecsElement> VecsReader<File, T> {
    /// Opens the file at `path` for reading; errors name `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, VecsError> {
        let path = path.as_ref();
        let io_err = |source| VecsError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        let mut reader = VecsReader::new(file).with_path(path);
        reader.len_hint = Some(len);
        Ok(reader)
    }
}

impl<R: Read, T: VecsElement> VecsReader<R, T> {
    /// A reader over any byte stream, buffered internally. Its errors name the file
    /// `<stream>` unless [`with_path`](Self::with_path) gives a name.
    pub fn new(inner: R) -> Self {
        VecsReader {
            inner: BufReader::with_capacity(CHUNK_BYTES, inner),
            path: PathBuf::from(STREAM),
            index: 0,
            offset: 0,
            dims: None,
            len_hint: None,
            chunk: Vec::new(),
            finished: false,
            _values: PhantomData,
        }
    }

    /// Names the input in error messages (the reader does not open it).
    pub fn with_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = path.into();
        self
    }

    /// The name errors give the input.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The first vector's dimension, once a vector has been read (`None` before, and for
    /// an empty input).
    pub fn dims(&self) -> Option<usize> {
        self.dims
    }

    /// How many vectors have been read: the index of the next one.
    pub fn position(&self) -> u64 {
        self.index
    }

    /// Reads the next vector and *appends* its values to `out`; returns its dimension, or
    /// `None` at the end of the input. On error `out` is left as it was and the reader is
    /// finished.
    pub fn next_into(&mut self, out: &mut Vec<T>) -> Result<Option<usize>, VecsError> {
        if self.finished {
            return Ok(None);
        }
        let before = out.len();
        let result = self.read_one(out);
        match &result {
            Ok(Some(_)) => {}
            Ok(None) => self.finished = true,
            Err(_) => {
                out.truncate(before);
                self.finished = true;
            }
        }
        result
    }

    fn read_one(&mut self, out: &mut Vec<T>) -> Result<Option<usize>, VecsError> {
        let (index, offset) = (self.index, self.offset);
        let mut header = [0u8; 4];
        let got = read_full(&mut self.inner, &mut header).map_err(|e| self.io(e))?;
        if got == 0 {
            return Ok(None);
        }
        if got < header.len() {
            return Err(self.truncated("dimension header", 4, got as u64));
        }
        let declared = i64::from(i32::from_le_bytes(header));
        let dims = check_dims::<T>(&self.path, index, offset, declared, self.dims)?;
        let value_bytes = dims * 4;
        let mut filled = 0;
        while filled < value_bytes {
            let want = (value_bytes - filled).min(CHUNK_BYTES);
            if self.chunk.len() < want {
                self.chunk.resize(want, 0);
            }
            let got =
                read_full(&mut self.inner, &mut self.chunk[..want]).map_err(|e| self.io(e))?;
            if got < want {
                return Err(self.truncated("values", value_bytes as u64, (filled + got) as u64));
            }
            out.extend(
                self.chunk[..want]
                    .chunks_exact(4)
                    .map(|b| T::from_le([b[0], b[1], b[2], b[3]])),
            );
            filled += want;
        }
        self.dims.get_or_insert(dims);
        self.index += 1;
        self.offset += 4 + value_bytes as u64;
        Ok(Some(dims))
    }

    /// Reserves room in `out` for as many more vectors of `dims` values as the rest of the
    /// input can hold, when its length is known. The bound is the file's real length, never
    /// a header.
    fn reserve_rest(&self, out: &mut Vec<T>, dims: usize) {
        let Some(len) = self.len_hint else { return };
        let remaining = len.saturating_sub(self.offset);
        let rows = remaining / (4 + 4 * dims as u64);
        if let Ok(values) = usize::try_from(rows.saturating_mul(dims as u64)) {
            out.reserve(values);
        }
    }

    fn io(&self, source: io::Error) -> VecsError {
        VecsError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn truncated(&self, part: &'static str, expected: u64, found: u64) -> VecsError {
        VecsError::Truncated {
            path: self.path.clone(),
            index: self.index,
            offset: self.offset,
            part,
            expected,
            found,
        }
    }

    /// Reads every remaining vector, one `Vec` each.
    pub fn read_rows(mut self) -> Result<Vec<Vec<T>>, VecsError> {
        let mut rows = Vec::new();
        let mut row = Vec::new();
        while self.next_into(&mut row)?.is_some() {
            rows.push(std::mem::take(&mut row));
        }
        Ok(rows)
    }

    /// Reads every remaining vector into one row-major matrix; returns `(dims, values)`
    /// (`dims` is 0 when there are no vectors). For `.ivecs`, whose rows may differ in
    /// length, rows of another length than the first are an
    /// [`VecsError::InconsistentDimension`] here.
    pub fn read_matrix(mut self) -> Result<(usize, Vec<T>), VecsError> {
        let mut values = Vec::new();
        let mut first = None;
        loop {
            let (index, offset) = (self.index, self.offset);
            let Some(dims) = self.next_into(&mut values)? else {
                break;
            };
            match first {
                None => {
                    first = Some(dims);
                    self.reserve_rest(&mut values, dims);
                }
                Some(expected) if expected != dims => {
                    return Err(VecsError::InconsistentDimension {
                        path: self.path,
                        index,
                        offset,
                        expected,
                        got: dims,
                    })
                }
                Some(_) => {}
            }
        }
        Ok((first.unwrap_or(0), values))
    }
}

impl<R: Read, T: VecsElement> Iterator for VecsReader<R, T> {
    type Item = Result<Vec<T>, VecsError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut row = Vec::new();
        self.next_into(&mut row).transpose().map(|r| r.map(|_| row))
    }
}

/// A streaming writer of `.fvecs` ([`FvecsWriter`]) or `.ivecs` ([`IvecsWriter`]) vectors,
/// buffered internally. It checks what it writes by the reader's rules (so the file always
/// reads back) and writes nothing for a vector it refuses.
///
/// Call [`finish`](Self::finish): it flushes and reports the last write's error. Dropping
/// the writer flushes too, but silently drops that error.
#[derive(Debug)]
pub struct VecsWriter<W: Write, T> {
    inner: BufWriter<W>,
    path: PathBuf,
    index: u64,
    offset: u64,
    dims: Option<usize>,
    bytes: Vec<u8>,
    _values: PhantomData<fn(T)>,
}

/// A streaming `.fvecs` writer (f32 vectors, all of one dimension).
pub type FvecsWriter<W> = VecsWriter<W, f32>;
/// A streaming `.ivecs` writer (i32 rows, each of its own length).
pub type IvecsWriter<W> = VecsWriter<W, i32>;

impl<T: VecsElement> VecsWriter<File, T> {
    /// Creates (or truncates) the file at `path`; errors name `path`.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, VecsError> {
        let path = path.as_ref();
        let file = File::create(path).map_err(|source| VecsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(VecsWriter::new(file).with_path(path))
    }
}

impl<W: Write, T: VecsElement> VecsWriter<W, T> {
    /// A writer over any byte sink, buffered internally. Its errors name the file
    /// `<stream>` unless [`with_path`](Self::with_path) gives a name.
    pub fn new(inner: W) -> Self {
        VecsWriter {
            inner: BufWriter::with_capacity(CHUNK_BYTES, inner),
            path: PathBuf::from(STREAM),
            index: 0,
            offset: 0,
            dims: None,
            bytes: Vec::new(),
            _values: PhantomData,
        }
    }

    /// Names the output in error messages (the writer does not open it).
    pub fn with_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = path.into();
        self
    }

    /// How many vectors have been written.
    pub fn count(&self) -> u64 {
        self.index
    }

    /// Writes one vector. Refused, with nothing written: a length outside the format's
    /// range ([`VecsError::BadDimension`]) or, for `.fvecs`, another length than the first
    /// vector's ([`VecsError::InconsistentDimension`]).
    pub fn write(&mut self, values: &[T]) -> Result<(), VecsError> {
        let declared = i64::try_from(values.len()).unwrap_or(i64::MAX);
        let dims = check_dims::<T>(&self.path, self.index, self.offset, declared, self.dims)?;
        // `dims <= MAX_DIMS < i32::MAX`, checked just above.
        let header = i32::try_from(dims).unwrap_or(i32::MAX);
        self.bytes.clear();
        self.bytes.reserve(4 + 4 * dims);
        self.bytes.extend_from_slice(&header.to_le_bytes());
        for &v in values {
            self.bytes.extend_from_slice(&v.to_le());
        }
        self.inner
            .write_all(&self.bytes)
            .map_err(|source| VecsError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.dims.get_or_insert(dims);
        self.index += 1;
        self.offset += self.bytes.len() as u64;
        Ok(())
    }

    /// Writes a row-major matrix of vectors of `dims` values each. `values` must hold a
    /// whole number of rows ([`VecsError::Shape`] otherwise, with nothing written); an
    /// empty `values` writes nothing.
    pub fn write_matrix(&mut self, dims: usize, values: &[T]) -> Result<(), VecsError> {
        if values.is_empty() {
            return Ok(());
        }
        if dims == 0 || values.len() % dims != 0 {
            return Err(VecsError::Shape {
                path: self.path.clone(),
                dims,
                len: values.len(),
            });
        }
        values
            .chunks_exact(dims)
            .try_for_each(|row| self.write(row))
    }

    /// Flushes everything written and returns the underlying sink.
    pub fn finish(self) -> Result<W, VecsError> {
        let path = self.path;
        self.inner.into_inner().map_err(|e| VecsError::Io {
            path,
            source: e.into_error(),
        })
    }
}

/// Reads a whole `.fvecs` file into one row-major matrix: `(dims, values)`, where vector
/// `i` is `values[i * dims..(i + 1) * dims]` (`dims` is 0 for an empty file). The buffer is
/// sized once from the file's length.
pub fn read_fvecs(path: impl AsRef<Path>) -> Result<(usize, Vec<f32>), VecsError> {
    FvecsReader::open(path)?.read_matrix()
}

/// Reads a whole `.ivecs` file, one `Vec` per row (rows may differ in length).
pub fn read_ivecs(path: impl AsRef<Path>) -> Result<Vec<Vec<i32>>, VecsError> {
    IvecsReader::open(path)?.read_rows()
}

/// Writes a row-major matrix of `dims`-dimensional vectors as a `.fvecs` file (created or
/// truncated). `values` must hold a whole number of vectors; an empty `values` writes an
/// empty file.
pub fn write_fvecs(path: impl AsRef<Path>, dims: usize, values: &[f32]) -> Result<(), VecsError> {
    let mut writer = FvecsWriter::create(path)?;
    writer.write_matrix(dims, values)?;
    writer.finish().map(drop)
}

/// Writes rows of `i32` (for example ground-truth neighbour ids) as a `.ivecs` file (created
/// or truncated). Rows may differ in length, each up to [`MAX_DIMS`].
pub fn write_ivecs<I>(path: impl AsRef<Path>, rows: I) -> Result<(), VecsError>
where
    I: IntoIterator,
    I::Item: AsRef<[i32]>,
{
    let mut writer = IvecsWriter::create(path)?;
    for row in rows {
        writer.write(row.as_ref())?;
    }
    writer.finish().map(drop)
}
