//! Vectorize's limits and the validators that enforce them.
//!
//! Every validator returns a [`VectorizeError`] with Vectorize's code, and with its exact
//! message wherever the live message is on record (ids, dimensions, metadata size, topK, id
//! counts). The others are d1vec's own wording, in the same style.

use serde_json::Value;

use super::error::{codes, VectorizeError};
use super::types::ReturnMetadata;
use crate::index::Metric;

/// The most dimensions an index may have.
pub const MAX_DIMENSIONS: usize = 1536;
/// The longest vector id, in UTF-8 bytes.
pub const MAX_ID_BYTES: usize = 64;
/// The longest namespace, in UTF-8 bytes.
pub const MAX_NAMESPACE_BYTES: usize = 64;
/// The largest metadata, as compact JSON bytes.
pub const MAX_METADATA_BYTES: usize = 10240;
/// The largest `topK` without values and with metadata `none` or `indexed`.
pub const MAX_TOP_K: usize = 100;
/// The largest `topK` with `returnValues: true` or `returnMetadata: "all"`.
pub const MAX_TOP_K_WITH_DATA: usize = 50;
/// The `topK` of a query that gives none.
pub const DEFAULT_TOP_K: usize = 5;
/// The most ids one `getByIds` call may name.
pub const MAX_GET_IDS: usize = 20;
/// The most ids one `deleteByIds` call may name.
pub const MAX_DELETE_IDS: usize = 100;
/// The most vectors one insert or upsert call may carry (the binding's limit).
pub const MAX_BATCH: usize = 1000;
/// The most vectors one insert or upsert batch read from a file may carry (the HTTP limit).
pub const MAX_FILE_BATCH: usize = 5000;
/// The most metadata indexes one index may have.
pub const MAX_METADATA_INDEXES: usize = 10;
/// The most distinct namespaces one index may hold (Workers Paid).
pub const MAX_NAMESPACES: usize = 50_000;
/// The longest index name, in bytes.
pub const MAX_INDEX_NAME_BYTES: usize = 64;
/// The most vectors one index may hold (Workers Paid).
pub const MAX_VECTORS_PER_INDEX: usize = 20_000_000;
/// The largest upload, in bytes: Cloudflare documents "100 MB"; d1vec reads it as decimal
/// megabytes (the stricter reading), and applies it to each batch read from a file, since
/// wrangler uploads each batch as one request.
pub const MAX_UPLOAD_BYTES: usize = 100_000_000;
/// The default `--batch-size` of `vectorize insert`/`upsert` (Cloudflare's documented
/// default; see vectorize.md's decisions for wrangler's source disagreeing).
pub const DEFAULT_FILE_BATCH: usize = 5000;
/// The most ids one list-vectors page may hold.
pub const MAX_LIST_COUNT: usize = 1000;
/// The ids per list-vectors page when no count is given.
pub const DEFAULT_LIST_COUNT: usize = 100;

/// Checks an index name: 1 to 64 bytes of ASCII letters, digits, `-` and `_`, starting with a
/// letter or a digit. (Cloudflare documents the length and recommends lowercase letters, digits
/// and dashes; the character rule is d1vec's, so that a name is always safe in a URL path and a
/// file name.) Error code 40038.
pub fn validate_index_name(name: &str) -> Result<(), VectorizeError> {
    let bad = |why: String| {
        VectorizeError::new(
            codes::INVALID_INDEX_CONFIG,
            format!("invalid index name {name:?}: {why}"),
        )
    };
    if name.is_empty() {
        return Err(bad("the name must not be empty".into()));
    }
    if name.len() > MAX_INDEX_NAME_BYTES {
        return Err(bad(format!(
            "max length is {MAX_INDEX_NAME_BYTES} bytes, got {} bytes",
            name.len()
        )));
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(bad("the name must start with a letter or a digit".into()));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(bad(format!(
            "{c:?} is not allowed; use ASCII letters, digits, '-' and '_'"
        )));
    }
    Ok(())
}

/// Checks an index's dimension count: 1 to 1536. Error code 40038.
pub fn validate_dimensions(dimensions: usize) -> Result<(), VectorizeError> {
    if (1..=MAX_DIMENSIONS).contains(&dimensions) {
        Ok(())
    } else {
        Err(VectorizeError::new(
            codes::INVALID_INDEX_CONFIG,
            format!("invalid dimensions; must be between 1 and {MAX_DIMENSIONS}, got {dimensions}"),
        ))
    }
}

/// Checks a vector id: not empty (40035) and at most 64 UTF-8 bytes (40008, Vectorize's message
/// `id too long; max is 64 bytes, got <n> bytes`).
pub fn validate_id(id: &str) -> Result<(), VectorizeError> {
    if id.is_empty() {
        return Err(VectorizeError::new(
            codes::INVALID_VECTOR,
            "invalid vector id; the id must not be empty",
        ));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(VectorizeError::new(
            codes::ID_TOO_LONG,
            format!(
                "id too long; max is {MAX_ID_BYTES} bytes, got {} bytes",
                id.len()
            ),
        ));
    }
    Ok(())
}

/// Checks a namespace: not empty and at most 64 UTF-8 bytes. Error code 40032.
pub fn validate_namespace(namespace: &str) -> Result<(), VectorizeError> {
    if namespace.is_empty() {
        return Err(VectorizeError::new(
            codes::INVALID_NAMESPACE,
            "invalid namespace; the namespace must not be empty (leave it out instead)",
        ));
    }
    if namespace.len() > MAX_NAMESPACE_BYTES {
        return Err(VectorizeError::new(
            codes::INVALID_NAMESPACE,
            format!(
                "namespace too long; max is {MAX_NAMESPACE_BYTES} bytes, got {} bytes",
                namespace.len()
            ),
        ));
    }
    Ok(())
}

/// The size of `value` as compact JSON, in bytes (the measure of the metadata limit).
pub fn compact_json_len(value: &Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing a `Value` to a sink that never fails cannot fail.
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.0,
        Err(_) => usize::MAX,
    }
}

/// Checks a vector's metadata: a JSON object (40033) whose compact JSON is at most 10,240 bytes
/// (40016, Vectorize's message), and whose keys, at every nesting level (inside arrays too), are
/// not empty, contain no `.` and no `"`, and do not start with `$` (40033).
pub fn validate_metadata(id: &str, metadata: &Value) -> Result<(), VectorizeError> {
    if !metadata.is_object() {
        return Err(VectorizeError::new(
            codes::INVALID_METADATA,
            format!("invalid metadata for vector id={id:?}; metadata must be a JSON object"),
        ));
    }
    let size = compact_json_len(metadata);
    if size > MAX_METADATA_BYTES {
        return Err(VectorizeError::new(
            codes::OVERSIZED_METADATA,
            format!(
                "oversized metadata for vector id={id:?}; the compact JSON representation of the \
                 metadata must not exceed {MAX_METADATA_BYTES} bytes, got {size} bytes"
            ),
        ));
    }
    // Walk with an explicit stack: a `Value` built in code may be nested deeper than the
    // parser's recursion limit.
    let mut stack: Vec<(String, &Value)> = vec![(String::new(), metadata)];
    while let Some((path, value)) = stack.pop() {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    if let Some(why) = metadata_key_problem(key) {
                        let at = if path.is_empty() {
                            String::new()
                        } else {
                            format!(" (inside {path})")
                        };
                        return Err(VectorizeError::new(
                            codes::INVALID_METADATA,
                            format!("invalid metadata key {key:?}{at} for vector id={id:?}; {why}"),
                        ));
                    }
                    if child.is_object() || child.is_array() {
                        let child_path = if path.is_empty() {
                            key.clone()
                        } else {
                            format!("{path}.{key}")
                        };
                        stack.push((child_path, child));
                    }
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    if child.is_object() || child.is_array() {
                        stack.push((format!("{path}[{i}]"), child));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Why a metadata key is not allowed, if it is not.
fn metadata_key_problem(key: &str) -> Option<&'static str> {
    if key.is_empty() {
        Some("keys must not be empty")
    } else if key.starts_with('$') {
        Some("keys must not start with '$'")
    } else if key.contains('.') {
        Some("keys must not contain '.'")
    } else if key.contains('"') {
        Some("keys must not contain '\"'")
    } else {
        None
    }
}

/// Rounds `values` to float32 and checks them; `what` names the vector in messages.
fn to_f32(values: &[f64], metric: Metric, what: &str) -> Result<Vec<f32>, VectorizeError> {
    let mut out = Vec::with_capacity(values.len());
    for (i, &v) in values.iter().enumerate() {
        if !v.is_finite() {
            return Err(VectorizeError::new(
                codes::INVALID_VECTOR,
                format!("{what}; the value at index {i} is not a finite number ({v})"),
            ));
        }
        let f = v as f32;
        if !f.is_finite() {
            return Err(VectorizeError::new(
                codes::INVALID_VECTOR,
                format!("{what}; the value at index {i} ({v}) is outside the float32 range"),
            ));
        }
        out.push(f);
    }
    if metric == Metric::Cosine && out.iter().all(|&f| f == 0.0) {
        return Err(VectorizeError::new(
            codes::INVALID_VECTOR,
            format!(
                "{what}; all values are zero (after rounding to float32), and a zero vector has \
                 no direction under the cosine metric"
            ),
        ));
    }
    Ok(out)
}

/// Checks a written vector's values against its index and returns them as float32: the length
/// must equal `dimensions` (40012, Vectorize's message); every value must be finite and within
/// the float32 range, and under cosine not all zero after rounding (40035).
pub fn validate_values(
    id: &str,
    values: &[f64],
    dimensions: usize,
    metric: Metric,
) -> Result<Vec<f32>, VectorizeError> {
    if values.len() != dimensions {
        return Err(VectorizeError::new(
            codes::VECTOR_DIMENSIONS,
            format!(
                "invalid vector for id={id:?}, expected {dimensions} dimensions, and got {} dimensions",
                values.len()
            ),
        ));
    }
    to_f32(values, metric, &format!("invalid vector for id={id:?}"))
}

/// Checks a query vector against its index and returns it as float32: the length must equal
/// `dimensions` (40006, Vectorize's message); the values are checked as in [`validate_values`]
/// (40035).
pub fn validate_query_vector(
    values: &[f64],
    dimensions: usize,
    metric: Metric,
) -> Result<Vec<f32>, VectorizeError> {
    if values.len() != dimensions {
        return Err(VectorizeError::new(
            codes::QUERY_VECTOR_DIMENSIONS,
            format!(
                "invalid query vector, expected {dimensions} dimensions, and got {} dimensions",
                values.len()
            ),
        ));
    }
    to_f32(values, metric, "invalid query vector")
}

/// The `topK` cap for a query: 50 with values or all metadata, 100 otherwise.
pub fn top_k_cap(return_values: bool, return_metadata: ReturnMetadata) -> usize {
    if return_values || return_metadata == ReturnMetadata::All {
        MAX_TOP_K_WITH_DATA
    } else {
        MAX_TOP_K
    }
}

/// Checks a query's `topK` (40025): at least 1, at most 50 with `returnValues: true` or
/// `returnMetadata: "all"` (Vectorize's message), at most 100 otherwise. Never clamps.
pub fn check_top_k(
    top_k: usize,
    return_values: bool,
    return_metadata: ReturnMetadata,
) -> Result<(), VectorizeError> {
    if top_k == 0 {
        return Err(VectorizeError::new(
            codes::TOP_K,
            "invalid top K; min top K is 1, but got 0",
        ));
    }
    let cap = top_k_cap(return_values, return_metadata);
    if top_k <= cap {
        Ok(())
    } else if cap == MAX_TOP_K_WITH_DATA {
        Err(VectorizeError::new(
            codes::TOP_K,
            format!(
                "with returnValues=true or returnMetadata=all, max top K is \
                 {MAX_TOP_K_WITH_DATA}, but got {top_k}"
            ),
        ))
    } else {
        Err(VectorizeError::new(
            codes::TOP_K,
            format!("max top K is {MAX_TOP_K}, but got {top_k}"),
        ))
    }
}

fn check_ids(n: usize, max: usize) -> Result<(), VectorizeError> {
    if n <= max {
        Ok(())
    } else {
        Err(VectorizeError::new(
            codes::TOO_MANY_IDS,
            format!("too many ids in payload; max id count is {max}, got {n}"),
        ))
    }
}

/// Checks the id count of a `getByIds` call: at most 20 (40007, Vectorize's message).
pub fn check_get_ids(n: usize) -> Result<(), VectorizeError> {
    check_ids(n, MAX_GET_IDS)
}

/// Checks the id count of a `deleteByIds` call: at most 100 (40007, Vectorize's message).
pub fn check_delete_ids(n: usize) -> Result<(), VectorizeError> {
    check_ids(n, MAX_DELETE_IDS)
}

/// Checks the size of one insert or upsert batch against `max` ([`MAX_BATCH`] or
/// [`MAX_FILE_BATCH`]). Error code 40037.
pub fn check_batch(n: usize, max: usize) -> Result<(), VectorizeError> {
    if n <= max {
        Ok(())
    } else {
        Err(VectorizeError::new(
            codes::BATCH_TOO_LARGE,
            format!("too many vectors in one batch; max is {max}, got {n}"),
        ))
    }
}

/// Checks that an index holding `count` vectors is within `max` (normally
/// [`MAX_VECTORS_PER_INDEX`]). Error code 40043, naming the index, the limit and the count.
pub fn check_vector_count(index: &str, count: usize, max: usize) -> Result<(), VectorizeError> {
    if count <= max {
        Ok(())
    } else {
        Err(VectorizeError::new(
            codes::TOO_MANY_VECTORS,
            format!(
                "index `{index}` would hold {count} vectors; an index holds at most {max} vectors"
            ),
        ))
    }
}

/// The error for an upload of `got` bytes (so far, at line `line_no`) past `max`. Code 40044.
pub fn upload_too_large(max: usize, got: usize, line_no: usize) -> VectorizeError {
    VectorizeError::new(
        codes::UPLOAD_TOO_LARGE,
        format!(
            "upload too large: the batch reaches {got} bytes at line {line_no}; max is {max} \
             bytes per upload (use a smaller --batch-size)"
        ),
    )
}

/// Checks a list-vectors page size (1 to 1000; `None` gives 100). Error code 40026.
pub fn check_list_count(count: Option<usize>) -> Result<usize, VectorizeError> {
    match count {
        None => Ok(DEFAULT_LIST_COUNT),
        Some(n) if (1..=MAX_LIST_COUNT).contains(&n) => Ok(n),
        Some(n) => Err(VectorizeError::new(
            codes::INVALID_REQUEST_BODY,
            format!("invalid count; must be between 1 and {MAX_LIST_COUNT}, got {n}"),
        )),
    }
}

/// Checks that an index with `existing` metadata indexes may get one more (at most 10).
/// Error code 40034.
pub fn check_metadata_index_count(existing: usize) -> Result<(), VectorizeError> {
    if existing < MAX_METADATA_INDEXES {
        Ok(())
    } else {
        Err(VectorizeError::new(
            codes::TOO_MANY_METADATA_INDEXES,
            format!(
                "too many metadata indexes; max is {MAX_METADATA_INDEXES} per index, and this \
                 index has {existing}"
            ),
        ))
    }
}

/// Checks that an index may hold `count` distinct namespaces (at most 50,000). Error code 40040.
pub fn check_namespace_count(count: usize) -> Result<(), VectorizeError> {
    if count <= MAX_NAMESPACES {
        Ok(())
    } else {
        Err(VectorizeError::new(
            codes::TOO_MANY_NAMESPACES,
            format!("too many namespaces; max is {MAX_NAMESPACES} per index, got {count}"),
        ))
    }
}
