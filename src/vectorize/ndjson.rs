//! NDJSON vectors, as `wrangler vectorize insert|upsert --file` and the REST insert and upsert
//! endpoints take them: one JSON object per line, `{"id", "values", "namespace"?, "metadata"?}`.

use std::io::{BufRead, Read, Write};

use super::error::{codes, VectorizeError};
use super::types::{vector_from_json, Vector};

/// What the reader does with a line that is not a valid vector object (the REST API's
/// `unparsable-behavior` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unparsable {
    /// Fail with error 40023 naming the line (the default).
    #[default]
    Error,
    /// Skip the line and count it (see [`NdjsonReader::discarded`]).
    Discard,
}

/// The longest line the reader accepts, in bytes (without its line ending). A vector within
/// Vectorize's limits (1536 values, 10 KiB metadata) is far shorter.
pub const MAX_LINE_BYTES: usize = 1 << 20;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads NDJSON vectors: one JSON object per line (`{id, values, namespace?, metadata?}`);
/// blank lines are skipped; CRLF line endings and a UTF-8 BOM at the start are accepted. A line
/// that is not a valid vector object: with [`Unparsable::Error`] → error 40023 naming the line
/// number and what is wrong (never the line's content); with [`Unparsable::Discard`] → skipped
/// and counted.
///
/// Streaming: yields batches of at most `batch_size` vectors from any `BufRead`, holding one
/// line and one batch in memory. Only the shape of each line is checked (id a string, values an
/// array of numbers, namespace a string, metadata an object); limits are checked later with
/// [`super::limits`]. After an error the iterator ends; batches yielded before it stand.
#[derive(Debug)]
pub struct NdjsonReader<R: BufRead> {
    input: R,
    batch_size: usize,
    unparsable: Unparsable,
    lines_read: usize,
    discarded: usize,
    done: bool,
    line: Vec<u8>,
    /// Bytes of the last line read, line ending included.
    line_bytes: usize,
    /// The most bytes one batch may span (Vectorize's upload limit: one batch is one upload).
    max_batch_bytes: usize,
}

/// A reader of `input` yielding batches of at most `batch_size` vectors (0 counts as 1).
pub fn reader<R: BufRead>(input: R, batch_size: usize, unparsable: Unparsable) -> NdjsonReader<R> {
    NdjsonReader {
        input,
        batch_size: batch_size.max(1),
        unparsable,
        lines_read: 0,
        discarded: 0,
        done: false,
        line: Vec::new(),
        line_bytes: 0,
        max_batch_bytes: super::limits::MAX_UPLOAD_BYTES,
    }
}

/// One line read from the input.
enum Line {
    /// The end of the input.
    End,
    /// A line within [`MAX_LINE_BYTES`], in `NdjsonReader::line` (line ending removed).
    Text,
    /// A longer line, skipped to its end; holds its length.
    TooLong(usize),
}

impl<R: BufRead> NdjsonReader<R> {
    /// Lowers (or raises) the most bytes one batch may span, default
    /// [`super::limits::MAX_UPLOAD_BYTES`]; a batch past it ends the reader with error
    /// 40044 (tests use a small value rather than a 100 MB file).
    pub fn with_max_batch_bytes(mut self, max: usize) -> Self {
        self.max_batch_bytes = max;
        self
    }

    /// How many unparsable lines were skipped so far (with [`Unparsable::Discard`]).
    pub fn discarded(&self) -> usize {
        self.discarded
    }

    /// How many lines were read so far, blank lines included.
    pub fn lines_read(&self) -> usize {
        self.lines_read
    }

    /// Reads the next line into `self.line`.
    fn read_line(&mut self) -> std::io::Result<Line> {
        self.line.clear();
        let limit = MAX_LINE_BYTES as u64 + 2; // room for "\r\n"
        let n = (&mut self.input)
            .take(limit)
            .read_until(b'\n', &mut self.line)?;
        self.line_bytes = n;
        if n == 0 {
            return Ok(Line::End);
        }
        self.lines_read += 1;
        if self.line.last() == Some(&b'\n') {
            self.line.pop();
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
        } else if n as u64 == limit {
            // No line ending within the limit: skip the rest of this line.
            let mut total = n;
            loop {
                let (skip, found) = {
                    let buf = self.input.fill_buf()?;
                    if buf.is_empty() {
                        break;
                    }
                    match buf.iter().position(|&b| b == b'\n') {
                        Some(i) => (i + 1, true),
                        None => (buf.len(), false),
                    }
                };
                self.input.consume(skip);
                total += skip;
                if found {
                    break;
                }
            }
            self.line.clear();
            self.line_bytes = total;
            return Ok(Line::TooLong(total));
        } else if self.line.last() == Some(&b'\r') {
            // A final line ending in a lone CR.
            self.line.pop();
        }
        if self.line.len() > MAX_LINE_BYTES {
            let len = self.line.len();
            self.line.clear();
            return Ok(Line::TooLong(len));
        }
        if self.lines_read == 1 && self.line.starts_with(BOM) {
            self.line.drain(..BOM.len());
        }
        Ok(Line::Text)
    }

    fn fail(&mut self, why: String) -> Option<Result<Vec<Vector>, VectorizeError>> {
        self.done = true;
        Some(Err(VectorizeError::new(
            codes::UNPARSABLE_VECTORS,
            format!("failed to parse vectors in NDJSON format: {why}"),
        )))
    }
}

impl<R: BufRead> Iterator for NdjsonReader<R> {
    type Item = Result<Vec<Vector>, VectorizeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut batch = Vec::new();
        let mut batch_bytes = 0usize;
        while batch.len() < self.batch_size {
            let line_no = self.lines_read + 1;
            let line = self.read_line();
            batch_bytes = batch_bytes.saturating_add(self.line_bytes);
            if batch_bytes > self.max_batch_bytes {
                self.done = true;
                return Some(Err(super::limits::upload_too_large(
                    self.max_batch_bytes,
                    batch_bytes,
                    line_no,
                )));
            }
            let problem = match line {
                Err(e) => return self.fail(format!("reading line {line_no}: {e}")),
                Ok(Line::End) => {
                    self.done = true;
                    break;
                }
                Ok(Line::TooLong(len)) => format!(
                    "line {line_no}: the line is {len} bytes long; max is {MAX_LINE_BYTES} bytes"
                ),
                Ok(Line::Text) => match parse_line(&self.line, line_no) {
                    Ok(None) => continue,
                    Ok(Some(v)) => {
                        batch.push(v);
                        continue;
                    }
                    Err(e) => e,
                },
            };
            match self.unparsable {
                Unparsable::Error => return self.fail(problem),
                Unparsable::Discard => self.discarded += 1,
            }
        }
        if batch.is_empty() {
            None
        } else {
            Some(Ok(batch))
        }
    }
}

/// Parses one NDJSON line (without its line ending; a trailing `\r` is allowed): `Ok(None)`
/// for a blank line, `Ok(Some(vector))` for a vector object, and otherwise what is wrong,
/// prefixed with `line <line_no>`.
pub fn parse_line(line: &[u8], line_no: usize) -> Result<Option<Vector>, String> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
        return Ok(None);
    }
    let value: serde_json::Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => {
            // serde_json appends " at line 1 column N"; report the column against our line.
            let text = e.to_string();
            let what = text
                .rsplit_once(" at line ")
                .map_or(text.as_str(), |(w, _)| w);
            return Err(format!(
                "line {line_no}, column {}: invalid JSON: {what}",
                e.column()
            ));
        }
    };
    vector_from_json(&value)
        .map(Some)
        .map_err(|why| format!("line {line_no}: {why}"))
}

/// Writes `v` as one NDJSON line (compact JSON and `\n`, values rounded to float32), as
/// `wrangler vectorize insert --file` accepts it. Values that are not finite are written as
/// `null`, which no reader accepts: write validated vectors.
pub fn write_vector(out: &mut dyn Write, v: &Vector) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(v).map_err(std::io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_line_may_end_in_a_lone_cr_and_counts_as_a_line() {
        let input = b"{\"id\":\"a\",\"values\":[1]}\r\n{\"id\":\"b\",\"values\":[2]}\r";
        let mut r = reader(&input[..], 10, Unparsable::Error);
        let batch = r.next().and_then(Result::ok).unwrap_or_default();
        assert_eq!(
            batch.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert!(r.next().is_none());
        assert_eq!(r.lines_read(), 2);
    }

    #[test]
    fn errors_end_the_iteration() {
        let input = b"x\n{\"id\":\"a\",\"values\":[1]}\n";
        let mut r = reader(&input[..], 1, Unparsable::Error);
        assert!(matches!(r.next(), Some(Err(e)) if e.code == codes::UNPARSABLE_VECTORS));
        assert!(r.next().is_none());
        assert_eq!(r.lines_read(), 1);
    }
}
