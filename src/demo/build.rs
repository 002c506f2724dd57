//! Builds the demo's database in its folder: schema and vector indexes, the generated rows,
//! the three indexes' vectors and the rollups, timing each phase.
//!
//! Vectors come from the rows as loaded (read back with SQL), embedded with the offline
//! [`HashingEmbedder`] and written through the admin vector API in batches of Vectorize's
//! 1,000, the way an operator's backfill job would:
//! - `nds-knowledge` (private): every knowledge chunk, id = `vector_id`, namespace = the
//!   tenant, metadata `doc_id`, `kind` (the document's kind, the part of its title before
//!   `:`), `format` (`pdf` or `markdown`), `ordinal`, `tokens` and `title`;
//! - `nds-brand-voice` (private): one vector per brand profile, id = `voice_vector_id`,
//!   namespace = the tenant, embedding the brand's name, tone, lexicon and messaging;
//! - `nds-skills` (shared, no namespace): every skill, id = `vector_id`, metadata
//!   `category`, `status` and `name`.
//!
//! Metadata indexes are created before the vectors are inserted, since Vectorize's are not
//! retroactive.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json};

use super::dataset::{generate, Scale};
use super::folder;
use super::progress::Progress;
use crate::embed::{Embedder, HashingEmbedder};
use crate::error::Result;
use crate::rollup::RollupRange;
use crate::vectorize::filter::IndexType;
use crate::vectorize::types::Vector;
use crate::Database;

/// Vectors per insert call: Vectorize's batch limit.
const BATCH: usize = 1000;

/// The metadata indexes of the private knowledge index, created before any vector.
pub const KNOWLEDGE_METADATA_INDEXES: &[(&str, IndexType)] = &[
    ("kind", IndexType::String),
    ("format", IndexType::String),
    ("doc_id", IndexType::String),
    ("tokens", IndexType::Number),
];

/// The metadata indexes of the shared skills index.
pub const SKILL_METADATA_INDEXES: &[(&str, IndexType)] = &[
    ("category", IndexType::String),
    ("status", IndexType::String),
];

/// How long one phase of the build took.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseTime {
    /// What the phase did.
    pub phase: String,
    /// How many items (rows, vectors) it handled; 0 when not counted.
    pub items: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// What [`build`] made, and how long each part took.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuildReport {
    /// The demo folder.
    pub dir: PathBuf,
    /// The database file inside it (open it with `d1vec --db`).
    pub database: PathBuf,
    /// The dataset's seed.
    pub seed: u64,
    /// The dataset's scale, `demo` or `tiny`.
    pub scale: String,
    /// The first and last day of the dataset's activity, `YYYY-MM-DD`.
    pub days: (String, String),
    /// Rows loaded per table (tables left empty by the generator are omitted).
    pub rows: Vec<(String, usize)>,
    /// Vectors inserted per index.
    pub vectors: Vec<(String, usize)>,
    /// Rows written per rollup table.
    pub rollups: Vec<(String, usize)>,
    /// Each phase's time, in order.
    pub phases: Vec<PhaseTime>,
}

/// The name of a scale as the command line spells it.
pub fn scale_name(scale: Scale) -> &'static str {
    match scale {
        Scale::Tiny => "tiny",
        Scale::Demo => "demo",
    }
}

/// Times phases and reports them.
struct Clock<'p> {
    progress: &'p dyn Progress,
    phases: Vec<PhaseTime>,
}

impl Clock<'_> {
    /// Runs `f` as the phase `name` of `total` items (0: no progress bar).
    fn phase<T>(&mut self, name: &str, total: u64, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let started = Instant::now();
        self.progress.begin(name, total);
        let out = f();
        self.progress.end(out.is_ok());
        self.record(name, total, started.elapsed().as_secs_f64());
        out
    }

    fn record(&mut self, name: &str, items: u64, seconds: f64) {
        self.phases.push(PhaseTime {
            phase: name.to_owned(),
            items,
            seconds,
        });
    }
}

/// Builds the demo in `dir` from scratch (see [`folder::reset`] for what it deletes and
/// what it refuses): the returned database is ready for [`super::tour::run`].
pub fn build(
    dir: &Path,
    seed: u64,
    scale: Scale,
    progress: &dyn Progress,
) -> Result<(Database, BuildReport)> {
    let mut clock = Clock {
        progress,
        phases: Vec::new(),
    };
    let path = clock.phase("prepare the folder", 0, || folder::reset(dir))?;
    let data = clock.phase("generate the dataset", 0, || Ok(generate(seed, scale)))?;
    let db = clock.phase("apply migrations, create vector indexes", 0, || {
        let db = Database::open(&path)?;
        db.apply_bundled()?;
        Ok(db)
    })?;
    let rows: Vec<(String, usize)> = data
        .counts()
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(t, n)| (t.to_owned(), n))
        .collect();
    let total: usize = rows.iter().map(|(_, n)| n).sum();
    clock.phase("load rows", total as u64, || {
        data.load_with_progress(&db, |_, n| progress.advance(n as u64))
    })?;
    let mut vectors = Vec::new();
    let knowledge = knowledge_vectors(&db)?;
    vectors.push(load_index(
        &db,
        &mut clock,
        "nds-knowledge",
        knowledge,
        KNOWLEDGE_METADATA_INDEXES,
    )?);
    let voices = voice_vectors(&db)?;
    vectors.push(load_index(&db, &mut clock, "nds-brand-voice", voices, &[])?);
    let skills = skill_vectors(&db)?;
    vectors.push(load_index(
        &db,
        &mut clock,
        "nds-skills",
        skills,
        SKILL_METADATA_INDEXES,
    )?);
    // Sealed segments are memory-mapped on the next open, so later commands on the demo's
    // database start at once instead of rebuilding the graphs from SQLite.
    clock.phase("seal the vector segments", 0, || {
        for (index, _) in &vectors {
            db.vectorize(index)?.seal()?;
        }
        Ok(())
    })?;
    clock.phase("index the knowledge text (FTS5)", 0, || {
        db.create_text_index(&crate::search::TextSource::knowledge_chunks())
            .map(|_| ())
    })?;
    let report = clock.phase("run the rollups", 0, || db.rollup(&RollupRange::All))?;

    Ok((
        db,
        BuildReport {
            dir: dir.to_path_buf(),
            database: path,
            seed,
            scale: scale_name(scale).to_owned(),
            days: (data.first_day.clone(), data.last_day.clone()),
            rows,
            vectors,
            rollups: report.tables,
            phases: clock.phases,
        },
    ))
}

/// What to embed for one vector: its id, namespace, metadata and text.
struct Source {
    id: String,
    namespace: Option<String>,
    metadata: Map<String, Json>,
    text: String,
}

/// Creates `index`'s metadata indexes, then embeds and inserts `sources` in batches; records
/// the embedding and the inserting as two phases. Returns `(index, vectors inserted)`.
fn load_index(
    db: &Database,
    clock: &mut Clock<'_>,
    index: &str,
    sources: Vec<Source>,
    metadata_indexes: &[(&str, IndexType)],
) -> Result<(String, usize)> {
    let handle = db.vectorize(index)?;
    for (property, ty) in metadata_indexes {
        handle.create_metadata_index(property, *ty)?;
    }
    let dims = handle.dimensions();
    let embedder = HashingEmbedder::new(dims)?;
    let name = format!("embed and insert {index}");
    clock.progress.begin(&name, sources.len() as u64);
    let inserted = insert_batches(&handle, &embedder, &sources, clock.progress);
    clock.progress.end(inserted.is_ok());
    let (embed_s, insert_s) = inserted?;
    let n = sources.len() as u64;
    clock.record(&format!("embed {index} ({dims} dims)"), n, embed_s);
    clock.record(&format!("insert into {index}"), n, insert_s);
    Ok((index.to_owned(), sources.len()))
}

/// Embeds and inserts `sources` in batches of [`BATCH`]; returns the seconds spent embedding
/// and inserting.
fn insert_batches(
    handle: &crate::vectorize::VectorIndex,
    embedder: &HashingEmbedder,
    sources: &[Source],
    progress: &dyn Progress,
) -> Result<(f64, f64)> {
    let (mut embed_s, mut insert_s) = (0.0, 0.0);
    for batch in sources.chunks(BATCH) {
        let started = Instant::now();
        let texts: Vec<&str> = batch.iter().map(|s| s.text.as_str()).collect();
        let embedded = embedder.embed_batch(&texts);
        let vectors: Vec<Vector> = batch
            .iter()
            .zip(embedded)
            .map(|(s, values)| Vector {
                id: s.id.clone(),
                values: values.into_iter().map(f64::from).collect(),
                namespace: s.namespace.clone(),
                metadata: Some(s.metadata.clone()),
            })
            .collect();
        embed_s += started.elapsed().as_secs_f64();
        let started = Instant::now();
        handle.insert(&vectors)?;
        insert_s += started.elapsed().as_secs_f64();
        progress.advance(batch.len() as u64);
    }
    Ok((embed_s, insert_s))
}

#[derive(Deserialize)]
struct ChunkRow {
    vector_id: String,
    tenant_id: String,
    doc_id: String,
    ordinal: i64,
    text: String,
    token_count: Option<i64>,
    title: String,
    mime_type: Option<String>,
}

/// One source per knowledge chunk that has a vector id.
fn knowledge_vectors(db: &Database) -> Result<Vec<Source>> {
    let rows: Vec<ChunkRow> = db
        .prepare(
            "SELECT c.vector_id, c.tenant_id, c.doc_id, c.ordinal, c.text, c.token_count,
                    d.title, d.mime_type
             FROM knowledge_chunks c
             JOIN knowledge_documents d ON d.tenant_id = c.tenant_id AND d.doc_id = c.doc_id
             WHERE c.vector_id IS NOT NULL
             ORDER BY c.vector_id",
        )
        .all_as()?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let metadata = json!({
                "doc_id": r.doc_id,
                "kind": doc_kind(&r.title),
                "format": format_of(r.mime_type.as_deref()),
                "ordinal": r.ordinal,
                "tokens": r.token_count,
                "title": r.title,
            });
            Source {
                id: r.vector_id,
                namespace: Some(r.tenant_id),
                metadata: into_map(metadata),
                text: r.text,
            }
        })
        .collect())
}

/// The kind of a knowledge document: its title up to the first `:` ("FAQ: …" is a FAQ).
pub fn doc_kind(title: &str) -> &str {
    title.split_once(':').map_or(title, |(kind, _)| kind).trim()
}

/// `pdf` or `markdown` (or the MIME type itself) for a document's MIME type.
pub fn format_of(mime: Option<&str>) -> String {
    match mime {
        Some("application/pdf") => "pdf".to_owned(),
        Some("text/markdown") => "markdown".to_owned(),
        Some(other) => other.to_owned(),
        None => "unknown".to_owned(),
    }
}

#[derive(Deserialize)]
struct VoiceRow {
    voice_vector_id: String,
    tenant_id: String,
    brand_name: String,
    tone: String,
    lexicon: String,
    messaging: String,
}

/// One source per brand profile that has a voice vector id.
fn voice_vectors(db: &Database) -> Result<Vec<Source>> {
    let rows: Vec<VoiceRow> = db
        .prepare(
            "SELECT voice_vector_id, tenant_id, brand_name, tone, lexicon, messaging
             FROM brand_profiles WHERE voice_vector_id IS NOT NULL ORDER BY tenant_id",
        )
        .all_as()?;
    Ok(rows
        .into_iter()
        .map(|r| Source {
            text: voice_text(&r.brand_name, &[&r.tone, &r.lexicon, &r.messaging]),
            id: r.voice_vector_id,
            namespace: Some(r.tenant_id),
            metadata: into_map(json!({ "brand": r.brand_name })),
        })
        .collect())
}

/// The text a brand voice is embedded from: the brand's name and every word of its tone,
/// lexicon and messaging JSON, except the words it avoids.
pub fn voice_text(brand_name: &str, json_columns: &[&str]) -> String {
    let mut words = vec![brand_name.to_owned()];
    for column in json_columns {
        if let Ok(value) = serde_json::from_str::<Json>(column) {
            collect_strings(&value, &mut words);
        }
    }
    words.join(". ")
}

fn collect_strings(value: &Json, out: &mut Vec<String>) {
    match value {
        Json::String(s) => out.push(s.clone()),
        Json::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Json::Object(map) => map
            .iter()
            .filter(|(k, _)| k.as_str() != "avoid")
            .for_each(|(_, v)| collect_strings(v, out)),
        _ => {}
    }
}

#[derive(Deserialize)]
struct SkillRow {
    vector_id: String,
    name: String,
    category: String,
    description: Option<String>,
    status: String,
}

/// One source per skill that has a vector id: shared, so no namespace.
fn skill_vectors(db: &Database) -> Result<Vec<Source>> {
    let rows: Vec<SkillRow> = db
        .prepare(
            "SELECT vector_id, name, category, description, status
             FROM skills WHERE vector_id IS NOT NULL ORDER BY vector_id",
        )
        .all_as()?;
    Ok(rows
        .into_iter()
        .map(|r| Source {
            text: skill_text(&r.name, &r.category, r.description.as_deref()),
            id: r.vector_id,
            namespace: None,
            metadata: into_map(json!({
                "category": r.category,
                "status": r.status,
                "name": r.name,
            })),
        })
        .collect())
}

/// The text a skill is embedded from: its name, category and description.
pub fn skill_text(name: &str, category: &str, description: Option<&str>) -> String {
    format!("{name}. {category}. {}", description.unwrap_or(""))
}

fn into_map(value: Json) -> Map<String, Json> {
    match value {
        Json::Object(m) => m,
        _ => Map::new(),
    }
}
