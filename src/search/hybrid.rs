//! Runs a hybrid search for a tenant session: the two lists, the filters, the fusion.

use std::collections::{HashMap, HashSet};

use serde_json::Value as Json;

use super::fts::{self, key_string, KeywordHit, TextIndexRow};
use super::query::KeywordQuery;
use super::rrf::{fuse, RankedList};
use super::{HybridHit, HybridQuery, KeywordMatch, TextHit, VectorMatch, MAX_TOP_K};
use crate::db::Shared;
use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::tenant::guard::ident;
use crate::tenant::TenantSession;
use crate::vectorize::filter::{indexed_value, matches, parse_filter, IndexType};
use crate::vectorize::types::{Match, QueryOptions};
use crate::vectorize::VectorIndex;

/// A row of the source table as the tenant session reads it.
struct SourceRow {
    vector_id: Option<String>,
    text: String,
}

fn json_key(key: &rusqlite::types::Value) -> Json {
    match key {
        rusqlite::types::Value::Integer(i) => Json::from(*i),
        other => Json::from(key_string(other)),
    }
}

fn json_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

fn check_count(what: &'static str, n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::invalid(what, "must be at least 1"));
    }
    if n > MAX_TOP_K {
        return Err(Error::LimitExceeded {
            what,
            limit: MAX_TOP_K,
            got: n,
        });
    }
    Ok(())
}

/// Keyword-only search: the tenant's rows matching `query`, best first, at most `limit`.
pub(crate) fn text_search(
    shared: &Shared,
    tenant: &str,
    source: &str,
    query: &str,
    limit: usize,
) -> Result<Vec<TextHit>> {
    if limit == 0 {
        return Err(Error::invalid("limit", "must be at least 1"));
    }
    let keywords = KeywordQuery::parse(query)?;
    let row = fts::index_for(shared, source)?;
    fts::sync(shared, &row)?;
    let mut hits = fts::keyword_hits(shared, &row, tenant, &keywords)?;
    hits.truncate(limit);
    Ok(hits
        .into_iter()
        .map(|h| TextHit {
            id: h.id,
            bm25: h.bm25,
            text: h.text,
        })
        .collect())
}

/// Reads the rows behind both lists through the session (its views scope them), keeping
/// those where the predicate holds. Keyed by [`key_string`].
fn read_rows(
    session: &TenantSession,
    row: &TextIndexRow,
    vector_id_column: &str,
    keyword: &[KeywordHit],
    vector: &[Match],
    predicate: Option<&str>,
) -> Result<HashMap<String, SourceRow>> {
    let keys = Json::Array(keyword.iter().map(|h| json_key(&h.key)).collect());
    let vids = Json::Array(vector.iter().map(|m| Json::from(m.id.clone())).collect());
    let (key, vid) = (ident(&row.source.key_column), ident(vector_id_column));
    // The predicate stands alone on its lines, so a trailing `--` comment cannot swallow
    // the closing parenthesis.
    let sql = format!(
        "SELECT {key} AS k, {vid} AS v, {text} AS t FROM {table}\nWHERE ({key} IN (SELECT value FROM json_each(?1)) OR {vid} IN (SELECT value FROM json_each(?2)))\nAND (\n{pred}\n)",
        text = ident(&row.source.text_column),
        table = ident(&row.source.table),
        pred = predicate.unwrap_or("1"),
    );
    let result = session
        .prepare(&sql)
        .bind([keys.to_string(), vids.to_string()])
        .all()?;
    Ok(result
        .results
        .iter()
        .map(|r| {
            let get = |c: &str| r.get(c).cloned().unwrap_or(Json::Null);
            (
                json_text(&get("k")),
                SourceRow {
                    vector_id: match get("v") {
                        Json::Null => None,
                        v => Some(json_text(&v)),
                    },
                    text: json_text(&get("t")),
                },
            )
        })
        .collect())
}

/// The vector ids among `ids` whose stored metadata passes `filter`, read through `index`
/// (so confined to the tenant's namespace).
fn passing_filter(index: &VectorIndex, filter: &Json, ids: &[String]) -> Result<HashSet<String>> {
    let filter = parse_filter(filter).map_err(|e| Error::invalid("filter", e.to_string()))?;
    let types: HashMap<String, IndexType> = index
        .list_metadata_indexes()?
        .into_iter()
        .map(|m| (m.property_name, m.index_type))
        .collect();
    let mut passing = HashSet::new();
    for chunk in ids.chunks(crate::vectorize::limits::MAX_GET_IDS) {
        for v in index.get_by_ids(chunk)? {
            let meta = v.metadata.map(Json::Object);
            let ok = matches(&filter, &|p| types.get(p).copied(), &|p| {
                let ty = types.get(p).copied().unwrap_or(IndexType::String);
                indexed_value(meta.as_ref(), p, ty)
            })
            .map_err(|e| Error::invalid("filter", e.to_string()))?;
            if ok {
                passing.insert(v.id);
            }
        }
    }
    Ok(passing)
}

/// Runs `query` for `session`'s tenant.
pub(crate) fn hybrid_search(
    session: &TenantSession,
    shared: &Shared,
    query: &HybridQuery,
    embedder: Option<&dyn Embedder>,
) -> Result<Vec<HybridHit>> {
    check_count("top_k", query.top_k)?;
    check_count("candidates", query.candidates)?;
    let depth = query.top_k.max(query.candidates);
    let keywords = KeywordQuery::parse(&query.text)?;
    // Check the fusion's parameters before any work.
    fuse(
        &[
            RankedList {
                weight: query.keyword_weight,
                ids: &[],
            },
            RankedList {
                weight: query.vector_weight,
                ids: &[],
            },
        ],
        query.rrf_k,
    )?;
    let row = fts::index_for(shared, &query.source)?;
    let (Some(vector_id_column), Some(vector_index)) = (
        row.source.vector_id_column.clone(),
        row.source.vector_index.clone(),
    ) else {
        return Err(Error::invalid(
            "hybrid search",
            format!(
                "the text index on `{}` has no vector index; use text_search",
                row.source.table
            ),
        ));
    };
    let values: Vec<f64> = match (&query.vector, embedder) {
        (Some(v), _) => v.clone(),
        (None, Some(e)) => e.embed(&query.text).into_iter().map(f64::from).collect(),
        (None, None) => {
            return Err(Error::invalid(
                "hybrid search",
                "give a query vector or an embedder",
            ))
        }
    };

    // The vector list (the index forces the tenant's namespace).
    let index = session.vectorize(&vector_index)?;
    let mut options = QueryOptions::new().with_top_k(depth);
    if let Some(f) = &query.filter {
        options = options.with_filter(f.clone());
    }
    let vector_hits = index.query(&values, &options)?.matches;

    // The keyword list (the engine restricts it to the session's tenant).
    fts::sync(shared, &row)?;
    let mut keyword_hits = fts::keyword_hits(shared, &row, session.tenant_id(), &keywords)?;
    keyword_hits.truncate(depth);

    let rows = read_rows(
        session,
        &row,
        &vector_id_column,
        &keyword_hits,
        &vector_hits,
        query.where_sql.as_deref(),
    )?;
    let allowed_vectors = match &query.filter {
        None => None,
        Some(f) => {
            let mut ids: Vec<String> = keyword_hits
                .iter()
                .filter_map(|h| rows.get(&h.id).and_then(|r| r.vector_id.clone()))
                .collect();
            ids.sort();
            ids.dedup();
            Some(passing_filter(&index, f, &ids)?)
        }
    };
    let keyword_list: Vec<&KeywordHit> = keyword_hits
        .iter()
        .filter(|h| match (rows.get(&h.id), &allowed_vectors) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(r), Some(allowed)) => r.vector_id.as_ref().is_some_and(|v| allowed.contains(v)),
        })
        .collect();
    let mut by_vector: HashMap<&str, Vec<&str>> = HashMap::new();
    for (k, r) in &rows {
        if let Some(v) = &r.vector_id {
            by_vector.entry(v.as_str()).or_default().push(k.as_str());
        }
    }
    let mut vector_list: Vec<(String, &Match)> = Vec::new();
    let mut seen = HashSet::new();
    for m in &vector_hits {
        let mut keys = by_vector.get(m.id.as_str()).cloned().unwrap_or_default();
        keys.sort_unstable();
        for k in keys {
            if seen.insert(k) {
                vector_list.push((k.to_owned(), m));
            }
        }
    }

    let keyword_ids: Vec<String> = keyword_list.iter().map(|h| h.id.clone()).collect();
    let vector_ids: Vec<String> = vector_list.iter().map(|(k, _)| k.clone()).collect();
    let fused = fuse(
        &[
            RankedList {
                weight: query.keyword_weight,
                ids: &keyword_ids,
            },
            RankedList {
                weight: query.vector_weight,
                ids: &vector_ids,
            },
        ],
        query.rrf_k,
    )?;
    Ok(fused
        .into_iter()
        .take(query.top_k)
        .map(|f| {
            let keyword = f.ranks[0].map(|rank| KeywordMatch {
                rank,
                bm25: keyword_list[rank - 1].bm25,
            });
            let vector = f.ranks[1].map(|rank| {
                let m = vector_list[rank - 1].1;
                VectorMatch {
                    rank,
                    score: m.score,
                    vector_id: m.id.clone(),
                }
            });
            HybridHit {
                text: rows.get(&f.id).map(|r| r.text.clone()).unwrap_or_default(),
                id: f.id,
                score: f.score,
                keyword,
                vector,
            }
        })
        .collect())
}
