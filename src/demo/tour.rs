//! The guided tour: a few questions the application asks of its data, each answered through
//! the API a real deployment would use (a tenant's session for tenant data, the admin surface
//! only for the operator's counts), returned as a serialisable [`Tour`] of [`Step`]s.
//!
//! The command line renders the steps as tables, or prints the [`Tour`] as JSON; tests check
//! each step against SQLite and brute force.

use serde::Serialize;
use serde_json::{json, Value as Json};

use super::build::BuildReport;
use crate::catalog::K_ANONYMITY;
use crate::embed::{Embedder, HashingEmbedder};
use crate::error::{Error, Result};
use crate::sql::cursor::{page, PageSpec};
use crate::vectorize::types::{Matches, QueryOptions, ReturnMetadata};
use crate::{Database, Param, TenantSession};

/// The tenant whose view the tour mostly shows (the marketing agency; present at every
/// scale).
pub const TENANT_A: &str = "t_brightline";
/// The tenant that runs the same search to show isolation (the fintech brand).
pub const TENANT_B: &str = "t_ledgerly";
/// What tenant A searches its knowledge base for.
pub const KNOWLEDGE_QUERY: &str =
    "How do we grow the email list with a lead magnet and a newsletter?";
/// The knowledge search's metadata filter: FAQ documents only.
pub const KNOWLEDGE_KIND: &str = "FAQ";
/// What tenant A's hybrid search asks: exact words (found by BM25) and a meaning (found by
/// the vectors) in one query.
pub const HYBRID_QUERY: &str = "welcome email sequence for new newsletter subscribers";
/// Rows the hybrid step shows.
pub const HYBRID_ROWS: usize = 6;
/// What tenant A looks for in the shared skills.
pub const SKILL_QUERY: &str = "a short thread with a hook, proof and a call to action";
/// Matches per vector query.
pub const TOP_K: usize = 5;
/// Rows per page of the paged listing (two pages are shown).
pub const PAGE_ROWS: usize = 4;

/// One step of the tour: a question, the call that answers it, and the answer as a table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// A stable name for machines (`knowledge_search`, `cross_tenant`, …).
    pub id: String,
    /// The question, for people.
    pub title: String,
    /// Whose session ran it: a tenant id, or `None` for the admin surface.
    pub tenant: Option<String>,
    /// The SQL or API call that produced the rows.
    pub call: String,
    /// Column names.
    pub columns: Vec<String>,
    /// The rows, one value per column.
    pub rows: Vec<Vec<Json>>,
    /// What the rows show, and what they leave out on purpose.
    pub note: String,
}

impl Step {
    /// The values of column `name`, one per row (empty if there is no such column).
    pub fn column(&self, name: &str) -> Vec<&Json> {
        match self.columns.iter().position(|c| c == name) {
            Some(i) => self.rows.iter().filter_map(|r| r.get(i)).collect(),
            None => Vec::new(),
        }
    }
}

/// The whole tour: how the demo was built, the steps, and the time taken.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tour {
    /// What was built and how long each phase took.
    pub build: BuildReport,
    /// The tenant most steps run as.
    pub tenant_a: String,
    /// The other tenant of the isolation step.
    pub tenant_b: String,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// Seconds the steps took.
    pub tour_seconds: f64,
    /// Seconds from the start of the build to the end of the tour.
    pub total_seconds: f64,
}

impl Tour {
    /// The step with this id.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }
}

/// Runs every step on a database built by [`super::build::build`].
pub fn run(db: &Database, build: BuildReport) -> Result<Tour> {
    let started = std::time::Instant::now();
    let a = db.tenant(TENANT_A)?;
    let b = db.tenant(TENANT_B)?;
    let knowledge_dims = a.vectorize("nds-knowledge")?.dimensions();
    let query = embed(knowledge_dims, KNOWLEDGE_QUERY)?;
    let steps = vec![
        knowledge_step(&a, &query)?,
        cross_tenant_step(&b, &a, &query)?,
        brand_voice_step(&a)?,
        skills_step(db, &a)?,
        skill_search_step(&a)?,
        roi_step(&a)?,
        paged_step(&a)?,
        hybrid_step(&a)?,
    ];
    Ok(Tour {
        build,
        tenant_a: TENANT_A.to_owned(),
        tenant_b: TENANT_B.to_owned(),
        steps,
        tour_seconds: started.elapsed().as_secs_f64(),
        total_seconds: 0.0,
    })
}

/// `text` embedded with the offline embedder at `dims`, widened to Vectorize's f64.
pub fn embed(dims: usize, text: &str) -> Result<Vec<f64>> {
    Ok(HashingEmbedder::new(dims)?
        .embed(text)
        .into_iter()
        .map(f64::from)
        .collect())
}

/// The options of the knowledge search (both tenants run the same).
pub fn knowledge_options() -> QueryOptions {
    QueryOptions::new()
        .with_top_k(TOP_K)
        .with_filter(json!({ "kind": KNOWLEDGE_KIND }))
        .with_metadata(ReturnMetadata::All)
}

fn query_call(tenant: &str, index: &str, text: &str, options: &QueryOptions) -> String {
    format!(
        "db.tenant(\"{tenant}\").vectorize(\"{index}\").query(embed({text:?}), {})",
        serde_json::to_string(options).unwrap_or_default()
    )
}

/// The columns of a knowledge search's rows.
const KNOWLEDGE_COLUMNS: &[&str] = &["rank", "score", "chunk_id", "namespace", "document", "text"];

/// A knowledge search's matches as rows, with each chunk's text read back through the
/// session's SQL (a hit the session cannot read has no text).
fn knowledge_rows(session: &TenantSession, matches: &Matches) -> Result<Vec<Vec<Json>>> {
    let ids: Vec<Param> = matches
        .matches
        .iter()
        .map(|m| Param::Text(m.id.clone()))
        .collect();
    let texts = if ids.is_empty() {
        Vec::new()
    } else {
        let marks: Vec<String> = (1..=ids.len()).map(|i| format!("?{i}")).collect();
        session
            .prepare(&format!(
                "SELECT vector_id, text FROM knowledge_chunks WHERE vector_id IN ({})",
                marks.join(", ")
            ))
            .bind(ids)
            .all()?
            .results
    };
    Ok(matches
        .matches
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let text = texts
                .iter()
                .find(|r| r.get("vector_id").and_then(Json::as_str) == Some(m.id.as_str()))
                .and_then(|r| r.get("text").cloned())
                .unwrap_or(Json::Null);
            let title = m
                .metadata
                .as_ref()
                .and_then(|md| md.get("title").cloned())
                .unwrap_or(Json::Null);
            vec![
                json!(i + 1),
                json!(m.score),
                json!(m.id),
                json!(m.namespace),
                title,
                text,
            ]
        })
        .collect())
}

fn knowledge_step(a: &TenantSession, query: &[f64]) -> Result<Step> {
    let options = knowledge_options();
    let matches = a.vectorize("nds-knowledge")?.query(query, &options)?;
    let rows = knowledge_rows(a, &matches)?;
    let (own, faq) = (
        count(a, "SELECT count(*) AS n FROM knowledge_chunks")?,
        count(
            a,
            &format!(
                "SELECT count(*) AS n FROM knowledge_chunks c JOIN knowledge_documents d
                 ON d.doc_id = c.doc_id WHERE d.title LIKE '{KNOWLEDGE_KIND}:%'"
            ),
        )?,
    );
    Ok(Step {
        id: "knowledge_search".into(),
        title: format!("{TENANT_A} searches its knowledge base, FAQ documents only"),
        tenant: Some(TENANT_A.into()),
        call: query_call(TENANT_A, "nds-knowledge", KNOWLEDGE_QUERY, &options),
        columns: strings(KNOWLEDGE_COLUMNS),
        rows,
        note: format!(
            "{faq} of the tenant's {own} chunks come from FAQ documents; the filter ran on the \
             `kind` metadata index, and the session searched only the namespace {TENANT_A}. \
             Scores are cosine similarities of the offline (lexical) embedder."
        ),
    })
}

fn cross_tenant_step(b: &TenantSession, a: &TenantSession, query: &[f64]) -> Result<Step> {
    let options = knowledge_options();
    let index = b.vectorize("nds-knowledge")?;
    let matches = index.query(query, &options)?;
    let rows = knowledge_rows(b, &matches)?;
    let theirs = count(a, "SELECT count(*) AS n FROM knowledge_chunks")?;
    let seen = matches
        .matches
        .iter()
        .filter(|m| m.namespace.as_deref() == Some(TENANT_A))
        .count();
    let refused = match index.query(query, &options.clone().with_namespace(TENANT_A)) {
        Ok(m) => format!("answered with {} matches (unexpected)", m.count),
        Err(e) => format!("refused ({e})"),
    };
    let sql_rows = count(
        b,
        &format!("SELECT count(*) AS n FROM knowledge_chunks WHERE tenant_id = '{TENANT_A}'"),
    )?;
    Ok(Step {
        id: "cross_tenant".into(),
        title: format!("{TENANT_B} runs the same search: none of {TENANT_A}'s chunks"),
        tenant: Some(TENANT_B.into()),
        call: query_call(TENANT_B, "nds-knowledge", KNOWLEDGE_QUERY, &options),
        columns: strings(KNOWLEDGE_COLUMNS),
        rows,
        note: format!(
            "{seen} of {TENANT_A}'s {theirs} chunks returned: the session is confined to the \
             namespace {TENANT_B}, whatever the query. Asking for namespace {TENANT_A} \
             explicitly is {refused}. In SQL, `SELECT count(*) FROM knowledge_chunks WHERE \
             tenant_id = '{TENANT_A}'` counts {sql_rows} rows in this session."
        ),
    })
}

fn brand_voice_step(a: &TenantSession) -> Result<Step> {
    let index = a.vectorize("nds-brand-voice")?;
    let dims = index.dimensions();
    let drafts = a
        .prepare(
            "SELECT draft_id, created_at, body FROM content_drafts
             ORDER BY created_at DESC, draft_id DESC LIMIT 5",
        )
        .all()?
        .results;
    let options = QueryOptions::new().with_top_k(1);
    let mut rows = Vec::new();
    for draft in &drafts {
        let body = draft.get("body").and_then(Json::as_str).unwrap_or_default();
        let matches = index.query(&embed(dims, body)?, &options)?;
        let (id, score) = matches
            .matches
            .first()
            .map_or((Json::Null, Json::Null), |m| (json!(m.id), json!(m.score)));
        rows.push(vec![
            draft.get("draft_id").cloned().unwrap_or(Json::Null),
            draft.get("created_at").cloned().unwrap_or(Json::Null),
            id,
            score,
            json!(body),
        ]);
    }
    rows.sort_by(|x, y| {
        let s = |r: &Vec<Json>| r[3].as_f64().unwrap_or(f64::NEG_INFINITY);
        s(y).total_cmp(&s(x))
    });
    Ok(Step {
        id: "brand_voice".into(),
        title: format!("{TENANT_A}'s latest drafts, most on-brand first"),
        tenant: Some(TENANT_A.into()),
        call: format!(
            "for each of the 5 latest content_drafts: {}",
            query_call(TENANT_A, "nds-brand-voice", "<draft body>", &options)
        ),
        columns: strings(&["draft_id", "created_at", "nearest_voice", "score", "body"]),
        rows,
        note: format!(
            "The nearest brand voice of each draft. The session sees only the voice vectors of \
             namespace {TENANT_A}, so a draft is never matched to another brand's voice."
        ),
    })
}

/// The shared skills step's SQL, as the tenant runs it.
pub const SKILLS_SQL: &str = "SELECT m.skill_id, s.name, SUM(m.uses) AS uses,
       AVG(m.approval_rate) AS approval_rate, AVG(m.pass_rate) AS pass_rate,
       MIN(m.tenant_count) AS min_tenants, COUNT(*) AS days
FROM skill_metrics_daily m JOIN skills s ON s.skill_id = m.skill_id
GROUP BY m.skill_id ORDER BY uses DESC, m.skill_id LIMIT 5";

fn skills_step(db: &Database, a: &TenantSession) -> Result<Step> {
    let result = a.prepare(SKILLS_SQL).all()?;
    let visible = count(a, "SELECT count(*) AS n FROM skill_metrics_daily")?;
    // The operator's view: how many rows exist, and how many a tenant may not see.
    let total = count(db, "SELECT count(*) AS n FROM skill_metrics_daily")?;
    let suppressed = count(
        db,
        &format!(
            "SELECT count(*) AS n FROM skill_metrics_daily WHERE tenant_count < {K_ANONYMITY}"
        ),
    )?;
    Ok(Step {
        id: "shared_skills".into(),
        title: "Top shared skills across tenants, k-anonymous".into(),
        tenant: Some(TENANT_A.into()),
        call: SKILLS_SQL.into(),
        columns: result.columns.clone(),
        rows: result.raw(),
        note: format!(
            "skill_metrics_daily holds {total} skill-days; {suppressed} of them have fewer than \
             k = {K_ANONYMITY} tenants behind them and are suppressed: this session sees the \
             other {visible}, and every figure above is computed from those alone{}.",
            if visible == 0 {
                " (none here: too few tenants share a skill on any day)"
            } else {
                ""
            }
        ),
    })
}

fn skill_search_step(a: &TenantSession) -> Result<Step> {
    let index = a.vectorize("nds-skills")?;
    let options = QueryOptions::new()
        .with_top_k(TOP_K)
        .with_filter(json!({ "status": "active" }))
        .with_metadata(ReturnMetadata::All);
    let matches = index.query(&embed(index.dimensions(), SKILL_QUERY)?, &options)?;
    let field = |m: &crate::vectorize::types::Match, k: &str| {
        m.metadata
            .as_ref()
            .and_then(|md| md.get(k).cloned())
            .unwrap_or(Json::Null)
    };
    let rows = matches
        .matches
        .iter()
        .enumerate()
        .map(|(i, m)| {
            vec![
                json!(i + 1),
                json!(m.score),
                json!(m.id),
                field(m, "name"),
                field(m, "category"),
            ]
        })
        .collect();
    Ok(Step {
        id: "skill_search".into(),
        title: "The shared skills nearest to a brief".into(),
        tenant: Some(TENANT_A.into()),
        call: query_call(TENANT_A, "nds-skills", SKILL_QUERY, &options),
        columns: strings(&["rank", "score", "skill_id", "name", "category"]),
        rows,
        note: "nds-skills is shared: every tenant reads the same vectors (no namespace) and none \
               may write them. Skills are structural patterns, safe to share; who contributed one \
               stays hidden."
            .into(),
    })
}

/// The ROI step's SQL, as the tenant runs it.
pub const ROI_SQL: &str = "SELECT c.campaign_id, c.name AS campaign, SUM(m.posts) AS posts,
       SUM(m.conversions) AS conversions, SUM(m.revenue) AS revenue, SUM(m.spend) AS spend,
       (SUM(m.revenue) - SUM(m.spend)) / SUM(m.spend) AS roi
FROM campaigns c JOIN campaign_metrics_daily m ON m.campaign_id = c.campaign_id
GROUP BY c.campaign_id ORDER BY revenue DESC, c.campaign_id";

fn roi_step(a: &TenantSession) -> Result<Step> {
    let result = a.prepare(ROI_SQL).all()?;
    Ok(Step {
        id: "roi".into(),
        title: format!("{TENANT_A}'s return on AI spend, by campaign"),
        tenant: Some(TENANT_A.into()),
        call: ROI_SQL.into(),
        columns: result.columns.clone(),
        rows: result.raw(),
        note: "From the campaign_metrics_daily rollup: revenue of conversions credited to the \
               campaign's posts, spend = model cost of the campaign's workflow runs, \
               roi = (revenue - spend) / spend. The rollup needs no tenant filter: the session \
               sees its own rows only."
            .into(),
    })
}

/// The paged listing's query (the cursor adds the order and the limit).
pub const PAGED_SQL: &str = "SELECT p.post_id, p.platform, p.published_at, m.impressions, m.clicks
FROM published_posts p LEFT JOIN post_metrics m ON m.post_id = p.post_id";

/// The paged listing's order: newest first, ties by post id.
pub fn paged_spec() -> PageSpec {
    PageSpec::descending("published_at", "post_id", PAGE_ROWS)
}

fn paged_step(a: &TenantSession) -> Result<Step> {
    let spec = paged_spec();
    let first = page(a, PAGED_SQL, &[], &spec, None)?;
    let second = match first.next_cursor.as_deref() {
        Some(cursor) => Some(page(a, PAGED_SQL, &[], &spec, Some(cursor))?),
        None => None,
    };
    let columns = [
        "post_id",
        "platform",
        "published_at",
        "impressions",
        "clicks",
    ];
    let mut rows = Vec::new();
    for (n, p) in std::iter::once(&first).chain(second.as_ref()).enumerate() {
        for row in &p.rows {
            let mut cells = vec![json!(n + 1)];
            cells.extend(
                columns
                    .iter()
                    .map(|c| row.get(*c).cloned().unwrap_or(Json::Null)),
            );
            rows.push(cells);
        }
    }
    let cursor_note = match (
        &first.next_cursor,
        second.as_ref().and_then(|p| p.next_cursor.as_ref()),
    ) {
        (Some(c1), Some(c2)) => {
            format!("Page 2 was fetched with the cursor {c1}; the next page's cursor is {c2}.")
        }
        (Some(c1), None) => format!("Page 2 (the last) was fetched with the cursor {c1}."),
        (None, _) => "Everything fits on one page.".to_owned(),
    };
    let mut all_columns = vec!["page".to_owned()];
    all_columns.extend(strings(&columns));
    Ok(Step {
        id: "paged_listing".into(),
        title: format!("{TENANT_A}'s published posts, newest first, {PAGE_ROWS} a page"),
        tenant: Some(TENANT_A.into()),
        call: format!(
            "page(&session, \"{}\", &[], &PageSpec::descending(\"published_at\", \"post_id\", {PAGE_ROWS}), cursor)",
            PAGED_SQL.replace('\n', " ")
        ),
        columns: all_columns,
        rows,
        note: format!(
            "{cursor_note} A cursor is opaque and names a position (published_at, post_id), not \
             an offset: posts published while a reader pages never shift or repeat rows."
        ),
    })
}

/// HYBRID SEARCH: to be wired by the integrator of `d1vec search` (FTS5 + vector, RRF).
/// Until then the step is a placeholder that points at that command.
fn hybrid_step(a: &TenantSession) -> Result<Step> {
    use crate::search::HybridQuery;

    let query = HybridQuery::new(HYBRID_QUERY).top_k(HYBRID_ROWS);
    let embedder = HashingEmbedder::new(1536)?;
    let hits = a.hybrid_search(&query, Some(&embedder))?;
    let both = hits
        .iter()
        .filter(|h| h.keyword.is_some() && h.vector.is_some())
        .count();
    let rank = |r: Option<usize>| r.map_or(json!("—"), |r| json!(r));
    let rows = hits
        .iter()
        .enumerate()
        .map(|(i, h)| {
            vec![
                json!(i + 1),
                json!(format!("{:.4}", h.score)),
                rank(h.keyword.as_ref().map(|k| k.rank)),
                rank(h.vector.as_ref().map(|v| v.rank)),
                json!(h.id),
                json!(h.text),
            ]
        })
        .collect();
    Ok(Step {
        id: "hybrid_search".into(),
        title: format!("Hybrid search inside {TENANT_A}: keywords and meaning, fused"),
        tenant: Some(TENANT_A.into()),
        call: format!(
            "db.tenant(\"{TENANT_A}\").hybrid_search(HybridQuery::new({HYBRID_QUERY:?}).top_k({HYBRID_ROWS}), Some(&embedder))"
        ),
        columns: strings(&["rank", "rrf", "bm25 rank", "vector rank", "chunk_id", "text"]),
        rows,
        note: format!(
            "Keyword side: SQLite FTS5 with BM25 computed over {TENANT_A}'s rows only. Vector side: \
             nds-knowledge in {TENANT_A}'s namespace. Fused by Reciprocal Rank Fusion, score = \
             sum of 1 / (60 + rank) over the lists a row is in; {both} of these rows were found by \
             both. Also: `d1vec --tenant {TENANT_A} search \"{HYBRID_QUERY}\"`."
        ),
    })
}

/// `count(*) AS n` of a query on any session.
fn count(session: &impl crate::sql::Session, sql: &str) -> Result<i64> {
    match session.prepare(sql).first_column("n")? {
        Some(Json::Number(n)) => n
            .as_i64()
            .ok_or_else(|| Error::invalid("count", format!("not an integer: {n}"))),
        other => Err(Error::invalid(
            "count",
            format!("expected a number, got {other:?}"),
        )),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}
