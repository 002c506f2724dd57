//! Hybrid search inside a tenant's scope: keywords (SQLite FTS5, BM25) plus vector
//! similarity plus filters, fused by Reciprocal Rank Fusion.
//!
//! # Setting up
//!
//! A *text index* follows one text column of a tenant table. The admin creates it once with
//! [`crate::Database::create_text_index`]; it indexes the rows already there and then follows
//! every insert, update and delete of the table, from the admin surface or from a tenant
//! session alike (see `fts.rs` for how). [`TextSource::knowledge_chunks`] is the bundled
//! schema's: `knowledge_chunks.text`, keyed by `chunk_id`, with each chunk's vector in the
//! `nds-knowledge` index under the id in `vector_id`.
//!
//! ```
//! # fn main() -> d1vec::Result<()> {
//! use d1vec::embed::{Embedder, HashingEmbedder};
//! use d1vec::search::{HybridQuery, TextSource};
//! use d1vec::vectorize::types::Vector;
//!
//! let db = d1vec::Database::open_in_memory()?;
//! db.apply_bundled()?;
//! db.create_text_index(&TextSource::knowledge_chunks())?;
//! db.exec("INSERT INTO tenants (tenant_id, name, plan, region) VALUES ('t1', 'One', 'pro', 'us')")?;
//! let t1 = db.tenant("t1")?;
//! t1.exec("INSERT INTO knowledge_documents (doc_id, title, content_hash) VALUES ('d1', 'Guide', 'h')")?;
//! let embedder = HashingEmbedder::new(1536)?;
//! let index = t1.vectorize("nds-knowledge")?;
//! for (ordinal, (id, text)) in [("c1", "Refunds are paid within 30 days"), ("c2", "Shipping takes a week")]
//!     .into_iter()
//!     .enumerate()
//! {
//!     t1.prepare("INSERT INTO knowledge_chunks (chunk_id, doc_id, ordinal, text, vector_id) VALUES (?1, 'd1', ?2, ?3, ?1)")
//!         .bind([id.into(), d1vec::Param::Integer(ordinal as i64), text.into()])
//!         .run()?;
//!     let values = embedder.embed(text).into_iter().map(f64::from).collect();
//!     index.upsert(&[Vector::new(id, values)])?;
//! }
//! let hits = t1.hybrid_search(&HybridQuery::new("refunds"), Some(&embedder))?;
//! assert_eq!(hits[0].id, "c1");
//! assert_eq!(hits[0].keyword.as_ref().unwrap().rank, 1);
//! # Ok(()) }
//! ```
//!
//! # How a hybrid search runs ([`crate::TenantSession::hybrid_search`])
//!
//! 1. **Keywords.** The query text is parsed as a list of words and phrases, any of which may
//!    match ([`query`]). The engine brings the text index up to date, then finds the
//!    tenant's matching rows with FTS5 and scores them with BM25 over the tenant's rows only
//!    ([`bm25`]: SQLite's own `bm25()` would count every tenant's rows, so one tenant's
//!    scores would reveal what others write). The tenant is the session's; no input names it.
//! 2. **Vectors.** The query vector (given, or the query text through an
//!    [`crate::embed::Embedder`]) is searched in the tenant's namespace of the text index's
//!    vector index, through [`crate::TenantSession::vectorize`], with the optional Vectorize
//!    metadata `filter`.
//! 3. Each list is cut to its best `max(candidates, top_k)` entries.
//! 4. **Rows and filters.** Both lists' rows are read through the tenant session (so its
//!    views scope them), with the optional SQL predicate `where_sql` over the source table's
//!    columns. A keyword hit whose row fails the predicate is dropped, and so is a vector
//!    match whose id no row of the tenant carries (a vector id carried by several rows counts
//!    for each, in key order). With a metadata `filter`, a keyword hit is kept only if its
//!    row's vector passes the filter too (a row without a vector is dropped). Ranks are
//!    positions in the lists that remain.
//! 5. **Fusion** ([`rrf`]): `score(d) = w_keyword / (k + rank_keyword(d)) + w_vector / (k +
//!    rank_vector(d))`, a term only for the lists `d` is in; ranks start at 1. Highest score
//!    first, equal scores by id. The first `top_k` are returned.
//!
//! | parameter ([`HybridQuery`]) | default | limits |
//! |---|---|---|
//! | `top_k` | [`DEFAULT_TOP_K`] = 10 | 1 to [`MAX_TOP_K`] = 100 |
//! | `candidates` | [`DEFAULT_CANDIDATES`] = 50 | 1 to [`MAX_TOP_K`] = 100 (Vectorize's `topK` limit) |
//! | `rrf_k` | [`rrf::DEFAULT_K`] = 60 | finite, at least 0 |
//! | `keyword_weight`, `vector_weight` | 1 | finite, at least 0 |
//!
//! # A worked example of the fusion
//!
//! With `k = 60` and both weights 1, a keyword list `[a, b, c]` and a vector list
//! `[b, d, a]` give:
//!
//! | id | keyword rank | vector rank | score |
//! |---|---|---|---|
//! | b | 2 | 1 | 1/62 + 1/61 = 0.0325224749 |
//! | a | 1 | 3 | 1/61 + 1/63 = 0.0322664585 |
//! | d | — | 2 | 1/62 = 0.0161290323 |
//! | c | 3 | — | 1/63 = 0.0158730159 |
//!
//! `b`, second and first, beats `a`, first and third: agreement between the lists counts for
//! more than one list's top spot. Had `d` and `c` both been second in one list, their
//! scores would tie and `c` would come first, by id.
//!
//! # Isolation
//!
//! A tenant's search reads only its own rows: the keyword side is restricted by the engine to
//! the session's tenant (in FTS5 and again in the bookkeeping), the vector side to its
//! namespace, and rows are read through its views. No score depends on another tenant's
//! rows: BM25's statistics are the tenant's, RRF uses only ranks. The text index's tables
//! (`d1vec_…`) cannot be read or written from a session at all.
//!
//! # Caveats
//!
//! - A text index makes every write to its source table also append to the engine's change
//!   log, and a tenant session counts trigger writes in `meta.changes` (D1 does not): an
//!   insert into `knowledge_chunks` through a session reports 2 changes once the table has a
//!   text index. The fix belongs to the session's change count (`sql::conn`).
//! - A session trusts the text-index triggers that existed when it opened, plus those this
//!   process creates later. If another process creates a text index, sessions opened before
//!   that refuse writes to the source table (a [`crate::Error::TenantViolation`]; nothing is
//!   written) until they are reopened.
//! - Drop the text index before a migration renames or drops its columns, and create it
//!   again afterwards. A migration that recreates the table is detected (its triggers are
//!   gone) and the index is rebuilt on the next search.
//! - Only ASCII letters are case-folded, as FTS5's `ascii` tokenizer does (`école` does not
//!   match `École`), and there is no stemming.
//! - Cost: a search reads every row of the tenant that matches any query phrase (to count
//!   its phrases for BM25) and sums the tenant's row statistics, so it grows with the
//!   tenant's matches, not with the whole table.
//!
//! # Errors
//!
//! Errors are typed: a query with no words or a bad quote, a bad parameter
//! ([`crate::Error::InvalidInput`], [`crate::Error::LimitExceeded`]); a bad metadata filter
//! (Vectorize's code, [`crate::Error::Vectorize`]); a bad predicate ([`crate::Error::Sql`], or
//! [`crate::Error::TenantViolation`] if it reaches outside the tenant's views).

mod hybrid;

pub mod bm25;
pub(crate) mod fts;
pub mod query;
pub mod rrf;

pub(crate) use hybrid::{hybrid_search, text_search};

use serde::{Deserialize, Serialize};

/// The number of hits a hybrid search returns unless told otherwise.
pub const DEFAULT_TOP_K: usize = 10;
/// How many entries of each list go into the fusion unless told otherwise.
pub const DEFAULT_CANDIDATES: usize = 50;
/// The most hits, and the deepest list, a hybrid search takes (Vectorize's `topK` limit).
pub const MAX_TOP_K: usize = 100;
/// The text index [`HybridQuery::new`] searches.
pub const DEFAULT_SOURCE: &str = "knowledge_chunks";

/// The table and columns a text index follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextSource {
    /// A tenant table in `main` (it has a `tenant_id` column).
    pub table: String,
    /// A column that identifies a row: the primary key, or a column with a unique index.
    pub key_column: String,
    /// The column of text to index.
    pub text_column: String,
    /// The column that holds each row's vector id in `vector_index`, if any.
    pub vector_id_column: Option<String>,
    /// The vector index a hybrid search of this table uses, if any.
    pub vector_index: Option<String>,
}

impl TextSource {
    /// The bundled schema's knowledge base: `knowledge_chunks.text`, keyed by `chunk_id`,
    /// each chunk's vector in `nds-knowledge` under the id in `vector_id`.
    pub fn knowledge_chunks() -> Self {
        TextSource {
            table: "knowledge_chunks".into(),
            key_column: "chunk_id".into(),
            text_column: "text".into(),
            vector_id_column: Some("vector_id".into()),
            vector_index: Some("nds-knowledge".into()),
        }
    }
}

/// A text index and how far it has caught up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TextIndexInfo {
    /// What it follows (names spelled as in the schema).
    pub source: TextSource,
    /// Rows indexed.
    pub rows: u64,
    /// Changes logged and not yet applied (the next search applies them).
    pub pending: u64,
}

/// A hybrid search. Build one with [`HybridQuery::new`] and the setters; every field's
/// default is in the [module docs](self).
#[derive(Debug, Clone, PartialEq)]
pub struct HybridQuery {
    /// The keyword query ([`query`]), also embedded when no `vector` is given.
    pub text: String,
    /// The text index to search, by source table. Default [`DEFAULT_SOURCE`].
    pub source: String,
    /// How many hits to return. Default [`DEFAULT_TOP_K`].
    pub top_k: usize,
    /// How deep each list goes before the fusion. Default [`DEFAULT_CANDIDATES`].
    pub candidates: usize,
    /// The query vector; made from `text` with the embedder when `None`.
    pub vector: Option<Vec<f64>>,
    /// A Vectorize metadata filter, applied to both lists.
    pub filter: Option<serde_json::Value>,
    /// An SQL expression over the source table's columns, run through the tenant session;
    /// only rows for which it is true are kept, in both lists.
    pub where_sql: Option<String>,
    /// RRF's `k`. Default [`rrf::DEFAULT_K`].
    pub rrf_k: f64,
    /// The keyword list's RRF weight. Default 1.
    pub keyword_weight: f64,
    /// The vector list's RRF weight. Default 1.
    pub vector_weight: f64,
}

impl HybridQuery {
    /// A search for `text` with every default.
    pub fn new(text: impl Into<String>) -> Self {
        HybridQuery {
            text: text.into(),
            source: DEFAULT_SOURCE.into(),
            top_k: DEFAULT_TOP_K,
            candidates: DEFAULT_CANDIDATES,
            vector: None,
            filter: None,
            where_sql: None,
            rrf_k: rrf::DEFAULT_K,
            keyword_weight: 1.0,
            vector_weight: 1.0,
        }
    }

    /// This search on the text index of `table`.
    pub fn source(mut self, table: impl Into<String>) -> Self {
        self.source = table.into();
        self
    }

    /// This search returning at most `top_k` hits.
    pub fn top_k(mut self, top_k: usize) -> Self {
        self.top_k = top_k;
        self
    }

    /// This search fusing the best `candidates` of each list.
    pub fn candidates(mut self, candidates: usize) -> Self {
        self.candidates = candidates;
        self
    }

    /// This search with an explicit query vector.
    pub fn vector(mut self, vector: Vec<f64>) -> Self {
        self.vector = Some(vector);
        self
    }

    /// This search with a Vectorize metadata filter.
    pub fn filter(mut self, filter: serde_json::Value) -> Self {
        self.filter = Some(filter);
        self
    }

    /// This search keeping only rows where the SQL expression `predicate` is true.
    pub fn where_sql(mut self, predicate: impl Into<String>) -> Self {
        self.where_sql = Some(predicate.into());
        self
    }

    /// This search with RRF constant `k`.
    pub fn rrf_k(mut self, k: f64) -> Self {
        self.rrf_k = k;
        self
    }

    /// This search with the two lists' RRF weights.
    pub fn weights(mut self, keyword: f64, vector: f64) -> Self {
        self.keyword_weight = keyword;
        self.vector_weight = vector;
        self
    }
}

/// Where a hit stood in the keyword list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeywordMatch {
    /// 1-based rank in the (filtered) keyword list.
    pub rank: usize,
    /// Its BM25 score over the tenant's rows (higher is better; see [`bm25`]).
    pub bm25: f64,
}

/// Where a hit stood in the vector list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VectorMatch {
    /// 1-based rank in the (filtered) vector list.
    pub rank: usize,
    /// The vector index's score (cosine similarity, L2 distance, negative dot product).
    pub score: f64,
    /// The id of the vector that matched.
    pub vector_id: String,
}

/// One result of a hybrid search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HybridHit {
    /// The row's key (text as stored, numbers in decimal).
    pub id: String,
    /// Its RRF score.
    pub score: f64,
    /// Its place in the keyword list, if it was there.
    pub keyword: Option<KeywordMatch>,
    /// Its place in the vector list, if it was there.
    pub vector: Option<VectorMatch>,
    /// The row's text.
    pub text: String,
}

/// One result of a keyword-only search ([`crate::TenantSession::text_search`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TextHit {
    /// The row's key (text as stored, numbers in decimal).
    pub id: String,
    /// Its BM25 score over the tenant's rows (higher is better).
    pub bm25: f64,
    /// The row's text.
    pub text: String,
}
