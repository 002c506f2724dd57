//! Vectorize's request and response types, with the service's exact JSON field names.
//!
//! Optional fields that the service leaves out are left out here too (`skip_serializing_if`);
//! fields the service sends as `null` (`processedUpTo*`, `nextCursor`) are sent as `null`.
//! Vector values are float32 in Vectorize, so every `values` array is written as the f64 of
//! the nearest f32 (58.8 is written as 58.79999923706055).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::error::{codes, VectorizeError};
use super::filter::eval::IndexType;
use super::limits;
use crate::index::Metric;

/// A vector's metadata: a JSON object.
pub type Metadata = Map<String, Value>;

/// The f64 that Vectorize returns for a stored float32 (58.8f32 → 58.79999923706055).
pub fn f32_rounded(v: f32) -> f64 {
    f64::from(v)
}

/// Rounds an f64 to the nearest float32 and back, as Vectorize stores values.
pub fn round_to_f32(v: f64) -> f64 {
    f64::from(v as f32)
}

fn serialize_f32_values<S: Serializer>(values: &[f64], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(values.iter().map(|&v| round_to_f32(v)))
}

fn serialize_opt_f32_values<S: Serializer>(
    values: &Option<Vec<f64>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match values {
        Some(values) => serialize_f32_values(values, s),
        None => s.serialize_none(),
    }
}

/// The JSON type of a value, for messages ("a string", "an object", ...).
pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A vector as written and read: `{id, values, namespace?, metadata?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vector {
    /// The id, unique in its index (at most 64 bytes).
    pub id: String,
    /// The values; written out rounded to float32.
    #[serde(serialize_with = "serialize_f32_values")]
    pub values: Vec<f64>,
    /// The namespace, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The metadata, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

impl Vector {
    /// A vector with no namespace and no metadata.
    pub fn new(id: impl Into<String>, values: Vec<f64>) -> Self {
        Vector {
            id: id.into(),
            values,
            namespace: None,
            metadata: None,
        }
    }

    /// This vector in `namespace`.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// This vector with `metadata`.
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = Some(metadata);
        self
    }

    /// Reads a vector from JSON, checking its shape only: an object whose `id` is a string,
    /// `values` an array of numbers, `namespace` (if present and not null) a string and
    /// `metadata` (if present and not null) an object; other fields are ignored. Limits are
    /// checked later with [`limits`]. Error code 40023, naming what is wrong.
    pub fn from_json(value: &Value) -> Result<Vector, VectorizeError> {
        vector_from_json(value).map_err(|why| {
            VectorizeError::new(codes::UNPARSABLE_VECTORS, format!("invalid vector: {why}"))
        })
    }
}

/// The shape check behind [`Vector::from_json`]; the error says what is wrong.
pub(crate) fn vector_from_json(value: &Value) -> Result<Vector, String> {
    let Value::Object(obj) = value else {
        return Err(format!("expected a JSON object, got {}", json_type(value)));
    };
    let id = match obj.get("id") {
        Some(Value::String(id)) => id.clone(),
        Some(other) => return Err(format!("\"id\" must be a string, got {}", json_type(other))),
        None => return Err("missing \"id\"".into()),
    };
    let values = match obj.get("values") {
        Some(Value::Array(items)) => {
            let mut values = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item.as_f64() {
                    Some(v) => values.push(v),
                    None => {
                        return Err(format!(
                            "\"values\"[{i}] must be a number, got {}",
                            json_type(item)
                        ))
                    }
                }
            }
            values
        }
        Some(other) => {
            return Err(format!(
                "\"values\" must be an array of numbers, got {}",
                json_type(other)
            ))
        }
        None => return Err("missing \"values\"".into()),
    };
    let namespace = match obj.get("namespace") {
        None | Some(Value::Null) => None,
        Some(Value::String(ns)) => Some(ns.clone()),
        Some(other) => {
            return Err(format!(
                "\"namespace\" must be a string, got {}",
                json_type(other)
            ))
        }
    };
    let metadata = match obj.get("metadata") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m.clone()),
        Some(other) => {
            return Err(format!(
                "\"metadata\" must be an object, got {}",
                json_type(other)
            ))
        }
    };
    Ok(Vector {
        id,
        values,
        namespace,
        metadata,
    })
}

/// How much metadata a query returns with each match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReturnMetadata {
    /// No metadata (the default).
    #[default]
    None,
    /// Only the properties that have a metadata index (strings truncated to 64 bytes).
    Indexed,
    /// All metadata; caps `topK` at 50.
    All,
}

impl ReturnMetadata {
    /// The JSON name: `none`, `indexed` or `all`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReturnMetadata::None => "none",
            ReturnMetadata::Indexed => "indexed",
            ReturnMetadata::All => "all",
        }
    }
}

/// Reads a `returnMetadata` option as Vectorize (service and binding together) does:
/// `"none"`, `"indexed"`, `"all"`; `true` means `"all"`; `null` means the default `"none"`.
/// A falsy value (`false`, `0`, `""`) reaches the service, which rejects it with 40026
/// `Failed to parse the request body as JSON: returnMetadata: expected value`. Any other value is
/// refused with the binding's message (`Invalid returnMetadata option. ...`), also under 40026;
/// the real binding throws that one without a code before sending anything.
pub fn parse_return_metadata(value: &Value) -> Result<ReturnMetadata, VectorizeError> {
    match value {
        Value::Null => Ok(ReturnMetadata::None),
        Value::Bool(true) => Ok(ReturnMetadata::All),
        Value::String(s) if s == "none" => Ok(ReturnMetadata::None),
        Value::String(s) if s == "indexed" => Ok(ReturnMetadata::Indexed),
        Value::String(s) if s == "all" => Ok(ReturnMetadata::All),
        Value::Bool(false) => Err(body_error("returnMetadata: expected value")),
        Value::String(s) if s.is_empty() => Err(body_error("returnMetadata: expected value")),
        Value::Number(n) if n.as_f64() == Some(0.0) => {
            Err(body_error("returnMetadata: expected value"))
        }
        other => {
            // The binding formats the value with JavaScript's String(): strings bare,
            // objects as "[object Object]", arrays joined with ",".
            let shown = match other {
                Value::String(s) => s.clone(),
                Value::Object(_) => "[object Object]".into(),
                Value::Array(items) => items
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        Value::Null => String::new(),
                        v => v.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                v => v.to_string(),
            };
            Err(VectorizeError::new(
                codes::INVALID_REQUEST_BODY,
                format!(
                    "Invalid returnMetadata option. Expected: true, false, \"none\", \"indexed\" \
                     or \"all\"; got: {shown}"
                ),
            ))
        }
    }
}

impl<'de> Deserialize<'de> for ReturnMetadata {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        parse_return_metadata(&value).map_err(|e| D::Error::custom(e.message))
    }
}

/// A 40026 error: `Failed to parse the request body as JSON: <what>`.
fn body_error(what: &str) -> VectorizeError {
    VectorizeError::new(
        codes::INVALID_REQUEST_BODY,
        format!("Failed to parse the request body as JSON: {what}"),
    )
}

/// A query's options: `{topK?, namespace?, returnValues?, returnMetadata?, filter?}`.
///
/// Parsing ([`QueryOptions::from_json`]) checks only types; the caps are checked with
/// [`limits::check_top_k`] and the filter by the filter module.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryOptions {
    /// How many matches at most (default 5).
    pub top_k: usize,
    /// Search only this namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Return each match's values (default false; caps `topK` at 50).
    pub return_values: bool,
    /// How much metadata to return (default none).
    pub return_metadata: ReturnMetadata,
    /// A metadata filter, unparsed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<Value>,
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            top_k: limits::DEFAULT_TOP_K,
            namespace: None,
            return_values: false,
            return_metadata: ReturnMetadata::None,
            filter: None,
        }
    }
}

impl QueryOptions {
    /// The defaults: topK 5, no namespace, no values, no metadata, no filter.
    pub fn new() -> Self {
        Self::default()
    }

    /// These options with `topK` set.
    pub fn with_top_k(mut self, top_k: usize) -> Self {
        self.top_k = top_k;
        self
    }

    /// These options restricted to `namespace`.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// These options with `returnValues` set.
    pub fn with_values(mut self, return_values: bool) -> Self {
        self.return_values = return_values;
        self
    }

    /// These options with `returnMetadata` set.
    pub fn with_metadata(mut self, return_metadata: ReturnMetadata) -> Self {
        self.return_metadata = return_metadata;
        self
    }

    /// These options with a metadata filter.
    pub fn with_filter(mut self, filter: Value) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Reads query options from a request body. Absent and `null` fields take their defaults;
    /// unknown fields (such as `vector` and `vectorId`) are ignored. A field of the wrong type
    /// is error 40026 (`Failed to parse the request body as JSON: <field>: ...`); see
    /// [`parse_return_metadata`] for `returnMetadata`.
    pub fn from_json(body: &Value) -> Result<Self, VectorizeError> {
        let Value::Object(obj) = body else {
            return Err(body_error(&format!(
                "expected an object, got {}",
                json_type(body)
            )));
        };
        let field = |key: &str| obj.get(key).filter(|v| !v.is_null());
        let mut options = QueryOptions::default();
        if let Some(v) = field("topK") {
            options.top_k = parse_count(v).ok_or_else(|| {
                body_error(&format!(
                    "topK: expected a non-negative integer, got {}",
                    show(v)
                ))
            })?;
        }
        if let Some(v) = field("namespace") {
            match v {
                Value::String(ns) => options.namespace = Some(ns.clone()),
                v => {
                    return Err(body_error(&format!(
                        "namespace: expected a string, got {}",
                        json_type(v)
                    )))
                }
            }
        }
        if let Some(v) = field("returnValues") {
            match v {
                Value::Bool(b) => options.return_values = *b,
                v => {
                    return Err(body_error(&format!(
                        "returnValues: expected a boolean, got {}",
                        json_type(v)
                    )))
                }
            }
        }
        if let Some(v) = obj.get("returnMetadata") {
            options.return_metadata = parse_return_metadata(v)?;
        }
        options.filter = field("filter").cloned();
        Ok(options)
    }
}

impl<'de> Deserialize<'de> for QueryOptions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        QueryOptions::from_json(&value).map_err(|e| D::Error::custom(e.message))
    }
}

/// A non-negative integer from JSON (an integral float such as `5.0` counts).
fn parse_count(v: &Value) -> Option<usize> {
    if let Some(n) = v.as_u64() {
        return usize::try_from(n).ok();
    }
    let f = v.as_f64()?;
    // 2^53: beyond it an f64 is not a meaningful count.
    if f >= 0.0 && f.fract() == 0.0 && f <= 9_007_199_254_740_992.0 {
        Some(f as usize)
    } else {
        None
    }
}

/// A short rendering of a JSON value for messages: numbers and booleans as written, other types
/// by name (so a long string never ends up in a message).
fn show(v: &Value) -> String {
    match v {
        Value::Number(_) | Value::Bool(_) => v.to_string(),
        v => json_type(v).to_string(),
    }
}

/// One query match: `{id, score, values?, namespace?, metadata?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Match {
    /// The vector's id.
    pub id: String,
    /// Its score (cosine similarity; plain L2 distance; negative dot product).
    pub score: f64,
    /// Its values, when the query asked for them (float32-rounded).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_opt_f32_values"
    )]
    pub values: Option<Vec<f64>>,
    /// Its namespace, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Its metadata, when the query asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

/// A query's result: `{count, matches}`, best match first; `count == matches.len()`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Matches {
    /// How many matches.
    pub count: usize,
    /// The matches, best first.
    pub matches: Vec<Match>,
}

impl Matches {
    /// The result holding `matches`, with `count` set from them.
    pub fn new(matches: Vec<Match>) -> Self {
        Matches {
            count: matches.len(),
            matches,
        }
    }
}

/// The result of a write: `{mutationId}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MutationResult {
    /// The mutation's id (a UUID string).
    pub mutation_id: String,
}

/// `describe()` / REST `info`: `{dimensions, metric, vectorCount, processedUpToDatetime,
/// processedUpToMutation}` (the last two `null` before any mutation). The Workers binding
/// documents `metric` in `describe()`'s result and the REST `info` example omits it; d1vec
/// includes it (docs/vectorize.md, "Decisions").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexInfo {
    /// The index's dimensions.
    pub dimensions: usize,
    /// The index's distance metric.
    pub metric: Metric,
    /// How many vectors it holds.
    pub vector_count: u64,
    /// When the last applied mutation was applied (ISO-8601).
    #[serde(default)]
    pub processed_up_to_datetime: Option<String>,
    /// The id of the last applied mutation.
    #[serde(default)]
    pub processed_up_to_mutation: Option<String>,
}

/// An index's fixed configuration: `{dimensions, metric}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexConfig {
    /// Dimensions (1 to 1536).
    pub dimensions: usize,
    /// Distance metric: `cosine`, `euclidean` or `dot-product`.
    pub metric: Metric,
}

/// An index as the REST API describes it: `{name, description?, config, created_on,
/// modified_on}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDescription {
    /// The index's name.
    pub name: String,
    /// Its description, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its configuration.
    pub config: IndexConfig,
    /// When it was created (ISO-8601).
    pub created_on: String,
    /// When it was last changed (ISO-8601).
    pub modified_on: String,
}

/// The embedding-model presets an index can be created from (`config.preset`).
///
/// The dimensions are each model's documented output size. Vectorize does not document which
/// metric a preset gets; d1vec uses cosine for all five.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Preset {
    /// `@cf/baai/bge-small-en-v1.5`: 384 dimensions.
    #[serde(rename = "@cf/baai/bge-small-en-v1.5")]
    BgeSmallEnV15,
    /// `@cf/baai/bge-base-en-v1.5`: 768 dimensions.
    #[serde(rename = "@cf/baai/bge-base-en-v1.5")]
    BgeBaseEnV15,
    /// `@cf/baai/bge-large-en-v1.5`: 1024 dimensions.
    #[serde(rename = "@cf/baai/bge-large-en-v1.5")]
    BgeLargeEnV15,
    /// `openai/text-embedding-ada-002`: 1536 dimensions.
    #[serde(rename = "openai/text-embedding-ada-002")]
    OpenAiTextEmbeddingAda002,
    /// `cohere/embed-multilingual-v2.0`: 768 dimensions.
    #[serde(rename = "cohere/embed-multilingual-v2.0")]
    CohereEmbedMultilingualV20,
}

impl Preset {
    /// Every preset.
    pub const ALL: [Preset; 5] = [
        Preset::BgeSmallEnV15,
        Preset::BgeBaseEnV15,
        Preset::BgeLargeEnV15,
        Preset::OpenAiTextEmbeddingAda002,
        Preset::CohereEmbedMultilingualV20,
    ];

    /// The preset's name, e.g. `@cf/baai/bge-small-en-v1.5`.
    pub fn name(self) -> &'static str {
        match self {
            Preset::BgeSmallEnV15 => "@cf/baai/bge-small-en-v1.5",
            Preset::BgeBaseEnV15 => "@cf/baai/bge-base-en-v1.5",
            Preset::BgeLargeEnV15 => "@cf/baai/bge-large-en-v1.5",
            Preset::OpenAiTextEmbeddingAda002 => "openai/text-embedding-ada-002",
            Preset::CohereEmbedMultilingualV20 => "cohere/embed-multilingual-v2.0",
        }
    }

    /// The preset with this name.
    pub fn parse(name: &str) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The model's output dimensions.
    pub fn dimensions(self) -> usize {
        match self {
            Preset::BgeSmallEnV15 => 384,
            Preset::BgeBaseEnV15 | Preset::CohereEmbedMultilingualV20 => 768,
            Preset::BgeLargeEnV15 => 1024,
            Preset::OpenAiTextEmbeddingAda002 => 1536,
        }
    }

    /// The metric d1vec gives the preset: cosine (Vectorize does not document one).
    pub fn metric(self) -> Metric {
        Metric::Cosine
    }

    /// The index configuration the preset stands for.
    pub fn config(self) -> IndexConfig {
        IndexConfig {
            dimensions: self.dimensions(),
            metric: self.metric(),
        }
    }
}

/// The `config` of a create-index request: explicit `{dimensions, metric}` or `{preset}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CreateIndexConfig {
    /// Explicit dimensions and metric.
    Dimensions {
        /// Dimensions (1 to 1536).
        dimensions: usize,
        /// Distance metric.
        metric: Metric,
    },
    /// A model preset.
    Preset {
        /// The preset.
        preset: Preset,
    },
}

impl CreateIndexConfig {
    /// The configuration this stands for, with its dimensions checked (40038).
    pub fn resolve(&self) -> Result<IndexConfig, VectorizeError> {
        let config = match *self {
            CreateIndexConfig::Dimensions { dimensions, metric } => {
                IndexConfig { dimensions, metric }
            }
            CreateIndexConfig::Preset { preset } => preset.config(),
        };
        limits::validate_dimensions(config.dimensions)?;
        Ok(config)
    }
}

/// A create-index request: `{name, description?, config: {dimensions, metric} | {preset}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateIndexRequest {
    /// The new index's name.
    pub name: String,
    /// An optional description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its configuration.
    pub config: CreateIndexConfig,
}

impl CreateIndexRequest {
    /// Reads a create-index request, naming what is wrong (40038): `name` a string, `description`
    /// a string or absent, `config` an object with either `preset` (one of [`Preset::ALL`]) or
    /// both `dimensions` (an integer) and `metric` (`cosine`, `euclidean`, `dot-product`), not
    /// both forms. Limits are checked by [`CreateIndexRequest::validate`].
    pub fn from_json(body: &Value) -> Result<Self, VectorizeError> {
        let bad = |why: String| {
            VectorizeError::new(
                codes::INVALID_INDEX_CONFIG,
                format!("invalid create index request; {why}"),
            )
        };
        let Value::Object(obj) = body else {
            return Err(bad(format!("expected an object, got {}", json_type(body))));
        };
        let name = match obj.get("name") {
            Some(Value::String(s)) => s.clone(),
            Some(v) => return Err(bad(format!("name must be a string, got {}", json_type(v)))),
            None => return Err(bad("missing name".into())),
        };
        let description = match obj.get("description") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => {
                return Err(bad(format!(
                    "description must be a string, got {}",
                    json_type(v)
                )))
            }
        };
        let config = match obj.get("config") {
            Some(Value::Object(c)) => c,
            Some(v) => {
                return Err(bad(format!(
                    "config must be an object, got {}",
                    json_type(v)
                )))
            }
            None => return Err(bad("missing config".into())),
        };
        let preset = config.get("preset").filter(|v| !v.is_null());
        let dims = config.get("dimensions").filter(|v| !v.is_null());
        let metric = config.get("metric").filter(|v| !v.is_null());
        let config = match (preset, dims, metric) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(bad(
                    "config takes either preset or dimensions and metric, not both".into(),
                ))
            }
            (Some(p), None, None) => {
                let found = p.as_str().and_then(Preset::parse);
                let Some(preset) = found else {
                    let names: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
                    return Err(bad(format!(
                        "unknown preset {}; expected one of {}",
                        show_str(p),
                        names.join(", ")
                    )));
                };
                CreateIndexConfig::Preset { preset }
            }
            (None, Some(d), Some(m)) => {
                let dimensions = parse_count(d).ok_or_else(|| {
                    bad(format!(
                        "config.dimensions must be a positive integer, got {}",
                        show(d)
                    ))
                })?;
                let metric = m.as_str().and_then(Metric::parse).ok_or_else(|| {
                    bad(format!(
                        "unknown metric {}; expected cosine, euclidean or dot-product",
                        show_str(m)
                    ))
                })?;
                CreateIndexConfig::Dimensions { dimensions, metric }
            }
            (None, None, _) => {
                return Err(bad("config needs dimensions and metric, or a preset".into()))
            }
            (None, Some(_), None) => return Err(bad("config.metric is missing".into())),
        };
        Ok(CreateIndexRequest {
            name,
            description,
            config,
        })
    }

    /// Checks the name and the dimensions and returns the index's configuration.
    pub fn validate(&self) -> Result<IndexConfig, VectorizeError> {
        limits::validate_index_name(&self.name)?;
        self.config.resolve()
    }
}

/// A string value quoted (and cut to 64 characters), any other value by its type.
fn show_str(v: &Value) -> String {
    match v {
        Value::String(s) => {
            let cut: String = s.chars().take(64).collect();
            format!("{cut:?}")
        }
        v => json_type(v).to_string(),
    }
}

/// A metadata index: `{propertyName, indexType}` (also the body of its create request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataIndex {
    /// The metadata property, as a dotted path for nested keys.
    pub property_name: String,
    /// `string`, `number` or `boolean`.
    pub index_type: IndexType,
}

/// The body of a delete-metadata-index request: `{propertyName}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteMetadataIndexRequest {
    /// The metadata property whose index goes.
    pub property_name: String,
}

/// The metadata indexes of an index: `{metadataIndexes: [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataIndexList {
    /// The metadata indexes.
    pub metadata_indexes: Vec<MetadataIndex>,
}

/// The body of `getByIds` and `deleteByIds`: `{ids: [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdsRequest {
    /// The ids.
    pub ids: Vec<String>,
}

/// One entry of a list-vectors page: `{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedVector {
    /// The vector's id.
    pub id: String,
}

/// A list-vectors page: `{count, totalCount, isTruncated, nextCursor, cursorExpirationTimestamp,
/// vectors: [{id}]}`. The cursor fields are `null` on the last page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListVectorsResponse {
    /// How many ids this page holds.
    pub count: usize,
    /// How many vectors the listing's snapshot holds.
    pub total_count: u64,
    /// Whether more pages follow.
    pub is_truncated: bool,
    /// The cursor of the next page.
    #[serde(default)]
    pub next_cursor: Option<String>,
    /// When the cursor expires (ISO-8601).
    #[serde(default)]
    pub cursor_expiration_timestamp: Option<String>,
    /// The ids.
    pub vectors: Vec<ListedVector>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_accept_integral_numbers_only() {
        assert_eq!(parse_count(&Value::from(7u64)), Some(7));
        assert_eq!(parse_count(&Value::from(7.0)), Some(7));
        assert_eq!(parse_count(&Value::from(0.0)), Some(0));
        assert_eq!(parse_count(&Value::from(-0.0)), Some(0));
        assert_eq!(parse_count(&Value::from(7.5)), None);
        assert_eq!(parse_count(&Value::from(-1)), None);
        assert_eq!(parse_count(&Value::from(1e300)), None);
        assert_eq!(parse_count(&Value::from("7")), None);
    }

    #[test]
    fn messages_show_types_not_contents() {
        assert_eq!(show(&Value::from(2.5)), "2.5");
        assert_eq!(show(&Value::from("a long secret")), "a string");
        assert_eq!(
            show_str(&Value::from("x".repeat(100))),
            format!("{:?}", "x".repeat(64))
        );
    }
}
