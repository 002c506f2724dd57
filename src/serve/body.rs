//! Reading request bodies: within a size limit and a time limit, as JSON, and as the
//! vectors of an insert or upsert (NDJSON, a multipart form's `vectors` field, or JSON
//! `{"vectors": [...]}`).
//!
//! Every failure is an [`ApiError`] naming the problem: too large (413), cut short or too
//! slow (400 / 408), not JSON (400). Nothing is read past the limit.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{header, HeaderMap, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::Value as Json;

use super::error::{Api, ApiError, BODY_TOO_LARGE};
use crate::vectorize::error::codes;
use crate::vectorize::limits;
use crate::vectorize::ndjson::{self, Unparsable};
use crate::vectorize::types::Vector;

/// The largest JSON body of a route that takes no upload (queries, ids, configs).
pub(crate) const MAX_JSON_BYTES: usize = 10 << 20;
/// The largest insert or upsert body: Vectorize's 100 MB upload, plus room for a multipart
/// form's boundaries and headers (the NDJSON inside is held to 100 MB by the reader).
pub(crate) const MAX_UPLOAD_BODY_BYTES: usize = limits::MAX_UPLOAD_BYTES + (64 << 10);
/// How long a client may take to send its body.
pub(crate) const BODY_TIMEOUT: Duration = Duration::from_secs(120);

/// The whole body of `request`, at most `limit` bytes.
pub(crate) async fn read(request: Request, limit: usize, api: Api) -> Result<Bytes, ApiError> {
    let too_large = || {
        let code = match api {
            Api::Vectorize => codes::UPLOAD_TOO_LARGE,
            Api::D1 => BODY_TOO_LARGE,
        };
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            code,
            format!("the request body is larger than {limit} bytes, this route's limit"),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let collect = Limited::new(request.into_body(), limit).collect();
    match tokio::time::timeout(BODY_TIMEOUT, collect).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            super::error::TIMEOUT,
            format!(
                "the request body was not received within {} s",
                BODY_TIMEOUT.as_secs()
            ),
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Ok(Err(_)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            super::error::MALFORMED_JSON,
            "the request body was cut short or could not be read",
        )),
    }
}

/// The body of `request` as JSON (at most [`MAX_JSON_BYTES`]).
pub(crate) async fn json(request: Request, api: Api) -> Result<Json, ApiError> {
    let bytes = read(request, MAX_JSON_BYTES, api).await?;
    parse_json(&bytes, api)
}

/// `bytes` as JSON; the error names the position and kind of the problem, never content.
pub(crate) fn parse_json(bytes: &[u8], api: Api) -> Result<Json, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_json(api, e))
}

/// The vectors of an insert or upsert body, and how many unparsable lines were discarded.
pub(crate) async fn vectors(
    request: Request,
    unparsable: Unparsable,
) -> Result<(Vec<Vector>, usize), ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = read(
        Request::from_parts(parts.clone(), body),
        MAX_UPLOAD_BODY_BYTES,
        Api::Vectorize,
    )
    .await?;
    let ndjson = match content_type(&parts.headers) {
        Some(t) if t.starts_with("multipart/form-data") => {
            let request = Request::from_parts(parts, Body::from(bytes));
            multipart_field(request, "vectors").await?
        }
        Some(t) if t.starts_with("application/json") => match json_vectors(&bytes)? {
            Some(vectors) => return Ok((vectors, 0)),
            None => bytes,
        },
        _ => bytes,
    };
    parse_ndjson(&ndjson, unparsable)
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    let t = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(t.trim().to_ascii_lowercase())
}

fn unparsable_error(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, codes::UNPARSABLE_VECTORS, message)
}

/// The bytes of the form field `name` of a multipart body.
async fn multipart_field(request: Request, name: &str) -> Result<Bytes, ApiError> {
    let bad = |e: axum::extract::multipart::MultipartError| {
        unparsable_error(format!(
            "the multipart body could not be read: {}",
            e.body_text()
        ))
    };
    let mut form = Multipart::from_request(request, &())
        .await
        .map_err(|e| unparsable_error(format!("not a multipart body: {}", e.body_text())))?;
    while let Some(field) = form.next_field().await.map_err(bad)? {
        if field.name() == Some(name) {
            return field.bytes().await.map_err(bad);
        }
    }
    Err(unparsable_error(format!(
        "the multipart body has no `{name}` field (it holds the NDJSON vectors)"
    )))
}

/// A JSON body `{"vectors": [...]}` (the binding's format without NDJSON); `None` when the
/// body is not a JSON object with `vectors`, to be read as NDJSON instead.
fn json_vectors(bytes: &[u8]) -> Result<Option<Vec<Vector>>, ApiError> {
    let Ok(Json::Object(obj)) = serde_json::from_slice::<Json>(bytes) else {
        return Ok(None);
    };
    let Some(list) = obj.get("vectors") else {
        return Ok(None);
    };
    let Json::Array(items) = list else {
        return Err(unparsable_error(
            "vectors: expected an array of vector objects",
        ));
    };
    check_count(items.len())?;
    items
        .iter()
        .enumerate()
        .map(|(at, v)| {
            Vector::from_json(v).map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    e.code,
                    format!("vectors[{at}]: {}", e.message),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// NDJSON vectors (one upload: at most [`limits::MAX_FILE_BATCH`] vectors).
pub(crate) fn parse_ndjson(
    bytes: &[u8],
    unparsable: Unparsable,
) -> Result<(Vec<Vector>, usize), ApiError> {
    let cap = limits::MAX_FILE_BATCH;
    let mut reader = ndjson::reader(bytes, cap + 1, unparsable);
    let mut all = Vec::new();
    for batch in reader.by_ref() {
        let batch = batch.map_err(vectorize_error)?;
        all.extend(batch);
        check_count(all.len())?;
    }
    Ok((all, reader.discarded()))
}

/// One upload holds at most [`limits::MAX_FILE_BATCH`] vectors (Vectorize's HTTP limit).
fn check_count(n: usize) -> Result<(), ApiError> {
    limits::check_batch(n, limits::MAX_FILE_BATCH).map_err(vectorize_error)
}

fn vectorize_error(e: crate::vectorize::VectorizeError) -> ApiError {
    ApiError::from_error(&e.into(), Api::Vectorize)
}
