//! Vectorize v2 over REST: index management and [`RemoteIndex`], whose methods mirror
//! [`crate::vectorize::VectorIndex`].

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value as Json};

use super::http::{segment, Call};
use super::retry::Idempotency::{Safe, Unsafe};
use super::Cloudflare;
use crate::error::{Error, Result};
use crate::index::Metric;
use crate::vectorize::filter::eval::IndexType;
use crate::vectorize::limits;
use crate::vectorize::types::{
    CreateIndexRequest, IndexDescription, IndexInfo, ListVectorsResponse, Matches, MetadataIndex,
    MetadataIndexList, MutationResult, QueryOptions, Vector,
};

/// The largest insert or upsert body Vectorize accepts (100 MB).
pub const MAX_UPLOAD_BYTES: usize = 100_000_000;

pub(crate) fn decode<T: DeserializeOwned>(what: &str, value: Json) -> Result<T> {
    serde_json::from_value(value).map_err(|e| Error::Remote {
        status: 200,
        code: 0,
        message: format!("unexpected {what} in the answer: {e}"),
    })
}

fn indexes_path() -> String {
    "vectorize/v2/indexes".to_owned()
}

impl Cloudflare {
    /// Creates an index (`POST vectorize/v2/indexes`). Not retried once it may have been
    /// applied (a second create answers 3002 duplicate name).
    pub fn create_index(&self, request: &CreateIndexRequest) -> Result<IndexDescription> {
        let call =
            Call::new(Method::POST, indexes_path(), Unsafe).json(serde_json::to_value(request)?);
        decode("index", self.send(&call)?.result)
    }

    /// Lists the account's indexes.
    pub fn list_indexes(&self) -> Result<Vec<IndexDescription>> {
        let call = Call::new(Method::GET, indexes_path(), Safe);
        decode("index list", self.send(&call)?.result)
    }

    /// Gets one index's description (error 3000 when there is none).
    pub fn get_index(&self, name: &str) -> Result<IndexDescription> {
        let call = Call::new(
            Method::GET,
            format!("{}/{}", indexes_path(), segment(name)),
            Safe,
        );
        decode("index", self.send(&call)?.result)
    }

    /// Deletes an index and its vectors. Not retried once it may have been applied.
    pub fn delete_index(&self, name: &str) -> Result<()> {
        let call = Call::new(
            Method::DELETE,
            format!("{}/{}", indexes_path(), segment(name)),
            Unsafe,
        );
        self.send(&call)?;
        Ok(())
    }

    /// A handle on the index `name`; no call is made until one of its methods is used.
    pub fn vectorize(&self, name: &str) -> RemoteIndex<'_> {
        RemoteIndex {
            cf: self,
            name: name.to_owned(),
        }
    }
}

/// One Vectorize index over REST: the methods of [`crate::vectorize::VectorIndex`], with the
/// same argument and result types.
///
/// Retries: reads, `upsert` (replaces in full, so the same body twice leaves the same index)
/// and `delete_by_ids` (deleting twice is deleting once) are retried after any transient
/// failure. `insert`, metadata-index create and delete are retried only when the request was
/// certainly not applied (429, no connection): an `insert` sent twice keeps the first vector
/// of each id, so it is the same unless another writer deleted one in between, and Cloudflare
/// does not document it as safe to repeat.
#[derive(Debug, Clone)]
pub struct RemoteIndex<'a> {
    cf: &'a Cloudflare,
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InfoAnswer {
    dimensions: usize,
    #[serde(default)]
    metric: Option<Metric>,
    vector_count: u64,
    #[serde(default)]
    processed_up_to_datetime: Option<String>,
    #[serde(default)]
    processed_up_to_mutation: Option<String>,
}

impl RemoteIndex<'_> {
    /// The index's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn path(&self, op: &str) -> String {
        format!("{}/{}/{op}", indexes_path(), segment(&self.name))
    }

    fn ndjson(vectors: &[Vector]) -> Result<Vec<u8>> {
        let mut body = Vec::new();
        for v in vectors {
            crate::vectorize::ndjson::write_vector(&mut body, v)
                .map_err(|e| Error::invalid("vector", e.to_string()))?;
        }
        if body.len() > MAX_UPLOAD_BYTES {
            return Err(Error::LimitExceeded {
                what: "Vectorize upload body (bytes)",
                limit: MAX_UPLOAD_BYTES,
                got: body.len(),
            });
        }
        Ok(body)
    }

    /// Inserts vectors (NDJSON body); an id already stored keeps its vector.
    pub fn insert(&self, vectors: &[Vector]) -> Result<MutationResult> {
        let call =
            Call::new(Method::POST, self.path("insert"), Unsafe).ndjson(Self::ndjson(vectors)?);
        decode("mutation", self.cf.send(&call)?.result)
    }

    /// Inserts or replaces vectors in full (NDJSON body).
    pub fn upsert(&self, vectors: &[Vector]) -> Result<MutationResult> {
        let call =
            Call::new(Method::POST, self.path("upsert"), Safe).ndjson(Self::ndjson(vectors)?);
        decode("mutation", self.cf.send(&call)?.result)
    }

    fn query_body(options: &QueryOptions) -> Result<serde_json::Map<String, Json>> {
        match serde_json::to_value(options)? {
            Json::Object(map) => Ok(map),
            _ => Err(Error::invalid("query options", "not an object")),
        }
    }

    /// The `topK` nearest vectors to `vector`.
    pub fn query(&self, vector: &[f64], options: &QueryOptions) -> Result<Matches> {
        let mut body = Self::query_body(options)?;
        body.insert("vector".into(), json!(vector));
        let call = Call::new(Method::POST, self.path("query"), Safe).json(Json::Object(body));
        decode("matches", self.cf.send(&call)?.result)
    }

    /// Queries with the stored vector `id` (the body's `vectorId`, as wrangler sends it).
    pub fn query_by_id(&self, id: &str, options: &QueryOptions) -> Result<Matches> {
        let mut body = Self::query_body(options)?;
        body.insert("vectorId".into(), json!(id));
        let call = Call::new(Method::POST, self.path("query"), Safe).json(Json::Object(body));
        decode("matches", self.cf.send(&call)?.result)
    }

    /// The stored vectors with these ids (at most 20).
    pub fn get_by_ids(&self, ids: &[String]) -> Result<Vec<Vector>> {
        limits::check_get_ids(ids.len())?;
        let call = Call::new(Method::POST, self.path("get_by_ids"), Safe).json(json!({"ids": ids}));
        decode("vectors", self.cf.send(&call)?.result)
    }

    /// Deletes vectors by id (at most 100).
    pub fn delete_by_ids(&self, ids: &[String]) -> Result<MutationResult> {
        limits::check_delete_ids(ids.len())?;
        let call =
            Call::new(Method::POST, self.path("delete_by_ids"), Safe).json(json!({"ids": ids}));
        decode("mutation", self.cf.send(&call)?.result)
    }

    /// `info`: dimensions, vector count, last applied mutation. Cloudflare's `info` has no
    /// `metric`; when it is missing it is read from the index's description (one more call).
    pub fn describe(&self) -> Result<IndexInfo> {
        let call = Call::new(Method::GET, self.path("info"), Safe);
        let info: InfoAnswer = decode("index info", self.cf.send(&call)?.result)?;
        let metric = match info.metric {
            Some(m) => m,
            None => self.cf.get_index(&self.name)?.config.metric,
        };
        Ok(IndexInfo {
            dimensions: info.dimensions,
            metric,
            vector_count: info.vector_count,
            processed_up_to_datetime: info.processed_up_to_datetime,
            processed_up_to_mutation: info.processed_up_to_mutation,
        })
    }

    /// The index's name, description and configuration.
    pub fn description(&self) -> Result<IndexDescription> {
        self.cf.get_index(&self.name)
    }

    /// Lists vector ids, `count` (1..=1000) at a time, from `cursor`.
    pub fn list_vectors(
        &self,
        count: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<ListVectorsResponse> {
        let mut call = Call::new(Method::GET, self.path("list"), Safe);
        if let Some(c) = count {
            call = call.query("count", c.to_string());
        }
        if let Some(c) = cursor {
            call = call.query("cursor", c);
        }
        decode("vector list", self.cf.send(&call)?.result)
    }

    /// Creates a metadata index on `property`.
    pub fn create_metadata_index(
        &self,
        property: &str,
        index_type: IndexType,
    ) -> Result<MutationResult> {
        let body = serde_json::to_value(MetadataIndex {
            property_name: property.to_owned(),
            index_type,
        })?;
        let call = Call::new(Method::POST, self.path("metadata_index/create"), Unsafe).json(body);
        decode("mutation", self.cf.send(&call)?.result)
    }

    /// The index's metadata indexes.
    pub fn list_metadata_indexes(&self) -> Result<Vec<MetadataIndex>> {
        let call = Call::new(Method::GET, self.path("metadata_index/list"), Safe);
        let list: MetadataIndexList = decode("metadata index list", self.cf.send(&call)?.result)?;
        Ok(list.metadata_indexes)
    }

    /// Deletes the metadata index on `property`.
    pub fn delete_metadata_index(&self, property: &str) -> Result<MutationResult> {
        let call = Call::new(Method::POST, self.path("metadata_index/delete"), Unsafe)
            .json(json!({"propertyName": property}));
        decode("mutation", self.cf.send(&call)?.result)
    }
}
