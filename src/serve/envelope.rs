//! Cloudflare's v4 response envelope: `{"result", "success", "errors", "messages"}`, plus
//! `result_info` on paged lists. Every response the server sends, success or failure, has it.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value as Json};

/// A successful answer: HTTP 200 with `result`.
pub(crate) fn success(result: Json) -> Response {
    respond(
        StatusCode::OK,
        &envelope(result, true, Json::Array(Vec::new()), None),
    )
}

/// A successful page of a list: HTTP 200 with `result` and `result_info`.
pub(crate) fn page(result: Json, result_info: Json) -> Response {
    respond(
        StatusCode::OK,
        &envelope(result, true, Json::Array(Vec::new()), Some(result_info)),
    )
}

/// A failure: `status`, `result: null` and one error `{code, message}`.
pub(crate) fn failure(status: StatusCode, code: u32, message: &str) -> Response {
    let errors = json!([{ "code": code, "message": message }]);
    respond(status, &envelope(Json::Null, false, errors, None))
}

/// The envelope's JSON.
pub(crate) fn envelope(result: Json, success: bool, errors: Json, info: Option<Json>) -> Json {
    let mut body = json!({
        "result": result,
        "success": success,
        "errors": errors,
        "messages": [],
    });
    if let Some(info) = info {
        body["result_info"] = info;
    }
    body
}

fn respond(status: StatusCode, body: &Json) -> Response {
    let text = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = (status, text).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
