//! `d1vec search`: hybrid search of one tenant's rows from the command line.

use clap::Args;
use serde_json::{json, Value as Json};

use crate::embed::HashingEmbedder;
use crate::error::{Error, Result};
use crate::search::{HybridHit, HybridQuery, TextSource};
use crate::{Database, TenantSession};

/// `search`
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The vector index of the text index to search. The knowledge base's text index
    /// (`knowledge_chunks`, vectors in `nds-knowledge`) is created on first use.
    #[arg(long, default_value = "nds-knowledge")]
    pub index: String,
    /// How many hits to print (1..=100).
    #[arg(long, default_value_t = crate::search::DEFAULT_TOP_K)]
    pub top_k: usize,
    /// How many of each list's best go into the fusion (1..=100).
    #[arg(long, default_value_t = crate::search::DEFAULT_CANDIDATES)]
    pub candidates: usize,
    /// A Vectorize metadata filter, as JSON, e.g. '{"lang": "en"}'; applies to both lists.
    #[arg(long)]
    pub filter: Option<String>,
    /// An SQL expression over the source table's columns, e.g. "doc_id = 'd1'"; applies to
    /// both lists, through the tenant's views.
    #[arg(long = "where")]
    pub where_sql: Option<String>,
    /// Reciprocal Rank Fusion's k: a hit at rank r of a list scores 1/(k + r).
    #[arg(long, default_value_t = crate::search::rrf::DEFAULT_K)]
    pub rrf_k: f64,
    /// The query: words, "quoted phrases" and prefix* words, any of which may match. It is
    /// also embedded with the offline lexical embedder for the vector side.
    pub text: String,
}

/// What `search` prints.
#[derive(Debug)]
pub enum Out {
    /// `--json`: `{"count", "hits"}`.
    Json(Json),
    /// A table of the hits.
    Text(String),
}

/// Runs `search` inside `tenant`'s session. Without a tenant it is refused: the results and
/// the BM25 statistics are defined per tenant, and an admin-wide search would mix tenants.
pub fn run(
    db: &Database,
    tenant: Option<&TenantSession>,
    json: bool,
    a: SearchArgs,
) -> Result<Out> {
    let Some(session) = tenant else {
        return Err(Error::invalid(
            "arguments",
            "search runs inside one tenant's scope: give --tenant",
        ));
    };
    let found = db
        .text_indexes()?
        .into_iter()
        .find(|t| t.source.vector_index.as_deref() == Some(a.index.as_str()));
    let source = match found {
        Some(t) => t.source,
        None if a.index == "nds-knowledge" => {
            db.create_text_index(&TextSource::knowledge_chunks())?
                .source
        }
        None => {
            return Err(Error::invalid(
                "index",
                format!("no text index searches vector index `{}`", a.index),
            ))
        }
    };
    let dims = db.get_index(&a.index)?.config.dimensions;
    let embedder = HashingEmbedder::new(dims)?;
    let mut query = HybridQuery::new(a.text)
        .source(source.table)
        .top_k(a.top_k)
        .candidates(a.candidates)
        .rrf_k(a.rrf_k);
    if let Some(f) = a.filter {
        let parsed: Json = serde_json::from_str(&f)
            .map_err(|e| Error::invalid("filter", format!("not JSON: {e}")))?;
        query = query.filter(parsed);
    }
    if let Some(w) = a.where_sql {
        query = query.where_sql(w);
    }
    let hits = session.hybrid_search(&query, Some(&embedder))?;
    Ok(if json {
        Out::Json(json!({"count": hits.len(), "hits": hits}))
    } else {
        Out::Text(table(&hits))
    })
}

/// Three decimals, or three significant digits for a small non-zero value (a BM25 score
/// near IDF's floor of 10⁻⁶ in a tiny corpus).
fn number(v: f64) -> String {
    if v != 0.0 && v.abs() < 0.001 {
        format!("{v:.2e}")
    } else {
        format!("{v:.3}")
    }
}

fn table(hits: &[HybridHit]) -> String {
    let columns: Vec<String> = ["#", "id", "rrf", "keyword", "vector", "text"]
        .map(String::from)
        .to_vec();
    let rows: Vec<Vec<Json>> = hits
        .iter()
        .enumerate()
        .map(|(i, h)| {
            vec![
                json!(i + 1),
                json!(h.id),
                json!(format!("{:.6}", h.score)),
                json!(h.keyword.as_ref().map_or("-".into(), |k| format!(
                    "#{} bm25 {}",
                    k.rank,
                    number(k.bm25)
                ))),
                json!(h.vector.as_ref().map_or("-".into(), |v| format!(
                    "#{} {}",
                    v.rank,
                    number(v.score)
                ))),
                json!(h.text.replace(['\n', '\r', '\t'], " ")),
            ]
        })
        .collect();
    format!(
        "{}\n{} hit(s)",
        super::output::table(&columns, &rows),
        hits.len()
    )
}
