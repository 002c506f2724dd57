//! Vectorize v2 under `/accounts/{account_id}/vectorize/v2/indexes`: index management,
//! vector writes, queries, listing and metadata indexes, with Cloudflare's result shapes.
//! Each route parses its request (errors name the field), then makes the one library call
//! the command line's `d1vec vectorize` makes for the same operation.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde_json::{json, Value as Json};

use super::auth::Principal;
use super::body;
use super::envelope;
use super::error::{Api, ApiError};
use super::{AppState, Surface};
use crate::error::Result;
use crate::vectorize::error::codes;
use crate::vectorize::filter::eval::IndexType;
use crate::vectorize::limits;
use crate::vectorize::ndjson::Unparsable;
use crate::vectorize::types::{CreateIndexRequest, IndexDescription, QueryOptions};
use crate::vectorize::{CreateIndex, Scope, VectorIndex, VectorizeError};

impl Surface<'_> {
    /// The index `name` as this surface sees it.
    pub(crate) fn index(&self, name: &str) -> Result<VectorIndex> {
        match self {
            Surface::Admin(db) => db.vectorize(name),
            Surface::Tenant(t) => t.vectorize(name),
        }
    }

    fn create_index(&self, request: &CreateIndex) -> Result<IndexDescription> {
        match self {
            Surface::Admin(db) => db.create_index(request),
            Surface::Tenant(t) => t.create_index(request),
        }
    }

    fn list_indexes(&self) -> Result<Vec<IndexDescription>> {
        match self {
            Surface::Admin(db) => db.list_indexes(),
            Surface::Tenant(t) => t.list_indexes(),
        }
    }

    fn delete_index(&self, name: &str) -> Result<()> {
        match self {
            Surface::Admin(db) => db.delete_index(name),
            Surface::Tenant(t) => t.delete_index(name),
        }
    }
}

const INDEXES: &str = "/vectorize/v2/indexes";

/// The Vectorize routes, relative to `/client/v4/accounts/{account_id}`.
pub(super) fn routes() -> Router<Arc<AppState>> {
    let at = |tail: &str| format!("{INDEXES}/{{name}}{tail}");
    Router::new()
        .route(INDEXES, get(list_indexes).post(create_index))
        .route(&at(""), get(get_index).delete(delete_index))
        .route(&at("/info"), get(info))
        .route(&at("/insert"), post(insert))
        .route(&at("/upsert"), post(upsert))
        .route(&at("/query"), post(query))
        .route(&at("/get_by_ids"), post(get_by_ids))
        .route(&at("/delete_by_ids"), post(delete_by_ids))
        .route(&at("/list"), get(list_vectors))
        .route(&at("/metadata_index/create"), post(create_metadata_index))
        .route(&at("/metadata_index/list"), get(list_metadata_indexes))
        .route(&at("/metadata_index/delete"), post(delete_metadata_index))
}

type Shared = State<Arc<AppState>>;
type Who = Extension<Principal>;

/// The `{name}` of the path.
#[derive(serde::Deserialize)]
struct IndexPath {
    name: String,
}

fn name_of(
    path: std::result::Result<Path<IndexPath>, PathRejection>,
) -> std::result::Result<String, ApiError> {
    path.map(|Path(p)| p.name).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::INVALID_INDEX_CONFIG,
            format!("invalid index name in the path: {}", e.body_text()),
        )
    })
}

/// A body error with Vectorize's 40026, naming the field.
fn body_error(message: impl std::fmt::Display) -> ApiError {
    ApiError::bad_json(Api::Vectorize, message)
}

fn from_vectorize(e: VectorizeError) -> ApiError {
    ApiError::from_error(&e.into(), Api::Vectorize)
}

/// Answers `result` as JSON in the envelope, or the error.
fn answer<T: serde::Serialize>(result: std::result::Result<T, ApiError>) -> Response {
    match result.and_then(|v| {
        serde_json::to_value(v).map_err(|e| ApiError::internal(format!("encoding the result: {e}")))
    }) {
        Ok(value) => envelope::success(value),
        Err(e) => e.into_response(),
    }
}

async fn list_indexes(State(state): Shared, Extension(who): Who) -> Response {
    answer(state.run(who, Api::Vectorize, |s| s.list_indexes()).await)
}

async fn create_index(State(state): Shared, Extension(who): Who, request: Request) -> Response {
    let parsed = async {
        let body = body::json(request, Api::Vectorize).await?;
        parse_create(&body)
    };
    let create = match parsed.await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    answer(
        state
            .run(who, Api::Vectorize, move |s| s.create_index(&create))
            .await,
    )
}

/// A create-index body: Cloudflare's `{name, description?, config}`, plus d1vec's optional
/// `scope` (`"shared"`, the default, or `"private"`; see README, "Tenant scope").
fn parse_create(body: &Json) -> std::result::Result<CreateIndex, ApiError> {
    let request = CreateIndexRequest::from_json(body).map_err(from_vectorize)?;
    let config = request.validate().map_err(from_vectorize)?;
    let scope = match body.get("scope") {
        None | Some(Json::Null) => Scope::Shared,
        Some(Json::String(s)) if s == "shared" => Scope::Shared,
        Some(Json::String(s)) if s == "private" => Scope::Private,
        Some(_) => {
            return Err(from_vectorize(VectorizeError::new(
                codes::INVALID_INDEX_CONFIG,
                "invalid create index request; scope must be \"shared\" or \"private\"",
            )))
        }
    };
    let mut create = CreateIndex::new(&request.name, config.dimensions, config.metric).scope(scope);
    create.description = request.description;
    Ok(create)
}

async fn get_index(
    State(state): Shared,
    Extension(who): Who,
    path: std::result::Result<Path<IndexPath>, PathRejection>,
) -> Response {
    let name = match name_of(path) {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    answer(
        state
            .run(who, Api::Vectorize, move |s| {
                Ok(s.index(&name)?.description())
            })
            .await,
    )
}

async fn delete_index(
    State(state): Shared,
    Extension(who): Who,
    path: std::result::Result<Path<IndexPath>, PathRejection>,
) -> Response {
    let name = match name_of(path) {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    answer(
        state
            .run(who, Api::Vectorize, move |s| s.delete_index(&name))
            .await
            .map(|()| Json::Null),
    )
}

async fn info(
    State(state): Shared,
    Extension(who): Who,
    path: std::result::Result<Path<IndexPath>, PathRejection>,
) -> Response {
    let name = match name_of(path) {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    answer(
        state
            .run(who, Api::Vectorize, move |s| s.index(&name)?.describe())
            .await,
    )
}

async fn insert(
    state: Shared,
    who: Who,
    path: std::result::Result<Path<IndexPath>, PathRejection>,
    query: std::result::Result<Query<HashMap<String, String>>, QueryRejection>,
    request: Request,
) -> Response {
    write_vectors(state, who, path, query, request, false).await
}

async fn upsert(
    state: Shared,
    who: Who,
    path: std::result::Result<Path<IndexPath>, PathRejection>,
    query: std::result::Result<Query<HashMap<String, String>>, QueryRejection>,
    request: Request,
) -> Response {
    write_vectors(state, who, path, query, request, true).await
}

/// Insert or upsert: one request is one upload and one mutation (`{mutationId}`).
async fn write_vectors(
    State(state): Shared,
    Extension(who): Who,
    path: std::result::Result<Path<IndexPath>, PathRejection>,
    query: std::result::Result<Query<HashMap<String, String>>, QueryRejection>,
    request: Request,
    upsert: bool,
) -> Response {
    let parsed = async {
        let name = name_of(path)?;
        let params = params(query)?;
        let unparsable = match params.get("unparsable-behavior").map(String::as_str) {
            None | Some("error") => Unparsable::Error,
            Some("discard") => Unparsable::Discard,
            Some(_) => {
                return Err(body_error(
                    "unparsable-behavior: expected \"error\" or \"discard\"",
                ))
            }
        };
        let (vectors, _discarded) = body::vectors(request, unparsable).await?;
        Ok((name, vectors))
    };
    let (name, vectors) = match parsed.await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    answer(
        state
            .run(who, Api::Vectorize, move |s| {
                let index = s.index(&name)?;
                if upsert {
                    index.upsert_batch(&vectors, limits::MAX_FILE_BATCH)
                } else {
                    index.insert_batch(&vectors, limits::MAX_FILE_BATCH)
                }
            })
            .await,
    )
}

fn params(
    query: std::result::Result<Query<HashMap<String, String>>, QueryRejection>,
) -> std::result::Result<HashMap<String, String>, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| body_error(format!("the query string: {}", e.body_text())))
}

/// What a query searches with.
enum Probe {
    Vector(Vec<f64>),
    Id(String),
}

/// A query body: `{vector | vectorId, topK?, returnValues?, returnMetadata?, filter?,
/// namespace?}`.
fn parse_query(body: &Json) -> std::result::Result<(Probe, QueryOptions), ApiError> {
    let options = QueryOptions::from_json(body).map_err(from_vectorize)?;
    let field = |k: &str| body.get(k).filter(|v| !v.is_null());
    let probe = match (field("vector"), field("vectorId")) {
        (Some(_), Some(_)) => return Err(body_error("give vector or vectorId, not both")),
        (Some(Json::Array(items)), None) => Probe::Vector(
            items
                .iter()
                .enumerate()
                .map(|(at, x)| {
                    x.as_f64()
                        .ok_or_else(|| body_error(format!("vector[{at}]: expected a number")))
                })
                .collect::<std::result::Result<_, _>>()?,
        ),
        (Some(_), None) => return Err(body_error("vector: expected an array of numbers")),
        (None, Some(Json::String(id))) => Probe::Id(id.clone()),
        (None, Some(_)) => return Err(body_error("vectorId: expected a string")),
        (None, None) => return Err(body_error("missing field `vector` (or `vectorId`)")),
    };
    Ok((probe, options))
}

async fn query(
    State(state): Shared,
    Extension(who): Who,
    path: std::result::Result<Path<IndexPath>, PathRejection>,
    request: Request,
) -> Response {
    let parsed = async {
        let name = name_of(path)?;
        let body = body::json(request, Api::Vectorize).await?;
        Ok::<_, ApiError>((name, parse_query(&body)?))
    };
    let (name, (probe, options)) = match parsed.await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    answer(
        state
            .run(who, Api::Vectorize, move |s| {
                let index = s.index(&name)?;
                match &probe {
                    Probe::Vector(v) => index.query(v, &options),
                    Probe::Id(id) => index.query_by_id(id, &options),
                }
            })
            .await,
    )
}

/// `{ids: [string...]}`.
fn parse_ids(body: &Json) -> std::result::Result<Vec<String>, ApiError> {
    let Some(Json::Array(items)) = body.get("ids") else {
        return Err(body_error("ids: expected an array of strings"));
    };
    items
        .iter()
        .enumerate()
        .map(|(at, id)| {
            id.as_str()
                .map(str::to_owned)
                .ok_or_else(|| body_error(format!("ids[{at}]: expected a string")))
        })
        .collect()
}

async fn ids_request(
    path: std::result::Result<Path<IndexPath>, PathRejection>,
    request: Request,
) -> std::result::Result<(String, Vec<String>), ApiError> {
    let name = name_of(path)?;
    let body = body::json(request, Api::Vectorize).await?;
    Ok((name, parse_ids(&body)?))
}

async fn get_by_ids(
    State(state): Shared,
    Extension(who): Who,
    path: std::result::Result<Path<IndexPath>, PathRejection>,
    request: Request,
) -> Response {
    let (name, ids) = match ids_request(path, request).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    answer(
        state
            .run(who, Api::Vectorize, move |s| {
                s.index(&name)?.get_by_ids(&ids)
            })
            .await,
    )
}

async fn delete_by_ids(
    State(state): Shared,
    Extension(who): Who,
    path: std::result::Result<Path<IndexPath>, PathRejection>,
    request: Request,
) -> Response {
    let (name, ids) = match ids_request(path, request).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    answer(
        state
            .run(who, Api::Vectorize, move |s| {
                s.index(&name)?.delete_by_ids(&ids)
            })
            .await,
    )
}

async fn list_vectors(
    State(state): Shared,
    Extension(who): Who,
    path: std::result::Result<Path<IndexPath>, PathRejection>,
    query: std::result::Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let parsed = (|| {
        let name = name_of(path)?;
        let mut params = params(query)?;
        let count = match params.get("count") {
            None => None,
            Some(c) => Some(c.trim().parse::<usize>().map_err(|_| {
                from_vectorize(VectorizeError::new(
                    codes::INVALID_REQUEST_BODY,
                    format!(
                        "count: expected an integer from 1 to {}",
                        limits::MAX_LIST_COUNT
                    ),
                ))
            })?),
        };
        Ok::<_, ApiError>((name, count, params.remove("cursor")))
    })();
    let (name, count, cursor) = match parsed {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    answer(
        state
            .run(who, Api::Vectorize, move |s| {
                s.index(&name)?.list_vectors(count, cursor.as_deref())
            })
            .await,
    )
}

/// `{propertyName: string}` and, for create, `indexType`.
fn parse_property(body: &Json) -> std::result::Result<String, ApiError> {
    match body.get("propertyName") {
        Some(Json::String(p)) => Ok(p.clone()),
        Some(_) => Err(body_error("propertyName: expected a string")),
        None => Err(body_error("missing field `propertyName`")),
    }
}

fn parse_index_type(body: &Json) -> std::result::Result<IndexType, ApiError> {
    match body.get("indexType").and_then(Json::as_str) {
        Some("string") => Ok(IndexType::String),
        Some("number") => Ok(IndexType::Number),
        Some("boolean") => Ok(IndexType::Boolean),
        _ => Err(body_error(
            "indexType: expected \"string\", \"number\" or \"boolean\"",
        )),
    }
}

async fn create_metadata_index(
    State(state): Shared,
    Extension(who): Who,
    path: std::result::Result<Path<IndexPath>, PathRejection>,
    request: Request,
) -> Response {
    let parsed = async {
        let name = name_of(path)?;
        let body = body::json(request, Api::Vectorize).await?;
        Ok::<_, ApiError>((name, parse_property(&body)?, parse_index_type(&body)?))
    };
    let (name, property, index_type) = match parsed.await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    answer(
        state
            .run(who, Api::Vectorize, move |s| {
                let created = s
                    .index(&name)?
                    .create_metadata_index(&property, index_type)?;
                Ok(json!({ "mutationId": created.mutation_id }))
            })
            .await,
    )
}

async fn list_metadata_indexes(
    State(state): Shared,
    Extension(who): Who,
    path: std::result::Result<Path<IndexPath>, PathRejection>,
) -> Response {
    let name = match name_of(path) {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    answer(
        state
            .run(who, Api::Vectorize, move |s| {
                let list = s.index(&name)?.list_metadata_indexes()?;
                Ok(json!({ "metadataIndexes": list }))
            })
            .await,
    )
}

async fn delete_metadata_index(
    State(state): Shared,
    Extension(who): Who,
    path: std::result::Result<Path<IndexPath>, PathRejection>,
    request: Request,
) -> Response {
    let parsed = async {
        let name = name_of(path)?;
        let body = body::json(request, Api::Vectorize).await?;
        Ok::<_, ApiError>((name, parse_property(&body)?))
    };
    let (name, property) = match parsed.await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    answer(
        state
            .run(who, Api::Vectorize, move |s| {
                s.index(&name)?.delete_metadata_index(&property)
            })
            .await,
    )
}
