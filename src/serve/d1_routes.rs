//! The D1 routes under `/accounts/{account_id}/d1/database`, wired to [`super::d1`]: each
//! route reads its request, picks the database the path names, and calls the D1 function on
//! the caller's surface (the admin database, or the token's tenant session on it).
//!
//! Creating and deleting databases is admin-only; listing and getting them (names, sizes)
//! is open to tenant tokens, which wrangler needs to find a database by name; everything that
//! touches rows runs in the tenant's session.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Router};
use serde_json::Value as Json;

use super::auth::Principal;
use super::body;
use super::d1::{self, D1Registry, D1Target, TransferLimits, TransferStore, TRANSFER_PATH};
use super::envelope;
use super::error::{Api, ApiError};
use super::{AppState, Surface, API_PREFIX};
use crate::error::Result;
use crate::Database;

/// The databases the server serves, and the store behind import and export URLs.
pub(crate) struct D1 {
    registry: D1Registry,
    transfers: TransferStore,
}

impl D1 {
    /// The D1 state for the primary database `db` (creates the registry table in it).
    pub(crate) fn open(db: Arc<Database>) -> Result<D1> {
        Ok(D1 {
            registry: D1Registry::open(db)?,
            transfers: TransferStore::new(TransferLimits::default()),
        })
    }
}

impl Surface<'_> {
    fn d1(&self) -> &dyn D1Target {
        match self {
            Surface::Admin(db) => *db,
            Surface::Tenant(t) => *t,
        }
    }
}

/// The D1 routes, relative to `/client/v4/accounts/{account_id}` (behind authentication).
pub(super) fn routes() -> Router<Arc<AppState>> {
    const DB: &str = "/d1/database";
    Router::new()
        .route(DB, get(list).post(create))
        .route(&format!("{DB}/{{id}}"), get(get_one).delete(delete))
        .route(&format!("{DB}/{{id}}/query"), post(query))
        .route(&format!("{DB}/{{id}}/raw"), post(raw))
        .route(&format!("{DB}/{{id}}/import"), post(import))
        .route(&format!("{DB}/{{id}}/export"), post(export))
}

/// The upload and download URLs of import and export: their unguessable key is the
/// credential, as a presigned URL's signature is (wrangler sends no token with them).
pub(super) fn unauthenticated_routes() -> Router<Arc<AppState>> {
    let path = format!("{API_PREFIX}{TRANSFER_PATH}{{key}}");
    Router::new().route(&path, put(upload).get(download))
}

type Shared = State<Arc<AppState>>;
type Who = Extension<Principal>;

#[derive(serde::Deserialize)]
struct IdPath {
    id: String,
}

#[derive(serde::Deserialize)]
struct KeyPath {
    key: String,
}

fn fail(e: &crate::Error) -> Response {
    ApiError::from_error(e, Api::D1).into_response()
}

/// Answers a blocking registry call in the envelope.
async fn registry_call<T: Send + 'static>(
    state: &Arc<AppState>,
    f: impl FnOnce(&D1Registry) -> Result<T> + Send + 'static,
) -> std::result::Result<T, ApiError> {
    let state = Arc::clone(state);
    match tokio::task::spawn_blocking(move || f(&state.d1.registry)).await {
        Ok(r) => r.map_err(|e| ApiError::from_error(&e, Api::D1)),
        Err(_) => Err(ApiError::internal(
            "the request's worker stopped before answering",
        )),
    }
}

fn admin_only(who: Principal, what: &str) -> std::result::Result<(), ApiError> {
    match who {
        Principal::Admin => Ok(()),
        Principal::Tenant(_) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            crate::ErrorCode::Forbidden as u32,
            format!("{what} needs the admin token; a tenant-bound token may not"),
        )),
    }
}

async fn list(
    State(state): Shared,
    query: std::result::Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let Ok(Query(params)) = query else {
        return ApiError::bad_json(Api::D1, "the query string is malformed").into_response();
    };
    let number = |key: &str, default: usize| match params.get(key) {
        None => Ok(default),
        Some(v) => v.trim().parse::<usize>().map_err(|_| {
            ApiError::from_error(
                &crate::Error::InvalidInput {
                    what: "query parameter",
                    reason: format!("{key} must be a whole number"),
                },
                Api::D1,
            )
        }),
    };
    let (page, per_page) = match (number("page", 1), number("per_page", d1::DEFAULT_PER_PAGE)) {
        (Ok(p), Ok(pp)) => (p, pp),
        (Err(e), _) | (_, Err(e)) => return e.into_response(),
    };
    let name = params.get("name").cloned();
    match registry_call(&state, move |r| r.list(name.as_deref(), page, per_page)).await {
        Ok((items, info)) => envelope::page(Json::Array(items), info),
        Err(e) => e.into_response(),
    }
}

async fn create(State(state): Shared, Extension(who): Who, request: Request) -> Response {
    if let Err(e) = admin_only(who, "creating a D1 database") {
        return e.into_response();
    }
    let body = match body::json(request, Api::D1).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    match registry_call(&state, move |r| r.create(&body)).await {
        Ok(v) => envelope::success(v),
        Err(e) => e.into_response(),
    }
}

async fn get_one(State(state): Shared, Path(IdPath { id }): Path<IdPath>) -> Response {
    match registry_call(&state, move |r| r.get(&id)).await {
        Ok(v) => envelope::success(v),
        Err(e) => e.into_response(),
    }
}

async fn delete(
    State(state): Shared,
    Extension(who): Who,
    Path(IdPath { id }): Path<IdPath>,
) -> Response {
    if let Err(e) = admin_only(who, "deleting a D1 database") {
        return e.into_response();
    }
    let deleted = registry_call(&state, move |r| {
        let uuid = r.uuid_of(&id)?;
        r.delete(&id)?;
        Ok(uuid)
    })
    .await;
    match deleted {
        Ok(uuid) => {
            state.sessions.forget(&uuid);
            envelope::success(Json::Null)
        }
        Err(e) => e.into_response(),
    }
}

/// Runs `f` on the database `id` as `who`, with the body of `request` as JSON.
async fn on_database(
    state: Arc<AppState>,
    who: Principal,
    id: String,
    request: Request,
    f: impl FnOnce(&dyn D1Target, &D1, &str, &Json) -> Result<Json> + Send + 'static,
) -> Response {
    let body = match body::json(request, Api::D1).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let found = registry_call(&state, move |r| Ok((r.database(&id)?, r.uuid_of(&id)?))).await;
    let (db, uuid) = match found {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let inner = Arc::clone(&state);
    let key = uuid.clone();
    match state
        .run_on(db, key, who, Api::D1, move |s| {
            f(s.d1(), &inner.d1, &uuid, &body)
        })
        .await
    {
        Ok(v) => envelope::success(v),
        Err(e) => e.into_response(),
    }
}

/// The base URL the client reached the server by (its `Host`), for transfer URLs.
fn base_url(state: &AppState, request: &Request) -> String {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| state.addr.to_string(), str::to_owned);
    format!("http://{host}{API_PREFIX}")
}

async fn query(
    State(state): Shared,
    Extension(who): Who,
    Path(IdPath { id }): Path<IdPath>,
    request: Request,
) -> Response {
    on_database(state, who, id, request, |t, _, _, body| {
        d1::query(t, body, false)
    })
    .await
}

async fn raw(
    State(state): Shared,
    Extension(who): Who,
    Path(IdPath { id }): Path<IdPath>,
    request: Request,
) -> Response {
    on_database(state, who, id, request, |t, _, _, body| {
        d1::query(t, body, true)
    })
    .await
}

async fn import(
    State(state): Shared,
    Extension(who): Who,
    Path(IdPath { id }): Path<IdPath>,
    request: Request,
) -> Response {
    let base = base_url(&state, &request);
    on_database(state, who, id, request, move |t, d1, uuid, body| {
        d1::import(t, &d1.transfers, uuid, body, &base)
    })
    .await
}

async fn export(
    State(state): Shared,
    Extension(who): Who,
    Path(IdPath { id }): Path<IdPath>,
    request: Request,
) -> Response {
    let base = base_url(&state, &request);
    on_database(state, who, id, request, move |t, d1, uuid, body| {
        d1::export(t, &d1.transfers, uuid, body, &base)
    })
    .await
}

async fn upload(
    State(state): Shared,
    Path(KeyPath { key }): Path<KeyPath>,
    request: Request,
) -> Response {
    // The URL is the permission (no token): refuse an unknown one before reading a byte.
    if !state.d1.transfers.awaits_upload(&key) {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            7404,
            "upload URL: unknown or expired",
        )
        .into_response();
    }
    let limit = state.d1.transfers.limits().max_object_bytes;
    let bytes = match body::read(request, limit, Api::D1).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let stored =
        tokio::task::spawn_blocking(move || state.d1.transfers.put(&key, bytes.to_vec())).await;
    match stored {
        Ok(Ok(etag)) => {
            let mut response = envelope::success(Json::Null);
            if let Ok(v) = HeaderValue::from_str(&format!("\"{etag}\"")) {
                response.headers_mut().insert(header::ETAG, v);
            }
            response
        }
        Ok(Err(e)) => fail(&e),
        Err(_) => ApiError::internal("the upload's worker stopped").into_response(),
    }
}

async fn download(State(state): Shared, Path(KeyPath { key }): Path<KeyPath>) -> Response {
    match state.d1.transfers.get(&key) {
        Ok(bytes) => {
            let mut response = (StatusCode::OK, bytes.as_ref().clone()).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/sql"),
            );
            response
        }
        Err(e) => ApiError::new(StatusCode::NOT_FOUND, 7404, e.to_string()).into_response(),
    }
}
