//! Vectorize's error shape: a numeric code and a message, as the service sends them
//! (`{"code": N, "error": "..."}`), and the message the Workers binding throws for them.

use serde_json::json;

/// Vectorize's operation prefixes for binding-style messages (`<OP>_ERROR (code = N): ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `describe()`: `INDEX_GET`.
    IndexGet,
    /// `query()` and `queryById()`: `VECTOR_QUERY`.
    VectorQuery,
    /// `insert()`: `VECTOR_INSERT`.
    VectorInsert,
    /// `upsert()`: `VECTOR_UPSERT`.
    VectorUpsert,
    /// `getByIds()`: `VECTOR_GET`.
    VectorGet,
    /// `deleteByIds()`: `VECTOR_DELETE`.
    VectorDelete,
    /// Anything the binding has no method for (index and metadata-index management, listing):
    /// d1vec's own prefix `VECTORIZE`.
    Other,
}

impl Op {
    /// The prefix the binding puts before `_ERROR`, e.g. `VECTOR_QUERY`.
    pub fn prefix(self) -> &'static str {
        match self {
            Op::IndexGet => "INDEX_GET",
            Op::VectorQuery => "VECTOR_QUERY",
            Op::VectorInsert => "VECTOR_INSERT",
            Op::VectorUpsert => "VECTOR_UPSERT",
            Op::VectorGet => "VECTOR_GET",
            Op::VectorDelete => "VECTOR_DELETE",
            Op::Other => "VECTORIZE",
        }
    }
}

/// A Vectorize error: the code and message the service would send (`{"code": N, "error": "..."}`).
///
/// The codes are in [`codes`]; where the live service's message is on record, d1vec uses
/// it word for word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct VectorizeError {
    /// The numeric code (one of [`codes`]).
    pub code: u32,
    /// The message, without any operation prefix.
    pub message: String,
}

impl VectorizeError {
    /// An error with `code` and `message`.
    pub fn new(code: u32, message: impl Into<String>) -> Self {
        VectorizeError {
            code,
            message: message.into(),
        }
    }

    /// The binding's thrown message: `"<OP>_ERROR (code = N): <message>"`.
    pub fn binding_message(&self, op: Op) -> String {
        format!(
            "{}_ERROR (code = {}): {}",
            op.prefix(),
            self.code,
            self.message
        )
    }

    /// The service's error body: `{"code": N, "error": "<message>"}`.
    pub fn to_json(&self) -> serde_json::Value {
        json!({ "code": self.code, "error": self.message })
    }

    /// `3000`: no index of that name (the service's wording).
    pub fn index_not_found(name: &str) -> Self {
        Self::new(
            codes::INDEX_NOT_FOUND,
            format!("vectorize.index.not_found - Index name {name:?}"),
        )
    }

    /// `3002`: an index of that name already exists (the service's wording).
    pub fn duplicate_index_name(name: &str) -> Self {
        Self::new(
            codes::DUPLICATE_INDEX_NAME,
            format!("vectorize.index.duplicate_name - Index name {name:?}"),
        )
    }

    /// `40005`: no metadata index on that property.
    pub fn metadata_index_not_found(property: &str) -> Self {
        Self::new(
            codes::METADATA_INDEX_NOT_FOUND,
            format!("metadata index not found for property {property:?}"),
        )
    }
}

/// The error codes. Vectorize's own where they are on record (3000, 3002, 40005 through 40026);
/// d1vec's own from 40030 on, for cases whose live code is unknown.
pub mod codes {
    /// No index of that name.
    pub const INDEX_NOT_FOUND: u32 = 3000;
    /// Creating an index whose name is taken.
    pub const DUPLICATE_INDEX_NAME: u32 = 3002;
    /// Deleting (or using) a metadata index that does not exist.
    pub const METADATA_INDEX_NOT_FOUND: u32 = 40005;
    /// A query vector whose length differs from the index's dimensions.
    pub const QUERY_VECTOR_DIMENSIONS: u32 = 40006;
    /// Too many ids in one `getByIds` (20) or `deleteByIds` (100) call.
    pub const TOO_MANY_IDS: u32 = 40007;
    /// A vector id longer than 64 bytes.
    pub const ID_TOO_LONG: u32 = 40008;
    /// A written vector whose length differs from the index's dimensions.
    pub const VECTOR_DIMENSIONS: u32 = 40012;
    /// Metadata whose compact JSON exceeds 10,240 bytes.
    pub const OVERSIZED_METADATA: u32 = 40016;
    /// An NDJSON (or JSON) vectors payload that cannot be parsed.
    pub const UNPARSABLE_VECTORS: u32 = 40023;
    /// `topK` above its cap (100, or 50 with values or all metadata), or below 1.
    pub const TOP_K: u32 = 40025;
    /// A request body with a field of the wrong type (e.g. `returnMetadata: false`); d1vec also
    /// uses it for an out-of-range list-vectors `count`.
    pub const INVALID_REQUEST_BODY: u32 = 40026;
    /// d1vec: a metadata filter that breaks the filter grammar.
    pub const INVALID_FILTER: u32 = 40030;
    /// d1vec: a filter on a property that has no metadata index.
    pub const FILTER_WITHOUT_METADATA_INDEX: u32 = 40031;
    /// d1vec: a namespace that is empty or longer than 64 bytes.
    pub const INVALID_NAMESPACE: u32 = 40032;
    /// d1vec: metadata that is not an object, or has a key that is empty, contains `.` or `"`,
    /// or starts with `$`.
    pub const INVALID_METADATA: u32 = 40033;
    /// d1vec: creating an eleventh metadata index.
    pub const TOO_MANY_METADATA_INDEXES: u32 = 40034;
    /// d1vec: vector values that are not finite, overflow float32, or are all zero under the
    /// cosine metric; also an empty id.
    pub const INVALID_VECTOR: u32 = 40035;
    /// d1vec: `queryById` with an id the index does not hold.
    pub const QUERY_ID_NOT_FOUND: u32 = 40036;
    /// d1vec: more vectors in one write than the batch limit (1,000, or 5,000 from a file).
    pub const BATCH_TOO_LARGE: u32 = 40037;
    /// d1vec: an invalid index name, dimension count, metric or preset.
    pub const INVALID_INDEX_CONFIG: u32 = 40038;
    /// d1vec: creating a metadata index on a property that already has one.
    pub const DUPLICATE_METADATA_INDEX: u32 = 40039;
    /// d1vec: a write that would take an index past 50,000 namespaces.
    pub const TOO_MANY_NAMESPACES: u32 = 40040;
    /// Rate limited: the service's "Too Many Requests"; d1vec raises it when a tenant's
    /// quota bucket is empty (`tenant::quota`).
    pub const TOO_MANY_REQUESTS: u32 = 40041;
    /// d1vec's own code (Cloudflare documents none): a write that would take an index past 20,000,000 vectors.
    pub const TOO_MANY_VECTORS: u32 = 40043;
    /// d1vec's own code (Cloudflare documents none): one upload (a batch read from a file) larger than 100 MB.
    pub const UPLOAD_TOO_LARGE: u32 = 40044;
}
