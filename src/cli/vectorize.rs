//! `d1vec vectorize …`: the `wrangler vectorize` commands, on the local database.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value as Json};

use crate::error::{Error, Result};
use crate::index::Metric;
use crate::vectorize::filter::eval::IndexType;
use crate::vectorize::ndjson::{self, Unparsable};
use crate::vectorize::types::{Preset, QueryOptions, ReturnMetadata, Vector};
use crate::vectorize::{CreateIndex, Scope, VectorIndex};
use crate::{Database, TenantSession};

/// `d1vec vectorize …`
#[derive(Debug, Subcommand)]
pub enum VectorizeCommand {
    /// Create an index: --dimensions and --metric, or --preset.
    Create {
        /// The index name.
        name: String,
        /// Dimensions of every vector (1..=1536).
        #[arg(long, requires = "metric", conflicts_with = "preset")]
        dimensions: Option<usize>,
        /// The distance metric.
        #[arg(long, value_enum, requires = "dimensions")]
        metric: Option<MetricArg>,
        /// A model preset that fixes dimensions (metric cosine), e.g. @cf/baai/bge-base-en-v1.5.
        #[arg(long)]
        preset: Option<String>,
        /// A description.
        #[arg(long)]
        description: Option<String>,
        /// d1vec: `private` confines each tenant session to its own namespace; `shared` (the
        /// default) is readable by every tenant and writable only outside tenant sessions.
        #[arg(long, value_enum, default_value = "shared")]
        scope: ScopeArg,
    },
    /// Show an index's configuration.
    Get {
        /// The index name.
        name: String,
    },
    /// List indexes.
    List,
    /// Show an index's vector count and last mutation.
    Info {
        /// The index name.
        name: String,
    },
    /// Delete an index and its vectors.
    Delete {
        /// The index name.
        name: String,
        /// Accepted for wrangler compatibility (d1vec never prompts).
        #[arg(long, short = 'y')]
        force: bool,
    },
    /// Insert vectors from an NDJSON file (existing ids keep their vectors).
    Insert(IngestArgs),
    /// Insert or replace vectors from an NDJSON file.
    Upsert(IngestArgs),
    /// Query an index with a vector or a stored vector's id.
    Query(QueryArgs),
    /// Fetch vectors by id.
    GetVectors {
        /// The index name.
        name: String,
        /// The ids (at most 20).
        #[arg(long, num_args = 1.., required = true)]
        ids: Vec<String>,
    },
    /// Delete vectors by id.
    DeleteVectors {
        /// The index name.
        name: String,
        /// The ids (at most 100).
        #[arg(long, num_args = 1.., required = true)]
        ids: Vec<String>,
        /// Make the delete visible to queries only after this delay (e.g. `2s`), as hosted
        /// Vectorize does; see the README.
        #[arg(long, env = "D1VEC_VISIBILITY_DELAY", value_parser = humantime::parse_duration)]
        visibility_delay: Option<std::time::Duration>,
    },
    /// List vector ids, a page at a time.
    ListVectors {
        /// The index name.
        name: String,
        /// Ids per page (1..=1000, default 100).
        #[arg(long)]
        count: Option<usize>,
        /// The cursor a previous page printed.
        #[arg(long, allow_hyphen_values = true)]
        cursor: Option<String>,
    },
    /// Create a metadata index so a property can be filtered on.
    CreateMetadataIndex {
        /// The index name.
        name: String,
        /// The metadata property (a dotted path for nested values).
        #[arg(long = "property-name", alias = "propertyName")]
        property_name: String,
        /// The property's type.
        #[arg(long = "type", value_enum)]
        index_type: TypeArg,
    },
    /// List metadata indexes.
    ListMetadataIndex {
        /// The index name.
        name: String,
    },
    /// Delete a metadata index.
    DeleteMetadataIndex {
        /// The index name.
        name: String,
        /// The metadata property.
        #[arg(long = "property-name", alias = "propertyName")]
        property_name: String,
    },
    /// Write every vector as NDJSON that `wrangler vectorize insert --file` accepts.
    Export {
        /// The index name.
        name: String,
        /// The file to write (stdout when omitted).
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Rebuild the index files from the live vectors (drops deleted vectors from them).
    Compact {
        /// The index name.
        name: String,
    },
}

/// `insert` / `upsert`
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// The index name.
    pub name: String,
    /// The NDJSON file: one `{"id", "values", "namespace"?, "metadata"?}` per line.
    #[arg(long)]
    pub file: PathBuf,
    /// Vectors per batch (each batch is one transaction, as each is one upload to
    /// Vectorize), at most 5000; each batch must stay within 100 MB.
    #[arg(long, default_value_t = crate::vectorize::limits::DEFAULT_FILE_BATCH)]
    pub batch_size: usize,
    /// What to do with a line that is not a valid vector: stop with an error, or skip it.
    #[arg(long, value_enum, default_value = "error")]
    pub unparsable_behavior: UnparsableArg,
    /// Make the writes visible to queries only after this delay (e.g. `2s`), as hosted
    /// Vectorize does; see the README.
    #[arg(long, env = "D1VEC_VISIBILITY_DELAY", value_parser = humantime::parse_duration)]
    pub visibility_delay: Option<std::time::Duration>,
}

/// `query`
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["vector", "vector_id", "vector_file"])))]
pub struct QueryArgs {
    /// The index name.
    pub name: String,
    /// The query vector's numbers (negative ones welcome).
    #[arg(long, num_args = 1.., allow_negative_numbers = true, value_delimiter = ',')]
    pub vector: Vec<f64>,
    /// Query with the stored vector of this id.
    #[arg(long)]
    pub vector_id: Option<String>,
    /// Read the query vector from a file (`-` for stdin): a JSON array or whitespace-separated numbers.
    #[arg(long)]
    pub vector_file: Option<PathBuf>,
    /// How many matches (default 5; at most 100, or 50 with values or all metadata).
    #[arg(long, default_value_t = 5)]
    pub top_k: usize,
    /// Return each match's values.
    #[arg(long)]
    pub return_values: bool,
    /// Which metadata to return.
    #[arg(long, value_enum, default_value = "none")]
    pub return_metadata: MetadataArg,
    /// Only vectors in this namespace.
    #[arg(long)]
    pub namespace: Option<String>,
    /// A metadata filter as JSON, e.g. '{"lang": "en", "year": {"$gte": 2020}}'.
    #[arg(long)]
    pub filter: Option<String>,
}

/// Metrics as flags.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum MetricArg {
    /// Cosine similarity.
    Cosine,
    /// Euclidean (L2) distance.
    Euclidean,
    /// Negative dot product.
    DotProduct,
}

/// Scopes as flags.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ScopeArg {
    /// Each tenant sees only its namespace.
    Private,
    /// Every tenant reads it.
    Shared,
}

/// Metadata index types as flags.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TypeArg {
    /// Strings (first 64 bytes indexed).
    String,
    /// Numbers.
    Number,
    /// Booleans.
    Boolean,
}

/// returnMetadata as a flag.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum MetadataArg {
    /// Everything.
    All,
    /// Only indexed properties.
    Indexed,
    /// None.
    None,
}

/// Unparsable-line handling as a flag.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum UnparsableArg {
    /// Stop with an error naming the line.
    Error,
    /// Skip the line and count it.
    Discard,
}

/// Output of a command: JSON, or text for people.
pub enum Out {
    /// Exactly the API's JSON.
    Json(Json),
    /// Text.
    Text(String),
}

fn open(db: &Database, tenant: Option<&TenantSession>, name: &str) -> Result<VectorIndex> {
    match tenant {
        Some(t) => t.vectorize(name),
        None => db.vectorize(name),
    }
}

/// The index handle with the `--visibility-delay` given, if any.
fn delayed(index: VectorIndex, delay: Option<std::time::Duration>) -> VectorIndex {
    match delay {
        Some(d) => {
            index.with_options(crate::vectorize::IndexOptions::default().with_visibility_delay(d))
        }
        None => index,
    }
}

fn both(json: bool, value: Json, text: impl FnOnce(&Json) -> String) -> Out {
    if json {
        Out::Json(value)
    } else {
        Out::Text(text(&value))
    }
}

/// Runs one `vectorize` command.
pub fn run(
    db: &Database,
    tenant: Option<&TenantSession>,
    json: bool,
    command: VectorizeCommand,
) -> Result<Out> {
    use VectorizeCommand as C;
    Ok(match command {
        C::Create {
            name,
            dimensions,
            metric,
            preset,
            description,
            scope,
        } => {
            let mut req = match (dimensions, metric, preset) {
                (Some(d), Some(m), None) => CreateIndex::new(&name, d, metric_of(m)),
                (None, None, Some(p)) => {
                    let preset = Preset::parse(&p).ok_or_else(|| Error::invalid("preset", format!("unknown preset `{p}`")))?;
                    CreateIndex::from_preset(&name, preset)
                }
                _ => {
                    return Err(Error::invalid(
                        "arguments",
                        "You must provide both dimensions and a metric, or a known model preset when creating an index.",
                    ))
                }
            };
            req.description = description;
            req.scope = match scope {
                ScopeArg::Private => Scope::Private,
                ScopeArg::Shared => Scope::Shared,
            };
            let created = match tenant {
                Some(t) => t.create_index(&req)?,
                None => db.create_index(&req)?,
            };
            both(json, serde_json::to_value(&created)?, |v| {
                format!(
                    "Created index {} ({} dimensions, {})",
                    text_of(&v["name"]),
                    v["config"]["dimensions"],
                    text_of(&v["config"]["metric"])
                )
            })
        }
        C::Get { name } => {
            let d = open(db, tenant, &name)?.description();
            both(json, serde_json::to_value(&d)?, pretty)
        }
        C::List => {
            let all = match tenant {
                Some(t) => t.list_indexes()?,
                None => db.list_indexes()?,
            };
            both(json, serde_json::to_value(&all)?, |v| {
                let rows: Vec<Vec<Json>> = v
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|i| {
                                vec![
                                    i["name"].clone(),
                                    i["config"]["dimensions"].clone(),
                                    i["config"]["metric"].clone(),
                                ]
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                super::output::table(
                    &["name".into(), "dimensions".into(), "metric".into()],
                    &rows,
                )
            })
        }
        C::Info { name } => {
            let info = open(db, tenant, &name)?.describe()?;
            both(json, serde_json::to_value(&info)?, pretty)
        }
        C::Delete { name, force: _ } => {
            match tenant {
                Some(t) => t.delete_index(&name)?,
                None => db.delete_index(&name)?,
            }
            both(json, json!({"deleted": name}), |_| {
                format!("Deleted index {name}")
            })
        }
        C::Insert(a) => ingest(
            &delayed(open(db, tenant, &a.name)?, a.visibility_delay),
            &a,
            false,
            json,
        )?,
        C::Upsert(a) => ingest(
            &delayed(open(db, tenant, &a.name)?, a.visibility_delay),
            &a,
            true,
            json,
        )?,
        C::Query(a) => {
            let index = open(db, tenant, &a.name)?;
            let mut options = QueryOptions::new()
                .with_top_k(a.top_k)
                .with_values(a.return_values)
                .with_metadata(match a.return_metadata {
                    MetadataArg::All => ReturnMetadata::All,
                    MetadataArg::Indexed => ReturnMetadata::Indexed,
                    MetadataArg::None => ReturnMetadata::None,
                });
            if let Some(ns) = a.namespace {
                options = options.with_namespace(ns);
            }
            if let Some(f) = &a.filter {
                let filter: Json = serde_json::from_str(f)
                    .map_err(|e| Error::invalid("--filter", format!("not JSON: {e}")))?;
                options = options.with_filter(filter);
            }
            let matches = match (&a.vector_id, &a.vector_file) {
                (Some(id), _) => index.query_by_id(id, &options)?,
                (None, Some(path)) => index.query(&read_vector_file(path)?, &options)?,
                (None, None) => index.query(&a.vector, &options)?,
            };
            both(json, serde_json::to_value(&matches)?, |v| {
                if v["count"] == 0 {
                    "Could not find any relevant vectors".to_owned()
                } else {
                    pretty(v)
                }
            })
        }
        C::GetVectors { name, ids } => {
            let found = open(db, tenant, &name)?.get_by_ids(&ids)?;
            both(json, serde_json::to_value(&found)?, |v| {
                if v.as_array().is_some_and(Vec::is_empty) {
                    "No vectors found for the given ids".to_owned()
                } else {
                    pretty(v)
                }
            })
        }
        C::DeleteVectors {
            name,
            ids,
            visibility_delay,
        } => {
            let m = delayed(open(db, tenant, &name)?, visibility_delay).delete_by_ids(&ids)?;
            both(json, serde_json::to_value(&m)?, |v| {
                format!("Deleted; mutation {}", text_of(&v["mutationId"]))
            })
        }
        C::ListVectors {
            name,
            count,
            cursor,
        } => {
            let page = open(db, tenant, &name)?.list_vectors(count, cursor.as_deref())?;
            both(json, serde_json::to_value(&page)?, |v| {
                let ids: Vec<String> = v["vectors"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|x| x["id"].as_str().unwrap_or_default().to_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                let mut text = ids.join("\n");
                if let Some(c) = v["nextCursor"].as_str() {
                    text.push_str(&format!(
                        "\nNext page: d1vec vectorize list-vectors {name} --cursor {c}"
                    ));
                }
                text
            })
        }
        C::CreateMetadataIndex {
            name,
            property_name,
            index_type,
        } => {
            let ty = match index_type {
                TypeArg::String => IndexType::String,
                TypeArg::Number => IndexType::Number,
                TypeArg::Boolean => IndexType::Boolean,
            };
            let created = open(db, tenant, &name)?.create_metadata_index(&property_name, ty)?;
            both(json, serde_json::to_value(&created)?, |v| {
                let mut t = format!(
                    "Created metadata index on {property_name}; mutation {}",
                    text_of(&v["mutationId"])
                );
                if v["vectorsNotCovered"].as_u64().unwrap_or(0) > 0 {
                    t.push_str(&format!(
                        "\n{} vectors stored before it are not covered: upsert them again to filter on {property_name}",
                        v["vectorsNotCovered"]
                    ));
                }
                t
            })
        }
        C::ListMetadataIndex { name } => {
            let list = open(db, tenant, &name)?.list_metadata_indexes()?;
            let value = json!({"metadataIndexes": list});
            both(json, value, |v| {
                let rows: Vec<Vec<Json>> = v["metadataIndexes"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|m| vec![m["propertyName"].clone(), m["indexType"].clone()])
                            .collect()
                    })
                    .unwrap_or_default();
                super::output::table(&["propertyName".into(), "indexType".into()], &rows)
            })
        }
        C::DeleteMetadataIndex {
            name,
            property_name,
        } => {
            let m = open(db, tenant, &name)?.delete_metadata_index(&property_name)?;
            both(json, serde_json::to_value(&m)?, |v| {
                format!(
                    "Deleted metadata index on {property_name}; mutation {}",
                    text_of(&v["mutationId"])
                )
            })
        }
        C::Export { name, output } => {
            let index = open(db, tenant, &name)?;
            let written = match &output {
                Some(path) => {
                    let file = std::fs::File::create(path).map_err(Error::io(path))?;
                    let mut out = std::io::BufWriter::new(file);
                    let n = export(&index, &mut out)?;
                    out.flush().map_err(Error::io(path))?;
                    n
                }
                None => {
                    let stdout = std::io::stdout();
                    let mut out = stdout.lock();
                    export(&index, &mut out)?
                }
            };
            match output {
                Some(path) => both(json, json!({"output": path, "vectors": written}), |_| {
                    format!("Exported {written} vectors")
                }),
                None => Out::Text(String::new()),
            }
        }
        C::Compact { name } => {
            let index = open(db, tenant, &name)?;
            index.compact()?;
            both(json, json!({"compacted": name}), |_| {
                format!("Compacted {name}")
            })
        }
    })
}

fn metric_of(m: MetricArg) -> Metric {
    match m {
        MetricArg::Cosine => Metric::Cosine,
        MetricArg::Euclidean => Metric::Euclidean,
        MetricArg::DotProduct => Metric::DotProduct,
    }
}

fn pretty(v: &Json) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn ingest(index: &VectorIndex, a: &IngestArgs, upsert: bool, json: bool) -> Result<Out> {
    let file = std::fs::File::open(&a.file).map_err(Error::io(&a.file))?;
    let unparsable = match a.unparsable_behavior {
        UnparsableArg::Error => Unparsable::Error,
        UnparsableArg::Discard => Unparsable::Discard,
    };
    let batch = a
        .batch_size
        .clamp(1, crate::vectorize::limits::MAX_FILE_BATCH);
    let mut reader = ndjson::reader(BufReader::new(file), batch, unparsable);
    let mut mutations = Vec::new();
    let mut count = 0usize;
    for vectors in reader.by_ref() {
        let vectors: Vec<Vector> = vectors?;
        count += vectors.len();
        let m = if upsert {
            index.upsert_batch(&vectors, batch)?
        } else {
            index.insert_batch(&vectors, batch)?
        };
        mutations.push(m.mutation_id);
    }
    let discarded = reader.discarded();
    Ok(both(
        json,
        json!({"count": count, "discarded": discarded, "mutationIds": mutations}),
        |_| {
            let verb = if upsert { "Upserted" } else { "Inserted" };
            let mut t = format!(
                "{verb} {count} vectors into {} in {} batch(es)",
                index.name(),
                mutations.len()
            );
            if discarded > 0 {
                t.push_str(&format!("; {discarded} unparsable line(s) discarded"));
            }
            t
        },
    ))
}

fn read_vector_file(path: &PathBuf) -> Result<Vec<f64>> {
    let text = if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().lock().read_to_string_lossy(&mut s);
        s
    } else {
        std::fs::read_to_string(path).map_err(Error::io(path))?
    };
    let trimmed = text.trim();
    if trimmed.starts_with('[') {
        return serde_json::from_str(trimmed)
            .map_err(|e| Error::invalid("vector file", e.to_string()));
    }
    trimmed
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<f64>()
                .map_err(|_| Error::invalid("vector file", format!("`{s}` is not a number")))
        })
        .collect()
}

trait ReadLossy {
    fn read_to_string_lossy(&mut self, out: &mut String);
}

impl<R: BufRead> ReadLossy for R {
    fn read_to_string_lossy(&mut self, out: &mut String) {
        let mut bytes = Vec::new();
        let _ = self.read_to_end(&mut bytes);
        out.push_str(&String::from_utf8_lossy(&bytes));
    }
}

/// Writes every vector of `index` visible to the caller as NDJSON; returns how many.
fn export(index: &VectorIndex, out: &mut dyn Write) -> Result<usize> {
    let mut cursor: Option<String> = None;
    let mut written = 0;
    loop {
        let page = index.list_vectors(
            Some(crate::vectorize::limits::MAX_GET_IDS),
            cursor.as_deref(),
        )?;
        let ids: Vec<String> = page.vectors.iter().map(|v| v.id.clone()).collect();
        for v in index.get_by_ids(&ids)? {
            ndjson::write_vector(out, &v).map_err(Error::io("export"))?;
            written += 1;
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(written),
        }
    }
}

/// A JSON string's text without quotes (other values as JSON).
fn text_of(v: &Json) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}
